"""
Options, endpoint descriptions, makeService and start-up failures, without a
real reactor.
"""

from __future__ import annotations

import errno
import os
import re
import resource
import socket
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IStreamServerEndpoint
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock
from twisted.python import usage
from twisted.python.failure import Failure
from zope.interface import implementer

from sockserve._endpoints import describeListener
from sockserve.factories import LineServerFactory, buildFactory
from sockserve.limits import Limits
from sockserve.service import (
    LineServerService,
    Listener,
    StartupAbort,
    describeListenFailure,
)
from sockserve.tap import Options, makeService
from tests.conftest import ErrorCollector
from tests.support import capturedLogs, connectOnStringTransport


def parse(*args: str) -> Options:
    options = Options()
    options.parseOptions(list(args))
    return options


def test_defaults() -> None:
    """No options: chat on 127.0.0.1:5000, the tutorial's 10 clients, a
    backlog that survives bursts."""
    options = parse()
    assert options["mode"] == "chat"
    assert options["listeners"] == [
        ("tcp:5000:interface=127.0.0.1:backlog=1024", "127.0.0.1:5000")
    ]
    limits = options.limits()
    assert limits.maxClients == 10
    # Connections are capped below the open-file limit, raised to its hard
    # limit, with room kept to refuse politely.
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    assert limits.maxConnections == max(16, hard - 100)
    assert replace(limits, maxConnections=0) == Limits()


def test_web_hosts_are_kept_in_one_spelling() -> None:
    """--web-host may be given several times; names are kept lower case,
    IPv6 addresses without brackets; none by default."""
    assert parse()["web-host"] == []
    options = parse("--web-host", "Chat.Example.org.", "--web-host", "[::1]")
    assert options["web-host"] == ["chat.example.org", "::1"]


def test_every_option() -> None:
    """Every option reaches the limits."""
    options = parse(
        "--mode",
        "echo",
        "--port",
        "7000",
        "-p",
        "unix:/tmp/x.sock",
        "--interface",
        "0.0.0.0",
        "--backlog",
        "50",
        "--max-clients",
        "3",
        "--max-line",
        "100",
        "--max-pending",
        "1000",
        "--idle-timeout",
        "2.5",
        "--max-per-ip",
        "4",
        "--request-timeout",
        "0",
        "--presence-limit",
        "7",
        "--shutdown-grace",
        "1",
        "--flood-limit",
        "1000",
        "--max-connections",
        "500",
    )
    assert options["mode"] == "echo"
    assert options["listeners"] == [
        ("tcp:7000:interface=0.0.0.0:backlog=50", "0.0.0.0:7000"),
        ("unix:/tmp/x.sock:backlog=50:mode=660", "unix:/tmp/x.sock"),
    ]
    assert options.limits() == Limits(
        maxLine=100,
        maxPending=1000,
        idleTimeout=2.5,
        maxPerIP=4,
        requestTimeout=0.0,
        maxClients=3,
        presenceLimit=7,
        floodLimit=1000,
        maxConnections=500,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--mode", "nope"], "--mode must be one of chat, echo, oneshot"),
        (["--max-clients", "0"], "--max-clients must be an integer of at least 1"),
        (["--max-line", "x"], "--max-line must be an integer of at least 2, not 'x'"),
        (["--idle-timeout", "-1"], "--idle-timeout must be a number of seconds"),
        (["--idle-timeout", "nan"], "--idle-timeout must be a number of seconds"),
        (["--port", "notaport"], "--port: 'notaport' is not a port number"),
        (["--port", "70000"], "--port: port 70000 is out of range"),
        (["--port", "tcp:x:y=1:interface"], "--port"),
        (["--bogus"], "bogus"),
        (["extra"], "Wrong number of arguments"),
        (["--max-clients", " 12 "], "--max-clients must be an integer"),
        (["--max-clients", "1_000"], "--max-clients must be an integer"),
        (["--max-clients", "\u0661\u0662"], "--max-clients must be an integer"),
        (["--idle-timeout", "inf"], "--idle-timeout must be a number of seconds"),
        (["--idle-timeout", "1e3"], "--idle-timeout must be a number of seconds"),
        (["--interface", ""], "--interface must be an IPv4 or IPv6 address"),
        (["--interface", "0"], "--interface must be an IPv4 or IPv6 address"),
        (["--interface", "localhost"], "--interface must be an IPv4 or IPv6"),
        (["--web-host", "chat.example.org:80"], "--web-host: 'chat.example.org:80'"),
        (["--web-host", "a b"], "is not a host name such as chat.example.org"),
        (["--room", "a b"], "--room: a room name is 1 to 32 letters, digits and"),
        (["--room", "x" * 33], "--room: a room name is 1 to 32 letters"),
        (["--room", ""], "--room: a room name is"),
        (["--rooms", "lab,bad name"], "--rooms: a room name is 1 to 32 letters"),
        (["--rooms", "lab,,games"], "--rooms: a room name is"),
        (["--max-rooms", "0"], "--max-rooms must be an integer of at least 1"),
        (
            ["--web-session-lifetime", "0"],
            "--web-session-lifetime must be an integer of at least 1",
        ),
        (["--max-rooms", "x"], "--max-rooms must be an integer of at least 1"),
        (
            ["--rooms", "a,b,c,d", "--max-rooms", "2"],
            "--rooms names 4 rooms besides the default room, more than --max-rooms (2)",
        ),
    ],
)
def test_bad_options_are_usage_errors(args: list[str], message: str) -> None:
    """A bad option is a UsageError naming it (twistd prints usage, exit 1),
    in sockserve's words: numbers are ASCII digits, an interface is an
    address (an empty one, or '0', would listen on every address)."""
    with pytest.raises(usage.UsageError) as raised:
        parse(*args)
    assert message in str(raised.value)
    assert "Parameter type enforcement" not in str(raised.value)


def test_the_irc_password_is_read_from_a_file(tmp_path: Path) -> None:
    """--irc-password-file: one line of UTF-8 (its line ending is not part
    of it), for the IRC listeners (served by the main process alone: not
    passed to workers); a file that cannot be the password is a usage
    error naming it, which never shows what it holds."""
    secret = tmp_path / "secret"
    secret.write_text("pa ss\u00e9\r\n", encoding="utf-8")
    options = parse("--irc", "0", "--irc-password-file", str(secret))
    assert options["ircPassword"] == "pa ss\u00e9"
    assert parse("--irc", "0")["ircPassword"] is None
    assert not any("password" in a for a in options.workerArguments([1]))
    empty, lines, latin = tmp_path / "empty", tmp_path / "lines", tmp_path / "latin"
    empty.write_text("\n")
    lines.write_text("first\nsecond\n")
    latin.write_bytes(b"caf\xe9")
    for args, message in [
        ((str(secret),), "--irc-password-file needs --irc"),
        (("--irc", "0", str(tmp_path / "none")), "cannot read"),
        (("--irc", "0", str(empty)), "is empty"),
        (("--irc", "0", str(lines)), "holds more than one line"),
        (("--irc", "0", str(latin)), "is not UTF-8 text"),
    ]:
        *irc, path = args
        with pytest.raises(usage.UsageError) as raised:
            parse(*irc, "--irc-password-file", path)
        assert message in str(raised.value)
        assert "second" not in str(raised.value)
        assert "pa ss" not in str(raised.value)


@pytest.mark.parametrize(
    ("host", "exposure"),
    [
        ("127.0.0.1", None),
        ("::1", None),
        ("0.0.0.0", "reachable on every IPv4 address of this machine"),
        ("::", "reachable on every IPv6 (and IPv4) address of this machine"),
        ("192.0.2.1", "reachable from other machines"),
    ],
)
def test_exposure_is_described(host: str, exposure: str | None) -> None:
    """What a listening address exposes is said in the log."""
    from twisted.internet.address import IPv4Address, IPv6Address

    from sockserve.service import describeExposure

    kind = IPv6Address if ":" in host else IPv4Address
    assert describeExposure(kind("TCP", host, 5000)) == exposure


def test_help_is_h_too_and_reads_cleanly(capsys: pytest.CaptureFixture[str]) -> None:
    """twistd sockserve -h is --help; no help text has a run of spaces."""
    with pytest.raises(SystemExit):
        parse("-h")
    shown = capsys.readouterr().out
    assert "--port=" in shown
    assert all("  " not in doc for doc in Options().docs.values() if doc)


def test_help_is_grouped(capsys: pytest.CaptureFixture[str]) -> None:
    """--help lists the options in groups, in this order, the most needed
    first (--port and --mode open it), each option in its group's order."""
    with pytest.raises(SystemExit):
        parse("--help")
    shown = capsys.readouterr().out
    headings = [
        line for line in shown.splitlines() if line[:1].isalpha() and line[-1] == ":"
    ]
    assert headings == [
        "Listening:",
        "Chat:",
        "Limits:",
        "Bus:",
        "Web:",
        "IRC:",
        "Accounts:",
        "Operations:",
    ]
    options = re.findall(r"^  (?:-\w, |    )--([\w-]+)", shown, re.MULTILINE)
    assert options[:3] == ["port", "mode", "interface"]
    methods = [
        "port",
        "web",
        "web-origin",
        "web-host",
        "irc",
        "help",
        "version",
    ]
    assert sorted(options) == sorted(
        [
            *(name for name, *_ in Options.optParameters),
            *(name for name, *_ in Options.optFlags),
            *methods,
        ]
    )


def test_every_option_is_in_a_help_group() -> None:
    """Every option has its group in --help: an option added without one
    would be shown under "Other" (add it to HELP_GROUPS in sockserve.tap)."""
    groups = dict(Options().helpSections())
    assert "Other" not in groups, groups["Other"]


def test_defaults_are_said_one_way() -> None:
    """Every default is said the same way, "[default: X]" at the end of its
    option's text (a float as a person writes it: 10, not 10.0)."""
    usage = Options().getUsage(width=200)
    assert "(default" not in usage
    usage = "\n".join(line for line in usage.splitlines() if not line[:1].isalpha())
    texts = re.split(r"\n  (?:-\w, |    )--", usage)
    for text in texts:
        assert text.count("[default:") <= 1, text
        if "[default:" in text:
            assert text.rstrip().endswith("]"), text
    assert "Seconds, 0 or more. [default: 10]" in " ".join(usage.split())
    assert ".0]" not in usage


def test_ipv6_interface() -> None:
    """A bare port on an IPv6 interface becomes an escaped tcp6 description."""
    assert describeListener("5000", "::1", 10) == (
        "tcp6:5000:interface=\\:\\:1:backlog=10",
        "[::1]:5000",
    )


@pytest.mark.parametrize(
    ("port", "interface", "description"),
    [
        ("tcp:0", "127.0.0.1", "tcp:0:interface=127.0.0.1:backlog=10"),
        ("tcp:5000", "::1", "tcp:5000:interface=\\:\\:1:backlog=10"),
        ("tcp6:5000", "127.0.0.1", "tcp6:5000:interface=\\:\\:1:backlog=10"),
        ("tcp6:5000", "0.0.0.0", "tcp6:5000:interface=\\:\\::backlog=10"),
        (
            "tcp6:5000",
            "192.0.2.1",
            "tcp6:5000:interface=\\:\\:ffff\\:192.0.2.1:backlog=10",
        ),
        ("haproxy:tcp:5000", "127.0.0.1", "haproxy:tcp:5000:interface=127.0.0.1"),
        (
            "tcp:5000:interface=0.0.0.0",
            "127.0.0.1",
            "tcp:5000:interface=0.0.0.0:backlog=10",
        ),
        ("tcp:5000:5:0.0.0.0", "127.0.0.1", None),
        ("unix:/tmp/s", "127.0.0.1", "unix:/tmp/s:backlog=10:mode=660"),
        ("unix:/tmp/s:mode=600", "127.0.0.1", "unix:/tmp/s:mode=600:backlog=10"),
    ],
)
def test_descriptions_listen_on_the_interface(
    port: str, interface: str, description: str | None
) -> None:
    """Endpoint descriptions that bind an address and name none get
    --interface (in its IPv6 form for tcp6), like bare port numbers: loopback
    unless told otherwise. An explicit interface= wins; a description that
    spells its arguments positionally is left alone."""
    from sockserve._endpoints import withInterface

    if description is None:
        assert withInterface(port, interface) == port
    else:
        assert describeListener(port, interface, 10)[0] == description


def test_description_with_its_own_backlog_is_kept() -> None:
    """A description that names a backlog keeps it; types without one get none."""
    assert describeListener("tcp:1:backlog=5:interface=x", "y", 10)[0] == (
        "tcp:1:backlog=5:interface=x"
    )
    assert describeListener("systemd:domain=INET:index=0", "x", 10)[0] == (
        "systemd:domain=INET:index=0"
    )


def test_make_service_listens_on_every_port() -> None:
    """makeService listens on each --port with the mode's factory."""
    reactor = MemoryReactorClock()
    service = makeService(parse("--mode", "oneshot", "-p", "0", "-p", "tcp:0"), reactor)
    service.privilegedStartService()
    service.startService()
    assert [
        (port, backlog, interface) for port, _, backlog, interface in reactor.tcpServers
    ] == [
        (0, 1024, "127.0.0.1"),
        (0, 1024, "127.0.0.1"),
    ]
    assert all(
        getattr(f, "mode", None) == "oneshot" for _, f, _, _ in reactor.tcpServers
    )
    stopped = service.stopService()
    assert stopped.called


@implementer(IStreamServerEndpoint)
class FailingEndpoint:
    def listen(self, factory: object) -> Deferred[Any]:
        return fail(
            CannotListenError(
                "127.0.0.1", 5000, OSError(errno.EADDRINUSE, "Address already in use")
            )
        )


@implementer(IStreamServerEndpoint)
class PendingEndpoint:
    def __init__(self) -> None:
        self.listening: Deferred[Any] = Deferred()

    def listen(self, factory: object) -> Deferred[Any]:
        return self.listening


class Port:
    def __init__(self) -> None:
        self.stopped = False

    def getHost(self) -> Any:
        from twisted.internet.address import IPv4Address

        return IPv4Address("TCP", "127.0.0.1", 1234)

    def stopListening(self) -> None:
        self.stopped = True


@implementer(IStreamServerEndpoint)
class WorkingEndpoint:
    def __init__(self) -> None:
        self.port = Port()

    def listen(self, factory: object) -> Deferred[Any]:
        return succeed(self.port)


def test_listen_failure_is_one_clear_line() -> None:
    """A failed bind is reported as one line naming the address and the OS
    error; ports already open are closed again."""
    reports: list[str] = []
    working = WorkingEndpoint()
    factory = buildFactory("echo", Limits(), Clock(), "")
    service = LineServerService(
        [
            Listener("first", working, factory, "echo", factory.context.registry),
            Listener("127.0.0.1:5000", FailingEndpoint(), factory, "echo"),
        ],
        Clock(),
        1.0,
        reports.append,
    )
    service.privilegedStartService()
    assert reports == [
        "Could not listen on 127.0.0.1:5000: [Errno 98] Address already in use"
    ]
    assert working.port.stopped


class StoppingService(LineServerService):
    stops = 0

    def stopReactor(self) -> None:
        self.stops += 1


def test_late_listen_failure_is_logged_and_stops(logged_errors: ErrorCollector) -> None:
    """An endpoint that fails after start-up is logged as an error, and the
    server stops rather than run without listening."""
    reports: list[str] = []
    pending = PendingEndpoint()
    factory = buildFactory("echo", Limits(), Clock(), "")
    service = StoppingService(
        [Listener("x", pending, factory, "echo", factory.context.registry)],
        Clock(),
        1.0,
        reports.append,
    )
    service.startService()
    pending.listening.errback(ValueError("no such thing"))
    assert reports == []
    assert service.stops == 1
    [event] = logged_errors.take()
    assert event["message"] == "Could not listen on x: no such thing"


def test_listen_failure_may_end_the_process() -> None:
    """onListenFailure is called outside the Deferred chain, so SystemExit
    from it really ends start-up."""

    def abort(message: str) -> None:
        raise SystemExit(1)

    factory = buildFactory("echo", Limits(), Clock(), "")
    service = LineServerService(
        [Listener("x", FailingEndpoint(), factory, "echo")],
        Clock(),
        1.0,
        abort,
    )
    with pytest.raises(SystemExit):
        service.privilegedStartService()


def test_describe_other_failures() -> None:
    """A failure without a socket error is described by its message or type."""
    assert describeListenFailure("a", Failure(KeyError())) == (
        "Could not listen on a: KeyError"
    )


def test_stop_service_says_goodbye_and_waits() -> None:
    """stopService stops listening, tells each client, and fires once they
    have closed (or the grace period ends)."""
    clock = Clock()
    working = WorkingEndpoint()
    factory = buildFactory("chat", Limits(), clock, "hi")
    service = LineServerService(
        [Listener("x", working, factory, "chat", factory.context.registry)],
        clock,
        2.0,
        lambda message: None,
    )
    service.startService()
    protocol, transport, _ = connectOnStringTransport("chat", factory=factory)
    transport.clear()
    results: list[object] = []
    service.stopService().addBoth(results.append)
    assert working.port.stopped
    assert transport.value() == b"* the server is shutting down; goodbye\r\n"
    assert results == []
    protocol.connectionLost()
    assert results == [None]
    assert clock.getDelayedCalls() == []


def test_startup_abort_reports_through_twistd(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], logged_errors: ErrorCollector
) -> None:
    """Under a daemonising twistd, the failure goes through the status pipe
    (so the launcher exits 1 instead of waiting), the pidfile is removed,
    and the process exits 1 with one line on stderr."""
    read, write = os.pipe()
    pidfile = tmp_path / "twistd.pid"
    pidfile.write_text("123")
    config = {"statusPipe": write, "pidfile": str(pidfile)}
    with pytest.raises(SystemExit) as exited:
        StartupAbort(config)("Could not listen on x: boom")
    assert exited.value.code == 1
    assert os.read(read, 200) == b"1 Could not listen on x: boom"
    os.close(read)
    assert not pidfile.exists()
    assert config["statusPipe"] is None
    assert capfd.readouterr().err == "Could not listen on x: boom\n"
    [logged] = logged_errors.take()
    assert logged["message"] == "Could not listen on x: boom"


def test_startup_abort_removes_the_pidfile_before_reporting(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], logged_errors: ErrorCollector
) -> None:
    """The launching twistd exits as soon as the status pipe speaks, so the
    pidfile is gone by then: a new start right after sees no stale pidfile."""
    read, write = os.pipe()
    pidfile = tmp_path / "twistd.pid"
    pidfile.write_text("123")
    seen: list[bool] = []

    class Config(dict[str, Any]):
        def get(self, key: str, default: Any = None) -> Any:
            if key == "statusPipe":
                seen.append(pidfile.exists())
            return super().get(key, default)

    with pytest.raises(SystemExit):
        StartupAbort(Config(statusPipe=write, pidfile=str(pidfile)))("boom")
    os.close(read)
    assert seen == [False]
    capfd.readouterr()
    logged_errors.take()


def test_each_listener_serves_with_its_own_factory() -> None:
    """Listeners of one service may build different protocols: each endpoint
    is given its own listener's factory, and the log names what it serves."""

    received: dict[str, object] = {}

    @implementer(IStreamServerEndpoint)
    class Recording:
        def __init__(self, name: str) -> None:
            self.name = name

        def listen(self, factory: object) -> Deferred[Any]:
            received[self.name] = factory
            return succeed(Port())

    chat = buildFactory("chat", Limits(), Clock(), "")
    echo = buildFactory("echo", Limits(), Clock(), "")

    service = LineServerService(
        [
            Listener("a", Recording("a"), chat, "chat", chat.context.registry),
            Listener("b", Recording("b"), echo, "web", echo.context.registry),
        ],
        Clock(),
        1.0,
        lambda message: None,
    )
    with capturedLogs() as logged:
        service.startService()
    assert received == {"a": chat, "b": echo}
    assert "sockserve chat server listening on 127.0.0.1:1234" in logged.texts()
    assert "sockserve web server listening on 127.0.0.1:1234" in logged.texts()
    # At shutdown, the clients of every listener are told to close.
    _, chatClient, _ = connectOnStringTransport("chat", factory=chat)
    _, echoClient, _ = connectOnStringTransport("echo", factory=echo)
    chatClient.clear()
    service.stopService()
    assert chatClient.value() == b"* the server is shutting down; goodbye\r\n"
    assert chatClient.disconnecting
    assert echoClient.disconnecting


def test_startup_abort_without_twistd(
    capfd: pytest.CaptureFixture[str], logged_errors: ErrorCollector
) -> None:
    """Under twist, there is no status pipe: just the line and exit 1."""
    with pytest.raises(SystemExit):
        StartupAbort(None)("Could not listen on y: no")
    assert capfd.readouterr().err == "Could not listen on y: no\n"
    assert len(logged_errors.take()) == 1


def test_real_port_in_use_message() -> None:
    """Against a real bound socket, the message has the OS error number."""
    from twisted.internet import reactor
    from twisted.internet.endpoints import serverFromString

    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    try:
        port = busy.getsockname()[1]
        reports: list[str] = []
        factory = buildFactory("echo", Limits(), Clock(), "")
        service = LineServerService(
            [
                Listener(
                    f"127.0.0.1:{port}",
                    serverFromString(reactor, f"tcp:{port}:interface=127.0.0.1"),
                    factory,
                    "echo",
                    factory.context.registry,
                )
            ],
            Clock(),
            1.0,
            reports.append,
        )
        service.privilegedStartService()
        assert reports == [
            f"Could not listen on 127.0.0.1:{port}: [Errno 98] Address already in use"
        ]
    finally:
        busy.close()


def test_plugin_is_discoverable() -> None:
    """twistd finds the plugin, and it names sockserve.tap."""
    from twisted.application.service import IServiceMaker
    from twisted.plugin import getPlugins

    from twisted.plugins import sockserve_plugin

    makers = {p.tapname: p for p in getPlugins(IServiceMaker)}
    assert "sockserve" in makers
    assert sockserve_plugin.sockserve.module == "sockserve.tap"
    assert makers["sockserve"].options is Options


def test_tls_without_pyopenssl_says_which_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without pyOpenSSL, an ssl: port is a one-line usage error that says
    what to install, and so is the client's --tls."""
    import sys

    from sockserve import _endpoints
    from sockserve.client import ClientOptions

    def noOpenSSL(reactor: object, description: str) -> object:
        raise ModuleNotFoundError("No module named 'OpenSSL'")

    monkeypatch.setattr(_endpoints, "serverFromString", noOpenSSL)
    with pytest.raises(usage.UsageError) as raised:
        parse("--port", "ssl:5443:privateKey=k.pem:certKey=c.pem")
    assert "pip install 'sockserve[tls]'" in str(raised.value)
    monkeypatch.setitem(sys.modules, "OpenSSL", None)
    with pytest.raises(usage.UsageError) as raised:
        ClientOptions().parseOptions(["--tls", "localhost", "5443", "hi"])
    assert "pip install 'sockserve[tls]'" in str(raised.value)


def test_rooms_options() -> None:
    """--room names the room everyone arrives in (a leading # ignored);
    --rooms the only rooms there may be (the default room among them, first
    unless named); --max-rooms the most rooms at once. By default: the
    room "default", any room, at most 100."""
    options = parse()
    assert (options["room"], options["rooms"], options["max-rooms"]) == (
        "default",
        None,
        100,
    )
    assert options["fixedRooms"] == ()
    options = parse("--room", "#Lobby", "--rooms", "lab, games", "--max-rooms", "7")
    assert options["room"] == "Lobby"
    assert options["fixedRooms"] == ("Lobby", "lab", "games")
    assert options["max-rooms"] == 7
    assert parse("--room", "lab", "--rooms", "games,#LAB")["fixedRooms"] == (
        "games",
        "LAB",
    )


def test_rooms_named_twice_are_one_room() -> None:
    """Room names compare without case: --rooms naming one room twice (or
    the default room again) lists it once."""
    rooms = parse("--rooms", "lab,Lab,LAB,Default")["fixedRooms"]
    assert sorted(name.lower() for name in rooms) == ["default", "lab"]


def test_make_service_gives_the_chat_its_rooms() -> None:
    """The chat makeService builds follows the room options (and the
    limits every room shares): a client arrives in --room, may join only
    the --rooms, each holding --max-clients."""
    reactor = MemoryReactorClock()
    started = startedChat(
        parse(
            "--room",
            "lobby",
            "--rooms",
            "lab",
            "--max-rooms",
            "5",
            "--max-clients",
            "3",
            "--history",
            "7",
            "-p",
            "0",
        ),
        reactor,
    )
    factory = started.factory
    service = factory.service
    assert service is not None
    rules = service.rules
    assert (rules.default, rules.fixed, rules.maxRooms) == (
        "lobby",
        ("lobby", "lab"),
        5,
    )
    assert (rules.capacity, rules.history) == (3, 7)
    alice, aliceOut, _ = connectOnStringTransport("chat", factory=factory)
    assert aliceOut.value().endswith(
        b"* you are guest1 (127.0.0.1:40000) in #lobby; nobody else here\r\n"
    )
    aliceOut.clear()
    alice.dataReceived(b"/join games\n/join LAB\n")
    assert aliceOut.value() == (
        b"ERROR there is no room #games here; the rooms are #lobby, #lab\r\n"
        b"* you are now in #LAB; nobody else here\r\n"
    )
    alice.connectionLost()
    assert started.stop().called


@pytest.mark.parametrize("maxRooms", [1, 2, 3])
def test_max_rooms_allows_the_rooms_options_name(maxRooms: int) -> None:
    """--rooms is accepted with --max-rooms exactly when the chat then lets
    a member be in every room it names at once: the options and the chat
    count rooms the same way."""
    from tests.test_session import session

    try:
        options = parse("--rooms", "lab,games", "--max-rooms", str(maxRooms))
    except usage.UsageError:
        options = parse("--rooms", "lab,games", "--max-rooms", "3")
        accepted = False
    else:
        accepted = True
    started = startedChat(withMaxRooms(options, maxRooms), MemoryReactorClock())
    assert started.factory.service is not None
    member, connection = session(started.factory.service, multiRoom=True)
    member.linesReceived(b"/join lab\n/join games\n")
    allRooms = sorted(room.name for room in member.rooms) == [
        "default",
        "games",
        "lab",
    ]
    assert allRooms is accepted, connection.take()
    assert started.stop().called


def withMaxRooms(options: Options, maxRooms: int) -> Options:
    """C{options}, with --max-rooms C{maxRooms} whether or not the parser
    would take it."""
    options["max-rooms"] = maxRooms
    return options


class StartedChat:
    """The service makeService built, started on a MemoryReactorClock, and
    the factory of its one chat listener."""

    def __init__(self, options: Options, reactor: MemoryReactorClock) -> None:
        self.service = makeService(options, reactor)
        self.service.privilegedStartService()
        self.service.startService()
        [(_, factory, _, _)] = reactor.tcpServers
        assert isinstance(factory, LineServerFactory)
        self.factory = factory

    def stop(self) -> Deferred[None]:
        return self.service.stopService()  # type: ignore[no-any-return]


def startedChat(options: Options, reactor: MemoryReactorClock) -> StartedChat:
    return StartedChat(options, reactor)


def test_accounts_options(tmp_path: Path) -> None:
    """--accounts is read at start: a mistake is a usage error naming the
    line; the login options need it."""
    bad = tmp_path / "accounts"
    bad.write_text("alice:nohash:\n")
    with pytest.raises(usage.UsageError, match="--accounts: line 1: the hash of alice"):
        parse("--accounts", str(bad))
    with pytest.raises(usage.UsageError, match="--accounts: cannot read"):
        parse("--accounts", str(tmp_path / "missing"))
    with pytest.raises(usage.UsageError, match="--require-login needs --accounts"):
        parse("--require-login")
    with pytest.raises(usage.UsageError, match="--require-tls-for-login needs"):
        parse("--require-tls-for-login")
    bad.write_text("")
    with pytest.raises(usage.UsageError, match="needs --mode chat"):
        parse("--accounts", str(bad), "--mode", "echo")
    options = parse("--accounts", str(bad), "--require-login", "--login-timeout", "5")
    assert options["accountStore"] is not None
    assert "--require-login" in options.workerArguments([5000])


def test_web_session_lifetime_reaches_the_site() -> None:
    """The page's logins last --web-session-lifetime seconds (12 hours
    unless told)."""
    from sockserve.web.site import SessionResource, WebSite

    assert parse()["web-session-lifetime"] == 12 * 3600
    reactor = MemoryReactorClock()
    service = makeService(
        parse("-p", "0", "--web", "0", "--web-session-lifetime", "60"), reactor
    )
    service.privilegedStartService()
    service.startService()
    [site] = [f for _, f, _, _ in reactor.tcpServers if isinstance(f, WebSite)]
    sessions = site.resource.children[b"session"]
    assert isinstance(sessions, SessionResource)
    assert sessions.pageLogins.sessions.lifetime == 60
    assert service.stopService().called


def test_bans_option(tmp_path: Path) -> None:
    """--bans needs --accounts; a file that is not a bans file is a usage
    error, one that does not exist yet is made at the first change."""
    accounts = tmp_path / "accounts"
    accounts.write_text("")
    bans = tmp_path / "bans.json"
    with pytest.raises(usage.UsageError, match="--bans needs --accounts"):
        parse("--bans", str(bans))
    options = parse("--accounts", str(accounts), "--bans", str(bans))
    assert options["bans"] == str(bans)
    assert "--bans" in " ".join(options.workerArguments([5000]))
    bans.write_text("[not json")
    with pytest.raises(usage.UsageError, match="--bans: cannot read the bans file"):
        parse("--accounts", str(accounts), "--bans", str(bans))


def test_a_bans_file_that_could_not_be_written(tmp_path: Path) -> None:
    """--bans in a directory that does not exist is a usage error at start,
    not a log line at each ban while the operator believes the bans are
    kept."""
    accounts = tmp_path / "accounts"
    accounts.write_text("")
    nowhere = tmp_path / "no" / "bans.json"
    with pytest.raises(
        usage.UsageError,
        match=f"--bans: cannot write the bans file {nowhere}: "
        f"the directory {nowhere.parent} does not exist",
    ):
        parse("--accounts", str(accounts), "--bans", str(nowhere))


def test_os_errors_name_their_path_as_text() -> None:
    """An error about a link (the UNIX socket's lock file) names the path
    it concerns as text, not as a bytes repr after the link's target."""
    from sockserve._endpoints import describeOSError

    error = OSError(2, "No such file or directory", "1234", None, b"/x/s.sock.lock")
    assert describeOSError(error) == (
        "[Errno 2] No such file or directory: '/x/s.sock.lock'"
    )
    assert describeOSError(OSError("plain")) == "plain"


def test_unix_socket_problems(tmp_path: Path) -> None:
    """A UNIX socket's directory is tried before twistd detaches."""
    from sockserve._endpoints import bindProblem

    assert bindProblem(f"unix:{tmp_path}/s.sock:backlog=50:mode=660") is None
    assert list(tmp_path.iterdir()) == []
    assert bindProblem(f"unix:{tmp_path}/no/s.sock") == (
        f"[Errno 2] No such file or directory: '{tmp_path}/no'"
    )
    assert bindProblem("unix:/" + "x" * 200) == (
        "the path is longer than a UNIX socket's 107 bytes"
    )

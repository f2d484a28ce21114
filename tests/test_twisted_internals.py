"""
What sockserve takes from Twisted (and txredisapi) without a promise, pinned:
each test here fails if the release installed changes what
L{sockserve._twisted} or L{sockserve.bus._txredisapi} relies on, so that an
upgrade fails here, by name, and not in a server. The last tests check that
no other module of sockserve reaches into their private state.
"""

from __future__ import annotations

import ast
import inspect
import ipaddress
import os
import signal
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor, tcp
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.internet.testing import StringTransport
from twisted.logger import formatEvent
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from twisted.protocols.tls import TLSMemoryBIOProtocol
from twisted.python.failure import Failure
from twisted.python.logfile import LogFile
from twisted.web.http import HTTPChannel
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site

from sockserve import _twisted
from sockserve._endpoints import describeListener, systemdProblem
from sockserve.bus import _txredisapi
from sockserve.bus.address import BusAddress
from tests.support import WAIT, capturedLogs
from tests.test_sending import connectedPair, resume, stallClient

SOCKSERVE = Path(__file__).resolve().parent.parent / "sockserve"


@pytest.fixture(autouse=True)
def _freshWarnings() -> Iterator[None]:
    """Each test sees the warnings of its own: none said already."""
    saved = set(_twisted._warned)
    _twisted._warned.clear()
    try:
        yield
    finally:
        _twisted._warned.clear()
        _twisted._warned.update(saved)


# TCP connections' write buffer (sockserve._sending).


def test_tcp_connections_have_the_state_read() -> None:
    """Twisted's TCP connections have, as class attributes, the buffer and
    the closing states the direct path reads."""
    for kind in (tcp.Server, tcp.Client):
        assert _twisted.readableKind(kind)
        assert kind.dataBuffer == b""
        assert kind.offset == 0
        assert kind.producer is None
        assert kind._writeDisconnecting is False
        assert kind._aborting is False
        assert kind.TLS is False


@pytest_twisted.ensureDeferred
async def test_the_buffer_counts_what_twisted_holds() -> None:
    """A write is held (in C{_tempDataBuffer}, counted by C{_tempDataLen})
    until the reactor sends it; the connection has its socket and its
    reactor; a connection that closes, or aborts, is waiting for Twisted."""
    async with connectedPair() as (server, client):
        transport: Any = server.transport
        assert _twisted.canWriteDirectly(transport)
        assert _twisted.socketOf(transport) is transport.getHandle()
        assert transport.reactor is reactor
        assert _twisted.nothingWaiting(transport)
        assert _twisted.mayCloseAtOnce(transport)
        assert _twisted.heldByTwisted(transport) == 0
        big = stallClient(server, client)
        transport.write(big)
        assert transport._tempDataLen == len(big)
        assert _twisted.heldByTwisted(transport) == len(big)
        assert not _twisted.nothingWaiting(transport)
        resume(client)
        await client.waitFor(lambda received: len(received) == len(big))
        assert _twisted.heldByTwisted(transport) == 0
        assert _twisted.nothingWaiting(transport)
        transport.loseConnection()
        assert transport.disconnecting
        assert not _twisted.nothingWaiting(transport)
    assert _twisted.socketOf(transport) is None
    assert not _twisted.canWriteDirectly(transport)


@pytest_twisted.ensureDeferred
async def test_an_aborted_or_half_closed_connection_is_waiting() -> None:
    """C{abortConnection} sets C{_aborting}, C{loseWriteConnection}
    C{_writeDisconnecting}: either way a write is left to Twisted."""
    async with connectedPair() as (server, _client):
        transport: Any = server.transport
        transport.loseWriteConnection()
        assert transport._writeDisconnecting
        assert not _twisted.nothingWaiting(transport)
    async with connectedPair() as (server, _client):
        transport = server.transport
        transport.abortConnection()
        assert transport._aborting
        assert not _twisted.nothingWaiting(transport)


@pytest_twisted.ensureDeferred
async def test_a_connection_lost_directly_closes_cleanly() -> None:
    """C{connectionLost}, called by sockserve on the next reactor pass after
    the socket's end of stream, closes the socket and tells the protocol,
    once, with the reason given."""
    async with connectedPair() as (server, client):
        transport: Any = server.transport
        reasons: list[Failure] = []
        lost = server.connectionLost

        def record(reason: Failure = connectionDone) -> None:
            reasons.append(reason)
            lost(reason)

        server.connectionLost = record  # type: ignore[method-assign]
        sock = transport.socket
        sock.send(b"bye\n")
        sock.shutdown(socket.SHUT_WR)
        _twisted.closeWritten(transport)
        assert transport.disconnecting
        assert reasons == []
        await server.lost
        await client.waitForClose()
        assert client.received == b"bye\n"
        [reason] = reasons
        assert reason.check(ConnectionDone)
        assert sock.fileno() == -1


def test_a_tcp_connection_without_the_state_is_written_as_usual(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A TCP connection class that lacks some of the state (a Twisted that
    changed) is written to through C{transport.write}, and one line says
    so, once."""

    class Changed(tcp.Server):
        pass

    monkeypatch.setattr(
        _twisted, "_CLASS_STATE", (*_twisted._CLASS_STATE, "_noSuchState")
    )
    try:
        with capturedLogs() as logged:
            assert not _twisted.readableKind(Changed)
            assert not _twisted.readableKind(Changed)
    finally:
        _twisted._KNOWN_KINDS.pop(Changed, None)
    [line] = logged.texts()
    assert "has no _noSuchState" in line
    assert f"checked on Twisted {_twisted.CHECKED_ON}" in line


# Handing an upgraded HTTP connection to a member (sockserve.web.site).


class Member(Protocol):
    """What a WebSocket member sees of the connection."""

    def __init__(self) -> None:
        self.received = b""
        self.lost: list[Failure] = []

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.lost.append(reason)


class Upgrading(Resource):
    """Hands the connection of each request to a new L{Member}."""

    isLeaf = True

    def __init__(self, restOfRead: bool = True) -> None:
        super().__init__()
        self.members: list[Member] = []
        self.requests: list[list[Request]] = []
        self.restOfRead = restOfRead

    def render_GET(self, request: Request) -> int:
        member = Member()
        self.members.append(member)
        channel = request.channel
        self.requests.append(list(channel.requests))
        _twisted.upgradeChannel(channel, member)
        if self.restOfRead:
            _twisted.deliverRestOfRead(channel, member)
        return NOT_DONE_YET


def serve(resource: Resource) -> tuple[HTTPChannel, StringTransport]:
    """A connected HTTP channel of a site serving C{resource}."""
    site = Site(resource)
    # As sockserve's sites do: HTTP/1.1 only, no HTTP/2 negotiation wrapper.
    site.protocol = HTTPChannel  # type: ignore[assignment]
    channel = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 4000))
    assert isinstance(channel, HTTPChannel)
    transport = StringTransport()
    channel.makeConnection(transport)
    return channel, transport


REQUEST = b"GET /ws HTTP/1.1\r\nHost: x\r\n\r\n"


def test_an_upgraded_channel_delivers_to_its_member() -> None:
    """Twisted's private C{_protocolUpgradeForWebsockets} connects the member
    to the transport, and sends it what the channel receives next, and the
    end of the connection."""
    resource = Upgrading()
    channel, transport = serve(resource)
    assert hasattr(HTTPChannel, "_protocolUpgradeForWebsockets")
    channel.dataReceived(REQUEST)
    [member] = resource.members
    assert member.transport is transport
    channel.dataReceived(b"more")
    assert member.received == b"more"
    channel.connectionLost(Failure(ConnectionDone()))
    assert len(member.lost) == 1
    channel.setTimeout(None)


def test_the_rest_of_the_read_goes_to_raw_data_received() -> None:
    """What follows the request in the same read reaches the channel's
    C{rawDataReceived}, not the member: sockserve points it at the member.
    And the channel holds the request in C{requests} while it renders."""
    kept = Upgrading(restOfRead=False)
    channel, _ = serve(kept)
    channel.dataReceived(REQUEST + b"first message")
    assert kept.members[0].received == b""
    assert len(kept.requests[0]) == 1
    assert isinstance(channel.requests, list)
    channel.connectionLost(Failure(ConnectionDone()))
    channel.setTimeout(None)

    handed = Upgrading()
    channel, _ = serve(handed)
    channel.dataReceived(REQUEST + b"first message")
    assert handed.members[0].received == b"first message"
    _twisted.dropRequests(channel)
    assert channel.requests == []
    channel.connectionLost(Failure(ConnectionDone()))
    channel.setTimeout(None)


def test_without_the_private_method_the_same_is_done() -> None:
    """On a Twisted without C{_protocolUpgradeForWebsockets}, sockserve
    hands the connection over itself, and says so once."""

    class Plain(HTTPChannel):
        _protocolUpgradeForWebsockets = None  # type: ignore[assignment]

    site = Site(Upgrading())
    site.protocol = Plain  # type: ignore[assignment]
    channel = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 4000))
    transport = StringTransport()
    channel.makeConnection(transport)
    with capturedLogs() as logged:
        channel.dataReceived(REQUEST + b"first")
    [member] = site.resource.members
    assert member.transport is transport
    assert member.received == b"first"
    channel.dataReceived(b" second")
    assert member.received == b"first second"
    [line] = logged.texts()
    assert "no _protocolUpgradeForWebsockets" in line
    channel.connectionLost(Failure(ConnectionDone()))
    channel.setTimeout(None)


@pytest_twisted.ensureDeferred
async def test_a_tcp_connection_delivers_to_its_protocol_attribute() -> None:
    """A TCP connection hands what it reads to its C{protocol} attribute,
    read anew for each read: pointing it at another protocol redirects the
    connection."""
    async with connectedPair() as (server, client):
        transport: Any = server.transport
        assert transport.protocol is server

        arrived: Deferred[bytes] = Deferred()

        class Other(Protocol):
            def dataReceived(self, data: bytes) -> None:
                arrived.callback(data)

            def connectionLost(self, reason: Failure = connectionDone) -> None:
                server.connectionLost(reason)

        other = Other()
        channel: Any = server
        assert _twisted.pointTransportAt(channel, other)
        delivering: Any = transport.protocol
        assert delivering is other
        assert client.transport is not None
        client.transport.write(b"to the other")
        assert await arrived.addTimeout(WAIT, reactor) == b"to the other"


def test_protocol_wrappers_deliver_to_their_wrapped_protocol() -> None:
    """A protocol wrapper (TLS's is one) hands what it reads to its
    C{wrappedProtocol} attribute."""
    assert issubclass(TLSMemoryBIOProtocol, ProtocolWrapper)
    first, second = Member(), Member()
    wrapper = ProtocolWrapper(WrappingFactory(Factory()), first)
    wrapper.makeConnection(StringTransport())
    channel: Any = first
    channel.transport = wrapper
    assert _twisted.pointTransportAt(channel, second)
    wrapper.dataReceived(b"hello")
    assert (first.received, second.received) == (b"", b"hello")
    assert not _twisted.pointTransportAt(channel, second)


def test_all_headers_received_is_called_once_the_headers_are_in() -> None:
    """An HTTP channel calls C{allHeadersReceived} once per request, as the
    blank line ending its headers comes in, before the request is
    rendered."""
    events: list[str] = []

    class Channel(_twisted.HeadersChannel):
        def headersReceived(self) -> None:
            events.append("headers")

    class Rendering(Resource):
        isLeaf = True

        def render_GET(self, request: Request) -> bytes:
            events.append("render")
            return b"ok"

    assert _twisted.HEADERS_HOOK
    site = Site(Rendering())
    site.protocol = Channel  # type: ignore[assignment]
    channel = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 4000))
    channel.makeConnection(StringTransport())
    for index in range(len(REQUEST) - 1):
        channel.dataReceived(REQUEST[index : index + 1])
    assert events == []
    channel.dataReceived(REQUEST[-1:])
    assert events == ["headers", "render"]
    channel.dataReceived(REQUEST)
    assert events == ["headers", "render"] * 2
    channel.connectionLost(Failure(ConnectionDone()))
    channel.setTimeout(None)


# The PROXY protocol (sockserve._proxy).


class Recorder(Protocol):
    """Records what follows the PROXY header."""

    def __init__(self) -> None:
        self.received = b""

    def dataReceived(self, data: bytes) -> None:
        self.received += data


def proxyWrapper() -> tuple[Any, Recorder, StringTransport]:
    """Twisted's PROXY wrapper around a L{Recorder}, on a transport."""
    factory = _twisted.HAProxyWrappingFactory(Factory.forProtocol(Recorder))
    wrapper = factory.buildProtocol(IPv4Address("TCP", "10.0.0.1", 5000))
    transport = StringTransport(peerAddress=IPv4Address("TCP", "10.0.0.1", 5000))
    wrapper.makeConnection(transport)
    recorder = wrapper.wrappedProtocol
    assert isinstance(recorder, Recorder)
    return wrapper, recorder, transport


def test_the_proxy_wrapper_keeps_the_header_it_parsed() -> None:
    """Twisted's private C{HAProxyProtocolWrapper} parses a v1 header that
    comes in pieces into C{_proxyInfo} (the client's address as its
    C{source}), which C{getPeer} then gives; what follows goes to the
    wrapped protocol."""
    assert _twisted.PROXY_PROTOCOL_MISSING is None
    assert _twisted.proxyProtocolProblem() is None
    assert set(inspect.signature(_twisted.HAProxyProtocolWrapper).parameters) == {
        "factory",
        "wrappedProtocol",
    }
    wrapper, recorder, _ = proxyWrapper()
    wrapper.dataReceived(b"PROXY TCP4 192.0.2.7 198.51.100.1 4321 ")
    assert _twisted.proxyHeader(wrapper) is None
    wrapper.dataReceived(b"80\r\nhello")
    header = _twisted.proxyHeader(wrapper)
    assert header is not None
    assert header.source == IPv4Address("TCP", "192.0.2.7", 4321)
    assert wrapper.getPeer() == header.source
    assert recorder.received == b"hello"
    _twisted.forgetProxyHeader(wrapper)
    assert wrapper.getPeer() == IPv4Address("TCP", "10.0.0.1", 5000)


def test_the_proxy_wrapper_parses_v2_and_refuses_garbage() -> None:
    """A v2 (binary) header is parsed the same way; a connection that does
    not start with a header is closed."""
    wrapper, recorder, _ = proxyWrapper()
    header = (
        b"\r\n\r\n\x00\r\nQUIT\n"
        + b"\x21\x21"
        + (36).to_bytes(2, "big")
        + socket.inet_pton(socket.AF_INET6, "2001:db8::7")
        + socket.inet_pton(socket.AF_INET6, "2001:db8::1")
        + (4321).to_bytes(2, "big")
        + (80).to_bytes(2, "big")
    )
    wrapper.dataReceived(header + b"hi")
    info = _twisted.proxyHeader(wrapper)
    assert info is not None
    assert isinstance(info.source, IPv6Address)
    assert ipaddress.ip_address(info.source.host) == ipaddress.ip_address("2001:db8::7")
    assert info.source.port == 4321
    assert recorder.received == b"hi"
    wrapper, recorder, transport = proxyWrapper()
    wrapper.dataReceived(b"GET / HTTP/1.1\r\n")
    assert transport.disconnecting
    assert _twisted.proxyHeader(wrapper) is None


def test_the_proxy_wrapper_closes_through_its_own_lose_connection() -> None:
    """On a bad header, Twisted's wrapper calls its own C{loseConnection}
    (which sockserve's wrapper overrides to know why it closes)."""
    closed: list[bool] = []

    class Closing(_twisted.HAProxyProtocolWrapper):
        def loseConnection(self) -> None:
            closed.append(True)
            super().loseConnection()

    factory: Any = _twisted.HAProxyWrappingFactory(Factory.forProtocol(Recorder))
    wrapper = Closing(factory, Recorder())
    wrapper.makeConnection(StringTransport())
    wrapper.dataReceived(b"PROXY TCP4 not-an-address\r\n")
    assert closed == [True]


def test_without_the_proxy_wrapper_haproxy_ports_are_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On a Twisted without the private PROXY wrapper, a C{haproxy:} port is
    refused at start-up, in one line."""
    monkeypatch.setattr(
        _twisted, "PROXY_PROTOCOL_MISSING", "twisted.protocols.haproxy._wrapper"
    )
    with pytest.raises(ValueError, match="PROXY protocol") as refused:
        describeListener("haproxy:tcp:0", "127.0.0.1", 50)
    assert "\n" not in str(refused.value)
    assert _twisted.CHECKED_ON in str(refused.value)


# The sockets systemd passed (sockserve._endpoints).


def test_twisted_reads_systemd_sockets_when_endpoints_is_imported() -> None:
    """Twisted reads LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES into
    C{_SystemdParser._sddaemon} when L{twisted.internet.endpoints} is
    imported, and removes the first two from the environment: only that
    attribute tells what was passed."""
    program = (
        "import os, sys\n"
        "os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS='1', "
        "LISTEN_FDNAMES='chat')\n"
        "from sockserve._twisted import systemdSockets\n"
        "passed = systemdSockets()\n"
        "print(dict(passed.inheritedNamedDescriptors()))\n"
        "print('LISTEN_FDS' in os.environ, 'LISTEN_PID' in os.environ)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", program],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert result.stdout.splitlines() == ["{'chat': 3}", "False False"]


def test_without_the_parser_systemd_ports_are_left_to_twisted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On a Twisted whose systemd parser keeps the sockets elsewhere, the
    sockets are not known, nothing is refused in advance, and one line
    says so."""
    from twisted.internet import endpoints

    monkeypatch.delattr(endpoints._SystemdParser, "_sddaemon")
    with capturedLogs() as logged:
        assert _twisted.systemdSockets() is None
        assert _twisted.systemdSockets() is None
    assert systemdProblem("systemd:domain=INET:index=0", None) is None
    [line] = logged.texts()
    assert "systemd" in line
    assert _twisted.CHECKED_ON in line


# twistd's log file (sockserve._signals).


@pytest.fixture
def sigusr1() -> Iterator[None]:
    """Put SIGUSR1's handler back as it was."""
    previous = signal.getsignal(signal.SIGUSR1)
    try:
        yield
    finally:
        signal.signal(signal.SIGUSR1, previous)


@pytest.mark.usefixtures("sigusr1")
def test_twistd_keeps_its_log_file_in_its_sigusr1_handler(tmp_path: Path) -> None:
    """twistd, logging to a file, installs a SIGUSR1 handler that closes over
    the file: sockserve finds it there."""
    from twisted.scripts._twistd_unix import UnixAppLogger

    signal.signal(signal.SIGUSR1, signal.SIG_DFL)
    path = tmp_path / "twistd.log"
    UnixAppLogger({"logfile": str(path), "nodaemon": False})._getLogObserver()
    found = _twisted.twistdTextLogFile()
    try:
        assert isinstance(found, LogFile)
        assert found.path == str(path)
    finally:
        if found is not None:
            found.close()


@pytest.mark.usefixtures("sigusr1")
def test_a_twisted_handler_without_the_file_is_told(tmp_path: Path) -> None:
    """A SIGUSR1 handler of Twisted's that holds no log file (a Twisted that
    keeps it elsewhere): SIGHUP cannot reopen it, and one line says so."""

    def rotate(number: int, frame: object) -> None:
        pass

    rotate.__module__ = "twisted.scripts._twistd_unix"
    signal.signal(signal.SIGUSR1, rotate)
    with capturedLogs() as logged:
        assert _twisted.twistdTextLogFile() is None
    [line] = logged.texts()
    assert "SIGHUP does not reopen it" in line
    signal.signal(signal.SIGUSR1, signal.SIG_DFL)
    with capturedLogs() as logged:
        assert _twisted.twistdTextLogFile() is None
    assert logged.texts() == []


def test_a_log_file_keeps_its_file_and_its_mode(tmp_path: Path) -> None:
    """A log file's open file is in C{_file}, whose mode sockserve reads; a
    file it makes anew, on rotation or on reopening once the old one was
    moved away, gets the mode in C{defaultMode}, read then."""
    path = tmp_path / "twistd.log"
    path.touch(mode=0o640)
    path.chmod(0o640)
    logFile = LogFile.fromFullPath(str(path), defaultMode=None)
    try:
        logFile.defaultMode = None
        assert _twisted.openFileMode(logFile) == 0o640
        _twisted.keepModeOnRotation(logFile)
        assert logFile.defaultMode == 0o640
        logFile.write("one\n")
        logFile.rotate()
        assert (tmp_path / "twistd.log.1").exists()
        assert stat.S_IMODE(path.stat().st_mode) == 0o640
        # A rotation tool moves the file away, then SIGHUP.
        path.rename(tmp_path / "moved.log")
        logFile.defaultMode = None
        _twisted.reopenKeepingMode(logFile)
        assert stat.S_IMODE(path.stat().st_mode) == 0o640
        # One made by the tool keeps its own mode.
        path.rename(tmp_path / "moved-again.log")
        path.touch(mode=0o600)
        path.chmod(0o600)
        _twisted.reopenKeepingMode(logFile)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert _twisted.openFileMode(logFile) == 0o600
    finally:
        logFile.close()


def test_a_log_file_without_its_file_is_told(tmp_path: Path) -> None:
    """A log file that keeps its file elsewhere (a Twisted that changed):
    the mode is not known, and one line says so; a closed one says
    nothing."""

    class Changed(LogFile):
        def _openFile(self) -> None:
            LogFile._openFile(self)
            self.hidden = self.__dict__.pop("_file")

        def close(self) -> None:
            self.hidden.close()

    logFile = Changed.fromFullPath(str(tmp_path / "twistd.log"))
    with capturedLogs() as logged:
        assert _twisted.openFileMode(logFile) is None
        assert _twisted.openFileMode(logFile) is None
    logFile.close()
    [line] = logged.texts()
    assert "_file" in line
    closed = LogFile.fromFullPath(str(tmp_path / "other.log"))
    closed.close()
    _twisted._warned.clear()
    with capturedLogs() as logged:
        assert _twisted.openFileMode(closed) is None
    assert logged.texts() == []


# twistd's start-up report (sockserve.service.StartupAbort, BusStartup).


def test_twistd_reports_through_its_status_pipe(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """twistd's options name the pidfile under C{pidfile}; a daemon's
    launcher reads C{"1 message"} from the status pipe as a failure (and
    says the message) and C{"0"} as a start; twistd itself removes the
    pidfile and writes the pipe, under C{statusPipe}, when starting fails."""
    from twisted.scripts._twistd_unix import ServerOptions, UnixApplicationRunner

    options = ServerOptions()
    assert options["pidfile"] == "twistd.pid"
    runner = UnixApplicationRunner(options)
    for message, status in ((b"1 no port", 1), (b"0", 0)):
        read, write = os.pipe()
        os.write(write, message)
        os.close(write)
        try:
            assert runner._waitForStart(read) == status
        finally:
            os.close(read)
    assert "no port" in capfd.readouterr().err

    pidfile = tmp_path / "twistd.pid"
    pidfile.write_text("1")
    read, write = os.pipe()
    runner.config = {"statusPipe": write, "pidfile": str(pidfile)}

    def failing(application: object) -> None:
        raise RuntimeError("boom")

    runner.application = None
    runner.startApplication = failing  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        runner.postApplication()
    try:
        assert os.read(read, 100).startswith(b"1 ")
    finally:
        os.close(read)
    assert not pidfile.exists()


def test_reporting_a_failed_start(tmp_path: Path) -> None:
    """sockserve removes the pidfile, then writes the message, once."""
    read, write = os.pipe()
    pidfile = tmp_path / "twistd.pid"
    pidfile.write_text("1")
    config: dict[str, Any] = {"statusPipe": write, "pidfile": str(pidfile)}
    _twisted.reportFailedStart(config, "Could not listen on 1: no")
    assert os.read(read, 200) == b"1 Could not listen on 1: no"
    os.close(read)
    assert not pidfile.exists()
    assert config["statusPipe"] is None
    _twisted.reportFailedStart(config, "again")
    _twisted.reportFailedStart(None, "not under twistd")


def test_twistd_says_started_only_with_its_pipe(tmp_path: Path) -> None:
    """twistd tells its launcher the daemon started (C{"0"}) once the
    application started, through the pipe in its options: taken from them,
    it says nothing, and sockserve says it later, or gives the pipe back to
    report a failure."""
    from twisted.scripts._twistd_unix import UnixApplicationRunner

    read, write = os.pipe()
    config: dict[str, Any] = {"statusPipe": write, "pidfile": ""}
    taken = _twisted.takeStatusPipe(config)
    assert (taken, config["statusPipe"]) == (write, None)
    runner = UnixApplicationRunner(config)
    runner.application = None
    runner.startApplication = lambda application: None  # type: ignore[method-assign]
    runner.startReactor = lambda *arguments: None  # type: ignore[method-assign]
    runner.oldstdout = runner.oldstderr = None
    runner.postApplication()
    _twisted.reportStarted(taken)
    try:
        assert os.read(read, 100) == b"0"
    finally:
        os.close(read)
    assert _twisted.takeStatusPipe(None) is None
    assert _twisted.takeStatusPipe({"statusPipe": None}) is None
    _twisted.reportStarted(None)
    back: dict[str, Any] = {"statusPipe": None}
    _twisted.giveBackStatusPipe(back, 7)
    assert back == {"statusPipe": 7}
    _twisted.giveBackStatusPipe(None, 7)


# txredisapi (sockserve.bus.redis).


def connectRedis(password: str | None = None) -> tuple[Any, StringTransport, Any]:
    """A txredisapi protocol built by the bus's factory, connected to a
    transport."""
    factory = _txredisapi.ConnectionFactory(
        BusAddress("redis", "127.0.0.1", password=password), replyTimeout=5.0
    )
    protocol = factory.buildProtocol(None)
    assert protocol.factory is factory
    transport = StringTransport()
    protocol.makeConnection(transport)
    return protocol, transport, factory


def test_txredisapi_protocol_leaves_replies_as_they_are() -> None:
    """The protocol is ready once connected, sends a command as Redis reads
    it, hands a reply as bytes without converting numbers, and says when
    the connection is gone."""
    protocol, transport, _ = connectRedis()
    ready: list[Any] = []
    protocol.whenConnected().addCallback(ready.append)
    assert ready == [protocol]
    replies: list[Any] = []
    protocol.execute_command("GET", "key").addCallback(replies.append)
    assert transport.value() == b"*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n"
    protocol.dataReceived(b"$3\r\n007\r\n")
    assert replies == [b"007"]
    gone: list[Any] = []
    protocol.whenDisconnected().addCallback(gone.append)
    protocol.connectionLost(Failure(ConnectionDone()))
    assert gone == [protocol]


def test_txredisapi_tells_its_factory_why_it_was_refused() -> None:
    """When AUTH fails, txredisapi's protocol asks its factory to stop
    trying, tells it why (C{connectionError}), reads C{isLazy}, and
    closes."""
    protocol, transport, factory = connectRedis(password="wrong")
    assert transport.value() == b"*2\r\n$4\r\nAUTH\r\n$5\r\nwrong\r\n"
    protocol.dataReceived(b"-WRONGPASS invalid username-password pair\r\n")
    assert factory.failure is not None
    assert "could not auth" in factory.failure
    assert "WRONGPASS" in factory.failure
    assert transport.disconnecting
    protocol.connectionLost(Failure(ConnectionDone()))


def test_a_changed_txredisapi_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    """A txredisapi whose protocol takes other arguments fails each attempt
    with a line that says so."""
    import txredisapi  # type: ignore[import-untyped]

    class Changed:
        def __init__(self, charset: str) -> None:
            pass

    monkeypatch.setattr(txredisapi, "RedisProtocol", Changed)
    with pytest.raises(_txredisapi.TxRedisAPIChanged) as changed:
        connectRedis()
    assert _txredisapi.CHECKED_ON in str(changed.value)
    monkeypatch.delattr(txredisapi, "RedisProtocol")
    with pytest.raises(_txredisapi.TxRedisAPIChanged, match="no RedisProtocol"):
        connectRedis()


# Nobody else reaches in.

# The modules allowed to use private state, and whose.
ALLOWED = {"_twisted.py": "twisted", "bus/_txredisapi.py": "txredisapi"}
# Names spelt as private that are public: the standard library's os._exit.
PUBLIC = {"_exit"}
# Undocumented names that are not private by their spelling.
UNDOCUMENTED = {
    "__closure__",
    "dataBuffer",
    "rawDataReceived",
    "allHeadersReceived",
    "statusPipe",
}


def _modules() -> dict[str, ast.Module]:
    return {
        path.relative_to(SOCKSERVE).as_posix(): ast.parse(path.read_text("utf-8"))
        for path in sorted(SOCKSERVE.rglob("*.py"))
    }


def _ownPrivateNames(modules: dict[str, ast.Module]) -> set[str]:
    """The private names sockserve defines itself: its own to use."""
    names: set[str] = set()
    for tree in modules.values():
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                names.add(node.attr)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                names.add(node.target.id)
            elif isinstance(node, ast.alias) and node.asname:
                names.add(node.asname)
    return {name for name in names if name.startswith("_")}


def _heldPrivately(modules: dict[str, ast.Module]) -> set[str]:
    """The private names the allowed modules use and do not define: the
    private state of Twisted's (and txredisapi's) that sockserve relies on,
    which no other module may name, even to set it."""
    used: set[str] = set()
    for name in ALLOWED:
        for node in ast.walk(modules[name]):
            if isinstance(node, ast.Attribute):
                used.add(node.attr)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                used.add(node.value)
            elif isinstance(node, ast.alias):
                used.add(node.name)
    # Their own functions, classes and variables; not the attributes they
    # set on Twisted's objects.
    defined = {
        node.name if isinstance(node, ast.FunctionDef | ast.ClassDef) else node.id
        for name in ALLOWED
        for node in ast.walk(modules[name])
        if isinstance(node, ast.FunctionDef | ast.ClassDef)
        or (isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store))
    }
    return {
        name
        for name in used - defined
        if name.startswith("_") and name[1:2].isalpha() and name.isidentifier()
    }


def _reachesIn(tree: ast.Module, own: set[str], held: set[str]) -> list[str]:
    """What C{tree} uses of another package's private state."""
    found = []
    for node in ast.walk(tree):
        where = f"line {getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.ImportFrom) and node.module:
            parts = node.module.split(".")
            if parts[0] == "txredisapi":
                found.append(f"{where}: imports txredisapi")
            if parts[0] == "twisted" and (
                any(part.startswith("_") for part in parts)
                or any(alias.name.startswith("_") for alias in node.names)
            ):
                found.append(f"{where}: imports from {node.module}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "txredisapi" or any(
                    part.startswith("_") and alias.name.startswith("twisted")
                    for part in alias.name.split(".")
                ):
                    found.append(f"{where}: imports {alias.name}")
        elif isinstance(node, ast.Attribute):
            name = node.attr
            if (
                name in UNDOCUMENTED
                or name in held
                or (
                    name.startswith("_")
                    and not name.startswith("__")
                    and name not in own
                )
            ):
                found.append(f"{where}: .{name}")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            value = node.value
            if (
                value in UNDOCUMENTED
                or value in held
                or (
                    value.startswith("_")
                    and value[1:2].isalpha()
                    and value.isidentifier()
                    and value not in own
                )
            ):
                found.append(f"{where}: {value!r}")
    return found


def test_only_the_named_modules_reach_into_private_state() -> None:
    """No module of sockserve but L{sockserve._twisted} (Twisted's) and
    L{sockserve.bus._txredisapi} (txredisapi's) imports a private module or
    name of Twisted, imports txredisapi, or uses a private attribute that
    sockserve does not define itself, or one of the undocumented ones
    L{sockserve._twisted} holds."""
    modules = _modules()
    own = PUBLIC | _ownPrivateNames(
        {name: tree for name, tree in modules.items() if name not in ALLOWED}
    )
    held = _heldPrivately(modules)
    assert {"_tempDataLen", "_proxyInfo", "_sddaemon"} <= held
    offences = {
        name: found
        for name, tree in modules.items()
        if name not in ALLOWED and (found := _reachesIn(tree, own, held))
    }
    assert offences == {}
    # And the check finds what it looks for.
    for name in ALLOWED:
        assert _reachesIn(modules[name], own, held)
    for code in (
        "connection._tempDataLen",
        "self._proxyInfo = None",
        "channel.rawDataReceived = f",
        "getattr(parser, '_sddaemon')",
        "from twisted.internet.endpoints import _X",
        "from twisted.protocols.haproxy._wrapper import X",
        "import txredisapi",
    ):
        assert _reachesIn(ast.parse(code), own, held), code


def test_the_log_lines_name_the_release_checked() -> None:
    """Every line that says a piece of Twisted is missing names the release
    sockserve was checked on."""
    with capturedLogs() as logged:
        _twisted._warnOnce("test", "missing (checked on {checked})")
        _twisted._warnOnce("test", "missing (checked on {checked})")
    assert [formatEvent(event) for event in logged.events] == [
        f"missing (checked on {_twisted.CHECKED_ON})"
    ]

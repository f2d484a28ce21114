"""
--metrics: the statistics object, its collector, and a real scrape.
"""

from __future__ import annotations

import select
import socket
import time
import urllib.error
import urllib.request

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransportWithDisconnection
from twisted.python.failure import Failure

from sockserve._connections import ConnectionRegistry
from sockserve._loglimit import WINDOW, LogLimiter
from sockserve.limits import Limits
from sockserve.metrics import (
    METRICS_CONNECTIONS,
    METRICS_IDLE_TIMEOUT,
    METRICS_LIFETIME,
    StatisticsCollector,
    metricsSite,
)
from sockserve.stats import ServerStatistics
from sockserve.tap import RESERVED_FILES
from tests.processes import (
    Processes,
    TcpMember,
    installedProgram,
    receiveText,
    receiveToEOF,
    systemProgram,
)
from tests.support import capturedLogs, connectOnStringTransport

Sample = tuple[str, tuple[tuple[str, str], ...]]


def scrape(collector: StatisticsCollector) -> dict[Sample, float]:
    registry = CollectorRegistry()
    registry.register(collector)
    samples: dict[Sample, float] = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def test_counters_reach_the_collector() -> None:
    """What the protocols count is what a scrape reads: connections,
    refusals by reason, lines and bytes, chat deliveries, members (the
    people of the chat, whatever room they are in) and rooms."""
    first, firstOut, factory = connectOnStringTransport("chat", Limits(maxClients=2))
    second, _, _ = connectOnStringTransport("chat", factory=factory)
    connectOnStringTransport("chat", factory=factory)  # the room is full
    first.dataReceived(b"hello\nworld\n")
    second.dataReceived(b"/join lab\n")
    service = factory.service
    assert service is not None
    collector = StatisticsCollector(
        "chat",
        factory.context.stats,
        factory.context.registry,
        lambda: service.people.population,
        lambda: len(service.localRooms()),
    )
    samples = scrape(collector)
    mode = (("mode", "chat"),)
    assert samples[("sockserve_connections_accepted_total", mode)] == 3
    assert samples[("sockserve_connections_open", mode)] == 3
    assert (
        samples[("sockserve_connections_refused_total", (*mode, ("reason", "full")))]
        == 1
    )
    assert (
        samples[("sockserve_connections_refused_total", (*mode, ("reason", "idle")))]
        == 0
    )
    assert samples[("sockserve_lines_received_total", mode)] == 3
    assert samples[("sockserve_bytes_received_total", mode)] == 22
    assert samples[("sockserve_chat_deliveries_total", mode)] == 2
    assert samples[("sockserve_chat_members", mode)] == 2
    assert samples[("sockserve_chat_rooms", mode)] == 2
    assert samples[("sockserve_bytes_sent_total", mode)] > 0
    del second, firstOut


class MetricsClients:
    """Clients of a metrics site on StringTransports, timed by a Clock."""

    def __init__(self) -> None:
        self.clock = Clock()
        collector = StatisticsCollector(
            "echo", ServerStatistics(), ConnectionRegistry()
        )
        self.site = metricsSite(
            collector, lambda: True, self.clock, LogLimiter(self.clock, perWindow=1)
        )
        self.site.doStart()
        self.ports = iter(range(40000, 41000))

    def connect(self) -> StringTransportWithDisconnection | None:
        """Connect a client; return its transport, or None if refused."""
        address = IPv4Address("TCP", "127.0.0.1", next(self.ports))
        channel = self.site.buildProtocol(address)
        if channel is None:
            return None
        transport = StringTransportWithDisconnection(peerAddress=address)
        transport.protocol = channel
        channel.makeConnection(transport)
        return transport


def test_metrics_connections_are_bounded_in_number() -> None:
    """The metrics site holds at most METRICS_CONNECTIONS connections; one
    more is refused, and refusals are logged at the bounded rate; a place
    frees when a connection goes."""
    clients = MetricsClients()
    held = [clients.connect() for _ in range(METRICS_CONNECTIONS)]
    assert None not in held
    with capturedLogs() as logged:
        assert clients.connect() is None
        assert clients.connect() is None
        transport = held[0]
        assert transport is not None
        transport.loseConnection()
        assert clients.connect() is not None
        assert clients.connect() is None
        clients.clock.advance(WINDOW)
    assert logged.texts() == [
        "Refused a metrics connection from 127.0.0.1:40016: 16 are open",
        "2 more metrics refusals not logged in 10 s; the first of them: "
        "Refused a metrics connection from 127.0.0.1:40017: 16 are open",
    ]


def test_metrics_connections_are_short_lived() -> None:
    """A metrics connection is closed after METRICS_IDLE_TIMEOUT seconds
    idle, and one that trickles bytes to stay busy after METRICS_LIFETIME
    seconds in all; neither is logged."""
    clients = MetricsClients()
    with capturedLogs() as logged:
        idle = clients.connect()
        trickling = clients.connect()
        assert idle is not None
        assert trickling is not None
        for _ in range(int(METRICS_LIFETIME / METRICS_IDLE_TIMEOUT) * 2):
            clients.clock.advance(METRICS_IDLE_TIMEOUT / 2)
            if trickling.connected:
                trickling.protocol.dataReceived(b"G")
            if clients.clock.seconds() < METRICS_IDLE_TIMEOUT:
                assert idle.connected
        assert not idle.connected
        assert not trickling.connected
        assert clients.clock.seconds() >= METRICS_LIFETIME
    assert logged.texts() == []
    assert clients.site.channels == {}


def test_scrapes_are_answered_without_a_log_line() -> None:
    """A scrape is answered, and nothing is logged for it."""
    clients = MetricsClients()
    transport = clients.connect()
    assert transport is not None
    answers = []
    with capturedLogs() as logged:
        for path in (b"/metrics", b"/healthz"):
            transport.clear()
            transport.protocol.dataReceived(
                b"GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % path
            )
            answers.append(transport.value())
    assert answers[0].startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"sockserve_connections_open" in answers[0]
    assert answers[1].startswith(b"HTTP/1.1 200 OK\r\n")
    assert answers[1].endswith(b"\r\n\r\nok\n")
    assert logged.texts() == []
    transport.loseConnection()


def test_the_metrics_connections_fit_in_the_reserve() -> None:
    """The descriptors kept below the open-file limit, beside
    --max-connections, hold the metrics connections with room to spare
    (for listening sockets, log files and workers' pipes)."""
    assert METRICS_CONNECTIONS <= RESERVED_FILES // 4


def fetch(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return (
                response.status,
                response.headers["Content-Type"],
                response.read().decode(),
            )
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read().decode()


@pytest.mark.e2e
def test_a_real_scrape(processes: Processes) -> None:
    """twistd sockserve --metrics 0 serves /metrics in the Prometheus text
    format on loopback, with the server's counters and the process's own
    metrics, and /healthz; anything else is 404."""
    server = processes.server("--metrics", "0", mode="echo")
    log = server.output.waitForText(b"sockserve metrics server listening on")
    [(_, address)] = [
        entry
        for entry in __import__("tests.processes").processes.listeningAddresses(log)
        if entry[0] == "metrics"
    ]
    assert address.startswith("127.0.0.1:")
    sock = processes.connect(("127.0.0.1", server.port))
    sock.sendall(b"a\nb\n")
    receiveText(sock, b"OK .. b\n")
    busy = processes.connect(("127.0.0.1", server.port))
    busy.sendall(b"x" * 70000)
    receiveToEOF(busy)
    status, contentType, text = fetch(f"http://{address}/metrics")
    assert status == 200
    assert contentType.startswith("text/plain")
    assert 'sockserve_connections_open{mode="echo"} 1.0' in text
    assert 'sockserve_lines_received_total{mode="echo"} 2.0' in text
    assert (
        'sockserve_connections_refused_total{mode="echo",reason="line_too_long"} 1.0'
        in text
    )
    assert "process_resident_memory_bytes" in text
    assert fetch(f"http://{address}/healthz")[:1] == (200,)
    assert fetch(f"http://{address}/nothing")[0] == 404


@pytest.mark.e2e
def test_a_client_held_by_the_command_rate(processes: Processes) -> None:
    """A chat client that sends 30 commands at once (the burst is 20, then
    2 a second) is told once that its input is held and why, and /metrics
    counts it as held while it waits; every command is still answered."""
    server = processes.server("--metrics", "0", listeners=2)
    member = TcpMember(processes, server)
    member.send(b"/who\n" * 30)
    before = member.linesUntil(lambda line: line.startswith("* your input is held"))
    told = before[-1]
    assert told == (
        "* your input is held: commands beyond 20 at once run at 2 a second; "
        "the rest wait their turn"
    )
    _, _, text = fetch(f"http://127.0.0.1:{server.portOf('metrics')}/metrics")
    assert 'sockserve_chat_input_held{mode="chat"} 1.0' in text, text
    assert (
        'sockserve_chat_input_holds_total{limit="commands",mode="chat"} 1.0' in text
    ), text
    answers = sum(line.startswith("* 1 here") for line in before)
    rest = [member.line(10) for _ in range(30 - answers)]
    assert all(line.startswith("* 1 here") for line in rest), rest


def test_healthz_tells_ok_degraded_and_not_listening() -> None:
    """/healthz: 200 ok; 200 degraded with the reason while something the
    server needs is wrong; 503 while it does not listen."""
    from twisted.web.test.requesthelper import DummyRequest

    from sockserve.metrics import HealthResource

    listening = [True]
    problems: list[str | None] = [None]
    resource = HealthResource(lambda: listening[0], lambda: problems[0])

    def get() -> tuple[int, bytes]:
        request = DummyRequest([b""])
        body = resource.render_GET(request)  # type: ignore[arg-type]
        return request.responseCode or 200, body

    assert get() == (200, b"ok\n")
    problems[0] = "Redis is out of memory: lines to the other servers wait"
    assert get() == (
        200,
        b"degraded: Redis is out of memory: lines to the other servers wait\n",
    )
    listening[0] = False
    assert get() == (503, b"not listening\n")


@pytest.mark.e2e
def test_scrapes_are_not_logged(processes: Processes) -> None:
    """Scraping /metrics (and asking /healthz) writes nothing to the log: a
    scrape a second would otherwise be a log line a second, and a flood of
    them megabytes."""
    server = processes.server("--metrics", "0", mode="echo", listeners=2)
    server.output.follow()
    address = f"127.0.0.1:{server.portOf('metrics')}"
    before = server.output.drain()
    for _ in range(20):
        assert fetch(f"http://{address}/metrics")[0] == 200
        assert fetch(f"http://{address}/healthz")[0] == 200
    server.stop()
    log = server.output.drain()[len(before) :].decode()
    assert "GET /" not in log, log
    assert "HTTP/1.1" not in log, log


def closedByServer(socks: list[socket.socket], timeout: float) -> int:
    """
    Wait, at most C{timeout} seconds, for the server to close every socket
    of C{socks} (they sent nothing); return how many it closed.
    """
    deadline = time.monotonic() + timeout
    waiting = {sock.fileno(): sock for sock in socks}
    closed = 0
    while waiting and time.monotonic() < deadline:
        ready, _, _ = select.select(
            list(waiting), [], [], max(0.0, deadline - time.monotonic())
        )
        for fd in ready:
            sock = waiting.pop(fd)
            try:
                data = sock.recv(1024)
            except ConnectionResetError:
                data = b""
            assert data == b"", data
            closed += 1
    return closed


@pytest.mark.e2e
def test_metrics_connections_are_bounded(processes: Processes) -> None:
    """Under a small open-file limit, a flood of idle connections to the
    metrics port takes no descriptor the server's clients need: at most 16
    are held (the rest are closed at once, and logged at a bounded rate),
    inside the reserve kept below the limit, so that every chat client up
    to --max-connections is served and the next one is told the server is
    busy; the idle ones are closed after a few seconds, and a scrape then
    works (and counts every chat member, all in the one room)."""
    server = processes.server(
        "--metrics",
        "0",
        "--max-clients",
        "1000",
        "--quiet",
        command=[
            systemProgram("prlimit"),
            "--nofile=200:200",
            installedProgram("twistd"),
            "-n",
        ],
        listeners=2,
    )
    server.output.follow()
    server.output.waitForText(b"Open-file limit: 200")
    metricsPort = server.portOf("metrics")
    flood = [processes.connect(("127.0.0.1", metricsPort)) for _ in range(300)]
    members = []
    for _ in range(100):
        member = processes.connect(("127.0.0.1", server.port))
        receiveText(member, b" here\r\n")
        members.append(member)
    extra = processes.connect(("127.0.0.1", server.port))
    assert receiveToEOF(extra) == (
        b"ERROR the server is busy (100 connections); try again later\r\n"
    )
    assert closedByServer(flood, 1.0) >= 300 - 16
    assert closedByServer(flood, 10.0) == 300
    status, _, text = fetch(f"http://127.0.0.1:{metricsPort}/metrics")
    assert status == 200
    assert 'sockserve_connections_open{mode="chat"} 100.0' in text
    assert 'sockserve_chat_members{mode="chat"} 100.0' in text
    assert 'sockserve_chat_rooms{mode="chat"} 1.0' in text
    server.stop()
    log = server.output.text()
    refusals = log.count("] Refused a metrics connection from 127.0.0.1:")
    assert 1 <= refusals <= 20, log
    assert "more metrics refusals not logged" in log, log
    assert len(log.splitlines()) < 40, log


def test_connections_are_counted_by_front_end() -> None:
    """Connections admitted and open are also counted by front end: line
    clients, WebSocket members and IRC clients of one chat apart."""
    from tests.test_irc import Chat
    from tests.test_web import WebClient

    chat = Chat()
    alice = chat.user("alice")
    chat.line()
    WebClient(chat.chat, 50000)
    context = chat.chat.context
    collector = StatisticsCollector("chat", context.stats, context.registry)
    samples = scrape(collector)

    def frontEnd(name: str, kind: str) -> float:
        labels = (("front_end", kind), ("mode", "chat"))
        return samples[(f"sockserve_front_end_connections_{name}", labels)]

    for kind in ("irc", "line", "websocket"):
        assert frontEnd("open", kind) == 1
        assert frontEnd("accepted_total", kind) == 1
    alice.send("QUIT")
    alice.protocol.connectionLost(Failure(ConnectionDone()))
    samples = scrape(collector)
    assert frontEnd("open", "irc") == 0
    assert frontEnd("accepted_total", "irc") == 1
    assert samples[("sockserve_connections_open", (("mode", "chat"),))] == 2

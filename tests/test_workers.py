"""
--workers: options, and the worker pool's life cycle with a fake reactor.
"""

from __future__ import annotations

import pytest
from twisted.application.service import MultiService
from twisted.internet.interfaces import IListeningPort
from twisted.internet.testing import MemoryReactorClock
from twisted.python import usage
from zope.interface import implementer

from sockserve._workers import ReusePortTCPEndpoint, WorkerPoolService
from sockserve.service import LineServerService
from sockserve.tap import Options, makeServerService, makeService


def parse(*args: str) -> Options:
    options = Options()
    options.parseOptions(list(args))
    return options


def test_chat_refuses_workers() -> None:
    """Without a bus, chat keeps its room in one process: --workers above 1
    is refused, saying to add --bus."""
    with pytest.raises(usage.UsageError) as raised:
        parse("--mode", "chat", "--workers", "2")
    assert "a chat room lives in one process" in str(raised.value)
    assert "add --bus" in str(raised.value)


def test_workers_need_port_numbers() -> None:
    """Workers share bare port numbers; descriptions are refused clearly."""
    with pytest.raises(usage.UsageError) as raised:
        parse("--mode", "echo", "--workers", "2", "--port", "unix:/tmp/s")
    assert "--workers needs --port numbers" in str(raised.value)


def test_worker_arguments_repeat_the_options() -> None:
    """A worker is given the same mode and limits, and the actual ports."""
    options = parse(
        "--mode", "oneshot", "--workers", "3", "--max-line", "99", "-q", "-p", "0"
    )
    arguments = options.workerArguments([41234])
    assert "--mode=oneshot" in arguments
    assert "--max-line=99" in arguments
    assert "--workers=3" in arguments
    assert "--quiet" in arguments
    assert arguments[-1] == "--port=41234"
    assert not any(a.startswith(("--metrics", "--bus=")) for a in arguments)
    worker = Options()
    worker.parseOptions(arguments)
    assert worker.limits() == options.limits()


def test_chat_workers_share_the_bus() -> None:
    """Chat workers are given the bus, the room and the banner; options
    not given are not passed."""
    options = parse(
        "--workers", "2", "--bus", "redis://127.0.0.1:7777", "--room", "lab",
        "--banner", "Hi\\nthere", "-p", "0",
    )  # fmt: skip
    arguments = options.workerArguments([41234])
    assert "--bus=redis://127.0.0.1:7777" in arguments
    assert "--room=lab" in arguments
    assert "--banner=Hi\nthere" in arguments
    assert not any(a.startswith("--bus-password-file") for a in arguments)
    worker = Options()
    worker.parseOptions(arguments)
    assert worker["banner"] == "Hi\nthere"
    assert worker["busAddress"] == options["busAddress"]


def test_one_worker_is_a_plain_server() -> None:
    """The default (one process) is just the line server service."""
    service = makeService(parse("--mode", "echo", "-p", "0"), MemoryReactorClock())
    assert isinstance(service, LineServerService)


def test_workers_use_reuse_port_and_a_pool() -> None:
    """With --workers, the main process listens with SO_REUSEPORT and runs a
    pool; a worker process itself runs no pool."""
    reactor = MemoryReactorClock()
    options = parse("--mode", "echo", "--workers", "2", "-p", "0")
    service = makeService(options, reactor)
    assert isinstance(service, MultiService)
    server, pool = list(service)
    assert isinstance(server, LineServerService)
    assert isinstance(pool, WorkerPoolService)
    assert isinstance(server.listeners[0].endpoint, ReusePortTCPEndpoint)
    worker = makeServerService(options, reactor)
    assert isinstance(worker, LineServerService)
    assert isinstance(worker.listeners[0].endpoint, ReusePortTCPEndpoint)


def test_reuse_port_endpoint_sets_the_option() -> None:
    """The endpoint listens on a binding with SO_REUSEPORT."""
    reactor = MemoryReactorClock()
    endpoint = ReusePortTCPEndpoint(reactor, 0, "127.0.0.1", 10)
    endpoint.listen(object())  # type: ignore[arg-type]
    [(binding, _, backlog, _)] = reactor.tcpServers
    assert getattr(binding, "_reusePort", False)
    assert backlog == 10


class FakeProcessTransport:
    def __init__(self) -> None:
        self.pid = 4242
        self.signals: list[str] = []

    def signalProcess(self, name: str) -> None:
        self.signals.append(name)


class SpawningReactor(MemoryReactorClock):
    def __init__(self) -> None:
        super().__init__()
        self.spawned: list[tuple[object, list[str]]] = []
        self.transports: list[FakeProcessTransport] = []

    def spawnProcess(self, protocol, executable, args, env=None, childFDs=None):
        self.spawned.append((protocol, args))
        transport = FakeProcessTransport()
        self.transports.append(transport)
        return transport


@implementer(IListeningPort)
class Port:
    def getHost(self):
        from twisted.internet.address import IPv4Address

        return IPv4Address("TCP", "127.0.0.1", 5555)

    def startListening(self) -> None:
        pass

    def stopListening(self) -> None:
        pass


def test_pool_starts_and_stops_workers() -> None:
    """The pool starts count - 1 workers on the actual port, stops them with
    SIGTERM, and kills one that does not stop in time."""
    from twisted.python.failure import Failure

    reactor = SpawningReactor()
    pool = WorkerPoolService(
        reactor, 3, lambda: [Port()], lambda ports: [f"--port={ports[0]}"], 2.0
    )
    pool.startService()
    assert len(reactor.spawned) == 2
    assert reactor.spawned[0][1][-1] == "--port=5555"
    assert reactor.spawned[0][1][1:3] == ["-m", "sockserve._worker"]
    results: list[object] = []
    pool.stopService().addBoth(results.append)
    assert [t.signals for t in reactor.transports] == [["TERM"], ["TERM"]]
    first, second = (protocol for protocol, _ in reactor.spawned)
    first.processEnded(Failure(Exception("ended")))  # type: ignore[attr-defined]
    assert results == []
    reactor.advance(2.0)
    assert reactor.transports[1].signals == ["TERM", "KILL"]
    second.processEnded(Failure(Exception("killed")))  # type: ignore[attr-defined]
    assert results == [None]
    assert reactor.getDelayedCalls() == []


def test_a_worker_that_dies_is_replaced_with_backoff(logged_errors) -> None:
    """A worker that ends while the pool runs is replaced after a pause that
    doubles while replacements keep dying young, and is reset by a worker
    that lived; stopping the pool cancels a pending replacement."""
    from twisted.python.failure import Failure

    reactor = SpawningReactor()
    pool = WorkerPoolService(
        reactor, 2, lambda: [Port()], lambda ports: [f"--port={ports[0]}"], 2.0
    )
    pool.startService()
    delays = []
    for _ in range(3):
        protocol = reactor.spawned[-1][0]
        spawned = len(reactor.spawned)
        protocol.processEnded(Failure(Exception("killed")))  # type: ignore[attr-defined]
        [restart] = reactor.getDelayedCalls()
        delays.append(restart.getTime() - reactor.seconds())
        reactor.advance(delays[-1])
        assert len(reactor.spawned) == spawned + 1
    assert delays == [1.0, 2.0, 4.0]
    reactor.advance(60)
    reactor.spawned[-1][0].processEnded(Failure(Exception("late")))  # type: ignore[attr-defined]
    [restart] = reactor.getDelayedCalls()
    assert restart.getTime() - reactor.seconds() == 1.0
    pool.stopService()
    assert reactor.getDelayedCalls() == []


def test_workers_are_bounded_and_per_address_limits_say_so() -> None:
    """--workers takes at most 64; with several workers, the per-address
    limit says it is counted in each process."""
    with pytest.raises(usage.UsageError) as raised:
        parse("--mode", "echo", "--workers", "100000")
    assert "--workers must be an integer from 1 to 64" in str(raised.value)
    options = parse("--mode", "echo", "--workers", "2", "--max-per-ip", "1")
    service = makeService(options, MemoryReactorClock())
    server, _ = list(service)  # type: ignore[call-overload]
    assert "per address in each worker process" in (
        server.listeners[0].factory.context.registry.perIPScope
    )


def test_worker_lines_keep_their_level() -> None:
    """What a worker logs at warn (a refusal) is logged at warn by the main
    process; a line without a level is logged at info."""
    from twisted.logger import LogLevel

    from sockserve._workers import WorkerProcess
    from tests.support import capturedLogs

    worker = WorkerProcess(1, lambda worker, reason: None)
    worker.transport = FakeProcessTransport()  # type: ignore[assignment]
    with capturedLogs() as logged:
        worker.outReceived(b"warn Refused 127.0.0.1:5: full\ninfo hel")
        worker.outReceived(b"lo\nno level here\n")
    seen = [
        (event["log_level"], event["line"])
        for event in logged.events
        if event.get("log_namespace") == "sockserve._workers"
    ]
    assert seen == [
        (LogLevel.warn, "Refused 127.0.0.1:5: full"),
        (LogLevel.info, "hello"),
        (LogLevel.info, "no level here"),
    ]

"""
The connection registry (per-address admission and shutdown), and the guard
every front end's connections go through.
"""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.logger import Logger, LogLevel

from sockserve._connections import ConnectionRegistry
from sockserve._loglimit import LogLimiter
from sockserve.limits import Limits
from sockserve.protocol import CONNECTIONS_LOGGED, ServerContext
from tests.support import capturedLogs


class Connection:
    def __init__(
        self,
        registry: ConnectionRegistry,
        host: str | None = "10.0.0.1",
        closesOnShutdown: bool = True,
    ) -> None:
        self.registry = registry
        self.peerHost = host
        self.closesOnShutdown = closesOnShutdown
        self.aborted = False

    def beginShutdown(self) -> None:
        if self.closesOnShutdown:
            self.registry.remove(self)

    def abort(self) -> None:
        self.aborted = True
        self.registry.remove(self)


def test_per_address_limit() -> None:
    """At most maxPerIP connections from one address; others are unaffected;
    a slot frees when a connection goes."""
    registry = ConnectionRegistry(maxPerIP=2)
    a, b, c = (Connection(registry) for _ in range(3))
    assert registry.admit(a) is None
    assert registry.admit(b) is None
    assert registry.admit(c) == (
        "per_ip",
        "too many connections from 10.0.0.1 (at most 2 per address)",
    )
    assert registry.admit(Connection(registry, "10.0.0.2")) is None
    assert registry.admit(Connection(registry, None)) is None
    registry.remove(a)
    registry.remove(a)
    assert registry.countFrom("10.0.0.1") == 1
    assert registry.admit(c) is None
    assert len(registry) == 4


def test_ipv6_is_counted_per_64() -> None:
    """An IPv6 client counts against its /64 network, which the refusal
    names; an IPv4-mapped address counts as its IPv4 address; a slot of the
    network frees when any of its connections goes."""
    registry = ConnectionRegistry(maxPerIP=2)
    first = Connection(registry, "2001:db8:0:1::1")
    assert registry.admit(first) is None
    assert registry.admit(Connection(registry, "2001:db8:0:1:ffff::2")) is None
    assert registry.admit(Connection(registry, "2001:db8:0:1::3")) == (
        "per_ip",
        "too many connections from 2001:db8:0:1::/64 "
        "(at most 2 per address; an IPv6 /64 counts as one)",
    )
    assert registry.admit(Connection(registry, "2001:db8:0:2::1")) is None
    assert registry.countFrom("2001:db8:0:1::99") == 2
    registry.remove(first)
    assert registry.admit(Connection(registry, "2001:db8:0:1::3")) is None
    assert registry.admit(Connection(registry, "::ffff:10.0.0.1")) is None
    assert registry.admit(Connection(registry, "10.0.0.1")) is None
    assert registry.admit(Connection(registry, "::ffff:a00:1")) == (
        "per_ip",
        "too many connections from 10.0.0.1 (at most 2 per address)",
    )
    assert registry.countFrom("10.0.0.1") == 2


def test_refusals_say_how_addresses_are_counted() -> None:
    """With several worker processes, a refusal says each counts its own,
    and for IPv6 that a /64 is one address."""
    registry = ConnectionRegistry(
        maxPerIP=1, perIPScope="per address in each worker process"
    )
    registry.admit(Connection(registry, "2001:db8::1"))
    refusal = registry.admit(Connection(registry, "2001:db8::2"))
    assert refusal is not None
    assert refusal.message == (
        "too many connections from 2001:db8::/64 (at most 1 per address in "
        "each worker process; an IPv6 /64 counts as one)"
    )


class AddresslessConnection(Connection):
    """A connection whose address must not be asked for."""

    @property
    def peerHost(self) -> str | None:
        raise AssertionError("the address was looked up")

    @peerHost.setter
    def peerHost(self, host: str | None) -> None:
        pass


def test_no_address_lookup_without_a_per_address_limit() -> None:
    """Without maxPerIP, admitting and removing never asks for the address
    (working it out costs every connection of a busy server)."""
    registry = ConnectionRegistry()
    connection = AddresslessConnection(registry)
    assert registry.admit(connection) is None
    assert connection in registry
    registry.remove(connection)
    assert len(registry) == 0


def test_shutdown_waits_for_connections() -> None:
    """shutdown fires once every connection has closed."""
    registry = ConnectionRegistry()
    clock = Clock()
    assert registry.shutdown(clock, 5).called
    stays = Connection(registry, closesOnShutdown=False)
    goes = Connection(registry)
    registry.admit(stays)
    registry.admit(goes)
    done = registry.shutdown(clock, 5)
    assert goes not in registry
    assert not done.called
    registry.remove(stays)
    assert done.called
    assert clock.getDelayedCalls() == []


def test_shutdown_aborts_after_grace() -> None:
    """Connections still open after the grace period are aborted."""
    registry = ConnectionRegistry()
    clock = Clock()
    stays = Connection(registry, closesOnShutdown=False)
    registry.admit(stays)
    done = registry.shutdown(clock, 5)
    clock.advance(4.9)
    assert not done.called
    clock.advance(0.1)
    assert stays.aborted
    assert done.called


def test_log_summaries_are_flushed_once_everyone_has_gone() -> None:
    """What the closing connections cause during the shutdown grace period
    is summarised too, once the last one has gone."""
    from twisted.internet.task import Clock
    from twisted.logger import Logger, LogLevel

    from sockserve._loglimit import LogLimiter
    from tests.support import capturedLogs

    clock = Clock()
    limiter = LogLimiter(clock, perWindow=1)
    registry = ConnectionRegistry(logLimit=limiter)

    class Slow:
        peerHost = None

        def beginShutdown(self) -> None:
            log = Logger(namespace="test")
            for _ in range(3):
                limiter.emit(log, LogLevel.info, "goodbyes", "goodbye")

        def abort(self) -> None:
            pass

    slow = Slow()
    registry.admit(slow)
    with capturedLogs() as logged:
        done = registry.shutdown(clock, 5.0)
        assert logged.texts() == ["goodbye"]
        registry.remove(slow)
    assert done.called
    assert logged.texts() == [
        "goodbye",
        "2 more goodbyes not logged in 10 s; the first of them: goodbye",
    ]
    assert clock.getDelayedCalls() == []


class FrontEndConnection:
    """A connection of some front end that is not a line protocol: what a
    guard needs of it, and its own logger."""

    log = Logger()
    frontEnd = "test"

    def __init__(self, host: str | None = "10.0.0.1", port: int = 1) -> None:
        self.peerHost = host
        self.peer = f"{host}:{port}"
        self.timedOut = 0
        self.shutDown = 0
        self.aborted = False

    def timeoutConnection(self) -> None:
        self.timedOut += 1

    def beginShutdown(self) -> None:
        self.shutDown += 1

    def abort(self) -> None:
        self.aborted = True


class Anonymous:
    """A connection with no logger of its own."""

    peerHost = None
    frontEnd = "test"
    peer = "unix"

    def timeoutConnection(self) -> None:
        pass

    def beginShutdown(self) -> None:
        pass

    def abort(self) -> None:
        pass


def guarded(
    limits: Limits | None = None, logConnections: bool = True, perWindow: int = 20
) -> tuple[ServerContext, Clock]:
    clock = Clock()
    limits = limits or Limits()
    registry = ConnectionRegistry(
        limits.maxPerIP, limits.maxConnections, LogLimiter(clock, perWindow=perWindow)
    )
    return ServerContext(limits, registry, clock, logConnections), clock


def test_the_guard_admits_counts_and_logs_any_front_end() -> None:
    """The guard admits a connection of any front end into the registry,
    counts it, and logs its connect and disconnect at info, with its
    address, under the connection's own logger (which names its front end);
    one without a logger of its own is logged under the guard's."""
    context, _ = guarded()
    guard = context.guard
    connection = FrontEndConnection()
    with capturedLogs() as logged:
        assert guard.admit(connection) is None
        assert connection in context.registry
        guard.gone(connection, admitted=True)
        anonymous = Anonymous()
        assert guard.admit(anonymous) is None
        guard.gone(anonymous, admitted=True)
    assert len(context.registry) == 0
    assert context.stats.accepted == 2
    assert [
        (event["log_namespace"], event["log_level"], text)
        for event, text in zip(logged.events, logged.texts(), strict=True)
    ] == [
        (
            "tests.test_connections.FrontEndConnection",
            LogLevel.info,
            "Client 10.0.0.1:1 is now connected to us.",
        ),
        (
            "tests.test_connections.FrontEndConnection",
            LogLevel.info,
            "Client 10.0.0.1:1 disconnected.",
        ),
        (
            "sockserve.protocol.ConnectionGuard",
            LogLevel.info,
            "Client unix is now connected to us.",
        ),
        (
            "sockserve.protocol.ConnectionGuard",
            LogLevel.info,
            "Client unix disconnected.",
        ),
    ]


def test_the_guard_refuses_with_a_warning_and_no_disconnect() -> None:
    """A connection the registry will not take is counted under the
    refusal's kind and logged at warn, under its own logger, at the bounded
    rate; its going is not logged as a disconnect."""
    context, clock = guarded(Limits(maxPerIP=1), perWindow=2)
    guard = context.guard
    assert guard.admit(FrontEndConnection()) is None
    with capturedLogs() as logged:
        refused = [FrontEndConnection(port=n) for n in range(2, 6)]
        for connection in refused:
            refusedBy = guard.admit(connection)
            assert refusedBy is not None
            assert refusedBy.kind == "per_ip"
            guard.gone(connection, admitted=False)
        clock.advance(10)
    assert context.stats.refused["per_ip"] == 4
    assert context.stats.accepted == 1
    refusal = (
        "Refused 10.0.0.1:2: too many connections from 10.0.0.1 (at most 1 per address)"
    )
    assert logged.texts() == [
        refusal,
        refusal.replace(":2:", ":3:"),
        f"2 more refusals not logged in 10 s; the first of them: "
        f"{refusal.replace(':2:', ':4:')}",
    ]
    assert {event["log_level"] for event in logged.events} == {LogLevel.warn}
    assert logged.events[0]["log_namespace"] == (
        "tests.test_connections.FrontEndConnection"
    )


def test_the_guard_keeps_the_idle_deadline() -> None:
    """An admitted connection is timed out after --idle-timeout without
    activity; activity starts its deadline afresh; once inactive (no more
    input expected) or gone, it is never timed out."""
    context, clock = guarded(Limits(idleTimeout=10))
    guard = context.guard
    idle, busy, done, gone = (FrontEndConnection(port=n) for n in range(1, 5))
    for connection in (idle, busy, done, gone):
        assert guard.admit(connection) is None
    clock.advance(6)
    guard.active(busy)
    guard.inactive(done)
    guard.gone(gone, admitted=True)
    clock.advance(5)
    assert (idle.timedOut, busy.timedOut, done.timedOut, gone.timedOut) == (
        1,
        0,
        0,
        0,
    )
    clock.advance(5)
    assert (busy.timedOut, done.timedOut, gone.timedOut) == (1, 0, 0)


def test_the_guard_logs_connects_at_a_human_rate() -> None:
    """Beyond CONNECTIONS_LOGGED connects in ten seconds, they are counted
    in one summary line; with --quiet (logConnections off), none is logged
    at all."""
    context, clock = guarded(perWindow=1)
    with capturedLogs() as logged:
        for port in range(CONNECTIONS_LOGGED + 5):
            assert context.guard.admit(FrontEndConnection(port=port)) is None
        clock.advance(10)
    texts = logged.texts()
    assert len(texts) == CONNECTIONS_LOGGED + 1
    assert texts[-1].startswith("5 more connections not logged in 10 s")
    quiet, _ = guarded(logConnections=False)
    with capturedLogs() as logged:
        connection = FrontEndConnection()
        assert quiet.guard.admit(connection) is None
        quiet.guard.gone(connection, admitted=True)
    assert logged.texts() == []

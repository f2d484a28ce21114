"""
The connection registry: per-address admission and shutdown.
"""

from __future__ import annotations

from twisted.internet.task import Clock

from sockserve._connections import ConnectionRegistry


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

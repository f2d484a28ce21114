"""
The set of live connections of one server: admission by address, and closing
them all, within a grace period, at shutdown.
"""

from __future__ import annotations

from collections import Counter
from typing import NamedTuple
from typing import Protocol as TypingProtocol

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from sockserve._addresses import IPV6_PREFIX, networkOf
from sockserve._loglimit import LogLimiter
from sockserve._text import plural


class TrackedConnection(TypingProtocol):
    """
    What the registry needs of a connection.
    """

    @property
    def peerHost(self) -> str | None:
        """
        The client's host, or C{None} when it has none (a UNIX socket).
        """

    def beginShutdown(self) -> None:
        """
        Start closing: say goodbye if the mode has one, finish what is owed.
        """

    def abort(self) -> None:
        """
        Close at once, dropping whatever is unsent.
        """


class Refusal(NamedTuple):
    """
    Why a connection is not admitted.

    @ivar kind: the reason, for statistics: C{busy} or C{per_ip}.
    @ivar message: what the client is told.
    """

    kind: str
    message: str


class ConnectionRegistry:
    """
    Track the live connections of one server.

    @ivar maxPerIP: connections allowed from one address at once (an IPv6
        address counted by its /64 network, see L{networkOf}); 0 is
        unlimited.
    @ivar maxConnections: connections allowed at once; 0 is unlimited.
    @ivar perIPScope: how the per-address limit is counted, as refusals say
        it (C{"per address"}; with several worker processes, each counts
        its own); a refusal of an IPv6 client adds that its /64 counts as
        one address.
    @ivar logLimit: what logs the events clients cause, at a bounded rate
        (see L{LogLimiter}); C{None}: each is logged.
    """

    log = Logger()

    def __init__(
        self,
        maxPerIP: int = 0,
        maxConnections: int = 0,
        logLimit: LogLimiter | None = None,
        perIPScope: str = "per address",
    ) -> None:
        self.maxPerIP = maxPerIP
        self.maxConnections = maxConnections
        self.logLimit = logLimit
        self.perIPScope = perIPScope
        # Each connection, with what it is counted under for maxPerIP
        # (None: it is not).
        self._connections: dict[TrackedConnection, str | None] = {}
        self._perHost: Counter[str] = Counter()
        self._drained: list[Deferred[None]] = []

    def __len__(self) -> int:
        return len(self._connections)

    def __contains__(self, connection: object) -> bool:
        return connection in self._connections

    def admit(self, connection: TrackedConnection) -> Refusal | None:
        """
        Add C{connection}, or return why it is refused (too many at once, or
        from its host).
        """
        if self.maxConnections and len(self._connections) >= self.maxConnections:
            return Refusal(
                "busy",
                f"the server is busy ({self.maxConnections} connections); "
                "try again later",
            )
        key = None
        if self.maxPerIP:
            # Only a limit per address needs the address: working it out
            # for every connection is a cost a busy oneshot server notices.
            host = connection.peerHost
            if host is not None:
                key = networkOf(host)
                if self._perHost[key] >= self.maxPerIP:
                    return Refusal("per_ip", self._tooMany(key))
                self._perHost[key] += 1
        self._connections[connection] = key
        return None

    def _tooMany(self, key: str) -> str:
        scope = self.perIPScope
        if ":" in key:
            scope += f"; an IPv6 /{IPV6_PREFIX} counts as one"
        return f"too many connections from {key} (at most {self.maxPerIP} {scope})"

    def remove(self, connection: TrackedConnection) -> None:
        """
        Forget C{connection}; unknown connections are ignored.
        """
        if connection not in self._connections:
            return
        key = self._connections.pop(connection)
        if key is not None:
            self._forgetOneFrom(key)
        if not self._connections:
            drained, self._drained = self._drained, []
            for waiting in drained:
                waiting.callback(None)

    def _forgetOneFrom(self, key: str) -> None:
        remaining = self._perHost[key] - 1
        if remaining > 0:
            self._perHost[key] = remaining
        else:
            del self._perHost[key]

    def countFrom(self, host: str) -> int:
        """
        Return how many live connections count as coming from C{host}: from
        its /64 network for an IPv6 address (counted only while C{maxPerIP}
        is set).
        """
        return self._perHost[networkOf(host)]

    def shutdown(self, clock: IReactorTime, grace: float) -> Deferred[None]:
        """
        Ask every connection to close and wait for them, at most C{grace}
        seconds, after which those left are aborted.

        @return: a L{Deferred} that fires once every connection is gone.
        """
        if not self._connections:
            self._flushLog()
            return succeed(None)
        drained: Deferred[None] = Deferred()
        self._drained.append(drained)
        # Summaries of what the closing connections cause are logged too.
        drained.addCallback(lambda ignored: self._flushLog())
        for connection in list(self._connections):
            connection.beginShutdown()
        if not self._connections:
            return drained
        timer: IDelayedCall = clock.callLater(grace, self._abortRemaining)

        def cancelTimer(result: None) -> None:
            if timer.active():
                timer.cancel()
            return result

        drained.addCallback(cancelTimer)
        return drained

    def _flushLog(self) -> None:
        if self.logLimit is not None:
            self.logLimit.flush()

    def _abortRemaining(self) -> None:
        remaining = list(self._connections)
        self.log.warn(
            "Grace period over: aborting {connections}",
            connections=plural(len(remaining), "connection"),
            count=len(remaining),
        )
        for connection in remaining:
            connection.abort()

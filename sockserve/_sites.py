"""
Web sites whose HTTP connections are bounded: how many are open at once (in
all, and from one address), and how long each lives.

twisted.web's L{Site} takes every connection it is offered, keeps an idle
one for a minute and a slow one for as long as it trickles, and logs every
request: a flood of connections would take the descriptors the server's
clients need, and a flood of requests would fill the log. A L{BoundedSite}
refuses a connection beyond its bounds (closed at once, and logged at the
bounded rate of a L{LogLimiter}), closes one that lives longer than its
C{lifetime}, and logs neither requests nor idle connections closed.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import IAddress, IDelayedCall
from twisted.internet.protocol import connectionDone
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure
from twisted.web import http
from twisted.web.http import HTTPChannel
from twisted.web.resource import Resource
from twisted.web.server import Site

from sockserve._addresses import describeAddress, hostOf, networkOf
from sockserve._loglimit import LogLimiter

_log = Logger()


class BoundedChannel(HTTPChannel):
    """
    An HTTP connection of a L{BoundedSite}: it lives at most the site's
    C{lifetime} (a client that trickles its request a byte at a time keeps
    no file descriptor), and the site counts it until it goes.
    """

    site: BoundedSite
    _deadline: IDelayedCall | None = None

    def connectionMade(self) -> None:
        """
        Start the deadline.
        """
        super().connectionMade()
        self._deadline = self.callLater(self.site.lifetime, self._tooLong)

    def _tooLong(self) -> None:
        self._deadline = None
        self.site.forget(self)
        if self.transport is not None:
            self.transport.abortConnection()  # type: ignore[attr-defined]

    def timeoutConnection(self) -> None:
        """
        The connection was idle too long: close it (twisted.web logs each
        one, and a flood of idle connections would be a flood of lines).
        """
        self.stopDeadline()
        if self.transport is not None:
            self.transport.abortConnection()  # type: ignore[attr-defined]

    def stopDeadline(self) -> None:
        """
        Let the connection live on (it is no longer an HTTP connection).
        """
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = None

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """
        Forget the connection.
        """
        self.stopDeadline()
        self.site.forget(self)
        super().connectionLost(reason)


class BoundedSite(Site):
    """
    A site that logs no request, and holds at most C{total} HTTP connections
    at once, at most C{perAddress} from one address (an IPv6 address
    counting by its /64 network; C{None} for no limit), each for at most
    C{lifetime} seconds (and C{timeout} seconds idle, as for any L{Site}). A
    connection beyond the bounds is closed at once, and logged through
    C{logLimit} (at a bounded rate, as C{refusalKind}; C{None}: each is
    logged).

    @cvar connectionName: what one of the site's connections is called in
        the log.
    @cvar refusalKind: the kind its refusals are counted as by the log
        limiter.
    """

    noisy = False
    displayTracebacks = False
    protocol = BoundedChannel  # type: ignore[assignment]
    connectionName = "an HTTP connection"
    refusalKind = "refusals"

    def __init__(
        self,
        resource: Resource,
        perAddress: int | None = None,
        total: int = 1024,
        logLimit: LogLimiter | None = None,
        lifetime: float = 30.0,
        **options: Any,
    ) -> None:
        super().__init__(resource, **options)
        self.perAddress = perAddress
        self.total = total
        self.logLimit = logLimit
        self.lifetime = lifetime
        self.byAddress: dict[str, int] = {}
        self.channels: dict[BoundedChannel, str | None] = {}

    def buildProtocol(self, addr: IAddress | None) -> Any:
        """
        A channel for a new connection, unless its address (or the site)
        holds as many as it may.
        """
        if len(self.channels) >= self.total:
            self._refuse(addr, f"{self.total} are open")
            return None
        host = None if addr is None else hostOf(addr)
        key = None if host is None else networkOf(host)
        if (
            self.perAddress is not None
            and key is not None
            and self.byAddress.get(key, 0) >= self.perAddress
        ):
            self._refuse(
                addr,
                f"{self.perAddress} from {key} are open (--max-per-ip)",
            )
            return None
        channel = super().buildProtocol(addr)
        if isinstance(channel, BoundedChannel):
            self.channels[channel] = key
            if key is not None:
                self.byAddress[key] = self.byAddress.get(key, 0) + 1
        return channel

    def _refuse(self, addr: IAddress | None, reason: str) -> None:
        peer = "an unknown peer" if addr is None else describeAddress(addr)
        format = "Refused {connection} from {peer}: {reason}"
        fields = {"connection": self.connectionName, "peer": peer, "reason": reason}
        if self.logLimit is None:
            _log.warn(format, **fields)
        else:
            self.logLimit.emit(_log, LogLevel.warn, self.refusalKind, format, **fields)

    def forget(self, channel: BoundedChannel) -> None:
        """
        Stop counting C{channel}.
        """
        if channel not in self.channels:
            return
        key = self.channels.pop(channel)
        if key is None:
            return
        left = self.byAddress[key] - 1
        if left:
            self.byAddress[key] = left
        else:
            del self.byAddress[key]

    def log(self, request: http.Request) -> None:
        """
        Log nothing per request.
        """

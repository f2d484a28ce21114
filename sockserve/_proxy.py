"""
The PROXY protocol (C{haproxy:} endpoints), with the client's own address
known before the server sees the connection.

Twisted's PROXY wrapper builds the protocol, and hands it the connection,
as soon as TCP connects, before the header that names the client has
arrived: admission, chat names, logs and per-address limits would all see
the balancer's address, and a chat client would not be greeted until it
typed something. L{ProxyProtocolEndpoint} wraps connections in
L{ProxyHeaderWrapper}, which waits for the header (at most
C{HEADER_TIMEOUT} seconds), then asks the factory for a protocol for the
client's address (a factory that refuses it, returning C{None}, has the
connection closed, as a listening port would) and connects it, its
C{transport.getPeer()} then being the client's address.

A connection without a header (a client that reached the port directly,
not through the balancer) is logged, at the bounded rate of what clients
cause, and closed.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import (
    IAddress,
    IDelayedCall,
    IHalfCloseableProtocol,
    IListeningPort,
    IProtocolFactory,
    IReactorTime,
    IStreamServerEndpoint,
)
from twisted.internet.protocol import Protocol, connectionDone
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure
from zope.interface import directlyProvides, implementer, providedBy

from sockserve._addresses import describeAddress
from sockserve._loglimit import LogLimiter

# Twisted's PROXY wrapper and the header it parsed are private: see there.
from sockserve._twisted import (
    HAProxyProtocolWrapper,
    HAProxyWrappingFactory,
    forgetProxyHeader,
    proxyHeader,
)

HEADER_TIMEOUT = 10.0
_WHY = "(is it reaching a port meant for a load balancer?)"


class _Collect:
    """
    Stands in for the protocol while the header is parsed, keeping what
    follows the header.
    """

    def __init__(self) -> None:
        self.received: list[bytes] = []

    def dataReceived(self, data: bytes) -> None:
        self.received.append(data)


@implementer(IHalfCloseableProtocol)
class ProxyHeaderWrapper(HAProxyProtocolWrapper):
    """
    A PROXY protocol wrapper that builds and connects its protocol only
    once the header is in, with an address (a real IP address and port),
    and closes a connection whose header does not come in time or is not
    valid, or that the factory refuses. A client's half-close reaches the
    protocol as it would without the header.
    """

    factory: ProxyHeaderFactory
    log = Logger()

    def logPrefix(self) -> str:
        """
        The factory's prefix: the protocol may not be built yet.
        """
        return self.factory.logPrefix()

    def makeConnection(self, transport: Any) -> None:
        """
        Take the connection, and wait for the header before the protocol
        hears of it.
        """
        directlyProvides(self, providedBy(transport))
        Protocol.makeConnection(self, transport)
        self.factory.registerProtocol(self)
        self._started = False
        self._closed = False
        self._deadline: IDelayedCall | None = self.factory.clock.callLater(
            HEADER_TIMEOUT, self._noHeader
        )

    def dataReceived(self, data: bytes) -> None:
        """
        Parse the header; once it is in, connect the protocol and hand it
        what followed.
        """
        if self._started:
            self.wrappedProtocol.dataReceived(data)
            return
        if self.disconnecting:
            return
        collected = _Collect()
        self.wrappedProtocol = collected  # type: ignore[assignment]
        try:
            super().dataReceived(data)
        except Exception:
            # A v1 header whose address is not UTF-8, or whose port is not a
            # number: no header at all.
            forgetProxyHeader(self)
            self.loseConnection()
        header = proxyHeader(self)
        if header is None:
            if self._closed:
                self._cancelDeadline()
                self._logMissing("sent no valid PROXY protocol header; closing")
            return
        if not _validAddress(header.source):
            forgetProxyHeader(self)
            self._cancelDeadline()
            self._logMissing("sent no valid PROXY protocol header; closing")
            self.loseConnection()
            return
        self._cancelDeadline()
        protocol = self.factory.wrappedFactory.buildProtocol(self.getPeer())
        if protocol is None:
            # Refused by the factory (too many from the client's address):
            # closed without a word, as a listening port does.
            forgetProxyHeader(self)
            self.loseConnection()
            return
        self.wrappedProtocol = protocol
        self._started = True
        protocol.makeConnection(self)
        for chunk in collected.received:
            protocol.dataReceived(chunk)

    def loseConnection(self) -> None:
        """
        Close (Twisted's parser calls this on a header it cannot take).
        """
        self._closed = True
        super().loseConnection()

    def readConnectionLost(self) -> None:
        """
        The client half-closed: tell the protocol, if it can hear of it.
        """
        protocol = self.wrappedProtocol
        if self._started and IHalfCloseableProtocol.providedBy(protocol):
            protocol.readConnectionLost()
        else:
            self.loseConnection()

    def writeConnectionLost(self) -> None:
        """
        The client can no longer receive: tell the protocol, if it can hear
        of it.
        """
        protocol = self.wrappedProtocol
        if self._started and IHalfCloseableProtocol.providedBy(protocol):
            protocol.writeConnectionLost()
        else:
            self.loseConnection()

    def _noHeader(self) -> None:
        self._deadline = None
        assert self.transport is not None
        self._logMissing(
            f"sent no PROXY protocol header in {HEADER_TIMEOUT:g} seconds; closing"
        )
        self.transport.abortConnection()  # type: ignore[attr-defined]

    def _logMissing(self, what: str) -> None:
        """
        Log, at the factory's bounded rate, that the client C{what}.
        """
        assert self.transport is not None
        peer = describeAddress(self.transport.getPeer())
        text = "Client {peer} " + what + " " + _WHY
        limiter = self.factory.logLimit
        if limiter is None:
            self.log.warn(text, peer=peer)
        else:
            limiter.emit(
                self.log,
                LogLevel.warn,
                "connections without a PROXY header",
                text,
                peer=peer,
            )

    def _cancelDeadline(self) -> None:
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = None

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """
        The connection is gone: the protocol hears of it if it was told of
        the connection.
        """
        self._cancelDeadline()
        self.factory.unregisterProtocol(self)
        if self._started:
            self.wrappedProtocol.connectionLost(reason)


def _validAddress(address: object) -> bool:
    """
    Tell whether a PROXY header's source C{address} is an IP address of its
    family, without a zone id, and a port (Twisted's v1 parser takes
    whatever text stands there, and C{ipaddress} takes any text after a
    C{%} as an IPv6 zone id: terminal control sequences included).
    """
    if not isinstance(address, IPv4Address | IPv6Address):
        return address is None
    try:
        if isinstance(address, IPv4Address):
            ipaddress.IPv4Address(address.host)
        elif ipaddress.IPv6Address(address.host).scope_id is not None:
            return False
    except ValueError:
        return False
    return 0 <= address.port <= 65535


class ProxyHeaderFactory(HAProxyWrappingFactory):
    """
    Wrap each connection in a L{ProxyHeaderWrapper}.

    @ivar logLimit: what logs connections without a header, at a bounded
        rate (C{None}: each is logged).
    """

    protocol = ProxyHeaderWrapper  # type: ignore[assignment]
    noisy = False

    def __init__(
        self,
        wrappedFactory: IProtocolFactory,
        clock: IReactorTime,
        logLimit: LogLimiter | None = None,
    ) -> None:
        super().__init__(wrappedFactory)
        self.clock = clock
        self.logLimit = logLimit

    def buildProtocol(self, addr: IAddress | None) -> ProxyHeaderWrapper:
        """
        A wrapper for a new connection from C{addr} (the balancer): its
        protocol is built once the header names the client.
        """
        return ProxyHeaderWrapper(self, None)  # type: ignore[arg-type]


@implementer(IStreamServerEndpoint)
class ProxyProtocolEndpoint:
    """
    An endpoint whose connections start with a PROXY protocol header.
    """

    def __init__(
        self,
        wrapped: IStreamServerEndpoint,
        clock: IReactorTime,
        logLimit: LogLimiter | None = None,
    ) -> None:
        self.wrapped = wrapped
        self.clock = clock
        self.logLimit = logLimit

    def listen(self, protocolFactory: IProtocolFactory) -> Deferred[IListeningPort]:
        """
        Listen on the wrapped endpoint, reading a PROXY header first.
        """
        return self.wrapped.listen(
            ProxyHeaderFactory(protocolFactory, self.clock, self.logLimit)
        )

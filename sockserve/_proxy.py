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
from twisted.protocols.haproxy._wrapper import (
    HAProxyProtocolWrapper,
    HAProxyWrappingFactory,
)
from twisted.python.failure import Failure
from zope.interface import directlyProvides, implementer, providedBy

HEADER_TIMEOUT = 10.0


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
            self._proxyInfo = None
            self.loseConnection()
        if self._proxyInfo is None:
            return
        if not _validAddress(self._proxyInfo.source):
            self._proxyInfo = None
            self.loseConnection()
            return
        self._cancelDeadline()
        protocol = self.factory.wrappedFactory.buildProtocol(self.getPeer())
        if protocol is None:
            # Refused by the factory (too many from the client's address):
            # closed without a word, as a listening port does.
            self._proxyInfo = None
            self.loseConnection()
            return
        self.wrappedProtocol = protocol
        self._started = True
        protocol.makeConnection(self)
        for chunk in collected.received:
            protocol.dataReceived(chunk)

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
        self.transport.abortConnection()  # type: ignore[attr-defined]

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
    """

    protocol = ProxyHeaderWrapper  # type: ignore[assignment]
    noisy = False

    def __init__(self, wrappedFactory: IProtocolFactory, clock: IReactorTime) -> None:
        super().__init__(wrappedFactory)
        self.clock = clock

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

    def __init__(self, wrapped: IStreamServerEndpoint, clock: IReactorTime) -> None:
        self.wrapped = wrapped
        self.clock = clock

    def listen(self, protocolFactory: IProtocolFactory) -> Deferred[IListeningPort]:
        """
        Listen on the wrapped endpoint, reading a PROXY header first.
        """
        return self.wrapped.listen(ProxyHeaderFactory(protocolFactory, self.clock))

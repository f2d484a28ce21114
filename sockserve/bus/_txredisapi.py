"""
Everything the bus takes from txredisapi that txredisapi does not promise
(as L{sockserve._twisted} does for Twisted; C{tests/test_twisted_internals.py}
pins each use).

txredisapi's public API (C{Connection}, C{lazyConnection} and the like)
connects, and reconnects, by itself, to a host and port or a UNIX path.
sockserve connects its own way: through any client endpoint (TLS, UNIX), with
its own timeouts and backoff, and two connections lost together. So it builds
txredisapi's C{RedisProtocol} itself (not in txredisapi's C{__all__}), and
gives it a factory that answers what C{RedisProtocol} asks of txredisapi's
own: C{stopTrying()} and C{connectionError(why)} when C{AUTH} or C{SELECT}
fails, and C{isLazy}. The protocol's own methods sockserve calls
(C{whenConnected}, C{whenDisconnected}, C{execute_command}) are pinned by
the tests too.

Checked on txredisapi L{CHECKED_ON}. Without C{RedisProtocol}, or with one
that takes other arguments, every attempt to reach the bus fails with a
line that says so (logged once, as any reason the bus cannot be reached).
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.protocol import Factory

from sockserve.bus.address import BusAddress

# The txredisapi release the uses below were read against and tested on.
CHECKED_ON = "1.6.0"


class TxRedisAPIChanged(Exception):
    """
    The txredisapi installed lacks what the bus uses of it.
    """


def redisProtocol(address: BusAddress, replyTimeout: float) -> Any:
    """
    Return a txredisapi protocol for C{address} that leaves replies as bytes
    (C{charset=None}) and converts nothing number-like (C{convertNumbers=False}),
    and fails a command without a reply within C{replyTimeout} seconds.

    @raise TxRedisAPIChanged: if this txredisapi cannot build one.
    """
    try:
        from txredisapi import RedisProtocol  # type: ignore[import-untyped]
    except ImportError as error:
        raise TxRedisAPIChanged(
            f"txredisapi has no RedisProtocol ({error}; sockserve was checked "
            f"on txredisapi {CHECKED_ON})"
        ) from None
    try:
        return RedisProtocol(
            charset=None,
            replyTimeout=replyTimeout,
            password=address.password,
            dbid=address.db or None,
            convertNumbers=False,
            username=address.username,
        )
    except TypeError as error:
        raise TxRedisAPIChanged(
            f"txredisapi's RedisProtocol takes other arguments ({error}; "
            f"sockserve was checked on txredisapi {CHECKED_ON})"
        ) from None


class ConnectionFactory(Factory):
    """
    Builds txredisapi protocols (see L{redisProtocol}) for one connection
    of a node, and answers what a txredisapi protocol asks of its factory.

    @ivar failure: why the server refused the connection (C{AUTH} or
        C{SELECT} failed), once it did.
    @ivar refused: fires once the server refused the connection.
    """

    noisy = False
    # txredisapi: a lazy factory logs the refusal itself; sockserve says why
    # in its own words.
    isLazy = False

    def __init__(self, address: BusAddress, replyTimeout: float) -> None:
        self.address = address
        self.replyTimeout = replyTimeout
        self.failure: str | None = None
        self.refused: Deferred[None] = Deferred()

    def buildProtocol(self, addr: object) -> Any:
        """
        A txredisapi protocol that leaves replies as bytes.
        """
        protocol = redisProtocol(self.address, self.replyTimeout)
        protocol.factory = self
        return protocol

    def stopTrying(self) -> None:
        """
        txredisapi: authentication or SELECT failed (the node retries, as
        a password may be fixed on the server).
        """

    def connectionError(self, why: str) -> None:
        """
        txredisapi: why the connection was refused.
        """
        self.failure = why
        if not self.refused.called:
            self.refused.callback(None)

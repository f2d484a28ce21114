"""
Factories: one per server, building its protocols with their collaborators.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.interfaces import IAddress
from twisted.internet.protocol import ServerFactory

from sockserve.base import LineServerProtocol, ServerContext
from sockserve.chat import ChatProtocol
from sockserve.echo import EchoProtocol
from sockserve.oneshot import OneShotReplyProtocol, requestDeadlinesFor
from sockserve.room import ChatRoom

MODES = ("chat", "echo", "oneshot")


class LineServerFactory(ServerFactory):
    """
    Build the protocols of one server, each given the server's collaborators.

    @ivar mode: the server's behaviour: C{chat}, C{echo} or C{oneshot}.
    @ivar context: what every connection shares (limits, registry, clock).
    """

    noisy = False

    def __init__(
        self,
        mode: str,
        context: ServerContext,
        buildOne: Callable[[ServerContext], LineServerProtocol],
    ) -> None:
        self.mode = mode
        self.context = context
        self._buildOne = buildOne

    def buildProtocol(self, addr: IAddress | None) -> LineServerProtocol:
        """
        Build the protocol for one connection.
        """
        protocol = self._buildOne(self.context)
        protocol.factory = self
        return protocol


def echoFactory(context: ServerContext) -> LineServerFactory:
    """
    Return the factory of an echo server.
    """
    return LineServerFactory("echo", context, EchoProtocol)


def oneShotFactory(context: ServerContext) -> LineServerFactory:
    """
    Return the factory of a one-shot reply server.
    """
    requestDeadlines = requestDeadlinesFor(context)
    return LineServerFactory(
        "oneshot",
        context,
        lambda context: OneShotReplyProtocol(context, requestDeadlines),
    )


def chatFactory(
    context: ServerContext, room: ChatRoom, banner: bytes
) -> LineServerFactory:
    """
    Return the factory of a chat server whose members join C{room}.
    """
    return LineServerFactory(
        "chat", context, lambda context: ChatProtocol(context, room, banner)
    )

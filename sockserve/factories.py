"""
Factories: one per server, building its protocols with their collaborators.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.interfaces import IAddress, IReactorTime
from twisted.internet.protocol import ServerFactory

from sockserve._connections import ConnectionRegistry
from sockserve._loglimit import LogLimiter
from sockserve.chat.events import Banner
from sockserve.chat.policy import ChatPolicy, ChurnWatch
from sockserve.chat.protocol import ChatProtocol
from sockserve.chat.room import historyBudget
from sockserve.chat.service import (
    DEFAULT_MAX_ROOMS,
    DEFAULT_ROOM,
    ChatService,
    RoomRules,
)
from sockserve.echo import EchoProtocol
from sockserve.limits import Limits
from sockserve.oneshot import OneShotReplyProtocol, requestDeadlinesFor
from sockserve.protocol import LineServerProtocol, ServerContext

MODES = ("chat", "echo", "oneshot")


class LineServerFactory(ServerFactory):
    """
    Build the protocols of one server, each given the server's collaborators.

    @ivar mode: the server's behaviour: C{chat}, C{echo} or C{oneshot}.
    @ivar context: what every connection shares (limits, registry, clock).
    @ivar service: chat: the rooms and people its members join.
    @ivar banner: chat: the greeting of every member.
    @ivar policy: chat: the rules every member follows.
    """

    noisy = False
    service: ChatService | None = None
    banner: Banner | None = None
    policy: ChatPolicy | None = None

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
    context: ServerContext, service: ChatService, banner: str
) -> LineServerFactory:
    """
    Return the factory of a chat server whose members are people of
    C{service}, greeted with C{banner} (lines separated by LF).
    """
    greeting = Banner(banner)
    limits = context.limits
    policy = ChatPolicy(
        clock=context.clock,
        maxPending=limits.maxPending,
        floodLimit=limits.floodLimit,
        churn=ChurnWatch(context.clock),
        logRenames=context.logConnections,
        stats=context.stats,
    )
    factory = LineServerFactory(
        "chat",
        context,
        lambda context: ChatProtocol(context, service, greeting, policy),
    )
    factory.service = service
    factory.banner = greeting
    factory.policy = policy
    return factory


def buildFactory(
    mode: str,
    limits: Limits,
    clock: IReactorTime,
    banner: str,
    logConnections: bool = True,
    perIPScope: str = "per address",
    service: ChatService | None = None,
) -> LineServerFactory:
    """
    Return the factory of a C{mode} server enforcing C{limits}, with a
    registry of its own; for chat, its members are people of C{service}, by
    default a service of its own whose rooms keep the last
    C{limits.history} lines.
    """
    registry = ConnectionRegistry(
        limits.maxPerIP,
        limits.maxConnections,
        LogLimiter(clock),
        perIPScope=perIPScope,
    )
    context = ServerContext(limits, registry, clock, logConnections)
    if mode == "echo":
        return echoFactory(context)
    if mode == "oneshot":
        return oneShotFactory(context)
    if service is None:
        service = ChatService(roomRules(limits), clock)
    return chatFactory(context, service, banner)


def roomRules(
    limits: Limits,
    default: str = DEFAULT_ROOM,
    maxRooms: int = DEFAULT_MAX_ROOMS,
    fixed: tuple[str, ...] = (),
) -> RoomRules:
    """
    Return the rules of the rooms of a chat server enforcing C{limits}.
    """
    return RoomRules(
        default=default,
        capacity=limits.maxClients,
        presenceLimit=limits.presenceLimit,
        history=limits.history,
        historyBytes=historyBudget(limits.maxPending),
        maxRooms=maxRooms,
        fixed=fixed,
    )

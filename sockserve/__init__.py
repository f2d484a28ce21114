"""
sockserve: echo, one-shot reply and chat line servers on Twisted.

The servers are run by C{twistd sockserve} (see L{sockserve.tap}); the client
is C{sockserve-client} (see L{sockserve.client}). What this module exports is
the public API; modules and names with a leading underscore are internal.

Layers, from the outside in: L{makeService} (the twistd plugin's) builds a
L{LineServerService}, which listens with one L{LineServerFactory} per
listener; the factory builds a protocol per connection (L{EchoProtocol},
L{OneShotReplyProtocol}, L{ChatProtocol}), each a L{LineServerProtocol} given
its collaborators (L{ServerContext}, L{Limits}). Chat front ends hand their
clients' input to a L{ChatSession}, which speaks to the L{ChatService}: its
rooms (L{ChatRoom}) and people (L{IPeople}); rooms hand members
(L{IChatMember}) events, formatted once per wire.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from sockserve._version import __version__

if TYPE_CHECKING:
    from sockserve._connections import ConnectionRegistry
    from sockserve.chat import (
        Banner,
        ChatConnection,
        ChatEvent,
        ChatPolicy,
        ChatProtocol,
        ChatRoom,
        ChatService,
        ChatSession,
        ChatWire,
        Error,
        IChatMember,
        IChatRoom,
        IPeople,
        IRoomDirectory,
        Joined,
        Left,
        LineWire,
        Message,
        NameRejected,
        Notice,
        OutputPressure,
        PrivateMessage,
        Renamed,
        RoomFull,
        RoomRejected,
        RoomRules,
    )
    from sockserve.echo import EchoProtocol
    from sockserve.factories import LineServerFactory, buildFactory
    from sockserve.limits import Limits
    from sockserve.oneshot import OneShotReplyProtocol
    from sockserve.protocol import LineServerProtocol, ServerContext
    from sockserve.service import LineServerService, Listener
    from sockserve.tap import Options, makeService

# Where each public name lives: importing C{sockserve} imports none of them,
# so that the client (which needs none) starts without the servers' modules;
# each is imported when first asked for.
_WHERE = {
    "Banner": "sockserve.chat",
    "buildFactory": "sockserve.factories",
    "ChatConnection": "sockserve.chat",
    "ChatEvent": "sockserve.chat",
    "ChatPolicy": "sockserve.chat",
    "ChatProtocol": "sockserve.chat",
    "ChatRoom": "sockserve.chat",
    "ChatService": "sockserve.chat",
    "ChatSession": "sockserve.chat",
    "ChatWire": "sockserve.chat",
    "ConnectionRegistry": "sockserve._connections",
    "EchoProtocol": "sockserve.echo",
    "Error": "sockserve.chat",
    "IChatMember": "sockserve.chat",
    "IChatRoom": "sockserve.chat",
    "IPeople": "sockserve.chat",
    "IRoomDirectory": "sockserve.chat",
    "Joined": "sockserve.chat",
    "Left": "sockserve.chat",
    "Limits": "sockserve.limits",
    "LineServerFactory": "sockserve.factories",
    "LineServerProtocol": "sockserve.protocol",
    "LineServerService": "sockserve.service",
    "LineWire": "sockserve.chat",
    "Listener": "sockserve.service",
    "makeService": "sockserve.tap",
    "Message": "sockserve.chat",
    "NameRejected": "sockserve.chat",
    "Notice": "sockserve.chat",
    "OneShotReplyProtocol": "sockserve.oneshot",
    "Options": "sockserve.tap",
    "OutputPressure": "sockserve.chat",
    "PrivateMessage": "sockserve.chat",
    "Renamed": "sockserve.chat",
    "RoomFull": "sockserve.chat",
    "RoomRejected": "sockserve.chat",
    "RoomRules": "sockserve.chat",
    "ServerContext": "sockserve.protocol",
}

__all__ = [
    "Banner",
    "ChatConnection",
    "ChatEvent",
    "ChatPolicy",
    "ChatProtocol",
    "ChatRoom",
    "ChatService",
    "ChatSession",
    "ChatWire",
    "ConnectionRegistry",
    "EchoProtocol",
    "Error",
    "IChatMember",
    "IChatRoom",
    "IPeople",
    "IRoomDirectory",
    "Joined",
    "Left",
    "Limits",
    "LineServerFactory",
    "LineServerProtocol",
    "LineServerService",
    "LineWire",
    "Listener",
    "Message",
    "NameRejected",
    "Notice",
    "OneShotReplyProtocol",
    "Options",
    "OutputPressure",
    "PrivateMessage",
    "Renamed",
    "RoomFull",
    "RoomRejected",
    "RoomRules",
    "ServerContext",
    "__version__",
    "buildFactory",
    "makeService",
]


def __getattr__(name: str) -> Any:
    """
    Import a public name's module when the name is first asked for.
    """
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(where), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))

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

from sockserve._connections import ConnectionRegistry
from sockserve._version import __version__
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

"""
The chat room and everything members share, whatever carries them.

Layers, from the wire in: a front end (L{ChatProtocol} for line clients)
frames input and hands whole lines to a L{ChatSession}, which runs commands,
makes text safe and bounds output; the session speaks to an L{IChatRoom}
(L{ChatRoom}, in this process), which owns names, capacity and presence and
hands every member L{events<sockserve.chat.events>}, each formatted once per
wire.
"""

from sockserve.chat.events import (
    Banner,
    ChatEvent,
    ChatWire,
    Error,
    Joined,
    Left,
    Members,
    Message,
    NameChanged,
    Notice,
    Renamed,
    Welcome,
)
from sockserve.chat.pacing import OutputPressure
from sockserve.chat.policy import ChatPolicy
from sockserve.chat.protocol import DEFAULT_BANNER, LINE_WIRE, ChatProtocol, LineWire
from sockserve.chat.room import (
    ChatRoom,
    IChatMember,
    IChatRoom,
    NameRejected,
    RoomFull,
    checkName,
)
from sockserve.chat.session import ChatConnection, ChatSession

__all__ = [
    "DEFAULT_BANNER",
    "LINE_WIRE",
    "Banner",
    "ChatConnection",
    "ChatEvent",
    "ChatPolicy",
    "ChatProtocol",
    "ChatRoom",
    "ChatSession",
    "ChatWire",
    "Error",
    "IChatMember",
    "IChatRoom",
    "Joined",
    "Left",
    "LineWire",
    "Members",
    "Message",
    "NameChanged",
    "NameRejected",
    "Notice",
    "OutputPressure",
    "Renamed",
    "RoomFull",
    "Welcome",
    "checkName",
]

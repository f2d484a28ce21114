"""
The chat service and everything its members share, whatever carries them.

Layers, from the wire in: a front end (L{ChatProtocol} for line clients,
L{sockserve.web} for WebSockets) frames input and hands it to a
L{ChatSession}, which runs commands (L{sockserve.chat.commands}), makes text
safe and bounds output; the session speaks to the L{ChatService}, which owns
the rooms (L{ChatRoom}) and the people's names (L{IPeople}); rooms hand
their members L{events<sockserve.chat.events>}, each formatted once per
wire. A bus (L{sockserve.bus}) plugs into the service and its rooms by
composition: a registry of people, a directory of rooms, a relay.
"""

from sockserve.chat.events import (
    Banner,
    ChatEvent,
    ChatWire,
    Entered,
    Error,
    Joined,
    Left,
    Members,
    Message,
    NameChanged,
    Notice,
    Parted,
    PrivateMessage,
    PrivateSent,
    Renamed,
    Rooms,
    Welcome,
)
from sockserve.chat.linewire import LINE_WIRE, LineWire
from sockserve.chat.names import NameRejected, RoomRejected, checkName, nameKey
from sockserve.chat.pacing import OutputPressure
from sockserve.chat.people import IChatMember, IPeople, LocalPeople, NobodyThere
from sockserve.chat.policy import ChatPolicy
from sockserve.chat.protocol import DEFAULT_BANNER, ChatProtocol
from sockserve.chat.room import ChatRoom, IChatRoom, IRoomRelay, IRoster, RoomFull
from sockserve.chat.service import ChatService, IRoomDirectory, RoomRules
from sockserve.chat.session import ChatConnection, ChatSession, SessionState

__all__ = [
    "DEFAULT_BANNER",
    "LINE_WIRE",
    "Banner",
    "ChatConnection",
    "ChatEvent",
    "ChatPolicy",
    "ChatProtocol",
    "ChatRoom",
    "ChatService",
    "ChatSession",
    "ChatWire",
    "Entered",
    "Error",
    "IChatMember",
    "IChatRoom",
    "IPeople",
    "IRoomDirectory",
    "IRoomRelay",
    "IRoster",
    "Joined",
    "Left",
    "LineWire",
    "LocalPeople",
    "Members",
    "Message",
    "NameChanged",
    "NameRejected",
    "NobodyThere",
    "Notice",
    "OutputPressure",
    "Parted",
    "PrivateMessage",
    "PrivateSent",
    "Renamed",
    "RoomFull",
    "RoomRejected",
    "RoomRules",
    "Rooms",
    "SessionState",
    "Welcome",
    "checkName",
    "nameKey",
]

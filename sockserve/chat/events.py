"""
What happens in the chat service, as events.

The service hands every member events, not bytes (as C{twisted.words}'
C{IChatClient} receives messages and joins rather than IRC lines), so that
each kind of member formats them for its own wire: a TCP client gets
C{<name> text} lines, a WebSocket client gets frames, an IRC client gets
C{PRIVMSG}s, a bridge to other processes gets the event itself.

Events that happen in a room name it (C{room}): a member may be in several
rooms at once (the page, IRC clients), and a wire that shows one room at a
time (a line client's) may leave the name out.

A line that starts with L{ACTION} is an action (C{/me waves}, IRC's CTCP
ACTION) rather than something said, and one that starts with L{NOTICE} is a
notice (IRC's C{NOTICE}: something said that no program should answer):
each wire shows them as its clients expect (C{* alice waves}, C{-alice-
text}). No client can send those bytes: lines are made safe
(L{sockserve._text.safeText}) before they are said, and control characters
never pass.

A wire is an object with one method per kind of event (L{ChatWire}). An event
formats itself for a wire once and keeps the result, so a broadcast to a
thousand members of one wire formats its lines once, whoever asks first. A wire
is therefore one object per kind of front end (L{sockserve.chat.LINE_WIRE}),
shared by all its members, never one per connection.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Protocol

ACTION = b"\x01"
"""What starts a line that is an action (C{/me}), not something said."""

NOTICE = b"\x05"
"""What starts a line that is a notice (IRC's C{NOTICE}), not a message."""

MARKS = (ACTION, NOTICE)
"""The marks a line may start with (one at most)."""


OWN_NAME = b"\x00"
"""
Where a wire puts the recipient's own name, in what it formats for one
member (an IRC numeric is addressed to its recipient's nickname): a session
made with C{personal} puts its name there as it receives the event. No
name or line holds it: they are made safe first.
"""


def isAction(line: bytes) -> bool:
    """
    Tell whether C{line} is an action (see L{ACTION}).
    """
    return line[:1] == ACTION


def isNotice(line: bytes) -> bool:
    """
    Tell whether C{line} is a notice (see L{NOTICE}).
    """
    return line[:1] == NOTICE


@dataclass(frozen=True, slots=True)
class Topic:
    """
    A room's topic.

    @ivar text: what it says (safe to show; empty: the room has no topic,
        C{setter} cleared it).
    @ivar setter: who set it.
    @ivar at: when, in seconds since the epoch.
    """

    text: str
    setter: str
    at: float


class ChatWire(Protocol):
    """
    How one kind of member puts events on its wire: each method returns the
    bytes to send for one kind of event.
    """

    def message(self, room: str, sender: str, lines: Sequence[bytes]) -> bytes:
        """
        Lines C{sender} said in C{room}; each is UTF-8 already made safe to
        show, without its line ending.
        """

    def private(self, sender: str, lines: Sequence[bytes]) -> bytes:
        """
        Lines C{sender} said to this member alone (safe UTF-8, as for
        L{message}).
        """

    def privateSent(self, recipient: str, lines: Sequence[bytes]) -> bytes:
        """
        Lines this member said to C{recipient} alone went through.
        """

    def joined(self, room: str, name: str) -> bytes:
        """
        C{name} joined C{room}.
        """

    def left(self, room: str, name: str, quit: bool, reason: str = "") -> bytes:
        """
        C{name} left C{room}: it parted, or, if C{quit}, it left the chat;
        C{reason} is what it said as it went (safe text), or empty.
        """

    def kicked(
        self, room: str, name: str, by: str, reason: str = "", you: bool = False
    ) -> bytes:
        """
        The operator C{by} removed C{name} from C{room} (saying C{reason},
        safe text, or empty); as the member removed is told, if C{you}.
        """

    def renamed(self, room: str, oldName: str, newName: str) -> bytes:
        """
        C{oldName}, in C{room}, is now known as C{newName}.
        """

    def quietly(self, room: str, joined: Sequence[str], left: Sequence[str]) -> bytes:
        """
        Members who joined (C{joined}) and left (C{left}) C{room} without it
        being announced (an address that comes and goes again and again): a
        summary of a while.
        """

    def notice(self, text: str) -> bytes:
        """
        A notice from the server (one line, or several separated by LF).
        """

    def error(self, text: str, kind: str, subject: str) -> bytes:
        """
        Something the member asked for failed, or it is being refused:
        C{text} says why, C{kind} (one of L{ErrorKind}'s, or empty) says
        what failed for a wire that tells kinds apart, and C{subject} what
        it concerned (a room, a name), if anything.
        """

    def banner(self, text: str) -> bytes:
        """
        The welcome banner, its lines separated by LF.
        """

    def welcome(
        self, name: str, peer: str, room: str, others: int, topic: Topic | None
    ) -> bytes:
        """
        The member, connected from C{peer}, was admitted as C{name} into
        C{room}, with C{others} other members there, and its C{topic} if it
        has one.
        """

    def entered(
        self,
        room: str,
        others: int,
        names: Sequence[str],
        topic: Topic | None,
        operators: Collection[str] = (),
    ) -> bytes:
        """
        The member joined C{room}, where C{others} other members are;
        C{names} are all the members' (the member's own too), sorted, of
        which C{operators} are operators; the room's C{topic}, if it has
        one.
        """

    def topic(self, room: str, topic: Topic | None, changed: bool) -> bytes:
        """
        C{room}'s topic (C{None} or an empty text: it has none): just
        changed if C{changed}, or as the member asked to see it.
        """

    def parted(self, room: str) -> bytes:
        """
        The member left C{room}.
        """

    def members(self, room: str, names: Sequence[str], total: int) -> bytes:
        """
        Who is in C{room}: C{names} (sorted, perhaps only the first of them)
        of C{total} members.
        """

    def rooms(self, rooms: Sequence[tuple[str, int]], total: int) -> bytes:
        """
        The rooms, C{(name, members)} (sorted, perhaps only the first of
        them), of C{total} rooms.
        """

    def nameChanged(self, name: str, oldName: str) -> bytes:
        """
        The member itself, C{oldName} until now, is now known as C{name}.
        """

    def history(
        self, room: str, lines: Sequence[tuple[str, bytes]], omitted: int
    ) -> bytes:
        """
        What was said in C{room} before the member joined: C{(sender, line)}
        pairs, oldest first, each line UTF-8 already made safe to show; and
        how many lines said before those are not shown (too long to show).
        """


class ChatEvent:
    """
    Something that happened, formatted at most once per wire.

    @ivar encoded: what the event has been formatted into so far, by wire
        (see L{encodedFor}); a member on the hot path may look its wire up
        here first.
    """

    __slots__ = ("encoded",)

    def __init__(self) -> None:
        self.encoded: dict[ChatWire, bytes] = {}

    def encodedFor(self, wire: ChatWire) -> bytes:
        """
        Return this event formatted for C{wire}: formatted on the first call
        for that wire, the same bytes on every later one.
        """
        try:
            return self.encoded[wire]
        except KeyError:
            data = self.encoded[wire] = self.encode(wire)
            return data

    def encode(self, wire: ChatWire) -> bytes:
        """
        Format this event for C{wire}.
        """
        raise NotImplementedError()

    def __repr__(self) -> str:
        fields = ", ".join(
            f"{name}={getattr(self, name)!r}"
            for cls in reversed(type(self).__mro__)
            for name in getattr(cls, "__slots__", ())
            if name != "encoded"
        )
        return f"{type(self).__name__}({fields})"


class RoomEvent(ChatEvent):
    """
    Something that happened in a room.

    @ivar room: the room's name.
    """

    __slots__ = ("room",)

    def __init__(self, room: str) -> None:
        super().__init__()
        self.room = room


class Message(RoomEvent):
    """
    Lines a member said in a room.

    @ivar sender: the sender's name.
    @ivar lines: the lines, as UTF-8 already made safe to show (see
        L{sockserve.chat.session}), without line endings.
    """

    __slots__ = ("lines", "sender")

    def __init__(self, room: str, sender: str, lines: Sequence[bytes]) -> None:
        super().__init__(room)
        self.sender = sender
        self.lines = tuple(lines)

    def encode(self, wire: ChatWire) -> bytes:
        """
        Format the lines for C{wire}.
        """
        return wire.message(self.room, self.sender, self.lines)


class PrivateMessage(ChatEvent):
    """
    Lines a member said to one other member only.

    @ivar sender: the sender's name.
    @ivar lines: the lines, as UTF-8 already made safe to show.
    """

    __slots__ = ("lines", "sender")

    def __init__(self, sender: str, lines: Sequence[bytes]) -> None:
        super().__init__()
        self.sender = sender
        self.lines = tuple(lines)

    def encode(self, wire: ChatWire) -> bytes:
        """
        Format the lines for C{wire}.
        """
        return wire.private(self.sender, self.lines)


class PrivateSent(ChatEvent):
    """
    Lines the member said to one other member went through (shown to the
    sender, as its own).

    @ivar recipient: the recipient's name.
    @ivar lines: the lines, as UTF-8 already made safe to show.
    """

    __slots__ = ("lines", "recipient")

    def __init__(self, recipient: str, lines: Sequence[bytes]) -> None:
        super().__init__()
        self.recipient = recipient
        self.lines = tuple(lines)

    def encode(self, wire: ChatWire) -> bytes:
        """
        Format the lines for C{wire}.
        """
        return wire.privateSent(self.recipient, self.lines)


class Joined(RoomEvent):
    """
    A member joined a room.
    """

    __slots__ = ("name",)

    def __init__(self, room: str, name: str) -> None:
        super().__init__(room)
        self.name = name

    def encode(self, wire: ChatWire) -> bytes:
        """
        Format the join for C{wire}.
        """
        return wire.joined(self.room, self.name)


class Left(RoomEvent):
    """
    A member left a room.

    @ivar quit: whether it left the chat (it is gone from every room), or
        only parted from this room.
    @ivar reason: what it said as it went (IRC's C{QUIT :reason}, C{/quit
        reason}), safe to show; or empty.
    """

    __slots__ = ("name", "quit", "reason")

    def __init__(
        self, room: str, name: str, quit: bool = False, reason: str = ""
    ) -> None:
        super().__init__(room)
        self.name = name
        self.quit = quit
        self.reason = reason

    def encode(self, wire: ChatWire) -> bytes:
        """
        Format the departure for C{wire}.
        """
        return wire.left(self.room, self.name, self.quit, self.reason)


class Kicked(RoomEvent):
    """
    An operator removed a member from a room (IRC's C{KICK}).

    @ivar name: the member's name.
    @ivar by: the operator's name.
    @ivar reason: why, safe to show; or empty.
    @ivar you: whether it is the member removed that is told.
    """

    __slots__ = ("by", "name", "reason", "you")

    def __init__(
        self, room: str, name: str, by: str, reason: str = "", you: bool = False
    ) -> None:
        super().__init__(room)
        self.name = name
        self.by = by
        self.reason = reason
        self.you = you

    def encode(self, wire: ChatWire) -> bytes:
        """
        Format the removal for C{wire}.
        """
        return wire.kicked(self.room, self.name, self.by, self.reason, self.you)


class Renamed(RoomEvent):
    """
    A member of a room changed its name.
    """

    __slots__ = ("newName", "oldName")

    def __init__(self, room: str, oldName: str, newName: str) -> None:
        super().__init__(room)
        self.oldName = oldName
        self.newName = newName

    def encode(self, wire: ChatWire) -> bytes:
        """
        Format the change of name for C{wire}.
        """
        return wire.renamed(self.room, self.oldName, self.newName)


class QuietPresence(RoomEvent):
    """
    A summary of the joins and departures that were not announced.

    @ivar joined: who joined quietly, in order.
    @ivar left: who left quietly, in order.
    """

    __slots__ = ("joined", "left")

    def __init__(self, room: str, joined: Sequence[str], left: Sequence[str]) -> None:
        super().__init__(room)
        self.joined = tuple(joined)
        self.left = tuple(left)

    def encode(self, wire: ChatWire) -> bytes:
        """
        Format the summary for C{wire}.
        """
        return wire.quietly(self.room, self.joined, self.left)


class Notice(ChatEvent):
    """
    A notice from the server: an answer to a command, a greeting, a goodbye.
    """

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def encode(self, wire: ChatWire) -> bytes:
        """
        Format the notice for C{wire}.
        """
        return wire.notice(self.text)


class ErrorKind:
    """
    What failed, for a wire that tells failures apart (IRC answers each
    with its own numeric); the text says it to people.
    """

    UNKNOWN_COMMAND = "unknown-command"
    USAGE = "usage"
    NO_ROOM = "no-room"
    NOT_IN_ROOM = "not-in-room"
    ALREADY_IN_ROOM = "already-in-room"
    ROOM_FULL = "room-full"
    ROOM_REFUSED = "room-refused"
    TOO_MANY_ROOMS = "too-many-rooms"
    NAME_INVALID = "name-invalid"
    NAME_TAKEN = "name-taken"
    TOO_MANY_RENAMES = "too-many-renames"
    NOBODY = "nobody"
    UNREACHABLE = "unreachable"
    UNAVAILABLE = "unavailable"
    LOGIN = "login"
    NOT_OPERATOR = "not-operator"
    MUTED = "muted"


class Error(ChatEvent):
    """
    A command failed, or the member is refused.

    @ivar kind: what failed (one of L{ErrorKind}'s), or empty.
    @ivar subject: what it concerned (a room, a name), or empty.
    """

    __slots__ = ("kind", "subject", "text")

    def __init__(self, text: str, kind: str = "", subject: str = "") -> None:
        super().__init__()
        self.text = text
        self.kind = kind
        self.subject = subject

    def encode(self, wire: ChatWire) -> bytes:
        """
        Format the error for C{wire}.
        """
        return wire.error(self.text, self.kind, self.subject)


class Banner(ChatEvent):
    """
    The welcome banner, the same for every member: one event serves them all.
    """

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def encode(self, wire: ChatWire) -> bytes:
        """
        Format the banner for C{wire}.
        """
        return wire.banner(self.text)


class Welcome(ChatEvent):
    """
    The member was admitted: its name, where it connected from, its room,
    and how many others are there.
    """

    __slots__ = ("name", "others", "peer", "room", "topic")

    def __init__(
        self, name: str, peer: str, room: str, others: int, topic: Topic | None = None
    ) -> None:
        super().__init__()
        self.name = name
        self.peer = peer
        self.room = room
        self.others = others
        self.topic = topic

    def encode(self, wire: ChatWire) -> bytes:
        """
        Format the welcome for C{wire}.
        """
        return wire.welcome(self.name, self.peer, self.room, self.others, self.topic)


class Entered(RoomEvent):
    """
    The member joined a room, where C{others} other members are.

    @ivar names: every member's name, the member's own too, sorted.
    @ivar operators: those of C{names} that are operators'.
    """

    __slots__ = ("names", "operators", "others", "topic")

    def __init__(
        self,
        room: str,
        others: int,
        names: Sequence[str] = (),
        topic: Topic | None = None,
        operators: Collection[str] = (),
    ) -> None:
        super().__init__(room)
        self.others = others
        self.names = tuple(names)
        self.topic = topic
        self.operators = operators

    def encode(self, wire: ChatWire) -> bytes:
        """
        Format the entry for C{wire}.
        """
        return wire.entered(
            self.room, self.others, self.names, self.topic, self.operators
        )


class TopicChanged(RoomEvent):
    """
    A room's topic, just changed (or shown, as the member asked).

    @ivar topic: the topic, or C{None} for none.
    @ivar changed: whether it just changed.
    """

    __slots__ = ("changed", "topic")

    def __init__(self, room: str, topic: Topic | None, changed: bool = True) -> None:
        super().__init__(room)
        self.topic = topic
        self.changed = changed

    def encode(self, wire: ChatWire) -> bytes:
        """
        Format the topic for C{wire}.
        """
        return wire.topic(self.room, self.topic, self.changed)


class Parted(RoomEvent):
    """
    The member left a room.
    """

    __slots__ = ()

    def encode(self, wire: ChatWire) -> bytes:
        """
        Format the departure for C{wire}.
        """
        return wire.parted(self.room)


class Members(RoomEvent):
    """
    Who is in a room, as the member asked (C{/who}).

    @ivar names: the names listed (sorted; perhaps only the first ones).
    @ivar total: how many members there are in all.
    """

    __slots__ = ("names", "total")

    def __init__(self, room: str, names: Sequence[str], total: int) -> None:
        super().__init__(room)
        self.names = tuple(names)
        self.total = total

    def encode(self, wire: ChatWire) -> bytes:
        """
        Format the list for C{wire}.
        """
        return wire.members(self.room, self.names, self.total)


class Rooms(ChatEvent):
    """
    The rooms there are, as the member asked (C{/rooms}).

    @ivar rooms: C{(name, members)} pairs (sorted; perhaps only the first).
    @ivar total: how many rooms there are in all.
    """

    __slots__ = ("rooms", "total")

    def __init__(self, rooms: Sequence[tuple[str, int]], total: int) -> None:
        super().__init__()
        self.rooms = tuple(rooms)
        self.total = total

    def encode(self, wire: ChatWire) -> bytes:
        """
        Format the list for C{wire}.
        """
        return wire.rooms(self.rooms, self.total)


class NameChanged(ChatEvent):
    """
    The member's own change of name went through (or the service changed
    it).

    @ivar name: the new name.
    @ivar oldName: the name until now.
    """

    __slots__ = ("name", "oldName")

    def __init__(self, name: str, oldName: str = "") -> None:
        super().__init__()
        self.name = name
        self.oldName = oldName

    def encode(self, wire: ChatWire) -> bytes:
        """
        Format the change for C{wire}.
        """
        return wire.nameChanged(self.name, self.oldName)


class History(RoomEvent):
    """
    A room's last lines, for a member that just joined it (C{--history}).

    @ivar lines: C{(sender, line)} pairs, oldest first.
    @ivar omitted: how many of the last lines said are not shown before
        those (the history shown is bounded in bytes).
    """

    __slots__ = ("lines", "omitted")

    def __init__(
        self, room: str, lines: Sequence[tuple[str, bytes]], omitted: int = 0
    ) -> None:
        super().__init__(room)
        self.lines = tuple(lines)
        self.omitted = omitted

    def encode(self, wire: ChatWire) -> bytes:
        """
        Format the history for C{wire}.
        """
        return wire.history(self.room, self.lines, self.omitted)

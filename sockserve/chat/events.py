"""
What happens in a chat room, as events.

The room hands every member events, not bytes (as C{twisted.words}' C{IChatClient}
receives messages and joins rather than IRC lines), so that each kind of member
formats them for its own wire: a TCP client gets C{<name> text} lines, a
WebSocket client gets frames, a bridge to other processes gets the event itself.

A wire is an object with one method per kind of event (L{ChatWire}). An event
formats itself for a wire once and keeps the result, so a broadcast to a
thousand members of one wire formats its lines once, whoever asks first. A wire
is therefore one object per kind of front end (L{sockserve.chat.LINE_WIRE}),
shared by all its members, never one per connection.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class ChatWire(Protocol):
    """
    How one kind of member puts events on its wire: each method returns the
    bytes to send for one kind of event.
    """

    def message(self, sender: str, lines: Sequence[bytes]) -> bytes:
        """
        Lines C{sender} said; each is UTF-8 already made safe to show, without
        its line ending.
        """

    def joined(self, name: str) -> bytes:
        """
        C{name} joined the room.
        """

    def left(self, name: str) -> bytes:
        """
        C{name} left the room.
        """

    def renamed(self, oldName: str, newName: str) -> bytes:
        """
        C{oldName} is now known as C{newName}.
        """

    def notice(self, text: str) -> bytes:
        """
        A notice from the server (one line, or several separated by LF).
        """

    def error(self, text: str) -> bytes:
        """
        Something the member asked for failed, or it is being refused.
        """

    def banner(self, text: str) -> bytes:
        """
        The welcome banner, its lines separated by LF.
        """

    def welcome(self, name: str, others: int) -> bytes:
        """
        The member was admitted as C{name}, with C{others} other members.
        """

    def members(self, names: Sequence[str], total: int) -> bytes:
        """
        Who is here: C{names} (sorted, perhaps only the first of them) of
        C{total} members.
        """

    def nameChanged(self, name: str) -> bytes:
        """
        The member itself is now known as C{name}.
        """

    def history(self, lines: Sequence[tuple[str, bytes]], omitted: int) -> bytes:
        """
        What was said before the member joined: C{(sender, line)} pairs,
        oldest first, each line UTF-8 already made safe to show; and how
        many lines said before those are not shown (too long to show).
        """

    def quietly(self, joined: Sequence[str], left: Sequence[str]) -> bytes:
        """
        Members who joined (C{joined}) and left (C{left}) without it being
        announced (an address that comes and goes again and again): a
        summary of a while.
        """


class ChatEvent:
    """
    Something that happened in a room, formatted at most once per wire.

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
            for cls in type(self).__mro__
            for name in getattr(cls, "__slots__", ())
            if name != "encoded"
        )
        return f"{type(self).__name__}({fields})"


class Message(ChatEvent):
    """
    Lines a member said.

    @ivar sender: the sender's name.
    @ivar lines: the lines, as UTF-8 already made safe to show (see
        L{sockserve.chat.session}), without line endings.
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
        return wire.message(self.sender, self.lines)


class Joined(ChatEvent):
    """
    A member joined the room.
    """

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name

    def encode(self, wire: ChatWire) -> bytes:
        """
        Format the join for C{wire}.
        """
        return wire.joined(self.name)


class Left(ChatEvent):
    """
    A member left the room.
    """

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name

    def encode(self, wire: ChatWire) -> bytes:
        """
        Format the departure for C{wire}.
        """
        return wire.left(self.name)


class Renamed(ChatEvent):
    """
    A member changed its name.
    """

    __slots__ = ("newName", "oldName")

    def __init__(self, oldName: str, newName: str) -> None:
        super().__init__()
        self.oldName = oldName
        self.newName = newName

    def encode(self, wire: ChatWire) -> bytes:
        """
        Format the change of name for C{wire}.
        """
        return wire.renamed(self.oldName, self.newName)


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


class Error(ChatEvent):
    """
    A command failed, or the member is refused.
    """

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def encode(self, wire: ChatWire) -> bytes:
        """
        Format the error for C{wire}.
        """
        return wire.error(self.text)


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
    The member was admitted: its name, and how many others are here.
    """

    __slots__ = ("name", "others")

    def __init__(self, name: str, others: int) -> None:
        super().__init__()
        self.name = name
        self.others = others

    def encode(self, wire: ChatWire) -> bytes:
        """
        Format the welcome for C{wire}.
        """
        return wire.welcome(self.name, self.others)


class Members(ChatEvent):
    """
    Who is here, as the member asked (C{/who}).

    @ivar names: the names listed (sorted; perhaps only the first ones).
    @ivar total: how many members there are in all.
    """

    __slots__ = ("names", "total")

    def __init__(self, names: Sequence[str], total: int) -> None:
        super().__init__()
        self.names = tuple(names)
        self.total = total

    def encode(self, wire: ChatWire) -> bytes:
        """
        Format the list for C{wire}.
        """
        return wire.members(self.names, self.total)


class NameChanged(ChatEvent):
    """
    The member's own change of name went through.
    """

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name

    def encode(self, wire: ChatWire) -> bytes:
        """
        Format the change for C{wire}.
        """
        return wire.nameChanged(self.name)


class History(ChatEvent):
    """
    The room's last lines, for a member that just joined (C{--history}).

    @ivar lines: C{(sender, line)} pairs, oldest first.
    @ivar omitted: how many of the last lines said are not shown before
        those (the history shown is bounded in bytes).
    """

    __slots__ = ("lines", "omitted")

    def __init__(self, lines: Sequence[tuple[str, bytes]], omitted: int = 0) -> None:
        super().__init__()
        self.lines = tuple(lines)
        self.omitted = omitted

    def encode(self, wire: ChatWire) -> bytes:
        """
        Format the history for C{wire}.
        """
        return wire.history(self.lines, self.omitted)


class QuietPresence(ChatEvent):
    """
    A summary of the joins and departures that were not announced.

    @ivar joined: who joined quietly, in order.
    @ivar left: who left quietly, in order.
    """

    __slots__ = ("joined", "left")

    def __init__(self, joined: Sequence[str], left: Sequence[str]) -> None:
        super().__init__()
        self.joined = tuple(joined)
        self.left = tuple(left)

    def encode(self, wire: ChatWire) -> bytes:
        """
        Format the summary for C{wire}.
        """
        return wire.quietly(self.joined, self.left)

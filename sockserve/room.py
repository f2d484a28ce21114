"""
The chat room: who is in it, and delivering to everyone but the sender.

The room knows nothing of transports: a member is anything that provides
L{IChatMember}, so the same room can serve TCP clients, WebSocket clients, or a
bridge to other processes.
"""

from __future__ import annotations

import re

from twisted.logger import Logger
from zope.interface import Attribute, Interface

MAX_NAME_LENGTH = 32
_VALID_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-\[\]{}^|]*\Z")


class IChatMember(Interface):
    """
    Someone in a chat room.
    """

    name = Attribute("The member's name (str), unique in its room.")

    def deliver(data: bytes) -> None:  # noqa: N805 (zope.interface style)
        """
        Send C{data}, one or more whole lines, to the member.
        """


class RoomFull(Exception):
    """
    The room is at capacity.
    """


class NameRejected(ValueError):
    """
    A name is invalid or already taken; the message says which.
    """


def checkName(name: str) -> None:
    """
    Raise L{NameRejected} unless C{name} is a valid nickname: 1 to 32
    characters from letters, digits and C{_ . - [ ] { } ^ |}, not starting
    with punctuation.
    """
    if not name:
        raise NameRejected("a name cannot be empty")
    if len(name) > MAX_NAME_LENGTH:
        raise NameRejected(f"a name is at most {MAX_NAME_LENGTH} characters")
    if not _VALID_NAME.match(name):
        raise NameRejected(
            "a name uses letters, digits and _ . - [ ] { } ^ | "
            "and starts with a letter, digit or _"
        )


class ChatRoom:
    """
    The members of one chat room, by name.

    @ivar capacity: the most members at once.
    @ivar presenceLimit: joins and leaves are announced only while the room
        has at most this many members; above it, a join storm would cost
        O(n^2) notices.
    """

    log = Logger()

    def __init__(self, capacity: int, presenceLimit: int = 100) -> None:
        self.capacity = capacity
        self.presenceLimit = presenceLimit
        self._members: dict[str, IChatMember] = {}

    def __len__(self) -> int:
        return len(self._members)

    def __contains__(self, member: object) -> bool:
        name = getattr(member, "name", None)
        return isinstance(name, str) and self._members.get(name.casefold()) is member

    def isFull(self) -> bool:
        """
        Return whether another member would exceed the capacity.
        """
        return len(self._members) >= self.capacity

    def hasName(self, name: str) -> bool:
        """
        Return whether a member has the name C{name} (case-insensitively).
        """
        return name.casefold() in self._members

    def names(self) -> list[str]:
        """
        Return the members' names, sorted.
        """
        return sorted(
            (member.name for member in self._members.values()), key=str.casefold
        )

    def members(self) -> list[IChatMember]:
        """
        Return the members, in order of joining.
        """
        return list(self._members.values())

    def join(self, member: IChatMember) -> None:
        """
        Add C{member}, announcing it to the others.

        @raise RoomFull: at capacity.
        @raise NameRejected: its name is taken.
        """
        if self.isFull():
            raise RoomFull()
        key = member.name.casefold()
        if key in self._members:
            raise NameRejected(f"the name {member.name} is taken")
        self._members[key] = member
        self.announce(f"{member.name} joined", exclude=member)

    def leave(self, member: IChatMember) -> None:
        """
        Remove C{member}, announcing it to the others; a non-member is ignored.
        """
        if member not in self:
            return
        del self._members[member.name.casefold()]
        self.announce(f"{member.name} left", exclude=member)

    def rename(self, member: IChatMember, newName: str) -> str:
        """
        Give C{member} the name C{newName}, telling the others.

        @return: the old name.
        @raise NameRejected: the name is invalid or taken by someone else.
        """
        checkName(newName)
        oldName: str = member.name
        newKey = newName.casefold()
        holder = self._members.get(newKey)
        if holder is not None and holder is not member:
            raise NameRejected(f"the name {newName} is taken")
        del self._members[oldName.casefold()]
        member.name = newName
        self._members[newKey] = member
        self.broadcast(notice(f"{oldName} is now known as {newName}"), exclude=member)
        return oldName

    def announce(self, text: str, exclude: IChatMember | None = None) -> None:
        """
        Send a presence notice to everyone but C{exclude}, unless the room is
        larger than C{presenceLimit}.
        """
        if len(self._members) <= self.presenceLimit:
            self.broadcast(notice(text), exclude=exclude)

    def broadcast(self, data: bytes, exclude: IChatMember | None = None) -> None:
        """
        Deliver C{data} to every member but C{exclude}.

        A member whose delivery fails is logged and skipped; the others still
        receive C{data}. The members are copied first: a delivery may make its
        member leave.
        """
        for member in tuple(self._members.values()):
            if member is exclude:
                continue
            try:
                member.deliver(data)
            except Exception:
                self.log.failure("Delivery to {name} failed", name=member.name)


def notice(text: str) -> bytes:
    """
    Format a server notice line.
    """
    return b"* " + text.encode("utf-8") + b"\r\n"

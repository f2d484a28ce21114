"""
The chat room: who is in it under which name, how many it holds, and
delivering events to everyone but the one who caused them.

The room knows nothing of transports or wires: a member is anything that
provides L{IChatMember} (it receives events), and the room is used only
through L{IChatRoom}, the seam where a room shared by several processes (a
bus) replaces this one. Admission and renaming answer with a L{Deferred},
because a shared room must ask the others first; this one answers at once.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from zope.interface import Attribute, Interface, implementer

from sockserve.chat.events import (
    ChatEvent,
    History,
    Joined,
    Left,
    Message,
    QuietPresence,
    Renamed,
)
from sockserve.chat.names import (
    MAX_NAME_LENGTH,
    NameRejected,
    checkName,
    nameKey,
    takenMessage,
)

__all__ = [
    "MAX_NAME_LENGTH",
    "ChatRoom",
    "IChatMember",
    "IChatRoom",
    "NameRejected",
    "RoomFull",
    "checkName",
    "historyBudget",
    "nameKey",
]


class IChatMember(Interface):
    """
    Someone in a chat room: it receives the room's events.
    """

    def receive(event: ChatEvent) -> None:  # noqa: N805 (zope.interface style)
        """
        Handle C{event}, something that happened in the room.
        """


class RoomFull(Exception):
    """
    The room is at capacity.

    @ivar capacity: the most members the room holds.
    """

    def __init__(self, capacity: int) -> None:
        super().__init__(f"the room is full ({capacity} members)")
        self.capacity = capacity


class IChatRoom(Interface):
    """
    A chat room, as its members' sessions use it: admission, names,
    presence and delivery.
    """

    capacity = Attribute("The most members the room holds at once (int).")

    def join(
        member: IChatMember,  # noqa: N805
        preferredName: str,
        quietly: bool = False,
    ) -> Deferred[str]:
        """
        Admit C{member} under C{preferredName}, or, if that is taken, under
        C{preferredName#2}, C{#3}...; tell the others it joined, unless
        C{quietly} (then its departure is not announced either).

        @return: a L{Deferred} firing with the name given, or failing with
            L{RoomFull}.
        """

    def leave(member: IChatMember) -> None:  # noqa: N805
        """
        Remove C{member}, telling the others; a non-member is ignored.
        """

    def rename(member: IChatMember, newName: str) -> Deferred[str]:  # noqa: N805
        """
        Give C{member} the name C{newName} and tell the others; taking the name
        one already has is a no-op.

        @return: a L{Deferred} firing with the old name, or failing with
            L{NameRejected}.
        """

    def nameOf(member: IChatMember) -> str:  # noqa: N805
        """
        Return C{member}'s name.

        @raise KeyError: it is not a member.
        """

    def say(member: IChatMember, lines: Sequence[bytes]) -> None:  # noqa: N805
        """
        Deliver C{lines} (safe UTF-8, without endings) from C{member} to every
        other member.
        """

    def close() -> None:
        """
        The server is stopping and its members are leaving: from now on,
        nobody here is told of their departures (a room shared with other
        processes still tells those). Idempotent.
        """

    def population() -> int:
        """
        Return how many members the room has.
        """

    def names() -> list[str]:
        """
        Return the members' names, sorted case-insensitively.
        """


# Bytes of history a member joining is shown at most (and the room keeps).
HISTORY_BYTES = 64 * 1024
# Per line shown in history, besides its text and sender: what a wire adds.
_HISTORY_OVERHEAD = 16
# Seconds over which joins and departures that were not announced (see
# C{quietly}) are gathered into one summary.
QUIET_SUMMARY_EVERY = 5.0
# Names listed in one summary of quiet joins or departures.
QUIET_NAMES_SHOWN = 10


def historyBudget(maxPending: int) -> int:
    """
    Return the bytes of history shown to a member joining, for members
    dropped beyond C{maxPending} bytes of output queued: a quarter of it (a
    member's greeting must never be what drops it), at most
    L{HISTORY_BYTES}.
    """
    return max(0, min(HISTORY_BYTES, maxPending // 4))


@implementer(IChatRoom)
class ChatRoom:
    """
    A chat room held in this process.

    @ivar capacity: the most members at once.
    @ivar presenceLimit: joins, leaves and renames are announced only while
        the room has at most this many members; above it, a join storm would
        cost O(n^2) notices.
    @ivar recent: the last lines said, C{(sender, line)}, kept for those who
        join (C{--history}), at most C{historyBytes} of them; C{None} when
        none are kept.
    @ivar historyLines: how many lines C{recent} keeps at most.
    @ivar historyBytes: how many bytes of lines C{recent} keeps at most.
    @ivar clock: the source of time for summaries of quiet joins, or
        C{None} (then they are not summarised).
    """

    log = Logger()

    def __init__(
        self,
        capacity: int,
        presenceLimit: int = 100,
        history: int = 0,
        historyBytes: int = HISTORY_BYTES,
        clock: IReactorTime | None = None,
    ) -> None:
        self.capacity = capacity
        self.presenceLimit = presenceLimit
        self.historyLines = history
        self.historyBytes = historyBytes
        self.recent: deque[tuple[str, bytes]] | None = deque() if history > 0 else None
        self._recentBytes = 0
        self._said = 0
        self.clock = clock
        self._byKey: dict[str, IChatMember] = {}
        self._names: dict[IChatMember, str] = {}
        self._quiet: set[IChatMember] = set()
        self._sortedNames: list[str] | None = None
        self._quietJoins: list[str] = []
        self._quietLeaves: list[str] = []
        self._quietSummary: IDelayedCall | None = None
        self.closed = False

    def __len__(self) -> int:
        return len(self._names)

    def __contains__(self, member: object) -> bool:
        return member in self._names

    def close(self) -> None:
        """
        The server is stopping: announce nothing more.
        """
        self.closed = True
        if self._quietSummary is not None and self._quietSummary.active():
            self._quietSummary.cancel()
        self._quietSummary = None

    def population(self) -> int:
        """
        Return how many members the room has.
        """
        return len(self._names)

    def isFull(self) -> bool:
        """
        Return whether another member would exceed the capacity.
        """
        return len(self._names) >= self.capacity

    def holderOf(self, name: str) -> str | None:
        """
        Return the name of the member whose name is the same as C{name}
        (see L{nameKey}), or C{None}.
        """
        member = self._byKey.get(nameKey(name))
        return None if member is None else self._names.get(member)

    def hasName(self, name: str) -> bool:
        """
        Return whether a member has the name C{name} (see L{nameKey}).
        """
        return nameKey(name) in self._byKey

    def nameOf(self, member: IChatMember) -> str:
        """
        Return C{member}'s name.

        @raise KeyError: it is not a member.
        """
        return self._names[member]

    def names(self) -> list[str]:
        """
        Return the members' names, sorted case-insensitively (sorted once
        per change of membership: /who in a large room costs a copy).
        """
        if self._sortedNames is None:
            self._sortedNames = sorted(self._names.values(), key=str.casefold)
        return list(self._sortedNames)

    def members(self) -> list[IChatMember]:
        """
        Return the members, in order of joining.
        """
        return list(self._names)

    def join(
        self, member: IChatMember, preferredName: str, quietly: bool = False
    ) -> Deferred[str]:
        """
        Admit C{member} under C{preferredName}, made unique with a C{#N}
        suffix if needed, and announce it unless C{quietly}.
        """
        if self.isFull():
            return fail(RoomFull(self.capacity))
        name = preferredName
        suffix = 1
        while self.hasName(name):
            suffix += 1
            name = f"{preferredName}#{suffix}"
        return succeed(self.admit(member, name, quietly))

    def admit(self, member: IChatMember, name: str, quietly: bool) -> str:
        """
        Make C{member} a member as C{name} (free here), announce it unless
        C{quietly} (then it is summarised later), and give it the history;
        return C{name}.
        """
        self._byKey[nameKey(name)] = member
        self._names[member] = name
        self._sortedNames = None
        if quietly:
            self._quiet.add(member)
            self.noteQuietly(joined=name)
        else:
            self.announce(Joined(name), exclude=member)
        self.tellHistory(member)
        return name

    def setName(self, member: IChatMember, oldName: str, newName: str) -> None:
        """
        Call C{member} (now C{oldName}) C{newName}, and tell the others.
        """
        oldKey = nameKey(oldName)
        if self._byKey.get(oldKey) is member:
            del self._byKey[oldKey]
        self._byKey[nameKey(newName)] = member
        self._names[member] = newName
        self._sortedNames = None
        self.announce(Renamed(oldName, newName), exclude=member)

    def tellHistory(self, member: IChatMember) -> None:
        """
        Give a member that just joined the room's last lines, if any are
        kept (before its greeting is sent, so they come right after it).
        """
        if self.recent is None:
            return
        shown = len(self.recent)
        omitted = min(self._said, self.historyLines) - shown
        if shown or omitted:
            member.receive(History(self.recent, omitted))

    def remember(self, sender: str, lines: Sequence[bytes]) -> None:
        """
        Keep C{lines} said by C{sender} for those who join later: the last
        C{historyLines} of them, as many as fit C{historyBytes}.
        """
        recent = self.recent
        if recent is None:
            return
        cost = len(sender) + _HISTORY_OVERHEAD
        for line in lines:
            recent.append((sender, line))
            self._recentBytes += len(line) + cost
        self._said = min(self._said + len(lines), self.historyLines)
        while recent and (
            len(recent) > self.historyLines or self._recentBytes > self.historyBytes
        ):
            oldSender, oldLine = recent.popleft()
            self._recentBytes -= len(oldLine) + len(oldSender) + _HISTORY_OVERHEAD

    def leave(self, member: IChatMember) -> None:
        """
        Remove C{member}, announcing it to the others; a non-member is ignored.
        """
        name = self._names.pop(member, None)
        if name is None:
            return
        key = nameKey(name)
        if self._byKey.get(key) is member:
            del self._byKey[key]
        self._sortedNames = None
        if member in self._quiet:
            self._quiet.discard(member)
            self.noteQuietly(left=name)
        else:
            self.announce(Left(name), exclude=member)

    def rename(self, member: IChatMember, newName: str) -> Deferred[str]:
        """
        Give C{member} the name C{newName}, telling the others.
        """
        try:
            checkName(newName)
        except NameRejected as rejected:
            return fail(rejected)
        oldName = self._names.get(member)
        if oldName is None:
            return fail(NameRejected("only a member of the room has a name"))
        if newName == oldName:
            return succeed(oldName)
        holder = self._byKey.get(nameKey(newName))
        if holder is not None and holder is not member:
            return fail(NameRejected(takenMessage(newName, self._names.get(holder))))
        self.setName(member, oldName, newName)
        return succeed(oldName)

    def say(self, member: IChatMember, lines: Sequence[bytes]) -> None:
        """
        Deliver C{lines} from C{member} to every other member.
        """
        name = self._names[member]
        if self.recent is not None:
            self.remember(name, lines)
        self.broadcast(Message(name, lines), exclude=member)

    def announce(self, event: ChatEvent, exclude: IChatMember | None = None) -> None:
        """
        Deliver a presence event to everyone but C{exclude}, unless the room
        is larger than C{presenceLimit}.
        """
        if self.population() <= self.presenceLimit and not self.closed:
            self.broadcast(event, exclude=exclude)

    def noteQuietly(self, joined: str | None = None, left: str | None = None) -> None:
        """
        Note a join or a departure that was not announced (an address that
        comes and goes again and again): the room is told of those of the
        last L{QUIET_SUMMARY_EVERY} seconds in one summary, so that nobody
        is here unseen.
        """
        if self.clock is None or self.closed:
            return
        if joined is not None:
            self._quietJoins.append(joined)
        if left is not None:
            self._quietLeaves.append(left)
        if self._quietSummary is None:
            self._quietSummary = self.clock.callLater(
                QUIET_SUMMARY_EVERY, self._summariseQuiet
            )

    def _summariseQuiet(self) -> None:
        self._quietSummary = None
        joined, self._quietJoins = self._quietJoins, []
        left, self._quietLeaves = self._quietLeaves, []
        if joined or left:
            self.announce(QuietPresence(joined, left))

    def broadcast(self, event: ChatEvent, exclude: IChatMember | None = None) -> None:
        """
        Deliver C{event} to every member but C{exclude}.

        A member whose delivery fails is logged and skipped; the others still
        receive C{event}. The members are copied first: a delivery may make its
        member leave.
        """
        for member in tuple(self._names):
            if member is exclude:
                continue
            try:
                member.receive(event)
            except Exception:
                self.log.failure(
                    "Delivery to {name} failed", name=self._names.get(member)
                )

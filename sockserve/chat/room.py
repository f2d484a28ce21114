"""
A chat room: who is in it, under which name, what they said lately, and
delivering its events to its members.

There is one room class. What differs for a room shared by the nodes of a
bus is handed to it (as centrifuge composes a broker into its node): a
L{IRoomRelay} that tells the other nodes what happens here (by default,
none), and a L{IRoster} of the members the other nodes hold (by default,
nobody). Those nodes' events come in through L{ChatRoom.heard}, and are
delivered as local ones are.

The room takes members that were admitted already (see
L{sockserve.chat.service}, which decides admission with the bus when there
is one); it never waits.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from zope.interface import Attribute, Interface, implementer

from sockserve._text import plural
from sockserve.chat.events import (
    ChatEvent,
    History,
    Joined,
    Kicked,
    Left,
    Message,
    QuietPresence,
    Renamed,
    RoomEvent,
    Topic,
    TopicChanged,
)
from sockserve.chat.names import nameKey, roomKey
from sockserve.chat.pacing import OutputPressure
from sockserve.chat.people import IChatMember

# Bytes of history a member joining is shown at most (and the room keeps).
HISTORY_BYTES = 64 * 1024
# Per line shown in history, besides its text and sender: what a wire adds.
_HISTORY_OVERHEAD = 16
# Seconds over which joins and departures that were not announced (see
# C{quietly}) are gathered into one summary.
QUIET_SUMMARY_EVERY = 5.0


def historyBudget(maxPending: int) -> int:
    """
    Return the bytes of history shown to a member joining, for members
    dropped beyond C{maxPending} bytes of output queued: a quarter of it (a
    member's greeting must never be what drops it), at most
    L{HISTORY_BYTES}.
    """
    return max(0, min(HISTORY_BYTES, maxPending // 4))


class RoomFull(Exception):
    """
    A room is at capacity.

    @ivar room: the room's name.
    @ivar capacity: the most members it holds.
    """

    def __init__(self, room: str, capacity: int) -> None:
        super().__init__(f"the room #{room} is full ({plural(capacity, 'member')})")
        self.room = room
        self.capacity = capacity


class IRoomRelay(Interface):
    """
    What a room tells the other nodes of a bus.
    """

    def joined(room: ChatRoom, name: str, quietly: bool) -> None:  # noqa: N805
        """
        C{name} joined C{room} here.
        """

    def left(
        room: ChatRoom,  # noqa: N805
        name: str,
        quietly: bool,
        quit: bool,
        reason: str = "",
    ) -> None:
        """
        C{name} left C{room} here (if C{quit}, it left the chat), saying
        C{reason}.
        """

    def renamed(room: ChatRoom, oldName: str, newName: str) -> None:  # noqa: N805
        """
        C{oldName}, a member of C{room} here, is now C{newName}.
        """

    def said(
        room: ChatRoom,  # noqa: N805
        sender: IChatMember,
        name: str,
        lines: Sequence[bytes],
    ) -> None:
        """
        C{sender}, called C{name}, said C{lines} in C{room} here.
        """

    def topic(room: ChatRoom, topic: Topic) -> None:  # noqa: N805
        """
        C{room}'s topic was changed here (to an empty text: cleared).
        """


class IRoster(Interface):
    """
    The members of one room that the other nodes of a bus hold.
    """

    def population() -> int:
        """
        How many there are.
        """

    def names() -> Iterable[str]:
        """
        Their names.
        """

    def holderOf(key: str) -> str | None:  # noqa: N805
        """
        Which node holds the member whose name has the key C{key}, or
        C{None}.
        """


@implementer(IRoster)
class NobodyElsewhere:
    """
    The roster of a room that no other process shares.
    """

    def population(self) -> int:
        """
        Nobody.
        """
        return 0

    def names(self) -> Iterable[str]:
        """
        No names.
        """
        return ()

    def holderOf(self, key: str) -> str | None:
        """
        No node.
        """
        return None


NOBODY_ELSEWHERE = NobodyElsewhere()


class IChatRoom(Interface):
    """
    A chat room, as its members' sessions and the service use it.
    """

    name = Attribute("The room's name (str).")
    key = Attribute("What identifies it: its name in lower case (str).")
    capacity = Attribute("The most members the room holds at once (int).")
    pressure = Attribute("Its readers that are behind (an OutputPressure).")

    def admit(member: IChatMember, name: str, quietly: bool) -> None:  # noqa: N805
        """
        Make C{member}, admitted, a member as C{name}; announce it unless
        C{quietly} (then it is summarised later).
        """

    def tellHistory(member: IChatMember) -> None:  # noqa: N805
        """
        Give C{member}, which just joined, the room's last lines, if any
        are kept.
        """

    def remove(member: IChatMember, quit: bool = False, reason: str = "") -> None:  # noqa: N805
        """
        Remove C{member}, telling the others (that it left the chat, if
        C{quit}, and C{reason}, what it said as it went); a non-member is
        ignored.
        """

    def renamed(member: IChatMember, newName: str) -> None:  # noqa: N805
        """
        C{member} is now called C{newName}: tell the others.
        """

    def say(member: IChatMember, lines: Sequence[bytes]) -> None:  # noqa: N805
        """
        Deliver C{lines} (safe UTF-8, without endings) from C{member} to every
        other member, here and elsewhere.
        """

    def heard(event: RoomEvent) -> None:  # noqa: N805
        """
        Deliver C{event}, which happened on another node, to the members here.
        """

    def population() -> int:
        """
        Return how many members the room has, here and elsewhere.
        """

    def names() -> list[str]:
        """
        Return the members' names, sorted case-insensitively.
        """

    def isFull() -> bool:
        """
        Return whether another member would exceed the capacity.
        """

    def close() -> None:
        """
        The server is stopping: announce nothing more here.
        """


@implementer(IChatRoom)
class ChatRoom:
    """
    A chat room.

    @ivar name: its name, as first given.
    @ivar key: what identifies it (L{roomKey}).
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
    @ivar relay: what tells the other nodes what happens here, or C{None}.
    @ivar roster: the members the other nodes hold.
    @ivar pressure: its members that are behind, whom its bulk senders wait
        for (see L{OutputPressure}); C{None}: nobody waits.
    @ivar topic: its topic (C{None}, or an empty text: none).
    """

    log = Logger()

    def __init__(
        self,
        name: str,
        capacity: int,
        presenceLimit: int = 100,
        history: int = 0,
        historyBytes: int = HISTORY_BYTES,
        clock: IReactorTime | None = None,
        relay: IRoomRelay | None = None,
        roster: IRoster = NOBODY_ELSEWHERE,
        pressure: OutputPressure | None = None,
    ) -> None:
        self.name = name
        self.key = roomKey(name)
        self.capacity = capacity
        self.presenceLimit = presenceLimit
        self.historyLines = history
        self.historyBytes = historyBytes
        self.recent: deque[tuple[str, bytes]] | None = deque() if history > 0 else None
        self._recentBytes = 0
        self._said = 0
        self.clock = clock
        self.relay = relay
        self.roster = roster
        self.pressure = pressure
        self.topic: Topic | None = None
        self._byKey: dict[str, IChatMember] = {}
        self._names: dict[IChatMember, str] = {}
        self._quiet: set[IChatMember] = set()
        self._sortedNames: list[str] | None = None
        self._quietJoins: list[str] = []
        self._quietLeaves: list[str] = []
        self._quietSummary: IDelayedCall | None = None
        self.closed = False

    def __repr__(self) -> str:
        return f"<ChatRoom #{self.name}: {len(self._names)} here>"

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
        Return how many members the room has, here and elsewhere.
        """
        return len(self._names) + self.roster.population()

    def localPopulation(self) -> int:
        """
        Return how many members the room has here.
        """
        return len(self._names)

    def isFull(self) -> bool:
        """
        Return whether another member would exceed the capacity.
        """
        return self.population() >= self.capacity

    def nameOf(self, member: IChatMember) -> str:
        """
        Return C{member}'s name.

        @raise KeyError: it is not a member here.
        """
        return self._names[member]

    def memberCalled(self, name: str) -> IChatMember | None:
        """
        Return the member here whose name is the same as C{name}, or C{None}.
        """
        return self._byKey.get(nameKey(name))

    def names(self) -> list[str]:
        """
        Return the members' names, sorted case-insensitively (sorted once
        per change of membership: /who in a large room costs a copy).
        """
        if self._sortedNames is None:
            self._sortedNames = sorted(
                [*self._names.values(), *self.roster.names()], key=str.casefold
            )
        return list(self._sortedNames)

    def operators(self) -> frozenset[str]:
        """
        Return the names of the members here logged in to an operator's
        account (shown C{@name} to IRC clients).
        """
        return frozenset(
            name
            for member, name in self._names.items()
            if member.account is not None and member.account.isOperator
        )

    def holds(self, name: str) -> bool:
        """
        Tell whether a member here or elsewhere has the name C{name} (or
        one the same, see L{nameKey}).
        """
        key = nameKey(name)
        return key in self._byKey or self.roster.holderOf(key) is not None

    def localNames(self) -> list[str]:
        """
        Return the names of the members here, in order of joining.
        """
        return list(self._names.values())

    def members(self) -> list[IChatMember]:
        """
        Return the members here, in order of joining.
        """
        return list(self._names)

    def isQuiet(self, member: IChatMember) -> bool:
        """
        Return whether C{member} joined quietly (its departure is not
        announced either).
        """
        return member in self._quiet

    def rosterChanged(self) -> None:
        """
        The roster changed: the sorted names are stale.
        """
        self._sortedNames = None

    # Members

    def admit(self, member: IChatMember, name: str, quietly: bool) -> None:
        """
        Make C{member} a member as C{name}, and announce it unless
        C{quietly} (then it is summarised later). Its history is its
        session's to ask for (L{tellHistory}), once it has been told it is
        here.
        """
        self._byKey[nameKey(name)] = member
        self._names[member] = name
        self._sortedNames = None
        if quietly:
            self._quiet.add(member)
            self.noteQuietly(joined=name)
        else:
            self.announce(Joined(self.name, name), exclude=member)
        if self.relay is not None:
            self.relay.joined(self, name, quietly)

    def remove(self, member: IChatMember, quit: bool = False, reason: str = "") -> None:
        """
        Remove C{member}, announcing it to the others (as leaving the chat,
        if C{quit}, or parting from the room, with C{reason} if it gave
        one); a non-member is ignored. Never fails.
        """
        self._remove(member, quit, reason)

    def kick(self, member: IChatMember, by: str, reason: str = "") -> None:
        """
        The operator C{by} removes C{member} (saying C{reason}): everyone
        here is told, the member too; other nodes hear of it as a part
        with the reason C{kicked by ...}. A non-member is ignored.
        """
        name = self._names.get(member)
        if name is None:
            return
        member.receive(Kicked(self.name, name, by, reason, you=True))
        why = f": {reason}" if reason else ""
        self._remove(
            member, False, f"kicked by {by}{why}", Kicked(self.name, name, by, reason)
        )

    def _remove(
        self,
        member: IChatMember,
        quit: bool,
        reason: str,
        event: RoomEvent | None = None,
    ) -> None:
        """
        Remove C{member}, telling the others C{event} (by default that it
        left); other nodes are told it left, saying C{reason}.
        """
        name = self._names.pop(member, None)
        if name is None:
            return
        key = nameKey(name)
        if self._byKey.get(key) is member:
            del self._byKey[key]
        self._sortedNames = None
        quietly = member in self._quiet
        if quietly:
            self._quiet.discard(member)
            self.noteQuietly(left=name)
        else:
            self.announce(
                Left(self.name, name, quit, reason) if event is None else event,
                exclude=member,
            )
        if self.pressure is not None:
            self.pressure.forget(member)
        if self.relay is not None and not self.closed:
            self.relay.left(self, name, quietly, quit, reason)

    def renamed(self, member: IChatMember, newName: str) -> None:
        """
        C{member} is now called C{newName}: tell the others, here and
        elsewhere.
        """
        oldName = self._names.get(member)
        if oldName is None or oldName == newName:
            return
        oldKey = nameKey(oldName)
        if self._byKey.get(oldKey) is member:
            del self._byKey[oldKey]
        self._byKey[nameKey(newName)] = member
        self._names[member] = newName
        self._sortedNames = None
        self.announce(Renamed(self.name, oldName, newName), exclude=member)
        if self.relay is not None:
            self.relay.renamed(self, oldName, newName)

    # What is said

    def say(self, member: IChatMember, lines: Sequence[bytes]) -> None:
        """
        Deliver C{lines} from C{member} to every other member, here and
        (through the relay) elsewhere.
        """
        name = self._names[member]
        if self.recent is not None:
            self.remember(name, lines)
        self.broadcast(Message(self.name, name, lines), exclude=member)
        if self.relay is not None:
            # Delivering may have made the sender leave: its lines go on.
            self.relay.said(self, member, name, lines)

    def setTopic(self, member: IChatMember, text: str) -> Topic:
        """
        C{member} sets the room's topic to C{text} (safe to show; empty:
        none, but who cleared it is told): everyone here is told, the setter
        too, and the other nodes.
        """
        name = self._names[member]
        clock = self.clock
        at = clock.seconds() if clock is not None else 0.0
        topic = Topic(text, name, at)
        self.topic = topic
        self.broadcast(TopicChanged(self.name, topic))
        if self.relay is not None:
            self.relay.topic(self, topic)
        return topic

    def heard(self, event: RoomEvent) -> None:
        """
        Deliver C{event}, from another node, to the members here: lines (kept
        for history too), joins, departures and renames (announced as local
        ones are), and changes of topic.
        """
        if isinstance(event, TopicChanged):
            self.topic = event.topic
            if not self.closed:
                self.broadcast(event)
        elif isinstance(event, Message):
            self.remember(event.sender, event.lines)
            self.broadcast(event)
        elif isinstance(event, QuietPresence):
            for name in event.joined:
                self.noteQuietly(joined=name)
            for name in event.left:
                self.noteQuietly(left=name)
        else:
            self.announce(event)

    # History

    def tellHistory(self, member: IChatMember) -> None:
        """
        Give a member that just joined the room's last lines, if any are
        kept.
        """
        if self.recent is None:
            return
        shown = len(self.recent)
        omitted = min(self._said, self.historyLines) - shown
        if shown or omitted:
            member.receive(History(self.name, self.recent, omitted))

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

    # Delivery

    def announce(self, event: ChatEvent, exclude: IChatMember | None = None) -> None:
        """
        Deliver a presence event to everyone here but C{exclude}, unless the
        room is larger than C{presenceLimit}.
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
            self.announce(QuietPresence(self.name, joined, left))

    def broadcast(self, event: ChatEvent, exclude: IChatMember | None = None) -> None:
        """
        Deliver C{event} to every member here but C{exclude}.

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

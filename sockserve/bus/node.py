"""
One node of a bus: this process's share of the rooms and people of every
node, composed into the chat service.

The service takes three things from the node, each the bus's side of a
seam it has without a bus:

  - L{BusPeople} (an L{IPeople}): names are unique across the bus,
    claimed and renamed in one atomic step in Redis;
  - L{BusRooms} (an L{IRoomDirectory}): admission against each room's
    capacity and the number of rooms, across the bus; the rosters of the
    members other nodes hold; private messages to people elsewhere;
  - the node itself, as every room's L{IRoomRelay}: what happens in a room
    here goes into the L{Outbox}, and from there to the room's stream.

What the other nodes publish comes back from the transport
(L{sockserve.bus.redis.RedisBus}), one C{XREAD} for every stream: it is
delivered to the rooms here (each batch once, each sender's lines in
order) and to the people here. While the bus is away the node decides
alone, from what it last knew, and registers everything again when the bus
is back.

The sender pays across the bus too: every entry carries its offset, every
node reports how far it has read each room, and a room's bulk senders wait
while the slowest node is far behind in it, or while this node's lines for
it pile up in the outbox (see L{BEHIND_ON_BUS}); a node reading a room
stops reading it while members of its own there are far behind.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from twisted.internet.defer import Deferred, fail
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure
from zope.interface import implementer

from sockserve._loglimit import LogLimiter
from sockserve.bus.address import BusAddress
from sockserve.bus.codec import (
    Here,
    Presence,
    Private,
    Rename,
    Said,
    encodeBatch,
    encodeEvent,
    renameIn,
)
from sockserve.bus.outbox import OUTBOX_LIMIT, Batch, Outbox
from sockserve.bus.redis import (
    INBOX_LENGTH,
    BusFull,
    Entry,
    RedisBus,
    Registration,
    Rejoined,
    Snapshot,
    roomStream,
    streamId,
)
from sockserve.bus.roster import Roster
from sockserve.chat.events import (
    Joined,
    Left,
    Message,
    Notice,
    PrivateMessage,
    QuietPresence,
    Renamed,
)
from sockserve.chat.names import (
    NameRejected,
    RoomRejected,
    checkName,
    guestName,
    nameKey,
    takenMessage,
)
from sockserve.chat.people import IChatMember, IPeople, NobodyThere, Unreachable
from sockserve.chat.room import ChatRoom, IRoomRelay, IRoster, RoomFull
from sockserve.chat.service import (
    ChatService,
    IRoomDirectory,
    RoomRules,
    tooManyRooms,
)

__all__ = ["OUTBOX_LIMIT", "BusNode", "BusPeople", "BusRooms", "busChat"]

# Bytes of a room's stream that the slowest node may have left to read, or
# bytes of this node's lines for the room waiting for a bus that is there,
# before the room's bulk senders here wait: the sender pays for every
# node's readers, as it does for the members of its own.
BEHIND_ON_BUS = 1024 * 1024
OUTBOX_BEHIND = 256 * 1024
# Seconds the bus may make no progress (the slowest node reads nothing, the
# outbox does not drain) before senders no longer wait for it.
BUS_PATIENCE = 3.0
# A batch numbered this close below the last one seen from its node is a
# batch published again; further below, the node's numbers started afresh
# (or the one seen was forged): taken as new.
DEDUPE_WINDOW = 4096
# Seconds between two notices that lines may be missing.
MISSING_EVERY = 30.0
# Private messages waiting for the bus, at most; and seconds one may wait.
TELLS_WAITING = 100
TELL_PATIENCE = 30.0

LOST = (
    "lost contact with the other servers; you can still talk with those on "
    "this server, and your lines will reach the others once contact is back"
)
BACK = "back in contact with the other servers"
MISSING = (
    "lines from other servers may be missing: the bus lost some of what was "
    "said while this server was out of contact"
)
DROPPED = (
    "some of your lines did not reach the other servers: contact with them "
    "was lost for too long"
)
DROPPED_WHILE_THERE = (
    "some of your lines did not reach the other servers: the bus could not "
    "take them in time"
)


class _BusReaders:
    """
    The readers of one room on other nodes (and this node's reading of the
    room's stream), as one of the room's readers that are behind.
    """

    def __init__(self, room: str) -> None:
        self.room = room

    def __repr__(self) -> str:
        return f"<the bus's readers of #{self.room}>"


@dataclass
class RoomLink:
    """
    What the node knows of one room it has members in.

    @ivar room: the room here.
    @ivar roster: its members on other nodes.
    @ivar cursor: the id of the last entry of its stream read, or C{None}
        until it is known.
    @ivar position: the stream's position as of the snapshot the roster
        was loaded from: entries at or before it are news of the past.
    @ivar offset: the offset of the last entry read.
    @ivar lag: bytes of the stream the slowest node has left to read.
    @ivar lastSeq: the last batch number seen from each node.
    @ivar held: what the reading of the stream waits for (members here
        far behind), or C{None}.
    @ivar loaded: whether the room's snapshot was taken.
    """

    room: ChatRoom | None
    roster: Roster
    readers: _BusReaders
    cursor: str | None = None
    position: tuple[int, int] = (0, 0)
    offset: int | None = None
    lag: int = 0
    lastSeq: dict[str, int] = field(default_factory=dict)
    held: Deferred[None] | None = None
    loaded: bool = False


class BusNode:
    """
    A node of the bus, as this process holds it: its people, its rooms'
    links, its outbox, and what the transport reads.

    @ivar bus: the transport.
    @ivar contact: whether the node is in contact with the bus.
    @ivar people: the people of this node, by the key of their name:
        C{(person, name)}.
    """

    log = Logger()

    def __init__(
        self,
        bus: RedisBus,
        clock: IReactorTime,
        rules: RoomRules,
        outboxLimit: int = OUTBOX_LIMIT,
    ) -> None:
        self.bus = bus
        self.clock = clock
        self.rules = rules
        self.service: ChatService | None = None
        self.contact = False
        self.people: dict[str, tuple[IChatMember, str]] = {}
        self.links: dict[str, RoomLink] = {}
        self._streams: dict[str, str] = {}
        self.outbox = Outbox(
            clock,
            self._publish,
            lambda: self.bus.connected,
            self._toldDrop,
            outboxLimit,
        )
        self.outbox.released = self._outboxReleased
        self._outboxBehind = min(OUTBOX_BEHIND, outboxLimit // 8)
        self._inboxCursor = "0-0"
        self._inboxSeq: dict[str, int] = {}
        self._tellSeq = 0
        self._tells: deque[tuple[int, str, bytes, Deferred[str], float]] = deque()
        self._guests = 0
        self._toldLost = False
        self._toldDropped: set[IChatMember] = set()
        self._missingToldAt: float | None = None
        self._droppedLines = 0
        self.limiter = LogLimiter(clock)
        self._tellTimer: IDelayedCall | None = None
        self._telling = False
        bus.serve(self)

    # People

    def holderOf(self, name: str) -> str | None:
        """
        The name of whoever known here has a name the same as C{name}.
        """
        key = nameKey(name)
        held = self.people.get(key)
        if held is not None:
            return held[1]
        for link in self.links.values():
            holder = link.roster.holderOf(key)
            if holder is not None:
                return holder
        return None

    def _local(self, person: IChatMember, name: str) -> None:
        key = nameKey(name)
        self.people[key] = (person, name)
        for link in self.links.values():
            link.roster.forget(key)

    def _guest(self) -> str:
        """
        A default name, decided here while the bus is away (checked again
        when it is back).
        """
        while True:
            self._guests += 1
            name = guestName(10_000 + self._guests)
            if self.holderOf(name) is None:
                return name

    # The transport's node

    def registration(self) -> Registration:
        """
        The node's people and rooms, to register on (re)joining.
        """
        people = [(name, key) for key, (_, name) in self.people.items()]
        rooms = []
        for key, link in self.links.items():
            if link.room is None:
                continue
            members = [(nameKey(name), name) for name in link.room.localNames()]
            rooms.append((key, link.room.name, members))
        return Registration(people, rooms)

    def busJoined(self, rejoined: Rejoined) -> None:
        """
        The node is in contact with the bus (again): take the names as
        registered, each room's members elsewhere and where its stream is,
        and say what changed.
        """
        registration = rejoined.asked
        for (old, _), new in zip(registration.people, rejoined.names, strict=False):
            if old != new:
                self._takeRegisteredName(old, new)
        missing = rejoined.lostData
        for (key, _, _), snapshot in zip(
            registration.rooms, rejoined.rooms, strict=False
        ):
            link = self.links.get(key)
            if link is not None and self._load(link, snapshot, rejoined.lostData):
                missing = True
        self.contact = True
        self._toldDropped.clear()
        for key, link in self.links.items():
            if link.room is None:
                continue
            if rejoined.reaped:
                for member in link.room.members():
                    name = link.room.nameOf(member)
                    self._send(key, Presence("j", name, link.room.isQuiet(member)))
            else:
                self._send(key, Here(tuple(link.room.localNames())))
        if self._toldLost:
            self._toldLost = False
            self._tellEveryone(Notice(BACK))
        if missing:
            self._tellMissing(always=True)
        self.outbox.flush()
        self._sendTells()

    def _load(self, link: RoomLink, snapshot: Snapshot, lostData: bool) -> bool:
        """
        Take a room's snapshot; return whether lines may have been lost.
        """
        link.roster.load(snapshot.members, self.bus.node)
        link.position = streamId(snapshot.last)
        link.loaded = True
        if lostData:
            link.cursor = "0-0"
            link.offset = None
            return True
        if link.cursor is None:
            link.cursor = snapshot.last
            link.offset = snapshot.offset
            return False
        return streamId(snapshot.deleted) > streamId(link.cursor)

    def _takeRegisteredName(self, old: str, new: str) -> None:
        """
        A person's name was taken on another node while this one was out of
        contact: the bus gave it another.
        """
        held = self.people.pop(nameKey(old), None)
        if held is None:
            return
        person = held[0]
        self._local(person, new)
        person.receive(Notice(f"your name {old} was taken on another server meanwhile"))
        person.renamed(new)
        service = self.service
        if service is not None:
            for room in service.roomsOf(person):
                room.renamed(person, new)
        # What the person said meanwhile, still to publish, goes out under
        # the name it has now: the old one is another node's person's.
        self.outbox.renumber(lambda event: renameIn(event, old, new))

    def busLost(self, reason: str) -> None:
        """
        Contact with the other nodes is lost: say so, once; nobody waits
        for the bus (lines wait in the outbox, a share per sender).
        """
        self.contact = False
        for link in self.links.values():
            self._checkBehind(link)
        if not self._toldLost and not (self.service and self.service.closed):
            self._toldLost = True
            self._tellEveryone(Notice(LOST))

    def _tellEveryone(self, event: Any) -> None:
        for person, _ in list(self.people.values()):
            person.receive(event)

    def streamsToRead(self) -> list[tuple[str, str]]:
        """
        The inbox, and the stream of each room here whose members here are
        not far behind.
        """
        streams = [(self.bus.inbox, self._inboxCursor)]
        for key, link in self.links.items():
            if link.cursor is not None and link.held is None and link.loaded:
                streams.append((roomStream(key), link.cursor))
        return streams

    def readPositions(self) -> list[tuple[str, int | None]]:
        """
        How far this node has read each room's stream.
        """
        return [(key, link.offset) for key, link in self.links.items() if link.loaded]

    def busEntries(self, stream: str, entries: list[Entry]) -> None:
        """
        Deliver what the other nodes said, in order, each batch once.
        """
        if not entries:
            return
        if stream == self.bus.inbox:
            self._inboxCursor = entries[-1].id
            self._inbox(entries)
            return
        key = self._streams.get(stream)
        link = None if key is None else self.links.get(key)
        if link is None:
            return
        link.cursor = entries[-1].id
        for entry in reversed(entries):
            if entry.offset is not None:
                link.offset = entry.offset
                break
        own = self.bus.node
        gone = "gone:" + own
        for entry in entries:
            if not entry.node or entry.node == own or entry.node == gone:
                # This node's own, skipped, or the departure of its members
                # while the others counted it as gone: they never left.
                continue
            if entry.seq:
                last = link.lastSeq.get(entry.node)
                if last is not None:
                    if last - DEDUPE_WINDOW < entry.seq <= last:
                        # A batch published again (Redis lost what it
                        # knew of the node's numbers): delivered already.
                        continue
                    if entry.seq > last + 1:
                        # Batches of this node never reached the stream, or
                        # were trimmed from it before this node read them.
                        self._tellMissing()
                link.lastSeq[entry.node] = entry.seq
            fresh = streamId(entry.id) > link.position
            for event in entry.events:
                self._deliver(link, entry.node, event, fresh)
        self._holdReading(link)

    def _deliver(self, link: RoomLink, node: str, event: Any, fresh: bool) -> None:
        room = link.room
        if room is None:
            return
        roster = link.roster
        if isinstance(event, Said):
            room.heard(Message(room.name, event.sender, event.lines))
        elif isinstance(event, Here):
            if fresh:
                roster.replace(node, event.names)
        elif isinstance(event, Rename):
            if room.memberCalled(event.oldName) is not None:
                return
            if fresh:
                roster.remove(event.oldName, node)
                roster.add(node, event.newName)
            if not event.quiet:
                room.heard(Renamed(room.name, event.oldName, event.newName))
        elif isinstance(event, Presence):
            if room.memberCalled(event.name) is not None:
                # A name this node holds: news of someone else's, from
                # before this node took it.
                return
            if event.kind == "j":
                if fresh:
                    roster.add(node, event.name)
                room.heard(
                    QuietPresence(room.name, (event.name,), ())
                    if event.quiet
                    else Joined(room.name, event.name)
                )
            else:
                if fresh:
                    # "x" entries come from "gone:NODE", about NODE's members.
                    roster.remove(event.name, node.removeprefix("gone:"))
                room.heard(
                    QuietPresence(room.name, (), (event.name,))
                    if event.quiet
                    else Left(room.name, event.name)
                )

    def _inbox(self, entries: list[Entry]) -> None:
        for entry in entries:
            if not entry.node:
                continue
            last = self._inboxSeq.get(entry.node)
            if last is not None and last - DEDUPE_WINDOW < entry.seq <= last:
                continue
            self._inboxSeq[entry.node] = entry.seq
            for event in entry.events:
                if isinstance(event, Private):
                    held = self.people.get(nameKey(event.recipient))
                    if held is not None:
                        held[0].receive(PrivateMessage(event.sender, event.lines))

    def _tellMissing(self, always: bool = False) -> None:
        """
        Tell everyone here that lines from other servers may be missing, at
        most once every L{MISSING_EVERY} seconds.
        """
        now = self.clock.seconds()
        if (
            not always
            and self._missingToldAt is not None
            and now - self._missingToldAt < MISSING_EVERY
        ):
            return
        self._missingToldAt = now
        self._tellEveryone(Notice(MISSING))

    # The sender pays across the bus

    def busProgress(self, room: str, lag: int) -> None:
        """
        The slowest node has C{lag} bytes of C{room}'s stream left to read.
        """
        link = self.links.get(room)
        if link is not None:
            link.lag = lag
            self._checkBehind(link)

    def _outboxReleased(self, room: str) -> None:
        link = self.links.get(room)
        if (
            link is not None
            and self.outbox.byRoom.get(room, 0) <= self._outboxBehind // 2
        ):
            self._checkBehind(link)

    def _checkBehind(self, link: RoomLink) -> None:
        """
        Count the bus among a room's readers that are behind while the
        slowest node has more than L{BEHIND_ON_BUS} bytes of it to read, or
        more than L{OUTBOX_BEHIND} bytes (an eighth of the outbox's bound,
        if that is less) of this node's lines for it wait for a bus that is
        there; and no longer once both are down to half of that, or the bus
        is away (lines then wait in the outbox, a share per sender).
        """
        room = link.room
        pressure = None if room is None else room.pressure
        if pressure is None:
            return
        there = self.bus.connected
        waiting = self.outbox.byRoom.get(link.readers.room, 0)
        if pressure.isBehind(link.readers):
            if not there or (
                link.lag <= BEHIND_ON_BUS // 2 and waiting <= self._outboxBehind // 2
            ):
                pressure.caughtUp(link.readers)
        elif there and (link.lag > BEHIND_ON_BUS or waiting > self._outboxBehind):
            pressure.fellBehind(
                link.readers,
                lambda: link.lag + self.outbox.byRoom.get(link.readers.room, 0),
                BUS_PATIENCE,
            )

    def _holdReading(self, link: RoomLink) -> None:
        """
        If members here that still read are far behind in the room, stop
        reading its stream until they have caught up, as a sender here
        would wait (the bus's own readers are not waited for).
        """
        room = link.room
        pressure = None if room is None else room.pressure
        if pressure is None or link.held is not None:
            return
        if pressure.holdsBack(link.readers):
            held = link.held = pressure.hold(link.readers)

            def released(ignored: object) -> None:
                if link.held is held:
                    link.held = None
                    self.bus.resumeReading()

            held.addBoth(released)

    # The outbox

    def _send(
        self,
        room: str,
        event: Any,
        sender: IChatMember | None = None,
        leftKey: str | None = None,
        last: bool = False,
    ) -> None:
        self.outbox.send(room, encodeEvent(event), sender, leftKey, last)
        link = self.links.get(room)
        if link is not None and self.outbox.byRoom.get(room, 0) > self._outboxBehind:
            self._checkBehind(link)

    def _publish(self, batch: Batch) -> Deferred[Any]:
        return self.bus.publish(
            batch.room, batch.seq, batch.payload, batch.last, batch.leftKeys
        )

    def _toldDrop(
        self, senders: list[IChatMember], dropped: int, presence: int
    ) -> None:
        """
        Tell each of C{senders} still here, once while the bus is away, that
        lines of theirs did not reach the others; log it (at a bounded rate).
        """
        there = self.bus.connected
        here = {person for person, _ in self.people.values()}
        for sender in senders:
            if sender in here and sender not in self._toldDropped:
                self._toldDropped.add(sender)
                sender.receive(Notice(DROPPED_WHILE_THERE if there else DROPPED))
        if dropped or presence:
            self._droppedLines += dropped
            self.limiter.emit(
                self.log,
                LogLevel.warn,
                "backlog drops",
                "{why} and this node's backlog for it is full ({limit} bytes, "
                "a quarter of it for one sender): dropped {count} message(s) "
                "and {presence} change(s) of who is here; the senders were told",
                why=(
                    "The bus does not take lines in time"
                    if there
                    else "The bus is away"
                ),
                limit=self.outbox.limit,
                count=dropped,
                presence=presence,
            )

    def whenFlushed(self) -> Deferred[None]:
        """
        Fire once what this node's members said is on the bus.
        """
        return self.outbox.whenFlushed()

    # Private messages to people elsewhere

    def tell(
        self, sender: str, recipient: str, lines: Sequence[bytes]
    ) -> Deferred[str]:
        """
        Put C{lines} from C{sender} in the inbox of C{recipient}'s node,
        once; wait for the bus (a while) if it is away.
        """
        try:
            checkName(recipient)
        except NameRejected:
            return fail(NobodyThere(recipient))
        if len(self._tells) >= TELLS_WAITING:
            return fail(Unreachable(recipient))
        self._tellSeq += 1
        payload = encodeBatch([encodeEvent(Private(sender, recipient, tuple(lines)))])
        telling: Deferred[str] = Deferred()
        self._tells.append(
            (self._tellSeq, nameKey(recipient), payload, telling, self.clock.seconds())
        )
        if len(self._tells) == 1:
            self._sendTells()
        return telling

    def _sendTells(self) -> None:
        """
        Send the first private message waiting, if the bus is there; give
        up on those that waited too long.
        """
        now = self.clock.seconds()
        while self._tells and now - self._tells[0][4] > TELL_PATIENCE:
            _, key, _, telling, _ = self._tells.popleft()
            telling.errback(Unreachable(key))
        if not self._tells or self._telling:
            return
        if not self.bus.connected:
            if self._tellTimer is None:
                self._tellTimer = self.clock.callLater(
                    TELL_PATIENCE, self._tellsTimedOut
                )
            return
        seq, key, payload, telling, _ = self._tells[0]
        self._telling = True
        sending = self.bus.command("tell", seq, key, payload, str(INBOX_LENGTH))

        def sent(answer: list[Any]) -> None:
            self._telling = False
            self._tells.popleft()
            status = answer[0]
            if status == b"nobody":
                telling.errback(NobodyThere(_recipientOf(payload)))
            else:
                telling.callback(answer[1].decode("utf-8", "replace"))
            self._sendTells()

        def notSent(failure: Failure) -> None:
            self._telling = False
            if failure.check(BusFull):
                self._tells.popleft()
                telling.errback(Unreachable(key))
                self._sendTells()
            # Lost: sent again, under the same number, once the bus is back.

        sending.addCallbacks(sent, notSent)

    def _tellsTimedOut(self) -> None:
        self._tellTimer = None
        self._sendTells()

    # Stopping

    def stop(self) -> None:
        """
        The node is stopping: no timers left behind.
        """
        self.outbox.stop()
        if self._tellTimer is not None and self._tellTimer.active():
            self._tellTimer.cancel()
        self._tellTimer = None


def _recipientOf(payload: bytes) -> str:
    from sockserve.bus.codec import decodeBatch

    event = decodeBatch(payload)[0]
    return event.recipient if isinstance(event, Private) else "?"


@implementer(IRoomRelay)
class _Relay:
    """
    Every room's relay: what happens in a room here goes into the outbox.
    """

    def __init__(self, node: BusNode) -> None:
        self.node = node

    def joined(self, room: ChatRoom, name: str, quietly: bool) -> None:
        """
        C{name} joined C{room} here.
        """
        self.node._send(room.key, Presence("j", name, quietly))

    def left(self, room: ChatRoom, name: str, quietly: bool) -> None:
        """
        C{name} left C{room} here: it leaves the room on the bus too.
        """
        self.node._send(
            room.key,
            Presence("l", name, quietly),
            leftKey=nameKey(name),
            last=room.localPopulation() == 0,
        )

    def renamed(self, room: ChatRoom, oldName: str, newName: str) -> None:
        """
        C{oldName}, a member of C{room} here, is now C{newName}.
        """
        self.node._send(room.key, Rename(oldName, newName, False))

    def said(
        self, room: ChatRoom, sender: IChatMember, name: str, lines: Sequence[bytes]
    ) -> None:
        """
        C{sender} said C{lines} in C{room} here.
        """
        self.node._send(room.key, Said(name, tuple(lines)), sender=sender)


@implementer(IPeople)
class BusPeople:
    """
    The people of every node: a name is claimed and changed in one atomic
    step in Redis while the bus is there, and decided here, from what the
    node knows, while it is away.
    """

    def __init__(self, node: BusNode) -> None:
        self.node = node

    @property
    def population(self) -> int:
        """
        How many people this node has.
        """
        return len(self.node.people)

    def claim(self, person: IChatMember, name: str | None) -> Deferred[str]:
        """
        Give C{person} C{name}, or a default name.
        """
        node = self.node
        if name is not None:
            try:
                checkName(name)
            except NameRejected as rejected:
                return fail(rejected)
            holder = node.holderOf(name)
            if holder is not None:
                return fail(NameRejected(takenMessage(name, holder)))
        arguments = ("", "") if name is None else (name, nameKey(name))
        asking = node.bus.command("claim", *arguments).addCallback(node.bus.answer)

        def answered(answer: list[Any]) -> str:
            status: bytes = answer[0]
            given: str = answer[1].decode("utf-8", "replace")
            if status == b"taken":
                assert name is not None
                raise NameRejected(takenMessage(name, given or None))
            node._local(person, given)
            return given

        def alone(failure: Failure) -> str | Failure:
            if failure.check(NameRejected):
                return failure
            given = node._guest() if name is None else name
            node._local(person, given)
            return given

        return asking.addCallbacks(answered, alone)

    def rename(self, person: IChatMember, oldName: str, newName: str) -> Deferred[None]:
        """
        Call C{person} C{newName}: on the bus while it is there (with every
        room it is in), here otherwise.
        """
        node = self.node
        try:
            checkName(newName)
            self._checkFree(person, oldName, newName)
        except NameRejected as rejected:
            return fail(rejected)
        rooms = []
        if node.service is not None:
            rooms = [room.key for room in node.service.roomsOf(person)]
        asking = node.bus.command(
            "rename", nameKey(oldName), newName, nameKey(newName), *rooms
        ).addCallback(node.bus.answer)

        def answered(answer: list[Any]) -> None:
            if answer[0] == b"taken":
                raise NameRejected(
                    takenMessage(newName, answer[1].decode("utf-8", "replace"))
                )
            self._apply(person, oldName, newName)

        def alone(failure: Failure) -> Failure | None:
            if failure.check(NameRejected):
                return failure
            if failure.check(BusFull):
                return Failure(
                    NameRejected("names cannot be changed now (the bus is full)")
                )
            # Decided here, on what this node knows now: another person of
            # this node may have taken the name meanwhile.
            self._checkFree(person, oldName, newName)
            self._apply(person, oldName, newName)
            return None

        return asking.addCallbacks(answered, alone)

    def _checkFree(self, person: IChatMember, oldName: str, newName: str) -> None:
        key = nameKey(newName)
        if key == nameKey(oldName):
            return
        holder = self.node.holderOf(newName)
        held = self.node.people.get(key)
        if holder is not None and (held is None or held[0] is not person):
            raise NameRejected(takenMessage(newName, holder))

    def _apply(self, person: IChatMember, oldName: str, newName: str) -> None:
        people = self.node.people
        oldKey = nameKey(oldName)
        if people.get(oldKey, (None,))[0] is person:
            del people[oldKey]
        self.node._local(person, newName)

    def release(self, person: IChatMember, name: str) -> None:
        """
        C{person} is gone: its name is free (on the bus too, once it is
        there again).
        """
        key = nameKey(name)
        people = self.node.people
        if people.get(key, (None,))[0] is person:
            del people[key]
            if self.node.bus.connected:
                self.node.bus.command("release", key).addErrback(lambda failure: None)

    def find(self, name: str) -> IChatMember | None:
        """
        The person of this node called C{name}, or C{None}.
        """
        held = self.node.people.get(nameKey(name))
        return None if held is None else held[0]

    def holderOf(self, name: str) -> str | None:
        """
        The name of whoever known here has a name the same as C{name}.
        """
        return self.node.holderOf(name)


@implementer(IRoomDirectory)
class BusRooms:
    """
    Rooms across the bus: admitted in one atomic step in Redis while the
    bus is there (each room's capacity, and the number of rooms, span the
    nodes), from what the node knows while it is away.
    """

    def __init__(self, node: BusNode, history: int = 0) -> None:
        self.node = node
        self.history = history
        self.relay = _Relay(node)

    def _link(self, name: str) -> RoomLink:
        from sockserve.chat.names import roomKey

        key = roomKey(name)
        link = self.node.links.get(key)
        if link is None:
            link = RoomLink(None, Roster(), _BusReaders(key))
            self.node.links[key] = link
            self.node._streams[roomStream(key)] = key
        return link

    def rosterFor(self, name: str) -> IRoster:
        """
        The members of the room that other nodes hold.
        """
        return self._link(name).roster

    def relayFor(self, name: str) -> IRoomRelay:
        """
        The node's relay.
        """
        return self.relay

    def opened(self, room: ChatRoom) -> None:
        """
        The room has members here now.
        """
        link = self._link(room.name)
        link.room = room
        link.roster.heldHere = lambda key: room.memberCalled(key) is not None
        link.roster.changed = room.rosterChanged

    def closed(self, room: ChatRoom) -> None:
        """
        The room has no members here: stop reading it.
        """
        link = self.node.links.pop(room.key, None)
        self.node._streams.pop(roomStream(room.key), None)
        if (
            link is not None
            and link.room is not None
            and link.room.pressure is not None
        ):
            link.room.pressure.forget(link.readers)
        self.node.bus.wakeReader()

    def admit(
        self, room: ChatRoom, name: str, creating: bool, rules: RoomRules
    ) -> Deferred[None]:
        """
        Admit C{name} into C{room} on the bus (taking the room's snapshot,
        and its history, if it is new here), or here while the bus is away.
        """
        node = self.node
        link = self._link(room.name)
        fresh = not link.loaded
        asking = node.bus.command(
            "join",
            room.key,
            room.name,
            nameKey(name),
            name,
            rules.capacity,
            rules.maxRooms,
            "1" if fresh else "0",
        ).addCallback(node.bus.answer)

        def answered(answer: list[Any]) -> Deferred[None] | None:
            status = answer[0]
            if status == b"full":
                raise RoomFull(room.name, rules.capacity)
            if status == b"toomany":
                raise RoomRejected(tooManyRooms(rules.maxRooms))
            if fresh and len(answer) > 2 and not link.loaded:
                if not room.localPopulation():
                    # The room's name as it was made, whoever made it.
                    room.name = answer[2].decode("utf-8", "replace")
                node._load(link, node.bus.snapshot(answer[1]), False)
                node.bus.wakeReader()
                if self.history:
                    return self._prime(room)
            return None

        def alone(failure: Failure) -> Failure | None:
            if failure.check(RoomFull, RoomRejected):
                return failure
            if failure.check(BusFull):
                return Failure(
                    RoomRejected("rooms cannot be joined now (the bus is full)")
                )
            service = node.service
            if (
                creating
                and service is not None
                and service.roomCount() > rules.maxRooms
            ):
                return Failure(RoomRejected(tooManyRooms(rules.maxRooms)))
            if room.isFull():
                return Failure(RoomFull(room.name, rules.capacity))
            return None

        return asking.addCallbacks(answered, alone)

    def _prime(self, room: ChatRoom) -> Deferred[None]:
        """
        Take the room's last lines from its stream, before those said here
        since.
        """
        reading = self.node.bus.recent(room.key, self.history)

        def read(entries: list[Entry]) -> None:
            if room.recent is None:
                return
            said = list(room.recent)
            room.recent.clear()
            for entry in entries:
                for event in entry.events:
                    if isinstance(event, Said):
                        room.remember(event.sender, event.lines)
            for sender, line in said:
                room.remember(sender, (line,))

        return reading.addCallbacks(read, lambda failure: None)

    def rooms(
        self, local: Sequence[tuple[str, int]]
    ) -> Deferred[list[tuple[str, int]]]:
        """
        Every room on the bus, or those here while it is away.
        """
        asking = self.node.bus.command("rooms")

        def answered(reply: list[Any]) -> list[tuple[str, int]]:
            return [
                (name.decode("utf-8", "replace"), int(members))
                for _, name, members in reply
            ]

        return asking.addCallbacks(answered, lambda failure: list(local))

    def tell(
        self, sender: str, recipient: str, lines: Sequence[bytes]
    ) -> Deferred[str]:
        """
        Say C{lines} to C{recipient}, on another node.
        """
        return self.node.tell(sender, recipient, lines)


def busChat(
    address: BusAddress,
    rules: RoomRules,
    clock: IReactorTime,
    reactor: object,
    nodeTimeout: float = 10.0,
    retention: int = 10_000,
    outboxLimit: int = OUTBOX_LIMIT,
) -> tuple[ChatService, RedisBus]:
    """
    Return a chat service whose rooms and people span the bus at
    C{address}, and the bus's service (to start and stop with the server).
    """
    bus = RedisBus(address, clock, reactor, nodeTimeout, retention)
    node = BusNode(bus, clock, rules, outboxLimit)
    service = ChatService(rules, clock, BusPeople(node), BusRooms(node, rules.history))
    node.service = service
    return service, bus

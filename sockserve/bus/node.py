"""
One node of a bus: this process's share of the rooms and people of every
node, composed into the chat service.

The service takes two things from the node, each the bus's side of a seam
it has without a bus, and each in a module of its own:

  - L{BusPeople} (an L{IPeople}, L{sockserve.bus.people}): names are
    unique across the bus, claimed and renamed in one atomic step in Redis;
  - L{BusRooms} (an L{IRoomDirectory}, L{sockserve.bus.rooms}): admission
    against each room's capacity and the number of rooms, across the bus;
    the rosters of the members other nodes hold (L{sockserve.bus.roster});
    every room's relay, which puts what happens in a room here in the
    L{Outbox} (L{sockserve.bus.outbox}), and from there in the room's
    stream; private messages to people elsewhere
    (L{sockserve.bus.private}).

What the other nodes publish comes back from the transport
(L{sockserve.bus.redis.RedisBus}), one C{XREAD} for every stream: it is
delivered to the rooms here (each batch once, each sender's lines in
order) and to the people here (L{sockserve.bus.inbound}). This module holds
what ties them together: the node's people and rooms, and registering
them again when the bus is back (while it is away the node decides alone,
from what it last knew).

The sender pays across the bus too: every entry carries its offset, every
node reports how far it has read each room, and a room's bulk senders wait
while the slowest node is far behind in it, or while this node's lines for
it pile up in the outbox (see L{BEHIND_ON_BUS}); a node reading a room
stops reading it while members of its own there are far behind.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger, LogLevel

from sockserve._loglimit import LogLimiter
from sockserve._text import plural
from sockserve.bus.address import BusAddress
from sockserve.bus.codec import (
    BadEntry,
    Here,
    Presence,
    TopicSet,
    decodeBatch,
    encodeEvent,
    renameIn,
)
from sockserve.bus.inbound import Inbound
from sockserve.bus.outbox import OUTBOX_LIMIT, Batch, Outbox
from sockserve.bus.people import BusPeople
from sockserve.bus.private import PrivateMessages
from sockserve.bus.redis import (
    Entry,
    RedisBus,
    Registration,
    Rejoined,
    Snapshot,
    roomStream,
    streamId,
)
from sockserve.bus.rooms import BusRooms, RoomLink
from sockserve.chat.events import Notice, Topic
from sockserve.chat.names import guestName, nameKey
from sockserve.chat.people import IChatMember
from sockserve.chat.service import ChatService, RoomRules

__all__ = ["OUTBOX_LIMIT", "BusNode", "BusPeople", "BusRooms", "busChat"]

# Bytes of a room's stream that the slowest node may have left to read, or
# bytes of this node's lines for the room waiting for a bus that is there,
# before the room's bulk senders here wait: the sender pays for every
# node's readers, as it does for the members of its own.
BEHIND_ON_BUS = 1024 * 1024
OUTBOX_BEHIND = 256 * 1024
# The fraction (1/N) of the outbox's bound that, filled by all rooms
# together, has the senders of every room that adds to it wait, until it is
# down to half of that: many rooms, each under OUTBOX_BEHIND, must not
# overflow it either.
OUTBOX_CROWDED = 2
# Seconds the bus may make no progress (the slowest node reads nothing, the
# outbox does not drain) before senders no longer wait for it.
BUS_PATIENCE = 3.0

LOST = (
    "lost contact with the other servers; you can still talk with those on "
    "this server, and your lines will reach the others once contact is back"
)
BACK = "back in contact with the other servers"
DROPPED = (
    "some of your lines did not reach the other servers: contact with them "
    "was lost for too long"
)
DROPPED_WHILE_THERE = (
    "some of your lines did not reach the other servers: the bus could not "
    "take them in time"
)


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
        # Which room each room's stream is.
        self.streams: dict[str, str] = {}
        self.outbox = Outbox(
            clock,
            self._publish,
            lambda: self.bus.connected,
            self._toldDrop,
            outboxLimit,
        )
        self.outbox.released = self._outboxReleased
        self._outboxBehind = min(OUTBOX_BEHIND, outboxLimit // 8)
        self._outboxCrowded = False
        self.inboxCursor = "0-0"
        self._guests = 0
        self._toldLost = False
        self._toldDropped: set[IChatMember] = set()
        self._droppedLines = 0
        self.limiter = LogLimiter(clock)
        self.inbound = Inbound(self)
        self.private = PrivateMessages(self)
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
        if rejoined.inboxLast is not None and streamId(rejoined.inboxLast) < streamId(
            self.inboxCursor
        ):
            # The inbox ends before what this node read (a promoted replica
            # lacks its last entries): read on from its end (see load).
            self.inboxCursor = rejoined.inboxLast
        for (key, _, _), snapshot in zip(
            registration.rooms, rejoined.rooms, strict=False
        ):
            link = self.links.get(key)
            if link is not None and self.load(link, snapshot, rejoined.lostData):
                missing = True
        self.contact = True
        self._toldDropped.clear()
        for key, link in self.links.items():
            if link.room is None:
                continue
            if rejoined.reaped:
                for member in link.room.members():
                    name = link.room.nameOf(member)
                    self.send(key, Presence("j", name, link.room.isQuiet(member)))
            else:
                self.send(key, Here(tuple(link.room.localNames())))
        if self._toldLost:
            self._toldLost = False
            self.tellEveryone(Notice(BACK))
        if missing:
            self.inbound.tellMissing(always=True)
        self.outbox.flush()
        self.private.sendWaiting()

    def load(self, link: RoomLink, snapshot: Snapshot, lostData: bool) -> bool:
        """
        Take a room's snapshot; return whether lines may have been lost.
        """
        link.roster.load(snapshot.members, self.bus.node)
        link.position = streamId(snapshot.last)
        link.loaded = True
        if snapshot.topic and link.room is not None:
            try:
                [kept] = decodeBatch(snapshot.topic)
            except (BadEntry, ValueError):
                self.log.warn("A room's topic in Redis is not one a node kept")
            else:
                if isinstance(kept, TopicSet):
                    link.room.topic = Topic(kept.text, kept.setter, kept.at)
        if lostData:
            link.cursor = "0-0"
            link.offset = None
            return True
        if link.cursor is None:
            link.cursor = snapshot.last
            link.offset = snapshot.offset
            return False
        if streamId(snapshot.last) < streamId(link.cursor):
            # The stream ends before what this node read: a replica promoted
            # after the primary died lacks its last entries. Read on from
            # its end, or the entries it takes next, numbered from its
            # clock, could fall below the cursor and be skipped. What this
            # node read and the new primary lacks is published again by its
            # sender (see --bus-replicas), and dropped here as a batch
            # already delivered.
            link.cursor = snapshot.last
            link.offset = snapshot.offset
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
            self.tellEveryone(Notice(LOST))

    def tellEveryone(self, event: Any) -> None:
        """
        Give everyone here C{event}.
        """
        for person, _ in list(self.people.values()):
            person.receive(event)

    def streamsToRead(self) -> list[tuple[str, str]]:
        """
        The inbox, and the stream of each room here whose members here are
        not far behind.
        """
        streams = [(self.bus.inbox, self.inboxCursor)]
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
        Deliver what the other nodes published (see L{Inbound}).
        """
        self.inbound.busEntries(stream, entries)

    def backlog(self) -> tuple[int, int]:
        """
        How many bytes the slowest node has left to read in the room where
        it is furthest behind, and how many bytes of this node's lines wait
        in its outbox.
        """
        lag = max((link.lag for link in self.links.values()), default=0)
        return lag, self.outbox.bytes

    def busProgress(self, room: str, lag: int) -> None:
        """
        The slowest node has C{lag} bytes of C{room}'s stream left to read.
        """
        link = self.links.get(room)
        if link is not None:
            link.lag = lag
            self._checkBehind(link)

    def _outboxReleased(self, room: str) -> None:
        if self._outboxCrowded and not self._updateCrowd():
            # Every room held for the crowd may go on.
            for each in list(self.links.values()):
                self._checkBehind(each)
            return
        link = self.links.get(room)
        if (
            link is not None
            and self.outbox.byRoom.get(room, 0) <= self._outboxBehind // 2
        ):
            self._checkBehind(link)

    def _updateCrowd(self) -> bool:
        """
        Tell whether all rooms' lines together fill too much of the outbox:
        from more than 1/L{OUTBOX_CROWDED} of its bound until they are down
        to half of that.
        """
        crowd = self.outbox.limit // OUTBOX_CROWDED
        total = self.outbox.bytes
        if self._outboxCrowded:
            self._outboxCrowded = total > crowd // 2
        else:
            self._outboxCrowded = total > crowd
        return self._outboxCrowded

    def _checkBehind(self, link: RoomLink) -> None:
        """
        Count the bus among a room's readers that are behind while the
        slowest node has more than L{BEHIND_ON_BUS} bytes of it to read, or
        more than L{OUTBOX_BEHIND} bytes (an eighth of the outbox's bound,
        if that is less) of this node's lines for it wait for a bus that is
        there, or lines of its own wait while the outbox is crowded (see
        L{_updateCrowd}); and no longer once all are down to half of that, or
        the bus is away (lines then wait in the outbox, a share per sender).
        """
        room = link.room
        pressure = None if room is None else room.pressure
        if pressure is None:
            return
        there = self.bus.connected
        key = link.readers.room
        waiting = self.outbox.byRoom.get(key, 0)
        crowded = self._outboxCrowded
        if pressure.isBehind(link.readers):
            if not there or (
                link.lag <= BEHIND_ON_BUS // 2
                and waiting <= self._outboxBehind // 2
                and not crowded
            ):
                pressure.caughtUp(link.readers)
        elif there and (
            link.lag > BEHIND_ON_BUS
            or waiting > self._outboxBehind
            or (crowded and waiting > 0)
        ):
            outbox = self.outbox

            def left() -> int:
                # Progress is what the bus has left of this room's lines,
                # or, while the outbox is crowded, of all of them.
                return link.lag + (
                    outbox.bytes if self._outboxCrowded else outbox.byRoom.get(key, 0)
                )

            pressure.fellBehind(link.readers, left, BUS_PATIENCE)

    def holdReading(self, link: RoomLink) -> None:
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

    def send(
        self,
        room: str,
        event: Any,
        sender: IChatMember | None = None,
        leftKey: str | None = None,
        last: bool = False,
    ) -> None:
        self.outbox.send(room, encodeEvent(event), sender, leftKey, last)
        link = self.links.get(room)
        if link is not None and (
            self.outbox.byRoom.get(room, 0) > self._outboxBehind or self._updateCrowd()
        ):
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
                "a quarter of it for one sender): dropped {messages} and "
                "{changes} of who is here; the senders were told",
                messages=plural(dropped, "message"),
                changes=plural(presence, "change"),
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

    def tell(
        self, sender: str, recipient: str, lines: Sequence[bytes]
    ) -> Deferred[str]:
        """
        Say C{lines} from C{sender} to C{recipient}, a person elsewhere (see
        L{PrivateMessages}).
        """
        return self.private.tell(sender, recipient, lines)

    def stop(self) -> None:
        """
        The node is stopping: no timers left behind.
        """
        self.outbox.stop()
        self.private.stop()


def busChat(
    address: BusAddress,
    rules: RoomRules,
    clock: IReactorTime,
    reactor: object,
    nodeTimeout: float = 10.0,
    retention: int = 10_000,
    outboxLimit: int = OUTBOX_LIMIT,
    replicas: int = 0,
) -> tuple[ChatService, RedisBus]:
    """
    Return a chat service whose rooms and people span the bus at
    C{address}, and the bus's service (to start and stop with the server);
    a batch leaves the outbox once C{replicas} replicas have it.
    """
    bus = RedisBus(address, clock, reactor, nodeTimeout, retention, replicas=replicas)
    node = BusNode(bus, clock, rules, outboxLimit)
    service = ChatService(rules, clock, BusPeople(node), BusRooms(node, rules))
    node.service = service
    return service, bus

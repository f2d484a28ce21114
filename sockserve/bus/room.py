"""
One room across processes: a L{ChatRoom} for this node's members that
relays its events through a bus, and delivers the other nodes' events.

Local delivery never waits for the bus: a member's lines reach the members
of its own node at once, and go into the node's outbox, from which they are
published in batches (all the events of a reactor pass in one batch, one
round trip). While the bus is away the outbox keeps them, in order, up to
C{outboxLimit} bytes, a quarter of it for one sender (beyond it the oldest
are dropped, a flooder's own first, and their senders
told); once the bus is back they are published, each batch once (a batch
number lets the bus drop a retried batch it already has).

Names and capacity belong to the bus while it is there: admission and
renaming are atomic steps on it, so two nodes cannot admit the same name at
once or overshoot the room's capacity. While it is away, the node decides
alone from what it last knew (its own members and the others it knew of),
and registers its members again when the bus is back (a name taken
meanwhile elsewhere gets a C{#N} suffix, and its member is told).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure
from zope.interface import implementer

from sockserve._loglimit import LogLimiter
from sockserve.bus.codec import (
    BATCH_BYTES,
    BusEvent,
    Here,
    Presence,
    Rename,
    Said,
    encodeBatch,
    encodeEvent,
    renameIn,
)
from sockserve.chat.events import (
    ChatEvent,
    Joined,
    Left,
    Message,
    NameChanged,
    Notice,
    Renamed,
)
from sockserve.chat.names import nameKey, takenMessage
from sockserve.chat.pacing import OutputPressure
from sockserve.chat.room import (
    HISTORY_BYTES,
    ChatRoom,
    IChatMember,
    IChatRoom,
    NameRejected,
    RoomFull,
    checkName,
)

# Bytes of events kept for the bus while it is away.
OUTBOX_LIMIT = 4 * 1024 * 1024
# One sender may fill at most this fraction (1/N) of the backlog.
SENDER_SHARE = 4
# Batches handed to the bus at once, before it answers.
IN_FLIGHT = 8
# A batch numbered this close below the last one seen from its node is a
# batch published again; further below, the node's numbers started afresh
# (or the one seen was forged): taken as new.
DEDUPE_WINDOW = 4096
# Bytes of the room's stream that the slowest node may have left to read,
# or bytes of this node's lines waiting for a bus that is there, before bulk
# senders here wait: the sender pays for every node's readers, as it does
# for the members of its own.
BEHIND_ON_BUS = 1024 * 1024
OUTBOX_BEHIND = 256 * 1024
# Seconds the bus may make no progress (the slowest node reads nothing, the
# outbox does not drain) before senders no longer wait for it.
BUS_PATIENCE = 3.0
# Seconds before a batch the bus refused (Redis out of memory) is tried
# again.
PUBLISH_RETRY = 0.5
# Seconds between two notices that lines may be missing.
MISSING_EVERY = 30.0
# Names tried (NAME, NAME#2, ...) before admission gives up.
NAME_TRIES = 50

LOST = (
    "lost contact with the other servers of this room; you can still talk "
    "with those on this server, and your lines will reach the others once "
    "contact is back"
)
BACK = "back in contact with the other servers of this room"
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


def streamId(text: str) -> tuple[int, int]:
    """
    Return a Redis stream id (C{MS-SEQ}) in a form that compares in order.
    """
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


@dataclass(frozen=True, slots=True)
class Entry:
    """
    One entry of the room's stream: a batch of events from one node.
    """

    id: str
    node: str
    seq: int
    events: Sequence[BusEvent]


@dataclass(frozen=True)
class Rejoined:
    """
    What a node learns as it (re)joins the room on the bus.

    @ivar asked: the local names it registered.
    @ivar names: the same, as registered (a name another node took
        meanwhile has a suffix).
    @ivar reaped: the other nodes had counted this node as gone (and told
        their members its members left).
    @ivar lostData: lines from other nodes may have been lost.
    @ivar others: the other nodes' members, as C{(node, name)}.
    @ivar position: the stream's position that C{others} reflects.
    @ivar recent: the stream's last entries (on the first join only).
    """

    asked: list[str]
    names: list[str]
    reaped: bool
    lostData: bool
    others: list[tuple[str, str]]
    position: str
    recent: list[Entry] = field(default_factory=list)


class BusRoom(Protocol):
    """
    What a bus tells the room it serves.
    """

    def localNames(self) -> list[str]:
        """
        Return the names of this node's members.
        """

    def busJoined(self, rejoined: Rejoined) -> None:
        """
        The node is in contact with the room (again).
        """

    def busEntries(self, entries: list[Entry]) -> None:
        """
        Entries arrived from the stream, in order.
        """

    def busLost(self, reason: str) -> None:
        """
        Contact with the bus was lost.
        """

    def whenFlushed(self) -> Deferred[None]:
        """
        Fire once everything the node has to publish is published.
        """

    def readersBehind(self, reader: object) -> Deferred[None] | None:
        """
        A L{Deferred} to wait for before reading more, or C{None}.
        """

    def busProgress(self, lag: int) -> None:
        """
        The slowest node in the room has C{lag} bytes of the stream left
        to read.
        """


class Bus(Protocol):
    """
    What the room asks of its bus (L{sockserve.bus.redis.RedisBus}).
    """

    node: str
    connected: bool

    def admit(self, name: str, capacity: int) -> Deferred[str]:
        """
        Admit a member: C{ok}, C{taken} (by a name with the same
        L{nameKey}) or C{full}.
        """

    def rename(self, oldName: str, newName: str) -> Deferred[str]:
        """
        Rename a member: C{ok} or C{taken} (by a name with the same
        L{nameKey}).
        """

    def publish(
        self, seq: int, payload: bytes, leftKeys: Sequence[str]
    ) -> Deferred[Any]:
        """
        Publish a batch, once.
        """

    def register(self, names: Sequence[str]) -> Deferred[list[str]]:
        """
        Register names of members admitted while out of contact.
        """


class _BusReaders:
    """
    The readers on other nodes (and this node's reading of the bus), as one
    of the room's readers that are behind.
    """

    def __repr__(self) -> str:
        return "<the bus's readers>"


class Batch:
    """
    Events published together, under one number.

    @ivar sent: whether it was handed to the bus (it may then be there:
        nothing more may join it).
    @ivar pending: whether the bus has it and has not answered yet.
    """

    __slots__ = ("events", "leftKeys", "owners", "pending", "sent", "seq", "size")

    def __init__(self, seq: int) -> None:
        self.seq = seq
        self.events: list[bytes] = []
        # Who said each event (a line's sender), or None.
        self.owners: list[IChatMember | None] = []
        self.leftKeys: list[str] = []
        self.size = 0
        self.sent = False
        self.pending = False


@implementer(IChatRoom)
class SharedRoom(ChatRoom):
    """
    A room whose members are spread over the nodes of a bus; this node
    holds some of them (as a L{ChatRoom} does) and knows of the others.

    @ivar others: the other nodes' members, by the key of their name (see
        L{nameKey}): C{(node, name)}.
    @ivar contact: whether the node is in contact with the room.
    @ivar pressure: the room's readers that are behind (set by the server),
        which lines from other nodes wait for as local senders do; the bus
        is one of them while it is behind (L{BEHIND_ON_BUS}).
    @ivar busLag: bytes of the room's stream the slowest node has left to
        read, as last reported.
    """

    log = Logger()
    clock: IReactorTime

    def __init__(
        self,
        bus: Bus,
        clock: IReactorTime,
        capacity: int,
        presenceLimit: int = 100,
        history: int = 0,
        outboxLimit: int = OUTBOX_LIMIT,
        historyBytes: int = HISTORY_BYTES,
    ) -> None:
        super().__init__(capacity, presenceLimit, history, historyBytes, clock)
        self.bus = bus
        self.clock = clock
        self.outboxLimit = outboxLimit
        self.others: dict[str, tuple[str, str]] = {}
        self.contact = False
        self.pressure: OutputPressure | None = None
        self.outbox: deque[Batch] = deque()
        self.outboxBytes = 0
        self.seq = 0
        self.lastSeq: dict[str, int] = {}
        self._position = (0, 0)
        self._flushing: IDelayedCall | None = None
        self._pending = 0
        self._flushingNow = False
        self._toldLost = False
        self._toldDropped: set[IChatMember] = set()
        self._droppedLines = 0
        self._flushWaiters: list[Deferred[None]] = []
        self._missingToldAt: float | None = None
        self.limiter = LogLimiter(clock)
        # Batches small enough that the bound drops old ones, not new ones.
        self._batchBytes = max(256, min(BATCH_BYTES, outboxLimit // 4))
        # What one sender may have waiting for the bus.
        self._senderShare = outboxLimit // SENDER_SHARE
        self._queuedBy: dict[IChatMember, int] = {}
        self.busLag = 0
        # Senders wait well before one of them fills its share.
        self._outboxBehind = min(OUTBOX_BEHIND, outboxLimit // 8)
        # Who the bus is, among the readers that are behind.
        self._busReaders = _BusReaders()
        self._retry: IDelayedCall | None = None

    # Who is here, over the whole room

    def population(self) -> int:
        """
        How many members the room has, on every node.
        """
        return len(self._names) + len(self.others)

    def isFull(self) -> bool:
        """
        Whether the room, on every node, is at capacity.
        """
        return self.population() >= self.capacity

    def hasName(self, name: str) -> bool:
        """
        Whether a member anywhere has C{name} (see L{nameKey}).
        """
        key = nameKey(name)
        return key in self._byKey or key in self.others

    def holderOf(self, name: str) -> str | None:
        """
        The name of the member, anywhere, whose name is the same as C{name}
        (see L{nameKey}), or C{None}.
        """
        local = super().holderOf(name)
        if local is not None:
            return local
        other = self.others.get(nameKey(name))
        return None if other is None else other[1]

    def names(self) -> list[str]:
        """
        Every member's name, sorted case-insensitively.
        """
        if self._sortedNames is None:
            self._sortedNames = sorted(
                [*self._names.values(), *(name for _, name in self.others.values())],
                key=str.casefold,
            )
        return list(self._sortedNames)

    def localNames(self) -> list[str]:
        """
        The names of this node's members.
        """
        return list(self._names.values())

    def announce(self, event: ChatEvent, exclude: IChatMember | None = None) -> None:
        """
        Deliver a presence event locally, unless the whole room is larger
        than C{presenceLimit}.
        """
        if self.population() <= self.presenceLimit and not self.closed:
            self.broadcast(event, exclude=exclude)

    # Joining, leaving, names

    def join(
        self, member: IChatMember, preferredName: str, quietly: bool = False
    ) -> Deferred[str]:
        """
        Admit C{member} as C{preferredName} (or C{preferredName#N}): on the
        bus while it is there, on what this node knows otherwise.
        """
        if not self.bus.connected:
            return self._joinLocally(member, preferredName, quietly)
        candidates = self._candidates(preferredName)
        result: Deferred[str] = Deferred()

        def tryNext(ignored: object = None) -> None:
            name = next(candidates, None)
            if name is None:
                result.errback(NameRejected("no free name"))
                return
            asking = self.bus.admit(name, self.capacity)
            asking.addCallbacks(answered, notAsked, callbackArgs=(name,))

        def answered(answer: str, name: str) -> None:
            if answer == "taken":
                tryNext()
            elif answer == "full":
                result.errback(RoomFull(self.capacity))
            else:
                result.callback(self._admitted(member, name, quietly))

        def notAsked(failure: Failure) -> None:
            self._joinLocally(member, preferredName, quietly).chainDeferred(result)

        tryNext()
        return result

    def _candidates(self, preferredName: str) -> Iterator[str]:
        for suffix in range(1, NAME_TRIES + 1):
            name = preferredName if suffix == 1 else f"{preferredName}#{suffix}"
            if not self.hasName(name):
                yield name

    def _joinLocally(
        self, member: IChatMember, preferredName: str, quietly: bool
    ) -> Deferred[str]:
        if self.isFull():
            return fail(RoomFull(self.capacity))
        for name in self._candidates(preferredName):
            return succeed(self._admitted(member, name, quietly))
        return fail(NameRejected("no free name"))

    def _admitted(self, member: IChatMember, name: str, quietly: bool) -> str:
        self._send(Presence("j", name, quietly))
        return self.admit(member, name, quietly)

    def leave(self, member: IChatMember) -> None:
        """
        Remove C{member} here, and on the bus.
        """
        name = self._names.get(member)
        quiet = member in self._quiet
        super().leave(member)
        self._toldDropped.discard(member)
        if name is not None and not self.closed:
            self._send(Presence("l", name, quiet), leftKey=nameKey(name))

    def rename(self, member: IChatMember, newName: str) -> Deferred[str]:
        """
        Rename C{member}: on the bus while it is there.
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
        try:
            self._checkFree(member, oldName, newName)
        except NameRejected as rejected:
            return fail(rejected)
        if not self.bus.connected:
            return succeed(self._renamed(member, oldName, newName))

        def answered(answer: str) -> str:
            if answer == "taken":
                raise NameRejected(takenMessage(newName, self.holderOf(newName)))
            return self._renamed(member, oldName, newName)

        def notAsked(failure: Failure) -> str | Failure:
            if failure.check(NameRejected):
                return failure
            # Decided here, on what this node knows now: another member of
            # this node may have taken the name meanwhile.
            return self._renamed(member, oldName, newName)

        return self.bus.rename(oldName, newName).addCallbacks(answered, notAsked)

    def _checkFree(self, member: IChatMember, oldName: str, newName: str) -> None:
        """
        Raise L{NameRejected} if a member other than C{member} (on any node
        this node knows of) has a name the same as C{newName}.
        """
        key = nameKey(newName)
        if key == nameKey(oldName):
            return
        holder = self._byKey.get(key)
        if (holder is not None and holder is not member) or key in self.others:
            raise NameRejected(takenMessage(newName, self.holderOf(newName)))

    def _renamed(self, member: IChatMember, oldName: str, newName: str) -> str:
        """
        Apply a change of name the bus agreed to, or that this node decides
        alone (the bus is away): unless the member changed its name
        meanwhile, or, deciding alone, another member here took the name.
        """
        if self._names.get(member) != oldName:
            return oldName
        if not self.bus.connected:
            self._checkFree(member, oldName, newName)
        self.setName(member, oldName, newName)
        self._send(Rename(oldName, newName, False))
        return oldName

    def say(self, member: IChatMember, lines: Sequence[bytes]) -> None:
        """
        Deliver C{lines} here at once, and send them to the other nodes.
        """
        name = self._names[member]
        super().say(member, lines)
        # Delivering may have made the sender leave: its lines go on.
        self._send(Said(name, tuple(lines)), sender=member)

    # The outbox

    def _send(
        self,
        event: BusEvent,
        sender: IChatMember | None = None,
        leftKey: str | None = None,
    ) -> None:
        """
        Put C{event} in the outbox, to go with the others of this reactor
        pass.
        """
        encoded = encodeEvent(event)
        size = len(encoded) + 1
        tail = self.outbox[-1] if self.outbox else None
        if tail is None or tail.sent or tail.size >= self._batchBytes:
            self.seq += 1
            tail = Batch(self.seq)
            self.outbox.append(tail)
        tail.events.append(encoded)
        tail.owners.append(sender)
        tail.size += size
        self.outboxBytes += size
        if leftKey is not None:
            tail.leftKeys.append(leftKey)
        if sender is not None:
            queued = self._queuedBy[sender] = self._queuedBy.get(sender, 0) + size
            if queued > self._senderShare:
                # The sender pays: a flood fills no more than its share of
                # the backlog, and drops its own oldest lines, not others'.
                self._dropOldestOf(sender)
        if self.outboxBytes > self._outboxBehind:
            self._checkBehind()
        if self.outboxBytes > self.outboxLimit:
            self._dropOldest()
        if self._flushing is None:
            self._flushing = self.clock.callLater(0, self._flush)

    def _release(self, batch: Batch) -> None:
        """
        C{batch} left the outbox (published or dropped): its senders have
        that much less waiting.
        """
        self.outboxBytes -= batch.size
        if self.outboxBytes <= self._outboxBehind // 2:
            self._checkBehind()
        for owner, event in zip(batch.owners, batch.events, strict=True):
            if owner is not None:
                left = self._queuedBy.get(owner, 0) - len(event) - 1
                if left > 0:
                    self._queuedBy[owner] = left
                else:
                    self._queuedBy.pop(owner, None)

    def _dropOldestOf(self, sender: IChatMember) -> None:
        """
        Drop C{sender}'s oldest lines waiting for the bus (not those on
        their way) until it holds no more than its share of the backlog.
        """
        dropped = 0
        for batch in list(self.outbox):
            if self._queuedBy.get(sender, 0) <= self._senderShare:
                break
            if batch.pending or sender not in batch.owners:
                continue
            events: list[bytes] = []
            owners: list[IChatMember | None] = []
            for owner, event in zip(batch.owners, batch.events, strict=True):
                if owner is sender and self._queuedBy[sender] > self._senderShare:
                    self._queuedBy[sender] -= len(event) + 1
                    batch.size -= len(event) + 1
                    self.outboxBytes -= len(event) + 1
                    dropped += 1
                else:
                    events.append(event)
                    owners.append(owner)
            batch.events, batch.owners = events, owners
            if not events:
                self.outbox.remove(batch)
        self._toldDrop([sender], dropped, 0)

    def _dropOldest(self) -> None:
        dropped = presence = 0
        told: list[IChatMember] = []
        kept: deque[Batch] = deque()
        while self.outboxBytes > self.outboxLimit and len(self.outbox) > 1:
            batch = self.outbox.popleft()
            if batch.pending:
                # On its way: it may well arrive; keep it.
                kept.append(batch)
                continue
            self._release(batch)
            lines = sum(1 for event in batch.events if event[:1] == b"m")
            dropped += lines
            presence += len(batch.events) - lines
            told.extend(owner for owner in batch.owners if owner is not None)
        self.outbox.extendleft(reversed(kept))
        self._toldDrop(told, dropped, presence)

    def _toldDrop(
        self, senders: list[IChatMember], dropped: int, presence: int
    ) -> None:
        """
        Tell each of C{senders} still here, once while the bus is away, that
        lines of theirs did not reach the others; log it (at a bounded rate).
        """
        there = self.bus.connected
        for sender in senders:
            if sender in self._names and sender not in self._toldDropped:
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
                why="The bus does not take lines in time"
                if there
                else "The bus is away",
                limit=self.outboxLimit,
                count=dropped,
                presence=presence,
            )

    def _flush(self) -> None:
        """
        Publish, in order, the batches not yet on their way, if the bus is
        there: several at once (each its own round trip, pipelined on one
        connection), at most L{IN_FLIGHT}.
        """
        self._flushing = None
        if self._flushingNow:
            # A publication answered at once, inside this loop: it goes on.
            return
        self._flushingNow = True
        try:
            while self.bus.connected and self._pending < IN_FLIGHT:
                batch = next((b for b in self.outbox if not b.pending), None)
                if batch is None:
                    return
                batch.sent = batch.pending = True
                self._pending += 1
                publishing = self.bus.publish(
                    batch.seq, encodeBatch(batch.events), batch.leftKeys
                )
                publishing.addCallbacks(
                    self._published,
                    self._notPublished,
                    callbackArgs=(batch,),
                    errbackArgs=(batch,),
                )
        finally:
            self._flushingNow = False

    def _published(self, ignored: object, batch: Batch) -> None:
        batch.pending = False
        self._pending -= 1
        if self.outbox and self.outbox[0] is batch:
            self.outbox.popleft()
            self._release(batch)
        elif batch in self.outbox:
            self.outbox.remove(batch)
            self._release(batch)
        if self.outbox:
            if self._flushing is None:
                self._flush()
        elif self._flushWaiters:
            waiters, self._flushWaiters = self._flushWaiters, []
            for waiter in waiters:
                waiter.callback(None)

    def whenFlushed(self) -> Deferred[None]:
        """
        Fire once the outbox is empty (at once if it is): what the node's
        members said is on the bus.
        """
        if not self.outbox:
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        self._flushWaiters.append(waiter)
        return waiter

    def _notPublished(self, failure: Failure, batch: Batch) -> None:
        # The bus is lost, and the batch is published again once it is
        # back; or the bus refused it (Redis is out of memory), and it is
        # tried again in a while.
        batch.pending = False
        self._pending -= 1
        if self.bus.connected and self._retry is None:
            self._retry = self.clock.callLater(PUBLISH_RETRY, self._retryFlush)

    def _retryFlush(self) -> None:
        self._retry = None
        self._flush()

    def readersBehind(self, reader: object) -> Deferred[None] | None:
        """
        If members here that still read are far behind, return a
        L{Deferred} that fires once they have caught up: C{reader} (the bus)
        waits for it before it reads more lines from the other nodes, as a
        sender here would; else C{None}. The bus reading waits for members
        here, never for itself (see L{busProgress}).
        """
        pressure = self.pressure
        if pressure is None or not pressure.holdsBack(self._busReaders):
            return None
        return pressure.hold(self._busReaders)

    def busProgress(self, lag: int) -> None:
        """
        The slowest node in the room has C{lag} bytes of the room's stream
        left to read (this node's included).
        """
        self.busLag = lag
        self._checkBehind()

    def _checkBehind(self) -> None:
        """
        Count the bus among the readers that are behind while the slowest
        node has more than L{BEHIND_ON_BUS} bytes to read, or more than
        L{OUTBOX_BEHIND} bytes (an eighth of the outbox's bound, if that is
        less) of this node's lines wait for a bus that is
        there; and no longer once both are down to half of that, or the
        bus is away (lines then wait in the outbox, a share per sender).
        """
        pressure = self.pressure
        if pressure is None:
            return
        there = self.bus.connected
        if pressure.isBehind(self._busReaders):
            if not there or (
                self.busLag <= BEHIND_ON_BUS // 2
                and self.outboxBytes <= self._outboxBehind // 2
            ):
                pressure.caughtUp(self._busReaders)
        elif there and (
            self.busLag > BEHIND_ON_BUS or self.outboxBytes > self._outboxBehind
        ):
            pressure.fellBehind(self._busReaders, self._busUnsent, BUS_PATIENCE)

    def _busUnsent(self) -> int:
        """
        What the bus has yet to carry: the slowest node's lag and the
        outbox.
        """
        return self.busLag + self.outboxBytes

    # What the bus tells

    def busJoined(self, rejoined: Rejoined) -> None:
        """
        The node is in the room on the bus (again): take the names as
        registered, who else is here, and say what changed.
        """
        for asked, registered in zip(rejoined.asked, rejoined.names, strict=True):
            if asked != registered:
                self._takeRegisteredName(asked, registered)
        missing = [name for name in self.localNames() if name not in rejoined.names]
        self.others = {
            nameKey(name): (node, name)
            for node, name in rejoined.others
            if nameKey(name) not in self._byKey
        }
        self._sortedNames = None
        self._position = streamId(rejoined.position)
        if rejoined.reaped:
            for member, name in list(self._names.items()):
                self._send(Presence("j", name, member in self._quiet))
        else:
            self._send(Here(tuple(self.localNames())))
        if rejoined.recent and self.recent is not None:
            said = list(self.recent)
            self.recent.clear()
            for entry in rejoined.recent:
                for event in entry.events:
                    if isinstance(event, Said):
                        self.remember(event.sender, event.lines)
            # Said here before the node first joined: after the older lines.
            self.recent.extend(said)
        self.contact = True
        self._toldDropped.clear()
        if self._toldLost:
            self._toldLost = False
            self.broadcast(Notice(BACK))
        if rejoined.lostData:
            self._tellMissing(always=True)
        if missing:
            # REGISTER takes every name the node holds (it releases others).
            everyone = self.localNames()
            registering = self.bus.register(everyone)
            registering.addCallbacks(
                lambda names: self._registeredLate(everyone, names),
                lambda failure: None,
            )
        self._flush()

    def _registeredLate(self, asked: list[str], names: list[str]) -> None:
        for old, new in zip(asked, names, strict=True):
            if old != new:
                self._takeRegisteredName(old, new)

    def _takeRegisteredName(self, old: str, new: str) -> None:
        """
        A member's name was taken on another node while this one was out of
        contact: it goes by the name the bus gave it.
        """
        member = self._byKey.get(nameKey(old))
        if member is None:
            return
        self.setName(member, old, new)
        member.receive(Notice(f"your name {old} was taken on another server meanwhile"))
        member.receive(NameChanged(new))
        # What the member said meanwhile, still to publish, goes out under
        # the name it has now: the old one is another node's member's.
        for batch in self.outbox:
            batch.events = [renameIn(event, old, new) for event in batch.events]
        self._send(Rename(old, new, True))

    def busLost(self, reason: str) -> None:
        """
        Contact with the other nodes is lost: say so, once.
        """
        self.contact = False
        self._checkBehind()
        if not self._toldLost and not self.closed:
            self._toldLost = True
            self.broadcast(Notice(LOST))

    def busEntries(self, entries: list[Entry]) -> None:
        """
        Deliver what the other nodes said, in order, each batch once.
        """
        own = self.bus.node
        gone = "gone:" + own
        for entry in entries:
            if entry.node == own or entry.node == gone:
                # This node's own, or the departure of its members while
                # the others counted it as gone: they never left.
                continue
            if entry.seq:
                last = self.lastSeq.get(entry.node)
                if last is not None:
                    if last - DEDUPE_WINDOW < entry.seq <= last:
                        # A batch published again (Redis lost what it
                        # knew of the node's numbers): delivered already.
                        continue
                    if entry.seq == last + 1 or entry.seq <= last - DEDUPE_WINDOW:
                        pass
                    elif entry.seq > last + 1:
                        # Batches of this node never reached the stream, or
                        # were trimmed from it before this node read them.
                        self._tellMissing()
                self.lastSeq[entry.node] = entry.seq
            fresh = streamId(entry.id) > self._position
            for event in entry.events:
                self._deliverRemote(entry.node, event, fresh)

    def _tellMissing(self, always: bool = False) -> None:
        """
        Tell the members that lines from other servers may be missing, at
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
        self.broadcast(Notice(MISSING))

    def _deliverRemote(self, node: str, event: BusEvent, fresh: bool) -> None:
        if isinstance(event, Said):
            self.remember(event.sender, event.lines)
            self.broadcast(Message(event.sender, event.lines))
            return
        if isinstance(event, Here):
            if fresh:
                # The node's members now: those it no longer lists are gone
                # (a departure it could not publish was dropped).
                listed = {nameKey(name) for name in event.names}
                for key, (holder, _) in list(self.others.items()):
                    if holder == node and key not in listed:
                        del self.others[key]
                        self._sortedNames = None
                for name in event.names:
                    self._setOther(nameKey(name), (node, name), node)
            return
        if isinstance(event, Rename):
            if nameKey(event.oldName) in self._byKey:
                return
            if fresh:
                self._dropOther(nameKey(event.oldName), node)
                self._setOther(nameKey(event.newName), (node, event.newName), node)
            if not event.quiet:
                self.announce(Renamed(event.oldName, event.newName))
            return
        key = nameKey(event.name)
        if key in self._byKey:
            # A name this node holds: news of someone else's, from before
            # this node took it.
            return
        if event.kind == "j":
            if fresh:
                self._setOther(key, (node, event.name), node)
            if event.quiet:
                self.noteQuietly(joined=event.name)
            else:
                self.announce(Joined(event.name))
        else:
            if fresh:
                # "x" entries come from "gone:NODE", about NODE's members.
                self._dropOther(key, node.removeprefix("gone:"))
            if event.quiet:
                self.noteQuietly(left=event.name)
            else:
                self.announce(Left(event.name))

    def _dropOther(self, key: str, node: str) -> None:
        """
        Forget C{key} if C{node} holds it (not if another node took it).
        """
        holder = self.others.get(key)
        if holder is not None and holder[0] == node:
            del self.others[key]
            self._sortedNames = None

    def _setOther(self, key: str, holder: tuple[str, str], node: str) -> None:
        """
        Note that C{node} holds C{key}, unless this node or another holds
        it (a node's provisional name, settled since under another).
        """
        current = self.others.get(key)
        if key not in self._byKey and (current is None or current[0] == node):
            self.others[key] = holder
            self._sortedNames = None

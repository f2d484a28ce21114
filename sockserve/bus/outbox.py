"""
What a node has to publish, in order: its rooms' events, batched.

Local delivery never waits for the bus: a member's lines reach the members
of its own node at once, and go into the outbox, from which they are
published in batches (all the events of a reactor pass for one room in one
batch, one round trip). While the bus is away the outbox keeps them, in
order, up to C{limit} bytes, a quarter of it for one sender (beyond it the
oldest are dropped, a flooder's own first, and their senders told); once
the bus is back they are published, each batch once (a batch number, per
room, lets the bus drop a retried batch it already has).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.python.failure import Failure

from sockserve.bus.codec import BATCH_BYTES, encodeBatch
from sockserve.chat.people import IChatMember

# Bytes of events kept for the bus while it is away.
OUTBOX_LIMIT = 4 * 1024 * 1024
# One sender may fill at most this fraction (1/N) of the backlog.
SENDER_SHARE = 4
# Batches handed to the bus at once, before it answers.
IN_FLIGHT = 8
# Seconds before a batch the bus refused (Redis out of memory) is tried
# again.
PUBLISH_RETRY = 0.5


class Batch:
    """
    Events of one room published together, under one number.

    @ivar room: the key of the room.
    @ivar sent: whether it was handed to the bus (it may then be there:
        nothing more may join it).
    @ivar pending: whether the bus has it and has not answered yet.
    @ivar last: whether the node may have no member left in the room after
        it.
    """

    __slots__ = (
        "events",
        "last",
        "leftKeys",
        "owners",
        "pending",
        "room",
        "sent",
        "seq",
        "size",
    )

    def __init__(self, room: str, seq: int) -> None:
        self.room = room
        self.seq = seq
        self.events: list[bytes] = []
        # Who said each event (a line's sender), or None.
        self.owners: list[IChatMember | None] = []
        self.leftKeys: list[str] = []
        self.size = 0
        self.sent = False
        self.pending = False
        self.last = False

    @property
    def payload(self) -> bytes:
        """
        What the stream's entry holds.
        """
        return encodeBatch(self.events)


# Publish a batch: a Deferred that fires once the bus has it.
Publisher = Callable[[Batch], "Deferred[Any]"]
# Tell senders that lines of theirs were dropped: (senders, lines dropped,
# changes of who is here dropped).
DropReporter = Callable[[list[IChatMember], int, int], None]


class Outbox:
    """
    The batches a node has to publish, by room, each room's in order.

    @ivar bytes: the bytes waiting, in all.
    @ivar limit: the most bytes waiting; beyond it the oldest are dropped.
    """

    def __init__(
        self,
        clock: IReactorTime,
        publish: Publisher,
        connected: Callable[[], bool],
        dropped: DropReporter,
        limit: int = OUTBOX_LIMIT,
    ) -> None:
        self.clock = clock
        self._publish = publish
        self._connected = connected
        self._dropped = dropped
        self.limit = limit
        self.bytes = 0
        self.byRoom: dict[str, int] = {}
        self._queues: dict[str, deque[Batch]] = {}
        self._seqs: dict[str, int] = {}
        self._flushing: IDelayedCall | None = None
        self._retry: IDelayedCall | None = None
        self._pending = 0
        self._flushingNow = False
        self._waiters: list[Deferred[None]] = []
        # Batches small enough that the bound drops old ones, not new ones.
        self._batchBytes = max(256, min(BATCH_BYTES, limit // 4))
        # What one sender may have waiting for the bus.
        self.senderShare = limit // SENDER_SHARE
        self._queuedBy: dict[IChatMember, int] = {}
        self.released: Callable[[str], None] = lambda room: None

    def __bool__(self) -> bool:
        return self.bytes > 0 or any(self._queues.values())

    def batches(self) -> Iterator[Batch]:
        """
        Every batch waiting, room by room.
        """
        for queue in self._queues.values():
            yield from queue

    def send(
        self,
        room: str,
        encoded: bytes,
        sender: IChatMember | None = None,
        leftKey: str | None = None,
        last: bool = False,
    ) -> None:
        """
        Put C{encoded}, an event of the room whose key is C{room}, in the
        outbox, to go with the others of this reactor pass.
        """
        size = len(encoded) + 1
        queue = self._queues.get(room)
        if queue is None:
            queue = self._queues[room] = deque()
        tail = queue[-1] if queue else None
        if tail is None or tail.sent or tail.size >= self._batchBytes:
            seq = self._seqs[room] = self._seqs.get(room, 0) + 1
            tail = Batch(room, seq)
            queue.append(tail)
        tail.events.append(encoded)
        tail.owners.append(sender)
        tail.size += size
        tail.last = last
        self.bytes += size
        self.byRoom[room] = self.byRoom.get(room, 0) + size
        if leftKey is not None:
            tail.leftKeys.append(leftKey)
        if sender is not None:
            queued = self._queuedBy[sender] = self._queuedBy.get(sender, 0) + size
            if queued > self.senderShare:
                # The sender pays: a flood fills no more than its share of
                # the backlog, and drops its own oldest lines, not others'.
                self._dropOldestOf(sender)
        if self.bytes > self.limit:
            self._dropOldest()
        if self._flushing is None:
            self._flushing = self.clock.callLater(0, self.flush)

    def renumber(self, rewrite: Callable[[bytes], bytes]) -> None:
        """
        Rewrite every event waiting that was not handed to the bus yet (a
        member's name changed while it waited).
        """
        for batch in self.batches():
            if not batch.sent:
                batch.events = [rewrite(event) for event in batch.events]

    def _release(self, batch: Batch) -> None:
        """
        C{batch} left the outbox (published or dropped): its senders have
        that much less waiting.
        """
        self.bytes -= batch.size
        left = self.byRoom.get(batch.room, 0) - batch.size
        if left > 0:
            self.byRoom[batch.room] = left
        else:
            self.byRoom.pop(batch.room, None)
        for owner, event in zip(batch.owners, batch.events, strict=True):
            if owner is not None:
                queued = self._queuedBy.get(owner, 0) - len(event) - 1
                if queued > 0:
                    self._queuedBy[owner] = queued
                else:
                    self._queuedBy.pop(owner, None)
        self.released(batch.room)

    def _dropOldestOf(self, sender: IChatMember) -> None:
        """
        Drop C{sender}'s oldest lines waiting for the bus (not those on
        their way) until it holds no more than its share of the backlog.
        """
        dropped = 0
        for queue in self._queues.values():
            for batch in list(queue):
                if self._queuedBy.get(sender, 0) <= self.senderShare:
                    break
                if batch.pending or sender not in batch.owners:
                    continue
                events: list[bytes] = []
                owners: list[IChatMember | None] = []
                for owner, event in zip(batch.owners, batch.events, strict=True):
                    if owner is sender and self._queuedBy[sender] > self.senderShare:
                        self._queuedBy[sender] -= len(event) + 1
                        batch.size -= len(event) + 1
                        self.bytes -= len(event) + 1
                        self.byRoom[batch.room] -= len(event) + 1
                        dropped += 1
                    else:
                        events.append(event)
                        owners.append(owner)
                batch.events, batch.owners = events, owners
                if not events:
                    queue.remove(batch)
        self._dropped([sender], dropped, 0)

    def _dropOldest(self) -> None:
        dropped = presence = 0
        told: list[IChatMember] = []
        for queue in self._queues.values():
            kept: deque[Batch] = deque()
            while self.bytes > self.limit and len(queue) > 1:
                batch = queue.popleft()
                if batch.pending:
                    # On its way: it may well arrive; keep it.
                    kept.append(batch)
                    continue
                self._release(batch)
                lines = sum(1 for event in batch.events if event[:1] == b"m")
                dropped += lines
                presence += len(batch.events) - lines
                told.extend(owner for owner in batch.owners if owner is not None)
            queue.extendleft(reversed(kept))
        self._dropped(told, dropped, presence)

    def flush(self) -> None:
        """
        Publish, each room's in order, the batches not yet on their way, if
        the bus is there: several at once (each its own round trip,
        pipelined on one connection), at most L{IN_FLIGHT}.
        """
        self._flushing = None
        if self._flushingNow:
            # A publication answered at once, inside this loop: it goes on.
            return
        self._flushingNow = True
        try:
            progress = True
            while progress and self._connected() and self._pending < IN_FLIGHT:
                progress = False
                for queue in list(self._queues.values()):
                    if self._pending >= IN_FLIGHT or not self._connected():
                        break
                    batch = next((b for b in queue if not b.pending), None)
                    if batch is None:
                        continue
                    progress = True
                    batch.sent = batch.pending = True
                    self._pending += 1
                    publishing = self._publish(batch)
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
        queue = self._queues.get(batch.room)
        if queue is not None and batch in queue:
            queue.remove(batch)
            if not queue:
                del self._queues[batch.room]
            self._release(batch)
        if any(self._queues.values()):
            if self._flushing is None:
                self.flush()
        elif self._waiters:
            waiters, self._waiters = self._waiters, []
            for waiter in waiters:
                waiter.callback(None)

    def _notPublished(self, failure: Failure, batch: Batch) -> None:
        # The bus is lost, and the batch is published again once it is
        # back; or the bus refused it (Redis is out of memory), and it is
        # tried again in a while.
        batch.pending = False
        self._pending -= 1
        if self._connected() and self._retry is None:
            self._retry = self.clock.callLater(PUBLISH_RETRY, self._retryFlush)

    def _retryFlush(self) -> None:
        self._retry = None
        self.flush()

    def whenFlushed(self) -> Deferred[None]:
        """
        Fire once the outbox is empty (at once if it is): what the node's
        members said is on the bus.
        """
        if not any(self._queues.values()):
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        self._waiters.append(waiter)
        return waiter

    def stop(self) -> None:
        """
        Stop the timers (the node is stopping).
        """
        for call in (self._flushing, self._retry):
            if call is not None and call.active():
                call.cancel()
        self._flushing = self._retry = None

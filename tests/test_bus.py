"""
One room across nodes, on fakes: a L{Clock} for the reactor, an in-memory
bus (and a little in-memory Redis that several buses share, so that rooms on
several nodes talk), plain members. Then the codec of the room's stream and
C{--bus} addresses.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.logger import LogLevel, formatEvent
from twisted.python.failure import Failure
from zope.interface import implementer
from zope.interface.verify import verifyObject

from sockserve._text import safeText
from sockserve.bus.address import (
    DEFAULT_PORT,
    BusAddress,
    checkRoomName,
    parseBusAddress,
)
from sockserve.bus.codec import (
    BATCH_BYTES,
    BadEntry,
    BusEvent,
    Here,
    Presence,
    Rename,
    Said,
    decodeBatch,
    encodeBatch,
    encodeEvent,
)
from sockserve.bus.room import (
    BACK,
    DROPPED,
    LOST,
    MISSING,
    Entry,
    Rejoined,
    SharedRoom,
    streamId,
)
from sockserve.chat.events import (
    ChatEvent,
    History,
    Joined,
    Left,
    Message,
    NameChanged,
    Notice,
    Renamed,
)
from sockserve.chat.room import IChatMember, IChatRoom, NameRejected, RoomFull
from tests.support import capturedLogs

T = TypeVar("T")


# Fakes


class BusDown(ConnectionError):
    """
    What the fake bus fails with.
    """


class Pending:
    """
    A request the fake bus holds until the test answers or fails it.
    """

    def __init__(self, kind: str, value: object) -> None:
        self.kind = kind
        self.value = value
        self.deferred: Deferred[Any] = Deferred()

    def answer(self) -> None:
        self.deferred.callback(self.value)

    def fail(self) -> None:
        self.deferred.errback(Failure(BusDown("the bus is gone")))


@dataclass
class Published:
    """
    A batch as the room handed it to the bus.
    """

    seq: int
    events: list[BusEvent]
    leftKeys: list[str]


class FakeBus:
    """
    An in-memory L{sockserve.bus.room.Bus}: it answers at once, or, while
    C{holding}, only when the test says so (through C{pending}); while
    C{failing}, every request fails. It records what the room asked of it.

    Alone, its answers come from C{answers} (admissions and renames, by
    name: C{ok} unless told otherwise) and C{registerAs}; with a
    L{FakeRedis}, from the members that Redis holds, and its batches go to
    Redis's stream.
    """

    def __init__(
        self, node: str = "here", connected: bool = True, redis: FakeRedis | None = None
    ) -> None:
        self.node = node
        self.connected = connected
        self.redis = redis
        self.room: SharedRoom | None = None
        self.holding = False
        self.failing = False
        self.pending: list[Pending] = []
        self.answers: dict[str, str] = {}
        self.registerAs: dict[str, str] = {}
        self.admits: list[str] = []
        self.renames: list[tuple[str, str]] = []
        self.published: list[Published] = []
        self.registered: list[list[str]] = []
        self.cursor: str | None = None

    def _reply(self, kind: str, value: T) -> Deferred[T]:
        if self.failing:
            return fail(BusDown("the bus is gone"))
        if self.holding:
            pending = Pending(kind, value)
            self.pending.append(pending)
            return pending.deferred
        return succeed(value)

    def admit(self, name: str, capacity: int) -> Deferred[str]:
        self.admits.append(name)
        if self.redis is not None and not self.failing:
            return self._reply("admit", self.redis.admit(self.node, name, capacity))
        return self._reply("admit", self.answers.get(name, "ok"))

    def rename(self, oldName: str, newName: str) -> Deferred[str]:
        self.renames.append((oldName, newName))
        if self.redis is not None and not self.failing:
            return self._reply("rename", self.redis.rename(self.node, oldName, newName))
        return self._reply("rename", self.answers.get(newName, "ok"))

    def publish(
        self, seq: int, payload: bytes, leftKeys: Sequence[str]
    ) -> Deferred[Any]:
        self.published.append(Published(seq, decodeBatch(payload), list(leftKeys)))
        if self.redis is not None and not self.failing:
            return self._reply(
                "publish", self.redis.publish(self.node, seq, payload, leftKeys)
            )
        return self._reply("publish", 1)

    def register(self, names: Sequence[str]) -> Deferred[list[str]]:
        self.registered.append(list(names))
        if self.redis is not None and not self.failing:
            # What the room asks for: these names, besides those it holds.
            registered = self.redis.register(self.node, names, everything=False)
            return self._reply("register", registered)
        return self._reply("register", [self.registerAs.get(n, n) for n in names])

    # What the test makes the bus do

    def lose(self) -> None:
        """
        Lose contact, and tell the room (as RedisBus does, before failing
        what was on its way).
        """
        assert self.room is not None
        self.connected = False
        self.room.busLost("the test cut the bus")

    def rejoin(
        self,
        asked: list[str] | None = None,
        names: list[str] | None = None,
        others: Iterable[tuple[str, str]] = (),
        position: str = "0-0",
        reaped: bool = False,
        lostData: bool = False,
        recent: Iterable[Entry] = (),
    ) -> None:
        """
        Be in contact (again), and tell the room what the bus says: by
        default that all its names were registered as they are.
        """
        assert self.room is not None
        if asked is None:
            asked = self.room.localNames()
        self.connected = True
        self.room.busJoined(
            Rejoined(
                asked=asked,
                names=list(asked) if names is None else names,
                reaped=reaped,
                lostData=lostData,
                others=list(others),
                position=position,
                recent=list(recent),
            )
        )

    def events(self) -> list[BusEvent]:
        """
        Every event published so far, in order.
        """
        return [event for batch in self.published for event in batch.events]


class FakeRedis:
    """
    The little of Redis that the buses of one room share, as the scripts of
    L{sockserve.bus.scripts} keep it: the members (by lower-case name:
    C{(node, name)}), the stream, and each node's last batch number.
    """

    def __init__(self) -> None:
        self.members: dict[str, tuple[str, str]] = {}
        self.stream: list[Entry] = []
        self.seqs: dict[str, int] = {}
        self.buses: list[FakeBus] = []

    def bus(self, node: str) -> FakeBus:
        bus = FakeBus(node, connected=False, redis=self)
        self.buses.append(bus)
        return bus

    def position(self) -> str:
        return self.stream[-1].id if self.stream else "0-0"

    def admit(self, node: str, name: str, capacity: int) -> str:
        key = name.lower()
        if key in self.members:
            return "taken"
        if len(self.members) >= capacity:
            return "full"
        self.members[key] = (node, name)
        return "ok"

    def rename(self, node: str, oldName: str, newName: str) -> str:
        oldKey, newKey = oldName.lower(), newName.lower()
        if oldKey != newKey and newKey in self.members:
            return "taken"
        if self.members.get(oldKey, ("", ""))[0] == node:
            del self.members[oldKey]
        self.members[newKey] = (node, newName)
        return "ok"

    def publish(
        self, node: str, seq: int, payload: bytes, leftKeys: Sequence[str]
    ) -> int:
        if seq <= self.seqs.get(node, 0):
            return 0
        self.seqs[node] = seq
        for key in leftKeys:
            if self.members.get(key, ("", ""))[0] == node:
                del self.members[key]
        entryId = f"{len(self.stream) + 1}-0"
        self.stream.append(Entry(entryId, node, seq, decodeBatch(payload)))
        return 1

    def register(self, node: str, names: Sequence[str], everything: bool) -> list[str]:
        """
        Register C{names} for C{node} (C{#N} for a name another node holds);
        if C{everything}, they are all the node holds (the others are
        released), as when a node rejoins.
        """
        wanted: dict[str, str] = {}
        for name in names:
            final, suffix = name, 2
            while (
                final.lower() in wanted
                or self.members.get(final.lower(), (node, ""))[0] != node
            ):
                final, suffix = f"{name}#{suffix}", suffix + 1
            wanted[final.lower()] = final
        if everything:
            for key, (holder, _) in list(self.members.items()):
                if holder == node and key not in wanted:
                    del self.members[key]
        for key, final in wanted.items():
            self.members[key] = (node, final)
        return list(wanted.values())

    def join(self, bus: FakeBus, reaped: bool = False, lostData: bool = False) -> None:
        """
        (Re)join C{bus}'s node to the room, as RedisBus does: register its
        members, take who else is here and where the stream is, read on
        from where it left off.
        """
        room = bus.room
        assert room is not None
        asked = room.localNames()
        names = self.register(bus.node, asked, everything=True)
        others = [held for held in self.members.values() if held[0] != bus.node]
        position = self.position()
        if bus.cursor is None:
            bus.cursor = position
        bus.connected = True
        room.busJoined(Rejoined(asked, names, reaped, lostData, others, position))

    def pump(self) -> None:
        """
        Deliver the entries each node in contact has not read yet.
        """
        for bus in self.buses:
            if not bus.connected or bus.room is None or bus.cursor is None:
                continue
            cursor = streamId(bus.cursor)
            entries = [entry for entry in self.stream if streamId(entry.id) > cursor]
            if entries:
                bus.cursor = entries[-1].id
                bus.room.busEntries(entries)


@implementer(IChatMember)
class Member:
    def __init__(self) -> None:
        self.received: list[ChatEvent] = []

    def receive(self, event: ChatEvent) -> None:
        self.received.append(event)

    def take(self) -> list[tuple[object, ...]]:
        """What the member received since last asked, as comparable tuples."""
        shown = describe(self.received)
        self.received.clear()
        return shown

    def notices(self) -> list[str]:
        return [event.text for event in self.received if isinstance(event, Notice)]


@implementer(IChatMember)
class Reacting(Member):
    """A member that does something whenever it receives an event."""

    def __init__(self, react: Callable[[ChatEvent], object]) -> None:
        super().__init__()
        self.react = react

    def receive(self, event: ChatEvent) -> None:
        super().receive(event)
        self.react(event)


def describe(events: Sequence[ChatEvent]) -> list[tuple[object, ...]]:
    """Events as comparable tuples."""
    shown: list[tuple[object, ...]] = []
    for event in events:
        if isinstance(event, Message):
            shown.append(("message", event.sender, event.lines))
        elif isinstance(event, Renamed):
            shown.append(("renamed", event.oldName, event.newName))
        elif isinstance(event, Joined):
            shown.append(("joined", event.name))
        elif isinstance(event, Left):
            shown.append(("left", event.name))
        elif isinstance(event, Notice):
            shown.append(("notice", event.text))
        elif isinstance(event, NameChanged):
            shown.append(("nameChanged", event.name))
        elif isinstance(event, History):
            shown.append(("history", event.lines))
        else:
            shown.append((type(event).__name__,))
    return shown


def result(deferred: Deferred[Any]) -> object:
    """The result of a Deferred that has fired (a Failure if it failed)."""
    results: list[object] = []
    deferred.addBoth(results.append)
    [value] = results
    return value


def admitted(room: SharedRoom, name: str, quietly: bool = False) -> Member:
    member = Member()
    assert result(room.join(member, name, quietly)) == name
    return member


def shared(
    connected: bool = True, capacity: int = 10, **options: Any
) -> tuple[SharedRoom, FakeBus, Clock]:
    """A room of node C{here} on a bus of its own, and its clock."""
    clock = Clock()
    bus = FakeBus("here", connected)
    room = SharedRoom(bus, clock, capacity, **options)
    bus.room = room
    return room, bus, clock


def node(
    redis: FakeRedis, clock: Clock, name: str, **options: Any
) -> tuple[SharedRoom, FakeBus]:
    """A room of node C{name} on the bus that C{redis} is."""
    bus = redis.bus(name)
    room = SharedRoom(bus, clock, options.pop("capacity", 10), **options)
    bus.room = room
    return room, bus


def settle(clock: Clock, redis: FakeRedis) -> None:
    """Run the reactor pass (the nodes publish), then read the stream."""
    clock.advance(0)
    redis.pump()


def line(index: int, size: int) -> bytes:
    return b"%03d " % index + b"." * (size - 4)


# The room, and its outbox


def test_a_shared_room_is_a_room() -> None:
    """SharedRoom provides IChatRoom: sessions use it as any room."""
    room, _, _ = shared()
    verifyObject(IChatRoom, room)


@pytest.mark.parametrize(
    ("connected", "holding"),
    [(True, False), (True, True), (False, False)],
    ids=["bus", "slow bus", "no bus"],
)
def test_local_delivery_never_waits_for_the_bus(connected: bool, holding: bool) -> None:
    """A line reaches this node's other members at once, before anything is
    published, whether the bus is there, slow, or away."""
    room, bus, clock = shared(connected)
    alice, bob = admitted(room, "alice"), admitted(room, "bob")
    clock.advance(0)
    bus.published.clear()
    alice.take()
    bus.holding = holding
    room.say(alice, [b"hi"])
    assert bob.take() == [("message", "alice", (b"hi",))]
    assert alice.take() == []
    assert bus.published == []
    clock.advance(0)
    assert [batch.events for batch in bus.published] == (
        [[Said("alice", (b"hi",))]] if connected else []
    )


def test_the_events_of_one_reactor_pass_go_in_one_publish() -> None:
    """Everything that happens in one reactor pass is one batch, published
    once, in order; a departure carries the lower-case key of the name it
    frees."""
    room, bus, clock = shared()
    alice = admitted(room, "Alice")
    bob = admitted(room, "bob")
    room.say(alice, [b"one", b"two"])
    assert result(room.rename(bob, "Bobby")) == "bob"
    room.leave(alice)
    assert bus.published == []
    clock.advance(0)
    assert bus.published == [
        Published(
            1,
            [
                Presence("j", "Alice", False),
                Presence("j", "bob", False),
                Said("Alice", (b"one", b"two")),
                Rename("bob", "Bobby", False),
                Presence("l", "Alice", False),
            ],
            ["alice"],
        )
    ]
    assert bus.renames == [("bob", "Bobby")]
    clock.advance(0)
    assert len(bus.published) == 1


def test_events_during_a_publish_wait_for_it_then_go_together() -> None:
    """While a batch is on its way, later events gather in the next batch;
    it goes (in one publish, under the next number) once the first is done."""
    room, bus, clock = shared()
    alice, bob = admitted(room, "alice"), admitted(room, "bob")
    clock.advance(0)
    bus.holding = True
    room.say(alice, [b"a"])
    clock.advance(0)
    room.say(alice, [b"b"])
    clock.advance(0)
    room.say(bob, [b"c"])
    clock.advance(0)
    assert [batch.seq for batch in bus.published] == [1, 2]
    [publishing] = bus.pending
    publishing.answer()
    assert [batch.seq for batch in bus.published] == [1, 2, 3]
    assert bus.published[-1].events == [Said("alice", (b"b",)), Said("bob", (b"c",))]
    bus.pending.pop().answer()
    clock.advance(0)
    assert len(bus.published) == 3


def test_a_batch_lost_with_the_bus_goes_again_under_its_number() -> None:
    """A batch whose publication failed is published again, the same events
    under the same number, once the bus is back; what was said meanwhile
    never joins it, but follows in a batch of its own."""
    room, bus, clock = shared()
    alice, bob = admitted(room, "alice"), admitted(room, "bob")
    clock.advance(0)
    bus.holding = True
    room.say(alice, [b"a"])
    clock.advance(0)
    [publishing] = bus.pending
    bus.lose()
    publishing.fail()
    room.say(bob, [b"b"])
    clock.advance(0)
    assert [batch.seq for batch in bus.published] == [1, 2]
    bus.rejoin()
    assert bus.published[-1] == Published(2, [Said("alice", (b"a",))], [])
    bus.pending.pop().answer()
    assert bus.published[-1] == Published(
        3, [Said("bob", (b"b",)), Here(("alice", "bob"))], []
    )
    bus.pending.pop().answer()
    clock.advance(0)
    assert [batch.seq for batch in bus.published] == [1, 2, 2, 3]


def test_entries_are_delivered_once_and_never_back_to_their_node() -> None:
    """A batch number already seen from a node is a duplicate, and dropped;
    the node's own entries, and the departures of its members that another
    node published while it counted this one gone, are skipped."""
    room, bus, clock = shared()
    alice = admitted(room, "alice")
    alice.take()
    room.busEntries(
        [
            Entry("1-0", "there", 1, [Said("bob", (b"hi",))]),
            Entry("2-0", "there", 1, [Said("bob", (b"hi",))]),
            Entry("3-0", "here", 7, [Said("alice", (b"echo",))]),
            Entry("4-0", "gone:here", 0, [Presence("x", "ghost", False)]),
            Entry("5-0", "there", 2, [Said("bob", (b"again",))]),
            Entry("6-0", "elsewhere", 1, [Said("carol", (b"hello",))]),
        ]
    )
    room.busEntries([Entry("7-0", "there", 2, [Said("bob", (b"again",))])])
    assert alice.take() == [
        ("message", "bob", (b"hi",)),
        ("message", "bob", (b"again",)),
        ("message", "carol", (b"hello",)),
    ]


def test_a_sender_dropped_while_its_line_is_delivered_still_reaches_the_bus() -> (
    None
):
    """A member whose line makes it leave while it is delivered here (a
    session does: the line overflows a slow reader, whose departure
    overflows the sender's own queue) still has that line relayed to the
    other nodes, and the room raises nothing to the session."""
    room, bus, clock = shared()
    alice = admitted(room, "alice")

    def dropAlice(event: ChatEvent) -> None:
        if isinstance(event, Message):
            room.leave(alice)

    carol = Reacting(dropAlice)
    room.join(carol, "carol")
    room.say(alice, [b"last words"])
    clock.advance(0)
    assert alice not in room
    assert describe(carol.received) == [("message", "alice", (b"last words",))]
    assert Said("alice", (b"last words",)) in bus.events()
    assert Presence("l", "alice", False) in bus.events()


# The outbox while the bus is away


def test_the_outbox_keeps_the_newest_lines_while_the_bus_is_away() -> None:
    """While the bus is away, beyond outboxLimit bytes the oldest batches are
    dropped: each of their senders still here is told once, a warning is
    logged; what is left is published in order once the bus is back."""
    room, bus, clock = shared(connected=False, outboxLimit=4 * BATCH_BYTES)
    alice, bob, carol = (admitted(room, name) for name in ("alice", "bob", "carol"))
    room.say(bob, [b"early"])
    room.say(carol, [b"bye"])
    room.leave(carol)
    with capturedLogs() as logs:
        for index in range(24):
            room.say(alice, [line(index, BATCH_BYTES // 4)])
            clock.advance(0)
    assert room.outboxBytes <= room.outboxLimit
    assert alice.notices() == [DROPPED]
    assert bob.notices() == [DROPPED]
    assert carol.notices() == []
    warnings = [e for e in logs.events if e.get("log_level") == LogLevel.warn]
    assert warnings
    assert all("dropped the oldest" in formatEvent(e) for e in warnings)
    droppedLines = sum(event["count"] for event in warnings)
    assert bus.published == []

    bus.rejoin()
    clock.advance(0)
    seqs = [batch.seq for batch in bus.published]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    assert seqs[0] > 1
    said = [e.lines[0] for e in bus.events() if isinstance(e, Said)]
    assert len(said) + droppedLines == 24 + 2
    assert said == [line(index, BATCH_BYTES // 4) for index in range(24)][-len(said) :]
    assert bus.events()[-1] == Here(("alice", "bob"))


def test_the_outbox_bound_holds_below_the_size_of_a_batch() -> None:
    """--bus-backlog takes any value from 1024 bytes: below the size of a
    batch (64 KiB) too, the outbox keeps at most that many bytes, and the
    sender of lines dropped is told."""
    room, bus, clock = shared(connected=False, outboxLimit=4096)
    alice, _ = admitted(room, "alice"), admitted(room, "bob")
    for index in range(100):
        room.say(alice, [line(index, 100)])
        clock.advance(0)
    assert room.outboxBytes <= 4096
    assert alice.notices() == [DROPPED]


# Contact lost and back


def test_contact_lost_and_back_is_told_once_each() -> None:
    """Losing the bus is told to the members here once, however often the
    bus says so; coming back is told once, and only after a loss."""
    room, bus, _ = shared()
    alice = admitted(room, "alice")
    alice.take()
    bus.rejoin()
    assert alice.take() == []
    bus.lose()
    bus.lose()
    assert alice.take() == [("notice", LOST)]
    assert not room.contact
    bus.rejoin()
    assert room.contact
    assert alice.take() == [("notice", BACK)]
    bus.rejoin()
    assert alice.take() == []


def test_lines_lost_by_the_bus_are_told_once() -> None:
    """If the bus lost some of what was said meanwhile, the members here are
    told so, once."""
    room, bus, _ = shared()
    alice = admitted(room, "alice")
    alice.take()
    bus.lose()
    bus.rejoin(lostData=True)
    assert alice.take() == [("notice", LOST), ("notice", BACK), ("notice", MISSING)]
    bus.rejoin()
    assert alice.take() == []


# Admission and names


def test_admission_asks_the_bus_and_tries_the_next_name() -> None:
    """While the bus is there it admits: a name taken there is followed by
    NAME#2, NAME#3..., until one is free."""
    room, bus, clock = shared()
    bus.answers = {"bob": "taken", "bob#2": "taken"}
    bob = Member()
    assert result(room.join(bob, "bob")) == "bob#3"
    assert bus.admits == ["bob", "bob#2", "bob#3"]
    assert room.nameOf(bob) == "bob#3"


def test_admission_skips_names_known_on_other_nodes() -> None:
    """A name this node knows is held elsewhere is not even asked for."""
    room, bus, _ = shared()
    bus.rejoin(others=[("there", "Bob")])
    assert result(room.join(Member(), "BOB")) == "BOB#2"
    assert bus.admits == ["BOB#2"]


def test_admission_waits_for_the_bus() -> None:
    """The member is admitted when the bus answers, not before."""
    room, bus, _ = shared()
    bus.holding = True
    joining = room.join(Member(), "bob")
    assert not joining.called
    assert room.population() == 0
    bus.pending.pop().answer()
    assert result(joining) == "bob"
    assert room.names() == ["bob"]


def test_a_room_full_on_the_bus_refuses() -> None:
    """The bus says the room is full: the member is refused with RoomFull,
    and nothing is published."""
    room, bus, clock = shared(capacity=7)
    bus.answers = {"bob": "full"}
    refused = result(room.join(Member(), "bob"))
    assert isinstance(refused, Failure)
    assert isinstance(refused.value, RoomFull)
    assert refused.value.capacity == 7
    assert room.population() == 0
    clock.advance(0)
    assert bus.published == []


def test_admission_falls_back_to_this_node_when_the_bus_fails() -> None:
    """If the bus cannot answer, the node admits alone, from what it knows."""
    room, bus, clock = shared()
    bus.rejoin(others=[("there", "bob")])
    bus.failing = True
    alice = Member()
    assert result(room.join(alice, "bob")) == "bob#2"
    assert bus.admits == ["bob#2"]
    assert room.names() == ["bob", "bob#2"]


def test_admission_while_the_bus_is_away_counts_the_other_nodes() -> None:
    """Without the bus, the node counts the members it knows elsewhere, for
    names and for capacity, and asks the bus nothing."""
    room, bus, _ = shared(capacity=3)
    bus.rejoin(others=[("there", "bob"), ("there", "carol")])
    bus.lose()
    assert result(room.join(Member(), "Bob")) == "Bob#2"
    refused = result(room.join(Member(), "dave"))
    assert isinstance(refused, Failure)
    assert refused.check(RoomFull)
    assert bus.admits == []
    assert room.isFull()
    assert room.population() == 3
    assert len(room) == 1


def test_presence_goes_to_the_bus_with_its_quiet_flag() -> None:
    """Joins, renames and departures are published, quiet ones marked so;
    a quiet join is not announced here either."""
    room, bus, clock = shared()
    alice = admitted(room, "Alice")
    shy = admitted(room, "Shy", quietly=True)
    assert alice.take() == []
    assert result(room.rename(shy, "Shyer")) == "Shy"
    room.leave(shy)
    room.leave(alice)
    clock.advance(0)
    assert bus.events() == [
        Presence("j", "Alice", False),
        Presence("j", "Shy", True),
        Rename("Shy", "Shyer", True),
        Presence("l", "Shyer", True),
        Presence("l", "Alice", False),
    ]
    assert bus.published[0].leftKeys == ["shyer", "alice"]


def test_a_rename_asks_the_bus() -> None:
    """While the bus is there it renames: a name taken there is refused and
    nothing changes; otherwise the member is renamed, the others here told,
    the rename published."""
    room, bus, clock = shared()
    alice, bob = admitted(room, "alice"), admitted(room, "bob")
    clock.advance(0)
    bus.published.clear()
    alice.take()
    bus.answers = {"carol": "taken"}
    refused = result(room.rename(bob, "carol"))
    assert isinstance(refused, Failure)
    assert refused.check(NameRejected)
    assert str(refused.value) == "the name carol is taken"
    assert room.nameOf(bob) == "bob"
    assert result(room.rename(bob, "Robert")) == "bob"
    assert bus.renames == [("bob", "carol"), ("bob", "Robert")]
    assert alice.take() == [("renamed", "bob", "Robert")]
    clock.advance(0)
    assert bus.events() == [Rename("bob", "Robert", False)]


def test_a_rename_without_the_bus_is_done_here() -> None:
    """A rename the bus cannot answer, or asked while it is away, is done by
    this node alone; a name it knows elsewhere is refused without asking."""
    room, bus, clock = shared()
    bus.rejoin(others=[("there", "carol")])
    bob = admitted(room, "bob")
    bus.failing = True
    assert result(room.rename(bob, "rob")) == "bob"
    bus.failing = False
    bus.lose()
    assert result(room.rename(bob, "robbie")) == "rob"
    refused = result(room.rename(bob, "CAROL"))
    assert isinstance(refused, Failure)
    assert refused.check(NameRejected)
    assert bus.renames == [("bob", "rob")]
    assert room.names() == ["carol", "robbie"]


# Back in the room


def test_names_taken_elsewhere_meanwhile_are_changed_and_told() -> None:
    """A name the bus registered with a suffix (another node took it while
    this one was away) is the member's from now on: it is told, the others
    here are told, and a quiet rename is published."""
    room, bus, clock = shared(connected=False)
    bob, carol = admitted(room, "bob"), admitted(room, "carol")
    bob.take()
    carol.take()
    bus.rejoin(names=["bob#2", "carol"], others=[("there", "bob")])
    assert bob.take() == [
        ("notice", "your name bob was taken on another server meanwhile"),
        ("nameChanged", "bob#2"),
    ]
    assert carol.take() == [("renamed", "bob", "bob#2")]
    assert room.nameOf(bob) == "bob#2"
    assert room.names() == ["bob", "bob#2", "carol"]
    assert bus.events()[-2:] == [
        Rename("bob", "bob#2", True),
        Here(("bob#2", "carol")),
    ]


@pytest.mark.parametrize("reaped", [True, False])
def test_a_node_back_in_the_room_says_who_is_here(reaped: bool) -> None:
    """Back in contact, a node the others counted as gone announces its
    members again (quiet ones quietly); otherwise it says who is here."""
    room, bus, clock = shared()
    admitted(room, "alice")
    admitted(room, "shy", quietly=True)
    clock.advance(0)
    bus.published.clear()
    bus.lose()
    bus.rejoin(reaped=reaped)
    assert bus.events() == (
        [Presence("j", "alice", False), Presence("j", "shy", True)]
        if reaped
        else [Here(("alice", "shy"))]
    )


def test_the_other_nodes_members_come_from_the_snapshot() -> None:
    """Who is on the other nodes is what the bus says on each (re)join;
    names, population and hasName span the whole room."""
    room, bus, _ = shared()
    admitted(room, "alice")
    bus.rejoin(others=[("b", "Bob"), ("c", "carol"), ("b", "dave")])
    assert room.names() == ["alice", "Bob", "carol", "dave"]
    assert room.population() == 4
    assert len(room) == 1
    assert room.hasName("BOB")
    assert room.localNames() == ["alice"]
    bus.lose()
    bus.rejoin(others=[("c", "carol")])
    assert room.names() == ["alice", "carol"]
    assert room.population() == 2
    assert not room.hasName("bob")


def test_members_admitted_while_rejoining_are_registered_late() -> None:
    """A member admitted after the node listed its names for the bus is
    registered afterwards; a name the bus changes is the member's."""
    room, bus, clock = shared(connected=False)
    alice = admitted(room, "alice")
    bob = admitted(room, "bob")
    bus.registerAs = {"bob": "bob#2"}
    bus.rejoin(asked=["alice"], names=["alice"])
    assert bus.registered == [["bob"]]
    assert room.nameOf(bob) == "bob#2"
    assert ("nameChanged", "bob#2") in bob.take()
    assert ("renamed", "bob", "bob#2") in alice.take()


# What the other nodes say


def test_lines_from_other_nodes_reach_every_member_here_once() -> None:
    """A line from another node goes to every member here, as one event, and
    goes nowhere else."""
    room, bus, clock = shared()
    alice, bob = admitted(room, "alice"), admitted(room, "bob")
    clock.advance(0)
    bus.published.clear()
    alice.take()
    room.busEntries([Entry("1-0", "there", 1, [Said("carol", (b"hi", b"you"))])])
    assert alice.take() == [("message", "carol", (b"hi", b"you"))]
    assert describe(bob.received) == [("message", "carol", (b"hi", b"you"))]
    clock.advance(0)
    assert bus.published == []


def test_presence_from_other_nodes_counts_only_when_fresh() -> None:
    """Joins, departures and renames from other nodes are announced here;
    they change who is here only if the snapshot the node took does not
    already reflect them (the entry is newer than its position)."""
    room, bus, _ = shared()
    alice = admitted(room, "alice")
    bus.rejoin(others=[("b", "bob"), ("b", "carol")], position="10-0")
    alice.take()
    stale = [
        Presence("j", "dave", False),
        Presence("l", "bob", False),
        Rename("carol", "caz", False),
        Here(("erin",)),
    ]
    room.busEntries([Entry("9-5", "b", 1, stale)])
    assert room.names() == ["alice", "bob", "carol"]
    assert alice.take() == [
        ("joined", "dave"),
        ("left", "bob"),
        ("renamed", "carol", "caz"),
    ]
    room.busEntries([Entry("10-1", "b", 2, stale)])
    assert room.names() == ["alice", "caz", "dave", "erin"]
    assert alice.take() == [
        ("joined", "dave"),
        ("left", "bob"),
        ("renamed", "carol", "caz"),
    ]
    gone = [Presence("x", "dave", False), Presence("x", "caz", False)]
    room.busEntries([Entry("11-0", "gone:b", 0, gone)])
    assert room.names() == ["alice", "erin"]
    assert alice.take() == [("left", "dave"), ("left", "caz")]


def test_quiet_presence_from_other_nodes_is_not_announced() -> None:
    """Quiet joins, departures and renames change who is here in silence."""
    room, bus, _ = shared()
    alice = admitted(room, "alice")
    alice.take()
    quiet = [
        Presence("j", "bob", True),
        Presence("j", "carol", True),
        Rename("bob", "rob", True),
        Presence("l", "carol", True),
    ]
    room.busEntries([Entry("1-0", "b", 1, quiet)])
    assert alice.take() == []
    assert room.names() == ["alice", "rob"]


def test_the_presence_limit_counts_the_whole_room() -> None:
    """Joins and departures, local or remote, are announced only while the
    whole room, on every node, is within presenceLimit."""
    room, bus, _ = shared(presenceLimit=3)
    alice = admitted(room, "alice")
    bus.rejoin(others=[("b", "bob")])
    room.busEntries([Entry("1-0", "b", 1, [Presence("j", "carol", False)])])
    assert alice.take() == [("joined", "carol")]
    room.busEntries([Entry("2-0", "b", 2, [Presence("j", "dave", False)])])
    dave = admitted(room, "erin")
    room.busEntries([Entry("3-0", "b", 3, [Presence("l", "carol", False)])])
    assert alice.take() == []
    room.leave(dave)
    assert alice.take() == [("left", "erin")]
    room.busEntries([Entry("4-0", "b", 4, [Presence("l", "dave", False)])])
    assert alice.take() == [("left", "dave")]


def test_news_of_a_name_held_here_is_ignored() -> None:
    """Presence from another node about a name this node holds is old news
    of someone else's: it changes nothing and is not announced."""
    room, bus, _ = shared()
    alice, bob = admitted(room, "alice"), admitted(room, "bob")
    alice.take()
    news = [
        Presence("j", "BOB", False),
        Rename("bob", "rob", False),
        Presence("l", "bob", False),
        Presence("x", "Alice", False),
    ]
    room.busEntries([Entry("1-0", "there", 1, news)])
    assert alice.take() == []
    assert bob.take() == []
    assert room.names() == ["alice", "bob"]


# History


def test_history_spans_the_nodes() -> None:
    """The last lines kept for newcomers are those of every node, in the
    order this node saw them, primed from the stream on the first join."""
    room, bus, _ = shared(history=3)
    recent = [
        Entry("1-0", "b", 1, [Said("bob", (b"one",)), Presence("j", "x", False)]),
        Entry("2-0", "c", 1, [Said("carol", (b"two",))]),
    ]
    bus.rejoin(recent=recent, position="2-0")
    assert room.names() == []
    alice = admitted(room, "alice")
    assert alice.take() == [("history", (("bob", b"one"), ("carol", b"two")))]
    room.busEntries([Entry("3-0", "b", 2, [Said("bob", (b"three",))])])
    room.say(alice, [b"four"])
    newcomer = admitted(room, "newcomer")
    assert newcomer.take() == [
        ("history", (("carol", b"two"), ("bob", b"three"), ("alice", b"four")))
    ]


# Nodes wired together through an in-memory Redis


def test_two_nodes_share_one_room() -> None:
    """Two nodes on one bus: names are unique across them, each node's lines
    and presence reach the other's members, and both see the same room."""
    redis, clock = FakeRedis(), Clock()
    roomA, busA = node(redis, clock, "a")
    roomB, busB = node(redis, clock, "b")
    redis.join(busA)
    redis.join(busB)
    alice = admitted(roomA, "alice")
    other = Member()
    assert result(roomB.join(other, "ALICE")) == "ALICE#2"
    settle(clock, redis)
    assert roomA.names() == roomB.names() == ["alice", "ALICE#2"]
    assert alice.take() == [("joined", "ALICE#2")]
    assert other.take() == [("joined", "alice")]
    roomA.say(alice, [b"hi"])
    settle(clock, redis)
    assert other.take() == [("message", "alice", (b"hi",))]
    assert alice.take() == []
    result(roomB.rename(other, "bob"))
    settle(clock, redis)
    assert alice.take() == [("renamed", "ALICE#2", "bob")]
    roomB.leave(other)
    settle(clock, redis)
    assert alice.take() == [("left", "bob")]
    assert roomA.names() == roomB.names() == ["alice"]
    assert redis.members == {"alice": ("a", "alice")}


def test_a_retried_batch_reaches_the_other_nodes_once() -> None:
    """A batch that reached the bus though its answer was lost is published
    again under its number once the bus is back, and dropped there: the
    other node's members get its line once."""
    redis, clock = FakeRedis(), Clock()
    roomA, busA = node(redis, clock, "a")
    roomB, busB = node(redis, clock, "b")
    redis.join(busA)
    redis.join(busB)
    alice, bob = admitted(roomA, "alice"), admitted(roomB, "bob")
    settle(clock, redis)
    bob.take()
    busA.holding = True
    roomA.say(alice, [b"maybe twice"])
    clock.advance(0)
    [publishing] = busA.pending
    busA.lose()
    publishing.fail()
    redis.join(busA)
    while busA.pending:
        busA.pending.pop(0).answer()
    settle(clock, redis)
    assert [batch.seq for batch in busA.published][-3:] == [2, 2, 3]
    assert bob.take() == [("message", "alice", (b"maybe twice",))]


def test_a_name_settled_on_rejoining_costs_no_other_node_its_member() -> None:
    """A node that admitted a name alone while out of contact, and finds it
    taken on the bus when it is back, renames its member (NAME#2); a third
    node still knows the member that holds NAME on the bus."""
    redis, clock = FakeRedis(), Clock()
    roomA, busA = node(redis, clock, "a")
    roomB, busB = node(redis, clock, "b")
    roomC, busC = node(redis, clock, "c")
    for bus in (busA, busB, busC):
        redis.join(bus)
    admitted(roomC, "carol")
    settle(clock, redis)
    busA.lose()
    admitted(roomB, "bob")
    bobA = admitted(roomA, "bob")
    settle(clock, redis)
    assert roomC.names() == ["bob", "carol"]
    redis.join(busA)
    settle(clock, redis)
    assert roomA.nameOf(bobA) == "bob#2"
    assert redis.members["bob"] == ("b", "bob")
    assert roomA.names() == ["bob", "bob#2", "carol"]
    assert roomB.names() == ["bob", "bob#2", "carol"]
    assert roomC.names() == ["bob", "bob#2", "carol"]


def test_a_node_back_in_contact_leaves_no_ghost_of_a_departure_it_dropped() -> None:
    """When a node's full outbox dropped a departure, the others still learn
    who is there once it is back: nobody stays listed who left."""
    redis, clock = FakeRedis(), Clock()
    roomA, busA = node(redis, clock, "a")
    roomB, busB = node(redis, clock, "b", outboxLimit=2 * BATCH_BYTES)
    redis.join(busA)
    redis.join(busB)
    admitted(roomA, "alice")
    x, y = admitted(roomB, "x"), admitted(roomB, "y")
    settle(clock, redis)
    assert roomA.names() == ["alice", "x", "y"]
    busB.lose()
    roomB.leave(x)
    for index in range(12):
        roomB.say(y, [line(index, BATCH_BYTES // 4)])
        clock.advance(0)
    assert y.notices() == [LOST, DROPPED]
    redis.join(busB)
    settle(clock, redis)
    assert "x" not in redis.members
    assert roomB.names() == ["alice", "y"]
    assert roomA.names() == ["alice", "y"]


# The codec


EVENTS: list[BusEvent] = [
    Said("alice", (b"hello", b"caf\xc3\xa9 \xe2\x9c\x93", b"007", b"")),
    Said("bob", ()),
    Presence("j", "alice", False),
    Presence("l", "Bob#2", True),
    Rename("alice", "al[ice]", True),
    Here(("alice", "bob")),
    Here(()),
]


@pytest.mark.parametrize("event", EVENTS, ids=repr)
def test_every_event_kind_round_trips(event: BusEvent) -> None:
    """What a node encodes, a node decodes the same."""
    assert decodeBatch(encodeBatch([encodeEvent(event)])) == [event]


def test_a_batch_round_trips_in_order() -> None:
    """A batch is its events, in order, as compact UTF-8 JSON."""
    payload = encodeBatch([encodeEvent(event) for event in EVENTS])
    assert decodeBatch(payload) == EVENTS
    assert b" " not in payload.replace(b"caf\xc3\xa9 ", b"")
    assert "café".encode() in payload


def test_departures_of_a_gone_node_decode() -> None:
    """Redis's scripts publish the members of a node counted gone as one
    C{x} event; it decodes as one departure each."""
    assert decodeBatch(b'[["x",["a","b"]]]') == [
        Presence("x", "a", False),
        Presence("x", "b", False),
    ]


def test_a_departure_of_a_gone_node_round_trips() -> None:
    """encodeEvent gives the stream's form of every BusEvent, Presence x
    included: what it writes, decodeBatch reads back."""
    event = Presence("x", "bob", False)
    assert decodeBatch(encodeBatch([encodeEvent(event)])) == [event]


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"not json",
        b"\xff\xfe",
        b"{}",
        b'"m"',
        b"[1]",
        b"[[]]",
        b'[["m","a"]]',
        b'[["m","a","x"]]',
        b'[["m",1,["x"]]]',
        b'[["m","a",[1]]]',
        b'[["j","a"]]',
        b'[["j",null,true]]',
        b'[["r","a","b"]]',
        b'[["r","a",["b"],true]]',
        b'[["h","a"]]',
        b'[["h",[1]]]',
        b'[["x","a"]]',
        b'[["q","a",true]]',
        b'[[["m"],"a",["x"]]]',
    ],
)
def test_decoding_rejects_what_no_node_wrote(payload: bytes) -> None:
    """Anything but a list of known events is a BadEntry."""
    with pytest.raises(BadEntry):
        decodeBatch(payload)


def test_a_deeply_nested_payload_is_a_bad_entry() -> None:
    """However deep the nesting, garbage is a BadEntry (the bus's reader
    skips those), never another error."""
    with pytest.raises(BadEntry):
        decodeBatch(b"[" * 100_000)


@pytest.mark.parametrize(
    "text",
    [
        "\x1b[31mred",
        "bell\x07",
        "a\u202eb",
        "\x85next",
        "zero\u200bwidth",
        "cr\ronly",
        "del\x7f",
        "line\nfeed",
        "crlf\r\nend",
    ],
)
def test_decoding_makes_names_and_lines_safe_again(text: str) -> None:
    """Names and lines from the bus are made safe to show again, as
    safeText makes a client's line: control and format characters, line
    breaks included, become visible escapes."""
    payload = json.dumps([["m", text, [text]], ["j", text, False]]).encode()
    said, joined = decodeBatch(payload)
    expected = safeText(text.encode())
    assert said == Said(expected.decode(), (expected,))
    assert joined == Presence("j", expected.decode(), False)


@pytest.mark.parametrize("text", ["plain", "tab\there", "café", "日本語", "a[b]{c}"])
def test_decoding_leaves_safe_text_alone(text: str) -> None:
    """Printable text, and TAB, pass as they are."""
    payload = json.dumps([["m", text, [text]]], ensure_ascii=False).encode()
    assert decodeBatch(payload) == [Said(text, (text.encode(),))]


def test_decoding_never_yields_a_name_that_cannot_be_sent() -> None:
    """A lone surrogate (valid JSON, not text) becomes in a name what it
    becomes in a line: something UTF-8 can carry to a client."""
    said, joined = decodeBatch(b'[["m","a\\ud800b",["a\\ud800b"]],["j","\\udfff",1]]')
    assert isinstance(said, Said)
    assert isinstance(joined, Presence)
    assert said.lines == (b"a?b",)
    assert said.sender.encode("utf-8") == said.lines[0]
    joined.name.encode("utf-8")


def test_stream_ids_compare_in_order() -> None:
    """Stream ids compare by time, then by sequence, as numbers."""
    assert streamId("0-0") == (0, 0)
    assert streamId("1700000000000") == (1700000000000, 0)
    assert streamId("9-10") > streamId("9-9") > streamId("8-99")


# Addresses


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("redis://localhost", BusAddress("redis", host="localhost")),
        (" REDIS://Bus.Example:6380/2 ", BusAddress("redis", "bus.example", 6380, db=2)),
        (
            "redis://:p%40ss%3Aw%2Fd@h",
            BusAddress("redis", "h", password="p@ss:w/d"),
        ),
        (
            "redis://us%40r:pw@h:1/",
            BusAddress("redis", "h", 1, username="us@r", password="pw"),
        ),
        ("redis://[::1]:7000", BusAddress("redis", "::1", 7000)),
        ("rediss://h", BusAddress("rediss", "h")),
        (
            "rediss://:pw@h/3?ssl_ca_certs=/etc/ca.pem",
            BusAddress("rediss", "h", db=3, password="pw", caFile="/etc/ca.pem"),
        ),
        ("unix:///run/redis.sock", BusAddress("unix", path="/run/redis.sock")),
        ("unix:///run/redis.sock?db=5", BusAddress("unix", path="/run/redis.sock", db=5)),
        ("unix:///tmp/a%20b.sock", BusAddress("unix", path="/tmp/a b.sock")),
    ],
)
def test_bus_addresses(text: str, address: BusAddress) -> None:
    """--bus takes redis://, rediss:// (with its CA file) and unix://
    addresses; a password may hold %-escapes."""
    assert parseBusAddress(text) == address
    assert parseBusAddress(text).password == address.password


@pytest.mark.parametrize(
    "text",
    [
        "",
        "localhost:6379",
        "http://h",
        "redis://",
        "redis://:pw@",
        "redis://h:port",
        "redis://h:70000",
        "redis://h/x",
        "redis://h/1/2",
        "redis://h/65536",
        "redis://h/-1",
        "redis://h?ssl_ca_certs=/etc/ca.pem",
        "unix://",
        "unix://host/run/redis.sock",
        "unix:///run/redis.sock?db=x",
    ],
)
def test_bad_bus_addresses(text: str) -> None:
    """Bad schemes, hosts, ports and databases are refused, with a message."""
    with pytest.raises(ValueError, match=r"bus address|no host|database|ssl_ca"):
        parseBusAddress(text)


@pytest.mark.parametrize("db", ["\u00b2", "\u0661"])
def test_the_database_is_ascii_digits(db: str) -> None:
    """As for every number sockserve reads, the database is ASCII digits:
    other Unicode digits are refused with the usual message."""
    with pytest.raises(ValueError, match="the database must be a number"):
        parseBusAddress(f"redis://h/{db}")


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("redis://:s3cret@h", "redis://h:6379"),
        ("redis://user:s3cret@h:7000/4", "redis://h:7000/4"),
        ("rediss://:s3cret@[::1]", "rediss://[::1]:6379"),
        ("unix://:s3cret@/run/redis.sock", None),
        ("unix:///run/redis.sock", "unix:///run/redis.sock"),
    ],
)
def test_describe_never_shows_the_password(text: str, shown: str | None) -> None:
    """Logs and messages show where the bus is, never its password (nor
    does repr)."""
    if shown is None:
        with pytest.raises(ValueError, match="not a bus address"):
            parseBusAddress(text)
        return
    address = parseBusAddress(text)
    assert address.describe() == shown
    assert "s3cret" not in repr(address)
    withPassword = address.withPassword("s3cret")
    assert withPassword.describe() == shown
    assert "s3cret" not in repr(withPassword)


@pytest.mark.parametrize(
    "text",
    [
        "redis://:s3cret@h:99999",
        "redis://:s3cret@h/notadb",
        "http://:s3cret@h",
        "redis://:s3cret@h?ssl_ca_certs=ca.pem",
    ],
)
def test_a_bad_address_error_never_shows_the_password(text: str) -> None:
    """The message refusing an address names what is wrong, not the
    password it holds (it goes to the terminal and the journal)."""
    with pytest.raises(ValueError) as refused:
        parseBusAddress(text)
    assert "s3cret" not in str(refused.value)


def test_with_password() -> None:
    """A password from a file or the environment is taken only if the
    address names none."""
    bare = parseBusAddress("redis://h")
    assert bare.withPassword(None) is bare
    assert bare.withPassword("pw").password == "pw"
    assert bare.withPassword("pw").describe() == bare.describe()
    named = parseBusAddress("redis://:mine@h")
    assert named.withPassword("other").password == "mine"
    assert parseBusAddress("redis://h").port == DEFAULT_PORT


@pytest.mark.parametrize("name", ["chat", "a", "x" * 64, "Room_1.eu-west"])
def test_valid_room_names(name: str) -> None:
    """Room names are 1 to 64 letters, digits and _ . -."""
    assert checkRoomName(name) == name


@pytest.mark.parametrize(
    "name", ["", "x" * 65, "a b", "a:b", "a{b}", "ünï", "room\n", "a*", "a/b"]
)
def test_invalid_room_names(name: str) -> None:
    """Anything else is refused."""
    with pytest.raises(ValueError, match="a room name is"):
        checkRoomName(name)

"""
One room across nodes, on fakes: a L{Clock} for the reactor, an in-memory
bus (and a little in-memory Redis that several buses share, so that rooms on
several nodes talk), plain members. Then the codec of the room's stream and
C{--bus} addresses.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.logger import LogLevel
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
    BEHIND_ON_BUS,
    BUS_PATIENCE,
    DROPPED,
    DROPPED_WHILE_THERE,
    LOST,
    MISSING,
    PUBLISH_RETRY,
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
from sockserve.chat.names import nameKey
from sockserve.chat.pacing import RECHECK, OutputPressure
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
    Redis's stream. Redis does what it is asked at once, even while the
    answer is held: a held answer that the test fails is one lost on its
    way back.
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
        key = nameKey(name)
        if key in self.members:
            return "taken"
        if len(self.members) >= capacity:
            return "full"
        self.members[key] = (node, name)
        return "ok"

    def rename(self, node: str, oldName: str, newName: str) -> str:
        oldKey, newKey = nameKey(oldName), nameKey(newName)
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
                nameKey(final) in wanted
                or self.members.get(nameKey(final), (node, ""))[0] != node
            ):
                final, suffix = f"{name}#{suffix}", suffix + 1
            wanted[nameKey(final)] = final
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


# The outbox: local delivery first, one publish per reactor pass


def test_local_delivery_first_then_one_publish_per_reactor_pass() -> None:
    """A line reaches this node's other members at once, before anything is
    published, whether the bus is there, slow, or away. Everything that
    happens in one reactor pass is then one batch, published once, in
    order, quiet presence marked so (and not announced here either); a
    departure carries the lower-case key of the name it frees."""
    for connected, holding in [(True, False), (True, True), (False, False)]:
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

    room, bus, clock = shared()
    verifyObject(IChatRoom, room)
    alice = admitted(room, "Alice")
    shy = admitted(room, "Shy", quietly=True)
    assert alice.take() == []
    room.say(alice, [b"one", b"two"])
    assert result(room.rename(shy, "Shyer")) == "Shy"
    room.leave(shy)
    room.leave(alice)
    assert bus.published == []
    clock.advance(0)
    assert bus.published == [
        Published(
            1,
            [
                Presence("j", "Alice", False),
                Presence("j", "Shy", True),
                Said("Alice", (b"one", b"two")),
                Rename("Shy", "Shyer", False),
                Presence("l", "Shyer", True),
                Presence("l", "Alice", False),
            ],
            ["shyer", "allce"],
        )
    ]
    assert bus.renames == [("Shy", "Shyer")]
    clock.advance(0)
    assert len(bus.published) == 1


def test_a_batch_on_its_way_is_never_merged_and_goes_again_under_its_number() -> None:
    """Each reactor pass publishes its events in one batch, at once, even
    while earlier batches are on their way (pipelined, at most IN_FLIGHT);
    a batch handed to the bus never takes more events. Batches whose
    publication failed are published again, in order and under their
    numbers, once the bus is back; what was said meanwhile follows in a
    batch of its own. whenFlushed fires once all of it is published (at
    once if nothing waits)."""
    room, bus, clock = shared()
    alice, bob = admitted(room, "alice"), admitted(room, "bob")
    clock.advance(0)
    assert result(room.whenFlushed()) is None
    bus.holding = True
    room.say(alice, [b"a"])
    room.say(bob, [b"b"])
    clock.advance(0)
    room.say(alice, [b"c"])
    clock.advance(0)
    assert [batch.seq for batch in bus.published] == [1, 2, 3]
    assert bus.published[1].events == [Said("alice", (b"a",)), Said("bob", (b"b",))]
    assert bus.published[2].events == [Said("alice", (b"c",))]
    flushed = room.whenFlushed()
    bus.lose()
    while bus.pending:
        bus.pending.pop(0).fail()
    room.say(bob, [b"d"])
    clock.advance(0)
    assert [batch.seq for batch in bus.published] == [1, 2, 3]
    bus.rejoin()
    assert [batch.seq for batch in bus.published] == [1, 2, 3, 2, 3, 4]
    assert bus.published[3:5] == bus.published[1:3]
    assert bus.published[-1] == Published(
        4, [Said("bob", (b"d",)), Here(("alice", "bob"))], []
    )
    assert not flushed.called
    while bus.pending:
        bus.pending.pop(0).answer()
    assert result(flushed) is None
    clock.advance(0)
    assert [batch.seq for batch in bus.published] == [1, 2, 3, 2, 3, 4]


def test_at_most_so_many_batches_are_on_their_way() -> None:
    """Pipelining is bounded: past IN_FLIGHT batches awaiting an answer,
    the next waits for one to be answered."""
    from sockserve.bus.room import IN_FLIGHT

    room, bus, clock = shared()
    alice = admitted(room, "alice")
    admitted(room, "bob")
    clock.advance(0)
    bus.holding = True
    for index in range(IN_FLIGHT + 2):
        room.say(alice, [b"%d" % index])
        clock.advance(0)
    assert len(bus.pending) == IN_FLIGHT
    bus.pending.pop(0).answer()
    assert len(bus.pending) == IN_FLIGHT
    while bus.pending:
        bus.pending.pop(0).answer()
    said = [e.lines[0] for e in bus.events() if isinstance(e, Said)]
    assert said == [b"%d" % index for index in range(IN_FLIGHT + 2)]


def test_a_sender_dropped_while_its_line_is_delivered_still_reaches_the_bus() -> None:
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
    assert describe(carol.received) == [
        ("message", "alice", (b"last words",)),
        ("left", "alice"),
    ]
    assert Said("alice", (b"last words",)) in bus.events()
    assert Presence("l", "alice", False) in bus.events()


# The outbox while the bus is away


def test_the_outbox_keeps_the_newest_lines_while_the_bus_is_away() -> None:
    """While the bus is away, beyond outboxLimit bytes the oldest batches are
    dropped: each of their senders still here is told once, a warning is
    logged; what is left is published in order once the bus is back."""
    room, bus, clock = shared(connected=False, outboxLimit=4 * BATCH_BYTES)
    members = [admitted(room, f"m{index}") for index in range(8)]
    size = BATCH_BYTES // 4
    sent = []
    with capturedLogs() as logs:
        for round in range(3):
            for index, member in enumerate(members):
                text = line(round * 8 + index, size)
                room.say(member, [text])
                sent.append(text)
                clock.advance(0)
    assert room.outboxBytes <= room.outboxLimit
    told = [member for member in members if member.notices() == [DROPPED]]
    assert told
    assert all(member.notices() == [] for member in members if member not in told)
    warnings = [e for e in logs.events if e.get("log_level") == LogLevel.warn]
    assert warnings
    droppedLines = room._droppedLines
    assert bus.published == []

    bus.rejoin()
    clock.advance(0)
    said = [e.lines[0] for e in bus.events() if isinstance(e, Said)]
    assert len(said) + droppedLines == len(sent)
    assert said == sent[-len(said) :]


def test_a_flooder_pays_for_its_flood_in_the_backlog() -> None:
    """One sender fills at most a quarter of the backlog: past it, its own
    oldest lines are dropped (it is told once), and the others' lines wait
    for the bus untouched."""
    room, bus, clock = shared(connected=False, outboxLimit=4 * BATCH_BYTES)
    alice, bob, carol = (admitted(room, name) for name in ("alice", "bob", "carol"))
    room.say(bob, [b"early"])
    room.say(carol, [b"bye"])
    room.leave(carol)
    flood = [line(index, BATCH_BYTES // 4) for index in range(24)]
    with capturedLogs() as logs:
        for text in flood:
            room.say(alice, [text])
            clock.advance(0)
    assert room.outboxBytes <= room.outboxLimit
    assert alice.notices() == [DROPPED]
    assert bob.notices() == []
    warnings = [e for e in logs.events if e.get("log_level") == LogLevel.warn]
    assert warnings
    droppedLines = room._droppedLines
    assert droppedLines > 0

    bus.rejoin()
    clock.advance(0)
    said = [e.lines[0] for e in bus.events() if isinstance(e, Said)]
    assert said[:2] == [b"early", b"bye"]
    assert said[2:] == flood[-(len(said) - 2) :]
    assert len(said) - 2 + droppedLines == len(flood)
    assert bus.events()[-1] == Here(("alice", "bob"))


def test_the_outbox_bound_holds_below_the_size_of_a_batch() -> None:
    """--bus-backlog takes any value from 1024 bytes: below the size of a
    batch (64 KiB) too, the outbox keeps at most that many bytes, and the
    sender of lines dropped is told."""
    room, _, clock = shared(connected=False, outboxLimit=4096)
    alice, _ = admitted(room, "alice"), admitted(room, "bob")
    for index in range(100):
        room.say(alice, [line(index, 100)])
        clock.advance(0)
    assert room.outboxBytes <= 4096
    assert alice.notices() == [DROPPED]


# Contact lost and back


def test_contact_lost_and_back_is_told_once_each() -> None:
    """Losing the bus is told to the members here once, however often the
    bus says so; coming back is told once, and only after a loss; lines the
    bus lost meanwhile are told once."""
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
    bus.rejoin(lostData=True)
    assert alice.take() == [("notice", MISSING)]
    bus.lose()
    bus.rejoin(lostData=True)
    assert alice.take() == [("notice", LOST), ("notice", BACK), ("notice", MISSING)]


# Admission and names


def test_admission_asks_the_bus() -> None:
    """While the bus is there it admits, when it answers: a name taken there
    is followed by NAME#2, NAME#3..., until one is free; a name this node
    knows is held elsewhere is not even asked for; a room full there
    refuses the member (RoomFull), and nothing is published."""
    room, bus, clock = shared(capacity=7)
    bus.answers = {"bob": "taken", "bob#2": "taken"}
    bob = Member()
    assert result(room.join(bob, "bob")) == "bob#3"
    assert bus.admits == ["bob", "bob#2", "bob#3"]
    assert room.nameOf(bob) == "bob#3"
    bus.rejoin(others=[("there", "Carol")])
    bus.holding = True
    joining = room.join(Member(), "CAROL")
    assert not joining.called
    assert room.population() == 2
    bus.pending.pop().answer()
    assert result(joining) == "CAROL#2"
    assert bus.admits[3:] == ["CAROL#2"]
    assert room.names() == ["bob#3", "Carol", "CAROL#2"]
    bus.holding = False
    clock.advance(0)
    assert bus.published[-1].events == [Presence("j", "CAROL#2", False)]
    bus.published.clear()
    bus.answers = {"dave": "full"}
    refused = result(room.join(Member(), "dave"))
    assert isinstance(refused, Failure)
    assert isinstance(refused.value, RoomFull)
    assert refused.value.capacity == 7
    assert room.population() == 3
    clock.advance(0)
    assert bus.published == []


def test_admission_without_the_bus_counts_the_other_nodes() -> None:
    """If the bus cannot answer, or is away, the node admits alone, from
    what it knows: the members elsewhere count for names and capacity."""
    room, bus, _ = shared(capacity=4)
    bus.rejoin(others=[("there", "bob"), ("there", "carol")])
    bus.failing = True
    assert result(room.join(Member(), "bob")) == "bob#2"
    assert bus.admits == ["bob#2"]
    bus.failing = False
    bus.lose()
    assert result(room.join(Member(), "Carol")) == "Carol#2"
    refused = result(room.join(Member(), "dave"))
    assert isinstance(refused, Failure)
    assert refused.check(RoomFull)
    assert bus.admits == ["bob#2"]
    assert room.isFull()
    assert room.population() == 4
    assert len(room) == 2
    assert room.names() == ["bob", "bob#2", "carol", "Carol#2"]


def test_renames() -> None:
    """While the bus is there it renames: a name taken there is refused and
    nothing changes; otherwise the member is renamed, the others here told,
    the rename published. A rename the bus cannot answer, or asked while it
    is away, is done here alone; a name known elsewhere is refused without
    asking."""
    room, bus, clock = shared()
    bus.rejoin(others=[("there", "dave")])
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
    assert alice.take() == [("renamed", "bob", "Robert")]
    clock.advance(0)
    assert bus.events() == [Rename("bob", "Robert", False)]
    bus.failing = True
    assert result(room.rename(bob, "rob")) == "Robert"
    bus.failing = False
    bus.lose()
    assert result(room.rename(bob, "robbie")) == "rob"
    refused = result(room.rename(bob, "DAVE"))
    assert isinstance(refused, Failure)
    assert refused.check(NameRejected)
    assert bus.renames == [("bob", "carol"), ("bob", "Robert"), ("Robert", "rob")]
    assert room.names() == ["alice", "dave", "robbie"]


# Back in the room


def test_names_the_bus_changed_are_taken_and_told() -> None:
    """A name the bus registered with a suffix (another node took it while
    this one was away) is the member's from now on: it is told, the others
    here are told, and a quiet rename is published. A member admitted
    after the node listed its names for the bus is registered afterwards,
    the same way."""
    room, bus, _ = shared(connected=False)
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
    assert bus.registered == []

    bus.lose()
    dave = admitted(room, "dave")
    bus.registerAs = {"dave": "dave#2"}
    bus.rejoin(asked=["bob#2", "carol"])
    # Every name the node holds: the bus releases those not listed.
    assert bus.registered == [["bob#2", "carol", "dave"]]
    assert room.nameOf(dave) == "dave#2"
    assert ("nameChanged", "dave#2") in dave.take()
    assert ("renamed", "dave", "dave#2") in carol.take()


def test_a_node_back_in_the_room_says_who_is_here_and_learns_who_else() -> None:
    """Back in contact, a node the others counted as gone announces its
    members again (quiet ones quietly); otherwise it says who is here. Who
    is on the other nodes is what the bus says; names, population and
    hasName span the whole room."""
    for reaped in (True, False):
        room, bus, clock = shared()
        admitted(room, "alice")
        admitted(room, "shy", quietly=True)
        clock.advance(0)
        bus.published.clear()
        bus.lose()
        bus.rejoin(reaped=reaped, others=[("b", "Bob"), ("c", "carol")])
        assert bus.events() == (
            [Presence("j", "alice", False), Presence("j", "shy", True)]
            if reaped
            else [Here(("alice", "shy"))]
        )
        assert room.names() == ["alice", "Bob", "carol", "shy"]
        assert room.population() == 4
        assert len(room) == 2
        assert room.hasName("BOB")
        assert room.localNames() == ["alice", "shy"]
        bus.lose()
        bus.rejoin(others=[("c", "carol")])
        assert room.names() == ["alice", "carol", "shy"]
        assert room.population() == 3
        assert not room.hasName("bob")


# What the other nodes say


def test_lines_from_other_nodes_reach_every_member_here_once() -> None:
    """A line from another node goes to every member here, as one event, and
    nowhere else; a batch number already seen from a node is a duplicate;
    the node's own entries, and the departures of its members that another
    node published while it counted this one gone, are skipped."""
    room, bus, clock = shared()
    alice, bob = admitted(room, "alice"), admitted(room, "bob")
    clock.advance(0)
    bus.published.clear()
    alice.take()
    room.busEntries(
        [
            Entry("1-0", "there", 1, [Said("carol", (b"hi", b"you"))]),
            Entry("2-0", "there", 1, [Said("carol", (b"hi", b"you"))]),
            Entry("3-0", "here", 7, [Said("alice", (b"echo",))]),
            Entry("4-0", "gone:here", 0, [Presence("x", "ghost", False)]),
            Entry("5-0", "there", 2, [Said("carol", (b"again",))]),
            Entry("6-0", "elsewhere", 1, [Said("dave", (b"hello",))]),
        ]
    )
    room.busEntries([Entry("7-0", "there", 2, [Said("carol", (b"again",))])])
    assert describe(alice.received) == [
        ("message", "carol", (b"hi", b"you")),
        ("message", "carol", (b"again",)),
        ("message", "dave", (b"hello",)),
    ]
    assert len(bob.received) == 3
    assert all(a is b for a, b in zip(alice.received, bob.received, strict=True))
    clock.advance(0)
    assert bus.published == []


def test_presence_from_other_nodes_counts_only_when_fresh() -> None:
    """Joins, departures and renames from other nodes are announced here,
    quiet ones excepted; they change who is here only if the snapshot the
    node took does not reflect them already (the entry is newer than its
    position, compared as stream ids). News of a name this node holds is
    old news of someone else's: it changes nothing, and is not announced."""
    assert streamId("9-10") > streamId("9-9") > streamId("8-99") > streamId("8")
    room, bus, _ = shared()
    alice = admitted(room, "alice")
    bus.rejoin(others=[("b", "bob"), ("b", "carol")], position="10-0")
    alice.take()
    news: list[BusEvent] = [
        Presence("j", "dave", False),
        Presence("l", "bob", False),
        Rename("carol", "caz", False),
        Here(("caz", "dave", "erin")),
    ]
    room.busEntries([Entry("9-5", "b", 1, news)])
    assert room.names() == ["alice", "bob", "carol"]
    assert alice.take() == [
        ("joined", "dave"),
        ("left", "bob"),
        ("renamed", "carol", "caz"),
    ]
    room.busEntries([Entry("10-1", "b", 2, news)])
    assert room.names() == ["alice", "caz", "dave", "erin"]
    assert alice.take() == [
        ("joined", "dave"),
        ("left", "bob"),
        ("renamed", "carol", "caz"),
    ]
    gone: list[BusEvent] = [Presence("x", "dave", False), Presence("x", "caz", False)]
    room.busEntries([Entry("11-0", "gone:b", 0, gone)])
    assert room.names() == ["alice", "erin"]
    assert alice.take() == [("left", "dave"), ("left", "caz")]
    quiet: list[BusEvent] = [
        Presence("j", "fay", True),
        Presence("j", "gus", True),
        Rename("fay", "fae", True),
        Presence("l", "gus", True),
    ]
    room.busEntries([Entry("12-0", "c", 1, quiet)])
    assert alice.take() == []
    assert room.names() == ["alice", "erin", "fae"]
    held: list[BusEvent] = [
        Presence("j", "ALICE", False),
        Rename("alice", "al", False),
        Presence("l", "alice", False),
        Presence("x", "Alice", False),
    ]
    room.busEntries([Entry("13-0", "c", 2, held)])
    assert alice.take() == []
    assert room.names() == ["alice", "erin", "fae"]


def test_the_presence_limit_counts_the_whole_room() -> None:
    """Joins and departures, local or remote, are announced only while the
    whole room, on every node, is within presenceLimit."""
    room, bus, _ = shared(presenceLimit=3)
    alice = admitted(room, "alice")
    bus.rejoin(others=[("b", "bob")])
    room.busEntries([Entry("1-0", "b", 1, [Presence("j", "carol", False)])])
    assert alice.take() == [("joined", "carol")]
    room.busEntries([Entry("2-0", "b", 2, [Presence("j", "dave", False)])])
    erin = admitted(room, "erin")
    room.busEntries([Entry("3-0", "b", 3, [Presence("l", "carol", False)])])
    assert alice.take() == []
    room.leave(erin)
    assert alice.take() == [("left", "erin")]
    room.busEntries([Entry("4-0", "b", 4, [Presence("l", "dave", False)])])
    assert alice.take() == [("left", "dave")]


def test_history_spans_the_nodes() -> None:
    """The last lines kept for newcomers are those of every node, in the
    order this node saw them, primed from the stream on the first join
    (whose other events change nothing)."""
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
    assert result(roomB.rename(other, "bob")) == "ALICE#2"
    settle(clock, redis)
    assert alice.take() == [("renamed", "ALICE#2", "bob")]
    roomB.leave(other)
    settle(clock, redis)
    assert alice.take() == [("left", "bob")]
    assert roomA.names() == roomB.names() == ["alice"]
    assert redis.members == {"allce": ("a", "alice")}


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
    held = busA.published[-1].seq
    busA.lose()
    busA.pending.pop().fail()
    redis.join(busA)
    while busA.pending:
        busA.pending.pop(0).answer()
    settle(clock, redis)
    assert [batch.seq for batch in busA.published][-3:] == [held, held, held + 1]
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


def test_every_event_kind_round_trips() -> None:
    """What a node encodes, a node decodes the same, alone or in a batch (in
    order, as compact UTF-8 JSON); Redis's scripts publish the members of a
    node counted gone as one x event, which decodes as one departure each;
    printable text (TAB too) passes as it is."""
    events: list[BusEvent] = [
        Said("alice", (b"hello", b"caf\xc3\xa9 \xe2\x9c\x93", b"007", b"tab\there")),
        Said("\u65e5\u672c", (b"",)),
        Said("bob", ()),
        Presence("j", "alice", False),
        Presence("l", "Bob#2", True),
        Rename("alice", "al[ice]", True),
        Here(("alice", "bob")),
        Here(()),
    ]
    for event in events:
        assert decodeBatch(encodeBatch([encodeEvent(event)])) == [event]
    payload = encodeBatch([encodeEvent(event) for event in events])
    assert decodeBatch(payload) == events
    assert "café ✓".encode() in payload
    assert b", " not in payload
    assert b'": ' not in payload
    assert decodeBatch(b"x\x1fa\x1fb") == [
        Presence("x", "a", False),
        Presence("x", "b", False),
    ]


def test_a_departure_of_a_gone_node_round_trips() -> None:
    """encodeEvent gives the stream's form of every BusEvent, Presence x
    included: what it writes, decodeBatch reads back."""
    event = Presence("x", "bob", False)
    assert decodeBatch(encodeBatch([encodeEvent(event)])) == [event]


def test_decoding_rejects_what_no_node_wrote() -> None:
    """Anything but a list of known events is a BadEntry."""
    garbage = [
        b"",
        b"not an event",
        b"\xff\xfe",
        b"m",
        b"\x1e",
        b"m\x1fa\x1e",
        b"j\x1fa",
        b"j\x1fa\x1f2",
        b"l\x1fa\x1f1\x1fmore",
        b"r\x1fa\x1fb",
        b"r\x1fa\x1fb\x1ftrue",
        b"x",
        b"q\x1fa\x1f1",
        b"m\x1fa\x1fline\x1eq",
    ]
    for payload in garbage:
        with pytest.raises(BadEntry):
            decodeBatch(payload)


def test_a_deeply_nested_payload_is_a_bad_entry() -> None:
    """However deep the nesting, garbage is a BadEntry (the bus's reader
    skips those), never another error."""
    with pytest.raises(BadEntry):
        decodeBatch(b"[" * 100_000)


def test_decoding_makes_names_and_lines_safe_again() -> None:
    """Names and lines from the bus are made safe to show again, as safeText
    makes a client's line: control and format characters, line breaks
    included, become visible escapes."""
    unsafe = [
        "\x1b[31mred",
        "bell\x07",
        "a\u202eb",
        "\x85next",
        "zero\u200bwidth",
        "cr\ronly",
        "del\x7f",
        "line\nfeed",
        "crlf\r\nend",
    ]
    wrong = []
    for text in unsafe:
        raw = text.encode()
        payload = b"m\x1f" + raw + b"\x1f" + raw + b"\x1ej\x1f" + raw + b"\x1f0"
        expected = safeText(raw)
        decoded = decodeBatch(payload)
        if decoded != [
            Said(expected.decode(), (expected,)),
            Presence("j", expected.decode(), False),
        ]:
            wrong.append((text, decoded))
    assert wrong == []


def test_decoding_never_yields_a_name_that_cannot_be_sent() -> None:
    """Bytes that are not UTF-8 become in a name what they become in a
    line: visible escapes, which UTF-8 can carry to a client."""
    said, joined = decodeBatch(b"m\x1fa\xffb\x1fa\xffb\x1ej\x1f\xed\xa0\x80\x1f1")
    assert isinstance(said, Said)
    assert isinstance(joined, Presence)
    assert said.lines == (safeText(b"a\xffb"),)
    assert said.sender.encode("utf-8") == said.lines[0]
    joined.name.encode("utf-8")


# Addresses


def test_bus_addresses() -> None:
    """--bus takes redis://, rediss:// (with its CA file) and unix://
    addresses; a password may hold %-escapes. Logs and messages show where
    the bus is, never its password (nor does repr); a password from a file
    or the environment is taken only if the address names none."""
    addresses = {
        "redis://localhost": BusAddress("redis", host="localhost"),
        " REDIS://Bus.Example:6380/2 ": BusAddress("redis", "bus.example", 6380, db=2),
        "redis://:p%40ss%3Aw%2Fd@h": BusAddress("redis", "h", password="p@ss:w/d"),
        "redis://us%40r:pw@h:1/": BusAddress(
            "redis", "h", 1, username="us@r", password="pw"
        ),
        "redis://[::1]:7000": BusAddress("redis", "::1", 7000),
        "rediss://h": BusAddress("rediss", "h"),
        "rediss://:pw@h/3?ssl_ca_certs=/etc/ca.pem": BusAddress(
            "rediss", "h", db=3, password="pw", caFile="/etc/ca.pem"
        ),
        "unix:///run/redis.sock": BusAddress("unix", path="/run/redis.sock"),
        "unix:///run/redis.sock?db=5": BusAddress("unix", path="/run/redis.sock", db=5),
        "unix:///tmp/a%20b.sock": BusAddress("unix", path="/tmp/a b.sock"),
    }
    for text, address in addresses.items():
        parsed = parseBusAddress(text)
        assert parsed == address, text
        assert parsed.password == address.password, text
    assert parseBusAddress("redis://h").port == DEFAULT_PORT
    shown = {
        "redis://:s3cret@h": f"redis://h:{DEFAULT_PORT}",
        "redis://user:s3cret@h:7000/4": "redis://h:7000/4",
        "rediss://:s3cret@[::1]": f"rediss://[::1]:{DEFAULT_PORT}",
        "unix:///run/redis.sock": "unix:///run/redis.sock",
    }
    for text, description in shown.items():
        address = parseBusAddress(text)
        assert address.describe() == description
        assert "s3cret" not in repr(address)
        withPassword = address.withPassword("s3cret")
        assert withPassword.describe() == description
        assert "s3cret" not in repr(withPassword)
        assert withPassword.password == "s3cret"
    bare = parseBusAddress("redis://h")
    assert bare.withPassword(None) is bare
    named = parseBusAddress("redis://:mine@h")
    assert named.withPassword("other") is named


def test_bad_bus_addresses() -> None:
    """Bad schemes, hosts, ports and databases are refused, with a message;
    so are room names but of 1 to 64 letters, digits and _ . -."""
    bad = [
        "",
        "localhost:7000",
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
        "unix://:pw@/run/redis.sock",
        "unix:///run/redis.sock?db=x",
    ]
    for text in bad:
        with pytest.raises(ValueError, match=r"bus address|no host|database|ssl_ca"):
            parseBusAddress(text)
    for name in ["chat", "a", "x" * 64, "Room_1.eu-west", ".."]:
        assert checkRoomName(name) == name
    for name in ["", "x" * 65, "a b", "a:b", "a{b}", "ünï", "room\n", "a*", "a/b"]:
        with pytest.raises(ValueError, match="a room name is"):
            checkRoomName(name)


def test_the_database_is_ascii_digits() -> None:
    """As for every number sockserve reads, the database is ASCII digits:
    other Unicode digits are refused with the usual message."""
    outcomes: dict[str, object] = {}
    for db in ["\u00b2", "\u0661"]:
        try:
            outcomes[db] = parseBusAddress(f"redis://h/{db}")
        except ValueError as error:
            outcomes[db] = str(error)
    refused = {
        db: isinstance(outcome, str) and "the database must be a number" in outcome
        for db, outcome in outcomes.items()
    }
    assert refused == {"\u00b2": True, "\u0661": True}, outcomes


def test_a_bad_address_error_never_shows_the_password() -> None:
    """The message refusing an address says what is wrong, not the password
    it holds (it goes to the terminal and the journal)."""
    bad = [
        "redis://:s3cret@h:99999",
        "redis://:s3cret@h/notadb",
        "http://:s3cret@h",
        "redis://:s3cret@h?ssl_ca_certs=ca.pem",
    ]
    shown = []
    for text in bad:
        with pytest.raises(ValueError, match=r"bus address|database|ssl_ca") as refused:
            parseBusAddress(text)
        if "s3cret" in str(refused.value):
            shown.append(str(refused.value))
    assert shown == []


def test_lines_from_other_nodes_wait_for_readers_behind() -> None:
    """While members here that still read are far behind, the bus waits
    before reading more lines from the other nodes (as a sender here
    waits), until they caught up."""
    from sockserve.chat.pacing import OutputPressure

    room, bus, clock = shared()
    assert room.readersBehind(bus) is None
    room.pressure = OutputPressure(clock)
    assert room.readersBehind(bus) is None
    slow = admitted(room, "slow")
    room.pressure.fellBehind(slow, lambda: 1000)
    waiting = room.readersBehind(bus)
    assert waiting is not None
    assert not waiting.called
    room.pressure.caughtUp(slow)
    assert waiting.called


def test_a_gap_in_a_nodes_batches_is_told_and_a_forged_number_recovers() -> None:
    """Batches of another node missing from the stream (trimmed before this
    node read them, or dropped there) are told, at most every
    MISSING_EVERY seconds; a number far below the last seen (the node's
    numbers started afresh, or the last one was forged) is taken as new,
    so a forged number cannot silence a node."""
    from sockserve.bus.room import DEDUPE_WINDOW, MISSING_EVERY

    room, _, clock = shared()
    alice = admitted(room, "alice")
    alice.take()
    said = [Said("carol", (b"x",))]
    room.busEntries([Entry("1-0", "there", 1, said), Entry("2-0", "there", 2, said)])
    assert ("notice", MISSING) not in alice.take()
    room.busEntries([Entry("3-0", "there", 9, said)])
    assert alice.take() == [("notice", MISSING), ("message", "carol", (b"x",))]
    room.busEntries([Entry("4-0", "there", 20, said)])
    assert ("notice", MISSING) not in alice.take()
    clock.advance(MISSING_EVERY)
    room.busEntries([Entry("5-0", "there", 30, said)])
    assert ("notice", MISSING) in alice.take()
    forged = DEDUPE_WINDOW * 10
    room.busEntries([Entry("6-0", "there", forged, said)])
    alice.take()
    room.busEntries([Entry("7-0", "there", 31, said), Entry("8-0", "there", 32, said)])
    assert [e for e in alice.take() if e[0] == "message"] == [
        ("message", "carol", (b"x",)),
        ("message", "carol", (b"x",)),
    ]


def test_lines_waiting_for_the_bus_go_out_under_the_name_it_gave() -> None:
    """A member renamed by the bus on rejoining (another node's member took
    its name meanwhile) has what it said meanwhile published under its new
    name, never the other member's."""
    room, bus, clock = shared(connected=False)
    carol = admitted(room, "carol")
    room.say(carol, [b"I am carol here"])
    clock.advance(0)
    bus.rejoin(names=["carol#2"])
    clock.advance(0)
    said = [event for event in bus.events() if isinstance(event, Said)]
    assert said == [Said("carol#2", (b"I am carol here",))]
    joins = [e for e in bus.events() if isinstance(e, Presence) and e.kind == "j"]
    assert [join.name for join in joins] == ["carol#2"]


def test_two_members_cannot_take_one_name_while_the_bus_stalls() -> None:
    """Two members of one node ask for bob and BOB while the bus answers
    nothing; the bus is then lost: the node decides alone, and gives the
    name to one of them only. Both then leave, each publishing its
    departure, and nothing raises."""
    room, bus, clock = shared()
    first, second = admitted(room, "first"), admitted(room, "second")
    clock.advance(0)
    bus.holding = True
    renamingFirst = room.rename(first, "bob")
    renamingSecond = room.rename(second, "BOB")
    assert not renamingFirst.called
    assert not renamingSecond.called
    bus.lose()
    while bus.pending:
        bus.pending.pop(0).fail()
    assert result(renamingFirst) == "first"
    refused = result(renamingSecond)
    assert isinstance(refused, Failure)
    refused.trap(NameRejected)
    assert str(refused.value) == "the name BOB is taken"
    assert room.names() == ["bob", "second"]
    room.leave(first)
    room.leave(second)
    assert room.names() == []
    bus.holding = False
    bus.rejoin(asked=[])
    clock.advance(0)
    lefts = [
        event.name
        for event in bus.events()
        if isinstance(event, Presence) and event.kind == "l"
    ]
    assert lefts == ["bob", "second"]
    assert [key for batch in bus.published for key in batch.leftKeys][-2:] == [
        "bob",
        "second",
    ]


def test_a_name_another_node_holds_is_refused_without_asking() -> None:
    """A look-alike of another node's member's name is refused at once, and
    says whose name it looks like."""
    room, bus, _ = shared()
    bus.rejoin(others=[("there", "alice")])
    member = admitted(room, "member")
    refused = result(room.rename(member, "aIice"))
    assert isinstance(refused, Failure)
    refused.trap(NameRejected)
    assert str(refused.value) == "the name aIice is taken: it looks too much like alice"
    assert bus.renames == []


# The sender pays for the other nodes' readers too


def pressured(**options: Any) -> tuple[SharedRoom, FakeBus, Clock, OutputPressure]:
    room, bus, clock = shared(**options)
    room.pressure = OutputPressure(clock)
    return room, bus, clock, room.pressure


def test_bulk_senders_wait_while_the_slowest_node_is_far_behind() -> None:
    """
    When the slowest node has more than BEHIND_ON_BUS bytes of the stream
    to read, and reads on, the node's bulk senders wait; once it is down
    to half of that, they go on. The bus's own reading never waits for it.
    """
    room, _, clock, pressure = pressured()
    flooder = admitted(room, "flooder")
    room.busProgress(BEHIND_ON_BUS)
    assert not pressure.holdsBack(flooder)
    room.busProgress(BEHIND_ON_BUS + 1)
    assert pressure.holdsBack(flooder)
    assert room.readersBehind(object()) is None
    held = pressure.hold(flooder)
    clock.advance(RECHECK)
    room.busProgress(BEHIND_ON_BUS - 1000)
    clock.advance(RECHECK)
    assert not held.called
    room.busProgress(BEHIND_ON_BUS // 2)
    assert held.called
    assert not pressure.holdsBack(flooder)


def test_a_node_that_reads_nothing_is_not_waited_for() -> None:
    """
    The slowest node reads nothing for BUS_PATIENCE seconds (it stalled, or
    died and is not yet counted gone): the senders go on without it.
    """
    room, _, clock, pressure = pressured()
    flooder = admitted(room, "flooder")
    room.busProgress(BEHIND_ON_BUS * 2)
    held = pressure.hold(flooder)
    clock.pump([RECHECK] * int(BUS_PATIENCE / RECHECK + 2))
    assert held.called
    assert not pressure.holdsBack(flooder)


def test_bulk_senders_wait_for_a_bus_that_takes_lines_slowly() -> None:
    """
    Lines wait in the outbox for a bus that is there but answers slowly:
    past an eighth of the outbox's bound (at most 256 KiB) the node's bulk
    senders wait, and nothing is dropped or told; they go on as it drains.
    """
    room, bus, clock, pressure = pressured(outboxLimit=1024 * 1024)
    flooder = admitted(room, "flooder")
    reader = admitted(room, "reader")
    clock.advance(0)
    bus.holding = True
    for index in range(40):
        room.say(flooder, [line(index, 4000)])
        clock.advance(0)
    assert pressure.holdsBack(flooder)
    held = pressure.hold(flooder)
    assert not any(isinstance(event, Notice) for event in flooder.received)
    while bus.pending:
        bus.pending.pop(0).answer()
        clock.advance(0)
    assert room.outboxBytes == 0
    assert held.called
    assert not pressure.holdsBack(flooder)
    said = [event for event in bus.events() if isinstance(event, Said)]
    assert len(said) == 40
    assert reader.received


def test_lines_dropped_while_the_bus_is_there_say_so() -> None:
    """
    A sender whose lines the bus could not take in time (it was there, but
    stalled past the outbox's bound) is told that, not that contact was
    lost.
    """
    room, bus, clock = shared(outboxLimit=64 * 1024)
    flooder = admitted(room, "flooder")
    clock.advance(0)
    bus.holding = True
    for index in range(40):
        room.say(flooder, [line(index, 4000)])
        clock.advance(0)
    notices = [e.text for e in flooder.received if isinstance(e, Notice)]
    assert notices == [DROPPED_WHILE_THERE]


def test_a_batch_the_bus_refused_is_tried_again() -> None:
    """
    A batch the bus refused while it is there (Redis out of memory) is
    published again PUBLISH_RETRY seconds later, until it goes through.
    """
    room, bus, clock = shared()
    alice = admitted(room, "alice")
    clock.advance(0)
    bus.holding = True
    room.say(alice, [b"one"])
    clock.advance(0)
    bus.pending.pop(0).fail()
    assert len(bus.published) == 2
    clock.advance(PUBLISH_RETRY)
    assert len(bus.published) == 3
    assert bus.published[2].events == [Said("alice", (b"one",))]
    bus.pending.pop(0).answer()
    assert room.outboxBytes == 0

"""
The bus on fakes: a node (L{BusNode}, its people, its rooms' directory and
relay, its outbox) over a fake transport whose answers the test gives, on a
L{Clock}. (The service's contract suite, tests/test_service.py, runs the
same node over the real transport and a real Redis.) Then the codec of the
streams, and C{--bus} addresses.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from zope.interface import implementer

from sockserve._text import safeText
from sockserve.bus.address import (
    DEFAULT_PORT,
    BusAddress,
    parseBusAddress,
)
from sockserve.bus.codec import (
    BadEntry,
    BusEvent,
    Here,
    Presence,
    Private,
    Rename,
    Said,
    decodeBatch,
    encodeBatch,
    encodeEvent,
)
from sockserve.bus.inbound import MISSING
from sockserve.bus.node import (
    BACK,
    BEHIND_ON_BUS,
    BUS_PATIENCE,
    DROPPED,
    LOST,
    BusNode,
)
from sockserve.bus.outbox import IN_FLIGHT, PUBLISH_RETRY
from sockserve.bus.people import BusPeople
from sockserve.bus.redis import (
    BusFull,
    BusLost,
    Entry,
    RedisBus,
    Registration,
    Rejoined,
    Snapshot,
    roomStream,
)
from sockserve.bus.rooms import BusRooms
from sockserve.chat.events import (
    ACTION,
    NOTICE,
    ChatEvent,
    Joined,
    Left,
    Message,
    Notice,
    PrivateMessage,
    Renamed,
)
from sockserve.chat.names import NameRejected, nameKey
from sockserve.chat.pacing import RECHECK
from sockserve.chat.people import IChatMember, NobodyThere, Unreachable
from sockserve.chat.room import RoomFull
from sockserve.chat.service import ChatService, RoomRules


class Request:
    """
    A command the fake transport holds until the test answers or fails it.
    """

    def __init__(self, name: str, arguments: tuple[Any, ...]) -> None:
        self.name = name
        self.arguments = arguments
        self.deferred: Deferred[Any] = Deferred()

    def __repr__(self) -> str:
        return f"<{self.name} {self.arguments!r}>"

    def answer(self, reply: Any) -> None:
        self.deferred.callback(reply)

    def lose(self) -> None:
        self.deferred.errback(Failure(BusLost("the test cut the bus")))


class FakeTransport:
    """
    What a node asks of its transport (L{RedisBus}), held for the test:
    every command waits in C{requests} until the test answers it (or, with
    C{auto}, is answered at once by C{auto(name, arguments)}).
    """

    def __init__(self, node: str = "here") -> None:
        self.node = node
        self.inbox = f"sockserve:inbox:{node}"
        self.connected = True
        self.requests: list[Request] = []
        self.target: Any = None
        self.woken = 0
        self.auto: Any = None

    def serve(self, target: Any) -> None:
        self.target = target

    def command(self, name: str, *arguments: Any) -> Deferred[Any]:
        if not self.connected:
            return fail(BusLost("not in contact with the bus"))
        if self.auto is not None:
            reply = self.auto(name, arguments)
            if reply is not None:
                if isinstance(reply, Exception):
                    return fail(reply)
                return succeed(reply)
        request = Request(name, arguments)
        self.requests.append(request)
        return request.deferred

    def answer(self, reply: list[Any]) -> list[Any]:
        return RedisBus.answer(self, reply)  # type: ignore[arg-type]

    def _lose(self, reason: str) -> None:
        self.lose()

    def publish(
        self, room: str, seq: int, payload: bytes, last: bool, leftKeys: Sequence[str]
    ) -> Deferred[Any]:
        return self.command("publish", room, seq, payload, last, tuple(leftKeys))

    def snapshot(self, reply: list[Any]) -> Snapshot:
        return RedisBus.snapshot(self, reply)  # type: ignore[arg-type]

    def replicated(self, answer: Any) -> Deferred[Any]:
        return succeed(answer)

    def wakeReader(self) -> None:
        self.woken += 1

    def resumeReading(self) -> None:
        self.woken += 1

    def recent(self, room: str, lines: int) -> Deferred[list[Entry]]:
        return succeed([])

    def take(self, name: str) -> Request:
        """The oldest request of that name."""
        for request in self.requests:
            if request.name == name:
                self.requests.remove(request)
                return request
        raise AssertionError(f"no {name} among {self.requests}")

    def published(self) -> list[tuple[str, int, list[BusEvent], tuple[str, ...]]]:
        """Answer every publication waiting; return what they were."""
        found = []
        for request in [r for r in self.requests if r.name == "publish"]:
            self.requests.remove(request)
            room, seq, payload, _, leftKeys = request.arguments
            found.append((room, seq, decodeBatch(payload), leftKeys))
            request.answer([1, 0, 0])
        return found

    def lose(self) -> None:
        """Lose contact, as RedisBus does: tell the node, fail what waits."""
        self.connected = False
        self.target.busLost("the test cut the bus")
        requests, self.requests = self.requests, []
        for request in requests:
            request.lose()

    def rejoin(self, names: list[str] | None = None, **changes: Any) -> Registration:
        """Be in contact (again): the node learns what the bus says."""
        registration = self.target.registration()
        self.connected = True
        snapshots = [Snapshot("5-0", "0-0", 0, []) for _ in registration.rooms]
        settings: dict[str, Any] = {
            "names": [name for name, _ in registration.people]
            if names is None
            else names,
            "rooms": snapshots,
            "reaped": False,
            "lostData": False,
            "asked": registration,
        }
        settings.update(changes)
        self.target.busJoined(Rejoined(**settings))
        return registration  # type: ignore[no-any-return]


@implementer(IChatMember)
class Member:
    account = None

    def __init__(self) -> None:
        self.received: list[ChatEvent] = []
        self.name = ""

    def accountChanged(self, account: object) -> None:
        """A guest: never logged in, never told of its account."""
        raise AssertionError("a guest has no account to change")

    def receive(self, event: ChatEvent) -> None:
        self.received.append(event)

    def renamed(self, newName: str) -> None:
        self.name = newName

    def notices(self) -> list[str]:
        return [event.text for event in self.received if isinstance(event, Notice)]

    def lines(self) -> list[tuple[str, str, bytes]]:
        return [
            (event.room, event.sender, line)
            for event in self.received
            if isinstance(event, Message)
            for line in event.lines
        ]


def result(deferred: Deferred[Any]) -> Any:
    """The result of a Deferred that has fired (a Failure if it failed)."""
    results: list[Any] = []
    deferred.addBoth(results.append)
    [value] = results
    return value


class Node:
    """A node on a fake transport, answering everything by default."""

    def __init__(self, **rules: Any) -> None:
        self.clock = Clock()
        self.transport = FakeTransport()
        settings: dict[str, Any] = {"capacity": 10}
        settings.update(rules)
        self.rules = RoomRules(**settings)
        self.node = BusNode(self.transport, self.clock, self.rules)  # type: ignore[arg-type]
        self.service = ChatService(
            self.rules,
            self.clock,
            BusPeople(self.node),
            BusRooms(self.node, self.rules),
        )
        self.node.service = self.service
        self.guests = 0
        self.transport.auto = self.answers

    def answers(self, name: str, arguments: tuple[Any, ...]) -> Any:
        if name == "claim":
            self.guests += 1
            given = arguments[0] or f"guest{self.guests}"
            return [b"ok", given.encode()]
        if name == "join":
            if arguments[-2] == "1":
                return [b"ok", [b"1-0", b"0-0", b"0", []], arguments[1].encode()]
            return [b"ok"]
        if name in ("rename",):
            return [b"ok"]
        if name in ("release", "rooms"):
            return []
        return None

    def arrive(self) -> Member:
        member = Member()
        member.name, _ = result(self.service.arrive(member))
        return member


def entry(
    id: str, node: str, seq: int, *events: BusEvent, offset: int | None = None
) -> Entry:
    return Entry(id, node, seq, events, offset)


# Publishing: the outbox


def test_local_delivery_first_then_one_publish_per_reactor_pass() -> None:
    """A line reaches the members here at once; what a reactor pass said in
    one room goes out in one batch, numbered per room, with the keys of
    those who left."""
    world = Node()
    alice, bob = world.arrive(), world.arrive()
    room = world.service.room("default")
    assert room is not None
    room.say(alice, [b"one", b"two"])
    assert bob.lines() == [("default", "guest1", b"one"), ("default", "guest1", b"two")]
    assert world.transport.published() == []
    world.clock.advance(0)
    world.service.depart(bob, bob.name)
    world.clock.advance(0)
    published = world.transport.published()
    assert published == [
        (
            "default",
            1,
            [
                Presence("j", "guest1", False),
                Presence("j", "guest2", False),
                Said("guest1", (b"one", b"two")),
            ],
            (),
        ),
        ("default", 2, [Presence("q", "guest2", False)], (nameKey("guest2"),)),
    ]


def test_a_batch_on_its_way_is_never_merged_and_goes_again_under_its_number() -> None:
    """Lines said while a batch is on its way go in the next; a batch lost
    with the bus goes again, once it is back, under the same number."""
    world = Node()
    alice = world.arrive()
    room = world.service.room("default")
    assert room is not None
    world.clock.advance(0)
    world.transport.published()
    room.say(alice, [b"a"])
    world.clock.advance(0)
    room.say(alice, [b"b"])
    world.clock.advance(0)
    first = [r.arguments[1] for r in world.transport.requests if r.name == "publish"]
    assert first == [2, 3]
    world.transport.lose()
    room.say(alice, [b"c"])
    world.clock.advance(0)
    assert world.transport.requests == []
    world.transport.rejoin()
    published = world.transport.published()
    assert [(seq, events) for _, seq, events, _ in published] == [
        (2, [Said("guest1", (b"a",))]),
        (3, [Said("guest1", (b"b",))]),
        (4, [Said("guest1", (b"c",)), Here(("guest1",))]),
    ]


def test_at_most_so_many_batches_are_on_their_way() -> None:
    """No more than IN_FLIGHT batches wait for the bus's answer at once."""
    world = Node()
    alice = world.arrive()
    room = world.service.room("default")
    assert room is not None
    world.clock.advance(0)
    world.transport.published()
    for index in range(IN_FLIGHT + 3):
        room.say(alice, [b"%d" % index])
        world.clock.advance(0)
    waiting = [r for r in world.transport.requests if r.name == "publish"]
    assert len(waiting) == IN_FLIGHT
    said: list[bytes] = []
    for _ in range(5):
        said += [
            event.lines[0]
            for _, _, events, _ in world.transport.published()
            for event in events
            if isinstance(event, Said)
        ]
    assert said == [b"%d" % index for index in range(IN_FLIGHT + 3)]


def test_the_outbox_keeps_the_newest_lines_while_the_bus_is_away() -> None:
    """While the bus is away, beyond the outbox's bound the oldest lines go
    first, a flooder's own before others', and their senders are told once
    that contact was lost for too long."""
    clock = Clock()
    transport = FakeTransport()
    node = BusNode(transport, clock, RoomRules(), outboxLimit=64 * 1024)  # type: ignore[arg-type]
    service = ChatService(
        RoomRules(), clock, BusPeople(node), BusRooms(node, RoomRules())
    )
    node.service = service
    transport.connected = False
    flooder, typist = Member(), Member()
    service.arrive(flooder)
    service.arrive(typist)
    room = service.room("default")
    assert room is not None
    room.say(typist, [b"typed"])
    for index in range(40):
        room.say(flooder, [b"%03d " % index + b"." * 4000])
        clock.advance(0)
    assert flooder.notices().count(DROPPED) == 1
    assert DROPPED not in typist.notices()
    kept = [event for batch in node.outbox.batches() for event in batch.events]
    assert any(b"typed" in event for event in kept)
    assert node.outbox.bytes <= 64 * 1024


def test_lines_waiting_for_a_bus_that_is_there_hold_their_sender() -> None:
    """A bus that is there but answers slowly: past an eighth of the
    outbox's bound the room's bulk senders wait, and nothing is dropped or
    told; they go on as it drains."""
    clock = Clock()
    transport = FakeTransport()
    node = BusNode(transport, clock, RoomRules(), outboxLimit=1024 * 1024)  # type: ignore[arg-type]
    service = ChatService(
        RoomRules(), clock, BusPeople(node), BusRooms(node, RoomRules())
    )
    node.service = service
    world = Node()
    transport.auto = world.answers
    flooder, reader = Member(), Member()
    service.arrive(flooder)
    service.arrive(reader)
    room = service.room("default")
    assert room is not None
    assert room.pressure is not None
    for index in range(40):
        room.say(flooder, [b"%03d " % index + b"." * 4000])
        clock.advance(0)
    assert room.pressure.holdsBack(flooder)
    held = room.pressure.hold(flooder)
    assert flooder.notices() == []
    for _ in range(10):
        transport.published()
        clock.advance(0)
    assert node.outbox.bytes == 0
    assert held.called
    assert not room.pressure.holdsBack(flooder)
    assert flooder.notices() == []


def test_many_rooms_each_under_their_share_do_not_overflow_the_outbox() -> None:
    """Rooms that each keep under their own share of the outbox but fill
    half of it together hold the senders of every room that adds to it,
    until it is down to a quarter: nothing is dropped or told, and all go
    on as it drains."""
    clock = Clock()
    transport = FakeTransport()
    rules = RoomRules(capacity=10, maxRooms=20)
    node = BusNode(transport, clock, rules, outboxLimit=1024 * 1024)  # type: ignore[arg-type]
    service = ChatService(rules, clock, BusPeople(node), BusRooms(node, rules))
    node.service = service
    world = Node()
    transport.auto = world.answers
    senders = []
    for index in range(12):
        sender = Member()
        sender.name, _ = result(service.arrive(sender))
        room = result(service.join(sender, sender.name, f"room{index}"))
        assert room.pressure is not None
        senders.append((sender, room))
    # Each sender says 100 KiB (under the room's share, an eighth of the
    # outbox), in rounds, as long as it is not held.
    for _ in range(25):
        for sender, room in senders:
            if not room.pressure.holdsBack(sender):
                room.say(sender, [b"." * 4000])
        clock.advance(0)
    # 12 x 100 KiB would pass the outbox's bound of 1 MiB.
    assert [sender.notices() for sender, _ in senders] == [[]] * 12
    held = [sender for sender, room in senders if room.pressure.holdsBack(sender)]
    assert held
    assert node.outbox.bytes <= 1024 * 1024 // 2 + 12 * 4100
    releases = [
        room.pressure.hold(sender) for sender, room in senders if sender in held
    ]
    while transport.requests:
        transport.published()
        clock.advance(0)
    assert node.outbox.bytes == 0
    assert all(release.called for release in releases)
    for sender, room in senders:
        assert not room.pressure.holdsBack(sender)
        assert sender.notices() == []


def test_a_batch_the_bus_refused_is_tried_again() -> None:
    """A batch Redis refused for want of memory is published again
    PUBLISH_RETRY seconds later, until it goes through."""
    world = Node()
    alice = world.arrive()
    room = world.service.room("default")
    assert room is not None
    world.clock.advance(0)
    world.transport.published()
    room.say(alice, [b"one"])
    world.clock.advance(0)
    world.transport.take("publish").deferred.errback(Failure(BusFull("OOM")))
    assert [r.name for r in world.transport.requests] == []
    world.clock.advance(PUBLISH_RETRY)
    [(_, seq, events, _)] = world.transport.published()
    assert (seq, events) == (2, [Said("guest1", (b"one",))])
    assert world.node.outbox.bytes == 0


# The sender pays across the bus


def test_bulk_senders_wait_while_the_slowest_node_is_far_behind() -> None:
    """When the slowest node has more than BEHIND_ON_BUS bytes of a room's
    stream to read, and reads on, the room's bulk senders wait; down to half
    of that, they go on. Another room's senders do not wait."""
    world = Node()
    flooder = world.arrive()
    room = world.service.room("default")
    assert room is not None
    assert room.pressure is not None
    world.node.busProgress("default", BEHIND_ON_BUS)
    assert not room.pressure.holdsBack(flooder)
    world.node.busProgress("default", BEHIND_ON_BUS + 1)
    assert room.pressure.holdsBack(flooder)
    other = result(world.service.join(flooder, flooder.name, "lab"))
    assert other.pressure is not None
    assert not other.pressure.holdsBack(flooder)
    held = room.pressure.hold(flooder)
    world.clock.advance(RECHECK)
    world.node.busProgress("default", BEHIND_ON_BUS - 1000)
    world.clock.advance(RECHECK)
    assert not held.called
    world.node.busProgress("default", BEHIND_ON_BUS // 2)
    assert held.called


def test_a_node_that_reads_nothing_is_not_waited_for() -> None:
    """The slowest node reads nothing for BUS_PATIENCE seconds: the senders
    go on without it."""
    world = Node()
    flooder = world.arrive()
    room = world.service.room("default")
    assert room is not None
    assert room.pressure is not None
    world.node.busProgress("default", BEHIND_ON_BUS * 2)
    held = room.pressure.hold(flooder)
    world.clock.pump([RECHECK] * int(BUS_PATIENCE / RECHECK + 2))
    assert held.called


def test_a_room_whose_readers_here_are_behind_is_not_read() -> None:
    """While members here that still read are far behind in a room, the
    node stops reading that room's stream (other rooms' go on)."""
    world = Node()
    reader = world.arrive()
    room = world.service.room("default")
    assert room is not None
    assert room.pressure is not None
    result(world.service.join(reader, reader.name, "lab"))
    streams = dict(world.node.streamsToRead())
    assert roomStream("default") in streams
    assert roomStream("lab") in streams
    room.pressure.fellBehind(reader, lambda: 1000)
    world.node.busEntries(
        roomStream("default"), [entry("2-0", "there", 1, Said("far", (b"x",)))]
    )
    streams = dict(world.node.streamsToRead())
    assert roomStream("default") not in streams
    assert roomStream("lab") in streams
    room.pressure.caughtUp(reader)
    assert roomStream("default") in dict(world.node.streamsToRead())


# Names and admission


def test_names_and_rooms_are_asked_of_the_bus() -> None:
    """A newcomer's name, a room's admission and a rename are asked of the
    bus; its refusals are the member's."""
    world = Node(capacity=3)
    alice = world.arrive()
    assert alice.name == "guest1"
    world.transport.auto = None
    joining = world.service.join(alice, alice.name, "lab")
    request = world.transport.take("join")
    assert request.arguments[:6] == ("lab", "lab", nameKey("guest1"), "guest1", 3, 100)
    request.answer([b"full"])
    refused = result(joining)
    assert isinstance(refused, Failure)
    refused.trap(RoomFull)
    assert world.service.room("lab") is None
    renaming = world.service.rename(alice, alice.name, "bob")
    request = world.transport.take("rename")
    assert request.arguments == (nameKey("guest1"), "bob", nameKey("bob"), "default")
    request.answer([b"taken", b"Bob"])
    refused = result(renaming)
    assert isinstance(refused, Failure)
    refused.trap(NameRejected)
    assert str(refused.value) == "the name bob is taken"


def test_while_the_bus_is_away_the_node_decides_alone() -> None:
    """Without the bus, names and admission are decided on what the node
    knows: its own people, and the members elsewhere it last knew of."""
    world = Node(capacity=2)
    alice = world.arrive()
    room = world.service.room("default")
    assert room is not None
    world.node.busEntries(
        roomStream("default"), [entry("2-0", "there", 1, Presence("j", "far", False))]
    )
    world.transport.connected = False
    refused = result(world.service.arrive(Member()))
    assert isinstance(refused, Failure)
    refused.trap(RoomFull)
    taken = result(world.service.rename(alice, alice.name, "FAR"))
    assert isinstance(taken, Failure)
    assert str(taken.value) == "the name FAR is taken"
    assert result(world.service.rename(alice, alice.name, "al")) is None


def test_two_people_cannot_take_one_name_while_the_bus_stalls() -> None:
    """Two people of one node ask for bob and BOB while the bus answers
    nothing; the bus is then lost: the node decides alone, and gives the
    name to one of them only. Both then leave, and nothing raises."""
    world = Node()
    first, second = world.arrive(), world.arrive()
    world.transport.auto = None
    renamingFirst = world.service.rename(first, first.name, "bob")
    renamingSecond = world.service.rename(second, second.name, "BOB")
    world.transport.lose()
    assert result(renamingFirst) is None
    refused = result(renamingSecond)
    assert isinstance(refused, Failure)
    refused.trap(NameRejected)
    assert str(refused.value) == "the name BOB is taken"
    world.service.depart(first, "bob")
    world.service.depart(second, second.name)
    assert world.node.people == {}


def test_names_the_bus_changed_are_taken_and_told() -> None:
    """A name another node took while this one was away is replaced by the
    one the bus gave: the person goes by it and is told; the rooms here hear
    the rename; lines it said meanwhile go out under the new name."""
    world = Node()
    alice, bob = world.arrive(), world.arrive()
    room = world.service.room("default")
    assert room is not None
    world.clock.advance(0)
    world.transport.published()
    world.transport.lose()
    room.say(alice, [b"meanwhile"])
    world.transport.rejoin(names=["guest7", "guest2"])
    assert alice.name == "guest7"
    assert "your name guest1 was taken on another server meanwhile" in alice.notices()
    assert any(
        isinstance(event, Renamed) and event.newName == "guest7"
        for event in bob.received
    )
    said = [
        event
        for _, _, events, _ in world.transport.published()
        for event in events
        if isinstance(event, Said)
    ]
    assert said == [Said("guest7", (b"meanwhile",))]


# Contact


def test_contact_lost_and_back_is_told_once_each() -> None:
    """Everyone here is told once that contact is lost and once that it is
    back; lines may be missing only when the bus says so."""
    world = Node()
    alice = world.arrive()
    world.transport.lose()
    world.transport.lose()
    world.transport.rejoin()
    assert alice.notices() == [LOST, BACK]
    world.transport.lose()
    world.transport.rejoin(lostData=True)
    assert alice.notices() == [LOST, BACK, LOST, BACK, MISSING]


def test_a_node_back_says_who_is_here_and_after_being_counted_gone_joins_again() -> (
    None
):
    """A node back in contact tells each room who it holds there; one the
    others had counted as gone announces its members as joining again."""
    world = Node()
    world.arrive()
    world.clock.advance(0)
    world.transport.published()
    world.transport.lose()
    world.transport.rejoin()
    [(_, _, events, _)] = world.transport.published()
    assert events == [Here(("guest1",))]
    world.transport.lose()
    world.transport.rejoin(reaped=True)
    [(_, _, events, _)] = world.transport.published()
    assert events == [Presence("j", "guest1", False)]


# Reading


def test_lines_from_other_nodes_reach_every_member_here_once() -> None:
    """Other nodes' lines reach every member here, each batch once (a batch
    read again is not delivered again), and the node's own are skipped."""
    world = Node()
    alice, bob = world.arrive(), world.arrive()
    stream = roomStream("default")
    said = entry("2-0", "there", 1, Said("far", (b"hi",)))
    world.node.busEntries(stream, [said])
    world.node.busEntries(stream, [entry("3-0", "there", 1, Said("far", (b"hi",)))])
    world.node.busEntries(stream, [entry("4-0", "here", 0)])
    assert alice.lines() == bob.lines() == [("default", "far", b"hi")]


def test_presence_from_other_nodes_counts_only_when_fresh() -> None:
    """Joins and departures from other nodes are announced; only those
    after the room's snapshot change who the node knows is there."""
    world = Node()
    alice = world.arrive()
    room = world.service.room("default")
    assert room is not None
    stream = roomStream("default")
    world.node.busEntries(
        stream, [entry("0-5", "there", 1, Presence("j", "old", False))]
    )
    assert room.names() == ["guest1"]
    world.node.busEntries(
        stream, [entry("2-0", "there", 2, Presence("j", "new", False))]
    )
    assert room.names() == ["guest1", "new"]
    world.node.busEntries(
        stream, [entry("3-0", "there", 3, Presence("l", "new", False))]
    )
    assert room.names() == ["guest1"]
    assert [
        (type(event).__name__, event.name)
        for event in alice.received
        if isinstance(event, Joined | Left)
    ] == [("Joined", "old"), ("Joined", "new"), ("Left", "new")]


def test_a_gap_in_a_nodes_batches_is_told() -> None:
    """A batch number skipped (trimmed before this node read it) tells the
    members lines may be missing, at most every 30 s."""
    world = Node()
    alice = world.arrive()
    stream = roomStream("default")
    world.node.busEntries(stream, [entry("2-0", "there", 1, Said("far", (b"a",)))])
    world.node.busEntries(stream, [entry("3-0", "there", 5, Said("far", (b"b",)))])
    world.node.busEntries(stream, [entry("4-0", "there", 9, Said("far", (b"c",)))])
    assert alice.notices().count(MISSING) == 1


def test_private_messages_from_the_inbox_reach_their_person_once() -> None:
    """A private message in the node's inbox reaches the person it is for
    (by the key of its name), once."""
    world = Node()
    alice, bob = world.arrive(), world.arrive()
    message = entry("1-0", "there", 1, Private("far", "GUEST2", (b"psst",)))
    world.node.busEntries(world.transport.inbox, [message])
    world.node.busEntries(world.transport.inbox, [message])
    assert [e for e in bob.received if isinstance(e, PrivateMessage)] == [
        bob.received[-1]
    ]
    assert not any(isinstance(e, PrivateMessage) for e in alice.received)


def test_a_private_message_to_another_node_waits_for_the_bus() -> None:
    """A private message to someone elsewhere goes to the bus under a
    number; lost with the bus, it goes again under the same number once the
    bus is back; nobody by that name is the sender's error; after a while
    without the bus the sender is told it could not be delivered."""
    world = Node()
    alice = world.arrive()
    telling = world.service.tell(alice, alice.name, "bob", [b"hi"])
    request = world.transport.take("tell")
    seq = request.arguments[0]
    world.transport.requests.append(request)
    world.transport.lose()
    assert not telling.called
    world.transport.rejoin()
    again = world.transport.take("tell")
    assert again.arguments[0] == seq
    again.answer([b"dup", b"Bob"])
    assert result(telling) == "Bob"
    nobody = world.service.tell(alice, alice.name, "nobody", [b"?"])
    world.transport.take("tell").answer([b"nobody"])
    failure = result(nobody)
    assert isinstance(failure, Failure)
    failure.trap(NobodyThere)
    world.transport.connected = False
    late = world.service.tell(alice, alice.name, "carol", [b"?"])
    world.clock.advance(31)
    failure = result(late)
    assert isinstance(failure, Failure)
    failure.trap(Unreachable)


def test_every_event_kind_round_trips() -> None:
    """What a node encodes, a node decodes the same, alone or in a batch (in
    order, as compact UTF-8 JSON); Redis's scripts publish the members of a
    node counted gone as one x event, which decodes as one departure each;
    printable text (TAB too) passes as it is, and so does the mark of an
    action or a notice at a line's start (one: it is made safe anywhere
    else)."""
    events: list[BusEvent] = [
        Said("alice", (b"hello", b"caf\xc3\xa9 \xe2\x9c\x93", b"007", b"tab\there")),
        Said("\u65e5\u672c", (b"",)),
        Said("bob", ()),
        Said("bob", (ACTION + b"waves", b"and says")),
        Said("bob", (NOTICE + b"notes", NOTICE + b"")),
        Presence("j", "alice", False),
        Presence("l", "Bob#2", True),
        Presence("q", "carol", False),
        Presence("q", "dave", False, "gone for lunch \\x1b"),
        Presence("l", "erin", False, "café"),
        Rename("alice", "al[ice]", True),
        Here(("alice", "bob")),
        Here(()),
        Private("alice", "bob", (b"psst",)),
        Private("alice", "bob", (ACTION + b"winks",)),
        Private("alice", "bob", (NOTICE + b"psst",)),
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
    assert decodeBatch(b"m\x1fa\x1f\x01\x01x\x1fy\x01") == [
        Said("a", (ACTION + b"\\x01x", b"y\\x01"))
    ]
    assert decodeBatch(b"m\x1fa\x1f\x05\x05x\x1f\x05\x01y\x1f\x01\x05z") == [
        Said("a", (NOTICE + b"\\x05x", NOTICE + b"\\x01y", ACTION + b"\\x05z"))
    ]
    assert decodeBatch(b"p\x1fa\x1fb\x1f\x05\x05x") == [
        Private("a", "b", (NOTICE + b"\\x05x",))
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
        b"l\x1fa\x1f1\x1fwhy\x1fmore",
        b"j\x1fa\x1f1\x1fwhy",
        b"r\x1fa\x1fb",
        b"r\x1fa\x1fb\x1ftrue",
        b"x",
        b"z\x1fa\x1f1",
        b"m\x1fa\x1fline\x1ez",
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


def test_what_counts_as_a_refused_password() -> None:
    """A missing, wrong or unwanted password is an authentication failure
    (start-up stops); anything else (a refused connection, a timeout) is
    retried."""
    from sockserve.bus.redis import authenticationFailed

    for refused in (
        "NOAUTH Authentication required.",
        "Redis error: could not auth: WRONGPASS invalid username-password pair",
        "ERR invalid password",
        "ERR AUTH <password> called without any password configured",
    ):
        assert authenticationFailed(refused), refused
    for other in ("Connection was refused by other side: 111", "no answer from Redis"):
        assert not authenticationFailed(other), other

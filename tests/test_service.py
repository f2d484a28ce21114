"""
The chat service's contract, one suite run against each way rooms and
people can live: in this process alone, and on two nodes of a bus (two
L{BusNode}s in this process, on a real private C{redis-server}, reading and
writing through their real transport on the reactor). Whatever a person
sees of rooms, names and private messages must not depend on which.

In the bus world, each person alternates between the nodes, so that every
check spans them; what another node hears arrives a little later, so every
check of what someone received waits for it (bounded, polling the state,
never sleeping a fixed time).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater
from twisted.python.failure import Failure
from zope.interface import implementer

from sockserve.bus.address import parseBusAddress
from sockserve.bus.node import busChat
from sockserve.bus.redis import RedisBus, roomStream
from sockserve.chat.events import (
    ChatEvent,
    History,
    Joined,
    Left,
    Message,
    PrivateMessage,
    Renamed,
    TopicChanged,
)
from sockserve.chat.names import NameRejected, RoomRejected
from sockserve.chat.people import IChatMember, NobodyThere
from sockserve.chat.room import ChatRoom, RoomFull
from sockserve.chat.service import ChatService, RoomRules
from tests.redis import RedisServer

# Seconds any one thing may take to happen.
WAIT = 10.0


@implementer(IChatMember)
class Person:
    """
    Someone in the chat: it records what it receives.
    """

    account = None

    def __init__(self, service: ChatService) -> None:
        self.service = service
        self.name = ""
        self.received: list[ChatEvent] = []

    def __repr__(self) -> str:
        return f"<Person {self.name}>"

    def accountChanged(self, account: object) -> None:
        """A guest: never logged in, never told of its account."""
        raise AssertionError("a guest has no account to change")

    def receive(self, event: ChatEvent) -> None:
        self.received.append(event)

    def renamed(self, newName: str) -> None:
        self.name = newName

    def rooms(self) -> list[str]:
        return [room.name for room in self.service.roomsOf(self)]

    def room(self, name: str) -> ChatRoom:
        [room] = [r for r in self.service.roomsOf(self) if r.name.lower() == name]
        return room

    def said(self) -> list[tuple[str, str, bytes]]:
        return [
            (event.room, event.sender, line)
            for event in self.received
            if isinstance(event, Message)
            for line in event.lines
        ]

    def privately(self) -> list[tuple[str, bytes]]:
        return [
            (event.sender, line)
            for event in self.received
            if isinstance(event, PrivateMessage)
            for line in event.lines
        ]

    def presence(self) -> list[tuple[str, ...]]:
        found: list[tuple[str, ...]] = []
        for event in self.received:
            if isinstance(event, Left) and event.quit:
                found.append(("quit", event.room, event.name))
            elif isinstance(event, Joined | Left):
                found.append((type(event).__name__.lower(), event.room, event.name))
            elif isinstance(event, Renamed):
                found.append(("renamed", event.room, event.oldName, event.newName))
        return found


async def until(condition: Callable[[], object], what: str) -> None:
    """
    Wait until C{condition} holds, looking every few milliseconds, at most
    L{WAIT} seconds.
    """
    for _ in range(int(WAIT / 0.01)):
        if condition():
            return
        await deferLater(reactor, 0.01, lambda: None)
    raise AssertionError(f"no {what} within {WAIT} s")


async def failureOf(deferred: Awaitable[Any]) -> Failure:
    """
    The failure C{deferred} fails with.
    """
    try:
        result = await deferred
    except Exception:
        return Failure()
    raise AssertionError(f"expected a failure, got {result!r}")


class World:
    """
    The services of one chat: one, or one per node of a bus.
    """

    def __init__(self, services: Sequence[ChatService]) -> None:
        self.services = list(services)
        self.people: list[Person] = []

    async def arrive(self, quietly: bool = False) -> Person:
        """
        A person arrives, on the next node in turn, and is in the default
        room.
        """
        service = self.services[len(self.people) % len(self.services)]
        person = Person(service)
        person.name, _ = await service.arrive(person, quietly)
        self.people.append(person)
        return person

    async def join(self, person: Person, room: str) -> ChatRoom:
        return await person.service.join(person, person.name, room)

    def leave(self, person: Person) -> None:
        person.service.depart(person, person.name)

    async def everyoneKnows(self, room: str, count: int) -> None:
        """
        Wait until every node that has members in C{room} counts C{count}
        members there.
        """

        def known() -> bool:
            for service in self.services:
                found = service.room(room)
                if found is not None and found.population() != count:
                    return False
            return True

        await until(known, f"{count} members known in #{room}")


def rules(**changes: Any) -> RoomRules:
    settings: dict[str, Any] = {"capacity": 10, "history": 0}
    settings.update(changes)
    return RoomRules(**settings)


@pytest.fixture(params=["alone", "bus"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class Worlds:
    """
    Builds worlds, and takes them down at the end of the test.
    """

    def __init__(self, kind: str, directory: Path) -> None:
        self.kind = kind
        self.directory = directory
        self.redis: RedisServer | None = None
        self.buses: list[RedisBus] = []
        self.services: list[ChatService] = []

    async def __call__(self, **changes: Any) -> World:
        roomRules = rules(**changes)
        if self.kind == "alone":
            service = ChatService(roomRules, reactor)
            self.services.append(service)
            return World([service])
        if self.redis is None:
            self.redis = RedisServer(self.directory / "redis").start()
        address = parseBusAddress(self.redis.url)
        services = []
        for _ in range(2):
            service, bus = busChat(
                address,
                roomRules,
                reactor,
                reactor,
                nodeTimeout=10.0,
            )
            bus.startService()
            self.buses.append(bus)
            services.append(service)
            self.services.append(service)
        await until(lambda: all(bus.connected for bus in self.buses), "bus joined")
        return World(services)

    async def close(self) -> None:
        for service in self.services:
            service.close()
        for bus in self.buses:
            await bus.stopService()
        if self.redis is not None:
            self.redis.kill()


@pytest_twisted.async_yield_fixture
async def worlds(kind: str, tmp_path: Path) -> AsyncIterator[Worlds]:
    made = Worlds(kind, tmp_path)
    try:
        yield made
    finally:
        await made.close()


# Arriving, and names


@pytest_twisted.ensureDeferred
async def test_arriving_gives_a_default_name_and_the_default_room(
    worlds: Worlds,
) -> None:
    """Everyone arrives as guestN, a name of their own, in the default room;
    those there are told."""
    world = await worlds()
    first = await world.arrive()
    second = await world.arrive()
    assert first.name.startswith("guest")
    assert second.name.startswith("guest")
    assert first.name != second.name
    assert first.rooms() == second.rooms() == ["default"]
    await until(
        lambda: ("joined", "default", second.name) in first.presence(),
        "a join announced",
    )
    assert second.presence() == []


@pytest_twisted.ensureDeferred
async def test_names_are_unique_across_rooms_and_nodes(worlds: Worlds) -> None:
    """A name, or one that looks like it, held by anyone in any room on any
    node is refused, saying whose it looks like; a free one is taken, and
    every room the person is in is told."""
    world = await worlds()
    alice, bob = await world.arrive(), await world.arrive()
    await world.join(alice, "lab")
    await alice.service.rename(alice, alice.name, "alice")
    alice.name = "alice"
    for wanted in ("alice", "ALICE", "aIice", "a1ice"):
        refused = await failureOf(bob.service.rename(bob, bob.name, wanted))
        refused.trap(NameRejected)
        expected = "taken" if wanted.lower() == "alice" else "looks too much like alice"
        assert expected in str(refused.value)
    refused = await failureOf(bob.service.rename(bob, bob.name, "has space"))
    refused.trap(NameRejected)
    old = bob.name
    await bob.service.rename(bob, old, "bob")
    bob.name = "bob"
    await until(
        lambda: ("renamed", "default", old, "bob") in alice.presence(),
        "a rename announced",
    )
    lab = [p for p in alice.presence() if p[1] == "lab"]
    assert all(p[0] != "renamed" for p in lab)


# Rooms


@pytest_twisted.ensureDeferred
async def test_a_line_reaches_its_room_only(worlds: Worlds) -> None:
    """A line said in a room reaches that room's other members on every
    node, once, and nobody in another room."""
    world = await worlds()
    a, b, c, d = [await world.arrive() for _ in range(4)]
    for person in (a, b, c):
        await world.join(person, "lab")
    await world.everyoneKnows("lab", 3)
    a.room("lab").say(a, [b"in lab"])
    a.room("default").say(a, [b"in default"])
    await until(lambda: ("lab", a.name, b"in lab") in c.said(), "a line in lab")
    await until(lambda: ("default", a.name, b"in default") in d.said(), "a line")
    await until(lambda: ("lab", a.name, b"in lab") in b.said(), "a line in lab")
    assert ("lab", a.name, b"in lab") not in d.said()
    assert a.said() == []
    assert b.said().count(("lab", a.name, b"in lab")) == 1


@pytest_twisted.ensureDeferred
async def test_rooms_are_listed_with_their_populations_and_forgotten_empty(
    worlds: Worlds,
) -> None:
    """Every room with members is listed with how many; a room nobody is
    in any more is not."""
    world = await worlds()
    a, b = await world.arrive(), await world.arrive()
    await world.join(a, "lab")
    await world.join(b, "Lab")
    await world.everyoneKnows("lab", 2)
    for person in (a, b):
        assert dict(await person.service.rooms()) == {"default": 2, "lab": 2}
    a.service.part(a, a.room("lab"))
    b.service.part(b, b.room("lab"))

    async def listed() -> dict[str, int]:
        return dict(await a.service.rooms())

    for _ in range(int(WAIT / 0.01)):
        if await listed() == {"default": 2}:
            break
        await deferLater(reactor, 0.01, lambda: None)
    assert await listed() == {"default": 2}


@pytest_twisted.ensureDeferred
async def test_a_full_room_refuses_and_leaves_one_where_one_was(
    worlds: Worlds,
) -> None:
    """--max-clients caps each room, counting every node; the one refused
    stays in its rooms, and other rooms are not affected."""
    world = await worlds(capacity=2)
    for _ in range(2):
        mover = await world.arrive()
        await world.join(mover, "lab")
        mover.service.part(mover, mover.room("default"))
    await world.everyoneKnows("lab", 2)
    person = await world.arrive()
    refused = await failureOf(world.join(person, "lab"))
    refused.trap(RoomFull)
    assert str(refused.value) == "the room #lab is full (2 members)"
    assert person.rooms() == ["default"]
    await world.join(person, "games")
    assert sorted(person.rooms()) == ["default", "games"]


@pytest_twisted.ensureDeferred
async def test_one_room_too_many_is_refused(worlds: Worlds) -> None:
    """--max-rooms bounds how many rooms there are at once, on every node;
    an existing room can still be joined."""
    world = await worlds(maxRooms=2)
    a, b, c = [await world.arrive() for _ in range(3)]
    await world.join(a, "lab")
    await world.join(b, "games")
    refused = await failureOf(world.join(c, "chess"))
    refused.trap(RoomRejected)
    assert "at most 2, besides the default room" in str(refused.value)
    await world.join(c, "lab")


@pytest_twisted.ensureDeferred
async def test_fixed_rooms(worlds: Worlds) -> None:
    """With --rooms, only those rooms may be joined."""
    world = await worlds(fixed=("default", "lab"))
    a = await world.arrive()
    await world.join(a, "#LAB")
    refused = await failureOf(world.join(a, "games"))
    refused.trap(RoomRejected)
    assert str(refused.value) == (
        "there is no room #games here; the rooms are #default, #lab"
    )
    refused = await failureOf(world.join(a, "bad name"))
    refused.trap(RoomRejected)


@pytest_twisted.ensureDeferred
async def test_leaving_is_announced_in_each_room_and_frees_the_name(
    worlds: Worlds,
) -> None:
    """A person who goes is announced as leaving the chat in every room it
    was in (and one who parts, as leaving that room), and its name can be
    taken."""
    world = await worlds()
    a, b, c = [await world.arrive() for _ in range(3)]
    await world.join(a, "lab")
    await world.join(b, "lab")
    await world.join(c, "lab")
    await world.everyoneKnows("lab", 3)
    c.service.part(c, c.room("lab"))
    await until(lambda: ("left", "lab", c.name) in b.presence(), "a part")
    world.leave(a)
    await until(lambda: ("quit", "lab", a.name) in b.presence(), "a departure")
    await until(lambda: ("quit", "default", a.name) in c.presence(), "a departure")
    await c.service.rename(c, c.name, a.name)


# Private messages


@pytest_twisted.ensureDeferred
async def test_a_private_message_reaches_one_person_wherever_it_is(
    worlds: Worlds,
) -> None:
    """Lines said to a person alone reach that person, once, in whatever
    room and on whatever node; nobody else; and never a room's history."""
    world = await worlds(history=10)
    a, b, c = [await world.arrive() for _ in range(3)]
    await world.join(b, "lab")
    told = await a.service.tell(a, a.name, b.name.upper(), [b"psst"])
    assert told == b.name
    await until(lambda: b.privately() == [(a.name, b"psst")], "a private message")
    assert c.privately() == []
    assert a.privately() == []
    for room in b.service.roomsOf(b):
        assert not room.recent
    nobody = await failureOf(a.service.tell(a, a.name, "nobody", [b"hello?"]))
    nobody.trap(NobodyThere)
    assert str(nobody.value) == "nobody here is called nobody"


# History


@pytest_twisted.ensureDeferred
async def test_history_is_the_rooms_own(worlds: Worlds) -> None:
    """Each room keeps its own last lines, shown to whoever joins it, on
    any node (from the bus, for a node the room is new to)."""
    world = await worlds(history=3)
    a = await world.arrive()
    await world.join(a, "lab")
    a.room("lab").say(a, [b"one", b"two"])
    a.room("default").say(a, [b"elsewhere"])
    b = await world.arrive()
    room = await world.join(b, "lab")

    def history() -> list[tuple[str, bytes]]:
        b.received.clear()
        room.tellHistory(b)
        return [
            line
            for event in b.received
            if isinstance(event, History)
            for line in event.lines
        ]

    await until(lambda: history() == [(a.name, b"one"), (a.name, b"two")], "history")


@pytest_twisted.ensureDeferred
async def test_a_departure_says_why_on_every_node(worlds: Worlds) -> None:
    """What someone says as it parts or leaves the chat reaches the others,
    on every node."""
    world = await worlds()
    a = await world.arrive()
    b = await world.arrive()
    for person in (a, b):
        await world.join(person, "lab")
    await world.everyoneKnows("lab", 2)
    b.service.part(b, b.room("lab"), "lunch")
    await until(
        lambda: (
            [(e.name, e.quit, e.reason) for e in a.received if isinstance(e, Left)]
            == [(b.name, False, "lunch")]
        ),
        "the part and its reason",
    )
    b.service.depart(b, b.name, "gone for the day")
    await until(
        lambda: (
            [(e.room, e.quit, e.reason) for e in a.received if isinstance(e, Left)][-1:]
            == [("default", True, "gone for the day")]
        ),
        "the quit and its reason",
    )


# Topics


@pytest_twisted.ensureDeferred
async def test_a_topic_is_the_rooms_own_and_kept_for_newcomers(
    worlds: Worlds,
) -> None:
    """A topic set in a room is told to its members on every node, with who
    set it; a newcomer on a node the room is new to finds it there; other
    rooms keep theirs; an empty text clears it, on every node."""
    world = await worlds()
    a = await world.arrive()
    b = await world.arrive()
    c = await world.arrive()
    await world.join(a, "lab")
    await world.join(c, "lab")
    topic = a.room("lab").setTopic(a, "exams on Friday")
    assert (topic.text, topic.setter) == ("exams on Friday", a.name)

    def told(person: Person) -> list[tuple[str, str, str]]:
        return [
            (event.room, event.topic.text, event.topic.setter)
            for event in person.received
            if isinstance(event, TopicChanged) and event.topic is not None
        ]

    expected = [("lab", "exams on Friday", a.name)]
    assert told(a) == expected
    await until(lambda: told(c) == expected, "the topic told")
    assert a.room("default").topic is None
    # b's node has nobody in lab: the room is new to it. It finds the topic
    # in the room's snapshot, or, had the topic not reached Redis yet when
    # the snapshot was read, on the room's stream just after.
    room = await world.join(b, "lab")

    def found() -> tuple[str, str] | None:
        return None if room.topic is None else (room.topic.text, room.topic.setter)

    await until(lambda: found() == ("exams on Friday", a.name), "the topic found")
    room.setTopic(b, "")
    await until(lambda: told(a)[-1:] == [("lab", "", b.name)], "the topic cleared")
    await until(lambda: told(c)[-1:] == [("lab", "", b.name)], "the topic cleared")


# The bus alone: how a node reads the rooms it holds


@pytest_twisted.ensureDeferred
async def test_a_room_joined_while_a_read_is_on_its_way_is_read_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A node that joins a room wakes its reading connection, so that it
    reads the new room's stream too. The wake travels on the other
    connection; when it reaches Redis before the read it means to end has
    begun to wait, it ends nothing, and it is sent again until it does,
    rather than leaving the new room unheard until that read times out."""
    # Reads would otherwise wait far longer than the test does.
    monkeypatch.setattr("sockserve.bus.redis.READ_BLOCK_MS", 600_000)
    made = Worlds("bus", tmp_path)
    late: list[Deferred[Any]] = []
    try:
        world = await made()
        a, b = await world.arrive(), await world.arrive()
        assert a.service is not b.service
        bus = made.buses[1]
        reader = bus._reader
        sendNow = reader.execute_command
        reads: list[tuple[Any, ...]] = []

        def sendLate(*arguments: Any) -> Deferred[Any]:
            # Each read of the listening node leaves a little late: later
            # than a wake sent at the same time on the other connection.
            reads.append(arguments)
            late.append(deferLater(reactor, 0.2, sendNow, *arguments))
            return late[-1]

        def reading(room: str) -> bool:
            return any(roomStream(room) in arguments for arguments in reads)

        await world.join(a, "lab")
        await world.join(b, "first")
        monkeypatch.setattr(reader, "execute_command", sendLate)
        # Leaving the first room wakes the read that waits; the next one
        # (without the first room) leaves late, and the wake of joining the
        # lab overtakes it. Neither room it reads hears anything after.
        b.service.part(b, b.room("first"))
        await until(
            lambda: any(roomStream("first") not in read for read in reads),
            "a read without the first room",
        )
        await world.join(b, "lab")
        a.room("lab").say(a, [b"heard?"])
        await until(lambda: b.said() == [("lab", a.name, b"heard?")], "heard")
        assert reading("lab")
    finally:
        await made.close()
        for call in late:
            call.cancel()

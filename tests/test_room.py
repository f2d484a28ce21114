"""
The chat room, with plain members: no transport, no wire, no service. What
the service decides (admission, names) is the service's; the room takes
members as they come, and tells its relay and its members what happens.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pytest
from twisted.internet.task import Clock
from zope.interface import implementer
from zope.interface.verify import verifyClass, verifyObject

from sockserve.chat.events import (
    ChatEvent,
    History,
    Joined,
    Left,
    Message,
    QuietPresence,
    Renamed,
    Topic,
)
from sockserve.chat.names import (
    NameRejected,
    RoomRejected,
    checkName,
    guestName,
    nameKey,
    roomKey,
    roomName,
)
from sockserve.chat.people import IChatMember
from sockserve.chat.room import (
    QUIET_SUMMARY_EVERY,
    ChatRoom,
    IChatRoom,
    IRoomRelay,
    IRoster,
    historyBudget,
)
from sockserve.chat.session import ChatSession
from tests.conftest import ErrorCollector


@implementer(IChatMember)
class Member:
    account = None

    def __init__(self) -> None:
        self.received: list[ChatEvent] = []
        self.names: list[str] = []

    def accountChanged(self, account: object) -> None:
        """A guest: never logged in, never told of its account."""
        raise AssertionError("a guest has no account to change")

    def receive(self, event: ChatEvent) -> None:
        self.received.append(event)

    def renamed(self, newName: str) -> None:
        self.names.append(newName)


@implementer(IChatMember)
class BrokenMember(Member):
    def accountChanged(self, account: object) -> None:
        """A guest: never logged in, never told of its account."""
        raise AssertionError("a guest has no account to change")

    def receive(self, event: ChatEvent) -> None:
        raise OSError("gone")


@implementer(IRoomRelay)
class RecordingRelay:
    def __init__(self) -> None:
        self.told: list[tuple[object, ...]] = []

    def joined(self, room: ChatRoom, name: str, quietly: bool) -> None:
        self.told.append(("joined", room.name, name, quietly))

    def left(
        self, room: ChatRoom, name: str, quietly: bool, quit: bool, reason: str = ""
    ) -> None:
        told = ("left" if not quit else "quit", room.name, name, quietly)
        self.told.append((*told, reason) if reason else told)

    def renamed(self, room: ChatRoom, oldName: str, newName: str) -> None:
        self.told.append(("renamed", room.name, oldName, newName))

    def topic(self, room: ChatRoom, topic: Topic) -> None:
        self.told.append(("topic", room.name, topic.setter, topic.text))

    def said(
        self, room: ChatRoom, sender: IChatMember, name: str, lines: Sequence[bytes]
    ) -> None:
        self.told.append(("said", room.name, name, tuple(lines)))


@implementer(IRoster)
class FixedRoster:
    def __init__(self, names: Iterable[str]) -> None:
        self.members = list(names)

    def population(self) -> int:
        return len(self.members)

    def names(self) -> Iterable[str]:
        return self.members

    def holderOf(self, key: str) -> str | None:
        found = [name for name in self.members if nameKey(name) == key]
        return "elsewhere" if found else None


def joined(room: ChatRoom, name: str, quietly: bool = False) -> Member:
    member = Member()
    room.admit(member, name, quietly)
    return member


def describe(events: list[ChatEvent]) -> list[tuple[object, ...]]:
    """Events as comparable tuples."""
    shown: list[tuple[object, ...]] = []
    for event in events:
        if isinstance(event, Message):
            shown.append(("message", event.room, event.sender, event.lines))
        elif isinstance(event, Renamed):
            shown.append(("renamed", event.room, event.oldName, event.newName))
        elif isinstance(event, Joined | Left):
            shown.append((type(event).__name__.lower(), event.room, event.name))
        else:
            shown.append((type(event).__name__.lower(),))
    return shown


def test_the_room_and_its_members_provide_their_interfaces() -> None:
    """The room provides IChatRoom; members and sessions IChatMember."""
    verifyClass(IChatRoom, ChatRoom)
    verifyObject(IChatRoom, ChatRoom("lab", capacity=1))
    verifyObject(IChatMember, Member())
    assert IChatMember.implementedBy(ChatSession)
    verifyObject(IRoomRelay, RecordingRelay())


def test_say_reaches_everyone_but_the_sender_as_one_event() -> None:
    """say hands every other member the same Message event, naming the room
    and the sender as the room knows it."""
    room = ChatRoom("lab", capacity=10)
    a, b, c = joined(room, "a"), joined(room, "b"), joined(room, "c")
    for member in (a, b, c):
        member.received.clear()
    room.say(a, [b"hi", b"there"])
    assert a.received == []
    assert describe(b.received) == [("message", "lab", "a", (b"hi", b"there"))]
    assert b.received[0] is c.received[0]


def test_presence_events() -> None:
    """Joins and departures reach the others as events; leaving twice is
    harmless."""
    room = ChatRoom("lab", capacity=10)
    a = joined(room, "a")
    b = joined(room, "b")
    assert describe(a.received) == [("joined", "lab", "b")]
    assert b.received == []
    room.remove(b)
    assert describe(a.received) == [("joined", "lab", "b"), ("left", "lab", "b")]
    room.remove(b)
    assert len(a.received) == 2


def test_a_failing_member_does_not_stop_delivery(logged_errors: ErrorCollector) -> None:
    """One member's failure is logged; the others still receive."""
    room = ChatRoom("lab", capacity=10)
    broken, ok = BrokenMember(), Member()
    room.admit(broken, "broken", False)
    room.admit(ok, "ok", False)
    room.say(ok, [b"x"])
    other = joined(room, "other")
    room.say(other, [b"z"])
    assert describe(ok.received) == [
        ("joined", "lab", "other"),
        ("message", "lab", "other", (b"z",)),
    ]
    events = logged_errors.take()
    assert len(events) == 4  # ok's join, x, other's join, z
    assert all(event["log_failure"].check(OSError) for event in events)


def test_capacity_counts_the_members_elsewhere() -> None:
    """A room is full once its members here and on other nodes fill it;
    names are listed sorted, with those elsewhere."""
    room = ChatRoom("lab", capacity=3, roster=FixedRoster(["zed", "Al"]))
    assert not room.isFull()
    bob = joined(room, "bob")
    assert room.isFull()
    assert room.population() == 3
    assert room.localPopulation() == len(room) == 1
    assert room.names() == ["Al", "bob", "zed"]
    assert room.nameOf(bob) == "bob"
    assert room.memberCalled("BOB") is bob
    assert room.memberCalled("zed") is None


def test_renamed() -> None:
    """A member's new name replaces the old, is announced, and is how it is
    found."""
    room = ChatRoom("lab", capacity=3)
    a, b = joined(room, "a"), joined(room, "b")
    b.received.clear()
    room.renamed(a, "A2")
    assert room.nameOf(a) == "A2"
    assert room.memberCalled("a2") is a
    assert room.memberCalled("a") is None
    assert describe(b.received) == [("renamed", "lab", "a", "A2")]
    room.renamed(a, "A2")
    assert len(b.received) == 1
    room.remove(a)
    assert a not in room
    assert room.members() == [b]


def test_the_relay_hears_what_happens_here() -> None:
    """Joins, departures, renames and lines go to the relay (the bus's
    outbox), quiet ones marked quiet; a room closed tells it no departure."""
    relay = RecordingRelay()
    room = ChatRoom("lab", capacity=10, relay=relay)
    a = joined(room, "a")
    shy = joined(room, "shy", quietly=True)
    room.say(a, [b"one"])
    room.renamed(a, "b")
    room.remove(shy)
    room.close()
    room.remove(a)
    assert relay.told == [
        ("joined", "lab", "a", False),
        ("joined", "lab", "shy", True),
        ("said", "lab", "a", (b"one",)),
        ("renamed", "lab", "a", "b"),
        ("left", "lab", "shy", True),
    ]


def test_what_was_heard_elsewhere_is_delivered_here() -> None:
    """Lines from other nodes reach every member here (and the history);
    presence from elsewhere is announced as local presence is."""
    room = ChatRoom("lab", capacity=10, history=5)
    a = joined(room, "a")
    room.heard(Message("lab", "far", [b"hello"]))
    room.heard(Joined("lab", "far2"))
    assert describe(a.received) == [
        ("message", "lab", "far", (b"hello",)),
        ("joined", "lab", "far2"),
    ]
    assert list(room.recent or ()) == [("far", b"hello")]


def test_presence_limit_covers_joins_leaves_and_renames() -> None:
    """Above the presence limit, nobody is told of joins, leaves or renames."""
    room = ChatRoom("lab", capacity=10, presenceLimit=2)
    a = joined(room, "a")
    joined(room, "b")
    a.received.clear()
    c = joined(room, "c")
    room.renamed(c, "c2")
    assert a.received == []
    room.remove(c)
    assert describe(a.received) == [("left", "lab", "c2")]


@pytest.mark.parametrize(
    "name",
    ["", "x" * 33, "has space", "-dash", "ünï", "a:b", "\x1b[1m", "a#2", "a.b"],
)
def test_invalid_names(name: str) -> None:
    """Names are 1-32 characters of a safe set."""
    with pytest.raises(NameRejected):
        checkName(name)


@pytest.mark.parametrize("name", ["a", "x" * 32, "Bob_2", "a-b_c|d^e{f}", "_[away]"])
def test_valid_names(name: str) -> None:
    """These names are fine."""
    checkName(name)


def test_default_names_are_valid_everywhere() -> None:
    """guestN is a valid name, and an IRC nick (no : or .)."""
    for number in (1, 10, 9999):
        name = guestName(number)
        checkName(name)
        assert ":" not in name
        assert "." not in name


@pytest.mark.parametrize(
    ("text", "name"),
    [("lab", "lab"), ("#Lab", "Lab"), ("a.b-c_d", "a.b-c_d"), ("x" * 32, "x" * 32)],
)
def test_room_names(text: str, name: str) -> None:
    """A room's name: letters, digits, - _ ., at most 32; a leading # is not
    part of it; rooms are compared without case."""
    assert roomName(text) == name
    assert roomKey(name) == name.lower()


@pytest.mark.parametrize(
    "text", ["", "#", "a b", "x" * 33, "a/b", "a{b}", "ünï", "##a"]
)
def test_bad_room_names(text: str) -> None:
    """Anything else is refused, saying what a room's name is."""
    with pytest.raises(RoomRejected, match="a room name is 1 to 32"):
        roomName(text)


def test_history_is_kept_for_those_who_join() -> None:
    """A room keeping history gives a member that joins the last lines said,
    before anything else; a room without history keeps nothing."""
    room = ChatRoom("lab", capacity=10, history=2)
    speaker = joined(room, "speaker")
    room.say(speaker, [b"one", b"two"])
    room.say(speaker, [b"three"])
    newcomer = joined(room, "newcomer")
    room.tellHistory(newcomer)
    [history] = [event for event in newcomer.received if isinstance(event, History)]
    assert history.room == "lab"
    assert history.lines == (("speaker", b"two"), ("speaker", b"three"))
    plain = ChatRoom("lab", capacity=10)
    plain.admit(speaker, "speaker", False)
    plain.say(speaker, [b"one"])
    assert plain.recent is None


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("b0b", "bob"),
        ("rnary", "mary"),
        ("vvill", "will"),
        ("jo_hn", "john"),
        ("aIice", "alice"),
        ("Alice.", "alice"),
    ],
)
def test_look_alike_keys(one: str, other: str) -> None:
    """Case, the characters and pairs that look alike, and . - _ make no
    difference to a name's key."""
    assert nameKey(one) == nameKey(other)


def test_a_default_names_key_is_what_the_bus_makes_of_it() -> None:
    """The bus's scripts make the key of guestN themselves: guest, then the
    digits with 0 and 1 read as o and l (a rule they share with nameKey)."""
    for number in (1, 10, 101, 9999):
        digits = str(number).replace("0", "o").replace("1", "l")
        assert nameKey(guestName(number)) == f"guest{digits}"


def test_leaving_never_fails() -> None:
    """A member whose name's key another member holds (a mix-up anywhere
    else must not make leaving raise) leaves, and the other stays."""
    room = ChatRoom("lab", capacity=10)
    first = joined(room, "bob")
    second = joined(room, "carol")
    room._byKey[nameKey("bob")] = second
    room.remove(first)
    room.remove(first)
    assert room.names() == ["carol"]
    room.remove(second)
    assert room.names() == []


def test_history_is_bounded_in_bytes_and_says_what_it_leaves_out() -> None:
    """The room keeps no more history than its byte bound, and a newcomer is
    told how many of the last lines are not shown."""
    room = ChatRoom("lab", capacity=10, history=20, historyBytes=200_000)
    speaker = joined(room, "speaker")
    for n in range(20):
        room.say(speaker, [b"%02d" % n + b"x" * 60_000])
    newcomer = joined(room, "newcomer")
    room.tellHistory(newcomer)
    [history] = [event for event in newcomer.received if isinstance(event, History)]
    assert [line[:2] for _, line in history.lines] == [b"17", b"18", b"19"]
    assert history.omitted == 17
    assert sum(len(line) for _, line in history.lines) <= 200_000


def test_history_of_a_few_lines_omits_nothing() -> None:
    """Fewer lines than the history keeps: all shown, none omitted."""
    room = ChatRoom("lab", capacity=10, history=5)
    speaker = joined(room, "speaker")
    room.say(speaker, [b"one", b"two"])
    newcomer = joined(room, "newcomer")
    room.tellHistory(newcomer)
    [history] = [event for event in newcomer.received if isinstance(event, History)]
    assert history.omitted == 0
    assert len(history.lines) == 2


def test_history_budget_is_a_quarter_of_max_pending() -> None:
    """What a newcomer is shown never approaches what would drop it."""
    assert historyBudget(1024 * 1024) == 64 * 1024
    assert historyBudget(100_000) == 25_000
    assert historyBudget(1) == 0


def test_quiet_joins_and_departures_are_summarised() -> None:
    """Joins and departures that were not announced are told in one summary
    a while later: nobody is in the room unseen."""
    clock = Clock()
    room = ChatRoom("lab", capacity=10, clock=clock)
    watcher = joined(room, "watcher")
    joined(room, "lurker", quietly=True)
    passer = joined(room, "passer", quietly=True)
    room.remove(passer)
    assert watcher.received == []
    clock.advance(QUIET_SUMMARY_EVERY)
    [summary] = watcher.received
    assert isinstance(summary, QuietPresence)
    assert summary.room == "lab"
    assert summary.joined == ("lurker", "passer")
    assert summary.left == ("passer",)
    assert clock.getDelayedCalls() == []
    room.close()


def test_a_closed_room_summarises_nothing() -> None:
    """At shutdown, the pending summary is dropped with its timer."""
    clock = Clock()
    room = ChatRoom("lab", capacity=10, clock=clock)
    joined(room, "lurker", quietly=True)
    room.close()
    assert clock.getDelayedCalls() == []

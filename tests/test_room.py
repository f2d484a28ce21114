"""
The chat room, with plain members: no transport, no wire.
"""

from __future__ import annotations

import pytest
from twisted.python.failure import Failure
from zope.interface import implementer
from zope.interface.verify import verifyClass, verifyObject

from sockserve.chat.events import ChatEvent, Joined, Left, Message, Renamed
from sockserve.chat.names import nameKey
from sockserve.chat.room import (
    QUIET_SUMMARY_EVERY,
    ChatRoom,
    IChatMember,
    IChatRoom,
    NameRejected,
    RoomFull,
    checkName,
    historyBudget,
)
from sockserve.chat.session import ChatSession
from tests.conftest import ErrorCollector


@implementer(IChatMember)
class Member:
    def __init__(self) -> None:
        self.received: list[ChatEvent] = []

    def receive(self, event: ChatEvent) -> None:
        self.received.append(event)


@implementer(IChatMember)
class BrokenMember(Member):
    def receive(self, event: ChatEvent) -> None:
        raise OSError("gone")


def result(deferred):
    """The result of a Deferred that has fired (a Failure if it failed)."""
    results: list[object] = []
    deferred.addBoth(results.append)
    [value] = results
    return value


def joined(room: ChatRoom, name: str) -> Member:
    member = Member()
    assert result(room.join(member, name)) == name
    return member


def describe(events: list[ChatEvent]) -> list[tuple[object, ...]]:
    """Events as comparable tuples."""
    shown: list[tuple[object, ...]] = []
    for event in events:
        if isinstance(event, Message):
            shown.append(("message", event.sender, event.lines))
        elif isinstance(event, Renamed):
            shown.append(("renamed", event.oldName, event.newName))
        elif isinstance(event, Joined | Left):
            shown.append((type(event).__name__.lower(), event.name))
        else:
            shown.append((type(event).__name__.lower(),))
    return shown


def test_the_room_and_its_members_provide_their_interfaces() -> None:
    """The room provides IChatRoom; members and sessions IChatMember."""
    verifyClass(IChatRoom, ChatRoom)
    verifyObject(IChatRoom, ChatRoom(capacity=1))
    verifyObject(IChatMember, Member())
    assert IChatMember.implementedBy(ChatSession)


def test_say_reaches_everyone_but_the_sender_as_one_event() -> None:
    """say hands every other member the same Message event, with the
    sender's name as the room knows it."""
    room = ChatRoom(capacity=10)
    a, b, c = joined(room, "a"), joined(room, "b"), joined(room, "c")
    for member in (a, b, c):
        member.received.clear()
    room.say(a, [b"hi", b"there"])
    assert a.received == []
    assert describe(b.received) == [("message", "a", (b"hi", b"there"))]
    assert b.received[0] is c.received[0]


def test_presence_events() -> None:
    """Joins and departures reach the others as events."""
    room = ChatRoom(capacity=10)
    a = joined(room, "a")
    b = joined(room, "b")
    assert describe(a.received) == [("joined", "b")]
    assert b.received == []
    room.leave(b)
    assert describe(a.received) == [("joined", "b"), ("left", "b")]
    room.leave(b)  # leaving twice is harmless
    assert len(a.received) == 2


def test_a_failing_member_does_not_stop_delivery(logged_errors: ErrorCollector) -> None:
    """One member's failure is logged; the others still receive."""
    room = ChatRoom(capacity=10)
    broken, ok = BrokenMember(), Member()
    room.join(broken, "broken")
    room.join(ok, "ok")
    room.say(ok, [b"x"])
    other = joined(room, "other")
    room.say(other, [b"z"])
    assert describe(ok.received) == [("joined", "other"), ("message", "other", (b"z",))]
    events = logged_errors.take()
    assert len(events) == 4  # ok's join, x, other's join, z
    assert all(event["log_failure"].check(OSError) for event in events)


def test_capacity_and_names() -> None:
    """The room refuses a member beyond capacity; a taken name (case-
    insensitively) gets a #N suffix; names are listed sorted."""
    room = ChatRoom(capacity=3)
    joined(room, "bob")
    second = Member()
    assert result(room.join(second, "BOB")) == "BOB#2"
    joined(room, "Al")
    assert room.isFull()
    refused = result(room.join(Member(), "c"))
    assert isinstance(refused, Failure)
    assert refused.check(RoomFull)
    assert isinstance(refused.value, RoomFull)
    assert refused.value.capacity == 3
    assert room.names() == ["Al", "bob", "BOB#2"]
    assert room.population() == len(room) == 3
    assert room.nameOf(second) == "BOB#2"


def test_rename() -> None:
    """rename changes the name, tells the others, keeps the member findable;
    the room owns the name."""
    room = ChatRoom(capacity=3)
    a, b = joined(room, "a"), joined(room, "b")
    a.received.clear()
    b.received.clear()
    assert result(room.rename(a, "A2")) == "a"
    assert room.nameOf(a) == "A2"
    assert a in room
    assert describe(b.received) == [("renamed", "a", "A2")]
    assert result(room.rename(a, "a2")) == "A2"  # a change of case is a change
    taken = result(room.rename(a, "B"))
    assert isinstance(taken, Failure)
    assert str(taken.value) == "the name B is taken"
    invalid = result(room.rename(a, "has space"))
    assert invalid.check(NameRejected)
    room.leave(a)
    assert a not in room
    assert room.members() == [b]


def test_renaming_to_ones_own_name_is_a_no_op() -> None:
    """Taking the name one has tells nobody anything."""
    room = ChatRoom(capacity=3)
    a, b = joined(room, "a"), joined(room, "b")
    b.received.clear()
    assert result(room.rename(a, "a")) == "a"
    assert b.received == []


def test_presence_limit_covers_joins_leaves_and_renames() -> None:
    """Above the presence limit, nobody is told of joins, leaves or renames."""
    room = ChatRoom(capacity=10, presenceLimit=2)
    a = joined(room, "a")
    joined(room, "b")
    a.received.clear()
    c = joined(room, "c")
    room.rename(c, "c2")
    assert a.received == []
    room.leave(c)
    assert describe(a.received) == [("left", "c2")]


@pytest.mark.parametrize(
    "name", ["", "x" * 33, "has space", "-dash", "ünï", "a:b", "\x1b[1m"]
)
def test_invalid_names(name: str) -> None:
    """Names are 1-32 characters of a safe set."""
    with pytest.raises(NameRejected):
        checkName(name)


@pytest.mark.parametrize("name", ["a", "x" * 32, "Bob_2", "a.b-c|d^e{f}", "_[away]"])
def test_valid_names(name: str) -> None:
    """These names are fine."""
    checkName(name)


def test_history_is_kept_for_those_who_join() -> None:
    """A room keeping history gives a member that joins the last lines said,
    before anything else; a room without history keeps nothing."""
    from sockserve.chat.events import History

    room = ChatRoom(capacity=10, history=2)
    speaker = Member()
    room.join(speaker, "speaker")
    room.say(speaker, [b"one", b"two"])
    room.say(speaker, [b"three"])
    newcomer = Member()
    room.join(newcomer, "newcomer")
    [history] = [event for event in newcomer.received if isinstance(event, History)]
    assert history.lines == (("speaker", b"two"), ("speaker", b"three"))
    plain = ChatRoom(capacity=10)
    plain.join(speaker, "speaker")
    plain.say(speaker, [b"one"])
    assert plain.recent is None


@pytest.mark.parametrize(
    "lookAlike", ["Alice", "ALICE", "aIice", "a|ice", "a1ice", "al1ce", "alice."]
)
def test_names_that_look_alike_are_the_same_name(lookAlike: str) -> None:
    """With alice present, a name that looks like hers (case, I l 1 |, O 0,
    rn m, vv w, and the punctuation . - _) is refused, and says whose it
    looks like; a name that does not look like any is taken."""
    room = ChatRoom(capacity=10)
    joined(room, "alice")
    other = joined(room, "other")
    failure = result(room.rename(other, lookAlike))
    assert isinstance(failure, Failure)
    failure.trap(NameRejected)
    message = str(failure.value)
    if lookAlike.casefold() == "alice":
        assert message == f"the name {lookAlike} is taken"
    else:
        assert message == f"the name {lookAlike} is taken: it looks too much like alice"
    assert result(room.rename(other, "alicia")) == "other"


@pytest.mark.parametrize(
    ("one", "other"),
    [("b0b", "bob"), ("rnary", "mary"), ("vvill", "will"), ("jo_hn", "john")],
)
def test_look_alike_keys(one: str, other: str) -> None:
    """The pairs and digits that look alike give one key."""
    assert nameKey(one) == nameKey(other)


def test_a_suffixed_names_key_is_its_bases_key_and_the_suffix() -> None:
    """The bus's scripts make the key of NAME#N from NAME's key: # kept, the
    digits 0 and 1 read as o and l (a rule they must share with nameKey)."""
    for base in ("Alice", "x-Ä0", "127.0.0.1:5000", "rn"):
        for n in (2, 10, 101, 999):
            digits = str(n).replace("0", "o").replace("1", "l")
            assert nameKey(f"{base}#{n}") == f"{nameKey(base)}#{digits}"


def test_joining_as_a_look_alike_gets_a_suffix() -> None:
    """A default name that looks like a member's is made unique."""
    room = ChatRoom(capacity=10)
    joined(room, "alice")
    member = Member()
    assert result(room.join(member, "aIice")) == "aIice#2"


def test_leaving_never_fails() -> None:
    """A member whose name's key another member holds (a mix-up anywhere
    else must not make leaving raise) leaves, and the other stays."""
    room = ChatRoom(capacity=10)
    first = joined(room, "bob")
    second = joined(room, "carol")
    room._byKey[nameKey("bob")] = second
    room.leave(first)
    room.leave(first)
    assert room.names() == ["carol"]
    room.leave(second)
    assert room.names() == []


def test_history_is_bounded_in_bytes_and_says_what_it_leaves_out() -> None:
    """The room keeps no more history than its byte bound, and a newcomer is
    told how many of the last lines are not shown."""
    from sockserve.chat.events import History

    room = ChatRoom(capacity=10, history=20, historyBytes=200_000)
    speaker = joined(room, "speaker")
    for n in range(20):
        room.say(speaker, [b"%02d" % n + b"x" * 60_000])
    newcomer = Member()
    room.join(newcomer, "newcomer")
    [history] = [event for event in newcomer.received if isinstance(event, History)]
    assert [line[:2] for _, line in history.lines] == [b"17", b"18", b"19"]
    assert history.omitted == 17
    assert sum(len(line) for _, line in history.lines) <= 200_000


def test_history_of_a_few_lines_omits_nothing() -> None:
    """Fewer lines than the history keeps: all shown, none omitted."""
    from sockserve.chat.events import History

    room = ChatRoom(capacity=10, history=5)
    speaker = joined(room, "speaker")
    room.say(speaker, [b"one", b"two"])
    newcomer = Member()
    room.join(newcomer, "newcomer")
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
    from twisted.internet.task import Clock

    from sockserve.chat.events import QuietPresence

    clock = Clock()
    room = ChatRoom(capacity=10, clock=clock)
    watcher = joined(room, "watcher")
    lurker, passer = Member(), Member()
    assert result(room.join(lurker, "lurker", quietly=True)) == "lurker"
    assert result(room.join(passer, "passer", quietly=True)) == "passer"
    room.leave(passer)
    assert watcher.received == []
    clock.advance(QUIET_SUMMARY_EVERY)
    [summary] = watcher.received
    assert isinstance(summary, QuietPresence)
    assert summary.joined == ("lurker", "passer")
    assert summary.left == ("passer",)
    assert clock.getDelayedCalls() == []
    room.close()


def test_a_closed_room_summarises_nothing() -> None:
    """At shutdown, the pending summary is dropped with its timer."""
    from twisted.internet.task import Clock

    clock = Clock()
    room = ChatRoom(capacity=10, clock=clock)
    room.join(Member(), "lurker", quietly=True)
    room.close()
    assert clock.getDelayedCalls() == []

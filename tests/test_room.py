"""
The chat room, with plain members: no transport involved.
"""

from __future__ import annotations

import pytest
from zope.interface import implementer
from zope.interface.verify import verifyObject

from sockserve.chat import ChatProtocol
from sockserve.room import ChatRoom, IChatMember, NameRejected, RoomFull, checkName
from tests.conftest import ErrorCollector


@implementer(IChatMember)
class Member:
    def __init__(self, name: str) -> None:
        self.name = name
        self.received: list[bytes] = []

    def deliver(self, data: bytes) -> None:
        self.received.append(data)


@implementer(IChatMember)
class BrokenMember(Member):
    def deliver(self, data: bytes) -> None:
        raise OSError("gone")


def test_members_provide_the_interface() -> None:
    """Members and the chat protocol provide IChatMember."""
    verifyObject(IChatMember, Member("a"))
    assert IChatMember.implementedBy(ChatProtocol)


def test_broadcast_skips_the_sender() -> None:
    """broadcast delivers to everyone but the excluded member."""
    room = ChatRoom(capacity=10)
    a, b, c = Member("a"), Member("b"), Member("c")
    for member in (a, b, c):
        room.join(member)
    for member in (a, b, c):
        member.received.clear()
    room.broadcast(b"hi\r\n", exclude=a)
    assert a.received == []
    assert b.received == c.received == [b"hi\r\n"]


def test_a_failing_member_does_not_stop_delivery(logged_errors: ErrorCollector) -> None:
    """One member's failure is logged; the others still receive."""
    room = ChatRoom(capacity=10)
    broken, ok = BrokenMember("broken"), Member("ok")
    room.join(broken)
    room.join(ok)
    ok.received.clear()
    room.broadcast(b"x\r\n")
    assert ok.received == [b"x\r\n"]
    events = logged_errors.take()
    assert len(events) == 2  # ok's join notice, and x
    assert all(event["log_failure"].check(OSError) for event in events)


def test_capacity_and_names() -> None:
    """The room refuses a member beyond capacity, or a taken name (case-
    insensitively); names are listed sorted."""
    room = ChatRoom(capacity=2)
    room.join(Member("bob"))
    with pytest.raises(NameRejected):
        room.join(Member("BOB"))
    room.join(Member("Al"))
    assert room.isFull()
    with pytest.raises(RoomFull):
        room.join(Member("c"))
    assert room.names() == ["Al", "bob"]
    assert len(room) == 2


def test_rename() -> None:
    """rename changes the name, tells the others, keeps the member findable."""
    room = ChatRoom(capacity=3)
    a, b = Member("a"), Member("b")
    room.join(a)
    room.join(b)
    a.received.clear()
    b.received.clear()
    assert room.rename(a, "A2") == "a"
    assert a.name == "A2"
    assert a in room
    assert b.received == [b"* a is now known as A2\r\n"]
    assert room.rename(a, "a2") == "A2"  # a change of case of one's own name
    with pytest.raises(NameRejected):
        room.rename(a, "B")
    room.leave(a)
    assert a not in room
    room.leave(a)  # leaving twice is harmless
    assert room.members() == [b]


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

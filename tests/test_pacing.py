"""
The sender pays: OutputPressure on a Clock, and sessions held by their
room's.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.task import Clock

from sockserve.chat.pacing import OutputPressure
from sockserve.chat.service import ChatService
from sockserve.chat.session import ChatSession
from tests.test_session import FakeConnection, chat, session


class Member:
    """Something behind, with a connection holding C{unsent} bytes."""

    def __init__(self, unsent: int | None = 100_000) -> None:
        self.left = unsent

    def unsent(self) -> int | None:
        return self.left


def released(deferred) -> bool:
    return bool(deferred.called)


def test_nobody_behind_holds_nobody() -> None:
    """With every connection keeping up, no sender waits (and no timer
    runs)."""
    clock = Clock()
    pressure = OutputPressure(clock)
    assert not pressure.holdsBack(object())
    assert clock.getDelayedCalls() == []


def test_a_sender_waits_while_a_reader_drains() -> None:
    """A sender is held while another member is behind and its connection
    keeps sending; it goes on when that member has caught up."""
    clock = Clock()
    pressure = OutputPressure(clock)
    reader, sender = Member(), object()
    pressure.fellBehind(reader, reader.unsent)
    assert pressure.holdsBack(sender)
    assert not pressure.holdsBack(reader)  # nobody waits for itself
    held = pressure.hold(sender)
    for _ in range(20):  # five seconds of steady progress
        reader.left = (reader.left or 0) - 4000
        clock.advance(0.25)
        assert not released(held)
    pressure.caughtUp(reader)
    assert released(held)
    assert clock.getDelayedCalls() == []


def test_a_reader_that_stopped_is_not_waited_for() -> None:
    """A member whose connection makes no progress for `patience` seconds
    holds nobody back any more."""
    clock = Clock()
    pressure = OutputPressure(clock, recheck=0.25, patience=1.0)
    stuck, sender = Member(), object()
    pressure.fellBehind(stuck, stuck.unsent)
    held = pressure.hold(sender)
    clock.advance(0.75)
    assert not released(held)
    clock.advance(0.5)
    assert released(held)
    assert not pressure.holdsBack(sender)
    pressure.forget(stuck)
    assert clock.getDelayedCalls() == []


def test_a_connection_that_cannot_tell_gets_patience_only() -> None:
    """A member whose connection cannot say what it holds is waited for
    `patience` seconds from when it fell behind, no longer."""
    clock = Clock()
    pressure = OutputPressure(clock, patience=1.0)
    unknown, sender = Member(None), object()
    pressure.fellBehind(unknown, unknown.unsent)
    held = pressure.hold(sender)
    clock.advance(1.25)
    assert released(held)
    pressure.forget(unknown)


def test_a_departure_releases() -> None:
    """A member that leaves while behind no longer holds anyone; a held
    sender that leaves is released (its Deferred fires)."""
    clock = Clock()
    pressure = OutputPressure(clock)
    reader, sender, other = Member(), object(), object()
    pressure.fellBehind(reader, reader.unsent)
    held = pressure.hold(sender)
    otherHeld = pressure.hold(other)
    pressure.forget(other)
    assert released(otherHeld)
    assert not released(held)
    pressure.forget(reader)
    assert released(held)
    assert clock.getDelayedCalls() == []


Join = Callable[..., tuple[ChatSession, FakeConnection]]


def room(clock: Clock, maxPending: int = 1_000_000) -> tuple[ChatService, Join]:
    """A chat service whose rooms each have their OutputPressure, and how
    to bring members in (guest1, guest2, ... in order)."""
    service = chat(clock=clock)

    def join(peer: str, multiRoom: bool = False) -> tuple[ChatSession, FakeConnection]:
        member, connection = session(
            service, peer, multiRoom=multiRoom, maxPending=maxPending
        )
        connection.take()
        return member, connection

    return service, join


def pressureOf(member: ChatSession) -> OutputPressure:
    """The pressure of the member's current room."""
    assert member.current is not None
    assert member.current.pressure is not None
    return member.current.pressure


def bulk(word: bytes) -> bytes:
    """A read as a flood brings it: many lines, over 4 KiB."""
    return b"".join(b"%s %d\n" % (word, n) for n in range(1000))


def test_a_flood_waits_for_readers_and_loses_nothing() -> None:
    """A sender whose bulk reads outrun a reader is held (its connection
    paused), a slice at a time, once the reader is far behind and while it
    drains; then it goes on: the reader is never dropped, and every line
    arrives, in order. A line typed by someone else meanwhile is not held."""
    clock = Clock()
    _, join = room(clock, maxPending=80_000)  # far behind past 10,000 bytes
    flooder, flooderOut = join("f:1")
    reader, readerOut = join("r:2")
    typist, typistOut = join("t:3")
    flooder.linesReceived(bulk(b"one"))
    reader.pauseOutput()  # its connection is full
    readerOut.held = 50_000
    flooder.linesReceived(bulk(b"two"))  # leaves the reader far behind
    flooder.linesReceived(bulk(b"three"))
    assert flooderOut.paused
    typist.linesReceived(b"a person's line\n")
    assert not typistOut.paused
    readerOut.held = 10_000
    clock.advance(0.25)
    assert flooderOut.paused
    reader.resumeOutput()  # drained
    assert not flooderOut.paused
    assert not readerOut.aborted
    lines = readerOut.take().split(b"\r\n")
    flood = [line for line in lines if line.startswith(b"<guest1> ")]
    assert flood == [
        b"<guest1> %s %d" % (word, n)
        for word in (b"one", b"two", b"three")
        for n in range(1000)
    ]
    assert b"<guest3> a person's line" in lines


def test_senders_released_together_may_leave() -> None:
    """Two senders held for the same reader are released together, even
    when the first one's held lines make it leave."""
    clock = Clock()
    service, join = room(clock, maxPending=10_000_000)
    first, firstOut = join("a:1")
    second, secondOut = join("b:2")
    reader, readerOut = join("r:3")
    reader.pauseOutput()
    readerOut.held = 50_000
    pressureOf(reader).fellBehind(reader, readerOut.unsent)
    first.linesReceived(bulk(b"x") + b"/quit\n")
    second.linesReceived(bulk(b"y"))
    assert firstOut.paused
    assert secondOut.paused
    reader.resumeOutput()
    assert firstOut.closed
    assert not secondOut.paused
    chatRoom = service.room("default")
    assert chatRoom is not None
    assert chatRoom.names() == ["guest2", "guest3"]
    assert clock.getDelayedCalls() == []


def test_a_reader_that_stopped_is_dropped_and_the_room_goes_on() -> None:
    """A member that stopped reading holds a bulk sender only `patience`
    seconds; then its queue fills and it is dropped, and the others get
    everything."""
    clock = Clock()
    _, join = room(clock, maxPending=80_000)
    sender, senderOut = join("s:1")
    stuck, stuckOut = join("x:2")
    _, otherOut = join("o:3")
    stuckOut.held = 80_000
    stuck.pauseOutput()
    sender.linesReceived(bulk(b"a"))  # leaves it far behind
    sender.linesReceived(bulk(b"b"))
    assert senderOut.paused
    clock.advance(1.25)
    assert not senderOut.paused
    for word in (b"c", b"d", b"e", b"f", b"g"):
        sender.linesReceived(bulk(word))
    assert stuckOut.aborted
    assert otherOut.take().count(b"<guest1> ") == 7000
    assert clock.getDelayedCalls() == []


def test_a_flood_of_small_reads_is_held_too() -> None:
    """Small reads that add up to more than a person types are a flood:
    once a reader is far behind, the sender is held after a burst, while a
    person's line still goes through."""
    clock = Clock()
    _, join = room(clock, maxPending=10_000_000)
    flooder, flooderOut = join("f:1")
    reader, readerOut = join("r:2")
    typist, typistOut = join("t:3")
    reader.pauseOutput()
    readerOut.held = 50_000
    pressureOf(reader).fellBehind(reader, readerOut.unsent)
    for n in range(400):  # 100-byte reads: 40,000 bytes at once
        flooder.linesReceived(b"%099d\n" % n)
        if flooderOut.paused:
            break
    assert flooderOut.paused
    assert 16_000 <= n * 100 <= 20_000
    typist.linesReceived(b"a person's line\n")
    assert not typistOut.paused
    reader.resumeOutput()
    assert not flooderOut.paused


def test_a_reader_behind_holds_the_senders_of_its_own_rooms_only() -> None:
    """Each room has its own pressure: a reader far behind in one room holds
    the bulk senders of that room, not a flood in another room, whose
    readers keep up."""
    clock = Clock()
    _, join = room(clock, maxPending=80_000)  # far behind past 10,000 bytes
    flooder, flooderOut = join("f:1")
    reader, readerOut = join("r:2")
    elsewhere, elsewhereOut = join("e:3")
    other, otherOut = join("o:4")
    elsewhere.linesReceived(b"/join lab\n")
    other.linesReceived(b"/join lab\n")
    reader.pauseOutput()
    readerOut.held = 50_000
    flooder.linesReceived(bulk(b"one"))  # leaves the reader far behind
    flooder.linesReceived(bulk(b"two"))
    assert flooderOut.paused
    otherOut.take()
    elsewhere.linesReceived(bulk(b"lab"))
    elsewhere.linesReceived(bulk(b"more"))
    assert not elsewhereOut.paused
    assert otherOut.take().count(b"<guest3> ") == 2000
    reader.resumeOutput()
    assert not flooderOut.paused
    assert not readerOut.aborted
    assert clock.getDelayedCalls() == []


def test_a_reader_behind_in_two_rooms_holds_the_senders_of_both() -> None:
    """A member in several rooms that is far behind is waited for by the
    bulk senders of each of its rooms, until it has caught up."""
    clock = Clock()
    _, join = room(clock, maxPending=80_000)
    reader, readerOut = join("r:1", multiRoom=True)
    reader.linesReceived(b"/join lab\n")
    here, hereOut = join("h:2")
    there, thereOut = join("t:3")
    there.linesReceived(b"/join lab\n")
    reader.pauseOutput()
    readerOut.held = 50_000
    here.linesReceived(bulk(b"one"))  # leaves the reader far behind
    here.linesReceived(bulk(b"two"))
    assert hereOut.paused
    there.linesReceived(bulk(b"lab"))
    there.linesReceived(bulk(b"more"))
    assert thereOut.paused
    reader.resumeOutput()
    assert not hereOut.paused
    assert not thereOut.paused
    assert not readerOut.aborted
    assert clock.getDelayedCalls() == []


def test_a_reader_that_leaves_the_room_holds_its_senders_no_more() -> None:
    """A reader far behind that goes to another room (a line client's
    /join) no longer holds the senders of the room it left: they go on at
    once."""
    clock = Clock()
    _, join = room(clock, maxPending=10_000_000)
    sender, senderOut = join("s:1")
    reader, readerOut = join("r:2")
    pressureOf(reader).fellBehind(reader, readerOut.unsent)
    readerOut.held = 50_000
    sender.linesReceived(bulk(b"x"))
    assert senderOut.paused
    reader.linesReceived(b"/join lab\n")
    assert not senderOut.paused
    assert clock.getDelayedCalls() == []

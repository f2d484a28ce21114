"""
The rules against floods: budgets, churn, and sessions that follow them (in
the rooms of a chat service), on a Clock.
"""

from __future__ import annotations

import pytest
from twisted.internet.task import Clock

from sockserve.chat.policy import Budget, ChurnWatch
from tests.test_session import chat, session


def test_budget_lends_then_waits() -> None:
    """A budget pays for a burst at once; beyond it, the wait is what it
    takes to pay the debt back at its rate."""
    budget = Budget(burst=10)
    assert [budget.spend(0.0, 1, rate=2.0, burst=10) for _ in range(10)] == [0.0] * 10
    assert budget.spend(0.0, 1, rate=2.0, burst=10) == pytest.approx(0.5)
    assert budget.spend(0.25, 1, rate=2.0, burst=10) == pytest.approx(0.75)
    assert budget.spend(100.0, 1, rate=2.0, burst=10) == 0.0  # refilled, capped


def test_churn_is_counted_per_address() -> None:
    """The eleventh join from one address within ten seconds is quiet;
    other addresses, and the same one later, are not."""
    clock = Clock()
    churn = ChurnWatch(clock, limit=10, window=10.0)
    assert [churn.joining("10.0.0.7") for _ in range(10)] == [False] * 10
    assert churn.joining("10.0.0.7")
    assert not churn.joining("10.0.0.8")
    assert not churn.joining(None)  # a UNIX socket has no address
    clock.advance(10.5)
    assert not churn.joining("10.0.0.7")


def test_an_ipv6_network_counts_as_one_address() -> None:
    """Addresses of one IPv6 /64 count together: rotating through them
    does not escape the churn rule."""
    clock = Clock()
    churn = ChurnWatch(clock, limit=3, window=10.0)
    assert [churn.joining(f"2001:db8::{n:x}") for n in range(1, 5)] == [
        False,
        False,
        False,
        True,
    ]
    assert not churn.joining("2001:db8:0:1::1")  # another /64


def test_an_address_that_churns_is_not_announced() -> None:
    """Joining and leaving in a loop from one address does not become a
    flood of notices to the room: past the limit, its comings and goings
    are quiet."""
    clock = Clock()
    service = chat(clock=clock)
    churn = ChurnWatch(clock, limit=3, window=10.0)
    _, watcherOut = session(service, "10.0.0.1:1", churn=churn)
    watcherOut.take()
    for port in range(2, 12):
        churner, _ = session(service, f"10.0.0.7:{port}", churn=churn)
        churner.connectionLost()
    notices = watcherOut.take()
    assert notices.count(b" joined\r\n") == 3
    assert notices.count(b" left\r\n") == 3


def test_commands_beyond_the_burst_wait() -> None:
    """A burst of commands runs at once up to its limit; the rest wait at the
    command rate, input paused meanwhile: nothing is lost."""
    clock = Clock()
    service = chat(clock=clock)
    alice, aliceOut = session(service, "a:1", commandRate=2.0, commandBurst=5)
    aliceOut.take()
    alice.linesReceived(b"/who\n" * 8)
    assert aliceOut.take().count(b" here: ") == 6  # the burst, and one on debt
    assert aliceOut.paused
    clock.advance(0.5)
    assert aliceOut.take().count(b" here: ") == 1
    clock.advance(0.5)
    assert aliceOut.take().count(b" here: ") == 1
    clock.advance(0.5)
    assert not aliceOut.paused
    assert clock.getDelayedCalls() == []


def test_a_held_member_is_told_once_and_counted() -> None:
    """A member whose commands go beyond the command rate is told, once,
    that its input is held and why; it is counted as held while it waits;
    once its budget is back, being held again is told again."""
    from sockserve.stats import ServerStatistics

    clock = Clock()
    stats = ServerStatistics()
    service = chat(clock=clock)
    alice, aliceOut = session(
        service, "a:1", commandRate=2.0, commandBurst=5, stats=stats
    )
    aliceOut.take()
    told = (
        b"* your input is held: commands beyond 5 at once run at 2 a second; "
        b"the rest wait their turn\r\n"
    )
    alice.linesReceived(b"/who\n" * 8)
    assert aliceOut.take().count(told) == 1
    assert stats.held == 1
    assert stats.holds == {"commands": 1}
    clock.advance(0.5)
    alice.linesReceived(b"/who\n" * 3)
    clock.advance(0.5)
    assert told not in aliceOut.take()
    for _ in range(20):
        clock.advance(0.5)
    assert stats.held == 0
    assert not aliceOut.paused
    alice.linesReceived(b"/who\n" * 8)
    assert aliceOut.take().count(told) == 1
    for _ in range(20):
        clock.advance(0.5)
    assert stats.held == 0
    assert clock.getDelayedCalls() == []


def test_a_flooder_is_told_once() -> None:
    """A member held for the flood limit is told so, once."""
    clock = Clock()
    service = chat(clock=clock)
    flooder, flooderOut = session(service, "f:1", floodLimit=1000)
    session(service, "r:1")
    flooderOut.take()
    line = b"x" * 300 + b"\n"
    flooder.linesReceived(line * 5)
    flooder.linesReceived(line * 5)
    said = flooderOut.take()
    assert said.count(b"* your input is held: ") == 1, said
    assert (
        b"* your input is held: what you say may cause 1000 bytes of output a "
        b"second (its size times the members receiving it); the rest waits "
        b"its turn\r\n"
    ) in said
    for _ in range(20):
        clock.advance(0.5)
    assert clock.getDelayedCalls() == []


def test_name_changes_are_limited() -> None:
    """Five changes of name a minute; the sixth is refused, and the room is
    not told; after the minute, names may change again."""
    clock = Clock()
    service = chat(clock=clock)
    alice, aliceOut = session(service, "a:1", renames=5, renameWindow=60.0)
    _, bobOut = session(service, "b:2", renames=5, renameWindow=60.0)
    aliceOut.take(), bobOut.take()
    for n in range(5):
        alice.linesReceived(b"/nick al%d\n" % n)
    assert bobOut.take().count(b"is now known as") == 5
    clock.advance(10)
    alice.linesReceived(b"/nick again\n")
    assert aliceOut.take().endswith(
        b"ERROR too many changes of name; try again in 50 seconds\r\n"
    )
    assert bobOut.take() == b""
    clock.advance(51)
    alice.linesReceived(b"/nick again\n")
    assert bobOut.take() == b"* al4 is now known as again\r\n"


def test_a_flood_beyond_the_limit_waits() -> None:
    """A member whose messages would make the server send more than the flood
    limit a second is held: its later input waits until the debt is paid,
    then goes out, all of it."""
    clock = Clock()
    service = chat(clock=clock)
    flooder, flooderOut = session(service, "f:1", floodLimit=1000)
    readers = [session(service, f"r:{n}")[1] for n in range(4)]
    for reader in readers:
        reader.take()
    line = b"x" * 87 + b"\n"  # about 100 bytes to each of 4 readers
    flooder.linesReceived(line * 2)  # 800 bytes: within the second's budget
    assert not flooderOut.paused
    flooder.linesReceived(line * 2)  # 1600: 600 in debt
    assert flooderOut.paused
    flooder.linesReceived(line)  # read before the pause took: held
    assert readers[0].take().count(b"\r\n") == 4
    clock.advance(0.6)
    assert readers[0].take().count(b"\r\n") == 1
    assert flooderOut.paused  # that line cost another 400
    clock.advance(0.4)
    assert not flooderOut.paused
    assert clock.getDelayedCalls() == []


def test_leaving_while_held_leaves_no_timer() -> None:
    """A member that goes while its input waits leaves nothing scheduled."""
    clock = Clock()
    service = chat(clock=clock)
    flooder, _ = session(service, "f:1", floodLimit=100)
    session(service, "r:1")
    flooder.linesReceived(b"y" * 500 + b"\n")
    assert clock.getDelayedCalls() != []
    flooder.connectionLost()
    assert clock.getDelayedCalls() == []


def test_the_flood_limit_is_counted_per_room() -> None:
    """A member in several rooms may cause the flood limit's worth of
    output in each: what it says in one room is not held for what it said
    in another; within one room, the limit holds as ever."""
    clock = Clock()
    service = chat(clock=clock)
    flooder, flooderOut = session(service, "f:1", multiRoom=True, floodLimit=1000)
    flooder.linesReceived(b"/join lab\n")
    readers = [session(service, f"r:{n}", multiRoom=True)[0] for n in range(4)]
    for reader in readers:
        reader.linesReceived(b"/join lab\n")
    line = b"x" * 87  # about 100 bytes to each of 4 readers
    flooder.linesReceived(b"/say default %s\n" % line * 2)
    assert not flooderOut.paused
    flooder.linesReceived(b"/say lab %s\n" % line * 2)
    assert not flooderOut.paused
    flooder.linesReceived(b"/say lab %s\n" % line * 2)
    assert flooderOut.paused
    clock.advance(1)
    assert not flooderOut.paused
    assert clock.getDelayedCalls() == []


def test_private_messages_count_against_the_flood_limit() -> None:
    """Private messages cause output too: beyond the flood limit a second
    of them, the sender's input waits, and nothing is lost."""
    clock = Clock()
    service = chat(clock=clock)
    sender, senderOut = session(service, "s:1", floodLimit=500, commandBurst=100)
    _, readerOut = session(service, "r:2")
    readerOut.take()
    message = b"/msg guest2 " + b"x" * 89 + b"\n"  # 100 bytes each
    sender.linesReceived(message * 5)
    assert not senderOut.paused
    sender.linesReceived(message * 2)
    assert senderOut.paused
    clock.advance(1)
    assert not senderOut.paused
    assert readerOut.take().count(b"*guest1* ") == 7
    assert clock.getDelayedCalls() == []


def test_a_member_that_hops_between_rooms_is_not_announced_each_time() -> None:
    """Joining and leaving a room again and again (/join, /part in a loop)
    does not become a flood of notices to the rooms either: as for an
    address that connects again and again, past the churn limit its comings
    and goings are quiet (and summarised)."""
    clock = Clock()
    service = chat(clock=clock)
    churn = ChurnWatch(clock, limit=3, window=10.0)
    hopper, _ = session(service, "10.0.0.7:1", churn=churn)
    _, watcherOut = session(service, "10.0.0.1:2", churn=churn)
    watcherOut.take()
    hopper.linesReceived(b"/join lab\n/part\n" * 10)  # the command burst
    notices = watcherOut.take()
    assert notices.count(b"* guest1 left\r\n") <= 3, notices
    assert notices.count(b"* guest1 joined\r\n") <= 3, notices


def test_one_member_cannot_take_every_room_there_may_be() -> None:
    """One client's behaviour costs that client only: a member that may be
    in several rooms at once (a page) and makes room after room is stopped
    before it has made every room --max-rooms allows, so that somebody else
    can still make one."""
    clock = Clock()
    service = chat(clock=clock, maxRooms=5)
    hoarder, hoarderOut = session(service, "10.0.0.7:1", multiRoom=True)
    hoarder.linesReceived(b"".join(b"/join r%d\n" % n for n in range(5)))
    clock.advance(10)
    other, otherOut = session(service, "10.0.0.8:2")
    otherOut.take()
    other.linesReceived(b"/join mine\n")
    assert otherOut.take() == b"* you are now in #mine; nobody else here\r\n", (
        hoarderOut.take()
    )


def test_a_member_keeps_no_budget_for_rooms_it_left_long_ago() -> None:
    """What a member keeps to pace it is bounded: the flood budget of a room
    it left, once paid back in full, is forgotten, so that a member going
    from room to room for days does not make the server keep one budget for
    every room it ever spoke in."""
    clock = Clock()
    service = chat(clock=clock)
    reader, _ = session(service, "10.0.0.1:1", multiRoom=True, commandBurst=1000)
    hopper, _ = session(service, "10.0.0.2:2", commandBurst=1000)
    reader.linesReceived(b"".join(b"/join r%d\n" % n for n in range(50)))
    for n in range(50):
        hopper.linesReceived(b"/join r%d\nhello\n" % n)
    clock.advance(3600)
    hopper.linesReceived(b"/part\nback in the default room\n")
    kept = hopper._budgets or {}  # what the session keeps, by room
    assert len(kept) <= 2, sorted(kept)

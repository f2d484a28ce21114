"""
The input queue of a chat session: work in order, waiting for what a piece
of work returns, and nothing kept once it is done.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IPushProducer
from zope.interface import implementer

from sockserve._pausing import InputPauser
from sockserve.chat.input import InputQueue


def noting(done: list[str], what: str) -> Callable[[], None]:
    """Work that notes C{what} in C{done}."""

    def work() -> None:
        done.append(what)

    return work


class Switch:
    """Notes the pauses and resumes of a connection's input."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def pauseInput(self) -> None:
        self.calls.append("pause")

    def resumeInput(self) -> None:
        self.calls.append("resume")


def test_work_runs_in_order_and_waits_for_what_it_returns() -> None:
    """Work runs at once while nothing waits; work that returns a Deferred
    holds what comes after it (the input paused) until it fires."""
    switch = Switch()
    queue = InputQueue(switch)
    done: list[str] = []
    held: Deferred[None] = Deferred()

    def first() -> Deferred[None]:
        done.append("first")
        return held

    queue.add(first)
    queue.add(noting(done, "second"))
    assert done == ["first"]
    assert len(queue) == 1
    assert switch.calls == ["pause"]
    held.callback(None)
    assert done == ["first", "second"]
    assert switch.calls == ["pause", "resume"]
    assert len(queue) == 0


def test_next_goes_before_what_waits() -> None:
    """A piece of work that must wait puts the rest of its input first."""
    queue = InputQueue(Switch())
    done: list[str] = []
    held: Deferred[None] = Deferred()

    def first() -> Deferred[None]:
        done.append("first")
        queue.next(noting(done, "rest of first"))
        return held

    queue.add(first)
    queue.add(noting(done, "second"))
    held.callback(None)
    assert done == ["first", "rest of first", "second"]


def test_an_idle_queue_keeps_nothing() -> None:
    """Most members' input never waits: a queue that is empty again holds
    no container of work (an empty deque costs 760 bytes a member)."""
    queue = InputQueue(Switch())
    assert queue._work is None
    held: Deferred[None] = Deferred()
    queue.add(lambda: held)
    queue.add(lambda: None)
    assert queue._work is not None
    held.callback(None)
    assert queue._work is None


def test_closed_queue_takes_nothing() -> None:
    """Once closed, nothing more is handled, and what waited is dropped."""
    queue = InputQueue(Switch())
    done: list[str] = []
    held: Deferred[None] = Deferred()
    queue.add(lambda: held)
    queue.add(noting(done, "late"))
    queue.close()
    queue.add(noting(done, "later"))
    held.callback(None)
    assert done == []
    assert len(queue) == 0


@implementer(IPushProducer)
class Producer:
    """Notes the pauses and resumes asked of a transport."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def pauseProducing(self) -> None:
        self.calls.append("pause")

    def resumeProducing(self) -> None:
        self.calls.append("resume")

    def stopProducing(self) -> None:
        self.calls.append("stop")


def test_a_transport_is_read_again_once_no_reason_is_left() -> None:
    """Each reason pauses and resumes for itself; the transport is paused
    once, and read again only when the last reason goes, unless closing."""
    transport = Producer()
    closing = [False]
    pauser = InputPauser(transport, lambda: closing[0])
    pauser.resume("never paused")
    pauser.pause("flood")
    pauser.pause("bus")
    assert "flood" in pauser
    assert "bus" in pauser
    pauser.resume("flood")
    assert transport.calls == ["pause"]
    pauser.resume("bus")
    assert transport.calls == ["pause", "resume"]
    pauser.pause("flood")
    closing[0] = True
    pauser.resume("flood")
    assert transport.calls == ["pause", "resume", "pause"]
    assert "flood" not in pauser


def test_a_read_transport_keeps_no_set_of_its_own() -> None:
    """A transport with no reason not to be read shares one empty set with
    every other (an empty set a member costs 216 bytes)."""
    first = InputPauser(Producer(), lambda: False)
    second = InputPauser(Producer(), lambda: False)
    assert first.reasons is second.reasons
    first.pause("flood")
    first.resume("flood")
    assert first.reasons is second.reasons
    assert not first.reasons

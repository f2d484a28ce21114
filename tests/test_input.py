"""
The input queue of a chat session: work in order, waiting for what a piece
of work returns, and nothing kept once it is done.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.defer import Deferred

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

    def pause(self) -> None:
        self.calls.append("pause")

    def resume(self) -> None:
        self.calls.append("resume")


def test_work_runs_in_order_and_waits_for_what_it_returns() -> None:
    """Work runs at once while nothing waits; work that returns a Deferred
    holds what comes after it (the input paused) until it fires."""
    switch = Switch()
    queue = InputQueue(switch.pause, switch.resume)
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
    queue = InputQueue(lambda: None, lambda: None)
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
    queue = InputQueue(lambda: None, lambda: None)
    assert queue._work is None
    held: Deferred[None] = Deferred()
    queue.add(lambda: held)
    queue.add(lambda: None)
    assert queue._work is not None
    held.callback(None)
    assert queue._work is None


def test_closed_queue_takes_nothing() -> None:
    """Once closed, nothing more is handled, and what waited is dropped."""
    queue = InputQueue(lambda: None, lambda: None)
    done: list[str] = []
    held: Deferred[None] = Deferred()
    queue.add(lambda: held)
    queue.add(noting(done, "late"))
    queue.close()
    queue.add(noting(done, "later"))
    held.callback(None)
    assert done == []
    assert len(queue) == 0

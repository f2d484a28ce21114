"""
Deadlines of one length for many keys, with one timer.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.task import Clock

from sockserve._deadlines import Deadlines


def started(seconds: float = 10.0) -> tuple[Clock, Deadlines[str], list[str]]:
    clock = Clock()
    expired: list[str] = []
    return clock, Deadlines(clock, seconds, expired.append), expired


def test_expiry_in_order_with_one_timer() -> None:
    """Keys expire C{seconds} after they were set, in that order, and one
    timer serves them all."""
    clock, deadlines, expired = started()
    deadlines.set("a")
    clock.advance(3)
    deadlines.set("b")
    deadlines.set("c")
    assert len(clock.getDelayedCalls()) == 1
    clock.advance(6.9)
    assert expired == []
    clock.advance(0.1)
    assert expired == ["a"]
    clock.advance(2.9)
    assert expired == ["a"]
    clock.advance(0.1)
    assert expired == ["a", "b", "c"]
    assert len(deadlines) == 0
    assert clock.getDelayedCalls() == []


def test_set_again_restarts() -> None:
    """Setting a running deadline starts it over (an idle timer's reset)."""
    clock, deadlines, expired = started()
    deadlines.set("a")
    deadlines.set("b")
    clock.advance(8)
    deadlines.set("a")
    clock.advance(2)
    assert expired == ["b"]
    clock.advance(7.9)
    assert expired == ["b"]
    clock.advance(0.1)
    assert expired == ["b", "a"]


def test_discard() -> None:
    """A discarded deadline never expires; the timer goes with the last one;
    discarding an unknown key is harmless."""
    clock, deadlines, expired = started()
    deadlines.set("a")
    deadlines.set("b")
    deadlines.discard("a")
    assert "a" not in deadlines
    assert "b" in deadlines
    assert len(clock.getDelayedCalls()) == 1
    deadlines.discard("b")
    deadlines.discard("never set")
    assert clock.getDelayedCalls() == []
    clock.advance(20)
    assert expired == []


def test_expiry_may_set_deadlines() -> None:
    """What an expiry does to the deadlines (setting one) leaves one timer."""
    clock = Clock()
    expired: list[str] = []

    def expire(key: str) -> None:
        expired.append(key)
        if key == "a":
            deadlines.set("again")

    deadlines: Deadlines[str] = Deadlines(clock, 5, expire)
    deadlines.set("a")
    clock.advance(1)
    deadlines.set("b")
    clock.advance(4)
    assert expired == ["a"]
    assert len(clock.getDelayedCalls()) == 1
    clock.advance(1)
    assert expired == ["a", "b"]
    clock.advance(4)
    assert expired == ["a", "b", "again"]
    assert clock.getDelayedCalls() == []


def test_an_expiry_that_raises_leaves_the_others_timed() -> None:
    """A failing expiry does not strand the deadlines after it."""
    clock = Clock()
    expired: list[str] = []

    def expire(key: str) -> None:
        if key == "a":
            raise RuntimeError("boom")
        expired.append(key)

    deadlines: Deadlines[str] = Deadlines(clock, 5, expire)
    deadlines.set("a")
    clock.advance(1)
    deadlines.set("b")
    with pytest.raises(RuntimeError):
        clock.advance(4)
    assert len(clock.getDelayedCalls()) == 1
    clock.advance(1)
    assert expired == ["b"]


def test_clock_set_back() -> None:
    """A deadline set after the clock went back is not stuck behind older
    ones (for an hour, here); those keep at least the time they had left
    (8 s here), and at most what they had when last set (10 s)."""
    clock, deadlines, expired = started(10)
    clock.advance(1000)
    deadlines.set("old")
    clock.advance(2)
    clock.rightNow -= 3600
    deadlines.set("new")
    clock.advance(9.9)
    assert expired == []
    clock.advance(0.1)
    assert expired == ["old", "new"]
    assert clock.getDelayedCalls() == []


def test_length_must_be_positive() -> None:
    with pytest.raises(ValueError, match="in the future"):
        Deadlines(Clock(), 0, print)


operations = st.lists(
    st.one_of(
        st.tuples(st.just("set"), st.sampled_from("abcde")),
        st.tuples(st.just("discard"), st.sampled_from("abcde")),
        st.tuples(st.just("advance"), st.sampled_from([0.5, 1.0, 2.5, 4.0])),
    ),
    max_size=40,
)


@given(operations)
def test_same_as_a_timer_per_key(ops: list[tuple[str, object]]) -> None:
    """Any sequence of sets, discards and waits expires the same keys at the
    same times as a separate timer per key would."""
    clock, deadlines, expired = started(3.0)
    due: dict[str, float] = {}
    expected: list[str] = []
    for op, arg in ops:
        if op == "set":
            assert isinstance(arg, str)
            due[arg] = clock.seconds() + 3.0
            deadlines.set(arg)
        elif op == "discard":
            assert isinstance(arg, str)
            due.pop(arg, None)
            deadlines.discard(arg)
        else:
            assert isinstance(arg, float)
            clock.advance(arg)
            now = clock.seconds()
            for key, when in sorted(due.items(), key=lambda item: item[1]):
                if when <= now:
                    expected.append(key)
                    del due[key]
        assert sorted(expired) == sorted(expected)
        assert len(clock.getDelayedCalls()) == (1 if due else 0)

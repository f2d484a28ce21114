"""
Deadlines of one length for many connections, kept with a single timer.

A timer per connection (C{callLater}, or L{TimeoutMixin}) costs a
L{DelayedCall} object, a heap insertion and a cancellation for every
connection, although most connections meet their deadline. Every deadline of
one L{Deadlines} is the same number of seconds after it was set, so they fall
due in the order they were set: an ordered dict holds them, and one timer,
for the earliest, serves them all. Setting, resetting and dropping a deadline
are dict operations.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from twisted.internet.interfaces import IDelayedCall, IReactorTime

K = TypeVar("K", bound=Hashable)


class Deadlines(Generic[K]):
    """
    Call C{expired(key)} for every key whose deadline, C{seconds} after it was
    last L{set}, passes before it is L{discard}ed.

    @ivar seconds: the length of every deadline.
    """

    def __init__(
        self, clock: IReactorTime, seconds: float, expired: Callable[[K], object]
    ) -> None:
        if seconds <= 0:
            raise ValueError(f"a deadline must be in the future, not {seconds}")
        self.seconds = seconds
        self._clock = clock
        self._expired = expired
        self._due: OrderedDict[K, float] = OrderedDict()
        self._timer: IDelayedCall | None = None
        self._expiring = False

    def __len__(self) -> int:
        return len(self._due)

    def __contains__(self, key: object) -> bool:
        return key in self._due

    def set(self, key: K) -> None:
        """
        Start C{key}'s deadline, or restart it if it is running.
        """
        due = self._due
        when = self._clock.seconds() + self.seconds
        due.pop(key, None)
        latest = next(reversed(due.values()), when)
        due[key] = when
        if when < latest:
            self._clockWentBack(latest - when)
        elif self._timer is None and not self._expiring:
            self._timer = self._clock.callLater(self.seconds, self._expire)

    def discard(self, key: K) -> None:
        """
        Drop C{key}'s deadline, if it has one. The timer goes with the last.
        """
        due = self._due
        if due.pop(key, None) is not None and not due and self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _clockWentBack(self, by: float) -> None:
        """
        A deadline set now falls before one set earlier: the clock was set
        back, by at least C{by} seconds. Move the earlier deadlines back as
        much, so that the order holds and they keep (at least) the time they
        had left, and time the timer by the earliest again.
        """
        due = self._due
        # All but the newest, which was set after the step and is right.
        for key in list(due)[:-1]:
            due[key] -= by
        self._schedule()

    def _schedule(self) -> None:
        """
        Time the timer by the earliest deadline, if there is one.
        """
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._due:
            first = next(iter(self._due.values()))
            delay = max(0.0, first - self._clock.seconds())
            self._timer = self._clock.callLater(delay, self._expire)

    def _expire(self) -> None:
        self._timer = None
        self._expiring = True
        try:
            now = self._clock.seconds()
            due = self._due
            while due:
                key, when = next(iter(due.items()))
                if when > now:
                    break
                del due[key]
                self._expired(key)
        finally:
            # Also after an expiry that raised: the others still have theirs.
            self._expiring = False
            self._schedule()

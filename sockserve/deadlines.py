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

    def __len__(self) -> int:
        return len(self._due)

    def __contains__(self, key: object) -> bool:
        return key in self._due

    def set(self, key: K) -> None:
        """
        Start C{key}'s deadline, or restart it if it is running.
        """
        due = self._due
        due[key] = self._clock.seconds() + self.seconds
        due.move_to_end(key)
        if self._timer is None:
            self._timer = self._clock.callLater(self.seconds, self._expire)

    def discard(self, key: K) -> None:
        """
        Drop C{key}'s deadline, if it has one. The timer goes with the last.
        """
        due = self._due
        if due.pop(key, None) is not None and not due and self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self) -> None:
        self._timer = None
        now = self._clock.seconds()
        due = self._due
        while due:
            key, when = next(iter(due.items()))
            if when > now:
                # An expiry may have set a deadline, and with it the timer.
                if self._timer is None:
                    self._timer = self._clock.callLater(when - now, self._expire)
                return
            del due[key]
            self._expired(key)

"""
A member's input, handled in the order it came, one piece at a time.

A piece of input may have to wait before the next is handled: a command the
room answers later (with a bus), a flooder's pause, a bulk sender held for
the readers that are behind. L{InputQueue} is the one mechanism for all of
them: each piece of work may return a L{Deferred}, and nothing after it runs
until that fires; meanwhile the connection stops reading (through its
C{pauseInput} and C{resumeInput}), so that TCP slows the client down rather
than the server buffering what it sends.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from twisted.internet.defer import CancelledError, Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

# A piece of input: it returns a Deferred to wait for, or None.
Work = Callable[[], "Deferred[None] | None"]


def settled(deferred: Deferred[Any]) -> bool:
    """
    Tell whether C{deferred} has settled: fired, and not waiting for
    another L{Deferred} a callback returned (its C{called} is true then,
    although its result is still to come).
    """
    done: list[object] = []

    def note(result: object) -> object:
        done.append(result)
        return result

    deferred.addBoth(note)
    return bool(done)


class InputSwitch(Protocol):
    """
    What stops and starts reading a member's input: its connection.
    """

    def pauseInput(self) -> None:
        """
        Stop reading.
        """

    def resumeInput(self) -> None:
        """
        Read again.
        """


class InputQueue:
    """
    Input waiting to be handled, in order.

    @ivar waiting: what the queue waits for before it goes on, or C{None}.
    @ivar closed: set once nothing more is handled.
    """

    log = Logger()

    __slots__ = ("_switch", "_work", "closed", "waiting")

    def __init__(self, switch: InputSwitch) -> None:
        # The switch itself, not its two bound methods: 130 bytes a member.
        self._switch = switch
        # Made when work has to wait, dropped once it is done: most members'
        # input never waits, and an empty deque costs 760 bytes.
        self._work: deque[Work] | None = None
        self.waiting: Deferred[None] | None = None
        self.closed = False

    def __len__(self) -> int:
        return 0 if self._work is None else len(self._work)

    def add(self, work: Work) -> None:
        """
        Handle C{work} after everything before it: at once if nothing
        waits.
        """
        if self.closed:
            return
        if self._work is None:
            self._work = deque()
        self._work.append(work)
        if self.waiting is None and len(self._work) == 1:
            self._drain()

    def next(self, work: Work) -> None:
        """
        Handle C{work} before anything else waiting (the rest of a piece of
        input that had to wait); to be called by a piece of work that is
        about to return what it waits for.
        """
        if not self.closed:
            if self._work is None:
                self._work = deque()
            self._work.appendleft(work)

    def wait(self, until: Deferred[None]) -> None:
        """
        Handle nothing more until C{until} fires (at once, if it has).
        """
        if self.closed or settled(until):
            return
        if self.waiting is None:
            self._switch.pauseInput()
        self.waiting = until
        until.addBoth(self._done, until)

    def _done(self, result: object, until: Deferred[None]) -> None:
        if isinstance(result, Failure) and not result.check(CancelledError):
            self.log.failure("Input could not be handled", result)
        if self.waiting is not until:
            return
        self.waiting = None
        if self.closed:
            return
        self._drain()
        if self.waiting is None and not self.closed:
            self._switch.resumeInput()

    def _drain(self) -> None:
        while self._work and self.waiting is None and not self.closed:
            work = self._work.popleft()
            until = work()
            if until is not None:
                self.wait(until)
        if not self._work:
            self._work = None

    def close(self) -> None:
        """
        Handle nothing more. What is waited for is left alone: it may be a
        request the service is still answering, which must settle (the
        caller cancels what it owns, such as its timers).
        """
        self.closed = True
        self._work = None
        self.waiting = None

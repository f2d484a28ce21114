"""
What a WebSocket client pays for the frames it sends: every front end on a
WebSocket (the JSON member and IRC over WebSocket) charges its client here.

A frame costs the server a microsecond or two to parse and the sender
nothing, so a flood of empty frames or pings would cost everyone on the
reactor. Past L{FRAME_RATE} frames a second (after a burst of
L{FRAME_BURST}), the sender's input waits for as long as it ran ahead: the
sender pays, and nobody else.
"""

from __future__ import annotations

from twisted.internet.interfaces import IDelayedCall, IReactorTime

from sockserve._pausing import InputPauser
from sockserve.chat.policy import Budget

FRAME_RATE = 20_000
"""Frames a second one client may send: far more than anyone types, far
fewer than a flood of empty frames or pings."""

FRAME_BURST = 40_000
"""Frames one client may send at once before it is paced."""

FRAMES_COUNTED = 32
"""Reads with fewer frames than this are not counted (the common case)."""

PAUSED_FOR = "frames"
"""The reason the client's input waits, for its L{InputPauser}."""


class FramePacer:
    """
    Charges one client for the frames it sends, and pauses its input (with
    its L{InputPauser}) for as long as it ran ahead of L{FRAME_RATE}.
    """

    __slots__ = ("_budget", "_clock", "_hold", "_pauser")

    def __init__(self, clock: IReactorTime, pauser: InputPauser) -> None:
        self._clock = clock
        self._pauser = pauser
        self._budget: Budget | None = None
        self._hold: IDelayedCall | None = None

    def charge(self, frames: int) -> None:
        """
        The client sent C{frames} frames in one read: past the rate, stop
        reading it until it has paid.
        """
        if frames < FRAMES_COUNTED:
            return
        if self._budget is None:
            self._budget = Budget(FRAME_BURST)
        wait = self._budget.spend(
            self._clock.seconds(), frames, FRAME_RATE, FRAME_BURST
        )
        if wait <= 0 or self._hold is not None:
            return
        self._pauser.pause(PAUSED_FOR)
        self._hold = self._clock.callLater(wait, self._paid)

    def _paid(self) -> None:
        self._hold = None
        self._pauser.resume(PAUSED_FOR)

    def stop(self) -> None:
        """
        The connection is gone: forget the pause's timer.
        """
        hold, self._hold = self._hold, None
        if hold is not None and hold.active():
            hold.cancel()


__all__ = ["FRAMES_COUNTED", "FRAME_BURST", "FRAME_RATE", "FramePacer"]

"""
Why a transport is not being read: one set of reasons per transport.

Several parts of a front end stop reading from a client for reasons of
their own (the session's input waits for the service, a WebSocket client
floods frames, ...). Each pauses and resumes for its own reason; the
transport is read again only once no reason is left, and never after the
connection started closing.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.interfaces import IPushProducer

# The reasons of a transport that is read: one for all (an empty set is
# 216 bytes, a member).
_NONE: frozenset[str] = frozenset()


class InputPauser:
    """
    The reasons one transport is not read.

    @ivar reasons: why it is not read now.
    """

    __slots__ = ("_closing", "_transport", "reasons")

    def __init__(self, transport: IPushProducer, closing: Callable[[], bool]) -> None:
        self._transport = transport
        self._closing = closing
        self.reasons: set[str] | frozenset[str] = _NONE

    def pause(self, reason: str) -> None:
        """
        Stop reading, for C{reason}.
        """
        if isinstance(self.reasons, set):
            self.reasons.add(reason)
        else:
            self._transport.pauseProducing()
            self.reasons = {reason}

    def resume(self, reason: str) -> None:
        """
        C{reason} holds no longer: read again, unless another does (or the
        connection is closing).
        """
        if reason not in self.reasons or not isinstance(self.reasons, set):
            return
        self.reasons.discard(reason)
        if not self.reasons:
            self.reasons = _NONE
            if not self._closing():
                self._transport.resumeProducing()

    def __contains__(self, reason: object) -> bool:
        return reason in self.reasons

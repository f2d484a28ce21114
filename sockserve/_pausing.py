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


class InputPauser:
    """
    The reasons one transport is not read.

    @ivar reasons: why it is not read now.
    """

    __slots__ = ("_closing", "_transport", "reasons")

    def __init__(self, transport: IPushProducer, closing: Callable[[], bool]) -> None:
        self._transport = transport
        self._closing = closing
        self.reasons: set[str] = set()

    def pause(self, reason: str) -> None:
        """
        Stop reading, for C{reason}.
        """
        if not self.reasons:
            self._transport.pauseProducing()
        self.reasons.add(reason)

    def resume(self, reason: str) -> None:
        """
        C{reason} holds no longer: read again, unless another does (or the
        connection is closing).
        """
        if reason not in self.reasons:
            return
        self.reasons.discard(reason)
        if not self.reasons and not self._closing():
            self._transport.resumeProducing()

    def __contains__(self, reason: object) -> bool:
        return reason in self.reasons

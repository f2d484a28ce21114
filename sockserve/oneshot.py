"""
The one-shot reply server: read one request, answer C{OK .. <request>}, close.
"""

from __future__ import annotations

from twisted.internet.interfaces import IDelayedCall

from sockserve.base import LineServerProtocol, ServerContext
from sockserve.echo import REPLY_PREFIX


class OneShotReplyProtocol(LineServerProtocol):
    """
    Read one request, answer C{OK .. <request>}, close.

    The request is everything up to and including the first line ending, or,
    if the client shuts down its sending side first, everything it sent. A
    request that does not arrive within the request timeout gets an C{ERROR}
    line.
    """

    # One write, then a close that flushes it: Nagle's algorithm never
    # holds anything back, so the system call is saved.
    noDelay = False

    def __init__(self, context: ServerContext) -> None:
        super().__init__(context)
        self.requestTimer: IDelayedCall | None = None

    def connectionAdmitted(self) -> None:
        """
        Start the request timer.
        """
        seconds = self.context.limits.requestTimeout
        if seconds > 0:
            self.requestTimer = self.context.clock.callLater(
                seconds, self.requestTimedOut
            )

    def linesReceived(self, chunk: bytes) -> None:
        """
        Answer the first line; anything after it is ignored.
        """
        self.reply(chunk[: chunk.index(b"\n") + 1])

    def inputEnded(self) -> None:
        """
        The client half-closed before a line ending: answer what it sent.
        """
        self.reply(self.lines.takePending())

    def reply(self, request: bytes) -> None:
        """
        Send C{OK .. <request>} and close.
        """
        self.cancelRequestTimer()
        self.send(REPLY_PREFIX + request)
        self.close()

    def requestTimedOut(self) -> None:
        """
        The request did not arrive in time: say so and close.
        """
        self.requestTimer = None
        seconds = self.context.limits.requestTimeout
        self.log.info(
            "Client {peer} sent no complete request within {seconds}s; closing",
            peer=self.peer,
            seconds=seconds,
        )
        self.sendErrorAndClose(f"no complete request within {seconds:g} seconds")

    def cancelRequestTimer(self) -> None:
        """
        Cancel the request timer, if it is running.
        """
        if self.requestTimer is not None:
            if self.requestTimer.active():
                self.requestTimer.cancel()
            self.requestTimer = None

    def beginShutdown(self) -> None:
        """
        A reply already written is finished by the transport; a client still
        sending its request gets the rest of the grace period to finish it.
        """

    def connectionClosed(self) -> None:
        """
        Cancel the request timer.
        """
        self.cancelRequestTimer()

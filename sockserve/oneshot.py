"""
The one-shot reply server: read one request, answer C{OK .. <request>}, close.
"""

from __future__ import annotations

from sockserve._deadlines import Deadlines
from sockserve._sending import writeAndClose
from sockserve._text import plural
from sockserve.echo import REPLY_PREFIX
from sockserve.protocol import LineServerProtocol, ServerContext


class OneShotReplyProtocol(LineServerProtocol):
    """
    Read one request, answer C{OK .. <request>}, close.

    The request is everything up to and including the first line ending, or,
    if the client shuts down its sending side first, everything it sent. A
    request that does not arrive before its deadline (kept by the server's
    L{Deadlines}, C{requestDeadlines}) gets an C{ERROR} line.
    """

    # One reply, sent with the close (see writeAndClose): Nagle's algorithm
    # never holds anything back, so its system call is saved, and with one
    # reply of bounded size there is nothing to throttle. The request timeout
    # ends a connection whose client vanished: no keepalive either. Errors (the request
    # timeout, a line too long) go through Twisted's buffer.
    noDelay = False
    keepAlive = False
    writeDirectly = False
    flowControl = False

    def __init__(
        self,
        context: ServerContext,
        requestDeadlines: Deadlines[OneShotReplyProtocol] | None,
    ) -> None:
        super().__init__(context)
        self.requestDeadlines = requestDeadlines

    def connectionAdmitted(self) -> None:
        """
        Start the request's deadline.
        """
        if self.requestDeadlines is not None:
            self.requestDeadlines.set(self)

    def linesReceived(self, chunk: bytes) -> None:
        """
        Answer the first line; anything after it is ignored.
        """
        self.reply(chunk[: chunk.index(b"\n") + 1])

    def inputEnded(self) -> None:
        """
        The client half-closed before a line ending: answer what it sent
        (nothing, perhaps), ended with LF, so that the reply is a line.
        """
        self.reply(self.lines.takePending() + b"\n")

    def reply(self, request: bytes) -> None:
        """
        Send C{OK .. <request>} and close.
        """
        self.stopRequestTimer()
        self.closing = True
        self.stopIdleTimer()
        reply = REPLY_PREFIX + request
        self.context.stats.bytesOut += len(reply)
        writeAndClose(self.transport, reply)

    def requestTimedOut(self) -> None:
        """
        The request did not arrive in time: say so and close.
        """
        seconds = self.context.limits.requestTimeout
        self.logLimited(
            "request timeouts",
            "Client {peer} sent no complete request within {seconds}s; closing",
            peer=self.peer,
            seconds=seconds,
        )
        self.context.stats.refused["request_timeout"] += 1
        self.sendErrorAndClose(
            f"no complete request within {plural(seconds, 'second')}"
        )

    def stopRequestTimer(self) -> None:
        """
        Drop the request's deadline, if it is running.
        """
        if self.requestDeadlines is not None:
            self.requestDeadlines.discard(self)

    def beginShutdown(self) -> None:
        """
        A reply already written is finished by the transport; a client still
        sending its request gets the rest of the grace period to finish it.
        """

    def connectionClosed(self) -> None:
        """
        Drop the request's deadline.
        """
        self.stopRequestTimer()


def requestDeadlinesFor(
    context: ServerContext,
) -> Deadlines[OneShotReplyProtocol] | None:
    """
    Return the deadlines of a one-shot server's requests, or C{None} when
    requests have no time limit.
    """
    seconds = context.limits.requestTimeout
    if seconds <= 0:
        return None
    return Deadlines(context.clock, seconds, OneShotReplyProtocol.requestTimedOut)

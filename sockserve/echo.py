"""
The echo server: every line is answered C{OK .. <line>}, the connection stays open.
"""

from __future__ import annotations

from sockserve.protocol import LineServerProtocol

REPLY_PREFIX = b"OK .. "
_NEXT_REPLY = b"\n" + REPLY_PREFIX


def echoReplies(chunk: bytes) -> bytes:
    """
    Return the replies to a chunk of whole lines: each line prefixed with
    C{OK .. }, its ending kept as the client sent it.
    """
    return REPLY_PREFIX + chunk[:-1].replace(b"\n", _NEXT_REPLY) + b"\n"


# Replies are written a slice of input at a time, so that a client that
# sends much and reads nothing is stopped within a slice: the server then
# holds at most Twisted's buffer (64 KiB before it pauses) plus the replies
# to one slice (7 times 4 KiB for empty lines) plus the rest of one read.
SLICE = 4 * 1024


class EchoProtocol(LineServerProtocol):
    """
    Answer every line with C{OK .. <line>}, with the line ending the client used.

    What one read brings is answered with one write, a slice at a time when
    it is large: once the client is not reading its replies (the transport
    asks us to pause), the rest of the read waits and nothing more is read,
    so a client that never reads costs a bounded amount of memory whatever it
    sends. A client that half-closes still gets every reply (an unfinished
    last line included) before the server closes.

    @ivar waiting: input read but not yet answered, while the client is not
        reading its replies.
    """

    waiting = b""
    outputFull = False

    def linesReceived(self, chunk: bytes) -> None:
        """
        Answer the lines of C{chunk}.
        """
        if len(chunk) <= SLICE and not self.waiting:
            replies = echoReplies(chunk)
            self.context.stats.bytesOut += len(replies)
            self.send(replies)
            return
        self.waiting += chunk
        self.answerWaiting()

    def answerWaiting(self) -> None:
        """
        Answer waiting lines a slice at a time, until they are all answered
        or the client stops reading.
        """
        waiting, start = self.waiting, 0
        while start < len(waiting) and not self.outputFull and not self.closing:
            end = waiting.rfind(b"\n", start, start + SLICE) + 1
            if end <= start:
                end = waiting.index(b"\n", start) + 1
            replies = echoReplies(waiting[start:end])
            self.context.stats.bytesOut += len(replies)
            self.send(replies)
            start = end
        self.waiting = waiting[start:]

    def pauseProducing(self) -> None:
        """
        The client is not reading its replies: stop answering and reading.
        """
        self.outputFull = True
        super().pauseProducing()

    def resumeProducing(self) -> None:
        """
        The client caught up: answer what waits, then read again.
        """
        self.outputFull = False
        if self.waiting:
            self.answerWaiting()
        if not self.outputFull:
            super().resumeProducing()

    def inputEnded(self) -> None:
        """
        Answer what waits and an unfinished last line (ended with LF, so that
        the reply is a line), then close.
        """
        self.outputFull = False
        self.answerWaiting()
        rest = self.lines.takePending()
        if rest:
            reply = REPLY_PREFIX + rest + b"\n"
            self.context.stats.bytesOut += len(reply)
            self.send(reply)
        self.close()

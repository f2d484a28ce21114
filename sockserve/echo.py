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


class EchoProtocol(LineServerProtocol):
    """
    Answer every line with C{OK .. <line>}, with the line ending the client used.

    Everything one read brings is answered with one write. A client that
    half-closes still gets every reply (an unfinished last line included)
    before the server closes.
    """

    def linesReceived(self, chunk: bytes) -> None:
        """
        Answer the lines of C{chunk}.
        """
        self.send(echoReplies(chunk))

    def inputEnded(self) -> None:
        """
        Answer an unfinished last line (ended with LF, so that the reply is
        a line), then close.
        """
        rest = self.lines.takePending()
        if rest:
            self.send(REPLY_PREFIX + rest + b"\n")
        self.close()

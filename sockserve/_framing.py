"""
Line framing: turn a byte stream into lines, with a bound on line length.

A line ends with LF; a CR just before it belongs to the ending, so a line is kept
with its ending exactly as the client sent it (C{b"hi\\r\\n"} or C{b"hi\\n"}).
"""

from __future__ import annotations

LF = b"\n"


class LineTooLong(Exception):
    """
    A line, or the unfinished start of one, is longer than the limit.

    @ivar limit: the limit.
    @ivar complete: the whole lines received before the long one, which are
        still to be handled (as L{LineBuffer.feed} would return them).
    """

    def __init__(self, limit: int, complete: bytes = b"") -> None:
        super().__init__(f"line longer than {limit} bytes")
        self.limit = limit
        self.complete = complete


class LineBuffer:
    """
    Accumulate bytes and hand out complete lines, each with its ending.

    Lines are split once per call with C{bytes.split}, so a large read holding
    many lines costs linear time (unlike C{LineReceiver}, which re-splits its
    buffer per line).

    @ivar maxLength: the longest line allowed, ending included; a longer line, or
        an unfinished one that has grown past it, raises L{LineTooLong}.
    """

    __slots__ = ("_pending", "maxLength")

    def __init__(self, maxLength: int) -> None:
        self.maxLength = maxLength
        self._pending = b""

    @property
    def pending(self) -> bytes:
        """
        The bytes received after the last complete line.
        """
        return self._pending

    def feed(self, data: bytes) -> bytes:
        """
        Add C{data} and return the lines it completes, as one C{bytes}.

        The result is empty, or holds one or more whole lines, each with its
        ending. Handing them out together lets a caller answer everything one
        read brought with one write.

        @raise LineTooLong: if a line is longer than C{maxLength}; the lines
            before it are in its C{complete}. The buffer is then left empty:
            the stream can no longer be framed.
        """
        if self._pending:
            data = self._pending + data
        end = data.rfind(LF) + 1
        if len(data) - end > self.maxLength or (
            end > self.maxLength and _longestLine(data, end) > self.maxLength
        ):
            self._pending = b""
            raise LineTooLong(self.maxLength, self._validPrefix(data, end))
        if end == len(data):
            self._pending = b""
            return data
        self._pending = data[end:]
        return data[:end]

    def _validPrefix(self, data: bytes, end: int) -> bytes:
        """
        Return the whole lines of C{data[:end]} before the first too long one.
        """
        start = 0
        while start < end:
            stop = data.index(LF, start, end) + 1
            if stop - start > self.maxLength:
                break
            start = stop
        return data[:start]

    def takePending(self) -> bytes:
        """
        Return and forget the unfinished line (used when the client half-closes).
        """
        pending, self._pending = self._pending, b""
        return pending


def _longestLine(data: bytes, end: int) -> int:
    """
    Return the length of the longest line in C{data[:end]}, ending included.
    """
    return max(map(len, data[: end - 1].split(LF))) + 1

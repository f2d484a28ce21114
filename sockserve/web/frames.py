"""
WebSocket frames (RFC 6455 section 5): what a client sends, parsed; what the
server sends, built.

Written here rather than taken from C{wsproto} (which still does the
handshake): parsing each client frame through C{wsproto.Connection.events}
took about half the server's time in a room of ten WebSocket clients
(py-spy, C{bench chat-ws-10x10}), which held that room to a fifth of the
same room over TCP. This parser handles the one kind of peer a server has
(masked client frames, no extensions), unmasks with one big-integer XOR,
and measures a message by the lengths its frame headers declare, so an
oversized one is refused before its bytes are read, let alone buffered.
C{tests/test_frames.py} checks it against C{wsproto} on generated input.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA

# Close codes (RFC 6455 section 7.4.1, and IANA's registry for 1013).
NORMAL = 1000
GOING_AWAY = 1001
PROTOCOL_ERROR = 1002
UNSUPPORTED_DATA = 1003
NO_STATUS = 1005
INVALID_DATA = 1007
POLICY_VIOLATION = 1008
MESSAGE_TOO_BIG = 1009
TRY_AGAIN_LATER = 1013

_MEDIUM = struct.Struct("!H")
_LONG = struct.Struct("!Q")


@dataclass(frozen=True, slots=True)
class Binary:
    """
    A binary message began (the room refuses them: nothing more is read).
    """


@dataclass(frozen=True, slots=True)
class Ping:
    """
    A ping, to answer with a pong of the same payload.
    """

    payload: bytes


@dataclass(frozen=True, slots=True)
class Pong:
    """
    A pong.
    """

    payload: bytes


@dataclass(frozen=True, slots=True)
class Close:
    """
    The client closed (C{code} 1005 if it gave none), or broke the protocol
    (C{broken}: C{code} and C{reason} say how, to be sent back).
    """

    code: int
    reason: str
    broken: bool = False


@dataclass(frozen=True, slots=True)
class TooBig:
    """
    A message would exceed the limit (nothing more is read).
    """

    size: int


# A whole text message is its UTF-8 bytes as they are (the common event,
# not wrapped); anything else is one of these.
Event = bytes | Binary | Ping | Pong | Close | TooBig


def _valid_close_code(code: int) -> bool:
    return (
        1000 <= code <= 1014 and code not in (1004, 1005, 1006)
    ) or 3000 <= code <= 4999


def unmask(
    payload: bytes,
    mask: bytes,
    _number: Callable[[bytes, Literal["little"]], int] = int.from_bytes,
) -> bytes:
    """
    Return C{payload} XORed with the repeated 4-byte C{mask} (one XOR of
    two big integers, whatever the length).
    """
    size = len(payload)
    if not size:
        return b""
    key = (mask * ((size + 3) >> 2))[:size]
    return (_number(payload, "little") ^ _number(key, "little")).to_bytes(
        size, "little"
    )


def _isUtf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


class ClientFrames:
    """
    Parse what a WebSocket client sends into events.

    Messages longer than C{maxMessage} bytes end the parse with L{TooBig};
    a protocol error ends it with a broken L{Close}. After either, or a
    close, or a binary message, the parser reads nothing more.

    @ivar acceptBinary: whether a binary message is read (its bytes, as
        they are, as a text message's are) rather than refused with
        L{Binary} (IRC's C{binary.ircv3.net} speaks binary).
    """

    __slots__ = (
        "_binary",
        "_buffer",
        "_done",
        "_message",
        "_messageSize",
        "acceptBinary",
        "maxMessage",
    )

    def __init__(self, maxMessage: int, acceptBinary: bool = False) -> None:
        self.maxMessage = maxMessage
        self.acceptBinary = acceptBinary
        self._buffer = b""
        self._message: list[bytes] | None = None
        self._messageSize = 0
        self._binary = False
        self._done = False

    def feed(self, data: bytes) -> list[Event]:
        """
        Parse C{data}; return the events of every frame it completes.
        """
        if self._done:
            return []
        buffer = self._buffer + data if self._buffer else data
        events: list[Event] = []
        offset = 0
        end = len(buffer)
        limit = self.maxMessage
        while end - offset >= 2:
            first, second = buffer[offset], buffer[offset + 1]
            if first == 0x81 and 0x80 <= second < 0xFE and self._message is None:
                # The common frame, a whole short text message, the short
                # way (what the loop below would do, less the questions).
                length = second - 0x80
                start = offset + 6
                stop = start + length
                if stop > end:
                    break
                if (length or 1) > limit:
                    events.append(TooBig(length or 1))
                    self._done = True
                    return events
                payload = unmask(buffer[start:stop], buffer[offset + 2 : start])
                if not (payload.isascii() or _isUtf8(payload)):
                    return self._notUtf8(events)
                events.append(payload)
                offset = stop
                continue
            opcode = first & 0x0F
            length = second & 0x7F
            header = 6
            if length == 126:
                header = 8
                if end - offset < header:
                    break
                (length,) = _MEDIUM.unpack_from(buffer, offset + 2)
                if length < 126:
                    return self._broken(events, "a length in too many bytes")
            elif length == 127:
                header = 14
                if end - offset < header:
                    break
                (length,) = _LONG.unpack_from(buffer, offset + 2)
                if length < 0x10000 or length >> 63:
                    return self._broken(events, "a length in too many bytes")
            if first & 0x70:
                return self._broken(events, "reserved bits set")
            if not second & 0x80:
                return self._broken(events, "an unmasked frame")
            final = bool(first & 0x80)
            if opcode >= CLOSE:
                if opcode > PONG:
                    return self._broken(events, f"unknown opcode {opcode:#x}")
                if not final or length > 125:
                    return self._broken(events, "a fragmented or long control frame")
            elif opcode == CONTINUATION:
                if self._message is None:
                    return self._broken(events, "a continuation of nothing")
            elif opcode > BINARY:
                return self._broken(events, f"unknown opcode {opcode:#x}")
            elif self._message is not None:
                return self._broken(events, "a new message inside another")
            elif opcode == BINARY and not self.acceptBinary:
                events.append(Binary())
                self._done = True
                return events
            if opcode < CLOSE:
                # An empty fragment counts a byte: endless empty fragments
                # are no cheaper than a long message.
                size = self._messageSize + (length or 1)
                if size > self.maxMessage:
                    events.append(TooBig(size))
                    self._done = True
                    return events
            if end - offset < header + length:
                break
            start = offset + header
            mask = buffer[start - 4 : start]
            payload = unmask(buffer[start : start + length], mask)
            offset = start + length
            if opcode < CLOSE:
                if self._message is None:
                    self._message = []
                    self._binary = opcode == BINARY
                self._message.append(payload)
                self._messageSize = size
                if final:
                    parts, self._message = self._message, None
                    self._messageSize = 0
                    whole = parts[0] if len(parts) == 1 else b"".join(parts)
                    if not (self._binary or whole.isascii() or _isUtf8(whole)):
                        return self._notUtf8(events)
                    events.append(whole)
            elif opcode == PING:
                events.append(Ping(payload))
            elif opcode == PONG:
                events.append(Pong(payload))
            else:
                events.append(self._close(payload))
                self._done = True
                return events
        self._buffer = buffer[offset:] if offset < end else b""
        return events

    def _notUtf8(self, events: list[Event]) -> list[Event]:
        return self._broken(events, "a text message that is not UTF-8", INVALID_DATA)

    def _broken(
        self, events: list[Event], why: str, code: int = PROTOCOL_ERROR
    ) -> list[Event]:
        self._done = True
        events.append(Close(code, why, broken=True))
        return events

    def _close(self, payload: bytes) -> Close:
        if not payload:
            return Close(NO_STATUS, "")
        if len(payload) == 1:
            return Close(PROTOCOL_ERROR, "a close frame of one byte", broken=True)
        (code,) = _MEDIUM.unpack_from(payload)
        if not _valid_close_code(code):
            return Close(PROTOCOL_ERROR, f"close code {code}", broken=True)
        try:
            reason = payload[2:].decode("utf-8")
        except UnicodeDecodeError:
            return Close(INVALID_DATA, "a close reason that is not UTF-8", broken=True)
        return Close(code, reason)


def serverFrame(opcode: int, payload: bytes) -> bytes:
    """
    Return one unmasked, final frame (RFC 6455 section 5.2) of C{opcode}
    carrying C{payload}.
    """
    size = len(payload)
    first = 0x80 | opcode
    if size < 126:
        return bytes((first, size)) + payload
    if size < 0x10000:
        return bytes((first, 126)) + _MEDIUM.pack(size) + payload
    return bytes((first, 127)) + _LONG.pack(size) + payload


def textFrame(payload: bytes) -> bytes:
    """
    Return one text frame carrying C{payload}, which must be UTF-8.
    """
    return serverFrame(TEXT, payload)


def closeFrame(code: int, reason: str = "") -> bytes:
    """
    Return a close frame with C{code} and C{reason} (cut to fit 123
    bytes); 1005 (no status) is sent as a close frame without a code.
    """
    if code == NO_STATUS:
        return serverFrame(CLOSE, b"")
    data = reason.encode("utf-8")[:123]
    while data:
        try:
            data.decode("utf-8")
            break
        except UnicodeDecodeError:
            data = data[:-1]
    return serverFrame(CLOSE, _MEDIUM.pack(code) + data)

"""
The WebSocket frame parser, checked against wsproto (the parser of Twisted's
own WebSocket support) on generated input, and on the cases that matter.
"""

from __future__ import annotations

import os
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from wsproto.connection import Connection, ConnectionType
from wsproto.events import (
    BytesMessage,
    CloseConnection,
    Event,
    Ping,
    Pong,
    TextMessage,
)

from sockserve.web import frames
from sockserve.web.frames import ClientFrames, closeFrame, serverFrame, unmask

ORACLE_LIMIT = 1 << 20


def clientFrame(
    opcode: int,
    payload: bytes,
    final: bool = True,
    rsv: int = 0,
    masked: bool = True,
    longLength: bool = False,
) -> bytes:
    """
    A frame as a client sends it (or, with the flags, as it should not).
    """
    first = (0x80 if final else 0) | (rsv << 4) | opcode
    size = len(payload)
    maskBit = 0x80 if masked else 0
    if longLength:
        header = bytes((first, maskBit | 127)) + struct.pack("!Q", size)
    elif size < 126:
        header = bytes((first, maskBit | size))
    elif size < 0x10000:
        header = bytes((first, maskBit | 126)) + struct.pack("!H", size)
    else:
        header = bytes((first, maskBit | 127)) + struct.pack("!Q", size)
    if not masked:
        return header + payload
    mask = os.urandom(4)
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def normalised(events: list[object]) -> list[tuple[object, ...]]:
    """
    Events of either parser in one form: whole text messages, pings,
    pongs, a binary message's start, a close's code.
    """
    result: list[tuple[object, ...]] = []
    for event in events:
        if isinstance(event, bytes):
            result.append(("text", event))
        elif isinstance(event, frames.Ping):
            result.append(("ping", event.payload))
        elif isinstance(event, frames.Pong):
            result.append(("pong", event.payload))
        elif isinstance(event, frames.Binary):
            result.append(("binary",))
            return result
        elif isinstance(event, frames.Close):
            result.append(("close", event.code))
            return result
    return result


def oracle(chunks: list[bytes]) -> list[tuple[object, ...]]:
    """
    What wsproto makes of C{chunks}, in the same form.
    """
    connection = Connection(ConnectionType.SERVER)
    result: list[tuple[object, ...]] = []
    text = b""
    for chunk in chunks:
        connection.receive_data(chunk)
        for event in connection.events():
            if isinstance(event, TextMessage):
                text += event.data.encode("utf-8")
                if event.message_finished:
                    result.append(("text", text))
                    text = b""
            elif isinstance(event, BytesMessage):
                result.append(("binary",))
                return result
            elif isinstance(event, Ping):
                result.append(("ping", bytes(event.payload)))
            elif isinstance(event, Pong):
                result.append(("pong", bytes(event.payload)))
            elif isinstance(event, CloseConnection):
                result.append(("close", int(event.code)))
                return result
    return result


def ours(chunks: list[bytes]) -> list[tuple[object, ...]]:
    parser = ClientFrames(ORACLE_LIMIT)
    events: list[object] = []
    for chunk in chunks:
        events.extend(parser.feed(chunk))
    return normalised(events)


_text = st.text(max_size=300).map(lambda text: text.encode("utf-8"))
_codes = st.sampled_from(
    [
        *(1000, 1001, 1002, 1003, 1007, 1011, 1013, 3000, 4999),
        *(1004, 1005, 1006, 1015, 2000, 2999, 5000, 999, 0),
    ]
)


@st.composite
def frameStreams(draw: st.DrawFn) -> bytes:
    """
    A client's frames: messages, fragments, pings and pongs, closes, and
    now and then a frame that breaks the protocol.
    """
    parts = []
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(
            st.sampled_from(
                ["text", "fragments", "ping", "pong", "close", "binary", "broken"]
            )
        )
        if kind == "text":
            parts.append(clientFrame(frames.TEXT, draw(_text)))
        elif kind == "fragments":
            pieces = draw(st.lists(_text, min_size=2, max_size=4))
            data = b"".join(pieces).decode("utf-8").encode("utf-8")
            cut = draw(st.integers(0, len(data)))
            # Fragments cut at a character boundary or not: wsproto decodes
            # incrementally, so both must be whole UTF-8 once joined.
            first, rest = data[:cut], data[cut:]
            parts.append(clientFrame(frames.TEXT, first, final=False))
            if draw(st.booleans()):
                parts.append(clientFrame(frames.PING, b"in between"))
            parts.append(clientFrame(frames.CONTINUATION, rest))
        elif kind == "ping":
            parts.append(clientFrame(frames.PING, draw(st.binary(max_size=125))))
        elif kind == "pong":
            parts.append(clientFrame(frames.PONG, draw(st.binary(max_size=125))))
        elif kind == "close":
            code = draw(_codes)
            reason = draw(st.text(max_size=20)).encode("utf-8")
            payload = b"" if code == 0 else struct.pack("!H", code) + reason
            parts.append(clientFrame(frames.CLOSE, payload))
        elif kind == "binary":
            parts.append(clientFrame(frames.BINARY, draw(st.binary(max_size=50))))
        else:
            parts.append(
                draw(
                    st.sampled_from(
                        [
                            clientFrame(frames.TEXT, b"x", masked=False),
                            clientFrame(frames.TEXT, b"x", rsv=4),
                            clientFrame(0x3, b"x"),
                            clientFrame(0xB, b"x"),
                            clientFrame(frames.PING, b"x", final=False),
                            clientFrame(frames.PING, b"x" * 126),
                            clientFrame(frames.CONTINUATION, b"x"),
                            clientFrame(frames.TEXT, b"x", final=False)
                            + clientFrame(frames.TEXT, b"y"),
                            clientFrame(frames.TEXT, b"x", longLength=True),
                            clientFrame(frames.CLOSE, b"\x03"),
                            clientFrame(frames.CLOSE, b"\x03\xe8\xff"),
                        ]
                    )
                )
            )
    return b"".join(parts)


@settings(max_examples=300, deadline=None)
@given(stream=frameStreams(), cuts=st.lists(st.integers(0, 4000), max_size=6))
def test_parses_as_wsproto_does(stream: bytes, cuts: list[int]) -> None:
    """Whatever a client sends, cut into reads anywhere, the parser sees the
    messages, pings, pongs and closes wsproto sees, in the same order, and
    stops where wsproto stops, with the same close code."""
    points = sorted({cut for cut in cuts if cut < len(stream)})
    chunks = [
        stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)
    ]
    assert ours(chunks) == oracle(chunks)


def test_a_long_message_is_refused_by_its_header() -> None:
    """A message longer than the limit is refused as soon as its header
    says so, before its bytes arrive; fragments add up."""
    parser = ClientFrames(100)
    # FIN and text, masked with a 64-bit length, then the mask.
    header = bytes([0x81, 0x80 | 127]) + (50_000_000).to_bytes(8, "big") + b"mask"
    assert parser.feed(header) == [frames.TooBig(50_000_000)]
    assert parser.feed(b"more") == []
    fragments = ClientFrames(100)
    events = fragments.feed(
        clientFrame(frames.TEXT, b"a" * 60, final=False)
        + clientFrame(frames.CONTINUATION, b"b" * 41)
    )
    assert events == [frames.TooBig(101)]
    exact = ClientFrames(100)
    assert exact.feed(clientFrame(frames.TEXT, b"c" * 100)) == [b"c" * 100]


def test_invalid_utf8_is_a_1007() -> None:
    """A text message that is not UTF-8 closes with 1007."""
    parser = ClientFrames(1000)
    [event] = parser.feed(clientFrame(frames.TEXT, b"ok \xff"))
    assert isinstance(event, frames.Close)
    assert (event.code, event.broken) == (1007, True)


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 70000])
def test_server_frames_parse(size: int) -> None:
    """Server frames of every length encoding read back in wsproto."""
    client = Connection(ConnectionType.CLIENT)
    client.receive_data(serverFrame(frames.TEXT, b"z" * size) + closeFrame(1001, "bye"))
    events: list[Event] = list(client.events())
    text = "".join(e.data for e in events if isinstance(e, TextMessage))
    assert text == "z" * size
    assert isinstance(events[-1], CloseConnection)
    assert (events[-1].code, events[-1].reason) == (1001, "bye")


def test_close_reasons_are_cut_to_fit() -> None:
    """A close reason is cut to 123 bytes, on a character boundary."""
    frame = closeFrame(1000, "é" * 100)
    assert len(frame) == 2 + 2 + 122
    assert frame[4:].decode("utf-8") == "é" * 61
    assert closeFrame(1005) == b"\x88\x00"


def test_unmask() -> None:
    """Unmasking is the XOR with the repeated key."""
    assert unmask(b"", b"abcd") == b""
    data = bytes(range(256)) * 3
    mask = b"\x01\x02\x03\x04"
    assert unmask(data, mask) == bytes(b ^ mask[i % 4] for i, b in enumerate(data))

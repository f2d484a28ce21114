"""
Line framing: every split of a stream gives the same lines; limits hold.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sockserve._framing import LineBuffer, LineTooLong


def splitLines(chunk: bytes) -> list[bytes]:
    """Split a chunk of whole lines into lines, each keeping its LF."""
    return [line + b"\n" for line in chunk.split(b"\n")[:-1]]


def frame(chunks: list[bytes], maxLength: int = 1 << 20) -> list[bytes]:
    buffer = LineBuffer(maxLength)
    lines: list[bytes] = []
    for chunk in chunks:
        lines.extend(splitLines(buffer.feed(chunk)))
    return lines


def test_lines_keep_their_endings() -> None:
    """A line keeps the ending the client used: LF, or CR LF."""
    assert frame([b"a\r\nb\nc\r\n"]) == [b"a\r\n", b"b\n", b"c\r\n"]


def test_line_split_across_reads() -> None:
    """A line that arrives in pieces comes out whole, once."""
    buffer = LineBuffer(100)
    assert buffer.feed(b"hel") == b""
    assert buffer.pending == b"hel"
    assert buffer.feed(b"lo\r") == b""
    assert buffer.feed(b"\nwor") == b"hello\r\n"
    assert buffer.takePending() == b"wor"
    assert buffer.pending == b""


def test_cr_inside_a_line_is_content() -> None:
    """A CR not followed by LF is part of the line."""
    assert frame([b"a\rb\n"]) == [b"a\rb\n"]


def test_line_at_the_limit_is_accepted() -> None:
    """A line of exactly maxLength bytes, ending included, is fine."""
    assert frame([b"x" * 9 + b"\n"], maxLength=10) == [b"x" * 9 + b"\n"]


def test_complete_line_over_the_limit() -> None:
    """A complete line longer than the limit is refused."""
    buffer = LineBuffer(10)
    with pytest.raises(LineTooLong) as raised:
        buffer.feed(b"short\n" + b"x" * 10 + b"\nok\n")
    assert raised.value.limit == 10
    assert raised.value.complete == b"short\n"
    assert buffer.pending == b""


def test_unfinished_line_over_the_limit() -> None:
    """An unfinished line is refused as soon as it outgrows the limit, so the
    buffer never holds more than the limit."""
    buffer = LineBuffer(10)
    buffer.feed(b"x" * 10)
    with pytest.raises(LineTooLong):
        buffer.feed(b"x")
    assert buffer.pending == b""


def test_many_short_lines_in_a_big_read() -> None:
    """A read larger than the limit made of short lines is fine."""
    data = b"ab\n" * 1000
    assert frame([data], maxLength=10) == [b"ab\n"] * 1000


@st.composite
def streamAndSplit(draw: st.DrawFn) -> tuple[bytes, list[bytes]]:
    data = draw(
        st.lists(
            st.one_of(st.binary(max_size=20), st.sampled_from([b"\n", b"\r\n", b"\r"])),
            max_size=30,
        ).map(b"".join)
    )
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=10)))
    chunks = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
    return data, chunks


@given(streamAndSplit())
def test_any_split_gives_the_same_lines(case: tuple[bytes, list[bytes]]) -> None:
    """Property: however a stream is cut into reads, the lines are the same,
    and together with the pending rest they are the stream."""
    data, chunks = case
    whole = LineBuffer(1 << 20)
    expected = splitLines(whole.feed(data))
    pieces = LineBuffer(1 << 20)
    got: list[bytes] = []
    for chunk in chunks:
        got.extend(splitLines(pieces.feed(chunk)))
    assert got == expected
    assert b"".join(got) + pieces.pending == data
    assert all(line.endswith(b"\n") and line.count(b"\n") == 1 for line in got)


@given(streamAndSplit(), st.integers(1, 30))
def test_any_split_agrees_on_the_limit(
    case: tuple[bytes, list[bytes]], limit: int
) -> None:
    """Property: a stream is refused for a long line however it is cut, and
    the lines handed out before the refusal are all within the limit."""
    data, chunks = case
    lines = data.split(b"\n")
    tooLong = (
        any(len(line) + 1 > limit for line in lines[:-1]) or len(lines[-1]) > limit
    )
    buffer = LineBuffer(limit)
    refused = False
    got: list[bytes] = []
    for chunk in chunks or [b""]:
        try:
            got.extend(splitLines(buffer.feed(chunk)))
        except LineTooLong as error:
            got.extend(splitLines(error.complete))
            refused = True
            break
    assert refused == tooLong
    assert all(len(line) <= limit for line in got)
    # Nothing before the long line is lost.
    valid = []
    for line in lines[:-1]:
        if len(line) + 1 > limit:
            break
        valid.append(line + b"\n")
    assert got == valid

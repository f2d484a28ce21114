"""
Sanitising text relayed between terminals.
"""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sockserve._text import linesAreSafe, safeText


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        (b"plain text", b"plain text"),
        (b"tab\tkept", b"tab\tkept"),
        (b"\x1b[31mred", b"\\x1b[31mred"),
        (b"bell\x07", b"bell\\x07"),
        (b"del\x7f", b"del\\x7f"),
        (b"nul\x00", b"nul\\x00"),
        (b"cr\ronly", b"cr\\x0donly"),
        (b"bad \xff\xfe utf8", b"bad \\xff\\xfe utf8"),
        ("café ☕".encode(), "café ☕".encode()),
        ("c1 \u009b31m".encode(), b"c1 \\x9b31m"),
        ("bidi \u202eevil".encode(), b"bidi \\u202eevil"),
        ("arabic mark \u061c".encode(), b"arabic mark \\u061c"),
        ("zero\u200bwidth".encode(), b"zero\\u200bwidth"),
        ("line\u2028sep".encode(), b"line\\u2028sep"),
        ("para\u2029sep".encode(), b"para\\u2029sep"),
        ("tag \U000e0041".encode(), b"tag \\U000e0041"),
        ("bom \ufeff".encode(), b"bom \\ufeff"),
        ("no-break\u00a0and\u3000ideographic".encode(), None),
        ("tab\tand caf\u00e9".encode(), None),
    ],
)
def test_safe_text(raw: bytes, shown: bytes | None) -> None:
    """Controls, format characters (Cf), line and paragraph separators and
    invalid UTF-8 are shown as escapes; the rest (None: all of it) is kept."""
    assert safeText(raw) == (raw if shown is None else shown)


@given(st.binary(max_size=200))
def test_output_has_no_control_characters(raw: bytes) -> None:
    """Property: whatever comes in, what goes out is valid UTF-8 with no
    control character but TAB, no format character and no line or paragraph
    separator; and making it safe again changes nothing."""
    out = safeText(raw).decode("utf-8")
    unsafe = {"Cc", "Cf", "Zl", "Zp"}
    assert all(ch == "\t" or unicodedata.category(ch) not in unsafe for ch in out)
    assert safeText(safeText(raw)) == safeText(raw)


@given(st.text(max_size=50))
def test_text_property(text: str) -> None:
    """Property: the same holds of any Unicode text (format characters and
    separators among it), encoded as UTF-8."""
    raw = text.encode("utf-8", "surrogatepass")
    out = safeText(raw).decode("utf-8")
    unsafe = {"Cc", "Cf", "Zl", "Zp", "Cs"}
    assert all(ch == "\t" or unicodedata.category(ch) not in unsafe for ch in out)


@given(st.lists(st.binary(max_size=30), max_size=8))
def test_a_safe_chunk_needs_no_line_by_line_check(lines: list[bytes]) -> None:
    """Property: when linesAreSafe passes a chunk, safeText leaves each of its
    lines (CR LF or LF ending removed) unchanged."""
    chunk = b"".join(line.replace(b"\n", b"") + b"\r\n" for line in lines)
    if linesAreSafe(chunk):
        for line in chunk.split(b"\n")[:-1]:
            body = line.removesuffix(b"\r")
            assert safeText(body) == body


def test_lines_are_safe() -> None:
    """Plain lines pass; a control, a lone CR or non-ASCII does not."""
    assert linesAreSafe(b"hello\r\nworld\n")
    assert not linesAreSafe(b"a\x1b[2J\n")
    assert not linesAreSafe(b"a\rb\n")
    assert not linesAreSafe("caf\u00e9\n".encode())

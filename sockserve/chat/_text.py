"""
Making client text safe to show on other clients' terminals.

Chat relays what one client typed to everyone else, so nothing a client sends
may drive another client's terminal: C0 controls (TAB excepted), DEL, C1
controls (CSI among them) and the Unicode bidirectional overrides are shown as
visible escapes (C{\\x1b}, C{\\u202e}); bytes that are not UTF-8 are shown as
C{\\xff}. Plain printable ASCII, the common case, passes through untouched.
"""

from __future__ import annotations

import re

_UNSAFE_ASCII = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
# In a chunk of whole lines, LF and a CR before it are line endings.
_UNSAFE_ASCII_LINES = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]|\r(?!\n)")

_BIDI_CONTROLS = [*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F]

_VISIBLE: dict[int, str] = {
    **{code: f"\\x{code:02x}" for code in range(0x20) if code != 0x09},
    0x7F: "\\x7f",
    **{code: f"\\x{code:02x}" for code in range(0x80, 0xA0)},
    **{code: f"\\u{code:04x}" for code in _BIDI_CONTROLS},
}


def safeText(raw: bytes) -> bytes:
    """
    Return C{raw} (one line, without its ending) as UTF-8 that is safe to
    print on a terminal: control characters and invalid UTF-8 become visible
    escapes.
    """
    if raw.isascii() and _UNSAFE_ASCII.search(raw) is None:
        return raw
    text = raw.decode("utf-8", "backslashreplace")
    return text.translate(_VISIBLE).encode("utf-8")


def linesAreSafe(chunk: bytes) -> bool:
    """
    Return whether every line of C{chunk} (whole lines, endings included) is
    plain printable ASCII that L{safeText} would leave as it is: one check
    for all the lines one read brings, instead of one per line.
    """
    return chunk.isascii() and _UNSAFE_ASCII_LINES.search(chunk) is None

"""
Making text from clients safe to show on terminals and in logs.

Chat relays what one client typed to everyone else, and logs name clients by
their addresses, so nothing a client sends or chooses may drive a terminal:
C0 controls (TAB excepted), DEL and C1 controls (CSI among them), every
Unicode format character (category Cf: bidirectional overrides and marks,
zero-width characters, tag characters, the byte order mark) and the line and
paragraph separators are shown as visible escapes (C{\\x1b}, C{\\u202e},
C{\\U000e0041}); bytes that are not UTF-8 are shown as C{\\xff}. Plain
printable text, the common case, passes through untouched: ASCII is checked
with one regular expression, other text with C{str.isprintable} first.
"""

from __future__ import annotations

import re
import unicodedata

_UNSAFE_ASCII = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
# In a chunk of whole lines, LF and a CR before it are line endings.
_UNSAFE_ASCII_LINES = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]|\r(?!\n)")

# Controls, format characters, line and paragraph separators.
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp"})


def _visible(character: str) -> str:
    """
    Return C{character}, or its visible escape if it is unsafe to show.
    """
    if character == "\t" or unicodedata.category(character) not in _UNSAFE_CATEGORIES:
        return character
    code = ord(character)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def safeText(raw: bytes) -> bytes:
    """
    Return C{raw} (one line, without its ending) as UTF-8 that is safe to
    print on a terminal: control and format characters and invalid UTF-8
    become visible escapes.
    """
    if raw.isascii() and _UNSAFE_ASCII.search(raw) is None:
        return raw
    text = raw.decode("utf-8", "backslashreplace")
    # isprintable() is False for every unsafe character (and for a few safe
    # ones, such as TAB and no-break spaces): those lines are looked at
    # character by character.
    if not text.isprintable():
        text = "".join(map(_visible, text))
    return text.encode("utf-8")


def linesAreSafe(chunk: bytes) -> bool:
    """
    Return whether every line of C{chunk} (whole lines, endings included) is
    plain printable ASCII that L{safeText} would leave as it is: one check
    for all the lines one read brings, instead of one per line.
    """
    return chunk.isascii() and _UNSAFE_ASCII_LINES.search(chunk) is None


def plural(count: float, unit: str) -> str:
    """
    Return C{count unit}, with an C{s} unless C{count} is 1: C{1 second},
    C{2.5 seconds}.
    """
    return f"{count:g} {unit}" if count == 1 else f"{count:g} {unit}s"


def sizeText(size: int) -> str:
    """
    Return C{size} bytes as a person reads it: C{64 MiB}, C{512 KiB},
    C{1000 bytes} (whole mebibytes and kibibytes only).
    """
    for unit, factor in (("MiB", 1024 * 1024), ("KiB", 1024)):
        if size >= factor and size % factor == 0:
            return f"{size // factor} {unit}"
    return plural(size, "byte")

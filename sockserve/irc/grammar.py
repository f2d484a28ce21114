"""
IRC lines, read and written (modern.ircdocs.horse, "Messages"; IRCv3
"Message Tags").

A line is C{[@tags] [:source] VERB [params...] [:trailing]}. What a client
sends is read leniently: UTF-8, or Latin-1 if it is not (IRC clients of old
send their locale's encoding: a line is never refused for its bytes), with
its formatting codes (bold, colours, ...) taken out, since the people on
other front ends would see them as escapes. Twisted's C{parsemsg} is not
used: it does not read tags, and it takes a line already decoded.

What the server writes is built here too: every parameter is checked to
hold no CR, LF or NUL (names and lines were made safe before, this is the
last guard of IRC's framing), and only the last may hold spaces or start
with C{:}.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# The most bytes of a line besides its tags, CR LF included (RFC 1459), and
# of its tags (IRCv3: 4094 from a client, with @ and a space 4096).
LINE_BYTES = 512
TAG_BYTES = 4096
# Parameters of one message, at most (RFC 1459: 14 and a trailing one).
MAX_PARAMS = 15

# mIRC's formatting codes: bold, colour (with its digits), hex colour,
# reset, monospace, reverse, italics, strike-through, underline.
_FORMATTING = re.compile(
    r"\x03(?:\d{1,2}(?:,\d{1,2})?)?|\x04(?:[0-9a-fA-F]{6}(?:,[0-9a-fA-F]{6})?)?"
    r"|[\x02\x0f\x11\x16\x1d\x1e\x1f]"
)
_TAG_ESCAPES = {":": ";", "s": " ", "\\": "\\", "r": "\r", "n": "\n"}


class BadLine(ValueError):
    """
    A line that is not an IRC message (no verb).
    """


@dataclass(frozen=True, slots=True)
class IRCMessage:
    """
    One message from a client.

    @ivar verb: its command, upper case (C{PRIVMSG}), or a numeric.
    @ivar params: its parameters, the trailing one last.
    @ivar tags: its IRCv3 tags, unescaped.
    """

    verb: str
    params: list[str] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)


def decode(raw: bytes) -> str:
    """
    C{raw} as text: UTF-8, or Latin-1 if it is not UTF-8.
    """
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def withoutFormatting(text: str) -> str:
    """
    C{text} without mIRC formatting codes (the CTCP mark, 0x01, is kept).
    """
    return _FORMATTING.sub("", text)


def _unescapeTag(value: str) -> str:
    if "\\" not in value:
        return value
    out = []
    index = 0
    while index < len(value):
        character = value[index]
        if character == "\\" and index + 1 < len(value):
            out.append(_TAG_ESCAPES.get(value[index + 1], value[index + 1]))
            index += 2
            continue
        if character != "\\":
            out.append(character)
        index += 1
    return "".join(out)


def parseTags(text: str) -> dict[str, str]:
    """
    The tags of C{text} (without its C{@}): C{key=value;key2} pairs,
    values unescaped; an empty value, or none, is C{""}.
    """
    tags: dict[str, str] = {}
    for item in text.split(";"):
        if not item:
            continue
        key, _, value = item.partition("=")
        tags[key] = _unescapeTag(value)
    return tags


def parseLine(raw: bytes) -> IRCMessage:
    """
    Read one line from a client (without its ending).

    @raise BadLine: if it holds no verb.
    """
    line = decode(raw)
    tags: dict[str, str] = {}
    if line.startswith("@"):
        tagText, _, line = line[1:].partition(" ")
        tags = parseTags(tagText)
        line = line.lstrip(" ")
    if line.startswith(":"):
        _, _, line = line.partition(" ")
        line = line.lstrip(" ")
    trailing: str | None = None
    head, separator, rest = line.partition(" :")
    if separator:
        trailing = rest
    elif head.startswith(":"):
        head, trailing = "", head[1:]
    words = head.split()
    if not words:
        raise BadLine("no command")
    verb, params = words[0].upper(), words[1:]
    if trailing is not None:
        params.append(trailing)
    if len(params) > MAX_PARAMS:
        params = [*params[: MAX_PARAMS - 1], " ".join(params[MAX_PARAMS - 1 :])]
    return IRCMessage(verb, params, tags)


def splitTags(raw: bytes) -> tuple[bytes, bytes]:
    """
    Split a line into its tags (C{@...}, with the space after) and the
    rest.
    """
    if raw.startswith(b"@"):
        end = raw.find(b" ")
        if end < 0:
            return raw, b""
        return raw[: end + 1], raw[end + 1 :]
    return b"", raw


_FORBIDDEN = re.compile(r"[\r\n\x00]")


def _check(param: str) -> str:
    if _FORBIDDEN.search(param):
        return _FORBIDDEN.sub(" ", param)
    return param


def formatLine(source: str | None, verb: str, *params: str, tags: str = "") -> bytes:
    """
    One line to a client, with its CR LF: C{[@tags ][:source ]VERB params},
    the last parameter after C{:} when it may need to be (it holds spaces,
    is empty, or starts with C{:}).
    """
    parts = []
    if tags:
        parts.append("@" + tags)
    if source:
        parts.append(":" + source)
    parts.append(verb)
    if params:
        *middle, last = [_check(param) for param in params]
        parts.extend(middle)
        if not last or " " in last or last.startswith(":"):
            last = ":" + last
        parts.append(last)
    return " ".join(parts).encode("utf-8") + b"\r\n"


def fitUTF8(text: bytes, size: int) -> list[bytes]:
    """
    Cut C{text} (UTF-8) into pieces of at most C{size} bytes, never inside
    a character, at a space where one is near the end.
    """
    pieces = []
    while len(text) > size:
        cut = size
        # Not inside a character: back up over continuation bytes.
        while cut > 0 and (text[cut] & 0xC0) == 0x80:
            cut -= 1
        space = text.rfind(b" ", size // 2, cut)
        if space > 0:
            pieces.append(text[:space])
            text = text[space + 1 :]
        else:
            pieces.append(text[:cut])
            text = text[cut:]
    pieces.append(text)
    return pieces

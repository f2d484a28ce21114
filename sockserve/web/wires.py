"""
The room's events on a WebSocket: one text frame per line.

Two wires, both encoding each event once for all their members (see
L{sockserve.chat.events}): the server's frames are never masked, so the
bytes of one frame serve every recipient as they are.

  - L{WEBSOCKET_LINE_WIRE}, spoken when the client asks for no subprotocol:
    each frame is one line exactly as a TCP client sees it (L{LINE_WIRE}),
    without its line ending, so C{websocat} works like C{telnet};
  - L{WEBSOCKET_JSON_WIRE}, the C{sockserve.v1.json} subprotocol the page
    speaks: each frame is a JSON object saying what happened, with the
    names and text as data, so the page can keep a member list without
    parsing notices.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from sockserve.chat.protocol import LINE_WIRE
from sockserve.web.frames import textFrame

# The subprotocol of WEBSOCKET_JSON_WIRE.
JSON_SUBPROTOCOL = "sockserve.v1.json"


def _framesOf(lines: bytes) -> bytes:
    """
    Turn CR LF lines into one text frame per line, without its ending.
    """
    parts = lines.split(b"\r\n")
    parts.pop()
    return b"".join([textFrame(line) for line in parts])


class WebSocketLineWire:
    """
    The room's lines, one text frame each, as a TCP client would see them.
    """

    def message(self, sender: str, lines: Sequence[bytes]) -> bytes:
        """
        One C{<sender> line} frame per line.
        """
        prefix = b"<" + sender.encode("utf-8") + b"> "
        return b"".join([textFrame(prefix + line) for line in lines])

    def joined(self, name: str) -> bytes:
        """
        C{* name joined}.
        """
        return _framesOf(LINE_WIRE.joined(name))

    def left(self, name: str) -> bytes:
        """
        C{* name left}.
        """
        return _framesOf(LINE_WIRE.left(name))

    def renamed(self, oldName: str, newName: str) -> bytes:
        """
        C{* old is now known as new}.
        """
        return _framesOf(LINE_WIRE.renamed(oldName, newName))

    def notice(self, text: str) -> bytes:
        """
        C{* text}, a frame per line.
        """
        return _framesOf(LINE_WIRE.notice(text))

    def error(self, text: str) -> bytes:
        """
        C{ERROR text}.
        """
        return _framesOf(LINE_WIRE.error(text))

    def banner(self, text: str) -> bytes:
        """
        The banner, a frame per line.
        """
        return _framesOf(LINE_WIRE.banner(text))

    def welcome(self, name: str, others: int) -> bytes:
        """
        C{* you are name; N other(s) here}.
        """
        return _framesOf(LINE_WIRE.welcome(name, others))

    def members(self, names: Sequence[str], total: int) -> bytes:
        """
        C{* N here: a, b, c}.
        """
        return _framesOf(LINE_WIRE.members(names, total))

    def nameChanged(self, name: str) -> bytes:
        """
        C{* you are now known as name}.
        """
        return _framesOf(LINE_WIRE.nameChanged(name))

    def history(self, lines: Sequence[tuple[str, bytes]], omitted: int) -> bytes:
        """
        The history, a frame per line.
        """
        return _framesOf(LINE_WIRE.history(lines, omitted))

    def quietly(self, joined: Sequence[str], left: Sequence[str]) -> bytes:
        """
        The summary of quiet joins and departures, a frame per line.
        """
        return _framesOf(LINE_WIRE.quietly(joined, left))


def _json(**fields: object) -> bytes:
    """
    One frame holding C{fields} as a JSON object (control characters and
    anything else JSON needs escaped are escaped).
    """
    return textFrame(
        json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    )


class WebSocketJsonWire:
    """
    The room's events as JSON objects, one frame each, for the page: every
    object has a C{type}, and its other fields are data (see README.rst).
    """

    def message(self, sender: str, lines: Sequence[bytes]) -> bytes:
        """
        C{{"type": "message", "from": sender, "text": line}} per line.
        """
        return b"".join(
            [
                _json(type="message", **{"from": sender}, text=line.decode("utf-8"))
                for line in lines
            ]
        )

    def joined(self, name: str) -> bytes:
        """
        C{{"type": "joined", "name": name}}.
        """
        return _json(type="joined", name=name)

    def left(self, name: str) -> bytes:
        """
        C{{"type": "left", "name": name}}.
        """
        return _json(type="left", name=name)

    def renamed(self, oldName: str, newName: str) -> bytes:
        """
        C{{"type": "renamed", "from": old, "to": new}}.
        """
        return _json(type="renamed", **{"from": oldName}, to=newName)

    def notice(self, text: str) -> bytes:
        """
        C{{"type": "notice", "text": text}} (lines separated by LF).
        """
        return _json(type="notice", text=text)

    def error(self, text: str) -> bytes:
        """
        C{{"type": "error", "text": text}}.
        """
        return _json(type="error", text=text)

    def banner(self, text: str) -> bytes:
        """
        C{{"type": "banner", "text": text}} (lines separated by LF).
        """
        return _json(type="banner", text=text)

    def welcome(self, name: str, others: int) -> bytes:
        """
        C{{"type": "welcome", "name": name, "others": N}}.
        """
        return _json(type="welcome", name=name, others=others)

    def members(self, names: Sequence[str], total: int) -> bytes:
        """
        C{{"type": "members", "names": [...], "total": N}}.
        """
        return _json(type="members", names=list(names), total=total)

    def nameChanged(self, name: str) -> bytes:
        """
        C{{"type": "name", "name": name}}: the member's own new name.
        """
        return _json(type="name", name=name)

    def history(self, lines: Sequence[tuple[str, bytes]], omitted: int) -> bytes:
        """
        C{{"type": "history", "lines": [{"from": name, "text": line}, ...],
        "omitted": N}}.
        """
        return _json(
            type="history",
            lines=[
                {"from": sender, "text": line.decode("utf-8")} for sender, line in lines
            ],
            omitted=omitted,
        )

    def quietly(self, joined: Sequence[str], left: Sequence[str]) -> bytes:
        """
        C{{"type": "quietly", "joined": [...], "left": [...]}}: every name,
        so that the page's member list stays right.
        """
        return _json(type="quietly", joined=list(joined), left=list(left))


WEBSOCKET_LINE_WIRE = WebSocketLineWire()
WEBSOCKET_JSON_WIRE = WebSocketJsonWire()

"""
The chat's events on a WebSocket: one text frame per line, or per event.

Two wires, both encoding each event once for all their members (see
L{sockserve.chat.events}): the server's frames are never masked, so the
bytes of one frame serve every recipient as they are.

  - L{WEBSOCKET_LINE_WIRE}, spoken when the client asks for no subprotocol:
    each frame is one line exactly as a TCP client sees it (L{LINE_WIRE}),
    without its line ending, so C{websocat} works like C{telnet};
  - L{WEBSOCKET_JSON_WIRE}, the C{sockserve.v2.json} subprotocol the page
    speaks: each frame is a JSON object saying what happened, with the
    names and text as data, and the room it happened in, so the page can
    be in several rooms and keep their member lists without parsing
    notices. C{sockserve.v1.json}, the subprotocol of sockserve 1.0's page,
    is the same wire for a client in one room at a time.

The JSON wire says when things happened, by the server's clock: the
events of lines said (C{message}, C{private}, C{sent}, C{history}) and of
people coming and going (C{joined}, C{left}) carry C{at}, the time they
were put on the wire, in Unix seconds; so does C{welcome}, which also
tells the longest message the server takes (C{maxLine}, C{--max-line}), so
that the page can say when a line is too long instead of being closed for
it. Clients that do not know these fields (sockserve 1.0's page) ignore
them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Collection, Sequence

from sockserve.chat.events import ACTION, MARKS, NOTICE, Topic
from sockserve.chat.linewire import LINE_WIRE
from sockserve.web.frames import textFrame

# The subprotocols of WEBSOCKET_JSON_WIRE: for a client in several rooms at
# once, and for one in one room at a time (sockserve 1.0's page).
JSON_SUBPROTOCOL = "sockserve.v2.json"
JSON_SUBPROTOCOL_ONE_ROOM = "sockserve.v1.json"


def _framesOf(lines: bytes) -> bytes:
    """
    Turn CR LF lines into one text frame per line, without its ending.
    """
    parts = lines.split(b"\r\n")
    parts.pop()
    return b"".join([textFrame(line) for line in parts])


class WebSocketLineWire:
    """
    The chat's lines, one text frame each, as a TCP client would see them.
    """

    def message(self, room: str, sender: str, lines: Sequence[bytes]) -> bytes:
        """
        One C{<sender> line} frame per line (C{* sender waves} for an
        action, C{-sender- text} for a notice).
        """
        if any(line[:1] in MARKS for line in lines):
            return _framesOf(LINE_WIRE.message(room, sender, lines))
        prefix = b"<" + sender.encode("utf-8") + b"> "
        return b"".join([textFrame(prefix + line) for line in lines])

    def private(self, sender: str, lines: Sequence[bytes]) -> bytes:
        """
        One C{*sender* line} frame per line.
        """
        return _framesOf(LINE_WIRE.private(sender, lines))

    def privateSent(self, recipient: str, lines: Sequence[bytes]) -> bytes:
        """
        One C{-> *recipient* line} frame per line.
        """
        return _framesOf(LINE_WIRE.privateSent(recipient, lines))

    def joined(self, room: str, name: str) -> bytes:
        """
        C{* name joined}.
        """
        return _framesOf(LINE_WIRE.joined(room, name))

    def left(self, room: str, name: str, quit: bool, reason: str = "") -> bytes:
        """
        C{* name left}, and C{(reason)} if it gave one.
        """
        return _framesOf(LINE_WIRE.left(room, name, quit, reason))

    def kicked(
        self, room: str, name: str, by: str, reason: str = "", you: bool = False
    ) -> bytes:
        """
        C{* name was kicked from #room by by}, and C{: reason} if given.
        """
        return _framesOf(LINE_WIRE.kicked(room, name, by, reason, you))

    def renamed(self, room: str, oldName: str, newName: str) -> bytes:
        """
        C{* old is now known as new}.
        """
        return _framesOf(LINE_WIRE.renamed(room, oldName, newName))

    def quietly(self, room: str, joined: Sequence[str], left: Sequence[str]) -> bytes:
        """
        The summary of quiet joins and departures, a frame per line.
        """
        return _framesOf(LINE_WIRE.quietly(room, joined, left))

    def notice(self, text: str) -> bytes:
        """
        C{* text}, a frame per line.
        """
        return _framesOf(LINE_WIRE.notice(text))

    def error(self, text: str, kind: str = "", subject: str = "") -> bytes:
        """
        C{ERROR text}.
        """
        return _framesOf(LINE_WIRE.error(text))

    def banner(self, text: str) -> bytes:
        """
        The banner, a frame per line.
        """
        return _framesOf(LINE_WIRE.banner(text))

    def welcome(
        self, name: str, peer: str, room: str, others: int, topic: Topic | None = None
    ) -> bytes:
        """
        C{* you are name (peer) in #room; N others here}.
        """
        return _framesOf(LINE_WIRE.welcome(name, peer, room, others, topic))

    def entered(
        self,
        room: str,
        others: int,
        names: Sequence[str] = (),
        topic: Topic | None = None,
        operators: Collection[str] = (),
    ) -> bytes:
        """
        C{* you are now in #room; N others here}.
        """
        return _framesOf(LINE_WIRE.entered(room, others, names, topic))

    def topic(self, room: str, topic: Topic | None, changed: bool) -> bytes:
        """
        The topic, as the line wire says it.
        """
        return _framesOf(LINE_WIRE.topic(room, topic, changed))

    def parted(self, room: str) -> bytes:
        """
        C{* you left #room}.
        """
        return _framesOf(LINE_WIRE.parted(room))

    def members(self, room: str, names: Sequence[str], total: int) -> bytes:
        """
        C{* N here: a, b, c}.
        """
        return _framesOf(LINE_WIRE.members(room, names, total))

    def rooms(self, rooms: Sequence[tuple[str, int]], total: int) -> bytes:
        """
        C{* N rooms: #a (3), ...}.
        """
        return _framesOf(LINE_WIRE.rooms(rooms, total))

    def nameChanged(self, name: str, oldName: str = "") -> bytes:
        """
        C{* you are now known as name}.
        """
        return _framesOf(LINE_WIRE.nameChanged(name))

    def history(
        self, room: str, lines: Sequence[tuple[str, bytes]], omitted: int
    ) -> bytes:
        """
        The history, a frame per line.
        """
        return _framesOf(LINE_WIRE.history(room, lines, omitted))


def _json(**fields: object) -> bytes:
    """
    One frame holding C{fields} as a JSON object (control characters and
    anything else JSON needs escaped are escaped).
    """
    return textFrame(
        json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    )


def _topic(topic: Topic | None) -> dict[str, object]:
    """
    C{{"topic": {"text": ..., "by": ..., "at": ...}}}, or nothing for no
    topic.
    """
    if topic is None or not topic.text:
        return {}
    return {"topic": {"text": topic.text, "by": topic.setter, "at": topic.at}}


def _text(line: bytes) -> dict[str, object]:
    """
    C{{"text": line}}, or for an action C{{"text": "waves", "action":
    true}}, for a notice C{{"text": "hello", "notice": true}}.
    """
    mark = line[:1]
    if mark == ACTION:
        return {"text": line[1:].decode("utf-8"), "action": True}
    if mark == NOTICE:
        return {"text": line[1:].decode("utf-8"), "notice": True}
    return {"text": line.decode("utf-8")}


class WebSocketJsonWire:
    """
    The chat's events as JSON objects, one frame each, for the page: every
    object has a C{type}, events in a room name it (C{room}), and their
    other fields are data (see docs/reference/events.rst).

    One of them serves every JSON member of a server (see
    L{WebSocketMemberFactory<sockserve.web.protocol.WebSocketMemberFactory>}),
    made with L{forServer}: its clock, and its C{--max-line}.

    @ivar seconds: what tells the time of an event, in Unix seconds.
    @ivar maxLine: the longest message the server takes, in bytes, told in
        the welcome; C{None}: not told.
    """

    def __init__(
        self, seconds: Callable[[], float] = time.time, maxLine: int | None = None
    ) -> None:
        self.seconds = seconds
        self.maxLine = maxLine

    def forServer(
        self, seconds: Callable[[], float], maxLine: int
    ) -> WebSocketJsonWire:
        """
        The same wire, telling the time by C{seconds} and the server's
        C{maxLine} in its welcome.
        """
        return WebSocketJsonWire(seconds, maxLine)

    def _now(self) -> float:
        """
        The time of an event: Unix seconds, to the millisecond.
        """
        return round(self.seconds(), 3)

    def message(self, room: str, sender: str, lines: Sequence[bytes]) -> bytes:
        """
        C{{"type": "message", "room": room, "from": sender, "text": line,
        "at": seconds}} per line.
        """
        at = self._now()
        return b"".join(
            [
                _json(
                    type="message",
                    room=room,
                    **{"from": sender},
                    **_text(line),
                    at=at,
                )
                for line in lines
            ]
        )

    def private(self, sender: str, lines: Sequence[bytes]) -> bytes:
        """
        C{{"type": "private", "from": sender, "text": line, "at": seconds}}
        per line.
        """
        at = self._now()
        return b"".join(
            [
                _json(type="private", **{"from": sender}, **_text(line), at=at)
                for line in lines
            ]
        )

    def privateSent(self, recipient: str, lines: Sequence[bytes]) -> bytes:
        """
        C{{"type": "sent", "to": recipient, "text": line, "at": seconds}} per
        line: a private message of the member's went through (its text as
        the recipient sees it).
        """
        at = self._now()
        return b"".join(
            [_json(type="sent", to=recipient, **_text(line), at=at) for line in lines]
        )

    def joined(self, room: str, name: str) -> bytes:
        """
        C{{"type": "joined", "room": room, "name": name, "at": seconds}}.
        """
        return _json(type="joined", room=room, name=name, at=self._now())

    def left(self, room: str, name: str, quit: bool, reason: str = "") -> bytes:
        """
        C{{"type": "left", "room": room, "name": name, "at": seconds}}, with
        C{"quit": true} if the member left the chat, not only the room, and
        C{"reason"} if it said why.
        """
        fields: dict[str, object] = {"type": "left", "room": room, "name": name}
        if quit:
            fields["quit"] = True
        if reason:
            fields["reason"] = reason
        fields["at"] = self._now()
        return _json(**fields)

    def kicked(
        self, room: str, name: str, by: str, reason: str = "", you: bool = False
    ) -> bytes:
        """
        C{{"type": "left", "room": room, "name": name, "kickedBy": by,
        "at": seconds}}, with C{"reason"} if the operator gave one: a
        departure, to a page that knows nothing of kicks; to the member
        removed, C{parted} and a notice saying who removed it, and why.
        """
        if you:
            why = f": {reason}" if reason else ""
            return self.parted(room) + self.notice(
                f"you were kicked from #{room} by {by}{why}"
            )
        fields: dict[str, object] = {
            "type": "left",
            "room": room,
            "name": name,
            "kickedBy": by,
        }
        if reason:
            fields["reason"] = reason
        fields["at"] = self._now()
        return _json(**fields)

    def renamed(self, room: str, oldName: str, newName: str) -> bytes:
        """
        C{{"type": "renamed", "room": room, "from": old, "to": new}}.
        """
        return _json(type="renamed", room=room, **{"from": oldName}, to=newName)

    def quietly(self, room: str, joined: Sequence[str], left: Sequence[str]) -> bytes:
        """
        C{{"type": "quietly", "room": room, "joined": [...], "left": [...]}}:
        every name, so that the page's member list stays right.
        """
        return _json(type="quietly", room=room, joined=list(joined), left=list(left))

    def notice(self, text: str) -> bytes:
        """
        C{{"type": "notice", "text": text}} (lines separated by LF).
        """
        return _json(type="notice", text=text)

    def error(self, text: str, kind: str = "", subject: str = "") -> bytes:
        """
        C{{"type": "error", "text": text}}, with C{"kind"} (what failed, see
        L{sockserve.chat.events.ErrorKind}) and C{"subject"} (the room or
        name it concerned) when known.
        """
        fields = {"kind": kind} if kind else {}
        if subject:
            fields["subject"] = subject
        return _json(type="error", text=text, **fields)

    def banner(self, text: str) -> bytes:
        """
        C{{"type": "banner", "text": text}} (lines separated by LF).
        """
        return _json(type="banner", text=text)

    def welcome(
        self, name: str, peer: str, room: str, others: int, topic: Topic | None = None
    ) -> bytes:
        """
        C{{"type": "welcome", "name": name, "room": room, "others": N,
        "maxLine": bytes, "at": seconds}} (the page's own address is not
        news to it; C{maxLine} only if the wire knows it), with C{"topic"}
        if the room has one.
        """
        fields: dict[str, object] = {
            "type": "welcome",
            "name": name,
            "room": room,
            "others": others,
            **_topic(topic),
        }
        if self.maxLine is not None:
            fields["maxLine"] = self.maxLine
        fields["at"] = self._now()
        return _json(**fields)

    def entered(
        self,
        room: str,
        others: int,
        names: Sequence[str] = (),
        topic: Topic | None = None,
        operators: Collection[str] = (),
    ) -> bytes:
        """
        C{{"type": "entered", "room": room, "others": N}}: the member joined
        the room; with C{"topic"} if it has one.
        """
        return _json(type="entered", room=room, others=others, **_topic(topic))

    def topic(self, room: str, topic: Topic | None, changed: bool) -> bytes:
        """
        C{{"type": "topic", "room": room, "topic": {"text", "by", "at"} or
        null, "changed": true}} (C{"changed": false} when asked; a topic
        just cleared has an empty C{"text"}, and says who cleared it).
        """
        shown = (
            None
            if topic is None or not (topic.text or changed)
            else {"text": topic.text, "by": topic.setter, "at": topic.at}
        )
        return _json(type="topic", room=room, topic=shown, changed=changed)

    def parted(self, room: str) -> bytes:
        """
        C{{"type": "parted", "room": room}}: the member left the room.
        """
        return _json(type="parted", room=room)

    def members(self, room: str, names: Sequence[str], total: int) -> bytes:
        """
        C{{"type": "members", "room": room, "names": [...], "total": N}}.
        """
        return _json(type="members", room=room, names=list(names), total=total)

    def rooms(self, rooms: Sequence[tuple[str, int]], total: int) -> bytes:
        """
        C{{"type": "rooms", "rooms": [{"name": ..., "members": N}, ...],
        "total": N}}.
        """
        return _json(
            type="rooms",
            rooms=[{"name": name, "members": members} for name, members in rooms],
            total=total,
        )

    def nameChanged(self, name: str, oldName: str = "") -> bytes:
        """
        C{{"type": "name", "name": name}}: the member's own new name.
        """
        return _json(type="name", name=name)

    def history(
        self, room: str, lines: Sequence[tuple[str, bytes]], omitted: int
    ) -> bytes:
        """
        C{{"type": "history", "room": room, "lines": [{"from": name, "text":
        line}, ...], "omitted": N, "at": seconds}}: C{at} is when the
        history was told (the server does not keep when each line was said).
        """
        return _json(
            type="history",
            room=room,
            lines=[{"from": sender, **_text(line)} for sender, line in lines],
            omitted=omitted,
            at=self._now(),
        )


WEBSOCKET_LINE_WIRE = WebSocketLineWire()
WEBSOCKET_JSON_WIRE = WebSocketJsonWire()

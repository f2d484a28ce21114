"""
What the nodes of a room say to each other through the bus: the room's
events, batched, as JSON.

A node publishes a batch of events at a time (all the events of a reactor
pass, or all those that waited while the bus was away) as one entry of the
room's stream, with the node's id and the batch's sequence number. An event
is a JSON array whose first item says what it is:

  - C{["m", sender, [line, ...]]}: lines said;
  - C{["j", name, quiet]}, C{["l", name, quiet]}: a member joined, left
    (C{quiet}: update who is here, announce nothing);
  - C{["r", old, new, quiet]}: a member changed its name;
  - C{["h", [name, ...]]}: these are this node's members (after the node
    reconnected), announce nothing;
  - C{["x", [name, ...]]}: these members of a node that stopped answering
    left (published by whichever node noticed).

Names and lines are data: they go to Redis as the values of a command, never
as part of a command, a key or a pattern.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sockserve._text import linesAreSafe, safeText

# A batch is not grown beyond this many bytes; a new one is started (so
# that one read of the stream, READ_COUNT batches, stays well below what a
# member may have queued).
BATCH_BYTES = 16 * 1024


@dataclass(frozen=True, slots=True)
class Said:
    """
    Lines a member said.
    """

    sender: str
    lines: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class Presence:
    """
    A member joined (C{kind} C{"j"}), left (C{"l"}) or, from a node that
    stopped answering, is gone (C{"x"}).
    """

    kind: str
    name: str
    quiet: bool


@dataclass(frozen=True, slots=True)
class Rename:
    """
    A member changed its name.
    """

    oldName: str
    newName: str
    quiet: bool


@dataclass(frozen=True, slots=True)
class Here:
    """
    A node's members, as it rejoined the room.
    """

    names: tuple[str, ...]


BusEvent = Said | Presence | Rename | Here


def encodeEvent(event: BusEvent) -> list[Any]:
    """
    Return C{event} as the JSON-ready array of the stream.
    """
    if isinstance(event, Said):
        return [
            "m",
            event.sender,
            [line.decode("utf-8", "replace") for line in event.lines],
        ]
    if isinstance(event, Presence):
        if event.kind == "x":
            return ["x", [event.name]]
        return [event.kind, event.name, event.quiet]
    if isinstance(event, Rename):
        return ["r", event.oldName, event.newName, event.quiet]
    return ["h", list(event.names)]


def encodeBatch(events: Sequence[list[Any]]) -> bytes:
    """
    Return the payload of a stream entry holding C{events} (as
    L{encodeEvent} made them).
    """
    return json.dumps(events, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class BadEntry(ValueError):
    """
    A stream entry is not one a sockserve node wrote.
    """


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise BadEntry(f"expected text, not {value!r:.40}")
    return value


def _safe(text: str) -> bytes:
    """
    One line of C{text} as UTF-8 safe to show: control characters (line
    endings included) and anything not UTF-8 escaped.
    """
    raw = text.encode("utf-8", "replace")
    if linesAreSafe(raw) and b"\n" not in raw and b"\r" not in raw:
        return raw
    return safeText(raw)


def _name(value: object) -> str:
    return _safe(_text(value)).decode("utf-8")


def _safeLine(text: str) -> bytes:
    return _safe(text)


def decodeBatch(payload: bytes) -> list[BusEvent]:
    """
    Return the events of a stream entry's payload; lines are made safe to
    show again (a node of another version, or anything else with access to
    the bus, may have written it).

    @raise BadEntry: if it is not a batch of events.
    """
    try:
        items = json.loads(payload)
    except (ValueError, RecursionError) as error:
        raise BadEntry(f"not JSON: {error}") from None
    if not isinstance(items, list):
        raise BadEntry("not a list of events")
    events: list[BusEvent] = []
    for item in items:
        if not isinstance(item, list) or not item:
            raise BadEntry(f"not an event: {item!r:.40}")
        kind = item[0]
        if kind == "m" and len(item) == 3 and isinstance(item[2], list):
            lines = tuple(_safeLine(_text(line)) for line in item[2])
            events.append(Said(_name(item[1]), lines))
        elif kind in ("j", "l") and len(item) == 3:
            events.append(Presence(kind, _name(item[1]), bool(item[2])))
        elif kind == "r" and len(item) == 4:
            events.append(Rename(_name(item[1]), _name(item[2]), bool(item[3])))
        elif kind == "h" and len(item) == 2 and isinstance(item[1], list):
            events.append(Here(tuple(_name(name) for name in item[1])))
        elif kind == "x" and len(item) == 2 and isinstance(item[1], list):
            events.extend(Presence("x", _name(name), False) for name in item[1])
        else:
            raise BadEntry(f"unknown event {item!r:.40}")
    return events

"""
What the nodes of a bus say to each other: the events of each room, batched,
and private messages.

A node publishes a batch of events at a time (all the events of a reactor
pass, or all those that waited while the bus was away) as one entry of the
room's stream (or, for private messages, of the recipient node's inbox),
with the node's id, the batch's sequence number and the format's version
(C{v}, L{VERSION}: an entry of a later version is skipped with one line in
the log, so that nodes of two versions can share a bus while it is
upgraded, instead of misreading each other). The entry's payload is its
events separated by RS (0x1E), each event's fields separated by US (0x1F),
the first field saying what it is:

  - C{m US sender US line US line ...}: lines said;
  - C{j US name US quiet}, C{l US name US quiet}, C{q US name US quiet}: a
    member joined, parted, or left the chat (C{quiet} C{1}: update who is
    here, announce nothing; C{0}: announce);
  - C{r US old US new US quiet}: a member changed its name;
  - C{t US setter US seconds US text}: the room's topic changed (an empty
    text: cleared);
  - C{h US name US name ...}: these are this node's members (after the node
    reconnected), announce nothing;
  - C{x US name US name ...}: these members of a node that stopped
    answering left (published by whichever node noticed);
  - C{p US sender US recipient US line ...}: lines said to one person alone
    (in a node's inbox).

Names and lines are UTF-8 made safe to show (no control characters, so
never RS or US; a line may start with one mark, the action's, 0x01, or the
notice's, 0x05, see L{sockserve.chat.events.MARKS}, which reading keeps)
before they are sent; lines go as the bytes they are, with no encoding step (JSON cost a
tenth of a node's time under load). What is read is checked and made safe
again: another version, or anything else with access to the bus, may have
written it. Names and lines are data: they go to
Redis as the values of a command, never as part of a command, a key or a
pattern.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sockserve._text import linesAreSafe, safeText
from sockserve.chat.events import MARKS

# A batch is not grown beyond this many bytes; a new one is started (so
# that one read of the stream, READ_COUNT batches, stays well below what a
# member may have queued).
BATCH_BYTES = 16 * 1024
# The format of the entries this node writes; it reads this and earlier
# ones (an entry without a version is of version 1, sockserve 1.0's).
VERSION = 2


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
    A member joined (C{kind} C{"j"}), parted (C{"l"}), left the chat
    (C{"q"}) or, from a node that stopped answering, is gone (C{"x"}).
    """

    kind: str
    name: str
    quiet: bool
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Rename:
    """
    A member changed its name.
    """

    oldName: str
    newName: str
    quiet: bool


@dataclass(frozen=True, slots=True)
class TopicSet:
    """
    A room's topic changed.
    """

    setter: str
    at: float
    text: str


@dataclass(frozen=True, slots=True)
class Here:
    """
    A node's members, as it rejoined the room.
    """

    names: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Private:
    """
    Lines said to one person alone.
    """

    sender: str
    recipient: str
    lines: tuple[bytes, ...]


BusEvent = Said | Presence | Rename | Here | Private | TopicSet


RS = b"\x1e"
US = b"\x1f"
_QUIET = {b"0": False, b"1": True}


def encodeEvent(event: BusEvent) -> bytes:
    """
    Return C{event} as the stream writes it.
    """
    if isinstance(event, Said):
        return US.join([b"m", event.sender.encode("utf-8"), *event.lines])
    if isinstance(event, Presence):
        name = event.name.encode("utf-8")
        if event.kind == "x":
            return b"x" + US + name
        fields = [event.kind.encode(), name, b"1" if event.quiet else b"0"]
        if event.reason:
            # A departure's reason, only when there is one (so that what
            # nodes without reasons read is unchanged).
            fields.append(event.reason.encode("utf-8"))
        return US.join(fields)
    if isinstance(event, Private):
        return US.join(
            [
                b"p",
                event.sender.encode("utf-8"),
                event.recipient.encode("utf-8"),
                *event.lines,
            ]
        )
    if isinstance(event, TopicSet):
        return encodeTopic(event)
    if isinstance(event, Rename):
        return US.join(
            [
                b"r",
                event.oldName.encode("utf-8"),
                event.newName.encode("utf-8"),
                b"1" if event.quiet else b"0",
            ]
        )
    return US.join([b"h", *(name.encode("utf-8") for name in event.names)])


def encodeBatch(events: Sequence[bytes]) -> bytes:
    """
    Return the payload of a stream entry holding C{events} (as
    L{encodeEvent} made them).
    """
    return RS.join(events)


def encodeTopic(event: TopicSet) -> bytes:
    """
    C{t US setter US seconds US text}.
    """
    return US.join(
        [
            b"t",
            event.setter.encode("utf-8"),
            repr(round(event.at, 3)).encode("ascii"),
            event.text.encode("utf-8"),
        ]
    )


def decodeTopic(fields: list[bytes]) -> TopicSet:
    """
    The topic of C{setter, seconds, text} fields (as a stream's C{t} event,
    or as Redis keeps a room's topic), made safe again.

    @raise BadEntry: if they are not a topic.
    """
    try:
        at = float(fields[1])
    except ValueError:
        raise BadEntry(f"not a time: {fields[1]!r:.20}") from None
    if at != at or at in (float("inf"), float("-inf")):
        raise BadEntry("not a time")
    return TopicSet(_name(fields[0]), at, _safe(fields[2]).decode("utf-8", "replace"))


def renameIn(encoded: bytes, old: str, new: str) -> bytes:
    """
    Return the encoded event C{encoded} with the member C{old} called
    C{new}: as sender, as who joined or left, and as the new name of a
    rename.
    """
    fields = encoded.split(US)
    oldName, newName = old.encode("utf-8"), new.encode("utf-8")
    kind = fields[0]
    if kind in (b"m", b"j", b"l", b"q") and len(fields) > 1 and fields[1] == oldName:
        fields[1] = newName
    elif kind == b"r" and len(fields) > 2 and fields[2] == oldName:
        fields[2] = newName
    else:
        return encoded
    return US.join(fields)


class BadEntry(ValueError):
    """
    A stream entry is not one a sockserve node wrote.
    """


def _safe(raw: bytes) -> bytes:
    """
    One line, as UTF-8 safe to show: control characters (line endings
    included) and anything not UTF-8 escaped.
    """
    if linesAreSafe(raw) and b"\n" not in raw and b"\r" not in raw:
        return raw
    return safeText(raw)


def _safeLine(raw: bytes) -> bytes:
    """
    One line said, made safe to show, the mark at its start (an action's
    or a notice's) kept: one, never more.
    """
    if raw[:1] in MARKS:
        return raw[:1] + _safe(raw[1:])
    return _safe(raw)


def safeName(raw: bytes) -> str:
    """
    A name read from the bus, made safe to show.
    """
    return _safe(raw).decode("utf-8", "replace")


_name = safeName


def _quiet(raw: bytes) -> bool:
    try:
        return _QUIET[raw]
    except KeyError:
        raise BadEntry(f"not a flag: {raw!r:.20}") from None


def decodeBatch(payload: bytes) -> list[BusEvent]:
    """
    Return the events of a stream entry's payload, names and lines made
    safe to show again.

    @raise BadEntry: if it is not a batch of events.
    """
    if not payload:
        raise BadEntry("an empty entry")
    events: list[BusEvent] = []
    for record in payload.split(RS):
        fields = record.split(US)
        kind = fields[0]
        count = len(fields)
        if kind == b"m" and count >= 2:
            lines = tuple([_safeLine(line) for line in fields[2:]])
            events.append(Said(_name(fields[1]), lines))
        elif kind in (b"j", b"l", b"q") and count == 3:
            events.append(Presence(kind.decode(), _name(fields[1]), _quiet(fields[2])))
        elif kind in (b"l", b"q") and count == 4:
            reason = _safeLine(fields[3]).decode("utf-8")
            events.append(
                Presence(kind.decode(), _name(fields[1]), _quiet(fields[2]), reason)
            )
        elif kind == b"t" and count == 4:
            events.append(decodeTopic(fields[1:]))
        elif kind == b"r" and count == 4:
            events.append(Rename(_name(fields[1]), _name(fields[2]), _quiet(fields[3])))
        elif kind == b"h":
            events.append(Here(tuple(_name(name) for name in fields[1:])))
        elif kind == b"p" and count >= 3:
            lines = tuple([_safeLine(line) for line in fields[3:]])
            events.append(Private(_name(fields[1]), _name(fields[2]), lines))
        elif kind == b"x" and count >= 2:
            events.extend(Presence("x", _name(name), False) for name in fields[1:])
        else:
            raise BadEntry(f"unknown event {record!r:.40}")
    return events

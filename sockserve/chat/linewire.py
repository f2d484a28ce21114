"""
The line wire: the chat's events as a telnet or netcat user sees them, one
CR LF line each.

Messages are C{<name> text}, actions C{* name waves}, notices from people
(IRC's C{NOTICE}) C{-name- text}, private messages C{*name* text},
presence and the server's notices C{* text}, errors C{ERROR text}. A
line client is in one room at a time, so room events do not name their
room; the answers that concern rooms (C{/join}, C{/part}, C{/rooms}) do,
as C{#name}.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from sockserve._text import plural
from sockserve.chat.events import ACTION, NOTICE, Topic

CRLF = b"\r\n"
# Names listed in one summary of quiet joins or departures.
QUIET_NAMES_SHOWN = 10


def textLines(text: str, prefix: bytes = b"") -> bytes:
    """
    Turn C{text} (lines separated by LF or CR LF) into CR LF lines, each
    after C{prefix}.
    """
    lines = text.replace("\r\n", "\n").split("\n")
    return b"".join(prefix + line.encode("utf-8") + CRLF for line in lines)


def quietSummary(names: Sequence[str], verb: str) -> str:
    """
    Return C{N joined quietly: a, b, c} (C{verb}: joined or left), listing
    at most L{QUIET_NAMES_SHOWN} names.
    """
    shown = ", ".join(names[:QUIET_NAMES_SHOWN])
    if len(names) > QUIET_NAMES_SHOWN:
        shown += f" and {len(names) - QUIET_NAMES_SHOWN} more"
    return (
        f"{plural(len(names), 'member')} {verb} quietly (too many joins from one "
        f"address): {shown}"
    )


def othersHere(others: int) -> str:
    """
    C{1 other here}, C{2 others here}, C{nobody else here}.
    """
    if others == 0:
        return "nobody else here"
    return f"{plural(others, 'other')} here"


class LineWire:
    """
    The line wire: what a telnet or netcat user sees, one CR LF line each.
    """

    def message(self, room: str, sender: str, lines: Sequence[bytes]) -> bytes:
        """
        Each line after C{<sender> }; an action as C{* sender waves}, a
        notice as C{-sender- text}.
        """
        name = sender.encode("utf-8")
        prefix = b"<" + name + b"> "
        return b"".join(
            [
                (prefix + line if line[:1] not in _MARKED else marked(line, name))
                + CRLF
                for line in lines
            ]
        )

    def private(self, sender: str, lines: Sequence[bytes]) -> bytes:
        """
        Each line after C{*sender* } (an action as C{*sender* * sender
        waves}, a notice as C{*sender* -sender- text}).
        """
        return _privately(b"*" + sender.encode("utf-8") + b"* ", sender, lines)

    def privateSent(self, recipient: str, lines: Sequence[bytes]) -> bytes:
        """
        Each line after C{-> *recipient* } (an action as C{-> *recipient* *
        waves}, a notice as C{-> *recipient* (notice) text}).
        """
        return _privately(b"-> *" + recipient.encode("utf-8") + b"* ", "", lines)

    def joined(self, room: str, name: str) -> bytes:
        """
        C{* name joined}.
        """
        return self.notice(f"{name} joined")

    def left(self, room: str, name: str, quit: bool, reason: str = "") -> bytes:
        """
        C{* name left} (parted or quit: a line client sees one room), and
        C{(reason)} if it gave one.
        """
        if reason:
            return self.notice(f"{name} left ({reason})")
        return self.notice(f"{name} left")

    def kicked(
        self, room: str, name: str, by: str, reason: str = "", you: bool = False
    ) -> bytes:
        """
        C{* name was kicked from #room by by} (C{* you were ...} to the
        member removed), and C{: reason} if given.
        """
        why = f": {reason}" if reason else ""
        who = "you were" if you else f"{name} was"
        return self.notice(f"{who} kicked from #{room} by {by}{why}")

    def renamed(self, room: str, oldName: str, newName: str) -> bytes:
        """
        C{* old is now known as new}.
        """
        return self.notice(f"{oldName} is now known as {newName}")

    def quietly(self, room: str, joined: Sequence[str], left: Sequence[str]) -> bytes:
        """
        C{* N joined quietly: a, b, c} and C{* N left quietly: ...} (the
        first names of each, and how many more).
        """
        return b"".join(
            [
                self.notice(quietSummary(names, verb))
                for names, verb in ((joined, "joined"), (left, "left"))
                if names
            ]
        )

    def notice(self, text: str) -> bytes:
        """
        C{* text}, for each line of C{text}.
        """
        return textLines(text, b"* ")

    def error(self, text: str, kind: str = "", subject: str = "") -> bytes:
        """
        C{ERROR text}.
        """
        return b"ERROR " + text.encode("utf-8") + CRLF

    def banner(self, text: str) -> bytes:
        """
        The banner's lines as they are.
        """
        return textLines(text)

    def welcome(
        self, name: str, peer: str, room: str, others: int, topic: Topic | None = None
    ) -> bytes:
        """
        C{* you are name (peer) in #room; N others here}, and the room's
        topic if it has one.
        """
        return self.notice(
            f"you are {name} ({peer}) in #{room}; {othersHere(others)}"
        ) + self._topicIfAny(room, topic)

    def entered(
        self,
        room: str,
        others: int,
        names: Sequence[str] = (),
        topic: Topic | None = None,
        operators: Collection[str] = (),
    ) -> bytes:
        """
        C{* you are now in #room; N others here}, and the room's topic if it
        has one.
        """
        return self.notice(
            f"you are now in #{room}; {othersHere(others)}"
        ) + self._topicIfAny(room, topic)

    def _topicIfAny(self, room: str, topic: Topic | None) -> bytes:
        if topic is None or not topic.text:
            return b""
        return self.topic(room, topic, False)

    def topic(self, room: str, topic: Topic | None, changed: bool) -> bytes:
        """
        C{* alice set the topic: TEXT} (C{* alice cleared the topic}) as it
        changes; C{* the topic of #room: TEXT (set by alice)} or C{* #room
        has no topic} when asked.
        """
        if changed and topic is not None:
            if topic.text:
                return self.notice(f"{topic.setter} set the topic: {topic.text}")
            return self.notice(f"{topic.setter} cleared the topic")
        if topic is None or not topic.text:
            return self.notice(f"#{room} has no topic")
        return self.notice(
            f"the topic of #{room}: {topic.text} (set by {topic.setter})"
        )

    def parted(self, room: str) -> bytes:
        """
        C{* you left #room}.
        """
        return self.notice(f"you left #{room}")

    def members(self, room: str, names: Sequence[str], total: int) -> bytes:
        """
        C{* N here: a, b, c}, and how many more than those listed.
        """
        shown = ", ".join(names)
        if total > len(names):
            shown += f" and {total - len(names)} more"
        return self.notice(f"{total} here: {shown}")

    def rooms(self, rooms: Sequence[tuple[str, int]], total: int) -> bytes:
        """
        C{* N rooms: #a (3), #b (1)}, and how many more than those listed.
        """
        shown = ", ".join(f"#{name} ({members})" for name, members in rooms)
        if total > len(rooms):
            shown += f" and {total - len(rooms)} more"
        return self.notice(f"{plural(total, 'room')}: {shown}")

    def nameChanged(self, name: str, oldName: str = "") -> bytes:
        """
        C{* you are now known as name}.
        """
        return self.notice(f"you are now known as {name}")

    def history(
        self, room: str, lines: Sequence[tuple[str, bytes]], omitted: int
    ) -> bytes:
        """
        The lines said before the member joined, as C{<name> text} lines
        between C{* the last N lines said here:} (C{line} for one) and
        C{* (end of history)};
        the heading says how many lines before those are not shown.
        """
        said = b"".join([self.message(room, sender, (line,)) for sender, line in lines])
        heading = f"the last {plural(len(lines), 'line')} said here"
        if omitted:
            heading += f" ({plural(omitted, 'earlier line')} too long to show)"
        return self.notice(heading + ":") + said + self.notice("(end of history)")


_MARKED = frozenset((ACTION, NOTICE))


def marked(line: bytes, name: bytes) -> bytes:
    """
    A marked line as a line client shows it: an action as C{* name waves}
    (C{* waves} without a name), a notice as C{-name- text} (C{(notice)
    text} without a name); any other line as it is.
    """
    mark, text = line[:1], line[1:]
    if mark == ACTION:
        return b"* " + (name + b" " if name else b"") + text
    if mark == NOTICE:
        return (b"-" + name + b"- " if name else b"(notice) ") + text
    return line


def _privately(prefix: bytes, sender: str, lines: Sequence[bytes]) -> bytes:
    """
    Each line after C{prefix}, a marked one as L{marked} shows it.
    """
    name = sender.encode("utf-8")
    return b"".join([prefix + marked(line, name) + CRLF for line in lines])


LINE_WIRE = LineWire()

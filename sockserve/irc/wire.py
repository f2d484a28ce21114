"""
The chat's events as IRC lines (L{IRCWire}).

Like every wire, an IRC wire formats each event once for all its members
(see L{sockserve.chat.events}): a line in a room of a thousand IRC members
is formatted once. Its members differ in the capabilities they asked for
(C{server-time} adds a tag to every line, C{echo-message} shows a member its
own messages, C{batch} wraps history), so there is one wire per set of
those (L{IRCWires}), each shared by the members that asked for that set.

What is addressed to one member (the numerics, whose first parameter is the
member's nickname) holds L{OWN_NAME} where that nickname goes; the member's
session fills it in (see L{IRCProtocol.personalize
<sockserve.irc.protocol.IRCProtocol.personalize>}). A member that leaves the
chat, or changes its name, is seen in every room a recipient shares with
it, but an IRC client expects one C{QUIT} or C{NICK}: those lines start
with a mark naming who, and the recipient's protocol lets through only the
last (see L{markedName}).

Everyone is shown as C{nick!nick@HOST}, HOST the same word for everyone
(C{--irc-host}): other members' addresses are never shown, on IRC as on the
other front ends.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Collection, Sequence

from twisted.internet.interfaces import IReactorTime

from sockserve.chat.events import ACTION, NOTICE, OWN_NAME, Topic
from sockserve.irc.grammar import LINE_BYTES, fitUTF8

CRLF = b"\r\n"
# Marks of a line that a recipient shows once, whatever the rooms it shares
# with whoever it concerns: QUIT, NICK. MARK_END ends the name.
MARK_QUIT = OWN_NAME + b"\x02"
MARK_NICK = OWN_NAME + b"\x04"
MARK_END = OWN_NAME + b"\x03"
# The most bytes of a departure's reason shown (the rest of the line, names
# and all, fits IRC's 512 beside it).
REASON_BYTES = 300
# The most bytes of one line's text, so that the whole line fits IRC's 512.
_HEADROOM = 2
_batches = itertools.count(1)


def markedName(data: bytes) -> tuple[bytes, str, bytes] | None:
    """
    If C{data} starts with a QUIT or NICK mark, return the mark, the name it
    concerns and the line without the mark; otherwise C{None}.
    """
    if not data.startswith((MARK_QUIT, MARK_NICK)):
        return None
    end = data.find(MARK_END, 2)
    if end < 0:
        return None
    return data[:2], data[2:end].decode("utf-8"), data[end + len(MARK_END) :]


def serverTime(seconds: float) -> str:
    """
    C{seconds} since the epoch as IRCv3's C{time} tag writes it.
    """
    whole = int(seconds)
    millis = int((seconds - whole) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{millis:03d}Z"


class IRCWire:
    """
    The chat's events as IRC lines, for members with one set of
    capabilities.

    @ivar server: the server's name, the source of its numerics.
    @ivar host: the host everyone is shown at.
    @ivar timed: whether lines carry IRCv3's C{time} tag (C{server-time}).
    @ivar echo: whether a member is shown its own messages
        (C{echo-message}).
    @ivar batched: whether history comes in a C{BATCH} (C{batch}).
    """

    def __init__(
        self,
        server: str,
        host: str,
        clock: IReactorTime,
        timed: bool = False,
        echo: bool = False,
        batched: bool = False,
    ) -> None:
        self.server = server
        self.host = host
        self.clock = clock
        self.timed = timed
        self.echo = echo
        self.batched = batched
        self._source = b":" + server.encode("utf-8") + b" "
        self._at = b"@" + host.encode("utf-8")

    # Building lines

    def _tags(self, extra: str = "") -> bytes:
        tags = []
        if self.timed:
            tags.append("time=" + serverTime(self.clock.seconds()))
        if extra:
            tags.append(extra)
        return ("@" + ";".join(tags) + " ").encode("utf-8") if tags else b""

    def prefix(self, name: str) -> bytes:
        """
        C{:nick!nick@host }, the source of what C{name} does.
        """
        nick = name.encode("utf-8")
        return b":" + nick + b"!" + nick + self._at + b" "

    def _own(self) -> bytes:
        return b":" + OWN_NAME + b"!" + OWN_NAME + self._at + b" "

    def numeric(self, code: str, *params: str, text: str | None = None) -> bytes:
        """
        The numeric C{code} to the member (its nickname first), then
        C{params}, then C{text} after C{:} if given (even empty).
        """
        middle = b"".join(b" " + param.encode("utf-8") for param in params)
        last = b"" if text is None else b" :" + _oneLine(text)
        return (
            self._tags()
            + self._source
            + code.encode("ascii")
            + b" "
            + OWN_NAME
            + middle
            + last
            + CRLF
        )

    def _said(
        self,
        source: bytes,
        verb: bytes,
        target: bytes,
        lines: Sequence[bytes],
        tag: str = "",
    ) -> bytes:
        """
        Each line as C{source VERB target :text} (with the tag C{tag} too,
        if given), cut to fit IRC's line length; an action as CTCP ACTION, a
        notice as C{NOTICE} whatever C{verb}.
        """
        tags = self._tags(tag)
        head = tags + source + verb + b" " + target + b" :"
        room = LINE_BYTES - _HEADROOM - len(head) + len(tags)
        out = []
        for line in lines:
            mark = line[:1]
            if mark == ACTION:
                for piece in fitUTF8(line[1:], room - 9):
                    out.append(head + b"\x01ACTION " + piece + b"\x01" + CRLF)
            elif mark == NOTICE:
                notice = tags + source + b"NOTICE " + target + b" :"
                space = LINE_BYTES - _HEADROOM - len(notice) + len(tags)
                out.extend(notice + piece + CRLF for piece in fitUTF8(line[1:], space))
            elif len(line) <= room:
                out.append(head + line + CRLF)
            else:
                out.extend(head + piece + CRLF for piece in fitUTF8(line, room))
        return b"".join(out)

    # ChatWire

    def message(self, room: str, sender: str, lines: Sequence[bytes]) -> bytes:
        """
        C{:sender PRIVMSG #room :line} per line (C{NOTICE} for a notice).
        """
        return self._said(
            self.prefix(sender), b"PRIVMSG", b"#" + room.encode("utf-8"), lines
        )

    def private(self, sender: str, lines: Sequence[bytes]) -> bytes:
        """
        C{:sender PRIVMSG me :line} per line (C{NOTICE} for a notice).
        """
        return self._said(self.prefix(sender), b"PRIVMSG", OWN_NAME, lines)

    def privateSent(self, recipient: str, lines: Sequence[bytes]) -> bytes:
        """
        With C{echo-message}, C{:me PRIVMSG recipient :line} per line
        (C{NOTICE} for a notice); nothing otherwise.
        """
        if not self.echo:
            return b""
        return self._said(self._own(), b"PRIVMSG", recipient.encode("utf-8"), lines)

    def joined(self, room: str, name: str) -> bytes:
        """
        C{:name JOIN #room}.
        """
        return self._tags() + self.prefix(name) + b"JOIN #" + room.encode() + CRLF

    def left(self, room: str, name: str, quit: bool, reason: str = "") -> bytes:
        """
        C{:name PART #room [:reason]}, or C{:name QUIT :Quit[: reason]}
        (marked: shown once). A quit's reason follows C{Quit: }, as IRC
        servers write it, so that nobody's words pass for the server's (a
        ping timeout).
        """
        said = fitUTF8(reason.encode("utf-8"), REASON_BYTES)[0] if reason else b""
        if quit:
            return (
                MARK_QUIT
                + name.encode("utf-8")
                + MARK_END
                + self._tags()
                + self.prefix(name)
                + b"QUIT :Quit"
                + (b": " + said if said else b"")
                + CRLF
            )
        return (
            self._tags()
            + self.prefix(name)
            + b"PART #"
            + room.encode()
            + (b" :" + said if said else b"")
            + CRLF
        )

    def kicked(
        self, room: str, name: str, by: str, reason: str = "", you: bool = False
    ) -> bytes:
        """
        C{:by KICK #room name [:reason]}, the same to the member removed.
        """
        said = fitUTF8(reason.encode("utf-8"), REASON_BYTES)[0] if reason else b""
        return (
            self._tags()
            + self.prefix(by)
            + b"KICK #"
            + room.encode()
            + b" "
            + name.encode("utf-8")
            + (b" :" + said if said else b"")
            + CRLF
        )

    def renamed(self, room: str, oldName: str, newName: str) -> bytes:
        """
        C{:old NICK :new} (marked: shown once).
        """
        return (
            MARK_NICK
            + oldName.encode("utf-8")
            + MARK_END
            + self._tags()
            + self.prefix(oldName)
            + b"NICK :"
            + newName.encode("utf-8")
            + CRLF
        )

    def quietly(self, room: str, joined: Sequence[str], left: Sequence[str]) -> bytes:
        """
        The joins and departures that were not announced at once, as
        C{JOIN} and C{PART} lines: an IRC client keeps its list of who is
        in the channel from them.
        """
        return b"".join(
            [self.joined(room, name) for name in joined]
            + [self.left(room, name, False) for name in left]
        )

    def notice(self, text: str) -> bytes:
        """
        C{:server NOTICE me :line} per line of C{text}.
        """
        tags = self._tags()
        head = tags + self._source + b"NOTICE " + OWN_NAME + b" :"
        return b"".join(
            head + piece + CRLF
            for line in text.replace("\r\n", "\n").split("\n")
            for piece in fitUTF8(line.encode("utf-8"), LINE_BYTES - 100)
        )

    # What failed, as the numeric IRC clients expect.
    _NUMERICS = {
        "not-in-room": ("442", "#"),
        "room-full": ("471", "#"),
        "room-refused": ("403", "#"),
        "too-many-rooms": ("405", "#"),
        "name-invalid": ("432", ""),
        "name-taken": ("433", ""),
        "too-many-renames": ("438", ""),
        "nobody": ("401", ""),
        "unreachable": ("401", ""),
        "unknown-command": ("421", ""),
    }

    def error(self, text: str, kind: str = "", subject: str = "") -> bytes:
        """
        The numeric of C{kind} about C{subject} (C{471 me #lab :the room is
        full}); a notice for a failure IRC has no numeric for; nothing for
        joining a channel the member is in (as IRC servers do).
        """
        if kind == "already-in-room":
            return b""
        found = self._NUMERICS.get(kind)
        if found is None or not subject:
            return self.notice("error: " + text)
        code, sign = found
        return self.numeric(code, sign + subject, text=text)

    def banner(self, text: str) -> bytes:
        """
        The banner, as notices.
        """
        return self.notice(text)

    def welcome(
        self, name: str, peer: str, room: str, others: int, topic: Topic | None = None
    ) -> bytes:
        """
        Nothing: an IRC client is greeted at registration (see
        L{sockserve.irc.protocol}).
        """
        return b""

    def entered(
        self,
        room: str,
        others: int,
        names: Sequence[str] = (),
        topic: Topic | None = None,
        operators: Collection[str] = (),
    ) -> bytes:
        """
        C{:me JOIN #room}, then its topic if it has one (C{332}, C{333}),
        then who is there (C{353}, C{366}).
        """
        channel = "#" + room
        shown = b""
        if topic is not None and topic.text:
            shown = self.topic(room, topic, False)
        return (
            self._tags()
            + self._own()
            + b"JOIN "
            + channel.encode("utf-8")
            + CRLF
            + shown
            + self.names(channel, names, operators)
        )

    def topic(self, room: str, topic: Topic | None, changed: bool) -> bytes:
        """
        C{:setter TOPIC #room :text} as it changes; as asked, C{332} and
        C{333} (who set it, when), or C{331} for none.
        """
        channel = "#" + room
        if changed and topic is not None:
            return (
                self._tags()
                + self.prefix(topic.setter)
                + b"TOPIC "
                + channel.encode("utf-8")
                + b" :"
                + topic.text.encode("utf-8")
                + CRLF
            )
        if topic is None or not topic.text:
            return self.numeric("331", channel, text="No topic is set")
        return self.numeric("332", channel, text=topic.text) + self.numeric(
            "333", channel, topic.setter, str(int(topic.at))
        )

    def names(
        self, channel: str, names: Sequence[str], operators: Collection[str] = ()
    ) -> bytes:
        """
        C{353 me = #room :a b c} (as many lines as it takes) and C{366};
        C{operators} are shown C{@a}.
        """
        if operators:
            names = [f"@{name}" if name in operators else name for name in names]
        out = []
        head = f"= {channel}"
        room = LINE_BYTES - 100 - len(self.server) - len(channel)
        batch: list[str] = []
        size = 0
        for name in names:
            if batch and size + len(name) + 1 > room:
                out.append(self.numeric("353", head, text=" ".join(batch)))
                batch, size = [], 0
            batch.append(name)
            size += len(name) + 1
        if batch:
            out.append(self.numeric("353", head, text=" ".join(batch)))
        out.append(self.numeric("366", channel, text="End of /NAMES list"))
        return b"".join(out)

    def parted(self, room: str) -> bytes:
        """
        C{:me PART #room}.
        """
        return self._tags() + self._own() + b"PART #" + room.encode("utf-8") + CRLF

    def members(self, room: str, names: Sequence[str], total: int) -> bytes:
        """
        Who is in the room, as C{NAMES} answers.
        """
        return self.names("#" + room, names)

    def rooms(self, rooms: Sequence[tuple[str, int]], total: int) -> bytes:
        """
        C{321}, C{322 me #room N :} per room with someone in it, C{323}.

        An IRC channel exists while someone is in it, and IRC clients list
        the channels there are: the default room, which always exists
        (a line client's C{/rooms} shows it), is listed only while someone
        is there.
        """
        return (
            self.numeric("321", "Channel", text="Users  Name")
            + b"".join(
                self.numeric("322", f"#{name}", str(count), text="")
                for name, count in rooms
                if count > 0
            )
            + self.numeric("323", text="End of /LIST")
        )

    def nameChanged(self, name: str, oldName: str = "") -> bytes:
        """
        C{:old NICK :new}.
        """
        return (
            self._tags()
            + self.prefix(oldName or name)
            + b"NICK :"
            + name.encode("utf-8")
            + CRLF
        )

    def history(
        self, room: str, lines: Sequence[tuple[str, bytes]], omitted: int
    ) -> bytes:
        """
        The room's last lines, as C{PRIVMSG}s: in a C{chathistory} C{BATCH}
        for a member that asked for batches, between two notices to the
        channel otherwise.
        """
        channel = b"#" + room.encode("utf-8")
        if self.batched:
            reference = f"h{next(_batches)}"
            tag = f"batch={reference}"
            source = self._source
            tags = self._tags()
            start = tags + source + b"BATCH +" + reference.encode() + b" chathistory "
            end = tags + source + b"BATCH -" + reference.encode() + CRLF
            body = [
                self._said(self.prefix(sender), b"PRIVMSG", channel, (line,), tag)
                for sender, line in lines
            ]
            return start + channel + CRLF + b"".join(body) + end
        heading = f"the last {len(lines)} line(s) said here"
        if omitted:
            heading += f" ({omitted} earlier too long to show)"
        tags = self._tags()
        notice = tags + self._source + b"NOTICE " + channel + b" :"
        body = [
            self._said(self.prefix(sender), b"PRIVMSG", channel, (line,))
            for sender, line in lines
        ]
        return (
            notice
            + heading.encode()
            + b":"
            + CRLF
            + b"".join(body)
            + notice
            + b"(end of history)"
            + CRLF
        )


def _oneLine(text: str) -> bytes:
    """
    C{text} as the last parameter of one line: line endings become spaces.
    """
    return text.replace("\r", " ").replace("\n", " ").encode("utf-8")


class IRCWires:
    """
    The IRC wires of one server, one per set of capabilities that change
    how events are written, each made when first asked for.
    """

    def __init__(self, server: str, host: str, clock: IReactorTime) -> None:
        self.server = server
        self.host = host
        self.clock = clock
        self._wires: dict[tuple[bool, bool, bool], IRCWire] = {}

    def wireFor(self, timed: bool, echo: bool, batched: bool) -> IRCWire:
        """
        The wire of members with these capabilities.
        """
        key = (timed, echo, batched)
        wire = self._wires.get(key)
        if wire is None:
            wire = self._wires[key] = IRCWire(
                self.server, self.host, self.clock, timed, echo, batched
            )
        return wire

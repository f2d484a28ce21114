"""
The chat room over a line protocol (TCP, UNIX sockets): framing, and the
line wire's format for the room's events. Everything else is the session's.
"""

from __future__ import annotations

from collections.abc import Sequence

from sockserve._sending import unsentBytes
from sockserve._text import plural
from sockserve._version import __version__
from sockserve.chat.events import Banner, ChatWire
from sockserve.chat.policy import ChatPolicy
from sockserve.chat.room import QUIET_NAMES_SHOWN, IChatRoom
from sockserve.chat.session import ChatSession
from sockserve.protocol import CRLF, LineServerProtocol, ServerContext

DEFAULT_BANNER = (
    f"Welcome to sockserve {__version__} chat.\n"
    "Enter a message and press enter, and everyone else here receives it.\n"
    "Type /help for commands."
)


def _lines(text: str, prefix: bytes = b"") -> bytes:
    """
    Turn C{text} (lines separated by LF or CR LF) into CR LF lines, each
    after C{prefix}.
    """
    lines = text.replace("\r\n", "\n").split("\n")
    return b"".join(prefix + line.encode("utf-8") + CRLF for line in lines)


class LineWire:
    """
    The line wire: what a telnet or netcat user sees, one CR LF line each.

    Messages are C{<name> text}, presence and notices C{* text}, errors
    C{ERROR text}.
    """

    def message(self, sender: str, lines: Sequence[bytes]) -> bytes:
        """
        Each line after C{<sender> }.
        """
        prefix = b"<" + sender.encode("utf-8") + b"> "
        return b"".join([prefix + line + CRLF for line in lines])

    def joined(self, name: str) -> bytes:
        """
        C{* name joined}.
        """
        return self.notice(f"{name} joined")

    def left(self, name: str) -> bytes:
        """
        C{* name left}.
        """
        return self.notice(f"{name} left")

    def renamed(self, oldName: str, newName: str) -> bytes:
        """
        C{* old is now known as new}.
        """
        return self.notice(f"{oldName} is now known as {newName}")

    def notice(self, text: str) -> bytes:
        """
        C{* text}, for each line of C{text}.
        """
        return _lines(text, b"* ")

    def error(self, text: str) -> bytes:
        """
        C{ERROR text}.
        """
        return b"ERROR " + text.encode("utf-8") + CRLF

    def banner(self, text: str) -> bytes:
        """
        The banner's lines as they are.
        """
        return _lines(text)

    def welcome(self, name: str, others: int) -> bytes:
        """
        C{* you are name; N other(s) here}.
        """
        return self.notice(f"you are {name}; {others} other(s) here")

    def members(self, names: Sequence[str], total: int) -> bytes:
        """
        C{* N here: a, b, c}, and how many more than those listed.
        """
        shown = ", ".join(names)
        if total > len(names):
            shown += f" and {total - len(names)} more"
        return self.notice(f"{total} here: {shown}")

    def nameChanged(self, name: str) -> bytes:
        """
        C{* you are now known as name}.
        """
        return self.notice(f"you are now known as {name}")

    def history(self, lines: Sequence[tuple[str, bytes]], omitted: int) -> bytes:
        """
        The lines said before the member joined, as C{<name> text} lines
        between C{* the last N line(s) said here:} and C{* (end of history)};
        the heading says how many lines before those are not shown.
        """
        said = b"".join([self.message(sender, (line,)) for sender, line in lines])
        heading = f"the last {plural(len(lines), 'line')} said here"
        if omitted:
            heading += f" ({plural(omitted, 'earlier line')} too long to show)"
        return self.notice(heading + ":") + said + self.notice("(end of history)")

    def quietly(self, joined: Sequence[str], left: Sequence[str]) -> bytes:
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


LINE_WIRE = LineWire()


class ChatProtocol(LineServerProtocol):
    """
    A chat member on a line connection: its lines go to its L{ChatSession},
    and the session's output comes back formatted by L{LINE_WIRE}.

    As a push producer registered on its transport, the protocol hears when
    the client stops reading: the session then queues its output, bounded
    (see L{ChatSession.deliver}), rather than stop reading from the client.

    @ivar session: the member's session.
    """

    # Writes go through Twisted's buffer, which sends what several senders
    # bring in one reactor pass with one send per recipient: sending each
    # delivery at once halved deliveries/s in a 100-client room.
    writeDirectly = False

    def __init__(
        self,
        context: ServerContext,
        room: IChatRoom,
        banner: Banner,
        policy: ChatPolicy,
        wire: ChatWire = LINE_WIRE,
    ) -> None:
        super().__init__(context)
        self.session = ChatSession(room, self, wire, banner, policy)

    # ChatConnection, for the session (which writes with self.send)

    def unsent(self) -> int | None:
        """
        How many bytes written for the client it has not taken yet: what
        Twisted holds and what the kernel holds (see L{unsentBytes}).
        """
        return unsentBytes(self.transport)

    def pauseInput(self) -> None:
        """
        Stop reading from the client.
        """
        self.transport.pauseProducing()

    def resumeInput(self) -> None:
        """
        Read from the client again.
        """
        if not self.closing:
            self.transport.resumeProducing()

    def close(self) -> None:
        """
        Leave the room, and close once everything written has been sent.
        """
        try:
            self.session.stop()
        finally:
            super().close()

    def abort(self) -> None:
        """
        Leave the room, and close at once.
        """
        try:
            self.session.stop()
        finally:
            super().abort()

    # The connection's life, handed to the session

    def connectionAdmitted(self) -> None:
        """
        Join the room.
        """
        self.session.start()

    def linesReceived(self, chunk: bytes) -> None:
        """
        Hand the session whole lines.
        """
        self.session.linesReceived(chunk)

    def inputEnded(self) -> None:
        """
        The client half-closed: the session relays an unfinished last line,
        leaves, and closes once its output is sent.
        """
        self.session.inputEnded(self.lines.takePending())

    def beginShutdown(self) -> None:
        """
        Say goodbye, then close.
        """
        self.session.shutdown()

    def connectionClosed(self) -> None:
        """
        Leave the room.
        """
        self.session.connectionLost()

    # IPushProducer: the transport's buffer fills and drains with what the
    # client reads.

    def pauseProducing(self) -> None:
        """
        The client is not reading: the session queues its output.
        """
        self.session.pauseOutput()

    def resumeProducing(self) -> None:
        """
        The client caught up: the session sends what is queued.
        """
        self.session.resumeOutput()

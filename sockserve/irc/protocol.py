"""
An IRC client as a chat member: its connection, its input in order, its
output, keeping it alive.

An L{IRCProtocol} is a line protocol of the server like the line chat's
(L{LineServerProtocol}: the server's guard admits it, times it out, bounds
its lines and logs what it causes), with a L{ChatSession} of its own that
is in several rooms at once and speaks an L{IRCWire}. Each line it sends is
handed, by its verb, to its L{Registration} (C{CAP}, C{PASS}, C{NICK},
C{USER}) or its L{Commands} (everything else), which speak IRC's grammar
(modern.ircdocs.horse) and turn it into the session's intents (C{JOIN #lab}
is L{ChatSession.join}); the answers are the session's events, formatted by
the wire. Twisted's C{IRC} server protocol (L{twisted.words.protocols.irc})
is not used: it decodes each TCP read as UTF-8 (a character split across
reads raises), has no line limit, reads no tags and answers no unknown
command.

Input goes through the session's queue in order: a C{JOIN} the service
answers later holds the lines after it, a flood of C{PRIVMSG} waits for the
readers that are behind (the sender pays), as a line client's lines do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IAddress, IDelayedCall, IReactorTime
from twisted.internet.protocol import ServerFactory
from twisted.logger import Logger

from sockserve._deadlines import Deadlines
from sockserve._framing import LineBuffer
from sockserve._pausing import InputPauser
from sockserve._sending import unsentBytes
from sockserve.chat.events import OWN_NAME, Banner, ChatEvent, ChatWire
from sockserve.chat.names import (
    MAX_NAME_LENGTH,
    MAX_ROOM_LENGTH,
)
from sockserve.chat.policy import ChatPolicy
from sockserve.chat.service import ChatService
from sockserve.chat.session import BULK, TOPIC_LENGTH, ChatSession, SessionState
from sockserve.irc.commands import MAX_TARGETS, Commands
from sockserve.irc.grammar import (
    LINE_BYTES,
    TAG_BYTES,
    BadLine,
    decode,
    formatLine,
    parseLine,
    splitTags,
)
from sockserve.irc.registration import Registration
from sockserve.irc.wire import IRCWire, IRCWires, markedName
from sockserve.protocol import LineServerProtocol, ServerContext

# Seconds a client has to register (NICK and USER, and CAP END once it
# began) before it is closed.
REGISTRATION_TIMEOUT = 60.0
# Verbs allowed before registration.
_BEFORE_REGISTRATION = frozenset(
    {"CAP", "NICK", "USER", "PASS", "AUTHENTICATE", "PING", "PONG", "QUIT"}
)


class Reply(ChatEvent):
    """
    Lines the IRC front end wrote itself (the answer to a C{WHOIS}),
    whatever the wire: they go through the session's bounded output, in
    order with everything else the member receives.
    """

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        super().__init__()
        self.data = data

    def encode(self, wire: ChatWire) -> bytes:
        """
        The lines, as written.
        """
        return self.data


class IRCKeepAlive:
    """
    Ping IRC clients that have sent nothing for C{seconds}, and close those
    that send nothing (not even the C{PONG}) for as long again.
    """

    def __init__(self, clock: IReactorTime, seconds: float) -> None:
        self.seconds = seconds
        self.deadlines: Deadlines[IRCProtocol] = Deadlines(clock, seconds, _quiet)


def _quiet(member: IRCProtocol) -> None:
    member.quiet()


@dataclass(frozen=True)
class IRCSettings:
    """
    What every IRC client of one server shares.

    @ivar context: the server's collaborators (its guard admits, times and
        logs IRC clients as it does every other connection).
    @ivar service: the chat's rooms and people.
    @ivar policy: the rules every member follows.
    @ivar wires: the IRC wires, one per set of capabilities.
    @ivar motd: the message of the day (the banner).
    @ivar network: the network's name (C{005 NETWORK}).
    @ivar pings: the keepalive, or C{None}.
    @ivar clock: the source of time and timers.
    @ivar started: when the server started (C{003}; by default, when the
        settings were made).
    @ivar password: the connection password a client must give (C{PASS})
        before it registers, if any (C{--irc-password-file}).
    """

    context: ServerContext
    service: ChatService
    policy: ChatPolicy
    wires: IRCWires
    motd: str
    clock: IReactorTime
    network: str = "sockserve"
    pings: IRCKeepAlive | None = None
    registrationTimeout: float = REGISTRATION_TIMEOUT
    started: float = -1.0
    password: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.started < 0:
            object.__setattr__(self, "started", self.clock.seconds())

    @property
    def server(self) -> str:
        """
        The server's name.
        """
        return self.wires.server

    def isupport(self) -> list[str]:
        """
        What C{005} says of this server.
        """
        rules = self.service.rules
        tokens = [
            "CASEMAPPING=ascii",
            "CHANTYPES=#",
            f"CHANNELLEN={MAX_ROOM_LENGTH + 1}",
            f"NICKLEN={MAX_NAME_LENGTH}",
            f"NETWORK={self.network}",
            "PREFIX=(ov)@+",
            "CHANMODES=b,,,n",
            f"TOPICLEN={TOPIC_LENGTH}",
            "CHANLIMIT=#:",
            f"TARGMAX=PRIVMSG:1,NOTICE:1,JOIN:{MAX_TARGETS},PART:{MAX_TARGETS},"
            "NAMES:1,WHOIS:1",
            "AWAYLEN=200",
            "SAFELIST",
        ]
        if rules.capacity:
            tokens.append(f"MAXCHANNELUSERS={rules.capacity}")
        return tokens


_PLAIN_PRIVMSG = b"PRIVMSG #"


def plainPrivmsg(raw: bytes) -> tuple[str, str] | None:
    """
    The channel and text of C{raw} if it is a plain C{PRIVMSG #channel
    :text} (no tags, no source, one target, not CTCP, within IRC's line),
    the kind a busy room is made of; else C{None}, for the full parse.
    """
    if not raw.startswith(_PLAIN_PRIVMSG) or len(raw) > LINE_BYTES - 2:
        return None
    parts = raw.split(b" ", 2)
    if len(parts) != 3 or not parts[2].startswith(b":"):
        return None
    target, text = parts[1], parts[2][1:]
    if not text or text.startswith(b"\x01") or b"," in target:
        return None
    return decode(target), decode(text)


class IRCFactory(ServerFactory):
    """
    Builds the IRC clients of one server.
    """

    noisy = False

    def __init__(self, settings: IRCSettings) -> None:
        self.settings = settings

    def buildProtocol(self, addr: IAddress | None) -> IRCProtocol:
        """
        A new IRC client.
        """
        protocol = IRCProtocol(self.settings)
        protocol.factory = self
        return protocol


class IRCProtocol(LineServerProtocol):
    """
    An IRC client in the chat.

    @ivar session: the member's session (in several rooms at once).
    @ivar registration: its registration, and the capabilities it enabled
        (L{Registration}).
    @ivar commands: what it may ask for once registered (L{Commands}).
    """

    log = Logger()
    # Writes go through Twisted's buffer, as the line chat's (one send per
    # recipient for what several senders bring in one pass).
    writeDirectly = False
    frontEnd = "irc"

    def __init__(self, settings: IRCSettings) -> None:
        super().__init__(settings.context)
        self.settings = settings
        self.lines = LineBuffer(TAG_BYTES + LINE_BYTES)
        self.registration = Registration(self)
        self.commands = Commands(self)
        self.session = ChatSession(
            settings.service,
            self,
            self.currentWire(),
            Banner(settings.motd),
            settings.policy,
            multiRoom=True,
            personalize=self.personalize,
        )
        self.pauser: InputPauser | None = None
        self._registrationTimer: IDelayedCall | None = None
        self._pinged = False

    # What the session needs of the connection

    def unsent(self) -> int | None:
        """
        How many bytes written for the client it has not taken yet.
        """
        return unsentBytes(self.transport)

    def named(self, name: str) -> None:
        """
        The client registered as C{name}: the log says which address that
        is.
        """
        self.context.guard.named(self, name)

    def inputPauser(self) -> InputPauser:
        """
        The reasons the client is not read (the session's, and those of
        a wrapper such as IRC over WebSocket's frame pacing).
        """
        if self.pauser is None:
            self.pauser = InputPauser(self.transport, lambda: self.closing)
        return self.pauser

    def pauseInput(self) -> None:
        """
        Stop reading from the client: the session's input waits.
        """
        self.inputPauser().pause("session")

    def resumeInput(self) -> None:
        """
        Read from the client again.
        """
        if self.pauser is not None:
            self.pauser.resume("session")

    def personalize(self, data: bytes) -> bytes:
        """
        Make what the wire formatted for any member this member's: its
        nickname where the wire left L{OWN_NAME}, and a C{QUIT} or C{NICK}
        of someone it shares several rooms with only once, from the last
        of them (the others are dropped: that someone is still there).
        """
        marked = markedName(data)
        if marked is not None:
            _, name, data = marked
            if any(room.holds(name) for room in self.session.rooms):
                return b""
        if OWN_NAME in data:
            data = data.replace(OWN_NAME, self.me())
        return data

    def me(self) -> bytes:
        """
        The client's nickname, C{*} until it has one.
        """
        return (self.session.name or "*").encode("utf-8")

    # The connection's life

    def connectionAdmitted(self) -> None:
        """
        Wait for the client to register.
        """
        timeout = self.settings.registrationTimeout
        if timeout > 0:
            self._registrationTimer = self.settings.clock.callLater(
                timeout, self._registrationTimedOut
            )
        self._keepAlive()

    def registered(self) -> None:
        """
        The client registered: it has all the time it wants now.
        """
        if self._registrationTimer is not None and self._registrationTimer.active():
            self._registrationTimer.cancel()
        self._registrationTimer = None

    def _registrationTimedOut(self) -> None:
        self._registrationTimer = None
        if self.session.state is not SessionState.PRESENT:
            self.context.stats.refused["registration_timeout"] += 1
            self.sendErrorAndClose("Closing link: registration timed out")

    def connectionClosed(self) -> None:
        """
        Leave every room.
        """
        self._cancelTimers()
        self.session.connectionLost()

    def _cancelTimers(self) -> None:
        if self._registrationTimer is not None and self._registrationTimer.active():
            self._registrationTimer.cancel()
        self._registrationTimer = None
        pings = self.settings.pings
        if pings is not None:
            pings.deadlines.discard(self)

    def close(self) -> None:
        """
        Leave every room, and close once everything written has been sent.
        """
        try:
            self._cancelTimers()
            self.session.stop()
        finally:
            super().close()

    def abort(self) -> None:
        """
        Leave every room, and close at once.
        """
        try:
            self._cancelTimers()
            self.session.stop()
        finally:
            super().abort()

    def formatError(self, message: str) -> bytes:
        """
        C{ERROR :message}, as IRC closes a connection.
        """
        return formatLine(None, "ERROR", message)

    def beginShutdown(self) -> None:
        """
        The server is stopping: say so, then close.
        """
        if self.session.state is not SessionState.PRESENT:
            self.sendErrorAndClose("Closing link: the server is shutting down")
            return
        self.session.service.close()
        goodbye = "the server is shutting down; goodbye"
        self.reply(self.notice(goodbye) + self.formatError("Closing link: " + goodbye))
        self.session.quit()

    def inputEnded(self) -> None:
        """
        The client half-closed: handle what it sent, then leave.
        """
        unfinished = self.lines.takePending()
        if unfinished:
            self.linesReceived(unfinished + b"\n")
        self.session.input.add(self.session.quit)

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

    # Keeping alive

    def _keepAlive(self) -> None:
        pings = self.settings.pings
        if pings is not None and not self.closing:
            self._pinged = False
            pings.deadlines.set(self)

    def quiet(self) -> None:
        """
        The client sent nothing for a while: ping it, or, if it was pinged
        already and still said nothing, close.
        """
        pings = self.settings.pings
        if self.closing or pings is None:
            return
        if self._pinged:
            self.context.stats.refused["ping_timeout"] += 1
            self.logLimited(
                "ping timeouts",
                "Client {peer} did not answer a ping; closing",
                peer=self.peer,
            )
            self.session.stop()
            self.sendErrorAndClose(
                f"Closing link: ping timeout ({pings.seconds:g} seconds)"
            )
            return
        self._pinged = True
        self.write(formatLine(None, "PING", self.settings.server))
        pings.deadlines.set(self)

    # Input

    def dataReceived(self, data: bytes) -> None:
        """
        Any input shows the client is there.
        """
        if self.settings.pings is not None and not self.closing:
            self._keepAlive()
        super().dataReceived(data)

    def linesReceived(self, chunk: bytes) -> None:
        """
        Handle each line, in order, through the session's input queue.
        """
        if self.closing:
            return
        bulk = self.session.isFlood(chunk)
        lines = chunk.split(b"\n")
        lines.pop()
        add = self.session.input.add
        present = self.session.state is SessionState.PRESENT
        # Plain PRIVMSGs in a row to one channel are said in one go (one
        # message to each member, as a line client's read of several lines
        # is), not one at a time: most of a busy room's input. A flood goes
        # in slices of BULK bytes, each waiting for readers far behind.
        channel = ""
        texts: list[str] = []
        size = 0
        say = self.commands.sayInChannel
        for raw in lines:
            raw = raw.rstrip(b"\r")
            if not raw:
                continue
            said = plainPrivmsg(raw) if present else None
            if said is not None and said[0] == channel and size < BULK:
                texts.append(said[1])
                size += len(raw)
                continue
            if texts:
                add(partial(say, channel, texts, bulk))
            if said is not None:
                channel, texts, size = said[0], [said[1]], len(raw)
            else:
                channel, texts, size = "", [], 0
                add(partial(self._line, raw, bulk))
        if texts:
            add(partial(say, channel, texts, bulk))

    def _line(self, raw: bytes, bulk: bool) -> Deferred[Any] | None:
        """
        Handle one line; return what the lines after it wait for, if
        anything.
        """
        if self.closing:
            return None
        tags, rest = splitTags(raw)
        if len(tags) > TAG_BYTES or len(rest) > LINE_BYTES - 2:
            self.write(self.numeric("417", text="Input line was too long"))
            return None
        try:
            message = parseLine(raw)
        except BadLine:
            return None
        verb = message.verb
        if (
            self.session.state is not SessionState.PRESENT
            and verb not in _BEFORE_REGISTRATION
        ):
            self.write(self.numeric("451", text="You have not registered"))
            return None
        handler = getattr(self.registration, "irc_" + verb, None) or getattr(
            self.commands, "irc_" + verb, None
        )
        if handler is None:
            self.write(self.numeric("421", verb, text="Unknown command"))
            return None
        result: Deferred[Any] | None = handler(message, bulk)
        return result

    # Writing

    def write(self, data: bytes) -> None:
        """
        Write C{data} (lines with the nickname in place): before
        registration straight to the client, after it in order with what
        the member receives.
        """
        if self.session.state is SessionState.PRESENT:
            self.reply(data)
            return
        if not self.closing:
            self.context.stats.bytesOut += len(data)
            self.send(data.replace(OWN_NAME, self.me()))

    def reply(self, data: bytes) -> None:
        """
        Lines for the member, in order with the rest of its output (and
        bounded as it is).
        """
        if data:
            self.session.receive(Reply(data))

    def numeric(self, code: str, *params: str, text: str | None = None) -> bytes:
        """
        The numeric C{code} for this client (see L{IRCWire.numeric}).
        """
        return self.currentWire().numeric(code, *params, text=text)

    def notice(self, text: str) -> bytes:
        """
        A notice from the server to this client.
        """
        return self.currentWire().notice(text)

    def currentWire(self) -> IRCWire:
        """
        The wire of the capabilities the client enabled.
        """
        caps = self.registration.caps
        return self.settings.wires.wireFor(
            "server-time" in caps, "echo-message" in caps, "batch" in caps
        )

    # Staying connected


__all__ = ["IRCFactory", "IRCKeepAlive", "IRCProtocol", "IRCSettings", "Reply"]

"""
An IRC client as a chat member: registration, capabilities, and IRC's
commands turned into the session's intents.

An L{IRCProtocol} is a line protocol of the server like the line chat's
(L{LineServerProtocol}: the server's guard admits it, times it out, bounds
its lines and logs what it causes), with a L{ChatSession} of its own that
is in several rooms at once and speaks an L{IRCWire}. What this module
adds is IRC's grammar (modern.ircdocs.horse): registration (C{CAP},
C{PASS}, C{NICK}, C{USER}; C{001} to C{005}, C{LUSERS} and the banner as
the message of the day), then C{JOIN}, C{PART}, C{PRIVMSG}, C{NOTICE},
C{NAMES}, C{WHO}, C{WHOIS}, C{LIST}, C{TOPIC}, C{MODE}, C{AWAY}, C{PING},
C{QUIT} and a few more, each the session's intent (C{JOIN #lab} is
L{ChatSession.join}); the answers are the session's events, formatted by
the wire. Twisted's C{IRC} server protocol (L{twisted.words.protocols.irc})
is not used: it decodes each TCP read as UTF-8 (a character split across
reads raises), has no line limit, reads no tags and answers no unknown
command.

Input goes through the session's queue in order: a C{JOIN} the service
answers later holds the lines after it, a flood of C{PRIVMSG} waits for the
readers that are behind (the sender pays), as a line client's lines do.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IAddress, IDelayedCall, IReactorTime
from twisted.internet.protocol import ServerFactory
from twisted.logger import Logger
from twisted.python.failure import Failure

from sockserve._deadlines import Deadlines
from sockserve._framing import LineBuffer
from sockserve._pausing import InputPauser
from sockserve._sending import unsentBytes
from sockserve._text import safeText
from sockserve._version import __version__
from sockserve.chat.events import ACTION, OWN_NAME, Banner, ChatEvent, ChatWire, Message
from sockserve.chat.names import (
    MAX_NAME_LENGTH,
    MAX_ROOM_LENGTH,
    NameRejected,
    checkName,
    nameKey,
    roomKey,
)
from sockserve.chat.policy import ChatPolicy
from sockserve.chat.room import ChatRoom
from sockserve.chat.service import ChatService, ServiceClosed
from sockserve.chat.session import ChatSession, SessionState, pending
from sockserve.irc.grammar import (
    LINE_BYTES,
    TAG_BYTES,
    BadLine,
    IRCMessage,
    formatLine,
    parseLine,
    splitTags,
    withoutFormatting,
)
from sockserve.irc.wire import IRCWire, IRCWires, markedName
from sockserve.protocol import LineServerProtocol, ServerContext

# The capabilities offered (IRCv3). message-tags: tags are read (and not
# relayed); multi-prefix: there are no channel prefixes to list;
# cap-notify: the list never changes.
CAPABILITIES = (
    "batch",
    "cap-notify",
    "echo-message",
    "message-tags",
    "multi-prefix",
    "server-time",
)
# Seconds a client has to register (NICK and USER, and CAP END once it
# began) before it is closed.
REGISTRATION_TIMEOUT = 60.0
# Targets one PRIVMSG, JOIN or PART may name.
MAX_TARGETS = 4
# Verbs allowed before registration.
_BEFORE_REGISTRATION = frozenset(
    {"CAP", "NICK", "USER", "PASS", "PING", "PONG", "QUIT"}
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
            "CHANMODES=b,,,nt",
            "CHANLIMIT=#:",
            f"TARGMAX=PRIVMSG:1,NOTICE:1,JOIN:{MAX_TARGETS},PART:{MAX_TARGETS},"
            "NAMES:1,WHOIS:1",
            "AWAYLEN=200",
            "SAFELIST",
        ]
        if rules.capacity:
            tokens.append(f"MAXCHANNELUSERS={rules.capacity}")
        return tokens


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
    @ivar nick: the nickname asked for, until registered.
    @ivar user: what C{USER} gave: the user name and the real name.
    @ivar caps: the capabilities the client enabled.
    @ivar negotiating: whether capability negotiation holds registration.
    @ivar away: the member's away message, if it is away.
    """

    log = Logger()
    # Writes go through Twisted's buffer, as the line chat's (one send per
    # recipient for what several senders bring in one pass).
    writeDirectly = False

    def __init__(self, settings: IRCSettings) -> None:
        super().__init__(settings.context)
        self.settings = settings
        self.lines = LineBuffer(TAG_BYTES + LINE_BYTES)
        self.caps: set[str] = set()
        self.session = ChatSession(
            settings.service,
            self,
            self._wire(),
            Banner(settings.motd),
            settings.policy,
            multiRoom=True,
            personalize=self.personalize,
        )
        self.nick: str | None = None
        self.user: tuple[str, str] | None = None
        self.password: str | None = None
        self.negotiating = False
        self.registering = False
        self.away: str | None = None
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

    def pauseInput(self) -> None:
        """
        Stop reading from the client: the session's input waits.
        """
        if self.pauser is None:
            self.pauser = InputPauser(self.transport, lambda: self.closing)
        self.pauser.pause("session")

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
            data = data.replace(OWN_NAME, self._me())
        return data

    def _me(self) -> bytes:
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
        self.reply(self._notice(goodbye) + self.formatError("Closing link: " + goodbye))
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
        for raw in lines:
            raw = raw.rstrip(b"\r")
            if raw:
                add(partial(self._line, raw, bulk))

    def _line(self, raw: bytes, bulk: bool) -> Deferred[Any] | None:
        """
        Handle one line; return what the lines after it wait for, if
        anything.
        """
        if self.closing:
            return None
        tags, rest = splitTags(raw)
        if len(tags) > TAG_BYTES or len(rest) > LINE_BYTES - 2:
            self.write(self._numeric("417", text="Input line was too long"))
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
            self.write(self._numeric("451", text="You have not registered"))
            return None
        handler = getattr(self, "irc_" + verb, None)
        if handler is None:
            self.write(self._numeric("421", verb, text="Unknown command"))
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
            self.send(data.replace(OWN_NAME, self._me()))

    def reply(self, data: bytes) -> None:
        """
        Lines for the member, in order with the rest of its output (and
        bounded as it is).
        """
        if data:
            self.session.receive(Reply(data))

    def _numeric(self, code: str, *params: str, text: str | None = None) -> bytes:
        return self._wire().numeric(code, *params, text=text)

    def _notice(self, text: str) -> bytes:
        return self._wire().notice(text)

    def _wire(self) -> IRCWire:
        caps = self.caps
        return self.settings.wires.wireFor(
            "server-time" in caps, "echo-message" in caps, "batch" in caps
        )

    # Registration

    def irc_CAP(self, message: IRCMessage, bulk: bool) -> Deferred[Any] | None:
        """
        Capability negotiation (IRCv3): C{LS}, C{LIST}, C{REQ}, C{END}.
        """
        if not message.params:
            self.write(self._numeric("461", "CAP", text="Not enough parameters"))
            return None
        command = message.params[0].upper()
        me = self._me().decode("utf-8")
        registered = self.session.state is SessionState.PRESENT
        if command == "LS":
            if not registered:
                self.negotiating = True
            self.write(
                formatLine(
                    self.settings.server, "CAP", me, "LS", " ".join(CAPABILITIES)
                )
            )
        elif command == "LIST":
            self.write(
                formatLine(
                    self.settings.server, "CAP", me, "LIST", " ".join(sorted(self.caps))
                )
            )
        elif command == "REQ":
            if not registered:
                self.negotiating = True
            wanted = message.params[1] if len(message.params) > 1 else ""
            self._request(wanted, me)
        elif command == "END":
            if self.negotiating:
                self.negotiating = False
                return self._register()
        else:
            self.write(self._numeric("410", command, text="Invalid CAP command"))
        return None

    def _request(self, wanted: str, me: str) -> None:
        names = wanted.split()
        adding = {name for name in names if not name.startswith("-")}
        removing = {name[1:] for name in names if name.startswith("-")}
        if not names or not (adding | removing) <= set(CAPABILITIES):
            self.write(formatLine(self.settings.server, "CAP", me, "NAK", wanted))
            return
        self.caps = (self.caps | adding) - removing
        self.session.wire = self._wire()
        self.write(formatLine(self.settings.server, "CAP", me, "ACK", wanted))

    def irc_PASS(self, message: IRCMessage, bulk: bool) -> None:
        """
        A password: noted (there are no accounts yet); once registered,
        C{462}.
        """
        if self.session.state is SessionState.PRESENT:
            self.write(self._numeric("462", text="You may not reregister"))
            return
        if not message.params:
            self.write(self._numeric("461", "PASS", text="Not enough parameters"))
            return
        self.password = message.params[0]

    def irc_USER(self, message: IRCMessage, bulk: bool) -> Deferred[Any] | None:
        """
        C{USER name mode unused :real name}.
        """
        if self.session.state is SessionState.PRESENT:
            self.write(self._numeric("462", text="You may not reregister"))
            return None
        if len(message.params) < 4 or not message.params[0]:
            self.write(self._numeric("461", "USER", text="Not enough parameters"))
            return None
        self.user = (message.params[0][:MAX_NAME_LENGTH], message.params[3][:200])
        return self._register()

    def irc_NICK(self, message: IRCMessage, bulk: bool) -> Deferred[Any] | None:
        """
        C{NICK name}: the nickname to register under, or a change of name.
        """
        if not message.params or not message.params[0]:
            self.write(self._numeric("431", text="No nickname given"))
            return None
        wanted = message.params[0]
        if self.session.state is SessionState.PRESENT:
            return self.session.rename(wanted)
        try:
            checkName(wanted)
        except NameRejected as rejected:
            shown = safeText(wanted.encode("utf-8")).decode("utf-8")[:40]
            self.write(self._numeric("432", shown, text=str(rejected)))
            return None
        self.nick = wanted
        return self._register()

    def _register(self) -> Deferred[Any] | None:
        """
        Register, once the client gave a nickname and C{USER} and ended
        capability negotiation if it began one.
        """
        if (
            self.nick is None
            or self.user is None
            or self.negotiating
            or self.registering
            or self.session.state is SessionState.PRESENT
        ):
            return None
        self.registering = True
        wanted = self.nick

        def registered(name: str) -> None:
            self.registering = False
            if self._registrationTimer is not None:
                self._registrationTimer.cancel()
                self._registrationTimer = None

        def refused(failure: Failure) -> None:
            self.registering = False
            rejected = failure.value
            if isinstance(rejected, NameRejected):
                code = "433" if rejected.taken else "432"
                self.write(self._numeric(code, wanted, text=str(rejected)))
                self.nick = None
                return
            if failure.check(ServiceClosed):
                self.refuse("Closing link: the server is shutting down", "shutdown")
                return
            self.log.failure("Could not register {nick}", failure, nick=wanted)
            self.refuse(
                "Closing link: the chat is unavailable; try again later", "unavailable"
            )

        return self.session.register(wanted, self._greeting).addCallbacks(
            registered, refused
        )

    def _greeting(self, name: str) -> bytes:
        """
        What a client is told once registered as C{name}: C{001} to C{005},
        C{LUSERS}, the message of the day.
        """
        settings = self.settings
        server = settings.server
        wire = self._wire()
        created = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(settings.started))
        isupport = settings.isupport()
        lines = [
            wire.numeric(
                "001",
                text=f"Welcome to the {settings.network} IRC network, {name} "
                f"(you are connected from {self.peer})",
            ),
            wire.numeric(
                "002", text=f"Your host is {server}, running sockserve {__version__}"
            ),
            wire.numeric("003", text=f"This server was created {created}"),
            wire.numeric("004", server, f"sockserve-{__version__}", "i", "bnt", "b"),
        ]
        for start in range(0, len(isupport), 12):
            lines.append(
                wire.numeric(
                    "005",
                    *isupport[start : start + 12],
                    text="are supported by this server",
                )
            )
        lines.append(self._lusers(wire))
        lines.append(self._motd(wire))
        return b"".join(lines).replace(OWN_NAME, name.encode("utf-8"))

    def _lusers(self, wire: IRCWire) -> bytes:
        service = self.settings.service
        people = service.people.population
        rooms = service.roomCount()
        return (
            wire.numeric(
                "251", text=f"There are {people} users and 0 invisible on 1 servers"
            )
            + wire.numeric("254", str(rooms), text="channels formed")
            + wire.numeric("255", text=f"I have {people} clients and 1 servers")
        )

    def _motd(self, wire: IRCWire) -> bytes:
        motd = self.settings.motd
        if not motd:
            return wire.numeric("422", text="MOTD File is missing")
        lines = motd.replace("\r\n", "\n").split("\n")
        return (
            wire.numeric("375", text=f"- {self.settings.server} Message of the day - ")
            + b"".join(wire.numeric("372", text="- " + line) for line in lines)
            + wire.numeric("376", text="End of /MOTD command.")
        )

    # Staying connected

    def irc_PING(self, message: IRCMessage, bulk: bool) -> None:
        """
        C{PING token}: C{PONG server :token}.
        """
        if not message.params:
            self.write(self._numeric("409", text="No origin specified"))
            return
        server = self.settings.server
        self.write(formatLine(server, "PONG", server, message.params[-1]))

    def irc_PONG(self, message: IRCMessage, bulk: bool) -> None:
        """
        The answer to our C{PING}: the client is there (any input says so).
        """

    def irc_QUIT(self, message: IRCMessage, bulk: bool) -> None:
        """
        C{QUIT [:reason]}: leave, with an C{ERROR} line as IRC servers do.
        """
        if self.session.state is not SessionState.PRESENT:
            self.sendErrorAndClose("Closing link (quit)")
            return
        self.reply(self.formatError("Closing link (quit)"))
        self.session.quit()

    # Channels

    def _channels(self, text: str) -> list[str]:
        return [name for name in text.split(",") if name][:MAX_TARGETS]

    def _badChannel(self, name: str) -> bytes | None:
        if not name.startswith("#") or len(name) < 2:
            shown = safeText(name.encode("utf-8")).decode("utf-8")[:40]
            return self._numeric("403", shown or "*", text="No such channel")
        return None

    def _each(
        self, items: Sequence[str], do: Callable[[str], Deferred[Any] | None]
    ) -> Deferred[Any] | None:
        """
        C{do} each item in turn; the rest wait for one the service answers
        later.
        """
        for index, item in enumerate(items):
            step = do(item)
            if step is not None and pending(step):
                rest = items[index + 1 :]
                if rest:
                    self.session.input.next(partial(self._each, rest, do))
                return step
        return None

    def irc_JOIN(self, message: IRCMessage, bulk: bool) -> Deferred[Any] | None:
        """
        C{JOIN #a,#b}: join each (C{JOIN 0}: leave them all).
        """
        if not message.params:
            self.write(self._numeric("461", "JOIN", text="Not enough parameters"))
            return None
        if message.params[0] == "0":
            for room in self.session.rooms:
                self.session.part(room.name)
            return None
        return self._each(self._channels(message.params[0]), self._join)

    def _join(self, channel: str) -> Deferred[Any] | None:
        bad = self._badChannel(channel)
        if bad is not None:
            self.write(bad)
            return None
        return self.session.join(channel)

    def irc_PART(self, message: IRCMessage, bulk: bool) -> None:
        """
        C{PART #a,#b [:reason]}: leave each.
        """
        if not message.params:
            self.write(self._numeric("461", "PART", text="Not enough parameters"))
            return
        for channel in self._channels(message.params[0]):
            bad = self._badChannel(channel)
            if bad is not None:
                self.write(bad)
            else:
                self.session.part(channel)

    def _myRoom(self, channel: str) -> ChatRoom | None:
        key = roomKey(channel.removeprefix("#"))
        for room in self.session.rooms:
            if room.key == key:
                return room
        return None

    def _knownRoom(self, channel: str) -> ChatRoom | None:
        return self._myRoom(channel) or self.settings.service.room(
            channel.removeprefix("#")
        )

    def irc_NAMES(self, message: IRCMessage, bulk: bool) -> None:
        """
        C{NAMES [#room]}: who is in it (in each of the member's rooms, by
        default).
        """
        wire = self._wire()
        if not message.params:
            for room in self.session.rooms:
                self.reply(wire.names("#" + room.name, room.names()))
            return
        for channel in self._channels(message.params[0]):
            known = self._knownRoom(channel)
            names = known.names() if known is not None else []
            self.reply(wire.names(channel, names))

    def irc_WHO(self, message: IRCMessage, bulk: bool) -> None:
        """
        C{WHO #room} (its members) or C{WHO nick}: C{352} each, then
        C{315}.
        """
        mask = message.params[0] if message.params else "*"
        wire = self._wire()
        server, host = self.settings.server, self.settings.wires.host
        out = []

        def row(channel: str, name: str) -> None:
            flags = "G" if name == self.session.name and self.away else "H"
            out.append(
                wire.numeric(
                    "352", channel, name, host, server, name, flags, text=f"0 {name}"
                )
            )

        if mask.startswith("#"):
            room = self._knownRoom(mask)
            if room is not None:
                for name in room.names():
                    row("#" + room.name, name)
        else:
            found = self.settings.service.people.holderOf(mask)
            if found is not None:
                row("*", found)
        out.append(wire.numeric("315", mask, text="End of /WHO list"))
        self.reply(b"".join(out))

    def irc_WHOIS(self, message: IRCMessage, bulk: bool) -> None:
        """
        C{WHOIS nick}: C{311}, C{319}, C{312}, C{318} (C{401} for nobody).
        """
        if not message.params:
            self.write(self._numeric("431", text="No nickname given"))
            return
        wanted = message.params[-1].split(",")[0]
        wire = self._wire()
        service = self.settings.service
        found = service.people.holderOf(wanted)
        if found is None:
            self.reply(
                wire.numeric("401", wanted, text="No such nick/channel")
                + wire.numeric("318", wanted, text="End of /WHOIS list")
            )
            return
        host = self.settings.wires.host
        rooms = [
            "#" + room.name
            for room in (service.room(name) for name, _ in service.localRooms())
            if room is not None and room.holds(found)
        ]
        out = [wire.numeric("311", found, found, host, "*", text=found)]
        if rooms:
            out.append(wire.numeric("319", found, text=" ".join(rooms)))
        out.append(wire.numeric("312", found, self.settings.server, text="sockserve"))
        if found == self.session.name and self.away:
            out.append(wire.numeric("301", found, text=self.away))
        out.append(wire.numeric("318", found, text="End of /WHOIS list"))
        self.reply(b"".join(out))

    def irc_LIST(self, message: IRCMessage, bulk: bool) -> Deferred[Any] | None:
        """
        C{LIST}: the rooms and how many are in each.
        """
        return self.session.listRooms()

    def irc_TOPIC(self, message: IRCMessage, bulk: bool) -> None:
        """
        C{TOPIC #room}: rooms have no topic (C{331}).
        """
        if not message.params:
            self.write(self._numeric("461", "TOPIC", text="Not enough parameters"))
            return
        channel = message.params[0]
        room = self._myRoom(channel)
        if room is None:
            self.write(self._numeric("442", channel, text="You're not on that channel"))
            return
        if len(message.params) > 1:
            self.write(
                self._numeric("482", "#" + room.name, text="Topics cannot be set here")
            )
            return
        self.write(self._numeric("331", "#" + room.name, text="No topic is set"))

    def irc_MODE(self, message: IRCMessage, bulk: bool) -> None:
        """
        C{MODE #room} (C{324}, C{329}), C{MODE #room b} (an empty ban list),
        C{MODE nick} (C{221}); no mode can be changed.
        """
        if not message.params:
            self.write(self._numeric("461", "MODE", text="Not enough parameters"))
            return
        target = message.params[0]
        modes = message.params[1] if len(message.params) > 1 else ""
        if target.startswith("#"):
            room = self._knownRoom(target)
            if room is None:
                self.write(self._numeric("403", target, text="No such channel"))
                return
            channel = "#" + room.name
            if not modes:
                self.write(
                    self._numeric("324", channel, "+nt")
                    + self._numeric("329", channel, str(int(self.settings.started)))
                )
            elif modes.lstrip("+") == "b":
                self.write(
                    self._numeric("368", channel, text="End of channel ban list")
                )
            else:
                self.write(
                    self._numeric("482", channel, text="Modes cannot be changed here")
                )
            return
        if nameKey(target) != nameKey(self.session.name):
            self.write(self._numeric("502", text="Cannot change mode for other users"))
            return
        if not modes:
            self.write(self._numeric("221", "+"))

    def irc_AWAY(self, message: IRCMessage, bulk: bool) -> None:
        """
        C{AWAY :message} (C{306}) or C{AWAY} (back, C{305}).
        """
        text = message.params[0] if message.params else ""
        if text:
            self.away = safeText(text.encode("utf-8")).decode("utf-8")[:200]
            self.write(self._numeric("306", text="You have been marked as being away"))
        else:
            self.away = None
            self.write(
                self._numeric("305", text="You are no longer marked as being away")
            )

    def irc_ISON(self, message: IRCMessage, bulk: bool) -> None:
        """
        C{ISON a b c}: which of those are here (C{303}).
        """
        people = self.settings.service.people
        names = " ".join(message.params).split()[:32]
        here = [found for found in map(people.holderOf, names) if found is not None]
        self.write(self._numeric("303", text=" ".join(here)))

    def irc_USERHOST(self, message: IRCMessage, bulk: bool) -> None:
        """
        C{USERHOST a b}: C{302} with C{nick=+nick@host} for those here.
        """
        people = self.settings.service.people
        host = self.settings.wires.host
        found = [people.holderOf(name) for name in message.params[:5]]
        self.write(
            self._numeric(
                "302",
                text=" ".join(f"{name}=+{name}@{host}" for name in found if name),
            )
        )

    def irc_LUSERS(self, message: IRCMessage, bulk: bool) -> None:
        """
        C{LUSERS}: how many people and rooms.
        """
        self.write(self._lusers(self._wire()))

    def irc_MOTD(self, message: IRCMessage, bulk: bool) -> None:
        """
        C{MOTD}: the message of the day again.
        """
        self.write(self._motd(self._wire()))

    def irc_VERSION(self, message: IRCMessage, bulk: bool) -> None:
        """
        C{VERSION}: C{351}, and C{005} again.
        """
        self.write(
            self._numeric(
                "351",
                f"sockserve-{__version__}",
                self.settings.server,
                text="sockserve",
            )
        )

    def _notChannelOperator(self, message: IRCMessage, bulk: bool) -> None:
        channel = message.params[0] if message.params else "*"
        self.write(
            self._numeric("482", channel, text="There are no channel operators here")
        )

    irc_KICK = _notChannelOperator
    irc_INVITE = _notChannelOperator

    # Messages

    def irc_PRIVMSG(self, message: IRCMessage, bulk: bool) -> Deferred[Any] | None:
        """
        C{PRIVMSG #room :text} to a room of the member's, C{PRIVMSG nick
        :text} to a person, wherever it is; CTCP C{ACTION} is an action.
        """
        return self._say(message, bulk, notice=False)

    def irc_NOTICE(self, message: IRCMessage, bulk: bool) -> Deferred[Any] | None:
        """
        C{NOTICE}: as C{PRIVMSG}, without error replies.
        """
        return self._say(message, bulk, notice=True)

    def _say(
        self, message: IRCMessage, bulk: bool, notice: bool
    ) -> Deferred[Any] | None:
        params = message.params
        if not params or not params[0]:
            if not notice:
                self.write(
                    self._numeric("411", text=f"No recipient given ({message.verb})")
                )
            return None
        if len(params) < 2 or not params[1]:
            if not notice:
                self.write(self._numeric("412", text="No text to send"))
            return None
        targets = params[0].split(",")
        if len(targets) > 1:
            if not notice:
                self.write(self._numeric("407", params[0], text="Too many targets"))
            return None
        target = targets[0]
        text = withoutFormatting(params[1])
        action = False
        if text.startswith("\x01"):
            body = text.strip("\x01")
            verb, _, rest = body.partition(" ")
            if verb.upper() != "ACTION" or not rest:
                # Other CTCP (VERSION, PING, ...) is not relayed.
                return None
            text, action = rest, True
        safe = safeText(text.encode("utf-8")).decode("utf-8")
        if target.startswith("#"):
            return self._sayIn(target, safe, action, bulk, notice)
        return self.session.message(target, safe, action)

    def _sayIn(
        self, channel: str, text: str, action: bool, bulk: bool, notice: bool
    ) -> Deferred[Any] | None:
        room = self._myRoom(channel)
        if room is None:
            if not notice:
                if self._knownRoom(channel) is None:
                    self.write(self._numeric("403", channel, text="No such channel"))
                else:
                    self.write(
                        self._numeric("404", channel, text="Cannot send to channel")
                    )
            return None
        if bulk and room.pressure is not None and room.pressure.holdsBack(self.session):
            return room.pressure.hold(self.session).addCallback(
                lambda ignored: self._sayIn(channel, text, action, False, notice)
            )
        line = text.encode("utf-8")
        lines = [ACTION + line if action else line]
        waiting = self.session.say(lines, room)
        if "echo-message" in self.caps:
            self.session.receive(Message(room.name, self.session.name, lines))
        return waiting


__all__ = ["IRCFactory", "IRCKeepAlive", "IRCProtocol", "IRCSettings", "Reply"]

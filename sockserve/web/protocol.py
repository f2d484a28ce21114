"""
A chat member on a WebSocket: frames in, lines to the session, frames out.

After the HTTP upgrade (see L{sockserve.web.site}) the TCP connection belongs
to a L{WebSocketChatProtocol}, built by its own factory
(L{WebSocketMemberFactory}, with its own settings). It is made of the parts
every front end uses, not a subclass of another front end: the server's
L{ConnectionGuard} (admission, limits, the idle timeout, logging,
statistics, shutdown), a L{ChatSession} (commands, names, rooms, bounded
output), and one L{InputPauser} for every reason its client is not read.

What the client sends is parsed by L{ClientFrames}. This module does what
Twisted's WebSocket protocol does not: it bounds each message before it is
buffered (the limit is C{--max-line}; a longer message closes with code
1009), refuses binary messages (code 1003), sees the close code the client
sends, and pings a client that has gone quiet, dropping it if no pong comes
(see L{KeepAlive}).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import (
    IDelayedCall,
    IPushProducer,
    IReactorTime,
    ISSLTransport,
)
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from sockserve._addresses import describeAddress, hostOf
from sockserve._deadlines import Deadlines
from sockserve._pausing import InputPauser
from sockserve._sending import unsentBytes
from sockserve._text import plural
from sockserve.chat.events import Banner, ChatWire, Error
from sockserve.chat.policy import ChatPolicy
from sockserve.chat.service import ChatService
from sockserve.chat.session import ChatSession
from sockserve.protocol import ERROR_GRACE, IServerTransport, ServerContext
from sockserve.web._pacing import FramePacer
from sockserve.web.frames import (
    GOING_AWAY,
    MESSAGE_TOO_BIG,
    NORMAL,
    PING,
    POLICY_VIOLATION,
    PONG,
    TRY_AGAIN_LATER,
    UNSUPPORTED_DATA,
    Binary,
    ClientFrames,
    Close,
    Ping,
    TooBig,
    closeFrame,
    serverFrame,
)
from sockserve.web.sessions import PageLogin
from sockserve.web.wires import WebSocketJsonWire


class KeepAlive:
    """
    Ping WebSocket members that have sent nothing for C{seconds}, and drop
    those that still have sent nothing (not even the pong) C{seconds} after
    the ping: a client that vanished without a word (a phone that lost its
    network, a laptop that went to sleep) does not keep its seat until TCP
    notices, which can take hours.

    One L{Deadlines} serves every member: a read resets a dict entry, not a
    timer.
    """

    def __init__(self, clock: IReactorTime, seconds: float) -> None:
        self.seconds = seconds
        self.deadlines: Deadlines[WebSocketChatProtocol] = Deadlines(
            clock, seconds, _quiet
        )


def _quiet(member: WebSocketChatProtocol) -> None:
    member.quiet()


@dataclass(frozen=True)
class WebSocketSettings:
    """
    What every WebSocket member of one server shares.

    @ivar context: the server's collaborators; its guard admits, times and
        logs the members as it does every other connection.
    @ivar service: the chat's rooms and people.
    @ivar banner: the greeting.
    @ivar policy: the rules every member follows.
    @ivar maxMessage: the longest message a client may send, in bytes
        (C{--max-line}).
    @ivar pings: the keepalive, or C{None}.
    """

    context: ServerContext
    service: ChatService
    banner: Banner
    policy: ChatPolicy
    maxMessage: int
    pings: KeepAlive | None = None


class WebSocketMemberFactory(Factory):
    """
    Builds the members of the WebSockets of one server's web site: each
    upgraded connection becomes a L{WebSocketChatProtocol} speaking the wire
    the handshake chose.
    """

    noisy = False

    def __init__(self, settings: WebSocketSettings) -> None:
        self.settings = settings
        # The JSON wires of this server's members, by the wire the
        # handshake chose: telling the server's time and --max-line.
        self._jsonWires: dict[WebSocketJsonWire, WebSocketJsonWire] = {}

    def buildMember(
        self, wire: ChatWire, multiRoom: bool, login: PageLogin | None = None
    ) -> WebSocketChatProtocol:
        """
        A member for a connection whose handshake chose C{wire} (a JSON
        wire becomes this server's, see L{WebSocketJsonWire.forServer}), in
        several rooms at once if C{multiRoom}, logged in (or refused) as the
        browser's cookie says (C{login}), if it brought one.
        """
        if isinstance(wire, WebSocketJsonWire):
            own = self._jsonWires.get(wire)
            if own is None:
                settings = self.settings
                own = self._jsonWires[wire] = wire.forServer(
                    settings.context.clock.seconds, settings.maxMessage
                )
            wire = own
        member = WebSocketChatProtocol(self.settings, wire, multiRoom)
        member.factory = self
        member.login = login
        return member


@implementer(IPushProducer)
class WebSocketChatProtocol(Protocol):
    """
    A chat member on a WebSocket, once the upgrade is done.

    Each text message the client sends is a line as typed (several, if it
    holds line feeds); what the member receives is written as frames
    already formatted by its wire (see L{sockserve.web.wires}).

    As a push producer registered on its transport, it hears when the
    client stops reading: the session then queues its output, bounded.

    @ivar session: the member's session.
    @ivar frames: the parser of what the client sends.
    @ivar pings: the keepalive pinging quiet members, if any.
    @ivar closeCode: the code the server's close frame will carry.
    @ivar closing: set once no more input is handled.
    @ivar login: the login the browser's cookie brought (the page's), if
        any: the member arrives logged in to its account, or is refused
        (banned); it is logged out if the session is revoked.
    """

    log = Logger()
    transport: IServerTransport
    frontEnd = "websocket"
    login: PageLogin | None = None

    def __init__(
        self, settings: WebSocketSettings, wire: ChatWire, multiRoom: bool = False
    ) -> None:
        self.settings = settings
        self.context = settings.context
        self.guard = settings.context.guard
        self.wire = wire
        self.session = ChatSession(
            settings.service,
            self,
            wire,
            settings.banner,
            settings.policy,
            multiRoom=multiRoom,
        )
        self.frames = ClientFrames(settings.maxMessage)
        self.pings = settings.pings
        self.closeCode: int = NORMAL
        self.closeReason = ""
        self.closing = False
        self.admitted = False
        self.pauser: InputPauser | None = None
        self._closeSent = False
        self._pinged = False
        self._pongOwed: bytes | None = None
        self.framesPaced: FramePacer | None = None
        self._lingering: IDelayedCall | None = None

    # What the session and the guard know of the connection

    @property
    def peer(self) -> str:
        """
        The client's address, as C{host:port}.
        """
        return describeAddress(self.transport.getPeer())

    @property
    def peerHost(self) -> str | None:
        """
        The client's host, or C{None} for a UNIX socket.
        """
        return hostOf(self.transport.getPeer())

    @property
    def secure(self) -> bool:
        """
        Whether nobody can read what the client sends on the way: over TLS
        (wss), or a UNIX socket.
        """
        return ISSLTransport.providedBy(self.transport) or self.peerHost is None

    @property
    def send(self) -> Any:
        """
        Write frames, through Twisted's buffer (which coalesces a reactor
        pass's frames to one recipient into one send).
        """
        return self.transport.write

    def unsent(self) -> int | None:
        """
        How many bytes written for the client it has not taken yet.
        """
        return unsentBytes(self.transport)

    def logLimited(self, kind: str, format: str, **fields: Any) -> None:
        """
        Log something the client caused, at the server's bounded rate.
        """
        self.guard.logLimited(kind, format, log=self.log, **fields)

    def named(self, name: str) -> None:
        """
        The client goes by C{name}: the log says which address that is.
        """
        self.guard.named(self, name)

    # The connection's life

    def connectionMade(self) -> None:
        """
        Take the connection over from the HTTP channel that upgraded it
        (it was the transport's producer), be admitted through the guard,
        and join as any member does.
        """
        self.transport.unregisterProducer()
        self.pauser = InputPauser(self.transport, lambda: self.closing)
        self.framesPaced = FramePacer(self.context.clock, self.pauser)
        refusal = self.guard.admit(self)
        if refusal is not None:
            self.closeCode = (
                POLICY_VIOLATION if refusal.kind == "banned" else TRY_AGAIN_LATER
            )
            self.closeReason = refusal.kind
            self.sendErrorAndClose(refusal.message)
            return
        self.admitted = True
        self.transport.registerProducer(self, True)
        if self.pings is not None:
            self.pings.deadlines.set(self)
        login = self.login
        if login is not None:
            if login.account is None:
                self.refuse(login.refusal or "you may not log in", "banned")
                return
            self.session.account = login.account
            login.sessions.attach(login.token, self, self.sessionRevoked)
        self.session.start()

    def sessionRevoked(self) -> None:
        """
        The page's login this member arrived with ended (C{DELETE
        /session}): log out of its account, as C{/logout} does (unless the
        member logged out, or in to another account, since). It is handled
        in turn with the member's input, as a C{/logout} it typed: after its
        arrival, if it is still arriving.
        """
        if not self.closing:
            self.session.input.add(self._logOutOfPageLogin)

    def _logOutOfPageLogin(self) -> Deferred[None] | None:
        login = self.login
        account = self.session.account
        if self.closing or login is None or login.account is None:
            return None
        if account is None or account.key != login.account.key:
            return None
        return self.session.logOut()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """
        Forget the member: its keepalive, its timers, its session.
        """
        self.closing = True
        if self.login is not None:
            self.login.sessions.detach(self.login.token, self)
        if self.pings is not None:
            self.pings.deadlines.discard(self)
        if self.framesPaced is not None:
            self.framesPaced.stop()
        if self._lingering is not None and self._lingering.active():
            self._lingering.cancel()
        self._lingering = None
        self.guard.gone(self, self.admitted)
        self.session.connectionLost()

    # Input

    def dataReceived(self, data: bytes) -> None:
        """
        Parse frames; hand the session the lines of every complete text
        message in C{data} at once, as a line member hands it a read.
        """
        if self.closing:
            return
        self.context.stats.bytesIn += len(data)
        if self.pings is not None:
            self._pinged = False
            self.pings.deadlines.set(self)
        messages: list[bytes] = []
        events = self.frames.feed(data)
        if self.framesPaced is not None:
            self.framesPaced.charge(len(events))
        for event in events:
            kind = type(event)
            if kind is bytes:
                assert isinstance(event, bytes)
                messages.append(event)
            elif kind is Ping:
                assert isinstance(event, Ping)
                self.pingReceived(event.payload)
            elif kind is TooBig:
                self._deliver(messages)
                self.messageTooBig(self.settings.maxMessage)
                return
            elif kind is Binary:
                self._deliver(messages)
                self.binaryMessage()
                return
            elif kind is Close:
                assert isinstance(event, Close)
                self._deliver(messages)
                self.closeReceived(event)
                return
        self._deliver(messages)

    def _deliver(self, messages: list[bytes]) -> None:
        """
        Hand the session the lines of C{messages}, in one chunk of LF lines.
        """
        if not messages or self.closing:
            return
        chunk = b"\n".join(messages).replace(b"\r\n", b"\n") + b"\n"
        if chunk.strip(b"\r\n\x00"):
            self.guard.active(self)
        self.context.stats.linesIn += chunk.count(b"\n")
        self.session.linesReceived(chunk)

    def pingReceived(self, payload: bytes) -> None:
        """
        Answer a ping; while the client does not read what it is sent, keep
        only the latest ping to answer once it does (RFC 6455 5.5.3), so
        that a flood of pings cannot fill the server's memory with pongs.
        """
        if self.session.outputPaused:
            self._pongOwed = payload
            return
        self.transport.write(serverFrame(PONG, payload))

    # ChatConnection: input paused for the session

    def pauseInput(self) -> None:
        """
        Stop reading (the session's input waits): its pongs wait unread, so
        its keepalive waits too.
        """
        if self.pauser is not None:
            self.pauser.pause("session")

    def resumeInput(self) -> None:
        """
        Read again, and start the keepalive afresh.
        """
        if self.pings is not None and not self.closing:
            self._pinged = False
            self.pings.deadlines.set(self)
        if self.pauser is not None:
            self.pauser.resume("session")

    # What ends a member

    def messageTooBig(self, limit: int) -> None:
        """
        A message exceeded C{limit} bytes: say so, and close with 1009.
        """
        self.logLimited(
            "lines too long",
            "Client {peer} sent a message longer than {limit} bytes; closing",
            peer=self.peer,
            limit=limit,
        )
        self.context.stats.refused["line_too_long"] += 1
        self.closeCode = MESSAGE_TOO_BIG
        self.closeReason = "message too long"
        self.sendErrorAndClose(f"message too long (the limit is {limit} bytes)")

    def binaryMessage(self) -> None:
        """
        The client sent a binary message: the chat speaks text; close with
        1003.
        """
        self.logLimited(
            "binary messages",
            "Client {peer} sent a binary message; closing",
            peer=self.peer,
        )
        self.context.stats.refused["binary"] += 1
        self.closeCode = UNSUPPORTED_DATA
        self.closeReason = "text messages only"
        self.sendErrorAndClose("binary messages are not accepted; send text")

    def closeReceived(self, event: Close) -> None:
        """
        The client closed the WebSocket, or broke its protocol: answer with
        a close frame (its code, or the error's), leave and close.
        """
        if event.broken:
            self.logLimited(
                "protocol errors",
                "Client {peer} broke the WebSocket protocol ({reason}); closing",
                peer=self.peer,
                reason=event.reason,
            )
            self.context.stats.refused["protocol_error"] += 1
        self.transport.write(
            closeFrame(event.code, event.reason if event.broken else "")
        )
        self._closeSent = True
        self.close()

    def quiet(self) -> None:
        """
        Nothing came from the client for a while: ping it, or, if it has
        not answered the last ping, drop it.
        """
        if self.closing or self.pings is None:
            return
        paused = self.pauser is not None and bool(self.pauser.reasons)
        if paused or self.session.outputPaused:
            # The server is not reading the client, or the client is still
            # reading what it was sent (its pong waits behind it): that is
            # for pacing and --max-pending to judge, not the keepalive.
            self._pinged = False
            self.pings.deadlines.set(self)
            return
        if self._pinged:
            self.logLimited(
                "unanswered pings",
                "Client {peer} did not answer a ping; disconnecting",
                peer=self.peer,
            )
            self.context.stats.refused["no_pong"] += 1
            self.abort()
            return
        self._pinged = True
        self.transport.write(serverFrame(PING, b"sockserve"))
        self.pings.deadlines.set(self)

    def timeoutConnection(self) -> None:
        """
        The member was idle too long: close with 1008 after saying so.
        """
        seconds = self.context.limits.idleTimeout
        self.logLimited(
            "idle clients",
            "Client {peer} idle for {seconds}s; closing",
            peer=self.peer,
            seconds=seconds,
        )
        self.context.stats.refused["idle"] += 1
        self.closeCode = POLICY_VIOLATION
        self.closeReason = "idle too long"
        self.sendErrorAndClose(
            f"idle for {plural(seconds, 'second')}; closing the connection"
        )

    def refuse(self, reason: str, kind: str) -> None:
        """
        Refuse the member: the chat is full, or unavailable (close with
        1013, try again later, the close reason saying which C{kind} of
        refusal), or shutting down (1001, going away), or removed by an
        operator (1008, policy violation: C{kicked}, C{banned}; a page does
        not come straight back).
        """
        self.guard.refused(self, reason, kind)
        if kind == "shutdown":
            self.closeCode = GOING_AWAY
            self.closeReason = "server shutting down"
        elif kind in ("kicked", "banned"):
            self.closeCode = POLICY_VIOLATION
            self.closeReason = kind
        else:
            self.closeCode = TRY_AGAIN_LATER
            self.closeReason = kind
        self.sendErrorAndClose(reason)

    def beginShutdown(self) -> None:
        """
        The server is stopping: say goodbye, and close with 1001.
        """
        self.closeCode = GOING_AWAY
        self.closeReason = "server shutting down"
        self.session.shutdown()

    # Output and closing

    def sendErrorAndClose(self, message: str) -> None:
        """
        Send one error, as the member's wire shows it, and close once it is
        written.
        """
        if self.closing:
            return
        data = Error(message).encodedFor(self.wire)
        self.context.stats.bytesOut += len(data)
        self.transport.write(data)
        self.close()
        # A client that does not read even its error keeps no place.
        self._lingering = self.context.clock.callLater(ERROR_GRACE, self.abort)

    def close(self) -> None:
        """
        Leave, send the close frame after everything queued, and close.
        """
        self.session.stop()
        if not self._closeSent:
            self._closeSent = True
            self.transport.write(closeFrame(self.closeCode, self.closeReason))
        self.closing = True
        self.guard.inactive(self)
        if self.admitted:
            # Registered once admitted (a refused member never was).
            self.transport.unregisterProducer()
        self.transport.loseConnection()

    def abort(self) -> None:
        """
        Leave, and close at once, without a close frame.
        """
        self.session.stop()
        self._closeSent = True
        self.closing = True
        self.transport.abortConnection()

    # IPushProducer: the transport's buffer fills and drains with what the
    # client reads.

    def pauseProducing(self) -> None:
        """
        The client is not reading: the session queues its output.
        """
        self.session.pauseOutput()

    def resumeProducing(self) -> None:
        """
        The client reads again: answer the last ping it sent meanwhile, and
        the session sends what is queued.
        """
        owed, self._pongOwed = self._pongOwed, None
        if owed is not None and not self.closing:
            self.transport.write(serverFrame(PONG, owed))
        self.session.resumeOutput()

    def stopProducing(self) -> None:
        """
        The transport is going away; nothing to release.
        """

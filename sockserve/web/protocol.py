"""
A chat member on a WebSocket: frames in, lines to the session, frames out.

After the HTTP upgrade (see L{sockserve.web.site}) the TCP connection belongs
to a L{WebSocketChatProtocol}. It is a L{ChatProtocol} whose input is text
messages rather than a byte stream and whose wire writes frames: admission,
limits, the idle timeout, the session with its commands and bounded output,
and the shutdown goodbye are the TCP member's, not copies of them.

What the client sends is parsed by L{ClientFrames}. This module does what
Twisted's WebSocket protocol does not: it bounds each message before it is
buffered (the limit is C{--max-line}; a longer message closes with code
1009), refuses binary messages (code 1003), sees the close code the client
sends, and pings a client that has gone quiet, dropping it if no pong comes
(see L{KeepAlive}).
"""

from __future__ import annotations

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.protocol import connectionDone
from twisted.python.failure import Failure

from sockserve._deadlines import Deadlines
from sockserve.chat.events import Banner, ChatWire, Error
from sockserve.chat.policy import Budget, ChatPolicy
from sockserve.chat.protocol import ChatProtocol
from sockserve.chat.room import IChatRoom
from sockserve.protocol import ServerContext
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

# Frames a second one client may send, after a burst of FRAME_BURST: far
# more than anyone types, far fewer than a flood of empty frames or pings,
# which cost the server a microsecond or two each and the sender nothing.
# Beyond it, the sender's input waits (the sender pays).
FRAME_RATE = 20_000
FRAME_BURST = 40_000
# Reads with fewer frames than this are not counted (the common case).
FRAMES_COUNTED = 32


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


class WebSocketChatProtocol(ChatProtocol):
    """
    A chat member on a WebSocket, once the upgrade is done.

    Each text message the client sends is a line as typed (several, if it
    holds line feeds); what the member receives is written as frames
    already formatted by its wire (see L{sockserve.web.wires}).

    @ivar frames: the parser of what the client sends.
    @ivar pings: the keepalive pinging quiet members, if any.
    @ivar closeCode: the code the server's close frame will carry.
    """

    def __init__(
        self,
        context: ServerContext,
        room: IChatRoom,
        banner: Banner,
        policy: ChatPolicy,
        wire: ChatWire,
        pings: KeepAlive | None = None,
    ) -> None:
        super().__init__(context, room, banner, policy, wire)
        self.wire = wire
        self.frames = ClientFrames(context.limits.maxLine)
        self.pings = pings
        self.closeCode: int = NORMAL
        self.closeReason = ""
        self._closeSent = False
        self._pinged = False
        self._pongOwed: bytes | None = None
        self._inputPaused = False
        self._frameBudget: Budget | None = None
        self._frameHold: IDelayedCall | None = None

    def connectionMade(self) -> None:
        """
        Take the connection over from the HTTP channel that upgraded it
        (it was the transport's producer), then join as any member does.
        """
        self.transport.unregisterProducer()
        super().connectionMade()
        if self.admitted and self.pings is not None:
            self.pings.deadlines.set(self)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """
        Forget the member, and its keepalive.
        """
        if self.pings is not None:
            self.pings.deadlines.discard(self)
        if self._frameHold is not None and self._frameHold.active():
            self._frameHold.cancel()
        self._frameHold = None
        super().connectionLost(reason)

    # Input

    def dataReceived(self, data: bytes) -> None:
        """
        Parse frames; hand the session the lines of every complete text
        message in C{data} at once, as the TCP member hands it a read.
        """
        if self.closing:
            return
        self.context.stats.bytesIn += len(data)
        if self.pings is not None:
            self._pinged = False
            self.pings.deadlines.set(self)
        messages: list[bytes] = []
        events = self.frames.feed(data)
        if len(events) >= FRAMES_COUNTED:
            self._chargeFrames(len(events))
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
                self.messageTooBig(self.context.limits.maxLine)
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

    def _chargeFrames(self, count: int) -> None:
        """
        Charge the client for C{count} frames; past L{FRAME_RATE} a second,
        stop reading it for as long as it ran ahead.
        """
        if self._frameBudget is None:
            self._frameBudget = Budget(FRAME_BURST)
        clock = self.context.clock
        wait = self._frameBudget.spend(clock.seconds(), count, FRAME_RATE, FRAME_BURST)
        if wait <= 0 or self._frameHold is not None:
            return
        self.transport.pauseProducing()
        self._frameHold = clock.callLater(wait, self._frameHoldOver)

    def _frameHoldOver(self) -> None:
        self._frameHold = None
        if not self._inputPaused and not self.closing:
            self.transport.resumeProducing()

    def _deliver(self, messages: list[bytes]) -> None:
        """
        Hand the session the lines of C{messages}, in one chunk of LF lines.
        """
        if not messages or self.closing:
            return
        chunk = b"\n".join(messages).replace(b"\r\n", b"\n") + b"\n"
        if self.context.idleDeadlines is not None and chunk.strip(b"\r\n\x00"):
            self.context.idleDeadlines.set(self)
        self.context.stats.linesIn += chunk.count(b"\n")
        self.linesReceived(chunk)

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

    def resumeProducing(self) -> None:
        """
        The client reads again: answer the last ping it sent meanwhile.
        """
        owed, self._pongOwed = self._pongOwed, None
        if owed is not None and not self.closing:
            self.transport.write(serverFrame(PONG, owed))
        super().resumeProducing()

    def pauseInput(self) -> None:
        """
        Stop reading (the client floods, or the room is busy with its
        request): its pongs wait unread, so its keepalive waits too.
        """
        self._inputPaused = True
        super().pauseInput()

    def resumeInput(self) -> None:
        """
        Read again, and start the keepalive afresh.
        """
        self._inputPaused = False
        if self.pings is not None and not self.closing:
            self._pinged = False
            self.pings.deadlines.set(self)
        if self._frameHold is None:
            super().resumeInput()

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
        The client sent a binary message: the room speaks text; close with
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
        self.session.stop()
        self.close()

    # Keepalive

    def quiet(self) -> None:
        """
        Nothing came from the client for a while: ping it, or, if it has
        not answered the last ping, drop it.
        """
        if self.closing or self.pings is None:
            return
        if self._inputPaused or self._frameHold or self.session.outputPaused:
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

    # Output and closing

    def formatError(self, message: str) -> bytes:
        """
        An error, as the member's wire shows it.
        """
        return Error(message).encodedFor(self.wire)

    def refuse(self, reason: str, kind: str = "refused") -> None:
        """
        Refuse the member (the server is full, ...): close with 1013, try
        again later.
        """
        self.closeCode = TRY_AGAIN_LATER
        self.closeReason = "try again later"
        super().refuse(reason, kind)

    def timeoutConnection(self) -> None:
        """
        The member was idle too long: close with 1008 after saying so.
        """
        self.closeCode = POLICY_VIOLATION
        self.closeReason = "idle too long"
        super().timeoutConnection()

    def beginShutdown(self) -> None:
        """
        The server is stopping: say goodbye, and close with 1001.
        """
        self.closeCode = GOING_AWAY
        self.closeReason = "server shutting down"
        super().beginShutdown()

    def close(self) -> None:
        """
        Send the close frame after everything queued, then close.
        """
        if not self._closeSent:
            self._closeSent = True
            self.transport.write(closeFrame(self.closeCode, self.closeReason))
        super().close()

    def abort(self) -> None:
        """
        Close at once, without a close frame.
        """
        self._closeSent = True
        super().abort()

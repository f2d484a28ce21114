"""
IRC over WebSocket (IRCv3's WebSocket specification): web IRC clients
(gamja, Kiwi IRC) on the C{--web} port, without a proxy.

A client that offers the subprotocol C{text.ircv3.net} or
C{binary.ircv3.net} at C{/ws} gets an L{IRCProtocol}, the same one the
C{--irc} listeners serve, under an L{IRCWebSocket}: a protocol wrapper that
is its transport, so that each WebSocket message the client sends is one IRC
line (its C{CRLF} optional), and each line the IRC front end writes is one
message (text frames in valid UTF-8 for C{text.ircv3.net}, the bytes as
they are in binary frames for C{binary.ircv3.net}). Everything else (the
guard's admission and limits, registration, flood rules, output pacing,
pings) is the IRC front end's, unchanged.

The wrapper adds what WebSocket itself asks: a message longer than IRC's
longest line (tags included) closes with code 1009 after an C{ERROR} line;
a broken frame closes with its code; the client's close is answered; a ping
is answered with a pong, and while the client reads nothing only the last
ping is owed an answer, so that pings cannot fill the server's memory; a
flood of frames is paced as on every WebSocket (L{FramePacer}).
"""

from __future__ import annotations

from typing import Any

from twisted.internet.protocol import connectionDone
from twisted.logger import Logger
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from twisted.python.failure import Failure

from sockserve.irc.grammar import LINE_BYTES, TAG_BYTES
from sockserve.irc.protocol import IRCFactory, IRCProtocol
from sockserve.protocol import IServerTransport
from sockserve.web._pacing import FramePacer
from sockserve.web.frames import (
    BINARY,
    MESSAGE_TOO_BIG,
    NORMAL,
    PONG,
    TEXT,
    Binary,
    ClientFrames,
    Close,
    Ping,
    TooBig,
    closeFrame,
    serverFrame,
)

TEXT_SUBPROTOCOL = "text.ircv3.net"
"""IRC lines in text messages: UTF-8 both ways."""

BINARY_SUBPROTOCOL = "binary.ircv3.net"
"""IRC lines in binary messages: bytes as they are, both ways."""

SUBPROTOCOLS = (TEXT_SUBPROTOCOL, BINARY_SUBPROTOCOL)
"""The subprotocols of IRC over WebSocket."""

FRONT_END = "irc-websocket"
"""What the metrics call an IRC client on a WebSocket."""

MAX_MESSAGE = TAG_BYTES + LINE_BYTES
"""The longest message a client may send: the longest IRC line, tags
included (the IRC front end answers C{417} past C{512} bytes of the rest)."""


class IRCWebSocket(ProtocolWrapper):
    """
    An IRC client on a WebSocket: the transport of its L{IRCProtocol},
    carrying one IRC line per WebSocket message.

    @ivar binary: whether the client chose C{binary.ircv3.net}.
    @ivar frames: the parser of what the client sends.
    @ivar closeCode: the code the server's close frame will carry.
    """

    log = Logger()
    wrappedProtocol: IRCProtocol
    transport: IServerTransport

    def __init__(
        self, factory: IRCWebSocketFactory, irc: IRCProtocol, binary: bool
    ) -> None:
        super().__init__(factory, irc)  # type: ignore[arg-type]
        self.binary = binary
        self.opcode = BINARY if binary else TEXT
        self.frames = ClientFrames(MAX_MESSAGE, acceptBinary=True)
        self.closeCode = NORMAL
        self._closeSent = False
        self._unfinished = b""
        self._pongOwed: bytes | None = None
        self._framesPaced: FramePacer | None = None
        irc.frontEnd = FRONT_END

    def makeConnection(self, transport: IServerTransport) -> None:
        """
        Take the connection over from the HTTP channel that upgraded it
        (it was the transport's producer), then start the IRC client.
        """
        transport.unregisterProducer()
        super().makeConnection(transport)
        irc = self.wrappedProtocol
        if not irc.closing:
            self._framesPaced = FramePacer(irc.settings.clock, irc.inputPauser())

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """
        Forget the frame pacing's timer; the IRC client quits.
        """
        if self._framesPaced is not None:
            self._framesPaced.stop()
        super().connectionLost(reason)

    # The IRC front end's transport: lines out, as messages

    def write(self, data: bytes) -> None:
        """
        Send each whole line of C{data} as one message (a line the IRC front
        end wrote in parts is sent once whole).
        """
        if self._closeSent:
            return
        if self._unfinished:
            data = self._unfinished + data
        lines = data.split(b"\r\n")
        self._unfinished = lines.pop()
        frames = [self._frame(line) for line in lines]
        owed, self._pongOwed = self._pongOwed, None
        if owed is not None:
            frames.append(serverFrame(PONG, owed))
        if frames:
            self.transport.write(b"".join(frames))

    def writeSequence(self, data: Any) -> None:
        """
        Send the lines of C{data}, a sequence of bytes.
        """
        self.write(b"".join(data))

    def _frame(self, line: bytes) -> bytes:
        if not self.binary and not line.isascii():
            line = line.decode("utf-8", "replace").encode("utf-8")
        return serverFrame(self.opcode, line)

    def loseConnection(self) -> None:
        """
        Send the close frame after everything written, and close.
        """
        self._sendClose()
        super().loseConnection()

    def _sendClose(self) -> None:
        if not self._closeSent:
            self._closeSent = True
            self.transport.write(closeFrame(self.closeCode))

    # What the client sends: messages in, as lines

    def dataReceived(self, data: bytes) -> None:
        """
        Parse frames; hand the IRC front end the line of every whole
        message in C{data} at once.
        """
        irc = self.wrappedProtocol
        if irc is None or irc.closing:
            return
        lines: list[bytes] = []
        events = self.frames.feed(data)
        if self._framesPaced is not None:
            self._framesPaced.charge(len(events))
        for event in events:
            if type(event) is bytes:
                lines.append(event.removesuffix(b"\n").removesuffix(b"\r") + b"\r\n")
            elif isinstance(event, Ping):
                self._ping(event.payload)
            elif isinstance(event, TooBig):
                self._deliver(lines)
                self._tooBig()
                return
            elif isinstance(event, Close):
                self._deliver(lines)
                self._closed(event)
                return
            elif isinstance(event, Binary):  # pragma: no cover (acceptBinary)
                return
        self._deliver(lines)

    def _deliver(self, lines: list[bytes]) -> None:
        if lines and not self.wrappedProtocol.closing:
            self.wrappedProtocol.dataReceived(b"".join(lines))

    def _ping(self, payload: bytes) -> None:
        if self.wrappedProtocol.session.outputPaused:
            self._pongOwed = payload
        elif not self._closeSent:
            self.transport.write(serverFrame(PONG, payload))

    def _tooBig(self) -> None:
        irc = self.wrappedProtocol
        irc.logLimited(
            "lines too long",
            "Client {peer} sent a WebSocket message longer than {limit} bytes; closing",
            peer=irc.peer,
            limit=MAX_MESSAGE,
        )
        irc.context.stats.refused["line_too_long"] += 1
        self.closeCode = MESSAGE_TOO_BIG
        irc.sendErrorAndClose(
            f"Closing link: message too long (the limit is {MAX_MESSAGE} bytes)"
        )

    def _closed(self, event: Close) -> None:
        """
        The client closed, or broke the protocol: answer with a close frame
        (its code, or the error's), and the IRC client quits.
        """
        irc = self.wrappedProtocol
        if event.broken:
            irc.logLimited(
                "protocol errors",
                "Client {peer} broke the WebSocket protocol ({reason}); closing",
                peer=irc.peer,
                reason=event.reason,
            )
            irc.context.stats.refused["protocol_error"] += 1
        self._closeSent = True
        self.transport.write(
            closeFrame(event.code, event.reason if event.broken else "")
        )
        irc.close()


class IRCWebSocketFactory(WrappingFactory):
    """
    Builds the IRC clients of the C{--web} listeners' WebSockets, with the
    IRC front end's own factory (its settings: the same chat, guard and
    rules as C{--irc}).
    """

    noisy = False
    protocol = IRCWebSocket

    def __init__(self, irc: IRCFactory) -> None:
        super().__init__(irc)
        self.irc = irc

    def buildMember(self, subprotocol: str) -> IRCWebSocket:
        """
        An IRC client for a connection whose handshake chose C{subprotocol}
        (one of L{SUBPROTOCOLS}).
        """
        return IRCWebSocket(
            self, self.irc.buildProtocol(None), subprotocol == BINARY_SUBPROTOCOL
        )


__all__ = [
    "BINARY_SUBPROTOCOL",
    "FRONT_END",
    "MAX_MESSAGE",
    "SUBPROTOCOLS",
    "TEXT_SUBPROTOCOL",
    "IRCWebSocket",
    "IRCWebSocketFactory",
]

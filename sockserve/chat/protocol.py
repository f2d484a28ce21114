"""
The chat over a line protocol (TCP, UNIX sockets): line framing, with the
line wire's format for the events (L{sockserve.chat.linewire}). Everything
else is the session's.
"""

from __future__ import annotations

from sockserve._pausing import InputPauser
from sockserve._sending import unsentBytes
from sockserve._telnet import IAC, TelnetFilter
from sockserve._version import __version__
from sockserve.chat.events import Banner, ChatWire
from sockserve.chat.linewire import LINE_WIRE, LineWire
from sockserve.chat.policy import ChatPolicy
from sockserve.chat.service import ChatService
from sockserve.chat.session import ChatSession
from sockserve.protocol import LineServerProtocol, ServerContext

DEFAULT_BANNER = (
    f"Welcome to sockserve {__version__} chat.\n"
    "Enter a message and press enter, and everyone else here receives it.\n"
    "Type /help for commands."
)

__all__ = ["DEFAULT_BANNER", "LINE_WIRE", "ChatProtocol", "LineWire"]


class ChatProtocol(LineServerProtocol):
    """
    A chat member on a line connection: its lines go to its L{ChatSession},
    and the session's output comes back formatted by L{LINE_WIRE}.

    As a push producer registered on its transport, the protocol hears when
    the client stops reading: the session then queues its output, bounded
    (see L{ChatSession.receive}), rather than stop reading from the client.

    Telnet's own commands (a telnet user's Ctrl-C) are taken out of the
    input and answered (see L{sockserve._telnet}): they neither reach the
    room nor leave telnet waiting. Nothing of telnet is sent unprompted.

    @ivar session: the member's session.
    @ivar telnet: the filter of telnet commands, once the client sent one.
    """

    # Writes go through Twisted's buffer, which sends what several senders
    # bring in one reactor pass with one send per recipient: sending each
    # delivery at once halved deliveries/s in a 100-client room.
    writeDirectly = False

    def __init__(
        self,
        context: ServerContext,
        service: ChatService,
        banner: Banner,
        policy: ChatPolicy,
        wire: ChatWire = LINE_WIRE,
    ) -> None:
        super().__init__(context)
        self.session = ChatSession(service, self, wire, banner, policy)
        self.pauser: InputPauser | None = None
        self.telnet: TelnetFilter | None = None

    # ChatConnection, for the session (which writes with self.send)

    def unsent(self) -> int | None:
        """
        How many bytes written for the client it has not taken yet: what
        Twisted holds and what the kernel holds (see L{unsentBytes}).
        """
        return unsentBytes(self.transport)

    def named(self, name: str) -> None:
        """
        The client goes by C{name}: the log says which address that is.
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
        Read from the client again, once the session's input waits no more.
        """
        if self.pauser is not None:
            self.pauser.resume("session")

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

    def dataReceived(self, data: bytes) -> None:
        """
        Take telnet's commands out of C{data} and answer them, then frame
        the rest into lines.
        """
        # The hot path: plain text from a client that never sent a command
        # costs one test.
        if self.telnet is None:
            if IAC not in data:
                super().dataReceived(data)
                return
            self.telnet = TelnetFilter()
        text, answers = self.telnet.feed(data)
        self.context.stats.bytesIn += len(data) - len(text)
        if text:
            super().dataReceived(text)
        if answers and not self.closing:
            self.context.stats.bytesOut += len(answers)
            self.transport.write(answers)

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

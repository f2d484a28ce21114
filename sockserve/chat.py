"""
The chat broadcast server: every line a client sends goes to all the others.
"""

from __future__ import annotations

from zope.interface import implementer

from sockserve import __version__
from sockserve.base import CRLF, LineServerProtocol, ServerContext
from sockserve.room import ChatRoom, IChatMember, NameRejected, notice
from sockserve.text import linesAreSafe, safeText

DEFAULT_BANNER = (
    f"Welcome to sockserve {__version__} chat.\n"
    "Enter a message and press enter, and everyone else here receives it.\n"
    "Type /help for commands."
)

HELP = (
    "/nick NAME   change your name",
    "/who         list who is here",
    "/quit        leave",
    "/help        show this help",
    "//text       send a line that starts with /",
)

MAX_WHO_NAMES = 100

_LINE_END_NOISE = b"\r\x00"


def formatBanner(text: str) -> bytes:
    """
    Turn banner text (lines separated by LF or CR LF) into CR LF lines.
    """
    lines = text.replace("\r\n", "\n").split("\n")
    return b"".join(line.encode("utf-8") + CRLF for line in lines)


def formatMessages(prefix: bytes, lines: list[bytes], safe: bool = False) -> bytes:
    """
    Format message lines (without endings) from one sender: each line prefixed
    with C{prefix}, made safe (see L{safeText}) unless C{safe} says it is
    already, and ended with CR LF.
    """
    if safe:
        return b"".join([prefix + line + CRLF for line in lines])
    return b"".join([prefix + safeText(line) + CRLF for line in lines])


@implementer(IChatMember)
class ChatProtocol(LineServerProtocol):
    """
    One member of the chat room.

    Lines are relayed to every other member as C{<name> text}; lines starting
    with C{/} are commands. Output to this client goes through a bounded queue:
    a client that stops reading is disconnected once more than
    C{limits.maxPending} bytes wait for it, and nobody else waits for it.
    """

    # Writes go through Twisted's buffer, which sends what several senders
    # bring in one reactor pass with one send per recipient: sending each
    # delivery at once halved deliveries/s in a 100-client room.
    writeDirectly = False

    def __init__(self, context: ServerContext, room: ChatRoom, banner: bytes) -> None:
        super().__init__(context)
        self.room = room
        self.banner = banner
        self.name = ""
        self.prefix = b""
        self.queue: list[bytes] = []
        self.queued = 0
        self.paused = False

    # Joining and leaving

    def connectionAdmitted(self) -> None:
        """
        Greet the client and join the room, unless it is full.
        """
        if self.room.isFull():
            self.refuse(
                f"the server is full ({self.room.capacity} clients); try again later"
            )
            return
        peer = name = self.peer
        # Two listeners can see the same client address: keep names unique.
        suffix = 1
        while self.room.hasName(name):
            suffix += 1
            name = f"{peer}#{suffix}"
        self.setName(name)
        self.transport.write(
            self.banner + notice(f"you are {self.name}; {len(self.room)} other(s) here")
        )
        self.room.join(self)

    def setName(self, name: str) -> None:
        """
        Set the name shown before this member's messages.
        """
        self.name = name
        self.prefix = b"<" + name.encode("utf-8") + b"> "

    def connectionClosed(self) -> None:
        """
        Leave the room.
        """
        self.queue = []
        self.room.leave(self)

    def inputEnded(self) -> None:
        """
        The client half-closed: relay an unfinished last line, leave, and close
        once its output is sent.
        """
        rest = self.lines.takePending()
        if rest:
            self.linesReceived(rest + b"\n")
        if not self.closing:
            self.quit()

    def quit(self) -> None:
        """
        Leave the room and close once pending output is written.
        """
        self.room.leave(self)
        self.flushQueue()
        self.close()

    def beginShutdown(self) -> None:
        """
        Tell the client the server is shutting down, then close.
        """
        self.deliver(notice("the server is shutting down; goodbye"))
        self.quit()

    # Input

    def linesReceived(self, chunk: bytes) -> None:
        """
        Relay the message lines of C{chunk} to the others, in one delivery
        each, and run the commands among them in order.
        """
        safe = linesAreSafe(chunk)
        messages: list[bytes] = []
        for line in chunk.split(b"\n")[:-1]:
            # CR belongs to the ending; telnet sends a typed CR as CR NUL.
            line = line.rstrip(_LINE_END_NOISE)
            if not line:
                continue
            if line.startswith(b"/"):
                if line.startswith(b"//"):
                    messages.append(line[1:])
                    continue
                if messages:
                    self.room.broadcast(
                        formatMessages(self.prefix, messages, safe), self
                    )
                    messages = []
                self.command(line)
                if self.closing:
                    return
            else:
                messages.append(line)
        if messages:
            self.relay(messages, safe)

    def relay(self, messages: list[bytes], safe: bool) -> None:
        """
        Send message lines to every other member, in one delivery each.
        """
        self.room.broadcast(formatMessages(self.prefix, messages, safe), self)

    def command(self, line: bytes) -> None:
        """
        Run a C{/command} line.
        """
        verb, _, argument = line.partition(b" ")
        argument = argument.strip()
        if verb == b"/nick":
            self.commandNick(argument)
        elif verb == b"/who":
            self.commandWho()
        elif verb == b"/quit":
            self.deliver(notice("bye"))
            self.quit()
        elif verb == b"/help":
            self.deliver(b"".join(notice(text) for text in HELP))
        else:
            shown = safeText(verb).decode("utf-8")
            self.deliver(
                b"ERROR unknown command " + shown.encode() + b" (try /help)\r\n"
            )

    def commandNick(self, argument: bytes) -> None:
        """
        Change this member's name.
        """
        name = argument.decode("utf-8", "replace")
        try:
            oldName = self.room.rename(self, name)
        except NameRejected as rejected:
            self.deliver(b"ERROR " + str(rejected).encode("utf-8") + CRLF)
            return
        self.setName(self.name)
        self.log.info("{old} is now known as {new}", old=oldName, new=self.name)
        self.deliver(notice(f"you are now known as {self.name}"))

    def commandWho(self) -> None:
        """
        List who is here.
        """
        names = self.room.names()
        shown = ", ".join(names[:MAX_WHO_NAMES])
        if len(names) > MAX_WHO_NAMES:
            shown += f" and {len(names) - MAX_WHO_NAMES} more"
        self.deliver(notice(f"{len(names)} here: {shown}"))

    # Output, bounded

    def deliver(self, data: bytes) -> None:
        """
        Send C{data} to this client, queueing it while the client is not
        reading; drop the client once the queue exceeds C{maxPending}.
        """
        if self.closing:
            return
        if not self.paused:
            self.transport.write(data)
            return
        self.queued += len(data)
        if self.queued > self.context.limits.maxPending:
            self.log.warn(
                "Client {peer} is not reading: over {limit} bytes of output are "
                "waiting for it; disconnecting",
                peer=self.peer,
                limit=self.context.limits.maxPending,
            )
            self.queue = []
            self.room.leave(self)
            self.abort()
            return
        self.queue.append(data)

    def flushQueue(self) -> None:
        """
        Hand everything queued to the transport.
        """
        if self.queue:
            data = b"".join(self.queue)
            self.queue = []
            self.queued = 0
            self.transport.write(data)

    def pauseProducing(self) -> None:
        """
        The transport's buffer is full: queue further output ourselves.
        """
        self.paused = True

    def resumeProducing(self) -> None:
        """
        The transport's buffer is empty: send what is queued.
        """
        self.paused = False
        self.flushQueue()

"""
The baseline: a plain Twisted server built on C{LineOnlyReceiver}, one line at
a time, the way the Twisted documentation's examples are written.
"""

from __future__ import annotations

from typing import cast

from twisted.internet import reactor
from twisted.internet.address import IPv4Address
from twisted.internet.interfaces import IListeningPort, ITCPTransport
from twisted.internet.protocol import ServerFactory
from twisted.protocols.basic import LineOnlyReceiver

from bench.peers.common import (
    CRLF,
    OK,
    announceListening,
    notice,
    parseOptions,
    raiseOpenFileLimit,
    welcome,
)

NAME = "twisted-lines"


class EchoLines(LineOnlyReceiver):
    """
    Answer every line with C{OK .. <line>}; a CR before the LF is kept.
    """

    delimiter = b"\n"
    MAX_LENGTH = 65536
    transport: ITCPTransport

    def lineReceived(self, line: bytes) -> None:
        """
        Answer one line.
        """
        self.transport.write(OK + line + b"\n")


class OneShotLine(EchoLines):
    """
    Answer the first line, then close.
    """

    def lineReceived(self, line: bytes) -> None:
        """
        Answer and close.
        """
        self.transport.write(OK + line + b"\n")
        self.transport.loseConnection()


class ChatFactory(ServerFactory):
    """
    The room: every connected L{ChatLines}.
    """

    def __init__(self, presenceLimit: int) -> None:
        self.members: dict[ChatLines, None] = {}
        self.presenceLimit = presenceLimit

    def buildProtocol(self, addr: object) -> ChatLines:
        """
        Build one member.
        """
        protocol = ChatLines(self)
        protocol.factory = self
        return protocol

    def broadcast(self, data: bytes, sender: ChatLines) -> None:
        """
        Send C{data} to everyone but C{sender}.
        """
        for member in list(self.members):
            if member is not sender:
                member.transport.write(data)


class ChatLines(LineOnlyReceiver):
    """
    One member: its lines go to everyone else as C{<HOST:PORT> text}.
    """

    delimiter = b"\n"
    MAX_LENGTH = 65536
    transport: ITCPTransport

    def __init__(self, room: ChatFactory) -> None:
        self.room = room
        self.name = ""
        self.prefix = b""

    def connectionMade(self) -> None:
        """
        Greet the client and announce it.
        """
        peer = cast(IPv4Address, self.transport.getPeer())
        self.name = f"{peer.host}:{peer.port}"
        self.prefix = f"<{self.name}> ".encode()
        self.transport.write(welcome(self.name, len(self.room.members)))
        self.room.members[self] = None
        if len(self.room.members) <= self.room.presenceLimit:
            self.room.broadcast(notice(f"{self.name} joined"), self)

    def connectionLost(self, reason: object = None) -> None:
        """
        Leave the room.
        """
        if self not in self.room.members:
            return
        del self.room.members[self]
        if len(self.room.members) <= self.room.presenceLimit:
            self.room.broadcast(notice(f"{self.name} left"), self)

    def lineReceived(self, line: bytes) -> None:
        """
        Relay one line.
        """
        if line.endswith(b"\r"):
            line = line[:-1]
        if line:
            self.room.broadcast(self.prefix + line + CRLF, self)


def main() -> None:
    """
    Run the server until killed.
    """
    options = parseOptions(NAME)
    raiseOpenFileLimit()
    factory: ServerFactory = ChatFactory(options.presenceLimit)
    if options.mode == "echo":
        factory = ServerFactory()
        factory.protocol = EchoLines
    elif options.mode == "oneshot":
        factory = ServerFactory()
        factory.protocol = OneShotLine
    factory.noisy = False
    port: IListeningPort = reactor.listenTCP(
        options.port, factory, backlog=options.backlog, interface="127.0.0.1"
    )
    announceListening(NAME, options.mode, cast(IPv4Address, port.getHost()).port)
    reactor.run()


if __name__ == "__main__":
    main()

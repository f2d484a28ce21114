"""
A peer on asyncio's C{Protocol} callbacks (C{data_received}, C{transport.write}),
on the default event loop or on uvloop (C{--uvloop}).
"""

from __future__ import annotations

import asyncio
from typing import cast

from bench.peers.common import (
    CRLF,
    OK,
    PeerOptions,
    notice,
    peerName,
    runAsyncioPeer,
    serveAnnounced,
    welcome,
)

NAME = "asyncio-protocol"


class LineProtocol(asyncio.Protocol):
    """
    Split the input into lines (LF-terminated, ending kept) for L{lineReceived}.
    """

    transport: asyncio.Transport

    def __init__(self) -> None:
        self.buffer = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """
        Keep the transport.
        """
        # uvloop's transports provide the interface without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        """
        Hand each complete line to L{lineReceived}.
        """
        if self.buffer:
            data = self.buffer + data
        lines = data.split(b"\n")
        self.buffer = lines.pop()
        for line in lines:
            if self.transport.is_closing():
                return
            self.lineReceived(line + b"\n")

    def lineReceived(self, line: bytes) -> None:
        """
        Handle one line, its ending included.
        """
        raise NotImplementedError


class EchoProtocol(LineProtocol):
    """
    Answer every line with C{OK .. <line>}.
    """

    def lineReceived(self, line: bytes) -> None:
        """
        Answer one line.
        """
        self.transport.write(OK + line)


class OneShotProtocol(LineProtocol):
    """
    Answer the first line, then close.
    """

    def lineReceived(self, line: bytes) -> None:
        """
        Answer and close.
        """
        self.transport.write(OK + line)
        self.transport.close()


class Room:
    """
    The chat room: its members, in order of joining.
    """

    def __init__(self, presenceLimit: int) -> None:
        self.members: dict[ChatProtocol, None] = {}
        self.presenceLimit = presenceLimit

    def broadcast(self, data: bytes, sender: ChatProtocol) -> None:
        """
        Write C{data} to everyone but C{sender}.
        """
        for member in list(self.members):
            if member is not sender:
                member.transport.write(data)


class ChatProtocol(LineProtocol):
    """
    One member: its lines go to everyone else as C{<HOST:PORT> text}.
    """

    def __init__(self, room: Room) -> None:
        super().__init__()
        self.room = room
        self.name = ""
        self.prefix = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """
        Greet the client and announce it.
        """
        super().connection_made(transport)
        self.name = peerName(transport.get_extra_info("peername"))
        self.prefix = f"<{self.name}> ".encode()
        self.transport.write(welcome(self.name, len(self.room.members)))
        self.room.members[self] = None
        if len(self.room.members) <= self.room.presenceLimit:
            self.room.broadcast(notice(f"{self.name} joined"), self)

    def connection_lost(self, exc: Exception | None) -> None:
        """
        Leave the room.
        """
        if self in self.room.members:
            del self.room.members[self]
            if len(self.room.members) <= self.room.presenceLimit:
                self.room.broadcast(notice(f"{self.name} left"), self)

    def lineReceived(self, line: bytes) -> None:
        """
        Relay one line.
        """
        line = line.rstrip(b"\r\n")
        if line:
            self.room.broadcast(self.prefix + line + CRLF, self)


async def serve(options: PeerOptions) -> None:
    """
    Listen and serve until killed.
    """
    loop = asyncio.get_running_loop()
    if options.mode == "echo":
        server = await loop.create_server(
            EchoProtocol, "127.0.0.1", options.port, backlog=options.backlog
        )
    elif options.mode == "oneshot":
        server = await loop.create_server(
            OneShotProtocol, "127.0.0.1", options.port, backlog=options.backlog
        )
    else:
        room = Room(options.presenceLimit)
        server = await loop.create_server(
            lambda: ChatProtocol(room),
            "127.0.0.1",
            options.port,
            backlog=options.backlog,
        )
    await serveAnnounced(NAME, options, server)


def main() -> None:
    """
    Run the server until killed.
    """
    runAsyncioPeer(NAME, serve)


if __name__ == "__main__":
    main()

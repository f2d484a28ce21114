"""
A peer on asyncio streams (C{asyncio.start_server}, C{readline}, C{write} and
C{drain}), on the default event loop or on uvloop (C{--uvloop}).
"""

from __future__ import annotations

import asyncio

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

NAME = "asyncio-streams"
LIMIT = 65536


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """
    Answer every line with C{OK .. <line>}.
    """
    try:
        while line := await reader.readline():
            writer.write(OK + line)
            await writer.drain()
    except (ConnectionError, ValueError):
        pass
    finally:
        writer.close()


async def oneshot(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """
    Answer the first line, then close.
    """
    try:
        line = await reader.readline()
        writer.write(OK + line)
        await writer.drain()
    except (ConnectionError, ValueError):
        pass
    finally:
        writer.close()


class Room:
    """
    The chat room: a writer per member.
    """

    def __init__(self, presenceLimit: int) -> None:
        self.members: dict[asyncio.StreamWriter, str] = {}
        self.presenceLimit = presenceLimit

    def broadcast(self, data: bytes, sender: asyncio.StreamWriter) -> None:
        """
        Write C{data} to everyone but C{sender}.
        """
        for member in list(self.members):
            if member is not sender:
                member.write(data)

    async def serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """
        Serve one member until it leaves.
        """
        name = peerName(writer.get_extra_info("peername"))
        prefix = f"<{name}> ".encode()
        writer.write(welcome(name, len(self.members)))
        self.members[writer] = name
        if len(self.members) <= self.presenceLimit:
            self.broadcast(notice(f"{name} joined"), writer)
        try:
            while line := await reader.readline():
                line = line.rstrip(b"\r\n")
                if line:
                    self.broadcast(prefix + line + CRLF, writer)
        except (ConnectionError, ValueError):
            pass
        finally:
            del self.members[writer]
            if len(self.members) <= self.presenceLimit:
                self.broadcast(notice(f"{name} left"), writer)
            writer.close()


async def serve(options: PeerOptions) -> None:
    """
    Listen and serve until killed.
    """
    if options.mode == "echo":
        handler = echo
    elif options.mode == "oneshot":
        handler = oneshot
    else:
        handler = Room(options.presenceLimit).serve
    server = await asyncio.start_server(
        handler, "127.0.0.1", options.port, backlog=options.backlog, limit=LIMIT
    )
    await serveAnnounced(NAME, options, server)


def main() -> None:
    """
    Run the server until killed.
    """
    runAsyncioPeer(NAME, serve)


if __name__ == "__main__":
    main()

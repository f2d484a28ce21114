"""
What every peer server shares: its command line, its start-up line, and the
exact bytes of the replies and chat messages it sends.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

OK = b"OK .. "
CRLF = b"\r\n"
MODES = ("echo", "oneshot", "chat")


@dataclass(frozen=True)
class PeerOptions:
    """
    A peer's command line.

    @ivar mode: C{echo}, C{oneshot} or C{chat}.
    @ivar port: the port to listen on, on 127.0.0.1 (0: any free one).
    @ivar backlog: the listen backlog.
    @ivar uvloop: run asyncio on uvloop.
    @ivar presenceLimit: chat: joins and leaves are announced only while the
        room has at most this many members, as sockserve does.
    """

    mode: str
    port: int
    backlog: int
    uvloop: bool
    presenceLimit: int


def parseOptions(name: str, argv: list[str] | None = None) -> PeerOptions:
    """
    Parse a peer's command line.
    """
    parser = argparse.ArgumentParser(prog=f"python -m bench.peers.{name}")
    parser.add_argument("--mode", choices=MODES, default="chat")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--backlog", type=int, default=1024)
    parser.add_argument("--uvloop", action="store_true")
    parser.add_argument("--presence-limit", type=int, default=100)
    args = parser.parse_args(argv)
    return PeerOptions(
        args.mode, args.port, args.backlog, args.uvloop, args.presence_limit
    )


def raiseOpenFileLimit() -> None:
    """
    Raise the soft limit on open files to the hard limit (10,000 clients).
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def announceListening(name: str, mode: str, port: int) -> None:
    """
    Print the line the harness waits for.
    """
    sys.stdout.write(f"{name} {mode} server listening on 127.0.0.1:{port}\n")
    sys.stdout.flush()


def peerName(address: tuple[str, int] | object) -> str:
    """
    Return C{HOST:PORT} for a socket address.
    """
    if isinstance(address, tuple) and len(address) >= 2:
        return f"{address[0]}:{address[1]}"
    return str(address)


def welcomeText(name: str, others: int) -> str:
    """
    What a chat client is told on joining, as sockserve's banner ends.
    """
    return f"* you are {name}; {others} other(s) here"


def welcome(name: str, others: int) -> bytes:
    """
    The line a chat client gets on joining.
    """
    return welcomeText(name, others).encode() + CRLF


def notice(text: str) -> bytes:
    """
    A presence notice line.
    """
    return b"* " + text.encode() + CRLF


async def serveAnnounced(
    name: str, options: PeerOptions, server: asyncio.Server
) -> None:
    """
    Announce an asyncio C{server}'s port (its name suffixed C{-uvloop} on
    uvloop), then serve until killed.
    """
    port = server.sockets[0].getsockname()[1]
    announceListening(name + ("-uvloop" if options.uvloop else ""), options.mode, port)
    async with server:
        await server.serve_forever()


def runAsyncioPeer(
    name: str, serve: Callable[[PeerOptions], Coroutine[Any, Any, None]]
) -> None:
    """
    Parse the command line and run C{serve} on the loop it asks for.
    """
    options = parseOptions(name)
    raiseOpenFileLimit()
    if options.uvloop:
        import uvloop

        uvloop.run(serve(options))
    else:
        asyncio.run(serve(options))

"""
A WebSocket chat room on the C{websockets} package, written as its
documentation writes one: C{websockets.asyncio.server.serve} runs a handler per
connection, and C{websockets.broadcast} sends each message to the other members
(synchronously, without backpressure); on the default event loop or on uvloop
(C{--uvloop}).

Each member is named C{HOST:PORT} after its address and greeted with one
message, C{* you are NAME; N other(s) here} (the load generator waits for a
first message before it starts); each text message it sends goes to every
other member as C{<NAME> text}, one message per line, as sockserve relays a
line. No join or leave notices: nothing measured depends on them.
"""

from __future__ import annotations

from websockets import broadcast
from websockets.asyncio.server import ServerConnection, serve

from bench.peers.common import (
    PeerOptions,
    announceListening,
    peerName,
    runAsyncioPeer,
    welcomeText,
)

NAME = "websockets"


class Room:
    """
    The chat room: its members' connections.
    """

    def __init__(self) -> None:
        self.members: set[ServerConnection] = set()

    async def serve(self, websocket: ServerConnection) -> None:
        """
        Serve one member until it leaves: relay each text message it sends.
        """
        name = peerName(websocket.remote_address)
        await websocket.send(welcomeText(name, len(self.members)))
        self.members.add(websocket)
        try:
            async for message in websocket:
                if isinstance(message, str) and message:
                    others = (m for m in self.members if m is not websocket)
                    broadcast(others, f"<{name}> {message}")
        finally:
            self.members.discard(websocket)


async def serveChat(options: PeerOptions) -> None:
    """
    Listen and serve the chat room until killed.
    """
    if options.mode != "chat":
        raise SystemExit(f"{NAME} serves chat only, not {options.mode}")
    room = Room()
    async with serve(
        room.serve, "127.0.0.1", options.port, backlog=options.backlog
    ) as server:
        port = server.sockets[0].getsockname()[1]
        suffix = "-uvloop" if options.uvloop else "-asyncio"
        announceListening(NAME + suffix, options.mode, port)
        await server.serve_forever()


def main() -> None:
    """
    Run the server until killed.
    """
    runAsyncioPeer(NAME, serveChat)


if __name__ == "__main__":
    main()

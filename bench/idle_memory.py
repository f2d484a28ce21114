"""
What an idle member costs the server in memory: over TCP, and over WebSocket.

    python -m bench.idle_memory [--clients 2000] [--rounds 3] [--trace]

For each kind of member, in every round, a fresh chat server
(C{twistd -n sockserve --port 0 --web 0 --quiet}) takes C{--warm} members of
that kind (which warm its code paths and allocators up), then C{--clients}
more; each member joins (reads its C{* you are} line) and then sends nothing.
The figure is the server's resident set growth over the second batch,
divided by C{--clients}: what one more idle member costs, kernel socket
buffers excluded (they are not the process's).

With C{--trace}, the same members join a server built in this process on
in-memory transports, under C{tracemalloc}, and the allocations they keep
are printed by line of code: where the memory goes (Python objects only).

Prints a Markdown table (medians over the rounds, min-max in brackets).
"""

from __future__ import annotations

import argparse
import base64
import gc
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Sequence
from pathlib import Path

from twisted.internet.interfaces import IProtocolFactory

from bench.soak import TWISTD, rss

LISTENING = re.compile(rb"sockserve (chat|web) server listening on 127\.0\.0\.1:(\d+)")
GREETING = b"* you are "
TIMEOUT = 30.0


def startServer(
    maxClients: int, logPath: Path
) -> tuple[subprocess.Popen[bytes], int, int]:
    """
    Start a chat server with a TCP and a web listener for C{maxClients},
    logging to C{logPath}; return it, its TCP port and its web port.
    """
    with logPath.open("wb") as logFile:
        server = subprocess.Popen(
            [
                str(TWISTD),
                "--pidfile=",
                "-n",
                "sockserve",
                "--port=0",
                "--web=0",
                "--quiet",
                f"--max-clients={maxClients + 10}",
            ],
            stdout=logFile,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and server.poll() is None:
        ports = dict(LISTENING.findall(logPath.read_bytes()))
        if b"chat" in ports and b"web" in ports:
            return server, int(ports[b"chat"]), int(ports[b"web"])
        time.sleep(0.05)  # polling a log file for the start-up lines
    server.kill()
    server.wait()
    raise RuntimeError(f"the server did not start:\n{logPath.read_text()}")


def receiveUntil(sock: socket.socket, marker: bytes) -> bytes:
    """
    Read from C{sock} until C{marker} has arrived (bounded by L{TIMEOUT}).
    """
    received = b""
    deadline = time.monotonic() + TIMEOUT
    while marker not in received:
        left = deadline - time.monotonic()
        if left <= 0:
            raise RuntimeError(f"no {marker!r} after {received[-200:]!r}")
        sock.settimeout(left)
        chunk = sock.recv(65536)
        if not chunk:
            raise RuntimeError(f"closed after {received[-200:]!r}")
        received += chunk
    return received


def joinTcp(port: int) -> socket.socket:
    """
    A TCP member that has joined.
    """
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    receiveUntil(sock, GREETING)
    return sock


def handshake(port: int) -> bytes:
    """
    A WebSocket upgrade request for C{/ws}, as a command-line client sends it.
    """
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


def joinWebSocket(port: int) -> socket.socket:
    """
    A WebSocket member (line wire) that has joined.
    """
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    sock.sendall(handshake(port))
    receiveUntil(sock, GREETING)
    return sock


def measure(kind: str, clients: int, warm: int) -> float:
    """
    Return the RSS growth, in bytes, per idle member of C{kind} (C{tcp} or
    C{ws}) joining a fresh server that already holds C{warm} of them.
    """
    logDirectory = Path(tempfile.mkdtemp(prefix="sockserve-idle-memory-"))
    server, tcpPort, webPort = startServer(warm + clients, logDirectory / "server.log")
    join: Callable[[], socket.socket]
    if kind == "tcp":
        join = lambda: joinTcp(tcpPort)  # noqa: E731
    else:
        join = lambda: joinWebSocket(webPort)  # noqa: E731
    sockets: list[socket.socket] = []
    try:
        sockets.extend(join() for _ in range(warm))
        before = rss(server.pid)
        sockets.extend(join() for _ in range(clients))
        # The last members' notices are written; let the server settle.
        time.sleep(0.5)
        after = rss(server.pid)
    finally:
        for sock in sockets:
            sock.close()
        server.terminate()
        server.wait(30)
    return (after - before) * 1024 / clients


def joinInMemory(factory: IProtocolFactory, index: int, request: bytes) -> object:
    """
    Connect a protocol of C{factory} to an in-memory transport that delivers
    to it as a TCP connection does (through its C{protocol}), send it
    C{request}, and return the transport once the member has joined.
    """
    from twisted.internet.address import IPv4Address
    from twisted.internet.testing import StringTransportWithDisconnection

    peer = IPv4Address("TCP", "127.0.0.1", 10000 + index)
    transport = StringTransportWithDisconnection(
        peerAddress=peer, hostAddress=IPv4Address("TCP", "127.0.0.1", 8080)
    )
    protocol = factory.buildProtocol(peer)
    assert protocol is not None
    transport.protocol = protocol
    protocol.makeConnection(transport)
    if request:
        transport.protocol.dataReceived(request)
    assert GREETING in transport.value(), transport.value()
    transport.clear()
    return transport


def trace(clients: int, warm: int, top: int) -> None:
    """
    Join C{clients} idle members of each kind to a server in this process
    (on in-memory transports) under C{tracemalloc}, and print what their
    memory is, by line of code.
    """
    from twisted.internet.task import Clock

    from sockserve.factories import buildFactory
    from sockserve.limits import Limits
    from sockserve.web import chatWebSite
    from sockserve.web.site import OriginPolicy

    for kind in ("tcp", "ws"):
        clock = Clock()
        chat = buildFactory("chat", Limits(maxClients=clients + warm + 10), clock, "Hi")
        factory: IProtocolFactory = chat
        request = b""
        if kind == "ws":
            site = chatWebSite(chat, clock, OriginPolicy(), 30.0)
            site.reactor = clock
            factory, request = site, handshake(8080)
        kept = [joinInMemory(factory, index, request) for index in range(warm)]
        gc.collect()
        tracemalloc.start(1)
        before = tracemalloc.take_snapshot()
        kept += [
            joinInMemory(factory, index, request)
            for index in range(warm, warm + clients)
        ]
        gc.collect()
        after = tracemalloc.take_snapshot()
        tracemalloc.stop()
        stats = after.compare_to(before, "lineno")
        total = sum(stat.size_diff for stat in stats)
        print(f"\n{kind}: {total / clients:,.0f} bytes a member (Python objects)")
        for stat in stats[:top]:
            frame = stat.traceback[0]
            size, blocks = stat.size_diff / clients, stat.count_diff / clients
            where = f"{frame.filename}:{frame.lineno}"
            print(f"  {size:8,.0f} B {blocks:5.1f} blocks  {where}")


def spread(values: Sequence[float]) -> str:
    """
    The median of C{values} in KiB, with their range.
    """
    kib = [value / 1024 for value in values]
    return f"{statistics.median(kib):.2f} KiB [{min(kib):.2f}-{max(kib):.2f}]"


def main(argv: list[str] | None = None) -> int:
    """
    Measure, print the table; return the exit status.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=2000)
    parser.add_argument("--warm", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--trace", action="store_true")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)
    if args.trace:
        trace(args.clients, args.warm, args.top)
        return 0
    figures: dict[str, list[float]] = {"tcp": [], "ws": []}
    for _ in range(args.rounds):
        for kind in figures:
            figures[kind].append(measure(kind, args.clients, args.warm))
    print(f"| idle member ({args.clients:,} of them) | RSS growth a member |")
    print("|---|---|")
    for kind, label in (("tcp", "TCP"), ("ws", "WebSocket")):
        print(f"| {label} | {spread(figures[kind])} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

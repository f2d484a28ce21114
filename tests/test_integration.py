"""
The servers over real loopback TCP, in-process, with pytest-twisted.
"""

from __future__ import annotations

import socket

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred, maybeDeferred

from sockserve.limits import Limits
from sockserve.protocol import LineServerProtocol
from tests.support import WAIT, startServer


@pytest_twisted.ensureDeferred
async def test_echo_over_tcp() -> None:
    """Echo answers every line, split or batched, and keeps the connection."""
    server = await startServer("echo")
    try:
        client = await server.connect()
        client.send(b"hel")
        client.send(b"lo\r\nsecond\nthi")
        client.send(b"rd\n")
        received = await client.waitForLines(3)
        assert received == b"OK .. hello\r\nOK .. second\nOK .. third\n"
        assert not client.closed.called
    finally:
        await server.stop()


@pytest_twisted.ensureDeferred
async def test_echo_half_close_gets_all_replies() -> None:
    """A client that sends, then shuts down its sending side, still gets
    every reply before the server closes."""
    server = await startServer("echo")
    try:
        client = await server.connect()
        client.send(b"".join(b"line %d\n" % i for i in range(1000)) + b"tail")
        assert client.transport is not None
        client.transport.loseWriteConnection()  # type: ignore[attr-defined]
        await client.waitForClose()
        expected = b"".join(b"OK .. line %d\n" % i for i in range(1000))
        assert client.received == expected + b"OK .. tail\n"
    finally:
        await server.stop()


@pytest_twisted.ensureDeferred
async def test_oneshot_over_tcp() -> None:
    """One-shot answers the first line and closes."""
    server = await startServer("oneshot")
    try:
        client = await server.connect()
        client.send(b"hello\r\n")
        await client.waitForClose()
        assert client.received == b"OK .. hello\r\n"
        half = await server.connect()
        half.send(b"no newline")
        assert half.transport is not None
        half.transport.loseWriteConnection()  # type: ignore[attr-defined]
        await half.waitForClose()
        assert half.received == b"OK .. no newline\n"
    finally:
        await server.stop()


@pytest_twisted.ensureDeferred
async def test_chat_over_tcp() -> None:
    """Chat: welcome banner, lines to all others, never back; join, nick and
    leave notices."""
    server = await startServer("chat")
    try:
        alice = await server.connect()
        await alice.waitForText(b"; nobody else here\r\n")
        bob = await server.connect()
        await bob.waitForText(b"; 1 other here\r\n")
        await alice.waitForText(b"* guest2 joined\r\n")
        assert bob.received.startswith(b"Welcome to sockserve")
        alice.send(b"/nick alice\nhello bob\r\n")
        await bob.waitForText(b"<alice> hello bob\r\n")
        await alice.waitForText(b"you are now known as alice\r\n")
        assert b"hello bob" not in alice.received
        await bob.close()
        await alice.waitForText(b"* guest2 left\r\n")
    finally:
        await server.stop()


@pytest_twisted.ensureDeferred
async def test_chat_rooms_and_private_messages_over_tcp() -> None:
    """Chat: a client goes to another room and back, lines stay in their
    room, /rooms lists the rooms, and a private message reaches its one
    recipient wherever it is."""
    server = await startServer("chat")
    try:
        alice = await server.connect()
        await alice.waitForText(b"; nobody else here\r\n")
        bob = await server.connect()
        await bob.waitForText(b"; 1 other here\r\n")
        carol = await server.connect()
        await carol.waitForText(b"; 2 others here\r\n")
        alice.send(b"/join lab\n")
        await alice.waitForText(b"* you are now in #lab; nobody else here\r\n")
        await carol.waitForText(b"* guest1 left\r\n")
        bob.send(b"/join #lab\nin the lab\n")
        await alice.waitForText(b"<guest2> in the lab\r\n")
        carol.send(b"/rooms\n/msg guest1 psst\n")
        await carol.waitForText(b"* 2 rooms: #default (1), #lab (2)\r\n")
        await carol.waitForText(b"-> *guest1* psst\r\n")
        await alice.waitForText(b"*guest3* psst\r\n")
        bob.send(b"/part\nback\n")
        await carol.waitForText(b"<guest2> back\r\n")
        await alice.waitForText(b"* guest2 left\r\n")
        assert b"in the lab" not in carol.received
        assert b"psst" not in bob.received
        assert b"back" not in alice.received
    finally:
        await server.stop()


@pytest_twisted.ensureDeferred
async def test_chat_full_room_refuses_cleanly() -> None:
    """A client beyond --max-clients gets one line and is disconnected; the
    room keeps working."""
    server = await startServer("chat", Limits(maxClients=2))
    try:
        alice = await server.connect()
        bob = await server.connect()
        await bob.waitForText(b"here\r\n")
        carol = await server.connect()
        await carol.waitForClose()
        assert carol.received == (
            b"ERROR the server is full (2 clients); try again later\r\n"
        )
        assert b"guest3" not in alice.received + bob.received
        alice.send(b"still works\n")
        await bob.waitForText(b"still works\r\n")
    finally:
        await server.stop()


@pytest_twisted.ensureDeferred
async def test_shutdown_with_clients_connected() -> None:
    """Registry shutdown tells chat clients and closes them."""
    server = await startServer("chat")
    try:
        alice = await server.connect()
        await alice.waitForText(b"here\r\n")
        await maybeDeferred(server.port.stopListening)
        done = server.factory.context.registry.shutdown(reactor, 5.0)
        await alice.waitForClose()
        await done
        assert alice.received.endswith(b"* the server is shutting down; goodbye\r\n")
    finally:
        await server.stop()


@pytest_twisted.ensureDeferred
async def test_shutdown_aborts_after_grace() -> None:
    """A oneshot client that never finishes its request is cut off once the
    grace period ends."""
    server = await startServer("oneshot")
    try:
        client = await server.connect()
        client.send(b"partial")
        await maybeDeferred(server.port.stopListening)
        await server.factory.context.registry.shutdown(reactor, 0.05)
        await client.waitForClose()
        assert client.received == b""
    finally:
        await server.stop()


@pytest.mark.parametrize(
    ("mode", "noDelay"), [("echo", 1), ("chat", 1), ("oneshot", 0)]
)
@pytest_twisted.ensureDeferred
async def test_nagle_off_for_interactive_modes(mode: str, noDelay: int) -> None:
    """Echo and chat turn Nagle's algorithm off, so that a reply is never
    held back waiting for the client's delayed ACK, and TCP keepalive on;
    oneshot, which writes once and closes, leaves both alone."""
    server = await startServer(mode)
    made: Deferred[LineServerProtocol] = Deferred()
    buildProtocol = server.factory.buildProtocol

    def recordingBuild(addr: object) -> LineServerProtocol:
        protocol = buildProtocol(addr)  # type: ignore[arg-type]
        connectionMade = protocol.connectionMade

        def connectionMadeAndTell() -> None:
            connectionMade()
            made.callback(protocol)

        protocol.connectionMade = connectionMadeAndTell  # type: ignore[method-assign]
        return protocol

    server.factory.buildProtocol = recordingBuild  # type: ignore[method-assign]
    try:
        await server.connect()
        protocol = await made.addTimeout(WAIT, reactor)
        handle = protocol.transport.getHandle()  # type: ignore[attr-defined]
        option = handle.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        assert option == noDelay
        # Keepalive goes with it: a vanished interactive client is found in
        # about two minutes; oneshot has its request timeout.
        keepAlive = handle.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)
        assert keepAlive == noDelay
        if keepAlive:
            assert handle.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 60
            assert handle.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT) == 6
    finally:
        await server.stop()

"""
Writing straight to the socket when Twisted's buffer is empty (L{writerFor}),
on real loopback TCP connections.
"""

from __future__ import annotations

import fcntl
import select
import socket
import sys
import termios
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor, tcp
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from sockserve import _sending
from sockserve._sending import (
    canWriteDirectly,
    kernelUnsent,
    unsentBytes,
    writeAndClose,
    writerFor,
)
from tests.support import WAIT, RecordingClient, RunningServer


class ServerSide(Protocol):
    """The server end of one connection, handed to the test."""

    def __init__(self, connected: Deferred[ServerSide]) -> None:
        self.onConnect = connected
        self.lost: Deferred[None] = Deferred()

    def connectionMade(self) -> None:
        self.onConnect.callback(self)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.lost.callback(None)


@asynccontextmanager
async def connectedPair() -> AsyncIterator[tuple[ServerSide, RecordingClient]]:
    """
    Listen on an OS-chosen loopback port and connect a client; give both
    ends, and close them and the listener afterwards.
    """
    serverSide: Deferred[ServerSide] = Deferred()
    factory = Factory.forProtocol(lambda: ServerSide(serverSide))
    port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(factory)
    listener = RunningServer(factory, port)  # type: ignore[arg-type]
    try:
        client = await listener.connect()
        server = await serverSide.addTimeout(WAIT, reactor)
        try:
            yield server, client
        finally:
            if not client.closed.called:
                await client.close()
            await server.lost.addTimeout(WAIT, reactor)
    finally:
        await maybeDeferred(port.stopListening)


def buffered(transport: Any) -> int:
    """How many bytes Twisted holds for C{transport}, not yet sent."""
    return len(transport.dataBuffer) - transport.offset + transport._tempDataLen  # type: ignore[no-any-return]


def stallClient(server: ServerSide, client: RecordingClient) -> bytes:
    """
    Make the kernel take only part of a large write: shrink the server's
    send buffer and stop the client reading (resume it with
    L{resume}). Return such a write.
    """
    transport: Any = server.transport
    transport.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
    assert client.transport is not None
    client.transport.pauseProducing()  # type: ignore[attr-defined]
    return b"".join(b"%08d\n" % i for i in range(400_000))


def resume(client: RecordingClient) -> None:
    """Let a client stopped by L{stallClient} read again."""
    transport: Any = client.transport
    transport.resumeProducing()


@pytest_twisted.ensureDeferred
async def test_nothing_buffered_goes_straight_to_the_socket() -> None:
    """With Twisted's buffer empty, the data is sent at once: nothing is left
    in the buffer for a later reactor pass."""
    async with connectedPair() as (server, client):
        assert canWriteDirectly(server.transport)
        write = writerFor(server.transport)  # type: ignore[arg-type]
        write(b"hello\n")
        assert buffered(server.transport) == 0
        assert await client.waitForText(b"hello\n") == b"hello\n"


@pytest_twisted.ensureDeferred
async def test_order_kept_behind_buffered_data() -> None:
    """While Twisted holds data, later writes queue behind it."""
    async with connectedPair() as (server, client):
        write = writerFor(server.transport)  # type: ignore[arg-type]
        assert server.transport is not None
        server.transport.write(b"first\n")
        write(b"second\n")
        assert buffered(server.transport) == len(b"first\nsecond\n")
        received = await client.waitForText(b"second\n")
        assert received == b"first\nsecond\n"


@pytest_twisted.ensureDeferred
async def test_what_the_kernel_does_not_take_is_buffered() -> None:
    """A write larger than the socket takes is sent in part; the rest, and
    what follows it, reaches the client whole and in order."""
    async with connectedPair() as (server, client):
        big = stallClient(server, client)
        transport: Any = server.transport
        write = writerFor(transport)
        write(big)
        assert 0 < buffered(transport) < len(big)
        write(b"tail\n")
        resume(client)
        received = await client.waitFor(lambda got: len(got) >= len(big) + 5)
        assert received == big + b"tail\n"


@pytest_twisted.ensureDeferred
async def test_closing_connection_is_left_to_twisted() -> None:
    """After loseConnection the write goes through Twisted, which sends it
    before it closes, as it would without the fast path."""
    async with connectedPair() as (server, client):
        assert server.transport is not None
        write = writerFor(server.transport)
        server.transport.loseConnection()
        write(b"late\n")
        assert buffered(server.transport) == len(b"late\n")
        await client.waitForClose()
        assert client.received == b"late\n"


@pytest_twisted.ensureDeferred
async def test_a_client_that_reset_is_found_by_twisted() -> None:
    """Writing to a client that has gone raises nothing; the connection is
    lost the usual way."""
    async with connectedPair() as (server, client):
        assert client.transport is not None
        client.transport.abortConnection()  # type: ignore[attr-defined]
        await client.waitForClose()
        write = writerFor(server.transport)  # type: ignore[arg-type]
        for _ in range(3):
            write(b"x" * 100_000)
        await server.lost


def test_other_transports_get_their_own_write() -> None:
    """A transport that is not a plain TCP connection is written to as usual."""
    transport = StringTransport()
    assert not canWriteDirectly(transport)
    write = writerFor(transport)
    write(b"hello\n")
    assert transport.value() == b"hello\n"


@pytest_twisted.ensureDeferred
async def test_aborted_connection_is_left_to_twisted() -> None:
    """After abortConnection nothing more is sent, as without the fast path."""
    async with connectedPair() as (server, client):
        assert server.transport is not None
        write = writerFor(server.transport)
        server.transport.abortConnection()  # type: ignore[attr-defined]
        write(b"dropped\n")
        await client.waitForClose()
        assert client.received == b""


@pytest_twisted.ensureDeferred
async def test_write_and_close_at_once() -> None:
    """With nothing buffered, writeAndClose sends the data and the end of
    the stream before it returns; the protocol hears of the close on a later
    reactor pass, never from inside the call; the client gets the data and a
    clean end of stream."""
    async with connectedPair() as (server, client):
        assert server.transport is not None
        writeAndClose(server.transport, b"reply\n")
        assert not server.lost.called
        await server.lost
        await client.waitForClose()
        assert client.received == b"reply\n"
        assert client.closeReason is not None
        assert client.closeReason.check(ConnectionDone)


@pytest_twisted.ensureDeferred
async def test_write_and_close_delivers_what_the_kernel_still_holds() -> None:
    """A reply the kernel took whole but could not send yet (the client is
    not reading, its window is full) still arrives in full after the server
    closed: the close is orderly, never a reset that drops it."""
    async with connectedPair() as (server, client):
        serverSocket: socket.socket = server.transport.socket  # type: ignore[union-attr]
        serverSocket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 * 1024 * 1024)
        clientTransport: Any = client.transport
        clientTransport.pauseProducing()
        # More than a client's window holds before it reads: most of it
        # is still in the server's kernel when the server closes.
        reply = b"".join(b"%08d\n" % i for i in range(300_000))
        assert server.transport is not None
        writeAndClose(server.transport, reply)
        assert buffered(server.transport) == 0  # the kernel took it all
        await server.lost
        resume(client)
        await client.waitForClose()
        assert client.received == reply
        assert client.closeReason is not None
        assert client.closeReason.check(ConnectionDone)


@pytest_twisted.ensureDeferred
async def test_write_and_close_behind_buffered_data() -> None:
    """With data buffered, writeAndClose queues behind it and closes once
    everything is sent."""
    async with connectedPair() as (server, client):
        assert server.transport is not None
        server.transport.write(b"first\n")
        writeAndClose(server.transport, b"second\n")
        assert not server.lost.called
        await client.waitForClose()
        assert client.received == b"first\nsecond\n"


@pytest_twisted.ensureDeferred
async def test_write_and_close_more_than_the_kernel_takes() -> None:
    """A write the socket does not take whole is finished by Twisted, then
    the connection closes."""
    async with connectedPair() as (server, client):
        big = stallClient(server, client)
        transport: Any = server.transport
        writeAndClose(transport, big)
        assert not server.lost.called
        resume(client)
        await client.waitForClose()
        assert client.received == big


def test_write_and_close_other_transports() -> None:
    """Any other transport is written to, then asked to close."""
    transport = StringTransport()
    writeAndClose(transport, b"reply\n")
    assert transport.value() == b"reply\n"
    assert transport.disconnecting


@pytest_twisted.ensureDeferred
async def test_write_and_close_to_a_client_that_reset() -> None:
    """Writing and closing to a client that has gone raises nothing; the
    connection is lost the usual way."""
    async with connectedPair() as (server, client):
        assert client.transport is not None
        client.transport.abortConnection()  # type: ignore[attr-defined]
        await client.waitForClose()
        assert server.transport is not None
        writeAndClose(server.transport, b"x" * 100_000)
        await server.lost


def test_a_connection_that_started_tls_is_left_to_twisted() -> None:
    """TLS is a connection's state, not its class's: a TCP connection that
    has started TLS is written to through Twisted, even when others of its
    class are not."""

    class Connection(tcp.Server):
        def __init__(self) -> None:
            self.socket = socket.socket()
            self._tempDataLen = 0

    plain, secured = Connection(), Connection()
    try:
        secured.TLS = True
        assert canWriteDirectly(plain)
        assert not canWriteDirectly(secured)
        assert canWriteDirectly(plain)
    finally:
        plain.socket.close()
        secured.socket.close()


def test_a_closed_connection_does_not_spoil_its_class() -> None:
    """A connection that has lost its socket is written to through Twisted;
    the next connection of its class still gets the direct path."""

    class Connection(tcp.Server):
        def __init__(self) -> None:
            self.socket = socket.socket()
            self._tempDataLen = 0

    closed = Connection()
    closed.socket.close()
    del closed.socket
    assert not canWriteDirectly(closed)
    fresh = Connection()
    try:
        assert canWriteDirectly(fresh)
    finally:
        fresh.socket.close()


@pytest_twisted.ensureDeferred
async def test_unsent_bytes_through_a_wrapper() -> None:
    """What Twisted holds for a connection is read through a protocol
    wrapper (the PROXY protocol's); an unknown transport says it cannot
    tell."""
    from twisted.protocols.policies import ProtocolWrapper, WrappingFactory

    from sockserve._sending import unsentBytes

    async with connectedPair() as (server, client):
        big = stallClient(server, client)
        assert server.transport is not None
        server.transport.write(big)
        wrapper = ProtocolWrapper(WrappingFactory(Factory()), Protocol())
        wrapper.transport = server.transport
        held = unsentBytes(wrapper)
        assert held is not None
        assert held == buffered(server.transport) > 0
        resume(client)
        await client.waitFor(lambda received: len(received) == len(big))
    assert unsentBytes(StringTransport()) is None


@contextmanager
def loopbackPair(receiveBuffer: int) -> Iterator[tuple[socket.socket, socket.socket]]:
    """
    Give a connected loopback TCP pair of plain sockets, the server end
    non-blocking, the client end with a small receive buffer and a timeout;
    close both (and the listener) afterwards.
    """
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.socket()
        with client:
            client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receiveBuffer)
            client.settimeout(WAIT)
            client.connect(listener.getsockname())
            server, _ = listener.accept()
            with server:
                server.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
                server.setblocking(False)
                yield server, client


def fill(sock: socket.socket) -> int:
    """
    Write to the non-blocking C{sock} until its kernel takes no more; return
    how many bytes it took.
    """
    written = 0
    for _ in range(10_000):
        try:
            written += sock.send(b"x" * 16384)
        except BlockingIOError:
            return written
    raise AssertionError("the kernel never stopped taking data")


def waiting(sock: socket.socket) -> int:
    """How many bytes C{sock}'s kernel has received that it has not read."""
    answer = fcntl.ioctl(sock.fileno(), termios.FIONREAD, bytes(4))
    return int.from_bytes(answer, sys.byteorder)


def readExactly(sock: socket.socket, size: int) -> bytes:
    """Read C{size} bytes from the blocking C{sock} (with its timeout)."""
    data = b""
    for _ in range(size):
        chunk = sock.recv(size - len(data))
        assert chunk, "closed early"
        data += chunk
        if len(data) == size:
            return data
    raise AssertionError("too many reads")


def acknowledge(client: socket.socket, server: socket.socket) -> None:
    """
    Make sure the server's kernel knows all the client's kernel has
    received: the client sends a byte (its segment acknowledges everything
    received so far), and the server reads it.
    """
    client.sendall(b"!")
    readable, _, _ = select.select([server], [], [], WAIT)
    assert readable
    assert server.recv(1) == b"!"


def test_the_kernel_counts_what_a_tcp_peer_has_not_taken() -> None:
    """On TCP, what the kernel holds is what the peer has not acknowledged:
    at most what was written, at least what its own kernel has not received;
    it goes down by what the peer reads, and to nothing once it has read
    everything."""
    with loopbackPair(receiveBuffer=4096) as (server, client):
        written = fill(server)
        held = kernelUnsent(server)
        assert held is not None
        assert written - waiting(client) <= held <= written
        assert held > 0
        part = written // 2
        readExactly(client, part)
        acknowledge(client, server)
        later = kernelUnsent(server)
        assert later is not None
        assert later <= written - part < held
        readExactly(client, written - part)
        acknowledge(client, server)
        assert kernelUnsent(server) == 0


def test_the_kernel_counts_what_a_unix_peer_has_not_read() -> None:
    """On a UNIX socket, what the kernel holds is what the peer has not
    read (with the kernel's overhead): it goes down as the peer reads, to
    nothing."""
    sender, receiver = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with sender, receiver:
        sender.setblocking(False)
        receiver.settimeout(WAIT)
        written = fill(sender)
        held = kernelUnsent(sender)
        assert held is not None
        assert held >= written > 0
        readExactly(receiver, written // 2)
        later = kernelUnsent(sender)
        assert later is not None
        assert 0 < later < held
        readExactly(receiver, written - written // 2)
        assert kernelUnsent(sender) == 0


def test_the_kernel_cannot_tell_everywhere(monkeypatch: pytest.MonkeyPatch) -> None:
    """A closed socket, or a platform without SIOCOUTQ, cannot tell."""
    closed = socket.socket()
    closed.close()
    assert kernelUnsent(closed) is None
    monkeypatch.setattr(_sending, "_OUTQ", None)
    with loopbackPair(receiveBuffer=4096) as (server, _):
        fill(server)
        assert kernelUnsent(server) is None


@pytest_twisted.ensureDeferred
async def test_unsent_bytes_counts_the_kernel_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What a connection holds for its client is Twisted's buffer plus what
    the kernel holds; where the kernel cannot tell, Twisted's buffer alone."""
    async with connectedPair() as (server, client):
        big = stallClient(server, client)
        transport: Any = server.transport
        inKernel = fill(transport.socket)
        transport.write(big)
        held = kernelUnsent(transport.socket)
        assert held is not None
        assert 0 < held <= inKernel
        assert unsentBytes(transport) == buffered(transport) + held
        with monkeypatch.context() as patched:
            patched.setattr(_sending, "_OUTQ", None)
            assert unsentBytes(transport) == buffered(transport)
        resume(client)
        await client.waitFor(lambda received: len(received) == inKernel + len(big))

"""
Writing to a TCP transport without a trip through the reactor when nothing
is waiting to be sent.

Twisted's C{transport.write} only appends to a buffer and asks the reactor to
watch the socket for writability; the reactor sends on its next pass and then
stops watching. For a server that answers one request with one reply that is
two C{epoll_ctl} calls and a whole reactor pass per reply. asyncio's
transports instead try C{send} at once and buffer only what the kernel does
not take. L{writerFor} gives a protocol that behaviour on Twisted's TCP
transports: when the transport's buffer is empty, the data goes straight to
the socket; whatever is left, and everything written while the buffer is not
empty, goes through C{transport.write}, so order, flow control and error
handling stay Twisted's. L{writeAndClose} does the same for a last write, and
then closes without waiting for the socket to be writable.
"""

from __future__ import annotations

import contextlib
import socket
import sys
from collections.abc import Callable

from twisted.internet import tcp
from twisted.internet.interfaces import ITCPTransport, ITransport
from twisted.protocols.policies import ProtocolWrapper

# The direct path reads the state of Twisted's TCP connections, which Twisted
# does not promise: those reads are in sockserve._twisted, and a connection
# whose state cannot be read is written to through transport.write.
from sockserve import _twisted
from sockserve._twisted import canWriteDirectly as canWriteDirectly
from sockserve._twisted import nothingWaiting as nothingWaiting

Writer = Callable[[bytes], None]


# SIOCOUTQ (the same number as TIOCOUTQ): on Linux, the bytes a TCP socket
# holds that the peer has not acknowledged, or that a UNIX socket has sent
# and its peer not yet read. Elsewhere the same request means something else
# or nothing for a socket, so it is not asked.
_OUTQ: int | None = None
if sys.platform.startswith("linux"):
    import fcntl
    import termios

    _OUTQ = termios.TIOCOUTQ


def kernelUnsent(sock: socket.socket) -> int | None:
    """
    Return how many bytes written to C{sock} the kernel still holds for its
    peer, or C{None} where the platform cannot tell (or the socket is
    closed).

    On Linux this is C{SIOCOUTQ}: for TCP, the bytes not yet acknowledged
    (not yet sent, and sent but unacknowledged), so it goes down exactly as
    the peer's kernel takes them, that is, as the client reads (a client that
    stops reading closes its window, and the count stays); for a UNIX socket,
    the memory of what was sent and the peer has not read yet (the kernel's
    overhead included).

    Chosen over C{TCP_INFO}'s C{tcpi_bytes_acked}, a count of bytes
    acknowledged that only grows: that would be purer if writes and
    acknowledgements mixed, but the pacing reads the count only for a member
    that is behind, whose output is queued, not written, so what its
    connection holds only goes down as the client reads. And this one call
    answers for TCP and UNIX sockets alike, in bytes for TCP, so that added
    to Twisted's buffer it says what the connection holds (see
    L{unsentBytes}); C{tcp_info} would be read by offset, and says nothing
    for a UNIX socket. C{SIOCOUTQNSD} (not yet sent) would count bytes in
    flight as taken, and says nothing for a UNIX socket either.
    """
    if _OUTQ is None:
        return None
    try:
        answer = fcntl.ioctl(sock.fileno(), _OUTQ, bytes(4))
    except (OSError, ValueError):
        return None
    return int.from_bytes(answer, sys.byteorder, signed=True)


def unsentBytes(transport: object) -> int | None:
    """
    Return how many bytes written to C{transport} its client has not taken
    yet: what Twisted holds, not yet sent, plus what the kernel holds (see
    L{kernelUnsent}); or C{None} for a transport whose buffer cannot be read.

    The kernel's part matters: Linux takes up to megabytes from Twisted
    (C{net.ipv4.tcp_wmem}), lets Twisted write again only once a third of
    its buffer is free, and Twisted then writes at most C{SEND_LIMIT} (128
    KiB) at once; so Twisted's own buffer moves once per 128 KiB the client
    takes, every two seconds for a client reading 64 KiB a second, while the
    kernel's count goes down with every read. Where the kernel cannot tell,
    the count is Twisted's alone. A protocol wrapper (the PROXY protocol's,
    TLS's) is looked through; over TLS, the count is of encrypted bytes. It
    costs an C{ioctl}: it is for a look now and then, not for every write.
    """
    if isinstance(transport, ProtocolWrapper):
        transport = transport.transport
    held = _twisted.heldByTwisted(transport)
    if held is None:
        return None
    sock = _twisted.socketOf(transport)
    inKernel = kernelUnsent(sock) if sock is not None else None
    return held if inKernel is None else held + inKernel


def writerFor(transport: ITransport) -> Writer:
    """
    Return a function that writes to C{transport}: one that sends at once when
    it can (see the module docstring), or else C{transport.write} itself.
    """
    if not canWriteDirectly(transport):
        return transport.write
    connection: tcp.Connection = transport  # type: ignore[assignment]
    sock = _twisted.socketOf(connection)
    if sock is None:
        return transport.write
    send = sock.send
    bufferedWrite = connection.write

    def write(data: bytes) -> None:
        if nothingWaiting(connection):
            try:
                sent = send(data)
            except OSError:
                # Full (EAGAIN), or a broken connection: Twisted's own write
                # finds out on its next attempt and closes as usual.
                sent = 0
            if sent == len(data):
                return
            data = data[sent:]
        bufferedWrite(data)

    return write


def writeAndClose(transport: ITransport, data: bytes) -> None:
    """
    Write C{data} to C{transport} and close the connection once it is sent.

    When the transport is a plain TCP connection with nothing buffered and
    no producer, and the kernel takes the whole write at once, the end of
    the stream is sent right behind it (C{shutdown(SHUT_WR)}), so the client
    gets the reply and the end together; the connection stops reading, and
    its C{connectionLost} is called on the reactor's next pass (as Twisted's
    own C{abortConnection} does, but as a clean close: the socket is closed
    in order, so the kernel still delivers, and retransmits, what it took).
    That saves watching the socket for writability first: an event and two
    C{epoll_ctl} calls per connection. Otherwise: C{transport.write} and
    C{loseConnection}.
    """
    if canWriteDirectly(transport):
        connection: tcp.Connection = transport  # type: ignore[assignment]
        sock = _twisted.socketOf(connection)
        if sock is not None and _twisted.mayCloseAtOnce(connection):
            try:
                sent = sock.send(data)
            except OSError:
                sent = 0
            if sent == len(data):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_WR)
                _twisted.closeWritten(connection)
                return
            data = data[sent:]
    transport.write(data)
    transport.loseConnection()


def setNoDelay(transport: object) -> None:
    """
    Turn off Nagle's algorithm on C{transport} if it is a TCP connection, so
    that a short reply written while an earlier one is unacknowledged is sent
    at once rather than after the peer's delayed acknowledgement (up to 40 ms
    on Linux). asyncio does the same for every TCP transport.
    """
    if ITCPTransport.providedBy(transport):
        transport.setTcpNoDelay(True)


# Keepalive: the first probe after a minute of silence, then every ten
# seconds; a peer that answers none of six is gone (about two minutes in all,
# against the kernel's default of over two hours).
KEEPALIVE_IDLE = 60
KEEPALIVE_INTERVAL = 10
KEEPALIVE_COUNT = 6


def setKeepAlive(transport: object) -> None:
    """
    Turn on TCP keepalive for C{transport} if it is a TCP connection, with
    probes that find a vanished peer in about two minutes: a client whose
    machine went away without closing is then dropped, and frees its place,
    even in a room where nobody talks.
    """
    if not ITCPTransport.providedBy(transport):
        return
    transport.setTcpKeepAlive(True)
    handle = getattr(transport, "getHandle", lambda: None)()
    if isinstance(handle, socket.socket) and hasattr(socket, "TCP_KEEPIDLE"):
        with contextlib.suppress(OSError):
            handle.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, KEEPALIVE_IDLE)
            handle.setsockopt(
                socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, KEEPALIVE_INTERVAL
            )
            handle.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, KEEPALIVE_COUNT)

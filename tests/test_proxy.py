"""
PROXY protocol (haproxy: endpoints): the client's own address for names,
logs and limits, with headers written by hand (v1 and v2) and by HAProxy.
"""

from __future__ import annotations

import socket
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.protocol import connectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransportWithDisconnection

from sockserve._proxy import HEADER_TIMEOUT, ProxyHeaderFactory
from sockserve.factories import buildFactory
from sockserve.limits import Limits
from tests.processes import (
    Processes,
    receiveText,
    receiveToEOF,
    systemProgram,
)
from tests.support import readmeBlock


def v2Header(source: tuple[str, int], destination: tuple[str, int]) -> bytes:
    """A PROXY protocol v2 header for a TCP over IPv4 connection."""
    addresses = (
        socket.inet_aton(source[0])
        + socket.inet_aton(destination[0])
        + struct.pack("!HH", source[1], destination[1])
    )
    return (
        b"\r\n\r\n\x00\r\nQUIT\n"
        + bytes([0x21, 0x11])
        + struct.pack("!H", len(addresses))
        + addresses
    )


def test_the_protocol_waits_for_the_header() -> None:
    """The server's protocol hears of the connection only once the header
    is in, and then sees the client's address; a connection whose header
    does not come in time is closed, and the protocol never hears of it."""
    clock = Clock()
    factory = buildFactory("chat", Limits(), clock, "Hi")
    wrapping = ProxyHeaderFactory(factory, clock)
    wrapper = wrapping.buildProtocol(IPv4Address("TCP", "10.0.0.1", 1))
    transport = StringTransportWithDisconnection(
        peerAddress=IPv4Address("TCP", "10.0.0.1", 1)
    )
    transport.protocol = wrapper
    wrapper.makeConnection(transport)
    assert transport.value() == b""
    wrapper.dataReceived(b"PROXY TCP4 203.0.113.7 10.0.0.2 40000 5000\r\nhi")
    assert b"* you are 203.0.113.7:40000; 0 other(s) here" in transport.value()
    silent = wrapping.buildProtocol(IPv4Address("TCP", "10.0.0.1", 2))
    silentTransport = StringTransportWithDisconnection()
    silentTransport.protocol = silent
    silentTransport.abortConnection = silentTransport.loseConnection  # type: ignore[method-assign]
    silent.makeConnection(silentTransport)
    clock.advance(HEADER_TIMEOUT)
    assert not silentTransport.connected
    assert factory.room is not None
    assert factory.room.population() == 1
    wrapper.connectionLost(connectionDone)
    assert clock.getDelayedCalls() == []


@pytest.fixture
def processes() -> Iterator[Processes]:
    with Processes() as processes:
        yield processes


def proxiedServer(processes: Processes, *options: str):
    server = processes.server("--port", "haproxy:tcp:0", *options)
    server.output.follow()
    return server


@pytest.mark.e2e
@pytest.mark.parametrize("version", [1, 2])
def test_headers_name_the_client(processes: Processes, version: int) -> None:
    """Behind a PROXY header (v1 or v2), a chat client is greeted at once,
    named, logged and counted per address by its own address."""
    server = proxiedServer(processes, "--max-per-ip", "1")
    port = int(server.addresses[0].rpartition(":")[2])

    def connect(host: str, sourcePort: int) -> socket.socket:
        sock = processes.connect(("127.0.0.1", port))
        if version == 1:
            sock.sendall(
                b"PROXY TCP4 %s 127.0.0.1 %d 5000\r\n" % (host.encode(), sourcePort)
            )
        else:
            sock.sendall(v2Header((host, sourcePort), ("127.0.0.1", 5000)))
        return sock

    first = connect("203.0.113.7", 40000)
    assert b"* you are 203.0.113.7:40000; 0 other(s) here" in receiveText(
        first, b"other(s) here"
    )
    server.output.waitForText(b"Client 203.0.113.7:40000 is now connected")
    again = connect("203.0.113.7", 40001)
    assert receiveToEOF(again) == (
        b"ERROR too many connections from 203.0.113.7 (at most 1 per address)\r\n"
    )
    other = connect("198.51.100.9", 5555)
    assert b"* you are 198.51.100.9:5555" in receiveText(other, b"other(s) here")


def readmeHAProxyConfig() -> str:
    """
    The README's haproxy.cfg, as a template: its frontend's and backend's
    addresses replaced by {front} and {back}.
    """
    config = readmeBlock("An ``haproxy.cfg`` for a chat room")
    assert "bind 127.0.0.1:5000" in config
    assert "127.0.0.1:5001 send-proxy" in config
    return config.replace("bind 127.0.0.1:5000", "bind {front}").replace(
        "127.0.0.1:5001 send-proxy", "127.0.0.1:{back} send-proxy{v2}"
    )


@pytest.mark.e2e
@pytest.mark.parametrize("v2", ["", "-v2"])
def test_behind_haproxy(processes: Processes, v2: str, tmp_path: Path) -> None:
    """The README's HAProxy configuration, run by HAProxy itself: a chat
    client connecting through it is named by its own address and port."""
    server = proxiedServer(processes)
    back = int(server.addresses[0].rpartition(":")[2])
    # HAProxy's listening socket comes from the test (on an OS-chosen port),
    # so that it listens before it starts: no waiting on it.
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    listening.listen()
    front = listening.getsockname()[1]
    config = tmp_path / "haproxy.cfg"
    config.write_text(
        readmeHAProxyConfig().format(front=f"fd@{listening.fileno()}", back=back, v2=v2)
    )
    proxy = subprocess.Popen(
        [systemProgram("haproxy"), "-db", "-f", str(config)],
        pass_fds=[listening.fileno()],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    listening.close()
    try:
        sock = processes.connect(("127.0.0.1", front))
        sourcePort = sock.getsockname()[1]
        greeting = receiveText(sock, b"other(s) here")
    finally:
        proxy.terminate()
        proxy.wait(10)
    assert f"* you are 127.0.0.1:{sourcePort};".encode() in greeting


@pytest.mark.parametrize(
    "header",
    [
        b"PROXY TCP4 \x1b[31mevil 127.0.0.1 40000 5000\r\n",
        b"PROXY TCP4 203.0.113.\xff 127.0.0.1 40000 5000\r\n",
        b"PROXY TCP4 203.0.113.7 127.0.0.1 notaport 5000\r\n",
        b"GET / HTTP/1.1\r\n",
    ],
)
def test_a_bad_header_closes_the_connection(header: bytes) -> None:
    """A header whose address is not an IP address and port, or no header
    at all, closes the connection; the server never sees it, and nothing
    is raised."""
    clock = Clock()
    factory = buildFactory("chat", Limits(), clock, "Hi")
    wrapper = ProxyHeaderFactory(factory, clock).buildProtocol(None)
    transport = StringTransportWithDisconnection()
    transport.protocol = wrapper
    wrapper.makeConnection(transport)
    wrapper.dataReceived(header + b"hello\n")
    assert not transport.connected
    assert transport.value() == b""
    assert factory.room is not None
    assert factory.room.population() == 0
    assert clock.getDelayedCalls() == []


@pytest.mark.e2e
def test_half_close_behind_a_proxy(processes: Processes) -> None:
    """A client behind a PROXY header that half-closes still gets every
    reply before the server closes, as without the header."""
    server = processes.server("--port", "haproxy:tcp:0", mode="echo")
    port = int(server.addresses[0].rpartition(":")[2])
    sock = processes.connect(("127.0.0.1", port))
    sock.sendall(b"PROXY TCP4 203.0.113.7 127.0.0.1 40000 5000\r\nhello\nlast")
    sock.shutdown(socket.SHUT_WR)
    assert receiveToEOF(sock) == b"OK .. hello\nOK .. last\n"

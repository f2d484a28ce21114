"""
PROXY protocol (haproxy: endpoints): the client's own address for names,
logs and limits, with headers written by hand (v1 and v2) and by HAProxy.
"""

from __future__ import annotations

import socket
import struct
import subprocess
from pathlib import Path

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.interfaces import IAddress
from twisted.internet.protocol import Protocol, ServerFactory, connectionDone
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
from tests.support import capturedLogs, readmeBlock


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
    assert b"* you are guest1 (203.0.113.7:40000) in #default; nobody else here" in (
        transport.value()
    )
    silent = wrapping.buildProtocol(IPv4Address("TCP", "10.0.0.1", 2))
    silentTransport = StringTransportWithDisconnection()
    silentTransport.protocol = silent
    silentTransport.abortConnection = silentTransport.loseConnection  # type: ignore[method-assign]
    silent.makeConnection(silentTransport)
    clock.advance(HEADER_TIMEOUT)
    assert not silentTransport.connected
    assert factory.service is not None
    assert factory.service.people.population == 1
    wrapper.connectionLost(connectionDone)
    assert clock.getDelayedCalls() == []


class AddressRecorder(ServerFactory):
    """A factory that records the address it is asked to build for, and
    refuses (C{None}) once C{refuse} is set."""

    def __init__(self) -> None:
        self.addresses: list[IAddress | None] = []
        self.refuse = False

    def buildProtocol(self, addr: IAddress | None) -> Protocol | None:
        self.addresses.append(addr)
        return None if self.refuse else Protocol()


def test_the_protocol_is_built_for_the_client() -> None:
    """The factory is asked for a protocol once the header is in, for the
    client's address (per-address bounds of the factory's own count the
    client, not the balancer); a factory that refuses has the connection
    closed, and nothing is raised."""
    clock = Clock()
    factory = AddressRecorder()
    wrapping = ProxyHeaderFactory(factory, clock)
    balancer = IPv4Address("TCP", "10.0.0.1", 1)
    for refuse in (False, True):
        factory.refuse = refuse
        wrapper = wrapping.buildProtocol(balancer)
        transport = StringTransportWithDisconnection(peerAddress=balancer)
        transport.protocol = wrapper
        wrapper.makeConnection(transport)
        assert factory.addresses == [IPv4Address("TCP", "203.0.113.7", 4000)] * refuse
        wrapper.dataReceived(b"PROXY TCP4 203.0.113.7 10.0.0.2 4000 5000\r\nhi\n")
        assert factory.addresses[-1] == IPv4Address("TCP", "203.0.113.7", 4000)
        assert transport.connected is not refuse
        wrapper.dataReceived(b"more\n")
        if transport.connected:
            wrapper.connectionLost(connectionDone)
    assert wrapping.protocols == {}
    assert clock.getDelayedCalls() == []


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
    assert b"(203.0.113.7:40000) in #default; nobody else here" in receiveText(
        first, b" here\r\n"
    )
    server.output.waitForText(b"Client 203.0.113.7:40000 is now connected")
    again = connect("203.0.113.7", 40001)
    assert receiveToEOF(again) == (
        b"ERROR too many connections from 203.0.113.7 (at most 1 per address)\r\n"
    )
    other = connect("198.51.100.9", 5555)
    assert b"(198.51.100.9:5555) in #default" in receiveText(other, b" here\r\n")


def readmeHAProxyConfig() -> str:
    """
    The HAProxy guide's haproxy.cfg, as a template: its frontend's and backend's
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
    """The HAProxy guide's configuration, run by HAProxy itself: a chat
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
        greeting = receiveText(sock, b" here\r\n")
    finally:
        proxy.terminate()
        proxy.wait(10)
    assert f"(127.0.0.1:{sourcePort}) in #default".encode() in greeting


@pytest.mark.parametrize(
    "header",
    [
        b"PROXY TCP4 \x1b[31mevil 127.0.0.1 40000 5000\r\n",
        b"PROXY TCP4 203.0.113.\xff 127.0.0.1 40000 5000\r\n",
        b"PROXY TCP4 203.0.113.7 127.0.0.1 notaport 5000\r\n",
        b"PROXY TCP6 fe80::1%\x1b[2J\x1b]0;owned\x07 ::1 40000 5000\r\n",
        b"PROXY TCP6 fe80::1%eth0 ::1 40000 5000\r\n",
        b"PROXY TCP6 203.0.113.7 ::1 40000 5000\r\n",
        b"PROXY TCP4 ::1 127.0.0.1 40000 5000\r\n",
        b"GET / HTTP/1.1\r\n",
    ],
)
def test_a_bad_header_closes_the_connection(header: bytes) -> None:
    """A header whose address is not an IP address of its family and a
    port, an IPv6 address with a zone id (which may be any text), or no
    header at all, closes the connection; the server never sees it, and nothing
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
    assert factory.service is not None
    assert factory.service.people.population == 0
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


def v1Header(source: str, sourcePort: int, family: str = "TCP6") -> bytes:
    """A PROXY protocol v1 header naming C{source} as the client."""
    destination = "::1" if family == "TCP6" else "127.0.0.1"
    return f"PROXY {family} {source} {destination} {sourcePort} 5000\r\n".encode()


@pytest.mark.e2e
def test_zone_ids_are_refused(processes: Processes) -> None:
    """A PROXY header whose source address carries a zone id (which may
    hold any text, terminal control sequences included) is not taken: the
    connection is closed without a word, the room never hears of it, and
    the log never shows it."""
    server = proxiedServer(processes)
    port = int(server.addresses[0].rpartition(":")[2])
    member = processes.connect(("127.0.0.1", port))
    member.sendall(v1Header("203.0.113.9", 4000, "TCP4"))
    receiveText(member, b" here\r\n")
    for zone in ["\x1b[2J\x1b]0;owned\x07", "eth0", "1"]:
        sock = processes.connect(("127.0.0.1", port))
        sock.sendall(v1Header(f"fe80::1%{zone}", 40000) + b"hello\r\n")
        assert receiveToEOF(sock) == b""
    member.sendall(b"/who\r\n")
    assert b"* 1 here: guest1\r\n" in receiveText(member, b" here: ")
    assert b"fe80" not in server.output.drain()
    assert b"\x1b" not in server.output.drain()


@pytest.mark.e2e
def test_ipv6_is_counted_per_64(processes: Processes) -> None:
    """--max-per-ip counts an IPv6 client by its /64 network (one machine
    may hold all of it), and an IPv4-mapped IPv6 address as its IPv4
    address."""
    server = proxiedServer(processes, "--max-per-ip", "3")
    port = int(server.addresses[0].rpartition(":")[2])

    def connect(source: str, family: str = "TCP6") -> socket.socket:
        sock = processes.connect(("127.0.0.1", port))
        sock.sendall(v1Header(source, 40000, family))
        return sock

    for host in ["2001:db8:0:1::1", "2001:db8:0:1::2", "2001:db8:0:1:ffff::3"]:
        receiveText(connect(host), b" here\r\n")
    assert receiveToEOF(connect("2001:db8:0:1::4")) == (
        b"ERROR too many connections from 2001:db8:0:1::/64 (at most 3 per "
        b"address; an IPv6 /64 counts as one)\r\n"
    )
    receiveText(connect("2001:db8:0:2::1"), b" here\r\n")
    receiveText(connect("203.0.113.7", "TCP4"), b" here\r\n")
    for mapped in ["::ffff:203.0.113.7", "::ffff:cb00:7107"]:
        receiveText(connect(mapped), b" here\r\n")
    assert receiveToEOF(connect("203.0.113.7", "TCP4")) == (
        b"ERROR too many connections from 203.0.113.7 (at most 3 per address)\r\n"
    )


@pytest.mark.e2e
def test_ipv6_behind_haproxy_is_counted_per_64(
    processes: Processes, tmp_path: Path
) -> None:
    """Behind HAProxy itself, clients at different addresses of one IPv6
    /64 (HAProxy is told to name each client 2001:db8::N, N from its source
    port) count as one address for --max-per-ip."""
    server = proxiedServer(processes, "--max-per-ip", "2")
    back = int(server.addresses[0].rpartition(":")[2])
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    listening.listen()
    front = listening.getsockname()[1]
    config = readmeHAProxyConfig().format(
        front=f"fd@{listening.fileno()}", back=back, v2=""
    )
    setSource = (
        "    tcp-request connection set-var(sess.port) src_port,mod(10000)\n"
        "    tcp-request connection set-src str(2001:db8::),concat(,sess.port,)\n"
    )
    config = config.replace("    default_backend", setSource + "    default_backend")
    (tmp_path / "haproxy.cfg").write_text(config)
    proxy = subprocess.Popen(
        [systemProgram("haproxy"), "-db", "-f", str(tmp_path / "haproxy.cfg")],
        pass_fds=[listening.fileno()],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    listening.close()
    try:
        names = []
        for _ in range(2):
            sock = processes.connect(("127.0.0.1", front))
            greeting = receiveText(sock, b" here\r\n")
            names.append(greeting.split(b"* you are ")[1].split(b"(")[1].split(b")")[0])
        third = processes.connect(("127.0.0.1", front))
        refusal = receiveToEOF(third)
    finally:
        proxy.terminate()
        proxy.wait(10)
    assert all(name.startswith(b"[2001:db8::") for name in names), names
    assert refusal == (
        b"ERROR too many connections from 2001:db8::/64 (at most 2 per "
        b"address; an IPv6 /64 counts as one)\r\n"
    )


def test_a_connection_without_a_header_is_logged_at_a_bounded_rate() -> None:
    """A client that reaches a PROXY protocol port directly (no header in
    time, or bytes that are no header) is logged, as the address it came
    from and what was wrong, at the bounded rate of what clients cause."""
    clock = Clock()
    factory = buildFactory("chat", Limits(), clock, "Hi")
    limiter = factory.context.registry.logLimit
    wrapping = ProxyHeaderFactory(factory, clock, limiter)

    def connect(port: int) -> tuple[object, StringTransportWithDisconnection]:
        wrapper = wrapping.buildProtocol(None)
        transport = StringTransportWithDisconnection(
            peerAddress=IPv4Address("TCP", "192.0.2.1", port)
        )
        transport.protocol = wrapper
        transport.abortConnection = transport.loseConnection  # type: ignore[method-assign]
        wrapper.makeConnection(transport)
        return wrapper, transport

    with capturedLogs() as logs:
        connect(1)
        clock.advance(HEADER_TIMEOUT)
        plain, plainTransport = connect(2)
        plain.dataReceived(b"hello\n")  # type: ignore[attr-defined]
        for port in range(3, 100):
            connect(port)[0].dataReceived(b"hello\n")  # type: ignore[attr-defined]
    texts = [text for text in logs.texts() if "PROXY" in text]
    assert texts[:2] == [
        "Client 192.0.2.1:1 sent no PROXY protocol header in 10 seconds; closing "
        "(is it reaching a port meant for a load balancer?)",
        "Client 192.0.2.1:2 sent no valid PROXY protocol header; closing "
        "(is it reaching a port meant for a load balancer?)",
    ]
    assert len(texts) < 30, texts
    assert not plainTransport.connected
    assert factory.service is not None
    assert factory.service.people.population == 0
    if limiter is not None:
        limiter.flush()


@pytest.mark.e2e
def test_a_direct_client_on_a_proxy_port_is_logged(processes: Processes) -> None:
    """A client that reaches a haproxy: port without the balancer is closed
    and the server says why in its log."""
    server = proxiedServer(processes)
    port = int(server.addresses[0].rpartition(":")[2])
    sock = processes.connect(("127.0.0.1", port))
    sock.sendall(b"hello\n")
    assert receiveToEOF(sock) == b""
    server.output.waitForText(b"sent no valid PROXY protocol header; closing")

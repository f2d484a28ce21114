"""
The front ends' contract: one suite, run over each way a client joins the
chat (a line client on TCP, a WebSocket client), in-process on
StringTransports with a Clock. Whatever a client sees of the chat, and what
the server does about a client that misbehaves, must not depend on how it
connected; only the framing differs (a line, or a text frame).
"""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from wsproto.connection import Connection, ConnectionType
from wsproto.events import CloseConnection, TextMessage

from sockserve.factories import LineServerFactory, buildFactory
from sockserve.limits import Limits
from sockserve.protocol import ERROR_GRACE
from sockserve.web.protocol import (
    WebSocketChatProtocol,
    WebSocketMemberFactory,
    WebSocketSettings,
)
from sockserve.web.wires import WEBSOCKET_LINE_WIRE


class HttpChannel:
    """The producer an HTTP channel registers before the upgrade."""

    def pauseProducing(self) -> None:
        raise AssertionError("the member took the connection over")

    resumeProducing = stopProducing = pauseProducing


class Client:
    """
    A client of the chat, as it sees it: the lines it was sent, whatever
    its front end framed them in.
    """

    transport: StringTransport
    protocol: Any

    def __init__(self, factory: LineServerFactory, port: int) -> None:
        raise NotImplementedError()

    def send(self, line: str) -> None:
        raise NotImplementedError()

    def sendBytes(self, data: bytes) -> None:
        raise NotImplementedError()

    def lines(self) -> list[str]:
        raise NotImplementedError()

    @property
    def closed(self) -> bool:
        return bool(self.transport.disconnecting or self.transport.disconnected)


class LineClient(Client):
    def __init__(self, factory: LineServerFactory, port: int) -> None:
        peer = IPv4Address("TCP", "127.0.0.1", port)
        self.protocol = factory.buildProtocol(peer)
        self.transport = StringTransport(peerAddress=peer)
        self.protocol.makeConnection(self.transport)
        self._pending = b""

    def send(self, line: str) -> None:
        self.protocol.dataReceived(line.encode() + b"\r\n")

    def sendBytes(self, data: bytes) -> None:
        self.protocol.dataReceived(data)

    def lines(self) -> list[str]:
        self._pending += self.transport.value()
        self.transport.clear()
        *lines, self._pending = self._pending.split(b"\r\n")
        return [line.decode() for line in lines]


class WebClient(Client):
    def __init__(self, factory: LineServerFactory, port: int) -> None:
        assert factory.service is not None
        assert factory.banner is not None
        assert factory.policy is not None
        members = WebSocketMemberFactory(
            WebSocketSettings(
                factory.context,
                factory.service,
                factory.banner,
                factory.policy,
                maxMessage=factory.context.limits.maxLine,
            )
        )
        self.protocol = members.buildMember(WEBSOCKET_LINE_WIRE, False)
        assert isinstance(self.protocol, WebSocketChatProtocol)
        peer = IPv4Address("TCP", "127.0.0.1", port)
        self.transport = StringTransport(peerAddress=peer)
        self.transport.registerProducer(HttpChannel(), True)
        self.protocol.makeConnection(self.transport)
        self.client = Connection(ConnectionType.CLIENT)
        self.closeCode: int | None = None

    def send(self, line: str) -> None:
        self.protocol.dataReceived(self.client.send(TextMessage(line)))

    def sendBytes(self, data: bytes) -> None:
        self.send(data.decode())

    def lines(self) -> list[str]:
        data = self.transport.value()
        self.transport.clear()
        self.client.receive_data(data)
        found = []
        for event in self.client.events():
            if isinstance(event, TextMessage):
                found.append(event.data)
            elif isinstance(event, CloseConnection):
                self.closeCode = event.code
        return found


KINDS = {"line": LineClient, "websocket": WebClient}


@pytest.fixture(params=sorted(KINDS))
def kind(request: pytest.FixtureRequest) -> type[Client]:
    return KINDS[request.param]


def server(clock: Clock, **limits: Any) -> LineServerFactory:
    return buildFactory("chat", Limits(**limits), clock, "Hi")


def test_greeting_and_lines_both_ways(kind: type[Client]) -> None:
    """A client is greeted with the banner and its name; its lines reach the
    others (of any front end), theirs reach it, never its own back."""
    clock = Clock()
    factory = server(clock)
    other = LineClient(factory, 40000)
    client = kind(factory, 40001)
    assert client.lines() == [
        "Hi",
        "* you are guest2 (127.0.0.1:40001) in #default; 1 other here",
    ]
    client.send("hello")
    other.send("hi there")
    assert other.lines()[-2:] == ["* guest2 joined", "<guest2> hello"]
    assert client.lines() == ["<guest1> hi there"]


def test_commands(kind: type[Client]) -> None:
    """Commands work the same on every front end: a name, a room, a private
    message, help."""
    clock = Clock()
    factory = server(clock)
    other = LineClient(factory, 40000)
    client = kind(factory, 40001)
    client.lines(), other.lines()
    client.send("/nick alice")
    client.send("/msg guest1 psst")
    client.send("/join lab")
    client.send("/rooms")
    assert client.lines() == [
        "* you are now known as alice",
        "-> *guest1* psst",
        "* you are now in #lab; nobody else here",
        "* 2 rooms: #default (1), #lab (1)",
    ]
    assert other.lines() == [
        "* guest2 is now known as alice",
        "*alice* psst",
        "* alice left",
    ]


def test_a_line_too_long_closes_that_client_only(kind: type[Client]) -> None:
    """A line (or message) beyond --max-line is one ERROR, then the client
    is closed; the others go on."""
    clock = Clock()
    factory = server(clock, maxLine=100)
    other = LineClient(factory, 40000)
    client = kind(factory, 40001)
    client.lines(), other.lines()
    client.send("x" * 200)
    [error] = client.lines()
    assert error.startswith("ERROR ")
    assert "too long (the limit is 100 bytes)" in error
    assert client.closed
    assert other.lines() == ["* guest2 left"]
    other.send("still here")
    assert not other.closed
    clock.advance(ERROR_GRACE)


def test_a_full_server_refuses_with_one_error(kind: type[Client]) -> None:
    """Beyond --max-clients in the default room, a client is told the
    server is full and closed."""
    clock = Clock()
    factory = server(clock, maxClients=1)
    LineClient(factory, 40000)
    client = kind(factory, 40001)
    assert client.lines() == ["ERROR the server is full (1 client); try again later"]
    assert client.closed
    clock.advance(ERROR_GRACE)


def test_idle_clients_are_closed_and_empty_lines_keep_no_seat(
    kind: type[Client],
) -> None:
    """A client that sends nothing but empty lines for --idle-timeout is
    told it was idle, and closed."""
    clock = Clock()
    factory = server(clock, idleTimeout=10.0)
    client = kind(factory, 40001)
    client.lines()
    for _ in range(3):
        clock.advance(4)
        client.sendBytes(b"\r\n")
    assert client.lines() == ["ERROR idle for 10 seconds; closing the connection"]
    assert client.closed
    clock.advance(ERROR_GRACE)


def test_shutdown_says_goodbye(kind: type[Client]) -> None:
    """At shutdown every client is told goodbye, then closed; nobody is told
    of the others leaving because of it."""
    clock = Clock()
    factory = server(clock)
    other = LineClient(factory, 40000)
    client = kind(factory, 40001)
    client.lines(), other.lines()
    factory.context.registry.shutdown(clock, 1.0)
    assert client.lines() == ["* the server is shutting down; goodbye"]
    assert other.lines() == ["* the server is shutting down; goodbye"]
    assert client.closed
    clock.advance(1.0)


def test_a_client_that_does_not_read_is_dropped_alone(kind: type[Client]) -> None:
    """Beyond --max-pending bytes queued for a client that does not read, it
    is dropped; the others are not."""
    clock = Clock()
    factory = server(clock, maxPending=10_000)
    speaker = LineClient(factory, 40000)
    reader = LineClient(factory, 40002)
    client = kind(factory, 40001)
    client.lines()
    client.protocol.pauseProducing()
    for _ in range(5):
        speaker.send("y" * 4000)
    assert client.transport.disconnected or client.closed
    assert not reader.closed

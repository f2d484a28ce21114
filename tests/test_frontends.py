"""
The front ends' contract: one suite, run over each way a client joins the
chat (a line client on TCP, a WebSocket client, an IRC client), in-process
on StringTransports with a Clock. Whatever a client sees of the chat, and
what the server does about a client that misbehaves, must not depend on how
it connected: only the grammar differs (a line, a text frame, IRC's
commands and numerics), so each kind of client here says what it wants in
its own grammar and reads what it is sent back into the same events.

An IRC client registers (with C{echo-message}, so that it sees its private
messages go through, as the others do) and joins C{#default}, where the
others arrive.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from wsproto.connection import Connection, ConnectionType
from wsproto.events import CloseConnection, TextMessage

from sockserve.factories import LineServerFactory, buildFactory
from sockserve.irc import IRCFactory, IRCSettings, IRCWires
from sockserve.irc.grammar import LINE_BYTES, TAG_BYTES, parseLine
from sockserve.limits import Limits
from sockserve.protocol import ERROR_GRACE
from sockserve.web.protocol import (
    WebSocketChatProtocol,
    WebSocketMemberFactory,
    WebSocketSettings,
)
from sockserve.web.wires import WEBSOCKET_LINE_WIRE

Event = tuple[Any, ...]


class HttpChannel:
    """The producer an HTTP channel registers before the upgrade."""

    def pauseProducing(self) -> None:
        raise AssertionError("the member took the connection over")

    resumeProducing = stopProducing = pauseProducing


_LINE_EVENTS: list[tuple[re.Pattern[str], Any]] = [
    (re.compile(r"\* you are (\S+) \(.*\) in #\S+; .*"), lambda m: ("welcome", m[1])),
    (re.compile(r"<(\S+)> (.*)"), lambda m: ("message", m[1], m[2])),
    (re.compile(r"-> \*(\S+)\* (.*)"), lambda m: ("sent", m[1], m[2])),
    (re.compile(r"\*(\S+)\* (.*)"), lambda m: ("private", m[1], m[2])),
    (re.compile(r"\* you are now known as (\S+)"), lambda m: ("name", m[1])),
    (re.compile(r"\* you are now in #(\S+);.*"), lambda m: ("entered", m[1])),
    (re.compile(r"\* (\S+) joined"), lambda m: ("joined", m[1])),
    (re.compile(r"\* (\S+) left"), lambda m: ("left", m[1])),
    (re.compile(r"\* (\S+) is now known as (\S+)"), lambda m: ("renamed", m[1], m[2])),
    (
        re.compile(r"\* \d+ rooms?: (.*)"),
        lambda m: (
            "rooms",
            tuple(
                (name, int(count))
                for name, count in re.findall(r"#(\S+) \((\d+)\)", m[1])
            ),
        ),
    ),
    (re.compile(r"ERROR (.*)"), lambda m: ("error", m[1])),
    (re.compile(r"\* (.*)"), lambda m: ("notice", m[1])),
]


def lineEvent(line: str) -> Event:
    """A line of the line wire as an event."""
    for pattern, event in _LINE_EVENTS:
        match = pattern.fullmatch(line)
        if match:
            return tuple(event(match))
    return ("text", line)


class Client:
    """
    A client of the chat, as its user sees it: what it asks for in its own
    grammar, and the events it was sent.
    """

    transport: StringTransport
    protocol: Any
    # Bytes of one line or message beyond which it is closed.
    tooLong: int = 100

    def __init__(self, factory: LineServerFactory, port: int) -> None:
        raise NotImplementedError()

    def sendBytes(self, data: bytes) -> None:
        raise NotImplementedError()

    def events(self) -> list[Event]:
        raise NotImplementedError()

    def say(self, text: str) -> None:
        self.send(text)

    def rename(self, name: str) -> None:
        self.send(f"/nick {name}")

    def message(self, name: str, text: str) -> None:
        self.send(f"/msg {name} {text}")

    def join(self, room: str) -> None:
        self.send(f"/join {room}")

    def listRooms(self) -> None:
        self.send("/rooms")

    def send(self, line: str) -> None:
        self.sendBytes(line.encode() + b"\r\n")

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

    def sendBytes(self, data: bytes) -> None:
        self.protocol.dataReceived(data)

    def lines(self) -> list[str]:
        self._pending += self.transport.value()
        self.transport.clear()
        *lines, self._pending = self._pending.split(b"\r\n")
        return [line.decode() for line in lines]

    def events(self) -> list[Event]:
        return [lineEvent(line) for line in self.lines()]


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
        self.tooLong = factory.context.limits.maxLine
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
        self.send(data.decode().removesuffix("\r\n"))

    def events(self) -> list[Event]:
        data = self.transport.value()
        self.transport.clear()
        self.client.receive_data(data)
        found = []
        for event in self.client.events():
            if isinstance(event, TextMessage):
                found.append(lineEvent(event.data))
            elif isinstance(event, CloseConnection):
                self.closeCode = event.code
        return found


class IRCClient(Client):
    """
    An IRC client: it registers (nicknames as the others are called, in
    turn: guestN) with echo-message, and joins #default.
    """

    tooLong = TAG_BYTES + LINE_BYTES

    def __init__(self, factory: LineServerFactory, port: int) -> None:
        assert factory.service is not None
        assert factory.policy is not None
        clock = factory.context.clock
        irc = IRCFactory(
            IRCSettings(
                factory.context,
                factory.service,
                factory.policy,
                IRCWires("sockserve", "sockserve", clock),
                "Hi",
                clock,
            )
        )
        peer = IPv4Address("TCP", "127.0.0.1", port)
        self.protocol = irc.buildProtocol(peer)
        self.transport = StringTransport(peerAddress=peer)
        self.protocol.makeConnection(self.transport)
        self._pending = b""
        self.room = "default"
        self.nick = f"guest{factory.service.people.population + 1}"
        self.send("CAP LS 302")
        self.send("CAP REQ :echo-message")
        self.send(f"NICK {self.nick}")
        self.send("USER irc 0 * :An IRC client")
        self.send("CAP END")
        self.send("JOIN #default")

    def sendBytes(self, data: bytes) -> None:
        self.protocol.dataReceived(data)

    def say(self, text: str) -> None:
        self.send(f"PRIVMSG #{self.room} :{text}")

    def rename(self, name: str) -> None:
        self.send(f"NICK {name}")

    def message(self, name: str, text: str) -> None:
        self.send(f"PRIVMSG {name} :{text}")

    def join(self, room: str) -> None:
        # As a line client does, it goes: in the room joined, out of the
        # one it was in.
        self.send(f"JOIN #{room}")
        self.send(f"PART #{self.room}")
        self.room = room

    def listRooms(self) -> None:
        self.send("LIST")

    def events(self) -> list[Event]:
        self._pending += self.transport.value()
        self.transport.clear()
        *lines, self._pending = self._pending.split(b"\r\n")
        found: list[Event] = []
        rooms: list[tuple[str, int]] = []
        for raw in lines:
            message = parseLine(raw)
            verb, params = message.verb, message.params
            source = raw.decode().split(" ", 1)[0].lstrip(":").split("!")[0]
            mine = source == self.nick
            if verb == "001":
                found.append(("welcome", params[0]))
            elif verb in ("PRIVMSG", "NOTICE") and "!" in raw.decode().split()[0]:
                target, text = params
                if target.startswith("#"):
                    if not mine:
                        found.append(("message", source, text))
                elif mine:
                    found.append(("sent", target, text))
                else:
                    found.append(("private", source, text))
            elif verb == "NOTICE":
                found.append(("notice", params[-1]))
            elif verb == "JOIN":
                if mine:
                    if params[0] != "#default" or found or rooms:
                        found.append(("entered", params[0][1:]))
                else:
                    found.append(("joined", source))
            elif verb in ("PART", "QUIT"):
                if not mine:
                    found.append(("left", source))
            elif verb == "NICK":
                if mine:
                    self.nick = params[0]
                    found.append(("name", params[0]))
                else:
                    found.append(("renamed", source, params[0]))
            elif verb == "322":
                rooms.append((params[1][1:], int(params[2])))
            elif verb == "323":
                found.append(("rooms", tuple(rooms)))
            elif verb == "ERROR":
                found.append(("error", params[0].removeprefix("Closing link: ")))
            elif verb[0] in "45":
                found.append(("error", params[-1]))
        return found


KINDS = {"line": LineClient, "websocket": WebClient, "irc": IRCClient}


@pytest.fixture(params=sorted(KINDS))
def kind(request: pytest.FixtureRequest) -> type[Client]:
    return KINDS[request.param]


def server(clock: Clock, **limits: Any) -> LineServerFactory:
    return buildFactory("chat", Limits(**limits), clock, "Hi")


def arrived(client: Client) -> str:
    """The client's name, from what it was sent on arrival."""
    [name] = [event[1] for event in client.events() if event[0] == "welcome"]
    return str(name)


def test_greeting_and_lines_both_ways(kind: type[Client]) -> None:
    """A client is greeted with its name; its lines reach the others (of any
    front end), theirs reach it, never its own back."""
    clock = Clock()
    factory = server(clock)
    other = LineClient(factory, 40000)
    client = kind(factory, 40001)
    assert arrived(client) == "guest2"
    client.say("hello")
    other.say("hi there")
    assert other.events()[-2:] == [("joined", "guest2"), ("message", "guest2", "hello")]
    assert client.events() == [("message", "guest1", "hi there")]


def test_commands(kind: type[Client]) -> None:
    """What a client asks for works the same on every front end: a name, a
    private message, a room, the list of rooms."""
    clock = Clock()
    factory = server(clock)
    other = LineClient(factory, 40000)
    client = kind(factory, 40001)
    client.events(), other.events()
    client.rename("alice")
    client.message("guest1", "psst")
    client.join("lab")
    client.listRooms()
    assert client.events() == [
        ("name", "alice"),
        ("sent", "guest1", "psst"),
        ("entered", "lab"),
        ("rooms", (("default", 1), ("lab", 1))),
    ]
    assert other.events() == [
        ("renamed", "guest2", "alice"),
        ("private", "alice", "psst"),
        ("left", "alice"),
    ]


def test_a_line_too_long_closes_that_client_only(kind: type[Client]) -> None:
    """A line (or message) beyond what its front end takes (--max-line; IRC's
    own bound) is one error, then the client is closed; the others go on."""
    clock = Clock()
    factory = server(clock, maxLine=100)
    other = LineClient(factory, 40000)
    client = kind(factory, 40001)
    client.events(), other.events()
    client.send("x" * (client.tooLong + 100))
    [error] = client.events()
    assert error[0] == "error"
    assert "too long" in error[1]
    assert client.closed
    assert other.events() == [("left", "guest2")]
    other.say("still here")
    assert not other.closed
    clock.advance(ERROR_GRACE)


def test_a_full_room_refuses_with_one_error(kind: type[Client]) -> None:
    """Beyond --max-clients in a room, a client that asks to be in it is told
    it is full, in one error; a client arriving in a full default room is
    closed, one that joins a full room stays where it was."""
    clock = Clock()
    factory = server(clock, maxClients=1)
    LineClient(factory, 40000)
    client = kind(factory, 40001)
    events = client.events()
    assert [event[0] for event in events] in (["error"], ["welcome", "error"])
    assert "is full" in events[-1][1]
    if kind is IRCClient:
        assert not client.closed
        client.send("JOIN #lab")
        assert [event[0] for event in client.events()] == ["entered"]
    else:
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
    client.events()
    for _ in range(3):
        clock.advance(4)
        client.sendBytes(b"\r\n")
    assert client.events() == [("error", "idle for 10 seconds; closing the connection")]
    assert client.closed
    clock.advance(ERROR_GRACE)


def test_shutdown_says_goodbye(kind: type[Client]) -> None:
    """At shutdown every client is told goodbye, then closed; nobody is told
    of the others leaving because of it."""
    clock = Clock()
    factory = server(clock)
    other = LineClient(factory, 40000)
    client = kind(factory, 40001)
    client.events(), other.events()
    factory.context.registry.shutdown(clock, 1.0)
    goodbye = ("notice", "the server is shutting down; goodbye")
    assert client.events()[0] == goodbye
    assert other.events() == [goodbye]
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
    client.events()
    client.protocol.pauseProducing()
    for _ in range(5):
        speaker.say("y" * 4000)
    assert client.transport.disconnected or client.closed
    assert not reader.closed

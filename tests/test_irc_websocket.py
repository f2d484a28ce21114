"""
IRC over WebSocket (IRCv3's C{text.ircv3.net} and C{binary.ircv3.net}) on
the chat's web site, on StringTransports and a Clock: the handshake's
choice, one IRC line per message both ways, the limits and the closing.
"""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from wsproto.connection import Connection, ConnectionType
from wsproto.events import (
    BytesMessage,
    CloseConnection,
    Event,
    Ping,
    Pong,
    TextMessage,
)

from sockserve.factories import LineServerFactory, buildFactory
from sockserve.irc import ircFactory
from sockserve.irc.websocket import MAX_MESSAGE, SUBPROTOCOLS, IRCWebSocketFactory
from sockserve.limits import Limits
from sockserve.web import chatWebSite
from sockserve.web._pacing import FRAME_BURST, FRAME_RATE
from sockserve.web.site import OriginPolicy
from tests.support import connectOnStringTransport


class Site:
    """The chat's web site with IRC over WebSocket, and its chat."""

    def __init__(self, **limits: Any) -> None:
        self.clock = Clock()
        self.clock.advance(1_800_000_000)
        self.chat: LineServerFactory = buildFactory(
            "chat", Limits(**limits), self.clock, "Hi"
        )
        irc = IRCWebSocketFactory(ircFactory(self.chat, self.clock, "TestNet", 0, "Hi"))
        self.site = chatWebSite(
            self.chat,
            self.clock,
            OriginPolicy((), ()),
            0,
            others={name: irc.buildMember for name in SUBPROTOCOLS},
        )
        self.site.reactor = self.clock
        self.port = 40000

    def connect(self, offered: str) -> WebIRC:
        self.port += 1
        return WebIRC(self, offered, self.port)

    def line(self) -> tuple[Any, StringTransport]:
        protocol, transport, _ = connectOnStringTransport("chat", factory=self.chat)
        return protocol, transport


class WebIRC:
    """A web IRC client on a StringTransport, and what it was told."""

    def __init__(self, site: Site, offered: str, port: int) -> None:
        peer = IPv4Address("TCP", "127.0.0.1", port)
        self.channel = site.site.buildProtocol(peer)
        self.transport = StringTransport(
            peerAddress=peer, hostAddress=IPv4Address("TCP", "127.0.0.1", 8080)
        )
        self.channel.makeConnection(self.transport)
        # As a TCP connection does: what it reads goes to its protocol, the
        # member once the handshake hands it over.
        self.transport.protocol = self.channel  # type: ignore[attr-defined]
        self.channel.dataReceived(
            b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            b"Sec-WebSocket-Version: 13\r\n"
            b"Sec-WebSocket-Protocol: " + offered.encode() + b"\r\n\r\n"
        )
        head, _, rest = self.transport.value().partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101 "), head
        self.chosen = [
            line.partition(b": ")[2].decode()
            for line in head.split(b"\r\n")
            if line.startswith(b"Sec-WebSocket-Protocol:")
        ]
        self.transport.clear()
        self.client = Connection(ConnectionType.CLIENT)
        self.client.receive_data(rest)
        self.member = self.transport.protocol  # type: ignore[attr-defined]
        assert self.member is not self.channel
        self.pending: list[Event] = list(self.client.events())

    def send(self, *lines: str) -> None:
        for line in lines:
            self.sendEvent(TextMessage(line))

    def sendEvent(self, event: Event) -> None:
        self.member.dataReceived(self.client.send(event))

    def events(self) -> list[Event]:
        self.client.receive_data(self.transport.value())
        self.transport.clear()
        found, self.pending = self.pending + list(self.client.events()), []
        return found

    def messages(self) -> list[str | bytes | bytearray]:
        return [
            event.data
            for event in self.events()
            if isinstance(event, TextMessage | BytesMessage)
        ]

    def register(self, nick: str) -> None:
        self.send(f"NICK {nick}", f"USER {nick} 0 * :{nick}")
        self.messages()


@pytest.mark.parametrize(
    ("offered", "chosen"),
    [
        ("text.ircv3.net", "text.ircv3.net"),
        ("binary.ircv3.net, text.ircv3.net", "binary.ircv3.net"),
        ("text.ircv3.net, sockserve.v2.json", "text.ircv3.net"),
        ("sockserve.v2.json, text.ircv3.net", "sockserve.v2.json"),
    ],
)
def test_the_client_chooses_its_subprotocol(offered: str, chosen: str) -> None:
    """The first subprotocol the client offers that the site speaks wins:
    IRC's two, or the page's JSON."""
    client = Site().connect(offered)
    assert client.chosen == [chosen]


def test_registration_and_chat_one_line_per_message() -> None:
    """Each message is one IRC line, without CRLF, both ways (a trailing
    CRLF from the client is taken as the end of its line); an IRC client on
    a WebSocket chats with a line client as any IRC client does, and is
    counted as its own front end."""
    site = Site()
    web = site.connect("text.ircv3.net")
    web.send("CAP LS 302", "NICK webby\r\n", "USER w 0 * :Web", "CAP END")
    messages = web.messages()
    assert all(isinstance(message, str) for message in messages)
    assert not any("\r" in message or "\n" in message for message in messages)
    assert str(messages[0]).startswith(":TestNet CAP * LS :")
    assert [str(message).split()[1] for message in messages[1:5]] == [
        "001",
        "002",
        "003",
        "004",
    ]
    line, lineTransport = site.line()
    web.send("JOIN #default")
    assert web.messages()[0] == ":webby!webby@TestNet JOIN #default"
    lineTransport.clear()
    web.send("PRIVMSG #default :hello from the web")
    assert lineTransport.value() == b"<webby> hello from the web\r\n"
    line.dataReceived(b"hi webby\r\n")
    lineTransport.clear()
    assert web.messages() == [":guest1!guest1@TestNet PRIVMSG #default :hi webby"]
    stats = site.chat.context.stats
    assert stats.acceptedBy == {"irc-websocket": 1, "line": 1}
    assert stats.openBy == {"irc-websocket": 1, "line": 1}
    web.sendEvent(CloseConnection(1000))
    assert any(isinstance(event, CloseConnection) for event in web.events())
    assert web.transport.disconnecting
    assert lineTransport.value() == b"* webby left\r\n"
    web.member.connectionLost(Failure(ConnectionDone()))
    assert stats.openBy == {"irc-websocket": 0, "line": 1}


def test_text_is_utf8_and_binary_is_bytes() -> None:
    """On text.ircv3.net every message is valid UTF-8; on binary.ircv3.net
    lines are sent in binary messages, and binary messages are read; a line
    written in parts is sent once whole."""
    site = Site()
    text = site.connect("text.ircv3.net")
    text.register("texty")
    binary = site.connect("binary.ircv3.net")
    binary.sendEvent(BytesMessage(b"NICK bin"))
    binary.sendEvent(BytesMessage(b"USER b 0 * :B"))
    assert all(isinstance(m, bytes | bytearray) for m in binary.messages())
    text.send("JOIN #lab")
    binary.sendEvent(BytesMessage(b"JOIN #lab"))
    text.messages()
    binary.messages()
    # What IRC clients send that is not UTF-8 is read as latin-1, as on
    # --irc.
    binary.sendEvent(BytesMessage(b"PRIVMSG #lab :caf\xe9"))
    assert text.messages() == [":bin!bin@TestNet PRIVMSG #lab :café"]
    text.send("PRIVMSG #lab :café")
    assert binary.messages() == [b":texty!texty@TestNet PRIVMSG #lab :caf\xc3\xa9"]
    line, _ = site.line()
    line.dataReceived(b"/join lab\r\n")
    text.messages()
    binary.messages()
    line.dataReceived(b"caf\xe9\r\n")
    said = ":guest1!guest1@TestNet PRIVMSG #lab :caf\\xe9"
    assert text.messages() == [said]
    assert binary.messages() == [said.encode()]
    # The chat makes every line valid UTF-8 before IRC sees it; were one
    # not, a text message would still be.
    text.member.write(b"bad \xff\r\nand a half")
    text.member.write(b" line\r\n")
    assert text.messages() == ["bad \ufffd", "and a half line"]


def test_a_message_too_long_closes_with_1009_after_an_error_line() -> None:
    """A message longer than IRC's longest line (tags included) is never
    buffered: an ERROR line, then close code 1009; one IRC line too long
    without being too long a message gets IRC's 417."""
    site = Site()
    web = site.connect("text.ircv3.net")
    web.register("webby")
    web.send("PRIVMSG #default :" + "x" * 600)
    assert [str(m).split()[1] for m in web.messages()] == ["417"]
    web.send("x" * (MAX_MESSAGE + 1))
    events = web.events()
    assert [e.data for e in events if isinstance(e, TextMessage)] == [
        f"ERROR :Closing link: message too long (the limit is {MAX_MESSAGE} bytes)"
    ]
    closes = [e for e in events if isinstance(e, CloseConnection)]
    assert [close.code for close in closes] == [1009]
    assert web.transport.disconnecting
    assert site.chat.context.stats.refused["line_too_long"] == 1


def test_pings_are_answered_and_a_broken_frame_closes() -> None:
    """A WebSocket ping gets its pong; a frame that breaks the protocol
    closes with its code (here an unmasked frame: 1002)."""
    site = Site()
    web = site.connect("text.ircv3.net")
    web.register("webby")
    web.sendEvent(Ping(b"are you there"))
    assert [e.payload for e in web.events() if isinstance(e, Pong)] == [
        b"are you there"
    ]
    web.member.dataReceived(b"\x81\x02hi")
    closes = [e for e in web.events() if isinstance(e, CloseConnection)]
    assert [close.code for close in closes] == [1002]
    assert web.transport.disconnecting
    assert site.chat.context.stats.refused["protocol_error"] == 1


def test_the_server_closing_sends_a_close_frame() -> None:
    """QUIT: the ERROR line IRC closes with, then a normal close frame."""
    site = Site()
    web = site.connect("text.ircv3.net")
    web.register("webby")
    web.send("QUIT :bye")
    events = web.events()
    assert [e.data for e in events if isinstance(e, TextMessage)] == [
        "ERROR :Closing link (quit)"
    ]
    assert [e.code for e in events if isinstance(e, CloseConnection)] == [1000]
    assert web.transport.disconnecting


def test_messages_sent_with_the_handshake_are_read() -> None:
    """A client that sends its first messages in the same packet as its
    handshake loses none of them."""
    site = Site()
    peer = IPv4Address("TCP", "127.0.0.1", 40100)
    channel = site.site.buildProtocol(peer)
    transport = StringTransport(peerAddress=peer)
    channel.makeConnection(transport)
    transport.protocol = channel  # type: ignore[attr-defined]
    client = Connection(ConnectionType.CLIENT)
    first = b"".join(
        client.send(TextMessage(line)) for line in ("NICK early", "USER e 0 * :E")
    )
    channel.dataReceived(
        b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: text.ircv3.net\r\n"
        b"\r\n" + first
    )
    _, _, frames = transport.value().partition(b"\r\n\r\n")
    client.receive_data(frames)
    texts = [e.data for e in client.events() if isinstance(e, TextMessage)]
    assert texts[0].startswith(":TestNet 001 early :Welcome to the TestNet IRC")


def test_a_flood_of_frames_is_paced() -> None:
    """Frames cost the server a little each and the sender nothing: past the
    frame rate an IRC client on a WebSocket waits, as the page does, for as
    long as it ran ahead; then it is read again, and heard."""
    site = Site()
    web = site.connect("text.ircv3.net")
    web.register("webby")
    empty = web.client.send(TextMessage(""))
    web.member.dataReceived(empty * FRAME_BURST)
    assert web.transport.producerState == "producing"
    web.member.dataReceived(empty * FRAME_RATE)
    assert web.transport.producerState == "paused"
    site.clock.advance(0.99)
    assert web.transport.producerState == "paused"
    site.clock.advance(0.02)
    assert web.transport.producerState == "producing"
    web.send("PING :still")
    assert any("PONG" in str(message) for message in web.messages())
    # A client gone while it waits leaves no timer behind.
    web.member.dataReceived(empty * (FRAME_BURST + FRAME_RATE))
    assert web.transport.producerState == "paused"
    assert pacingTimers(site.clock) == 1
    web.member.connectionLost(Failure(ConnectionDone()))
    assert pacingTimers(site.clock) == 0


def pacingTimers(clock: Clock) -> int:
    """How many of C{clock}'s calls wait to read a paced client again."""
    return sum(
        getattr(getattr(call, "func", None), "__name__", "") == "_paid"
        for call in clock.getDelayedCalls()
    )

"""
The WebSocket side of the chat on fakes: frames and wires, the Origin rule,
and a WebSocket member on a StringTransport driven by a C{wsproto} client.
"""

from __future__ import annotations

import gc
import json
import weakref
from typing import Any

import pytest
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.protocol import Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport, StringTransportWithDisconnection
from twisted.protocols.policies import WrappingFactory
from wsproto.connection import Connection, ConnectionType
from wsproto.events import (
    BytesMessage,
    CloseConnection,
    Event,
    Ping,
    Pong,
    TextMessage,
)

from sockserve.chat.events import ACTION, NOTICE, ChatWire, Message, Topic
from sockserve.chat.protocol import LINE_WIRE
from sockserve.factories import LineServerFactory, buildFactory
from sockserve.limits import Limits
from sockserve.web import (
    KeepAlive,
    WebSocketChatProtocol,
    WebSocketMemberFactory,
    WebSocketSettings,
)
from sockserve.web.frames import textFrame
from sockserve.web.site import (
    ADDRESS_SHARE,
    HANDSHAKE_DEADLINE,
    HEADER_DEADLINE,
    HTTP_TIMEOUT,
    OriginPolicy,
    WebChannel,
    checkHostName,
    checkOrigin,
    webSite,
)
from sockserve.web.wires import (
    WEBSOCKET_JSON_WIRE,
    WEBSOCKET_LINE_WIRE,
    WebSocketJsonWire,
)
from tests.support import capturedLogs, connectOnStringTransport


def parsed(data: bytes) -> list[Event]:
    """
    What a WebSocket client makes of C{data} from the server.
    """
    client = Connection(ConnectionType.CLIENT)
    client.receive_data(data)
    return list(client.events())


def texts(data: bytes) -> list[str]:
    """
    The text messages in C{data} from the server.
    """
    return [event.data for event in parsed(data) if isinstance(event, TextMessage)]


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 70000])
def test_text_frames_of_every_length_parse(size: int) -> None:
    """Frames take the 7-, 16- and 64-bit lengths at their boundaries, and
    an independent parser reads them back."""
    payload = ("é" * size).encode("utf-8")[:size]
    if len(payload) != size or payload[-1:] == b"\xc3":
        payload = b"a" * size
    [event] = parsed(textFrame(payload))
    assert isinstance(event, TextMessage)
    assert event.data == payload.decode("utf-8")
    assert event.message_finished


# One call of every method of a wire (every kind of event).
WIRE_CASES: list[tuple[str, tuple[Any, ...]]] = [
    ("message", ("lab", "bob", [b"hi", b"there"])),
    ("message", ("lab", "bob", [ACTION + b"waves", NOTICE + b"note", b"hi"])),
    ("private", ("bob", [b"psst", b"again"])),
    ("private", ("bob", [ACTION + b"winks", NOTICE + b"note"])),
    ("privateSent", ("bob", [b"psst"])),
    ("privateSent", ("bob", [ACTION + b"winks", NOTICE + b"note"])),
    ("joined", ("lab", "bob")),
    ("left", ("lab", "bob", False)),
    ("kicked", ("lab", "bob", "alice", "spam")),
    ("kicked", ("lab", "bob", "alice", "", True)),
    ("renamed", ("lab", "bob", "robert")),
    ("quietly", ("lab", ["a", "b"], ["c"])),
    ("notice", ("two\nlines",)),
    ("error", ("no",)),
    ("banner", ("Welcome\nto the room",)),
    ("welcome", ("bob", "127.0.0.1:1", "lab", 3)),
    ("welcome", ("bob", "127.0.0.1:1", "lab", 3, Topic("hello all", "alice", 1.5))),
    ("entered", ("lab", 1)),
    ("entered", ("lab", 1, ("a", "b"), Topic("hello all", "alice", 1.5))),
    ("topic", ("lab", Topic("hello all", "alice", 1.5), True)),
    ("topic", ("lab", Topic("", "alice", 1.5), True)),
    ("topic", ("lab", Topic("hello all", "alice", 1.5), False)),
    ("topic", ("lab", None, False)),
    ("parted", ("lab",)),
    ("members", ("lab", ("a", "b"), 5)),
    ("rooms", ((("default", 3), ("lab", 1)), 4)),
    ("nameChanged", ("bob",)),
    ("history", ("lab", [("a", b"one"), ("b", b"two")], 1)),
]


def test_the_wire_cases_cover_every_event() -> None:
    """The cases below call every method a wire has."""
    methods = {
        name
        for name, value in vars(ChatWire).items()
        if callable(value) and not name.startswith("_")
    }
    assert {method for method, _ in WIRE_CASES} == methods


@pytest.mark.parametrize(("method", "arguments"), WIRE_CASES)
def test_line_wire_frames_what_a_tcp_client_sees(
    method: str, arguments: tuple[Any, ...]
) -> None:
    """Each line of the TCP wire becomes one frame, without its ending."""
    lines = getattr(LINE_WIRE, method)(*arguments).split(b"\r\n")[:-1]
    assert lines
    framed = getattr(WEBSOCKET_LINE_WIRE, method)(*arguments)
    assert texts(framed) == [line.decode() for line in lines], method


def test_line_wire_frames_read_as_a_tcp_client_reads_them() -> None:
    """What the line wire's frames say, for a few events."""
    assert texts(WEBSOCKET_LINE_WIRE.members("lab", ("a", "b"), 5)) == [
        "* 5 here: a, b and 3 more"
    ]
    assert texts(WEBSOCKET_LINE_WIRE.message("lab", "bob", [b"hi", b"there"])) == [
        "<bob> hi",
        "<bob> there",
    ]
    assert texts(WEBSOCKET_LINE_WIRE.private("bob", [b"psst"])) == ["*bob* psst"]
    assert texts(WEBSOCKET_LINE_WIRE.privateSent("bob", [b"psst"])) == ["-> *bob* psst"]
    assert texts(WEBSOCKET_LINE_WIRE.welcome("bob", "127.0.0.1:1", "lab", 1)) == [
        "* you are bob (127.0.0.1:1) in #lab; 1 other here"
    ]
    assert texts(WEBSOCKET_LINE_WIRE.entered("lab", 2)) == [
        "* you are now in #lab; 2 others here"
    ]
    assert texts(WEBSOCKET_LINE_WIRE.rooms((("default", 3), ("lab", 1)), 4)) == [
        "* 4 rooms: #default (3), #lab (1) and 2 more"
    ]


# A JSON wire whose clock says 1234.5678 (its events say 1234.568).
TIMED_WIRE = WebSocketJsonWire(lambda: 1234.5678)
AT = 1234.568


def test_json_wire_keeps_text_as_data() -> None:
    """The JSON wire puts names and text in fields, escaped as JSON needs,
    whatever they contain; events in a room name it."""
    [frame] = texts(TIMED_WIRE.message("lab", '"<b>', [b'</script>"\\']))
    assert json.loads(frame) == {
        "type": "message",
        "room": "lab",
        "from": '"<b>',
        "text": '</script>"\\',
        "at": AT,
    }
    assert [
        json.loads(text) for text in texts(TIMED_WIRE.message("lab", "a", [b"1", b"2"]))
    ] == [
        {"type": "message", "room": "lab", "from": "a", "text": "1", "at": AT},
        {"type": "message", "room": "lab", "from": "a", "text": "2", "at": AT},
    ]
    assert json.loads(texts(TIMED_WIRE.renamed("lab", "a", "b"))[0]) == {
        "type": "renamed",
        "room": "lab",
        "from": "a",
        "to": "b",
    }
    assert json.loads(texts(TIMED_WIRE.members("lab", ["a"], 3))[0]) == {
        "type": "members",
        "room": "lab",
        "names": ["a"],
        "total": 3,
    }


def decoded(frames: bytes) -> list[Any]:
    return [json.loads(text) for text in texts(frames)]


def test_marked_lines_on_the_page_and_the_line_wire() -> None:
    """An action and a notice (IRC's NOTICE) are told apart: "action": true
    and "notice": true on the page's wire, wherever a line said is (a
    message, a private one, one sent, history); * bob waves and -bob- text
    on the line wire."""

    def decoded(frames: bytes) -> list[Any]:
        # The times are another test's.
        return [
            {key: value for key, value in json.loads(text).items() if key != "at"}
            for text in texts(frames)
        ]

    wire = WEBSOCKET_JSON_WIRE
    lines = [ACTION + b"waves", NOTICE + b"note", b"hi"]
    assert decoded(wire.message("lab", "bob", lines)) == [
        {
            "type": "message",
            "room": "lab",
            "from": "bob",
            "text": "waves",
            "action": True,
        },
        {
            "type": "message",
            "room": "lab",
            "from": "bob",
            "text": "note",
            "notice": True,
        },
        {"type": "message", "room": "lab", "from": "bob", "text": "hi"},
    ]
    assert decoded(wire.private("bob", [NOTICE + b"psst"])) == [
        {"type": "private", "from": "bob", "text": "psst", "notice": True}
    ]
    assert decoded(wire.privateSent("bob", [NOTICE + b"psst"])) == [
        {"type": "sent", "to": "bob", "text": "psst", "notice": True}
    ]
    assert decoded(wire.history("lab", [("bob", NOTICE + b"note")], 0)) == [
        {
            "type": "history",
            "room": "lab",
            "lines": [{"from": "bob", "text": "note", "notice": True}],
            "omitted": 0,
        }
    ]
    assert texts(WEBSOCKET_LINE_WIRE.message("lab", "bob", lines)) == [
        "* bob waves",
        "-bob- note",
        "<bob> hi",
    ]
    assert texts(WEBSOCKET_LINE_WIRE.private("bob", [NOTICE + b"psst"])) == [
        "*bob* -bob- psst"
    ]
    assert texts(WEBSOCKET_LINE_WIRE.privateSent("bob", [NOTICE + b"psst"])) == [
        "-> *bob* (notice) psst"
    ]


def test_json_wire_tells_of_rooms_and_private_messages() -> None:
    """The JSON wire's events about rooms and private messages: each is one
    object, with names and text as data; the page's own address is not
    sent back to it; lines said, joins and departures say when (Unix
    seconds, by the server's clock)."""
    wire = TIMED_WIRE
    assert decoded(wire.welcome("bob", "127.0.0.1:1", "lab", 2)) == [
        {"type": "welcome", "name": "bob", "room": "lab", "others": 2, "at": AT}
    ]
    assert decoded(wire.entered("lab", 1)) == [
        {"type": "entered", "room": "lab", "others": 1}
    ]
    assert decoded(wire.parted("lab")) == [{"type": "parted", "room": "lab"}]
    assert decoded(wire.private('"a"', [b"</script>", b"2"])) == [
        {"type": "private", "from": '"a"', "text": "</script>", "at": AT},
        {"type": "private", "from": '"a"', "text": "2", "at": AT},
    ]
    assert decoded(wire.privateSent("b", [b"x"])) == [
        {"type": "sent", "to": "b", "text": "x", "at": AT}
    ]
    assert decoded(wire.rooms((("default", 3), ("lab", 1)), 4)) == [
        {
            "type": "rooms",
            "rooms": [
                {"name": "default", "members": 3},
                {"name": "lab", "members": 1},
            ],
            "total": 4,
        }
    ]
    assert decoded(wire.history("lab", [("a", b"one")], 2)) == [
        {
            "type": "history",
            "room": "lab",
            "lines": [{"from": "a", "text": "one"}],
            "omitted": 2,
            "at": AT,
        }
    ]
    assert decoded(wire.quietly("lab", ["a"], ["b", "c"])) == [
        {"type": "quietly", "room": "lab", "joined": ["a"], "left": ["b", "c"]}
    ]
    assert decoded(wire.joined("lab", "a")) == [
        {"type": "joined", "room": "lab", "name": "a", "at": AT}
    ]
    assert decoded(wire.left("lab", "a", False)) == [
        {"type": "left", "room": "lab", "name": "a", "at": AT}
    ]
    assert decoded(wire.left("lab", "a", True)) == [
        {"type": "left", "room": "lab", "name": "a", "quit": True, "at": AT}
    ]


@pytest.mark.parametrize(
    ("origin", "host", "allowed"),
    [
        ("http://127.0.0.1:8080", "127.0.0.1:8080", True),
        ("https://chat.example.org", "chat.example.org", True),
        # Behind a proxy that ends TLS: https origin, plain http request.
        ("https://chat.example.org", "chat.example.org:443", True),
        ("HTTP://Chat.Example.Org:80", "chat.example.org", True),
        ("http://[::1]:8080", "[::1]:8080", True),
        ("http://127.0.0.1:8081", "127.0.0.1:8080", False),
        ("http://evil.example", "chat.example.org", False),
        ("http://chat.example.org.evil.example", "chat.example.org", False),
        ("http://chat.example.org:8080", "chat.example.org", False),
        ("null", "chat.example.org", False),
        ("http://127.0.0.1:8080", None, False),
        ("http://127.0.0.1:99999", "127.0.0.1:99999", False),
        ("http://127.0.0.1:8080/path", "127.0.0.1:8080", False),
        ("file://", "127.0.0.1:8080", False),
    ],
)
def test_page_origin(origin: str, host: str | None, allowed: bool) -> None:
    """A page may open the WebSocket from its own origin (host and port as
    the browser asked for them), nothing else."""
    assert OriginPolicy().allows(origin, host) is allowed


def test_allowed_origins() -> None:
    """--web-origin lets pages of other origins in, spelt any way."""
    policy = OriginPolicy(["https://Example.org:443/", "http://127.0.0.1:3000"])
    assert policy.allows("https://example.org", "chat.internal:8080")
    assert policy.allows("http://127.0.0.1:3000", "127.0.0.1:8080")
    assert not policy.allows("http://example.org", "chat.internal:8080")
    assert not policy.allows("https://example.org:8443", "chat.internal:8080")
    for bad in ("example.org", "ws://example.org", "https://", "https://a/b", "*"):
        with pytest.raises(ValueError, match="is not an origin"):
            checkOrigin(bad)


class HttpChannel:
    """The producer an HTTP channel registers before the upgrade."""

    def pauseProducing(self) -> None:
        raise AssertionError("the member took the connection over")

    resumeProducing = stopProducing = pauseProducing


def memberFactory(
    factory: LineServerFactory, pings: KeepAlive | None = None
) -> WebSocketMemberFactory:
    """The factory of the WebSocket members of the chat C{factory} serves,
    as its web site makes it."""
    service, banner, policy = factory.service, factory.banner, factory.policy
    assert service is not None
    assert banner is not None
    assert policy is not None
    context = factory.context
    return WebSocketMemberFactory(
        WebSocketSettings(
            context,
            service,
            banner,
            policy,
            maxMessage=context.limits.maxLine,
            pings=pings,
        )
    )


class WebClient:
    """A WebSocket member on a StringTransport, and its client's view."""

    def __init__(
        self,
        factory: LineServerFactory,
        port: int,
        wire: ChatWire = WEBSOCKET_LINE_WIRE,
        pings: KeepAlive | None = None,
        multiRoom: bool = False,
    ) -> None:
        self.client = Connection(ConnectionType.CLIENT)
        self.member = memberFactory(factory, pings).buildMember(wire, multiRoom)
        peer = IPv4Address("TCP", "127.0.0.1", port)
        self.transport = StringTransport(peerAddress=peer)
        self.transport.registerProducer(HttpChannel(), True)
        self.member.makeConnection(self.transport)

    def send(self, event: Event) -> None:
        self.member.dataReceived(self.client.send(event))

    def say(self, text: str) -> None:
        self.send(TextMessage(text))

    def events(self) -> list[Event]:
        data = self.transport.value()
        self.transport.clear()
        self.client.receive_data(data)
        return list(self.client.events())

    def lines(self) -> list[str]:
        return [e.data for e in self.events() if isinstance(e, TextMessage)]


def chat(limits: Limits | None = None, clock: Clock | None = None) -> LineServerFactory:
    return buildFactory("chat", limits or Limits(), clock or Clock(), "Hi")


def test_member_chats_with_tcp_members() -> None:
    """A WebSocket member's messages reach TCP members as lines, and theirs
    reach it as frames; a fragmented message is one line."""
    factory = chat()
    tcp, tcpTransport, _ = connectOnStringTransport("chat", factory=factory)
    web = WebClient(factory, 50000)
    assert web.lines() == [
        "Hi",
        "* you are guest2 (127.0.0.1:50000) in #default; 1 other here",
    ]
    assert tcpTransport.value().endswith(b"* guest2 joined\r\n")
    tcpTransport.clear()
    web.say("hello")
    web.send(TextMessage("frag", message_finished=False))
    web.send(TextMessage("mented", message_finished=True))
    assert tcpTransport.value() == b"<guest2> hello\r\n<guest2> fragmented\r\n"
    tcp.dataReceived(b"hi web\r\n")
    assert web.lines() == ["<guest1> hi web"]
    assert factory.context.stats.linesIn == 3


def test_every_member_gets_the_same_frame_bytes() -> None:
    """A broadcast formats its frame once for all WebSocket members."""
    factory = chat(Limits(maxClients=30))
    members = [WebClient(factory, 50000 + index) for index in range(20)]
    for member in members:
        member.transport.clear()
    sender = WebClient(factory, 49999)
    for member in members:
        member.transport.clear()
    sender.say("to everyone")
    sent = {member.transport.value() for member in members}
    assert sent == {textFrame(b"<guest21> to everyone")}
    event = Message("default", "x", [b"y"])
    assert event.encodedFor(WEBSOCKET_LINE_WIRE) is event.encodedFor(
        WEBSOCKET_LINE_WIRE
    )


def test_message_too_big_closes_with_1009_before_it_is_buffered() -> None:
    """A message is measured as it arrives: past --max-line bytes, even
    before its end, the member is told and closed with 1009."""
    factory = chat(Limits(maxLine=100))
    _tcp, tcpTransport, _ = connectOnStringTransport("chat", factory=factory)
    web = WebClient(factory, 50000)
    web.events()
    tcpTransport.clear()
    web.send(TextMessage("a" * 100))
    with capturedLogs() as logs:
        web.send(TextMessage("b" * 60, message_finished=False))
        assert not web.transport.disconnecting
        web.send(TextMessage("b" * 60, message_finished=False))
    events = web.events()
    assert [type(e) for e in events] == [TextMessage, CloseConnection]
    assert events[0].data == "ERROR message too long (the limit is 100 bytes)"  # type: ignore[attr-defined]
    assert events[1].code == 1009  # type: ignore[attr-defined]
    assert web.transport.disconnecting
    assert "longer than 100 bytes" in " ".join(logs.texts())
    assert tcpTransport.value() == (
        b"<guest2> " + b"a" * 100 + b"\r\n* guest2 left\r\n"
    )
    assert factory.context.stats.refused["line_too_long"] == 1


def test_binary_message_closes_with_1003() -> None:
    """The room speaks text: a binary message closes its sender with 1003."""
    factory = chat()
    web = WebClient(factory, 50000)
    web.events()
    with capturedLogs():
        web.send(BytesMessage(b"\x00\xff"))
    events = web.events()
    assert isinstance(events[-1], CloseConnection)
    assert events[-1].code == 1003
    assert web.transport.disconnecting


def test_invalid_utf8_closes_with_1007() -> None:
    """A text message that is not UTF-8 breaks the protocol: closed with
    wsproto's code, 1007."""
    factory = chat()
    web = WebClient(factory, 50000)
    web.events()
    frame = bytearray(web.client.send(TextMessage("ab")))
    # Unmask, corrupt, and mask again: the mask key is bytes 2..5.
    key = frame[2:6]
    frame[6] = 0xFF ^ key[0]
    with capturedLogs() as logs:
        web.member.dataReceived(bytes(frame))
    events = web.events()
    assert isinstance(events[-1], CloseConnection)
    assert events[-1].code == 1007
    assert "broke the WebSocket protocol" in " ".join(logs.texts())
    assert web.transport.disconnecting


def test_client_close_is_answered_and_the_member_leaves() -> None:
    """A client's close frame is answered with its code, and it leaves."""
    factory = chat()
    _tcp, tcpTransport, _ = connectOnStringTransport("chat", factory=factory)
    web = WebClient(factory, 50000)
    web.events()
    tcpTransport.clear()
    web.send(TextMessage("last words"))
    web.send(CloseConnection(1000, "bye"))
    events = web.events()
    assert [(type(e), getattr(e, "code", None)) for e in events] == [
        (CloseConnection, 1000)
    ]
    assert web.transport.disconnecting
    web.member.connectionLost()
    assert tcpTransport.value() == b"<guest2> last words\r\n* guest2 left\r\n"


def test_pings_are_answered() -> None:
    """A client's ping gets a pong with its payload."""
    web = WebClient(chat(), 50000)
    web.events()
    web.send(Ping(b"are you there"))
    assert [(type(e), getattr(e, "payload", None)) for e in web.events()] == [
        (Pong, b"are you there")
    ]


def test_quiet_members_are_pinged_and_dropped_without_a_pong() -> None:
    """After the ping interval of silence a member is pinged; anything it
    sends (a pong) keeps it; silence after a ping drops it."""
    clock = Clock()
    factory = chat(clock=clock)
    pings = KeepAlive(clock, 30)
    web = WebClient(factory, 50000, pings=pings)
    web.events()
    clock.advance(29)
    assert web.events() == []
    clock.advance(1)
    [ping] = web.events()
    assert isinstance(ping, Ping)
    web.send(Pong(ping.payload))
    clock.advance(30)
    assert [type(e) for e in web.events()] == [Ping]
    with capturedLogs() as logs:
        clock.advance(30)
    assert web.transport.disconnecting or web.member.closing
    assert "did not answer a ping" in " ".join(logs.texts())
    web.member.connectionLost()
    assert len(pings.deadlines) == 0
    assert factory.context.stats.refused["no_pong"] == 1


def test_shutdown_and_refusals_carry_close_codes() -> None:
    """The shutdown goodbye closes with 1001; a full room refuses with 1013
    (try again later) after saying so."""
    factory = chat(Limits(maxClients=1))
    first = WebClient(factory, 50000)
    first.events()
    second = WebClient(factory, 50001)
    events = second.events()
    assert events[0].data == "ERROR the server is full (1 client); try again later"  # type: ignore[attr-defined]
    assert isinstance(events[1], CloseConnection)
    assert events[1].code == 1013
    first.member.beginShutdown()
    events = first.events()
    assert events[0].data == "* the server is shutting down; goodbye"  # type: ignore[attr-defined]
    assert isinstance(events[1], CloseConnection)
    assert events[1].code == 1001


def closing(client: WebClient) -> tuple[list[str], int | None, str | None]:
    """
    What C{client} was told before it was closed, and the close code and
    reason.
    """
    events = client.events()
    close = events[-1]
    assert isinstance(close, CloseConnection)
    frames = [e.data for e in events[:-1] if isinstance(e, TextMessage)]
    return frames, close.code, close.reason


def test_refusals_say_why_in_the_close_reason() -> None:
    """A refusal closes with 1013 (try again later) and says why in its close
    reason: the room is full, the server is busy, the address has too many
    connections; a refusal because the server is stopping closes with
    1001 (going away), as its goodbye does."""
    with capturedLogs():
        factory = chat(Limits(maxClients=1))
        WebClient(factory, 50000).events()
        assert closing(WebClient(factory, 50001)) == (
            ["ERROR the server is full (1 client); try again later"],
            1013,
            "full",
        )
        factory = chat(Limits(maxConnections=1))
        WebClient(factory, 50000).events()
        frames, code, reason = closing(WebClient(factory, 50001))
        assert frames[0].startswith("ERROR the server is busy")
        assert (code, reason) == (1013, "busy")
        factory = chat(Limits(maxPerIP=1))
        WebClient(factory, 50000).events()
        frames, code, reason = closing(WebClient(factory, 50001))
        assert frames[0].startswith("ERROR too many connections from 127.0.0.1")
        assert (code, reason) == (1013, "per_ip")
        factory = chat()
        assert factory.service is not None
        factory.service.close()
        frames, code, reason = closing(WebClient(factory, 50000))
        assert frames == ["ERROR the server is shutting down; try again later"]
        assert (code, reason) == (1001, "server shutting down")


def test_quit_closes_with_1000() -> None:
    """/quit says goodbye and closes with 1000 (normal closure): the client
    meant to leave."""
    web = WebClient(chat(), 50000)
    web.events()
    web.say("/quit")
    assert closing(web) == (["* bye"], 1000, "")


def test_idle_members_are_closed_with_1008() -> None:
    """--idle-timeout applies: a member that sends no message is told, and
    closed with 1008."""
    clock = Clock()
    web = WebClient(chat(Limits(idleTimeout=60), clock), 50000)
    web.events()
    with capturedLogs():
        clock.advance(61)
    events = web.events()
    assert events[0].data.startswith("ERROR idle for 60 seconds")  # type: ignore[attr-defined]
    assert isinstance(events[1], CloseConnection)
    assert (events[1].code, events[1].reason) == (1008, "idle too long")


def test_json_member_gets_json() -> None:
    """A member of the JSON subprotocol gets every event as JSON."""
    factory = chat()
    page = WebClient(factory, 50000, wire=WEBSOCKET_JSON_WIRE)
    assert [json.loads(text)["type"] for text in page.lines()] == [
        "banner",
        "welcome",
    ]
    page.say("/who")
    assert [json.loads(text) for text in page.lines()] == [
        {"type": "members", "room": "default", "names": ["guest1"], "total": 1}
    ]


def test_json_members_are_told_the_time_and_the_longest_line() -> None:
    """The JSON members of a server are told its --max-line in their welcome,
    and when each line was said by its clock."""
    clock = Clock()
    clock.advance(1000.25)
    factory = chat(Limits(maxLine=300), clock)
    page = WebClient(factory, 50000, wire=WEBSOCKET_JSON_WIRE)
    banner, welcome = [json.loads(text) for text in page.lines()]
    assert banner["type"] == "banner"
    assert welcome == {
        "type": "welcome",
        "name": "guest1",
        "room": "default",
        "others": 0,
        "maxLine": 300,
        "at": 1000.25,
    }
    other = WebClient(factory, 50001, wire=WEBSOCKET_JSON_WIRE)
    other.lines()
    clock.advance(2)
    other.say("hello")
    assert [json.loads(text) for text in page.lines()] == [
        {"type": "joined", "room": "default", "name": "guest2", "at": 1000.25},
        {
            "type": "message",
            "room": "default",
            "from": "guest2",
            "text": "hello",
            "at": 1002.25,
        },
    ]
    # One wire for all of them: a line is put on it once.
    members = memberFactory(factory)
    first = members.buildMember(WEBSOCKET_JSON_WIRE, True)
    assert members.buildMember(WEBSOCKET_JSON_WIRE, False).wire is first.wire


def test_pings_while_the_client_does_not_read_cost_one_pong() -> None:
    """While the client reads nothing, its pings are not answered one by
    one (a flood of them would fill memory with pongs): the last one is
    answered once it reads again."""
    web = WebClient(chat(), 50000)
    web.events()
    web.member.pauseProducing()
    for index in range(1000):
        web.send(Ping(b"%d" % index))
    assert web.transport.value() == b""
    web.member.resumeProducing()
    assert [(type(e), getattr(e, "payload", None)) for e in web.events()] == [
        (Pong, b"999")
    ]


def test_empty_fragments_count_against_the_limit() -> None:
    """A message of empty fragments is bounded too: each counts a byte."""
    web = WebClient(chat(Limits(maxLine=100)), 50000)
    web.events()
    with capturedLogs():
        for _ in range(101):
            web.send(TextMessage("", message_finished=False))
            if web.transport.disconnecting:
                break
    events = web.events()
    assert isinstance(events[-1], CloseConnection)
    assert events[-1].code == 1009
    assert web.member.frames._messageSize <= 101


def test_keepalive_waits_while_the_server_does_not_read() -> None:
    """A member whose input the server paused (it floods, or the room is
    busy with its request) is not dropped for a pong it cannot send; the
    keepalive starts afresh when reading resumes."""
    clock = Clock()
    web = WebClient(chat(clock=clock), 50000, pings=KeepAlive(clock, 30))
    web.events()
    web.member.pauseInput()
    clock.advance(200)
    assert not web.transport.disconnecting
    assert web.events() == []
    web.member.resumeInput()
    clock.advance(30)
    assert [type(e) for e in web.events()] == [Ping]


def test_keepalive_spares_a_client_still_reading_its_backlog() -> None:
    """A client that cannot keep up with what it is sent (its transport is
    full) is left to --max-pending, not dropped by the keepalive."""
    clock = Clock()
    web = WebClient(chat(clock=clock), 50000, pings=KeepAlive(clock, 30))
    web.events()
    clock.advance(30)
    web.member.pauseProducing()
    clock.advance(120)
    assert not web.transport.disconnecting


@pytest.mark.parametrize(
    "origin",
    [
        "http://x@127.0.0.1:8080",
        "http://user:pw@127.0.0.1:8080",
        "http://127.0.0.1:8080?x",
        "http://127.0.0.1:8080#x",
        "http://127.0.0.1:08080",
        "http://127.0.0.1:+8080",
    ],
)
def test_odd_origins_are_refused(origin: str) -> None:
    """Browsers never send userinfo, a query, a fragment or an oddly written
    port in an origin: such an origin matches nothing."""
    assert not OriginPolicy().allows(origin, "127.0.0.1:8080")


@pytest.mark.parametrize(
    ("host", "local", "trusted"),
    [
        ("127.0.0.1:8080", "127.0.0.1", True),
        ("localhost:8080", "127.0.0.1", True),
        ("[::1]:8080", "::1", True),
        ("evil.example:8080", "127.0.0.1", False),
        ("evil.example:8080", "::1", False),
        ("chat.example.org", "127.0.0.1", True),
        ("chat.example.org", "192.0.2.7", True),
        (None, "127.0.0.1", False),
    ],
)
def test_loopback_listeners_refuse_rebound_names(
    host: str | None, local: str, trusted: bool
) -> None:
    """On a loopback address only an IP address, localhost or an allowed
    origin's host is taken (a name rebound to 127.0.0.1 is a page of another
    site); elsewhere any host is."""
    policy = OriginPolicy(["https://chat.example.org"])
    assert policy.trustsHost(host, local) is trusted


class PendingSite:
    """The chat's site on a Clock, and HTTP connections to it on
    StringTransports, from any address."""

    def __init__(self, total: int = 100, perAddress: int | None = None) -> None:
        self.clock = Clock()
        self.site = webSite(
            lambda wire, multiRoom, login: Protocol(),
            OriginPolicy(),
            perAddress=perAddress,
            total=total,
        )
        self.site.reactor = self.clock

    def open(
        self, host: str, request: bytes = b"", balancer: str | None = None
    ) -> tuple[StringTransport, Any]:
        """
        Connect from C{host} (through a PROXY protocol C{balancer}: the
        site is asked for a channel with the balancer's address, which is
        connected once the client's is known) and send C{request}.
        """
        kind = IPv6Address if ":" in host else IPv4Address
        peer = kind("TCP", host, 40000)
        channel = self.site.buildProtocol(
            peer if balancer is None else IPv4Address("TCP", balancer, 1)
        )
        transport = StringTransport(
            peerAddress=peer, hostAddress=IPv4Address("TCP", "127.0.0.1", 8080)
        )
        channel.makeConnection(transport)
        if request:
            channel.dataReceived(request)
        return transport, channel


def closed(transport: StringTransport) -> bool:
    return bool(transport.disconnecting or transport.disconnected)


def test_a_request_must_come_within_the_header_deadline() -> None:
    """A connection whose request's headers have not all come within
    HEADER_DEADLINE seconds of its opening (or of the last response on it)
    is closed; one whose handshake comes in time becomes a WebSocket, and
    no deadline of the HTTP connection applies to it any more."""
    pending = PendingSite()
    silent, _ = pending.open("192.0.2.1")
    trickling, channel = pending.open("192.0.2.2", b"GET / HTTP/1.1\r\nHost: x\r\n")
    page, pageChannel = pending.open("192.0.2.3")
    pending.clock.advance(HEADER_DEADLINE / 2)
    channel.dataReceived(b"Accept: */*\r\n")
    pageChannel.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status(page) == b"HTTP/1.1 200 OK"
    late, lateChannel = pending.open("192.0.2.4")
    pending.clock.advance(HEADER_DEADLINE / 2 - 0.01)
    assert not any(map(closed, (silent, trickling, page, late)))
    pending.clock.advance(0.01)
    assert closed(silent)
    assert closed(trickling)
    assert not closed(page)
    pending.clock.advance(HEADER_DEADLINE / 2 - 0.02)
    lateChannel.dataReceived(upgrade())
    assert status(late) == b"HTTP/1.1 101 Switching Protocols"
    pending.clock.advance(0.02)
    # An idle connection after a response has as long for its next request.
    assert closed(page)
    pending.clock.advance(HANDSHAKE_DEADLINE + HTTP_TIMEOUT)
    assert not closed(late)
    for channel in (lateChannel, pageChannel):
        channel.connectionLost(None)
    assert len(pending.site.pending) == 0


def test_an_address_holds_a_share_of_the_pending_pool() -> None:
    """Without --max-per-ip, one address (an IPv6 address by its /64) holds
    at most a share of the pending connections (a quarter of the pool, at
    most ADDRESS_SHARE): beyond it, its own oldest are closed, others'
    are not."""
    pending = PendingSite(total=100)
    assert pending.site.pending.share == 25
    other, _ = pending.open("192.0.2.99")
    opened = [pending.open("192.0.2.1")[0] for _ in range(30)]
    assert [closed(transport) for transport in opened] == [True] * 5 + [False] * 25
    rotating = [pending.open(f"2001:db8::{index + 1:x}")[0] for index in range(30)]
    assert [closed(transport) for transport in rotating] == [True] * 5 + [False] * 25
    # IPv4 clients of a dual-stack listener are not one IPv6 network.
    mapped = [pending.open(f"::ffff:192.0.2.{index}")[0] for index in range(40)]
    assert not any(map(closed, mapped))
    assert not closed(other)
    big = webSite(
        lambda wire, multiRoom, login: Protocol(), OriginPolicy(), total=100_000
    )
    assert big.pending.share == ADDRESS_SHARE


def test_a_full_pool_drops_the_oldest_of_the_busiest_address() -> None:
    """When the pending pool is full, a newcomer is not refused: the oldest
    connection of the address holding the most is closed instead."""
    pending = PendingSite(total=16)
    opened = {
        host: [pending.open(host)[0] for _ in range(4)]
        for host in ("192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4")
    }
    newcomer, _ = pending.open("198.51.100.1")
    assert not closed(newcomer)
    assert [closed(t) for t in opened["192.0.2.1"]] == [True, False, False, False]
    second, _ = pending.open("198.51.100.2")
    assert not closed(second)
    assert closed(opened["192.0.2.2"][0])
    assert len(pending.site.pending) == 16


def test_max_per_ip_counts_the_client_not_the_balancer() -> None:
    """With --max-per-ip, a connection beyond it from one address is closed
    at once; the address is the client's own, also behind a balancer that
    sends the PROXY protocol (whose address the site sees first)."""
    pending = PendingSite(perAddress=2)
    first = [pending.open("192.0.2.1", balancer="10.0.0.1")[0] for _ in range(3)]
    assert [closed(transport) for transport in first] == [False, False, True]
    others = [pending.open(f"192.0.2.{n}", balancer="10.0.0.1")[0] for n in (2, 3)]
    assert not any(map(closed, others))


def test_http_connections_are_counted_by_network_and_refusals_logged() -> None:
    """The bound per address counts an IPv6 browser by its /64, and none
    on a UNIX socket; a refused connection is logged at the bounded rate of
    the server's log limiter, never with a traceback."""
    from twisted.internet.address import IPv6Address, UNIXAddress

    from sockserve._loglimit import LogLimiter
    from sockserve.web.site import webSite

    clock = Clock()
    site = webSite(
        lambda wire, multiRoom, login: Protocol(),
        OriginPolicy(),
        perAddress=2,
        total=100,
        logLimit=LogLimiter(clock, perWindow=2),
    )
    site.reactor = clock

    def connect(peer: Any) -> bool:
        channel = site.buildProtocol(peer)
        transport = StringTransportWithDisconnection(
            peerAddress=peer, hostAddress=IPv4Address("TCP", "127.0.0.1", 8080)
        )
        transport.protocol = channel
        channel.makeConnection(transport)
        return bool(transport.connected)

    assert connect(IPv6Address("TCP", "2001:db8::1", 1))
    assert connect(IPv6Address("TCP", "2001:db8::ffff:2", 1))
    assert connect(IPv6Address("TCP", "2001:db8:0:1::1", 1))
    assert site.pending.count("2001:db8::/64") == 2
    assert site.pending.count("2001:db8:0:1::/64") == 1
    with capturedLogs() as logged:
        for _ in range(5):
            assert not connect(IPv6Address("TCP", "2001:db8::3", 7))
        clock.advance(10)
    refusal = (
        "Refused an HTTP connection from [2001:db8::3]:7: 2 from 2001:db8::/64 "
        "are open (--max-per-ip)"
    )
    assert logged.texts() == [refusal] * 2 + [
        f"3 more refusals not logged in 10 s; the first of them: {refusal}"
    ]
    for _ in range(3):
        assert connect(UNIXAddress(None))
    for call in clock.getDelayedCalls():
        call.cancel()


def test_a_flood_of_frames_is_paced() -> None:
    """Frames cost the server a little each and the sender nothing: past the
    frame rate, the sender's input waits for as long as it ran ahead."""
    from sockserve.web._pacing import FRAME_BURST, FRAME_RATE

    clock = Clock()
    web = WebClient(chat(clock=clock), 50000)
    web.events()
    empty = web.client.send(TextMessage(""))
    web.member.dataReceived(empty * FRAME_BURST)
    assert web.transport.producerState == "producing"
    web.member.dataReceived(empty * FRAME_RATE)
    assert web.transport.producerState == "paused"
    clock.advance(0.99)
    assert web.transport.producerState == "paused"
    clock.advance(0.02)
    assert web.transport.producerState == "producing"
    web.member.dataReceived(web.client.send(TextMessage("still heard")))
    assert web.transport.producerState == "producing"


class Browser:
    """An HTTP client of the chat's site, on a StringTransport."""

    def __init__(
        self,
        origins: tuple[str, ...] = (),
        limits: Limits | None = None,
        hosts: tuple[str, ...] = (),
    ):
        from sockserve.web import chatWebSite

        self.clock = Clock()
        self.chat = chat(limits or Limits(maxClients=30), self.clock)
        self.site = chatWebSite(self.chat, self.clock, OriginPolicy(origins, hosts), 0)
        self.site.reactor = self.clock

    def members(self) -> int:
        """How many members the chat has (they are all in the default
        room)."""
        service = self.chat.service
        assert service is not None
        room = service.room("default")
        population: int = service.people.population
        assert population == (0 if room is None else len(room))
        return population

    def send(
        self, request: bytes, peer: int = 40000, local: str = "127.0.0.1"
    ) -> tuple[StringTransport, Any]:
        channel = self.site.buildProtocol(IPv4Address("TCP", "127.0.0.1", peer))
        transport = StringTransport(
            peerAddress=IPv4Address("TCP", "127.0.0.1", peer),
            hostAddress=IPv4Address("TCP", local, 8080),
        )
        channel.makeConnection(transport)
        channel.dataReceived(request)
        return transport, channel


def upgrade(**headers: str) -> bytes:
    fields = {
        "Host": "127.0.0.1:8080",
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version": "13",
    }
    fields.update({name.replace("_", "-"): value for name, value in headers.items()})
    text = "".join(f"{name}: {value}\r\n" for name, value in fields.items())
    return f"GET /ws HTTP/1.1\r\n{text}\r\n".encode()


def status(transport: StringTransport) -> bytes:
    line: bytes = transport.value().split(b"\r\n", 1)[0]
    return line


def test_site_serves_the_page_and_nothing_else() -> None:
    """The page and its assets, with their headers; anything else is 404."""
    browser = Browser()
    page, _ = browser.send(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert status(page) == b"HTTP/1.1 200 OK"
    assert b"Content-Security-Policy: default-src 'none'" in page.value()
    assert b"X-Content-Type-Options: nosniff" in page.value()
    script, _ = browser.send(b"GET /chat.js HTTP/1.1\r\nHost: x\r\n\r\n")
    assert b"Content-Type: text/javascript" in script.value()
    for path in (b"/nope", b"/chat.js/more", b"/ws/more"):
        missing, _ = browser.send(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status(missing) == b"HTTP/1.1 404 Not Found", path


@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        (b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", b"426"),
        (upgrade().replace(b"GET ", b"HEAD ", 1), b"426"),
        (upgrade(Sec_WebSocket_Version="8"), b"426"),
        (upgrade(Sec_WebSocket_Key="short"), b"400"),
        (upgrade().replace(b"HTTP/1.1\r\n", b"HTTP/1.0\r\n", 1), b"400"),
        (upgrade(Connection="keep-alive"), b"400"),
        (upgrade(Origin="http://evil.example"), b"403"),
        (upgrade(Host="evil.example:8080", Origin="http://evil.example:8080"), b"403"),
    ],
)
def test_site_refuses_bad_handshakes(request_: bytes, expected: bytes) -> None:
    """Handshakes the site must not upgrade get an HTTP error, and no
    member joins."""
    browser = Browser()
    answer, _ = browser.send(request_)
    assert status(answer).split(b" ")[1] == expected, answer.value()
    assert browser.members() == 0


@pytest.mark.parametrize(
    ("offered", "chosen", "multiRoom"),
    [
        ("other, sockserve.v1.json", "sockserve.v1.json", False),
        ("sockserve.v2.json", "sockserve.v2.json", True),
        ("sockserve.v1.json, sockserve.v2.json", "sockserve.v2.json", True),
        (None, None, False),
    ],
)
def test_site_upgrades_and_the_member_chats(
    offered: str | None, chosen: str | None, multiRoom: bool
) -> None:
    """A good handshake is upgraded (a JSON subprotocol when asked for:
    sockserve.v2.json, whose member may be in several rooms at once, rather
    than sockserve.v1.json, one room at a time, as a line client); frames
    sent with the handshake are the member's; the member is in the room,
    counted by the registry, and no longer by the site."""
    browser = Browser()
    client = Connection(ConnectionType.CLIENT)
    first = client.send(TextMessage("hello")) + client.send(TextMessage("/join lab"))
    headers = {"Origin": "http://127.0.0.1:8080"}
    if offered is not None:
        headers["Sec_WebSocket_Protocol"] = offered
    transport, channel = browser.send(upgrade(**headers) + first)
    head, _, frames = transport.value().partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 ")
    chosenHeaders = [
        line.partition(b": ")[2]
        for line in head.split(b"\r\n")
        if line.startswith(b"Sec-WebSocket-Protocol:")
    ]
    assert chosenHeaders == ([] if chosen is None else [chosen.encode()])
    service = browser.chat.service
    assert service is not None
    assert service.people.population == 1
    assert len(browser.site.pending) == 0
    assert browser.chat.context.stats.linesIn == 2
    listener = Connection(ConnectionType.CLIENT)
    listener.receive_data(frames)
    received = [e.data for e in listener.events() if isinstance(e, TextMessage)]
    if chosen is None:
        assert received[1:] == [
            "* you are guest1 (127.0.0.1:40000) in #default; nobody else here",
            "* you are now in #lab; nobody else here",
        ]
    else:
        assert [json.loads(text) for text in received[1:]] == [
            {
                "type": "welcome",
                "name": "guest1",
                "room": "default",
                "others": 0,
                "maxLine": 65536,
                "at": 0.0,
            },
            {"type": "entered", "room": "lab", "others": 0},
        ]
    default = service.room("default")
    assert (default is not None and len(default) == 1) is multiRoom
    channel.connectionLost(None)
    assert service.people.population == 0
    assert service.roomCount() == 0


@pytest.mark.parametrize("layered", [False, True])
def test_an_upgraded_connection_keeps_no_http_objects(layered: bool) -> None:
    """Once the handshake is done, the transport delivers to the member
    itself: the HTTP channel and its request, which cost an idle WebSocket
    member several KiB, are freed (without waiting for the garbage
    collector), and the member still chats. So too under a layer that
    wraps the protocol (TLS, the PROXY protocol)."""
    browser = Browser()
    requests: list[weakref.ref[Any]] = []
    makeRequest = browser.site.requestFactory

    def recordingRequest(*args: Any) -> Any:
        request = makeRequest(*args)
        requests.append(weakref.ref(request))
        return request

    browser.site.requestFactory = recordingRequest  # type: ignore[assignment]
    peer = IPv4Address("TCP", "127.0.0.1", 40000)
    factory: Any = WrappingFactory(browser.site) if layered else browser.site
    transport = StringTransportWithDisconnection(
        peerAddress=peer, hostAddress=IPv4Address("TCP", "127.0.0.1", 8080)
    )
    # As a TCP connection does: the transport delivers to its protocol.
    transport.protocol = factory.buildProtocol(peer)
    transport.protocol.makeConnection(transport)
    wrapper: Any = transport.protocol if layered else None
    channel = wrapper.wrappedProtocol if layered else transport.protocol
    assert isinstance(channel, WebChannel)
    collected = weakref.ref(channel)
    del channel
    client = Connection(ConnectionType.CLIENT)
    gc.disable()
    try:
        transport.protocol.dataReceived(upgrade() + client.send(TextMessage("first")))
        assert collected() is None
        assert len(requests) == 1
        assert requests[0]() is None
    finally:
        gc.enable()
    member = wrapper.wrappedProtocol if layered else transport.protocol
    assert isinstance(member, WebSocketChatProtocol)
    assert len(browser.site.pending) == 0
    assert browser.chat.context.stats.linesIn == 1
    transport.protocol.dataReceived(client.send(TextMessage("second")))
    assert browser.chat.context.stats.linesIn == 2
    transport.protocol.dataReceived(client.send(CloseConnection(1000)))
    assert not transport.connected
    assert browser.members() == 0


@pytest.mark.parametrize(
    ("host", "served"),
    [
        ("chat.example.org", True),
        ("chat.example.org:8080", True),
        ("CHAT.Example.ORG.:443", True),
        ("127.0.0.1:8080", True),
        ("[2001:db8::0:1]:8080", True),
        ("rebind.attacker.example", False),
        ("chat.example.org.attacker.example", False),
        ("localhost:8080", False),
        ("[::1]:8080", False),
        ("", False),
        (None, False),
        ("chat.example.org:x", False),
    ],
)
def test_web_host_names_the_hosts_served(host: str | None, served: bool) -> None:
    """With --web-host, only requests whose Host is one of the names given
    (spelt any way, the port aside) are served, and only they may open
    the WebSocket, on any listener; without it, any Host is served."""
    policy = OriginPolicy(
        [], ["chat.example.org", "127.0.0.1", "[2001:DB8::1]", "Chat.Example.Org."]
    )
    assert policy.servesHost(host) is served
    assert policy.trustsHost(host, "127.0.0.1") is served
    assert policy.trustsHost(host, "192.0.2.7") is served
    assert OriginPolicy().servesHost(host)


@pytest.mark.parametrize(
    "name",
    ["", "chat.example.org:8080", "http://chat.example.org", "a b", "-x.org", "a..b"],
)
def test_bad_web_host_names(name: str) -> None:
    """A --web-host that is not a host name or an IP address is refused,
    in one line."""
    with pytest.raises(ValueError, match="is not a host name such as"):
        checkHostName(name)


def test_web_host_names_are_spelt_one_way() -> None:
    """Names are kept lower case, without a final dot; IPv6 addresses
    without brackets, in their short form; other scripts in IDNA."""
    assert checkHostName("Chat.Example.ORG.") == "chat.example.org"
    assert checkHostName("[2001:DB8:0::1]") == "2001:db8::1"
    assert checkHostName("bücher.example") == "xn--bcher-kva.example"


@pytest.mark.parametrize("local", ["127.0.0.1", "192.0.2.7"])
def test_site_answers_only_its_web_host_names(local: str) -> None:
    """With --web-host, the page, its assets and the WebSocket are refused
    with 403 and one line for any other Host, on any listener (behind a
    balancer as on loopback); the names given are served."""
    browser = Browser(hosts=("chat.example.org",))
    refusals = [
        b"GET / HTTP/1.1\r\nHost: rebind.attacker.example\r\n\r\n",
        b"GET /chat.js HTTP/1.1\r\nHost: rebind.attacker.example:8080\r\n\r\n",
        b"GET /nope HTTP/1.1\r\nHost: rebind.attacker.example\r\n\r\n",
        b"GET / HTTP/1.0\r\n\r\n",
        upgrade(Host="rebind.attacker.example:8080"),
        upgrade(
            Host="rebind.attacker.example", Origin="http://rebind.attacker.example"
        ),
    ]
    for request in refusals:
        answer, _ = browser.send(request, local=local)
        assert status(answer).endswith(b" 403 Forbidden"), request
        body = answer.value().partition(b"\r\n\r\n")[2]
        assert body == (
            b"this server does not answer to this host name (see --web-host)\n"
        )
    head, _ = browser.send(
        b"HEAD / HTTP/1.1\r\nHost: rebind.attacker.example\r\n\r\n", local=local
    )
    assert status(head) == b"HTTP/1.1 403 Forbidden"
    assert browser.members() == 0
    page, _ = browser.send(
        b"GET / HTTP/1.1\r\nHost: chat.example.org:8080\r\n\r\n", local=local
    )
    assert status(page) == b"HTTP/1.1 200 OK"
    member, _ = browser.send(
        upgrade(Host="chat.example.org", Origin="https://chat.example.org"),
        local=local,
    )
    assert status(member) == b"HTTP/1.1 101 Switching Protocols"
    assert browser.members() == 1


def test_without_web_host_other_listeners_take_any_name() -> None:
    """Without --web-host, a listener that is not on loopback (behind a
    balancer) serves any Host, as before; a loopback one refuses a
    handshake from a page of a name rebound to it."""
    browser = Browser()
    rebound = upgrade(
        Host="rebind.attacker.example", Origin="http://rebind.attacker.example"
    )
    answer, _ = browser.send(rebound, local="192.0.2.7")
    assert status(answer) == b"HTTP/1.1 101 Switching Protocols"
    answer, _ = browser.send(rebound, local="127.0.0.1")
    assert status(answer) == b"HTTP/1.1 403 Forbidden"


def test_web_members_are_logged_by_their_own_front_end() -> None:
    """A WebSocket member's connect, name and disconnect are logged as a
    line client's are, with its address, under the WebSocket front end's
    own namespace."""
    from twisted.logger import LogLevel

    with capturedLogs() as logged:
        web = WebClient(chat(), 50000)
        web.member.connectionLost()
    seen = [
        (event["log_namespace"], event["log_level"], text)
        for event, text in zip(logged.events, logged.texts(), strict=True)
        if text.startswith("Client ")
    ]
    namespace = "sockserve.web.protocol.WebSocketChatProtocol"
    assert seen == [
        (namespace, LogLevel.info, "Client 127.0.0.1:50000 is now connected to us."),
        (namespace, LogLevel.info, "Client 127.0.0.1:50000 is guest1."),
        (namespace, LogLevel.info, "Client 127.0.0.1:50000 disconnected."),
    ]


def test_a_page_in_several_rooms_hears_each_by_name() -> None:
    """A member of sockserve.v2.json stays in its rooms as it joins others:
    what it hears says which room it comes from; it says lines in any of its
    rooms (/say), plain lines in the room it joined last, and leaves one
    room (/part ROOM) for the others."""
    factory = chat()
    page = WebClient(factory, 50000, wire=WEBSOCKET_JSON_WIRE, multiRoom=True)
    tcp, tcpOut, _ = connectOnStringTransport("chat", factory=factory)
    lab, labOut, _ = connectOnStringTransport(
        "chat", factory=factory, peer=("127.0.0.1", 40001)
    )
    lab.dataReceived(b"/join lab\n")
    page.say("/join lab")
    page.lines()
    tcpOut.clear(), labOut.clear()
    tcp.dataReceived(b"in default\n")
    lab.dataReceived(b"in the lab\n")
    assert [json.loads(text) for text in page.lines()] == [
        {
            "type": "message",
            "room": "default",
            "from": "guest2",
            "text": "in default",
            "at": 0.0,
        },
        {
            "type": "message",
            "room": "lab",
            "from": "guest3",
            "text": "in the lab",
            "at": 0.0,
        },
    ]
    page.say("plain\n/say default to default")
    assert labOut.value() == b"<guest1> plain\r\n"
    assert tcpOut.value() == b"<guest1> to default\r\n"
    tcpOut.clear(), labOut.clear()
    page.say("/part lab")
    assert [json.loads(text) for text in page.lines()] == [
        {"type": "parted", "room": "lab"}
    ]
    assert labOut.value() == b"* guest1 left\r\n"
    page.say("now in default")
    assert tcpOut.value() == b"<guest1> now in default\r\n"


def test_private_messages_between_a_page_and_a_line_client() -> None:
    """A private message goes between front ends: each sees it on its own
    wire."""
    factory = chat()
    page = WebClient(factory, 50000, wire=WEBSOCKET_JSON_WIRE)
    tcp, tcpOut, _ = connectOnStringTransport("chat", factory=factory)
    page.lines()
    tcpOut.clear()
    tcp.dataReceived(b"/msg guest1 psst\n")
    assert tcpOut.value() == b"-> *guest1* psst\r\n"
    assert [json.loads(text) for text in page.lines()] == [
        {"type": "private", "from": "guest2", "text": "psst", "at": 0.0}
    ]
    tcpOut.clear()
    page.say("/msg GUEST2 back")
    assert [json.loads(text) for text in page.lines()] == [
        {"type": "sent", "to": "guest2", "text": "back", "at": 0.0}
    ]
    assert tcpOut.value() == b"*guest1* back\r\n"


def test_a_handshake_during_shutdown_is_not_told_the_server_is_full() -> None:
    """A WebSocket handshake that completes while the server is shutting
    down (an HTTP connection opened before its listeners closed) is closed,
    but not told the server is full, which it is not, nor counted as a
    refusal for a full server."""
    browser = Browser()
    first, firstChannel = browser.send(
        upgrade(Sec_WebSocket_Protocol="sockserve.v2.json")
    )
    assert status(first) == b"HTTP/1.1 101 Switching Protocols"
    registry = browser.chat.context.registry
    stopping = registry.shutdown(browser.clock, 5.0)
    late, lateChannel = browser.send(
        upgrade(Sec_WebSocket_Protocol="sockserve.v2.json"), 40001
    )
    head, _, frames = late.value().partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 ")
    client = Connection(ConnectionType.CLIENT)
    client.receive_data(frames)
    events = list(client.events())
    said = [json.loads(e.data) for e in events if isinstance(e, TextMessage)]
    assert any(isinstance(e, CloseConnection) for e in events), events
    refusedAsFull = browser.chat.context.stats.refused["full"]
    for channel in (firstChannel, lateChannel):
        channel.connectionLost(None)
    assert stopping.called
    assert not any("full" in event.get("text", "") for event in said), said
    assert refusedAsFull == 0


def test_json_topic_events_say_who_set_or_cleared_it() -> None:
    """A topic set or cleared says by whom; one asked for and absent is
    null."""
    wire = WEBSOCKET_JSON_WIRE
    assert json.loads(wire.topic("lab", Topic("", "alice", 1.5), True)[2:]) == {
        "type": "topic",
        "room": "lab",
        "topic": {"text": "", "by": "alice", "at": 1.5},
        "changed": True,
    }
    assert json.loads(wire.topic("lab", None, False)[2:]) == {
        "type": "topic",
        "room": "lab",
        "topic": None,
        "changed": False,
    }

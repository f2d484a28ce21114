"""
The IRC front end on StringTransports and a Clock: registration in every
order clients use, each command and its numerics, capabilities, IRC's
framing and what crosses from the other front ends.
"""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from sockserve.chat.events import ACTION
from sockserve.factories import LineServerFactory, buildFactory
from sockserve.irc import IRCFactory, IRCKeepAlive, IRCSettings, IRCWires
from sockserve.irc.grammar import (
    BadLine,
    fitUTF8,
    formatLine,
    parseLine,
    withoutFormatting,
)
from sockserve.irc.protocol import REGISTRATION_TIMEOUT
from sockserve.irc.wire import IRCWire, serverTime
from sockserve.limits import Limits
from sockserve.protocol import ERROR_GRACE
from tests.support import capturedLogs


class Chat:
    """A chat server with IRC, line and nothing else, on a Clock."""

    def __init__(
        self, pings: float = 0.0, password: str | None = None, **limits: Any
    ) -> None:
        self.clock = Clock()
        self.clock.advance(1_800_000_000)
        self.chat: LineServerFactory = buildFactory(
            "chat", Limits(**limits), self.clock, "Hi"
        )
        assert self.chat.service is not None
        assert self.chat.policy is not None
        self.irc = IRCFactory(
            IRCSettings(
                self.chat.context,
                self.chat.service,
                self.chat.policy,
                IRCWires("irc.test", "cloak", self.clock),
                "line one\nline two",
                self.clock,
                network="TestNet",
                pings=IRCKeepAlive(self.clock, pings) if pings else None,
                password=password,
            )
        )
        self.port = 40000

    def connect(self) -> Client:
        self.port += 1
        return Client(self.irc, self.port)

    def user(self, nick: str, *caps: str) -> Client:
        """An IRC client registered as C{nick}, its greeting read."""
        client = self.connect()
        if caps:
            client.send("CAP LS 302", f"CAP REQ :{' '.join(caps)}")
        client.send(f"NICK {nick}", f"USER {nick} 0 * :{nick}")
        if caps:
            client.send("CAP END")
        lines = client.lines()
        assert any(f" 001 {nick} " in line for line in lines), lines
        return client

    def line(self) -> LineClient:
        self.port += 1
        return LineClient(self.chat, self.port)


class Client:
    def __init__(self, factory: Any, port: int) -> None:
        peer = IPv4Address("TCP", "127.0.0.1", port)
        self.protocol = factory.buildProtocol(peer)
        self.transport = StringTransport(peerAddress=peer)
        self.protocol.makeConnection(self.transport)
        self._pending = b""

    def send(self, *lines: str) -> None:
        for line in lines:
            self.sendBytes(line.encode() + b"\r\n")

    def sendBytes(self, data: bytes) -> None:
        self.protocol.dataReceived(data)

    def raw(self) -> bytes:
        data: bytes = self.transport.value()
        self.transport.clear()
        return data

    def lines(self) -> list[str]:
        self._pending += self.raw()
        *lines, self._pending = self._pending.split(b"\r\n")
        return [line.decode("utf-8") for line in lines]

    def codes(self) -> list[str]:
        """The verbs (or numerics) of what it was sent."""
        return [parseLine(line.encode()).verb for line in self.lines()]

    @property
    def closed(self) -> bool:
        return bool(self.transport.disconnecting or self.transport.disconnected)


class LineClient(Client):
    pass


# The grammar


def test_lines_are_read_with_tags_source_and_trailing() -> None:
    """A line's tags (unescaped), source, verb (upper case) and parameters,
    the trailing one with its spaces."""
    message = parseLine(rb"@a=1\s2\:3;b;c= :me!u@h privmsg #lab :hello there")
    assert message.verb == "PRIVMSG"
    assert message.params == ["#lab", "hello there"]
    assert message.tags == {"a": "1 2;3", "b": "", "c": ""}
    assert parseLine(b"NICK alice").params == ["alice"]
    assert parseLine(b"JOIN :").params == [""]
    assert parseLine(b"PING :").params == [""]
    assert parseLine(b"USER a 0 * :Real Name").params == ["a", "0", "*", "Real Name"]
    with pytest.raises(BadLine):
        parseLine(b":only.a.source")


def test_lines_that_are_not_utf8_are_read_as_latin1() -> None:
    """A client of old sends its locale's encoding: never refused."""
    assert parseLine(b"PRIVMSG #lab :caf\xe9").params[1] == "café"
    assert parseLine("PRIVMSG #lab :café".encode()).params[1] == "café"


def test_formatting_codes_are_taken_out() -> None:
    """Bold, colours (and their digits), reset, italics, underline... are
    taken out; the CTCP mark stays."""
    assert withoutFormatting("\x02bold\x02 \x0304,12red\x03 \x1fu\x1f\x0f") == (
        "bold red u"
    )
    assert withoutFormatting("\x01ACTION x\x01") == "\x01ACTION x\x01"


def test_written_lines_never_break_the_framing() -> None:
    """A parameter never carries CR, LF or NUL; the last one gets a colon
    when it must."""
    assert formatLine("s", "NOTICE", "me", "a\r\nb\x00c") == b":s NOTICE me :a  b c\r\n"
    assert formatLine(None, "PING", "token") == b"PING token\r\n"
    assert formatLine(None, "X", ":colon") == b"X ::colon\r\n"
    assert formatLine(None, "X", "") == b"X :\r\n"


def test_long_text_is_cut_between_characters() -> None:
    """Text cut to fit IRC's line is cut at a space near the end, never
    inside a UTF-8 character."""
    text = ("é" * 300).encode()
    pieces = fitUTF8(text, 101)
    assert b"".join(pieces) == text
    assert all(len(piece) <= 101 for piece in pieces)
    for piece in pieces:
        piece.decode("utf-8")
    assert fitUTF8(b"aaaa bbbb cccc", 10) == [b"aaaa bbbb", b"cccc"]


def test_server_time() -> None:
    """IRCv3's time format, in UTC with milliseconds."""
    assert serverTime(0.25) == "1970-01-01T00:00:00.250Z"


# Registration


def test_registration_without_cap() -> None:
    """NICK and USER: 001 to 005, LUSERS, the message of the day, addressed
    to the nick."""
    chat = Chat()
    client = chat.connect()
    client.send("NICK alice", "USER a 0 * :Alice")
    lines = client.lines()
    codes = [parseLine(line.encode()).verb for line in lines]
    advertised = codes.count("005")
    assert advertised in (1, 2)
    assert codes == ["001", "002", "003", "004"] + ["005"] * advertised + [
        "251",
        "254",
        "255",
        "375",
        "372",
        "372",
        "376",
    ]
    assert lines[0].startswith(":irc.test 001 alice :Welcome to the TestNet IRC")
    isupport = [
        token
        for line in lines[4 : 4 + advertised]
        for token in parseLine(line.encode()).params[1:-1]
    ]
    assert all(len(line.encode()) + 2 <= 512 for line in lines)
    assert all(
        parseLine(line.encode()).params[-1] == "are supported by this server"
        for line in lines[4 : 4 + advertised]
    )
    assert "CASEMAPPING=ascii" in isupport
    assert "CHANTYPES=#" in isupport
    assert "NICKLEN=32" in isupport
    assert "CHANNELLEN=33" in isupport
    assert "NETWORK=TestNet" in isupport
    assert lines[8 + advertised] == ":irc.test 372 alice :- line one"


@pytest.mark.parametrize(
    "order",
    [
        # irssi: CAP LS, an empty JOIN, CAP REQ and END, then NICK and USER.
        [
            "CAP LS 302",
            "JOIN :",
            "CAP REQ :server-time",
            "CAP END",
            "NICK a",
            "USER a 0 * :A",
        ],
        # WeeChat: CAP LS, NICK and USER at once, then CAP REQ and END.
        ["CAP LS 302", "NICK a", "USER a 0 * :A", "CAP REQ :server-time", "CAP END"],
        # USER first, then NICK.
        ["USER a 0 * :A", "NICK a"],
    ],
)
def test_registration_in_the_orders_clients_use(order: list[str]) -> None:
    """Registration waits for CAP END once CAP began; a command before
    registration gets 451."""
    chat = Chat()
    client = chat.connect()
    seen: list[str] = []
    for line in order:
        if "001" in seen:
            break
        client.send(line)
        seen += client.codes()
        if line == "JOIN :":
            assert seen[-1] == "451"
    assert seen.count("001") == 1
    assert seen.index("001") > seen.index("CAP") if "CAP" in seen else True


def test_registration_waits_for_cap_end() -> None:
    """Nothing is registered while CAP negotiation is open."""
    chat = Chat()
    client = chat.connect()
    client.send("CAP LS 302", "NICK a", "USER a 0 * :A")
    assert client.codes() == ["CAP"]
    client.send("CAP END")
    assert client.codes()[0] == "001"


def test_capabilities_are_acked_or_naked_whole() -> None:
    """A request of known capabilities is acknowledged; one with an unknown
    one is refused whole; CAP LIST says what is enabled."""
    chat = Chat()
    client = chat.connect()
    client.send("CAP LS 302")
    [offer] = client.lines()
    assert offer.split(" :")[1].split() == [
        "batch",
        "cap-notify",
        "echo-message",
        "message-tags",
        "multi-prefix",
        "server-time",
    ]
    client.send("CAP REQ :server-time account-notify", "CAP REQ :echo-message")
    assert client.lines() == [
        ":irc.test CAP * NAK :server-time account-notify",
        ":irc.test CAP * ACK echo-message",
    ]
    client.send("CAP LIST", "CAP FOO")
    assert client.lines() == [
        ":irc.test CAP * LIST echo-message",
        ":irc.test 410 * FOO :Invalid CAP command",
    ]


def test_a_taken_nick_is_433_and_another_may_be_tried() -> None:
    """433 for a name in use (whatever front end holds it, look-alikes
    too), 432 for one the rule refuses, 431 for none; then a good one
    registers."""
    chat = Chat()
    line = chat.line()
    line.send("/nick alice")
    client = chat.connect()
    client.send("NICK", "NICK a.b", "NICK Alice", "USER a 0 * :A")
    lines = client.lines()
    assert lines[0] == ":irc.test 431 * :No nickname given"
    assert lines[1].startswith(":irc.test 432 * a.b :a name uses")
    assert lines[2].startswith(":irc.test 433 * Alice :the name Alice is taken")
    client.send("NICK a1ice")
    assert client.lines()[0].startswith(":irc.test 433 * a1ice :")
    client.send("NICK bob")
    assert client.lines()[0].startswith(":irc.test 001 bob ")


def test_a_server_password_is_given_with_pass_before_registering() -> None:
    """With a server password (--irc-password-file), a client registers
    only if it gave it (PASS, before NICK and USER or while it negotiates
    capabilities); without it, or with another, it is told 464 and ERROR
    and closed, counted and logged (once, without the password) as a
    refusal; PASS once registered is 462."""
    chat = Chat(password="s3cret pass\u00e9")
    stats = chat.chat.context.stats
    good = chat.connect()
    good.send("PASS :s3cret pass\u00e9", "NICK alice", "USER alice 0 * :Alice")
    assert " 001 alice " in good.lines()[0]
    capable = chat.connect()
    capable.send(
        "CAP LS 302", "NICK bob", "USER bob 0 * :Bob", "PASS :s3cret pass\u00e9"
    )
    capable.lines()
    capable.send("CAP END")
    assert any(" 001 bob " in line for line in capable.lines())
    good.send("PASS :s3cret pass\u00e9")
    assert good.lines() == [":irc.test 462 alice :You may not reregister"]
    with capturedLogs() as logged:
        missing = chat.connect()
        missing.send("NICK carol", "USER carol 0 * :Carol", "PASS :s3cret pass\u00e9")
        wrong = chat.connect()
        wrong.send("PASS s3cret", "NICK dave", "USER dave 0 * :Dave")
    assert missing.lines() == [
        ":irc.test 464 * :Password incorrect",
        "ERROR :Closing link: no password (PASS)",
    ]
    assert wrong.lines() == [
        ":irc.test 464 * :Password incorrect",
        "ERROR :Closing link: wrong password (PASS)",
    ]
    assert missing.closed
    assert wrong.closed
    assert stats.refused["bad_password"] == 2
    refusals = [text for text in logged.texts() if "Refused" in text]
    assert len(refusals) == 2, logged.texts()
    assert "wrong password" in refusals[1]
    assert not any("s3cret" in text for text in logged.texts())
    # Their nicknames were never taken.
    assert chat.chat.service is not None
    assert chat.chat.service.people.holderOf("carol") is None
    chat.clock.advance(ERROR_GRACE)


def test_without_a_server_password_pass_is_ignored() -> None:
    chat = Chat()
    client = chat.connect()
    client.send("PASS whatever", "NICK alice", "USER alice 0 * :Alice")
    assert " 001 alice " in client.lines()[0]


def test_commands_before_registration_are_451_and_unknown_ones_421() -> None:
    chat = Chat()
    client = chat.connect()
    client.send("PRIVMSG #lab :hi", "PING :tok")
    assert client.lines() == [
        ":irc.test 451 * :You have not registered",
        ":irc.test PONG irc.test tok",
    ]
    client.send("NICK a", "USER a 0 * :A")
    client.lines()
    client.send("FROB x", "USER again 0 * :x", "PASS x")
    assert client.lines() == [
        ":irc.test 421 a FROB :Unknown command",
        ":irc.test 462 a :You may not reregister",
        ":irc.test 462 a :You may not reregister",
    ]


def test_a_client_that_never_registers_is_closed() -> None:
    chat = Chat()
    client = chat.connect()
    client.send("NICK a")
    chat.clock.advance(REGISTRATION_TIMEOUT)
    assert client.lines() == ["ERROR :Closing link: registration timed out"]
    assert client.closed
    chat.clock.advance(ERROR_GRACE)


def test_a_quiet_client_is_pinged_then_closed() -> None:
    """After --irc-ping seconds of silence a PING; after as long again
    without a word, closed."""
    chat = Chat(pings=30.0)
    client = chat.user("a")
    chat.clock.advance(30)
    assert client.lines() == ["PING irc.test"]
    client.send("PONG irc.test")
    chat.clock.advance(30)
    assert client.lines() == ["PING irc.test"]
    chat.clock.advance(30)
    assert client.lines() == ["ERROR :Closing link: ping timeout (30 seconds)"]
    assert client.closed
    chat.clock.advance(ERROR_GRACE)


# Channels


def test_join_names_and_part() -> None:
    """JOIN echoes the join, then who is there (the joiner too); the others
    see it; PART likewise; JOIN of a bad name is 403."""
    chat = Chat()
    alice = chat.user("alice")
    bob = chat.user("bob")
    alice.send("JOIN #lab")
    assert alice.lines() == [
        ":alice!alice@cloak JOIN #lab",
        ":irc.test 353 alice = #lab :alice",
        ":irc.test 366 alice #lab :End of /NAMES list",
    ]
    bob.send("JOIN #Lab,#other,lab")
    assert bob.lines() == [
        ":bob!bob@cloak JOIN #lab",
        ":irc.test 353 bob = #lab :alice bob",
        ":irc.test 366 bob #lab :End of /NAMES list",
        ":bob!bob@cloak JOIN #other",
        ":irc.test 353 bob = #other :bob",
        ":irc.test 366 bob #other :End of /NAMES list",
        ":irc.test 403 bob lab :No such channel",
    ]
    assert alice.lines() == [":bob!bob@cloak JOIN #lab"]
    bob.send("JOIN #lab", "PART #lab", "PART #lab", "PART #nowhere")
    assert bob.lines() == [
        ":bob!bob@cloak PART #lab",
        ":irc.test 442 bob #lab :You're not on that channel",
        ":irc.test 403 bob #nowhere :No such channel",
    ]
    assert alice.lines() == [":bob!bob@cloak PART #lab"]


def test_a_full_room_a_bad_room_and_too_many_rooms() -> None:
    """471 for a full room, 403 for a name the rule refuses or a room not
    among --rooms, 405 past --max-rooms."""
    chat = Chat(maxClients=1)
    alice = chat.user("alice")
    bob = chat.user("bob")
    alice.send("JOIN #lab")
    alice.lines()
    bob.send("JOIN #lab", "JOIN #" + "x" * 40)
    lines = bob.lines()
    assert lines[0].startswith(":irc.test 471 bob #lab :the room #lab is full")
    assert lines[1].startswith(":irc.test 403 bob #" + "x" * 40 + " :a room name is")


def test_names_who_whois_list_mode_topic() -> None:
    """What irssi and WeeChat ask after joining, to call a channel synced:
    MODE (324, 329), WHO (352, 315), MODE b (368); and WHOIS, LIST, TOPIC,
    NAMES."""
    chat = Chat()
    alice = chat.user("alice")
    line = chat.line()
    line.send("/join lab")
    alice.send("JOIN #lab")
    alice.lines()
    name = "guest1"
    alice.send("MODE #lab", "WHO #lab", "MODE #lab b", "MODE #lab +o alice")
    assert alice.lines() == [
        ":irc.test 324 alice #lab +n",
        ":irc.test 329 alice #lab 1800000000",
        ":irc.test 352 alice #lab alice cloak irc.test alice H :0 alice",
        f":irc.test 352 alice #lab {name} cloak irc.test {name} H :0 {name}",
        ":irc.test 315 alice #lab :End of /WHO list",
        ":irc.test 368 alice #lab :End of channel ban list",
        ":irc.test 482 alice #lab :Modes cannot be changed here",
    ]
    alice.send(f"WHOIS {name}", "WHOIS nobody", "WHO nobody")
    assert alice.lines() == [
        f":irc.test 311 alice {name} {name} cloak * :{name}",
        f":irc.test 319 alice {name} :#lab",
        f":irc.test 312 alice {name} irc.test :sockserve",
        f":irc.test 318 alice {name} :End of /WHOIS list",
        ":irc.test 401 alice nobody :No such nick/channel",
        ":irc.test 318 alice nobody :End of /WHOIS list",
        ":irc.test 315 alice nobody :End of /WHO list",
    ]
    alice.send("LIST", "TOPIC #lab", "TOPIC #lab :new", "TOPIC #elsewhere")
    assert alice.lines() == [
        ":irc.test 321 alice Channel :Users  Name",
        ":irc.test 322 alice #lab 2 :",
        ":irc.test 323 alice :End of /LIST",
        ":irc.test 331 alice #lab :No topic is set",
        ":alice!alice@cloak TOPIC #lab :new",
        ":irc.test 403 alice #elsewhere :No such channel",
    ]
    alice.send("MODE alice", "MODE alice +i", "MODE guest1", "NAMES #lab")
    assert alice.lines() == [
        ":irc.test 221 alice +",
        ":irc.test 502 alice :Cannot change mode for other users",
        f":irc.test 353 alice = #lab :alice {name}",
        ":irc.test 366 alice #lab :End of /NAMES list",
    ]


def test_list_shows_the_rooms_someone_is_in() -> None:
    """LIST shows the rooms with someone in them, as IRC servers list their
    channels: the default room too once someone is there (a line client
    arrives there), not while it is empty (a line client's /rooms always
    shows it: it is where /part goes)."""
    chat = Chat()
    alice = chat.user("alice")
    alice.send("LIST")
    assert alice.lines() == [
        ":irc.test 321 alice Channel :Users  Name",
        ":irc.test 323 alice :End of /LIST",
    ]
    alice.send("JOIN #lab", "PART #lab")
    alice.lines()
    alice.send("JOIN #lab", "LIST")
    assert alice.lines()[-3:] == [
        ":irc.test 321 alice Channel :Users  Name",
        ":irc.test 322 alice #lab 1 :",
        ":irc.test 323 alice :End of /LIST",
    ]
    line = chat.line()
    alice.send("LIST")
    assert alice.lines() == [
        ":irc.test 321 alice Channel :Users  Name",
        ":irc.test 322 alice #default 1 :",
        ":irc.test 322 alice #lab 1 :",
        ":irc.test 323 alice :End of /LIST",
    ]
    line.lines()
    line.send("/join lab", "/rooms")
    assert line.lines()[-1] == "* 2 rooms: #default (0), #lab (2)"


def test_names_are_split_to_fit_a_line() -> None:
    """353 lines never pass IRC's 512 bytes."""
    wire = IRCWire("irc.test", "cloak", Clock())
    names = [f"member{index:026d}" for index in range(100)]
    lines = wire.names("#lab", names).split(b"\r\n")[:-1]
    assert len(lines) > 5
    assert all(len(line) + 2 <= 512 for line in lines)
    listed = [
        name for line in lines[:-1] for name in line.split(b" :", 1)[1].decode().split()
    ]
    assert listed == names


# Messages


def test_messages_cross_every_front_end() -> None:
    """A channel's lines reach its members on IRC and on a line, both ways;
    a private message reaches one person wherever it is; ACTION is an
    action everywhere; formatting is taken out."""
    chat = Chat()
    alice = chat.user("alice")
    bob = chat.user("bob")
    line = chat.line()
    alice.send("JOIN #default")
    bob.send("JOIN #default")
    line.lines(), alice.lines(), bob.lines()
    alice.send(
        "PRIVMSG #default :hello \x02all\x02", "PRIVMSG #default :\x01ACTION waves\x01"
    )
    expected = [
        ":alice!alice@cloak PRIVMSG #default :hello all",
        ":alice!alice@cloak PRIVMSG #default :\x01ACTION waves\x01",
    ]
    assert bob.lines() == expected
    assert line.lines() == ["<alice> hello all", "* alice waves"]
    assert alice.lines() == []
    line.send("hi \x1b[2J", "/me dances", "/msg bob psst")
    assert bob.lines() == [
        ":guest1!guest1@cloak PRIVMSG #default :hi \\x1b[2J",
        ":guest1!guest1@cloak PRIVMSG #default :\x01ACTION dances\x01",
        ":guest1!guest1@cloak PRIVMSG bob :psst",
    ]
    line.lines()
    bob.send("PRIVMSG guest1 :hey there", "PRIVMSG alice :\x01ACTION nods\x01")
    assert line.lines() == ["*bob* hey there"]
    assert alice.lines()[-1] == ":bob!bob@cloak PRIVMSG alice :\x01ACTION nods\x01"


def test_a_notice_reaches_every_front_end_as_a_notice() -> None:
    """NOTICE to a channel reaches its IRC members as NOTICE and line
    clients as -alice- text; to a person, wherever it is, likewise;
    echo-message echoes it as NOTICE; CTCP in a NOTICE (a CTCP reply) is not
    relayed."""
    chat = Chat()
    alice = chat.user("alice", "echo-message")
    bob = chat.user("bob")
    line = chat.line()
    alice.send("JOIN #default")
    bob.send("JOIN #default")
    line.lines(), alice.lines(), bob.lines()
    alice.send("NOTICE #default :hello \x02all\x02")
    assert alice.lines() == [":alice!alice@cloak NOTICE #default :hello all"]
    assert bob.lines() == [":alice!alice@cloak NOTICE #default :hello all"]
    assert line.lines() == ["-alice- hello all"]
    alice.send(
        "NOTICE bob :psst",
        "NOTICE guest1 :psst",
        "NOTICE bob :\x01VERSION irssi\x01",
        "NOTICE #default :\x01ACTION waves\x01",
    )
    assert alice.lines() == [
        ":alice!alice@cloak NOTICE bob :psst",
        ":alice!alice@cloak NOTICE guest1 :psst",
    ]
    assert bob.lines() == [":alice!alice@cloak NOTICE bob :psst"]
    assert line.lines() == ["*alice* -alice- psst"]
    line.send("/msg bob hi")
    assert bob.lines() == [":guest1!guest1@cloak PRIVMSG bob :hi"]


def test_message_errors() -> None:
    """401, 403, 404, 411, 412, 407; NOTICE never gets one (not even to
    nobody: RFC 2812 forbids automatic replies to it); other CTCP is not
    relayed."""
    chat = Chat()
    alice = chat.user("alice")
    bob = chat.user("bob")
    bob.send("JOIN #lab")
    bob.lines()
    alice.send(
        "PRIVMSG nobody :hi",
        "PRIVMSG #nowhere :hi",
        "PRIVMSG #lab :hi",
        "PRIVMSG",
        "PRIVMSG bob",
        "PRIVMSG bob,carol :hi",
        "NOTICE nobody :hi",
        "NOTICE #lab :hi",
        "PRIVMSG bob :\x01VERSION\x01",
    )
    lines = alice.lines()
    assert [parseLine(line.encode()).verb for line in lines] == [
        "401",
        "403",
        "404",
        "411",
        "412",
        "407",
    ]
    assert bob.lines() == []
    alice.send("NOTICE", "NOTICE bob", "NOTICE bob,carol :hi", "NOTICE #nowhere :x")
    assert alice.lines() == []


def test_echo_message_and_server_time() -> None:
    """With echo-message a client sees its own messages; with server-time
    every line carries the time."""
    chat = Chat()
    alice = chat.user("alice", "echo-message", "server-time")
    bob = chat.user("bob")
    for client in (alice, bob):
        client.send("JOIN #lab")
    alice.lines(), bob.lines()
    alice.send("PRIVMSG #lab :hi", "PRIVMSG bob :psst")
    stamp = "@time=2027-01-15T08:00:00.000Z "
    assert alice.lines() == [
        stamp + ":alice!alice@cloak PRIVMSG #lab :hi",
        stamp + ":alice!alice@cloak PRIVMSG bob :psst",
    ]
    assert bob.lines() == [
        ":alice!alice@cloak PRIVMSG #lab :hi",
        ":alice!alice@cloak PRIVMSG bob :psst",
    ]


def test_history_in_a_batch_or_between_notices() -> None:
    """--history: a client that asked for batches gets a chathistory batch,
    others the lines between two notices."""
    chat = Chat(history=5)
    line = chat.line()
    line.send("one", "/me two")
    batched = chat.user("a", "batch")
    batched.send("JOIN #default")
    lines = batched.lines()[3:]
    assert lines[0].startswith(":irc.test BATCH +h")
    reference = lines[0].split()[2][1:]
    assert lines[0].endswith(" chathistory #default")
    assert lines[1:] == [
        f"@batch={reference} :guest1!guest1@cloak PRIVMSG #default :one",
        f"@batch={reference} :guest1!guest1@cloak PRIVMSG #default :\x01ACTION two\x01",
        f":irc.test BATCH -{reference}",
    ]
    plain = chat.user("b")
    plain.send("JOIN #default")
    assert plain.lines()[3:] == [
        ":irc.test NOTICE #default :the last 2 line(s) said here:",
        ":guest1!guest1@cloak PRIVMSG #default :one",
        ":guest1!guest1@cloak PRIVMSG #default :\x01ACTION two\x01",
        ":irc.test NOTICE #default :(end of history)",
    ]


def test_a_long_line_from_elsewhere_is_cut_to_fit() -> None:
    """A line client's 3000-byte line reaches IRC as several PRIVMSGs, each
    within 512 bytes, nothing lost."""
    chat = Chat()
    alice = chat.user("alice")
    alice.send("JOIN #default")
    alice.lines()
    line = chat.line()
    alice.lines()
    text = " ".join(f"word{index}" for index in range(500))
    line.send(text)
    lines = alice.lines()
    assert len(lines) > 1
    assert all(len(line.encode()) + 2 <= 512 for line in lines)
    assert " ".join(parseLine(line.encode()).params[1] for line in lines) == text


def test_a_line_too_long_for_irc_is_417_and_one_too_long_to_frame_closes() -> None:
    chat = Chat()
    alice = chat.user("alice")
    alice.send("PRIVMSG #lab :" + "x" * 600)
    assert alice.lines() == [":irc.test 417 alice :Input line was too long"]
    assert not alice.closed
    alice.send("PRIVMSG #lab :" + "x" * 5000)
    [error] = alice.lines()
    assert error.startswith("ERROR :line too long")
    assert alice.closed
    chat.clock.advance(ERROR_GRACE)


# Names, quits, renames


def test_a_rename_or_a_quit_is_told_once_whatever_the_rooms_shared() -> None:
    """Someone sharing three rooms with an IRC client renames, then quits:
    one NICK, one QUIT; a line client in one of those rooms sees each."""
    chat = Chat()
    alice = chat.user("alice")
    bob = chat.user("bob")
    for client in (alice, bob):
        client.send("JOIN #a,#b,#c")
    line = chat.line()
    line.send("/join b")
    alice.lines(), bob.lines(), line.lines()
    bob.send("NICK robert")
    assert alice.lines() == [":bob!bob@cloak NICK :robert"]
    assert bob.lines() == [":bob!bob@cloak NICK :robert"]
    assert line.lines() == ["* bob is now known as robert"]
    bob.send("QUIT :bye")
    assert alice.lines() == [":robert!robert@cloak QUIT :Quit: bye"]
    assert bob.lines() == ["ERROR :Closing link (quit)"]
    assert line.lines() == ["* robert left (bye)"]


def test_a_line_clients_quit_and_part_reach_irc_as_quit_and_part() -> None:
    chat = Chat()
    alice = chat.user("alice")
    alice.send("JOIN #default,#lab")
    first, second = chat.line(), chat.line()
    second.send("/join lab")
    alice.lines()
    second.send("/join default")
    assert alice.lines() == [
        ":guest2!guest2@cloak JOIN #default",
        ":guest2!guest2@cloak PART #lab",
    ]
    first.transport.loseConnection()
    first.protocol.connectionLost()
    assert alice.lines() == [":guest1!guest1@cloak QUIT :Quit"]


def test_away_ison_userhost() -> None:
    chat = Chat()
    alice = chat.user("alice")
    chat.user("bob")
    alice.send("AWAY :lunch", "AWAY", "ISON bob carol", "USERHOST bob")
    assert alice.lines() == [
        ":irc.test 306 alice :You have been marked as being away",
        ":irc.test 305 alice :You are no longer marked as being away",
        ":irc.test 303 alice :bob",
        ":irc.test 302 alice :bob=+bob@cloak",
    ]


# The sender pays, and shutdown


@pytest.mark.parametrize(
    ("verb", "shown"), [("PRIVMSG", "<flooder>"), ("NOTICE", "-flooder-")]
)
def test_a_privmsg_flood_waits_for_readers_who_are_behind(
    verb: str, shown: str
) -> None:
    """A flood of PRIVMSG (one large read) waits, a slice at a time, while a
    member that reads is behind; nobody is dropped for it. So does a flood
    of NOTICE."""
    chat = Chat(maxPending=64 * 1024)
    flooder = chat.user("flooder")
    flooder.send("JOIN #default")
    reader = chat.line()
    flooder.lines(), reader.lines()
    reader.protocol.pauseProducing()
    flood = b"".join(
        b"%s #default :%05d %s\r\n" % (verb.encode(), n, b"x" * 300) for n in range(400)
    )
    flooder.sendBytes(flood)
    # Held: most of the flood waits in the flooder's input, not in the
    # reader's queue, and the reader is not dropped.
    assert len(flooder.protocol.session.input) > 0
    assert not reader.closed
    got: list[str] = []
    for _ in range(400):
        reader.protocol.resumeProducing()
        got += [line for line in reader.lines() if line.startswith(shown)]
        if len(got) == 400:
            break
        reader.protocol.pauseProducing()
        chat.clock.advance(0.25)
    assert not reader.closed
    assert [line[10:15] for line in got] == [f"{n:05d}" for n in range(400)]


def test_shutdown_says_goodbye_and_error() -> None:
    chat = Chat()
    alice = chat.user("alice")
    newcomer = chat.connect()
    chat.chat.context.registry.shutdown(chat.clock, 1.0)
    assert alice.lines() == [
        ":irc.test NOTICE alice :the server is shutting down; goodbye",
        "ERROR :Closing link: the server is shutting down; goodbye",
    ]
    assert newcomer.lines() == ["ERROR :Closing link: the server is shutting down"]
    assert alice.closed
    chat.clock.advance(ERROR_GRACE)


def test_an_action_mark_cannot_be_forged() -> None:
    """What an IRC client sends is made safe: it cannot start a line with
    the action mark other than by CTCP ACTION, nor with the notice mark
    (0x05) other than by NOTICE; nor can a line client."""
    chat = Chat()
    alice = chat.user("alice")
    alice.send("JOIN #default")
    line = chat.line()
    alice.lines(), line.lines()
    alice.sendBytes(b"PRIVMSG #default :" + ACTION + b"x \x1b[31m\x00\r\n")
    assert line.lines() == []
    alice.sendBytes(b"PRIVMSG #default :\x05x\r\nNOTICE #default :\x05y\r\n")
    assert line.lines() == ["<alice> \\x05x", "-alice- \\x05y"]
    line.send("\x05z", "/me \x05w")
    assert alice.lines() == [
        ":guest1!guest1@cloak PRIVMSG #default :\\x05z",
        ":guest1!guest1@cloak PRIVMSG #default :\x01ACTION \\x05w\x01",
    ]


def test_kick_with_lists_of_channels_and_nicks() -> None:
    """KICK #a,#b x,y (RFC 2812: one channel for every nick, or a channel
    per nick) answers for each channel: 482 in one of the member's (there
    are no channel operators yet), 442 or 403 otherwise; lists that do not
    pair are 461."""
    chat = Chat()
    alice = chat.user("alice")
    bob = chat.user("bob")
    for client in (alice, bob):
        client.send("JOIN #lab")
        client.lines()
    alice.send("JOIN #mine")
    alice.lines(), bob.lines()
    bob.send(
        "KICK #lab,#lab alice,guest1 :bye",
        "KICK #lab alice,guest1",
        "KICK #mine,#gone,#lab alice,x,y",
        "KICK #lab,#mine alice",
    )
    assert bob.lines() == [
        ":irc.test 482 bob #lab :There are no channel operators here",
        ":irc.test 482 bob #lab :There are no channel operators here",
        ":irc.test 442 bob #mine :You're not on that channel",
        ":irc.test 403 bob #gone :No such channel",
        ":irc.test 482 bob #lab :There are no channel operators here",
        ":irc.test 461 bob KICK :Not enough parameters",
    ]
    assert alice.lines() == []


def test_topics_on_irc() -> None:
    """TOPIC sets a room's topic (seen as TOPIC by IRC members and as a
    notice by line clients), a JOIN shows it (332, 333 before the names),
    TOPIC asks for it; formatting is taken out; 442 outside a room that
    exists, 403 for one that does not; KICK and INVITE likewise before 482."""
    chat = Chat()
    alice = chat.user("alice")
    bob = chat.user("bob")
    line = chat.line()
    line.send("/join lab")
    alice.send("JOIN #lab")
    alice.lines()
    line.lines()
    alice.send("TOPIC #lab :\x02exams\x02 on Friday")
    assert alice.lines() == [":alice!alice@cloak TOPIC #lab :exams on Friday"]
    assert line.lines() == ["* alice set the topic: exams on Friday"]
    bob.send("TOPIC #lab", "KICK #lab alice", "INVITE alice #lab", "JOIN #lab")
    assert bob.lines() == [
        ":irc.test 442 bob #lab :You're not on that channel",
        ":irc.test 442 bob #lab :You're not on that channel",
        ":irc.test 442 bob #lab :You're not on that channel",
        ":bob!bob@cloak JOIN #lab",
        ":irc.test 332 bob #lab :exams on Friday",
        ":irc.test 333 bob #lab alice 1800000000",
        ":irc.test 353 bob = #lab :alice bob guest1",
        ":irc.test 366 bob #lab :End of /NAMES list",
    ]
    line.send("/topic")
    assert line.lines()[-1] == "* the topic of #lab: exams on Friday (set by alice)"
    line.send("/topic")
    line.lines()
    line.send("/topic new one")
    assert bob.lines()[-1] == ":guest1!guest1@cloak TOPIC #lab :new one"
    bob.send("TOPIC #lab", "KICK #lab alice", "TOPIC #gone", "KICK #gone x", "KICK")
    assert bob.lines() == [
        ":irc.test 332 bob #lab :new one",
        ":irc.test 333 bob #lab guest1 1800000000",
        ":irc.test 482 bob #lab :There are no channel operators here",
        ":irc.test 403 bob #gone :No such channel",
        ":irc.test 403 bob #gone :No such channel",
        ":irc.test 461 bob KICK :Not enough parameters",
    ]
    bob.send("TOPIC #lab :")
    assert alice.lines()[-1] == ":bob!bob@cloak TOPIC #lab :"
    alice.send("TOPIC #lab")
    assert alice.lines() == [":irc.test 331 alice #lab :No topic is set"]


def test_departures_say_why_on_every_front_end() -> None:
    """What someone says as it leaves reaches the others: QUIT :reason and
    PART #room :reason from IRC (formatting taken out, control characters
    escaped), /quit WHY and /part ROOM WHY from a line client; IRC shows a
    quit's reason after "Quit: ", so that nobody's words pass for the
    server's."""
    chat = Chat()
    alice = chat.user("alice")
    bob = chat.user("bob")
    for client in (alice, bob):
        client.send("JOIN #lab")
    line = chat.line()
    line.send("/join lab")
    alice.lines(), bob.lines(), line.lines()
    bob.send("PART #lab :\x02lunch\x02 \x1b[31m")
    assert alice.lines() == [":bob!bob@cloak PART #lab :lunch \\x1b[31m"]
    assert line.lines() == ["* bob left (lunch \\x1b[31m)"]
    bob.send("JOIN #lab")
    alice.lines(), line.lines()
    bob.send("QUIT :" + "z" * 400)
    [quit] = alice.lines()
    assert quit == ":bob!bob@cloak QUIT :Quit: " + "z" * 200
    line.send("/quit see you")
    assert alice.lines() == [":guest1!guest1@cloak QUIT :Quit: see you"]


def test_plain_privmsgs_in_one_read_are_said_in_one_go() -> None:
    """PRIVMSGs in a row to one channel, in one read, reach each member as
    one message of several lines (as a line client's read does), in order
    with whatever else the read holds; anything but a plain PRIVMSG (tags,
    CTCP, several targets, a line too long) takes the full way."""
    from sockserve.irc.protocol import plainPrivmsg

    assert plainPrivmsg(b"PRIVMSG #lab :hi there") == ("#lab", "hi there")
    assert plainPrivmsg(b"PRIVMSG #lab :caf\xe9") == ("#lab", "café")
    for raw in (
        b"@t=1 PRIVMSG #lab :hi",
        b"PRIVMSG #lab :\x01ACTION waves\x01",
        b"PRIVMSG #a,#b :hi",
        b"PRIVMSG #lab hi",
        b"PRIVMSG bob :hi",
        b"NOTICE #lab :hi",
        b"PRIVMSG #lab :" + b"x" * 600,
    ):
        assert plainPrivmsg(raw) is None, raw
    chat = Chat()
    alice = chat.user("alice")
    alice.send("JOIN #lab")
    line = chat.line()
    line.send("/join lab")
    alice.lines(), line.lines()
    written: list[bytes] = []
    session = line.protocol.session
    send = session._send

    def recording(data: bytes) -> None:
        written.append(data)
        send(data)

    session._send = recording
    alice.sendBytes(
        b"PRIVMSG #lab :one\r\nPRIVMSG #lab :\x02two\x02\r\n"
        b"PRIVMSG #lab :\x01ACTION three\x01\r\nPRIVMSG #lab :four\r\n"
        b"PRIVMSG #lab :five\r\n"
        # CTCP behind formatting codes: an action, or nothing.
        b"PRIVMSG #lab :\x02\x01ACTION six\x01\r\n"
        b"PRIVMSG #lab :\x02\x01VERSION\x01\r\n"
    )
    assert line.lines() == [
        "<alice> one",
        "<alice> two",
        "* alice three",
        "<alice> four",
        "<alice> five",
        "* alice six",
    ]
    assert [data.count(b"\r\n") for data in written] == [2, 1, 3]

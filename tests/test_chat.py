"""
The chat protocol and its room, on StringTransports.
"""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from sockserve.factories import LineServerFactory, buildFactory
from sockserve.limits import Limits
from sockserve.protocol import LineServerProtocol
from tests.support import capturedLogs, connectOnStringTransport

BANNER = b"Welcome to sockserve test\r\n"


class Room:
    """A chat server with clients on StringTransports."""

    def __init__(
        self, limits: Limits | None = None, clock: Clock | None = None
    ) -> None:
        self.clock = clock or Clock()
        self.factory: LineServerFactory = buildFactory(
            "chat", limits or Limits(), self.clock, "Welcome to sockserve test"
        )
        self.port = 40000

    def join(self) -> tuple[LineServerProtocol, StringTransport]:
        self.port += 1
        protocol, transport, _ = connectOnStringTransport(
            "chat", factory=self.factory, peer=("127.0.0.1", self.port)
        )
        return protocol, transport


def take(transport: StringTransport) -> bytes:
    value: bytes = transport.value()
    transport.clear()
    return value


def test_banner_and_presence() -> None:
    """A client is welcomed, told its name; the others are told it joined."""
    room = Room()
    _, aliceOut = room.join()
    assert take(aliceOut) == BANNER + b"* you are 127.0.0.1:40001; 0 other(s) here\r\n"
    bob, bobOut = room.join()
    assert take(bobOut).endswith(b"* you are 127.0.0.1:40002; 1 other(s) here\r\n")
    assert take(aliceOut) == b"* 127.0.0.1:40002 joined\r\n"
    bob.connectionLost()
    assert take(aliceOut) == b"* 127.0.0.1:40002 left\r\n"


def test_lines_go_to_all_others_never_back() -> None:
    """Every line goes to every other client, prefixed with the sender's name."""
    room = Room()
    alice, aliceOut = room.join()
    _, bobOut = room.join()
    _, carolOut = room.join()
    for out in (aliceOut, bobOut, carolOut):
        out.clear()
    alice.dataReceived(b"hello\r\nhow are you\n")
    expected = b"<127.0.0.1:40001> hello\r\n<127.0.0.1:40001> how are you\r\n"
    assert take(bobOut) == expected
    assert take(carolOut) == expected
    assert take(aliceOut) == b""


def test_lines_from_one_read_make_one_delivery() -> None:
    """The lines one read brings reach each recipient in one write."""
    room = Room()
    alice, _ = room.join()
    bob, bobOut = room.join()
    bobOut.clear()
    writes: list[bytes] = []
    bob.session._send = writes.append  # type: ignore[attr-defined]
    alice.dataReceived(b"a\nb\nc\n")
    assert writes == [
        b"<127.0.0.1:40001> a\r\n<127.0.0.1:40001> b\r\n<127.0.0.1:40001> c\r\n"
    ]


def test_empty_lines_are_not_relayed() -> None:
    """Pressing enter on an empty line sends nothing."""
    room = Room()
    alice, _ = room.join()
    _, bobOut = room.join()
    bobOut.clear()
    alice.dataReceived(b"\r\n\n")
    assert bobOut.value() == b""


def test_nick_who_help_quit() -> None:
    """The commands: /nick renames (others are told), /who lists, /help
    helps, /quit says bye and closes."""
    room = Room()
    alice, aliceOut = room.join()
    bob, bobOut = room.join()
    take(aliceOut), take(bobOut)
    alice.dataReceived(b"/nick alice\r\n")
    assert take(aliceOut) == b"* you are now known as alice\r\n"
    assert take(bobOut) == b"* 127.0.0.1:40001 is now known as alice\r\n"
    alice.dataReceived(b"hi\n")
    assert take(bobOut) == b"<alice> hi\r\n"
    bob.dataReceived(b"/who\n")
    assert take(bobOut) == b"* 2 here: 127.0.0.1:40002, alice\r\n"
    bob.dataReceived(b"/help\n")
    assert b"/nick NAME" in take(bobOut)
    bob.dataReceived(b"/quit\nnot sent\n")
    assert take(bobOut) == b"* bye\r\n"
    assert bobOut.disconnecting
    assert take(aliceOut) == b"* 127.0.0.1:40002 left\r\n"


def test_nick_is_validated() -> None:
    """Names are checked for length, characters and uniqueness."""
    room = Room()
    alice, aliceOut = room.join()
    bob, bobOut = room.join()
    alice.dataReceived(b"/nick alice\n")
    take(aliceOut), take(bobOut)
    bob.dataReceived(b"/nick ALICE\n")
    assert take(bobOut) == b"ERROR the name ALICE is taken\r\n"
    bob.dataReceived(b"/nick " + b"x" * 33 + b"\n")
    assert take(bobOut) == b"ERROR a name is at most 32 characters\r\n"
    bob.dataReceived(b"/nick \x1b[31mred\n")
    assert take(bobOut).startswith(b"ERROR a name uses letters")
    bob.dataReceived(b"/nick\n")
    assert take(bobOut) == b"ERROR a name cannot be empty\r\n"
    assert take(aliceOut) == b""
    alice.dataReceived(b"/nick Alice\n")
    assert take(aliceOut) == b"* you are now known as Alice\r\n"


def test_unknown_command_and_slash_escape() -> None:
    """An unknown command is an error for the sender only; // sends a line
    starting with /."""
    room = Room()
    alice, aliceOut = room.join()
    _, bobOut = room.join()
    take(aliceOut), take(bobOut)
    alice.dataReceived(b"/bogus x\n//etc/passwd is a path\n")
    assert take(aliceOut) == b"ERROR unknown command /bogus (try /help)\r\n"
    assert take(bobOut) == b"<127.0.0.1:40001> /etc/passwd is a path\r\n"


def test_messages_and_commands_keep_their_order() -> None:
    """Lines before a command are relayed under the old name, after it under
    the new one."""
    room = Room()
    alice, _ = room.join()
    _, bobOut = room.join()
    bobOut.clear()
    alice.dataReceived(b"before\n/nick al\nafter\n")
    assert take(bobOut) == (
        b"<127.0.0.1:40001> before\r\n"
        b"* 127.0.0.1:40001 is now known as al\r\n"
        b"<al> after\r\n"
    )


def test_control_sequences_are_never_relayed() -> None:
    """Terminal controls and invalid UTF-8 arrive as visible escapes."""
    room = Room()
    alice, _ = room.join()
    _, bobOut = room.join()
    bobOut.clear()
    alice.dataReceived(b"\x1b[2J\x07bell\xff caf\xc3\xa9\tok\x9b\r\n")
    assert (
        take(bobOut)
        == b"<127.0.0.1:40001> \\x1b[2J\\x07bell\\xff caf\xc3\xa9\tok\\x9b\r\n"
    )


def test_full_room_refuses_with_one_line() -> None:
    """A client beyond --max-clients gets one line and is closed; the room
    is unaffected."""
    room = Room(Limits(maxClients=2))
    alice, aliceOut = room.join()
    _, bobOut = room.join()
    take(aliceOut), take(bobOut)
    carol, carolOut = room.join()
    assert take(carolOut) == (
        b"ERROR the server is full (2 clients); try again later\r\n"
    )
    assert carolOut.disconnecting
    carol.connectionLost()
    assert take(aliceOut) == b""
    alice.dataReceived(b"still here\n")
    assert take(bobOut) == b"<127.0.0.1:40001> still here\r\n"


def test_half_close_relays_the_last_line_and_leaves() -> None:
    """A client that half-closes has its unfinished line relayed, then leaves."""
    room = Room()
    alice, aliceOut = room.join()
    _, bobOut = room.join()
    bobOut.clear()
    alice.dataReceived(b"last words")
    alice.readConnectionLost()
    assert take(bobOut) == b"<127.0.0.1:40001> last words\r\n* 127.0.0.1:40001 left\r\n"
    assert aliceOut.disconnecting


def test_slow_reader_is_dropped_others_unaffected() -> None:
    """A client that stops reading: a sender of ordinary lines is not held
    for it; its queued output exceeds --max-pending and it is cut off; the
    sender and the other readers lose nothing."""
    room = Room(Limits(maxPending=150))  # each relayed line is 60 bytes
    alice, aliceOut = room.join()
    slow, slowOut = room.join()
    _, fastOut = room.join()
    slowOut.clear(), fastOut.clear()
    slow.pauseProducing()
    alice.dataReceived(b"x" * 40 + b"\n")
    assert aliceOut.producerState == "producing"  # a line, not a flood
    alice.dataReceived(b"y" * 40 + b"\n")
    assert not slowOut.disconnecting
    alice.dataReceived(b"z" * 40 + b"\n")
    assert slowOut.disconnecting
    assert slowOut.value() == b""
    assert take(fastOut).count(b"\r\n") == 4  # three lines and the leave notice
    slow.connectionLost()
    alice.dataReceived(b"after\n")
    assert take(fastOut) == b"<127.0.0.1:40001> after\r\n"


def test_queued_output_is_sent_on_resume() -> None:
    """Output queued while the client was not reading is sent, in order,
    when it catches up."""
    room = Room()
    alice, _ = room.join()
    bob, bobOut = room.join()
    bobOut.clear()
    bob.pauseProducing()
    alice.dataReceived(b"one\n")
    alice.dataReceived(b"two\n")
    assert bobOut.value() == b""
    bob.resumeProducing()
    assert take(bobOut) == b"<127.0.0.1:40001> one\r\n<127.0.0.1:40001> two\r\n"


def test_shutdown_says_goodbye() -> None:
    """At shutdown every client is told, then closed."""
    room = Room()
    alice, aliceOut = room.join()
    aliceOut.clear()
    alice.beginShutdown()
    assert aliceOut.value() == b"* the server is shutting down; goodbye\r\n"
    assert aliceOut.disconnecting


def test_shutdown_says_goodbye_first_and_no_one_left() -> None:
    """At shutdown, each client's first line from then on is the goodbye,
    and nobody is told that others left because the server is stopping."""
    room = Room()
    members = [room.join() for _ in range(4)]
    for _, out in members:
        out.clear()
    for protocol, _ in members:
        protocol.beginShutdown()
    for _, out in members:
        assert out.value() == b"* the server is shutting down; goodbye\r\n"
        assert out.disconnecting


def test_renaming_to_the_same_name_tells_nobody() -> None:
    """/nick bob while already bob is a no-op for the others."""
    room = Room()
    alice, aliceOut = room.join()
    _, bobOut = room.join()
    alice.dataReceived(b"/nick alice\n")
    take(aliceOut), take(bobOut)
    alice.dataReceived(b"/nick alice\n")
    assert take(aliceOut) == b"* you are now known as alice\r\n"
    assert take(bobOut) == b""


def test_presence_limit() -> None:
    """Above the presence limit, joins and leaves are not announced."""
    room = Room(Limits(presenceLimit=2))
    _, aliceOut = room.join()
    room.join()
    aliceOut.clear()
    carol, _ = room.join()
    assert aliceOut.value() == b""
    carol.connectionLost()
    assert aliceOut.value() == b"* 127.0.0.1:40003 left\r\n"


def test_max_per_ip() -> None:
    """A further connection from the same address is told why and closed."""
    room = Room(Limits(maxPerIP=1))
    room.join()
    protocol, transport, _ = connectOnStringTransport(
        "chat", factory=room.factory, peer=("127.0.0.1", 50000)
    )
    assert transport.value() == (
        b"ERROR too many connections from 127.0.0.1 (at most 1 per address)\r\n"
    )
    assert transport.disconnecting
    protocol.connectionLost()
    _, other = connectOnStringTransport(
        "chat", factory=room.factory, peer=("127.0.0.2", 1)
    )[:2]
    assert other.value().startswith(BANNER)


def test_telnet_cr_nul_is_part_of_the_ending() -> None:
    """telnet sends a typed CR as CR NUL: it is not shown as text."""
    room = Room()
    alice, aliceOut = room.join()
    _, bobOut = room.join()
    bobOut.clear()
    aliceOut.clear()
    alice.dataReceived(b"hello\r\x00\r\n/nick alice\r\x00\r\n")
    assert take(bobOut) == (
        b"<127.0.0.1:40001> hello\r\n* 127.0.0.1:40001 is now known as alice\r\n"
    )
    assert take(aliceOut) == b"* you are now known as alice\r\n"


def test_same_address_twice_gets_a_unique_name() -> None:
    """Two clients seen with the same address (through two listeners) get
    distinct names."""
    room = Room()
    connectOnStringTransport("chat", factory=room.factory, peer=("127.0.0.1", 7))
    _, second, _ = connectOnStringTransport(
        "chat", factory=room.factory, peer=("127.0.0.1", 7)
    )
    assert b"* you are 127.0.0.1:7#2; 1 other(s) here\r\n" in second.value()


def test_refusals_are_logged_as_warnings() -> None:
    """Refusals (full room, too many from one address) are logged at warn,
    so that a log filter finds them apart from connects."""
    from twisted.logger import LogLevel

    with capturedLogs() as logged:
        room = Room(Limits(maxClients=1, maxPerIP=2))
        room.join()
        room.join()  # the room is full
        connectOnStringTransport(
            "chat", factory=room.factory, peer=("127.0.0.1", 50000)
        )  # a third from one address
    seen = [e for e in logged.events if "Refused" in e.get("log_format", "")]
    assert [event["log_level"] for event in seen] == [LogLevel.warn, LogLevel.warn]

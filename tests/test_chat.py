"""
The chat protocol (the line front end) and its rooms, on StringTransports.
"""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from sockserve.chat.service import ChatService
from sockserve.factories import LineServerFactory, buildFactory
from sockserve.limits import Limits
from sockserve.protocol import LineServerProtocol
from tests.support import capturedLogs, connectOnStringTransport

BANNER = b"Welcome to sockserve test\r\n"


class Room:
    """A chat server with clients on StringTransports (their names are
    guest1, guest2, ... in the order they join; their ports 40001, 40002,
    ...)."""

    def __init__(
        self,
        limits: Limits | None = None,
        clock: Clock | None = None,
        service: ChatService | None = None,
    ) -> None:
        self.clock = clock or Clock()
        self.factory: LineServerFactory = buildFactory(
            "chat",
            limits or Limits(),
            self.clock,
            "Welcome to sockserve test",
            service=service,
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
    """A client is welcomed, told its name (a default one, guestN: not its
    address, which only it is shown), its room and how many others are
    there; the others are told it joined, and left."""
    room = Room()
    _, aliceOut = room.join()
    assert take(aliceOut) == BANNER + (
        b"* you are guest1 (127.0.0.1:40001) in #default; nobody else here\r\n"
    )
    bob, bobOut = room.join()
    assert take(bobOut) == BANNER + (
        b"* you are guest2 (127.0.0.1:40002) in #default; 1 other here\r\n"
    )
    assert take(aliceOut) == b"* guest2 joined\r\n"
    _, carolOut = room.join()
    assert take(carolOut).endswith(
        b"* you are guest3 (127.0.0.1:40003) in #default; 2 others here\r\n"
    )
    assert take(bobOut) == take(aliceOut) == b"* guest3 joined\r\n"
    bob.connectionLost()
    assert take(aliceOut) == take(carolOut) == b"* guest2 left\r\n"
    assert b"127.0.0.1" not in take(bobOut)


def test_lines_go_to_all_others_never_back() -> None:
    """Every line goes to every other client, prefixed with the sender's name."""
    room = Room()
    alice, aliceOut = room.join()
    _, bobOut = room.join()
    _, carolOut = room.join()
    for out in (aliceOut, bobOut, carolOut):
        out.clear()
    alice.dataReceived(b"hello\r\nhow are you\n")
    expected = b"<guest1> hello\r\n<guest1> how are you\r\n"
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
    assert writes == [b"<guest1> a\r\n<guest1> b\r\n<guest1> c\r\n"]


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
    assert take(bobOut) == b"* guest1 is now known as alice\r\n"
    alice.dataReceived(b"hi\n")
    assert take(bobOut) == b"<alice> hi\r\n"
    bob.dataReceived(b"/who\n")
    assert take(bobOut) == b"* 2 here: alice, guest2\r\n"
    bob.dataReceived(b"/help\n")
    assert b"/nick NAME" in take(bobOut)
    bob.dataReceived(b"/quit\nnot sent\n")
    assert take(bobOut) == b"* bye\r\n"
    assert bobOut.disconnecting
    assert take(aliceOut) == b"* guest2 left\r\n"


def test_help_shows_every_command_in_aligned_columns() -> None:
    """/help, sent to the one who asked, names every command with its
    arguments, in the table's order, and what it does in one column."""
    room = Room()
    alice, aliceOut = room.join()
    _, bobOut = room.join()
    take(aliceOut), take(bobOut)
    alice.dataReceived(b"/help\n")
    lines = take(aliceOut).split(b"\r\n")
    assert lines.pop() == b""
    assert all(line.startswith(b"* ") for line in lines)
    assert [line.split()[1] for line in lines] == [
        b"/nick",
        b"/join",
        b"/part",
        b"/rooms",
        b"/who",
        b"/topic",
        b"/msg",
        b"/me",
        b"/say",
        b"/quit",
        b"/help",
        b"//text",
    ]
    assert lines[0].split(b"  ")[0] == b"* /nick NAME"
    assert lines[6].split(b"  ")[0] == b"* /msg NAME TEXT"
    summaries = {len(line) - len(line.split(b"  ")[-1].lstrip()) for line in lines}
    assert len(summaries) == 1, lines
    assert take(bobOut) == b""


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
    assert take(bobOut) == b"<guest1> /etc/passwd is a path\r\n"


def test_messages_and_commands_keep_their_order() -> None:
    """Lines before a command are relayed under the old name, after it under
    the new one."""
    room = Room()
    alice, _ = room.join()
    _, bobOut = room.join()
    bobOut.clear()
    alice.dataReceived(b"before\n/nick al\nafter\n")
    assert take(bobOut) == (
        b"<guest1> before\r\n* guest1 is now known as al\r\n<al> after\r\n"
    )


def test_control_sequences_are_never_relayed() -> None:
    """Terminal controls and invalid UTF-8 arrive as visible escapes."""
    room = Room()
    alice, _ = room.join()
    _, bobOut = room.join()
    bobOut.clear()
    alice.dataReceived(b"\x1b[2J\x07bell\xff caf\xc3\xa9\tok\x9b\r\n")
    assert take(bobOut) == b"<guest1> \\x1b[2J\\x07bell\\xff caf\xc3\xa9\tok\\x9b\r\n"


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
    assert take(bobOut) == b"<guest1> still here\r\n"


def test_half_close_relays_the_last_line_and_leaves() -> None:
    """A client that half-closes has its unfinished line relayed, then leaves."""
    room = Room()
    alice, aliceOut = room.join()
    _, bobOut = room.join()
    bobOut.clear()
    alice.dataReceived(b"last words")
    alice.readConnectionLost()
    assert take(bobOut) == b"<guest1> last words\r\n* guest1 left\r\n"
    assert aliceOut.disconnecting


def test_slow_reader_is_dropped_others_unaffected() -> None:
    """A client that stops reading: a sender of ordinary lines is not held
    for it; its queued output exceeds --max-pending and it is cut off; the
    sender and the other readers lose nothing."""
    room = Room(Limits(maxPending=150))  # each relayed line is 51 bytes
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
    assert take(fastOut) == b"<guest1> after\r\n"


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
    assert take(bobOut) == b"<guest1> one\r\n<guest1> two\r\n"


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
    and nobody is told that others left because the server is stopping,
    whatever room they are in."""
    room = Room()
    members = [room.join() for _ in range(4)]
    for protocol, _ in members[2:]:
        protocol.dataReceived(b"/join lab\n")
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
    assert aliceOut.value() == b"* guest3 left\r\n"


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
    assert take(bobOut) == b"<guest1> hello\r\n* guest1 is now known as alice\r\n"
    assert take(aliceOut) == b"* you are now known as alice\r\n"


def test_same_address_twice_gets_a_unique_name() -> None:
    """Two clients seen with the same address (through two listeners) get
    distinct names."""
    room = Room()
    _, first, _ = connectOnStringTransport(
        "chat", factory=room.factory, peer=("127.0.0.1", 7)
    )
    _, second, _ = connectOnStringTransport(
        "chat", factory=room.factory, peer=("127.0.0.1", 7)
    )
    assert first.value().endswith(
        b"* you are guest1 (127.0.0.1:7) in #default; nobody else here\r\n"
        b"* guest2 joined\r\n"
    )
    assert second.value().endswith(
        b"* you are guest2 (127.0.0.1:7) in #default; 1 other here\r\n"
    )


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


def test_connects_are_logged_with_the_address_by_the_line_front_end() -> None:
    """Each connect and disconnect is logged, at info, with the client's
    address, and so is the name it was given, under the line front end's
    own namespace (the log says which front end served it)."""
    from twisted.logger import LogLevel

    with capturedLogs() as logged:
        room = Room()
        alice, _ = room.join()
        alice.connectionLost()
    seen = [
        (event["log_namespace"], event["log_level"], text)
        for event, text in zip(logged.events, logged.texts(), strict=True)
        if text.startswith("Client ")
    ]
    namespace = "sockserve.chat.protocol.ChatProtocol"
    assert seen == [
        (namespace, LogLevel.info, "Client 127.0.0.1:40001 is now connected to us."),
        (namespace, LogLevel.info, "Client 127.0.0.1:40001 is guest1."),
        (namespace, LogLevel.info, "Client 127.0.0.1:40001 disconnected."),
    ]


def test_the_log_ties_names_to_addresses() -> None:
    """Names are no longer addresses: the log still tells which address
    goes by which name (the name given on arrival, and each change of it),
    so that whoever reads it can tell who said they were alice."""
    with capturedLogs() as logged:
        room = Room()
        alice, _ = room.join()
        alice.dataReceived(b"/nick alice\n")
    texts = logged.texts()
    assert any("127.0.0.1:40001" in text and "guest1" in text for text in texts), texts
    assert any("guest1" in text and "alice" in text for text in texts), texts


def test_a_line_client_goes_from_room_to_room() -> None:
    """/join takes a line client from its room to another (made if there is
    none), /part back to the default room; what is said in a room reaches
    that room only; each room is told who comes and goes; /rooms lists the
    rooms and how many are in each."""
    room = Room()
    alice, aliceOut = room.join()
    bob, bobOut = room.join()
    carol, carolOut = room.join()
    for out in (aliceOut, bobOut, carolOut):
        out.clear()
    alice.dataReceived(b"/join lab\n")
    assert take(aliceOut) == b"* you are now in #lab; nobody else here\r\n"
    assert take(bobOut) == take(carolOut) == b"* guest1 left\r\n"
    bob.dataReceived(b"/join #LAB\n")
    assert take(bobOut) == b"* you are now in #lab; 1 other here\r\n"
    assert take(aliceOut) == b"* guest2 joined\r\n"
    assert take(carolOut) == b"* guest2 left\r\n"
    alice.dataReceived(b"in the lab\n")
    carol.dataReceived(b"in the default room\n")
    assert take(bobOut) == b"<guest1> in the lab\r\n"
    assert take(carolOut) == b""
    assert take(aliceOut) == b""
    carol.dataReceived(b"/rooms\n/who\n")
    assert take(carolOut) == (
        b"* 2 rooms: #default (1), #lab (2)\r\n* 1 here: guest3\r\n"
    )
    bob.dataReceived(b"/part\n/who\n")
    assert take(bobOut) == (
        b"* you are now in #default; 1 other here\r\n* 2 here: guest2, guest3\r\n"
    )
    assert take(aliceOut) == b"* guest2 left\r\n"
    assert take(carolOut) == b"* guest2 joined\r\n"
    alice.connectionLost()
    bob.dataReceived(b"/rooms\n")
    assert take(bobOut) == b"* 1 room: #default (2)\r\n"


def test_a_full_room_refuses_whoever_joins_it() -> None:
    """--max-clients holds in every room: a line client joining a room at
    capacity is told so in one line and stays where it was; the room is
    unaffected."""
    room = Room(Limits(maxClients=2))
    alice, aliceOut = room.join()
    bob, bobOut = room.join()
    alice.dataReceived(b"/join lab\n")
    bob.dataReceived(b"/join lab\n")
    carol, carolOut = room.join()
    for out in (aliceOut, bobOut, carolOut):
        out.clear()
    carol.dataReceived(b"/join lab\n/who\n")
    assert take(carolOut) == (
        b"ERROR the room #lab is full (2 members)\r\n* 1 here: guest3\r\n"
    )
    assert not carolOut.disconnecting
    assert take(aliceOut) == take(bobOut) == b""
    alice.dataReceived(b"still here\n")
    assert take(bobOut) == b"<guest1> still here\r\n"


def test_a_full_server_says_how_many_clients_in_good_english() -> None:
    """A server of one client says so: 1 client, not 1 clients."""
    room = Room(Limits(maxClients=1))
    room.join()
    _, out = room.join()
    assert take(out) == b"ERROR the server is full (1 client); try again later\r\n"


def test_private_messages() -> None:
    """/msg NAME TEXT reaches that person alone, whatever room it is in,
    marked as private and from whom (made safe as any line); the sender sees
    that it went through, or one ERROR line."""
    room = Room()
    alice, aliceOut = room.join()
    bob, bobOut = room.join()
    _, carolOut = room.join()
    bob.dataReceived(b"/join lab\n/nick bob\n")
    for out in (aliceOut, bobOut, carolOut):
        out.clear()
    alice.dataReceived(b"/msg BOB psst \x1b[2J\n/msg nobody hi\n/msg bob\n")
    assert take(bobOut) == b"*guest1* psst \\x1b[2J\r\n"
    assert take(aliceOut) == (
        b"-> *bob* psst \\x1b[2J\r\n"
        b"ERROR nobody here is called nobody\r\n"
        b"ERROR to whom, and what? /msg NAME TEXT\r\n"
    )
    assert take(carolOut) == b""


def test_actions() -> None:
    """/me ACTION is an action, shown as * NAME ACTION to the others (and in
    history), made safe as any line: a client cannot make one any other
    way."""
    room = Room(Limits(history=5))
    alice, aliceOut = room.join()
    _, bobOut = room.join()
    bobOut.clear()
    alice.dataReceived(b"/me waves \x1b[2J\n\x01ACTION fakes\n/me\n")
    assert take(bobOut) == (
        b"* guest1 waves \\x1b[2J\r\n<guest1> \\x01ACTION fakes\r\n"
    )
    assert take(aliceOut).endswith(b"ERROR do what? /me ACTION\r\n")
    _, carolOut = room.join()
    assert b"* guest1 waves" in take(carolOut)


def test_history_is_the_rooms_own() -> None:
    """With --history, a client is shown the last lines of the room it
    arrives in, and of each room it joins: that room's lines only."""
    room = Room(Limits(history=2))
    alice, _ = room.join()
    alice.dataReceived(b"one\ntwo\nthree\n")
    bob, bobOut = room.join()
    assert take(bobOut).endswith(
        b"* you are guest2 (127.0.0.1:40002) in #default; 1 other here\r\n"
        b"* the last 2 lines said here:\r\n"
        b"<guest1> two\r\n"
        b"<guest1> three\r\n"
        b"* (end of history)\r\n"
    )
    bob.dataReceived(b"/join lab\nin the lab\n")
    assert take(bobOut) == b"* you are now in #lab; nobody else here\r\n"
    carol, carolOut = room.join()
    assert take(carolOut).endswith(b"<guest1> three\r\n* (end of history)\r\n")
    carol.dataReceived(b"/join lab\n")
    assert take(carolOut) == (
        b"* you are now in #lab; 1 other here\r\n"
        b"* the last 1 line said here:\r\n"
        b"<guest2> in the lab\r\n"
        b"* (end of history)\r\n"
    )


def test_the_default_rooms_history_outlives_its_members() -> None:
    """With --history, what was said in the default room is shown to whoever
    comes next, even if everyone else left meanwhile (as with one room: the
    last one to leave, coming back, is shown what was said)."""
    room = Room(Limits(history=2))
    alice, _ = room.join()
    alice.dataReceived(b"one\ntwo\n")
    alice.connectionLost()
    _, bobOut = room.join()
    assert take(bobOut).endswith(
        b"* the last 2 lines said here:\r\n"
        b"<guest1> one\r\n"
        b"<guest1> two\r\n"
        b"* (end of history)\r\n"
    )


def test_newcomers_get_in_whatever_rooms_others_made() -> None:
    """The default room is where everyone arrives: however many rooms the
    members made elsewhere (up to --max-rooms), leaving the default room
    empty, a newcomer is let into it, and nothing is logged as an error."""
    from sockserve.factories import roomRules

    clock = Clock()
    service = ChatService(roomRules(Limits(), maxRooms=2), clock)
    room = Room(clock=clock, service=service)
    alice, aliceOut = room.join()
    bob, bobOut = room.join()
    alice.dataReceived(b"/join one\n")
    bob.dataReceived(b"/join one\n")
    alice.dataReceived(b"/join two\n")
    assert take(aliceOut).endswith(b"* you are now in #two; nobody else here\r\n")
    assert take(bobOut).endswith(
        b"* you are now in #one; 1 other here\r\n* guest1 left\r\n"
    )
    assert service.roomCount() == 2
    _, carolOut = room.join()
    assert take(carolOut) == BANNER + (
        b"* you are guest3 (127.0.0.1:40003) in #default; nobody else here\r\n"
    )


def test_topics() -> None:
    """/topic TEXT sets the current room's topic, told to its members with
    who set it (made safe as any line); /topic shows it; a newcomer is told
    it on joining; other rooms keep theirs; an empty /topic shows, a long
    one is refused in one line."""
    room = Room()
    alice, aliceOut = room.join()
    bob, bobOut = room.join()
    carol, carolOut = room.join()
    alice.dataReceived(b"/join lab\n")
    bob.dataReceived(b"/join lab\n")
    for out in (aliceOut, bobOut, carolOut):
        out.clear()
    alice.dataReceived(b"/topic exams on \x1b[31mFriday\n")
    told = b"* guest1 set the topic: exams on \\x1b[31mFriday\r\n"
    assert take(aliceOut) == take(bobOut) == told
    assert take(carolOut) == b""
    bob.dataReceived(b"/topic\n")
    assert take(bobOut) == (
        b"* the topic of #lab: exams on \\x1b[31mFriday (set by guest1)\r\n"
    )
    carol.dataReceived(b"/topic\n/join lab\n")
    shown = take(carolOut)
    assert shown.startswith(b"* #default has no topic\r\n")
    assert b"* the topic of #lab: exams on \\x1b[31mFriday (set by guest1)\r\n" in shown
    bobOut.clear()
    bob.dataReceived(b"/topic " + b"x" * 301 + b"\n")
    assert take(bobOut) == b"ERROR a topic is at most 300 characters\r\n"


def test_a_topic_is_cleared_with_a_dash() -> None:
    """/topic - clears the room's topic (an empty /topic shows it)."""
    room = Room()
    alice, aliceOut = room.join()
    alice.dataReceived(b"/topic exams\n")
    aliceOut.clear()
    alice.dataReceived(b"/topic -\n/topic\n")
    assert (
        take(aliceOut) == b"* guest1 cleared the topic\r\n* #default has no topic\r\n"
    )


def test_say_in_a_room_acts_and_sets_its_topic() -> None:
    """/say ROOM /me ACTION acts in ROOM and /say ROOM /topic TEXT sets its
    topic, whichever room is the current one (the page names the room in
    view each time); /say ROOM //text and /say ROOM /other say the line as
    it is."""
    room = Room()
    alice, aliceOut = room.join()
    bob, bobOut = room.join()
    bob.dataReceived(b"/join lab\n")
    alice.dataReceived(b"/join lab\n")
    aliceOut.clear()
    bobOut.clear()
    alice.dataReceived(
        b"/say lab /me waves\n/say lab /topic exams\n/say lab //me too\n"
        b"/say lab /etc/passwd\n"
    )
    assert take(bobOut) == (
        b"* guest1 waves\r\n* guest1 set the topic: exams\r\n"
        b"<guest1> /me too\r\n<guest1> /etc/passwd\r\n"
    )

"""
Rooms, private messages and one name per person (issue #18), end to end:
the installed C{twistd}, raw TCP clients and clients of the C{websockets}
library speaking the page's subprotocol (C{sockserve.v2.json}); first on
one node, then on three nodes of a bus on a private C{redis-server}.

What a client sees is checked line by line where it matters: a line said
in a room reaches that room's other members and nobody else, presence is
told to the room concerned only, a private message reaches its person
alone, and a refused client stays where it was.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from typing import Any

import pytest
from websockets.sync.client import ClientConnection, connect

from tests.processes import (
    WAIT,
    Processes,
    Server,
    TcpMember,
    receiveToEOF,
    waitWhileProgressing,
)
from tests.redis import RedisServer
from tests.test_e2e_bus import DONE, received, send
from tests.test_e2e_bus_flood import Flooder, Reader

pytestmark = pytest.mark.e2e

JSON = "sockserve.v2.json"
# A flood line's bytes (Flooder's), what the slow reader takes every quarter
# of a second, and how far ahead of it a paced flooder may get: the
# kernel's buffers both ways, --max-pending, the bus's lag (1 MiB).
FLOOD_LINE = 100
SLOW_READ = 256 * 1024
AHEAD = 16 * 1024 * 1024


class Page:
    """
    A client of the page's subprotocol (C{sockserve.v2.json}): in several
    rooms at once, every event a JSON object.

    @ivar name: its name, as its welcome said (and as it changes it).
    @ivar room: the room of its welcome.
    """

    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection
        assert connection.subprotocol == JSON, connection.subprotocol
        banner = self.event()
        assert banner["type"] == "banner", banner
        welcome = self.event()
        assert welcome["type"] == "welcome", welcome
        self.name: str = welcome["name"]
        self.room: str = welcome["room"]
        self.others: int = welcome["others"]

    def event(self, timeout: float = WAIT) -> dict[str, Any]:
        """
        The next event, without the server's time (C{at}: another test's).
        """
        frame = self.connection.recv(timeout=timeout)
        assert isinstance(frame, str), frame
        event = json.loads(frame)
        assert isinstance(event, dict), event
        event.pop("at", None)
        return event

    def eventsUntil(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = WAIT
    ) -> list[dict[str, Any]]:
        """
        The events up to and including the first that satisfies
        C{predicate}, within C{timeout} seconds and 1000 events.
        """
        deadline = time.monotonic() + timeout
        events: list[dict[str, Any]] = []
        for _ in range(1000):
            remaining = deadline - time.monotonic()
            try:
                event = self.event(max(remaining, 0.001))
            except TimeoutError:
                raise AssertionError(
                    f"no such event within {timeout}s; {self.name} got {events}"
                ) from None
            events.append(event)
            if predicate(event):
                return events
        raise AssertionError(f"no such event in 1000: the last {events[-20:]}")

    def eventOf(self, kind: str, timeout: float = WAIT) -> dict[str, Any]:
        """
        The first event of type C{kind} from here on.
        """
        return self.eventsUntil(lambda event: event["type"] == kind, timeout)[-1]

    def send(self, text: str) -> None:
        """
        Send C{text}, one message.
        """
        self.connection.send(text)

    def ask(self, text: str, kind: str) -> dict[str, Any]:
        """
        Send C{text}; return the first event of type C{kind} (or an error).
        """
        self.send(text)
        return self.eventsUntil(lambda event: event["type"] in (kind, "error"))[-1]


@pytest.fixture
def pages() -> Iterator[Callable[[Server], Page]]:
    with ExitStack() as opened:

        def open(server: Server) -> Page:
            connection = opened.enter_context(
                connect(
                    f"ws://127.0.0.1:{server.portOf('web')}/ws",
                    subprotocols=[JSON],  # type: ignore[list-item]
                    proxy=None,
                    open_timeout=WAIT,
                    close_timeout=1,
                    compression=None,
                )
            )
            return Page(connection)

        yield open


def isAnswer(line: str) -> bool:
    """
    Whether C{line} answers a command: C{* you are now in ...}, C{* N
    here: ...}, C{* N rooms: ...}, C{* you are now known as ...}, an
    error.
    """
    return line.startswith(("* you are now ", "ERROR ")) or bool(
        re.fullmatch(r"\* [0-9]+ (here|rooms?): .*", line)
    )


def who(member: TcpMember, room: str = "") -> str:
    """
    Ask C{/who} (of C{room}, if given); return the answer.
    """
    return member.ask(f"/who {room}".rstrip(), isAnswer)


def whoLines(member: TcpMember, room: str = "") -> list[str]:
    """
    Ask C{/who} (of C{room}, if given); return every line up to the answer:
    what the member was sent meanwhile, and the answer.
    """
    member.say(f"/who {room}".rstrip())
    return member.linesUntil(isAnswer)


def rooms(member: TcpMember) -> str:
    """
    Ask C{/rooms}; return the answer.
    """
    return member.ask("/rooms", isAnswer)


def here(*names: str) -> str:
    """
    The answer to C{/who} in a room of C{names}.
    """
    return f"* {len(names)} here: {', '.join(sorted(names, key=str.casefold))}"


# One node


def test_two_rooms_on_one_node(processes: Processes) -> None:
    """
    Two rooms on one server: a line said in one reaches that room's members
    and nobody else; joins and departures are told in the room concerned
    only; /rooms counts each room, /who lists one room (the member's, or
    one it names); /part takes a line client back to the default room, and
    a room nobody is in any more is forgotten.
    """
    server = processes.server()
    a, b, c = (TcpMember(processes, server) for _ in range(3))
    assert [a.name, b.name, c.name] == ["guest1", "guest2", "guest3"]
    assert (a.room, a.others, c.others) == ("default", 0, 2)
    assert b.join("lab") == "* you are now in #lab; nobody else here"
    assert a.linesUntil(lambda line: "left" in line) == [
        "* guest2 joined",
        "* guest3 joined",
        "* guest2 left",
    ]
    assert c.linesUntil(lambda line: "left" in line) == ["* guest2 left"]
    # The room's name is compared without case, and a leading # ignored.
    assert c.join("#LAB") == "* you are now in #lab; 1 other here"
    assert b.linesUntil(lambda line: "joined" in line) == ["* guest3 joined"]
    assert a.linesUntil(lambda line: "left" in line) == ["* guest3 left"]

    # Each line is handled before the /who after it is answered: had one
    # reached another room, it would come before the next answer there.
    a.say("only for #default")
    assert whoLines(a) == [here("guest1")]
    b.say("only for #lab")
    assert c.linesUntil(lambda line: line.startswith("<")) == ["<guest2> only for #lab"]
    assert whoLines(a) == [here("guest1")]
    assert rooms(a) == "* 2 rooms: #default (1), #lab (2)"
    assert whoLines(b) == [here("guest2", "guest3")]
    assert whoLines(b, "#lab") == [here("guest2", "guest3")]
    assert whoLines(c, "lab") == [here("guest2", "guest3")]

    c.say("/part")
    assert c.lineUntil(isAnswer) == "* you are now in #default; 1 other here"
    assert b.linesUntil(lambda line: "left" in line) == ["* guest3 left"]
    assert a.linesUntil(lambda line: "joined" in line) == ["* guest3 joined"]
    b.say("/part")
    assert b.lineUntil(isAnswer) == "* you are now in #default; 2 others here"
    assert rooms(a) == "* 1 room: #default (3)"
    assert who(c) == here("guest1", "guest2", "guest3")
    # The lab was forgotten: whoever goes there next makes it afresh.
    assert a.join("lab") == "* you are now in #lab; nobody else here"


def test_max_clients_is_per_room(processes: Processes) -> None:
    """
    --max-clients caps each room: a newcomer beyond it in the default room
    is refused at the door; a member asking to join another full room is
    told so in one line and stays where it was, unseen in the full room.
    """
    server = processes.server("--max-clients", "2")
    a, b = TcpMember(processes, server), TcpMember(processes, server)
    late = processes.connect(("127.0.0.1", server.port))
    assert receiveToEOF(late) == (
        b"ERROR the server is full (2 clients); try again later\r\n"
    )
    a.join("lab")
    assert b.join("lab") == "* you are now in #lab; 1 other here"
    # The default room has room again.
    c, d = TcpMember(processes, server), TcpMember(processes, server)
    assert c.ask("/join lab", isAnswer) == "ERROR the room #lab is full (2 members)"
    assert who(c) == here(c.name, d.name)
    c.say("still in the default room")
    assert d.lineUntil(lambda line: line.startswith("<")) == (
        f"<{c.name}> still in the default room"
    )
    # Nothing of c reached the lab: neither its line, nor a join or a
    # departure.
    assert whoLines(a) == [f"* {b.name} joined", here(a.name, b.name)]
    assert rooms(c) == "* 2 rooms: #default (2), #lab (2)"


def test_fixed_rooms_refuse_others(processes: Processes) -> None:
    """
    With --rooms, joining a room not among them is refused in one line
    that names them (the default room always among them), and the member
    stays where it was; one of them can be joined.
    """
    server = processes.server("--room", "hall", "--rooms", "lab,ops")
    member = TcpMember(processes, server)
    assert member.room == "hall"
    assert member.ask("/join games", isAnswer) == (
        "ERROR there is no room #games here; the rooms are #hall, #lab, #ops"
    )
    assert who(member) == here(member.name)
    assert member.join("ops") == "* you are now in #ops; nobody else here"
    # The default room always exists, even empty.
    assert rooms(member) == "* 2 rooms: #hall (0), #ops (1)"


def test_max_rooms_refuses_one_too_many(processes: Processes) -> None:
    """
    With --max-rooms 2, making a third room besides the default one is
    refused in one line and the member stays where it was; once a room is
    forgotten (empty), another can be made.
    """
    server = processes.server("--max-rooms", "2")
    a, b, c = (TcpMember(processes, server) for _ in range(3))
    b.join("one")
    c.join("two")
    assert a.ask("/join three", isAnswer) == (
        "ERROR no more rooms can be made here (at most 2, besides the default "
        "room); join one of them"
    )
    assert who(a) == here(a.name)
    assert rooms(a) == "* 3 rooms: #default (1), #one (1), #two (1)"
    c.say("/part")
    assert c.lineUntil(isAnswer) == "* you are now in #default; 1 other here"
    assert rooms(a) == "* 2 rooms: #default (2), #one (1)"
    assert a.join("three") == "* you are now in #three; nobody else here"
    assert rooms(a) == "* 3 rooms: #default (1), #one (1), #three (1)"


def test_a_newcomer_gets_in_while_other_rooms_reach_max_rooms(
    processes: Processes,
) -> None:
    """
    The default room is where everyone arrives, and always exists: once its
    members all went to other rooms, as many as --max-rooms, a newcomer is
    still let in (to the default room), and the log has no traceback.
    """
    server = processes.server("--max-rooms", "2")
    server.output.follow()
    a = TcpMember(processes, server)
    a.join("one")
    b = TcpMember(processes, server)
    b.join("one")
    b.join("two")
    assert rooms(a) == "* 3 rooms: #default (0), #one (1), #two (1)"
    newcomer = TcpMember(processes, server)
    assert (newcomer.room, newcomer.others) == ("default", 0)
    log = server.output.text()
    assert "Traceback" not in log, log


def test_private_messages_on_one_node(processes: Processes) -> None:
    """
    /msg says a line to one person, wherever they are: the recipient sees
    C{*sender* text}, the sender C{-> *name* text}, nobody else anything;
    a name that looks like the person's reaches the person, under the
    person's own name; control characters are escaped; an unknown name is
    one error.
    """
    server = processes.server()
    a, b, c = (TcpMember(processes, server) for _ in range(3))
    b.join("lab")
    assert a.ask("/msg guest2 hello there", isPrivate) == "-> *guest2* hello there"
    assert b.lineUntil(isPrivate) == "*guest1* hello there"
    assert b.ask("/msg GUEST1 \x1b[31mback", isPrivate) == ("-> *guest1* \\x1b[31mback")
    assert a.lineUntil(isPrivate) == "*guest2* \\x1b[31mback"
    assert a.ask("/msg nobody hi", isAnswer) == "ERROR nobody here is called nobody"
    assert a.ask("/msg guest2", isAnswer) == "ERROR to whom, and what? /msg NAME TEXT"
    b.rename("bob")
    assert a.ask("/msg bob again", isPrivate) == "-> *bob* again"
    assert b.lineUntil(isPrivate) == "*guest1* again"
    assert a.ask("/msg guest2 hi", isAnswer) == "ERROR nobody here is called guest2"
    # c, in a's room, saw none of it.
    assert whoLines(c) == ["* guest2 left", here("guest1", "guest3")]


@pytest.mark.parametrize("private", [False, True], ids=["in a room", "private"])
def test_the_flood_limit_paces_private_messages_as_lines(
    processes: Processes, private: bool
) -> None:
    """
    --flood-limit paces private messages as it paces lines said in a room:
    20 lines of 3000 bytes sent at once to one reader, with a limit of
    20,000 bytes a second (a second's worth at once), take two seconds or
    so to arrive, and all arrive.
    """
    server = processes.server("--flood-limit", "20000")
    sender, reader = TcpMember(processes, server), TcpMember(processes, server)
    text = "x" * 3000
    command = f"/msg {reader.name} " if private else ""
    marker = f"*{sender.name}* " if private else f"<{sender.name}> "
    started = time.monotonic()
    sender.send("".join(f"{command}{n:02d}{text}\r\n" for n in range(20)).encode())
    got = [
        reader.lineUntil(lambda line: line.startswith(marker))[len(marker) :]
        for _ in range(20)
    ]
    elapsed = time.monotonic() - started
    assert got == [f"{n:02d}{text}" for n in range(20)]
    # (60,000 bytes and more - 20,000 at once) / 20,000 a second.
    assert elapsed >= 1.5, f"20 lines of 3000 bytes took {elapsed:.2f} s"


def test_room_hopping_is_not_everyones_flood(processes: Processes) -> None:
    """
    A member of one address hopping in and out of a room, again and again:
    past ten joins in ten seconds its comings and goings are no longer
    announced one by one (the room is told in a summary), so the room is
    not flooded with notices; who is there stays right.
    """
    server = processes.server()
    watcher = TcpMember(processes, server, source="127.0.0.2")
    watcher.join("lab")
    hopper = TcpMember(processes, server)
    hopper.send(b"/join lab\r\n/part\r\n" * 10)
    for _ in range(20):
        hopper.lineUntil(isAnswer)
    seen = watcher.linesUntil(lambda line: "quietly" in line and hopper.name in line)
    joined = seen.count(f"* {hopper.name} joined")
    assert 1 <= joined <= 5, seen
    assert seen.count(f"* {hopper.name} left") == joined, seen
    assert whoLines(watcher)[-1] == here(watcher.name)


def isPrivate(line: str) -> bool:
    """
    Whether C{line} is a private message, received or sent, or an error.
    """
    return line.startswith(("*", "-> *", "ERROR ")) and not line.startswith("* ")


def test_rooms_and_private_messages_over_websocket(
    processes: Processes, pages: Callable[[Server], Page]
) -> None:
    """
    A page (sockserve.v2.json) is in several rooms at once: /join keeps its
    other rooms, events name their room, /say ROOM says a line in one of
    them, a plain line goes to the room it joined last, /msg reaches a line
    client and back, /rooms and /who ROOM answer as JSON, and /part ROOM
    leaves one room.
    """
    server = processes.server("--web", "0", listeners=2)
    page = pages(server)
    assert (page.name, page.room, page.others) == ("guest1", "default", 0)
    tcp = TcpMember(processes, server)
    lab = TcpMember(processes, server)
    assert page.eventsUntil(lambda event: event.get("name") == lab.name) == [
        {"type": "joined", "room": "default", "name": tcp.name},
        {"type": "joined", "room": "default", "name": lab.name},
    ]
    lab.join("lab")
    assert page.event() == {"type": "left", "room": "default", "name": lab.name}
    assert page.ask("/join lab", "entered") == {
        "type": "entered",
        "room": "lab",
        "others": 1,
    }
    assert lab.lineUntil(lambda line: "joined" in line) == "* guest1 joined"
    assert page.ask("/nick page", "name") == {"type": "name", "name": "page"}
    page.name = "page"
    # Renamed in both its rooms.
    assert lab.line() == "* guest1 is now known as page"
    assert tcp.linesUntil(lambda line: "known as" in line) == [
        f"* {lab.name} joined",
        f"* {lab.name} left",
        "* guest1 is now known as page",
    ]

    tcp.say("in the default room")
    assert page.event() == {
        "type": "message",
        "room": "default",
        "from": tcp.name,
        "text": "in the default room",
    }
    lab.say("in the lab")
    assert page.event() == {
        "type": "message",
        "room": "lab",
        "from": lab.name,
        "text": "in the lab",
    }
    page.send("/say default to the default room")
    assert tcp.line() == "<page> to the default room"
    page.send("a plain line")
    page.send("/say #lab to the lab")
    assert [lab.line(), lab.line()] == ["<page> a plain line", "<page> to the lab"]

    assert page.ask("/msg guest2 psst", "sent") == {
        "type": "sent",
        "to": "guest2",
        "text": "psst",
    }
    assert tcp.line() == "*page* psst"
    assert tcp.ask("/msg PAGE hi page", isPrivate) == "-> *page* hi page"
    assert page.event() == {"type": "private", "from": "guest2", "text": "hi page"}
    assert page.ask("/msg nobody x", "sent") == {
        "type": "error",
        "text": "nobody here is called nobody",
        "kind": "nobody",
        "subject": "nobody",
    }

    assert page.ask("/rooms", "rooms") == {
        "type": "rooms",
        "rooms": [
            {"name": "default", "members": 2},
            {"name": "lab", "members": 2},
        ],
        "total": 2,
    }
    assert page.ask("/who lab", "members") == {
        "type": "members",
        "room": "lab",
        "names": [lab.name, "page"],
        "total": 2,
    }
    assert page.ask("/part lab", "parted") == {"type": "parted", "room": "lab"}
    assert lab.line() == "* page left"
    assert page.ask("/say lab x", "message") == {
        "type": "error",
        "text": "you are not in #lab",
        "kind": "not-in-room",
        "subject": "lab",
    }
    # The line client in the lab saw nothing of the default room, and the
    # one in the default room nothing of the lab.
    assert whoLines(lab) == [here(lab.name)]
    assert whoLines(tcp) == [here(tcp.name, "page")]


# Three nodes on a bus


def busNode(
    processes: Processes, bus: str, *options: str, listeners: int = 1
) -> Server:
    """
    Start a chat node on C{bus}, and wait until it joined it.
    """
    server = processes.server("--bus", bus, *options, listeners=listeners)
    server.output.waitForText(b"Joined the bus")
    return server


def test_rooms_and_private_messages_across_three_nodes(
    processes: Processes, redis: RedisServer, pages: Callable[[Server], Page]
) -> None:
    """
    Three nodes, a line client on each and a page on the first: a room
    spans the nodes (its lines, its presence, /who and /rooms), lines stay
    in their room, and private messages cross nodes and front ends both
    ways.
    """
    nodes = [
        busNode(processes, redis.url, "--web", "0", listeners=2),
        busNode(processes, redis.url),
        busNode(processes, redis.url),
    ]
    t0 = TcpMember(processes, nodes[0])
    page = pages(nodes[0])
    t1, t2 = TcpMember(processes, nodes[1]), TcpMember(processes, nodes[2])
    names = [t0.name, page.name, t1.name, t2.name]
    assert len(set(names)) == 4, names
    # Each welcome counts the room on every node.
    assert [t0.others, page.others, t1.others, t2.others] == [0, 1, 2, 3]
    assert all(re.fullmatch(r"guest[0-9]+", name) for name in names), names
    t0.lineUntil(f"* {t2.name} joined".__eq__)
    assert t1.join("lab") == "* you are now in #lab; nobody else here"
    assert t2.join("lab") == "* you are now in #lab; 1 other here"
    assert page.ask("/join lab", "entered") == {
        "type": "entered",
        "room": "lab",
        "others": 2,
    }
    t1.lineUntil(f"* {page.name} joined".__eq__)
    t2.lineUntil(f"* {page.name} joined".__eq__)

    t0.say("said in the default room")
    assert page.eventOf("message") == {
        "type": "message",
        "room": "default",
        "from": t0.name,
        "text": "said in the default room",
    }
    t1.say("said in the lab")
    assert t2.lineUntil(lambda line: line.startswith("<")) == (
        f"<{t1.name}> said in the lab"
    )
    assert page.eventOf("message") == {
        "type": "message",
        "room": "lab",
        "from": t1.name,
        "text": "said in the lab",
    }
    page.send("/say lab from the page")
    for member in (t1, t2):
        assert member.lineUntil(lambda line: line.startswith("<")) == (
            f"<{page.name}> from the page"
        )
    assert rooms(t2) == "* 2 rooms: #default (2), #lab (3)"
    assert who(t2) == here(t1.name, t2.name, page.name)
    # They left the default room: t0's node heard it from theirs.
    departures = [f"* {t1.name} left", f"* {t2.name} left"]
    seen = t0.linesUntil(departures.__contains__)
    rest = [line for line in departures if line not in seen]
    seen += t0.linesUntil(rest.__contains__)
    assert sorted(seen) == sorted(departures)
    assert whoLines(t0) == [here(t0.name, page.name)]

    assert t2.ask(f"/msg {t0.name} across nodes", isPrivate) == (
        f"-> *{t0.name}* across nodes"
    )
    assert t0.lineUntil(isPrivate) == f"*{t2.name}* across nodes"
    assert page.ask(f"/msg {t1.name} from the page", "sent") == {
        "type": "sent",
        "to": t1.name,
        "text": "from the page",
    }
    assert t1.lineUntil(isPrivate) == f"*{page.name}* from the page"
    assert t1.ask(f"/msg {page.name.upper()} to the page", isPrivate) == (
        f"-> *{page.name}* to the page"
    )
    assert page.eventOf("private") == {
        "type": "private",
        "from": t1.name,
        "text": "to the page",
    }
    assert t1.ask("/msg nobody hi", isAnswer) == "ERROR nobody here is called nobody"

    t1.say("/part")
    assert t1.lineUntil(isAnswer) == "* you are now in #default; 2 others here"
    assert t2.lineUntil(lambda line: "left" in line) == f"* {t1.name} left"
    # Its going is told in the lab, its coming in the default room (the
    # page is in both; the two rooms' news may come in either order).
    moves = [
        {"type": "left", "room": "lab", "name": t1.name},
        {"type": "joined", "room": "default", "name": t1.name},
    ]
    events = page.eventsUntil(moves.__contains__)
    others = [move for move in moves if move not in events]
    events += page.eventsUntil(others.__contains__)
    assert sorted(map(str, events)) == sorted(map(str, moves)), events
    # Nothing of the lab reached t0, nothing of the default room t2; each
    # private message reached its person alone.
    assert t0.linesUntil(f"* {t1.name} joined".__eq__) == [f"* {t1.name} joined"]
    assert whoLines(t0) == [here(t0.name, t1.name, page.name)]
    assert whoLines(t2) == [here(t2.name, page.name)]


def raceLines(members: Sequence[TcpMember], lines: Sequence[str]) -> None:
    """
    Each of C{members} sends its line of C{lines} at the same moment (one
    thread each, released together).
    """
    barrier = threading.Barrier(len(members), timeout=WAIT)
    failures: list[BaseException] = []

    def send(member: TcpMember, line: str) -> None:
        try:
            barrier.wait()
            member.send(line.encode("utf-8"))
        except BaseException as error:  # reported below
            failures.append(error)

    threads = [
        threading.Thread(target=send, args=pair, daemon=True)
        for pair in zip(members, lines, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    assert not failures, failures
    assert not any(thread.is_alive() for thread in threads)


def test_one_name_at_once_across_nodes_and_rooms(
    processes: Processes, redis: RedisServer
) -> None:
    """
    Six members on three nodes, each going to another room and asking for
    one name (in look-alike spellings) at the same moment: exactly one gets
    it, every other is told whose name it looks like; three rounds. A
    newcomer on any node cannot take one of the names then, and each
    member is in its room once, under its own name.
    """
    nodes = [busNode(processes, redis.url) for _ in range(3)]
    members = [TcpMember(processes, nodes[n % 3]) for n in range(6)]
    winners = []
    for index, variants in enumerate(
        [
            ["same", "SAME", "sarne", "Same-", "s_ame", "sAme"],
            ["will", "W1LL", "vvill", "wiII", "wi|l", "Will"],
            ["olga", "0lga", "OLGA", "o-lga", "01ga", "olga_"],
        ]
    ):
        places = [f"r{index}{n % 2}" for n in range(6)]
        raceLines(
            members,
            [
                f"/join {room}\r\n/nick {wanted}\r\n"
                for room, wanted in zip(places, variants, strict=True)
            ],
        )
        answers = []
        for member, room in zip(members, places, strict=True):
            entered = member.lineUntil(isAnswer)
            assert entered.startswith(f"* you are now in #{room};"), entered
            answers.append(
                member.lineUntil(
                    lambda line: line.startswith(("* you are now known", "ERROR "))
                )
            )
        won = [n for n, answer in enumerate(answers) if answer.startswith("* you")]
        assert len(won) == 1, answers
        [winner] = won
        name = variants[winner]
        assert answers[winner] == f"* you are now known as {name}"
        for n, answer in enumerate(answers):
            if n == winner:
                continue
            wanted = variants[n]
            expected = f"ERROR the name {wanted} is taken"
            if wanted.casefold() != name.casefold():
                expected += f": it looks too much like {name}"
            assert answer == expected, answers
        members[winner].name = name
        winners.append(name)
    # A winner that won again since holds its latest name only: the names
    # held are the members' own, each asked for by a newcomer on a node.
    assert {member.name for member in members} >= {winners[-1]}
    newcomers = [TcpMember(processes, server) for server in nodes]
    for n, member in enumerate(members):
        newcomer = newcomers[n % len(newcomers)]
        assert newcomer.ask(f"/nick {member.name}", isAnswer) == (
            f"ERROR the name {member.name} is taken"
        )
    for member in members:
        answer = who(member)
        listed = answer.split(": ", 1)[1].split(", ")
        assert listed.count(member.name) == 1, (member.name, answer)
        assert len(set(listed)) == len(listed), answer


def test_room_capacity_across_nodes(processes: Processes, redis: RedisServer) -> None:
    """
    --max-clients caps each room across the nodes: with 3, five members of
    two nodes, in three rooms, asking to join one room at the same moment,
    three get in and two are told it is full; those two stay in the rooms
    they were in (their /who there lists them), and the full room counts
    three.
    """
    nodes = [busNode(processes, redis.url, "--max-clients", "3") for _ in range(2)]
    a1, a2 = TcpMember(processes, nodes[0]), TcpMember(processes, nodes[0])
    b1 = TcpMember(processes, nodes[1])
    late = processes.connect(("127.0.0.1", nodes[1].port))
    assert receiveToEOF(late) == (
        b"ERROR the server is full (3 clients); try again later\r\n"
    )
    a1.join("r1")
    a2.join("r1")
    b1.join("r2")
    b2, a3 = TcpMember(processes, nodes[1]), TcpMember(processes, nodes[0])
    # Every node knows who is where before the race.
    b2.lineUntil(f"* {a3.name} joined".__eq__)
    racers = [a1, a2, b1, b2, a3]
    before = {a1.name: "r1", a2.name: "r1", b1.name: "r2"}
    before |= {b2.name: "default", a3.name: "default"}
    raceLines(racers, ["/join lab\r\n"] * len(racers))
    read = {m.name: m.linesUntil(isAnswer) for m in racers}
    answers = {name: lines[-1] for name, lines in read.items()}
    inside = [m for m in racers if answers[m.name].startswith("* you are now in #lab")]
    outside = [m for m in racers if m not in inside]
    assert len(inside) == 3, answers
    for member in outside:
        assert answers[member.name] == "ERROR the room #lab is full (3 members)"
    for member in outside:
        room = before[member.name]
        stayed = [m.name for m in outside if before[m.name] == room]
        gone = {f"* {m.name} left" for m in inside if before[m.name] == room}
        gone -= set(read[member.name])
        while gone:
            gone.discard(member.lineUntil(gone.__contains__))
        assert who(member) == here(*stayed), (member.name, room, answers)
        assert "#lab (3)" in rooms(member), member.name


@pytest.mark.parametrize("bus", [True, False], ids=["two nodes", "one node"])
def test_a_flood_in_one_room_does_not_delay_another(
    processes: Processes, redis: RedisServer, bus: bool
) -> None:
    """
    Two nodes of a bus (or one server): in #flood, a client floods on one
    node while a fast and a slow reader read it on the other; in #talk, a
    typist on the first node and a member on the second who answers each
    of its lines. The typist's round trips (their median) stay under a second while the
    flood runs; the flood is paced to its slow reader, not dropped: it
    goes on meanwhile, and both readers get every flood line, in order,
    and stay.
    """
    if bus:
        nodes = [busNode(processes, redis.url) for _ in range(2)]
    else:
        nodes = [processes.server()] * 2
    floodMember = TcpMember(processes, nodes[0])
    fastMember = TcpMember(processes, nodes[1])
    slowMember = TcpMember(processes, nodes[1], receiveBuffer=16384)
    typist = TcpMember(processes, nodes[0])
    answerer = TcpMember(processes, nodes[1])
    for member in (floodMember, fastMember, slowMember):
        member.join("flood")
    typist.join("talk")
    answerer.join("talk")
    typist.lineUntil(f"* {answerer.name} joined".__eq__)
    answering = Answerer(answerer, typist.name)
    fast = Reader(fastMember.sock)
    slow = Reader(slowMember.sock, SLOW_READ, 0.25)
    flooder = Flooder(floodMember.sock)
    for thread in (answering, fast, slow, flooder):
        thread.start()
    pace = threading.Event()
    trips = []
    try:
        # The flood is under way: the fast reader on the other node has
        # some of it.
        deadline = time.monotonic() + WAIT
        while fast.flood < 1000 and time.monotonic() < deadline:
            pace.wait(0.05)
        assert fast.flood >= 1000, "the flood did not start"
        writtenBefore = flooder.written
        for n in range(20):
            started = time.monotonic()
            typist.say(f"ping {n}")
            assert typist.lineUntil(lambda line: line.startswith("<")) == (
                f"<{answerer.name}> pong {n}"
            )
            trips.append(time.monotonic() - started)
            pace.wait(0.1)
        writtenThen, slowThen = flooder.written, slow.received
        flooder.stopped.set()
        flooder.join(WAIT)
        written = flooder.written
        waitWhileProgressing(
            lambda: (
                fast.closed
                or slow.closed
                or (fast.flood >= written and slow.flood >= written)
            ),
            lambda: (fast.flood, slow.flood),
        )
    finally:
        for thread in (answering, fast, slow, flooder):
            thread.stopped.set()
            thread.join(WAIT)
    # The round trips' figures under a flood are bench/crossflood.py's; here,
    # only that the typist is answered all along, most often at once: one
    # trip held up by the shared machine fails nothing, a room stuck behind
    # the flood fails the median.
    assert sorted(trips)[len(trips) // 2] < 1.0, [round(trip, 3) for trip in trips]
    assert writtenThen > writtenBefore, "the flood stopped while the typist typed"
    # Paced to the slow reader: the flooder got at most what the buffers and
    # the bus hold ahead of what that reader took (an unpaced flood sends
    # hundreds of MiB on loopback meanwhile).
    assert writtenThen * FLOOD_LINE < slowThen + AHEAD, (writtenThen, slowThen)
    for name, reader in (("fast", fast), ("slow", slow)):
        assert not reader.closed, f"the {name} reader was dropped"
        assert (reader.flood, reader.floodOutOfOrder) == (written, 0), name
        for notice in reader.notices:
            assert "missing" not in notice, (name, notice)
    for notice in flooder.notices:
        assert "did not reach" not in notice, notice
    assert answering.error is None, answering.error


class Answerer(threading.Thread):
    """
    A member who answers each C{ping N} of C{typist} with C{pong N}, until
    told to stop (or for a minute at most).
    """

    def __init__(self, member: TcpMember, typist: str) -> None:
        super().__init__(daemon=True)
        self.member = member
        self.typist = typist
        self.stopped = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        prefix = f"<{self.typist}> ping "
        deadline = time.monotonic() + 60
        try:
            while not self.stopped.is_set() and time.monotonic() < deadline:
                try:
                    line = self.member.line(0.2)
                except AssertionError as error:
                    if "no line within" in str(error):
                        continue
                    raise
                if line.startswith(prefix):
                    self.member.say(f"pong {line[len(prefix) :]}")
        except BaseException as error:  # reported by the test
            self.error = error


def test_history_is_per_room_across_nodes(
    processes: Processes, redis: RedisServer
) -> None:
    """
    With --history, a member arriving on another node is shown the default
    room's last lines, and on joining another room that room's, read from
    the bus: each room's own lines, never another room's, and never a
    private message.
    """
    first = busNode(processes, redis.url, "--history", "5")
    second = busNode(processes, redis.url, "--history", "5")
    speaker, other = TcpMember(processes, first), TcpMember(processes, first)
    witness = TcpMember(processes, second)
    other.say("said in the default room")
    witness.lineUntil(f"<{other.name}> said in the default room".__eq__)
    speaker.join("lab")
    witness.join("lab")
    speaker.say("said in the lab")
    assert speaker.ask(f"/msg {witness.name} private", isPrivate) == (
        f"-> *{witness.name}* private"
    )
    speaker.say("said in the lab again")
    witness.lineUntil(f"<{speaker.name}> said in the lab again".__eq__)
    # Nobody is in the lab on the second node any more: it is read afresh
    # from the bus.
    witness.say("/quit")
    assert receiveToEOF(witness.sock).endswith(b"* bye\r\n")
    newcomer = TcpMember(processes, second)
    assert newcomer.linesUntil("* (end of history)".__eq__) == [
        "* the last 1 line said here:",
        f"<{other.name}> said in the default room",
        "* (end of history)",
    ]
    assert newcomer.join("lab") == "* you are now in #lab; 1 other here"
    assert newcomer.linesUntil("* (end of history)".__eq__) == [
        "* the last 2 lines said here:",
        f"<{speaker.name}> said in the lab",
        f"<{speaker.name}> said in the lab again",
        "* (end of history)",
    ]


def test_a_killed_node_leaves_every_room(
    processes: Processes, redis: RedisServer
) -> None:
    """
    A node killed with SIGKILL: within --bus-node-timeout its members leave
    every room they were in, told in each room to its members on the other
    node, and their names are free again.
    """
    timeout = ("--bus-node-timeout", "1")
    doomed = busNode(processes, redis.url, *timeout)
    survivor = busNode(processes, redis.url, *timeout)
    inDefault, inLab = TcpMember(processes, doomed), TcpMember(processes, doomed)
    inLab.join("lab")
    watcher, labWatcher = TcpMember(processes, survivor), TcpMember(processes, survivor)
    assert labWatcher.join("lab") == "* you are now in #lab; 1 other here"
    assert rooms(watcher) == "* 2 rooms: #default (2), #lab (2)"
    doomed.process.kill()
    doomed.process.wait(WAIT)
    assert watcher.linesUntil(f"* {inDefault.name} left".__eq__) == [
        f"* {inDefault.name} left"
    ]
    assert labWatcher.linesUntil(f"* {inLab.name} left".__eq__) == [
        f"* {inLab.name} left"
    ]
    assert whoLines(watcher) == [here(watcher.name)]
    assert whoLines(labWatcher) == [here(labWatcher.name)]
    assert rooms(watcher) == "* 2 rooms: #default (1), #lab (1)"
    labWatcher.rename(inLab.name)


def test_rooms_across_a_redis_pause(processes: Processes, redis: RedisServer) -> None:
    """
    While Redis is paused, each node's members go on talking in their
    rooms; once it is back, the lines said meanwhile reach the other
    node's members of their room, once, in order, and nobody else.
    """
    nodes = [busNode(processes, redis.url) for _ in range(2)]
    labs = [TcpMember(processes, server) for server in nodes]
    halls = [TcpMember(processes, server) for server in nodes]
    for member in labs:
        member.join("lab")
    labs[0].lineUntil(f"* {labs[1].name} joined".__eq__)
    halls[0].lineUntil(f"* {halls[1].name} joined".__eq__)
    sent = {
        member.name: [f"{member.name} in #{member.room} {n}" for n in range(5)]
        for member in (labs[0], halls[0])
    }
    redis.pause()
    try:
        for member in (*labs, *halls):
            member.lineUntil(lambda line: line.startswith("* lost contact"))
        for member in (labs[0], halls[0]):
            send(member, sent[member.name])
    finally:
        redis.resume()
    for member in (labs[1], halls[1]):
        member.lineUntil(lambda line: line.startswith("* back in contact"))
    assert received(labs[1], [labs[0]]) == {labs[0].name: [*sent[labs[0].name], DONE]}
    assert received(halls[1], [halls[0]]) == {
        halls[0].name: [*sent[halls[0].name], DONE]
    }
    assert whoLines(labs[1]) == [here(labs[0].name, labs[1].name)]
    assert whoLines(halls[1]) == [here(halls[0].name, halls[1].name)]


def test_a_page_in_two_rooms_across_nodes(
    processes: Processes, redis: RedisServer, pages: Callable[[Server], Page]
) -> None:
    """
    A page in two rooms on one node, a line client in each of them on
    another: its new name is told once in each room, a private message
    finds it under its new name only, and when it closes it leaves both
    rooms.
    """
    nodes = [
        busNode(processes, redis.url, "--web", "0", listeners=2),
        busNode(processes, redis.url),
    ]
    page = pages(nodes[0])
    hall, lab = TcpMember(processes, nodes[1]), TcpMember(processes, nodes[1])
    lab.join("lab")
    assert page.ask("/join lab", "entered")["others"] == 1
    lab.lineUntil(f"* {page.name} joined".__eq__)
    old = page.name
    assert page.ask("/nick pg", "name") == {"type": "name", "name": "pg"}
    for member in (hall, lab):
        member.lineUntil(f"* {old} is now known as pg".__eq__)
    assert lab.ask("/msg PG hi", isPrivate) == "-> *pg* hi"
    assert page.eventOf("private") == {
        "type": "private",
        "from": lab.name,
        "text": "hi",
    }
    assert lab.ask(f"/msg {old} hi", isAnswer) == f"ERROR nobody here is called {old}"
    page.connection.close()
    for member in (hall, lab):
        assert member.linesUntil("* pg left".__eq__) == ["* pg left"]
        assert whoLines(member) == [here(member.name)]
    assert rooms(lab) == "* 2 rooms: #default (1), #lab (1)"


def test_a_private_message_elsewhere_does_not_hold_its_sender_while_the_bus_is_away(
    processes: Processes, redis: RedisServer
) -> None:
    """
    While the bus is away, everything a member asks for is decided on its
    node at once (/join, /rooms, /nick, /who) and its lines reach the
    members of its node at once ("local delivery never waits for Redis"):
    a private message to someone on another node must not hold up the
    sender's next lines either; it is answered (sent, kept for later, or
    refused) without making the sender's room wait for the bus.
    """
    nodes = [busNode(processes, redis.url) for _ in range(2)]
    sender, neighbour = TcpMember(processes, nodes[0]), TcpMember(processes, nodes[0])
    faraway = TcpMember(processes, nodes[1])
    sender.lineUntil(f"* {faraway.name} joined".__eq__)
    redis.pause()
    try:
        for member in (sender, neighbour, faraway):
            member.lineUntil(lambda line: line.startswith("* lost contact"))
        sender.say("/join lab")
        assert sender.lineUntil(isAnswer, timeout=2).startswith("* you are now in #lab")
        sender.say("/part")
        assert sender.lineUntil(isAnswer, timeout=2).startswith("* you are now in")
        started = time.monotonic()
        sender.say(f"/msg {faraway.name} are you there?")
        sender.say("meanwhile, here")
        assert neighbour.lineUntil(lambda line: line.startswith("<"), timeout=5) == (
            f"<{sender.name}> meanwhile, here"
        ), time.monotonic() - started
    finally:
        redis.resume()

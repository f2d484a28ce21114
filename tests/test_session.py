"""
The chat session on its own: no transport, any wire, a service whose people
and rooms may answer at once (this process alone) or later (as a bus does).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from zope.interface import implementer

from sockserve.chat.commands import COMMANDS, helpText
from sockserve.chat.events import Banner, Topic
from sockserve.chat.linewire import LINE_WIRE
from sockserve.chat.names import NameRejected
from sockserve.chat.people import IChatMember, IPeople, LocalPeople
from sockserve.chat.policy import ChatPolicy
from sockserve.chat.room import ChatRoom
from sockserve.chat.service import ChatService, LocalRooms, RoomRules
from sockserve.chat.session import ChatSession, SessionState
from tests.conftest import ErrorCollector


class FakeConnection:
    """A ChatConnection that records what the session does to it."""

    def __init__(self, peer: str) -> None:
        self.peer = peer
        self.peerHost = peer.rpartition(":")[0] or None
        self.written: list[bytes] = []
        self.paused = False
        self.pauses = 0
        self.closed = False
        self.aborted = False
        self.held = 0
        self.logged: list[str] = []
        self.names: list[str] = []
        self.secure = False

    def unsent(self) -> int:
        return self.held

    def logLimited(self, kind: str, format: str, **fields: object) -> None:
        self.logged.append(kind)

    def named(self, name: str) -> None:
        self.names.append(name)

    def send(self, data: bytes) -> None:
        self.written.append(data)

    def pauseInput(self) -> None:
        self.paused = True
        self.pauses += 1

    def resumeInput(self) -> None:
        self.paused = False

    def close(self) -> None:
        self.closed = True

    def refuse(self, reason: str, kind: str) -> None:
        self.logged.append(f"refused: {kind}")
        self.written.append(b"ERROR " + reason.encode() + b"\r\n")
        self.close()

    def abort(self) -> None:
        self.aborted = True

    def take(self) -> bytes:
        data = b"".join(self.written)
        self.written.clear()
        return data


class TagWire:
    """A wire of its own, counting how often it formats."""

    def __init__(self) -> None:
        self.calls = 0

    def _tag(self, *parts: object) -> bytes:
        self.calls += 1
        return repr(parts).encode() + b";"

    def message(self, room: str, sender: str, lines: Sequence[bytes]) -> bytes:
        return self._tag("message", room, sender, tuple(lines))

    def private(self, sender: str, lines: Sequence[bytes]) -> bytes:
        return self._tag("private", sender, tuple(lines))

    def privateSent(self, recipient: str, lines: Sequence[bytes]) -> bytes:
        return self._tag("sent", recipient, tuple(lines))

    def joined(self, room: str, name: str) -> bytes:
        return self._tag("joined", room, name)

    def left(self, room: str, name: str, quit: bool, reason: str = "") -> bytes:
        return self._tag("left", room, name)

    def renamed(self, room: str, oldName: str, newName: str) -> bytes:
        return self._tag("renamed", room, oldName, newName)

    def quietly(self, room: str, joined: Sequence[str], left: Sequence[str]) -> bytes:
        return self._tag("quietly", room, tuple(joined), tuple(left))

    def notice(self, text: str) -> bytes:
        return self._tag("notice", text)

    def error(self, text: str, kind: str, subject: str) -> bytes:
        return self._tag("error", text)

    def banner(self, text: str) -> bytes:
        return self._tag("banner", text)

    def welcome(
        self, name: str, peer: str, room: str, others: int, topic: Topic | None
    ) -> bytes:
        return self._tag("welcome", name, peer, room, others)

    def entered(
        self,
        room: str,
        others: int,
        names: Sequence[str],
        topic: Topic | None,
        operators: Collection[str] = (),
    ) -> bytes:
        return self._tag("entered", room, others)

    def topic(self, room: str, topic: Topic | None, changed: bool) -> bytes:
        return self._tag("topic", room, topic, changed)

    def parted(self, room: str) -> bytes:
        return self._tag("parted", room)

    def members(self, room: str, names: Sequence[str], total: int) -> bytes:
        return self._tag("members", room, tuple(names), total)

    def rooms(self, rooms: Sequence[tuple[str, int]], total: int) -> bytes:
        return self._tag("rooms", tuple(rooms), total)

    def nameChanged(self, name: str, oldName: str) -> bytes:
        return self._tag("nameChanged", name)

    def history(
        self, room: str, lines: Sequence[tuple[str, bytes]], omitted: int
    ) -> bytes:
        return self._tag("history", room, tuple(lines), omitted)


@implementer(IPeople)
class LaterPeople(LocalPeople):
    """People whose names are given and changed only when the test says so,
    as a bus's are."""

    def __init__(self) -> None:
        super().__init__()
        self.answers: list[tuple[Deferred[Any], Any]] = []

    def _later(self, decided: Deferred[Any]) -> Deferred[Any]:
        later: Deferred[Any] = Deferred()
        self.answers.append((later, decided))
        return later

    def claim(self, person: IChatMember, name: str | None) -> Deferred[str]:
        return self._later(super().claim(person, name))

    def rename(self, person: IChatMember, oldName: str, newName: str) -> Deferred[None]:
        return self._later(super().rename(person, oldName, newName))

    def answer(self) -> None:
        """Answer the oldest request as this process decided it."""
        later, decided = self.answers.pop(0)
        decided.chainDeferred(later)

    def fail(self, failure: Failure) -> None:
        """Fail the oldest request (the bus broke)."""
        later, decided = self.answers.pop(0)
        decided.addErrback(lambda ignored: None)
        later.errback(failure)


def chat(
    people: IPeople | None = None, clock: Clock | None = None, **changes: Any
) -> ChatService:
    settings: dict[str, Any] = {"capacity": 10}
    settings.update(changes)
    return ChatService(RoomRules(**settings), clock or Clock(), people)


def session(
    service: ChatService,
    peer: str = "127.0.0.1:1",
    wire: Any = LINE_WIRE,
    multiRoom: bool = False,
    **policy: Any,
) -> tuple[ChatSession, FakeConnection]:
    connection = FakeConnection(peer)
    settings: dict[str, Any] = {"clock": service.clock or Clock()}
    settings.update(policy)
    member = ChatSession(
        service, connection, wire, Banner("Hi"), ChatPolicy(**settings), multiRoom
    )
    member.start()
    return member, connection


def test_a_session_speaks_its_own_wire() -> None:
    """Everything a member receives is formatted by its own wire: greeting,
    lines, presence, notices and errors."""
    service = chat()
    wire = TagWire()
    _, tagged = session(service, "127.0.0.1:1", wire)
    bob, bobOut = session(service, "127.0.0.1:2")
    bob.linesReceived(b"hello\n/nope\n")
    assert tagged.take() == (
        b"('banner', 'Hi');('welcome', 'guest1', '127.0.0.1:1', 'default', 0);"
        b"('joined', 'default', 'guest2');"
        b"('message', 'default', 'guest2', (b'hello',));"
    )
    assert bobOut.take() == (
        b"Hi\r\n* you are guest2 (127.0.0.1:2) in #default; 1 other here\r\n"
        b"ERROR unknown command /nope (try /help)\r\n"
    )


def test_each_event_is_formatted_once_per_wire() -> None:
    """A line to a hundred members of one wire is formatted once."""
    service = chat(capacity=100)
    wire = TagWire()
    members = [session(service, f"127.0.0.1:{n}", wire) for n in range(100)]
    speaker, _ = members[0]
    before = wire.calls
    speaker.linesReceived(b"to all\n")
    assert wire.calls == before + 1


def test_input_waits_for_the_service_to_admit() -> None:
    """While the service has not given a name, input is held and the
    connection paused; once admitted, the lines go out in order."""
    people = LaterPeople()
    service = chat(people)
    _, listener = session(service)
    people.answer()
    alice, aliceOut = session(service, "127.0.0.1:2")
    assert aliceOut.paused
    assert aliceOut.take() == b""
    alice.linesReceived(b"early\n")
    alice.linesReceived(b"bird\n")
    listener.take()
    people.answer()
    assert not aliceOut.paused
    assert aliceOut.take() == (
        b"Hi\r\n* you are guest2 (127.0.0.1:2) in #default; 1 other here\r\n"
    )
    assert listener.take() == (
        b"* guest2 joined\r\n<guest2> early\r\n<guest2> bird\r\n"
    )


def test_lines_after_a_rename_wait_for_it() -> None:
    """Lines after /nick go out under the new name, even when the service
    answers the rename later; input is paused meanwhile."""
    people = LaterPeople()
    service = chat(people)
    alice, aliceOut = session(service)
    people.answer()
    _, bobOut = session(service, "127.0.0.1:2")
    people.answer()
    aliceOut.take(), bobOut.take()
    alice.linesReceived(b"before\n/nick al\nafter\n")
    alice.linesReceived(b"later\n")
    assert aliceOut.paused
    assert bobOut.take() == b"<guest1> before\r\n"
    people.answer()
    assert not aliceOut.paused
    assert aliceOut.take() == b"* you are now known as al\r\n"
    assert bobOut.take() == (
        b"* guest1 is now known as al\r\n<al> after\r\n<al> later\r\n"
    )


def test_half_close_while_waiting_quits_after_the_held_lines() -> None:
    """A client that sends its last line and half-closes while the service
    is still answering has that line relayed, then leaves."""
    people = LaterPeople()
    service = chat(people)
    _, bobOut = session(service)
    people.answer()
    alice, aliceOut = session(service, "127.0.0.1:2")
    alice.inputEnded(b"last words")
    assert not aliceOut.closed
    bobOut.take()
    people.answer()
    assert bobOut.take() == (
        b"* guest2 joined\r\n<guest2> last words\r\n* guest2 left\r\n"
    )
    assert aliceOut.closed


def test_a_client_gone_before_admission_never_stays() -> None:
    """If the connection goes while the service considers it, the member
    leaves as soon as it is admitted, its name is free, and it is sent
    nothing."""
    people = LaterPeople()
    service = chat(people)
    alice, aliceOut = session(service)
    alice.connectionLost()
    people.answer()
    room = service.room("default")
    assert room is None or room.population() == 0
    assert people.population == 0
    assert aliceOut.take() == b""
    assert alice.state is SessionState.GONE


def test_a_service_that_fails_admission(logged_errors: ErrorCollector) -> None:
    """An admission that fails for no known reason is logged, and the client
    is told the chat is unavailable."""
    people = LaterPeople()
    service = chat(people)
    _, aliceOut = session(service)
    people.fail(Failure(ConnectionError("bus down")))
    assert aliceOut.take() == b"ERROR the chat is unavailable; try again later\r\n"
    assert aliceOut.logged == ["refused: unavailable"]
    assert len(logged_errors.take()) == 1


def test_a_full_default_room_refuses_the_newcomer() -> None:
    """A newcomer who cannot enter the default room is told the server is
    full, and its name is freed."""
    service = chat(capacity=1)
    session(service)
    _, out = session(service, "127.0.0.1:2")
    assert out.take() == b"ERROR the server is full (1 client); try again later\r\n"
    assert out.logged == ["refused: full"]
    assert service.people.population == 1


def test_output_is_bounded() -> None:
    """Output queued while the connection cannot take it is bounded: beyond
    maxPending the member is dropped (aborted) and leaves its rooms."""
    service = chat()
    speaker, _ = session(service)
    reader, readerOut = session(service, "127.0.0.1:2", maxPending=100)
    reader.pauseOutput()
    speaker.linesReceived(b"x" * 60 + b"\n")
    assert not readerOut.aborted
    speaker.linesReceived(b"y" * 60 + b"\n")
    assert readerOut.aborted
    assert readerOut.logged == ["slow readers"]
    room = service.room("default")
    assert room is not None
    assert room.population() == 1


def test_nothing_reaches_a_member_before_its_greeting() -> None:
    """What is said to a member while the service admits it waits behind
    its greeting."""
    people = LaterPeople()
    service = chat(people)
    speaker, _ = session(service)
    people.answer()
    late, lateOut = session(service, "127.0.0.1:2")
    speaker.linesReceived(b"not yet\n")
    people.answer()
    speaker.linesReceived(b"now\n")
    assert lateOut.take() == (
        b"Hi\r\n* you are guest2 (127.0.0.1:2) in #default; 1 other here\r\n"
        b"<guest1> now\r\n"
    )
    del late


def test_a_rename_the_service_fails_is_answered(
    logged_errors: ErrorCollector,
) -> None:
    """A rename that fails for no known reason is logged, and the member is
    told to try again; input goes on."""
    people = LaterPeople()
    service = chat(people)
    alice, aliceOut = session(service)
    people.answer()
    aliceOut.take()
    alice.linesReceived(b"/nick al\n/who\n")
    people.fail(Failure(ConnectionError("bus down")))
    assert aliceOut.take() == (
        b"ERROR your name could not be changed; try again later\r\n* 1 here: guest1\r\n"
    )
    assert len(logged_errors.take()) == 1


def test_a_member_dropped_mid_read_runs_no_more_commands() -> None:
    """A member dropped while its read is handled (its own line overflowed
    it) runs none of the commands after that line."""
    service = chat()
    alice, aliceOut = session(service, maxPending=60)
    aliceOut.take()
    alice.pauseOutput()
    alice.linesReceived(b"/help\n/rooms\n/nick later\n")
    assert aliceOut.aborted
    assert service.people.holderOf("later") is None


# Rooms


def test_a_line_client_moves_between_rooms() -> None:
    """/join takes a line client to a room (made if new), out of the one it
    was in; /part takes it back to the default room; each move is told to
    the rooms concerned only."""
    service = chat()
    alice, aliceOut = session(service)
    bob, bobOut = session(service, "127.0.0.1:2")
    aliceOut.take(), bobOut.take()
    alice.linesReceived(b"/join #Lab\nin lab\n")
    assert aliceOut.take() == b"* you are now in #Lab; nobody else here\r\n"
    assert bobOut.take() == b"* guest1 left\r\n"
    bob.linesReceived(b"/join lab\n")
    assert bobOut.take() == b"* you are now in #Lab; 1 other here\r\n"
    assert aliceOut.take() == b"* guest2 joined\r\n"
    alice.linesReceived(b"/join lab\n/part\n/part\n")
    assert aliceOut.take() == (
        b"ERROR you are in #Lab already\r\n"
        b"* you are now in #default; nobody else here\r\n"
        b"ERROR you are in #default, the default room, already\r\n"
    )
    assert bobOut.take() == b"* guest1 left\r\n"
    assert [room.name for room in alice.rooms] == ["default"]


def test_rooms_and_who() -> None:
    """/rooms lists the rooms with their populations; /who the current
    room, or a room of the member's."""
    service = chat()
    alice, aliceOut = session(service, multiRoom=True)
    session(service, "127.0.0.1:2")
    alice.linesReceived(b"/join lab\n")
    aliceOut.take()
    alice.linesReceived(b"/rooms\n/who\n/who default\n/who nope\n")
    assert aliceOut.take() == (
        b"* 2 rooms: #default (2), #lab (1)\r\n"
        b"* 1 here: guest1\r\n"
        b"* 2 here: guest1, guest2\r\n"
        b"ERROR you are not in #nope\r\n"
    )


def test_a_multi_room_member_stays_in_its_rooms() -> None:
    """A member that may be in several rooms keeps its rooms on /join, says
    lines in any of them with /say, and leaves one with /part ROOM."""
    service = chat()
    alice, aliceOut = session(service, multiRoom=True)
    bob, bobOut = session(service, "127.0.0.1:2")
    alice.linesReceived(b"/join lab\n")
    assert sorted(room.name for room in alice.rooms) == ["default", "lab"]
    aliceOut.take(), bobOut.take()
    alice.linesReceived(b"/say #default hello default\n/say nope x\n")
    assert bobOut.take() == b"<guest1> hello default\r\n"
    assert aliceOut.take() == b"ERROR you are not in #nope\r\n"
    alice.linesReceived(b"/part lab\nplain line\n")
    assert aliceOut.take() == b"* you left #lab\r\n"
    assert bobOut.take() == b"<guest1> plain line\r\n"
    assert service.room("lab") is None
    del bob


def test_a_full_room_leaves_one_where_one_was() -> None:
    """A room at capacity refuses whoever tries to join it, with one line;
    that member stays where it was."""
    service = chat(capacity=2)
    first, _ = session(service)
    first.linesReceived(b"/join lab\n")
    second, _ = session(service, "127.0.0.1:2")
    second.linesReceived(b"/join lab\n")
    third, thirdOut = session(service, "127.0.0.1:3")
    thirdOut.take()
    third.linesReceived(b"/join lab\n/who\n")
    assert thirdOut.take() == (
        b"ERROR the room #lab is full (2 members)\r\n* 1 here: guest3\r\n"
    )


def test_bad_and_forbidden_rooms() -> None:
    """A bad room name, a room outside --rooms, one room too many: one ERROR
    line each, and the member stays where it was."""
    service = chat(fixed=("default", "lab"), maxRooms=2)
    alice, aliceOut = session(service)
    aliceOut.take()
    alice.linesReceived(b"/join bad name\n/join games\n/join\n")
    assert aliceOut.take() == (
        b"ERROR a room name is 1 to 32 letters, digits and - _ . (a leading # "
        b"is ignored), not 'bad name'\r\n"
        b"ERROR there is no room #games here; the rooms are #default, #lab\r\n"
        b"ERROR join which room? /join ROOM\r\n"
    )
    other = chat(maxRooms=1)
    bob, bobOut = session(other)
    bob.linesReceived(b"/join lab\n")
    bobOut.take()
    bob.linesReceived(b"/join games\n/join default\n")
    assert bobOut.take() == (
        b"ERROR no more rooms can be made here (at most 1, besides the default "
        b"room); join one of them\r\n"
        b"* you are now in #default; nobody else here\r\n"
    )


# Private messages


def test_a_private_message() -> None:
    """/msg reaches one person, in whatever room, marked private and from
    whom; the sender sees it went through; an unknown name is one ERROR."""
    service = chat()
    alice, aliceOut = session(service)
    bob, bobOut = session(service, "127.0.0.1:2")
    carol, carolOut = session(service, "127.0.0.1:3")
    bob.linesReceived(b"/join lab\n")
    for out in (aliceOut, bobOut, carolOut):
        out.take()
    alice.linesReceived(b"/msg GUEST2 psst \x1b[2J\n/msg nobody hi\n/msg guest3\n")
    assert bobOut.take() == b"*guest1* psst \\x1b[2J\r\n"
    assert aliceOut.take() == (
        b"-> *guest2* psst \\x1b[2J\r\n"
        b"ERROR nobody here is called nobody\r\n"
        b"ERROR to whom, and what? /msg NAME TEXT\r\n"
    )
    assert carolOut.take() == b""
    del carol


# Commands


def test_help_lists_every_command_from_the_table() -> None:
    """/help is the command table, in aligned columns; the commands about
    accounts only where there are accounts, those of operators only to
    them."""
    text = helpText(accounts=True, operators=True)
    for command in COMMANDS:
        assert command.name in text
        assert command.summary in text
    assert "/login" not in helpText()
    assert "/kick" not in helpText(accounts=True)
    assert "//text" in text
    columns = {line.index(line.split()[-1]) for line in text.split("\n")}
    assert len({line.find("  ") >= 0 for line in text.split("\n")}) == 1
    assert columns


def test_renames_are_limited_and_names_checked() -> None:
    """A taken name, or one that looks like it, is refused with one line;
    taking one's own name tells nobody."""
    service = chat()
    alice, aliceOut = session(service)
    bob, bobOut = session(service, "127.0.0.1:2")
    alice.linesReceived(b"/nick alice\n")
    aliceOut.take(), bobOut.take()
    bob.linesReceived(b"/nick aIice\n/nick has space\n")
    assert bobOut.take() == (
        b"ERROR the name aIice is taken: it looks too much like alice\r\n"
        b"ERROR a name uses letters, digits and _ - [ ] { } ^ | and starts "
        b"with a letter, digit or _\r\n"
    )
    alice.linesReceived(b"/nick alice\n")
    assert aliceOut.take() == b"* you are now known as alice\r\n"
    assert bobOut.take() == b""


def test_a_renamed_member_is_told() -> None:
    """When the service gives a member another name (its own was taken on
    another node meanwhile), it goes by it and is told."""
    service = chat()
    alice, aliceOut = session(service)
    aliceOut.take()
    alice.renamed("guest99")
    assert alice.name == "guest99"
    assert aliceOut.take() == b"* you are now known as guest99\r\n"


def test_the_session_answers_what_its_service_refuses() -> None:
    """A name refused by the people registry is one ERROR line."""

    @implementer(IPeople)
    class Refusing(LocalPeople):
        def rename(
            self, person: IChatMember, oldName: str, newName: str
        ) -> Deferred[None]:
            return fail(NameRejected("names are frozen"))

    service = chat(Refusing())
    alice, aliceOut = session(service)
    aliceOut.take()
    alice.linesReceived(b"/nick al\n")
    assert aliceOut.take() == b"ERROR names are frozen\r\n"
    assert succeed(None).called
    assert isinstance(service.directory, LocalRooms)
    assert isinstance(alice.current, ChatRoom)


def test_a_member_in_no_room_is_told_so() -> None:
    """A multi-room member that left every room is told it is in none by
    /who, /topic and /me (with how to join one), and nothing is said."""
    service = chat()
    alice, aliceOut = session(service, multiRoom=True)
    alice.linesReceived(b"/part default\n")
    aliceOut.take()
    assert alice.rooms == []
    alice.linesReceived(b"/who\n/topic\n/me waves\n/who #default\n")
    assert aliceOut.take() == (
        b"ERROR you are in no room\r\n"
        b"ERROR you are in no room\r\n"
        b"ERROR you are in no room: /join one\r\n"
        b"ERROR you are not in #default\r\n"
    )

"""
The chat session on its own: no transport, any wire, any room.
"""

from __future__ import annotations

from collections.abc import Sequence

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from zope.interface import implementer

from sockserve.chat.events import Banner
from sockserve.chat.policy import ChatPolicy
from sockserve.chat.protocol import LINE_WIRE
from sockserve.chat.room import ChatRoom, IChatMember, IChatRoom
from sockserve.chat.session import ChatSession
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

    def unsent(self) -> int:
        return self.held

    def logLimited(self, kind: str, format: str, **fields: object) -> None:
        self.logged.append(kind)

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

    def message(self, sender: str, lines: Sequence[bytes]) -> bytes:
        return self._tag("message", sender, tuple(lines))

    def joined(self, name: str) -> bytes:
        return self._tag("joined", name)

    def left(self, name: str) -> bytes:
        return self._tag("left", name)

    def renamed(self, oldName: str, newName: str) -> bytes:
        return self._tag("renamed", oldName, newName)

    def notice(self, text: str) -> bytes:
        return self._tag("notice", text)

    def error(self, text: str) -> bytes:
        return self._tag("error", text)

    def banner(self, text: str) -> bytes:
        return self._tag("banner", text)

    def welcome(self, name: str, others: int) -> bytes:
        return self._tag("welcome", name, others)

    def members(self, names: Sequence[str], total: int) -> bytes:
        return self._tag("members", tuple(names), total)

    def nameChanged(self, name: str) -> bytes:
        return self._tag("nameChanged", name)

    def history(self, lines: Sequence[tuple[str, bytes]], omitted: int) -> bytes:
        return self._tag("history", tuple(lines), omitted)

    def quietly(self, joined: Sequence[str], left: Sequence[str]) -> bytes:
        return self._tag("quietly", tuple(joined), tuple(left))


@implementer(IChatRoom)
class LaterRoom(ChatRoom):
    """A room that answers admissions and renames only when told to, as a
    room shared with other processes does."""

    def __init__(self, capacity: int) -> None:
        super().__init__(capacity)
        self.answers: list[Deferred[str]] = []

    def join(
        self, member: IChatMember, preferredName: str, quietly: bool = False
    ) -> Deferred[str]:
        self.pendingJoin = (member, preferredName)
        later: Deferred[str] = Deferred()
        self.answers.append(later)
        return later

    def rename(self, member: IChatMember, newName: str) -> Deferred[str]:
        later: Deferred[str] = Deferred()
        self.answers.append(later)
        self.pendingRename = (member, newName)
        return later

    def answerJoin(self) -> None:
        member, name = self.pendingJoin
        super().join(member, name).chainDeferred(self.answers.pop(0))

    def answerRename(self) -> None:
        member, name = self.pendingRename
        super().rename(member, name).chainDeferred(self.answers.pop(0))


def session(
    room: IChatRoom,
    peer: str,
    wire: object = LINE_WIRE,
    maxPending: int = 1000,
    policy: ChatPolicy | None = None,
) -> tuple[ChatSession, FakeConnection]:
    connection = FakeConnection(peer)
    if policy is None:
        policy = ChatPolicy(Clock(), maxPending=maxPending)
    member = ChatSession(room, connection, wire, Banner("Hi"), policy)  # type: ignore[arg-type]
    member.start()
    return member, connection


def test_a_session_speaks_its_own_wire() -> None:
    """Everything a member receives is formatted by its session's wire: a
    second front end brings a wire, not a copy of the chat logic."""
    room = ChatRoom(capacity=10)
    wire = TagWire()
    alice, aliceOut = session(room, "a:1", wire)
    bob, bobOut = session(room, "b:2")
    assert aliceOut.take() == (
        b"('banner', 'Hi');('welcome', 'a:1', 0);('joined', 'b:2');"
    )
    bob.linesReceived(b"hello\n/nick bob\n")
    assert aliceOut.take() == (
        b"('message', 'b:2', (b'hello',));('renamed', 'b:2', 'bob');"
    )
    alice.linesReceived(b"/who\n")
    assert aliceOut.take() == b"('members', ('a:1', 'bob'), 2);"
    alice.linesReceived(b"/nick alice\n")
    assert aliceOut.take() == b"('nameChanged', 'alice');"
    assert bobOut.take() == (
        b"Hi\r\n* you are b:2; 1 other(s) here\r\n* you are now known as bob\r\n"
        b"* a:1 is now known as alice\r\n"
    )


def test_each_event_is_formatted_once_per_wire() -> None:
    """A broadcast to many members of one wire formats the event once."""
    room = ChatRoom(capacity=100)
    wire = TagWire()
    sender, _ = session(room, "s:1", wire)
    for index in range(20):
        session(room, f"r:{index}", wire)
    before = wire.calls
    sender.linesReceived(b"one\ntwo\n")
    assert wire.calls - before == 1


def test_input_waits_for_the_room_to_admit() -> None:
    """While the room has not answered the admission, input is held and the
    connection paused; once admitted, the lines go out in order."""
    room = LaterRoom(capacity=10)
    _, listener = session(room, "l")
    room.answerJoin()
    alice, aliceOut = session(room, "a:1")
    assert aliceOut.paused
    assert aliceOut.take() == b""
    alice.linesReceived(b"early\n")
    alice.linesReceived(b"bird\n")
    listener.take()
    room.answerJoin()
    assert not aliceOut.paused
    assert aliceOut.take() == b"Hi\r\n* you are a:1; 1 other(s) here\r\n"
    assert listener.take() == (b"* a:1 joined\r\n<a:1> early\r\n<a:1> bird\r\n")


def test_lines_after_a_rename_wait_for_it() -> None:
    """Lines after /nick go out under the new name, even when the room
    answers the rename later; input is paused meanwhile."""
    room = LaterRoom(capacity=10)
    alice, aliceOut = session(room, "a:1")
    room.answerJoin()
    _, bobOut = session(room, "b:2")
    room.answerJoin()
    aliceOut.take(), bobOut.take()
    alice.linesReceived(b"before\n/nick al\nafter\n")
    alice.linesReceived(b"later\n")
    assert aliceOut.paused
    assert bobOut.take() == b"<a:1> before\r\n"
    room.answerRename()
    assert not aliceOut.paused
    assert aliceOut.take() == b"* you are now known as al\r\n"
    assert bobOut.take() == (
        b"* a:1 is now known as al\r\n<al> after\r\n<al> later\r\n"
    )


def test_half_close_while_waiting_quits_after_the_held_lines() -> None:
    """A client that sends its last line and half-closes while the room is
    still answering has that line relayed, then leaves."""
    room = LaterRoom(capacity=10)
    _, bobOut = session(room, "b:2")
    room.answerJoin()
    alice, aliceOut = session(room, "a:1")
    alice.inputEnded(b"last words")
    assert not aliceOut.closed
    bobOut.take()
    room.answerJoin()
    assert bobOut.take() == (b"* a:1 joined\r\n<a:1> last words\r\n* a:1 left\r\n")
    assert aliceOut.closed


def test_a_client_gone_before_admission_never_stays() -> None:
    """If the connection goes while the room considers it, the member leaves
    as soon as it is admitted, and is sent nothing."""
    room = LaterRoom(capacity=10)
    alice, aliceOut = session(room, "a:1")
    alice.connectionLost()
    room.answerJoin()
    assert room.population() == 0
    assert aliceOut.take() == b""


def test_a_room_that_fails_admission(logged_errors: ErrorCollector) -> None:
    """An unexpected failure to admit is logged; the client is told the
    room is unavailable, and closed."""
    room = LaterRoom(capacity=10)
    _, aliceOut = session(room, "a:1")
    room.answers.pop().errback(Failure(ConnectionError("bus down")))
    assert aliceOut.take() == b"ERROR the room is unavailable; try again later\r\n"
    assert aliceOut.closed
    [event] = logged_errors.take()
    assert event["log_failure"].check(ConnectionError)


def test_output_is_bounded() -> None:
    """Output queued while the connection cannot take it is bounded: past
    maxPending the member is dropped (aborted) and leaves the room."""
    room = ChatRoom(capacity=10)
    alice, _ = session(room, "a:1")
    slow, slowOut = session(room, "s:2", maxPending=40)
    slowOut.take()
    slow.pauseOutput()
    alice.linesReceived(b"x" * 20 + b"\n")
    assert not slowOut.aborted
    alice.linesReceived(b"y" * 20 + b"\n")
    assert slowOut.aborted
    assert room.population() == 1
    assert slowOut.take() == b""


def test_nothing_reaches_a_member_before_its_greeting() -> None:
    """What the room says while a member is being admitted waits behind the
    banner and the 'you are' line."""
    room = LaterRoom(capacity=10)
    alice, aliceOut = session(room, "a:1")
    room.answerJoin()
    bob, bobOut = session(room, "b:2")
    member, name = room.pendingJoin
    ChatRoom.join(room, member, name)  # admitted, but the answer is late
    alice.linesReceived(b"early words\n")
    assert bobOut.take() == b""
    room.answers.pop().callback(name)
    assert bobOut.take() == (
        b"Hi\r\n* you are b:2; 1 other(s) here\r\n<a:1> early words\r\n"
    )
    del alice, aliceOut, bob


def test_a_rename_the_room_fails_is_answered(logged_errors: ErrorCollector) -> None:
    """A rename that fails for an unexpected reason is logged, and the member
    is told; its later lines still go out."""
    room = LaterRoom(capacity=10)
    alice, aliceOut = session(room, "a:1")
    room.answerJoin()
    _, bobOut = session(room, "b:2")
    room.answerJoin()
    aliceOut.take(), bobOut.take()
    alice.linesReceived(b"/nick al\nafter\n")
    room.answers.pop().errback(Failure(ConnectionError("bus down")))
    assert aliceOut.take() == (
        b"ERROR your name could not be changed; try again later\r\n"
    )
    assert bobOut.take() == b"<a:1> after\r\n"
    [event] = logged_errors.take()
    assert event["log_failure"].check(ConnectionError)


def test_a_member_dropped_mid_read_runs_no_more_commands() -> None:
    """A member dropped while its own line is relayed (its message drops a
    slow reader, whose departure overflows the sender's own queue) runs none
    of the commands after that line."""
    renames: list[str] = []

    class CountingRoom(ChatRoom):
        def rename(self, member: IChatMember, newName: str) -> Deferred[str]:
            renames.append(newName)
            return super().rename(member, newName)

    room = CountingRoom(capacity=10)
    alice, aliceOut = session(room, "a:1", maxPending=10)
    bob, bobOut = session(room, "b:2", maxPending=10)
    _, carolOut = session(room, "c:3")
    for member in (alice, bob):
        member.pauseOutput()
        member.deliver(b"x" * 10)  # at its limit: one more byte drops it
    carolOut.take()
    alice.linesReceived(b"hi\n/nick al\n")
    assert aliceOut.aborted
    assert bobOut.aborted
    assert room.names() == ["c:3"]
    assert b"<a:1> hi\r\n" in carolOut.take()
    assert renames == []

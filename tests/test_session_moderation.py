"""
Operators in the chat: /kick, /ban, /unban, /bans, /mute and /unmute, as a
line client types them; on sessions without a transport, on a Clock.
"""

from __future__ import annotations

from pathlib import Path

from twisted.internet.task import Clock

from sockserve.chat.moderation import Moderation
from sockserve.chat.service import ChatService
from sockserve.chat.session import ChatSession
from tests.support import capturedLogs
from tests.test_session import FakeConnection, session
from tests.test_session_logins import withAccounts


def moderated(tmp_path: Path) -> tuple[ChatService, Moderation, Clock]:
    clock = Clock()
    clock.advance(1000)
    service, _, _ = withAccounts(tmp_path, clock)
    moderation = Moderation(clock)
    service.useModeration(moderation)
    return service, moderation, clock


def member(
    service: ChatService, peer: str = "127.0.0.1:1", *others: FakeConnection
) -> tuple[ChatSession, FakeConnection]:
    """A member that arrived (what it and C{others} were told of it read)."""
    one, connection = session(service, peer)
    for read in (connection, *others):
        read.take()
    return one, connection


def operator(
    service: ChatService, *others: FakeConnection
) -> tuple[ChatSession, FakeConnection]:
    alice, aliceOut = member(service, "127.0.0.1:1", *others)
    alice.linesReceived(b"/login alice wonderland\n")
    for read in (aliceOut, *others):
        read.take()
    return alice, aliceOut


def test_a_guest_is_no_operator(tmp_path: Path) -> None:
    """Each operator's command answers one clear line to anyone else, a
    member logged in without the role too; /help shows them to operators
    only."""
    service, _, _ = moderated(tmp_path)
    bob, bobOut = member(service)
    for command in (b"/kick", b"/ban", b"/unban", b"/bans", b"/mute", b"/unmute"):
        bob.linesReceived(command + b" somebody\n")
        assert bobOut.take() == (
            b"ERROR "
            + command
            + b" is for operators (logged in to an account with the operator role)"
            b"\r\n"
        )
    bob.linesReceived(b"/login bob builder1\n/kick alice\n/help\n")
    out = bobOut.take()
    assert b"ERROR /kick is for operators" in out
    assert b"/help" in out
    assert b"/ban WHAT" not in out
    alice, aliceOut = operator(service)
    alice.linesReceived(b"/help\n")
    assert b"/ban WHAT [TIME] [WHY]" in aliceOut.take()


def test_kick(tmp_path: Path) -> None:
    """/kick NAME WHY closes NAME's connection, telling it why in one line;
    everyone in its room is told it left, and why; the operator is told."""
    service, moderation, _ = moderated(tmp_path)
    bob, bobOut = member(service, "127.0.0.2:5")
    carol, carolOut = member(service, "127.0.0.3:5", bobOut)
    alice, aliceOut = operator(service, bobOut, carolOut)
    with capturedLogs() as logs:
        alice.linesReceived(b"/kick GUEST1 flooding the room\n")
    assert bobOut.take() == (b"ERROR you were kicked by alice: flooding the room\r\n")
    assert bobOut.closed
    assert bob.closing
    assert carolOut.take() == (
        b"* guest1 left (kicked by alice: flooding the room)\r\n"
    )
    assert aliceOut.take() == (
        b"* guest1 left (kicked by alice: flooding the room)\r\n"
        b"* you kicked guest1: flooding the room\r\n"
    )
    assert moderation.counts["kick"] == 1
    assert any(
        e.get("what") == "kick" and e.get("whom") == "guest1" for e in logs.events
    )
    alice.linesReceived(b"/kick nobody\n/kick\n")
    assert aliceOut.take() == (
        b"ERROR nobody here is called nobody\r\nERROR kick whom? /kick NAME [WHY]\r\n"
    )
    assert not carol.closing


def test_ban_an_account(tmp_path: Path) -> None:
    """/ban ACCOUNT TIME WHY removes everyone logged in to it, and refuses
    its logins saying until when, until the time is over."""
    service, _, clock = moderated(tmp_path)
    bob, bobOut = member(service, "127.0.0.2:5")
    bob.linesReceived(b"/login bob builder1\n")
    bobOut.take()
    alice, aliceOut = operator(service, bobOut)
    alice.linesReceived(b"/ban bob 10m spam\n")
    assert bobOut.take() == (
        b"ERROR you are banned from this server until 1970-01-01 00:26:40 UTC: spam\r\n"
    )
    assert bob.closing
    assert aliceOut.take() == (
        b"* bob left (banned by alice: spam)\r\n"
        b"* banned bob until 1970-01-01 00:26:40 UTC; removed bob\r\n"
    )
    again, againOut = member(service, "127.0.0.2:6")
    again.linesReceived(b"/login bob builder1\n")
    assert againOut.take() == (
        b"ERROR the account bob is banned until 1970-01-01 00:26:40 UTC\r\n"
    )
    assert again.account is None
    clock.advance(600)
    again.linesReceived(b"/login bob builder1\n")
    assert b"you are logged in as bob" in againOut.take()


def test_ban_an_address_or_a_guest(tmp_path: Path) -> None:
    """/ban ADDRESS removes whoever connects from it (not the operator);
    /ban GUEST bans the guest's address; /bans lists the bans with the time
    each has left, and /unban lifts one."""
    service, moderation, clock = moderated(tmp_path)
    bob, bobOut = member(service, "127.0.0.2:5")
    carol, carolOut = member(service, "::1:7", bobOut)
    alice, aliceOut = operator(service, bobOut, carolOut)
    alice.linesReceived(b"/ban 127.0.0.0/8 1h\n")
    assert bobOut.take() == (
        b"ERROR you are banned from this server until 1970-01-01 01:16:40 UTC\r\n"
    )
    assert bob.closing
    assert not alice.closing
    assert not carol.closing
    assert aliceOut.take().endswith(
        b"* banned 127.0.0.0/8 until 1970-01-01 01:16:40 UTC; removed guest1\r\n"
    )
    assert moderation.connectRefusal("127.0.0.9") is not None
    alice.linesReceived(b"/ban guest2 30s\n")
    assert carol.closing
    assert aliceOut.take().endswith(
        b"* banned ::1/128 until 1970-01-01 00:17:10 UTC; removed guest2\r\n"
    )
    clock.advance(5)
    alice.linesReceived(b"/bans\n/unban ::1\n/unban ::1\n/bans\n")
    assert aliceOut.take() == (
        b"* ban 127.0.0.0/8 (59m 55s left, by alice)\r\n"
        b"* ban ::1/128 (25s left, by alice)\r\n"
        b"* ::1/128 is no longer banned\r\n"
        b"ERROR ::1 is not banned (see /bans)\r\n"
        b"* ban 127.0.0.0/8 (59m 55s left, by alice)\r\n"
    )
    alice.linesReceived(b"/ban mallory\n/ban\n")
    assert aliceOut.take() == (
        b"ERROR there is no account, and nobody here, called mallory; "
        b"/ban NAME|ADDRESS|NETWORK [DURATION] [WHY]\r\n"
        b"ERROR ban what? /ban NAME|ADDRESS|NETWORK [DURATION] [WHY]\r\n"
    )


def test_mute(tmp_path: Path) -> None:
    """A muted member's lines, private messages, topics and renames are
    refused with one line to it; nobody else sees anything; the mute ends
    with its time, or /unmute."""
    service, moderation, clock = moderated(tmp_path)
    bob, bobOut = member(service, "127.0.0.2:5")
    _carol, carolOut = member(service, "127.0.0.3:5", bobOut)
    alice, aliceOut = operator(service, bobOut, carolOut)
    alice.linesReceived(b"/mute guest1 10m\n")
    assert aliceOut.take() == b"* muted guest1 until 1970-01-01 00:26:40 UTC\r\n"
    assert bobOut.take() == (
        b"* you are muted until 1970-01-01 00:26:40 UTC by alice\r\n"
    )
    bob.linesReceived(
        b"hello\n/me waves\n/msg guest2 psst\n/topic mine\n/nick robert\n"
    )
    refused = b"ERROR you are muted until 1970-01-01 00:26:40 UTC: nobody sees"
    out = bobOut.take()
    assert out.count(refused) == 4
    assert b"ERROR you are muted until 1970-01-01 00:26:40 UTC: you cannot" in out
    assert carolOut.take() == b""
    assert aliceOut.take() == b""
    clock.advance(600)
    bob.linesReceived(b"back\n")
    assert carolOut.take() == b"<guest1> back\r\n"
    alice.linesReceived(b"/mute guest1\n/unmute guest1\n/unmute guest1\n/mute x 5q\n")
    assert aliceOut.take() == (
        b"<guest1> back\r\n"
        b"* muted guest1 until lifted\r\n"
        b"* guest1 is no longer muted\r\n"
        b"ERROR guest1 is not muted\r\n"
        b"ERROR mute whom, for how long? /mute NAME [DURATION]\r\n"
    )
    bob.linesReceived(b"free\n")
    assert carolOut.take() == b"<guest1> free\r\n"
    assert moderation.counts["mute"] == 2


def test_a_member_waiting_to_log_in_when_its_address_is_banned(
    tmp_path: Path,
) -> None:
    """Under --require-login, a member that connected before its address
    was banned cannot log in, nor arrive."""
    clock = Clock()
    service, _, _ = withAccounts(tmp_path, clock, requireLogin=True)
    moderation = Moderation(clock)
    service.useModeration(moderation)
    waiting, out = session(service, "127.0.0.2:5")
    out.take()
    moderation.ban("127.0.0.2", "alice")
    waiting.linesReceived(b"/login bob builder1\n")
    assert out.take() == (
        b"ERROR connections from 127.0.0.2/32 are banned until lifted\r\n"
    )
    assert waiting.account is None
    assert not waiting.closing


def test_a_ban_whose_time_cannot_be_read_is_refused(tmp_path: Path) -> None:
    """/ban NAME TIME WHY with a TIME written wrong (0s, -5m, 1.5h, 10, 1w)
    is refused with the usage, not made a ban until lifted whose reason is
    the time; a TIME too long to mean anything (99999999d) is the longest
    there is."""
    service, moderation, _ = moderated(tmp_path)
    alice, aliceOut = operator(service)
    for wrong in (b"0s", b"-5m", b"1.5h", b"10", b"1w", b"+3h"):
        alice.linesReceived(b"/ban 192.0.2.7 " + wrong + b" spam\n")
        assert aliceOut.take() == (
            b"ERROR " + wrong + b" is no time: TIME is written 30s, 10m, 2h or 7d; "
            b"/ban NAME|ADDRESS|NETWORK [DURATION] [WHY]\r\n"
        ), wrong
    assert moderation.bans() == []
    alice.linesReceived(b"/ban 192.0.2.7 99999999d spam\n")
    assert aliceOut.take() == (
        b"* banned 192.0.2.7/32 until 1979-12-30 00:16:40 UTC\r\n"
    )
    [ban] = moderation.bans()
    assert ban.reason == "spam"


def test_ban_a_guest_without_an_address(tmp_path: Path) -> None:
    """/ban GUEST for a guest that has no address (connected through the
    UNIX socket) says so, rather than that nobody here is called so."""
    service, moderation, _ = moderated(tmp_path)
    member(service, "unix")
    alice, aliceOut = operator(service)
    alice.linesReceived(b"/ban guest1 1h\n")
    assert aliceOut.take() == (
        b"ERROR guest1 connects without an address (through a UNIX socket): "
        b"there is none to ban; /kick guest1 instead\r\n"
    )
    assert moderation.bans() == []


def test_kicks_for_the_other_nodes(tmp_path: Path) -> None:
    """With other nodes to ask (a bus), a kick of an account asks them all
    (its connections may be there); a kick of a guest of this node does not
    (once its name is free, someone else may take it there)."""
    service, moderation, _ = moderated(tmp_path)
    asked: list[object] = []
    moderation.kicks.append(asked.append)
    _guest, guestOut = member(service, "127.0.0.2:5")
    alice, aliceOut = operator(service, guestOut)
    alice.linesReceived(b"/kick guest1 spam\n")
    assert b"* you kicked guest1: spam\r\n" in aliceOut.take()
    assert asked == []
    alice.linesReceived(b"/kick bob spam\n")
    assert aliceOut.take() == b"* you asked every server to kick bob: spam\r\n"
    assert [getattr(kick, "name", None) for kick in asked] == ["bob"]
    assert moderation.counts["kick"] == 2

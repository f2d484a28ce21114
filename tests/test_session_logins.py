"""
Accounts in the chat: reserved names, /login and /logout, guests holding
an account's name, --require-login, and lines that look like a login never
said to anyone; on sessions without a transport, on a Clock.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from twisted.internet.task import Clock

from sockserve.accounts.cred import accountPortal
from sockserve.accounts.logins import LoginRules, Logins
from sockserve.accounts.store import Account, AccountStore
from sockserve.chat.names import NameReserved
from sockserve.chat.service import ChatService
from sockserve.chat.session import ChatSession, SessionState
from tests.support import capturedLogs
from tests.test_logins import FAST, AtOnce
from tests.test_session import FakeConnection, chat, session


def withAccounts(
    tmp_path: Path,
    clock: Clock | None = None,
    hashing: AtOnce | None = None,
    **rules: Any,
) -> tuple[ChatService, Logins, Path]:
    path = tmp_path / "accounts"
    path.write_text(
        f"alice:{FAST.hash('wonderland')}:operator\nbob:{FAST.hash('builder1')}:\n"
    )
    store = AccountStore(path, FAST)
    store.load()
    clock = clock or Clock()
    service = chat(clock=clock)
    logins = Logins.forStore(
        store, accountPortal(store, hashing or AtOnce()), clock, LoginRules(**rules)
    )
    service.useLogins(logins)
    return service, logins, path


def arrived(
    service: ChatService, *others: FakeConnection
) -> tuple[ChatSession, FakeConnection]:
    """A member that arrived (what it and C{others} were told of it read)."""
    member, connection = session(service)
    for read in (connection, *others):
        read.take()
    return member, connection


class Nobody:
    account = None


def test_a_guest_cannot_take_an_account_name(tmp_path: Path) -> None:
    """/nick to an account's name, or one that looks like it, is refused
    with one line that says how to log in; registering under it too."""
    service, _, _ = withAccounts(tmp_path)
    member, connection = arrived(service)
    member.linesReceived(b"/nick alice\n")
    assert connection.take() == (
        b"ERROR the name alice belongs to an account; /login alice PASSWORD\r\n"
    )
    member.linesReceived(b"/nick A1ice\n")
    assert connection.take() == (
        b"ERROR the name A1ice belongs to an account; /login alice PASSWORD\r\n"
    )
    registering = service.register(Nobody(), "BOB")  # type: ignore[arg-type]
    failures: list[Any] = []
    registering.addErrback(failures.append)
    assert failures[0].check(NameReserved)
    assert failures[0].value.taken


def test_login_takes_the_account_name(tmp_path: Path) -> None:
    """/login NAME PASSWORD logs in and renames the member to the account's
    name; the others see a rename, never the password."""
    service, logins, _ = withAccounts(tmp_path)
    alice, aliceOut = arrived(service)
    _other, otherOut = arrived(service, aliceOut)
    with capturedLogs() as logs:
        alice.linesReceived(b"/login alice wonderland\n")
    assert aliceOut.take() == (
        b"* you are logged in as alice (operator)\r\n* you are now known as alice\r\n"
    )
    assert otherOut.take() == b"* guest1 is now known as alice\r\n"
    assert alice.account == Account("alice", frozenset({"operator"}))
    assert "wonderland" not in " ".join(logs.texts())
    alice.linesReceived(b"/login bob builder1\n")
    assert aliceOut.take() == (
        b"ERROR you are logged in as alice already; /logout first\r\n"
    )
    assert logins.counts == {"ok": 1}


def test_wrong_login_says_one_line(tmp_path: Path) -> None:
    """A wrong password, or a name that is no account, get the same line;
    an empty one is told how."""
    service, _, _ = withAccounts(tmp_path)
    member, connection = arrived(service)
    member.linesReceived(b"/login alice sesame\n/login mallory sesame\n/login alice\n")
    assert connection.take() == (
        b"ERROR wrong name or password\r\n"
        b"ERROR wrong name or password\r\n"
        b"ERROR log in how? /login NAME PASSWORD\r\n"
    )
    assert member.account is None


def test_logout_leaves_the_account_name(tmp_path: Path) -> None:
    """/logout makes the member a guest again, with a default name."""
    service, _, _ = withAccounts(tmp_path)
    member, connection = arrived(service)
    _other, otherOut = arrived(service, connection)
    member.linesReceived(b"/login bob builder1\n")
    connection.take(), otherOut.take()
    member.linesReceived(b"/logout\n")
    guest = member.name.encode()
    assert guest.startswith(b"guest")
    assert connection.take() == (
        b"* you logged out of bob\r\n"
        b"* you are now known as " + guest + b"\r\n"
        b"* the name bob is the account's; you are " + guest + b" now\r\n"
    )
    assert otherOut.take() == b"* bob is now known as " + guest + b"\r\n"
    assert member.account is None
    member.linesReceived(b"/logout\n")
    assert connection.take() == b"ERROR you are not logged in\r\n"


def test_guests_holding_a_new_account_name_are_renamed(tmp_path: Path) -> None:
    """An account added while a guest has its name: on reading the accounts
    again (SIGHUP), the guest is renamed and told why."""
    service, logins, path = withAccounts(tmp_path)
    carol, carolOut = arrived(service)
    carol.linesReceived(b"/nick Carol\n")
    carolOut.take()
    path.write_text(path.read_text() + f"carol:{FAST.hash('password1')}:\n")
    assert logins.reload()
    guest = carol.name.encode()
    assert guest.startswith(b"guest")
    assert carolOut.take() == (
        b"* you are now known as " + guest + b"\r\n"
        b"* the name Carol now belongs to an account; you are " + guest + b" now\r\n"
    )


def test_login_renames_a_guest_holding_the_name(tmp_path: Path) -> None:
    """A guest of this process with the account's name (one the accounts
    were not read again for) is renamed when the account logs in."""
    service, logins, path = withAccounts(tmp_path)
    holder, holderOut = arrived(service)
    holder.linesReceived(b"/nick carol\n")
    holderOut.take()
    path.write_text(path.read_text() + f"carol:{FAST.hash('password1')}:\n")
    # Read without telling the chat, as if on another node.
    logins.store.load()
    member, _connection = arrived(service)
    member.linesReceived(b"/login carol password1\n")
    assert member.name == "carol"
    assert holder.name.startswith("guest")
    assert b"the name carol belongs to an account, which logged in" in holderOut.take()


def test_second_connection_of_an_account_keeps_its_name(tmp_path: Path) -> None:
    """Logging in to an account whose name another of its connections has
    keeps the member's name, and says so."""
    service, _, _ = withAccounts(tmp_path)
    first, _ = arrived(service)
    first.linesReceived(b"/login bob builder1\n")
    second, connection = arrived(service)
    second.linesReceived(b"/login bob builder1\n")
    assert connection.take() == (
        b"* you are logged in as bob\r\n"
        b"* the name bob is in use (by another of your connections?); you keep "
        b"the name " + second.name.encode() + b"\r\n"
    )
    assert second.account == Account("bob")


def test_lines_that_look_like_a_login_are_said_to_nobody(tmp_path: Path) -> None:
    """With accounts, a login typed with a leading space, with a typo, or
    escaped with //, is not said; a typo'd verb is answered with the verb
    only; ordinary lines and the rest of the batch go through."""
    service, _, _ = withAccounts(tmp_path)
    member, connection = arrived(service)
    _other, otherOut = arrived(service, connection)
    member.linesReceived(
        b" /login bob builder1\nhello\n/lgoin bob builder1\n//login bob builder1\n"
    )
    said = otherOut.take()
    assert said == b"<guest1> hello\r\n"
    answered = connection.take()
    assert b"builder1" not in answered
    assert answered.count(b"ERROR that looks like a login") == 2
    assert b"ERROR unknown command /lgoin (try /help)" in answered
    member.linesReceived(
        b"/msg guest2 /login bob builder1\n/topic /login bob builder1\n"
    )
    assert b"builder1" not in otherOut.take()
    assert connection.take().count(b"ERROR that looks like a login") == 2


def test_without_accounts_lines_go_as_they_are(tmp_path: Path) -> None:
    """Without accounts there is no login, and nothing is held back."""
    service = chat()
    member, connection = arrived(service)
    _other, otherOut = arrived(service, connection)
    member.linesReceived(b" /login bob builder1\n/login bob builder1\n")
    assert otherOut.take() == b"<guest1>  /login bob builder1\r\n"


def test_require_login(tmp_path: Path) -> None:
    """With --require-login the member is told how to log in, nothing it
    types is said, and it arrives under its account's name once logged in."""
    clock = Clock()
    service, _, _ = withAccounts(tmp_path, clock, requireLogin=True, deadline=60.0)
    other, otherOut = session(service)
    assert other.state is SessionState.LOGIN
    assert otherOut.take().endswith(
        b"* this server is for its accounts only: log in with /login NAME "
        b"PASSWORD within 60 seconds\r\n"
    )
    member, connection = session(service)
    connection.take()
    member.linesReceived(b"hello\n/nick x\n/login alice wonderland\nhi all\n")
    out = connection.take()
    assert out.startswith(
        b"ERROR log in first: /login NAME PASSWORD\r\n"
        b"ERROR log in first: /login NAME PASSWORD\r\n"
    )
    assert b"Welcome" not in out[:100]
    assert member.state is SessionState.PRESENT
    assert member.name == "alice"
    assert b"* you are logged in as alice (operator)\r\n" in out
    assert service.people.find("alice") is member
    assert otherOut.take() == b""
    clock.advance(60)
    assert otherOut.take() == b"ERROR you did not log in in time; goodbye\r\n"
    assert otherOut.closed
    assert not connection.closed
    member.linesReceived(b"/logout\n")
    assert connection.closed


def test_a_login_typed_in_time_is_not_cut_by_the_deadline(tmp_path: Path) -> None:
    """The deadline waits for a password typed in time that is still being
    checked (the hashing threads give way to the rooms under load): the
    member is logged in once it is right, and closed once it is wrong."""
    clock = Clock()
    hashing = AtOnce()
    hashing.hold = True
    service, _, _ = withAccounts(
        tmp_path, clock, hashing, requireLogin=True, deadline=5.0
    )
    member, connection = session(service)
    wrong, wrongOut = session(service)
    connection.take()
    wrongOut.take()
    member.linesReceived(b"/login alice wonderland\n")
    wrong.linesReceived(b"/login bob wrong\n")
    clock.advance(10)
    assert not connection.closed
    assert not wrongOut.closed
    assert connection.take() == wrongOut.take() == b""
    hashing.release()
    assert member.state is SessionState.PRESENT
    assert b"* you are logged in as alice (operator)\r\n" in connection.take()
    assert not connection.closed
    told = wrongOut.take()
    assert told.startswith(b"ERROR ")
    assert told.endswith(b"ERROR you did not log in in time; goodbye\r\n")
    assert wrongOut.closed


def test_a_changed_account_applies_at_once(tmp_path: Path) -> None:
    """The accounts read again (SIGHUP): an operator whose role was taken
    away is one no more at once, and a member whose account was removed is
    logged out (a guest again); each is told, and the others only see the
    rename."""
    service, logins, path = withAccounts(tmp_path)
    alice, aliceOut = arrived(service)
    bob, bobOut = arrived(service, aliceOut)
    alice.linesReceived(b"/login alice wonderland\n")
    bob.linesReceived(b"/login bob builder1\n")
    aliceOut.take(), bobOut.take()
    path.write_text(f"alice:{FAST.hash('wonderland')}:\n")
    assert logins.reload()
    assert alice.account == Account("alice", frozenset())
    assert b"* your account changed: you are logged in as alice\r\n" in (
        aliceOut.take()
    )
    assert bob.account is None
    told = bobOut.take()
    assert told.startswith(
        b"* the account bob was removed\r\n* you logged out of bob\r\n"
    )
    assert bob.name.startswith("guest")
    alice.linesReceived(b"/kick bob\n")
    assert b"/kick is for operators" in aliceOut.take()

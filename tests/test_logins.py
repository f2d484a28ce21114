"""
Logins: the twisted.cred checker and realm over the accounts file, the
hashing pool off the reactor, the waits failed logins cost (on a Clock),
and the lines that look like a login and are never said.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from argon2 import PasswordHasher
from twisted.cred.credentials import UsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock

from sockserve.accounts.cred import (
    WRONG,
    AccountChecker,
    AccountRealm,
    HashingPool,
    accountPortal,
    verifyPassword,
)
from sockserve.accounts.limits import (
    PER_ACCOUNT,
    LoginLimiter,
    StrikeRule,
    StrikeTable,
)
from sockserve.accounts.logins import LoginRules, Logins
from sockserve.accounts.store import Account, AccountStore, IAccount
from sockserve.chat.login import LoginRefused, looksLikeLogin
from tests.support import capturedLogs

FAST = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


def makeStore(tmp_path: Path) -> AccountStore:
    path = tmp_path / "accounts"
    path.write_text(
        f"alice:{FAST.hash('wonderland')}:operator\nbob:{FAST.hash('builder1')}:\n"
    )
    store = AccountStore(path, FAST)
    store.load()
    return store


class AtOnce:
    """Runs a check at once, noting what it was asked to verify against."""

    def __init__(self) -> None:
        self.hashes: list[str] = []
        self.pending: list[
            tuple[Deferred[Any], Callable[..., Any], tuple[Any, ...]]
        ] = []
        self.hold = False

    def __call__(self, function: Callable[..., Any], *args: Any) -> Deferred[Any]:
        self.hashes.append(args[0])
        if self.hold:
            waiting: Deferred[Any] = Deferred()
            self.pending.append((waiting, function, args))
            return waiting
        return succeed(function(*args))

    def release(self) -> None:
        pending, self.pending = self.pending, []
        for waiting, function, args in pending:
            waiting.callback(function(*args))


def result(deferred: Deferred[Any]) -> Any:
    outcome: list[Any] = []
    deferred.addBoth(outcome.append)
    assert outcome, "not settled"
    return outcome[0]


def test_checker_right_and_wrong(tmp_path: Path) -> None:
    """The right password gives the account's name as the file spells it,
    whatever the spelling asked; a wrong one fails."""
    store = makeStore(tmp_path)
    checker = AccountChecker(store, AtOnce())
    assert (
        result(checker.requestAvatarId(UsernamePassword(b"ALICE", b"wonderland")))
        == b"alice"
    )
    failure = result(checker.requestAvatarId(UsernamePassword(b"alice", b"wonderlan")))
    assert failure.check(UnauthorizedLogin)
    assert str(failure.value) == WRONG


def test_checker_unknown_name_costs_as_much(tmp_path: Path) -> None:
    """A name that is no account is checked against the dummy hash (made
    with the accounts' parameters), and gets the very same answer."""
    store = makeStore(tmp_path)
    hashing = AtOnce()
    checker = AccountChecker(store, hashing)
    wrongName = result(
        checker.requestAvatarId(UsernamePassword(b"mallory", b"wonderland"))
    )
    wrongPassword = result(checker.requestAvatarId(UsernamePassword(b"alice", b"x")))
    assert hashing.hashes[0] == store.dummyHash
    assert hashing.hashes[1] == store.entry("alice").passwordHash  # type: ignore[union-attr]
    assert type(wrongName.value) is type(wrongPassword.value)
    assert str(wrongName.value) == str(wrongPassword.value) == WRONG
    assert not verifyPassword("not a hash", b"x")


def test_realm_gives_the_account(tmp_path: Path) -> None:
    """The avatar is the account, with its roles and no hash."""
    store = makeStore(tmp_path)
    realm = AccountRealm(store)
    interface, avatar, logout = realm.requestAvatar(b"alice", None, IAccount)
    assert interface is IAccount
    assert avatar == Account("alice", frozenset({"operator"}))
    assert avatar.isOperator
    assert IAccount.providedBy(avatar)
    assert not realm.requestAvatar(b"bob", None, IAccount)[1].isOperator
    logout()
    with pytest.raises(NotImplementedError):
        realm.requestAvatar(b"alice", None)
    with pytest.raises(UnauthorizedLogin):
        realm.requestAvatar(b"carol", None, IAccount)


@pytest_twisted.ensureDeferred
async def test_hashing_runs_off_the_reactor(tmp_path: Path) -> None:
    """The hashing pool checks passwords in another thread, and stops."""
    from twisted.internet import reactor

    pool = HashingPool(reactor, threads=2)  # type: ignore[arg-type]
    pool.startService()
    try:
        threads = await pool(lambda: threading.get_ident())
        assert threads != threading.get_ident()
        store = makeStore(tmp_path)
        portal = accountPortal(store, pool)
        login = await portal.login(
            UsernamePassword(b"bob", b"builder1"), None, IAccount
        )
        assert login[1] == Account("bob")
    finally:
        pool.stopService()


def makeLogins(
    tmp_path: Path, clock: Clock, rules: LoginRules | None = None
) -> tuple[Logins, AtOnce, list[str]]:
    store = makeStore(tmp_path)
    hashing = AtOnce()
    logged: list[str] = []

    def logLimited(kind: str, format: str, **fields: object) -> None:
        logged.append(format.format(**fields))

    logins = Logins.forStore(
        store, accountPortal(store, hashing), clock, rules or LoginRules(), logLimited
    )
    return logins, hashing, logged


def attempt(
    logins: Logins,
    name: str,
    password: str,
    host: str = "192.0.2.1",
    secure: bool = False,
) -> Any:
    outcome = result(logins.login(name, password, host, secure, f"{host}:1234"))
    if isinstance(outcome, Account):
        return outcome
    assert outcome.check(LoginRefused), outcome
    return f"{outcome.value.result}: {outcome.value}"


def test_login_counts_and_logs_without_passwords(tmp_path: Path) -> None:
    """Each outcome is counted; a failure is logged with the account's name
    (never the password, and no name that is no account's)."""
    clock = Clock()
    logins, _, logged = makeLogins(tmp_path, clock)
    with capturedLogs() as logs:
        assert attempt(logins, "alice", "wonderland") == Account(
            "alice", frozenset({"operator"})
        )
        assert attempt(logins, "alice", "sesame12") == "failed: wrong name or password"
        assert attempt(logins, "sesame12", "alice") == "failed: wrong name or password"
    assert logins.counts == {"ok": 1, "failed": 2}
    assert logged == [
        "Failed login as alice from 192.0.2.1:1234",
        "Failed login as (no such account) from 192.0.2.1:1234",
    ]
    everything = " ".join(logs.texts() + logged)
    assert "wonderland" not in everything
    assert "sesame12" not in everything
    assert "logged in as alice" in everything


def test_guessing_one_account_waits_more_and_more(tmp_path: Path) -> None:
    """From one address, three wrong passwords for one account are free;
    then each costs a growing wait, during which tries are refused at once,
    unchecked; the wait over, the right password works."""
    clock = Clock()
    logins, hashing, _ = makeLogins(tmp_path, clock)
    for _ in range(3):
        assert attempt(logins, "bob", "nope").startswith("failed")
    assert attempt(logins, "bob", "nope").startswith("failed")
    checked = len(hashing.hashes)
    assert (
        attempt(logins, "bob", "builder1")
        == "throttled: too many failed logins; try again in 2 seconds"
    )
    assert len(hashing.hashes) == checked
    clock.advance(2)
    assert attempt(logins, "bob", "nope").startswith("failed")
    assert attempt(logins, "bob", "builder1").endswith("try again in 4 seconds")
    clock.advance(4)
    assert attempt(logins, "bob", "builder1") == Account("bob")
    # Forgotten after a success.
    assert logins.limiter.pairs.wait(("bob", "192.0.2.1"), clock.seconds()) == 0
    assert logins.counts["throttled"] == 2


def test_one_address_guessing_many_names_waits(tmp_path: Path) -> None:
    """An address that tries many names waits too (names that are no
    account are limited as accounts are), while another address does
    not."""
    clock = Clock()
    logins, _, _ = makeLogins(tmp_path, clock)
    for number in range(5):
        assert attempt(logins, f"user{number}", "guess").startswith("failed")
    assert attempt(logins, "user5", "guess").startswith("failed")
    assert attempt(logins, "user6", "guess").startswith("throttled")
    assert attempt(logins, "alice", "wonderland", host="198.51.100.7") == Account(
        "alice", frozenset({"operator"})
    )


def test_many_addresses_cannot_lock_the_owner_out(tmp_path: Path) -> None:
    """Guesses at one account from many addresses make it wait (its cap,
    slow to grow); the owner, from an address it logged in from before,
    does not wait, and from a new one waits at most 30 seconds."""
    clock = Clock()
    logins, _, _ = makeLogins(tmp_path, clock)
    assert isinstance(
        attempt(logins, "alice", "wonderland", host="203.0.113.5"), Account
    )
    for number in range(60):
        attempt(logins, "alice", "guess", host=f"10.0.{number}.1")
    assert attempt(logins, "alice", "guess", host="10.1.0.1").startswith("throttled")
    assert isinstance(
        attempt(logins, "alice", "wonderland", host="203.0.113.5"), Account
    )
    assert logins.limiter.wait("allce", "192.0.2.200") <= PER_ACCOUNT.longest
    clock.advance(PER_ACCOUNT.longest)
    assert isinstance(
        attempt(logins, "alice", "wonderland", host="192.0.2.200"), Account
    )


def test_strike_rules_grow_forgive_and_stay_bounded() -> None:
    """Waits grow up to a longest; failures are forgiven with time; a table
    keeps at most its size of keys."""
    rule = StrikeRule(free=1, first=1.0, growth=2.0, longest=5.0, forgive=10.0)
    assert [rule.delay(n) for n in range(1, 6)] == [0.0, 1.0, 2.0, 4.0, 5.0]
    table = StrikeTable(rule, size=8)
    table.failed("a", 0.0)
    table.failed("a", 0.0)
    assert table.wait("a", 0.5) == 0.5
    table.failed("a", 25.0)  # two forgiven: one failure again
    assert table.wait("a", 25.0) == 0.0
    for number in range(100):
        table.failed(number, 30.0)
    assert len(table) <= 8


def test_busy_and_insecure(tmp_path: Path) -> None:
    """Beyond the checks under way at once, a login is told to try again;
    with --require-tls-for-login, one over plain TCP is refused (and a UNIX
    socket's, local, is not)."""
    clock = Clock()
    logins, hashing, _ = makeLogins(tmp_path, clock, LoginRules(maxChecking=2))
    hashing.hold = True
    first = logins.login("alice", "wonderland", "192.0.2.1", False, "p")
    second = logins.login("bob", "builder1", "192.0.2.2", False, "p")
    assert attempt(logins, "bob", "builder1", host="192.0.2.3").startswith("busy")
    hashing.release()
    assert isinstance(result(first), Account)
    assert isinstance(result(second), Account)
    secure, _, _ = makeLogins(tmp_path, clock, LoginRules(requireTLS=True))
    assert attempt(secure, "alice", "wonderland").startswith(
        "insecure: this server takes passwords only over TLS"
    )
    assert isinstance(attempt(secure, "alice", "wonderland", secure=True), Account)


def test_too_long_fails_unchecked(tmp_path: Path) -> None:
    """A name or password past 200 characters fails as a wrong one does,
    without a hash."""
    clock = Clock()
    logins, hashing, _ = makeLogins(tmp_path, clock)
    assert attempt(logins, "alice", "x" * 201) == "failed: wrong name or password"
    assert hashing.hashes == []


@pytest.mark.parametrize(
    "line",
    [
        b"/login bob secret",
        b" /login bob secret",
        b"\t /login bob secret",
        b"//login bob secret",
        b"/ login bob secret",
        b"/LOGIN bob secret",
        b"/lgoin bob secret",
        b"/logni bob secret",
        b"/loign bob secret",
        b"/lgin bob secret",
        b"/log in bob secret",
        b"/sign in bob secret",
        b"\\login bob secret",
        b"/identify secret",
        b"/pass secret",
        b"/logon bob secret",
    ],
)
def test_looks_like_login(line: bytes) -> None:
    """Lines that may be a login typed wrong."""
    assert looksLikeLogin(line)


@pytest.mark.parametrize(
    "line",
    [
        b"login is broken again",
        b"how do I /login?",
        b"/me waves",
        b"/lol",
        b"/long day",
        b"/logic puzzle",
        b"/",
        b"",
        b"   ",
        b"/shrug",
    ],
)
def test_does_not_look_like_login(line: bytes) -> None:
    """Ordinary lines, even with a slash, are said."""
    # /logic is one typo from login: caught. The rest are not.
    assert looksLikeLogin(line) is (line == b"/logic puzzle")


def test_limiter_for_unix_sockets() -> None:
    """A UNIX socket's clients count as one address."""
    limiter = LoginLimiter(Clock())
    for _ in range(6):
        limiter.failed("x", None)
    assert limiter.wait("y", None) > 0


def test_a_burst_cannot_slip_in_while_checks_run(tmp_path: Path) -> None:
    """Logins are charged before their check: a burst from one address at
    one account gets four checks under way, the rest refused unchecked; a
    success among them is paid back."""
    clock = Clock()
    logins, hashing, _ = makeLogins(tmp_path, clock)
    hashing.hold = True
    under = [logins.login("bob", "builder1", "192.0.2.1", False, "p") for _ in range(4)]
    for _ in range(6):
        assert attempt(logins, "bob", "nope").startswith("throttled")
    assert len(hashing.pending) == 4
    hashing.release()
    assert all(isinstance(result(login), Account) for login in under)
    assert logins.limiter.addresses.wait("192.0.2.1", clock.seconds()) == 0
    assert logins.limiter.pairs.wait(("bob", "192.0.2.1"), clock.seconds()) == 0


def test_hashing_threads_give_way_to_the_reactor() -> None:
    """A thread that checks a password runs at a niceness 10 above the
    process's (the reactor's thread keeps its own)."""
    import os

    from sockserve.accounts.cred import HASHING_NICENESS

    seen: list[int] = []
    passwordHash = FAST.hash("wonderland")

    def check() -> None:
        assert verifyPassword(passwordHash, b"wonderland")
        seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))

    before = os.getpriority(os.PRIO_PROCESS, 0)
    thread = threading.Thread(target=check)
    thread.start()
    thread.join(10)
    assert seen == [min(19, before + HASHING_NICENESS)]
    assert os.getpriority(os.PRIO_PROCESS, 0) == before

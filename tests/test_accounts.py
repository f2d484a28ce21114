"""
The accounts file and C{sockserve-passwd}: what a line may say, writing at
once with mode 0600, reading again (a bad file keeps the accounts read
before), and the password never taken as an argument.
"""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

import pytest
from argon2 import PasswordHasher, Type

from sockserve.accounts.passwd import main
from sockserve.accounts.store import (
    AccountEntry,
    AccountsError,
    AccountStore,
    parseAccounts,
    readAccounts,
    writeAccounts,
)
from tests.conftest import ErrorCollector
from tests.processes import Processes, installedProgram
from tests.support import capturedLogs

# Cheap parameters: the tests check behaviour, not the cost.
FAST = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


def entry(name: str, password: str = "password1", roles: str = "") -> str:
    return f"{name}:{FAST.hash(password)}:{roles}\n"


class TTYInput(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_parse_accounts() -> None:
    """Names, hashes and roles are read; comments and blank lines are
    skipped; accounts are found by any spelling of their name."""
    accounts = parseAccounts(
        "# comment\n\n" + entry("alice", roles="operator") + entry("bob")
    )
    assert sorted(e.name for e in accounts.values()) == ["alice", "bob"]
    assert accounts["allce"].roles == {"operator"}
    assert accounts["bob"].roles == frozenset()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("alice\n", "line 1: an account is NAME:HASH:ROLES"),
        ("alice:secret:\n", "line 1: the hash of alice is not an argon2 hash"),
        ("al ice:x:\n", "line 1: 'al ice': a name uses letters"),
        ("guest12:x:\n", "line 1: 'guest12': names like guest and a number"),
        ("Gue5t:x:\n", None),
    ],
)
def test_parse_mistakes(text: str, message: str | None) -> None:
    """Each mistake is one line that says which line and what is wrong
    (and never repeats a hash)."""
    if message is None:
        # Not a default name: refused only for its hash.
        with pytest.raises(AccountsError, match="not an argon2 hash"):
            parseAccounts(text)
        return
    with pytest.raises(AccountsError) as raised:
        parseAccounts(text)
    assert str(raised.value).startswith(message)


def test_parse_unknown_role_and_argon2i() -> None:
    """Roles are checked (a typo is not a silent no-op); hashes are
    argon2id."""
    with pytest.raises(AccountsError, match="line 1: unknown role 'oprator'"):
        parseAccounts(entry("alice", roles="oprator"))
    argon2i = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1, type=Type.I)
    with pytest.raises(AccountsError, match="not argon2id"):
        parseAccounts(f"alice:{argon2i.hash('password1')}:\n")


def test_parse_look_alike_names() -> None:
    """Two accounts whose names are the same name to the chat (case,
    look-alikes) are refused."""
    with pytest.raises(AccountsError, match="line 2: A1ice is the same name as alice"):
        parseAccounts(entry("alice") + entry("A1ice"))


def test_write_at_once_mode_0600(tmp_path: Path) -> None:
    """The file is replaced whole, mode 0600, nothing left beside it."""
    path = tmp_path / "accounts"
    path.write_text("old\n")
    path.chmod(0o644)
    accounts = parseAccounts(entry("alice"))
    writeAccounts(path, accounts)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert readAccounts(path) == accounts
    assert os.listdir(tmp_path) == ["accounts"]


def test_store_reload_keeps_old_accounts(
    tmp_path: Path, logged_errors: ErrorCollector
) -> None:
    """A file that became bad keeps the accounts read before, and says so in
    one line; a good one replaces them."""
    path = tmp_path / "accounts"
    path.write_text(entry("alice"))
    store = AccountStore(path, FAST)
    store.load()
    assert store.ownerOf("ALICE") == "alice"
    assert store.ownerOf("bob") is None
    path.write_text(entry("alice") + "bob:nohash:\n")
    with capturedLogs() as logs:
        assert store.reload() is False
    assert logs.texts() == [
        "Could not read the accounts again (line 2: the hash of bob is not an "
        "argon2 hash (write it with sockserve-passwd)); keeping the 1 read before"
    ]
    assert store.ownerOf("alice") == "alice"
    path.unlink()
    assert store.reload() is False
    assert len(logged_errors.take()) == 2
    path.write_text(entry("bob"))
    assert store.reload() is True
    assert store.ownerOf("alice") is None
    assert store.ownerOf("b0b") == "bob"


def test_dummy_hash_has_the_accounts_parameters(tmp_path: Path) -> None:
    """A name that is no account is checked against a hash made with the
    parameters of the accounts' hashes, so that it costs as much."""
    path = tmp_path / "accounts"
    path.write_text(entry("alice") + entry("bob"))
    store = AccountStore(path)
    store.load()
    assert store.dummyHash.startswith("$argon2id$v=19$m=8,t=1,p=1$")
    dummy = store.dummyHash
    store.load()
    assert store.dummyHash == dummy


def run(
    tmp_path: Path,
    *args: str,
    stdin: io.StringIO | None = None,
    answers: tuple[str, ...] = (),
) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    asked = list(answers)
    status = main(
        [str(tmp_path / "accounts"), *args],
        stdin if stdin is not None else io.StringIO(""),
        out,
        err,
        lambda prompt: asked.pop(0),
    )
    return status, out.getvalue(), err.getvalue()


def test_passwd_adds_changes_removes(tmp_path: Path) -> None:
    """Add from a script's stdin, change the password on a terminal
    (roles kept), change the roles, remove."""
    path = tmp_path / "accounts"
    status, out, err = run(
        tmp_path, "alice", "--role", "operator", stdin=io.StringIO("first pass\n")
    )
    assert (status, err) == (0, "")
    assert out == f"Added the account alice (operator) in {path}\n"
    first = readAccounts(path)["allce"]
    assert PasswordHasher().verify(first.passwordHash, "first pass")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    status, out, err = run(
        tmp_path, "alice", stdin=TTYInput(), answers=("second pass", "second pass")
    )
    assert status == 0, err
    second = readAccounts(path)["allce"]
    assert second.roles == {"operator"}
    assert PasswordHasher().verify(second.passwordHash, "second pass")
    status, out, err = run(
        tmp_path, "alice", "--no-roles", stdin=io.StringIO("third pass\n")
    )
    assert readAccounts(path)["allce"].roles == frozenset()
    status, out, err = run(tmp_path, "alice", "--remove")
    assert (status, out) == (0, "Removed the account alice\n")
    assert readAccounts(path) == {}


@pytest.mark.parametrize(
    ("args", "stdin", "answers", "message"),
    [
        (
            ("alice",),
            TTYInput(),
            ("password1", "password2"),
            "the two passwords differ",
        ),
        (("alice",), io.StringIO("short\n"), (), "at least 8 characters"),
        (("alice",), io.StringIO("x" * 201 + "\n"), (), "at most 200 characters"),
        (("bob", "--remove"), io.StringIO(""), (), "there is no account bob"),
        (("Guest01",), io.StringIO("password1\n"), (), "names like guest"),
        (
            ("A1ice",),
            io.StringIO("password1\n"),
            (),
            "A1ice is the same name as the account alice",
        ),
    ],
)
def test_passwd_refuses(
    tmp_path: Path,
    args: tuple[str, ...],
    stdin: io.StringIO,
    answers: tuple[str, ...],
    message: str,
) -> None:
    """Each refusal is one line on stderr, status 1, and the file is as it
    was."""
    path = tmp_path / "accounts"
    path.write_text(entry("alice"))
    path.chmod(0o600)
    before = path.read_text()
    status, out, err = run(tmp_path, *args, stdin=stdin, answers=answers)
    assert status == 1
    assert out == ""
    assert err.startswith("sockserve-passwd: ")
    assert message in err
    assert err.count("\n") == 1
    assert path.read_text() == before


def test_passwd_takes_no_password_argument(tmp_path: Path) -> None:
    """There is no option that takes a password."""
    with pytest.raises(SystemExit) as exited:
        main([str(tmp_path / "accounts"), "alice", "--password", "secret123"])
    assert exited.value.code == 2


@pytest.mark.e2e
def test_passwd_on_a_terminal_and_from_a_script() -> None:
    """The installed sockserve-passwd asks twice without echo on a
    terminal, and reads one line from a pipe."""
    with Processes() as processes:
        path = processes.directory / "accounts"
        program = installedProgram("sockserve-passwd")
        terminal = processes.terminal(
            [program, str(path), "alice", "--role", "operator"]
        )
        terminal.output.waitForText(b"Password for alice: ")
        terminal.type(b"correct horse\r")
        terminal.output.waitForText(b"Again: ")
        terminal.type(b"correct horse\r")
        terminal.output.waitForText(b"Added the account alice (operator)")
        assert terminal.process.wait(10) == 0
        assert "correct horse" not in terminal.transcript()
        done = processes.run([program, str(path), "bob"], input=b"battery staple\n")
        assert done.returncode == 0, done.stderr
        accounts = readAccounts(path)
        assert sorted(e.name for e in accounts.values()) == ["alice", "bob"]
        assert PasswordHasher().verify(accounts["bob"].passwordHash, "battery staple")
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_entry_line_round_trip() -> None:
    """What is written is read back the same."""
    one = AccountEntry("alice", FAST.hash("password1"), frozenset({"operator"}))
    assert parseAccounts(one.line() + "\n") == {"allce": one}

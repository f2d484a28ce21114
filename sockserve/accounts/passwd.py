"""
C{sockserve-passwd FILE NAME [--role operator] [--remove]}: add an account
to an accounts file, change its password or roles, or remove it.

The password is never an argument (a command line is seen by every user of
the machine, and kept in shell histories): on a terminal it is asked for
twice, without echo; otherwise it is read as one line from standard input,
for scripts (C{printf '%s\\n' "$PASSWORD" | sockserve-passwd FILE NAME}).
The file is written at once, mode 0600 (see L{writeAccounts}); a server
reading it takes the change on SIGHUP.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Callable, Sequence
from typing import TextIO

from sockserve.accounts.store import (
    HASHER,
    ROLES,
    AccountEntry,
    AccountsError,
    checkAccountName,
    checkRoles,
    readAccounts,
    writeAccounts,
)
from sockserve.chat.names import nameKey

# The shortest password taken (NIST SP 800-63B's minimum).
MIN_PASSWORD = 8
# The longest: argon2 takes any length, but a line client's line and an IRC
# line are bounded, and a megabyte pasted by mistake is not a password.
MAX_PASSWORD = 200


class PasswordError(Exception):
    """
    The password given cannot be used; the message says why.
    """


def parser() -> argparse.ArgumentParser:
    """
    The command line's parser.
    """
    parsing = argparse.ArgumentParser(
        prog="sockserve-passwd",
        description=(
            "Add an account to a sockserve accounts file (--accounts), change "
            "its password or roles, or remove it. The password is asked for on "
            "a terminal (twice, without echo), or read as one line from "
            "standard input; it is never an argument."
        ),
    )
    parsing.add_argument("file", help="the accounts file (made if there is none)")
    parsing.add_argument("name", help="the account's name (a chat name)")
    roles = parsing.add_mutually_exclusive_group()
    roles.add_argument(
        "--role",
        action="append",
        choices=sorted(ROLES),
        help="give the account this role (may be repeated); an account that "
        "exists keeps its roles unless --role or --no-roles is given",
    )
    roles.add_argument(
        "--no-roles", action="store_true", help="take every role from the account"
    )
    parsing.add_argument(
        "--remove", action="store_true", help="remove the account (no password asked)"
    )
    return parsing


def readPassword(
    stdin: TextIO,
    ask: Callable[[str], str] = getpass.getpass,
    name: str = "",
) -> str:
    """
    Read a password: asked twice on a terminal, else one line of C{stdin}.

    @raise PasswordError: if the two differ, or it is too short or long.
    """
    if stdin.isatty():
        password = ask(f"Password for {name}: ")
        if ask("Again: ") != password:
            raise PasswordError("the two passwords differ; nothing was changed")
    else:
        password = stdin.readline().rstrip("\r\n")
    if len(password) < MIN_PASSWORD:
        raise PasswordError(
            f"a password is at least {MIN_PASSWORD} characters; nothing was changed"
        )
    if len(password) > MAX_PASSWORD:
        raise PasswordError(
            f"a password is at most {MAX_PASSWORD} characters; nothing was changed"
        )
    return password


def main(
    argv: Sequence[str] | None = None,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    ask: Callable[[str], str] = getpass.getpass,
) -> int:
    """
    Run C{sockserve-passwd}; return its exit status (0: done, 1: refused,
    2: a usage error).
    """
    stdin = sys.stdin if stdin is None else stdin
    stdout = sys.stdout if stdout is None else stdout
    stderr = sys.stderr if stderr is None else stderr
    arguments = parser().parse_args(argv)
    name: str = arguments.name
    try:
        accounts = (
            readAccounts(arguments.file) if os.path.exists(arguments.file) else {}
        )
        key = nameKey(name)
        existing = accounts.get(key)
        if arguments.remove:
            if existing is None:
                raise AccountsError(f"there is no account {name}")
            del accounts[key]
            writeAccounts(arguments.file, accounts)
            stdout.write(f"Removed the account {existing.name}\n")
            return 0
        checkAccountName(name)
        if existing is not None and existing.name != name:
            raise AccountsError(
                f"{name} is the same name as the account {existing.name}; "
                f"write it {existing.name}"
            )
        if arguments.no_roles:
            roles: frozenset[str] = frozenset()
        elif arguments.role:
            roles = checkRoles(arguments.role)
        else:
            roles = frozenset() if existing is None else existing.roles
        password = readPassword(stdin, ask, name)
        accounts[key] = AccountEntry(name, HASHER.hash(password), roles)
        writeAccounts(arguments.file, accounts)
    except (AccountsError, PasswordError) as error:
        stderr.write(f"sockserve-passwd: {error}\n")
        return 1
    except OSError as error:
        stderr.write(
            f"sockserve-passwd: cannot write {arguments.file}: "
            f"{error.strerror or error}\n"
        )
        return 1
    except (KeyboardInterrupt, EOFError):
        stderr.write("\nsockserve-passwd: nothing was changed\n")
        return 1
    shown = ", ".join(sorted(roles)) or "no roles"
    verb = "Changed" if existing is not None else "Added"
    stdout.write(f"{verb} the account {name} ({shown}) in {arguments.file}\n")
    return 0


def run() -> None:
    """
    The console script's entry point.
    """
    sys.exit(main())

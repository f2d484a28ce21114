"""
The accounts file: one account a line, C{NAME:HASH:ROLES}.

    # sockserve accounts (sockserve-passwd FILE NAME writes this file)
    alice:$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo:operator
    bob:$argon2id$v=19$m=19456,t=2,p=1$b3RoZXJzYWx0$b3RoZXJoYXNoaGFzaA:

The name follows the chat's rule for names (L{checkName}), and two names
that count as the same (L{nameKey}: case and look-alike characters) cannot
both be accounts; a name of the form C{guestN}, the chat's default names,
cannot be one either. The hash is an argon2 hash in the PHC string format
(as C{argon2-cffi} writes it); the roles, separated by commas, are among
L{ROLES} (possibly none). Empty lines and lines starting with C{#} are
ignored.

An L{AccountStore} holds what the file said when last read
(L{AccountStore.load}); a file that cannot be read, or has a mistake, keeps
the accounts read before (L{AccountStore.reload}), and says in one line
what is wrong and where.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import astuple, dataclass, field
from pathlib import Path

from argon2 import Parameters, PasswordHasher, extract_parameters
from argon2.exceptions import InvalidHashError
from twisted.logger import Logger
from zope.interface import Attribute, Interface, implementer

from sockserve._files import writePrivately
from sockserve.chat.names import NameRejected, checkName, nameKey

# The roles an account may have. Operators act on others (the next slice:
# kick, ban, mute); the role is kept from now on.
OPERATOR = "operator"
ROLES = frozenset({OPERATOR})

# argon2id as OWASP's password storage cheat sheet lists it first: 19 MiB,
# two passes, one lane (one thread: the server's hashing pool is the bound
# on the CPU logins take).
HASHER = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)

_GUEST_KEY = re.compile(r"guest[lo2-9]*\Z")


class AccountsError(ValueError):
    """
    An accounts file that cannot be used: the message says what is wrong,
    and on which line.
    """


class IAccount(Interface):
    """
    The avatar of a login: the account someone is logged in to.
    """

    name = Attribute("The account's name, as the file spells it.")
    roles = Attribute("The account's roles (a frozenset of str).")


@implementer(IAccount)
@dataclass(frozen=True)
class Account:
    """
    An account someone logged in to: what the rest of the server knows of
    it (never its password or hash).

    @ivar name: its name, as the accounts file spells it.
    @ivar roles: its roles (see L{ROLES}).
    """

    name: str
    roles: frozenset[str] = field(default=frozenset())

    @property
    def key(self) -> str:
        """
        What identifies its name (L{nameKey}).
        """
        return nameKey(self.name)

    @property
    def isOperator(self) -> bool:
        """
        Whether it has the operator's role.
        """
        return OPERATOR in self.roles


@dataclass(frozen=True)
class AccountEntry:
    """
    One line of the accounts file.

    @ivar name: the account's name.
    @ivar passwordHash: its password's hash, a PHC string.
    @ivar roles: its roles.
    """

    name: str
    passwordHash: str
    roles: frozenset[str] = field(default=frozenset())

    def account(self) -> Account:
        """
        The account, without its hash.
        """
        return Account(self.name, self.roles)

    def line(self) -> str:
        """
        The line of the file that says this account.
        """
        return f"{self.name}:{self.passwordHash}:{','.join(sorted(self.roles))}"


def checkAccountName(name: str) -> None:
    """
    Raise L{AccountsError} unless C{name} may be an account's: a valid chat
    name, not one of the chat's default names (C{guestN}).
    """
    try:
        checkName(name)
    except NameRejected as rejected:
        raise AccountsError(f"{name[:40]!r}: {rejected}") from None
    if _GUEST_KEY.match(nameKey(name)):
        raise AccountsError(
            f"{name!r}: names like guest and a number are the chat's default "
            "names, given to people who are not logged in"
        )


def checkRoles(roles: Iterable[str]) -> frozenset[str]:
    """
    Return C{roles} as a set, or raise L{AccountsError} if one is unknown.
    """
    wanted = frozenset(role for role in roles if role)
    unknown = sorted(wanted - ROLES)
    if unknown:
        raise AccountsError(
            f"unknown role {unknown[0]!r} (the roles are {', '.join(sorted(ROLES))})"
        )
    return wanted


def parseLine(line: str) -> AccountEntry:
    """
    Read one account from C{line} (C{NAME:HASH:ROLES}).

    @raise AccountsError: if it is not one.
    """
    parts = line.split(":")
    if len(parts) != 3:
        raise AccountsError("an account is NAME:HASH:ROLES (roles may be empty)")
    name, passwordHash, roles = parts
    checkAccountName(name)
    try:
        parameters = extract_parameters(passwordHash)
    except (InvalidHashError, ValueError):
        raise AccountsError(
            f"the hash of {name} is not an argon2 hash (write it with sockserve-passwd)"
        ) from None
    if parameters.type.name.lower() != "id":
        raise AccountsError(f"the hash of {name} is not argon2id")
    return AccountEntry(name, passwordHash, checkRoles(roles.split(",")))


def parseAccounts(text: str) -> dict[str, AccountEntry]:
    """
    Read the accounts of a file's C{text}, by the key of their names.

    @raise AccountsError: on the first mistake, saying on which line.
    """
    accounts: dict[str, AccountEntry] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            entry = parseLine(line)
        except AccountsError as error:
            raise AccountsError(f"line {number}: {error}") from None
        key = nameKey(entry.name)
        if key in accounts:
            raise AccountsError(
                f"line {number}: {entry.name} is the same name as "
                f"{accounts[key].name} (names differing only in case or in "
                "look-alike characters are one name)"
            )
        accounts[key] = entry
    return accounts


def readAccounts(path: str | os.PathLike[str]) -> dict[str, AccountEntry]:
    """
    Read the accounts file at C{path}.

    @raise AccountsError: if it cannot be read, or has a mistake.
    """
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise AccountsError(f"cannot read {os.fspath(path)}: {reason}") from None
    return parseAccounts(text)


HEADER = "# sockserve accounts: NAME:HASH:ROLES (written by sockserve-passwd)\n"


def writeAccounts(
    path: str | os.PathLike[str], accounts: Mapping[str, AccountEntry]
) -> None:
    """
    Write C{accounts} to C{path} at once: a temporary file beside it, mode
    0600, flushed to disk, then renamed over it; a reader sees the old file
    or the new one, never half of one.
    """
    target = Path(path)
    text = HEADER + "".join(
        entry.line() + "\n"
        for entry in sorted(accounts.values(), key=lambda e: nameKey(e.name))
    )
    writePrivately(target, text)


class AccountStore:
    """
    The accounts of the file C{path}, as last read.

    @ivar path: the file.
    @ivar dummyHash: a hash of no password, with the parameters most
        accounts' hashes have: a login to a name that is no account is
        checked against it, so that it takes as long as one to an account.
    """

    log = Logger()

    def __init__(
        self,
        path: str | os.PathLike[str],
        hasher: PasswordHasher = HASHER,
    ) -> None:
        self.path = os.fspath(path)
        self.hasher = hasher
        self._accounts: dict[str, AccountEntry] = {}
        self.dummyHash = ""
        self._dummyParameters: Parameters | None = None

    def __len__(self) -> int:
        return len(self._accounts)

    def load(self) -> None:
        """
        Read the file.

        @raise AccountsError: if it cannot be read or has a mistake (the
            accounts read before are kept).
        """
        accounts = readAccounts(self.path)
        self.dummyHash = self._dummyFor(accounts.values())
        self._accounts = accounts

    def _dummyFor(self, entries: Iterable[AccountEntry]) -> str:
        counts: Counter[tuple[object, ...]] = Counter()
        found = {}
        for entry in entries:
            parameters = extract_parameters(entry.passwordHash)
            key = astuple(parameters)
            counts[key] += 1
            found[key] = parameters
        wanted = found[counts.most_common(1)[0][0]] if counts else None
        if self.dummyHash and wanted == self._dummyParameters:
            return self.dummyHash
        self._dummyParameters = wanted
        hasher = (
            self.hasher if wanted is None else PasswordHasher.from_parameters(wanted)
        )
        return hasher.hash(os.urandom(16).hex())

    def reload(self) -> bool:
        """
        Read the file again; if it cannot be used, keep the accounts read
        before, and log one line saying why.

        @return: whether the accounts were read.
        """
        try:
            self.load()
        except AccountsError as error:
            self.log.error(
                "Could not read the accounts again ({error}); keeping the "
                "{count} read before",
                error=str(error),
                count=len(self._accounts),
            )
            return False
        self.log.info(
            "Read {count} accounts from {path}",
            count=len(self._accounts),
            path=self.path,
        )
        return True

    def entry(self, name: str) -> AccountEntry | None:
        """
        Return the account whose name is the same as C{name} (see
        L{nameKey}), or C{None}.
        """
        return self._accounts.get(nameKey(name))

    def ownerOf(self, name: str) -> str | None:
        """
        Return the name of the account whose name is the same as C{name},
        or C{None}: the name is reserved for whoever is logged in to it.
        """
        entry = self._accounts.get(nameKey(name))
        return None if entry is None else entry.name

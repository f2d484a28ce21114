"""
Logins through C{twisted.cred}: a checker of names and passwords against
the accounts file, and a realm whose avatar is the L{Account}.

The checker is the one place that knows where accounts live: another one (a
database, LDAP) can be put beside it in the L{Portal} without touching the
front ends, which only ever ask the portal (through
L{sockserve.accounts.logins.Logins}).

Checking a password costs tens of milliseconds of CPU by design (argon2id):
it runs in a thread pool of bounded size (L{HashingPool}), never on the
reactor, so that a flood of logins never stalls the rooms. A name that is no
account is checked against a dummy hash made with the same parameters
(L{AccountStore.dummyHash}), so that it takes as long and gets the same
answer as a wrong password.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from twisted.application.service import Service
from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import IUsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.cred.portal import IRealm, Portal
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorFromThreads
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool
from zope.interface import implementer

from sockserve.accounts.store import AccountStore, IAccount

T = TypeVar("T")

# Threads that check passwords at once: each check is CPU bound and holds
# no lock of Python's (argon2-cffi releases the GIL), so each takes a core:
# one core is left to the reactor (on 2 cores, one thread), at most 4.
HASHING_THREADS = max(1, min(4, (os.cpu_count() or 2) - 1))
# How much less the hashing threads count than the reactor's when the CPU
# is short (Linux's niceness of a thread): a flood of logins slows logins,
# not the rooms.
HASHING_NICENESS = 10
# What anyone whose login failed is told, whether the name is an account's
# or not.
WRONG = "wrong name or password"

_VERIFIER = PasswordHasher()

Hashing = Callable[..., Deferred[Any]]


_niced = threading.local()


def _yieldToTheReactor() -> None:
    """
    Make the calling thread (one of the pool's) give way to the reactor's
    when the CPU is short: on Linux, a thread has a niceness of its own.
    """
    if getattr(_niced, "done", False):
        return
    _niced.done = True
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(
            os.PRIO_PROCESS,
            threading.get_native_id(),
            min(19, os.getpriority(os.PRIO_PROCESS, 0) + HASHING_NICENESS),
        )


def verifyPassword(passwordHash: str, password: bytes) -> bool:
    """
    Tell whether C{password} is the one C{passwordHash} was made of (in a
    thread of the pool, which gives way to the reactor: this takes as long
    as the hash's parameters say).
    """
    if threading.current_thread() is not threading.main_thread():
        _yieldToTheReactor()
    try:
        return _VERIFIER.verify(passwordHash, password)
    except (VerificationError, InvalidHashError):
        return False


class HashingPool(Service):
    """
    The threads that check passwords: a pool of at most C{threads},
    started and stopped with the server.
    """

    def __init__(
        self, reactor: IReactorFromThreads, threads: int = HASHING_THREADS
    ) -> None:
        self.reactor = reactor
        self.pool = ThreadPool(
            minthreads=0, maxthreads=threads, name="sockserve-logins"
        )

    def startService(self) -> None:
        """
        Start the threads (on demand, up to the bound).
        """
        super().startService()
        self.pool.start()

    def stopService(self) -> None:
        """
        Stop the threads (a check under way finishes first).
        """
        super().stopService()
        self.pool.stop()

    def __call__(self, function: Callable[..., T], *args: object) -> Deferred[T]:
        """
        Run C{function(*args)} in a thread of the pool.
        """
        return deferToThreadPool(self.reactor, self.pool, function, *args)


@implementer(ICredentialsChecker)
class AccountChecker:
    """
    Check a name and a password against the accounts of an
    L{AccountStore}, in the hashing pool.

    @ivar store: the accounts.
    @ivar hashing: what runs a check off the reactor (a L{HashingPool}; in
        tests, something that runs it at once).
    """

    credentialInterfaces = (IUsernamePassword,)

    def __init__(self, store: AccountStore, hashing: Hashing) -> None:
        self.store = store
        self.hashing = hashing

    def requestAvatarId(
        self, credentials: IUsernamePassword
    ) -> Deferred[bytes | tuple[()]]:
        """
        Return a L{Deferred} firing with the account's name (UTF-8) if the
        password is its password, or failing with L{UnauthorizedLogin}
        (the same, after the same time, for a name that is no account).
        """
        name = credentials.username.decode("utf-8", "replace")
        entry = self.store.entry(name)
        passwordHash = self.store.dummyHash if entry is None else entry.passwordHash
        checking: Deferred[bool] = self.hashing(
            verifyPassword, passwordHash, credentials.password
        )

        def checked(right: bool) -> bytes | tuple[()]:
            if not right or entry is None:
                raise UnauthorizedLogin(WRONG)
            return entry.name.encode("utf-8")

        return checking.addCallback(checked)


@implementer(IRealm)
class AccountRealm:
    """
    The accounts as avatars: an L{Account} (its name and roles, as the file
    says now).
    """

    def __init__(self, store: AccountStore) -> None:
        self.store = store

    def requestAvatar(
        self, avatarId: bytes | tuple[()], mind: object, *interfaces: Any
    ) -> tuple[Any, Any, Callable[[], None]]:
        """
        Return the account C{avatarId} names, as an L{IAccount}.
        """
        if IAccount not in interfaces:
            raise NotImplementedError("only IAccount avatars are given")
        assert isinstance(avatarId, bytes)
        entry = self.store.entry(avatarId.decode("utf-8"))
        if entry is None:
            # Removed while its password was being checked.
            raise UnauthorizedLogin(WRONG)
        return IAccount, entry.account(), _nothing


def _nothing() -> None:
    """
    Logging out of an account takes nothing to clean up.
    """


def accountPortal(store: AccountStore, hashing: Hashing) -> Portal:
    """
    The portal of the accounts of C{store}, checked in C{hashing}.
    """
    return Portal(AccountRealm(store), [AccountChecker(store, hashing)])

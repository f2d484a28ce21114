"""
Logins: what every front end asks when someone logs in, and what the chat
asks of names that belong to accounts.

L{Logins.login} puts a name and a password through the rules (TLS when
C{--require-tls-for-login}, the waits of L{LoginLimiter}, a bound on the
checks under way) and then the C{twisted.cred} portal; it counts each
outcome (C{sockserve_logins_total{result=...}}) and logs failures at the
server's bounded rate. A password is never logged, counted, shown or kept:
it goes from the front end to the checker's thread and nowhere else.

What the chat does with a login, and which lines it never says because
they look like one typed wrong, is L{sockserve.chat.login}'s.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from twisted.cred.credentials import UsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.cred.portal import Portal
from twisted.internet.defer import Deferred, fail
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from sockserve._text import plural
from sockserve.accounts.cred import WRONG
from sockserve.accounts.limits import LoginLimiter
from sockserve.accounts.store import Account, AccountStore, IAccount
from sockserve.chat.login import LoginRefused
from sockserve.chat.names import nameKey

# Checks of passwords under way at once, at most: beyond it a login is
# told to try again (the hashing pool would only queue it).
MAX_CHECKING = 32
# Seconds a client has to log in under --require-login.
LOGIN_DEADLINE = 60.0
# The outcomes counted, as sockserve_logins_total's result label.
RESULTS = ("ok", "failed", "throttled", "busy", "insecure", "banned", "error")
# The longest name or password a login takes (longer ones fail at once, the
# same way as a wrong one).
MAX_FIELD = 200


@dataclass(frozen=True)
class LoginRules:
    """
    The rules of logging in.

    @ivar requireTLS: refuse logins over connections that are not
        encrypted (or local: a UNIX socket) (C{--require-tls-for-login}).
    @ivar requireLogin: no guests: everyone logs in (C{--require-login}).
    @ivar deadline: seconds a client has to log in when it must.
    @ivar maxChecking: checks under way at once, at most.
    """

    requireTLS: bool = False
    requireLogin: bool = False
    deadline: float = LOGIN_DEADLINE
    maxChecking: int = MAX_CHECKING


@dataclass
class Logins:
    """
    The accounts of a chat server, and how one logs in to them.

    @ivar store: the accounts.
    @ivar portal: what checks a login (C{twisted.cred}).
    @ivar limiter: the waits failed logins cost.
    @ivar rules: the rules of logging in.
    @ivar logLimited: logs a warning at the server's bounded rate (C{kind},
        C{format}, fields).
    @ivar counts: the outcomes so far, by result.
    @ivar reloaded: called after the accounts were read again (the chat
        renames guests whose names now belong to an account).
    @ivar banned: says why a login to an account (the name, and the
        client's host) is refused though its password is right (a ban), or
        C{None} if it is not; C{None}: nothing is banned.
    """

    store: AccountStore
    portal: Portal
    limiter: LoginLimiter
    rules: LoginRules = LoginRules()
    logLimited: Callable[..., None] | None = None
    counts: Counter[str] = field(default_factory=Counter)
    reloaded: list[Callable[[], None]] = field(default_factory=list)
    checking: int = 0
    banned: Callable[[str, str | None], str | None] | None = None

    log = Logger()

    @classmethod
    def forStore(
        cls,
        store: AccountStore,
        portal: Portal,
        clock: IReactorTime,
        rules: LoginRules,
        logLimited: Callable[..., None] | None = None,
    ) -> Logins:
        """
        The logins of C{store}, checked by C{portal}, limited on C{clock}.
        """
        return cls(store, portal, LoginLimiter(clock), rules, logLimited)

    def ownerOf(self, name: str) -> str | None:
        """
        The account C{name} belongs to (by L{nameKey}), or C{None}.
        """
        return self.store.ownerOf(name)

    def reload(self) -> bool:
        """
        Read the accounts again (on SIGHUP); if they could be, tell
        L{reloaded}.
        """
        if not self.store.reload():
            return False
        for call in self.reloaded:
            call()
        return True

    def login(
        self,
        name: str,
        password: str,
        host: str | None,
        secure: bool,
        peer: str,
    ) -> Deferred[Account]:
        """
        Log in as C{name} with C{password}, from C{host} (shown as C{peer}),
        over a connection that is C{secure} (encrypted, or local).

        @return: a L{Deferred} firing with the account, or failing with
            L{LoginRefused} saying why to the client.
        """
        if self.rules.requireTLS and not secure:
            return self._refused(
                LoginRefused(
                    "this server takes passwords only over TLS (or a local "
                    "socket): connect with TLS to log in",
                    "insecure",
                )
            )
        key = nameKey(name)
        wait = self.limiter.wait(key, host)
        if wait > 0:
            seconds = max(1, math.ceil(wait))
            self._logFailure("throttled", name, peer)
            return self._refused(
                LoginRefused(
                    f"too many failed logins; try again in {plural(seconds, 'second')}",
                    "throttled",
                )
            )
        if self.checking >= self.rules.maxChecking:
            return self._refused(
                LoginRefused(
                    "the server is busy checking logins; try again in a moment",
                    "busy",
                )
            )
        # Charged before the check, paid back on success: a burst from one
        # place is limited while its first logins are being checked.
        self.limiter.failed(key, host)
        if not name or len(name) > MAX_FIELD or len(password) > MAX_FIELD:
            self._logFailure("failed", name, peer)
            return self._refused(LoginRefused(WRONG, "failed"))
        self.checking += 1
        credentials = UsernamePassword(
            name.encode("utf-8", "replace"), password.encode("utf-8", "replace")
        )
        checking: Deferred[tuple[Any, Any, Callable[[], None]]] = self.portal.login(
            credentials, None, IAccount
        )

        def done(result: object) -> object:
            self.checking -= 1
            return result

        def succeeded(login: tuple[Any, Any, Callable[[], None]]) -> Account:
            account: Account = login[1]
            self.limiter.succeeded(key, host)
            refusal = None if self.banned is None else self.banned(account.name, host)
            if refusal is not None:
                self.counts["banned"] += 1
                self._logFailure("banned", name, peer)
                raise LoginRefused(refusal, "banned")
            self.counts["ok"] += 1
            self.log.info(
                "Client {peer} logged in as {account}", peer=peer, account=account.name
            )
            return account

        def failed(failure: Failure) -> Failure:
            if failure.check(UnauthorizedLogin):
                self._logFailure("failed", name, peer)
                self.counts["failed"] += 1
                return Failure(LoginRefused(WRONG, "failed"))
            self.log.failure("Could not check a login from {peer}", failure, peer=peer)
            self.counts["error"] += 1
            return Failure(
                LoginRefused("logins are unavailable now; try again later", "error")
            )

        checking.addBoth(done)
        return checking.addCallbacks(succeeded, failed)

    def _refused(self, refused: LoginRefused) -> Deferred[Account]:
        self.counts[refused.result] += 1
        return fail(refused)

    def _logFailure(self, result: str, name: str, peer: str) -> None:
        """
        Log a failed login at the bounded rate: the name only if it is an
        account's (a name that is none may be a password typed in the
        wrong place).
        """
        if self.logLimited is None:
            return
        owner = self.store.ownerOf(name) if len(name) <= MAX_FIELD else None
        shown = owner if owner is not None else "(no such account)"
        what = {
            "failed": "Failed login",
            "banned": "Login refused (banned)",
        }.get(result, "Login refused (limited)")
        self.logLimited(
            "failed logins",
            "{what} as {account} from {peer}",
            what=what,
            account=shown,
            peer=peer,
        )

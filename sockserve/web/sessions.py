"""
The page's logins: a token in a cookie for each, kept in memory.

A browser that logs in through the page's form (C{POST /session}, see
L{sockserve.web.site}) is given a random token in an C{HttpOnly} cookie;
L{WebSessions} remembers, for each token, the account it is for and when it
expires. Each WebSocket that the browser opens with the cookie arrives
logged in to that account, and is remembered with its token, so that
revoking the token (C{DELETE /session}) logs those members out.

The store is one process's own: with several workers or bus nodes, a
session made on one is unknown to the others.
"""

from __future__ import annotations

import secrets
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from twisted.internet.interfaces import IReactorTime

from sockserve.accounts.store import Account

# How long a login through the page lasts, in seconds: a working day.
SESSION_LIFETIME = 12 * 3600.0
# The sessions one process keeps at most: beyond it the oldest are
# forgotten (their browsers log in again).
MAX_SESSIONS = 10_000
# The longest token taken from a cookie (ours are 43 characters).
MAX_TOKEN = 100
# The cookie that carries the token.
COOKIE = b"sockserve_session"


@dataclass
class WebLogin:
    """
    One login through the page.

    @ivar account: the name of the account logged in to.
    @ivar proof: what the account's password was when it logged in (its
        hash): a changed password ends the session.
    @ivar expires: when it ends, on the store's clock.
    @ivar members: what to call to log out each WebSocket member that
        arrived with it, by member.
    """

    account: str
    proof: str
    expires: float
    members: dict[object, Callable[[], object]] = field(default_factory=dict)


class WebSessions:
    """
    The page's logins of one process, by token: each lasts C{lifetime}
    seconds on C{clock}, and at most C{maximum} are kept (the oldest go
    first).
    """

    def __init__(
        self,
        clock: IReactorTime,
        lifetime: float = SESSION_LIFETIME,
        maximum: int = MAX_SESSIONS,
    ) -> None:
        self.clock = clock
        self.lifetime = lifetime
        self.maximum = maximum
        # In the order they were made, which is the order they expire in.
        self._logins: OrderedDict[str, WebLogin] = OrderedDict()

    def __len__(self) -> int:
        self._forgetExpired()
        return len(self._logins)

    def create(self, account: str, proof: str) -> str:
        """
        Start a session for the account C{account} (whose password's hash
        is C{proof}); return its token.
        """
        self._forgetExpired()
        while len(self._logins) >= self.maximum:
            self._logins.popitem(last=False)
        token = secrets.token_urlsafe(32)
        self._logins[token] = WebLogin(
            account, proof, self.clock.seconds() + self.lifetime
        )
        return token

    def find(self, token: str | None) -> WebLogin | None:
        """
        The session of C{token}, unless there is none or it expired.
        """
        if not token or len(token) > MAX_TOKEN:
            return None
        self._forgetExpired()
        return self._logins.get(token)

    def revoke(self, token: str | None) -> WebLogin | None:
        """
        End the session of C{token} now, and log its members out; return
        it, or C{None} if there was none.
        """
        login = self.find(token)
        if login is None:
            return None
        assert token is not None
        del self._logins[token]
        members, login.members = login.members, {}
        for logOut in members.values():
            logOut()
        return login

    def attach(self, token: str, member: object, logOut: Callable[[], object]) -> None:
        """
        C{member} arrived with the session of C{token}: call C{logOut} if
        the session is revoked while it is connected.
        """
        login = self._logins.get(token)
        if login is not None:
            login.members[member] = logOut

    def detach(self, token: str, member: object) -> None:
        """
        C{member} is gone (or logged out): forget it.
        """
        login = self._logins.get(token)
        if login is not None:
            login.members.pop(member, None)

    def _forgetExpired(self) -> None:
        now = self.clock.seconds()
        while self._logins:
            token, login = next(iter(self._logins.items()))
            if login.expires > now:
                return
            del self._logins[token]


@dataclass(frozen=True)
class PageLogin:
    """
    What a WebSocket handshake's cookie brought: a login to an account, or
    the reason it is refused (the account is banned).

    @ivar sessions: the store the session is in.
    @ivar token: its token.
    @ivar account: the account the member arrives logged in to, or C{None}
        if it is refused.
    @ivar refusal: why it is refused (told to the member, which is then
        closed), or C{None}.
    """

    sessions: WebSessions
    token: str
    account: Account | None = None
    refusal: str | None = None

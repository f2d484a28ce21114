"""
Logins as the chat sees them, whatever checks them
(L{sockserve.accounts.logins}): how a refusal is told, and which lines are
never said to anyone because they look like a login typed wrong
(C{ /login bob secret}, with a leading space; C{/lgoin bob secret};
C{//login bob secret}): they may hold a password.
"""

from __future__ import annotations

import re


class LoginRefused(Exception):
    """
    A login did not succeed; the message is what the client is told.

    @ivar result: the outcome, as counted (see L{sockserve.accounts.logins.RESULTS}).
    """

    def __init__(self, message: str, result: str) -> None:
        super().__init__(message)
        self.result = result


# A slash (or backslash, or several), spaces, and a word like "login":
# the verbs people use to log in, and what they become with a typo.
_SLASHED_WORD = re.compile(rb"[ \t]*[/\\]+[ \t]*([A-Za-z]+)[ \t]*([A-Za-z]*)")
_LOGIN_WORDS = frozenset(
    {"login", "logon", "signin", "auth", "identify", "pass", "password", "passwd"}
)


def looksLikeLogin(line: bytes) -> bool:
    """
    Tell whether C{line}, about to be said to others, looks like a login
    typed wrong: after any leading spaces, a slash (or backslash, or
    several) and a word one or two typos from C{login} (C{/lgoin},
    C{/logni}, C{/loign}), or C{/log in}, C{/sign in}, C{/identify},
    C{/pass}... Such a line is never said: it may hold a password.
    """
    found = _SLASHED_WORD.match(line)
    if found is None:
        return False
    word = found.group(1).decode("ascii").lower()
    second = found.group(2).decode("ascii").lower()
    if word in _LOGIN_WORDS or (word in ("log", "sign") and second in ("in", "on")):
        return True
    if not 3 <= len(word) <= 7:
        return False
    return _typos(word, "login") <= (1 if len(word) == 3 else 2)


def _typos(a: str, b: str) -> int:
    """
    The optimal string alignment distance from C{a} to C{b}: letters
    inserted, removed, changed or swapped with their neighbour.
    """
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        current = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            current[j] = min(
                previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost
            )
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                current[j] = min(current[j], previous2[j - 2] + 1)
        previous2, previous = previous, current
    return previous[-1]

"""
Accounts: who may log in, and as whom.

An accounts file (L{sockserve.accounts.store}) holds one account a line: a
name, a password hash (argon2id, in the PHC string format) and roles;
C{sockserve-passwd} (L{sockserve.accounts.passwd}) writes it. The server
reads it at start and on SIGHUP, and checks logins through C{twisted.cred}
(L{sockserve.accounts.cred}: a checker that hashes off the reactor, a realm
whose avatar is an L{Account}); L{sockserve.accounts.logins} is what every
front end asks, with the limits that make guessing cost the guesser
(L{sockserve.accounts.limits}).
"""

from sockserve.accounts.store import (
    ROLES,
    Account,
    AccountEntry,
    AccountsError,
    AccountStore,
    IAccount,
)

__all__ = [
    "ROLES",
    "Account",
    "AccountEntry",
    "AccountStore",
    "AccountsError",
    "IAccount",
]

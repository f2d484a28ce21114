"""
Guessing costs the guesser: failed logins make the next ones wait, growing
delays kept per address, per account and address, and per account.

Three rules, each a count of recent failures that is forgiven one failure
at a time while no more come (L{StrikeRule}):

  - per address (an IPv6 address by its /64): whoever guesses from one
    place waits, whatever names it tries;
  - per account and address: guessing one account's password from one
    place grows the fastest;
  - per account, from every address: a slow cap that bounds what a guesser
    with many addresses gets (a few thousand tries a day at most), and which
    an address the account logged in from before does not wait for: the
    account's owner, from where it logs in, is never locked out by someone
    guessing elsewhere. From a new address it waits at most the rule's
    longest delay (30 seconds).

A login tried while one of the rules says wait is refused at once, without
checking its password (which costs nothing then), and told how long. A
login is charged as a failure before its password is checked, and paid
back if it succeeds: a burst of guesses cannot all slip in while the first
ones are being checked. Names
that are no account are limited as accounts are: a guesser cannot tell them
apart by being limited differently.
"""

from __future__ import annotations

from dataclasses import dataclass

from twisted.internet.interfaces import IReactorTime

from sockserve._addresses import networkOf

# Entries a table keeps before it forgets the oldest (under a flood of
# random names or addresses, memory stays bounded).
TABLE_SIZE = 50_000


@dataclass(frozen=True)
class StrikeRule:
    """
    How failures turn into waiting.

    @ivar free: failures that cost no wait.
    @ivar first: seconds waited after the first failure beyond them.
    @ivar growth: each further failure multiplies the wait by this.
    @ivar longest: the longest wait, in seconds.
    @ivar forgive: seconds without a failure after which one is forgotten.
    """

    free: int
    first: float
    growth: float
    longest: float
    forgive: float

    def delay(self, failures: int) -> float:
        """
        Seconds to wait after C{failures} failures.
        """
        if failures <= self.free:
            return 0.0
        return float(
            min(self.longest, self.first * self.growth ** (failures - self.free - 1))
        )


PER_ADDRESS = StrikeRule(free=5, first=1.0, growth=2.0, longest=60.0, forgive=60.0)
PER_ACCOUNT_AND_ADDRESS = StrikeRule(
    free=3, first=2.0, growth=2.0, longest=300.0, forgive=300.0
)
PER_ACCOUNT = StrikeRule(free=20, first=1.0, growth=1.25, longest=30.0, forgive=120.0)


class _Strikes:
    __slots__ = ("at", "failures", "until")

    def __init__(self) -> None:
        self.failures = 0
        self.at = 0.0
        self.until = 0.0


class StrikeTable:
    """
    Failures by key under one rule, bounded in size.
    """

    def __init__(self, rule: StrikeRule, size: int = TABLE_SIZE) -> None:
        self.rule = rule
        self.size = size
        self._strikes: dict[object, _Strikes] = {}

    def __len__(self) -> int:
        return len(self._strikes)

    def wait(self, key: object, now: float) -> float:
        """
        Seconds C{key} must still wait before it may try again.
        """
        strikes = self._strikes.get(key)
        return 0.0 if strikes is None else max(0.0, strikes.until - now)

    def failed(self, key: object, now: float) -> None:
        """
        C{key} failed once more: its wait grows.
        """
        strikes = self._strikes.pop(key, None)
        if strikes is None:
            strikes = _Strikes()
            if len(self._strikes) >= self.size:
                self._forgetOldest(now)
        else:
            forgiven = int((now - strikes.at) // self.rule.forgive)
            strikes.failures = max(0, strikes.failures - forgiven)
        strikes.failures += 1
        strikes.at = now
        strikes.until = now + self.rule.delay(strikes.failures)
        # Last in the dict: the most recently failed.
        self._strikes[key] = strikes

    def refund(self, key: object) -> None:
        """
        Take back one failure of C{key} (charged for a login that then
        succeeded).
        """
        strikes = self._strikes.get(key)
        if strikes is None:
            return
        strikes.failures = max(0, strikes.failures - 1)
        strikes.until = strikes.at + self.rule.delay(strikes.failures)

    def forget(self, key: object) -> None:
        """
        C{key} succeeded: its failures are forgotten.
        """
        self._strikes.pop(key, None)

    def _forgetOldest(self, now: float) -> None:
        """
        Forget what is forgiven by now, and at least the oldest quarter.
        """
        keep = self.rule.forgive * (self.rule.free + 1)
        strikes = self._strikes
        old = [
            key
            for key, entry in strikes.items()
            if now - entry.at > keep and entry.until <= now
        ]
        for key in old:
            del strikes[key]
        if len(strikes) >= self.size:
            for key in list(strikes)[: max(1, self.size // 4)]:
                del strikes[key]


class LoginLimiter:
    """
    The waits failed logins cost (see the module's docstring).

    @ivar clock: the source of time.
    """

    def __init__(
        self,
        clock: IReactorTime,
        perAddress: StrikeRule = PER_ADDRESS,
        perAccountAndAddress: StrikeRule = PER_ACCOUNT_AND_ADDRESS,
        perAccount: StrikeRule = PER_ACCOUNT,
        size: int = TABLE_SIZE,
    ) -> None:
        self.clock = clock
        self.addresses = StrikeTable(perAddress, size)
        self.pairs = StrikeTable(perAccountAndAddress, size)
        self.accounts = StrikeTable(perAccount, size)
        self._trusted: dict[tuple[str, str], None] = {}
        self._size = size

    def wait(self, key: str, host: str | None) -> float:
        """
        Seconds a login to the account C{key} (a name's L{nameKey}) from
        C{host} must wait before it is checked (0: none).
        """
        now = self.clock.seconds()
        network = _networkOf(host)
        waits = [
            self.addresses.wait(network, now),
            self.pairs.wait((key, network), now),
        ]
        if (key, network) not in self._trusted:
            waits.append(self.accounts.wait(key, now))
        return max(waits)

    def failed(self, key: str, host: str | None) -> None:
        """
        A login to C{key} from C{host} failed (or is about to be checked:
        see L{succeeded}).
        """
        now = self.clock.seconds()
        network = _networkOf(host)
        self.addresses.failed(network, now)
        self.pairs.failed((key, network), now)
        if (key, network) not in self._trusted:
            self.accounts.failed(key, now)

    def succeeded(self, key: str, host: str | None) -> None:
        """
        A login to C{key} from C{host} succeeded: the failure it was charged
        is paid back, the address is trusted for the account (it does not
        wait for the account's cap), and its failures for it are forgotten.
        """
        network = _networkOf(host)
        self.addresses.refund(network)
        if (key, network) not in self._trusted:
            self.accounts.refund(key)
        self.pairs.forget((key, network))
        trusted = self._trusted
        trusted.pop((key, network), None)
        if len(trusted) >= self._size:
            del trusted[next(iter(trusted))]
        trusted[(key, network)] = None


def _networkOf(host: str | None) -> str:
    """
    The address a limit counts (a UNIX socket's clients are one).
    """
    return "unix" if host is None else networkOf(host)

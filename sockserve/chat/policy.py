"""
How much one member may ask of the room, and what happens when it asks for
more: the room's rules against floods, in one object every session shares.

Each rule makes the client that breaks it pay, never the others: too many
commands, or messages that would make the server send more than
C{floodLimit} bytes a second, and its input waits (the server stops reading
it, and TCP slows it down); too many name changes, and it is told to wait;
an address that joins and leaves again and again is let in quietly, so that
its churn is not announced to everyone.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from twisted.internet.interfaces import IReactorTime

from sockserve._addresses import networkOf
from sockserve.stats import ServerStatistics


class Budget:
    """
    A token bucket that may go into debt: C{rate} a second, at most
    C{burst} saved up. Spending more than there is leaves a debt, and the
    time to pay it back is how long the spender waits.
    """

    __slots__ = ("_at", "_tokens")

    def __init__(self, burst: float) -> None:
        self._tokens = burst
        self._at: float | None = None

    def settled(self, now: float, rate: float, burst: float) -> bool:
        """
        Tell whether everything spent has been paid back by C{now}: the
        budget is as if new, and may be forgotten.
        """
        if self._at is None:
            return True
        return self._tokens + (now - self._at) * rate >= burst

    def spend(self, now: float, cost: float, rate: float, burst: float) -> float:
        """
        Spend C{cost} at time C{now}; return the seconds to wait before
        spending again (0: none).
        """
        if self._at is not None:
            self._tokens = min(burst, self._tokens + (now - self._at) * rate)
        self._at = now
        self._tokens -= cost
        return 0.0 if self._tokens >= 0 else -self._tokens / rate


_PRUNE_AT = 10_000


class ChurnWatch:
    """
    Count recent joins by address (an IPv6 address by its /64), to tell an
    address that comes and goes again and again (whose joins and departures
    are then not announced).

    @ivar limit: joins from one address within C{window} seconds before its
        further joins are quiet.
    """

    def __init__(self, clock: IReactorTime, limit: int = 10, window: float = 10.0):
        self.clock = clock
        self.limit = limit
        self.window = window
        self._joins: dict[str, deque[float]] = {}
        self._prune = _PRUNE_AT

    def joining(self, host: str | None) -> bool:
        """
        Record a join from C{host}; return whether it should be quiet.
        """
        if host is None:
            return False
        key = networkOf(host)
        now = self.clock.seconds()
        since = now - self.window
        if len(self._joins) >= self._prune:
            self._joins = {
                key: times for key, times in self._joins.items() if times[-1] > since
            }
            # Pruned again only once the table has doubled: a cost shared by
            # as many joins as it removes at most.
            self._prune = max(_PRUNE_AT, 2 * len(self._joins))
        times = self._joins.setdefault(key, deque(maxlen=self.limit + 1))
        times.append(now)
        while times and times[0] <= since:
            times.popleft()
        return len(times) > self.limit


KIB = 1024
MIB = 1024 * KIB


@dataclass(frozen=True)
class ChatPolicy:
    """
    The rules every member's session follows.

    @ivar clock: the source of time.
    @ivar maxPending: bytes of output queued for a member that does not read
        before it is dropped.
    @ivar floodLimit: bytes of output a second one member's messages may
        cause in one room (lines times recipients); beyond it, its input
        waits. 0: no limit. (Who is behind, whom bulk senders wait for, is
        each room's own: L{sockserve.chat.room.ChatRoom.pressure}.)
    @ivar commandRate: commands a second a member may run once its
        C{commandBurst} is spent; beyond it, its input waits.
    @ivar renames: name changes a member may make within C{renameWindow}
        seconds; beyond them, C{/nick} is refused.
    @ivar churn: addresses that join too often, whose joins are quiet.
    @ivar logRenames: whether each change of name is logged.
    @ivar stats: the server's statistics, counted as the room goes.
    """

    clock: IReactorTime
    maxPending: int = 1 * MIB
    floodLimit: int = 64 * MIB
    commandRate: float = 2.0
    commandBurst: int = 20
    renames: int = 5
    renameWindow: float = 60.0
    churn: ChurnWatch | None = None
    logRenames: bool = True
    stats: ServerStatistics = field(default_factory=ServerStatistics)

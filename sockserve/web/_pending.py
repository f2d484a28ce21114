"""
The web site's HTTP connections that are not WebSockets yet, counted by
address, so that a slow or idle handshake costs its sender.

A browser's handshake is pending for one round trip; one that is pending
for long is slow or idle. L{PendingConnections} bounds them in all and per
address (an IPv6 address counted by its /64), and makes room for a
newcomer by dropping the oldest connection of whoever holds the most: an
address that holds many, or many addresses that hold a few each, cannot
keep a newcomer out, since the newcomer is the youngest and holds the least.
"""

from __future__ import annotations

from typing import Generic, TypeVar

T = TypeVar("T")


class PendingConnections(Generic[T]):
    """
    Connections counted by the address they come from.

      - at most C{share} from one address: a newcomer from an address that
        holds that many takes the place of the address's oldest;
      - at most C{total} in all: a newcomer takes the place of the oldest
        connection of the address that holds the most (of those that hold
        as many, the one that came to hold that many first);
      - with C{perAddress} (C{--max-per-ip}), a newcomer from an address
        that holds that many is refused instead.

    Every operation takes constant time: addresses are kept in buckets by
    how many connections they hold.

    @ivar total: the most connections in all.
    @ivar share: the most from one address before its oldest are dropped.
    @ivar perAddress: the most from one address before newcomers are
        refused, or C{None}.
    """

    def __init__(self, total: int, share: int, perAddress: int | None = None) -> None:
        if total < 1 or share < 1:
            raise ValueError("total and share must be at least 1")
        self.total = total
        self.share = share
        self.perAddress = perAddress
        # Each address's connections, oldest first.
        self._byAddress: dict[str, dict[T, None]] = {}
        self._addressOf: dict[T, str] = {}
        # Addresses by how many connections they hold, in the order they
        # came to hold that many.
        self._holding: dict[int, dict[str, None]] = {}
        self._most = 0

    def __len__(self) -> int:
        return len(self._addressOf)

    def __contains__(self, item: object) -> bool:
        return item in self._addressOf

    def count(self, address: str) -> int:
        """
        Return how many connections C{address} holds.
        """
        return len(self._byAddress.get(address, ()))

    def add(self, item: T, address: str) -> list[T] | None:
        """
        Count C{item}, from C{address}; return the connections dropped to
        make room for it (no longer counted: the caller closes them), or
        C{None} if it is refused (and not counted).
        """
        held = self.count(address)
        if self.perAddress is not None and held >= self.perAddress:
            return None
        dropped = []
        if held >= self.share:
            dropped.append(self._dropOldest(address))
        elif len(self) >= self.total:
            first = next(iter(self._holding[self._most]))
            dropped.append(self._dropOldest(first))
        self._addressOf[item] = address
        self._byAddress.setdefault(address, {})[item] = None
        self._moved(address, self.count(address) - 1)
        return dropped

    def remove(self, item: T) -> None:
        """
        Stop counting C{item}, if it is counted.
        """
        address = self._addressOf.pop(item, None)
        if address is None:
            return
        connections = self._byAddress[address]
        del connections[item]
        if not connections:
            del self._byAddress[address]
        self._moved(address, len(connections) + 1)

    def _dropOldest(self, address: str) -> T:
        oldest = next(iter(self._byAddress[address]))
        self.remove(oldest)
        return oldest

    def _moved(self, address: str, before: int) -> None:
        """
        C{address} held C{before} connections, and now holds one more or
        one fewer: move it to its new bucket.
        """
        after = self.count(address)
        if before:
            bucket = self._holding[before]
            del bucket[address]
            if not bucket:
                del self._holding[before]
        if after:
            self._holding.setdefault(after, {})[address] = None
        if after > self._most:
            self._most = after
        elif before == self._most and before not in self._holding:
            # The count changes by one: the next bucket down holds
            # this address, or none is left.
            self._most = after

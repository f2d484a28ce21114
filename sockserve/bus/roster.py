"""
The members of one room that the other nodes of the bus hold, as this node
knows them: from the room's snapshot when it opened here, then from the
joins, departures and renames in its stream.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from zope.interface import implementer

from sockserve.chat.names import nameKey
from sockserve.chat.room import IRoster


@implementer(IRoster)
class Roster:
    """
    A room's members on other nodes, by the key of their name: C{(node,
    name)}.

    @ivar others: the members, by key.
    @ivar heldHere: tells whether this node has a member with a key (a name
        this node holds is never another node's, whatever its stream says
        of the past).
    @ivar changed: called when the members change.
    """

    def __init__(
        self,
        heldHere: Callable[[str], bool] = lambda key: False,
        changed: Callable[[], None] = lambda: None,
    ) -> None:
        self.others: dict[str, tuple[str, str]] = {}
        self.heldHere = heldHere
        self.changed = changed

    def population(self) -> int:
        """
        How many members other nodes hold.
        """
        return len(self.others)

    def names(self) -> Iterable[str]:
        """
        Their names.
        """
        return [name for _, name in self.others.values()]

    def holderOf(self, key: str) -> str | None:
        """
        The name of the member, elsewhere, whose name has C{key}.
        """
        held = self.others.get(key)
        return None if held is None else held[1]

    def load(self, members: Iterable[tuple[str, str]], ownNode: str) -> None:
        """
        Take the room's members as a snapshot lists them (this node's own
        left out).
        """
        self.others = {
            nameKey(name): (node, name)
            for node, name in members
            if node != ownNode and not self.heldHere(nameKey(name))
        }
        self.changed()

    def add(self, node: str, name: str) -> None:
        """
        C{node} holds a member called C{name}, unless this node holds that
        name, or another node does (a node's provisional name, settled
        since under another).
        """
        key = nameKey(name)
        current = self.others.get(key)
        if not self.heldHere(key) and (current is None or current[0] == node):
            self.others[key] = (node, name)
            self.changed()

    def remove(self, name: str, node: str) -> None:
        """
        C{node}'s member C{name} left (not if another node took the name).
        """
        key = nameKey(name)
        current = self.others.get(key)
        if current is not None and current[0] == node:
            del self.others[key]
            self.changed()

    def replace(self, node: str, names: Iterable[str]) -> None:
        """
        C{node}'s members here are C{names} now: those it no longer lists
        are gone.
        """
        listed = {nameKey(name) for name in names}
        for key, (holder, _) in list(self.others.items()):
            if holder == node and key not in listed:
                del self.others[key]
        for name in names:
            self.add(node, name)
        self.changed()

    def forget(self, key: str) -> None:
        """
        Whoever elsewhere had the name with C{key} has it no longer (a
        person here has taken it).
        """
        if self.others.pop(key, None) is not None:
            self.changed()

    def clear(self) -> None:
        """
        Forget everyone.
        """
        self.others.clear()
        self.changed()

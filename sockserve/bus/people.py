"""
The people of every node of a bus: a name is claimed and changed in one
atomic step in Redis while the bus is there, and decided by the node alone,
from what it knows, while the bus is away (checked again when it is back).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, fail
from twisted.python.failure import Failure
from zope.interface import implementer

from sockserve.bus.redis import BusFull
from sockserve.chat.names import NameRejected, checkName, nameKey, takenMessage
from sockserve.chat.people import IChatMember, IPeople

if TYPE_CHECKING:
    from sockserve.bus.node import BusNode


@implementer(IPeople)
class BusPeople:
    """
    The people of every node: a name is claimed and changed in one atomic
    step in Redis while the bus is there, and decided here, from what the
    node knows, while it is away.
    """

    def __init__(self, node: BusNode) -> None:
        self.node = node

    @property
    def population(self) -> int:
        """
        How many people this node has.
        """
        return len(self.node.people)

    def claim(self, person: IChatMember, name: str | None) -> Deferred[str]:
        """
        Give C{person} C{name}, or a default name.
        """
        node = self.node
        if name is not None:
            try:
                checkName(name)
            except NameRejected as rejected:
                return fail(rejected)
            holder = node.holderOf(name)
            if holder is not None:
                return fail(NameRejected(takenMessage(name, holder), taken=True))
        arguments = ("", "") if name is None else (name, nameKey(name))
        asking = node.bus.command("claim", *arguments).addCallback(node.bus.answer)

        def answered(answer: list[Any]) -> str:
            status: bytes = answer[0]
            given: str = answer[1].decode("utf-8", "replace")
            if status == b"taken":
                assert name is not None
                raise NameRejected(takenMessage(name, given or None), taken=True)
            node._local(person, given)
            return given

        def alone(failure: Failure) -> str | Failure:
            if failure.check(NameRejected):
                return failure
            given = node._guest() if name is None else name
            node._local(person, given)
            return given

        return asking.addCallbacks(answered, alone)

    def rename(self, person: IChatMember, oldName: str, newName: str) -> Deferred[None]:
        """
        Call C{person} C{newName}: on the bus while it is there (with every
        room it is in), here otherwise.
        """
        node = self.node
        try:
            checkName(newName)
            self._checkFree(person, oldName, newName)
        except NameRejected as rejected:
            return fail(rejected)
        rooms = []
        if node.service is not None:
            rooms = [room.key for room in node.service.roomsOf(person)]
        asking = node.bus.command(
            "rename", nameKey(oldName), newName, nameKey(newName), *rooms
        ).addCallback(node.bus.answer)

        def answered(answer: list[Any]) -> None:
            if answer[0] == b"taken":
                raise NameRejected(
                    takenMessage(newName, answer[1].decode("utf-8", "replace")),
                    taken=True,
                )
            self._apply(person, oldName, newName)

        def alone(failure: Failure) -> Failure | None:
            if failure.check(NameRejected):
                return failure
            if failure.check(BusFull):
                return Failure(
                    NameRejected("names cannot be changed now (the bus is full)")
                )
            # Decided here, on what this node knows now: another person of
            # this node may have taken the name meanwhile.
            self._checkFree(person, oldName, newName)
            self._apply(person, oldName, newName)
            return None

        return asking.addCallbacks(answered, alone)

    def _checkFree(self, person: IChatMember, oldName: str, newName: str) -> None:
        key = nameKey(newName)
        if key == nameKey(oldName):
            return
        holder = self.node.holderOf(newName)
        held = self.node.people.get(key)
        if holder is not None and (held is None or held[0] is not person):
            raise NameRejected(takenMessage(newName, holder), taken=True)

    def _apply(self, person: IChatMember, oldName: str, newName: str) -> None:
        people = self.node.people
        oldKey = nameKey(oldName)
        if people.get(oldKey, (None,))[0] is person:
            del people[oldKey]
        self.node._local(person, newName)

    def release(self, person: IChatMember, name: str) -> None:
        """
        C{person} is gone: its name is free (on the bus too, once it is
        there again).
        """
        key = nameKey(name)
        people = self.node.people
        if people.get(key, (None,))[0] is person:
            del people[key]
            if self.node.bus.connected:
                self.node.bus.command("release", key).addErrback(lambda failure: None)

    def find(self, name: str) -> IChatMember | None:
        """
        The person of this node called C{name}, or C{None}.
        """
        held = self.node.people.get(nameKey(name))
        return None if held is None else held[0]

    def holderOf(self, name: str) -> str | None:
        """
        The name of whoever known here has a name the same as C{name}.
        """
        return self.node.holderOf(name)

    def everyone(self) -> list[tuple[IChatMember, str]]:
        """
        The people of this node, with their names.
        """
        return list(self.node.people.values())

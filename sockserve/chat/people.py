"""
People: one name per person, across every room of the server (and, with a
bus, of every node).

A person is anything that receives events (L{IChatMember}): a member's
session. L{IPeople} is the seam between this process's registry
(L{LocalPeople}) and the bus's (L{sockserve.bus.people}), which asks Redis
first; both answer with L{Deferred}s.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.internet.defer import Deferred, fail, succeed
from zope.interface import Attribute, Interface, implementer

from sockserve.chat.events import ChatEvent
from sockserve.chat.names import (
    NameRejected,
    checkName,
    guestName,
    nameKey,
    takenMessage,
)

if TYPE_CHECKING:
    from sockserve.accounts.store import Account


class IChatMember(Interface):
    """
    Someone in the chat service: it receives events.
    """

    account = Attribute(
        "The account it is logged in to (an L{sockserve.accounts.Account}), "
        "or C{None}: a guest."
    )

    def receive(event: ChatEvent) -> None:  # noqa: N805 (zope.interface style)
        """
        Handle C{event}, something that happened in a room it is in, or to
        it.
        """

    def accountChanged(account: Account | None) -> None:  # noqa: N805
        """
        The accounts were read again, and the one it is logged in to
        changed: C{account} is what it is now (its roles), or C{None} if it
        is gone (the member is logged out).
        """

    def renamed(newName: str) -> None:  # noqa: N805
        """
        The service gave the member another name (its name was taken on
        another node while this one was out of contact).
        """


class NobodyThere(LookupError):
    """
    Nobody has the name asked for.
    """

    def __init__(self, name: str) -> None:
        super().__init__(f"nobody here is called {name}")
        self.name = name


class Unreachable(LookupError):
    """
    Someone cannot be reached now (on another node, while the bus is away).
    """

    def __init__(self, name: str) -> None:
        super().__init__(
            f"{name} cannot be reached now: the other servers are out of contact"
        )
        self.name = name


class IPeople(Interface):
    """
    The names of the people of the chat service: each has one, and no two
    have the same (see L{nameKey}).
    """

    population = Attribute("How many people have a name here (this process).")

    def claim(person: IChatMember, name: str | None) -> Deferred[str]:  # noqa: N805
        """
        Give C{person} the name C{name}, or, if C{None}, a default name
        (C{guest} and a number).

        @return: a L{Deferred} firing with the name given, or failing with
            L{NameRejected}.
        """

    def rename(
        person: IChatMember,  # noqa: N805
        oldName: str,
        newName: str,
    ) -> Deferred[None]:
        """
        Call C{person}, now C{oldName}, C{newName}.

        @return: a L{Deferred} that fires once it is done, or fails with
            L{NameRejected}.
        """

    def release(person: IChatMember, name: str) -> None:  # noqa: N805
        """
        C{person}, called C{name}, is gone: the name is free.
        """

    def find(name: str) -> IChatMember | None:  # noqa: N805
        """
        Return the person of this process called C{name} (see L{nameKey}),
        or C{None}.
        """

    def holderOf(name: str) -> str | None:  # noqa: N805
        """
        Return the name of whoever known here has a name the same as
        C{name}, or C{None}.
        """

    def everyone() -> list[tuple[IChatMember, str]]:
        """
        Return the people of this process, each with its name.
        """


@implementer(IPeople)
class LocalPeople:
    """
    The people of this process, and nobody else.
    """

    def __init__(self) -> None:
        self._byKey: dict[str, tuple[IChatMember, str]] = {}
        self._guests = 0

    @property
    def population(self) -> int:
        """
        How many people have a name.
        """
        return len(self._byKey)

    def claim(self, person: IChatMember, name: str | None) -> Deferred[str]:
        """
        Give C{person} C{name}, or the first free C{guestN}.
        """
        if name is None:
            while True:
                self._guests += 1
                name = guestName(self._guests)
                if nameKey(name) not in self._byKey:
                    break
        else:
            try:
                checkName(name)
            except NameRejected as rejected:
                return fail(rejected)
            holder = self._byKey.get(nameKey(name))
            if holder is not None:
                return fail(NameRejected(takenMessage(name, holder[1]), taken=True))
        self._byKey[nameKey(name)] = (person, name)
        return succeed(name)

    def rename(self, person: IChatMember, oldName: str, newName: str) -> Deferred[None]:
        """
        Call C{person} C{newName}, unless someone else has a name the same.
        """
        try:
            checkName(newName)
        except NameRejected as rejected:
            return fail(rejected)
        newKey, oldKey = nameKey(newName), nameKey(oldName)
        holder = self._byKey.get(newKey)
        if holder is not None and holder[0] is not person:
            return fail(NameRejected(takenMessage(newName, holder[1]), taken=True))
        if self._byKey.get(oldKey, (None,))[0] is person:
            del self._byKey[oldKey]
        self._byKey[newKey] = (person, newName)
        return succeed(None)

    def release(self, person: IChatMember, name: str) -> None:
        """
        Free C{name}, if C{person} holds it.
        """
        key = nameKey(name)
        if self._byKey.get(key, (None,))[0] is person:
            del self._byKey[key]

    def find(self, name: str) -> IChatMember | None:
        """
        Return the person called C{name}, or C{None}.
        """
        held = self._byKey.get(nameKey(name))
        return None if held is None else held[0]

    def holderOf(self, name: str) -> str | None:
        """
        Return the name of the person whose name is the same as C{name}.
        """
        held = self._byKey.get(nameKey(name))
        return None if held is None else held[1]

    def everyone(self) -> list[tuple[IChatMember, str]]:
        """
        Return everyone, with their names.
        """
        return list(self._byKey.values())

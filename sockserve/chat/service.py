"""
The chat service: the rooms and the people of one server (or of one node of
a bus), as C{twisted.words}' C{IChatService} has groups and users.

Rooms are looked up, or created, by name (L{ChatService.join}); an empty room
is forgotten. People have one name each across every room (L{IPeople}), and
can say something to one another alone (L{ChatService.tell}).

What a bus changes is handed to the service: the people of every node
(L{IPeople}), and where rooms live (L{IRoomDirectory}: admission against a
capacity that spans nodes, rooms that exist on other nodes, relays and
rosters, private messages to people elsewhere). Without one, everything is
this process's (L{LocalPeople}, L{LocalRooms}).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import Interface, implementer

from sockserve.chat.events import Notice, PrivateMessage
from sockserve.chat.names import (
    NameRejected,
    NameReserved,
    RoomRejected,
    nameKey,
    roomKey,
    roomName,
)
from sockserve.chat.pacing import OutputPressure
from sockserve.chat.people import IChatMember, IPeople, LocalPeople, NobodyThere
from sockserve.chat.room import (
    HISTORY_BYTES,
    NOBODY_ELSEWHERE,
    ChatRoom,
    IRoomRelay,
    IRoster,
    RoomFull,
)

if TYPE_CHECKING:
    from sockserve.accounts.logins import Logins
    from sockserve.chat.moderation import Moderation

DEFAULT_ROOM = "default"
DEFAULT_MAX_ROOMS = 100


@dataclass(frozen=True)
class RoomRules:
    """
    The rules of every room of the service.

    @ivar default: the room everyone is in on arrival.
    @ivar capacity: the most members one room holds (C{--max-clients}).
    @ivar presenceLimit: a room announces joins, leaves and renames only
        while it has at most this many members.
    @ivar history: lines a room keeps for those who join (C{--history}).
    @ivar historyBytes: bytes of them it keeps and shows, at most.
    @ivar maxRooms: the most rooms there may be at once (C{--max-rooms}).
    @ivar fixed: the only rooms there may be (C{--rooms}); empty: any.
    """

    default: str = DEFAULT_ROOM
    capacity: int = 10
    presenceLimit: int = 100
    history: int = 0
    historyBytes: int = HISTORY_BYTES
    maxRooms: int = DEFAULT_MAX_ROOMS
    fixed: tuple[str, ...] = field(default=())

    @property
    def madeByOne(self) -> int:
        """
        The most rooms one person may be in when it makes another (the
        default room aside): a quarter of C{maxRooms}, at most 10, at least
        one; so that one person cannot make every room there may be.
        """
        return min(10, max(1, self.maxRooms // 4))

    def isDefault(self, name: str) -> bool:
        """
        Return whether C{name} is the default room's: it always exists, and
        is not one of the C{maxRooms} rooms people make.
        """
        return roomKey(name) == roomKey(self.default)

    def allows(self, name: str) -> bool:
        """
        Return whether a room called C{name} may exist.
        """
        return not self.fixed or roomKey(name) in {roomKey(f) for f in self.fixed}


class IRoomDirectory(Interface):
    """
    Where the rooms live: this process alone (L{LocalRooms}), or the nodes
    of a bus (L{sockserve.bus.node.BusRooms}).
    """

    def admit(
        room: ChatRoom,  # noqa: N805
        name: str,
        creating: bool,
        rules: RoomRules,
    ) -> Deferred[None]:
        """
        Admit C{name} into C{room} (new here if C{creating}), within its
        capacity and the most rooms there may be.

        @return: a L{Deferred} that fires once admitted, or fails with
            L{RoomFull} or L{RoomRejected}.
        """

    def opened(room: ChatRoom) -> None:  # noqa: N805
        """
        C{room} now has members here: hear what happens in it elsewhere.
        """

    def closed(room: ChatRoom) -> None:  # noqa: N805
        """
        C{room} has no more members here.
        """

    def relayFor(name: str) -> IRoomRelay | None:  # noqa: N805
        """
        Return what tells the other nodes what happens in the room C{name},
        or C{None}.
        """

    def rosterFor(name: str) -> IRoster:  # noqa: N805
        """
        Return the members of the room C{name} that other nodes hold.
        """

    def rooms(local: Sequence[tuple[str, int]]) -> Deferred[list[tuple[str, int]]]:  # noqa: N805
        """
        Return every room, C{(name, members)}, given those this process
        has (C{local}).
        """

    def tell(sender: str, recipient: str, lines: Sequence[bytes]) -> Deferred[str]:  # noqa: N805
        """
        Say C{lines} from C{sender} to the person called C{recipient}
        elsewhere.

        @return: a L{Deferred} firing with the recipient's name as it is, or
            failing with L{NobodyThere}.
        """


@implementer(IRoomDirectory)
class LocalRooms:
    """
    Rooms that live in this process alone.
    """

    def __init__(self, service: ChatService) -> None:
        self.service = service

    def admit(
        self, room: ChatRoom, name: str, creating: bool, rules: RoomRules
    ) -> Deferred[None]:
        """
        Admit C{name} unless C{room} is full, or new and one too many.
        """
        if (
            creating
            and not rules.isDefault(room.name)
            and (self.service.roomCount() > rules.maxRooms)
        ):
            return fail(RoomRejected(tooManyRooms(rules.maxRooms), tooMany=True))
        if room.isFull():
            return fail(RoomFull(room.name, room.capacity))
        return succeed(None)

    def opened(self, room: ChatRoom) -> None:
        """
        Nothing to hear elsewhere.
        """

    def closed(self, room: ChatRoom) -> None:
        """
        Nothing to tell.
        """

    def relayFor(self, name: str) -> IRoomRelay | None:
        """
        No relay: nobody elsewhere.
        """
        return None

    def rosterFor(self, name: str) -> IRoster:
        """
        Nobody elsewhere.
        """
        return NOBODY_ELSEWHERE

    def rooms(
        self, local: Sequence[tuple[str, int]]
    ) -> Deferred[list[tuple[str, int]]]:
        """
        The rooms here are all the rooms.
        """
        return succeed(list(local))

    def tell(
        self, sender: str, recipient: str, lines: Sequence[bytes]
    ) -> Deferred[str]:
        """
        Nobody is elsewhere.
        """
        return fail(NobodyThere(recipient))


def tooManyRooms(maxRooms: int) -> str:
    """
    What someone creating one room too many is told.
    """
    return (
        f"no more rooms can be made here (at most {maxRooms}, besides the "
        "default room); join one of them"
    )


class ServiceClosed(Exception):
    """
    The chat is shutting down: nobody arrives any more.
    """


class ChatService:
    """
    The rooms and people of one server.

    @ivar rules: the rules of every room.
    @ivar people: everyone's name.
    @ivar directory: where the rooms live.
    @ivar logins: the accounts, and how to log in to them, or C{None}:
        everyone is a guest. An account's name is reserved: only someone
        logged in to it may have it (checked here, where every front end's
        names are given, before the people are asked).
    @ivar moderation: the bans and mutes operators decide, or C{None}
        (without accounts there are no operators).
    """

    log = Logger()

    def __init__(
        self,
        rules: RoomRules,
        clock: IReactorTime | None = None,
        people: IPeople | None = None,
        directory: IRoomDirectory | None = None,
        logins: Logins | None = None,
    ) -> None:
        self.rules = rules
        self.clock = clock
        self.people: IPeople = LocalPeople() if people is None else people
        self.directory: IRoomDirectory = (
            LocalRooms(self) if directory is None else directory
        )
        self._rooms: dict[str, ChatRoom] = {}
        self._roomsOf: dict[IChatMember, dict[str, ChatRoom]] = {}
        self.closed = False
        self.logins: Logins | None = None
        self.moderation: Moderation | None = None
        if logins is not None:
            self.useLogins(logins)

    def useLogins(self, logins: Logins) -> None:
        """
        Reserve the names of the accounts of C{logins} for those logged in
        to them; when the accounts are read again, guests holding the name
        of an account are renamed (see L{releaseReserved}).
        """
        self.logins = logins
        logins.reloaded.append(self.releaseReserved)
        logins.reloaded.append(self.applyAccounts)

    def useModeration(self, moderation: Moderation) -> None:
        """
        Let operators ban and mute, as C{moderation} keeps it: a banned
        account cannot log in (see L{Logins.banned}).
        """
        self.moderation = moderation
        if self.logins is not None:
            self.logins.banned = moderation.loginRefusal

    # Names that belong to accounts

    def reserved(self, person: IChatMember, name: str) -> NameReserved | None:
        """
        Return why C{person} may not have C{name} (an account's, and it is
        not logged in to that account), or C{None} if it may.
        """
        if self.logins is None:
            return None
        owner = self.logins.ownerOf(name)
        if owner is None:
            return None
        account = person.account
        if account is not None and nameKey(account.name) == nameKey(owner):
            return None
        return NameReserved(name, owner)

    def toGuest(self, person: IChatMember, name: str, why: str) -> Deferred[str]:
        """
        Give C{person}, called C{name}, a default name (C{guestN}) instead,
        and tell it C{why}.

        @return: a L{Deferred} firing with the new name.
        """
        claiming = self.people.claim(person, None)

        def claimed(guest: str) -> Deferred[str]:
            # Held only to be sure nobody has it: the rename takes it.
            self.people.release(person, guest)
            renaming = self.rename(person, name, guest)

            def renamed(ignored: object) -> str:
                person.renamed(guest)
                person.receive(Notice(f"{why}; you are {guest} now"))
                return guest

            return renaming.addCallback(renamed)

        return claiming.addCallback(claimed)

    def _notRenamed(self, failure: Failure, name: str) -> None:
        self.log.failure("Could not rename {name}", failure, name=name)

    def releaseReserved(self) -> None:
        """
        The accounts were read again: every person of this process (a
        guest, or logged in to another account) whose name is now an
        account's is renamed C{guestN}, and told why.
        """
        for person, name in self.people.everyone():
            refused = self.reserved(person, name)
            if refused is not None:
                renaming = self.toGuest(
                    person, name, f"the name {name} now belongs to an account"
                )
                renaming.addErrback(self._notRenamed, name)

    def applyAccounts(self) -> None:
        """
        The accounts were read again: every member of this process logged
        in to an account that changed is told (L{IChatMember.accountChanged}):
        one whose account is gone is logged out, and one whose roles changed
        has its new roles at once (an operator no longer one loses its
        commands).
        """
        logins = self.logins
        if logins is None:
            return
        members = {member for member, _ in self.people.everyone()}
        members.update(self._roomsOf)
        for member in members:
            account = member.account
            if account is None:
                continue
            entry = logins.store.entry(account.name)
            if entry is None:
                member.accountChanged(None)
            elif entry.roles != account.roles or entry.name != account.name:
                member.accountChanged(entry.account())

    # Rooms

    def room(self, name: str) -> ChatRoom | None:
        """
        Return the room called C{name} (a leading C{#} ignored, any case) if
        it has members here, or C{None}.
        """
        return self._rooms.get(roomKey(name.removeprefix("#")))

    def roomCount(self) -> int:
        """
        Return how many rooms people made (with members here): every room
        but the default one.
        """
        return len(self._rooms) - (roomKey(self.rules.default) in self._rooms)

    def localRooms(self) -> list[tuple[str, int]]:
        """
        Return the rooms with members here (and the default room, which
        always exists), C{(name, population)}.
        """
        rooms = [(room.name, room.population()) for room in self._rooms.values()]
        if roomKey(self.rules.default) not in self._rooms:
            rooms.append((self.rules.default, 0))
        return rooms

    def rooms(self) -> Deferred[list[tuple[str, int]]]:
        """
        Return every room, C{(name, population)}, sorted by name.
        """
        listing = self.directory.rooms(self.localRooms())
        return listing.addCallback(
            lambda rooms: sorted(rooms, key=lambda room: roomKey(room[0]))
        )

    def roomsOf(self, person: IChatMember) -> list[ChatRoom]:
        """
        Return the rooms C{person} is in, in the order it joined them.
        """
        return list(self._roomsOf.get(person, {}).values())

    def _open(self, name: str) -> tuple[ChatRoom, bool]:
        key = roomKey(name)
        room = self._rooms.get(key)
        if room is not None:
            return room, False
        rules = self.rules
        room = ChatRoom(
            name,
            rules.capacity,
            rules.presenceLimit,
            rules.history,
            rules.historyBytes,
            self.clock,
            relay=self.directory.relayFor(name),
            roster=self.directory.rosterFor(name),
            pressure=None if self.clock is None else OutputPressure(self.clock),
        )
        self._rooms[key] = room
        self.directory.opened(room)
        return room, True

    def _forgetIfEmpty(self, room: ChatRoom) -> None:
        """
        Forget C{room} if nobody here is in it, unless it is the default
        room, which everyone arrives in and whose history outlives its
        members.
        """
        if self.rules.isDefault(room.name):
            return
        if not room.localPopulation() and self._rooms.get(room.key) is room:
            del self._rooms[room.key]
            room.close()
            self.directory.closed(room)

    # People

    def arrive(
        self, person: IChatMember, quietly: bool = False, name: str | None = None
    ) -> Deferred[tuple[str, ChatRoom]]:
        """
        Give C{person}, just connected, the name C{name} (its account's), or
        if it is taken or not given a default name, and take it into the
        default room (announced unless C{quietly}).

        @return: a L{Deferred} firing with its name and room, or failing
            with L{RoomFull} (its name is then free again).
        """
        if self.closed:
            return fail(ServiceClosed())
        if name is not None and self.reserved(person, name) is None:

            def asGuest(failure: Failure) -> Deferred[str]:
                failure.trap(NameRejected)
                return self.people.claim(person, None)

            naming = self.people.claim(person, name).addErrback(asGuest)
        else:
            naming = self.people.claim(person, None)

        def named(name: str) -> Deferred[tuple[str, ChatRoom]]:
            joining = self.join(person, name, self.rules.default, quietly)

            def refused(failure: Failure) -> Failure:
                self.people.release(person, name)
                return failure

            return joining.addCallbacks(lambda room: (name, room), refused)

        return naming.addCallback(named)

    def register(self, person: IChatMember, name: str) -> Deferred[str]:
        """
        Give C{person}, just connected, the name C{name} (an IRC client,
        which registers under the nickname it chose), in no room yet.

        @return: a L{Deferred} firing with the name given, or failing with
            L{NameRejected} (the person may ask again for another) or
            L{ServiceClosed}.
        """
        if self.closed:
            return fail(ServiceClosed())
        refused = self.reserved(person, name)
        if refused is not None:
            return fail(refused)
        return self.people.claim(person, name)

    def depart(self, person: IChatMember, name: str, reason: str = "") -> None:
        """
        C{person}, called C{name}, is gone (saying C{reason}, if anything):
        it leaves every room, and its name is free. Never fails.
        """
        for room in self._roomsOf.pop(person, {}).values():
            try:
                room.remove(person, quit=True, reason=reason)
            except Exception:
                self.log.failure(
                    "{name} could not leave #{room}", name=name, room=room.name
                )
            self._forgetIfEmpty(room)
        self.people.release(person, name)

    def join(
        self, person: IChatMember, name: str, roomText: str, quietly: bool = False
    ) -> Deferred[ChatRoom]:
        """
        Take C{person}, called C{name}, into the room C{roomText} names
        (created if there is no such room, unless the rules forbid it).

        @return: a L{Deferred} firing with the room, or failing with
            L{RoomRejected} (a bad name, a room not allowed, one too many) or
            L{RoomFull}.
        """
        try:
            wanted = roomName(roomText)
        except RoomRejected as rejected:
            return fail(rejected)
        if not self.rules.allows(wanted):
            fixed = ", ".join(f"#{room}" for room in self.rules.fixed)
            return fail(
                RoomRejected(f"there is no room #{wanted} here; the rooms are {fixed}")
            )
        room, creating = self._open(wanted)
        if person in room:
            return succeed(room)
        admitting = self.directory.admit(room, name, creating, self.rules)

        def admitted(ignored: object) -> ChatRoom:
            self._roomsOf.setdefault(person, {})[room.key] = room
            room.admit(person, name, quietly)
            return room

        def refused(failure: Failure) -> Failure:
            self._forgetIfEmpty(room)
            return failure

        return admitting.addCallbacks(admitted, refused)

    def part(self, person: IChatMember, room: ChatRoom, reason: str = "") -> None:
        """
        Take C{person} out of C{room} (saying C{reason}, if anything).
        """
        rooms = self._roomsOf.get(person)
        if rooms is None or rooms.pop(room.key, None) is None:
            return
        room.remove(person, reason=reason)
        self._forgetIfEmpty(room)

    def kick(
        self, person: IChatMember, room: ChatRoom, by: str, reason: str = ""
    ) -> bool:
        """
        The operator C{by} takes C{person} out of C{room} (saying
        C{reason}); everyone in it is told, C{person} too.

        @return: whether C{person} was in C{room}.
        """
        rooms = self._roomsOf.get(person)
        if rooms is None or rooms.pop(room.key, None) is None:
            return False
        room.kick(person, by, reason)
        self._forgetIfEmpty(room)
        return True

    def rename(self, person: IChatMember, oldName: str, newName: str) -> Deferred[None]:
        """
        Call C{person}, now C{oldName}, C{newName}, and tell every room it
        is in.

        @return: a L{Deferred} that fires once done, or fails with
            L{NameRejected} (L{NameReserved} for an account's name).
        """
        refused = self.reserved(person, newName)
        if refused is not None:
            return fail(refused)
        renaming = self.people.rename(person, oldName, newName)

        def renamed(ignored: object) -> None:
            for room in self.roomsOf(person):
                room.renamed(person, newName)

        return renaming.addCallback(renamed)

    def tell(
        self,
        sender: IChatMember,
        senderName: str,
        recipient: str,
        lines: Sequence[bytes],
    ) -> Deferred[str]:
        """
        Say C{lines} (safe UTF-8) from C{sender}, called C{senderName}, to the
        person called C{recipient} alone, wherever it is.

        @return: a L{Deferred} firing with the recipient's name as it is, or
            failing with L{NobodyThere}.
        """
        found = self.people.find(recipient)
        if found is None:
            return self.directory.tell(senderName, recipient, lines)
        holder = self.people.holderOf(recipient)
        assert holder is not None
        found.receive(PrivateMessage(senderName, lines))
        return succeed(holder)

    def close(self) -> None:
        """
        The server is stopping: no room announces anything more here.
        """
        self.closed = True
        for room in self._rooms.values():
            room.close()

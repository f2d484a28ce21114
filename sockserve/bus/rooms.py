"""
The rooms of every node of a bus, as the chat service sees them: admission
in one atomic step in Redis while the bus is there (each room's capacity,
and the number of rooms, span the nodes), on what the node knows while it
is away; the members other nodes hold (rosters); and every room's relay,
which puts what happens in a room here in the node's outbox.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure
from zope.interface import implementer

from sockserve.bus.codec import Presence, Rename, Said, TopicSet, encodeTopic
from sockserve.bus.redis import BusFull, Entry, roomStream
from sockserve.bus.roster import Roster
from sockserve.chat.events import Topic
from sockserve.chat.names import RoomRejected, nameKey, roomKey
from sockserve.chat.people import IChatMember
from sockserve.chat.room import ChatRoom, IRoomRelay, IRoster, RoomFull
from sockserve.chat.service import IRoomDirectory, RoomRules, tooManyRooms

if TYPE_CHECKING:
    from sockserve.bus.node import BusNode


class BusReaders:
    """
    The readers of one room on other nodes (and this node's reading of the
    room's stream), as one of the room's readers that are behind.
    """

    def __init__(self, room: str) -> None:
        self.room = room

    def __repr__(self) -> str:
        return f"<the bus's readers of #{self.room}>"


@dataclass
class RoomLink:
    """
    What the node knows of one room it has members in.

    @ivar room: the room here.
    @ivar roster: its members on other nodes.
    @ivar cursor: the id of the last entry of its stream read, or C{None}
        until it is known.
    @ivar position: the stream's position as of the snapshot the roster
        was loaded from: entries at or before it are news of the past.
    @ivar offset: the offset of the last entry read.
    @ivar lag: bytes of the stream the slowest node has left to read.
    @ivar lastSeq: the last batch number seen from each node.
    @ivar held: what the reading of the stream waits for (members here
        far behind), or C{None}.
    @ivar loaded: whether the room's snapshot was taken.
    """

    room: ChatRoom | None
    roster: Roster
    readers: BusReaders
    cursor: str | None = None
    position: tuple[int, int] = (0, 0)
    offset: int | None = None
    lag: int = 0
    lastSeq: dict[str, int] = field(default_factory=dict)
    held: Deferred[None] | None = None
    loaded: bool = False


@implementer(IRoomRelay)
class BusRelay:
    """
    Every room's relay: what happens in a room here goes into the outbox.
    """

    def __init__(self, node: BusNode) -> None:
        self.node = node

    def joined(self, room: ChatRoom, name: str, quietly: bool) -> None:
        """
        C{name} joined C{room} here.
        """
        self.node.send(room.key, Presence("j", name, quietly))

    def left(
        self, room: ChatRoom, name: str, quietly: bool, quit: bool, reason: str = ""
    ) -> None:
        """
        C{name} left C{room} here (the chat, if C{quit}), saying C{reason}:
        it leaves the room on the bus too.
        """
        self.node.send(
            room.key,
            Presence("q" if quit else "l", name, quietly, reason),
            leftKey=nameKey(name),
            last=room.localPopulation() == 0,
        )

    def renamed(self, room: ChatRoom, oldName: str, newName: str) -> None:
        """
        C{oldName}, a member of C{room} here, is now C{newName}.
        """
        self.node.send(room.key, Rename(oldName, newName, False))

    def said(
        self, room: ChatRoom, sender: IChatMember, name: str, lines: Sequence[bytes]
    ) -> None:
        """
        C{sender} said C{lines} in C{room} here.
        """
        self.node.send(room.key, Said(name, tuple(lines)), sender=sender)

    def topic(self, room: ChatRoom, topic: Topic) -> None:
        """
        C{room}'s topic changed here: the nodes that hold the room hear it
        in its stream, and Redis keeps it for those that load it later.
        """
        event = TopicSet(topic.setter, topic.at, topic.text)
        self.node.send(room.key, event)
        if self.node.bus.connected:
            kept = self.node.bus.command("topic", room.key, encodeTopic(event))
            kept.addErrback(lambda failure: None)


@implementer(IRoomDirectory)
class BusRooms:
    """
    Rooms across the bus: admitted in one atomic step in Redis while the
    bus is there (each room's capacity, and the number of rooms, span the
    nodes), from what the node knows while it is away.
    """

    def __init__(self, node: BusNode, rules: RoomRules) -> None:
        self.node = node
        self.rules = rules
        self.history = rules.history
        self.relay = BusRelay(node)

    def _link(self, name: str) -> RoomLink:
        key = roomKey(name)
        link = self.node.links.get(key)
        if link is None:
            link = RoomLink(None, Roster(), BusReaders(key))
            self.node.links[key] = link
            self.node.streams[roomStream(key)] = key
        return link

    def rosterFor(self, name: str) -> IRoster:
        """
        The members of the room that other nodes hold.
        """
        return self._link(name).roster

    def relayFor(self, name: str) -> IRoomRelay:
        """
        The node's relay.
        """
        return self.relay

    def opened(self, room: ChatRoom) -> None:
        """
        The room has members here now.
        """
        link = self._link(room.name)
        link.room = room
        link.roster.heldHere = lambda key: room.memberCalled(key) is not None
        link.roster.changed = room.rosterChanged

    def closed(self, room: ChatRoom) -> None:
        """
        The room has no members here: stop reading it.
        """
        link = self.node.links.pop(room.key, None)
        self.node.streams.pop(roomStream(room.key), None)
        if (
            link is not None
            and link.room is not None
            and link.room.pressure is not None
        ):
            link.room.pressure.forget(link.readers)
        self.node.bus.wakeReader()

    def admit(
        self, room: ChatRoom, name: str, creating: bool, rules: RoomRules
    ) -> Deferred[None]:
        """
        Admit C{name} into C{room} on the bus (taking the room's snapshot,
        and its history, if it is new here), or here while the bus is away.
        """
        node = self.node
        link = self._link(room.name)
        fresh = not link.loaded
        asking = node.bus.command(
            "join",
            room.key,
            room.name,
            nameKey(name),
            name,
            rules.capacity,
            rules.maxRooms,
            "1" if fresh else "0",
            roomKey(rules.default),
        ).addCallback(node.bus.answer)

        def answered(answer: list[Any]) -> Deferred[None] | None:
            status = answer[0]
            if status == b"full":
                raise RoomFull(room.name, rules.capacity)
            if status == b"toomany":
                raise RoomRejected(tooManyRooms(rules.maxRooms), tooMany=True)
            if fresh and len(answer) > 2 and not link.loaded:
                if not room.localPopulation():
                    # The room's name as it was made, whoever made it.
                    room.name = answer[2].decode("utf-8", "replace")
                node.load(link, node.bus.snapshot(answer[1]), False)
                node.bus.wakeReader()
                if self.history:
                    return self._prime(room)
            return None

        def alone(failure: Failure) -> Failure | None:
            if failure.check(RoomFull, RoomRejected):
                return failure
            if failure.check(BusFull):
                return Failure(
                    RoomRejected("rooms cannot be joined now (the bus is full)")
                )
            service = node.service
            if (
                creating
                and not rules.isDefault(room.name)
                and service is not None
                and service.roomCount() > rules.maxRooms
            ):
                return Failure(RoomRejected(tooManyRooms(rules.maxRooms), tooMany=True))
            if room.isFull():
                return Failure(RoomFull(room.name, rules.capacity))
            return None

        return asking.addCallbacks(answered, alone)

    def _prime(self, room: ChatRoom) -> Deferred[None]:
        """
        Take the room's last lines from its stream, before those said here
        since.
        """
        reading = self.node.bus.recent(room.key, self.history)

        def read(entries: list[Entry]) -> None:
            if room.recent is None:
                return
            said = list(room.recent)
            room.recent.clear()
            for entry in entries:
                for event in entry.events:
                    if isinstance(event, Said):
                        room.remember(event.sender, event.lines)
            for sender, line in said:
                room.remember(sender, (line,))

        return reading.addCallbacks(read, lambda failure: None)

    def rooms(
        self, local: Sequence[tuple[str, int]]
    ) -> Deferred[list[tuple[str, int]]]:
        """
        Every room on the bus, or those here while it is away.
        """
        asking = self.node.bus.command("rooms")

        def answered(reply: list[Any]) -> list[tuple[str, int]]:
            rooms = [
                (name.decode("utf-8", "replace"), int(members))
                for _, name, members in reply
            ]
            default = self.rules.default
            if not any(self.rules.isDefault(name) for name, _ in rooms):
                rooms.append((default, 0))
            return rooms

        return asking.addCallbacks(answered, lambda failure: list(local))

    def tell(
        self, sender: str, recipient: str, lines: Sequence[bytes]
    ) -> Deferred[str]:
        """
        Say C{lines} to C{recipient}, on another node.
        """
        return self.node.tell(sender, recipient, lines)

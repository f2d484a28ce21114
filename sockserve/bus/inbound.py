"""
What the other nodes publish, delivered here: each room's entries to the
room (each batch once, each node's in order), who is where to the rooms'
rosters, and the node's inbox to the people it is for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sockserve.bus.codec import Here, Presence, Private, Rename, Said, TopicSet
from sockserve.bus.redis import Entry, streamId
from sockserve.chat.events import (
    Joined,
    Left,
    Message,
    Notice,
    PrivateMessage,
    QuietPresence,
    Renamed,
    Topic,
    TopicChanged,
)
from sockserve.chat.names import nameKey

if TYPE_CHECKING:
    from sockserve.bus.node import BusNode
    from sockserve.bus.rooms import RoomLink

# A batch numbered this close below the last one seen from its node is a
# batch published again; further below, the node's numbers started afresh
# (or the one seen was forged): taken as new.
DEDUPE_WINDOW = 4096
# Seconds between two notices that lines may be missing.
MISSING_EVERY = 30.0

MISSING = (
    "lines from other servers may be missing: the bus lost some of what was "
    "said while this server was out of contact"
)


class Inbound:
    """
    The node's reading side.

    @ivar node: the node it reads for.
    """

    def __init__(self, node: BusNode) -> None:
        self.node = node
        self._inboxSeq: dict[str, int] = {}
        self._missingToldAt: float | None = None

    def busEntries(self, stream: str, entries: list[Entry]) -> None:
        """
        Deliver what the other nodes said, in order, each batch once.
        """
        if not entries:
            return
        if stream == self.node.bus.inbox:
            self.node.inboxCursor = entries[-1].id
            self._inbox(entries)
            return
        key = self.node.streams.get(stream)
        link = None if key is None else self.node.links.get(key)
        if link is None:
            return
        link.cursor = entries[-1].id
        for entry in reversed(entries):
            if entry.offset is not None:
                link.offset = entry.offset
                break
        own = self.node.bus.node
        gone = "gone:" + own
        for entry in entries:
            if not entry.node or entry.node == own or entry.node == gone:
                # This node's own, skipped, or the departure of its members
                # while the others counted it as gone: they never left.
                continue
            if entry.seq:
                last = link.lastSeq.get(entry.node)
                if last is not None:
                    if last - DEDUPE_WINDOW < entry.seq <= last:
                        # A batch published again (Redis lost what it
                        # knew of the node's numbers): delivered already.
                        continue
                    if entry.seq > last + 1:
                        # Batches of this node never reached the stream, or
                        # were trimmed from it before this node read them.
                        self.tellMissing()
                link.lastSeq[entry.node] = entry.seq
            fresh = streamId(entry.id) > link.position
            for event in entry.events:
                self._deliver(link, entry.node, event, fresh)
        self.node.holdReading(link)

    def _deliver(self, link: RoomLink, node: str, event: Any, fresh: bool) -> None:
        room = link.room
        if room is None:
            return
        roster = link.roster
        if isinstance(event, Said):
            room.heard(Message(room.name, event.sender, event.lines))
        elif isinstance(event, Here):
            if fresh:
                roster.replace(node, event.names)
        elif isinstance(event, TopicSet):
            room.heard(
                TopicChanged(room.name, Topic(event.text, event.setter, event.at))
            )
        elif isinstance(event, Rename):
            if room.memberCalled(event.oldName) is not None:
                return
            if fresh:
                roster.remove(event.oldName, node)
                roster.add(node, event.newName)
            if not event.quiet:
                room.heard(Renamed(room.name, event.oldName, event.newName))
        elif isinstance(event, Presence):
            if room.memberCalled(event.name) is not None:
                # A name this node holds: news of someone else's, from
                # before this node took it.
                return
            if event.kind == "j":
                if fresh:
                    roster.add(node, event.name)
                room.heard(
                    QuietPresence(room.name, (event.name,), ())
                    if event.quiet
                    else Joined(room.name, event.name)
                )
            else:
                if fresh:
                    # "x" entries come from "gone:NODE", about NODE's members.
                    roster.remove(event.name, node.removeprefix("gone:"))
                room.heard(
                    QuietPresence(room.name, (), (event.name,))
                    if event.quiet
                    else Left(
                        room.name,
                        event.name,
                        quit=event.kind != "l",
                        reason=event.reason,
                    )
                )

    def _inbox(self, entries: list[Entry]) -> None:
        for entry in entries:
            if not entry.node:
                continue
            last = self._inboxSeq.get(entry.node)
            if last is not None and last - DEDUPE_WINDOW < entry.seq <= last:
                continue
            self._inboxSeq[entry.node] = entry.seq
            for event in entry.events:
                if isinstance(event, Private):
                    held = self.node.people.get(nameKey(event.recipient))
                    if held is not None:
                        held[0].receive(PrivateMessage(event.sender, event.lines))

    def tellMissing(self, always: bool = False) -> None:
        """
        Tell everyone here that lines from other servers may be missing, at
        most once every L{MISSING_EVERY} seconds.
        """
        now = self.node.clock.seconds()
        if (
            not always
            and self._missingToldAt is not None
            and now - self._missingToldAt < MISSING_EVERY
        ):
            return
        self._missingToldAt = now
        self.node.tellEveryone(Notice(MISSING))

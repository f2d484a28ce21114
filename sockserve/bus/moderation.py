"""
Bans and mutes across the nodes of a bus: every node applies them, and they
outlive every node's restart.

They are kept in Redis, in two hashes (C{sockserve:bans}, by the ban's key;
C{sockserve:mutes}, by the name's key), each entry the JSON of a
L{sockserve.chat.moderation.Ban} or L{Mute}. A change made on a node is
written at once (an entry each: two operators banning at once on two nodes
lose neither); every node reads both hashes every L{REFRESH} seconds, holds
what they say (L{Moderation.replace}), and removes whoever a ban new to it
matches. While the bus is away a node keeps what it last read, and its own
changes wait to be written until the bus is back.

A kick of someone who may be on another node (L{Kick}) is written to a third
hash, C{sockserve:kicks}, by a random id; every node applies each kick it
reads once, within L{KICK_LIFE} seconds of it, and deletes those older.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from sockserve._text import plural
from sockserve.bus.redis import PREFIX, RedisBus
from sockserve.chat.moderation import KICK_LIFE, Ban, Kick, Moderation, Mute, checked
from sockserve.chat.names import nameKey

# Seconds between two readings of the bus's bans and mutes.
REFRESH = 1.0
BANS = PREFIX + "bans"
MUTES = PREFIX + "mutes"
KICKS = PREFIX + "kicks"
_HASHES = {"ban": BANS, "mute": MUTES}
_REQUIRED = {"ban": {"what", "by"}, "mute": {"name", "by"}}


def _text(raw: bytes | str) -> str:
    return raw.decode("utf-8") if isinstance(raw, bytes) else raw


def _pairs(reply: Any) -> list[tuple[str, str]]:
    """
    The fields and values of an C{HGETALL} reply (a flat list, or a dict).
    """
    if isinstance(reply, dict):
        return [(_text(key), _text(value)) for key, value in reply.items()]
    items = list(reply or [])
    return [(_text(items[i]), _text(items[i + 1])) for i in range(0, len(items), 2)]


class SharedModeration(Service):
    """
    Keeps a node's L{Moderation} the same as every node's, through the bus.

    @ivar bus: the node's link to Redis.
    @ivar moderation: the node's bans and mutes.
    @ivar enforce: removes whoever of this node a ban matches (given the
        ban), when the ban comes from another node.
    @ivar kicked: removes whoever of this node a kick made on another node
        names (given the kick).
    """

    log = Logger()

    def __init__(
        self,
        bus: RedisBus,
        moderation: Moderation,
        clock: IReactorTime,
        enforce: Callable[[Ban], object],
        interval: float = REFRESH,
        kicked: Callable[[Kick], object] | None = None,
    ) -> None:
        self.bus = bus
        self.moderation = moderation
        self.clock = clock
        self.enforce = enforce
        self.interval = interval
        # Changes made here not written yet: (hash, key) -> JSON, or None
        # to delete.
        self._unwritten: dict[tuple[str, str], str | None] = {}
        self._refreshing = False
        self._readOnce = False
        # Changes made here so far: a reading sent before the last of them
        # may not hold it, and is not applied.
        self._changes = 0
        self._loop: LoopingCall | None = None
        # What each entry of the last reading was (None: it made no sense),
        # by kind and JSON: an entry read again unchanged is not parsed
        # again.
        self._known: dict[tuple[str, str], Ban | Mute | None] = {}
        moderation.changed.append(self.changed)
        self.kicked = kicked
        # The kicks applied here (or made here), by id, while the bus holds
        # them.
        self._kicksApplied: set[str] = set()
        if kicked is not None:
            moderation.kicks.append(self.kick)

    def startService(self) -> None:
        """
        Read the bus's bans and mutes every C{interval} seconds.
        """
        super().startService()
        self._loop = LoopingCall(self.refresh)
        self._loop.clock = self.clock
        self._loop.start(self.interval, now=False)

    def stopService(self) -> Deferred[None] | None:
        """
        Stop reading.
        """
        super().stopService()
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        return None

    def changed(self, kind: str, key: str, entry: Ban | Mute | None) -> None:
        """
        A change made on this node: write it to the bus (once it is there).
        """
        value = None if entry is None else json.dumps(asdict(entry))
        self._changes += 1
        self._unwritten[(_HASHES[kind], key)] = value
        self._write()

    def kick(self, kick: Kick) -> None:
        """
        A kick made here, for the other nodes: write it to the bus (once it
        is there); this node has applied it.
        """
        self._kicksApplied.add(kick.id)
        self._unwritten[(KICKS, kick.id)] = json.dumps(asdict(kick))
        self._write()

    def _write(self) -> Deferred[Any]:
        """
        Write the changes waiting, if the bus is there; those that fail
        wait for the next try.
        """
        if not self.bus.connected or not self._unwritten:
            return succeed(None)
        writes = []
        for (hash, key), value in list(self._unwritten.items()):
            del self._unwritten[(hash, key)]
            if value is None:
                writing = self.bus.call("HDEL", hash, key)
            else:
                writing = self.bus.call("HSET", hash, key, value)
            writing.addErrback(self._notWritten, hash, key, value)
            writes.append(writing)
        return DeferredList(writes)

    def _notWritten(
        self, failure: Failure, hash: str, key: str, value: str | None
    ) -> None:
        self._unwritten.setdefault((hash, key), value)

    def refresh(self) -> Deferred[Any] | None:
        """
        Write what waits, then read the bus's bans and mutes, hold them, and
        remove whoever a ban new here matches.
        """
        if self._refreshing or not self.bus.connected:
            return None
        self._refreshing = True
        reading = self._write()
        seen = self._changes
        reading.addCallback(
            lambda ignored: DeferredList(
                [self.bus.call("HGETALL", BANS), self.bus.call("HGETALL", MUTES)],
                fireOnOneErrback=True,
                consumeErrors=True,
            )
        )
        reading.addCallback(
            # Not if a change was made meanwhile, or waits to be written:
            # what was read lacks it.
            lambda results: (
                self._read(results)
                if self._changes == seen and not self._unwritten
                else None
            )
        )
        if self.kicked is not None:
            reading.addCallback(lambda ignored: self.bus.call("HGETALL", KICKS))
            reading.addCallback(lambda reply: self._readKicks(_pairs(reply)))
        reading.addErrback(lambda failure: None)

        def done(result: object) -> object:
            self._refreshing = False
            return result

        return reading.addBoth(done)

    def _read(self, results: list[tuple[bool, Any]]) -> None:
        (_, rawBans), (_, rawMutes) = results
        seen: dict[tuple[str, str], Ban | Mute | None] = {}
        bans = [
            entry
            for entry in self._entries("ban", _pairs(rawBans), seen)
            if isinstance(entry, Ban)
        ]
        mutes = [
            entry
            for entry in self._entries("mute", _pairs(rawMutes), seen)
            if isinstance(entry, Mute)
        ]
        self._known = seen
        self._forgetExpired(bans, mutes)
        if not self._readOnce:
            self._readOnce = True
            self.log.info(
                "Read {bans} and {mutes} from the bus",
                bans=plural(len(bans), "ban"),
                mutes=plural(len(mutes), "mute"),
            )
        for ban in self.moderation.replace(bans, mutes):
            self.enforce(ban)

    def _entries(
        self,
        kind: str,
        pairs: list[tuple[str, str]],
        seen: dict[tuple[str, str], Ban | Mute | None],
    ) -> list[Ban | Mute]:
        """
        Each entry of a hash of C{kind}s (noted in C{seen}); one read
        unchanged before is taken from the last reading; one that makes no
        sense is logged (when first seen) and skipped.
        """
        entries: list[Ban | Mute] = []
        for _key, value in pairs:
            known = (kind, value)
            if known in self._known:
                entry = self._known[known]
            else:
                entry = self._entry(kind, value)
            seen[known] = entry
            if entry is not None:
                entries.append(entry)
        return entries

    def _entry(self, kind: str, value: str) -> Ban | Mute | None:
        """
        The C{kind} (a ban, a mute) the JSON C{value} says, or C{None}
        (logged) if it makes no sense.
        """
        fields = {
            "ban": set(Ban.__dataclass_fields__),
            "mute": set(Mute.__dataclass_fields__),
        }
        try:
            entry = json.loads(value)
        except ValueError:
            entry = None
        if (
            isinstance(entry, dict)
            and set(entry) <= fields[kind]
            and _REQUIRED[kind] <= set(entry)
        ):
            try:
                return (
                    checked(Ban(**entry)) if kind == "ban" else checked(Mute(**entry))
                )
            except ValueError:
                pass
        self.log.warn(
            "Skipped a {kind} the bus holds that makes no sense: {value}",
            kind=kind,
            value=value[:200],
        )
        return None

    def _readKicks(self, pairs: list[tuple[str, str]]) -> None:
        """
        Apply each kick of C{pairs} (the bus's) not applied here yet, unless
        it is older than L{KICK_LIFE}: then delete it from the bus.
        """
        assert self.kicked is not None
        now = self.clock.seconds()
        held: set[str] = set()
        for key, value in pairs:
            held.add(key)
            kick = self._kick(value)
            if kick is None or now - kick.at > KICK_LIFE or kick.at > now + KICK_LIFE:
                self.bus.call("HDEL", KICKS, key).addErrback(lambda failure: None)
                continue
            if kick.id in self._kicksApplied:
                continue
            self._kicksApplied.add(kick.id)
            self.kicked(kick)
        # Forget the kicks the bus no longer holds (but those of this node
        # still to be written).
        self._kicksApplied &= held | {
            key for hash, key in self._unwritten if hash == KICKS
        }

    def _kick(self, value: str) -> Kick | None:
        """
        The kick the JSON C{value} says, or C{None} if it makes no sense.
        """
        try:
            fields = json.loads(value)
            kick = Kick(**fields) if isinstance(fields, dict) else None
        except (ValueError, TypeError):
            return None
        if kick is None or not all(
            isinstance(field, str)
            for field in (kick.id, kick.name, kick.by, kick.reason)
        ):
            return None
        at: object = kick.at
        return (
            kick if isinstance(at, int | float) and not isinstance(at, bool) else None
        )

    def _forgetExpired(self, bans: list[Ban], mutes: list[Mute]) -> None:
        """
        Take the bans and mutes whose time is over out of C{bans} and
        C{mutes}, and delete them from the bus.
        """
        now = self.clock.seconds()
        over: list[tuple[str, str]] = []
        for ban in list(bans):
            if ban.until is not None and ban.until <= now:
                bans.remove(ban)
                over.append((BANS, ban.key))
        for mute in list(mutes):
            if mute.until is not None and mute.until <= now:
                mutes.remove(mute)
                over.append((MUTES, nameKey(mute.name)))
        for hash, key in over:
            self.bus.call("HDEL", hash, key).addErrback(lambda failure: None)

"""
The bus on Redis: a node's two connections, its scripts, its heartbeat, and
reading the room's stream.

txredisapi speaks to Redis on the reactor (with hiredis parsing replies);
every reply is kept as bytes (C{charset=None}) and nothing number-like is
converted (C{convertNumbers=False}): a line C{007} stays C{007}. One
connection carries commands; the other only waits in C{XREAD BLOCK}, which
holds its connection.

A command without a reply within C{stallTimeout} seconds (Redis paused,
a network that drops packets) counts as a lost bus, as does a lost
connection: both connections are dropped, the room is told once, and the
node reconnects with backoff (from a quarter of a second, doubling, to
four seconds), then rejoins the room (see L{RedisBus._join}).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any
from uuid import uuid4

from twisted.application.service import Service
from twisted.internet.defer import Deferred, ensureDeferred, fail, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.protocol import Factory
from twisted.internet.task import LoopingCall
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure

from sockserve._loglimit import LogLimiter
from sockserve.bus.address import BusAddress
from sockserve.bus.codec import BadEntry, Said, decodeBatch, safeName
from sockserve.bus.room import BusRoom, Entry, Rejoined, streamId
from sockserve.bus.scripts import SCRIPTS
from sockserve.chat.names import nameKey

# Reconnection backoff, in seconds.
FIRST_RETRY = 0.25
LAST_RETRY = 4.0
# How long XREAD waits for entries before it asks again, in milliseconds,
# and how many it takes at once.
READ_BLOCK_MS = 2000
READ_COUNT = 32
# History is read back this many entries at a time, at most so many times.
HISTORY_PAGE = 100
HISTORY_PAGES = 10
# The largest entry read (a node's batches are about 16 KiB, one long line
# more at most): anything larger was not written by a node.
MAX_ENTRY = 1024 * 1024
# Seconds between two reports of how far this node has read (it also
# reports after each read), which tell it how far the slowest node is.
PROGRESS_EVERY = 0.25
# Entries of the stream kept when Redis is out of memory.
OUT_OF_MEMORY_KEEP = 100
# Seconds between two trims of the stream while Redis is out of memory.
TRIM_EVERY = 1.0
# Seconds without a write refused for want of memory before Redis counts as
# having memory again (writes in flight go through and fail by turns).
MEMORY_BACK_AFTER = 5.0


class BusLost(Exception):
    """
    The bus cannot be reached now.
    """


class BusFull(Exception):
    """
    Redis is out of memory (at its C{maxmemory}): it refuses what would
    grow it.
    """


class _Connections(Factory):
    """
    Builds txredisapi protocols for one node; txredisapi's protocol asks its
    factory to stop trying when authentication fails, and says why.
    """

    noisy = False
    isLazy = False

    def __init__(self, address: BusAddress, replyTimeout: float) -> None:
        self.address = address
        self.replyTimeout = replyTimeout
        self.failure: str | None = None

    def buildProtocol(self, addr: object) -> Any:
        """
        A txredisapi protocol that leaves replies as bytes.
        """
        from txredisapi import RedisProtocol  # type: ignore[import-untyped]

        protocol = RedisProtocol(
            charset=None,
            replyTimeout=self.replyTimeout,
            password=self.address.password,
            dbid=self.address.db or None,
            convertNumbers=False,
            username=self.address.username,
        )
        protocol.factory = self
        return protocol

    def stopTrying(self) -> None:
        """
        txredisapi: authentication or SELECT failed (the node retries, as
        a password may be fixed on the server).
        """

    def connectionError(self, why: str) -> None:
        """
        txredisapi: why the connection was refused.
        """
        self.failure = why


class RedisBus(Service):
    """
    A node of a room on a Redis bus: a service that connects when it starts,
    stays connected (reconnecting as needed), and leaves when it stops.

    @ivar node: this node's id, new with every process.
    @ivar connected: whether the node is in contact with the room.
    @ivar outOfMemory: whether Redis refused the node's last write for want
        of memory.
    """

    log = Logger()

    def __init__(
        self,
        address: BusAddress,
        room: str,
        clock: IReactorTime,
        reactor: object,
        nodeTimeout: float = 10.0,
        retention: int = 10_000,
        stallTimeout: float = 3.0,
    ) -> None:
        self.address = address
        self.roomName = room
        self.prefix = f"sockserve:{{{room}}}:"
        self.stream = self.prefix + "stream"
        self.clock = clock
        self.reactor = reactor
        self.nodeTimeout = nodeTimeout
        self.retention = retention
        self.stallTimeout = stallTimeout
        self.node = uuid4().hex[:16]
        self.connected = False
        self.room: BusRoom | None = None
        self.history = 0
        self._commands: Any = None
        self._reader: Any = None
        self._shas: dict[str, bytes] = {}
        self._epoch: bytes | None = None
        self._cursor: str | None = None
        self._attempt = 0
        self._retry: IDelayedCall | None = None
        self._heartbeat: LoopingCall | None = None
        self._joining: Deferred[None] | None = None
        self._stopping = False
        self._everJoined = False
        self._lastProblem: str | None = None
        self.limiter = LogLimiter(clock)
        self.outOfMemory = False
        self._trimmedAt: float | None = None
        self._refusedAt: float | None = None
        self._warnedPolicy = False
        # The offset of the last entry read (see the scripts), once known.
        self._offset: int | None = None
        self._progress: LoopingCall | None = None
        self._reporting = False
        self._reportAgain = False

    # The service

    def attach(self, room: BusRoom, history: int = 0) -> None:
        """
        Serve C{room}; prime its history with the last C{history} lines.
        """
        self.room = room
        self.history = history

    def startService(self) -> None:
        """
        Start connecting; the server serves its local clients meanwhile.
        """
        super().startService()
        self.log.info(
            "Connecting to the room {room} on the bus at {bus}",
            room=self.roomName,
            bus=self.address.describe(),
        )
        self._connect()

    def stopService(self) -> Deferred[None]:
        """
        Leave the room (the other nodes tell their clients this node's
        members left), then disconnect.
        """
        super().stopService()
        self._stopping = True
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        self._retry = None
        self._stopLoops()
        if not self.connected:
            self._drop()
            return succeed(None)
        flushed: Deferred[None] = (
            self.room.whenFlushed() if self.room is not None else succeed(None)
        )
        flushed.addTimeout(self.stallTimeout, self.clock)
        flushed.addErrback(lambda failure: None)

        def depart(ignored: object) -> Deferred[Any]:
            self.connected = False
            return self._script("depart", str(self.retention))

        leaving = flushed.addCallback(depart)
        leaving.addErrback(lambda failure: None)

        def disconnect(ignored: object) -> None:
            self._drop()

        leaving.addBoth(disconnect)
        return leaving

    # Connecting and rejoining

    def _connect(self) -> None:
        self._retry = None
        if self._stopping:
            return
        joining = ensureDeferred(self._join())
        # Each step has its own timeout; this bounds them all, whatever
        # a connection that failed half way leaves waiting.
        joining.addTimeout(self.stallTimeout * 4, self.clock)
        joining.addErrback(self._failed, joining)
        self._joining = joining

    async def _open(self, replyTimeout: float) -> Any:
        factory = _Connections(self.address, replyTimeout)
        endpoint = self.address.endpoint(self.reactor)
        protocol: Any = await endpoint.connect(factory)
        ready: Deferred[Any] = protocol.whenConnected()
        ready.addTimeout(self.stallTimeout, self.clock)
        try:
            await ready
        except Exception:
            protocol.transport.abortConnection()
            raise BusLost(
                factory.failure
                or f"no answer from Redis within {self.stallTimeout:g} s"
            ) from None
        return protocol

    async def _join(self) -> None:
        """
        Connect, then rejoin the room in order: refresh this node (and learn
        whether Redis kept its data and whether the node was removed as
        gone), register the node's members, take who is here and where the
        stream is, and read from where the node left off.
        """
        self._commands = await self._open(self.stallTimeout)
        self._reader = await self._open(READ_BLOCK_MS / 1000 + self.stallTimeout)
        for connection in (self._commands, self._reader):
            connection.whenDisconnected().addCallback(self._disconnected)
        for name, source in SCRIPTS.items():
            self._shas[name] = await self._commands.execute_command(
                "SCRIPT", "LOAD", source
            )
        self._checkMemoryPolicy(await self._commands.execute_command("INFO", "memory"))
        proposed = uuid4().hex.encode()
        epoch, known, _ = await self._script(
            "heartbeat",
            str(int(self.nodeTimeout * 1000)),
            proposed,
            str(self.retention),
            "1",
        )
        lostData = self._epoch is not None and epoch != self._epoch
        reaped = self._everJoined and not int(known) and not lostData
        self._epoch = epoch
        room = self.room
        assert room is not None
        names = room.localNames()
        registered = await self._script("register", *_withKeys(names))
        position, deleted, members, offset = await self._script("snapshot")
        position = position.decode()
        if lostData:
            self._cursor = "0-0"
            self._offset = None
        elif self._cursor is not None and streamId(deleted.decode()) > streamId(
            self._cursor
        ):
            lostData = True
        recent: list[Entry] = []
        if self._cursor is None:
            self._cursor = position
        if self._cursor == position:
            self._offset = int(offset)
            if self.history > 0:
                recent = await self._recent(self.history)
        others = []
        for member in members:
            rawNode, separator, rawName = member.partition(b"\n")
            node = rawNode.decode("utf-8", "replace")
            if separator and rawName and node != self.node:
                # Made safe as the stream's names are: the hash is data too.
                others.append((node, safeName(rawName)))
        if self._stopping:
            self._drop()
            return
        self._attempt = 0
        self.connected = True
        rejoining, self._everJoined = self._everJoined, True
        if rejoining:
            self.log.info(
                "Back in contact with the room {room} on the bus at {bus}",
                room=self.roomName,
                bus=self.address.describe(),
            )
        else:
            self.log.info(
                "Joined the room {room} on the bus at {bus} as node {node}",
                room=self.roomName,
                bus=self.address.describe(),
                node=self.node,
            )
        self._lastProblem = None
        room.busJoined(
            Rejoined(
                asked=names,
                names=[name.decode("utf-8", "replace") for name in registered],
                reaped=reaped,
                lostData=lostData,
                others=others,
                position=position,
                recent=recent,
            )
        )
        self._heartbeat = LoopingCall(self._beat)
        self._heartbeat.clock = self.clock
        self._heartbeat.start(self.nodeTimeout / 4, now=False).addErrback(
            lambda failure: None
        )
        self._progress = LoopingCall(self._reportProgress)
        self._progress.clock = self.clock
        self._progress.start(PROGRESS_EVERY, now=True).addErrback(lambda failure: None)
        self._read()

    def _stopLoops(self) -> None:
        for loop in (self._heartbeat, self._progress):
            if loop is not None and loop.running:
                loop.stop()

    def problem(self) -> str | None:
        """
        Say what keeps the node from serving the room across nodes as it
        should, or C{None} if nothing does.
        """
        if not self.connected:
            return f"not in contact with the bus ({self._lastProblem or 'connecting'})"
        if self.outOfMemory:
            return "Redis is out of memory: lines to the other servers wait"
        return None

    def _checkMemoryPolicy(self, info: bytes) -> None:
        """
        Warn, once, if Redis evicts keys that have no expiry when it is full
        (C{maxmemory-policy allkeys-...}): it would evict the room's names
        and nodes, and every node would rejoin again and again.
        """
        for line in info.splitlines():
            name, _, value = line.partition(b":")
            if name == b"maxmemory_policy" and value.startswith(b"allkeys-"):
                if not self._warnedPolicy:
                    self._warnedPolicy = True
                    self.log.warn(
                        "Redis at {bus} evicts any key when it is full "
                        "(maxmemory-policy {policy}): the bus needs noeviction "
                        "(or a volatile-* policy), or it loses the room's "
                        "members when full (see README)",
                        bus=self.address.describe(),
                        policy=value.decode("ascii", "replace"),
                    )
                return

    def _disconnected(self, connection: Any) -> None:
        if connection is self._commands or connection is self._reader:
            self._lose("the connection to Redis was lost")

    async def _recent(self, lines: int) -> list[Entry]:
        """
        Read the stream backwards, a page at a time (at most
        L{HISTORY_PAGES}), until its entries hold C{lines} lines said:
        entries of joins and leaves hold none.
        """
        found: list[Entry] = []
        said = 0
        end = "+"
        for _ in range(HISTORY_PAGES):
            page = await self._commands.execute_command(
                "XREVRANGE", self.stream, end, "-", "COUNT", HISTORY_PAGE
            )
            if not page:
                break
            found.extend(self._entries(page, everyone=True))
            said = sum(
                len(event.lines)
                for entry in found
                for event in entry.events
                if isinstance(event, Said)
            )
            if said >= lines or len(page) < HISTORY_PAGE:
                break
            end = "(" + page[-1][0].decode()
        return list(reversed(found))

    def _failed(self, failure: Failure, joining: Deferred[None] | None = None) -> None:
        if joining is not None and joining is not self._joining:
            # An attempt given up already (the bus was lost meanwhile).
            return
        self._lose(_why(failure))

    def _lose(self, reason: str) -> None:
        """
        The bus is lost (or could not be reached): drop what is left, tell
        the room once, log once per problem, and try again later.
        """
        joining, self._joining = self._joining, None
        if joining is not None and not joining.called:
            joining.cancel()
        if self._stopping:
            self._drop()
            return
        wasConnected = self.connected
        self.connected = False
        self._stopLoops()
        if reason != self._lastProblem:
            if wasConnected or self._lastProblem is None:
                self.log.warn(
                    "Lost contact with the bus at {bus}: {reason}; local chat "
                    "goes on, retrying"
                    if wasConnected
                    else "Cannot reach the bus at {bus}: {reason}; serving local "
                    "clients, retrying",
                    bus=self.address.describe(),
                    reason=reason,
                )
            self._lastProblem = reason
        if wasConnected and self.room is not None:
            self.room.busLost(reason)
        if self._retry is None:
            delay = min(LAST_RETRY, FIRST_RETRY * 2**self._attempt)
            self._attempt += 1
            self._retry = self.clock.callLater(
                delay * random.uniform(0.8, 1.2), self._connect
            )
        self._drop()

    def _drop(self) -> None:
        commands, reader = self._commands, self._reader
        self._commands = self._reader = None
        for connection in (commands, reader):
            transport = getattr(connection, "transport", None)
            if transport is None:
                continue
            try:
                transport.abortConnection()
            except Exception:
                # Gone already (a TLS connection that failed its handshake).
                self.log.debug("Dropping a connection to Redis failed")

    # Commands

    def _script(self, name: str, *arguments: object) -> Deferred[Any]:
        if self._commands is None:
            return fail(BusLost("not connected to Redis"))
        result: Deferred[Any] = self._commands.execute_command(
            "EVALSHA", self._shas[name], 0, self.prefix, self.node, *arguments
        )
        return result

    def _command(self, name: str, *arguments: object) -> Deferred[Any]:
        """
        Run a script now that the node is in the room; a failure loses the
        bus (and fails the returned L{Deferred} with L{BusLost}).
        """
        if not self.connected or self._commands is None:
            return fail(BusLost("not in contact with the bus"))
        result = self._script(name, *arguments)

        def failed(failure: Failure) -> Failure:
            why = _why(failure)
            if why.startswith("OOM"):
                # Redis answers, and keeps what it has: the bus is not lost.
                self._memoryFull()
                return Failure(BusFull(why))
            self._lose(why)
            return Failure(BusLost(failure.getErrorMessage()))

        result.addErrback(failed)
        return result

    def _memoryFull(self) -> None:
        """
        Redis refused a write for want of memory: say so once, and trim the
        room's stream (at most every L{TRIM_EVERY} seconds), which a full
        Redis still allows, to what nodes reading it need.
        """
        now = self.clock.seconds()
        self._refusedAt = now
        if not self.outOfMemory:
            self.outOfMemory = True
            self.log.warn(
                "Redis at {bus} is out of memory (maxmemory): this node's lines "
                "wait for it, and the room's stream is cut to its last {keep} "
                "entries; give Redis more memory (see README)",
                bus=self.address.describe(),
                keep=OUT_OF_MEMORY_KEEP,
            )
        if self._commands is not None and (
            self._trimmedAt is None or now - self._trimmedAt >= TRIM_EVERY
        ):
            self._trimmedAt = now
            self._commands.execute_command(
                "XTRIM", self.stream, "MAXLEN", "~", OUT_OF_MEMORY_KEEP
            ).addErrback(lambda failure: None)

    def _memoryBack(self, answer: Any) -> Any:
        """
        A write went through: Redis has memory (again).
        """
        if (
            self.outOfMemory
            and self._refusedAt is not None
            and self.clock.seconds() - self._refusedAt >= MEMORY_BACK_AFTER
        ):
            self.outOfMemory = False
            self.log.info(
                "Redis at {bus} takes writes again", bus=self.address.describe()
            )
        return answer

    def admit(self, name: str, capacity: int) -> Deferred[str]:
        """
        Admit a member as C{name} in one atomic step: C{ok}, C{taken} or
        C{full}.
        """
        return self._command("admit", name, nameKey(name), capacity).addCallback(
            self._answer
        )

    def rename(self, oldName: str, newName: str) -> Deferred[str]:
        """
        Rename a member in one atomic step: C{ok} or C{taken}.
        """
        return self._command(
            "rename", nameKey(oldName), newName, nameKey(newName)
        ).addCallback(self._answer)

    def _answer(self, answer: bytes) -> str:
        text = answer.decode()
        if text == "gone":
            self._lose("this node was counted as gone (it did not refresh in time)")
            raise BusLost("this node must rejoin the room")
        return text

    def publish(
        self, seq: int, payload: bytes, leftKeys: Sequence[str]
    ) -> Deferred[Any]:
        """
        Publish one batch (once, however often it is retried); the room
        learns from the answer how far the slowest node is.
        """
        publishing = self._command(
            "publish", seq, payload, str(self.retention), *leftKeys
        )
        return publishing.addCallback(self._memoryBack).addCallback(self._progressed)

    def _reportProgress(self) -> None:
        """
        Tell Redis how far this node has read, and learn how far the
        slowest node is: one report at a time, another at once if the node
        read more meanwhile.
        """
        if not self.connected:
            return
        if self._reporting:
            self._reportAgain = True
            return
        self._reporting = True
        offset = "" if self._offset is None else str(self._offset)
        reporting = self._command("progress", offset)
        reporting.addCallbacks(self._progressed, lambda failure: None)

        def reported(ignored: object) -> None:
            self._reporting = False
            if self._reportAgain:
                self._reportAgain = False
                self._reportProgress()

        reporting.addBoth(reported)

    def _progressed(self, answer: list[Any]) -> list[Any]:
        """
        Tell the room how far the room's stream is and how far its slowest
        node has read, from an answer ending with both.
        """
        total, slowest = int(answer[-2]), int(answer[-1])
        if self.room is not None and slowest >= 0:
            self.room.busProgress(max(0, total - slowest))
        return answer

    def register(self, names: Sequence[str]) -> Deferred[list[str]]:
        """
        Register the node's members again: their names as registered.
        """
        return self._command("register", *_withKeys(names)).addCallback(
            lambda registered: [name.decode("utf-8", "replace") for name in registered]
        )

    def _beat(self) -> None:
        if not self.connected:
            return
        beating = self._command(
            "heartbeat",
            str(int(self.nodeTimeout * 1000)),
            uuid4().hex.encode(),
            str(self.retention),
            "0",
        )
        beating.addCallbacks(self._beaten, lambda failure: None)

    def _beaten(self, answer: list[bytes]) -> None:
        epoch, known, _ = answer
        if epoch != self._epoch:
            self._lose("Redis lost its data (it restarted without persistence)")
        elif not int(known):
            self._lose("this node was counted as gone (it did not refresh in time)")

    # Reading

    def _read(self) -> None:
        reader = self._reader
        if reader is None or not self.connected:
            return
        reading = reader.execute_command(
            "XREAD",
            "COUNT",
            READ_COUNT,
            "BLOCK",
            READ_BLOCK_MS,
            "STREAMS",
            self.stream,
            self._cursor,
        )
        reading.addCallbacks(self._readDone, self._failed)

    def _readDone(self, reply: Any) -> None:
        if not self.connected:
            return
        if reply:
            [[_, raw]] = reply
            entries = self._entries(raw)
            if raw:
                self._cursor = raw[-1][0].decode()
                self._offset = _offsetOf(raw[-1][1], self._offset)
                self._reportProgress()
            if entries and self.room is not None:
                try:
                    self.room.busEntries(entries)
                except Exception:
                    # Reading goes on: one bad entry must not deafen the node.
                    self.log.failure("Could not deliver entries from the bus")
        waiting = self.room.readersBehind(self) if self.room is not None else None
        if waiting is None:
            self._read()
        else:
            # Members here that read are far behind: the other nodes' lines
            # wait in Redis, as a local sender's would wait here.
            waiting.addCallback(lambda ignored: self._read())

    def _entries(self, raw: list[Any], everyone: bool = False) -> list[Entry]:
        entries = []
        own = () if everyone else (self.node.encode(), b"gone:" + self.node.encode())
        for entryId, fields in raw:
            values = dict(zip(fields[::2], fields[1::2], strict=False))
            if values.get(b"n") in own:
                # This node's own (delivered here already): not decoded.
                continue
            if len(values.get(b"e", b"")) > MAX_ENTRY:
                self.limiter.emit(
                    self.log,
                    LogLevel.warn,
                    "bad entries",
                    "Skipped an entry of the room's stream larger than any a "
                    "sockserve node writes ({size} bytes)",
                    size=len(values[b"e"]),
                )
                continue
            try:
                node = values[b"n"].decode()
                seq = int(values[b"s"])
                events = decodeBatch(values[b"e"])
            except (KeyError, ValueError, UnicodeDecodeError, BadEntry) as error:
                self.limiter.emit(
                    self.log,
                    LogLevel.warn,
                    "bad entries",
                    "Skipped an entry of the room's stream that is not one a "
                    "sockserve node wrote: {error}",
                    error=str(error),
                )
                continue
            entries.append(Entry(entryId.decode(), node, seq, events))
        return entries


def _offsetOf(fields: list[bytes], known: int | None) -> int | None:
    """
    The offset an entry's fields carry (C{o}), or C{known} if they carry
    none (an entry of an older version).
    """
    for name, value in zip(fields[::2], fields[1::2], strict=False):
        if name == b"o":
            try:
                return int(value)
            except ValueError:
                return known
    return known


def _withKeys(names: Sequence[str]) -> list[str]:
    """
    Each of C{names} followed by its key, as the register script takes them.
    """
    return [part for name in names for part in (name, nameKey(name))]


def _why(failure: Failure) -> str:
    """
    A failure's message, or its kind when it has none.
    """
    return failure.getErrorMessage() or getattr(failure.type, "__name__", "error")

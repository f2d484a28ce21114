"""
The bus's transport: a node's two connections to Redis, its scripts, its
heartbeat, and reading the streams of its rooms and its inbox, all of them
with one C{XREAD}. Everything Redis-specific is here; what the node does
with what it reads is L{sockserve.bus.node}'s.

txredisapi speaks to Redis on the reactor (with hiredis parsing replies;
what sockserve uses of it that it does not promise is in
L{sockserve.bus._txredisapi}); every reply is kept as bytes (C{charset=None})
and nothing number-like is converted (C{convertNumbers=False}): a line C{007}
stays C{007}. One connection carries commands; the other only waits in
C{XREAD BLOCK}, which holds its connection. However many rooms a node
serves, it has these two connections and one heartbeat.

A command without a reply within C{stallTimeout} seconds (Redis paused,
a network that drops packets) counts as a lost bus, as does a lost
connection: both connections are dropped, the node is told once, and it
reconnects with backoff (from a quarter of a second, doubling, to four
seconds), then rejoins (see L{RedisBus._join}). A write Redis refuses for
want of memory does not lose the bus (see L{RedisBus._memoryFull}).

With a C{redis+sentinel://} address, the node asks the sentinels where the
primary is before each (re)connection (L{RedisBus._primary}): one sentinel
after another, in the order given, the first that answers
C{SENTINEL get-master-addr-by-name} wins. It then connects to that primary,
checks its C{ROLE} is C{master} before anything is written, and, whenever
the bus is lost (the primary died, a stale primary answers C{READONLY} once
demoted), asks the sentinels again: that is how it follows a failover, with
a shorter backoff (L{SENTINEL_LAST_RETRY}), as the sentinels say when the
new primary is there. This is sockserve's own small client of the
sentinels' protocol, not txredisapi's C{Sentinel}: that one asks every
sentinel at once (C{SENTINEL masters}), on the global reactor and with its
own reconnecting connections, gives no TLS to the discovered primary and
does not follow C{+switch-master}; here the two connections, their
timeouts and backoff stay the bus's own, whatever the address, and a
C{rediss+sentinel://} address speaks TLS to the sentinels and the primary
alike.

With C{replicas} above 0 (C{--bus-replicas}), a batch counts as published
only once that many replicas acknowledged it (C{WAIT}; see
L{RedisBus._whenReplicated}): until then it stays in the outbox, to be
published again (once: the bus drops a batch number it has) after a
failover.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, TypeVar
from uuid import uuid4

from twisted.application.service import Service
from twisted.internet.defer import (
    CancelledError,
    Deferred,
    ensureDeferred,
    fail,
    gatherResults,
    race,
    succeed,
)
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.task import LoopingCall, deferLater
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure

from sockserve._loglimit import LogLimiter

# txredisapi's protocol, built by sockserve, and its factory's contract: see
# there.
from sockserve.bus._txredisapi import ConnectionFactory
from sockserve.bus.address import BusAddress, redacted
from sockserve.bus.codec import VERSION, BadEntry, BusEvent, decodeBatch
from sockserve.bus.scripts import SCRIPTS

_T = TypeVar("_T")

# The prefix of every key of the bus.
PREFIX = "sockserve:"
# Reconnection backoff, in seconds.
FIRST_RETRY = 0.25
LAST_RETRY = 4.0
# The longest backoff with sentinels: they say when a new primary is there.
SENTINEL_LAST_RETRY = 1.0
# The longest a batch waits for its replicas (WAIT), in milliseconds: a
# WAIT holds the command connection, so it stays well under the stall
# timeout.
REPLICA_WAIT_MS = 1000
# How long XREAD waits for entries before it asks again, in milliseconds,
# and how many it takes at once from each stream.
READ_BLOCK_MS = 2000
READ_COUNT = 32
# A wake (CLIENT UNBLOCK, on the other connection) can reach Redis before the
# XREAD it means to end has started to wait, and then ends nothing: it is
# sent again after this many seconds, doubling up to WAKE_LAST_RETRY, for as
# long as that same read is still owed.
WAKE_FIRST_RETRY = 0.001
WAKE_LAST_RETRY = 0.05
# History is read back this many entries at a time, at most so many times.
HISTORY_PAGE = 100
HISTORY_PAGES = 10
# The largest entry read (a node's batches are about 16 KiB, one long line
# more at most): anything larger was not written by a node.
MAX_ENTRY = 1024 * 1024
# Seconds between two reports of how far this node has read (it also
# reports after each read), which tell it how far the slowest node is. A
# report names only the rooms read further since the last one and those
# where a node was behind; every room, every FULL_PROGRESS_EVERY seconds.
PROGRESS_EVERY = 0.25
FULL_PROGRESS_EVERY = 5.0
# Entries of a stream kept when Redis is out of memory.
OUT_OF_MEMORY_KEEP = 100
# Seconds between two trims of the streams while Redis is out of memory.
TRIM_EVERY = 1.0
# Seconds without a write refused for want of memory before Redis counts as
# having memory again (writes in flight go through and fail by turns).
MEMORY_BACK_AFTER = 5.0
# Milliseconds an empty room's keys are kept (its history, for whoever
# joins it again soon).
EMPTY_ROOM_KEPT_MS = 3_600_000
# Entries a node's inbox keeps.
INBOX_LENGTH = 1000
# What Redis (and txredisapi) say when the password is missing or wrong, or
# given to a server that has none.
_AUTHENTICATION_ERRORS = (
    "NOAUTH",
    "WRONGPASS",
    "could not auth",
    "invalid password",
    "called without any password",
)
PASSWORD_HINT = (
    "give the bus's password with --bus-password-file FILE (or the "
    "SOCKSERVE_BUS_PASSWORD environment variable)"
)


def authenticationFailed(reason: str) -> bool:
    """
    Tell whether Redis refused the node for its password (missing, wrong,
    or given to a server that wants none), as C{reason} says.
    """
    return any(error in reason for error in _AUTHENTICATION_ERRORS)


class BusLost(Exception):
    """
    The bus cannot be reached now.
    """


class NotReplicated(Exception):
    """
    The replicas asked for did not acknowledge a batch in time: it stays in
    the outbox.
    """


class BusFull(Exception):
    """
    Redis is out of memory (at its C{maxmemory}): it refuses what would
    grow it.
    """


def streamId(text: str) -> tuple[int, int]:
    """
    Return a Redis stream id (C{MS-SEQ}) in a form that compares in order.
    """
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def roomStream(room: str) -> str:
    """
    The stream of the room whose key is C{room}.
    """
    return f"{PREFIX}{{{room}}}:stream"


def inboxStream(node: str) -> str:
    """
    The stream of the private messages for C{node}'s people.
    """
    return f"{PREFIX}inbox:{node}"


@dataclass(frozen=True, slots=True)
class Entry:
    """
    One entry of a stream: a batch of events from one node.

    @ivar offset: the bytes published in the stream up to this entry (none
        in an inbox).
    """

    id: str
    node: str
    seq: int
    events: Sequence[BusEvent]
    offset: int | None = None


@dataclass(frozen=True)
class Snapshot:
    """
    A room as Redis holds it: where its stream is, and who is in it.

    @ivar last: the id of the stream's last entry.
    @ivar deleted: the id of the last entry trimmed away.
    @ivar offset: the bytes published in the stream so far.
    @ivar members: the room's members, as C{(node, name)}.
    @ivar topic: its topic, as kept (a C{t} event, see
        L{sockserve.bus.codec}), or empty.
    """

    last: str
    deleted: str
    offset: int
    members: list[tuple[str, str]]
    topic: bytes = b""


@dataclass(frozen=True)
class Rejoined:
    """
    What a node learns as it (re)joins the bus.

    @ivar names: the names of its people as registered, in the order asked
        (a name another node took meanwhile is replaced).
    @ivar rooms: the snapshot of each room asked, in order.
    @ivar reaped: the other nodes had counted this node as gone (and told
        their members its members left).
    @ivar lostData: Redis lost its data since the node last read.
    @ivar asked: what the node registered.
    @ivar inboxLast: the id of the last entry of the node's inbox (C{0-0}
        when it has none), if known.
    """

    names: list[str]
    rooms: list[Snapshot]
    reaped: bool
    lostData: bool
    asked: Registration
    inboxLast: str | None = None


@dataclass(frozen=True)
class Registration:
    """
    What a node has to register as it (re)joins: its people, C{(name,
    key)}, and its rooms, C{(key, name, members as (key, name))}.
    """

    people: list[tuple[str, str]]
    rooms: list[tuple[str, str, list[tuple[str, str]]]] = field(default_factory=list)


class BusNode(Protocol):
    """
    What the transport tells the node it serves (L{sockserve.bus.node}).
    """

    def registration(self) -> Registration:
        """
        What to register on (re)joining.
        """

    def busJoined(self, rejoined: Rejoined) -> None:
        """
        The node is in contact with the bus (again).
        """

    def busLost(self, reason: str) -> None:
        """
        Contact with the bus was lost.
        """

    def streamsToRead(self) -> list[tuple[str, str]]:
        """
        The streams to read now, as C{(stream, cursor)}.
        """

    def busEntries(self, stream: str, entries: list[Entry]) -> None:
        """
        Entries arrived from C{stream}, in order.
        """

    def busProgress(self, room: str, lag: int) -> None:
        """
        The slowest node in the room whose key is C{room} has C{lag} bytes
        of its stream left to read.
        """

    def backlog(self) -> tuple[int, int]:
        """
        The bytes the slowest node has left to read (in the room where it is
        furthest behind), and those of this node's lines waiting to be
        published.
        """
        ...

    def readPositions(self) -> list[tuple[str, int | None]]:
        """
        How far the node has read each room's stream, C{(room, offset)}.
        """

    def whenFlushed(self) -> Deferred[None]:
        """
        Fire once everything the node has to publish is published.
        """

    def stop(self) -> None:
        """
        The node is stopping: leave no timer behind.
        """


@dataclass(frozen=True)
class BusFigures:
    """
    How a node stands with the bus, for C{/metrics}.

    @ivar connected: whether it is in contact with the bus.
    @ivar lag: bytes the slowest node has left to read, in the room where
        it is furthest behind.
    @ivar outbox: bytes of this node's lines waiting to be published.
    @ivar reconnects: how many times it joined again after losing contact.
    """

    connected: bool
    lag: int
    outbox: int
    reconnects: int


class RedisBus(Service):
    """
    A node's link to a Redis bus: a service that connects when it starts,
    stays connected (reconnecting as needed), and leaves when it stops.

    @ivar node: this node's id, new with every process.
    @ivar connected: whether the node is in contact with the bus.
    @ivar outOfMemory: whether Redis refused the node's last write for want
        of memory.
    @ivar started: fires once the first attempt to join is over: with
        C{None} when it joined, or failed in a way that retrying may mend
        (the node retries); with the reason when Redis refused the node's
        password (the node does not retry then: the server is to stop).
    @ivar reconnects: how many times the node joined again after losing
        contact.
    @ivar replicas: how many replicas must acknowledge a batch (C{WAIT})
        before it leaves the outbox.
    @ivar unreplicated: whether the last C{WAIT} saw too few replicas.
    @ivar primary: with sentinels, the primary the node is connected to.
    """

    log = Logger()

    def __init__(
        self,
        address: BusAddress,
        clock: IReactorTime,
        reactor: object,
        nodeTimeout: float = 10.0,
        retention: int = 10_000,
        stallTimeout: float = 3.0,
        replicas: int = 0,
    ) -> None:
        self.address = address
        self.replicas = replicas
        # Where the node is connected (the primary the sentinels named).
        self.primary: BusAddress | None = None
        # The sentinels, in the order they are asked: the last that named
        # the primary first, those that did not answer last.
        self._sentinels = list(address.sentinels)
        self.unreplicated = False
        self._replicaWaiters: list[Deferred[None]] = []
        self._waitingReplicas = False
        self.clock = clock
        self.reactor = reactor
        self.nodeTimeout = nodeTimeout
        self.retention = retention
        self.stallTimeout = stallTimeout
        self.node = uuid4().hex[:16]
        self.inbox = inboxStream(self.node)
        self.connected = False
        self.target: BusNode | None = None
        self._commands: Any = None
        self._reader: Any = None
        self._readerId: bytes | None = None
        self._reading = False
        # Which read is owed (each XREAD sent counts one), and the wake to
        # be sent again, if the last one came too early.
        self._readNumber = 0
        self._wakeAgain: IDelayedCall | None = None
        self._shas: dict[str, bytes] = {}
        self._epoch: bytes | None = None
        self._attempt = 0
        self._retry: IDelayedCall | None = None
        self._heartbeat: LoopingCall | None = None
        self._progress: LoopingCall | None = None
        self._joining: Deferred[None] | None = None
        self._stopping = False
        self._everJoined = False
        self._lastProblem: str | None = None
        self.limiter = LogLimiter(clock)
        self.outOfMemory = False
        self._trimmedAt: float | None = None
        self._refusedAt: float | None = None
        self._warnedPolicy = False
        self._warnedVersion = False
        self._reporting = False
        self._reportAgain = False
        # The read position last reported for each room, the rooms where a
        # node was behind then, and when every room was last reported.
        self._reportedAt: dict[str, int | None] = {}
        self._lagging: set[str] = set()
        self._reportedAllAt: float | None = None
        self.started: Deferred[str | None] = Deferred()
        self.reconnects = 0

    def serve(self, target: BusNode) -> None:
        """
        Serve C{target}, the node's side of the bus.
        """
        self.target = target

    # The service

    def startService(self) -> None:
        """
        Start connecting; the server serves its local clients meanwhile.
        """
        super().startService()
        self.log.info("Connecting to the bus at {bus}", bus=self.address.describe())
        self._connect()

    def stopService(self) -> Deferred[None]:
        """
        Leave the bus (the other nodes tell their clients this node's
        members left), then disconnect.
        """
        super().stopService()
        self._stopping = True
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        self._retry = None
        self._stopLoops()
        if not self.connected:
            if self.target is not None:
                self.target.stop()
            return self._drop()
        flushed: Deferred[None] = (
            self.target.whenFlushed() if self.target is not None else succeed(None)
        )
        flushed.addTimeout(self.stallTimeout, self.clock)
        flushed.addErrback(lambda failure: None)

        def depart(ignored: object) -> Deferred[Any]:
            self.connected = False
            return self._script("depart", str(self.retention), str(EMPTY_ROOM_KEPT_MS))

        leaving = flushed.addCallback(depart)
        leaving.addErrback(lambda failure: None)

        def disconnect(ignored: object) -> Deferred[None]:
            if self.target is not None:
                self.target.stop()
            return self._drop()

        leaving.addBoth(disconnect)
        return leaving

    def problem(self) -> str | None:
        """
        Say what keeps the node from serving the chat across nodes as it
        should, or C{None} if nothing does.
        """
        if not self.connected:
            return f"not in contact with the bus ({self._lastProblem or 'connecting'})"
        if self.outOfMemory:
            return "Redis is out of memory: lines to the other servers wait"
        if self.unreplicated:
            return (
                f"fewer than {self.replicas} Redis replicas acknowledge: lines "
                f"to the other servers wait"
            )
        return None

    def figures(self) -> BusFigures:
        """
        How the node stands with the bus now (see L{BusFigures}).
        """
        lag, outbox = self.target.backlog() if self.target is not None else (0, 0)
        return BusFigures(self.connected, lag, outbox, self.reconnects)

    # Connecting and rejoining

    def _connect(self) -> None:
        self._retry = None
        if self._stopping:
            return
        joining = ensureDeferred(self._join())
        # Each step has its own timeout; this bounds them all, whatever
        # a connection that failed half way leaves waiting (with sentinels,
        # each silent one asked costs up to two: to connect, to answer).
        steps = 4 + 2 * len(self.address.sentinels)
        joining.addTimeout(self.stallTimeout * steps, self.clock)
        joining.addErrback(self._failed, joining)
        self._joining = joining

    async def _open(self, replyTimeout: float, address: BusAddress) -> Any:
        factory = ConnectionFactory(address, replyTimeout)
        endpoint = address.endpoint(self.reactor)
        protocol: Any = await endpoint.connect(factory)
        ready: Deferred[Any] = race([protocol.whenConnected(), factory.refused])
        ready.addTimeout(self.stallTimeout, self.clock)
        try:
            index, _ = await ready
            if index == 1:
                raise BusLost(factory.failure)
        except Exception:
            protocol.transport.abortConnection()
            raise BusLost(
                factory.failure
                or f"no answer from Redis within {self.stallTimeout:g} s"
            ) from None
        return protocol

    async def _join(self) -> None:
        """
        Connect, then rejoin in order: refresh this node (and learn whether
        Redis kept its data and whether the node was removed as gone),
        register the node's people and their rooms, learn where each room's
        stream is and who is in it, and read from where the node left off.
        """
        address = self.address
        if address.sentinels:
            address = self.primary = await self._primary()
        self._commands = await self._open(self.stallTimeout, address)
        if self.address.sentinels:
            role = await self._commands.execute_command("ROLE")
            if not role or role[0] != b"master":
                raise BusLost(
                    f"{address.describe()}, named by the sentinels, is not the "
                    f"primary (its role: {_text(role[0]) if role else 'none'}); "
                    f"asking them again"
                )
        self._reader = await self._open(
            READ_BLOCK_MS / 1000 + self.stallTimeout, address
        )
        for connection in (self._commands, self._reader):
            connection.whenDisconnected().addCallback(self._disconnected)
        self._readerId = await self._reader.execute_command("CLIENT", "ID")
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
            str(EMPTY_ROOM_KEPT_MS),
        )
        lostData = self._epoch is not None and epoch != self._epoch
        reaped = self._everJoined and not int(known) and not lostData
        self._epoch = epoch
        target = self.target
        assert target is not None
        registration = target.registration()
        arguments: list[object] = [
            str(self.retention),
            str(EMPTY_ROOM_KEPT_MS),
            str(len(registration.people)),
        ]
        for name, key in registration.people:
            arguments += [name, key]
        for room, roomName, members in registration.rooms:
            arguments += [room, roomName, str(len(members))]
            for key, name in members:
                arguments += [key, name]
        names, snapshots = await self._script("rejoin", *arguments)
        inboxLast = await self._commands.execute_command(
            "XREVRANGE", self.inbox, "+", "-", "COUNT", 1
        )
        if self._stopping:
            self._drop()
            return
        self._attempt = 0
        self.connected = True
        rejoining, self._everJoined = self._everJoined, True
        if rejoining:
            self.reconnects += 1
        if not self.started.called:
            self.started.callback(None)
        self.log.info(
            "Back in contact with the bus at {bus}"
            if rejoining
            else "Joined the bus at {bus} as node {node}",
            bus=self._where(),
            node=self.node,
        )
        self._lastProblem = None
        target.busJoined(
            Rejoined(
                names=[_text(name) for name in names],
                rooms=[self.snapshot(reply) for reply in snapshots],
                reaped=reaped,
                lostData=lostData,
                asked=registration,
                inboxLast=_text(inboxLast[0][0]) if inboxLast else "0-0",
            )
        )
        self._heartbeat = LoopingCall(self._beat)
        self._heartbeat.clock = self.clock
        self._heartbeat.start(self.nodeTimeout / 4, now=False).addErrback(
            lambda failure: None
        )
        # Redis knows nothing this node reported before it (re)joined.
        self._reportedAllAt = None
        self._progress = LoopingCall(self.reportProgress)
        self._progress.clock = self.clock
        self._progress.start(PROGRESS_EVERY, now=True).addErrback(lambda failure: None)
        self._read()

    def _where(self) -> str:
        """
        The bus's address as logs show it, with the primary the sentinels
        named, if any.
        """
        where = self.address.describe()
        if self.address.sentinels and self.primary is not None:
            where += f" (primary {self.primary.host}:{self.primary.port})"
        return where

    async def _primary(self) -> BusAddress:
        """
        Ask the sentinels, one after another, where the primary is; the
        first that answers is believed, and asked first next time (one
        that did not answer, last).

        @raise BusLost: if none could say.
        """
        address = self.address
        problems = []
        order = self._sentinels
        for sentinel in list(order):
            host, port = sentinel
            # Until it answers, it is asked last next time: a silent one
            # first in the list costs one wait, not one each time.
            order.remove(sentinel)
            order.append(sentinel)
            try:
                connection = await self._openSentinel(host, port)
            except CancelledError:
                raise
            except Exception as error:
                problems.append(f"{host}:{port}: {_reason(error)}")
                continue
            try:
                reply = await connection.execute_command(
                    "SENTINEL", "get-master-addr-by-name", address.service
                )
            except CancelledError:
                raise
            except Exception as error:
                problems.append(f"{host}:{port}: {_reason(error)}")
                continue
            finally:
                connection.transport.loseConnection()
            named = _primaryNamed(reply)
            if named is None:
                problems.append(f"{host}:{port} knows no primary {address.service}")
                continue
            order.remove(sentinel)
            order.insert(0, sentinel)
            return address.primaryAt(*named)
        raise BusLost(
            redacted(
                f"no sentinel named the primary {address.service}: "
                + "; ".join(problems)
            )
        )

    async def _openSentinel(self, host: str, port: int) -> Any:
        """
        Connect to the sentinel at C{host} and C{port}, with the bus's
        password; without it if the sentinel has none (sentinels often
        have no password when the data nodes do).
        """
        where = self.address.sentinelAt(host, port)
        try:
            return await self._open(self.stallTimeout, where)
        except BusLost as error:
            if where.password is None or "without any password" not in str(error):
                raise
        return await self._open(
            self.stallTimeout, replace(where, username=None, password=None)
        )

    def snapshot(self, reply: list[Any]) -> Snapshot:
        """
        A room's snapshot, from a script's reply.
        """
        last, deleted, offset, members, *rest = reply
        held = []
        for member in members:
            rawNode, separator, rawName = member.partition(b"\n")
            if separator and rawName:
                held.append((_text(rawNode), _text(rawName)))
        topic = rest[0] if rest and isinstance(rest[0], bytes) else b""
        return Snapshot(_text(last), _text(deleted), int(offset), held, topic)

    def _stopLoops(self) -> None:
        for loop in (self._heartbeat, self._progress):
            if loop is not None and loop.running:
                loop.stop()
        self._cancelWake()

    def _cancelWake(self) -> None:
        if self._wakeAgain is not None and self._wakeAgain.active():
            self._wakeAgain.cancel()
        self._wakeAgain = None

    def _checkMemoryPolicy(self, info: bytes) -> None:
        """
        Warn, once, if Redis evicts keys that have no expiry when it is full
        (C{maxmemory-policy allkeys-...}): it would evict the bus's names
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
                        "(or a volatile-* policy), or it loses the rooms' "
                        "members when full (see the bus's reference: what Redis "
                        "needs)",
                        bus=self.address.describe(),
                        policy=value.decode("ascii", "replace"),
                    )
                return

    def _disconnected(self, connection: Any) -> None:
        if connection is self._commands or connection is self._reader:
            self._lose("the connection to Redis was lost")

    def _failed(self, failure: Failure, joining: Deferred[None] | None = None) -> None:
        if joining is not None and joining is not self._joining:
            # An attempt given up already (the bus was lost meanwhile).
            return
        self._lose(_why(failure))

    def _lose(self, reason: str) -> None:
        """
        The bus is lost (or could not be reached): drop what is left, tell
        the node once, log once per problem, and try again later.
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
        if authenticationFailed(reason):
            reason = f"authentication failed ({reason.rstrip('.')}): {PASSWORD_HINT}"
            if not self.started.called:
                # The first attempt: a password that cannot work stops the
                # server, rather than have it retry for ever.
                self.started.callback(reason)
                self._drop()
                return
        if not self.started.called:
            self.started.callback(None)
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
        if wasConnected and self.target is not None:
            self.target.busLost(reason)
        if self._retry is None:
            last = SENTINEL_LAST_RETRY if self.address.sentinels else LAST_RETRY
            delay = min(last, FIRST_RETRY * 2**self._attempt)
            self._attempt += 1
            self._retry = self.clock.callLater(
                delay * random.uniform(0.8, 1.2), self._connect
            )
        self._drop()

    def _drop(self) -> Deferred[None]:
        """
        Drop both connections; the L{Deferred} fires once they are gone.
        """
        commands, reader = self._commands, self._reader
        self._commands = self._reader = None
        self._reading = False
        self._cancelWake()
        gone = []
        for connection in (commands, reader):
            transport = getattr(connection, "transport", None)
            if transport is None:
                continue
            if getattr(transport, "connected", False):
                gone.append(connection.whenDisconnected())
            try:
                transport.abortConnection()
            except Exception:
                # Gone already (a TLS connection that failed its handshake).
                self.log.debug("Dropping a connection to Redis failed")
        if not gone:
            return succeed(None)
        # A turn after they are gone: txredisapi fails the replies still
        # owed (and cancels their timeouts) after it says it is gone.
        return gatherResults(gone).addCallback(
            lambda ignored: deferLater(self.clock, 0, lambda: None)
        )

    # Commands

    def _script(self, name: str, *arguments: object) -> Deferred[Any]:
        if self._commands is None:
            return fail(BusLost("not connected to Redis"))
        result: Deferred[Any] = self._commands.execute_command(
            "EVALSHA", self._shas[name], 0, PREFIX, self.node, *arguments
        )
        return result

    def command(self, name: str, *arguments: object) -> Deferred[Any]:
        """
        Run the script C{name} now that the node is in the bus; a failure
        loses the bus (and fails the returned L{Deferred} with L{BusLost}),
        except a write Redis refuses for want of memory (L{BusFull}).
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

    def call(self, *arguments: object) -> Deferred[Any]:
        """
        Send the Redis command C{arguments} (C{"HSET", key, field, value}),
        if the node is in contact with the bus (L{BusLost} if not); a
        failure does not lose the bus.
        """
        if not self.connected or self._commands is None:
            return fail(BusLost("not in contact with the bus"))
        result: Deferred[Any] = self._commands.execute_command(*arguments)
        return result

    def answer(self, reply: list[Any]) -> list[Any]:
        """
        Check a script's answer: C{gone} (the node was counted as gone)
        loses the bus, to rejoin.
        """
        if reply and reply[0] == b"gone":
            self._lose("this node was counted as gone (it did not refresh in time)")
            raise BusLost("this node must rejoin the bus")
        return reply

    def _memoryFull(self) -> None:
        """
        Redis refused a write for want of memory: say so once, and trim the
        streams being read (at most every L{TRIM_EVERY} seconds), which a
        full Redis still allows, to what nodes reading them need.
        """
        now = self.clock.seconds()
        self._refusedAt = now
        if not self.outOfMemory:
            self.outOfMemory = True
            self.log.warn(
                "Redis at {bus} is out of memory (maxmemory): this node's lines "
                "wait for it, and the rooms' streams are cut to their last "
                "{keep} entries; give Redis more memory (see the bus's "
                "reference: what Redis needs)",
                bus=self.address.describe(),
                keep=OUT_OF_MEMORY_KEEP,
            )
        if self._commands is None or self.target is None:
            return
        if self._trimmedAt is None or now - self._trimmedAt >= TRIM_EVERY:
            self._trimmedAt = now
            for stream, _ in self.target.streamsToRead():
                self._commands.execute_command(
                    "XTRIM", stream, "MAXLEN", "~", OUT_OF_MEMORY_KEEP
                ).addErrback(lambda failure: None)

    def memoryBack(self, answer: Any) -> Any:
        """
        A write went through: Redis has memory (again), once no write was
        refused for L{MEMORY_BACK_AFTER} seconds.
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

    def publish(
        self, room: str, seq: int, payload: bytes, last: bool, leftKeys: Sequence[str]
    ) -> Deferred[Any]:
        """
        Publish one batch to the room whose key is C{room} (once, however
        often it is retried; C{last} if the node has no members left there
        after it); the node learns from the answer how far the slowest node
        is.
        """
        publishing = self.command(
            "publish",
            room,
            seq,
            payload,
            str(self.retention),
            str(EMPTY_ROOM_KEPT_MS),
            "1" if last else "0",
            *leftKeys,
        )

        def progressed(answer: list[Any]) -> list[Any]:
            total, slowest = int(answer[1]), int(answer[2])
            if self.target is not None and slowest >= 0:
                self.target.busProgress(room, max(0, total - slowest))
            return answer

        publishing.addCallback(self.memoryBack).addCallback(progressed)
        return publishing.addCallback(self.replicated)

    def replicated(self, answer: _T) -> Deferred[_T]:
        """
        Fire with C{answer} once C{replicas} replicas acknowledged what this
        node wrote so far (at once if none are asked); fail with
        L{NotReplicated} if they did not in time (see L{_whenReplicated}).
        """
        if not self.replicas:
            return succeed(answer)
        return self._whenReplicated().addCallback(lambda ignored: answer)

    def _whenReplicated(self) -> Deferred[None]:
        """
        Fire once C{replicas} replicas acknowledged what this node wrote so
        far; fail with L{NotReplicated} if they did not within
        L{REPLICA_WAIT_MS}, and with L{BusLost} if the bus is lost. One
        C{WAIT} at a time (it holds the connection): those asked meanwhile
        share the next.
        """
        waiter: Deferred[None] = Deferred()
        self._replicaWaiters.append(waiter)
        if not self._waitingReplicas:
            self._sendWait()
        return waiter

    def _sendWait(self) -> None:
        waiters, self._replicaWaiters = self._replicaWaiters, []
        commands = self._commands
        if commands is None or not self.connected:
            for waiter in waiters:
                waiter.errback(BusLost("not in contact with the bus"))
            return
        self._waitingReplicas = True
        waiting: Deferred[Any] = commands.execute_command(
            "WAIT", str(self.replicas), str(REPLICA_WAIT_MS)
        )

        def done(result: Any) -> None:
            self._waitingReplicas = False
            problem: Exception | None = None
            if isinstance(result, Failure):
                why = _why(result)
                problem = BusLost(why)
                if commands is self._commands and self.connected:
                    self._lose(why)
            elif int(result) < self.replicas:
                problem = NotReplicated(
                    f"{int(result)} of {self.replicas} replicas acknowledged"
                )
                self._notReplicated(int(result))
            elif self.unreplicated:
                self.unreplicated = False
                self.log.info(
                    "Redis replicas acknowledge this node's lines again "
                    "({count} asked)",
                    count=self.replicas,
                )
            for waiter in waiters:
                if problem is None:
                    waiter.callback(None)
                else:
                    waiter.errback(problem)
            if self._replicaWaiters:
                self._sendWait()

        waiting.addBoth(done)

    def _notReplicated(self, acknowledged: int) -> None:
        """
        Too few replicas acknowledged a batch: say so (at a bounded rate);
        the batch waits in the outbox.
        """
        self.unreplicated = True
        self.limiter.emit(
            self.log,
            LogLevel.warn,
            "not replicated",
            "Only {acknowledged} of the {replicas} Redis replicas asked for "
            "(--bus-replicas) acknowledged this node's lines within {ms} ms: "
            "they wait in its outbox, and are published again",
            acknowledged=acknowledged,
            replicas=self.replicas,
            ms=REPLICA_WAIT_MS,
        )

    def reportProgress(self) -> None:
        """
        Tell Redis how far this node has read each room's stream, and learn
        how far the slowest node is there: one report at a time, another at
        once if the node read more meanwhile.

        A report names the rooms this node read further in since its last
        report, and those where a node was behind then (someone here may be
        waiting for it); every room every L{FULL_PROGRESS_EVERY} seconds,
        and after the node (re)joined. A node in many quiet rooms so does not
        tell Redis about each of them four times a second.
        """
        if not self.connected or self.target is None:
            return
        if self._reporting:
            self._reportAgain = True
            return
        positions = self.target.readPositions()
        now = self.clock.seconds()
        if (
            self._reportedAllAt is None
            or now - self._reportedAllAt >= FULL_PROGRESS_EVERY
        ):
            self._reportedAllAt = now
            self._reportedAt = {}
            self._lagging = set()
        else:
            last, lagging = self._reportedAt, self._lagging
            positions = [
                (room, offset)
                for room, offset in positions
                if room in lagging or room not in last or last[room] != offset
            ]
        if not positions:
            return
        arguments: list[object] = []
        for room, offset in positions:
            arguments += [room, "" if offset is None else str(offset)]
        self._reporting = True
        reporting = self.command("progress", *arguments)

        def reported(answer: list[Any]) -> None:
            target = self.target
            if target is None:
                return
            for (room, offset), (total, slowest) in zip(
                positions, answer, strict=False
            ):
                self._reportedAt[room] = offset
                lag = max(0, int(total) - int(slowest)) if int(slowest) >= 0 else -1
                if lag:
                    # Behind, or not known yet: asked again next time.
                    self._lagging.add(room)
                else:
                    self._lagging.discard(room)
                if lag >= 0:
                    target.busProgress(room, lag)

        reporting.addCallbacks(reported, lambda failure: None)

        def done(ignored: object) -> None:
            self._reporting = False
            if self._reportAgain:
                self._reportAgain = False
                self.reportProgress()

        reporting.addBoth(done)

    def recent(self, room: str, lines: int) -> Deferred[list[Entry]]:
        """
        Read the room's stream backwards, a page at a time (at most
        L{HISTORY_PAGES}), until its entries hold C{lines} lines said.
        """
        return ensureDeferred(self._recent(room, lines))

    async def _recent(self, room: str, lines: int) -> list[Entry]:
        from sockserve.bus.codec import Said

        found: list[Entry] = []
        end = "+"
        stream = roomStream(room)
        for _ in range(HISTORY_PAGES):
            if self._commands is None:
                break
            page = await self._commands.execute_command(
                "XREVRANGE", stream, end, "-", "COUNT", HISTORY_PAGE
            )
            if not page:
                break
            found.extend(self.entries(page, everyone=True))
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

    def _beat(self) -> None:
        if not self.connected:
            return
        beating = self.command(
            "heartbeat",
            str(int(self.nodeTimeout * 1000)),
            uuid4().hex.encode(),
            str(self.retention),
            "0",
            str(EMPTY_ROOM_KEPT_MS),
        )
        beating.addCallbacks(self._beaten, lambda failure: None)

    def _beaten(self, answer: list[bytes]) -> None:
        epoch, known, _ = answer
        if epoch != self._epoch:
            self._lose("Redis lost its data (it restarted without persistence)")
        elif not int(known):
            self._lose("this node was counted as gone (it did not refresh in time)")

    # Reading

    def wakeReader(self) -> None:
        """
        The streams to read changed: have the reading connection's C{XREAD}
        return now, so that it reads the new set.
        """
        if self._reading and self._wakeAgain is None:
            self._wake(self._readNumber, WAKE_FIRST_RETRY)

    def _wake(self, number: int, retry: float) -> None:
        """
        Unblock read C{number}; if Redis had no read of this node's waiting
        (it is still on its way), try again after C{retry} seconds, for as
        long as that read is owed.
        """
        self._wakeAgain = None
        commands, readerId = self._commands, self._readerId
        if (
            commands is None
            or readerId is None
            or not self._reading
            or self._readNumber != number
        ):
            return

        def answered(unblocked: object) -> None:
            if unblocked == 0 and self._reading and self._readNumber == number:
                self._wakeAgain = self.clock.callLater(
                    retry, self._wake, number, min(retry * 2, WAKE_LAST_RETRY)
                )

        woken = commands.execute_command("CLIENT", "UNBLOCK", readerId)
        woken.addCallbacks(answered, lambda failure: None)

    def _read(self) -> None:
        reader, target = self._reader, self.target
        if reader is None or target is None or not self.connected or self._stopping:
            return
        streams = target.streamsToRead()
        if not streams:
            return
        self._reading = True
        self._readNumber += 1
        names = [stream for stream, _ in streams]
        cursors = {stream: cursor for stream, cursor in streams}
        reading = reader.execute_command(
            "XREAD",
            "COUNT",
            READ_COUNT,
            "BLOCK",
            READ_BLOCK_MS,
            "STREAMS",
            *names,
            *[cursor for _, cursor in streams],
        )
        reading.addCallbacks(self._readDone, self._failed, callbackArgs=(cursors,))

    def _readDone(self, reply: Any, cursors: dict[str, str]) -> None:
        self._reading = False
        self._cancelWake()
        if not self.connected:
            return
        target = self.target
        if reply and target is not None:
            for rawStream, raw in reply:
                stream = _text(rawStream)
                try:
                    entries = self.entries(raw, everyone=stream == self.inbox)
                    target.busEntries(stream, entries)
                except Exception:
                    # Reading goes on: one bad entry must not deafen the node.
                    self.log.failure("Could not deliver entries from the bus")
            self.reportProgress()
        self._read()

    def resumeReading(self) -> None:
        """
        Read again, if reading waits (no stream was to be read).
        """
        if not self._reading:
            self._read()
        else:
            self.wakeReader()

    def entries(self, raw: list[Any], everyone: bool = False) -> list[Entry]:
        """
        The entries of a stream's reply, checked; this node's own are left
        undecoded (they carry only their id and offset) unless C{everyone}.
        """
        entries = []
        own = () if everyone else (self.node.encode(), b"gone:" + self.node.encode())
        for entryId, fields in raw:
            values = dict(zip(fields[::2], fields[1::2], strict=False))
            offset = _offset(values.get(b"o"))
            if values.get(b"n") in own:
                entries.append(Entry(entryId.decode(), self.node, 0, (), offset))
                continue
            version = values.get(b"v", b"1")
            if version.isdigit() and int(version) > VERSION:
                if not self._warnedVersion:
                    self._warnedVersion = True
                    self.log.warn(
                        "An entry on the bus is of a later format ({version}) "
                        "than this node reads ({mine}): skipped; upgrade this "
                        "node",
                        version=version.decode("ascii"),
                        mine=VERSION,
                    )
                entries.append(Entry(entryId.decode(), "", 0, (), offset))
                continue
            if len(values.get(b"e", b"")) > MAX_ENTRY:
                self.limiter.emit(
                    self.log,
                    LogLevel.warn,
                    "bad entries",
                    "Skipped an entry on the bus larger than any a sockserve "
                    "node writes ({size} bytes)",
                    size=len(values[b"e"]),
                )
                entries.append(Entry(entryId.decode(), "", 0, (), offset))
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
                    "Skipped an entry on the bus that is not one a sockserve "
                    "node wrote: {error}",
                    error=str(error),
                )
                entries.append(Entry(entryId.decode(), "", 0, (), offset))
                continue
            entries.append(Entry(entryId.decode(), node, seq, events, offset))
        return entries


def _offset(raw: bytes | None) -> int | None:
    """
    The offset an entry carries (C{o}), or C{None}.
    """
    if raw is None or not raw.isdigit():
        return None
    return int(raw)


def _primaryNamed(reply: object) -> tuple[str, int] | None:
    """
    The host and port a sentinel's answer to C{SENTINEL
    get-master-addr-by-name} names, or C{None} if it names none (C{nil},
    or anything but a host and a port: a sentinel that answers garbage is
    one that knows no primary).
    """
    if not isinstance(reply, list) or len(reply) != 2:
        return None
    host, port = reply
    if not isinstance(host, bytes) or not host or not isinstance(port, bytes):
        return None
    if not (port.isascii() and port.isdigit() and len(port) <= 5):
        return None
    number = int(port)
    return (_text(host), number) if 0 < number < 65536 else None


def _text(raw: bytes | str) -> str:
    """
    A reply's bytes as text.
    """
    return raw if isinstance(raw, str) else raw.decode("utf-8", "replace")


def _reason(error: Exception) -> str:
    """
    An exception's message, or its kind when it has none.
    """
    return str(error).rstrip(".") or type(error).__name__


def _why(failure: Failure) -> str:
    """
    A failure's message, or its kind when it has none.
    """
    return failure.getErrorMessage() or getattr(failure.type, "__name__", "error")

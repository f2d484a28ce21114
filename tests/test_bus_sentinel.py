"""
The bus through Redis Sentinel, on fakes: C{redis+sentinel://} addresses,
a batch that counts as published only once replicas acknowledged it
(C{WAIT}), and a reader whose cursor is past the end of a promoted
replica's stream. (The failover itself, with real processes, is in
C{tests/test_e2e_bus_sentinel.py}.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred, ensureDeferred, fail, succeed
from twisted.internet.interfaces import IAddress, IReactorTCP
from twisted.internet.protocol import Protocol, ServerFactory, connectionDone
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.python.usage import UsageError

from sockserve.bus.address import (
    DEFAULT_SENTINEL_PORT,
    BusAddress,
    parseBusAddress,
)
from sockserve.bus.codec import Private, Said
from sockserve.bus.inbound import MISSING
from sockserve.bus.node import busChat
from sockserve.bus.outbox import PUBLISH_RETRY
from sockserve.bus.redis import (
    REPLICA_WAIT_MS,
    BusLost,
    NotReplicated,
    RedisBus,
    Snapshot,
    roomStream,
)
from sockserve.chat.events import PrivateMessage
from sockserve.tap import Options
from tests.redis import Commands, RedisServer
from tests.test_bus import Node, entry, result
from tests.test_service import rules, until

# Addresses


def test_sentinel_addresses() -> None:
    """
    A sentinel address names its sentinels (the default port 26379), the
    service and the database; it shows without its password; the
    sentinels are asked without the database, the primary with it.
    """
    address = parseBusAddress(
        "redis+sentinel://us%40r:p%40ss@Sentinel-A:7000,[::1]:7001,sentinel-c/bus.1/2"
    )
    assert address == BusAddress(
        "redis+sentinel",
        db=2,
        username="us@r",
        password="p@ss",
        sentinels=(
            ("sentinel-a", 7000),
            ("::1", 7001),
            ("sentinel-c", DEFAULT_SENTINEL_PORT),
        ),
        service="bus.1",
    )
    assert address.describe() == (
        "redis+sentinel://sentinel-a:7000,[::1]:7001,sentinel-c:26379/bus.1/2"
    )
    assert "p@ss" not in repr(address)
    assert address.sentinelAt("::1", 7001) == BusAddress(
        "redis", "::1", 7001, username="us@r", password="p@ss"
    )
    assert address.primaryAt("10.0.0.9", 6380) == BusAddress(
        "redis", "10.0.0.9", 6380, db=2, username="us@r", password="p@ss"
    )
    bare = parseBusAddress("REDIS+SENTINEL://h/s")
    assert (bare.sentinels, bare.service, bare.db, bare.password) == (
        (("h", DEFAULT_SENTINEL_PORT),),
        "s",
        0,
        None,
    )
    ca = "/etc/ca.pem"
    secure = parseBusAddress(f"rediss+sentinel://h:1/s?ssl_ca_certs={ca}")
    assert secure.describe() == "rediss+sentinel://h:1/s"
    assert secure.sentinelAt("h", 1) == BusAddress("rediss", "h", 1, caFile=ca)
    assert secure.primaryAt("p", 2) == BusAddress("rediss", "p", 2, caFile=ca)
    assert parseBusAddress("rediss+sentinel://h:1/s").sentinelAt("h", 1) == (
        BusAddress("rediss", "h", 1)
    )
    assert bare.sentinelAt("h", 1).scheme == bare.primaryAt("h", 1).scheme == "redis"
    assert bare.withPassword("pw").password == "pw"
    assert bare.withPassword("pw").sentinels == bare.sentinels
    with pytest.raises(ValueError, match="primary"):
        bare.endpoint(object())


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("redis+sentinel://h:1", "names no service"),
        ("redis+sentinel://h:1/", "names no service"),
        ("redis+sentinel://h:1/a b", "names no service"),
        ("redis+sentinel://h:x/s", "'x' is not a port"),
        ("redis+sentinel://h:0/s", "'0' is not a port"),
        ("redis+sentinel://h:1,,h:2/s", "'' is not HOST:PORT"),
        ("redis+sentinel://h:1/s/x", "the database must be a number"),
        ("redis+sentinel://h:1/s?db=1", "takes no options"),
        ("rediss+sentinel://h:1/s?ssl_ca_certs", "takes no options"),
        ("redis+sentinel://h:1/s?ssl_ca_certs=/ca", "is for rediss\\+sentinel"),
    ],
)
def test_bad_sentinel_addresses(text: str, why: str) -> None:
    """
    A malformed sentinel address is one line saying what is wrong.
    """
    with pytest.raises(ValueError, match=why) as raised:
        parseBusAddress(text)
    assert "\n" not in str(raised.value)


def test_a_bad_sentinel_address_never_shows_the_password() -> None:
    """
    The password of a malformed sentinel address is hidden in the error.
    """
    with pytest.raises(ValueError, match="is not a port") as raised:
        parseBusAddress("redis+sentinel://:secret@h:99999/s")
    assert "secret" not in str(raised.value)
    assert "***" in str(raised.value)


@pytest.mark.parametrize(
    "text",
    [
        "redis+sentinel://:Xq1/Zw2@h:1/s",
        "redis+sentinel://user:Xq1?Zw2@h:1/s",
        "redis://:Xq1/Zw2@h:1/0",
        "redis://:Xq1?Zw2@h:1/0",
        "rediss://u:Xq1#Zw2@h:1/0",
        "redis://:Xq1Zw2@h:99999/0",
    ],
)
def test_a_password_with_a_url_delimiter_is_never_shown(text: str) -> None:
    """
    A password holding C{/}, C{?} or C{#} unencoded (as a generated one
    may) makes the address malformed: the error says so, and shows no part
    of the password.
    """
    with pytest.raises(ValueError, match=r"\*\*\*@") as raised:
        parseBusAddress(text)
    message = str(raised.value)
    assert "Xq1" not in message
    assert "Zw2" not in message
    assert "\n" not in message


def test_replicas_by_default_with_sentinels_only() -> None:
    """
    C{--bus-replicas} is 1 by default with a sentinel address, 0 with
    another, and what is given otherwise.
    """

    def replicas(*arguments: str) -> Any:
        options = Options()
        options.parseOptions(["--mode", "chat", *arguments])
        return options["bus-replicas"]

    assert replicas("--bus", "redis+sentinel://h:1/s") == 1
    assert replicas("--bus", "redis://h") == 0
    assert replicas("--bus", "redis+sentinel://h:1/s", "--bus-replicas", "0") == 0
    assert replicas("--bus", "redis://h", "--bus-replicas", "2") == 2
    with pytest.raises(UsageError, match=r"^--bus-replicas needs --bus$"):
        replicas("--bus-replicas", "1")
    with pytest.raises(UsageError, match="--bus-replicas must be an integer"):
        replicas("--bus", "redis://h", "--bus-replicas", "-1")


# Waiting for replicas


def connectedBus(replicas: int) -> tuple[RedisBus, Commands]:
    """
    A bus in contact with a Redis whose replies the test gives.
    """
    bus = RedisBus(
        parseBusAddress("redis+sentinel://h:1/s"), Clock(), object(), replicas=replicas
    )
    commands = Commands()
    bus._commands = commands
    bus._shas["publish"] = b"sha"
    bus.connected = True
    return bus, commands


def waiting(deferred: Deferred[Any]) -> bool:
    """
    Whether C{deferred} has no result yet (it may be waiting on another).
    """
    fired: list[object] = []

    def seen(value: object) -> object:
        fired.append(value)
        return value

    deferred.addBoth(seen)
    return not fired


def publish(bus: RedisBus, seq: int) -> Deferred[Any]:
    return bus.publish("default", seq, b"m\x1fa\x1fhi", False, [])


def test_a_batch_is_published_once_a_replica_acknowledged_it() -> None:
    """
    With C{replicas}, a batch written counts as published only once that
    many replicas acknowledged it (C{WAIT N timeout} after it).
    """
    bus, commands = connectedBus(replicas=1)
    publishing = publish(bus, 1)
    commands.reply("EVALSHA", [1, 10, -1])
    assert commands.sent[0][0] == ("WAIT", "1", str(REPLICA_WAIT_MS))
    assert waiting(publishing)
    commands.reply("WAIT", 1)
    assert result(publishing) == [1, 10, -1]
    assert bus.problem() is None


def test_a_batch_no_replica_acknowledged_is_not_published() -> None:
    """
    A batch too few replicas acknowledged fails with L{NotReplicated} (the
    outbox keeps it, to publish it again); the bus is not lost, but says
    what is wrong until replicas acknowledge again.
    """
    bus, commands = connectedBus(replicas=2)
    publishing = publish(bus, 1)
    commands.reply("EVALSHA", [1, 10, -1])
    commands.reply("WAIT", 1)
    failure = result(publishing)
    assert isinstance(failure, Failure)
    assert failure.check(NotReplicated)
    assert bus.connected
    assert bus.problem() == (
        "fewer than 2 Redis replicas acknowledge: lines to the other servers wait"
    )
    again = publish(bus, 1)
    commands.reply("EVALSHA", [0, 10, -1])
    commands.reply("WAIT", 2)
    assert result(again) == [0, 10, -1]
    assert bus.problem() is None


def test_one_wait_at_a_time_shared_by_the_batches_written_meanwhile() -> None:
    """
    A C{WAIT} holds the connection: one at a time; the batches written
    while it runs share the next one.
    """
    bus, commands = connectedBus(replicas=1)
    first = publish(bus, 1)
    commands.reply("EVALSHA", [1, 10, -1])
    second, third = publish(bus, 2), publish(bus, 3)
    commands.reply("EVALSHA", [1, 20, -1])
    commands.reply("EVALSHA", [1, 30, -1])
    assert commands.names() == ["WAIT"]
    commands.reply("WAIT", 1)
    assert result(first) == [1, 10, -1]
    assert commands.names() == ["WAIT"]
    assert waiting(second)
    assert waiting(third)
    commands.reply("WAIT", 1)
    assert (result(second), result(third)) == ([1, 20, -1], [1, 30, -1])
    assert commands.names() == []


def test_without_replicas_asked_no_wait() -> None:
    """
    With no replicas asked, a batch is published once written.
    """
    bus, commands = connectedBus(replicas=0)
    publishing = publish(bus, 1)
    commands.reply("EVALSHA", [1, 10, -1])
    assert result(publishing) == [1, 10, -1]
    assert commands.names() == []


def test_a_wait_that_fails_loses_the_bus() -> None:
    """
    A C{WAIT} Redis refuses (it is no longer the primary) loses the bus,
    to ask the sentinels again; the batch waits.
    """
    bus, commands = connectedBus(replicas=1)
    publishing = publish(bus, 1)
    commands.reply("EVALSHA", [1, 10, -1])
    [(_, waiting)] = commands.sent
    waiting.errback(Exception("ERR WAIT cannot be used with replica instances"))
    assert result(publishing).check(BusLost)
    assert not bus.connected
    bus.stopService()


# A promoted replica's stream


def test_a_cursor_past_the_end_of_a_promoted_replicas_stream_reads_on() -> None:
    """
    A node that had read further than the stream of the replica promoted
    since (it lacks the old primary's last entries) reads on from that
    stream's end, so the entries it takes next are not skipped; a batch it
    read already and its sender publishes again is not delivered twice,
    and nobody is told lines may be missing.
    """
    world = Node()
    alice = world.arrive()
    stream = roomStream("default")
    world.node.busEntries(
        stream,
        [
            entry("8-0", "there", 1, Said("far", (b"one",))),
            entry("9-0", "there", 2, Said("far", (b"two",))),
        ],
    )
    world.transport.lose()
    world.transport.rejoin(rooms=[Snapshot("8-0", "0-0", 0, [])])
    assert (stream, "8-0") in world.node.streamsToRead()
    world.node.busEntries(
        stream,
        [
            entry("8-5", "there", 2, Said("far", (b"two",))),
            entry("8-6", "there", 3, Said("far", (b"three",))),
        ],
    )
    assert [line for _, _, line in alice.lines()] == [b"one", b"two", b"three"]
    assert MISSING not in alice.notices()


def test_a_cursor_within_the_stream_stays() -> None:
    """
    A node back on a stream that holds what it read reads on from where it
    was.
    """
    world = Node()
    world.arrive()
    stream = roomStream("default")
    world.node.busEntries(stream, [entry("3-0", "there", 1, Said("far", (b"a",)))])
    world.transport.lose()
    world.transport.rejoin(rooms=[Snapshot("9-0", "0-0", 0, [])])
    assert (stream, "3-0") in world.node.streamsToRead()


# Asking the sentinels, on loopback


class FakeSentinel(Protocol):
    """
    Answers every C{SENTINEL get-master-addr-by-name} with its factory's
    C{port} on 127.0.0.1.
    """

    factory: FakeSentinels

    def connectionMade(self) -> None:
        self.factory.open += 1

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.factory.open -= 1

    def dataReceived(self, data: bytes) -> None:
        assert self.transport is not None
        if data.count(b"AUTH"):
            # As a sentinel without a password answers one.
            self.factory.authentications += 1
            self.transport.write(
                b"-ERR AUTH <password> called without any password configured "
                b"for the default user. Are you sure your configuration is "
                b"correct?\r\n"
            )
            return
        for _ in range(data.count(b"get-master-addr-by-name")):
            self.factory.asked += 1
            port = str(self.factory.port).encode()
            assert self.transport is not None
            self.transport.write(
                b"*2\r\n$9\r\n127.0.0.1\r\n$%d\r\n%s\r\n" % (len(port), port)
            )


class FakeSentinels(ServerFactory):
    """
    A sentinel that names the primary the test says (C{port}), and counts
    how often it was asked.
    """

    noisy = False

    def __init__(self, port: int) -> None:
        self.port = port
        self.asked = 0
        self.open = 0
        self.authentications = 0

    def buildProtocol(self, addr: IAddress | None) -> Protocol | None:
        """
        A connection of a node asking.
        """
        protocol = FakeSentinel()
        protocol.factory = self
        return protocol


@pytest_twisted.ensureDeferred
async def test_the_node_writes_only_to_the_primary(tmp_path: Path) -> None:
    """
    The first sentinel that answers is believed, and the others are not
    asked; a server it names that is not the primary (C{ROLE}) is not
    joined: the sentinels are asked again, and the node joins once they
    name the primary.
    """
    primary = RedisServer(tmp_path / "primary").start()
    replica = RedisServer(
        tmp_path / "replica", "--replicaof", "127.0.0.1", str(primary.port)
    ).start()
    first, second = FakeSentinels(replica.port), FakeSentinels(primary.port)
    listeners = [
        cast(IReactorTCP, reactor).listenTCP(0, each, interface="127.0.0.1")
        for each in (first, second)
    ]
    hosts = ",".join(
        f"127.0.0.1:{each.getHost().port}"  # type: ignore[attr-defined]
        for each in listeners
    )
    _, bus = busChat(
        parseBusAddress(f"redis+sentinel://{hosts}/sockbus"), rules(), reactor, reactor
    )
    try:
        bus.startService()
        await until(lambda: first.asked >= 2, "the sentinels asked again")
        assert not bus.connected
        assert bus.problem() == (
            "not in contact with the bus (redis://127.0.0.1:"
            f"{replica.port}, named by the sentinels, is not the primary (its "
            "role: slave); asking them again)"
        )
        first.port = primary.port
        await until(lambda: bus.connected, "the node joined the primary")
        assert bus.primary is not None
        assert bus.primary.port == primary.port
        assert second.asked == 0
        assert replica.command("DBSIZE").strip() == "0"
    finally:
        await bus.stopService()
        for listener in listeners:
            stopped = listener.stopListening()
            if stopped is not None:
                await stopped
        await until(lambda: first.open == second.open == 0, "sentinels closed")
        replica.kill()
        primary.kill()


@pytest_twisted.ensureDeferred
async def test_sentinels_without_the_password_of_the_data_nodes(
    tmp_path: Path,
) -> None:
    """
    A sentinel that has no password (it says so to C{AUTH}) is asked
    without it; the primary it names is given the bus's password.
    """
    primary = RedisServer(tmp_path / "primary", "--requirepass", "s3cret").start()
    sentinel = FakeSentinels(primary.port)
    listener = cast(IReactorTCP, reactor).listenTCP(0, sentinel, interface="127.0.0.1")
    hosts = f"127.0.0.1:{listener.getHost().port}"  # type: ignore[attr-defined]
    _, bus = busChat(
        parseBusAddress(f"redis+sentinel://:s3cret@{hosts}/sockbus"),
        rules(),
        reactor,
        reactor,
    )
    try:
        bus.startService()
        await until(lambda: bus.connected, "the node joined the primary")
        assert sentinel.authentications == 1
        assert sentinel.asked == 1
    finally:
        await bus.stopService()
        stopped = listener.stopListening()
        if stopped is not None:
            await stopped
        await until(lambda: sentinel.open == 0, "the sentinel closed")
        primary.kill()


def test_a_private_message_no_replica_acknowledged_goes_again() -> None:
    """
    A private message to someone elsewhere that too few replicas
    acknowledged is sent again, under its number, in a while; its sender
    learns it was delivered once they did.
    """
    world = Node()
    alice = world.arrive()
    answers: list[Deferred[Any]] = [fail(NotReplicated("0 of 1 replicas acknowledged"))]
    world.transport.replicated = (  # type: ignore[method-assign]
        lambda answer: answers.pop(0) if answers else succeed(answer)
    )
    telling = world.service.tell(alice, alice.name, "bob", [b"hi"])
    first = world.transport.take("tell")
    first.answer([b"ok", b"Bob"])
    assert waiting(telling)
    world.clock.advance(PUBLISH_RETRY)
    again = world.transport.take("tell")
    assert again.arguments[0] == first.arguments[0]
    again.answer([b"dup", b"Bob"])
    assert result(telling) == "Bob"
    assert [r for r in world.transport.requests if r.name == "tell"] == []


def test_an_inbox_cursor_past_the_end_of_a_promoted_replicas_inbox_reads_on() -> None:
    """
    The same for the node's inbox of private messages: a cursor past its
    end reads on from there; one within it stays.
    """
    world = Node()
    alice = world.arrive()
    inbox = world.transport.inbox
    world.node.busEntries(
        inbox, [entry("9-0", "there", 1, Private("far", alice.name, (b"one",)))]
    )
    world.transport.lose()
    world.transport.rejoin(inboxLast="12-0")
    assert (inbox, "9-0") in world.node.streamsToRead()
    world.transport.lose()
    world.transport.rejoin(inboxLast="5-0")
    assert (inbox, "5-0") in world.node.streamsToRead()
    world.node.busEntries(
        inbox,
        [
            entry("7-0", "there", 1, Private("far", alice.name, (b"one",))),
            entry("7-1", "there", 2, Private("far", alice.name, (b"two",))),
        ],
    )
    assert [
        line
        for event in alice.received
        if isinstance(event, PrivateMessage)
        for line in event.lines
    ] == [b"one", b"two"]


class Silent(Protocol):
    """
    A sentinel that accepts a connection and never answers (stopped with
    SIGSTOP, or its machine gone behind a firewall that drops packets).
    """

    def connectionMade(self) -> None:
        Silent.open += 1

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        Silent.open -= 1

    open = 0


class SilentSentinels(ServerFactory):
    """
    Sentinels that never answer.
    """

    noisy = False
    protocol = Silent


@pytest_twisted.ensureDeferred
async def test_silent_sentinels_first_in_the_list(tmp_path: Path) -> None:
    """
    Sentinels that say nothing (stopped, or their machine gone) first in
    the address cost each a wait of C{stallTimeout}, no more: the node
    still reaches the one that answers, however many come before it, and
    then asks it first.
    """
    primary = RedisServer(tmp_path / "primary").start()
    live = FakeSentinels(primary.port)
    tcp = cast(IReactorTCP, reactor)
    listeners = [
        tcp.listenTCP(0, SilentSentinels(), interface="127.0.0.1") for _ in range(4)
    ]
    listeners.append(tcp.listenTCP(0, live, interface="127.0.0.1"))
    hosts = ",".join(
        f"127.0.0.1:{each.getHost().port}"  # type: ignore[attr-defined]
        for each in listeners
    )
    _, bus = busChat(
        parseBusAddress(f"redis+sentinel://{hosts}/sockbus"), rules(), reactor, reactor
    )
    bus.stallTimeout = 0.3
    try:
        bus.startService()
        await until(lambda: bus.connected, "the node joined the primary")
        bus._lose("asked to look again")
        await until(lambda: bus.connected, "the node joined again")
        assert live.asked == 2
    finally:
        await bus.stopService()
        for listener in listeners:
            stopped = listener.stopListening()
            if stopped is not None:
                await stopped
        await until(lambda: live.open == Silent.open == 0, "sentinels closed")
        primary.kill()


class Answering:
    """
    A connection to a sentinel that answers C{reply}, then is closed.
    """

    def __init__(self, reply: Any) -> None:
        self.reply = reply
        self.transport = self
        self.closed = False

    def execute_command(self, *arguments: Any) -> Deferred[Any]:
        return succeed(self.reply)

    def loseConnection(self) -> None:
        self.closed = True


@pytest.mark.parametrize(
    "garbage",
    [
        [b"127.0.0.1", 2**63],
        [b"127.0.0.1", [b"7000"]],
        [[b"127.0.0.1"], b"7000"],
        [b"127.0.0.1", b"99999"],
        [b"", b"7000"],
        [b"127.0.0.1", b"\xd9\xa1"],
        b"ERR",
        42,
    ],
)
def test_a_sentinel_that_answers_garbage_is_passed_over(garbage: Any) -> None:
    """
    A sentinel whose answer is no address (an integer as big as a port
    cannot be, a list for a port, an empty host, a port out of range) is
    one that knows no primary: the next one is asked, at once, and nothing
    is made of the garbage (no allocation the size of a huge integer).
    """
    bus = RedisBus(parseBusAddress("redis+sentinel://a:1,b:2/s"), Clock(), object())
    answers = {"a": Answering(garbage), "b": Answering([b"127.0.0.1", b"6380"])}

    async def openSentinel(host: str, port: int) -> Any:
        return answers[host]

    bus._openSentinel = openSentinel  # type: ignore[method-assign]
    primary = result(ensureDeferred(bus._primary()))
    assert isinstance(primary, BusAddress)
    assert (primary.host, primary.port) == ("127.0.0.1", 6380)
    assert answers["a"].closed

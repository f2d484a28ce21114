"""
How a node tells Redis how far it has read each room's stream
(L{RedisBus.reportProgress}): the rooms it read further in, and those where
a node was behind, not every room it is in four times a second; every room
now and then.
"""

from __future__ import annotations

from twisted.internet.task import Clock

from sockserve.bus.address import parseBusAddress
from sockserve.bus.redis import FULL_PROGRESS_EVERY, RedisBus
from tests.redis import Commands


class Node:
    """What the bus reports for: a node in some rooms."""

    def __init__(self, positions: dict[str, int | None]) -> None:
        self.positions = positions
        self.progress: list[tuple[str, int]] = []

    def readPositions(self) -> list[tuple[str, int | None]]:
        return list(self.positions.items())

    def busProgress(self, room: str, lag: int) -> None:
        self.progress.append((room, lag))


def reportingBus(
    positions: dict[str, int | None],
) -> tuple[RedisBus, Commands, Node, Clock]:
    """A bus in contact with a Redis whose replies the test gives."""
    clock = Clock()
    bus = RedisBus(parseBusAddress("redis://h:1"), clock, object())
    commands = Commands()
    bus._commands = commands
    bus._shas["progress"] = b"sha"
    bus.connected = True
    node = Node(positions)
    bus.target = node  # type: ignore[assignment]
    return bus, commands, node, clock


def report(
    bus: RedisBus, commands: Commands, answers: dict[str, tuple[int, int]]
) -> list[str]:
    """
    Have C{bus} report, answer as C{answers} say (per room: the stream's
    total, the slowest node's offset), and return the rooms it named.
    """
    bus.reportProgress()
    if not commands.sent:
        return []
    (arguments, reply) = commands.sent.pop()
    assert not commands.sent
    named = list(arguments[5::2])
    reply.callback([answers.get(room, (0, 0)) for room in named])
    return named


def test_a_quiet_room_is_not_reported_again() -> None:
    """The first report names every room; while none is read further and
    no node is behind, the next reports name none, and send nothing."""
    bus, commands, node, clock = reportingBus({"a": 10, "b": 20, "c": None})
    assert report(bus, commands, {"a": (10, 10), "b": (20, 20)}) == ["a", "b", "c"]
    clock.advance(0.25)
    assert report(bus, commands, {}) == []
    assert node.progress == [("a", 0), ("b", 0), ("c", 0)]


def test_a_room_read_further_is_reported() -> None:
    """Only the room read further since the last report is named."""
    bus, commands, node, clock = reportingBus({"a": 10, "b": 20})
    report(bus, commands, {"a": (10, 10), "b": (20, 20)})
    node.positions["b"] = 35
    clock.advance(0.25)
    assert report(bus, commands, {"b": (35, 30)}) == ["b"]
    assert node.progress[-1] == ("b", 5)


def test_a_room_where_a_node_is_behind_is_reported_until_it_is_not() -> None:
    """A room where the slowest node was behind is asked about again, read
    further here or not (a sender here may wait for it), until nobody is."""
    bus, commands, node, clock = reportingBus({"a": 10, "b": 20})
    report(bus, commands, {"a": (10, 4), "b": (20, 20)})
    clock.advance(0.25)
    assert report(bus, commands, {"a": (10, 8)}) == ["a"]
    clock.advance(0.25)
    assert report(bus, commands, {"a": (10, 10)}) == ["a"]
    clock.advance(0.25)
    assert report(bus, commands, {}) == []
    assert [lag for room, lag in node.progress if room == "a"] == [6, 2, 0]


def test_a_room_the_slowest_node_is_not_known_in_is_asked_again() -> None:
    """A room whose slowest node Redis cannot tell yet (-1) is named again."""
    bus, commands, node, clock = reportingBus({"a": 10})
    report(bus, commands, {"a": (10, -1)})
    clock.advance(0.25)
    assert report(bus, commands, {"a": (10, 10)}) == ["a"]
    assert node.progress == [("a", 0)]


def test_every_room_is_reported_now_and_then() -> None:
    """Every room is named again every FULL_PROGRESS_EVERY seconds, quiet or
    not, so that nothing missed stays missed."""
    bus, commands, _, clock = reportingBus({"a": 10, "b": 20})
    report(bus, commands, {"a": (10, 10), "b": (20, 20)})
    clock.advance(FULL_PROGRESS_EVERY - 0.1)
    assert report(bus, commands, {}) == []
    clock.advance(0.1)
    assert report(bus, commands, {"a": (10, 10), "b": (20, 20)}) == ["a", "b"]


def test_a_failed_report_is_made_again() -> None:
    """A report Redis did not answer leaves its rooms to be named again."""
    bus, commands, node, clock = reportingBus({"a": 10})
    report(bus, commands, {"a": (10, 10)})
    node.positions["a"] = 12
    clock.advance(0.25)
    bus.reportProgress()
    (_, reply) = commands.sent.pop()
    bus.connected = True
    reply.errback(RuntimeError("no answer"))
    bus.connected = True
    bus._commands = commands
    clock.advance(0.25)
    assert report(bus, commands, {"a": (12, 12)}) == ["a"]

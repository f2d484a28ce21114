"""
Bans and mutes shared through the bus (L{sockserve.bus.moderation}), on a
Clock and a fake of the bus's Redis hashes.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock

from sockserve.bus.moderation import BANS, MUTES, SharedModeration
from sockserve.bus.redis import BusLost
from sockserve.chat.moderation import Ban, Moderation
from tests.support import capturedLogs


class FakeBus:
    """The hashes of a Redis, while C{connected}."""

    def __init__(self) -> None:
        self.connected = True
        self.hashes: dict[str, dict[str, str]] = {BANS: {}, MUTES: {}}
        # Readings answered later, by the test, if set.
        self.held: list[tuple[Deferred[Any], list[bytes]]] | None = None

    def call(self, verb: str, key: str, *arguments: str) -> Deferred[Any]:
        if not self.connected:
            return fail(BusLost("away"))
        hash = self.hashes[key]
        if verb == "HSET":
            hash[arguments[0]] = arguments[1]
            return succeed(1)
        if verb == "HDEL":
            return succeed(int(hash.pop(arguments[0], None) is not None))
        assert verb == "HGETALL"
        reply = [item.encode() for pair in hash.items() for item in pair]
        if self.held is not None:
            answer: Deferred[Any] = Deferred()
            self.held.append((answer, reply))
            return answer
        return succeed(reply)


def shared() -> tuple[SharedModeration, FakeBus, Moderation, Clock, list[Ban]]:
    clock = Clock()
    clock.advance(1000)
    bus = FakeBus()
    moderation = Moderation(clock)
    enforced: list[Ban] = []
    sharing = SharedModeration(
        bus,  # type: ignore[arg-type]
        moderation,
        clock,
        enforced.append,
    )
    sharing.startService()
    return sharing, bus, moderation, clock, enforced


def test_changes_are_written_at_once() -> None:
    """A ban or a mute made here is in the bus's hash at once; lifting it
    deletes it."""
    sharing, bus, moderation, _, _ = shared()
    moderation.ban("192.0.2.0/24", "alice", 60, "spam")
    moderation.mute("carol", "alice")
    assert json.loads(bus.hashes[BANS]["192.0.2.0/24"]) == {
        "what": "192.0.2.0/24",
        "by": "alice",
        "reason": "spam",
        "until": 1060.0,
        "at": 1000.0,
    }
    assert set(bus.hashes[MUTES]) == {"carol"}
    moderation.unban("192.0.2.0/24", "alice")
    moderation.unmute("Carol", "alice")
    assert bus.hashes == {BANS: {}, MUTES: {}}
    sharing.stopService()


def test_others_bans_are_applied_once() -> None:
    """Every second the node reads the bus: a ban another node made is held
    here, and whoever it matches removed, once; a mute too."""
    sharing, bus, moderation, clock, enforced = shared()
    bus.hashes[BANS]["bob"] = json.dumps({"what": "bob", "by": "dave"})
    bus.hashes[MUTES]["carol"] = json.dumps({"name": "carol", "by": "dave"})
    with capturedLogs() as logs:
        clock.advance(1)
    assert "Read 1 ban and 1 mute from the bus" in logs.texts()
    assert enforced == [Ban("bob", "dave")]
    assert moderation.accountBan("BOB") == Ban("bob", "dave")
    assert moderation.muted("carol") is not None
    clock.advance(1)
    assert enforced == [Ban("bob", "dave")]
    del bus.hashes[BANS]["bob"]
    clock.advance(1)
    assert moderation.accountBan("bob") is None
    sharing.stopService()


def test_changes_wait_for_the_bus() -> None:
    """A change made while the bus is away is kept here, and written once
    the bus is back, before the node reads the bus again."""
    sharing, bus, moderation, clock, _ = shared()
    bus.connected = False
    moderation.ban("bob", "alice")
    clock.advance(1)
    assert moderation.accountBan("bob") is not None
    assert bus.hashes[BANS] == {}
    bus.connected = True
    clock.advance(1)
    assert set(bus.hashes[BANS]) == {"bob"}
    assert moderation.accountBan("bob") is not None
    sharing.stopService()


def test_expired_and_bad_entries() -> None:
    """Entries whose time is over are deleted from the bus; one that makes
    no sense is skipped, in one line of log."""
    sharing, bus, moderation, clock, enforced = shared()
    moderation.ban("bob", "alice", 10)
    bus.hashes[BANS]["junk"] = "not json"
    bus.hashes[MUTES]["x"] = json.dumps({"name": "x", "nope": 1})
    with capturedLogs() as logs:
        clock.advance(1)
    skipped = [text for text in logs.texts() if "makes no sense" in text]
    assert len(skipped) == 2
    clock.advance(10)
    assert "bob" not in bus.hashes[BANS]
    assert enforced == []
    sharing.stopService()


def test_entries_of_the_wrong_type_are_skipped() -> None:
    """An entry the bus holds whose fields have the wrong type (written by
    another program, or by hand) is skipped in one line of log, and the
    node goes on reading: no traceback each second, and every other ban
    and mute still holds."""
    sharing, bus, moderation, clock, _ = shared()
    moderation.ban("bob", "alice")
    bus.hashes[BANS]["five"] = json.dumps({"what": 5, "by": "alice"})
    bus.hashes[BANS]["soon"] = json.dumps(
        {"what": "192.0.2.7", "by": "alice", "until": "soon"}
    )
    bus.hashes[MUTES]["x"] = json.dumps({"name": "x", "by": "a", "until": 1e300})
    with capturedLogs() as logs:
        clock.advance(1)
        clock.advance(1)
    skipped = [text for text in logs.texts() if "makes no sense" in text]
    assert len(skipped) == 3
    assert not [text for text in logs.texts() if "Traceback" in text]
    assert moderation.accountBan("bob") is not None
    assert moderation.hostBan("192.0.2.7") is None
    assert moderation.muted("x") is None
    sharing.stopService()


def test_entries_read_again_unchanged_are_not_parsed_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The bans and mutes the bus holds are read every second: those
    unchanged since the last reading are not parsed again (with 10,000
    bans, parsing them all took a quarter of each second on every node),
    and one that makes no sense is logged when first seen, not each
    second; a changed entry is parsed."""
    sharing, bus, moderation, clock, _ = shared()
    for i in range(100):
        moderation.ban(f"10.0.0.{i}", "alice")
    bus.hashes[BANS]["junk"] = "not json"
    clock.advance(1)
    parsed: list[str] = []
    real = json.loads

    def counting(text: str) -> Any:
        parsed.append(text)
        return real(text)

    monkeypatch.setattr(json, "loads", counting)
    with capturedLogs() as logs:
        clock.advance(1)
    assert parsed == []
    assert not [text for text in logs.texts() if "makes no sense" in text]
    assert moderation.hostBan("10.0.0.7") is not None
    bus.hashes[BANS]["10.0.0.7/32"] = json.dumps(
        {"what": "10.0.0.7/32", "by": "dave", "until": 500.0}
    )
    clock.advance(1)
    assert len(parsed) == 1
    assert moderation.hostBan("10.0.0.7") is None
    sharing.stopService()


def test_a_reading_older_than_a_change_is_not_applied() -> None:
    """What the bus said before a change made here lacks it: it is not
    applied (the next reading is)."""
    sharing, bus, moderation, clock, _ = shared()
    bus.held = []
    clock.advance(1)
    assert len(bus.held) == 2
    moderation.ban("bob", "alice")
    for answer, reply in bus.held:
        answer.callback(reply)
    assert moderation.accountBan("bob") is not None
    bus.held = None
    clock.advance(1)
    assert moderation.accountBan("bob") is not None
    sharing.stopService()


def test_a_kick_reaches_every_other_node_once() -> None:
    """A kick made on one node is applied by each other node that reads it,
    once, within its life; the node that made it does not apply it again;
    a kick past its life, or one that makes no sense, is deleted."""
    from sockserve.bus.moderation import KICKS
    from sockserve.chat.moderation import KICK_LIFE, Kick

    clock = Clock()
    clock.advance(1000)
    bus = FakeBus()
    bus.hashes[KICKS] = {}
    applied: dict[str, list[Kick]] = {"a": [], "b": []}
    nodes = {}
    for name in ("a", "b"):
        moderation = Moderation(clock)
        nodes[name] = (
            SharedModeration(
                bus,  # type: ignore[arg-type]
                moderation,
                clock,
                lambda ban: None,
                kicked=applied[name].append,
            ),
            moderation,
        )
        nodes[name][0].startService()
    kick = nodes["a"][1].kickElsewhere("bob", "alice", "spam")
    assert kick is not None
    assert list(bus.hashes[KICKS]) == [kick.id]
    clock.advance(1)
    clock.advance(1)
    assert applied == {"a": [], "b": [kick]}
    bus.hashes[KICKS]["junk"] = "not json"
    late = Kick("old", "carol", "alice", "", clock.seconds() - KICK_LIFE - 1)
    bus.hashes[KICKS]["old"] = json.dumps(late.__dict__)
    clock.advance(1)
    assert applied == {"a": [], "b": [kick]}
    assert "junk" not in bus.hashes[KICKS]
    assert "old" not in bus.hashes[KICKS]
    clock.advance(KICK_LIFE + 1)
    assert bus.hashes[KICKS] == {}
    for sharing, _ in nodes.values():
        sharing.stopService()


def test_without_other_nodes_no_kick_is_asked() -> None:
    """Without a bus, a kick is this node's alone: nobody else is asked."""
    assert Moderation(Clock()).kickElsewhere("bob", "alice", "") is None

"""
Bans and mutes as bookkeeping (L{sockserve.chat.moderation}): what they
match, when they end (on a Clock), the file that keeps them, and the audit
events and counts of each action.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from twisted.internet.task import Clock

from sockserve.chat.moderation import (
    Moderation,
    ModerationError,
    parseDuration,
    parseNetwork,
    showLeft,
    showUntil,
)
from tests.support import capturedLogs


def test_durations() -> None:
    """Durations are written 30s, 10m, 2h, 7d; anything else is none."""
    assert parseDuration("30s") == 30
    assert parseDuration("10m") == 600
    assert parseDuration("2h") == 7200
    assert parseDuration("7D") == 7 * 86400
    for wrong in ("", "0s", "10", "m", "1.5h", "-3m", "10 m", "spam"):
        assert parseDuration(wrong) is None, wrong


def test_networks() -> None:
    """An address is a network of one; host bits of a network are ignored."""
    assert str(parseNetwork("192.0.2.7")) == "192.0.2.7/32"
    assert str(parseNetwork("10.1.2.3/8")) == "10.0.0.0/8"
    assert str(parseNetwork("2001:db8::1/32")) == "2001:db8::/32"
    assert parseNetwork("alice") is None
    assert parseNetwork("300.1.1.1") is None


def test_times_shown() -> None:
    """Until when, and how long is left, as people read them."""
    assert showUntil(None) == "until lifted"
    assert showUntil(3600.0) == "until 1970-01-01 01:00:00 UTC"
    assert showLeft(None, 0) == "until lifted"
    assert showLeft(3905.0, 0) == "1h 5m left"
    assert showLeft(42.0, 0) == "42s left"
    assert showLeft(86400 * 2 + 60, 0) == "2d 1m left"


def test_a_ban_matches_its_network_and_ends() -> None:
    """An address ban matches the address (and its IPv4-mapped IPv6 form),
    a network ban the addresses in it, and neither after its time."""
    clock = Clock()
    bans = Moderation(clock)
    one = bans.ban("192.0.2.7", "alice", 30)
    net = bans.ban("2001:db8::/32", "alice", None, "spam")
    assert bans.hostBan("192.0.2.7") is one
    assert bans.hostBan("::ffff:192.0.2.7") is one
    assert bans.hostBan("192.0.2.8") is None
    assert bans.hostBan("2001:db8:1::5") is net
    assert bans.hostBan(None) is None
    assert bans.connectRefusal("192.0.2.7") == (
        "connections from 192.0.2.7/32 are banned until 1970-01-01 00:00:30 UTC"
    )
    clock.advance(30)
    assert bans.hostBan("192.0.2.7") is None
    assert bans.connectRefusal("192.0.2.7") is None
    assert [ban.what for ban in bans.bans()] == ["2001:db8::/32"]


def test_an_account_ban_refuses_logins_until_it_ends() -> None:
    """A banned account's login is refused saying until when, by any
    spelling of its name that counts as the same; /unban lifts it."""
    clock = Clock()
    bans = Moderation(clock)
    bans.ban("Bob", "alice", 600)
    assert bans.loginRefusal("bob", "127.0.0.1") == (
        "the account Bob is banned until 1970-01-01 00:10:00 UTC"
    )
    assert bans.loginRefusal("alice", "127.0.0.1") is None
    clock.advance(599)
    assert bans.accountBan("BOB") is not None
    assert bans.unban("bob", "alice") is not None
    assert bans.accountBan("bob") is None
    assert bans.unban("bob", "alice") is None


def test_a_mute_ends() -> None:
    """A mute holds for any of the names given, until its time is over."""
    clock = Clock()
    bans = Moderation(clock)
    bans.mute("carol", "alice", 10)
    assert bans.muted("guest3", "Carol") is not None
    assert bans.muted("dave") is None
    clock.advance(10)
    assert bans.muted("carol") is None
    assert bans.mutes() == []
    bans.mute("dave", "alice")
    assert bans.unmute("DAVE", "alice") is not None
    assert bans.muted("dave") is None


def test_the_file_keeps_them(tmp_path: Path) -> None:
    """With a file, every change is written (mode 0600), and a new
    Moderation reads it back; those whose time is over no longer count."""
    path = tmp_path / "bans"
    clock = Clock()
    clock.advance(1000)
    bans = Moderation(clock, path)
    bans.load()
    bans.ban("10.0.0.0/8", "alice", None, "lab only")
    bans.ban("bob", "alice", 60)
    bans.mute("carol", "alice", 120)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    later = Clock()
    later.advance(1100)
    again = Moderation(later, path)
    again.load()
    assert [ban.what for ban in again.bans()] == ["10.0.0.0/8"]
    assert again.hostBan("10.9.9.9") is not None
    assert again.muted("carol") is not None
    assert [tmp.name for tmp in tmp_path.iterdir()] == ["bans"]


def test_a_bad_file_says_what_is_wrong(tmp_path: Path) -> None:
    """A bans file that is not one is refused in one line."""
    path = tmp_path / "bans"
    path.write_text("not json")
    with pytest.raises(ModerationError, match="cannot read the bans file"):
        Moderation(Clock(), path).load()
    path.write_text(json.dumps({"bans": [{"nope": 1}]}))
    with pytest.raises(ModerationError):
        Moderation(Clock(), path).load()


def test_each_action_is_audited_and_counted() -> None:
    """Kick, ban, unban, mute and unmute are logged with who, whom, what,
    until and reason as fields, and counted by action."""
    bans = Moderation(Clock())
    with capturedLogs() as logs:
        bans.kicked("alice", "bob", "rude")
        bans.ban("bob", "alice", 60, "rude again")
        bans.unban("bob", "alice")
        bans.mute("carol", "alice")
        bans.unmute("carol", "alice")
    audits = [event for event in logs.events if event.get("audit")]
    assert [(e["who"], e["what"], e["whom"]) for e in audits] == [
        ("alice", "kick", "bob"),
        ("alice", "ban", "bob"),
        ("alice", "unban", "bob"),
        ("alice", "mute", "carol"),
        ("alice", "unmute", "carol"),
    ]
    assert audits[1]["until"] == "1970-01-01T00:01:00+00:00"
    assert audits[1]["reason"] == "rude again"
    assert audits[3]["until"] is None
    assert dict(bans.counts) == {
        "kick": 1,
        "ban": 1,
        "unban": 1,
        "mute": 1,
        "unmute": 1,
    }


def test_an_ipv4_mapped_ban_is_the_ipv4_address() -> None:
    """A ban of an IPv4-mapped IPv6 address or network (C{::ffff:192.0.2.7},
    as C{ss -t} shows a dual-stack socket's peers) bans that IPv4 address
    or network, however the client connects; /unban lifts it either way."""
    bans = Moderation(Clock())
    one = bans.ban("::ffff:192.0.2.7", "alice")
    assert one.what == "192.0.2.7/32"
    assert bans.hostBan("192.0.2.7") is one
    assert bans.hostBan("::ffff:192.0.2.7") is one
    net = bans.ban("::ffff:10.0.0.0/104", "alice")
    assert net.what == "10.0.0.0/8"
    assert bans.hostBan("10.1.2.3") is net
    assert bans.unban("::ffff:192.0.2.7", "alice") is one
    assert bans.hostBan("192.0.2.7") is None
    assert str(parseNetwork("::ffff:0:0/95")) == "::fffe:0:0/95"


@pytest.mark.parametrize(
    "entry",
    [
        {"bans": [{"what": 5, "by": "alice"}]},
        {"bans": [{"what": "192.0.2.7", "by": "alice", "until": "soon"}]},
        {"bans": [{"what": "192.0.2.7", "by": "alice", "until": 1e300}]},
        {"bans": [{"what": "192.0.2.7", "by": ["alice"]}]},
        {"bans": [{"what": "192.0.2.7", "by": "alice", "reason": None}]},
        {"mutes": [{"name": "bob", "by": "alice", "until": True}]},
        {"mutes": [{"name": None, "by": "alice"}]},
        {"bans": {"what": "192.0.2.7"}},
    ],
)
def test_a_bans_file_of_the_wrong_shape_is_refused_at_once(
    tmp_path: Path, entry: object
) -> None:
    """A bans file that is JSON but holds a field of the wrong type is
    refused in one line when it is read, not later by a traceback when a
    client connects or an operator lists the bans."""
    path = tmp_path / "bans"
    path.write_text(json.dumps(entry))
    with pytest.raises(ModerationError, match="cannot read the bans file"):
        Moderation(Clock(), path).load()


def test_a_connection_is_checked_without_going_through_every_ban(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Checking a connection's address against many bans (a botnet's
    addresses) looks up each prefix length banned, not every ban: with
    1,000 bans, 1,000 connections parse no ban again (it used to parse each
    ban for each connection: 150 ms a connection with 10,000 bans, the
    room stalled by a connection flood from anywhere)."""
    import sockserve.chat.moderation as module

    bans = Moderation(Clock())
    for i in range(1000):
        bans.ban(f"10.{i // 256}.{i % 256}.1", "alice")
    wide = bans.ban("192.0.2.0/24", "alice", 60)
    assert bans.hostBan("10.0.7.1") is not None
    parsed = []
    real = module.parseNetwork

    def counting(text: str) -> object:
        parsed.append(text)
        return real(text)

    monkeypatch.setattr(module, "parseNetwork", counting)
    for i in range(1000):
        assert bans.hostBan(f"172.16.{i // 256}.{i % 256}") is None
    assert bans.hostBan("::ffff:192.0.2.9") is wide
    assert bans.hostBan("10.3.231.1") is not None
    assert len(parsed) < 10


def test_the_same_bans_read_again_keep_their_index() -> None:
    """The bans a bus hands back each second, unchanged, do not cost the
    index of networks again (a parse of every ban each second); a change
    does."""
    bans = Moderation(Clock())
    held = [bans.ban(f"10.0.0.{i}", "alice") for i in range(1, 4)]
    assert bans.hostBan("10.0.0.1") is held[0]
    index = bans._networkIndex()
    bans.replace(list(held), [])
    assert bans._networkIndex() is index
    bans.replace(held[:2], [])
    assert bans._networkIndex() is not index
    assert bans.hostBan("10.0.0.3") is None

"""
What operators decide about others: bans (of an account, or of an address
or a network) and mutes (of a name), each for a while or until lifted.

L{Moderation} holds them, on an C{IReactorTime} clock: one whose time is
over no longer counts, and is forgotten when next looked at. It is pure
bookkeeping: who is removed, and how each front end says so, is the
session's (L{sockserve.chat.session.ChatSession}) and the connection
guard's. Given a file (C{--bans}), it is read at start and written after
each change (atomically, mode 0600), so that bans and mutes outlive a
restart; each change is logged as an audit event (fields C{who}, C{whom},
C{what}, C{until}, C{reason}) and counted (L{Moderation.counts}), and told
to L{Moderation.changed} (with a bus, L{sockserve.bus.moderation} shares
them with every node, and hands back the others' with
L{Moderation.replace}).
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from sockserve._files import writePrivately
from sockserve.chat.names import nameKey

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# What an audit event's "what" may be, and sockserve_moderation_total's
# action label.
ACTIONS = ("kick", "ban", "unban", "mute", "unmute")

_DURATION = re.compile(r"0*([1-9][0-9]{0,14})([smhd])\Z")
# What an operator meant as a duration, written right or not (10, 1.5h,
# -5m, 0s, 1w): a number first.
_LIKE_A_DURATION = re.compile(r"[-+]?[0-9.]")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# The longest a ban or a mute may be written for (the rest is "until lifted").
MAX_DURATION = 3650 * 86400
# IPv4-mapped IPv6 addresses.
_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")


class Banned(Exception):
    """
    A client from a banned address asked to arrive (it connected before the
    ban): the message says so, to the client.
    """


class ModerationError(ValueError):
    """
    A bans file that cannot be read, or a duration that means nothing: the
    message says what is wrong.
    """


def parseDuration(text: str) -> float | None:
    """
    Read a duration written C{30s}, C{10m}, C{2h} or C{7d}.

    @return: its seconds, or C{None} if C{text} is not one.
    """
    found = _DURATION.match(text.strip().lower())
    if found is None:
        return None
    seconds = int(found.group(1)) * _UNITS[found.group(2)]
    return float(min(seconds, MAX_DURATION))


def meantAsDuration(text: str) -> bool:
    """
    Whether C{text} (the word after what C{/ban} bans) was meant as a
    duration, written right or not: it starts with a number (C{10},
    C{1.5h}, C{-5m}, C{0s}, C{1w}). A reason does not.
    """
    return _LIKE_A_DURATION.match(text) is not None


def parseNetwork(text: str) -> Network | None:
    """
    Read an IPv4 or IPv6 address (a network of one) or a CIDR network
    (host bits ignored: C{10.1.2.3/8} is C{10.0.0.0/8}; an IPv4-mapped IPv6
    one, C{::ffff:192.0.2.7}, is the IPv4 one), or return C{None} if C{text}
    is neither.
    """
    try:
        network = ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        return None
    # An IPv4-mapped address (::ffff:192.0.2.7, as a dual-stack socket shows
    # its IPv4 peers) is the IPv4 address: clients are matched as IPv4.
    if isinstance(network, ipaddress.IPv6Network) and network.subnet_of(_MAPPED):
        address = network.network_address.ipv4_mapped
        assert address is not None
        return ipaddress.IPv4Network(f"{address}/{network.prefixlen - 96}")
    return network


def showUntil(until: float | None) -> str:
    """
    When something ends, as people read it: C{until 2026-12-07 21:00 UTC},
    or C{until lifted}.
    """
    if until is None:
        return "until lifted"
    moment = datetime.fromtimestamp(until, timezone.utc)
    return f"until {moment:%Y-%m-%d %H:%M:%S} UTC"


def showLeft(until: float | None, now: float) -> str:
    """
    How long something has left, as C{/bans} shows it: C{1h 5m left}, or
    C{until lifted}.
    """
    if until is None:
        return "until lifted"
    left = max(1, round(until - now))
    parts: list[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if left >= size or (unit == "s" and not parts):
            parts.append(f"{left // size}{unit}")
            left %= size
        if len(parts) == 2:
            break
    return " ".join(parts) + " left"


@dataclass(frozen=True)
class Ban:
    """
    A ban: of an account (C{network} is C{None}), or of connections from an
    address or network.

    @ivar what: the account's name, or the network as written
        (C{192.0.2.0/24}, C{2001:db8::/32}; an address is a network of one).
    @ivar by: who banned it.
    @ivar reason: why (may be empty).
    @ivar until: when it ends (the clock's seconds), or C{None}: until lifted.
    @ivar at: when it was made (the clock's seconds), if known.
    """

    what: str
    by: str
    reason: str = ""
    until: float | None = None
    at: float | None = None

    @cached_property
    def network(self) -> Network | None:
        """
        The network banned, or C{None} for an account (read once).
        """
        return parseNetwork(self.what) if "." in self.what or ":" in self.what else None

    @property
    def key(self) -> str:
        """
        What identifies it: the network as written, or the account's
        L{nameKey}.
        """
        return self.what if self.network is not None else nameKey(self.what)

    def matchesHost(self, host: str | None) -> bool:
        """
        Whether it bans connections from C{host} (C{None}: a UNIX socket's
        client, never banned by address).
        """
        network = self.network
        if network is None or host is None:
            return False
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        return address.version == network.version and address in network


@dataclass(frozen=True)
class Mute:
    """
    A mute: the person called C{name} may say nothing.

    @ivar name: the name muted.
    @ivar by: who muted it.
    @ivar until: when it ends (the clock's seconds), or C{None}: until lifted.
    """

    name: str
    by: str
    until: float | None = None


@dataclass(frozen=True)
class Kick:
    """
    A kick for every server of a bus: whoever is called C{name} (or is
    logged in to the account C{name}) on another node is removed too.

    @ivar id: what tells this kick from any other (each node applies it
        once).
    @ivar name: the name, or account, kicked.
    @ivar by: the operator who kicked (its name).
    @ivar reason: why (safe text), or empty.
    @ivar at: when (the clock's seconds): nodes apply it for L{KICK_LIFE}
        seconds from then.
    """

    id: str
    name: str
    by: str
    reason: str
    at: float


KICK_LIFE = 30.0
"""Seconds a kick waits for the other nodes to apply it (a node away from
the bus longer than that has lost its members anyway)."""


class Moderation:
    """
    The bans and mutes of one server, on a clock.

    @ivar clock: what tells the time (the reactor; a C{Clock} in tests).
    @ivar path: where they are kept (C{--bans}), or C{None}: in memory.
    @ivar counts: the actions taken so far, by action (see L{ACTIONS}).
    @ivar changed: called after each change made here, with what changed
        (C{"ban"} or C{"mute"}), its key, and the ban or mute, or C{None}
        once lifted (a bus shares them with the other nodes).
    @ivar kicks: called with each kick made here for the other nodes (a
        bus hands it to them); empty without a bus.
    """

    log = Logger()

    def __init__(self, clock: IReactorTime, path: Path | None = None) -> None:
        self.clock = clock
        self.path = path
        self.counts: Counter[str] = Counter()
        self.changed: list[Callable[[str, str, Ban | Mute | None], None]] = []
        self.kicks: list[Callable[[Kick], None]] = []
        self._bans: dict[str, Ban] = {}
        # The bans of networks, by IP version and prefix length, then by
        # network (made again after a change): what a connection is looked
        # up in, a lookup per prefix length rather than a test per ban.
        self._networks: dict[tuple[int, int], dict[Network, Ban]] | None = None
        self._mutes: dict[str, Mute] = {}

    # Reading and writing the file

    def load(self) -> None:
        """
        Read the bans file, if there is one (a file that does not exist yet
        is empty); those whose time is over are forgotten when next looked
        at.

        @raise ModerationError: the file cannot be read or makes no sense.
        """
        if self.path is None:
            return
        bans, mutes = readBans(self.path)
        self._bans = {ban.key: ban for ban in bans}
        self._networks = None
        self._mutes = {nameKey(mute.name): mute for mute in mutes}

    def _save(self) -> None:
        """
        Write the bans and mutes to the file, at once (a temporary file
        beside it, mode 0600, renamed over it); a failure is logged, and
        the change holds in memory.
        """
        if self.path is None:
            return
        data: dict[str, Any] = {
            "bans": [asdict(ban) for ban in self.bans()],
            "mutes": [asdict(mute) for mute in self.mutes()],
        }
        try:
            writePrivately(self.path, json.dumps(data, indent=1) + "\n")
        except OSError as error:
            self.log.error(
                "Could not write the bans file {path}: {error}",
                path=str(self.path),
                error=str(error),
            )

    def _changed(self, kind: str, key: str, entry: Ban | Mute | None) -> None:
        """
        Keep the change made here (in the file), and tell L{changed}.
        """
        self._save()
        for call in self.changed:
            call(kind, key, entry)

    def replace(self, bans: list[Ban], mutes: list[Mute]) -> list[Ban]:
        """
        Hold C{bans} and C{mutes} instead of those held (what the bus holds:
        others' changes included), and keep them in the file.

        @return: the bans in force that were not held before (whoever they
            match is to be removed).
        """
        now = self.clock.seconds()
        new = [
            ban
            for ban in bans
            if self._current(ban.until, now) and self._bans.get(ban.key) != ban
        ]
        before = (self._bans, self._mutes)
        self._bans = {ban.key: ban for ban in bans}
        if self._bans != before[0]:
            # The same bans read again (each second, with a bus) keep the
            # index of networks.
            self._networks = None
        self._mutes = {nameKey(mute.name): mute for mute in mutes}
        if (self._bans, self._mutes) != before:
            self._save()
        return new

    # Bans

    @staticmethod
    def _current(until: float | None, now: float) -> bool:
        return until is None or until > now

    def _until(self, seconds: float | None) -> float | None:
        return None if seconds is None else self.clock.seconds() + seconds

    def ban(
        self, what: str, by: str, seconds: float | None = None, reason: str = ""
    ) -> Ban:
        """
        Ban C{what} (an account's name, or a network: see L{parseNetwork})
        for C{seconds}, or until lifted, on C{by}'s word; a ban of the same
        replaces it.
        """
        network = parseNetwork(what)
        shown = what if network is None else str(network)
        ban = Ban(shown, by, reason, self._until(seconds), self.clock.seconds())
        self._bans[ban.key] = ban
        self._networks = None
        self._audit("ban", by, shown, ban.until, reason)
        self._changed("ban", ban.key, ban)
        return ban

    def unban(self, what: str, by: str) -> Ban | None:
        """
        Lift the ban of C{what}, if there is one, on C{by}'s word.
        """
        network = parseNetwork(what)
        key = nameKey(what) if network is None else str(network)
        ban = self._bans.pop(key, None)
        self._networks = None
        if ban is None or not self._current(ban.until, self.clock.seconds()):
            return None
        self._audit("unban", by, ban.what, None, "")
        self._changed("ban", key, None)
        return ban

    def bans(self) -> list[Ban]:
        """
        The bans in force, those of accounts first, each sorted.
        """
        self._expire()
        return sorted(
            self._bans.values(), key=lambda ban: (ban.network is not None, ban.key)
        )

    def _expire(self) -> None:
        now = self.clock.seconds()
        for key, ban in list(self._bans.items()):
            if not self._current(ban.until, now):
                del self._bans[key]
                self._networks = None
        for key, mute in list(self._mutes.items()):
            if not self._current(mute.until, now):
                del self._mutes[key]

    def accountBan(self, name: str) -> Ban | None:
        """
        The ban of the account C{name}, if it is banned now.
        """
        ban = self._bans.get(nameKey(name))
        if ban is None or ban.network is not None:
            return None
        return ban if self._current(ban.until, self.clock.seconds()) else None

    def hostBan(self, host: str | None) -> Ban | None:
        """
        The ban of the address C{host} (or of a network holding it), if
        there is one now; C{None} for a UNIX socket's client (no address).
        """
        if host is None or not self._bans:
            return None
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return None
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        now = self.clock.seconds()
        for (version, length), bans in self._networkIndex().items():
            if version != address.version:
                continue
            ban = bans.get(ipaddress.ip_network((address, length), strict=False))
            if ban is not None and self._current(ban.until, now):
                return ban
        return None

    def _networkIndex(self) -> dict[tuple[int, int], dict[Network, Ban]]:
        """
        The bans of networks, by IP version and prefix length, then by
        network.
        """
        if self._networks is None:
            index: dict[tuple[int, int], dict[Network, Ban]] = {}
            for ban in self._bans.values():
                network = ban.network
                if network is not None:
                    key = (network.version, network.prefixlen)
                    index.setdefault(key, {})[network] = ban
            self._networks = index
        return self._networks

    def loginRefusal(self, account: str, host: str | None) -> str | None:
        """
        Why a login to C{account} from C{host} is refused (either is
        banned), or C{None}: it is not.
        """
        ban = self.accountBan(account)
        if ban is not None:
            return f"the account {ban.what} is banned {showUntil(ban.until)}"
        return self.connectRefusal(host)

    def connectRefusal(self, host: str | None) -> str | None:
        """
        Why a connection from C{host} is refused (it is banned), or
        C{None}: it is not.
        """
        ban = self.hostBan(host)
        if ban is None:
            return None
        return f"connections from {ban.what} are banned {showUntil(ban.until)}"

    # Mutes

    def mute(self, name: str, by: str, seconds: float | None = None) -> Mute:
        """
        Mute whoever is called C{name} (see L{nameKey}) for C{seconds}, or
        until lifted, on C{by}'s word.
        """
        mute = Mute(name, by, self._until(seconds))
        self._mutes[nameKey(name)] = mute
        self._audit("mute", by, name, mute.until, "")
        self._changed("mute", nameKey(name), mute)
        return mute

    def unmute(self, name: str, by: str) -> Mute | None:
        """
        Lift the mute of C{name}, if there is one, on C{by}'s word.
        """
        mute = self._mutes.pop(nameKey(name), None)
        if mute is None or not self._current(mute.until, self.clock.seconds()):
            return None
        self._audit("unmute", by, mute.name, None, "")
        self._changed("mute", nameKey(mute.name), None)
        return mute

    def muted(self, *names: str) -> Mute | None:
        """
        The mute of any of C{names} (a person's name, its account's), if
        one is muted now.
        """
        if not self._mutes:
            return None
        now = self.clock.seconds()
        for name in names:
            mute = self._mutes.get(nameKey(name))
            if mute is not None and self._current(mute.until, now):
                return mute
        return None

    def mutes(self) -> list[Mute]:
        """
        The mutes in force, sorted by name.
        """
        self._expire()
        return sorted(self._mutes.values(), key=lambda mute: nameKey(mute.name))

    # Audit

    def kicked(self, by: str, whom: str, reason: str) -> None:
        """
        C{by} kicked C{whom} (saying C{reason}): logged and counted like the
        rest.
        """
        self._audit("kick", by, whom, None, reason)

    def kickElsewhere(self, name: str, by: str, reason: str) -> Kick | None:
        """
        Ask every other node to remove whoever it has called C{name} (or
        logged in to the account C{name}), as C{by} kicked them here.

        @return: the kick, or C{None} if there are no other nodes to ask.
        """
        if not self.kicks:
            return None
        kick = Kick(uuid.uuid4().hex, name, by, reason, self.clock.seconds())
        for call in self.kicks:
            call(kick)
        return kick

    def _audit(
        self, what: str, who: str, whom: str, until: float | None, reason: str
    ) -> None:
        """
        Log an operator's action as an audit event (its fields are in the
        JSON log) and count it.
        """
        self.counts[what] += 1
        self.log.info(
            "Operator {who}: {what} {whom} ({shownUntil}){why}",
            audit=True,
            who=who,
            what=what,
            whom=whom,
            until=None
            if until is None
            else datetime.fromtimestamp(until, timezone.utc).isoformat(),
            shownUntil=showUntil(until) if what in ("ban", "mute") else "now",
            reason=reason,
            why=f": {reason}" if reason else "",
        )


def readBans(path: Path) -> tuple[list[Ban], list[Mute]]:
    """
    Read the bans and mutes the file C{path} holds (none, if it does not
    exist yet).

    @raise ModerationError: the file cannot be read or makes no sense.
    """
    if not path.exists():
        return [], []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        bans = [checked(Ban(**entry)) for entry in data.get("bans", [])]
        mutes = [checked(Mute(**entry)) for entry in data.get("mutes", [])]
    except (OSError, ValueError, TypeError, AttributeError) as error:
        raise ModerationError(f"cannot read the bans file {path}: {error}") from None
    return bans, mutes


_Entry = TypeVar("_Entry", "Ban", "Mute")
# The latest moment a file may name (datetime's year 9999).
_LATEST = 253402300799.0


def checked(entry: _Entry) -> _Entry:
    """
    C{entry}, read from a file or the bus, if each field has its type
    (text, and a time that is a number a date can show, or C{None}).

    @raise ValueError: a field does not.
    """
    for field, value in vars(entry).items():
        if field in ("until", "at"):
            if value is None:
                continue
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not 0 <= value <= _LATEST
            ):
                raise ValueError(f"{field} is {value!r}, not a time")
        elif not isinstance(value, str):
            raise ValueError(f"{field} is {value!r}, not text")
    return entry


def checkBansFile(path: Path) -> None:
    """
    Check that the bans file C{path} can be read (see L{readBans}) and
    written: a file beside it can be made (each change is written so).

    @raise ModerationError: it cannot, saying why.
    """
    readBans(path)
    where = path.parent
    if not where.is_dir():
        raise ModerationError(
            f"cannot write the bans file {path}: the directory {where} does not exist"
        )
    if not os.access(where, os.W_OK | os.X_OK):
        raise ModerationError(
            f"cannot write the bans file {path}: the directory {where} is not "
            "writable (each change is written to a file beside it, then renamed)"
        )

"""
The twistd plugin's options and service: C{twistd -n sockserve --port 5000}.
"""

from __future__ import annotations

import ipaddress
import os
import re
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, NoReturn

from twisted.application.service import IService, MultiService
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IReactorCore, IStreamServerEndpoint
from twisted.python import usage

from sockserve._endpoints import (
    bindProblem,
    describeListener,
    passedSockets,
    systemdProblem,
)
from sockserve._proxy import ProxyProtocolEndpoint
from sockserve._reactor import installDefault as installDefaultReactor
from sockserve._rlimits import raiseOpenFileLimit
from sockserve._usage import CommandOptions
from sockserve._version import __version__
from sockserve._workers import WORKER_MODES, ReusePortTCPEndpoint, WorkerPoolService
from sockserve.accounts.cred import HashingPool, accountPortal
from sockserve.accounts.logins import LOGIN_DEADLINE, LoginRules, Logins
from sockserve.accounts.store import AccountsError, AccountStore
from sockserve.bus.address import parseBusAddress
from sockserve.bus.moderation import SharedModeration
from sockserve.bus.node import OUTBOX_LIMIT, busChat
from sockserve.bus.redis import RedisBus
from sockserve.chat.moderation import Moderation, ModerationError, checkBansFile
from sockserve.chat.names import roomKey, roomName
from sockserve.chat.protocol import DEFAULT_BANNER
from sockserve.chat.service import DEFAULT_MAX_ROOMS, DEFAULT_ROOM, ChatService
from sockserve.chat.session import expelBanned, expelKicked
from sockserve.factories import MODES, buildFactory, roomRules
from sockserve.irc import ircFactory
from sockserve.irc.websocket import SUBPROTOCOLS, IRCWebSocketFactory
from sockserve.limits import Limits
from sockserve.logs import noteTwistdLogging
from sockserve.metrics import METRICS_CONNECTIONS, StatisticsCollector, metricsSite
from sockserve.service import (
    BusStartup,
    DaemonReport,
    LineServerService,
    Listener,
    StartupAbort,
)
from sockserve.web import chatWebSite
from sockserve.web.sessions import SESSION_LIFETIME
from sockserve.web.site import OriginPolicy, checkHostName, checkOrigin

DEFAULT_PORT = "5000"
# The environment variable that may hold the bus's password.
PASSWORD_VARIABLE = "SOCKSERVE_BUS_PASSWORD"
DEFAULT_INTERFACE = "127.0.0.1"
DEFAULT_BACKLOG = 1024
MAX_WORKERS = 64
# haproxy: descriptions are served by sockserve's own PROXY protocol wrapper,
# which waits for the header before the server sees the connection.
PROXY_PREFIX = "haproxy:"
# Descriptors kept free below the open-file limit when --max-connections is
# not given: for listening sockets, log files, workers' pipes, the one
# Twisted keeps to refuse a connection when it runs out, and the --metrics
# listener's connections (METRICS_CONNECTIONS, a sixth of it).
RESERVED_FILES = 100
_DEFAULTS = Limits()


_DIGITS = re.compile(r"[0-9]+")
_DECIMAL = re.compile(r"[0-9]+(\.[0-9]*)?|\.[0-9]+")


def _count(
    option: str, minimum: int, maximum: int | None = None
) -> Callable[[str], int]:
    """
    Return a coerce function for an integer option of at least C{minimum}
    (and at most C{maximum}).
    """
    bounds = f"of at least {minimum}"
    if maximum is not None:
        bounds = f"from {minimum} to {maximum}"

    def coerce(value: str) -> int:
        # ASCII digits only: int() also takes " 12 ", "1_000" and "١٢".
        number = int(value) if _DIGITS.fullmatch(value) else minimum - 1
        if number < minimum or (maximum is not None and number > maximum):
            raise ValueError(f"--{option} must be an integer {bounds}, not {value!r}")
        return number

    coerce.coerceDoc = f"An integer {bounds}."  # type: ignore[attr-defined]
    return coerce


def _seconds(option: str) -> Callable[[str], float]:
    """
    Return a coerce function for an option giving seconds, 0 or more.
    """

    def coerce(value: str) -> float:
        # A plain decimal number: float() also takes "inf", "1e3", " 1 ".
        seconds = float(value) if _DECIMAL.fullmatch(value) else -1.0
        if seconds < 0:
            raise ValueError(f"--{option} must be a number of seconds, not {value!r}")
        return seconds

    coerce.coerceDoc = "Seconds, 0 or more."  # type: ignore[attr-defined]
    return coerce


_IRC_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9.\-]{0,62}\Z")


def _ircName(value: str) -> str:
    """
    The name IRC clients see (C{--irc-network}): letters, digits, C{.} and
    C{-}, as a host name is.
    """
    if not _IRC_NAME.match(value):
        raise ValueError(
            f"--irc-network is 1 to 63 letters, digits, . and -, not {value!r}"
        )
    return value


_ircName.coerceDoc = "A host-like name."  # type: ignore[attr-defined]


# The groups of --help, in order: each a title, its options in the order
# shown, and a prefix that claims the options named so. Each option is
# defined where it is (optParameters, optFlags, an opt_ method); an option in
# no group is shown under "Other", which a test forbids.
HELP_GROUPS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    (
        "Listening",
        ("port", "mode", "interface", "backlog", "workers", "max-connections"),
        "",
    ),
    (
        "Chat",
        (
            "banner",
            "room",
            "rooms",
            "max-rooms",
            "max-clients",
            "history",
            "presence-limit",
        ),
        "",
    ),
    (
        "Limits",
        (
            "max-line",
            "max-pending",
            "flood-limit",
            "idle-timeout",
            "request-timeout",
            "max-per-ip",
            "shutdown-grace",
        ),
        "",
    ),
    (
        "Bus",
        (
            "bus",
            "bus-password-file",
            "bus-backlog",
            "bus-replicas",
            "bus-node-timeout",
            "bus-retention",
        ),
        "bus",
    ),
    (
        "Web",
        ("web", "web-origin", "web-host", "web-ping", "web-session-lifetime"),
        "web",
    ),
    ("IRC", (), "irc"),
    (
        "Accounts",
        (
            "accounts",
            "require-login",
            "require-tls-for-login",
            "login-timeout",
            "bans",
        ),
        "",
    ),
    ("Operations", ("metrics", "quiet", "version", "help"), ""),
)


class Options(CommandOptions):
    """
    Command-line options of C{twistd sockserve}.
    """

    helpGroups = HELP_GROUPS
    shownDefaults = {
        "port": DEFAULT_PORT,
        "banner": "a welcome naming sockserve and /help",
        "metrics": "none",
        "bus": "none: the chat is this process's own",
        "rooms": "any a member names with /join, up to --max-rooms",
        "max-connections": "0",
        "web": "none",
        "irc": "none",
        "web-host": "any name, but a loopback listener refuses pages of names "
        "other than localhost and IP addresses",
    }

    synopsis = "[options]"
    longdesc = (
        "Serve the socket tutorial's line protocols: 'chat' relays every line "
        "to all other clients, 'echo' answers every line with 'OK .. <line>', "
        "'oneshot' answers one request and closes. Listens on 127.0.0.1:5000 "
        "unless told otherwise."
    )

    optFlags: list[list[Any]] = [
        [
            "quiet",
            "q",
            "Do not log each connect and disconnect (refusals, limits and "
            "errors are still logged).",
        ],
        [
            "require-login",
            None,
            "chat: no guests: everyone logs in to an account (--accounts) "
            "within --login-timeout seconds of connecting, or is closed.",
        ],
        [
            "require-tls-for-login",
            None,
            "chat: refuse logins over connections that are not TLS (or a "
            "UNIX socket): passwords never cross a network in cleartext.",
        ],
    ]

    optParameters: list[list[Any]] = [
        ["mode", "m", "chat", f"Behaviour: {', '.join(MODES)}."],
        [
            "interface",
            "i",
            DEFAULT_INTERFACE,
            "Address that --port numbers, and descriptions naming no "
            "interface=, listen on (0.0.0.0 or :: for all).",
        ],
        [
            "backlog",
            None,
            DEFAULT_BACKLOG,
            "Listen backlog (the kernel caps it at net.core.somaxconn).",
            _count("backlog", 1),
        ],
        [
            "banner",
            None,
            DEFAULT_BANNER,
            "chat: the welcome banner; \\n (a backslash and n, as a shell "
            "passes it) or a line break separates lines.",
        ],
        [
            "max-clients",
            None,
            _DEFAULTS.maxClients,
            "chat: most clients in one room.",
            _count("max-clients", 1),
        ],
        [
            "max-line",
            None,
            _DEFAULTS.maxLine,
            "Longest line accepted, in bytes.",
            _count("max-line", 2),
        ],
        [
            "max-pending",
            None,
            _DEFAULTS.maxPending,
            "chat: bytes of output queued for "
            "a client that is not reading before it is disconnected.",
            _count("max-pending", 1),
        ],
        [
            "idle-timeout",
            None,
            _DEFAULTS.idleTimeout,
            "Seconds of silence before a client is disconnected (0: never).",
            _seconds("idle-timeout"),
        ],
        [
            "max-per-ip",
            None,
            _DEFAULTS.maxPerIP,
            "Connections allowed from one address at once, an IPv6 /64 "
            "counting as one address (0: unlimited).",
            _count("max-per-ip", 0),
        ],
        [
            "request-timeout",
            None,
            _DEFAULTS.requestTimeout,
            "oneshot: seconds a request may take to arrive (0: no limit).",
            _seconds("request-timeout"),
        ],
        [
            "presence-limit",
            None,
            _DEFAULTS.presenceLimit,
            "chat: announce joins, leaves and renames only while the room has "
            "at most this many clients.",
            _count("presence-limit", 0),
        ],
        [
            "metrics",
            None,
            None,
            "Serve /metrics (Prometheus) and /healthz on this port (on "
            "--interface) or endpoint description, to at most "
            f"{METRICS_CONNECTIONS} connections at once.",
        ],
        [
            "max-connections",
            None,
            0,
            "Connections served at once; beyond it, a client is told the server "
            "is busy (0: the open-file limit less a reserve, so that a refusal "
            "can always be said).",
            _count("max-connections", 0),
        ],
        [
            "flood-limit",
            None,
            _DEFAULTS.floodLimit,
            "chat: bytes of output a second one client's messages may cause "
            "(their size times the members receiving them); beyond it, its "
            "input waits (0: no limit).",
            _count("flood-limit", 0),
        ],
        [
            "workers",
            None,
            1,
            "Processes serving the same ports (SO_REUSEPORT): echo and oneshot, "
            f"and chat with --bus; needs bare --port numbers; at most {MAX_WORKERS}.",
            _count("workers", 1, MAX_WORKERS),
        ],
        [
            "history",
            None,
            0,
            "chat: lines said that a client joining is shown first (0: none).",
            _count("history", 0, 1000),
        ],
        [
            "bus",
            None,
            None,
            "chat: share the rooms and people with every sockserve on this "
            "Redis bus: redis://[USER:PASSWORD@]HOST[:PORT][/DB], rediss://... "
            "or unix:///path/to/redis.sock.",
        ],
        [
            "room",
            None,
            DEFAULT_ROOM,
            "chat: the room everyone is in on arriving (letters, digits, - _ ., "
            "at most 32).",
        ],
        [
            "rooms",
            None,
            None,
            "chat: the only rooms there may be, by commas.",
        ],
        [
            "max-rooms",
            None,
            DEFAULT_MAX_ROOMS,
            "chat: most rooms at once (on every node, with --bus).",
            _count("max-rooms", 1),
        ],
        [
            "bus-password-file",
            None,
            None,
            "chat: read the bus's password from this file (or set "
            "SOCKSERVE_BUS_PASSWORD) rather than put it in --bus.",
        ],
        [
            "bus-backlog",
            None,
            OUTBOX_LIMIT,
            "chat: bytes of lines kept for the bus while it is away, a "
            "quarter of it for one sender; beyond it the oldest are dropped "
            "and their senders told.",
            _count("bus-backlog", 1024),
        ],
        [
            "bus-replicas",
            None,
            None,
            "chat: Redis replicas that must acknowledge a batch of lines "
            "(WAIT) before it leaves the backlog: 1 unless given with a "
            "redis+sentinel:// bus, else 0.",
            _count("bus-replicas", 0),
        ],
        [
            "bus-node-timeout",
            None,
            10.0,
            "chat: seconds after which a server that stopped answering on the "
            "bus counts as gone, and its clients as having left.",
            _seconds("bus-node-timeout"),
        ],
        [
            "bus-retention",
            None,
            10_000,
            "chat: batches of lines the bus keeps, for servers catching up "
            "after losing contact.",
            _count("bus-retention", 100),
        ],
        [
            "web-ping",
            None,
            30.0,
            "chat: seconds of silence after which a WebSocket client is "
            "pinged, and then dropped if no pong comes as long (0: never).",
            _seconds("web-ping"),
        ],
        [
            "web-session-lifetime",
            None,
            int(SESSION_LIFETIME),
            "chat, with --accounts: seconds a login through the page lasts "
            "(its cookie), at most.",
            _count("web-session-lifetime", 1),
        ],
        [
            "irc-ping",
            None,
            120.0,
            "chat: seconds of silence after which an IRC client is pinged, "
            "and then dropped if it sends nothing for as long (0: never).",
            _seconds("irc-ping"),
        ],
        [
            "irc-network",
            None,
            "sockserve",
            "chat: the name IRC clients see: the network's (005 NETWORK), the "
            "server's, and the host everyone is shown at (nick!nick@NAME: "
            "nobody's address is shown).",
            _ircName,
        ],
        [
            "irc-password-file",
            None,
            None,
            "chat: IRC clients must give the password this file holds (PASS) "
            "to connect.",
        ],
        [
            "accounts",
            None,
            None,
            "chat: the accounts file (written by sockserve-passwd): its names "
            "are reserved for those logged in to them; read again on SIGHUP. "
            "Without it, everyone is a guest.",
        ],
        [
            "bans",
            None,
            None,
            "chat, with --accounts: the file that keeps the bans and mutes "
            "operators decide, so that they outlive a restart (made if there is "
            "none). Without it, they last until the server stops.",
        ],
        [
            "login-timeout",
            None,
            LOGIN_DEADLINE,
            "chat: with --require-login, seconds a client has to log in.",
            _seconds("login-timeout"),
        ],
        [
            "shutdown-grace",
            None,
            5.0,
            "Seconds to wait for clients to close at shutdown before they are cut off.",
            _seconds("shutdown-grace"),
        ],
    ]

    def __init__(self) -> None:
        super().__init__()
        self["ports"] = []
        self["web"] = []
        self["irc"] = []
        self["web-origin"] = []
        self["web-host"] = []

    def opt_port(self, value: str) -> None:
        """
        Where to listen: a port number, or a Twisted server endpoint
        description such as tcp6:5000 or unix:/run/sockserve.sock; tcp, tcp6,
        ssl and haproxy descriptions listen on --interface unless they name
        an interface=. May be given several times.
        """
        self["ports"].append(value)

    opt_p = opt_port

    def opt_web(self, value: str) -> None:
        """
        chat: serve the chat page at / and a WebSocket at /ws here: a port
        number (on --interface) or an endpoint description (ssl: for https
        and wss); may be given several times.
        """
        self["web"].append(value)

    def opt_irc(self, value: str) -> None:
        """
        chat: serve IRC clients here, in the same rooms (a channel #lab is
        the room lab): a port number (on --interface) or an endpoint
        description (ssl: for IRC over TLS); may be given several times.
        """
        self["irc"].append(value)

    def opt_web_origin(self, value: str) -> None:
        """
        chat: let pages of this origin (such as https://example.org) open the
        WebSocket, besides the page's own; may be given several times.
        """
        try:
            self["web-origin"].append(checkOrigin(value))
        except ValueError as error:
            raise usage.UsageError(f"--web-origin: {error}") from None

    def opt_web_host(self, value: str) -> None:
        """
        chat: serve the page and the WebSocket only to requests for this host
        name (such as chat.example.org; any port), on every --web listener;
        others get 403. May be given several times.
        """
        try:
            self["web-host"].append(checkHostName(value))
        except ValueError as error:
            raise usage.UsageError(f"--web-host: {error}") from None

    def opt_version(self) -> NoReturn:
        """
        Print the version and exit.
        """
        print(f"sockserve {__version__}")
        sys.exit(0)

    def postOptions(self) -> None:
        """
        Check every option, so that a mistake is a usage error, not a traceback.
        """
        try:
            ipaddress.ip_address(self["interface"])
        except ValueError:
            raise usage.UsageError(
                "--interface must be an IPv4 or IPv6 address such as 127.0.0.1, "
                f"::1 or 0.0.0.0, not {self['interface']!r}"
            ) from None
        # A shell passes '\n' as a backslash and an n.
        self["banner"] = self["banner"].replace("\\n", "\n")
        if self["mode"] not in MODES:
            raise usage.UsageError(
                f"--mode must be one of {', '.join(MODES)}, not {self['mode']!r}"
            )
        self._checkBus()
        self._checkAccounts()
        if self["workers"] > 1:
            if self["mode"] not in WORKER_MODES and self["busAddress"] is None:
                raise usage.UsageError(
                    "--workers: a chat room lives in one process unless the "
                    "processes share a bus: add --bus redis://HOST:PORT (or "
                    "run --workers 1)"
                )
            for port in self["ports"]:
                if not port.isdigit():
                    raise usage.UsageError(
                        f"--workers needs --port numbers (bound on --interface), "
                        f"not the description {port!r}"
                    )
        listeners = []
        for port in self["ports"] or [DEFAULT_PORT]:
            try:
                listeners.append(
                    describeListener(port, self["interface"], self["backlog"])
                )
            except ValueError as error:
                raise usage.UsageError(f"--port: {error}") from None
        self["listeners"] = listeners
        if self["web"] and self["mode"] != "chat":
            raise usage.UsageError("--web serves the chat room: it needs --mode chat")
        webListeners = []
        for web in self["web"]:
            try:
                webListeners.append(
                    describeListener(web, self["interface"], self["backlog"])
                )
            except ValueError as error:
                raise usage.UsageError(f"--web: {error}") from None
        self["webListeners"] = webListeners
        if self["irc"] and self["mode"] != "chat":
            raise usage.UsageError("--irc serves the chat rooms: it needs --mode chat")
        ircListeners = []
        for irc in self["irc"]:
            try:
                ircListeners.append(
                    describeListener(irc, self["interface"], self["backlog"])
                )
            except ValueError as error:
                raise usage.UsageError(f"--irc: {error}") from None
        self["ircListeners"] = ircListeners
        self._checkIRCPassword()
        if self["metrics"] is not None:
            try:
                self["metricsListener"] = describeListener(
                    self["metrics"], self["interface"], self["backlog"]
                )
            except ValueError as error:
                raise usage.UsageError(f"--metrics: {error}") from None

    def _checkIRCPassword(self) -> None:
        """
        Read the IRC clients' password from C{--irc-password-file}: one line,
        not empty, UTF-8.
        """
        self["ircPassword"] = None
        path = self["irc-password-file"]
        if path is None:
            return
        if not self["irc"]:
            raise usage.UsageError("--irc-password-file needs --irc")
        try:
            with open(path, encoding="utf-8") as file:
                password = file.read().rstrip("\r\n")
        except OSError as error:
            raise usage.UsageError(
                f"--irc-password-file: cannot read {path}: {error.strerror}"
            ) from None
        except UnicodeDecodeError:
            raise usage.UsageError(
                f"--irc-password-file: {path} is not UTF-8 text"
            ) from None
        if not password:
            raise usage.UsageError(f"--irc-password-file: {path} is empty")
        if "\n" in password or "\r" in password:
            raise usage.UsageError(
                f"--irc-password-file: {path} holds more than one line (the "
                "password is one line)"
            )
        self["ircPassword"] = password

    def _checkAccounts(self) -> None:
        """
        Read --accounts, and check the options that need it.
        """
        self["accountStore"] = None
        if self["accounts"] is None:
            for flag in ("require-login", "require-tls-for-login", "bans"):
                if self[flag]:
                    raise usage.UsageError(f"--{flag} needs --accounts FILE")
            return
        if self["mode"] != "chat":
            raise usage.UsageError("--accounts is for the chat: it needs --mode chat")
        store = AccountStore(self["accounts"])
        try:
            store.load()
        except AccountsError as error:
            raise usage.UsageError(f"--accounts: {error}") from None
        self["accountStore"] = store
        if self["bans"] is not None:
            try:
                checkBansFile(Path(self["bans"]))
            except ModerationError as error:
                raise usage.UsageError(f"--bans: {error}") from None

    def _checkBus(self) -> None:
        """
        Check --room, --rooms, --bus and the bus's password.
        """
        self["busAddress"] = None
        try:
            self["room"] = roomName(self["room"])
        except ValueError as error:
            raise usage.UsageError(f"--room: {error}") from None
        fixed: list[str] = []
        if self["rooms"] is not None:
            for text in self["rooms"].split(","):
                try:
                    name = roomName(text.strip())
                except ValueError as error:
                    raise usage.UsageError(f"--rooms: {error}") from None
                # Rooms compare without case: each once, as first spelt.
                if roomKey(name) not in {roomKey(seen) for seen in fixed}:
                    fixed.append(name)
            if roomKey(self["room"]) not in {roomKey(name) for name in fixed}:
                fixed.insert(0, self["room"])
            made = len(fixed) - 1
            if made > self["max-rooms"]:
                raise usage.UsageError(
                    f"--rooms names {made} rooms besides the default room, more "
                    f"than --max-rooms ({self['max-rooms']})"
                )
        self["fixedRooms"] = tuple(fixed)
        if self["bus"] is None:
            for option in ("bus-password-file", "bus-replicas"):
                if self[option] is not None:
                    raise usage.UsageError(f"--{option} needs --bus")
            return
        if self["mode"] != "chat":
            raise usage.UsageError("--bus shares a chat room: it needs --mode chat")
        try:
            address = parseBusAddress(self["bus"])
        except ValueError as error:
            raise usage.UsageError(f"--bus: {error}") from None
        password = os.environ.get(PASSWORD_VARIABLE) or None
        if self["bus-password-file"] is not None:
            try:
                with open(self["bus-password-file"], encoding="utf-8") as file:
                    password = file.read().rstrip("\r\n")
            except OSError as error:
                raise usage.UsageError(
                    f"--bus-password-file: cannot read {self['bus-password-file']}: "
                    f"{error.strerror}"
                ) from None
        self["busAddress"] = address.withPassword(password)
        if self["bus-replicas"] is None:
            self["bus-replicas"] = 1 if address.sentinels else 0

    def workerArguments(self, portNumbers: list[int]) -> list[str]:
        """
        Return the options of a worker process serving C{portNumbers}.
        """
        # The main process alone serves --metrics, --web and --irc.
        passed = [
            f"--{name}={self[name]}"
            for name, *_ in self.optParameters
            if name not in ("metrics", "irc-password-file") and self[name] is not None
        ]
        flags = [f"--{name}" for name, *_ in self.optFlags if self[name]]
        return passed + flags + [f"--port={number}" for number in portNumbers]

    def limits(self) -> Limits:
        """
        Return the limits these options ask for.
        """
        return Limits(
            maxLine=self["max-line"],
            maxPending=self["max-pending"],
            idleTimeout=float(self["idle-timeout"]),
            maxPerIP=self["max-per-ip"],
            requestTimeout=float(self["request-timeout"]),
            maxClients=self["max-clients"],
            presenceLimit=self["presence-limit"],
            floodLimit=self["flood-limit"],
            maxConnections=self["max-connections"]
            or max(16, raiseOpenFileLimit() - RESERVED_FILES),
            history=self["history"],
        )


def makeServerService(
    options: Options, reactor: IReactorCore | None = None
) -> LineServerService:
    """
    Build the service of one sockserve process from parsed C{options}: its
    listeners, with C{SO_REUSEPORT} when it is one of several C{--workers}.
    """
    if reactor is None:
        from twisted.internet import reactor as global_reactor

        reactor = global_reactor
    assert reactor is not None
    limits = options.limits()
    perIPScope = "per address"
    if options["workers"] > 1:
        perIPScope = "per address in each worker process"
    rules = roomRules(
        limits, options["room"], options["max-rooms"], options["fixedRooms"]
    )
    chat: ChatService | None = None
    bus: RedisBus | None = None
    companions: list[IService] = []
    if options["mode"] == "chat":
        if options["busAddress"] is not None:
            chat, bus = busChat(
                options["busAddress"],
                rules,
                reactor,  # type: ignore[arg-type]
                reactor,
                nodeTimeout=float(options["bus-node-timeout"]),
                retention=options["bus-retention"],
                outboxLimit=options["bus-backlog"],
                replicas=options["bus-replicas"],
            )
            companions.append(bus)
        else:
            chat = ChatService(rules, reactor)  # type: ignore[arg-type]
    factory = buildFactory(
        options["mode"],
        limits,
        reactor,  # type: ignore[arg-type]
        options["banner"],
        logConnections=not options["quiet"],
        perIPScope=perIPScope,
        service=chat,
    )
    logins: Logins | None = None
    moderation: Moderation | None = None
    reloads: list[Callable[[], object]] = []
    if options.get("accountStore") is not None and chat is not None:
        hashing = HashingPool(reactor)  # type: ignore[arg-type]
        companions.append(hashing)
        store = options["accountStore"]
        logins = Logins.forStore(
            store,
            accountPortal(store, hashing),
            reactor,  # type: ignore[arg-type]
            LoginRules(
                requireTLS=bool(options["require-tls-for-login"]),
                requireLogin=bool(options["require-login"]),
                deadline=float(options["login-timeout"]),
            ),
            factory.context.guard.logLimited,
        )
        chat.useLogins(logins)
        reloads.append(logins.reload)
        moderation = Moderation(
            reactor,  # type: ignore[arg-type]
            None if options["bans"] is None else Path(options["bans"]),
        )
        moderation.load()
        chat.useModeration(moderation)
        factory.context.guard.bans = moderation.connectRefusal
        if bus is not None:
            companions.append(
                SharedModeration(
                    bus,
                    moderation,
                    reactor,  # type: ignore[arg-type]
                    partial(expelBanned, chat),
                    kicked=partial(expelKicked, chat),
                )
            )
    abort = StartupAbort(getattr(options, "parent", None))

    def endpointFor(description: str, label: str) -> IStreamServerEndpoint:
        if description.startswith("systemd:"):
            problem = systemdProblem(description, passedSockets())
            if problem is not None:
                abort(f"Could not listen on {label}: {problem}")
        proxied = description.lower().startswith(PROXY_PREFIX)
        if proxied:
            description = description[len(PROXY_PREFIX) :]
        try:
            endpoint: IStreamServerEndpoint = serverFromString(reactor, description)
        except Exception as error:
            abort(f"Could not listen on {label}: {error or type(error).__name__}")
        if proxied:
            return ProxyProtocolEndpoint(
                endpoint,
                reactor,  # type: ignore[arg-type]
                factory.context.registry.logLimit,
            )
        return endpoint

    listeners = []
    for (description, label), port in zip(
        options["listeners"], options["ports"] or [DEFAULT_PORT], strict=True
    ):
        if options["workers"] > 1:
            endpoint: IStreamServerEndpoint = ReusePortTCPEndpoint(
                reactor,  # type: ignore[arg-type]
                int(port),
                options["interface"],
                options["backlog"],
            )
        else:
            endpoint = endpointFor(description, label)
        listeners.append(
            Listener(
                label, endpoint, factory, options["mode"], factory.context.registry
            )
        )
    irc = None
    if options["ircListeners"] or options["webListeners"]:
        irc = ircFactory(
            factory,
            reactor,  # type: ignore[arg-type]
            options["irc-network"],
            float(options["irc-ping"]),
            options["banner"],
            options["ircPassword"],
        )
    if options["webListeners"]:
        assert irc is not None
        ircOverWebSocket = IRCWebSocketFactory(irc)
        site = chatWebSite(
            factory,
            reactor,  # type: ignore[arg-type]
            OriginPolicy(options["web-origin"], options["web-host"]),
            float(options["web-ping"]),
            sessionLifetime=float(options["web-session-lifetime"]),
            others={name: ircOverWebSocket.buildMember for name in SUBPROTOCOLS},
        )
        for description, label in options["webListeners"]:
            listeners.append(
                Listener(
                    label,
                    endpointFor(description, label),
                    site,
                    "web",
                    factory.context.registry,
                )
            )
    for description, label in options["ircListeners"]:
        assert irc is not None
        listeners.append(
            Listener(
                label,
                endpointFor(description, label),
                irc,
                "irc",
                factory.context.registry,
            )
        )
    report: Callable[[], None] = DaemonReport(getattr(options, "parent", None))
    if bus is not None:
        report = BusStartup(bus.started, abort.whileLogging(), report, reactor)
    service = LineServerService(
        listeners,
        reactor,  # type: ignore[arg-type]
        float(options["shutdown-grace"]),
        abort.whileLogging(),
        handleSignals=True,
        companions=companions,
        reloads=reloads,
        onStarted=report,
    )
    if options.get("metricsListener") is not None:
        description, label = options["metricsListener"]
        collector = StatisticsCollector(
            options["mode"],
            factory.context.stats,
            factory.context.registry,
            None if chat is None else lambda: chat.people.population,
            None if chat is None else lambda: len(chat.localRooms()),
            None if logins is None else logins.counts,
            None if bus is None else bus.figures,
            None if moderation is None else moderation.counts,
        )
        metrics = metricsSite(
            collector,
            lambda: bool(service.running) and bool(service.ports),
            reactor,  # type: ignore[arg-type]
            factory.context.registry.logLimit,
            bus.problem if bus is not None else lambda: None,
        )
        service.listeners.append(
            Listener(label, endpointFor(description, label), metrics, "metrics")
        )
    return service


def makeService(options: Options, reactor: IReactorCore | None = None) -> IService:
    """
    Build the sockserve service from parsed C{options}: the server, and with
    C{--workers N} the N - 1 worker processes serving the same ports.
    """
    # twistd starts logging after it built the service: a JSON log finds
    # where to write here.
    noteTwistdLogging(getattr(options, "parent", None))
    if reactor is None:
        # Before anything imports the global reactor: twistd's --reactor,
        # when given, has installed its choice already.
        installDefaultReactor()
    abort = StartupAbort(getattr(options, "parent", None))
    listeners = [
        *options["listeners"],
        *options["webListeners"],
        *options["ircListeners"],
    ]
    if options.get("metricsListener") is not None:
        listeners.append(options["metricsListener"])
    for description, label in listeners:
        problem = bindProblem(description)
        if problem is not None:
            abort(f"Could not listen on {label}: {problem}")
    server = makeServerService(options, reactor)
    workers = options["workers"]
    if workers == 1:
        return server
    top = MultiService()
    server.setServiceParent(top)
    WorkerPoolService(
        server.clock,
        workers,
        lambda: [
            port for listener, port in server.served if listener.name == options["mode"]
        ],
        options.workerArguments,
        float(options["shutdown-grace"]) + 2.0,
    ).setServiceParent(top)
    return top

"""
The servers measured: sockserve and its peers, each started on 127.0.0.1 on a
port of its choosing (or, for ncat and sockserve's WebSocket, one found free),
pinned to the server core.

sockserve also serves its rooms to IRC clients (C{--irc}), and one room
to line, WebSocket and IRC clients at once; Debian's C{ngircd} is the
reference IRC server beside it, on a private configuration written for each
start (see L{ngircdConfiguration}), never on IRC's own ports 6667 and 6697.

sockserve also runs as the nodes of a chat on a bus (C{--bus}): one node,
or two, on a private C{redis-server} started with them (fresh, so nothing
is left from another round), all pinned to the server core; the load
generator spreads the clients of each room over the nodes' ports.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.bus import JOINED, RedisServer, redisProgram
from bench.processes import (
    freePort,
    pinned,
    startChild,
    stopChild,
    tail,
    waitForLine,
)

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
LISTENING = re.compile(r"listening on 127\.0\.0\.1:(\d+)")
NCAT_LISTENING = re.compile(r"Listening on 127\.0\.0\.1:(\d+)")
START_TIMEOUT = 30.0

SOCKSERVE = "sockserve"
SOCKSERVE_LOGGING = "sockserve-logging"
SOCKSERVE_METRICS = "sockserve-metrics"
#: sockserve's room on a bus: one node, and two nodes sharing the room.
SOCKSERVE_BUS = "sockserve-bus"
SOCKSERVE_BUS_2NODES = "sockserve-bus-2nodes"
#: sockserve on Twisted's own epoll reactor (twistd --reactor epoll), not
#: the lean one it installs by default (sockserve._reactor).
SOCKSERVE_STOCK_REACTOR = "sockserve-stock-reactor"
SOCKSERVE_BUS_2NODES_STOCK_REACTOR = "sockserve-bus-2nodes-stock-reactor"
SOCKSERVE_FAMILY = (
    SOCKSERVE,
    SOCKSERVE_STOCK_REACTOR,
    SOCKSERVE_BUS_2NODES_STOCK_REACTOR,
    SOCKSERVE_LOGGING,
    SOCKSERVE_METRICS,
    SOCKSERVE_BUS,
    SOCKSERVE_BUS_2NODES,
)
BASELINE = "twisted-lines"
NCAT = "ncat"
#: The mode of a chat room over WebSocket (the load generator's --ws).
CHAT_WS = "chat-ws"
#: The mode of a chat in many rooms (the load generator's --rooms): sockserve
#: only, the peers have one room.
CHAT_MANY_ROOMS = "chat-rooms"
#: sockserve's --max-rooms in that mode: more than any scenario makes.
MAX_ROOMS = 100_000
#: Where the WebSocket servers measured take the upgrade.
WEBSOCKET_PATH = "/ws"
#: The mode of a chat room of IRC clients (the load generator's --irc).
CHAT_IRC = "chat-irc"
#: The mode of one room of line, WebSocket and IRC clients in turn (the load
#: generator's --mix): sockserve only, the only server of the three.
CHAT_MIXED = "chat-mixed"
#: The channel the IRC clients join: on sockserve the default room, where its
#: line and WebSocket clients are, so that the IRC room and the mixed room
#: are the same room.
IRC_CHANNEL = "default"
#: The ports IRC servers take by default: never a benchmark's, so that a run
#: never meets a system's IRC server (or takes its place).
IRC_PORTS = (6667, 6697)
NGIRCD = "ngircd"
NGIRCD_LISTENING = re.compile(r"Now listening on \[127\.0\.0\.1\]:(\d+) ")
NGIRCD_READY = re.compile(r'Server "[^"]*" \(on "[^"]*"\) ready\.')
#: The user and group ids (nobody, nogroup) ngircd runs as when started by
#: root: it drops root after binding, and reads its configuration before.
UNPRIVILEGED = 65534


@dataclass(frozen=True)
class ServerSpec:
    """
    How to start one server.

    @ivar name: its name in the results.
    @ivar modes: the modes it serves (C{echo}, C{oneshot}, C{chat}, C{idle},
        C{chat-ws}: a chat room over WebSocket, C{chat-rooms}: a chat in
        many rooms).
    @ivar description: what it is, for the report.
    @ivar nodes: how many processes serve the room together (on a bus).
    @ivar bus: whether it needs a Redis bus (sockserve's C{--bus}).
    @ivar extraArgs: sockserve only: options added to each process's command
        (C{bench.abuse --node-option}).
    @ivar twistdArgs: sockserve only: twistd's own options (C{--reactor}).
    """

    name: str
    modes: tuple[str, ...]
    description: str
    peerModule: str | None = None
    peerArgs: tuple[str, ...] = ()
    nodes: int = 1
    bus: bool = False
    extraArgs: tuple[str, ...] = ()
    twistdArgs: tuple[str, ...] = ()

    def command(
        self,
        mode: str,
        port: int,
        webPort: int | None = None,
        busURL: str | None = None,
        ircPort: int | None = None,
        configuration: Path | None = None,
    ) -> list[str]:
        """
        Return the command serving C{mode} (C{idle}, C{chat-ws},
        C{chat-rooms}, C{chat-irc} and C{chat-mixed} are chat) on C{port};
        sockserve serves C{chat-ws} on C{webPort} besides, C{chat-irc} on
        C{ircPort}, C{chat-mixed} on both, lets C{chat-rooms} make as many
        rooms as it asks for, and shares its rooms on the bus at C{busURL}
        if given. ngircd reads its C{configuration} (which names its port).
        """
        serverMode = "chat" if mode in CHAT_MODES else mode
        if self.name in SOCKSERVE_FAMILY:
            twistd = VENV_BIN / "twistd"
            # The peers log nothing per connection; sockserve is measured
            # likewise with --quiet, as it runs by default (logging each
            # connect and disconnect) as sockserve-logging, and with
            # --metrics (counting, served on another port) as
            # sockserve-metrics.
            quiet = [] if self.name == SOCKSERVE_LOGGING else ["--quiet"]
            if self.name == SOCKSERVE_METRICS:
                quiet += ["--metrics", "0"]
            if mode in (CHAT_WS, CHAT_MIXED):
                assert webPort is not None
                # The page at / and the WebSocket at /ws (WEBSOCKET_PATH).
                quiet += ["--web", str(webPort)]
            if mode in (CHAT_IRC, CHAT_MIXED):
                assert ircPort is not None
                quiet += ["--irc", str(ircPort)]
            if mode == CHAT_MANY_ROOMS:
                quiet += ["--max-rooms", str(MAX_ROOMS)]
            if busURL is not None:
                quiet += ["--bus", busURL]
            return [
                str(twistd if twistd.exists() else "twistd"),
                "--pidfile=",
                *self.twistdArgs,
                "-n",
                SOCKSERVE,
                "--mode",
                serverMode,
                "--port",
                str(port),
                "--max-clients",
                "20000",
                *quiet,
                *self.extraArgs,
            ]
        if self.name == NGIRCD:
            assert configuration is not None
            return [ngircdProgram() or "ngircd", "-n", "-f", str(configuration)]
        if self.name == NCAT:
            return [
                "ncat",
                "--broker",
                "--chat",
                "-v",
                "--max-conns",
                "1000",
                "-l",
                "127.0.0.1",
                str(port),
            ]
        assert self.peerModule is not None
        return [
            sys.executable,
            "-m",
            f"bench.peers.{self.peerModule}",
            "--mode",
            serverMode,
            "--port",
            str(port),
            *self.peerArgs,
        ]


#: The modes that start a chat server.
CHAT_MODES = ("idle", CHAT_WS, CHAT_MANY_ROOMS, CHAT_IRC, CHAT_MIXED)

SERVERS: tuple[ServerSpec, ...] = (
    ServerSpec(
        SOCKSERVE,
        (
            "echo",
            "oneshot",
            "chat",
            "idle",
            CHAT_WS,
            CHAT_MANY_ROOMS,
            CHAT_IRC,
            CHAT_MIXED,
        ),
        "sockserve (twistd -n sockserve --quiet), default epoll reactor; "
        "chat-ws: its WebSocket (--web); chat-rooms: with --max-rooms "
        f"{MAX_ROOMS}; chat-irc: its IRC (--irc); chat-mixed: --web and --irc",
    ),
    ServerSpec(
        SOCKSERVE_STOCK_REACTOR,
        ("echo", "oneshot", "chat", CHAT_WS),
        "sockserve as above on Twisted's own epoll reactor (twistd --reactor "
        "epoll), which wraps every event in a log context",
        twistdArgs=("--reactor", "epoll"),
    ),
    ServerSpec(
        SOCKSERVE_LOGGING,
        ("oneshot", "idle"),
        "sockserve as it runs by default, logging each connect and disconnect",
    ),
    ServerSpec(
        SOCKSERVE_METRICS,
        ("echo", "oneshot"),
        "sockserve --quiet --metrics 0: counting for /metrics",
    ),
    ServerSpec(
        SOCKSERVE_BUS,
        ("chat", CHAT_MANY_ROOMS),
        "sockserve --bus: one node, its rooms on a private redis-server "
        "(both on the server core)",
        bus=True,
    ),
    ServerSpec(
        SOCKSERVE_BUS_2NODES,
        ("chat", CHAT_MANY_ROOMS),
        "sockserve --bus: two nodes sharing the rooms on one private "
        "redis-server (all three on the server core); client i on node i mod 2",
        nodes=2,
        bus=True,
    ),
    ServerSpec(
        SOCKSERVE_BUS_2NODES_STOCK_REACTOR,
        ("chat", CHAT_MANY_ROOMS),
        "sockserve-bus-2nodes on Twisted's own epoll reactor (twistd --reactor epoll)",
        nodes=2,
        bus=True,
        twistdArgs=("--reactor", "epoll"),
    ),
    ServerSpec(
        BASELINE,
        ("echo", "oneshot", "chat", "idle"),
        "plain Twisted LineOnlyReceiver, one write per line (the baseline)",
        "twisted_lines",
    ),
    ServerSpec(
        "asyncio-streams",
        ("echo", "oneshot", "chat", "idle"),
        "asyncio streams (readline/write/drain)",
        "asyncio_streams",
    ),
    ServerSpec(
        "asyncio-protocol",
        ("echo", "oneshot", "chat", "idle"),
        "asyncio Protocol (data_received/transport.write)",
        "asyncio_protocol",
    ),
    ServerSpec(
        "uvloop-streams",
        ("echo", "oneshot", "chat", "idle"),
        "asyncio streams on uvloop",
        "asyncio_streams",
        ("--uvloop",),
    ),
    ServerSpec(
        "uvloop-protocol",
        ("echo", "oneshot", "chat", "idle"),
        "asyncio Protocol on uvloop",
        "asyncio_protocol",
        ("--uvloop",),
    ),
    ServerSpec(
        NCAT,
        ("chat",),
        "ncat --broker --chat (C, select(); prefixes each read, not each line)",
    ),
    ServerSpec(
        NGIRCD,
        (CHAT_IRC,),
        "ngIRCd (Debian's ngircd; C, one process, epoll), a private "
        "configuration: no flood penalties (MaxPenaltyTime = 0), no limit per "
        "address, no DNS, ident or PAM",
    ),
    ServerSpec(
        "websockets-asyncio",
        (CHAT_WS,),
        "websockets (serve, broadcast) on asyncio",
        "websockets_chat",
    ),
    ServerSpec(
        "websockets-uvloop",
        (CHAT_WS,),
        "websockets (serve, broadcast) on uvloop",
        "websockets_chat",
        ("--uvloop",),
    ),
)


def serverNamed(name: str) -> ServerSpec:
    """
    Return the server called C{name}.
    """
    for spec in SERVERS:
        if spec.name == name:
            return spec
    raise KeyError(name)


def ngircdProgram() -> str | None:
    """
    Return Debian's C{ngircd} (in C{/usr/sbin}, which a user's C{PATH} may
    not hold), or C{None} if it is not installed.
    """
    found = shutil.which("ngircd")
    if found is not None:
        return found
    fallback = Path("/usr/sbin/ngircd")
    return str(fallback) if os.access(fallback, os.X_OK) else None


def ngircdConfiguration(port: int, includes: Path, root: bool) -> str:
    """
    Return the text of a private C{ngircd.conf} for a server on
    C{127.0.0.1:port}, its options chosen so that it carries the benchmark's
    load as a server for people would be set up to, and no more.

    No flood penalties: ngIRCd reads at most 3 commands a pass from a user and
    delays a user who sends more than that, or more than 256 bytes a second,
    by a second (a penalty), which would make the benchmark a measure of that
    delay. C{MaxPenaltyTime = 0} (ngIRCd 26 and later, an operator's option)
    turns the penalties off for every user; its other limits stay: 3 commands
    a pass, a 2 KiB read buffer and 32 KiB of output held per client, a
    client past either being disconnected. The clients are plain users:
    no operator, no C{+F} mode, no server link. No limit of connections per
    address (the load generator's clients all come from 127.0.0.1), no DNS,
    ident or PAM (nothing leaves this machine), no idle timeout, pings far
    apart, and an empty C{includes} directory so that the system's
    configuration snippets are not read.

    @param root: whether it is started as root, and so must give up root.
    """
    if port in IRC_PORTS:
        raise ValueError(f"port {port} is a system IRC server's, not a benchmark's")
    lines = [
        "[Global]",
        "\tName = irc.bench.test",
        "\tInfo = sockserve benchmark peer",
        "\tAdminInfo1 = sockserve benchmark",
        "\tAdminInfo2 = this machine",
        "\tAdminEMail = nobody@localhost",
        "\tListen = 127.0.0.1",
        f"\tPorts = {port}",
        '\tMotdPhrase = "sockserve benchmark peer"',
        "\tNetwork = bench",
        "\tPidFile =",
    ]
    if root:
        lines += [f"\tServerUID = {UNPRIVILEGED}", f"\tServerGID = {UNPRIVILEGED}"]
    lines += [
        "[Limits]",
        "\tConnectRetry = 60",
        "\tIdleTimeout = 0",
        "\tMaxConnections = 0",
        "\tMaxConnectionsIP = 0",
        "\tMaxJoins = 0",
        "\tMaxNickLength = 30",
        "\tMaxPenaltyTime = 0",
        "\tPingTimeout = 600",
        "\tPongTimeout = 600",
        "[Options]",
        "\tDNS = no",
        "\tIdent = no",
        "\tPAM = no",
        f"\tIncludeDir = {includes}",
        "\tMorePrivacy = no",
        "\tNoticeBeforeRegistration = no",
        "\tRequireAuthPing = no",
    ]
    return "\n".join(lines) + "\n"


def ircPort() -> int:
    """
    Return a free loopback port for an IRC server: never 6667 or 6697.
    """
    while True:
        port = freePort()
        if port not in IRC_PORTS:
            return port


def available(spec: ServerSpec) -> str | None:
    """
    Return why C{spec} cannot run here, or C{None} if it can.
    """
    if spec.name == NCAT and shutil.which("ncat") is None:
        return "ncat is not installed (Debian package ncat)"
    if spec.name == NGIRCD and ngircdProgram() is None:
        return "ngircd is not installed (Debian package ngircd)"
    if spec.bus and redisProgram("redis-server") is None:
        return "redis-server is not installed (Debian package redis-server)"
    if spec.peerModule == "websockets_chat":
        try:
            import websockets  # noqa: F401
        except ImportError:
            return "websockets is not installed (pip install -r bench/requirements.txt)"
    if spec.peerArgs == ("--uvloop",):
        try:
            import uvloop  # noqa: F401
        except ImportError:
            return "uvloop is not installed (pip install -r bench/requirements.txt)"
    return None


@dataclass
class Node:
    """
    One started server process: its port and its log.

    @ivar wsPort: a mixed room: the WebSocket port (C{port} is the line
        clients').
    @ivar ircPort: a mixed room: the IRC port.
    """

    process: subprocess.Popen[Any]
    port: int
    log: Path
    wsPort: int | None = None
    ircPort: int | None = None

    @property
    def pid(self) -> int:
        """
        The process id (C{taskset} execs the server itself).
        """
        return self.process.pid


@dataclass
class RunningServer:
    """
    A started server: its processes (one, or the nodes of a room on a bus),
    their ports and logs, and its private Redis if it has one.
    """

    spec: ServerSpec
    mode: str
    nodes: list[Node]
    redis: RedisServer | None = None
    exitStatus: int | None = field(default=None)

    @property
    def port(self) -> int:
        """
        The (first node's) port.
        """
        return self.nodes[0].port

    @property
    def ports(self) -> list[int]:
        """
        Every node's port, in order.
        """
        return [node.port for node in self.nodes]

    @property
    def pid(self) -> int:
        """
        The (first node's) process id.
        """
        return self.nodes[0].pid

    @property
    def pids(self) -> list[int]:
        """
        Every node's process id (not Redis's).
        """
        return [node.pid for node in self.nodes]

    @property
    def serverSidePids(self) -> list[int]:
        """
        The process id of every process serving the room: the nodes and
        their Redis (all on the server core), whose CPU is the server's.
        """
        redis = [self.redis.pid] if self.redis is not None else []
        return self.pids + redis

    def alive(self) -> bool:
        """
        Return whether every node, and its Redis, is still running.
        """
        return all(node.process.poll() is None for node in self.nodes) and (
            self.redis is None or self.redis.alive()
        )

    def stop(self) -> None:
        """
        Stop the nodes (which leave the room on the bus), then Redis, and
        wait for them.
        """
        statuses = [stopChild(node.process) for node in self.nodes]
        self.exitStatus = statuses[0]
        if self.redis is not None:
            self.redis.stop()

    def logTail(self) -> str:
        """
        Return the end of the log of the first node that exited (or of
        Redis, if it did), else of the first node's.
        """
        for node in self.nodes:
            if node.process.poll() is not None:
                return tail(node.log)
        if self.redis is not None and not self.redis.alive():
            return tail(self.redis.log)
        return tail(self.nodes[0].log)


def _startNode(
    spec: ServerSpec,
    mode: str,
    core: int | None,
    log: Path,
    busURL: str | None,
) -> Node:
    """
    Start one process of C{spec}, logging to C{log}; wait until it listens
    (and, on a bus, until it has joined the bus).
    """
    webPort = ircListen = configuration = None
    also: list[re.Pattern[str]] = []
    if spec.name == NCAT:
        port, pattern = freePort(), NCAT_LISTENING
    elif spec.name == NGIRCD:
        port = ircPort()
        pattern, also = NGIRCD_LISTENING, [NGIRCD_READY]
        directory = log.parent / f"{spec.name}-{mode}"
        includes = directory / "conf.d"
        includes.mkdir(parents=True, exist_ok=True)
        configuration = directory / "ngircd.conf"
        configuration.write_text(ngircdConfiguration(port, includes, os.geteuid() == 0))
        configuration.chmod(0o644)
    elif mode == CHAT_WS and spec.peerModule is None:
        # sockserve: its chat on any port, its WebSocket on one found free,
        # which it says it listens on once it does.
        port, webPort = 0, freePort()
        pattern = re.compile(rf"listening on 127\.0\.0\.1:({webPort})\b")
    elif mode == CHAT_IRC and spec.peerModule is None:
        port, ircListen = 0, ircPort()
        pattern = re.compile(rf"listening on 127\.0\.0\.1:({ircListen})\b")
    elif mode == CHAT_MIXED and spec.peerModule is None:
        # The line clients' port is the one the chat server says it took.
        port, webPort, ircListen = 0, freePort(), ircPort()
        pattern = re.compile(r"chat server listening on 127\.0\.0\.1:(\d+)")
        also = [
            re.compile(rf"listening on 127\.0\.0\.1:{listening}\b")
            for listening in (webPort, ircListen)
        ]
    else:
        port, pattern = 0, LISTENING
    env = None
    if spec.peerModule is not None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [str(REPO), *filter(None, [env.get("PYTHONPATH")])]
        )
    with log.open("wb") as output:
        process = startChild(
            pinned(
                spec.command(mode, port, webPort, busURL, ircListen, configuration),
                core,
            ),
            stdout=output,
            stderr=subprocess.STDOUT,
            cwd=log.parent,
            env=env,
        )
    match = waitForLine(log, pattern, process, START_TIMEOUT)
    for line in also:
        waitForLine(log, line, process, START_TIMEOUT)
    if busURL is not None:
        waitForLine(log, JOINED, process, START_TIMEOUT)
    if mode == CHAT_MIXED:
        return Node(process, int(match.group(1)), log, webPort, ircListen)
    return Node(process, int(match.group(1)), log)


def startServer(
    spec: ServerSpec, mode: str, core: int | None, logDir: Path
) -> RunningServer:
    """
    Start C{spec} serving C{mode}, pinned to C{core}, logging to C{logDir}, and
    wait until it listens: with a fresh private Redis first if it needs a
    bus, and each of its nodes.
    """
    logDir.mkdir(parents=True, exist_ok=True)
    redis = None
    if spec.bus:
        redisLog = logDir / f"{spec.name}-{mode}-redis.log"
        redisLog.unlink(missing_ok=True)
        redis = RedisServer(logDir / f"{spec.name}-redis", redisLog, core).start()
    nodes: list[Node] = []
    try:
        for index in range(spec.nodes):
            suffix = f"-node{index + 1}" if spec.nodes > 1 else ""
            log = logDir / f"{spec.name}-{mode}{suffix}.log"
            busURL = redis.url if redis is not None else None
            nodes.append(_startNode(spec, mode, core, log, busURL))
    except BaseException:
        for node in nodes:
            stopChild(node.process)
        if redis is not None:
            redis.stop()
        raise
    return RunningServer(spec, mode, nodes, redis)

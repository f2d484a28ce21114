"""
The servers measured: sockserve and its peers, each started on 127.0.0.1 on a
port of its choosing (or, for ncat and sockserve's WebSocket, one found free),
pinned to the server core.

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
SOCKSERVE_FAMILY = (
    SOCKSERVE,
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
    """

    name: str
    modes: tuple[str, ...]
    description: str
    peerModule: str | None = None
    peerArgs: tuple[str, ...] = ()
    nodes: int = 1
    bus: bool = False
    extraArgs: tuple[str, ...] = ()

    def command(
        self,
        mode: str,
        port: int,
        webPort: int | None = None,
        busURL: str | None = None,
    ) -> list[str]:
        """
        Return the command serving C{mode} (C{idle}, C{chat-ws} and
        C{chat-rooms} are chat) on C{port}; sockserve serves C{chat-ws} on
        C{webPort} besides, lets C{chat-rooms} make as many rooms as it asks
        for, and shares its rooms on the bus at C{busURL} if given.
        """
        serverMode = "chat" if mode in ("idle", CHAT_WS, CHAT_MANY_ROOMS) else mode
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
            if mode == CHAT_WS:
                assert webPort is not None
                # The page at / and the WebSocket at /ws (WEBSOCKET_PATH).
                quiet += ["--web", str(webPort)]
            if mode == CHAT_MANY_ROOMS:
                quiet += ["--max-rooms", str(MAX_ROOMS)]
            if busURL is not None:
                quiet += ["--bus", busURL]
            return [
                str(twistd if twistd.exists() else "twistd"),
                "--pidfile=",
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


SERVERS: tuple[ServerSpec, ...] = (
    ServerSpec(
        SOCKSERVE,
        ("echo", "oneshot", "chat", "idle", CHAT_WS, CHAT_MANY_ROOMS),
        "sockserve (twistd -n sockserve --quiet), default epoll reactor; "
        "chat-ws: its WebSocket (--web); chat-rooms: with --max-rooms "
        f"{MAX_ROOMS}",
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


def available(spec: ServerSpec) -> str | None:
    """
    Return why C{spec} cannot run here, or C{None} if it can.
    """
    if spec.name == NCAT and shutil.which("ncat") is None:
        return "ncat is not installed (Debian package ncat)"
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
    """

    process: subprocess.Popen[Any]
    port: int
    log: Path

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
    webPort = None
    if spec.name == NCAT:
        port, pattern = freePort(), NCAT_LISTENING
    elif mode == CHAT_WS and spec.peerModule is None:
        # sockserve: its chat on any port, its WebSocket on one found free,
        # which it says it listens on once it does.
        port, webPort = 0, freePort()
        pattern = re.compile(rf"listening on 127\.0\.0\.1:({webPort})\b")
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
            pinned(spec.command(mode, port, webPort, busURL), core),
            stdout=output,
            stderr=subprocess.STDOUT,
            cwd=log.parent,
            env=env,
        )
    match = waitForLine(log, pattern, process, START_TIMEOUT)
    if busURL is not None:
        waitForLine(log, JOINED, process, START_TIMEOUT)
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

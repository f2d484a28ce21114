"""
The servers measured: sockserve and its peers, each started on 127.0.0.1 on a
port of its choosing (or, for ncat and sockserve's WebSocket, one found free),
pinned to the server core.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.processes import pinned, startChild, stopChild, tail, waitForLine

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
LISTENING = re.compile(r"listening on 127\.0\.0\.1:(\d+)")
NCAT_LISTENING = re.compile(r"Listening on 127\.0\.0\.1:(\d+)")
START_TIMEOUT = 30.0

SOCKSERVE = "sockserve"
SOCKSERVE_LOGGING = "sockserve-logging"
SOCKSERVE_METRICS = "sockserve-metrics"
BASELINE = "twisted-lines"
NCAT = "ncat"
#: The mode of a chat room over WebSocket (the load generator's --ws).
CHAT_WS = "chat-ws"
#: Where the WebSocket servers measured take the upgrade.
WEBSOCKET_PATH = "/ws"


@dataclass(frozen=True)
class ServerSpec:
    """
    How to start one server.

    @ivar name: its name in the results.
    @ivar modes: the modes it serves (C{echo}, C{oneshot}, C{chat}, C{idle},
        C{chat-ws}: a chat room over WebSocket).
    @ivar description: what it is, for the report.
    """

    name: str
    modes: tuple[str, ...]
    description: str
    peerModule: str | None = None
    peerArgs: tuple[str, ...] = ()

    def command(self, mode: str, port: int, webPort: int | None = None) -> list[str]:
        """
        Return the command serving C{mode} (C{idle} and C{chat-ws} are chat)
        on C{port}; sockserve serves C{chat-ws} on C{webPort} besides.
        """
        serverMode = "chat" if mode in ("idle", CHAT_WS) else mode
        if self.name in (SOCKSERVE, SOCKSERVE_LOGGING, SOCKSERVE_METRICS):
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
        ("echo", "oneshot", "chat", "idle", CHAT_WS),
        "sockserve (twistd -n sockserve --quiet), default epoll reactor; "
        "chat-ws: its WebSocket (--web)",
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


def freePort() -> int:
    """
    Return a TCP port on 127.0.0.1 that is free right now.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class RunningServer:
    """
    A started server: its process, its port and its log.
    """

    spec: ServerSpec
    mode: str
    process: subprocess.Popen[Any]
    port: int
    log: Path
    exitStatus: int | None = field(default=None)

    @property
    def pid(self) -> int:
        """
        The server's process id (C{taskset} execs the server itself).
        """
        return self.process.pid

    def alive(self) -> bool:
        """
        Return whether the server is still running.
        """
        return self.process.poll() is None

    def stop(self) -> None:
        """
        Stop the server, and wait for it.
        """
        self.exitStatus = stopChild(self.process)

    def logTail(self) -> str:
        """
        Return the end of the server's log.
        """
        return tail(self.log)


def startServer(
    spec: ServerSpec, mode: str, core: int | None, logDir: Path
) -> RunningServer:
    """
    Start C{spec} serving C{mode}, pinned to C{core}, logging to C{logDir}, and
    wait until it listens.
    """
    logDir.mkdir(parents=True, exist_ok=True)
    log = logDir / f"{spec.name}-{mode}.log"
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
            pinned(spec.command(mode, port, webPort), core),
            stdout=output,
            stderr=subprocess.STDOUT,
            cwd=logDir,
            env=env,
        )
    match = waitForLine(log, pattern, process, START_TIMEOUT)
    return RunningServer(spec, mode, process, int(match.group(1)), log)

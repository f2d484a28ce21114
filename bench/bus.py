"""
The bench's own Redis, for the chat room shared over a bus (C{--bus}).

  - L{RedisServer}: a private C{redis-server} on a free loopback port the
    system chose (never one the bench did not start), without persistence,
    killed and started again (empty) at will;
  - L{SentinelBus}: a primary, two replicas and three sentinels watching
    them (C{redis-server --sentinel}), whose primary is killed at will (for
    C{python -m bench.bus_soak --failover});
  - L{redisClient}: a blocking client of it (redis-py), for its statistics
    and the benchmark's set-up;
  - L{usage} and L{usageBetween}: what Redis did during a run (its CPU and
    the calls and time of each command, from C{INFO});
  - L{benchmarkRedis}: Redis's own ceiling, with C{redis-benchmark}, for the
    commands the bus uses: C{EVALSHA} of a script doing what the bus's
    publishing does (a counter in a hash and an C{XADD} with C{MAXLEN ~}),
    and C{XREAD} of one entry, each with a batch of one line and of 64.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from bench.processes import (
    StartError,
    freePort,
    pinned,
    runBounded,
    startChild,
    stopChild,
    tail,
)

#: Redis's own port: never used, whatever runs there is not the bench's.
READY = re.compile(r"Ready to accept connections")
START_TIMEOUT = 20.0
START_TRIES = 5
COMMAND_TIMEOUT = 10.0
#: A node logs this once it is in contact with Redis.
JOINED = re.compile(r"Joined the bus at")


def redisProgram(name: str) -> str | None:
    """
    Return the path of a Redis program (C{redis-server}, C{redis-benchmark}),
    or C{None} if it is not installed.
    """
    return shutil.which(name)


class RedisServer:
    """
    A private C{redis-server}, pinned to C{core}, logging to C{log}.

    @ivar port: its loopback port, chosen free at the first start and kept
        across restarts (the nodes reconnect to the same address).
    """

    def __init__(
        self, directory: Path, log: Path, core: int | None, *options: str
    ) -> None:
        self.directory = directory
        self.log = log
        self.core = core
        self.options = options
        self.port = 0
        self.process: subprocess.Popen[Any] | None = None

    @property
    def url(self) -> str:
        """
        Its C{--bus} address.
        """
        return f"redis://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        """
        Its process id (C{taskset} execs C{redis-server} itself).
        """
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        """
        Whether it is running.
        """
        return self.process is not None and self.process.poll() is None

    def start(self) -> RedisServer:
        """
        Start it, empty, and wait until it accepts connections (see
        L{starting}).
        """
        for delay in self.starting():
            time.sleep(delay)
        return self

    def starting(self) -> Iterator[float]:
        """
        Start it, empty: on a free port the first time, on the same port
        after L{kill} (tried again a few times, as the port may take a moment
        to be free again). Yields how long to wait before looking again
        whether it accepts connections, so that a caller on an event loop
        waits without blocking it: the process must be started by the
        thread that stays (a child's death signal follows the thread that
        started it).

        @raise StartError: if it never accepted connections.
        """
        assert self.process is None
        program = redisProgram("redis-server")
        if program is None:
            raise StartError("redis-server is not installed (Debian redis-server)")
        self.directory.mkdir(parents=True, exist_ok=True)
        self.log.parent.mkdir(parents=True, exist_ok=True)
        problem = ""
        for attempt in range(START_TRIES):
            port = self.port or freePort()
            offset = self.log.stat().st_size if self.log.exists() else 0
            with self.log.open("ab") as output:
                process = startChild(
                    pinned(
                        [
                            program,
                            "--port",
                            str(port),
                            "--bind",
                            "127.0.0.1",
                            "--save",
                            "",
                            "--appendonly",
                            "no",
                            "--daemonize",
                            "no",
                            "--dir",
                            str(self.directory),
                            *self.options,
                        ],
                        self.core,
                    ),
                    stdout=output,
                    stderr=subprocess.STDOUT,
                )
            deadline = time.monotonic() + START_TIMEOUT
            while not self._saidReady(offset):
                if process.poll() is not None or time.monotonic() > deadline:
                    stopChild(process)
                    problem = tail(self.log, 3)
                    break
                yield 0.01
            else:
                self.port = port
                self.process = process
                return
            yield 0.2 * (attempt + 1)  # a port in use: try again
        raise StartError(f"redis-server did not start; see {self.log}:\n{problem}")

    def _saidReady(self, offset: int) -> bool:
        with self.log.open("rb") as log:
            log.seek(offset)
            return READY.search(log.read().decode("utf-8", "replace")) is not None

    def kill(self) -> None:
        """
        Kill it (SIGKILL): everything it held is lost.
        """
        if self.process is None:
            return
        self.process.send_signal(signal.SIGKILL)
        stopChild(self.process)
        self.process = None

    def stop(self) -> None:
        """
        Stop it (SIGTERM; it saves nothing) and wait.
        """
        if self.process is not None:
            stopChild(self.process)
            self.process = None

    def client(self) -> redis.Redis:
        """
        A client of it.
        """
        return redisClient(self.port)


def redisClient(port: int, timeout: float = COMMAND_TIMEOUT) -> redis.Redis:
    """
    A blocking client (redis-py) of the Redis on 127.0.0.1:C{port}; every
    command has a timeout.
    """
    return redis.Redis(
        host="127.0.0.1",
        port=port,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
    )


def usage(port: int) -> dict[str, Any]:
    """
    Return Redis's CPU seconds so far and, for each command, its calls and
    microseconds so far (C{INFO cpu}, C{INFO commandstats}).
    """
    with redisClient(port) as client:
        cpu = client.info("cpu")
        stats = client.info("commandstats")
    commands = {
        key.removeprefix("cmdstat_"): {
            "calls": int(figures["calls"]),
            "usec": int(figures["usec"]),
        }
        for key, figures in stats.items()
    }
    return {
        "cpu_s": float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"]),
        "commands": commands,
    }


#: The commands reported per run: the bus's own (EVALSHA: every script; XADD,
#: inside the publishing script; XREAD, the reading connection).
REPORTED_COMMANDS = ("evalsha", "xadd", "xread")


def usageBetween(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """
    Return what Redis did between two L{usage} readings: its CPU
    milliseconds, and the calls and microseconds per call of the bus's
    commands.
    """
    result: dict[str, Any] = {
        "cpu_ms": round(1000 * (after["cpu_s"] - before["cpu_s"]), 3)
    }
    for name in REPORTED_COMMANDS:
        now = after["commands"].get(name, {"calls": 0, "usec": 0})
        then = before["commands"].get(name, {"calls": 0, "usec": 0})
        calls = now["calls"] - then["calls"]
        usec = now["usec"] - then["usec"]
        result[name] = {
            "calls": calls,
            "usec_per_call": round(usec / calls, 2) if calls else None,
        }
    return result


# What the bus's publishing script does for a batch, but for the check that
# drops a retried batch (redis-benchmark cannot number the batches): count
# the node's batches in a hash, append the batch to the stream, trimmed.
PUBLISH_LIKE = """
local P, node, payload, maxlen = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local seq = redis.call('HINCRBY', P .. 'seqs', node, 1)
redis.call('XADD', P .. 'stream', 'MAXLEN', '~', maxlen, '*',
  'n', node, 's', seq, 'e', payload)
return 1
"""
BENCH_PREFIX = "sockserve-bench:{bench}:"
RETENTION = 10_000  # the bus's default --bus-retention
LINE = "#B# 3 123 1234567890123456 " + "x" * 36  # a 64-byte chat line, no LF


def batchPayload(lines: int) -> bytes:
    """
    Return a batch as the bus encodes it: one member's C{lines} lines.
    """
    return json.dumps(
        [["m", "127.0.0.1:40000", [LINE] * lines]], separators=(",", ":")
    ).encode()


@dataclass(frozen=True)
class RedisBenchmark:
    """
    One C{redis-benchmark} run: a command, its clients and its figures.
    """

    label: str
    clients: int
    requests: int
    rps: float | None
    p50Ms: float | None
    p99Ms: float | None
    problem: str = ""

    def asJSON(self) -> dict[str, Any]:
        """
        Return it as JSON-ready data.
        """
        return self.__dict__.copy()


# The end of a line of redis-benchmark --csv: requests/s, then the average,
# minimum, p50, p95, p99 and maximum latency in milliseconds.
_CSV_FIGURES = re.compile(r'"([\d.]+)"' + r',"([\d.]+)"' * 6 + r"\s*$")


def _runBenchmark(
    port: int,
    label: str,
    arguments: list[str | bytes],
    clients: int,
    requests: int,
    core: int | None,
) -> RedisBenchmark:
    program = redisProgram("redis-benchmark")
    assert program is not None
    command = [
        program,
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
        "-n",
        str(requests),
        "-c",
        str(clients),
        "-P",
        "1",
        "--csv",
        *(a.decode() if isinstance(a, bytes) else a for a in arguments),
    ]
    result = runBounded(pinned(command, core), timeout=300)
    # The CSV's first column is the command as given, unescaped (the batch's
    # JSON has quotes): read the figures from the end of the line.
    figures = [
        match.groups()
        for match in map(_CSV_FIGURES.search, result.stdout.splitlines())
        if match is not None
    ]
    if result.returncode != 0 or len(figures) != 1:
        why = (result.stderr or result.stdout).strip()[-200:]
        return RedisBenchmark(label, clients, requests, None, None, None, why)
    rps, _, _, p50, _, p99, _ = map(float, figures[0])
    return RedisBenchmark(label, clients, requests, rps, p50, p99)


def benchmarkRedis(
    directory: Path,
    serverCore: int | None,
    clientCore: int | None,
    requests: int = 100_000,
    clientCounts: tuple[int, ...] = (1, 50),
) -> list[RedisBenchmark]:
    """
    Measure a private Redis (on the server core, with C{redis-benchmark} on
    the client core) for the commands the bus uses, one client (a node's
    connection, one command at a time: the latency bound) and 50 at once
    (Redis's ceiling): C{PING} (the floor), C{EVALSHA} publishing a batch of
    1 and of 64 lines, and C{XREAD} of one such entry.
    """
    if redisProgram("redis-benchmark") is None:
        missing = "not installed"
        return [RedisBenchmark("redis-benchmark", 0, 0, None, None, None, missing)]
    redis = RedisServer(directory, directory / "redis.log", serverCore).start()
    try:
        with redis.client() as client:
            sha = client.script_load(PUBLISH_LIKE)
            cases: list[tuple[str, list[str | bytes]]] = [("PING", ["PING"])]
            for lines in (1, 64):
                payload = batchPayload(lines)
                cases.append(
                    (
                        f"EVALSHA publish ({lines}-line batch, {len(payload)} B)",
                        [
                            "EVALSHA",
                            sha,
                            "0",
                            BENCH_PREFIX,
                            "node",
                            payload,
                            str(RETENTION),
                        ],
                    )
                )
            for lines in (1, 64):
                payload = batchPayload(lines)
                key = f"{BENCH_PREFIX}read{lines}"
                client.delete(key)
                client.xadd(key, {"n": "node", "s": "1", "e": payload})
                cases.append(
                    (
                        f"XREAD one entry ({lines}-line batch)",
                        ["XREAD", "COUNT", "500", "STREAMS", key, "0-0"],
                    )
                )
        results = []
        for label, arguments in cases:
            for clients in clientCounts:
                results.append(
                    _runBenchmark(
                        redis.port, label, arguments, clients, requests, clientCore
                    )
                )
        return results
    finally:
        redis.stop()


#: The name the bench's sentinels know the primary by.
SENTINEL_SERVICE = "sockbus"
#: The sentinels' timing: half a second to count the primary down.
DOWN_AFTER_MS = 500
FAILOVER_TIMEOUT_MS = 2000


class SentinelBus:
    """
    A primary, two replicas of it and three sentinels (the same
    C{redis-server}, in sentinel mode), each on a free loopback port, for a
    bus that outlives its primary. L{failOver} kills the primary and, once
    the sentinels name another, starts the killed one again (empty) as a
    replica of the new one, so that any number of failovers can follow.

    @ivar servers: the data nodes, by port.
    """

    def __init__(self, directory: Path, core: int | None) -> None:
        self.directory = directory
        self.core = core
        self.servers: dict[int, RedisServer] = {}
        self.sentinels: list[subprocess.Popen[Any]] = []
        self.sentinelPorts: list[int] = []

    @property
    def url(self) -> str:
        """
        Its C{--bus} address.
        """
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinelPorts)
        return f"redis+sentinel://{hosts}/{SENTINEL_SERVICE}"

    def _server(self, name: str, *options: str) -> RedisServer:
        server = RedisServer(
            self.directory / name,
            self.directory / f"{name}.log",
            self.core,
            "--repl-diskless-sync-delay",
            "0",
            *options,
        ).start()
        self.servers[server.port] = server
        return server

    def start(self) -> SentinelBus:
        """
        Start the primary, its replicas and the sentinels; wait until the
        replicas have a write and every sentinel names the primary and knows
        the others.
        """
        primary = self._server("redis-1")
        for n in (2, 3):
            self._server(f"redis-{n}", "--replicaof", "127.0.0.1", str(primary.port))
        with redisClient(primary.port) as client:
            client.set("bench:ready", "1")
            if int(client.execute_command("WAIT", 2, int(START_TIMEOUT * 1000))) < 2:
                raise StartError("the replicas did not sync with the primary")
        program = redisProgram("redis-server")
        assert program is not None
        for n in range(3):
            port = freePort()
            directory = self.directory / f"sentinel-{n + 1}"
            directory.mkdir(parents=True, exist_ok=True)
            config = directory / "sentinel.conf"
            config.write_text(
                f"port {port}\nbind 127.0.0.1\ndaemonize no\ndir {directory}\n"
                f"sentinel monitor {SENTINEL_SERVICE} 127.0.0.1 {primary.port} 2\n"
                f"sentinel down-after-milliseconds {SENTINEL_SERVICE} "
                f"{DOWN_AFTER_MS}\n"
                f"sentinel failover-timeout {SENTINEL_SERVICE} "
                f"{FAILOVER_TIMEOUT_MS}\n"
                f"sentinel parallel-syncs {SENTINEL_SERVICE} 2\n"
            )
            with (directory / "sentinel.log").open("ab") as output:
                self.sentinels.append(
                    startChild(
                        pinned([program, str(config), "--sentinel"], self.core),
                        stdout=output,
                        stderr=subprocess.STDOUT,
                    )
                )
            self.sentinelPorts.append(port)
        deadline = time.monotonic() + START_TIMEOUT
        while not self._settled(primary.port):
            if time.monotonic() > deadline:
                raise StartError(f"the sentinels did not settle; see {self.directory}")
            time.sleep(0.1)
        return self

    def _settled(self, primary: int) -> bool:
        """
        Whether every sentinel names C{primary} and knows the two others and
        the two replicas.
        """
        for port in self.sentinelPorts:
            try:
                with redisClient(port, timeout=1.0) as client:
                    named = client.execute_command(
                        "SENTINEL", "get-master-addr-by-name", SENTINEL_SERVICE
                    )
                    others = client.execute_command(
                        "SENTINEL", "sentinels", SENTINEL_SERVICE
                    )
                    replicas = client.execute_command(
                        "SENTINEL", "replicas", SENTINEL_SERVICE
                    )
            except redis.RedisError:
                return False
            if not named or int(named[1]) != primary:
                return False
            if len(others) < 2 or len(replicas) < 2:
                return False
        return True

    def primaryPort(self) -> int | None:
        """
        The primary's port, as the first sentinel that answers says.
        """
        for port in self.sentinelPorts:
            try:
                with redisClient(port, timeout=1.0) as client:
                    named = client.execute_command(
                        "SENTINEL", "get-master-addr-by-name", SENTINEL_SERVICE
                    )
            except redis.RedisError:
                continue
            if named:
                return int(named[1])
        return None

    def killPrimary(self) -> int:
        """
        Kill the primary (SIGKILL); return its port.
        """
        port = self.primaryPort()
        if port is None:
            raise StartError("no sentinel names a primary")
        self.servers[port].kill()
        return port

    def following(self, old: int, timeout: float = 30.0) -> Iterator[float]:
        """
        Wait (yielding how long to wait before looking again) until the
        sentinels name a primary other than C{old}, then start C{old} again,
        empty, as its replica.

        @raise StartError: if they never do.
        """
        deadline = time.monotonic() + timeout
        while (new := self.primaryPort()) in (None, old):
            if time.monotonic() > deadline:
                raise StartError(f"no failover within {timeout:g} s")
            yield 0.05
        assert new is not None
        server = self.servers[old]
        server.options = (
            "--repl-diskless-sync-delay",
            "0",
            "--replicaof",
            "127.0.0.1",
            str(new),
        )
        yield from server.starting()

    def alive(self) -> bool:
        """
        Whether the sentinels and the primary run.
        """
        primary = self.primaryPort()
        return (
            all(sentinel.poll() is None for sentinel in self.sentinels)
            and primary is not None
            and self.servers[primary].alive()
        )

    def stop(self) -> None:
        """
        Stop every process of it.
        """
        for sentinel in self.sentinels:
            stopChild(sentinel)
        for server in self.servers.values():
            server.stop()

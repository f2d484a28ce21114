"""
Running the scenarios: every server in turn, round after round (A B A B ...),
with the load generator checking every reply and reporting its own CPU use.
"""

from __future__ import annotations

import json
import select
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import redis

from bench.bus import usage, usageBetween
from bench.processes import (
    StartError,
    pinned,
    rssKiB,
    runBounded,
    startChild,
    stopChild,
)
from bench.scenarios import Scenario, Settings
from bench.servers import RunningServer, ServerSpec, startServer

#: A load generator using more than this share of its core is the bottleneck.
LOADGEN_CPU_LIMIT = 90.0
LOADGEN_TIMEOUT = 200.0


@dataclass
class Measurement:
    """
    One scenario run once against one server.

    @ivar value: the main figure (see L{Scenario.metric}), or C{None}.
    @ivar valid: whether the figure counts: no error, nothing missing, the
        load generator not saturated, the server alive.
    @ivar problems: why it does not count.
    @ivar saturated: whether the load generator saturating its core is the
        only problem: the figure is then a bound on what the server can do
        (it did at least this well), not a measurement of it.
    @ivar idle: whether this is the idle-connections scenario, whose figure
        is a time rather than a rate.
    @ivar p99RemoteUs: the p99 latency of the deliveries that crossed from
        one node to another (a room on several nodes only).
    @ivar raw: what the load generator reported (and, for a room on a bus,
        what Redis did: C{raw["redis"]}).
    """

    scenario: str
    server: str
    round: int
    value: float | None = None
    p50Us: float | None = None
    p99Us: float | None = None
    p99RemoteUs: float | None = None
    loadgenCpu: float | None = None
    serverCpu: float | None = None
    errors: int = 0
    missing: int = 0
    rssPerConnKiB: float | None = None
    valid: bool = False
    saturated: bool = False
    idle: bool = False
    problems: list[str] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)

    def asJSON(self) -> dict[str, Any]:
        """
        Return this measurement as JSON-ready data.
        """
        return asdict(self)


@dataclass(frozen=True)
class Placement:
    """
    Where processes run: the server's core and the load generator's core
    (C{None}: not pinned, on a one-core machine).
    """

    serverCore: int | None
    loadCore: int | None


Progress = Callable[[Measurement, Scenario], None]


def _lastJSON(output: str) -> dict[str, Any]:
    for line in reversed(output.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            data: dict[str, Any] = json.loads(line)
            return data
    raise ValueError("no JSON in the load generator's output")


def _judge(m: Measurement, scenario: Scenario, server: RunningServer) -> None:
    raw = m.raw
    m.errors = int(raw.get("errors", 0))
    m.missing = int(raw.get("missing", 0))
    m.p50Us = raw.get("p50_us") if raw.get("p50_us", -1) >= 0 else None
    m.p99Us = raw.get("p99_us") if raw.get("p99_us", -1) >= 0 else None
    remote = raw.get("p99_remote_us", -1)
    m.p99RemoteUs = remote if remote >= 0 else None
    m.loadgenCpu = raw.get("cpu_pct")
    serverCpu = raw.get("server_cpu_pct", -1)
    m.serverCpu = serverCpu if serverCpu >= 0 else None
    if m.errors:
        m.problems.append(f"{m.errors} error(s), first: {raw.get('error_sample')}")
    if m.missing:
        m.problems.append(f"{m.missing} missing deliveries")
    crossed = int(raw.get("crossed_rooms", 0))
    if crossed:
        m.problems.append(f"{crossed} line(s) or probe(s) delivered in another room")
    wrongNames = int(raw.get("wrong_names", 0))
    if wrongNames:
        m.problems.append(
            f"{wrongNames} deliveries under another name than the sender's"
        )
    saturated = m.loadgenCpu is not None and m.loadgenCpu > LOADGEN_CPU_LIMIT
    if saturated:
        m.problems.append(
            f"load generator saturated its core ({m.loadgenCpu:.0f}% CPU)"
        )
    if not raw.get("completed") and scenario.group != "idle":
        m.problems.append("nothing completed")
    if not server.alive():
        m.problems.append(f"server exited: {server.logTail()[-300:]}")
    m.valid = not m.problems
    m.saturated = saturated and len(m.problems) == 1 and m.value is not None


def targetArgs(server: RunningServer) -> list[str]:
    """
    Return the load generator's options naming C{server}: each node's port
    (client i goes to node i mod n), a mixed room's WebSocket and IRC ports,
    and each process whose CPU is the server's (the nodes and, on a bus,
    their Redis).
    """
    args: list[str] = []
    for port in server.ports:
        args += ["--port", str(port)]
    first = server.nodes[0]
    if first.wsPort is not None:
        args += ["--ws-port", str(first.wsPort)]
    if first.ircPort is not None:
        args += ["--irc-port", str(first.ircPort)]
    for pid in server.serverSidePids:
        args += ["--server-pid", str(pid)]
    return args


def _loadCommand(
    loadgen: Path, scenario: Scenario, server: RunningServer, placement: Placement
) -> list[str]:
    return pinned(
        [str(loadgen), *scenario.loadArgs, *targetArgs(server)],
        placement.loadCore,
    )


def _redisUsage(server: RunningServer) -> dict[str, Any] | None:
    """
    Return what the server's Redis has done so far (see L{usage}), or
    C{None} if it has none, or it does not answer.
    """
    if server.redis is None or not server.redis.alive():
        return None
    try:
        return usage(server.redis.port)
    except (OSError, redis.RedisError):
        return None


def measureLoad(
    loadgen: Path,
    scenario: Scenario,
    server: RunningServer,
    placement: Placement,
    round: int,
) -> Measurement:
    """
    Run the load generator once against C{server} and judge the result.
    """
    m = Measurement(scenario.name, server.spec.name, round)
    command = _loadCommand(loadgen, scenario, server, placement)
    before = _redisUsage(server)
    result = runBounded(command, LOADGEN_TIMEOUT)
    try:
        m.raw = _lastJSON(result.stdout)
    except ValueError:
        m.problems.append(
            f"load generator failed (status {result.returncode}): "
            f"{result.stderr.strip()[-300:]}"
        )
        return m
    after = _redisUsage(server)
    if before is not None and after is not None:
        # What Redis did over the whole run (joining, synchronising,
        # measuring, leaving): its CPU, and the bus's commands.
        m.raw["redis"] = usageBetween(before, after)
    m.value = float(m.raw["rate"])
    _judge(m, scenario, server)
    return m


def _readLine(child: subprocess.Popen[str], timeout: float) -> str:
    assert child.stdout is not None
    ready, _, _ = select.select([child.stdout], [], [], timeout)
    return child.stdout.readline() if ready else ""


def measureIdle(
    loadgen: Path,
    scenario: Scenario,
    server: RunningServer,
    placement: Placement,
    round: int,
) -> Measurement:
    """
    Connect many idle chat clients; time their acceptance and weigh the
    server's memory (VmRSS) before and after.
    """
    m = Measurement(scenario.name, server.spec.name, round, idle=True)
    before = rssKiB(server.pid)
    child = startChild(
        _loadCommand(loadgen, scenario, server, placement),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = _readLine(child, LOADGEN_TIMEOUT)
        after = rssKiB(server.pid) if server.alive() else before
        assert child.stdin is not None
        try:
            child.stdin.write("measured\n")
            child.stdin.flush()
        except BrokenPipeError:
            pass
        child.wait(60)
        assert child.stdout is not None
        assert child.stderr is not None
        output = child.stdout.read()
        errors = child.stderr.read()
    except subprocess.TimeoutExpired:
        output, errors, line = "", "timed out", ""
    finally:
        stopChild(child)
    try:
        accepted = json.loads(line)
        m.raw = _lastJSON(output)
    except ValueError:
        m.problems.append(f"load generator failed: {errors.strip()[-300:]}")
        return m
    m.raw["rss_before_kib"] = before
    m.raw["rss_after_kib"] = after
    count = int(accepted.get("accepted", 0))
    m.value = float(m.raw["accept_seconds"])
    if count:
        m.rssPerConnKiB = (after - before) / count
    _judge(m, scenario, server)
    if count < scenario.clients:
        m.problems.append(f"only {count} of {scenario.clients} clients accepted")
        m.valid = False
    return m


def keepLogs(server: RunningServer, m: Measurement) -> list[Path]:
    """
    Keep a copy of each of C{server}'s logs as they are after C{m}, a
    measurement with a problem other than the load generator saturating:
    the next start of that server writes its log afresh, and what the server
    said about the problem (a client it closed, and why) would be lost.
    Return the copies (C{NAME-ROUND-SCENARIO.log} beside each log).
    """
    kept = []
    for node in server.nodes:
        name = f"{node.log.stem}-round{m.round + 1}-{m.scenario}.log"
        copy = node.log.with_name(name)
        try:
            shutil.copyfile(node.log, copy)
        except OSError:
            continue
        kept.append(copy)
    return kept


def _failed(scenario: Scenario, spec: ServerSpec, round: int, why: str) -> Measurement:
    m = Measurement(scenario.name, spec.name, round)
    m.problems.append(why)
    return m


def runGroup(
    spec: ServerSpec,
    group: str,
    scenarios: Sequence[Scenario],
    round: int,
    loadgen: Path,
    placement: Placement,
    logDir: Path,
    progress: Progress,
) -> list[Measurement]:
    """
    Start C{spec} in the mode of C{group}, run C{scenarios} against it, stop it.
    """
    results: list[Measurement] = []
    server: RunningServer | None = None
    try:
        for scenario in scenarios:
            if server is not None and not server.alive():
                server.stop()
                server = None
            if server is None:
                try:
                    server = startServer(spec, group, placement.serverCore, logDir)
                except StartError as error:
                    m = _failed(scenario, spec, round, str(error))
                    results.append(m)
                    progress(m, scenario)
                    continue
            measure = measureIdle if group == "idle" else measureLoad
            m = measure(loadgen, scenario, server, placement, round)
            if not m.valid and not m.saturated:
                for copy in keepLogs(server, m):
                    m.problems.append(f"server log kept in {copy}")
            results.append(m)
            progress(m, scenario)
    finally:
        if server is not None:
            server.stop()
    return results


def runSuite(
    scenarios: Sequence[Scenario],
    servers: Sequence[ServerSpec],
    settings: Settings,
    loadgen: Path,
    placement: Placement,
    logDir: Path,
    progress: Progress,
) -> list[Measurement]:
    """
    Run every scenario on every server that serves it, round after round,
    the servers interleaved within each round (A B A B ...).

    Each round starts with the next server (A B C, then B C A, ...): the
    first server after a pause or after another group meets a colder machine
    (kernel socket caches, CPU frequency), and no server should always be it.
    """
    groups: list[str] = []
    for scenario in scenarios:
        if scenario.group not in groups:
            groups.append(scenario.group)
    results: list[Measurement] = []
    for round in range(settings.rounds):
        for group in groups:
            if group == "idle" and round >= settings.idleRounds:
                continue
            members = [s for s in scenarios if s.group == group]
            serving = [spec for spec in servers if group in spec.modes]
            first = round % len(serving) if serving else 0
            for spec in serving[first:] + serving[:first]:
                results.extend(
                    runGroup(
                        spec,
                        group,
                        members,
                        round,
                        loadgen,
                        placement,
                        logDir,
                        progress,
                    )
                )
    return results


def printProgress(m: Measurement, scenario: Scenario) -> None:
    """
    Print one line about a measurement on stderr.
    """
    value = "-" if m.value is None else f"{m.value:,.1f}"
    extra = ""
    if m.p50Us is not None and m.p99Us is not None:
        extra = f" p50 {m.p50Us:,.0f}us p99 {m.p99Us:,.0f}us"
    if m.p99RemoteUs is not None:
        extra += f" (crossing nodes: p99 {m.p99RemoteUs:,.0f}us)"
    if m.rssPerConnKiB is not None:
        extra += f" {m.rssPerConnKiB:.2f} KiB/conn"
    cpu = "" if m.loadgenCpu is None else f" loadgen {m.loadgenCpu:.0f}% CPU"
    if m.serverCpu is not None:
        cpu += f", server {m.serverCpu:.0f}%"
    status = "ok" if m.valid else "INVALID: " + "; ".join(m.problems)
    sys.stderr.write(
        f"[round {m.round + 1}] {m.scenario:<22} {m.server:<20} "
        f"{value} {scenario.metric}{extra}{cpu} [{status}]\n"
    )
    sys.stderr.flush()

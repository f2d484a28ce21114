"""
C{python -m bench}: run the benchmark suite and write its report.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.build import buildLoadGenerator, compilerVersion
from bench.bus import RedisBenchmark, benchmarkRedis
from bench.processes import cores, installSignalHandlers, stopAll
from bench.report import (
    busComparison,
    invalidCells,
    ircComparison,
    markdown,
    roomsComparison,
    summarise,
    websocketComparison,
)
from bench.runner import LOADGEN_CPU_LIMIT, Placement, printProgress, runSuite
from bench.scenarios import FULL, QUICK, allScenarios, select
from bench.servers import NGIRCD, REPO, SERVERS, available, ngircdProgram

RESULTS = Path(__file__).resolve().parent / "results"


def parseArguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """
    Parse the suite's command line.
    """
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Measure sockserve against its peers on 127.0.0.1, "
        "interleaved, and write a Markdown table and JSON to bench/results/.",
    )
    parser.add_argument(
        "--quick", action="store_true", help="few rounds, small counts (~2 minutes)"
    )
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="SCENARIO",
        help="run only matching scenarios: a name, a prefix (echo, chat-100x5) "
        "or a glob (*-1KiB); may be repeated",
    )
    parser.add_argument(
        "--servers",
        default="",
        help="comma-separated servers to measure (default: all available)",
    )
    parser.add_argument("--rounds", type=int, help="override the number of rounds")
    parser.add_argument(
        "--chat-lines",
        type=int,
        metavar="N",
        help="override the lines each chat sender sends (a longer measured "
        "window: 1000 lines make runs of tens of milliseconds)",
    )
    parser.add_argument(
        "--rooms",
        type=int,
        metavar="N",
        help="the chat in many rooms (chat-rooms-*): how many rooms (default 100)",
    )
    parser.add_argument(
        "--room-size",
        type=int,
        metavar="N",
        help="the chat in many rooms: members of each room, all sending (default 10)",
    )
    parser.add_argument(
        "--room-lines",
        type=int,
        metavar="N",
        help="the chat in many rooms: lines each member sends (default 200, "
        "--quick 60)",
    )
    parser.add_argument(
        "--list", action="store_true", help="list the scenarios and servers, and exit"
    )
    parser.add_argument(
        "--results", type=Path, default=RESULTS, help="where to write the report"
    )
    parser.add_argument(
        "--redis-requests",
        type=int,
        metavar="N",
        help="requests per redis-benchmark run, measured when a server on a "
        "bus is (default 100000, --quick 20000; 0: skip)",
    )
    return parser.parse_args(argv)


def _version(command: list[str]) -> str:
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unavailable"
    text = (result.stdout or result.stderr).strip()
    return text.splitlines()[0] if text else "unknown"


def _packageVersion(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def _cpuModel() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machineInfo(placement: Placement, coreCount: int) -> dict[str, Any]:
    """
    Return what the report says about the machine and the software measured.
    """
    return {
        "cpu": _cpuModel(),
        "cores": coreCount,
        "server_core": placement.serverCore,
        "loadgen_core": placement.loadCore,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "twisted": _packageVersion("twisted"),
        "sockserve": _packageVersion("sockserve"),
        "uvloop": _packageVersion("uvloop"),
        "websockets": _packageVersion("websockets"),
        "ncat": _version(["ncat", "--version"]),
        "redis": _version(["redis-server", "--version"]),
        "ngircd": _version([ngircdProgram() or "ngircd", "--version"]),
        "cc": compilerVersion(),
        "git": _version(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"]),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """
    Run the suite; return the exit status (1 if any figure is invalid).
    """
    args = parseArguments(argv)
    settings = QUICK if args.quick else FULL
    if args.rounds:
        settings = type(settings)(**{**settings.__dict__, "rounds": args.rounds})
    # Each override: its setting, its value, and the least it may be.
    overrides = (
        ("--chat-lines", "chatLines", args.chat_lines, 1),
        ("--rooms", "rooms", args.rooms, 1),
        ("--room-size", "roomSize", args.room_size, 2),
        ("--room-lines", "roomLines", args.room_lines, 1),
    )
    given: dict[str, int] = {}
    for option, field, value, least in overrides:
        if value is None:
            continue
        if value < least:
            sys.stderr.write(f"{option} must be at least {least}\n")
            return 2
        given[field] = value
    settings = type(settings)(**{**settings.__dict__, **given})
    scenarios = select(allScenarios(settings), args.only)
    wanted = [n for n in args.servers.split(",") if n]
    unknown = set(wanted) - {s.name for s in SERVERS}
    if unknown:
        sys.stderr.write(f"unknown server(s): {', '.join(sorted(unknown))}\n")
        return 2
    servers = [s for s in SERVERS if not wanted or s.name in wanted]
    if args.list:
        for scenario in allScenarios(settings):
            print(f"{scenario.name:<18} {scenario.description}")
        for spec in SERVERS:
            why = available(spec)
            print(
                f"server {spec.name:<18} {spec.description}{f' ({why})' if why else ''}"
            )
        return 0
    if not scenarios:
        sys.stderr.write(f"no scenario matches {args.only}; see --list\n")
        return 2
    for spec in list(servers):
        why = available(spec)
        if why is not None:
            sys.stderr.write(f"skipping {spec.name}: {why}\n")
            servers.remove(spec)
    groups = {s.group for s in scenarios}
    servers = [s for s in servers if groups & set(s.modes)]

    installSignalHandlers()
    available_cores = cores()
    if len(available_cores) >= 2:
        placement = Placement(available_cores[0], available_cores[1])
        # The harness itself stays off the server's core.
        os.sched_setaffinity(0, {available_cores[1]})
    else:
        placement = Placement(None, None)
        sys.stderr.write("one core only: server and load generator are not pinned\n")
    loadgen = buildLoadGenerator()
    results = args.results
    logDir = results / "logs"
    info = machineInfo(placement, len(available_cores))
    command = "./dev bench " + " ".join(sys.argv[1:] if argv is None else argv)
    started = time.monotonic()
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    sys.stderr.write(
        f"bench: {settings.name} run, {settings.rounds} round(s), "
        f"{len(scenarios)} scenario(s), servers: {', '.join(s.name for s in servers)}\n"
    )
    benchmarks: list[RedisBenchmark] = []
    try:
        measurements = runSuite(
            scenarios, servers, settings, loadgen, placement, logDir, printProgress
        )
        requests = args.redis_requests
        if requests is None:
            requests = 20_000 if args.quick else 100_000
        if requests > 0 and any(s.bus for s in servers):
            sys.stderr.write("bench: redis-benchmark, for the bus's commands\n")
            benchmarks = benchmarkRedis(
                logDir / "redis-benchmark",
                placement.serverCore,
                placement.loadCore,
                requests,
            )
    finally:
        stopAll()
    elapsed = time.monotonic() - started
    cells = summarise(measurements)
    header = (
        f"## sockserve benchmark ({settings.name} run, {stamp})\n\n"
        f"Command: `{command.strip()}`; {settings.rounds} round(s), servers "
        f"interleaved in each round; {elapsed / 60:.1f} minutes.\n"
        f"Machine: {info['cpu']}, {info['cores']} cores; server pinned to core "
        f"{info['server_core']}, load generator to core {info['loadgen_core']}; "
        f"Linux {info['kernel']}, Python {info['python']}, Twisted "
        f"{info['twisted']}, uvloop {info['uvloop']}, websockets "
        f"{info['websockets']}, {info['ncat']}, {info['redis']}"
        f"{', ' + info['ngircd'] if any(s.name == NGIRCD for s in servers) else ''}.\n"
        f"A figure is invalid if the load generator saw an error, a wrong reply, "
        f"a missing delivery, or used over {LOADGEN_CPU_LIMIT:.0f}% of its core. "
        f"Server CPU is that of every process serving (a chat on a bus: its "
        f"nodes and its Redis)."
    )
    report = markdown(scenarios, servers, cells, header, benchmarks)
    results.mkdir(parents=True, exist_ok=True)
    data = {
        "command": command.strip(),
        "settings": settings.__dict__,
        "machine": info,
        "elapsed_seconds": elapsed,
        "scenarios": [s.__dict__ for s in scenarios],
        "servers": [{"name": s.name, "description": s.description} for s in servers],
        "summary": [cell.asJSON() for cell in cells.values()],
        "websocket": websocketComparison(scenarios, servers, cells),
        "bus": busComparison(scenarios, servers, cells),
        "rooms": roomsComparison(scenarios, servers, cells),
        "irc": ircComparison(scenarios, servers, cells),
        "redis_benchmark": [b.asJSON() for b in benchmarks],
        "measurements": [m.asJSON() for m in measurements],
    }
    for name in (f"bench-{stamp}", "latest"):
        (results / f"{name}.md").write_text(report)
        (results / f"{name}.json").write_text(json.dumps(data, indent=2) + "\n")
    print(report)
    bad = invalidCells(cells)
    sys.stderr.write(
        f"bench: wrote {results / f'bench-{stamp}.md'} and .json "
        f"({len(bad)} figure(s) with invalid rounds)\n"
    )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

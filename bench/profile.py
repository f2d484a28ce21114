"""
C{python -m bench.profile}: where sockserve spends its time under load.

Starts sockserve pinned to the server core, samples it with py-spy while the
load generator drives it from the other core, and prints the functions with
the most samples (own time, and time including callees). The folded stacks are
kept in C{bench/results/profile-SERVER-MODE.txt} for a flame graph.

A room on a bus (C{--server sockserve-bus}, C{sockserve-bus-2nodes}) runs
with its private Redis, the load spread over its nodes; the first node is
the one sampled. C{chat-irc} is the same room of IRC clients (C{--irc}), C{chat-ws} of
WebSocket clients (C{--web}), and C{chat-mixed} of TCP, WebSocket and IRC
clients in turn.
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from bench.build import buildLoadGenerator
from bench.processes import (
    cores,
    installSignalHandlers,
    pinned,
    startChild,
    stopAll,
    stopChild,
)
from bench.runner import targetArgs
from bench.servers import (
    IRC_CHANNEL,
    VENV_BIN,
    WEBSOCKET_PATH,
    serverNamed,
    startServer,
)

RESULTS = Path(__file__).resolve().parent / "results"
LOADS = {
    "echo": ["echo", "--conns", "10", "--size", "64", "--warmup", "0"],
    "oneshot": ["oneshot", "--conns", "50", "--size", "64", "--warmup", "0"],
    # Long runs, paced, so that the profile shows the steady state rather
    # than 100 clients joining and leaving.
    "chat": [
        "chat",
        "--clients",
        "100",
        "--senders",
        "5",
        "--lines",
        "20000",
        "--window",
        "256",
    ],
}
LOADS["chat-irc"] = [*LOADS["chat"], "--irc", IRC_CHANNEL]
LOADS["chat-ws"] = [*LOADS["chat"], "--ws", WEBSOCKET_PATH]
LOADS["chat-mixed"] = [*LOADS["chat"], "--mix", "--ws", "/ws", "--irc", IRC_CHANNEL]


def fold(path: Path) -> tuple[collections.Counter[str], collections.Counter[str], int]:
    """
    Read py-spy's folded stacks: return samples per function as the innermost
    frame (own time), per function anywhere on the stack (inclusive), and the
    total.
    """
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text("utf-8", "replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples = int(count)
        frames = [f for f in stack.split(";") if " (" in f]
        if not frames:
            continue
        total += samples
        own[_short(frames[-1])] += samples
        for frame in {_short(f) for f in frames}:
            inclusive[frame] += samples
    return own, inclusive, total


def _short(frame: str) -> str:
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    where = re.sub(r".*/site-packages/", "", where)
    where = re.sub(r".*/lib/python3\.\d+/", "", where)
    where = re.sub(r".*/work/[^/]+/", "", where)
    return f"{name} ({where})"


def report(path: Path, top: int) -> str:
    """
    Return the top functions of a folded-stacks file, as text.
    """
    own, inclusive, total = fold(path)
    lines = [f"{total} samples (busy time only; idle waits in epoll excluded)"]
    packages: collections.Counter[str] = collections.Counter()
    for name, samples in own.items():
        where = name.rpartition(" (")[2]
        package = where.split("/", 1)[0] if "/" in where else "python stdlib"
        packages[package] += samples
    lines.append(
        "own time by package: "
        + ", ".join(
            f"{package} {100.0 * samples / max(total, 1):.1f}%"
            for package, samples in packages.most_common()
        )
    )
    for title, counter in (("own time", own), ("inclusive time", inclusive)):
        lines.append(f"\ntop {top} by {title}:")
        for name, samples in counter.most_common(top):
            lines.append(f"  {100.0 * samples / max(total, 1):5.1f}%  {name}")
    return "\n".join(lines)


def profile(mode: str, seconds: int, top: int, serverName: str = "sockserve") -> str:
    """
    Profile a server (sockserve unless told) serving C{mode} for C{seconds};
    return the report.
    """
    pyspy = shutil.which("py-spy", path=f"{VENV_BIN}:/usr/local/bin:/usr/bin")
    if pyspy is None:
        raise SystemExit(
            "py-spy is not installed: pip install -r bench/requirements.txt"
        )
    available = cores()
    serverCore = available[0] if len(available) > 1 else None
    loadCore = available[1] if len(available) > 1 else None
    loadgen = buildLoadGenerator()
    RESULTS.mkdir(parents=True, exist_ok=True)
    output = RESULTS / f"profile-{serverName}-{mode}.txt"
    server = startServer(serverNamed(serverName), mode, serverCore, RESULTS / "logs")
    try:
        sampler = startChild(
            pinned(
                [
                    pyspy,
                    "record",
                    "--pid",
                    str(server.pid),
                    "--duration",
                    str(seconds),
                    "--rate",
                    "200",
                    "--format",
                    "raw",
                    "--function",
                    "--nonblocking",
                    "--output",
                    str(output),
                ],
                loadCore,
            ),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        load = list(LOADS[mode])
        if not mode.startswith("chat"):
            load += ["--duration", str(seconds * 1000)]
        deadline = time.monotonic() + seconds + 30
        for _ in range(1000):  # chat runs are short: repeat them
            subprocess.run(
                pinned([str(loadgen), *load, *targetArgs(server)], loadCore),
                capture_output=True,
                timeout=seconds + 60,
                check=False,
            )
            if sampler.poll() is not None or time.monotonic() > deadline:
                break
        sampler.wait(timeout=max(1.0, deadline - time.monotonic()))
        stopChild(sampler)
    finally:
        server.stop()
    return f"{serverName} --mode {mode}, {seconds}s under load\n" + report(output, top)


def main(argv: Sequence[str] | None = None) -> int:
    """
    Profile each mode asked for and print the reports.
    """
    parser = argparse.ArgumentParser(prog="python -m bench.profile")
    parser.add_argument(
        "modes", nargs="*", default=["echo", "chat"], choices=sorted(LOADS)
    )
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument(
        "--server",
        default="sockserve",
        help="the server to profile (a Python one: sockserve, sockserve-bus, "
        "sockserve-bus-2nodes, twisted-lines, ...)",
    )
    parser.add_argument("--top", type=int, default=20)
    args = parser.parse_args(argv)
    installSignalHandlers()
    try:
        for mode in args.modes:
            text = profile(mode, args.seconds, args.top, args.server)
            (RESULTS / f"profile-{args.server}-{mode}-top.txt").write_text(text + "\n")
            print(text + "\n")
    finally:
        stopAll()
    return 0


if __name__ == "__main__":
    sys.exit(main())

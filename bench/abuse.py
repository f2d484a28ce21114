"""
What one flooding member costs the others in a chat room: the sender pays.

    python -m bench.abuse [--only room-flood|cross-node-flood] [--sizes 10,100]
                          [--rounds 3] [--seconds 5] [--quick] ...

Two scenarios, both by default: C{room-flood}, described here, and
C{cross-node-flood}, a flood on one node of a room on a bus, described in
L{bench.crossflood}.

C{room-flood}: for each room size N, two variants run in every round, each
against a fresh server (C{twistd -n sockserve --port 0 --quiet}) over
loopback:

    - B{A, calm}: N members. N-1 I{readers} read as fast as they can (big
      asyncio reads) and never send; one I{prober} sends a line
      C{p SEQ MONOTONIC_NS} every 20 ms and reads (and discards) what it
      receives.
    - B{B, flooded}: the same N members, plus a I{flooder} that joins and then
      sends C{a} lines in 64 KiB writes as fast as the server takes them, and
      never reads.

Each reader times every prober line it receives (the clients share one
process, so one monotonic clock) and checks that it got every one, in order.

How to read the report (medians over the rounds, min-max in brackets):

    - B{p50/p99 ms}: latency of the prober's lines to the readers, from the
      prober's write to the reader's read. It includes the driver's own delay
      in reading: all clients run in one Python process, which is busy
      reading the flood in variant B.
    - B{lost}: readers (or the prober) the server disconnected, or readers
      that missed a prober line or got one out of order, summed over the
      rounds. It must be 0: the server slows the flooder down (it stops
      reading it while members that read are behind, and at C{--flood-limit}
      bytes of output a second) instead of dropping those who read.
    - B{flooder}: whether it was still connected at the end (C{kept 3/3}) or
      the server disconnected it, and the MB/s of its input the server read
      (what its writes completed, less what the kernel still held for the
      server at the end of the window).
    - B{readers MB/s}: what all readers received together during the window.
    - B{amplification}: bytes of the flooder's lines the readers received
      (each C{<name> a} line with its CR LF) over bytes the server read from
      the flooder, both when every reader had the last prober line. Each
      2-byte line reaches each of the N-1 readers as a line of 5 bytes more
      than the flooder's name (13 bytes as C{<guest12> a}), so the figure is
      (N-1) x 6.5 for that name once every line the server read has reached
      every reader, and less
      while the server still holds lines it read: the flood limit bounds
      the rate, not this ratio.
    - B{server CPU}: the server's CPU seconds per second of the window
      (utime + stime from /proc/PID/stat); B{peak RSS}: its VmHWM at the end.
    - B{driver CPU}: this process's CPU over the window; near 100%, the
      readers' own speed limited what they received.

Prints Markdown tables and writes them, with the raw figures as JSON, to
C{bench/results/abuse-DATE.md} and C{.json}. Exits 1 if any member was lost
in any round, or dropped or missing a typed line in the cross-node flood.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import crossflood
from bench.clients import (
    cpuTicks,
    peakRss,
    percentile,
    spread,
    stillConnected,
    unreadBy,
    unsentBy,
    waitWritable,
    welcome,
    withoutNaN,
)
from bench.soak import startServer

RESULTS = Path(__file__).resolve().parent / "results"

PROBE_INTERVAL = 0.02
FLOOD_CHUNK = b"a\n" * 32768  # 64 KiB a write
FLOOD_LINE_END = b"> a\r\n"
PROBE_MARK = b"> p "
READ_SIZE = 1024 * 1024
JOIN_TIMEOUT = 30.0
SYNC_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0


@dataclass
class Member:
    """
    One member of the room that reads: a reader, or the prober.

    @ivar probes: the sequence numbers of the prober lines received, in order.
    @ivar latencies: nanoseconds from each prober line's write to its read.
    @ivar floodLines: C{<flooder> a} lines received.
    @ivar dropped: the server closed the connection before the driver did.
    """

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    name: str = ""
    received: int = 0
    probes: list[int] = field(default_factory=list)
    latencies: list[int] = field(default_factory=list)
    floodLines: int = 0
    dropped: bool = False
    closing: bool = False
    task: asyncio.Task[None] | None = None


@dataclass
class Flooder:
    """
    The member that floods: a raw non-blocking socket that never reads.

    @ivar written: bytes its writes completed (taken by its kernel).
    @ivar error: why a write failed, if the server disconnected it.
    """

    sock: socket.socket
    name: str = ""
    written: int = 0
    error: str | None = None


@dataclass
class Usage:
    """
    A snapshot of the server's and the driver's resources.
    """

    at: float
    serverTicks: int
    driverSeconds: float

    @classmethod
    def take(cls, pid: int) -> Usage:
        """
        Read the server's CPU ticks and this process's CPU time now.
        """
        return cls(time.monotonic(), cpuTicks(pid), time.process_time())


def consume(member: Member, data: bytes, now: int) -> None:
    """
    Account for C{data}, whole lines that C{member} read at C{now}
    (C{time.monotonic_ns}): count the flood lines, time the prober's.
    """
    member.floodLines += data.count(FLOOD_LINE_END)
    at = data.find(PROBE_MARK)
    while at >= 0:
        end = data.index(b"\r\n", at)
        seq, stamp = data[at + len(PROBE_MARK) : end].split()
        member.probes.append(int(seq))
        member.latencies.append(now - int(stamp))
        at = data.find(PROBE_MARK, end)


async def readMember(member: Member) -> None:
    """
    Read everything C{member} receives until the connection closes; note
    whether the server closed it.
    """
    tail = b""
    try:
        while True:
            chunk = await member.reader.read(READ_SIZE)
            if not chunk:
                break
            now = time.monotonic_ns()
            member.received += len(chunk)
            data = tail + chunk if tail else chunk
            cut = data.rfind(b"\n") + 1
            tail = data[cut:]
            if cut:
                consume(member, data[:cut], now)
    except OSError:
        pass
    if not member.closing:
        member.dropped = True


async def greeting(read: Callable[[], Any], limit: int = 64) -> str:
    """
    Read lines with C{read} until the welcome (C{* you are NAME ...}, see
    L{bench.clients.GREETING}); return NAME.
    """
    buffer = b""
    for _ in range(limit):
        chunk: bytes = await read()
        if not chunk:
            break
        buffer += chunk
        greeted = welcome(buffer)
        if greeted is not None:
            return greeted.name
    raise RuntimeError(f"no greeting: {buffer[-200:]!r}")


async def joinMember(port: int, members: list[Member]) -> Member:
    """
    Connect a member, wait for its greeting and start reading for it.
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=READ_SIZE)
    member = Member(reader, writer)
    members.append(member)
    member.name = await greeting(reader.readline)
    member.task = asyncio.create_task(readMember(member))
    return member


async def joinFlooder(port: int, flooders: list[Flooder]) -> Flooder:
    """
    Connect the flooder and wait for its greeting (the last it reads).
    """
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    flooder = Flooder(sock)
    flooders.append(flooder)
    sock.setblocking(False)
    await loop.sock_connect(sock, ("127.0.0.1", port))
    # Read its greeting a byte at a time, so that nothing after it is read.
    flooder.name = await greeting(lambda: loop.sock_recv(sock, 1), limit=4096)
    return flooder


async def flood(flooder: Flooder, deadline: float) -> None:
    """
    Send C{a} lines in 64 KiB writes until C{deadline} (C{time.monotonic}),
    counting the bytes each write completed; stop if the server
    disconnects the flooder.
    """
    view = memoryview(FLOOD_CHUNK)
    offset = 0
    while (left := deadline - time.monotonic()) > 0:
        try:
            sent = flooder.sock.send(view[offset:])
        except BlockingIOError:
            await waitWritable(flooder.sock, left)
            continue
        except OSError as error:
            flooder.error = f"{type(error).__name__}: {error}"
            return
        flooder.written += sent
        offset = (offset + sent) % len(FLOOD_CHUNK)
        await asyncio.sleep(0)  # the readers share the loop


async def probe(prober: Member, deadline: float) -> int:
    """
    Send C{p SEQ NOW} every 20 ms until C{deadline}; return how many lines
    were sent.
    """
    start = time.monotonic()
    seq = 0
    while (due := start + seq * PROBE_INTERVAL) < deadline:
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        prober.writer.write(b"p %d %d\n" % (seq, time.monotonic_ns()))
        seq += 1
    await prober.writer.drain()
    return seq


async def synchronise(readers: list[Member], probes: int) -> bool:
    """
    Wait (bounded) until every reader still connected has the last prober
    line; return whether they all got it in time.
    """
    limit = time.monotonic() + SYNC_TIMEOUT
    while time.monotonic() < limit:
        if all(r.dropped or (r.probes and r.probes[-1] >= probes - 1) for r in readers):
            return True
        await asyncio.sleep(0.01)
    return False


async def runClients(
    port: int, pid: int, size: int, flooded: bool, seconds: float
) -> dict[str, Any]:
    """
    Drive one variant against the server on C{port} (process C{pid}):
    C{size} members, and a flooder if C{flooded}; return its figures.
    """
    members: list[Member] = []
    flooders: list[Flooder] = []
    try:
        readers = await asyncio.wait_for(
            asyncio.gather(*(joinMember(port, members) for _ in range(size - 1))),
            JOIN_TIMEOUT,
        )
        prober = await asyncio.wait_for(joinMember(port, members), JOIN_TIMEOUT)
        flooder = None
        if flooded:
            flooder = await asyncio.wait_for(joinFlooder(port, flooders), JOIN_TIMEOUT)
        before = Usage.take(pid)
        deadline = before.at + seconds
        probing = asyncio.create_task(probe(prober, deadline))
        if flooder is not None:
            await flood(flooder, deadline)
        probes = await probing
        after = Usage.take(pid)
        window = after.at - before.at
        receivedInWindow = sum(r.received for r in readers)
        inWindow = 0
        if flooder is not None:
            flooderPort = flooder.sock.getsockname()[1]
            inWindow = (
                flooder.written - unsentBy(flooder.sock) - unreadBy(port, flooderPort)
            )
        synchronised = await synchronise(readers, probes)
        result: dict[str, Any] = {
            "size": size,
            "flooded": flooded,
            "window_s": window,
            "probes_sent": probes,
            "synchronised": synchronised,
            "server_cpu_per_s": (after.serverTicks - before.serverTicks)
            / os.sysconf("SC_CLK_TCK")
            / window,
            "driver_cpu_per_s": (after.driverSeconds - before.driverSeconds) / window,
            "server_peak_rss_kib": peakRss(pid),
            "readers_mb_per_s": receivedInWindow / window / 1e6,
        }
        expected = list(range(probes))
        dropped = [r for r in (*readers, prober) if r.dropped]
        incomplete = [r for r in readers if not r.dropped and r.probes != expected]
        latencies = [value for r in readers for value in r.latencies]
        result.update(
            lost=len(dropped) + len(incomplete),
            dropped=len(dropped),
            incomplete=len(incomplete),
            p50_ms=percentile(latencies, 0.50),
            p99_ms=percentile(latencies, 0.99),
            max_ms=percentile(latencies, 1.0),
        )
        if flooder is not None:
            flooderPort = flooder.sock.getsockname()[1]
            connected = flooder.error is None and stillConnected(flooder.sock)
            gotIn = (
                flooder.written - unsentBy(flooder.sock) - unreadBy(port, flooderPort)
                if connected
                else flooder.written
            )
            lineLength = len(b"<" + flooder.name.encode() + FLOOD_LINE_END)
            floodBytes = sum(r.floodLines for r in readers) * lineLength
            result.update(
                flooder_connected=connected,
                flooder_error=flooder.error,
                flooder_written_bytes=flooder.written,
                flooder_in_window_bytes=inWindow,
                flooder_in_mb_per_s=inWindow / window / 1e6,
                flooder_in_at_sync_bytes=gotIn,
                reader_flood_bytes=floodBytes,
                amplification=floodBytes / gotIn if gotIn > 0 else math.nan,
            )
        return result
    finally:
        for member in members:
            member.closing = True
            member.writer.close()
        for flooder in flooders:
            flooder.sock.close()
        tasks = [m.task for m in members if m.task is not None]
        await asyncio.gather(*tasks, return_exceptions=True)


def stopServer(server: subprocess.Popen[bytes]) -> None:
    """
    Stop C{server} with SIGTERM, and kill it if it has not exited in time.
    """
    if server.poll() is None:
        server.send_signal(signal.SIGTERM)
    try:
        server.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def runVariant(
    size: int, flooded: bool, seconds: float, logPath: Path
) -> dict[str, Any]:
    """
    Run one variant against a fresh server, stopped at the end whatever
    happens.
    """
    server, port = startServer(size, logPath, "--quiet")
    try:
        return asyncio.run(runClients(port, server.pid, size, flooded, seconds))
    finally:
        stopServer(server)


def summarise(runs: list[dict[str, Any]], sizes: Sequence[int]) -> list[list[str]]:
    """
    Return the table's rows: one per size and variant.
    """
    rows = []
    for size in sizes:
        for flooded in (False, True):
            mine = [r for r in runs if r["size"] == size and r["flooded"] == flooded]
            if not mine:
                continue
            row = [
                str(size),
                "B: flooder" if flooded else "A: calm",
                spread([r["p50_ms"] for r in mine]),
                spread([r["p99_ms"] for r in mine]),
                str(sum(r["lost"] for r in mine)),
            ]
            if flooded:
                kept = sum(r["flooder_connected"] for r in mine)
                row += [
                    f"kept {kept}/{len(mine)}",
                    spread([r["flooder_in_mb_per_s"] for r in mine], "{:,.2f}"),
                    spread([r["amplification"] for r in mine], "{:,.0f}"),
                ]
            else:
                row += ["-", "-", "-"]
            row += [
                spread([r["readers_mb_per_s"] for r in mine], "{:,.2f}"),
                spread([r["server_cpu_per_s"] for r in mine], "{:.2f}"),
                spread([r["server_peak_rss_kib"] / 1024 for r in mine]),
                spread([100 * r["driver_cpu_per_s"] for r in mine], "{:.0f}"),
            ]
            rows.append(row)
    return rows


HEADER = [
    "room",
    "variant",
    "p50 ms",
    "p99 ms",
    "lost",
    "flooder",
    "flooder in MB/s",
    "amplification",
    "readers MB/s",
    "server CPU s/s",
    "peak RSS MiB",
    "driver CPU %",
]


def markdown(rows: list[list[str]]) -> str:
    """
    Format C{rows} under L{HEADER} as a Markdown table.
    """
    lines = ["| " + " | ".join(HEADER) + " |"]
    lines.append("|" + "|".join("---" for _ in HEADER) + "|")
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


SCENARIOS = ("room-flood", "cross-node-flood")


def parseArguments(argv: Sequence[str] | None) -> argparse.Namespace:
    """
    Parse the command line.
    """
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--only",
        action="append",
        choices=SCENARIOS,
        help="run only this scenario (repeatable; default: both): room-flood, "
        "the one-node room above; cross-node-flood, a flood on one node of a "
        "bus (bench/crossflood.py)",
    )
    parser.add_argument("--sizes", default="10,100", help="room sizes, by commas")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0, help="per variant")
    parser.add_argument(
        "--cross-seconds",
        type=float,
        default=20.0,
        help="cross-node-flood: seconds of flood and typing per variant",
    )
    parser.add_argument(
        "--settle",
        type=float,
        default=30.0,
        help="cross-node-flood: at most this long for the last lines to "
        "arrive, and as long again once the slow reader reads fast",
    )
    parser.add_argument(
        "--cross-variants",
        default=",".join(crossflood.VARIANTS),
        help="cross-node-flood: variants, by commas",
    )
    parser.add_argument(
        "--node-option",
        action="append",
        default=[],
        metavar="OPTION",
        help="cross-node-flood: an option added to every sockserve process "
        "(repeatable; e.g. --node-option=--bus-retention=1000)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="1 round of 2 seconds a variant (cross-node-flood: 5 seconds)",
    )
    args = parser.parse_args(argv)
    args.only = args.only or list(SCENARIOS)
    args.sizes = [int(size) for size in args.sizes.split(",")]
    if any(size < 2 for size in args.sizes):
        parser.error("--sizes: a room needs at least 2 members")
    args.cross_variants = [v for v in args.cross_variants.split(",") if v]
    unknown = set(args.cross_variants) - set(crossflood.VARIANTS)
    if unknown or not args.cross_variants:
        parser.error(
            f"--cross-variants: one or more of {', '.join(crossflood.VARIANTS)}"
        )
    if args.quick:
        args.rounds, args.seconds, args.cross_seconds = 1, 2.0, 5.0
    if args.rounds < 1 or not all(
        0 < value <= 600 for value in (args.seconds, args.cross_seconds, args.settle)
    ):
        parser.error(
            "--rounds must be 1 or more; --seconds, --cross-seconds and "
            "--settle within (0, 600]"
        )
    return args


def runRoomFlood(args: argparse.Namespace, logDirectory: Path) -> list[dict[str, Any]]:
    """
    Run every round, size and variant of the one-node room flood.
    """
    runs: list[dict[str, Any]] = []
    for index in range(args.rounds):
        # Alternate which variant goes first, so that drift favours neither.
        order = (False, True) if index % 2 == 0 else (True, False)
        for size in args.sizes:
            for flooded in order:
                variant = "B" if flooded else "A"
                tag = f"{size}-{variant}-{index + 1}"
                result = runVariant(
                    size, flooded, args.seconds, logDirectory / f"server-{tag}.log"
                )
                result["round"] = index + 1
                runs.append(result)
                shown = {
                    key: round(value, 2) if isinstance(value, float) else value
                    for key, value in result.items()
                }
                print(f"round {index + 1} room {size} {variant}: {shown}", flush=True)
    return runs


def runCrossNodeFlood(
    args: argparse.Namespace, logDirectory: Path
) -> list[dict[str, Any]]:
    """
    Run every round and variant of the cross-node flood.
    """
    runs: list[dict[str, Any]] = []
    for index in range(args.rounds):
        order = list(args.cross_variants)
        if index % 2:
            order.reverse()
        for variant in order:
            result = crossflood.runVariant(
                variant,
                args.cross_seconds,
                args.settle,
                args.node_option,
                logDirectory / f"cross-{variant}-{index + 1}",
            )
            result["round"] = index + 1
            runs.append(result)
            print(
                f"round {index + 1} {crossflood.SCENARIO} {variant}: "
                f"{crossflood.shortLine(result)}",
                flush=True,
            )
    return runs


def main(argv: list[str] | None = None) -> int:
    """
    Run the scenarios chosen; report; return the exit status.
    """
    args = parseArguments(argv)
    # SIGTERM unwinds like Ctrl-C: every client is closed, every server stopped.
    signal.signal(signal.SIGTERM, lambda number, frame: sys.exit(128 + number))
    logDirectory = Path(tempfile.mkdtemp(prefix="sockserve-abuse-"))
    started = datetime.datetime.now()
    runs: list[dict[str, Any]] = []
    crossRuns: list[dict[str, Any]] = []
    if "room-flood" in args.only:
        runs = runRoomFlood(args, logDirectory)
    if crossflood.SCENARIO in args.only:
        crossRuns = runCrossNodeFlood(args, logDirectory)
    lost = sum(r["lost"] for r in runs)
    typedMissing = sum(r["typed_missing"] for r in crossRuns)
    crossDropped = sum(len(r["dropped"]) for r in crossRuns)
    given = sys.argv[1:] if argv is None else argv
    command = " ".join(["python -m bench.abuse", *given])
    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    report = (
        f"# sockserve chat under a flood, {started:%Y-%m-%d %H:%M:%S}\n\n"
        f"`{command}`: {args.rounds} round(s), {os.cpu_count()} cores (shared "
        f"with whatever else runs: nothing is pinned), load average at the "
        f"end {load}.\n"
    )
    if runs:
        report += (
            f"\n## room-flood: one node, {args.seconds:g} s a variant\n\n"
            "Medians over the rounds (min-max); lost is summed over the "
            "rounds.\n\n" + markdown(summarise(runs, args.sizes))
        )
    if crossRuns:
        options = " ".join(args.node_option) or "none"
        report += (
            f"\n## cross-node-flood: a flood on node A, {args.cross_seconds:g} s "
            f"a variant\n\n"
            f"Flooder (100-byte lines, as fast as the server takes them), "
            f"typist ({crossflood.TYPE_RATE:g} lines/s) and a-reader on node A; "
            f"b-fast and b-slow (128 KiB every 0.25 s) on node B (the same "
            f"node in one-node). Settling at most {args.settle:g} s, then as "
            f"long again with b-slow reading fast (its lines then are late). "
            f"Node options added: {options}. Medians over the rounds "
            f"(min-max).\n\n" + crossflood.report(crossRuns, args.cross_variants)
        )
        report += (
            f"\n**MISSING {typedMissing} typed lines** over every cross-node run.\n"
            if typedMissing
            else "\n**ALL typed lines delivered** in every cross-node run.\n"
        )
    print()
    print(report)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = RESULTS / f"abuse-{started:%Y%m%d-%H%M%S}"
    stem.with_suffix(".md").write_text(report)
    summary = {
        "started": started.isoformat(),
        "command": command,
        "scenarios": args.only,
        "rounds": args.rounds,
        "seconds": args.seconds,
        "sizes": args.sizes,
        "runs": runs,
        "lost": lost,
        "cross_seconds": args.cross_seconds,
        "settle": args.settle,
        "cross_variants": args.cross_variants,
        "node_options": args.node_option,
        "cross_runs": crossRuns,
        "typed_missing": typedMissing,
        "cross_dropped": crossDropped,
        "ok": not (lost or typedMissing or crossDropped),
        "server_logs": str(logDirectory),
    }
    stem.with_suffix(".json").write_text(json.dumps(withoutNaN(summary), indent=2))
    print(f"written to {stem}.md and .json", flush=True)
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())

"""
What one flooding member costs the others in a chat room: the sender pays.

    python -m bench.abuse [--sizes 10,100] [--rounds 3] [--seconds 5] [--quick]

For each room size N, two variants run in every round, each against a fresh
server (C{twistd -n sockserve --port 0 --quiet}) over loopback:

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
      2-byte line reaches each of the N-1 readers as a 21-byte line (with a
      five-digit port in the flooder's name), so the figure is (N-1) x 10.5
      once every line the server read has reached every reader, and less
      while the server still holds lines it read: the flood limit bounds
      the rate, not this ratio.
    - B{server CPU}: the server's CPU seconds per second of the window
      (utime + stime from /proc/PID/stat); B{peak RSS}: its VmHWM at the end.
    - B{driver CPU}: this process's CPU over the window; near 100%, the
      readers' own speed limited what they received.

Prints a Markdown table and writes it, with the raw figures as JSON, to
C{bench/results/abuse-DATE.md} and C{.json}. Exits 1 if any member was lost
in any round.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import fcntl
import json
import math
import os
import re
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.soak import startServer

GREETING = re.compile(rb"\* you are ([^;\r\n]+);")
RESULTS = Path(__file__).resolve().parent / "results"

PROBE_INTERVAL = 0.02
FLOOD_CHUNK = b"a\n" * 32768  # 64 KiB a write
FLOOD_LINE_END = b"> a\r\n"
PROBE_MARK = b"> p "
READ_SIZE = 1024 * 1024
JOIN_TIMEOUT = 30.0
SYNC_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
TCP_ESTABLISHED = 1


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


def cpuTicks(pid: int) -> int:
    """
    Return process C{pid}'s user and system CPU time, in clock ticks.
    """
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    # utime and stime are fields 14 and 15; fields[0] here is field 3.
    return int(fields[11]) + int(fields[12])


def peakRss(pid: int) -> int:
    """
    Return the peak resident set size of process C{pid}, in KiB.
    """
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmHWM for {pid}")


def unsentBy(sock: socket.socket) -> int:
    """
    Return the bytes C{sock}'s kernel still holds, not yet taken by the peer.
    """
    packed = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, struct.pack("i", 0))
    count: int = struct.unpack("i", packed)[0]
    return count


def unreadBy(serverPort: int, clientPort: int) -> int:
    """
    Return the bytes waiting in the server's kernel on its connection from
    C{clientPort}, which the server has not read (from /proc/net/tcp).
    """
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote = fields[1], fields[2]
        if (
            int(local.rsplit(":", 1)[1], 16) == serverPort
            and int(remote.rsplit(":", 1)[1], 16) == clientPort
        ):
            return int(fields[4].split(":")[1], 16)
    return 0


def stillConnected(sock: socket.socket) -> bool:
    """
    Tell whether C{sock}'s TCP connection is still established.
    """
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)
    except OSError:
        return False
    return info[0] == TCP_ESTABLISHED


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
    Read lines with C{read} until the C{* you are NAME;} line; return NAME.
    """
    buffer = b""
    for _ in range(limit):
        chunk: bytes = await read()
        if not chunk:
            break
        buffer += chunk
        match = GREETING.search(buffer)
        if match:
            return match.group(1).decode()
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


async def waitWritable(sock: socket.socket, timeout: float) -> bool:
    """
    Wait at most C{timeout} seconds for C{sock} to take more; return whether
    it can.
    """
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def writable() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_writer(sock.fileno(), writable)
    try:
        await asyncio.wait_for(ready, timeout)
    except TimeoutError:
        return False
    finally:
        loop.remove_writer(sock.fileno())
    return True


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


def percentile(values: Sequence[int], fraction: float) -> float:
    """
    Return the nearest-rank percentile of C{values} (nanoseconds) in ms.
    """
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1))
    return ordered[rank] / 1e6


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


def spread(values: Sequence[float], form: str = "{:,.1f}") -> str:
    """
    Format the median of C{values} and their min-max.
    """
    present = [v for v in values if not math.isnan(v)]
    if not present:
        return "-"
    median = form.format(statistics.median(present))
    if len(present) == 1:
        return median
    return f"{median} ({form.format(min(present))}-{form.format(max(present))})"


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


def withoutNaN(value: Any) -> Any:
    """
    Return C{value} with every NaN (a figure that could not be measured)
    replaced by C{None}, which JSON can carry.
    """
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {key: withoutNaN(item) for key, item in value.items()}
    if isinstance(value, list):
        return [withoutNaN(item) for item in value]
    return value


def parseArguments(argv: Sequence[str] | None) -> argparse.Namespace:
    """
    Parse the command line.
    """
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--sizes", default="10,100", help="room sizes, by commas")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0, help="per variant")
    parser.add_argument(
        "--quick", action="store_true", help="1 round of 2 seconds a variant"
    )
    args = parser.parse_args(argv)
    args.sizes = [int(size) for size in args.sizes.split(",")]
    if any(size < 2 for size in args.sizes):
        parser.error("--sizes: a room needs at least 2 members")
    if args.quick:
        args.rounds, args.seconds = 1, 2.0
    if args.rounds < 1 or not 0 < args.seconds <= 600:
        parser.error("--rounds must be 1 or more, --seconds within (0, 600]")
    return args


def main(argv: list[str] | None = None) -> int:
    """
    Run every round, size and variant; report; return the exit status.
    """
    args = parseArguments(argv)
    # SIGTERM unwinds like Ctrl-C: every client is closed, every server stopped.
    signal.signal(signal.SIGTERM, lambda number, frame: sys.exit(128 + number))
    logDirectory = Path(tempfile.mkdtemp(prefix="sockserve-abuse-"))
    started = datetime.datetime.now()
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
    table = markdown(summarise(runs, args.sizes))
    lost = sum(r["lost"] for r in runs)
    given = sys.argv[1:] if argv is None else argv
    command = " ".join(["python -m bench.abuse", *given])
    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    heading = (
        f"# sockserve chat under a flood, {started:%Y-%m-%d %H:%M:%S}\n\n"
        f"`{command}`"
        f": {args.rounds} round(s), {args.seconds:g} s a variant, "
        f"{os.cpu_count()} cores, load average at the end {load}. Medians over "
        f"the rounds (min-max); lost is summed over the rounds.\n\n"
    )
    report = heading + table
    print()
    print(report)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = RESULTS / f"abuse-{started:%Y%m%d-%H%M%S}"
    stem.with_suffix(".md").write_text(report)
    summary = {
        "started": started.isoformat(),
        "rounds": args.rounds,
        "seconds": args.seconds,
        "sizes": args.sizes,
        "runs": runs,
        "lost": lost,
        "ok": not lost,
        "server_logs": str(logDirectory),
    }
    stem.with_suffix(".json").write_text(json.dumps(withoutNaN(summary), indent=2))
    print(f"written to {stem}.md and .json", flush=True)
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())

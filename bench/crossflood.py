"""
The cross-node flood (issue #17): a flood on one node of a room on a bus,
and what the members of another node still get of other people's lines.

    python -m bench.abuse --only cross-node-flood [--rounds 3]
                          [--cross-seconds 20] [--settle 30]
                          [--cross-variants two-node,two-node-no-slow,...]
                          [--node-option=--bus-retention=1000 ...]

Each variant runs against fresh servers over loopback: for C{two-node}, a
private C{redis-server} on a free port (C{--save '' --appendonly no}) and two
nodes of one room, C{twistd -n sockserve --quiet --bus redis://127.0.0.1:PORT};
for C{one-node}, one C{twistd -n sockserve --quiet} without a bus. The
clients, all in this process (one monotonic clock):

    - on node A: the I{flooder}, sending 100-byte lines C{F SEQ xxx...} in
      64 KiB writes as fast as the server takes them (it reads what it is
      sent, to count its notices); the I{typist}, a person typing 10 lines a
      second, C{T SEQ SENT_NS} (it reads too); and C{a-reader}, a member
      reading as fast as it can;
    - on node B (node A itself in C{one-node}): C{b-fast}, reading as fast as
      it can, and C{b-slow}, reading 128 KiB every 0.25 s (slow, but never
      stalled: the server must not drop it), left out in the C{-no-slow}
      variants.

After a probe line from each node has reached every client, the flooder
and the typist go for C{--cross-seconds} (the window). Then each sends an
end line, after the last of its lines, and everyone keeps reading as before
until every client has the end lines (at most C{--settle} seconds); if some
have not, C{b-slow} then reads as fast as it can for at most C{--settle}
seconds more, so that a line still queued for it counts as I{late}, and only
a line that never came as I{missing}.

Reported for each run:

    - B{typed lines}: for every member that reads them, how many of those
      the typist sent arrived (must be all: C{ALL typed lines delivered} or
      C{MISSING n typed lines}), how many late, and their p50/p99/max latency
      from the typist's write to the member's read;
    - B{flood}: the lines the flooder sent (all of them, up to its end line)
      and those each member got; I{holes}: gaps in the sequence a member got;
    - B{flooder rate}: lines/s and MB/s the server read from it in the
      window (what its writes completed, less what the kernel still held
      for the server at the end of it);
    - B{dropped}: members the server disconnected;
    - B{notices}: per member, C{* lost contact ...}, C{* back in contact
      ...}, C{* lines from other servers may be missing ...} and C{* some of
      your lines did not reach the other servers ...};
    - B{node logs}: per node, its warnings and errors (the backlog full, the
      bus lost), counted by message;
    - CPU seconds a second of each node, of Redis and of this driver.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import math
import os
import re
import socket
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.clients import (
    cpuTicks,
    percentile,
    spread,
    stillConnected,
    unreadBy,
    unsentBy,
    waitWritable,
    welcome,
)
from bench.servers import (
    SOCKSERVE,
    SOCKSERVE_BUS_2NODES,
    RunningServer,
    serverNamed,
    startServer,
)

SCENARIO = "cross-node-flood"
#: The variants: how many nodes, and whether node B has the slow reader.
VARIANTS = {
    "one-node": (1, True),
    "one-node-no-slow": (1, False),
    "two-node": (2, True),
    "two-node-no-slow": (2, False),
}

FLOOD_LINE = 100  # bytes, LF included: "F " + 10 digits + " " + padding + LF
FLOOD_PAD = b"x" * (FLOOD_LINE - len(b"F 0000000000 \n"))
FLOOD_LINES_PER_WRITE = 655  # 65,500 bytes a write
TYPE_RATE = 10.0
SLOW_READ = 128 * 1024
SLOW_EVERY = 0.25
READ_SIZE = 1024 * 1024
JOIN_TIMEOUT = 30.0
PROBE_TIMEOUT = 30.0
PROBE_EVERY = 0.1
SEND_TIMEOUT = 10.0
POLL = 0.05

# What the members read: "<name> T SEQ NS", "<name> F SEQ xxx", "<name> P ROLE
# N" (the probes before the window), "<name> E ROLE" (a sender's last line).
TYPED = b"> T "
FLOOD = b"> F "
PROBE = b"> P "
END = b"> E "
#: The notices of a node about the bus (sockserve.bus.room), as members read
#: them.
NOTICES = {
    "lost contact": b"* lost contact with the other servers",
    "back in contact": b"* back in contact with the other servers",
    "may be missing": b"* lines from other servers may be missing",
    "did not reach": b"* some of your lines did not reach the other servers",
}
#: A node's log line that is a warning or worse.
LOG_PROBLEM = re.compile(r"#(warn|error|critical)\]|Traceback|Unhandled")
LOG_STAMP = re.compile(r"^\S+ \[[^]]*\] ")
BACKLOG_FULL = re.compile(r"backlog for it is full .*: dropped (\d+) message")
BACKLOG_UNLOGGED = re.compile(r"(\d+) more backlog drops not logged")
BUS_LOST = "Lost contact with the bus"


@dataclass
class Client:
    """
    One client: a member that reads everything it is sent (the slow reader
    at its own pace), and, for the flooder and the typist, sends.

    @ivar role: C{flooder}, C{typist}, C{a-reader}, C{b-fast} or C{b-slow}.
    @ivar node: 0 for node A, 1 for node B (0 for all in C{one-node}).
    @ivar slow: read C{SLOW_READ} bytes every C{SLOW_EVERY} seconds, not as
        fast as possible.
    @ivar typed: per typed line received, its sequence number, its latency
        (ns, write to read) and the phase it came in (1: the window, 2: the
        settling, 3: after the slow reader sped up).
    @ivar floodNext: the flood sequence number expected next.
    @ivar floodHoles: gaps in the flood sequence received.
    @ivar floodDisorder: flood lines received again or out of order.
    @ivar sent: lines sent (typed lines, or whole flood lines).
    @ivar written: flood bytes its writes completed.
    """

    role: str
    node: int
    sock: socket.socket
    name: str = ""
    joined: asyncio.Event = field(default_factory=asyncio.Event)
    slow: bool = False
    received: int = 0
    typed: list[tuple[int, int, int]] = field(default_factory=list)
    floodLines: int = 0
    floodNext: int = 0
    floodHoles: int = 0
    floodDisorder: int = 0
    probes: set[str] = field(default_factory=set)
    ends: set[str] = field(default_factory=set)
    notices: Counter[str] = field(default_factory=Counter)
    dropped: bool = False
    sent: int = 0
    written: int = 0
    sendError: str | None = None
    task: asyncio.Task[None] | None = None


@dataclass
class Phase:
    """
    Where the run is: 0 joining, 1 the window, 2 settling, 3 the slow
    reader drains as fast as it can.
    """

    now: int = 0


def consume(client: Client, data: bytes, now: int, phase: int) -> None:
    """
    Account for C{data}, whole lines C{client} read at C{now}
    (C{time.monotonic_ns}).
    """
    client.received += len(data)
    if not client.name:
        greeted = welcome(data)
        if greeted is not None:
            client.name = greeted.name
            client.joined.set()
    count = data.count(FLOOD)
    if count:
        start = data.find(FLOOD) + len(FLOOD)
        end = data.rfind(FLOOD) + len(FLOOD)
        first, last = int(data[start : start + 10]), int(data[end : end + 10])
        if first > client.floodNext:
            client.floodHoles += 1
        elif first < client.floodNext:
            client.floodDisorder += 1
        span = last - first + 1
        if span > count:
            client.floodHoles += 1
        elif span < count:
            client.floodDisorder += 1
        client.floodNext = last + 1
        client.floodLines += count
    at = data.find(TYPED)
    while at >= 0:
        stop = data.index(b"\r\n", at)
        seq, stamp = data[at + len(TYPED) : stop].split()
        client.typed.append((int(seq), now - int(stamp), phase))
        at = data.find(TYPED, stop)
    for marker, seen in ((PROBE, client.probes), (END, client.ends)):
        at = data.find(marker)
        while at >= 0:
            stop = data.index(b"\r\n", at)
            seen.add(data[at + len(marker) : stop].split()[0].decode())
            at = data.find(marker, stop)
    for kind, text in NOTICES.items():
        client.notices[kind] += data.count(text)


def readSome(sock: socket.socket, limit: int) -> tuple[bytes, bool]:
    """
    Read what C{sock} has now, at most C{limit} bytes, without waiting;
    return it and whether the connection has ended.
    """
    parts: list[bytes] = []
    got = 0
    while got < limit:
        try:
            part = sock.recv(limit - got)
        except BlockingIOError:
            break
        if not part:
            return b"".join(parts), True
        parts.append(part)
        got += len(part)
    return b"".join(parts), False


async def readClient(client: Client, phase: Phase) -> None:
    """
    Read everything C{client} is sent until the connection ends (or the
    task is cancelled): as fast as it can, or, while C{client.slow},
    C{SLOW_READ} bytes every C{SLOW_EVERY} seconds. An end before the
    cancellation is the server dropping it.
    """
    loop = asyncio.get_running_loop()
    tail = b""
    try:
        while True:
            if client.slow:
                await asyncio.sleep(SLOW_EVERY)
                chunk, ended = readSome(client.sock, SLOW_READ)
            else:
                chunk = await loop.sock_recv(client.sock, READ_SIZE)
                ended = not chunk
            if chunk:
                now = time.monotonic_ns()
                data = tail + chunk if tail else chunk
                cut = data.rfind(b"\n") + 1
                tail = data[cut:]
                if cut:
                    consume(client, data[:cut], now, phase.now)
            if ended:
                break
    except OSError:
        pass
    client.dropped = True


async def connect(role: str, node: int, port: int) -> Client:
    """
    Connect C{role} to the node on C{port}.
    """
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        await loop.sock_connect(sock, ("127.0.0.1", port))
    except BaseException:
        sock.close()
        raise
    return Client(role, node, sock)


async def send(
    client: Client, data: bytes | memoryview, timeout: float = SEND_TIMEOUT
) -> bool:
    """
    Send C{data} for C{client}, waiting at most C{timeout} seconds; return
    whether it was all taken (else note why in C{client.sendError}).
    """
    loop = asyncio.get_running_loop()
    try:
        await asyncio.wait_for(loop.sock_sendall(client.sock, data), timeout)
    except TimeoutError:
        client.sendError = f"a write waited over {timeout:g} s"
        return False
    except OSError as error:
        client.sendError = f"{type(error).__name__}: {error}"
        return False
    return True


def floodChunk(first: int) -> bytes:
    """
    Return C{FLOOD_LINES_PER_WRITE} flood lines numbered from C{first}.
    """
    return b"".join(
        b"F %010d %s\n" % (seq, FLOOD_PAD)
        for seq in range(first, first + FLOOD_LINES_PER_WRITE)
    )


async def flood(flooder: Client, deadline: float) -> memoryview:
    """
    Send flood lines as fast as the server takes them until C{deadline}
    (C{time.monotonic}); return what is left of the line being written then.
    """
    pending = memoryview(b"")
    generated = 0
    while (left := deadline - time.monotonic()) > 0:
        if not pending:
            pending = memoryview(floodChunk(generated))
            generated += FLOOD_LINES_PER_WRITE
        try:
            sent = flooder.sock.send(pending)
        except BlockingIOError:
            await waitWritable(flooder.sock, left)
            continue
        except OSError as error:
            flooder.sendError = f"{type(error).__name__}: {error}"
            return memoryview(b"")
        flooder.written += sent
        pending = pending[sent:]
        await asyncio.sleep(0)  # the readers share the loop
    return pending[: -flooder.written % FLOOD_LINE]


async def finishFlood(flooder: Client, rest: memoryview, timeout: float) -> None:
    """
    Complete the flood line cut by the end of the window, then send the
    flooder's end line.
    """
    if flooder.sendError is None and rest and await send(flooder, rest, timeout):
        flooder.written += len(rest)
    flooder.sent = flooder.written // FLOOD_LINE
    if flooder.sendError is None:
        await send(flooder, b"E flooder\n", timeout)


async def typeLines(typist: Client, deadline: float) -> None:
    """
    Send C{T SEQ NOW} C{TYPE_RATE} times a second until C{deadline}, then
    the typist's end line.
    """
    start = time.monotonic()
    while (due := start + typist.sent / TYPE_RATE) < deadline:
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        if not await send(typist, b"T %d %d\n" % (typist.sent, time.monotonic_ns())):
            return
        typist.sent += 1
    await send(typist, b"E typist\n")


def sendersOf(client: Client, clients: Sequence[Client]) -> set[str]:
    """
    The senders whose end line C{client} is owed: the flooder and the
    typist, but itself, and a sender that was dropped or could not send.
    """
    return {
        c.role
        for c in clients
        if c.role in ("flooder", "typist")
        and c is not client
        and not c.dropped
        and c.sendError is None
    }


async def settled(clients: Sequence[Client], timeout: float) -> bool:
    """
    Wait, at most C{timeout} seconds, until every client not dropped has the
    end line of every sender it is owed; return whether they all do.
    """
    deadline = time.monotonic() + timeout
    while True:
        if all(c.dropped or sendersOf(c, clients) <= c.ends for c in clients):
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(POLL)


async def probe(clients: Sequence[Client]) -> None:
    """
    Have the typist (node A) and C{b-fast} (node B) send probe lines until
    every other client has one of each: everyone is in the room, on both
    nodes.

    @raise RuntimeError: if that takes over C{PROBE_TIMEOUT} seconds.
    """
    senders = [c for c in clients if c.role in ("typist", "b-fast")]
    deadline = time.monotonic() + PROBE_TIMEOUT
    count = 0
    while time.monotonic() < deadline:
        if all({s.role for s in senders if s is not c} <= c.probes for c in clients):
            return
        for sender in senders:
            await send(sender, b"P %s %d\n" % (sender.role.encode(), count))
        count += 1
        await asyncio.sleep(PROBE_EVERY)
    raise RuntimeError("the probe lines did not reach every client in time")


def serverPids(server: RunningServer) -> dict[str, int]:
    """
    The processes serving the room, by name.
    """
    pids = {f"node {'AB'[i]}": node.pid for i, node in enumerate(server.nodes)}
    if server.redis is not None:
        pids["redis"] = server.redis.pid
    return pids


def judgeTyped(client: Client, sent: int) -> dict[str, Any]:
    """
    Return what C{client} got of the C{sent} typed lines.
    """
    seqs = [seq for seq, _, _ in client.typed]
    got = {seq for seq in seqs if 0 <= seq < sent}
    latencies = [latency for _, latency, _ in client.typed]
    return {
        "typed_got": len(got),
        "typed_missing": sent - len(got),
        "typed_late": sum(1 for _, _, phase in client.typed if phase == 3),
        "typed_doubled": len(seqs) - len(set(seqs)),
        "typed_out_of_order": sum(1 for a, b in itertools.pairwise(seqs) if b < a),
        "typed_p50_ms": percentile(latencies, 0.50),
        "typed_p99_ms": percentile(latencies, 0.99),
        "typed_max_ms": percentile(latencies, 1.0),
    }


async def drive(
    server: RunningServer, withSlow: bool, seconds: float, settle: float
) -> dict[str, Any]:
    """
    Run the clients against C{server} (node B is node A on one node); return
    the figures.
    """
    ports = server.ports
    portB = ports[-1]
    roles = [("flooder", 0), ("typist", 0), ("a-reader", 0), ("b-fast", 1)]
    if withSlow:
        roles.append(("b-slow", 1))
    phase = Phase()
    clients: list[Client] = []
    finishing: asyncio.Task[None] | None = None
    try:
        for role, node in roles:
            port = ports[0] if node == 0 else portB
            client = await asyncio.wait_for(connect(role, node, port), JOIN_TIMEOUT)
            clients.append(client)
            client.task = asyncio.create_task(readClient(client, phase))
        await asyncio.wait_for(
            asyncio.gather(*(c.joined.wait() for c in clients)), JOIN_TIMEOUT
        )
        await probe(clients)
        byRole = {c.role: c for c in clients}
        flooder, typist = byRole["flooder"], byRole["typist"]
        pids = serverPids(server)
        ticks = {name: cpuTicks(pid) for name, pid in pids.items()}
        driver = time.process_time()
        start = time.monotonic()
        deadline = start + seconds
        phase.now = 1
        for client in clients:
            client.slow = client.role == "b-slow"
        typing = asyncio.create_task(typeLines(typist, deadline))
        rest = await flood(flooder, deadline)
        await typing
        window = time.monotonic() - start
        clock = os.sysconf("SC_CLK_TCK")
        cpu = {
            name: (cpuTicks(pid) - ticks[name]) / clock / window
            for name, pid in pids.items()
        }
        cpu["driver"] = (time.process_time() - driver) / window
        flooderPort = flooder.sock.getsockname()[1]
        inWindow = flooder.written
        if flooder.sendError is None:
            inWindow -= unsentBy(flooder.sock) + unreadBy(ports[0], flooderPort)
        flooderKept = flooder.sendError is None and stillConnected(flooder.sock)
        phase.now = 2
        finishing = asyncio.create_task(finishFlood(flooder, rest, settle))
        settledSlow = await settled(clients, settle)
        settledFast = settledSlow
        if not settledSlow:
            phase.now = 3
            for client in clients:
                client.slow = False
            settledFast = await settled(clients, settle)
        await finishing
        flooder.sent = flooder.written // FLOOD_LINE
        members: dict[str, Any] = {}
        for client in clients:
            figures: dict[str, Any] = {
                "node": "AB"[client.node] if len(ports) > 1 else "A",
                "name": client.name,
                "dropped": client.dropped,
                "received_mb": client.received / 1e6,
                "notices": {k: v for k, v in client.notices.items() if v},
            }
            if client is not typist:
                figures.update(judgeTyped(client, typist.sent))
            if client is not flooder:
                figures.update(
                    flood_got=client.floodLines,
                    flood_missing=flooder.sent - client.floodLines,
                    flood_holes=client.floodHoles,
                    flood_out_of_order=client.floodDisorder,
                )
            members[client.role] = figures
        readers = [c for c in clients if c is not typist and not c.dropped]
        return {
            "window_s": window,
            "typed_sent": typist.sent,
            "typist_error": typist.sendError,
            "typed_missing": sum(members[c.role]["typed_missing"] for c in readers),
            "typed_late": sum(members[c.role]["typed_late"] for c in readers),
            "dropped": [c.role for c in clients if c.dropped],
            "settled_slow": settledSlow,
            "settled": settledFast,
            "flood_sent": flooder.sent,
            "flooder_kept": flooderKept,
            "flooder_error": flooder.sendError,
            "flooder_in_window_bytes": inWindow,
            "flooder_lines_per_s": inWindow / FLOOD_LINE / window,
            "flooder_mb_per_s": inWindow / window / 1e6,
            "cpu_per_s": cpu,
            "members": members,
        }
    finally:
        if finishing is not None and not finishing.done():
            finishing.cancel()
        tasks = [c.task for c in clients if c.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(
            *tasks, *([finishing] if finishing else []), return_exceptions=True
        )
        for client in clients:
            client.sock.close()


def nodeLogs(server: RunningServer) -> dict[str, Any]:
    """
    Return, per node, its warnings and errors counted by message (numbers
    shown as C{N}); its "backlog full" events (those logged, with the
    messages they say were dropped, and those the log limiter only counted)
    and its "lost contact with the bus" lines.
    """
    logs: dict[str, Any] = {}
    for index, node in enumerate(server.nodes):
        try:
            text = node.log.read_text("utf-8", "replace")
        except OSError:
            text = ""
        problems: Counter[str] = Counter()
        logged = unlogged = dropped = 0
        for line in text.splitlines():
            if not LOG_PROBLEM.search(line):
                continue
            message = LOG_STAMP.sub("", line)
            problems[re.sub(r"\d+", "N", message)[:240]] += 1
            if match := BACKLOG_UNLOGGED.search(message):
                unlogged += int(match.group(1))
            elif match := BACKLOG_FULL.search(message):
                logged += 1
                dropped += int(match.group(1))
        logs[f"node {'AB'[index]}"] = {
            "log": str(node.log),
            "backlog_full": logged + unlogged,
            "backlog_full_logged": logged,
            "backlog_dropped_logged": dropped,
            "bus_lost": text.count(BUS_LOST),
            "problems": dict(problems.most_common(10)),
        }
    return logs


def runVariant(
    variant: str,
    seconds: float,
    settle: float,
    nodeOptions: Sequence[str],
    logDir: Path,
) -> dict[str, Any]:
    """
    Run one variant against fresh servers, stopped at the end whatever
    happens.
    """
    nodes, withSlow = VARIANTS[variant]
    spec = serverNamed(SOCKSERVE_BUS_2NODES if nodes == 2 else SOCKSERVE)
    spec = dataclasses.replace(spec, extraArgs=tuple(nodeOptions))
    server = startServer(spec, "chat", None, logDir)
    try:
        result = asyncio.run(drive(server, withSlow, seconds, settle))
    finally:
        server.stop()
    result["variant"] = variant
    result["nodes_exit_status"] = server.exitStatus
    result["node_logs"] = nodeLogs(server)
    return result


def verdict(result: dict[str, Any]) -> str:
    """
    The run's typed-lines verdict: C{ALL typed lines delivered} (saying how
    many deliveries were late), or C{MISSING n typed lines}, n summed over
    the members (not dropped) that read them, with each one's share.
    """

    def each(key: str) -> str:
        shares = [
            f"{role} {member[key]}"
            for role, member in result["members"].items()
            if member.get(key) and not member["dropped"]
        ]
        return f"{', '.join(shares)}; of {result['typed_sent']} sent"

    if result["typed_missing"]:
        return (
            f"MISSING {result['typed_missing']} typed lines ({each('typed_missing')})"
        )
    late = result["typed_late"]
    if late:
        return (
            f"ALL typed lines delivered, but {late} only after the slow reader "
            f"sped up ({each('typed_late')})"
        )
    return "ALL typed lines delivered"


def _ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:,.0f}"


def _typed(member: dict[str, Any] | None, sent: int) -> str:
    if member is None:
        return "-"
    if member["dropped"]:
        return "DROPPED"
    late = f", {member['typed_late']} late" if member["typed_late"] else ""
    return (
        f"{member['typed_got']}/{sent}{late}; "
        f"{_ms(member['typed_p50_ms'])}/{_ms(member['typed_p99_ms'])}/"
        f"{_ms(member['typed_max_ms'])}"
    )


def _flood(member: dict[str, Any] | None, sent: int) -> str:
    if member is None:
        return "-"
    got = member["flood_got"]
    share = f" ({100 * got / sent:.1f}%)" if sent else ""
    holes = f", {member['flood_holes']} holes" if member["flood_holes"] else ""
    return f"{got:,}{share}{holes}"


def _notices(result: dict[str, Any]) -> str:
    parts = []
    for role, member in result["members"].items():
        if member["notices"]:
            told = ", ".join(f"{k} {v}" for k, v in member["notices"].items())
            parts.append(f"{role}: {told}")
    return "; ".join(parts) or "none"


def _logs(result: dict[str, Any]) -> str:
    parts = []
    for node, log in result["node_logs"].items():
        counts = []
        if log["backlog_full"]:
            counts.append(
                f"backlog full x{log['backlog_full']} ({log['backlog_full_logged']} "
                f"logged, dropping {log['backlog_dropped_logged']} message(s))"
            )
        if log["bus_lost"]:
            counts.append(f"bus lost x{log['bus_lost']}")
        others = sum(
            n
            for message, n in log["problems"].items()
            if "backlog" not in message and BUS_LOST not in message
        )
        if others > 0:
            counts.append(f"{others} other warning(s)")
        if counts:
            parts.append(f"{node}: {', '.join(counts)}")
    return "; ".join(parts) or "none"


RUN_HEADER = [
    "variant",
    "round",
    "typed lines",
    "b-fast: got; p50/p99/max ms",
    "b-slow: got; p50/p99/max ms",
    "a-reader: got; p50/p99/max ms",
    "flood sent",
    "flood to b-fast",
    "flood to b-slow",
    "flood to a-reader",
    "flooder lines/s",
    "flooder MB/s",
    "dropped",
]


def runRow(result: dict[str, Any]) -> list[str]:
    """
    One run's row under L{RUN_HEADER}.
    """
    members = result["members"]
    sent, floodSent = result["typed_sent"], result["flood_sent"]
    return [
        result["variant"],
        str(result["round"]),
        f"**{verdict(result)}**",
        _typed(members.get("b-fast"), sent),
        _typed(members.get("b-slow"), sent),
        _typed(members.get("a-reader"), sent),
        f"{floodSent:,}",
        _flood(members.get("b-fast"), floodSent),
        _flood(members.get("b-slow"), floodSent),
        _flood(members.get("a-reader"), floodSent),
        f"{result['flooder_lines_per_s']:,.0f}",
        f"{result['flooder_mb_per_s']:.2f}",
        ", ".join(result["dropped"]) or "none",
    ]


def table(header: list[str], rows: list[list[str]]) -> str:
    """
    A Markdown table.
    """
    lines = ["| " + " | ".join(header) + " |"]
    lines.append("|" + "|".join("---" for _ in header) + "|")
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


SUMMARY_HEADER = [
    "variant",
    "runs",
    "typed lines missing (all runs)",
    "late (all runs)",
    "b-fast got in time",
    "b-fast p99 ms",
    "b-slow p99 ms",
    "flood to b-fast %",
    "flooder lines/s",
    "flooder MB/s",
    "nodes CPU s/s",
    "redis CPU s/s",
    "driver CPU %",
]


def memberFigures(runs: list[dict[str, Any]], role: str, key: str) -> list[float]:
    """
    The figure C{key} of member C{role} in each of C{runs} where it was not
    dropped.
    """
    return [
        r["members"][role][key]
        for r in runs
        if role in r["members"] and not r["members"][role]["dropped"]
    ]


def summaryRows(runs: list[dict[str, Any]], variants: Sequence[str]) -> list[list[str]]:
    """
    Medians over the rounds (min-max), one row per variant.
    """
    rows = []
    for variant in variants:
        mine = [r for r in runs if r["variant"] == variant]
        if not mine:
            continue

        floodShare = [
            100 * r["members"]["b-fast"]["flood_got"] / r["flood_sent"]
            for r in mine
            if r["flood_sent"]
        ]
        nodesCpu = [
            sum(v for k, v in r["cpu_per_s"].items() if k.startswith("node"))
            for r in mine
        ]
        redisCpu = [r["cpu_per_s"].get("redis", math.nan) for r in mine]
        missing = [r["typed_missing"] for r in mine]
        late = [r["typed_late"] for r in mine]
        inTime = [
            r["members"]["b-fast"]["typed_got"] - r["members"]["b-fast"]["typed_late"]
            for r in mine
            if not r["members"]["b-fast"]["dropped"]
        ]
        rows.append(
            [
                variant,
                str(len(mine)),
                f"**{sum(missing)}** ({', '.join(map(str, missing))})",
                f"{sum(late)} ({', '.join(map(str, late))})",
                spread(inTime, "{:.0f}") + f" of {mine[0]['typed_sent']}",
                spread(memberFigures(mine, "b-fast", "typed_p99_ms"), "{:,.0f}"),
                spread(memberFigures(mine, "b-slow", "typed_p99_ms"), "{:,.0f}"),
                spread(floodShare, "{:.1f}"),
                spread([r["flooder_lines_per_s"] for r in mine], "{:,.0f}"),
                spread([r["flooder_mb_per_s"] for r in mine], "{:.2f}"),
                spread(nodesCpu, "{:.2f}"),
                spread(redisCpu, "{:.2f}"),
                spread([100 * r["cpu_per_s"]["driver"] for r in mine], "{:.0f}"),
            ]
        )
    return rows


def report(runs: list[dict[str, Any]], variants: Sequence[str]) -> str:
    """
    The cross-node flood's section of the report: the summary, every run,
    and every run's notices and node logs.
    """
    notes = [
        f"- {r['variant']} round {r['round']}: {verdict(r)}. Notices: "
        f"{_notices(r)}. Node logs: {_logs(r)}."
        + ("" if r["settled"] else " Some end lines never arrived.")
        for r in runs
    ]
    return (
        table(SUMMARY_HEADER, summaryRows(runs, variants))
        + "\nEvery run (typed lines got of those sent; latency from the "
        "typist's write to the member's read):\n\n"
        + table(RUN_HEADER, [runRow(r) for r in runs])
        + "\n"
        + "\n".join(notes)
        + "\n"
    )


def shortLine(result: dict[str, Any]) -> str:
    """
    One run in a line, for the progress output.
    """
    members = result["members"]
    parts = [verdict(result)]
    for role in ("b-fast", "b-slow", "a-reader"):
        if role in members:
            parts.append(f"{role} {_typed(members[role], result['typed_sent'])}")
    parts.append(
        f"flooder {result['flooder_lines_per_s']:,.0f} lines/s "
        f"({result['flooder_mb_per_s']:.2f} MB/s), flood to b-fast "
        f"{_flood(members['b-fast'], result['flood_sent'])} of "
        f"{result['flood_sent']:,}"
    )
    parts.append(f"notices: {_notices(result)}")
    parts.append(f"logs: {_logs(result)}")
    return " | ".join(parts)

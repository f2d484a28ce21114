"""
A soak of one chat room on two nodes and a Redis bus, with Redis killed in the
middle and started again, empty.

    python -m bench.bus_soak [--seconds 180] [--clients-per-node 3] [--rate 10]
                             [--down 5] [--failover N] [--json PATH]

Two sockserve nodes (C{--bus}) share one room on a private C{redis-server}
(on a free loopback port, without persistence). C{--clients-per-node} clients
join each node; once every client has seen every other's probe, each sends
numbered lines (C{m IDENT SEQ SENT_NS}) at about C{--rate} lines a second for
C{--seconds}. Half-way through, Redis is killed (SIGKILL: everything it held
is lost) and started again, empty, on the same port C{--down} seconds later.
Lines sent meanwhile reach the clients of their own node at once; the node
keeps them and publishes them once it is back in contact, so the other
node's clients get them late, but get them.

With C{--failover N}, the bus is a primary, two replicas and three
sentinels (L{bench.bus.SentinelBus}; C{down-after-milliseconds 500}), the
nodes are on its C{redis+sentinel://} address (so C{--bus-replicas 1}), and
instead of the restart the primary is killed N times, evenly spread over
the run; each time, once the sentinels name another, the killed one starts
again, empty, as a replica of the new one. The soak then also reports, for
each failover, the seconds from the kill to the sentinels naming the new
primary and to the first line sent after the kill reaching a client on the
other node.

At the end every client sends C{fin TAG} (twice, as L{bench.soak} does) and
waits, bounded, for everyone else's: everything sent before has then been
relayed. For each receiving client the soak reports the lines owed to it
(every line every other client sent: nobody joins or leaves during the
soak), those delivered, missing, doubled and out of order (per sender), and
the notices it was given (C{lost contact}, C{back in contact}, C{lines ... may
be missing}). It also checks that the room knows everyone after the restart
(C{/who} from each client, and Redis's member hash).

Exits 1 if any line is missing, doubled or out of order, or the room lost a
member; prints a summary and writes JSON (to C{--json}, or
C{bench/results/bus-soak-DATE.json}). Not a test: CI never runs it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import random
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.bus import SentinelBus, redisClient
from bench.clients import welcome
from bench.processes import StartError, installSignalHandlers, stopAll
from bench.servers import (
    SOCKSERVE_BUS_2NODES,
    RunningServer,
    _startNode,
    serverNamed,
    startServer,
)

RESULTS = Path(__file__).resolve().parent / "results"
MESSAGE = re.compile(rb"<([^>]+)> m (\d+) (\d+) (\d+)\r?$")
FIN = re.compile(rb"<([^>]+)> fin (\d+) (\d+)\r?$")
PROBE = re.compile(rb"<([^>]+)> probe (\d+) (\d+)\r?$")
WHO = re.compile(rb"\* (\d+) here: ")
#: The notices of a node about the bus (sockserve.bus.room).
NOTICES = {
    "lost": b"* lost contact with the other servers",
    "back": b"* back in contact with the other servers",
    "missing": b"* lines from other servers may be missing",
    "dropped": b"* some of your lines did not reach the other servers",
}
SYNC_TIMEOUT = 60.0
JOIN_TIMEOUT = 30.0
PROBE_ROUNDS = 20
PROBE_WAIT = 2.0
MAX_LINE = 4096


@dataclass
class Client:
    """
    One client of the soak, on one node.

    @ivar received: per sender's ident, the sequence numbers received, in
        the order received.
    @ivar latencies: per delivery, seconds from the sender's write.
    """

    ident: int
    node: int
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    name: str = ""
    joined: asyncio.Event = field(default_factory=asyncio.Event)
    sent: int = 0
    sentWhileDown: int = 0
    received: dict[int, list[int]] = field(default_factory=dict)
    latencies: list[tuple[float, float]] = field(default_factory=list)
    # Per delivery from another node: (sent at, arrived at).
    crossings: list[tuple[float, float]] = field(default_factory=list)
    fins: dict[int, set[int]] = field(default_factory=dict)
    probes: dict[int, set[int]] = field(default_factory=dict)
    notices: Counter[str] = field(default_factory=Counter)
    noticeTimes: dict[str, list[float]] = field(default_factory=dict)
    others: int | None = None
    whoCount: int | None = None
    bogus: int = 0
    progress: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None


def nowNs() -> int:
    """
    The clock every client's lines carry (one process: one clock).
    """
    return time.monotonic_ns()


async def readLines(client: Client, total: int, nodes: int) -> None:
    """
    Read a client's lines until the connection ends; record what it is sent.
    """
    while True:
        try:
            line = await client.reader.readuntil(b"\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        except asyncio.LimitOverrunError:
            client.bogus += 1
            await client.reader.read(MAX_LINE)
            continue
        line = line.rstrip(b"\n")
        greeted = None if client.joined.is_set() else welcome(line)
        if greeted is not None:
            client.name, client.others = greeted.name, greeted.others
            client.joined.set()
            continue
        match = MESSAGE.match(line)
        if match:
            sender, seq, sentNs = (int(g) for g in match.groups()[1:])
            if sender == client.ident or sender >= total:
                client.bogus += 1
                continue
            client.received.setdefault(sender, []).append(seq)
            arrivedNs = nowNs()
            client.latencies.append((sentNs / 1e9, (arrivedNs - sentNs) / 1e9))
            if sender % nodes != client.node:
                client.crossings.append((sentNs / 1e9, arrivedNs / 1e9))
            continue
        for pattern, table in ((FIN, client.fins), (PROBE, client.probes)):
            match = pattern.match(line)
            if match:
                tag, sender = int(match.group(2)), int(match.group(3))
                table.setdefault(tag, set()).add(sender)
                client.progress.set()
                break
        else:
            for kind, prefix in NOTICES.items():
                if line.startswith(prefix):
                    client.notices[kind] += 1
                    client.noticeTimes.setdefault(kind, []).append(nowNs() / 1e9)
            match = WHO.match(line)
            if match:
                client.whoCount = int(match.group(1))
                client.progress.set()


async def everyoneSaw(
    clients: list[Client], table: str, tag: int, timeout: float
) -> bool:
    """
    Wait, at most C{timeout} seconds, until each client has the line
    C{table} (C{fins} or C{probes}) C{tag} of every other.
    """

    async def complete(client: Client) -> None:
        want = {c.ident for c in clients} - {client.ident}
        while not want <= getattr(client, table).get(tag, set()):
            client.progress.clear()
            await client.progress.wait()

    try:
        await asyncio.wait_for(asyncio.gather(*(complete(c) for c in clients)), timeout)
    except TimeoutError:
        return False
    return True


async def synchronise(clients: list[Client], word: str, tag: int) -> bool:
    """
    Have every client send C{WORD TAG IDENT}, and wait until each has every
    other's.
    """
    for client in clients:
        client.writer.write(f"{word} {tag} {client.ident}\n".encode())
    table = "fins" if word == "fin" else "probes"
    timeout = SYNC_TIMEOUT if word == "fin" else PROBE_WAIT
    return await everyoneSaw(clients, table, tag, timeout)


@dataclass
class Outage:
    """
    When Redis was killed and started again (monotonic seconds).
    """

    killedAt: float = 0.0
    backAt: float = 0.0
    restartError: str = ""

    def down(self) -> bool:
        """
        Whether Redis is down now.
        """
        return bool(self.killedAt) and not self.backAt


@dataclass
class Outages:
    """
    Every outage of the soak: one restart, or C{--failover} failovers (then
    C{backAt} is when the sentinels named the new primary).
    """

    each: list[Outage] = field(default_factory=list)

    def down(self) -> bool:
        """
        Whether the bus is down now.
        """
        return any(outage.down() for outage in self.each)


async def failOver(
    sentinels: SentinelBus, at: float, outages: Outages, count: int, seconds: float
) -> None:
    """
    Kill the primary C{count} times, evenly spread from C{at} over
    C{seconds}; after each, start the killed one again as a replica of the
    new primary.
    """
    for n in range(count):
        when = at + seconds * (n + 1) / (count + 1)
        await asyncio.sleep(max(0.0, when - time.monotonic()))
        outage = Outage(killedAt=time.monotonic())
        outages.each.append(outage)
        old = sentinels.killPrimary()
        try:
            following = sentinels.following(old)
            for delay in following:
                if not outage.backAt and sentinels.primaryPort() not in (None, old):
                    outage.backAt = time.monotonic()
                await asyncio.sleep(delay)
        except StartError as error:
            outage.restartError = str(error)
        if not outage.backAt:
            outage.backAt = time.monotonic()


async def chatter(
    client: Client, rate: float, until: float, rng: random.Random, outage: Outages
) -> None:
    """
    Send numbered lines at about C{rate} a second until C{until}.
    """
    interval = 1.0 / rate
    while time.monotonic() < until:
        client.writer.write(b"m %d %d %d\n" % (client.ident, client.sent, nowNs()))
        client.sent += 1
        client.sentWhileDown += outage.down()
        await asyncio.sleep(interval * rng.uniform(0.5, 1.5))


async def restartRedis(
    server: RunningServer, at: float, down: float, outage: Outage
) -> None:
    """
    At C{at}, kill Redis (SIGKILL); C{down} seconds later, start it again,
    empty, on the same port.
    """
    redis = server.redis
    assert redis is not None
    await asyncio.sleep(max(0.0, at - time.monotonic()))
    outage.killedAt = time.monotonic()
    redis.kill()
    await asyncio.sleep(down)
    try:
        for delay in redis.starting():
            await asyncio.sleep(delay)
    except StartError as error:  # reported: the soak says what failed
        outage.restartError = str(error)
    outage.backAt = time.monotonic()


def percentile(values: list[float], q: float) -> float | None:
    """
    The C{q}-quantile of C{values} (nearest rank), or C{None}.
    """
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def judge(client: Client, clients: list[Client]) -> dict[str, Any]:
    """
    Return what C{client} was owed and what it got.
    """
    owed = delivered = missing = doubled = disorder = 0
    for sender in clients:
        if sender.ident == client.ident:
            continue
        got = client.received.get(sender.ident, [])
        counts = Counter(got)
        owed += sender.sent
        delivered += sum(1 for seq in counts if seq < sender.sent)
        missing += sum(1 for seq in range(sender.sent) if seq not in counts)
        doubled += sum(n - 1 for n in counts.values() if n > 1)
        highest = -1
        for seq in got:
            if seq < highest and counts[seq] == 1:
                disorder += 1
            highest = max(highest, seq)
    return {
        "client": client.ident,
        "node": client.node + 1,
        "name": client.name,
        "owed": owed,
        "delivered": delivered,
        "missing": missing,
        "doubled": doubled,
        "out_of_order": disorder,
        "bogus": client.bogus,
        "notices": dict(client.notices),
        "who_count": client.whoCount,
    }


async def soak(
    server: RunningServer,
    args: argparse.Namespace,
    sentinels: SentinelBus | None = None,
) -> dict[str, Any]:
    """
    Run the soak against C{server}'s two nodes (on C{sentinels}, with
    C{--failover}); return its results.
    """
    rng = random.Random(args.seed)
    total = args.clients_per_node * len(server.nodes)
    clients: list[Client] = []
    for ident in range(total):
        node = ident % len(server.nodes)
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", server.ports[node], limit=MAX_LINE
        )
        client = Client(ident, node, reader, writer)
        client.task = asyncio.create_task(readLines(client, total, len(server.nodes)))
        clients.append(client)
    await asyncio.wait_for(
        asyncio.gather(*(c.joined.wait() for c in clients)), JOIN_TIMEOUT
    )
    # Every client in the room, on both nodes: one probe round reaching
    # everyone proves it (retried: the bus may still be settling).
    probed = False
    for tag in range(1, PROBE_ROUNDS + 1):
        if await synchronise(clients, "probe", tag):
            probed = True
            break
    if not probed:
        raise RuntimeError("the clients never all saw each other's probes")
    started = time.monotonic()
    until = started + args.seconds
    outages = Outages()
    if sentinels is not None:
        restarting = asyncio.create_task(
            failOver(sentinels, started, outages, args.failover, args.seconds)
        )
    else:
        outage = Outage()
        outages.each.append(outage)
        restarting = asyncio.create_task(
            restartRedis(
                server, started + args.seconds * args.restart_at, args.down, outage
            )
        )
    await asyncio.gather(*(chatter(c, args.rate, until, rng, outages) for c in clients))
    await restarting
    outage = outages.each[0]
    finished = time.monotonic()
    synchronised = await synchronise(clients, "fin", 1) and await synchronise(
        clients, "fin", 2
    )
    settled = time.monotonic()
    for client in clients:
        client.whoCount = None
        client.writer.write(b"/who\n")
    with contextlib.suppress(TimeoutError):  # a count missing is reported
        await asyncio.wait_for(
            asyncio.gather(*(_whoAnswered(c) for c in clients)), SYNC_TIMEOUT
        )
    redisMembers = None
    if server.redis is not None and server.redis.alive():
        with redisClient(server.redis.port) as client:
            redisMembers = client.hlen("sockserve:{default}:members")
    elif sentinels is not None and (primary := sentinels.primaryPort()) is not None:
        with redisClient(primary) as client:
            redisMembers = client.hlen("sockserve:{default}:members")
    failovers = []
    if sentinels is not None:
        for each in outages.each:
            after = [
                arrived
                for c in clients
                for sentAt, arrived in c.crossings
                if sentAt >= each.killedAt
            ]
            failovers.append(
                {
                    "killed_at_s": round(each.killedAt - started, 2),
                    "new_primary_after_s": round(each.backAt - each.killedAt, 2),
                    "first_line_across_after_s": round(min(after) - each.killedAt, 2)
                    if after
                    else None,
                    "error": each.restartError,
                }
            )
    perClient = [judge(c, clients) for c in clients]
    for client in clients:
        client.writer.close()
    await asyncio.gather(*(c.task for c in clients if c.task), return_exceptions=True)
    latencies = [latency for c in clients for _, latency in c.latencies]
    duringOutage = [
        latency
        for c in clients
        for sentAt, latency in c.latencies
        if outage.killedAt <= sentAt <= outage.backAt
    ]
    # Each notice against the outage it ends (the last one back before it).
    backTimes = [
        when - max(o.backAt for o in outages.each if o.backAt and o.backAt <= when)
        for c in clients
        for when in c.noticeTimes.get("back", [])
        if any(o.backAt and o.backAt <= when for o in outages.each)
    ]
    totals = {
        key: sum(c[key] for c in perClient)
        for key in ("owed", "delivered", "missing", "doubled", "out_of_order", "bogus")
    }
    return {
        "clients": total,
        "nodes": len(server.nodes),
        "seconds": round(finished - started, 1),
        "rate_per_client": args.rate,
        "lines_sent": sum(c.sent for c in clients),
        "redis_killed_at_s": round(outage.killedAt - started, 2),
        "redis_back_at_s": round(outage.backAt - started, 2),
        "redis_restart_error": outage.restartError,
        "lines_sent_while_redis_down": sum(c.sentWhileDown for c in clients),
        "sentinel_down_after_ms": 500 if sentinels is not None else None,
        "back_in_contact_after_s": {
            "min": round(min(backTimes), 2) if backTimes else None,
            "max": round(max(backTimes), 2) if backTimes else None,
        },
        "synchronised_at_end": synchronised,
        "settle_s": round(settled - finished, 2),
        "latency_ms": {
            "p50": _ms(percentile(latencies, 0.5)),
            "p99": _ms(percentile(latencies, 0.99)),
            "max": _ms(max(latencies) if latencies else None),
            "max_sent_while_down": _ms(max(duringOutage) if duringOutage else None),
        },
        "who_counts": sorted({c["who_count"] for c in perClient}, key=str),
        "failovers": failovers,
        "redis_members": redisMembers,
        "totals": totals,
        "per_client": perClient,
    }


async def _whoAnswered(client: Client) -> None:
    while client.whoCount is None:
        client.progress.clear()
        await client.progress.wait()


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def summary(results: dict[str, Any]) -> str:
    """
    Return the results as a short Markdown report.
    """
    lines = [
        f"## sockserve bus soak: {results['clients']} clients on "
        f"{results['nodes']} nodes, {results['seconds']} s at "
        f"~{results['rate_per_client']} lines/s each",
        "",
        (
            f"{len(results['failovers'])} failovers (below)"
            if results["failovers"]
            else f"Redis killed (SIGKILL) at {results['redis_killed_at_s']} s, "
            f"started again (empty) at {results['redis_back_at_s']} s"
            + (
                f" (FAILED: {results['redis_restart_error']})"
                if results["redis_restart_error"]
                else ""
            )
        )
        + f"; clients told `back in contact` "
        f"{results['back_in_contact_after_s']['min']} - "
        f"{results['back_in_contact_after_s']['max']} s after it was back. "
        f"{results['lines_sent']} lines sent, "
        f"{results['lines_sent_while_redis_down']} of them while Redis was down.",
        f"Latency (send to delivery, every delivery): p50 "
        f"{results['latency_ms']['p50']} ms, p99 {results['latency_ms']['p99']} ms, "
        f"max {results['latency_ms']['max']} ms; lines sent while Redis was "
        f"down: at most {results['latency_ms']['max_sent_while_down']} ms.",
        *(
            f"Failover {n + 1}: primary killed (SIGKILL) at {f['killed_at_s']} s; "
            f"the sentinels (down-after-milliseconds "
            f"{results['sentinel_down_after_ms']}) named another "
            f"{f['new_primary_after_s']} s later; the first line sent after "
            f"the kill reached the other node {f['first_line_across_after_s']} s "
            f"after it" + (f" (FAILED: {f['error']})" if f["error"] else "") + "."
            for n, f in enumerate(results["failovers"])
        ),
        f"End: fin lines reached everyone: {results['synchronised_at_end']} "
        f"(in {results['settle_s']} s); `/who` counts "
        f"{results['who_counts']}; Redis's member hash: "
        f"{results['redis_members']} (of {results['clients']}).",
        "",
        "| client | node | owed | delivered | missing | doubled | out of order "
        "| notices |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in results["per_client"]:
        notices = ", ".join(f"{k} {v}" for k, v in sorted(c["notices"].items()))
        lines.append(
            f"| {c['client']} ({c['name']}) | {c['node']} | {c['owed']} "
            f"| {c['delivered']} | {c['missing']} | {c['doubled']} "
            f"| {c['out_of_order']} | {notices or '-'} |"
        )
    t = results["totals"]
    lines.append(
        f"| all | | {t['owed']} | {t['delivered']} | {t['missing']} "
        f"| {t['doubled']} | {t['out_of_order']} | |"
    )
    lines.append("")
    lines.append(f"Verdict: {'ok' if results['ok'] else 'FAILED'}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """
    Run the soak; return the exit status.
    """
    parser = argparse.ArgumentParser(
        prog="python -m bench.bus_soak", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--clients-per-node", type=int, default=3)
    parser.add_argument(
        "--rate", type=float, default=10.0, help="lines a second per client"
    )
    parser.add_argument(
        "--down", type=float, default=5.0, help="seconds Redis stays down"
    )
    parser.add_argument(
        "--restart-at",
        type=float,
        default=0.5,
        help="when to kill Redis, as a share of --seconds",
    )
    parser.add_argument(
        "--failover",
        type=int,
        default=0,
        metavar="N",
        help="a primary, two replicas and three sentinels; kill the primary "
        "N times instead of restarting Redis",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    if not (
        args.seconds > 0
        and args.clients_per_node >= 1
        and 0 < args.rate <= 1000
        and 0 <= args.down < args.seconds
        and 0 < args.restart_at < 1
        and 0 <= args.failover <= 20
    ):
        parser.error("bad counts: see --help")
    installSignalHandlers()
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    logDir = RESULTS / "logs" / f"bus-soak-{stamp}"
    sentinels = None
    if args.failover:
        spec = serverNamed(SOCKSERVE_BUS_2NODES)
        logDir.mkdir(parents=True, exist_ok=True)
        sentinels = SentinelBus(logDir / "sentinel", None)
        nodes = []
        try:
            sentinels.start()
            for index in range(spec.nodes):
                log = logDir / f"{spec.name}-chat-node{index + 1}.log"
                nodes.append(_startNode(spec, "chat", None, log, sentinels.url))
        except BaseException:
            sentinels.stop()
            stopAll()
            raise
        server = RunningServer(spec, "chat", nodes)
    else:
        server = startServer(serverNamed(SOCKSERVE_BUS_2NODES), "chat", None, logDir)
    try:
        results = asyncio.run(soak(server, args, sentinels))
        results["nodes_alive_at_end"] = server.alive() and (
            sentinels is None or sentinels.alive()
        )
    finally:
        server.stop()
        if sentinels is not None:
            sentinels.stop()
        stopAll()
    t = results["totals"]
    results["ok"] = bool(
        results["synchronised_at_end"]
        and results["nodes_alive_at_end"]
        and not (t["missing"] or t["doubled"] or t["out_of_order"] or t["bogus"])
        and results["who_counts"] == [results["clients"]]
        and results["redis_members"] == results["clients"]
    )
    results["logs"] = str(logDir)
    report = summary(results)
    print(report)
    output = args.json or RESULTS / f"bus-soak-{stamp}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2) + "\n")
    output.with_suffix(".md").write_text(report + "\n")
    sys.stderr.write(f"bus soak: wrote {output} and .md; logs in {logDir}\n")
    return 0 if results["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())

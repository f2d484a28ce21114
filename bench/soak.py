"""
A bounded soak of the chat server: clients join, chat and vanish at random.

    python -m bench.soak [--seconds 60] [--rounds 3] [--clients 200]

Each round runs for a fixed time with up to C{--clients} virtual clients over
loopback. Every tick a random client joins, leaves cleanly, vanishes with a
reset (SO_LINGER 0), or sends a numbered line. At the end of the round the
clients still connected check that they received every line owed to them: every
line sent by another client after they had joined (had read their
C{* you are} line), in each sender's order. The server's RSS is read after
each round, once every client has gone: it must come back to the level of the
first round (memory that grows round after round is a leak).

Exits 1 if any line owed to a live client is missing or out of order, or if
memory keeps growing; prints a summary (and writes JSON with --json).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from bench.clients import welcome

LISTENING = re.compile(rb"sockserve chat server listening on 127\.0\.0\.1:(\d+)")
MESSAGE = re.compile(rb"<([^>]+)> m (\d+) (\d+)")
FIN = re.compile(rb"<([^>]+)> fin (\d+)")
SYNC_TIMEOUT = 30.0
TWISTD = Path(sys.executable).parent / "twistd"


@dataclass
class Client:
    """
    One virtual client of the soak.
    """

    ident: int
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    name: str = ""
    joined: bool = False
    sent: int = 0
    # Keyed by the sender's ident, which its lines carry: a name (the
    # client's address) can come back with a new client once its port is
    # free again, most quickly after a reset.
    received: dict[int, list[int]] = field(default_factory=lambda: defaultdict(list))
    fins: dict[int, set[str]] = field(default_factory=lambda: defaultdict(set))
    finSeen: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None


@dataclass
class Ledger:
    """
    What was sent, by whom and when (in the driver's order of events).
    """

    events: int = 0
    sent: list[tuple[int, int, int]] = field(default_factory=list)
    joinedAt: dict[int, int] = field(default_factory=dict)

    def tick(self) -> int:
        self.events += 1
        return self.events


async def readLines(client: Client, ledger: Ledger) -> None:
    """
    Read a client's lines until the server closes it; record its join and
    every message it receives.
    """
    while True:
        line = await client.reader.readline()
        if not line:
            return
        greeted = None if client.joined else welcome(line)
        if greeted is not None:
            client.name = greeted.name
            client.joined = True
            ledger.joinedAt[client.ident] = ledger.tick()
            continue
        match = MESSAGE.match(line)
        if match:
            client.received[int(match.group(2))].append(int(match.group(3)))
            continue
        match = FIN.match(line)
        if match:
            client.fins[int(match.group(2))].add(match.group(1).decode())
            client.finSeen.set()


async def synchronise(survivors: list[Client], tag: int) -> bool:
    """
    Have every survivor send C{fin TAG}, and wait (bounded) until each has
    received the others': everything the server read before is then relayed.
    """
    names = {c.name for c in survivors}
    for client in survivors:
        client.writer.write(b"fin %d\n" % tag)

    async def complete(client: Client) -> None:
        while client.fins[tag] != names - {client.name}:
            client.finSeen.clear()
            await client.finSeen.wait()

    try:
        await asyncio.wait_for(
            asyncio.gather(*(complete(c) for c in survivors)), SYNC_TIMEOUT
        )
    except TimeoutError:
        return False
    return True


async def runRound(
    port: int, seconds: float, maxClients: int, rng: random.Random
) -> dict[str, int]:
    """
    Run one round; return its counts, with C{missing} and C{disorder}.
    """
    ledger = Ledger()
    clients: dict[int, Client] = {}
    resetIdents: set[int] = set()
    nextIdent = 0
    counts = {"joins": 0, "leaves": 0, "resets": 0, "lines": 0}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        roll = rng.random()
        live = [c for c in clients.values() if c.joined]
        if (roll < 0.05 or not live) and len(clients) < maxClients:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            client = Client(nextIdent, reader, writer)
            client.task = asyncio.create_task(readLines(client, ledger))
            clients[nextIdent] = client
            nextIdent += 1
            counts["joins"] += 1
        elif roll < 0.07 and live:
            victim = rng.choice(live)
            if rng.random() < 0.5:
                victim.writer.close()
                counts["leaves"] += 1
            else:
                # A reset discards what the server had not read yet: lines
                # from a client that resets are not owed to anyone.
                resetIdents.add(victim.ident)
                sock = victim.writer.get_extra_info("socket")
                sock.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                victim.writer.transport.abort()
                counts["resets"] += 1
            del clients[victim.ident]
        elif live:
            sender = rng.choice(live)
            burst = rng.randint(1, 5)
            data = b""
            for _ in range(burst):
                data += b"m %d %d\n" % (sender.ident, sender.sent)
                ledger.sent.append((ledger.tick(), sender.ident, sender.sent))
                sender.sent += 1
            sender.writer.write(data)
            counts["lines"] += burst
        await asyncio.sleep(0)
    # Two rounds of fin lines: once each survivor has the others' second
    # fin, the server has relayed everything it read before the first.
    survivors = [c for c in clients.values() if c.joined]
    synchronised = await synchronise(survivors, 1) and await synchronise(survivors, 2)
    owed = missing = disorder = 0
    for client in survivors:
        joined = ledger.joinedAt[client.ident]
        for tick, senderIdent, number in ledger.sent:
            if (
                senderIdent == client.ident
                or senderIdent in resetIdents
                or tick < joined
            ):
                continue
            owed += 1
            if number not in client.received.get(senderIdent, ()):
                missing += 1
        for numbers in client.received.values():
            if numbers != sorted(numbers):
                disorder += 1
    for client in clients.values():
        client.writer.close()
    await asyncio.gather(
        *(c.task for c in clients.values() if c.task), return_exceptions=True
    )
    counts.update(
        survivors=len(survivors),
        owed=owed,
        missing=missing,
        disorder=disorder,
        unsynchronised=int(not synchronised),
    )
    return counts


def rss(pid: int) -> int:
    """
    Return the resident set size of process C{pid}, in KiB.
    """
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def startServer(
    maxClients: int, logPath: Path, *options: str
) -> tuple[subprocess.Popen[bytes], int]:
    """
    Start a chat server (with C{options}) for C{maxClients} on an OS-chosen
    loopback port, logging to C{logPath} (a file: a pipe nobody drains would
    block the server); return it and its port.
    """
    with logPath.open("wb") as logFile:
        server = subprocess.Popen(
            [
                str(TWISTD),
                "--pidfile=",
                "-n",
                "sockserve",
                "--port=0",
                f"--max-clients={maxClients + 10}",
                *options,
            ],
            stdout=logFile,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and server.poll() is None:
        match = LISTENING.search(logPath.read_bytes())
        if match:
            return server, int(match.group(1))
        time.sleep(0.05)  # polling a log file for the start-up line
    server.kill()
    server.wait()
    raise RuntimeError(f"the server did not start:\n{logPath.read_text()}")


def main(argv: list[str] | None = None) -> int:
    """
    Run the soak; return the exit status.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=200, help="at most at once")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    logDirectory = Path(tempfile.mkdtemp(prefix="sockserve-soak-"))
    server, port = startServer(args.clients, logDirectory / "server.log")
    results = []
    try:
        baseline = rss(server.pid)
        for index in range(args.rounds):
            counts = asyncio.run(runRound(port, args.seconds, args.clients, rng))
            time.sleep(1.0)  # let the server finish closing the last clients
            counts["rss_kib"] = rss(server.pid)
            results.append(counts)
            print(f"round {index + 1}: {counts}", flush=True)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    first = results[0]["rss_kib"]
    last = results[-1]["rss_kib"]
    growth = last - first
    lost = sum(r["missing"] + r["disorder"] + r["unsynchronised"] for r in results)
    # Allocator noise: allow 5% or 2 MiB over the first round's level.
    leaking = growth > max(2048, first * 0.05)
    summary = {
        "baseline_rss_kib": baseline,
        "rounds": results,
        "rss_growth_after_first_round_kib": growth,
        "lost_or_disordered": lost,
        "ok": not lost and not leaking,
    }
    summary["server_log"] = str(logDirectory / "server.log")
    print(json.dumps(summary, indent=2))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())

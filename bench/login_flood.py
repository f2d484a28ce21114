"""
The login flood (issue #20): a typist's round trip while wrong logins
arrive at 200 a second, against the same round trip without them.

    python -m bench.login_flood [--seconds 10] [--rate 200] [--connections 100]
                                [--rounds 1] [--scenarios quiet,control,...]

One C{twistd -n sockserve --quiet --accounts FILE --max-clients 1000} on a
loopback port, its accounts written by the installed C{sockserve-passwd}
(real argon2id parameters). In this process (one monotonic clock):

    - the I{typist} sends 10 lines a second, C{T SEQ SENT_NS}, and a
      I{reader} on another connection notes when each arrives: the round
      trip through the server, typist to reader;
    - the I{guessers}: C{--connections} connections sending C{/login NAME
      WRONG} lines, C{--rate} a second in all, reading the answers (a
      connection may run two commands a second after a burst of 20: the
      server's command rate, so 100 connections for 200 a second), in a room
      of their own (C{#guessers}), so that the typist's room is the same
      with them and without.

The scenarios, each on a fresh server: C{quiet} (no guessers), C{control}
(the same connections and rate from 127.0.0.2, each line C{/logout}: as
cheap a command as there is, no login: what the load costs the typist
besides logins), C{idle} (the same connections, sending nothing),
C{one-address} (every guesser from 127.0.0.2, guessing alice's password:
the per-address and per-account waits refuse most guesses unchecked) and
C{many-addresses} (each guesser from its own address, 127.0.1.N, guessing
names that are no account: every guess is a password check, against the
dummy hash, in the pool of two threads, up to 32 under way, beyond which
the server says it is busy). Reported: the typist's p50/p99/max round trip,
lines lost, the answers the guessers got, and the server's CPU seconds a
second. Timing is reported, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

BIN = Path(sys.executable).parent
LISTENING = re.compile(rb"sockserve chat server listening on 127\.0\.0\.1:(\d+)")
TYPIST_RATE = 10.0


@dataclass
class Outcome:
    scenario: str
    latencies: list[float] = field(default_factory=list)
    sent: int = 0
    answers: Counter[str] = field(default_factory=Counter)
    guesses: int = 0
    cpu: float = 0.0
    guesserCpu: float = 0.0
    seconds: float = 0.0


def startServer(directory: Path) -> tuple[subprocess.Popen[bytes], int]:
    accounts = directory / "accounts"
    if not accounts.exists():
        subprocess.run(
            [str(BIN / "sockserve-passwd"), str(accounts), "alice"],
            input=b"correct horse battery\n",
            check=True,
            capture_output=True,
        )
    process = subprocess.Popen(
        [
            str(BIN / "twistd"),
            "-n",
            "--pidfile=",
            "sockserve",
            "--quiet",
            "--port",
            "tcp:0:interface=127.0.0.1",
            "--accounts",
            str(accounts),
            "--max-clients",
            "1000",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=directory,
    )
    assert process.stdout is not None
    output = b""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        chunk = os.read(process.stdout.fileno(), 65536)
        if not chunk:
            break
        output += chunk
        found = LISTENING.search(output)
        if found:
            return process, int(found[1])
    process.kill()
    raise SystemExit(f"the server did not start: {output.decode(errors='replace')}")


def cpuSeconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


async def connect(
    port: int, source: str = "127.0.0.1"
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, local_addr=(source, 0), limit=1 << 20
    )
    while b"you are " not in await asyncio.wait_for(reader.readline(), 10):
        pass
    return reader, writer


async def guesser(
    port: int,
    source: str,
    name: str,
    rate: float,
    start: float,
    stop: float,
    outcome: Outcome,
    number: int,
) -> None:
    reader, writer = await connect(port, source)
    # Out of the typist's room: its lines cost the guessers nothing, and the
    # room is the same as without them.
    writer.write(b"/join guessers\n")
    while b"you are now in #guessers" not in await asyncio.wait_for(
        reader.readline(), 10
    ):
        pass

    async def read() -> None:
        while True:
            line = await reader.readline()
            if not line:
                return
            if line.startswith(b"ERROR "):
                text = line[6:].decode(errors="replace")
                if text.startswith("too many failed logins"):
                    text = "too many failed logins"
                outcome.answers[text.strip()] += 1

    reading = asyncio.ensure_future(read())
    interval = 1.0 / rate
    await asyncio.sleep(max(0.0, start - time.monotonic()))
    next = time.monotonic() + (number % 10) * interval / 10
    count = 0
    while time.monotonic() < stop and name == "idle":
        await asyncio.sleep(stop - time.monotonic())
    while time.monotonic() < stop:
        count += 1
        who = name if name else f"nobody{number}x{count}"
        if name == "-":
            # The control: as many commands as cheap, none a login.
            writer.write(b"/logout\n")
        else:
            writer.write(f"/login {who} wrong-{count}\n".encode())
        outcome.guesses += 1
        next += interval
        await asyncio.sleep(max(0.0, next - time.monotonic()))
    await asyncio.sleep(1.0)
    reading.cancel()
    writer.close()


async def typist(port: int, stop: float, outcome: Outcome) -> None:
    _, typing = await connect(port)
    reading, readerWriter = await connect(port)
    sentAt: dict[int, float] = {}

    async def read() -> None:
        while True:
            line = await reading.readline()
            if not line:
                return
            found = re.search(rb"> T (\d+) ", line)
            if found:
                number = int(found[1])
                outcome.latencies.append(time.monotonic() - sentAt.pop(number))

    reader = asyncio.ensure_future(read())
    number = 0
    next = time.monotonic()
    while time.monotonic() < stop:
        number += 1
        sentAt[number] = time.monotonic()
        typing.write(f"T {number} {time.monotonic_ns()}\n".encode())
        outcome.sent += 1
        next += 1.0 / TYPIST_RATE
        await asyncio.sleep(max(0.0, next - time.monotonic()))
    deadline = time.monotonic() + 10
    while sentAt and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    reader.cancel()
    typing.close()
    readerWriter.close()


async def guess(
    port: int,
    scenario: str,
    rate: float,
    connections: int,
    after: float,
    seconds: float,
) -> Outcome:
    """
    The guessers alone (run in a process of their own, so that the
    typist's clock is not theirs): C{connections} of them from C{after}
    seconds on, for C{seconds}.
    """
    outcome = Outcome(scenario)
    start = time.monotonic() + after
    stop = start + seconds
    tasks = []
    for number in range(connections):
        if scenario == "one-address":
            source, name = "127.0.0.2", "alice"
        elif scenario == "control":
            source, name = "127.0.0.2", "-"
        elif scenario == "idle":
            source, name = "127.0.0.2", "idle"
        else:
            source, name = f"127.0.{1 + number // 250}.{1 + number % 250}", ""
        tasks.append(
            guesser(
                port, source, name, rate / connections, start, stop, outcome, number
            )
        )
    await asyncio.gather(*tasks)
    return outcome


async def run(scenario: str, arguments: argparse.Namespace, directory: Path) -> Outcome:
    process, port = startServer(directory)
    outcome = Outcome(scenario)
    guessing: subprocess.Popen[bytes] | None = None
    try:
        settle = 3.0
        if scenario != "quiet":
            guessing = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "bench.login_flood",
                    "--guess",
                    str(port),
                    scenario,
                    str(arguments.rate),
                    str(arguments.connections),
                    str(settle),
                    str(arguments.seconds),
                ],
                stdout=subprocess.PIPE,
            )
        await asyncio.sleep(settle)
        cpu = cpuSeconds(process.pid)
        began = time.monotonic()
        await typist(port, began + arguments.seconds, outcome)
        outcome.cpu = cpuSeconds(process.pid) - cpu
        outcome.seconds = time.monotonic() - began
        if guessing is not None:
            out, _ = guessing.communicate(timeout=60)
            found = json.loads(out)
            outcome.guesses = found["guesses"]
            outcome.answers = Counter(found["answers"])
            outcome.guesserCpu = found["cpu"]
    finally:
        if guessing is not None and guessing.poll() is None:
            guessing.kill()
        process.terminate()
        process.wait(10)
    return outcome


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def report(outcome: Outcome) -> str:
    latencies = [value * 1000 for value in outcome.latencies]
    lost = outcome.sent - len(latencies)
    answers = ", ".join(f"{text}: {n}" for text, n in outcome.answers.most_common())
    rate = outcome.guesses / outcome.seconds if outcome.seconds else 0.0
    if not latencies:
        return f"{outcome.scenario:15} no typed line arrived"
    return (
        f"{outcome.scenario:15} typist p50 {statistics.median(latencies):6.2f} ms  "
        f"p99 {percentile(latencies, 0.99):6.2f} ms  max {max(latencies):6.2f} ms  "
        f"lost {lost}/{outcome.sent}  server CPU {outcome.cpu / outcome.seconds:4.2f} "
        f"s/s  guesses {outcome.guesses} ({rate:.0f}/s, their driver "
        f"{outcome.guesserCpu:.1f} CPU s)\n"
        f"{'':15} answers: {answers or '-'}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--connections", type=int, default=100)
    parser.add_argument(
        "--scenarios", default="quiet,control,one-address,many-addresses,quiet"
    )
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--guess", nargs=6, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.guess:
        port, scenario, rate, connections, after, seconds = arguments.guess
        outcome = asyncio.run(
            guess(
                int(port),
                scenario,
                float(rate),
                int(connections),
                float(after),
                float(seconds),
            )
        )
        print(
            json.dumps(
                {
                    "guesses": outcome.guesses,
                    "answers": outcome.answers,
                    "cpu": time.process_time(),
                }
            )
        )
        return
    with tempfile.TemporaryDirectory(prefix="sockserve-login-flood-") as temporary:
        directory = Path(temporary)
        summary: dict[str, list[tuple[float, float]]] = {}
        for round in range(arguments.rounds):
            for scenario in arguments.scenarios.split(","):
                outcome = asyncio.run(run(scenario, arguments, directory))
                print(f"round {round + 1}: {report(outcome)}", flush=True)
                if outcome.latencies:
                    latencies = [value * 1000 for value in outcome.latencies]
                    summary.setdefault(scenario, []).append(
                        (statistics.median(latencies), percentile(latencies, 0.99))
                    )
        print("median over rounds of the typist's round trip:")
        for scenario, figures in summary.items():
            p50 = statistics.median(f[0] for f in figures)
            p99 = statistics.median(f[1] for f in figures)
            print(f"  {scenario:15} p50 {p50:6.2f} ms  p99 {p99:6.2f} ms")


if __name__ == "__main__":
    main()

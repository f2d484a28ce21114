"""
How many people one sockserve chat node holds, and what each of them costs.

    python -m bench.scale [--clients 100000] [--duration 30] [--transport ws]

One chat server (C{twistd -n sockserve --quiet}, pinned to the first core)
takes C{--clients} TCP members (or WebSocket members, C{--transport ws},
on its C{--web} listener, or IRC members, C{--transport irc}, on its
C{--irc} listener, each joining its room's channel, or the three in turn in
each room, C{--transport mix}) from the load
generator (C{loadgen scale}, pinned to the second core), at most
C{--concurrency} of them connecting at once, each from one of C{--sources}
addresses in 127.0.0.0/8 (each address has its own ephemeral ports) and
each going to its room (by C{/join}, or its channel): 1,000 rooms of 100 for
100,000. Then, once C{--settle} seconds have let the
last joins' announcements go out, one member in a hundred (one a room) says
a line a second, the senders spread evenly over the second, for
C{--duration} seconds.

The report begins with how many were connected at once (C{100,000
connected}, or how far it got and what stopped it), then: the time to
connect everyone, the server's memory per connection (the growth of its
C{VmRSS} divided by the connections, from its start and over the second
half of them, read with the first half connected), deliveries a second,
their p50 and p99 latency, the server's CPU per delivery (C{utime + stime}
of C{/proc/PID/stat} over the measured window, divided by the deliveries),
how busy the server's core was (C{/proc/stat}), and what the kernel holds
(C{/proc/net/sockstat}: TCP sockets in use, both ends of every connection,
and C{TCP ... mem}, their queued data; the whole machine's).

The open-file limit of this process is raised for the server and the load
generator it starts (their descriptor limits follow from it); a system whose
hard limit is lower and which does not let it be raised (no
C{CAP_SYS_RESOURCE}) stops the run short, and the report says so. Loopback
only; not part of the tests or of C{python -m bench}.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import resource
import selectors
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from bench.build import buildLoadGenerator
from bench.processes import (
    cores,
    pinned,
    rssKiB,
    startChild,
    stopChild,
    tail,
    waitForLine,
)

VENV_BIN = Path(sys.executable).parent
RESULTS = Path(__file__).resolve().parent / "results"
LISTENING = {
    "tcp": re.compile(r"sockserve chat server listening on 127\.0\.0\.1:(\d+)"),
    "ws": re.compile(r"sockserve web server listening on 127\.0\.0\.1:(\d+)"),
    "irc": re.compile(r"sockserve irc server listening on 127\.0\.0\.1:(\d+)"),
}
#: The front ends' names in the report.
FRONT_ENDS = {"tcp": "TCP", "ws": "WebSocket", "irc": "IRC", "mix": "mixed"}
#: The listeners each choice of front end needs.
LISTENERS = {"tcp": ["tcp"], "ws": ["ws"], "irc": ["irc"], "mix": ["tcp", "ws", "irc"]}
#: Where sockserve takes WebSocket clients.
WEBSOCKET_PATH = "/ws"
#: Descriptors beyond one a client, for the listener, logs and the like (and
#: what sockserve keeps free below its limit, 100).
SPARE_FILES = 1024
#: Clients from one source address, well below its ~28,000 ephemeral ports.
PER_SOURCE = 10_000
#: Members a room has in the scenario, and one sender in this many.
ROOM_SIZE = 100
#: Seconds the harness waits for a line from the load generator, beyond the
#: phase's own bound.
SLACK = 60.0
#: Refusals, failures and limits in the server's log.
TROUBLE = re.compile(r"#(warn|error|critical)\]|Too many open files")


@dataclass(frozen=True)
class ScaleSettings:
    """
    What one run does.

    @ivar clients: members to connect.
    @ivar rooms: rooms they are spread over (member i in room-(i mod rooms)).
    @ivar senders: members that say a line every C{interval} seconds (the
        first C{senders}, one a room when there are as many as rooms).
    @ivar sources: source addresses, 127.0.0.1 to 127.0.0.C{sources}.
    @ivar concurrency: members connecting (not yet in their room) at once.
    @ivar duration: seconds of the measured window.
    @ivar interval: seconds between two lines of one sender.
    @ivar size: bytes of each line, its ending included.
    @ivar connectTimeout: seconds connecting everyone may take.
    @ivar transport: the members' front end: C{tcp} (lines), C{ws}
        (WebSocket, on C{--web}, lines as text frames) or C{irc} (on
        C{--irc}, each joining the channel of its room) or C{mix} (the
        members of each room on the three in turn).
    @ivar settle: seconds between everyone connected and the measured window
        (the last joins' announcements go out, quietly joined members'
        summaries among them, 5 s after).
    @ivar reactor: twistd's C{--reactor} for the server (C{epoll}: Twisted's
        own), or C{None} for sockserve's default.
    """

    clients: int
    rooms: int
    senders: int
    sources: int
    concurrency: int
    duration: float
    interval: float
    size: int
    connectTimeout: float
    settle: float = 10.0
    transport: str = "tcp"
    reactor: str | None = None

    @property
    def roomSize(self) -> int:
        """
        The most members one room has.
        """
        return math.ceil(self.clients / self.rooms)


def parseArguments(argv: list[str] | None = None) -> ScaleSettings:
    """
    Parse the command line into L{ScaleSettings}; rooms, senders and
    sources default to what C{--clients} asks for (rooms of 100, one sender
    a room, 10,000 members a source address).
    """
    parser = argparse.ArgumentParser(
        prog="python -m bench.scale", description=__doc__.split("\n\n")[0].strip()
    )
    parser.add_argument("--clients", type=int, default=100_000)
    parser.add_argument("--rooms", type=int, help="default: clients / 100")
    parser.add_argument("--senders", type=int, help="default: one a room")
    parser.add_argument("--sources", type=int, help="default: one a 10,000 clients")
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--connect-timeout", type=float, default=300.0)
    parser.add_argument("--settle", type=float, default=10.0)
    parser.add_argument("--transport", choices=tuple(FRONT_ENDS), default="tcp")
    parser.add_argument(
        "--reactor",
        help="twistd's --reactor for the server (epoll: Twisted's own); "
        "default: sockserve's",
    )
    args = parser.parse_args(argv)
    if args.clients < 2:
        parser.error("--clients must be at least 2")
    rooms = args.rooms if args.rooms is not None else max(1, args.clients // ROOM_SIZE)
    if not 1 <= rooms <= args.clients // 2:
        parser.error("--rooms must be 1 to clients / 2 (two members a room)")
    senders = args.senders if args.senders is not None else rooms
    sources = (
        args.sources
        if args.sources is not None
        else max(1, math.ceil(args.clients / PER_SOURCE))
    )
    checks = [
        (1 <= senders <= args.clients, "--senders must be 1 to --clients"),
        (1 <= sources <= 250, "--sources must be 1 to 250"),
        (args.concurrency >= 1, "--concurrency must be at least 1"),
        (1 <= args.duration <= 3600, "--duration must be 1 to 3600 seconds"),
        (0.001 <= args.interval <= 60, "--interval must be 0.001 to 60 seconds"),
        (args.duration >= args.interval, "--duration must be at least --interval"),
        (48 <= args.size <= 4000, "--size must be 48 to 4000 bytes"),
        (1 <= args.connect_timeout <= 3600, "--connect-timeout must be 1 to 3600"),
        (0 <= args.settle <= 60, "--settle must be 0 to 60 seconds"),
    ]
    for ok, message in checks:
        if not ok:
            parser.error(message)
    return ScaleSettings(
        clients=args.clients,
        rooms=rooms,
        senders=senders,
        sources=sources,
        concurrency=args.concurrency,
        duration=args.duration,
        interval=args.interval,
        size=args.size,
        connectTimeout=args.connect_timeout,
        settle=args.settle,
        transport=args.transport,
        reactor=args.reactor,
    )


def raiseDescriptorLimit(wanted: int) -> tuple[int, str | None]:
    """
    Raise this process's open-file limit (soft and hard) to C{wanted}, for
    the processes it starts; if it may not, raise the soft limit to the
    hard one.

    @return: the soft limit in force afterwards, and why it is below
        C{wanted} (C{None} if it is not).
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= wanted:
        return soft, None
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, max(wanted, hard)))
        return wanted, None
    except (ValueError, OSError):
        pass
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return max(soft, hard), (
        f"the open-file limit, {max(soft, hard):,} (hard), which this process "
        f"may not raise to {wanted:,} (that needs CAP_SYS_RESOURCE, or a higher "
        "hard limit given to the shell: ulimit -Hn)"
    )


def tcpSocketMemory(sockstat: str) -> tuple[int, int]:
    """
    Return the TCP sockets in use and the kernel's TCP socket memory, in
    bytes, from the text of C{/proc/net/sockstat} (C{TCP: inuse N ... mem
    PAGES}).
    """
    match = re.search(r"^TCP:.*\binuse (\d+)\b.*\bmem (\d+)\b", sockstat, re.MULTILINE)
    if match is None:
        raise ValueError(f"no TCP line with inuse and mem in {sockstat!r}")
    return int(match.group(1)), int(match.group(2)) * os.sysconf("SC_PAGE_SIZE")


def coreTimes(stat: str, core: int) -> tuple[int, int]:
    """
    Return the busy and the total time (in clock ticks) of CPU C{core} so
    far, from the text of C{/proc/stat} (idle and iowait are not busy).
    """
    match = re.search(rf"^cpu{core} ([\d ]+)$", stat, re.MULTILINE)
    if match is None:
        raise ValueError(f"no cpu{core} line in /proc/stat")
    ticks = [int(value) for value in match.group(1).split()]
    idle = sum(ticks[3:5])
    return sum(ticks) - idle, sum(ticks)


def readSockstat() -> tuple[int, int]:
    """
    The machine's TCP sockets in use and their memory, in bytes, now.
    """
    return tcpSocketMemory(Path("/proc/net/sockstat").read_text())


def serverCommand(settings: ScaleSettings) -> list[str]:
    """
    The chat server's command: on a port of its choosing (and its web
    listener on another, for WebSocket members), quiet, with rooms
    for everyone (and for the room members arrive in before their C{/join},
    which holds at most C{concurrency} of them).
    """
    needs = LISTENERS[settings.transport]
    web = ["--web=0"] * ("ws" in needs) + ["--irc=0"] * ("irc" in needs)
    return [
        str(VENV_BIN / "twistd"),
        "--pidfile=",
        *([f"--reactor={settings.reactor}"] if settings.reactor else []),
        "-n",
        "sockserve",
        "--port=0",
        *web,
        "--quiet",
        f"--max-clients={max(settings.roomSize, settings.concurrency) + 10}",
        f"--max-rooms={settings.rooms + 10}",
    ]


def loadCommand(
    loadgen: Path, settings: ScaleSettings, ports: dict[str, int], serverPid: int
) -> list[str]:
    """
    The load generator's command for C{settings}, against the server's
    C{ports} (by front end: C{tcp}, C{ws}, C{irc}), timing the CPU of
    C{serverPid}, holding its connections at each phase until told on stdin.
    """
    front: list[str] = []
    if settings.transport == "mix":
        front = [
            "--mix",
            "--ws-port",
            str(ports["ws"]),
            "--irc-port",
            str(ports["irc"]),
        ]
        front += ["--ws", WEBSOCKET_PATH, "--irc", "room"]
    elif settings.transport == "ws":
        front = ["--ws", WEBSOCKET_PATH]
    elif settings.transport == "irc":
        front = ["--irc", "room"]
    main = "tcp" if settings.transport == "mix" else settings.transport
    return [
        str(loadgen),
        "scale",
        *front,
        "--port",
        str(ports[main]),
        "--clients",
        str(settings.clients),
        "--rooms",
        str(settings.rooms),
        "--senders",
        str(settings.senders),
        "--sources",
        str(settings.sources),
        "--concurrency",
        str(settings.concurrency),
        "--size",
        str(settings.size),
        "--interval-ms",
        str(max(1, round(settings.interval * 1000))),
        "--duration",
        str(round(settings.duration * 1000)),
        "--connect-timeout-ms",
        str(round(settings.connectTimeout * 1000)),
        "--server-pid",
        str(serverPid),
        "--hold",
    ]


@dataclass
class ScaleResult:
    """
    What one run measured: the load generator's report (C{load}), and what
    the harness read from C{/proc} before the clients came (C{Start}), once
    half of them were connected (C{Half}, with C{heldHalf} of them in their
    rooms), once they were all connected (C{Connected}) and after the measured window
    (C{Measured}): the server's RSS, in KiB, and the machine's TCP sockets
    and their memory, in bytes.
    """

    settings: ScaleSettings
    load: dict[str, Any] = field(default_factory=dict)
    rssStart: int = 0
    rssHalf: int = 0
    heldHalf: int = 0
    rssConnected: int = 0
    rssMeasured: int = 0
    socketsStart: int = 0
    socketsConnected: int = 0
    socketMemoryStart: int = 0
    socketMemoryConnected: int = 0
    socketMemoryMeasured: int = 0
    limitProblem: str | None = None
    loadAverage: str = ""
    placement: str = ""
    serverCoreBusy: float | None = None
    serverTrouble: list[str] = field(default_factory=list)
    serverExited: int | None = None
    failure: str | None = None

    @property
    def connected(self) -> int:
        """
        The members that were in their rooms at once (after connecting).
        """
        return int(self.load.get("connected_held", 0))


def plural(count: int, one: str, many: str | None = None) -> str:
    """
    C{count} and the noun C{one}, or C{many} (C{one} and C{s} by default)
    unless C{count} is 1.
    """
    return f"{count:,} {one if count == 1 else many or one + 's'}"


def mib(value: int) -> str:
    """
    C{value} bytes, shown in MiB with one decimal.
    """
    return f"{value / 2**20:,.1f} MiB"


def kib(value: float) -> str:
    """
    C{value} KiB, shown in MiB with one decimal.
    """
    return f"{value / 1024:,.1f} MiB"


def stoppedBy(result: ScaleResult) -> str:
    """
    Why fewer than everyone were connected, as well as the run knows.
    """
    load = result.load
    reasons = []
    if result.limitProblem:
        reasons.append(result.limitProblem)
    if result.serverExited is not None:
        reasons.append(f"the server exited with status {result.serverExited}")
    if load.get("server_error"):
        reasons.append(f"the server answered '{load['server_error']}'")
    elif load.get("connect_error"):
        reasons.append(f"the first failure: {load['connect_error']}")
    if result.serverTrouble:
        reasons.append(f"the server's log: {result.serverTrouble[0]}")
    if result.failure:
        reasons.append(result.failure)
    if load.get("error_sample") and not load.get("connect_error"):
        reasons.append(str(load["error_sample"]))
    return "; ".join(reasons) or "unknown (see the server's log)"


def formatReport(result: ScaleResult) -> str:
    """
    The report: how many were connected at once first, then each figure.
    """
    s = result.settings
    load = result.load
    connected = result.connected
    lines = []
    front = FRONT_ENDS[s.transport]
    where = (
        f"{front}, in {plural(s.rooms, 'room')} of {s.roomSize:,}, "
        f"from {plural(s.sources, 'source address', 'source addresses')}"
    )
    if connected >= s.clients:
        lines.append(f"{connected:,} connected ({where})")
    else:
        lines.append(
            f"{connected:,} of {s.clients:,} connected ({where}): stopped by "
            + stoppedBy(result)
        )
    if not load:
        return "\n".join(lines)
    seconds = float(load.get("connect_seconds", 0))
    rate = f" ({connected / seconds:,.0f} a second)" if seconds > 0 else ""
    lines.append(f"time to connect everyone: {seconds:.1f} s{rate}")
    if connected:
        growth = result.rssConnected - result.rssStart
        secondHalf = connected - result.heldHalf
        marginal = half = ""
        if result.rssHalf and secondHalf > 0:
            each = (result.rssConnected - result.rssHalf) / secondHalf
            marginal = f", {each:.2f} KiB each of the second {secondHalf:,}"
            half = f"{kib(result.rssHalf)} with {result.heldHalf:,} connected, "
        lines.append(
            f"server memory: {growth / connected:.2f} KiB a connection{marginal} "
            f"(RSS {kib(result.rssStart)} at start, {half}"
            f"{kib(result.rssConnected)} with everyone, {kib(result.rssMeasured)} "
            "after the measured window)"
        )
    deliveries = int(load.get("completed", 0))
    window = float(load.get("seconds", 0))
    lines.append(
        f"deliveries: {float(load.get('rate', 0)):,.0f} a second ({deliveries:,} in "
        f"{window:.1f} s; {s.senders:,} senders, a line every {s.interval:g} s each; "
        f"{int(load.get('missing', 0)):,} missing, "
        f"{int(load.get('window_errors', load.get('errors', 0))):,} errors)"
    )
    p50, p99 = float(load.get("p50_us", -1)), float(load.get("p99_us", -1))
    if p50 >= 0:
        lines.append(f"delivery latency: p50 {p50 / 1e3:.2f}, p99 {p99 / 1e3:.2f} ms")
    cpu = float(load.get("server_cpu_seconds", 0))
    busy = ""
    if result.serverCoreBusy is not None:
        busy = f", which was {result.serverCoreBusy:.0f}% busy with everything on it"
    if deliveries:
        lines.append(
            f"CPU per delivery: {cpu / deliveries * 1e6:.2f} us of the server's "
            f"(utime+stime {cpu:.2f} s over the window, "
            f"{float(load.get('server_cpu_pct', 0)):.0f}% of its core{busy})"
        )
    lines.append(
        "kernel (/proc/net/sockstat, the whole machine's): TCP sockets in use "
        f"{result.socketsStart:,} at start, {result.socketsConnected:,} with "
        f"everyone connected (both ends of each connection); TCP mem (queued "
        f"data) {mib(result.socketMemoryStart)} at start, "
        f"{mib(result.socketMemoryConnected)} with everyone connected, "
        f"{mib(result.socketMemoryMeasured)} after the measured window"
    )
    if result.placement or result.loadAverage:
        lines.append(
            f"machine: {result.placement}; load average {result.loadAverage} at start "
            "(other work on the server's core slows it)"
        )
    return "\n".join(lines)


class LineReader:
    """
    Lines from a child's stdout, each waited for at most a given time.
    """

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        self._selector = selectors.DefaultSelector()
        self._selector.register(stream, selectors.EVENT_READ)
        self._pending = b""
        self._ended = False

    def readLine(self, timeout: float) -> str | None:
        """
        Return the next line (without its ending), or C{None} at the end of
        the stream or after C{timeout} seconds.
        """
        deadline = time.monotonic() + timeout
        while b"\n" not in self._pending and not self._ended:
            left = deadline - time.monotonic()
            if left <= 0 or not self._selector.select(left):
                return None
            chunk = os.read(self._stream.fileno(), 65536)
            self._ended = not chunk
            self._pending += chunk
        if b"\n" not in self._pending:
            return None
        line, self._pending = self._pending.split(b"\n", 1)
        return line.decode("utf-8", "replace")

    def readJSON(self, timeout: float) -> dict[str, Any] | None:
        """
        Return the next line that is a JSON object, or C{None} (at the end
        of the stream, or after C{timeout} seconds).
        """
        deadline = time.monotonic() + timeout
        while True:
            line = self.readLine(max(0.0, deadline - time.monotonic()))
            if line is None:
                return None
            if line.startswith("{"):
                data: dict[str, Any] = json.loads(line)
                return data

    def close(self) -> None:
        """
        Stop watching the stream.
        """
        self._selector.close()


def serverTrouble(log: Path) -> list[str]:
    """
    The server's log lines that say something went wrong (at most 5).
    """
    try:
        text = log.read_text("utf-8", "replace")
    except OSError:
        return []
    return [line for line in text.splitlines() if TROUBLE.search(line)][:5]


def tellToGoOn(stdin: IO[bytes]) -> None:
    """
    Tell the load generator, waiting at a phase, to go on; if it is gone
    (its stdin closed), what it printed last says so.
    """
    try:
        stdin.write(b"go\n")
        stdin.flush()
    except BrokenPipeError:
        pass


def run(settings: ScaleSettings, logDir: Path) -> ScaleResult:
    """
    Start the server and the load generator, read the server's state at
    each phase, and return what was measured.
    """
    result = ScaleResult(settings)
    _, result.limitProblem = raiseDescriptorLimit(settings.clients + SPARE_FILES)
    loadgen = buildLoadGenerator()
    available = cores()
    serverCore: int | None = None
    loadCore: int | None = None
    coreBefore = (0, 0)
    if len(available) > 1:
        serverCore, loadCore = available[0], available[1]
        result.placement = f"the server on core {serverCore}, the load on {loadCore}"
    else:
        result.placement = "one core: nothing pinned"
    result.loadAverage = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    logDir.mkdir(parents=True, exist_ok=True)
    log = logDir / "scale-server.log"
    with log.open("wb") as output:
        server = startChild(
            pinned(serverCommand(settings), serverCore),
            stdout=output,
            stderr=subprocess.STDOUT,
            cwd=logDir,
        )
    load = None
    reader = None
    try:
        ports = {
            kind: int(waitForLine(log, LISTENING[kind], server, 30.0).group(1))
            for kind in LISTENERS[settings.transport]
        }
        result.rssStart = rssKiB(server.pid)
        result.socketsStart, result.socketMemoryStart = readSockstat()
        load = startChild(
            pinned(loadCommand(loadgen, settings, ports, server.pid), loadCore),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert load.stdin is not None
        assert load.stdout is not None
        reader = LineReader(load.stdout)
        connected = reader.readJSON(settings.connectTimeout + SLACK)
        if connected is not None and connected.get("phase") == "half":
            time.sleep(settings.settle)
            result.heldHalf = int(connected["held"])
            if server.poll() is None:
                result.rssHalf = rssKiB(server.pid)
            tellToGoOn(load.stdin)
            connected = reader.readJSON(settings.connectTimeout + SLACK)
        if connected is None:
            result.failure = "the load generator never said everyone was connected"
            return result
        result.load["connected_held"] = connected["held"]
        # The load generator keeps reading meanwhile.
        time.sleep(settings.settle)
        if server.poll() is None:
            result.rssConnected = rssKiB(server.pid)
        result.socketsConnected, result.socketMemoryConnected = readSockstat()
        if serverCore is not None:
            coreBefore = coreTimes(Path("/proc/stat").read_text(), serverCore)
        tellToGoOn(load.stdin)
        measured = reader.readJSON(settings.duration + 10 + SLACK)
        if serverCore is not None:
            busy, total = coreTimes(Path("/proc/stat").read_text(), serverCore)
            if total > coreBefore[1]:
                busyShare = (busy - coreBefore[0]) / (total - coreBefore[1])
                result.serverCoreBusy = 100 * busyShare
        if measured is None:
            result.failure = "the load generator never finished the measured window"
            return result
        if server.poll() is None:
            result.rssMeasured = rssKiB(server.pid)
        _, result.socketMemoryMeasured = readSockstat()
        tellToGoOn(load.stdin)
        final = reader.readJSON(SLACK)
        if final is None:
            result.failure = "the load generator gave no report"
            return result
        result.load.update(final)
        return result
    finally:
        if reader is not None:
            reader.close()
        if load is not None:
            stopChild(load)
        result.serverExited = server.poll()
        stopChild(server)
        result.serverTrouble = serverTrouble(log)


def main(argv: list[str] | None = None) -> int:
    """
    Run the scenario, print the report (and write it, with every figure in
    JSON, to C{bench/results/}); return 0 if everyone was connected and
    every line arrived, else 1.
    """
    settings = parseArguments(argv)
    logDir = RESULTS / "logs"
    result = run(settings, logDir)
    text = formatReport(result)
    print(text)
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    record = {"report": text, **asdict(result)}
    (RESULTS / f"scale-{stamp}.json").write_text(json.dumps(record, indent=2) + "\n")
    if result.failure or result.serverExited is not None:
        log = logDir / "scale-server.log"
        print(f"server log ({log}):\n{tail(log)}")
    complete = result.connected >= settings.clients and not result.load.get("missing")
    return 0 if complete and not result.failure else 1


if __name__ == "__main__":
    sys.exit(main())

"""
How many people one sockserve chat node holds, and what each of them costs.

    python -m bench.scale [--clients 100000] [--duration 30] [--transport ws]
                          [--processes 7] [--generators 7]

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
C{CAP_SYS_RESOURCE}) stops the run short, and the report says so.

Beyond one process's open-file limit, C{--processes P} runs the server as P
processes on one port (C{--workers P}: the main process and P - 1 workers,
the kernel spreading the connections among them with C{SO_REUSEPORT}), the
rooms shared through a private Redis (C{--bus}, on a free loopback port,
without persistence, on the server's core; TCP members only), and
C{--generators G} (by default one while one can hold every member under
the open-file limit, else one a 16,000 members) load generators each
take their own slice of the members, rooms and source addresses, their
phases held and released together. The server's memory and CPU are then
those of its P processes together, Redis's reported apart; the report says
how the kernel spread the connections, and gives the latency of all the
deliveries from the generators' merged histograms. Loopback only; not part
of the tests or of C{python -m bench}.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import resource
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from bench.build import buildLoadGenerator
from bench.bus import RedisServer
from bench.processes import (
    StartError,
    cores,
    freePort,
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
#: Clients of each load generator when one is not enough, well below the
#: 20,000 open files a process may have where the hard limit is 20,000.
PER_GENERATOR = 16_000
#: Open files a load generator keeps for itself (standard streams, epoll,
#: its timer): its members may have the rest of its limit.
GENERATOR_SPARE = 100


def clientsPerGenerator(hardLimit: int) -> int:
    """
    The most members one load generator can take: as many as a process may
    have open files (C{hardLimit}: the harness raises the soft limit to it),
    less what it keeps for itself; 19,900 where the hard limit is 20,000.
    """
    return max(1000, min(hardLimit, 1_000_000) - GENERATOR_SPARE)


def hardFileLimit() -> int:
    """
    The open-file hard limit of this process (and of what it starts).
    """
    return resource.getrlimit(resource.RLIMIT_NOFILE)[1]


def defaultGenerators(clients: int, hardLimit: int) -> int:
    """
    How many load generators C{clients} members need by default: one while
    one can hold them all (under C{hardLimit} open files: a run of 19,800
    on a machine limited to 20,000 is one generator's, as it always was),
    otherwise one a L{PER_GENERATOR}.
    """
    if clients <= clientsPerGenerator(hardLimit):
        return 1
    return math.ceil(clients / PER_GENERATOR)


#: The most server processes (each one's pid goes to every load generator).
MAX_PROCESSES = 16
#: A node of the bus logs this once it is in contact with Redis.
JOINED_BUS = re.compile(r"Joined the bus at")
#: The precision of a latency taken from merged histograms (their buckets
#: are at most 1/64 of their lower bound wide).
HISTOGRAM_PRECISION = 1 / 64
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
    @ivar processes: the server's processes (C{--workers}; above 1, on a bus).
    @ivar generators: the load generators, each with its own slice of the
        members, rooms, senders and source addresses (L{generatorSlices}).
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
    processes: int = 1
    generators: int = 1

    @property
    def roomSize(self) -> int:
        """
        The most members one room has.
        """
        return math.ceil(self.clients / self.rooms)

    @property
    def single(self) -> bool:
        """
        Whether the run is one server process and one load generator (the
        report and its record as they were before there could be more).
        """
        return self.processes == 1 and self.generators == 1


@dataclass(frozen=True)
class GeneratorSlice:
    """
    What one load generator of a run takes: its members, its rooms
    (C{room-(roomOffset + K)}, K from 0 to C{rooms} - 1), its senders (its
    first members) and its source addresses (C{127.0.0.(1 + sourceOffset +
    I)}, I from 0 to C{sources} - 1).
    """

    clients: int
    rooms: int
    roomOffset: int
    senders: int
    sources: int
    sourceOffset: int


def evenShares(total: int, parts: int) -> list[int]:
    """
    C{total} split into C{parts} shares as even as can be, the larger first.
    """
    return [total // parts + (index < total % parts) for index in range(parts)]


def offsets(shares: list[int]) -> list[int]:
    """
    Where each of C{shares} begins, laid end to end from 0.
    """
    return [sum(shares[:index]) for index in range(len(shares))]


def generatorSlices(settings: ScaleSettings) -> list[GeneratorSlice]:
    """
    Split the run among its load generators: the rooms, the source addresses
    and (when fewer than the rooms) the senders evenly, each generator's
    members being those of its rooms, so that every room has as many as it
    has with one generator (member i in room i mod rooms: the first clients
    mod rooms rooms have one more), and so have its senders when there are at
    least as many as rooms.
    """
    count = settings.generators
    rooms = evenShares(settings.rooms, count)
    roomStarts = offsets(rooms)
    sources = evenShares(settings.sources, count)

    def inRooms(total: int, start: int, number: int) -> int:
        # Of total spread as member i in room i mod rooms, those in the rooms
        # from start on, number of them.
        each, extra = divmod(total, settings.rooms)
        return number * each + max(0, min(extra - start, number))

    clients = [
        inRooms(settings.clients, start, number)
        for start, number in zip(roomStarts, rooms, strict=True)
    ]
    if settings.senders >= settings.rooms:
        senders = [
            inRooms(settings.senders, start, number)
            for start, number in zip(roomStarts, rooms, strict=True)
        ]
    else:
        senders = evenShares(settings.senders, count)
    return [
        GeneratorSlice(
            clients=clients[index],
            rooms=rooms[index],
            roomOffset=roomStarts[index],
            senders=senders[index],
            sources=sources[index],
            sourceOffset=offsets(sources)[index],
        )
        for index in range(count)
    ]


def filesWanted(settings: ScaleSettings) -> int:
    """
    The open-file limit the busiest process of a run needs: one server
    process's share of the members (the kernel spreads them evenly, give or
    take a few), or one load generator's, and L{SPARE_FILES}.
    """
    perServer = math.ceil(settings.clients / settings.processes)
    perGenerator = max(part.clients for part in generatorSlices(settings))
    return max(perServer, perGenerator) + SPARE_FILES


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
    parser.add_argument(
        "--connect-timeout",
        type=float,
        help="seconds connecting everyone may take; default 300, 600 with "
        "--processes above 1 (joining through Redis is slower)",
    )
    parser.add_argument("--settle", type=float, default=10.0)
    parser.add_argument("--transport", choices=tuple(FRONT_ENDS), default="tcp")
    parser.add_argument(
        "--reactor",
        help="twistd's --reactor for the server (epoll: Twisted's own); "
        "default: sockserve's",
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=1,
        help="the server's processes (--workers), above 1 sharing the rooms on "
        "a private Redis (TCP members only); default 1",
    )
    parser.add_argument(
        "--generators",
        type=int,
        help="load generators, each with its own members, rooms and source "
        "addresses; default: one while one holds every client under the "
        "open-file limit, else one a 16,000 clients",
    )
    args = parser.parse_args(argv)
    if args.connect_timeout is None:
        args.connect_timeout = 300.0 if args.processes == 1 else 600.0
    if args.clients < 2:
        parser.error("--clients must be at least 2")
    rooms = args.rooms if args.rooms is not None else max(1, args.clients // ROOM_SIZE)
    if not 1 <= rooms <= args.clients // 2:
        parser.error("--rooms must be 1 to clients / 2 (two members a room)")
    senders = args.senders if args.senders is not None else rooms
    generators = (
        args.generators
        if args.generators is not None
        else max(
            1, min(defaultGenerators(args.clients, hardFileLimit()), rooms, senders)
        )
    )
    sources = (
        args.sources
        if args.sources is not None
        else max(1, math.ceil(args.clients / PER_SOURCE), generators)
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
        (
            1 <= args.processes <= MAX_PROCESSES,
            f"--processes must be 1 to {MAX_PROCESSES}",
        ),
        (
            args.processes == 1 or args.transport == "tcp",
            "--processes above 1 takes TCP members only (--transport tcp): the "
            "server's other processes serve its TCP port alone (--web and --irc "
            "are the main process's)",
        ),
        (generators >= 1, "--generators must be at least 1"),
        (
            generators <= rooms,
            "--generators must be at most --rooms (each has rooms of its own)",
        ),
        (
            generators <= sources,
            "--generators must be at most --sources (each has source addresses "
            "of its own)",
        ),
        (
            generators <= senders,
            "--generators must be at most --senders (each has senders of its own)",
        ),
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
        processes=args.processes,
        generators=generators,
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


def serverCommand(
    settings: ScaleSettings, port: int = 0, bus: str | None = None
) -> list[str]:
    """
    The chat server's command: on a port of its choosing (and its web
    listener on another, for WebSocket members), quiet, with rooms
    for everyone (and for the room members arrive in before their C{/join},
    which holds at most C{concurrency} of them for each load generator).
    With several processes, on C{port} (C{--workers} needs a number) and
    the C{bus} they share: C{--max-clients} and C{--max-rooms} then count
    every process's members and rooms, and the room members arrive in may
    count everyone (see below).
    """
    needs = LISTENERS[settings.transport]
    web = ["--web=0"] * ("ws" in needs) + ["--irc=0"] * ("irc" in needs)
    arriving = settings.concurrency * settings.generators
    if settings.processes > 1:
        # On a bus, a member leaves the room it arrived in (in Redis) when
        # its node next publishes to that room, not when it joins another:
        # under load the arrival room counts many who have left it.
        arriving = settings.clients
    several: list[str] = []
    if settings.processes > 1:
        assert port > 0, "several processes need a port number"
        assert bus is not None, "several processes need a bus"
        several = [f"--workers={settings.processes}", f"--bus={bus}"]
    return [
        str(VENV_BIN / "twistd"),
        "--pidfile=",
        *([f"--reactor={settings.reactor}"] if settings.reactor else []),
        "-n",
        "sockserve",
        f"--port={port}",
        *several,
        *web,
        "--quiet",
        f"--max-clients={max(settings.roomSize, arriving) + 10}",
        f"--max-rooms={settings.rooms + 10}",
    ]


def loadCommand(
    loadgen: Path,
    settings: ScaleSettings,
    ports: dict[str, int],
    serverPids: int | Sequence[int],
    part: GeneratorSlice | None = None,
) -> list[str]:
    """
    The load generator's command for C{settings}, against the server's
    C{ports} (by front end: C{tcp}, C{ws}, C{irc}), timing the CPU of
    C{serverPids} (one, or every process of the server), holding its
    connections at each phase until told on stdin. One of several load
    generators takes its C{part} (its rooms and source addresses from their
    offsets on) and reports its latencies' histogram, to be merged.
    """
    pids = [serverPids] if isinstance(serverPids, int) else list(serverPids)
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
    share = part or GeneratorSlice(
        settings.clients, settings.rooms, 0, settings.senders, settings.sources, 0
    )
    offsetOptions: list[str] = []
    if part is not None:
        offsetOptions = [
            "--room-offset",
            str(part.roomOffset),
            "--source-offset",
            str(part.sourceOffset),
            "--histogram",
        ]
    return [
        str(loadgen),
        "scale",
        *front,
        "--port",
        str(ports[main]),
        "--clients",
        str(share.clients),
        "--rooms",
        str(share.rooms),
        "--senders",
        str(share.senders),
        "--sources",
        str(share.sources),
        *offsetOptions,
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
        *[option for pid in pids for option in ("--server-pid", str(pid))],
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
    several: SeveralResult | None = None

    @property
    def connected(self) -> int:
        """
        The members that were in their rooms at once (after connecting).
        """
        return int(self.load.get("connected_held", 0))


@dataclass
class SeveralResult:
    """
    What a run of several server processes or load generators measured
    beyond what one of each gives (L{ScaleResult} holds the sums).

    @ivar pids: the server's processes, the main one first.
    @ivar connectionsByProcess: the descriptors each of them gained from the
        start to everyone connected: its connections (the kernel's spread).
    @ivar rssByProcess: each one's C{VmRSS} with everyone connected, in KiB.
    @ivar cpuByProcess: each one's CPU seconds over the harness's window
        (from telling the load generators to begin until the last of them
        said it was done).
    @ivar redisRssStart: Redis's C{VmRSS} before the clients came, in KiB
        (0: no Redis).
    @ivar redisRssConnected: the same with everyone connected.
    @ivar redisRssMeasured: the same after the measured window.
    @ivar redisCpuSeconds: Redis's CPU seconds over the harness's window.
    @ivar windowSeconds: the harness's window, in seconds.
    @ivar settleCpuSeconds: the CPU seconds of the server's processes
        together over the C{settle} seconds before the window (everyone
        connected, nobody speaking; the last joins told).
    @ivar redisSettleCpuSeconds: Redis's over the same seconds.
    @ivar generators: each load generator's report, without its histogram.
    """

    pids: list[int] = field(default_factory=list)
    connectionsByProcess: list[int] = field(default_factory=list)
    rssByProcess: list[int] = field(default_factory=list)
    cpuByProcess: list[float] = field(default_factory=list)
    redisRssStart: int = 0
    redisRssConnected: int = 0
    redisRssMeasured: int = 0
    redisCpuSeconds: float = 0.0
    windowSeconds: float = 0.0
    settleCpuSeconds: float = 0.0
    redisSettleCpuSeconds: float = 0.0
    generators: list[dict[str, Any]] = field(default_factory=list)


#: Figures of the load generators' reports that add up across them.
SUMMED = (
    "completed",
    "errors",
    "clients",
    "joined",
    "failed",
    "held",
    "rooms",
    "senders",
    "sources",
    "sent",
    "expected",
    "missing",
    "bad_lines",
    "out_of_order",
    "crossed_rooms",
    "wrong_names",
    "notices",
    "window_errors",
    "cpu_seconds",
    "cpu_pct",
)
#: Figures of theirs of which the run's is the longest.
LONGEST = ("connect_seconds", "seconds")
#: What went wrong, of which the run's is the first any of them says.
FIRST_SAID = ("connect_error", "server_error", "error_sample")
HISTOGRAM = "latency_histogram_us"


def mergeHistograms(histograms: list[list[list[int]]]) -> list[list[int]]:
    """
    Add up the load generators' latency histograms (C{[LOW, COUNT]} pairs,
    LOW a bucket's lower bound), by bucket, in order.
    """
    counts: dict[int, int] = {}
    for histogram in histograms:
        for low, count in histogram:
            counts[low] = counts.get(low, 0) + count
    return [[low, counts[low]] for low in sorted(counts)]


def histogramPercentile(histogram: list[list[int]], quantile: float) -> float:
    """
    The C{quantile} of the latencies of C{histogram}, in microseconds, as
    the load generator takes it from every latency (the one at rank
    C{round((n - 1) * quantile)}): the lower bound of its bucket, so at most
    L{HISTOGRAM_PRECISION} below it; -1 if there are none.
    """
    total = sum(count for _, count in histogram)
    if total == 0:
        return -1.0
    rank = int((total - 1) * quantile + 0.5)
    seen = 0
    for low, count in histogram:
        seen += count
        if rank < seen:
            return float(low)
    raise AssertionError("a rank beyond the histogram")


def mergeLoads(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """
    The run's report from its load generators' final reports: counts added
    up, the longest connecting time and window, the deliveries a second over
    the longest window, p50 and p99 of every delivery from their merged
    histograms, the server's CPU from the generator whose window saw the
    most of it (each times every server process over its own window; the
    windows begin together), the slowest delivery of each second of any of
    them, and the first error any of them says.
    """
    merged = dict(reports[0])
    for key in SUMMED:
        merged[key] = sum(report.get(key, 0) for report in reports)
        if isinstance(merged[key], float):
            merged[key] = round(merged[key], 3)
    for key in LONGEST:
        merged[key] = max(float(report.get(key, 0)) for report in reports)
    for key in FIRST_SAID:
        merged[key] = next((r[key] for r in reports if r.get(key)), "")
    seconds = merged["seconds"]
    merged["rate"] = round(merged["completed"] / seconds, 1) if seconds > 0 else 0.0
    histogram = mergeHistograms([report.get(HISTOGRAM, []) for report in reports])
    merged[HISTOGRAM] = histogram
    merged["p50_us"] = histogramPercentile(histogram, 0.5)
    merged["p99_us"] = histogramPercentile(histogram, 0.99)
    busiest = max(reports, key=lambda report: report.get("server_cpu_seconds", 0))
    for key in ("server_cpu_seconds", "server_cpu_pct"):
        merged[key] = busiest.get(key, 0)
    worst = [report.get("worst_ms_by_second", []) for report in reports]
    merged["worst_ms_by_second"] = [
        max(each[second] for each in worst if second < len(each))
        for second in range(max(map(len, worst)))
    ]
    merged["generators"] = len(reports)
    return merged


def withoutHistogram(report: dict[str, Any]) -> dict[str, Any]:
    """
    A load generator's report without its latency histogram.
    """
    return {key: value for key, value in report.items() if key != HISTOGRAM}


def record(result: ScaleResult, text: str) -> dict[str, Any]:
    """
    What is written to C{bench/results/}: the report's C{text} and every
    figure, as it always was for one server process and one load generator.
    """
    figures = asdict(result)
    if result.settings.single:
        for key in ("processes", "generators"):
            del figures["settings"][key]
        del figures["several"]
    return {"report": text, **figures}


def cpuTicks(stat: str) -> int:
    """
    The CPU time (C{utime + stime}, in clock ticks) of a process, from the
    text of its C{/proc/PID/stat}.
    """
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[11]) + int(fields[12])


def cpuSeconds(pid: int) -> float:
    """
    The CPU seconds process C{pid} has used so far (0 if it is gone).
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    return cpuTicks(stat) / os.sysconf("SC_CLK_TCK")


def openFiles(pid: int) -> int:
    """
    The descriptors process C{pid} has open now (0 if it is gone).
    """
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def rssOrNothing(pid: int) -> int:
    """
    The C{VmRSS} of process C{pid}, in KiB, or 0 if it is gone.
    """
    try:
        return rssKiB(pid)
    except (OSError, RuntimeError):
        return 0


def workerPids(pid: int, expected: int, timeout: float) -> list[int]:
    """
    The worker processes of the sockserve whose main process is C{pid} (its
    children running C{sockserve._worker}), waiting at most C{timeout}
    seconds for C{expected} of them.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            children = []
        workers = [
            int(child)
            for child in children
            if b"sockserve._worker" in commandLine(int(child))
        ]
        if len(workers) >= expected or time.monotonic() > deadline:
            return sorted(workers)
        time.sleep(0.05)


def commandLine(pid: int) -> bytes:
    """
    The command line of process C{pid} (empty if it is gone).
    """
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def waitForLines(
    log: Path,
    pattern: re.Pattern[str],
    count: int,
    child: subprocess.Popen[Any],
    timeout: float,
) -> list[re.Match[str]]:
    """
    Wait, at most C{timeout} seconds, until C{count} lines of the log file
    C{log} match C{pattern} (every process of a server saying it listens, or
    that it joined the bus), and return the matches.

    @raise StartError: if the child exits or the time runs out first.
    """
    deadline = time.monotonic() + timeout
    while True:
        text = log.read_text("utf-8", "replace") if log.exists() else ""
        matches = [m for m in map(pattern.search, text.splitlines()) if m is not None]
        if len(matches) >= count:
            return matches[:count]
        if child.poll() is not None:
            raise StartError(
                f"the server exited with status {child.returncode}; see {log}:\n"
                + tail(log)
            )
        if time.monotonic() > deadline:
            raise StartError(
                f"{len(matches)} of the server's {count} processes said "
                f"{pattern.pattern!r} in {timeout:g} s; see {log}"
            )
        time.sleep(0.05)


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


def shape(settings: ScaleSettings) -> str:
    """
    The run's shape, for the report's first line: the front end, the
    server's processes (with more than one), the rooms, the source
    addresses and the load generators (with more than one).
    """
    processes = ""
    if settings.processes > 1:
        processes = f"{settings.processes} processes on a bus, "
    generators = ""
    if settings.generators > 1:
        generators = f", {settings.generators} load generators"
    return (
        f"{FRONT_ENDS[settings.transport]}, {processes}in "
        f"{plural(settings.rooms, 'room')} of {settings.roomSize:,}, from "
        f"{plural(settings.sources, 'source address', 'source addresses')}"
        f"{generators}"
    )


def severalLines(result: ScaleResult) -> list[str]:
    """
    The report's lines on several server processes: how the kernel spread
    the connections among them, and what Redis used (not in the server's
    figures).
    """
    several = result.several
    if several is None or result.settings.processes == 1:
        return []
    spread = ", ".join(f"{count:,}" for count in several.connectionsByProcess)
    cpu = ", ".join(f"{seconds:.1f}" for seconds in several.cpuByProcess)
    settle = result.settings.settle
    lines = [
        f"spread over the server's processes (descriptors each gained, the main "
        f"process first): {spread}; their CPU over the window: {cpu} s; over the "
        f"{settle:g} s before it (everyone connected, nobody speaking): "
        f"{several.settleCpuSeconds:.1f} s together, Redis "
        f"{several.redisSettleCpuSeconds:.1f} s"
    ]
    deliveries = int(result.load.get("completed", 0))
    each = ""
    if deliveries:
        each = f", {several.redisCpuSeconds / deliveries * 1e6:.2f} us a delivery"
    lines.append(
        f"Redis (apart from the server's figures): RSS {kib(several.redisRssStart)} "
        f"at start, {kib(several.redisRssConnected)} with everyone, "
        f"{kib(several.redisRssMeasured)} after the measured window; CPU "
        f"{several.redisCpuSeconds:.2f} s over the window ({several.windowSeconds:.1f} "
        f"s){each}"
    )
    return lines


def formatReport(result: ScaleResult) -> str:
    """
    The report: how many were connected at once first, then each figure.
    """
    s = result.settings
    load = result.load
    connected = result.connected
    lines = []
    where = shape(s)
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
        together = ""
        if s.processes > 1:
            together = f"of its {s.processes} processes together: "
        lines.append(
            f"server memory: {growth / connected:.2f} KiB a connection{marginal} "
            f"(RSS {together}{kib(result.rssStart)} at start, {half}"
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
        merged = ""
        if s.generators > 1:
            merged = (
                f" (of every delivery, from the {s.generators} load generators' "
                f"merged histograms: at most {HISTOGRAM_PRECISION:.1%} under)"
            )
        lines.append(
            f"delivery latency: p50 {p50 / 1e3:.2f}, p99 {p99 / 1e3:.2f} ms{merged}"
        )
    cpu = float(load.get("server_cpu_seconds", 0))
    busy = ""
    if result.serverCoreBusy is not None:
        busy = f", which was {result.serverCoreBusy:.0f}% busy with everything on it"
    if deliveries:
        whose, its = "the server's (", "its"
        if s.processes > 1:
            whose = f"the server's {s.processes} processes together (Redis apart; "
            its = "their"
        lines.append(
            f"CPU per delivery: {cpu / deliveries * 1e6:.2f} us of {whose}"
            f"utime+stime {cpu:.2f} s over the window, "
            f"{float(load.get('server_cpu_pct', 0)):.0f}% of {its} core{busy})"
        )
    lines += severalLines(result)
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


class Server:
    """
    The chat server of a run: its main process, its workers once found, and
    with several processes the Redis they share.
    """

    def __init__(
        self, settings: ScaleSettings, log: Path, core: int | None, logDir: Path
    ) -> None:
        self.settings = settings
        self.log = log
        self.redis: RedisServer | None = None
        self.workers: list[int] = []
        port = 0
        bus = None
        if settings.processes > 1:
            redisLog = logDir / "scale-redis.log"
            redisLog.unlink(missing_ok=True)
            self.redis = RedisServer(logDir / "scale-redis", redisLog, core).start()
            port, bus = freePort(), self.redis.url
        try:
            with log.open("wb") as output:
                self.process = startChild(
                    pinned(serverCommand(settings, port, bus), core),
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    cwd=logDir,
                )
        except BaseException:
            if self.redis is not None:
                self.redis.stop()
            raise

    @property
    def pids(self) -> list[int]:
        """
        Its processes, the main one first.
        """
        return [self.process.pid, *self.workers]

    def waitUntilListening(self) -> dict[str, int]:
        """
        Wait until every process listens (and with several, every one has
        joined the bus, and the workers are found); return the ports, by
        front end.
        """
        processes = self.settings.processes
        if processes == 1:
            return {
                kind: int(
                    waitForLine(self.log, LISTENING[kind], self.process, 30.0).group(1)
                )
                for kind in LISTENERS[self.settings.transport]
            }
        listening = waitForLines(
            self.log, LISTENING["tcp"], processes, self.process, 60.0
        )
        waitForLines(self.log, JOINED_BUS, processes, self.process, 60.0)
        self.workers = workerPids(self.process.pid, processes - 1, 10.0)
        if len(self.workers) != processes - 1:
            raise StartError(
                f"{len(self.workers)} of the server's {processes - 1} workers found"
            )
        return {"tcp": int(listening[0].group(1))}

    def rss(self) -> int:
        """
        The C{VmRSS} of its processes together, in KiB (0 once it exited).
        """
        if self.process.poll() is not None:
            return 0
        return sum(rssOrNothing(pid) for pid in self.pids)

    def filesByProcess(self) -> list[int]:
        """
        The descriptors each of its processes has open now.
        """
        return [openFiles(pid) for pid in self.pids]

    def cpuByProcess(self) -> list[float]:
        """
        The CPU seconds each of its processes has used so far.
        """
        return [cpuSeconds(pid) for pid in self.pids]

    def redisRss(self) -> int:
        """
        Its Redis's C{VmRSS}, in KiB (0 without one).
        """
        return rssOrNothing(self.redis.pid) if self.redis is not None else 0

    def redisCpu(self) -> float:
        """
        The CPU seconds its Redis has used so far (0 without one).
        """
        return cpuSeconds(self.redis.pid) if self.redis is not None else 0.0

    def stop(self) -> int | None:
        """
        Stop it (its workers with it, or killed if they outlive it) and its
        Redis; return how the main process had exited on its own, if it had.
        """
        exited = self.process.poll()
        stopChild(self.process, grace=5.0 if self.settings.processes == 1 else 20.0)
        for pid in self.workers:
            if b"sockserve._worker" in commandLine(pid):
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
        if self.redis is not None:
            self.redis.stop()
        return exited


class LoadGenerators:
    """
    The load generators of a run, each holding its connections at each phase
    until the harness tells them all to go on.
    """

    def __init__(self, commands: list[list[str]]) -> None:
        self.processes: list[subprocess.Popen[Any]] = []
        self.readers: list[LineReader] = []
        for command in commands:
            process = startChild(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            assert process.stdout is not None
            self.processes.append(process)
            self.readers.append(LineReader(process.stdout))

    def readAll(
        self, timeout: float, which: list[int] | None = None
    ) -> list[dict[str, Any] | None]:
        """
        The next JSON line of each of them (of C{which}, by index, if given),
        all within C{timeout} seconds: they go on side by side.
        """
        deadline = time.monotonic() + timeout
        indices = range(len(self.readers)) if which is None else which
        return [
            self.readers[index].readJSON(max(0.0, deadline - time.monotonic()))
            for index in indices
        ]

    def goOn(self, which: list[int] | None = None) -> None:
        """
        Tell each of them (of C{which}, if given) to go on.
        """
        indices = range(len(self.processes)) if which is None else which
        for index in indices:
            stdin = self.processes[index].stdin
            assert stdin is not None
            tellToGoOn(stdin)

    def stop(self) -> None:
        """
        Stop them all.
        """
        for reader in self.readers:
            reader.close()
        for process in self.processes:
            stopChild(process)


def missing(lines: list[dict[str, Any] | None], what: str) -> str | None:
    """
    Why the run cannot go on if some load generator said nothing (C{lines}
    holds C{None} for it): C{the load generator what}, or which of them.
    """
    silent = [index + 1 for index, line in enumerate(lines) if line is None]
    if not silent:
        return None
    if len(lines) == 1:
        return f"the load generator {what}"
    which = ", ".join(map(str, silent))
    return f"load generator {which} of {len(lines)} {what}"


def placement(settings: ScaleSettings, serverCore: int, loadCore: int) -> str:
    """
    Where the run's processes are pinned, for the report.
    """
    if settings.single:
        return f"the server on core {serverCore}, the load on {loadCore}"
    server = "the server"
    if settings.processes > 1:
        server = f"the server's {settings.processes} processes and Redis"
    load = "the load"
    if settings.generators > 1:
        load = f"the {settings.generators} load generators"
    return f"{server} on core {serverCore}, {load} on {loadCore}"


def connectEveryone(
    settings: ScaleSettings, server: Server, load: LoadGenerators, result: ScaleResult
) -> list[dict[str, Any] | None]:
    """
    Wait until every load generator has connected its half (or stopped
    before), then read the server's memory, all of them holding; let those
    at half go on, and return each one's word that it is connected (C{None}
    for one that said nothing).
    """
    connected = load.readAll(settings.connectTimeout + SLACK)
    halfway = [
        index
        for index, line in enumerate(connected)
        if line is not None and line.get("phase") == "half"
    ]
    if halfway:
        time.sleep(settings.settle)
        result.heldHalf = sum(int(line["held"]) for line in connected if line)
        result.rssHalf = server.rss()
        load.goOn(halfway)
        later = load.readAll(settings.connectTimeout + SLACK, halfway)
        for index, line in zip(halfway, later, strict=True):
            connected[index] = line
    return connected


def measureWindow(
    settings: ScaleSettings,
    server: Server,
    load: LoadGenerators,
    result: ScaleResult,
    serverCore: int | None,
) -> list[dict[str, Any] | None]:
    """
    Let the load generators say their lines for the measured window, timing
    the server's core (and with several processes, each one and Redis);
    return each one's word that the window is over.
    """
    coreBefore = (0, 0)
    if serverCore is not None:
        coreBefore = coreTimes(Path("/proc/stat").read_text(), serverCore)
    cpuBefore, redisBefore = server.cpuByProcess(), server.redisCpu()
    windowStart = time.monotonic()
    load.goOn()
    measured = load.readAll(settings.duration + 10 + SLACK)
    if result.several is not None:
        several = result.several
        several.windowSeconds = time.monotonic() - windowStart
        several.cpuByProcess = [
            round(after - before, 3)
            for after, before in zip(server.cpuByProcess(), cpuBefore, strict=True)
        ]
        several.redisCpuSeconds = round(server.redisCpu() - redisBefore, 3)
    if serverCore is not None:
        busy, total = coreTimes(Path("/proc/stat").read_text(), serverCore)
        if total > coreBefore[1]:
            busyShare = (busy - coreBefore[0]) / (total - coreBefore[1])
            result.serverCoreBusy = 100 * busyShare
    return measured


def loadCommands(
    loadgen: Path, settings: ScaleSettings, ports: dict[str, int], server: Server
) -> list[list[str]]:
    """
    The load generators' commands: one for the whole run, or one for each
    slice of it (L{generatorSlices}).
    """
    if settings.generators == 1:
        return [loadCommand(loadgen, settings, ports, server.pids)]
    return [
        loadCommand(loadgen, settings, ports, server.pids, part)
        for part in generatorSlices(settings)
    ]


def run(settings: ScaleSettings, logDir: Path) -> ScaleResult:
    """
    Start the server (with several processes, and their Redis) and the load
    generators, read the server's state at each phase, and return what was
    measured.
    """
    result = ScaleResult(settings)
    _, result.limitProblem = raiseDescriptorLimit(filesWanted(settings))
    loadgen = buildLoadGenerator()
    available = cores()
    serverCore: int | None = None
    loadCore: int | None = None
    if len(available) > 1:
        serverCore, loadCore = available[0], available[1]
        result.placement = placement(settings, serverCore, loadCore)
    else:
        result.placement = "one core: nothing pinned"
    result.loadAverage = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    logDir.mkdir(parents=True, exist_ok=True)
    log = logDir / "scale-server.log"
    server = Server(settings, log, serverCore, logDir)
    several = result.several = None if settings.single else SeveralResult()
    load = None
    try:
        ports = server.waitUntilListening()
        result.rssStart = server.rss()
        result.socketsStart, result.socketMemoryStart = readSockstat()
        filesStart = server.filesByProcess()
        if several is not None:
            several.pids = server.pids
            several.redisRssStart = server.redisRss()
        commands = loadCommands(loadgen, settings, ports, server)
        load = LoadGenerators([pinned(command, loadCore) for command in commands])
        connected = connectEveryone(settings, server, load, result)
        result.failure = missing(connected, "never said everyone was connected")
        if result.failure:
            return result
        held = sum(int(line["held"]) for line in connected if line)
        result.load["connected_held"] = held
        # The load generators keep reading meanwhile.
        cpuBefore, redisBefore = server.cpuByProcess(), server.redisCpu()
        time.sleep(settings.settle)
        if several is not None:
            several.settleCpuSeconds = round(
                sum(server.cpuByProcess()) - sum(cpuBefore), 3
            )
            several.redisSettleCpuSeconds = round(server.redisCpu() - redisBefore, 3)
        result.rssConnected = server.rss()
        result.socketsConnected, result.socketMemoryConnected = readSockstat()
        if several is not None:
            several.connectionsByProcess = [
                now - before
                for now, before in zip(server.filesByProcess(), filesStart, strict=True)
            ]
            several.rssByProcess = [rssOrNothing(pid) for pid in server.pids]
            several.redisRssConnected = server.redisRss()
        measured = measureWindow(settings, server, load, result, serverCore)
        result.failure = missing(measured, "never finished the measured window")
        if result.failure:
            return result
        result.rssMeasured = server.rss()
        _, result.socketMemoryMeasured = readSockstat()
        if several is not None:
            several.redisRssMeasured = server.redisRss()
        load.goOn()
        finals = load.readAll(SLACK)
        result.failure = missing(finals, "gave no report")
        if result.failure:
            return result
        reports = [final for final in finals if final is not None]
        if settings.generators == 1:
            result.load.update(reports[0])
        else:
            result.load.update(mergeLoads(reports))
        if several is not None:
            several.generators = [withoutHistogram(report) for report in reports]
        return result
    finally:
        if load is not None:
            load.stop()
        result.serverExited = server.stop()
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
    figures = record(result, text)
    (RESULTS / f"scale-{stamp}.json").write_text(json.dumps(figures, indent=2) + "\n")
    if result.failure or result.serverExited is not None:
        log = logDir / "scale-server.log"
        print(f"server log ({log}):\n{tail(log)}")
    complete = result.connected >= settings.clients and not result.load.get("missing")
    return 0 if complete and not result.failure else 1


if __name__ == "__main__":
    sys.exit(main())

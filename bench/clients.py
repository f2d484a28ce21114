"""
What the flood scenarios' clients share (L{bench.abuse}, L{bench.crossflood}):
the greeting, the kernel's view of a connection, a process's CPU and memory,
and the percentiles and spreads reported.
"""

from __future__ import annotations

import asyncio
import fcntl
import math
import re
import socket
import statistics
import struct
import termios
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: The welcome a line client reads on joining, its name in group 1:
#: sockserve's C{* you are NAME (HOST:PORT) in #ROOM; N others here} (or
#: C{1 other here}, C{nobody else here}), and the peers' C{* you are NAME; N
#: other(s) here}. Its groups C{name}, C{room} (C{None} from a peer) and
#: C{others} (C{None}: nobody else).
GREETING = re.compile(
    rb"\* you are (?P<name>[^\s;(]+)(?: \([^)\r\n]*\) in #(?P<room>[^;\s]+))?; "
    rb"(?:(?P<others>\d+) other(?:s|\(s\))?|nobody else) here"
)
TCP_ESTABLISHED = 1


@dataclass(frozen=True)
class Welcome:
    """
    What a chat client learns from its welcome line (see L{GREETING}).

    @ivar name: the name it has: C{guestN} from sockserve, C{HOST:PORT}
        from a peer.
    @ivar room: the room it is in (C{None} from a peer, which has one).
    @ivar others: how many others are there.
    """

    name: str
    room: str | None
    others: int


def welcome(line: bytes) -> Welcome | None:
    """
    Return what the welcome in C{line} says, or C{None} if there is none.
    """
    match = GREETING.search(line)
    if match is None:
        return None
    room = match.group("room")
    others = match.group("others")
    return Welcome(
        match.group("name").decode(),
        None if room is None else room.decode(),
        0 if others is None else int(others),
    )


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


def percentile(values: Sequence[int], fraction: float) -> float:
    """
    Return the nearest-rank percentile of C{values} (nanoseconds) in ms.
    """
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1))
    return ordered[rank] / 1e6


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

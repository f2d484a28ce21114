"""
The sender pays across the bus, end to end: a client flooding on one node
is slowed for the sake of every node's readers, so that a person typing on
that node reaches the members of another node, all of it, in order, even
while one of them reads slowly; a flood that the bus cannot take at once
waits for it rather than being dropped. Real C{twistd} nodes, a real
C{redis-server}, raw TCP clients (each in a thread of its own, every loop
bounded in time).
"""

from __future__ import annotations

import select
import socket
import threading
import time
from pathlib import Path

import pytest

from tests.processes import (
    WAIT,
    Processes,
    Server,
    receiveUntil,
    waitWhileProgressing,
)
from tests.redis import RedisServer

pytestmark = pytest.mark.e2e

# Every client thread gives up after this many seconds (the longest a
# drain that keeps progressing is waited for: see waitWhileProgressing).
LIMIT = 240.0


def node(processes: Processes, bus: str, *options: str) -> Server:
    server = processes.server("--bus", bus, *options)
    server.output.follow()
    server.output.waitForText(b"Joined the bus")
    return server


class Flooder(threading.Thread):
    """
    Sends 100-byte lines as fast as the server takes them (C{lines} of
    them, or until told to stop, or L{LIMIT}); counts them, and keeps the
    notices it is sent meanwhile.

    @ivar sent: the lines made to be sent (some may wait in C{pending}).
    @ivar written: the whole lines the socket took.
    """

    def __init__(self, sock: socket.socket, lines: int | None = None) -> None:
        super().__init__(daemon=True)
        self.sock = sock
        self.lines = lines
        self.sent = 0
        self.written = 0
        self.notices: list[str] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        deadline = time.monotonic() + LIMIT
        self.sock.setblocking(False)
        pending = b""
        received = b""
        while not self.stopped.is_set() and time.monotonic() < deadline:
            if not pending and (self.lines is None or self.sent < self.lines):
                count = 40 if self.lines is None else min(40, self.lines - self.sent)
                pending = b"".join(
                    b"flood %09d " % (self.sent + n) + b"." * 83 + b"\n"
                    for n in range(count)
                )
                self.sent += count
            writing = [self.sock] if pending else []
            readable, writable, _ = select.select([self.sock], writing, [], 0.5)
            if readable:
                try:
                    data = self.sock.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    return
                received += data
                *lines, received = received.split(b"\r\n")
                self.notices += [line.decode("utf-8", "replace") for line in lines]
            if writable:
                try:
                    taken = self.sock.send(pending)
                    self.written += pending.count(b"\n", 0, taken)
                    pending = pending[taken:]
                except BlockingIOError:
                    continue
                except OSError:
                    return
            if not pending and self.lines is not None and self.sent >= self.lines:
                return


class Reader(threading.Thread):
    """
    Reads everything it is sent (C{perRead} bytes at a time, every
    C{interval} seconds: a slow reader), until told to stop; keeps the
    lines, and when each typed line arrived.

    @ivar flood: how many flood lines arrived.
    @ivar floodOutOfOrder: how many of them did not follow the one before
        (one flooder: each line's number is the last one's and one).
    """

    def __init__(
        self, sock: socket.socket, perRead: int = 65536, interval: float = 0.0
    ) -> None:
        super().__init__(daemon=True)
        self.sock = sock
        self.perRead = perRead
        self.interval = interval
        self.typed: dict[int, float] = {}
        self.flood = 0
        self.floodOutOfOrder = 0
        self.received = 0
        self._lastFlood = -1
        self.notices: list[str] = []
        self.closed = False
        self.stopped = threading.Event()
        self._pending = b""

    def run(self) -> None:
        deadline = time.monotonic() + LIMIT
        self.sock.settimeout(0.5)
        while not self.stopped.is_set() and time.monotonic() < deadline:
            wanted = self.perRead
            while wanted > 0 and not self.stopped.is_set():
                try:
                    data = self.sock.recv(min(wanted, 65536))
                except TimeoutError:
                    break
                except OSError:
                    data = b""
                if not data:
                    self.closed = True
                    return
                wanted -= len(data)
                self._take(data)
            if self.interval:
                self.stopped.wait(self.interval)

    def _take(self, data: bytes) -> None:
        self.received += len(data)
        self._pending += data
        *lines, self._pending = self._pending.split(b"\r\n")
        now = time.monotonic()
        for line in lines:
            if b"> flood " in line:
                self.flood += 1
                number = int(line.split(b"> flood ", 1)[1].split(b" ", 1)[0])
                if number != self._lastFlood + 1:
                    self.floodOutOfOrder += 1
                self._lastFlood = number
            elif b"> typed " in line:
                self.typed[int(line.rsplit(b" ", 1)[1])] = now
            elif line.startswith((b"* ", b"ERROR")):
                self.notices.append(line.decode("utf-8", "replace"))


def connect(
    processes: Processes, server: Server, receiveBuffer: int = 0
) -> socket.socket:
    sock = socket.socket()
    if receiveBuffer:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receiveBuffer)
    sock.settimeout(WAIT)
    sock.connect(("127.0.0.1", server.port))
    processes._sockets.append(sock)
    # Arrived (in the room) before anything is said that it must hear.
    receiveUntil(sock, lambda data: b"* you are " in data, "welcome")
    return sock


def test_a_flood_on_one_node_costs_no_typed_line_on_another(
    processes: Processes, redis: RedisServer
) -> None:
    """
    Node A: a client flooding, and a person typing ten lines a second.
    Node B: a fast reader, and a member reading 128 KiB every quarter of a
    second. Every typed line reaches both of B's members, in order; neither
    is dropped nor told that lines may be missing or that contact was lost;
    the flood is slowed, not stopped.
    """
    a = node(processes, redis.url, "--bus-retention", "200")
    b = node(processes, redis.url, "--bus-retention", "200")
    fast = Reader(connect(processes, b))
    slow = Reader(connect(processes, b, receiveBuffer=16384), 128 * 1024, 0.25)
    for reader in (fast, slow):
        reader.start()
    typistSock = connect(processes, a)
    typist = Reader(typistSock)
    typist.start()
    flooder = Flooder(connect(processes, a))
    flooder.start()
    typed: dict[int, float] = {}
    pace = threading.Event()
    try:
        for n in range(40):
            typed[n] = time.monotonic()
            typistSock.sendall(b"typed %d\r\n" % n)
            pace.wait(0.1)
        flooder.stopped.set()
        flooder.join(WAIT)
        waitWhileProgressing(
            lambda: (
                fast.closed
                or slow.closed
                or (
                    fast.typed.keys() >= typed.keys()
                    and slow.typed.keys() >= typed.keys()
                )
            ),
            lambda: (fast.flood, slow.flood, len(fast.typed), len(slow.typed)),
        )
    finally:
        for reader in (fast, slow, typist):
            reader.stopped.set()
            reader.join(WAIT)
    assert not typist.closed
    for name, reader in (("fast", fast), ("slow", slow)):
        missing = sorted(typed.keys() - reader.typed.keys())
        assert not missing, f"{name} reader missed typed lines {missing}"
        assert not reader.closed, f"the {name} reader was dropped"
        assert list(reader.typed) == sorted(reader.typed), name
        for notice in reader.notices:
            assert "missing" not in notice, (name, notice)
            assert "lost contact" not in notice, (name, notice)
    for notice in flooder.notices:
        assert "did not reach" not in notice, notice
        assert "lost contact" not in notice, notice
    assert flooder.sent > 1000
    assert fast.flood > 0


def test_a_flood_the_bus_cannot_take_at_once_waits_for_it(
    processes: Processes, redis: RedisServer
) -> None:
    """
    A flood faster than the bus takes it: the flooder waits, and every line
    reaches the other node; nobody is told lines were dropped or contact
    lost, and the node logs no backlog dropped with the bus there.
    """
    a = node(processes, redis.url)
    b = node(processes, redis.url)
    reader = Reader(connect(processes, b))
    reader.start()
    own = Reader(connect(processes, a))
    own.start()
    flooder = Flooder(connect(processes, a), lines=150_000)
    flooder.start()
    flooder.join(LIMIT)
    try:
        # As long as the lines keep coming: a loaded machine is slower.
        waitWhileProgressing(
            lambda: reader.closed or reader.flood >= flooder.sent,
            lambda: reader.flood,
        )
    finally:
        for thread in (reader, own):
            thread.stopped.set()
            thread.join(WAIT)
    assert flooder.sent == 150_000
    assert reader.flood == flooder.sent
    assert own.flood == flooder.sent
    assert (reader.floodOutOfOrder, own.floodOutOfOrder) == (0, 0)
    for notice in flooder.notices + reader.notices:
        assert "did not reach" not in notice, notice
        assert "lost contact" not in notice, notice
    log = a.output.text()
    assert "backlog for it is full" not in log, log


def test_redis_out_of_memory(processes: Processes, tmp_path: Path) -> None:
    """
    A flood fills a Redis at its maxmemory (noeviction): the node says so
    once, trims the room's stream, and lines typed afterwards cross nodes
    again; contact is never taken for lost.
    """
    redis = RedisServer(
        tmp_path / "redis", "--maxmemory", "4mb", "--maxmemory-policy", "noeviction"
    ).start()
    try:
        a = node(processes, redis.url, "--bus-retention", "100000")
        b = node(processes, redis.url, "--bus-retention", "100000")
        reader = Reader(connect(processes, b))
        reader.start()
        typistSock = connect(processes, a)
        typist = Reader(typistSock)
        typist.start()
        flooder = Flooder(connect(processes, a), lines=100_000)
        flooder.start()
        flooder.join(LIMIT)
        pace = threading.Event()
        deadline = time.monotonic() + 30
        n = 0
        while time.monotonic() < deadline and not reader.typed:
            typistSock.sendall(b"typed %d\r\n" % n)
            n += 1
            pace.wait(0.5)
        for thread in (reader, typist):
            thread.stopped.set()
            thread.join(WAIT)
        assert reader.typed, "no line typed after the flood crossed nodes"
        log = a.output.text()
        assert "Lost contact" not in log, log
        assert log.count("is out of memory") == 1, log
        for notice in reader.notices + typist.notices:
            assert "lost contact" not in notice, notice
    finally:
        redis.kill()

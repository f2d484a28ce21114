"""
Fault tests on real sockets against the installed server: hostile and broken
clients, with the server's memory watched from outside.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import struct
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.processes import (
    WAIT,
    Processes,
    Server,
    installedProgram,
    receiveText,
    receiveToEOF,
    receiveWelcome,
    waitForExit,
)

pytestmark = pytest.mark.e2e

MIB = 1024 * 1024


def rssKiB(server: Server) -> int:
    """
    Return the server's resident set size, in KiB.
    """
    status = Path(f"/proc/{server.process.pid}/status").read_text()
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def cpuTicks(server: Server) -> int:
    """
    Return the CPU time the server has used, in clock ticks.
    """
    fields = Path(f"/proc/{server.process.pid}/stat").read_text().rpartition(")")[2]
    user, system = fields.split()[11:13]
    return int(user) + int(system)


def startServer(processes: Processes, *options: str, mode: str = "chat") -> Server:
    server = processes.server(*options, mode=mode)
    server.output.follow()
    return server


def reset(sock: socket.socket) -> None:
    """
    Close C{sock} with a reset (RST) instead of a clean close.
    """
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def join(
    processes: Processes, server: Server, receiveBuffer: int | None = None
) -> socket.socket:
    """
    Connect a chat client (with a receive buffer of C{receiveBuffer} bytes if
    given) and read its greeting, up to its welcome line.
    """
    sock = processes.connect(("127.0.0.1", server.port), receiveBuffer=receiveBuffer)
    receiveWelcome(sock)
    return sock


class LineCollector(threading.Thread):
    """
    Read a socket in a thread until it has C{count} lines matching C{marker}.
    """

    def __init__(self, sock: socket.socket, marker: bytes, count: int) -> None:
        super().__init__(daemon=True)
        self.sock = sock
        self.marker = marker
        self.count = count
        self.lines: list[bytes] = []
        self.error: BaseException | None = None
        self.progress = threading.Condition()

    def waitForCount(self, count: int) -> bool:
        """
        Wait (bounded) until C{count} lines have arrived; return whether they did.
        """
        with self.progress:
            return self.progress.wait_for(
                lambda: len(self.lines) >= count or not self.is_alive(), WAIT
            )

    def run(self) -> None:
        buffer = b""
        deadline = time.monotonic() + 60
        try:
            while len(self.lines) < self.count and time.monotonic() < deadline:
                data = self.sock.recv(1 << 20)
                if not data:
                    return
                buffer += data
                *complete, buffer = buffer.split(b"\r\n")
                with self.progress:
                    self.lines.extend(line for line in complete if self.marker in line)
                    self.progress.notify_all()
        except BaseException as error:  # reported by the test
            self.error = error
        finally:
            with self.progress:
                self.progress.notify_all()


class PacedReader(threading.Thread):
    """
    A member that reads steadily: C{rate} bytes a second for C{steady}
    seconds, then as fast as it can, until it has C{count} lines of the form
    C{<name> pNUMBER ...}, the server cuts it off, or a deadline passes.

    It reads as an application on a timer does: each L{TICK}, it takes that
    tick's share of C{rate}, then waits for the next. The pace is the
    behaviour simulated, not a synchronisation.

    @ivar numbers: the number of each such line received, in order.
    @ivar cutOff: seconds after the start when the server closed or reset
        the connection, or C{None}.
    """

    TICK = 0.25

    def __init__(self, sock: socket.socket, count: int, rate: int, steady: float):
        super().__init__(daemon=True)
        self.sock = sock
        self.count = count
        self.rate = rate
        self.steady = steady
        self.numbers: list[int] = []
        self.cutOff: float | None = None
        self.error: BaseException | None = None
        self.stopping = threading.Event()

    def run(self) -> None:
        buffer = b""
        received = 0
        start = time.monotonic()
        deadline = start + self.steady + 3 * WAIT
        self.sock.settimeout(0.5)
        try:
            while len(self.numbers) < self.count and not self.stopping.is_set():
                now = time.monotonic()
                if now > deadline:
                    return
                size = 1 << 20
                if now - start < self.steady:
                    ticks = (now - start) // self.TICK + 1
                    size = int(ticks * self.TICK * self.rate) - received
                    if size <= 0:
                        self.stopping.wait(start + ticks * self.TICK - now)
                        continue
                try:
                    data = self.sock.recv(size)
                except TimeoutError:
                    continue
                except ConnectionResetError:
                    data = b""
                if not data:
                    self.cutOff = time.monotonic() - start
                    return
                received += len(data)
                buffer += data
                *complete, buffer = buffer.split(b"\r\n")
                self.numbers.extend(
                    int(line.split(b"> p", 1)[1][:7])
                    for line in complete
                    if b"> p" in line
                )
        except BaseException as error:  # reported by the test
            self.error = error


class Paster(threading.Thread):
    """
    Send C{data} on C{sock} a piece at a time (each piece may wait up to
    L{WAIT} seconds, however long the whole takes).
    """

    def __init__(self, sock: socket.socket, data: bytes) -> None:
        super().__init__(daemon=True)
        self.sock = sock
        self.data = data
        self.error: BaseException | None = None

    def run(self) -> None:
        piece = 64 * 1024
        try:
            for start in range(0, len(self.data), piece):
                self.sock.sendall(self.data[start : start + piece])
        except BaseException as error:  # reported by the test
            self.error = error


def drainsToTheEnd(sock: socket.socket) -> bool:
    """
    Read C{sock} until the server closes or resets it; return whether it did
    within the time allowed.
    """
    deadline = time.monotonic() + WAIT
    sock.settimeout(WAIT)
    try:
        while time.monotonic() < deadline:
            if not sock.recv(1 << 20):
                return True
    except ConnectionResetError:
        return True
    return False


def test_huge_line_without_newline(processes: Processes) -> None:
    """A 100 MiB line with no newline: the client is cut off, the server
    never holds more than about the limit, and other clients are unaffected."""
    server = startServer(processes, mode="echo")
    other = processes.connect(("127.0.0.1", server.port))
    other.sendall(b"before\n")
    assert receiveText(other, b"OK .. before\n") == b"OK .. before\n"
    baseline = rssKiB(server)
    attacker = processes.connect(("127.0.0.1", server.port))
    chunk = b"x" * MIB
    sent = 0
    cutOff = False
    for _ in range(100):
        try:
            attacker.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            cutOff = True
            break
        sent += 1
    assert cutOff, "the server kept reading a line far over the limit"
    assert sent < 100
    assert rssKiB(server) - baseline < 16 * 1024
    other.sendall(b"after\n")
    assert receiveText(other, b"OK .. after\n") == b"OK .. after\n"
    server.output.waitForText(b"sent a line longer than 65536 bytes; closing")


def test_over_long_line_error_reaches_the_client(processes: Processes) -> None:
    """The client that sent the long line is told why, in one ERROR line,
    after the replies to the lines before it."""
    server = startServer(processes, "--max-line", "1000", mode="echo")
    sock = processes.connect(("127.0.0.1", server.port))
    sock.sendall(b"fine\n" + b"y" * 5000)
    assert receiveToEOF(sock) == (
        b"OK .. fine\nERROR line too long (the limit is 1000 bytes)\r\n"
    )


def test_slow_reader_is_dropped_others_get_everything(processes: Processes) -> None:
    """A chat client that stops reading while another pushes tens of MB is
    dropped; the readers get every line in order; memory stays bounded."""
    server = startServer(processes, "--max-pending", str(MIB))
    sender = join(processes, server)
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.settimeout(WAIT)
    slow.connect(("127.0.0.1", server.port))
    readers = [join(processes, server) for _ in range(2)]
    baseline = rssKiB(server)
    lineCount = 300_000  # about 36 MB relayed to each reader
    collectors = [LineCollector(reader, b"> msg ", lineCount) for reader in readers]
    for collector in collectors:
        collector.start()
    peak = 0
    batch = 1000
    payload = b"." * 90
    for start in range(0, lineCount, batch):
        # A well-behaved sender: at most 8000 lines (about 900 KB) ahead of
        # the readers, so only the client that stopped reading falls behind.
        for collector in collectors:
            assert collector.waitForCount(start - 8 * batch)
        sender.sendall(
            b"".join(b"msg %d %s\n" % (n, payload) for n in range(start, start + batch))
        )
        if start % 50_000 == 0:
            peak = max(peak, rssKiB(server))
    for collector in collectors:
        collector.join(60)
        assert collector.error is None
        numbers = [int(line.split()[2]) for line in collector.lines]
        assert numbers == list(range(lineCount))
    peak = max(peak, rssKiB(server))
    server.output.waitForText(b"is not reading")
    assert drainsToTheEnd(slow), "the slow client was not disconnected"
    slow.close()
    assert peak - baseline < 32 * 1024, f"RSS grew {peak - baseline} KiB"


def test_a_flood_costs_the_flooder_not_the_readers(processes: Processes) -> None:
    """One client sends half a megabyte of one-byte lines as fast as it can
    into a room of eight members reading as fast as they can: the flooder is
    slowed (the server stops reading it while the readers catch up), not
    disconnected, and loses nothing; no reader is disconnected, and each
    gets every line in order."""
    server = startServer(processes)
    flooder = join(processes, server)
    readers = [join(processes, server) for _ in range(8)]
    lineCount = 256 * 1024  # 512 KiB of "a\n": about 5.5 MB to each reader
    collectors = [LineCollector(reader, b"> ", lineCount) for reader in readers]
    for collector in collectors:
        collector.start()
    flood = threading.Thread(
        target=flooder.sendall,
        args=(b"".join(b"%d\n" % (n % 10) for n in range(lineCount)),),
    )
    flood.start()
    flood.join(60)
    assert not flood.is_alive()
    for collector in collectors:
        collector.join(60)
        assert collector.error is None
        assert len(collector.lines) == lineCount
        assert [line[-1:] for line in collector.lines[:20]] == [
            b"%d" % (n % 10) for n in range(20)
        ]
    flooder.sendall(b"/who\n")
    assert b"* 9 here" in receiveText(flooder, b" here: ")
    log = server.output.drain()
    assert b"is not reading" not in log, log


def test_a_reader_that_stopped_does_not_freeze_the_room(processes: Processes) -> None:
    """A member that stops reading while another floods holds the room back
    a moment at most: it is dropped once its queue is full, and the readers
    get everything."""
    server = startServer(processes, "--max-pending", str(256 * 1024))
    flooder = join(processes, server)
    stuck = socket.socket()
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck.settimeout(WAIT)
    stuck.connect(("127.0.0.1", server.port))
    reader = join(processes, server)
    lineCount = 200_000
    collector = LineCollector(reader, b"> m", lineCount)
    collector.start()
    flooder.sendall(b"".join(b"m%d\n" % n for n in range(lineCount)))
    collector.join(60)
    assert collector.error is None
    assert [int(line.split(b"> m")[1]) for line in collector.lines] == list(
        range(lineCount)
    )
    server.output.waitForText(b"is not reading")
    assert drainsToTheEnd(stuck), "the member that stopped reading stayed"
    stuck.close()


@dataclass
class PastedRoom:
    """
    A server whose room gets a paste: the member who pastes, one that reads
    steadily at C{rate} bytes a second, and one that has stopped reading.
    """

    rate: int
    server: Server
    stuck: socket.socket
    reader: PacedReader
    paster: Paster


def test_a_paste_does_not_drop_steady_readers(processes: Processes) -> None:
    """A member pastes 8 MiB of lines into a room where another reads
    steadily (64, 96 or 128 KiB/s, one room each, with a small receive
    buffer) and a third has stopped reading. The paste is paced to the
    steady reader: it is never dropped and gets every line, in order (it
    reads faster once the steady part is over, so that the test ends). The
    member that stopped is still dropped at --max-pending.

    The kernel's send buffer (megabytes on loopback) hides the reader's
    progress from Twisted's buffer, which moves only once per 128 KiB the
    reader takes: judged by it alone, readers under about 128 KiB/s looked
    stopped after a second, and were dropped."""
    steady = 8.0
    line = b"p%07d " + b"x" * 100 + b"\n"
    count = 8 * MIB // len(line % 0)
    paste = b"".join(line % n for n in range(count))
    rooms = []
    for rate in (64 * 1024, 96 * 1024, 128 * 1024):
        server = startServer(processes, "--max-pending", str(MIB))
        pasting = join(processes, server)
        stuck = join(processes, server, receiveBuffer=4096)
        reading = join(processes, server, receiveBuffer=4096)
        rooms.append(
            PastedRoom(
                rate,
                server,
                stuck,
                PacedReader(reading, count, rate, steady),
                Paster(pasting, paste),
            )
        )
    for room in rooms:
        room.reader.start()
        room.paster.start()
    try:
        for room in rooms:
            room.reader.join(steady + 3 * WAIT)
            room.paster.join(WAIT)
        dropped = {
            f"{room.rate // 1024} KiB/s": (
                f"after {room.reader.cutOff:.1f}s, with "
                f"{len(room.reader.numbers)} of {count} lines"
            )
            for room in rooms
            if room.reader.cutOff is not None
        }
        assert not dropped, f"steady readers dropped: {dropped}"
        for room in rooms:
            assert room.reader.error is None
            assert room.reader.numbers == list(range(count))
            assert room.paster.error is None
            assert not room.paster.is_alive()
            room.server.output.waitForText(
                b"Client 127.0.0.1:%d is not reading" % room.stuck.getsockname()[1]
            )
            assert drainsToTheEnd(room.stuck), "the member that stopped reading stayed"
    finally:
        for room in rooms:
            room.reader.stopping.set()


def test_resets_mid_broadcast(processes: Processes) -> None:
    """Clients that reset while lines are being relayed to them never break
    delivery to the others or the server; nothing is logged as an error."""
    server = startServer(processes, "--max-clients", "40")
    sender = join(processes, server)
    stayers = [join(processes, server) for _ in range(3)]
    leavers = [join(processes, server) for _ in range(30)]
    lineCount = 20_000
    collectors = [LineCollector(s, b"> m ", lineCount) for s in stayers]
    for collector in collectors:
        collector.start()
    for start in range(0, lineCount, 500):
        sender.sendall(b"".join(b"m %d\n" % n for n in range(start, start + 500)))
        if leavers and start % 1000 == 0:
            for _ in range(2):
                reset(leavers.pop())
    for leaver in leavers:
        reset(leaver)
    for collector in collectors:
        collector.join(60)
        assert collector.error is None
        assert [int(line.split()[2]) for line in collector.lines] == list(
            range(lineCount)
        )
    sender.sendall(b"/who\n")
    assert b"* 4 here" in receiveText(sender, b" here: ")
    log = server.output.drain()
    assert b"Traceback" not in log
    assert b"Unhandled" not in log


def test_flood_beyond_the_limit(processes: Processes) -> None:
    """500 connections beyond --max-clients each get the "full" line and are
    closed, quickly, while the room keeps working."""
    server = startServer(processes, "--max-clients", "3")
    alice, bob, _ = (join(processes, server) for _ in range(3))
    started = time.monotonic()
    refused = 0
    for _ in range(10):
        batch = [processes.connect(("127.0.0.1", server.port)) for _ in range(50)]
        for sock in batch:
            assert receiveToEOF(sock) == (
                b"ERROR the server is full (3 clients); try again later\r\n"
            )
            sock.close()
            refused += 1
        alice.sendall(b"still here\n")
        receiveText(bob, b"still here\r\n")
    assert refused == 500
    assert time.monotonic() - started < 30


def replyOrClose(sock: socket.socket) -> bytes:
    """
    Read until a whole echo reply arrives, or the server closes (b"").
    """
    received = b""
    deadline = time.monotonic() + WAIT
    while not received.endswith(b"\n") and time.monotonic() < deadline:
        try:
            chunk = sock.recv(4096)
        except ConnectionResetError:
            return b""
        if not chunk:
            return b""
        received += chunk
    return received


def test_connections_beyond_the_cap_are_refused_politely(
    processes: Processes,
) -> None:
    """Echo and oneshot cap their connections below the open-file limit
    (by default): clients beyond it are told the server is busy, in one line,
    rather than reset; the server serves again as soon as some leave."""
    server = processes.server(
        mode="echo",
        command=["prlimit", "--nofile=48:48", installedProgram("twistd"), "-n"],
    )
    held = []
    for _ in range(16):
        sock = processes.connect(("127.0.0.1", server.port))
        sock.sendall(b"ping\n")
        assert receiveText(sock, b"OK .. ping\n") == b"OK .. ping\n"
        held.append(sock)
    for _ in range(5):
        sock = processes.connect(("127.0.0.1", server.port))
        assert receiveToEOF(sock) == (
            b"ERROR the server is busy (16 connections); try again later\r\n"
        )
    held.pop().close()
    server.output.waitForText(b" disconnected.")
    fresh = processes.connect(("127.0.0.1", server.port))
    fresh.sendall(b"again\n")
    assert receiveText(fresh, b"OK .. again\n") == b"OK .. again\n"


def test_out_of_file_descriptors(processes: Processes) -> None:
    """With its file descriptors used up (a --max-connections above what
    the open-file limit allows), the server keeps running: the clients it
    cannot take are closed at once, and it recovers when descriptors free
    up."""
    server = processes.server(
        "--max-connections",
        "1000",
        mode="echo",
        command=["prlimit", "--nofile=48:48", installedProgram("twistd"), "-n"],
    )
    server.output.follow()
    held = []
    closedAtOnce = 0
    for _ in range(60):
        sock = processes.connect(("127.0.0.1", server.port))
        try:
            sock.sendall(b"ping\n")
        except (BrokenPipeError, ConnectionResetError):
            reply = b""
        else:
            reply = replyOrClose(sock)
        if reply == b"OK .. ping\n":
            held.append(sock)
        else:
            assert reply == b""
            closedAtOnce += 1
            sock.close()
    assert held, "no client was served"
    assert closedAtOnce > 0, "the limit was never reached"
    for sock in held:
        sock.close()
    server.output.waitFor(
        lambda log: log.count(b" disconnected.") >= len(held), "every disconnect"
    )
    fresh = processes.connect(("127.0.0.1", server.port))
    fresh.sendall(b"again\n")
    assert receiveText(fresh, b"OK .. again\n") == b"OK .. again\n"
    assert server.process.poll() is None
    assert b"Traceback" not in server.output.drain()


def test_workers_share_the_port(processes: Processes) -> None:
    """--workers 2: connections land on both processes; SIGTERM stops the
    workers with the main process."""
    server = processes.server("--workers", "2", mode="echo")
    server.output.follow()
    workerListening = re.compile(
        rb"\[worker 1 pid (\d+)\] sockserve echo server listening"
    )
    log = server.output.waitFor(
        lambda log: workerListening.search(log) is not None, "the worker listening"
    )
    [workerPid] = workerListening.findall(log)
    ports = []
    for _ in range(40):
        sock = processes.connect(("127.0.0.1", server.port))
        sock.sendall(b"ping\n")
        assert receiveText(sock, b"OK .. ping\n") == b"OK .. ping\n"
        ports.append(sock.getsockname()[1])
    log = server.output.waitFor(
        lambda log: all(b":%d is now connected" % port in log for port in ports),
        "every connection logged",
    )
    byWorker = {
        port: bool(
            re.search(
                rb"\[worker 1 pid \d+\] Client 127\.0\.0\.1:%d is now" % port, log
            )
        )
        for port in ports
    }
    assert any(byWorker.values()), "no connection reached the worker"
    assert not all(byWorker.values()), "no connection reached the main process"
    assert server.stop() in (0, -signal.SIGTERM)
    assert waitForExit(int(workerPid))
    assert b"worker 1 exited" in server.output.drain()


@pytest.mark.parametrize(
    ("twistdOptions", "reactor"),
    [
        ((), b"sockserve._reactor.LeanEPollReactor"),
        (("--reactor", "poll"), b"twisted.internet.pollreactor.PollReactor"),
    ],
)
def test_workers_run_on_the_main_process_reactor(
    processes: Processes, twistdOptions: tuple[str, ...], reactor: bytes
) -> None:
    """The main process and its workers run on the same reactor: the lean
    one by default, the one twistd's --reactor names when it is given."""
    server = processes.server(
        "--workers",
        "2",
        mode="echo",
        command=[installedProgram("twistd"), *twistdOptions, "-n"],
    )
    server.output.follow()
    log = server.output.waitFor(
        lambda log: b"[worker 1 pid" in log and b"echo server listening" in log,
        "the worker listening",
    )
    assert b"reactor class: " + reactor + b"." in log
    assert re.search(rb"\[worker 1 pid \d+\] reactor class: " + re.escape(reactor), log)
    assert server.stop() in (0, -signal.SIGTERM)


def test_a_killed_worker_is_replaced(processes: Processes) -> None:
    """A worker killed with SIGKILL is logged as a warning and replaced; the
    port is served by the new one; a second --workers server on the same port
    is refused with "Address already in use" instead of silently sharing it."""
    server = processes.server("--workers", "2", mode="echo")
    server.output.follow()
    listening = re.compile(rb"\[worker 1 pid (\d+)\] sockserve echo server listening")
    log = server.output.waitFor(
        lambda log: listening.search(log) is not None, "the worker listening"
    )
    [first] = listening.findall(log)
    os.kill(int(first), signal.SIGKILL)
    log = server.output.waitFor(
        lambda log: len(listening.findall(log)) >= 2, "a new worker listening"
    )
    assert re.search(rb"#warn\] worker 1 exited unexpectedly", log), log
    second = int(listening.findall(log)[-1])
    assert second != int(first)
    result = processes.run(
        [
            installedProgram("twistd"),
            "-n",
            "--pidfile=",
            "sockserve",
            "--mode",
            "echo",
            "--workers",
            "2",
            "--port",
            str(server.port),
        ]
    )
    assert result.returncode == 1, result
    assert b"Address already in use" in result.stderr
    assert server.stop() in (0, -signal.SIGTERM)
    assert waitForExit(second)


def test_refusals_are_logged_at_a_bounded_rate(processes: Processes) -> None:
    """A client that makes the server refuse it again and again makes a few
    log lines, then a count: the log does not grow with the flood."""
    server = startServer(processes, "--max-clients", "1")
    join(processes, server)
    for _ in range(200):
        sock = processes.connect(("127.0.0.1", server.port))
        receiveToEOF(sock)
        sock.close()
    server.stop()
    log = server.output.drain()
    assert log.count(b"Refused 127.0.0.1:") <= 21, log.count(b"Refused")
    assert re.search(rb"\d+ more refusals not logged in 10 s", log), log[-2000:]


def test_a_burst_of_commands_does_not_freeze_the_room(processes: Processes) -> None:
    """Thousands of /nick in one burst: the sender waits its turn (a command
    budget, five changes of name a minute), and the others' lines still get
    through at once."""
    server = startServer(processes)
    flooder = join(processes, server)
    alice, bob = join(processes, server), join(processes, server)
    flooder.sendall(b"".join(b"/nick n%d\n" % n for n in range(7000)))
    alice.sendall(b"still here\n")
    # Heard while the flood waits its turn (its 6,995 other changes of name
    # would take days at five a minute): nobody waits behind it. (What a
    # flood costs the others in time is measured by bench/abuse.py.)
    receiveText(bob, b"> still here\r\n")
    seen = receiveText(flooder, b"too many changes of name")
    assert seen.count(b"* you are now known as") == 5


def test_echo_clients_that_never_read_cost_a_bounded_amount(
    processes: Processes,
) -> None:
    """Clients that send empty lines and never read their replies (seven
    bytes out for each byte in) cost the server a bounded amount of memory
    each, whatever they send."""
    server = startServer(processes, mode="echo")
    baseline = rssKiB(server)
    clients = []
    for _ in range(60):
        # A small window, as when the machine is short of socket memory: the
        # kernel takes little of what the server writes.
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(WAIT)
        sock.connect(("127.0.0.1", server.port))
        sock.setblocking(False)
        clients.append(sock)
    for sock in clients:
        for _ in range(64):  # up to 4 MiB each, until the server stops reading
            try:
                sock.send(b"\n" * 65536)
            except BlockingIOError:
                break
    # The server answers what it read; once it has nothing left to do (its
    # CPU time stands still across a round trip), it holds what these
    # clients cost it.
    busy = cpuTicks(server)
    for _ in range(100):
        other = processes.connect(("127.0.0.1", server.port))
        other.sendall(b"ping\n")
        receiveText(other, b"OK .. ping\n")
        other.close()
        now = cpuTicks(server)
        if now == busy:
            break
        busy = now
    peak = rssKiB(server)
    for sock in clients:
        sock.close()
    perClient = (peak - baseline) / len(clients)
    # What one read's replies cost at most: Twisted's buffer (64 KiB before
    # it pauses), one slice's replies (28 KiB), the rest of the read (64 KiB).
    assert perClient < 150, f"{perClient:.0f} KiB per client that never reads"


def test_churn_from_one_address_is_not_everyones_flood(processes: Processes) -> None:
    """Connecting, reading the greeting and closing, in a loop, from one
    address: past ten joins in ten seconds its comings and goings are no
    longer announced, so the room is not flooded with notices."""
    server = startServer(processes)
    watcher = join(processes, server)
    for _ in range(60):
        churner = join(processes, server)
        churner.close()
    watcher.sendall(b"/who\n")
    seen = receiveText(watcher, b" here: ")
    assert seen.count(b" joined\r\n") <= 10, seen
    assert seen.count(b" joined\r\n") == seen.count(b" left\r\n")


def test_a_flood_of_connections_is_logged_at_a_human_rate(
    processes: Processes,
) -> None:
    """With default logging, each connect and disconnect is logged while
    they come at a human rate; a flood of them gives way to a count."""
    server = startServer(processes, mode="oneshot")
    for _ in range(150):
        sock = processes.connect(("127.0.0.1", server.port))
        sock.sendall(b"hi\n")
        receiveToEOF(sock)
        sock.close()
    server.stop()
    log = server.output.drain()
    assert log.count(b"is now connected to us") == 50
    assert re.search(rb"100 more connections not logged in 10 s", log), log[-1500:]

"""
Helpers for the end-to-end tests: run the installed programs (C{twistd},
C{twist}, C{sockserve-client}) and the system ones (C{ncat}, C{telnet}) as
subprocesses, as a user would, and talk to them over loopback sockets.

Every wait is bounded: output is read with C{select} and a deadline, sockets
have timeouts, and processes are waited for with a timeout. A L{Processes}
closes every socket and kills every process it opened, so a failing test
leaves nothing behind.
"""

from __future__ import annotations

import errno
import fcntl
import os
import pty
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import termios
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import pytest

WAIT = 10.0
"""Seconds any one expected thing may take to happen."""

BIN = Path(sys.executable).parent
"""The bin directory of the virtualenv running the tests (not resolved: a
virtualenv's python is a symlink to the base interpreter)."""

LISTENING = re.compile(rb"sockserve (\w+) server listening on ([^\s\"]+)")


def installedProgram(name: str, bin: Path = BIN) -> str:
    """
    Return the path of the program C{name} installed in the virtualenv C{bin}.
    """
    path = bin / name
    if not path.exists():
        pytest.fail(f"{name} is not installed in {bin} (run ./dev serve --help)")
    return str(path)


def systemProgram(name: str) -> str:
    """
    Return the path of the system program C{name}; fail (not skip) without it.
    """
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed (./dev test installs it with apt-get)")
    return path


def cleanEnvironment() -> dict[str, str]:
    """
    Return the environment for a subprocess: ours, without anything that would
    make Python import code from elsewhere than the program's own virtualenv.
    """
    env = dict(os.environ)
    for name in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "COVERAGE_PROCESS_START"):
        env.pop(name, None)
    env["PYTHONUNBUFFERED"] = "1"
    return env


class Stream:
    """
    What a process wrote to a pipe or a pseudo-terminal, read on demand with
    bounded waits.

    @ivar data: everything read so far.
    @ivar ended: set once the writer closed its end.
    """

    def __init__(self, fd: int, name: str) -> None:
        self.fd = fd
        self.name = name
        self.data = b""
        self.ended = False
        self._followed: threading.Condition | None = None

    def follow(self) -> None:
        """
        From now on, read in a background thread: a process that writes a lot
        (a server logging thousands of connections) never blocks on a full
        pipe while the test is busy elsewhere.
        """
        self._followed = threading.Condition()
        # The thread reads a descriptor of its own, which it closes once the
        # writer is gone: the test's may be closed first, and its number
        # given to another test's pipe, which the thread must never read.
        fd = os.dup(self.fd)
        threading.Thread(
            target=self._pump, args=(fd,), name=f"read {self.name}", daemon=True
        ).start()

    def _pump(self, fd: int) -> None:
        try:
            self._pumpFrom(fd)
        finally:
            os.close(fd)

    def _pumpFrom(self, fd: int) -> None:
        assert self._followed is not None
        while True:
            try:
                ready, _, _ = select.select([fd], [], [], 1.0)
                chunk = os.read(fd, 65536) if ready else None
            except OSError:
                # The end: a pseudo-terminal's master reads EIO once the
                # child side is closed.
                chunk = b""
            if chunk is None:
                continue
            with self._followed:
                if chunk:
                    self.data += chunk
                else:
                    self.ended = True
                self._followed.notify_all()
            if not chunk:
                return

    def _readOnce(self, timeout: float) -> bool:
        """
        Read what is available within C{timeout} seconds; return whether
        anything happened (data or the end).
        """
        if self.ended:
            return False
        if self._followed is not None:
            with self._followed:
                return self._followed.wait(max(timeout, 0.0))
        ready, _, _ = select.select([self.fd], [], [], max(timeout, 0.0))
        if not ready:
            return False
        try:
            chunk = os.read(self.fd, 65536)
        except OSError as error:
            # A pseudo-terminal's master reads EIO once the child side is closed.
            if error.errno != errno.EIO:
                raise
            chunk = b""
        if chunk:
            self.data += chunk
        else:
            self.ended = True
        return True

    def drain(self) -> bytes:
        """
        Read whatever is available now, without waiting; return all data.
        """
        if self._followed is not None:
            return self.data
        while self._readOnce(0):
            pass
        return self.data

    def waitFor(
        self, predicate: Callable[[bytes], bool], what: str, timeout: float = WAIT
    ) -> bytes:
        """
        Read until C{predicate} holds of everything read, and return it.

        @raise AssertionError: if the stream ends or C{timeout} passes first.
        """
        if self._followed is not None:
            with self._followed:
                self._followed.wait_for(
                    lambda: self.ended or predicate(self.data), timeout
                )
        deadline = time.monotonic() + timeout
        while not predicate(self.data):
            if self.ended:
                raise AssertionError(
                    f"{self.name} ended before {what}; it wrote:\n"
                    f"{self.data.decode('utf-8', 'replace')}"
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"{self.name}: no {what} within {timeout}s; it wrote:\n"
                    f"{self.data.decode('utf-8', 'replace')}"
                )
            self._readOnce(remaining)
        return self.data

    def waitForText(self, text: bytes, timeout: float = WAIT) -> bytes:
        """
        Read until C{text} has been written; return everything read.
        """
        return self.waitFor(lambda data: text in data, repr(text), timeout)

    def readToEnd(self, timeout: float = WAIT) -> bytes:
        """
        Read until the writer closes its end; return everything read.
        """
        return self.waitFor(lambda data: self.ended, "end of output", timeout)

    def text(self) -> str:
        """
        Return everything read so far (and available now), as text.
        """
        return self.drain().decode("utf-8", "replace")


@dataclass
class Server:
    """
    A running sockserve server process.

    @ivar addresses: the addresses it logged it listens on for its mode, in
        the log's form (C{127.0.0.1:PORT}, C{[::1]:PORT}, C{unix:PATH}).
    @ivar listening: every listening line it logged, as (what it serves,
        address): C{("web", "127.0.0.1:PORT")}, ...
    """

    process: subprocess.Popen[bytes]
    output: Stream
    mode: str
    addresses: list[str]
    directory: Path
    listening: list[tuple[str, str]] = field(default_factory=list)

    def portOf(self, kind: str) -> int:
        """
        The 127.0.0.1 port of its first listener serving C{kind} (C{web},
        C{metrics}, ...).
        """
        for served, address in self.listening:
            host, _, port = address.rpartition(":")
            if served == kind and host == "127.0.0.1":
                return int(port)
        raise AssertionError(f"no {kind} listener on 127.0.0.1: {self.listening}")

    @property
    def port(self) -> int:
        """
        The port of its first IPv4 loopback address.
        """
        for address in self.addresses:
            host, _, port = address.rpartition(":")
            if host == "127.0.0.1":
                return int(port)
        raise AssertionError(f"not listening on 127.0.0.1: {self.addresses}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = WAIT) -> int:
        """
        Send C{sig} and wait for the process to exit; return its status and
        read all its output.
        """
        self.process.send_signal(sig)
        try:
            status = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"the server did not exit within {timeout}s of signal {sig}; "
                f"it wrote:\n{self.output.text()}"
            ) from None
        self.output.readToEnd()
        return status


@dataclass
class Terminal:
    """
    A program running in a pseudo-terminal, as in a user's terminal window.
    """

    process: subprocess.Popen[bytes]
    master: int
    output: Stream = field(init=False)

    def __post_init__(self) -> None:
        self.output = Stream(self.master, f"{self.process.args!r} (terminal)")

    def type(self, keys: bytes) -> None:
        """
        Type C{keys} on the terminal.
        """
        os.write(self.master, keys)

    def transcript(self) -> str:
        """
        Return what the terminal showed, with its CR LF line ends as LF.
        """
        return self.output.text().replace("\r\n", "\n")


def waitWhileProgressing(
    done: Callable[[], bool],
    progress: Callable[[], object],
    stall: float = WAIT,
    longest: float = 240.0,
) -> bool:
    """
    Wait until C{done()} holds, for as long as C{progress()} (a count, say)
    keeps changing: a machine loaded by others slows a drain, and only a
    drain that stopped for C{stall} seconds fails (or one that took
    C{longest} seconds in all). Return whether C{done()} held.
    """
    pace = threading.Event()
    start = time.monotonic()
    last, seen = progress(), start
    while not done():
        now = time.monotonic()
        if now - seen >= stall or now - start >= longest:
            return False
        pace.wait(0.1)
        current = progress()
        if current != last:
            last, seen = current, time.monotonic()
    return True


def waitForExit(pid: int, timeout: float = WAIT) -> bool:
    """
    Wait, at most C{timeout} seconds, for the process C{pid} (not necessarily
    our child) to exit; return whether it did.
    """
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        ready, _, _ = select.select([pidfd], [], [], timeout)
        return bool(ready)
    finally:
        os.close(pidfd)


def processesMentioning(marker: str) -> list[int]:
    """
    Return the ids of the live processes whose command line contains C{marker}
    (a unique path of the test's): the way to find a daemon after the fact.
    """
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            commandLine = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if marker.encode() in commandLine:
            found.append(int(entry.name))
    return found


def listeningAddresses(output: bytes) -> list[tuple[str, str]]:
    """
    Return the C{(mode, address)} of every listening line in C{output}.
    """
    return [
        (mode.decode(), address.decode()) for mode, address in LISTENING.findall(output)
    ]


def receiveUntil(
    sock: socket.socket,
    predicate: Callable[[bytes], bool],
    what: str,
    timeout: float = WAIT,
    received: bytes = b"",
) -> bytes:
    """
    Receive from C{sock} until C{predicate} holds of everything received.

    @raise AssertionError: if the server closes or C{timeout} passes first.
    """
    deadline = time.monotonic() + timeout
    while not predicate(received):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"no {what} within {timeout}s; received {received!r}")
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        if not chunk:
            raise AssertionError(f"closed before {what}; received {received!r}")
        received += chunk
    return received


def receiveText(
    sock: socket.socket, text: bytes, timeout: float = WAIT, received: bytes = b""
) -> bytes:
    """
    Receive from C{sock} until C{text} arrives; return everything received.
    """
    return receiveUntil(
        sock, lambda data: text in data, repr(text), timeout, received=received
    )


def receiveToEOF(sock: socket.socket, timeout: float = WAIT) -> bytes:
    """
    Receive from C{sock} until the server closes; return everything received.

    @raise AssertionError: if C{timeout} passes first.
    """
    deadline = time.monotonic() + timeout
    received = b""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"not closed within {timeout}s; received {received!r}")
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            raise AssertionError(
                f"connection reset instead of closed; received {received!r}"
            ) from None
        if not chunk:
            return received
        received += chunk


class Processes:
    """
    Start processes and open sockets for one test, and at the end close every
    socket and kill every process still running.

    @ivar directory: a private directory: servers run there, since C{twistd}
        writes C{twistd.pid} in its working directory.
    """

    def __init__(self) -> None:
        self._temporary = tempfile.TemporaryDirectory(prefix="sockserve-e2e-")
        # Short: UNIX socket paths are limited to 107 bytes.
        self.directory = Path(self._temporary.name)
        self._processes: list[subprocess.Popen[bytes]] = []
        self._sockets: list[socket.socket] = []
        self._fds: list[int] = []
        self._daemonMarkers: list[str] = []
        self._closers: list[Callable[[], object]] = []

    def __enter__(self) -> Processes:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """
        Close every socket, kill every process, remove the directory.
        """
        for closer in self._closers:
            closer()
        for sock in self._sockets:
            sock.close()
        for process in self._processes:
            if process.poll() is None:
                process.kill()
            process.wait(WAIT)
            for pipe in (process.stdin, process.stdout, process.stderr):
                if pipe is not None:
                    pipe.close()
        for fd in self._fds:
            os.close(fd)
        for marker in self._daemonMarkers:
            for pid in processesMentioning(marker):
                os.kill(pid, signal.SIGKILL)
                waitForExit(pid)
        self._temporary.cleanup()

    def closeLater(self, closer: Callable[[], object]) -> None:
        """
        Call C{closer} (which closes something the test opened) at the end.
        """
        self._closers.append(closer)

    def newDirectory(self, name: str) -> Path:
        """
        Return a new empty directory in our private one.
        """
        path = self.directory / name
        path.mkdir()
        return path

    def trackDaemons(self, marker: str) -> None:
        """
        At the end, kill any process whose command line contains C{marker}: a
        daemon is not our child, and may outlive what started it.
        """
        self._daemonMarkers.append(marker)

    def spawn(
        self,
        args: Sequence[str],
        cwd: Path | None = None,
        stderr: int = subprocess.STDOUT,
    ) -> subprocess.Popen[bytes]:
        """
        Start C{args} with pipes for stdin and stdout (stderr joins stdout
        unless told otherwise).
        """
        process = subprocess.Popen(
            list(args),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            cwd=cwd or self.directory,
            env=cleanEnvironment(),
        )
        self._processes.append(process)
        return process

    def run(
        self,
        args: Sequence[str],
        input: bytes = b"",
        timeout: float = WAIT,
        cwd: Path | None = None,
    ) -> subprocess.CompletedProcess[bytes]:
        """
        Run C{args} to completion with C{input} on stdin, capturing stdout and
        stderr apart.

        @raise AssertionError: if it does not exit within C{timeout} seconds
            (it is killed).
        """
        try:
            return subprocess.run(
                list(args),
                input=input,
                capture_output=True,
                timeout=timeout,
                cwd=cwd or self.directory,
                env=cleanEnvironment(),
                check=False,
            )
        except subprocess.TimeoutExpired as expired:
            raise AssertionError(
                f"{list(args)} did not exit within {timeout}s; it wrote:\n"
                f"stdout: {expired.stdout!r}\nstderr: {expired.stderr!r}"
            ) from None

    def server(
        self,
        *options: str,
        mode: str = "chat",
        listeners: int = 1,
        command: Sequence[str] | None = None,
    ) -> Server:
        """
        Start C{twistd -n sockserve --mode MODE OPTIONS} (C{--port 0} unless
        OPTIONS name a port) in a directory of its own, and wait until it logged
        C{listeners} listening lines.
        """
        if command is None:
            command = [installedProgram("twistd"), "-n"]
        if not any(option.startswith(("--port", "-p")) for option in options):
            options = ("--port", "0", *options)
        directory = self.newDirectory(f"server{len(self._processes)}")
        process = self.spawn(
            [*command, "sockserve", "--mode", mode, *options], cwd=directory
        )
        assert process.stdout is not None
        output = Stream(process.stdout.fileno(), f"the {mode} server")
        data = output.waitFor(
            lambda data: len(LISTENING.findall(data)) >= listeners,
            f"{listeners} listening line(s)",
        )
        found = listeningAddresses(data)
        assert mode in {logged for logged, _ in found}, found
        return Server(
            process,
            output,
            mode,
            [a for kind, a in found if kind == mode],
            directory,
            found,
        )

    def terminal(self, args: Sequence[str]) -> Terminal:
        """
        Start C{args} in a new pseudo-terminal, its controlling terminal (so
        that Ctrl-C typed there interrupts it, as in a terminal window).
        """
        master, slave = pty.openpty()
        self._fds.append(master)
        try:
            process = subprocess.Popen(
                list(args),
                stdin=slave,
                stdout=slave,
                stderr=slave,
                cwd=self.directory,
                env=cleanEnvironment(),
                start_new_session=True,
                preexec_fn=_takeTerminal,
            )
        finally:
            os.close(slave)
        self._processes.append(process)
        return Terminal(process, master)

    def connect(
        self,
        address: tuple[str, int] | str,
        family: socket.AddressFamily = socket.AF_INET,
        source: str | None = None,
        receiveBuffer: int | None = None,
    ) -> socket.socket:
        """
        Connect a blocking socket (with a timeout) to C{address}, from the
        host C{source} if given (any of 127.0.0.0/8 is this machine's), with
        a receive buffer of C{receiveBuffer} bytes if given (set before
        connecting, so that the window it offers is small from the start).
        """
        sock = socket.socket(family, socket.SOCK_STREAM)
        self._sockets.append(sock)
        if receiveBuffer is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receiveBuffer)
        sock.settimeout(WAIT)
        if source is not None:
            sock.bind((source, 0))
        sock.connect(address)
        return sock

    def closedPort(self) -> int:
        """
        Return a loopback port where nothing listens, and nothing will while
        the test runs (it is bound, without listening, until the end).
        """
        sock = socket.socket()
        self._sockets.append(sock)
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port

    def busyPort(self) -> int:
        """
        Return a loopback port on which a socket of ours is listening.
        """
        sock = socket.socket()
        self._sockets.append(sock)
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port: int = sock.getsockname()[1]
        return port


WELCOME = re.compile(
    r"\* you are (?P<name>\S+) \((?P<peer>.*)\) in #(?P<room>[A-Za-z0-9_.\-]+); "
    r"(?:nobody else|(?P<others>[0-9]+) others?) here"
)
"""The welcome line a line client is given on arrival: its name, its address,
its room, and how many others are there."""


@dataclass(frozen=True)
class Welcome:
    """
    What a welcome line says.

    @ivar name: the member's name (C{guestN} until it chooses one).
    @ivar peer: its address, as the server sees it.
    @ivar room: the room it is in (without C{#}).
    @ivar others: how many other members are there.
    """

    name: str
    peer: str
    room: str
    others: int


def welcomeIn(data: bytes | str) -> Welcome:
    """
    Return the first welcome line in C{data}.

    @raise AssertionError: there is none.
    """
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    found = WELCOME.search(text)
    if found is None:
        raise AssertionError(f"no welcome line in {text!r}")
    return Welcome(
        found["name"], found["peer"], found["room"], int(found["others"] or 0)
    )


def receiveWelcome(
    sock: socket.socket, timeout: float = WAIT, received: bytes = b""
) -> tuple[Welcome, bytes]:
    """
    Receive from C{sock} until a whole welcome line has come (on a line
    connection, or in a WebSocket frame of the line wire); return what it
    says, and everything received.
    """
    data = receiveUntil(
        sock,
        lambda data: WELCOME.search(data.decode("utf-8", "replace")) is not None,
        "welcome line",
        timeout,
        received,
    )
    return welcomeIn(data), data


class TcpMember:
    """
    A TCP member of the chat, read a line at a time.

    @ivar name: its name, as its welcome line said (and as it changes it
        through L{rename}).
    @ivar peer: its address, as its welcome line said.
    @ivar room: the room it was welcomed into.
    @ivar others: how many others its welcome line said were there.
    """

    def __init__(
        self,
        processes: Processes,
        server: Server | int,
        source: str | None = None,
        receiveBuffer: int | None = None,
    ) -> None:
        port = server if isinstance(server, int) else server.port
        self.sock = processes.connect(
            ("127.0.0.1", port), source=source, receiveBuffer=receiveBuffer
        )
        self.pending = b""
        self.name = "(a member not welcomed yet)"
        welcome = welcomeIn(self.lineUntil(lambda line: bool(WELCOME.fullmatch(line))))
        self.name = welcome.name
        self.peer = welcome.peer
        self.room = welcome.room
        self.others = welcome.others

    def line(self, timeout: float = WAIT) -> str:
        """
        The next line, without its ending, within C{timeout} seconds (what
        came of it meanwhile is kept for the next call if it does not).
        """
        deadline = time.monotonic() + timeout
        while b"\r\n" not in self.pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"no line within {timeout}s; received {self.pending!r}"
                )
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                continue
            if not chunk:
                raise AssertionError(f"closed before a line; received {self.pending!r}")
            self.pending += chunk
        line, _, self.pending = self.pending.partition(b"\r\n")
        return line.decode("utf-8")

    def linesUntil(
        self, predicate: Callable[[str], bool], timeout: float = WAIT
    ) -> list[str]:
        """
        The lines, from here on, up to and including the first that
        satisfies C{predicate}, within C{timeout} seconds and 1000 lines.
        """
        deadline = time.monotonic() + timeout
        lines: list[str] = []
        for _ in range(1000):
            remaining = deadline - time.monotonic()
            try:
                line = self.line(max(remaining, 0.001))
            except AssertionError as error:
                raise AssertionError(
                    f"no such line within {timeout}s; {self.name} read "
                    f"{lines[-20:]!r}: {error}"
                ) from None
            lines.append(line)
            if predicate(line):
                return lines
        raise AssertionError(f"no such line in 1000; the last: {lines[-20:]!r}")

    def lineUntil(self, predicate: Callable[[str], bool], timeout: float = WAIT) -> str:
        """
        The first line, from here on, that satisfies C{predicate}, within
        C{timeout} seconds and 1000 lines.
        """
        return self.linesUntil(predicate, timeout)[-1]

    def send(self, data: bytes) -> None:
        """
        Send C{data} as it is.
        """
        self.sock.sendall(data)

    def say(self, text: str) -> None:
        """
        Send C{text} as one line (a message, or a command).
        """
        self.sock.sendall(text.encode("utf-8") + b"\n")

    def ask(self, command: str, predicate: Callable[[str], bool]) -> str:
        """
        Send the line C{command}, and return the first line after it that
        satisfies C{predicate}.
        """
        self.say(command)
        return self.lineUntil(predicate)

    def rename(self, name: str) -> None:
        """
        Take the name C{name} (C{/nick}), and wait until the server says so.
        """
        answer = self.ask(
            f"/nick {name}",
            lambda line: line.startswith(("* you are now known as ", "ERROR ")),
        )
        assert answer == f"* you are now known as {name}", answer
        self.name = name

    def join(self, room: str) -> str:
        """
        Go to C{room} (C{/join}), and return the line saying so.
        """
        answer = self.ask(
            f"/join {room}",
            lambda line: line.startswith(("* you are now in #", "ERROR ")),
        )
        entered = re.fullmatch(r"\* you are now in #([^;]+); .*", answer)
        assert entered is not None, answer
        # Rooms are compared without case, and a leading # is not the name's.
        assert entered[1].casefold() == room.removeprefix("#").casefold(), answer
        self.room = entered[1]
        return answer


def _takeTerminal() -> None:
    """
    In a child that starts a new session: make its stdin, a terminal, the
    session's controlling terminal.
    """
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def ipv6LoopbackAvailable() -> bool:
    """
    Return whether a socket can be bound to C{::1}.
    """
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True

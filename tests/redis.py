"""
Real Redis servers for the tests, and a TCP proxy the tests can cut.

Each L{RedisServer} is Debian's C{redis-server}, private to the test: on a
free loopback port the system chose, without persistence, in a directory of its
own; the test pauses (SIGSTOP), kills and restarts it, and it is stopped at
the end.
"""

from __future__ import annotations

import contextlib
import select
import signal
import socket
import subprocess
import threading
from pathlib import Path

from tests.processes import WAIT, Stream, systemProgram

READY = b"Ready to accept connections"


def freePort() -> int:
    """
    A loopback port nothing listens on now.
    """
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class RedisServer:
    """
    A private C{redis-server}.

    @ivar port: its loopback port.
    """

    def __init__(self, directory: Path, *options: str, port: int = 0) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.options = options
        self.port = port or freePort()
        self.process: subprocess.Popen[bytes] | None = None
        self.output: Stream | None = None

    @property
    def url(self) -> str:
        """
        Its C{--bus} address.
        """
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> RedisServer:
        """
        Start it (empty), and wait until it accepts connections.
        """
        assert self.process is None
        self.process = subprocess.Popen(
            [
                systemProgram("redis-server"),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--dir",
                str(self.directory),
                *self.options,
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        assert self.process.stdout is not None
        self.output = Stream(self.process.stdout.fileno(), "redis-server")
        try:
            self.output.waitFor(lambda data: READY in data, "redis-server ready")
        except AssertionError:
            self.kill()
            raise
        return self

    def pause(self) -> None:
        """
        Stop it without closing anything (SIGSTOP), as a stalled server.
        """
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """
        Let it go on (SIGCONT).
        """
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        """
        Kill it (SIGKILL): everything it held is lost.
        """
        if self.process is None:
            return
        self.process.send_signal(signal.SIGCONT)
        self.process.kill()
        self.process.wait(WAIT)
        if self.process.stdout is not None:
            self.process.stdout.close()
        self.process = None

    def command(self, *arguments: str) -> str:
        """
        Run C{redis-cli} against it; return what it printed.
        """
        result = subprocess.run(
            [systemProgram("redis-cli"), "-p", str(self.port), *arguments],
            capture_output=True,
            timeout=WAIT,
            check=True,
        )
        return result.stdout.decode()


class CuttableProxy:
    """
    A TCP proxy on a loopback port to C{target}, that the test can cut (every
    connection dropped and new ones refused) and restore.
    """

    def __init__(self, target: int) -> None:
        self.target = target
        self.port = freePort()
        self._listener: socket.socket | None = None
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._stop: tuple[socket.socket, socket.socket] | None = None

    @property
    def url(self) -> str:
        """
        Its C{--bus} address.
        """
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> CuttableProxy:
        """
        Accept connections and forward them.
        """
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen()
        self._listener = listener
        self._stop = socket.socketpair()
        thread = threading.Thread(target=self._run, args=(listener, self._stop[0]))
        thread.daemon = True
        thread.start()
        self._threads.append(thread)
        return self

    def _run(self, listener: socket.socket, stop: socket.socket) -> None:
        sockets: dict[socket.socket, socket.socket] = {}
        while True:
            readable, _, _ = select.select([listener, stop, *sockets], [], [], WAIT)
            if stop in readable:
                break
            for sock in readable:
                if sock is listener:
                    client, _ = listener.accept()
                    upstream = socket.create_connection(("127.0.0.1", self.target))
                    sockets[client] = upstream
                    sockets[upstream] = client
                    continue
                try:
                    data = sock.recv(65536)
                except OSError:
                    data = b""
                peer = sockets.get(sock)
                if not data or peer is None:
                    sockets.pop(sock, None)
                    sock.close()
                    if peer is not None:
                        sockets.pop(peer, None)
                        peer.close()
                    continue
                with contextlib.suppress(OSError):
                    peer.sendall(data)
        for sock in sockets:
            sock.close()
        listener.close()

    def cut(self) -> None:
        """
        Drop every connection and refuse new ones.
        """
        assert self._stop is not None
        self._stop[1].send(b"x")
        for thread in self._threads:
            thread.join(WAIT)
        self._stop[0].close()
        self._stop[1].close()
        self._stop = None
        self._threads = []

    def restore(self) -> None:
        """
        Accept and forward again.
        """
        self.start()

    def close(self) -> None:
        """
        Stop for good.
        """
        if self._stop is not None:
            self.cut()

"""
Real Redis servers for the tests, and a TCP proxy the tests can cut.

Each L{RedisServer} is Debian's C{redis-server}, private to the test: on a
free loopback port the system chose, without persistence, in a directory of its
own; the test pauses (SIGSTOP), kills and restarts it, and it is stopped at
the end. A L{SentinelGroup} is a primary, its replicas and three sentinels
(the same C{redis-server}, in sentinel mode) watching it.
"""

from __future__ import annotations

import contextlib
import re
import select
import signal
import socket
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred

from tests.processes import WAIT, Stream, systemProgram

READY = b"Ready to accept connections"
SENTINEL_READY = b"+monitor master "


def freePort() -> int:
    """
    A loopback port nothing listens on now.
    """
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@dataclass(frozen=True)
class TLSFiles:
    """
    The files of a server speaking TLS: the CA that signed its certificate,
    the certificate and its key.
    """

    ca: Path
    cert: Path
    key: Path

    def redisOptions(self) -> tuple[str, ...]:
        """
        The options of a C{redis-server} that speaks TLS to its clients and
        its replicas (and, as a sentinel, to what it watches), without
        client certificates.
        """
        return (
            "--tls-cert-file",
            str(self.cert),
            "--tls-key-file",
            str(self.key),
            "--tls-ca-cert-file",
            str(self.ca),
            "--tls-auth-clients",
            "no",
            "--tls-replication",
            "yes",
        )


class RedisServer:
    """
    A private C{redis-server}.

    @ivar port: its loopback port.
    @ivar tlsPort: its TLS port, if it has one (given in its options).
    """

    def __init__(self, directory: Path, *options: str, port: int = 0) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.options = options
        self.port = port or freePort()
        self.tlsPort: int | None = None
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


class SentinelServer:
    """
    A private C{redis-server} in sentinel mode (C{redis-server FILE
    --sentinel}), its configuration file (which it rewrites) in a
    directory of its own.

    @ivar port: its loopback port.
    @ivar tlsPort: its TLS port, with TLS files.
    """

    def __init__(
        self,
        directory: Path,
        service: str,
        primary: int,
        downAfterMs: int,
        failoverTimeoutMs: int,
        tls: TLSFiles | None = None,
    ) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = freePort()
        self.tlsPort = freePort() if tls is not None else None
        self.config = directory / "sentinel.conf"
        secure = ""
        if tls is not None:
            options = tls.redisOptions()
            secure = f"tls-port {self.tlsPort}\n" + "".join(
                f"{name.removeprefix('--')} {value}\n"
                for name, value in zip(options[::2], options[1::2], strict=True)
            )
        self.config.write_text(
            f"port {self.port}\n"
            "bind 127.0.0.1\n"
            "daemonize no\n"
            f"dir {directory}\n"
            + secure
            + f"sentinel monitor {service} 127.0.0.1 {primary} 2\n"
            f"sentinel down-after-milliseconds {service} {downAfterMs}\n"
            f"sentinel failover-timeout {service} {failoverTimeoutMs}\n"
            f"sentinel parallel-syncs {service} 2\n"
        )
        self.process: subprocess.Popen[bytes] | None = None
        self.output: Stream | None = None

    def start(self) -> SentinelServer:
        """
        Start it, and wait until it accepts connections.
        """
        assert self.process is None
        self.process = subprocess.Popen(
            [systemProgram("redis-server"), str(self.config), "--sentinel"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        assert self.process.stdout is not None
        self.output = Stream(self.process.stdout.fileno(), "redis-sentinel")
        try:
            self.output.waitFor(
                lambda data: SENTINEL_READY in data, "redis-sentinel ready"
            )
        except AssertionError:
            self.kill()
            raise
        # Read in the background: the test waits on its events much later.
        self.output.follow()
        return self

    def kill(self) -> None:
        """
        Kill it (SIGKILL).
        """
        if self.process is None:
            return
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


class SentinelGroup:
    """
    A primary, C{replicas} replicas of it (C{--replicaof}) and three
    sentinels watching it under the name C{service}, each on a loopback port
    the system gave; all stopped by L{close}.

    @ivar primary: the primary it started with.
    @ivar replicas: the replicas it started with.
    @ivar sentinels: the sentinels.
    @ivar tls: with TLS files, every process speaks TLS to the others and to
        the nodes (on its C{tlsPort}; its C{port} stays for C{redis-cli}).
    """

    def __init__(
        self,
        directory: Path,
        replicas: int = 2,
        service: str = "sockbus",
        downAfterMs: int = 500,
        failoverTimeoutMs: int = 2000,
        tls: TLSFiles | None = None,
    ) -> None:
        self.directory = directory
        self.service = service
        self.downAfterMs = downAfterMs
        self.failoverTimeoutMs = failoverTimeoutMs
        self.tls = tls
        # No diskless sync delay: a replica syncs at once, from whichever
        # primary.
        self.primary = self._server(directory / "primary")
        self.replicas = [
            self._server(
                directory / f"replica{n}",
                "--replicaof",
                "127.0.0.1",
                str(self._port(self.primary)),
            )
            for n in range(replicas)
        ]
        self.sentinels: list[SentinelServer] = []

    def _server(self, directory: Path, *options: str) -> RedisServer:
        secure: tuple[str, ...] = ()
        tlsPort = None
        if self.tls is not None:
            tlsPort = freePort()
            secure = ("--tls-port", str(tlsPort), *self.tls.redisOptions())
        server = RedisServer(
            directory, "--repl-diskless-sync-delay", "0", *secure, *options
        )
        server.tlsPort = tlsPort
        return server

    def _port(self, server: RedisServer | SentinelServer) -> int:
        """
        The port the others (and the nodes) reach C{server} on.
        """
        return server.tlsPort if server.tlsPort is not None else server.port

    @property
    def url(self) -> str:
        """
        Its C{--bus} address.
        """
        hosts = ",".join(
            f"127.0.0.1:{self._port(sentinel)}" for sentinel in self.sentinels
        )
        if self.tls is not None:
            return (
                f"rediss+sentinel://{hosts}/{self.service}?ssl_ca_certs={self.tls.ca}"
            )
        return f"redis+sentinel://{hosts}/{self.service}"

    def start(self) -> SentinelGroup:
        """
        Start the primary, its replicas, then the sentinels; wait until the
        replicas acknowledge a write (C{WAIT}), and every sentinel knows the
        others and the replicas (their own events) and names the primary.
        """
        self.primary.start()
        for replica in self.replicas:
            replica.start()
        self.primary.command("SET", "sockserve-test:ready", "1")
        acknowledged = self.primary.command(
            "WAIT", str(len(self.replicas)), str(int(WAIT * 1000))
        )
        assert int(acknowledged) == len(self.replicas), acknowledged
        self.sentinels = [
            SentinelServer(
                self.directory / f"sentinel{n}",
                self.service,
                self._port(self.primary),
                self.downAfterMs,
                self.failoverTimeoutMs,
                self.tls,
            ).start()
            for n in range(3)
        ]
        others = len(self.sentinels) - 1
        for sentinel in self.sentinels:
            assert sentinel.output is not None
            sentinel.output.waitFor(
                lambda data: (
                    data.count(b"+sentinel sentinel ") >= others
                    and data.count(b"+slave slave ") >= len(self.replicas)
                ),
                "a sentinel knowing the other sentinels and the replicas",
            )
            assert self.primaryPort(sentinel) == self._port(self.primary)
        return self

    def primaryPort(self, sentinel: SentinelServer | None = None) -> int:
        """
        The port of the primary, as a sentinel (the first) says.
        """
        sentinel = sentinel or self.sentinels[0]
        host, port = sentinel.command(
            "SENTINEL", "get-master-addr-by-name", self.service
        ).split()
        assert host == "127.0.0.1", host
        return int(port)

    def waitForFailover(self, timeout: float = WAIT) -> int:
        """
        Wait until every sentinel switched to a new primary
        (C{+switch-master}); return its port.
        """
        ports = set()
        for sentinel in self.sentinels:
            assert sentinel.output is not None
            data = sentinel.output.waitFor(
                lambda data: b"+switch-master " in data,
                "a sentinel switching to a new primary",
                timeout,
            )
            found = re.search(
                rb"\+switch-master \S+ 127\.0\.0\.1 \d+ 127\.0\.0\.1 (\d+)", data
            )
            assert found is not None, data
            ports.add(int(found[1]))
        assert len(ports) == 1, ports
        return ports.pop()

    def close(self) -> None:
        """
        Stop every process of the group.
        """
        for sentinel in self.sentinels:
            sentinel.kill()
        for server in (self.primary, *self.replicas):
            server.kill()


class Commands:
    """
    A command connection whose every reply the test gives.
    """

    def __init__(self) -> None:
        self.sent: list[tuple[tuple[Any, ...], Deferred[Any]]] = []

    def execute_command(self, *arguments: Any) -> Deferred[Any]:
        reply: Deferred[Any] = Deferred()
        self.sent.append((arguments, reply))
        return reply

    def names(self) -> list[Any]:
        return [arguments[0] for arguments, _ in self.sent]

    def reply(self, name: str, value: Any) -> None:
        for index, (arguments, deferred) in enumerate(self.sent):
            if arguments[0] == name:
                del self.sent[index]
                deferred.callback(value)
                return
        raise AssertionError(f"no {name} among {self.names()}")

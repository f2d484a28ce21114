"""
A real IRC server for the tests: Debian's C{ngircd}, the reference server of
the IRC conformance runs and benchmarks.

Each L{NgircdServer} is private to the test: a configuration of its own in a
directory of its own, on a loopback port the system chose, in the foreground,
with nothing that reaches past this machine (no DNS, no ident, no PAM), no
limit that would throttle a benchmark (no penalties, no per-address limit),
and the message of the day in the configuration itself.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
from pathlib import Path

from tests.processes import WAIT, Stream, systemProgram
from tests.redis import freePort

SERVER_NAME = "irc.sockserve.test"
"""The name the server gives itself (the prefix of its replies)."""

NETWORK = "sockservetest"
"""The network name it announces (C{005 NETWORK=})."""

MOTD = "the reference server of the sockserve tests"
"""Its message of the day."""

NICK_LENGTH = 30
"""The longest nick it accepts (C{005 NICKLEN=}); RFC 2812's 9 is too short for
the names tests use."""

UNPRIVILEGED = 65534
"""The user and group ids (C{nobody}, C{nogroup}) it runs as when started by
root: it drops root after binding, and reads everything it needs before."""

IRC_PORTS = (6667, 6697)
"""The ports IRC servers take by default: never ours, so that a test never
meets a system's server (or takes its place)."""

STARTS = 3
"""How many ports it tries: a port found free may be taken before it binds."""


def configuration(port: int, includes: Path, root: bool) -> str:
    """
    The text of a private C{ngircd.conf} for a server on C{127.0.0.1:port}.

    @param includes: an empty directory for C{IncludeDir}, so that the
        system's configuration snippets are not read.
    @param root: whether it is started as root, and so must give up root.
    """
    lines = [
        "[Global]",
        f"\tName = {SERVER_NAME}",
        "\tInfo = sockserve test reference server",
        "\tAdminInfo1 = sockserve tests",
        "\tAdminInfo2 = this machine",
        "\tAdminEMail = nobody@localhost",
        "\tListen = 127.0.0.1",
        f"\tPorts = {port}",
        f'\tMotdPhrase = "{MOTD}"',
        f"\tNetwork = {NETWORK}",
        "\tPidFile =",
    ]
    if root:
        lines += [f"\tServerUID = {UNPRIVILEGED}", f"\tServerGID = {UNPRIVILEGED}"]
    lines += [
        "[Limits]",
        "\tConnectRetry = 60",
        "\tIdleTimeout = 0",
        "\tMaxConnections = 0",
        "\tMaxConnectionsIP = 0",
        "\tMaxJoins = 0",
        f"\tMaxNickLength = {NICK_LENGTH}",
        # No flood penalties: a benchmark's senders are never slowed down.
        "\tMaxPenaltyTime = 0",
        "\tMaxListSize = 1000",
        "\tPingTimeout = 600",
        "\tPongTimeout = 600",
        "[Options]",
        "\tDNS = no",
        "\tIdent = no",
        "\tPAM = no",
        f"\tIncludeDir = {includes}",
        "\tMorePrivacy = no",
        "\tNoticeBeforeRegistration = no",
        "\tOperCanUseMode = no",
        "\tRequireAuthPing = no",
        "\tScrubCTCP = no",
    ]
    return "\n".join(lines) + "\n"


class NgircdServer:
    """
    A private C{ngircd}.

    @ivar directory: its directory: its configuration, nothing else.
    @ivar port: its loopback port (chosen again if the first one was taken
        before it bound it).
    @ivar output: what it logged (in the foreground it logs to its stderr).
    """

    def __init__(self, directory: Path, port: int = 0) -> None:
        if port in IRC_PORTS:
            raise ValueError(f"port {port} is a system IRC server's, not a test's")
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self._fixedPort = port
        self.port = port or freePort()
        while self.port in IRC_PORTS:
            self.port = freePort()
        self.process: subprocess.Popen[bytes] | None = None
        self.output: Stream | None = None

    @property
    def host(self) -> str:
        """
        The address it listens on.
        """
        return "127.0.0.1"

    @property
    def address(self) -> tuple[str, int]:
        """
        Its C{(host, port)}, for a socket's C{connect}.
        """
        return (self.host, self.port)

    @property
    def url(self) -> str:
        """
        Its address as an C{irc://} URL.
        """
        return f"irc://{self.host}:{self.port}"

    @property
    def configurationFile(self) -> Path:
        """
        Its configuration file.
        """
        return self.directory / "ngircd.conf"

    def start(self) -> NgircdServer:
        """
        Start it, and wait until it accepts connections (trying another port
        if the one chosen was taken meanwhile).
        """
        assert self.process is None
        for attempt in range(STARTS):
            if self._start():
                return self
            if self._fixedPort or attempt == STARTS - 1:
                break
            self.port = freePort()
            while self.port in IRC_PORTS:
                self.port = freePort()
        raise AssertionError(
            f"ngircd did not start on 127.0.0.1:{self.port}; it wrote:\n"
            f"{self.output.text() if self.output is not None else ''}"
        )

    def _start(self) -> bool:
        """
        Start it once on C{self.port}; return whether it listens there (if it
        does not, it is stopped).
        """
        includes = self.directory / "conf.d"
        includes.mkdir(exist_ok=True)
        root = os.geteuid() == 0
        self.configurationFile.write_text(configuration(self.port, includes, root))
        if root:
            # Read after it gave up root, on a rehash.
            self.configurationFile.chmod(0o644)
        self.process = subprocess.Popen(
            [systemProgram("ngircd"), "-n", "-f", str(self.configurationFile)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=self.directory,
        )
        assert self.process.stdout is not None
        self.output = Stream(self.process.stdout.fileno(), "ngircd")
        self.output.follow()
        ready = re.compile(rb'Server "[^"]*" \(on "[^"]*"\) ready\.')
        try:
            data = self.output.waitFor(
                lambda data: (
                    ready.search(data) is not None
                    or b"Can't bind" in data
                    or b"exiting" in data
                ),
                "ngircd ready",
            )
        except AssertionError:
            self.kill()
            return False
        if ready.search(data) is None or f"]:{self.port} ".encode() not in data:
            self.kill()
            return False
        try:
            self._connectOnce()
        except OSError:
            self.kill()
            return False
        return True

    def _connectOnce(self) -> None:
        """
        Connect and close at once: it accepts connections.
        """
        with socket.create_connection(self.address, timeout=WAIT):
            pass

    def connect(self) -> socket.socket:
        """
        A blocking socket (with a timeout) connected to it; the caller closes it.
        """
        return socket.create_connection(self.address, timeout=WAIT)

    def stop(self, timeout: float = WAIT) -> int:
        """
        Stop it (SIGTERM: it says goodbye to its clients), wait until it
        exits, and return its status.
        """
        assert self.process is not None
        process = self.process
        process.send_signal(signal.SIGTERM)
        try:
            status = process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"ngircd did not exit within {timeout}s of SIGTERM"
            ) from None
        self._closed()
        return status

    def kill(self) -> None:
        """
        Kill it (SIGKILL), if it runs.
        """
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(WAIT)
        self._closed()

    def _closed(self) -> None:
        assert self.process is not None
        if self.output is not None:
            self.output.readToEnd()
        if self.process.stdout is not None:
            self.process.stdout.close()
        self.process = None

    def log(self) -> str:
        """
        What it logged so far.
        """
        return self.output.text() if self.output is not None else ""

    def __enter__(self) -> NgircdServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()

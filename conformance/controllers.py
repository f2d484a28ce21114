"""
irctest controllers for the servers the conformance suite compares: ngIRCd (the
reference IRC server from Debian) and sockserve's IRC front end.

irctest creates one controller per test case and calls C{run} in the case's
C{setUp}: a controller writes the server's configuration in a temporary
directory, starts the server on the loopback interface and returns once the
server has logged that it listens, with C{port} set to the port it listens on.
C{kill} stops the server and removes the directory.

This module runs in the conformance virtualenv (see L{conformance.prepare}), where
the patched irctest tree is importable; it is not part of the sockserve package.
"""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time
from collections.abc import Mapping
from typing import IO, Any, ClassVar

from irctest.basecontrollers import (
    BaseServerController,
    DirectoryBasedController,
    NotImplementedByController,
)

START_TIMEOUT = 15.0
"""Seconds a server may take to log that it listens."""

STOP_TIMEOUT = 5.0
"""Seconds a server may take to exit after SIGTERM before it is killed."""

OUTPUT_KEPT = 40
"""Lines of a server's output quoted when it fails to start."""


class ServerOutput:
    """
    What a server writes to its standard output and error, read line by line
    in a thread (so that a talkative server never blocks on a full pipe), with
    the first line that matches a pattern.

    @ivar lines: every line read so far.
    @ivar match: the first match of the pattern, or L{None}.
    """

    def __init__(self, stream: IO[bytes], pattern: re.Pattern[bytes]) -> None:
        self.lines: list[bytes] = []
        self.match: re.Match[bytes] | None = None
        self._stream = stream
        self._pattern = pattern
        self._decided = threading.Event()
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        for line in iter(self._stream.readline, b""):
            self.lines.append(line)
            if self.match is None:
                self.match = self._pattern.search(line)
                if self.match is not None:
                    self._decided.set()
        self._stream.close()
        self._decided.set()

    def waitForMatch(self, timeout: float) -> re.Match[bytes] | None:
        """
        Wait at most C{timeout} seconds for the pattern; return its match, or
        L{None} if the output ended or the time ran out first.
        """
        self._decided.wait(timeout)
        return self.match

    def tail(self) -> str:
        """
        Return the last lines read, for an error message.
        """
        return b"".join(self.lines[-OUTPUT_KEPT:]).decode("utf-8", "replace")

    def close(self) -> None:
        """
        Wait (bounded) for the reading thread to see the end of the output.
        """
        self._thread.join(STOP_TIMEOUT)


def cleanEnvironment() -> dict[str, str]:
    """
    Return the environment for a server: ours, without what makes Python import
    code from elsewhere (the conformance virtualenv puts irctest on
    C{PYTHONPATH}; sockserve's twistd must only see its own virtualenv).
    """
    env = dict(os.environ)
    for name in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV"):
        env.pop(name, None)
    env["PYTHONUNBUFFERED"] = "1"
    return env


class LoggedServerController(BaseServerController, DirectoryBasedController):  # type: ignore[misc]
    """
    A server started in a temporary directory, known to be listening once its
    output matches L{listening}, whose group C{port} is the port.

    @cvar program: the server's executable.
    @cvar listening: what the server logs once it listens.
    @ivar port: the port the server listens on (set by L{run}).
    @ivar output: the server's output.
    @ivar startSeconds: how long the last start took.
    """

    software_name: ClassVar[str] = "?"
    supported_sasl_mechanisms: ClassVar[frozenset[str]] = frozenset()
    program: ClassVar[str] = ""
    listening: ClassVar[re.Pattern[bytes]] = re.compile(rb"$^")

    def __init__(self) -> None:
        super().__init__()
        self.proc: subprocess.Popen[bytes] | None = None
        self.directory: str | None = None
        self.port = 0
        self.output: ServerOutput | None = None
        self.startSeconds = 0.0

    def command(self, hostname: str, port: int, password: str | None) -> list[str]:
        """
        Write the configuration in C{self.directory}; return the command that
        starts the server on C{hostname} and C{port} (0: one the OS chooses).
        """
        raise NotImplementedError()

    def run(
        self,
        hostname: str,
        port: int,
        password: str | None = None,
        ssl: bool = False,
        valid_metadata_keys: Any = None,
        invalid_metadata_keys: Any = None,
        restricted_metadata_keys: Any = None,
    ) -> None:
        """
        Start the server (irctest's controller interface); return once it has
        logged that it listens.

        @raise NotImplementedByController: for what this controller does not
            configure (TLS, METADATA keys); irctest skips the test.
        @raise RuntimeError: if the server does not start.
        """
        if valid_metadata_keys or invalid_metadata_keys or restricted_metadata_keys:
            raise NotImplementedByController(
                "Defining valid and invalid METADATA keys."
            )
        if ssl:
            raise NotImplementedByController("TLS (STARTTLS)")
        assert self.proc is None
        self.create_config()
        command = self.command(hostname, port, password)
        started = time.monotonic()
        self.proc = proc = subprocess.Popen(
            command,
            cwd=self.directory,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=cleanEnvironment(),
        )
        assert proc.stdout is not None
        self.output = ServerOutput(proc.stdout, self.listening)
        match = self.output.waitForMatch(START_TIMEOUT)
        self.startSeconds = time.monotonic() - started
        if match is None:
            self.kill()
            raise RuntimeError(
                f"{self.software_name} did not log that it listens within "
                f"{START_TIMEOUT:.0f} s ({' '.join(command)}); its output:\n"
                f"{self.output.tail()}"
            )
        self.port = int(match.group("port"))
        self.port_open = True

    def wait_for_port(self) -> None:
        """
        Return at once: L{run} has already seen the server listen.
        """
        assert self.port_open

    def kill_proc(self) -> None:
        """
        Stop the server: SIGTERM, then SIGKILL if it has not exited in time.
        """
        assert self.proc is not None
        self.proc.terminate()
        try:
            self.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(STOP_TIMEOUT)
        self.proc = None
        if self.output is not None:
            self.output.close()


NGIRCD_CONFIG = """\
[Global]
    Name = irc.conformance.test
    Info = irctest conformance run
    AdminInfo1 = sockserve conformance suite
    AdminInfo2 = loopback only
    AdminEMail = nobody@localhost
    Listen = {hostname}
    Ports = {port}
    MotdPhrase = "irctest conformance run"
    PidFile =
    HelpFile =
    {password}
[Limits]
    # The longest ngIRCd allows (its default is 9).
    MaxNickLength = 31
    # No penalty time: by default ngIRCd reads about one command a second from
    # a client, and irctest's clients give up after a second of silence.
    MaxPenaltyTime = 0
    MaxConnectionsIP = 0
    PingTimeout = 120
    PongTimeout = 20
[Options]
    DNS = no
    Ident = no
    PAM = no
    MorePrivacy = no
    IncludeDir = {directory}/conf.d
"""


class NgircdController(LoggedServerController):
    """
    ngIRCd, from Debian's package, in the foreground (C{-n}) with a
    configuration of its own: loopback only, the port irctest chose, no DNS,
    ident or PAM look-ups, no penalty time.
    """

    software_name = "ngIRCd"
    program = "/usr/sbin/ngircd"
    listening = re.compile(rb"Now listening on \[[^\]]+\]:(?P<port>\d+)")

    def command(self, hostname: str, port: int, password: str | None) -> list[str]:
        """
        Write C{ngircd.conf}; return ngIRCd's command line.
        """
        assert self.directory is not None
        if port == 0:
            raise ValueError("ngIRCd needs a port number, not 0")
        os.mkdir(os.path.join(self.directory, "conf.d"))
        # ngIRCd started as root runs as nobody, after reading its configuration.
        os.chmod(self.directory, 0o755)
        with self.open_file("ngircd.conf", "w") as config:
            config.write(
                NGIRCD_CONFIG.format(
                    hostname=hostname,
                    port=port,
                    directory=self.directory,
                    password=f"Password = {password}" if password else "",
                )
            )
        return [self.program, "-n", "-f", os.path.join(self.directory, "ngircd.conf")]


class SockserveController(LoggedServerController):
    """
    sockserve's IRC front end: the installed C{twistd -n sockserve --mode chat},
    its line port and its IRC port both on a port the OS chooses on the
    loopback interface, the IRC port read from its log.

    Its C{--shutdown-grace} is 0: irctest stops the server before its clients
    disconnect, and sockserve would otherwise wait 5 s for them at every test.

    @cvar extraOptions: more options for twistd's sockserve, by name.
    """

    software_name = "sockserve"
    program = "twistd"
    listening = re.compile(
        rb"sockserve irc server listening on (?:127\.0\.0\.1|\[::1\]):(?P<port>\d+)"
    )
    extraOptions: ClassVar[Mapping[str, str]] = {"shutdown-grace": "0"}

    def command(self, hostname: str, port: int, password: str | None) -> list[str]:
        """
        Return twistd's command line; the port irctest chose is ignored: the
        OS chooses one, and L{run} reads it from the log. A server password
        goes in a file of the server's directory, named by
        C{--irc-password-file} (sockserve reads it from no command line).
        """
        options = [f"--{name}={value}" for name, value in self.extraOptions.items()]
        if password:
            assert self.directory is not None
            with self.open_file("irc-password", "w") as secret:
                secret.write(password + "\n")
            options.append(
                f"--irc-password-file={os.path.join(self.directory, 'irc-password')}"
            )
        return [
            self.program,
            "--pidfile=",
            "-n",
            "sockserve",
            "--mode",
            "chat",
            "--interface",
            hostname,
            "--port",
            "0",
            "--irc",
            f"tcp:0:interface={hostname}",
            *options,
        ]


CONTROLLERS: dict[str, type[LoggedServerController]] = {
    "ngircd": NgircdController,
    "sockserve": SockserveController,
}
"""The controllers, by the name C{--servers} gives."""

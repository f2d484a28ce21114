"""
Real IRC clients from Debian, driven as their users drive them: irssi in a
terminal (C{tmux}), WeeChat headless (through its FIFO), and C{ii} (through
its FIFOs).

Each client runs in a private directory of the test's (its home, its
configuration, its logs: never C{~/.irssi} or C{~/.weechat}), connects to one
server with one nick, and reaches nothing else: no auto-connect elsewhere, no
DCC, no scripts, no update checks. What its user sees of a channel or a query
is read from the client's own log of that window, which it writes line by line
as it shows it; every wait looks again at each change inotify reports under
the client's directory (L{DirectoryChanges}), within a bounded time.

A driver is given the test's L{Processes}, which kills whatever the driver
started if the test fails before L{IrcClient.close}.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

from tests.filewatch import DirectoryChanges
from tests.processes import (
    WAIT,
    Processes,
    Stream,
    cleanEnvironment,
    processesMentioning,
    systemProgram,
    waitForExit,
)

STATUS = ""
"""The target naming a client's server (status) window in L{IrcClient.view}."""

REGISTERED = "SOCKSERVE-TEST-REGISTERED"
"""What irssi and WeeChat print once the server welcomed them (001): each
runs a command of ours on connection, after registration."""

Expected = str | re.Pattern[str]


def _found(expected: Expected, text: str) -> bool:
    if isinstance(expected, str):
        return expected in text
    return expected.search(text) is not None


def _readText(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""


def _matching(directory: Path, name: str) -> Iterator[Path]:
    """
    The entries of C{directory} named C{name}, without regard to case (each
    client spells a target's file name its own way).
    """
    try:
        entries = sorted(directory.iterdir())
    except FileNotFoundError:
        return
    for entry in entries:
        if entry.name.casefold() == name.casefold():
            yield entry


class IrcClient:
    """
    A real IRC client, connected to one server with one nick.

    @ivar kind: which client it is (C{irssi}, C{weechat}, C{ii}).
    @ivar nickname: the nick it asked for (and then changed to with L{nick}).
    @ivar directory: its private directory.
    @ivar host: the server's address.
    @ivar port: the server's port.
    """

    kind = "an IRC client"

    def __init__(
        self,
        processes: Processes,
        host: str,
        port: int,
        nickname: str,
        directory: Path | None = None,
    ) -> None:
        self.processes = processes
        self.host = host
        self.port = port
        self.nickname = nickname
        self.directory = directory or processes.newDirectory(f"{self.kind}-{nickname}")
        self.directory.mkdir(parents=True, exist_ok=True)
        # Watched from the start: what the client writes wakes every wait.
        self.changes = DirectoryChanges(self.directory)
        processes.closeLater(self.changes.close)

    def __enter__(self) -> IrcClient:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def start(self) -> IrcClient:
        """
        Start the client, and wait until the server registered it.
        """
        raise NotImplementedError

    def command(self, line: str) -> None:
        """
        Type C{line} (a command, C{/...}) as the user would.
        """
        raise NotImplementedError

    def say(self, channel: str, text: str) -> None:
        """
        Say C{text} in C{channel}, as typed in that channel's window.
        """
        raise NotImplementedError

    def me(self, channel: str, text: str) -> None:
        """
        Do C{text} in C{channel} (C{/me}: a CTCP ACTION).
        """
        raise NotImplementedError

    def msg(self, nickname: str, text: str) -> None:
        """
        Send C{text} to C{nickname} privately (a query).
        """
        raise NotImplementedError

    def logFile(self, target: str) -> list[Path]:
        """
        The files where the client logs what it shows for C{target} (a
        channel, a nick, or L{STATUS} for the server window).
        """
        raise NotImplementedError

    def join(self, channel: str, timeout: float = WAIT) -> str:
        """
        Join C{channel}, and wait until the client shows that it did; return
        what it shows of the channel then.
        """
        self.command(f"/join {channel}")
        return self.waitFor(channel, self.joinedPattern(channel), timeout)

    def joinedPattern(self, channel: str) -> re.Pattern[str]:
        """
        How the client shows that it joined C{channel}.
        """
        return re.compile(
            rf"{re.escape(self.nickname)}\b.*has joined {re.escape(channel)}",
            re.IGNORECASE,
        )

    def part(self, channel: str, message: str = "") -> None:
        """
        Leave C{channel}, saying C{message}.
        """
        self.command(f"/part {channel} {message}".rstrip())

    def topic(self, channel: str, text: str) -> None:
        """
        Set C{channel}'s topic to C{text}.
        """
        self.command(f"/topic {channel} {text}")

    def nick(self, new: str) -> None:
        """
        Change nick to C{new} (the server's word is awaited with
        L{waitForNick}).
        """
        self.command(f"/nick {new}")

    def waitForNick(self, new: str, timeout: float = WAIT) -> str:
        """
        Wait until the client shows it is now C{new}; return what its status
        window shows.
        """
        shown = self.waitFor(
            STATUS,
            re.compile(rf"(?:You're|You are) now known as {re.escape(new)}\b"),
            timeout,
        )
        self.nickname = new
        return shown

    def quit(self, message: str = "", timeout: float = WAIT) -> None:
        """
        Quit with C{message}, and wait until the client has exited.
        """
        self.command(f"/quit {message}".rstrip())
        if not self.exited(timeout):
            raise AssertionError(f"no {self.kind} exit within {timeout}s")

    def running(self) -> bool:
        """
        Whether the client still runs.
        """
        raise NotImplementedError

    def exited(self, timeout: float) -> bool:
        """
        Wait, at most C{timeout} seconds, for the client to exit; return
        whether it did.
        """
        raise NotImplementedError

    def close(self) -> None:
        """
        Stop whatever the client started, if it still runs.
        """
        raise NotImplementedError

    def view(self, target: str) -> str:
        """
        What the client shows for C{target} (a channel, a nick for a query,
        or L{STATUS}), so far.
        """
        return "".join(_readText(path) for path in self.logFile(target))

    def waitFor(self, target: str, expected: Expected, timeout: float = WAIT) -> str:
        """
        Wait until the client shows C{expected} (a substring, or a pattern
        searched for) for C{target}; return what it shows for it then.

        @raise AssertionError: if C{timeout} seconds pass first (with what it
            showed).
        """
        deadline = time.monotonic() + timeout
        while True:
            shown = self.view(target)
            if _found(expected, shown):
                return shown
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"{self.kind} {self.nickname} did not show {expected!r} for "
                    f"{target or 'its status window'} within {timeout}s; it "
                    f"showed:\n{shown}\n{self.diagnostics()}"
                )
            self.changes.wait(deadline - time.monotonic())

    def diagnostics(self) -> str:
        """
        What else may explain a failed wait (the status window, the screen).
        """
        return f"its status window:\n{self.view(STATUS)}"

    # How the client shows what others do, and waits for it.

    def said(self, nickname: str, text: str) -> re.Pattern[str]:
        """
        How the client shows C{nickname} saying C{text}, in a channel or a
        query.
        """
        raise NotImplementedError

    def acted(self, nickname: str, text: str) -> re.Pattern[str]:
        """
        How the client shows C{nickname} doing C{text} (a CTCP ACTION).
        """
        raise NotImplementedError

    def renamed(self, old: str, new: str) -> re.Pattern[str]:
        """
        How the client shows that someone else, C{old}, is now C{new}.
        """
        return re.compile(
            rf"\b{re.escape(old)} is now known as {re.escape(new)}$", re.M
        )

    def renameTarget(self, channel: str) -> str:
        """
        Where the client shows that someone in C{channel} was renamed.
        """
        return channel

    def parted(self, nickname: str, channel: str) -> re.Pattern[str]:
        """
        How the client shows that C{nickname} left C{channel}.
        """
        raise NotImplementedError

    def quitted(self, nickname: str) -> re.Pattern[str]:
        """
        How the client shows that C{nickname} quit.
        """
        raise NotImplementedError

    def quitTarget(self, channel: str) -> str:
        """
        Where the client shows that someone in C{channel} quit.
        """
        return channel

    def topicSet(self, nickname: str, channel: str, text: str) -> re.Pattern[str]:
        """
        How the client shows that C{nickname} set C{channel}'s topic to
        C{text}.
        """
        raise NotImplementedError

    def waitForLine(
        self, target: str, nickname: str, text: str, timeout: float = WAIT
    ) -> str:
        """
        Wait until the client shows C{nickname} saying C{text} in C{target}
        (a channel, or a nick for a query); return what it shows there.
        """
        return self.waitFor(target, self.said(nickname, text), timeout)

    def waitForAction(
        self, target: str, nickname: str, text: str, timeout: float = WAIT
    ) -> str:
        """
        Wait until the client shows C{nickname} doing C{text} in C{target}.
        """
        return self.waitFor(target, self.acted(nickname, text), timeout)

    def waitForRename(
        self, channel: str, old: str, new: str, timeout: float = WAIT
    ) -> str:
        """
        Wait until the client shows that C{old}, in C{channel}, is now C{new}.
        """
        return self.waitFor(self.renameTarget(channel), self.renamed(old, new), timeout)

    def waitForPart(self, channel: str, nickname: str, timeout: float = WAIT) -> str:
        """
        Wait until the client shows that C{nickname} left C{channel}.
        """
        return self.waitFor(channel, self.parted(nickname, channel), timeout)

    def waitForQuit(self, channel: str, nickname: str, timeout: float = WAIT) -> str:
        """
        Wait until the client shows that C{nickname}, who was in C{channel},
        quit.
        """
        return self.waitFor(self.quitTarget(channel), self.quitted(nickname), timeout)

    def waitForTopic(
        self, channel: str, nickname: str, text: str, timeout: float = WAIT
    ) -> str:
        """
        Wait until the client shows that C{nickname} set C{channel}'s topic
        to C{text}.
        """
        return self.waitFor(channel, self.topicSet(nickname, channel, text), timeout)


def _fifoReady(path: Path) -> bool:
    try:
        return stat.S_ISFIFO(path.stat().st_mode)
    except FileNotFoundError:
        return False


class FifoWriter:
    """
    Lines written to the FIFOs a client reads its commands from.

    Each FIFO is held open for writing from the first line on: a client that
    saw its last writer go closes and reopens its FIFO, and a line written
    in between would be lost with the old pipe.
    """

    def __init__(self, changes: DirectoryChanges) -> None:
        self._fds: dict[Path, int] = {}
        self._changes = changes

    def write(self, path: Path, line: str, timeout: float = WAIT) -> None:
        """
        Write C{line} and a newline to the FIFO C{path}, once a reader has it
        open (within C{timeout} seconds).
        """
        data = line.encode("utf-8") + b"\n"
        deadline = time.monotonic() + timeout
        while True:
            fd = self._fds.get(path)
            if fd is None:
                fd = self._open(path, deadline)
            try:
                os.write(fd, data)
                return
            except BrokenPipeError:
                # The client closed this FIFO for good (it left the channel,
                # say) and may have made a new one: open it again.
                self._forget(path)
                if time.monotonic() >= deadline:
                    raise AssertionError(f"nobody reads {path}") from None

    def _open(self, path: Path, deadline: float) -> int:
        while True:
            try:
                fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:
                # No reader yet (ENXIO), or no FIFO yet (ENOENT).
                if time.monotonic() >= deadline:
                    raise AssertionError(f"nobody reads {path}") from None
                # The FIFO made, or its reader opening it, is a change.
                if not self._changes.watchOpening(path):
                    self._changes.wait(deadline - time.monotonic())
                continue
            os.set_blocking(fd, True)
            self._fds[path] = fd
            return fd

    def _forget(self, path: Path) -> None:
        fd = self._fds.pop(path, None)
        if fd is not None:
            os.close(fd)

    def close(self) -> None:
        """
        Close every FIFO it holds.
        """
        for path in list(self._fds):
            self._forget(path)


class IrssiClient(IrcClient):
    """
    irssi in a private C{tmux} server with a fixed window size, typed into
    with C{send-keys}; each window is logged (C{autolog}), and the screen is
    read with C{capture-pane} for diagnostics.
    """

    kind = "irssi"
    TAG = "sockserve"
    WIDTH = 200
    HEIGHT = 50

    def __init__(
        self,
        processes: Processes,
        host: str,
        port: int,
        nickname: str,
        directory: Path | None = None,
    ) -> None:
        super().__init__(processes, host, port, nickname, directory)
        self.socketName = f"sockserve-irssi-{os.getpid()}-{id(self):x}"
        # tmux leaves its socket behind when its server ends: keep it in our
        # directory (removed with it however the test ends) where the path
        # fits in a UNIX socket address, in tmux's usual place otherwise.
        self.socketDirectory: Path | None = None
        if len(str(self.directory)) + len(self.socketName) < 80:
            self.socketDirectory = self.directory
        # irssi is the tmux server's child, not ours: the test's Processes
        # kills it by its command line if the test ends before close()
        # (the tmux server then ends with its last window).
        self.marker = f"--home={self.directory}\0"
        self.processes.trackDaemons(self.marker)
        self.logs = self.directory / "logs"
        self.socketPath: Path | None = None
        self.serverPid: int | None = None
        self.irssiPid: int | None = None

    def configuration(self) -> str:
        """
        irssi's configuration: one server (ours), one network for it, every
        window logged, nothing throttled, no DCC.
        """
        logs = self.logs
        return f"""\
servers = (
  {{
    address = "{self.host}";
    chatnet = "{self.TAG}";
    port = "{self.port}";
    use_tls = "no";
    autoconnect = "yes";
  }}
);
chatnets = {{
  {self.TAG} = {{
    type = "IRC";
    nick = "{self.nickname}";
    username = "{self.nickname}";
    realname = "irssi user {self.nickname}";
    autosendcmd = "/echo {REGISTERED}";
    max_kicks = "1";
    max_msgs = "1";
    max_whois = "1";
    cmdspeed = "1";
    cmdmax = "1000";
  }};
}};
channels = ( );
logs = {{
  "{logs}/status.log" = {{ auto_open = "yes"; level = "ALL"; }};
}};
settings = {{
  core = {{
    real_name = "irssi user {self.nickname}";
    user_name = "{self.nickname}";
    nick = "{self.nickname}";
    settings_autosave = "no";
  }};
  "fe-common/core" = {{
    autolog = "yes";
    autolog_path = "{logs}/$tag/$0.log";
    autolog_level = "ALL";
  }};
  "irc/dcc" = {{ dcc_autoget = "no"; dcc_autochat_masks = ""; }};
}};
"""

    def tmux(self, *arguments: str, check: bool = True) -> str:
        """
        Run C{tmux} on our private server; return what it printed.
        """
        environment = cleanEnvironment()
        if self.socketDirectory is not None:
            environment["TMUX_TMPDIR"] = str(self.socketDirectory)
        command = [systemProgram("tmux"), "-L", self.socketName, "-f", "/dev/null"]
        try:
            result = subprocess.run(
                [*command, *arguments],
                capture_output=True,
                timeout=WAIT,
                cwd=self.directory,
                env=environment,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"tmux {' '.join(arguments)} did not exit within {WAIT}s"
            ) from None
        if check and result.returncode != 0:
            raise AssertionError(
                f"tmux {' '.join(arguments)} failed: {result.stderr.decode()}"
            )
        return result.stdout.decode("utf-8", "replace")

    def start(self) -> IrssiClient:
        """
        Start irssi in a new C{tmux} server, and wait until it is registered.
        """
        config = self.directory / "config"
        config.write_text(self.configuration())
        self.logs.mkdir(exist_ok=True)
        environment = {
            "HOME": str(self.directory),
            "TERM": "screen-256color",
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        }
        irssi = shlex.join(
            [
                "env",
                "-i",
                *(f"{name}={value}" for name, value in environment.items()),
                systemProgram("irssi"),
                f"--home={self.directory}",
                f"--config={config}",
            ]
        )
        self.tmux(
            "new-session",
            "-d",
            "-x",
            str(self.WIDTH),
            "-y",
            str(self.HEIGHT),
            "-s",
            "irc",
            irssi,
        )
        # tmux leaves its socket behind when its last session ends.
        server, pane, socketPath = self.tmux(
            "display-message", "-p", "#{pid} #{pane_pid} #{socket_path}"
        ).split(maxsplit=2)
        self.serverPid = int(server)
        self.irssiPid = int(pane)
        self.socketPath = Path(socketPath.strip())
        self.waitFor(STATUS, REGISTERED)
        return self

    def screen(self) -> str:
        """
        What the terminal shows now.
        """
        if not self.running():
            return "(irssi is not running)"
        return self.tmux("capture-pane", "-p", "-t", "irc", check=False)

    def type(self, text: str) -> None:
        """
        Type C{text} and Enter.
        """
        self.tmux("send-keys", "-t", "irc", "-l", "--", text)
        self.tmux("send-keys", "-t", "irc", "Enter")

    def command(self, line: str) -> None:
        """
        Type C{line} in the current window.
        """
        self.type(line)

    def say(self, channel: str, text: str) -> None:
        """
        Go to C{channel}'s window and type C{text} there.
        """
        self.type(f"/window goto {channel}")
        self.type(f"/say {text}" if text.startswith("/") else text)

    def me(self, channel: str, text: str) -> None:
        """
        Go to C{channel}'s window and type C{/me text} there.
        """
        self.type(f"/window goto {channel}")
        self.type(f"/me {text}")

    def msg(self, nickname: str, text: str) -> None:
        """
        C{/msg nickname text} (irssi opens a query window for it).
        """
        self.type(f"/msg {nickname} {text}")

    def logFile(self, target: str) -> list[Path]:
        """
        C{logs/status.log} for the status window, C{logs/sockserve/TARGET.log}
        for a channel or a query.
        """
        if target == STATUS:
            return [self.logs / "status.log"]
        return list(_matching(self.logs / self.TAG, f"{target}.log"))

    def running(self) -> bool:
        """
        Whether irssi still runs.
        """
        return self.irssiPid is not None and not waitForExit(self.irssiPid, 0)

    def exited(self, timeout: float) -> bool:
        """
        Wait, at most C{timeout} seconds, for irssi to exit; return whether
        it did.
        """
        return self.irssiPid is None or waitForExit(self.irssiPid, timeout)

    def close(self) -> None:
        """
        Kill the C{tmux} server and irssi, and remove the server's socket.
        """
        if self.serverPid is None:
            return
        self.tmux("kill-server", check=False)
        for pid in (self.irssiPid, self.serverPid):
            if pid is not None and not waitForExit(pid, WAIT):
                os.kill(pid, signal.SIGKILL)
                waitForExit(pid)
        for pid in processesMentioning(self.marker):
            os.kill(pid, signal.SIGKILL)
            waitForExit(pid)
        if self.socketPath is not None:
            self.socketPath.unlink(missing_ok=True)
        self.serverPid = self.irssiPid = None

    def diagnostics(self) -> str:
        """
        The status window and the screen.
        """
        return f"{super().diagnostics()}\nits screen:\n{self.screen()}"

    def said(self, nickname: str, text: str) -> re.Pattern[str]:
        """
        C{< alice> text} in a channel (the space is where a mode would be),
        C{<alice> text} in a query.
        """
        return re.compile(rf"<[ @+%]?{re.escape(nickname)}> {re.escape(text)}$", re.M)

    def acted(self, nickname: str, text: str) -> re.Pattern[str]:
        """
        C{ * alice waves}.
        """
        return re.compile(rf" \* {re.escape(nickname)} {re.escape(text)}$", re.M)

    def parted(self, nickname: str, channel: str) -> re.Pattern[str]:
        """
        C{-!- alice [alice@host] has left #lab [reason]}.
        """
        return re.compile(
            rf"-!- {re.escape(nickname)} \[[^]]*\] has left {re.escape(channel)}\b",
            re.I,
        )

    def quitted(self, nickname: str) -> re.Pattern[str]:
        """
        C{-!- alice [alice@host] has quit [reason]}.
        """
        return re.compile(rf"-!- {re.escape(nickname)} \[[^]]*\] has quit\b")

    def topicSet(self, nickname: str, channel: str, text: str) -> re.Pattern[str]:
        """
        C{-!- alice changed the topic of #lab to: text}.
        """
        return re.compile(
            rf"-!- {re.escape(nickname)} changed the topic of "
            rf"{re.escape(channel)} to: {re.escape(text)}$",
            re.M,
        )


class FifoClient(IrcClient):
    """
    A client run as our child, driven through FIFOs (WeeChat, ii).

    @ivar process: the client, once started.
    @ivar fifos: the FIFOs written to it.
    """

    process: subprocess.Popen[bytes] | None
    fifos: FifoWriter

    def running(self) -> bool:
        """
        Whether it still runs.
        """
        return self.process is not None and self.process.poll() is None

    def exited(self, timeout: float) -> bool:
        """
        Wait, at most C{timeout} seconds, for it to exit; return whether it
        did.
        """
        if self.process is None:
            return True
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        return True

    def close(self) -> None:
        """
        Kill it, if it still runs.
        """
        self.fifos.close()
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(WAIT)
        self.process = None


class WeechatClient(FifoClient):
    """
    C{weechat-headless} with its plugins irc, logger and fifo only, given
    commands through its FIFO; each buffer is logged (flushed at once).
    """

    kind = "weechat"
    SERVER = "sockserve"

    def __init__(
        self,
        processes: Processes,
        host: str,
        port: int,
        nickname: str,
        directory: Path | None = None,
    ) -> None:
        super().__init__(processes, host, port, nickname, directory)
        self.home = self.directory / "home"
        self.logs = self.directory / "logs"
        self.fifo = self.directory / "fifo"
        self.process: subprocess.Popen[bytes] | None = None
        self.output: Stream | None = None
        self.fifos = FifoWriter(self.changes)

    def commands(self) -> list[str]:
        """
        The commands it runs at start-up: where it logs and reads commands,
        then the server (ours), unthrottled, and the connection.
        """
        server = f"irc.server.{self.SERVER}"
        return [
            "/set weechat.look.save_config_on_exit off",
            "/set weechat.look.save_layout_on_exit none",
            f"/set logger.file.path {self.logs}",
            "/set logger.file.flush_delay 0",
            "/set logger.file.auto_log on",
            "/set logger.level.irc 9",
            f"/set fifo.file.path {self.fifo}",
            "/set fifo.file.enabled on",
            f"/server add {self.SERVER} {self.host}/{self.port} -notls",
            f"/set {server}.nicks {self.nickname}",
            f"/set {server}.username {self.nickname}",
            f'/set {server}.realname "weechat user {self.nickname}"',
            f"/set {server}.autoconnect off",
            f"/set {server}.autoreconnect off",
            f"/set {server}.anti_flood_prio_high 0",
            f"/set {server}.anti_flood_prio_low 0",
            f"/set {server}.command /print -buffer {server} {REGISTERED}",
            f"/connect {self.SERVER}",
        ]

    def start(self) -> WeechatClient:
        """
        Start it, and wait until it is registered.
        """
        self.home.mkdir(exist_ok=True)
        self.logs.mkdir(exist_ok=True)
        arguments = [
            systemProgram("weechat-headless"),
            "--dir",
            str(self.home),
            "--no-script",
            "--plugins",
            "irc,logger,fifo",
            "--stdout",
        ]
        for command in self.commands():
            arguments += ["--run-command", command]
        self.process = self.processes.spawn(
            ["env", f"HOME={self.home}", *arguments], cwd=self.directory
        )
        assert self.process.stdout is not None
        self.output = Stream(self.process.stdout.fileno(), "weechat-headless")
        self.output.follow()
        self.waitFor(STATUS, REGISTERED)
        self.changes.waitUntil(lambda: _fifoReady(self.fifo), "weechat's FIFO", WAIT)
        return self

    def send(self, buffer: str, text: str) -> None:
        """
        Give C{text} to the buffer C{buffer} (as typed in it) through the FIFO.
        """
        self.fifos.write(self.fifo, f"{buffer} *{text}")

    def command(self, line: str) -> None:
        """
        Type C{line} in the server buffer.
        """
        self.send(f"irc.server.{self.SERVER}", line)

    def say(self, channel: str, text: str) -> None:
        """
        Type C{text} in C{channel}'s buffer.
        """
        buffer = f"irc.{self.SERVER}.{channel}"
        self.send(buffer, f"/say {text}" if text.startswith("/") else text)

    def me(self, channel: str, text: str) -> None:
        """
        Type C{/me text} in C{channel}'s buffer.
        """
        self.send(f"irc.{self.SERVER}.{channel}", f"/me {text}")

    def msg(self, nickname: str, text: str) -> None:
        """
        C{/query nickname text}: a query buffer, as a user opens one.
        """
        self.command(f"/query {nickname} {text}")

    def logFile(self, target: str) -> list[Path]:
        """
        The logger's file of the server buffer, or of a channel or query.
        """
        if target == STATUS:
            name = f"irc.server.{self.SERVER}.weechatlog"
        else:
            name = f"irc.{self.SERVER}.{target}.weechatlog"
        return list(_matching(self.logs, name))

    def diagnostics(self) -> str:
        """
        The server buffer and what it wrote on its output.
        """
        output = self.output.text() if self.output is not None else ""
        return f"{super().diagnostics()}\nit wrote:\n{output}"

    def said(self, nickname: str, text: str) -> re.Pattern[str]:
        """
        C{DATE TIME<TAB>alice<TAB>text} (the nick after its mode, if any).
        """
        return re.compile(rf"\t[@+%]?{re.escape(nickname)}\t{re.escape(text)}$", re.M)

    def acted(self, nickname: str, text: str) -> re.Pattern[str]:
        """
        C{DATE TIME<TAB> *<TAB>alice waves}.
        """
        return re.compile(rf"\t \*\t{re.escape(nickname)} {re.escape(text)}$", re.M)

    def parted(self, nickname: str, channel: str) -> re.Pattern[str]:
        """
        C{<--<TAB>alice (alice@host) has left #lab}.
        """
        return re.compile(
            rf"\t<--\t{re.escape(nickname)} \([^)]*\) has left {re.escape(channel)}\b",
            re.I,
        )

    def quitted(self, nickname: str) -> re.Pattern[str]:
        """
        C{<--<TAB>alice (alice@host) has quit (reason)}.
        """
        return re.compile(rf"\t<--\t{re.escape(nickname)} \([^)]*\) has quit\b")

    def topicSet(self, nickname: str, channel: str, text: str) -> re.Pattern[str]:
        """
        C{--<TAB>alice has changed topic for #lab from "old" to "text"}
        (without C{from "old"} if there was none).
        """
        return re.compile(
            rf"\t--\t{re.escape(nickname)} has changed topic for "
            rf'{re.escape(channel)} (?:from ".*" )?to "{re.escape(text)}"$',
            re.M,
        )


class IiClient(FifoClient):
    """
    C{ii}, given commands through its FIFOs (C{HOST/in}, C{HOST/#chan/in}),
    read through its C{out} files. It shows its own lines, not its own
    actions; it has no C{/me}: L{me} sends the CTCP ACTION itself, as its
    users do.
    """

    kind = "ii"

    def __init__(
        self,
        processes: Processes,
        host: str,
        port: int,
        nickname: str,
        directory: Path | None = None,
    ) -> None:
        super().__init__(processes, host, port, nickname, directory)
        self.process: subprocess.Popen[bytes] | None = None
        self.output: Stream | None = None
        self.fifos = FifoWriter(self.changes)

    @property
    def serverDirectory(self) -> Path:
        """
        Where it keeps the server's FIFO and output.
        """
        return self.directory / self.host

    def start(self) -> IiClient:
        """
        Start it, and wait until the server welcomed it (its 001, which ii
        echoes on its standard output).
        """
        self.process = self.processes.spawn(
            [
                "env",
                f"HOME={self.directory}",
                systemProgram("ii"),
                "-s",
                self.host,
                "-p",
                str(self.port),
                "-n",
                self.nickname,
                "-f",
                f"ii user {self.nickname}",
                "-i",
                str(self.directory),
            ],
            cwd=self.directory,
        )
        assert self.process.stdout is not None
        self.output = Stream(self.process.stdout.fileno(), "ii")
        self.output.follow()
        welcome = re.compile(rb"^\d+ :\S+ 001 ", re.MULTILINE)
        self.output.waitFor(lambda data: welcome.search(data) is not None, "001")
        self.changes.waitUntil(
            lambda: _fifoReady(self.serverDirectory / "in"), "ii's FIFO", WAIT
        )
        return self

    def command(self, line: str) -> None:
        """
        Write C{line} to the server's FIFO.
        """
        self.fifos.write(self.serverDirectory / "in", line)

    def channelIn(self, target: str) -> Path:
        """
        The FIFO of C{target} (a channel or a nick), once ii made it.
        """
        for directory in _matching(self.serverDirectory, target):
            if _fifoReady(directory / "in"):
                return directory / "in"
        return self.serverDirectory / target.lower() / "in"

    def join(self, channel: str, timeout: float = WAIT) -> str:
        """
        C{/j channel}, and wait until ii shows it joined.
        """
        self.command(f"/j {channel}")
        return self.waitFor(channel, self.joinedPattern(channel), timeout)

    def say(self, channel: str, text: str) -> None:
        """
        Write C{text} to C{channel}'s FIFO.
        """
        self.fifos.write(self.channelIn(channel), text)

    def me(self, channel: str, text: str) -> None:
        """
        Send a CTCP ACTION to C{channel} as a raw C{PRIVMSG}.
        """
        self.fifos.write(
            self.channelIn(channel), f"/PRIVMSG {channel} :\x01ACTION {text}\x01"
        )

    def msg(self, nickname: str, text: str) -> None:
        """
        C{/j nickname text}: ii opens the query's directory and sends.
        """
        self.command(f"/j {nickname} {text}")

    def part(self, channel: str, message: str = "") -> None:
        """
        C{/l message} in C{channel}'s FIFO.
        """
        self.fifos.write(self.channelIn(channel), f"/l {message}".rstrip())

    def topic(self, channel: str, text: str) -> None:
        """
        C{/t text} in C{channel}'s FIFO.
        """
        self.fifos.write(self.channelIn(channel), f"/t {text}")

    def nick(self, new: str) -> None:
        """
        C{/n new}.
        """
        self.command(f"/n {new}")

    def waitForNick(self, new: str, timeout: float = WAIT) -> str:
        """
        Wait until the server said ii is now C{new}: ii shows C{changed nick
        to "new"} as soon as it asks, so the server's C{NICK} is awaited in
        what ii echoes of the wire. Return what it showed in its status window.
        """
        assert self.output is not None
        confirmed = re.compile(
            rb"^\d+ :"
            + re.escape(self.nickname.encode())
            + rb"!\S* NICK :?"
            + re.escape(new.encode())
            + rb"\r?$",
            re.MULTILINE | re.IGNORECASE,
        )
        self.output.waitFor(
            lambda data: confirmed.search(data) is not None,
            f"NICK {new} from the server",
            timeout,
        )
        self.nickname = new
        return self.view(STATUS)

    def quit(self, message: str = "", timeout: float = WAIT) -> None:
        """
        C{/q message}, and wait until ii exits.
        """
        self.command(f"/q {message}".rstrip())
        if not self.exited(timeout):
            raise AssertionError(f"no ii exit within {timeout}s")

    def logFile(self, target: str) -> list[Path]:
        """
        C{HOST/out}, or C{HOST/TARGET/out}.
        """
        if target == STATUS:
            return [self.serverDirectory / "out"]
        return [
            directory / "out" for directory in _matching(self.serverDirectory, target)
        ]

    def diagnostics(self) -> str:
        """
        The server's output and what went over the wire (ii echoes it).
        """
        output = self.output.text() if self.output is not None else ""
        return f"{super().diagnostics()}\nit wrote:\n{output}"

    def said(self, nickname: str, text: str) -> re.Pattern[str]:
        """
        C{TIMESTAMP <alice> text}.
        """
        return re.compile(rf"^\d+ <{re.escape(nickname)}> {re.escape(text)}$", re.M)

    def acted(self, nickname: str, text: str) -> re.Pattern[str]:
        """
        C{TIMESTAMP <alice> \\x01ACTION waves\\x01}: ii shows the CTCP as it
        came.
        """
        return re.compile(
            rf"^\d+ <{re.escape(nickname)}> \x01ACTION {re.escape(text)}\x01$", re.M
        )

    def renamed(self, old: str, new: str) -> re.Pattern[str]:
        """
        C{-!- alice changed nick to alicia}.
        """
        return re.compile(
            rf"-!- {re.escape(old)} changed nick to {re.escape(new)}$", re.M
        )

    def renameTarget(self, channel: str) -> str:
        """
        ii shows renames in its server's window, whatever the channel.
        """
        return STATUS

    def parted(self, nickname: str, channel: str) -> re.Pattern[str]:
        """
        C{-!- alice(alice@host) has left #lab}.
        """
        return re.compile(
            rf"-!- {re.escape(nickname)}\([^)]*\) has left {re.escape(channel)}\b",
            re.I,
        )

    def quitted(self, nickname: str) -> re.Pattern[str]:
        """
        C{-!- alice(alice@host) has quit "reason"}.
        """
        return re.compile(rf"-!- {re.escape(nickname)}\([^)]*\) has quit\b")

    def topicSet(self, nickname: str, channel: str, text: str) -> re.Pattern[str]:
        """
        C{-!- alice changed topic to "text"}, in the channel's output.
        """
        return re.compile(
            rf'-!- {re.escape(nickname)} changed topic to "{re.escape(text)}"$', re.M
        )

    def quitTarget(self, channel: str) -> str:
        """
        ii shows quits in its server's window.
        """
        return STATUS


CLIENTS: dict[str, type[IrcClient]] = {
    "irssi": IrssiClient,
    "weechat": WeechatClient,
    "ii": IiClient,
}
"""Every driver, by the name of its client."""

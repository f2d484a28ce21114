"""
Starting, pinning, watching and always stopping the processes of a run.

Every child is started through L{startChild}, which records it; L{stopAll}
(registered with C{atexit} and run from the signal handlers the suite installs)
ends whatever is left. Children also get C{PR_SET_PDEATHSIG}, so that they die
with the suite even if it is killed outright.
"""

from __future__ import annotations

import atexit
import ctypes
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

_PR_SET_PDEATHSIG = 1
_children: list[subprocess.Popen[Any]] = []


class StartError(RuntimeError):
    """
    A server did not start, or did not say where it listens, in time.
    """


def _dieWithParent() -> None:  # pragma: no cover - runs in the child
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass


def cores() -> list[int]:
    """
    Return the CPUs this process may run on, sorted.
    """
    return sorted(os.sched_getaffinity(0))


def pinned(command: Sequence[str], core: int | None) -> list[str]:
    """
    Return C{command} run under C{taskset} on C{core} (unchanged if C{None}).
    """
    if core is None:
        return list(command)
    return ["taskset", "-c", str(core), *command]


def startChild(
    command: Sequence[str],
    *,
    stdin: int | IO[Any] | None = subprocess.DEVNULL,
    stdout: int | IO[Any] | None = None,
    stderr: int | IO[Any] | None = None,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    text: bool = False,
) -> subprocess.Popen[Any]:
    """
    Start C{command} and record it, so that it is stopped at the end.

    Call it from a thread that lives as long as the child should: the
    child's death signal (C{PR_SET_PDEATHSIG}) follows the thread that
    started it, not the process.
    """
    child = subprocess.Popen(
        list(command),
        stdin=stdin,
        stdout=stdout,
        stderr=stderr,
        cwd=cwd,
        env=env,
        text=text,
        preexec_fn=_dieWithParent,
    )
    _children.append(child)
    return child


def stopChild(child: subprocess.Popen[Any], grace: float = 5.0) -> int | None:
    """
    Stop C{child}: SIGTERM, then SIGKILL after C{grace} seconds; return its
    exit status.
    """
    if child.poll() is None:
        try:
            child.send_signal(signal.SIGTERM)
            child.wait(grace)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(5)
        except ProcessLookupError:
            pass
    if child in _children:
        _children.remove(child)
    for stream in (child.stdin, child.stdout, child.stderr):
        if stream is not None:
            stream.close()
    return child.returncode


def stopAll() -> None:
    """
    Stop every child still running (at exit, on error, on a signal).
    """
    for child in list(_children):
        try:
            stopChild(child, grace=2.0)
        except Exception:  # pragma: no cover - best effort at exit
            child.kill()


atexit.register(stopAll)


def installSignalHandlers() -> None:
    """
    Turn SIGTERM and SIGHUP into C{SystemExit}, so that cleanup runs.
    """

    def handler(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGHUP, handler)


def freePort() -> int:
    """
    Return a TCP port on 127.0.0.1 that is free right now.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def waitForLine(
    path: Path,
    pattern: re.Pattern[str],
    child: subprocess.Popen[Any],
    timeout: float,
    offset: int = 0,
) -> re.Match[str]:
    """
    Wait, at most C{timeout} seconds, for a line of the log file C{path}
    (from byte C{offset} on) matching C{pattern}, and return the match.

    @raise StartError: if the child exits or the time runs out first.
    """
    deadline = time.monotonic() + timeout
    pending = ""
    while True:
        with path.open("rb") as log:
            log.seek(offset)
            data = log.read()
        offset += len(data)
        pending += data.decode("utf-8", "replace")
        *lines, pending = pending.split("\n")
        for line in lines:
            match = pattern.search(line)
            if match is not None:
                return match
        if child.poll() is not None:
            raise StartError(
                f"{child.args!r} exited with status {child.returncode}; "
                f"see {path}:\n{tail(path)}"
            )
        if time.monotonic() > deadline:
            raise StartError(f"{child.args!r} did not start in {timeout}s; see {path}")
        time.sleep(0.02)


def tail(path: Path, lines: int = 15) -> str:
    """
    Return the last C{lines} lines of a log file.
    """
    try:
        text = path.read_text("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def rssKiB(pid: int) -> int:
    """
    Return the resident set size of process C{pid} (C{VmRSS}), in KiB.
    """
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmRSS:\s+(\d+)\s+kB", status, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"no VmRSS for process {pid}")
    return int(match.group(1))


def runBounded(
    command: Sequence[str], timeout: float
) -> subprocess.CompletedProcess[str]:
    """
    Run C{command} to completion, killing it after C{timeout} seconds.
    """
    child = startChild(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        out, err = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        child.kill()
        out, err = child.communicate(timeout=10)
    finally:
        stopChild(child)
    return subprocess.CompletedProcess(list(command), child.returncode, out, err)

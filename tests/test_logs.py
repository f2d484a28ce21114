"""
JSON logs: twistd --logger sockserve.logs.jsonLogObserver.
"""

from __future__ import annotations

import json
import os
import signal
import stat

import pytest
from twisted.logger import LogLevel
from twisted.python.failure import Failure

from sockserve.logs import JSONLineObserver, describeLogging
from tests.processes import (
    Processes,
    installedProgram,
    receiveToEOF,
    waitForExit,
)


def test_an_event_is_one_json_line() -> None:
    """An event becomes one JSON object on one line: time, level,
    namespace, its text and its own fields; control characters are
    escaped; a failure carries its traceback."""
    line = JSONLineObserver.format(
        {
            "log_format": "Refused {peer}: {reason}",
            "log_level": LogLevel.warn,
            "log_namespace": "sockserve.test",
            "log_time": 0.0,
            "peer": "unix:\x1b[2J",
            "reason": "full",
            "limit": 3,
        }
    )
    assert line.endswith("\n")
    assert "\x1b" not in line
    assert line.count("\n") == 1
    assert json.loads(line) == {
        "time": "1970-01-01T00:00:00+00:00",
        "level": "warn",
        "namespace": "sockserve.test",
        "text": "Refused unix:\x1b[2J: full",
        "peer": "unix:\x1b[2J",
        "reason": "full",
        "limit": 3,
    }
    try:
        int("not a number")
    except ValueError:
        failure = Failure()
    failed = json.loads(
        JSONLineObserver.format(
            {"log_format": "oops", "log_failure": failure, "object": object()}
        )
    )
    assert "ValueError" in failed["traceback"]
    assert failed["object"].startswith("<object object")


@pytest.mark.e2e
def test_twistd_writes_json_lines(processes: Processes) -> None:
    """With --logger sockserve.logs.jsonLogObserver, every line twistd
    writes is a JSON object, and a connect carries the client's address as
    a field."""
    server = processes.server(
        mode="oneshot",
        command=[
            installedProgram("twistd"),
            "-n",
            "--logger",
            "sockserve.logs.jsonLogObserver",
        ],
    )
    sock = processes.connect(("127.0.0.1", server.port))
    sock.sendall(b"hi\n")
    receiveToEOF(sock)
    peer = f"127.0.0.1:{sock.getsockname()[1]}"
    server.output.waitForText(b"disconnected.")
    server.stop()
    events = [json.loads(line) for line in server.output.text().splitlines() if line]
    connects = [event for event in events if event.get("peer") == peer]
    assert [event["text"] for event in connects] == [
        f"Client {peer} is now connected to us.",
        f"Client {peer} disconnected.",
    ]
    assert {event["level"] for event in connects} == {"info"}


@pytest.mark.e2e
def test_json_logs_of_a_daemon_go_to_its_log_file(processes: Processes) -> None:
    """
    C{twistd --logfile L --logger sockserve.logs.jsonLogObserver} as a
    daemon: the JSON lines go to L (none to the launching terminal), every
    line of it is JSON, and SIGHUP reopens it after a rotation tool moved
    it away, keeping the file's mode.
    """
    directory = processes.newDirectory("daemon")
    pidfile = directory / "sockserve.pid"
    logfile = directory / "sockserve.log"
    processes.trackDaemons(str(pidfile))
    command = [installedProgram("twistd"), "--pidfile", str(pidfile)]
    command += ["--logfile", str(logfile)]
    command += ["--logger", "sockserve.logs.jsonLogObserver"]
    command += ["sockserve", "--mode", "oneshot", "--port", "0"]
    result = processes.run(command, cwd=directory)
    assert result.returncode == 0, result
    assert b"{" not in result.stdout + result.stderr, result
    pid = int(pidfile.read_text())
    events = [json.loads(line) for line in logfile.read_text().splitlines()]
    [listening] = [e for e in events if "server listening on" in e["text"]]
    port = int(listening["text"].rpartition(":")[2])
    mode = stat.S_IMODE(logfile.stat().st_mode)

    logfile.rename(directory / "sockserve.log.1")
    os.kill(pid, signal.SIGHUP)
    # The signal is handled on one of the next turns of the daemon's loop;
    # each request is logged where it logs by then.
    for _ in range(100):
        sock = processes.connect(("127.0.0.1", port))
        sock.sendall(b"hi\n")
        receiveToEOF(sock)
        if logfile.exists() and b"reopened the log file" in logfile.read_bytes():
            break
    events = [json.loads(line) for line in logfile.read_text().splitlines()]
    assert any("reopened the log file" in e["text"] for e in events), events
    assert stat.S_IMODE(logfile.stat().st_mode) == mode
    os.kill(pid, signal.SIGTERM)
    assert waitForExit(pid)


@pytest.mark.parametrize(
    ("config", "where"),
    [
        ({"nodaemon": True, "logfile": None, "syslog": False}, "standard output"),
        ({"nodaemon": True, "logfile": "-", "syslog": False}, "standard output"),
        ({"nodaemon": True, "logfile": "x.log", "syslog": False}, "/d/x.log"),
        ({"nodaemon": False, "logfile": None, "syslog": False}, "/d/twistd.log"),
        ({"nodaemon": False, "logfile": "/v/s.log", "syslog": False}, "/v/s.log"),
        ({"nodaemon": False, "logfile": None, "syslog": True}, "syslog"),
        ({"logFile": None}, "standard output"),
        (None, "standard output"),
    ],
)
def test_where_twistd_logs(
    monkeypatch: pytest.MonkeyPatch, config: dict[str, object] | None, where: str
) -> None:
    """The JSON log goes where twistd's text log would: --logfile, or
    twistd.log for a daemon told no file, or standard output in the
    foreground (and under twist, whose options are not twistd's)."""
    monkeypatch.chdir("/")
    monkeypatch.setattr(os.path, "abspath", lambda path: os.path.join("/d", path))
    assert describeLogging(config) == where

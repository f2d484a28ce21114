"""
JSON logs: twistd --logger sockserve.logs.jsonLogObserver.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from twisted.logger import LogLevel
from twisted.python.failure import Failure

from sockserve.logs import JSONLineObserver
from tests.processes import Processes, installedProgram, receiveToEOF


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


@pytest.fixture
def processes() -> Iterator[Processes]:
    with Processes() as processes:
        yield processes


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

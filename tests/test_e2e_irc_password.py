"""
End to end: the installed C{twistd} serving IRC clients behind a server
password (C{--irc-password-file}), talked to over a loopback socket as an
IRC client talks.
"""

from __future__ import annotations

import pytest

from tests.processes import (
    Processes,
    installedProgram,
    receiveText,
    receiveToEOF,
)

pytestmark = pytest.mark.e2e


def test_irc_clients_must_give_the_server_password(processes: Processes) -> None:
    """
    With --irc-password-file, an IRC client that gives the file's password
    with PASS is welcomed (001) and chats; one that gives none, or another,
    is told 464 and ERROR and closed, and the log says so in one line each
    without the password; a line client on --port needs none. A bad file is
    a one-line usage error.
    """
    secret = processes.directory / "irc-password"
    secret.write_text("s3cret horse\n", encoding="utf-8")
    server = processes.server(
        "--irc", "0", "--irc-password-file", str(secret), listeners=2
    )
    port = server.portOf("irc")

    good = processes.connect(("127.0.0.1", port))
    good.sendall(b"PASS :s3cret horse\r\nNICK alice\r\nUSER alice 0 * :Alice\r\n")
    receiveText(good, b" 001 alice ")

    for attempt, reason in [
        (b"", b"no password"),
        (b"PASS s3cret\r\n", b"wrong password"),
    ]:
        bad = processes.connect(("127.0.0.1", port))
        bad.sendall(attempt + b"NICK mallory\r\nUSER mallory 0 * :M\r\n")
        said = receiveToEOF(bad)
        assert said == (
            b":sockserve 464 * :Password incorrect\r\n"
            b"ERROR :Closing link: " + reason + b" (PASS)\r\n"
        )
        server.output.waitForText(reason + b" (PASS)")

    line = processes.connect(("127.0.0.1", server.port))
    receiveText(line, b"* you are ")
    good.sendall(b"JOIN #default\r\nPRIVMSG #default :hello\r\n")
    receiveText(line, b"<alice> hello\r\n")

    log = server.output.text()
    assert log.count("Refused 127.0.0.1:") == 2, log
    assert "s3cret" not in log
    assert "Traceback" not in log

    empty = processes.directory / "empty"
    empty.write_text("\n")
    result = processes.run(
        [
            installedProgram("twistd"),
            "-n",
            "sockserve",
            "--port",
            "0",
            "--irc",
            "0",
            "--irc-password-file",
            str(empty),
        ]
    )
    output = (result.stdout + result.stderr).decode()
    assert result.returncode != 0
    assert f"--irc-password-file: {empty} is empty" in output
    assert "Traceback" not in output

"""
The README is the package's long description and a newcomer's first screen:
it must render cleanly, keep the two commands CI and the tests depend on,
show what it says, stay short, and lead into the documentation.
"""

from __future__ import annotations

import io
import re
import shlex
from functools import partial
from pathlib import Path

import pytest
from docutils.core import publish_doctree

from sockserve import __version__
from tests.processes import Processes, installedProgram, receiveText, receiveUntil

README = Path(__file__).parent.parent / "README.rst"

# One screen or two: the rest is in docs/.
MOST_LINES = 120


def test_readme_renders_without_warnings() -> None:
    """README.rst has no reStructuredText warning or error."""
    warnings = io.StringIO()
    publish_doctree(
        README.read_text(),
        settings_overrides={"warning_stream": warnings, "report_level": 2},
    )
    assert warnings.getvalue() == ""


def test_readme_is_short() -> None:
    """README fits a screen or two (it held 2,400 lines of everything)."""
    assert len(README.read_text().splitlines()) <= MOST_LINES


def test_the_two_commands_are_as_ever() -> None:
    """The two commands of Quick start are exactly those CI and the tests
    run: ./dev serve --port 5000, and ./dev test."""
    text = README.read_text()
    assert "Start the server (chat, on ``127.0.0.1:5000``)::\n\n" in text
    assert "::\n\n    ./dev serve --port 5000\n" in text
    assert "::\n\n    ./dev test\n" in text
    assert "exec ./dev test" in (README.parent / ".ci" / "run").read_text()


def test_readme_links_into_the_docs() -> None:
    """Every page README links to exists, and README links to the tutorial,
    a how-to guide and an explanation at least."""
    links = re.findall(r"<((?:docs/|NEWS)[^>]*\.rst)>`_", README.read_text())
    assert {link.split("/")[1] for link in links if link.count("/") == 2} >= {
        "howto",
        "explanation",
    }
    assert "docs/tutorial.rst" in links
    assert [link for link in links if not (README.parent / link).is_file()] == []


def test_counts_are_said_in_plain_words() -> None:
    """A room of one is full with 1 member, not 1 members."""
    from sockserve.chat.room import RoomFull

    assert str(RoomFull("lab", 1)) == "the room #lab is full (1 member)"


def test_the_license_is_the_one_setup_cfg_names() -> None:
    """setup.cfg says MIT: the LICENSE file is the MIT license, of the
    sockserve developers."""
    root = README.parent
    assert "license = MIT" in (root / "setup.cfg").read_text()
    license = (root / "LICENSE").read_text()
    assert license.startswith("MIT License\n")
    assert "Copyright (c) 2026 the sockserve developers" in license
    assert 'THE SOFTWARE IS PROVIDED "AS IS"' in license


def transcripts() -> list[tuple[list[str], list[str], str]]:
    """
    README's transcripts of a server and the client: each the server's
    options, the client's arguments and what the client prints.
    """
    found = []
    for block in re.findall(r"::\n\n((?:    .*\n|\n)+)", README.read_text()):
        lines = [line[4:] for line in block.splitlines() if line]
        if len(lines) < 3 or not lines[1].startswith("$ sockserve-client "):
            continue
        server = shlex.split(lines[0].removeprefix("$ "))
        assert server[:4] == ["twistd", "-n", "--pidfile", ""], server
        client = shlex.split(lines[1].removeprefix("$ "))[1:]
        found.append((server[5:], client, "\n".join(lines[2:]) + "\n"))
    return found


@pytest.mark.e2e
@pytest.mark.parametrize(("server", "client", "output"), transcripts())
def test_readme_transcripts(
    processes: Processes, server: list[str], client: list[str], output: str
) -> None:
    """README's transcripts of the client against a server, as written but
    for the port: the client prints what README shows."""
    assert server[:2] == ["--mode", server[1]], server
    assert server[2:] == ["--port", "5000"], server
    started = processes.server(mode=server[1])
    arguments = [str(started.port) if arg == "5000" else arg for arg in client]
    result = processes.run([installedProgram("sockserve-client"), *arguments])
    assert (result.returncode, result.stdout.decode()) == (0, output), result


def test_readme_has_its_transcripts() -> None:
    """Both transcripts, echo and oneshot, are found (and so run)."""
    modes = [server[server.index("--mode") + 1] for server, _, _ in transcripts()]
    assert modes == ["echo", "oneshot"]


def chatTranscript() -> tuple[list[str], list[str]]:
    """
    README's chat transcript: the server's options, and what telnet shows.
    """
    (block,) = [
        block
        for block in re.findall(r"::\n\n((?:    .*\n|\n)+)", README.read_text())
        if "$ telnet " in block
    ]
    lines = [line[4:] for line in block.splitlines() if line]
    server = shlex.split(lines[0].removeprefix("$ "))
    assert server[:5] == ["twistd", "-n", "--pidfile", "", "sockserve"], server
    return server[5:], lines[2:]


@pytest.mark.e2e
def test_readme_chat_transcript(processes: Processes) -> None:
    """README's chat session, with guest1 played by another client: the
    server's options as written but for the ports, and every line telnet
    shows is the server's, but for the client's own address; the page and
    the IRC port listen too."""
    options, shown = chatTranscript()
    ours = ["0" if option in {"5000", "8080", "6667"} else option for option in options]
    server = processes.server(*ours, listeners=3)
    assert {mode for mode, _ in server.listening} == {"chat", "web", "irc"}
    guest1 = processes.connect(("127.0.0.1", server.port))
    receiveText(guest1, b"here\r\n")
    guest2 = processes.connect(("127.0.0.1", server.port))
    typed = {"/nick alice"}
    received = b""
    for line in shown:
        if line in typed:
            guest2.sendall(line.encode() + b"\r\n")
            continue
        if line.startswith("<guest1> "):
            guest1.sendall(line.removeprefix("<guest1> ").encode() + b"\r\n")
        pattern = re.escape(line).replace(r"55858", r"\d+")
        pattern = pattern.replace(r"1\.0\.0", re.escape(__version__))
        expected = re.compile(pattern.encode() + rb"\r\n")
        received = receiveUntil(
            guest2, partial(_found, expected), line, received=received
        )
        found = expected.search(received)
        assert found is not None
        received = received[found.end() :]


def _found(expected: re.Pattern[bytes], data: bytes) -> bool:
    return expected.search(data) is not None

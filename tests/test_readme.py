"""
The README is the package's long description: it must render cleanly.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

from docutils.core import publish_doctree

README = Path(__file__).parent.parent / "README.rst"


def test_readme_renders_without_warnings() -> None:
    """README.rst has no reStructuredText warning or error."""
    warnings = io.StringIO()
    publish_doctree(
        README.read_text(),
        settings_overrides={"warning_stream": warnings, "report_level": 2},
    )
    assert warnings.getvalue() == ""


def test_readme_documents_every_option() -> None:
    """Every twistd option and every client option appears in the README."""
    from sockserve.client import ClientOptions
    from sockserve.tap import Options

    text = README.read_text()
    for options in (Options, ClientOptions):
        names = [entry[0] for entry in (*options.optParameters, *options.optFlags)]
        if options is Options:
            names += ["port", "version"]
        for name in names:
            assert f"--{name}" in text or f"-{name}" in text, name


def test_foreground_examples_write_no_pidfile() -> None:
    """Every foreground twistd command in the README says --pidfile (none,
    with ''): twistd writes twistd.pid in the current directory even with
    -n, so two examples run from one directory would otherwise collide
    ("Another twistd server is running")."""
    commands = re.findall(
        r"twistd (?:-n|--nodaemon)\b(.*?)\bsockserve\b", README.read_text()
    )
    assert commands
    missing = [command for command in commands if "--pidfile" not in command]
    assert missing == []


def optionsTable() -> str:
    """The table of twistd sockserve's options."""
    text = README.read_text()
    start = text.index("Options (``twistd sockserve --help`` lists them")
    return text[start : text.index("Endpoint descriptions, for example", start)]


def test_the_options_table_has_every_option() -> None:
    """Every option of twistd sockserve has its row in the options table
    (--metrics was missing), and the table says what the program does:
    --workers serves chat with a bus, --bus takes a user."""
    from sockserve.tap import Options

    table = optionsTable()
    rows = {
        found
        for line in table.splitlines()
        for found in re.findall(r"^``(?:-\w, )?--([\w-]+)``", line)
    }
    names = {entry[0] for entry in (*Options.optParameters, *Options.optFlags)}
    names |= {"port", "version", "web", "web-origin", "web-host"}
    assert names - rows == set()
    assert "[:PASSWORD@]" not in README.read_text()
    workers = table[table.index("``--workers``") :].split("\n``")[0]
    assert "chat with ``--bus``" in workers, workers


def test_quick_start_names_every_program_dev_installs() -> None:
    """Quick start lists every system program ./dev test installs."""
    dev = (README.parent / "dev").read_text()
    installs = set(re.findall(r"\|\| missing\+=\(([\w-]+)\)", dev))
    installs = {"systemd-socket-activate" if p == "systemd" else p for p in installs}
    quick = README.read_text().split("The three servers")[0]
    assert {p for p in installs if f"``{p}``" not in quick} == set()


def test_the_empty_oneshot_answer_is_as_said() -> None:
    """README says what an empty request is answered: OK .. with its space."""
    from tests.support import connectOnStringTransport

    protocol, transport, _ = connectOnStringTransport("oneshot")
    protocol.dataReceived(b"\n")
    assert transport.value() == b"OK .. \n"
    assert "(``OK ..``, its space, and LF)" in " ".join(README.read_text().split())


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

"""
The documentation (docs/, built by Sphinx as C{./dev docs} builds it): it
builds without a warning, its reference lists every option of both programs
from their own options, and what its pages say agrees with the programs.
"""

from __future__ import annotations

import importlib.util
import io
import re
import shlex
import subprocess
import sys
from html import escape as html_escape
from pathlib import Path
from typing import Any

import pytest
from docutils.core import publish_doctree

from tests.processes import (
    Processes,
    Stream,
    installedProgram,
    listeningAddresses,
    receiveText,
    receiveToEOF,
)
from tests.support import ROOT, documentation, documentationPages

DOCS = ROOT / "docs"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """
    The documentation built into a new directory as C{./dev docs} builds
    it: warnings are errors, every reference must resolve.
    """
    output = tmp_path_factory.mktemp("html")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-W",
            "-n",
            "--keep-going",
            "-q",
            "-b",
            "html",
            "-d",
            str(output / ".doctrees"),
            str(DOCS),
            str(output),
        ],
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    assert (result.returncode, result.stderr) == (0, ""), result
    return output


def optionNames(options: type) -> set[str]:
    """
    The long names of every option of a C{usage.Options} class, those of
    its C{opt_} methods included.
    """
    return {name.rstrip("=") for name in options().longOpt}


@pytest.mark.e2e
def test_the_docs_build_without_warnings(built: Path) -> None:
    """Sphinx builds every page, with no warning (-W -n), and the pages
    need nothing from another site to be read (no CDN)."""
    pages = list(built.rglob("*.html"))
    assert {"index.html", "tutorial.html", "news.html"} <= {p.name for p in pages}
    remote = re.compile(r"""<(?:script|link|img)\b[^>]*(?:src|href)="(?:https?:)?//""")
    assert [page for page in pages if remote.search(page.read_text())] == []


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("page", "program", "options"),
    [
        ("twistd", "twistd-sockserve", "sockserve.tap.Options"),
        ("client", "sockserve-client", "sockserve.client.ClientOptions"),
    ],
)
def test_the_reference_has_every_option(
    built: Path, page: str, program: str, options: str
) -> None:
    """The reference of each program has an entry for every option of its
    Options class, with the text --help shows (made from the class when
    the documentation is built)."""
    from twisted.python.reflect import namedAny

    html = (built / "reference" / f"{page}.html").read_text()
    entries = set(re.findall(rf'id="cmdoption-{program}-([\w-]+)"', html))
    assert optionNames(namedAny(options)) - entries == set()
    for _, rows in namedAny(options)().helpTable():
        for row in rows:
            first = re.escape(html_escape(row.text.split()[0]))
            assert re.search(
                rf'id="cmdoption-{program}-{row.name}".*?{first}', html, re.S
            )


@pytest.mark.e2e
def test_the_reference_says_what_workers_do(built: Path) -> None:
    """--workers serves echo, oneshot and chat with --bus, as the program
    does."""
    html = (built / "reference" / "twistd.html").read_text()
    start = html.index('id="cmdoption-twistd-sockserve-workers"')
    assert "chat with --bus" in html[start : html.index("</dd>", start)]


def test_every_option_is_explained() -> None:
    """Every option of twistd sockserve and of sockserve-client is named in
    the written pages (a guide, the tutorial), not only in the reference
    made from the code."""
    from sockserve.client import ClientOptions
    from sockserve.tap import Options

    text = documentation()
    for options in (Options, ClientOptions):
        missing = {name for name in optionNames(options) if f"--{name}" not in text}
        assert missing - {"help"} == set(), options


def test_foreground_examples_write_no_pidfile() -> None:
    """Every foreground twistd command of the documentation says --pidfile
    (none, with ''): twistd writes twistd.pid in the current directory even
    with -n, so two examples run from one directory would otherwise collide
    ("Another twistd server is running")."""
    commands = re.findall(
        r"twistd (?:-n|--nodaemon)\b(.*?)\bsockserve\b", documentation()
    )
    assert len(commands) > 10
    missing = [command for command in commands if "--pidfile" not in command]
    assert missing == []


def test_the_docs_bus_syntax_is_one() -> None:
    """One --bus syntax, with USER: redis://[USER:PASSWORD@]HOST..."""
    assert "[:PASSWORD@]" not in documentation()
    assert "redis://[USER:PASSWORD@]HOST" in documentation()


def test_quick_start_names_every_program_dev_installs() -> None:
    """The tutorial's Quick start lists every system program ./dev test
    installs."""
    dev = (ROOT / "dev").read_text()
    installs = set(re.findall(r"\|\| missing\+=\(([\w-]+)\)", dev))
    installs = {"systemd-socket-activate" if p == "systemd" else p for p in installs}
    tutorial = (DOCS / "tutorial.rst").read_text()
    quick = tutorial[
        tutorial.index("Quick start") : tutorial.index("The three servers")
    ]
    assert {p for p in installs if f"``{p}``" not in quick} == set()


def test_the_empty_oneshot_answer_is_as_said() -> None:
    """The tutorial says what an empty request is answered: OK .. with its
    space."""
    from tests.support import connectOnStringTransport

    protocol, transport, _ = connectOnStringTransport("oneshot")
    protocol.dataReceived(b"\n")
    assert transport.value() == b"OK .. \n"
    assert "(``OK ..``, its space, and LF)" in " ".join(documentation().split())


def test_every_page_is_read() -> None:
    """The pages the documentation tests read are README and every page of
    docs/, the how-to guides, the reference and the explanations among
    them."""
    folders = {page.parent.name for page in documentationPages()}
    assert {"howto", "reference", "explanation"} <= folders


@pytest.mark.e2e
def test_the_embedding_example(processes: Processes) -> None:
    """The embedding guide's program serves echo and chat on the endpoints
    it is given, with the limits and banner it sets."""
    loopback = "tcp:0:interface=127.0.0.1"
    program = processes.spawn(
        [sys.executable, str(DOCS / "examples" / "embedded.py"), loopback, loopback]
    )
    assert program.stdout is not None
    output = Stream(program.stdout.fileno(), "the embedding example")
    said = output.waitFor(
        lambda data: b"chat on " in data and data.endswith(b"\n"), "two lines"
    ).decode()
    ports = dict(re.findall(r"(\w+) on 127\.0\.0\.1:(\d+)", said))
    assert set(ports) == {"echo", "chat"}, said
    echo = processes.connect(("127.0.0.1", int(ports["echo"])))
    echo.sendall(b"hello\n")
    assert receiveText(echo, b"OK .. hello\n")
    echo.sendall(b"x" * 2000 + b"\n")  # Limits(maxLine=1024)
    assert b"too long" in receiveToEOF(echo)
    chat = processes.connect(("127.0.0.1", int(ports["chat"])))
    assert receiveText(chat, b"Welcome to my own chat.\r\n")


@pytest.mark.e2e
def test_the_tac_example(processes: Processes, tmp_path: Path) -> None:
    """The embedding guide's .tac file runs the whole server under twistd
    -y, as written but for the ports."""
    tac = (DOCS / "examples" / "sockserve.tac").read_text()
    assert '"--port", "5000", "--web", "8080"' in tac
    ours = tmp_path / "sockserve.tac"
    ours.write_text(tac.replace('"5000"', '"0"').replace('"8080"', '"0"'))
    twistd = installedProgram("twistd")
    program = processes.spawn([twistd, "-n", "--pidfile", "", "-y", str(ours)])
    assert program.stdout is not None
    output = Stream(program.stdout.fileno(), "twistd -y sockserve.tac")
    found = listeningAddresses(
        output.waitFor(
            lambda data: len(listeningAddresses(data)) >= 2, "two listening lines"
        )
    )
    assert {mode for mode, _ in found} == {"chat", "web"}, found
    address = dict(found)["chat"].rpartition(":")
    chat = processes.connect((address[0], int(address[2])))
    assert receiveText(chat, b"Welcome to sockserve")


def literalBlocks(page: str) -> list[list[str]]:
    """
    The literal blocks of a page of docs/, each as its lines, unindented.
    """
    text = (DOCS / page).read_text()
    return [
        [line[4:] for line in block.rstrip("\n").split("\n")]
        for block in re.findall(r"::\n\n((?:    .*\n|\n)+)", text)
    ]


def telnetTranscripts() -> list[tuple[str, list[str]]]:
    """
    The tutorial's telnet transcripts of echo and oneshot: each the mode
    and what follows the server's and telnet's commands.
    """
    found = []
    for lines in literalBlocks("tutorial.rst"):
        command = re.fullmatch(
            r"\$ twistd -n --pidfile '' sockserve --mode (\w+) --port 5000", lines[0]
        )
        if command and lines[1].startswith("$ telnet "):
            found.append((command[1], lines[2:]))
    return found


@pytest.mark.e2e
@pytest.mark.parametrize(("mode", "transcript"), telnetTranscripts())
def test_the_tutorial_telnet_transcripts(
    processes: Processes, mode: str, transcript: list[str]
) -> None:
    """The tutorial's echo and oneshot sessions, replayed over a socket as
    telnet sends them (CR LF): every answer is the one shown, and a closed
    connection is closed."""
    server = processes.server(mode=mode)
    sock = processes.connect(("127.0.0.1", server.port))
    received = b""
    for line in transcript:
        if line.startswith(("Trying ", "Connected to ", "Escape character")):
            continue
        if line == "Connection closed by foreign host.":
            assert receiveToEOF(sock) == b""
        elif line.startswith("OK .. "):
            received = receiveText(sock, line.encode() + b"\r\n", received=received)
            received = received.split(line.encode() + b"\r\n", 1)[1]
        else:
            sock.sendall(line.encode() + b"\r\n")


def test_the_tutorial_has_its_telnet_transcripts() -> None:
    """Both sessions are found (and so replayed)."""
    assert [mode for mode, _ in telnetTranscripts()] == ["echo", "oneshot"]


def clientTranscript() -> list[tuple[list[str], str]]:
    """
    The tutorial's transcript of the client against a oneshot server: each
    run's arguments and what it prints.
    """
    (lines,) = [
        lines
        for lines in literalBlocks("tutorial.rst")
        if "# against a oneshot server" in lines[0]
    ]
    runs: list[tuple[list[str], str]] = []
    for line in lines:
        if line.startswith("$ "):
            runs.append((shlex.split(line[2:], comments=True)[1:], ""))
        else:
            runs[-1] = (runs[-1][0], runs[-1][1] + line + "\n")
    return runs


@pytest.mark.e2e
def test_the_tutorial_client_transcript(processes: Processes) -> None:
    """The tutorial's runs of sockserve-client against a oneshot server
    print what it shows, as written but for the port."""
    runs = clientTranscript()
    assert len(runs) == 2
    for arguments, output in runs:
        server = processes.server(mode="oneshot")
        port = str(server.port)
        result = processes.run(
            [
                installedProgram("sockserve-client"),
                *(port if arg == "5000" else arg for arg in arguments),
            ]
        )
        # A terminal shows the server's CR LF (the request's own ending) as
        # the end of a line.
        printed = result.stdout.decode().replace("\r\n", "\n")
        assert (result.returncode, printed) == (0, output), result


@pytest.mark.e2e
def test_the_bad_option_transcript(processes: Processes) -> None:
    """The running guide's bad option: its three lines on stderr, exit
    status 2."""
    (lines,) = [
        lines
        for lines in literalBlocks("howto/running.rst")
        if lines[0].endswith("--mode nope")
    ]
    result = processes.run([installedProgram("twistd"), *shlex.split(lines[0][2:])[1:]])
    assert (result.returncode, result.stderr.decode()) == (
        2,
        "\n".join(lines[1:]) + "\n",
    ), result


@pytest.mark.e2e
def test_the_api_reference_has_every_public_name(built: Path) -> None:
    """Every name sockserve exports has its entry in the API reference, the
    interfaces included."""
    import sockserve

    html = (built / "reference" / "api.html").read_text()
    entries = set(re.findall(r'id="sockserve\.(\w+)"', html))
    assert set(sockserve.__all__) - {"__version__"} - entries == set()


def extension() -> Any:
    """
    The documentation's Sphinx extension, docs/_ext/sockserve_docs.py.
    """
    spec = importlib.util.spec_from_file_location(
        "sockserve_docs", DOCS / "_ext" / "sockserve_docs.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_epytext_becomes_restructuredtext() -> None:
    """Docstrings' epytext is read as reStructuredText: inline markup
    (braces nest in it) and fields."""
    converted = extension().epytextToRest(
        [
            "Say C{text} to L{sockserve.ChatRoom}, as C{{'a': 1}}, I{now}.",
            "",
            "@param text: what to say,",
            "    on two lines.",
            "@return: nothing.",
            "@raise RoomFull: when it is.",
        ]
    )
    assert converted == [
        "Say ``text`` to ``sockserve.ChatRoom``, as ``{'a': 1}``, *now*.",
        "",
        ":param text: what to say,",
        "    on two lines.",
        ":returns: nothing.",
        ":raises RoomFull: when it is.",
    ]


def test_help_text_is_shown_as_it_is() -> None:
    """An option's help goes into the reference as it is: nothing in it is
    taken for markup."""
    escaped = extension().escape(r"\n (a backslash) *any* `x` a_b |c| [d]")
    assert escaped == r"\\n (a backslash) \*any\* \`x\` a\_b \|c\| \[d\]"


def test_news_renders_as_plain_restructuredtext() -> None:
    """NEWS.rst is read outside Sphinx too (on a forge, in an sdist): it
    renders with docutils alone, and starts with the release to come."""
    warnings = io.StringIO()
    text = (ROOT / "NEWS.rst").read_text()
    publish_doctree(
        text, settings_overrides={"warning_stream": warnings, "report_level": 2}
    )
    assert warnings.getvalue() == ""
    assert text.index("Unreleased\n==========") < text.index("1.0.0\n=====")

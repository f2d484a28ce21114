"""
End-to-end tests of C{sockserve-client}: the installed command run against
real servers (the installed C{twistd}) in each mode.
"""

from __future__ import annotations

import subprocess

import pytest

from sockserve import __version__
from tests.processes import (
    WAIT,
    Processes,
    Server,
    installedProgram,
    ipv6LoopbackAvailable,
    receiveText,
)

pytestmark = pytest.mark.e2e


def client(
    processes: Processes, *args: str, input: bytes = b""
) -> subprocess.CompletedProcess[bytes]:
    """
    Run C{sockserve-client ARGS} with C{input} on stdin.
    """
    return processes.run([installedProgram("sockserve-client"), *args], input=input)


def talk(processes: Processes, server: Server, *args: str, input: bytes = b"") -> bytes:
    """
    Run C{sockserve-client [options] 127.0.0.1 PORT ...} against C{server};
    assert it succeeded quietly (interactive, it only says where it is
    connected), and return what it printed.
    """
    options = [arg for arg in args if arg.startswith("-")]
    rest = [arg for arg in args if not arg.startswith("-")]
    result = client(
        processes, *options, "127.0.0.1", str(server.port), *rest, input=input
    )
    assert result.returncode == 0, result
    quiet = b"" if rest else b"Connected to 127.0.0.1:%d.\n" % server.port
    assert result.stderr == quiet, result
    return result.stdout


def test_message_to_oneshot(processes: Processes) -> None:
    """
    C{sockserve-client 127.0.0.1 PORT hello} against oneshot prints
    C{OK .. hello} (the message went with LF, and so does the reply).
    """
    server = processes.server(mode="oneshot")
    assert talk(processes, server, "hello") == b"OK .. hello\n"


def test_escapes(processes: Processes) -> None:
    """
    C{-e} interprets escapes, so the tutorial's C{GET / HTTP/1.1\\r\\n\\r\\n}
    can be sent: oneshot answers its first line.
    """
    server = processes.server(mode="oneshot")
    assert talk(processes, server, "-e", r"GET / HTTP/1.1\r\n\r\n") == (
        b"OK .. GET / HTTP/1.1\r\n"
    )


def test_crlf(processes: Processes) -> None:
    """
    C{--crlf} ends the message with CR LF, which the reply keeps.
    """
    server = processes.server(mode="oneshot")
    assert talk(processes, server, "--crlf", "hello") == b"OK .. hello\r\n"


def test_no_newline(processes: Processes) -> None:
    """
    C{-n} sends the message with no line ending; the half-close that follows
    completes the request, answered with LF added (a reply is a line).
    """
    server = processes.server(mode="oneshot")
    assert talk(processes, server, "-n", "hello") == b"OK .. hello\n"


def test_escapes_without_newline_to_echo(processes: Processes) -> None:
    """
    C{-n -e 'a\\r\\nb\\n'} against echo sends exactly two lines; each is
    answered with its own line ending, and the client exits when the server
    closes after the half-close.
    """
    server = processes.server(mode="echo")
    assert talk(processes, server, "-n", "-e", r"a\r\nb\n") == (b"OK .. a\r\nOK .. b\n")


def test_keep_open_until_timeout(processes: Processes) -> None:
    """
    C{--keep-open --timeout T} against echo: the reply is printed, and the
    client gives up waiting for the server to close after T seconds, saying
    so in one line, with exit status 124 (as C{timeout(1)}).
    """
    server = processes.server(mode="echo")
    result = client(
        processes, "-k", "--timeout=1", "127.0.0.1", str(server.port), "hello"
    )
    assert result.returncode == 124, result
    assert result.stdout == b"OK .. hello\n"
    assert result.stderr.decode() == (
        f"sockserve-client: 127.0.0.1:{server.port} did not close the connection "
        "within 1 second (--timeout)\n"
    )


def test_options_anywhere(processes: Processes) -> None:
    """
    Options may follow HOST PORT and the message, as with ncat; an option
    is never taken for the message, and -- sends one that starts with -.
    """
    server = processes.server(mode="oneshot")
    port = str(server.port)
    result = client(processes, "127.0.0.1", port, "--crlf", "hi")
    assert (result.returncode, result.stdout) == (0, b"OK .. hi\r\n"), result
    result = client(processes, "127.0.0.1", port, "hi", "-n", "--timeout", "5")
    assert (result.returncode, result.stdout) == (0, b"OK .. hi\n"), result
    result = client(processes, "127.0.0.1", port, "--", "-n")
    assert (result.returncode, result.stdout) == (0, b"OK .. -n\n"), result
    result = client(processes, "127.0.0.1", port, "hi", "-kt", "5")
    assert (result.returncode, result.stdout) == (0, b"OK .. hi\n"), result


def test_interactive_says_connected(processes: Processes) -> None:
    """
    Interactive mode tells, on stderr, where it is connected, like telnet.
    """
    server = processes.server(mode="echo")
    result = client(processes, "127.0.0.1", str(server.port), input=b"hi\n")
    assert result.returncode == 0, result
    assert result.stdout == b"OK .. hi\n"
    assert result.stderr.decode() == f"Connected to 127.0.0.1:{server.port}.\n"


def test_ctrl_c_exits_130(processes: Processes) -> None:
    """
    Ctrl-C in an interactive session ends the client with status 130, as a
    shell expects of an interrupted program, and no traceback.
    """
    server = processes.server(mode="chat")
    terminal = processes.terminal(
        [installedProgram("sockserve-client"), "127.0.0.1", str(server.port)]
    )
    terminal.output.waitForText(b"you are ")
    terminal.type(b"\x03")
    assert terminal.process.wait(WAIT) == 130
    assert b"Traceback" not in terminal.output.drain()


def test_help_and_short_help(processes: Processes) -> None:
    """
    -h is --help, listed in the help, which lists every escape of -e.
    """
    result = client(processes, "-h")
    assert result.returncode == 0, result
    text = result.stdout.decode()
    assert "-h, --help" in text
    for escape in ("\\r", "\\n", "\\t", "\\0", "\\e", "\\\\", "\\xNN"):
        assert escape in text, escape


def test_unescaped_ipv6_description(processes: Processes) -> None:
    """
    A --connect description whose IPv6 colons are not escaped is a usage
    error that says how to write it; a failure to connect names the address
    it tried as well as the description.
    """
    result = client(processes, "-c", "tcp:host=::1:port=5006", "hi")
    assert result.returncode == 2, result
    assert b"\\:\\:1" in result.stderr.strip().splitlines()[-1]
    closed = processes.closedPort()
    result = client(processes, "-c", f"tcp:host=127.0.0.1:port={closed}", "hi")
    assert result.stderr.decode().startswith(
        f"Could not connect to 127.0.0.1:{closed} (tcp:host=127.0.0.1:port={closed}):"
    ), result


@pytest.mark.skipif(not ipv6LoopbackAvailable(), reason="no IPv6 loopback (::1)")
def test_ipv6_description(processes: Processes) -> None:
    """
    The tutorial's --connect example, with escaped colons, reaches a server on
    the IPv6 loopback.
    """
    server = processes.server("--port", r"tcp6:0:interface=\:\:1", mode="oneshot")
    port = server.addresses[0].rpartition(":")[2]
    result = client(processes, "-c", rf"tcp:host=\:\:1:port={port}", "hi")
    assert (result.returncode, result.stdout) == (0, b"OK .. hi\n"), result


def test_fractional_timeout(processes: Processes) -> None:
    """
    C{--timeout} takes seconds as a decimal number, as its help says:
    C{--timeout 0.5} is accepted.
    """
    server = processes.server(mode="oneshot")
    assert talk(processes, server, "--timeout=0.5", "hello") == b"OK .. hello\n"


def test_connect_description(processes: Processes) -> None:
    """
    C{--connect} takes a Twisted client endpoint description instead of
    HOST PORT.
    """
    server = processes.server(mode="oneshot")
    result = client(
        processes, "--connect", f"tcp:host=127.0.0.1:port={server.port}", "hello"
    )
    assert (result.returncode, result.stdout, result.stderr) == (
        0,
        b"OK .. hello\n",
        b"",
    )


def test_interactive_echo(processes: Processes) -> None:
    """
    Without a MESSAGE, stdin lines go to the server and every reply is
    printed; at the end of stdin the client waits for the server to close.
    """
    server = processes.server(mode="echo")
    assert talk(processes, server, input=b"one\ntwo\r\nthree\n") == (
        b"OK .. one\nOK .. two\r\nOK .. three\n"
    )


def test_interactive_chat(processes: Processes) -> None:
    """
    Interactive against chat: the client prints the banner, and the lines
    it types reach another client, not itself.
    """
    server = processes.server(mode="chat")
    other = processes.connect(("127.0.0.1", server.port))
    receiveText(other, b"Welcome to sockserve")
    output = talk(processes, server, input=b"hello from the client\n")
    receiveText(other, b"> hello from the client\r\n")
    assert output.startswith(b"Welcome to sockserve"), output
    assert b"hello from the client" not in output


def test_message_to_chat(processes: Processes) -> None:
    """
    C{sockserve-client HOST PORT hello} against chat prints the banner, and
    the others receive C{hello} from it.
    """
    server = processes.server(mode="chat")
    other = processes.connect(("127.0.0.1", server.port))
    receiveText(other, b"Welcome to sockserve")
    output = talk(processes, server, "hello")
    receiveText(other, b"> hello\r\n")
    assert output.startswith(b"Welcome to sockserve"), output


def test_one_message_runs_against_chat_as_the_docs_say(
    processes: Processes,
) -> None:
    """
    What the tutorial says of a one-message run against chat is what happens: it
    ends at once with 0 (the server takes the half-close for leaving); with
    --keep-open it lasts until --timeout, 124.
    """
    from tests.support import documentation

    text = " ".join(documentation().split())
    assert "Against chat, a one-message run ends at once with 0" in text
    assert (
        "with ``--keep-open`` the client stays in the room until ``--timeout`` (124)"
        in text
    )
    server = processes.server(mode="chat")
    once = client(processes, "127.0.0.1", str(server.port), "hello")
    assert once.returncode == 0, once
    kept = client(processes, "-k", "-t", "0.5", "127.0.0.1", str(server.port), "hi")
    assert kept.returncode == 124, kept


def test_connection_refused(processes: Processes) -> None:
    """
    A port where nothing listens: one line in the tutorial's form,
    C{Could not connect to 127.0.0.1:PORT: [111] Connection refused}, exit
    status 1, no traceback.
    """
    port = processes.closedPort()
    result = client(processes, "127.0.0.1", str(port), "hello")
    assert result.returncode == 1, result
    assert result.stdout == b""
    assert result.stderr.decode() == (
        f"Could not connect to 127.0.0.1:{port}: [111] Connection refused\n"
    )


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        ([], "HOST and PORT"),
        (["127.0.0.1"], "HOST and PORT"),
        (["127.0.0.1", "notaport", "hello"], "PORT"),
        (["127.0.0.1", "5000", "too", "many"], "too many"),
        (["--crlf", "-n", "127.0.0.1", "5000", "hello"], "--crlf"),
        (["-e", "127.0.0.1", "5000", "\\q"], "escape"),
        (["--bogus", "127.0.0.1", "5000"], "bogus"),
        (
            ["--timeout", "abc", "127.0.0.1", "5000"],
            "--timeout must be a number of seconds, not 'abc'",
        ),
    ],
)
def test_usage_errors(processes: Processes, args: list[str], complaint: str) -> None:
    """
    A usage error exits with status 2 and a last line that says what is
    wrong, with no traceback; nothing is connected to.
    """
    result = client(processes, *args)
    stderr = result.stderr.decode("utf-8", "replace")
    assert result.returncode == 2, result
    assert "Traceback" not in stderr, stderr
    lastLine = stderr.strip().splitlines()[-1]
    assert lastLine.startswith("sockserve-client: "), stderr
    assert complaint in lastLine, stderr
    assert "Parameter type enforcement" not in stderr, stderr
    assert len(stderr.splitlines()) <= 4, stderr


def test_version(processes: Processes) -> None:
    """
    C{sockserve-client --version} prints the version.
    """
    result = client(processes, "--version")
    assert (result.returncode, result.stdout) == (
        0,
        f"sockserve-client {__version__}\n".encode(),
    )

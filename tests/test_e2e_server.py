"""
End-to-end tests of the server: the installed C{twistd} (and C{twist}) run as a
user runs them, talked to with the real C{ncat} and C{telnet}.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from tests.processes import (
    WAIT,
    Processes,
    Stream,
    installedProgram,
    ipv6LoopbackAvailable,
    listeningAddresses,
    processesMentioning,
    receiveText,
    receiveToEOF,
    systemProgram,
    waitForExit,
    welcomeIn,
)

pytestmark = pytest.mark.e2e


def ncat(processes: Processes, port: int, data: bytes) -> bytes:
    """
    Run C{printf DATA | ncat 127.0.0.1 PORT}; return what it printed.
    """
    result = processes.run([systemProgram("ncat"), "127.0.0.1", str(port)], input=data)
    assert result.returncode == 0, result
    return result.stdout


def oneShotRequest(
    processes: Processes,
    address: tuple[str, int] | str,
    family: socket.AddressFamily = socket.AF_INET,
) -> bytes:
    """
    Send C{hello\\r\\n} to a oneshot server; return all it sends before closing.
    """
    sock = processes.connect(address, family)
    sock.sendall(b"hello\r\n")
    return receiveToEOF(sock)


def assertOneClearLine(result: subprocess.CompletedProcess[bytes], line: str) -> None:
    """
    Assert that C{result} failed, saying C{line} (once per output stream at
    most) and showing no traceback.
    """
    stdout = result.stdout.decode("utf-8", "replace")
    stderr = result.stderr.decode("utf-8", "replace")
    shown = f"stdout:\n{stdout}\nstderr:\n{stderr}"
    assert result.returncode != 0, shown
    assert "Traceback" not in stdout + stderr, shown
    assert line in stdout + stderr, shown
    for stream in (stdout, stderr):
        assert stream.count("Could not listen") <= 1, shown


# echo


def test_echo_answers_every_line_before_closing_after_half_close(
    processes: Processes,
) -> None:
    """
    C{printf ... | ncat HOST PORT} against echo: every line is answered
    C{OK .. <line>} with the client's own line ending, and every reply arrives
    although ncat shuts down its sending side right after the input.
    """
    server = processes.server(mode="echo")
    assert ncat(processes, server.port, b"hi\nthere\r\n") == (
        b"OK .. hi\nOK .. there\r\n"
    )
    lines = b"".join(b"line %d\n" % n for n in range(3000))
    replies = b"".join(b"OK .. line %d\n" % n for n in range(3000))
    assert ncat(processes, server.port, lines) == replies


def test_echo_with_telnet(processes: Processes) -> None:
    """
    telnet against echo shows C{OK .. happy} after C{happy} is typed, and the
    connection stays open for more lines.
    """
    server = processes.server(mode="echo")
    telnet = processes.terminal(
        [systemProgram("telnet"), "127.0.0.1", str(server.port)]
    )
    telnet.output.waitForText(b"Escape character is")
    telnet.type(b"happy\n")
    telnet.output.waitForText(b"OK .. happy\r\n")
    telnet.type(b"again\n")
    telnet.output.waitForText(b"OK .. again\r\n")
    transcript = telnet.transcript()
    assert "Connected to 127.0.0.1." in transcript
    assert "Connection closed" not in transcript
    telnet.type(b"\x1d")
    telnet.output.waitForText(b"telnet>")
    telnet.type(b"quit\n")
    telnet.output.readToEnd()
    assert telnet.process.wait(WAIT) == 0


# oneshot


def test_oneshot_with_ncat(processes: Processes) -> None:
    """
    C{printf 'hello\\r\\n' | ncat} against oneshot prints C{OK .. hello\\r\\n};
    C{printf hello} (no line ending, then a half-close) gets C{OK .. hello}
    ended with LF, and so does an empty request: every reply is a line.
    """
    server = processes.server(mode="oneshot")
    assert ncat(processes, server.port, b"hello\r\n") == b"OK .. hello\r\n"
    assert ncat(processes, server.port, b"hello") == b"OK .. hello\n"
    assert ncat(processes, server.port, b"") == b"OK .. \n"


def test_oneshot_closes_after_the_reply(processes: Processes) -> None:
    """
    oneshot closes the connection after its reply by itself: a client that
    sends C{hello\\r\\n} and keeps its sending side open gets
    C{OK .. hello\\r\\n}, then EOF.
    """
    server = processes.server(mode="oneshot")
    assert oneShotRequest(processes, ("127.0.0.1", server.port)) == (b"OK .. hello\r\n")


def test_oneshot_with_telnet(processes: Processes) -> None:
    """
    The tutorial's transcript: telnet shows C{Connected to}, the typed
    C{happy}, the reply C{OK .. happy}, and then that the server closed.
    """
    server = processes.server(mode="oneshot")
    telnet = processes.terminal(
        [systemProgram("telnet"), "127.0.0.1", str(server.port)]
    )
    telnet.output.waitForText(b"Escape character is")
    telnet.type(b"happy\n")
    telnet.output.readToEnd()
    transcript = telnet.transcript()
    assert re.search(
        r"Connected to 127\.0\.0\.1\.\n.*happy\nOK \.\. happy\n"
        r"Connection closed by foreign host\.",
        transcript,
        re.DOTALL,
    ), transcript
    telnet.process.wait(WAIT)


def test_connections_are_logged(processes: Processes) -> None:
    """
    The server logs each client's connect and disconnect with its address and
    port, as the tutorial's C{Client 127.0.0.1 : 36689 is now connected to us.}
    """
    server = processes.server(mode="oneshot")
    sock = processes.connect(("127.0.0.1", server.port))
    peer = f"127.0.0.1:{sock.getsockname()[1]}"
    sock.sendall(b"hello\n")
    assert receiveToEOF(sock) == b"OK .. hello\n"
    server.output.waitForText(f"Client {peer} disconnected".encode())
    assert f"Client {peer} is now connected to us." in server.output.text()


# chat


def test_chat_with_ncat(processes: Processes) -> None:
    """
    Two ncat clients in the chat: each sees the other's line, prefixed with
    the sender's name, and never its own.
    """
    server = processes.server(mode="chat")
    clients = []
    for name in ("first", "second"):
        process = processes.spawn(
            [systemProgram("ncat"), "127.0.0.1", str(server.port)]
        )
        assert process.stdout is not None
        output = Stream(process.stdout.fileno(), f"the {name} ncat")
        output.waitForText(b"Welcome to sockserve")
        clients.append((process, output))
    (first, firstOutput), (second, secondOutput) = clients
    firstOutput.waitForText(b" joined")
    assert first.stdin is not None
    assert second.stdin is not None
    first.stdin.write(b"line from first\n")
    first.stdin.flush()
    secondOutput.waitForText(b"> line from first\r\n")
    second.stdin.write(b"line from second\n")
    second.stdin.flush()
    firstOutput.waitForText(b"> line from second\r\n")
    # The server handled the first line before the second: had it echoed the
    # first line to its sender, it would have arrived already.
    assert b"line from first" not in firstOutput.data
    assert b"line from second" not in secondOutput.drain()
    for process, output in clients:
        assert process.stdin is not None
        process.stdin.close()
        output.readToEnd()
        assert process.wait(WAIT) == 0


def test_chat_with_telnet(processes: Processes) -> None:
    """
    telnet into the chat shows C{Connected to} and the banner beginning
    C{Welcome to sockserve}; a line typed there reaches another client;
    C{/quit} ends the session.
    """
    server = processes.server(mode="chat")
    other = processes.connect(("127.0.0.1", server.port))
    receiveText(other, b"Welcome to sockserve")
    telnet = processes.terminal(
        [systemProgram("telnet"), "127.0.0.1", str(server.port)]
    )
    telnet.output.waitForText(b"Welcome to sockserve")
    receiveText(other, b" joined")
    telnet.type(b"hello from telnet\n")
    receiveText(other, b"> hello from telnet\r\n")
    telnet.type(b"/quit\n")
    telnet.output.readToEnd()
    transcript = telnet.transcript()
    assert "Connected to 127.0.0.1." in transcript
    assert "\nWelcome to sockserve" in transcript
    assert "Connection closed by foreign host." in transcript
    assert "> hello from telnet" not in transcript


def test_chat_full_room_refuses_with_a_line(processes: Processes) -> None:
    """
    With C{--max-clients 1}, a second client gets one line saying the server
    is full and is disconnected; the first stays connected.
    """
    server = processes.server("--max-clients", "1", mode="chat")
    first = processes.connect(("127.0.0.1", server.port))
    receiveText(first, b"Welcome to sockserve")
    refused = ncat(processes, server.port, b"")
    assert refused == b"ERROR the server is full (1 client); try again later\r\n"
    first.sendall(b"/who\n")
    receiveText(first, b"1 here")


def test_sigterm_says_goodbye_to_chat_clients(processes: Processes) -> None:
    """
    On SIGTERM with chat clients connected, each client receives a line
    saying the server is shutting down, then EOF; the process exits within a
    few seconds (status 0, or twistd's re-raised SIGTERM), with no traceback.
    """
    server = processes.server(mode="chat")
    clients = [processes.connect(("127.0.0.1", server.port)) for _ in range(3)]
    for sock in clients:
        receiveText(sock, b"Welcome to sockserve")
    server.process.send_signal(signal.SIGTERM)
    for sock in clients:
        goodbye = receiveToEOF(sock, timeout=5)
        lastLine = goodbye.rstrip(b"\r\n").rsplit(b"\n", 1)[-1]
        assert b"shutting down" in lastLine, goodbye
    status = server.process.wait(5)
    output = server.output.readToEnd().decode("utf-8", "replace")
    assert status in (0, -signal.SIGTERM), output
    assert "Traceback" not in output, output
    assert "Unhandled" not in output, output


def test_sigint_stops_the_server_cleanly(processes: Processes) -> None:
    """
    SIGINT (Ctrl-C) stops the server too: chat clients are told, then closed;
    no traceback.
    """
    server = processes.server(mode="chat")
    sock = processes.connect(("127.0.0.1", server.port))
    receiveText(sock, b"Welcome to sockserve")
    server.process.send_signal(signal.SIGINT)
    assert b"shutting down" in receiveToEOF(sock, timeout=5)
    status = server.process.wait(5)
    output = server.output.readToEnd().decode("utf-8", "replace")
    assert status in (0, -signal.SIGINT), output
    assert "Traceback" not in output, output


# Listening: several endpoints, IPv6, twist


def test_two_tcp_ports(processes: Processes) -> None:
    """
    C{--port} given twice listens on both endpoints in one process.
    """
    server = processes.server(
        "--port",
        "tcp:0:interface=127.0.0.1",
        "--port",
        "tcp:0:interface=127.0.0.1",
        mode="oneshot",
        listeners=2,
    )
    ports = {int(address.rpartition(":")[2]) for address in server.addresses}
    assert len(ports) == 2, server.addresses
    for port in ports:
        assert oneShotRequest(processes, ("127.0.0.1", port)) == b"OK .. hello\r\n"


def test_a_description_listens_on_loopback(processes: Processes) -> None:
    """
    An endpoint description that names no interface (C{--port tcp:0})
    listens on loopback, like a bare port number; C{--interface} moves it.
    """
    server = processes.server("--port", "tcp:0", mode="oneshot")
    [address] = server.addresses
    assert address.startswith("127.0.0.1:"), address
    exposed = processes.server(
        "--port", "tcp:0", "--interface", "127.0.0.2", mode="oneshot"
    )
    [address] = exposed.addresses
    assert address.startswith("127.0.0.2:"), address


def test_unix_socket_and_tcp_port(processes: Processes) -> None:
    """
    C{--port unix:PATH --port 0} listens on the UNIX socket and on a TCP port.
    """
    path = processes.directory / "s.sock"
    server = processes.server(
        "--port", f"unix:{path}", "--port", "0", mode="oneshot", listeners=2
    )
    assert f"unix:{path}" in server.addresses, server.addresses
    assert oneShotRequest(processes, str(path), socket.AF_UNIX) == b"OK .. hello\r\n"
    assert oneShotRequest(processes, ("127.0.0.1", server.port)) == (b"OK .. hello\r\n")


def test_unix_socket_is_for_owner_and_group(processes: Processes) -> None:
    """
    A UNIX socket is made C{srw-rw----} (owner and group), not open to every
    local user, unless its description names another C{mode=}.
    """
    path = processes.directory / "s.sock"
    shared = processes.directory / "shared.sock"
    server = processes.server(
        "--port",
        f"unix:{path}",
        "--port",
        f"unix:{shared}:mode=666",
        mode="oneshot",
        listeners=2,
    )
    assert len(server.addresses) == 2, server.addresses
    assert oct(path.stat().st_mode & 0o777) == oct(0o660)
    assert oct(shared.stat().st_mode & 0o777) == oct(0o666)


@pytest.mark.parametrize("daemon", [False, True])
@pytest.mark.parametrize("where", ["missing/s.sock", "afile/s.sock"])
def test_unix_socket_in_no_directory(
    processes: Processes, daemon: bool, where: str
) -> None:
    """
    A UNIX socket whose directory is missing (or is a file) is a start-up
    error said once, in one line naming the directory, without a bytes
    repr, before a daemon detaches.
    """
    (processes.directory / "afile").write_text("")
    path = processes.directory / where
    command = [installedProgram("twistd"), "--pidfile", ""]
    if not daemon:
        command.append("-n")
    result = processes.run([*command, "sockserve", "--port", f"unix:{path}"])
    error = "No such file or directory" if "missing" in where else "Not a directory"
    output = (result.stdout + result.stderr).decode()
    assert result.returncode == 1, output
    assert result.stderr.decode() == (
        f"Could not listen on unix:{path}: [Errno {2 if 'missing' in where else 20}] "
        f"{error}: '{path.parent}'\n"
    ), output
    assert output.count("Could not listen") == 1, output


def test_late_start_up_failure_is_said_once_on_a_terminal(
    processes: Processes,
) -> None:
    """
    A listening failure found once twistd logs (a UNIX socket another
    server holds) is logged; under C{twistd -n}, whose log and stderr go to
    the same terminal, it is shown once, not twice.
    """
    path = processes.directory / "held.sock"
    processes.server("--port", f"unix:{path}", mode="oneshot")
    second = processes.newDirectory("second")
    process = processes.spawn(
        [installedProgram("twistd"), "-n", "sockserve", "--port", f"unix:{path}"],
        cwd=second,
    )
    assert process.stdout is not None
    output = Stream(process.stdout.fileno(), "the second server").readToEnd()
    assert process.wait(WAIT) == 1
    text = output.decode()
    assert text.count(f"Could not listen on unix:{path}") == 1, text
    assert "Traceback" not in text, text


@pytest.mark.skipif(not ipv6LoopbackAvailable(), reason="no IPv6 loopback (::1)")
def test_tcp6_loopback(processes: Processes) -> None:
    """
    C{--port tcp6:0:interface=\\:\\:1} listens on the IPv6 loopback.
    """
    server = processes.server("--port", r"tcp6:0:interface=\:\:1", mode="oneshot")
    [address] = server.addresses
    assert address.startswith("[::1]:"), address
    port = int(address.rpartition(":")[2])
    assert oneShotRequest(processes, ("::1", port), socket.AF_INET6) == (
        b"OK .. hello\r\n"
    )


def test_twist(processes: Processes) -> None:
    """
    C{twist sockserve --port 0} serves too, and stops on SIGTERM.
    """
    server = processes.server(
        mode="oneshot", command=[installedProgram("twist"), "--log-format=text"]
    )
    assert oneShotRequest(processes, ("127.0.0.1", server.port)) == (b"OK .. hello\r\n")
    status = server.stop()
    output = server.output.text()
    assert status in (0, -signal.SIGTERM), output
    assert "Traceback" not in output, output


# Socket activation


def freePort() -> int:
    """
    Return a loopback port the OS just gave out and took back: for tools
    that cannot be told to choose one themselves.
    """
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def socketActivated(
    processes: Processes, *activateOptions: str
) -> tuple[subprocess.Popen[bytes], Stream, int]:
    """
    Start C{systemd-socket-activate OPTIONS -l 127.0.0.1:PORT twistd -n
    sockserve --port systemd:domain=INET:index=0}; return it once it listens.
    """
    port = freePort()
    process = processes.spawn(
        [
            systemProgram("systemd-socket-activate"),
            *activateOptions,
            "-l",
            f"127.0.0.1:{port}",
            installedProgram("twistd"),
            "-n",
            "--pidfile=",
            "sockserve",
            "--port",
            "systemd:domain=INET:index=0",
        ]
    )
    assert process.stdout is not None
    output = Stream(process.stdout.fileno(), "systemd-socket-activate")
    output.waitForText(b"Listening on 127.0.0.1")
    return process, output, port


def test_socket_activation(processes: Processes) -> None:
    """
    Under C{systemd-socket-activate --fdname=NAME} (as systemd passes a
    socket), the server serves the socket it was given.
    """
    process, output, port = socketActivated(processes, "--fdname=sockserve")
    sock = processes.connect(("127.0.0.1", port))
    welcome = welcomeIn(receiveText(sock, b" here\r\n"))
    assert welcome.peer == f"127.0.0.1:{sock.getsockname()[1]}", welcome
    output.waitForText(b"sockserve chat server listening on 127.0.0.1:%d" % port)
    process.send_signal(signal.SIGTERM)
    assert process.wait(WAIT) in (0, -signal.SIGTERM, 143)


def test_socket_activation_without_names(processes: Processes) -> None:
    """
    Without --fdname, systemd-socket-activate sets no LISTEN_FDNAMES, and
    Twisted then sees no socket: the server says so in one line and exits
    1, no traceback.
    """
    process, output, port = socketActivated(processes)
    with contextlib.suppress(OSError):
        processes.connect(("127.0.0.1", port)).recv(1)
    assert process.wait(WAIT) == 1
    text = output.readToEnd().decode()
    assert "Traceback" not in text, text
    assert text.count("Could not listen") == 1, text
    assert "systemd-socket-activate sets LISTEN_FDNAMES only with --fdname" in text


def test_systemd_endpoint_without_systemd(processes: Processes) -> None:
    """
    A systemd: endpoint with no socket passed at all is one line and exit 1,
    not 'list index out of range'.
    """
    result = processes.run(
        [
            installedProgram("twistd"),
            "-n",
            "sockserve",
            "--port",
            "systemd:domain=INET:index=0",
        ]
    )
    assertOneClearLine(
        result,
        "Could not listen on systemd:domain=INET:index=0: no socket was passed",
    )
    assert b"index out of range" not in result.stdout + result.stderr


# Start-up failures


@pytest.mark.parametrize("command", [["twistd", "-n"], ["twist"]])
def test_port_in_use(processes: Processes, command: list[str]) -> None:
    """
    A port already in use ends start-up promptly with status 1 and one clear
    line on stderr naming the address and the OS error: nothing else, no log
    lines around it, no traceback.
    """
    port = processes.busyPort()
    result = processes.run(
        [installedProgram(command[0]), *command[1:], "sockserve", "--port", str(port)]
    )
    assert (result.returncode, result.stdout, result.stderr.decode()) == (
        1,
        b"",
        f"Could not listen on 127.0.0.1:{port}: [Errno 98] Address already in use\n",
    )


def test_address_not_on_this_machine(processes: Processes) -> None:
    """
    An interface address this machine does not have fails at bind with
    C{[Errno 99]}, in one clear line, non-zero status, no traceback.
    """
    result = processes.run(
        [
            installedProgram("twistd"),
            "-n",
            "sockserve",
            "--interface",
            "192.0.2.1",
            "--port",
            "0",
        ]
    )
    assertOneClearLine(
        result,
        "Could not listen on 192.0.2.1:0: [Errno 99] Cannot assign requested address",
    )


def test_exposure_is_logged(processes: Processes) -> None:
    """
    A server listening beyond loopback says so in its log.
    """
    server = processes.server("--interface", "0.0.0.0", mode="oneshot")
    server.output.waitForText(b"is reachable on every IPv4 address of this machine")


def test_unix_peer_names_are_escaped(processes: Processes) -> None:
    """
    A client on a UNIX socket chooses its own socket's name, which is its
    address: its welcome line shows it and the log records it, with control
    characters escaped in both; the other members see its name, never its
    address.
    """
    path = processes.directory / "chat.sock"
    server = processes.server("--port", f"unix:{path}", mode="chat")
    other = processes.connect(str(path), socket.AF_UNIX)
    receiveText(other, b" here\r\n")
    evil = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        evil.bind(b"\x00\x1b[2J\x1b[31mPWNED\r\n2026-12-01 fake admin line")
        evil.settimeout(WAIT)
        evil.connect(str(path))
        greeting = receiveText(evil, b" here\r\n")
    finally:
        evil.close()
    assert b"\x1b" not in greeting, greeting
    welcome = welcomeIn(greeting)
    assert "\\x1b[2J\\x1b[31mPWNED\\x0d\\x0a2026-12-01 fake admin line" in welcome.peer
    seen = receiveText(other, f"* {welcome.name} left\r\n".encode())
    assert f"* {welcome.name} joined\r\n".encode() in seen, seen
    assert b"PWNED" not in seen, seen
    log = server.output.waitForText(b"PWNED")
    assert b"\x1b" not in log, log
    assert b"\x00" not in log, log
    assert b"\\x1b[2J\\x1b[31mPWNED\\x0d\\x0a2026-12-01 fake admin line" in log, log


@pytest.mark.parametrize(
    ("options", "option"),
    [
        (["--mode", "nope"], "--mode"),
        (["--max-clients", "0"], "max-clients"),
        (["--port", "notaport"], "--port"),
        (["--backlog", "many"], "backlog"),
        (["--interface", ""], "--interface"),
        (["--interface", "0"], "--interface"),
        (["--max-line", "1_000"], "--max-line"),
    ],
)
def test_invalid_option(processes: Processes, options: list[str], option: str) -> None:
    """
    An invalid option is a usage error: non-zero status, a last line that
    names the option, no traceback.
    """
    result = processes.run([installedProgram("twistd"), "-n", "sockserve", *options])
    output = (result.stdout + result.stderr).decode("utf-8", "replace")
    assert result.returncode != 0, output
    assert "Traceback" not in output, output
    errorLine = output.strip().splitlines()[-1]
    assert option in errorLine, output


@pytest.mark.parametrize("program", ["twistd", "twist"])
@pytest.mark.parametrize(
    ("options", "error"),
    [
        (["--mode", "nope"], "--mode must be one of chat, echo, oneshot, not 'nope'"),
        (["--nope"], "option --nope not recognized"),
    ],
)
def test_option_error_is_short_and_on_stderr(
    processes: Processes, program: str, options: list[str], error: str
) -> None:
    """
    A bad option is said on stderr in three lines (the usage, where to read
    more, and the error naming the option), not after the whole help on
    stdout; the exit status is 2, a usage error's.
    """
    result = processes.run([installedProgram(program), "sockserve", *options])
    stderr = result.stderr.decode("utf-8", "replace")
    assert result.stdout == b"", result
    assert stderr.splitlines() == [
        f"Usage: {program} [{program} options] sockserve [options]",
        f"Try '{program} sockserve --help' for more.",
        f"{program} sockserve: {error}",
    ], stderr
    assert result.returncode == 2, result


# Daemon


def launchDaemon(
    processes: Processes, *options: str
) -> tuple[subprocess.CompletedProcess[bytes], Path, Path]:
    """
    Run C{twistd --pidfile P --logfile L sockserve OPTIONS} as a daemon in a
    fresh directory; return the launching command's result, P and L.
    """
    directory = processes.newDirectory("daemon")
    pidfile = directory / "sockserve.pid"
    logfile = directory / "sockserve.log"
    processes.trackDaemons(str(pidfile))
    command = [installedProgram("twistd"), "--pidfile", str(pidfile)]
    command += ["--logfile", str(logfile), "sockserve", *options]
    return processes.run(command, cwd=directory), pidfile, logfile


def test_daemon(processes: Processes) -> None:
    """
    C{twistd --pidfile P --logfile L sockserve --port 0}: the launching command
    exits 0, the pidfile names the daemon, the log has the listening line, a
    client is served, and SIGTERM stops the daemon and removes the pidfile.
    """
    result, pidfile, logfile = launchDaemon(
        processes, "--port", "0", "--mode", "oneshot"
    )
    assert result.returncode == 0, result
    pid = int(pidfile.read_text())
    assert result.stdout.decode() == (
        f"sockserve is running in the background: pid {pid}, logging to {logfile}\n"
    )
    assert result.stderr == b""
    [(mode, address)] = listeningAddresses(logfile.read_bytes())
    assert mode == "oneshot"
    host, _, port = address.rpartition(":")
    assert host == "127.0.0.1"
    assert oneShotRequest(processes, (host, int(port))) == b"OK .. hello\r\n"
    assert pid in processesMentioning(str(pidfile))
    os.kill(pid, signal.SIGTERM)
    assert waitForExit(pid), f"the daemon {pid} did not exit on SIGTERM"
    assert not pidfile.exists()
    log = logfile.read_text()
    assert "Traceback" not in log, log


def test_daemon_port_in_use(processes: Processes) -> None:
    """
    The daemon form with a port in use: the launching command exits 1
    promptly with the one line on stderr (not twistd's "An error has
    occurred: b'...'"), no pidfile is left, and no daemon process lingers.
    """
    port = processes.busyPort()
    result, pidfile, logfile = launchDaemon(processes, "--port", str(port))
    message = f"Could not listen on 127.0.0.1:{port}: [Errno 98] Address already in use"
    assert (result.returncode, result.stdout, result.stderr.decode()) == (
        1,
        b"",
        message + "\n",
    )
    assert not pidfile.exists()
    lingering = [
        pid for pid in processesMentioning(str(pidfile)) if not waitForExit(pid)
    ]
    assert not lingering, f"daemon process(es) {lingering} still running"
    assert not logfile.exists() or "Traceback" not in logfile.read_text()


# Signals


def test_sighup_and_sigusr1_do_not_kill_a_foreground_server(
    processes: Processes,
) -> None:
    """
    Under C{twistd -n} logging to stdout (as under systemd), SIGHUP and
    SIGUSR1 are logged and the server carries on serving.
    """
    server = processes.server(mode="oneshot")
    for number, name in ((signal.SIGHUP, b"SIGHUP"), (signal.SIGUSR1, b"SIGUSR1")):
        server.process.send_signal(number)
        server.output.waitForText(b"Received " + name)
    assert server.process.poll() is None
    assert oneShotRequest(processes, ("127.0.0.1", server.port)) == (b"OK .. hello\r\n")


def test_sighup_reopens_the_daemons_log_file(processes: Processes) -> None:
    """
    A daemon logging to a file reopens it on SIGHUP, as log rotation tools
    expect: they move the file away, send SIGHUP, and the server logs to a
    new file of the same name, of the same mode as the first (the daemon's
    umask, 0077, would make it 0600); the pidfile stays, the server serves on.
    """
    result, pidfile, logfile = launchDaemon(
        processes, "--port", "0", "--mode", "oneshot"
    )
    assert result.returncode == 0, result
    logfile.chmod(0o640)
    pid = int(pidfile.read_text())
    [(_, address)] = listeningAddresses(logfile.read_bytes())
    port = int(address.rpartition(":")[2])
    rotated = logfile.with_name("sockserve.log.1")
    logfile.rename(rotated)
    os.kill(pid, signal.SIGHUP)
    # Each request is logged where the server logs; the signal is handled
    # on one of the next turns of its loop.
    for _ in range(100):
        assert oneShotRequest(processes, ("127.0.0.1", port)) == b"OK .. hello\r\n"
        if logfile.exists() and b"is now connected" in logfile.read_bytes():
            break
    assert logfile.exists(), "the log file was not reopened"
    assert b"reopened the log file" in logfile.read_bytes()
    assert oct(logfile.stat().st_mode & 0o777) == oct(0o640)
    assert pidfile.exists()
    os.kill(pid, signal.SIGTERM)
    assert waitForExit(pid)

"""
Accounts end to end: a real twistd with --accounts written by the installed
sockserve-passwd, line clients over TCP, TLS and a UNIX socket, SIGHUP,
--require-login, --require-tls-for-login and the login metrics.
"""

from __future__ import annotations

import signal
import socket
import ssl
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
import trustme

from tests.processes import (
    WAIT,
    Processes,
    Server,
    TcpMember,
    installedProgram,
    receiveUntil,
)
from tests.redis import RedisServer
from tests.test_e2e_web import (  # the fixtures, and the client they give
    WebClient,
    certificates,  # noqa: F401
    webClients,  # noqa: F401
)

pytestmark = pytest.mark.e2e


def addAccount(
    processes: Processes, path: Path, name: str, password: str, *options: str
) -> None:
    done = processes.run(
        [installedProgram("sockserve-passwd"), str(path), name, *options],
        input=password.encode() + b"\n",
    )
    assert done.returncode == 0, done.stderr


def accountsFile(processes: Processes) -> Path:
    path = processes.directory / "accounts"
    addAccount(processes, path, "alice", "wonderland", "--role", "operator")
    addAccount(processes, path, "bob", "builder1")
    return path


def waitForLog(server: Server, text: bytes) -> bytes:
    return server.output.waitForText(text)


def test_login_reserved_names_and_sighup(processes: Processes) -> None:
    """A guest cannot take an account's name; /login takes it (the room sees
    a rename, the log says who logged in, never the password); SIGHUP with a
    bad file keeps the accounts and says so in one line; an account added
    while a guest has its name renames the guest on SIGHUP."""
    path = accountsFile(processes)
    server = processes.server("--accounts", str(path))
    guest = TcpMember(processes, server)
    alice = TcpMember(processes, server)
    guest.lineUntil(lambda line: line.endswith(" joined"))
    assert alice.ask("/nick Alice", lambda line: True) == (
        "ERROR the name Alice belongs to an account; /login alice PASSWORD"
    )
    alice.say(" /login alice wonderland")
    assert alice.line().startswith("ERROR that looks like a login")
    assert alice.ask("/login alice wonderland", lambda line: True) == (
        "* you are logged in as alice (operator)"
    )
    assert alice.line() == "* you are now known as alice"
    assert guest.line() == f"* {alice.name} is now known as alice"
    waitForLog(server, b"logged in as alice")
    # A bad file: the accounts read before are kept.
    path.write_text(path.read_text() + "carol:not-a-hash:\n")
    server.process.send_signal(signal.SIGHUP)
    waitForLog(server, b"Could not read the accounts again (line 4: the hash of carol")
    assert guest.ask("/login bob builder1", lambda line: True) == (
        "* you are logged in as bob"
    )
    assert guest.line() == "* you are now known as bob"
    assert guest.ask("/logout", lambda line: True) == "* you logged out of bob"
    guest.lineUntil(lambda line: line.startswith("* the name bob is the account's"))
    guest.rename("carol")
    lines = path.read_text().splitlines()[:-1]
    path.write_text("\n".join(lines) + "\n")
    addAccount(processes, path, "carol", "password1")
    server.process.send_signal(signal.SIGHUP)
    told = guest.lineUntil(lambda line: line.startswith("* the name carol"))
    assert told.startswith("* the name carol now belongs to an account; you are guest")
    waitForLog(server, b"Read 3 accounts from")
    server.stop()
    log = server.output.text()
    for secret in ("wonderland", "builder1", "password1"):
        assert secret not in log


def test_require_login_says_how_and_closes(processes: Processes) -> None:
    """With --require-login a line client is told how to log in; what it
    types before is said to nobody; it is closed after --login-timeout."""
    path = accountsFile(processes)
    # A deadline no loaded machine misses, for the client that logs in.
    server = processes.server(
        "--accounts", str(path), "--require-login", "--login-timeout", "120"
    )
    bob = processes.connect(("127.0.0.1", server.port))
    receiveUntil(bob, lambda data: b"log in with /login NAME PASSWORD" in data, "how")
    bob.sendall(b"/login bob builder1\n")
    welcome = receiveUntil(bob, lambda data: b"logged in as bob" in data, "login")
    assert b"you are bob (" in welcome
    early = processes.connect(("127.0.0.1", server.port))
    receiveUntil(early, lambda data: b"within 120 seconds" in data, "how long")
    early.sendall(b"hello all\n")
    receiveUntil(early, lambda data: b"ERROR log in first" in data, "refusal")
    # A second server's short deadline, for the client that never does.
    brief = processes.server(
        "--accounts", str(path), "--require-login", "--login-timeout", "1"
    )
    late = processes.connect(("127.0.0.1", brief.port))
    late.sendall(b"hello all\n")
    data = receiveUntil(late, lambda data: b"did not log in in time" in data, "closed")
    assert b"ERROR log in first: /login NAME PASSWORD" in data
    late.settimeout(WAIT)
    assert late.recv(100) == b""
    bob.settimeout(0.2)
    with pytest.raises(TimeoutError):
        bob.recv(100)


def test_require_tls_for_login(processes: Processes, tmp_path: Path) -> None:
    """--require-tls-for-login refuses a login over plain TCP, and takes it
    over TLS and over a UNIX socket."""
    path = accountsFile(processes)
    ca = trustme.CA()
    certificate = ca.issue_cert("127.0.0.1")
    key, chain = tmp_path / "key.pem", tmp_path / "chain.pem"
    certificate.private_key_pem.write_to_path(str(key))
    certificate.cert_chain_pems[0].write_to_path(str(chain))
    sock = processes.directory / "chat.sock"
    server = processes.server(
        "--accounts",
        str(path),
        "--require-tls-for-login",
        "--port",
        "tcp:0",
        "--port",
        f"ssl:0:privateKey={key}:certKey={chain}",
        "--port",
        f"unix:{sock}",
        listeners=3,
    )
    plain = TcpMember(processes, server.port)
    assert plain.ask("/login bob builder1", lambda line: True).startswith(
        "ERROR this server takes passwords only over TLS"
    )
    tlsPort = int(server.addresses[1].rpartition(":")[2])
    context = ssl.create_default_context()
    ca.configure_trust(context)
    raw = processes.connect(("127.0.0.1", tlsPort))
    secure = context.wrap_socket(raw, server_hostname="127.0.0.1")
    receiveUntil(secure, lambda data: b"you are guest" in data, "welcome")
    secure.sendall(b"/login bob builder1\n")
    receiveUntil(secure, lambda data: b"logged in as bob" in data, "login")
    secure.close()
    local = socket.socket(socket.AF_UNIX)
    local.settimeout(WAIT)
    local.connect(str(sock))
    try:
        receiveUntil(local, lambda data: b"you are guest" in data, "welcome")
        local.sendall(b"/login alice wonderland\n")
        receiveUntil(local, lambda data: b"logged in as alice" in data, "login")
    finally:
        local.close()


def test_login_metrics(processes: Processes) -> None:
    """sockserve_logins_total counts logins by result."""
    path = accountsFile(processes)
    server = processes.server("--accounts", str(path), "--metrics", "0", listeners=2)
    member = TcpMember(processes, server)
    assert member.ask("/login bob nope", lambda line: True) == (
        "ERROR wrong name or password"
    )
    member.ask("/login bob builder1", lambda line: "logged in" in line)
    url = f"http://127.0.0.1:{server.portOf('metrics')}/metrics"
    deadline = time.monotonic() + WAIT
    with urllib.request.urlopen(url, timeout=WAIT) as response:
        text = response.read().decode()
    assert time.monotonic() < deadline
    assert 'sockserve_logins_total{mode="chat",result="ok"} 1.0' in text
    assert 'sockserve_logins_total{mode="chat",result="failed"} 1.0' in text
    assert 'sockserve_logins_total{mode="chat",result="throttled"} 0.0' in text


def test_reserved_names_on_every_bus_node(processes: Processes, tmp_path: Path) -> None:
    """Two nodes of a bus with the same accounts file: a guest on either
    cannot take an account's name; logged in on one node, the account's
    name is its own on both, and the other node's people see it."""
    path = accountsFile(processes)
    redis = RedisServer(tmp_path / "redis").start()
    try:
        nodes = [
            processes.server("--bus", redis.url, "--accounts", str(path))
            for _ in range(2)
        ]
        for node in nodes:
            node.output.waitForText(b"Joined the bus")
        alice = TcpMember(processes, nodes[0])
        guest = TcpMember(processes, nodes[1])
        assert guest.ask("/nick alice", lambda line: True) == (
            "ERROR the name alice belongs to an account; /login alice PASSWORD"
        )
        alice.ask("/login alice wonderland", lambda line: "logged in" in line)
        assert alice.line() == "* you are now known as alice"
        guest.lineUntil(lambda line: line.endswith(" is now known as alice"))
        second = TcpMember(processes, nodes[1])
        second.ask("/login alice wonderland", lambda line: "logged in" in line)
        assert second.line() == (
            "* the name alice is in use (by another of your connections?); you "
            f"keep the name {second.name}"
        )
        guest.say("/msg alice hello across")
        assert alice.lineUntil(lambda line: "hello across" in line).endswith(
            "hello across"
        )
    finally:
        redis.kill()


def test_login_from_a_websocket(
    processes: Processes,
    webClients: Callable[..., WebClient],  # noqa: F811 (the fixture)
    certificates: tuple[Path, Path, Path],  # noqa: F811 (the fixture)
) -> None:
    """A WebSocket line client logs in with /login as telnet does; with
    --require-tls-for-login, over wss and not over ws."""
    path = accountsFile(processes)
    caFile, keyFile, certFile = certificates
    server = processes.server(
        "--accounts",
        str(path),
        "--require-tls-for-login",
        "--web",
        "0",
        "--web",
        f"ssl:0:privateKey={keyFile}:certKey={certFile}",
        listeners=3,
    )
    ports = [
        int(address.rpartition(":")[2])
        for served, address in server.listening
        if served == "web"
    ]
    plain = webClients(ports[0])
    plain.greeting()
    plain.send("/login bob builder1")
    assert plain.receive().startswith("ERROR this server takes passwords only over TLS")
    context = ssl.create_default_context(cafile=str(caFile))
    secure = webClients(ports[1], scheme="wss", ssl=context)
    secure.greeting()
    secure.send("/login bob builder1")
    frames = secure.receiveUntil(lambda frame: "known as" in frame)
    assert frames[-2:] == ["* you are logged in as bob", "* you are now known as bob"]

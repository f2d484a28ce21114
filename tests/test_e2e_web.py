"""
The chat room over WebSocket, end to end: a real C{twistd} process with
C{--web}, clients of the C{websockets} library (an independent
implementation) and raw TCP clients in the same room.
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest
import trustme
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from tests.processes import (
    WAIT,
    Processes,
    Server,
    TcpMember,
    Welcome,
    receiveText,
    receiveToEOF,
    receiveWelcome,
    systemProgram,
    welcomeIn,
)
from tests.support import readmeBlock

pytestmark = pytest.mark.e2e

BANNER_LINES = 3


def webServer(processes: Processes, *options: str) -> Server:
    """
    Start a chat server with a TCP port and a C{--web} port (unless
    C{options} name one).
    """
    if not any(option.startswith("--web=") or option == "--web" for option in options):
        options = ("--web", "0", *options)
    return processes.server(*options, listeners=2)


class WebClient:
    """
    A WebSocket client of the room (the C{websockets} library), closed at the
    end of the test.
    """

    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection

    def receive(self) -> str:
        """
        The next frame, as text.
        """
        frame = self.connection.recv(timeout=WAIT)
        assert isinstance(frame, str), frame
        return frame

    def receiveUntil(self, predicate: Callable[[str], bool]) -> list[str]:
        """
        Frames up to and including the first that satisfies C{predicate}.
        """
        frames = []
        for _ in range(1000):
            frame = self.receive()
            frames.append(frame)
            if predicate(frame):
                return frames
        raise AssertionError(f"no such frame among {frames}")

    def greeting(self) -> Welcome:
        """
        Read the banner and the welcome; return what the welcome says (the
        member's name, its address as the server sees it, its room).
        """
        frames = self.receiveUntil(lambda frame: frame.startswith("* you are "))
        assert len(frames) == BANNER_LINES + 1, frames
        return welcomeIn(frames[-1])

    def send(self, text: str | bytes) -> None:
        """
        Send one frame.
        """
        self.connection.send(text)

    def closed(self) -> tuple[list[str], int | None, str | None]:
        """
        Read until the server closes; return the frames read, the close
        code and the reason.
        """
        frames = []
        try:
            for _ in range(1000):
                frames.append(self.receive())
        except ConnectionClosed as closed:
            received = closed.rcvd
            if received is None:
                return frames, None, None
            return frames, received.code, received.reason
        raise AssertionError(f"not closed after {frames}")


@pytest.fixture
def webClients() -> Iterator[Callable[..., WebClient]]:
    with ExitStack() as opened:

        def open(
            port: int, scheme: str = "ws", source: str | None = None, **options: Any
        ) -> WebClient:
            if source is not None:
                # From another loopback address than 127.0.0.1.
                options["sock"] = opened.enter_context(
                    socket.create_connection(
                        ("127.0.0.1", port), timeout=WAIT, source_address=(source, 0)
                    )
                )
            options.setdefault("proxy", None)
            options.setdefault("open_timeout", WAIT)
            options.setdefault("close_timeout", 1)
            options.setdefault("compression", None)
            connection = opened.enter_context(
                connect(f"{scheme}://127.0.0.1:{port}/ws", **options)
            )
            return WebClient(connection)

        yield open


def test_websocket_and_tcp_members_chat(
    processes: Processes, webClients: Callable[..., WebClient]
) -> None:
    """
    A WebSocket client and a TCP client share the room: names, lines both
    ways, a frame of several lines, commands, and escaped control
    characters.
    """
    server = webServer(processes)
    tcp = TcpMember(processes, server)
    web = webClients(server.portOf("web"))
    welcome = web.greeting()
    name = welcome.name
    # Default names are counted per server, whatever the front end; the
    # address is the member's own, shown to it alone.
    assert (tcp.name, name) == ("guest1", "guest2")
    assert welcome == Welcome(
        "guest2", f"127.0.0.1:{web.connection.local_address[1]}", "default", 1
    )
    assert tcp.line() == f"* {name} joined"

    web.send("hello from a browser")
    assert tcp.line() == f"<{name}> hello from a browser"
    tcp.send(b"hello from telnet\r\n\x1b[31mred\r\n")
    assert web.receive() == f"<{tcp.name}> hello from telnet"
    assert web.receive() == f"<{tcp.name}> \\x1b[31mred"

    web.send("one\ntwo\r\nthree")
    assert [tcp.line() for _ in range(3)] == [
        f"<{name}> one",
        f"<{name}> two",
        f"<{name}> three",
    ]
    web.send("//slash")
    assert tcp.line() == f"<{name}> /slash"
    web.send("/nick web")
    assert web.receive() == "* you are now known as web"
    assert tcp.line() == f"* {name} is now known as web"
    web.send("/who")
    assert web.receive() == f"* 2 here: {tcp.name}, web"
    web.send("/quit")
    frames, code, _ = web.closed()
    assert frames == ["* bye"]
    assert code == 1000
    assert tcp.line() == "* web left"


# The JSON events that say when they happened (by the server's clock).
TIMED = {"welcome", "message", "private", "sent", "history", "joined", "left"}


def event(frame: str, since: float) -> Any:
    """
    The JSON event in C{frame}, without its time, which must be there if its
    type has one, and be the server's time since C{since}.
    """
    decoded = json.loads(frame)
    if decoded["type"] in TIMED:
        at = decoded.pop("at")
        assert since - 1 <= at <= time.time() + 1, (decoded, at, since)
    assert "at" not in decoded, decoded
    return decoded


def test_json_subprotocol(
    processes: Processes, webClients: Callable[..., WebClient]
) -> None:
    """
    A client that offers C{sockserve.v2.json} (the page's subprotocol) gets
    the room's events as JSON objects, whose names and text are data, and
    which name their room; lines said, joins and departures say when, by
    the server's clock, and the welcome tells the longest line the server
    takes.
    """
    since = time.time()
    server = webServer(processes)
    page = webClients(
        server.portOf("web"), subprotocols=["sockserve.v2.json", "sockserve.v1.json"]
    )
    assert page.connection.subprotocol == "sockserve.v2.json"
    banner = json.loads(page.receive())
    assert banner["type"] == "banner"
    assert "Welcome" in banner["text"]
    welcome = event(page.receive(), since)
    assert welcome == {
        "type": "welcome",
        "name": "guest1",
        "room": "default",
        "others": 0,
        "maxLine": 65536,
    }
    tcp = TcpMember(processes, server)
    assert event(page.receive(), since) == {
        "type": "joined",
        "room": "default",
        "name": tcp.name,
    }
    tcp.send(b'<img src=x onerror="alert(1)"> "quoted"\r\n')
    assert event(page.receive(), since) == {
        "type": "message",
        "room": "default",
        "from": tcp.name,
        "text": '<img src=x onerror="alert(1)"> "quoted"',
    }
    tcp.send(b"/nick tcp\r\n")
    assert event(page.receive(), since) == {
        "type": "renamed",
        "room": "default",
        "from": tcp.name,
        "to": "tcp",
    }
    page.send("/nick page")
    assert event(page.receive(), since) == {"type": "name", "name": "page"}
    page.send("/who")
    assert event(page.receive(), since) == {
        "type": "members",
        "room": "default",
        "names": ["page", "tcp"],
        "total": 2,
    }
    page.send("/nosuch")
    assert event(page.receive(), since)["type"] == "error"
    tcp.sock.close()
    assert event(page.receive(), since) == {
        "type": "left",
        "room": "default",
        "name": "tcp",
        "quit": True,
    }


def test_json_subprotocol_of_one_room(
    processes: Processes, webClients: Callable[..., WebClient]
) -> None:
    """
    C{sockserve.v1.json}, the subprotocol of sockserve 1.0's page, is still
    accepted: the same JSON events, for a client in one room at a time
    (C{/join} moves it, and the room it left no longer reaches it).
    """
    since = time.time()
    server = webServer(processes)
    page = webClients(server.portOf("web"), subprotocols=["sockserve.v1.json"])
    assert page.connection.subprotocol == "sockserve.v1.json"
    frames = page.receiveUntil(lambda frame: '"welcome"' in frame)
    assert event(frames[-1], since) == {
        "type": "welcome",
        "name": "guest1",
        "room": "default",
        "others": 0,
        "maxLine": 65536,
    }
    tcp = TcpMember(processes, server)
    assert event(page.receive(), since)["type"] == "joined"
    page.send("/join lab")
    assert event(page.receive(), since) == {
        "type": "entered",
        "room": "lab",
        "others": 0,
    }
    assert tcp.line() == "* guest1 left"
    tcp.say("only in #default")
    tcp.join("lab")
    assert event(page.receive(), since) == {
        "type": "joined",
        "room": "lab",
        "name": tcp.name,
    }
    tcp.say("in #lab")
    assert event(page.receive(), since) == {
        "type": "message",
        "room": "lab",
        "from": tcp.name,
        "text": "in #lab",
    }


def test_origin_checked(
    processes: Processes, webClients: Callable[..., WebClient]
) -> None:
    """
    A handshake from a page of another origin is refused with 403, unless
    that origin is allowed with --web-origin; the page's own origin and a
    client that sends no Origin are accepted.
    """
    server = webServer(processes, "--web-origin", "https://Allowed.example:443/")
    port = server.portOf("web")
    with pytest.raises(InvalidStatus) as refused:
        webClients(port, origin="http://evil.example")
    assert refused.value.response.status_code == 403
    assert b"--web-origin" in refused.value.response.body
    with pytest.raises(InvalidStatus):
        webClients(port, origin=f"http://127.0.0.1:{port + 1}")
    with pytest.raises(InvalidStatus):
        webClients(port, origin="null")
    for origin in (f"http://127.0.0.1:{port}", "https://allowed.example", None):
        member = webClients(port, origin=origin)
        assert member.greeting().peer.startswith("127.0.0.1:")


def test_oversized_and_binary_messages_close_that_client(
    processes: Processes, webClients: Callable[..., WebClient]
) -> None:
    """
    A message longer than --max-line closes its client with 1009, a binary
    one with 1003, each after an error line; the other members lose
    nothing and see nothing of either message.
    """
    server = webServer(processes, "--max-line", "100")
    tcp = TcpMember(processes, server)
    port = server.portOf("web")
    big = webClients(port)
    name = big.greeting().name
    big.send("x" * 100)
    big.send("y" * 101)
    frames, code, reason = big.closed()
    assert frames == ["ERROR message too long (the limit is 100 bytes)"]
    assert (code, reason) == (1009, "message too long")
    binary = webClients(port)
    binaryName = binary.greeting().name
    binary.send(b"\x00\x01binary")
    frames, code, _ = binary.closed()
    assert frames == ["ERROR binary messages are not accepted; send text"]
    assert code == 1003
    assert [tcp.line() for _ in range(5)] == [
        f"* {name} joined",
        f"<{name}> " + "x" * 100,
        f"* {name} left",
        f"* {binaryName} joined",
        f"* {binaryName} left",
    ]
    tcp.send(b"/who\r\n")
    assert tcp.line() == f"* 1 here: {tcp.name}"
    output = server.output.waitForText(b"binary message; closing").decode()
    assert "longer than 100 bytes; closing" in output


def test_capacity_is_shared_with_tcp(
    processes: Processes, webClients: Callable[..., WebClient]
) -> None:
    """
    --max-clients counts WebSocket and TCP members together: a WebSocket
    client beyond it is told the server is full and closed with 1013, the
    close reason saying so (C{full}).
    """
    server = webServer(processes, "--max-clients", "2")
    TcpMember(processes, server)
    port = server.portOf("web")
    webClients(port).greeting()
    refused = webClients(port)
    frames, code, reason = refused.closed()
    assert frames == ["ERROR the server is full (2 clients); try again later"]
    assert (code, reason) == (1013, "full")
    late = processes.connect(("127.0.0.1", server.port))
    assert receiveToEOF(late) == (
        b"ERROR the server is full (2 clients); try again later\r\n"
    )


def test_shutdown_says_goodbye(
    processes: Processes, webClients: Callable[..., WebClient]
) -> None:
    """
    When the server stops, a WebSocket member is told, then closed with
    1001 (going away).
    """
    server = webServer(processes)
    member = webClients(server.portOf("web"))
    member.greeting()
    server.process.send_signal(signal.SIGTERM)
    frames, code, _ = member.closed()
    assert frames == ["* the server is shutting down; goodbye"]
    assert code == 1001
    server.stop()


def test_unanswered_pings_drop_a_client(
    processes: Processes, webClients: Callable[..., WebClient]
) -> None:
    """
    With --web-ping, a quiet client that answers pings stays; one that does
    not (a raw socket that did the handshake, then went silent) is dropped,
    and its seat freed.
    """
    server = webServer(processes, "--web-ping", "0.2")
    port = server.portOf("web")
    answering = webClients(port, ping_interval=None)
    answering.greeting()
    silent = processes.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    silent.sendall(
        (
            "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    received = receiveUntilGone(silent)
    assert received.startswith(b"HTTP/1.1 101 ")
    # A ping frame (0x89) came before the end.
    assert b"\x89" in received.partition(b"\r\n\r\n")[2]
    server.output.waitForText(b"did not answer a ping; disconnecting")
    answering.send("/who")
    assert answering.receiveUntil(lambda f: " here: " in f)[-1].startswith("* 1 here")


def receiveUntilGone(sock: socket.socket) -> bytes:
    """
    Receive until the server closes or resets the connection.
    """
    received = b""
    sock.settimeout(WAIT)
    for _ in range(1000):
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return received
        if not chunk:
            return received
        received += chunk
    raise AssertionError(f"still open after {received!r}")


def test_page_and_http_answers(processes: Processes) -> None:
    """
    GET / is the page with a strict Content-Security-Policy; its assets are
    served with their types; /ws without an upgrade is 426; anything else
    is 404.
    """
    server = webServer(processes)
    base = f"http://127.0.0.1:{server.portOf('web')}"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(base + "/", timeout=WAIT) as page:
        body = page.read().decode()
        headers = page.headers
    assert '<label for="message"' in body
    assert "chat.js" in body
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    with opener.open(base + "/chat.js", timeout=WAIT) as script:
        assert script.headers["Content-Type"].startswith("text/javascript")
        # The page speaks a JSON subprotocol the server accepts.
        assert re.search(rb'"sockserve\.v[12]\.json"', script.read())
    with opener.open(base + "/chat.css", timeout=WAIT) as style:
        assert style.headers["Content-Type"].startswith("text/css")
    for path, status in (("/ws", 426), ("/nope", 404), ("/static/chat.js", 404)):
        with pytest.raises(urllib.error.HTTPError) as failed:
            opener.open(base + path, timeout=WAIT)
        failed.value.close()
        assert failed.value.code == status, path


@pytest.fixture
def certificates(tmp_path: Path) -> tuple[Path, Path, Path]:
    """
    A test CA and a certificate for 127.0.0.1: the CA's certificate, the
    server's key and its certificate.
    """
    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1", "localhost")
    caFile, keyFile, certFile = (
        tmp_path / "ca.pem",
        tmp_path / "key.pem",
        tmp_path / "cert.pem",
    )
    ca.cert_pem.write_to_path(str(caFile))
    issued.private_key_pem.write_to_path(str(keyFile))
    issued.cert_chain_pems[0].write_to_path(str(certFile))
    return caFile, keyFile, certFile


def test_wss(
    processes: Processes,
    webClients: Callable[..., WebClient],
    certificates: tuple[Path, Path, Path],
) -> None:
    """
    An ssl: --web endpoint serves the page over https and the room over
    wss, checked against a test CA.
    """
    caFile, keyFile, certFile = certificates
    server = webServer(
        processes,
        "--web",
        f"ssl:0:privateKey={keyFile}:certKey={certFile}",
    )
    port = server.portOf("web")
    context = ssl.create_default_context(cafile=str(caFile))
    secure = webClients(port, scheme="wss", ssl=context)
    name = secure.greeting().name
    tcp = TcpMember(processes, server)
    secure.receiveUntil(lambda frame: frame.endswith(" joined"))
    secure.send("over tls")
    assert tcp.lineUntil(lambda line: "tls" in line) == f"<{name}> over tls"
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context)
    )
    with opener.open(f"https://127.0.0.1:{port}/", timeout=WAIT) as page:
        assert b"sockserve chat" in page.read()
    with pytest.raises(ssl.SSLError):
        webClients(port, scheme="wss", ssl=ssl.create_default_context())


def readmeHAProxyWebConfig() -> str:
    """
    The web guide's haproxy.cfg for the page, as a template: its frontend's and
    backend's addresses replaced by {front} and {back}.
    """
    config = readmeBlock("An ``haproxy.cfg`` for the page and its WebSocket")
    assert "bind 127.0.0.1:8000" in config
    assert "127.0.0.1:8080 send-proxy" in config
    return config.replace("bind 127.0.0.1:8000", "bind {front}").replace(
        "127.0.0.1:8080 send-proxy", "127.0.0.1:{back} send-proxy"
    )


@contextmanager
def webHAProxy(server: Server, directory: Path) -> Iterator[int]:
    """
    Run HAProxy with the README's configuration for the page in front of
    C{server}'s web port; yield the port it listens on.
    """
    # HAProxy's listening socket comes from the test (on an OS-chosen port),
    # so that it listens before it starts: no waiting on it.
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        front = listening.getsockname()[1]
        config = directory / "haproxy.cfg"
        config.write_text(
            readmeHAProxyWebConfig().format(
                front=f"fd@{listening.fileno()}", back=server.portOf("web")
            )
        )
        proxy = subprocess.Popen(
            [systemProgram("haproxy"), "-db", "-f", str(config)],
            pass_fds=[listening.fileno()],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    try:
        yield front
    finally:
        proxy.terminate()
        proxy.wait(WAIT)


def test_behind_haproxy(
    processes: Processes, webClients: Callable[..., WebClient], tmp_path: Path
) -> None:
    """
    The web guide's configuration, run by HAProxy itself: the page and
    the WebSocket through it, the page's origin being the proxy's, and the
    member named by its own address (PROXY protocol).
    """
    server = webServer(processes, "--web", "haproxy:tcp:0")
    with webHAProxy(server, tmp_path) as front:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(f"http://127.0.0.1:{front}/", timeout=WAIT) as page:
            assert b"sockserve chat" in page.read()
        member = webClients(front, origin=f"http://127.0.0.1:{front}")
        welcome = member.greeting()
        name = welcome.name
        assert welcome.peer == f"127.0.0.1:{member.connection.local_address[1]}"
        tcp = TcpMember(processes, server)
        member.receiveUntil(lambda frame: frame.endswith(" joined"))
        member.send("through the proxy")
        assert tcp.lineUntil(lambda line: "proxy" in line) == (
            f"<{name}> through the proxy"
        )


def test_browsers_behind_haproxy_are_counted_by_their_own_address(
    processes: Processes, tmp_path: Path
) -> None:
    """
    Behind HAProxy (PROXY protocol), --max-per-ip bounds the HTTP
    connections of each browser by its own address, not the balancer's:
    browsers at three addresses each hold one (an upload the server has
    said to go on with), and a fourth opens the WebSocket. A browser
    beyond the bound is refused, many times over, and the log shows no
    traceback and grows by a bounded number of lines.
    """
    server = webServer(processes, "--web", "haproxy:tcp:0", "--max-per-ip", "2")
    server.output.follow()
    with webHAProxy(server, tmp_path) as front:

        def upload(host: str) -> None:
            browser = processes.connect(("127.0.0.1", front), source=host)
            browser.sendall(
                b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n"
                b"Expect: 100-continue\r\n\r\n"
            )
            # The server holds the connection, waiting for the body.
            receiveText(browser, b"HTTP/1.1 100 Continue\r\n\r\n")

        for host in ["127.0.0.2", "127.0.0.3", "127.0.0.4"]:
            upload(host)
        member = processes.connect(("127.0.0.1", front), source="127.0.0.5")
        member.sendall(handshake())
        welcome, greeting = receiveWelcome(member)
        assert greeting.startswith(b"HTTP/1.1 101 "), greeting
        assert welcome.peer == f"127.0.0.5:{member.getsockname()[1]}", greeting
        upload("127.0.0.2")
        member.sendall(maskedText("/who"))
        receiveText(member, b"* 1 here: ")
        logged = len(server.output.drain().splitlines())
        for _ in range(40):
            refused = processes.connect(("127.0.0.1", front), source="127.0.0.2")
            refused.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            answer = receiveText(refused, b"</html>")
            assert answer.startswith(b"HTTP/1.1 502 "), answer
            refused.close()
    log = server.output.drain()
    assert b"Traceback" not in log
    assert len(log.splitlines()) - logged <= 25, log.decode()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (("--mode", "echo", "--web", "0"), "--web serves the chat room"),
        (("--web-origin", "evil.example"), "--web-origin: 'evil.example' is not"),
        (("--web", "nosuch:0"), "--web:"),
        (("--web-ping", "soon"), "--web-ping must be a number of seconds"),
        (
            ("--web-host", "chat.example.org:8080"),
            "--web-host: 'chat.example.org:8080'",
        ),
    ],
)
def test_bad_web_options(
    processes: Processes, options: tuple[str, ...], message: str
) -> None:
    """
    A mistake in a --web option is a one-line error naming it, not a
    traceback.
    """
    from tests.processes import installedProgram

    result = processes.run(
        [installedProgram("twistd"), "-n", "sockserve", "--port", "0", *options]
    )
    assert result.returncode != 0
    output = (result.stdout + result.stderr).decode()
    assert message in output, output
    assert "Traceback" not in output


def handshake(key: str | None = None, **headers: str) -> bytes:
    """
    A WebSocket upgrade request for /ws, with C{headers} added or replaced.
    """
    fields = {
        "Host": "127.0.0.1",
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": key or base64.b64encode(os.urandom(16)).decode(),
        "Sec-WebSocket-Version": "13",
    }
    fields.update({name.replace("_", "-"): value for name, value in headers.items()})
    lines = "".join(f"{name}: {value}\r\n" for name, value in fields.items())
    return f"GET /ws HTTP/1.1\r\n{lines}\r\n".encode()


def maskedText(text: str) -> bytes:
    """
    One masked text frame, as a client sends it.
    """
    payload = text.encode()
    mask = os.urandom(4)
    masked = bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload))
    assert len(payload) < 126
    return bytes([0x81, 0x80 | len(payload)]) + mask + masked


def test_frames_sent_with_the_handshake_are_not_lost(processes: Processes) -> None:
    """
    A client that sends its first frames in the same packet as its handshake
    (as it may) has them relayed, not kept for an HTTP request that never
    comes.
    """
    server = webServer(processes)
    tcp = TcpMember(processes, server)
    sock = processes.connect(("127.0.0.1", server.portOf("web")))
    sock.sendall(handshake() + maskedText("right away") + maskedText("and again"))
    name = receiveWelcome(sock)[0].name
    assert tcp.lineUntil(lambda line: "right away" in line) == f"<{name}> right away"
    assert tcp.line() == f"<{name}> and again"


@pytest.mark.parametrize(
    ("request_", "status"),
    [
        (handshake().replace(b"GET /ws ", b"GET /ws/more "), b" 404 "),
        (handshake().replace(b"GET ", b"HEAD "), b" 426 "),
        (handshake().replace(b"HTTP/1.1\r\n", b"HTTP/1.0\r\n", 1), b" 400 "),
        (handshake(key="c2hvcnQ="), b" 400 "),
        (handshake(Sec_WebSocket_Version="8"), b" 426 Upgrade Required"),
        (
            handshake(Host="evil.example:80", Origin="http://evil.example"),
            b" 403 ",
        ),
    ],
)
def test_handshakes_that_are_refused(
    processes: Processes, request_: bytes, status: bytes
) -> None:
    """
    Handshakes on other paths, without GET, over HTTP/1.0, with a key that
    is not 16 bytes, of another version, or from a page whose name was
    pointed at this loopback server (DNS rebinding) are refused.
    """
    server = webServer(processes)
    sock = processes.connect(("127.0.0.1", server.portOf("web")))
    sock.sendall(request_)
    answer = receiveText(sock, b"\r\n\r\n")
    statusLine = answer.split(b"\r\n")[0]
    assert statusLine.partition(b" ")[2].startswith(status.lstrip()), answer
    if status == b" 426 Upgrade Required":
        assert b"sec-websocket-version: 13" in answer.lower()


def test_http_connections_of_one_address_are_bounded(processes: Processes) -> None:
    """
    With --max-per-ip, an address holds at most that many HTTP connections
    that are not WebSockets yet: one more is closed at once, and others
    (TCP members) are unaffected.
    """
    server = webServer(processes, "--max-per-ip", "2")
    port = server.portOf("web")
    held = [processes.connect(("127.0.0.1", port)) for _ in range(2)]
    for sock in held:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    extra = processes.connect(("127.0.0.1", port))
    assert receiveToEOF(extra) == b""
    tcp = TcpMember(processes, server)
    tcp.send(b"/who\r\n")
    assert tcp.lineUntil(lambda line: " here: " in line) == f"* 1 here: {tcp.name}"
    held[0].close()
    server.output.drain()


def test_many_handshakes_from_one_address_by_default(
    processes: Processes, webClients: Callable[..., WebClient]
) -> None:
    """
    Without --max-per-ip, one address (a NAT, a load generator) may open
    many WebSockets at once.
    """
    server = webServer(processes, "--max-clients", "100")
    port = server.portOf("web")
    pending = [processes.connect(("127.0.0.1", port)) for _ in range(60)]
    for sock in pending:
        sock.sendall(handshake())
    for sock in pending:
        assert receiveText(sock, b"\r\n\r\n").startswith(b"HTTP/1.1 101 ")


def closedByServer(sock: socket.socket, timeout: float = WAIT) -> bool:
    """
    Tell whether the server closes or resets C{sock} within C{timeout}
    seconds (reading and discarding what it sends meanwhile).
    """
    deadline = time.monotonic() + timeout
    for _ in range(1000):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        sock.settimeout(remaining)
        try:
            if not sock.recv(65536):
                return True
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False
    return False


def stillOpen(sock: socket.socket) -> bool:
    """
    Tell whether C{sock} is still open now (nothing to read, no end).
    """
    sock.setblocking(False)
    try:
        return bool(sock.recv(1, socket.MSG_PEEK))
    except BlockingIOError:
        return True
    except ConnectionResetError:
        return False
    finally:
        sock.settimeout(WAIT)


UNFINISHED = b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"


def test_one_address_of_unfinished_handshakes_does_not_lock_browsers_out(
    processes: Processes, webClients: Callable[..., WebClient]
) -> None:
    """
    One address that holds more unfinished handshakes than its share of the
    pending pool (150 against a pool of 100, a quarter of --max-connections)
    loses its oldest: a WebSocket client from another address, or from the
    same one, still gets in at once. What it still holds is closed when the
    request's headers have not come within HEADER_DEADLINE seconds.
    """
    from sockserve.web.site import HEADER_DEADLINE

    server = webServer(processes, "--max-connections", "400")
    port = server.portOf("web")
    started = time.monotonic()
    held = []
    for _ in range(150):
        sock = processes.connect(("127.0.0.1", port))
        sock.sendall(UNFINISHED)
        held.append(sock)
    for source in ("127.0.0.2", "127.0.0.1"):
        member = webClients(port, source=source, open_timeout=HEADER_DEADLINE / 2)
        assert member.greeting().peer.startswith(f"{source}:")
    # Its share is 25: the last 24 are left (the last member took one).
    assert all(closedByServer(sock) for sock in held[:126])
    assert all(stillOpen(sock) for sock in held[126:])
    for sock in held[126:]:
        assert closedByServer(sock, started + HEADER_DEADLINE + WAIT - time.monotonic())
    assert time.monotonic() - started >= HEADER_DEADLINE


def test_many_addresses_of_unfinished_handshakes_do_not_lock_browsers_out(
    processes: Processes, webClients: Callable[..., WebClient]
) -> None:
    """
    Many addresses, each holding as many unfinished handshakes as
    --max-per-ip lets it, more than the pending pool holds: the oldest of
    the address holding the most is dropped for a newcomer, and WebSocket
    clients still get in at once.
    """
    from sockserve.web.site import HEADER_DEADLINE

    server = webServer(processes, "--max-per-ip", "3", "--max-connections", "400")
    port = server.portOf("web")
    held = []
    for index in range(34):
        for _ in range(3):
            sock = processes.connect(("127.0.0.1", port), source=f"127.0.0.{index + 2}")
            sock.sendall(UNFINISHED)
            held.append(sock)
    for source in ("127.0.0.1", "127.0.0.99"):
        member = webClients(port, source=source, open_timeout=HEADER_DEADLINE / 2)
        assert member.greeting().peer.startswith(f"{source}:")
    # The pool holds 100: the last two of the 102, and the first member,
    # each took the place of the oldest connection of the first address to
    # hold three (the second member found the first's place free).
    dropped = [0, 3, 6]
    assert all(closedByServer(held[index]) for index in dropped)
    assert [index for index, sock in enumerate(held) if not stillOpen(sock)] == dropped


def test_web_host_pins_the_names_served(
    processes: Processes, webClients: Callable[..., WebClient]
) -> None:
    """
    With --web-host, the page and the WebSocket are served only to
    requests for the names given (the port aside); a name pointed at the
    server by someone else (DNS rebinding, or anything behind a balancer)
    gets 403 and one line, also for a handshake without Origin.
    """
    server = webServer(
        processes, "--web-host", "chat.example.org", "--web-host", "127.0.0.1"
    )
    port = server.portOf("web")
    for request_ in (
        b"GET / HTTP/1.1\r\nHost: rebind.attacker.example\r\n\r\n",
        handshake(Host=f"rebind.attacker.example:{port}"),
        handshake(Host="localhost"),
    ):
        sock = processes.connect(("127.0.0.1", port))
        sock.sendall(request_)
        answer = receiveText(sock, b"(see --web-host)\n")
        assert answer.startswith(b"HTTP/1.1 403 "), answer
        assert answer.endswith(
            b"\r\n\r\nthis server does not answer to this host name (see --web-host)\n"
        )
    for request_ in (
        b"GET / HTTP/1.1\r\nHost: chat.example.org:8080\r\n\r\n",
        handshake(Host="Chat.Example.Org", Origin="https://chat.example.org"),
    ):
        sock = processes.connect(("127.0.0.1", port))
        sock.sendall(request_)
        answer = receiveText(sock, b"\r\n\r\n")
        assert answer.startswith((b"HTTP/1.1 200 ", b"HTTP/1.1 101 ")), answer
    member = webClients(port, origin=f"http://127.0.0.1:{port}")
    assert member.greeting().peer.startswith("127.0.0.1:")

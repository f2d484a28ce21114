"""
Rooms across processes, end to end: real C{twistd} nodes, a real
C{redis-server} (private, on a free loopback port), raw TCP clients; Redis
paused, killed and restarted, a node cut off from it, a node killed. Nodes
on one Redis share every room and everyone's names; most tests here use the
default room, as one room spread over the nodes.

Every check of lines is per receiving client: each line of every other
sender arrived exactly once, in the order it was sent, and none of its own.
"""

from __future__ import annotations

import re
import signal
import socket
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from tests.processes import (
    WAIT,
    WELCOME,
    Processes,
    Server,
    TcpMember,
    installedProgram,
    receiveText,
    receiveWelcome,
    welcomeIn,
)
from tests.redis import CuttableProxy, RedisServer

pytestmark = pytest.mark.e2e

DONE = "done"


@pytest.fixture
def proxies() -> Iterator[list[CuttableProxy]]:
    opened: list[CuttableProxy] = []
    yield opened
    for proxy in opened:
        proxy.close()


# How long a node may take to find the bus gone (its 3 s stall timeout),
# or to join it again (a backoff of up to 4 s, then the join's own steps),
# on a machine busy with other tests.
BUS_WAIT = 30.0


def node(processes: Processes, bus: str, *options: str, joined: bool = True) -> Server:
    """
    Start a chat node on C{bus}; wait until it joined the bus, unless told
    not to.
    """
    server = processes.server("--bus", bus, *options)
    if joined:
        server.output.waitForText(b"Joined the bus")
    return server


def send(member: TcpMember, lines: Sequence[str]) -> None:
    """
    Send C{lines}, then the end marker.
    """
    member.send("".join(f"{line}\r\n" for line in [*lines, DONE]).encode())


def received(member: TcpMember, senders: Sequence[TcpMember]) -> dict[str, list[str]]:
    """
    Read what C{member} is sent until every one of C{senders} has sent its
    end marker; return the lines of each sender by name (and of any other
    sender seen, and the member's own, which must not come back).
    """
    got: dict[str, list[str]] = {}
    waiting = {sender.name for sender in senders}
    for _ in range(100_000):
        if not waiting:
            return got
        line = member.line()
        if not line.startswith("<"):
            continue
        sender, _, text = line[1:].partition("> ")
        got.setdefault(sender, []).append(text)
        if text == DONE:
            waiting.discard(sender)
    raise AssertionError(f"{member.name} still waits for {waiting}")


def assertEveryLineOnce(
    members: Sequence[TcpMember], sent: dict[str, list[str]]
) -> None:
    """
    Each member got every other member's lines once, in order, and none of
    its own.
    """
    for member in members:
        others = [other for other in members if other is not member]
        got = received(member, others)
        expected = {other.name: [*sent[other.name], DONE] for other in others}
        assert got == expected, member.name


def test_lines_presence_and_names_across_three_nodes(
    processes: Processes, redis: RedisServer
) -> None:
    """
    Three nodes, two clients each: every line reaches every other client
    once and in order; joins, renames and /who span the room; a name is
    unique across it.
    """
    nodes = [node(processes, redis.url) for _ in range(3)]
    first = TcpMember(processes, nodes[0])
    second = TcpMember(processes, nodes[1])
    assert first.lineUntil(lambda line: "joined" in line) == f"* {second.name} joined"
    second.send(b"/nick bob\r\n")
    assert second.line() == "* you are now known as bob"
    assert first.line() == f"* {second.name} is now known as bob"
    second.name = "bob"
    first.send(b"/nick BOB\r\n")
    assert first.line() == "ERROR the name BOB is taken"
    members = [first, second] + [
        TcpMember(processes, server)
        for server in (nodes[2], nodes[0], nodes[1], nodes[2])
    ]
    # The room is one across nodes, as soon as each node has read the
    # others' joins: the third node has, once it told its first member.
    awaited = {f"* {member.name} joined" for member in members[3:5]}
    for _ in range(20):
        if not awaited:
            break
        awaited.discard(members[2].line())
    assert not awaited
    members[-1].send(b"/who\r\n")
    who = members[-1].lineUntil(lambda line: " here: " in line)
    assert who.startswith("* 6 here: ")
    assert "bob" in who
    assert first.name in who
    sent = {
        member.name: [f"{member.name} line {n}" for n in range(20)]
        for member in members
    }
    for member in members:
        send(member, sent[member.name])
    assertEveryLineOnce(members, sent)


def test_capacity_and_same_name_at_once(
    processes: Processes, redis: RedisServer
) -> None:
    """
    --max-clients caps the whole (default) room, also when clients join on
    two nodes at once; each is given a default name of its own, from one
    counter for the bus.
    """
    nodes = [node(processes, redis.url, "--max-clients", "3") for _ in range(2)]
    socks = [processes.connect(("127.0.0.1", nodes[n % 2].port)) for n in range(6)]

    def welcomed(data: bytes) -> bool:
        return WELCOME.search(data.decode("utf-8", "replace")) is not None

    answers = []
    for sock in socks:
        data = b""
        for _ in range(100):
            chunk = sock.recv(4096)
            data += chunk
            if not chunk or welcomed(data) or b"ERROR" in data:
                break
        answers.append(data)
    admitted = [data for data in answers if welcomed(data)]
    refused = [
        data for data in answers if b"ERROR the server is full (3 clients)" in data
    ]
    assert (len(admitted), len(refused)) == (3, 3), answers
    names = {welcomeIn(data).name for data in admitted}
    assert len(names) == 3, names
    assert all(re.fullmatch(r"guest[0-9]+", name) for name in names), names


def test_same_name_at_once(processes: Processes, redis: RedisServer) -> None:
    """
    Two nodes asking for one name at once give it to one client.
    """
    nodes = [node(processes, redis.url) for _ in range(2)]
    one, two = TcpMember(processes, nodes[0]), TcpMember(processes, nodes[1])
    one.send(b"/nick same\r\n")
    two.send(b"/nick same\r\n")
    answers = [
        one.lineUntil(lambda line: "same" in line and "is now" not in line),
        two.lineUntil(lambda line: "same" in line and "is now" not in line),
    ]
    assert sorted(answers) == [
        "* you are now known as same",
        "ERROR the name same is taken",
    ]


def test_rooms_are_apart(processes: Processes, redis: RedisServer) -> None:
    """
    Nodes of different --room on one bus have different default rooms:
    neither sees the other's lines or presence, each room's keys are apart
    in Redis (a hash slot each), but the rooms and the names are the bus's:
    /rooms lists both, and a name taken in one room is taken in the other.
    """
    red = [node(processes, redis.url, "--room", "red") for _ in range(2)]
    blue = node(processes, redis.url, "--room", "blue")
    redOne, redTwo = TcpMember(processes, red[0]), TcpMember(processes, red[1])
    blueOne = TcpMember(processes, blue)
    assert (redOne.room, redTwo.room, blueOne.room) == ("red", "red", "blue")
    blueOne.send(b"blue line\r\n/who\r\n")
    assert (
        blueOne.lineUntil(lambda line: " here: " in line) == f"* 1 here: {blueOne.name}"
    )
    send(redOne, ["red line"])
    assert received(redTwo, [redOne]) == {redOne.name: ["red line", DONE]}
    redTwo.send(b"/who\r\n")
    assert redTwo.lineUntil(lambda line: " here: " in line) == (
        f"* 2 here: {', '.join(sorted([redOne.name, redTwo.name]))}"
    )
    blueOne.send(b"/rooms\r\n")
    assert blueOne.lineUntil(lambda line: " rooms: " in line) == (
        "* 2 rooms: #blue (1), #red (2)"
    )
    redTwo.rename("scarlet")
    blueOne.send(b"/nick Scarlet\r\n")
    assert blueOne.lineUntil(lambda line: line.startswith("ERROR")) == (
        "ERROR the name Scarlet is taken"
    )
    # Nothing of the other room came: the blue member's lines since are its
    # own answers; the red members saw no blue line.
    blueOne.send(b"/who\r\n")
    assert blueOne.lineUntil(lambda line: line.startswith("*")) == (
        f"* 1 here: {blueOne.name}"
    )
    send(redOne, [])
    assert received(redTwo, [redOne]) == {redOne.name: [DONE]}
    keys = redis.command("--scan").split()
    assert all(key.startswith("sockserve:") for key in keys), keys
    roomKeys = [key for key in keys if "{" in key]
    assert any(key.startswith("sockserve:{red}:") for key in roomKeys), keys
    assert any(key.startswith("sockserve:{blue}:") for key in roomKeys), keys
    assert all(
        key.startswith(("sockserve:{red}:", "sockserve:{blue}:")) for key in roomKeys
    ), keys


def test_redis_paused_then_resumed(processes: Processes, redis: RedisServer) -> None:
    """
    While Redis is paused (SIGSTOP) clients of one node keep chatting; the
    nodes tell their clients once that contact is lost, and once that it is
    back; every line reaches every client once, in order.
    """
    nodes = [node(processes, redis.url) for _ in range(2)]
    a1, a2 = TcpMember(processes, nodes[0]), TcpMember(processes, nodes[0])
    b1 = TcpMember(processes, nodes[1])
    a1.lineUntil(lambda line: line.endswith(f"{b1.name} joined"))
    redis.pause()
    try:
        send(a1, ["during the pause"])
        assert received(a2, [a1]) == {a1.name: ["during the pause", DONE]}
        for member in (a1, a2, b1):
            member.lineUntil(lambda line: line.startswith("* lost contact"), BUS_WAIT)
    finally:
        redis.resume()
    for member in (a1, a2, b1):
        member.lineUntil(lambda line: line.startswith("* back in contact"), BUS_WAIT)
    assert received(b1, [a1]) == {a1.name: ["during the pause", DONE]}
    sent = {m.name: [f"{m.name} after {n}" for n in range(10)] for m in (a1, a2, b1)}
    for member in (a1, a2, b1):
        send(member, sent[member.name])
    assertEveryLineOnce([a1, a2, b1], sent)
    # One pause, one loss and one return; on a machine so busy that Redis
    # (or the node) stalls past the bus's 3 s stall timeout, the node
    # rightly counts another loss, and returns from it the same way.
    for server in nodes:
        log = server.output.text()
        lost = log.count("Lost contact with the bus")
        assert lost >= 1, log
        assert log.count("Back in contact with the bus") == lost, log


def test_redis_restarted_empty(
    processes: Processes, redis: RedisServer, tmp_path: Path
) -> None:
    """
    Redis killed and restarted without its data: the lines each node kept
    meanwhile reach the others once it is back, in order; the clients are
    told lines may be missing; chat goes on across nodes.
    """
    nodes = [node(processes, redis.url) for _ in range(2)]
    a, b = TcpMember(processes, nodes[0]), TcpMember(processes, nodes[1])
    a.lineUntil(lambda line: line.endswith(f"{b.name} joined"))
    redis.kill()
    for member in (a, b):
        member.lineUntil(lambda line: line.startswith("* lost contact"))
    sent = {m.name: [f"{m.name} while down {n}" for n in range(5)] for m in (a, b)}
    for member in (a, b):
        member.send("".join(f"{line}\r\n" for line in sent[member.name]).encode())
    redis.start()
    for member in (a, b):
        member.lineUntil(lambda line: line.startswith("* back in contact"))
    for member in (a, b):
        send(member, [])
    for member, other in ((a, b), (b, a)):
        got = received(member, [other])
        assert got == {other.name: [*sent[other.name], DONE]}
    log = nodes[0].output.text()
    assert "lost its data" in log or "Back in contact" in log


def test_node_cut_off_and_back(
    processes: Processes, redis: RedisServer, proxies: list[CuttableProxy]
) -> None:
    """
    A node cut off from Redis: the others keep talking and, after
    --bus-node-timeout, tell their clients its members left; its clients
    keep talking among themselves; once back, it rejoins, its members are
    announced again, and the lines of both sides cross, once and in order.
    """
    proxy = CuttableProxy(redis.port).start()
    proxies.append(proxy)
    timeout = ("--bus-node-timeout", "1")
    cut = node(processes, proxy.url, *timeout)
    others = [node(processes, redis.url, *timeout) for _ in range(2)]
    c1, c2 = TcpMember(processes, cut), TcpMember(processes, cut)
    o1, o2 = TcpMember(processes, others[0]), TcpMember(processes, others[1])
    c1.lineUntil(lambda line: line.endswith(f"{o2.name} joined"))
    proxy.cut()
    for member in (c1, c2):
        member.lineUntil(lambda line: line.startswith("* lost contact"))
    departures = {f"* {c1.name} left", f"* {c2.name} left"}
    for other in (o1, o2):
        assert {other.lineUntil(departures.__contains__) for _ in range(2)} == (
            departures
        )
    o2.send(b"/who\r\n")
    who = o2.lineUntil(lambda line: " here: " in line)
    assert who == f"* 2 here: {', '.join(sorted([o1.name, o2.name]))}"
    send(c1, ["said while cut off"])
    assert received(c2, [c1]) == {c1.name: ["said while cut off", DONE]}
    send(o1, ["said meanwhile"])
    assert received(o2, [o1]) == {o1.name: ["said meanwhile", DONE]}
    proxy.restore()
    for member in (c1, c2):
        member.lineUntil(lambda line: line.startswith("* back in contact"))
    arrivals = {f"* {c1.name} joined", f"* {c2.name} joined"}
    assert {o2.lineUntil(arrivals.__contains__) for _ in range(2)} == arrivals
    assert received(c1, [o1]) == {o1.name: ["said meanwhile", DONE]}
    assert received(o1, [c1]) == {c1.name: ["said while cut off", DONE]}
    o2.send(b"/who\r\n")
    assert o2.lineUntil(lambda line: " here: " in line).startswith("* 4 here: ")


def test_killed_node_members_leave(processes: Processes, redis: RedisServer) -> None:
    """
    A node killed with SIGKILL: within --bus-node-timeout the others tell
    their clients its members left.
    """
    timeout = ("--bus-node-timeout", "1")
    doomed = node(processes, redis.url, *timeout)
    survivor = node(processes, redis.url, *timeout)
    victim = TcpMember(processes, doomed)
    witness = TcpMember(processes, survivor)
    victim.lineUntil(lambda line: line.endswith(f"{witness.name} joined"))
    doomed.process.send_signal(signal.SIGKILL)
    doomed.process.wait()
    witness.lineUntil(lambda line: line == f"* {victim.name} left")
    witness.send(b"/who\r\n")
    assert witness.lineUntil(lambda line: " here: " in line) == (
        f"* 1 here: {witness.name}"
    )


def test_redis_absent_at_start_up(processes: Processes, tmp_path: Path) -> None:
    """
    A node whose Redis is not there yet serves its local clients, says once
    that it cannot reach the bus, and joins the bus when Redis appears.
    """
    late = RedisServer(tmp_path / "late")
    early = node(processes, late.url, joined=False)
    early.output.waitForText(b"Cannot reach the bus")
    one, two = TcpMember(processes, early), TcpMember(processes, early)
    send(one, ["local while alone"])
    assert received(two, [one]) == {one.name: ["local while alone", DONE]}
    late.start()
    try:
        early.output.waitForText(b"Joined the bus")
        other = node(processes, late.url)
        three = TcpMember(processes, other)
        three.send(b"/who\r\n")
        assert three.lineUntil(lambda line: " here: " in line).startswith("* 3 here: ")
        send(three, ["hello early birds"])
        assert received(one, [three]) == {three.name: ["hello early birds", DONE]}
        assert early.output.text().count("Cannot reach the bus") == 1
    finally:
        late.kill()


def test_workers_share_the_room(processes: Processes, redis: RedisServer) -> None:
    """
    With a bus, --workers serves chat: every worker is a node of the bus,
    and they share the room.
    """
    server = processes.server("--bus", redis.url, "--workers", "2", "--port", "0")
    server.output.waitFor(
        lambda data: data.count(b"Joined the bus") == 2, "both nodes on the bus"
    )
    members: list[TcpMember] = []
    byWorker: list[TcpMember] = []
    for _ in range(100):
        member = TcpMember(processes, server)
        members.append(member)
        served = server.output.waitForText(f"{member.peer} is now".encode())
        if re.search(
            rf"\[worker \d+ pid \d+\] Client {member.peer} is".encode(), served
        ):
            byWorker.append(member)
        if byWorker and len(members) > len(byWorker) and len(members) >= 3:
            break
    assert byWorker, "no client reached the worker"
    assert len(members) > len(byWorker), "no client reached the main process"
    sent = {m.name: [f"{m.name} via a worker {n}" for n in range(5)] for m in members}
    for member in members:
        send(member, sent[member.name])
    assertEveryLineOnce(members, sent)


def test_password_from_a_file_and_the_environment(
    processes: Processes, tmp_path: Path
) -> None:
    """
    A password given in a file (or the environment) reaches Redis without
    being on the command line; a wrong or missing one ends start-up in one
    line that says authentication failed and where a password goes, with
    exit status 1 (in the foreground and as a daemon), not a silent retry
    for ever.
    """
    secured = RedisServer(tmp_path / "secured", "--requirepass", "s3cret").start()
    try:
        secret = tmp_path / "password"
        secret.write_text("s3cret\n")
        good = node(processes, secured.url, "--bus-password-file", str(secret))
        assert "s3cret" not in good.output.text()
        wrong = tmp_path / "wrong"
        wrong.write_text("nope\n")
        hint = (
            "give the bus's password with --bus-password-file FILE (or the "
            "SOCKSERVE_BUS_PASSWORD environment variable)"
        )
        for options, said in (
            (["--bus-password-file", str(wrong)], "WRONGPASS"),
            ([], "NOAUTH"),
        ):
            twistd = [installedProgram("twistd"), "-n", "--pidfile", ""]
            result = processes.run(
                [*twistd, "sockserve", "--port", "0", "--bus", secured.url, *options]
            )
            stderr = result.stderr.decode()
            assert result.returncode == 1, result
            [line] = stderr.splitlines()
            assert line.startswith("Could not join the bus: authentication failed ("), (
                line
            )
            assert said in line, line
            assert line.endswith(hint), line
            assert "Traceback" not in stderr + result.stdout.decode()
        directory = processes.newDirectory("daemon")
        pidfile = directory / "sockserve.pid"
        processes.trackDaemons(str(pidfile))
        daemon = processes.run(
            [
                installedProgram("twistd"),
                "--pidfile",
                str(pidfile),
                "--logfile",
                str(directory / "sockserve.log"),
                "sockserve",
                "--port",
                "0",
                "--bus",
                secured.url,
            ],
            cwd=directory,
        )
        assert daemon.returncode == 1, daemon
        assert b"authentication failed" in daemon.stderr, daemon
        assert not pidfile.exists()
        log = (directory / "sockserve.log").read_text()
        assert hint in log, log
    finally:
        secured.kill()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            ("--bus", "http://127.0.0.1"),
            "--bus: 'http://127.0.0.1' is not a bus address",
        ),
        (("--bus", "redis://"), "--bus: 'redis://' names no host"),
        (("--bus", "redis://h:99999"), "--bus: 'redis://h:99999' is not a bus address"),
        (("--bus", "redis://h/x"), "the database must be a number, not 'x'"),
        (("--bus", "redis://h", "--mode", "echo"), "--bus shares a chat room"),
        (("--bus", "redis://h", "--room", "a b"), "--room: a room name is"),
        (("--workers", "2"), "add --bus"),
        (("--bus-password-file", "/nonexistent"), "--bus-password-file needs --bus"),
        (
            ("--bus", "redis://h", "--bus-password-file", "/nonexistent"),
            "--bus-password-file: cannot read /nonexistent",
        ),
    ],
)
def test_bad_bus_options(
    processes: Processes, options: tuple[str, ...], message: str
) -> None:
    """
    A mistake in a bus option is a one-line error naming it, with a
    non-zero exit and no traceback.
    """
    result = processes.run(
        [installedProgram("twistd"), "-n", "sockserve", "--port", "0", *options]
    )
    output = (result.stdout + result.stderr).decode()
    assert result.returncode != 0
    assert message in output, output
    assert "Traceback" not in output


def test_bus_over_tls(processes: Processes, tmp_path: Path) -> None:
    """
    rediss:// reaches a Redis that speaks only TLS, checking its certificate
    against the CA given with ssl_ca_certs; two nodes chat through it.
    """
    import trustme

    from tests.redis import freePort

    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1")
    caFile, keyFile, certFile = (
        tmp_path / "ca.pem",
        tmp_path / "key.pem",
        tmp_path / "cert.pem",
    )
    ca.cert_pem.write_to_path(str(caFile))
    issued.private_key_pem.write_to_path(str(keyFile))
    issued.cert_chain_pems[0].write_to_path(str(certFile))
    port = freePort()
    secure = RedisServer(
        tmp_path / "tls",
        "--port", "0", "--tls-port", str(port),
        "--tls-cert-file", str(certFile), "--tls-key-file", str(keyFile),
        "--tls-ca-cert-file", str(caFile), "--tls-auth-clients", "no",
        port=port,
    ).start()  # fmt: skip
    try:
        bus = f"rediss://127.0.0.1:{port}?ssl_ca_certs={caFile}"
        nodes = [node(processes, bus) for _ in range(2)]
        one, two = TcpMember(processes, nodes[0]), TcpMember(processes, nodes[1])
        send(one, ["over tls"])
        assert received(two, [one]) == {one.name: ["over tls", DONE]}
        untrusting = node(processes, f"rediss://127.0.0.1:{port}", joined=False)
        untrusting.output.waitForText(b"Cannot reach the bus", timeout=20)
    finally:
        secure.kill()


def test_history_comes_from_the_bus(processes: Processes, redis: RedisServer) -> None:
    """
    --history shows a client that joins the room's last lines, said on any
    node, also on a node that started after they were said.
    """
    first = node(processes, redis.url, "--history", "3")
    witness = TcpMember(processes, node(processes, redis.url))
    speaker = TcpMember(processes, first)
    send(speaker, ["one", "two", "three"])
    # Through the bus, so in its stream, before the later node starts.
    assert received(witness, [speaker])[speaker.name][-1] == DONE
    # Joins and leaves after the lines: more entries than --history, no lines.
    for _ in range(4):
        passer = TcpMember(processes, first)
        passer.sock.close()
        departure = f"* {passer.name} left"
        witness.lineUntil(departure.__eq__)
    later = node(processes, redis.url, "--history", "3")
    newcomer = TcpMember(processes, later)
    assert [newcomer.line() for _ in range(5)] == [
        "* the last 3 lines said here:",
        f"<{speaker.name}> two",
        f"<{speaker.name}> three",
        f"<{speaker.name}> {DONE}",
        "* (end of history)",
    ]


def test_web_clients_on_one_node_chat_with_tcp_clients_on_another(
    processes: Processes, redis: RedisServer
) -> None:
    """
    A WebSocket client of one node and a TCP client of another are in one
    room.
    """
    from websockets.sync.client import connect

    web = processes.server("--bus", redis.url, "--web", "0", listeners=2)
    web.output.waitForText(b"Joined the bus")
    other = node(processes, redis.url)
    tcp = TcpMember(processes, other)
    url = f"ws://127.0.0.1:{web.portOf('web')}/ws"
    with connect(url, proxy=None, open_timeout=10, compression=None) as browser:
        frames = [browser.recv(timeout=10) for _ in range(4)]
        assert str(frames[-1]).startswith("* you are ")
        name = welcomeIn(str(frames[-1])).name
        assert tcp.lineUntil(lambda line: "joined" in line) == f"* {name} joined"
        browser.send("hello from a browser on node one")
        assert tcp.lineUntil(lambda line: "browser" in line) == (
            f"<{name}> hello from a browser on node one"
        )
        tcp.send(b"hello from telnet on node two\r\n")
        for _ in range(10):
            frame = str(browser.recv(timeout=10))
            if "telnet" in frame:
                break
        assert frame == f"<{tcp.name}> hello from telnet on node two"


def test_redis_paused_past_the_node_timeout(
    processes: Processes, redis: RedisServer
) -> None:
    """
    Redis paused longer than --bus-node-timeout: whichever node comes back
    first counts the other gone, and the other, back in turn, announces its
    members again; nobody is left out of the room, and nobody is told of a
    departure without the return.
    """
    timeout = ("--bus-node-timeout", "1")
    nodes = [node(processes, redis.url, *timeout) for _ in range(2)]
    a, b = TcpMember(processes, nodes[0]), TcpMember(processes, nodes[1])
    a.lineUntil(lambda line: line.endswith(f"{b.name} joined"))
    redis.pause()
    try:
        for member in (a, b):
            member.lineUntil(lambda line: line.startswith("* lost contact"))
    finally:
        redis.resume()
    for member, other in ((a, b), (b, a)):
        member.lineUntil(lambda line: line.startswith("* back in contact"))
        member.send(b"/who\r\n")
        seen = []
        for _ in range(50):
            line = member.line()
            seen.append(line)
            if " here: " in line and line.startswith("* 2 here"):
                break
            if " here: " in line:
                member.send(b"/who\r\n")
        if f"* {other.name} left" in seen:
            assert (
                f"* {other.name} joined" in seen[seen.index(f"* {other.name} left") :]
            )
    send(a, ["after the long pause"])
    assert received(b, [a]) == {a.name: ["after the long pause", DONE]}


def test_one_name_for_one_member_while_redis_stalls(
    processes: Processes, redis: RedisServer
) -> None:
    """
    While Redis answers nothing, two members of one node ask for bob and
    BOB: one gets it, the other is told it is taken. Once they leave, the
    other node forgets them (nobody is left behind as a ghost) and the name
    is free again; the node logs no error.
    """
    nodes = [node(processes, redis.url) for _ in range(2)]
    a1, a2 = TcpMember(processes, nodes[0]), TcpMember(processes, nodes[0])
    b1 = TcpMember(processes, nodes[1])
    for member in (a1, a2):
        member.lineUntil(lambda line: line.endswith(f"{b1.name} joined"))
    redis.pause()
    try:
        a1.send(b"/nick bob\r\n")
        a2.send(b"/nick BOB\r\n")
        answers = [
            member.lineUntil(lambda line: line.startswith(("* you are now", "ERROR")))
            for member in (a1, a2)
        ]
        b1.lineUntil(lambda line: line.startswith("* lost contact"))
    finally:
        redis.resume()
    assert sorted(answers) == [
        "* you are now known as bob",
        "ERROR the name BOB is taken",
    ], answers
    for member in (a1, a2, b1):
        member.lineUntil(lambda line: line.startswith("* back in contact"))
    a1.sock.close()
    a2.sock.close()
    for _ in range(2):
        b1.lineUntil(lambda line: line.endswith(" left"))
    b1.send(b"/who\r\n")
    assert b1.lineUntil(lambda line: " here: " in line) == f"* 1 here: {b1.name}"
    b1.send(b"/nick bob\r\n")
    assert b1.lineUntil(lambda line: line.startswith(("* you are now", "ERROR"))) == (
        "* you are now known as bob"
    )
    log = nodes[0].output.text()
    assert "Traceback" not in log, log


def test_names_beyond_ascii_leave_no_ghosts(
    processes: Processes, redis: RedisServer
) -> None:
    """
    A client on a UNIX socket bound at a path ending in an upper-case
    non-ASCII letter (its address) joins and leaves again and again, under
    a name in upper case it chose (a name beyond ASCII is refused with one
    line): the room forgets it each time, on both nodes (one rule compares
    names, in Python and in Redis), so it never fills up with ghosts.
    """
    path = processes.directory / "chat.sock"
    nodes = [
        node(
            processes,
            redis.url,
            "--max-clients",
            "3",
            "--port",
            "0",
            "--port",
            f"unix:{path}",
        ),
        node(processes, redis.url, "--max-clients", "3"),
    ]
    watcher = TcpMember(processes, nodes[1])
    client = processes.directory / "x-Ä0"
    for _ in range(4):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(str(client))
            sock.settimeout(WAIT)
            sock.connect(str(path))
            welcome, _ = receiveWelcome(sock)
            assert welcome.peer.endswith("x-Ä0"), welcome
            sock.sendall("/nick XÄ0\r\n".encode())
            refused = receiveText(sock, b"ERROR ")
            assert b"ERROR a name uses letters, digits" in refused, refused
            sock.sendall(b"/nick X-AE0\r\n")
            receiveText(sock, b"* you are now known as X-AE0\r\n")
        finally:
            sock.close()
            client.unlink()
        watcher.lineUntil(lambda line: line == "* X-AE0 left")
    others = [TcpMember(processes, nodes[n]) for n in (0, 1)]
    others[1].send(b"/who\r\n")
    assert others[1].lineUntil(lambda line: " here: " in line).startswith("* 3 here")


def test_healthz_tells_when_the_bus_is_away(
    processes: Processes, redis: RedisServer
) -> None:
    """
    /healthz says ok while the node is in contact with the bus, and
    "degraded" (still 200: it serves its own clients) while it is not;
    /metrics says whether it is in contact, how far behind the slowest node
    is, what waits in its outbox, and how often it joined again.
    """
    import urllib.request

    server = processes.server("--bus", redis.url, "--metrics", "0", listeners=2)
    server.output.waitForText(b"Joined the bus")
    member = TcpMember(processes, server)
    base = f"http://127.0.0.1:{server.portOf('metrics')}"
    url = f"{base}/healthz"

    def health() -> tuple[int, str]:
        with urllib.request.urlopen(url, timeout=WAIT) as response:
            return response.status, response.read().decode()

    def busMetrics() -> dict[str, float]:
        with urllib.request.urlopen(f"{base}/metrics", timeout=WAIT) as response:
            text = response.read().decode()
        return {
            name: float(value)
            for name, value in re.findall(r"^(sockserve_bus_\w+)\S* (\S+)$", text, re.M)
        }

    assert health() == (200, "ok\n")
    assert busMetrics() == {
        "sockserve_bus_connected": 1.0,
        "sockserve_bus_lag_bytes": 0.0,
        "sockserve_bus_outbox_bytes": 0.0,
        "sockserve_bus_reconnects_total": 0.0,
    }
    redis.pause()
    try:
        member.lineUntil(lambda line: line.startswith("* lost contact"))
        status, text = health()
        member.say("said while the bus is away")
        away = busMetrics()
    finally:
        redis.resume()
    assert status == 200
    assert text.startswith("degraded: not in contact with the bus"), text
    assert away["sockserve_bus_connected"] == 0.0, away
    assert away["sockserve_bus_outbox_bytes"] > 0, away
    member.lineUntil(lambda line: line.startswith("* back in contact"))
    assert health() == (200, "ok\n")
    back = busMetrics()
    assert back["sockserve_bus_connected"] == 1.0, back
    assert back["sockserve_bus_reconnects_total"] == 1.0, back

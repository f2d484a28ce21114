"""
The bus through Redis Sentinel, end to end: a primary, two replicas and
three sentinels (all private, on loopback ports the system gave), real
C{twistd} nodes on a C{redis+sentinel://} address, raw TCP clients talking
at a steady rate while the primary is killed (SIGKILL) and a replica is
promoted.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.processes import Processes, Server, TcpMember
from tests.redis import SentinelGroup, TLSFiles, freePort

pytestmark = pytest.mark.e2e

DONE = "done"
# A failover: the sentinels' 500 ms to count the primary down, their
# election and the promotion, then the nodes' backoff (at most 1 s with
# sentinels) and rejoining; on a machine busy with other tests.
FAILOVER_WAIT = 30.0
# Lines each client says, and the seconds between two (a steady 40 a second).
LINES = 200
EVERY = 0.025
# The line after which the primary is killed.
KILL_AT = 50


@pytest.fixture
def sentinels(tmp_path: Path) -> Iterator[SentinelGroup]:
    group = SentinelGroup(tmp_path / "sentinel", replicas=2, downAfterMs=500)
    try:
        yield group.start()
    finally:
        group.close()


@dataclass
class Reader:
    """
    A thread reading all a member is sent, with when each line came, until
    C{sender} said L{DONE}.
    """

    member: TcpMember
    sender: str
    lines: list[tuple[float, str]] = field(default_factory=list)
    error: BaseException | None = None

    def __post_init__(self) -> None:
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for _ in range(100_000):
                line = self.member.line(FAILOVER_WAIT)
                self.lines.append((time.monotonic(), line))
                if line == f"<{self.sender}> {DONE}":
                    return
            raise AssertionError("no end in 100000 lines")
        except BaseException as error:
            self.error = error

    def join(self) -> list[tuple[float, str]]:
        """
        Wait for the end; return every line read, with when it came.
        """
        self.thread.join(FAILOVER_WAIT * 2)
        assert not self.thread.is_alive(), f"{self.member.name} still reads"
        if self.error is not None:
            raise AssertionError(
                f"{self.member.name} read {[line for _, line in self.lines][-20:]}"
            ) from self.error
        return self.lines

    def said(self, sender: str) -> list[tuple[float, str]]:
        """
        The lines of C{sender} read, with when each came.
        """
        prefix = f"<{sender}> "
        return [
            (when, line.removeprefix(prefix))
            for when, line in self.lines
            if line.startswith(prefix)
        ]


def node(processes: Processes, bus: str, *options: str) -> Server:
    """
    Start a chat node on C{bus}; wait until it joined the bus.
    """
    server = processes.server("--bus", bus, *options)
    server.output.waitForText(b"Joined the bus")
    return server


def test_primary_killed_mid_run_loses_and_doubles_no_line(
    processes: Processes, sentinels: SentinelGroup
) -> None:
    """
    Two nodes on a sentinel address (its first sentinel not there: the
    next is asked), a client on each saying a line every 25 ms; the primary
    is killed mid-run: every line said reaches the other client once, in
    order; each client is told once that contact was lost and once that it
    is back, and never that lines may be missing.
    """
    old = sentinels.primary.port
    absent = freePort()
    bus = sentinels.url.replace("://", f"://127.0.0.1:{absent},", 1)
    nodes = [node(processes, bus) for _ in range(2)]
    a, b = TcpMember(processes, nodes[0]), TcpMember(processes, nodes[1])
    a.lineUntil(lambda line: line.endswith(f"{b.name} joined"))
    readers = {a.name: Reader(b, a.name), b.name: Reader(a, b.name)}
    sentAt: dict[str, list[float]] = {a.name: [], b.name: []}
    killedAt = 0.0
    pace = threading.Event()
    start = time.monotonic()
    for n in range(LINES):
        if n == KILL_AT:
            sentinels.primary.kill()
            killedAt = time.monotonic()
        for member in (a, b):
            member.say(f"{member.name} {n}")
            sentAt[member.name].append(time.monotonic())
        # A steady rate: the next line's time, not a wait for anything.
        pace.wait(max(0.0, start + (n + 1) * EVERY - time.monotonic()))
    for member in (a, b):
        member.say(DONE)
    new = sentinels.waitForFailover()
    assert new != old
    for sender, reader in readers.items():
        reader.join()
        said = [line for _, line in reader.said(sender)]
        assert said == [*(f"{sender} {n}" for n in range(LINES)), DONE]
    for reader in readers.values():
        notices = [line for _, line in reader.lines if line.startswith("* ")]
        assert [line for line in notices if "contact" in line] == [
            "* lost contact with the other servers; you can still talk with "
            "those on this server, and your lines will reach the others once "
            "contact is back",
            "* back in contact with the other servers",
        ], notices
        assert not [line for line in notices if "missing" in line], notices
    # The first line said after the kill to reach the other node.
    recovered = min(
        when
        for sender, reader in readers.items()
        for (when, _), sent in zip(reader.said(sender), sentAt[sender], strict=False)
        if sent > killedAt
    )
    print(
        f"\nprimary killed to first line across nodes: "
        f"{recovered - killedAt:.2f} s (down-after-milliseconds "
        f"{sentinels.downAfterMs})"
    )
    for server in nodes:
        log = server.output.text()
        assert log.count("Back in contact with the bus") >= 1, log
        assert f"primary 127.0.0.1:{new}" in log, log


def say(member: TcpMember, lines: list[str]) -> None:
    """
    Send C{lines}, then the end marker.
    """
    member.send("".join(f"{line}\r\n" for line in [*lines, DONE]).encode())


def heard(member: TcpMember, sender: TcpMember) -> list[str]:
    """
    The lines of C{sender} C{member} reads, up to its end marker.
    """
    got = []
    prefix = f"<{sender.name}> "
    for _ in range(1000):
        line = member.line(FAILOVER_WAIT)
        if line.startswith(prefix):
            got.append(line.removeprefix(prefix))
            if got[-1] == DONE:
                return got
    raise AssertionError(f"no end from {sender.name} in 1000 lines: {got}")


def test_lines_no_replica_had_are_published_again_after_the_failover(
    processes: Processes, sentinels: SentinelGroup
) -> None:
    """
    Lines written while no replica could take them (the replicas stopped
    and cut from the primary) reach the other node at once but wait in
    their sender's backlog; the primary killed and a replica without them
    promoted, they are published again: the other node's client does not
    see them twice, and a node started after the failover shows them in
    its history. A private message sent meanwhile reaches its person once,
    and its sender is told once it was delivered.
    """
    nodes = [node(processes, sentinels.url, "--history", "20") for _ in range(2)]
    a, b = TcpMember(processes, nodes[0]), TcpMember(processes, nodes[1])
    a.lineUntil(lambda line: line.endswith(f"{b.name} joined"))
    for replica in sentinels.replicas:
        replica.pause()
    try:
        sentinels.primary.command("CLIENT", "KILL", "TYPE", "replica")
        say(a, ["one", "two"])
        assert heard(b, a) == ["one", "two", DONE]
        a.say(f"/msg {b.name} secret")
        assert b.lineUntil(lambda line: "secret" in line) == f"*{a.name}* secret"
        nodes[0].output.waitForText(b"replicas asked for (--bus-replicas)")
        sentinels.primary.kill()
    finally:
        for replica in sentinels.replicas:
            replica.resume()
    sentinels.waitForFailover(FAILOVER_WAIT)
    seen = {
        member.name: member.linesUntil(
            lambda line: line.startswith("* back in contact"), FAILOVER_WAIT
        )
        for member in (a, b)
    }
    say(a, ["after"])
    seen[b.name] += b.linesUntil(lambda line: line == f"<{a.name}> {DONE}")
    assert [line for line in seen[b.name] if line.startswith("<")] == [
        f"<{a.name}> after",
        f"<{a.name}> {DONE}",
    ]
    for member in (a, b):
        member.say("/who")
        seen[member.name] += member.linesUntil(lambda line: " here: " in line)
    assert [line for line in seen[a.name] if line.startswith("-> ")] == [
        f"-> *{b.name}* secret"
    ], seen[a.name]
    assert [line for line in seen[b.name] if "secret" in line] == [], seen[b.name]
    later = node(processes, sentinels.url, "--history", "20")
    newcomer = TcpMember(processes, later)
    history = newcomer.linesUntil(lambda line: line == "* (end of history)")
    assert [line for line in history if line.startswith("<")] == [
        f"<{a.name}> {line}" for line in ("one", "two", DONE, "after", DONE)
    ], history


def test_primary_paused_past_the_failover_comes_back_as_a_replica(
    processes: Processes, sentinels: SentinelGroup
) -> None:
    """
    The primary paused (SIGSTOP) past the failover: the nodes give up on it
    (3 s without an answer), follow the sentinels to the new primary, and
    publish what was said meanwhile; the old primary, let go on (a stale
    primary until the sentinels make it a replica), is not used again; every
    line reaches the other
    client once and in order, and each client is told once that contact was
    lost and once that it is back.
    """
    old = sentinels.primary.port
    nodes = [node(processes, sentinels.url) for _ in range(2)]
    a, b = TcpMember(processes, nodes[0]), TcpMember(processes, nodes[1])
    a.lineUntil(lambda line: line.endswith(f"{b.name} joined"))
    sentinels.primary.pause()
    try:
        say(a, ["while paused"])
        say(b, ["meanwhile"])
        new = sentinels.waitForFailover(FAILOVER_WAIT)
        for member in (a, b):
            member.lineUntil(
                lambda line: line.startswith("* back in contact"), FAILOVER_WAIT
            )
    finally:
        sentinels.primary.resume()
    # The old primary goes on, still a primary in its own eyes until the
    # sentinels make it a replica: the nodes stay with the new one.
    say(a, ["after"])
    say(b, ["after too"])
    assert heard(b, a) == ["while paused", DONE]
    assert heard(b, a) == ["after", DONE]
    assert heard(a, b) == ["meanwhile", DONE]
    assert heard(a, b) == ["after too", DONE]
    for member in (a, b):
        member.say("/who")
        notices = member.linesUntil(lambda line: " here: " in line)
        assert not [line for line in notices if "contact" in line], notices
    for server in nodes:
        log = server.output.text()
        assert log.count("Lost contact with the bus") == 1, log
        assert log.count("Back in contact with the bus") == 1, log
        assert f"(primary 127.0.0.1:{old})" in log.split("Lost contact")[0], log
        back = log.split("Back in contact with the bus")[1]
        assert back.startswith(f" at {sentinels.url} (primary 127.0.0.1:{new})"), log
        assert f"primary 127.0.0.1:{old}" not in back, log


def test_sentinels_and_primary_over_tls(processes: Processes, tmp_path: Path) -> None:
    """
    rediss+sentinel:// speaks TLS to the sentinels and to the primary they
    name, checking their certificates against the CA given with
    ssl_ca_certs; two nodes chat through it.
    """
    import trustme

    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1")
    files = TLSFiles(tmp_path / "ca.pem", tmp_path / "cert.pem", tmp_path / "key.pem")
    ca.cert_pem.write_to_path(str(files.ca))
    issued.cert_chain_pems[0].write_to_path(str(files.cert))
    issued.private_key_pem.write_to_path(str(files.key))
    group = SentinelGroup(tmp_path / "sentinel", replicas=1, tls=files)
    try:
        group.start()
        assert group.url.startswith("rediss+sentinel://")
        nodes = [node(processes, group.url) for _ in range(2)]
        a, b = TcpMember(processes, nodes[0]), TcpMember(processes, nodes[1])
        a.lineUntil(lambda line: line.endswith(f"{b.name} joined"))
        say(a, ["over tls"])
        assert heard(b, a) == ["over tls", DONE]
        for server in nodes:
            log = server.output.text()
            assert f"(primary 127.0.0.1:{group.primary.tlsPort})" in log, log
        untrusting = processes.server("--bus", group.url.partition("?")[0])
        untrusting.output.waitForText(b"Cannot reach the bus", timeout=20)
    finally:
        group.close()

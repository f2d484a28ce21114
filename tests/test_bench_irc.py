"""
The benchmark's chat with IRC members: the load generator speaking IRC (to a
small IRC relay written here, which can misbehave, and to sockserve's
C{--irc} and Debian's ngircd as the harness starts them), the mixed room of
TCP, WebSocket and IRC clients, the ngircd peer's configuration, and the
report setting the IRC rooms beside the TCP room and ngircd's.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from bench import servers
from bench.build import buildLoadGenerator
from bench.report import (
    ircComparison,
    markdown,
    summarise,
    websocketComparison,
)
from bench.runner import (
    Measurement,
    Placement,
    keepLogs,
    measureLoad,
    targetArgs,
)
from bench.scenarios import QUICK, Settings, allScenarios, ircScenario
from bench.servers import (
    CHAT_IRC,
    CHAT_MIXED,
    IRC_CHANNEL,
    IRC_PORTS,
    NGIRCD,
    SOCKSERVE,
    Node,
    RunningServer,
    ngircdConfiguration,
    serverNamed,
    startServer,
)

WAIT = 60.0
"""Seconds a load generator run or a relay's start may take, at most."""

SMALL = Settings(
    "test",
    rounds=1,
    idleRounds=1,
    warmupMs=50,
    durationMs=100,
    chatLines=50,
    idleClients=10,
)
"""Settings small enough for a test: 50 lines a sender."""


@pytest.fixture(scope="module")
def loadgen() -> Path:
    """
    The load generator, compiled from this tree.
    """
    return buildLoadGenerator()


def runLoad(loadgen: Path, *args: str) -> dict[str, Any]:
    """
    Run the load generator with C{args} and return its JSON report.
    """
    result = subprocess.run(
        [str(loadgen), *args],
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return report


@dataclass
class Relay:
    """
    A small IRC server for one channel, on asyncio in a thread of its own:
    it registers a client at C{USER} (C{001} with its nick), answers
    C{JOIN} with the C{JOIN}, C{353} and C{366}, and relays each
    C{PRIVMSG} to the channel to its other members as
    C{:nick!user@relay PRIVMSG #channel :text}.

    @ivar ping: send each client C{PING :tokenN} once it is registered.
    @ivar misname: relay every line as from C{somebody}.
    @ivar refuseJoin: answer C{JOIN} with C{471} instead.
    @ivar pongs: the C{PONG} lines received.
    """

    ping: bool = False
    misname: bool = False
    refuseJoin: bool = False
    pongs: list[str] = field(default_factory=list)
    port: int = 0

    def __post_init__(self) -> None:
        self._members: dict[str, asyncio.StreamWriter] = {}
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._client, "127.0.0.1", 0)
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        self._server.close()
        self._loop.run_until_complete(self._server.wait_closed())
        self._loop.close()

    def start(self) -> Relay:
        """
        Start serving, and wait (bounded) until it listens.
        """
        self._thread.start()
        assert self._ready.wait(WAIT), "the relay did not start"
        return self

    def stop(self) -> None:
        """
        Stop serving and wait (bounded) for the thread to end.
        """
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(WAIT)
        assert not self._thread.is_alive()

    async def _client(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        nick = ""
        try:
            while line := await reader.readline():
                words = line.decode().rstrip("\r\n").split(" ", 2)
                verb = words[0]
                if verb == "NICK":
                    nick = words[1]
                elif verb == "USER":
                    writer.write(f":relay 001 {nick} :Welcome\r\n".encode())
                    if self.ping:
                        writer.write(f"PING :token-{nick}\r\n".encode())
                elif verb == "PONG":
                    self.pongs.append(line.decode().rstrip("\r\n"))
                elif verb == "JOIN" and self.refuseJoin:
                    refusal = f":relay 471 {nick} {words[1]} :Cannot join channel"
                    writer.write(f"{refusal}\r\n".encode())
                elif verb == "JOIN":
                    self._members[nick] = writer
                    joined = f":{nick}!{nick}@relay JOIN {words[1]}\r\n".encode()
                    for member in self._members.values():
                        member.write(joined)
                    names = " ".join(self._members)
                    writer.write(
                        f":relay 353 {nick} = {words[1]} :{names}\r\n"
                        f":relay 366 {nick} {words[1]} :End of NAMES list\r\n".encode()
                    )
                elif verb == "PRIVMSG":
                    source = "somebody" if self.misname else nick
                    relayed = (
                        f":{source}!{source}@relay PRIVMSG {words[1]} {words[2]}\r\n"
                    ).encode()
                    for other, member in self._members.items():
                        if other != nick:
                            member.write(relayed)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            self._members.pop(nick, None)
            writer.close()


@pytest.fixture
def relay() -> Iterator[Relay]:
    """
    A well-behaved relay.
    """
    server = Relay().start()
    yield server
    server.stop()


def ircArgs(port: int, clients: int = 5, lines: int = 50) -> list[str]:
    """
    The load generator's options for a room of IRC clients on C{port}.
    """
    return [
        "chat",
        "--port",
        str(port),
        "--irc",
        IRC_CHANNEL,
        "--clients",
        str(clients),
        "--senders",
        str(clients),
        "--lines",
        str(lines),
        "--size",
        "64",
    ]


# The load generator speaking IRC


def test_loadgenDeliversOverIRC(loadgen: Path, relay: Relay) -> None:
    """
    Every client registers, joins and sends; each of the
    C{senders x lines x (clients - 1)} deliveries is counted, timed and
    named after its sender (each client's nick comes from its 001).
    """
    report = runLoad(loadgen, *ircArgs(relay.port))
    assert report["error_sample"] == ""
    assert report["errors"] == 0
    assert report["transport"] == "irc"
    assert report["expected"] == 5 * 50 * 4
    assert report["completed"] == report["expected"]
    assert report["missing"] == 0
    assert report["named"] == 5
    assert report["wrong_names"] == 0
    assert report["p99_us"] > 0


def test_loadgenAnswersPing(loadgen: Path) -> None:
    """
    A C{PING} gets a C{PONG} with its token, and is no error.
    """
    relay = Relay(ping=True).start()
    try:
        report = runLoad(loadgen, *ircArgs(relay.port, clients=3, lines=5))
    finally:
        relay.stop()
    assert report["errors"] == 0, report["error_sample"]
    assert report["irc_pings"] == 3
    assert sorted(relay.pongs) == [f"PONG :token-lg{i}" for i in range(3)]


def test_loadgenChecksTheSendersNick(loadgen: Path) -> None:
    """
    A delivery whose source is not its sender's nick is counted apart.
    """
    relay = Relay(misname=True).start()
    try:
        report = runLoad(loadgen, *ircArgs(relay.port, clients=3, lines=5))
    finally:
        relay.stop()
    assert report["wrong_names"] == 3 * 5 * 2
    assert "came as 'somebody'" in report["error_sample"]


def test_loadgenRefusedJoin(loadgen: Path) -> None:
    """
    A numeric error instead of the channel is an error, and the run ends
    without waiting for a client that will never be in the room.
    """
    relay = Relay(refuseJoin=True).start()
    try:
        report = runLoad(loadgen, *ircArgs(relay.port, clients=3, lines=5))
    finally:
        relay.stop()
    assert report["errors"] >= 3
    assert "471" in report["error_sample"]
    assert report["completed"] == 0


def test_loadgenRefusesBadOptions(loadgen: Path) -> None:
    """
    A channel name it could not put on an IRC line, and a mix without
    every transport's port, are refused before anything connects.
    """
    for args in (
        ["chat", "--port", "1", "--irc", "bad name"],
        ["chat", "--port", "1", "--irc", "#lab"],
        ["chat", "--port", "1", "--mix", "--ws", "/ws", "--irc", "lab"],
        ["chat", "--port", "1", "--ws", "/ws", "--irc", "lab"],
        ["chat", "--port", "1", "--irc", "lab", "--rooms", "2"],
    ):
        result = subprocess.run(
            [str(loadgen), *args],
            capture_output=True,
            text=True,
            timeout=WAIT,
            check=False,
        )
        assert result.returncode == 2, args
        assert result.stderr.startswith("loadgen: "), args


# The servers as the harness starts them


def test_sockserveIRCRoom(loadgen: Path, tmp_path: Path) -> None:
    """
    sockserve's room of IRC clients, started and measured as the harness
    does: every delivery arrives, named, and the figure is valid.
    """
    scenario = ircScenario(SMALL, 10, 10, 0, mixed=False)
    server = startServer(serverNamed(SOCKSERVE), CHAT_IRC, None, tmp_path)
    try:
        m = measureLoad(loadgen, scenario, server, Placement(None, None), 0)
    finally:
        server.stop()
    assert m.problems == []
    assert m.valid
    assert m.raw["transport"] == "irc"
    assert m.raw["completed"] == 10 * 50 * 9
    assert m.raw["named"] == 10


def test_sockserveMixedRoom(loadgen: Path, tmp_path: Path) -> None:
    """
    sockserve's room of TCP, WebSocket and IRC clients in turn: each
    client's lines reach the others on every transport, named as their
    sender (guestN from a welcome, lgN from a 001).
    """
    scenario = ircScenario(SMALL, 10, 10, 64, mixed=True)
    server = startServer(serverNamed(SOCKSERVE), CHAT_MIXED, None, tmp_path)
    try:
        args = targetArgs(server)
        m = measureLoad(loadgen, scenario, server, Placement(None, None), 0)
    finally:
        server.stop()
    assert args[args.index("--ws-port") + 1] != args[args.index("--port") + 1]
    assert "--irc-port" in args
    assert m.problems == []
    assert m.valid
    assert m.raw["transport"] == "mixed"
    assert m.raw["completed"] == 10 * 50 * 9
    assert m.raw["named"] == 10


def test_ngircdRoom(loadgen: Path, tmp_path: Path) -> None:
    """
    ngircd, Debian's, on its private configuration: the same room of IRC
    clients as sockserve's, unpaced, all its deliveries, no penalty.
    """
    spec = serverNamed(NGIRCD)
    assert servers.available(spec) is None
    scenario = ircScenario(SMALL, 10, 10, 0, mixed=False)
    server = startServer(spec, CHAT_IRC, None, tmp_path)
    try:
        assert server.port not in IRC_PORTS
        m = measureLoad(loadgen, scenario, server, Placement(None, None), 0)
    finally:
        server.stop()
    assert m.problems == []
    assert m.valid
    assert m.raw["completed"] == 10 * 50 * 9
    configuration = (tmp_path / f"{NGIRCD}-{CHAT_IRC}" / "ngircd.conf").read_text()
    assert f"Ports = {server.port}\n" in configuration


# The harness's parts


def test_ngircdConfiguration(tmp_path: Path) -> None:
    """
    The peer's configuration: loopback only, on the port given, no
    penalties, no limit per address, nothing looked up, root given up when
    started as root; never on IRC's own ports.
    """
    text = ngircdConfiguration(40000, tmp_path, root=True)
    for line in (
        "Listen = 127.0.0.1",
        "Ports = 40000",
        "MaxPenaltyTime = 0",
        "MaxConnectionsIP = 0",
        "DNS = no",
        "Ident = no",
        "PAM = no",
        f"IncludeDir = {tmp_path}",
        "ServerUID = 65534",
    ):
        assert f"\t{line}\n" in text
    assert "ServerUID" not in ngircdConfiguration(40000, tmp_path, root=False)
    for port in IRC_PORTS:
        with pytest.raises(ValueError, match="system IRC server"):
            ngircdConfiguration(port, tmp_path, root=False)


def test_ircPortNeverIRCs(monkeypatch: pytest.MonkeyPatch) -> None:
    """
    A port for an IRC server is never 6667 or 6697, even when the system
    offers one.
    """
    offered = iter([6667, 6697, 40001])
    monkeypatch.setattr(servers, "freePort", lambda: next(offered))
    assert servers.ircPort() == 40001


def test_commands(tmp_path: Path) -> None:
    """
    sockserve serves the IRC room on C{--irc}, the mixed room on C{--web}
    and C{--irc} besides its line port; ngircd runs in the foreground on
    its configuration.
    """
    sockserve = serverNamed(SOCKSERVE)
    irc = sockserve.command(CHAT_IRC, 0, ircPort=40002)
    assert irc[irc.index("--irc") + 1] == "40002"
    assert irc[irc.index("--mode") + 1] == "chat"
    assert "--web" not in irc
    mixed = sockserve.command(CHAT_MIXED, 0, webPort=40003, ircPort=40004)
    assert mixed[mixed.index("--web") + 1] == "40003"
    assert mixed[mixed.index("--irc") + 1] == "40004"
    ngircd = serverNamed(NGIRCD).command(
        CHAT_IRC, 40005, configuration=tmp_path / "ngircd.conf"
    )
    assert ngircd[1:] == ["-n", "-f", str(tmp_path / "ngircd.conf")]


def test_targetArgsOfMixedRoom() -> None:
    """
    The load generator is told a mixed room's three ports.
    """
    process: Any = SimpleNamespace(pid=4321)
    node = Node(process, 40006, Path("log"), wsPort=40007, ircPort=40008)
    server = RunningServer(serverNamed(SOCKSERVE), CHAT_MIXED, [node])
    assert targetArgs(server) == [
        "--port",
        "40006",
        "--ws-port",
        "40007",
        "--irc-port",
        "40008",
        "--server-pid",
        "4321",
    ]


def test_scenarios() -> None:
    """
    The IRC rooms and the mixed rooms take the shapes of the TCP rooms,
    each beside its TCP room; only sockserve serves the mixed room, and
    ngircd serves only the IRC room.
    """
    byName = {s.name: s for s in allScenarios(QUICK)}
    for shape in ("10x10", "10x10-w64", "100x5", "100x5-w64"):
        irc = byName[f"chat-irc-{shape}"]
        mixed = byName[f"chat-mixed-{shape}"]
        assert irc.overTcp == mixed.overTcp == f"chat-{shape}"
        assert f"chat-{shape}" in byName
        assert (irc.group, mixed.group) == (CHAT_IRC, CHAT_MIXED)
        assert irc.loadArgs[-2:] == ("--irc", IRC_CHANNEL)
        assert mixed.loadArgs[-5:] == ("--mix", "--ws", "/ws", "--irc", IRC_CHANNEL)
        tcp = byName[f"chat-{shape}"].loadArgs
        assert irc.loadArgs[: len(tcp)] == tcp
    assert CHAT_MIXED in serverNamed(SOCKSERVE).modes
    assert serverNamed(NGIRCD).modes == (CHAT_IRC,)


def _measured(
    scenario: str, server: str, values: list[float], cpuPct: float, p99: float
) -> list[Measurement]:
    return [
        Measurement(
            scenario,
            server,
            index,
            value=value,
            p50Us=p99 / 2,
            p99Us=p99,
            loadgenCpu=20.0,
            serverCpu=cpuPct,
            valid=True,
        )
        for index, value in enumerate(values)
    ]


def test_ircComparison() -> None:
    """
    Each IRC room is set beside sockserve's TCP room of the same shape and
    beside ngircd's, by deliveries/s and by CPU per delivery; a mixed room
    beside the TCP room only; neither is taken for a WebSocket room.
    """
    scenarios = allScenarios(SMALL)
    measurements = (
        _measured("chat-10x10", SOCKSERVE, [1e6, 2e6, 3e6], 100.0, 1000.0)
        + _measured("chat-irc-10x10", SOCKSERVE, [2e5, 4e5, 3e5], 90.0, 8000.0)
        + _measured("chat-irc-10x10", NGIRCD, [6e5, 5e5, 7e5], 45.0, 2000.0)
        + _measured("chat-mixed-10x10", SOCKSERVE, [5e5, 6e5, 4e5], 100.0, 4000.0)
    )
    cells = summarise(measurements)
    chosen = [serverNamed(SOCKSERVE), serverNamed(NGIRCD)]
    rows = {row["room"]: row for row in ircComparison(scenarios, chosen, cells)}
    assert set(rows) == {"chat-irc-10x10", "chat-mixed-10x10"}
    irc = rows["chat-irc-10x10"]
    assert irc["over_tcp"] == "chat-10x10"
    assert irc["sockserve"]["median"] == 3e5
    assert (irc["sockserve"]["min"], irc["sockserve"]["max"]) == (2e5, 4e5)
    assert irc["sockserve"]["p99_us"] == 8000.0
    assert irc[NGIRCD]["median"] == 6e5
    assert irc["sockserve_over_ngircd"]["ratio"] == pytest.approx(0.5)
    assert irc["sockserve_over_tcp"]["ratio"] == pytest.approx(0.15)
    # CPU per delivery: 0.9 / 3e5 s against 0.45 / 6e5 s (at the median).
    assert irc["sockserve"]["cpu_us_per_delivery"] == pytest.approx(3.0)
    assert irc[NGIRCD]["cpu_us_per_delivery"] == pytest.approx(0.75)
    assert irc["sockserve_over_ngircd_by_cpu"] == pytest.approx(0.25)
    mixed = rows["chat-mixed-10x10"]
    assert mixed[NGIRCD] is None
    assert mixed["sockserve_over_tcp"]["ratio"] == pytest.approx(0.25)
    websocket = websocketComparison(scenarios, chosen, cells)
    assert websocket
    assert all(row["room"].startswith("chat-ws-") for row in websocket)
    report = markdown(scenarios, chosen, cells, "# header")
    assert "### Chat with IRC members beside TCP and ngircd" in report
    assert "| chat-irc-10x10 (vs chat-10x10) |" in report
    assert "0.50x (0.25x)" in report


def test_ngircdRefusedWhereMissing(monkeypatch: pytest.MonkeyPatch) -> None:
    """
    Without ngircd the suite says which package brings it.
    """
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    assert servers.ngircdProgram() is None
    assert servers.available(serverNamed(NGIRCD)) == (
        "ngircd is not installed (Debian package ngircd)"
    )


def test_keepLogs(tmp_path: Path) -> None:
    """
    A round with a problem keeps its server's log as it was then, named
    after the round and the scenario, and says where.
    """
    log = tmp_path / "ngircd-chat-irc.log"
    log.write_text("Shutting down connection 7 (Write buffer space exhausted)\n")
    process: Any = SimpleNamespace(pid=4321)
    server = RunningServer(serverNamed(NGIRCD), CHAT_IRC, [Node(process, 1, log)])
    m = Measurement("chat-irc-100x5", NGIRCD, 4)
    kept = keepLogs(server, m)
    assert kept == [tmp_path / "ngircd-chat-irc-round5-chat-irc-100x5.log"]
    log.write_text("the next start\n")
    assert "exhausted" in kept[0].read_text()
    missing = RunningServer(
        serverNamed(NGIRCD), CHAT_IRC, [Node(process, 1, tmp_path / "none.log")]
    )
    assert keepLogs(missing, m) == []

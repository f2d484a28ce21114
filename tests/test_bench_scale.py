"""
The scale scenario (C{python -m bench.scale}): its settings, the descriptor
limit it raises, what it reads from C{/proc/net/sockstat}, its report, and
one small run of the harness, the load generator's C{scale} mode and a real
sockserve.
"""

from __future__ import annotations

import dataclasses
import os
import resource
import subprocess
from pathlib import Path

import pytest

from bench import scale
from bench.build import buildLoadGenerator
from bench.scale import (
    ScaleResult,
    ScaleSettings,
    coreTimes,
    formatReport,
    loadCommand,
    parseArguments,
    raiseDescriptorLimit,
    serverCommand,
    tcpSocketMemory,
    tellToGoOn,
)

SOCKSTAT = """\
sockets: used 40120
TCP: inuse 39785 orphan 0 tw 12 alloc 39790 mem 410
UDP: inuse 0 mem 0
"""


def settings() -> ScaleSettings:
    """
    The default settings, 100,000 clients, with one load generator (as the
    scenario was before there could be several).
    """
    return parseArguments(["--generators", "1"])


def test_defaults() -> None:
    """
    By default, 100,000 clients in 1,000 rooms of 100, one sender a room,
    from 10 source addresses (10,000 each).
    """
    s = parseArguments([])
    assert (s.clients, s.rooms, s.roomSize, s.senders, s.sources) == (
        100_000,
        1_000,
        100,
        1_000,
        10,
    )
    assert (s.duration, s.interval, s.settle) == (30.0, 1.0, 10.0)


def test_derivedFromClients() -> None:
    """
    Rooms, senders and sources follow C{--clients} unless given.
    """
    s = parseArguments(["--clients", "10000"])
    assert (s.rooms, s.senders, s.sources) == (100, 100, 1)
    s = parseArguments(["--clients", "150", "--rooms", "3", "--sources", "4"])
    assert (s.rooms, s.roomSize, s.senders, s.sources) == (3, 50, 3, 4)
    assert parseArguments(["--clients", "50"]).rooms == 1


@pytest.mark.parametrize(
    "argv",
    [
        ["--clients", "1"],
        ["--clients", "10", "--rooms", "6"],
        ["--sources", "251"],
        ["--senders", "0"],
        ["--duration", "0.5"],
        ["--size", "47"],
        ["--concurrency", "0"],
    ],
)
def test_badArguments(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """
    Settings the scenario cannot run with are refused with a usage error.
    """
    with pytest.raises(SystemExit) as exit:
        parseArguments(argv)
    assert exit.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_descriptorLimitRaised(monkeypatch: pytest.MonkeyPatch) -> None:
    """
    The limit is raised to what is wanted (soft and hard) when allowed.
    """
    calls: list[tuple[int, int]] = []
    monkeypatch.setattr(resource, "getrlimit", lambda kind: (1024, 20_000))
    monkeypatch.setattr(
        resource, "setrlimit", lambda kind, limits: calls.append(limits)
    )
    assert raiseDescriptorLimit(101_024) == (101_024, None)
    assert calls == [(101_024, 101_024)]


def test_descriptorLimitNotRaised(monkeypatch: pytest.MonkeyPatch) -> None:
    """
    When the hard limit may not be raised, the soft limit goes up to it and
    the reason is given.
    """
    calls: list[tuple[int, int]] = []

    def setrlimit(kind: int, limits: tuple[int, int]) -> None:
        if limits[1] > 20_000:
            raise ValueError("not allowed to raise maximum limit")
        calls.append(limits)

    monkeypatch.setattr(resource, "getrlimit", lambda kind: (1024, 20_000))
    monkeypatch.setattr(resource, "setrlimit", setrlimit)
    limit, problem = raiseDescriptorLimit(101_024)
    assert limit == 20_000
    assert calls == [(20_000, 20_000)]
    assert problem is not None
    assert "20,000" in problem
    assert "CAP_SYS_RESOURCE" in problem


def test_descriptorLimitEnough(monkeypatch: pytest.MonkeyPatch) -> None:
    """
    A limit already high enough is left alone.
    """
    monkeypatch.setattr(resource, "getrlimit", lambda kind: (200_000, 200_000))
    monkeypatch.setattr(resource, "setrlimit", pytest.fail)
    assert raiseDescriptorLimit(101_024) == (200_000, None)


def test_sockstat() -> None:
    """
    The TCP sockets in use and their memory (pages) are read from
    C{/proc/net/sockstat}; a text without them is an error.
    """
    inUse, memory = tcpSocketMemory(SOCKSTAT)
    assert inUse == 39_785
    assert memory == 410 * resource.getpagesize()
    with pytest.raises(ValueError, match="no TCP line"):
        tcpSocketMemory("UDP: inuse 0 mem 0\n")


def test_coreTimes() -> None:
    """
    A core's busy time is all but its idle and iowait ticks (steal
    included: time the core was not this machine's).
    """
    stat = (
        "cpu  30 0 10 100 5 0 1 4 0 0\n"
        "cpu0 10 0 5 50 2 0 1 2 0 0\n"
        "cpu1 20 0 5 50 3 0 0 2 0 0\n"
    )
    assert coreTimes(stat, 0) == (18, 70)
    assert coreTimes(stat, 1) == (27, 80)
    with pytest.raises(ValueError, match="no cpu2 line"):
        coreTimes(stat, 2)


def test_tellToGoOnAGoneLoadGenerator() -> None:
    """
    Telling a load generator that is gone (its stdin's reader closed) to
    go on raises nothing: its missing report says what happened.
    """
    reader, writer = os.pipe()
    os.close(reader)
    with os.fdopen(writer, "wb", buffering=0) as stdin:
        tellToGoOn(stdin)


def test_commands() -> None:
    """
    The server has room for a room of 100 and for the members arriving
    before their C{/join}, and rooms for everyone; the load generator holds
    its connections at each phase for the harness.
    """
    s = parseArguments(["--generators", "1"])
    command = serverCommand(s)
    assert "--max-clients=266" in command
    assert "--max-rooms=1010" in command
    load = loadCommand(
        Path("/bin/loadgen"), s, {"tcp": 5000, "ws": 5001, "irc": 5002}, 42
    )
    assert load[:2] == ["/bin/loadgen", "scale"]
    for option, value in [
        ("--clients", "100000"),
        ("--rooms", "1000"),
        ("--senders", "1000"),
        ("--sources", "10"),
        ("--interval-ms", "1000"),
        ("--duration", "30000"),
        ("--server-pid", "42"),
    ]:
        assert load[load.index(option) + 1] == value
    assert "--hold" in load
    assert "--ws" not in load
    assert "--web=0" not in command
    assert not any(part.startswith("--reactor") for part in command)


def test_commandOnAnotherReactor() -> None:
    """
    --reactor is twistd's, given before the plugin's name.
    """
    command = serverCommand(dataclasses.replace(settings(), reactor="epoll"))
    assert command.index("--reactor=epoll") < command.index("sockserve")


def test_commandsWebSocket() -> None:
    """
    WebSocket members need the server's web listener, and the load
    generator's C{--ws}.
    """
    s = parseArguments(["--transport", "ws"])
    assert "--web=0" in serverCommand(s)
    load = loadCommand(
        Path("/bin/loadgen"), s, {"tcp": 5000, "ws": 5001, "irc": 5002}, 42
    )
    assert load[load.index("--ws") + 1] == "/ws"
    assert load[load.index("--port") + 1] == "5001"
    s = parseArguments(["--transport", "irc"])
    assert "--irc=0" in serverCommand(s)
    load = loadCommand(
        Path("/bin/loadgen"), s, {"tcp": 5000, "ws": 5001, "irc": 5002}, 42
    )
    assert load[load.index("--irc") + 1] == "room"
    assert load[load.index("--port") + 1] == "5002"
    s = parseArguments(["--transport", "mix"])
    assert {"--web=0", "--irc=0"} <= set(serverCommand(s))
    load = loadCommand(
        Path("/bin/loadgen"), s, {"tcp": 5000, "ws": 5001, "irc": 5002}, 42
    )
    assert "--mix" in load
    for option, value in [
        ("--port", "5000"),
        ("--ws-port", "5001"),
        ("--irc-port", "5002"),
        ("--ws", "/ws"),
        ("--irc", "room"),
    ]:
        assert load[load.index(option) + 1] == value


def fullResult() -> ScaleResult:
    """
    A run that connected all 100,000.
    """
    return ScaleResult(
        settings(),
        load={
            "connected_held": 100_000,
            "connect_seconds": 50.0,
            "completed": 2_970_000,
            "rate": 99_000.0,
            "seconds": 30.0,
            "p50_us": 1500.0,
            "p99_us": 9000.0,
            "server_cpu_seconds": 29.7,
            "server_cpu_pct": 99.0,
            "missing": 0,
            "errors": 0,
        },
        rssStart=50 * 1024,
        rssHalf=50 * 1024 + 120_000,
        heldHalf=50_000,
        rssConnected=50 * 1024 + 200_000,
        rssMeasured=50 * 1024 + 210_000,
        socketsConnected=200_050,
        socketMemoryConnected=2**20,
        loadAverage="0.10 0.20 0.30",
        serverCoreBusy=100.0,
        placement="the server on core 0, the load on 1",
    )


def test_reportFull() -> None:
    """
    A run that connected everyone begins with C{100,000 connected}, then
    gives each figure.
    """
    text = formatReport(fullResult())
    lines = text.splitlines()
    assert lines[0].startswith(
        "100,000 connected (TCP, in 1,000 rooms of 100, from 10 "
    )
    assert "time to connect everyone: 50.0 s (2,000 a second)" in text
    assert (
        "server memory: 2.00 KiB a connection, 1.60 KiB each of the second 50,000"
        in text
    )
    assert "deliveries: 99,000 a second (2,970,000 in 30.0 s" in text
    assert "delivery latency: p50 1.50, p99 9.00 ms" in text
    assert "CPU per delivery: 10.00 us" in text
    assert "99% of its core, which was 100% busy with everything on it" in text
    assert "200,050 with everyone connected" in text
    assert lines[-1] == (
        "machine: the server on core 0, the load on 1; load average 0.10 0.20 0.30 "
        "at start (other work on the server's core slows it)"
    )


def test_reportShort() -> None:
    """
    A run that stopped short says how far it got and what stopped it.
    """
    result = fullResult()
    result.load["connected_held"] = 19_900
    result.load["server_error"] = "ERROR the server is busy (19900 connections)"
    result.limitProblem = "the open-file limit, 20,000 (hard), ..."
    first = formatReport(result).splitlines()[0]
    assert first.startswith("19,900 of 100,000 connected (TCP, in 1,000 rooms")
    assert "stopped by the open-file limit, 20,000" in first
    assert "the server answered 'ERROR the server is busy" in first
    result.rssHalf = result.heldHalf = 0
    memory = formatReport(result).splitlines()[2]
    assert memory.startswith("server memory: 10.05 KiB a connection (RSS 50.0 MiB at ")
    assert "connected" not in memory


def test_reportNothing() -> None:
    """
    A run that failed before the load generator said anything says why.
    """
    result = ScaleResult(settings(), failure="the load generator gave no report")
    assert formatReport(result) == (
        "0 of 100,000 connected (TCP, in 1,000 rooms of 100, from 10 source "
        "addresses): stopped by the load generator gave no report"
    )


def test_smallRun(tmp_path: Path) -> None:
    """
    A small run against a real sockserve: everyone connected, from two
    source addresses, into their rooms, and every line delivered in its
    room (2 senders, 2 lines each, 19 receivers each).
    """
    buildLoadGenerator()
    s = parseArguments(
        [
            *("--clients", "40", "--rooms", "2", "--sources", "2", "--settle", "0.5"),
            *("--duration", "2", "--interval", "1", "--connect-timeout", "30"),
        ]
    )
    result = scale.run(s, tmp_path)
    assert result.failure is None
    assert result.serverExited is None
    load = result.load
    assert (result.connected, load["held"], load["failed"]) == (40, 40, 0)
    assert (load["completed"], load["missing"], load["errors"]) == (76, 0, 0)
    assert (load["crossed_rooms"], load["wrong_names"], load["bad_lines"]) == (0, 0, 0)
    assert load["sources"] == 2
    assert 2 <= len(load["worst_ms_by_second"]) <= 3
    assert all(0 <= worst < 10_000 for worst in load["worst_ms_by_second"])
    assert result.rssConnected > 0
    assert result.heldHalf == 20
    assert result.rssHalf > 0
    assert formatReport(result).startswith("40 connected (TCP, in 2 rooms of 20")


@pytest.mark.parametrize(
    ("transport", "name", "shown"),
    [
        ("ws", "websocket", "WebSocket"),
        ("irc", "irc", "IRC"),
        ("mix", "mixed", "mixed"),
    ],
)
def test_smallRunOtherFrontEnds(
    tmp_path: Path, transport: str, name: str, shown: str
) -> None:
    """
    The same small run with WebSocket members (upgraded, then C{/join}),
    with IRC members (each joining its room's channel), and with the three
    in turn in each room: everyone in their rooms, and every line delivered,
    under its sender's name.
    """
    buildLoadGenerator()
    s = parseArguments(
        [
            *("--clients", "40", "--rooms", "2", "--settle", "0.5"),
            *("--duration", "2", "--transport", transport),
        ]
    )
    result = scale.run(s, tmp_path)
    assert result.failure is None
    load = result.load
    assert (result.connected, load["held"], load["failed"]) == (40, 40, 0)
    assert (load["completed"], load["missing"], load["errors"]) == (76, 0, 0)
    assert (load["crossed_rooms"], load["wrong_names"], load["bad_lines"]) == (0, 0, 0)
    assert load["transport"] == name
    assert formatReport(result).startswith(f"40 connected ({shown}, in 2 rooms")


def test_loadgenRefusesBadScaleOptions() -> None:
    """
    The load generator's scale mode needs rooms and one port, and bounded
    sources.
    """
    loadgen = buildLoadGenerator()
    for args in (
        ["--port", "1", "--clients", "4"],
        ["--port", "1", "--port", "2", "--clients", "4", "--rooms", "1"],
        ["--port", "1", "--clients", "4", "--rooms", "1", "--sources", "251"],
    ):
        result = subprocess.run(
            [str(loadgen), "scale", *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert result.returncode == 2, args
        assert result.stderr.startswith("loadgen: "), result.stderr

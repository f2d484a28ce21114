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
import shutil
import socket
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest

from bench import scale
from bench.build import buildLoadGenerator
from bench.scale import (
    GeneratorSlice,
    ScaleResult,
    ScaleSettings,
    SeveralResult,
    clientsPerGenerator,
    coreTimes,
    cpuTicks,
    defaultGenerators,
    evenShares,
    filesWanted,
    formatReport,
    generatorSlices,
    histogramPercentile,
    loadCommand,
    mergeHistograms,
    mergeLoads,
    missing,
    offsets,
    parseArguments,
    placement,
    raiseDescriptorLimit,
    record,
    serverCommand,
    tcpSocketMemory,
    tellToGoOn,
)
from tests.processes import Processes, TcpMember

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
    assert s.connectTimeout == 300.0
    assert parseArguments(["--processes", "2"]).connectTimeout == 600.0
    several = parseArguments(["--processes", "2", "--connect-timeout", "50"])
    assert several.connectTimeout == 50.0


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


@pytest.fixture(autouse=True)
def _twentyThousandFiles(monkeypatch: pytest.MonkeyPatch) -> None:
    """
    The defaults that depend on the open-file limit are those of a machine
    whose hard limit is 20,000, wherever the tests run.
    """
    monkeypatch.setattr(scale, "hardFileLimit", lambda: 20_000)


def test_severalDefaults() -> None:
    """
    One load generator while one can hold every member under the open-file
    limit, else one a 16,000 members (never more than there are rooms or
    senders), and at least a source address each; one server process by
    default.
    """
    s = parseArguments([])
    assert (s.processes, s.generators, s.sources) == (1, 7, 10)
    assert parseArguments(["--clients", "19900"]).generators == 1
    s = parseArguments(["--clients", "19901"])
    assert (s.generators, s.sources) == (2, 2)
    assert parseArguments(["--clients", "40000", "--rooms", "3"]).generators == 3
    s = parseArguments(["--clients", "4000", "--generators", "3"])
    assert (s.generators, s.sources) == (3, 3)
    assert s.single is False
    assert parseArguments(["--clients", "4000"]).single is True


def test_defaultGenerators() -> None:
    """
    One generator while one holds everyone, as runs of one process always
    had; past that, one a 16,000.
    """
    assert defaultGenerators(19_800, 20_000) == 1
    assert defaultGenerators(19_901, 20_000) == 2
    assert defaultGenerators(100_000, 20_000) == 7
    assert defaultGenerators(100_000, 1_048_576) == 1


def test_clientsPerGenerator() -> None:
    """
    A load generator takes as many members as its limit allows, less what
    it keeps; never fewer than 1,000, never more than a million.
    """
    assert clientsPerGenerator(20_000) == 19_900
    assert clientsPerGenerator(1024) == 1000
    assert clientsPerGenerator(2**63) == 1_000_000 - 100


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--processes", "2", "--transport", "ws"], "TCP members only"),
        (["--processes", "3", "--transport", "mix"], "TCP members only"),
        (["--processes", "0"], "--processes must be 1 to 16"),
        (["--processes", "17"], "--processes must be 1 to 16"),
        (["--generators", "0"], "--generators must be at least 1"),
        (["--clients", "1000", "--generators", "11"], "at most --rooms"),
        (
            ["--clients", "1000", "--generators", "3", "--sources", "2"],
            "at most --sources",
        ),
        (
            ["--clients", "1000", "--generators", "3", "--senders", "2"],
            "at most --senders",
        ),
    ],
)
def test_severalRefused(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """
    Several processes serve TCP members only (the workers serve no --web or
    --irc), at most 16 of them; each load generator needs rooms, source
    addresses and senders of its own.
    """
    with pytest.raises(SystemExit) as exit:
        parseArguments(argv)
    assert exit.value.code == 2
    assert message in capsys.readouterr().err


def roomSizes(clients: int, rooms: int) -> list[int]:
    """
    The members of each room when member i is in room i mod C{rooms}, as the
    load generator places them.
    """
    sizes = [0] * rooms
    for member in range(clients):
        sizes[member % rooms] += 1
    return sizes


def test_generatorSlices() -> None:
    """
    The rooms and the source addresses are split evenly, the larger shares
    first, end to end; each generator's members are those of its rooms, so
    that the rooms have the sizes one generator gives them, and so have the
    senders.
    """
    s = parseArguments(
        ["--clients", "1003", "--rooms", "10", "--sources", "3", "--generators", "3"]
    )
    assert generatorSlices(s) == [
        GeneratorSlice(
            clients=403, rooms=4, roomOffset=0, senders=4, sources=1, sourceOffset=0
        ),
        GeneratorSlice(
            clients=300, rooms=3, roomOffset=4, senders=3, sources=1, sourceOffset=1
        ),
        GeneratorSlice(
            clients=300, rooms=3, roomOffset=7, senders=3, sources=1, sourceOffset=2
        ),
    ]
    more = dataclasses.replace(s, senders=25, sources=7)
    parts = generatorSlices(more)
    assert [part.senders for part in parts] == [12, 7, 6]
    assert [(part.sources, part.sourceOffset) for part in parts] == [
        (3, 0),
        (2, 3),
        (2, 5),
    ]
    fewer = dataclasses.replace(s, senders=5)
    assert [part.senders for part in generatorSlices(fewer)] == [2, 2, 1]


@pytest.mark.parametrize("clients", [20, 37, 1000, 1003, 4999])
@pytest.mark.parametrize("generators", [1, 2, 3, 7])
def test_generatorSlicesAddUp(clients: int, generators: int) -> None:
    """
    Whatever the remainders, the slices add up to the run, each has rooms,
    source addresses and senders of its own, and together they give every
    room as many members and senders as one generator would.
    """
    for rooms in {generators, clients // 2, max(generators, clients // 7)}:
        for senders in {generators, rooms, clients}:
            s = dataclasses.replace(
                parseArguments(["--clients", str(clients), "--rooms", str(rooms)]),
                senders=senders,
                sources=generators + 2,
                generators=generators,
            )
            parts = generatorSlices(s)
            assert len(parts) == generators
            assert sum(part.clients for part in parts) == clients
            assert sum(part.rooms for part in parts) == rooms
            assert sum(part.sources for part in parts) == s.sources
            assert sum(part.senders for part in parts) == senders
            assert [part.roomOffset for part in parts] == offsets(
                [part.rooms for part in parts]
            )
            assert [part.sourceOffset for part in parts] == offsets(
                [part.sources for part in parts]
            )
            assert all(part.rooms >= 1 and part.sources >= 1 for part in parts)
            assert all(1 <= part.senders <= part.clients for part in parts)
            sizes = [
                size for part in parts for size in roomSizes(part.clients, part.rooms)
            ]
            assert sizes == roomSizes(clients, rooms)
            if senders >= rooms:
                held = [
                    n for part in parts for n in roomSizes(part.senders, part.rooms)
                ]
                assert held == roomSizes(senders, rooms)


def test_evenShares() -> None:
    """
    Even shares, the larger first, and where each begins.
    """
    assert evenShares(10, 3) == [4, 3, 3]
    assert evenShares(3, 3) == [1, 1, 1]
    assert offsets([4, 3, 3]) == [0, 4, 7]


def test_filesWanted() -> None:
    """
    The busiest process needs its share of the members and the spare: the
    single server, or one of several, or one load generator.
    """
    assert filesWanted(settings()) == 100_000 + scale.SPARE_FILES
    assert filesWanted(parseArguments([])) == 100_000 + scale.SPARE_FILES
    several = parseArguments(["--processes", "7"])
    assert filesWanted(several) == 14_300 + scale.SPARE_FILES
    fewer = parseArguments(["--processes", "10", "--generators", "4"])
    assert filesWanted(fewer) == 25_000 + scale.SPARE_FILES


def test_commandsSeveral() -> None:
    """
    Several processes listen on one port, as workers on a bus, with room in
    the default room for every load generator's members arriving; each load
    generator has its slice, its rooms' and addresses' offsets, times every
    server process and gives its latencies' histogram.
    """
    s = parseArguments(["--processes", "7"])
    command = serverCommand(s, 5000, "redis://127.0.0.1:6400")
    assert command[command.index("sockserve") :] == [
        "sockserve",
        "--port=5000",
        "--workers=7",
        "--bus=redis://127.0.0.1:6400",
        "--quiet",
        "--max-clients=100010",
        "--max-rooms=1010",
    ]
    with pytest.raises(AssertionError):
        serverCommand(s)
    part = generatorSlices(s)[3]
    load = loadCommand(Path("/bin/loadgen"), s, {"tcp": 5000}, [42, 43, 44], part)
    for option, value in [
        ("--clients", "14300"),
        ("--rooms", "143"),
        ("--room-offset", "429"),
        ("--senders", "143"),
        ("--sources", "1"),
        ("--source-offset", "6"),
        ("--port", "5000"),
    ]:
        assert load[load.index(option) + 1] == value
    pids = [load[i + 1] for i, part in enumerate(load) if part == "--server-pid"]
    assert pids == ["42", "43", "44"]
    assert "--histogram" in load
    one = loadCommand(Path("/bin/loadgen"), settings(), {"tcp": 5000}, [42, 43])
    assert not {"--room-offset", "--source-offset", "--histogram"} & set(one)
    assert loadCommand(Path("/bin/loadgen"), settings(), {"tcp": 5000}, 42) == (
        loadCommand(Path("/bin/loadgen"), settings(), {"tcp": 5000}, [42])
    )


def test_histogramPercentile() -> None:
    """
    A percentile of a histogram is the lower bound of the bucket holding the
    latency of its rank, the rank taken as the load generator takes it.
    """
    histogram = [[100, 1], [200, 2], [300, 1]]
    assert histogramPercentile(histogram, 0.0) == 100.0
    assert histogramPercentile(histogram, 0.5) == 200.0
    assert histogramPercentile(histogram, 0.99) == 300.0
    assert histogramPercentile([], 0.5) == -1.0
    assert mergeHistograms([[[5, 1], [9, 2]], [[1, 4], [9, 1]]]) == [
        [1, 4],
        [5, 1],
        [9, 3],
    ]


def generatorReport(**figures: Any) -> dict[str, Any]:
    """
    One load generator's final report, with C{figures} changed.
    """
    report: dict[str, Any] = {
        "mode": "scale",
        "completed": 1000,
        "rate": 100.0,
        "seconds": 10.0,
        "p50_us": 1000.0,
        "p99_us": 2000.0,
        "errors": 0,
        "cpu_pct": 5.0,
        "server_cpu_pct": 50.0,
        "clients": 500,
        "held": 500,
        "connect_seconds": 3.0,
        "rooms": 5,
        "senders": 5,
        "sources": 1,
        "missing": 0,
        "window_errors": 0,
        "transport": "tcp",
        "server_cpu_seconds": 5.0,
        "cpu_seconds": 0.5,
        "connect_error": "",
        "server_error": "",
        "worst_ms_by_second": [3.0, 4.0],
        "error_sample": "",
        "latency_histogram_us": [[1000, 600], [2000, 400]],
    }
    report.update(figures)
    return report


def test_mergeLoads() -> None:
    """
    The generators' counts add up; the run's connecting time and window are
    the longest, its deliveries a second those over the longest window, its
    latencies those of the merged histograms, its server CPU that of the
    generator that saw the most, its slowest delivery each second the
    slowest of any, its errors the first any says.
    """
    merged = mergeLoads(
        [
            generatorReport(),
            generatorReport(
                completed=3000,
                seconds=12.0,
                connect_seconds=4.0,
                missing=2,
                server_cpu_seconds=6.0,
                server_cpu_pct=51.0,
                worst_ms_by_second=[5.0, 1.0, 7.0],
                server_error="ERROR busy",
                latency_histogram_us=[[1000, 100], [5000, 2900]],
            ),
        ]
    )
    assert (merged["completed"], merged["clients"], merged["held"]) == (
        4000,
        1000,
        1000,
    )
    assert (merged["rooms"], merged["senders"], merged["sources"]) == (10, 10, 2)
    assert (merged["missing"], merged["cpu_pct"], merged["cpu_seconds"]) == (
        2,
        10.0,
        1.0,
    )
    assert (merged["seconds"], merged["connect_seconds"]) == (12.0, 4.0)
    assert merged["rate"] == round(4000 / 12, 1)
    assert merged["latency_histogram_us"] == [[1000, 700], [2000, 400], [5000, 2900]]
    assert (merged["p50_us"], merged["p99_us"]) == (5000.0, 5000.0)
    assert (merged["server_cpu_seconds"], merged["server_cpu_pct"]) == (6.0, 51.0)
    assert merged["worst_ms_by_second"] == [5.0, 4.0, 7.0]
    assert (merged["server_error"], merged["connect_error"]) == ("ERROR busy", "")
    assert (merged["generators"], merged["transport"]) == (2, "tcp")


def severalResult() -> ScaleResult:
    """
    A run of 100,000 over 7 processes and 7 load generators.
    """
    result = fullResult()
    result.settings = parseArguments(["--processes", "7"])
    result.several = SeveralResult(
        pids=list(range(100, 107)),
        connectionsByProcess=[14_300, 14_250, 14_290, 14_280, 14_260, 14_310, 14_310],
        cpuByProcess=[4.0, 4.5, 4.2, 4.1, 4.3, 4.4, 4.2],
        redisRssStart=10 * 1024,
        redisRssConnected=40 * 1024,
        redisRssMeasured=45 * 1024,
        redisCpuSeconds=9.9,
        windowSeconds=30.5,
        settleCpuSeconds=3.5,
        redisSettleCpuSeconds=0.4,
    )
    return result


def test_reportSeveral() -> None:
    """
    A run of several processes and load generators says its shape first, how
    the kernel spread the connections, what Redis used apart from the
    server, and how the latencies were merged.
    """
    text = formatReport(severalResult())
    lines = text.splitlines()
    assert lines[0] == (
        "100,000 connected (TCP, 7 processes on a bus, in 1,000 rooms of 100, "
        "from 10 source addresses, 7 load generators)"
    )
    assert "RSS of its 7 processes together: 50.0 MiB at start" in text
    assert "merged histograms: at most 1.6% under" in text
    assert (
        "CPU per delivery: 10.00 us of the server's 7 processes together (Redis "
        "apart; utime+stime 29.70 s over the window, 99% of their core" in text
    )
    assert (
        "(descriptors each gained, the main process first): 14,300, 14,250, "
        "14,290, 14,280, 14,260, 14,310, 14,310; their CPU over the window: "
        "4.0, 4.5, 4.2, 4.1, 4.3, 4.4, 4.2 s; over the 10 s before it (everyone "
        "connected, nobody speaking): 3.5 s together, Redis 0.4 s" in text
    )
    assert (
        "Redis (apart from the server's figures): RSS 10.0 MiB at start, 40.0 MiB "
        "with everyone, 45.0 MiB after the measured window; CPU 9.90 s over the "
        "window (30.5 s), 3.33 us a delivery" in text
    )
    short = severalResult()
    short.load["connected_held"] = 60_000
    short.failure = "load generator 3 of 7 never said everyone was connected"
    assert formatReport(short).splitlines()[0] == (
        "60,000 of 100,000 connected (TCP, 7 processes on a bus, in 1,000 rooms "
        "of 100, from 10 source addresses, 7 load generators): stopped by load "
        "generator 3 of 7 never said everyone was connected"
    )


def test_recordAsBefore() -> None:
    """
    The record of one server process and one load generator has the keys it
    always had; that of several has their settings and figures too.
    """
    one = record(fullResult(), "text")
    assert set(one) == {
        "report",
        *(f.name for f in dataclasses.fields(ScaleResult)),
    } - {"several"}
    assert "processes" not in one["settings"]
    assert "generators" not in one["settings"]
    several = record(severalResult(), "text")
    assert several["settings"]["processes"] == 7
    assert several["several"]["connectionsByProcess"][0] == 14_300


def test_missing() -> None:
    """
    A silent load generator stops the run: the only one, or which of them.
    """
    assert missing([{}], "gave no report") is None
    assert missing([None], "gave no report") == "the load generator gave no report"
    assert missing([{}, None, {}, None], "gave no report") == (
        "load generator 2, 4 of 4 gave no report"
    )


def test_cpuTicks() -> None:
    """
    A process's CPU time is its utime and stime, whatever its name holds.
    """
    stat = "42 (twistd (x) y) S 1 42 42 0 -1 4194560 900 0 0 0 150 25 0 0 20 0 1 0"
    assert cpuTicks(stat) == 175


def test_placement() -> None:
    """
    Where the processes are pinned: as before for one of each.
    """
    assert placement(settings(), 0, 1) == "the server on core 0, the load on 1"
    assert placement(parseArguments(["--processes", "7"]), 0, 1) == (
        "the server's 7 processes and Redis on core 0, the 7 load generators on 1"
    )


@pytest.mark.skipif(
    shutil.which("redis-server") is None, reason="redis-server is not installed"
)
def test_smallRunSeveral(tmp_path: Path) -> None:
    """
    A small run of two server processes on a private Redis and two load
    generators, each with its own rooms and source address: everyone
    connected, spread over both processes, and every line delivered in its
    room; nothing of the run is left running.
    """
    buildLoadGenerator()
    s = parseArguments(
        [
            *("--clients", "40", "--rooms", "2", "--processes", "2"),
            *("--generators", "2", "--settle", "0.5", "--duration", "2"),
        ]
    )
    result = scale.run(s, tmp_path)
    assert result.failure is None, result.serverTrouble
    load = result.load
    assert (result.connected, load["held"], load["failed"]) == (40, 40, 0)
    assert (load["completed"], load["missing"], load["errors"]) == (76, 0, 0)
    assert (load["crossed_rooms"], load["wrong_names"], load["bad_lines"]) == (0, 0, 0)
    assert (load["generators"], load["sources"], load["rooms"]) == (2, 2, 2)
    assert 0 < load["p50_us"] <= load["p99_us"]
    several = result.several
    assert several is not None
    assert len(several.pids) == 2
    assert sum(several.connectionsByProcess) >= 40
    assert several.redisRssConnected > 0
    assert [report["rooms"] for report in several.generators] == [1, 1]
    assert result.rssHalf > 0
    assert result.heldHalf == 20
    assert formatReport(result).startswith(
        "40 connected (TCP, 2 processes on a bus, in 2 rooms of 20, from 2 source "
        "addresses, 2 load generators)"
    )
    for pid in several.pids:
        assert (
            not Path(f"/proc/{pid}").exists()
            or b"sockserve" not in Path(f"/proc/{pid}/cmdline").read_bytes()
        )


def connectionSources(port: int) -> set[str]:
    """
    The source addresses of the established TCP connections to 127.0.0.1's
    C{port} (from C{/proc/net/tcp}).
    """
    sources = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, remote, state = line.split()[1:4]
        address, remotePort = remote.split(":")
        if state == "01" and int(remotePort, 16) == port and address == "0100007F":
            host = int(local.split(":")[0], 16)
            sources.add(socket.inet_ntoa(struct.pack("<I", host)))
    return sources


def test_loadgenOffsets(processes: Processes) -> None:
    """
    With --room-offset and --source-offset, the load generator's members
    are in the rooms from room-(N) on and connect from the addresses from
    127.0.0.(1 + N) on, as the server sees them; with --histogram, it gives
    every delivery's latency by bucket.
    """
    server = processes.server("--max-clients", "300", "--max-rooms", "20", "--quiet")
    command = [
        str(buildLoadGenerator()),
        "scale",
        *("--port", str(server.port), "--clients", "200", "--rooms", "4"),
        *("--senders", "4", "--sources", "2", "--room-offset", "5"),
        *("--source-offset", "2", "--histogram", "--duration", "1000"),
        *("--connect-timeout-ms", "20000", "--hold"),
    ]
    loadgen = processes.spawn(command, stderr=subprocess.DEVNULL)
    assert loadgen.stdin is not None
    assert loadgen.stdout is not None
    reader = scale.LineReader(loadgen.stdout)
    phases = []
    try:
        for _ in range(2):
            line = reader.readJSON(30.0)
            assert line is not None
            phases.append(line["phase"])
            if line["phase"] == "connected":
                break
            tellToGoOn(loadgen.stdin)
        assert phases == ["half", "connected"]
        assert connectionSources(server.port) == {"127.0.0.3", "127.0.0.4"}
        member = TcpMember(processes, server)
        rooms = member.ask("/rooms", lambda line: " rooms: " in line)
        assert rooms == (
            "* 5 rooms: #default (1), #room-5 (50), #room-6 (50), #room-7 (50), "
            "#room-8 (50)"
        )
        tellToGoOn(loadgen.stdin)
        measured = reader.readJSON(30.0)
        assert measured is not None
        assert measured["phase"] == "measured"
        tellToGoOn(loadgen.stdin)
        final = reader.readJSON(30.0)
    finally:
        reader.close()
    assert final is not None
    assert (final["held"], final["missing"], final["errors"]) == (200, 0, 0)
    assert final["crossed_rooms"] == 0
    histogram = final["latency_histogram_us"]
    assert sum(count for _, count in histogram) == final["completed"] == 196
    assert histogram == sorted(histogram)
    assert all(low < 128 or low % 2 == 0 for low, _ in histogram)

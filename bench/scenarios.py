"""
The scenarios, and the settings of a quick and a full run.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from bench.servers import (
    CHAT_IRC,
    CHAT_MANY_ROOMS,
    CHAT_MIXED,
    CHAT_WS,
    IRC_CHANNEL,
    WEBSOCKET_PATH,
)

ECHO_SIZES = ((64, "64B"), (1024, "1KiB"))
ECHO_CONNECTIONS = (1, 10, 100)
ONESHOT_CLIENTS = (10, 50)
CHAT_LINE_SIZE = 64
CHAT_WINDOW = 64
CHAT_ROOMS = ((10, 10), (100, 5))  # (clients, senders)


@dataclass(frozen=True)
class Settings:
    """
    How long and how often to measure.

    @ivar rounds: rounds of every scenario on every server (A B A B ...).
    @ivar idleRounds: rounds of the idle-connections scenario (the slowest).
    @ivar warmupMs: echo and oneshot: load before the measured window.
    @ivar durationMs: echo and oneshot: the measured window.
    @ivar chatLines: lines each chat sender sends.
    @ivar idleClients: connections held open in the idle scenario.
    @ivar rooms: the chat in many rooms: how many rooms.
    @ivar roomSize: the chat in many rooms: the members of each.
    @ivar roomLines: the chat in many rooms: lines each member sends.
    """

    name: str
    rounds: int
    idleRounds: int
    warmupMs: int
    durationMs: int
    chatLines: int
    idleClients: int
    rooms: int = 100
    roomSize: int = 10
    roomLines: int = 200


FULL = Settings(
    "full",
    rounds=5,
    idleRounds=3,
    warmupMs=300,
    durationMs=1500,
    chatLines=1000,
    idleClients=10_000,
)
QUICK = Settings(
    "quick",
    rounds=2,
    idleRounds=1,
    warmupMs=100,
    durationMs=300,
    chatLines=300,
    idleClients=2_000,
    roomLines=60,
)


@dataclass(frozen=True)
class Scenario:
    """
    One measured point.

    @ivar name: how C{--only} and the report name it.
    @ivar group: the server mode it needs (C{idle} runs a chat server).
    @ivar metric: the unit of its main figure.
    @ivar loadArgs: the load generator's mode and options, but the port.
    @ivar higherIsBetter: whether a larger main figure is better.
    @ivar overTcp: for a chat room over WebSocket, of IRC clients, or of
        line, WebSocket and IRC clients, the same room over TCP.
    @ivar oneRoom: for a chat in many rooms, the chat in one room of the
        same size, every member sending.
    """

    name: str
    group: str
    description: str
    metric: str
    loadArgs: tuple[str, ...]
    higherIsBetter: bool = True
    clients: int = 0
    overTcp: str | None = None
    oneRoom: str | None = None


def chatScenario(
    settings: Settings, clients: int, senders: int, window: int, websocket: bool
) -> Scenario:
    """
    Return a chat room of C{clients}, C{senders} of them sending, each with at
    most C{window} lines in flight (0: as fast as possible); over WebSocket
    (C{chat-ws-...}) or over TCP (C{chat-...}).
    """
    room = f"{clients}x{senders}" + (f"-w{window}" if window else "")
    paced = "as fast as possible"
    if window:
        paced = f"at most {window} lines in flight per sender"
    transport = ("--ws", WEBSOCKET_PATH) if websocket else ()
    return Scenario(
        f"chat-ws-{room}" if websocket else f"chat-{room}",
        CHAT_WS if websocket else "chat",
        f"chat{' over WebSocket' if websocket else ''}, {clients} clients, "
        f"{senders} senders x {settings.chatLines} lines, {paced}",
        "deliveries/s",
        (
            "chat",
            "--clients",
            str(clients),
            "--senders",
            str(senders),
            "--lines",
            str(settings.chatLines),
            "--size",
            str(CHAT_LINE_SIZE),
            "--window",
            str(window),
            *transport,
        ),
        clients=clients,
        overTcp=f"chat-{room}" if websocket else None,
    )


def ircScenario(
    settings: Settings, clients: int, senders: int, window: int, mixed: bool
) -> Scenario:
    """
    Return a chat room of C{clients}, C{senders} of them sending, each with at
    most C{window} lines in flight (0: as fast as possible): of IRC clients
    (C{chat-irc-...}: each registers with C{NICK} and C{USER}, joins
    C{#default} and sends C{PRIVMSG #default :line}), or of line, WebSocket
    and IRC clients in turn in sockserve's default room (C{chat-mixed-...}),
    beside the same room over TCP.
    """
    room = f"{clients}x{senders}" + (f"-w{window}" if window else "")
    paced = "as fast as possible"
    if window:
        paced = f"at most {window} lines in flight per sender"
    if mixed:
        name, group = f"chat-mixed-{room}", CHAT_MIXED
        who = "chat, one room of TCP, WebSocket and IRC clients in turn"
        transport: tuple[str, ...] = (
            "--mix",
            "--ws",
            WEBSOCKET_PATH,
            "--irc",
            IRC_CHANNEL,
        )
    else:
        name, group = f"chat-irc-{room}", CHAT_IRC
        who = f"chat over IRC (#{IRC_CHANNEL})"
        transport = ("--irc", IRC_CHANNEL)
    return Scenario(
        name,
        group,
        f"{who}, {clients} clients, {senders} senders x {settings.chatLines} "
        f"lines, {paced}",
        "deliveries/s",
        (
            "chat",
            "--clients",
            str(clients),
            "--senders",
            str(senders),
            "--lines",
            str(settings.chatLines),
            "--size",
            str(CHAT_LINE_SIZE),
            "--window",
            str(window),
            *transport,
        ),
        clients=clients,
        overTcp=f"chat-{room}",
    )


def roomsScenario(settings: Settings, window: int) -> Scenario:
    """
    Return a chat in L{Settings.rooms} rooms of L{Settings.roomSize}
    members, every member sending L{Settings.roomLines} lines, each with at
    most C{window} lines in flight (0: as fast as possible): each client
    joins its room (C{/join room-K}) before the measured window, and each line
    must reach the other members of its room, and nobody else
    (C{chat-rooms-...}, beside the one room C{chat-SIZExSIZE}).
    """
    rooms, size = settings.rooms, settings.roomSize
    suffix = f"-w{window}" if window else ""
    paced = "as fast as possible"
    if window:
        paced = f"at most {window} lines in flight per sender"
    return Scenario(
        f"chat-rooms-{rooms}x{size}{suffix}",
        CHAT_MANY_ROOMS,
        f"chat in {rooms} rooms of {size} clients (/join room-K first), every "
        f"client sending {settings.roomLines} lines, {paced}",
        "deliveries/s",
        (
            "chat",
            "--clients",
            str(rooms * size),
            "--senders",
            str(rooms * size),
            "--lines",
            str(settings.roomLines),
            "--size",
            str(CHAT_LINE_SIZE),
            "--window",
            str(window),
            "--rooms",
            str(rooms),
        ),
        clients=rooms * size,
        oneRoom=f"chat-{size}x{size}{suffix}",
    )


def allScenarios(settings: Settings) -> list[Scenario]:
    """
    Return every scenario, in the order they run.
    """
    timing = (
        "--warmup",
        str(settings.warmupMs),
        "--duration",
        str(settings.durationMs),
    )
    scenarios: list[Scenario] = []
    for size, label in ECHO_SIZES:
        for conns in ECHO_CONNECTIONS:
            scenarios.append(
                Scenario(
                    f"echo-c{conns}-{label}",
                    "echo",
                    f"echo ping-pong, {conns} connection(s), {label} lines",
                    "requests/s",
                    ("echo", "--conns", str(conns), "--size", str(size), *timing),
                )
            )
    for conns in ONESHOT_CLIENTS:
        scenarios.append(
            Scenario(
                f"oneshot-c{conns}",
                "oneshot",
                f"oneshot, {conns} concurrent clients (connect, line, read to EOF)",
                "connections/s",
                ("oneshot", "--conns", str(conns), "--size", "64", *timing),
            )
        )
    for websocket in (False, True):
        for clients, senders in CHAT_ROOMS:
            for window in (0, CHAT_WINDOW):
                scenarios.append(
                    chatScenario(settings, clients, senders, window, websocket)
                )
    for mixed in (False, True):
        for clients, senders in CHAT_ROOMS:
            for window in (0, CHAT_WINDOW):
                scenarios.append(ircScenario(settings, clients, senders, window, mixed))
    for window in (0, CHAT_WINDOW):
        scenarios.append(roomsScenario(settings, window))
    scenarios.append(
        Scenario(
            f"idle-{settings.idleClients}",
            "idle",
            f"idle connections: {settings.idleClients} chat clients join and wait",
            "s to accept all",
            ("idle", "--clients", str(settings.idleClients), "--concurrency", "256"),
            higherIsBetter=False,
            clients=settings.idleClients,
        )
    )
    return scenarios


def matches(name: str, pattern: str) -> bool:
    """
    Return whether scenario C{name} is selected by C{pattern}: the exact name,
    a prefix ending at a dash (C{echo}, C{chat-100x5}), or a glob (C{*-1KiB}).
    """
    return (
        name == pattern
        or name.startswith(pattern.rstrip("-") + "-")
        or fnmatch.fnmatchcase(name, pattern)
    )


def select(scenarios: list[Scenario], patterns: list[str]) -> list[Scenario]:
    """
    Return the scenarios matching any of C{patterns} (all if there are none).
    """
    if not patterns:
        return scenarios
    return [s for s in scenarios if any(matches(s.name, p) for p in patterns)]

"""
Summarising measurements: medians over valid rounds, min-max spreads, ratios
against the peers, each chat room over WebSocket beside the same room over
TCP, each room of IRC clients (sockserve's and ngircd's) and each mixed room
(TCP, WebSocket and IRC clients) beside the same room over TCP, each room on
a Redis bus (one node, two nodes) beside the same room without one, with
Redis's own ceiling, and the chat in many rooms beside one room of the same
size, as Markdown and JSON.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.bus import RedisBenchmark
from bench.runner import Measurement
from bench.scenarios import Scenario
from bench.servers import (
    CHAT_IRC,
    CHAT_MANY_ROOMS,
    CHAT_MIXED,
    CHAT_WS,
    IRC_CHANNEL,
    NGIRCD,
    SOCKSERVE,
    SOCKSERVE_BUS,
    SOCKSERVE_BUS_2NODES,
    ServerSpec,
)

#: Issue #11: sockserve's room over WebSocket against the same room over TCP,
#: and against each WebSocket peer (deliveries/s, at least this many times).
WS_OVER_TCP_TARGET = 0.5
WS_OVER_PEER_TARGET = 1.0
#: Issue #10: one node with a bus against one without (deliveries/s, at
#: least this many times), and the p99 latency of a room on two nodes at the
#: paced load (-w64), under this many microseconds.
BUS_OVER_PLAIN_TARGET = 0.7
TWO_NODES_P99_TARGET_US = 5000.0


@dataclass
class Cell:
    """
    One scenario on one server, over every round.

    @ivar values: the main figure of each valid round.
    @ivar bounds: the figure of each round whose only problem was the load
        generator saturating its core: the server did at least that well.
    """

    scenario: str
    server: str
    rounds: int = 0
    values: list[float] = field(default_factory=list)
    bounds: list[float] = field(default_factory=list)
    p50: list[float] = field(default_factory=list)
    p99: list[float] = field(default_factory=list)
    p99Remote: list[float] = field(default_factory=list)
    redis: list[dict[str, Any]] = field(default_factory=list)
    loadgenCpu: list[float] = field(default_factory=list)
    serverCpu: list[float] = field(default_factory=list)
    serverUsPerOp: list[float] = field(default_factory=list)
    rssPerConn: list[float] = field(default_factory=list)
    errors: int = 0
    missing: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def median(self) -> float | None:
        """
        The median of the valid rounds' figures.
        """
        return statistics.median(self.values) if self.values else None

    @property
    def bounded(self) -> bool:
        """
        Whether some rounds were invalid, but only because the load generator
        saturated: the median over all rounds is then a bound, a figure the
        server is at least as good as.
        """
        return bool(self.bounds) and len(self.values) + len(self.bounds) == self.rounds

    @property
    def figure(self) -> float | None:
        """
        The median of every valid round, or, for a bounded cell, of every
        round (the median of bounds bounds the median).
        """
        if self.bounded:
            return statistics.median(self.values + self.bounds)
        return self.median

    @property
    def valid(self) -> bool:
        """
        Whether every round was valid.
        """
        return self.rounds > 0 and len(self.values) == self.rounds

    def asJSON(self) -> dict[str, Any]:
        """
        Return the cell's summary as JSON-ready data.
        """
        return {
            "scenario": self.scenario,
            "server": self.server,
            "rounds": self.rounds,
            "valid_rounds": len(self.values),
            "median": self.median,
            "bounded": self.bounded,
            "median_with_bounds": self.figure if self.bounded else None,
            "min": min(self.values) if self.values else None,
            "max": max(self.values) if self.values else None,
            "p50_us": _median(self.p50),
            "p99_us": _median(self.p99),
            "p99_remote_us": _median(self.p99Remote),
            "loadgen_cpu_pct_median": _median(self.loadgenCpu),
            "loadgen_cpu_pct_max": max(self.loadgenCpu) if self.loadgenCpu else None,
            "server_cpu_pct_median": _median(self.serverCpu),
            "server_cpu_us_per_op_median": _median(self.serverUsPerOp),
            "rss_per_conn_kib": _median(self.rssPerConn),
            "errors": self.errors,
            "missing": self.missing,
            "problems": self.problems,
        }


def _median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def summarise(measurements: Sequence[Measurement]) -> dict[tuple[str, str], Cell]:
    """
    Gather measurements by (scenario, server).
    """
    cells: dict[tuple[str, str], Cell] = {}
    for m in measurements:
        cell = cells.setdefault((m.scenario, m.server), Cell(m.scenario, m.server))
        cell.rounds += 1
        cell.errors += m.errors
        cell.missing += m.missing
        if m.loadgenCpu is not None:
            cell.loadgenCpu.append(m.loadgenCpu)
        # What the server spent per request, connection or delivery: comparable
        # even where the load generator is the bottleneck. (Not for idle
        # connections, whose figure is a time, not a rate.)
        if (m.valid or m.saturated) and m.serverCpu and m.value and not m.idle:
            cell.serverUsPerOp.append(m.serverCpu / 100 / m.value * 1e6)
        if m.valid and m.value is not None:
            cell.values.append(m.value)
            if m.p50Us is not None:
                cell.p50.append(m.p50Us)
            if m.p99Us is not None:
                cell.p99.append(m.p99Us)
            if m.p99RemoteUs is not None:
                cell.p99Remote.append(m.p99RemoteUs)
            if "redis" in m.raw:
                cell.redis.append(m.raw["redis"])
            if m.serverCpu is not None:
                cell.serverCpu.append(m.serverCpu)
            if m.rssPerConnKiB is not None:
                cell.rssPerConn.append(m.rssPerConnKiB)
        else:
            if m.saturated and m.value is not None:
                cell.bounds.append(m.value)
                # Memory per connection does not depend on how fast the
                # generator connects.
                if m.rssPerConnKiB is not None:
                    cell.rssPerConn.append(m.rssPerConnKiB)
            cell.problems.extend(f"round {m.round + 1}: {p}" for p in m.problems)
    return cells


def ratio(sock: float | None, peer: float | None, higherIsBetter: bool) -> float | None:
    """
    Return how many times better sockserve's figure is than a peer's (above 1:
    sockserve is better), whichever way the figure goes.
    """
    if sock is None or peer is None or sock <= 0 or peer <= 0:
        return None
    return sock / peer if higherIsBetter else peer / sock


def boundedRatio(sock: Cell | None, peer: Cell | None, higherIsBetter: bool) -> str:
    """
    Format sockserve's ratio against a peer: C{>=} when sockserve's figure
    is a bound (it is at least that much better), C{<=} when the peer's is,
    C{-} when both are or a figure is missing.
    """
    if sock is None or peer is None:
        return "-"
    value = ratio(sock.figure, peer.figure, higherIsBetter)
    if value is None or (sock.bounded and peer.bounded):
        return "-"
    if not (sock.valid or sock.bounded) or not (peer.valid or peer.bounded):
        return _fmtRatio(ratio(sock.median, peer.median, higherIsBetter))
    prefix = ">=" if sock.bounded else "<=" if peer.bounded else ""
    return prefix + _fmtRatio(value)


def _fmt(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _fmtRatio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def ratioColumns(servers: Sequence[ServerSpec]) -> list[str]:
    """
    Return the peers sockserve's ratios are reported against.
    """
    names = [s.name for s in servers]
    return [name for name in names if name != SOCKSERVE]


def markdown(
    scenarios: Sequence[Scenario],
    servers: Sequence[ServerSpec],
    cells: dict[tuple[str, str], Cell],
    header: str,
    benchmarks: Sequence[RedisBenchmark] = (),
) -> str:
    """
    Return the Markdown report: a summary table of medians and ratios, the
    rooms over WebSocket and on a bus beside the others (with Redis's own
    C{benchmarks}), then the details (spread, latency, CPU, validity) of
    every cell.
    """
    names = [s.name for s in servers]
    peers = ratioColumns(servers)
    lines = [header, ""]
    lines.append(
        "Medians of the valid rounds. Ratios are sockserve against each peer; "
        "above 1.00x sockserve is better (faster, or for idle connections "
        "quicker to accept and smaller). `!` marks a figure with an invalid "
        "round (see the details). Where the only problem was the load "
        "generator saturating its core, the figure is a bound, marked `>=` "
        "(or `<=` for a time): the server did at least that well, and a ratio "
        "marked `>=` or `<=` is a bound too."
    )
    lines.append("")
    head = ["scenario", "metric", *names, *(f"vs {p}" for p in peers)]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "---|" * len(head))
    for scenario in scenarios:
        rows = [(scenario.metric, "value")]
        if scenario.group == "idle":
            rows.append(("KiB RSS per connection", "rss"))
        for metric, what in rows:
            row = [scenario.name, metric]
            figures: dict[str, float | None] = {}
            for name in names:
                cell = cells.get((scenario.name, name))
                if cell is None:
                    row.append("")
                    continue
                figure = cell.median if what == "value" else _median(cell.rssPerConn)
                figures[name] = figure
                digits = 2 if what == "rss" or not scenario.higherIsBetter else 0
                shown = _fmt(figure, digits)
                if what == "value" and cell.bounded:
                    bound = ">=" if scenario.higherIsBetter else "<="
                    shown = bound + _fmt(cell.figure, digits)
                row.append(shown + ("" if cell.valid else " !"))
            for peer in peers:
                if peer not in figures:
                    row.append("")
                elif what == "value":
                    row.append(
                        boundedRatio(
                            cells.get((scenario.name, SOCKSERVE)),
                            cells.get((scenario.name, peer)),
                            scenario.higherIsBetter,
                        )
                    )
                else:
                    row.append(
                        _fmtRatio(ratio(figures.get(SOCKSERVE), figures[peer], False))
                    )
            lines.append("| " + " | ".join(row) + " |")
    lines.extend(websocketSection(scenarios, servers, cells))
    lines.extend(ircSection(scenarios, servers, cells))
    lines.extend(roomsSection(scenarios, servers, cells))
    lines.extend(busSection(scenarios, servers, cells, benchmarks))
    lines.append("")
    lines.append("### Details")
    lines.append("")
    lines.append(
        "| scenario | server | median | spread (min-max) | p50 us | p99 us "
        "| loadgen CPU % (median / max) | server CPU % | server CPU us per op "
        "| valid rounds | problems |"
    )
    lines.append("|---|---|---|---|---|---|---|---|---|---|---|")
    for scenario in scenarios:
        digits = 0 if scenario.higherIsBetter else 2
        for name in names:
            cell = cells.get((scenario.name, name))
            if cell is None:
                continue
            spreadOver = cell.values + cell.bounds if cell.bounded else cell.values
            spread = (
                f"{_fmt(min(spreadOver), digits)} - {_fmt(max(spreadOver), digits)}"
                if spreadOver
                else "-"
            )
            lgMax = max(cell.loadgenCpu) if cell.loadgenCpu else None
            problems = "; ".join(cell.problems)[:300].replace("|", "/")
            median = _fmt(cell.median, digits)
            if cell.bounded:
                median = (">=" if scenario.higherIsBetter else "<=") + _fmt(
                    cell.figure, digits
                )
            if scenario.group == "idle":
                median += f" s, {_fmt(_median(cell.rssPerConn), 2)} KiB/conn"
            lines.append(
                f"| {scenario.name} | {name} | {median} | {spread} "
                f"| {_fmt(_median(cell.p50))} | {_fmt(_median(cell.p99))} "
                f"| {_fmt(_median(cell.loadgenCpu))} / {_fmt(lgMax)} "
                f"| {_fmt(_median(cell.serverCpu))} "
                f"| {_fmt(_median(cell.serverUsPerOp), 3)} "
                f"| {len(cell.values)}/{cell.rounds} | {problems} |"
            )
    lines.append("")
    return "\n".join(lines)


def _verdict(value: float, bound: str | None, target: float) -> bool | None:
    """
    Return whether a ratio of C{value} (exact, or a C{lower} or C{upper}
    bound) meets C{target}, or C{None} if the bound cannot tell.
    """
    met = value >= target
    if (bound == "lower" and not met) or (bound == "upper" and met):
        return None
    return met


def _versus(cell: Cell | None, other: Cell | None) -> dict[str, Any]:
    """
    Return how many times C{cell}'s figure is C{other}'s. As in
    L{boundedRatio}, the ratio is a lower bound if C{cell}'s figure is a bound
    and an upper bound if C{other}'s is; where some rounds are invalid for
    other reasons, it is the ratio of the valid rounds' medians.
    """
    versus: dict[str, Any] = {"ratio": None, "bound": None, "all_rounds_valid": False}
    if cell is None or other is None or (cell.bounded and other.bounded):
        return versus
    if (cell.valid or cell.bounded) and (other.valid or other.bounded):
        value = ratio(cell.figure, other.figure, True)
        bound = "lower" if cell.bounded else "upper" if other.bounded else None
        versus.update(bound=bound, all_rounds_valid=cell.valid and other.valid)
    else:
        value = ratio(cell.median, other.median, True)
    versus["ratio"] = value
    return versus


def _comparison(cell: Cell | None, other: Cell | None, target: float) -> dict[str, Any]:
    """
    Compare C{cell}'s figure with C{other}'s (see L{_versus}) against
    C{target}.
    """
    comparison = _versus(cell, other)
    comparison.update(target=target, met=None)
    if comparison["ratio"] is not None:
        comparison["met"] = _verdict(comparison["ratio"], comparison["bound"], target)
    return comparison


def _figures(cell: Cell | None) -> dict[str, Any]:
    if cell is None:
        return {
            "median": None,
            "bounded": False,
            "min": None,
            "max": None,
            "p99_us": None,
        }
    spread = cell.values + cell.bounds if cell.bounded else cell.values
    return {
        "median": cell.figure,
        "bounded": cell.bounded,
        "min": min(spread) if spread else None,
        "max": max(spread) if spread else None,
        "p99_us": _median(cell.p99),
    }


def websocketPeers(servers: Sequence[ServerSpec]) -> list[str]:
    """
    Return the peers serving chat over WebSocket, sockserve's rivals there.
    """
    return [s.name for s in servers if CHAT_WS in s.modes and s.name != SOCKSERVE]


def websocketComparison(
    scenarios: Sequence[Scenario],
    servers: Sequence[ServerSpec],
    cells: dict[tuple[str, str], Cell],
) -> list[dict[str, Any]]:
    """
    Return, for each chat room over WebSocket, sockserve's figures over
    WebSocket and over TCP, each peer's over WebSocket, and the ratios against
    issue #11's targets (medians as L{Cell.figure} gives them, bounds marked;
    a ratio is C{None} where a figure is missing).
    """
    rows = []
    for scenario in scenarios:
        if scenario.group != CHAT_WS or scenario.overTcp is None:
            continue
        ws = cells.get((scenario.name, SOCKSERVE))
        tcp = cells.get((scenario.overTcp, SOCKSERVE))
        peers = {}
        for name in websocketPeers(servers):
            peer = cells.get((scenario.name, name))
            peers[name] = {
                **_figures(peer),
                "sockserve_over_it": _comparison(ws, peer, WS_OVER_PEER_TARGET),
            }
        rows.append(
            {
                "room": scenario.name,
                "over_tcp": scenario.overTcp,
                "sockserve_ws": _figures(ws),
                "sockserve_tcp": _figures(tcp),
                "ws_over_tcp": _comparison(ws, tcp, WS_OVER_TCP_TARGET),
                "peers": peers,
            }
        )
    return rows


def _fmtComparison(comparison: dict[str, Any]) -> str:
    value = comparison["ratio"]
    if value is None:
        return "-"
    prefix = {"lower": ">=", "upper": "<=", None: ""}[comparison["bound"]]
    verdict = {True: "met", False: "MISSED", None: "unknown"}[comparison["met"]]
    invalid = "" if comparison["all_rounds_valid"] else " !"
    return f"{prefix}{_fmtRatio(value)} {verdict}{invalid}"


def _fmtFigures(figures: dict[str, Any]) -> str:
    if figures["median"] is None:
        return "-"
    bound = ">=" if figures["bounded"] else ""
    return (
        f"{bound}{_fmt(figures['median'])} ({_fmt(figures['min'])} - "
        f"{_fmt(figures['max'])}; p99 {_fmt(figures['p99_us'])})"
    )


def websocketSection(
    scenarios: Sequence[Scenario],
    servers: Sequence[ServerSpec],
    cells: dict[tuple[str, str], Cell],
) -> list[str]:
    """
    Return the Markdown lines setting each room over WebSocket beside the same
    room over TCP and beside the WebSocket peers (none if no such room ran).
    """
    rows = websocketComparison(scenarios, servers, cells)
    if not rows:
        return []
    peers = websocketPeers(servers)
    lines = [
        "",
        "### Chat over WebSocket beside TCP",
        "",
        f"Deliveries/s: median (min - max; median p99 latency in us). "
        f"Targets (issue #11): sockserve's room over WebSocket at least "
        f"{WS_OVER_TCP_TARGET:.2f}x the same room over TCP, and at least "
        f"{WS_OVER_PEER_TARGET:.2f}x each WebSocket peer. As above, `>=` marks "
        f"a figure that is a bound (the load generator saturated its core in "
        f"some rounds), and a ratio with a bound behind it is a bound: "
        f"`unknown` where it cannot tell whether the target is met; `!` marks "
        f"a ratio with an invalid round behind it.",
        "",
    ]
    head = ["room", "sockserve TCP", "sockserve WS", "WS / TCP"]
    for peer in peers:
        head += [peer, f"sockserve WS vs {peer}"]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "---|" * len(head))
    for row in rows:
        tcp, ws = row["sockserve_tcp"], row["sockserve_ws"]
        shown = [
            f"{row['room']} (vs {row['over_tcp']})",
            _fmtFigures(tcp),
            _fmtFigures(ws),
            _fmtComparison(row["ws_over_tcp"]),
        ]
        for peer in peers:
            figures = row["peers"][peer]
            shown += [
                _fmtFigures(figures),
                _fmtComparison(figures["sockserve_over_it"]),
            ]
        lines.append("| " + " | ".join(shown) + " |")
    return lines


def _ircFigures(cell: Cell | None) -> dict[str, Any]:
    """
    Return a cell's figures for the IRC comparison: as L{_figures}, with
    the median p50, the server's CPU per delivery, the load generator's
    busiest round, and whether every round was valid.
    """
    return {
        **_figures(cell),
        "p50_us": None if cell is None else _median(cell.p50),
        "cpu_us_per_delivery": _cpuPerDelivery(cell),
        "loadgen_cpu_pct_max": max(cell.loadgenCpu)
        if cell is not None and cell.loadgenCpu
        else None,
        "all_rounds_valid": cell is not None and cell.valid,
    }


def ircComparison(
    scenarios: Sequence[Scenario],
    servers: Sequence[ServerSpec],
    cells: dict[tuple[str, str], Cell],
) -> list[dict[str, Any]]:
    """
    Return, for each chat room of IRC clients and each mixed room, the
    figures (deliveries/s, p50, p99, the server's CPU per delivery, the load
    generator's busiest round) of sockserve's room over TCP of the same
    shape, of sockserve's room (of IRC clients, or mixed), and of ngircd's
    room of IRC clients; and the ratios of sockserve's room against
    ngircd's and against its room over TCP, by deliveries/s and by CPU per
    delivery (above 1.00x: sockserve's room is better).
    """
    rows = []
    for scenario in scenarios:
        if scenario.group not in (CHAT_IRC, CHAT_MIXED) or scenario.overTcp is None:
            continue
        room = cells.get((scenario.name, SOCKSERVE))
        tcp = cells.get((scenario.overTcp, SOCKSERVE))
        peer = cells.get((scenario.name, NGIRCD))
        if room is None and peer is None:
            continue
        rows.append(
            {
                "room": scenario.name,
                "mixed": scenario.group == CHAT_MIXED,
                "over_tcp": scenario.overTcp,
                "sockserve_tcp": _ircFigures(tcp),
                "sockserve": _ircFigures(room),
                NGIRCD: _ircFigures(peer) if scenario.group == CHAT_IRC else None,
                "sockserve_over_ngircd": _versus(room, peer),
                "sockserve_over_tcp": _versus(room, tcp),
                "sockserve_over_ngircd_by_cpu": ratio(
                    _cpuPerDelivery(peer), _cpuPerDelivery(room), True
                ),
                "sockserve_over_tcp_by_cpu": ratio(
                    _cpuPerDelivery(tcp), _cpuPerDelivery(room), True
                ),
            }
        )
    return rows


def _fmtVersus(versus: dict[str, Any]) -> str:
    value = versus["ratio"]
    if value is None:
        return "-"
    prefix = {"lower": ">=", "upper": "<=", None: ""}[versus["bound"]]
    return prefix + _fmtRatio(value) + ("" if versus["all_rounds_valid"] else " !")


def _fmtIrcFigures(figures: dict[str, Any] | None) -> str:
    if figures is None or figures["median"] is None:
        return "-"
    bound = ">=" if figures["bounded"] else ""
    invalid = "" if figures["all_rounds_valid"] else " !"
    return (
        f"{bound}{_fmt(figures['median'])}{invalid} ({_fmt(figures['min'])} - "
        f"{_fmt(figures['max'])}; p50 {_fmt(figures['p50_us'])}, p99 "
        f"{_fmt(figures['p99_us'])}; {_fmt(figures['cpu_us_per_delivery'], 3)} "
        f"us CPU; loadgen <= {_fmt(figures['loadgen_cpu_pct_max'])}%)"
    )


def ircSection(
    scenarios: Sequence[Scenario],
    servers: Sequence[ServerSpec],
    cells: dict[tuple[str, str], Cell],
) -> list[str]:
    """
    Return the Markdown lines setting each room of IRC clients, and each
    mixed room, beside the same room over TCP and beside ngircd's room
    (none if no such room ran).
    """
    rows = ircComparison(scenarios, servers, cells)
    if not rows:
        return []
    lines = [
        "",
        "### Chat with IRC members beside TCP and ngircd",
        "",
        "Each figure: deliveries/s, median (min - max over the valid rounds; "
        "median p50 and p99 latency in us; the server's CPU per delivery in "
        "us, median; the load generator's CPU in its busiest round). The IRC "
        f"rooms: every client registers (NICK, USER), joins #{IRC_CHANNEL} "
        "and sends `PRIVMSG` to it; every delivery "
        "(`:nick!user@host PRIVMSG #channel :line`) is checked, ordered, timed "
        "and must name its sender. The mixed room: clients on TCP, WebSocket "
        "and IRC in turn, in sockserve's default room. Ratios are sockserve's "
        "room against ngircd's and against its own room over TCP, by "
        "deliveries/s and by CPU per delivery (above 1.00x sockserve's room "
        "is better). `!` marks a figure with an invalid round behind it; `>=` "
        "a bound (the load generator saturated).",
        "",
        "| room (vs TCP room) | sockserve TCP | sockserve IRC or mixed "
        "| ngircd IRC | vs ngircd (by CPU) | vs TCP (by CPU) |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['room']} (vs {row['over_tcp']}) "
            f"| {_fmtIrcFigures(row['sockserve_tcp'])} "
            f"| {_fmtIrcFigures(row['sockserve'])} "
            f"| {_fmtIrcFigures(row[NGIRCD])} "
            f"| {_fmtVersus(row['sockserve_over_ngircd'])} "
            f"({_fmtRatio(row['sockserve_over_ngircd_by_cpu'])}) "
            f"| {_fmtVersus(row['sockserve_over_tcp'])} "
            f"({_fmtRatio(row['sockserve_over_tcp_by_cpu'])}) |"
        )
    return lines


#: The servers of the chat in many rooms, as the report shows them.
ROOM_SERVERS = (
    (SOCKSERVE, "one node"),
    (SOCKSERVE_BUS, "bus, 1 node"),
    (SOCKSERVE_BUS_2NODES, "bus, 2 nodes"),
)


def roomsComparison(
    scenarios: Sequence[Scenario],
    servers: Sequence[ServerSpec],
    cells: dict[tuple[str, str], Cell],
) -> list[dict[str, Any]]:
    """
    Return, for each chat in many rooms and each sockserve server that ran
    it, its figures (deliveries/s, p99, the server side's CPU per delivery)
    beside those of one room of the same size on the same server, and the
    ratio of their deliveries/s (many rooms over one).
    """
    names = {s.name for s in servers}
    rows = []
    for scenario in scenarios:
        if scenario.oneRoom is None:
            continue
        for server, label in ROOM_SERVERS:
            if server not in names:
                continue
            rooms = cells.get((scenario.name, server))
            one = cells.get((scenario.oneRoom, server))
            rows.append(
                {
                    "rooms": scenario.name,
                    "one_room": scenario.oneRoom,
                    "server": server,
                    "label": label,
                    "rooms_figures": {
                        **_figures(rooms),
                        "cpu_us_per_delivery": _cpuPerDelivery(rooms),
                        "all_rounds_valid": rooms is not None and rooms.valid,
                    },
                    "one_room_figures": {
                        **_figures(one),
                        "cpu_us_per_delivery": _cpuPerDelivery(one),
                        "all_rounds_valid": one is not None and one.valid,
                    },
                    "rooms_over_one": ratio(
                        rooms.figure if rooms else None,
                        one.figure if one else None,
                        True,
                    ),
                }
            )
    return rows


def _fmtRoomFigures(figures: dict[str, Any]) -> str:
    shown = _fmtFigures(figures)
    if figures["median"] is not None and not figures["all_rounds_valid"]:
        shown += " !"
    return shown


def roomsSection(
    scenarios: Sequence[Scenario],
    servers: Sequence[ServerSpec],
    cells: dict[tuple[str, str], Cell],
) -> list[str]:
    """
    Return the Markdown lines setting each chat in many rooms beside one
    room of the same size (none if no such chat ran).
    """
    rows = roomsComparison(scenarios, servers, cells)
    if not rows:
        return []
    lines = [
        "",
        "### Chat in many rooms beside one room",
        "",
        "Deliveries/s: median (min - max; median p99 latency in us), and the "
        "server side's CPU per delivery (us, median; the nodes and Redis). "
        "Many rooms: every client joins its room (`/join room-K`) before the "
        "window, every client sends, and each line must reach the other "
        "members of its room and nobody else (a line in another room is an "
        "error); on two nodes each room has members on both. One room: the "
        "room of the same size, every member sending (more lines each). `!` "
        "marks a figure with an invalid round behind it; a bound (`>=`) is "
        "the load generator's limit, not the server's.",
        "",
        "| many rooms (vs one room) | server | one room | CPU us/delivery "
        "| many rooms | CPU us/delivery | many / one |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        one, rooms = row["one_room_figures"], row["rooms_figures"]
        lines.append(
            f"| {row['rooms']} (vs {row['one_room']}) | {row['label']} "
            f"| {_fmtRoomFigures(one)} | {_fmt(one['cpu_us_per_delivery'], 3)} "
            f"| {_fmtRoomFigures(rooms)} | {_fmt(rooms['cpu_us_per_delivery'], 3)} "
            f"| {_fmtRatio(row['rooms_over_one'])} |"
        )
    return lines


def invalidCells(cells: dict[tuple[str, str], Cell]) -> list[Cell]:
    """
    Return the cells with at least one invalid round.
    """
    return [cell for cell in cells.values() if not cell.valid]


def _redisPerRun(cell: Cell | None) -> dict[str, Any] | None:
    """
    Return the medians, over the valid rounds, of what Redis did in a run.
    """
    if cell is None or not cell.redis:
        return None
    result: dict[str, Any] = {"cpu_ms": _median([r["cpu_ms"] for r in cell.redis])}
    for name in ("evalsha", "xadd", "xread"):
        calls = [r[name]["calls"] for r in cell.redis]
        perCall = [
            r[name]["usec_per_call"]
            for r in cell.redis
            if r[name]["usec_per_call"] is not None
        ]
        result[name] = {"calls": _median(calls), "usec_per_call": _median(perCall)}
    return result


def _p99Verdict(cell: Cell | None, target: float) -> dict[str, Any]:
    """
    Return the median p99 of C{cell}'s valid rounds against C{target}
    (microseconds, lower is better), with its spread.
    """
    if cell is None or not cell.p99:
        return {
            "p99_us": None,
            "min": None,
            "max": None,
            "target_us": target,
            "met": None,
            "all_rounds_valid": False,
        }
    p99 = statistics.median(cell.p99)
    return {
        "p99_us": p99,
        "min": min(cell.p99),
        "max": max(cell.p99),
        "p99_remote_us": _median(cell.p99Remote),
        "target_us": target,
        "met": p99 < target,
        "all_rounds_valid": cell.valid,
    }


def busComparison(
    scenarios: Sequence[Scenario],
    servers: Sequence[ServerSpec],
    cells: dict[tuple[str, str], Cell],
) -> list[dict[str, Any]]:
    """
    Return, for each chat room measured on a bus, sockserve's figures without
    a bus, with one on one node, and on two nodes; the ratios against issue
    #10's targets (one node with a bus at least L{BUS_OVER_PLAIN_TARGET}x
    the deliveries/s of one without; on two nodes, at the paced load, a p99
    under L{TWO_NODES_P99_TARGET_US}); and what Redis did per run.
    """
    names = {s.name for s in servers}
    if not names & {SOCKSERVE_BUS, SOCKSERVE_BUS_2NODES}:
        return []
    rows = []
    for scenario in scenarios:
        if scenario.group not in ("chat", CHAT_MANY_ROOMS):
            continue
        plain = cells.get((scenario.name, SOCKSERVE))
        bus = cells.get((scenario.name, SOCKSERVE_BUS))
        two = cells.get((scenario.name, SOCKSERVE_BUS_2NODES))
        if bus is None and two is None:
            continue
        paced = "--window" in scenario.loadArgs and scenario.loadArgs[
            scenario.loadArgs.index("--window") + 1
        ] not in ("", "0")
        rows.append(
            {
                "room": scenario.name,
                "paced": paced,
                "sockserve": _figures(plain),
                "bus_1node": _figures(bus),
                "bus_2nodes": _figures(two),
                "bus_over_plain": _comparison(bus, plain, BUS_OVER_PLAIN_TARGET),
                "two_nodes_over_plain": ratio(
                    two.median if two else None,
                    plain.median if plain else None,
                    True,
                ),
                # Issue #10's target is for one room; many rooms at the same
                # pacing per room queue 100 times the lines.
                "two_nodes_p99": _p99Verdict(two, TWO_NODES_P99_TARGET_US)
                if paced and scenario.group == "chat"
                else None,
                "server_cpu_us_per_delivery": {
                    "sockserve": _cpuPerDelivery(plain),
                    "bus_1node": _cpuPerDelivery(bus),
                    "bus_2nodes": _cpuPerDelivery(two),
                },
                "bus_over_plain_by_cpu": _byCpu(bus, plain),
                "redis_per_run_1node": _redisPerRun(bus),
                "redis_per_run_2nodes": _redisPerRun(two),
            }
        )
    return rows


def _cpuPerDelivery(cell: Cell | None) -> float | None:
    return None if cell is None else _median(cell.serverUsPerOp)


def _byCpu(cell: Cell | None, other: Cell | None) -> dict[str, Any]:
    """
    Compare C{cell} with C{other} by the server's CPU per delivery (the
    inverse ratio: what C{cell}'s server could deliver against C{other}'s if
    the server's core alone limited both): it holds where the load generator
    saturated, which makes the deliveries/s of the fastest server a bound.
    """
    mine, theirs = _cpuPerDelivery(cell), _cpuPerDelivery(other)
    value = ratio(theirs, mine, True)
    return {
        "ratio": value,
        "target": BUS_OVER_PLAIN_TARGET,
        "met": None if value is None else value >= BUS_OVER_PLAIN_TARGET,
    }


def _fmtRedisRun(run: dict[str, Any] | None) -> str:
    if run is None:
        return "-"
    return (
        f"CPU {_fmt(run['cpu_ms'], 1)} ms; EVALSHA {_fmt(run['evalsha']['calls'])} "
        f"x {_fmt(run['evalsha']['usec_per_call'], 1)} us; XREAD "
        f"{_fmt(run['xread']['calls'])} x {_fmt(run['xread']['usec_per_call'], 1)} us"
    )


def busSection(
    scenarios: Sequence[Scenario],
    servers: Sequence[ServerSpec],
    cells: dict[tuple[str, str], Cell],
    benchmarks: Sequence[RedisBenchmark] = (),
) -> list[str]:
    """
    Return the Markdown lines setting each room on a bus beside the same room
    without one, then Redis's own ceiling (none if no room ran on a bus).
    """
    rows = busComparison(scenarios, servers, cells)
    if not rows:
        return []
    lines = [
        "",
        "### Chat on a Redis bus",
        "",
        f"Deliveries/s: median (min - max; median p99 latency in us). The same "
        f"room without a bus (`{SOCKSERVE}`), on one node with a bus "
        f"(`{SOCKSERVE_BUS}`), and split over two nodes (`{SOCKSERVE_BUS_2NODES}`: "
        f"client i on node i mod 2, so half of each line's deliveries cross "
        f"the bus); each on a fresh private redis-server per round, nodes and "
        f"Redis on the server core. Targets (issue #10): one node with a bus at "
        f"least {BUS_OVER_PLAIN_TARGET:.2f}x the deliveries/s of one without; on "
        f"two nodes at the paced load (-w64) a p99 under "
        f"{TWO_NODES_P99_TARGET_US / 1000:g} ms (median of the rounds' p99; "
        f"their spread, and the p99 of the deliveries that crossed nodes, in "
        f"brackets). `!` marks a figure with an invalid round behind it.",
        "",
        "| room | sockserve | bus, 1 node | bus 1 node / none | bus, 2 nodes "
        "| 2 nodes / none | 2-node p99 (target) |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        verdict = "-"
        p99 = row["two_nodes_p99"]
        if p99 is not None and p99["p99_us"] is not None:
            met = "met" if p99["met"] else "MISSED"
            if not p99["all_rounds_valid"]:
                met += " !"
            verdict = (
                f"{_fmt(p99['p99_us'])} us {met}"
                f" ({_fmt(p99['min'])} - {_fmt(p99['max'])}; crossing "
                f"{_fmt(p99['p99_remote_us'])})"
            )
        twoRatio = _fmtRatio(row["two_nodes_over_plain"])
        lines.append(
            f"| {row['room']} | {_fmtFigures(row['sockserve'])} "
            f"| {_fmtFigures(row['bus_1node'])} "
            f"| {_fmtComparison(row['bus_over_plain'])} "
            f"| {_fmtFigures(row['bus_2nodes'])} | {twoRatio} | {verdict} |"
        )
    lines += [
        "",
        "The server side's CPU per delivery (us, median; the nodes and Redis, "
        "over the measured window, valid rounds and those where only the load "
        "generator saturated): where the load generator saturates, the fastest "
        "server's deliveries/s is only a bound, and the ratio of CPU per "
        "delivery (none / 1 node) says what the core alone allows. Then what "
        "Redis did per run (medians; the whole run: joining, synchronising, "
        "measuring, leaving): its CPU, and calls x time per call of EVALSHA "
        "(every script: publishing a batch, admitting, heartbeats) and XREAD "
        "(each node's reading connection).",
        "",
        "| room | CPU us/delivery: none / 1 node / 2 nodes | by CPU: 1 node / none "
        "| Redis per run, bus 1 node | Redis per run, bus 2 nodes |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        cpu = row["server_cpu_us_per_delivery"]
        byCpu = row["bus_over_plain_by_cpu"]
        verdict = "-"
        if byCpu["ratio"] is not None:
            verdict = f"{_fmtRatio(byCpu['ratio'])} " + (
                "met" if byCpu["met"] else "MISSED"
            )
        lines.append(
            f"| {row['room']} | {_fmt(cpu['sockserve'], 3)} / "
            f"{_fmt(cpu['bus_1node'], 3)} / {_fmt(cpu['bus_2nodes'], 3)} "
            f"| {verdict} | {_fmtRedisRun(row['redis_per_run_1node'])} "
            f"| {_fmtRedisRun(row['redis_per_run_2nodes'])} |"
        )
    lines.extend(redisBenchmarkSection(benchmarks))
    return lines


def redisBenchmarkSection(benchmarks: Sequence[RedisBenchmark]) -> list[str]:
    """
    Return the Markdown lines of C{redis-benchmark}'s figures (none if it
    did not run).
    """
    if not benchmarks:
        return []
    lines = [
        "",
        "Redis's own ceiling, in this run on this machine: `redis-benchmark "
        "-n N -c C -P 1` against a private redis-server on the server core, "
        "the benchmark on the load generator's core. One client is one node's "
        "connection, a command at a time (the latency bound: a node has one "
        "batch in flight at a time); 50 clients saturate Redis (its ceiling). "
        "`EVALSHA publish` runs a script doing what the bus's publishing does "
        "(a counter in a hash, an XADD with MAXLEN ~ 10000).",
        "",
        "| command | clients | requests/s | p50 ms | p99 ms |",
        "|---|---|---|---|---|",
    ]
    for b in benchmarks:
        if b.rps is None:
            lines.append(f"| {b.label} | {b.clients} | failed: {b.problem} | | |")
            continue
        lines.append(
            f"| {b.label} | {b.clients} | {_fmt(b.rps)} | {b.p50Ms:.3f} "
            f"| {b.p99Ms:.3f} |"
        )
    return lines

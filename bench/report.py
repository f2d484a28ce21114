"""
Summarising measurements: medians over valid rounds, min-max spreads, ratios
against the peers, and each chat room over WebSocket beside the same room over
TCP, as Markdown and JSON.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.runner import Measurement
from bench.scenarios import Scenario
from bench.servers import CHAT_WS, SOCKSERVE, ServerSpec

#: Issue #11: sockserve's room over WebSocket against the same room over TCP,
#: and against each WebSocket peer (deliveries/s, at least this many times).
WS_OVER_TCP_TARGET = 0.5
WS_OVER_PEER_TARGET = 1.0


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
) -> str:
    """
    Return the Markdown report: a summary table of medians and ratios, then
    the details (spread, latency, CPU, validity) of every cell.
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


def _comparison(cell: Cell | None, other: Cell | None, target: float) -> dict[str, Any]:
    """
    Compare C{cell}'s figure with C{other}'s against C{target}. As in
    L{boundedRatio}, the ratio is a lower bound if C{cell}'s figure is a bound
    and an upper bound if C{other}'s is; where some rounds are invalid for
    other reasons, it is the ratio of the valid rounds' medians.
    """
    comparison: dict[str, Any] = {"ratio": None, "bound": None, "target": target}
    comparison.update(met=None, all_rounds_valid=False)
    if cell is None or other is None or (cell.bounded and other.bounded):
        return comparison
    if (cell.valid or cell.bounded) and (other.valid or other.bounded):
        value = ratio(cell.figure, other.figure, True)
        bound = "lower" if cell.bounded else "upper" if other.bounded else None
        comparison.update(bound=bound, all_rounds_valid=cell.valid and other.valid)
    else:
        value = ratio(cell.median, other.median, True)
    if value is not None:
        comparison.update(ratio=value, met=_verdict(value, comparison["bound"], target))
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
        if scenario.overTcp is None:
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


def invalidCells(cells: dict[tuple[str, str], Cell]) -> list[Cell]:
    """
    Return the cells with at least one invalid round.
    """
    return [cell for cell in cells.values() if not cell.valid]

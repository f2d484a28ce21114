"""
C{--metrics}: the server's statistics in the Prometheus text format, and
its health.

C{GET /metrics} is rendered by C{prometheus_client} from a collector that
reads the server's plain counters (L{ServerStatistics}) when it is scraped,
beside the process metrics the library gives (CPU, memory, open files);
C{GET /healthz} answers C{200 ok} while the server listens, C{503} once it
does not. Anything else is 404.

The site holds at most L{METRICS_CONNECTIONS} connections at once, each
closed after L{METRICS_IDLE_TIMEOUT} seconds idle (and L{METRICS_LIFETIME}
seconds in all), and logs no request: a flood of connections or scrapes
costs neither the server's clients their descriptors nor the log its
space (see L{BoundedSite}).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector
from twisted.internet.interfaces import IReactorTime
from twisted.web.resource import Resource
from twisted.web.server import Request

from sockserve._connections import ConnectionRegistry
from sockserve._loglimit import LogLimiter
from sockserve._sites import BoundedSite
from sockserve.accounts.logins import RESULTS as LOGIN_RESULTS
from sockserve.chat.moderation import ACTIONS as MODERATION_ACTIONS
from sockserve.stats import ServerStatistics

if TYPE_CHECKING:
    from sockserve.bus.redis import BusFigures

# Connections the metrics listener holds at once: plenty for Prometheus,
# which scrapes a server one request at a time. They are among the
# descriptors kept below the open-file limit beside --max-connections
# (sockserve.tap.RESERVED_FILES).
METRICS_CONNECTIONS = 16
# Seconds a metrics connection may stay idle, and live in all.
METRICS_IDLE_TIMEOUT = 5.0
METRICS_LIFETIME = 30.0

REFUSAL_REASONS = (
    "full",
    "per_ip",
    "busy",
    "line_too_long",
    "idle",
    "slow_reader",
    "request_timeout",
)


class StatisticsCollector(Collector):
    """
    Read a server's counters, and its live connections, at scrape time.

    @ivar mode: the server's mode, a label of every metric.
    @ivar members: chat: how many people are in the chat on this server
        (called at scrape time), or C{None}.
    @ivar logins: chat with accounts: logins tried, by result, or C{None}.
    @ivar rooms: chat: how many rooms have people on this server, or
        C{None}.
    @ivar bus: chat with C{--bus}: how the node stands with the bus, or
        C{None}.
    @ivar moderation: chat with accounts: operators' actions so far, by
        action (kick, ban, unban, mute, unmute), or C{None}.
    """

    def __init__(
        self,
        mode: str,
        stats: ServerStatistics,
        registry: ConnectionRegistry,
        members: Callable[[], int] | None = None,
        rooms: Callable[[], int] | None = None,
        logins: Counter[str] | None = None,
        bus: Callable[[], BusFigures] | None = None,
        moderation: Counter[str] | None = None,
    ) -> None:
        self.mode = mode
        self.stats = stats
        self.registry = registry
        self.members = members
        self.rooms = rooms
        self.logins = logins
        self.bus = bus
        self.moderation = moderation

    def collect(self) -> Iterator[Metric]:
        """
        Yield the metrics, read from the counters now.
        """
        stats, labels = self.stats, [self.mode]
        open = GaugeMetricFamily(
            "sockserve_connections_open", "Connections open now.", labels=["mode"]
        )
        open.add_metric(labels, len(self.registry))
        yield open
        for name, documentation, value in (
            ("connections_accepted", "Connections admitted.", stats.accepted),
            ("lines_received", "Lines received from clients.", stats.linesIn),
            ("bytes_received", "Bytes received from clients.", stats.bytesIn),
            ("bytes_sent", "Bytes of replies, lines and notices sent.", stats.bytesOut),
        ):
            counter = CounterMetricFamily(
                f"sockserve_{name}", documentation, labels=["mode"]
            )
            counter.add_metric(labels, value)
            yield counter
        openBy = GaugeMetricFamily(
            "sockserve_front_end_connections_open",
            "Connections open now, by front end (line, websocket, irc, irc-websocket).",
            labels=["mode", "front_end"],
        )
        acceptedBy = CounterMetricFamily(
            "sockserve_front_end_connections_accepted",
            "Connections admitted, by front end.",
            labels=["mode", "front_end"],
        )
        for frontEnd in sorted(stats.acceptedBy):
            openBy.add_metric([self.mode, frontEnd], stats.openBy[frontEnd])
            acceptedBy.add_metric([self.mode, frontEnd], stats.acceptedBy[frontEnd])
        yield openBy
        yield acceptedBy
        refused = CounterMetricFamily(
            "sockserve_connections_refused",
            "Connections refused, or closed by a limit, by reason.",
            labels=["mode", "reason"],
        )
        for reason in sorted({*REFUSAL_REASONS, *stats.refused}):
            refused.add_metric([self.mode, reason], stats.refused[reason])
        yield refused
        if self.members is not None:
            deliveries = CounterMetricFamily(
                "sockserve_chat_deliveries",
                "Chat lines delivered, counted per recipient.",
                labels=["mode"],
            )
            deliveries.add_metric(labels, stats.deliveries)
            yield deliveries
            members = GaugeMetricFamily(
                "sockserve_chat_members",
                "People in the chat on this server now, in any room.",
                labels=["mode"],
            )
            members.add_metric(labels, self.members())
            yield members
            held = GaugeMetricFamily(
                "sockserve_chat_input_held",
                "Chat clients whose input waits now for a rate limit (commands "
                "a second, or --flood-limit).",
                labels=["mode"],
            )
            held.add_metric(labels, stats.held)
            yield held
            holds = CounterMetricFamily(
                "sockserve_chat_input_holds",
                "Times a chat client's input was held for a rate limit, by limit.",
                labels=["mode", "limit"],
            )
            for limit in sorted({"commands", "flood", *stats.holds}):
                holds.add_metric([self.mode, limit], stats.holds[limit])
            yield holds
        if self.rooms is not None:
            rooms = GaugeMetricFamily(
                "sockserve_chat_rooms",
                "Rooms with people on this server now (the default room always).",
                labels=["mode"],
            )
            rooms.add_metric(labels, self.rooms())
            yield rooms
        if self.logins is not None:
            logins = CounterMetricFamily(
                "sockserve_logins",
                "Logins tried, by result (ok, failed: a wrong name or password, "
                "throttled: refused unchecked while failures make the address or "
                "account wait, busy: too many checks under way, insecure: not "
                "over TLS with --require-tls-for-login, error).",
                labels=["mode", "result"],
            )
            for result in sorted({*LOGIN_RESULTS, *self.logins}):
                logins.add_metric([self.mode, result], self.logins[result])
            yield logins
        if self.moderation is not None:
            actions = CounterMetricFamily(
                "sockserve_moderation",
                "Operators' actions, by action (kick, ban, unban, mute, unmute).",
                labels=["mode", "action"],
            )
            for action in sorted({*MODERATION_ACTIONS, *self.moderation}):
                actions.add_metric([self.mode, action], self.moderation[action])
            yield actions
        if self.bus is not None:
            yield from self._busMetrics(self.bus())

    def _busMetrics(self, figures: BusFigures) -> Iterator[Metric]:
        """
        The bus's metrics, from C{figures}.
        """
        labels = [self.mode]
        for name, documentation, value in (
            (
                "connected",
                "1 while this node is in contact with the bus.",
                figures.connected,
            ),
            (
                "lag_bytes",
                "Bytes the slowest node has left to read, in the room where it "
                "is furthest behind.",
                figures.lag,
            ),
            (
                "outbox_bytes",
                "Bytes of this node's lines waiting to be published on the bus.",
                figures.outbox,
            ),
        ):
            gauge = GaugeMetricFamily(
                f"sockserve_bus_{name}", documentation, labels=["mode"]
            )
            gauge.add_metric(labels, float(value))
            yield gauge
        reconnects = CounterMetricFamily(
            "sockserve_bus_reconnects",
            "Times this node joined the bus again after losing contact.",
            labels=["mode"],
        )
        reconnects.add_metric(labels, figures.reconnects)
        yield reconnects


class MetricsResource(Resource):
    """
    C{/metrics}: the registry's metrics in the Prometheus text format.
    """

    isLeaf = True

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__()
        self.registry = registry

    def render_GET(self, request: Request) -> bytes:
        """
        Render the metrics.
        """
        request.setHeader(b"Content-Type", CONTENT_TYPE_LATEST.encode("ascii"))
        request.setHeader(b"Cache-Control", b"no-store")
        return generate_latest(self.registry)


class HealthResource(Resource):
    """
    C{/healthz}: C{200 ok} while the server listens and nothing is wrong;
    C{200 degraded: WHY} while it listens and serves its own clients, but
    something it needs is wrong (a bus out of contact, or out of memory);
    C{503 not listening} otherwise. A load balancer that wants the first
    only checks for the body C{ok}.
    """

    isLeaf = True

    def __init__(
        self,
        healthy: Callable[[], bool],
        degraded: Callable[[], str | None] = lambda: None,
    ) -> None:
        super().__init__()
        self.healthy = healthy
        self.degraded = degraded

    def render_GET(self, request: Request) -> bytes:
        """
        Say whether the server is healthy.
        """
        request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
        request.setHeader(b"Cache-Control", b"no-store")
        if not self.healthy():
            request.setResponseCode(503)
            return b"not listening\n"
        why = self.degraded()
        if why is not None:
            return f"degraded: {why}\n".encode()
        return b"ok\n"


class MetricsSite(BoundedSite):
    """
    The site of C{--metrics}: a L{BoundedSite} whose refusals are logged as
    metrics refusals.
    """

    connectionName = "a metrics connection"
    refusalKind = "metrics refusals"


def metricsSite(
    collector: Collector,
    healthy: Callable[[], bool],
    clock: IReactorTime | None = None,
    logLimit: LogLimiter | None = None,
    degraded: Callable[[], str | None] = lambda: None,
) -> MetricsSite:
    """
    Return the web site of C{--metrics}: C{/metrics} (C{collector} and the
    process's own metrics) and C{/healthz} (see L{HealthResource}), holding at most
    L{METRICS_CONNECTIONS} connections (those refused are logged through
    C{logLimit}), each for at most L{METRICS_IDLE_TIMEOUT} seconds idle,
    timed by C{clock} (by default the reactor).
    """
    registry = CollectorRegistry()
    registry.register(collector)
    ProcessCollector(registry=registry)
    root = Resource()
    root.putChild(b"metrics", MetricsResource(registry))
    root.putChild(b"healthz", HealthResource(healthy, degraded))
    return MetricsSite(
        root,
        total=METRICS_CONNECTIONS,
        logLimit=logLimit,
        lifetime=METRICS_LIFETIME,
        timeout=METRICS_IDLE_TIMEOUT,
        reactor=clock,
    )

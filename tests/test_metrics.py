"""
--metrics: the statistics object, its collector, and a real scrape.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from sockserve.limits import Limits
from sockserve.metrics import StatisticsCollector
from tests.processes import (
    Processes,
    receiveText,
    receiveToEOF,
)
from tests.support import connectOnStringTransport

Sample = tuple[str, tuple[tuple[str, str], ...]]


def scrape(collector: StatisticsCollector) -> dict[Sample, float]:
    registry = CollectorRegistry()
    registry.register(collector)
    samples: dict[Sample, float] = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def test_counters_reach_the_collector() -> None:
    """What the protocols count is what a scrape reads: connections,
    refusals by reason, lines and bytes, chat deliveries and members."""
    first, firstOut, factory = connectOnStringTransport("chat", Limits(maxClients=2))
    second, _, _ = connectOnStringTransport("chat", factory=factory)
    connectOnStringTransport("chat", factory=factory)  # the room is full
    first.dataReceived(b"hello\nworld\n")
    room = factory.room
    assert room is not None
    collector = StatisticsCollector(
        "chat", factory.context.stats, factory.context.registry, room.population
    )
    samples = scrape(collector)
    mode = (("mode", "chat"),)
    assert samples[("sockserve_connections_accepted_total", mode)] == 3
    assert samples[("sockserve_connections_open", mode)] == 3
    assert (
        samples[("sockserve_connections_refused_total", (*mode, ("reason", "full")))]
        == 1
    )
    assert (
        samples[("sockserve_connections_refused_total", (*mode, ("reason", "idle")))]
        == 0
    )
    assert samples[("sockserve_lines_received_total", mode)] == 2
    assert samples[("sockserve_bytes_received_total", mode)] == 12
    assert samples[("sockserve_chat_deliveries_total", mode)] == 2
    assert samples[("sockserve_chat_members", mode)] == 2
    assert samples[("sockserve_bytes_sent_total", mode)] > 0
    del second, firstOut


@pytest.fixture
def processes() -> Iterator[Processes]:
    with Processes() as processes:
        yield processes


def fetch(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return (
                response.status,
                response.headers["Content-Type"],
                response.read().decode(),
            )
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read().decode()


@pytest.mark.e2e
def test_a_real_scrape(processes: Processes) -> None:
    """twistd sockserve --metrics 0 serves /metrics in the Prometheus text
    format on loopback, with the server's counters and the process's own
    metrics, and /healthz; anything else is 404."""
    server = processes.server("--metrics", "0", mode="echo")
    log = server.output.waitForText(b"sockserve metrics server listening on")
    [(_, address)] = [
        entry
        for entry in __import__("tests.processes").processes.listeningAddresses(log)
        if entry[0] == "metrics"
    ]
    assert address.startswith("127.0.0.1:")
    sock = processes.connect(("127.0.0.1", server.port))
    sock.sendall(b"a\nb\n")
    receiveText(sock, b"OK .. b\n")
    busy = processes.connect(("127.0.0.1", server.port))
    busy.sendall(b"x" * 70000)
    receiveToEOF(busy)
    status, contentType, text = fetch(f"http://{address}/metrics")
    assert status == 200
    assert contentType.startswith("text/plain")
    assert 'sockserve_connections_open{mode="echo"} 1.0' in text
    assert 'sockserve_lines_received_total{mode="echo"} 2.0' in text
    assert (
        'sockserve_connections_refused_total{mode="echo",reason="line_too_long"} 1.0'
        in text
    )
    assert "process_resident_memory_bytes" in text
    assert fetch(f"http://{address}/healthz")[:1] == (200,)
    assert fetch(f"http://{address}/nothing")[0] == 404


def test_healthz_tells_ok_degraded_and_not_listening() -> None:
    """/healthz: 200 ok; 200 degraded with the reason while something the
    server needs is wrong; 503 while it does not listen."""
    from twisted.web.test.requesthelper import DummyRequest

    from sockserve.metrics import HealthResource

    listening = [True]
    problems: list[str | None] = [None]
    resource = HealthResource(lambda: listening[0], lambda: problems[0])

    def get() -> tuple[int, bytes]:
        request = DummyRequest([b""])
        body = resource.render_GET(request)  # type: ignore[arg-type]
        return request.responseCode or 200, body

    assert get() == (200, b"ok\n")
    problems[0] = "Redis is out of memory: lines to the other servers wait"
    assert get() == (
        200,
        b"degraded: Redis is out of memory: lines to the other servers wait\n",
    )
    listening[0] = False
    assert get() == (503, b"not listening\n")

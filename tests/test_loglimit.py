"""
Logging what clients cause at a bounded rate.
"""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.logger import (
    ILogObserver,
    LogEvent,
    Logger,
    LogLevel,
    formatEvent,
    globalLogPublisher,
)
from zope.interface import implementer

from sockserve._loglimit import LogLimiter


def collect():
    lines: list[str] = []

    @implementer(ILogObserver)
    def observe(event: LogEvent) -> None:
        lines.append(formatEvent(event))

    return lines, observe


def test_a_flood_is_logged_then_counted() -> None:
    """The first events of a kind in a window are logged; the rest are
    counted, and one summary with the first of them is logged when the
    window ends; then events are logged again."""
    clock = Clock()
    limiter = LogLimiter(clock, perWindow=3, window=10.0)
    log = Logger(namespace="test")
    lines, observe = collect()
    globalLogPublisher.addObserver(observe)
    try:
        for n in range(10):
            limiter.emit(log, LogLevel.warn, "refusals", "Refused {peer}", peer=n)
        assert lines == ["Refused 0", "Refused 1", "Refused 2"]
        clock.advance(10)
        assert lines[3:] == [
            "7 more refusals not logged in 10 s; the first of them: Refused 3"
        ]
        limiter.emit(log, LogLevel.warn, "refusals", "Refused {peer}", peer="x")
        assert lines[4:] == ["Refused x"]
    finally:
        globalLogPublisher.removeObserver(observe)
    assert clock.getDelayedCalls() == []


def test_kinds_are_counted_apart_and_flushed() -> None:
    """Each kind has its own count; flush logs every pending summary at once
    (at shutdown) and leaves no timer."""
    clock = Clock()
    limiter = LogLimiter(clock, perWindow=1, window=10.0)
    assert limiter.allows("connections")
    assert not limiter.allows("connections")
    assert limiter.allows("disconnections")
    assert limiter.allows("connections", limit=5)
    lines, observe = collect()
    globalLogPublisher.addObserver(observe)
    try:
        limiter.flush()
    finally:
        globalLogPublisher.removeObserver(observe)
    assert lines == ["1 more connections not logged in 10 s"]
    assert clock.getDelayedCalls() == []

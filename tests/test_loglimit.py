"""
Logging what clients cause at a bounded rate.
"""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.logger import Logger, LogLevel

from sockserve._loglimit import LogLimiter
from tests.support import capturedLogs


def test_a_flood_is_logged_then_counted() -> None:
    """The first events of a kind in a window are logged; the rest are
    counted, and one summary with the first of them is logged when the
    window ends; then events are logged again."""
    clock = Clock()
    limiter = LogLimiter(clock, perWindow=3, window=10.0)
    log = Logger(namespace="test")
    with capturedLogs() as logged:
        for n in range(10):
            limiter.emit(log, LogLevel.warn, "refusals", "Refused {peer}", peer=n)
        assert logged.texts() == ["Refused 0", "Refused 1", "Refused 2"]
        clock.advance(10)
        assert logged.texts()[3:] == [
            "7 more refusals not logged in 10 s; the first of them: Refused 3"
        ]
        limiter.emit(log, LogLevel.warn, "refusals", "Refused {peer}", peer="x")
        assert logged.texts()[4:] == ["Refused x"]
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
    with capturedLogs() as logged:
        limiter.flush()
    assert logged.texts() == ["1 more connections not logged in 10 s"]
    assert clock.getDelayedCalls() == []

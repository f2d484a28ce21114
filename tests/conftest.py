"""
Fixtures that make pytest as strict as trial: a test fails when it logs an
error (an unhandled error in a Deferred included), or leaves a delayed call,
a listening port or a connection behind in the reactor.

And what makes the suite the same wherever it runs: the programs the tests
start get the signals a shell would give them, and property tests draw the
same examples without a deadline, however busy the machine.
"""

from __future__ import annotations

import gc
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import settings
from twisted.logger import ILogObserver, LogEvent, formatEvent, globalLogPublisher
from zope.interface import implementer

from sockserve._reactor import installDefault
from tests.processes import Processes
from tests.redis import RedisServer

# The suite runs on the reactor twistd sockserve runs on, installed before
# pytest-twisted installs Twisted's default (it accepts this one: an epoll
# reactor). tests/test_reactor.py checks it was.
installDefault()

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
"""Debian's Chromium, which the browser tests drive (Playwright never
downloads one)."""

CHROMIUM_FLAGS = [
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-gpu",
    "--no-first-run",
    "--disable-dev-shm-usage",
]
"""Keep Chromium off the network: this machine has none, and it would try."""

# Started under nohup, or in the background by a shell without job control,
# this process ignores SIGHUP or SIGINT, and so would every server a test
# starts (an ignored signal stays ignored across exec; twistd then neither
# reopens its log on SIGHUP nor stops on SIGINT, rightly for nohup): give
# them back their usual meaning.
if signal.getsignal(signal.SIGHUP) == signal.SIG_IGN:
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# The same examples on every run, and no deadline: a shared machine's pauses
# are not the code's slowness.
settings.register_profile("sockserve", derandomize=True, deadline=None)
settings.load_profile("sockserve")


@implementer(ILogObserver)
class ErrorCollector:
    """
    Collect the error and critical events (and failures) logged.
    """

    def __init__(self) -> None:
        self.events: list[LogEvent] = []

    def __call__(self, event: LogEvent) -> None:
        level = event.get("log_level")
        if "log_failure" in event or (
            level is not None and level.name in ("error", "critical")
        ):
            self.events.append(event)

    def take(self) -> list[LogEvent]:
        """
        Return the errors logged so far, and expect them: they no longer fail
        the test.
        """
        gc.collect()
        events, self.events = self.events, []
        return events


def describe(event: LogEvent) -> str:
    text = formatEvent(event)
    failure = event.get("log_failure")
    if failure is not None:
        text += "\n" + failure.getTraceback()
    return text


@pytest.fixture(autouse=True)
def logged_errors() -> Iterator[ErrorCollector]:
    """
    Fail the test if it logs an error it did not expect (through C{take}).
    """
    collector = ErrorCollector()
    globalLogPublisher.addObserver(collector)
    try:
        yield collector
        gc.collect()
        # What outlived this test is older than any later test's garbage:
        # out of the collector's sight, each test's collection looks at its
        # own objects only (a whole-heap collection took 0.6 s per test late
        # in a run).
        gc.freeze()
    finally:
        globalLogPublisher.removeObserver(collector)
    if collector.events:
        pytest.fail(
            "errors were logged:\n" + "\n".join(describe(e) for e in collector.events)
        )


@pytest.fixture(autouse=True)
def clean_reactor() -> Iterator[None]:
    """
    Fail the test if it leaves delayed calls, readers or writers in the reactor.
    """
    from twisted.internet import reactor

    before = _reactorState(reactor)
    yield
    after = _reactorState(reactor)
    leftovers = [
        f"{kind}: {thing!r}"
        for kind in ("delayed calls", "readers", "writers")
        for thing in after[kind] - before[kind]
    ]
    if leftovers:
        for call in after["delayed calls"] - before["delayed calls"]:
            if call.active():
                call.cancel()
        for selectable in (after["readers"] | after["writers"]) - (
            before["readers"] | before["writers"]
        ):
            if hasattr(selectable, "stopListening"):
                selectable.stopListening()
            elif hasattr(selectable, "abortConnection"):
                selectable.abortConnection()
        pytest.fail("the test left these in the reactor:\n" + "\n".join(leftovers))


def _reactorState(reactor: Any) -> dict[str, set[Any]]:
    return {
        "delayed calls": {c for c in reactor.getDelayedCalls() if c.active()},
        "readers": {r for r in reactor.getReaders() if not _isWaker(r)},
        "writers": {w for w in reactor.getWriters() if not _isWaker(w)},
    }


def _isWaker(selectable: object) -> bool:
    """
    The reactor's own wakers (for threads and signals) are not leftovers.
    """
    return type(selectable).__name__.endswith("Waker")


@pytest.fixture
def processes() -> Iterator[Processes]:
    """The processes and sockets of one test, closed at its end."""
    with Processes() as processes:
        yield processes


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A private Redis server on a port the system chose, killed at the end."""
    server = RedisServer(tmp_path / "redis").start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """One headless Chromium for every browser test a worker runs (each
    test opens contexts of its own in it)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def pages(browser: Browser) -> Iterator[list[Page]]:
    """The pages a test opens, closed (with their contexts) at its end."""
    opened: list[Page] = []
    yield opened
    for page in opened:
        if not page.is_closed():
            page.context.close()

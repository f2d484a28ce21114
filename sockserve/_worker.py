"""
The entry point of a worker process: C{python -m sockserve._worker OPTIONS}.

The main process of C{twistd sockserve --workers N} runs this with its own
options and the port numbers it got (see L{sockserve._workers}). The worker
listens on the same ports with C{SO_REUSEPORT} and serves until SIGTERM,
SIGINT, or the end of its stdin (a pipe from the main process, so a worker
never outlives it). What it logs goes to its stdout, one event a line, and
the main process logs it with the worker's name.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

from twisted.internet.interfaces import IReactorCore
from twisted.internet.protocol import Protocol, connectionDone
from twisted.logger import (
    ILogObserver,
    LogEvent,
    Logger,
    LogLevel,
    formatEvent,
    globalLogBeginner,
)
from twisted.python import usage
from twisted.python.failure import Failure
from zope.interface import implementer

from sockserve._reactor import WORKER_REACTOR, installNamed
from sockserve.tap import Options, makeServerService

_log = Logger()


@implementer(ILogObserver)
def toMainProcess(event: LogEvent) -> None:
    """
    Write C{event} to stdout, each line after the event's level (a
    failure's traceback after its text): the main process logs it at that
    level, with the time and the worker's name.
    """
    text = formatEvent(event)
    failure = event.get("log_failure")
    if failure is not None:
        text += "\n" + failure.getTraceback()
    level = event.get("log_level", LogLevel.info).name
    sys.stdout.write("".join(f"{level} {line}\n" for line in text.splitlines()))
    sys.stdout.flush()


class ParentWatch(Protocol):
    """
    Stop the reactor when the main process goes away (stdin is its pipe).
    """

    def __init__(self, reactor: Any) -> None:
        self.reactor = reactor

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """
        The pipe closed: stop.
        """
        if self.reactor.running:
            self.reactor.stop()


def runWorker(argv: Sequence[str], reactor: Any = None) -> None:
    """
    Run one worker process with the options C{argv} and serve until told to
    stop.
    """
    from twisted.internet import stdio

    if reactor is None:
        installNamed(os.environ.get(WORKER_REACTOR))
        from twisted.internet import reactor as global_reactor

        reactor = global_reactor
    options = Options()
    try:
        options.parseOptions(argv)
    except usage.UsageError as error:
        raise SystemExit(f"sockserve worker: {error}") from None
    globalLogBeginner.beginLoggingTo([toMainProcess], redirectStandardIO=False)
    kind = type(reactor)
    _log.info(
        "reactor class: {module}.{name}.",
        module=kind.__module__,
        name=kind.__qualname__,
    )
    service = makeServerService(options, reactor)
    # Listen now: a failure ends the worker with its one-line message.
    service.privilegedStartService()
    devnull = os.open(os.devnull, os.O_WRONLY)
    stdio.StandardIO(ParentWatch(reactor), stdin=0, stdout=devnull)  # type: ignore[call-arg]
    core: IReactorCore = reactor
    core.callWhenRunning(service.startService)
    core.addSystemEventTrigger("before", "shutdown", service.stopService)
    reactor.run()


if __name__ == "__main__":  # pragma: no cover - run in worker processes
    runWorker(sys.argv[1:])

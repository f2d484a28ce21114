"""
JSON logs for log shippers: C{twistd --logger sockserve.logs.jsonLogObserver}.

Each event is one JSON object on one line, with the event's own fields (the
client's address as C{peer}, a refusal's C{reason}, a summary's counts...),
its level, its time, and the line the text log would show as C{text}.

The lines go where C{twistd}'s text log would: to C{--logfile} (C{twistd.log}
for a daemon told no other), reopened on SIGHUP and rotated on SIGUSR1 like
the text log's file, or to standard output under C{twistd -n}. C{twistd}
calls the factory named by C{--logger} with no arguments, and does not tell
it C{--logfile}; it builds the service first, and sockserve's C{makeService}
notes C{twistd}'s options for it here (L{noteTwistdLogging}).
"""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import IO, Any

from twisted.logger import FileLogObserver, ILogObserver, LogEvent, formatEvent
from twisted.python.logfile import BaseLogFile, LogFile
from zope.interface import implementer

_PLAIN = (str, int, float, bool, type(None))


@implementer(ILogObserver)
class JSONLineObserver:
    """
    Write each event as one JSON object and a line feed: C{time} (ISO 8601),
    C{level}, C{namespace}, C{text} (the line the text log would show), the
    event's own fields (values other than strings, numbers and booleans as
    their text), and C{traceback} for a failure. Control characters are
    escaped by JSON itself.
    """

    def __init__(self, outFile: IO[str]) -> None:
        self._observer = FileLogObserver(outFile, self.format)

    @staticmethod
    def format(event: LogEvent) -> str:
        """
        Return C{event} as a JSON line.
        """
        level = event.get("log_level")
        when = event.get("log_time")
        shown: dict[str, object] = {
            "time": None
            if when is None
            else datetime.fromtimestamp(when, timezone.utc).isoformat(),
            "level": None if level is None else level.name,
            "namespace": event.get("log_namespace"),
            "text": formatEvent(event),
        }
        for key, value in event.items():
            if key.startswith("log_") or key in shown:
                continue
            shown[key] = value if isinstance(value, _PLAIN) else str(value)
        failure = event.get("log_failure")
        if failure is not None:
            shown["traceback"] = failure.getTraceback()
        return json.dumps(shown) + "\n"

    def __call__(self, event: LogEvent) -> None:
        """
        Write C{event}.
        """
        self._observer(event)


class _TwistdLogging:
    """
    Where C{twistd} was told to log, as its options say.

    @ivar config: C{twistd}'s options, or C{None} before sockserve's
        C{makeService} noted them (or under C{twist}).
    @ivar logFile: the file L{jsonLogObserver} opened, if it opened one.
    """

    config: Mapping[str, Any] | None = None
    logFile: BaseLogFile | None = None


_TWISTD = _TwistdLogging()


def noteTwistdLogging(config: Mapping[str, Any] | None) -> None:
    """
    Note C{twistd}'s options C{config} (those of C{twistd}, which has
    C{--nodaemon}: C{twist}'s are ignored) for L{jsonLogObserver}.
    """
    if config is not None and "nodaemon" in config:
        _TWISTD.config = config


def logFileOf(config: Mapping[str, Any] | None) -> str | None:
    """
    Return the absolute path of the file C{twistd} logs to with options
    C{config}, or C{None} when it logs to standard output or syslog.
    """
    if config is None or "nodaemon" not in config or config.get("syslog"):
        return None
    name = config.get("logfile") or ""
    if name == "-" or (not name and config.get("nodaemon")):
        return None
    return os.path.abspath(name or "twistd.log")


def describeLogging(config: Mapping[str, Any] | None) -> str:
    """
    Say where C{twistd} logs with options C{config}: a file's path,
    C{syslog} or C{standard output}.
    """
    path = logFileOf(config)
    if path is not None:
        return path
    if config is not None and config.get("syslog"):
        return "syslog"
    return "standard output"


def openedLogFile() -> BaseLogFile | None:
    """
    Return the log file L{jsonLogObserver} writes to, or C{None}.
    """
    return _TWISTD.logFile


def jsonLogObserver() -> ILogObserver:
    """
    Return an observer writing JSON lines where C{twistd} would write its
    text log (the factory C{twistd --logger} names): C{--logfile}, or
    standard output in the foreground without one.
    """
    config = _TWISTD.config
    path = logFileOf(config)
    if path is None:
        if config is not None and not config.get("nodaemon"):
            sys.exit("Daemons cannot log to stdout, exiting!")
        return JSONLineObserver(sys.stdout)
    logFile = LogFile.fromFullPath(path)
    _TWISTD.logFile = logFile
    # As twistd does for its text log's file: SIGUSR1 rotates it.
    if not signal.getsignal(signal.SIGUSR1):

        def rotateLog(number: int, frame: object) -> None:
            from twisted.internet import reactor

            reactor.callFromThread(logFile.rotate)  # type: ignore[attr-defined]

        signal.signal(signal.SIGUSR1, rotateLog)
    return JSONLineObserver(logFile)

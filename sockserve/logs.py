"""
JSON logs for log shippers: C{twistd --logger sockserve.logs.jsonLogObserver}.

Each event is one JSON object on one line of standard output, with the
event's own fields (the client's address as C{peer}, a refusal's C{reason},
a summary's counts...), its level, its time, and the line the text log would
show as C{text}. C{twistd} calls the factory named by C{--logger} with no
arguments.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import IO

from twisted.logger import FileLogObserver, ILogObserver, LogEvent, formatEvent
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
            else datetime.fromtimestamp(when, UTC).isoformat(),
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


def jsonLogObserver() -> ILogObserver:
    """
    Return an observer writing JSON lines to standard output (the factory
    C{twistd --logger} names).
    """
    return JSONLineObserver(sys.stdout)

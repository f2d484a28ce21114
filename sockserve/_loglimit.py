"""
Logging what clients cause at a bounded rate.

One client can cause an event per connection or per line (a refusal, a line
too long, a change of name); logged one line each, a flood of them becomes
megabytes of log a second. A L{LogLimiter} logs the first C{perWindow}
events of each kind in a C{window} of seconds as they come, counts the rest,
and logs one summary line for them when the window ends: nothing is lost
from the counts, and the log grows at a bounded rate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger, LogLevel

WINDOW = 10.0
PER_WINDOW = 20


@dataclass
class _Kind:
    """
    The events of one kind in the current window.
    """

    started: float
    logged: int = 0
    suppressed: int = 0
    example: dict[str, Any] = field(default_factory=dict)


class LogLimiter:
    """
    Log events of each kind at most C{perWindow} times a C{window}, with a
    summary of the rest.

    @ivar log: where summaries go.
    """

    log = Logger()

    def __init__(
        self,
        clock: IReactorTime,
        perWindow: int = PER_WINDOW,
        window: float = WINDOW,
    ) -> None:
        self.clock = clock
        self.perWindow = perWindow
        self.window = window
        self._kinds: dict[str, _Kind] = {}
        self._timer: IDelayedCall | None = None

    def allows(self, kind: str, limit: int | None = None) -> bool:
        """
        Count an event of C{kind} (a few words: C{"refusals"}); return
        whether it may be logged: fewer than C{limit} (by default
        C{perWindow}) of its kind were in this window. An event not logged
        is counted in the summary logged when the window ends.
        """
        now = self.clock.seconds()
        state = self._kinds.get(kind)
        if state is None or now - state.started >= self.window:
            if state is not None:
                self._summarise(kind, state)
            state = self._kinds[kind] = _Kind(now)
        if state.logged < (self.perWindow if limit is None else limit):
            state.logged += 1
            return True
        state.suppressed += 1
        if state.suppressed == 1 and self._timer is None:
            self._timer = self.clock.callLater(self.window, self.flush)
        return False

    def emit(
        self,
        logger: Logger,
        level: LogLevel,
        kind: str,
        format: str,
        **fields: Any,
    ) -> None:
        """
        Log C{format} with C{fields} at C{level} through C{logger}, if
        L{allows} says so; the first event not logged is shown in the
        summary.
        """
        if self.allows(kind):
            logger.emit(level, format, **fields)
            return
        state = self._kinds[kind]
        if not state.example:
            state.example = {"format": format, **fields}

    def flush(self) -> None:
        """
        Log the summaries of every kind with events not logged, and start
        new windows.
        """
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        kinds, self._kinds = self._kinds, {}
        for kind, state in kinds.items():
            self._summarise(kind, state)

    def _summarise(self, kind: str, state: _Kind) -> None:
        if not state.suppressed:
            return
        example = dict(state.example)
        exampleFormat = example.pop("format", "")
        if exampleFormat:
            exampleFormat = "; the first of them: " + exampleFormat
        self.log.warn(
            "{suppressedCount} more {suppressedKind} not logged in "
            "{suppressedWindow:g} s" + exampleFormat,
            suppressedCount=state.suppressed,
            suppressedKind=kind,
            suppressedWindow=self.window,
            **example,
        )

"""
Waiting for what a program writes to files, on the kernel's word (inotify)
rather than by looking again after a sleep: a wait ends as soon as anything
under the watched directory changes, and the caller looks then.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from inotify_simple import INotify, flags

CHANGES = flags.CREATE | flags.MODIFY | flags.MOVED_TO | flags.MOVED_FROM | flags.DELETE
"""What counts as a change: a file made, written, moved or removed. (Not a
file opened: the waiter's own reads would wake it; see
L{DirectoryChanges.watchOpening}.)"""

LONGEST_WAIT = 1.0
"""The longest one wait on the kernel lasts before the caller looks again:
a safety net for a change inotify cannot report (a directory made and
written in before its watch was added), never the way a change is seen."""


class DirectoryChanges:
    """
    The changes under one directory and every directory made in it, to
    wait on.

    @ivar root: the directory watched.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self._inotify = INotify()
        self._directories: dict[int, Path] = {}
        self._opening: set[Path] = set()
        self._watchTree(root)

    def _watchTree(self, directory: Path) -> None:
        for each in (directory, *(path for path in directory.rglob("*"))):
            try:
                if each.is_dir():
                    watch = self._inotify.add_watch(each, CHANGES)
                    self._directories[watch] = each
            except OSError:
                # Gone already: nothing to watch.
                continue

    def watchOpening(self, path: Path) -> bool:
        """
        Count C{path} being opened as a change too (a FIFO: its reader
        opening it is what a writer waits for).

        @return: whether it was not watched so (the caller looks once more:
            it may have been opened before the watch).
        """
        if path in self._opening:
            return False
        try:
            self._inotify.add_watch(path, flags.OPEN)
        except OSError:
            # Not there yet: its making is a change.
            return False
        self._opening.add(path)
        return True

    def wait(self, timeout: float) -> None:
        """
        Return once anything under L{root} changed since the last wait, or
        after C{timeout} seconds (at most L{LONGEST_WAIT}).
        """
        wait = max(0.0, min(timeout, LONGEST_WAIT))
        for event in self._inotify.read(timeout=int(wait * 1000)):
            if event.mask & flags.ISDIR and event.mask & (
                flags.CREATE | flags.MOVED_TO
            ):
                parent = self._directories.get(event.wd)
                if parent is not None:
                    self._watchTree(parent / event.name)

    def waitUntil(
        self, condition: Callable[[], bool], what: str, timeout: float
    ) -> None:
        """
        Wait until C{condition} holds, looking again at each change.

        @raise AssertionError: if C{timeout} seconds pass first; C{what} says
            what was waited for.
        """
        deadline = time.monotonic() + timeout
        while not condition():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {what} within {timeout}s")
            self.wait(remaining)

    def close(self) -> None:
        """
        Stop watching.
        """
        self._inotify.close()

    def __enter__(self) -> DirectoryChanges:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

"""
SIGHUP and SIGUSR1: a server does not die of them.

Left alone, SIGHUP ends the process (a closed terminal, or an operator who
expects a daemon to reload), and so does SIGUSR1 unless C{twistd} logs to a
file (it then rotates that file on SIGUSR1). sockserve reopens its log file
on SIGHUP, as log rotation tools expect (they move the file, then send
SIGHUP), with the mode the moved file had (a daemon's umask, 0077, would
make it 0600); without a log file it logs that the signal came and carries on.
SIGUSR1 keeps C{twistd}'s meaning where it has one; otherwise it too is
logged and ignored. SIGHUP also reads again what the server was told to
reload (the accounts file, C{--accounts}).
"""

from __future__ import annotations

import os
import signal
import stat
from collections.abc import Callable, Sequence
from typing import Any

from twisted.logger import Logger
from twisted.python.logfile import BaseLogFile

from sockserve.logs import openedLogFile

log = Logger()


def twistdLogFile() -> BaseLogFile | None:
    """
    Return the log file C{twistd} writes to, or C{None} when it logs to a
    stream: the JSON log's (L{sockserve.logs}), or the text log's, which
    C{twistd} keeps only in the SIGUSR1 handler it installs to rotate it,
    so it is found there.
    """
    opened = openedLogFile()
    if opened is not None:
        return opened
    handler = signal.getsignal(signal.SIGUSR1)
    for cell in getattr(handler, "__closure__", None) or ():
        value = cell.cell_contents
        if isinstance(value, BaseLogFile):
            return value
    return None


def _modeOf(logFile: BaseLogFile) -> int | None:
    """
    The permission bits of the file C{logFile} has open, or C{None}.
    """
    opened = getattr(logFile, "_file", None)
    try:
        return stat.S_IMODE(os.fstat(opened.fileno()).st_mode)  # type: ignore[union-attr]
    except (AttributeError, OSError, ValueError):
        return None


def reopenKeepingMode(logFile: BaseLogFile) -> None:
    """
    Reopen C{logFile}: a file made anew gets the mode of the one it
    replaces (one already there, made by a rotation tool, keeps its own).
    """
    exists = os.path.exists(logFile.path)
    logFile.defaultMode = None if exists else _modeOf(logFile)
    logFile.reopen()


def installSignalHandlers(
    reactor: Any, reloads: Sequence[Callable[[], object]] = ()
) -> dict[int, Any]:
    """
    Handle SIGHUP (reopen the log file, or log and carry on; then call each
    of C{reloads}) and, unless something else does, SIGUSR1 (log and carry
    on). The work is done in the reactor's thread.

    @return: the handlers replaced, by signal, for L{restoreSignalHandlers}.
    """
    logFile = twistdLogFile()
    if logFile is not None and logFile.defaultMode is None:
        # So that twistd's rotation on SIGUSR1 keeps the mode too.
        logFile.defaultMode = _modeOf(logFile)

    def reopen() -> None:
        if logFile is None:
            if not reloads:
                log.info("Received SIGHUP: nothing to reload (no log file); going on")
        else:
            reopenKeepingMode(logFile)
            log.info("Received SIGHUP: reopened the log file {path}", path=logFile.path)
        for reload in reloads:
            try:
                reload()
            except Exception:
                log.failure("Could not reload on SIGHUP")

    def hangUp(number: int, frame: object) -> None:
        reactor.callFromThread(reopen)

    def ignoreUser1(number: int, frame: object) -> None:
        reactor.callFromThread(
            log.info, "Received SIGUSR1: no log file to rotate; going on"
        )

    replaced: dict[int, Any] = {}
    for number, handler in ((signal.SIGHUP, hangUp), (signal.SIGUSR1, ignoreUser1)):
        previous = signal.getsignal(number)
        if previous in (signal.SIG_DFL, None):
            replaced[number] = signal.signal(number, handler)
    return replaced


def restoreSignalHandlers(replaced: dict[int, Any]) -> None:
    """
    Put back the handlers L{installSignalHandlers} replaced.
    """
    for number, handler in replaced.items():
        signal.signal(number, handler)

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

import signal
from collections.abc import Callable, Sequence
from typing import Any

from twisted.logger import Logger
from twisted.python.logfile import BaseLogFile

# twistd keeps its log file only in its SIGUSR1 handler, and a log file's
# mode is read and kept through its private state: see there.
from sockserve._twisted import (
    keepModeOnRotation,
    reopenKeepingMode,
    twistdTextLogFile,
)
from sockserve.logs import openedLogFile

log = Logger()


def twistdLogFile() -> BaseLogFile | None:
    """
    Return the log file C{twistd} writes to, or C{None} when it logs to a
    stream: the JSON log's (L{sockserve.logs}), or the text log's, which
    C{twistd} keeps only in the SIGUSR1 handler it installs to rotate it,
    so it is found there (see L{sockserve._twisted.twistdTextLogFile}).
    """
    opened = openedLogFile()
    if opened is not None:
        return opened
    return twistdTextLogFile()


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
    if logFile is not None:
        # So that twistd's rotation on SIGUSR1 keeps the mode too.
        keepModeOnRotation(logFile)

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

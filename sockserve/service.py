"""
The service twistd runs: listen on every endpoint, each with its own
factory, and at shutdown stop listening, say goodbye, and wait (bounded) for
the clients to go. A failure to start is one line and exit status 1
(L{StartupAbort}).
"""

from __future__ import annotations

import ipaddress
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from twisted.application.service import IService, Service
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred, gatherResults, maybeDeferred
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import (
    IAddress,
    IListeningPort,
    IProtocolFactory,
    IReactorTime,
    IStreamServerEndpoint,
)
from twisted.logger import Logger
from twisted.python.failure import Failure

from sockserve._addresses import describeAddress
from sockserve._connections import ConnectionRegistry
from sockserve._endpoints import describeOSError
from sockserve._rlimits import raiseOpenFileLimit
from sockserve._signals import installSignalHandlers, restoreSignalHandlers
from sockserve._twisted import (
    giveBackStatusPipe,
    reportFailedStart,
    reportStarted,
    takeStatusPipe,
)
from sockserve.logs import describeLogging


@dataclass(frozen=True)
class Listener:
    """
    An endpoint to listen on, with the factory of its connections.

    @ivar label: how messages about it name the endpoint.
    @ivar name: what it serves, as in C{sockserve chat server listening on}.
    @ivar registry: the live connections of its factory, told to close at
        shutdown (listeners may share one, as front ends of one room do, so
        that C{--max-per-ip} counts all of them); C{None} when its
        connections need no goodbye.
    """

    label: str
    endpoint: IStreamServerEndpoint
    factory: IProtocolFactory
    name: str
    registry: ConnectionRegistry | None = None


def describeListenFailure(label: str, failure: Failure) -> str:
    """
    Return the one line that tells a user why listening on C{label} failed.
    """
    error = failure.value
    if isinstance(error, CannotListenError) and error.socketError is not None:
        error = error.socketError
    if isinstance(error, OSError):
        reason = describeOSError(error)
    else:
        reason = str(error) or type(error).__name__
    return f"Could not listen on {label}: {reason}"


def describeExposure(address: IAddress) -> str | None:
    """
    Say who can reach a listening C{address} beyond this machine, or return
    C{None} for loopback and UNIX sockets.
    """
    if not isinstance(address, IPv4Address | IPv6Address):
        return None
    host = ipaddress.ip_address(address.host.partition("%")[0])
    if host.is_loopback:
        return None
    if host.is_unspecified:
        every = "IPv4" if host.version == 4 else "IPv6 (and IPv4)"
        return f"reachable on every {every} address of this machine"
    return "reachable from other machines"


class LineServerService(Service):
    """
    Listen on a set of endpoints, each with its own factory; stop
    gracefully.

    @ivar ports: the listening ports, once started.
    @ivar served: the same, each with the listener it serves.
    @ivar companions: services that start once the server listens and stop
        with it (the bus of a room shared with other processes).
    @ivar reloads: what SIGHUP reads again (the accounts), besides the log
        file.
    @ivar onStarted: called once the service has started (to tell the
        terminal that started a daemon; see L{DaemonReport}).
    """

    log = Logger()

    def __init__(
        self,
        listeners: Sequence[Listener],
        clock: IReactorTime,
        shutdownGrace: float,
        onListenFailure: Callable[[str], None],
        handleSignals: bool = False,
        companions: Sequence[IService] = (),
        reloads: Sequence[Callable[[], object]] = (),
        onStarted: Callable[[], None] | None = None,
    ) -> None:
        self.listeners = list(listeners)
        self.onStarted = onStarted
        self.companions = list(companions)
        self.reloads = list(reloads)
        self.registries = list(
            {
                id(listener.registry): listener.registry
                for listener in listeners
                if listener.registry is not None
            }.values()
        )
        self.clock = clock
        self.shutdownGrace = shutdownGrace
        self.onListenFailure = onListenFailure
        self.handleSignals = handleSignals
        self._replacedHandlers: dict[int, Any] = {}
        self.ports: list[IListeningPort] = []
        self.served: list[tuple[Listener, IListeningPort]] = []
        self._listening = False

    def privilegedStartService(self) -> None:
        """
        Listen (binding a privileged port needs this to run before twistd
        sheds privileges).
        """
        super().privilegedStartService()
        self.listen()

    def startService(self) -> None:
        """
        Listen, if L{privilegedStartService} did not (C{twist} only calls this).
        """
        super().startService()
        self.listen()
        for companion in self.companions:
            companion.startService()
        if self.onStarted is not None:
            self.onStarted()

    def listen(self) -> None:
        """
        Listen on every endpoint; on a failure, close the ports opened and
        report it through C{onListenFailure}.

        The report is made here, outside any L{Deferred} callback, so that
        C{onListenFailure} may end the process (C{SystemExit} raised inside a
        callback would be caught by the L{Deferred}). An endpoint that fails
        later, after start-up, is logged and stops the reactor.
        """
        if self._listening:
            return
        self._listening = True
        if self.handleSignals:
            # Before listening: once it says it listens, a signal is handled.
            self._replacedHandlers = installSignalHandlers(self.clock, self.reloads)
        self.log.info("Open-file limit: {limit}", limit=raiseOpenFileLimit())
        for listener in self.listeners:
            failures: list[Failure] = []
            listening = listener.endpoint.listen(listener.factory)
            if listening.called:
                listening.addCallbacks(
                    self._listened, failures.append, callbackArgs=(listener,)
                )
            else:
                listening.addCallbacks(
                    self._listened,
                    self._failedLater,
                    callbackArgs=(listener,),
                    errbackArgs=(listener.label,),
                )
            if failures:
                self._closePorts()
                self.onListenFailure(describeListenFailure(listener.label, failures[0]))
                return

    def _failedLater(self, failure: Failure, label: str) -> None:
        self.log.error("{message}", message=describeListenFailure(label, failure))
        self._closePorts()
        if self.running:
            self.stopReactor()

    def stopReactor(self) -> None:
        """
        Stop the reactor (after an endpoint failed once start-up was over).
        """
        from twisted.internet import reactor

        reactor.stop()

    def _listened(self, port: IListeningPort, listener: Listener) -> None:
        self.ports.append(port)
        self.served.append((listener, port))
        address = port.getHost()
        self.log.info(
            "sockserve {name} server listening on {address}",
            name=listener.name,
            address=describeAddress(address),
        )
        exposure = describeExposure(address)
        if exposure is not None:
            self.log.warn(
                "{address} is {exposure}",
                address=describeAddress(address),
                exposure=exposure,
            )

    def _closePorts(self) -> Deferred[None]:
        ports, self.ports = self.ports, []
        stopped = gatherResults([maybeDeferred(port.stopListening) for port in ports])
        return stopped.addCallback(lambda ignored: None)

    def stopService(self) -> Deferred[None]:
        """
        Stop listening, ask every client to close, and wait for them, at most
        C{shutdownGrace} seconds.
        """
        super().stopService()
        restoreSignalHandlers(self._replacedHandlers)
        self._replacedHandlers = {}
        self.log.info("sockserve is shutting down")
        stopped = self._closePorts()

        def closeClients(ignored: object) -> Deferred[None]:
            closing = [
                registry.shutdown(self.clock, self.shutdownGrace)
                for registry in self.registries
            ]
            return gatherResults(closing).addCallback(lambda ignored: None)

        stopped.addCallback(closeClients)
        companions = [
            maybeDeferred(companion.stopService)
            for companion in self.companions
            if companion.running
        ]
        return gatherResults([stopped, *companions]).addCallback(lambda ignored: None)


class StartupAbort:
    """
    End start-up after a failure, in one clear line and with exit status 1.

    Under C{twistd}, the pidfile is removed and then the failure is reported
    through twistd's status pipe, so that the launching process of a daemon
    exits (with the message) only once the pidfile is gone.

    The line goes to stderr, and to the log once C{twistd} logs, but only
    once to a terminal: under C{twistd -n} logging to standard output, when
    that is where stderr goes too, the log's line is the one shown.

    @ivar twistdConfig: twistd's own options, or C{None} under C{twist}.
    @ivar logging: whether C{twistd} has begun logging (it begins after it
        built the service: what is logged before is never shown).
    """

    log = Logger()

    def __init__(self, twistdConfig: Any = None, logging: bool = False) -> None:
        self.twistdConfig = twistdConfig
        self.logging = logging

    def whileLogging(self) -> StartupAbort:
        """
        Return the same, for failures once C{twistd} logs (when the service
        starts).
        """
        return StartupAbort(self.twistdConfig, logging=True)

    def _loggedToStderr(self) -> bool:
        """
        Whether the logged line is shown on stderr already: twistd logs to
        standard output, and stderr is the same file.
        """
        config = self.twistdConfig
        if not self.logging or config is None or "nodaemon" not in config:
            return False
        if not config.get("nodaemon") or describeLogging(config) != "standard output":
            return False
        try:
            return os.path.samestat(os.fstat(1), os.fstat(2))
        except OSError:
            return False

    def __call__(self, message: str) -> NoReturn:
        """
        Report C{message} and exit with status 1.
        """
        self.report(message)
        raise SystemExit(1)

    def stopReactor(self, message: str, reactor: Any) -> None:
        """
        Report C{message}, stop C{reactor} (the services stop as at any
        shutdown), and then exit with status 1: for a failure found once
        the reactor runs, in a callback, where C{SystemExit} would be
        caught.
        """
        self.report(message)

        def exitFailed() -> None:
            for stream in (sys.stdout, sys.stderr):
                stream.flush()
            os._exit(1)

        reactor.addSystemEventTrigger("after", "shutdown", exitFailed)
        reactor.stop()

    def report(self, message: str) -> None:
        """
        Log C{message}, remove the pidfile, tell twistd's launching
        process, and say it on stderr (see the class's description).
        """
        self.log.error("{message}", message=message)
        # twistd's pidfile and status pipe are not public: see there.
        reportFailedStart(self.twistdConfig, message)
        stderr = sys.__stderr__
        if stderr is not None and not self._loggedToStderr():
            stderr.write(message + "\n")
            stderr.flush()


class DaemonReport:
    """
    Tell the terminal that started a daemon, once it has started, its pid
    and where it logs: C{twistd} itself says nothing on success.

    The launching process's standard output is kept open (a copy, taken
    before C{twistd} detaches) until then: C{twistd}'s launching process
    exits only after the daemon has started, so the line comes before the
    shell's prompt.

    @ivar twistdConfig: twistd's own options, or C{None} under C{twist}.
    """

    def __init__(self, twistdConfig: Any = None) -> None:
        self._fd: int | None = None
        self._where = ""
        if twistdConfig is None or "nodaemon" not in twistdConfig:
            return
        if twistdConfig.get("nodaemon"):
            return
        self._where = describeLogging(twistdConfig)
        try:
            self._fd = os.dup(1)
        except OSError:
            self._fd = None

    def __call__(self) -> None:
        """
        Say C{sockserve is running in the background: pid N, logging to
        PATH}, once.
        """
        fd, self._fd = self._fd, None
        if fd is None:
            return
        line = (
            f"sockserve is running in the background: pid {os.getpid()}, "
            f"logging to {self._where}\n"
        )
        try:
            os.write(fd, line.encode("utf-8", "backslashreplace"))
        except OSError:
            pass
        finally:
            os.close(fd)


class BusStartup:
    """
    Start-up with a bus: the server has started only once the bus's first
    attempt to join is over, so that a password Redis refuses ends it, in
    one line and with exit status 1, rather than have it retry for ever.

    For a daemon, C{twistd}'s launching process is held (its status pipe
    taken from C{twistd}) until then, and so learns of the failure; the
    attempt is bounded in time (L{sockserve.bus.redis}). A bus that cannot
    be reached for other reasons lets the server start, and is retried.
    """

    def __init__(
        self,
        started: Deferred[str | None],
        abort: StartupAbort,
        report: Callable[[], None],
        reactor: Any,
    ) -> None:
        self.started = started
        self.abort = abort
        self.report = report
        self.reactor = reactor

    def __call__(self) -> None:
        """
        Wait for the bus's first attempt, holding twistd's status pipe.
        """
        # twistd's status pipe is not public: see there.
        config = self.abort.twistdConfig
        statusPipe = takeStatusPipe(config)

        def settled(refusal: str | None) -> None:
            if refusal is not None:
                giveBackStatusPipe(config, statusPipe)
                self.abort.stopReactor(
                    f"Could not join the bus: {refusal}", self.reactor
                )
                return
            self.report()
            reportStarted(statusPipe)

        self.started.addCallback(settled)

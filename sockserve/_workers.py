"""
Several processes serving one port: C{--workers N} for echo and oneshot.

The main process listens on each port with C{SO_REUSEPORT} and starts N - 1
worker processes (C{python -m sockserve._worker}, see there) that listen on
the same ports the same way; the kernel spreads new connections across them.
Each worker runs the same factory and limits.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from twisted.application.service import Service
from twisted.internet import tcp
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred, gatherResults, maybeDeferred, succeed
from twisted.internet.error import ProcessExitedAlready
from twisted.internet.interfaces import (
    IDelayedCall,
    IListeningPort,
    IProcessTransport,
    IProtocolFactory,
    IReactorProcess,
    IReactorTCP,
    IReactorTime,
    IStreamServerEndpoint,
)
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import InvalidLogLevelError, Logger, LogLevel
from twisted.python.failure import Failure
from zope.interface import implementer

from sockserve._reactor import WORKER_REACTOR, moduleOf

log = Logger()

WORKER_MODES = ("echo", "oneshot")


@implementer(IStreamServerEndpoint)
class ReusePortTCPEndpoint:
    """
    A TCP server endpoint whose socket has C{SO_REUSEPORT} set, so that
    several processes can listen on the same address and port.
    """

    def __init__(
        self, reactor: IReactorTCP, port: int, interface: str, backlog: int
    ) -> None:
        self.reactor = reactor
        self.port = port
        self.interface = interface
        self.backlog = backlog

    def listen(self, protocolFactory: IProtocolFactory) -> Deferred[IListeningPort]:
        """
        Listen, with C{SO_REUSEPORT}.
        """
        binding = tcp.makeBinding(
            self.interface, self.port, reuseAddress=True, reusePort=True
        )
        listenTCP: Any = self.reactor.listenTCP
        listening: Deferred[IListeningPort] = maybeDeferred(
            listenTCP, binding, protocolFactory, self.backlog
        )
        return listening


class WorkerProcess(ProcessProtocol):
    """
    The main process's view of one worker.
    """

    def __init__(
        self, index: int, onEnd: Callable[[WorkerProcess, Failure], None]
    ) -> None:
        self.index = index
        self.onEnd = onEnd
        self.ended: Deferred[None] = Deferred()
        self._partial = b""

    def outReceived(self, data: bytes) -> None:
        """
        Log what the worker logged (each line after its level), through the
        main process's logger, at the worker's level: it reaches the same log
        file, daemon or not.
        """
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        assert self.transport is not None
        for raw in lines:
            line = raw.decode("utf-8", "replace")
            name, _, text = line.partition(" ")
            try:
                level = LogLevel.levelWithName(name)
            except InvalidLogLevelError:
                level, text = LogLevel.info, line
            log.emit(
                level,
                "[worker {index} pid {pid}] {line}",
                index=self.index,
                pid=self.transport.pid,
                line=text,
            )

    errReceived = outReceived

    def processEnded(self, reason: Failure) -> None:
        """
        The worker ended: tell the pool.
        """
        self.ended.callback(None)
        self.onEnd(self, reason)


class WorkerPoolService(Service):
    """
    Start the worker processes once the main process listens; replace one
    that dies (after a pause that doubles, from 1 to 30 seconds, while they
    keep dying young); stop them with the main process.

    @ivar workerArguments: a callable giving, for the actual ports, the
        command-line arguments of a worker.
    """

    firstRestartDelay = 1.0
    maxRestartDelay = 30.0
    # A worker that lived this long died of something else than its start.
    healthyAfter = 60.0

    def __init__(
        self,
        reactor: Any,
        count: int,
        ports: Callable[[], Sequence[IListeningPort]],
        workerArguments: Callable[[list[int]], list[str]],
        stopTimeout: float,
    ) -> None:
        self.reactor = reactor
        self.count = count
        self.ports = ports
        self.workerArguments = workerArguments
        self.stopTimeout = stopTimeout
        self.workers: list[tuple[WorkerProcess, IProcessTransport]] = []
        self._portNumbers: list[int] = []
        self._started: dict[int, float] = {}
        self._delays: dict[int, float] = {}
        self._restarts: dict[int, IDelayedCall] = {}

    def startService(self) -> None:
        """
        Start the workers, each told the ports the main process got.
        """
        super().startService()
        self._portNumbers = [_portNumber(port) for port in self.ports()]
        for index in range(1, self.count):
            self._spawn(index)

    def _spawn(self, index: int) -> None:
        self._restarts.pop(index, None)
        worker = WorkerProcess(index, self._ended)
        arguments = [
            sys.executable,
            "-m",
            "sockserve._worker",
            *self.workerArguments(self._portNumbers),
        ]
        spawner: IReactorProcess = self.reactor
        # The worker runs on the reactor this process runs on.
        environment = {**os.environ, WORKER_REACTOR: moduleOf(self.reactor)}
        transport = spawner.spawnProcess(
            worker,
            sys.executable,
            arguments,
            env=environment,
            childFDs={0: "w", 1: "r", 2: "r"},
        )
        clock: IReactorTime = self.reactor
        self._started[index] = clock.seconds()
        log.info("started worker {index}, pid {pid}", index=index, pid=transport.pid)
        self.workers = [entry for entry in self.workers if entry[0].index != index]
        self.workers.append((worker, transport))

    def _ended(self, worker: WorkerProcess, reason: Failure) -> None:
        """
        A worker ended: if the pool is running, that was not asked for: log
        it as a warning and start another after a pause.
        """
        if not self.running:
            log.info(
                "worker {index} exited: {reason}",
                index=worker.index,
                reason=reason.getErrorMessage(),
            )
            return
        clock: IReactorTime = self.reactor
        index = worker.index
        lived = clock.seconds() - self._started.get(index, 0.0)
        delay = self._delays.get(index, 0.0)
        if lived >= self.healthyAfter or not delay:
            delay = self.firstRestartDelay
        else:
            delay = min(delay * 2, self.maxRestartDelay)
        self._delays[index] = delay
        log.warn(
            "worker {index} exited unexpectedly ({reason}); starting another "
            "in {delay:g} s",
            index=index,
            reason=reason.getErrorMessage(),
            delay=delay,
        )
        self._restarts[index] = clock.callLater(delay, self._spawn, index)

    def stopService(self) -> Deferred[None]:
        """
        Ask every worker to stop (SIGTERM), wait for them, and kill those
        still running after C{stopTimeout} seconds.
        """
        super().stopService()
        for restart in self._restarts.values():
            if restart.active():
                restart.cancel()
        self._restarts.clear()
        waits = []
        clock: IReactorTime = self.reactor
        for worker, transport in self.workers:
            if worker.ended.called:
                continue
            transport.signalProcess("TERM")
            timer = clock.callLater(self.stopTimeout, _kill, transport)
            waits.append(worker.ended.addCallback(_cancelTimer, timer))
        if not waits:
            return succeed(None)
        return gatherResults(waits).addCallback(lambda _: None)


def _portNumber(port: IListeningPort) -> int:
    address = port.getHost()
    assert isinstance(address, IPv4Address | IPv6Address)
    return address.port


def _kill(transport: IProcessTransport) -> None:
    log.warn("worker pid {pid} did not stop in time; killing it", pid=transport.pid)
    with contextlib.suppress(ProcessExitedAlready):
        transport.signalProcess("KILL")


def _cancelTimer(result: None, timer: IDelayedCall) -> None:
    if timer.active():
        timer.cancel()

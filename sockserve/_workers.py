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
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

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

    def __init__(self, index: int) -> None:
        self.index = index
        self.ended: Deferred[None] = Deferred()
        self._partial = b""

    def outReceived(self, data: bytes) -> None:
        """
        Log what the worker logged (one event a line), through the main
        process's logger: it reaches the same log file, daemon or not.
        """
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        assert self.transport is not None
        for line in lines:
            log.info(
                "[worker {index} pid {pid}] {line}",
                index=self.index,
                pid=self.transport.pid,
                line=line.decode("utf-8", "replace"),
            )

    errReceived = outReceived

    def processEnded(self, reason: Failure) -> None:
        """
        Log how the worker ended.
        """
        log.info(
            "worker {index} exited: {reason}",
            index=self.index,
            reason=reason.getErrorMessage(),
        )
        self.ended.callback(None)


class WorkerPoolService(Service):
    """
    Start the worker processes once the main process listens; stop them with
    it.

    @ivar workerArguments: a callable giving, for the actual ports, the
        command-line arguments of a worker.
    """

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

    def startService(self) -> None:
        """
        Start the workers, each told the ports the main process got.
        """
        super().startService()
        portNumbers = [_portNumber(port) for port in self.ports()]
        spawner: IReactorProcess = self.reactor
        for index in range(1, self.count):
            worker = WorkerProcess(index)
            arguments = [
                sys.executable,
                "-m",
                "sockserve._worker",
                *self.workerArguments(portNumbers),
            ]
            transport = spawner.spawnProcess(
                worker,
                sys.executable,
                arguments,
                env=os.environ.copy(),
                childFDs={0: "w", 1: "r", 2: "r"},
            )
            log.info(
                "started worker {index}, pid {pid}", index=index, pid=transport.pid
            )
            self.workers.append((worker, transport))

    def stopService(self) -> Deferred[None]:
        """
        Ask every worker to stop (SIGTERM), wait for them, and kill those
        still running after C{stopTimeout} seconds.
        """
        super().stopService()
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

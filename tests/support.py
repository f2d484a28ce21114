"""
Helpers for tests that talk to a real server over loopback TCP.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.endpoints import (
    TCP4ClientEndpoint,
    TCP4ServerEndpoint,
    connectProtocol,
)
from twisted.internet.interfaces import IListeningPort
from twisted.internet.protocol import Protocol, connectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import ILogObserver, LogEvent, formatEvent, globalLogPublisher
from twisted.python.failure import Failure
from zope.interface import implementer

from sockserve.factories import LineServerFactory, buildFactory
from sockserve.limits import Limits
from sockserve.protocol import LineServerProtocol

WAIT = 10.0


@implementer(ILogObserver)
class CapturedLogs:
    """
    The events logged while a L{capturedLogs} block ran.
    """

    def __init__(self) -> None:
        self.events: list[LogEvent] = []

    def __call__(self, event: LogEvent) -> None:
        self.events.append(event)

    def texts(self) -> list[str]:
        """
        Return the events as the text log shows them.
        """
        return [formatEvent(event) for event in self.events]


@contextmanager
def capturedLogs() -> Iterator[CapturedLogs]:
    """
    Collect every event logged while the block runs.
    """
    captured = CapturedLogs()
    globalLogPublisher.addObserver(captured)
    try:
        yield captured
    finally:
        globalLogPublisher.removeObserver(captured)


class RecordingClient(Protocol):
    """
    A test client: records what the server sends, lets a test wait for it.
    """

    def __init__(self) -> None:
        self.received = b""
        self.closed: Deferred[None] = Deferred()
        self.closeReason: Failure | None = None
        self._waiting: list[tuple[Callable[[bytes], bool], Deferred[bytes]]] = []

    def dataReceived(self, data: bytes) -> None:
        self.received += data
        self._check()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        waiting, self._waiting = self._waiting, []
        for predicate, d in waiting:
            if predicate(self.received):
                d.callback(self.received)
            else:
                d.errback(
                    AssertionError(f"connection closed; received {self.received!r}")
                )
        self.closeReason = reason
        self.closed.callback(None)

    def _check(self) -> None:
        still = []
        for predicate, d in self._waiting:
            if predicate(self.received):
                d.callback(self.received)
            else:
                still.append((predicate, d))
        self._waiting = still

    def waitFor(self, predicate: Callable[[bytes], bool]) -> Deferred[bytes]:
        """
        Fire with everything received once C{predicate} holds of it.
        """
        d: Deferred[bytes] = Deferred()
        if predicate(self.received):
            d.callback(self.received)
            return d
        self._waiting.append((predicate, d))
        return d.addTimeout(WAIT, reactor)

    def waitForText(self, text: bytes) -> Deferred[bytes]:
        """
        Fire once C{text} has been received.
        """
        return self.waitFor(lambda received: text in received)

    def waitForLines(self, count: int) -> Deferred[bytes]:
        """
        Fire once C{count} line endings have been received.
        """
        return self.waitFor(lambda received: received.count(b"\n") >= count)

    def waitForClose(self) -> Deferred[None]:
        """
        Fire when the connection is closed.
        """
        d: Deferred[None] = Deferred()
        if self.closed.called:
            d.callback(None)
            return d

        def relay(ignored: None) -> None:
            d.callback(None)

        self.closed.addCallback(relay)
        return d.addTimeout(WAIT, reactor)

    def send(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    def close(self) -> Deferred[None]:
        assert self.transport is not None
        self.transport.loseConnection()
        return self.waitForClose()


class RunningServer:
    """
    A server listening on an OS-chosen loopback port.
    """

    def __init__(self, factory: LineServerFactory, port: IListeningPort) -> None:
        self.factory = factory
        self.port = port
        self.clients: list[RecordingClient] = []

    @property
    def portNumber(self) -> int:
        return self.port.getHost().port  # type: ignore[attr-defined,no-any-return]

    async def connect(self) -> RecordingClient:
        client = RecordingClient()
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", self.portNumber)
        await connectProtocol(endpoint, client)
        self.clients.append(client)
        return client

    async def stop(self) -> None:
        for client in self.clients:
            if not client.closed.called:
                await client.close()
        await maybeDeferred(self.port.stopListening)
        registry = self.factory.context.registry
        if len(registry):
            await registry.shutdown(reactor, 5.0)


async def startServer(
    mode: str, limits: Limits | None = None, **kw: Any
) -> RunningServer:
    """
    Start a C{mode} server on 127.0.0.1 with an OS-chosen port.
    """
    factory = buildFactory(
        mode,
        limits or Limits(),
        reactor,
        kw.get("banner", "Welcome to sockserve test"),
    )
    port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(factory)
    return RunningServer(factory, port)


def connectOnStringTransport(
    mode: str,
    limits: Limits | None = None,
    clock: Clock | None = None,
    factory: LineServerFactory | None = None,
    peer: tuple[str, int] = ("127.0.0.1", 40000),
) -> tuple[LineServerProtocol, StringTransport, LineServerFactory]:
    """
    Build a protocol of a C{mode} server and connect it to a StringTransport.
    """
    from twisted.internet.address import IPv4Address

    if factory is None:
        factory = buildFactory(
            mode, limits or Limits(), clock or Clock(), "Welcome to sockserve test"
        )
    protocol = factory.buildProtocol(IPv4Address("TCP", *peer))
    transport = StringTransport(peerAddress=IPv4Address("TCP", *peer))
    protocol.makeConnection(transport)
    return protocol, transport, factory


ROOT = Path(__file__).parent.parent


def documentationPages() -> list[Path]:
    """
    The pages of the documentation: README.rst and every page of docs/.
    """
    return [ROOT / "README.rst", *sorted((ROOT / "docs").rglob("*.rst"))]


def documentation() -> str:
    """
    The text of every page of the documentation (L{documentationPages}),
    one after another.
    """
    return "\n".join(page.read_text() for page in documentationPages())


def readmeBlock(after: str) -> str:
    """
    The literal block of the documentation (README.rst or a page of docs/)
    that follows the first paragraph containing C{after}, without its
    indentation. C{after} must be on exactly one page.
    """
    pages = [page for page in documentationPages() if after in page.read_text()]
    assert len(pages) == 1, (after, pages)
    text = pages[0].read_text()
    block = text.split(after, 1)[1].split("::\n\n", 1)[1]
    lines = []
    for line in block.splitlines():
        if line and not line.startswith("    "):
            break
        lines.append(line[4:])
    return "\n".join(lines).strip() + "\n"

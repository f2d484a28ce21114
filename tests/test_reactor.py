"""
The lean epoll reactor sockserve installs by default (sockserve._reactor):
it hands each ready descriptor to its handler as Twisted's epoll reactor
does, without a log context, and an escaping exception costs only the
descriptor that raised it.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from typing import Any, cast

import pytest
from twisted.internet.abstract import FileDescriptor
from twisted.logger import ILogObserver, globalLogPublisher
from twisted.python import context, log
from twisted.python.failure import Failure

from sockserve import _reactor, _twisted
from tests.conftest import ErrorCollector

pytestmark = pytest.mark.skipif(
    _twisted.leanReactorClass() is None, reason="no epoll on this platform"
)


class Reader(FileDescriptor):
    """
    One end of a socket pair, read by a reactor: it records what it read,
    the log context it was read in, and how it was lost.
    """

    def __init__(self, reactor: Any, sock: socket.socket, prefix: str) -> None:
        super().__init__(reactor)
        self.sock = sock
        self.prefix = prefix
        self.read: list[bytes] = []
        self.systems: list[str] = []
        self.lost: list[Failure] = []
        self.explode = False

    def fileno(self) -> int:
        return self.sock.fileno()

    def logPrefix(self) -> str:
        return self.prefix

    def doRead(self) -> None:
        data = self.sock.recv(4096)
        if not data:
            from twisted.internet.main import CONNECTION_DONE

            return CONNECTION_DONE  # type: ignore[return-value]
        self.read.append(data)
        self.systems.append(context.get(log.ILogContext)["system"])
        if self.explode:
            raise RuntimeError("boom")
        return None

    def connectionLost(self, reason: Failure) -> None:
        self.lost.append(reason)
        super().connectionLost(reason)


@pytest.fixture
def lean() -> Iterator[Any]:
    """A lean reactor of its own, not installed, closed after the test."""
    kind = _twisted.leanReactorClass()
    assert kind is not None
    reactor = kind()
    assert _twisted.leanReactorWorks(reactor)
    yield reactor
    reactor.waker.connectionLost(None)
    reactor._poller.close()


@pytest.fixture
def pairs() -> Iterator[list[tuple[socket.socket, socket.socket]]]:
    """Socket pairs, closed after the test."""
    made: list[tuple[socket.socket, socket.socket]] = []
    yield made
    for one, other in made:
        one.close()
        other.close()


def _reader(
    reactor: Any, pairs: list[Any], prefix: str
) -> tuple[Reader, socket.socket]:
    ours, theirs = socket.socketpair()
    pairs.append((ours, theirs))
    ours.setblocking(False)
    reader = Reader(reactor, ours, prefix)
    reactor.addReader(reader)
    return reader, theirs


def test_a_ready_descriptor_is_read_without_a_log_context(
    lean: Any, pairs: list[Any]
) -> None:
    """What a peer sends is handed to the descriptor's C{doRead}, with no
    log context set up around it (the legacy system stays C{-})."""
    reader, peer = _reader(lean, pairs, "Reader,1")
    peer.sendall(b"hello\n")
    lean.doPoll(5)
    assert reader.read == [b"hello\n"]
    assert reader.systems == ["-"]


def test_twisteds_own_reactor_sets_the_context_the_lean_one_saves() -> None:
    """The cost saved is real: Twisted's epoll reactor does set the log
    context around each event (if it stopped, the lean one would have no
    reason to be)."""
    from twisted.internet.epollreactor import EPollReactor

    stock = EPollReactor()
    ours, theirs = socket.socketpair()
    try:
        ours.setblocking(False)
        reader = Reader(stock, ours, "Reader,7")
        stock.addReader(reader)
        theirs.sendall(b"x")
        stock.doPoll(5)
        assert reader.systems == ["Reader,7"]
    finally:
        stock.removeAll()
        stock._internalReaders.clear()
        stock.waker.connectionLost(None)
        stock._poller.close()
        ours.close()
        theirs.close()


def test_a_peer_that_closes_is_lost_cleanly(lean: Any, pairs: list[Any]) -> None:
    """A closed peer ends the descriptor through the reactor's usual
    disconnection (C{connectionLost}, no longer read)."""
    reader, peer = _reader(lean, pairs, "Reader,2")
    peer.close()
    lean.doPoll(5)
    assert len(reader.lost) == 1
    assert reader not in lean.getReaders()


def test_an_escaping_error_costs_only_its_descriptor(
    lean: Any, pairs: list[Any], logged_errors: ErrorCollector
) -> None:
    """An exception from one descriptor's handler is logged under its log
    prefix and ends that descriptor; another ready in the same poll is still
    read."""
    bad, badPeer = _reader(lean, pairs, "Bad,3")
    good, goodPeer = _reader(lean, pairs, "Good,4")
    bad.explode = True
    badPeer.sendall(b"a")
    goodPeer.sendall(b"b")
    lean.doPoll(5)
    assert good.read == [b"b"]
    assert len(bad.lost) == 1
    errors = logged_errors.take()
    assert errors
    assert any("boom" in str(event) for event in errors)


def test_an_error_in_connection_lost_is_logged_with_the_prefix(
    lean: Any, pairs: list[Any], logged_errors: ErrorCollector
) -> None:
    """An exception that escapes Twisted's own handling (here from
    C{connectionLost}) is caught by the lean dispatch and logged with the
    descriptor's prefix as its system; the next descriptor is handled."""
    bad, badPeer = _reader(lean, pairs, "Bad,5")
    good, goodPeer = _reader(lean, pairs, "Good,6")

    def lostBadly(reason: Failure) -> None:
        lean.removeReader(bad)
        raise RuntimeError("lost badly")

    bad.connectionLost = lostBadly  # type: ignore[method-assign]
    badPeer.close()
    goodPeer.sendall(b"c")
    lean.doPoll(5)
    lean.doPoll(0)
    assert good.read == [b"c"]
    errors = logged_errors.take()
    assert [event.get("log_system") for event in errors] == ["Bad,5"]
    assert "lost badly" in str(errors[0]["log_failure"])


def test_without_its_state_twisteds_reactor_is_kept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On a Twisted whose epoll reactor lacks what the lean one overrides,
    no lean reactor is offered, and that is said once."""
    from twisted.internet.epollreactor import EPollReactor
    from twisted.internet.posixbase import _PollLikeMixin

    monkeypatch.setattr(_twisted, "_warned", set())
    monkeypatch.delattr(_PollLikeMixin, "_doReadOrWrite")
    assert not hasattr(EPollReactor, "_doReadOrWrite")
    events: list[dict[str, Any]] = []
    observer = cast(ILogObserver, events.append)
    globalLogPublisher.addObserver(observer)
    try:
        assert _twisted.leanReactorClass() is None
        assert _twisted.leanReactorClass() is None
    finally:
        globalLogPublisher.removeObserver(observer)
    said = [e for e in events if "_doReadOrWrite" in str(e.get("missing", ""))]
    assert len(said) == 1


def test_a_reactor_without_the_instance_state_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A reactor that keeps no C{_poller} or C{_selectables} is not used."""
    monkeypatch.setattr(_twisted, "_warned", set())
    assert not _twisted.leanReactorWorks(object())


def test_nothing_is_installed_over_a_reactor_already_there() -> None:
    """With a reactor already imported (as under these tests), the default
    is left alone."""
    assert "twisted.internet.reactor" in sys.modules
    assert _reactor.installDefault() is False


@pytest.mark.parametrize(
    ("twistdArgs", "expected"),
    [
        ([], "sockserve._reactor.LeanEPollReactor"),
        (["--reactor", "epoll"], "twisted.internet.epollreactor.EPollReactor"),
        (["--reactor", "poll"], "twisted.internet.pollreactor.PollReactor"),
    ],
)
def test_twistd_runs_on_the_lean_reactor_unless_told(
    twistdArgs: list[str], expected: str
) -> None:
    """C{twistd sockserve} builds its service on the lean reactor, and on
    the one C{--reactor} names when it is given."""
    program = (
        "import sys\n"
        "from twisted.scripts.twistd import ServerOptions\n"
        "from twisted.application.service import IService\n"
        "config = ServerOptions()\n"
        "config.parseOptions(sys.argv[1:])\n"
        "config.subOptions.parent = config\n"
        "from sockserve.tap import makeService\n"
        "makeService(config.subOptions)\n"
        "from twisted.internet import reactor\n"
        "kind = type(reactor)\n"
        "print(kind.__module__ + '.' + kind.__qualname__)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program, *twistdArgs, "-n", "sockserve", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == expected

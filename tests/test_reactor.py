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
    assert [event.get("log_system") for event in errors] == ["Bad,3"]
    assert "boom" in str(errors[0])


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
    assert good.read == [b"c"]
    errors = logged_errors.take()
    assert [event.get("log_system") for event in errors] == ["Bad,5"]
    assert "lost badly" in str(errors[0])


def test_without_its_state_twisteds_reactor_is_kept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On a Twisted whose epoll reactor lacks what the lean one overrides,
    no lean reactor is offered, and that is said once."""
    from twisted.internet.epollreactor import EPollReactor

    monkeypatch.setattr(_twisted, "_warned", set())
    owner = next(k for k in EPollReactor.__mro__ if "_disconnectSelectable" in vars(k))
    monkeypatch.delattr(owner, "_disconnectSelectable")
    assert not hasattr(EPollReactor, "_disconnectSelectable")
    events: list[dict[str, Any]] = []
    observer = cast(ILogObserver, events.append)
    globalLogPublisher.addObserver(observer)
    try:
        assert _twisted.leanReactorClass() is None
        assert _twisted.leanReactorClass() is None
    finally:
        globalLogPublisher.removeObserver(observer)
    said = [e for e in events if "_disconnectSelectable" in str(e.get("missing", ""))]
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


class Pipe(Reader):
    """
    A socket pair's end that is written through Twisted's buffering
    (C{FileDescriptor.write}), as a TCP connection is.
    """

    def writeSomeData(self, data: bytes) -> int:
        if self.explode:
            raise RuntimeError("cannot write")
        try:
            return self.sock.send(data)
        except BlockingIOError:
            return 0


def _pipe(reactor: Any, pairs: list[Any], prefix: str) -> tuple[Pipe, socket.socket]:
    ours, theirs = socket.socketpair()
    pairs.append((ours, theirs))
    ours.setblocking(False)
    theirs.settimeout(10)
    pipe = Pipe(reactor, ours, prefix)
    pipe.connected = 1
    return pipe, theirs


class PollRecorder:
    """An epoll object that records the timeouts it is polled with."""

    def __init__(self, poller: Any) -> None:
        self.poller = poller
        self.timeouts: list[float] = []

    def poll(self, timeout: float, maxevents: int) -> list[tuple[int, int]]:
        self.timeouts.append(timeout)
        return self.poller.poll(timeout, maxevents)  # type: ignore[no-any-return]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.poller, name)


def test_a_write_is_sent_before_the_next_wait_without_epoll(
    lean: Any, pairs: list[Any]
) -> None:
    """What is written in a pass is sent before the reactor next waits,
    without asking epoll to watch the descriptor: it is never in epoll's
    set of writers, and nothing is left to write."""
    pipe, peer = _pipe(lean, pairs, "Pipe,1")
    pipe.write(b"hello ")
    pipe.write(b"world\n")
    assert pipe in lean.getWriters()
    assert pipe.fileno() not in lean._writes
    recorder = PollRecorder(lean._poller)
    lean._poller = recorder
    lean.doPoll(None)
    lean._poller = recorder.poller
    # Writing may change what the reactor waits for: it does not wait.
    assert recorder.timeouts == [0]
    assert peer.recv(100) == b"hello world\n"
    assert pipe not in lean.getWriters()
    assert pipe.fileno() not in lean._writes


def test_what_the_kernel_does_not_take_waits_for_epoll(
    lean: Any, pairs: list[Any]
) -> None:
    """A write larger than the kernel takes at once leaves the rest to
    epoll, which says when to go on; everything arrives, in order."""
    pipe, peer = _pipe(lean, pairs, "Pipe,2")
    data = bytes(range(256)) * 40_000
    pipe.write(data)
    lean.doPoll(0)
    assert pipe.fileno() in lean._writes
    received = bytearray()
    for _ in range(10_000):
        received += peer.recv(1 << 20)
        lean.doPoll(0)
        if len(received) == len(data):
            break
    assert received == data
    assert pipe not in lean.getWriters()


def test_a_writer_stopped_before_its_turn_writes_nothing(
    lean: Any, pairs: list[Any]
) -> None:
    """A writer that stops writing before the pass ends is not written."""
    pipe, peer = _pipe(lean, pairs, "Pipe,3")
    pipe.write(b"never")
    pipe.stopWriting()
    assert pipe not in lean.getWriters()
    lean.doPoll(0)
    peer.setblocking(False)
    with pytest.raises(BlockingIOError):
        peer.recv(100)


def test_a_write_then_close_sends_then_closes(lean: Any, pairs: list[Any]) -> None:
    """A connection written to and closed in the same pass sends what it
    was given, then is lost cleanly (once)."""
    from twisted.internet.error import ConnectionDone

    pipe, peer = _pipe(lean, pairs, "Pipe,4")
    lean.addReader(pipe)
    pipe.write(b"bye\n")
    pipe.loseConnection()
    lean.doPoll(0)
    assert peer.recv(100) == b"bye\n"
    assert len(pipe.lost) == 1
    assert pipe.lost[0].check(ConnectionDone)
    assert pipe not in lean.getReaders() + lean.getWriters()


def test_an_error_writing_costs_only_its_writer(
    lean: Any, pairs: list[Any], logged_errors: ErrorCollector
) -> None:
    """A writer whose write raises is lost; the next is still written."""
    bad, _ = _pipe(lean, pairs, "Bad,5")
    good, goodPeer = _pipe(lean, pairs, "Good,6")
    bad.explode = True
    bad.write(b"a")
    good.write(b"b")
    lean.doPoll(0)
    assert goodPeer.recv(10) == b"b"
    assert len(bad.lost) == 1
    assert any("cannot write" in str(event) for event in logged_errors.take())


def test_a_write_made_while_writing_does_not_wait(lean: Any, pairs: list[Any]) -> None:
    """A write made by a writer's own writing (here: one connection's loss
    writes to another) is sent on the next pass, which does not wait for
    epoll to say anything first."""
    first, _ = _pipe(lean, pairs, "First,7")
    second, secondPeer = _pipe(lean, pairs, "Second,8")
    losing = first.connectionLost

    def lostAndTell(reason: Failure) -> None:
        losing(reason)
        second.write(b"first left\n")

    first.connectionLost = lostAndTell  # type: ignore[method-assign]
    recorder = PollRecorder(lean._poller)
    lean._poller = recorder
    first.loseConnection()
    lean.doPoll(None)
    lean.doPoll(None)
    lean._poller = recorder.poller
    assert recorder.timeouts == [0, 0]
    assert secondPeer.recv(100) == b"first left\n"


def test_remove_all_includes_the_waiting_writers(lean: Any, pairs: list[Any]) -> None:
    """removeAll (the reactor's shutdown) returns and forgets the writers
    waiting for their turn too."""
    pipe, _ = _pipe(lean, pairs, "Pipe,9")
    pipe.write(b"x")
    assert pipe in lean.removeAll()
    assert pipe not in lean.getWriters()


def test_the_suite_runs_on_the_lean_reactor() -> None:
    """The tests run on the reactor sockserve runs on (conftest.py)."""
    from twisted.internet import reactor

    assert type(reactor).__name__ == "LeanEPollReactor"


def test_replies_join_what_waits_and_go_before_the_next_wait(
    lean: Any, pairs: list[Any]
) -> None:
    """A reply written while handling a read waits for the next pass, which
    does not wait for epoll: it first handles what is ready at once (so that
    more replies join it, in one send), then writes everything."""
    reader, readerPeer = _reader(lean, pairs, "Reader,10")
    pipe, pipePeer = _pipe(lean, pairs, "Pipe,11")
    reading = reader.doRead

    def readAndReply() -> Any:
        why = reading()
        pipe.write(b"heard " + reader.read[-1] + b"\n")
        return why

    reader.doRead = readAndReply  # type: ignore[method-assign]
    readerPeer.sendall(b"ping")
    lean.doPoll(5)
    assert pipe in lean._leanSoon
    readerPeer.sendall(b"pong")
    recorder = PollRecorder(lean._poller)
    lean._poller = recorder
    lean.doPoll(None)
    lean._poller = recorder.poller
    assert recorder.timeouts == [0]
    assert not lean._leanSoon
    pipePeer.settimeout(0)
    assert pipePeer.recv(100) == b"heard ping\nheard pong\n"


def test_a_writer_stopped_by_another_in_the_same_flush_writes_nothing(
    lean: Any, pairs: list[Any]
) -> None:
    """A writer that a writer before it in the same flush stops (as closing
    one connection may stop another) is not written, nor watched."""
    first, firstPeer = _pipe(lean, pairs, "First,12")
    second, secondPeer = _pipe(lean, pairs, "Second,13")
    writing = first.doWrite

    def writeAndStopTheOther() -> Any:
        second.stopWriting()
        return writing()

    first.doWrite = writeAndStopTheOther  # type: ignore[method-assign]
    first.write(b"sent")
    second.write(b"must not be sent")
    lean.doPoll(0)
    assert firstPeer.recv(10) == b"sent"
    secondPeer.setblocking(False)
    with pytest.raises(BlockingIOError):
        secondPeer.recv(100)
    assert second not in lean.getWriters()
    assert second.fileno() not in lean._writes


def test_remove_all_during_a_flush_removes_what_is_still_to_flush(
    lean: Any, pairs: list[Any]
) -> None:
    """removeAll called by a writer's write returns the writers not tried
    yet in that flush, and none is written or watched afterwards."""
    first, _ = _pipe(lean, pairs, "First,14")
    second, secondPeer = _pipe(lean, pairs, "Second,15")
    removed: list[Any] = []
    writing = first.doWrite

    def writeAndRemoveAll() -> Any:
        removed.extend(lean.removeAll())
        return writing()

    first.doWrite = writeAndRemoveAll  # type: ignore[method-assign]
    first.write(b"a")
    second.write(b"b")
    lean.doPoll(0)
    assert second in removed
    assert second not in lean.getWriters()
    assert second.fileno() not in lean._writes
    secondPeer.setblocking(False)
    with pytest.raises(BlockingIOError):
        secondPeer.recv(10)


def test_a_writer_whose_descriptor_fails_costs_only_itself(
    lean: Any, pairs: list[Any], logged_errors: ErrorCollector
) -> None:
    """A writer whose fileno() raises when its turn comes (a closed file)
    is dropped and logged; the writer after it is still written."""
    bad, _ = _pipe(lean, pairs, "Bad,16")
    good, goodPeer = _pipe(lean, pairs, "Good,17")
    bad.write(b"x")
    good.write(b"important")

    def closed() -> int:
        raise ValueError("I/O operation on closed file")

    bad.fileno = closed  # type: ignore[method-assign]
    lean.doPoll(0)
    assert goodPeer.recv(100) == b"important"
    assert logged_errors.take()
    assert bad not in lean._waiting()


def test_writers_not_tried_when_the_reactor_is_interrupted_wait(
    lean: Any, pairs: list[Any]
) -> None:
    """A KeyboardInterrupt in one writer's handling stops the pass (as
    Twisted's reactor lets it), and the writers after it write on the next
    pass rather than never."""
    first, _ = _pipe(lean, pairs, "First,18")
    second, secondPeer = _pipe(lean, pairs, "Second,19")

    def interrupted(reason: Failure) -> None:
        raise KeyboardInterrupt

    first.connectionLost = interrupted  # type: ignore[method-assign]
    first.loseConnection()
    second.write(b"later")
    with pytest.raises(KeyboardInterrupt):
        lean.doPoll(0)
    assert second in lean.getWriters()
    lean.removeWriter(first)
    lean.doPoll(0)
    assert secondPeer.recv(10) == b"later"


def test_a_flush_inside_a_flush_keeps_the_outer_writers(
    lean: Any, pairs: list[Any]
) -> None:
    """A handler that runs the reactor again (iterate()) while a flush is
    under way does not lose the outer flush's writers: the one being tried
    is still watched by epoll for what the kernel did not take, and the one
    after it is written."""
    first, firstPeer = _pipe(lean, pairs, "First,20")
    second, secondPeer = _pipe(lean, pairs, "Second,21")
    other, otherPeer = _pipe(lean, pairs, "Other,22")
    writing = first.doWrite
    big = b"z" * 20_000_000

    def writeAndIterate() -> Any:
        why = writing()
        other.write(b"inner")
        lean.doPoll(0)
        return why

    first.doWrite = writeAndIterate  # type: ignore[method-assign]
    first.write(big)
    second.write(b"outer")
    lean.doPoll(0)
    assert otherPeer.recv(10) == b"inner"
    assert secondPeer.recv(10) == b"outer"
    assert first.fileno() in lean._writes
    first.doWrite = writing  # type: ignore[method-assign]
    received = 0
    for _ in range(100_000):
        received += len(firstPeer.recv(1 << 20))
        lean.doPoll(0)
        if received == len(big):
            break
    assert received == len(big)

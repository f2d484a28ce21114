"""
The echo protocol on a StringTransport.
"""

from __future__ import annotations

import pytest
from twisted.internet.task import Clock

from sockserve.echo import echoReplies
from sockserve.limits import Limits
from tests.support import capturedLogs, connectOnStringTransport


def test_each_line_is_answered_with_its_own_ending() -> None:
    """hello\\r\\n gets OK .. hello\\r\\n; a\\n gets OK .. a\\n."""
    protocol, transport, _ = connectOnStringTransport("echo")
    protocol.dataReceived(b"hello\r\n")
    protocol.dataReceived(b"a\n")
    assert transport.value() == b"OK .. hello\r\nOK .. a\n"
    assert not transport.disconnecting


@pytest.mark.parametrize("size", [1, 2, 3, 7, 100])
def test_any_chunking_gives_the_same_replies(size: int) -> None:
    """Lines split across reads, or several in one read, are answered exactly."""
    stream = b"one\r\ntwo\nthree\r\n\n\x00\xff binary\n"
    protocol, transport, _ = connectOnStringTransport("echo")
    for start in range(0, len(stream), size):
        protocol.dataReceived(stream[start : start + size])
    assert transport.value() == (
        b"OK .. one\r\nOK .. two\nOK .. three\r\nOK .. \nOK .. \x00\xff binary\n"
    )


def test_one_second_is_singular() -> None:
    """--idle-timeout 1 says 'idle for 1 second'."""
    clock = Clock()
    _, transport, _ = connectOnStringTransport(
        "echo", Limits(idleTimeout=1), clock=clock
    )
    clock.advance(1)
    assert transport.value() == (b"ERROR idle for 1 second; closing the connection\r\n")


def test_half_close_gets_every_reply_then_close() -> None:
    """A client that shuts down its sending side gets its replies, an
    unfinished last line included (its reply ended with LF), then the server
    closes."""
    protocol, transport, _ = connectOnStringTransport("echo")
    protocol.dataReceived(b"hi\nthere")
    protocol.readConnectionLost()
    assert transport.value() == b"OK .. hi\nOK .. there\n"
    assert transport.disconnecting


def test_write_side_gone_aborts() -> None:
    """A client that cannot receive is cut off."""
    protocol, transport, _ = connectOnStringTransport("echo")
    protocol.writeConnectionLost()
    assert transport.disconnecting


def test_over_long_line_gets_an_error_and_close() -> None:
    """A line longer than --max-line gets one ERROR line and the close."""
    protocol, transport, _ = connectOnStringTransport("echo", Limits(maxLine=8))
    protocol.dataReceived(b"ok\n" + b"x" * 9)
    assert transport.value() == (
        b"OK .. ok\nERROR line too long (the limit is 8 bytes)\r\n"
    )
    assert transport.disconnecting
    protocol.dataReceived(b"more\n")
    assert transport.value().endswith(b"bytes)\r\n")


def test_paused_transport_stops_reading() -> None:
    """When the client does not read its replies, the server stops reading
    its requests, and starts again when it catches up."""
    protocol, transport, _ = connectOnStringTransport("echo")
    assert transport.producer is protocol
    protocol.pauseProducing()
    assert transport.producerState == "paused"
    protocol.resumeProducing()
    assert transport.producerState == "producing"


def test_idle_timeout() -> None:
    """A client silent for --idle-timeout seconds is told why and closed;
    any data resets the timer."""
    clock = Clock()
    protocol, transport, _ = connectOnStringTransport(
        "echo", Limits(idleTimeout=10), clock=clock
    )
    clock.advance(9)
    protocol.dataReceived(b"x\n")
    clock.advance(9)
    assert not transport.disconnecting
    clock.advance(1)
    assert transport.value() == (
        b"OK .. x\nERROR idle for 10 seconds; closing the connection\r\n"
    )
    assert transport.disconnecting
    protocol.connectionLost()  # the client read its ERROR line and went
    assert clock.getDelayedCalls() == []


def test_no_timer_without_idle_timeout() -> None:
    """With the idle timeout off, no timer is kept per connection."""
    clock = Clock()
    connectOnStringTransport("echo", clock=clock)
    assert clock.getDelayedCalls() == []


def test_echo_replies_helper() -> None:
    """echoReplies prefixes every line of a chunk."""
    assert echoReplies(b"a\r\nb\n") == b"OK .. a\r\nOK .. b\n"


def test_connections_are_logged_unless_quiet(logged_errors: object) -> None:
    """Connect and disconnect are logged with the peer's address; a quiet
    server does not log them."""
    from sockserve.factories import buildFactory

    with capturedLogs() as logged:
        for quiet in (False, True):
            factory = buildFactory(
                "echo", Limits(), Clock(), "", logConnections=not quiet
            )
            protocol, _, _ = connectOnStringTransport("echo", factory=factory)
            protocol.connectionLost()
    messages = [
        e["log_format"] for e in logged.events if e.get("peer") == "127.0.0.1:40000"
    ]
    assert messages == [
        "Client {peer} is now connected to us.",
        "Client {peer} disconnected.",
    ]


def test_a_client_that_never_reads_costs_a_bounded_amount() -> None:
    """Replies are written a slice at a time: once the transport says the
    client is not reading, the rest of a large read waits, and nothing more
    is read; when the client catches up, every reply follows, in order."""
    from twisted.internet.testing import StringTransport

    class FillingTransport(StringTransport):
        """Asks its producer to pause once 64 KiB are unread, as Twisted's
        buffer does."""

        def write(self, data: bytes) -> None:
            super().write(data)
            if len(self.value()) > 64 * 1024 and self.producerState != "paused":
                assert self.producer is not None
                self.producer.pauseProducing()

    protocol, _, factory = connectOnStringTransport("echo")
    transport = FillingTransport()
    protocol = factory.buildProtocol(None)
    protocol.makeConnection(transport)
    protocol.dataReceived(b"\n" * 65536)
    held = len(transport.value())
    assert 64 * 1024 < held < 100 * 1024  # not the 448 KiB of every reply
    assert transport.producerState == "paused"  # and nothing more is read
    answered = b""
    while transport.producerState == "paused":
        answered += transport.value()
        transport.clear()
        protocol.resumeProducing()
    answered += transport.value()
    assert answered == b"OK .. \n" * 65536


def test_only_whole_lines_meet_the_idle_deadline() -> None:
    """A byte now and then without a line ending does not keep a client
    connected: --idle-timeout counts from its last complete line."""
    clock = Clock()
    protocol, transport, _ = connectOnStringTransport(
        "echo", Limits(idleTimeout=10), clock=clock
    )
    protocol.dataReceived(b"line\n")
    clock.advance(6)
    protocol.dataReceived(b"x")
    clock.advance(3)
    protocol.dataReceived(b"y")
    assert not transport.disconnecting
    clock.advance(1)
    assert transport.value().endswith(
        b"ERROR idle for 10 seconds; closing the connection\r\n"
    )
    assert transport.disconnecting


def test_a_client_that_does_not_read_its_error_is_cut_off() -> None:
    """A client sent an ERROR line and closed, that does not read it, is
    cut off after a grace period rather than keep its place for ever."""
    from sockserve.protocol import ERROR_GRACE

    clock = Clock()
    protocol, transport, _ = connectOnStringTransport(
        "echo", Limits(idleTimeout=5), clock=clock
    )
    clock.advance(5)
    assert transport.value().startswith(b"ERROR idle")
    assert transport.disconnecting
    assert not getattr(transport, "disconnected", False)
    clock.advance(ERROR_GRACE)
    assert transport.disconnected
    protocol.connectionLost()
    assert clock.getDelayedCalls() == []

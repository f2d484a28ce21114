"""
The one-shot reply protocol on a StringTransport.
"""

from __future__ import annotations

from twisted.internet.task import Clock

from sockserve.limits import Limits
from tests.support import connectOnStringTransport


def test_first_line_is_answered_then_close() -> None:
    """hello\\r\\n gets OK .. hello\\r\\n and the connection is closed."""
    clock = Clock()
    protocol, transport, _ = connectOnStringTransport("oneshot", clock=clock)
    protocol.dataReceived(b"hel")
    protocol.dataReceived(b"lo\r\nignored\n")
    assert transport.value() == b"OK .. hello\r\n"
    assert transport.disconnecting
    assert clock.getDelayedCalls() == []
    protocol.dataReceived(b"more\n")
    assert transport.value() == b"OK .. hello\r\n"


def test_half_close_without_line_ending() -> None:
    """hello then a half-close gets OK .. hello, ended with LF so that the
    reply is a line, then EOF."""
    protocol, transport, _ = connectOnStringTransport("oneshot")
    protocol.dataReceived(b"hello")
    protocol.readConnectionLost()
    assert transport.value() == b"OK .. hello\n"
    assert transport.disconnecting


def test_empty_request_gets_a_whole_line() -> None:
    """A client that sends nothing and half-closes is answered 'OK .. ' and
    LF: a line, like every other reply."""
    protocol, transport, _ = connectOnStringTransport("oneshot")
    protocol.readConnectionLost()
    assert transport.value() == b"OK .. \n"
    assert transport.disconnecting


def test_binary_request_is_returned_exactly() -> None:
    """Arbitrary bytes come back unchanged."""
    protocol, transport, _ = connectOnStringTransport("oneshot")
    protocol.dataReceived(b"\x00\x80\xff\xfe\x1b[2J\n")
    assert transport.value() == b"OK .. \x00\x80\xff\xfe\x1b[2J\n"


def test_request_timeout() -> None:
    """A request not complete within --request-timeout gets an ERROR line."""
    clock = Clock()
    protocol, transport, _ = connectOnStringTransport(
        "oneshot", Limits(requestTimeout=30), clock=clock
    )
    protocol.dataReceived(b"slow")
    clock.advance(29.9)
    assert transport.value() == b""
    clock.advance(0.1)
    assert transport.value() == (b"ERROR no complete request within 30 seconds\r\n")
    assert transport.disconnecting


def test_request_timeout_zero_is_off() -> None:
    """--request-timeout 0 sets no timer: a slow request waits."""
    clock = Clock()
    protocol, transport, _ = connectOnStringTransport(
        "oneshot", Limits(requestTimeout=0), clock=clock
    )
    protocol.dataReceived(b"slow")
    assert clock.getDelayedCalls() == []
    clock.advance(3600)
    protocol.dataReceived(b" but sure\n")
    assert transport.value() == b"OK .. slow but sure\n"


def test_one_timer_for_many_requests() -> None:
    """Requests waiting at once share one timer, each with its own deadline."""
    clock = Clock()
    first, firstOut, factory = connectOnStringTransport(
        "oneshot", Limits(requestTimeout=30), clock=clock
    )
    clock.advance(10)
    second, secondOut, _ = connectOnStringTransport(
        "oneshot", factory=factory, peer=("127.0.0.1", 40001)
    )
    assert len(clock.getDelayedCalls()) == 1
    clock.advance(20)
    assert firstOut.value().startswith(b"ERROR no complete request")
    assert secondOut.value() == b""
    clock.advance(10)
    assert secondOut.value().startswith(b"ERROR no complete request")
    first.connectionLost()  # both read their ERROR lines and went
    second.connectionLost()
    assert clock.getDelayedCalls() == []


def test_connection_lost_cancels_the_timer() -> None:
    """A client that goes away leaves no timer behind."""
    clock = Clock()
    protocol, _, _ = connectOnStringTransport("oneshot", clock=clock)
    assert len(clock.getDelayedCalls()) == 1
    protocol.connectionLost()
    assert clock.getDelayedCalls() == []


def test_over_long_request() -> None:
    """A request longer than --max-line gets an ERROR line."""
    protocol, transport, _ = connectOnStringTransport("oneshot", Limits(maxLine=4))
    protocol.dataReceived(b"abcde")
    assert transport.value() == b"ERROR line too long (the limit is 4 bytes)\r\n"
    assert transport.disconnecting


def test_shutdown_lets_a_request_finish() -> None:
    """At shutdown, a client still sending its request may finish it."""
    protocol, transport, _ = connectOnStringTransport("oneshot")
    protocol.beginShutdown()
    assert not transport.disconnecting
    protocol.dataReceived(b"late\n")
    assert transport.value() == b"OK .. late\n"

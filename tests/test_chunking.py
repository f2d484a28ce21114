"""
Property: any split of any byte stream into reads yields the same replies and
broadcasts as the unsplit stream.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sockserve.limits import Limits
from tests.support import connectOnStringTransport

LINE_PIECES = st.one_of(
    st.binary(max_size=12),
    st.sampled_from(
        [
            b"\n",
            b"\r\n",
            b"\r",
            b"/nick x\n",
            b"/who\n",
            b"//a\n",
            b"\x1b",
            b"/join a\n",
            b"/part\n",
            b"/rooms\n",
            b"/msg guest2 hi\n",
            b"/say default b\n",
        ]
    ),
)


@st.composite
def splitStream(draw: st.DrawFn) -> tuple[bytes, list[bytes]]:
    data = draw(st.lists(LINE_PIECES, max_size=25).map(b"".join))
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=12)))
    return data, [
        data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)
    ]


def run(mode: str, chunks: list[bytes], halfClose: bool) -> tuple[bytes, bool]:
    protocol, transport, _ = connectOnStringTransport(mode, Limits(maxLine=40))
    transport.clear()
    for chunk in chunks:
        protocol.dataReceived(chunk)
    if halfClose:
        protocol.readConnectionLost()
    return transport.value(), transport.disconnecting


@settings(max_examples=200)
@given(splitStream(), st.booleans())
def test_echo_replies_do_not_depend_on_reads(
    case: tuple[bytes, list[bytes]], halfClose: bool
) -> None:
    """Echo: the replies and whether the server closes are the same for every
    split of the stream."""
    data, chunks = case
    assert run("echo", chunks, halfClose) == run("echo", [data], halfClose)


@settings(max_examples=200)
@given(splitStream(), st.booleans())
def test_oneshot_reply_does_not_depend_on_reads(
    case: tuple[bytes, list[bytes]], halfClose: bool
) -> None:
    """One-shot: the reply is the same for every split of the stream."""
    data, chunks = case
    assert run("oneshot", chunks, halfClose) == run("oneshot", [data], halfClose)


def broadcast(chunks: list[bytes]) -> tuple[bytes, bytes]:
    from twisted.internet.task import Clock

    from sockserve.factories import buildFactory

    factory = buildFactory("chat", Limits(maxLine=40), Clock(), "hi")
    sender, senderOut, _ = connectOnStringTransport("chat", factory=factory)
    _, otherOut, _ = connectOnStringTransport(
        "chat", factory=factory, peer=("127.0.0.1", 40001)
    )
    senderOut.clear()
    otherOut.clear()
    for chunk in chunks:
        sender.dataReceived(chunk)
    sender.readConnectionLost()
    return senderOut.value(), otherOut.value()


@settings(max_examples=200)
@given(splitStream())
def test_chat_broadcasts_do_not_depend_on_reads(
    case: tuple[bytes, list[bytes]],
) -> None:
    """Chat: what the sender and the others receive is the same for every
    split of the stream, whatever rooms the sender goes to and whomever it
    messages."""
    data, chunks = case
    assert broadcast(chunks) == broadcast([data])

"""
Telnet's own commands on chat connections: the filter (L{TelnetFilter}) on
its own, the chat protocol on StringTransports, and the real C{telnet} in a
pseudo-terminal.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sockserve._telnet import (
    DO,
    DONT,
    IAC,
    SB,
    SE,
    TIMING_MARK,
    WILL,
    WONT,
    TelnetFilter,
)
from tests.processes import WAIT, Processes, TcpMember, systemProgram
from tests.test_chat import Room, take

BRK = b"\xf3"
IP = b"\xf4"
ECHO = b"\x01"
NAWS = b"\x1f"


def filtered(*chunks: bytes) -> tuple[bytes, bytes]:
    """
    Feed C{chunks} to a new filter; return the text and the answers.
    """
    telnet = TelnetFilter()
    text = answers = b""
    for chunk in chunks:
        more, answer = telnet.feed(chunk)
        text += more
        answers += answer
    return text, answers


# The filter


def test_text_without_commands_is_unchanged() -> None:
    """Bytes without IAC pass as they are, and nothing is answered."""
    assert filtered(b"hello\r\n", "日本語\r\n".encode()) == (
        "hello\r\n日本語\r\n".encode(),
        b"",
    )


def test_ctrl_c_is_stripped_and_the_timing_mark_answered() -> None:
    """Ctrl-C in netkit telnet sends IAC IP IAC DO TIMING-MARK: the text
    around it stays, the commands go, and WILL TIMING-MARK answers (telnet
    shows output again only once it has an answer)."""
    assert filtered(b"ab" + IAC + IP + IAC + DO + TIMING_MARK + b"cd\r\n") == (
        b"abcd\r\n",
        IAC + WILL + TIMING_MARK,
    )


def test_options_asked_for_are_refused() -> None:
    """DO an option sockserve does not do is answered WONT; WILL is answered
    DONT; WONT and DONT need no answer (nothing was on)."""
    assert filtered(IAC + DO + ECHO + IAC + WILL + NAWS) == (
        b"",
        IAC + WONT + ECHO + IAC + DONT + NAWS,
    )
    assert filtered(IAC + WONT + ECHO + IAC + DONT + NAWS + b"x") == (b"x", b"")


def test_subnegotiation_is_dropped() -> None:
    """IAC SB ... IAC SE is dropped whole, IAC IAC inside it included."""
    assert filtered(
        b"a" + IAC + SB + NAWS + b"\x00\x50" + IAC + IAC + b"\x18" + IAC + SE + b"b"
    ) == (b"ab", b"")


def test_doubled_iac_is_one_data_byte() -> None:
    """IAC IAC is the data byte 0xFF."""
    assert filtered(b"a" + IAC + IAC + b"b") == (b"a\xffb", b"")


def test_stray_0xff_stays_text() -> None:
    """0xFF before a byte that is no command (from a client that is not
    telnet: invalid UTF-8) stays, with that byte."""
    assert filtered(b"bell\xff caf\xc3\xa9\n") == (b"bell\xff caf\xc3\xa9\n", b"")
    assert filtered(b"a\xff", b"b") == (b"a\xffb", b"")


def test_commands_split_across_reads() -> None:
    """A command split between reads is recognised all the same."""
    whole = b"ab" + IAC + BRK + IAC + DO + TIMING_MARK + b"cd"
    for cut in range(len(whole) + 1):
        assert filtered(whole[:cut], whole[cut:]) == (b"abcd", IAC + WILL + TIMING_MARK)


@given(st.lists(st.binary(max_size=20), max_size=10))
def test_same_result_in_any_chunking(pieces: list[bytes]) -> None:
    """The text and answers do not depend on how the bytes were read."""
    whole = b"".join(pieces)
    assert filtered(*pieces) == filtered(whole)
    assert filtered(*pieces) == filtered(*[bytes([b]) for b in whole])


def test_plain_data_is_not_copied() -> None:
    """Without IAC (and nothing pending), the same object comes back: the
    chat's hot path pays one C{in} test."""
    data = b"x" * 1000 + b"\n"
    text, answers = TelnetFilter().feed(data)
    assert text is data
    assert answers == b""


# The chat protocol


def test_chat_strips_commands_and_answers_them() -> None:
    """A telnet user's Ctrl-C reaches nobody: the room sees the line without
    the commands, and the user is answered WILL TIMING-MARK."""
    room = Room()
    alice, aliceOut = room.join()
    _, bobOut = room.join()
    take(aliceOut)
    take(bobOut)
    alice.dataReceived(b"hel" + IAC + IP + IAC + DO)
    alice.dataReceived(TIMING_MARK + b"lo\r\n")
    assert take(bobOut) == b"<guest1> hello\r\n"
    assert take(aliceOut) == IAC + WILL + TIMING_MARK


def test_chat_sends_nothing_unprompted() -> None:
    """A netcat client (no telnet commands) is sent no negotiation at all."""
    room = Room()
    alice, aliceOut = room.join()
    _, bobOut = room.join()
    assert IAC not in take(aliceOut)
    alice.dataReceived(b"hello\n")
    assert IAC not in take(aliceOut) + take(bobOut)


def test_echo_stays_byte_exact() -> None:
    """Echo mode sends back every byte, telnet commands included: it is the
    byte-exact mode."""
    from tests.support import connectOnStringTransport

    protocol, transport, _ = connectOnStringTransport("echo")
    transport.clear()
    protocol.dataReceived(b"a" + IAC + DO + TIMING_MARK + b"b\n")
    assert transport.value() == b"OK .. a" + IAC + DO + TIMING_MARK + b"b\n"


# The real telnet


@pytest.mark.e2e
def test_telnet_user_keeps_their_output(processes: Processes) -> None:
    """
    With the real (netkit) telnet in a terminal: Japanese text (whose byte
    0x9C telnet sends as IAC BRK IAC DO TIMING-MARK) and Ctrl-C (IAC IP IAC
    DO TIMING-MARK) neither cut the telnet user off from the room's lines
    nor show telnet's bytes to the others.
    """
    server = processes.server()
    other = TcpMember(processes, server)
    telnet = processes.terminal(
        [systemProgram("telnet"), "127.0.0.1", str(server.port)]
    )
    telnet.output.waitForText(b"* you are guest")
    user = other.lineUntil(lambda line: line.endswith(" joined"))[2:-7]

    # Each answer is said once the line before it is in: telnet drops what
    # it receives until the server answers its timing mark.
    telnet.type("日本語\r".encode())
    said = other.lineUntil(lambda line: line.startswith(f"<{user}> "))
    assert said.startswith(f"<{user}> 日"), said
    assert said.endswith("語"), said
    assert "\\xff" not in said, said
    other.say("first answer")
    telnet.output.waitForText(b"first answer\r\n", WAIT)

    telnet.type(b"\x03")
    telnet.type(b"after ctrl-c\r")
    assert other.lineUntil(lambda line: line.startswith(f"<{user}> ")) == (
        f"<{user}> after ctrl-c"
    )
    other.say("second answer")
    telnet.output.waitForText(b"second answer\r\n", WAIT)
    telnet.type(b"\x1d")
    telnet.output.waitForText(b"telnet>")
    telnet.type(b"quit\n")
    telnet.output.readToEnd()
    assert telnet.process.wait(WAIT) == 0

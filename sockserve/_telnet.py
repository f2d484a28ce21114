"""
Telnet's own commands (RFC 854) taken out of a chat client's input, and
answered.

netkit C{telnet} sends commands of its own when its user presses Ctrl-C
(C{IAC IP IAC DO TIMING-MARK}) or types a byte whose low seven bits are a
terminal's quit character (C{0x9C}, in UTF-8 Japanese, comes out as C{IAC BRK
IAC DO TIMING-MARK}), and then hides everything it receives until the
server answers the timing mark (RFC 860). A chat server that neither
answers nor strips them cuts its telnet users off and shows their bytes to
the room.

L{TelnetFilter} strips every command, answers C{DO TIMING-MARK} with C{WILL
TIMING-MARK}, and refuses every other option (C{WONT} for C{DO}, C{DONT}
for C{WILL}). It never speaks first, so a netcat client sees nothing of
telnet.

Why not C{twisted.conch.telnet}: its C{TelnetTransport} wraps the
protocol's transport (the chat protocol registers itself as a producer on
its transport, reads its unsent bytes and aborts it), and it looks at every
byte in a Python loop; the chat's input is nearly always plain text, which
here costs one C{in} test, and a command costs a C{find}, not a loop over
the text around it.
"""

from __future__ import annotations

IAC = b"\xff"
DONT = b"\xfe"
DO = b"\xfd"
WONT = b"\xfc"
WILL = b"\xfb"
SB = b"\xfa"
SE = b"\xf0"
TIMING_MARK = b"\x06"

_IAC = IAC[0]
_SB = SB[0]
_SE = SE[0]
_ANSWERS = {DO[0]: WONT, WILL[0]: DONT, DONT[0]: b"", WONT[0]: b""}

# Where the filter is: in text, after IAC, after IAC and a verb (DO, DONT,
# WILL, WONT), inside a subnegotiation, after IAC inside one.
_TEXT, _COMMAND, _OPTION, _SUB, _SUB_IAC = range(5)


class TelnetFilter:
    """
    Take telnet commands out of a byte stream, read after read, and say
    what to answer them.

    Commands and subnegotiations are dropped without being kept (a
    subnegotiation that never ends costs nothing but its own bytes);
    C{IAC IAC} is the data byte C{0xFF}, and C{IAC} before a byte that
    is not a command (below 240) is left as it is, with that byte.
    """

    __slots__ = ("_state", "_verb")

    def __init__(self) -> None:
        self._state = _TEXT
        self._verb = 0

    def feed(self, data: bytes) -> tuple[bytes, bytes]:
        """
        Return the text of C{data} without telnet's commands, and the bytes
        to answer them with (empty when there is nothing to answer).

        Data without C{IAC}, read while no command is under way, comes back
        as it is, without being copied.
        """
        if self._state == _TEXT and IAC not in data:
            return data, b""
        text: list[bytes] = []
        answers: list[bytes] = []
        state = self._state
        index, end = 0, len(data)
        while index < end:
            if state == _TEXT:
                found = data.find(IAC, index)
                if found < 0:
                    text.append(data[index:])
                    break
                text.append(data[index:found])
                index = found + 1
                state = _COMMAND
            elif state == _COMMAND:
                byte = data[index]
                index += 1
                if byte == _IAC:
                    text.append(IAC)
                    state = _TEXT
                elif byte < _SE:
                    # Not a command (they are 240 to 255): a client that is
                    # not telnet sent a stray 0xFF, which stays text.
                    text.append(IAC)
                    index -= 1
                    state = _TEXT
                elif byte in _ANSWERS:
                    self._verb = byte
                    state = _OPTION
                elif byte == _SB:
                    state = _SUB
                else:
                    # A two-byte command (BRK, IP, AO, AYT, NOP, GA...):
                    # nothing in a chat to do about it.
                    state = _TEXT
            elif state == _OPTION:
                option = data[index : index + 1]
                index += 1
                answers.append(self._answer(option))
                state = _TEXT
            elif state == _SUB:
                found = data.find(IAC, index)
                if found < 0:
                    break
                index = found + 1
                state = _SUB_IAC
            else:
                byte = data[index]
                index += 1
                state = _TEXT if byte == _SE else _SUB
        self._state = state
        return b"".join(text), b"".join(answers)

    def _answer(self, option: bytes) -> bytes:
        """
        The answer to C{IAC verb option}: C{WILL TIMING-MARK} for C{DO
        TIMING-MARK}, a refusal for other C{DO} and C{WILL}, nothing for
        C{DONT} and C{WONT} (every option is off already).
        """
        verb = self._verb
        if verb == DO[0] and option == TIMING_MARK:
            return IAC + WILL + TIMING_MARK
        refusal = _ANSWERS[verb]
        return IAC + refusal + option if refusal else b""

"""
One client's behaviour costs that client, end to end: the real C{twistd}
chat server and raw TCP clients doing what a hostile user did in a probe
(issue #17): history that disconnected every newcomer, empty lines that
kept an idle seat, a member who joined unseen, names that pass for others'.
"""

from __future__ import annotations

import select
import socket
import time

import pytest

from tests.processes import WAIT, Processes, TcpMember, receiveText, receiveWelcome

pytestmark = pytest.mark.e2e


def test_history_never_disconnects_a_newcomer(processes: Processes) -> None:
    """
    One member says 20 lines of 60,000 bytes with --history 20: a newcomer
    still gets the greeting and the history that fits, told how many lines
    are not shown, and stays connected.
    """
    server = processes.server("--history", "20", mode="chat")
    speaker = TcpMember(processes, server)
    for n in range(20):
        speaker.send(b"%02d" % n + b"x" * 60_000 + b"\r\n")
    speaker.send(b"/who\r\n")
    speaker.lineUntil(lambda line: " here: " in line)
    newcomer = TcpMember(processes, server)
    heading = newcomer.lineUntil(lambda line: line.startswith("* the last"))
    assert "earlier lines too long to show" in heading
    shown = []
    for _ in range(25):
        line = newcomer.line()
        if line == "* (end of history)":
            break
        shown.append(line)
    assert shown
    assert shown[-1].startswith(f"<{speaker.name}> 19x")
    newcomer.send(b"/who\r\n")
    assert newcomer.lineUntil(lambda line: " here: " in line).startswith("* 2 here")


def test_empty_lines_do_not_keep_an_idle_seat(processes: Processes) -> None:
    """
    With --idle-timeout 1, a client that sends nothing but empty lines is
    disconnected as idle.
    """
    server = processes.server("--idle-timeout", "1", mode="chat")
    client = processes.connect(("127.0.0.1", server.port))
    received = receiveText(client, b"* you are ")
    deadline = time.monotonic() + WAIT
    while b"ERROR idle" not in received:
        assert time.monotonic() < deadline, received
        ready, _, _ = select.select([client], [], [], 0.2)
        if ready:
            chunk = client.recv(65536)
            assert chunk, received
            received += chunk
        else:
            client.sendall(b"\r\n")
    assert b"ERROR idle for 1 second" in received


def test_a_quiet_join_is_still_seen(processes: Processes) -> None:
    """
    An address that joins again and again is let in quietly; the room is
    still told, in a summary, who joined that way.
    """
    server = processes.server(mode="chat")
    watcher = TcpMember(processes, server)
    for _ in range(11):
        churner = socket.create_connection(("127.0.0.1", server.port), timeout=WAIT)
        try:
            receiveText(churner, b"* you are ")
        finally:
            churner.close()
    lurker = processes.connect(("127.0.0.1", server.port))
    name = receiveWelcome(lurker)[0].name
    summary = watcher.lineUntil(lambda line: "joined quietly" in line and name in line)
    assert summary.startswith("* ")


@pytest.mark.parametrize("lookAlike", ["aIice", "a|ice", "a1ice", "al1ce", "alice_"])
def test_a_name_that_looks_like_a_members_is_refused(
    processes: Processes, lookAlike: str
) -> None:
    """
    With alice present, a name that looks like hers is refused, with one
    line saying whose it looks like.
    """
    server = processes.server(mode="chat")
    alice = TcpMember(processes, server)
    alice.send(b"/nick alice\r\n")
    assert alice.line() == "* you are now known as alice"
    other = TcpMember(processes, server)
    other.send(f"/nick {lookAlike}\r\n".encode())
    assert other.lineUntil(lambda line: line.startswith("ERROR")) == (
        f"ERROR the name {lookAlike} is taken: it looks too much like alice"
    )

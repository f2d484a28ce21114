"""
Operators end to end: a real twistd with --accounts and --bans, line
clients over TCP from several loopback addresses: /kick, /ban of an
address (refused at connect, until the ban ends) and of an account
(refused at login, across a restart), /mute, and the audit events in the
JSON log.
"""

from __future__ import annotations

import json
import re
import time
import urllib.request
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest

from tests.processes import (
    WAIT,
    Processes,
    TcpMember,
    installedProgram,
    receiveText,
    receiveToEOF,
)
from tests.redis import RedisServer
from tests.test_e2e_accounts import accountsFile
from tests.test_e2e_web import (  # the fixture, and the client it gives
    WebClient,
    webClients,  # noqa: F401
)

pytestmark = pytest.mark.e2e

_UNTIL = re.compile(rb"until (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC")


def answer(line: str) -> bool:
    """Whether C{line} answers a command (not news of the room)."""
    return line.startswith(("ERROR", "* you", "* bob is"))


def operator(processes: Processes, port: int) -> TcpMember:
    alice = TcpMember(processes, port)
    assert alice.ask("/login alice wonderland", lambda line: True) == (
        "* you are logged in as alice (operator)"
    )
    alice.lineUntil(lambda line: line == "* you are now known as alice")
    return alice


def refusedAtConnect(processes: Processes, port: int, source: str) -> bytes:
    """What a client from C{source} is told before the server closes."""
    sock = processes.connect(("127.0.0.1", port), source=source)
    return receiveToEOF(sock)


def test_kick_ban_and_mute_over_tcp(processes: Processes) -> None:
    """An operator kicks a guest (it can come back), bans its address for a
    while (it is removed, then refused at connect with one line, before it
    is welcomed, until the ban ends), mutes a member (nobody else sees
    anything), and bans an account (its login is refused, and still is
    after a restart with the same --bans file); each action is an audit
    event in the JSON log."""
    accounts = accountsFile(processes)
    bans = processes.directory / "bans.json"
    options = ("--accounts", str(accounts), "--bans", str(bans))
    twistd = [
        installedProgram("twistd"),
        "-n",
        "--logger",
        "sockserve.logs.jsonLogObserver",
    ]
    server = processes.server(*options, command=twistd)
    alice = operator(processes, server.port)
    bob = TcpMember(processes, server, source="127.0.0.2")
    carol = TcpMember(processes, server, source="127.0.0.3")

    # A kick: bob is told why and closed; the room is told.
    alice.say(f"/kick {bob.name} enough")
    assert bob.lineUntil(lambda line: line.startswith("ERROR")) == (
        "ERROR you were kicked by alice: enough"
    )
    assert receiveToEOF(bob.sock) == b""
    carol.lineUntil(lambda line: line == f"* {bob.name} left (kicked by alice: enough)")
    alice.lineUntil(lambda line: line == f"* you kicked {bob.name}: enough")

    # A ban of bob's address, for 2 seconds.
    bob = TcpMember(processes, server, source="127.0.0.2")
    alice.say("/ban 127.0.0.2 2s flooding")
    told = bob.lineUntil(lambda line: line.startswith("ERROR"))
    assert told.startswith("ERROR you are banned from this server until ")
    assert told.endswith(" UTC: flooding")
    assert receiveToEOF(bob.sock) == b""
    alice.lineUntil(lambda line: line.startswith("* banned 127.0.0.2/32 until "))
    refused = refusedAtConnect(processes, server.port, "127.0.0.2")
    assert refused.startswith(b"ERROR connections from 127.0.0.2/32 are banned until ")
    assert refused.count(b"\n") == 1
    # The ban ends: wait for its time to pass (the clock is the subject).
    until = datetime.strptime(
        _UNTIL.search(refused).group(1).decode() + " +0000",  # type: ignore[union-attr]
        "%Y-%m-%d %H:%M:%S %z",
    ).timestamp()
    time.sleep(max(0.0, until - time.time()) + 1.0)
    back = TcpMember(processes, server, source="127.0.0.2")
    assert back.name.startswith("guest")

    # A mute: carol's lines are refused, to her alone.
    alice.say(f"/mute {carol.name} 10m")
    carol.lineUntil(lambda line: line.startswith("* you are muted until "))
    carol.say("can anyone hear me?")
    assert carol.lineUntil(lambda line: line.startswith("ERROR")).startswith(
        "ERROR you are muted until "
    )
    alice.say(f"/unmute {carol.name}")
    assert carol.line() == "* you are no longer muted"
    carol.say("back")
    assert back.lineUntil(lambda line: line.endswith("> back")) == (
        f"<{carol.name}> back"
    )

    # A ban of an account, until lifted.
    assert carol.ask("/login bob builder1", answer) == ("* you are logged in as bob")
    alice.say("/ban bob spam")
    assert carol.lineUntil(lambda line: line.startswith("ERROR")) == (
        "ERROR you are banned from this server until lifted: spam"
    )
    assert alice.lineUntil(lambda line: line.startswith("* banned")) == (
        "* banned bob until lifted; removed bob"
    )
    assert alice.ask("/bans", lambda line: line.startswith("* ban bob")) == (
        "* ban bob (until lifted, by alice): spam"
    )
    server.stop()
    events = [json.loads(line) for line in server.output.text().splitlines() if line]
    audits = [event for event in events if event.get("audit")]
    assert [(e["who"], e["what"]) for e in audits] == [
        ("alice", "kick"),
        ("alice", "ban"),
        ("alice", "mute"),
        ("alice", "unmute"),
        ("alice", "ban"),
    ]
    assert audits[1]["whom"] == "127.0.0.2/32"
    assert audits[1]["reason"] == "flooding"
    assert audits[1]["until"].endswith("+00:00")
    assert audits[4]["until"] is None

    # After a restart, the file still bans the account.
    again = processes.server(*options)
    carol = TcpMember(processes, again, source="127.0.0.3")
    assert carol.ask("/login bob builder1", answer) == (
        "ERROR the account bob is banned until lifted"
    )
    alice = operator(processes, again.port)
    assert alice.ask("/unban bob", answer) == "* bob is no longer banned"
    assert carol.ask("/login bob builder1", answer) == ("* you are logged in as bob")


def test_kick_and_ban_on_irc(processes: Processes) -> None:
    """Over raw IRC sockets: the operator is @alice in NAMES; its KICK
    reaches everyone in the room, the one kicked too, who stays connected
    and can join again; MODE +b *!*@ADDRESS closes that client, told why,
    and refuses the address at connect (before registration) on the IRC
    port and the line port alike; MODE b lists the ban."""
    server = processes.server(
        "--accounts",
        str(accountsFile(processes)),
        "--irc",
        "tcp:0:interface=127.0.0.1",
        listeners=2,
    )
    port = server.portOf("irc")
    alice = processes.connect(("127.0.0.1", port))
    alice.sendall(
        b"PASS alice:wonderland\r\nNICK alice\r\nUSER alice 0 * :A\r\nJOIN #lab\r\n"
    )
    joined = receiveText(alice, b" 366 alice #lab ")
    assert b" 353 alice = #lab :@alice\r\n" in joined
    dave = processes.connect(("127.0.0.1", port), source="127.0.0.2")
    dave.sendall(b"NICK dave\r\nUSER dave 0 * :D\r\nJOIN #lab\r\n")
    assert b":@alice dave\r\n" in receiveText(dave, b" 366 dave #lab ")
    receiveText(alice, b" JOIN #lab\r\n")

    alice.sendall(b"KICK #lab dave :too loud\r\n")
    kick = b" KICK #lab dave :too loud\r\n"
    receiveText(alice, kick)
    receiveText(dave, kick)
    dave.sendall(b"JOIN #lab\r\n")
    receiveText(dave, b" 366 dave #lab ")
    receiveText(alice, b":dave!")

    alice.sendall(b"MODE #lab +b *!*@127.0.0.2\r\nMODE #lab b\r\n")
    listed = receiveText(alice, b" 368 alice #lab ")
    assert b" MODE #lab +b *!*@127.0.0.2\r\n" in listed
    assert b" 367 alice #lab *!*@127.0.0.2 alice " in listed
    assert receiveToEOF(dave).endswith(
        b"ERROR :you are banned from this server until lifted\r\n"
    )
    for refused in (port, server.port):
        again = processes.connect(("127.0.0.1", refused), source="127.0.0.2")
        said = receiveToEOF(again)
        assert said.count(b"\n") == 1, said
        assert b"connections from 127.0.0.2/32 are banned until lifted" in said


def test_operators_on_the_page(
    processes: Processes,
    webClients: Callable[..., WebClient],  # noqa: F811 (the fixture)
) -> None:
    """An operator on a WebSocket kicks a page, which is told why and
    closed with 1008 (not "try again later"); a banned address's page is
    told so and closed with 1008 before it is welcomed."""
    server = processes.server(
        "--accounts", str(accountsFile(processes)), "--web", "0", listeners=2
    )
    port = server.portOf("web")
    alice = webClients(port)
    alice.greeting()
    alice.send("/login alice wonderland")
    alice.receiveUntil(lambda frame: frame == "* you are now known as alice")
    page = webClients(port, source="127.0.0.2")
    name = page.greeting().name
    alice.send(f"/kick {name} bye")
    frames, code, reason = page.closed()
    assert frames[-1] == "ERROR you were kicked by alice: bye"
    assert (code, reason) == (1008, "kicked")
    alice.send("/ban 127.0.0.2 1h")
    alice.receiveUntil(lambda frame: frame.startswith("* banned 127.0.0.2/32"))
    refused = webClients(port, source="127.0.0.2")
    frames, code, reason = refused.closed()
    assert len(frames) == 1
    assert frames[0].startswith("ERROR connections from 127.0.0.2/32 are banned until")
    assert (code, reason) == (1008, "banned")


def test_moderation_metrics(processes: Processes) -> None:
    """sockserve_moderation_total counts the operators' actions, and
    sockserve_logins_total the logins refused for a ban."""
    server = processes.server(
        "--accounts", str(accountsFile(processes)), "--metrics", "0", listeners=2
    )
    alice = operator(processes, server.port)
    guest = TcpMember(processes, server, source="127.0.0.2")
    alice.say(f"/kick {guest.name}")
    alice.lineUntil(lambda line: line == f"* you kicked {guest.name}")
    alice.say("/ban bob 1h")
    alice.lineUntil(lambda line: line.startswith("* banned bob"))
    bob = TcpMember(processes, server, source="127.0.0.3")
    assert bob.ask("/login bob builder1", answer).startswith(
        "ERROR the account bob is banned until "
    )
    url = f"http://127.0.0.1:{server.portOf('metrics')}/metrics"
    with urllib.request.urlopen(url, timeout=WAIT) as response:
        text = response.read().decode()
    for action, count in (("kick", 1), ("ban", 1), ("unban", 0), ("mute", 0)):
        assert (
            f'sockserve_moderation_total{{action="{action}",mode="chat"}} {count}.0'
            in text
        ), text
    assert 'sockserve_logins_total{mode="chat",result="banned"} 1.0' in text


def test_bans_and_mutes_on_every_bus_node(processes: Processes, tmp_path: Path) -> None:
    """Two nodes of a bus: a ban made on one removes whoever it matches on
    the other and refuses them there at connect; a mute made on one holds
    on the other; a kick made on one removes its person on the other; a node
    started afresh (no --bans file) applies the bans, from Redis."""
    accounts = accountsFile(processes)
    redis = RedisServer(tmp_path / "redis").start()
    try:
        options = ("--bus", redis.url, "--accounts", str(accounts))
        nodes = [processes.server(*options) for _ in range(2)]
        for node in nodes:
            node.output.waitForText(b"Joined the bus")
        alice = operator(processes, nodes[0].port)
        far = TcpMember(processes, nodes[1], source="127.0.0.2")
        carol = TcpMember(processes, nodes[1], source="127.0.0.3")
        # Once this node knows carol (the bus tells it), it can mute her.
        alice.lineUntil(lambda line: line == f"* {carol.name} joined")
        alice.say(f"/mute {carol.name} 1h")
        alice.lineUntil(lambda line: line.startswith(f"* muted {carol.name}"))
        alice.say("/ban 127.0.0.2 1h away")
        alice.lineUntil(lambda line: line.startswith("* banned 127.0.0.2/32"))
        # The other node reads the bus every second: the ban removes far
        # there, told why, and its room is told.
        told = far.lineUntil(lambda line: line.startswith("ERROR"))
        assert told.startswith("ERROR you are banned from this server until ")
        assert told.endswith(" UTC: away")
        carol.lineUntil(
            lambda line: line == f"* {far.name} left (banned by alice: away)"
        )
        # The mute, written before the ban, holds there too.
        carol.say("anyone?")
        assert carol.lineUntil(lambda line: line.startswith("ERROR")).startswith(
            "ERROR you are muted until "
        )
        refused = refusedAtConnect(processes, nodes[1].port, "127.0.0.2")
        assert refused.startswith(b"ERROR connections from 127.0.0.2/32 are banned")
        # A kick of someone on the other node: that node removes them, told
        # why, and its room is told.
        alice.say(f"/kick {carol.name} enough")
        alice.lineUntil(
            lambda line: (
                line == f"* you asked every server to kick {carol.name}: enough"
            )
        )
        assert carol.lineUntil(lambda line: line.startswith("ERROR")) == (
            "ERROR you were kicked by alice: enough"
        )
        assert receiveToEOF(carol.sock) == b""
        # A node started afresh reads them from the bus.
        fresh = processes.server(*options)
        fresh.output.waitForText(b"Read 1 ban and 1 mute from the bus")
        refused = refusedAtConnect(processes, fresh.port, "127.0.0.2")
        assert refused.startswith(b"ERROR connections from 127.0.0.2/32 are banned")
    finally:
        redis.kill()

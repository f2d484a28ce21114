"""
Real IRC clients from Debian in sockserve's rooms, end to end: irssi (in
C{tmux}), WeeChat headless and C{ii}, each in a channel of a real C{twistd}
where a person on C{telnet} (in a terminal) and one in a browser page
(Debian's Chromium, driven by Playwright) are talking; and IRC clients on
two nodes of a bus in one channel.

What each person sees is read where they see it: the IRC clients' own logs
of each window (see L{tests.ircclients}), the terminal telnet runs in, the
page.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from tests.ircclients import CLIENTS, IrcClient, IrssiClient, WeechatClient
from tests.processes import WAIT, Processes, Server, Terminal, systemProgram
from tests.redis import RedisServer
from tests.test_browser import (
    SEE,
    TcpPerson,
    joinRoom,
    open_,
    openPage,
    rename,
    say,
    shown,
)

pytestmark = pytest.mark.e2e

LOOPBACK = "tcp:0:interface=127.0.0.1"
"""A listener on a loopback port the system chooses."""

CHANNEL = "#lab"
"""The channel the tests meet in: the room C{lab}."""

NICKS = {"irssi": "iris", "weechat": "wendy", "ii": "ivan"}
"""The nick each client's user asks for."""

RENAMED = {"irssi": "irene", "weechat": "wanda", "ii": "igor"}
"""The nick each client's user changes to."""

PARTNERS = {"irssi": "weechat", "weechat": "ii", "ii": "irssi"}
"""The other IRC client in the channel with each one: every client talks
with every other."""


Expected = str | re.Pattern[bytes]


class TelnetUser:
    """
    A person running C{telnet} to the chat port in a terminal: typing lines,
    reading what the terminal shows.

    @ivar name: the name the server gave, then the one taken with L{rename}.
    """

    def __init__(self, processes: Processes, server: Server) -> None:
        self.terminal: Terminal = processes.terminal(
            [systemProgram("telnet"), "127.0.0.1", str(server.port)]
        )
        self.since = 0
        welcome = self.waitFor(re.compile(rb"^\* you are (\S+) ", re.M))
        self.name = welcome[1].decode()

    def type(self, line: str) -> None:
        """
        Type C{line} and Enter.
        """
        self.terminal.type(line.encode("utf-8") + b"\n")

    def mark(self) -> None:
        """
        From now on, look for what is shown after what was shown so far.
        """
        self.since = len(self.terminal.output.data)

    def waitFor(self, expected: Expected, timeout: float = WAIT) -> re.Match[bytes]:
        """
        Wait until the terminal shows C{expected} (a whole line, or a
        pattern) after the last L{mark}; return where it shows it.
        """
        if isinstance(expected, str):
            pattern = re.compile(
                rb"^" + re.escape(expected.encode("utf-8")) + rb"\r*$", re.M
            )
        else:
            pattern = expected
        found: list[re.Match[bytes]] = []

        def shown(data: bytes) -> bool:
            match = pattern.search(data, self.since)
            if match is not None:
                found.append(match)
            return match is not None

        self.terminal.output.waitFor(shown, repr(expected), timeout)
        return found[0]

    def rename(self, name: str) -> None:
        """
        C{/nick name}, and wait until the server says so.
        """
        self.type(f"/nick {name}")
        self.waitFor(f"* you are now known as {name}")
        self.name = name

    def join(self, room: str) -> None:
        """
        C{/join room}, and wait until the server says so.
        """
        self.type(f"/join {room}")
        self.waitFor(
            re.compile(rb"^\* you are now in #" + room.encode() + rb"; ", re.M)
        )


def chatServer(processes: Processes) -> Server:
    """
    A chat server with its line port, a page and an IRC port on loopback.
    """
    return processes.server("--web", LOOPBACK, "--irc", LOOPBACK, listeners=3)


def ircClient(
    processes: Processes, server: Server, kind: str, nickname: str
) -> IrcClient:
    """
    Start the IRC client C{kind} on C{server}'s IRC port as C{nickname}.
    """
    return CLIENTS[kind](processes, "127.0.0.1", server.portOf("irc"), nickname).start()


def said(page: Page, text: str) -> Locator:
    """
    The lines of the conversation in view that say C{text}.
    """
    return shown(page).locator("li.message").filter(has_text=text)


def noticed(page: Page, text: str) -> Locator:
    """
    The notices of the conversation in view that say C{text}.
    """
    return shown(page).locator("li.notice").filter(has_text=text)


def members(page: Page) -> Locator:
    """
    The member list of the room in view.
    """
    return page.locator("#members li")


@pytest.mark.parametrize("kind", sorted(CLIENTS))
def test_irc_client_chats_with_telnet_and_a_page(
    processes: Processes, browser: Browser, pages: list[Page], kind: str
) -> None:
    """
    An IRC client joins C{#lab}, where a telnet user, a person in a page
    and a user of another IRC client are: lines cross in every direction;
    a topic set on IRC reaches telnet and the other client, one set on
    telnet reaches both clients; its user's rename is a rename to everyone,
    as is the telnet user's to the IRC clients; private messages go to
    telnet and to the page and their answers come back as a query; a part
    and a quit are seen as such by everyone.
    """
    server = chatServer(processes)
    page = openPage(browser, pages, f"http://127.0.0.1:{server.portOf('web')}/")
    rename(page, "pat")
    joinRoom(page, "lab")
    nick, renamed = NICKS[kind], RENAMED[kind]
    client = ircClient(processes, server, kind, nick)
    other = PARTNERS[kind]
    partner = ircClient(processes, server, other, NICKS[other])
    client.join(CHANNEL)
    partner.join(CHANNEL)
    client.waitFor(CHANNEL, partner.joinedPattern(CHANNEL))
    tina = TelnetUser(processes, server)
    tina.rename("tina")
    tina.join("lab")
    for irc in (client, partner):
        irc.waitFor(CHANNEL, re.compile(rf"\btina\b.*has joined {CHANNEL}"))
    expect(members(page)).to_have_text(
        sorted(["pat", "tina", nick, partner.nickname]), timeout=SEE
    )

    # Lines, every way.
    client.say(CHANNEL, f"hello from {kind}")
    tina.waitFor(f"<{nick}> hello from {kind}")
    expect(said(page, f"hello from {kind}")).to_have_text(
        [f"{nick}hello from {kind}"], timeout=SEE
    )
    partner.waitForLine(CHANNEL, nick, f"hello from {kind}")
    tina.type("hello from telnet")
    say(page, "hello from the page")
    partner.say(CHANNEL, f"hello from {other}")
    client.waitForLine(CHANNEL, "tina", "hello from telnet")
    client.waitForLine(CHANNEL, "pat", "hello from the page")
    client.waitForLine(CHANNEL, partner.nickname, f"hello from {other}")
    tina.waitFor("<pat> hello from the page")

    # A topic, set on IRC, then on telnet.
    client.topic(CHANNEL, f"{kind} sets the topic")
    tina.waitFor(f"* {nick} set the topic: {kind} sets the topic")
    partner.waitForTopic(CHANNEL, nick, f"{kind} sets the topic")
    tina.type("/topic telnet sets the topic")
    client.waitForTopic(CHANNEL, "tina", "telnet sets the topic")
    partner.waitForTopic(CHANNEL, "tina", "telnet sets the topic")

    # Renames: on IRC, and on telnet.
    client.nick(renamed)
    client.waitForNick(renamed)
    tina.waitFor(f"* {nick} is now known as {renamed}")
    expect(noticed(page, f"{nick} is now known as {renamed}")).to_have_count(
        1, timeout=SEE
    )
    expect(members(page)).to_contain_text([renamed], timeout=SEE)
    partner.waitForRename(CHANNEL, nick, renamed)
    tina.rename("tanya")
    client.waitForRename(CHANNEL, "tina", "tanya")
    client.say(CHANNEL, "renamed and still here")
    tina.waitFor(f"<{renamed}> renamed and still here")
    partner.waitForLine(CHANNEL, renamed, "renamed and still here")

    # Private messages to telnet and to the page, and their answers.
    client.msg("tanya", f"psst tanya, from {kind}")
    tina.waitFor(f"*{renamed}* psst tanya, from {kind}")
    tina.type(f"/msg {renamed} psst back from telnet")
    client.waitForLine("tanya", "tanya", "psst back from telnet")
    client.msg("pat", f"psst pat, from {kind}")
    open_(page, renamed)
    expect(shown(page).locator("li.message")).to_have_text(
        [f"{renamed}psst pat, from {kind}"], timeout=SEE
    )
    say(page, "psst back from the page")
    client.waitForLine("pat", "pat", "psst back from the page")
    open_(page, CHANNEL)

    # A part, then a quit.
    client.part(CHANNEL, "back soon")
    tina.waitFor(f"* {renamed} left (back soon)")
    expect(noticed(page, f"{renamed} left")).to_have_count(1, timeout=SEE)
    partner.waitForPart(CHANNEL, renamed)
    client.join(CHANNEL)
    tina.waitFor(f"* {renamed} joined")
    tina.mark()
    client.quit("gone for the day")
    tina.waitFor(f"* {renamed} left (gone for the day)")
    partner.waitForQuit(CHANNEL, renamed)
    expect(members(page)).to_have_text(
        sorted(["pat", "tanya", partner.nickname]), timeout=SEE
    )
    expect(noticed(page, f"{renamed} left")).to_have_count(2, timeout=SEE)
    client.close()
    partner.close()


def test_actions_cross_every_front_end(
    processes: Processes, browser: Browser, pages: list[Page]
) -> None:
    """
    C{/me} in irssi, WeeChat, C{ii} (which sends the CTCP itself), telnet
    and the page: each IRC client shows everyone else's as an action, the
    telnet user sees C{* name waves}, and so does the page.
    """
    server = chatServer(processes)
    page = openPage(browser, pages, f"http://127.0.0.1:{server.portOf('web')}/")
    rename(page, "pat")
    joinRoom(page, "lab")
    tina = TelnetUser(processes, server)
    tina.rename("tina")
    tina.join("lab")
    clients = [ircClient(processes, server, kind, NICKS[kind]) for kind in CLIENTS]
    for client in clients:
        client.join(CHANNEL)
    expect(members(page)).to_have_count(5, timeout=SEE)

    for client in clients:
        client.me(CHANNEL, f"waves from {client.kind}")
    tina.type("/me waves from telnet")
    say(page, "/me waves from the page")
    actions = [(c.nickname, f"waves from {c.kind}") for c in clients]
    actions += [("tina", "waves from telnet"), ("pat", "waves from the page")]
    for client in clients:
        for nickname, text in actions:
            # ii does not show what it sends itself.
            if client.kind != "ii" or nickname != client.nickname:
                client.waitForAction(CHANNEL, nickname, text)
    for nickname, text in actions:
        if nickname != "tina":
            tina.waitFor(f"* {nickname} {text}")
    for nickname, text in actions:
        if nickname != "pat":
            action = re.compile(rf"^\* {re.escape(nickname)}\s*{re.escape(text)}$")
            expect(shown(page).locator("li").filter(has_text=text)).to_have_text(
                [action], timeout=SEE
            )
            expect(
                shown(page).locator("li.action").filter(has_text=text)
            ).to_have_count(1)
    for client in clients:
        client.close()


def test_irc_clients_on_two_bus_nodes_share_a_channel(
    processes: Processes, redis: RedisServer
) -> None:
    """
    irssi on one node and WeeChat on another, with a line client on each,
    in C{#lab}: joins, lines, private messages, a rename and a quit cross
    the bus.
    """
    nodes = []
    for _ in range(2):
        node = processes.server("--bus", redis.url, "--irc", LOOPBACK, listeners=2)
        node.output.waitForText(b"Joined the bus")
        nodes.append(node)
    lena, lars = (TcpPerson(processes, node) for node in nodes)
    for person, name in ((lena, "lena"), (lars, "lars")):
        person.do(f"/nick {name}".encode(), f"* you are now known as {name}")
        person.name = name
        person.do(b"/join lab", "* you are now in #lab")
    iris = IrssiClient(processes, "127.0.0.1", nodes[0].portOf("irc"), "iris").start()
    wendy = WeechatClient(
        processes, "127.0.0.1", nodes[1].portOf("irc"), "wendy"
    ).start()
    iris.join(CHANNEL)
    wendy.join(CHANNEL)
    iris.waitFor(CHANNEL, wendy.joinedPattern(CHANNEL))
    assert lena.lineUntil(lambda line: "wendy" in line) == "* wendy joined"
    assert lars.lineUntil(lambda line: "iris" in line) == "* iris joined"

    iris.say(CHANNEL, "hello from node one")
    wendy.say(CHANNEL, "hello from node two")
    lena.send(b"lena on node one\r\n")
    lars.send(b"lars on node two\r\n")
    wendy.waitForLine(CHANNEL, "iris", "hello from node one")
    wendy.waitForLine(CHANNEL, "lena", "lena on node one")
    iris.waitForLine(CHANNEL, "wendy", "hello from node two")
    iris.waitForLine(CHANNEL, "lars", "lars on node two")
    assert lars.lineUntil(lambda line: "iris" in line) == "<iris> hello from node one"
    assert lena.lineUntil(lambda line: "wendy" in line) == "<wendy> hello from node two"

    iris.msg("wendy", "psst wendy, from node one")
    wendy.waitForLine("iris", "iris", "psst wendy, from node one")
    wendy.msg("iris", "psst back from node two")
    iris.waitForLine("wendy", "wendy", "psst back from node two")
    iris.msg("lars", "psst lars, from irssi")
    assert lars.lineUntil(lambda line: "psst" in line) == "*iris* psst lars, from irssi"
    lars.send(b"/msg iris psst back from lars\r\n")
    iris.waitForLine("lars", "lars", "psst back from lars")

    wendy.nick("wanda")
    wendy.waitForNick("wanda")
    iris.waitForRename(CHANNEL, "wendy", "wanda")
    assert lena.lineUntil(lambda line: "known as" in line) == (
        "* wendy is now known as wanda"
    )
    wendy.quit("off to node three")
    iris.waitForQuit(CHANNEL, "wanda")
    assert lena.lineUntil(lambda line: "wanda" in line).startswith("* wanda left")
    iris.say(CHANNEL, "still here on node one")
    assert lars.lineUntil(lambda line: "still here" in line) == (
        "<iris> still here on node one"
    )
    iris.close()
    wendy.close()

"""
IRC over WebSocket end to end: a real C{twistd} with C{--web} and
C{--irc}, a web IRC client as one is written (the browser's own WebSocket,
in Debian's Chromium, offering C{text.ircv3.net} or C{binary.ircv3.net}
from a page of the server's origin), an IRC client on C{--irc} and a
telnet-style line client, all in one room.
"""

from __future__ import annotations

import socket
import time

import pytest
from playwright.sync_api import Browser, Page

from tests.processes import WAIT, Processes, Server, TcpMember

pytestmark = pytest.mark.e2e

# A web IRC client, reduced to what matters here: it opens the chat's
# WebSocket with an IRC subprotocol, sends each line as one message, and
# keeps each message it receives as one line.
WEB_IRC_CLIENT = """
([subprotocol, lines]) => new Promise((resolve, reject) => {
  const socket = new WebSocket(
    location.origin.replace(/^http/, "ws") + "/ws", [subprotocol]);
  socket.binaryType = "arraybuffer";
  window.received = [];
  window.ircSocket = socket;
  const decoder = new TextDecoder();
  socket.onmessage = (event) => window.received.push(
    typeof event.data === "string" ? event.data
      : "binary:" + decoder.decode(event.data));
  socket.onopen = () => {
    for (const line of lines) {
      socket.send(subprotocol === "binary.ircv3.net"
        ? new TextEncoder().encode(line) : line);
    }
    resolve(socket.protocol);
  };
  socket.onerror = () => reject(new Error("the WebSocket failed"));
})
"""


class IRCSocket:
    """
    An IRC client on C{--irc}: a socket, read a line at a time.
    """

    def __init__(self, processes: Processes, port: int, nick: str) -> None:
        self.sock = processes.connect(("127.0.0.1", port))
        self.pending = b""
        self.send(f"NICK {nick}", f"USER {nick} 0 * :{nick}")
        self.until(lambda line: " 376 " in line or " 422 " in line)

    def send(self, *lines: str) -> None:
        self.sock.sendall(b"".join(line.encode() + b"\r\n" for line in lines))

    def until(self, predicate: object) -> list[str]:
        """
        The lines up to and including the first C{predicate} holds for,
        within L{WAIT} seconds and 1000 lines.
        """
        assert callable(predicate)
        deadline = time.monotonic() + WAIT
        lines: list[str] = []
        while len(lines) < 1000:
            while b"\r\n" not in self.pending:
                remaining = deadline - time.monotonic()
                assert remaining > 0, f"nothing such within {WAIT}s: {lines}"
                self.sock.settimeout(remaining)
                try:
                    chunk = self.sock.recv(65536)
                except TimeoutError:
                    continue
                assert chunk, f"closed; read {lines}"
                self.pending += chunk
            raw, _, self.pending = self.pending.partition(b"\r\n")
            line = raw.decode("utf-8")
            if line.startswith("PING "):
                self.send("PONG " + line[5:])
            lines.append(line)
            if predicate(line):
                return lines
        raise AssertionError(f"nothing such among {lines}")


def webIRC(browser: Browser, server: Server, subprotocol: str, nick: str) -> Page:
    """
    Open the server's page, and from it a web IRC client registering as
    C{nick} and joining C{#lab}; wait until it is in the channel.
    """
    page = browser.new_context().new_page()
    page.goto(f"http://127.0.0.1:{server.portOf('web')}/")
    chosen = page.evaluate(
        WEB_IRC_CLIENT,
        [subprotocol, [f"NICK {nick}", f"USER {nick} 0 * :{nick}", "JOIN #lab"]],
    )
    assert chosen == subprotocol
    seen(page, f" 366 {nick} #lab ")
    return page


def seen(page: Page, text: str) -> str:
    """
    Wait until the web IRC client received a message holding C{text};
    return it.
    """
    page.wait_for_function(
        "(text) => window.received.some((line) => line.includes(text))",
        arg=text,
        timeout=WAIT * 1000,
    )
    found: str = page.evaluate(
        "(text) => window.received.find((line) => line.includes(text))", text
    )
    return found


def test_web_irc_clients_chat_with_irc_and_line_clients(
    processes: Processes, browser: Browser
) -> None:
    """Two web IRC clients (text and binary), an IRC client and a line
    client in #lab: every line reaches every other, each message one IRC
    line; the web client's QUIT reaches the others."""
    server = processes.server("--web", "0", "--irc", "0", listeners=3)
    line = TcpMember(processes, server)
    line.sock.sendall(b"/join lab\r\n")
    line.linesUntil(lambda text: "you are now in #lab" in text)
    irc = IRCSocket(processes, server.portOf("irc"), "ircy")
    irc.send("JOIN #lab")
    irc.until(lambda text: " 366 " in text)
    texty = webIRC(browser, server, "text.ircv3.net", "texty")
    binny = webIRC(browser, server, "binary.ircv3.net", "binny")
    assert seen(binny, "353 binny = #lab :").startswith("binary:")
    received = texty.evaluate("window.received")
    assert received[0].startswith(":sockserve 001 texty :Welcome")
    assert not any("\r" in message or "\n" in message for message in received)

    texty.evaluate("window.ircSocket.send('PRIVMSG #lab :hello from a browser')")
    line.linesUntil(lambda text: text == "<texty> hello from a browser")
    irc.until(lambda text: text.endswith("PRIVMSG #lab :hello from a browser"))
    seen(binny, ":texty!texty@sockserve PRIVMSG #lab :hello from a browser")

    line.sock.sendall("héllo from telnet\r\n".encode())
    seen(texty, "PRIVMSG #lab :héllo from telnet")
    seen(binny, "PRIVMSG #lab :héllo from telnet")
    irc.until(lambda text: text.endswith("PRIVMSG #lab :héllo from telnet"))

    irc.send("PRIVMSG #lab :\x01ACTION waves\x01", "PRIVMSG texty :psst")
    seen(texty, ":ircy!ircy@sockserve PRIVMSG #lab :\x01ACTION waves\x01")
    seen(texty, ":ircy!ircy@sockserve PRIVMSG texty :psst")
    line.linesUntil(lambda text: text == "* ircy waves")

    texty.evaluate("window.ircSocket.send('QUIT :bye')")
    seen(texty, "ERROR :Closing link (quit)")
    irc.until(lambda text: text.startswith(":texty!texty@sockserve QUIT"))
    line.linesUntil(lambda text: text == "* texty left (bye)")
    texty.wait_for_function("window.ircSocket.readyState === WebSocket.CLOSED")
    for page in (texty, binny):
        page.context.close()
    irc.sock.shutdown(socket.SHUT_RDWR)

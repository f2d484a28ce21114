"""
The chat page in a real browser: Debian's Chromium, headless, driven by
Playwright (which never downloads a browser here), against a real
C{twistd} process, with a raw TCP client in the same room.

Set C{SOCKSERVE_SCREENSHOT=path.png} to keep the screenshot the first test
takes (README.rst shows one).
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from tests.processes import Processes, Server, TcpMember, receiveText

pytestmark = pytest.mark.e2e

# Seconds Playwright waits for what a test expects to see.
SEE = 10_000
# The page's longest wait between tries to reconnect (LAST_RETRY_MS), in ms.
LAST_RETRY = 8_000


def openPage(browser: Browser, pages: list[Page], url: str, **context: object) -> Page:
    """
    Open C{url} in a context of its own (as another person would), and wait
    until the page says it is connected.
    """
    page = browser.new_context(**context).new_page()  # type: ignore[arg-type]
    pages.append(page)
    page.goto(url)
    expect(page.locator("#state")).to_have_attribute(
        "data-state", "connected", timeout=SEE
    )
    return page


def say(page: Page, text: str) -> None:
    """
    Type C{text} in the message box and press Enter.
    """
    box = page.get_by_label("Message")
    box.fill(text)
    box.press("Enter")


def shown(page: Page) -> Locator:
    """
    The conversation in view (the page keeps one per room and person).
    """
    return page.locator(".log:not([hidden])")


def members(page: Page) -> list[str]:
    """
    The member list as the page shows it.
    """
    return page.locator("#members li").all_inner_texts()


def chats(page: Page) -> Locator:
    """
    The labels of the rooms and private conversations in the sidebar.
    """
    return page.locator("#views li .label")


def chat(page: Page, label: str) -> Locator:
    """
    The sidebar's entry for the room (C{#name}) or person C{label}.
    """
    return page.locator("#views li").filter(
        has=page.locator(".label").get_by_text(label, exact=True)
    )


def unread(page: Page, label: str) -> Locator:
    """
    The unread count of the room or person C{label}.
    """
    return chat(page, label).locator(".unread")


def open_(page: Page, label: str) -> None:
    """
    Bring the room or person C{label} into view, as a click in the sidebar.
    """
    chat(page, label).locator(".open").click()


def directory(page: Page) -> Locator:
    """
    The list of all rooms, each C{#name population}.
    """
    return page.locator("#directory li")


def rename(page: Page, name: str) -> None:
    """
    Change the page's name with its name box, and wait until it is taken.
    """
    page.get_by_label("Your name").fill(name)
    page.get_by_role("button", name="Change name").click()
    expect(shown(page)).to_contain_text(f"you are now known as {name}", timeout=SEE)


def joinRoom(page: Page, room: str) -> None:
    """
    Join C{room} with the sidebar's box, and wait until it is in view.
    """
    page.get_by_label("Room to join").fill(room)
    page.get_by_role("button", name="Join", exact=True).click()
    expect(chat(page, f"#{room}")).to_have_class(re.compile(r"\bcurrent\b"))


class TcpPerson(TcpMember):
    """
    A person on a raw TCP connection, read a line at a time, named by the
    server's welcome (C{* you are guest3 (127.0.0.1:PORT) in #default; ...}).

    L{TcpMember}'s own constructor waits for the welcome of sockserve 1.0
    (C{1 other(s) here}) and names the member by its address; this one
    reads the welcome the server sends now.
    """

    def __init__(self, processes: Processes, server: Server) -> None:
        self.sock = processes.connect(("127.0.0.1", server.port))
        self.pending = b""
        welcome = self.lineUntil(lambda line: line.startswith("* you are "))
        self.name = welcome.split()[3]

    def do(self, command: bytes, answer: str) -> str:
        """
        Send the line C{command} and return the first line, from here on,
        that starts with C{answer}.
        """
        self.send(command + b"\r\n")
        return self.lineUntil(lambda line: line.startswith(answer))


def webServer(processes: Processes, *options: str) -> Server:
    return processes.server("--web", "0", *options, listeners=2)


ATTACK = '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script>'


def assertNothingRan(page: Page) -> None:
    """
    Markup others sent became no element and ran nothing.
    """
    assert page.locator(".log img, .log script").count() == 0
    assert page.evaluate("window.pwned") is None


def test_two_pages_and_a_tcp_client_chat(
    processes: Processes, browser: Browser, pages: list[Page]
) -> None:
    """
    Two people in browsers and one on a raw TCP connection chat in the
    default room; the member list follows joins, renames and departures;
    what the TCP client sends, markup included, is shown as text and runs
    nothing.
    """
    server = webServer(processes)
    url = f"http://127.0.0.1:{server.portOf('web')}/"
    first = openPage(browser, pages, url)
    expect(shown(first)).to_contain_text("Welcome to sockserve")
    expect(first.locator("#title")).to_have_text("#default")
    firstName = first.get_by_label("Your name").input_value()
    assert re.fullmatch(r"guest\d+", firstName)
    tcp = TcpPerson(processes, server)
    expect(first.locator("#members li")).to_have_count(2, timeout=SEE)
    second = openPage(browser, pages, url)
    secondName = second.get_by_label("Your name").input_value()
    expect(second.locator("#members li")).to_have_count(3, timeout=SEE)
    assert sorted(members(second)) == sorted([firstName, secondName, tcp.name])
    expect(shown(first)).to_contain_text(f"{secondName} joined")

    say(first, "hello from the first page")
    line = shown(second).locator("li.message").last
    expect(line).to_contain_text("hello from the first page", timeout=SEE)
    expect(line.locator(".sender")).to_have_text(firstName)
    expect(shown(first).locator("li.own").last).to_have_text(
        f"{firstName}hello from the first page"
    )
    assert tcp.lineUntil(lambda text: "first page" in text) == (
        f"<{firstName}> hello from the first page"
    )

    tcp.send(ATTACK.encode() + b"\r\n")
    for page in (first, second):
        expect(shown(page).locator("li.message").last).to_have_text(
            f"{tcp.name}{ATTACK}", timeout=SEE
        )
        assertNothingRan(page)

    rename(second, "second")
    expect(first.locator("#members")).to_contain_text("second", timeout=SEE)
    assert secondName not in members(first)
    expect(second.locator("#members .me")).to_have_text("second")
    assert tcp.lineUntil(lambda text: "known as" in text) == (
        f"* {secondName} is now known as second"
    )
    say(second, "renamed and still here")
    expect(shown(first).locator("li.message").last).to_contain_text(
        "renamed and still here", timeout=SEE
    )

    second.context.close()
    expect(first.locator("#members li")).to_have_count(2, timeout=SEE)
    assert "second" not in members(first)
    assert tcp.lineUntil(lambda text: "left" in text) == "* second left"


def test_rooms_unread_counts_and_private_conversations(
    processes: Processes, browser: Browser, pages: list[Page]
) -> None:
    """
    A page joins a second room and stays in the first: the room list shows
    both with their populations as people come and go; a line said in a
    room reaches that room alone; a room not in view counts its unread
    lines until it is opened; a private message opens a conversation,
    flagged, whose replies reach the sender; a member's name opens one too;
    another page joins a room from the list of all rooms; leaving a room
    removes it.
    """
    server = webServer(processes)
    url = f"http://127.0.0.1:{server.portOf('web')}/"
    ada = openPage(browser, pages, url)
    rename(ada, "ada")
    linus = openPage(browser, pages, url)
    rename(linus, "linus")
    grace = TcpPerson(processes, server)
    grace.do(b"/nick grace", "* you are now known as")
    expect(ada.locator("#members li")).to_have_text(["ada", "grace", "linus"])

    joinRoom(ada, "Lounge")
    expect(ada.locator("#title")).to_have_text("#Lounge")
    expect(chats(ada)).to_have_text(["#default", "#Lounge"])
    expect(ada.locator("#members li")).to_have_text(["ada"], timeout=SEE)
    expect(directory(ada)).to_have_text(["#default 3", "#Lounge 1"])
    grace.do(b"/join lounge", "* you are now in #Lounge")
    expect(ada.locator("#members li")).to_have_text(["ada", "grace"])
    expect(directory(ada)).to_have_text(["#default 2", "#Lounge 2"])

    # A line said in a room reaches that room, and not the other.
    say(ada, "coffee in the lounge, anyone?")
    assert grace.lineUntil(lambda text: text.startswith("<")) == (
        "<ada> coffee in the lounge, anyone?"
    )
    open_(ada, "#default")
    say(ada, "hello default")
    expect(shown(linus).locator("li.message").last).to_have_text("adahello default")
    assert "coffee" not in shown(linus).inner_text()
    open_(ada, "#Lounge")
    say(ada, "I made a pot")
    assert grace.lineUntil(lambda text: text.startswith("<")) == "<ada> I made a pot"

    # Lines said in a room not in view are counted until it is opened.
    say(linus, "is the build green?")
    say(linus, "ada?")
    expect(unread(ada, "#default")).to_have_text("2", timeout=SEE)
    expect(ada).to_have_title("(2) sockserve chat")
    expect(unread(ada, "#Lounge")).to_be_hidden()
    open_(ada, "#default")
    expect(unread(ada, "#default")).to_be_hidden()
    expect(ada).to_have_title("sockserve chat")
    expect(shown(ada).locator("li.message").last).to_have_text("linusada?")

    # A private message opens a conversation, flagged; the reply reaches
    # its sender as a private message.
    grace.do(b"/msg ada are you free at six?", "-> *ada*")
    expect(unread(ada, "grace")).to_have_text("1", timeout=SEE)
    expect(chats(ada)).to_have_text(["#default", "#Lounge", "grace"])
    open_(ada, "grace")
    expect(ada.locator("#title")).to_have_text("grace (private)")
    expect(shown(ada).locator("li.message")).to_have_text(["graceare you free at six?"])
    say(ada, "six works")
    assert grace.lineUntil(lambda text: text.startswith("*")) == "*ada* six works"
    expect(shown(ada).locator("li.own")).to_have_text(["adasix works"])
    grace.send(f"/msg ada {ATTACK}\r\n".encode())
    expect(shown(ada).locator("li.message").last).to_have_text(f"grace{ATTACK}")
    assertNothingRan(ada)

    # A member's name opens a private conversation with them.
    open_(ada, "#default")
    ada.locator("#members").get_by_role("button", name="linus").click()
    expect(ada.locator("#title")).to_have_text("linus (private)")
    expect(ada.get_by_label("Message")).to_be_focused()
    say(ada, "lunch after the release?")
    expect(shown(ada).locator("li.own")).to_have_text(["adalunch after the release?"])
    expect(unread(linus, "ada")).to_have_text("1", timeout=SEE)

    # The list of all rooms, asked for again, shows the rooms a page is not
    # in; one click joins.
    linus.get_by_role("button", name="Refresh the list of rooms").click()
    expect(directory(linus)).to_have_text(["#default 2", "#Lounge 2"], timeout=SEE)
    directory(linus).filter(has_text="#Lounge").get_by_role("button").click()
    expect(linus.locator("#title")).to_have_text("#Lounge", timeout=SEE)
    expect(linus.locator("#members li")).to_have_text(["ada", "grace", "linus"])
    expect(directory(ada)).to_have_text(["#default 2", "#Lounge 3"], timeout=SEE)
    open_(ada, "#Lounge")
    grace.send(b"has anyone tried the new release?\r\n")
    expect(shown(ada).locator("li.message").last).to_contain_text("new release")
    say(linus, "yes: rooms and private messages, from the page")
    expect(shown(ada).locator("li.message").last).to_contain_text("from the page")
    grace.send(b"/msg ada see you at six, then\r\n")
    expect(unread(ada, "grace")).to_have_text("1", timeout=SEE)
    screenshot = os.environ.get("SOCKSERVE_SCREENSHOT")
    if screenshot:
        # README shows an ordinary conversation, not the markup tested above.
        assert "<" not in shown(ada).inner_text()
        ada.set_viewport_size({"width": 960, "height": 540})
        ada.mouse.move(0, 0)
        ada.screenshot(path=screenshot)

    # Leaving a room removes it; its people see the page leave.
    ada.get_by_role("button", name="Leave #Lounge").click()
    expect(chats(ada)).to_have_text(["#default", "grace", "linus"], timeout=SEE)
    expect(ada.locator("#title")).to_have_text("#default")
    assert grace.lineUntil(lambda text: "left" in text) == "* ada left"
    expect(linus.locator("#members li")).to_have_text(["grace", "linus"])
    expect(directory(ada)).to_have_text(["#default 2", "#Lounge 2"])


def test_room_list_is_asked_for_while_someone_uses_the_page(
    processes: Processes, browser: Browser, pages: list[Page]
) -> None:
    """
    The list of all rooms is asked for again every 30 seconds while it is
    shown and the page is used, and no more once the page is left alone
    (the page's timers on Playwright's clock, the server's time real).
    """
    server = webServer(processes)
    page = browser.new_context().new_page()
    pages.append(page)
    page.clock.install()
    page.goto(f"http://127.0.0.1:{server.portOf('web')}/")
    expect(page.locator("#state")).to_have_attribute(
        "data-state", "connected", timeout=SEE
    )
    expect(directory(page)).to_have_text(["#default 1"], timeout=SEE)
    tcp = TcpPerson(processes, server)
    tcp.do(b"/join attic", "* you are now in #attic")
    page.keyboard.press("Shift")
    page.clock.run_for(30_000)
    expect(directory(page)).to_have_text(["#attic 1", "#default 1"], timeout=SEE)

    page.clock.run_for(150_000)
    tcp.do(b"/join cellar", "* you are now in #cellar")
    page.clock.run_for(60_000)
    # Whatever the page asked for before this command is answered before it.
    say(page, "/who")
    expect(shown(page).locator("li.notice").last).to_contain_text(
        "1 here in #default", timeout=SEE
    )
    expect(directory(page)).to_have_text(["#attic 1", "#default 1"])


def freePort() -> int:
    """
    A loopback port nothing listens on now (for a server that must come
    back on the same port).
    """
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_page_reconnects_after_a_restart(
    processes: Processes, browser: Browser, pages: list[Page]
) -> None:
    """
    When the server stops, the page says it is reconnecting; once a server
    is back on the same port, it reconnects, takes its chosen name and its
    rooms again (and leaves the default room it had left) and chats. On a
    phone-sized screen, where the sidebar's boxes are behind the Rooms
    button.
    """
    port = freePort()
    server = webServer(processes, f"--web=tcp:{port}:interface=127.0.0.1")
    phone = {"viewport": {"width": 375, "height": 667}, "is_mobile": True}
    page = openPage(browser, pages, f"http://127.0.0.1:{port}/", **phone)
    expect(page.get_by_label("Your name")).to_be_hidden()
    page.get_by_role("button", name="Rooms").click()
    rename(page, "phone")
    joinRoom(page, "pocket")
    expect(page.get_by_label("Room to join")).to_be_hidden()
    expect(chats(page)).to_have_text(["#default", "#pocket"])
    page.get_by_role("button", name="Leave #default").click()
    expect(chats(page)).to_have_text(["#pocket"], timeout=SEE)

    server.stop()
    state = page.locator("#state")
    expect(state).to_have_attribute("data-state", "reconnecting", timeout=SEE)
    expect(state).to_contain_text("reconnecting")
    expect(shown(page)).to_contain_text("shutting down")
    expect(page.get_by_label("Message")).to_be_disabled()

    again = webServer(processes, f"--web=tcp:{port}:interface=127.0.0.1")
    # The page's next try may be its longest wait (8 s) away when a loaded
    # machine is slow to start the server again.
    expect(state).to_have_attribute("data-state", "connected", timeout=LAST_RETRY + SEE)
    expect(page.locator("#members .me")).to_have_text("phone", timeout=SEE)
    expect(chats(page)).to_have_text(["#pocket"])
    expect(chat(page, "#pocket")).to_have_class(re.compile(r"\bcurrent\b"))
    tcp = TcpPerson(processes, again)
    tcp.do(b"/join pocket", "* you are now in #pocket")
    expect(page.locator("#members li")).to_have_text(
        sorted([tcp.name, "phone"]), timeout=SEE
    )
    # The server put the page in its default room; it left it again (the
    # default room is listed, empty or not).
    listed = tcp.do(b"/rooms", "* 2 rooms")
    assert listed == "* 2 rooms: #default (0), #pocket (2)"
    say(page, "back again")
    assert tcp.lineUntil(lambda text: "back again" in text) == "<phone> back again"
    tcp.send(b"welcome back\r\n")
    expect(shown(page).locator("li.message").last).to_contain_text("welcome back")
    for box in (
        page.get_by_label("Message").bounding_box(),
        chat(page, "#pocket").bounding_box(),
    ):
        assert box is not None
        assert box["y"] + box["height"] <= 667
        assert box["x"] >= 0
        assert box["x"] + box["width"] <= 375


def test_page_refuses_nothing_and_runs_only_its_own_scripts(
    processes: Processes, browser: Browser, pages: list[Page], tmp_path: Path
) -> None:
    """
    The Content-Security-Policy holds in the browser: an inline script
    injected into the page's DOM does not run, and the page logs no
    violation of its own (it needs nothing but its own script and style).
    """
    server = webServer(processes)
    violations: list[str] = []
    page = browser.new_context().new_page()
    pages.append(page)
    page.on(
        "console",
        lambda message: (
            violations.append(message.text)
            if "Content Security Policy" in message.text
            else None
        ),
    )
    page.goto(f"http://127.0.0.1:{server.portOf('web')}/")
    expect(page.locator("#state")).to_have_attribute(
        "data-state", "connected", timeout=SEE
    )
    assert violations == []
    page.evaluate(
        "() => { const s = document.createElement('script');"
        " s.textContent = 'window.injected = 1'; document.body.append(s); }"
    )
    assert page.evaluate("window.injected") is None
    assert any("Content Security Policy" in text for text in violations)


def test_no_error_in_the_console(
    processes: Processes, browser: Browser, pages: list[Page]
) -> None:
    """
    The page loads without an error in the console: no request for a
    missing favicon, no Content-Security-Policy violation (the policy
    stays default-src 'none').
    """
    server = webServer(processes)
    messages: list[str] = []
    failed: list[str] = []
    page = browser.new_context().new_page()
    pages.append(page)
    page.on("console", lambda message: messages.append(message.text))
    page.on(
        "response",
        lambda response: (
            failed.append(response.url) if response.status >= 400 else None
        ),
    )
    response = page.goto(f"http://127.0.0.1:{server.portOf('web')}/")
    assert response is not None
    assert "default-src 'none'" in response.headers["content-security-policy"]
    expect(page.locator("#state")).to_have_attribute(
        "data-state", "connected", timeout=SEE
    )
    say(page, "/who")
    expect(shown(page).locator("li").last).to_contain_text("1 here", timeout=SEE)
    assert failed == []
    assert messages == []
    icon = page.request.get(f"http://127.0.0.1:{server.portOf('web')}/favicon.svg")
    assert icon.status == 200
    assert icon.headers["content-type"] == "image/svg+xml"


def test_page_shows_the_history(
    processes: Processes, browser: Browser, pages: list[Page]
) -> None:
    """
    With --history, a page that joins shows the last lines said, set apart
    from what is said after, and once only.
    """
    server = webServer(processes, "--history", "2")
    tcp = TcpPerson(processes, server)
    tcp.send(b"one\r\ntwo\r\nthree\r\n")
    tcp.send(b"/who\r\n")
    tcp.lineUntil(lambda line: " here: " in line)
    page = openPage(browser, pages, f"http://127.0.0.1:{server.portOf('web')}/")
    history = shown(page).locator("li.history")
    expect(history).to_have_count(2, timeout=SEE)
    assert history.all_inner_texts() == [f"{tcp.name}two", f"{tcp.name}three"]
    tcp.send(b"four\r\n")
    expect(shown(page).locator("li.message").last).to_have_text(f"{tcp.name}four")
    assert shown(page).locator("li.history").count() == 2
    # Joining the room again, the page is told its history again: it shows
    # it once.
    say(page, "/join default")
    say(page, "/who")
    expect(shown(page).locator("li.notice").last).to_contain_text(
        "2 here in #default", timeout=SEE
    )
    assert shown(page).locator("li.history").count() == 2


def test_page_shows_actions_and_notices_apart(
    processes: Processes, browser: Browser, pages: list[Page]
) -> None:
    """
    An action (/me on telnet, CTCP ACTION on IRC) shows as * NAME waves, a
    notice from an IRC client (NOTICE #default) as -NAME- text, each apart
    from what is said.
    """
    server = processes.server("--web", "0", "--irc", "0", listeners=3)
    page = openPage(browser, pages, f"http://127.0.0.1:{server.portOf('web')}/")
    irc = processes.connect(("127.0.0.1", server.portOf("irc")))
    irc.sendall(b"NICK ircer\r\nUSER ircer 0 * :IRC\r\nJOIN #default\r\n")
    receiveText(irc, b" 366 ircer #default ")
    irc.sendall(
        b"NOTICE #default :heads up\r\nPRIVMSG #default :\x01ACTION waves\x01\r\n"
    )
    tcp = TcpPerson(processes, server)
    tcp.send(b"/me nods\r\n")
    log = shown(page).locator("li.message")
    expect(log).to_have_text(
        ["-ircer-heads up", "* ircer waves", f"* {tcp.name} nods"], timeout=SEE
    )
    expect(shown(page).locator("li.notice-said .sender")).to_have_text("-ircer-")
    expect(shown(page).locator("li.action")).to_have_count(2)

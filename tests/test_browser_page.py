"""
The chat page as a person uses it, in Debian's Chromium (see
L{tests.test_browser} for the browser and the helpers): the log that
follows the newest line, reconnecting (or not, and why), what a reconnect
shows again and what it does not, the name kept for the session, the
phone's layout, and the details of each line (its time, its links, its
escapes).

Where the page's own timers matter (its reconnection backoff), they run on
Playwright's clock, paused, while the server's time is real.
"""

from __future__ import annotations

import datetime
import itertools
import json
import re
import time

import pytest
from playwright.sync_api import Browser, Locator, Page, WebSocket, expect

from tests.processes import Processes, Server
from tests.test_browser import (
    ATTACK,
    SEE,
    TcpPerson,
    assertNothingRan,
    freePort,
    joinRoom,
    open_,
    openPage,
    rename,
    say,
    shown,
    webServer,
)

pytestmark = pytest.mark.e2e

# The fixtures of the browser tests: the server processes, one Chromium for
# the module, and the pages a test opens (closed after it).

DESKTOP = {"viewport": {"width": 1280, "height": 720}}
PHONE = {
    "viewport": {"width": 390, "height": 844},
    "is_mobile": True,
    "has_touch": True,
}
SCREENS = [pytest.param(DESKTOP, id="1280x720"), pytest.param(PHONE, id="390x844")]
# More lines than fit in the log on either screen.
MANY = 60


def pageUrl(server: Server) -> str:
    return f"http://127.0.0.1:{server.portOf('web')}/"


def lines(page: Page) -> Locator:
    """
    The lines of the conversation in view.
    """
    return shown(page).locator("li")


def newMessages(page: Page) -> Locator:
    """
    The marker saying new lines came while the reader looked further up.
    """
    return page.get_by_role("button", name=re.compile("new messages", re.I))


def scrollUp(page: Page) -> None:
    """
    Scroll the conversation in view up to its top, with the mouse wheel
    over it.
    """
    box = shown(page).bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.wheel(0, -5000)
    # At the top, and still there (a wheel's scroll may be animated).
    page.wait_for_function(
        "() => document.querySelector('.log:not([hidden])').scrollTop === 0",
        timeout=SEE,
    )
    expect(shown(page).locator("li").last).not_to_be_in_viewport(timeout=SEE)


def sockets(page: Page) -> list[WebSocket]:
    """
    Count the WebSockets C{page} opens from now on.
    """
    opened: list[WebSocket] = []
    page.on("websocket", lambda socket: opened.append(socket))
    return opened


def saidText(line: Locator) -> str:
    """
    The text of a line someone said, without its sender and time.
    """
    text: str = line.evaluate(
        "(li) => { const copy = li.cloneNode(true);"
        " copy.querySelectorAll('.sender, time').forEach((e) => e.remove());"
        " return copy.textContent; }"
    )
    return text


def settled(page: Page) -> None:
    """
    Wait until everything the page did so far has been reported (a round
    trip through it: Playwright's events arrive in order).
    """
    page.evaluate("() => 0")


@pytest.mark.parametrize("screen", SCREENS)
def test_the_log_follows_the_newest_line(
    processes: Processes, browser: Browser, pages: list[Page], screen: dict[str, object]
) -> None:
    """
    With more lines than fit, the newest line stays in view, whether others
    say it or the reader does, and so does the answer to C{/who}; once the
    reader has scrolled up, new lines leave the view where it is and a
    marker says they came, which brings the view back down to follow again.
    """
    server = webServer(processes)
    page = openPage(browser, pages, pageUrl(server), **screen)
    tcp = TcpPerson(processes, server)
    tcp.send(b"".join(b"line %d from tcp\r\n" % n for n in range(MANY)))
    last = lines(page).last
    expect(last).to_have_text(re.compile(f"line {MANY - 1} from tcp$"), timeout=SEE)
    expect(last).to_be_in_viewport(ratio=1)

    for n in range(MANY // 2):
        say(page, f"my line {n}")
    expect(last).to_have_text(re.compile(f"my line {MANY // 2 - 1}$"), timeout=SEE)
    expect(last).to_be_in_viewport(ratio=1)
    say(page, "/who")
    expect(last).to_contain_text("2 here in #default", timeout=SEE)
    expect(last).to_be_in_viewport(ratio=1)
    expect(newMessages(page)).to_be_hidden()

    # Scrolled up: new lines do not move the view, the marker says so.
    scrollUp(page)
    top = lines(page).first.bounding_box()
    tcp.send(b"while you were reading\r\n")
    expect(last).to_have_text(re.compile("while you were reading$"), timeout=SEE)
    expect(newMessages(page)).to_be_visible()
    expect(last).not_to_be_in_viewport()
    assert lines(page).first.bounding_box() == top
    newMessages(page).click()
    expect(last).to_be_in_viewport(ratio=1)
    expect(newMessages(page)).to_be_hidden()
    # And it follows again.
    tcp.send(b"and after\r\n")
    expect(last).to_have_text(re.compile("and after$"), timeout=SEE)
    expect(last).to_be_in_viewport(ratio=1)


def test_who_typed_is_answered_where_it_was_typed(
    processes: Processes, browser: Browser, pages: list[Page]
) -> None:
    """
    C{/who} typed in a private conversation is answered there, not in a
    room out of view (nor only in the member list).
    """
    server = webServer(processes)
    page = openPage(browser, pages, pageUrl(server))
    tcp = TcpPerson(processes, server)
    expect(page.locator("#members li")).to_have_count(2, timeout=SEE)
    page.locator("#members").get_by_role("button", name=tcp.name).click()
    expect(page.locator("#title")).to_have_text(f"{tcp.name} (private)")
    say(page, "/who")
    expect(lines(page).last).to_contain_text("2 here in #default", timeout=SEE)


def pausedPage(
    browser: Browser, pages: list[Page], url: str, **context: object
) -> tuple[Page, list[WebSocket]]:
    """
    Open C{url} with the page's clock paused once it is connected (its
    timers then run only when the test runs them), counting its WebSockets.
    """
    page = browser.new_context(**context).new_page()  # type: ignore[arg-type]
    pages.append(page)
    opened = sockets(page)
    page.clock.install()
    page.goto(url)
    expect(page.locator("#state")).to_have_attribute(
        "data-state", re.compile("connected|closed"), timeout=SEE
    )
    page.clock.pause_at(page.evaluate("() => Date.now()") + 1000)
    return page, opened


def reconnectingIn(page: Page, seconds: str) -> None:
    """
    The page says it will try again in C{seconds}.
    """
    expect(page.locator("#state")).to_have_text(
        re.compile(rf"reconnecting in {re.escape(seconds)} s"), timeout=SEE
    )


def tryUntilConnected(page: Page, tries: int = 3) -> None:
    """
    Run the page's clock to its next try (8 s away) until it is connected:
    a try can fail on a loaded machine (the wait stays 8 s, which is what
    the test looks at), at most C{tries} times.
    """
    state = page.locator("#state")
    for _ in range(tries - 1):
        page.clock.run_for(8000)
        try:
            expect(state).to_have_attribute("data-state", "connected", timeout=SEE)
        except AssertionError:
            reconnectingIn(page, "8")
            continue
        return
    page.clock.run_for(8000)
    expect(state).to_have_attribute("data-state", "connected", timeout=SEE)


def test_reconnection_backs_off_until_a_connection_lasts(
    processes: Processes, browser: Browser, pages: list[Page]
) -> None:
    """
    While the server is away the page waits 0.5 s, then twice as long each
    time, up to 8 s; a connection that ends at once does not start that
    over, one that lasted 10 s does.
    """
    port = freePort()
    where = f"--web=tcp:{port}:interface=127.0.0.1"
    server = webServer(processes, where)
    page, opened = pausedPage(browser, pages, f"http://127.0.0.1:{port}/")
    server.stop()
    waits = ["0.5", "1", "2", "4", "8", "8"]
    for wait, following in itertools.pairwise(waits):
        reconnectingIn(page, wait)
        page.clock.run_for(int(float(wait) * 1000))
        reconnectingIn(page, following)
    assert len(opened) == len(waits)

    # Back, and gone again before the connection lasted: still 8 s.
    server = webServer(processes, where)
    tryUntilConnected(page)
    server.stop()
    reconnectingIn(page, "8")

    # Back for 10 s: the next wait is the first again.
    server = webServer(processes, where)
    tryUntilConnected(page)
    page.clock.run_for(10_000)
    server.stop()
    reconnectingIn(page, "0.5")


def stopped(page: Page, why: str) -> None:
    """
    The page says it is not connected, and why, and offers to reconnect
    instead of trying again by itself.
    """
    state = page.locator("#state")
    expect(state).to_have_attribute("data-state", "closed", timeout=SEE)
    expect(state).to_contain_text(why)
    expect(page.get_by_role("button", name="Reconnect")).to_be_visible()
    expect(page.get_by_label("Message")).to_be_disabled()


def noRetry(page: Page, opened: list[WebSocket]) -> None:
    """
    A minute on the page's clock opens no new WebSocket.
    """
    count = len(opened)
    page.clock.run_for(60_000)
    settled(page)
    assert len(opened) == count
    expect(page.locator("#state")).to_have_attribute("data-state", "closed")


def test_a_full_room_is_not_retried(
    processes: Processes, browser: Browser, pages: list[Page]
) -> None:
    """
    Refused because the room is full, the page says so and offers a
    Reconnect button instead of knocking every half second; once there is
    room, the button gets in.
    """
    server = webServer(processes, "--max-clients", "1")
    tcp = TcpPerson(processes, server)
    page, opened = pausedPage(browser, pages, pageUrl(server))
    stopped(page, "full")
    expect(lines(page).last).to_contain_text("the server is full")
    noRetry(page, opened)
    tcp.sock.close()
    page.get_by_role("button", name="Reconnect").click()
    expect(page.locator("#state")).to_have_attribute(
        "data-state", "connected", timeout=SEE
    )
    expect(page.locator("#members li")).to_have_count(1, timeout=SEE)
    assert len(opened) == 2


def test_an_idle_close_is_not_retried(
    processes: Processes, browser: Browser, pages: list[Page]
) -> None:
    """
    Closed for being idle, the page says so and does not come back by itself
    under a new name (which would keep the seat the idle timeout frees).
    """
    server = webServer(processes, "--idle-timeout", "2")
    page, opened = pausedPage(browser, pages, pageUrl(server))
    stopped(page, "idle")
    noRetry(page, opened)


def test_quit_is_not_retried(
    processes: Processes, browser: Browser, pages: list[Page]
) -> None:
    """
    After C{/quit} the page does not join again by itself; Reconnect does,
    under the same name.
    """
    server = webServer(processes)
    page, opened = pausedPage(browser, pages, pageUrl(server))
    rename(page, "quitter")
    say(page, "/quit")
    stopped(page, "left")
    noRetry(page, opened)
    page.get_by_role("button", name="Reconnect").click()
    expect(page.locator("#members .me")).to_have_text("quitter", timeout=SEE)


# Keeps the page's WebSockets where the test can close them, as a network
# that drops the connection would.
KEEP_SOCKETS = """
window.keptSockets = [];
const Kept = window.WebSocket;
window.WebSocket = class extends Kept {
  constructor(...args) { super(...args); window.keptSockets.push(this); }
};
"""


def dropConnection(page: Page) -> None:
    page.evaluate("() => window.keptSockets.at(-1).close(4000, 'dropped')")


def test_a_reconnect_shows_only_what_is_new(
    processes: Processes, browser: Browser, pages: list[Page]
) -> None:
    """
    After the connection drops and comes back, the page does not show the
    banner and the room's history again: only the lines said meanwhile,
    and that it reconnected.
    """
    server = webServer(processes, "--history", "5")
    tcp = TcpPerson(processes, server)
    tcp.send(b"before one\r\nbefore two\r\n")
    tcp.do(b"/who", "* 1 here")
    page = browser.new_context().new_page()
    pages.append(page)
    page.add_init_script(KEEP_SOCKETS)
    page.goto(pageUrl(server))
    history = shown(page).locator("li.history")
    expect(history).to_have_count(2, timeout=SEE)
    tcp.send(b"seen live\r\n")
    expect(lines(page).last).to_contain_text("seen live", timeout=SEE)
    expect(shown(page)).to_contain_text("Welcome to sockserve")

    dropConnection(page)
    expect(page.locator("#state")).not_to_have_attribute("data-state", "connected")
    tcp.lineUntil(lambda line: line.endswith(" left"))
    tcp.send(b"said while away\r\n")
    tcp.do(b"/who", "* 1 here")
    expect(page.locator("#state")).to_have_attribute(
        "data-state", "connected", timeout=SEE
    )
    expect(shown(page)).to_contain_text("said while away", timeout=SEE)
    expect(shown(page)).to_contain_text("reconnected")
    text = shown(page).inner_text()
    assert text.count("Welcome to sockserve") == 1, text
    for line in ("before one", "before two", "seen live", "said while away"):
        assert text.count(line) == 1, (line, text)


def test_the_name_is_kept_for_the_session(
    processes: Processes, browser: Browser, pages: list[Page]
) -> None:
    """
    The chosen name is taken again after a reload (kept in the tab's
    sessionStorage, with nothing else).
    """
    server = webServer(processes)
    page = openPage(browser, pages, pageUrl(server))
    rename(page, "keeper")
    page.reload()
    expect(page.locator("#members .me")).to_have_text("keeper", timeout=SEE)
    stored = page.evaluate("() => JSON.stringify(Object.entries(sessionStorage))")
    assert json.loads(stored) == [["sockserve.name", "keeper"]]


def test_a_refused_name_does_not_stay_in_the_name_box(
    processes: Processes, browser: Browser, pages: list[Page]
) -> None:
    """
    A name refused (taken, or not a name) does not stay in the name box,
    which shows the name the page really has.
    """
    server = webServer(processes)
    page = openPage(browser, pages, pageUrl(server))
    rename(page, "keeper")
    tcp = TcpPerson(processes, server)
    box = page.get_by_label("Your name")
    box.fill(tcp.name)
    page.get_by_role("button", name="Change name").click()
    expect(lines(page).last).to_contain_text("taken", timeout=SEE)
    expect(box).to_have_value("keeper")
    box.fill("not a name!")
    page.get_by_role("button", name="Change name").click()
    expect(lines(page).last).to_have_class(re.compile(r"\berror\b"), timeout=SEE)
    expect(box).to_have_value("keeper")


def test_phone_layout(
    processes: Processes, browser: Browser, pages: list[Page]
) -> None:
    """
    On a phone (390x844) the header is opaque and nothing of the log is
    drawn over it, however far the log or the page is scrolled; the member
    list and the name box are within reach at the bottom, by the message
    box, not only at the top.
    """
    server = webServer(processes)
    page = openPage(browser, pages, pageUrl(server), **PHONE)
    tcp = TcpPerson(processes, server)
    tcp.send(b"".join(b"line %d\r\n" % n for n in range(MANY)))
    expect(lines(page).last).to_have_text(re.compile(f"line {MANY - 1}$"), timeout=SEE)
    header = page.locator("header")
    background = header.evaluate("(h) => getComputedStyle(h).backgroundColor")
    assert re.fullmatch(r"rgb\(\d+, \d+, \d+\)", background), background
    for scroll in (0, -600, -5000, 5000):
        box = shown(page).bounding_box()
        assert box is not None
        page.mouse.move(box["x"] + 10, box["y"] + box["height"] / 2)
        page.mouse.wheel(0, scroll)
        page.evaluate("() => window.scrollBy(0, 300)")
        # What is drawn at every point of the header is the header's.
        covered = header.evaluate(
            """(h) => {
              const r = h.getBoundingClientRect();
              const found = [];
              for (let x = 2; x < r.width; x += 20) {
                for (let y = Math.max(r.top, 0) + 1; y < r.bottom; y += 8) {
                  const at = document.elementFromPoint(x, y);
                  if (at === null || !h.contains(at)) {
                    found.push([x, y, at && at.outerHTML.slice(0, 60)]);
                  }
                }
              }
              return [r.top, found];
            }"""
        )
        assert covered == [0, []], covered

    viewport = 844
    message = page.get_by_label("Message").bounding_box()
    members = page.locator("#members").bounding_box()
    assert message is not None
    assert members is not None
    assert viewport / 2 < members["y"] < message["y"]
    menu = page.get_by_role("button", name="Rooms")
    menuBox = menu.bounding_box()
    assert menuBox is not None
    assert menuBox["y"] > viewport / 2
    menu.click()
    name = page.get_by_label("Your name")
    expect(name).to_be_in_viewport(ratio=1)
    nameBox = name.bounding_box()
    assert nameBox is not None
    assert nameBox["y"] > viewport / 2
    rename(page, "thumb")
    expect(page.get_by_label("Message")).to_be_in_viewport(ratio=1)


def test_help_is_an_aligned_block(
    processes: Processes, browser: Browser, pages: list[Page]
) -> None:
    """
    C{/help} is shown as the server lays it out: in a monospace font, not
    slanted, each command's description starting at the same place.
    """
    server = webServer(processes)
    page = openPage(browser, pages, pageUrl(server))
    say(page, "/help")
    shownHelp = lines(page).filter(has_text="/nick NAME")
    expect(shownHelp).to_have_count(1, timeout=SEE)
    style = shownHelp.evaluate(
        "(e) => { const s = getComputedStyle(e.querySelector('pre') || e);"
        " return [s.fontFamily, s.fontStyle]; }"
    )
    assert "monospace" in style[0], style
    assert style[1] == "normal", style
    # Where each description starts: the same x on every line.
    starts = shownHelp.evaluate(
        """(e) => {
          const walker = document.createTreeWalker(e, NodeFilter.SHOW_TEXT);
          const xs = [];
          for (let node = walker.nextNode(); node; node = walker.nextNode()) {
            let offset = 0;
            for (const line of node.data.split("\\n")) {
              const at = line.search(/\\S\\s{2,}\\S/);
              if (at >= 0) {
                const start = offset + line.slice(at + 1).search(/\\S/) + at + 1;
                const range = document.createRange();
                range.setStart(node, start);
                range.setEnd(node, start + 1);
                xs.push(Math.round(range.getBoundingClientRect().left));
              }
              offset += line.length + 1;
            }
          }
          return xs;
        }"""
    )
    assert len(starts) >= 8, starts
    assert len(set(starts)) == 1, starts


def test_lines_show_the_servers_time(
    processes: Processes, browser: Browser, pages: list[Page]
) -> None:
    """
    Each line someone said, each join and departure, and the page's own
    lines show when they happened by the server's clock (the page's own
    clock is years off here), in the reader's time zone (drawn beside the
    line, not part of its text).
    """
    server = webServer(processes)
    context = {"timezone_id": "UTC", "locale": "en-GB"}
    page = browser.new_context(**context).new_page()  # type: ignore[arg-type]
    pages.append(page)
    page.clock.install(time=datetime.datetime(2001, 2, 3, 4, 5, 6))
    page.goto(pageUrl(server))
    expect(page.locator("#state")).to_have_attribute(
        "data-state", "connected", timeout=SEE
    )
    before = time.time()
    tcp = TcpPerson(processes, server)
    tcp.send(b"what time is it?\r\n")
    say(page, "time to test")
    tcp.lineUntil(lambda line: "time to test" in line)
    tcp.sock.close()
    expect(lines(page).last).to_contain_text("left", timeout=SEE)
    after = time.time()
    for text in ("joined", "what time is it?", "time to test", "left"):
        line = lines(page).filter(has_text=text).last
        stamp = line.locator("time")
        expect(stamp).to_have_count(1)
        when = datetime.datetime.fromisoformat(stamp.get_attribute("datetime") or "")
        assert before - 1 <= when.timestamp() <= after + 1, (text, when)
        drawn = stamp.evaluate("(t) => getComputedStyle(t, '::before').content")
        utc = datetime.timezone.utc
        assert drawn == json.dumps(when.astimezone(utc).strftime("%H:%M"))


def test_links_are_made_safely(
    processes: Processes, browser: Browser, pages: list[Page]
) -> None:
    """
    http and https addresses become links that open in a new tab without
    telling the page they came from; anything else (javascript:, data:,
    markup around an address) stays text.
    """
    server = webServer(processes)
    page = openPage(browser, pages, pageUrl(server))
    tcp = TcpPerson(processes, server)
    text = (
        "see https://example.org/a?b=1&c=2, http://x.test/p_(q). "
        'and javascript:alert(1) data:text/html,<b>x</b> https://e.test/"' + ATTACK
    )
    tcp.send(text.encode() + b"\r\n")
    line = lines(page).last
    expect(line).to_have_text(f"{tcp.name}{text}", timeout=SEE)
    links = line.locator("a")
    expect(links).to_have_count(3)
    assert [links.nth(n).get_attribute("href") for n in range(3)] == [
        "https://example.org/a?b=1&c=2",
        "http://x.test/p_(q)",
        "https://e.test/",
    ]
    for n in range(3):
        assert links.nth(n).get_attribute("rel") == "noopener noreferrer"
        assert links.nth(n).get_attribute("target") == "_blank"
    assertNothingRan(page)


def test_the_message_box_takes_the_servers_max_line(
    processes: Processes, browser: Browser, pages: list[Page]
) -> None:
    """
    A paste longer than 8192 characters goes through whole when the
    server's --max-line allows it; with a small --max-line, the box holds
    that many characters, and a line too long in bytes is refused on the
    page, which stays connected (the server would close it).
    """
    server = webServer(processes)
    page = openPage(browser, pages, pageUrl(server))
    tcp = TcpPerson(processes, server)
    box = page.get_by_label("Message")
    expect(box).to_have_attribute("maxlength", "65536")
    long = "0123456789" * 1000
    box.focus()
    page.keyboard.insert_text(long)
    box.press("Enter")
    assert tcp.lineUntil(lambda line: line.startswith("<")).endswith(" " + long)

    small = webServer(processes, "--max-line", "100")
    page, opened = pausedPage(browser, pages, pageUrl(small))
    box = page.get_by_label("Message")
    expect(box).to_have_attribute("maxlength", "100")
    wide = "日本語" * 30
    box.fill(wide)
    box.press("Enter")
    expect(lines(page).last).to_contain_text("too long", timeout=SEE)
    expect(box).to_have_value(wide)
    say(page, "short")
    expect(lines(page).last).to_contain_text("short")
    page.clock.run_for(10_000)
    settled(page)
    assert len(opened) == 1
    expect(page.locator("#state")).to_have_attribute("data-state", "connected")


def test_own_text_is_shown_as_others_see_it(
    processes: Processes, browser: Browser, pages: list[Page]
) -> None:
    """
    Control and bidirectional characters in a line are shown escaped to
    everyone, its sender included (one rule for all).
    """
    server = webServer(processes)
    writer = openPage(browser, pages, pageUrl(server))
    reader = openPage(browser, pages, pageUrl(server))
    text = "abc\u202edef\u200b \x07 tag\U000e0041 end  "
    say(writer, text)
    said = lines(reader).filter(has=reader.locator(".sender")).last
    expect(said).to_contain_text("abc", timeout=SEE)
    others = saidText(said)
    assert others == "abc\\u202edef\\u200b \\x07 tag\\U000e0041 end", others
    own = lines(writer).filter(has=writer.locator(".sender")).last
    assert saidText(own) == others


def test_me_and_topic_act_in_the_room_in_view(
    processes: Processes, browser: Browser, pages: list[Page]
) -> None:
    """/me and /topic typed in a room's view act in that room, though the
    page joined another since (the server's current room): the others there
    see the action and the topic; the page shows its own action as others
    see it."""
    server = webServer(processes)
    ada = openPage(browser, pages, pageUrl(server))
    rename(ada, "ada")
    grace = TcpPerson(processes, server)
    joinRoom(ada, "Lounge")
    expect(ada.locator("#title")).to_have_text("#Lounge")
    open_(ada, "#default")
    say(ada, "/me waves")
    assert grace.lineUntil(lambda text: text.startswith("* ada")) == "* ada waves"
    expect(shown(ada).locator("li.action").last).to_contain_text("* ada waves")
    say(ada, "/topic coffee at four")
    assert grace.lineUntil(lambda text: "topic" in text) == (
        "* ada set the topic: coffee at four"
    )


def test_the_page_shows_topics(
    processes: Processes, browser: Browser, pages: list[Page]
) -> None:
    """A room's topic is shown on arriving (with who set it) and when it
    changes or is cleared, and it is the title's tooltip."""
    server = webServer(processes)
    grace = TcpPerson(processes, server)
    grace.do(b"/nick grace", "* you are now known as")
    grace.do(b"/topic exams on Friday", "* grace set the topic")
    ada = openPage(browser, pages, pageUrl(server))
    notices = shown(ada).locator("li.notice")
    expect(
        notices.filter(has_text="topic: exams on Friday (set by grace)")
    ).to_have_count(1)
    expect(ada.locator("#title")).to_have_attribute("title", "exams on Friday")
    grace.do(b"/topic lunch at noon", "* grace set the topic")
    expect(notices.filter(has_text="grace set the topic: lunch at noon")).to_have_count(
        1
    )
    expect(ada.locator("#title")).to_have_attribute("title", "lunch at noon")
    grace.do(b"/topic -", "* grace cleared the topic")
    expect(notices.filter(has_text="grace cleared the topic")).to_have_count(1)
    expect(ada.locator("#title")).to_have_attribute("title", "")

"""
The chat page in a real browser: Debian's Chromium, headless, driven by
Playwright (which never downloads a browser here), against a real
C{twistd} process, with a raw TCP client in the same room.

Set C{SOCKSERVE_SCREENSHOT=path.png} to keep the screenshot the first test
takes (README.rst shows one).
"""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.processes import Processes, Server, TcpMember

pytestmark = pytest.mark.e2e

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Keep Chromium off the network: this machine has none, and it would try.
CHROMIUM_FLAGS = [
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-gpu",
    "--no-first-run",
    "--disable-dev-shm-usage",
]
# Seconds Playwright waits for what a test expects to see.
SEE = 10_000


@pytest.fixture
def processes() -> Iterator[Processes]:
    with Processes() as processes:
        yield processes


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def pages(browser: Browser) -> Iterator[list[Page]]:
    opened: list[Page] = []
    yield opened
    for page in opened:
        if not page.is_closed():
            page.context.close()


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


def members(page: Page) -> list[str]:
    """
    The member list as the page shows it.
    """
    return page.locator("#members li").all_inner_texts()


def webServer(processes: Processes, *options: str) -> Server:
    return processes.server("--web", "0", *options, listeners=2)


def test_two_pages_and_a_tcp_client_chat(
    processes: Processes, browser: Browser, pages: list[Page]
) -> None:
    """
    Two people in browsers and one on a raw TCP connection chat; the member
    list follows joins, renames and departures; what the TCP client sends,
    markup included, is shown as text and runs nothing.
    """
    server = webServer(processes)
    url = f"http://127.0.0.1:{server.portOf('web')}/"
    first = openPage(browser, pages, url)
    expect(first.locator("#log")).to_contain_text("Welcome to sockserve")
    firstName = first.get_by_label("Your name").input_value()
    tcp = TcpMember(processes, server)
    expect(first.locator("#members li")).to_have_count(2, timeout=SEE)
    second = openPage(browser, pages, url)
    secondName = second.get_by_label("Your name").input_value()
    expect(second.locator("#members li")).to_have_count(3, timeout=SEE)
    assert sorted(members(second)) == sorted([firstName, secondName, tcp.name])
    expect(first.locator("#log")).to_contain_text(f"{secondName} joined")

    say(first, "hello from the first page")
    line = second.locator("#log li.message").last
    expect(line).to_contain_text("hello from the first page", timeout=SEE)
    expect(line.locator(".sender")).to_have_text(firstName)
    expect(first.locator("#log li.own").last).to_have_text(
        f"{firstName}hello from the first page"
    )
    assert tcp.lineUntil(lambda text: "first page" in text) == (
        f"<{firstName}> hello from the first page"
    )

    attack = '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script>'
    tcp.send(attack.encode() + b"\r\n")
    for page in (first, second):
        shown = page.locator("#log li.message").last
        expect(shown).to_have_text(f"{tcp.name}{attack}", timeout=SEE)
        assert page.locator("#log img, #log script").count() == 0
        assert page.evaluate("window.pwned") is None

    second.get_by_label("Your name").fill("second")
    second.get_by_role("button", name="Change name").click()
    expect(first.locator("#members")).to_contain_text("second", timeout=SEE)
    assert secondName not in members(first)
    expect(second.locator("#members .me")).to_have_text("second")
    assert tcp.lineUntil(lambda text: "known as" in text) == (
        f"* {secondName} is now known as second"
    )
    say(second, "renamed and still here")
    expect(first.locator("#log li.message").last).to_contain_text(
        "renamed and still here", timeout=SEE
    )
    screenshot = os.environ.get("SOCKSERVE_SCREENSHOT")
    if screenshot:
        first.set_viewport_size({"width": 900, "height": 520})
        first.screenshot(path=screenshot)

    second.context.close()
    expect(first.locator("#members li")).to_have_count(2, timeout=SEE)
    assert "second" not in members(first)
    assert tcp.lineUntil(lambda text: "left" in text) == "* second left"


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
    is back on the same port, it reconnects, takes its chosen name again and
    chats. On a phone-sized screen.
    """
    port = freePort()
    server = webServer(processes, f"--web=tcp:{port}:interface=127.0.0.1")
    phone = {"viewport": {"width": 375, "height": 667}, "is_mobile": True}
    page = openPage(browser, pages, f"http://127.0.0.1:{port}/", **phone)
    page.get_by_label("Your name").fill("phone")
    page.get_by_role("button", name="Change name").click()
    expect(page.locator("#log")).to_contain_text("you are now known as phone")

    server.stop()
    state = page.locator("#state")
    expect(state).to_have_attribute("data-state", "reconnecting", timeout=SEE)
    expect(state).to_contain_text("reconnecting")
    expect(page.locator("#log")).to_contain_text("shutting down")
    expect(page.get_by_label("Message")).to_be_disabled()

    again = webServer(processes, f"--web=tcp:{port}:interface=127.0.0.1")
    expect(state).to_have_attribute("data-state", "connected", timeout=SEE)
    expect(page.locator("#members .me")).to_have_text("phone", timeout=SEE)
    tcp = TcpMember(processes, again)
    say(page, "back again")
    assert tcp.lineUntil(lambda text: "back again" in text) == "<phone> back again"
    tcp.send(b"welcome back\r\n")
    expect(page.locator("#log li.message").last).to_contain_text("welcome back")
    box = page.get_by_label("Message").bounding_box()
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


def test_page_shows_the_history(
    processes: Processes, browser: Browser, pages: list[Page]
) -> None:
    """
    With --history, a page that joins shows the last lines said, set apart
    from what is said after.
    """
    server = webServer(processes, "--history", "2")
    tcp = TcpMember(processes, server)
    tcp.send(b"one\r\ntwo\r\nthree\r\n")
    tcp.send(b"/who\r\n")
    tcp.lineUntil(lambda line: " here: " in line)
    page = openPage(browser, pages, f"http://127.0.0.1:{server.portOf('web')}/")
    history = page.locator("#log li.history")
    expect(history).to_have_count(2, timeout=SEE)
    assert history.all_inner_texts() == [f"{tcp.name}two", f"{tcp.name}three"]
    tcp.send(b"four\r\n")
    expect(page.locator("#log li.message").last).to_have_text(f"{tcp.name}four")
    assert page.locator("#log li.history").count() == 2

"""
Operators and the chat page in a real browser (Debian's Chromium, driven by
Playwright): a kicked or banned person's page is closed, says why, and does
not come back by itself; a banned address's page is refused when it tries.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.processes import Processes, TcpMember
from tests.test_browser import SEE, openPage
from tests.test_e2e_accounts import accountsFile

pytestmark = pytest.mark.e2e


def test_a_kicked_then_banned_page_says_why(
    processes: Processes,
    browser: Browser,
    pages: list[Page],
) -> None:
    """An operator on telnet kicks a page: it says why, and waits for its
    Reconnect button; pressed, it comes back; banned, it says so, and
    pressed again, the server refuses it at once, saying why."""
    server = processes.server(
        "--accounts", str(accountsFile(processes)), "--web", "0", listeners=2
    )
    alice = TcpMember(processes, server)
    alice.ask("/login alice wonderland", lambda line: "known as alice" in line)
    url = f"http://127.0.0.1:{server.portOf('web')}/"
    page = openPage(browser, pages, url)
    name = alice.lineUntil(lambda line: line.endswith(" joined")).split()[1]
    state = page.locator("#state")
    alice.say(f"/kick {name} enough")
    expect(state).to_have_attribute("data-state", "closed", timeout=SEE)
    expect(state).to_have_text(
        "not connected: you were kicked by alice: enough", timeout=SEE
    )
    page.get_by_role("button", name="Reconnect").click()
    expect(state).to_have_attribute("data-state", "connected", timeout=SEE)
    name = alice.lineUntil(lambda line: line.endswith(" joined")).split()[1]
    alice.say(f"/ban {name} 1h spam")
    expect(state).to_have_text(
        re.compile(
            r"not connected: you are banned from this server until "
            r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC: spam"
        ),
        timeout=SEE,
    )
    page.get_by_role("button", name="Reconnect").click()
    expect(state).to_contain_text(
        "connections from 127.0.0.1/32 are banned until", timeout=SEE
    )
    expect(state).to_have_attribute("data-state", "closed", timeout=SEE)

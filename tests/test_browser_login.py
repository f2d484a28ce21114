"""
The page's login form in a real browser (Debian's Chromium, driven by
Playwright) against a real twistd with an accounts file: log in, reload and
still be logged in, log out, a wrong password said in words; a banned
account's page closed and told why.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser, Page, Request, expect

from tests.processes import Processes, TcpMember
from tests.test_browser import (
    LAST_RETRY,
    SEE,
    freePort,
    members,
    openPage,
    say,
    shown,
)
from tests.test_e2e_accounts import accountsFile

pytestmark = pytest.mark.e2e


def logIn(page: Page, name: str, password: str) -> None:
    """Fill the login form and press Log in."""
    page.get_by_label("Account name").fill(name)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()


def test_log_in_reload_and_log_out(
    processes: Processes,
    browser: Browser,
    pages: list[Page],
) -> None:
    """A wrong password is said in words; the right one logs the page in
    (it comes back as the account, and the password went in no URL and is
    kept nowhere the page's scripts can read); a reload is still logged in;
    Log out makes it a guest again, and a reload stays one."""
    server = processes.server(
        "--accounts", str(accountsFile(processes)), "--web", "0", listeners=2
    )
    url = f"http://127.0.0.1:{server.portOf('web')}/"
    page = openPage(browser, pages, url)
    requests: list[Request] = []
    page.on("request", lambda request: requests.append(request))
    expect(page.get_by_role("button", name="Log in")).to_be_visible(timeout=SEE)
    logIn(page, "alice", "not-her-password")
    expect(page.locator("#login-error")).to_have_text(
        "not logged in: wrong name or password", timeout=SEE
    )
    expect(page.get_by_label("Password")).to_have_value("")
    logIn(page, "alice", "wonderland")
    expect(page.locator("#account-name")).to_have_text(
        "logged in as alice", timeout=SEE
    )
    expect(shown(page)).to_contain_text(
        "you are logged in as alice (operator)", timeout=SEE
    )
    expect(page.locator("#state")).to_have_attribute(
        "data-state", "connected", timeout=SEE
    )
    assert "alice" in members(page)
    assert all("wonderland" not in request.url for request in requests)
    assert "wonderland" not in page.evaluate(
        "() => JSON.stringify([document.cookie, Object.entries(localStorage),"
        " Object.entries(sessionStorage)])"
    )
    assert page.evaluate("document.cookie") == ""  # HttpOnly
    (cookie,) = page.context.cookies()
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"

    page.reload()
    expect(page.locator("#account-name")).to_have_text(
        "logged in as alice", timeout=SEE
    )
    expect(shown(page)).to_contain_text(
        "you are logged in as alice (operator)", timeout=SEE
    )
    expect(page.get_by_label("Your name")).to_have_value("alice")

    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("button", name="Log in")).to_be_visible(timeout=SEE)
    expect(shown(page)).to_contain_text("you logged out of alice", timeout=SEE)
    expect(page.get_by_label("Your name")).to_have_value(
        re.compile(r"^guest\d+$"), timeout=SEE
    )
    page.reload()
    expect(page.locator("#state")).to_have_attribute(
        "data-state", "connected", timeout=SEE
    )
    expect(page.get_by_role("button", name="Log in")).to_be_visible(timeout=SEE)
    expect(page.get_by_label("Your name")).to_have_value(
        re.compile(r"^guest\d+$"), timeout=SEE
    )
    say(page, "/who")
    expect(shown(page).locator("li").last).not_to_contain_text("alice", timeout=SEE)
    log = server.output.waitForText(b"logged in as alice").decode()
    assert "Failed login as alice" in log
    assert "wonderland" not in log
    assert "not-her-password" not in log


def test_a_banned_accounts_page_is_closed_and_told_why(
    processes: Processes,
    browser: Browser,
    pages: list[Page],
) -> None:
    """An operator on telnet kicks a page logged in to an account: it is
    closed, says why, and its Reconnect button brings it back still logged
    in; the operator bans the account: the page is closed and says why, and
    its login is over (the form is back)."""
    server = processes.server(
        "--accounts", str(accountsFile(processes)), "--web", "0", listeners=2
    )
    alice = TcpMember(processes, server)
    alice.ask("/login alice wonderland", lambda line: "known as alice" in line)
    page = openPage(browser, pages, f"http://127.0.0.1:{server.portOf('web')}/")
    logIn(page, "bob", "builder1")
    expect(page.locator("#account-name")).to_have_text("logged in as bob", timeout=SEE)
    expect(shown(page)).to_contain_text("you are logged in as bob", timeout=SEE)
    state = page.locator("#state")
    alice.say("/kick bob enough")
    expect(state).to_have_text(
        "not connected: you were kicked by alice: enough", timeout=SEE
    )
    page.get_by_role("button", name="Reconnect").click()
    expect(state).to_have_attribute("data-state", "connected", timeout=SEE)
    expect(shown(page).get_by_text("you are logged in as bob")).to_have_count(
        2, timeout=SEE
    )
    expect(page.locator("#account-name")).to_have_text("logged in as bob")
    alice.say("/ban bob 1h spam")
    expect(state).to_have_attribute("data-state", "closed", timeout=SEE)
    expect(state).to_contain_text("spam", timeout=SEE)
    expect(state).to_contain_text("banned", timeout=SEE)
    expect(page.get_by_role("button", name="Log in")).to_be_visible(timeout=SEE)


def test_under_require_login_the_form_lets_the_page_in(
    processes: Processes,
    browser: Browser,
    pages: list[Page],
) -> None:
    """Where everyone must log in, the page is told how; a /login typed in
    its message box logs in as its form does (a wrong one is said in the
    conversation), and the page arrives as the account; a reload comes
    straight in."""
    server = processes.server(
        "--accounts",
        str(accountsFile(processes)),
        "--require-login",
        "--web",
        "0",
        listeners=2,
    )
    page = openPage(browser, pages, f"http://127.0.0.1:{server.portOf('web')}/")
    expect(shown(page)).to_contain_text(
        "this server is for its accounts only", timeout=SEE
    )
    say(page, "/login bob wrong password")
    expect(shown(page).locator("li.error").last).to_have_text(
        "wrong name or password", timeout=SEE
    )
    expect(page.get_by_label("Message")).to_have_value("")
    say(page, "/login bob builder1")
    expect(shown(page)).to_contain_text("you are bob in #default", timeout=SEE)
    expect(page.get_by_label("Your name")).to_have_value("bob")
    expect(page.locator("#account-name")).to_have_text("logged in as bob")
    page.reload()
    expect(page.locator("#state")).to_have_attribute(
        "data-state", "connected", timeout=SEE
    )
    expect(shown(page)).to_contain_text("you are bob in #default", timeout=SEE)
    expect(shown(page)).not_to_contain_text("for its accounts only")


def test_a_restart_ends_the_login_and_the_page_says_so(
    processes: Processes,
    browser: Browser,
    pages: list[Page],
) -> None:
    """The page's logins are the server's memory: after a restart the page
    comes back as a guest, shows the login form again, and does not ask
    for the account's name."""
    port = freePort()
    accounts = str(accountsFile(processes))
    web = f"--web=tcp:{port}:interface=127.0.0.1"
    server = processes.server("--accounts", accounts, web, listeners=2)
    page = openPage(browser, pages, f"http://127.0.0.1:{port}/")
    logIn(page, "bob", "builder1")
    expect(page.locator("#account-name")).to_have_text("logged in as bob", timeout=SEE)
    expect(page.get_by_label("Your name")).to_have_value("bob", timeout=SEE)
    server.stop()
    state = page.locator("#state")
    expect(state).to_have_attribute("data-state", "reconnecting", timeout=SEE)
    processes.server("--accounts", accounts, web, listeners=2)
    expect(state).to_have_attribute("data-state", "connected", timeout=LAST_RETRY + SEE)
    expect(page.get_by_role("button", name="Log in")).to_be_visible(timeout=SEE)
    expect(page.get_by_label("Your name")).to_have_value(
        re.compile(r"^guest\d+$"), timeout=SEE
    )
    expect(shown(page)).not_to_contain_text("belongs to an account")

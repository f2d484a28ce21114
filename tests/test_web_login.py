"""
The page's login on the site, on StringTransports: C{/session} (log in,
the cookie, log out, cross-site requests refused) and the WebSocket that
arrives logged in with the cookie.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.interfaces import ISSLTransport
from twisted.internet.testing import StringTransport
from wsproto.connection import Connection, ConnectionType
from wsproto.events import CloseConnection, TextMessage
from zope.interface import directlyProvides

from sockserve.accounts.cred import accountPortal
from sockserve.accounts.logins import LoginRules, Logins
from sockserve.accounts.store import AccountStore
from sockserve.web.sessions import SESSION_LIFETIME
from tests.support import capturedLogs
from tests.test_logins import FAST, AtOnce
from tests.test_web import Browser, status, upgrade

ORIGIN = "http://127.0.0.1:8080"


class LoginBrowser(Browser):
    """A browser of a site whose chat has accounts: alice (an operator,
    password C{wonderland}) and bob (C{builder1})."""

    def __init__(self, tmp_path: Path, **rules: Any) -> None:
        super().__init__()
        self.path = tmp_path / "accounts"
        self.path.write_text(
            f"alice:{FAST.hash('wonderland')}:operator\nbob:{FAST.hash('builder1')}:\n"
        )
        store = AccountStore(self.path, FAST)
        store.load()
        self.logins = Logins.forStore(
            store, accountPortal(store, AtOnce()), self.clock, LoginRules(**rules)
        )
        service = self.chat.service
        assert service is not None
        service.useLogins(self.logins)

    def request(
        self,
        method: str,
        body: bytes = b"",
        secure: bool = False,
        **headers: str,
    ) -> tuple[int, dict[str, list[str]], Any]:
        """Send one request to /session; return the status, the headers
        and the JSON body of the answer."""
        fields = {"Host": "127.0.0.1:8080", "Content-Length": str(len(body))}
        fields.update(
            {name.replace("_", "-"): value for name, value in headers.items()}
        )
        text = "".join(f"{name}: {value}\r\n" for name, value in fields.items())
        raw = f"{method} /session HTTP/1.1\r\n{text}\r\n".encode() + body
        channel = self.site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
        transport = StringTransport(
            peerAddress=IPv4Address("TCP", "127.0.0.1", 40000),
            hostAddress=IPv4Address("TCP", "127.0.0.1", 8080),
        )
        if secure:
            # A TLS connection, as twisted.web sees one.
            directlyProvides(transport, ISSLTransport)
            transport.setTcpNoDelay = lambda enabled: None  # type: ignore[attr-defined]
        channel.makeConnection(transport)
        channel.dataReceived(raw)
        head, _, content = transport.value().partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        code = int(lines[0].split()[1])
        answer: dict[str, list[str]] = {}
        for line in lines[1:]:
            name, _, value = line.partition(": ")
            answer.setdefault(name.lower(), []).append(value)
        return code, answer, json.loads(content) if content else None

    def logIn(
        self, name: str = "alice", password: str = "wonderland", **headers: str
    ) -> tuple[int, dict[str, list[str]], Any]:
        """POST /session from the page."""
        fields = {"Origin": ORIGIN, "Content_Type": "application/json"}
        fields.update(headers)
        body = json.dumps({"name": name, "password": password}).encode()
        return self.request("POST", body, False, **fields)

    def open(
        self, cookie: str | None, *lines: str
    ) -> tuple[StringTransport, Connection]:
        """Open the WebSocket (the line wire), with the cookie if given,
        and send C{lines} with the handshake."""
        headers = {"Origin": ORIGIN}
        if cookie is not None:
            headers["Cookie"] = cookie
        sender = Connection(ConnectionType.CLIENT)
        first = b"".join(sender.send(TextMessage(line)) for line in lines)
        transport, _ = self.send(upgrade(**headers) + first)
        assert status(transport) == b"HTTP/1.1 101 Switching Protocols"
        client = Connection(ConnectionType.CLIENT)
        client.receive_data(transport.value().partition(b"\r\n\r\n")[2])
        transport.clear()
        self.opened = list(client.events())
        return transport, client


def cookieOf(headers: dict[str, list[str]]) -> str:
    """The session's cookie, as the browser sends it back."""
    (setCookie,) = headers["set-cookie"]
    return setCookie.partition(";")[0]


def texts(events: list[Any]) -> list[str]:
    return [event.data for event in events if isinstance(event, TextMessage)]


def heard(transport: StringTransport, client: Connection) -> list[Any]:
    client.receive_data(transport.value())
    transport.clear()
    return list(client.events())


def test_a_login_sets_a_session_cookie(tmp_path: Path) -> None:
    """The right password gets the account and a cookie that scripts
    cannot read, sent to this site only, for the session's lifetime (not
    Secure over plain HTTP); GET says who the cookie is logged in as."""
    browser = LoginBrowser(tmp_path)
    code, headers, body = browser.logIn()
    assert code == 200
    assert body == {"account": "alice", "roles": ["operator"]}
    (setCookie,) = headers["set-cookie"]
    name, _, attributes = setCookie.partition("; ")
    assert name.startswith("sockserve_session=")
    assert len(name.partition("=")[2]) >= 43
    assert sorted(attributes.split("; ")) == sorted(
        ["Path=/", f"Max-Age={int(SESSION_LIFETIME)}", "HttpOnly", "SameSite=strict"]
    )
    assert headers["cache-control"] == ["no-store"]
    code, _, body = browser.request("GET", Cookie=cookieOf(headers))
    assert body == {
        "account": "alice",
        "roles": ["operator"],
        "accounts": True,
        "required": False,
    }
    code, _, body = browser.request("GET")
    assert body["account"] is None
    assert body["accounts"] is True


def test_the_cookie_is_secure_under_tls(tmp_path: Path) -> None:
    """Over TLS the cookie is marked Secure."""
    browser = LoginBrowser(tmp_path)
    fields = {"Origin": "https://127.0.0.1:8080", "Content_Type": "application/json"}
    body = json.dumps({"name": "alice", "password": "wonderland"}).encode()
    code, headers, _ = browser.request("POST", body, secure=True, **fields)
    assert code == 200
    assert "Secure" in headers["set-cookie"][0].split("; ")


def test_a_wrong_password_is_refused_in_words_and_never_logged(
    tmp_path: Path,
) -> None:
    """A wrong password, or no such account, is 403 with the one answer
    every front end gives; no cookie; the password is in no log line."""
    browser = LoginBrowser(tmp_path)
    with capturedLogs() as logs:
        for name in ("alice", "mallory"):
            code, headers, body = browser.logIn(name, "s3cret-guess")
            assert code == 403
            assert body == {"error": "wrong name or password"}
            assert "set-cookie" not in headers
        browser.logIn()
    assert not any("s3cret-guess" in text for text in logs.texts())
    assert not any("wonderland" in text for text in logs.texts())
    assert browser.logins.counts["failed"] == 2


def test_logins_are_limited_as_everywhere(tmp_path: Path) -> None:
    """Failed logins through the page cost waits, as on every front end
    (429, in words), and --require-tls-for-login refuses plain HTTP."""
    browser = LoginBrowser(tmp_path)
    answers = [browser.logIn("bob", "nope")[0] for _ in range(8)]
    assert answers[-1] == 429
    assert "try again in" in browser.logIn("bob", "builder1")[2]["error"]
    strict = LoginBrowser(tmp_path, requireTLS=True)
    code, headers, body = strict.logIn()
    assert code == 403
    assert "TLS" in body["error"]
    assert "set-cookie" not in headers


def test_cross_site_and_malformed_logins_are_refused(tmp_path: Path) -> None:
    """A POST or DELETE without an Origin, or from another site's page, is
    refused (CSRF); so is a body that is not JSON, or lacks a field."""
    browser = LoginBrowser(tmp_path)
    assert browser.logIn(Origin="http://evil.example")[0] == 403
    body = json.dumps({"name": "alice", "password": "wonderland"}).encode()
    code, headers, _ = browser.request("POST", body, Content_Type="application/json")
    assert code == 403
    assert "set-cookie" not in headers
    assert browser.logIn(Content_Type="text/plain")[0] == 415
    for wrong in (b"{", b"[]", b'{"name": "alice"}', b'{"name": 1, "password": 2}'):
        code, _, answer = browser.request(
            "POST", wrong, Origin=ORIGIN, Content_Type="application/json"
        )
        assert code == 400
        assert answer == {"error": "give a name and a password"}
    huge = json.dumps({"name": "alice", "password": "x" * 5000}).encode()
    assert (
        browser.request("POST", huge, Origin=ORIGIN, Content_Type="application/json")[0]
        == 413
    )
    _, headers, _ = browser.logIn()
    cookie = cookieOf(headers)
    assert browser.request("DELETE", Cookie=cookie)[0] == 403
    assert (
        browser.request("DELETE", Cookie=cookie, Origin="http://evil.example")[0] == 403
    )
    assert browser.request("GET", Cookie=cookie)[2]["account"] == "alice"


def test_without_accounts_the_page_is_told(tmp_path: Path) -> None:
    """A server without accounts says so, and takes no login."""
    browser = Browser()
    transport, _ = browser.send(
        b"GET /session HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n"
    )
    body = json.loads(transport.value().partition(b"\r\n\r\n")[2])
    assert body["accounts"] is False
    assert body["account"] is None


def test_the_websocket_arrives_logged_in_with_the_cookie(tmp_path: Path) -> None:
    """A WebSocket opened with the cookie arrives as the account (with its
    roles); without it, a guest."""
    browser = LoginBrowser(tmp_path)
    _, headers, _ = browser.logIn()
    browser.open(cookieOf(headers))
    assert texts(browser.opened)[1:] == [
        "* you are alice (127.0.0.1:40000) in #default; nobody else here",
        "* you are logged in as alice (operator)",
    ]
    browser.open(None)
    assert texts(browser.opened)[1].startswith("* you are guest")
    browser.open("sockserve_session=made-up")
    assert texts(browser.opened)[1].startswith("* you are guest")


def test_logging_out_ends_the_session_and_its_members_logins(
    tmp_path: Path,
) -> None:
    """DELETE /session clears the cookie, logs out the WebSockets that
    arrived with it (as /logout does), and the old cookie is nobody's."""
    browser = LoginBrowser(tmp_path)
    _, headers, _ = browser.logIn("bob", "builder1")
    cookie = cookieOf(headers)
    transport, client = browser.open(cookie)
    code, headers, body = browser.request("DELETE", Cookie=cookie, Origin=ORIGIN)
    assert code == 200
    assert body == {"account": None, "roles": []}
    (cleared,) = headers["set-cookie"]
    assert cleared.startswith("sockserve_session=;")
    assert "Max-Age=0" in cleared.split("; ")
    told = texts(heard(transport, client))
    assert told[0] == "* you logged out of bob"
    assert told[1].startswith("* you are now known as guest")
    assert browser.request("GET", Cookie=cookie)[2]["account"] is None
    browser.open(cookie)
    assert texts(browser.opened)[1].startswith("* you are guest")


def test_a_session_expires(tmp_path: Path) -> None:
    """After its lifetime, the cookie logs nobody in."""
    browser = LoginBrowser(tmp_path)
    _, headers, _ = browser.logIn()
    browser.clock.advance(SESSION_LIFETIME)
    browser.open(cookieOf(headers))
    assert texts(browser.opened)[1].startswith("* you are guest")


def test_a_changed_password_ends_the_sessions_made_with_the_old(
    tmp_path: Path,
) -> None:
    """Once the accounts file gives the account another password (and is
    read again), the cookies of its old logins log nobody in."""
    browser = LoginBrowser(tmp_path)
    _, headers, _ = browser.logIn()
    browser.path.write_text(f"alice:{FAST.hash('looking-glass')}:operator\n")
    assert browser.logins.reload()
    browser.open(cookieOf(headers))
    assert texts(browser.opened)[1].startswith("* you are guest")


def test_a_banned_accounts_session_is_refused_and_told_why(tmp_path: Path) -> None:
    """The WebSocket of a session whose account was banned since is told
    why and closed (1008); the session ends."""
    browser = LoginBrowser(tmp_path)
    _, headers, _ = browser.logIn()
    browser.logins.banned = lambda name, host: (
        "you are banned: spam" if name == "alice" else None
    )
    browser.open(cookieOf(headers))
    assert texts(browser.opened)[-1] == "ERROR you are banned: spam"
    closes = [e for e in browser.opened if isinstance(e, CloseConnection)]
    assert [close.code for close in closes] == [1008]
    assert browser.request("GET", Cookie=cookieOf(headers))[2]["account"] is None
    assert browser.logIn()[0] == 403


def test_under_require_login_the_cookie_lets_the_page_in(tmp_path: Path) -> None:
    """Where everyone must log in, the cookie is the login: the member
    arrives at once; without it, it is told how to log in."""
    browser = LoginBrowser(tmp_path, requireLogin=True)
    body = browser.request("GET")[2]
    assert body["required"] is True
    _, headers, _ = browser.logIn()
    browser.open(cookieOf(headers))
    assert texts(browser.opened)[1] == (
        "* you are alice (127.0.0.1:40000) in #default; nobody else here"
    )
    browser.open(None)
    assert "log in with /login NAME PASSWORD" in texts(browser.opened)[1]


def test_logging_out_spares_a_member_logged_in_otherwise_since(
    tmp_path: Path,
) -> None:
    """A member that arrived with the cookie, then typed /logout and
    /login to another account, is not logged out when the cookie's session
    ends."""
    browser = LoginBrowser(tmp_path)
    _, headers, _ = browser.logIn()
    cookie = cookieOf(headers)
    transport, client = browser.open(cookie, "/logout", "/login bob builder1")
    assert "* you are logged in as bob" in texts(browser.opened)
    assert browser.request("DELETE", Cookie=cookie, Origin=ORIGIN)[0] == 200
    assert texts(heard(transport, client)) == []
    service = browser.chat.service
    assert service is not None
    assert service.people.find("bob") is not None

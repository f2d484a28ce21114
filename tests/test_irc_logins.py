"""
Logging in from IRC, on StringTransports and a Clock: SASL PLAIN (CAP sasl,
AUTHENTICATE, 900 and 903 to 908), PASS (account:password, or the password
alone with the nick as the account), reserved nicknames, --require-login.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from sockserve.accounts.cred import accountPortal
from sockserve.accounts.logins import LoginRules, Logins
from sockserve.accounts.store import AccountStore
from sockserve.irc.grammar import parseLine
from tests.test_irc import Chat, Client
from tests.test_logins import FAST, AtOnce


def chatWithAccounts(tmp_path: Path, **rules: Any) -> Chat:
    path = tmp_path / "accounts"
    path.write_text(
        f"alice:{FAST.hash('wonderland')}:operator\nbob:{FAST.hash('builder1')}:\n"
    )
    store = AccountStore(path, FAST)
    store.load()
    chat = Chat()
    service = chat.chat.service
    assert service is not None
    service.useLogins(
        Logins.forStore(
            store, accountPortal(store, AtOnce()), chat.clock, LoginRules(**rules)
        )
    )
    return chat


def plain(*parts: str) -> str:
    return base64.b64encode("\0".join(parts).encode()).decode()


def numerics(lines: list[str]) -> list[str]:
    return [parseLine(line.encode()).verb for line in lines]


def test_sasl_is_offered_only_with_accounts(tmp_path: Path) -> None:
    """CAP LS lists sasl=PLAIN (to 302 clients) only with accounts."""
    without = Chat().connect()
    without.send("CAP LS 302")
    assert "sasl" not in without.lines()[0]
    without.send("AUTHENTICATE PLAIN")
    assert numerics(without.lines()) == ["421"]
    chat = chatWithAccounts(tmp_path)
    client = chat.connect()
    client.send("CAP LS 302")
    assert client.lines()[0].endswith(" sasl=PLAIN")
    old = chat.connect()
    old.send("CAP LS")
    assert old.lines()[0].endswith(" sasl")


def test_sasl_plain_logs_in_before_registration(tmp_path: Path) -> None:
    """The exchange irssi and WeeChat make: registration waits for it, and
    001 comes after 900 and 903, with the account's reserved nick."""
    chat = chatWithAccounts(tmp_path)
    client = chat.connect()
    client.send(
        "CAP LS 302",
        "NICK alice",
        "USER alice 0 * :Alice",
        "CAP REQ :sasl server-time",
    )
    lines = client.lines()
    assert lines[-1].endswith("ACK :sasl server-time")
    client.send("AUTHENTICATE PLAIN")
    assert client.lines() == ["AUTHENTICATE +"]
    client.send(f"AUTHENTICATE {plain('alice', 'alice', 'wonderland')}", "CAP END")
    lines = client.lines()
    assert numerics(lines)[:3] == ["900", "903", "001"]
    assert lines[0].endswith(
        " 900 * alice!alice@irc.test alice :You are now logged in as alice"
    )
    assert lines[1].endswith(" 903 * :SASL authentication successful")
    client.send("AUTHENTICATE PLAIN")
    assert numerics(client.lines()) == ["907"]


def test_sasl_failures(tmp_path: Path) -> None:
    """A wrong password is 904 and the client may try again; an unknown
    mechanism 908 and 904; * aborts (906); a piece over 400 bytes is 905;
    someone else's authorization identity is 904."""
    chat = chatWithAccounts(tmp_path)
    client = chat.connect()
    client.send("CAP LS 302", "CAP REQ sasl")
    client.lines()
    client.send("AUTHENTICATE SCRAM-SHA-256")
    assert numerics(client.lines()) == ["908", "904"]
    client.send("AUTHENTICATE PLAIN", f"AUTHENTICATE {plain('', 'bob', 'nope')}")
    lines = client.lines()
    assert lines[0] == "AUTHENTICATE +"
    assert numerics(lines[1:]) == ["904"]
    client.send("AUTHENTICATE PLAIN", "AUTHENTICATE *")
    assert numerics(client.lines()[1:]) == ["906"]
    client.send("AUTHENTICATE PLAIN", "AUTHENTICATE " + "A" * 401)
    assert numerics(client.lines()[1:]) == ["905"]
    client.send(
        "AUTHENTICATE PLAIN", f"AUTHENTICATE {plain('alice', 'bob', 'builder1')}"
    )
    assert numerics(client.lines()[1:]) == ["904"]
    client.send("AUTHENTICATE PLAIN", "AUTHENTICATE !!notbase64")
    assert numerics(client.lines()[1:]) == ["904"]
    client.send("AUTHENTICATE PLAIN", f"AUTHENTICATE {plain('', 'bob', 'builder1')}")
    assert numerics(client.lines()[1:]) == ["900", "903"]


def test_sasl_in_pieces_of_400(tmp_path: Path) -> None:
    """A piece of exactly 400 bytes says more follow: nothing is checked
    until the next piece (here AUTHENTICATE +, an empty last one)."""
    chat = chatWithAccounts(tmp_path)
    client = chat.connect()
    client.send("CAP LS 302", "CAP REQ sasl", "AUTHENTICATE PLAIN")
    client.lines()
    message = base64.b64encode(b"\0bob\0" + b"x" * 295).decode()
    assert len(message) == 400
    client.send(f"AUTHENTICATE {message}")
    assert client.lines() == []
    client.send("AUTHENTICATE +")
    # A password of 295 characters is past the longest taken.
    assert numerics(client.lines()) == ["904"]
    client.send(
        "AUTHENTICATE PLAIN", f"AUTHENTICATE {message}", f"AUTHENTICATE {message}"
    )
    client.send(f"AUTHENTICATE {message}", "AUTHENTICATE +")
    assert numerics(client.lines()[1:]) == ["905"]


def test_reserved_nickname_is_433(tmp_path: Path) -> None:
    """Registering, or changing to, an account's nick without being logged
    in to it is 433; logged in, it is the client's."""
    chat = chatWithAccounts(tmp_path)
    client = chat.connect()
    client.send("NICK Alice", "USER a 0 * :A")
    (line,) = client.lines()
    assert " 433 * Alice :Nickname is reserved by the account alice" in line
    client.send("NICK carol")
    assert "001" in numerics(client.lines())
    client.send("NICK bob")
    assert numerics(client.lines()) == ["433"]


def test_pass_logs_in(tmp_path: Path) -> None:
    """PASS account:password logs in at registration; PASS alone uses the
    nick as the account; a wrong one is 464 and closes."""
    chat = chatWithAccounts(tmp_path)
    client = chat.connect()
    client.send("PASS alice:wonderland", "NICK alice", "USER a 0 * :A")
    assert numerics(client.lines())[:2] == ["900", "001"]
    bob = chat.connect()
    bob.send("PASS builder1", "NICK bob", "USER b 0 * :B")
    assert numerics(bob.lines())[:2] == ["900", "001"]
    wrong = chat.connect()
    wrong.send("PASS bob:nope", "NICK carol", "USER c 0 * :C")
    lines = wrong.lines()
    assert numerics(lines)[0] == "464"
    assert lines[-1] == "ERROR :Closing link: wrong name or password"
    assert wrong.closed
    assert chat.chat.service is not None
    assert chat.chat.service.people.find("carol") is None


def test_logged_in_after_registration_takes_the_name(tmp_path: Path) -> None:
    """SASL after registration logs in too, and renames the client to its
    account's nick."""
    chat = chatWithAccounts(tmp_path)
    client = chat.user("someone", "sasl")
    client.send("AUTHENTICATE PLAIN", f"AUTHENTICATE {plain('', 'bob', 'builder1')}")
    lines = client.lines()
    assert lines[0] == "AUTHENTICATE +"
    assert numerics(lines[1:3]) == ["900", "903"]
    assert any(line.startswith(":someone!") and " NICK " in line for line in lines)


def test_require_login_on_irc(tmp_path: Path) -> None:
    """With --require-login an IRC client that registers without logging in
    is told how and closed; one logged in with SASL registers."""
    chat = chatWithAccounts(tmp_path, requireLogin=True)
    guest: Client = chat.connect()
    guest.send("NICK carol", "USER c 0 * :C")
    assert guest.lines() == [
        "ERROR :Closing link: this server is for its accounts only: log in with "
        "SASL PLAIN (or PASS account:password)"
    ]
    assert guest.closed
    client = chat.connect()
    client.send("CAP LS 302", "CAP REQ sasl", "NICK bob", "USER b 0 * :B")
    client.send("AUTHENTICATE PLAIN", f"AUTHENTICATE {plain('', 'bob', 'builder1')}")
    client.send("CAP END")
    assert "001" in numerics(client.lines())


def test_a_login_typed_as_a_message_is_not_relayed(tmp_path: Path) -> None:
    """IRC clients send what they do not know as text: a PRIVMSG that looks
    like a login is said to nobody, and the client is told."""
    chat = chatWithAccounts(tmp_path)
    one = chat.user("one")
    two = chat.user("two")
    one.send("JOIN #lab")
    two.send("JOIN #lab")
    one.lines(), two.lines()
    one.send("PRIVMSG #lab :/login bob builder1", "PRIVMSG #lab :hello")
    relayed = two.lines()
    assert [line for line in relayed if "PRIVMSG" in line] == [
        ":one!one@cloak PRIVMSG #lab :hello"
    ]
    told = one.lines()
    assert any("that looks like a login" in line for line in told)
    assert not any("builder1" in line for line in told)

"""
Operators on IRC, on StringTransports and a Clock: KICK, MODE +b/-b/b on
the server's bans, operators shown @ in NAMES, 482 for anyone else.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sockserve.chat.moderation import Ban, Moderation
from sockserve.irc.commands import banMask, banTarget
from tests.test_irc import Chat, Client
from tests.test_irc_logins import chatWithAccounts


def moderated(tmp_path: Path) -> tuple[Chat, Moderation]:
    chat = chatWithAccounts(tmp_path)
    service = chat.chat.service
    assert service is not None
    moderation = Moderation(chat.clock)
    service.useModeration(moderation)
    return chat, moderation


def logged(chat: Chat, nick: str, password: str) -> Client:
    client = chat.connect()
    client.send(f"PASS {nick}:{password}", f"NICK {nick}", f"USER {nick} 0 * :{nick}")
    assert any(f" 001 {nick} " in line for line in client.lines())
    return client


def inLab(*clients: Client) -> None:
    for client in clients:
        client.send("JOIN #lab")
    for client in clients:
        client.lines()


def test_masks() -> None:
    """NICK!*@* (or NICK) is an account or a guest; *!*@ADDRESS[/BITS] an
    address or a network; any other mask is none."""
    assert banTarget("bob!*@*") == "bob"
    assert banTarget("bob") == "bob"
    assert banTarget("*!*@192.0.2.7") == "192.0.2.7"
    assert banTarget("*!*@2001:db8::/32") == "2001:db8::/32"
    assert banTarget("*@192.0.2.0/24") == "192.0.2.0/24"
    for other in ("b*b!*@*", "*!*@*.example.com", "bob!bob@*", "*!*@*", "*"):
        assert banTarget(other) is None, other
    assert banMask(Ban("bob", "alice")) == "bob!*@*"
    assert banMask(Ban("192.0.2.7/32", "alice")) == "*!*@192.0.2.7"
    assert banMask(Ban("192.0.2.0/24", "alice")) == "*!*@192.0.2.0/24"


def test_kick_by_an_operator(tmp_path: Path) -> None:
    """An operator's KICK #lab nick :reason is sent to everyone in the
    room, the one kicked too, who is out of the room and still connected;
    line clients are told in words; NAMES shows the operator with @."""
    chat, moderation = moderated(tmp_path)
    alice = logged(chat, "alice", "wonderland")
    carol = chat.user("carol")
    dave = chat.user("dave")
    inLab(alice, carol, dave)
    line = chat.line()
    line.lines()
    line.send("/join lab")
    line.lines()
    alice.lines(), carol.lines(), dave.lines()
    alice.send("NAMES #lab")
    assert alice.lines()[0] == ":irc.test 353 alice = #lab :@alice carol dave guest1"
    alice.send("KICK #lab dave :too loud")
    kick = ":alice!alice@cloak KICK #lab dave :too loud"
    assert alice.lines() == [kick]
    assert carol.lines() == [kick]
    assert dave.lines() == [kick]
    assert line.lines() == ["* dave was kicked from #lab by alice: too loud"]
    assert not dave.closed
    dave.send("PRIVMSG #lab :still here?")
    assert dave.codes() == ["404"]
    alice.send("KICK #lab dave", "KICK #lab,#lab carol,nobody")
    assert alice.lines() == [
        ":irc.test 441 alice dave #lab :They aren't on that channel",
        ":alice!alice@cloak KICK #lab carol",
        ":irc.test 441 alice nobody #lab :They aren't on that channel",
    ]
    assert moderation.counts["kick"] == 2
    line.lines()
    alice.send("KICK #lab guest1 :bye")
    assert line.lines() == ["* you were kicked from #lab by alice: bye"]
    line.send("hello?")
    assert line.lines() == ["ERROR you are in no room: /join one"]


def test_not_an_operator(tmp_path: Path) -> None:
    """KICK and MODE +b from a member that is no operator are 482, as
    they are logged in or not."""
    chat, _ = moderated(tmp_path)
    bob = logged(chat, "bob", "builder1")
    carol = chat.user("carol")
    inLab(bob, carol)
    for client, nick in ((bob, "bob"), (carol, "carol")):
        client.send("KICK #lab bob", "MODE #lab +b bob!*@*", "MODE #lab -b x")
        refused = f":irc.test 482 {nick} #lab :You're not channel operator"
        assert client.lines() == [refused, refused, refused]
    assert not bob.closed


def test_ban_masks_on_irc(tmp_path: Path) -> None:
    """MODE #lab +b bob!*@* bans the account bob (whoever is logged in to
    it is closed, told why); +b *!*@NETWORK bans a network; MODE #lab b
    lists the server's bans (367, 368); -b lifts one."""
    chat, moderation = moderated(tmp_path)
    alice = logged(chat, "alice", "wonderland")
    bob = logged(chat, "bob", "builder1")
    inLab(alice, bob)
    chat.clock.advance(5)
    alice.send("MODE #lab +b bob!*@*")
    lines = alice.lines()
    assert ":alice!alice@cloak MODE #lab +b bob!*@*" in lines
    assert bob.lines()[-1] == ("ERROR :you are banned from this server until lifted")
    assert bob.closed
    alice.send("MODE #lab +b *!*@192.0.2.0/24", "MODE #lab b")
    lines = alice.lines()
    assert lines[:2] == [
        ":irc.test NOTICE alice :banned 192.0.2.0/24 until lifted",
        ":alice!alice@cloak MODE #lab +b *!*@192.0.2.0/24",
    ]
    at = str(int(chat.clock.seconds()))
    assert lines[-3:] == [
        f":irc.test 367 alice #lab bob!*@* alice {at}",
        f":irc.test 367 alice #lab *!*@192.0.2.0/24 alice {at}",
        ":irc.test 368 alice #lab :End of channel ban list",
    ]
    alice.send("MODE #lab -b *!*@192.0.2.0/24", "MODE #lab +b *!*@*.example")
    lines = alice.lines()
    assert ":alice!alice@cloak MODE #lab -b *!*@192.0.2.0/24" in lines
    assert lines[-1].startswith(":irc.test 472 alice b :A ban mask here is")
    assert [ban.what for ban in moderation.bans()] == ["bob"]


@pytest.mark.parametrize("command", ["KICK #lab alice", "MODE #lab +b x!*@*"])
def test_without_accounts_nobody_is_an_operator(command: str) -> None:
    """Without accounts, KICK and MODE +b are refused as before."""
    chat = Chat()
    alice = chat.user("alice")
    inLab(alice)
    alice.send(command)
    assert alice.lines() == [
        ":irc.test 482 alice #lab :There are no channel operators here"
    ]


def test_a_client_connected_before_a_ban_cannot_register(tmp_path: Path) -> None:
    """An IRC client from an address banned after it connected, before it
    registered, is refused when it registers; a line client logging in
    from it (under --require-login) is refused too."""
    chat, moderation = moderated(tmp_path)
    early = chat.connect()
    moderation.ban("127.0.0.1", "alice")
    early.send("NICK dave", "USER dave 0 * :D")
    assert early.lines() == [
        "ERROR :Closing link: connections from 127.0.0.1/32 are banned until lifted"
    ]
    assert early.closed


def test_the_ban_list_is_for_operators(tmp_path: Path) -> None:
    """MODE #lab b lists the bans to an operator only (as /bans does): the
    addresses banned (a guest's own, when banned by its nick) are not shown
    to anyone else, whose hosts IRC never shows; they get an empty list
    (368), which is what an IRC client asks on joining."""
    chat, moderation = moderated(tmp_path)
    moderation.ban("192.0.2.7", "alice")
    alice = logged(chat, "alice", "wonderland")
    bob = logged(chat, "bob", "builder1")
    carol = chat.user("carol")
    inLab(alice, bob, carol)
    for client, nick in ((bob, "bob"), (carol, "carol")):
        client.send("MODE #lab b", "MODE #lab +b")
        end = f":irc.test 368 {nick} #lab :End of channel ban list"
        assert client.lines() == [end, end]
    alice.send("MODE #lab b")
    assert alice.lines() == [
        f":irc.test 367 alice #lab *!*@192.0.2.7 alice {int(chat.clock.seconds())}",
        ":irc.test 368 alice #lab :End of channel ban list",
    ]

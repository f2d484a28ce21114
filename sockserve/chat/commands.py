"""
The slash commands line clients type, in one table that also writes
C{/help}.

Each command turns what the member typed into one of the session's intents
(L{sockserve.chat.session.ChatSession}: join, part, rename, message a
person, ...). Other front ends call the intents themselves (an IRC client's
C{JOIN} is the session's L{join<sockserve.chat.session.ChatSession.join>});
only line clients speak in slashes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from twisted.internet.defer import Deferred

if TYPE_CHECKING:
    from sockserve.chat.session import ChatSession


@dataclass(frozen=True)
class Command:
    """
    A slash command.

    @ivar name: what is typed, C{/nick}.
    @ivar usage: its arguments, as C{/help} shows them (C{NAME}).
    @ivar summary: what it does, as C{/help} shows it.
    @ivar run: what it does, given the session and the argument (what
        follows the name and one space, as UTF-8 text).
    @ivar says: whether it says something (to a room, or a person): it is
        then paced as lines are (by the flood limit), not as commands.
    @ivar accounts: whether it is about accounts (C{/help} shows it only
        on a server that has them).
    @ivar operators: whether it is for operators (C{/help} shows it only
        to them).
    """

    name: str
    usage: str
    summary: str
    run: Callable[[ChatSession, str], Deferred[None] | None]
    says: bool = False
    accounts: bool = False
    operators: bool = False


def _nick(session: ChatSession, argument: str) -> Deferred[None] | None:
    return session.rename(argument.strip())


def _join(session: ChatSession, argument: str) -> Deferred[None] | None:
    return session.join(argument.strip())


def _part(session: ChatSession, argument: str) -> Deferred[None] | None:
    room, _, reason = argument.strip().partition(" ")
    return session.part(room or None, reason)


def _rooms(session: ChatSession, argument: str) -> Deferred[None] | None:
    return session.listRooms()


def _who(session: ChatSession, argument: str) -> Deferred[None] | None:
    return session.who(argument.strip() or None)


def _msg(session: ChatSession, argument: str) -> Deferred[None] | None:
    recipient, _, text = argument.strip().partition(" ")
    return session.message(recipient, text.lstrip(" "))


def _topic(
    session: ChatSession, argument: str, room: str | None = None
) -> Deferred[None] | None:
    text = argument.strip()
    if text == "-":
        # Clear it (IRC's TOPIC #room :).
        return session.topic(room, "")
    return session.topic(room, text or None)


def _me(
    session: ChatSession, argument: str, room: str | None = None
) -> Deferred[None] | None:
    return session.act(argument.strip(), room)


# What /say ROOM may be followed by besides a line: the commands that act in
# a room, so that a client in several rooms (the page) names the room each
# time rather than rely on which one the server takes for the current one.
_IN_A_ROOM = {"/me": _me, "/topic": _topic}


def _say(session: ChatSession, argument: str) -> Deferred[None] | None:
    room, _, text = argument.strip().partition(" ")
    text = text.lstrip(" ")
    if text.startswith("/") and not text.startswith("//"):
        name, _, rest = text.partition(" ")
        command = _IN_A_ROOM.get(name)
        if command is not None:
            return command(session, rest, room)
    elif text.startswith("//"):
        text = text[1:]
    return session.sayIn(room, text)


def _login(session: ChatSession, argument: str) -> Deferred[None] | None:
    # The password is what follows the name and one space, as typed (it may
    # hold spaces); never shown, logged or said.
    name, _, password = argument.lstrip(" ").partition(" ")
    return session.logIn(name, password.rstrip("\r"))


def _logout(session: ChatSession, argument: str) -> Deferred[None] | None:
    return session.logOut()


def _kick(session: ChatSession, argument: str) -> Deferred[None] | None:
    name, _, reason = argument.strip().partition(" ")
    session.kick(name, reason)
    return None


def _ban(session: ChatSession, argument: str) -> Deferred[None] | None:
    session.ban(argument)
    return None


def _unban(session: ChatSession, argument: str) -> Deferred[None] | None:
    session.unban(argument.strip())
    return None


def _bans(session: ChatSession, argument: str) -> Deferred[None] | None:
    session.listBans()
    return None


def _mute(session: ChatSession, argument: str) -> Deferred[None] | None:
    session.mute(argument)
    return None


def _unmute(session: ChatSession, argument: str) -> Deferred[None] | None:
    session.unmute(argument.strip())
    return None


def _quit(session: ChatSession, argument: str) -> Deferred[None] | None:
    session.quit("bye", argument)
    return None


def _help(session: ChatSession, argument: str) -> Deferred[None] | None:
    account = session.account
    session.tell(
        helpText(
            session.service.logins is not None,
            account is not None and account.isOperator,
        )
    )
    return None


COMMANDS: tuple[Command, ...] = (
    Command("/nick", "NAME", "change your name", _nick),
    Command("/join", "ROOM", "go to ROOM (made if there is none)", _join),
    Command(
        "/part",
        "[ROOM [WHY]]",
        "leave ROOM, or this room for the default one",
        _part,
    ),
    Command("/rooms", "", "list the rooms and who is in each", _rooms),
    Command("/who", "[ROOM]", "list who is here (or in ROOM)", _who),
    Command(
        "/topic", "[TEXT|-]", "show this room's topic, set it, or clear it", _topic
    ),
    Command("/msg", "NAME TEXT", "say TEXT to NAME alone", _msg, says=True),
    Command("/me", "ACTION", "act: /me waves shows * NAME waves", _me, says=True),
    Command(
        "/say",
        "ROOM TEXT",
        "say TEXT in ROOM (one of yours; TEXT may be /me or /topic)",
        _say,
        says=True,
    ),
    Command("/login", "NAME PASSWORD", "log in to your account", _login, accounts=True),
    Command("/logout", "", "log out of your account", _logout, accounts=True),
    Command(
        "/kick",
        "NAME [WHY]",
        "close NAME's connections, telling them WHY",
        _kick,
        operators=True,
    ),
    Command(
        "/ban",
        "WHAT [TIME] [WHY]",
        "ban an account, address or network (TIME: 30s 10m 2h 7d)",
        _ban,
        operators=True,
    ),
    Command("/unban", "WHAT", "lift a ban", _unban, operators=True),
    Command(
        "/bans", "", "list the bans and mutes, with time left", _bans, operators=True
    ),
    Command(
        "/mute",
        "NAME [TIME]",
        "refuse what NAME says (TIME: 30s 10m 2h 7d)",
        _mute,
        operators=True,
    ),
    Command("/unmute", "NAME", "lift a mute", _unmute, operators=True),
    Command("/quit", "[WHY]", "leave (telling the others WHY)", _quit),
    Command("/help", "", "show this help", _help),
)

BY_NAME: dict[bytes, Command] = {
    command.name.encode("ascii"): command for command in COMMANDS
}


def helpText(accounts: bool = False, operators: bool = False) -> str:
    """
    The answer to C{/help}: every command (those about accounts only if
    there are C{accounts}, those of operators only to C{operators}), its
    arguments and what it does, in aligned columns, and how to send a line
    that starts with C{/}.
    """
    rows = [
        (f"{c.name} {c.usage}".rstrip(), c.summary)
        for c in COMMANDS
        if (accounts or not c.accounts) and (operators or not c.operators)
    ]
    rows.append(("//text", "send a line that starts with /"))
    width = max(len(left) for left, _ in rows) + 2
    return "\n".join(left.ljust(width) + right for left, right in rows)

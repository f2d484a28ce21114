"""
Registering an IRC client: capability negotiation (IRCv3 C{CAP}), C{PASS},
C{NICK} and C{USER}, and the greeting once the session has a name
(C{001} to C{005}, C{LUSERS}, the message of the day), as
modern.ircdocs.horse's "Connection Registration" orders them.

Registration waits for C{CAP END} once C{CAP} began (WeeChat sends C{NICK}
and C{USER} while it negotiates), answers C{451} to anything else before it
(irssi sends an empty C{JOIN} to learn whether the server knows C{CAP}), and
lets a client try another nickname after C{433}.
"""

from __future__ import annotations

import hmac
import time
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from sockserve._text import safeText
from sockserve._version import __version__
from sockserve.chat.events import OWN_NAME
from sockserve.chat.names import MAX_NAME_LENGTH, NameRejected, checkName
from sockserve.chat.service import ServiceClosed
from sockserve.chat.session import SessionState
from sockserve.irc.grammar import IRCMessage, formatLine
from sockserve.irc.wire import IRCWire

if TYPE_CHECKING:
    from sockserve.irc.protocol import IRCProtocol

# The capabilities offered (IRCv3). message-tags: tags are read (and not
# relayed); multi-prefix: there are no channel prefixes to list;
# cap-notify: the list never changes.
CAPABILITIES = (
    "batch",
    "cap-notify",
    "echo-message",
    "message-tags",
    "multi-prefix",
    "server-time",
)


class Registration:
    """
    An IRC client's registration, and the capabilities it enabled.

    @ivar irc: the client.
    @ivar caps: the capabilities it enabled.
    @ivar nick: the nickname it asked for, until registered.
    @ivar user: what C{USER} gave: the user name and the real name.
    @ivar password: what C{PASS} gave, if anything: the server's password
        (C{--irc-password-file}) if it has one.
    @ivar negotiating: whether capability negotiation holds registration.
    @ivar registering: whether the service is considering its nickname.
    """

    def __init__(self, irc: IRCProtocol) -> None:
        self.irc = irc
        self.caps: set[str] = set()
        self.nick: str | None = None
        self.user: tuple[str, str] | None = None
        self.password: str | None = None
        self.negotiating = False
        self.registering = False

    def irc_CAP(self, message: IRCMessage, bulk: bool) -> Deferred[Any] | None:
        """
        Capability negotiation (IRCv3): C{LS}, C{LIST}, C{REQ}, C{END}.
        """
        if not message.params:
            self.irc.write(self.irc.numeric("461", "CAP", text="Not enough parameters"))
            return None
        command = message.params[0].upper()
        me = self.irc.me().decode("utf-8")
        registered = self.irc.session.state is SessionState.PRESENT
        if command == "LS":
            if not registered:
                self.negotiating = True
            self.irc.write(
                formatLine(
                    self.irc.settings.server, "CAP", me, "LS", " ".join(CAPABILITIES)
                )
            )
        elif command == "LIST":
            self.irc.write(
                formatLine(
                    self.irc.settings.server,
                    "CAP",
                    me,
                    "LIST",
                    " ".join(sorted(self.caps)),
                )
            )
        elif command == "REQ":
            if not registered:
                self.negotiating = True
            wanted = message.params[1] if len(message.params) > 1 else ""
            self._request(wanted, me)
        elif command == "END":
            if self.negotiating:
                self.negotiating = False
                return self._register()
        else:
            self.irc.write(self.irc.numeric("410", command, text="Invalid CAP command"))
        return None

    def _request(self, wanted: str, me: str) -> None:
        names = wanted.split()
        adding = {name for name in names if not name.startswith("-")}
        removing = {name[1:] for name in names if name.startswith("-")}
        if not names or not (adding | removing) <= set(CAPABILITIES):
            self.irc.write(
                formatLine(self.irc.settings.server, "CAP", me, "NAK", wanted)
            )
            return
        self.caps = (self.caps | adding) - removing
        self.irc.session.wire = self.irc.currentWire()
        self.irc.write(formatLine(self.irc.settings.server, "CAP", me, "ACK", wanted))

    def irc_PASS(self, message: IRCMessage, bulk: bool) -> None:
        """
        The connection password (C{--irc-password-file}), checked once the
        client registers (accounts, with their own logins, come later);
        once registered, C{462}.
        """
        if self.irc.session.state is SessionState.PRESENT:
            self.irc.write(self.irc.numeric("462", text="You may not reregister"))
            return
        if not message.params:
            self.irc.write(
                self.irc.numeric("461", "PASS", text="Not enough parameters")
            )
            return
        self.password = message.params[0]

    def irc_USER(self, message: IRCMessage, bulk: bool) -> Deferred[Any] | None:
        """
        C{USER name mode unused :real name}.
        """
        if self.irc.session.state is SessionState.PRESENT:
            self.irc.write(self.irc.numeric("462", text="You may not reregister"))
            return None
        if len(message.params) < 4 or not message.params[0]:
            self.irc.write(
                self.irc.numeric("461", "USER", text="Not enough parameters")
            )
            return None
        self.user = (message.params[0][:MAX_NAME_LENGTH], message.params[3][:200])
        return self._register()

    def irc_NICK(self, message: IRCMessage, bulk: bool) -> Deferred[Any] | None:
        """
        C{NICK name}: the nickname to register under, or a change of name.
        """
        if not message.params or not message.params[0]:
            self.irc.write(self.irc.numeric("431", text="No nickname given"))
            return None
        wanted = message.params[0]
        if self.irc.session.state is SessionState.PRESENT:
            return self.irc.session.rename(wanted)
        try:
            checkName(wanted)
        except NameRejected as rejected:
            shown = safeText(wanted.encode("utf-8")).decode("utf-8")[:40]
            self.irc.write(self.irc.numeric("432", shown, text=str(rejected)))
            return None
        self.nick = wanted
        return self._register()

    def _register(self) -> Deferred[Any] | None:
        """
        Register, once the client gave a nickname and C{USER} and ended
        capability negotiation if it began one.
        """
        if (
            self.nick is None
            or self.user is None
            or self.negotiating
            or self.registering
            or self.irc.session.state is SessionState.PRESENT
        ):
            return None
        if not self._passwordGiven():
            return None
        self.registering = True
        wanted = self.nick

        def registered(name: str) -> None:
            self.registering = False
            self.irc.registered()

        def refused(failure: Failure) -> None:
            self.registering = False
            rejected = failure.value
            if isinstance(rejected, NameRejected):
                code = "433" if rejected.taken else "432"
                self.irc.write(self.irc.numeric(code, wanted, text=str(rejected)))
                self.nick = None
                return
            if failure.check(ServiceClosed):
                self.irc.refuse("Closing link: the server is shutting down", "shutdown")
                return
            self.irc.log.failure("Could not register {nick}", failure, nick=wanted)
            self.irc.refuse(
                "Closing link: the chat is unavailable; try again later", "unavailable"
            )

        return self.irc.session.register(wanted, self.greeting).addCallbacks(
            registered, refused
        )

    def _passwordGiven(self) -> bool:
        """
        Tell whether the client gave the server's password, if it has one;
        if not, refuse it: C{464}, then an C{ERROR} line and close (counted
        and logged as a refusal, C{bad_password}).
        """
        expected = self.irc.settings.password
        if expected is None:
            return True
        given = self.password
        if given is not None and hmac.compare_digest(
            given.encode("utf-8"), expected.encode("utf-8")
        ):
            return True
        self.irc.write(self.irc.numeric("464", text="Password incorrect"))
        why = "no password (PASS)" if given is None else "wrong password (PASS)"
        self.irc.refuse(f"Closing link: {why}", "bad_password")
        return False

    def greeting(self, name: str) -> bytes:
        """
        What a client is told once registered as C{name}: C{001} to C{005},
        C{LUSERS}, the message of the day.
        """
        settings = self.irc.settings
        server = settings.server
        wire = self.irc.currentWire()
        created = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(settings.started))
        isupport = settings.isupport()
        lines = [
            wire.numeric(
                "001",
                text=f"Welcome to the {settings.network} IRC network, {name} "
                f"(you are connected from {self.irc.peer})",
            ),
            wire.numeric(
                "002", text=f"Your host is {server}, running sockserve {__version__}"
            ),
            wire.numeric("003", text=f"This server was created {created}"),
            wire.numeric("004", server, f"sockserve-{__version__}", "i", "bn", "b"),
        ]
        for start in range(0, len(isupport), 12):
            lines.append(
                wire.numeric(
                    "005",
                    *isupport[start : start + 12],
                    text="are supported by this server",
                )
            )
        lines.append(self.lusers(wire))
        lines.append(self.motd(wire))
        return b"".join(lines).replace(OWN_NAME, name.encode("utf-8"))

    def lusers(self, wire: IRCWire) -> bytes:
        """
        C{251}, C{254}, C{255}: how many people and rooms.
        """
        service = self.irc.settings.service
        people = service.people.population
        rooms = service.roomCount()
        return (
            wire.numeric(
                "251", text=f"There are {people} users and 0 invisible on 1 servers"
            )
            + wire.numeric("254", str(rooms), text="channels formed")
            + wire.numeric("255", text=f"I have {people} clients and 1 servers")
        )

    def motd(self, wire: IRCWire) -> bytes:
        """
        The message of the day, or C{422} without one.
        """
        motd = self.irc.settings.motd
        if not motd:
            return wire.numeric("422", text="MOTD File is missing")
        lines = motd.replace("\r\n", "\n").split("\n")
        return (
            wire.numeric(
                "375", text=f"- {self.irc.settings.server} Message of the day - "
            )
            + b"".join(wire.numeric("372", text="- " + line) for line in lines)
            + wire.numeric("376", text="End of /MOTD command.")
        )

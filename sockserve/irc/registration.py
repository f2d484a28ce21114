"""
Registering an IRC client: capability negotiation (IRCv3 C{CAP}), C{PASS},
C{NICK} and C{USER}, and the greeting once the session has a name
(C{001} to C{005}, C{LUSERS}, the message of the day), as
modern.ircdocs.horse's "Connection Registration" orders them.

Registration waits for C{CAP END} once C{CAP} began (WeeChat sends C{NICK}
and C{USER} while it negotiates), answers C{451} to anything else before it
(irssi sends an empty C{JOIN} to learn whether the server knows C{CAP}), and
lets a client try another nickname after C{433}.

With accounts (C{--accounts}) a client logs in as IRC clients do: SASL
C{PLAIN} (IRCv3's C{sasl} capability, offered only then; C{AUTHENTICATE};
C{900}, C{903} to C{908}), or C{PASS} (L{Registration._passwordLogin}: Ergo's
convention, C{PASS account:password}, or the password alone with the
nickname as the account). Registration waits for a login under way before
C{001}, through the client's input queue; a nickname that belongs to an
account the client is not logged in to is C{433}.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import time
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from sockserve._text import safeText
from sockserve._version import __version__
from sockserve.chat.events import OWN_NAME
from sockserve.chat.login import LoginRefused
from sockserve.chat.moderation import Banned
from sockserve.chat.names import (
    MAX_NAME_LENGTH,
    NameRejected,
    NameReserved,
    checkName,
)
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
# Offered with accounts: SASL, with the one mechanism there is.
SASL = "sasl"
MECHANISMS = "PLAIN"
# SASL's messages come in base64 pieces of at most this many bytes (one of
# exactly this many says more follow).
SASL_CHUNK = 400
# The most base64 one SASL message may take, all pieces together (a name
# and a password of 200 characters each, with room to spare).
SASL_MESSAGE = 3 * SASL_CHUNK


if TYPE_CHECKING:
    from sockserve.accounts.store import Account


class Registration:
    """
    An IRC client's registration, and the capabilities it enabled.

    @ivar irc: the client.
    @ivar caps: the capabilities it enabled.
    @ivar nick: the nickname it asked for, until registered.
    @ivar user: what C{USER} gave: the user name and the real name.
    @ivar password: what C{PASS} gave, if anything: the server's password
        (C{--irc-password-file}) if it has one; else, with accounts, a
        login (see L{_passwordLogin}).
    @ivar negotiating: whether capability negotiation holds registration.
    @ivar registering: whether the service is considering its nickname.
    @ivar sasl: the base64 received so far of a SASL exchange under way
        (after C{AUTHENTICATE PLAIN}), or C{None}.
    @ivar capVersion: the version of C{CAP LS} the client asked for (302:
        capabilities with values).
    """

    def __init__(self, irc: IRCProtocol) -> None:
        self.irc = irc
        self.caps: set[str] = set()
        self.nick: str | None = None
        self.user: tuple[str, str] | None = None
        self.password: str | None = None
        self.serverPasswordChecked = False
        self.negotiating = False
        self.registering = False
        self.sasl: bytes | None = None
        self.capVersion = 0

    @property
    def accounts(self) -> bool:
        """
        Whether the server has accounts (and so offers SASL).
        """
        return self.irc.session.service.logins is not None

    def offered(self) -> tuple[str, ...]:
        """
        The capabilities offered: SASL too with accounts.
        """
        return (*CAPABILITIES, SASL) if self.accounts else CAPABILITIES

    def _listed(self) -> str:
        """
        The capabilities as C{CAP LS} lists them (C{sasl=PLAIN} to a client
        of version 302).
        """
        names = [
            f"{SASL}={MECHANISMS}" if name == SASL and self.capVersion >= 302 else name
            for name in self.offered()
        ]
        return " ".join(names)

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
            version = message.params[1] if len(message.params) > 1 else ""
            if version.isdigit():
                self.capVersion = max(self.capVersion, int(version))
            self.irc.write(
                formatLine(self.irc.settings.server, "CAP", me, "LS", self._listed())
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
            if self.sasl is not None:
                self.sasl = None
                self.irc.write(
                    self.irc.numeric("906", text="SASL authentication aborted")
                )
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
        if not names or not (adding | removing) <= set(self.offered()):
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
        client registers; without one, with accounts, a login (see
        L{_passwordLogin}); once registered, C{462}.
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

    # Logging in: SASL PLAIN, and PASS

    def irc_AUTHENTICATE(self, message: IRCMessage, bulk: bool) -> Deferred[Any] | None:
        """
        SASL (IRCv3): C{AUTHENTICATE PLAIN}, answered C{AUTHENTICATE +};
        then the base64 of C{authzid NUL authcid NUL password} in pieces of
        at most 400 bytes (C{+} for an empty last one); C{*} aborts. The
        client's input waits while the password is checked.
        """
        if not self.accounts:
            self.irc.write(
                self.irc.numeric("421", "AUTHENTICATE", text="Unknown command")
            )
            return None
        if not message.params or not message.params[0]:
            self.irc.write(
                self.irc.numeric("461", "AUTHENTICATE", text="Not enough parameters")
            )
            return None
        argument = message.params[0]
        if self.irc.session.account is not None:
            self.sasl = None
            self.irc.write(
                self.irc.numeric(
                    "907", text="You have already authenticated using SASL"
                )
            )
            return None
        if self.sasl is None:
            if argument.upper() != MECHANISMS:
                self.irc.write(
                    self.irc.numeric(
                        "908", MECHANISMS, text="are available SASL mechanisms"
                    )
                    + self.irc.numeric("904", text="SASL authentication failed")
                )
                return None
            self.sasl = b""
            self.irc.write(formatLine(None, "AUTHENTICATE", "+"))
            return None
        if argument == "*":
            self.sasl = None
            self.irc.write(self.irc.numeric("906", text="SASL authentication aborted"))
            return None
        piece = argument.encode("ascii", "replace")
        if len(piece) > SASL_CHUNK or len(self.sasl) + len(piece) > SASL_MESSAGE:
            self.sasl = None
            self.irc.write(self.irc.numeric("905", text="SASL message too long"))
            return None
        if piece != b"+":
            self.sasl += piece
        if len(piece) == SASL_CHUNK:
            return None
        encoded, self.sasl = self.sasl, None
        try:
            decoded = base64.b64decode(encoded, validate=True)
            authorize, name, password = decoded.decode("utf-8").split("\0")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            self.irc.write(self.irc.numeric("904", text="SASL authentication failed"))
            return None
        if authorize and authorize != name:
            # Nobody logs in as someone else.
            self.irc.write(self.irc.numeric("904", text="SASL authentication failed"))
            return None
        checking = self.irc.session.authenticate(name, password)
        return checking.addCallbacks(self._saslSucceeded, self._saslFailed)

    def _saslSucceeded(self, account: Account) -> Deferred[Any] | None:
        if self.irc.closing:
            return None
        self._tellLoggedIn(account)
        self.irc.write(self.irc.numeric("903", text="SASL authentication successful"))
        return self.irc.session.loggedIn(account)

    def _saslFailed(self, failure: Failure) -> None:
        if self.irc.closing:
            return
        refused = failure.value
        if isinstance(refused, LoginRefused):
            if refused.result != "failed":
                self.irc.write(self.irc.notice(str(refused)))
        else:
            self.irc.log.failure("Could not check a login", failure)
        self.irc.write(self.irc.numeric("904", text="SASL authentication failed"))

    def _tellLoggedIn(self, account: Account) -> None:
        """
        C{900}: the client is logged in to C{account}.
        """
        nick = self.irc.session.name or self.nick or "*"
        user = self.user[0] if self.user is not None else nick
        self.irc.write(
            self.irc.numeric(
                "900",
                f"{nick}!{user}@{self.irc.settings.server}",
                account.name,
                text=f"You are now logged in as {account.name}",
            )
        )

    def _passwordLogin(self) -> Deferred[Any] | None:
        """
        Log in with what C{PASS} gave, at registration, if the server has
        accounts and the client did not log in with SASL: Ergo's
        convention, C{PASS account:password}, or the password alone with
        the nickname as the account. A wrong one is C{464} and closes (a
        client that sends a password expects to be logged in).

        (With a server password, C{--irc-password-file}, C{PASS} is that
        password instead, and accounts log in with SASL: this is the one
        place that reads C{PASS} for an account.)

        @return: what registration waits for, or C{None} if there is no
            login to try.
        """
        password, self.password = self.password, None
        if password is None or not self.accounts or self.irc.session.account:
            return None
        account, colon, secret = password.partition(":")
        if not colon:
            account, secret = self.nick or "", password
        checking = self.irc.session.authenticate(account, secret)

        def succeeded(logged: Account) -> Deferred[Any] | None:
            if self.irc.closing:
                return None
            self._tellLoggedIn(logged)
            self.irc.session.loggedIn(logged)
            return self._register()

        def failed(failure: Failure) -> None:
            if self.irc.closing:
                return
            reason = "wrong name or password"
            if failure.check(LoginRefused):
                reason = str(failure.value)
            else:
                self.irc.log.failure("Could not check a login", failure)
            self.irc.write(self.irc.numeric("464", text="Password incorrect"))
            self.irc.refuse(f"Closing link: {reason}", "login_failed")

        return checking.addCallbacks(succeeded, failed)

    def _register(self) -> Deferred[Any] | None:
        """
        Register, once the client gave a nickname and C{USER} and ended
        capability negotiation if it began one (logging in first with what
        C{PASS} gave, if anything).
        """
        if (
            self.nick is None
            or self.user is None
            or self.negotiating
            or self.registering
            or self.irc.session.state is SessionState.PRESENT
        ):
            return None
        if not self.serverPasswordChecked:
            if not self._passwordGiven():
                return None
            self.serverPasswordChecked = True
            if self.irc.settings.password is not None:
                # PASS was the server's password: accounts log in with SASL.
                self.password = None
        logging = self._passwordLogin()
        if logging is not None:
            return logging
        logins = self.irc.session.service.logins
        if (
            logins is not None
            and logins.rules.requireLogin
            and self.irc.session.account is None
        ):
            self.irc.refuse(
                "Closing link: this server is for its accounts only: log in with "
                "SASL PLAIN (or PASS account:password)",
                "login_required",
            )
            return None
        self.registering = True
        wanted = self.nick

        def registered(name: str) -> None:
            self.registering = False
            self.irc.registered()

        def refused(failure: Failure) -> None:
            self.registering = False
            rejected = failure.value
            if isinstance(rejected, NameReserved):
                self.irc.write(
                    self.irc.numeric(
                        "433",
                        wanted,
                        text=f"Nickname is reserved by the account {rejected.account}: "
                        "log in with SASL or PASS account:password",
                    )
                )
                self.nick = None
                return
            if isinstance(rejected, NameRejected):
                code = "433" if rejected.taken else "432"
                self.irc.write(self.irc.numeric(code, wanted, text=str(rejected)))
                self.nick = None
                return
            if failure.check(ServiceClosed):
                self.irc.refuse("Closing link: the server is shutting down", "shutdown")
                return
            if failure.check(Banned):
                self.irc.refuse(f"Closing link: {failure.value}", "banned")
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

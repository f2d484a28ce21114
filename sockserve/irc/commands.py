"""
What a registered IRC client asks for, as the session's intents: C{JOIN} is
L{ChatSession.join<sockserve.chat.session.ChatSession.join>}, C{PRIVMSG
#room} is C{say}, C{PRIVMSG nick} is C{message}; and what it asks of the
server (C{NAMES}, C{WHO}, C{WHOIS}, C{LIST}, C{MODE}, C{TOPIC}, ...),
answered with the numerics irssi and WeeChat wait for before they call a
channel synced.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred

from sockserve._text import safeText
from sockserve._version import __version__
from sockserve.chat.events import ACTION, NOTICE, Message
from sockserve.chat.moderation import Ban, parseNetwork
from sockserve.chat.names import nameKey, roomKey
from sockserve.chat.room import ChatRoom
from sockserve.chat.session import SessionState, pending
from sockserve.irc.grammar import IRCMessage, formatLine, withoutFormatting

if TYPE_CHECKING:
    from sockserve.irc.protocol import IRCProtocol

# Targets one JOIN or PART may name.
MAX_TARGETS = 4


def banTarget(mask: str) -> str | None:
    """
    What the ban mask C{mask} (of C{MODE #room +b mask}) bans, as C{/ban}
    reads it: C{*!*@ADDRESS} or C{*!*@NETWORK} (also C{*@...}) an address
    or a network; C{NICK!*@*} (or C{NICK}) the account C{NICK}, or the
    address of the guest called so. C{None} for any other mask (wildcards
    within a part): bans here are of accounts and addresses only.
    """
    nick, bang, rest = mask.partition("!")
    if not bang:
        nick, at, host = mask.partition("@")
        if at:
            return host if nick == "*" and parseNetwork(host) is not None else None
        return nick if nick and not set(nick) & set("*?") else None
    user, at, host = rest.partition("@")
    if nick == "*" and user == "*" and at and parseNetwork(host) is not None:
        return host
    if nick and not set(nick) & set("*?") and user in ("*", "") and host in ("*", ""):
        return nick
    return None


def banMask(ban: Ban) -> str:
    """
    The mask that shows C{ban} to IRC clients: C{bob!*@*} for the account
    C{bob}, C{*!*@192.0.2.0/24} for a network (C{*!*@192.0.2.7} for an
    address).
    """
    network = ban.network
    if network is None:
        return f"{ban.what}!*@*"
    if network.num_addresses == 1:
        return f"*!*@{network.network_address}"
    return f"*!*@{network}"


class Commands:
    """
    The commands of a registered IRC client (and C{PING}, C{PONG} and
    C{QUIT}, which come at any time).

    @ivar irc: the client.
    @ivar away: its away message, if it is away.
    """

    def __init__(self, irc: IRCProtocol) -> None:
        self.irc = irc
        self.away: str | None = None

    def irc_PING(self, message: IRCMessage, bulk: bool) -> None:
        """
        C{PING token}: C{PONG server :token}.
        """
        if not message.params:
            self.irc.write(self.irc.numeric("409", text="No origin specified"))
            return
        server = self.irc.settings.server
        self.irc.write(formatLine(server, "PONG", server, message.params[-1]))

    def irc_PONG(self, message: IRCMessage, bulk: bool) -> None:
        """
        The answer to our C{PING}: the client is there (any input says so).
        """

    def irc_QUIT(self, message: IRCMessage, bulk: bool) -> None:
        """
        C{QUIT [:reason]}: leave (the others told the reason), with an
        C{ERROR} line as IRC servers do.
        """
        if self.irc.session.state is not SessionState.PRESENT:
            self.irc.sendErrorAndClose("Closing link (quit)")
            return
        self.irc.reply(self.irc.formatError("Closing link (quit)"))
        reason = withoutFormatting(message.params[0]) if message.params else ""
        self.irc.session.quit(reason=reason)

    def _channels(self, text: str) -> list[str]:
        return [name for name in text.split(",") if name][:MAX_TARGETS]

    def _badChannel(self, name: str) -> bytes | None:
        if not name.startswith("#") or len(name) < 2:
            shown = safeText(name.encode("utf-8")).decode("utf-8")[:40]
            return self.irc.numeric("403", shown or "*", text="No such channel")
        return None

    def _each(
        self, items: Sequence[str], do: Callable[[str], Deferred[Any] | None]
    ) -> Deferred[Any] | None:
        """
        C{do} each item in turn; the rest wait for one the service answers
        later.
        """
        for index, item in enumerate(items):
            step = do(item)
            if step is not None and pending(step):
                rest = items[index + 1 :]
                if rest:
                    self.irc.session.input.next(partial(self._each, rest, do))
                return step
        return None

    def irc_JOIN(self, message: IRCMessage, bulk: bool) -> Deferred[Any] | None:
        """
        C{JOIN #a,#b}: join each (C{JOIN 0}: leave them all).
        """
        if not message.params:
            self.irc.write(
                self.irc.numeric("461", "JOIN", text="Not enough parameters")
            )
            return None
        if message.params[0] == "0":
            for room in self.irc.session.rooms:
                self.irc.session.part(room.name)
            return None
        return self._each(self._channels(message.params[0]), self._join)

    def _join(self, channel: str) -> Deferred[Any] | None:
        bad = self._badChannel(channel)
        if bad is not None:
            self.irc.write(bad)
            return None
        return self.irc.session.join(channel)

    def irc_PART(self, message: IRCMessage, bulk: bool) -> None:
        """
        C{PART #a,#b [:reason]}: leave each (the others told the reason).
        """
        if not message.params:
            self.irc.write(
                self.irc.numeric("461", "PART", text="Not enough parameters")
            )
            return
        for channel in self._channels(message.params[0]):
            bad = self._badChannel(channel)
            if bad is not None:
                self.irc.write(bad)
            elif self._myRoom(channel) is None:
                self.irc.write(self._notThere(channel))
            else:
                reason = message.params[1] if len(message.params) > 1 else ""
                self.irc.session.part(channel, withoutFormatting(reason))

    def _myRoom(self, channel: str) -> ChatRoom | None:
        key = roomKey(channel.removeprefix("#"))
        for room in self.irc.session.rooms:
            if room.key == key:
                return room
        return None

    def _knownRoom(self, channel: str) -> ChatRoom | None:
        return self._myRoom(channel) or self.irc.settings.service.room(
            channel.removeprefix("#")
        )

    def irc_NAMES(self, message: IRCMessage, bulk: bool) -> None:
        """
        C{NAMES [#room]}: who is in it (in each of the member's rooms, by
        default).
        """
        wire = self.irc.currentWire()
        if not message.params:
            for room in self.irc.session.rooms:
                self.irc.reply(
                    wire.names("#" + room.name, room.names(), room.operators())
                )
            return
        for channel in self._channels(message.params[0]):
            known = self._knownRoom(channel)
            if known is None:
                self.irc.reply(wire.names(channel, []))
            else:
                self.irc.reply(wire.names(channel, known.names(), known.operators()))

    def irc_WHO(self, message: IRCMessage, bulk: bool) -> None:
        """
        C{WHO #room} (its members) or C{WHO nick}: C{352} each, then
        C{315}.
        """
        mask = message.params[0] if message.params else "*"
        wire = self.irc.currentWire()
        server, host = self.irc.settings.server, self.irc.settings.wires.host
        out = []

        def row(channel: str, name: str) -> None:
            flags = "G" if name == self.irc.session.name and self.away else "H"
            out.append(
                wire.numeric(
                    "352", channel, name, host, server, name, flags, text=f"0 {name}"
                )
            )

        if mask.startswith("#"):
            room = self._knownRoom(mask)
            if room is not None:
                for name in room.names():
                    row("#" + room.name, name)
        else:
            found = self.irc.settings.service.people.holderOf(mask)
            if found is not None:
                row("*", found)
        out.append(wire.numeric("315", mask, text="End of /WHO list"))
        self.irc.reply(b"".join(out))

    def irc_WHOIS(self, message: IRCMessage, bulk: bool) -> None:
        """
        C{WHOIS nick}: C{311}, C{319}, C{312}, C{318} (C{401} for nobody).
        """
        if not message.params:
            self.irc.write(self.irc.numeric("431", text="No nickname given"))
            return
        wanted = message.params[-1].split(",")[0]
        wire = self.irc.currentWire()
        service = self.irc.settings.service
        found = service.people.holderOf(wanted)
        if found is None:
            self.irc.reply(
                wire.numeric("401", wanted, text="No such nick/channel")
                + wire.numeric("318", wanted, text="End of /WHOIS list")
            )
            return
        host = self.irc.settings.wires.host
        rooms = [
            "#" + room.name
            for room in (service.room(name) for name, _ in service.localRooms())
            if room is not None and room.holds(found)
        ]
        out = [wire.numeric("311", found, found, host, "*", text=found)]
        if rooms:
            out.append(wire.numeric("319", found, text=" ".join(rooms)))
        out.append(
            wire.numeric("312", found, self.irc.settings.server, text="sockserve")
        )
        if found == self.irc.session.name and self.away:
            out.append(wire.numeric("301", found, text=self.away))
        out.append(wire.numeric("318", found, text="End of /WHOIS list"))
        self.irc.reply(b"".join(out))

    def irc_LIST(self, message: IRCMessage, bulk: bool) -> Deferred[Any] | None:
        """
        C{LIST}: the rooms and how many are in each.
        """
        return self.irc.session.listRooms()

    def irc_TOPIC(self, message: IRCMessage, bulk: bool) -> None:
        """
        C{TOPIC #room}: its topic (C{332}, C{333}, or C{331}); C{TOPIC #room
        :text}: set it (anyone in a room may; empty: clear it).
        """
        irc = self.irc
        if not message.params:
            irc.write(irc.numeric("461", "TOPIC", text="Not enough parameters"))
            return
        channel = message.params[0]
        room = self._myRoom(channel)
        if room is None:
            irc.write(self._notThere(channel))
            return
        if len(message.params) < 2:
            irc.session.topic(room.name)
            return
        text = withoutFormatting(message.params[1])
        safe = safeText(text.encode("utf-8")).decode("utf-8")
        irc.session.topic(room.name, safe)

    def irc_MODE(self, message: IRCMessage, bulk: bool) -> None:
        """
        C{MODE #room} (C{324}, C{329}), C{MODE #room b} (the server's bans,
        C{367} each, then C{368}), C{MODE #room +b mask} and C{-b mask} (an
        operator's ban, see L{banTarget}), C{MODE nick} (C{221}); no other
        mode can be changed.
        """
        if not message.params:
            self.irc.write(
                self.irc.numeric("461", "MODE", text="Not enough parameters")
            )
            return
        target = message.params[0]
        modes = message.params[1] if len(message.params) > 1 else ""
        if target.startswith("#"):
            room = self._knownRoom(target)
            if room is None:
                self.irc.write(self.irc.numeric("403", target, text="No such channel"))
                return
            channel = "#" + room.name
            if not modes:
                self.irc.write(
                    self.irc.numeric("324", channel, "+n")
                    + self.irc.numeric(
                        "329", channel, str(int(self.irc.settings.started))
                    )
                )
            elif modes.lstrip("+") == "b" and len(message.params) < 3:
                self._banList(channel)
            elif modes in ("+b", "-b") and len(message.params) == 3:
                self._changeBan(channel, modes == "+b", message.params[2])
            else:
                self.irc.write(
                    self.irc.numeric(
                        "482", channel, text="Modes cannot be changed here"
                    )
                )
            return
        if nameKey(target) != nameKey(self.irc.session.name):
            self.irc.write(
                self.irc.numeric("502", text="Cannot change mode for other users")
            )
            return
        if not modes:
            self.irc.write(self.irc.numeric("221", "+"))

    def _banList(self, channel: str) -> None:
        """
        C{367} for each ban of the server (they hold in every room), as
        masks (see L{banTarget}), then C{368}; to an operator only (as
        C{/bans}): the addresses banned are not for anyone else, whose
        hosts IRC never shows. Anyone else is told of none (C{368}).
        """
        moderation = self.irc.settings.service.moderation
        out = []
        if moderation is not None and self.irc.session.isOperator:
            for ban in moderation.bans():
                at = int(ban.at) if ban.at is not None else 0
                out.append(
                    self.irc.numeric("367", channel, banMask(ban), ban.by, str(at))
                )
        out.append(self.irc.numeric("368", channel, text="End of channel ban list"))
        self.irc.write(b"".join(out))

    def _changeBan(self, channel: str, adding: bool, mask: str) -> None:
        """
        C{MODE #room +b mask} or C{-b mask}, from an operator: the ban (of
        the account, the address or the network the mask names) is the
        server's, as C{/ban} and C{/unban} make; the client is shown the
        mode changed.
        """
        session = self.irc.session
        if not session.isOperator:
            self.irc.write(self._notOperator(channel))
            return
        target = banTarget(mask)
        if target is None:
            self.irc.write(
                self.irc.numeric(
                    "472",
                    "b",
                    text="A ban mask here is NICK!*@* (an account, or a guest's "
                    "address) or *!*@ADDRESS[/BITS]",
                )
            )
            return
        changed = session.ban(target) if adding else session.unban(target)
        if changed is not None:
            sign = "+b" if adding else "-b"
            wire = self.irc.currentWire()
            self.irc.write(
                wire.prefix(session.name)
                + formatLine(None, "MODE", channel, sign, banMask(changed))
            )

    def _notOperator(self, channel: str) -> bytes:
        """
        C{482} for a member that is not an operator.
        """
        if self.irc.settings.service.moderation is None:
            return self.irc.numeric(
                "482", channel, text="There are no channel operators here"
            )
        return self.irc.numeric("482", channel, text="You're not channel operator")

    def irc_AWAY(self, message: IRCMessage, bulk: bool) -> None:
        """
        C{AWAY :message} (C{306}) or C{AWAY} (back, C{305}).
        """
        text = message.params[0] if message.params else ""
        if text:
            self.away = safeText(text.encode("utf-8")).decode("utf-8")[:200]
            self.irc.write(
                self.irc.numeric("306", text="You have been marked as being away")
            )
        else:
            self.away = None
            self.irc.write(
                self.irc.numeric("305", text="You are no longer marked as being away")
            )

    def irc_ISON(self, message: IRCMessage, bulk: bool) -> None:
        """
        C{ISON a b c}: which of those are here (C{303}).
        """
        people = self.irc.settings.service.people
        names = " ".join(message.params).split()[:32]
        here = [found for found in map(people.holderOf, names) if found is not None]
        self.irc.write(self.irc.numeric("303", text=" ".join(here)))

    def irc_USERHOST(self, message: IRCMessage, bulk: bool) -> None:
        """
        C{USERHOST a b}: C{302} with C{nick=+nick@host} for those here.
        """
        people = self.irc.settings.service.people
        host = self.irc.settings.wires.host
        found = [people.holderOf(name) for name in message.params[:5]]
        self.irc.write(
            self.irc.numeric(
                "302",
                text=" ".join(f"{name}=+{name}@{host}" for name in found if name),
            )
        )

    def irc_LUSERS(self, message: IRCMessage, bulk: bool) -> None:
        """
        C{LUSERS}: how many people and rooms.
        """
        self.irc.write(self.irc.registration.lusers(self.irc.currentWire()))

    def irc_MOTD(self, message: IRCMessage, bulk: bool) -> None:
        """
        C{MOTD}: the message of the day again.
        """
        self.irc.write(self.irc.registration.motd(self.irc.currentWire()))

    def irc_VERSION(self, message: IRCMessage, bulk: bool) -> None:
        """
        C{VERSION}: C{351}, and C{005} again.
        """
        self.irc.write(
            self.irc.numeric(
                "351",
                f"sockserve-{__version__}",
                self.irc.settings.server,
                text="sockserve",
            )
        )

    def _notThere(self, channel: str) -> bytes:
        """
        C{442} for a room that exists without the member, C{403} for one
        that does not.
        """
        shown = safeText(channel.encode("utf-8")).decode("utf-8")[:40] or "*"
        if channel.startswith("#") and self._knownRoom(channel) is not None:
            return self.irc.numeric("442", shown, text="You're not on that channel")
        return self.irc.numeric("403", shown, text="No such channel")

    def irc_KICK(self, message: IRCMessage, bulk: bool) -> None:
        """
        C{KICK #room nick [:reason]} (or C{KICK #a,#b x,y}, a channel per
        nick, or C{KICK #room x,y}, as RFC 2812 allows): an operator takes
        each out of the room, everyone in it told (C{KICK}), the one kicked
        too (C{441} for one not in it); anyone else is refused in each
        channel (C{482}, once per channel).
        """
        params = message.params
        channels = self._channels(params[0]) if params else []
        nicks = (
            [nick for nick in params[1].split(",") if nick] if len(params) > 1 else []
        )
        if not channels or not nicks or len(channels) not in (1, len(nicks)):
            self.irc.write(
                self.irc.numeric("461", "KICK", text="Not enough parameters")
            )
            return
        reason = withoutFormatting(params[2]) if len(params) > 2 else ""
        reason = safeText(reason.encode("utf-8")).decode("utf-8")
        pairs = zip(
            channels * len(nicks) if len(channels) == 1 else channels,
            nicks,
            strict=True,
        )
        session = self.irc.session
        answered = set()
        for channel, nick in pairs:
            key = roomKey(channel.removeprefix("#"))
            room = self._myRoom(channel)
            if room is not None and session.isOperator:
                if session.kickFromRoom(room, nick, reason) is None:
                    self.irc.write(
                        self.irc.numeric(
                            "441", nick, channel, text="They aren't on that channel"
                        )
                    )
                continue
            if key in answered:
                continue
            answered.add(key)
            if room is None:
                self.irc.write(self._notThere(channel))
            else:
                self.irc.write(self._notOperator(channel))

    def irc_INVITE(self, message: IRCMessage, bulk: bool) -> None:
        """
        C{INVITE nick #room}: refused (C{482}); every room is open to all.
        """
        if len(message.params) < 2:
            self.irc.write(
                self.irc.numeric("461", "INVITE", text="Not enough parameters")
            )
            return
        channel = message.params[1]
        if self._myRoom(channel) is None:
            self.irc.write(self._notThere(channel))
            return
        self.irc.write(
            self.irc.numeric("482", channel, text="There are no channel operators here")
        )

    def irc_PRIVMSG(self, message: IRCMessage, bulk: bool) -> Deferred[Any] | None:
        """
        C{PRIVMSG #room :text} to a room of the member's, C{PRIVMSG nick
        :text} to a person, wherever it is; CTCP C{ACTION} is an action.
        """
        return self._say(message, bulk, notice=False)

    def irc_NOTICE(self, message: IRCMessage, bulk: bool) -> Deferred[Any] | None:
        """
        C{NOTICE}: as C{PRIVMSG}, shown as a notice, without error replies
        (CTCP in a notice, a CTCP reply, is not relayed).
        """
        return self._say(message, bulk, notice=True)

    def _say(
        self, message: IRCMessage, bulk: bool, notice: bool
    ) -> Deferred[Any] | None:
        params = message.params
        if not params or not params[0]:
            if not notice:
                self.irc.write(
                    self.irc.numeric("411", text=f"No recipient given ({message.verb})")
                )
            return None
        if len(params) < 2 or not params[1]:
            if not notice:
                self.irc.write(self.irc.numeric("412", text="No text to send"))
            return None
        targets = params[0].split(",")
        if len(targets) > 1:
            if not notice:
                self.irc.write(
                    self.irc.numeric("407", params[0], text="Too many targets")
                )
            return None
        target = targets[0]
        text = withoutFormatting(params[1])
        action = False
        if text.startswith("\x01"):
            if notice:
                # CTCP in a NOTICE is a CTCP reply, for a CTCP request that
                # was never relayed: nobody here asked.
                return None
            body = text.strip("\x01")
            verb, _, rest = body.partition(" ")
            if verb.upper() != "ACTION" or not rest:
                # Other CTCP (VERSION, PING, ...) is not relayed.
                return None
            text, action = rest, True
        safe = safeText(text.encode("utf-8")).decode("utf-8")
        if target.startswith("#"):
            line = safe.encode("utf-8")
            mark = NOTICE if notice else ACTION if action else b""
            return self._sayIn(target, [mark + line], bulk, notice)
        return self.irc.session.message(target, safe, action, notice)

    def sayInChannel(
        self, channel: str, texts: Sequence[str], bulk: bool
    ) -> Deferred[Any] | None:
        """
        Say C{texts}, the texts of plain C{PRIVMSG}s to C{channel} that came
        in one read, in one go: as a line client's read of several lines is
        one message to each member, not one per line (see
        L{IRCProtocol.linesReceived}).
        """
        if self.irc.closing or self.irc.session.state is not SessionState.PRESENT:
            return None
        lines = []
        for text in texts:
            plain = withoutFormatting(text)
            mark = b""
            if plain.startswith("\x01"):
                # CTCP behind formatting codes: an action, or not relayed.
                verb, _, rest = plain.strip("\x01").partition(" ")
                if verb.upper() != "ACTION" or not rest:
                    continue
                plain, mark = rest, ACTION
            lines.append(mark + safeText(plain.encode("utf-8")))
        if not lines:
            return None
        return self._sayIn(channel, lines, bulk, notice=False)

    def _sayIn(
        self, channel: str, lines: list[bytes], bulk: bool, notice: bool
    ) -> Deferred[Any] | None:
        """
        Say C{lines} (safe, each marked as an action or a notice if it is
        one) in C{channel}, one of the member's: a notice with no error
        reply if it is not.
        """
        room = self._myRoom(channel)
        if room is None:
            if not notice:
                if self._knownRoom(channel) is None:
                    self.irc.write(
                        self.irc.numeric("403", channel, text="No such channel")
                    )
                else:
                    self.irc.write(
                        self.irc.numeric("404", channel, text="Cannot send to channel")
                    )
            return None
        if (
            bulk
            and room.pressure is not None
            and room.pressure.holdsBack(self.irc.session)
        ):
            return room.pressure.hold(self.irc.session).addCallback(
                lambda ignored: self._sayIn(channel, lines, False, notice)
            )
        waiting = self.irc.session.say(lines, room)
        if "echo-message" in self.irc.registration.caps:
            self.irc.session.receive(Message(room.name, self.irc.session.name, lines))
        return waiting

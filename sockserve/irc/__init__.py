"""
IRC clients in the chat: C{--irc}.

  - L{sockserve.irc.grammar}: IRC lines, read and written;
  - L{sockserve.irc.wire}: the chat's events as IRC lines;
  - L{sockserve.irc.protocol}: an IRC client as a chat member (its
    connection, input and output), and the factory of such members;
  - L{sockserve.irc.registration}: registering (C{CAP}, C{NICK}, C{USER})
    and the greeting;
  - L{sockserve.irc.commands}: what a registered client asks for, as the
    session's intents.

A channel C{#lab} is the room C{lab}: IRC clients meet line clients and
browsers there, on this server and across a bus.
"""

from __future__ import annotations

from twisted.internet.interfaces import IReactorTime

from sockserve.chat.protocol import DEFAULT_BANNER
from sockserve.factories import LineServerFactory
from sockserve.irc.protocol import (
    IRCFactory,
    IRCKeepAlive,
    IRCProtocol,
    IRCSettings,
)
from sockserve.irc.wire import IRCWire, IRCWires

DEFAULT_MOTD = (
    "Welcome to sockserve chat, where IRC meets telnet and the browser.\n"
    "The channels are the rooms: /join #default, or /list them."
)


def ircFactory(
    chat: LineServerFactory,
    clock: IReactorTime,
    network: str,
    pingInterval: float,
    banner: str,
    password: str | None = None,
) -> IRCFactory:
    """
    Return the factory of the IRC clients of the chat served by C{chat}
    (the chat server's factory): in its service, through its guard, with its
    rules; C{network} is the name they see, C{banner} their message of the
    day (an IRC one, unless the banner is not the default).

    @param pingInterval: seconds of silence after which a client is pinged
        (and then dropped if it sends nothing for as long); 0 for never.
    @param password: the password a client must give (C{PASS}) to
        register, if any.
    """
    service, policy = chat.service, chat.policy
    assert service is not None
    assert policy is not None
    return IRCFactory(
        IRCSettings(
            chat.context,
            service,
            policy,
            IRCWires(network, network, clock),
            DEFAULT_MOTD if banner == DEFAULT_BANNER else banner,
            clock,
            network=network,
            pings=IRCKeepAlive(clock, pingInterval) if pingInterval > 0 else None,
            password=password,
        )
    )


__all__ = [
    "DEFAULT_MOTD",
    "IRCFactory",
    "IRCKeepAlive",
    "IRCProtocol",
    "IRCSettings",
    "IRCWire",
    "IRCWires",
    "ircFactory",
]

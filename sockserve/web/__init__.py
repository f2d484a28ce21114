"""
Browsers and WebSocket clients in the chat room: C{--web}.

  - L{sockserve.web.frames}: WebSocket frames, parsed and built;
  - L{sockserve.web.wires}: the room's events as WebSocket frames (the line
    wire, and the page's JSON subprotocol);
  - L{sockserve.web.protocol}: a member on a WebSocket (frames, a session,
    the server's guard), and the factory of such members;
  - L{sockserve.web.site}: the page, the Origin check and the upgrade (and,
    in L{sockserve.web._pending}, the HTTP connections not upgraded yet,
    counted by address so that a slow handshake costs its sender), and the
    page's login at C{/session};
  - L{sockserve.web.sessions}: the page's logins, a token each, kept in
    memory until they expire or are revoked.
"""

from __future__ import annotations

from collections.abc import Mapping

from twisted.internet.interfaces import IReactorTime

from sockserve.factories import LineServerFactory
from sockserve.web.frames import ClientFrames, textFrame
from sockserve.web.protocol import (
    KeepAlive,
    WebSocketChatProtocol,
    WebSocketMemberFactory,
    WebSocketSettings,
)
from sockserve.web.sessions import SESSION_LIFETIME, WebSessions
from sockserve.web.site import (
    OriginPolicy,
    PageLogins,
    SubprotocolBuilder,
    WebSite,
    checkOrigin,
    webSite,
)
from sockserve.web.wires import (
    JSON_SUBPROTOCOL,
    WEBSOCKET_JSON_WIRE,
    WEBSOCKET_LINE_WIRE,
    WebSocketJsonWire,
    WebSocketLineWire,
)


def chatWebSite(
    chat: LineServerFactory,
    clock: IReactorTime,
    origins: OriginPolicy,
    pingInterval: float,
    others: Mapping[str, SubprotocolBuilder] | None = None,
    sessionLifetime: float = SESSION_LIFETIME,
) -> WebSite:
    """
    Return the web site whose WebSocket members are members of the chat
    served by C{chat} (the chat server's factory): in its service, through
    its guard (the same registry and limits), with its greeting and rules;
    built by a L{WebSocketMemberFactory} of their own.

    @param pingInterval: seconds of silence after which a member is pinged
        (and then dropped if no pong comes in as long); 0 for never.
    @param others: what builds the member of a WebSocket that chose one of
        these other subprotocols (IRC's: see L{sockserve.irc.websocket}).
    @param sessionLifetime: seconds a login through the page lasts (see
        L{sockserve.web.sessions}).
    """
    service, banner, policy = chat.service, chat.banner, chat.policy
    assert service is not None
    assert banner is not None
    assert policy is not None
    context = chat.context
    members = WebSocketMemberFactory(
        WebSocketSettings(
            context,
            service,
            banner,
            policy,
            maxMessage=context.limits.maxLine,
            pings=KeepAlive(clock, pingInterval) if pingInterval > 0 else None,
        )
    )
    limits = context.limits
    logins = PageLogins(lambda: service.logins, WebSessions(clock, sessionLifetime))
    return webSite(
        members.buildMember,
        origins,
        perAddress=limits.maxPerIP or None,
        total=max(16, (limits.maxConnections or 4096) // 4),
        logLimit=context.registry.logLimit,
        others=others,
        logins=logins,
    )


__all__ = [
    "JSON_SUBPROTOCOL",
    "WEBSOCKET_JSON_WIRE",
    "WEBSOCKET_LINE_WIRE",
    "ClientFrames",
    "KeepAlive",
    "OriginPolicy",
    "WebSite",
    "WebSocketChatProtocol",
    "WebSocketJsonWire",
    "WebSocketLineWire",
    "WebSocketMemberFactory",
    "WebSocketSettings",
    "chatWebSite",
    "checkOrigin",
    "textFrame",
    "webSite",
]

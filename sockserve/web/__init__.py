"""
Browsers and WebSocket clients in the chat room: C{--web}.

  - L{sockserve.web.frames}: WebSocket frames, parsed and built;
  - L{sockserve.web.wires}: the room's events as WebSocket frames (the line
    wire, and the page's JSON subprotocol);
  - L{sockserve.web.protocol}: a member on a WebSocket, a L{ChatProtocol}
    fed by frames;
  - L{sockserve.web.site}: the page, the Origin check and the upgrade (and,
    in L{sockserve.web._pending}, the HTTP connections not upgraded yet,
    counted by address so that a slow handshake costs its sender).
"""

from __future__ import annotations

from twisted.internet.interfaces import IReactorTime

from sockserve.chat.events import ChatWire
from sockserve.factories import LineServerFactory
from sockserve.web.frames import ClientFrames, textFrame
from sockserve.web.protocol import KeepAlive, WebSocketChatProtocol
from sockserve.web.site import (
    OriginPolicy,
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
) -> WebSite:
    """
    Return the web site whose WebSocket members join the room of C{chat}
    (the chat server's factory), as members of that server: with its
    registry, limits, greeting and rules.

    @param pingInterval: seconds of silence after which a member is pinged
        (and then dropped if no pong comes in as long); 0 for never.
    """
    room, banner, policy = chat.room, chat.banner, chat.policy
    assert room is not None
    assert banner is not None
    assert policy is not None
    keepAlive = KeepAlive(clock, pingInterval) if pingInterval > 0 else None

    def buildMember(wire: ChatWire) -> WebSocketChatProtocol:
        member = WebSocketChatProtocol(
            chat.context, room, banner, policy, wire, keepAlive
        )
        member.factory = chat
        return member

    limits = chat.context.limits
    return webSite(
        buildMember,
        origins,
        perAddress=limits.maxPerIP or None,
        total=max(16, (limits.maxConnections or 4096) // 4),
        logLimit=chat.context.registry.logLimit,
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
    "chatWebSite",
    "checkOrigin",
    "textFrame",
    "webSite",
]

"""
The web side of the chat room: the page, and the WebSocket endpoint.

C{--web} serves a L{webSite}: C{GET /} the chat page and its two assets,
C{GET /ws} the WebSocket, anything else 404. The page and its assets carry
a Content-Security-Policy that allows only the server's own scripts and
styles, and C{X-Content-Type-Options: nosniff}.

A WebSocket handshake is checked before the upgrade: one whose C{Origin}
is neither the page's own origin nor one allowed with C{--web-origin} is
refused with 403, so that a page on another site cannot join the room with
its visitor's browser (cross-site WebSocket hijacking); one without
C{Origin} (a command-line client) is accepted.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from collections.abc import Callable, Iterable
from importlib.resources import files
from typing import Any
from urllib.parse import urlsplit

from twisted.internet.interfaces import IAddress, IDelayedCall, IProtocol
from twisted.internet.protocol import connectionDone
from twisted.python.failure import Failure
from twisted.web import http
from twisted.web.http import HTTPChannel
from twisted.web.pages import notFound
from twisted.web.resource import IResource, Resource
from twisted.web.server import NOT_DONE_YET, Request, Site
from wsproto.connection import ConnectionType
from wsproto.events import AcceptConnection, RejectConnection
from wsproto.events import Request as WebSocketRequest
from wsproto.handshake import H11Handshake
from wsproto.utilities import RemoteProtocolError

from sockserve.chat.events import ChatWire
from sockserve.web.wires import (
    JSON_SUBPROTOCOL,
    WEBSOCKET_JSON_WIRE,
    WEBSOCKET_LINE_WIRE,
)

# Seconds a browser may keep an idle HTTP connection (before an upgrade).
HTTP_TIMEOUT = 60

CONTENT_SECURITY_POLICY = (
    b"default-src 'none'; script-src 'self'; style-src 'self'; "
    b"connect-src 'self'; img-src 'self'; base-uri 'none'; "
    b"form-action 'none'; frame-ancestors 'none'"
)

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
# A port as browsers write it: no sign, no leading zero (or none at all).
_PORT = re.compile(r"|[1-9][0-9]{0,4}")
# The longest an HTTP connection lives unless it becomes a WebSocket.
HANDSHAKE_DEADLINE = 30.0


# Build a member on an upgraded connection, given its wire.
MemberBuilder = Callable[[ChatWire], IProtocol]


def _normalOrigin(origin: str) -> str | None:
    """
    Return C{origin} (C{scheme://host[:port]}) in one spelling: lower case,
    and without the scheme's default port; C{None} if it is not one.
    """
    try:
        parts = urlsplit(origin.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if (
        scheme not in _DEFAULT_PORTS
        or not host
        or parts.path not in ("", "/")
        or "@" in parts.netloc
        or parts.query
        or parts.fragment
        or not _PORT.fullmatch(parts.netloc.rpartition("]")[2].partition(":")[2])
    ):
        return None
    if ":" in host:
        host = f"[{host}]"
    if port is None or port == _DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def checkOrigin(origin: str) -> str:
    """
    Return C{origin} normalised, for C{--web-origin}.

    @raise ValueError: if it is not C{http(s)://host[:port]}.
    """
    normal = _normalOrigin(origin)
    if normal is None or not normal.startswith("http"):
        raise ValueError(
            f"{origin!r} is not an origin such as https://example.org or "
            "http://127.0.0.1:8080"
        )
    return normal


class OriginPolicy:
    """
    Which pages may open the WebSocket: the page's own origin (the host
    the browser asked for), and those in C{allowed}.
    """

    def __init__(self, allowed: Iterable[str] = ()) -> None:
        self.allowed = frozenset(checkOrigin(origin) for origin in allowed)

    def trustsHost(self, host: str | None, local: str) -> bool:
        """
        Tell whether a request for C{host} (its C{Host} header), received
        on the local address C{local}, may open the WebSocket.

        On a loopback address, only an IP address, C{localhost} or a host of
        an allowed origin is taken: a page whose name an attacker points at
        127.0.0.1 (DNS rebinding) names its own host, and is refused. On
        other addresses any host is taken (the Origin check does the rest).
        """
        try:
            loopback = ipaddress.ip_address(local.split("%")[0]).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            return True
        if host is None:
            return False
        try:
            name = urlsplit("//" + host.strip()).hostname or ""
        except ValueError:
            return False
        if name == "localhost" or name.endswith(".localhost"):
            return True
        try:
            ipaddress.ip_address(name)
            return True
        except ValueError:
            pass
        return any(urlsplit(origin).hostname == name for origin in self.allowed)

    def allows(self, origin: str, host: str | None) -> bool:
        """
        Tell whether a handshake from a page of C{origin}, sent to C{host}
        (the request's C{Host} header), may open the WebSocket.

        The page's own origin matches by host and port, whatever the scheme:
        behind a proxy that ends TLS the browser's C{https} origin reaches
        the server over plain HTTP.
        """
        normal = _normalOrigin(origin)
        if normal is None:
            return False
        if normal in self.allowed:
            return True
        if host is None:
            return False
        try:
            asked = urlsplit("//" + host.strip())
            askedPort = asked.port
        except ValueError:
            return False
        parts = urlsplit(normal)
        if (parts.hostname or "") != (asked.hostname or "").lower():
            return False
        if askedPort is None:
            # No port in Host: the scheme's default, which the origin's
            # spelling dropped too.
            return parts.port is None
        return (parts.port or _DEFAULT_PORTS[parts.scheme]) == askedPort


def _refuse(request: Request, code: int, text: str) -> bytes:
    if request.code != code:
        request.setResponseCode(code)
    request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
    request.setHeader(b"Cache-Control", b"no-store")
    return text.encode("utf-8") + b"\n"


class WebSocketResource(Resource):
    """
    C{/ws}: check the handshake, upgrade, and hand the connection to a
    member built by C{buildMember}.

    Without a subprotocol the member speaks the line wire; a client that
    offers C{sockserve.v1.json} gets the JSON wire.
    """

    isLeaf = True

    def __init__(self, buildMember: MemberBuilder, origins: OriginPolicy) -> None:
        super().__init__()
        self.buildMember = buildMember
        self.origins = origins

    def render_HEAD(self, request: Request) -> bytes:
        """
        No upgrade without a GET.
        """
        request.setHeader(b"Upgrade", b"websocket")
        request.setResponseCode(426, b"Upgrade Required")
        return b""

    def render_GET(self, request: Request) -> bytes | int:
        """
        Upgrade to a WebSocket, or say why not.
        """
        if request.postpath not in ([], [b""]):
            return _refuse(request, 404, "no such page")
        host = _text(request.getHeader(b"host"))
        origin = request.getHeader(b"origin")
        if origin is not None and not (
            self.origins.allows(origin.decode("latin-1"), host)
            and self.origins.trustsHost(host, _localHost(request))
        ):
            return _refuse(
                request,
                403,
                "this page's origin may not open the chat's WebSocket "
                "(see --web-origin)",
            )
        upgrade = request.getHeader(b"upgrade")
        if upgrade is None or upgrade.lower() != b"websocket":
            request.setHeader(b"Upgrade", b"websocket")
            request.setResponseCode(426, b"Upgrade Required")
            return _refuse(
                request,
                426,
                "this is the chat's WebSocket endpoint: connect with a "
                "WebSocket client, or open / in a browser",
            )
        if request.clientproto != b"HTTP/1.1":
            return _refuse(request, 400, "a WebSocket handshake needs HTTP/1.1")
        version = request.getHeader(b"sec-websocket-version")
        if version is not None and version.strip() != b"13":
            request.setHeader(b"Sec-WebSocket-Version", b"13")
            request.setResponseCode(426, b"Upgrade Required")
            return _refuse(request, 426, "this server speaks WebSocket version 13")
        if not _goodKey(request.getHeader(b"sec-websocket-key")):
            return _refuse(
                request,
                400,
                "bad WebSocket handshake: Sec-WebSocket-Key is not 16 bytes in base64",
            )
        handshake = H11Handshake(ConnectionType.SERVER)
        headers = [
            (name, value)
            for name, values in request.requestHeaders.getAllRawHeaders()
            for value in values
        ]
        try:
            handshake.initiate_upgrade_connection(headers, request.uri)
            event = next(handshake.events())
        except RemoteProtocolError as error:
            hint = error.event_hint
            code = 400
            if isinstance(hint, RejectConnection):
                code = hint.status_code
                for name, value in hint.headers:
                    request.setHeader(name, value)
            if code == 426:
                request.setResponseCode(426, b"Upgrade Required")
            return _refuse(request, code, f"bad WebSocket handshake: {error}")
        assert isinstance(event, WebSocketRequest)
        if JSON_SUBPROTOCOL in event.subprotocols:
            wire: ChatWire = WEBSOCKET_JSON_WIRE
            subprotocol: str | None = JSON_SUBPROTOCOL
        else:
            wire = WEBSOCKET_LINE_WIRE
            subprotocol = None
        accepted = handshake.send(AcceptConnection(subprotocol=subprotocol))
        channel = request.channel
        transport = channel.transport
        assert transport is not None
        if isinstance(channel, WebChannel):
            channel.upgraded()
        transport.write(accepted)
        handOver(channel, self.buildMember(wire))
        return NOT_DONE_YET


def handOver(channel: HTTPChannel, member: IProtocol) -> None:
    """
    Give the connection of C{channel}, whose request was just upgraded, to
    C{member}.

    twisted.web's own way (as C{twisted.web.websocket} does it) keeps the
    channel between the transport and the member, and with it the request,
    its headers and the channel's parser: several KiB for each idle
    WebSocket. Where the transport delivers to the channel through an
    attribute (C{protocol} on a TCP connection, C{wrappedProtocol} on a TLS
    or PROXY protocol layer), it is pointed at the member instead, and the
    channel and its request are freed once the handshake's call returns.
    """
    # The one way twisted.web hands a connection to another protocol: it
    # still serves while the channel is on the stack, and on transports
    # that deliver otherwise.
    channel._protocolUpgradeForWebsockets(member)
    # What the client sent after its handshake, in the same read, is the
    # member's too (twisted.web would keep it for the next request).
    channel.rawDataReceived = member.dataReceived  # type: ignore[method-assign]
    transport = channel.transport
    for attribute in ("wrappedProtocol", "protocol"):
        if getattr(transport, attribute, None) is channel:
            setattr(transport, attribute, member)
            break
    # The request and the channel hold each other: without this, only the
    # garbage collector would free them.
    del channel.requests[:]


def _goodKey(key: bytes | None) -> bool:
    if key is None:
        return False
    try:
        return len(base64.b64decode(key.strip(), validate=True)) == 16
    except (binascii.Error, ValueError):
        return False


def _localHost(request: Request) -> str:
    address = request.getHost()
    return str(getattr(address, "host", ""))


def _text(header: bytes | None) -> str | None:
    return None if header is None else header.decode("latin-1")


class StaticAsset(Resource):
    """
    One file of the page, from the package, with the page's headers.
    """

    isLeaf = True

    def __init__(self, body: bytes, contentType: bytes) -> None:
        super().__init__()
        self.body = body
        self.contentType = contentType

    def render_GET(self, request: Request) -> bytes:
        """
        The file, with a strict Content-Security-Policy.
        """
        if request.postpath not in ([], [b""]):
            return _refuse(request, 404, "no such page")
        request.setHeader(b"Content-Type", self.contentType)
        request.setHeader(b"Content-Security-Policy", CONTENT_SECURITY_POLICY)
        request.setHeader(b"X-Content-Type-Options", b"nosniff")
        request.setHeader(b"Referrer-Policy", b"no-referrer")
        request.setHeader(b"X-Frame-Options", b"DENY")
        # Always asked again (cheaply) so an upgraded server's page is seen.
        request.setHeader(b"Cache-Control", b"no-cache")
        return self.body


class Root(Resource):
    """
    C{/}: the page; its assets and C{/ws} are children; nothing else is.
    """

    def __init__(self, page: StaticAsset) -> None:
        super().__init__()
        self.page = page

    def render_GET(self, request: Request) -> bytes:
        """
        The chat page.
        """
        return self.page.render_GET(request)

    def getChild(self, path: bytes, request: Request) -> IResource:
        """
        C{/} itself is the page (C{/x} is not found).
        """
        if path == b"":
            return self
        return notFound("No such page", "sockserve serves the chat at /.")


_ASSETS = (
    ("chat.js", b"text/javascript; charset=utf-8"),
    ("chat.css", b"text/css; charset=utf-8"),
)


def _asset(name: str, contentType: bytes) -> StaticAsset:
    body = files("sockserve.web").joinpath("static", name).read_bytes()
    return StaticAsset(body, contentType)


class WebChannel(HTTPChannel):
    """
    An HTTP connection of the chat's web site: it lives at most
    L{HANDSHAKE_DEADLINE} seconds unless it becomes a WebSocket (a client
    that trickles its request a byte at a time keeps no file descriptor),
    and its site counts it until then.
    """

    site: WebSite
    _deadline: IDelayedCall | None = None

    def connectionMade(self) -> None:
        """
        Start the deadline.
        """
        super().connectionMade()
        self._deadline = self.callLater(HANDSHAKE_DEADLINE, self._tooLong)

    def _tooLong(self) -> None:
        self._deadline = None
        self.site.forget(self)
        if self.transport is not None:
            self.transport.abortConnection()  # type: ignore[attr-defined]

    def upgraded(self) -> None:
        """
        The connection became a WebSocket: the chat's registry counts it
        from now on.
        """
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = None
        self.site.forget(self)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """
        Forget the connection.
        """
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = None
        self.site.forget(self)
        super().connectionLost(reason)


class WebSite(Site):
    """
    The site of C{--web}. It logs no request (WebSocket members are logged
    as members), and bounds the HTTP connections that are not WebSockets
    yet: at most C{perAddress} from one address (C{--max-per-ip}; C{None}
    for no limit) and C{total} in all; a connection beyond them is closed
    at once.
    """

    noisy = False
    displayTracebacks = False
    protocol = WebChannel  # type: ignore[assignment]

    def __init__(
        self,
        resource: Resource,
        perAddress: int | None = None,
        total: int = 1024,
        **options: Any,
    ) -> None:
        super().__init__(resource, **options)
        self.perAddress = perAddress
        self.total = total
        self.byAddress: dict[str, int] = {}
        self.channels: dict[WebChannel, str] = {}

    def buildProtocol(self, addr: IAddress | None) -> Any:
        """
        A channel for a new connection, unless its address (or the site)
        holds as many as it may.
        """
        host = str(getattr(addr, "host", ""))
        if len(self.channels) >= self.total or (
            self.perAddress is not None
            and self.byAddress.get(host, 0) >= self.perAddress
        ):
            return None
        channel = super().buildProtocol(addr)
        if isinstance(channel, WebChannel):
            self.channels[channel] = host
            self.byAddress[host] = self.byAddress.get(host, 0) + 1
        return channel

    def forget(self, channel: WebChannel) -> None:
        """
        Stop counting C{channel}.
        """
        host = self.channels.pop(channel, None)
        if host is None:
            return
        left = self.byAddress[host] - 1
        if left:
            self.byAddress[host] = left
        else:
            del self.byAddress[host]

    def log(self, request: http.Request) -> None:
        """
        Log nothing per request.
        """


def webSite(
    buildMember: MemberBuilder,
    origins: OriginPolicy,
    perAddress: int | None = None,
    total: int = 1024,
) -> WebSite:
    """
    Return the site of C{--web}: the page at C{/}, its assets, and the
    WebSocket at C{/ws}, whose members C{buildMember} builds; at most
    C{perAddress} HTTP connections (not yet WebSockets) from one address,
    C{total} in all.
    """
    root = Root(_asset("index.html", b"text/html; charset=utf-8"))
    for name, contentType in _ASSETS:
        root.putChild(name.encode("ascii"), _asset(name, contentType))
    root.putChild(b"ws", WebSocketResource(buildMember, origins))
    return WebSite(root, perAddress, total, timeout=HTTP_TIMEOUT)

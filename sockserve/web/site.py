"""
The web side of the chat room: the page, and the WebSocket endpoint.

C{--web} serves a L{webSite}: C{GET /} the chat page and its assets,
C{GET /ws} the WebSocket, C{/session} the page's login (L{SessionResource}:
a password checked as every front end checks one, then a cookie that the
WebSocket's handshake carries, see L{PageLogins}), anything else 404.
The page and its assets carry a Content-Security-Policy that allows only
the server's own scripts and styles, and C{X-Content-Type-Options:
nosniff}.

A WebSocket handshake is checked before the upgrade: one whose C{Origin}
is neither the page's own origin nor one allowed with C{--web-origin} is
refused with 403, so that a page on another site cannot join the room with
its visitor's browser (cross-site WebSocket hijacking); one without
C{Origin} (a command-line client) is accepted.

Until they become WebSockets, HTTP connections are counted by address
(L{sockserve.web._pending}) and bounded in time (L{HEADER_DEADLINE},
L{HANDSHAKE_DEADLINE}): a slow or idle handshake costs its sender, and a
browser's gets in.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import re
from collections.abc import Callable, Iterable, Mapping
from importlib.resources import files
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from twisted.internet.interfaces import IDelayedCall, IProtocol
from twisted.internet.protocol import connectionDone
from twisted.logger import Logger, LogLevel
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

from sockserve import _twisted
from sockserve._addresses import describeAddress, hostOf, networkOf
from sockserve._loglimit import LogLimiter
from sockserve.accounts.store import Account
from sockserve.chat.events import ChatWire
from sockserve.chat.login import LoginRefused
from sockserve.web._pending import PendingConnections
from sockserve.web.sessions import COOKIE, PageLogin, WebSessions
from sockserve.web.wires import (
    JSON_SUBPROTOCOL,
    JSON_SUBPROTOCOL_ONE_ROOM,
    WEBSOCKET_JSON_WIRE,
    WEBSOCKET_LINE_WIRE,
)

if TYPE_CHECKING:
    from sockserve.accounts.logins import Logins

_log = Logger()

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
# Seconds a request's headers have to come in whole, from the opening of the
# connection or the end of the response before: a browser sends them at
# once, a client that trickles them or says nothing loses its place.
HEADER_DEADLINE = 10.0
# HTTP connections not yet WebSockets that one address (an IPv6 /64) holds
# at most by default (a quarter of the site's pool if that is less): more
# than a crowd behind one NAT opens at once, and its oldest go first.
ADDRESS_SHARE = 128


# Build a member on an upgraded connection, given its wire, whether it may
# be in several rooms at once, and the page's login its cookie brought.
MemberBuilder = Callable[[ChatWire, bool, PageLogin | None], IProtocol]
_JSON_SUBPROTOCOLS = (JSON_SUBPROTOCOL, JSON_SUBPROTOCOL_ONE_ROOM)
# Builds the member of a WebSocket whose handshake chose another protocol
# than the chat's own wires (IRC's): given the subprotocol chosen.
SubprotocolBuilder = Callable[[str], IProtocol]


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


# A label of a host name (lower case, as compared).
_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")


def checkHostName(name: str) -> str:
    """
    Return C{name} in one spelling, for C{--web-host}: lower case, without
    a final dot, an IPv6 address without brackets and in its short form, a
    name in other scripts in IDNA.

    @raise ValueError: if it is not a host name or an IP address.
    """
    normal = name.strip().lower().rstrip(".")
    if normal.startswith("[") and normal.endswith("]"):
        normal = normal[1:-1]
    try:
        return str(ipaddress.ip_address(normal))
    except ValueError:
        pass
    try:
        normal = normal.encode("idna").decode("ascii")
    except UnicodeError:
        normal = ""
    if not (
        normal
        and len(normal) <= 253
        and all(_LABEL.fullmatch(label) for label in normal.split("."))
    ):
        raise ValueError(
            f"{name!r} is not a host name such as chat.example.org, or an IP "
            "address (without a port)"
        )
    return normal


def _requestedName(host: str | None) -> str | None:
    """
    Return the name a request's C{Host} header asks for, its port aside, in
    the spelling of L{checkHostName}; C{None} if there is none.
    """
    if not host:
        return None
    try:
        parts = urlsplit("//" + host.strip())
        # A port that is not a number raises ValueError here.
        name, _port = parts.hostname or "", parts.port
        return checkHostName(name)
    except ValueError:
        return None


class OriginPolicy:
    """
    Which pages may open the WebSocket: the page's own origin (the host
    the browser asked for), and those in C{allowed}; and which host names
    the site answers to: those in C{hosts} (C{--web-host}), or, if none are
    given, any.
    """

    def __init__(self, allowed: Iterable[str] = (), hosts: Iterable[str] = ()) -> None:
        self.allowed = frozenset(checkOrigin(origin) for origin in allowed)
        self.hosts = frozenset(checkHostName(name) for name in hosts)

    def servesHost(self, host: str | None) -> bool:
        """
        Tell whether the site answers a request for C{host} (its C{Host}
        header): with C{--web-host}, if it names one of them, whatever its
        port; without, always.
        """
        return not self.hosts or _requestedName(host) in self.hosts

    def trustsHost(self, host: str | None, local: str) -> bool:
        """
        Tell whether a request for C{host} (its C{Host} header), received
        on the local address C{local}, may open the WebSocket.

        With C{--web-host}, only its names are taken, on any address.
        Without, on a loopback address only an IP address, C{localhost} or
        a host of an allowed origin is taken: a page whose name an attacker
        points at 127.0.0.1 (DNS rebinding) names its own host, and is
        refused. On other addresses any host is taken (the Origin check does
        the rest).
        """
        if self.hosts:
            return self.servesHost(host)
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
    offers C{sockserve.v2.json} (or C{v1.json}) gets the JSON wire; one that
    offers a subprotocol of C{others} (IRC's) gets the member C{others}
    builds for it (the first it offers, in its order).
    """

    isLeaf = True

    def __init__(
        self,
        buildMember: MemberBuilder,
        origins: OriginPolicy,
        others: Mapping[str, SubprotocolBuilder] | None = None,
        logins: PageLogins | None = None,
    ) -> None:
        super().__init__()
        self.buildMember = buildMember
        self.origins = origins
        self.others = dict(others or {})
        self.logins = logins

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
        wire: ChatWire = WEBSOCKET_JSON_WIRE
        subprotocol: str | None
        offered = [
            name
            for name in event.subprotocols
            if name in self.others or name in _JSON_SUBPROTOCOLS
        ]
        if offered and offered[0] in self.others:
            other = offered[0]
            return self._upgrade(request, handshake, other, self.others[other](other))
        if JSON_SUBPROTOCOL in event.subprotocols:
            subprotocol = JSON_SUBPROTOCOL
        elif JSON_SUBPROTOCOL_ONE_ROOM in event.subprotocols:
            subprotocol = JSON_SUBPROTOCOL_ONE_ROOM
        else:
            wire = WEBSOCKET_LINE_WIRE
            subprotocol = None
        login = None if self.logins is None else self.logins.arriving(request)
        return self._upgrade(
            request,
            handshake,
            subprotocol,
            self.buildMember(wire, subprotocol == JSON_SUBPROTOCOL, login),
        )

    def _upgrade(
        self,
        request: Request,
        handshake: H11Handshake,
        subprotocol: str | None,
        member: IProtocol,
    ) -> int:
        """
        Accept the handshake with C{subprotocol}, and give the connection to
        C{member}.
        """
        accepted = handshake.send(AcceptConnection(subprotocol=subprotocol))
        channel = request.channel
        transport = channel.transport
        assert transport is not None
        if isinstance(channel, WebChannel):
            channel.upgraded()
        transport.write(accepted)
        handOver(channel, member)
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
    (Each step uses Twisted's private state: see L{sockserve._twisted}.)
    """
    # The one way twisted.web hands a connection to another protocol: it
    # still serves while the channel is on the stack, and on transports
    # that deliver otherwise.
    _twisted.upgradeChannel(channel, member)
    # What the client sent after its handshake, in the same read, is the
    # member's too (twisted.web would keep it for the next request).
    _twisted.deliverRestOfRead(channel, member)
    _twisted.pointTransportAt(channel, member)
    _twisted.dropRequests(channel)


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


class UnknownHost(Resource):
    """
    What a request for a host name the site does not answer to gets (see
    C{--web-host}): 403, and one line.
    """

    isLeaf = True

    def render(self, request: Request) -> bytes:
        """
        Refuse, whatever the method.
        """
        body = _refuse(
            request,
            403,
            "this server does not answer to this host name (see --web-host)",
        )
        return b"" if request.method == b"HEAD" else body


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
    ("favicon.svg", b"image/svg+xml"),
)


def _asset(name: str, contentType: bytes) -> StaticAsset:
    body = files("sockserve.web").joinpath("static").joinpath(name).read_bytes()
    return StaticAsset(body, contentType)


class WebChannel(_twisted.HeadersChannel):
    """
    An HTTP connection of the chat's web site, counted by its site until it
    becomes a WebSocket. Its requests' headers must come in whole within
    L{HEADER_DEADLINE} seconds (of the opening, or of the last response),
    and it lives at most L{HANDSHAKE_DEADLINE} seconds unless it becomes a
    WebSocket: a client that trickles its request a byte at a time, or says
    nothing, keeps no file descriptor for long.
    """

    site: WebSite
    _deadline: IDelayedCall | None = None
    _headerDeadline: IDelayedCall | None = None
    _pending = False

    def connectionMade(self) -> None:
        """
        Start the deadlines, and be counted; with C{--max-per-ip}, close at
        once if the address holds as many as it may.
        """
        super().connectionMade()
        self._deadline = self.callLater(HANDSHAKE_DEADLINE, self._tooLong)
        if _twisted.HEADERS_HOOK:
            self._headerDeadline = self.callLater(HEADER_DEADLINE, self._tooLong)
        else:
            _twisted.warnIfNoHeadersHook("the web site's deadline for headers")
        self._pending = True
        if not self.site.admit(self):
            self._stopCounting()
            assert self.transport is not None
            self.transport.loseConnection()

    def headersReceived(self) -> None:
        """
        The request's headers are in: they came in time.
        """
        _cancel(self._headerDeadline)
        self._headerDeadline = None

    def requestDone(self, request: Request) -> None:
        """
        The response is written: the next request's headers have
        L{HEADER_DEADLINE} seconds to come.
        """
        if self._pending and self._headerDeadline is None and _twisted.HEADERS_HOOK:
            self._headerDeadline = self.callLater(HEADER_DEADLINE, self._tooLong)
        super().requestDone(request)

    def _stopCounting(self) -> None:
        self._pending = False
        _cancel(self._deadline)
        _cancel(self._headerDeadline)
        self._deadline = self._headerDeadline = None
        self.site.forget(self)

    def _tooLong(self) -> None:
        self._deadline = self._headerDeadline = None
        self.drop()

    def drop(self) -> None:
        """
        Close the connection at once: it took too long, or another took its
        place (see L{PendingConnections}).
        """
        self._stopCounting()
        if self.transport is not None:
            self.transport.abortConnection()  # type: ignore[attr-defined]

    def upgraded(self) -> None:
        """
        The connection became a WebSocket: the chat's registry counts it
        from now on.
        """
        self._stopCounting()

    def timeoutConnection(self) -> None:
        """
        The connection was idle too long: close it (twisted.web logs each
        one, and a flood of idle connections would be a flood of lines).
        """
        self.drop()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """
        Forget the connection.
        """
        self._stopCounting()
        super().connectionLost(reason)


def _cancel(call: IDelayedCall | None) -> None:
    if call is not None and call.active():
        call.cancel()


class WebSite(Site):
    """
    The site of C{--web}. It logs no request (WebSocket members are logged
    as members), and bounds the HTTP connections that are not WebSockets
    yet, by the address they come from (see L{PendingConnections}): C{total}
    in all, a share of them from one address, and with C{perAddress}
    (C{--max-per-ip}) at most that many from one address, a connection
    beyond it being closed at once. With C{origins} naming host names
    (C{--web-host}), it answers requests for other names with 403.

    @ivar pending: the HTTP connections not yet WebSockets.
    @ivar origins: the pages and host names it answers to.
    """

    protocol = WebChannel  # type: ignore[assignment]

    def __init__(
        self,
        resource: Resource,
        perAddress: int | None = None,
        total: int = 1024,
        origins: OriginPolicy | None = None,
        logLimit: LogLimiter | None = None,
        **options: Any,
    ) -> None:
        super().__init__(resource, **options)
        self.origins = OriginPolicy() if origins is None else origins
        self.logLimit = logLimit
        share = min(ADDRESS_SHARE, max(1, total // 4))
        self.pending: PendingConnections[WebChannel] = PendingConnections(
            total, share, perAddress
        )

    def admit(self, channel: WebChannel) -> bool:
        """
        Count C{channel}, newly connected, by its peer's address (known by
        now, also behind the PROXY protocol), and close those whose place
        it takes; return C{False} if its address holds as many as
        C{--max-per-ip} allows (it is not counted).
        """
        assert channel.transport is not None
        peer = channel.transport.getPeer()
        host = hostOf(peer)
        # A UNIX socket's peers have no address to share: each its own.
        address = f"unix {id(channel)}" if host is None else networkOf(host)
        dropped = self.pending.add(channel, address)
        if dropped is None:
            self._refused(
                describeAddress(peer),
                f"{self.pending.perAddress} from {address} are open (--max-per-ip)",
            )
            return False
        for other in dropped:
            other.drop()
        return True

    def getResourceFor(self, request: Request) -> IResource:
        """
        The resource for C{request}, unless it asks for a host name the site
        does not answer to (C{--web-host}): then L{UnknownHost}.
        """
        if not self.origins.servesHost(_text(request.getHeader(b"host"))):
            return UnknownHost()
        resource: IResource = super().getResourceFor(request)
        return resource

    def _refused(self, peer: str, reason: str) -> None:
        """
        Log a refused connection, at the bounded rate of C{logLimit}.
        """
        format = "Refused an HTTP connection from {peer}: {reason}"
        if self.logLimit is None:
            _log.warn(format, peer=peer, reason=reason)
        else:
            self.logLimit.emit(
                _log, LogLevel.warn, "refusals", format, peer=peer, reason=reason
            )

    def forget(self, channel: WebChannel) -> None:
        """
        Stop counting C{channel}.
        """
        self.pending.remove(channel)

    def log(self, request: http.Request) -> None:
        """
        Log nothing per request.
        """


# The largest body C{POST /session} takes: a name and a password in JSON.
MAX_LOGIN_BODY = 4096


class PageLogins:
    """
    The page's logins: a login through the form (L{SessionResource}) makes
    a session in C{sessions}; a WebSocket handshake that brings its cookie
    arrives logged in (L{arriving}).

    @ivar logins: what gives the server's logins now (C{None}: it has no
        accounts).
    @ivar sessions: the sessions of the page's logins.
    """

    def __init__(
        self, logins: Callable[[], Logins | None], sessions: WebSessions
    ) -> None:
        self.logins = logins
        self.sessions = sessions

    def arriving(self, request: Request) -> PageLogin | None:
        """
        The login the cookie of C{request} (a WebSocket handshake) brings:
        C{None} without one, or if it expired, was revoked, or its account
        is gone or has another password now; a refusal if the account is
        banned (the session then ends).
        """
        logins = self.logins()
        token = _cookie(request)
        login = self.sessions.find(token)
        if logins is None or login is None or token is None:
            return None
        entry = logins.store.entry(login.account)
        if entry is None or entry.passwordHash != login.proof:
            self.sessions.revoke(token)
            return None
        refusal = (
            None
            if logins.banned is None
            else logins.banned(entry.name, hostOf(request.getClientAddress()))
        )
        if refusal is not None:
            self.sessions.revoke(token)
            return PageLogin(self.sessions, token, None, refusal)
        return PageLogin(self.sessions, token, entry.account())


def _cookie(request: Request) -> str | None:
    value: bytes | None = request.getCookie(COOKIE)
    if value is None:
        return None
    return value.decode("ascii", "replace")


def _json(request: Request, code: int, body: Mapping[str, object]) -> bytes:
    if request.code != code:
        request.setResponseCode(code)
    request.setHeader(b"Content-Type", b"application/json")
    request.setHeader(b"Cache-Control", b"no-store")
    request.setHeader(b"X-Content-Type-Options", b"nosniff")
    return json.dumps(body).encode("utf-8")


def _answer(request: Request, body: bytes) -> None:
    """
    Finish C{request}, answered later than its render, with C{body}.
    """
    request.setHeader(b"Content-Length", str(len(body)).encode("ascii"))
    request.write(body)
    request.finish()


def _accountJSON(account: Account | None) -> dict[str, object]:
    if account is None:
        return {"account": None, "roles": []}
    return {"account": account.name, "roles": sorted(account.roles)}


class SessionResource(Resource):
    """
    C{/session}: the page's login.

      - C{GET}: whether the server has accounts, whether they are required,
        and the account the browser's cookie is logged in to;
      - C{POST} with a JSON body C{{"name": ..., "password": ...}}: log in
        (through L{Logins.login}, with its limits and bans), and set the
        session's cookie (C{HttpOnly}, C{SameSite=Strict}, C{Path=/},
        C{Secure} over TLS, lasting as long as the session);
      - C{DELETE}: log out: the session ends (its WebSocket members are
        logged out) and the cookie is cleared.

    C{POST} and C{DELETE} need an C{Origin} that the site's
    L{OriginPolicy} admits (no other site's page may log its visitors in or
    out), and C{POST} a JSON body.
    """

    isLeaf = True
    log = Logger()

    def __init__(self, logins: PageLogins, origins: OriginPolicy) -> None:
        super().__init__()
        self.pageLogins = logins
        self.origins = origins

    def _account(self, request: Request) -> Account | None:
        login = self.pageLogins.arriving(request)
        return None if login is None else login.account

    def render_GET(self, request: Request) -> bytes:
        """
        Say what the page needs to show its login form.
        """
        if request.postpath not in ([], [b""]):
            return _refuse(request, 404, "no such page")
        logins = self.pageLogins.logins()
        body = _accountJSON(self._account(request))
        body["accounts"] = logins is not None
        body["required"] = logins is not None and logins.rules.requireLogin
        return _json(request, 200, body)

    def _crossSite(self, request: Request) -> bytes | None:
        """
        Refuse a request that changes the login unless a page the site
        admits sent it.
        """
        if request.postpath not in ([], [b""]):
            return _refuse(request, 404, "no such page")
        host = _text(request.getHeader(b"host"))
        origin = request.getHeader(b"origin")
        if (
            origin is None
            or not self.origins.allows(origin.decode("latin-1"), host)
            or not self.origins.trustsHost(host, _localHost(request))
        ):
            return _json(
                request,
                403,
                {"error": "log in from the chat's own page (see --web-origin)"},
            )
        return None

    def render_POST(self, request: Request) -> bytes | int:
        """
        Log in, and set the session's cookie.
        """
        refused = self._crossSite(request)
        if refused is not None:
            return refused
        logins = self.pageLogins.logins()
        if logins is None:
            return _json(
                request, 404, {"error": "there are no accounts on this server"}
            )
        contentType = request.getHeader(b"content-type") or b""
        if contentType.split(b";")[0].strip().lower() != b"application/json":
            return _json(request, 415, {"error": "send the login as JSON"})
        assert request.content is not None
        body = request.content.read(MAX_LOGIN_BODY + 1)
        if len(body) > MAX_LOGIN_BODY:
            return _json(request, 413, {"error": "that login is too long"})
        try:
            fields = json.loads(body)
        except ValueError:
            fields = None
        if not (
            isinstance(fields, dict)
            and isinstance(fields.get("name"), str)
            and isinstance(fields.get("password"), str)
            and fields["name"]
            and fields["password"]
        ):
            return _json(request, 400, {"error": "give a name and a password"})
        address = request.getClientAddress()
        secure = request.isSecure() or hostOf(address) is None
        gone: list[bool] = []
        request.notifyFinish().addErrback(lambda failure: gone.append(True))
        checking = logins.login(
            fields["name"],
            fields["password"],
            hostOf(address),
            secure,
            describeAddress(address),
        )
        del fields, body

        def loggedIn(account: Account) -> None:
            if gone:
                return
            entry = logins.store.entry(account.name)
            proof = "" if entry is None else entry.passwordHash
            sessions = self.pageLogins.sessions
            token = sessions.create(account.name, proof)
            request.addCookie(
                COOKIE,
                token,
                path=b"/",
                max_age=str(int(sessions.lifetime)),
                secure=request.isSecure(),
                httpOnly=True,
                sameSite="strict",
            )
            _answer(request, _json(request, 200, _accountJSON(account)))

        def notLoggedIn(failure: Failure) -> None:
            if gone:
                return
            if failure.check(LoginRefused):
                refused = failure.value
                assert isinstance(refused, LoginRefused)
                code = 429 if refused.result in ("throttled", "busy") else 403
                if refused.result == "error":
                    code = 503
                text = str(refused)
            else:
                self.log.failure("Could not log a page in", failure)
                code, text = 503, "logins are unavailable now; try again later"
            _answer(request, _json(request, code, {"error": text}))

        checking.addCallbacks(loggedIn, notLoggedIn)
        return NOT_DONE_YET

    def render_DELETE(self, request: Request) -> bytes:
        """
        Log out: end the session (its members are logged out) and clear
        the cookie.
        """
        refused = self._crossSite(request)
        if refused is not None:
            return refused
        self.pageLogins.sessions.revoke(_cookie(request))
        request.addCookie(
            COOKIE,
            "",
            path=b"/",
            max_age="0",
            secure=request.isSecure(),
            httpOnly=True,
            sameSite="strict",
        )
        return _json(request, 200, _accountJSON(None))


def webSite(
    buildMember: MemberBuilder,
    origins: OriginPolicy,
    perAddress: int | None = None,
    total: int = 1024,
    logLimit: LogLimiter | None = None,
    others: Mapping[str, SubprotocolBuilder] | None = None,
    logins: PageLogins | None = None,
) -> WebSite:
    """
    Return the site of C{--web}: the page at C{/}, its assets, and the
    WebSocket at C{/ws}, whose members C{buildMember} builds (or, for the
    subprotocols of C{others}, what C{others} builds); at most
    C{perAddress} HTTP connections (not yet WebSockets) from one address,
    C{total} in all, those refused logged through C{logLimit}. With
    C{logins}, the page's login at C{/session}, whose cookie logs in the
    WebSockets opened with it.
    """
    root = Root(_asset("index.html", b"text/html; charset=utf-8"))
    for name, contentType in _ASSETS:
        root.putChild(name.encode("ascii"), _asset(name, contentType))
    root.putChild(b"ws", WebSocketResource(buildMember, origins, others, logins))
    if logins is not None:
        root.putChild(b"session", SessionResource(logins, origins))
    return WebSite(root, perAddress, total, origins, logLimit, timeout=HTTP_TIMEOUT)

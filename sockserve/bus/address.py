"""
Where the bus is: C{--bus redis://[:PASSWORD@]HOST[:PORT][/DB]},
C{rediss://...} (TLS), C{unix:///path/to/redis.sock[?db=N]}, or
C{redis+sentinel://[USER:PASS@]HOST:PORT[,HOST:PORT...]/SERVICE[/DB]}: the
sentinels to ask for the primary of C{SERVICE} (see
L{sockserve.bus.redis}), or C{rediss+sentinel://...[?ssl_ca_certs=PATH]}
to speak TLS to the sentinels and the primary alike.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from twisted.internet.endpoints import (
    HostnameEndpoint,
    UNIXClientEndpoint,
    wrapClientTLS,
)
from twisted.internet.interfaces import IStreamClientEndpoint

DEFAULT_PORT = 6379
DEFAULT_SENTINEL_PORT = 26379
SENTINEL = "redis+sentinel"
SENTINEL_TLS = "rediss+sentinel"
# Seconds to wait for a TCP connection to the bus.
CONNECT_TIMEOUT = 3


@dataclass(frozen=True)
class BusAddress:
    """
    A Redis server to use as the bus.

    @ivar password: never shown (see L{describe}).
    @ivar caFile: C{rediss}: the certificate authorities to trust, instead of
        the system's (C{?ssl_ca_certs=PATH}, as redis-py spells it).
    @ivar sentinels: C{redis+sentinel}: the sentinels, C{(host, port)}, in
        the order they are asked.
    @ivar service: C{redis+sentinel}: the name the sentinels know the
        primary by.
    """

    scheme: str
    host: str | None = None
    port: int = DEFAULT_PORT
    path: str | None = None
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    caFile: str | None = None
    sentinels: tuple[tuple[str, int], ...] = ()
    service: str | None = None

    def describe(self) -> str:
        """
        Return the address as logs and messages show it, without password.
        """
        if self.scheme == "unix":
            where = f"unix://{self.path}"
            return where if self.db == 0 else f"{where}?db={self.db}"
        if self.scheme in (SENTINEL, SENTINEL_TLS):
            hosts = ",".join(_hostPort(host, port) for host, port in self.sentinels)
            where = f"{self.scheme}://{hosts}/{self.service}"
        else:
            where = f"{self.scheme}://{_hostPort(self.host or '', self.port)}"
        return where if self.db == 0 else f"{where}/{self.db}"

    def withPassword(self, password: str | None) -> BusAddress:
        """
        Return this address with C{password}, unless it names one already.
        """
        if self.password is not None or password is None:
            return self
        return replace(self, password=password)

    def sentinelAt(self, host: str, port: int) -> BusAddress:
        """
        Return the address of the sentinel at C{host} and C{port}, asked with
        this address's user and password (a sentinel has no databases), over
        TLS if this address is C{rediss+sentinel}.
        """
        return BusAddress(
            self._dataScheme(),
            host,
            port,
            username=self.username,
            password=self.password,
            caFile=self.caFile,
        )

    def _dataScheme(self) -> str:
        """
        C{rediss} for a C{rediss+sentinel} address, else C{redis}.
        """
        return "rediss" if self.scheme == SENTINEL_TLS else "redis"

    def primaryAt(self, host: str, port: int) -> BusAddress:
        """
        Return the address of the data node at C{host} and C{port} (the
        primary the sentinels named), with this address's database, user
        and password, over TLS if this address is C{rediss+sentinel}.
        """
        return BusAddress(
            self._dataScheme(),
            host,
            port,
            db=self.db,
            username=self.username,
            password=self.password,
            caFile=self.caFile,
        )

    def endpoint(self, reactor: object) -> IStreamClientEndpoint:
        """
        Return an endpoint that connects to the bus.
        """
        if self.scheme in (SENTINEL, SENTINEL_TLS):
            raise ValueError("ask the sentinels for the primary's address first")
        if self.scheme == "unix":
            assert self.path is not None
            return UNIXClientEndpoint(reactor, self.path, timeout=CONNECT_TIMEOUT)
        assert self.host is not None
        tcp = HostnameEndpoint(reactor, self.host, self.port, timeout=CONNECT_TIMEOUT)
        if self.scheme == "redis":
            return tcp
        from twisted.internet.ssl import Certificate, optionsForClientTLS

        trust = None
        if self.caFile is not None:
            trust = Certificate.loadPEM(Path(self.caFile).read_bytes())
        return wrapClientTLS(
            optionsForClientTLS(self.host, trustRoot=trust),
            tcp,
        )


_PASSWORD = re.compile(r"(://[^:@/]*:)[^@/]*@")


def redacted(text: str) -> str:
    """
    Return the address C{text} with its password, if any, hidden.
    """
    return _PASSWORD.sub(r"\1***@", text)


def parseBusAddress(text: str) -> BusAddress:
    """
    Parse a C{--bus} value.

    @raise ValueError: with a message saying what is wrong (never the
        password).
    """
    try:
        return _parse(text)
    except ValueError as error:
        message = str(error)
    scheme, separator, rest = text.strip().partition("://")
    _, at, after = rest.rpartition("@")
    if not (separator and at):
        raise ValueError(message.replace(repr(text), repr(redacted(text))))
    # The user and password may hold what ends them early (a generated
    # password's / ? #): what went wrong is told of the address without
    # them, so that no part of the password shows.
    hidden = f"{scheme}://***@{after}"
    try:
        _parse(hidden)
    except ValueError as error:
        raise ValueError(str(error)) from None
    raise ValueError(
        f"{hidden!r}: the user or password holds a character an address "
        "cannot (/ ? or #): write it %-encoded (%2F for /), or give the "
        "password with --bus-password-file"
    )


def _hostPort(host: str, port: int) -> str:
    """
    C{host:port}, an IPv6 host in brackets.
    """
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


_SENTINEL_HOST = re.compile(
    r"\[(?P<v6>[^\]]+)\](?::(?P<v6port>[^:]*))?|(?P<host>[^:\[\]]+)(?::(?P<port>[^:]*))?"
)
_SERVICE = re.compile(r"[A-Za-z0-9_.-]+")


def _parseSentinel(text: str, usage: str) -> BusAddress:
    """
    Parse a C{redis+sentinel://} or C{rediss+sentinel://} address
    (C{urlsplit} takes no list of hosts).
    """
    scheme, _, rest = text.strip().partition("://")
    scheme = scheme.lower()
    rest, _, rawQuery = rest.partition("?")
    query = parse_qs(rawQuery, keep_blank_values=True)
    caFiles = [path for path in query.pop("ssl_ca_certs", []) if path]
    if query or (rawQuery and not caFiles):
        raise ValueError(
            f"{text!r}: a sentinel address takes no options but ssl_ca_certs; {usage}"
        )
    if caFiles and scheme != SENTINEL_TLS:
        raise ValueError(f"{text!r}: ssl_ca_certs is for rediss+sentinel:// addresses")
    netloc, _, path = rest.partition("/")
    username = password = None
    if "@" in netloc:
        userinfo, _, netloc = netloc.rpartition("@")
        user, colon, secret = userinfo.partition(":")
        username = unquote(user) if user else None
        password = unquote(secret) if colon else None
    sentinels = []
    for each in netloc.split(","):
        found = _SENTINEL_HOST.fullmatch(each)
        if found is None:
            raise ValueError(f"{text!r}: {each!r} is not HOST:PORT; {usage}")
        host = found["v6"] or found["host"]
        port = found["v6port"] if found["v6"] else found["port"]
        if port is None or port == "":
            number = DEFAULT_SENTINEL_PORT
        elif port.isascii() and port.isdigit() and 0 < int(port) < 65536:
            number = int(port)
        else:
            raise ValueError(f"{text!r}: {port!r} is not a port; {usage}")
        sentinels.append((host.lower(), number))
    service, _, db = path.strip("/").partition("/")
    if not _SERVICE.fullmatch(service):
        raise ValueError(
            f"{text!r} names no service (letters, digits, - _ .) after the "
            f"sentinels; {usage}"
        )
    return BusAddress(
        scheme,
        db=_db(db or "0", text),
        username=username,
        password=password,
        sentinels=tuple(sentinels),
        service=service,
        caFile=caFiles[-1] if caFiles else None,
    )


def _parse(text: str) -> BusAddress:
    usage = (
        "expected redis://[:PASSWORD@]HOST[:PORT][/DB], rediss://..., "
        "unix:///path/to/redis.sock or "
        "redis+sentinel://HOST:PORT[,HOST:PORT...]/SERVICE[/DB] (rediss+sentinel:// "
        "for TLS)"
    )
    if text.strip().lower().startswith((SENTINEL + "://", SENTINEL_TLS + "://")):
        return _parseSentinel(text, usage)
    try:
        parts = urlsplit(text.strip())
        port = parts.port
    except ValueError as error:
        raise ValueError(f"{text!r} is not a bus address ({error}); {usage}") from None
    scheme = parts.scheme.lower()
    query = parse_qs(parts.query)
    password = unquote(parts.password) if parts.password is not None else None
    username = unquote(parts.username) if parts.username else None
    if scheme == "unix":
        if not parts.path or parts.netloc:
            raise ValueError(f"{text!r} is not a bus address; {usage}")
        return BusAddress(
            "unix",
            path=unquote(parts.path),
            db=_db(query.get("db", ["0"])[-1], text),
            username=username,
            password=password,
        )
    if scheme not in ("redis", "rediss"):
        raise ValueError(f"{text!r} is not a bus address; {usage}")
    if not parts.hostname:
        raise ValueError(f"{text!r} names no host; {usage}")
    path = parts.path.strip("/")
    caFiles = query.get("ssl_ca_certs")
    if caFiles and scheme != "rediss":
        raise ValueError(f"{text!r}: ssl_ca_certs is for rediss:// addresses")
    return BusAddress(
        scheme,
        host=parts.hostname,
        port=port if port is not None else DEFAULT_PORT,
        db=_db(path or "0", text),
        username=username,
        password=password,
        caFile=caFiles[-1] if caFiles else None,
    )


def _db(value: str, text: str) -> int:
    if not (value.isascii() and value.isdigit()) or int(value) > 65535:
        raise ValueError(f"{text!r}: the database must be a number, not {value!r}")
    return int(value)

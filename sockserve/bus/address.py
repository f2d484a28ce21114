"""
Where the bus is: C{--bus redis://[:PASSWORD@]HOST[:PORT][/DB]},
C{rediss://...} (TLS) or C{unix:///path/to/redis.sock[?db=N]}.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from twisted.internet.endpoints import (
    HostnameEndpoint,
    UNIXClientEndpoint,
    wrapClientTLS,
)
from twisted.internet.interfaces import IStreamClientEndpoint

DEFAULT_PORT = 6379
# Seconds to wait for a TCP connection to the bus.
CONNECT_TIMEOUT = 3


@dataclass(frozen=True)
class BusAddress:
    """
    A Redis server to use as the bus.

    @ivar password: never shown (see L{describe}).
    @ivar caFile: C{rediss}: the certificate authorities to trust, instead of
        the system's (C{?ssl_ca_certs=PATH}, as redis-py spells it).
    """

    scheme: str
    host: str | None = None
    port: int = DEFAULT_PORT
    path: str | None = None
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    caFile: str | None = None

    def describe(self) -> str:
        """
        Return the address as logs and messages show it, without password.
        """
        if self.scheme == "unix":
            where = f"unix://{self.path}"
            return where if self.db == 0 else f"{where}?db={self.db}"
        host = f"[{self.host}]" if self.host and ":" in self.host else self.host
        where = f"{self.scheme}://{host}:{self.port}"
        return where if self.db == 0 else f"{where}/{self.db}"

    def withPassword(self, password: str | None) -> BusAddress:
        """
        Return this address with C{password}, unless it names one already.
        """
        if self.password is not None or password is None:
            return self
        return BusAddress(
            self.scheme,
            self.host,
            self.port,
            self.path,
            self.db,
            self.username,
            password,
            self.caFile,
        )

    def endpoint(self, reactor: object) -> IStreamClientEndpoint:
        """
        Return an endpoint that connects to the bus.
        """
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
        raise ValueError(str(error).replace(repr(text), repr(redacted(text)))) from None


def _parse(text: str) -> BusAddress:
    usage = (
        "expected redis://[:PASSWORD@]HOST[:PORT][/DB], rediss://... or "
        "unix:///path/to/redis.sock"
    )
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

"""
Readable names for the addresses Twisted hands to protocols.
"""

from __future__ import annotations

import ipaddress

from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.interfaces import IAddress

from sockserve._text import safeText

_MAPPED_PREFIX = "::ffff:"


def hostOf(address: IAddress) -> str | None:
    """
    Return the host part of an IP address (IPv4-mapped IPv6 shown as IPv4), or
    C{None} for addresses that have none (UNIX sockets).
    """
    if isinstance(address, (IPv4Address, IPv6Address)):
        host = address.host
        if host.startswith(_MAPPED_PREFIX) and "." in host:
            return host[len(_MAPPED_PREFIX) :]
        return host
    return None


def networkOf(host: str) -> str:
    """
    Return what counts as one address against floods: an IPv4 address, or
    the /64 network of an IPv6 one (one machine may hold all of it). Give it
    what L{hostOf} returns, so that an IPv4 client of a dual-stack listener
    counts as itself.
    """
    if ":" not in host:
        return host
    try:
        return str(ipaddress.ip_network(f"{host}/64", strict=False))
    except ValueError:
        return host


def describeAddress(address: IAddress) -> str:
    """
    Return C{host:port} for an IPv4 address, C{[host]:port} for IPv6, and
    C{unix:path} (or C{unix} for an unnamed peer) for a UNIX socket, its
    path made safe to show (see L{safeText}).
    """
    host = hostOf(address)
    if host is not None:
        assert isinstance(address, (IPv4Address, IPv6Address))
        if ":" in host:
            return f"[{host}]:{address.port}"
        return f"{host}:{address.port}"
    if isinstance(address, UNIXAddress):
        name = address.name
        if not name:
            return "unix"
        # A client picks its own socket's name: escape it like chat text,
        # for it is shown to others and logged (abstract names begin with
        # NUL).
        return "unix:" + safeText(name).decode("utf-8")
    return str(address)

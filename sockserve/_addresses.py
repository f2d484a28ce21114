"""
Readable names for the addresses Twisted hands to protocols.
"""

from __future__ import annotations

import ipaddress

from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.interfaces import IAddress

from sockserve._text import safeText

_MAPPED_PREFIX = "::ffff:"
# An IPv6 client is counted by its network of this size: one machine may
# hold all of it.
IPV6_PREFIX = 64


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
    Return what counts as one address, for limits per address, of C{host}
    (as L{hostOf} returns it): an IPv4 address itself (an IPv4-mapped IPv6
    address as its IPv4 address), or the /64 network of an IPv6 address
    (C{2001:db8::/64}; a zone id is dropped). Anything else is its own.
    """
    if ":" not in host:
        return host
    try:
        address = ipaddress.IPv6Address(host.partition("%")[0])
    except ValueError:
        return host
    if address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(ipaddress.IPv6Network((address, IPV6_PREFIX), strict=False))


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

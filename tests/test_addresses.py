"""
Address names and the open-file limit.
"""

from __future__ import annotations

import resource

import pytest
from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress

from sockserve._addresses import describeAddress, hostOf, networkOf
from sockserve._rlimits import raiseOpenFileLimit


@pytest.mark.parametrize(
    ("address", "host", "described"),
    [
        (IPv4Address("TCP", "127.0.0.1", 5000), "127.0.0.1", "127.0.0.1:5000"),
        (IPv6Address("TCP", "::1", 5000), "::1", "[::1]:5000"),
        (IPv6Address("TCP", "::ffff:10.0.0.1", 7), "10.0.0.1", "10.0.0.1:7"),
        (UNIXAddress(b"/run/s.sock"), None, "unix:/run/s.sock"),
        (UNIXAddress(None), None, "unix"),
        (
            UNIXAddress(b"\x1b[2J\x1b[31mPWNED\r\n2026 fake admin line"),
            None,
            "unix:\\x1b[2J\\x1b[31mPWNED\\x0d\\x0a2026 fake admin line",
        ),
        (UNIXAddress(b"\x00abstract"), None, "unix:\\x00abstract"),
    ],
)
def test_addresses(address: object, host: str | None, described: str) -> None:
    """IPv4, IPv6 (mapped IPv4 shown as IPv4) and UNIX peers have readable
    names, a UNIX peer's (which the client chose) escaped like chat text;
    only IP peers have a host."""
    assert hostOf(address) == host  # type: ignore[arg-type]
    assert describeAddress(address) == described  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("host", "network"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:0:1::1", "2001:db8:0:1::/64"),
        ("2001:db8:0:1:ffff:ffff:ffff:ffff", "2001:db8:0:1::/64"),
        ("2001:DB8:0:1::2", "2001:db8:0:1::/64"),
        ("2001:db8:0:2::1", "2001:db8:0:2::/64"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ("::ffff:cb00:7107", "203.0.113.7"),
        ("fe80::1%eth0", "fe80::/64"),
        ("not an address", "not an address"),
    ],
)
def test_what_counts_as_one_address(host: str, network: str) -> None:
    """An IPv4 address is one address (written as IPv4-mapped IPv6 too); an
    IPv6 address counts as its /64 network, whatever its spelling or zone."""
    assert networkOf(host) == network


def test_other_addresses_use_their_repr() -> None:
    """An address of another kind is shown as it prints."""

    class Strange:
        def __str__(self) -> str:
            return "strange"

    assert describeAddress(Strange()) == "strange"  # type: ignore[arg-type]


def test_open_file_limit_is_raised_to_the_hard_limit() -> None:
    """The soft limit is raised to the hard limit, and left alone if it is
    there already."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, 256), hard))
        assert raiseOpenFileLimit() == hard
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == hard
        assert raiseOpenFileLimit() == hard
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

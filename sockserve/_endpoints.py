"""
Turning C{--port} values into Twisted server endpoint descriptions.
"""

from __future__ import annotations

from twisted.internet.endpoints import serverFromString

_BACKLOG_TYPES = ("tcp", "tcp6", "unix", "ssl")
# Parsing these reads the environment they run in (systemd's LISTEN_FDS), so
# they can only be checked when the server starts.
_CHECKED_AT_START = ("systemd",)


def quoteColons(value: str) -> str:
    """
    Escape the colons of C{value} (an IPv6 address) for an endpoint description.
    """
    return value.replace("\\", "\\\\").replace(":", "\\:")


def describeListener(port: str, interface: str, backlog: int) -> tuple[str, str]:
    """
    Return the endpoint description for a C{--port} value, and a label for
    messages about it.

    A bare number listens on C{interface} (C{tcp6} for an IPv6 interface);
    anything else is a Twisted server endpoint description, to which the
    backlog is added if it takes one and does not name one already.

    @raise ValueError: if C{port} is neither.
    """
    kind = port.partition(":")[0]
    if port.isdigit():
        number = int(port)
        if number > 65535:
            raise ValueError(f"port {number} is out of range (0 to 65535)")
        kind = "tcp6" if ":" in interface else "tcp"
        label = (
            f"[{interface}]:{number}" if ":" in interface else f"{interface}:{number}"
        )
        description = (
            f"{kind}:{number}:interface={quoteColons(interface)}:backlog={backlog}"
        )
    else:
        label = port
        description = port
        if kind in _BACKLOG_TYPES and ":backlog=" not in port:
            description = f"{port}:backlog={backlog}"
    if kind in _CHECKED_AT_START:
        return description, label
    try:
        serverFromString(None, description)
    except Exception as error:
        raise ValueError(
            f"{port!r} is not a port number or a server endpoint description "
            f"({type(error).__name__}: {error})"
        ) from None
    return description, label

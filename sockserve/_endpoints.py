"""
Turning C{--port} values into Twisted server endpoint descriptions.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import re
import socket

from twisted.internet.endpoints import serverFromString
from twisted.python.systemd import ListenFDs

_BACKLOG_TYPES = ("tcp", "tcp6", "unix", "ssl")
# The kinds that bind an address: without an interface, Twisted binds every
# address; sockserve binds --interface instead.
_INTERFACE_TYPES = ("tcp", "tcp6", "ssl")
_WRAPPERS = ("haproxy",)
_UNESCAPED_COLON = re.compile(r"(?<!\\):")
# Parsing these reads the environment they run in (systemd's LISTEN_FDS), so
# they can only be checked when the server starts.
_CHECKED_AT_START = ("systemd",)
# The mode of a UNIX socket whose description names none: its owner and
# group may connect, not every local user (Twisted's default is 0666).
UNIX_MODE = "660"
# The longest path a UNIX socket may have on Linux (sun_path less its NUL).
UNIX_PATH_MAX = 107


def quoteColons(value: str) -> str:
    """
    Escape the colons of C{value} (an IPv6 address) for an endpoint description.
    """
    return value.replace("\\", "\\\\").replace(":", "\\:")


def splitDescription(description: str) -> list[str]:
    """
    Split an endpoint description at its unescaped colons (each part keeps
    its escapes).
    """
    return _UNESCAPED_COLON.split(description)


def unquoteColons(value: str) -> str:
    """
    Undo L{quoteColons}.
    """
    return re.sub(r"\\(.)", r"\1", value)


def interfaceFor(kind: str, interface: str) -> str:
    """
    Return the address an endpoint of C{kind} binds for C{--interface}: a
    C{tcp6} endpoint takes the IPv6 form of an IPv4 interface (C{::1} for
    loopback, C{::} for every address, C{::ffff:a.b.c.d} otherwise).
    """
    if kind != "tcp6" or ":" in interface:
        return interface
    try:
        address = ipaddress.IPv4Address(interface)
    except ValueError:
        return interface
    if address.is_loopback:
        return "::1"
    if address.is_unspecified:
        return "::"
    return f"::ffff:{address}"


def withInterface(description: str, interface: str) -> str:
    """
    Add C{interface=} to an endpoint C{description} of a kind that binds an
    address (C{tcp}, C{tcp6}, C{ssl}, and C{haproxy} wrapping one) and names
    none, so that descriptions, like bare port numbers, listen on
    C{--interface} (loopback by default) unless they say otherwise. A
    description with more than one positional argument (an interface may be
    among them) is left as it is.
    """
    parts = splitDescription(description)
    wrapped = parts[1:] if parts[0].lower() in _WRAPPERS else parts
    kind = wrapped[0].lower() if wrapped else ""
    if kind not in _INTERFACE_TYPES or _names(wrapped, "interface"):
        return description
    return f"{description}:interface={quoteColons(interfaceFor(kind, interface))}"


def _names(parts: list[str], argument: str) -> bool:
    """
    Tell whether the split description C{parts} may name C{argument}: as a
    keyword, or among several positional arguments (which sockserve does not
    try to read).
    """
    if any(part.startswith(f"{argument}=") for part in parts[1:]):
        return True
    return len([part for part in parts[1:] if "=" not in part]) > 1


def describeListener(port: str, interface: str, backlog: int) -> tuple[str, str]:
    """
    Return the endpoint description for a C{--port} value, and a label for
    messages about it.

    A bare number listens on C{interface} (C{tcp6} for an IPv6 interface);
    anything else is a Twisted server endpoint description, to which the
    interface (see L{withInterface}) and the backlog are added if it takes
    them and does not name them already.

    @raise ValueError: if C{port} is neither.
    """
    kind = port.partition(":")[0].lower()
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
        description = withInterface(port, interface)
        if kind in _BACKLOG_TYPES and not _names(splitDescription(port), "backlog"):
            description = f"{description}:backlog={backlog}"
        if kind == "unix" and not _names(splitDescription(port), "mode"):
            description = f"{description}:mode={UNIX_MODE}"
    if kind in _CHECKED_AT_START:
        return description, label
    if kind in _WRAPPERS:
        # Not imported with the module: sockserve-client uses this one too.
        from sockserve._twisted import proxyProtocolProblem

        problem = proxyProtocolProblem()
        if problem is not None:
            raise ValueError(f"{port!r}: {problem}")
    try:
        serverFromString(None, description)
    except ImportError as error:
        if "OpenSSL" in str(error):
            raise ValueError(
                f"{port!r} needs TLS, and pyOpenSSL is not installed: "
                "pip install 'sockserve[tls]'"
            ) from None
        raise ValueError(f"{port!r}: {error}") from None
    except Exception as error:
        raise ValueError(
            f"{port!r} is not a port number or a server endpoint description "
            f"({type(error).__name__}: {error})"
        ) from None
    return description, label


def passedSockets() -> ListenFDs | None:
    """
    Return the sockets systemd passed to this process, as Twisted's
    C{systemd:} endpoints see them: Twisted reads (and removes) the
    environment when L{twisted.internet.endpoints} is imported. C{None} if
    this Twisted does not say (see L{sockserve._twisted.systemdSockets}).
    """
    from sockserve._twisted import systemdSockets

    return systemdSockets()


def systemdProblem(description: str, passed: ListenFDs | None) -> str | None:
    """
    Say why the C{systemd:} endpoint C{description} finds no socket among
    those C{passed}, in words for the person who started the server, or
    return C{None} if it finds one (or if what was passed is not known).
    """
    if passed is None:
        return None
    descriptors = passed.inheritedDescriptors()
    names = list(passed.inheritedNamedDescriptors())
    if not descriptors:
        return (
            "no socket was passed by systemd (Twisted needs LISTEN_PID, "
            "LISTEN_FDS and LISTEN_FDNAMES; systemd-socket-activate sets "
            "LISTEN_FDNAMES only with --fdname=NAME)"
        )
    arguments = dict(
        part.partition("=")[::2] for part in splitDescription(description)[1:]
    )
    if "index" in arguments:
        index = arguments["index"]
        if not index.isdigit() or int(index) >= len(descriptors):
            return (
                f"there is no socket at index {index}: {len(descriptors)} were passed"
            )
    elif "name" in arguments and arguments["name"] not in names:
        return (
            f"no socket named {arguments['name']!r} was passed "
            f"(passed: {', '.join(names)})"
        )
    return None


def bindProblem(description: str) -> str | None:
    """
    Try binding the address of a C{tcp} or C{tcp6} endpoint C{description}
    (with a fixed port) the way Twisted will, without listening, and return
    the error as a message (C{[Errno 98] Address already in use}), or
    C{None} if it binds or is of another kind.

    C{twistd} builds the service before it opens its log and detaches into
    the background; a failure found here is reported on the terminal that
    started it, in one line, instead of in a log and through twistd's
    status pipe. (The real bind may still fail later: the address was only
    tried.)
    """
    parts = splitDescription(description)
    if parts[0] in _WRAPPERS:
        parts = parts[1:]
    if len(parts) >= 2 and parts[0] == "unix":
        return unixProblem(parts)
    if not parts or parts[0] not in ("tcp", "tcp6") or len(parts) < 2:
        return None
    port = parts[1]
    if not port.isdigit() or int(port) == 0:
        return None
    named = dict(part.partition("=")[::2] for part in parts[2:] if "=" in part)
    interface = unquoteColons(named.get("interface", ""))
    if parts[0] == "tcp6" or ":" in interface:
        family = socket.AF_INET6
    else:
        family = socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((interface, int(port)))
    except OSError as error:
        return str(error)
    return None


def unixProblem(parts: list[str]) -> str | None:
    """
    Say why a UNIX socket of the split description C{parts} cannot be made
    (its directory is missing, is not a directory or cannot be written, or
    its path is too long), or return C{None} if it looks as if it can.
    """
    named = dict(part.partition("=")[::2] for part in parts[2:] if "=" in part)
    path = unquoteColons(parts[1] if "=" not in parts[1] else named.get("address", ""))
    if not path:
        return None
    if len(os.fsencode(path)) > UNIX_PATH_MAX:
        return f"the path is longer than a UNIX socket's {UNIX_PATH_MAX} bytes"
    directory = os.path.dirname(os.path.abspath(path))
    try:
        if not os.path.isdir(directory):
            os.stat(directory)
            raise OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), directory)
        if not os.access(directory, os.W_OK | os.X_OK):
            raise OSError(errno.EACCES, os.strerror(errno.EACCES), directory)
        # Where access() says yes and the kernel no (/proc, for root).
        probe = os.path.join(directory, f".sockserve-{os.getpid()}.probe")
        if len(os.fsencode(probe)) <= UNIX_PATH_MAX:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                try:
                    sock.bind(probe)
                except OSError as error:
                    raise OSError(error.errno, error.strerror, directory) from None
            os.unlink(probe)
    except OSError as error:
        return describeOSError(error)
    return None


def describeOSError(error: OSError) -> str:
    """
    Return C{error} as C{[Errno N] what: 'path'}, naming the path it
    concerns (the second of two, the one a link was to be made at) as
    text, never as a bytes repr.
    """
    if error.errno is None or error.strerror is None:
        return str(error)
    name = error.filename2 if error.filename2 is not None else error.filename
    if isinstance(name, bytes):
        name = os.fsdecode(name)
    text = f"[Errno {error.errno}] {error.strerror}"
    if name is not None:
        text += f": {str(name)!r}"
    return text

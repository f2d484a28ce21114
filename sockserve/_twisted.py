"""
Everything sockserve takes from Twisted that Twisted does not promise: private
attributes and modules, and undocumented contracts. No other module of
sockserve reaches into Twisted's private state (C{tests/test_twisted_internals.py}
checks it, and pins each use below, so that a Twisted that changes one fails a
test, not a server).

Each use names the Twisted release it was checked on, and what sockserve does
when the thing is missing: it falls back on Twisted's public behaviour, or it
says so in one log line, or it refuses to start with a one-line error. Where
Twisted has a public way to do the same, the public way is used instead, and
not from here.

When upgrading Twisted: run C{tests/test_twisted_internals.py} on the new
release, read each section below against the new source, and update the
release named in L{CHECKED_ON}.
"""

from __future__ import annotations

import signal
import stat
from collections.abc import MutableMapping
from os import close, fstat, path, remove, write
from socket import socket
from typing import TYPE_CHECKING, Any

from twisted.internet import tcp
from twisted.internet.error import ConnectionDone, ConnectionFdescWentAway
from twisted.internet.interfaces import IProtocol, IReactorTime
from twisted.internet.main import CONNECTION_DONE, CONNECTION_LOST
from twisted.logger import Logger
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from twisted.python import log as legacy_log
from twisted.python.failure import Failure
from twisted.python.logfile import BaseLogFile
from twisted.python.systemd import ListenFDs
from twisted.web.http import HTTPChannel

if TYPE_CHECKING:
    from twisted.protocols.haproxy._info import ProxyInfo

# The Twisted release every use below was read against and tested on.
CHECKED_ON = "26.10.0"

_log = Logger()
# What was said already about a missing piece: once per process is enough.
_warned: set[str] = set()


def _warnOnce(key: str, format: str, **fields: object) -> None:
    """
    Log C{format} once per process for C{key}: a piece of Twisted sockserve
    uses is missing from this release.
    """
    if key in _warned:
        return
    _warned.add(key)
    _log.warn(format, checked=CHECKED_ON, **fields)


# ---------------------------------------------------------------------------
# TCP connections' write buffer (sockserve._sending), checked on 26.10.0.
#
# twisted.internet.abstract.FileDescriptor buffers writes in dataBuffer (sent
# from offset on) and in _tempDataBuffer (_tempDataLen bytes, not yet joined);
# _writeDisconnecting and _aborting say that a close is under way. A
# tcp.Connection holds its socket in socket (deleted once closed), has a TLS
# flag (set by startTLS), and its reactor in reactor. None of this is public:
# the public way is transport.write, which only appends and waits a reactor
# pass. Missing, a class of connection is written to through transport.write
# (one log line says so).
# ---------------------------------------------------------------------------

# What the direct path reads from the class (dataBuffer and offset are class
# attributes, reset on each connection), and from each connection.
_CLASS_STATE = (
    "dataBuffer",
    "offset",
    "connected",
    "disconnecting",
    "producer",
    "_writeDisconnecting",
    "_aborting",
)
_CONNECTION_STATE = ("socket", "_tempDataLen")

# Whether each class of transport met so far has that state: working it out
# costs more than a oneshot reply.
_KNOWN_KINDS: dict[type, bool] = {}


def readableKind(kind: type) -> bool:
    """
    Tell whether transports of class C{kind} are Twisted TCP connections
    whose buffer state sockserve knows how to read (worked out once per
    class; a TCP connection class that lacks it is logged once).
    """
    known = _KNOWN_KINDS.get(kind)
    if known is None:
        tcpKind = issubclass(kind, tcp.Connection)
        missing = [name for name in _CLASS_STATE if not hasattr(kind, name)]
        known = _KNOWN_KINDS[kind] = tcpKind and not missing
        if tcpKind and missing:
            _warnOnce(
                f"tcp:{kind.__qualname__}",
                "Twisted's {kind} has no {missing} (sockserve was checked on "
                "Twisted {checked}): its connections are written to through "
                "transport.write, one reactor pass later",
                kind=kind.__qualname__,
                missing=", ".join(missing),
            )
    return known


def canWriteDirectly(transport: object) -> bool:
    """
    Tell whether C{transport} is a plain (not TLS) Twisted TCP connection,
    still open, whose buffer state sockserve knows how to read.
    """
    # startTLS turns TLS on for one connection, not for its class; a closed
    # connection has lost its socket.
    return (
        readableKind(type(transport))
        and not getattr(transport, "TLS", True)
        and hasattr(transport, "socket")
        and hasattr(transport, "_tempDataLen")
    )


def nothingWaiting(connection: tcp.Connection) -> bool:
    """
    Tell whether C{connection} (see L{canWriteDirectly}) has nothing buffered
    and is open for writing, so that a write may go straight to its socket.
    """
    return (
        connection.offset == len(connection.dataBuffer)
        and not connection._tempDataLen
        and bool(connection.connected)
        and not connection.disconnecting
        and not connection._writeDisconnecting
        and not connection._aborting
    )


def mayCloseAtOnce(connection: tcp.Connection) -> bool:
    """
    Tell whether C{connection} (see L{canWriteDirectly}) has nothing buffered,
    is open for writing and has no producer: then once the kernel has taken a
    last write, L{closeWritten} may end it.
    """
    return nothingWaiting(connection) and connection.producer is None


def heldByTwisted(transport: object) -> int | None:
    """
    Return how many bytes Twisted holds for the TCP connection C{transport},
    not yet sent to the kernel; C{None} if it is not a connection whose
    buffer can be read.
    """
    if not readableKind(type(transport)) or not hasattr(transport, "_tempDataLen"):
        return None
    connection: tcp.Connection = transport  # type: ignore[assignment]
    return len(connection.dataBuffer) - connection.offset + connection._tempDataLen


def socketOf(connection: object) -> socket | None:
    """
    Return the socket of the TCP connection C{connection}, or C{None} once it
    is closed (or if it has none).
    """
    sock = getattr(connection, "socket", None)
    return sock if isinstance(sock, socket) else None


# The reason a connection closed by closeWritten is lost with: shared, as the
# reactor shares its own (a Failure is costly to build).
_CLOSED_CLEANLY = Failure(ConnectionDone())


def closeWritten(connection: tcp.Connection) -> None:
    """
    End C{connection}, whose socket has taken everything written and sent
    its end of stream (C{shutdown(SHUT_WR)}): stop reading, refuse further
    writes, and have its C{connectionLost} called on the reactor's next pass,
    as Twisted's own C{abortConnection} does (but as a clean close).
    """
    connection.stopReading()
    connection.disconnecting = True
    clock: IReactorTime = connection.reactor  # type: ignore[assignment]
    clock.callLater(0, connection.connectionLost, _CLOSED_CLEANLY)


# ---------------------------------------------------------------------------
# Handing an upgraded HTTP connection to a WebSocket member
# (sockserve.web.site), checked on 26.10.0.
#
# twisted.web has no public way to take a connection away from an
# HTTPChannel: twisted.web.websocket uses the channel's private
# _protocolUpgradeForWebsockets (it points the channel's dataReceived and
# connectionLost at the new protocol, and connects the protocol to the
# transport). What the client sent after the handshake in the same read is
# delivered by the channel's LineReceiver loop to rawDataReceived. A TCP
# connection delivers to its protocol attribute, a protocol wrapper (TLS, the
# PROXY protocol) to its wrappedProtocol; the channel keeps its requests in
# requests. And an HTTPChannel calls allHeadersReceived once a request's
# headers are in, an undocumented hook (see HeadersChannel).
# ---------------------------------------------------------------------------


def upgradeChannel(channel: HTTPChannel, member: IProtocol) -> None:
    """
    Give the connection of C{channel} to C{member}: what the transport
    delivers to the channel goes to C{member}, which is connected to the
    transport. Without Twisted's private method, the same is done here.
    """
    upgrade = getattr(channel, "_protocolUpgradeForWebsockets", None)
    if upgrade is not None:
        upgrade(member)
        return
    _warnOnce(
        "upgrade",
        "Twisted's HTTPChannel has no _protocolUpgradeForWebsockets (sockserve "
        "was checked on Twisted {checked}): sockserve hands connections over "
        "itself",
    )
    channel.dataReceived = member.dataReceived  # type: ignore[method-assign]
    channel.connectionLost = member.connectionLost  # type: ignore[method-assign]
    assert channel.transport is not None
    member.makeConnection(channel.transport)


def deliverRestOfRead(channel: HTTPChannel, member: IProtocol) -> None:
    """
    Have what follows the handshake in the read being handled (the client's
    first messages) go to C{member}: the channel's C{LineReceiver} loop hands
    it to C{rawDataReceived}, where the channel would keep it for a next
    request.
    """
    channel.rawDataReceived = member.dataReceived  # type: ignore[method-assign]


def pointTransportAt(channel: HTTPChannel, member: IProtocol) -> bool:
    """
    Have the transport of C{channel} deliver to C{member} directly, where it
    delivers through an attribute (C{protocol} on a TCP connection,
    C{wrappedProtocol} on a protocol wrapper); return whether it could (if
    not, the channel keeps forwarding, and stays in memory).
    """
    transport = channel.transport
    for attribute in ("wrappedProtocol", "protocol"):
        if getattr(transport, attribute, None) is channel:
            setattr(transport, attribute, member)
            return True
    return False


def dropRequests(channel: HTTPChannel) -> None:
    """
    Let go of the requests of C{channel}, whose connection is handed over:
    the request and the channel hold each other, and without this only the
    garbage collector would free them.
    """
    requests = getattr(channel, "requests", None)
    if isinstance(requests, list):
        del requests[:]


class HeadersChannel(HTTPChannel):
    """
    An HTTP channel told when a request's headers are all in
    (L{headersReceived}), before its body and before it is rendered.

    Twisted's C{HTTPChannel.allHeadersReceived} does that, undocumented. On
    a release without it, L{HEADERS_HOOK} is false: a channel relying on
    L{headersReceived} must not expect it (it is logged once, on the first
    connection).
    """

    def allHeadersReceived(self) -> None:
        """
        Twisted's hook: the headers are in.
        """
        self.headersReceived()
        super().allHeadersReceived()

    def headersReceived(self) -> None:
        """
        A request's headers are all in.
        """


HEADERS_HOOK = hasattr(HTTPChannel, "allHeadersReceived")


def warnIfNoHeadersHook(what: str) -> None:
    """
    Say once, if this Twisted has no C{allHeadersReceived}, that C{what}
    (a deadline for headers) does not hold.
    """
    if not HEADERS_HOOK:
        _warnOnce(
            "headers",
            "Twisted's HTTPChannel has no allHeadersReceived (sockserve was "
            "checked on Twisted {checked}): {what} does not hold",
            what=what,
        )


# ---------------------------------------------------------------------------
# The PROXY protocol (sockserve._proxy), checked on 26.10.0.
#
# twisted.protocols.haproxy's one public name is proxyEndpoint, whose wrapper
# connects the protocol when TCP connects, before the header naming the client
# is in (and never says when it is). sockserve subclasses the private
# twisted.protocols.haproxy._wrapper.HAProxyProtocolWrapper: its dataReceived
# parses the header (v1 or v2), keeps what it says in _proxyInfo (with the
# client's address as source), closes the connection on a bad one, and passes
# what follows to wrappedProtocol. Without them, haproxy: ports are refused at
# start-up, in one line (see proxyProtocolProblem).
# ---------------------------------------------------------------------------

PROXY_PROTOCOL_MISSING: str | None = None

if TYPE_CHECKING:
    from twisted.protocols.haproxy._wrapper import (
        HAProxyProtocolWrapper as HAProxyProtocolWrapper,
    )
    from twisted.protocols.haproxy._wrapper import (
        HAProxyWrappingFactory as HAProxyWrappingFactory,
    )
else:
    try:
        from twisted.protocols.haproxy._wrapper import (
            HAProxyProtocolWrapper,
            HAProxyWrappingFactory,
        )
    except ImportError as error:
        PROXY_PROTOCOL_MISSING = f"twisted.protocols.haproxy._wrapper: {error}"

        class HAProxyProtocolWrapper(ProtocolWrapper):
            """
            Stands in for Twisted's, missing: never used to serve.
            """

        class HAProxyWrappingFactory(WrappingFactory):
            """
            Stands in for Twisted's, missing: never used to serve.
            """

            protocol = HAProxyProtocolWrapper


def proxyProtocolProblem() -> str | None:
    """
    Say why this Twisted cannot serve C{haproxy:} ports as sockserve does,
    or return C{None} if it can.
    """
    missing = PROXY_PROTOCOL_MISSING
    if missing is None:
        from twisted.internet.protocol import Factory, Protocol

        wrapper = HAProxyProtocolWrapper(WrappingFactory(Factory()), Protocol())
        if not hasattr(wrapper, "_proxyInfo"):
            missing = "HAProxyProtocolWrapper._proxyInfo"
    if missing is None:
        return None
    return (
        f"the PROXY protocol (haproxy:) needs Twisted's {missing}, missing from "
        f"this Twisted (sockserve was checked on Twisted {CHECKED_ON})"
    )


def proxyHeader(wrapper: HAProxyProtocolWrapper) -> ProxyInfo | None:
    """
    Return what the PROXY header read by C{wrapper} says, or C{None} if it
    is not (all) in yet.
    """
    return wrapper._proxyInfo


def forgetProxyHeader(wrapper: HAProxyProtocolWrapper) -> None:
    """
    Have C{wrapper} forget its header (its C{getPeer} is then the balancer's
    address again): the header was refused.
    """
    wrapper._proxyInfo = None


# ---------------------------------------------------------------------------
# The sockets systemd passed (sockserve._endpoints), checked on 26.10.0.
#
# Twisted's systemd: endpoints read LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES
# into twisted.internet.endpoints._SystemdParser._sddaemon when the module is
# imported, and remove them from the environment: nothing public tells what
# they found. Without it, sockserve does not check systemd: ports before
# Twisted does (Twisted's own error, an IndexError or a KeyError, then says
# less), and says so once.
# ---------------------------------------------------------------------------


def systemdSockets() -> ListenFDs | None:
    """
    Return the sockets systemd passed to this process, as Twisted's
    C{systemd:} endpoints see them; C{None} if this Twisted does not say.
    """
    from twisted.internet import endpoints

    parser = getattr(endpoints, "_SystemdParser", None)
    passed = getattr(parser, "_sddaemon", None)
    if isinstance(passed, ListenFDs):
        return passed
    _warnOnce(
        "systemd",
        "Twisted's systemd: endpoints do not say which sockets systemd passed "
        "(sockserve was checked on Twisted {checked}): systemd: ports are not "
        "checked before Twisted opens them",
    )
    return None


# ---------------------------------------------------------------------------
# twistd's log file, and a log file's mode (sockserve._signals), checked on
# 26.10.0.
#
# twistd (twisted.scripts._twistd_unix.UnixAppLogger) opens its log file and
# keeps it nowhere but in the SIGUSR1 handler it installs to rotate it, a
# closure over the file: sockserve finds it there to reopen it on SIGHUP.
# A BaseLogFile keeps the file it has open in _file; it creates a file anew
# (on reopen and rotate) with the mode in its defaultMode attribute, read
# then (documented only as the constructor's argument). Without _file, a
# reopened file gets the umask's mode; without the closure, SIGHUP does not
# reopen the text log; each is said in one line.
# ---------------------------------------------------------------------------


def twistdTextLogFile() -> BaseLogFile | None:
    """
    Return the log file C{twistd}'s text log writes to, or C{None} when it
    logs to a stream (or when this Twisted keeps it elsewhere: logged once).
    """
    handler = signal.getsignal(signal.SIGUSR1)
    for cell in getattr(handler, "__closure__", None) or ():
        try:
            value = cell.cell_contents
        except ValueError:
            continue
        if isinstance(value, BaseLogFile):
            return value
    if getattr(handler, "__module__", "").startswith("twisted."):
        _warnOnce(
            "logfile",
            "twistd's SIGUSR1 handler no longer holds its log file (sockserve "
            "was checked on Twisted {checked}): SIGHUP does not reopen it",
        )
    return None


def openFileMode(logFile: BaseLogFile) -> int | None:
    """
    Return the permission bits of the file C{logFile} has open, or C{None}
    (closed, or a Twisted that keeps it elsewhere: logged once).
    """
    opened = getattr(logFile, "_file", None)
    if opened is None:
        if not getattr(logFile, "closed", False):
            _warnOnce(
                "logfile-mode",
                "Twisted's log files no longer keep their file in _file "
                "(sockserve was checked on Twisted {checked}): a log file made "
                "anew on SIGHUP gets the umask's mode, not the old file's",
            )
        return None
    try:
        return stat.S_IMODE(fstat(opened.fileno()).st_mode)
    except (AttributeError, OSError, ValueError):
        return None


def keepModeOnRotation(logFile: BaseLogFile) -> None:
    """
    Have the files C{logFile} makes anew (on rotation) get the mode of the
    one it has open, unless it was given a mode already.
    """
    if logFile.defaultMode is None:
        logFile.defaultMode = openFileMode(logFile)


def reopenKeepingMode(logFile: BaseLogFile) -> None:
    """
    Reopen C{logFile}: a file made anew gets the mode of the one it
    replaces (one already there, made by a rotation tool, keeps its own).
    """
    exists = path.exists(logFile.path)
    logFile.defaultMode = None if exists else openFileMode(logFile)
    logFile.reopen()


# ---------------------------------------------------------------------------
# twistd's start-up report (sockserve.service.StartupAbort), checked on
# 26.10.0.
#
# twistd's options (the parent of a plugin's options, usage.Options.parent,
# public) hold the pidfile's path under "pidfile" and, in a daemon, under
# "statusPipe" the pipe its launching process waits on: "0" means started, "1
# message" failed (the launcher prints the message and exits 1). twistd writes
# that pipe itself once the application has started (or when starting it
# raises, with a traceback in the log), unless the pipe is gone from its
# options. sockserve writes it to fail in one line, and takes it from twistd
# to say "started" only once the bus has answered. Without them, nothing is
# written: the launcher then says an error occurred, and the log says which.
# ---------------------------------------------------------------------------


def takeStatusPipe(config: MutableMapping[str, Any] | None) -> int | None:
    """
    Take twistd's status pipe from its options C{config}, so that twistd
    does not tell its launching process that the daemon started; return it
    (C{None} when not a daemon, or not run by twistd).
    """
    if config is None or config.get("statusPipe") is None:
        return None
    statusPipe: int = config["statusPipe"]
    config["statusPipe"] = None
    return statusPipe


def giveBackStatusPipe(
    config: MutableMapping[str, Any] | None, statusPipe: int | None
) -> None:
    """
    Give twistd's options C{config} back the status pipe taken by
    L{takeStatusPipe}, for L{reportFailedStart}.
    """
    if config is not None:
        config["statusPipe"] = statusPipe


def reportStarted(statusPipe: int | None) -> None:
    """
    Tell the launching process of a daemon, through the status pipe taken
    by L{takeStatusPipe}, that it started.
    """
    if statusPipe is not None:
        write(statusPipe, b"0")
        close(statusPipe)


def reportFailedStart(config: MutableMapping[str, Any] | None, message: str) -> None:
    """
    Tell C{twistd} (whose options are C{config}, or C{None} when not run by
    it) that start-up failed: remove its pidfile, then write C{message} to
    its status pipe, so that the launching process of a daemon exits with
    the message once the pidfile is gone.
    """
    if config is None:
        return
    pidfile = config.get("pidfile")
    if pidfile and path.exists(pidfile):
        remove(pidfile)
    statusPipe = config.get("statusPipe")
    if statusPipe is not None:
        config["statusPipe"] = None
        write(statusPipe, b"1 " + message.encode("utf-8")[:98])
        close(statusPipe)


# ---------------------------------------------------------------------------
# The reactor's dispatch (sockserve._reactor), checked on 26.10.0.
#
# twisted.internet.epollreactor.EPollReactor keeps its epoll object in
# _poller, the descriptors it watches in _selectables (a dict by file
# number), and the numbers of those watched for reading and writing in
# _reads and _writes. Its doPoll hands each ready one to _doReadOrWrite
# inside log.callWithLogger; the lean reactor does that work itself, with
# the reactor's event bits (_POLL_DISCONNECTED, _POLL_IN, _POLL_OUT) and
# its _disconnectSelectable. None of this is public: the public way is the
# reactor as it is. Missing, sockserve runs on Twisted's own epoll reactor
# (one log line says so).
# ---------------------------------------------------------------------------

_REACTOR_STATE = (
    "_disconnectSelectable",
    "_POLL_DISCONNECTED",
    "_POLL_IN",
    "_POLL_OUT",
    "doPoll",
)
_REACTOR_INSTANCE_STATE = ("_poller", "_selectables", "_reads", "_writes")
# What a descriptor whose fileno() is -1 is disconnected with (Twisted's
# reactor uses a private instance of the same error).
_GONE = ConnectionFdescWentAway("File descriptor lost")


def leanReactorClass() -> type | None:
    """
    Return L{LeanEPollReactor}, or C{None} where there is no epoll reactor
    or it lacks the state the lean one reads (logged once).
    """
    try:
        from twisted.internet.epollreactor import EPollReactor
    except ImportError:
        return None
    missing = [name for name in _REACTOR_STATE if not hasattr(EPollReactor, name)]
    if missing:
        _warnOnce(
            "reactor",
            "Twisted's EPollReactor has no {missing} (sockserve was checked on "
            "Twisted {checked}): sockserve runs on it as it is",
            missing=", ".join(missing),
        )
        return None

    class LeanEPollReactor(EPollReactor):
        """
        Twisted's epoll reactor, handing each ready descriptor to its
        handler without wrapping the call in a log context, and writing
        what was written in a pass before it next waits, without asking
        epoll first (see L{sockserve._reactor}).
        """

        def __init__(self) -> None:
            # Writers that asked to write since the last poll, in order; those
            # of each flush under way (a handler may flush again, through
            # iterate()), not tried yet; and the one being tried, with whether
            # it stopped writing.
            self._leanSoon: dict[Any, None] = {}
            self._leanFlushing: list[dict[Any, None]] = []
            self._leanTrying: object = None
            self._leanTryStopped = False
            super().__init__()

        def addWriter(self, writer: Any) -> None:
            """
            Have C{writer} write before the reactor next waits; epoll is
            asked to watch it only if it cannot write everything then.
            """
            if writer is self._leanTrying:
                # It tried and wants to go on: the kernel is full.
                super().addWriter(writer)
            elif writer.fileno() not in self._writes:
                self._leanSoon[writer] = None

        def removeWriter(self, writer: Any) -> None:
            """
            Stop C{writer} writing, whether it waits for its turn (in this
            pass's flush or the next) or for epoll.
            """
            if writer is self._leanTrying:
                self._leanTryStopped = True
            self._leanSoon.pop(writer, None)
            for flushing in self._leanFlushing:
                flushing.pop(writer, None)
            super().removeWriter(writer)

        def _waiting(self) -> list[Any]:
            """
            The writers waiting for their turn, in this pass's flush or the
            next.
            """
            # Each once, in order (a writer may be in a flush and the next).
            flushing = [w for each in self._leanFlushing for w in each]
            return list(dict.fromkeys([*flushing, *self._leanSoon]))

        def getWriters(self) -> list[Any]:
            """
            Return the writers, those waiting for their turn included.
            """
            writers: list[Any] = super().getWriters()
            return list(dict.fromkeys([*writers, *self._waiting()]))

        def removeAll(self) -> list[Any]:
            """
            Remove every reader and writer, and return them.
            """
            waiting = self._waiting()
            self._leanSoon.clear()
            for flushing in self._leanFlushing:
                flushing.clear()
            removed: list[Any] = super().removeAll()
            return list(dict.fromkeys([*removed, *waiting]))

        def _doReadOrWrite(self, selectable: Any, fd: int, event: int) -> None:
            """
            Handle C{event} on C{selectable}, as Twisted's reactor does: read
            and write what it can, and disconnect it when it says so, when
            its descriptor is gone, or when its handler raises (logged under
            its log prefix).
            """
            reading = False
            why: Any = None
            if event & self._POLL_DISCONNECTED and not event & self._POLL_IN:
                # Hung up, with nothing left to read: cleanly if it was being
                # read (its input simply ended), otherwise not.
                reading = fd in self._reads
                why = CONNECTION_DONE if reading else CONNECTION_LOST
            else:
                try:
                    if selectable.fileno() == -1:
                        why = _GONE
                    else:
                        if event & self._POLL_IN:
                            why = selectable.doRead()
                            reading = True
                        if not why and event & self._POLL_OUT:
                            why = selectable.doWrite()
                            reading = False
                except BaseException as error:
                    why = error
                    _logEscaped(selectable)
            if why:
                self._disconnectSelectable(selectable, why, reading)

        def _writeSoon(self) -> None:
            """
            Let each writer that asked since the last poll write now, as if
            epoll had said it could; watch with epoll only those the kernel
            did not take everything from. A writer stopped before its turn is
            skipped; if something escapes (C{KeyboardInterrupt}), those not
            tried yet wait for the next pass.
            """
            flushing, self._leanSoon = self._leanSoon, {}
            self._leanFlushing.append(flushing)
            outer = (self._leanTrying, self._leanTryStopped)
            writable = self._POLL_OUT
            try:
                for writer in list(flushing):
                    if writer not in flushing:
                        continue
                    del flushing[writer]
                    self._leanTrying = writer
                    self._leanTryStopped = False
                    # The descriptor's number is not needed for a writable
                    # event; whether it still has one is checked in there.
                    self._handle(writer, -1, writable)
                    self._leanTrying = None
                    if not self._leanTryStopped:
                        try:
                            super().addWriter(writer)
                        except Exception:
                            _logEscaped(writer)
            finally:
                self._leanFlushing.pop()
                self._leanTrying, self._leanTryStopped = outer
                if flushing:
                    self._leanSoon = {**flushing, **self._leanSoon}

        def _handle(self, selectable: Any, fd: int, event: int) -> None:
            """
            Handle C{event} on C{selectable}; what escapes is logged under
            its log prefix (a C{KeyboardInterrupt} stops the reactor).
            """
            try:
                self._doReadOrWrite(selectable, fd, event)
            except KeyboardInterrupt:
                raise
            except BaseException:
                _logEscaped(selectable)

        def doPoll(self, timeout: float | None) -> None:
            """
            Handle the descriptors that are ready, waiting up to C{timeout}
            seconds for one (for ever if C{None}) unless something waits to
            be written: then handle those ready at once, and write.
            """
            if self._leanSoon:
                # What was written since the last write waits: read what is
                # ready first, without waiting, so that the replies join it
                # (one send a connection for both, as Twisted's reactor gets
                # by writing when epoll next says so), then write it all.
                # The reactor then runs its timed calls and works out how
                # long to wait, which writing may have changed.
                self._handleReady(0)
                self._writeSoon()
            else:
                self._handleReady(timeout)

        def _handleReady(self, timeout: float | None) -> None:
            """
            Wait up to C{timeout} seconds (for ever if C{None}) for ready
            descriptors, and handle each.
            """
            # epoll.poll retries by itself when a signal interrupts it (PEP
            # 475), unless the signal's handler raises: that is the
            # reactor's to report.
            ready = self._poller.poll(
                -1 if timeout is None else timeout, len(self._selectables)
            )
            selectables = self._selectables
            handle = self._handle
            for fd, event in ready:
                selectable = selectables.get(fd)
                if selectable is not None:
                    handle(selectable, fd, event)

        doIteration = doPoll

    LeanEPollReactor.__module__ = "sockserve._reactor"
    LeanEPollReactor.__qualname__ = "LeanEPollReactor"
    return LeanEPollReactor


def leanReactorWorks(reactor: object) -> bool:
    """
    Tell whether C{reactor}, a new L{LeanEPollReactor}, has the state its
    dispatch reads (logged once if not).
    """
    missing = [name for name in _REACTOR_INSTANCE_STATE if not hasattr(reactor, name)]
    if missing:
        _warnOnce(
            "reactor-instance",
            "Twisted's EPollReactor keeps no {missing} (sockserve was checked "
            "on Twisted {checked}): sockserve runs on it as it is",
            missing=", ".join(missing),
        )
    return not missing


def _logEscaped(selectable: Any) -> None:
    """
    Log the exception being handled, raised by the handler of C{selectable},
    as Twisted's reactor does (C{Unhandled Error}), with the descriptor's log
    prefix as its system, as Twisted's C{log.callWithLogger} would give it.
    """
    try:
        prefix = selectable.logPrefix()
    except Exception:
        prefix = "(buggy logPrefix method)"
    legacy_log.err(system=prefix)

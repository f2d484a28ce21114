"""
What every sockserve protocol shares: line framing with a length limit, an idle
timeout, admission through the server's L{ConnectionRegistry}, flow control,
half-close handling and connect/disconnect logging.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any
from typing import Protocol as TypingProtocol

from twisted.internet.interfaces import (
    IConsumer,
    IDelayedCall,
    IHalfCloseableProtocol,
    IHandshakeListener,
    IPushProducer,
    IReactorTime,
    ISSLTransport,
    ITCPTransport,
)
from twisted.internet.protocol import Protocol, connectionDone
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure
from zope.interface import implementer

from sockserve._addresses import describeAddress, hostOf
from sockserve._connections import ConnectionRegistry, Refusal
from sockserve._deadlines import Deadlines
from sockserve._framing import LineBuffer, LineTooLong
from sockserve._sending import Writer, setKeepAlive, setNoDelay, writerFor
from sockserve._text import plural
from sockserve.limits import Limits
from sockserve.stats import ServerStatistics

CRLF = b"\r\n"
# Connects (and disconnects) logged one line each in ten seconds, at most.
CONNECTIONS_LOGGED = 50
# What an empty line holds (telnet sends a typed CR as CR NUL).
_EMPTY = b"\r\n\x00"
# Seconds a client that was sent an ERROR line and closed has to read it.
ERROR_GRACE = 10.0


@dataclass(frozen=True, slots=True)
class ServerContext:
    """
    The collaborators every connection of one server shares.

    @ivar limits: the limits to enforce.
    @ivar registry: the server's live connections.
    @ivar clock: the source of time and timers (the reactor, or a C{Clock}).
    @ivar logConnections: whether each connect and disconnect is logged.
    @ivar idleDeadlines: the idle timeout of every connection, or C{None}
        when there is none.
    @ivar stats: what the server has done, counted as it goes.
    @ivar guard: what every front end's connections go through (see
        L{ConnectionGuard}).
    """

    limits: Limits
    registry: ConnectionRegistry
    clock: IReactorTime
    logConnections: bool = True
    idleDeadlines: Deadlines[GuardedConnection] | None = field(init=False)
    stats: ServerStatistics = field(default_factory=ServerStatistics)
    guard: ConnectionGuard = field(init=False)

    def __post_init__(self) -> None:
        idle = self.limits.idleTimeout
        object.__setattr__(
            self,
            "idleDeadlines",
            Deadlines(self.clock, idle, _idleTooLong) if idle > 0 else None,
        )
        object.__setattr__(self, "guard", ConnectionGuard(self))


class GuardedConnection(Hashable, TypingProtocol):
    """
    What a L{ConnectionGuard} needs of a connection, whatever its front end.

    @ivar frontEnd: what the metrics call its front end (C{line},
        C{websocket}, C{irc}, C{irc-websocket}).
    """

    frontEnd: str

    @property
    def peer(self) -> str:
        """
        The client's address, as the log shows it.
        """

    @property
    def peerHost(self) -> str | None:
        """
        The client's host, or C{None} (a UNIX socket).
        """

    def timeoutConnection(self) -> None:
        """
        The client was idle too long.
        """

    def beginShutdown(self) -> None:
        """
        The server is stopping.
        """

    def abort(self) -> None:
        """
        Close at once.
        """


class ConnectionGuard:
    """
    What every connection of one server goes through, whatever its front
    end (lines, WebSocket, ...): admission (the registry's limits), the idle
    deadline, statistics, and logging of connects and of what a client
    caused, at a bounded rate. Shutdown goes through the registry, which
    tells each connection to L{beginShutdown<GuardedConnection.beginShutdown>}.

    @ivar bans: says why a client's host (C{None}: a UNIX socket) is
        refused at connect, before it takes a place (a ban, see
        L{sockserve.chat.moderation.Moderation.connectRefusal}), or
        C{None} if it is not; C{None}: nobody is banned.
    """

    log = Logger()

    def __init__(self, context: ServerContext) -> None:
        self.context = context
        self.bans: Callable[[str | None], str | None] | None = None

    def admit(self, connection: GuardedConnection) -> Refusal | None:
        """
        Admit C{connection} (counted, logged, its idle deadline started), or
        return why not (counted and logged; telling the client is the
        caller's).
        """
        context = self.context
        if self.bans is not None:
            banned = self.bans(connection.peerHost)
            if banned is not None:
                self.refused(connection, banned, "banned")
                return Refusal("banned", banned)
        refusal = context.registry.admit(connection)
        if refusal is not None:
            self.refused(connection, refusal.message, refusal.kind)
            return refusal
        context.stats.accepted += 1
        context.stats.acceptedBy[connection.frontEnd] += 1
        context.stats.openBy[connection.frontEnd] += 1
        if context.logConnections and self.mayLog("connections"):
            _logOf(connection, self.log).info(
                "Client {peer} is now connected to us.", peer=connection.peer
            )
        self.active(connection)
        return None

    def named(self, connection: GuardedConnection, name: str) -> None:
        """
        C{connection}'s client goes by C{name} now (its first name): logged
        with its address, at the rate connects are, so that the log tells
        which address is who.
        """
        if self.context.logConnections and self.mayLog("connections"):
            _logOf(connection, self.log).info(
                "Client {peer} is {name}.", peer=connection.peer, name=name
            )

    def refused(self, connection: GuardedConnection, reason: str, kind: str) -> None:
        """
        C{connection} is not served, for C{reason}: count it under C{kind},
        and log it at the bounded rate.
        """
        self.context.stats.refused[kind] += 1
        self.logLimited(
            "refusals",
            "Refused {peer}: {reason}",
            peer=connection.peer,
            reason=reason,
            log=_logOf(connection, self.log),
        )

    def active(self, connection: GuardedConnection) -> None:
        """
        The client did something: its idle deadline starts afresh.
        """
        if self.context.idleDeadlines is not None:
            self.context.idleDeadlines.set(connection)

    def inactive(self, connection: GuardedConnection) -> None:
        """
        No more input is expected from C{connection}: drop its idle deadline.
        """
        if self.context.idleDeadlines is not None:
            self.context.idleDeadlines.discard(connection)

    def gone(self, connection: GuardedConnection, admitted: bool) -> None:
        """
        C{connection} is closed: forget it, and log it if it was admitted.
        """
        self.inactive(connection)
        context = self.context
        if connection in context.registry:
            context.stats.openBy[connection.frontEnd] -= 1
        context.registry.remove(connection)
        if admitted and context.logConnections and self.mayLog("disconnections"):
            _logOf(connection, self.log).info(
                "Client {peer} disconnected.", peer=connection.peer
            )

    def mayLog(self, kind: str) -> bool:
        """
        Tell whether a connect or disconnect (C{kind}) may be logged: each
        is, up to L{CONNECTIONS_LOGGED} in ten seconds, a human rate; beyond
        it they are counted in a summary line every ten seconds, so that
        logging costs next to nothing under a flood of connections.
        """
        limiter = self.context.registry.logLimit
        return limiter is None or limiter.allows(kind, CONNECTIONS_LOGGED)

    def logLimited(
        self, kind: str, format: str, log: Logger | None = None, **fields: Any
    ) -> None:
        """
        Log, as a warning, something a client caused, at the bounded rate
        of the server's L{LogLimiter} (C{kind} names such events in the
        summary of those not logged), through C{log} (the connection's own
        logger, so that the log says which front end), or the guard's.
        """
        log = self.log if log is None else log
        limiter = self.context.registry.logLimit
        if limiter is None:
            log.warn(format, **fields)
        else:
            limiter.emit(log, LogLevel.warn, kind, format, **fields)


class IServerTransport(ITCPTransport, IConsumer, IPushProducer):
    """
    The transport a server protocol is given: a stream socket with flow control.
    """


@implementer(IHalfCloseableProtocol, IPushProducer, IHandshakeListener)
class LineServerProtocol(Protocol):
    """
    A line protocol of one sockserve server.

    Subclasses implement L{linesReceived} and may override the hooks
    L{connectionAdmitted}, L{inputEnded}, L{beginShutdown} and L{connectionClosed}.

    As a push producer registered on its own transport, the protocol stops
    reading from a client while the replies owed to it are not being read:
    a client that never reads cannot make the server buffer without bound.

    @ivar closing: set once no more input is processed.
    @ivar send: writes to the client, straight to the socket when nothing is
        waiting to be sent (see L{writerFor}); set once connected.
    @cvar noDelay: whether Nagle's algorithm is turned off for the client
        (see L{setNoDelay}), so that replies are never held back.
    @cvar keepAlive: whether TCP keepalive probes find a client that has
        vanished (see L{setKeepAlive}), so that it does not keep its place.
    @cvar writeDirectly: whether replies are sent at once when nothing is
        waiting (see L{writerFor}) rather than on the reactor's next pass.
    @cvar flowControl: whether to stop reading from a client that does not
        read its replies (as a push producer registered on the transport).
    @ivar frontEnd: what the metrics call its front end.
    """

    log = Logger()
    transport: IServerTransport
    send: Writer
    frontEnd = "line"
    noDelay = True
    keepAlive = True
    lingering: IDelayedCall | None = None
    handshaken = False
    writeDirectly = True
    flowControl = True

    def __init__(self, context: ServerContext) -> None:
        self.context = context
        self.lines = LineBuffer(context.limits.maxLine)
        self.closing = False
        self.admitted = False
        self.producing = False

    # The client's address, worked out only when needed: a busy oneshot
    # server that logs nothing never needs it.

    @property
    def peer(self) -> str:
        """
        The client's address, as C{host:port}.
        """
        return describeAddress(self.transport.getPeer())

    @property
    def peerHost(self) -> str | None:
        """
        The client's host, or C{None} for a UNIX socket.
        """
        return hostOf(self.transport.getPeer())

    @property
    def secure(self) -> bool:
        """
        Whether nobody can read what the client sends on the way: it comes
        over TLS, or a UNIX socket (this machine's).
        """
        return ISSLTransport.providedBy(self.transport) or self.peerHost is None

    # Connection life cycle

    def connectionMade(self) -> None:
        """
        Ask the registry to admit the client, then start serving it.
        """
        self.send = (
            writerFor(self.transport) if self.writeDirectly else self.transport.write
        )
        if self.noDelay:
            setNoDelay(self.transport)
        if self.keepAlive:
            setKeepAlive(self.transport)
        refusal = self.context.guard.admit(self)
        if refusal is not None:
            self.sendErrorAndClose(refusal.message)
            return
        self.admitted = True
        if self.flowControl:
            self.transport.registerProducer(self, True)
            self.producing = True
        self.connectionAdmitted()

    def connectionAdmitted(self) -> None:
        """
        Called once the client is admitted; override to greet it.
        """

    def refuse(self, reason: str, kind: str = "refused") -> None:
        """
        Tell the client why it is not served, in one C{ERROR} line, and close
        (counted under C{kind}, a reason for the statistics).
        """
        self.context.guard.refused(self, reason, kind)
        self.sendErrorAndClose(reason)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """
        Forget the client: cancel timers, leave the registry, log it.
        """
        self.closing = True
        if self.lingering is not None and self.lingering.active():
            self.lingering.cancel()
        error = reason.value
        if not self.handshaken and error is not None and _isTLSError(error):
            self.logLimited(
                "failed TLS handshakes",
                "Client {peer} failed the TLS handshake ({error}): is it speaking TLS?",
                peer=self.peer,
                error=describeTLSError(error),
            )
        self.context.guard.gone(self, self.admitted)
        self.connectionClosed()

    def handshakeCompleted(self) -> None:
        """
        The client finished the TLS handshake (on an C{ssl:} port).
        """
        self.handshaken = True

    def connectionClosed(self) -> None:
        """
        Called when the connection is gone; override to clean up.
        """

    # Input

    def dataReceived(self, data: bytes) -> None:
        """
        Frame C{data} into lines and hand the complete ones to L{linesReceived}.
        """
        if self.closing:
            return
        stats = self.context.stats
        stats.bytesIn += len(data)
        try:
            chunk = self.lines.feed(data)
        except LineTooLong as tooLong:
            if tooLong.complete:
                self.linesReceived(tooLong.complete)
            self.lineTooLong(tooLong.limit)
            return
        if chunk:
            # Only whole lines that are not empty meet the idle deadline: a
            # byte now and then without a line ending, or an empty line now
            # and then, keeps no seat.
            if chunk.strip(_EMPTY):
                self.context.guard.active(self)
            stats.linesIn += chunk.count(b"\n")
            self.linesReceived(chunk)

    def linesReceived(self, chunk: bytes) -> None:
        """
        Handle one or more complete lines, each ending with LF.
        """
        raise NotImplementedError()

    def lineTooLong(self, limit: int) -> None:
        """
        A line exceeded C{limit} bytes: say so and close.
        """
        self.logLimited(
            "lines too long",
            "Client {peer} sent a line longer than {limit} bytes; closing",
            peer=self.peer,
            limit=limit,
        )
        self.context.stats.refused["line_too_long"] += 1
        self.sendErrorAndClose(f"line too long (the limit is {limit} bytes)")

    def readConnectionLost(self) -> None:
        """
        The client shut down its sending side: finish what it is owed.
        """
        if not self.closing:
            self.inputEnded()

    def inputEnded(self) -> None:
        """
        Called when the client has sent all it will send; by default, close
        once everything owed is written.
        """
        self.close()

    def writeConnectionLost(self) -> None:
        """
        The client can no longer receive: close.
        """
        self.abort()

    def stopIdleTimer(self) -> None:
        """
        No more input is expected: drop the idle timeout.
        """
        self.context.guard.inactive(self)

    def timeoutConnection(self) -> None:
        """
        The client was idle too long: say so and close.
        """
        seconds = self.context.limits.idleTimeout
        self.logLimited(
            "idle clients",
            "Client {peer} idle for {seconds}s; closing",
            peer=self.peer,
            seconds=seconds,
        )
        self.context.stats.refused["idle"] += 1
        self.sendErrorAndClose(
            f"idle for {plural(seconds, 'second')}; closing the connection"
        )

    def logLimited(self, kind: str, format: str, **fields: Any) -> None:
        """
        Log, as a warning, something the client caused, at the bounded rate
        of the server's L{LogLimiter} (see L{ConnectionGuard.logLimited}).
        """
        self.context.guard.logLimited(kind, format, log=self.log, **fields)

    # Output and closing

    def sendErrorAndClose(self, message: str) -> None:
        """
        Send one C{ERROR} line and close once it is written.
        """
        if self.closing:
            return
        line = self.formatError(message)
        self.context.stats.bytesOut += len(line)
        self.send(line)
        self.close()
        # A client that does not read even its ERROR line would keep its
        # place for ever: cut it off if the line is not gone in a while.
        self.lingering = self.context.clock.callLater(ERROR_GRACE, self.abort)

    def formatError(self, message: str) -> bytes:
        """
        Return C{message} as the client's wire shows an error: an C{ERROR}
        line.
        """
        return b"ERROR " + message.encode("utf-8") + CRLF

    def close(self) -> None:
        """
        Stop reading, and close once everything written has been sent.
        """
        self.closing = True
        self.stopIdleTimer()
        if self.producing:
            # A paused producer would keep loseConnection from completing.
            self.producing = False
            self.transport.unregisterProducer()
        self.transport.loseConnection()

    def abort(self) -> None:
        """
        Close at once, dropping anything unsent.
        """
        self.closing = True
        self.transport.abortConnection()

    def beginShutdown(self) -> None:
        """
        The server is stopping: by default, close once replies are written.
        """
        self.close()

    # IPushProducer: the transport asks us to stop producing output, which
    # for a protocol that only answers its client means: stop reading.

    def pauseProducing(self) -> None:
        """
        The client is not reading its replies: stop reading its requests.
        """
        self.transport.pauseProducing()

    def resumeProducing(self) -> None:
        """
        The client caught up: read its requests again.
        """
        if not self.closing:
            self.transport.resumeProducing()

    def stopProducing(self) -> None:
        """
        The transport is going away; nothing to release.
        """


def _logOf(connection: object, default: Logger) -> Logger:
    """
    The logger of C{connection} (its class's, naming its front end), or
    C{default}.
    """
    log = getattr(connection, "log", None)
    return log if isinstance(log, Logger) else default


def _idleTooLong(protocol: GuardedConnection) -> None:
    protocol.timeoutConnection()


def _isTLSError(error: object) -> bool:
    """
    Whether C{error} is pyOpenSSL's (a failed handshake, a broken TLS
    record), without importing pyOpenSSL, which is optional.
    """
    return type(error).__module__.startswith("OpenSSL")


def describeTLSError(error: BaseException) -> str:
    """
    Return what OpenSSL said of C{error}: its reasons (C{wrong version
    number}), or the error's text.
    """
    entries = error.args[0] if error.args and isinstance(error.args[0], list) else []
    details = [str(entry[2]) for entry in entries if len(entry) > 2 and entry[2]]
    return ", ".join(details) or str(error) or type(error).__name__

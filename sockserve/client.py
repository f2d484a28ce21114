"""
C{sockserve-client}: connect, send a message, print the reply, close.

    sockserve-client HOST PORT [MESSAGE]
    sockserve-client --connect DESCRIPTION [MESSAGE]

With a MESSAGE, it is sent followed by LF (C{--crlf}: CR LF; C{-n}: nothing),
the sending side is shut down (so that line servers know the request is
complete), and everything the server sends is printed until it closes or
C{--timeout} passes. Without one, stdin is sent as it is typed, like telnet,
until either side closes.

Options may come anywhere, as with ncat; C{--} ends them (to send a message
that starts with C{-}). Exit status: 0 when the server closed, 1 when
connecting failed, 2 for a usage error, 124 when C{--timeout} passed first
(like C{timeout(1)}), 130 on Ctrl-C.
"""

from __future__ import annotations

import math
import os
import re
import signal
import sys
from collections.abc import Sequence
from typing import IO, Any, NoReturn

from twisted.internet import error as neterror
from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.endpoints import clientFromString, connectProtocol
from twisted.internet.interfaces import IReactorTime, ITCPTransport
from twisted.internet.protocol import Protocol, connectionDone
from twisted.logger import ILogObserver, LogEvent
from twisted.python import usage
from twisted.python.failure import Failure
from zope.interface import implementer

from sockserve._endpoints import quoteColons, splitDescription, unquoteColons
from sockserve._text import plural
from sockserve._usage import CommandOptions
from sockserve._version import __version__

EXIT_CONNECT_FAILED = 1
EXIT_USAGE = 2
EXIT_TIMEOUT = 124
EXIT_INTERRUPTED = 130


def _seconds(value: str) -> float:
    """
    Coerce C{--timeout}: a number of seconds, 0 or more.
    """
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds < float("inf"):
        raise ValueError(f"--timeout must be a number of seconds, not {value!r}")
    return seconds


_seconds.coerceDoc = "Seconds, 0 or more."  # type: ignore[attr-defined]


class ClientOptions(CommandOptions):
    """
    Command-line options of C{sockserve-client}.
    """

    synopsis = (
        "sockserve-client [options] HOST PORT [MESSAGE]\n"
        "       sockserve-client [options] --connect DESCRIPTION [MESSAGE]"
    )
    longdesc = (
        "Connect to a line server, send MESSAGE and print the reply until the "
        "server closes. Without MESSAGE, send what is typed on stdin, like telnet."
    )
    optFlags = [
        ["crlf", None, "End the message with CR LF instead of LF."],
        ["no-newline", "n", "Send the message with no line ending."],
        [
            "escapes",
            "e",
            "Interpret backslash escapes in MESSAGE: \\r \\n \\t \\0 (NUL) "
            "\\e (ESC) \\\\ (a backslash) \\xNN (the byte NN, in hex).",
        ],
        ["keep-open", "k", "Do not shut down the sending side after the message."],
        [
            "tls",
            None,
            "Speak TLS, checking the server's certificate and that it names HOST "
            "(needs sockserve[tls]).",
        ],
        [
            "insecure",
            None,
            "With --tls: do not check the server's certificate (for tests only).",
        ],
    ]
    optParameters: list[list[Any]] = [
        [
            "connect",
            "c",
            None,
            "A Twisted client endpoint description "
            "(tcp:host=...:port=..., unix:path=...) instead of HOST PORT.",
        ],
        [
            "cafile",
            None,
            None,
            "With --tls: trust the CA certificates in this PEM file instead of "
            "the system's.",
        ],
        [
            "timeout",
            "t",
            10.0,
            "Seconds to wait to connect, and for the server to "
            "close after the message (0: no limit); past it, exit 124.",
            _seconds,
        ],
    ]

    def parseOptions(self, options: Sequence[str] | None = None) -> None:
        """
        Parse C{options}, which may come before, between or after the
        arguments (as with ncat); C{--} ends them.
        """
        if options is None:
            options = sys.argv[1:]
        super().parseOptions(self._optionsFirst(list(options)))

    def _optionsFirst(self, arguments: list[str]) -> list[str]:
        """
        Return C{arguments} with every option (and its value) before the
        positional arguments, which follow a C{--}.
        """
        parameters: list[list[Any]] = self.optParameters
        takesValue = {f"--{entry[0]}" for entry in parameters} | {
            f"-{entry[1]}" for entry in parameters if entry[1]
        }
        options: list[str] = []
        positional: list[str] = []
        remaining = iter(arguments)
        for argument in remaining:
            if argument == "--":
                positional.extend(remaining)
                break
            if argument.startswith("-") and argument != "-":
                options.append(argument)
                # "-kt 5": flags run together, the last taking the next word.
                combined = (
                    not argument.startswith("--")
                    and len(argument) > 2
                    and argument[1:-1].isalpha()
                    and f"-{argument[-1]}" in takesValue
                    and all(f"-{flag}" not in takesValue for flag in argument[1:-1])
                )
                if argument in takesValue or combined:
                    value = next(remaining, None)
                    if value is not None:
                        options.append(value)
            else:
                positional.append(argument)
        return [*options, "--", *positional]

    def opt_version(self) -> NoReturn:
        """
        Print the version and exit.
        """
        print(f"sockserve-client {__version__}")
        sys.exit(0)

    def parseArgs(self, *args: str) -> None:
        """
        Take HOST PORT [MESSAGE], or [MESSAGE] with --connect.
        """
        self["message"] = None
        if self["connect"] is None:
            if len(args) < 2:
                raise usage.UsageError("HOST and PORT are required")
            if len(args) > 3:
                raise usage.UsageError("too many arguments (quote the message)")
            host, port = args[0], args[1]
            if not port.isdigit() or not 0 < int(port) < 65536:
                raise usage.UsageError(
                    f"PORT must be a number from 1 to 65535, not {port!r}"
                )
            self["target"] = f"{host}:{port}" if ":" not in host else f"[{host}]:{port}"
            self["description"] = f"tcp:host={quoteColons(host)}:port={port}"
            if len(args) == 3:
                self["message"] = args[2]
        else:
            if len(args) > 1:
                raise usage.UsageError("too many arguments (quote the message)")
            self["description"] = self["connect"]
            self["target"] = describeTarget(self["connect"])
            if args:
                self["message"] = args[0]

    def postOptions(self) -> None:
        """
        Check the options and work out the bytes to send.
        """
        if self["crlf"] and self["no-newline"]:
            raise usage.UsageError("--crlf and --no-newline contradict each other")
        if (self["insecure"] or self["cafile"]) and not self["tls"]:
            raise usage.UsageError("--insecure and --cafile go with --tls")
        if self["tls"]:
            if not self["description"].startswith("tcp:"):
                raise usage.UsageError(
                    "--tls goes with HOST PORT or a tcp: description"
                )
            try:
                self["tlsOptions"] = clientTLSOptions(
                    serverName(self["description"]),
                    self["cafile"],
                    self["insecure"],
                )
            except (ImportError, OSError, ValueError) as error:
                raise usage.UsageError(f"--tls: {error}") from None
        description = self["description"]
        if (
            self["timeout"] > 0
            and "timeout=" not in description
            and description.startswith(("tcp:", "unix:", "ssl:", "tls:"))
        ):
            # Endpoint descriptions take whole seconds.
            seconds = math.ceil(self["timeout"])
            self["description"] = f"{description}:timeout={seconds}"
        try:
            clientFromString(None, self["description"])
        except Exception as error:
            raise usage.UsageError(f"--connect: {error}") from None
        message = self["message"]
        if message is None:
            self["payload"] = None
            return
        payload = message.encode("utf-8", "surrogateescape")
        if self["escapes"]:
            try:
                payload = interpretEscapes(payload)
            except ValueError as error:
                raise usage.UsageError(f"MESSAGE: {error}") from None
        if not self["no-newline"]:
            payload += b"\r\n" if self["crlf"] else b"\n"
        self["payload"] = payload


def serverName(description: str) -> str:
    """
    Return the host a C{tcp:} description connects to: the name the
    server's certificate must have.
    """
    parts = splitDescription(description)[1:]
    named = dict(part.partition("=")[::2] for part in parts if "=" in part)
    if "host" in named:
        return unquoteColons(named["host"])
    positional = [part for part in parts if "=" not in part]
    if not positional:
        raise ValueError(f"{description!r} names no host to check the certificate of")
    return unquoteColons(positional[0])


def clientTLSOptions(host: str, cafile: str | None, insecure: bool) -> object:
    """
    Return the TLS options of a connection to C{host}: its certificate is
    checked against C{cafile} (or the system's CAs) and must name C{host},
    unless C{insecure}.

    @raise ImportError: pyOpenSSL is missing (sockserve[tls] brings it).
    """
    from twisted.internet import ssl

    try:
        import OpenSSL  # noqa: F401
    except ImportError:
        raise ImportError(
            "TLS needs pyOpenSSL, which is not installed: pip install 'sockserve[tls]'"
        ) from None
    if insecure:
        return ssl.CertificateOptions()
    if cafile is None:
        return ssl.optionsForClientTLS(host)
    with open(cafile, "rb") as pem:
        authority = ssl.Certificate.loadPEM(pem.read())
    return ssl.optionsForClientTLS(host, trustRoot=authority)


def describeTLSFailure(target: str, reason: Failure) -> str | None:
    """
    Return the one line that says why TLS with C{target} failed, or C{None}
    if C{reason} is no TLS failure.
    """
    try:
        from OpenSSL.SSL import Error as SSLError
    except ImportError:  # pragma: no cover - no TLS, no TLS failure
        return None
    error = reason.value
    if isinstance(error, _CERTIFICATE_ERRORS[1:]):
        return f"TLS failure with {target}: its certificate does not name it ({error})"
    if isinstance(error, _CERTIFICATE_ERRORS):
        return f"TLS failure with {target}: {error}"
    if isinstance(error, SSLError):
        details = [
            str(entry[2]) for entry in (error.args[0] if error.args else []) if entry
        ]
        said = ", ".join(details) or str(error) or type(error).__name__
        if "wrong version number" in details:
            # What OpenSSL says of a reply that is no TLS record.
            said = "the server does not speak TLS"
        return f"TLS failure with {target}: {said}"
    return None


_ADDRESS_KINDS = ("tcp", "tcp6", "ssl", "tls")


def describeTarget(description: str) -> str:
    """
    Return what a client endpoint C{description} reaches, for messages: its
    host and port and the description itself, when it names them
    (C{[::1]:5000 (tcp:host=\\:\\:1:port=5000)}), else the description.

    @raise usage.UsageError: an unescaped colon (of an IPv6 address) broke
        the description into parts Twisted would misread.
    """
    parts = splitDescription(description)
    if parts[0] not in _ADDRESS_KINDS:
        return description
    arguments = parts[1:]
    keywords = [part.partition("=") for part in arguments if "=" in part]
    firstKeyword = next(
        (index for index, part in enumerate(arguments) if "=" in part), None
    )
    if "" in arguments or (
        firstKeyword is not None
        and any("=" not in part for part in arguments[firstKeyword:])
    ):
        raise usage.UsageError(
            f"--connect: {description!r} has a ':' that is not escaped; write "
            "the colons of an IPv6 address as \\: (tcp:host=\\:\\:1:port=5000)"
        )
    named = {key: unquoteColons(value) for key, _, value in keywords}
    host = named.get("host")
    port = named.get("port")
    if host is None or port is None:
        return description
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return f"{address} ({description})"


_ESCAPE = re.compile(rb"\\(x[0-9A-Fa-f]{2}|.|\Z)", re.DOTALL)
_SIMPLE_ESCAPES = {
    b"r": b"\r",
    b"n": b"\n",
    b"t": b"\t",
    b"0": b"\0",
    b"e": b"\x1b",
    b"\\": b"\\",
}


def interpretEscapes(message: bytes) -> bytes:
    """
    Replace the escapes C{\\r \\n \\t \\0 \\e \\\\ \\xNN} in C{message}.

    @raise ValueError: for any other escape, or a trailing backslash.
    """

    def replace(match: re.Match[bytes]) -> bytes:
        escape = match.group(1)
        if not escape:
            raise ValueError("a backslash ends the message")
        if escape.startswith(b"x") and len(escape) == 3:
            return bytes([int(escape[1:], 16)])
        try:
            return _SIMPLE_ESCAPES[escape]
        except KeyError:
            raise ValueError(
                f"unknown escape \\{escape.decode('utf-8', 'replace')}"
            ) from None

    return _ESCAPE.sub(replace, message)


class PrintingClient(Protocol):
    """
    Write what the server sends to C{output}; fire C{done} when it closes.
    """

    transport: ITCPTransport

    def __init__(self, output: IO[bytes]) -> None:
        self.output = output
        self.done: Deferred[None] = Deferred()
        self.reason: Failure | None = None
        self.closeAfterLine = False
        self.tls = False
        # Whether anything was sent, and received; whether what came first
        # was a TLS record (to a client not speaking TLS).
        self.sent = False
        self.received = False
        self.tlsRecord = False
        # Over TLS, the host the certificate must name, checked here as well
        # as by Twisted, which lets a certificate without subjectAltName by.
        self.checkName: str | None = None

    def dataReceived(self, data: bytes) -> None:
        """
        Print what arrived (over TLS, once the certificate is known to name
        the server).
        """
        if self.checkName is not None:
            host, self.checkName = self.checkName, None
            if not self._certificateNames(host):
                return
        if not self.received and not self.tls and _TLS_RECORD.match(data):
            # A TLS server's alert (or handshake) to a client that does not
            # speak TLS: not for the terminal.
            self.tlsRecord = True
            self.transport.abortConnection()
            return
        self.received = True
        self.output.write(data)
        self.output.flush()
        if self.closeAfterLine and b"\n" in data:
            self.closeAfterLine = False
            self.transport.loseConnection()

    def _certificateNames(self, host: str) -> bool:
        from service_identity.pyopenssl import verify_hostname, verify_ip_address

        connection = self.transport.getHandle()  # type: ignore[attr-defined]
        try:
            if isIPAddress(host) or isIPv6Address(host):
                verify_ip_address(connection, host)
            else:
                verify_hostname(connection, host)
        except _CERTIFICATE_ERRORS:
            self.reason = Failure()
            self.transport.abortConnection()
            return False
        return True

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """
        The server closed (or the connection broke): we are done.
        """
        if self.reason is None or not isinstance(
            self.reason.value, _CERTIFICATE_ERRORS
        ):
            self.reason = reason
        if not self.done.called:
            self.done.callback(None)


class StdinForwarder(Protocol):
    """
    Send what is typed on stdin to the server; half-close at end of input.
    """

    def __init__(self, server: PrintingClient) -> None:
        self.server = server

    def dataReceived(self, data: bytes) -> None:
        """
        Forward a chunk of stdin.
        """
        self.server.sent = True
        self.server.transport.write(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """
        Stdin ended: tell the server nothing more is coming.
        """
        if not self.server.done.called:
            transport = self.server.transport
            if self.server.tls:
                # TLS has no half-close: its close alert ends both ways.
                transport.loseConnection()
            else:
                transport.loseWriteConnection()


def describeConnectFailure(target: str, failure: Failure) -> str:
    """
    Return the one line that says why connecting to C{target} failed, in the
    tutorial's C{[errno] message} form where there is an errno.
    """
    error = failure.value
    osError = getattr(error, "osError", None)
    if isinstance(error, neterror.ConnectError) and isinstance(osError, int):
        return f"Could not connect to {target}: [{osError}] {os.strerror(osError)}"
    if isinstance(error, neterror.TimeoutError):
        return f"Could not connect to {target}: timed out"
    if isinstance(error, neterror.DNSLookupError):
        return f"Could not connect to {target}: cannot resolve the host name"
    reason = getattr(error, "string", "") or str(error) or type(error).__name__
    return f"Could not connect to {target}: {reason}"


async def run(reactor: Any, options: ClientOptions, stdout: IO[bytes]) -> int:
    """
    Connect, talk, and return the exit status.
    """
    endpoint = clientFromString(reactor, options["description"])
    if options["tls"]:
        from twisted.internet.endpoints import wrapClientTLS

        endpoint = wrapClientTLS(options["tlsOptions"], endpoint)
    client = PrintingClient(stdout)
    client.tls = bool(options["tls"])
    if options["tls"] and not options["insecure"]:
        client.checkName = serverName(options["description"])
    try:
        await connectProtocol(endpoint, client)
    except Exception:
        sys.stderr.write(describeConnectFailure(options["target"], Failure()) + "\n")
        return EXIT_CONNECT_FAILED
    payload = options["payload"]
    if payload is None:
        from twisted.internet import stdio

        sys.stderr.write(f"Connected to {options['target']}.\n")
        sys.stderr.flush()
        stdio.StandardIO(StdinForwarder(client), reactor=reactor)
        await client.done
        return tlsStatus(options, client) or noAnswerStatus(options, client)
    client.sent = bool(payload)
    client.transport.write(payload)
    if not options["keep-open"]:
        if options["tls"]:
            # TLS has no half-close (its close alert ends both directions):
            # the client closes once the first line of the reply is in.
            client.closeAfterLine = True
        else:
            client.transport.loseWriteConnection()
    timeout = options["timeout"]
    if timeout <= 0:
        await client.done
        return tlsStatus(options, client) or noAnswerStatus(options, client)
    clock: IReactorTime = reactor
    timedOut: list[bool] = []

    def giveUp() -> None:
        timedOut.append(True)
        # Not loseConnection: under TLS it waits for the server's answer.
        client.transport.abortConnection()

    timer = clock.callLater(timeout, giveUp)
    await client.done
    if timer.active():
        timer.cancel()
    if options["tls"] and tlsStatus(options, client):
        return EXIT_CONNECT_FAILED
    if timedOut:
        sys.stderr.write(
            f"sockserve-client: {options['target']} did not close the "
            f"connection within {plural(timeout, 'second')} (--timeout)\n"
        )
        return EXIT_TIMEOUT
    return noAnswerStatus(options, client)


# The first bytes of a TLS record: an alert or a handshake, TLS 1.0 to 1.3.
_TLS_RECORD = re.compile(rb"[\x15\x16]\x03[\x00-\x04]")


def noAnswerStatus(options: ClientOptions, client: PrintingClient) -> int:
    """
    Without C{--tls}: say, in one line, that the server closed without a
    byte of reply to what was sent (or answered with a TLS record), as a
    TLS server does to a client that does not speak TLS; return the exit
    status (1 then, else 0).
    """
    if options["tls"] or not (
        client.tlsRecord or (client.sent and not client.received)
    ):
        return 0
    what = (
        "answered with TLS"
        if client.tlsRecord
        else "closed the connection without a byte of reply"
    )
    sys.stderr.write(
        "sockserve-client: the server did not answer: is it TLS? "
        f"({options['target']} {what}; try --tls)\n"
    )
    return EXIT_CONNECT_FAILED


def _certificateErrors() -> tuple[type[Exception], ...]:
    """
    Return service_identity's errors: a certificate it cannot check, then
    one that does not name the host.
    """
    try:
        from service_identity.exceptions import CertificateError, VerificationError
    except ImportError:  # pragma: no cover - no TLS
        return ()
    return (CertificateError, VerificationError)


_CERTIFICATE_ERRORS = _certificateErrors()


def tlsStatus(options: ClientOptions, client: PrintingClient) -> int:
    """
    Say, in one line, why TLS failed, if it did; return the exit status.
    """
    if not options["tls"] or client.reason is None:
        return 0
    failure = describeTLSFailure(options["target"], client.reason)
    if failure is None:
        return 0
    sys.stderr.write(failure + "\n")
    return EXIT_CONNECT_FAILED


@implementer(ILogObserver)
def _ignore(event: LogEvent) -> None:
    """
    Drop a log event.
    """


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """
    The C{sockserve-client} command.
    """
    options = ClientOptions()
    try:
        options.parseOptions(list(sys.argv[1:] if argv is None else argv))
    except usage.UsageError as error:
        message = str(error)
        sys.stderr.write(
            f"Usage: {options.synopsis}\n"
            "Try 'sockserve-client --help' for more.\n"
            f"sockserve-client: {message}\n"
        )
        sys.exit(EXIT_USAGE)
    from twisted.internet import reactor as global_reactor
    from twisted.logger import globalLogBeginner

    # The client says what went wrong itself, in one line: Twisted's own log
    # (a certificate it could not check, say) would print a traceback.
    globalLogBeginner.beginLoggingTo([_ignore], redirectStandardIO=False)
    reactor: Any = global_reactor
    status = [0]

    def interrupted(signalNumber: int, frame: object) -> None:
        status[0] = EXIT_INTERRUPTED
        reactor.callFromThread(reactor.stop)

    def start() -> None:
        # After the reactor's own handlers, so that Ctrl-C is ours.
        signal.signal(signal.SIGINT, interrupted)
        talking = ensureDeferred(run(reactor, options, sys.stdout.buffer))

        def finished(result: int | Failure) -> None:
            if isinstance(result, Failure):
                sys.stderr.write(f"sockserve-client: {result.getErrorMessage()}\n")
                result = EXIT_CONNECT_FAILED
            if status[0] == 0:
                status[0] = result
            if reactor.running:
                reactor.stop()

        talking.addBoth(finished)

    reactor.callWhenRunning(start)
    reactor.run()
    sys.exit(status[0])

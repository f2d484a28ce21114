"""
One person's session in the chat service, whatever carries it: its states,
what it may ask for (its intents), safe text, and bounded output.

A front end (the TCP line protocol, a WebSocket, IRC) turns what its client
sends into the session's intents: L{ChatSession.say} what was typed, and
L{join}, L{part}, L{rename}, L{message} a person, L{who}, L{listRooms},
L{quit}. A line client's input goes through L{ChatSession.linesReceived},
which reads its slash commands (L{sockserve.chat.commands}) into those same
intents. The session speaks to the L{ChatService}, and writes what the
person receives, formatted for the front end's wire, through the
L{ChatConnection} the front end provides. Nothing of this is written twice
for two front ends.

A session goes through L{SessionState}s: C{NEW} (connected, nothing asked
yet), C{LOGIN} (it must log in before it arrives: C{--require-login}),
C{ARRIVING} (the service is giving it a name and its first room),
C{PRESENT}, and C{GONE}. Logging in (L{ChatSession.logIn}) is possible in
any of them but C{GONE}: the member's L{account<ChatSession.account>} is
what the service checks reserved names against.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

from twisted.internet.defer import Deferred, fail
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from sockserve._text import linesAreSafe, plural, safeText, sizeText
from sockserve.chat.commands import BY_NAME
from sockserve.chat.events import (
    ACTION,
    NOTICE,
    OWN_NAME,
    Banner,
    ChatEvent,
    ChatWire,
    Entered,
    Error,
    ErrorKind,
    Members,
    NameChanged,
    Notice,
    Parted,
    PrivateSent,
    Rooms,
    TopicChanged,
    Welcome,
)
from sockserve.chat.input import InputQueue, settled
from sockserve.chat.login import LoginRefused, looksLikeLogin
from sockserve.chat.moderation import (
    Ban,
    Banned,
    Kick,
    Moderation,
    meantAsDuration,
    parseDuration,
    parseNetwork,
    showLeft,
    showUntil,
)
from sockserve.chat.names import NameRejected, RoomRejected, nameKey, roomKey
from sockserve.chat.pacing import OutputPressure
from sockserve.chat.people import IChatMember, NobodyThere, Unreachable
from sockserve.chat.policy import Budget, ChatPolicy
from sockserve.chat.room import ChatRoom, RoomFull
from sockserve.chat.service import ChatService, ServiceClosed

if TYPE_CHECKING:
    from sockserve.accounts.store import Account

MAX_WHO_NAMES = 100
MAX_ROOMS_LISTED = 100
# The longest topic, in characters.
TOPIC_LENGTH = 300
# The most characters of what a member says as it leaves (the rest is cut).
REASON_LENGTH = 200


def departureReason(text: str) -> str:
    """
    What a member said as it left (C{/quit gone for lunch}), safe to show
    (control characters escaped) and at most L{REASON_LENGTH} characters.
    """
    return safeText(text.strip().encode("utf-8")).decode("utf-8")[:REASON_LENGTH]


# A read at least this large is a flood, not typing (and so are small reads
# faster than a person types, see TYPING_BURST): it is relayed this much at
# a time, each slice only once no member that still reads is far behind
# (see OutputPressure). A person's lines go through at once.
BULK = 4096
# Small reads that add up to more than BULK bytes a second, after this many
# at once, are a flood too.
TYPING_BURST = 4 * BULK
# A member is far behind once it has this share of --max-pending queued
# beyond what its connection holds.
BEHIND = 8

# CR belongs to the line ending; telnet sends a typed CR as CR NUL.
_LINE_END_NOISE = b"\r\x00"
_SLASH = ord("/")
# What a member that must log in first may type.
_BEFORE_LOGIN = frozenset({b"/login", b"/quit", b"/help"})


class SessionState(enum.Enum):
    """
    Where a session is in its life.
    """

    NEW = "new"
    LOGIN = "login"
    ARRIVING = "arriving"
    PRESENT = "present"
    GONE = "gone"


class ChatConnection(Protocol):
    """
    What a session needs of the connection that carries it.
    """

    @property
    def peer(self) -> str:
        """
        The client's address, as the log and its welcome show it.
        """

    @property
    def peerHost(self) -> str | None:
        """
        The client's host (C{None} for a UNIX socket), for rules by address.
        """

    @property
    def send(self) -> Callable[[bytes], None]:
        """
        The function that sends bytes, already formatted for the connection's
        wire, to the client (looked up once, when the session starts).
        """

    @property
    def secure(self) -> bool:
        """
        Whether what the client sends cannot be read on the way: the
        connection is encrypted (TLS), or local (a UNIX socket).
        """

    def unsent(self) -> int | None:
        """
        How many bytes written to the connection it has not sent yet, or
        C{None} if it cannot tell.
        """

    def pauseInput(self) -> None:
        """
        Stop handing the session input until L{resumeInput}.
        """

    def resumeInput(self) -> None:
        """
        Hand the session input again.
        """

    def logLimited(self, kind: str, format: str, **fields: Any) -> None:
        """
        Log, as a warning, something the client caused, at a bounded rate
        (C{kind} names such events in a summary of those not logged).
        """

    def named(self, name: str) -> None:
        """
        The client was given its first name, C{name} (logged with its
        address).
        """

    def refuse(self, reason: str, kind: str) -> None:
        """
        Tell the client, in one error, why it is not served; log it (at a
        bounded rate), count it under C{kind}, and close.
        """

    def close(self) -> None:
        """
        Close once everything written has been sent.
        """

    def abort(self) -> None:
        """
        Close at once, dropping anything unsent.
        """


_NOTHING_TOLD: frozenset[str] = frozenset()
"""No rate limit told: one set for every session (an empty frozenset is
not shared by CPython, and costs 216 bytes)."""


@implementer(IChatMember)
class ChatSession:
    """
    One person in the chat service, as its front end drives it.

    Input is handled in order (L{InputQueue}); output goes to the
    connection while it keeps up, and is queued while the connection says
    it cannot take more (L{pauseOutput}); once more than C{maxPending} bytes
    wait, the member is dropped, and nobody else waits for it.

    @ivar state: where the session is in its life (L{SessionState}).
    @ivar name: its name, once it has one.
    @ivar current: the room its plain lines go to, if any.
    @ivar multiRoom: whether joining a room keeps the others (the page,
        IRC), or moves there (a line client, in one room at a time).
    @ivar personalize: for a wire that formats some events for one member
        (IRC's: its numerics are addressed to the member's own name, see
        L{OWN_NAME}), what makes such bytes (those holding C{OWN_NAME})
        this member's, as it receives them: empty bytes for none at all.
    @ivar account: the account the member is logged in to, or C{None}.
    """

    log = Logger()

    # A session per client: slots keep an idle one small.
    __slots__ = (
        "_budgets",
        "_commands",
        "_connectionFull",
        "_loginDeadline",
        "_loginsChecking",
        "_renames",
        "_send",
        "_sleeping",
        "_told",
        "_typing",
        "account",
        "banner",
        "connection",
        "current",
        "input",
        "multiRoom",
        "name",
        "outputPaused",
        "personalize",
        "policy",
        "queue",
        "queued",
        "service",
        "state",
        "wire",
    )

    def __init__(
        self,
        service: ChatService,
        connection: ChatConnection,
        wire: ChatWire,
        banner: Banner,
        policy: ChatPolicy,
        multiRoom: bool = False,
        personalize: Callable[[bytes], bytes] | None = None,
    ) -> None:
        self.service = service
        self.personalize = personalize
        self.policy = policy
        self.connection = connection
        self.wire = wire
        self.banner = banner
        self.multiRoom = multiRoom
        self.state = SessionState.NEW
        self.name = ""
        self.current: ChatRoom | None = None
        # Output waits for the greeting: until the member is admitted, what
        # it is sent is queued behind it.
        self.outputPaused = True
        self._connectionFull = False
        self.queue: list[bytes] = []
        self.queued = 0
        self.input = InputQueue(connection)
        # Made on first use: most members never need them.
        self._commands: Budget | None = None
        self._budgets: dict[str, Budget] | None = None
        self._typing: Budget | None = None
        self._sleeping: Deferred[None] | None = None
        self._renames: tuple[float, ...] = ()
        self.account: Account | None = None
        self._loginDeadline: IDelayedCall | None = None
        # Logins whose passwords are being checked: the deadline waits for
        # them, since the member typed them in time.
        self._loginsChecking = 0
        # The rate limits the member was told hold its input, until their
        # budgets are back in full.
        self._told: frozenset[str] = _NOTHING_TOLD

    def __repr__(self) -> str:
        return f"<ChatSession {self.name or '(no name yet)'} {self.state.value}>"

    @property
    def closing(self) -> bool:
        """
        Whether the session is over.
        """
        return self.state is SessionState.GONE

    @property
    def rooms(self) -> list[ChatRoom]:
        """
        The rooms the member is in.
        """
        return self.service.roomsOf(self)

    # Arriving and leaving

    def start(self) -> None:
        """
        Ask the service for a name and the default room; greet the member,
        or tell it why it cannot come in and close. Its input waits
        meanwhile.
        """
        self._send = self.connection.send
        logins = self.service.logins
        if self.account is None and logins is not None and logins.rules.requireLogin:
            self._awaitLogin(logins.rules.deadline)
            return
        self._arrive()

    def _bannedHere(self) -> str | None:
        """
        Why the member's address is banned now, if it is (it connected
        before the ban, and has not arrived yet).
        """
        moderation = self.service.moderation
        if moderation is None:
            return None
        return moderation.connectRefusal(self.connection.peerHost)

    def _arrive(self) -> None:
        banned = self._bannedHere()
        if banned is not None:
            self.flushQueue()
            self.stop()
            self.connection.refuse(banned, "banned")
            return
        greeted = self.state is SessionState.LOGIN
        self.state = SessionState.ARRIVING
        # What the member is sent waits for its welcome.
        self.outputPaused = True
        churn = self.policy.churn
        quietly = churn is not None and churn.joining(self.connection.peerHost)
        name = None if self.account is None else self.account.name
        arriving = self.service.arrive(self, quietly, name)
        self.input.wait(
            arriving.addCallbacks(
                self._arrived, self._notArrived, callbackArgs=(greeted,)
            )
        )

    def _awaitLogin(self, deadline: float) -> None:
        """
        No guests here: greet the member, say how to log in, and close if
        it has not within C{deadline} seconds.
        """
        self.state = SessionState.LOGIN
        greeting = self.banner.encodedFor(self.wire)
        self.queue.insert(0, greeting)
        self.queued += len(greeting)
        self.receive(
            Notice(
                "this server is for its accounts only: log in with /login NAME "
                f"PASSWORD within {plural(math.ceil(deadline), 'second')}"
            )
        )
        if deadline > 0:
            self._loginDeadline = self.policy.clock.callLater(
                deadline, self._loginTimedOut
            )
        if not self._connectionFull:
            self.resumeOutput()

    def _loginTimedOut(self) -> None:
        self._loginDeadline = None
        if self.state is SessionState.LOGIN and not self._loginsChecking:
            self.flushQueue()
            self.stop()
            self.connection.refuse(
                "you did not log in in time; goodbye", "login_timeout"
            )

    def _arrived(self, arrival: tuple[str, ChatRoom], greeted: bool = False) -> None:
        name, room = arrival
        if self.closing:
            # The client left while the service considered it.
            self.service.depart(self, name)
            return
        self.name = name
        self.current = room
        self.state = SessionState.PRESENT
        self.connection.named(name)
        welcome = Welcome(
            name, self.connection.peer, room.name, room.population() - 1, room.topic
        )
        greeting = welcome.encodedFor(self.wire)
        if not greeted:
            greeting = self.banner.encodedFor(self.wire) + greeting
        self.queue.insert(0, greeting)
        self.queued += len(greeting)
        room.tellHistory(self)
        if self.account is not None:
            self.receive(Notice(self._loggedInText(self.account)))
        if not self._connectionFull:
            self.resumeOutput()

    def register(self, name: str, greeting: Callable[[str], bytes]) -> Deferred[str]:
        """
        Ask the service for the name C{name}, in no room yet (how an IRC
        client arrives); once given, greet the member with
        C{greeting(name)} before anything it is sent. The front end's input
        step that asks returns the result, so that input waits for it.

        @return: a L{Deferred} firing with the name, or failing with
            L{NameRejected} (the session is new again: the member may ask
            for another name) or L{ServiceClosed} (the member is refused).
        """
        self._send = self.connection.send
        banned = self._bannedHere()
        if banned is not None:
            return fail(Banned(banned))
        self.state = SessionState.ARRIVING
        registering = self.service.register(self, name)

        def registered(given: str) -> str:
            if self.closing:
                self.service.depart(self, given)
                return given
            self.name = given
            self.state = SessionState.PRESENT
            self.connection.named(given)
            hello = greeting(given)
            self.queue.insert(0, hello)
            self.queued += len(hello)
            if not self._connectionFull:
                self.resumeOutput()
            return given

        def refused(failure: Failure) -> Failure:
            if not self.closing:
                self.state = SessionState.NEW
            return failure

        return registering.addCallbacks(registered, refused)

    def _notArrived(self, failure: Failure) -> None:
        if isinstance(failure.value, RoomFull):
            kind = "full"
            reason = (
                f"the server is full ({plural(failure.value.capacity, 'client')}); "
                "try again later"
            )
        elif isinstance(failure.value, ServiceClosed):
            kind = "shutdown"
            reason = "the server is shutting down; try again later"
        else:
            self.log.failure(
                "Could not admit {peer}", failure, peer=self.connection.peer
            )
            kind = "unavailable"
            reason = "the chat is unavailable; try again later"
        if not self.closing:
            self.stop()
            self.connection.refuse(reason, kind)

    def quit(self, goodbye: str | None = None, reason: str = "") -> None:
        """
        Leave (saying C{goodbye} first, if given; the others are told
        C{reason}, what the member said as it went), and close once pending
        output is written.
        """
        if goodbye is not None:
            self.receive(Notice(goodbye))
        self.stop(departureReason(reason))
        self.flushQueue()
        self.connection.close()

    def stop(self, reason: str = "") -> None:
        """
        Leave every room (the others told C{reason}, safe text, if any) and
        take no more input or output; closing the connection is the
        caller's (idempotent).
        """
        if self.closing:
            return
        present = self.state is SessionState.PRESENT
        self.state = SessionState.GONE
        self.input.close()
        timer, self._loginDeadline = self._loginDeadline, None
        if timer is not None and timer.active():
            timer.cancel()
        sleeping, self._sleeping = self._sleeping, None
        if sleeping is not None and not sleeping.called:
            sleeping.cancel()
        if present:
            self.service.depart(self, self.name, reason)
        self.current = None

    def shutdown(self) -> None:
        """
        The server is stopping: say goodbye, then quit. The service is
        closed first, so that nobody is told of the others leaving because
        of it.
        """
        self.service.close()
        self.quit("the server is shutting down; goodbye")

    def connectionLost(self) -> None:
        """
        The connection is gone: leave, and drop what was queued for it.
        """
        self.queue.clear()
        self.queued = 0
        self.stop()

    # Input from a line client: lines, and slash commands

    def linesReceived(self, chunk: bytes) -> None:
        """
        Handle the lines of C{chunk} (whole lines, each ending with LF), in
        order: messages go to the current room, as one event per run of
        them; commands run in between.
        """
        if self.closing:
            return
        if self.isFlood(chunk):
            self._bulkReceived(chunk)
            return
        lines = chunk.split(b"\n")
        lines.pop()
        self.input.add(partial(self._run, lines, linesAreSafe(chunk)))

    def isFlood(self, chunk: bytes) -> bool:
        """
        Tell whether C{chunk}, what one read brought, is a flood rather than
        typing: large (L{BULK} bytes or more), or faster than a person types
        while readers of the member's rooms are behind. A flood's lines wait
        for those readers (the sender pays).
        """
        pressures = self._pressures()
        return bool(pressures) and (
            len(chunk) >= BULK
            or (any(p.anyBehind() for p in pressures) and self._flooding(chunk))
        )

    def _pressures(self) -> list[OutputPressure]:
        """
        The readers that are behind in the rooms the member's lines may go
        to: its current room's, or, for a member in several rooms (whose
        lines name their room), all of its rooms'.
        """
        rooms = self.rooms if self.multiRoom else [self.current]
        return [room.pressure for room in rooms if room is not None and room.pressure]

    def _flooding(self, chunk: bytes) -> bool:
        """
        Tell whether small reads add up to a flood: more than a person types
        (L{BULK} bytes a second, after L{TYPING_BURST} at once).
        """
        if self._typing is None:
            self._typing = Budget(TYPING_BURST)
        now = self.policy.clock.seconds()
        return self._typing.spend(now, len(chunk), BULK, TYPING_BURST) > 0

    def _bulkReceived(self, chunk: bytes) -> None:
        """
        Relay a large read a slice of about L{BULK} bytes at a time, each
        slice only once no member of the room that reads is far behind:
        a flood is paced to the readers a slice at a time, and what it makes
        each member queue stays small.
        """
        start = 0
        while start < len(chunk):
            end = chunk.find(b"\n", start + BULK - 1) + 1 or len(chunk)
            self.input.add(partial(self._bulkSlice, chunk[start:end]))
            start = end

    def _bulkSlice(self, piece: bytes) -> Deferred[None] | None:
        """
        Relay one slice of a large read, unless members of the room that
        read are far behind: then the sender pays, its slice waits until
        they have caught up, and its connection stops reading meanwhile.
        """
        for pressure in self._pressures():
            if pressure.holdsBack(self):
                self.input.next(partial(self._bulkSlice, piece))
                return pressure.hold(self)
        lines = piece.split(b"\n")
        lines.pop()
        return self._run(lines, linesAreSafe(piece))

    def inputEnded(self, unfinished: bytes) -> None:
        """
        The client sent all it will send: relay an C{unfinished} last line,
        then quit.
        """
        if unfinished:
            self.linesReceived(unfinished + b"\n")
        self.input.add(self._quitAtEnd)

    def _quitAtEnd(self) -> None:
        self.quit()

    def _run(self, lines: list[bytes], safe: bool) -> Deferred[None] | None:
        """
        Handle C{lines} in order; return what to wait for before the rest of
        them (which then come next), if anything.
        """
        if self.state is SessionState.LOGIN:
            return self._runBeforeLogin(lines)
        messages: list[bytes] = []
        for index, line in enumerate(lines):
            line = line.rstrip(_LINE_END_NOISE)
            if not line:
                continue
            if line[0] != _SLASH:
                messages.append(line)
                continue
            if line.startswith(b"//"):
                messages.append(line[1:])
                continue
            if messages:
                wait = self._sayLines(messages, safe)
                messages = []
                if wait is not None:
                    return self._after(wait, lines[index:], safe)
            step = self.command(line)
            if self.closing:
                return None
            if step is not None and pending(step):
                return self._after(step, lines[index + 1 :], safe)
            if self._charged(line):
                wait = self._commandSpent()
                if wait is not None:
                    return self._after(wait, lines[index + 1 :], safe)
        if messages:
            return self._sayLines(messages, safe)
        return None

    def _runBeforeLogin(self, lines: list[bytes]) -> Deferred[None] | None:
        """
        Handle C{lines} of a member that must log in first: C{/login},
        C{/quit} and C{/help} run; anything else is answered with how to log
        in (and said to nobody).
        """
        for index, line in enumerate(lines):
            line = line.rstrip(_LINE_END_NOISE).lstrip(b" \t")
            if not line:
                continue
            verb = line.partition(b" ")[0]
            if verb in _BEFORE_LOGIN:
                step = self.command(line)
                if self.closing:
                    return None
                wait = step if step is not None and pending(step) else None
                if wait is None and self._charged(line):
                    wait = self._commandSpent()
                if wait is not None:
                    rest = lines[index + 1 :]
                    if rest:
                        self.input.next(partial(self._run, rest, False))
                    return wait
                if self.state is not SessionState.LOGIN:
                    rest = lines[index + 1 :]
                    return self._run(rest, False) if rest else None
                continue
            self.receive(Error("log in first: /login NAME PASSWORD", ErrorKind.USAGE))
        return None

    def _after(
        self, wait: Deferred[None], rest: list[bytes], safe: bool
    ) -> Deferred[None]:
        """
        Wait for C{wait}, then handle C{rest} before anything else.
        """
        if rest:
            self.input.next(partial(self._run, rest, safe))
        return wait

    def _charged(self, line: bytes) -> bool:
        """
        Tell whether the command C{line} counts against the command rate:
        every command but those that say something (paced as lines are).
        """
        found = BY_NAME.get(line.partition(b" ")[0])
        return found is None or not found.says

    def _commandSpent(self) -> Deferred[None] | None:
        """
        Charge a command; past the command rate, the member's input waits.
        """
        policy = self.policy
        if self._commands is None:
            self._commands = Budget(policy.commandBurst)
        now = policy.clock.seconds()
        if "commands" in self._told and self._commands.settled(
            now, policy.commandRate, policy.commandBurst
        ):
            self._told -= {"commands"}
        wait = self._commands.spend(now, 1, policy.commandRate, policy.commandBurst)
        return self._pause(wait, "commands") if wait else None

    def _pause(self, seconds: float, limit: str) -> Deferred[None]:
        """
        What the member's input waits for when it must wait C{seconds} for
        the rate C{limit} (C{commands}, C{flood}), cancelled if the member
        leaves first. The member is told why, once (until that limit's
        budget is back in full), and counted as held meanwhile.
        """
        stats = self.policy.stats
        stats.held += 1
        stats.holds[limit] += 1
        if limit not in self._told:
            self._told |= {limit}
            self.receive(Notice(f"your input is held: {self._heldFor(limit)}"))
        sleeping = self._sleeping = deferLater(self.policy.clock, seconds, _nothing)

        def over(result: object) -> object:
            stats.held -= 1
            return result

        sleeping.addBoth(over)
        return sleeping

    def _heldFor(self, limit: str) -> str:
        """
        Why the rate C{limit} holds input, in a member's words.
        """
        policy = self.policy
        if limit == "commands":
            return (
                f"commands beyond {policy.commandBurst} at once run at "
                f"{policy.commandRate:g} a second; the rest wait their turn"
            )
        return (
            f"what you say may cause {sizeText(policy.floodLimit)} of output a "
            "second (its size times the members receiving it); the rest waits "
            "its turn"
        )

    def command(self, line: bytes) -> Deferred[None] | None:
        """
        Run a C{/command} line.

        @return: a L{Deferred} that fires when the command is done, if the
            service may answer it later; input waits for it.
        """
        verb, _, argument = line.partition(b" ")
        found = BY_NAME.get(verb)
        if found is None:
            shown = safeText(verb).decode("utf-8")
            self.receive(
                Error(
                    f"unknown command {shown} (try /help)",
                    ErrorKind.UNKNOWN_COMMAND,
                    shown,
                )
            )
            return None
        return found.run(self, safeText(argument).decode("utf-8"))

    # Intents: what a member may ask for, whatever its front end

    def _sayLines(self, lines: list[bytes], safe: bool) -> Deferred[None] | None:
        """
        Say C{lines} (typed as they are) in the current room.
        """
        room = self.current
        if room is None:
            self.receive(Error("you are in no room: /join one", ErrorKind.NO_ROOM))
            return None
        return self.say(lines if safe else [safeText(line) for line in lines], room)

    def say(self, lines: Sequence[bytes], room: ChatRoom) -> Deferred[None] | None:
        """
        Say C{lines} (safe UTF-8) in C{room}, one of the member's; return
        how long its input must wait for what that cost, if at all (see
        L{ChatPolicy.floodLimit}, counted per room). With accounts, a line
        that looks like a login typed wrong is said to nobody.
        """
        if self.service.logins is not None:
            lines = self._withoutLogins(lines)
            if not lines:
                return None
            if self._isMuted():
                return None
        room.say(self, lines)
        recipients = room.population() - 1
        self.policy.stats.deliveries += len(lines) * recipients
        size = sum(map(len, lines)) + len(lines) * (len(self.name) + 5)
        return self._spendOutput(room.key, size * max(recipients, 0))

    def _withoutLogins(self, lines: Sequence[bytes]) -> Sequence[bytes]:
        """
        C{lines} without those that look like a login (see
        L{looksLikeLogin}); if there were any, tell the member.
        """
        kept = [line for line in lines if not looksLikeLogin(line)]
        if len(kept) < len(lines):
            self.receive(
                Error(
                    "that looks like a login, and may hold a password: it was not "
                    "sent to anyone (log in with /login NAME PASSWORD, at the start "
                    "of the line)",
                    ErrorKind.LOGIN,
                )
            )
        return kept

    def _spendOutput(self, key: str, size: int) -> Deferred[None] | None:
        """
        Charge C{size} bytes of output caused in the room (or private
        conversation) C{key}; past the flood limit, input waits.
        """
        limit = self.policy.floodLimit
        if not limit or size <= 0:
            return None
        if self._budgets is None:
            self._budgets = {}
        budget = self._budgets.get(key)
        if budget is None:
            self._forgetSettledBudgets(limit)
            budget = self._budgets[key] = Budget(limit)
        now = self.policy.clock.seconds()
        if "flood" in self._told and all(
            each.settled(now, limit, limit) for each in self._budgets.values()
        ):
            self._told -= {"flood"}
        wait = budget.spend(now, size, limit, limit)
        return self._pause(wait, "flood") if wait else None

    def _forgetSettledBudgets(self, limit: int) -> None:
        """
        Forget the flood budgets of rooms the member is no longer in that
        are paid back in full (one that is not keeps its debt: a flooder
        gains nothing by hopping).
        """
        assert self._budgets is not None
        mine = {room.key for room in self.rooms}
        now = self.policy.clock.seconds()
        for key in list(self._budgets):
            if key not in mine and self._budgets[key].settled(now, limit, limit):
                del self._budgets[key]

    def sayIn(self, roomText: str, text: str) -> Deferred[None] | None:
        """
        Say C{text} in the room C{roomText} names, one of the member's.
        """
        room = self._myRoom(roomText)
        if room is None:
            return None
        if not text:
            self.receive(Error("say what? /say ROOM TEXT", ErrorKind.USAGE))
            return None
        return self.say([text.encode("utf-8")], room)

    def _myRoom(self, roomText: str) -> ChatRoom | None:
        """
        The member's room C{roomText} names; if it is not one, say so.
        """
        key = roomKey(roomText.removeprefix("#"))
        for room in self.rooms:
            if room.key == key:
                return room
        shown = roomText.removeprefix("#") or "?"
        self.receive(Error(f"you are not in #{shown}", ErrorKind.NOT_IN_ROOM, shown))
        return None

    def join(self, roomText: str) -> Deferred[None] | None:
        """
        Go to the room C{roomText} names (a line client leaves its room for
        it; others stay in theirs too).
        """
        if not roomText:
            self.receive(Error("join which room? /join ROOM", ErrorKind.USAGE))
            return None
        key = roomKey(roomText.removeprefix("#"))
        for room in self.rooms:
            if room.key == key and (self.multiRoom or room is self.current):
                self.receive(
                    Error(
                        f"you are in #{room.name} already",
                        ErrorKind.ALREADY_IN_ROOM,
                        room.name,
                    )
                )
                return None
        if self.multiRoom and self._hoarding(roomText):
            return None
        # An address that hops from room to room again and again is not
        # announced every time (as one that connects again and again).
        churn = self.policy.churn
        quietly = churn is not None and churn.joining(self.connection.peerHost)
        joining = self.service.join(self, self.name, roomText, quietly)
        return joining.addCallbacks(
            self._joined, self._notJoined, errbackArgs=(roomText.removeprefix("#"),)
        )

    def _hoarding(self, roomText: str) -> bool:
        """
        Tell whether making the room C{roomText} would make the member, in
        several rooms at once, one who takes too many of the rooms there
        may be (see L{RoomRules.madeByOne}); if so, say so.
        """
        rules = self.service.rules
        wanted = roomText.removeprefix("#")
        if rules.fixed or rules.isDefault(wanted) or self.service.room(wanted):
            return False
        mine = [room for room in self.rooms if not rules.isDefault(room.name)]
        if len(mine) < rules.madeByOne:
            return False
        self.receive(
            Error(
                f"you are in {plural(len(mine), 'room')} already, the most one may "
                "be in to make another; /part one, or join a room there is",
                ErrorKind.TOO_MANY_ROOMS,
                wanted,
            )
        )
        return True

    def _joined(self, room: ChatRoom) -> None:
        if self.closing:
            self.service.part(self, room)
            return
        previous = self.current
        self.current = room
        self.receive(
            Entered(
                room.name,
                room.population() - 1,
                room.names(),
                room.topic,
                room.operators(),
            )
        )
        room.tellHistory(self)
        if previous is not None and previous is not room and not self.multiRoom:
            self.service.part(self, previous)

    def _notJoined(self, failure: Failure, wanted: str) -> None:
        if isinstance(failure.value, RoomFull):
            self.receive(
                Error(str(failure.value), ErrorKind.ROOM_FULL, failure.value.room)
            )
            return
        if isinstance(failure.value, RoomRejected):
            kind = (
                ErrorKind.TOO_MANY_ROOMS
                if failure.value.tooMany
                else ErrorKind.ROOM_REFUSED
            )
            self.receive(Error(str(failure.value), kind, wanted))
            return
        self.log.failure("Could not take {name} into a room", failure, name=self.name)
        self.receive(
            Error(
                "you could not join that room; try again later",
                ErrorKind.UNAVAILABLE,
                wanted,
            )
        )

    def part(
        self, roomText: str | None = None, reason: str = ""
    ) -> Deferred[None] | None:
        """
        Leave the room C{roomText} names, or the current one (the others
        told C{reason}, if any): a line client goes back to the default
        room.
        """
        if roomText is None:
            room = self.current
            if room is None:
                self.receive(Error("you are in no room", ErrorKind.NO_ROOM))
                return None
        else:
            room = self._myRoom(roomText)
            if room is None:
                return None
        if not self.multiRoom:
            default = self.service.rules.default
            if room.key == roomKey(default):
                self.receive(
                    Error(
                        f"you are in #{room.name}, the default room, already",
                        ErrorKind.ALREADY_IN_ROOM,
                        room.name,
                    )
                )
                return None
            return self.join(default)
        self.service.part(self, room, departureReason(reason))
        self.receive(Parted(room.name))
        if self.current is room:
            rooms = self.rooms
            self.current = rooms[-1] if rooms else None
        return None

    def rename(self, newName: str) -> Deferred[None] | None:
        """
        Change the member's name to C{newName}, at most C{renames} times a
        minute.
        """
        policy = self.policy
        now = policy.clock.seconds()
        since = now - policy.renameWindow
        self._renames = tuple(when for when in self._renames if when > since)
        if len(self._renames) >= policy.renames:
            wait = math.ceil(self._renames[0] - since)
            self.receive(
                Error(
                    f"too many changes of name; try again in {plural(wait, 'second')}",
                    ErrorKind.TOO_MANY_RENAMES,
                    newName,
                )
            )
            return None
        if newName == self.name:
            self.receive(NameChanged(self.name, self.name))
            return None
        if self._isMuted("you cannot change your name"):
            return None
        oldName = self.name
        renaming = self.service.rename(self, oldName, newName)
        return renaming.addCallbacks(
            self._renamed,
            self._notRenamed,
            callbackArgs=(oldName, newName),
            errbackArgs=(newName,),
        )

    def _renamed(self, ignored: object, oldName: str, newName: str) -> None:
        if self.closing:
            return
        self.name = newName
        self._renames += (self.policy.clock.seconds(),)
        if self.policy.logRenames:
            self.log.info("{old} is now known as {new}", old=oldName, new=newName)
        self.receive(NameChanged(newName, oldName))

    def _notRenamed(self, failure: Failure, wanted: str) -> None:
        if isinstance(failure.value, NameRejected):
            kind = (
                ErrorKind.NAME_TAKEN if failure.value.taken else ErrorKind.NAME_INVALID
            )
            self.receive(Error(str(failure.value), kind, wanted))
            return
        self.log.failure("Could not rename {name}", failure, name=self.name)
        self.receive(
            Error(
                "your name could not be changed; try again later",
                ErrorKind.UNAVAILABLE,
                wanted,
            )
        )

    def message(
        self, recipient: str, text: str, action: bool = False, notice: bool = False
    ) -> Deferred[None] | None:
        """
        Say C{text} (an action, if C{action}; a notice, if C{notice}) to the
        person called C{recipient} alone, wherever it is. The member is told
        once it went through (or why not: never for a notice, which no
        program answers, as IRC's rule is); its input does not wait for that
        (a person on another node may take a while to reach), only for what
        the message costs (the flood limit).
        """
        if not recipient or not text:
            if not notice:
                self.receive(
                    Error("to whom, and what? /msg NAME TEXT", ErrorKind.USAGE)
                )
            return None
        line = text.encode("utf-8")
        if self.service.logins is not None and (
            not self._withoutLogins([line]) or self._isMuted()
        ):
            return None
        lines = [NOTICE + line if notice else ACTION + line if action else line]
        telling = self.service.tell(self, self.name, recipient, lines)

        def told(name: str) -> None:
            self.receive(PrivateSent(name, lines))

        def notTold(failure: Failure) -> None:
            if isinstance(failure.value, NobodyThere | Unreachable):
                if not notice:
                    kind = (
                        ErrorKind.NOBODY
                        if isinstance(failure.value, NobodyThere)
                        else ErrorKind.UNREACHABLE
                    )
                    self.receive(Error(str(failure.value), kind, recipient))
                return
            self.log.failure("Could not tell {name}", failure, name=recipient)
            if not notice:
                self.receive(
                    Error(
                        f"{recipient} could not be told; try again later",
                        ErrorKind.UNAVAILABLE,
                        recipient,
                    )
                )

        telling.addCallbacks(told, notTold)
        size = len(lines[0]) + len(self.name) + 5
        return self._spendOutput("*private*", size)

    def act(self, text: str, roomText: str | None = None) -> Deferred[None] | None:
        """
        Do C{text} (C{/me waves}: an action, shown as C{* NAME waves}) in the
        current room, or in the room C{roomText} names (one of the
        member's).
        """
        room = self._roomNamed(roomText, "you are in no room: /join one")
        if room is None:
            return None
        if not text:
            self.receive(Error("do what? /me ACTION", ErrorKind.USAGE))
            return None
        return self.say([ACTION + text.encode("utf-8")], room)

    def topic(
        self, roomText: str | None = None, text: str | None = None
    ) -> Deferred[None] | None:
        """
        Show the topic of the current room, or of the room C{roomText} names
        (one of the member's); or, given C{text}, set it (empty: clear it).
        Anyone in a room may.
        """
        room = self._roomNamed(roomText)
        if room is None:
            return None
        if text is None:
            self.receive(TopicChanged(room.name, room.topic, changed=False))
            return None
        if self.service.logins is not None and (
            not self._withoutLogins([text.encode("utf-8")]) or self._isMuted()
        ):
            return None
        if len(text) > TOPIC_LENGTH:
            self.receive(
                Error(
                    f"a topic is at most {TOPIC_LENGTH} characters",
                    ErrorKind.USAGE,
                    room.name,
                )
            )
            return None
        room.setTopic(self, text)
        return None

    def _roomNamed(
        self, roomText: str | None, noRoom: str = "you are in no room"
    ) -> ChatRoom | None:
        """
        The current room, or the room C{roomText} names (one of the
        member's); if there is none, tell the member (C{noRoom}: why, when
        it is in no room) and return C{None}.
        """
        if roomText is not None:
            return self._myRoom(roomText)
        if self.current is None:
            self.receive(Error(noRoom, ErrorKind.NO_ROOM))
        return self.current

    def who(self, roomText: str | None = None) -> Deferred[None] | None:
        """
        List who is in the current room, or in the room C{roomText} names.
        """
        room = self._roomNamed(roomText)
        if room is None:
            return None
        names = room.names()
        self.receive(Members(room.name, names[:MAX_WHO_NAMES], len(names)))
        return None

    def listRooms(self) -> Deferred[None] | None:
        """
        List the rooms, with how many are in each.
        """
        listing = self.service.rooms()

        def listed(rooms: list[tuple[str, int]]) -> None:
            self.receive(Rooms(rooms[:MAX_ROOMS_LISTED], len(rooms)))

        def notListed(failure: Failure) -> None:
            self.log.failure("Could not list the rooms", failure)
            self.receive(
                Error(
                    "the rooms could not be listed; try again later",
                    ErrorKind.UNAVAILABLE,
                )
            )

        return listing.addCallbacks(listed, notListed)

    # Logging in

    def authenticate(self, name: str, password: str) -> Deferred[Account]:
        """
        Check C{password} for the account C{name}, from this member's
        connection (under the rules of logging in: its address's waits,
        TLS when required); nothing else changes.

        @return: a L{Deferred} firing with the account, or failing with
            L{LoginRefused} (saying why, to the member).
        """
        logins = self.service.logins
        if logins is None:
            return fail(LoginRefused("there are no accounts on this server", "none"))
        connection = self.connection
        return logins.login(
            name, password, connection.peerHost, connection.secure, connection.peer
        )

    def logIn(self, name: str, password: str) -> Deferred[None] | None:
        """
        Log in to the account C{name} with C{password} (C{/login}): the
        member takes the account's name, which only those logged in to it
        may have. Its input waits until the password is checked.
        """
        if self.account is not None:
            self.receive(
                Error(
                    f"you are logged in as {self.account.name} already; /logout first",
                    ErrorKind.LOGIN,
                )
            )
            return None
        if not name or not password:
            self.receive(Error("log in how? /login NAME PASSWORD", ErrorKind.USAGE))
            return None
        checking = self.authenticate(name, password)
        self._loginsChecking += 1

        def checked(outcome: object) -> object:
            self._loginsChecking -= 1
            return outcome

        checking.addBoth(checked)
        return checking.addCallbacks(self.loggedIn, self._notLoggedIn)

    def _notLoggedIn(self, failure: Failure) -> None:
        if failure.check(LoginRefused):
            self.receive(Error(str(failure.value), ErrorKind.LOGIN))
        else:
            self.log.failure("Could not log {name} in", failure, name=self.name)
            self.receive(
                Error(
                    "you could not be logged in; try again later",
                    ErrorKind.UNAVAILABLE,
                )
            )
        logins = self.service.logins
        if (
            self.state is SessionState.LOGIN
            and self._loginDeadline is None
            and not self._loginsChecking
            and logins is not None
            and logins.rules.deadline > 0
        ):
            # The deadline passed while the password was checked: it waited
            # for this answer only.
            self._loginTimedOut()

    def loggedIn(self, account: Account) -> Deferred[None] | None:
        """
        The member logged in to C{account}: it is its account from now on.
        A member that had to log in arrives now, under the account's name; a
        member in the chat takes the account's name (a guest of this process
        who has it is renamed; see L{ChatService.toGuest}); one not yet
        named (IRC, before it registers) registers with it.
        """
        if self.closing:
            return None
        self.account = account
        if self.state is SessionState.LOGIN:
            timer, self._loginDeadline = self._loginDeadline, None
            if timer is not None and timer.active():
                timer.cancel()
            self._arrive()
            return None
        if self.state is not SessionState.PRESENT:
            return None
        self.receive(Notice(self._loggedInText(account)))
        if nameKey(self.name) == nameKey(account.name):
            return None
        return self._takeAccountName(account)

    def _loggedInText(self, account: Account) -> str:
        roles = f" ({', '.join(sorted(account.roles))})" if account.roles else ""
        return f"you are logged in as {account.name}{roles}"

    def _takeAccountName(self, account: Account) -> Deferred[None]:
        """
        Take the name of C{account}, from a guest of this process if one
        has it.
        """
        service = self.service
        holder = service.people.find(account.name)
        holderName = service.people.holderOf(account.name)
        if (
            holder is not None
            and holder is not self
            and holderName is not None
            and service.reserved(holder, holderName) is not None
        ):
            freeing: Deferred[Any] = service.toGuest(
                holder,
                holderName,
                f"the name {holderName} belongs to an account, which logged in",
            )
        else:
            freeing = Deferred()
            freeing.callback(None)

        def rename(ignored: object) -> Deferred[None]:
            oldName = self.name
            renaming = service.rename(self, oldName, account.name)
            return renaming.addCallbacks(
                self._renamed,
                self._notTakenName,
                callbackArgs=(oldName, account.name),
                errbackArgs=(account,),
            )

        return freeing.addCallback(rename)

    def _notTakenName(self, failure: Failure, account: Account) -> None:
        if self.closing:
            return
        if failure.check(NameRejected):
            self.receive(
                Notice(
                    f"the name {account.name} is in use (by another of your "
                    f"connections?); you keep the name {self.name}"
                )
            )
            return
        self.log.failure("Could not rename {name}", failure, name=self.name)

    def accountChanged(self, account: Account | None) -> None:
        """
        The account the member is logged in to was removed (C{None}: it is
        logged out, as by C{/logout}) or its roles changed (it has the new
        ones from now on); either way it is told.
        """
        old = self.account
        if old is None or self.closing:
            return
        if account is None:
            self.receive(Notice(f"the account {old.name} was removed"))

            def logOutOfIt() -> Deferred[None] | None:
                # In turn with its input: unless it left the account since.
                if self.account is None or self.account.key != old.key:
                    return None
                return self.logOut()

            self.input.add(logOutOfIt)
            return
        self.account = account
        self.receive(Notice(f"your account changed: {self._loggedInText(account)}"))

    def logOut(self) -> Deferred[None] | None:
        """
        Leave the member's account (C{/logout}): it is a guest again, and
        leaves the account's name for a default one. Where everyone must be
        logged in, it leaves the chat.
        """
        account = self.account
        if account is None:
            self.receive(Error("you are not logged in", ErrorKind.LOGIN))
            return None
        self.account = None
        logins = self.service.logins
        if logins is not None and logins.rules.requireLogin:
            self.quit(f"you logged out of {account.name}; goodbye")
            return None
        self.receive(Notice(f"you logged out of {account.name}"))
        if self.state is not SessionState.PRESENT or nameKey(self.name) != nameKey(
            account.name
        ):
            return None
        leaving = self.service.toGuest(
            self, self.name, f"the name {self.name} is the account's"
        )

        def notLeft(failure: Failure) -> None:
            self.log.failure("Could not rename {name}", failure, name=self.name)

        return leaving.addCallbacks(lambda guest: None, notLeft)

    def renamed(self, newName: str) -> None:
        """
        The service gave the member another name: take it, and say so.
        """
        oldName, self.name = self.name, newName
        self.receive(NameChanged(newName, oldName))

    def tell(self, text: str) -> None:
        """
        Give the member a notice.
        """
        self.receive(Notice(text))

    # Operators: kick, ban, mute

    def expel(self, told: str, reason: str, kind: str) -> None:
        """
        An operator removes the member: it is told C{told} in one error and
        closed; the others in its rooms are told it left, saying C{reason}
        (counted and logged as a refusal of C{kind}: C{kicked}, C{banned}).
        """
        if self.closing:
            return
        self.flushQueue()
        self.stop(departureReason(reason))
        self.connection.refuse(told, kind)

    def _operator(self, command: str) -> Moderation | None:
        """
        The server's bans and mutes, if the member is an operator (logged in
        to an account with the role); if not, say so.
        """
        moderation = self.service.moderation
        account = self.account
        if moderation is None or account is None or not account.isOperator:
            self.receive(
                Error(
                    f"{command} is for operators (logged in to an account with "
                    "the operator role)",
                    ErrorKind.NOT_OPERATOR,
                )
            )
            return None
        return moderation

    def _expelAll(
        self,
        matches: Callable[[IChatMember, str], bool],
        told: str,
        reason: str,
        kind: str,
    ) -> list[str]:
        """
        Remove everyone of this process that C{matches} (a person and its
        name), but the member itself: each told C{told}, the others in its
        rooms C{reason}.

        @return: their names.
        """
        return _expelAll(self.service, matches, told, reason, kind, self)

    def _byName(self, wanted: str) -> Callable[[IChatMember, str], bool]:
        """
        What matches the person called C{wanted}, and everyone logged in to
        the account called C{wanted}.
        """
        return _byName(wanted)

    def kick(self, target: str, reason: str = "") -> None:
        """
        As an operator, remove the person called C{target} (and every
        connection logged in to the account C{target}), telling them why.
        """
        moderation = self._operator("/kick")
        if moderation is None:
            return
        if not target:
            self.receive(Error("kick whom? /kick NAME [WHY]", ErrorKind.USAGE))
            return
        reason = departureReason(reason)
        why = f": {reason}" if reason else ""
        # Someone of that name, or logged in to that account, may be on
        # another node of a bus: those nodes are asked too.
        # (Not a name held here: once freed, someone else may take it.)
        logins = self.service.logins
        holder = self.service.people.holderOf(target)
        known = (holder is not None and self.service.people.find(target) is None) or (
            logins is not None and logins.ownerOf(target) is not None
        )
        removed = self._expelAll(
            self._byName(target),
            f"you were kicked by {self.name}{why}",
            f"kicked by {self.name}{why}",
            "kicked",
        )
        elsewhere = (
            moderation.kickElsewhere(holder or target, self.name, reason)
            if known
            else None
        )
        if not removed and elsewhere is None:
            self.receive(
                Error(f"nobody here is called {target}", ErrorKind.NOBODY, target)
            )
            return
        assert self.account is not None
        if not removed:
            moderation.kicked(
                self.account.name, f"{holder or target} (elsewhere)", reason
            )
            self.receive(
                Notice(f"you asked every server to kick {holder or target}{why}")
            )
            return
        moderation.kicked(self.account.name, ", ".join(removed), reason)
        self.receive(Notice(f"you kicked {', '.join(removed)}{why}"))

    def kickFromRoom(self, room: ChatRoom, target: str, reason: str = "") -> str | None:
        """
        As an operator, take the person called C{target} out of C{room}
        (IRC's C{KICK}), saying C{reason}: everyone in the room is told, the
        person too, who stays connected. The caller checks the member is an
        operator (each front end says so its own way).

        @return: the person's name, or C{None} if nobody of this process
            called C{target} is in C{room}.
        """
        moderation = self.service.moderation
        assert moderation is not None
        assert self.account is not None
        person = _sessionOf(self.service.people.find(target))
        name = self.service.people.holderOf(target)
        if name is None or person is None:
            return None
        reason = departureReason(reason)
        if not self.service.kick(person, room, self.name, reason):
            return None
        person.kickedFrom(room)
        moderation.kicked(self.account.name, f"{name} from #{room.name}", reason)
        return name

    def kickedFrom(self, room: ChatRoom) -> None:
        """
        An operator took the member out of C{room}: its lines go to another
        of its rooms, if it has one.
        """
        if self.current is room:
            rooms = self.rooms
            self.current = rooms[-1] if rooms else None

    @property
    def isOperator(self) -> bool:
        """
        Whether the member may kick, ban and mute: it is logged in to an
        account with the operator role, on a server that keeps bans.
        """
        return (
            self.service.moderation is not None
            and self.account is not None
            and self.account.isOperator
        )

    def ban(self, argument: str) -> Ban | None:
        """
        As an operator, ban (C{/ban WHAT [DURATION] [WHY]}) an account, an
        address or a network (a guest's name: its address), for a while
        (C{30s}, C{10m}, C{2h}, C{7d}) or until lifted; whoever it matches
        now is removed, told why.
        """
        moderation = self._operator("/ban")
        if moderation is None:
            return None
        what, _, rest = argument.strip().partition(" ")
        first, _, after = rest.strip().partition(" ")
        seconds = parseDuration(first) if first else None
        reason = departureReason(after if seconds is not None else rest)
        if not what:
            self.receive(
                Error(
                    "ban what? /ban NAME|ADDRESS|NETWORK [DURATION] [WHY]",
                    ErrorKind.USAGE,
                )
            )
            return None
        if seconds is None and meantAsDuration(first):
            # Not a ban until lifted whose reason is the mistyped time.
            self.receive(
                Error(
                    f"{departureReason(first)[:20]} is no time: TIME is written "
                    "30s, 10m, 2h or 7d; /ban NAME|ADDRESS|NETWORK [DURATION] [WHY]",
                    ErrorKind.USAGE,
                )
            )
            return None
        network = parseNetwork(what)
        owner = (
            None if self.service.logins is None else self.service.logins.ownerOf(what)
        )
        if network is None and owner is None:
            person = self.service.people.find(what)
            host = None if person is None else _hostOf(person)
            network = None if host is None else parseNetwork(host)
            if network is None and _sessionOf(person) is not None:
                held = self.service.people.holderOf(what) or what
                self.receive(
                    Error(
                        f"{held} connects without an address (through a UNIX "
                        f"socket): there is none to ban; /kick {held} instead",
                        ErrorKind.NOBODY,
                        what,
                    )
                )
                return None
            if network is None:
                self.receive(
                    Error(
                        f"there is no account, and nobody here, called {what}; "
                        "/ban NAME|ADDRESS|NETWORK [DURATION] [WHY]",
                        ErrorKind.NOBODY,
                        what,
                    )
                )
                return None
        assert self.account is not None
        if network is not None:
            ban = moderation.ban(str(network), self.account.name, seconds, reason)
        else:
            assert owner is not None
            ban = moderation.ban(owner, self.account.name, seconds, reason)
        removed = expelBanned(self.service, ban, exempt=self)
        gone = f"; removed {', '.join(removed)}" if removed else ""
        self.receive(Notice(f"banned {ban.what} {showUntil(ban.until)}{gone}"))
        return ban

    def unban(self, what: str) -> Ban | None:
        """
        As an operator, lift the ban of C{what} (an account's name, an
        address, a network, as C{/bans} shows it).
        """
        moderation = self._operator("/unban")
        if moderation is None:
            return None
        if not what:
            self.receive(Error("unban what? /unban WHAT (see /bans)", ErrorKind.USAGE))
            return None
        assert self.account is not None
        ban = moderation.unban(what, self.account.name)
        if ban is None:
            self.receive(
                Error(f"{what} is not banned (see /bans)", ErrorKind.NOBODY, what)
            )
            return None
        self.receive(Notice(f"{ban.what} is no longer banned"))
        return ban

    def listBans(self) -> None:
        """
        As an operator, list the bans and mutes in force, with the time
        each has left.
        """
        moderation = self._operator("/bans")
        if moderation is None:
            return
        now = moderation.clock.seconds()
        lines = []
        for ban in moderation.bans():
            why = f": {ban.reason}" if ban.reason else ""
            lines.append(
                f"ban {ban.what} ({showLeft(ban.until, now)}, by {ban.by}){why}"
            )
        for mute in moderation.mutes():
            lines.append(
                f"mute {mute.name} ({showLeft(mute.until, now)}, by {mute.by})"
            )
        self.receive(Notice("\n".join(lines) if lines else "no bans, no mutes"))

    def mute(self, argument: str) -> None:
        """
        As an operator, mute (C{/mute NAME [DURATION]}) the person called
        C{NAME} (or the account), for a while or until lifted: what it says
        is refused, and nobody else is disturbed.
        """
        moderation = self._operator("/mute")
        if moderation is None:
            return
        name, _, rest = argument.strip().partition(" ")
        seconds = parseDuration(rest) if rest.strip() else None
        if not name or (rest.strip() and seconds is None):
            self.receive(
                Error("mute whom, for how long? /mute NAME [DURATION]", ErrorKind.USAGE)
            )
            return
        service = self.service
        held = service.people.holderOf(name)
        owner = None if service.logins is None else service.logins.ownerOf(name)
        if held is None and owner is None:
            self.receive(Error(f"nobody here is called {name}", ErrorKind.NOBODY, name))
            return
        assert self.account is not None
        muted = moderation.mute(owner or held or name, self.account.name, seconds)
        until = showUntil(muted.until)
        person = service.people.find(name)
        if person is not None and person is not self:
            person.receive(Notice(f"you are muted {until} by {self.name}"))
        self.receive(Notice(f"muted {muted.name} {until}"))

    def unmute(self, name: str) -> None:
        """
        As an operator, lift the mute of C{name}.
        """
        moderation = self._operator("/unmute")
        if moderation is None:
            return
        if not name:
            self.receive(Error("unmute whom? /unmute NAME", ErrorKind.USAGE))
            return
        assert self.account is not None
        owner = (
            None if self.service.logins is None else self.service.logins.ownerOf(name)
        )
        mute = moderation.unmute(owner or name, self.account.name)
        if mute is None:
            self.receive(Error(f"{name} is not muted", ErrorKind.NOBODY, name))
            return
        person = self.service.people.find(mute.name)
        if person is not None and person is not self:
            person.receive(Notice("you are no longer muted"))
        self.receive(Notice(f"{mute.name} is no longer muted"))

    def _isMuted(self, refused: str = "nobody sees what you say") -> bool:
        """
        Tell whether the member is muted now; if so, tell it that what it
        asked is C{refused}.
        """
        moderation = self.service.moderation
        if moderation is None:
            return False
        names = (self.name,) if self.account is None else (self.name, self.account.name)
        mute = moderation.muted(*names)
        if mute is None:
            return False
        self.receive(
            Error(
                f"you are muted {showUntil(mute.until)}: {refused}",
                ErrorKind.MUTED,
            )
        )
        return True

    # Output, bounded

    def receive(self, event: ChatEvent) -> None:
        """
        Send C{event} to the member, formatted for its wire; queue it while
        the connection cannot take more, and drop the member once the queue
        exceeds C{maxPending}.
        """
        # The broadcast hot path: one call per recipient, as for bytes.
        try:
            data = event.encoded[self.wire]
        except KeyError:
            data = event.encodedFor(self.wire)
        if self.personalize is not None and OWN_NAME in data:
            data = self.personalize(data)
            if not data:
                return
        self.policy.stats.bytesOut += len(data)
        if self.outputPaused or self.closing:
            self._queue(data)
        else:
            self._send(data)

    def _queue(self, data: bytes) -> None:
        if self.closing:
            return
        self.queued += len(data)
        if self.queued > self.policy.maxPending:
            self.policy.stats.refused["slow_reader"] += 1
            self.connection.logLimited(
                "slow readers",
                "Client {peer} is not reading: over {limit} bytes of output are "
                "waiting for it; disconnecting",
                peer=self.connection.peer,
                limit=self.policy.maxPending,
            )
            self.queue.clear()
            self.stop()
            self.connection.abort()
            return
        self.queue.append(data)
        if self.queued > self.policy.maxPending // BEHIND:
            # Far behind: bulk senders of its rooms wait while it still reads.
            for room in self.rooms:
                if room.pressure is not None:
                    room.pressure.fellBehind(self, self.connection.unsent)

    def flushQueue(self) -> None:
        """
        Hand everything queued to the connection.
        """
        if self.queue:
            data = b"".join(self.queue)
            self.queue.clear()
            self.queued = 0
            self._send(data)

    def pauseOutput(self) -> None:
        """
        The connection cannot take more for now: queue further output.
        """
        self._connectionFull = True
        self.outputPaused = True

    def resumeOutput(self) -> None:
        """
        The connection can take output again: send what is queued (once the
        member has been greeted).
        """
        self._connectionFull = False
        if self.state is SessionState.PRESENT or self.state is SessionState.LOGIN:
            self.outputPaused = False
            self.flushQueue()
        for room in self.rooms:
            if room.pressure is not None:
                # After the flush: senders released now write straight through.
                room.pressure.caughtUp(self)


def _byName(wanted: str) -> Callable[[IChatMember, str], bool]:
    """
    What matches the person called C{wanted}, and everyone logged in to the
    account called C{wanted}.
    """
    key = nameKey(wanted)

    def matches(person: IChatMember, name: str) -> bool:
        account = person.account
        return nameKey(name) == key or (
            account is not None and nameKey(account.name) == key
        )

    return matches


def _expelAll(
    service: ChatService,
    matches: Callable[[IChatMember, str], bool],
    told: str,
    reason: str,
    kind: str,
    exempt: object = None,
) -> list[str]:
    """
    Remove everyone of C{service}'s process that C{matches} (a person and
    its name), but C{exempt}: each told C{told}, the others in its rooms
    C{reason}.

    @return: their names.
    """
    removed = []
    for person, name in service.people.everyone():
        session = _sessionOf(person)
        if session is not None and session is not exempt and matches(person, name):
            session.expel(told, reason, kind)
            removed.append(name)
    return removed


def expelKicked(service: ChatService, kick: Kick) -> list[str]:
    """
    Remove everyone of C{service}'s process called C{kick.name} (or logged
    in to that account): an operator of another node kicked them. Each is
    told why, as by a kick here.

    @return: their names.
    """
    why = f": {kick.reason}" if kick.reason else ""
    removed = _expelAll(
        service,
        _byName(kick.name),
        f"you were kicked by {kick.by}{why}",
        f"kicked by {kick.by}{why}",
        "kicked",
    )
    moderation = service.moderation
    if removed and moderation is not None:
        moderation.kicked(kick.by, ", ".join(removed), kick.reason)
    return removed


def expelBanned(service: ChatService, ban: Ban, exempt: object = None) -> list[str]:
    """
    Remove everyone of C{service}'s process that C{ban} matches (by its
    address, or its account), but C{exempt} (the operator who banned),
    each told why.

    @return: their names.
    """
    why = f": {ban.reason}" if ban.reason else ""
    matches: Callable[[IChatMember, str], bool]
    if ban.network is not None:

        def matches(person: IChatMember, name: str) -> bool:
            return ban.matchesHost(_hostOf(person))

    else:
        matches = _byName(ban.what)
    return _expelAll(
        service,
        matches,
        f"you are banned from this server {showUntil(ban.until)}{why}",
        f"banned by {ban.by}{why}",
        "banned",
        exempt,
    )


def _sessionOf(person: object) -> ChatSession | None:
    """
    C{person}, if it is a session of this process (not a bus's stand-in).
    """
    return person if isinstance(person, ChatSession) else None


def _hostOf(person: IChatMember) -> str | None:
    """
    The address C{person} connects from, if it is a session with one.
    """
    return person.connection.peerHost if isinstance(person, ChatSession) else None


def pending(deferred: Deferred[Any]) -> bool:
    """
    Tell whether C{deferred} has not settled yet: not fired, or fired but
    waiting for another L{Deferred} a callback returned (C{called} is then
    already true).
    """
    return not settled(deferred)


def _nothing() -> None:
    """
    What a pause waits for.
    """

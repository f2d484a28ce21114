"""
One member's chat session, whatever carries it: commands, safe text,
default names and bounded output.

A front end (the TCP line protocol, a WebSocket, ...) frames its client's
input into lines and hands them to a L{ChatSession}; the session runs the
commands, makes message text safe to show, speaks to the room through
L{IChatRoom}, and writes what the member receives, formatted for the front
end's wire, through the L{ChatConnection} the front end provides. Nothing
of this is written twice for two front ends.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import Any, Protocol

from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from sockserve._text import linesAreSafe, plural, safeText
from sockserve.chat.events import (
    Banner,
    ChatEvent,
    ChatWire,
    Error,
    Members,
    NameChanged,
    Notice,
    Welcome,
)
from sockserve.chat.policy import Budget, ChatPolicy
from sockserve.chat.room import IChatMember, IChatRoom, NameRejected, RoomFull

HELP = (
    "/nick NAME   change your name",
    "/who         list who is here",
    "/quit        leave",
    "/help        show this help",
    "//text       send a line that starts with /",
)

MAX_WHO_NAMES = 100

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


class ChatConnection(Protocol):
    """
    What a session needs of the connection that carries it.
    """

    @property
    def peer(self) -> str:
        """
        The client's address, shown as its name until it picks one.
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

    def unsent(self) -> int | None:
        """
        How many bytes written to the connection the client has not taken
        yet (what the server holds for it, in its own buffers and the
        kernel's), or C{None} if it cannot tell.
        """

    def pauseInput(self) -> None:
        """
        Stop handing the session input until L{resumeInput}.
        """

    def logLimited(self, kind: str, format: str, **fields: Any) -> None:
        """
        Log, as a warning, something the client caused, at a bounded rate
        (C{kind} names such events in a summary of those not logged).
        """

    def resumeInput(self) -> None:
        """
        Hand the session input again.
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


@implementer(IChatMember)
class ChatSession:
    """
    One member of a room, as its front end drives it.

    Input comes in whole lines (L{linesReceived}); output goes to the
    connection while it keeps up, and is queued while the connection says
    it cannot take more (L{pauseOutput}); once more than C{maxPending} bytes
    wait, the member is dropped, and nobody else waits for it.

    While the room has not answered a request (admission, or a change of
    name, when the room is shared with other processes), input is held and
    the connection paused, so lines keep their order around commands. Input
    is held the same way while the member floods (see L{ChatPolicy}).

    @ivar name: the member's name in the room, once joined.
    @ivar closing: set once the member has left or is leaving.
    """

    log = Logger()

    # A session per client: slots keep an idle one small.
    __slots__ = (
        "_commands",
        "_connectionFull",
        "_held",
        "_output",
        "_renames",
        "_send",
        "_sleeping",
        "_typing",
        "_waiting",
        "banner",
        "closing",
        "connection",
        "joined",
        "name",
        "outputPaused",
        "policy",
        "queue",
        "queued",
        "room",
        "wire",
    )

    def __init__(
        self,
        room: IChatRoom,
        connection: ChatConnection,
        wire: ChatWire,
        banner: Banner,
        policy: ChatPolicy,
    ) -> None:
        self.room = room
        self.policy = policy
        self.connection = connection
        self.wire = wire
        self.banner = banner
        self.name = ""
        self.joined = False
        self.closing = False
        # Output waits for the greeting: until the member is admitted, what
        # the room sends it is queued behind it.
        self.outputPaused = True
        self._connectionFull = False
        self.queue: list[bytes] = []
        self.queued = 0
        self._waiting = False
        # Input held while the room answers a request, or while the member
        # floods (rarely any: made on first use).
        self._held: list[Callable[[], object]] | None = None
        self._sleeping: Deferred[None] | None = None
        # Made on first use: most members never need them.
        self._commands: Budget | None = None
        self._output: Budget | None = None
        self._typing: Budget | None = None
        self._renames: tuple[float, ...] = ()

    # Joining and leaving

    def start(self) -> None:
        """
        Ask the room to admit the member under its address; greet it, or tell
        it why it cannot join and close.
        """
        self._send = self.connection.send
        churn = self.policy.churn
        quietly = churn is not None and churn.joining(self.connection.peerHost)
        joining = self.room.join(self, self.connection.peer, quietly)
        self._waitFor(joining.addCallbacks(self._joined, self._notJoined))

    def _joined(self, name: str) -> None:
        if self.closing:
            # The client left while the room considered it.
            self.room.leave(self)
            return
        self.name = name
        self.joined = True
        others = self.room.population() - 1
        greeting = self.banner.encodedFor(self.wire) + Welcome(name, others).encodedFor(
            self.wire
        )
        self.queue.insert(0, greeting)
        self.queued += len(greeting)
        if not self._connectionFull:
            self.resumeOutput()

    def _notJoined(self, failure: Failure) -> None:
        if isinstance(failure.value, RoomFull):
            capacity = failure.value.capacity
            kind = "full"
            reason = f"the server is full ({capacity} clients); try again later"
        else:
            self.log.failure(
                "Could not admit {peer}", failure, peer=self.connection.peer
            )
            kind = "unavailable"
            reason = "the room is unavailable; try again later"
        if not self.closing:
            self.stop()
            self.connection.refuse(reason, kind)

    def quit(self) -> None:
        """
        Leave the room, and close once pending output is written.
        """
        self.stop()
        self.flushQueue()
        self.connection.close()

    def stop(self) -> None:
        """
        Leave the room and take no more input or output; closing the
        connection is the caller's (idempotent).
        """
        if self.closing:
            return
        self.closing = True
        self._held = None
        sleeping, self._sleeping = self._sleeping, None
        if sleeping is not None and not sleeping.called:
            sleeping.cancel()
        if self.policy.pressure is not None:
            self.policy.pressure.forget(self)
        if self.joined:
            self.room.leave(self)

    def shutdown(self) -> None:
        """
        The server is stopping: say goodbye, then quit. The room is closed
        first, so that nobody is told of the others leaving because of it.
        """
        self.room.close()
        self.receive(Notice("the server is shutting down; goodbye"))
        self.quit()

    def connectionLost(self) -> None:
        """
        The connection is gone: leave, and drop what was queued for it.
        """
        self.queue.clear()
        self.queued = 0
        self.stop()

    # Input

    def linesReceived(self, chunk: bytes) -> None:
        """
        Relay the message lines of C{chunk} (whole lines, each ending with
        LF) to the others, as one event per run of messages, and run the
        commands among them in order.
        """
        if self.closing:
            return
        pressure = self.policy.pressure
        if pressure is not None and (
            len(chunk) >= BULK or (pressure.anyBehind() and self._flooding(chunk))
        ):
            self._bulkReceived(chunk)
            return
        lines = chunk.split(b"\n")
        lines.pop()
        safe = linesAreSafe(chunk)
        if self._waiting:
            self._hold(partial(self._run, lines, safe))
        else:
            self._run(lines, safe)

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
        slice only once no member that reads is far behind (see
        L{_bulkSlice}): a flood is paced to the readers a slice at a time,
        and what it makes each member queue stays small.
        """
        start = 0
        while start < len(chunk):
            end = chunk.find(b"\n", start + BULK - 1) + 1 or len(chunk)
            piece = chunk[start:end]
            start = end
            if self._waiting:
                self._hold(partial(self._bulkSlice, piece))
            elif not self.closing:
                self._bulkSlice(piece)

    def _bulkSlice(self, piece: bytes) -> None:
        """
        Relay one slice of a large read, unless members that read are far
        behind: then the sender pays, its slice waits until they have caught
        up, and its connection stops reading meanwhile.
        """
        if self.policy.pressure is not None and self.policy.pressure.holdsBack(self):
            self._hold(partial(self._bulkSlice, piece), first=True)
            self._waitFor(self.policy.pressure.hold(self))
            return
        lines = piece.split(b"\n")
        lines.pop()
        self._run(lines, linesAreSafe(piece))

    def inputEnded(self, unfinished: bytes) -> None:
        """
        The client sent all it will send: relay an C{unfinished} last line,
        then quit.
        """
        if unfinished:
            self.linesReceived(unfinished + b"\n")
        if self._waiting:
            self._hold(self.quit)
        elif not self.closing:
            self.quit()

    def _run(self, lines: list[bytes], safe: bool) -> None:
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
                wait = self._say(messages, safe)
                messages = []
                if self.closing:
                    return
                if wait:
                    self._pauseFor(wait, lines[index:], safe)
                    return
            step = self.command(line)
            if self.closing:
                return
            if step is not None and not step.called:
                rest = lines[index + 1 :]
                self._hold(first=True, step=partial(self._run, rest, safe))
                self._waitFor(step)
                return
            policy = self.policy
            if self._commands is None:
                self._commands = Budget(policy.commandBurst)
            wait = self._commands.spend(
                policy.clock.seconds(), 1, policy.commandRate, policy.commandBurst
            )
            if wait:
                self._pauseFor(wait, lines[index + 1 :], safe)
                return
        if messages:
            wait = self._say(messages, safe)
            if wait and not self.closing:
                self._pauseFor(wait, [], safe)

    def _say(self, messages: list[bytes], safe: bool) -> float:
        """
        Relay C{messages}; return how long the member's input must wait for
        what that cost (see L{ChatPolicy.floodLimit}).
        """
        if not safe:
            messages = [safeText(line) for line in messages]
        self.room.say(self, messages)
        recipients = self.room.population() - 1
        self.policy.stats.deliveries += len(messages) * recipients
        limit = self.policy.floodLimit
        if not limit or recipients <= 0:
            return 0.0
        size = sum(map(len, messages)) + len(messages) * (len(self.name) + 5)
        if self._output is None:
            self._output = Budget(limit)
        return self._output.spend(
            self.policy.clock.seconds(), size * recipients, limit, limit
        )

    def _pauseFor(self, seconds: float, rest: list[bytes], safe: bool) -> None:
        """
        Hold input for C{seconds}: the lines C{rest} of this read, and what
        is read after them (the connection stops reading meanwhile).
        """
        if rest:
            self._hold(first=True, step=partial(self._run, rest, safe))
        sleeping = self._sleeping = deferLater(self.policy.clock, seconds, _nothing)
        self._waitFor(sleeping)

    def _hold(self, step: Callable[[], object], first: bool = False) -> None:
        """
        Keep C{step} (a piece of input, or a quit) until the member may go
        on: after what is held already, or before it if C{first}.
        """
        if self._held is None:
            self._held = []
        if first:
            self._held.insert(0, step)
        else:
            self._held.append(step)

    def _waitFor(self, step: Deferred[None]) -> None:
        """
        Hold input until C{step} is done (at once, if it is already).
        """
        if step.called:
            return
        self._waiting = True
        self.connection.pauseInput()
        step.addBoth(self._stepDone)

    def _stepDone(self, result: object) -> None:
        if isinstance(result, Failure) and result.check(CancelledError):
            return
        if isinstance(result, Failure):
            self.log.failure(
                "The room failed a request of {name}", result, name=self.name
            )
        self._waiting = False
        while self._held and not self._waiting and not self.closing:
            self._held.pop(0)()
        if not self._waiting and not self.closing:
            self.connection.resumeInput()

    def command(self, line: bytes) -> Deferred[None] | None:
        """
        Run a C{/command} line.

        @return: a L{Deferred} that fires when the command is done, if the
            room may answer it later; input waits for it.
        """
        verb, _, argument = line.partition(b" ")
        argument = argument.strip()
        if verb == b"/nick":
            return self.commandNick(argument)
        if verb == b"/who":
            self.commandWho()
        elif verb == b"/quit":
            self.receive(Notice("bye"))
            self.quit()
        elif verb == b"/help":
            self.receive(Notice("\n".join(HELP)))
        else:
            shown = safeText(verb).decode("utf-8")
            self.receive(Error(f"unknown command {shown} (try /help)"))
        return None

    def commandNick(self, argument: bytes) -> Deferred[None]:
        """
        Ask the room to change this member's name.
        """
        policy = self.policy
        now = policy.clock.seconds()
        since = now - policy.renameWindow
        self._renames = tuple(when for when in self._renames if when > since)
        if len(self._renames) >= policy.renames:
            wait = math.ceil(self._renames[0] - since)
            self.receive(
                Error(
                    f"too many changes of name; try again in {plural(wait, 'second')}"
                )
            )
            return succeed(None)
        renaming = self.room.rename(self, argument.decode("utf-8", "replace"))
        return renaming.addCallbacks(self._renamed, self._notRenamed)

    def _renamed(self, oldName: str) -> None:
        if self.closing:
            return
        self.name = self.room.nameOf(self)
        if self.name != oldName:
            self._renames += (self.policy.clock.seconds(),)
            if self.policy.logRenames:
                self.log.info("{old} is now known as {new}", old=oldName, new=self.name)
        self.receive(NameChanged(self.name))

    def _notRenamed(self, failure: Failure) -> None:
        if isinstance(failure.value, NameRejected):
            self.receive(Error(str(failure.value)))
            return
        self.log.failure("Could not rename {name}", failure, name=self.name)
        self.receive(Error("your name could not be changed; try again later"))

    def commandWho(self) -> None:
        """
        List who is here.
        """
        names = self.room.names()
        self.receive(Members(names[:MAX_WHO_NAMES], len(names)))

    # Output, bounded

    def receive(self, event: ChatEvent) -> None:
        """
        Send C{event} to the member, formatted for its wire (see L{deliver}).
        """
        # The broadcast hot path: one call per recipient, as for bytes.
        try:
            data = event.encoded[self.wire]
        except KeyError:
            data = event.encodedFor(self.wire)
        self.policy.stats.bytesOut += len(data)
        if self.outputPaused or self.closing:
            self._queue(data)
        else:
            self._send(data)

    def deliver(self, data: bytes) -> None:
        """
        Send C{data} to the member, queueing it while the connection cannot
        take more; drop the member once the queue exceeds C{maxPending}.
        """
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
        if (
            self.policy.pressure is not None
            and self.queued > self.policy.maxPending // BEHIND
        ):
            # Far behind: bulk senders wait while it still reads.
            self.policy.pressure.fellBehind(self, self.connection.unsent)

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
        if self.joined:
            self.outputPaused = False
            self.flushQueue()
        if self.policy.pressure is not None:
            # After the flush: senders released now write straight through.
            self.policy.pressure.caughtUp(self)


def _nothing() -> None:
    """
    What a pause waits for.
    """

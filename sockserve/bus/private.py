"""
Private messages to people on other nodes: each goes to the inbox of the
recipient's node under a number, once, however often it is sent (a message
lost with the bus goes again, under its number, once the bus is back), one
at a time, in order. With C{--bus-replicas}, a message counts as sent once
the replicas acknowledged it, and goes again (under its number) until they
do, or until it waited too long.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, fail
from twisted.internet.interfaces import IDelayedCall
from twisted.python.failure import Failure

from sockserve.bus.codec import Private, decodeBatch, encodeBatch, encodeEvent
from sockserve.bus.outbox import PUBLISH_RETRY
from sockserve.bus.redis import INBOX_LENGTH, BusFull, NotReplicated
from sockserve.chat.names import NameRejected, checkName, nameKey
from sockserve.chat.people import NobodyThere, Unreachable

if TYPE_CHECKING:
    from sockserve.bus.node import BusNode

# Private messages waiting for the bus, at most; and seconds one may wait.
TELLS_WAITING = 100
TELL_PATIENCE = 30.0


class PrivateMessages:
    """
    The private messages a node sends to people elsewhere.
    """

    def __init__(self, node: BusNode) -> None:
        self.node = node
        self._tellSeq = 0
        self._tells: deque[tuple[int, str, bytes, Deferred[str], float]] = deque()
        self._tellTimer: IDelayedCall | None = None
        self._retry: IDelayedCall | None = None
        self._telling = False

    def tell(
        self, sender: str, recipient: str, lines: Sequence[bytes]
    ) -> Deferred[str]:
        """
        Put C{lines} from C{sender} in the inbox of C{recipient}'s node,
        once. While the bus is away nobody elsewhere can be reached; a
        message on its way when the bus is lost is sent again, under its
        number, once it is back (a while at most).
        """
        try:
            checkName(recipient)
        except NameRejected:
            return fail(NobodyThere(recipient))
        if not self.node.bus.connected or len(self._tells) >= TELLS_WAITING:
            return fail(Unreachable(recipient))
        self._tellSeq += 1
        event = Private(sender, recipient, tuple(lines))
        payload = encodeBatch([encodeEvent(event)])
        telling: Deferred[str] = Deferred()
        self._tells.append(
            (
                self._tellSeq,
                nameKey(recipient),
                payload,
                telling,
                self.node.clock.seconds(),
            )
        )
        if len(self._tells) == 1:
            self.sendWaiting()
        return telling

    def sendWaiting(self) -> None:
        """
        Send the first private message waiting, if the bus is there; give
        up on those that waited too long.
        """
        now = self.node.clock.seconds()
        while self._tells and now - self._tells[0][4] > TELL_PATIENCE:
            _, key, _, telling, _ = self._tells.popleft()
            telling.errback(Unreachable(key))
        if not self._tells or self._telling:
            return
        if not self.node.bus.connected:
            if self._tellTimer is None:
                self._tellTimer = self.node.clock.callLater(
                    TELL_PATIENCE, self._tellsTimedOut
                )
            return
        seq, key, payload, telling, _ = self._tells[0]
        self._telling = True
        sending = self.node.bus.command("tell", seq, key, payload, str(INBOX_LENGTH))
        sending.addCallback(self.node.bus.replicated)

        def sent(answer: list[Any]) -> None:
            self._telling = False
            self._tells.popleft()
            status = answer[0]
            if status == b"nobody":
                telling.errback(NobodyThere(_recipientOf(payload)))
            else:
                telling.callback(answer[1].decode("utf-8", "replace"))
            self.sendWaiting()

        def notSent(failure: Failure) -> None:
            self._telling = False
            if failure.check(BusFull):
                self._tells.popleft()
                telling.errback(Unreachable(key))
                self.sendWaiting()
            elif failure.check(NotReplicated) and self._retry is None:
                # Sent again, under the same number, in a while.
                self._retry = self.node.clock.callLater(PUBLISH_RETRY, self._retryTell)
            # Lost: sent again, under the same number, once the bus is back.

        sending.addCallbacks(sent, notSent)

    def _retryTell(self) -> None:
        self._retry = None
        if not self._telling:
            # (One on its way sends the next itself once answered.)
            self.sendWaiting()

    def _tellsTimedOut(self) -> None:
        self._tellTimer = None
        self.sendWaiting()

    def stop(self) -> None:
        """
        The node is stopping: no timer left behind.
        """
        for call in (self._tellTimer, self._retry):
            if call is not None and call.active():
                call.cancel()
        self._tellTimer = self._retry = None


def _recipientOf(payload: bytes) -> str:
    event = decodeBatch(payload)[0]
    return event.recipient if isinstance(event, Private) else "?"

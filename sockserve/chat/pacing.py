"""
The sender pays: a member who sends faster than the room reads is slowed,
and the members who read are never dropped because of it.

A member with more than an eighth of C{--max-pending} queued beyond what its
connection holds is I{behind}. While some member other than the sender is
behind and I{still draining} (what its connection holds went down within the
last C{patience} seconds), a bulk sender's further input (a flood, relayed a
slice of a few KiB at a time) is held, and its connection stops reading, so
TCP pushes back on the sender. What a connection holds is counted where the
client's reading shows: Twisted's buffer and the kernel's send queue
together (see L{sockserve._sending.unsentBytes}); Twisted's buffer alone
stands still for seconds while the kernel's drains. A member that has stopped
reading is not waited for: once it has made no progress for C{patience}
seconds, senders go on, its queue fills to C{--max-pending} and it is
dropped, as before. Both halves matter: waiting for a member that never
reads would freeze the room; never waiting drops every reader of a flood.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime

RECHECK = 0.25
PATIENCE = 1.0


@dataclass(slots=True)
class _Progress:
    """
    How far a member that is behind has got.

    @ivar unsent: what its connection held at the last look (C{None}: the
        connection cannot tell).
    @ivar at: when it last made progress (or fell behind).
    @ivar patience: seconds without progress after which it is no longer
        waited for.
    """

    unsent: int | None
    at: float
    patience: float


class OutputPressure:
    """
    The members of one room that are behind, and the senders held for them.

    @ivar recheck: seconds between looks at the progress of those behind.
    @ivar patience: seconds without progress after which a member is no
        longer waited for.
    """

    def __init__(
        self,
        clock: IReactorTime,
        recheck: float = RECHECK,
        patience: float = PATIENCE,
    ) -> None:
        self.clock = clock
        self.recheck = recheck
        self.patience = patience
        self._behind: dict[object, tuple[_Progress, Callable[[], int | None]]] = {}
        self._held: dict[object, Deferred[None]] = {}
        self._timer: IDelayedCall | None = None

    def fellBehind(
        self,
        member: object,
        unsent: Callable[[], int | None],
        patience: float | None = None,
    ) -> None:
        """
        C{member}'s connection cannot take more output; C{unsent} tells how
        much it still holds. It is waited for while it makes progress at
        least every C{patience} seconds (by default, the pressure's own).
        """
        if member not in self._behind:
            progress = _Progress(
                unsent(),
                self.clock.seconds(),
                self.patience if patience is None else patience,
            )
            self._behind[member] = (progress, unsent)
            self._schedule()

    def isBehind(self, member: object) -> bool:
        """
        Tell whether C{member} is behind.
        """
        return member in self._behind

    def caughtUp(self, member: object) -> None:
        """
        C{member}'s connection has sent everything: release the senders if
        nobody else holds them back.
        """
        if self._behind.pop(member, None) is not None:
            self._releaseIfClear()

    def forget(self, member: object) -> None:
        """
        C{member} is gone: it is neither behind nor held any more.
        """
        self._behind.pop(member, None)
        held = self._held.pop(member, None)
        if held is not None:
            held.callback(None)
        self._releaseIfClear()

    def anyBehind(self) -> bool:
        """
        Tell whether any member is behind (the cheap check that comes first).
        """
        return bool(self._behind)

    def holdsBack(self, sender: object) -> bool:
        """
        Tell whether C{sender}'s input should wait: some other member is
        behind and still draining.
        """
        if not self._behind:
            return False
        now = self.clock.seconds()
        return any(
            member is not sender and progress.at >= now - progress.patience
            for member, (progress, _) in self._behind.items()
        )

    def hold(self, sender: object) -> Deferred[None]:
        """
        Hold C{sender} until nobody behind is still draining.

        @return: a L{Deferred} that fires when C{sender} may go on.
        """
        held = self._held.get(sender)
        if held is None:
            held = self._held[sender] = Deferred()
            self._schedule()
        return held

    def _schedule(self) -> None:
        if self._timer is None and (self._behind or self._held):
            self._timer = self.clock.callLater(self.recheck, self._look)

    def _look(self) -> None:
        """
        See who behind has made progress; release the senders if nobody
        behind still drains.
        """
        self._timer = None
        now = self.clock.seconds()
        for progress, unsent in self._behind.values():
            left = unsent()
            if (
                left is not None
                and progress.unsent is not None
                and left < progress.unsent
            ):
                progress.at = now
            progress.unsent = left
        self._releaseIfClear()
        self._schedule()

    def _releaseIfClear(self) -> None:
        if not self._held:
            if not self._behind and self._timer is not None:
                self._timer.cancel()
                self._timer = None
            return
        now = self.clock.seconds()
        waiting = {
            member
            for member, (progress, _) in self._behind.items()
            if progress.at >= now - progress.patience
        }
        released = [
            self._held.pop(sender)
            for sender in list(self._held)
            if not waiting or waiting == {sender}
        ]
        # Fired once all are out of the way: a released sender's lines may
        # release others (or make members leave) at once.
        for held in released:
            held.callback(None)
        if not self._behind and not self._held and self._timer is not None:
            self._timer.cancel()
            self._timer = None

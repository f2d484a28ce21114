"""
A server's statistics: plain counters that the protocols add to as they
go, and that whoever exports them (see L{sockserve.metrics}) reads when
asked. Adding to an attribute is all a connection pays: no lock, no metric
object, no label lookup on the hot path.
"""

from __future__ import annotations

from collections import Counter


class ServerStatistics:
    """
    What one server has done since it started.

    @ivar accepted: connections admitted.
    @ivar acceptedBy: connections admitted, by front end (C{line},
        C{websocket}, C{irc}, C{irc-websocket}).
    @ivar openBy: connections open now, by front end.
    @ivar refused: connections refused or closed by a limit, by reason
        (C{full}, C{per_ip}, C{busy}, C{line_too_long}, C{idle},
        C{slow_reader}, C{request_timeout}).
    @ivar linesIn: lines received.
    @ivar bytesIn: bytes received.
    @ivar bytesOut: bytes of replies, chat lines and notices written.
    @ivar deliveries: chat: lines delivered, counted per recipient.
    @ivar held: chat: members whose input waits now for a rate limit.
    @ivar holds: chat: times a member's input was held for a rate limit,
        by limit (C{commands}, C{flood}).
    """

    __slots__ = (
        "accepted",
        "acceptedBy",
        "bytesIn",
        "bytesOut",
        "deliveries",
        "held",
        "holds",
        "linesIn",
        "openBy",
        "refused",
    )

    def __init__(self) -> None:
        self.accepted = 0
        self.acceptedBy: Counter[str] = Counter()
        self.openBy: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()
        self.linesIn = 0
        self.bytesIn = 0
        self.bytesOut = 0
        self.deliveries = 0
        self.held = 0
        self.holds: Counter[str] = Counter()

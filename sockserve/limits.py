"""
The limits a server enforces, gathered in one immutable value.
"""

from __future__ import annotations

from dataclasses import dataclass

KIB = 1024
MIB = 1024 * KIB


@dataclass(frozen=True, slots=True)
class Limits:
    """
    Per-server limits; every one is a twistd option (see L{sockserve.tap}).

    @ivar maxLine: the longest line accepted, ending included, in bytes.
    @ivar maxPending: chat only: the most output, in bytes, queued for a client
        that does not read, beyond what the kernel and the transport buffer hold.
    @ivar idleTimeout: seconds of silence before a client is disconnected; 0 is off.
    @ivar maxPerIP: connections allowed from one address at once; 0 is unlimited.
    @ivar requestTimeout: oneshot only: seconds a request may take to arrive.
    @ivar maxClients: chat only: members the room holds at once.
    @ivar presenceLimit: chat only: joins, leaves and renames are announced to
        the room only while it has at most this many members (announcing every
        join to every member costs O(n^2) for n joins).
    @ivar floodLimit: chat only: bytes of output a second one client's
        messages may cause (their size times the members receiving them);
        beyond it, the client's input waits. 0 is no limit.
    @ivar maxConnections: connections served at once; beyond it, a client is
        told the server is busy. 0 is no limit (C{twistd sockserve} sets it
        below the open-file limit).
    @ivar history: chat only: lines said that a member joining is shown
        (the room keeps that many); 0 is none.
    """

    maxLine: int = 64 * KIB
    maxPending: int = 1 * MIB
    idleTimeout: float = 0.0
    maxPerIP: int = 0
    requestTimeout: float = 30.0
    maxClients: int = 10
    presenceLimit: int = 100
    floodLimit: int = 64 * MIB
    maxConnections: int = 0
    history: int = 0

"""
The rooms and people of a chat across processes and machines: C{--bus}.

By job:

  - L{sockserve.bus.node}: a node's share of the bus, composed into the
    chat service (its people, its rooms' directory, its rooms' relay), and
    what it does with what it reads;
  - L{sockserve.bus.outbox}: what the node has to publish, batched;
  - L{sockserve.bus.roster}: each room's members on other nodes;
  - L{sockserve.bus.redis}: the transport, Redis alone: connections,
    heartbeat, reading every stream with one C{XREAD};
  - L{sockserve.bus.scripts}: the atomic steps it runs in Redis;
  - L{sockserve.bus.codec}: the events as the streams hold them;
  - L{sockserve.bus.address}: C{--bus} addresses.
"""

from __future__ import annotations

from sockserve.bus.address import BusAddress, parseBusAddress
from sockserve.bus.node import OUTBOX_LIMIT, BusNode, BusPeople, BusRooms, busChat
from sockserve.bus.redis import RedisBus

__all__ = [
    "OUTBOX_LIMIT",
    "BusAddress",
    "BusNode",
    "BusPeople",
    "BusRooms",
    "RedisBus",
    "busChat",
    "parseBusAddress",
]

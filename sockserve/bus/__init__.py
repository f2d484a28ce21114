"""
The rooms and people of a chat across processes and machines: C{--bus}.

By job:

  - L{sockserve.bus.node}: a node's share of the bus, composed into the
    chat service, registered again when the bus is back;
  - L{sockserve.bus.people}: names, unique across the bus;
  - L{sockserve.bus.rooms}: admission to rooms across the bus, and every
    room's relay;
  - L{sockserve.bus.roster}: each room's members on other nodes;
  - L{sockserve.bus.outbox}: what the node has to publish, batched;
  - L{sockserve.bus.inbound}: what the other nodes published, delivered;
  - L{sockserve.bus.private}: private messages to people elsewhere;
  - L{sockserve.bus.moderation}: operators' bans and mutes, on every node;
  - L{sockserve.bus.redis}: the transport, Redis alone: connections,
    heartbeat, reading every stream with one C{XREAD};
  - L{sockserve.bus.scripts}: the atomic steps it runs in Redis;
  - L{sockserve.bus.codec}: the events as the streams hold them;
  - L{sockserve.bus.address}: C{--bus} addresses.
"""

from __future__ import annotations

from sockserve.bus.address import BusAddress, parseBusAddress
from sockserve.bus.node import OUTBOX_LIMIT, BusNode, busChat
from sockserve.bus.people import BusPeople
from sockserve.bus.redis import RedisBus
from sockserve.bus.rooms import BusRooms

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

"""
One chat room across processes and machines: C{--bus}.

  - L{sockserve.bus.room}: L{SharedRoom}, the room as one node holds it;
  - L{sockserve.bus.redis}: L{RedisBus}, the node's link to Redis;
  - L{sockserve.bus.scripts}: the atomic steps it runs in Redis;
  - L{sockserve.bus.codec}: the events as the stream holds them;
  - L{sockserve.bus.address}: C{--bus} addresses.
"""

from __future__ import annotations

from sockserve.bus.address import BusAddress, checkRoomName, parseBusAddress
from sockserve.bus.room import OUTBOX_LIMIT, Bus, SharedRoom

__all__ = [
    "OUTBOX_LIMIT",
    "Bus",
    "BusAddress",
    "SharedRoom",
    "checkRoomName",
    "parseBusAddress",
]

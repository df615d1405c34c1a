"""A live session timeline's storage: a fixed-capacity ring of columns, written in place.

Owns :class:`TimelineRing`, what :mod:`tracking.runtime.timelines` keeps per live session
(compiled with the core, :mod:`tracking.compiled`).  Per packet the intake writes the
packet's facts into column slots (times unboxed in an array), so a full ring allocates and
frees no row per packet; rows (plain tuples) and records are
read back, oldest first, only when a timeline is asked for.  Columns grow with the first
``capacity`` items, so an idle session holds only its few rows.
"""

from __future__ import annotations

from array import array

from socketio_trace_proxy.tracking.records import Record
from socketio_trace_proxy.tracking.traffic import Direction, Transport
from socketio_trace_proxy.tracking.wire.packets import SocketPacketType

# What a timeline holds per packet (a PacketView's facts, built into one when asked):
# wall, direction, transport, type, namespace, event, ack id, size.
PacketRow = tuple[float, Direction, Transport, SocketPacketType, str, str | None, int | None, int]
TimelineItem = PacketRow | Record


class TimelineRing:
    """Up to ``capacity`` packets and records, the oldest overwritten (see the module
    docstring).  A record's slot has no direction; its ``objects`` slot holds the record,
    a packet's holds its event name."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.count = 0
        self._next = 0  # the slot written next (the oldest once full)
        self._walls: array[float] = array("d")
        self._acks: list[int | None] = []
        self._sizes: list[int] = []
        self._directions: list[Direction | None] = []
        self._transports: list[Transport | None] = []
        self._types: list[SocketPacketType | None] = []
        self._namespaces: list[str] = []
        self._objects: list[object] = []

    def packet(  # noqa: PLR0917 - one call per packet, no row built
        self,
        wall: float,
        direction: Direction,
        transport: Transport,
        ptype: SocketPacketType,
        namespace: str,
        event: str | None,
        ack_id: int | None,
        size: int,
    ) -> None:
        if self.count < self.capacity:
            self.count += 1
            self._walls.append(wall)
            self._acks.append(ack_id)
            self._sizes.append(size)
            self._directions.append(direction)
            self._transports.append(transport)
            self._types.append(ptype)
            self._namespaces.append(namespace)
            self._objects.append(event)
            return
        i = self._next
        self._next = i + 1 if i + 1 < self.capacity else 0
        self._walls[i] = wall
        self._acks[i] = ack_id
        self._sizes[i] = size
        self._directions[i] = direction
        self._transports[i] = transport
        self._types[i] = ptype
        self._namespaces[i] = namespace
        self._objects[i] = event

    def record(self, record: Record) -> None:
        if self.count < self.capacity:
            self.count += 1
            self._walls.append(0.0)
            self._acks.append(None)
            self._sizes.append(0)
            self._directions.append(None)
            self._transports.append(None)
            self._types.append(None)
            self._namespaces.append("")
            self._objects.append(record)
            return
        i = self._next
        self._next = i + 1 if i + 1 < self.capacity else 0
        self._directions[i] = None
        self._objects[i] = record

    def items(self) -> list[TimelineItem]:
        """The packets (as rows) and records held, oldest first."""
        out: list[TimelineItem] = []
        n = self.count
        for k in range(n):
            i = (self._next + k) % n  # _next stays 0 until the ring is full
            obj = self._objects[i]
            direction = self._directions[i]
            transport = self._transports[i]
            ptype = self._types[i]
            if direction is None or transport is None or ptype is None:
                assert isinstance(obj, Record)
                out.append(obj)
                continue
            event = obj if isinstance(obj, str) else None
            out.append(
                (
                    self._walls[i],
                    direction,
                    transport,
                    ptype,
                    self._namespaces[i],
                    event,
                    self._acks[i],
                    self._sizes[i],
                )
            )
        return out

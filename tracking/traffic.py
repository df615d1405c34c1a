"""The vocabulary of relayed traffic that both edges of the tracker share.

``Direction`` (which way a frame travelled) and ``Transport`` (which Engine.IO transport
carried it) appear in what the relay reports (:mod:`tracking.observer`) and in the records
exporters receive (:mod:`tracking.records`, :mod:`tracking.sink`); they live here, apart
from the decoder, so that neither edge depends on the other's internals.
"""

from __future__ import annotations

from enum import Enum


class Direction(Enum):
    """Which way a frame travelled through the proxy."""

    CLIENT_TO_SERVER = "c2s"
    SERVER_TO_CLIENT = "s2c"

    @property
    def opposite(self) -> Direction:
        if self is Direction.CLIENT_TO_SERVER:
            return Direction.SERVER_TO_CLIENT
        return Direction.CLIENT_TO_SERVER


class Transport(Enum):
    """Engine.IO transport a frame was carried by."""

    POLLING = "polling"
    WEBSOCKET = "websocket"

"""The venue's counters, shared by the matcher, the connection and the producers."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field


@dataclass
class VenueStats:
    order_frames: int = 0
    orders_received: int = 0
    fills: int = 0
    partial_fills: int = 0
    #: reject reason → count; `duplicate` included
    rejects: dict[str, int] = field(default_factory=dict)
    executions: int = 0
    marks: int = 0
    protocol_errors: int = 0
    connections: int = 0
    #: connections after the first one
    reconnects: int = 0
    #: the engine's last applied seq, from its heartbeats
    engine_applied_seq: int = 0

    @property
    def duplicates(self) -> int:
        return self.rejects.get("duplicate", 0)

    def as_dict(self) -> dict[str, object]:
        return {**dataclasses.asdict(self), "duplicates": self.duplicates}

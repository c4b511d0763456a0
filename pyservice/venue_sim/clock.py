"""The venue's clock: the `ts` it stamps on every log entry.

The venue is the source of time, so it may read the wall clock: by default its time is
real time. `factor` runs it faster (86400: a simulated day per real second) from
`start_us`, so a demo or a test can make months of history in seconds. Elapsed time is
measured on the monotonic clock, and a stamp is never below the latest one, so the
venue's own time never goes backwards (a scripted time may, on purpose: see `stamp`).
"""

from __future__ import annotations

import time
from collections.abc import Callable

#: the largest `ts` the protocol carries (`protocol.Micros`)
MAX_TS = 2**63 - 1


def wall_us() -> int:
    return time.time_ns() // 1000


class VenueClock:
    def __init__(
        self,
        factor: float = 1.0,
        start_us: int | None = None,
        *,
        monotonic_ns: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        if not factor > 0:
            raise ValueError(f"clock factor must be positive: {factor}")
        self.factor = factor
        self.start_us = wall_us() if start_us is None else start_us
        self._monotonic_ns = monotonic_ns
        self._origin_ns = monotonic_ns()
        #: the latest time stamped (or the start): the simulated clock's floor
        self.latest = self.start_us

    def now(self) -> int:
        """The simulated time: start + elapsed × factor, never below the latest stamp."""
        elapsed_us = (self._monotonic_ns() - self._origin_ns) // 1000
        return max(self.latest, min(MAX_TS, self.start_us + int(elapsed_us * self.factor)))

    def stamp(self, at: int | None = None) -> int:
        """The `ts` of the next log entry: `at` exactly when given (a scripted time, even
        one earlier than the last: the engine then corrects it), else `now()`."""
        ts = self.now() if at is None else at
        self.latest = max(self.latest, ts)
        return ts

"""The input journal: write-behind group commits of applied venue messages + watermark.

The daemon appends each venue message it applied (its frame payload) without waiting;
`run` commits whatever has accumulated in one transaction (COPY, then the watermark),
so commits grow with the load instead of costing one round trip per message. The queue
is bounded in bytes: above `high_water` the journal asks the daemon to stop reading from
the venue (the venue keeps its log; nothing is lost), and below `low_water` to read
again. PostgreSQL down or restarting only stalls commits; they retry until it is back.

Recovery (`pyservice.store.recovery`) and the projector read the committed inputs back in
seq order through `committed_inputs`, the one check that the journal has no gap.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from decimal import Decimal

import asyncpg

from pyservice._engine_core import Execution
from pyservice.faults import KILL
from pyservice.metrics import EngineMetrics

log = logging.getLogger("copyengine.journal")


class RecoveryError(Exception):
    """The committed journal is not a gap-free prefix of one venue log."""


class JournalFenced(Exception):
    """The watermark moved under this engine: another engine writes this shard's journal,
    or the journal broke an integrity rule. Retrying cannot help; stop."""


@dataclass(frozen=True)
class Committed:
    session: str | None
    watermark: int


@dataclass(frozen=True)
class _Entry:
    seq: int
    kind: str
    payload: bytes
    #: an execution the rules accepted, kept for provider statistics
    execution: Execution | None


async def ensure_shard(conn: asyncpg.Connection, shard: str) -> Committed:
    await conn.execute("INSERT INTO engine_state (shard) VALUES ($1) ON CONFLICT DO NOTHING", shard)
    row = await conn.fetchrow("SELECT venue_session, watermark FROM engine_state WHERE shard = $1", shard)
    assert row is not None  # inserted just above
    return Committed(row["venue_session"], row["watermark"])


async def committed_inputs(
    conn: asyncpg.Connection, shard: str, watermark: int, after: int = 0
) -> AsyncIterator[tuple[int, bytes]]:
    """The committed inputs after seq `after` up to `watermark`, in seq order, checked to
    be `after + 1`..`watermark` without a gap."""
    expected = after + 1
    async with conn.transaction(readonly=True):
        async for row in conn.cursor(
            "SELECT seq, payload FROM engine_inputs WHERE shard = $1 AND seq > $2 AND seq <= $3 ORDER BY seq",
            shard,
            after,
            watermark,
            prefetch=2000,
        ):
            if row["seq"] != expected:
                raise RecoveryError(f"journal of shard '{shard}' has seq {row['seq']} where {expected} belongs")
            yield row["seq"], row["payload"]
            expected += 1
    if expected - 1 != watermark:
        raise RecoveryError(f"journal of shard '{shard}' ends at seq {expected - 1}, its watermark is {watermark}")


class Journal:
    def __init__(
        self,
        dsn: str,
        shard: str,
        committed: Committed,
        metrics: EngineMetrics,
        *,
        high_water: int = 64 << 20,
        low_water: int = 16 << 20,
        max_batch: int = 16 << 20,
        retry_s: float = 0.5,
    ) -> None:
        self.dsn, self.shard = dsn, shard
        self.session = committed.session
        self.committed = committed.watermark
        self.metrics = metrics
        self.high_water, self.low_water, self.max_batch = high_water, low_water, max_batch
        self.retry_s = retry_s
        self.paused = False
        self._on_pressure: Callable[[bool], None] = lambda paused: None
        self._queue: deque[_Entry] = deque()
        self._bytes = 0
        self._wake = asyncio.Event()
        self._conn: asyncpg.Connection | None = None
        self._down_since: float | None = None
        #: `run` and `flush` both commit; one at a time on the one connection
        self._committing = asyncio.Lock()
        metrics.committed_seq.set(self.committed)

    def on_pressure(self, callback: Callable[[bool], None]) -> None:
        """`callback(True)`: stop reading from the venue; `callback(False)`: read again."""
        self._on_pressure = callback

    @property
    def uncommitted(self) -> int:
        """Bytes applied but not yet committed."""
        return self._bytes

    def append(self, seq: int, kind: str, payload: bytes, execution: Execution | None = None) -> None:
        self._queue.append(_Entry(seq, kind, payload, execution))
        self._bytes += len(payload)
        self._wake.set()
        if not self.paused and self._bytes > self.high_water:
            self.paused = True
            self.metrics.backpressure.set(1)
            log.warning(
                "PostgreSQL is behind: not reading from the venue until the journal catches up",
                extra={"uncommitted_bytes": self._bytes, "committed_seq": self.committed},
            )
            self._on_pressure(True)

    async def run(self) -> None:
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                while self._queue:
                    await self._commit_some()
        finally:
            if self._conn is not None:
                self._conn.terminate()

    async def flush(self, timeout: float) -> bool:
        """Commit everything appended so far (at a clean stop); False if that timed out."""
        try:
            async with asyncio.timeout(timeout):
                while self._queue:
                    await self._commit_some()
            return True
        except TimeoutError:
            return False

    async def _commit_some(self) -> None:
        async with self._committing:
            await self._commit_next()

    async def _commit_next(self) -> None:
        batch: list[_Entry] = []
        size = 0
        for e in self._queue:
            if batch and size + len(e.payload) > self.max_batch:
                break
            batch.append(e)
            size += len(e.payload)
        try:
            conn = await self._connection()
            batch = [e for e in batch if e.seq > self.committed]  # a commit whose answer was lost
            if batch:
                started = time.perf_counter()
                await self._commit(conn, batch)
                self.metrics.commit_seconds.observe(time.perf_counter() - started)
        except (JournalFenced, asyncpg.IntegrityConstraintViolationError):
            raise
        except Exception as exc:  # noqa: BLE001  down, restarting, unreachable: retry
            self._down(exc)
            await asyncio.sleep(self.retry_s)
            return
        self._up()
        while self._queue and self._queue[0].seq <= self.committed:
            self._bytes -= len(self._queue.popleft().payload)
        self.metrics.uncommitted_bytes.set(self._bytes)
        if self.paused and self._bytes < self.low_water:
            self.paused = False
            self.metrics.backpressure.set(0)
            log.info("journal caught up: reading from the venue again", extra={"committed_seq": self.committed})
            self._on_pressure(False)

    async def _connection(self) -> asyncpg.Connection:
        if self._conn is None or self._conn.is_closed():
            # a command timeout: a server gone without closing the socket must not hang us
            self._conn = await asyncpg.connect(self.dsn, timeout=5, command_timeout=30)
            self.committed = max(
                self.committed,
                await self._conn.fetchval("SELECT watermark FROM engine_state WHERE shard = $1", self.shard),
            )
        return self._conn

    async def _commit(self, conn: asyncpg.Connection, batch: list[_Entry]) -> None:
        last = batch[-1].seq
        async with conn.transaction():
            await conn.copy_records_to_table(
                "engine_inputs",
                columns=["shard", "seq", "kind", "payload"],
                records=[(self.shard, e.seq, e.kind, e.payload) for e in batch],
            )
            executions = [
                (
                    self.shard,
                    e.seq,
                    x.provider,
                    x.exec_id,
                    x.symbol,
                    x.side,
                    Decimal(x.qty),
                    Decimal(x.price),
                    Decimal(x.provider_equity),
                    x.leverage,
                )
                for e in batch
                if (x := e.execution) is not None
            ]
            if executions:
                await conn.copy_records_to_table(
                    "provider_executions",
                    records=executions,
                    columns=[
                        "shard",
                        "seq",
                        "provider_id",
                        "exec_id",
                        "symbol",
                        "side",
                        "qty",
                        "price",
                        "provider_equity",
                        "leverage",
                    ],
                )
            # conditional on the watermark this engine last committed: a second engine
            # writing the same shard is caught here, not by a corrupt journal
            moved = await conn.execute(
                "UPDATE engine_state SET watermark = $2, venue_session = $3, updated_at = now() "
                "WHERE shard = $1 AND watermark = $4",
                self.shard,
                last,
                self.session,
                self.committed,
            )
            if moved != "UPDATE 1":
                raise JournalFenced(f"the watermark of shard '{self.shard}' is no longer {self.committed}")
            KILL.passing("commit")
        self.committed = last
        self.metrics.committed_seq.set(last)
        self.metrics.inputs_committed.inc(len(batch))

    def _down(self, exc: BaseException) -> None:
        self.metrics.commit_failures.inc()
        if self._conn is not None:
            self._conn.terminate()
            self._conn = None
        if self._down_since is None:
            self._down_since = time.monotonic()
            log.error("PostgreSQL commit failed; retrying", extra={"error": repr(exc), "committed_seq": self.committed})

    def _up(self) -> None:
        if self._down_since is not None:
            log.info(
                "PostgreSQL commits work again",
                extra={"down_s": round(time.monotonic() - self._down_since, 2), "committed_seq": self.committed},
            )
            self._down_since = None

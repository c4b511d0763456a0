"""Engine snapshots in PostgreSQL: where recovery (the engine's, the projector's) starts."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import asyncpg

from pyservice._engine_core import CopyEngineError, LiveEngine

log = logging.getLogger("copyengine.store")


async def restore_newest(
    conn: asyncpg.Connection, shard: str, upto: int, books: Callable[[], Awaitable[str]]
) -> tuple[LiveEngine, int]:
    """The engine at the newest snapshot at or below `upto` and that snapshot's seq; an
    older one if it does not load (another engine version, damage), else the books at 0."""
    rows = await conn.fetch(
        "SELECT seq, state FROM engine_snapshots WHERE shard = $1 AND seq <= $2 ORDER BY seq DESC", shard, upto
    )
    for row in rows:
        try:
            return LiveEngine.restore(row["state"]), row["seq"]
        except CopyEngineError as exc:
            log.error("a snapshot does not load; trying an older one", extra={"seq": row["seq"], "error": str(exc)})
    return LiveEngine.from_books(await books()), 0

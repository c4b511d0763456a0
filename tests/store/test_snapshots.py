"""Snapshots: recovery starts from the newest one that loads, else from the books."""

import asyncio
import json

import asyncpg

from pyservice._engine_core import LiveEngine
from pyservice.store.journal import ensure_shard
from pyservice.store.migrate import migrate
from pyservice.store.snapshots import restore_newest

BOOKS = json.dumps(
    {"version": 1, "providers": [{"id": "P"}], "follows": [{"follower": "a", "provider": "P", "allocation": "1000"}]}
)


def test_the_newest_snapshot_that_loads_else_the_books(pg_dsn):
    async def books() -> str:
        return BOOKS

    async def go():
        conn = await asyncpg.connect(pg_dsn)
        await migrate(conn)
        await ensure_shard(conn, "main")
        engine = LiveEngine.from_books(BOOKS)
        engine.instrument(1, "BTC", "spot", "0.01", "0.001", "0", "0")
        engine.execute(2, "P", "x1", "BTC", "buy", "1", "100", "1000")  # a working order
        good = engine.snapshot()
        insert = "INSERT INTO engine_snapshots (shard, seq, state) VALUES ('main', $1, $2)"
        await conn.execute(insert, 2, good)
        await conn.execute(insert, 5, b"copyengine-snapshot-0\n from another version")
        await conn.execute(insert, 9, good[: len(good) // 2])  # damaged

        restored, seq = await restore_newest(conn, "main", 9, books)
        assert seq == 2 and restored.working_count == 1
        assert restored.portfolios_jsonl() == engine.portfolios_jsonl()
        assert (await restore_newest(conn, "main", 1, books))[1] == 0  # none at or below 1: books
        await conn.execute("DELETE FROM engine_snapshots WHERE seq = 2")
        fresh, seq = await restore_newest(conn, "main", 9, books)
        assert seq == 0 and fresh.working_count == 0
        await conn.close()

    asyncio.run(go())

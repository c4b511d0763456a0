"""Control changes are met again in the order the engine placed them, not in id order:
two changes committed concurrently can become visible out of id order."""

import asyncio
import json

import asyncpg

from pyservice import control
from pyservice._engine_core import LiveEngine
from pyservice.store.migrate import migrate

BOOKS = json.dumps({"version": 1, "providers": [{"id": "P"}], "follows": []})


def test_changes_are_replayed_in_the_order_placed(pg_dsn):
    async def go():
        conn = await asyncpg.connect(pg_dsn)
        await migrate(conn)
        follow = await control.submit(
            conn, "main", {"type": "follow", "follower": "a", "provider": "P", "allocation": "100"}
        )
        deposit = await control.submit(
            conn, "main", {"type": "deposit", "follower": "a", "provider": "P", "amount": "5"}
        )
        # the deposit (the higher id) became visible first and was placed first: refused,
        # since `a` did not follow yet; then the follow
        live = LiveEngine.from_books(BOOKS)
        for cid in (deposit, follow):
            await control.place(conn, cid, 0)
        placed = await control.placed(conn, "main")
        assert [c.id for _, c, _ in placed] == [deposit, follow]
        outcomes = [control.apply(live, 0, c) for _, c, _ in placed]
        assert [o.errors for o in outcomes] == [["'a' does not follow 'P'"], []]
        await conn.close()

    asyncio.run(go())

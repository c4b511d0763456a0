"""A change taken early (the venue quiet) and published, then a change of a lower id,
committed late and placed after it at the same seq: its notifications key above the
published ones (by the order placed, `placed_n`), so the publisher's next round has them."""

import asyncio
import json

import asyncpg

from pyservice import control
from pyservice import protocol as P
from pyservice._engine_core import LiveEngine
from pyservice.dispatch import apply_venue_message
from pyservice.store import projector
from pyservice.store.books import seed_books
from pyservice.store.journal import ensure_shard
from pyservice.store.ledger_check import check
from pyservice.store.migrate import migrate
from pyservice.streams.notifications import NONE, ready

BOOKS = json.dumps(
    {
        "version": 1,
        "providers": [{"id": "P"}],
        "follows": [
            {"follower": "a", "provider": "P", "allocation": "1000", "stop_copy_on_close": False},
            {"follower": "b", "provider": "P", "allocation": "1000", "stop_copy_on_close": False},
        ],
    }
)


def test_a_lower_id_placed_late_is_published_after(pg_dsn):
    engine = LiveEngine.from_books(BOOKS)
    reader = P.engine_reader()
    rows = []
    changes = []

    def add(msg):
        rows.append((msg.seq, msg.__struct_config__.tag, P.encode(msg)[4:]))
        out = apply_venue_message(engine, msg)
        return [o for m in reader.feed(out.frame or b"") for o in m.orders]

    def change(after, c):
        out = engine.control(after, len(changes) + 1, json.dumps(c))
        changes.append((after, c, out.errors[0] if out.errors else None))

    add(P.Instrument(1, 0, "BTC", "spot", "0.01", "0.001", "0", "0"))
    change(1, {"type": "profit_share", "provider": "P", "profit_share_pct": "30"})
    change(1, {"type": "platform", "platform_fee_pct": "10", "settlement": "monthly"})
    add(P.MarkPrice(2, 0, "BTC", "100"))
    orders = add(P.ProviderExecution(3, 0, "P", "e1", "BTC", "buy", "1", "100", "1000"))
    add(P.CopyFills(4, 0, [P.Fill(o.client_order_id, o.qty, "100") for o in orders]))
    add(P.MarkPrice(5, 0, "BTC", "150"))
    last = 5

    async def go():
        conn = await asyncpg.connect(pg_dsn)
        await migrate(conn)
        await seed_books(conn, BOOKS)
        await ensure_shard(conn, "main")
        await conn.copy_records_to_table(
            "engine_inputs", records=[("main", *r) for r in rows], columns=["shard", "seq", "kind", "payload"]
        )
        for after, c, error in changes:
            cid = await control.submit(conn, "main", c)
            await control.place(conn, cid, after)
            await control.decided(conn, cid, error)
        await conn.execute("UPDATE engine_state SET watermark = $1", last)
        p = projector.Projector(pg_dsn)
        await p.start(conn)
        while await p.step(conn):
            pass

        ua = {"type": "unfollow", "follower": "a", "provider": "P"}
        ub = {"type": "unfollow", "follower": "b", "provider": "P"}
        # A (lower id) is submitted by an API request whose transaction commits late
        slow = await asyncpg.connect(pg_dsn)
        tx = slow.transaction()
        await tx.start()
        a_id = await control.submit(slow, "main", ua)
        b_id = await control.submit(conn, "main", ub)
        assert a_id < b_id
        # the engine sees only B pending; places it after `last`, applies it, records it
        assert [c.id for c in await control.pending(conn, "main")] == [b_id]
        await control.place(conn, b_id, last)
        out_b = engine.control(last, b_id, json.dumps(ub))
        await control.decided(conn, b_id, control.verdict_of(out_b))
        assert await p.step(conn)  # early path: B taken while the venue is quiet
        published = await ready(conn, "main", NONE, 200)  # the publisher's round
        assert published and {n.placed_n for n in published} == {3}
        done = published[-1].key
        # A commits now; the engine places it at `last` after B and applies it
        await tx.commit()
        await control.place(conn, a_id, last)
        out_a = engine.control(last, a_id, json.dumps(ua))
        await control.decided(conn, a_id, control.verdict_of(out_a))
        assert await p.step(conn)
        a_rows = await conn.fetch("SELECT seq, change_id, n, side FROM notifications WHERE change_id = $1", a_id)
        nxt = await ready(conn, "main", done, 200)
        summary = await check(conn)
        await slow.close()
        await conn.close()
        return out_a, a_rows, nxt, done, summary, a_id

    out_a, a_rows, nxt, done, summary, a_id = asyncio.run(go())
    assert [r["status"] for r in out_a.settlements] == ["charged"]
    assert [tuple(r) for r in a_rows] == [(5, a_id, 0, 0), (5, a_id, 0, 1)]
    # A was placed after B (placed_n 4 after 3): its rows come in the publisher's next round
    assert [(n.seq, n.placed_n, n.n, n.side) for n in nxt] == [(5, 4, 0, 0), (5, 4, 0, 1)]
    assert done == (5, 3, 0, 1) and summary.transactions > 0  # and the ledger checks

"""The projector's statistics tables, from a hand-made journal: instruments, provider
trades, high watermarks, and with a snapshot the relationships' base and FIFO lots.

The projector is restarted before every step (two journal rows per step), so an input
folded twice or skipped would show in the exact values below.
"""

import asyncio
import json
from decimal import Decimal
from fractions import Fraction

import asyncpg
import pytest

from pyservice import control
from pyservice import protocol as P
from pyservice._engine_core import LiveEngine
from pyservice.dispatch import apply_venue_message
from pyservice.store import projector, statistics
from pyservice.store.books import seed_books
from pyservice.store.journal import ensure_shard
from pyservice.store.migrate import migrate
from pyservice.venue_time import DAY_US

BOOKS = json.dumps(
    {
        "version": 1,
        "providers": [{"id": "P"}],
        "follows": [
            {"follower": "a", "provider": "P", "allocation": "1000"},
            {"follower": "c", "provider": "P", "allocation": "500", "stop_copy_on_close": False},
        ],
    }
)

# (venue message, control changes placed right after it)
INPUTS: list[tuple[P.VenueMessage, list[dict]]] = [
    (P.Instrument(1, 0, "BTC", "spot", "0.01", "0.001", "0", "0"), []),
    (P.Instrument(2, 0, "ETH-PERP", "perp", "0.01", "0.001", "0", "1"), []),
    (P.MarkPrice(3, 0, "BTC", "100"), []),
    # BTC: long 10 @ 100 (equity 10,000), add 5 @ 110, close 15 @ 120: pnl 1800 - 1550 = 250
    (
        P.ProviderExecution(4, 0, "P", "e1", "BTC", "buy", "10", "100", "10000"),
        [{"type": "deposit", "follower": "a", "provider": "P", "amount": "100"}],
    ),
    (
        P.ProviderExecution(5, 0, "P", "e2", "BTC", "buy", "5", "110", "10500"),
        [
            {"type": "withdraw", "follower": "a", "provider": "P", "amount": "50"},
            {"type": "withdraw", "follower": "a", "provider": "P", "amount": "1000000"},
        ],
    ),  # refused: no change
    (
        P.ProviderExecution(6, 0, "P", "e3", "BTC", "sell", "15", "120", "10800"),
        [{"type": "follow", "follower": "b", "provider": "P", "allocation": "300"}],
    ),
    # ETH-PERP: long 2 @ 50 (leverage 5), then sell 3 @ 40 through zero: the long closes
    # with pnl 80 - 100 = -20 and a short of 1 @ 40 opens at that execution's equity
    (
        P.ProviderExecution(7, 0, "P", "e4", "ETH-PERP", "buy", "2", "50", "10800", 5),
        [{"type": "unfollow", "follower": "c", "provider": "P"}],
    ),
    (P.ProviderExecution(8, 0, "P", "e5", "ETH-PERP", "sell", "3", "40", "10780", 5), []),
    # a repeated exec id is refused by the rules: no trade moves
    (P.ProviderExecution(9, 0, "P", "e5", "ETH-PERP", "sell", "3", "40", "10780", 5), []),
]


def _journal() -> tuple[list[tuple[int, str, bytes]], list[tuple[int, dict, str | None]], LiveEngine]:
    """The journal rows (every execution's copies filled in full at its price, in the
    next seq), the control changes with where and how they were applied, and the
    engine that applied them all."""
    engine = LiveEngine.from_books(BOOKS)
    reader = P.engine_reader()
    rows: list[tuple[int, str, bytes]] = []
    changes: list[tuple[int, dict, str | None]] = []
    seq = 0

    def add(msg: P.VenueMessage) -> list[P.NewOrder]:
        nonlocal seq
        seq += 1
        msg = msg.__class__(**{**{f: getattr(msg, f) for f in msg.__struct_fields__}, "seq": seq})
        rows.append((seq, msg.__struct_config__.tag, P.encode(msg)[4:]))
        out = apply_venue_message(engine, msg)
        return [o for m in reader.feed(out.frame or b"") for o in m.orders]

    for msg, placed in INPUTS:
        orders = add(msg)
        if orders:
            add(P.CopyFills(0, 0, [P.Fill(o.client_order_id, o.qty, msg.price) for o in orders]))
        for _i, change in enumerate(placed):
            outcome = engine.control(seq, len(changes) + 1, json.dumps(change))
            assert outcome.frame is None or change["type"] == "unfollow"
            changes.append((seq, change, outcome.errors[0] if outcome.errors else None))
    return rows, changes, engine


async def _stored(
    dsn: str, rows: list[tuple[int, str, bytes]], changes: list[tuple[int, dict, str | None]]
) -> asyncpg.Connection:
    """A migrated database holding the books, the journal rows and the applied changes,
    with the watermark at the last row (as the engine leaves it)."""
    conn = await asyncpg.connect(dsn)
    await migrate(conn)
    await seed_books(conn, BOOKS)
    await ensure_shard(conn, "main")
    await conn.copy_records_to_table(
        "engine_inputs", records=[("main", *r) for r in rows], columns=["shard", "seq", "kind", "payload"]
    )
    for after, change, error in changes:
        cid = await control.submit(conn, "main", change)
        await control.place(conn, cid, after)
        await control.decided(conn, cid, error)
    await conn.execute("UPDATE engine_state SET watermark = $1", rows[-1][0])
    return conn


def test_projected_statistics_are_exact_across_restarts(pg_dsn, monkeypatch):
    monkeypatch.setattr(projector, "BATCH", 2)
    rows, changes, engine = _journal()
    assert [c[2] is None for c in changes] == [True, True, False, True, True]

    async def go():
        conn = await _stored(pg_dsn, rows, changes)

        steps = 0
        while True:  # a new projector for every step
            p = projector.Projector(pg_dsn)
            pconn = await asyncpg.connect(pg_dsn)
            await p.start(pconn)
            moved = await p.step(pconn)
            if not moved:
                await p._snapshot(pconn)
                await pconn.close()
                break
            await pconn.close()
            steps += 1
        assert steps == (len(rows) + 1) // 2

        instruments = await conn.fetch(
            "SELECT symbol, kind, tick::text, step::text, min_qty::text, "
            "min_notional::text, seq FROM instruments ORDER BY symbol"
        )
        assert [tuple(r) for r in instruments] == [
            ("BTC", "spot", "0.01", "0.001", "0", "0", 1),
            ("ETH-PERP", "perp", "0.01", "0.001", "0", "1", 2),
        ]

        trades = await conn.fetch(
            "SELECT symbol, opened_exec_id, side, leverage, equity_at_open::text, qty::text, max_qty::text, "
            "entry_qty::text, entry_notional::text, exit_qty::text, exit_notional::text, executions, "
            "closed_exec_id, pnl::text, (pnl / equity_at_open)::text AS ret FROM provider_trades "
            "ORDER BY opened_seq"
        )
        assert [tuple(r) for r in trades] == [
            (
                "BTC",
                "e1",
                "long",
                1,
                "10000",
                "0",
                "15",
                "15",
                "1550",
                "15",
                "1800",
                3,
                "e3",
                "250",
                "0.02500000000000000000",
            ),
            (
                "ETH-PERP",
                "e4",
                "long",
                5,
                "10800",
                "0",
                "2",
                "2",
                "100",
                "2",
                "80",
                2,
                "e5",
                "-20",
                "-0.00185185185185185185",
            ),
            ("ETH-PERP", "e5", "short", 5, "10780", "1", "1", "1", "40", "0", "0", 1, None, None, None),
        ]

        hwm = {
            (r["follower_id"], r["provider_id"]): (str(r["hwm"]), r["reason"])
            for r in await conn.fetch("SELECT * FROM high_watermarks")
        }
        assert hwm == {("a", "P"): ("1050", "withdraw"), ("b", "P"): ("300", "follow")}
        # before any settlement the watermark is the relationship's base (net money in)
        portfolios = {
            (p["follower"], p["provider"]): p for p in map(json.loads, engine.portfolios_jsonl().splitlines())
        }
        assert {k: Decimal(v[0]) for k, v in hwm.items()} == {k: Decimal(p["base"]) for k, p in portfolios.items()}

        base = await conn.fetch("SELECT follower_id, provider_id, base::text FROM relationship_equity")
        assert sorted(tuple(r) for r in base) == sorted((f, pr, p["base"]) for (f, pr), p in portfolios.items())
        lots = await conn.fetch(
            "SELECT follower_id, provider_id, symbol, n, side, qty::text, entry::text, leverage "
            "FROM lots ORDER BY follower_id, symbol, n"
        )
        expected_lots = sorted(
            (f, pr, x["symbol"], 0, x["side"], x["qty"], x["entry"], x["leverage"])
            for (f, pr), p in portfolios.items()
            for x in p["lots"]
        )
        assert [tuple(r) for r in lots] == expected_lots
        assert {r[2] for r in lots} == {"ETH-PERP"}  # a and b are short ETH-PERP, flat in BTC

        # the outbox: every fills message of the journal, in seq order
        outbox = await conn.fetch("SELECT seq, sub, kind FROM outbox ORDER BY seq, sub, n")
        assert [tuple(r) for r in outbox] == [(s, 0, "fills") for s, kind, _ in rows if kind == "fills"]
        await conn.close()

    asyncio.run(go())


@pytest.mark.parametrize(
    "change",
    [
        {"type": "deposit", "follower": "a", "provider": "P", "amount": "7.25"},
        {"type": "withdraw", "follower": "a", "provider": "P", "amount": "7.25"},
    ],
)
def test_a_watermark_moves_by_the_amount(pg_dsn, change):
    async def go():
        conn = await asyncpg.connect(pg_dsn)
        await migrate(conn)
        await seed_books(conn, BOOKS)
        await ensure_shard(conn, "main")
        p = projector.Projector(pg_dsn)
        await p.start(conn)  # seeds the books' relationships at their allocation
        await control.project(conn, "main", 3, change)
        hwm = await conn.fetchval("SELECT hwm FROM high_watermarks WHERE follower_id = 'a'")
        await conn.close()
        return hwm

    assert asyncio.run(go()) == Decimal("1000") + (1 if change["type"] == "deposit" else -1) * Decimal("7.25")


def test_watermarks_are_seeded_from_the_state_when_the_projection_has_none(pg_dsn, monkeypatch):
    """A projection that started before the table (or lost it) starts every relationship
    at its current base."""
    monkeypatch.setattr(projector, "BATCH", 100)
    rows, changes, engine = _journal()

    async def go():
        conn = await _stored(pg_dsn, rows, changes)
        p = projector.Projector(pg_dsn)
        await p.start(conn)
        assert await p.step(conn)
        await conn.execute("DELETE FROM high_watermarks")
        p = projector.Projector(pg_dsn)
        await p.start(conn)
        hwm = {
            (r[0], r[1]): r[2] for r in await conn.fetch("SELECT follower_id, provider_id, hwm FROM high_watermarks")
        }
        await conn.close()
        return hwm

    assert asyncio.run(go()) == {
        (p["follower"], p["provider"]): Decimal(p["base"])
        for p in map(json.loads, engine.portfolios_jsonl().splitlines())
    }


def test_projected_provider_statistics_are_the_replayed_ones(pg_dsn):
    """The projector's `provider_statistics` row, `stats --database` (computed from the
    projected rows) and `stats --database --as-of` (the journal replayed) all print the
    record a builder fed the same accepted inputs prints."""
    from pyservice.statistics import figures
    from pyservice.statistics.builder import StatisticsBuilder

    rows, changes, engine = _journal()
    # the same inputs, fed straight into a builder over a second engine
    replayed = LiveEngine.from_books(BOOKS)
    builder = StatisticsBuilder()
    reader = P.venue_reader(native_reports=True)
    placed = {}
    for after, change, _ in changes:
        placed.setdefault(after, []).append(change)
    for n, (seq, _kind, payload) in enumerate(rows):
        msg = reader.decode(payload)
        statistics.feed(builder, replayed, seq, msg, apply_venue_message(replayed, msg).errors)
        for i, change in enumerate(placed.get(seq, [])):
            replayed.control(seq, 100 * n + i + 1, json.dumps(change))
    [want] = builder.records(replayed.standings(), replayed.now_us)

    async def go():
        conn = await _stored(pg_dsn, rows, changes)
        p = projector.Projector(pg_dsn)
        pconn = await asyncpg.connect(pg_dsn)
        await p.start(pconn)
        while await p.step(pconn):
            pass
        await p.refresh(pconn)
        stored = json.loads(
            await conn.fetchval(f"SELECT {statistics.STORED_RECORD} FROM provider_statistics WHERE provider_id = 'P'")
        )
        assert stored == want
        assert await statistics.current_records(conn, "main") == [want]
        assert await statistics.records_as_of(conn, "main", replayed.now_us) == [want]
        assert await statistics.current_records(conn, "main", "nobody") == []
        # a mark moves the open short and the copies: the row follows at the next refresh
        seq = rows[-1][0] + 1
        mark = P.MarkPrice(seq, replayed.now_us + 1, "ETH-PERP", "30")
        await conn.copy_records_to_table(
            "engine_inputs",
            records=[("main", seq, "mark", P.encode(mark)[4:])],
            columns=["shard", "seq", "kind", "payload"],
        )
        await conn.execute("UPDATE engine_state SET watermark = $1", seq)
        assert await p.step(pconn)
        await p.refresh(pconn)
        [moved] = await statistics.current_records(conn, "main")
        row = json.loads(
            await conn.fetchval(f"SELECT {statistics.STORED_RECORD} FROM provider_statistics WHERE provider_id = 'P'")
        )
        assert moved["unrealized_pnl"] == "10" and moved["aum"] != want["aum"]  # short 1 from 40 to 30
        assert {**row, "as_of": moved["as_of"]} == moved
        # days later, without a trade: the sweep moves the row on without its trades (a
        # new day's zero return) or, where a trade left a window, from them
        for later in (3 * DAY_US, 40 * DAY_US):
            seq += 1
            mark = P.MarkPrice(seq, replayed.now_us + later, "ETH-PERP", "30")
            await conn.copy_records_to_table(
                "engine_inputs",
                records=[("main", seq, "mark", P.encode(mark)[4:])],
                columns=["shard", "seq", "kind", "payload"],
            )
            await conn.execute("UPDATE engine_state SET watermark = $1", seq)
            assert await p.step(pconn)
            rolled = p._rollovers["P"]
            await p.refresh(pconn)
            assert (p._rollovers["P"] is not rolled) and p._rollovers["P"].as_of == mark.ts
            row = json.loads(
                await conn.fetchval(
                    f"SELECT {statistics.STORED_RECORD} FROM provider_statistics WHERE provider_id = 'P'"
                )
            )
            assert [row] == await statistics.current_records(conn, "main")
        await pconn.close()
        await conn.close()

    asyncio.run(go())
    # by hand: BTC +250 on 10,000 and ETH-PERP −20 on 10,800 closed; a short of 1 open
    # at 40 with the mark at 40; a and b follow (c unfollowed), their money is the engine's
    a_all = want["periods"]["all"]
    assert (a_all["trades"], a_all["wins"], a_all["losses"], a_all["pnl"]) == (2, 1, 1, "230")
    assert a_all["roi"] == figures.rounded((1 + Fraction(250, 10000)) * (1 - Fraction(20, 10800)) - 1, 8)
    assert (want["open_trades"], want["unrealized_pnl"], want["strategy"], want["max_leverage"]) == (
        1,
        "0",
        "mixed",
        5,
    )
    standing = {p: (n, aum, pnl) for p, n, aum, pnl in engine.standings()}
    assert (want["followers"], want["aum"], want["copiers_pnl"]) == standing["P"]
    assert want["followers"] == 2


def test_a_mark_moves_the_rows_aum_without_a_trade(pg_dsn):
    """A mark changes the followers' equity, not the provider's trades: the refresh writes
    the new standing into the row's columns and its record (one statement for both)."""
    rows, changes, engine = _journal()
    mark = P.MarkPrice(len(rows) + 1, 0, "ETH-PERP", "30")  # a and b are short ETH-PERP from 40
    apply_venue_message(engine, mark)
    [(_, followers, aum, copiers_pnl)] = engine.standings()

    async def go():
        conn = await _stored(pg_dsn, rows, changes)
        p = projector.Projector(pg_dsn)
        pconn = await asyncpg.connect(pg_dsn)
        await p.start(pconn)
        while await p.step(pconn):
            pass
        await p.refresh(pconn)
        before = await conn.fetchval("SELECT aum FROM provider_statistics WHERE provider_id = 'P'")
        await conn.execute(
            "INSERT INTO engine_inputs (shard, seq, kind, payload) VALUES ('main', $1, 'mark', $2)",
            mark.seq,
            P.encode(mark)[4:],
        )
        await conn.execute("UPDATE engine_state SET watermark = $1", mark.seq)
        assert await p.step(pconn)
        await p.refresh(pconn)
        row = await conn.fetchrow(
            f"SELECT aum, copiers_pnl, {statistics.STORED_RECORD} AS record FROM provider_statistics WHERE provider_id = 'P'"
        )
        await pconn.close()
        await conn.close()
        return before, row

    before, row = asyncio.run(go())
    assert before != Decimal(aum)  # the mark moved it
    assert (row["aum"], row["copiers_pnl"]) == (Decimal(aum), Decimal(copiers_pnl))
    record = json.loads(row["record"])
    assert (record["followers"], record["aum"], record["copiers_pnl"]) == (followers, aum, copiers_pnl)


def test_a_change_after_the_newest_input_is_projected_without_waiting_for_the_next(pg_dsn, monkeypatch):
    """The venue quiet: a deposit and a `settle` placed after the newest input reach their
    rows as soon as their verdicts are recorded (not before: the engine may be applying
    them), each once, across restarts; the next input moves the position on and nothing
    is applied or posted twice. The projector's engine is the live engine throughout."""
    from pyservice.store.ledger_check import check

    monkeypatch.setattr(projector, "BATCH", 100)
    rows, changes, engine = _journal()
    last = rows[-1][0]
    deposit = {"type": "deposit", "follower": "a", "provider": "P", "amount": "100"}

    async def state(conn):
        return tuple(await conn.fetchrow("SELECT seq, changes_taken FROM projection_state WHERE shard = 'main'"))

    async def hwm(conn):
        return await conn.fetchval("SELECT hwm FROM high_watermarks WHERE follower_id = 'a'")

    async def count(conn, sql, *args):
        return await conn.fetchval(sql, *args)

    async def go():
        conn = await _stored(pg_dsn, rows, changes)
        p = projector.Projector(pg_dsn)
        await p.start(conn)
        assert await p.step(conn) and not await p.step(conn)
        before = await hwm(conn)

        terms = {"type": "profit_share", "provider": "P", "profit_share_pct": "20"}
        share = await control.submit(conn, "main", terms)
        dep = await control.submit(conn, "main", deposit)
        await control.place(conn, share, last)
        await control.place(conn, dep, last)
        assert not await p.step(conn)  # placed, no verdict yet: the engine may be applying them
        assert engine.control(last, share, json.dumps(terms)).errors == []
        await control.decided(conn, share, None)
        assert await p.step(conn)  # at once, without another input
        assert await state(conn) == (last, [share])
        assert not await p.step(conn)  # the deposit's verdict is not there yet
        assert engine.control(last, dep, json.dumps(deposit)).errors == []
        await control.decided(conn, dep, None)
        assert await p.step(conn)
        assert await hwm(conn) == before + 100
        assert await state(conn) == (last, [share, dep])
        assert not await p.step(conn)

        settle = await control.submit(conn, "main", {"type": "settle"})
        await control.place(conn, settle, last)
        records = engine.settle(last, settle).settlements
        await control.decided(conn, settle, None)
        p = projector.Projector(pg_dsn)  # restarted: the deposit is in its engine again
        await p.start(conn)
        assert p.engine.portfolios_jsonl() != engine.portfolios_jsonl()  # not the settle yet
        assert await p.step(conn) and not await p.step(conn)
        assert await state(conn) == (last, [share, dep, settle])
        assert p.engine.portfolios_jsonl() == engine.portfolios_jsonl()
        assert await count(conn, "SELECT count(*) FROM settlements WHERE change_id = $1", settle) == len(records)
        p = projector.Projector(pg_dsn)  # restarted again: both in its engine, nothing redone
        await p.start(conn)
        assert p.engine.portfolios_jsonl() == engine.portfolios_jsonl()
        assert not await p.step(conn)

        # the next input: the position moves on, nothing taken twice
        mark = P.MarkPrice(last + 1, 0, "BTC", "130")
        apply_venue_message(engine, mark)
        await conn.execute(
            "INSERT INTO engine_inputs (shard, seq, kind, payload) VALUES ('main', $1, 'mark', $2)",
            last + 1,
            P.encode(mark)[4:],
        )
        await conn.execute("UPDATE engine_state SET watermark = $1", last + 1)
        assert await p.step(conn)
        assert await state(conn) == (last + 1, [])
        assert p.engine.portfolios_jsonl() == engine.portfolios_jsonl()
        totals = (
            await hwm(conn),
            await count(conn, "SELECT count(*) FROM ledger_transactions WHERE change_id = $1", dep),
            await count(conn, "SELECT count(*) FROM settlements WHERE change_id = $1", settle),
        )
        summary = await check(conn)
        await conn.close()
        return records, totals, summary

    records, (final_hwm, deposits, settled), summary = asyncio.run(go())
    # a is the one above its watermark (its copies' profit): 20 % of it, and H raised to E
    assert [(r["follower"], r["status"]) for r in records] == [("a", "charged")]
    (a,) = records
    assert Decimal(a["due"]) == (Decimal(a["profit"]) * Decimal("0.2")).quantize(Decimal("1E-8"), "ROUND_DOWN") > 0
    assert (final_hwm, deposits, settled) == (Decimal(a["equity"]), 1, 1)
    assert summary.transactions > 0

"""The ledger in PostgreSQL: the database's own guards (balance at commit, append-only),
postings from synthetic settlement records and control changes, idempotent re-posting,
`ledger check` passing and failing, the settlements statement and its totals, and the
projector posting a journal's follows, deposits, withdrawals and unfollow."""

import asyncio
import json
from decimal import Decimal

import asyncpg
import pytest

from pyservice import cli, control
from pyservice import protocol as P
from pyservice._engine_core import LiveEngine
from pyservice.dispatch import apply_venue_message
from pyservice.store import ledger, projector
from pyservice.store.books import seed_books
from pyservice.store.journal import ensure_shard
from pyservice.store.ledger import Figures, Point
from pyservice.store.ledger_check import Difference, check
from pyservice.store.migrate import migrate
from pyservice.store.settlements import statement

D = Decimal


def record(follower, provider, period, status, equity, hwm, due, charged, provider_credit, platform_credit, off="0"):
    """Shaped as the engine's `Outcome.settlements`: a record without `event` and `kind`."""
    return {
        "period": period,
        "follower": follower,
        "provider": provider,
        "equity": equity,
        "high_watermark": hwm,
        "profit": str(D(equity) - D(hwm)),
        "due": due,
        "charged": charged,
        "provider_credit": provider_credit,
        "platform_credit": platform_credit,
        "written_off": off,
        "status": status,
    }


# a monthly 30 % share with a 20 % platform fee, from 10,000: November ends at 12,000
# (book 11,500: 500 of it unrealized), charged 600 = 480 + 120; December is deferred
NOV = record("a", "P", "2026-11", "charged", "12000", "10000", "600", "600", "480", "120")
DEC = record("a", "P", "2026-12", "deferred", "12500", "12000", "150", "0", "0", "0")
B_NOV = record("b", "P", "2026-11", "charged", "2200", "2000", "60", "60", "48", "12")
# b unfollows with 10 of free cash against 30 due: partial, 20 written off
B_OUT = record("b", "P", "unfollow", "partial", "2300", "2200", "30", "10", "8", "2", off="20")


async def _db(dsn: str) -> asyncpg.Connection:
    conn = await asyncpg.connect(dsn)
    await migrate(conn)
    await ensure_shard(conn, "main")
    await conn.execute("INSERT INTO projection_state (shard) VALUES ('main') ON CONFLICT DO NOTHING")
    return conn


def _month(postings: ledger.Postings, balances: dict) -> None:
    """Postings of a follow, a deposit, a withdrawal, November's settlement and the PnL,
    December's deferred one, and b's life through its unfollow."""
    postings.transfer(Point(0, ledger.BOOKS, 0), "open", "a", "P", D("9000"))
    postings.transfer(Point(1, 1, 10), "deposit", "a", "P", D("1500"))
    postings.transfer(Point(2, 2, 20), "withdraw", "a", "P", D("-500"))
    postings.transfer(Point(2, 3, 20), "follow", "b", "P", D("2000"))
    nov = Point(5, 0, 50)
    postings.settlement(nov, NOV)
    postings.settlement(nov, B_NOV)
    # the engine after: a's base 10,000, fees 600, book 11,500 - 600 = 10,900 (realized 1,500)
    postings.pnl(nov, "a", "P", Figures(D("10000"), D("600"), D("10900")), balances["a"] - D("600"))
    postings.pnl(nov, "b", "P", Figures(D("2000"), D("60"), D("2140")), balances["b"] - D("60"))
    postings.settlement(Point(9, 0, 90), DEC)
    out = Point(9, 4, 95)
    # b before its unfollow: book 2,190 (fees 60, realized 250), then charged 10, then home
    postings.pnl(out, "b", "P", Figures(D("2000"), D("60"), D("2190")), D("2140"))
    postings.settlement(out, B_OUT)
    postings.transfer(out, "unfollow", "b", "P", D("-2180"))


async def _balances(conn: asyncpg.Connection) -> dict:
    rows = await conn.fetch(
        "SELECT a.kind, coalesce(a.follower_id, ''), coalesce(a.provider_id, ''), sum(e.amount)::text "
        "FROM ledger_entries e JOIN ledger_accounts a ON a.id = e.account_id GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
    )
    return {tuple(r[:3]): r[3] for r in rows}


def test_postings_balance_reconcile_and_post_once(pg_dsn):
    async def go():
        conn = await _db(pg_dsn)
        postings = ledger.Postings("main")
        _month(postings, {"a": D("10000"), "b": D("2000")})
        await postings.post(conn)
        assert await _balances(conn) == {
            ("earnings", "", "P"): "536",  # 480 + 48 + 8
            ("platform", "", ""): "134",  # 120 + 12 + 2
            ("relationship", "a", "P"): "10900",
            ("relationship", "b", "P"): "0",
            ("trading_pnl", "", ""): "-1750",  # a's 1,500 and b's 250 realized
            ("wallet", "a", ""): "-10000",
            ("wallet", "b", ""): "180",  # 2,000 in, 2,180 home
        }
        assert sum(D(x) for x in (await _balances(conn)).values()) == 0
        n = await conn.fetchval("SELECT count(*) FROM ledger_entries")
        # a crashed step done again: nothing twice
        again = ledger.Postings("main")
        _month(again, {"a": D("10000"), "b": D("2000")})
        async with conn.transaction():
            await again.post(conn)
        assert await conn.fetchval("SELECT count(*) FROM ledger_entries") == n
        assert await conn.fetchval("SELECT count(*) FROM settlements") == 4
        assert await conn.fetchval("SELECT count(*) FROM notifications") == 8
        summary = await check(conn, "main")
        assert (summary.statements, summary.relationships) == (3, 2)
        await conn.close()

    asyncio.run(go())


def test_the_database_refuses_unbalanced_and_changed_postings(pg_dsn):
    async def go():
        conn = await _db(pg_dsn)
        postings = ledger.Postings("main")
        postings.transfer(Point(1, 1, 0), "follow", "a", "P", D("100"))
        await postings.post(conn)
        wallet, rel = await conn.fetchval("SELECT array_agg(id ORDER BY id) FROM ledger_accounts")
        with pytest.raises(asyncpg.CheckViolationError, match="does not balance: its entries sum to 5"):
            async with conn.transaction():
                tid = await conn.fetchval(
                    "INSERT INTO ledger_transactions (shard, seq, change_id, n, kind, follower_id, provider_id, at_us) "
                    "VALUES ('main', 2, 0, 0, 'deposit', 'a', 'P', 0) RETURNING id"
                )
                await conn.execute("INSERT INTO ledger_entries VALUES ($1, $2, -100), ($1, $3, 105)", tid, wallet, rel)
        # an entry added to a committed transaction unbalances it too
        tid = await conn.fetchval("SELECT id FROM ledger_transactions")
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute(
                "INSERT INTO ledger_entries (transaction_id, account_id, amount) VALUES ($1, $2, 7)",
                tid,
                (await ledger.account_ids(conn, [ledger.PLATFORM]))[ledger.PLATFORM],
            )
        for sql in (
            "UPDATE ledger_entries SET amount = amount * 2",
            "DELETE FROM ledger_entries",
            "UPDATE ledger_transactions SET seq = 5",
            "DELETE FROM ledger_transactions",
            "TRUNCATE ledger_entries CASCADE",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
                await conn.execute(sql)
        assert await _balances(conn) == {("relationship", "a", "P"): "100", ("wallet", "a", ""): "-100"}
        await conn.close()

    asyncio.run(go())


async def _tamper(conn: asyncpg.Connection, sql: str, *args) -> None:
    """Alter the ledger by hand: only with its guards off."""
    async with conn.transaction():
        await conn.execute("ALTER TABLE ledger_entries DISABLE TRIGGER USER")
        await conn.execute(sql, *args)
        await conn.execute("ALTER TABLE ledger_entries ENABLE TRIGGER USER")


@pytest.mark.parametrize(
    ("tamper", "difference"),
    [
        # one entry: its transaction no longer balances
        ("UPDATE ledger_entries SET amount = amount + 1 WHERE amount = 1500", "does not balance: its entries sum to 1"),
        # both sides of the deposit: balanced, but a's account no longer is what the engine said
        (
            "UPDATE ledger_entries SET amount = amount + sign(amount) "
            "WHERE transaction_id = (SELECT id FROM ledger_transactions WHERE kind = 'deposit')",
            "relationship's balance is 10901 in the ledger, 10900 as the engine said",
        ),
        # a credit moved from the provider to the platform: the totals of the settlements differ
        (
            "UPDATE ledger_entries SET amount = amount + 1 WHERE amount = 120; "
            "UPDATE ledger_entries SET amount = amount - 1 WHERE amount = 480",
            "provider 'P''s earnings in shard 'main': 535 posted, 536 credited",
        ),
    ],
)
def test_ledger_check_passes_then_names_a_hand_made_difference(pg_dsn, tamper, difference, capsys):
    async def ok():
        conn = await _db(pg_dsn)
        postings = ledger.Postings("main")
        _month(postings, {"a": D("10000"), "b": D("2000")})
        await postings.post(conn)
        await conn.close()

    async def altered():
        conn = await asyncpg.connect(pg_dsn)
        await _tamper(conn, tamper)
        with pytest.raises(Difference) as found:
            await check(conn)
        await conn.close()
        return str(found.value)

    asyncio.run(ok())
    assert cli.main(["ledger", "check", "--database", pg_dsn]) == 0
    assert "ledger ok: 11 transactions balance, 3 statements and 2 relationships" in capsys.readouterr().out
    assert difference in asyncio.run(altered())
    assert cli.main(["ledger", "check", "--database", pg_dsn, "--shard", "main"]) == 1
    assert difference in capsys.readouterr().err


def test_ledger_check_compares_the_newest_snapshot(pg_dsn):
    async def go():
        conn = await _db(pg_dsn)
        postings = ledger.Postings("main")
        _month(postings, {"a": D("10000"), "b": D("2000")})
        await postings.post(conn)
        # at seq 5 (after November's settlement): a's base 10,000 and fees 600
        snap = "INSERT INTO relationship_equity (shard, seq, follower_id, provider_id, status, cash, equity, reserved, "
        snap += "base, fees_paid) VALUES ('main', 5, 'a', 'P', 'active', 0, 0, 0, $1, $2)"
        await conn.execute(snap, D("10000"), D("600"))
        await check(conn)
        await conn.execute("UPDATE relationship_equity SET fees_paid = 601")
        with pytest.raises(Difference, match="fees charged are 600 in the ledger, the engine's 601"):
            await check(conn)
        await conn.close()

    asyncio.run(go())


def test_settlements_statement_lists_outcomes_and_totals(pg_dsn, capsys):
    async def go():
        conn = await _db(pg_dsn)
        postings = ledger.Postings("main")
        _month(postings, {"a": D("10000"), "b": D("2000")})
        postings.settlement(
            Point(11, 0, 0), record("c", "Q", "2026-12", "charged", "110", "100", "3", "3", "2.4", "0.6")
        )
        await postings.post(conn)
        everything = await statement(conn)
        assert [(r["period"], r["follower"], r["status"], r["charged"]) for r in everything[:5]] == [
            ("2026-11", "a", "charged", "600"),
            ("2026-11", "b", "charged", "60"),
            ("2026-12", "a", "deferred", "0"),
            ("unfollow", "b", "partial", "10"),
            ("2026-12", "c", "charged", "3"),
        ]
        amounts = ("due", "charged", "provider_credit", "platform_credit", "written_off", "deferred_due")
        assert everything[5:] == [
            {
                "kind": "provider_total",
                "provider": "P",
                "outcomes": {"charged": 2, "deferred": 1, "partial": 1},
                **dict(zip(amounts, ("840", "670", "536", "134", "20", "150"), strict=True)),
            },
            {
                "kind": "provider_total",
                "provider": "Q",
                "outcomes": {"charged": 1, "deferred": 0, "partial": 0},
                **dict(zip(amounts, ("3", "3", "2.4", "0.6", "0", "0"), strict=True)),
            },
            {
                "kind": "platform_total",
                "outcomes": {"charged": 3, "deferred": 1, "partial": 1},
                **dict(zip(amounts, ("843", "673", "538.4", "134.6", "20", "150"), strict=True)),
            },
        ]
        december = await statement(conn, period="2026-12", provider="P")
        assert [r["kind"] for r in december] == ["settlement", "provider_total", "platform_total"]
        assert december[0]["follower"] == "a" and december[0]["status"] == "deferred"
        assert december[-1]["outcomes"] == {"charged": 0, "deferred": 1, "partial": 0}
        assert december[-1]["charged"] == "0" and december[-1]["deferred_due"] == "150"
        assert [r["period"] for r in await statement(conn, follower="b") if r["kind"] == "settlement"] == [
            "2026-11",
            "unfollow",
        ]
        await conn.close()

    asyncio.run(go())
    assert cli.main(["settlements", "--database", pg_dsn, "--provider", "Q"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [x["kind"] for x in lines] == ["settlement", "provider_total", "platform_total"]
    assert lines[-1]["platform_credit"] == "0.6"


def test_the_projector_posts_the_journal_and_the_check_passes(pg_dsn, monkeypatch):
    """test_projector's journal (books a 1,000 and c 500; a deposits 100, withdraws 50; b
    follows with 300; c, holding BTC bought at 100 and sold at 120, unfollows), with a
    projector restarted before every step: the ledger opens with the books, posts each
    change once, and reconciles with the engine."""
    from store.test_projector import _journal, _stored

    monkeypatch.setattr(projector, "BATCH", 2)
    rows, changes, _ = _journal()

    async def go():
        conn = await _stored(pg_dsn, rows, changes)
        while True:
            p = projector.Projector(pg_dsn)
            pconn = await asyncpg.connect(pg_dsn)
            await p.start(pconn)
            moved = await p.step(pconn)
            if not moved:
                await p._snapshot(pconn)
                await pconn.close()
                break
            await pconn.close()
        kinds = await conn.fetch(
            "SELECT t.kind, t.follower_id, e.amount::text FROM ledger_transactions t JOIN ledger_entries e "
            "ON e.transaction_id = t.id JOIN ledger_accounts a ON a.id = e.account_id AND a.kind = 'relationship' "
            "ORDER BY t.id"
        )
        c_pnl = [r[2] for r in kinds if r[0] == "pnl"]
        assert [(r[0], r[1]) for r in kinds if r[0] != "pnl"] == [
            ("open", "a"),
            ("open", "c"),
            ("deposit", "a"),
            ("withdraw", "a"),
            ("follow", "b"),
            ("unfollow", "c"),
        ]
        assert [r[2] for r in kinds if r[0] != "pnl"][:5] == ["1000", "500", "100", "-50", "300"]
        # c's book at its unfollow is its allocation plus what it realized; all of it goes home
        unfollow = next(r[2] for r in kinds if r[0] == "unfollow")
        assert D(unfollow) == -(D("500") + sum(D(x) for x in c_pnl))
        summary = await check(conn, "main")
        assert summary.relationships == 3
        await conn.close()

    asyncio.run(go())


def _late_close_journal() -> tuple[list[tuple[int, str, bytes]], list[tuple[int, dict, str | None]], str]:
    """A live unfollow whose close fills later, away from the mark. Books: a follows P
    with 1,000 (stop_copy_on_close); P's share 30 %, the platform's fee 10 %, monthly.
    a copies 1 BTC bought at 100 (cash 900); BTC is marked at 150 (equity 1,050) and a
    unfollows: the close goes out, nothing settles; the mark moves to 145; the close fills
    at 140: equity 1,040, profit 40, due 12 (10.8 + 1.2), and the relationship ends.
    Returns the journal rows, the changes and the books."""
    books = json.dumps(
        {
            "version": 1,
            "providers": [{"id": "P"}],
            "follows": [{"follower": "a", "provider": "P", "allocation": "1000", "stop_copy_on_close": True}],
        }
    )
    engine = LiveEngine.from_books(books)
    reader = P.engine_reader()
    rows: list[tuple[int, str, bytes]] = []
    changes: list[tuple[int, dict, str | None]] = []
    outcomes = []

    def add(msg: P.VenueMessage) -> list[P.NewOrder]:
        rows.append((msg.seq, msg.__struct_config__.tag, P.encode(msg)[4:]))
        out = apply_venue_message(engine, msg)
        outcomes.append(out)
        return [o for m in reader.feed(out.frame or b"") for o in m.orders]

    def change(after: int, c: dict) -> list[P.NewOrder]:
        out = engine.control(after, len(changes) + 1, json.dumps(c))
        changes.append((after, c, out.errors[0] if out.errors else None))
        return [o for m in reader.feed(out.frame or b"") for o in m.orders]

    add(P.Instrument(1, 0, "BTC", "spot", "0.01", "0.001", "0", "0"))
    change(1, {"type": "profit_share", "provider": "P", "profit_share_pct": "30"})
    change(1, {"type": "platform", "platform_fee_pct": "10", "settlement": "monthly"})
    add(P.MarkPrice(2, 0, "BTC", "100"))
    [buy] = add(P.ProviderExecution(3, 0, "P", "e1", "BTC", "buy", "1", "100", "1000"))
    assert not add(P.CopyFills(4, 0, [P.Fill(buy.client_order_id, buy.qty, "100")]))
    add(P.MarkPrice(5, 0, "BTC", "150"))
    [close] = change(5, {"type": "unfollow", "follower": "a", "provider": "P"})
    assert (close.side, str(close.qty), close.reduce_only) == ("sell", "1", True)
    add(P.MarkPrice(6, 0, "BTC", "145"))
    assert not add(P.CopyFills(7, 0, [P.Fill(close.client_order_id, close.qty, "140")]))
    assert [c[2] for c in changes] == [None, None, None]
    assert [(s["period"], s["equity"], s["charged"]) for s in outcomes[-1].settlements] == [("unfollow", "1040", "12")]
    assert [json.loads(x)["cash"] for x in outcomes[-1].ended] == ["1028"]
    return rows, changes, books


def test_a_live_unfollow_posts_its_late_close_and_returns_the_book_after_it(pg_dsn, monkeypatch):
    """The ledger posts an unfollow whose close fills later at the report of that fill:
    the charge on the equity after the close, the PnL the close realized (at 140, not the
    mark), and exactly the book left (1,028) back to the wallet. A projector restarted
    before every input, from a snapshot taken after each (one of them holds the unfollow
    waiting for its close), posts the same; `ledger check` passes."""
    monkeypatch.setattr(projector, "BATCH", 1)
    rows, changes, books = _late_close_journal()

    async def go():
        conn = await asyncpg.connect(pg_dsn)
        await migrate(conn)
        await seed_books(conn, books)
        await ensure_shard(conn, "main")
        await conn.copy_records_to_table(
            "engine_inputs", records=[("main", *r) for r in rows], columns=["shard", "seq", "kind", "payload"]
        )
        for after, change, error in changes:
            cid = await control.submit(conn, "main", change)
            await control.place(conn, cid, after)
            await control.decided(conn, cid, error)
        await conn.execute("UPDATE engine_state SET watermark = $1", rows[-1][0])
        snapshots = []
        while True:
            p = projector.Projector(pg_dsn)
            pconn = await asyncpg.connect(pg_dsn)
            await p.start(pconn)
            moved = await p.step(pconn)
            assert p.engine is not None
            if moved:
                await p._snapshot(pconn)
                snapshots.append((p.at, p.engine.working_count, p.engine.relationships))
            await pconn.close()
            if not moved:
                break
        # the snapshot at 6 holds the unfollow waiting for its close (out of the books)
        assert (6, 1, 0) in snapshots
        txns = await conn.fetch(
            "SELECT t.seq, t.change_id, t.kind, a.kind AS account, e.amount::text FROM ledger_transactions t "
            "JOIN ledger_entries e ON e.transaction_id = t.id JOIN ledger_accounts a ON a.id = e.account_id "
            "WHERE t.kind <> 'open' ORDER BY t.id, a.kind"
        )
        assert [tuple(r) for r in txns] == [
            # nothing at the unfollow (seq 5, change 3): all at the close's fill, seq 7
            (7, 0, "settlement", "earnings", "10.8"),
            (7, 0, "settlement", "platform", "1.2"),
            (7, 0, "settlement", "relationship", "-12"),
            (7, 0, "pnl", "relationship", "40"),
            (7, 0, "pnl", "trading_pnl", "-40"),
            (7, 0, "unfollow", "relationship", "-1028"),
            (7, 0, "unfollow", "wallet", "1028"),
        ]
        balances = await _balances(conn)
        assert balances[("relationship", "a", "P")] == "0"
        assert balances[("wallet", "a", "")] == "28"  # 1,000 out at the open, 1,028 back
        statement_row = await conn.fetchrow(
            "SELECT s.base::text, s.fees_paid::text, s.realized_pnl::text FROM ledger_statements s "
            "JOIN ledger_transactions t ON t.id = s.transaction_id WHERE t.kind = 'pnl' AND t.seq = 7"
        )
        assert tuple(statement_row) == ("1000", "12", "40")
        settled = await conn.fetch("SELECT seq, change_id, period, equity::text, status FROM settlements")
        assert [tuple(r) for r in settled] == [(7, 0, "unfollow", "1040", "charged")]
        summary = await check(conn, "main")
        assert summary.relationships == 1
        await conn.close()

    asyncio.run(go())


def test_ledger_check_names_a_posting_after_the_relationships_unfollow(pg_dsn):
    """A relationship ends once: a relationship ended at its unfollow (1,000 home) and
    ended again at a later input (a `pnl` of 1,000 out of trading_pnl, 1,000 home again:
    2,000 returned for 1,000 allocated) fails the check at the second end's first posting,
    named, although every transaction balances and each unfollow leaves the account at
    zero. After a new follow the account takes postings again."""

    async def go():
        conn = await _db(pg_dsn)
        p = ledger.Postings("main")
        p.transfer(Point(0, ledger.BOOKS, 0), "open", "a", "P", D("1000"))
        p.pnl(Point(5, 3, 50), "a", "P", Figures(D("1000"), D("0"), D("1000")), D("1000"))
        p.transfer(Point(5, 3, 50), "unfollow", "a", "P", D("-1000"))
        # a follow again, its life, and its end: fine
        p.transfer(Point(6, 4, 60), "follow", "a", "P", D("500"))
        p.transfer(Point(6, 5, 60), "unfollow", "a", "P", D("-500"))
        async with conn.transaction():
            await p.post(conn)
        summary = await check(conn)
        assert (summary.transactions, summary.relationships) == (5, 1)
        # the same relationship ending again at a later fills input
        again = ledger.Postings("main")
        again.pnl(Point(7, 0, 70), "a", "P", Figures(D("500"), D("0"), D("500")), D("0"))
        again.transfer(Point(7, 0, 70), "unfollow", "a", "P", D("-500"))
        async with conn.transaction():
            await again.post(conn)
        ended_by = await conn.fetchval("SELECT max(id) FROM ledger_transactions WHERE kind = 'unfollow' AND seq = 6")
        with pytest.raises(Difference) as found:
            await check(conn)
        wallet = await conn.fetchval(
            "SELECT sum(e.amount) FROM ledger_entries e JOIN ledger_accounts a ON a.id = e.account_id "
            "WHERE a.kind = 'wallet'"
        )
        await conn.close()
        return str(found.value), ended_by, wallet

    message, ended_by, wallet = asyncio.run(go())
    assert wallet == D("500")  # 500 more home than ever allocated: what the check must catch
    assert "(pnl of 'a' copying 'P', shard 'main' seq 7 change 0 n 0)" in message
    assert message.endswith(
        f": posted after the relationship's unfollow (transaction {ended_by}) with no follow since: "
        "a relationship ends once"
    )


def test_a_relationship_the_ledger_ended_already_is_not_ended_again(pg_dsn, monkeypatch):
    """After an upgrade whose engine refuses the older snapshots, the projector replays
    the journal from the books: an unfollow the older engine ended at once (the ledger
    has its end at seq 5: charged 15 at the mark 150, 985 home) now ends at its close's
    fill (seq 7). The projector posts nothing there for it: the relationship ends once,
    the wallet holds 985 back for 1,000 allocated, and `ledger check` passes."""
    monkeypatch.setattr(projector, "BATCH", 1)
    rows, changes, books = _late_close_journal()

    async def go():
        conn = await asyncpg.connect(pg_dsn)
        await migrate(conn)
        await seed_books(conn, books)
        await ensure_shard(conn, "main")
        await conn.copy_records_to_table(
            "engine_inputs", records=[("main", *r) for r in rows], columns=["shard", "seq", "kind", "payload"]
        )
        for after, change, error in changes:
            cid = await control.submit(conn, "main", change)
            await control.place(conn, cid, after)
            await control.decided(conn, cid, error)
        await conn.execute("UPDATE engine_state SET watermark = $1", rows[-1][0])
        # the older projector: through seq 6, its unfollow ended at seq 5 (no snapshot
        # this engine can read)
        p = projector.Projector(pg_dsn)
        pconn = await asyncpg.connect(pg_dsn)
        await p.start(pconn)
        while p.at < 6:
            assert await p.step(pconn)
        await pconn.close()
        old = ledger.Postings("main")
        at = Point(5, 3, 0)
        old.pnl(at, "a", "P", Figures(D("1000"), D("0"), D("1000")), D("1000"))
        old.settlement(at, record("a", "P", "unfollow", "charged", "1050", "1000", "15", "15", "13.5", "1.5"))
        old.transfer(at, "unfollow", "a", "P", D("-985"))
        async with conn.transaction():
            await old.post(conn)
        # the upgraded projector: from the books to 6, then the close's fill at 7
        p = projector.Projector(pg_dsn)
        pconn = await asyncpg.connect(pg_dsn)
        await p.start(pconn)
        assert p.at == 6
        assert await p.step(pconn)
        assert p.at == 7
        await pconn.close()
        late = await conn.fetchval("SELECT count(*) FROM ledger_transactions WHERE seq = 7")
        settled = await conn.fetch("SELECT seq, period, charged::text FROM settlements")
        balances = await _balances(conn)
        summary = await check(conn, "main")
        await conn.close()
        return late, [tuple(r) for r in settled], balances, summary

    late, settled, balances, summary = asyncio.run(go())
    assert late == 0
    assert settled == [(5, "unfollow", "15")]
    assert balances[("relationship", "a", "P")] == "0"
    assert balances[("wallet", "a", "")] == "-15"  # 1,000 out at the open, 985 back once
    assert summary.relationships == 1

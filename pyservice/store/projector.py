"""The projector: the journal as rows for statistics and settlement.

It applies the committed journal (and the control changes at their points) to its own
copy of the engine, walking the same `recovery.history` as recovery does, and writes
the orders that copy sends, the venue's reports, the instruments, the provider trades
and each applied control change's rows (`control.project`: the high watermarks), the
ledger's postings, settlement outcomes and notifications (`store.ledger`, docs/ledger.md),
each step in one transaction with its position (`projection_state`); every second, the
providers' statistics rows (`refresh`; docs/statistics.md); with each engine snapshot,
every relationship's money, its positions and their FIFO lots. The engine
runs it as a child process: the rows cost the hot path nothing, and they are the orders
of an engine that never crashed (resends after a crash are not in the journal), with
exactly the sizes sent.

Where it stands: inputs up to `P`, the control changes placed before `P`, and those
placed after `P` that it took already (`changes_taken`, in the order applied). While the
watermark is at `P` (the venue quiet), a change placed after `P` is taken once its
verdict is recorded, with those placed before it: the engine has applied them, in that
order; one it places there later comes with a later step. So a manual `copyengine settle`
reaches the ledger at once, not with the next venue input. No snapshot is taken while
some are taken at `P` (a snapshot at `P` holds none of the changes after `P`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Coroutine
from decimal import Decimal
from typing import Any

import asyncpg

from pyservice import control
from pyservice import protocol as P
from pyservice._engine_core import (
    CopyEngineError,
    Execution,
    InstrumentDef,
    LiveEngine,
    Mark,
    Outcome,
    Reports,
    order_rows,
)
from pyservice.dispatch import apply_venue_message
from pyservice.faults import KILL
from pyservice.runtime import run_worker
from pyservice.statistics import figures, trades
from pyservice.statistics.builder import StatisticsBuilder
from pyservice.store import books, ledger, locks, recovery
from pyservice.store import statistics as stats

log = logging.getLogger("copyengine.projector")

#: journal rows per transaction
BATCH = 200


class Projector:
    def __init__(
        self, dsn: str, shard: str = "main", poll_s: float = 0.05, snapshot_s: float = 30.0, standings_s: float = 1.0
    ) -> None:
        self.dsn, self.shard, self.poll_s = dsn, shard, poll_s
        #: seconds between engine snapshots (taken when the position moved)
        self.snapshot_s = snapshot_s
        #: seconds between refreshes of what the marks and time move in the statistics rows
        self.standings_s = standings_s
        self.reader = P.venue_reader(native_reports=True)
        self.engine: LiveEngine | None = None
        #: the open trades, instruments' kinds, marks and leverages (closed trades are read
        #: from `provider_trades` when a provider's record is recomputed)
        self.stats = StatisticsBuilder(history=False)
        #: what the rows say now: provider → (followers, aum, copiers_pnl, unrealized_pnl)
        self._standing: dict[str, tuple[int, str, str, str]] = {}
        #: per provider whose record this projector computed: what moves it to a later
        #: time without its trades (after a restart, the first due refresh reads them)
        self._rollovers: dict[str, figures.Rollover] = {}
        #: providers whose trades moved since the last refresh (a restart recomputes all:
        #: `warm`)
        self._traded: set[str] = set()
        self.at = 0  # P: inputs <= at are applied, and changes placed before it
        #: the changes placed after `at` already applied (and projected), in that order
        self.taken: list[int] = []
        self._snapshot_at = 0  # the position of the last snapshot
        self._snapshot_due = 0.0

    async def run(self) -> None:
        # Asynchronous commit: a step lost to a PostgreSQL crash rolls back with its
        # position, and the projector does it again from the journal.
        conn = await asyncpg.connect(self.dsn, timeout=10, server_settings={"synchronous_commit": "off"})
        try:
            await self.start(conn)
            loop = asyncio.get_running_loop()
            self._snapshot_due = loop.time() + self.snapshot_s
            standings_due = 0.0
            while True:
                moved = await self.step(conn)
                if loop.time() >= standings_due:
                    await self.refresh(conn)
                    standings_due = loop.time() + self.standings_s
                if not moved and not await self.warm(conn):
                    await asyncio.sleep(self.poll_s)
                if loop.time() >= self._snapshot_due and self.at > self._snapshot_at and not self.taken:
                    await self._snapshot(conn)
                    self._snapshot_due = loop.time() + self.snapshot_s
        finally:
            await conn.close()

    async def start(self, conn: asyncpg.Connection) -> None:
        """Own the shard's projection and rebuild its state at the projected position."""
        # a projector of the engine before a restart may still be finishing a step
        while not await locks.take(conn, "projector", self.shard, wait_s=60):
            log.warning("waiting for another projector of this shard to stop", extra={"shard": self.shard})
        await conn.execute("INSERT INTO projection_state (shard) VALUES ($1) ON CONFLICT DO NOTHING", self.shard)
        row = await conn.fetchrow("SELECT seq, changes_taken FROM projection_state WHERE shard = $1", self.shard)
        assert row is not None
        await self._catch_up_silently(conn, row["seq"], list(row["changes_taken"]))
        if not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM high_watermarks WHERE shard = $1)", self.shard):
            await self._seed_high_watermarks(conn)
        self.stats.kinds = {r["symbol"]: r["kind"] for r in await conn.fetch("SELECT symbol, kind FROM instruments")}
        if not await ledger.opened(conn, self.shard):
            assert self.engine is not None
            book = {rel: ledger.figures(p, self.stats.kinds) for rel, p in self._portfolios().items()}
            await ledger.open_books(conn, self.shard, ledger.Point(self.at, ledger.BOOKS, self.engine.now_us), book)
        self.stats.book = trades.TradeBook(
            [
                trades.from_row(r)
                for r in await conn.fetch(
                    "SELECT * FROM provider_trades WHERE shard = $1 AND closed_seq IS NULL", self.shard
                )
            ]
        )
        self.stats.marks = await stats.marks(conn)
        rows = await conn.fetch(
            "SELECT provider_id, max_leverage, followers, aum, copiers_pnl, unrealized_pnl FROM provider_statistics "
            "WHERE shard = $1",
            self.shard,
        )
        self.stats.max_leverage = {r[0]: r[1] for r in rows if r[1] is not None}
        self._standing = {r[0]: (r[2], *(figures.canonical(r[i]) for i in (3, 4, 5))) for r in rows}

    async def _seed_high_watermarks(self, conn: asyncpg.Connection) -> None:
        """None yet for this shard (a new database, or one from before the table): every
        relationship starts at its base, which is what the watermark is until a
        settlement raises it."""
        assert self.engine is not None
        rows = [
            (p["follower"], p["provider"], Decimal(p["base"]), self.shard, self.at)
            for p in map(json.loads, self.engine.portfolios_jsonl().splitlines())
        ]
        await conn.executemany(
            "INSERT INTO high_watermarks (follower_id, provider_id, hwm, reason, shard, seq) "
            "VALUES ($1, $2, $3, 'follow', $4, $5) ON CONFLICT DO NOTHING",
            rows,
        )

    async def _snapshot(self, conn: asyncpg.Connection) -> None:
        """Store the engine state at this position (keep the newest two), every
        relationship's money, and the positions with their lots."""
        assert self.engine is not None
        try:
            state = self.engine.snapshot()
        except CopyEngineError as exc:
            log.error("no snapshot this time", extra={"seq": self.at, "error": str(exc)})
            return
        equity: list[tuple[object, ...]] = []
        positions: list[tuple[object, ...]] = []
        lots: list[tuple[object, ...]] = []
        for line in self.engine.portfolios_jsonl().splitlines():
            p = json.loads(line)
            f, pr = p["follower"], p["provider"]
            equity.append(
                (
                    self.shard,
                    self.at,
                    f,
                    pr,
                    p["status"],
                    p["cash"],
                    p["equity"],
                    p["reserved"],
                    p["base"],
                    p.get("fees_paid"),
                    p.get("high_watermark"),
                )
            )
            positions.extend((self.shard, self.at, f, pr, x["symbol"], x["qty"]) for x in p["positions"])
            n: dict[str, int] = {}
            for x in p["lots"]:
                n[x["symbol"]] = n.get(x["symbol"], -1) + 1
                lots.append(
                    (
                        self.shard,
                        self.at,
                        f,
                        pr,
                        x["symbol"],
                        n[x["symbol"]],
                        x["side"],
                        x["qty"],
                        x["entry"],
                        x["leverage"],
                    )
                )
        async with conn.transaction():
            await conn.copy_records_to_table(
                "relationship_equity",
                records=equity,
                columns=[
                    "shard",
                    "seq",
                    "follower_id",
                    "provider_id",
                    "status",
                    "cash",
                    "equity",
                    "reserved",
                    "base",
                    "fees_paid",
                    "high_watermark",
                ],
            )
            for table, rows, columns in (
                ("positions", positions, ["shard", "seq", "follower_id", "provider_id", "symbol", "qty"]),
                (
                    "lots",
                    lots,
                    ["shard", "seq", "follower_id", "provider_id", "symbol", "n", "side", "qty", "entry", "leverage"],
                ),
            ):
                await conn.execute(f"DELETE FROM {table} WHERE shard = $1", self.shard)
                await conn.copy_records_to_table(table, records=rows, columns=columns)
            await conn.execute(
                "INSERT INTO engine_snapshots (shard, seq, state) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                self.shard,
                self.at,
                state,
            )
            await conn.execute(
                "DELETE FROM engine_snapshots WHERE shard = $1 AND seq < "
                "(SELECT min(seq) FROM (SELECT seq FROM engine_snapshots WHERE shard = $1 "
                "ORDER BY seq DESC LIMIT 2) newest)",
                self.shard,
            )
        self._snapshot_at = self.at
        log.info("engine snapshot", extra={"seq": self.at, "bytes": len(state)})

    async def _catch_up_silently(self, conn: asyncpg.Connection, projected: int, taken: list[int]) -> None:
        """Rebuild the engine's state at the projected position (with the changes taken
        after it), writing nothing: from the newest snapshot at or below it, else from
        the books."""
        recovered = await recovery.catch_up(conn, self.shard, projected, lambda: books.load_books(conn), taken)
        self.engine, self._snapshot_at, self.at = recovered.engine, recovered.snapshot_seq, recovered.applied_seq
        self.taken = taken

    async def step(self, conn: asyncpg.Connection) -> bool:
        """Project the next batch; False when there was nothing new."""
        watermark = await conn.fetchval("SELECT watermark FROM engine_state WHERE shard = $1", self.shard)
        early: list[recovery.Placed] = []
        if watermark <= self.at:
            early = await self._decided_after(conn)
            if not early:
                return False
        upto = max(self.at, min(watermark, self.at + BATCH))
        # rows in COPY text format, written by the Rust core
        orders: list[bytes] = []
        fills: list[bytes] = []
        rejects: list[bytes] = []
        stops: list[tuple[str, int, str, str]] = []
        instruments: list[tuple[object, ...]] = []
        projected: list[tuple[int, dict[str, Any]]] = []  # (seq, applied change): `control.project`
        traded: dict[tuple[str, str, int], trades.Trade] = {}
        marked: dict[str, tuple[Decimal, int]] = {}
        verdicts: list[tuple[int, str | None]] = []
        postings = ledger.Postings(self.shard)
        raised: list[tuple[str, str, Decimal, int]] = []  # high watermarks a charge raised
        assert self.engine is not None
        boundary = self.engine.settlement_terms()[2]
        shares_set: set[str] = set()  # providers whose profit share a change set

        # changes placed after `at`..`upto - 1` are final (the watermark is past them);
        # those after `upto` are taken at the start of the next step
        steps = (
            _each(early) if early else recovery.history(conn, self.shard, self.at, upto, changes_at_upto=False,
                                                        taken=self.taken)
        )  # fmt: skip
        async with contextlib.aclosing(steps):  # a failure mid-way closes the walk's cursor
            async for entry in steps:
                if isinstance(entry, recovery.Placed):
                    seq, change = entry.seq, entry.change
                    applied = json.loads(change.text)
                    outcome = self._control(seq, change)
                    if outcome.frame is not None:
                        orders.append(order_rows(outcome.frame, self.shard, change.id))
                    stops.extend((self.shard, seq, f, p) for f, p in outcome.stopped)
                    if not entry.decided:  # placed, then its engine died before the verdict
                        verdicts.append((change.id, control.verdict_of(outcome)))
                    if not outcome.errors:
                        projected.append((seq, applied))
                        if applied["type"] == "profit_share":
                            shares_set.add(applied["provider"])
                        point = ledger.Point(seq, change.id, self._now(), change.placed_n)
                        records = settlements_of(outcome)  # made once: 100,000s at a settle
                        await self._post_change(conn, postings, point, applied, records, outcome.ended)
                        raised.extend(_raised(records, seq))
                    continue
                seq = entry.seq
                msg, outcome = self._input(seq, entry.payload)
                if outcome.frame is not None:
                    orders.append(order_rows(outcome.frame, self.shard))
                stops.extend((self.shard, seq, f, p) for f, p in outcome.stopped)
                # a settlement comes before the input that crossed its boundary, even a
                # refused one: posted with the state after the input (docs/ledger.md); an
                # unfollow waiting for its orders ends at the report of the last of them
                records = settlements_of(outcome)
                if records or outcome.ended:
                    await self._post_outcome(conn, postings, ledger.Point(seq, 0, self._now()), records, outcome.ended)
                    raised.extend(_raised(records, seq))
                if isinstance(msg, Reports):
                    (fills if msg.kind == "fills" else rejects).append(msg.copy_rows(self.shard))
                    continue
                assert self.engine is not None
                for t in stats.feed(self.stats, self.engine, seq, msg, outcome.errors):
                    traded[t.key] = t
                if outcome.errors:
                    pass  # refused by the rules: it changed nothing
                elif isinstance(msg, Execution | Mark):
                    marked[msg.symbol] = (Decimal(msg.price), seq)
                elif isinstance(msg, InstrumentDef):
                    instruments.append(
                        (
                            msg.symbol,
                            msg.kind,
                            *map(Decimal, (msg.tick, msg.step, msg.min_qty, msg.min_notional)),
                            self.shard,
                            seq,
                        )
                    )
        async with conn.transaction():
            for table, rows in (("copy_orders", orders), ("copy_fills", fills), ("copy_rejects", rejects)):
                if rows:
                    await conn.copy_to_table(table, source=_Chunks(rows), columns=_COLUMNS[table])
            if stops:
                await conn.copy_records_to_table(
                    "relationship_stops", records=stops, columns=["shard", "seq", "follower_id", "provider_id"]
                )
            for change_id, error in verdicts:
                await control.decided(conn, change_id, error)
            if instruments:
                await conn.executemany(_UPSERT_INSTRUMENT, instruments)
            if traded:
                await conn.executemany(_UPSERT_TRADE, [trades.row(self.shard, t) for t in traded.values()])
            if marked:
                await conn.executemany(
                    _UPSERT_MARK, [(s, price, self.shard, seq) for s, (price, seq) in marked.items()]
                )
            for seq, applied in projected:
                await control.project(conn, self.shard, seq, applied)
            await postings.post(conn)
            if postings.settlements:
                KILL.passing("post")  # tests only (pyservice/faults.py)
            if raised:  # a relationship settled twice in a step: its last raise
                last = {(f, p): (hwm, seq) for f, p, hwm, seq in raised}
                raises = [(f, p, hwm, seq) for (f, p), (hwm, seq) in last.items()]
                await conn.execute(_RAISE_HWM, self.shard, *map(list, zip(*raises, strict=True)))
            if shares_set or self.engine.settlement_terms()[2] != boundary:
                await self._write_terms(conn, shares_set, upto)
            taken = [*self.taken, *(p.change.id for p in early)] if early else []
            await conn.execute(
                "UPDATE projection_state SET seq = $2, at_us = $3, changes_taken = $4 WHERE shard = $1",
                self.shard,
                upto,
                self.engine.now_us,
                taken,
            )
        self.at, self.taken = upto, taken
        # the providers that traded: their records at the next refresh (a record reads all
        # of a provider's trades, so once a second, not once a step)
        self._traded.update(t.provider_id for t in traded.values())
        return True

    async def _decided_after(self, conn: asyncpg.Connection) -> list[recovery.Placed]:
        """The changes placed after `at` not taken yet, up to the first whose verdict is
        not recorded (the engine is applying it: the ones after it wait). None while a
        change of a lower id is still pending (it may yet be placed at `at` after them;
        its rows then key above theirs all the same, by `placed_n`, but the next input
        brings them all together, as before)."""
        out = []
        lowest_pending = await conn.fetchval(
            "SELECT min(id) FROM control_changes WHERE shard = $1 AND after_seq IS NULL", self.shard
        )
        for seq, change, decided in await control.placed(conn, self.shard, self.at, self.at):
            if change.id in self.taken:
                continue
            if not decided or (lowest_pending is not None and lowest_pending < change.id):
                break
            out.append(recovery.Placed(seq, change, decided))
        return out

    async def _write_terms(self, conn: asyncpg.Connection, changed: set[str], seq: int) -> None:
        """`provider_terms` as the engine holds them (in force, from the next boundary), of
        the providers a change set and, when a boundary passed, of every provider with a
        row (a pending share came into force)."""
        assert self.engine is not None
        providers = changed | {r[0] for r in await conn.fetch("SELECT provider_id FROM provider_terms")}
        rows = [(p, *map(Decimal, self.engine.profit_share(p)), seq) for p in sorted(providers)]
        await conn.executemany(_UPSERT_TERMS, rows)

    async def _recompute(self, conn: asyncpg.Connection, providers: list[str], seq: int) -> None:
        """Write these providers' records as of the engine's venue time."""
        if not providers:
            return
        assert self.engine is not None
        at = self.engine.now_us
        standings = {p: figures.Standing(n, aum, pnl) for p, n, aum, pnl in self.engine.standings()}
        their_trades = await stats.provider_trades(conn, self.shard, providers)
        rows = []
        for p in providers:
            record, rollover = figures.record_and_rollover(
                p,
                their_trades[p],
                as_of=at,
                marks=self.stats.marks,
                standing=standings.get(p, figures.Standing()),
                max_leverage=self.stats.max_leverage.get(p),
            )
            rows.append(stats.row(record, self.shard, seq, at, rollover.due_at()))
            self._rollovers[p] = rollover
            self._standing[p] = (record["followers"], record["aum"], record["copiers_pnl"], record["unrealized_pnl"])
        await conn.executemany(stats.UPSERT, rows)

    async def warm(self, conn: asyncpg.Connection, batch: int = 50) -> bool:
        """When idle: compute the records of up to `batch` providers this projector has no
        rollover for yet (after a start), so that a midnight moves every row on without
        reading trades. False when there were none."""
        if self.engine is None:
            return False
        cold = [p for p, *_ in self.engine.standings() if p not in self._rollovers][:batch]
        if cold:
            async with conn.transaction():
                await self._recompute(conn, cold, self.at)
        return bool(cold)

    async def _roll(self, conn: asyncpg.Connection, providers: list[str], seq: int) -> list[str]:
        """Move the records of these providers to the engine's venue time without reading
        their trades where no trade left a window since (`figures.roll`: a new day moves
        only volatility, Sharpe and risk); the providers that need their trades."""
        assert self.engine is not None
        at = self.engine.now_us
        rows, rest = [], []
        for p in providers:
            rolled = figures.roll(self._rollovers[p], at) if p in self._rollovers else None
            if rolled is None:
                rest.append(p)
                continue
            rollover, cls, level = rolled
            self._rollovers[p] = rollover
            rows.append(stats.rolled_row(p, seq, at, rollover.due_at(), rollover.periods, cls, level))
        if rows:
            await conn.executemany(stats.UPDATE_ROLLED, rows)
        return rest

    async def refresh(self, conn: asyncpg.Connection, sweep: int = 500, roll: int = 20_000) -> None:
        """The statistics rows (every `standings_s` from `run`): the records of the
        providers that traded since the last refresh; what moves without trading: the
        standing and open trades' value with the marks (every provider whose figures
        changed); the records time has made due, the most overdue first: up to `roll`
        moved on without their trades (a new day), up to `sweep` computed from their trades
        (a trade left a window)."""
        if self.engine is None:
            return
        unrealized: dict[str, Any] = {}
        for t in self.stats.book.open.values():
            unrealized.setdefault(t.provider_id, []).append(t)
        changed = []
        missing = []
        for p, n, aum, pnl in self.engine.standings():
            now = (n, aum, pnl, figures.rounded(figures.unrealized_pnl(unrealized.get(p, []), self.stats.marks), 8))
            if p not in self._standing:
                missing.append(p)
            elif self._standing[p] != now:
                changed.append((p, *now))
                self._standing[p] = now
        async with conn.transaction():
            if changed:
                await conn.executemany(stats.UPDATE_STANDING, changed)
            due = [
                r[0]
                for r in await conn.fetch(
                    "SELECT provider_id FROM provider_statistics WHERE shard = $1 AND due_at <= $2 "
                    "ORDER BY due_at LIMIT $3",
                    self.shard,
                    self.engine.now_us,
                    roll,
                )
            ]
            full = await self._roll(conn, due, self.at)
            traded, self._traded = self._traded, set()
            await self._recompute(conn, sorted(traded | set(missing) | set(full[:sweep])), self.at)

    def _now(self) -> int:
        assert self.engine is not None
        return self.engine.now_us

    def _portfolios(self) -> dict[ledger.Rel, dict[str, Any]]:
        assert self.engine is not None
        return ledger.portfolios(self.engine.portfolios_jsonl())

    async def _post_change(
        self,
        conn: asyncpg.Connection,
        postings: ledger.Postings,
        point: ledger.Point,
        change: dict[str, Any],
        records: list[dict[str, Any]],
        ended: list[str],
    ) -> None:
        """The ledger postings of an applied control change (`records`: its settlements;
        `ended`: the relationships it ended, an unfollow with nothing working)."""
        kind = change["type"]
        f, p = change.get("follower", ""), change.get("provider", "")
        if kind == "follow":
            postings.transfer(point, "follow", f, p, Decimal(change["allocation"]))
        elif kind in ("deposit", "withdraw"):
            amount = Decimal(change["amount"])
            postings.transfer(point, kind, f, p, amount if kind == "deposit" else -amount)
        await self._post_outcome(conn, postings, point, records, ended)

    async def _post_outcome(
        self,
        conn: asyncpg.Connection,
        postings: ledger.Postings,
        point: ledger.Point,
        records: list[dict[str, Any]],
        ended: list[str],
    ) -> None:
        """The settlements of one input or change, then the relationships it ended: each
        one's `unfollow` charge, its realized PnL up to its end (the state it ended with,
        `Outcome.ended`), then what is left goes home. One whose account has its `unfollow`
        since its last follow already (an older engine ended it at the unfollow; this one,
        replaying from the books, at its closes' report) posts nothing again."""
        periodic = [r for r in records if r["period"] != "unfollow"]
        if periodic:
            await self._post_settlements(conn, postings, point, periodic)
        ending = {(r["follower"], r["provider"]) for r in records if r["period"] == "unfollow"}
        ending |= {(v["follower"], v["provider"]) for v in map(json.loads, ended)}
        done = {rel for rel in ending if await _ended(conn, postings, rel)}
        for record in records:
            if record["period"] == "unfollow" and (record["follower"], record["provider"]) not in done:
                postings.settlement(point, record)
        for line in ended:
            last = json.loads(line)
            rel = (last["follower"], last["provider"])
            if rel in done:
                log.warning(
                    "ended already in the ledger: not posted again", extra={"follower": rel[0], "provider": rel[1]}
                )
                continue
            now = ledger.figures(last, self.stats.kinds)
            postings.pnl(point, *rel, now, (await postings.balances(conn, [rel]))[rel])
            left = (await postings.balances(conn, [rel]))[rel]
            postings.transfer(point, "unfollow", *rel, -left)

    async def _post_settlements(
        self, conn: asyncpg.Connection, postings: ledger.Postings, point: ledger.Point, records: list[dict[str, Any]]
    ) -> None:
        """Each record's charge, then the realized PnL of each settled relationship."""
        for record in records:
            postings.settlement(point, record)
        rels = list(dict.fromkeys((r["follower"], r["provider"]) for r in records))
        book = self._portfolios()
        balances = await postings.balances(conn, rels)
        for rel in rels:
            if rel in book:
                postings.pnl(point, *rel, ledger.figures(book[rel], self.stats.kinds), balances[rel])

    def _input(self, seq: int, payload: bytes) -> tuple[P.NativeVenueMessage, Outcome]:
        assert self.engine is not None
        msg = self.reader.decode(payload)
        return msg, apply_venue_message(self.engine, msg)

    def _control(self, seq: int, change: control.Change) -> Outcome:
        assert self.engine is not None
        return control.apply(self.engine, seq, change)


def settlements_of(outcome: Outcome) -> list[dict[str, Any]]:
    """The settlement records of an input or a control change (issue #15's record, without
    `event` and `kind`)."""
    return list(outcome.settlements)  # fresh dicts, made by the binding when asked


async def _ended(conn: asyncpg.Connection, postings: ledger.Postings, rel: ledger.Rel) -> bool:
    """Whether the relationship's account has its `unfollow` since its last `open` or
    `follow`: in this step's postings, else in the ledger."""
    for t in reversed(postings.txns):
        if t.rel == rel and t.kind in ("open", "follow", "unfollow"):
            return t.kind == "unfollow"
    last = await conn.fetchval(
        "SELECT kind FROM ledger_transactions WHERE follower_id = $1 AND provider_id = $2 "
        "AND kind IN ('open', 'follow', 'unfollow') ORDER BY id DESC LIMIT 1",
        *rel,
    )
    return bool(last == "unfollow")


def _raised(records: list[dict[str, Any]], seq: int) -> list[tuple[str, str, Decimal, int]]:
    """The high watermarks that charged settlements raised to the equity they charged on
    (an unfollow's ends with its relationship)."""
    return [
        (r["follower"], r["provider"], Decimal(r["equity"]), seq)
        for r in records
        if r["status"] == "charged" and r["period"] != "unfollow"
    ]


_UPSERT_TERMS = (
    "INSERT INTO provider_terms (provider_id, profit_share_pct, next_profit_share_pct, seq) VALUES ($1, $2, $3, $4) "
    "ON CONFLICT (provider_id) DO UPDATE SET profit_share_pct = EXCLUDED.profit_share_pct, "
    "next_profit_share_pct = EXCLUDED.next_profit_share_pct, seq = EXCLUDED.seq"
)
#: one statement for all of a step's (a settlement raises 100,000s)
_RAISE_HWM = (
    "UPDATE high_watermarks h SET hwm = r.hwm, reason = 'settlement', shard = $1, seq = r.seq, updated_at = now() "
    "FROM unnest($2::text[], $3::text[], $4::numeric[], $5::bigint[]) AS r (f, p, hwm, seq) "
    "WHERE h.follower_id = r.f AND h.provider_id = r.p"
)
_UPSERT_INSTRUMENT = (
    "INSERT INTO instruments (symbol, kind, tick, step, min_qty, min_notional, shard, seq) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (symbol) DO UPDATE SET kind = EXCLUDED.kind, "
    "tick = EXCLUDED.tick, step = EXCLUDED.step, min_qty = EXCLUDED.min_qty, "
    "min_notional = EXCLUDED.min_notional, shard = EXCLUDED.shard, seq = EXCLUDED.seq"
)
_UPSERT_MARK = (
    "INSERT INTO marks (symbol, price, shard, seq) VALUES ($1, $2, $3, $4) "
    "ON CONFLICT (symbol) DO UPDATE SET price = EXCLUDED.price, shard = EXCLUDED.shard, seq = EXCLUDED.seq"
)
_UPSERT_TRADE = (
    f"INSERT INTO provider_trades (shard, {', '.join(trades.COLUMNS)}) "
    f"VALUES ({', '.join(f'${i}' for i in range(1, len(trades.COLUMNS) + 2))}) "
    "ON CONFLICT (shard, provider_id, symbol, opened_seq) DO UPDATE SET "
    + ", ".join(f"{c} = EXCLUDED.{c}" for c in trades.COLUMNS if c not in ("provider_id", "symbol", "opened_seq"))
)


_COLUMNS = {
    "copy_orders": [
        "shard",
        "client_order_id",
        "seq",
        "follower_id",
        "provider_id",
        "symbol",
        "side",
        "type",
        "qty",
        "price",
        "reduce_only",
        "leverage",
        "change_id",
        "n",
    ],
    "copy_fills": ["shard", "seq", "n", "client_order_id", "qty", "price"],
    "copy_rejects": ["shard", "seq", "n", "client_order_id", "reason"],
}


async def _each(placed: list[recovery.Placed]) -> AsyncGenerator[recovery.Input | recovery.Placed, None]:
    """Changes taken while the watermark waits, as a walk of `recovery.history`."""
    for p in placed:
        yield p


class _Chunks:
    """COPY's source: the row chunks as one async iterable (asyncpg streams it)."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._gen()

    async def _gen(self) -> AsyncIterator[bytes]:
        for c in self.chunks:
            yield c


def main(argv: list[str] | None = None) -> int:
    """`python -m pyservice.store.projector`: the engine runs this as a child process."""

    def add_arguments(p: argparse.ArgumentParser) -> None:
        p.add_argument("--snapshot-interval", type=float, default=30.0, help="seconds between engine snapshots")

    def work(args: argparse.Namespace) -> Coroutine[Any, Any, None]:
        return Projector(args.database, args.shard, snapshot_s=args.snapshot_interval).run()

    return run_worker(__doc__, argv, add_arguments, work)


if __name__ == "__main__":
    import sys

    sys.exit(main())

"""Provider statistics at scale (issue #14, "Live, in PostgreSQL", Scale): with 10,000
providers, 1,000,000 closed trades and 100,000 relationships, how far behind its input a
provider's `provider_statistics` row is, and what reading the leaderboard costs.

    .venv/bin/python benches/statistics_scale.py [--providers 10000 --trades 1000000
        --relationships 100000 --database URL --json PATH]

Without `--database` (or DATABASE_URL) it creates a scratch database on
postgresql://postgres@127.0.0.1:5432 and drops it at the end; a given database must be
empty (the bench migrates it).

1. Build (COPY): the books (providers, followers, relationships) through `seed_books`;
   the closed `provider_trades` over the 120 days before "now" (returns of a few percent,
   exact decimals); every provider's `provider_statistics` row from `figures.record` (the
   time of that loop is a full recomputation, e.g. a sweep at a UTC midnight); instruments,
   marks, high watermarks; and an engine snapshot at the end of that history with the
   watermark and `projection_state` on it, so a projector starts there (the journal of the
   history itself is not kept: the trades' rows stand for it).
2. Freshness: a projector runs as a child process (as under the engine, polling every
   50 ms, refreshing standings every second). Rounds of N random providers: executions
   that open a trade (with the copies' fills), a mark that moves their followers' equity,
   executions that close the trades, each committed as the engine commits (journal rows and
   the watermark in one transaction). Timed from the commit until each affected row shows
   the change (polled every 2 ms), and the projector's own step and refresh durations.
3. The projector's sweep of rows that time made due (all of them at a UTC midnight).
4. The leaderboard: the rows of every provider in one query; filtered; pages of 50; and
   the naive query the issue warns about (sums over trades joined with relationships,
   at read) as the baseline of the same run.

Venue time: `venue_time(seq)` below is the one place that says when an input happened;
`Venue` stamps each message's `ts` with it, so the engine's clock (and the projector's
copy of it) says the same.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import itertools
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import asyncpg

from pyservice import protocol as P
from pyservice._engine_core import LiveEngine
from pyservice.dispatch import apply_venue_message
from pyservice.runtime import tune_gc
from pyservice.statistics import figures, trades
from pyservice.store import projector
from pyservice.store import statistics as stats
from pyservice.store.books import seed_books
from pyservice.store.journal import ensure_shard
from pyservice.store.migrate import migrate
from pyservice.venue_time import DAY_US

SHARD = "main"
#: "now" of the built history: noon UTC, so the freshness inputs (a second apart) stay in
#: one day and the midnight sweep is measured on its own (phase 3)
NOW_US = 20_600 * DAY_US + DAY_US // 2  # 2026-05-28T12:00:00Z
HISTORY_DAYS = 120
INPUT_STEP_US = 1_000_000
#: (symbol, kind, first price in cents)
INSTRUMENTS = [
    ("BTC", "spot", 6_000_000),
    ("ETH", "spot", 300_000),
    ("SOL", "spot", 15_000),
    ("BTC-PERP", "perp", 6_000_000),
    ("ETH-PERP", "perp", 300_000),
    ("SOL-PERP", "perp", 15_000),
]
KIND = {s: k for s, k, _ in INSTRUMENTS}
LEADERBOARD = (
    "SELECT provider_id, roi_30d, pnl_30d, max_drawdown_30d, win_rate_30d, sharpe_30d, followers, aum, "
    "copiers_pnl, risk_level, strategy FROM provider_statistics"
)
#: the same rows with the decimals as text, as an API serves them (no Decimal per value
#: decoded); sorted by the numeric column
LEADERBOARD_TEXT = (
    "SELECT provider_id, roi_30d::text AS roi, pnl_30d::text AS pnl, max_drawdown_30d::text AS drawdown, "
    "win_rate_30d::text AS win_rate, sharpe_30d, followers, aum::text AS aum_text, copiers_pnl::text AS copiers, "
    "risk_level, strategy FROM provider_statistics"
)
#: the same rows as one JSON array built by the server (what an API sends as it is)
LEADERBOARD_JSON = (
    "SELECT json_agg(json_build_array(provider_id, roi_30d::text, pnl_30d::text, max_drawdown_30d::text, "
    "win_rate_30d::text, sharpe_30d, followers, aum::text, copiers_pnl::text, risk_level, strategy) "
    "ORDER BY roi_30d DESC)::text FROM provider_statistics"
)
NAIVE = (
    "SELECT t.provider_id, sum(t.pnl / t.equity_at_open) AS roi_30d, sum(t.pnl) AS pnl_30d, "
    "avg((t.pnl > 0)::int) AS win_rate_30d, count(r.follower_id) AS followers, "
    "sum((r.follow ->> 'allocation')::numeric) AS aum "
    "FROM provider_trades t JOIN relationships r ON r.provider_id = t.provider_id "
    "WHERE t.closed_at > $1 GROUP BY t.provider_id ORDER BY roi_30d DESC"
)


def venue_time(seq: int, base_seq: int) -> int:
    """When input `seq` happened: one second apart after the history's last input."""
    return NOW_US + (seq - base_seq) * INPUT_STEP_US


@dataclass
class Config:
    providers: int = 10_000
    trades: int = 1_000_000
    relationships: int = 100_000
    rounds: int = 20
    per_round: int = 10
    repetitions: int = 200
    seed: int = 14


@dataclass
class Built:
    providers: list[str]
    #: the seq of the engine snapshot the history ends at (the watermark)
    base_seq: int
    timings: dict[str, float] = field(default_factory=dict)


# -- 1. the data ---------------------------------------------------------------------------


def _books(cfg: Config, rnd: random.Random) -> tuple[list[str], str]:
    """Providers, and followers who follow 5 providers each (popular providers more:
    weights 1/rank^0.8), allocations from 100 to 50,000."""
    providers = [f"p{i:05d}" for i in range(cfg.providers)]
    cum = list(itertools.accumulate(1 / (i + 1) ** 0.8 for i in range(cfg.providers)))
    per = min(5, cfg.providers)
    follows: list[dict[str, str]] = []
    j = 0
    while len(follows) < cfg.relationships:
        chosen: set[str] = set()
        while len(chosen) < min(per, cfg.relationships - len(follows)):
            chosen.add(rnd.choices(providers, cum_weights=cum)[0])
        for p in sorted(chosen):
            allocation = rnd.choice([100, 250, 500, 1000, 2500, 5000, 10000, 50000])
            follows.append({"follower": f"f{j:06d}", "provider": p, "allocation": str(allocation)})
        j += 1
    return providers, json.dumps({"version": 1, "providers": [{"id": p} for p in providers], "follows": follows})


def _spread(total: int, n: int, rnd: random.Random) -> list[int]:
    """`total` split over n parts, lognormal sizes, at least 1 each when total ≥ n."""
    w = [rnd.lognormvariate(0, 0.6) for _ in range(n)]
    s = sum(w)
    least = 1 if total >= n else 0
    parts = [max(least, int(total * x / s)) for x in w]
    missing, i = total - sum(parts), 0
    while missing:
        step = 1 if missing > 0 else -1
        if parts[i % n] + step >= least:
            parts[i % n] += step
            missing -= step
        i += 1
    return parts


def _dec(units: int, places: int) -> Decimal:
    return Decimal(units).scaleb(-places)


def provider_history(provider: str, n: int, first_seq: int, rnd: random.Random) -> list[trades.Trade]:
    """n closed trades of one provider over the history, in closing order: each risks a
    fraction of the equity (leverage 2–10 on perps) on a price move of about ±1 %; the
    equity moves by each pnl. Exact: prices in cents, quantities in thousandths."""
    symbols = rnd.choice([["BTC", "ETH"], ["BTC-PERP", "ETH-PERP", "SOL-PERP"], [s for s, _, _ in INSTRUMENTS]])
    equity = _dec(rnd.randrange(100_000, 10_000_000), 2)  # 1,000 .. 100,000
    closes = sorted(rnd.randrange(NOW_US - HISTORY_DAYS * DAY_US, NOW_US) for _ in range(n))
    out = []
    for k, closed_at in enumerate(closes):
        symbol = rnd.choice(symbols)
        base = next(c for s, _, c in INSTRUMENTS if s == symbol)
        leverage = rnd.randrange(2, 11) if KIND[symbol] == "perp" else 1
        entry = int(base * rnd.uniform(0.8, 1.2))
        exit_ = max(1, int(entry * (1 + rnd.gauss(0.0005, 0.01))))
        qty = max(1, int(equity * leverage * Decimal(rnd.uniform(0.05, 0.3)) * 100_000 / entry))
        entry_notional, exit_notional = _dec(qty * entry, 5), _dec(qty * exit_, 5)
        side = rnd.choice(["long", "short"])
        pnl = exit_notional - entry_notional if side == "long" else entry_notional - exit_notional
        seq = first_seq + 2 * k
        opened_at = max(closed_at - rnd.randrange(60, 2 * 86_400) * 1_000_000, NOW_US - (HISTORY_DAYS + 2) * DAY_US)
        out.append(
            trades.Trade(
                provider,
                symbol,
                seq,
                f"{provider}-o{k}",
                side,
                leverage,
                equity,
                qty=Decimal(0),
                max_qty=_dec(qty, 3),
                entry_qty=_dec(qty, 3),
                entry_notional=entry_notional,
                kind=KIND[symbol],
                opened_at=opened_at,
                exit_qty=_dec(qty, 3),
                exit_notional=exit_notional,
                executions=2,
                closed_seq=seq + 1,
                closed_exec_id=f"{provider}-c{k}",
                closed_at=closed_at,
                pnl=pnl,
            )
        )
        if equity + pnl > 100:  # a provider who blew up deposits again
            equity += pnl
    return out


async def _copy(conn: asyncpg.Connection, table: str, rows: list[tuple[Any, ...]], columns: list[str]) -> None:
    await conn.copy_records_to_table(table, records=rows, columns=columns)


async def build(conn: asyncpg.Connection, cfg: Config, log: Callable[[str], None] = print) -> Built:
    rnd = random.Random(cfg.seed)
    timings: dict[str, float] = {}
    await migrate(conn)
    await ensure_shard(conn, SHARD)

    started = time.perf_counter()
    providers, books = _books(cfg, rnd)
    t = time.perf_counter()
    await seed_books(conn, books)
    timings["seed_books_s"] = time.perf_counter() - t
    log(f"books: {len(providers):,} providers, {cfg.relationships:,} follows seeded in {timings['seed_books_s']:.2f} s")

    # the engine at the end of the history: the books, the instruments and their marks
    engine = LiveEngine.from_books(books)
    sizes = _spread(cfg.trades, len(providers), rnd)
    history_seqs = 2 * cfg.trades
    seq = history_seqs
    marks: dict[str, Decimal] = {}
    for symbol, kind, cents in INSTRUMENTS:
        seq += 1
        engine.instrument(seq, symbol, kind, "0.01", "0.001", "0", "0")
        marks[symbol] = _dec(cents, 2)
        seq += 1
        engine.mark(seq, symbol, str(marks[symbol]))
    base_seq = seq
    await _copy(
        conn,
        "instruments",
        [
            (s, k, Decimal("0.01"), Decimal("0.001"), Decimal(0), Decimal(0), SHARD, history_seqs)
            for s, k, _ in INSTRUMENTS
        ],
        ["symbol", "kind", "tick", "step", "min_qty", "min_notional", "shard", "seq"],
    )
    await _copy(conn, "marks", [(s, p, SHARD, base_seq) for s, p in marks.items()], ["symbol", "price", "shard", "seq"])
    portfolios = [json.loads(x) for x in engine.portfolios_jsonl().splitlines()]
    await _copy(
        conn,
        "high_watermarks",
        [(p["follower"], p["provider"], Decimal(p["base"]), "follow", SHARD, base_seq) for p in portfolios],
        ["follower_id", "provider_id", "hwm", "reason", "shard", "seq"],
    )

    # trades and records, provider by provider (the trades of one provider at a time in memory)
    standings = {p: figures.Standing(n, aum, pnl) for p, n, aum, pnl in engine.standings()}
    record_s = generate_s = copy_s = 0.0
    trade_rows: list[tuple[Any, ...]] = []
    stat_rows: list[tuple[Any, ...]] = []
    first_seq = 1
    for p, n in zip(providers, sizes, strict=True):
        t = time.perf_counter()
        mine = provider_history(p, n, first_seq, rnd)
        first_seq += 2 * n
        t2 = time.perf_counter()
        record, rollover = figures.record_and_rollover(
            p,
            mine,
            as_of=NOW_US,
            marks=marks,
            standing=standings[p],
            max_leverage=max((x.leverage for x in mine), default=None),
        )
        stat_rows.append(stats.row(record, SHARD, base_seq, NOW_US, rollover.due_at()))
        t3 = time.perf_counter()
        generate_s += t2 - t
        record_s += t3 - t2
        trade_rows.extend(trades.row(SHARD, x) for x in mine)
        if len(trade_rows) >= 100_000:
            t = time.perf_counter()
            await _copy(conn, "provider_trades", trade_rows, ["shard", *trades.COLUMNS])
            copy_s += time.perf_counter() - t
            trade_rows = []
    t = time.perf_counter()
    await _copy(conn, "provider_trades", trade_rows, ["shard", *trades.COLUMNS])
    await _copy(conn, "provider_statistics", stat_rows, stats.ROW_COLUMNS)
    copy_s += time.perf_counter() - t
    timings |= {"generate_trades_s": generate_s, "copy_s": copy_s, "full_recompute_s": record_s}
    log(
        f"trades: {cfg.trades:,} generated in {generate_s:.1f} s; COPY of trades and rows {copy_s:.1f} s; "
        f"figures.record of all {len(providers):,} providers {record_s:.1f} s "
        f"({record_s / len(providers) * 1000:.2f} ms each)"
    )

    # where the projector starts: a snapshot at the end of the history, the watermark on it
    await conn.execute(
        "INSERT INTO engine_snapshots (shard, seq, state) VALUES ($1, $2, $3)", SHARD, base_seq, engine.snapshot()
    )
    await conn.execute("UPDATE engine_state SET watermark = $2 WHERE shard = $1", SHARD, base_seq)
    await conn.execute("INSERT INTO projection_state (shard, seq, at_us) VALUES ($1, $2, $3)", SHARD, base_seq, NOW_US)
    await conn.execute("ANALYZE")
    timings["build_s"] = time.perf_counter() - started
    log(f"built in {timings['build_s']:.1f} s")
    return Built(providers, base_seq, timings)


# -- 2. the projector, on the bench's venue time -------------------------------------------


class BenchProjector(projector.Projector):
    """The projector with the bench's clock; reports each step's and refresh's duration."""

    def __init__(self, dsn: str, base_seq: int, report: Callable[[str, float, int], None] | None = None) -> None:
        super().__init__(dsn)
        self.base_seq, self.report = base_seq, report

    async def step(self, conn: asyncpg.Connection) -> bool:
        t = time.perf_counter()
        moved = await super().step(conn)
        if moved and self.report:
            self.report("step", time.perf_counter() - t, self.at)
        return moved

    async def refresh(self, conn: asyncpg.Connection, sweep: int = 500, roll: int = 20_000) -> None:
        t = time.perf_counter()
        await super().refresh(conn, sweep, roll)
        if self.report:
            self.report("refresh", time.perf_counter() - t, self.at)

    async def warm(self, conn: asyncpg.Connection, batch: int = 50) -> bool:
        if not hasattr(self, "_warm_from"):
            self._warm_from: float | None = time.perf_counter()
        more = await super().warm(conn, batch)
        if not more and self._warm_from is not None and self.report:
            self.report("warm", time.perf_counter() - self._warm_from, self.at)
            self._warm_from = None
        return more


def _projector_child(dsn: str, base_seq: int, report_path: str) -> None:
    """The projector process (`--projector`): one line per step and refresh in the file."""
    with open(report_path, "a", encoding="utf-8") as out:

        def report(kind: str, seconds: float, at: int) -> None:
            out.write(f"{kind} {seconds} {at}\n")
            out.flush()

        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(BenchProjector(dsn, base_seq, report).run())


class Venue:
    """The engine's side of the journal: applies each input to its own engine (the state
    the projector rebuilds from the same snapshot), fills every copy order in full, and
    commits the inputs with the watermark."""

    def __init__(self, conn: asyncpg.Connection, engine: LiveEngine, seq: int) -> None:
        self.conn, self.engine, self.seq = conn, engine, seq
        self.base_seq = seq
        self.reader = P.engine_reader()

    def _add(self, rows: list[tuple[Any, ...]], msg: P.VenueMessage, at: int | None = None) -> list[P.NewOrder]:
        self.seq += 1
        fields = {f: getattr(msg, f) for f in msg.__struct_fields__}
        ts = venue_time(self.seq, self.base_seq) if at is None else at
        msg = msg.__class__(**{**fields, "seq": self.seq, "ts": ts})
        rows.append((SHARD, self.seq, msg.__struct_config__.tag, P.encode(msg)[4:]))
        out = apply_venue_message(self.engine, msg)
        assert not out.errors, out.errors
        return [o for m in self.reader.feed(out.frame or b"") for o in m.orders]

    async def commit(self, messages: list[P.VenueMessage], at: int | None = None) -> float:
        """Journal the messages (each execution followed by its copies' fills; at venue
        time `at`, else `venue_time`) and move the watermark, in one transaction; the wall
        time of the commit."""
        rows: list[tuple[Any, ...]] = []
        for msg in messages:
            orders = self._add(rows, msg, at)
            if orders:
                price = msg.price  # type: ignore[attr-defined]
                self._add(rows, P.CopyFills(0, 0, [P.Fill(o.client_order_id, o.qty, price) for o in orders]))
        async with self.conn.transaction():
            await self.conn.copy_records_to_table(
                "engine_inputs", records=rows, columns=["shard", "seq", "kind", "payload"]
            )
            await self.conn.execute("UPDATE engine_state SET watermark = $2 WHERE shard = $1", SHARD, self.seq)
        return time.perf_counter()


async def _wait(
    conn: asyncpg.Connection, committed: float, sql: str, want: dict[str, Any], timeout: float = 60.0
) -> list[float]:
    """Poll until each provider's value (`sql` over `$1::text[]` → (id, value)) equals `want`;
    the seconds from `committed` to the first sight of each."""
    seen: dict[str, float] = {}
    while len(seen) < len(want):
        rows = await conn.fetch(sql, [p for p in want if p not in seen])
        now = time.perf_counter()
        for p, v in rows:
            if v == want[p]:
                seen[p] = now - committed
        if now - committed > timeout:
            raise TimeoutError(f"{len(want) - len(seen)} rows not current after {timeout} s")
        await asyncio.sleep(0.002)
    return list(seen.values())


async def freshness(
    conn: asyncpg.Connection, dsn: str, cfg: Config, built: Built, log: Callable[[str], None] = print
) -> dict[str, Any]:
    state = await conn.fetchval(
        "SELECT state FROM engine_snapshots WHERE shard = $1 AND seq = $2", SHARD, built.base_seq
    )
    venue = Venue(conn, LiveEngine.restore(state), built.base_seq)
    with tempfile.NamedTemporaryFile(prefix="statistics_scale_", suffix=".txt", delete=False) as f:
        report_path = f.name
    child = subprocess.Popen(
        [sys.executable, __file__, "--projector", dsn, "--base-seq", str(built.base_seq), "--report", report_path]
    )
    started = time.perf_counter()
    rnd = random.Random(cfg.seed + 1)
    latency: dict[str, list[float]] = {"open": [], "close": [], "mark_aum": []}
    try:
        # a first input, to learn when the projector is running
        await _wait(
            conn,
            await venue.commit([P.MarkPrice(0, 0, "SOL", "150")]),
            "SELECT shard, seq FROM projection_state WHERE shard = ANY($1::text[])",
            {SHARD: venue.seq},
            timeout=600,
        )
        log(f"projector running after {time.perf_counter() - started:.1f} s")
        # a projector that has run a while holds every provider's rollover: measure that one
        deadline = time.perf_counter() + 600
        while not any(line.startswith("warm ") for line in open(report_path, encoding="utf-8")):
            if time.perf_counter() > deadline:
                raise TimeoutError("the projector did not warm up within 600 s")
            await asyncio.sleep(0.2)
        log(f"projector warm after {time.perf_counter() - started:.1f} s")
        before = {
            r[0]: (r[1], r[2])
            for r in await conn.fetch("SELECT provider_id, trades_all, open_trades FROM provider_statistics")
        }
        followed = [r[0] for r in await conn.fetch("SELECT provider_id FROM provider_statistics WHERE followers > 0")]
        price = {"BTC": 6_000_000}
        for i in range(cfg.rounds):
            chosen = rnd.sample(followed, min(cfg.per_round, len(followed)))
            entry = price["BTC"] = int(price["BTC"] * rnd.uniform(0.99, 1.01))
            opens = [
                P.ProviderExecution(0, 0, p, f"{p}-bench{i}o", "BTC", "buy", "0.1", str(_dec(entry, 2)), "10000")
                for p in chosen
            ]
            latency["open"] += await _wait(
                conn,
                await venue.commit(opens),
                "SELECT provider_id, open_trades FROM provider_statistics WHERE provider_id = ANY($1::text[])",
                {p: before[p][1] + 1 for p in chosen},
            )
            aum = {
                r[0]: r[1]
                for r in await conn.fetch(
                    "SELECT provider_id, aum FROM provider_statistics WHERE provider_id = ANY($1::text[])", chosen
                )
            }
            # the engine's aum after the mark: what the rows must come to show
            marked = price["BTC"] = int(entry * rnd.choice([0.97, 0.98, 1.02, 1.03]))
            committed = await venue.commit([P.MarkPrice(0, 0, "BTC", str(_dec(marked, 2)))])
            want = {p: Decimal(a) for p, _, a, _ in venue.engine.standings() if p in aum and Decimal(a) != aum[p]}
            latency["mark_aum"] += await _wait(
                conn,
                committed,
                "SELECT provider_id, aum FROM provider_statistics WHERE provider_id = ANY($1::text[])",
                want,
            )
            exit_ = price["BTC"] = int(marked * rnd.uniform(0.99, 1.01))
            closes = [
                P.ProviderExecution(0, 0, p, f"{p}-bench{i}c", "BTC", "sell", "0.1", str(_dec(exit_, 2)), "10000")
                for p in chosen
            ]
            latency["close"] += await _wait(
                conn,
                await venue.commit(closes),
                "SELECT provider_id, trades_all FROM provider_statistics WHERE provider_id = ANY($1::text[])",
                {p: before[p][0] + 1 for p in chosen},
            )
            for p in chosen:
                before[p] = (before[p][0] + 1, before[p][1])
    finally:
        child.send_signal(signal.SIGINT)
        try:
            child.wait(10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    steps: dict[str, list[float]] = {"step": [], "refresh": [], "warm": []}
    with open(report_path, encoding="utf-8") as f:
        for line in f:
            kind, seconds, _ = line.split()
            steps[kind].append(float(seconds))
    os.unlink(report_path)
    return {
        "open_s": latency["open"],
        "close_s": latency["close"],
        "mark_aum_s": latency["mark_aum"],
        "step_s": steps["step"],
        "refresh_s": steps["refresh"],
        "venue": venue,
    }


async def sweep(conn: asyncpg.Connection, dsn: str, built: Built, venue: Venue, rows: int) -> dict[str, float]:
    """Time alone changing the rows: first the closed trades leaving their windows until a
    second before the next UTC midnight (spread over the day in a running system; here
    all at once, in refreshes of `rows` records computed from trades), then the midnight,
    when every row with trades is due at once: one refresh, timed."""
    p = BenchProjector(dsn, built.base_seq)
    pconn = await asyncpg.connect(dsn)
    due_sql = "SELECT count(*) FROM provider_statistics WHERE due_at <= $1"
    try:
        await p.start(pconn)
        while await p.step(pconn):
            pass
        t = time.perf_counter()
        while await p.warm(pconn):  # a running projector has every provider's rollover
            pass
        warm_s = time.perf_counter() - t
        assert p.engine is not None
        midnight = (p.engine.now_us // DAY_US + 1) * DAY_US
        await venue.commit([P.MarkPrice(0, 0, "SOL", "152")], at=midnight - 1_000_000)
        while await p.step(pconn):
            pass
        edges = await conn.fetchval(due_sql, midnight - 1_000_000)
        t = time.perf_counter()
        while await conn.fetchval(due_sql, midnight - 1_000_000):
            await p.refresh(pconn, sweep=rows)
        edges_s = time.perf_counter() - t
        # a mark at midnight: the input whose time makes every row with trades due
        await venue.commit([P.MarkPrice(0, 0, "SOL", "151")], at=midnight)
        while await p.step(pconn):
            pass
        due = await conn.fetchval(due_sql, midnight)
        t = time.perf_counter()
        await p.refresh(pconn, sweep=rows)
        seconds = time.perf_counter() - t
        done = await conn.fetchval("SELECT count(*) FROM provider_statistics WHERE as_of = $1", midnight)
        left = await conn.fetchval(due_sql, midnight)
    finally:
        await pconn.close()
    return {
        "due": due,
        "rows": done,
        "left": left,
        "seconds": seconds,
        "warm_s": warm_s,
        "edges": edges,
        "edges_s": edges_s,
    }


# -- 4. the leaderboard --------------------------------------------------------------------


async def _timed(conn: asyncpg.Connection, repetitions: int, sql: str, *args: Any) -> tuple[list[float], int]:
    await conn.fetch(sql, *args)  # warm
    out = []
    n = 0
    for _ in range(repetitions):
        t = time.perf_counter()
        n = len(await conn.fetch(sql, *args))
        out.append(time.perf_counter() - t)
    return out, n


async def leaderboard(conn: asyncpg.Connection, cfg: Config) -> dict[str, Any]:
    # the reader tuned as the package's processes are (`runtime.tune_gc`): 10,000 rows are
    # 110,000 objects, and the default gen-0 threshold would collect dozens of times a read
    before = gc.get_threshold()
    tune_gc()
    try:
        return await _leaderboard(conn, cfg)
    finally:  # the small test runs this inside pytest
        gc.unfreeze()
        gc.set_threshold(*before)


async def _leaderboard(conn: asyncpg.Connection, cfg: Config) -> dict[str, Any]:
    res: dict[str, Any] = {}
    res["all"] = await _timed(conn, cfg.repetitions, LEADERBOARD + " ORDER BY roi_30d DESC")
    res["all_text"] = await _timed(conn, cfg.repetitions, LEADERBOARD_TEXT + " ORDER BY roi_30d DESC")
    times, _ = await _timed(conn, cfg.repetitions, LEADERBOARD_JSON)
    res["all_json"] = (times, len(json.loads(await conn.fetchval(LEADERBOARD_JSON))))
    res["filtered"] = await _timed(
        conn,
        cfg.repetitions,
        LEADERBOARD + " WHERE followers >= 5 AND max_drawdown_30d <= 0.3 ORDER BY roi_30d DESC",
    )
    # pages of 50, keyset: every page of the whole board, each page timed
    pages: list[float] = []
    for _ in range(max(1, cfg.repetitions // 50)):
        after: tuple[Any, Any] | None = None
        while True:
            t = time.perf_counter()
            if after is None:
                rows = await conn.fetch(LEADERBOARD + " ORDER BY roi_30d DESC, provider_id DESC LIMIT 50")
            else:
                rows = await conn.fetch(
                    LEADERBOARD + " WHERE (roi_30d, provider_id) < ($1, $2) ORDER BY roi_30d DESC, provider_id DESC "
                    "LIMIT 50",
                    *after,
                )
            pages.append(time.perf_counter() - t)
            if len(rows) < 50:
                break
            after = (rows[-1]["roi_30d"], rows[-1]["provider_id"])
    res["page50"] = (pages, 50)
    res["naive"] = await _timed(conn, 3, NAIVE, NOW_US - 30 * DAY_US)
    # the table as autovacuum keeps it: the warm-up and the midnight left a dead version
    # of every row behind them (the measures above read through those)
    await conn.execute("VACUUM ANALYZE provider_statistics")
    res["all_vacuumed"] = await _timed(conn, cfg.repetitions, LEADERBOARD + " ORDER BY roi_30d DESC")
    res["all_text_vacuumed"] = await _timed(conn, cfg.repetitions, LEADERBOARD_TEXT + " ORDER BY roi_30d DESC")
    return res


# -- the run -------------------------------------------------------------------------------


def _pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))] if s else float("nan")


def _summary(xs: list[float]) -> dict[str, float]:
    return {"n": len(xs), "p50": _pct(xs, 0.5), "p99": _pct(xs, 0.99), "max": max(xs, default=float("nan"))}


async def run(cfg: Config, dsn: str, log: Callable[[str], None] = print) -> dict[str, Any]:
    conn = await asyncpg.connect(dsn)
    try:
        built = await build(conn, cfg, log)
        fresh = await freshness(conn, dsn, cfg, built, log)
        venue = fresh.pop("venue")
        swept = await sweep(conn, dsn, built, venue, rows=500)
        board = await leaderboard(conn, cfg)
    finally:
        await conn.close()
    result: dict[str, Any] = {
        "config": vars(cfg),
        "build": built.timings,
        "freshness": {k: _summary(v) for k, v in fresh.items()},
        "sweep": swept,
        "leaderboard": {k: {**_summary(v[0]), "rows": v[1]} for k, v in board.items()},
    }
    base = result["leaderboard"]
    result["leaderboard"]["naive_over_all_p50"] = base["naive"]["p50"] / base["all"]["p50"]
    return result


def print_table(r: dict[str, Any]) -> None:
    c, b = r["config"], r["build"]
    print()
    print(f"{c['providers']:,} providers, {c['trades']:,} closed trades, {c['relationships']:,} relationships")
    print(
        f"build {b['build_s']:.1f} s: seed_books {b['seed_books_s']:.2f} s, trades generated {b['generate_trades_s']:.1f} s, "
        f"COPY {b['copy_s']:.1f} s"
    )
    print(
        f"full recomputation (figures.record of every provider): {b['full_recompute_s']:.1f} s "
        f"({b['full_recompute_s'] / c['providers'] * 1000:.2f} ms per provider)"
    )
    s = r["sweep"]
    print(
        f"projector at midnight: {s['rows']:,} of {s['due']:,} due rows moved on in {s['seconds']:.2f} s, "
        f"{s['left']:,} left (warm-up at start {s['warm_s']:.1f} s; before it, {s['edges']:,} rows whose trades "
        f"left a window until then, from their trades, in {s['edges_s']:.1f} s)"
    )
    print(f"{'':34} {'n':>6} {'p50':>10} {'p99':>10} {'max':>10}")
    names = {
        "open_s": "commit → row (trade opened)",
        "close_s": "commit → row (trade closed)",
        "mark_aum_s": "commit → aum (mark only)",
        "step_s": "projector step",
        "refresh_s": "projector refresh",
    }
    for k, name in names.items():
        x = r["freshness"][k]
        print(f"{name:34} {x['n']:>6} {x['p50'] * 1000:>8.1f}ms {x['p99'] * 1000:>8.1f}ms {x['max'] * 1000:>8.1f}ms")
    names = {
        "all": "leaderboard, all rows",
        "all_text": "leaderboard, all rows, text",
        "all_json": "leaderboard, all rows, one JSON",
        "filtered": "leaderboard, filtered",
        "page50": "leaderboard, page of 50 (keyset)",
        "naive": "naive join at read (baseline)",
        "all_vacuumed": "leaderboard, all rows, vacuumed",
        "all_text_vacuumed": "leaderboard, all, text, vacuumed",
    }
    for k, name in names.items():
        x = r["leaderboard"][k]
        print(
            f"{name:34} {x['n']:>6} {x['p50'] * 1000:>8.1f}ms {x['p99'] * 1000:>8.1f}ms {x['max'] * 1000:>8.1f}ms  ({x['rows']:,} rows)"
        )
    print(f"naive / one query (p50): {r['leaderboard']['naive_over_all_p50']:.0f}×")


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    cfg = Config(args.providers, args.trades, args.relationships, args.rounds, args.per_round, args.repetitions)
    if args.database:
        return await run(cfg, args.database)
    server = "postgresql://postgres@127.0.0.1:5432/postgres"
    name = f"copyengine_stats_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(server)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        return await run(cfg, server.rsplit("/", 1)[0] + "/" + name)
    finally:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--providers", type=int, default=10_000)
    ap.add_argument("--trades", type=int, default=1_000_000)
    ap.add_argument("--relationships", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=20, help="freshness rounds (open, mark, close)")
    ap.add_argument("--per-round", type=int, default=10, help="providers trading per round")
    ap.add_argument("--repetitions", type=int, default=200, help="leaderboard queries timed")
    ap.add_argument(
        "--database", default=os.environ.get("DATABASE_URL"), help="an empty database (default: a scratch one)"
    )
    ap.add_argument("--json", help="write the results here")
    # the bench's own projector process
    ap.add_argument("--projector", metavar="DSN", help=argparse.SUPPRESS)
    ap.add_argument("--base-seq", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--report", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.projector:
        _projector_child(args.projector, args.base_seq, args.report)
        return 0
    result = asyncio.run(_main(args))
    print_table(result)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())

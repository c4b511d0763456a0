"""Provider statistics in PostgreSQL: the rows the projector keeps current and the records
`copyengine stats --database` prints.

Every record is `pyservice.statistics.figures.record`, the one implementation `copyengine
stats SCENARIO` uses too:
- current (no `--as-of`): from the projected tables, computed when read: the provider's
  trades (`provider_trades`), the latest prices (`marks`), its standing as the projector
  last wrote it, at the projection's venue time;
- `--as-of T`: the journal replayed from the books up to the last input at or before T
  (`recovery.history`), through the same builder the projector feeds, since the
  standings of the past (followers, AUM) are not kept row by row.
Sums per provider are taken over the provider's own rows, never over a join of trades
with relationships.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import asyncpg

from pyservice import control
from pyservice import protocol as P
from pyservice._engine_core import Execution, InstrumentDef, LiveEngine, Mark
from pyservice.dispatch import apply_venue_message
from pyservice.statistics import figures
from pyservice.statistics.builder import StatisticsBuilder
from pyservice.statistics.trades import COLUMNS, Trade, from_row
from pyservice.store import books, recovery
from pyservice.venue_time import format_time

PERIOD_NAMES = list(figures.PERIODS)
_PER_PERIOD = ["trades", "roi", "pnl", "max_drawdown", "win_rate", "sharpe"]
ROW_COLUMNS = [
    "provider_id",
    "shard",
    "as_of",
    "seq",
    "strategy",
    "max_leverage",
    "followers",
    "aum",
    "copiers_pnl",
    "open_trades",
    "unrealized_pnl",
    "risk_class",
    "risk_level",
    *(f"{f}_{p}" for f in _PER_PERIOD for p in PERIOD_NAMES),
    "record",
    "equity_curve",
    "due_at",
]
#: a row's whole record (the curve is kept in its own column)
STORED_RECORD = "record || jsonb_build_object('equity_curve', equity_curve)"
UPSERT = (
    f"INSERT INTO provider_statistics ({', '.join(ROW_COLUMNS)}) "
    f"VALUES ({', '.join(f'${i}' for i in range(1, len(ROW_COLUMNS) + 1))}) "
    "ON CONFLICT (provider_id) DO UPDATE SET "
    + ", ".join(f"{c} = EXCLUDED.{c}" for c in ROW_COLUMNS if c != "provider_id")
)
#: the standing moves with every mark: refreshed without recomputing the periods.
#: (provider, followers, aum, copiers_pnl, unrealized_pnl), money as canonical text: one
#: parameter cannot be both the numeric column and the record's string
UPDATE_STANDING = (
    "UPDATE provider_statistics SET followers = $2, aum = $3::numeric, copiers_pnl = $4::numeric, "
    "unrealized_pnl = $5::numeric, record = record || jsonb_build_object('followers', $2::int, 'aum', $3::text, "
    "'copiers_pnl', $4::text, 'unrealized_pnl', $5::text) WHERE provider_id = $1"
)


#: a record moved to a later time by `figures.roll`: its time, volatility, Sharpe and risk
UPDATE_ROLLED = (
    "UPDATE provider_statistics SET seq = $2, as_of = $3, due_at = $4, risk_class = $5, risk_level = $6, "
    + ", ".join(f"sharpe_{p} = ${7 + i}" for i, p in enumerate(PERIOD_NAMES))
    + ", record = record || jsonb_build_object('as_of', $11::text, 'risk_class', $5::smallint, "
    "'risk_level', $6::text, 'periods', $12::jsonb) WHERE provider_id = $1"
)


def rolled_row(
    provider: str, seq: int, as_of: int, due_at: int | None, periods: dict[str, Any], cls: int | None,
    level: str | None,
) -> tuple[Any, ...]:  # fmt: skip
    """The parameters of `UPDATE_ROLLED`."""
    sharpes = [periods[p]["sharpe"] for p in PERIOD_NAMES]
    return (provider, seq, as_of, due_at, cls, level, *sharpes, format_time(as_of), json.dumps(periods))


def _number(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)


def row(record: dict[str, Any], shard: str, seq: int, as_of: int, due_at: int | None) -> tuple[Any, ...]:
    """The `provider_statistics` row of a record, to be recomputed at `due_at`."""
    periods = record["periods"]
    per_period: list[Any] = []
    for f in _PER_PERIOD:
        for p in PERIOD_NAMES:
            v = periods[p][f]
            per_period.append(v if f in ("trades", "sharpe") else _number(v))
    return (
        record["provider"],
        shard,
        as_of,
        seq,
        record["strategy"],
        record["max_leverage"],
        record["followers"],
        Decimal(record["aum"]),
        Decimal(record["copiers_pnl"]),
        record["open_trades"],
        Decimal(record["unrealized_pnl"]),
        record["risk_class"],
        record["risk_level"],
        *per_period,
        json.dumps({k: v for k, v in record.items() if k != "equity_curve"}),
        json.dumps(record["equity_curve"]),
        due_at,
    )


async def provider_trades(conn: asyncpg.Connection, shard: str, providers: Sequence[str]) -> dict[str, list[Trade]]:
    """Every trade of these providers (open and closed), in opening order."""
    rows = await conn.fetch(
        f"SELECT {', '.join(COLUMNS)} FROM provider_trades WHERE shard = $1 AND provider_id = ANY($2::text[]) "
        "ORDER BY provider_id, opened_seq, symbol",
        shard,
        list(providers),
    )
    out: dict[str, list[Trade]] = {p: [] for p in providers}
    for r in rows:
        out[r["provider_id"]].append(from_row(r))
    return out


async def marks(conn: asyncpg.Connection) -> dict[str, Decimal]:
    return {r["symbol"]: r["price"] for r in await conn.fetch("SELECT symbol, price FROM marks")}


async def current_records(conn: asyncpg.Connection, shard: str, provider: str | None = None) -> list[dict[str, Any]]:
    """The records as of the projection's venue time, computed from the projected rows,
    in the books' provider order (one provider with `provider`)."""
    at_us = await conn.fetchval("SELECT at_us FROM projection_state WHERE shard = $1", shard) or 0
    order = [r[0] for r in await conn.fetch("SELECT provider_id FROM providers ORDER BY listed")]
    if provider is not None:
        order = [p for p in order if p == provider]
    stored = {
        r["provider_id"]: r
        for r in await conn.fetch(
            "SELECT provider_id, followers, aum, copiers_pnl, max_leverage FROM provider_statistics "
            "WHERE provider_id = ANY($1::text[])",
            order,
        )
    }
    trades = await provider_trades(conn, shard, order)
    prices = await marks(conn)
    out = []
    for p in order:
        s = stored.get(p)
        standing = (
            figures.Standing()
            if s is None
            else figures.Standing(s["followers"], figures.canonical(s["aum"]), figures.canonical(s["copiers_pnl"]))
        )
        out.append(
            figures.record(
                p,
                trades[p],
                as_of=at_us,
                marks=prices,
                standing=standing,
                max_leverage=None if s is None else s["max_leverage"],
            )
        )
    return out


async def records_as_of(
    conn: asyncpg.Connection, shard: str, as_of: int, provider: str | None = None
) -> list[dict[str, Any]]:
    """The records as of `as_of`, from the journal replayed up to its last input at or
    before that time (control changes at their points)."""
    engine = LiveEngine.from_books(await books.load_books(conn))
    builder = StatisticsBuilder()
    reader = P.venue_reader(native_reports=True)
    upto = await conn.fetchval("SELECT watermark FROM engine_state WHERE shard = $1", shard) or 0
    async with conn.transaction():
        steps = recovery.history(conn, shard, 0, upto, changes_at_upto=True)
        async with contextlib.aclosing(steps):
            async for entry in steps:
                if isinstance(entry, recovery.Placed):
                    control.apply(engine, entry.seq, entry.change)
                    continue
                msg = reader.decode(entry.payload)
                if isinstance(msg, Execution | Mark | InstrumentDef) and msg.ts > as_of:
                    break  # a later ts is never corrected below T: nothing after counts
                feed(builder, engine, entry.seq, msg, apply_venue_message(engine, msg).errors)
    records = builder.records(engine.standings(), as_of)
    return [r for r in records if provider is None or r["provider"] == provider]


def feed(builder: StatisticsBuilder, engine: LiveEngine, seq: int, msg: object, errors: list[str]) -> list[Trade]:
    """One applied venue input into the builder (what the engine refused changes
    nothing). Returns the trades it changed."""
    if errors:
        return []
    if isinstance(msg, Execution):
        return builder.execution(
            seq,
            engine.now_us,
            msg.provider,
            msg.exec_id,
            msg.symbol,
            msg.side,
            Decimal(msg.qty),
            Decimal(msg.price),
            Decimal(msg.provider_equity),
            msg.leverage,
        )
    if isinstance(msg, Mark):
        builder.mark(msg.symbol, Decimal(msg.price))
    elif isinstance(msg, InstrumentDef):
        builder.instrument(msg.symbol, msg.kind)
    return []

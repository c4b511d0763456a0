"""A database seeded with a leaderboard: N providers with random closed and open trades,
their statistics rows computed by the shipped code (`figures.record` → the projector's
`statistics.row`), profiles and profit shares for some, and a few followers with
relationships. Deterministic for a seed. Used by the API's tests and the API bench.

The rows are what the projector would write for these trades; the API reads only them.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from decimal import Decimal

import asyncpg

from pyservice.statistics import figures
from pyservice.statistics.trades import COLUMNS, Trade
from pyservice.store import statistics
from pyservice.store.books import seed_books
from pyservice.store.journal import ensure_shard
from pyservice.venue_time import DAY_US, parse_time

#: the seeded projection's venue time
AS_OF = parse_time("2026-11-30T12:00:00Z")
PRICES = {"BTC": Decimal(100), "ETH-PERP": Decimal(50)}


@dataclass
class Seeded:
    providers: list[str]
    #: (follower, provider) of the seeded relationships
    relationships: list[tuple[str, str]] = field(default_factory=list)
    books: str = ""


def provider_id(i: int) -> str:
    return f"p{i:05d}"


def _trades(rng: random.Random, provider: str, seq: int) -> tuple[list[Trade], int]:
    """Closed trades (0 to 40) and maybe one open trade, spaced over the last 120 days."""
    out: list[Trade] = []
    n = rng.choice([0, 3, 8, 12, 20, 40])
    perp = rng.random() < 0.5
    symbol = "ETH-PERP" if perp else "BTC"
    kind = "perp" if perp else "spot"
    leverage = rng.choice([2, 5, 10]) if perp else 1
    t = AS_OF - 120 * DAY_US + rng.randrange(DAY_US)
    equity = Decimal(10000)
    step = (118 * DAY_US) // max(n + 1, 1)
    for k in range(n):
        qty = Decimal(rng.randrange(1, 50))
        entry = PRICES[symbol]
        exit_ = entry * (1 + Decimal(rng.randrange(-800, 1000)) / 10000)
        side = "long" if rng.random() < 0.7 else "short"
        pnl = (exit_ - entry) * qty if side == "long" else (entry - exit_) * qty
        opened, closed = t, t + step // 2
        out.append(
            Trade(
                provider, symbol, seq, f"{provider}-o{k}", side, leverage, equity, Decimal(0), qty, qty,
                entry * qty, kind, opened, qty, exit_ * qty, 2, seq + 1, f"{provider}-c{k}", closed, pnl,
            )
        )  # fmt: skip
        equity += pnl
        seq += 2
        t += step
    if rng.random() < 0.5:
        qty = Decimal(rng.randrange(1, 20))
        entry = PRICES[symbol] * (1 + Decimal(rng.randrange(-500, 500)) / 10000)
        out.append(
            Trade(provider, symbol, seq, f"{provider}-open", "long", leverage, equity, qty, qty, qty, entry * qty,
                  kind, AS_OF - DAY_US)
        )  # fmt: skip
        seq += 1
    return out, seq


async def seed(conn: asyncpg.Connection, providers: int, rng_seed: int = 7, shard: str = "main") -> Seeded:
    """Seed an empty, migrated database."""
    rng = random.Random(rng_seed)
    ids = [provider_id(i) for i in range(providers)]
    follows = [
        {"follower": f"f{j}", "provider": ids[j % len(ids)], "allocation": str(1000 * (j + 1))}
        for j in range(min(3, providers))
    ]
    books = json.dumps({"version": 1, "providers": [{"id": p} for p in ids], "follows": follows})
    await seed_books(conn, books)
    await ensure_shard(conn, shard)
    trade_rows: list[tuple[object, ...]] = []
    stat_rows: list[tuple[object, ...]] = []
    seq = 1
    for p in ids:
        trades, seq = _trades(rng, p, seq)
        trade_rows += [(shard, *(getattr(t, c) for c in COLUMNS)) for t in trades]
        standing = figures.Standing(
            rng.randrange(0, 400), str(Decimal(rng.randrange(0, 10**8)) / 100), str(Decimal(rng.randrange(-10**6, 10**6)) / 100)
        )  # fmt: skip
        record = figures.record(
            p, trades, as_of=AS_OF, marks=PRICES, standing=standing, max_leverage=max((t.leverage for t in trades), default=None)
        )  # fmt: skip
        stat_rows.append(statistics.row(record, shard, seq, AS_OF, None))
    await conn.copy_records_to_table("provider_trades", records=trade_rows, columns=["shard", *COLUMNS])
    await conn.copy_records_to_table("provider_statistics", records=stat_rows, columns=statistics.ROW_COLUMNS)
    await conn.executemany(
        "INSERT INTO marks (symbol, price, shard, seq) VALUES ($1, $2, $3, $4)",
        [(s, price, shard, seq) for s, price in PRICES.items()],
    )
    await conn.execute(
        "INSERT INTO projection_state (shard, at_us) VALUES ($1, $2) ON CONFLICT (shard) DO UPDATE SET at_us = $2",
        shard,
        AS_OF,
    )
    named = [(p, f"Trader {p[1:].lstrip('0') or '0'}", f"Provider {p}: a seeded strategy.") for p in ids[::3]]
    await conn.executemany("INSERT INTO provider_profiles (provider_id, display_name, bio) VALUES ($1, $2, $3)", named)
    await conn.executemany(
        "INSERT INTO provider_terms (provider_id, profit_share_pct, next_profit_share_pct, seq) VALUES ($1, $2, $2, 0)",
        [(p, Decimal(rng.choice([0, 10, 20, 30]))) for p in ids[::2]],
    )
    # the relationships as a snapshot right after the follows shows them: all cash
    await conn.executemany(
        "INSERT INTO relationship_equity (shard, seq, follower_id, provider_id, status, cash, equity, reserved, "
        "base, fees_paid, high_watermark) VALUES ($1, 0, $2, $3, 'active', $4, $4, 0, $4, 0, $4)",
        [(shard, f["follower"], f["provider"], Decimal(f["allocation"])) for f in follows],
    )
    return Seeded(ids, [(f["follower"], f["provider"]) for f in follows], books)

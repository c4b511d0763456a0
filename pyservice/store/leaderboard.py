"""What followers read to choose a provider: the leaderboard, a provider's card and
statistics, its equity curve and its open trades, from the rows the projector keeps
(`provider_statistics`, `provider_trades`, `marks`) and what providers say of themselves
(`provider_profiles`, `provider_terms`).

Every query is parameterized; the only text put into SQL is a column name chosen from
the closed sets below. Pages are keyset-paginated (the cursor is the last row's sort
value and id), so a page costs the same at the end of the list as at its start and a row
moving between two pages is never shown twice in one direction.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from bisect import bisect_right
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import asyncpg
from gmpy2 import mpq

from pyservice.protocol import NAME_RE
from pyservice.statistics import figures
from pyservice.statistics.figures import PERIODS, canonical, rounded
from pyservice.store import statistics
from pyservice.venue_time import DAY_US, format_time, parse_time

#: sort key → the column (per period where the figure is per period)
SORTS = {
    "roi": "roi_{p}",
    "pnl": "pnl_{p}",
    "copiers_pnl": "copiers_pnl",
    "aum": "aum",
    "followers": "followers",
    "drawdown": "max_drawdown_{p}",
    "sharpe": "sharpe_{p}",
}
RISK_LEVELS = ("low", "medium", "high")
STRATEGIES = ("spot", "futures", "mixed")
#: providers with fewer closed trades than this are shown as new
NEW_BELOW = 10
#: a sparkline's points at most
SPARKLINE_POINTS = 48
PAGE_MAX = 100
#: a decimal as a query parameter: ASCII digits, an optional sign and fraction
DECIMAL = re.compile(r"\A-?[0-9]+(\.[0-9]+)?\Z")
#: a float as Python prints it (a Sharpe in a cursor), or -inf
FLOAT = re.compile(r"\A(-inf|-?[0-9]+(\.[0-9]+)?(e[-+]?[0-9]{1,3})?)\Z")


class QueryError(ValueError):
    """A query parameter is invalid (the message says which and why)."""


@dataclass(frozen=True)
class Filters:
    period: str = "30d"
    sort: str = "roi"
    order: str = "desc"
    min_aum: Decimal | None = None
    min_followers: int | None = None
    max_drawdown: Decimal | None = None
    risk_level: str | None = None
    strategy: str | None = None
    limit: int = 20
    cursor: str | None = None

    def check(self) -> None:
        if self.period not in PERIODS:
            raise QueryError(f"period must be one of {', '.join(PERIODS)}")
        if self.sort not in SORTS:
            raise QueryError(f"sort must be one of {', '.join(SORTS)}")
        if self.order not in ("asc", "desc"):
            raise QueryError("order must be asc or desc")
        if self.risk_level is not None and self.risk_level not in RISK_LEVELS:
            raise QueryError(f"risk_level must be one of {', '.join(RISK_LEVELS)}")
        if self.strategy is not None and self.strategy not in STRATEGIES:
            raise QueryError(f"strategy must be one of {', '.join(STRATEGIES)}")
        if self.min_followers is not None and self.min_followers < 0:
            raise QueryError("min_followers must be 0 or more")
        if not 1 <= self.limit <= PAGE_MAX:
            raise QueryError(f"limit must be 1 to {PAGE_MAX}")


def decimal_param(
    name: str, text: str | None, *, lo: Decimal | None = None, hi: Decimal | None = None
) -> Decimal | None:
    """A decimal query parameter: plain digits, at most 8 places, finite, in [lo, hi]."""
    if text is None or text == "":
        return None
    if len(text) > 40 or not DECIMAL.match(text):
        raise QueryError(f"{name} must be a decimal number such as 1000.50")
    value = Decimal(text)
    if "." in text and len(text.split(".", 1)[1]) > 8:
        raise QueryError(f"{name} has more than 8 decimal places")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise QueryError(f"{name} must be between {lo if lo is not None else '-∞'} and {hi if hi is not None else '∞'}")
    return value


def _column(f: Filters) -> str:
    return SORTS[f.sort].format(p=f.period)


def _sort_expr(f: Filters) -> str:
    col = f"s.{_column(f)}"
    # no Sharpe yet (fewer than two days): below every number in either order
    return f"coalesce({col}, '-Infinity'::float8)" if f.sort == "sharpe" else col


def encode_cursor(f: Filters, value: Any, provider: str) -> str:
    text = canonical(value) if isinstance(value, Decimal) else str(value)
    raw = json.dumps([f.period, f.sort, f.order, text, provider], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(f: Filters) -> tuple[Any, str] | None:
    if f.cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(f.cursor + "=" * (-len(f.cursor) % 4))
        period, sort, order, value, provider = json.loads(raw)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise QueryError("cursor is not one this API gave") from exc
    if [period, sort, order] != [f.period, f.sort, f.order]:
        raise QueryError("cursor belongs to another period, sort or order")
    # what reaches PostgreSQL is what this API could have given: an id, a 32-bit count,
    # a plain decimal, a finite float (or no Sharpe, -inf)
    if not (isinstance(provider, str) and NAME_RE.match(provider) and isinstance(value, str) and len(value) <= 40):
        raise QueryError("cursor is not one this API gave")
    typed: Any
    if f.sort == "followers" and value.isascii() and value.isdigit() and int(value) < 2**31:
        typed = int(value)
    elif f.sort == "sharpe" and FLOAT.match(value) and (value == "-inf" or math.isfinite(float(value))):
        typed = float(value)
    elif f.sort not in ("followers", "sharpe") and DECIMAL.match(value):
        typed = Decimal(value)
    else:
        raise QueryError("cursor is not one this API gave")
    return typed, provider


_CARD = (
    "s.provider_id, s.as_of, s.followers, s.aum, s.copiers_pnl, s.unrealized_pnl, s.open_trades, "
    "s.risk_level, s.risk_class, s.strategy, s.trades_all, s.equity_curve, "
    "coalesce(pp.display_name, '') AS display_name, pp.avatar_url, "
    "coalesce(t.profit_share_pct, 0) AS profit_share_pct, coalesce(t.next_profit_share_pct, 0) AS next_profit_share_pct"
)
_JOINS = (
    "FROM provider_statistics s LEFT JOIN provider_profiles pp USING (provider_id) "
    "LEFT JOIN provider_terms t USING (provider_id)"
)


def _text(v: Decimal | None) -> str | None:
    return None if v is None else canonical(v)


def _card(r: asyncpg.Record, period: str) -> dict[str, Any]:
    curve = period_curve(json.loads(r["equity_curve"]), r["as_of"], period)
    return {
        "provider": r["provider_id"],
        "display_name": r["display_name"] or r["provider_id"],
        "avatar_url": r["avatar_url"],
        "as_of": format_time(r["as_of"]),
        "period": period,
        "roi": canonical(r["roi"]),
        "pnl": canonical(r["pnl"]),
        "win_rate": _text(r["win_rate"]),
        "max_drawdown": canonical(r["max_drawdown"]),
        "sharpe": r["sharpe"],
        "trades": r["trades"],
        "closed_trades": r["trades_all"],
        "new": r["trades_all"] < NEW_BELOW,
        "followers": r["followers"],
        "aum": canonical(r["aum"]),
        "copiers_pnl": canonical(r["copiers_pnl"]),
        "open_trades": r["open_trades"],
        "unrealized_pnl": canonical(r["unrealized_pnl"]),
        "profit_share_pct": canonical(r["profit_share_pct"]),
        "next_profit_share_pct": canonical(r["next_profit_share_pct"]),
        "risk_level": r["risk_level"],
        "risk_class": r["risk_class"],
        "strategy": r["strategy"],
        "sparkline": sample(curve),
    }


def _period_columns(period: str) -> str:
    return ", ".join(f"s.{f}_{period} AS {f}" for f in ("roi", "pnl", "win_rate", "max_drawdown", "sharpe", "trades"))


async def leaderboard(conn: asyncpg.Connection, f: Filters) -> tuple[list[dict[str, Any]], str | None]:
    """One page of provider cards in the order asked, and the cursor of the next page
    (None at the end)."""
    f.check()
    after = _decode_cursor(f)
    expr = _sort_expr(f)
    op, direction = ("<", "DESC") if f.order == "desc" else (">", "ASC")
    args: list[Any] = [
        f.min_aum,
        f.min_followers,
        f.max_drawdown,
        f.risk_level,
        f.strategy,
        None if after is None else after[0],
        None if after is None else after[1],
        f.limit + 1,
    ]
    value_type = {"followers": "int", "sharpe": "float8"}.get(f.sort, "numeric")
    # the page's ids first, from the narrow sort (no wide column carried through it), then
    # their cards
    rows = await conn.fetch(
        f"WITH page AS (SELECT s.provider_id, {expr} AS sort_value FROM provider_statistics s "
        "WHERE ($1::numeric IS NULL OR s.aum >= $1) AND ($2::int IS NULL OR s.followers >= $2) "
        f"AND ($3::numeric IS NULL OR s.max_drawdown_{f.period} <= $3) AND ($4::text IS NULL OR s.risk_level = $4) "
        "AND ($5::text IS NULL OR s.strategy = $5) "
        f"AND ($7::text IS NULL OR ({expr}, s.provider_id) {op} ($6::{value_type}, $7::text)) "
        f"ORDER BY {expr} {direction}, s.provider_id {direction} LIMIT $8) "
        f"SELECT {_CARD}, {_period_columns(f.period)}, page.sort_value "
        f"FROM page JOIN provider_statistics s USING (provider_id) LEFT JOIN provider_profiles pp USING (provider_id) "
        "LEFT JOIN provider_terms t USING (provider_id) "
        f"ORDER BY page.sort_value {direction}, s.provider_id {direction}",
        *args,
    )
    cards = [_card(r, f.period) for r in rows[: f.limit]]
    more = len(rows) > f.limit
    last = rows[f.limit - 1] if more else None
    return cards, None if last is None else encode_cursor(f, last["sort_value"], last["provider_id"])


async def provider(conn: asyncpg.Connection, provider_id: str) -> dict[str, Any] | None:
    """A provider's card for every period and its full statistics record, or None."""
    r = await conn.fetchrow(
        f"SELECT {_CARD}, s.record::text AS record, pp.bio, {_period_columns('30d')} {_JOINS} WHERE s.provider_id = $1",
        provider_id,
    )
    if r is None:
        return None
    record = json.loads(r["record"])
    return {
        "card": _card(r, "30d"),
        "bio": r["bio"] or "",
        "statistics": {
            "as_of": record["as_of"],
            "periods": record["periods"],
            "max_leverage": record["max_leverage"],
        },
    }


async def equity_curve(conn: asyncpg.Connection, provider_id: str, period: str) -> dict[str, Any] | None:
    if period not in PERIODS:
        raise QueryError(f"period must be one of {', '.join(PERIODS)}")
    r = await conn.fetchrow(
        "SELECT as_of, equity_curve::text AS curve FROM provider_statistics WHERE provider_id = $1", provider_id
    )
    if r is None:
        return None
    points = period_curve(json.loads(r["curve"]), r["as_of"], period)
    return {"provider": provider_id, "period": period, "as_of": format_time(r["as_of"]), "points": points}


def period_curve(curve: list[dict[str, str]], as_of: int, period: str) -> list[dict[str, str]]:
    """The curve's points inside the period ending at `as_of` (T − d, T], preceded by the
    value the period starts from, at the period's start; the whole curve for `all`."""
    days = PERIODS[period]
    if days is None or not curve:
        return curve
    start = as_of - days * DAY_US
    # the points are in time order: find the period's first by bisection (a time is
    # parsed only log n times; a leaderboard page reads 20 curves)
    first = bisect_right(curve, start, key=lambda p: parse_time(p["time"]))
    head = [{"time": format_time(start), "equity": curve[first - 1]["equity"]}] if first else []
    return head + curve[first:]


def sample(points: list[dict[str, str]], n: int = SPARKLINE_POINTS) -> list[dict[str, str]]:
    """At most `n` of the points, evenly spaced by index, the first and the last always
    among them (what a sparkline draws)."""
    if len(points) <= n:
        return list(points)
    last = len(points) - 1
    return [points[round(i * last / (n - 1))] for i in range(n)]


async def open_trades(conn: asyncpg.Connection, shard: str, provider_id: str) -> list[dict[str, Any]] | None:
    """The provider's open trades with their unrealized PnL at the latest mark (None for
    an unknown provider)."""
    if not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM providers WHERE provider_id = $1)", provider_id):
        return None
    trades = (await statistics.provider_trades(conn, shard, [provider_id]))[provider_id]
    prices = await statistics.marks(conn)
    out = []
    for t in trades:
        if t.closed_at is not None:
            continue
        price = prices.get(t.symbol)
        # the record's own rule, for this trade alone
        unrealized = None if price is None else figures.unrealized_pnl([t], {t.symbol: price})
        out.append(
            {
                "symbol": t.symbol,
                "side": t.side,
                "kind": t.kind,
                "leverage": t.leverage,
                "qty": canonical(t.qty),
                "entry_price": rounded(mpq(t.entry_notional) / mpq(t.entry_qty), 8),
                "mark": _text(price),
                "unrealized_pnl": None if unrealized is None else rounded(unrealized, 8),
                "opened_at": format_time(t.opened_at),
            }
        )
    return out

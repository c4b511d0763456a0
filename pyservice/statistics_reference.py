"""The provider statistics of issue #14, as a plain-Python executable spec (`Fraction`).

Groundwork for "Venue time and honest provider statistics": the definitions that do not
depend on the engine's follower state, written as directly as the issue states them, so
that the shipped implementation (offline `copyengine stats` and the live projector) can be
held to it by a differential property test, as `pyservice/reference.py` holds the Rust
copy rules. Followers, AUM and copiers' PnL come from the engine's relationships and are
not computed here.

Input: one provider's accepted fills in stream order, each with its venue time (an
integer of microseconds since the Unix epoch, UTC), the latest marks, and the time T as
of which to compute. Only fills with time ≤ T count. Everything is exact; a ratio is
rounded half-even to 8 places only when printed, and `sharpe` alone is a float.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any

from pyservice.reference import format_decimal

DAY_US = 86_400 * 1_000_000
#: the hypothetical deposit the equity curve compounds
START_EQUITY = Fraction(10_000)
PERIODS: dict[str, int | None] = {"7d": 7, "30d": 30, "90d": 90, "all": None}
#: upper bounds of risk classes 1..6 on the 90d annualized volatility (EU PRIIPs MRM)
RISK_BANDS = [Fraction(5, 1000), Fraction(5, 100), Fraction(12, 100), Fraction(20, 100), Fraction(30, 100),
              Fraction(80, 100)]  # fmt: skip

_TIME = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?Z\Z", re.ASCII)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_time(text: str) -> int:
    """`YYYY-MM-DDTHH:MM:SS[.ffffff]Z` as microseconds since the epoch; ValueError otherwise."""
    m = _TIME.match(text)
    if m is None:
        raise ValueError(f"'{text}' is not a time (YYYY-MM-DDTHH:MM:SS[.ffffff]Z)")
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    try:
        at = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError as exc:
        raise ValueError(f"'{text}' is not a time ({exc})") from None
    micros = int((m.group(7) or "").ljust(6, "0"))
    return (at - _EPOCH) // timedelta(microseconds=1) + micros


def format_time(us: int) -> str:
    """The scenario format's time text; the fraction only when it is not zero."""
    at = _EPOCH + timedelta(microseconds=us)
    text = at.strftime("%Y-%m-%dT%H:%M:%S")
    if at.microsecond:
        text += "." + f"{at.microsecond:06d}".rstrip("0")
    return text + "Z"


def rounded(x: Fraction, places: int) -> str:
    """Canonical decimal of x rounded half-even to `places` (``round`` on a Fraction is
    half-even)."""
    unit = 10**places
    return format_decimal(Fraction(round(x * unit), unit))


def sqrt_rounded(x: Fraction, places: int) -> str:
    """√x (x ≥ 0) rounded half-even to `places`, exactly: the square root of a rational
    can itself be a tie (√6.25 = 2.5), so no float is involved."""
    y = x * 10 ** (2 * places)
    n = math.isqrt(math.floor(y))  # floor(√y), as √ is monotone
    half = (Fraction(2 * n + 1, 2)) ** 2
    if half < y or (half == y and n % 2 == 1):
        n += 1
    return format_decimal(Fraction(n, 10**places))


@dataclass(frozen=True)
class Fill:
    time: int
    symbol: str
    kind: str  # "spot" or "perp"
    side: str  # "buy" or "sell"
    qty: Fraction
    price: Fraction
    provider_equity: Fraction
    leverage: int


@dataclass
class Trade:
    symbol: str
    kind: str
    direction: int  # +1 long, -1 short
    open_time: int
    equity_at_open: Fraction
    entry_qty: Fraction
    entry_notional: Fraction
    exit_qty: Fraction = Fraction(0)
    exit_notional: Fraction = Fraction(0)
    close_time: int | None = None
    #: where it closed in the stream (ties of close time keep this order)
    close_index: int | None = None

    @property
    def remaining(self) -> Fraction:
        return self.entry_qty - self.exit_qty

    @property
    def pnl(self) -> Fraction:
        """Σ exit notional − Σ entry notional, for a long; the opposite for a short (of a
        closed trade: an open one's is its unrealized PnL's business)."""
        return self.direction * (self.exit_notional - self.entry_notional)

    @property
    def ret(self) -> Fraction:
        return self.pnl / self.equity_at_open


def build_trades(fills: list[Fill]) -> list[Trade]:
    """Every trade, in opening order: flat → open → flat per symbol; a fill through zero
    closes with the part that reaches zero and opens the next with the rest."""
    trades: list[Trade] = []
    open_by_symbol: dict[str, Trade] = {}
    for i, f in enumerate(fills):
        sign = 1 if f.side == "buy" else -1
        rest = f.qty
        t = open_by_symbol.get(f.symbol)
        if t is not None and t.direction == sign:
            t.entry_qty += f.qty
            t.entry_notional += f.qty * f.price
            continue
        if t is not None:
            closing = min(f.qty, t.remaining)
            t.exit_qty += closing
            t.exit_notional += closing * f.price
            rest -= closing
            if t.remaining == 0:
                t.close_time, t.close_index = f.time, i
                del open_by_symbol[f.symbol]
        if rest > 0:
            t = Trade(f.symbol, f.kind, sign, f.time, f.provider_equity, rest, rest * f.price)
            trades.append(t)
            open_by_symbol[f.symbol] = t
    return trades


def equity_curve(trades: list[Trade]) -> list[tuple[int, Fraction]]:
    """(time, value) of the $10,000 hypothetical account: the first trade's open, then one
    point per closed trade in closing order, never below zero."""
    if not trades:
        return []
    points = [(min(t.open_time for t in trades), START_EQUITY)]
    for t in closed_in_order(trades):
        assert t.close_time is not None
        points.append((t.close_time, points[-1][1] * max(Fraction(0), 1 + t.ret)))
    return points


def closed_in_order(trades: list[Trade]) -> list[Trade]:
    return sorted((t for t in trades if t.close_time is not None), key=lambda t: (t.close_time, t.close_index))


def value_before(points: list[tuple[int, Fraction]], time: int, *, inclusive: bool) -> Fraction:
    """The curve's value after every point before `time` (at or before, if `inclusive`);
    the deposit before the first point."""
    value = START_EQUITY
    for at, v in points:
        if at < time or (inclusive and at == time):
            value = v
    return value


def max_drawdown(points: list[tuple[int, Fraction]], start: int | None, as_of: int) -> Fraction:
    """The largest (peak − V) / peak over the start value and the points in (start, as_of]."""
    values = [START_EQUITY if start is None else value_before(points, start, inclusive=True)]
    values += [v for at, v in points if (start is None or at > start) and at <= as_of]
    worst, peak = Fraction(0), values[0]
    for v in values:
        peak = max(peak, v)
        if peak > 0:
            worst = max(worst, (peak - v) / peak)
    return worst


def daily_returns(points: list[tuple[int, Fraction]], first_open: int, as_of: int) -> list[Fraction]:
    """One return per UTC day from the first trade's open to T's day, inclusive."""
    returns = []
    previous = value_before(points, (first_open // DAY_US) * DAY_US, inclusive=False)
    for day in range(first_open // DAY_US, as_of // DAY_US + 1):
        value = value_before(points, (day + 1) * DAY_US, inclusive=False)
        returns.append(Fraction(0) if previous == 0 else value / previous - 1)
        previous = value
    return returns


def _volatility_and_sharpe(returns: list[Fraction]) -> tuple[str | None, float | None, Fraction | None]:
    """(volatility text, sharpe, exact annualized variance) of daily returns."""
    n = len(returns)
    if n < 2:
        return None, None, None
    mean = sum(returns, Fraction(0)) / n
    variance = sum(((r - mean) ** 2 for r in returns), Fraction(0)) / (n - 1)
    annual = variance * 365
    sharpe = None if variance == 0 else float(mean) / math.sqrt(float(variance)) * math.sqrt(365)
    return sqrt_rounded(annual, 8), sharpe, annual


def risk_class(annual_variance: Fraction | None) -> int | None:
    """1..7 from the 90d volatility σ; σ < b compared as σ² < b² (exact)."""
    if annual_variance is None:
        return None
    for cls, bound in enumerate(RISK_BANDS, start=1):
        if annual_variance < bound * bound:
            return cls
    return 7


def risk_level(cls: int | None) -> str | None:
    if cls is None:
        return None
    return "low" if cls <= 3 else "medium" if cls <= 5 else "high"


def _period(trades: list[Trade], points: list[tuple[int, Fraction]], days: int | None, as_of: int,
            first_open: int | None) -> tuple[dict[str, Any], Fraction | None]:  # fmt: skip
    start = None if days is None else as_of - days * DAY_US
    closed = [t for t in closed_in_order(trades) if start is None or t.close_time > start]  # type: ignore[operator]
    wins = sum(1 for t in closed if t.pnl > 0)
    growth = Fraction(1)
    for t in closed:
        growth *= max(Fraction(0), 1 + t.ret)
    returns = [] if first_open is None else daily_returns(points, first_open, as_of)
    if days is not None:
        returns = returns[-days:]
    volatility, sharpe, annual = _volatility_and_sharpe(returns)
    return {
        "trades": len(closed),
        "wins": wins,
        "losses": sum(1 for t in closed if t.pnl < 0),
        "win_rate": rounded(Fraction(wins, len(closed)), 8) if closed else None,
        "pnl": format_decimal(sum((t.pnl for t in closed), Fraction(0))),
        "roi": rounded(growth - 1, 8),
        "best_trade": rounded(max(t.ret for t in closed), 8) if closed else None,
        "worst_trade": rounded(min(t.ret for t in closed), 8) if closed else None,
        "max_drawdown": rounded(max_drawdown(points, start, as_of), 8),
        "volatility": volatility,
        "sharpe": sharpe,
    }, annual


def provider_statistics(fills: list[Fill], marks: dict[str, Fraction], as_of: int) -> dict[str, Any]:
    """The provider's own figures as of `as_of`: strategy, leverage, open trades and their
    unrealized PnL, risk, the four periods and the equity curve. `marks` are the latest
    mark prices at `as_of`; an open trade's symbol without one is valued at its last fill."""
    fills = [f for f in fills if f.time <= as_of]
    trades = build_trades(fills)
    points = equity_curve(trades)
    first_open = points[0][0] if points else None
    last_price = {f.symbol: f.price for f in fills}
    unrealized = Fraction(0)
    open_trades = [t for t in trades if t.close_time is None]
    for t in open_trades:
        mark = marks.get(t.symbol, last_price[t.symbol])
        unrealized += t.direction * (mark - t.entry_notional / t.entry_qty) * t.remaining
    kinds = {t.kind for t in trades}
    periods = {}
    annual_90d = None
    for name, days in PERIODS.items():
        periods[name], annual = _period(trades, points, days, as_of, first_open)
        if name == "90d":
            annual_90d = annual
    cls = risk_class(annual_90d)
    return {
        "as_of": format_time(as_of),
        "strategy": None if not kinds else "mixed" if len(kinds) == 2 else "spot" if kinds == {"spot"} else "futures",
        "max_leverage": max((f.leverage for f in fills), default=None),
        "open_trades": len(open_trades),
        "unrealized_pnl": rounded(unrealized, 8),
        "risk_class": cls,
        "risk_level": risk_level(cls),
        "periods": periods,
        "equity_curve": [{"time": format_time(at), "equity": rounded(v, 2)} for at, v in points],
    }


def scenario_statistics(text: str, as_of: int | None = None) -> list[dict[str, Any]]:
    """`copyengine stats SCENARIO` by the definitions: the reference engine replays the
    events at or before T (`reference.event_times`); a provider's fills are its valid
    `fill` events, followers, AUM and copiers' PnL come from the relationships (an
    unfollowed one at its equity when it ended, which closing at the marks leaves as it
    was). One record per provider, in the scenario's order, keys in the printed order."""
    from pyservice import reference

    scenario = reference._load_json(text)
    engine = reference.ReferenceEngine.from_scenario(scenario)
    events = reference._array(scenario, "events")
    times = reference.event_times(scenario)
    until = as_of if as_of is not None else (times[-1] if times else 0)
    fills: dict[str, list[Fill]] = {p: [] for p in engine.providers}
    marks: dict[str, Fraction] = {}
    ended: dict[str, Fraction] = {p: Fraction(0) for p in engine.providers}
    for index, (event, at) in enumerate(zip(events, times, strict=True)):
        if at > until:
            break
        leaving = None
        if isinstance(event, dict) and event.get("type") == "unfollow":
            rel = engine.relationships.get((event.get("follower"), event.get("provider")))  # type: ignore[arg-type]
            leaving = None if rel is None else (rel.provider, engine.equity(rel) - rel.base)
        records = engine.apply(index, event)
        if any(r["kind"] == "error" and r["event"] == index for r in records):
            continue
        if leaving is not None:
            # it ended after paying its unfollow settlement, a cost to the copier
            fee = sum(
                Fraction(r["charged"]) for r in records if r["kind"] == "settlement" and r["period"] == "unfollow"
            )
            ended[leaving[0]] += leaving[1] - fee
        if event["type"] == "fill":
            inst = engine.instruments[event["symbol"]]
            f = Fill(at, event["symbol"], inst.kind, event["side"], Fraction(event["qty"]), Fraction(event["price"]),
                     Fraction(event["provider_equity"]), int(event.get("leverage") or 1))  # fmt: skip
            fills[event["provider"]].append(f)
            marks[f.symbol] = f.price
        elif event["type"] == "mark":
            marks[event["symbol"]] = Fraction(event["price"])
    out = []
    for p in engine.providers:
        rels = [r for r in engine.relationships.values() if r.provider == p]
        live = [r for r in rels if r.status != "stopped"]
        stats = provider_statistics(fills[p], marks, until)
        out.append({
            "provider": p,
            "as_of": stats["as_of"],
            "strategy": stats["strategy"],
            "max_leverage": stats["max_leverage"],
            "followers": len(live),
            "aum": format_decimal(sum((engine.equity(r) for r in live), Fraction(0))),
            "copiers_pnl": format_decimal(ended[p] + sum((engine.equity(r) - r.base for r in rels), Fraction(0))),
            **{k: stats[k] for k in ("open_trades", "unrealized_pnl", "risk_class", "risk_level", "periods",
                                     "equity_curve")},
        })  # fmt: skip
    return out

"""A provider's statistics record as of a time T, exactly (issue #14, "The definitions").

Input: its trades (`trades.Trade`, with venue times), the latest marks, its standing with
its copiers (the engine's `standings()`), its highest leverage and T. Output: the record
`copyengine stats` prints and the projector stores, field for field.

How it stays exact and cheap:
- A closed trade's factor is max(0, 1 + pnl / equity_at_open), an exact rational
  (gmpy2's `mpq`: GMP's rationals, some 10× Python's `Fraction`, as exact); the equity
  curve is $10,000 times the running product, so every curve value is exact.
- Windows are suffixes of the closed trades ordered by close time (`bisect`).
- Daily returns are 0 on days without a closing trade, so only the days with one are
  computed (each as the product of that day's factors, minus 1); the mean and variance
  come from Σr and Σr² over those days and the count of days, exactly.
Ratios are rounded half-even to 8 places only when printed; `sharpe` alone is a float.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from gmpy2 import mpq

from pyservice.statistics.trades import Trade
from pyservice.venue_time import DAY_US, format_time

#: the hypothetical deposit the equity curve compounds
START = mpq(10_000)
#: period name → days (None: every closed trade)
PERIODS: dict[str, int | None] = {"7d": 7, "30d": 30, "90d": 90, "all": None}
#: σ² below which each risk class 1..6 lies: the EU PRIIPs market-risk bands on the
#: annualized volatility σ (0.5 %, 5 %, 12 %, 20 %, 30 %, 80 %), squared so that the
#: comparison is exact
RISK_BANDS_SQUARED = [mpq(b, 1000) ** 2 for b in (5, 50, 120, 200, 300, 800)]
ZERO = mpq(0)


@dataclass(frozen=True)
class Standing:
    """What the engine's follower books say about the provider (`Engine.standings()`)."""

    followers: int = 0
    aum: str = "0"
    copiers_pnl: str = "0"


def canonical(x: Decimal) -> str:
    """The canonical decimal text (docs/scenario-format.md: no exponent, no trailing
    fractional zeros, `0` for zero)."""
    if x == 0:
        return "0"
    text = f"{x:f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def rounded(x: mpq, places: int) -> str:
    """x rounded half-even to `places` (`round` of an mpq is half-even), canonical."""
    n = int(round(x * 10**places))  # noqa: RUF046 (round of an mpq is an mpz)
    if n == 0:
        return "0"
    whole, frac = divmod(abs(n), 10**places)
    text = f"{whole}.{frac:0{places}d}".rstrip("0").rstrip(".")
    return text if n > 0 else "-" + text


def sqrt_rounded(x: mpq, places: int) -> str:
    """√x (x ≥ 0) rounded half-even to `places` with no float: n = ⌊√(x·10^2p)⌋, then up
    when √ lies above n + ½ (or on it with n odd), compared squared."""
    y = x * 10 ** (2 * places)
    n = math.isqrt(int(y.numerator // y.denominator))
    twice = 2 * n + 1  # (n + ½)² < y  ⟺  (2n + 1)² < 4y
    if twice * twice < 4 * y or (twice * twice == 4 * y and n % 2 == 1):
        n += 1
    return canonical(Decimal(n).scaleb(-places))


@dataclass(frozen=True)
class _Curve:
    """The closed trades in curve order with their returns, factors and curve values."""

    times: list[int]  # close times, non-decreasing
    returns: list[mpq]
    factors: list[mpq]  # max(0, 1 + r)
    pnls: list[Decimal]
    values: list[mpq]  # values[k] after the k-th closed trade
    first_open: int | None

    def value_at(self, t: int, *, inclusive: bool) -> mpq:
        """The value after every point before t (at or before, if inclusive); the deposit
        before the first."""
        k = (bisect_right if inclusive else bisect_left)(self.times, t)
        return self.values[k - 1] if k else START


def _curve(trades: Sequence[Trade]) -> _Curve:
    closed = sorted((t for t in trades if t.closed_at is not None), key=_close_key)
    times, returns, factors, pnls, values = [], [], [], [], []
    value = START
    for t in closed:
        assert t.pnl is not None and t.closed_at is not None
        pnl_n, pnl_d = t.pnl.as_integer_ratio()
        eq_n, eq_d = t.equity_at_open.as_integer_ratio()
        r = mpq(pnl_n * eq_d, pnl_d * eq_n)  # one normalization, not three
        factor = max(ZERO, 1 + r)
        value = value * factor
        times.append(t.closed_at)
        returns.append(r)
        factors.append(factor)
        pnls.append(t.pnl)
        values.append(value)
    first_open = min((t.opened_at for t in trades), default=None)
    return _Curve(times, returns, factors, pnls, values, first_open)


def _close_key(t: Trade) -> tuple[int, int]:
    assert t.closed_at is not None and t.closed_seq is not None
    return t.closed_at, t.closed_seq


@dataclass(frozen=True)
class _Days:
    """The UTC days up to T whose return is not 0, in order, with the sums Σr and Σr² of
    the returns from each of them on: a period's days are a suffix of these."""

    days: list[int]
    totals: list[mpq]  # totals[i]: Σ r over days[i:]; one more, 0, at the end
    squares: list[mpq]


def _day_returns(curve: _Curve, as_of: int) -> _Days:
    """A day's value over the previous day's is the product of its trades' factors (small
    numbers, where the values are long ones); after the curve reached 0, every return is
    0. A day's return does not depend on the period, so the periods share these."""
    days: list[int] = []
    returns: list[mpq] = []
    k = 0
    while k < len(curve.times) and curve.times[k] <= as_of:
        day = curve.times[k] // DAY_US
        end = bisect_right(curve.times, (day + 1) * DAY_US - 1, k)
        previous = curve.values[k - 1] if k else START
        if previous != 0:
            ratio = math.prod(curve.factors[k:end], start=mpq(1))
            if ratio != 1:
                days.append(day)
                returns.append(ratio - 1)
        k = end
    totals, squares = [ZERO], [ZERO]
    for r in reversed(returns):
        totals.append(totals[-1] + r)
        squares.append(squares[-1] + r * r)
    return _Days(days, totals[::-1], squares[::-1])


def _daily_returns(curve: _Curve, d: _Days, as_of: int, days: int | None) -> tuple[int, mpq, mpq]:
    """(how many days, Σr, Σr²) over the period's days: the UTC days from the first
    trade's open to T's, the last `days` of them (days without a return count 0)."""
    assert curve.first_open is not None
    first, last = curve.first_open // DAY_US, as_of // DAY_US
    if days is not None:
        first = max(first, last - days + 1)
    i = bisect_left(d.days, first)
    return last - first + 1, d.totals[i], d.squares[i]


def _volatility_sharpe(n: int, total: mpq, squares: mpq) -> tuple[str | None, float | None, mpq | None]:
    """(volatility, sharpe, annualized variance) of n daily returns of sum `total` and
    sum of squares `squares`."""
    if n < 2:
        return None, None, None
    variance = (squares - total * total / n) / (n - 1)
    sharpe = None
    if variance != 0:
        sharpe = float(total / n) / math.sqrt(float(variance)) * math.sqrt(365)
    return sqrt_rounded(variance * 365, 8), sharpe, variance * 365


def _max_drawdown(curve: _Curve, start: int | None, as_of: int) -> mpq:
    """The largest (peak − V)/peak over the value at the period's start and the points
    inside it, the peak running from that start value."""
    if start is None:
        peak, k = START, 0
    else:
        peak, k = curve.value_at(start, inclusive=True), bisect_right(curve.times, start)
    # the lowest v / peak so far as the integers low_n / low_d (drawdown = 1 − it):
    # compared by cross products, no fraction built per point
    low_n, low_d = 1, 1
    end = bisect_right(curve.times, as_of)
    for v in curve.values[k:end]:
        if v > peak:
            peak = v
        elif peak > 0 and v != peak:
            n, d = v.numerator * peak.denominator, v.denominator * peak.numerator
            if n * low_d < low_n * d:
                low_n, low_d = n, d
    return 1 - mpq(low_n, low_d)


def _growth(curve: _Curve, k: int) -> mpq:
    """Π max(0, 1 + r) over the closed trades from the k-th on: the last curve value over
    the one before them, unless that one is 0 (then the product itself)."""
    if k == len(curve.values):
        return mpq(1)
    before = curve.values[k - 1] if k else START
    if before != 0:
        return curve.values[-1] / before
    growth = mpq(1)
    for r in curve.returns[k:]:
        growth *= max(ZERO, 1 + r)
    return growth


def _period(curve: _Curve, day_returns: _Days, days: int | None, as_of: int) -> tuple[dict[str, Any], mpq | None]:
    start = None if days is None else as_of - days * DAY_US
    k = 0 if start is None else bisect_right(curve.times, start)
    returns, pnls = curve.returns[k:], curve.pnls[k:]
    growth = _growth(curve, k)
    wins = sum(1 for p in pnls if p > 0)
    if curve.first_open is None:
        volatility, sharpe, annual = None, None, None
    else:
        volatility, sharpe, annual = _volatility_sharpe(*_daily_returns(curve, day_returns, as_of, days))
    return {
        "trades": len(returns),
        "wins": wins,
        "losses": sum(1 for p in pnls if p < 0),
        "win_rate": rounded(mpq(wins, len(returns)), 8) if returns else None,
        "pnl": canonical(sum(pnls, Decimal(0))),
        "roi": rounded(growth - 1, 8),
        "best_trade": rounded(max(returns), 8) if returns else None,
        "worst_trade": rounded(min(returns), 8) if returns else None,
        "max_drawdown": rounded(_max_drawdown(curve, start, as_of), 8),
        "volatility": volatility,
        "sharpe": sharpe,
    }, annual


def risk_class(annual_variance: mpq | None) -> int | None:
    if annual_variance is None:
        return None
    return next((c for c, b in enumerate(RISK_BANDS_SQUARED, start=1) if annual_variance < b), 7)


def risk_level(cls: int | None) -> str | None:
    return None if cls is None else "low" if cls <= 3 else "medium" if cls <= 5 else "high"


def strategy(kinds: Iterable[str]) -> str | None:
    found = set(kinds)
    return None if not found else "mixed" if len(found) > 1 else "spot" if found == {"spot"} else "futures"


def unrealized_pnl(open_trades: Iterable[Trade], marks: dict[str, Decimal]) -> mpq:
    """Σ (mark − average entry) × remaining qty of the open trades (the opposite for a
    short); average entry = Σ entry notional / Σ entry qty."""
    total = ZERO
    for t in open_trades:
        entry = mpq(t.entry_notional) / mpq(t.entry_qty)
        gain = (mpq(marks[t.symbol]) - entry) * mpq(t.qty)
        total += gain if t.side == "long" else -gain
    return total


@dataclass(frozen=True)
class Rollover:
    """What a record needs to move to a later time without reading its trades again,
    while no trade changes and no closed trade leaves a window: then only the daily
    returns gain days (each 0), which moves volatility, Sharpe and the risk class."""

    as_of: int
    first_open: int | None
    days: _Days
    #: the times after `as_of` at which a closed trade leaves a window, ascending
    edges: list[int]
    periods: dict[str, Any]

    def due_at(self) -> int | None:
        """The first time after `as_of` at which time alone changes the record."""
        if self.first_open is None:
            return None
        midnight = (self.as_of // DAY_US + 1) * DAY_US
        return min(midnight, self.edges[0]) if self.edges else midnight


def roll(r: Rollover, as_of: int) -> tuple[Rollover, int | None, str | None] | None:
    """The rollover, risk class and risk level of the record at a later `as_of`, or None
    if a trade left a window by then (the record must be computed from its trades)."""
    if as_of < r.as_of or (r.edges and r.edges[0] <= as_of):
        return None
    if r.first_open is None:  # no trades: nothing depends on the time but `as_of`
        return Rollover(as_of, None, r.days, r.edges, r.periods), None, None
    curve_first = r.first_open
    periods: dict[str, Any] = {}
    annual_90d = None
    for name, days in PERIODS.items():
        first, last = curve_first // DAY_US, as_of // DAY_US
        if days is not None:
            first = max(first, last - days + 1)
        i = bisect_left(r.days.days, first)
        volatility, sharpe, annual = _volatility_sharpe(last - first + 1, r.days.totals[i], r.days.squares[i])
        periods[name] = {**r.periods[name], "volatility": volatility, "sharpe": sharpe}
        if name == "90d":
            annual_90d = annual
    cls = risk_class(annual_90d)
    return Rollover(as_of, r.first_open, r.days, r.edges, periods), cls, risk_level(cls)


def record(
    provider: str,
    trades: Sequence[Trade],
    *,
    as_of: int,
    marks: dict[str, Decimal],
    standing: Standing,
    max_leverage: int | None,
) -> dict[str, Any]:
    """The provider's statistics as of `as_of`. `trades` are the trades its executions at
    or before `as_of` made; `marks` the latest price of every symbol it holds open."""
    return record_and_rollover(
        provider, trades, as_of=as_of, marks=marks, standing=standing, max_leverage=max_leverage
    )[0]


def record_and_rollover(
    provider: str,
    trades: Sequence[Trade],
    *,
    as_of: int,
    marks: dict[str, Decimal],
    standing: Standing,
    max_leverage: int | None,
) -> tuple[dict[str, Any], Rollover]:
    """`record`, and what moves it to a later time without its trades (`roll`)."""
    curve = _curve(trades)
    open_trades = [t for t in trades if t.closed_at is None]
    periods: dict[str, Any] = {}
    annual_90d = None
    day_returns = _day_returns(curve, as_of)
    for name, days in PERIODS.items():
        periods[name], annual = _period(curve, day_returns, days, as_of)
        if name == "90d":
            annual_90d = annual
    cls = risk_class(annual_90d)
    points = [] if curve.first_open is None else [(curve.first_open, START)]
    points += zip(curve.times, curve.values, strict=True)
    edges = sorted(edge for t in curve.times for days in (7, 30, 90) if (edge := t + days * DAY_US) > as_of)
    record = {
        "provider": provider,
        "as_of": format_time(as_of),
        "strategy": strategy(t.kind for t in trades),
        "max_leverage": max_leverage,
        "followers": standing.followers,
        "aum": standing.aum,
        "copiers_pnl": standing.copiers_pnl,
        "open_trades": len(open_trades),
        "unrealized_pnl": rounded(unrealized_pnl(open_trades, marks), 8),
        "risk_class": cls,
        "risk_level": risk_level(cls),
        "periods": periods,
        "equity_curve": [{"time": format_time(at), "equity": rounded(v, 2)} for at, v in points],
    }
    return record, Rollover(as_of, curve.first_open, day_returns, edges, periods)

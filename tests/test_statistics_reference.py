"""The statistics definitions of issue #14, each on a hand-computed case
(`pyservice/statistics_reference.py`)."""

from __future__ import annotations

from fractions import Fraction as F

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyservice.reference import format_decimal
from pyservice.statistics_reference import (
    DAY_US,
    Fill,
    build_trades,
    format_time,
    parse_time,
    provider_statistics,
    risk_class,
    rounded,
    sqrt_rounded,
)

T0 = parse_time("2026-11-02T00:00:00Z")  # a Monday
H = 3600 * 1_000_000


def fill(at: int, side: str, qty: str, price: str, equity: str = "10000", symbol: str = "BTC", kind: str = "spot",
         leverage: int = 1) -> Fill:  # fmt: skip
    return Fill(at, symbol, kind, side, F(qty), F(price), F(equity), leverage)


def round_trip(at: int, ret_pct: int, equity: str = "10000") -> list[Fill]:
    """A long of 100 units opened at `at` and closed an hour later for `ret_pct` % of equity."""
    exit_price = 100 + F(ret_pct) * F(equity) / 100 / 100
    return [fill(at, "buy", "100", "100", equity), fill(at + H, "sell", "100", format_decimal(exit_price), equity)]


def test_times_round_trip_and_print_the_fraction_only_when_not_zero() -> None:
    assert format_time(parse_time("2026-11-30T23:59:59Z")) == "2026-11-30T23:59:59Z"
    assert format_time(parse_time("2026-11-30T23:59:59.250Z")) == "2026-11-30T23:59:59.25Z"
    assert parse_time("1970-01-01T00:00:00.000001Z") == 1
    for bad in ["2026-11-30 23:59:59Z", "2026-02-30T00:00:00Z", "2026-11-30T23:59:59", "2026-11-30T23:59:59.1234567Z"]:
        with pytest.raises(ValueError, match="is not a time"):
            parse_time(bad)


def test_returns_compound_rather_than_sum() -> None:
    """+10 % then −10 % is −1 %, not 0."""
    stats = provider_statistics(round_trip(T0, 10) + round_trip(T0 + 2 * H, -10), {}, T0 + 4 * H)
    p = stats["periods"]["all"]
    assert (p["trades"], p["wins"], p["losses"], p["win_rate"]) == (2, 1, 1, "0.5")
    assert (p["roi"], p["pnl"], p["best_trade"], p["worst_trade"]) == ("-0.01", "0", "0.1", "-0.1")
    assert stats["equity_curve"] == [
        {"time": "2026-11-02T00:00:00Z", "equity": "10000"},
        {"time": "2026-11-02T01:00:00Z", "equity": "11000"},
        {"time": "2026-11-02T03:00:00Z", "equity": "9900"},
    ]
    assert p["max_drawdown"] == "0.1"  # 11000 → 9900


def test_a_reversal_through_zero_closes_one_trade_and_opens_the_next_at_that_fill() -> None:
    trades = build_trades([fill(T0, "buy", "1", "100", "5000"), fill(T0 + H, "sell", "3", "110", "7000")])
    assert [(t.direction, t.equity_at_open, t.open_time, t.close_time) for t in trades] == [
        (1, F(5000), T0, T0 + H),
        (-1, F(7000), T0 + H, None),
    ]
    assert (trades[0].pnl, trades[0].ret) == (F(10), F(1, 500))
    assert trades[1].remaining == 2 and trades[1].entry_notional == 220


def test_a_loss_beyond_everything_stops_the_curve_at_zero() -> None:
    fills = [fill(T0, "buy", "1", "100", "50", kind="perp", leverage=10), fill(T0 + H, "sell", "1", "20", "50")]
    fills += round_trip(T0 + 2 * H, 10)
    stats = provider_statistics(fills, {}, T0 + 4 * H)
    assert [p["equity"] for p in stats["equity_curve"]] == ["10000", "0", "0"]
    p = stats["periods"]["all"]
    assert (p["roi"], p["worst_trade"], p["max_drawdown"]) == ("-1", "-1.6", "1")
    assert (stats["strategy"], stats["max_leverage"]) == ("mixed", 10)


def test_drawdown_is_measured_from_the_value_at_the_period_start() -> None:
    """The 7d window starts after the +20 % trade: its peak is 12000, not the 10000 of the
    account's start, so the −25 % trade inside it is a 25 % drawdown, and the earlier peak
    counts though its point lies before the window."""
    fills = round_trip(T0, 20) + round_trip(T0 + 10 * DAY_US, -25, "12000")
    stats = provider_statistics(fills, {}, T0 + 12 * DAY_US)
    assert [p["equity"] for p in stats["equity_curve"]] == ["10000", "12000", "9000"]
    assert stats["periods"]["7d"]["max_drawdown"] == "0.25"
    assert stats["periods"]["7d"]["trades"] == 1
    assert stats["periods"]["all"]["roi"] == "-0.1"


def test_a_trade_closed_exactly_at_the_window_start_is_outside_it() -> None:
    close = T0 + H
    inside = provider_statistics(round_trip(T0, 10), {}, close + 7 * DAY_US - 1)["periods"]["7d"]
    edge = provider_statistics(round_trip(T0, 10), {}, close + 7 * DAY_US)["periods"]["7d"]
    assert (inside["trades"], inside["roi"]) == (1, "0.1")
    assert (edge["trades"], edge["roi"], edge["win_rate"], edge["best_trade"]) == (0, "0", None, None)


def test_days_without_trades_are_zero_returns() -> None:
    """Day 1: +10 %; days 2 and 3 nothing. Returns [0.1, 0, 0]: mean 1/30, sample variance
    1/300, volatility √(365/300), sharpe (1/30)/√(1/300)·√365."""
    stats = provider_statistics(round_trip(T0, 10), {}, T0 + 2 * DAY_US + H)
    p = stats["periods"]["all"]
    assert p["volatility"] == sqrt_rounded(F(365, 300), 8) == "1.10302614"
    assert p["sharpe"] == pytest.approx((1 / 30) / (1 / 300) ** 0.5 * 365**0.5, rel=1e-12)
    assert stats["periods"]["7d"]["volatility"] == "1.10302614"  # only 3 days exist
    one_day = provider_statistics(round_trip(T0, 10), {}, T0 + 2 * H)["periods"]["all"]
    assert (one_day["volatility"], one_day["sharpe"]) == (None, None)


def test_an_open_loss_is_visible_though_the_curve_has_no_point_for_it() -> None:
    fills = [fill(T0, "sell", "2", "100"), fill(T0 + H, "sell", "2", "110"), fill(T0 + 2 * H, "buy", "1", "90")]
    stats = provider_statistics(fills, {"BTC": F("130")}, T0 + 3 * H)
    # short 4 at an average of 105, 3 left: (105 − 130) × 3
    assert (stats["open_trades"], stats["unrealized_pnl"]) == (1, "-75")
    assert stats["periods"]["all"]["trades"] == 0
    assert stats["equity_curve"] == [{"time": "2026-11-02T00:00:00Z", "equity": "10000"}]


def test_ratios_round_half_even_and_square_roots_exactly() -> None:
    assert sqrt_rounded(F("6.25"), 0) == "2"  # a tie, to even
    assert sqrt_rounded(F("12.25"), 0) == "4"
    assert sqrt_rounded(F(2), 8) == "1.41421356"
    assert sqrt_rounded(F(0), 8) == "0"


@pytest.mark.parametrize(
    ("sigma", "cls"),
    [("0", 1), ("0.00499999", 1), ("0.005", 2), ("0.0499", 2), ("0.05", 3), ("0.12", 4), ("0.2", 5), ("0.3", 6),
     ("0.79999999", 6), ("0.8", 7), ("3", 7)],
)  # fmt: skip
def test_risk_classes_follow_the_priips_bands(sigma: str, cls: int) -> None:
    assert risk_class(F(sigma) ** 2) == cls


@st.composite
def fill_streams(draw: st.DrawFn) -> list[Fill]:
    """Fills on two symbols at non-decreasing times over about four months."""
    at, out = T0, []
    for _ in range(draw(st.integers(0, 40))):
        at += draw(st.integers(0, 9 * DAY_US))
        symbol = draw(st.sampled_from(["BTC", "ETH-PERP"]))
        out.append(
            fill(
                at,
                draw(st.sampled_from(["buy", "sell"])),
                str(draw(st.integers(1, 5))),
                str(draw(st.integers(50, 150))),
                str(draw(st.integers(200, 5000))),
                symbol,
                "perp" if symbol.endswith("PERP") else "spot",
                draw(st.integers(1, 20)),
            )
        )
    return out


@settings(max_examples=100, deadline=None)
@given(fill_streams())
def test_the_figures_hang_together(fills: list[Fill]) -> None:
    as_of = fills[-1].time if fills else T0
    stats = provider_statistics(fills, {}, as_of)
    periods = stats["periods"]
    assert [periods[p]["trades"] for p in ("7d", "30d", "90d", "all")] == sorted(
        periods[p]["trades"] for p in ("7d", "30d", "90d", "all")
    )
    for p in periods.values():
        assert p["wins"] + p["losses"] <= p["trades"]
        assert F(0) <= F(p["max_drawdown"]) <= 1
    trades = build_trades(fills)
    closed = [t for t in trades if t.close_time is not None]
    # `all` compounds to the curve's last value
    growth = F(1)
    for t in closed:
        growth *= max(F(0), 1 + t.ret)
    assert periods["all"]["roi"] == rounded(growth - 1, 8)
    assert (stats["equity_curve"][-1]["equity"] if trades else None) == (
        rounded(10_000 * growth, 2) if trades else None
    )
    # flat at the end: the trades' PnL is the cash the fills moved
    if all(t.close_time is not None for t in trades):
        cash = sum(((1 if f.side == "sell" else -1) * f.qty * f.price for f in fills), F(0))
        assert F(periods["all"]["pnl"]) == cash

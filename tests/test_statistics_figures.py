"""The shipped statistics (`pyservice/statistics/figures.py`, fed by the builder) against
the plain-Python `Fraction` spec (`pyservice/statistics_reference.py`) on random
time-stamped executions: exact strings, `sharpe` within a relative 1e-9."""

from __future__ import annotations

import math
from decimal import Decimal
from fractions import Fraction
from typing import Any

from hypothesis import event, given, settings
from hypothesis import strategies as st

from pyservice import statistics_reference as spec
from pyservice.statistics import figures
from pyservice.statistics.builder import StatisticsBuilder
from pyservice.venue_time import DAY_US, parse_time

T0 = parse_time("2026-09-01T00:00:00Z")
KINDS = {"BTC": "spot", "ETH": "perp", "SOL": "perp"}


@st.composite
def executions(draw: st.DrawFn) -> tuple[list[spec.Fill], int]:
    """A provider's fills with non-decreasing times over up to ~120 days (often several in
    one day, sometimes days apart), and a time T at or after some of them."""
    n = draw(st.integers(0, 30))
    at = T0 + draw(st.integers(0, DAY_US))
    fills = []
    position: dict[str, int] = {}
    for _ in range(n):
        at += draw(st.sampled_from([0, 1, 3_600_000_000, DAY_US - 1, DAY_US, 3 * DAY_US, 7 * DAY_US, 20 * DAY_US]))
        symbol = draw(st.sampled_from(sorted(KINDS)))
        held = position.get(symbol, 0)
        side = draw(st.sampled_from(["buy", "sell"] if KINDS[symbol] == "perp" or held > 0 else ["buy"]))
        qty = draw(st.integers(1, 40))
        if KINDS[symbol] == "spot" and side == "sell":
            qty = min(qty, held)
        # sometimes exactly flat, so trades close
        if held and draw(st.booleans()) and (side == "sell") == (held > 0):
            qty = abs(held)
        position[symbol] = held + (qty if side == "buy" else -qty)
        price = Fraction(draw(st.integers(1, 400)), draw(st.sampled_from([1, 4, 100])))
        # small equities make returns beyond −100 % (the curve stops at 0)
        equity = Fraction(draw(st.one_of(st.integers(1, 500), st.integers(1, 10**8))), 100)
        lev = 1 if KINDS[symbol] == "spot" else draw(st.integers(1, 20))
        fills.append(spec.Fill(at, symbol, KINDS[symbol], side, Fraction(qty, 10), price, equity, lev))
    as_of = at + draw(st.sampled_from([0, 1, DAY_US, 7 * DAY_US, 100 * DAY_US]))
    if fills and draw(st.booleans()):
        as_of = draw(st.sampled_from(fills)).time
    return fills, as_of


def _dec(x: Fraction) -> Decimal:
    return Decimal(x.numerator) / Decimal(x.denominator)  # finite: the test's numbers are


def shipped(fills: list[spec.Fill], marks: dict[str, Fraction], as_of: int) -> dict[str, Any]:
    builder = StatisticsBuilder(kinds=dict(KINDS))
    for seq, f in enumerate(fills):
        if f.time <= as_of:
            builder.execution(seq, f.time, "P", f"x{seq}", f.symbol, f.side, _dec(f.qty), _dec(f.price),
                              _dec(f.provider_equity), f.leverage)  # fmt: skip
    for symbol, price in marks.items():
        builder.mark(symbol, _dec(price))
    return builder.record("P", as_of, figures.Standing())


def assert_same(got: dict[str, Any], want: dict[str, Any]) -> None:
    got = {k: v for k, v in got.items() if k not in ("provider", "followers", "aum", "copiers_pnl")}
    for name in spec.PERIODS:
        g, w = got["periods"][name], want["periods"][name]
        gs, ws = g.pop("sharpe"), w.pop("sharpe")
        assert (gs is None) == (ws is None), (name, gs, ws)
        if gs is not None:
            assert math.isclose(gs, ws, rel_tol=1e-9), (name, gs, ws)
    assert got == want


@settings(max_examples=300, deadline=None)
@given(executions(), st.dictionaries(st.sampled_from(sorted(KINDS)), st.integers(1, 500).map(Fraction), max_size=3))
def test_the_shipped_statistics_are_the_spec(case: tuple[list[spec.Fill], int], extra_marks: dict[str, Fraction]):
    fills, as_of = case
    # the marks as of T: the last fill price of each symbol, then later marks
    marks = {f.symbol: f.price for f in fills if f.time <= as_of}
    marks.update({s: p for s, p in extra_marks.items() if s in marks})
    assert_same(shipped(fills, {s: p for s, p in extra_marks.items() if s in marks}, as_of),
                spec.provider_statistics(fills, marks, as_of))  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(executions(), st.sampled_from([0, 1, DAY_US // 2, DAY_US, 3 * DAY_US, 8 * DAY_US, 40 * DAY_US]))
def test_a_rolled_record_is_the_record_at_the_later_time(case: tuple[list[spec.Fill], int], later: int):
    """While no trade changes and none leaves a window, moving a record to a later time
    without its trades (`figures.roll`, the projector's midnight refresh) gives what
    computing it from the trades gives."""
    fills, as_of = case
    builder = StatisticsBuilder(kinds=dict(KINDS))
    for seq, f in enumerate(fills):
        if f.time <= as_of:
            builder.execution(seq, f.time, "P", f"x{seq}", f.symbol, f.side, _dec(f.qty), _dec(f.price),
                              _dec(f.provider_equity), f.leverage)  # fmt: skip
    trades = builder.trades.get("P", [])
    _, rollover = figures.record_and_rollover("P", trades, as_of=as_of, marks=builder.marks,
                                              standing=figures.Standing(), max_leverage=None)  # fmt: skip
    rolled = figures.roll(rollover, as_of + later)
    want = figures.record("P", trades, as_of=as_of + later, marks=builder.marks, standing=figures.Standing(),
                          max_leverage=None)  # fmt: skip
    event("full" if rolled is None else "rolled with trades" if rollover.first_open else "rolled, no trades")
    if rolled is None:  # a trade left a window: only a full computation will do
        assert rollover.edges and rollover.edges[0] <= as_of + later
        return
    moved, cls, level = rolled
    assert (moved.periods, cls, level) == (want["periods"], want["risk_class"], want["risk_level"])
    due = rollover.due_at()
    assert due is None or due > as_of

"""Provider trades (pyservice/statistics/trades.py) against properties that do not share its
bookkeeping: the running net position, and the provider's total cash flow."""

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyservice.statistics.trades import TradeBook

quantities = st.decimals(min_value=Decimal("0.001"), max_value=Decimal("1000"), places=3)
prices = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("100000"), places=2)
executions = st.lists(
    st.tuples(
        st.sampled_from(["BTC", "ETH"]), st.sampled_from(["buy", "sell"]), quantities, prices, st.integers(1, 10**9)
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(executions)
def test_trades_follow_the_position_and_add_up_to_the_cash_flow(execs):
    book = TradeBook()
    trades = {}
    net: dict[str, Decimal] = {}
    flow: dict[str, Decimal] = {}
    for seq, (symbol, side, qty, price, equity) in enumerate(execs, start=1):
        before = net.get(symbol, Decimal(0))
        sign = 1 if side == "buy" else -1
        net[symbol] = before + sign * qty
        flow[symbol] = flow.get(symbol, Decimal(0)) - sign * qty * price
        changed = book.execution(seq, "P", f"x{seq}", symbol, side, qty, price, Decimal(equity), 1, at=seq, kind="spot")
        for t in changed:
            trades[t.key] = t
        # a trade opens exactly when the position leaves zero or changes sign, at this
        # execution's equity
        opened = [t for t in changed if t.opened_seq == seq]
        crosses = before == 0 or (before > 0) != (net[symbol] > 0)
        assert len(opened) == (1 if crosses and net[symbol] != 0 else 0)
        assert all(t.equity_at_open == equity for t in opened)
        # the open trade is the position
        t = book.open.get(("P", symbol))
        assert (t.qty * (1 if t.side == "long" else -1) if t else 0) == net[symbol]
    for t in trades.values():
        assert t.entry_qty - t.exit_qty == t.qty and 0 < t.max_qty <= t.entry_qty
        assert (t.pnl is None) == (t.closed_seq is None) == (t.qty > 0)
    for symbol, position in net.items():
        if position == 0:  # flat: the closed trades' pnl is all the money the symbol made
            assert sum(t.pnl for t in trades.values() if t.symbol == symbol) == flow[symbol]


def test_a_short_gains_when_the_price_falls():
    book = TradeBook()
    book.execution(1, "P", "a", "BTC", "sell", Decimal("2"), Decimal("100"), Decimal("1000"), 3, at=0, kind="perp")
    [t] = book.execution(2, "P", "b", "BTC", "buy", Decimal("2"), Decimal("90"), Decimal("1020"), 3, at=0, kind="perp")
    assert (t.side, t.pnl, t.trade_return, t.leverage) == ("short", Decimal("20"), Decimal("0.02"), 3)


def test_a_reversal_closes_then_opens():
    book = TradeBook()
    book.execution(1, "P", "a", "BTC", "buy", Decimal("1"), Decimal("100"), Decimal("1000"), 1, at=0, kind="perp")
    closed, opened = book.execution(
        2, "P", "b", "BTC", "sell", Decimal("1.5"), Decimal("110"), Decimal("1010"), 2, at=0, kind="perp"
    )
    assert (closed.pnl, closed.closed_exec_id, closed.exit_qty) == (Decimal("10"), "b", Decimal("1"))
    assert (opened.side, opened.qty, opened.entry_notional, opened.equity_at_open, opened.leverage) == (
        "short",
        Decimal("0.5"),
        Decimal("55.0"),
        Decimal("1010"),
        2,
    )


@pytest.mark.parametrize("bad", [("0", "1", "1"), ("1", "-1", "1"), ("1", "1", "0")])
def test_nonpositive_numbers_are_refused_and_change_nothing(bad):
    book = TradeBook()
    with pytest.raises(ValueError):
        book.execution(1, "P", "a", "BTC", "buy", *map(Decimal, bad), 1, at=0, kind="perp")
    assert book.open == {}


def test_an_inexact_product_is_an_error_not_a_rounding():
    book = TradeBook()
    huge = Decimal("1" * 600)
    with pytest.raises(ArithmeticError):
        book.execution(1, "P", "a", "BTC", "buy", huge, huge, Decimal(1), 1, at=0, kind="perp")
    assert book.open == {}

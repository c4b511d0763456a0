"""Balances and IOC matching (`pyservice.venue_sim.accounts`)."""

from __future__ import annotations

import random

import pytest

from pyservice.protocol import Fill, Instrument, NewOrder, Reject
from pyservice.venue_sim import fixed
from pyservice.venue_sim.accounts import Account, Matcher
from pyservice.venue_sim.stats import VenueStats

BTC = Instrument(0, 0, "BTCUSDT", "spot", "0.01", "0.00001", "0.00001", "5")
ETH = Instrument(0, 0, "ETHUSDT-PERP", "perp", "0.01", "0.001", "0.001", "5")


def money(text: str) -> int:
    return fixed.parse(text, fixed.MONEY_DIGITS)


def qty(text: str) -> int:
    return fixed.parse(text)


def make(cash: str = "1000", partial_fill_pct: float = 0.0) -> tuple[Matcher, Account]:
    m = Matcher(VenueStats(), random.Random(1), partial_fill_pct)
    m.set_instrument(BTC)
    m.set_instrument(ETH)
    m.set_mark("BTCUSDT", "50000")
    m.set_mark("ETHUSDT-PERP", "2500")
    return m, m.open_account("f1", "p1", money(cash))


_ids = iter(range(10**9))


def order(
    side: str = "buy",
    q: str = "0.01",
    price: str | None = None,
    *,
    symbol: str = "BTCUSDT",
    reduce_only: bool = False,
    leverage: int = 1,
    follower: str = "f1",
    cid: str | None = None,
) -> NewOrder:
    return NewOrder(
        cid or f"c{next(_ids)}",
        follower,
        "p1",
        symbol,
        side,  # type: ignore[arg-type]
        "market" if price is None else "limit_ioc",
        q,
        price,
        reduce_only,
        leverage,
    )


def one(m: Matcher, o: NewOrder) -> Fill | Reject:
    fills, rejects = m.match([o])
    assert len(fills) + len(rejects) == 1
    return (fills or rejects)[0]


def test_ioc_limit_fills_at_the_mark_up_to_the_limit_boundary() -> None:
    m, _ = make(cash="100000")
    assert one(m, order("buy", "0.01", "50000", cid="a")) == ("a", "0.01", "50000")  # mark == limit
    assert one(m, order("buy", "0.01", "50001.5", cid="b")) == ("b", "0.01", "50000")  # at the mark
    assert one(m, order("buy", "0.01", "49999.99", cid="c")) == ("c", "expired")
    assert one(m, order("sell", "0.01", "50000", cid="d")) == ("d", "0.01", "50000")
    assert one(m, order("sell", "0.01", "50000.01", cid="e")) == ("e", "expired")
    assert one(m, order("sell", "0.01", "45000", cid="f")) == ("f", "0.01", "50000")


def test_market_fills_at_the_mark_and_a_symbol_without_mark_expires() -> None:
    m, _ = make()
    m.set_mark("BTCUSDT", "40000.5")
    assert one(m, order("buy", "0.001", cid="a")) == ("a", "0.001", "40000.5")
    m.set_instrument(Instrument(0, 0, "SOLUSDT", "spot", "0.001", "0.01", "0.01", "5"))
    assert one(m, order("buy", "0.1", symbol="SOLUSDT", cid="b")) == ("b", "expired")


def test_exact_spot_balances() -> None:
    m, acct = make(cash="1000")
    one(m, order("buy", "0.01", "50250"))
    assert acct.cash == money("500") and acct.position("BTCUSDT") == qty("0.01")
    m.set_mark("BTCUSDT", "51000.01")
    one(m, order("sell", "0.004", "50000"))
    assert acct.cash == money("704.00004")  # 500 + 0.004 × 51000.01
    assert acct.position("BTCUSDT") == qty("0.006")
    assert acct.equity(m.marks) == money("1010.00010")


def test_exact_perp_balances_margin_pnl_and_a_flip() -> None:
    m, acct = make(cash="1000")
    one(m, order("buy", "2", "2512.5", symbol="ETHUSDT-PERP", leverage=10))
    assert acct.cash == money("1000") and acct.margin == money("500")
    m.set_mark("ETHUSDT-PERP", "2400")
    one(m, order("sell", "1", symbol="ETHUSDT-PERP", reduce_only=True, leverage=10))
    assert acct.cash == money("900") and acct.margin == money("250")  # -100 realized
    m.set_mark("ETHUSDT-PERP", "2600")
    # not reduce-only: closes the long 1 (+100) and opens a short 2 at 2600, margin 520
    assert one(m, order("sell", "3", symbol="ETHUSDT-PERP", leverage=10))[1] == "3"
    assert acct.cash == money("1000") and acct.margin == money("520")
    assert acct.position("ETHUSDT-PERP") == -qty("2")
    m.set_mark("ETHUSDT-PERP", "2550")
    assert acct.equity(m.marks) == money("1100")


def test_perp_margin_rounds_up_to_16_decimals() -> None:
    m, acct = make()
    one(m, order("buy", "0.001", symbol="ETHUSDT-PERP", leverage=3))
    m.set_mark("ETHUSDT-PERP", "2500.01")
    one(m, order("buy", "0.001", symbol="ETHUSDT-PERP", leverage=3))
    # 2.5 / 3 and 2.50001 / 3, each rounded up at the 16th decimal
    assert acct.margin == money("0.8333333333333334") + money("0.8333366666666667")


def test_fifo_lots_realize_in_order() -> None:
    m, acct = make(cash="2000")
    one(m, order("buy", "1", symbol="ETHUSDT-PERP", leverage=5))  # lot 1 at 2500
    m.set_mark("ETHUSDT-PERP", "2600")
    one(m, order("buy", "1", symbol="ETHUSDT-PERP", leverage=5))  # lot 2 at 2600
    m.set_mark("ETHUSDT-PERP", "2700")
    one(m, order("sell", "1.5", symbol="ETHUSDT-PERP", reduce_only=True, leverage=5))
    # lot 1 whole (+200), half of lot 2 (+50); lot 2's remaining 0.5 holds 0.5 × 2600 / 5
    assert acct.cash == money("2250") and acct.margin == money("260")


def test_partial_fills_round_down_to_step_and_keep_at_least_one_step() -> None:
    m, acct = make(cash="100000", partial_fill_pct=100)
    for cid in "abcdefghij":
        fill = one(m, order("buy", "0.0001", "50000", cid=cid))  # 10 steps
        filled = qty(fill[1])
        assert 0 < filled < qty("0.0001") and filled % qty("0.00001") == 0
    assert m.stats.partial_fills == 10
    assert one(m, order("buy", "0.00001", "50000", cid="k"))[1] == "0.00001"  # one step: whole
    spent = money("100000") - acct.cash
    assert spent == acct.position("BTCUSDT") * qty("50000")


def test_partial_fill_pct_is_the_share_of_orders() -> None:
    m, _ = make(cash="1000000", partial_fill_pct=30)
    fills, _ = m.match([order("buy", "0.001", "50000") for _ in range(2000)])
    partial = sum(qty_text != "0.001" for _, qty_text, _ in fills)
    assert partial == m.stats.partial_fills and 450 < partial < 750


def test_reduce_only_clips_to_the_opposite_position_and_never_flips() -> None:
    m, acct = make(cash="1000")
    one(m, order("buy", "0.01", "50000"))
    assert one(m, order("sell", "0.02", symbol="BTCUSDT", reduce_only=True, cid="a")) == ("a", "0.01", "50000")
    assert acct.position("BTCUSDT") == 0 and acct.cash == money("1000")
    assert one(m, order("sell", "0.01", reduce_only=True, cid="b")) == ("b", "reduce_only")
    assert one(m, order("buy", "0.01", reduce_only=True, cid="c")) == ("c", "reduce_only")
    one(m, order("sell", "2", symbol="ETHUSDT-PERP", leverage=5))
    # a reduce-only sell on a short adds nothing; a reduce-only buy closes at most the short
    assert one(m, order("sell", "1", symbol="ETHUSDT-PERP", reduce_only=True, leverage=5, cid="d")) == (
        "d",
        "reduce_only",
    )
    assert one(m, order("buy", "5", symbol="ETHUSDT-PERP", reduce_only=True, leverage=5, cid="e")) == ("e", "2", "2500")
    assert acct.position("ETHUSDT-PERP") == 0 and acct.margin == 0 and acct.cash == money("1000")


def test_insufficient_funds_changes_nothing() -> None:
    m, acct = make(cash="500")
    assert one(m, order("buy", "0.01001", "50000", cid="a")) == ("a", "insufficient_funds")
    assert one(m, order("sell", "0.01", "50000", cid="b")) == ("b", "insufficient_funds")  # spot: no short
    assert one(m, order("buy", "1", symbol="ETHUSDT-PERP", leverage=4, cid="c")) == ("c", "insufficient_funds")
    assert acct.cash == money("500") and acct.margin == 0 and acct.qty == {}
    assert one(m, order("buy", "1", symbol="ETHUSDT-PERP", leverage=5, cid="d"))[1] == "1"  # margin 500: fits
    assert one(m, order("buy", "0.001", "50000", cid="e")) == ("e", "insufficient_funds")  # margin is held
    assert m.stats.rejects == {"insufficient_funds": 4}


def test_a_flip_needs_margin_for_its_opening_part() -> None:
    m, acct = make(cash="300")
    one(m, order("buy", "1", symbol="ETHUSDT-PERP", leverage=10))
    m.set_mark("ETHUSDT-PERP", "2300")  # closing the long realizes -200: 100 left
    assert one(m, order("sell", "2", symbol="ETHUSDT-PERP", leverage=10, cid="a")) == ("a", "insufficient_funds")
    assert acct.position("ETHUSDT-PERP") == qty("1") and acct.cash == money("300")
    assert one(m, order("sell", "1.4", symbol="ETHUSDT-PERP", leverage=10, cid="b"))[1] == "1.4"  # margin 92
    assert acct.position("ETHUSDT-PERP") == -qty("0.4") and acct.cash == money("100")


def test_duplicates_are_rejected_for_the_whole_session_and_do_nothing() -> None:
    m, acct = make(cash="1000")
    fills, rejects = m.match([order("buy", "0.01", "50000", cid="x"), order("buy", "0.01", "50000", cid="x")])
    assert fills == [("x", "0.01", "50000")] and rejects == [("x", "duplicate")]
    assert one(m, order("buy", "0.001", "1", cid="y")) == ("y", "expired")
    assert one(m, order("buy", "0.001", "50000", cid="y")) == ("y", "duplicate")  # even after a reject
    assert one(m, order("sell", "0.01", "50000", cid="x")) == ("x", "duplicate")
    assert acct.cash == money("500") and acct.position("BTCUSDT") == qty("0.01")
    assert m.stats.duplicates == 3


@pytest.mark.parametrize(
    "o",
    [
        order(follower="nobody"),
        order(symbol="DOGEUSDT"),
        order(q="0.000015"),  # off the step grid
        order(q="0.000000001"),  # more than 8 decimals
        order(q="0"),
        order(price="50000.001"),  # off the tick grid
        order(price="0"),
        order(leverage=2),  # spot
        order(symbol="ETHUSDT-PERP", q="1", leverage=126),
        NewOrder("c1", "f1", "p1", "BTCUSDT", "buy", "limit_ioc", "0.01", None, False, 1),
        order(symbol="ETHUSDT-PERP", q="0.0001"),  # off the step grid
        # text the venue reads unchecked (UncheckedOrder): bad names and numbers are invalid
        order(follower="f1\n"),
        order(symbol=""),
        order(q="1e-2"),
        order(q="0.01\n"),
        order(q="-0.01"),
        order(q=" 0.01"),
        order(price="5e4"),
        order(price="50000."),
        order(q="0.0100000000000000000"),  # 19 decimals: beyond the protocol's Decimal
        order(q="00000000000000.01"),  # 14 integer digits
    ],
)
def test_invalid_orders(o: NewOrder) -> None:
    m, acct = make()
    assert one(m, o) == (o.client_order_id, "invalid")
    assert acct.cash == money("1000")


def test_min_qty_binds_openings_not_reduce_only_closes() -> None:
    m, acct = make()
    m.set_instrument(Instrument(0, 0, "XRPUSDT", "spot", "0.0001", "0.1", "1", "5"))
    m.set_mark("XRPUSDT", "2")
    assert one(m, order("buy", "0.5", symbol="XRPUSDT", cid="a")) == ("a", "invalid")
    assert one(m, order("buy", "1.5", symbol="XRPUSDT", cid="b")) == ("b", "1.5", "2")
    assert one(m, order("sell", "0.5", symbol="XRPUSDT", reduce_only=True, cid="c")) == ("c", "0.5", "2")
    assert acct.position("XRPUSDT") == qty("1")


def test_accounts_are_per_relationship() -> None:
    m, a1 = make(cash="1000")
    a2 = m.open_account("f1", "p2", money("1000"))
    one(m, order("sell", "1", symbol="ETHUSDT-PERP", leverage=5))
    o = NewOrder("r1", "f1", "p2", "ETHUSDT-PERP", "buy", "market", "1", None, True, 5)
    assert one(m, o) == ("r1", "reduce_only")  # p2's account holds nothing
    assert a1.position("ETHUSDT-PERP") == -qty("1") and a2.qty == {}
    o = NewOrder("r2", "f1", "p3", "BTCUSDT", "buy", "market", "0.01", None, False, 1)
    assert one(m, o) == ("r2", "invalid")  # no relationship with p3


def test_one_report_per_order_in_order() -> None:
    m, _ = make(cash="1000")
    orders = [
        order("buy", "0.001", "50000", cid=f"o{i}") if i % 3 else order("buy", "0.001", "1", cid=f"o{i}")
        for i in range(30)
    ]
    outcomes: list[object] = []
    fills, rejects = m.match(orders, outcomes)  # type: ignore[arg-type]
    assert [f[0] for f in fills] == [o.client_order_id for i, o in enumerate(orders) if i % 3]
    assert [r[0] for r in rejects] == [o.client_order_id for i, o in enumerate(orders) if not i % 3]
    assert len(outcomes) == 30 and m.stats.fills == 20 and m.stats.rejects == {"expired": 10}


def test_instruments_and_marks_the_engine_would_refuse_change_nothing() -> None:
    m, _ = make()
    m.set_instrument(Instrument(0, 0, "BADUSDT", "spot", "0", "0.1", "0", "0"))
    m.set_mark("BTCUSDT", "1.123456789")
    m.set_mark("BTCUSDT", "0")
    assert "BADUSDT" not in m.instruments and m.marks["BTCUSDT"] == qty("50000")

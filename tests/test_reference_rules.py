"""Hand-written tests of every rule of docs/scenario-format.md.

Each test runs against both implementations (fixture ``replay`` in conftest.py:
``reference`` and ``rust``). Expected values are computed by hand in the comments,
never copied from an implementation's output. Client order ids are recomputed here
with an independent base62 encoder.
"""

import json
import re

import pytest
import xxhash

# --------------------------------------------------------------------------- helpers


def instrument(symbol="BTC", kind="spot", tick="0.01", step="0.001", min_qty="0", min_notional="0"):
    return {
        "symbol": symbol,
        "kind": kind,
        "tick": tick,
        "step": step,
        "min_qty": min_qty,
        "min_notional": min_notional,
    }


def scenario(events, instruments=None, providers=("P",), platform=None):
    obj = {
        "version": 1,
        "instruments": instruments if instruments is not None else [instrument()],
        "providers": [{"id": p} for p in providers],
        "events": events,
    }
    if platform is not None:
        obj["platform"] = platform
    return json.dumps(obj)


def follow(follower, allocation, provider="P", **settings):
    return {"type": "follow", "follower": follower, "provider": provider, "allocation": allocation, **settings}


def fill(exec_id, side, qty, price, provider_equity, symbol="BTC", provider="P", **extra):
    return {
        "type": "fill",
        "provider": provider,
        "exec_id": exec_id,
        "symbol": symbol,
        "side": side,
        "qty": qty,
        "price": price,
        "provider_equity": provider_equity,
        **extra,
    }


def mark(price, symbol="BTC"):
    return {"type": "mark", "symbol": symbol, "price": price}


def deposit(follower, amount, provider="P"):
    return {"type": "deposit", "follower": follower, "provider": provider, "amount": amount}


def withdraw(follower, amount, provider="P"):
    return {"type": "withdraw", "follower": follower, "provider": provider, "amount": amount}


def unfollow(follower, provider="P"):
    return {"type": "unfollow", "follower": follower, "provider": provider}


ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def cid(*source, follower):
    """Independent base62(xxh3_128(source) XOR xxh3_128(follower)), 22 chars, MSD first."""
    h = lambda b: int(xxhash.xxh3_128_hexdigest(b), 16)  # noqa: E731
    n = h("\x1f".join(source).encode("utf-8")) ^ h(follower.encode("utf-8"))
    out = ""
    for power in range(21, -1, -1):
        digit, n = divmod(n, 62**power)
        out += ALPHABET[digit]
    assert n == 0
    return out


def order(event, follower, side, type_, qty, price, reduce_only, order_id, symbol="BTC", provider="P", clamped=None):
    rec = {
        "event": event,
        "kind": "order",
        "follower": follower,
        "provider": provider,
        "symbol": symbol,
        "side": side,
        "type": type_,
        "qty": qty,
        "price": price,
        "reduce_only": reduce_only,
    }
    if clamped is not None:
        rec["clamped"] = clamped
    rec["client_order_id"] = order_id
    return rec


def open_order(event, follower, side, qty, price, exec_id, symbol="BTC", provider="P", clamped=None):
    return order(
        event,
        follower,
        side,
        "limit_ioc",
        qty,
        price,
        False,
        cid("f", provider, exec_id, "open", follower=follower),
        symbol,
        provider,
        clamped,
    )


def close_order(event, follower, side, qty, exec_id, symbol="BTC", provider="P"):
    return order(
        event,
        follower,
        side,
        "market",
        qty,
        None,
        True,
        cid("f", provider, exec_id, "close", follower=follower),
        symbol,
        provider,
    )


def stop_close(event, follower, side, qty, symbol="BTC", provider="P", leg="s"):
    return order(
        event,
        follower,
        side,
        "market",
        qty,
        None,
        True,
        cid(leg, provider, str(event), symbol, follower=follower),
        symbol,
        provider,
    )


def skip(event, follower, reason, provider="P"):
    return {"event": event, "kind": "skip", "follower": follower, "provider": provider, "reason": reason}


def stop(event, follower, provider="P"):
    return {"event": event, "kind": "stop", "follower": follower, "provider": provider, "reason": "max_loss"}


def error(event, message):
    return {"event": event, "kind": "error", "message": message}


def portfolio(follower, cash, equity, positions=(), status="active", provider="P"):
    return {
        "event": None,
        "kind": "portfolio",
        "follower": follower,
        "provider": provider,
        "status": status,
        "cash": cash,
        "equity": equity,
        "positions": [{"symbol": s, "qty": q} for s, q in positions],
    }


def assert_records(actual, expected):
    """Equal lists of records, key order included; show the first difference."""
    as_items = lambda records: [list(r.items()) for r in records]  # noqa: E731
    for i, (a, e) in enumerate(zip(actual, expected, strict=False)):
        assert list(a.items()) == list(e.items()), f"record {i} differs"
    assert len(actual) == len(expected), f"{len(actual)} records, expected {len(expected)}"
    assert as_items(actual) == as_items(expected)


def event_records(records, index):
    return [r for r in records if r["event"] == index]


SPOT = instrument("BTC", "spot", tick="0.01", step="0.001")
S0 = {"slippage_pct": "0"}


# --------------------------------------------------------------------------- sizing


def test_binance_example_proportional(replay):
    # Provider equity 1000 buys 0.01 BTC at 50000: notional 500 (half its equity).
    # a (equity 500): W = 0.01 x 500/1000 = 0.005 -> notional 250 (half of 500).
    #   caps: C1 = 500 x 100/100 x 1/50000 = 0.01, C2 = 500/50000 = 0.01 -> not < W.
    #   limit (default slippage 0.5): floor_to_tick(50000 x 1.005) = 50250.
    #   cash 500 - 0.005 x 50000 = 250, equity 250 + 0.005 x 50000 = 500.
    # b (equity 1000): W = 0.01 -> notional 500, like the provider; cash 500.
    records = replay(
        scenario(
            [
                follow("a", "500"),
                follow("b", "1000"),
                fill("e1", "buy", "0.01", "50000", "1000"),
            ]
        )
    )
    assert_records(
        records,
        [
            open_order(2, "a", "buy", "0.005", "50250", "e1"),
            open_order(2, "b", "buy", "0.01", "50250", "e1"),
            portfolio("a", "250", "500", [("BTC", "0.005")]),
            portfolio("b", "500", "1000", [("BTC", "0.01")]),
        ],
    )


def test_mexc_partial_close(replay):
    # X: step 1. a (1000) copies 1000 of a provider with equity 10000:
    #   W = 1000 x 1000/10000 = 100 (caps 1000/1 = 1000) -> buy 100 at 1, cash 900.
    # The provider (position 1000) sells 200 at 2: close = 200, not flat:
    #   cq = floor(100 x 200/1000) = 20 -> market sell 20, reduce_only.
    #   cash 900 + 20 x 2 = 940; position 80; equity 940 + 80 x 2 = 1100.
    x = instrument("X", "spot", tick="0.01", step="1")
    records = replay(
        scenario(
            [
                follow("a", "1000", **S0),
                fill("e1", "buy", "1000", "1", "10000", symbol="X"),
                fill("e2", "sell", "200", "2", "10000", symbol="X"),
            ],
            instruments=[x],
        )
    )
    assert_records(
        records,
        [
            open_order(1, "a", "buy", "100", "1", "e1", symbol="X"),
            close_order(2, "a", "sell", "20", "e2", symbol="X"),
            portfolio("a", "940", "1100", [("X", "80")]),
        ],
    )


def test_fixed_amount_and_perp_margin(replay):
    # Perp BTC tick 0.5 step 0.1. fixed_amount 100 at leverage 5, price 200:
    #   W = 100 x 5 / 200 = 2.5 (provider qty 7 is irrelevant).
    #   caps: C1 = 1000 x 100/100 x 5/200 = 25 = C2 -> not < W. q = 2.5.
    #   margin = ceil16(2.5 x 200 / 5) = 100 -> free cash 1000 - 100 = 900.
    # withdraw 900.5 fails; withdraw 900 -> cash 100, base 100.
    # equity = 100 + (200 - 200) x 2.5 = 100.
    perp = instrument("BTC", "perp", tick="0.5", step="0.1")
    records = replay(
        scenario(
            [
                follow("a", "1000", mode="fixed_amount", fixed_amount="100", **S0),
                fill("e1", "buy", "7", "200", "5000", leverage=5),
                withdraw("a", "900.5"),
                withdraw("a", "900"),
            ],
            instruments=[perp],
        )
    )
    assert_records(
        records,
        [
            open_order(1, "a", "buy", "2.5", "200", "e1"),
            error(2, "withdrawal 900.5 is above free cash 900"),
            portfolio("a", "100", "100", [("BTC", "2.5")]),
        ],
    )


def test_multiplier_mode_and_multiplier_ignored_otherwise(replay):
    # step 0.1, provider buys 1 at 100 with equity 1000.
    # a multiplier 2.5: W = 1 x 1000/1000 x 2.5 = 2.5 -> cash 1000 - 250 = 750.
    # b proportional (multiplier given but ignored): W = 1 -> cash 900.
    btc = instrument("BTC", "spot", tick="0.01", step="0.1")
    records = replay(
        scenario(
            [
                follow("a", "1000", mode="multiplier", multiplier="2.5", **S0),
                follow("b", "1000", multiplier="3", **S0),
                fill("e1", "buy", "1", "100", "1000"),
            ],
            instruments=[btc],
        )
    )
    assert_records(
        records,
        [
            open_order(2, "a", "buy", "2.5", "100", "e1"),
            open_order(2, "b", "buy", "1", "100", "e1"),
            portfolio("a", "750", "1000", [("BTC", "2.5")]),
            portfolio("b", "900", "1000", [("BTC", "1")]),
        ],
    )


def test_clamp_max_per_trade(replay):
    # W = 5 x 1000/1000 = 5; C1 = 1000 x 20/100 / 100 = 2; C2 = 1000/100 = 10.
    # binding C1 = 2 < 5 -> qty 2, clamped max_per_trade. cash 800.
    records = replay(
        scenario(
            [
                follow("a", "1000", max_per_trade_pct="20", **S0),
                fill("e1", "buy", "5", "100", "1000"),
            ]
        )
    )
    assert_records(
        records,
        [
            open_order(1, "a", "buy", "2", "100", "e1", clamped="max_per_trade"),
            portfolio("a", "800", "1000", [("BTC", "2")]),
        ],
    )


def test_clamp_free_cash_then_insufficient_balance(replay):
    # e1: W = 6; caps 10, 10 -> buy 6, cash 400.
    # e2: E = 400 + 6 x 100 = 1000, F = 400; W = 5; C1 = 10, C2 = 4 -> qty 4, free_cash.
    #     cash 0.
    # e3: F = 0 <= 0 -> skip insufficient_balance.
    records = replay(
        scenario(
            [
                follow("a", "1000", **S0),
                fill("e1", "buy", "6", "100", "1000"),
                fill("e2", "buy", "5", "100", "1000"),
                fill("e3", "buy", "1", "100", "1000"),
            ]
        )
    )
    assert_records(
        records,
        [
            open_order(1, "a", "buy", "6", "100", "e1"),
            open_order(2, "a", "buy", "4", "100", "e2", clamped="free_cash"),
            skip(3, "a", "insufficient_balance"),
            portfolio("a", "0", "1000", [("BTC", "10")]),  # 10 x 100
        ],
    )


def test_clamp_tie_is_max_per_trade(replay):
    # multiplier 3: W = 5 x 1000/1000 x 3 = 15; C1 = 1000/100 = 10 = C2 = 10.
    # tie -> C1 (max_per_trade) binds; 10 < 15 -> qty 10 clamped max_per_trade.
    records = replay(
        scenario(
            [
                follow("a", "1000", mode="multiplier", multiplier="3", **S0),
                fill("e1", "buy", "5", "100", "1000"),
            ]
        )
    )
    assert_records(
        records,
        [
            open_order(1, "a", "buy", "10", "100", "e1", clamped="max_per_trade"),
            portfolio("a", "0", "1000", [("BTC", "10")]),
        ],
    )


def test_cap_equal_to_wanted_is_not_clamped(replay):
    # W = 10 x 1000/1000 = 10 = C1 = C2 -> the cap is not < W: no clamped key.
    records = replay(
        scenario(
            [
                follow("a", "1000", **S0),
                fill("e1", "buy", "10", "100", "1000"),
            ]
        )
    )
    assert_records(records[:1], [open_order(1, "a", "buy", "10", "100", "e1")])
    assert "clamped" not in records[0]


def test_insufficient_balance_on_perp_margin(replay):
    # perp, leverage 1: W = 1 x 100/100 = 1, caps 100/100 = 1 -> buy 1, margin 100.
    # free cash 100 - 100 = 0 -> next fill: insufficient_balance.
    perp = instrument("BTC", "perp", tick="0.01", step="0.001")
    records = replay(
        scenario(
            [
                follow("a", "100", **S0),
                fill("e1", "buy", "1", "100", "100"),
                fill("e2", "buy", "1", "100", "100"),
            ],
            instruments=[perp],
        )
    )
    assert_records(
        records,
        [
            open_order(1, "a", "buy", "1", "100", "e1"),
            skip(2, "a", "insufficient_balance"),
            portfolio("a", "100", "100", [("BTC", "1")]),
        ],
    )


def test_below_min_qty(replay):
    # ETH step 0.001, min_qty 0.01. The provider (equity 10000) buys 0.01 at 2000.
    # a 1000: W = 0.01 x 1000/10000 = 0.001 < 0.01 -> below_min.
    # b 5000: W = 0.005 < 0.01 -> below_min.
    # c 10000: W = 0.01 (caps 10000/2000 = 5) -> buy 0.01; cash 10000 - 20 = 9980.
    # d 1: W = 0.000001 -> floor_to_step = 0 -> below_min.
    eth = instrument("ETH", "spot", tick="0.01", step="0.001", min_qty="0.01")
    records = replay(
        scenario(
            [
                follow("a", "1000", **S0),
                follow("b", "5000", **S0),
                follow("c", "10000", **S0),
                follow("d", "1", **S0),
                fill("e1", "buy", "0.01", "2000", "10000", symbol="ETH"),
            ],
            instruments=[eth],
        )
    )
    assert_records(
        event_records(records, 4),
        [
            skip(4, "a", "below_min"),
            skip(4, "b", "below_min"),
            open_order(4, "c", "buy", "0.01", "2000", "e1", symbol="ETH"),
            skip(4, "d", "below_min"),
        ],
    )


def test_below_min_notional(replay):
    # min_notional 25: c's qty 0.01 x 2000 = 20 < 25 -> below_min.
    # e 20000: W = 0.02, notional 40 >= 25 -> order.
    eth = instrument("ETH", "spot", tick="0.01", step="0.001", min_notional="25")
    records = replay(
        scenario(
            [
                follow("c", "10000", **S0),
                follow("e", "20000", **S0),
                fill("e1", "buy", "0.01", "2000", "10000", symbol="ETH"),
            ],
            instruments=[eth],
        )
    )
    assert_records(
        event_records(records, 2),
        [
            skip(2, "c", "below_min"),
            open_order(2, "e", "buy", "0.02", "2000", "e1", symbol="ETH"),
        ],
    )


def test_min_qty_off_step_grid(replay):
    # min_qty 0.0105 is not on the step (0.001) grid: 0.01 < 0.0105 -> below_min,
    # 0.011 >= 0.0105 -> order.
    eth = instrument("ETH", "spot", tick="0.01", step="0.001", min_qty="0.0105")
    records = replay(
        scenario(
            [
                follow("a", "10000", **S0),
                follow("b", "11000", **S0),
                fill("e1", "buy", "0.01", "2000", "10000", symbol="ETH"),
            ],
            instruments=[eth],
        )
    )
    assert_records(
        event_records(records, 2),
        [
            skip(2, "a", "below_min"),
            open_order(2, "b", "buy", "0.011", "2000", "e1", symbol="ETH"),
        ],
    )


def test_rounds_down_to_step_never_up(replay):
    # step 0.1: W = 1 x 2/3 = 0.666... -> 0.6 (not 0.7). cash 2 - 0.6 = 1.4.
    btc = instrument("BTC", "spot", tick="0.01", step="0.1")
    records = replay(
        scenario(
            [
                follow("a", "2", **S0),
                fill("e1", "buy", "1", "1", "3"),
            ],
            instruments=[btc],
        )
    )
    assert_records(
        records,
        [
            open_order(1, "a", "buy", "0.6", "1", "e1"),
            portfolio("a", "1.4", "2", [("BTC", "0.6")]),
        ],
    )


def test_below_step_on_partial_close_then_flat_closes_all(replay):
    # X step 1: W = 1000 x 1000/1000000 = 1 -> buy 1.
    # sell 200 of 1000: cq = floor(1 x 200/1000) = floor(0.2) = 0 -> below_step.
    # sell 800 (flat): cq = |fpos| = 1 -> market sell 1. cash 1000 - 1 + 1 = 1000.
    x = instrument("X", "spot", tick="0.01", step="1")
    records = replay(
        scenario(
            [
                follow("a", "1000", **S0),
                fill("e1", "buy", "1000", "1", "1000000", symbol="X"),
                fill("e2", "sell", "200", "1", "1000000", symbol="X"),
                fill("e3", "sell", "800", "1", "1000000", symbol="X"),
            ],
            instruments=[x],
        )
    )
    assert_records(
        records,
        [
            open_order(1, "a", "buy", "1", "1", "e1", symbol="X"),
            skip(2, "a", "below_step"),
            close_order(3, "a", "sell", "1", "e3", symbol="X"),
            portfolio("a", "1000", "1000"),
        ],
    )


def test_max_open_trades(replay):
    # a: max_open_trades 1 (JSON integer), b: "2" (digit string). Steps 1, price 10.
    # e1 A: both buy 1.  e2 B: a holds 1 position and none in B -> skip; b buys 1.
    # e3 A: a already holds A -> buys 1 (2 total); b too.
    # e4 sell A 2 (flat): both sell 2.  e5 B (provider adds 1): a holds 0 -> buys; b adds.
    a_ = instrument("A", "spot", tick="0.01", step="1")
    b_ = instrument("B", "spot", tick="0.01", step="1")
    records = replay(
        scenario(
            [
                follow("a", "1000", max_open_trades=1, **S0),
                follow("b", "1000", max_open_trades="2", **S0),
                fill("e1", "buy", "1", "10", "1000", symbol="A"),
                fill("e2", "buy", "1", "10", "1000", symbol="B"),
                fill("e3", "buy", "1", "10", "1000", symbol="A"),
                fill("e4", "sell", "2", "10", "1000", symbol="A"),
                fill("e5", "buy", "1", "10", "1000", symbol="B"),
            ],
            instruments=[a_, b_],
        )
    )
    # cash: a 1000 - 10 - 10 + 20 - 10 = 990; b 1000 - 10 - 10 - 10 + 20 - 10 = 980.
    assert_records(
        records,
        [
            open_order(2, "a", "buy", "1", "10", "e1", symbol="A"),
            open_order(2, "b", "buy", "1", "10", "e1", symbol="A"),
            skip(3, "a", "max_open_trades"),
            open_order(3, "b", "buy", "1", "10", "e2", symbol="B"),
            open_order(4, "a", "buy", "1", "10", "e3", symbol="A"),
            open_order(4, "b", "buy", "1", "10", "e3", symbol="A"),
            close_order(5, "a", "sell", "2", "e4", symbol="A"),
            close_order(5, "b", "sell", "2", "e4", symbol="A"),
            open_order(6, "a", "buy", "1", "10", "e5", symbol="B"),
            open_order(6, "b", "buy", "1", "10", "e5", symbol="B"),
            portfolio("a", "990", "1000", [("B", "1")]),
            portfolio("b", "980", "1000", [("B", "2")]),
        ],
    )


def test_max_open_trades_is_checked_before_balance(replay):
    # After e1 a has cash 0 and 1 position: a fill in B is skipped max_open_trades
    # (step 4.1) rather than insufficient_balance (step 4.3).
    a_ = instrument("A", "spot", tick="0.01", step="1")
    b_ = instrument("B", "spot", tick="0.01", step="1")
    records = replay(
        scenario(
            [
                follow("a", "100", max_open_trades=1, **S0),
                fill("e1", "buy", "10", "10", "100", symbol="A"),
                fill("e2", "buy", "1", "10", "100", symbol="B"),
                fill("e3", "buy", "1", "10", "100", symbol="A"),
            ],
            instruments=[a_, b_],
        )
    )
    assert_records(event_records(records, 2), [skip(2, "a", "max_open_trades")])
    assert_records(event_records(records, 3), [skip(3, "a", "insufficient_balance")])


def test_reversal_closes_all_then_opens_the_rest(replay):
    # perp ETH tick 0.01 step 0.01, default slippage 0.5.
    # e1 buy 2 at 100: W = 2, caps 10 -> buy 2, limit floor(100 x 1.005) = 100.5,
    #   margin 200.
    # e2 sell 5 at 110 against +2: close 2 (flat), open 3.
    #   close: market sell 2; realized (110 - 100) x 2 = 20 -> cash 1020.
    #   open: E = 1020, F = 1020; W = 3 x 1020/1000 = 3.06; C1 = C2 = 1020/110 = 9.27..
    #   -> sell 3.06, limit ceil(110 x 0.995 = 109.45) = 109.45.
    # mark 100: equity 1020 + (100 - 110) x -3.06 = 1050.6.
    # margin ceil16(3.06 x 110 / 1) = 336.6 -> free cash 1020 - 336.6 = 683.4.
    eth = instrument("ETH", "perp", tick="0.01", step="0.01")
    records = replay(
        scenario(
            [
                follow("a", "1000"),
                fill("e1", "buy", "2", "100", "1000", symbol="ETH"),
                fill("e2", "sell", "5", "110", "1000", symbol="ETH"),
                mark("100", symbol="ETH"),
                withdraw("a", "683.41"),
            ],
            instruments=[eth],
        )
    )
    assert_records(
        records,
        [
            open_order(1, "a", "buy", "2", "100.5", "e1", symbol="ETH"),
            close_order(2, "a", "sell", "2", "e2", symbol="ETH"),
            open_order(2, "a", "sell", "3.06", "109.45", "e2", symbol="ETH"),
            error(4, "withdrawal 683.41 is above free cash 683.4"),
            portfolio("a", "1020", "1050.6", [("ETH", "-3.06")]),
        ],
    )


def test_perp_realized_pnl_goes_to_cash(replay):
    # leverage 10: W = 1, C1 = 1000 x 10/1000 = 10 = C2 -> buy 1, margin 1000/10 = 100.
    # free cash 900: withdrawing 900.00000001 fails.
    # close at 1100: cash 1000 + (1100 - 1000) x 1 = 1100; margin released.
    perp = instrument("BTC", "perp", tick="0.5", step="0.001")
    records = replay(
        scenario(
            [
                follow("a", "1000", **S0),
                fill("e1", "buy", "1", "1000", "1000", leverage=10),
                withdraw("a", "900.00000001"),
                fill("e2", "sell", "1", "1100", "1000", leverage=10),
            ],
            instruments=[perp],
        )
    )
    assert_records(
        records,
        [
            open_order(1, "a", "buy", "1", "1000", "e1"),
            error(2, "withdrawal 900.00000001 is above free cash 900"),
            close_order(3, "a", "sell", "1", "e2"),
            portfolio("a", "1100", "1100"),
        ],
    )


def test_perp_fifo_lots(replay):
    # e1 buy 1 at 100 -> lot (1 @ 100), margin 100.
    # e2 buy 1 at 120: E = 1000 + (120 - 100) x 1 = 1020, F = 900;
    #    W = 1 x 1020/1000 = 1.02; C1 = 1020/120 = 8.5, C2 = 900/120 = 7.5 -> buy 1.02.
    # e3 sell 1 at 130 (provider 2 -> 1, not flat): cq = floor(2.02 x 1/2) = 1.01.
    #    FIFO: lot 1 @ 100 -> +30, then 0.01 of lot 1.02 @ 120 -> +0.1. cash 1030.1.
    #    remaining lot 1.01 @ 120; equity 1030.1 + (130 - 120) x 1.01 = 1040.2;
    #    margin 1.01 x 120 = 121.2 -> free cash 908.9.
    perp = instrument("BTC", "perp", tick="0.01", step="0.01")
    records = replay(
        scenario(
            [
                follow("a", "1000", **S0),
                fill("e1", "buy", "1", "100", "1000"),
                fill("e2", "buy", "1", "120", "1000"),
                fill("e3", "sell", "1", "130", "1000"),
                withdraw("a", "1000"),
            ],
            instruments=[perp],
        )
    )
    assert_records(
        records,
        [
            open_order(1, "a", "buy", "1", "100", "e1"),
            open_order(2, "a", "buy", "1.02", "120", "e2"),
            close_order(3, "a", "sell", "1.01", "e3"),
            error(4, "withdrawal 1000 is above free cash 908.9"),
            portfolio("a", "1030.1", "1040.2", [("BTC", "1.01")]),
        ],
    )


def test_margin_is_rounded_up_to_16_decimals(replay):
    # fixed_amount 0.05, leverage 7, price 100.01: W = 0.35/100.01 = 0.00349.. -> 0.003
    # (C1 = 1 x 7/100.01 = 0.0699.. > W). margin = ceil16(0.003 x 100.01 / 7)
    # = ceil16(0.30003/7 = 0.04286142857142857142..) = 0.0428614285714286.
    # free cash = 1 - 0.0428614285714286 = 0.9571385714285714.
    perp = instrument("BTC", "perp", tick="0.01", step="0.001")
    records = replay(
        scenario(
            [
                follow("a", "1", mode="fixed_amount", fixed_amount="0.05", **S0),
                fill("e1", "buy", "1", "100.01", "1000", leverage=7),
                withdraw("a", "1"),
            ],
            instruments=[perp],
        )
    )
    assert_records(
        records,
        [
            open_order(1, "a", "buy", "0.003", "100.01", "e1"),
            error(2, "withdrawal 1 is above free cash 0.9571385714285714"),
            portfolio("a", "1", "1", [("BTC", "0.003")]),
        ],
    )


# --------------------------------------------------------------------------- limit prices


def test_limit_prices_buy_rounds_down_sell_rounds_up(replay):
    # slippage 0.333, tick 0.01, perp step 1.
    # buy at 100: 100 x 1.00333 = 100.333 -> floor 100.33.
    # sell 2 at 100 against +1: close 1 (market), open 1: 100 x 0.99667 = 99.667 -> ceil
    # 99.67.
    perp = instrument("BTC", "perp", tick="0.01", step="1")
    records = replay(
        scenario(
            [
                follow("a", "1000", slippage_pct="0.333"),
                fill("e1", "buy", "1", "100", "1000"),
                fill("e2", "sell", "2", "100", "1000"),
            ],
            instruments=[perp],
        )
    )
    assert_records(
        event_records(records, 1) + event_records(records, 2),
        [
            open_order(1, "a", "buy", "1", "100.33", "e1"),
            close_order(2, "a", "sell", "1", "e2"),
            open_order(2, "a", "sell", "1", "99.67", "e2"),
        ],
    )


def test_limit_prices_coarse_tick(replay):
    # tick 0.5, slippage 1: buy 100.5 x 1.01 = 101.505 -> 101.5;
    # sell 100.5 x 0.99 = 99.495 -> 99.5. W = 1 (equities equal).
    perp = instrument("BTC", "perp", tick="0.5", step="1")
    records = replay(
        scenario(
            [
                follow("a", "1000", slippage_pct="1"),
                fill("e1", "buy", "1", "100.5", "1000"),
                fill("e2", "sell", "2", "100.5", "1000"),
            ],
            instruments=[perp],
        )
    )
    assert records[0]["price"] == "101.5"
    assert records[2]["price"] == "99.5"


def test_slippage_zero_and_default(replay):
    # slippage 0: limit = the fill price 123.45; default 0.5: floor(124.06725) = 124.06.
    records = replay(
        scenario(
            [
                follow("a", "1000", slippage_pct="0"),
                follow("b", "1000"),
                follow(
                    "c",
                    "1000",
                    slippage_pct=None,
                    mode=None,
                    stop_copy_on_close=None,
                    max_open_trades=None,
                    max_per_trade_pct=None,
                    max_loss_pct=None,
                    fixed_amount=None,
                    multiplier=None,
                ),
                fill("e1", "buy", "1", "123.45", "1000"),
            ]
        )
    )
    assert [r["price"] for r in event_records(records, 3)] == ["123.45", "124.06", "124.06"]


def test_fills_at_fill_price_not_limit(replay):
    # default slippage: limit 50250 but the fill is at 50000: cash 1000 - 0.01 x 50000.
    records = replay(scenario([follow("a", "1000"), fill("e1", "buy", "0.01", "50000", "1000")]))
    assert records[-1]["cash"] == "500"


# --------------------------------------------------------------------------- max loss


def test_max_loss_stop_at_exactly_the_threshold(replay):
    # buy 10 at 100 (W = 10 = caps): cash 0, equity = 10 x mark.
    # threshold 1000 x (1 - 10/100) = 900: mark 90.01 -> 900.1 > 900, no stop;
    # mark 90 -> 900 <= 900: stop, market sell 10 at 90 -> cash 900.
    # e2 afterwards copies nothing for the stopped a.
    records = replay(
        scenario(
            [
                follow("a", "1000", max_loss_pct="10", **S0),
                fill("e1", "buy", "10", "100", "1000"),
                mark("90.01"),
                mark("90"),
                fill("e2", "buy", "1", "90", "1000"),
            ]
        )
    )
    assert_records(
        records,
        [
            open_order(1, "a", "buy", "10", "100", "e1"),
            stop(3, "a"),
            stop_close(3, "a", "sell", "10"),
            portfolio("a", "900", "900", status="stopped"),
        ],
    )


def test_max_loss_short_perp(replay):
    # sell 2 at 1000, leverage 4: W = 2, caps 1000 x 4/1000 = 4 -> sell 2, limit
    # ceil(1000 x 1) = 1000. equity at m = 1000 + (m - 1000) x -2 = 3000 - 2m.
    # max_loss 20 -> threshold 800 <=> m >= 1100. mark 1099.5 -> 801, mark 1100 -> stop.
    # close: buy 2 at 1100, realized (1000 - 1100) x 2 = -200 -> cash 800.
    eth = instrument("ETH", "perp", tick="0.5", step="0.01")
    records = replay(
        scenario(
            [
                follow("a", "1000", max_loss_pct="20", **S0),
                fill("e1", "sell", "2", "1000", "1000", symbol="ETH", leverage=4),
                mark("1099.5", symbol="ETH"),
                mark("1100", symbol="ETH"),
            ],
            instruments=[eth],
        )
    )
    assert_records(
        records,
        [
            open_order(1, "a", "sell", "2", "1000", "e1", symbol="ETH"),
            stop(3, "a"),
            stop_close(3, "a", "buy", "2", symbol="ETH"),
            portfolio("a", "800", "800", status="stopped"),
        ],
    )


def test_max_loss_closes_positions_in_list_order(replay):
    # perp A, B (tick 1, step 1), leverage 10.
    # e1 B: W = 50, C1 = 1000 x 10/100 = 100 -> buy 50 @ 100, margin 500.
    # e2 A: W = 40, C1 = 100, C2 = 500 x 10/100 = 50 -> buy 40 @ 100, margin 400.
    # mark A 95: equity 1000 - 5 x 40 = 800 > 500.
    # mark B 94: equity 1000 - 200 - 300 = 500 <= 1000 x (1 - 50/100): stop,
    # closes B (opened first) then A. cash 1000 - 300 - 200 = 500.
    a_ = instrument("A", "perp", tick="1", step="1")
    b_ = instrument("B", "perp", tick="1", step="1")
    records = replay(
        scenario(
            [
                follow("a", "1000", max_loss_pct="50", **S0),
                fill("e1", "buy", "50", "100", "1000", symbol="B", leverage=10),
                fill("e2", "buy", "40", "100", "1000", symbol="A", leverage=10),
                mark("95", symbol="A"),
                mark("94", symbol="B"),
            ],
            instruments=[a_, b_],
        )
    )
    assert_records(
        records,
        [
            open_order(1, "a", "buy", "50", "100", "e1", symbol="B"),
            open_order(2, "a", "buy", "40", "100", "e2", symbol="A"),
            stop(4, "a"),
            stop_close(4, "a", "sell", "50", symbol="B"),
            stop_close(4, "a", "sell", "40", symbol="A"),
            portfolio("a", "500", "500", status="stopped"),
        ],
    )


def test_max_loss_in_global_follow_order_across_providers(replay):
    # a follows Q first, then b follows P. Both providers use exec_id e1 (ids are per
    # provider). Both buy 10 at 100 (cash 0). mark 90 -> both at 900 <= 900:
    # stops in follow order: a (Q) then b (P).
    records = replay(
        scenario(
            [
                follow("a", "1000", provider="Q", max_loss_pct="10", **S0),
                follow("b", "1000", provider="P", max_loss_pct="10", **S0),
                fill("e1", "buy", "10", "100", "1000", provider="Q"),
                fill("e1", "buy", "10", "100", "1000", provider="P"),
                mark("90"),
            ],
            providers=("P", "Q"),
        )
    )
    assert_records(
        event_records(records, 4),
        [
            stop(4, "a", provider="Q"),
            stop_close(4, "a", "sell", "10", provider="Q"),
            stop(4, "b", provider="P"),
            stop_close(4, "b", "sell", "10", provider="P"),
        ],
    )


def test_max_loss_pct_100_stops_at_zero_equity(replay):
    # perp step 1, leverage 20: W = 11, C1 = 1000 x 20/100 = 200 -> buy 11 at 100.
    # equity = 1000 + (m - 100) x 11; threshold 1000 x (1 - 100/100) = 0.
    # mark 9.1: 1000 - 90.9 x 11 = 0.1 > 0. mark 9.09: 1000 - 90.91 x 11 = -0.01 <= 0:
    # stop; sell 11 at 9.09 -> cash 1000 + (9.09 - 100) x 11 = -0.01.
    perp = instrument("BTC", "perp", tick="0.01", step="1")
    records = replay(
        scenario(
            [
                follow("a", "1000", max_loss_pct="100", **S0),
                fill("e1", "buy", "11", "100", "1000", leverage=20),
                mark("9.1"),
                mark("9.09"),
            ],
            instruments=[perp],
        )
    )
    assert_records(
        records,
        [
            open_order(1, "a", "buy", "11", "100", "e1"),
            stop(3, "a"),
            stop_close(3, "a", "sell", "11"),
            portfolio("a", "-0.01", "-0.01", status="stopped"),
        ],
    )


def test_deposit_raises_base_and_can_prevent_a_stop(replay):
    # buy 10 at 100 -> cash 0. deposit 500 -> cash 500, base 1500, threshold 1350.
    # mark 86: equity 860 + 500 = 1360 > 1350 (with base 1000 it would have stopped).
    # mark 85: 1350 <= 1350 -> stop, sell 10 at 85 -> cash 1350.
    # deposit / withdraw still work on a stopped relationship: 1350 + 100 - 50 = 1400.
    records = replay(
        scenario(
            [
                follow("a", "1000", max_loss_pct="10", **S0),
                fill("e1", "buy", "10", "100", "1000"),
                deposit("a", "500"),
                mark("86"),
                mark("85"),
                deposit("a", "100"),
                withdraw("a", "50"),
            ]
        )
    )
    assert_records(
        records,
        [
            open_order(1, "a", "buy", "10", "100", "e1"),
            stop(4, "a"),
            stop_close(4, "a", "sell", "10"),
            portfolio("a", "1400", "1400", status="stopped"),
        ],
    )


def test_withdrawal_can_trigger_a_stop(replay):
    # buy 5 at 100 -> cash 500. mark 90: equity 950 > 900.
    # withdraw 500 (free cash 500): cash 0, base 500, equity 450 <= 500 x 0.9 = 450 -> stop;
    # sell 5 at 90 -> cash 450.
    records = replay(
        scenario(
            [
                follow("a", "1000", max_loss_pct="10", **S0),
                fill("e1", "buy", "5", "100", "1000"),
                mark("90"),
                withdraw("a", "500"),
            ]
        )
    )
    assert_records(
        records,
        [
            open_order(1, "a", "buy", "5", "100", "e1"),
            stop(3, "a"),
            stop_close(3, "a", "sell", "5"),
            portfolio("a", "450", "450", status="stopped"),
        ],
    )


# --------------------------------------------------------------------------- unfollow


def test_unfollow_with_and_without_stop_copy_on_close_and_refollow(replay):
    # a (stop_copy_on_close default true) and b (false) both buy 1 at 100.
    # mark 110. unfollow a: market sell 1 at 110, leg u; no stop record.
    # unfollow b: no order. a follows again with 500 (a new relationship):
    # e2 buy 1 at 110 with provider equity 1100: W = 500/1100 = 0.4545.. -> 0.454;
    # cash 500 - 0.454 x 110 = 450.06, equity 500.
    records = replay(
        scenario(
            [
                follow("a", "1000", **S0),
                follow("b", "1000", stop_copy_on_close=False, **S0),
                fill("e1", "buy", "1", "100", "1000"),
                mark("110"),
                unfollow("a"),
                unfollow("b"),
                follow("a", "500", **S0),
                fill("e2", "buy", "1", "110", "1100"),
            ]
        )
    )
    assert_records(
        records,
        [
            open_order(2, "a", "buy", "1", "100", "e1"),
            open_order(2, "b", "buy", "1", "100", "e1"),
            stop_close(4, "a", "sell", "1", leg="u"),
            open_order(7, "a", "buy", "0.454", "110", "e2"),
            portfolio("a", "450.06", "500", [("BTC", "0.454")]),
        ],
    )


def test_refollow_goes_to_the_end_of_follow_order(replay):
    records = replay(
        scenario(
            [
                follow("a", "1000"),
                follow("b", "2000"),
                unfollow("a"),
                follow("a", "3000"),
            ]
        )
    )
    assert_records(records, [portfolio("b", "2000", "2000"), portfolio("a", "3000", "3000")])


def test_unfollow_of_a_stopped_relationship(replay):
    # stopped relationships have no positions: unfollow emits nothing and removes it.
    records = replay(
        scenario(
            [
                follow("a", "1000", max_loss_pct="10", **S0),
                fill("e1", "buy", "10", "100", "1000"),
                mark("90"),
                unfollow("a"),
            ]
        )
    )
    assert [r["kind"] for r in records] == ["order", "stop", "order"]


# --------------------------------------------------------------------------- pause, resume, settings


def pause(follower, provider="P"):
    return {"type": "pause", "follower": follower, "provider": provider}


def resume(follower, provider="P"):
    return {"type": "resume", "follower": follower, "provider": provider}


def settings(follower, provider="P", **changes):
    return {"type": "settings", "follower": follower, "provider": provider, **changes}


def test_a_paused_relationship_copies_nothing_and_keeps_its_position(replay):
    # a and b buy 1 at 100; a pauses: the provider's close reaches only b, its next open
    # too; a resumes and copies again (0.5 at 100 with equity 1000 = its own 1000 after
    # the close at the mark).
    records = replay(
        scenario(
            [
                follow("a", "1000", **S0),
                follow("b", "1000", **S0),
                fill("e1", "buy", "1", "100", "1000"),
                pause("a"),
                fill("e2", "sell", "1", "100", "1000"),
                fill("e3", "buy", "1", "100", "1000"),
                resume("a"),
                fill("e4", "buy", "0.5", "100", "1000"),
            ]
        )
    )
    assert_records(
        records,
        [
            open_order(2, "a", "buy", "1", "100", "e1"),
            open_order(2, "b", "buy", "1", "100", "e1"),
            close_order(4, "b", "sell", "1", "e2"),
            open_order(5, "b", "buy", "1", "100", "e3"),
            open_order(7, "a", "buy", "0.5", "100", "e4"),
            open_order(7, "b", "buy", "0.5", "100", "e4"),
            portfolio("a", "850", "1000", [("BTC", "1.5")]),
            portfolio("b", "850", "1000", [("BTC", "1.5")]),
        ],
    )


def test_max_loss_still_covers_a_paused_relationship(replay):
    records = replay(
        scenario(
            [
                follow("a", "1000", max_loss_pct="10", **S0),
                fill("e1", "buy", "10", "100", "1000"),
                pause("a"),
                mark("90"),
            ]
        )
    )
    assert [r["kind"] for r in records] == ["order", "stop", "order", "portfolio"]
    assert records[-1]["status"] == "stopped"


def test_pause_and_resume_refusals(replay):
    records = replay(
        scenario(
            [
                follow("a", "1000", max_loss_pct="10", **S0),
                resume("a"),
                pause("a"),
                pause("a"),
                pause("ghost"),
                resume("a"),
                fill("e1", "buy", "10", "100", "1000"),
                mark("90"),
                pause("a"),
                resume("a"),
            ]
        )
    )
    assert [(r["event"], r["message"]) for r in records if r["kind"] == "error"] == [
        (1, "'a' copying 'P' is not paused"),
        (3, "'a' copying 'P' is already paused"),
        (4, "'ghost' does not follow 'P'"),
        (8, "'a' copying 'P' is stopped"),
        (9, "'a' copying 'P' is stopped"),
    ]


def test_settings_change_only_what_they_name(replay):
    # a copies proportionally (0.1 of 1 at equity ratio 1000/10000 -> 0.1); after
    # settings mode multiplier x2 (no fixed amount needed) it copies 0.2 on the same fill.
    records = replay(
        scenario(
            [
                follow("a", "1000", **S0),
                fill("e1", "buy", "1", "100", "10000"),
                settings("a", mode="multiplier", multiplier="2"),
                fill("e2", "buy", "1", "100", "10000"),
                settings("a", mode="fixed_amount"),
                settings("a"),
                settings("a", slippage_pct="100"),
            ]
        )
    )
    assert_records(
        [r for r in records if r["kind"] == "order"],
        [
            open_order(1, "a", "buy", "0.1", "100", "e1"),
            open_order(3, "a", "buy", "0.2", "100", "e2"),
        ],
    )
    assert [(r["event"], r["message"]) for r in records if r["kind"] == "error"] == [
        (4, "mode fixed_amount needs fixed_amount"),
        (5, "settings names no setting"),
        (6, "field 'slippage_pct' must be in [0, 100)"),
    ]


def test_a_tighter_max_loss_stops_at_once(replay):
    records = replay(
        scenario(
            [
                follow("a", "1000", **S0),
                fill("e1", "buy", "10", "100", "1000"),
                mark("95"),
                settings("a", max_loss_pct="5"),
            ]
        )
    )
    assert [(r["event"], r["kind"]) for r in records[:3]] == [(1, "order"), (3, "stop"), (3, "order")]


# --------------------------------------------------------------------------- platform


def test_platform_limits(replay):
    # min 100, max 5000, total 6000.
    # 0: 50 < 100.  1: 6000 > 5000.  2: P 4000 ok.  3: total 4000 + 2500 = 6500 > 6000.
    # 4: Q 2000 ok (total 6000, not above).  5: deposit Q 1 -> total 6001.
    # 6: deposit P 1001 -> base 5001 > 5000.  7: withdraw Q 1950 -> base 50 (allowed).
    # 8: deposit Q 10 -> base 60 < 100.  9: deposit Q 50 -> base 100 ok.
    # 10: unfollow P -> its base no longer counts.  11: follow P 5000 -> total 5100 ok.
    # 12: 'a' already follows 'P' is checked before the allocation.
    platform = {"min_allocation": "100", "max_allocation": "5000", "max_total_per_follower": "6000"}
    records = replay(
        scenario(
            [
                follow("a", "50"),
                follow("a", "6000"),
                follow("a", "4000"),
                follow("a", "2500", provider="Q"),
                follow("a", "2000", provider="Q"),
                deposit("a", "1", provider="Q"),
                deposit("a", "1001"),
                withdraw("a", "1950", provider="Q"),
                deposit("a", "10", provider="Q"),
                deposit("a", "50", provider="Q"),
                unfollow("a"),
                follow("a", "5000"),
                follow("a", "1"),
            ],
            providers=("P", "Q"),
            platform=platform,
        )
    )
    assert_records(
        records,
        [
            error(0, "allocation 50 is below min_allocation 100"),
            error(1, "allocation 6000 is above max_allocation 5000"),
            error(3, "total allocation 6500 of 'a' is above max_total_per_follower 6000"),
            error(5, "total allocation 6001 of 'a' is above max_total_per_follower 6000"),
            error(6, "allocation 5001 is above max_allocation 5000"),
            error(8, "allocation 60 is below min_allocation 100"),
            error(12, "'a' already follows 'P'"),
            portfolio("a", "100", "100", provider="Q"),
            portfolio("a", "5000", "5000", provider="P"),
        ],
    )


def test_platform_total_counts_stopped_relationships(replay):
    # a/P is stopped but its base 1000 still counts: 1000 + 600 > 1500.
    platform = {"max_total_per_follower": "1500"}
    records = replay(
        scenario(
            [
                follow("a", "1000", max_loss_pct="10", **S0),
                fill("e1", "buy", "10", "100", "1000"),
                mark("90"),
                follow("a", "600", provider="Q"),
            ],
            providers=("P", "Q"),
            platform=platform,
        )
    )
    assert event_records(records, 3) == [error(3, "total allocation 1600 of 'a' is above max_total_per_follower 1500")]


# --------------------------------------------------------------------------- errors

BASE_EVENTS = [
    follow("a", "1000", **S0),
    fill("e1", "buy", "1", "100", "1000"),  # a: buy 1 at 100, cash 900
]
ETH = instrument("ETH", "perp", tick="0.5", step="0.01")

ERROR_CASES = [
    # 1. not an object
    ([], "event must be an object"),
    ("fill", "event must be an object"),
    (5, "event must be an object"),
    (None, "event must be an object"),
    # 2. type
    ({}, "missing field 'type'"),
    ({"symbol": "BTC"}, "missing field 'type'"),
    ({"type": "trade"}, "unknown event type 'trade'"),
    ({"type": "Fill"}, "unknown event type 'Fill'"),
    ({"type": None}, "missing field 'type'"),  # null counts as missing
    ({"type": 5}, "field 'type' must be a string"),
    ({"type": 1.5}, "field 'type' must be a string"),
    ({"type": True}, "field 'type' must be a string"),
    ({"type": ["fill"]}, "field 'type' must be a string"),
    ({"type": {"a": 1}}, "field 'type' must be a string"),
    ({"type": ""}, "unknown event type ''"),
    # 3. unknown field, first in document order, before any missing field
    ({"type": "mark", "symbol": "BTC", "price": "1", "extra": 1, "aaa": 2}, "unknown field 'extra' for mark"),
    ({"zzz": 1, "type": "mark"}, "unknown field 'zzz' for mark"),
    ({**fill("e9", "buy", "1", "100", "1000"), "price_": "1"}, "unknown field 'price_' for fill"),
    # 4. fields in order
    ({"type": "fill"}, "missing field 'provider'"),
    ({"type": "fill", "provider": "P"}, "missing field 'exec_id'"),
    ({"type": "fill", "qty": "x", "provider": "bad id"}, "field 'provider' must be 1-64 characters of [A-Za-z0-9_.:-]"),
    ({"type": "mark", "price": "1e5"}, "missing field 'symbol'"),
    ({"type": "unfollow", "follower": "a"}, "missing field 'provider'"),
    (follow("", "1"), "field 'follower' must be 1-64 characters of [A-Za-z0-9_.:-]"),
    (follow("x" * 65, "1"), "field 'follower' must be 1-64 characters of [A-Za-z0-9_.:-]"),
    (follow("a/b", "1"), "field 'follower' must be 1-64 characters of [A-Za-z0-9_.:-]"),
    (follow(5, "1"), "field 'follower' must be 1-64 characters of [A-Za-z0-9_.:-]"),
    (fill("e 2", "buy", "1", "100", "1000"), "field 'exec_id' must be 1-64 characters of [A-Za-z0-9_.:-]"),
    # decimals: string, pattern, places, magnitude, range
    (mark(100), "field 'price' must be a decimal string"),
    (mark(1.5), "field 'price' must be a decimal string"),
    (mark(None), "missing field 'price'"),  # a required field that is null is missing
    (mark("1e5"), "field 'price' is not a decimal: '1e5'"),
    (mark("NaN"), "field 'price' is not a decimal: 'NaN'"),
    (mark("Infinity"), "field 'price' is not a decimal: 'Infinity'"),
    (mark(" 1"), "field 'price' is not a decimal: ' 1'"),
    (mark("1\n"), "field 'price' is not a decimal: '1\n'"),
    (mark("1_000"), "field 'price' is not a decimal: '1_000'"),
    (mark("+1"), "field 'price' is not a decimal: '+1'"),
    (mark("1."), "field 'price' is not a decimal: '1.'"),
    (mark(".5"), "field 'price' is not a decimal: '.5'"),
    (mark("--1"), "field 'price' is not a decimal: '--1'"),
    (mark(""), "field 'price' is not a decimal: ''"),
    (mark("\u0661"), "field 'price' is not a decimal: '\u0661'"),  # arabic-indic digit one
    (mark("0.000000001"), "field 'price' has more than 8 decimal places"),
    (mark("-1.123456789"), "field 'price' has more than 8 decimal places"),
    (mark("1000000000000"), "field 'price' must be below 1000000000000 in absolute value"),
    (mark("-1000000000000.5"), "field 'price' must be below 1000000000000 in absolute value"),
    (mark("0"), "field 'price' must be positive"),
    (mark("-0"), "field 'price' must be positive"),
    (mark("0.000000000000"), "field 'price' must be positive"),
    (mark("-1"), "field 'price' must be positive"),
    (deposit("a", "0"), "field 'amount' must be positive"),
    (follow("b", "1", max_per_trade_pct="0"), "field 'max_per_trade_pct' must be in (0, 100]"),
    (follow("b", "1", max_per_trade_pct="100.00000001"), "field 'max_per_trade_pct' must be in (0, 100]"),
    (follow("b", "1", max_loss_pct="-5"), "field 'max_loss_pct' must be in (0, 100]"),
    (follow("b", "1", slippage_pct="100"), "field 'slippage_pct' must be in [0, 100)"),
    (follow("b", "1", slippage_pct="-0.01"), "field 'slippage_pct' must be in [0, 100)"),
    (follow("b", "1", multiplier="0"), "field 'multiplier' must be positive"),
    (follow("b", "1", fixed_amount="-1"), "field 'fixed_amount' must be positive"),
    (follow("b", "0", fixed_amount="-1"), "field 'allocation' must be positive"),
    # integers
    (
        fill("e2", "buy", "1", "100", "1000", symbol="ETH", leverage=0),
        "field 'leverage' must be an integer from 1 to 125",
    ),
    (
        fill("e2", "buy", "1", "100", "1000", symbol="ETH", leverage=126),
        "field 'leverage' must be an integer from 1 to 125",
    ),
    (
        fill("e2", "buy", "1", "100", "1000", symbol="ETH", leverage=-1),
        "field 'leverage' must be an integer from 1 to 125",
    ),
    (
        fill("e2", "buy", "1", "100", "1000", symbol="ETH", leverage=True),
        "field 'leverage' must be an integer from 1 to 125",
    ),
    (
        fill("e2", "buy", "1", "100", "1000", symbol="ETH", leverage=2.5),
        "field 'leverage' must be an integer from 1 to 125",
    ),
    (
        fill("e2", "buy", "1", "100", "1000", symbol="ETH", leverage="abc"),
        "field 'leverage' must be an integer from 1 to 125",
    ),
    (
        fill("e2", "buy", "1", "100", "1000", symbol="ETH", leverage="1.0"),
        "field 'leverage' must be an integer from 1 to 125",
    ),
    (
        fill("e2", "buy", "1", "100", "1000", symbol="ETH", leverage="-2"),
        "field 'leverage' must be an integer from 1 to 125",
    ),
    (
        fill("e2", "buy", "1", "100", "1000", symbol="ETH", leverage=""),
        "field 'leverage' must be an integer from 1 to 125",
    ),
    (follow("b", "1", max_open_trades=0), "field 'max_open_trades' must be an integer from 1 to 1000000"),
    (follow("b", "1", max_open_trades="1000001"), "field 'max_open_trades' must be an integer from 1 to 1000000"),
    (follow("b", "1", max_open_trades=False), "field 'max_open_trades' must be an integer from 1 to 1000000"),
    # enums and booleans
    (fill("e2", "long", "1", "100", "1000"), "field 'side' must be 'buy' or 'sell'"),
    (fill("e2", "BUY", "1", "100", "1000"), "field 'side' must be 'buy' or 'sell'"),
    (fill("e2", None, "1", "100", "1000"), "missing field 'side'"),
    (follow("b", "1", mode="copy"), "field 'mode' must be one of proportional, fixed_amount, multiplier"),
    (follow("b", "1", mode=1), "field 'mode' must be one of proportional, fixed_amount, multiplier"),
    (follow("b", "1", stop_copy_on_close="true"), "field 'stop_copy_on_close' must be true or false"),
    (follow("b", "1", stop_copy_on_close=1), "field 'stop_copy_on_close' must be true or false"),
    # form errors come before semantic checks
    (fill("e1", "buy", "1e5", "100", "1000", provider="Z"), "field 'qty' is not a decimal: '1e5'"),
    # 5. semantics of follow
    (follow("b", "1", provider="Z"), "unknown provider 'Z'"),
    (follow("a", "1"), "'a' already follows 'P'"),
    (follow("b", "1", mode="fixed_amount"), "mode fixed_amount needs fixed_amount"),
    (follow("b", "1", mode="fixed_amount", fixed_amount=None), "mode fixed_amount needs fixed_amount"),
    # semantics of fill, in order
    (fill("e2", "buy", "1", "100", "1000", provider="Z", symbol="DOGE"), "unknown provider 'Z'"),
    (fill("e2", "buy", "1", "100", "1000", symbol="DOGE"), "unknown symbol 'DOGE'"),
    (fill("e1", "buy", "1.5555", "100.001", "1000", leverage=2), "leverage must be 1 on spot"),
    (fill("e1", "buy", "1.5555", "100.001", "1000"), "duplicate exec_id 'e1' for provider 'P'"),
    (fill("e2", "buy", "0.0015", "100.001", "1000"), "qty 0.0015 is not a multiple of step 0.001"),
    (fill("e2", "buy", "0.00150", "100", "1000"), "qty 0.0015 is not a multiple of step 0.001"),
    (fill("e2", "buy", "1", "100.005", "1000"), "price 100.005 is not a multiple of tick 0.01"),
    (fill("e2", "buy", "1", "100.25", "1000", symbol="ETH"), "price 100.25 is not a multiple of tick 0.5"),
    (fill("e2", "buy", "0.015", "100", "1000", symbol="ETH"), "qty 0.015 is not a multiple of step 0.01"),
    (fill("e2", "sell", "1.001", "100", "1000"), "spot position of 'P' in BTC would go short"),
    # semantics of mark
    (mark("1", symbol="DOGE"), "unknown symbol 'DOGE'"),
    (mark("100.25", symbol="ETH"), "price 100.25 is not a multiple of tick 0.5"),
    # deposit / withdraw / unfollow
    (deposit("a", "1", provider="Z"), "unknown provider 'Z'"),
    (deposit("b", "1"), "'b' does not follow 'P'"),
    (withdraw("b", "1"), "'b' does not follow 'P'"),
    (unfollow("b"), "'b' does not follow 'P'"),
    (unfollow("a", provider="Z"), "unknown provider 'Z'"),
    (withdraw("a", "900.00000001"), "withdrawal 900.00000001 is above free cash 900"),
    (withdraw("a", "1000.0"), "withdrawal 1000 is above free cash 900"),
]


@pytest.mark.parametrize("event,message", ERROR_CASES, ids=range(len(ERROR_CASES)))
def test_event_error_messages(replay, event, message):
    records = replay(scenario(BASE_EVENTS + [event], instruments=[SPOT, ETH]))
    assert event_records(records, 2) == [error(2, message)]
    # an invalid event changes nothing
    assert records[-1] == portfolio("a", "900", "1000", [("BTC", "1")])


def test_valid_edge_forms_are_accepted(replay):
    # trailing zeros do not count as precision; leading zeros are fine; 64-char ids;
    # leverage as a digit string; the largest allowed magnitude; spot leverage "1".
    # (the huge allocation follows Q, which never trades, to stay far from overflow)
    long_id = "a" * 64
    records = replay(
        scenario(
            [
                follow(long_id, "999999999999.99999999", provider="Q", max_loss_pct="100"),
                follow(
                    "b",
                    "00100.50",
                    slippage_pct="99.99999999",
                    max_loss_pct="100",
                    max_per_trade_pct="100.000",
                    max_open_trades="1000000",
                ),
                fill("e:1_.-", "buy", "0001.0000000000000", "100.000000000", "1000", leverage="1"),
                fill("e2", "buy", "1", "100", "1000", symbol="ETH", leverage="125"),
            ],
            instruments=[SPOT, ETH],
            providers=("P", "Q"),
        )
    )
    assert [r["kind"] for r in records if r["kind"] == "error"] == []
    # b: W = 1 x 100.5/1000 = 0.1005 -> 0.1; limit floor(100 x 1.9999999999) = 199.99
    assert records[0]["qty"] == "0.1" and records[0]["price"] == "199.99"


def test_invalid_event_changes_nothing(replay):
    # e2 fails on its price: no mark, no provider position, e2 is not "seen".
    # e2 then succeeds: a copies 1 at 100; the mark is 100 (not 100.005).
    records = replay(
        scenario(
            [
                follow("a", "1000", **S0),
                fill("e2", "buy", "1", "100.005", "1000"),
                fill("e2", "buy", "1", "100", "1000"),
                fill("e3", "sell", "1", "101", "1000"),
            ]
        )
    )
    assert_records(
        records,
        [
            error(1, "price 100.005 is not a multiple of tick 0.01"),
            open_order(2, "a", "buy", "1", "100", "e2"),
            close_order(3, "a", "sell", "1", "e3"),
            portfolio("a", "1001", "1001"),
        ],
    )


def test_spot_provider_cannot_go_short_but_perp_can(replay):
    # P has 1 BTC (spot): selling 1 is fine (flat), selling 0.001 more is not.
    # On the perp ETH a provider may open short.
    records = replay(
        scenario(
            BASE_EVENTS
            + [
                fill("e2", "sell", "1", "100", "1000"),
                fill("e3", "sell", "0.001", "100", "1000"),
                fill("e4", "sell", "1", "100", "1000", symbol="ETH"),
            ],
            instruments=[SPOT, ETH],
        )
    )
    assert event_records(records, 3) == [error(3, "spot position of 'P' in BTC would go short")]
    assert [r["side"] for r in event_records(records, 4)] == ["sell"]


# --------------------------------------------------------------------------- ids, portfolios


def test_client_order_ids(replay):
    # sources f<US>P<US>e1<US>open (a, b), s<US>P<US>3<US>BTC (a), u<US>P<US>4<US>BTC (b)
    records = replay(
        scenario(
            [
                follow("a", "1000", max_loss_pct="10", **S0),
                follow("b", "1000", **S0),
                fill("e1", "buy", "10", "100", "1000"),
                mark("90"),
                unfollow("b"),
            ]
        )
    )
    ids = [r["client_order_id"] for r in records if r["kind"] == "order"]
    assert ids == [
        cid("f", "P", "e1", "open", follower="a"),
        cid("f", "P", "e1", "open", follower="b"),
        cid("s", "P", "3", "BTC", follower="a"),
        cid("u", "P", "4", "BTC", follower="b"),
    ]
    assert all(re.fullmatch(r"[0-9A-Za-z]{22}", i) for i in ids)
    assert len(set(ids)) == len(ids)
    # deterministic
    again = replay(
        scenario(
            [
                follow("a", "1000", max_loss_pct="10", **S0),
                follow("b", "1000", **S0),
                fill("e1", "buy", "10", "100", "1000"),
                mark("90"),
                unfollow("b"),
            ]
        )
    )
    assert again == records


def test_client_order_id_pinned_values():
    # Pinned: base62(xxh3_128(b"f\x1fp1\x1fe1\x1fopen") ^ xxh3_128(b"alice")), and the
    # extremes of the encoding (0 -> 22 zeros; 2^128 - 1 -> "7n42DGM5Tflk9n8mt7Fhc7").
    from pyservice.reference import client_order_id

    assert client_order_id(("f", "p1", "e1", "open"), "alice") == cid("f", "p1", "e1", "open", follower="alice")
    assert cid("x", follower="x") == "0" * 22  # equal hashes XOR to 0
    n = 2**128 - 1
    digits = ""
    while n:
        n, r = divmod(n, 62)
        digits = ALPHABET[r] + digits
    assert digits == "7n42DGM5Tflk9n8mt7Fhc7"


def test_portfolio_records_and_position_order(replay):
    # spot A and B, steps 1. e1 A: buy 1 @ 10. e2 B: buy 2 @ 20. e3: A flat (sell 1 @ 12).
    # e4 A again: E = 962 + 2 x 20 = 1002, W = 3 x 1002/1000 = 3.006 -> 3 @ 11.
    # cash 1000 - 10 - 40 + 12 - 33 = 929; equity 929 + 2 x 20 + 3 x 11 = 1002.
    # A was reopened after B: positions [B, A].
    a_ = instrument("A", "spot", tick="0.01", step="1")
    b_ = instrument("B", "spot", tick="0.01", step="1")
    records = replay(
        scenario(
            [
                follow("a", "1000", **S0),
                fill("e1", "buy", "1", "10", "1000", symbol="A"),
                fill("e2", "buy", "2", "20", "1000", symbol="B"),
                fill("e3", "sell", "1", "12", "1000", symbol="A"),
                fill("e4", "buy", "3", "11", "1000", symbol="A"),
            ],
            instruments=[a_, b_],
        )
    )
    assert records[-1] == portfolio("a", "929", "1002", [("B", "2"), ("A", "3")])
    assert list(records[-1]) == ["event", "kind", "follower", "provider", "status", "cash", "equity", "positions"]
    assert list(records[-1]["positions"][0]) == ["symbol", "qty"]


def test_portfolio_negative_qty_and_decimal_output(replay):
    # short 0.5 at 10 (perp): limit = ceil(10 x 0.995 = 9.95) = 9.95; cash unchanged 100;
    # mark 12.5: equity 100 + (12.5 - 10) x -0.5 = 98.75.
    perp = instrument("X", "perp", tick="0.05", step="0.1")
    records = replay(
        scenario(
            [
                follow("a", "100"),
                fill("e1", "sell", "5", "10", "1000", symbol="X"),
                mark("12.5", symbol="X"),
            ],
            instruments=[perp],
        )
    )
    assert records[0]["price"] == "9.95"
    assert records[-1] == portfolio("a", "100", "98.75", [("X", "-0.5")])


def test_no_followers_no_records(replay):
    assert replay(scenario([fill("e1", "buy", "1", "100", "1000"), mark("1")])) == []


# --------------------------------------------------------------------------- invalid files


def _valid_file(**changes):
    obj = {"version": 1, "instruments": [instrument()], "providers": [{"id": "P"}], "events": []}
    obj.update(changes)
    return obj


# docs/scenario-format.md does not spell out these messages; they follow the Rust core's wording.
INVALID_FILES = [
    ("not json", None),
    ("[]", "the scenario must be a JSON object"),
    ('{"instruments": [], "providers": [], "events": [], "x": 1}', "unknown field 'x'"),
    ('{"instruments": [], "providers": [], "events": [], "version": NaN}', None),
    (_valid_file(version=3), "unsupported version (this engine reads versions 1 and 2)"),
    (_valid_file(version=0), "unsupported version (this engine reads versions 1 and 2)"),
    (_valid_file(version=None), "unsupported version (this engine reads versions 1 and 2)"),
    (_valid_file(version=True), "unsupported version (this engine reads versions 1 and 2)"),
    (_valid_file(version="1"), "unsupported version (this engine reads versions 1 and 2)"),
    (_valid_file(version=2.0), "unsupported version (this engine reads versions 1 and 2)"),
    ({"providers": [], "events": []}, "missing field 'instruments'"),
    ({"instruments": [], "events": []}, "missing field 'providers'"),
    ({"instruments": [], "providers": []}, "missing field 'events'"),
    (_valid_file(instruments={}), "field 'instruments' must be an array"),
    (_valid_file(events={}), "field 'events' must be an array"),
    (_valid_file(instruments=["BTC"]), "instruments[0] must be an object"),
    (_valid_file(instruments=[{**instrument(), "lot": "1"}]), "instruments[0]: unknown field 'lot' for instrument"),
    (
        _valid_file(instruments=[{k: v for k, v in instrument().items() if k != "min_qty"}]),
        "instruments[0]: missing field 'min_qty'",
    ),
    (_valid_file(instruments=[instrument(kind="future")]), "instruments[0]: field 'kind' must be 'spot' or 'perp'"),
    (
        _valid_file(instruments=[instrument(symbol="BTC/USD")]),
        "instruments[0]: field 'symbol' must be 1-64 characters of [A-Za-z0-9_.:-]",
    ),
    (_valid_file(instruments=[instrument(tick="0")]), "instruments[0]: field 'tick' must be positive"),
    (_valid_file(instruments=[instrument(step="1e-3")]), "instruments[0]: field 'step' is not a decimal: '1e-3'"),
    (_valid_file(instruments=[instrument(min_qty="-1")]), "instruments[0]: field 'min_qty' must not be negative"),
    (
        _valid_file(instruments=[instrument(min_notional=5)]),
        "instruments[0]: field 'min_notional' must be a decimal string",
    ),
    (_valid_file(instruments=[instrument(), instrument()]), "instruments[1]: duplicate symbol 'BTC'"),
    (_valid_file(providers=["P"]), "providers[0] must be an object"),
    (_valid_file(providers=[{"id": "P", "name": "x"}]), "providers[0]: unknown field 'name' for provider"),
    (_valid_file(providers=[{}]), "providers[0]: missing field 'id'"),
    (_valid_file(providers=[{"id": "P P"}]), "providers[0]: field 'id' must be 1-64 characters of [A-Za-z0-9_.:-]"),
    (_valid_file(providers=[{"id": "P"}, {"id": "P"}]), "providers[1]: duplicate provider 'P'"),
    (_valid_file(platform=[]), "platform must be an object"),
    (_valid_file(platform={"max": "1"}), "platform: unknown field 'max' for platform"),
    (_valid_file(platform={"max_allocation": "0"}), "platform: field 'max_allocation' must be positive"),
    (_valid_file(platform={"min_allocation": "-1"}), "platform: field 'min_allocation' must not be negative"),
    (
        _valid_file(platform={"max_total_per_follower": "0"}),
        "platform: field 'max_total_per_follower' must be positive",
    ),
    (
        _valid_file(platform={"min_allocation": "10", "max_allocation": "9.5"}),
        "platform: min_allocation 10 is above max_allocation 9.5",
    ),
    # order: instruments before providers before platform before events
    ({"events": 1, "platform": 1, "providers": 1, "instruments": 1}, "field 'instruments' must be an array"),
    ({"events": 1, "platform": 1, "providers": 1, "instruments": []}, "field 'providers' must be an array"),
    ({"events": 1, "platform": 1, "providers": [], "instruments": []}, "platform must be an object"),
]


@pytest.mark.parametrize("content,reason", INVALID_FILES, ids=range(len(INVALID_FILES)))
def test_invalid_files_raise(replay, content, reason):
    text = content if isinstance(content, str) else json.dumps(content)
    with pytest.raises(ValueError) as info:
        replay(text)
    if reason is not None:
        assert str(info.value).removeprefix("invalid scenario: ") == reason


def test_valid_file_variants(replay):
    # version optional; platform optional, empty, or with only some limits;
    # min_allocation == max_allocation is allowed; bad events never invalidate the file.
    for obj in [
        {"instruments": [], "providers": [], "events": []},
        _valid_file(platform={}),
        _valid_file(platform=None),
        _valid_file(platform={"min_allocation": "0", "max_allocation": "0.00000001"}),
        _valid_file(platform={"min_allocation": "5", "max_allocation": "5"}),
        _valid_file(instruments=[instrument(min_qty="0.0015", min_notional="0")]),
        _valid_file(events=[1, "x", None, [], {"type": "nope"}]),
    ]:
        replay(json.dumps(obj))
    records = replay(json.dumps(_valid_file(events=[1, {"type": "nope"}])))
    assert records == [error(0, "event must be an object"), error(1, "unknown event type 'nope'")]

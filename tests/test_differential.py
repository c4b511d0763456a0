"""Differential test: the Rust core and the plain-Python reference print the same
records for random scenarios (tests/strategies.py), byte for byte once serialized.

The reference-only checks (determinism, unique client order ids) carry ``reference``
in their names so that ``pytest -k reference`` runs them without the Rust core.
"""

import json
import re

from hypothesis import given, settings
from strategies import scenarios

from pyservice import reference


def _first_difference(actual: list[dict], expected: list[dict]) -> str:
    for i, (a, e) in enumerate(zip(actual, expected, strict=False)):
        if list(a.items()) != list(e.items()):
            return f"record {i} differs:\n  rust:      {json.dumps(a)}\n  reference: {json.dumps(e)}"
    return f"rust printed {len(actual)} records, the reference {len(expected)}; first extra:\n  " + json.dumps(
        (actual if len(actual) > len(expected) else expected)[min(len(actual), len(expected))]
    )


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_rust_agrees_with_python_spec(scenario):
    from pyservice.replay import replay_records

    text = json.dumps(scenario)
    expected = reference.replay(text)
    actual = replay_records(text)
    # key order matters too (the JSON Lines must be identical)
    if [list(r.items()) for r in actual] != [list(r.items()) for r in expected]:
        raise AssertionError(_first_difference(actual, expected))


@settings(max_examples=150, deadline=None)
@given(scenarios())
def test_rust_event_times_agree_with_python_spec(scenario):
    from pyservice._engine_core import event_times

    text = json.dumps(scenario)
    assert event_times(text) == reference.event_times(text)


@settings(max_examples=100, deadline=None)
@given(scenarios())
def test_reference_is_deterministic_with_unique_order_ids(scenario):
    text = json.dumps(scenario)
    first = reference.replay(text)
    assert reference.replay(text) == first
    ids = [r["client_order_id"] for r in first if r["kind"] == "order"]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"[0-9A-Za-z]{22}", i) for i in ids)


def test_a_book_long_enough_for_two_threads_agrees_with_python_spec():
    """Books of `parallel.MIN_ITEMS` (2048) relationships or more fan out on two threads:
    varied settings, a pause and an unfollow in the middle, stops, both sides, both kinds."""
    from pyservice.replay import replay_records

    templates = [
        {"allocation": "1000"},
        {"allocation": "300", "max_loss_pct": "5", "slippage_pct": "2"},
        {"allocation": "5000", "max_open_trades": 1, "mode": "fixed_amount", "fixed_amount": "400"},
        {"allocation": "2000", "mode": "multiplier", "multiplier": "3", "max_loss_pct": "20"},
        {"allocation": "800", "max_per_trade_pct": "30", "max_loss_pct": "10"},
        {"allocation": "7"},
    ]
    follows = [
        {"type": "follow", "follower": f"f{i}", "provider": "P", **templates[i % len(templates)]} for i in range(2500)
    ]
    # (symbol, side, qty, price, the mark after): the first drop stops the max-loss followers
    fill = [
        ("BTC", "buy", "60", "100", "50"),
        ("ETH-PERP", "sell", "30", "50", "60"),
        ("BTC", "sell", "10", "60", "65"),
        ("ETH-PERP", "buy", "50", "40", "45"),
        ("BTC", "buy", "1", "120", "110"),
        ("BTC", "sell", "20", "80", "80"),
    ]
    events = [
        *follows,
        {"type": "pause", "follower": "f7", "provider": "P"},
        {"type": "unfollow", "follower": "f1200", "provider": "P"},
    ]
    for i, (symbol, side, qty, price, mark) in enumerate(fill):
        events.append(
            {
                "type": "fill",
                "provider": "P",
                "exec_id": f"x{i}",
                "symbol": symbol,
                "side": side,
                "qty": qty,
                "price": price,
                "provider_equity": "10000",
                "leverage": 1 if symbol == "BTC" else 3,
            }
        )
        events.append({"type": "mark", "symbol": symbol, "price": mark})
    scenario = {
        "version": 1,
        "providers": [{"id": "P"}],
        "instruments": [
            {"symbol": "BTC", "kind": "spot", "tick": "0.01", "step": "0.001", "min_qty": "0", "min_notional": "0"},
            {"symbol": "ETH-PERP", "kind": "perp", "tick": "0.5", "step": "0.01", "min_qty": "0", "min_notional": "0"},
        ],
        "events": events,
    }
    text = json.dumps(scenario)
    expected = reference.replay(text)
    actual = replay_records(text)
    kinds = {r["kind"] for r in actual}
    assert {"order", "stop"} <= kinds, kinds  # the stream exercises copies and stops
    if [list(r.items()) for r in actual] != [list(r.items()) for r in expected]:
        raise AssertionError(_first_difference(actual, expected))


@settings(max_examples=150, deadline=None)
@given(scenarios())
def test_reference_settlements_balance_and_watermarks_fall_only_by_withdrawals(scenario):
    """Every settlement record: amounts never negative, charged = provider credit +
    platform credit, charged/written_off as its status says; a relationship's high
    watermark never falls except by a withdrawal's amount (the Rust core prints the same
    records: the differential test above)."""
    from fractions import Fraction

    engine = reference.ReferenceEngine.from_scenario(scenario)
    total_charged = total_credits = Fraction(0)
    for index, event in enumerate(scenario["events"]):
        before = {key: rel.high_watermark for key, rel in engine.relationships.items()}
        records = engine.apply(index, event)
        refused = any(r["kind"] == "error" for r in records)
        for r in records:
            if r["kind"] != "settlement":
                continue
            amounts = {
                k: Fraction(r[k]) for k in ("due", "charged", "provider_credit", "platform_credit", "written_off")
            }
            assert all(v >= 0 for v in amounts.values()), r
            assert amounts["charged"] == amounts["provider_credit"] + amounts["platform_credit"], r
            assert Fraction(r["profit"]) > 0 and Fraction(r["equity"]) > Fraction(r["high_watermark"]), r
            expected = {
                "charged": (amounts["due"], Fraction(0)),
                "deferred": (Fraction(0), Fraction(0)),
                "partial": (amounts["due"] - amounts["written_off"], amounts["written_off"]),
            }[r["status"]]
            assert (amounts["charged"], amounts["written_off"]) == expected, r
            assert r["status"] != "partial" or (r["period"] == "unfollow" and amounts["written_off"] > 0), r
            total_charged += amounts["charged"]
            total_credits += amounts["provider_credit"] + amounts["platform_credit"]
        for key, rel in engine.relationships.items():
            if key not in before:
                continue
            withdrawn = Fraction(0)
            if (
                not refused
                and isinstance(event, dict)
                and event.get("type") == "withdraw"
                and (event["follower"], event["provider"]) == key
            ):
                withdrawn = Fraction(event["amount"])
            assert rel.high_watermark >= before[key] - withdrawn, (index, key)
            assert rel.fees_paid >= 0
    assert total_charged == total_credits

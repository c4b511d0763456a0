"""Profit-share settlement (docs/scenario-format.md "Settlement"), by hand: every case
runs on the Rust core and on the plain-Python reference, which must print the same
records, and the values asserted are worked out in the comments.

The book: one spot instrument; follower `a` follows `P` (30 %, platform fee 10 %) with
10,000 and copies a buy of 5 BTC at 1,000 (cash 5,000), so equity = cash + 5 × mark.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from pyservice import reference
from pyservice.replay import ScenarioError, replay_records


def at(day: str) -> str:
    return f"{day}T00:00:00Z"


def scenario(
    events: list[Any],
    *,
    settlement: str = "monthly",
    share: str = "30",
    fee: str = "10",
    version: int = 2,
) -> str:
    return json.dumps(
        {
            "version": version,
            "instruments": [
                {"symbol": "BTC", "kind": "spot", "tick": "0.01", "step": "0.001", "min_qty": "0", "min_notional": "0"}
            ],
            "providers": [{"id": "P", "profit_share_pct": share}],
            "platform": {"platform_fee_pct": fee, "settlement": settlement},
            "events": events,
        }
    )


def run(text: str) -> list[dict[str, Any]]:
    """The records, the same from both engines."""
    rust = replay_records(text)
    assert [list(r.items()) for r in rust] == [list(r.items()) for r in reference.replay(text)]
    return rust


def opening(day: str = "2026-10-15") -> list[dict[str, Any]]:
    return [
        {"time": at(day), "type": "follow", "follower": "a", "provider": "P", "allocation": "10000"},
        {"type": "fill", "provider": "P", "exec_id": "x1", "symbol": "BTC", "side": "buy", "qty": "5"}
        | {"price": "1000", "provider_equity": "10000"},
    ]


def mark(day: str, price: str) -> dict[str, Any]:
    return {"time": at(day), "type": "mark", "symbol": "BTC", "price": price}


def settlements(records: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [
        (r["event"], r["period"], r["equity"], r["high_watermark"], r["due"], r["charged"], r["status"])
        for r in records
        if r["kind"] == "settlement"
    ]


def portfolio(records: list[dict[str, Any]]) -> dict[str, Any]:
    (p,) = [r for r in records if r["kind"] == "portfolio"]
    return p


def test_monthly_30_percent_from_10000() -> None:
    records = run(
        scenario(
            [
                *opening(),
                mark("2026-10-20", "1400"),  # equity 5,000 + 7,000 = 12,000
                mark("2026-11-20", "1320"),  # crosses 2026-11-01: October at 12,000
                mark("2026-12-02", "1620"),  # November ends at 4,400 + 6,600 = 11,000
                mark("2027-01-02", "1950"),  # December ends at 4,400 + 8,100 = 12,500
                mark("2027-02-02", "1950"),  # January ends at 4,250 + 9,750 = 14,000
            ]
        )
    )
    assert settlements(records) == [
        # 30 % of 2,000: equity 11,400 after, H 12,000
        (3, "2026-10", "12000", "10000", "600", "600", "charged"),
        # November ends at 11,000 <= H: nothing, no record
        (5, "2026-12", "12500", "12000", "150", "150", "charged"),
        (6, "2027-01", "14000", "12500", "450", "450", "charged"),
    ]
    first = next(r for r in records if r["kind"] == "settlement")
    assert (first["provider_credit"], first["platform_credit"], first["written_off"]) == ("540", "60", "0")
    # settlements come before the event's own records; cash 5,000 − 600 − 150 − 450
    assert portfolio(records) | {"positions": None} == {
        "event": None,
        "kind": "portfolio",
        "follower": "a",
        "provider": "P",
        "status": "active",
        "cash": "3800",
        "equity": "13550",
        "positions": None,
        "high_watermark": "14000",
        "fees_paid": "1200",
    }


def test_deposits_and_withdrawals_mid_period_change_no_fee() -> None:
    records = run(
        scenario(
            [
                *opening(),
                {"type": "deposit", "follower": "a", "provider": "P", "amount": "3000"},  # H 13,000
                {"type": "withdraw", "follower": "a", "provider": "P", "amount": "1000"},  # H 12,000
                mark("2026-10-20", "1000"),  # equity 12,000 = H
                mark("2026-11-02", "1000"),
            ]
        )
    )
    assert settlements(records) == []
    assert (portfolio(records)["high_watermark"], portfolio(records)["fees_paid"]) == ("12000", "0")
    # the same with a profit on top: only the profit pays
    records = run(
        scenario(
            [
                *opening(),
                {"type": "deposit", "follower": "a", "provider": "P", "amount": "3000"},
                mark("2026-10-20", "1200"),  # equity 8,000 + 6,000 = 14,000 vs H 13,000
                mark("2026-11-02", "1200"),
            ]
        )
    )
    assert settlements(records) == [(4, "2026-10", "14000", "13000", "300", "300", "charged")]


def test_a_deferred_charge_is_collected_once_cash_is_free() -> None:
    records = run(
        scenario(
            [
                *opening(),
                {"type": "withdraw", "follower": "a", "provider": "P", "amount": "4900"},  # cash 100, H 5,100
                mark("2026-10-20", "1400"),  # equity 100 + 7,000 = 7,100: due 600 > free 100
                mark("2026-11-02", "1400"),  # October: deferred, nothing changes
                # the provider sells: the copy closes at 1,400 (cash 7,100)
                {"type": "fill", "provider": "P", "exec_id": "x2", "symbol": "BTC", "side": "sell", "qty": "5"}
                | {"price": "1400", "provider_equity": "12000"},
                mark("2026-12-01", "1400"),  # November: the same profit, now covered
            ]
        )
    )
    assert settlements(records) == [
        (4, "2026-10", "7100", "5100", "600", "0", "deferred"),
        (6, "2026-11", "7100", "5100", "600", "600", "charged"),
    ]
    deferred = next(r for r in records if r["kind"] == "settlement")
    assert (deferred["provider_credit"], deferred["platform_credit"], deferred["written_off"]) == ("0", "0", "0")
    assert (portfolio(records)["cash"], portfolio(records)["high_watermark"]) == ("6500", "7100")


def test_a_period_settled_twice_pays_once() -> None:
    records = run(
        scenario(
            [
                *opening(),
                mark("2026-10-20", "1400"),
                {"type": "settle"},  # manual-3: 600
                {"type": "settle"},  # equity 11,400 <= H 12,000: nothing
                mark("2026-11-02", "1400"),  # October: nothing either
                {"type": "settle", "time": at("2026-11-03"), "period": "2026-10"},
            ]
        )
    )
    assert settlements(records) == [(3, "manual-3", "12000", "10000", "600", "600", "charged")]
    assert records[-2] == {"event": 6, "kind": "error", "message": "unknown field 'period' for settle"}


def test_settle_without_a_schedule_and_v1_unchanged() -> None:
    events = [*opening(), mark("2026-10-20", "1400"), mark("2026-12-20", "1400"), {"type": "settle"}]
    records = run(scenario(events, settlement="none"))
    # nothing at the boundaries; the settle event settles
    assert settlements(records) == [(4, "manual-4", "12000", "10000", "600", "600", "charged")]
    # version 1: settle is unknown, the terms are unknown fields, no new keys
    v1 = [{k: v for k, v in e.items() if k != "time"} for e in events]
    text = json.dumps(
        {
            "instruments": json.loads(scenario([]))["instruments"],
            "providers": [{"id": "P"}],
            "events": v1,
        }
    )
    records = run(text)
    assert records[-2] == {"event": 4, "kind": "error", "message": "unknown event type 'settle'"}
    assert list(records[-1]) == ["event", "kind", "follower", "provider", "status", "cash", "equity", "positions"]


def test_unfollow_with_too_little_free_cash_is_partial() -> None:
    # a perp position whose open profit is not spendable: free cash stays low
    text = json.dumps(
        {
            "version": 2,
            "instruments": [
                {"symbol": "X", "kind": "perp", "tick": "1", "step": "1", "min_qty": "0", "min_notional": "0"}
            ],
            "providers": [{"id": "P", "profit_share_pct": "50"}],
            "platform": {"platform_fee_pct": "20", "max_profit_share_pct": "50", "settlement": "weekly"},
            "events": [
                {"time": at("2026-11-25"), "type": "follow", "follower": "a", "provider": "P", "allocation": "1000"}
                | {"stop_copy_on_close": False},
                {"type": "fill", "provider": "P", "exec_id": "x1", "symbol": "X", "side": "buy", "qty": "10"}
                | {"price": "100", "provider_equity": "1000"},
                # margin 1,000 held: free cash 0; mark 150: equity 1,500, profit 500
                {"type": "mark", "symbol": "X", "price": "150"},
                {"time": at("2026-11-30"), "type": "withdraw", "follower": "a", "provider": "P", "amount": "1"},
                {"type": "unfollow", "follower": "a", "provider": "P"},
            ],
        }
    )
    records = run(text)
    weekly, final = (r for r in records if r["kind"] == "settlement")
    # 2026-W48 closes at the Monday: due 250 > free 0
    assert (weekly["period"], weekly["status"], weekly["due"], weekly["charged"]) == (
        "2026-W48",
        "deferred",
        "250",
        "0",
    )
    # the withdrawal is refused (free cash 0); the unfollow keeps the position: free 0
    assert records[-2]["message"] == "withdrawal 1 is above free cash 0"
    assert {k: final[k] for k in ("period", "due", "charged", "written_off", "status")} == {
        "period": "unfollow",
        "due": "250",
        "charged": "0",
        "written_off": "250",
        "status": "partial",
    }


@pytest.mark.parametrize(
    ("provider", "platform", "message"),
    [
        ({"profit_share_pct": "31"}, {}, "providers[0]: profit_share_pct 31 is above max_profit_share_pct 30"),
        ({"profit_share_pct": "-1"}, {}, "providers[0]: field 'profit_share_pct' must be in [0, 100]"),
        ({"profit_share_pct": "100.5"}, {}, "providers[0]: field 'profit_share_pct' must be in [0, 100]"),
        ({}, {"platform_fee_pct": "101"}, "platform: field 'platform_fee_pct' must be in [0, 100]"),
        ({}, {"max_profit_share_pct": "0"}, "platform: field 'max_profit_share_pct' must be in (0, 100]"),
        ({}, {"settlement": "daily"}, "platform: field 'settlement' must be one of weekly, monthly, none"),
        ({}, {"settlement": 1}, "platform: field 'settlement' must be one of weekly, monthly, none"),
        ({"profit_share_pct": 5}, {}, "providers[0]: field 'profit_share_pct' must be a decimal string"),
    ],
)
def test_invalid_terms_make_an_invalid_file(provider: dict, platform: dict, message: str) -> None:
    for version, expected in ((2, message), (1, None)):
        text = json.dumps(
            {"version": version, "instruments": [], "providers": [{"id": "P", **provider}], "platform": platform}
            | {"events": []}
        )
        if version == 1:  # version 1 knows none of these fields
            field = next(iter(provider or platform))
            expected = f"{'providers[0]' if provider else 'platform'}: unknown field '{field}' for " + (
                "provider" if provider else "platform"
            )
        for replay in (replay_records, reference.replay):
            with pytest.raises((ScenarioError, reference.ScenarioError)) as exc:
                replay(text)
            assert str(exc.value) == expected


def test_weekly_labels_and_many_boundaries_at_once() -> None:
    records = run(
        scenario(
            [
                *opening("2026-12-23"),  # a Wednesday: the first boundary is 2026-12-28
                mark("2026-12-24", "1400"),
                # a valid time on an invalid event still settles: 2026-W52, 2026-W53 (none),
                # 2027-W01 (nothing: H raised)
                {"time": at("2027-01-12"), "type": "mark", "symbol": "NOPE", "price": "1"},
            ],
            settlement="weekly",
        )
    )
    assert settlements(records) == [(3, "2026-W52", "12000", "10000", "600", "600", "charged")]
    assert records[-2] == {"event": 3, "kind": "error", "message": "unknown symbol 'NOPE'"}

"""`copyengine stats SCENARIO`: each definition of issue #14 on a hand-computed scenario
(the shipped path: the Rust engine and `pyservice/statistics`)."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal, getcontext
from typing import Any

import pytest

from pyservice import statistics_reference
from pyservice.statistics.scenario import scenario_statistics
from pyservice.venue_time import DAY_US, format_time, parse_time

T0 = parse_time("2026-11-02T00:00:00Z")
H = 3_600_000_000
INSTRUMENTS = [
    {"symbol": "BTC", "kind": "spot", "tick": "0.01", "step": "0.001", "min_qty": "0", "min_notional": "0"},
    {"symbol": "ETH", "kind": "perp", "tick": "0.01", "step": "0.001", "min_qty": "0", "min_notional": "0"},
]


def fill(at: int, side: str, qty: str, price: str, equity: str, symbol: str = "BTC", lev: int = 1, n: list[int] = [0]):  # noqa: B006
    n[0] += 1
    return {"type": "fill", "time": format_time(at), "provider": "P", "exec_id": f"x{n[0]}", "symbol": symbol,
            "side": side, "qty": qty, "price": price, "provider_equity": equity, "leverage": lev}  # fmt: skip


def scenario(*events: dict[str, Any], followers: int = 1) -> str:
    follows = [
        {"type": "follow", "time": format_time(T0 - H), "follower": f"f{i}", "provider": "P", "allocation": "1000"}
        for i in range(followers)
    ]
    return json.dumps({"version": 2, "instruments": INSTRUMENTS, "providers": [{"id": "P"}, {"id": "Q"}],
                       "events": follows + list(events)})  # fmt: skip


def stats(text: str, as_of: int | None = None) -> dict[str, Any]:
    return scenario_statistics(text, as_of)[0]


def test_returns_compound_rather_than_sum():
    """+10 % then −10 % is −1 %, not 0; pnl sums."""
    s = stats(
        scenario(
            fill(T0, "buy", "100", "100", "10000"),
            fill(T0 + H, "sell", "100", "110", "10000"),  # +1000 on 10,000
            fill(T0 + 2 * H, "buy", "100", "100", "11000"),
            fill(T0 + 3 * H, "sell", "100", "89", "11000"),  # −1100 on 11,000
        )
    )
    a = s["periods"]["all"]
    assert (a["trades"], a["wins"], a["losses"], a["win_rate"]) == (2, 1, 1, "0.5")
    assert (a["roi"], a["pnl"], a["best_trade"], a["worst_trade"], a["max_drawdown"]) == (
        "-0.01",
        "-100",
        "0.1",
        "-0.1",
        "0.1",
    )
    assert s["equity_curve"] == [
        {"time": "2026-11-02T00:00:00Z", "equity": "10000"},
        {"time": "2026-11-02T01:00:00Z", "equity": "11000"},
        {"time": "2026-11-02T03:00:00Z", "equity": "9900"},
    ]
    assert s["periods"]["7d"] == a  # all inside the last 7 days


def test_a_fill_through_zero_closes_one_trade_and_opens_the_next():
    s = stats(
        scenario(
            fill(T0, "buy", "1", "100", "1000", "ETH"),
            fill(T0 + H, "sell", "3", "110", "1010", "ETH", 2),  # closes +10 (r 0.01), opens short 2
            fill(T0 + 2 * H, "buy", "2", "100", "1030", "ETH"),  # short +20 on 1010 (its opening equity)
        )
    )
    a = s["periods"]["all"]
    assert (a["trades"], a["pnl"], a["best_trade"], a["worst_trade"]) == (2, "30", "0.01980198", "0.01")
    assert [p["equity"] for p in s["equity_curve"]] == ["10000", "10100", "10300"]
    assert (s["strategy"], s["max_leverage"], s["open_trades"]) == ("futures", 2, 0)


def test_a_loss_beyond_everything_stops_the_curve_at_zero():
    s = stats(
        scenario(
            fill(T0, "buy", "100", "100", "1000", "ETH", 10),
            fill(T0 + H, "sell", "100", "80", "1000", "ETH", 10),  # −2000 on 1000: r = −2
            fill(T0 + 2 * H, "buy", "1", "100", "500", "ETH"),
            fill(T0 + 3 * H, "sell", "1", "150", "500", "ETH"),  # +10 %: 0 stays 0
        )
    )
    a = s["periods"]["all"]
    assert (a["roi"], a["worst_trade"], a["max_drawdown"], a["pnl"]) == ("-1", "-2", "1", "-1950")
    assert [p["equity"] for p in s["equity_curve"]] == ["10000", "0", "0"]


def test_drawdown_is_measured_from_the_value_at_the_period_start():
    s = stats(
        scenario(
            fill(T0, "buy", "100", "100", "10000"),
            fill(T0 + H, "sell", "100", "200", "10000"),  # +100 %: 20,000
            fill(T0 + 10 * DAY_US, "buy", "100", "100", "20000"),
            fill(T0 + 10 * DAY_US + H, "sell", "100", "0.01", "20000"),  # ≈ −50 %: ≈ 10,000
            fill(T0 + 40 * DAY_US, "buy", "100", "100", "10000"),
            fill(T0 + 40 * DAY_US + H, "sell", "100", "110", "10000"),  # +10 %
        ),
        as_of=T0 + 45 * DAY_US,
    )
    p = s["periods"]
    # 30d starts after the fall: its start value is the bottom, and it only rose since
    assert (p["30d"]["trades"], p["30d"]["max_drawdown"], p["30d"]["roi"]) == (1, "0", "0.1")
    assert p["all"]["max_drawdown"] == p["90d"]["max_drawdown"] == "0.49995"


def test_days_without_trades_count_as_zero_returns():
    s = stats(
        scenario(
            fill(T0, "buy", "100", "100", "10000"),
            fill(T0 + H, "sell", "100", "110", "10000"),  # day 0: +10 %
            fill(T0 + 2 * DAY_US, "buy", "100", "100", "11000"),
            fill(T0 + 2 * DAY_US + H, "sell", "100", "89", "11000"),  # day 2: −10 %; day 1: 0
        )
    )
    # returns 0.1, 0, −0.1: mean 0, sample variance 0.01 (0.02 if day 1 were left out)
    getcontext().prec = 40
    volatility = (Decimal("0.01") * 365).sqrt().quantize(Decimal("1e-8"))
    a = s["periods"]["all"]
    assert a["volatility"] == str(volatility) == "1.91049732"
    assert a["sharpe"] == 0.0
    # 2 % volatility a day is far above 80 % a year: class 7
    assert (s["risk_class"], s["risk_level"]) == (7, "high")


def test_the_window_edges():
    trades = [fill(T0, "buy", "1", "100", "1000"), fill(T0 + H, "sell", "1", "101", "1000")]
    closed = T0 + H
    at_edge = stats(scenario(*trades), as_of=closed + 7 * DAY_US)
    assert (at_edge["periods"]["7d"]["trades"], at_edge["periods"]["30d"]["trades"]) == (0, 1)
    assert at_edge["periods"]["7d"]["roi"] == "0" and at_edge["periods"]["7d"]["win_rate"] is None
    inside = stats(scenario(*trades), as_of=closed + 7 * DAY_US - 1)
    assert inside["periods"]["7d"]["trades"] == 1
    # as of before the close: the trade is open, valued at the last price taken
    before = stats(scenario(*trades), as_of=T0)
    assert (before["periods"]["all"]["trades"], before["open_trades"], before["as_of"]) == (0, 1, format_time(T0))


def test_an_open_loss_is_visible_beside_a_roi_without_it():
    mark = {"type": "mark", "time": format_time(T0 + 2 * H), "symbol": "BTC", "price": "90.5"}
    s = stats(scenario(fill(T0, "buy", "2", "100", "1000"), fill(T0 + H, "buy", "1", "103", "1000"), mark))
    # average entry 101; (90.5 − 101) × 3
    assert (s["open_trades"], s["unrealized_pnl"], s["periods"]["all"]["roi"]) == (1, "-31.5", "0")
    assert s["equity_curve"] == [{"time": "2026-11-02T00:00:00Z", "equity": "10000"}]


def test_many_followers_do_not_multiply_the_sums():
    """The fan-out trap: 40 followers × 12 trades. pnl is the provider's, once; followers
    and AUM are each relationship once."""
    events = []
    for k in range(12):
        events += [fill(T0 + k * H, "buy", "1", "100", "10000"), fill(T0 + k * H + 1, "sell", "1", "105", "10000")]
    text = scenario(*events, followers=40)
    s = stats(text)
    assert (s["periods"]["all"]["trades"], s["periods"]["all"]["pnl"]) == (12, "60")
    from pyservice.replay import replay_records

    portfolios = [r for r in replay_records(text) if r["kind"] == "portfolio"]
    assert len(portfolios) == 40
    aum = sum(Decimal(r["equity"]) for r in portfolios)
    assert (s["followers"], Decimal(s["aum"]), Decimal(s["copiers_pnl"])) == (40, aum, aum - 40 * 1000)
    # each copied 0.1 BTC twelve times for +0.5: 40 × 1006
    assert (s["aum"], s["copiers_pnl"]) == ("40240", "240")
    other = scenario_statistics(text)[1]
    assert (other["provider"], other["followers"], other["aum"], other["periods"]["all"]["trades"]) == ("Q", 0, "0", 0)


def test_an_unfollowed_relationship_counts_in_copiers_pnl_at_its_end():
    text = scenario(
        fill(T0, "buy", "1", "100", "1000"),
        {"type": "mark", "time": format_time(T0 + H), "symbol": "BTC", "price": "120"},
        {"type": "unfollow", "time": format_time(T0 + H), "follower": "f0", "provider": "P"},
        {"type": "mark", "time": format_time(T0 + 2 * H), "symbol": "BTC", "price": "50"},
        followers=2,
    )
    s = stats(text)
    # each copied 1 BTC at 100: f0 left at 120 (+20), f1 holds it at 50 (−50)
    assert (s["followers"], s["aum"], s["copiers_pnl"]) == (1, "950", "-30")


def test_the_profit_share_paid_at_an_unfollow_is_a_cost_to_the_copier():
    doc = json.loads(
        scenario(
            fill(T0, "buy", "1", "100", "1000"),
            {"type": "mark", "time": format_time(T0 + H), "symbol": "BTC", "price": "120"},
            {"type": "unfollow", "time": format_time(T0 + H), "follower": "f0", "provider": "P"},
        )
    )
    doc["providers"][0]["profit_share_pct"] = "10"
    doc["platform"] = {"settlement": "monthly"}
    s = stats(json.dumps(doc))
    # +20 on 1,000; 10 % of it (2) paid at the unfollow
    assert (s["followers"], s["aum"], s["copiers_pnl"]) == (0, "0", "18")
    assert statistics_reference.scenario_statistics(json.dumps(doc))[0]["copiers_pnl"] == "18"


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pyservice.cli", "stats", *args], capture_output=True, text=True)


def test_the_command_prints_one_line_per_provider_in_order(tmp_path):
    path = tmp_path / "s.json"
    path.write_text(scenario(fill(T0, "buy", "1", "100", "1000"), fill(T0 + H, "sell", "1", "110", "1000")))
    out = run_cli(str(path))
    assert out.returncode == 0, out.stderr
    lines = [json.loads(x) for x in out.stdout.splitlines()]
    assert [r["provider"] for r in lines] == ["P", "Q"]
    assert list(lines[0]) == ["provider", "as_of", "strategy", "max_leverage", "followers", "aum", "copiers_pnl",
                              "open_trades", "unrealized_pnl", "risk_class", "risk_level", "periods", "equity_curve"]  # fmt: skip
    assert list(lines[0]["periods"]) == ["7d", "30d", "90d", "all"]
    assert list(lines[0]["periods"]["all"]) == ["trades", "wins", "losses", "win_rate", "pnl", "roi", "best_trade",
                                                "worst_trade", "max_drawdown", "volatility", "sharpe"]  # fmt: skip
    assert lines[0]["periods"]["all"]["roi"] == "0.01"  # +10 on 1,000
    only = run_cli(str(path), "--provider", "Q", "--as-of", "2026-11-02T00:30:00Z")
    assert [json.loads(x)["as_of"] for x in only.stdout.splitlines()] == ["2026-11-02T00:30:00Z"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--as-of", "2026-11-02"], "invalid --as-of: time '2026-11-02' is not YYYY-MM-DDTHH:MM:SS[.ffffff]Z"),
        (["--as-of", "2026-02-30T00:00:00Z"], "invalid --as-of: time '2026-02-30T00:00:00Z': day is out of range"),
        (["--provider", "nobody"], "unknown provider 'nobody'"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(tmp_path, args, message):
    path = tmp_path / "s.json"
    path.write_text(scenario())
    out = run_cli(str(path), *args)
    assert (out.returncode, out.stdout) == (2, "")
    assert out.stderr.startswith(message) and out.stderr.count("\n") == 1


def test_an_invalid_file_exits_2_as_replay_does(tmp_path):
    path = tmp_path / "s.json"
    path.write_text('{"instruments": [], "providers": [], "events": [], "extra": 1}')
    out = run_cli(str(path))
    assert (out.returncode, out.stdout, out.stderr) == (2, "", "invalid scenario: unknown field 'extra'\n")

"""`copyengine bench --core`: one provider execution fanned out to N followers.

The Rust core and the plain-Python reference run the same scenario in the same process;
the speed-up is the ratio of their medians. Followers use all three sizing modes and are
funded so that every one of them copies. Each timed opening fill is followed by an
untimed closing fill, so every iteration starts from the same state.
"""

from __future__ import annotations

import gc
import json
import time
from typing import Any

from pyservice._engine_core import Engine
from pyservice.reference import ReferenceEngine

SYMBOL = "BTCUSDT"


def build_scenario(followers: int) -> dict[str, Any]:
    modes = [
        {"mode": "proportional"},
        {"mode": "fixed_amount", "fixed_amount": "1000"},
        {"mode": "multiplier", "multiplier": "1.5"},
    ]
    events: list[dict[str, Any]] = []
    for i in range(followers):
        events.append(
            {
                "type": "follow",
                "follower": f"f{i}",
                "provider": "p1",
                "allocation": str(10_000 + i % 977),
                "max_loss_pct": "50",
                "max_open_trades": 5,
                **modes[i % 3],
            }
        )
    return {
        "instruments": [
            {
                "symbol": SYMBOL,
                "kind": "spot",
                "tick": "0.01",
                "step": "0.00001",
                "min_qty": "0.00001",
                "min_notional": "5",
            }
        ],
        "providers": [{"id": "p1"}],
        "events": events,
    }


def _fill(i: int, side: str) -> dict[str, Any]:
    return {
        "type": "fill",
        "provider": "p1",
        "exec_id": f"x{i}-{side}",
        "symbol": SYMBOL,
        "side": side,
        "qty": "0.5",
        "price": "60000.5",
        "provider_equity": "100000",
    }


def _percentile(sorted_values: list[float], q: float) -> float:
    idx = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[idx]


def run_core_bench(followers: int, *, iterations: int = 300, python_iterations: int = 5) -> dict[str, Any]:
    scenario = build_scenario(followers)
    header = {k: v for k, v in scenario.items() if k != "events"}
    rust = Engine.from_scenario(json.dumps(scenario))
    ref = ReferenceEngine.from_scenario(header)
    for i, ev in enumerate(scenario["events"]):
        ref.apply(i, ev)
    seq = len(scenario["events"])

    # Agreement on the first round trip: identical records from both implementations.
    open_ev, close_ev = _fill(0, "buy"), _fill(0, "sell")
    batch = rust.apply(seq, json.dumps(open_ev))
    rust_records = [json.loads(line) for line in rust.render_jsonl(batch).splitlines()]
    agree = rust_records == ref.apply(seq, open_ev) and batch.orders == followers
    rust.apply(seq + 1, json.dumps(close_ev))
    ref.apply(seq + 1, close_ev)
    seq += 2

    def timed(run: Any, n: int, encode: bool) -> list[float]:
        nonlocal seq
        samples = []
        gc.collect()
        for i in range(1, n + 1):
            o, c = _fill(i, "buy"), _fill(i, "sell")
            arg_o = json.dumps(o) if encode else o
            arg_c = json.dumps(c) if encode else c
            t0 = time.perf_counter_ns()
            run(seq, arg_o)
            samples.append((time.perf_counter_ns() - t0) / 1000)
            run(seq + 1, arg_c)
            seq += 2
        return sorted(samples)

    rust_us = timed(rust.apply, iterations, True)
    py_us = timed(ref.apply, python_iterations, False)
    return {
        "followers": followers,
        "iterations": {"rust": iterations, "python": python_iterations},
        "rust_fanout_us": {"p50": round(_percentile(rust_us, 0.5), 1), "p99": round(_percentile(rust_us, 0.99), 1)},
        "python_fanout_us": {"p50": round(_percentile(py_us, 0.5), 1)},
        "speedup": round(_percentile(py_us, 0.5) / _percentile(rust_us, 0.5), 1),
        "agree": agree,
    }

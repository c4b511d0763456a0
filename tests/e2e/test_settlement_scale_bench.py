"""`benches/settlement_scale.py` at a small size, so that it cannot rot: a live engine
with 2,000 relationships in profit settles them once, and exactly the rows, ledger
entries, notifications and stream entries of that settlement are there, with exact
totals, while the probe went on being copied without backpressure."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import shutil
import sys
from decimal import Decimal
from pathlib import Path
from types import ModuleType

import pytest

_PATH = Path(__file__).resolve().parents[2] / "benches" / "settlement_scale.py"

if shutil.which("redis-server") is None:
    if os.environ.get("CI") == "true":
        raise RuntimeError("CI needs redis-server on PATH for the stream tests")
    pytest.skip("redis-server is not installed (CI installs it; nothing skips there)", allow_module_level=True)


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("settlement_scale", _PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_the_settlement_bench_runs_small_with_exact_counts(tmp_path: Path, pg_server: str) -> None:
    from test_fills_stream import RedisServer

    (tmp_path / "redis").mkdir()
    rs = RedisServer(tmp_path / "redis")
    rs.start()
    try:
        bench = _bench()
        cfg = bench.Config(relationships=2_000, providers=10, probe_rate=100, baseline_s=1, after_s=0.2, timeout_s=120)
        result = asyncio.run(bench.run(cfg, pg_server, rs.url, log=lambda _: None))
    finally:
        rs.kill()
    s = result["settlement"]
    # each relationship: one charged outcome, a settlement transaction of 3 entries
    # (relationship -24, provider +21.6, platform +2.4) and a `pnl` statement without
    # entries (nothing realized), both sides notified, each notification on the stream
    assert (s["outcomes"], s["outcomes_charged"]) == (2_000, 2_000)
    assert (s["settlements"], s["ledger_transactions"], s["ledger_entries"]) == (2_000, 4_000, 6_000)
    assert (s["notifications"], s["stream_entries"]) == (4_000, 4_000)
    assert {k: Decimal(v) for k, v in s["totals"].items()} == {
        "charged": Decimal(48_000), "provider_credit": Decimal(43_200), "platform_credit": Decimal(4_800)
    }  # fmt: skip
    # the books' 2,001 `open` transactions, then the settlement's
    assert s["ledger_check"] == "Summary(transactions=6001, statements=2000, relationships=2001)"
    assert 0 < s["applied_s"] <= s["committed_s"] <= s["published_s"] < 120
    for phase in ("baseline", "settling"):
        assert result["probe_ms"][phase]["n"] > 0, phase
        assert result["metrics"][phase]["samples"] > 0, phase
    assert {phase: m["backpressure_max"] for phase, m in result["metrics"].items()} == {
        "baseline": 0, "settling": 0, "publishing": 0
    }  # fmt: skip
    json.dumps(result)  # what --json writes

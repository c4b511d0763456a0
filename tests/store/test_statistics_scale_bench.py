"""`benches/statistics_scale.py` at a tiny size, so that it cannot rot: every figure is
produced, and the rows it builds are the records `figures.record` computes from the trades
it stored."""

import asyncio
import importlib.util
import json
import sys
from decimal import Decimal
from pathlib import Path

import asyncpg

from pyservice.statistics import figures
from pyservice.store import statistics as stats

_PATH = Path(__file__).resolve().parents[2] / "benches" / "statistics_scale.py"


def _bench():
    spec = importlib.util.spec_from_file_location("statistics_scale", _PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_the_scale_bench_runs_small_and_builds_exact_rows(pg_dsn):
    bench = _bench()
    cfg = bench.Config(providers=20, trades=2_000, relationships=200, rounds=2, per_round=3, repetitions=5)
    result = asyncio.run(bench.run(cfg, pg_dsn, log=lambda _: None))

    fresh = result["freshness"]
    assert (fresh["open_s"]["n"], fresh["close_s"]["n"]) == (6, 6)
    assert fresh["mark_aum_s"]["n"] > 0 and fresh["step_s"]["n"] >= 7
    assert all(0 < fresh[k]["p50"] <= fresh[k]["max"] < 60 for k in ("open_s", "close_s", "mark_aum_s"))
    board = result["leaderboard"]
    assert (board["all"]["rows"], board["filtered"]["n"], board["naive"]["n"]) == (20, 5, 3)
    assert board["naive_over_all_p50"] > 0
    assert result["sweep"]["rows"] == result["sweep"]["due"] == 20  # all due at midnight, one batch
    assert result["build"]["full_recompute_s"] > 0
    json.dumps(result)  # what --json writes

    async def check():
        conn = await asyncpg.connect(pg_dsn)
        try:
            assert await conn.fetchval("SELECT count(*) FROM provider_trades WHERE closed_seq IS NOT NULL") == 2_000 + 6
            assert await conn.fetchval("SELECT count(*) FROM relationships") == 200
            assert await conn.fetchval("SELECT count(*) FROM provider_statistics") == 20
            marks = await stats.marks(conn)
            for row in await conn.fetch(
                f"SELECT *, {stats.STORED_RECORD} AS whole FROM provider_statistics ORDER BY provider_id"
            ):
                p = row["provider_id"]
                their = (await stats.provider_trades(conn, "main", [p]))[p]
                want = figures.record(
                    p,
                    their,
                    as_of=row["as_of"],
                    marks=marks,
                    standing=figures.Standing(
                        row["followers"], figures.canonical(row["aum"]), figures.canonical(row["copiers_pnl"])
                    ),
                    max_leverage=row["max_leverage"],
                )
                assert json.loads(row["whole"]) == want, p
                assert row["trades_all"] == len(their) and row["roi_30d"] == Decimal(want["periods"]["30d"]["roi"])
        finally:
            await conn.close()

    asyncio.run(check())

"""The `copyengine` command as a user runs it (a real subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "pyservice" / "scenarios" / "demo.json"


def copyengine(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pyservice.cli", *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def test_replay_prints_the_demo_as_json_lines() -> None:
    result = copyengine("replay", str(DEMO))
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    # Binance's example: provider equity 1,000 spends 500; alice (500) spends 250.
    first = records[0]
    assert (first["follower"], first["qty"], first["price"]) == ("alice", "0.005", "50250")
    assert {r["kind"] for r in records} == {"order", "skip", "stop", "error", "portfolio"}
    stop = next(r for r in records if r["kind"] == "stop")
    assert (stop["follower"], stop["reason"]) == ("bob", "max_loss")
    portfolios = [r for r in records if r["kind"] == "portfolio"]
    assert [(p["follower"], p["status"]) for p in portfolios] == [
        ("alice", "active"),
        ("bob", "stopped"),
        ("carol", "active"),
    ]
    assert copyengine("replay", str(DEMO)).stdout == result.stdout  # byte-identical reruns


def test_invalid_scenario_exits_2_with_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"instruments": [{"symbol": "X"}], "providers": [], "events": []}')
    result = copyengine("replay", str(bad))
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == "invalid scenario: instruments[0]: missing field 'kind'\n"

    bad.write_text("not json")
    result = copyengine("replay", str(bad))
    assert result.returncode == 2 and result.stderr.startswith("invalid scenario: not JSON")
    assert len(result.stderr.splitlines()) == 1

    missing = copyengine("replay", str(tmp_path / "absent.json"))
    assert missing.returncode == 2 and missing.stderr.startswith("invalid scenario: cannot read")


def test_core_bench_reports_both_implementations(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    result = copyengine(
        "bench", "--core", "--followers", "300", "--iterations", "20", "--python-iterations", "1", "--json", str(out)
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert report == json.loads(result.stdout)
    assert report["followers"] == 300 and report["agree"] is True
    assert report["iterations"] == {"rust": 20, "python": 1}
    assert (list(report["rust_fanout_us"]), list(report["python_fanout_us"])) == (["p50", "p99"], ["p50"])
    # a ratio from one run, not a constant: the reference is plain Python over Fractions
    ratio = report["python_fanout_us"]["p50"] / report["rust_fanout_us"]["p50"]  # of the rounded p50s
    assert abs(report["speedup"] - ratio) <= 0.01 * ratio
    assert report["speedup"] > 1

"""`copyengine demo` and `copyengine bench` (socket) run end to end, briefly."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

CLI = [sys.executable, "-m", "pyservice.cli"]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_demo_copies_and_stops_cleanly() -> None:
    api_port = _port()
    out = subprocess.run(
        [
            *CLI,
            "demo",
            "--providers",
            "3",
            "--followers",
            "300",
            "--rate",
            "20",
            "--duration",
            "4",
            "--metrics-port",
            str(_port()),
            "--api-port",
            str(api_port),
        ],
        capture_output=True,
        text=True,
        timeout=120,  # the engine may take up to demo.START_TIMEOUT_S to start
    )
    assert out.returncode == 0, out.stderr
    summary = re.search(r"demo: ([\d,]+) copy orders, ([\d,]+) fills, .* ([\d,]+) protocol errors", out.stdout)
    assert summary is not None, out.stdout[-2000:]
    orders, fills, errors = (int(g.replace(",", "")) for g in summary.groups())
    # exit 0 already says a copy order was sent (the demo exits 1 without one); the venue
    # fills a copy order (an IOC) at most once, so fills come to at most the orders
    assert 0 < fills <= orders and errors == 0
    # simulated time: 4 s at two days a second is 8 venue days from 2026-09-01, and each
    # provider's 30-day figures are printed from the projector's rows
    title = re.search(r"providers, 30 days to (2026-09-(\d\d)) \d\d:\d\d \(venue time\)", out.stdout)
    assert title is not None and 5 <= int(title.group(2)) <= 15, out.stdout[-2000:]
    board = re.findall(r"  (prov\d\d): ROI ([+-]\d+\.\d\d) %, max drawdown (\d+\.\d\d) %, (\d+) trades", out.stdout)
    assert sorted(p for p, *_ in board) == ["prov00", "prov01", "prov02"]
    assert all(float(dd) >= 0 for _, _, dd, _ in board)
    # the API served the page's leaderboard from the same rows: every provider
    assert f"the leaderboard page: http://127.0.0.1:{api_port}/" in out.stdout
    assert f"api: 3 providers on http://127.0.0.1:{api_port}/v1/leaderboard" in out.stdout, out.stdout[-2000:]
    assert re.search(r"a follower token for the page's copy form \(follower demo-f\): [\w-]{43}", out.stdout)


def _bench(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """`copyengine bench ARGS --json PATH`, which must succeed; the JSON it wrote."""
    path = tmp_path / "bench.json"
    out = subprocess.run(
        [*CLI, "bench", *args, "--json", str(path)], capture_output=True, text=True, timeout=180, env=env
    )
    assert out.returncode == 0, out.stderr
    result: dict[str, Any] = json.loads(path.read_text())
    return result


def test_socket_bench_reports_every_order_once_for_both_engines(tmp_path: Path) -> None:
    t0 = time.monotonic()
    result = _bench(tmp_path, "--followers", "50", "--fills", "10", "--burst", "5", "--engine", "both")
    wall_s = time.monotonic() - t0
    for r in (result, result["naive"]):
        assert r["copy_orders_expected"] == r["copy_orders_received"] == 500
        assert (r["lost"], r["duplicates"], r["burst_executions"]) == (0, 0, 5)
        # one latency per timed execution: of 10 sorted values, p90 and above are the 10th
        latency = r["latency_us"]
        assert list(latency) == ["p50", "p90", "p99", "p999", "max"]
        assert latency["p50"] <= latency["p90"] == latency["p99"] == latency["p999"] == latency["max"]
        # the burst's 5 x 50 orders took less than the whole command, which ran both engines
        assert r["orders_per_s"] >= round(250 / wall_s)
        # peak RSS of a Python engine process holding 50 followers: the interpreter with
        # its libraries (tens of MB), far under the 168 MB measured at 100,000 followers
        assert 20 <= r["engine_rss_mb"] <= 168
    assert result["engine"] == "rust"
    assert result["speedup_p50"] == round(result["naive"]["latency_us"]["p50"] / result["latency_us"]["p50"], 1)


def test_socket_bench_paces_its_timed_executions(tmp_path: Path) -> None:
    t0 = time.monotonic()
    result = _bench(tmp_path, "--followers", "20", "--fills", "6", "--burst", "0", "--engine", "rust", "--rate", "10")
    wall_s = time.monotonic() - t0
    assert (result["copy_orders_received"], result["lost"], result["duplicates"]) == (120, 0, 0)
    assert result["timed_rate"] == 10
    # 6 executions due 0.1 s apart take at least 0.5 s: at most 240 orders/s for 20 followers;
    # and the 120 orders took less than the whole command
    assert round(120 / wall_s) <= result["timed_orders_per_s"] <= 240
    assert (result["burst_executions"], result["orders_per_s"]) == (0, 0)  # no burst asked for


def test_socket_bench_refuses_a_rate_that_is_not_one() -> None:
    for bad in ("-1", "nan", "inf", "fast"):
        out = subprocess.run([*CLI, "bench", "--rate", bad], capture_output=True, text=True, timeout=30)
        assert out.returncode == 2 and "--rate" in out.stderr, (bad, out.stderr)


def test_durable_socket_bench_waits_for_every_row(tmp_path: Path, pg_server: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    t0 = time.monotonic()
    result = _bench(
        tmp_path,
        "--followers",
        "30",
        "--fills",
        "4",
        "--burst",
        "3",
        "--engine",
        "rust",
        "--durable",
        env={**env, "DATABASE_URL": pg_server},
    )
    assert (result["copy_orders_received"], result["lost"], result["duplicates"]) == (120, 0, 0)
    assert result["durable"] == {"postgres": "DATABASE_URL", "redis_stream": None}
    wall_s = time.monotonic() - t0
    # persisted and published: the burst's 3 x 30 orders, timed from the burst's start to
    # the last row, so never faster than the round trip, and within the command's time
    assert round(90 / wall_s) <= result["persisted_published_orders_per_s"] <= result["orders_per_s"]
    assert 0 <= result["timed_persisted_lag_ms"] <= wall_s * 1000


def test_socket_bench_warms_up_untimed_and_refuses_bad_options(tmp_path: Path) -> None:
    result = _bench(tmp_path, "--followers", "20", "--fills", "4", "--burst", "1", "--engine", "rust", "--warmup", "3")
    # the 3 warm-up executions' 60 orders arrived (none lost) but are neither timed nor counted as timed
    assert (result["copy_orders_expected"], result["copy_orders_received"]) == (80, 80)
    assert (result["lost"], result["duplicates"], result["warmup_executions"], result["realtime"]) == (0, 0, 3, None)
    for option, bad in (
        ("--warmup", "-1"),
        ("--warmup", "two"),
        ("--realtime", "0"),
        ("--realtime", "100"),
        ("--realtime", "high"),
    ):
        refused = subprocess.run([*CLI, "bench", option, bad], capture_output=True, text=True, timeout=30)
        assert refused.returncode == 2 and option in refused.stderr, (option, bad, refused.stderr)


def _can_realtime() -> bool:
    """Whether a process started here may take SCHED_FIFO (CAP_SYS_NICE or RLIMIT_RTPRIO)."""
    probe = [sys.executable, "-c", "import os; os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))"]
    return subprocess.run(probe, capture_output=True).returncode == 0


def _engine_with_realtime(tmp_path: Path, *prefix: str) -> subprocess.Popen[str]:
    books = tmp_path / "books.json"
    books.write_text(
        json.dumps(
            {
                "version": 1,
                "providers": [{"id": "P"}],
                "follows": [{"follower": "a", "provider": "P", "allocation": "100"}],
            }
        )
    )
    return subprocess.Popen(
        [
            *prefix,
            *CLI,
            "engine",
            "--memory",
            "--books",
            str(books),
            "--listen",
            f"tcp://127.0.0.1:{_port()}",
            "--insecure-listen",  # no venue connects
            "--realtime",
            "3",
            "--log-format",
            "json",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )


def test_engine_realtime_puts_the_hot_threads_under_fifo_or_refuses_to_start(tmp_path: Path) -> None:
    from pyservice.engine.priority import HELPER_COMM, realtime_priority

    proc = _engine_with_realtime(tmp_path)
    try:
        assert proc.stderr is not None
        if not _can_realtime():
            assert proc.wait(30) == 2
            assert "CAP_SYS_NICE" in proc.stderr.read()
            return
        for line in proc.stderr:
            if "SCHED_FIFO" in line:
                threads = json.loads(line)["threads"]
                break
        else:
            raise AssertionError(f"no SCHED_FIFO line; exit {proc.wait(10)}")
        assert threads[0] == proc.pid and len(threads) == 2
        assert Path(f"/proc/{proc.pid}/task/{threads[1]}/comm").read_text().strip() == HELPER_COMM
        assert [realtime_priority(t) for t in threads] == [3, 3]
        # nothing else in the process (uvloop's workers, say) was raised
        others = [int(t.name) for t in Path(f"/proc/{proc.pid}/task").iterdir() if int(t.name) not in threads]
        assert all(realtime_priority(t) is None for t in others)
    finally:
        proc.terminate()
        proc.wait(30)


def test_engine_realtime_without_the_capability_refuses_to_start(tmp_path: Path) -> None:
    # root here: drop CAP_SYS_NICE for the engine (its RLIMIT_RTPRIO is 0)
    prefix = ("setpriv", "--bounding-set=-sys_nice", "--inh-caps=-sys_nice") if _can_realtime() else ()
    proc = _engine_with_realtime(tmp_path, *prefix)
    assert proc.stderr is not None
    assert proc.wait(30) == 2
    err = proc.stderr.read()
    assert "cannot start: --realtime 3: real-time priority refused" in err and "CAP_SYS_NICE" in err, err


def test_socket_bench_realtime_runs_both_engines_and_the_venue_under_fifo(tmp_path: Path) -> None:
    path = tmp_path / "bench.json"
    out = subprocess.run(
        [
            *CLI,
            "bench",
            "--followers",
            "20",
            "--fills",
            "4",
            "--burst",
            "1",
            "--engine",
            "both",
            "--warmup",
            "1",
            "--realtime",
            "3",
            "--json",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if not _can_realtime():
        assert out.returncode == 2 and "CAP_SYS_NICE" in out.stderr, out.stderr
        return
    assert out.returncode == 0, out.stderr
    result = json.loads(path.read_text())
    for r in (result, result["naive"]):
        assert (r["realtime"], r["copy_orders_received"], r["lost"], r["duplicates"]) == (3, 80, 0, 0)

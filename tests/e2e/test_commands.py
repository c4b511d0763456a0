"""`copyengine demo` and `copyengine bench` (socket) run end to end, briefly."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from pathlib import Path

CLI = [sys.executable, "-m", "pyservice.cli"]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_demo_copies_and_stops_cleanly() -> None:
    out = subprocess.run(
        [*CLI, "demo", "--providers", "3", "--followers", "300", "--rate", "20", "--duration", "4",
         "--metrics-port", str(_port())],
        capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    summary = re.search(r"demo: ([\d,]+) copy orders, ([\d,]+) fills, .* ([\d,]+) protocol errors", out.stdout)
    assert summary is not None, out.stdout[-2000:]
    orders, fills, errors = (int(g.replace(",", "")) for g in summary.groups())
    assert orders > 0 and fills > 0 and errors == 0


def test_socket_bench_reports_every_order_once_for_both_engines(tmp_path: Path) -> None:
    path = tmp_path / "bench.json"
    out = subprocess.run(
        [*CLI, "bench", "--followers", "50", "--fills", "10", "--burst", "5", "--engine", "both",
         "--json", str(path)],
        capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    result = json.loads(path.read_text())
    for r in (result, result["naive"]):
        assert r["copy_orders_expected"] == r["copy_orders_received"] == 500
        assert (r["lost"], r["duplicates"]) == (0, 0)
        assert set(r["latency_us"]) == {"p50", "p90", "p99", "p999", "max"}
        assert r["orders_per_s"] > 0 and r["engine_rss_mb"] > 0
    assert result["engine"] == "rust" and result["speedup_p50"] > 0

"""End to end: `copyengine engine` and `copyengine venue-sim` as real processes over a
real socket, driven by venue scripts; the venue's `--record` file and the engine's
metrics are the evidence."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

from venue_traffic import venue_key

from pyservice.venue_time import parse_time

BTC = {
    "type": "instrument",
    "symbol": "BTCUSDT",
    "kind": "spot",
    "tick": "0.01",
    "step": "0.00001",
    "min_qty": "0.00001",
    "min_notional": "5",
}
ETH = {
    "type": "instrument",
    "symbol": "ETHUSDT-PERP",
    "kind": "perp",
    "tick": "0.01",
    "step": "0.001",
    "min_qty": "0.001",
    "min_notional": "5",
}


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _exec(
    exec_id: str, symbol: str, side: str, qty: str, price: str, equity: str = "1000", leverage: int = 1
) -> dict[str, Any]:
    return {
        "type": "exec",
        "provider": "alpha",
        "exec_id": exec_id,
        "symbol": symbol,
        "side": side,
        "qty": qty,
        "price": price,
        "provider_equity": equity,
        "leverage": leverage,
    }


def _books(n: int, **settings: Any) -> dict[str, Any]:
    return {
        "version": 1,
        "providers": [{"id": "alpha"}],
        "follows": [{"follower": f"f{i}", "provider": "alpha", "allocation": "1000", **settings} for i in range(n)],
    }


class Run:
    def __init__(self, records: list[dict[str, Any]], metrics: dict[str, float], venue_log: str) -> None:
        self.records = records
        self.metrics = metrics
        self.venue_log = venue_log

    def m(self, name: str) -> float:
        return self.metrics.get(name, 0.0)

    def accepted(self) -> list[dict[str, Any]]:
        """Orders the venue acted on (not answered `duplicate`)."""
        return [r for r in self.records if r.get("reason") != "duplicate"]


def _metrics(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
        text = r.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("copyengine") and " " in line:
            key, value = line.rsplit(" ", 1)
            out[key] = float(value)
    return out


def run(tmp: Path, books: dict[str, Any], script: list[dict[str, Any]], *venue_args: str, duration: float = 2.5) -> Run:
    (tmp / "books.json").write_text(json.dumps(books))
    (tmp / "script.jsonl").write_text("".join(json.dumps(s) + "\n" for s in script))
    port, metrics_port = _port(), _port()
    addr = f"tcp://127.0.0.1:{port}"
    key_file, _ = venue_key(tmp)
    cli = [sys.executable, "-m", "pyservice.cli"]
    engine = subprocess.Popen(
        [
            *cli,
            "engine",
            "--memory",
            "--books",
            str(tmp / "books.json"),
            "--listen",
            addr,
            "--venue-key-file",
            key_file,
            "--metrics-port",
            str(metrics_port),
            "--heartbeat",
            "0.2",
            "--dead-after",
            "2",
        ],
        stderr=open(tmp / "engine.log", "wb"),
    )
    try:
        time.sleep(0.8)
        venue = subprocess.run(
            [
                *cli,
                "venue-sim",
                "--connect",
                addr,
                "--venue-key-file",
                key_file,
                "--books",
                str(tmp / "books.json"),
                "--script",
                str(tmp / "script.jsonl"),
                "--record",
                str(tmp / "orders.jsonl"),
                "--duration",
                str(duration),
                "--heartbeat",
                "0.2",
                *venue_args,
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert venue.returncode == 0, venue.stderr
        metrics = _metrics(metrics_port)
    finally:
        engine.terminate()
        engine.wait(10)
    assert engine.returncode in (0, -15), (tmp / "engine.log").read_text()
    record = tmp / "orders.jsonl"
    lines = record.read_text().splitlines() if record.exists() else []
    return Run([json.loads(x) for x in lines], metrics, venue.stderr)


def test_the_engine_runs_on_the_scripts_times(tmp_path: Path) -> None:
    times = ["2024-03-01T00:00:00Z", "2024-03-02T09:30:00.5Z", "2024-03-02T09:29:59Z", "2024-03-05T00:00:00.000001Z"]
    script = [
        {**BTC, "time": times[0]},
        {**_exec("e1", "BTCUSDT", "buy", "0.01", "50000"), "time": times[1]},
        {"type": "pause", "seconds": 0.3},
        {**_exec("e2", "BTCUSDT", "sell", "0.005", "50000"), "time": times[2]},  # earlier: corrected
        {"type": "pause", "seconds": 0.3},
        {"type": "mark", "symbol": "BTCUSDT", "price": "50001", "time": times[3]},
    ]
    # the venue's clock starts before the script and runs slowly: its own entries (the
    # fills) take the latest scripted time, so the engine's clock ends at the last one
    r = run(tmp_path, _books(3), script, "--start", "2024-01-01T00:00:00Z", "--clock", "1")
    assert [x["outcome"] for x in r.accepted()] == ["fill"] * 6
    assert r.m("copyengine_venue_time_seconds") == parse_time(times[3]) / 1e6
    assert r.m("copyengine_clock_corrections_total") == 1
    (line,) = [x for x in (tmp_path / "engine.log").read_text().splitlines() if "venue time went back" in x]
    assert f"ts={parse_time(times[2])} taken={parse_time(times[1])}" in line


def test_copies_fill_and_every_order_is_answered_once(tmp_path: Path) -> None:
    r = run(tmp_path, _books(20), [BTC, _exec("e1", "BTCUSDT", "buy", "0.01", "50000")])
    assert len(r.records) == 20
    assert {x["follower"] for x in r.records} == {f"f{i}" for i in range(20)}
    # proportional: 1000 / 1000 of the provider's 0.01, a limit 0.5 % above, all filled
    assert all(x["qty"] == "0.01" and x["price"] == "50250" and x["outcome"] == "fill" for x in r.records)
    assert r.m("copyengine_copy_orders_total") == 20
    assert r.m("copyengine_fills_total") == 20
    assert r.m("copyengine_pending_orders") == 0


def test_partial_fills_release_the_rest(tmp_path: Path) -> None:
    r = run(tmp_path, _books(10), [BTC, _exec("e1", "BTCUSDT", "buy", "0.01", "50000")], "--partial-fill-pct", "100")
    # each of the 10 orders of 0.01 (1,000 steps of 0.00001) fills 1 to 999 steps
    assert [(x["outcome"], x["qty"]) for x in r.records] == [("fill", "0.01")] * 10
    assert all(0 < Decimal(x["fill_qty"]) < Decimal("0.01") for x in r.records)
    assert all(Decimal(x["fill_qty"]) % Decimal("0.00001") == 0 for x in r.records)
    assert r.m("copyengine_fills_total") == 10
    assert r.m("copyengine_pending_orders") == 0


def test_rejects_for_insufficient_funds_release_the_orders(tmp_path: Path) -> None:
    r = run(tmp_path, _books(10), [BTC, _exec("e1", "BTCUSDT", "buy", "0.01", "50000")], "--funding", "0.01")
    assert [x["reason"] for x in r.records] == ["insufficient_funds"] * 10
    assert r.m('copyengine_rejects_total{reason="insufficient_funds"}') == 10
    assert r.m("copyengine_pending_orders") == 0


def test_reduce_then_reversal(tmp_path: Path) -> None:
    script = [
        ETH,
        _exec("e1", "ETHUSDT-PERP", "buy", "2", "2500", leverage=5),
        {"type": "pause", "seconds": 0.3},
        _exec("e2", "ETHUSDT-PERP", "sell", "1", "2500", leverage=5),
        {"type": "pause", "seconds": 0.3},
        _exec("e3", "ETHUSDT-PERP", "sell", "2", "2500", leverage=5),
    ]
    r = run(tmp_path, _books(3), script)
    by_frame: dict[int, list[dict[str, Any]]] = {}
    for x in r.records:
        by_frame.setdefault(x["frame_seq"], []).append(x)
    frames = [by_frame[k] for k in sorted(by_frame)]
    opens, reduce, reversal = frames
    assert all(x["side"] == "buy" and x["qty"] == "2" and x["leverage"] == 5 for x in opens)
    # half the provider's position closed: half of each follower's, reduce-only market
    assert all(x["qty"] == "1" and x["reduce_only"] and x["type"] == "market" for x in reduce)
    closes = [x for x in reversal if x["reduce_only"]]
    shorts = [x for x in reversal if not x["reduce_only"]]
    assert [x["qty"] for x in closes] == ["1"] * 3  # the provider ended short: close all
    assert all(x["side"] == "sell" and x["type"] == "limit_ioc" for x in shorts) and len(shorts) == 3
    assert r.m("copyengine_pending_orders") == 0


def test_max_loss_stops_and_closes(tmp_path: Path) -> None:
    script = [
        ETH,
        _exec("e1", "ETHUSDT-PERP", "buy", "4", "2500", equity="1000", leverage=10),
        {"type": "pause", "seconds": 0.3},
        {"type": "mark", "symbol": "ETHUSDT-PERP", "price": "2400"},
    ]
    r = run(tmp_path, _books(2, max_loss_pct="10"), script)
    closes = [x for x in r.records if x["reduce_only"]]
    assert r.m("copyengine_stops_total") == 2
    # each copied W = 4 × 1000/1000 = 4, filled at the mark 2500; at 2400 each has lost
    # 4 × 100 = 400, over 10 % of 1000: both stop and close their whole 4, at market
    assert sorted((x["follower"], x["side"], x["type"], x["qty"], x["leverage"]) for x in closes) == [
        ("f0", "sell", "market", "4", 1),
        ("f1", "sell", "market", "4", 1),
    ]
    assert r.m("copyengine_copy_orders_total") == 4  # the 2 opens and the 2 closes


def test_duplicate_provider_execution_copies_once(tmp_path: Path) -> None:
    r = run(
        tmp_path,
        _books(5),
        [BTC, _exec("e1", "BTCUSDT", "buy", "0.01", "50000"), _exec("e1", "BTCUSDT", "buy", "0.01", "50000")],
    )
    assert len(r.records) == 5
    assert r.m("copyengine_rule_errors_total") == 1


def _nothing_lost_nothing_doubled(r: Run, expected: int) -> None:
    accepted = Counter(x["client_order_id"] for x in r.accepted())
    assert len(accepted) == expected
    assert max(accepted.values()) == 1  # the venue acted on every id once
    assert r.m("copyengine_pending_orders") == 0


def test_venue_disconnect_mid_frame_then_resume(tmp_path: Path) -> None:
    script = [
        BTC,
        _exec("e1", "BTCUSDT", "buy", "0.001", "50000"),
        {"type": "pause", "seconds": 0.3},
        _exec("e2", "BTCUSDT", "buy", "0.001", "50000"),
        {"type": "pause", "seconds": 0.3},
        _exec("e3", "BTCUSDT", "buy", "0.001", "50000"),
    ]
    # seq 1 instrument, 2 e1, 3 fills of e1, 4 e2: cut in the middle of the e2 frame
    r = run(tmp_path, _books(50), script, "--disconnect-at-seq", "4", duration=4)
    _nothing_lost_nothing_doubled(r, 150)
    assert r.m("copyengine_venue_connections_total") == 2  # cut once, resumed once


def test_malformed_frame_drops_and_resumes_without_orders_from_it(tmp_path: Path) -> None:
    script = [
        BTC,
        _exec("e1", "BTCUSDT", "buy", "0.001", "50000"),
        {"type": "pause", "seconds": 0.3},
        _exec("e2", "BTCUSDT", "buy", "0.001", "50000"),
    ]
    r = run(tmp_path, _books(20), script, "--garbage-at-seq", "4", duration=4)
    assert r.m('copyengine_protocol_errors_total{kind="bad_frame"}') == 1
    _nothing_lost_nothing_doubled(r, 40)


def test_the_engine_refuses_a_bad_books_file(tmp_path: Path) -> None:
    (tmp_path / "books.json").write_text('{"providers": [{"id": "a"}], "follows": [{"follower": "x"}]}')
    out = subprocess.run(
        [sys.executable, "-m", "pyservice.cli", "engine", "--memory", "--books", str(tmp_path / "books.json")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == ["invalid books: follows[0]: missing field 'provider'"]

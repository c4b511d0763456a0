"""`copyengine demo`: venue-sim and engine as real processes, with a live terminal view.

The view reads only the engine's Prometheus endpoint, as an operator's dashboard would.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from rich.console import Group
from rich.live import Live
from rich.table import Table

from pyservice import books as B
from pyservice import venue_auth


@dataclass
class Snapshot:
    at: float
    copy_orders: float = 0.0
    fills: float = 0.0
    stops: float = 0.0
    protocol_errors: float = 0.0
    skips: dict[str, float] = field(default_factory=dict)
    rejects: dict[str, float] = field(default_factory=dict)
    providers: dict[str, float] = field(default_factory=dict)
    #: cumulative (upper bound in seconds, count) of the fan-out histogram
    buckets: list[tuple[float, float]] = field(default_factory=list)
    connected: bool = False
    applied_seq: float = 0.0


def scrape(port: int) -> Snapshot | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1) as r:
            text = r.read().decode()
    except OSError:
        return None
    s = Snapshot(at=time.monotonic())
    for fam in text_string_to_metric_families(text):
        for sample in fam.samples:
            name, labels, value = sample.name, sample.labels, sample.value
            if name == "copyengine_copy_orders_total":
                s.copy_orders = value
            elif name == "copyengine_fills_total":
                s.fills = value
            elif name == "copyengine_stops_total":
                s.stops = value
            elif name == "copyengine_protocol_errors_total":
                s.protocol_errors += value
            elif name == "copyengine_skips_total":
                s.skips[labels["reason"]] = value
            elif name == "copyengine_rejects_total":
                s.rejects[labels["reason"]] = value
            elif name == "copyengine_provider_copy_orders_total":
                s.providers[labels["provider"]] = value
            elif name == "copyengine_fanout_seconds_bucket":
                s.buckets.append((float(labels["le"]), value))
            elif name == "copyengine_venue_connected":
                s.connected = value == 1
            elif name == "copyengine_applied_seq":
                s.applied_seq = value
    return s


def percentile_bound(buckets: list[tuple[float, float]], q: float) -> float | None:
    """The smallest bucket bound holding quantile `q` (histograms give bounds, not values)."""
    total = buckets[-1][1] if buckets else 0
    if not total:
        return None
    for bound, count in buckets:
        if count >= q * total:
            return bound
    return None


def _fmt_us(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return "> 100 ms" if seconds == float("inf") else f"≤ {seconds * 1e6:,.0f} µs"


def render(prev: Snapshot | None, cur: Snapshot | None, followers: int) -> Group:
    head = Table.grid(padding=(0, 2))
    if cur is None:
        head.add_row("waiting for the engine's metrics ...")
        return Group(head)
    rate = 0.0
    if prev is not None and cur.at > prev.at:
        rate = (cur.copy_orders - prev.copy_orders) / (cur.at - prev.at)
    head.add_row(
        "venue",
        "[green]connected[/]" if cur.connected else "[red]disconnected[/]",
        "followers",
        f"{followers:,}",
        "applied seq",
        f"{cur.applied_seq:,.0f}",
    )
    head.add_row("copies/s", f"{rate:,.0f}", "copy orders", f"{cur.copy_orders:,.0f}", "fills", f"{cur.fills:,.0f}")
    head.add_row(
        "fan-out p50",
        _fmt_us(percentile_bound(cur.buckets, 0.5)),
        "p99",
        _fmt_us(percentile_bound(cur.buckets, 0.99)),
        "stops",
        f"{cur.stops:,.0f}",
    )
    skips = Table(title="skips and rejects", show_edge=False)
    skips.add_column("reason")
    skips.add_column("count", justify="right")
    for reason, n in sorted(cur.skips.items(), key=lambda kv: -kv[1]):
        skips.add_row(f"skip {reason}", f"{n:,.0f}")
    for reason, n in sorted(cur.rejects.items(), key=lambda kv: -kv[1]):
        skips.add_row(f"reject {reason}", f"{n:,.0f}")
    top = Table(title="top providers by copies", show_edge=False)
    top.add_column("provider")
    top.add_column("copy orders", justify="right")
    for name, n in sorted(cur.providers.items(), key=lambda kv: -kv[1])[:5]:
        top.add_row(name, f"{n:,.0f}")
    row = Table.grid(padding=(0, 4))
    row.add_row(skips, top)
    return Group(head, row)


#: how long the engine (and its embedded PostgreSQL) may take to start
START_TIMEOUT_S = 60


def run_demo(providers: int, followers: int, duration: float | None, rate: float, metrics_port: int) -> int:
    with tempfile.TemporaryDirectory(prefix="copyengine-demo-") as tmp:
        d = Path(tmp)
        books = B.write(B.demo_books(providers, followers), d / "books.json")
        sock = f"unix:{d / 'engine.sock'}"
        # a fresh venue key for this run, 0600 in the demo's own directory
        venue_auth.write_new_key(d / "venue.key")
        py = sys.executable
        # the demo's own embedded PostgreSQL, so it never touches a database of yours
        env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
        engine = subprocess.Popen(
            [
                py,
                "-m",
                "pyservice.cli",
                "engine",
                "--books",
                str(books),
                "--listen",
                sock,
                "--venue-key-file",
                str(d / "venue.key"),
                "--data-dir",
                str(d / "pg"),
                "--metrics-port",
                str(metrics_port),
                "--log-format",
                "json",
            ],
            stderr=open(d / "engine.log", "wb"),
            start_new_session=True,
            env=env,
        )
        venue_args = [
            py,
            "-m",
            "pyservice.cli",
            "venue-sim",
            "--connect",
            sock,
            "--venue-key-file",
            str(d / "venue.key"),
            "--books",
            str(books),
            "--rate",
            str(rate),
            "--record",
            str(d / "orders.jsonl"),
            "--partial-fill-pct",
            "10",
        ]
        venue = subprocess.Popen(venue_args, stderr=open(d / "venue.log", "wb"), start_new_session=True)
        # `duration` counts from the engine's first answer: starting PostgreSQL on a busy
        # machine must not eat the trading time
        start_by = time.monotonic() + START_TIMEOUT_S
        stop_at: float | None = None
        prev: Snapshot | None = None
        cur: Snapshot | None = None
        try:
            with Live(render(None, None, followers), refresh_per_second=4) as live:
                while stop_at is None or time.monotonic() < stop_at:
                    time.sleep(0.5)
                    snap = scrape(metrics_port)
                    if snap is not None:
                        prev, cur = cur, snap
                        if stop_at is None and duration is not None:
                            stop_at = time.monotonic() + duration
                    elif cur is None and time.monotonic() > start_by:
                        print(f"the engine did not start within {START_TIMEOUT_S} s; logs:", d, file=sys.stderr)
                        break
                    live.update(render(prev, cur, followers))
                    if engine.poll() is not None or venue.poll() is not None:
                        print("a demo process exited; logs:", d, file=sys.stderr)
                        break
        except KeyboardInterrupt:
            pass
        finally:
            for p in (venue, engine):
                if p.poll() is None:
                    p.send_signal(signal.SIGINT)
            for p in (venue, engine):
                try:
                    p.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    p.kill()
        if cur is not None:
            print(
                f"demo: {cur.copy_orders:,.0f} copy orders, {cur.fills:,.0f} fills, "
                f"{sum(cur.skips.values()):,.0f} skips, {cur.stops:,.0f} stops, "
                f"{cur.protocol_errors:,.0f} protocol errors"
            )
        return 0 if cur is not None and cur.copy_orders > 0 else 1

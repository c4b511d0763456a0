"""`copyengine demo`: venue-sim and engine as real processes, with a live terminal view.

The venue runs simulated time (`--clock`): a day passes every few seconds, so within a
minute the providers have weeks of history. The view reads the engine's Prometheus
endpoint, as an operator's dashboard would, and the providers' statistics rows the
projector keeps in the demo's PostgreSQL, as the leaderboard would.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Group
from rich.live import Live
from rich.table import Table

from pyservice import books as B
from pyservice import venue_auth
from pyservice.store.server import embedded_database
from pyservice.venue_time import format_time

#: simulated venue seconds per real second: two days a second
CLOCK = 2 * 86_400
#: where the simulated venue time starts
START = "2026-09-01T00:00:00Z"


@dataclass
class Leaderboard:
    """The providers' 30-day figures as the projector last wrote them."""

    venue_time: int = 0
    #: (provider, roi, max drawdown, closed trades, followers, aum), by 30d ROI
    rows: list[tuple[str, str, str, int, int, str]] = field(default_factory=list)


async def _leaderboard(dsn: str, limit: int = 8) -> Leaderboard:
    conn = await asyncpg.connect(dsn, timeout=2)
    try:
        at = await conn.fetchval("SELECT max(at_us) FROM projection_state") or 0
        rows = await conn.fetch(
            "SELECT provider_id, roi_30d::text, max_drawdown_30d::text, trades_30d, followers, aum::text "
            "FROM provider_statistics ORDER BY roi_30d DESC, provider_id LIMIT $1",
            limit,
        )
        return Leaderboard(at, [tuple(r) for r in rows])
    finally:
        await conn.close()


def leaderboard(dsn: str) -> Leaderboard | None:
    try:
        return asyncio.run(_leaderboard(dsn))
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return None  # not migrated yet, or starting


def _pct(text: str) -> str:
    return f"{float(text) * 100:+.2f} %"  # display only: the rows hold the exact figures


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
    #: the engine's clock: the venue time of the applied log, seconds since the epoch
    venue_time: float = 0.0


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
            elif name == "copyengine_venue_time_seconds":
                s.venue_time = value
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


def render_leaderboard(board: Leaderboard | None) -> Table:
    title = "providers, last 30 days (venue time)"
    if board is not None and board.venue_time:
        title = f"providers, 30 days to {format_time(board.venue_time)[:16].replace('T', ' ')} (venue time)"
    t = Table(title=title, show_edge=False)
    for name, justify in (("provider", "left"), ("ROI", "right"), ("max drawdown", "right"), ("trades", "right"),
                          ("followers", "right"), ("AUM", "right")):  # fmt: skip
        t.add_column(name, justify=justify)  # type: ignore[arg-type]
    for p, roi, dd, trades, followers, aum in board.rows if board is not None else []:
        t.add_row(p, _pct(roi), f"{float(dd) * 100:.2f} %", f"{trades:,}", f"{followers:,}", f"{float(aum):,.2f}")
    return t


def render(prev: Snapshot | None, cur: Snapshot | None, followers: int, board: Leaderboard | None = None) -> Group:
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
    # whole seconds: the view is for people (µs are in the engine's metric)
    head.add_row("venue time", format_time(int(cur.venue_time) * 10**6) if cur.venue_time else "-")
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
    return Group(head, row, render_leaderboard(board))


#: how long the engine (and its embedded PostgreSQL) may take to start
START_TIMEOUT_S = 60


def follower_token(dsn: str) -> str | None:
    """A follower token (for `demo-f`), to try the page's copy form."""
    from pyservice.store import tokens

    async def create() -> str:
        conn = await asyncpg.connect(dsn, timeout=2)
        try:
            return (await tokens.create(conn, "follower", "demo-f", 1, "demo"))[1]
        finally:
            await conn.close()

    try:
        return asyncio.run(create())
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return None


def api_providers(page: str) -> int | None:
    """How many providers the API's leaderboard lists (None while it does not answer)."""
    import json

    try:
        with urllib.request.urlopen(f"{page}v1/leaderboard?period=all&limit=100", timeout=1) as r:
            return len(json.load(r)["items"])
    except (OSError, ValueError, KeyError):
        return None


def run_demo(
    providers: int,
    followers: int,
    duration: float | None,
    rate: float,
    metrics_port: int,
    clock: float = CLOCK,
    api_port: int = 8000,
) -> int:
    """`clock`: the venue's simulated seconds per real second (two days a second by
    default, from `START`, so a short demo makes weeks of history)."""
    with tempfile.TemporaryDirectory(prefix="copyengine-demo-") as tmp:
        d = Path(tmp)
        books = B.write(B.demo_books(providers, followers), d / "books.json")
        sock = f"unix:{d / 'engine.sock'}"
        # a fresh venue key for this run, 0600 in the demo's own directory
        venue_auth.write_new_key(d / "venue.key")
        py = sys.executable
        # the demo's own embedded PostgreSQL, so it never touches a database of yours
        env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
        db = embedded_database(d / "pg")
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
                "--database",
                db.dsn,
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
            "--clock",
            str(clock),
            "--start",
            START,
        ]
        venue = subprocess.Popen(venue_args, stderr=open(d / "venue.log", "wb"), start_new_session=True)
        api = subprocess.Popen(
            [py, "-m", "pyservice.cli", "api", "--listen", f"127.0.0.1:{api_port}", "--database", db.dsn],
            stderr=open(d / "api.log", "wb"),
            start_new_session=True,
            env=env,
        )
        page = f"http://127.0.0.1:{api_port}/"
        print(f"the leaderboard page: {page}  (the API: {page}v1/leaderboard, its docs: {page}docs)", flush=True)
        # `duration` counts from the engine's first answer: starting PostgreSQL on a busy
        # machine must not eat the trading time
        start_by = time.monotonic() + START_TIMEOUT_S
        stop_at: float | None = None
        prev: Snapshot | None = None
        cur: Snapshot | None = None
        api_seen: int | None = None
        api_gone = False
        token: str | None = None
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
                    live.update(render(prev, cur, followers, leaderboard(db.dsn) if cur is not None else None))
                    if cur is not None and token is None:
                        token = follower_token(db.dsn)
                        live.console.print(
                            f"a follower token for the page's copy form (follower demo-f): {token}", soft_wrap=True
                        )
                    api_seen = api_providers(page) or api_seen
                    if api.poll() is not None and not api_gone:  # e.g. its port is taken: trade on
                        api_gone = True
                        live.console.print(
                            f"the API exited (is port {api_port} taken? --api-port); log: {d / 'api.log'}",
                            soft_wrap=True,
                        )
                    if engine.poll() is not None or venue.poll() is not None:
                        print("a demo process exited; logs:", d, file=sys.stderr)
                        break
        except KeyboardInterrupt:
            pass
        finally:
            for p in (api, venue, engine):
                if p.poll() is None:
                    p.send_signal(signal.SIGINT)
            for p in (api, venue, engine):
                try:
                    p.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    p.kill()
            board = leaderboard(db.dsn)
            db.stop()
        if board is not None and board.rows:
            print(f"\n{render_leaderboard(board).title}")
            for p_, roi, dd, trades, _f, _a in board.rows:
                print(f"  {p_}: ROI {_pct(roi)}, max drawdown {float(dd) * 100:.2f} %, {trades} trades")
        print(f"api: {api_seen} providers on {page}v1/leaderboard" if api_seen is not None else "api: did not answer")
        if cur is not None:
            print(
                f"demo: {cur.copy_orders:,.0f} copy orders, {cur.fills:,.0f} fills, "
                f"{sum(cur.skips.values()):,.0f} skips, {cur.stops:,.0f} stops, "
                f"{cur.protocol_errors:,.0f} protocol errors"
            )
        return 0 if cur is not None and cur.copy_orders > 0 else 1

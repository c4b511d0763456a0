"""Settlement at scale (issue #15, Scale): a live engine with 100,000 relationships in
profit settles them all at once, and its rows and ledger entries are persisted while the
engine goes on reading the venue.

    .venv/bin/python benches/settlement_scale.py [--relationships 100000 --providers 100
        --probe-rate 100 --baseline 5 --database SERVER_URL --redis URL --json PATH]

The engine (`copyengine engine`, a child process, with its projector and notification
publisher) runs on a scratch database of the PostgreSQL server (default
postgresql://postgres@127.0.0.1:5432/postgres, dropped at the end) and Redis (default
redis://127.0.0.1:6379, a shard of its own, its streams deleted at the end); the venue is
the simulator, in this process, as in `copyengine bench`.

1. Books: `--providers` providers sharing the relationships evenly (allocation 1,200),
   and a probe provider with one follower. Terms through the control plane: each
   provider's share 20 %, the platform's fee 10 %, no schedule.
2. Trading: each provider buys 1 BTCUSDT at 60,000 with equity 120,000, so each follower
   copies 0.01 BTC for 600; then the mark goes to 72,000: every relationship's equity is
   1,320 above a watermark of 1,200, so a settlement charges each 24 (provider 21.6,
   platform 2.4), with 600 of free cash.
3. Baseline: the probe provider trades SOLUSDT (1 at 150, buy and sell in turn) at
   `--probe-rate` executions per second, each timed from the venue writing it to the
   venue holding its copy order (the next one waits for that: a stall shows as one long
   sample, not as many); the engine's metrics sampled every 50 ms
   (`copyengine_backpressure`, `copyengine_seq_lag`).
4. Settlement: one `settle` control change, submitted while the probe goes on. Timed
   from the submit: the verdict recorded (the engine applied it); the settlement rows,
   ledger postings and notifications committed by the projector (one transaction);
   the notifications on the Redis stream. The probe's latency and the metrics over that
   window are set against the baseline's. The rows are then counted and summed exactly.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import redis.asyncio as aioredis

from pyservice import control, venue_auth
from pyservice import protocol as P
from pyservice.store.ledger_check import check as ledger_check
from pyservice.store.server import create_database, drop_database
from pyservice.streams.notifications import default_stream
from pyservice.venue_sim.config import BookProvider, Books, Follow, VenueConfig
from pyservice.venue_sim.venue import VenueSim

SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS = "redis://127.0.0.1:6379"
ALLOCATION, PROVIDER_EQUITY, PRICE, MARK = "1200", "120000", "60000", "72000"
SHARE, FEE = "20", "10"
#: what the settlement charges each relationship (worked out in the module comment)
DUE, PROVIDER_CREDIT, PLATFORM_CREDIT = Decimal("24"), Decimal("21.6"), Decimal("2.4")
PROBE = "probe"
PROBE_ALLOCATION = "1000000"


@dataclass
class Config:
    relationships: int = 100_000
    providers: int = 100
    #: probe executions per second at most
    probe_rate: float = 100.0
    #: seconds of probing before the settlement
    baseline_s: float = 5.0
    #: seconds of probing after the notifications are all on the stream
    after_s: float = 1.0
    timeout_s: float = 900.0


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def books(cfg: Config) -> dict[str, Any]:
    providers = [f"p{i:04d}" for i in range(cfg.providers)]
    follows = [
        {"follower": f"f{i:06d}", "provider": providers[i % cfg.providers], "allocation": ALLOCATION}
        for i in range(cfg.relationships)
    ]
    follows.append({"follower": PROBE, "provider": PROBE, "allocation": PROBE_ALLOCATION})
    return {"version": 1, "providers": [{"id": p} for p in [*providers, PROBE]], "follows": follows}


def _pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))] if s else float("nan")


def summary_ms(xs: list[float]) -> dict[str, float]:
    """Seconds → milliseconds percentiles."""
    return {
        "n": len(xs),
        **{k: round(_pct(xs, q) * 1000, 2) for k, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))},
        "max": round(max(xs, default=float("nan")) * 1000, 2),
    }


class Metrics:
    """The engine's Prometheus gauges, sampled: (monotonic time, backpressure, seq lag)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.samples: list[tuple[float, float, float]] = []

    async def scrape(self) -> dict[str, float]:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            writer.write(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
            text = (await reader.read()).decode()
        finally:
            writer.close()
        out = {}
        for line in text.splitlines():
            if line.startswith(("copyengine_backpressure ", "copyengine_seq_lag ")):
                name, value = line.split()
                out[name] = float(value)
        return out

    async def run(self, every_s: float = 0.05) -> None:
        while True:
            with contextlib.suppress(OSError, ValueError):
                m = await self.scrape()
                self.samples.append(
                    (time.monotonic(), m.get("copyengine_backpressure", 0.0), m.get("copyengine_seq_lag", 0.0))
                )
            await asyncio.sleep(every_s)

    def window(self, t0: float, t1: float) -> dict[str, float]:
        inside = [s for s in self.samples if t0 <= s[0] <= t1]
        return {
            "samples": len(inside),
            "backpressure_max": max((s[1] for s in inside), default=0.0),
            "seq_lag_max": max((s[2] for s in inside), default=0.0),
        }


class Probe:
    """The probe provider's executions, paced, each waiting for its copy order."""

    def __init__(self, venue: VenueSim, rate: float) -> None:
        self.venue, self.interval = venue, 1.0 / rate
        self.samples: list[tuple[float, float]] = []  # (monotonic time sent, seconds to the copy order)
        self._waiting: dict[int, tuple[float, asyncio.Event]] = {}
        self.n = 0
        venue.on_orders(self._orders)

    def _orders(self, seq: int, n: int, recv_ns: int) -> None:
        if seq in self._waiting:
            sent, done = self._waiting.pop(seq)
            self.samples.append((sent, recv_ns / 1e9 - sent))
            done.set()

    async def run(self) -> None:
        start = time.monotonic()
        while True:
            ahead = start + self.n * self.interval - time.monotonic()
            if ahead > 0:
                await asyncio.sleep(ahead)
            side: P.Side = "sell" if self.n % 2 else "buy"
            self.n += 1
            done = asyncio.Event()
            msg = P.ProviderExecution(0, 0, PROBE, f"q{self.n}", "SOLUSDT", side, "1", "150", PROBE_ALLOCATION)
            sent = time.monotonic()
            self._waiting[self.venue.publish(msg)] = (sent, done)
            await asyncio.wait_for(done.wait(), 120)

    def window(self, t0: float, t1: float) -> list[float]:
        return [x for t, x in self.samples if t0 <= t <= t1]


async def _until(what: str, read: Callable[[], Any], done: Callable[[Any], bool], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await read()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: still {value!r} after {timeout} s")
        await asyncio.sleep(0.01)


#: what the settlement `change_id` committed: its rows, postings and notifications
COMMITTED = (
    "SELECT (SELECT count(*) FROM settlements WHERE change_id = $1), "
    "(SELECT count(*) FROM ledger_transactions WHERE change_id = $1), "
    "(SELECT count(*) FROM ledger_entries e JOIN ledger_transactions t ON t.id = e.transaction_id "
    "WHERE t.change_id = $1), "
    "(SELECT count(*) FROM notifications WHERE change_id = $1)"
)
TOTALS = (
    "SELECT count(*), count(*) FILTER (WHERE status = 'charged'), sum(charged), sum(provider_credit), "
    "sum(platform_credit) FROM settlements WHERE change_id = $1"
)


async def run(
    cfg: Config, server: str = SERVER, redis_url: str = REDIS, log: Callable[[str], None] = print
) -> dict[str, Any]:
    name = f"copyengine_settle_{uuid.uuid4().hex[:8]}"
    dsn = await create_database(server, name)
    shard = name.removeprefix("copyengine_")
    r = aioredis.from_url(redis_url)
    try:
        with tempfile.TemporaryDirectory(prefix="copyengine-settle-") as tmp:
            return await _run(cfg, dsn, shard, redis_url, Path(tmp), log)
    finally:
        await r.delete(default_stream(shard), f"copyengine:fills:{shard}")
        await r.aclose()
        await drop_database(server, name)


async def _run(
    cfg: Config, dsn: str, shard: str, redis_url: str, tmp: Path, log: Callable[[str], None]
) -> dict[str, Any]:
    doc = books(cfg)
    (tmp / "books.json").write_text(json.dumps(doc))
    key = venue_auth.write_new_key(tmp / "venue.key")
    addr, metrics_port = f"tcp://127.0.0.1:{_port()}", _port()
    cmd = [sys.executable, "-m", "pyservice.cli", "engine", "--books", str(tmp / "books.json"), "--listen", addr,
           "--venue-key-file", str(tmp / "venue.key"), "--database", dsn, "--redis", redis_url, "--shard", shard,
           "--metrics-port", str(metrics_port), "--heartbeat", "0.05", "--dead-after", "60",
           "--log-level", "WARNING"]  # fmt: skip
    venue = VenueSim(
        VenueConfig(
            connect=addr,
            rate=0,
            mark_interval=0,
            books=Books(
                providers=[BookProvider(p["id"]) for p in doc["providers"]],
                follows=[Follow(f["follower"], f["provider"], f["allocation"]) for f in doc["follows"]],
            ),
            heartbeat=0.05,
            dead_after=60,
            key=key,
        )
    )
    copies = 0

    def count(seq: int, n: int, recv_ns: int) -> None:
        nonlocal copies
        copies += n

    venue.on_orders(count)
    probe = Probe(venue, cfg.probe_rate)
    metrics = Metrics(metrics_port)
    result: dict[str, Any] = {"config": vars(cfg)}
    conn: asyncpg.Connection | None = None
    r = aioredis.from_url(redis_url)
    tasks: list[asyncio.Task[None]] = []
    started = time.monotonic()
    with open(tmp / "engine.log", "wb") as engine_log:
        engine = subprocess.Popen(cmd, stderr=engine_log)
    try:
        runner = asyncio.create_task(venue.run())
        await _until("the venue's connection", _value(lambda: venue.connected), bool, cfg.timeout_s)
        result["engine_start_s"] = round(time.monotonic() - started, 2)
        log(f"engine up with {cfg.relationships:,} relationships in {result['engine_start_s']} s")
        conn = await asyncpg.connect(dsn)
        tasks.append(asyncio.create_task(metrics.run()))

        # 1. the terms
        ids = [
            await control.submit(conn, shard, {"type": "profit_share", "provider": p["id"], "profit_share_pct": SHARE})
            for p in doc["providers"]
            if p["id"] != PROBE
        ]
        ids.append(await control.submit(conn, shard, {"type": "platform", "platform_fee_pct": FEE}))
        for i in ids:
            v = await control.wait(conn, i, cfg.timeout_s)
            assert v.applied and v.error is None, v

        # 2. the trades, their fills, the mark
        for p in doc["providers"]:
            if p["id"] != PROBE:
                venue.publish(P.ProviderExecution(0, 0, p["id"], f"{p['id']}-x", "BTCUSDT", "buy", "1", PRICE,
                                                  PROVIDER_EQUITY))  # fmt: skip
        await _until("the copies", _value(lambda: copies), lambda n: n >= cfg.relationships, cfg.timeout_s)
        venue.publish(P.MarkPrice(0, 0, "BTCUSDT", MARK))
        newest = venue.log.newest
        await _until(
            "the projector",
            lambda: conn.fetchval("SELECT seq FROM projection_state WHERE shard = $1", shard),  # type: ignore[union-attr]
            lambda s: s is not None and s >= newest,
            cfg.timeout_s,
        )
        log(f"{copies:,} copies filled and projected in {time.monotonic() - started:.1f} s")

        # 3. baseline
        tasks.append(asyncio.create_task(probe.run()))
        t_base = time.monotonic()
        await asyncio.sleep(cfg.baseline_s)

        # 4. the settlement
        t0 = time.monotonic()
        change_id = await control.submit(conn, shard, {"type": "settle"})
        verdict = await control.wait(conn, change_id, cfg.timeout_s)
        t_applied = time.monotonic()
        assert verdict.applied and verdict.error is None, verdict
        want = cfg.relationships
        committed = await _until(
            "the settlement's rows",
            lambda: conn.fetchrow(COMMITTED, change_id),  # type: ignore[union-attr]
            lambda row: row[0] >= want,
            cfg.timeout_s,
        )
        t_committed = time.monotonic()
        stream = default_stream(shard)
        await _until("the notifications stream", lambda: r.xlen(stream), lambda n: n >= 2 * want, cfg.timeout_s)
        t_published = time.monotonic()
        await asyncio.sleep(cfg.after_s)
        t_end = time.monotonic()
        log(f"settled {want:,}: applied {t_applied - t0:.2f} s, committed {t_committed - t0:.2f} s, "
            f"published {t_published - t0:.2f} s after the submit")  # fmt: skip

        n, charged, total, provider, platform = await conn.fetchrow(TOTALS, change_id)
        t = time.monotonic()
        summary = await ledger_check(conn, shard)
        check_s = time.monotonic() - t
        result |= {
            "settlement": {
                "applied_s": round(t_applied - t0, 3),
                "committed_s": round(t_committed - t0, 3),
                "published_s": round(t_published - t0, 3),
                "settlements": committed[0],
                "ledger_transactions": committed[1],
                "ledger_entries": committed[2],
                "notifications": committed[3],
                "stream_entries": await r.xlen(stream),
                "outcomes": n,
                "outcomes_charged": charged,
                "totals": {"charged": str(total), "provider_credit": str(provider), "platform_credit": str(platform)},
                "ledger_check_s": round(check_s, 2),
                "ledger_check": str(summary),
            },
            "probe_ms": {
                "baseline": summary_ms(probe.window(t_base, t0)),
                "settling": summary_ms(probe.window(t0, t_committed)),
                "publishing": summary_ms(probe.window(t_committed, t_published)),
            },
            "metrics": {
                "baseline": metrics.window(t_base, t0),
                "settling": metrics.window(t0, t_committed),
                "publishing": metrics.window(t_committed, t_end),
            },
        }
        return result
    finally:
        for task in tasks:
            task.cancel()
        venue.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(runner, 10)
        engine.terminate()
        try:
            engine.wait(30)
        except subprocess.TimeoutExpired:
            engine.kill()
            engine.wait()
        if conn is not None:
            await conn.close()
        await r.aclose()


def _value(get: Callable[[], Any]) -> Callable[[], Any]:
    async def read() -> Any:
        return get()

    return read


def print_table(res: dict[str, Any]) -> None:
    c, s = res["config"], res["settlement"]
    print()
    print(f"{c['relationships']:,} relationships over {c['providers']} providers; probe {c['probe_rate']:g}/s")
    print(
        f"settle submitted → applied {s['applied_s'] * 1000:.0f} ms → rows committed {s['committed_s']:.2f} s "
        f"→ notifications on Redis {s['published_s']:.2f} s"
    )
    print(
        f"committed: {s['settlements']:,} settlements, {s['ledger_transactions']:,} ledger transactions, "
        f"{s['ledger_entries']:,} entries, {s['notifications']:,} notifications; stream {s['stream_entries']:,}"
    )
    print(f"totals {s['totals']}; ledger check {s['ledger_check_s']} s: {s['ledger_check']}")
    print(
        f"{'probe exec → copy order':28} {'n':>6} {'p50':>9} {'p90':>9} {'p99':>9} {'max':>9}  backpressure, seq lag max"
    )
    for phase in ("baseline", "settling", "publishing"):
        p, m = res["probe_ms"][phase], res["metrics"][phase]
        print(
            f"{phase:28} {p['n']:>6} {p['p50']:>7.2f}ms {p['p90']:>7.2f}ms {p['p99']:>7.2f}ms {p['max']:>7.2f}ms  "
            f"{m['backpressure_max']:g}, {m['seq_lag_max']:g} ({m['samples']} samples)"
        )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--relationships", type=int, default=100_000)
    ap.add_argument("--providers", type=int, default=100)
    ap.add_argument("--probe-rate", type=float, default=100.0, help="probe executions per second")
    ap.add_argument("--baseline", type=float, default=5.0, help="seconds of probing before the settlement")
    ap.add_argument("--database", default=os.environ.get("DATABASE_URL", SERVER), help="the PostgreSQL server")
    ap.add_argument("--redis", default=os.environ.get("REDIS_URL", REDIS))
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args(argv)
    cfg = Config(args.relationships, args.providers, args.probe_rate, args.baseline)
    result = asyncio.run(run(cfg, args.database, args.redis))
    print_table(result)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())

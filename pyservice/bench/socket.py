"""`copyengine bench --followers N --fills M`: the SRE benchmark over real sockets.

The venue (this process, `VenueSim`) and the engine (a child process) talk over
loopback TCP. Latency phase: M provider executions one at a time, each timed from the
venue writing it to the venue holding every copy order of it, back to back or, with
`--rate`, at most that many per second (a load the durable pipeline can sustain, so the
latency is not that of a growing backlog). `--warmup` executions before them are not
timed (the first fan-outs allocate the engine's buffers). With `--realtime PRIORITY` the
engine runs its hot path under SCHED_FIFO, and so does the venue here: it stands in for
an exchange, which would not share this machine's cores with our PostgreSQL. Throughput phase: a burst
of executions, timed until every copy order is back at the venue, filled, and the fills
applied by the engine (its heartbeat reports the applied seq). The naive engine runs on
the same harness (`--engine naive`).
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
import redis.asyncio as aioredis
from rich.progress import Progress, TaskID

from pyservice import books as B
from pyservice import protocol as P
from pyservice import venue_auth
from pyservice.engine.priority import make_realtime, normal
from pyservice.runtime import tune_gc
from pyservice.store.server import create_database, database_dsn, drop_database, open_database
from pyservice.streams.publisher import last_published
from pyservice.venue_sim.config import BookProvider, Books, Follow, VenueConfig
from pyservice.venue_sim.venue import OrderRecord, VenueSim

PROVIDER = "bench"
SYMBOL = "BTCUSDT"
PRICE = "60000"
#: provider equity and follower allocation are equal, so each copy is the provider's qty
EQUITY = "1000000"
QTY = "0.001"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _percentiles(values_ns: list[int]) -> dict[str, float]:
    v = sorted(values_ns)
    if not v:
        return {}

    def at(q: float) -> float:
        return round(v[min(len(v) - 1, int(q * len(v)))] / 1000, 1)

    return {"p50": at(0.5), "p90": at(0.9), "p99": at(0.99), "p999": at(0.999), "max": round(v[-1] / 1000, 1)}


def _throttled(progress: Progress, task: TaskID) -> Callable[[], None]:
    """`advance` for `task` that redraws the bar at most 4 times a second."""
    drawn = 0.0

    def advance() -> None:
        nonlocal drawn
        progress.advance(task)
        if time.monotonic() - drawn > 0.25:
            progress.refresh()
            drawn = time.monotonic()

    return advance


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):  # peak resident set
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return 0.0


@dataclass(frozen=True)
class Timing:
    """How the latency phase runs (see the module comment)."""

    #: timed executions per second at most; 0: back to back
    rate: float = 0
    #: untimed executions first
    warmup: int = 2
    #: SCHED_FIFO priority of the engine's hot path and of the venue; None: the default
    realtime: int | None = None


async def _bench(
    followers: int,
    fills: int,
    burst: int,
    engine: str,
    tmp: Path,
    record: Path,
    durable: Durable | None = None,
    timing: Timing = Timing(),
) -> dict[str, Any]:
    books = B.bench_books(followers, PROVIDER)
    books_path = B.write(books, tmp / "books.json")
    port = _free_port()
    addr = f"tcp://127.0.0.1:{port}"
    # the venue authenticates as in production (one handshake per connection: nothing timed)
    key = venue_auth.write_new_key(tmp / "venue.key")
    if engine == "naive":
        cmd = [sys.executable, "-m", "pyservice.bench.naive_engine", "--books", str(books_path), "--listen", addr]
    else:
        cmd = [
            sys.executable,
            "-m",
            "pyservice.cli",
            "engine",
            "--books",
            str(books_path),
            "--listen",
            addr,
            "--venue-key-file",
            str(tmp / "venue.key"),
            "--heartbeat",
            "0.01",
            "--dead-after",
            "30",
            "--log-level",
            "WARNING",
        ]
        cmd += durable.engine_args() if durable is not None else ["--memory"]
        cmd += ["--realtime", str(timing.realtime)] if timing.realtime is not None else []
    # first, so that a refusal leaves nothing running (the engine child starts under the
    # normal scheduler: SCHED_RESET_ON_FORK)
    venue_threads = make_realtime(timing.realtime, helper=False) if timing.realtime is not None else []
    with open(tmp / "engine.log", "wb") as engine_log:
        proc = subprocess.Popen(cmd, stderr=engine_log)
    if engine == "naive" and timing.realtime is not None:  # the same footing as ours: its one thread
        os.sched_setscheduler(proc.pid, os.SCHED_FIFO | os.SCHED_RESET_ON_FORK, os.sched_param(timing.realtime))
    venue_books = Books(
        providers=[BookProvider(PROVIDER)], follows=[Follow(f"f{i:06d}", PROVIDER, EQUITY) for i in range(followers)]
    )
    venue = VenueSim(
        VenueConfig(
            connect=addr,
            rate=0,
            mark_interval=0,
            books=venue_books,
            heartbeat=0.01,
            dead_after=30,
            record=str(record),
            key=key,
        )
    )
    tune_gc()  # this process is the venue: collected as the venue-sim command is
    received: Counter[int] = Counter()
    done: dict[int, asyncio.Event] = {}
    sent_ns: dict[int, int] = {}
    latencies: list[int] = []

    def on_orders(seq: int, n: int, recv_ns: int) -> None:
        received[seq] += n
        if received[seq] >= followers and seq in done and not done[seq].is_set():
            if seq in sent_ns:
                latencies.append(recv_ns - sent_ns.pop(seq))
            done[seq].set()

    venue.on_orders(on_orders)
    runner = asyncio.create_task(venue.run())
    try:
        deadline = time.monotonic() + 30
        while not venue.connected:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the engine did not come up; see {tmp / 'engine.log'}")
            await asyncio.sleep(0.05)
        n_exec = 0

        def execution(side: P.Side = "buy") -> P.ProviderExecution:
            nonlocal n_exec
            n_exec += 1
            return P.ProviderExecution(0, 0, PROVIDER, f"x{n_exec}", SYMBOL, side, QTY, PRICE, EQUITY)

        # refreshed from this thread: rich's refresh thread would hold the GIL while the
        # venue waits to read the engine's orders
        with Progress(transient=True, auto_refresh=False) as progress:
            task = progress.add_task(f"{engine}: {followers:,} followers", total=timing.warmup + fills + burst)
            advance = _throttled(progress, task)
            for i in range(timing.warmup):  # untimed; the timed phase goes on alternating
                seq = venue.publish(execution("sell" if i % 2 else "buy"))
                done[seq] = asyncio.Event()
                await asyncio.wait_for(done[seq].wait(), 60)
                advance()
            warmup_seqs = set(done)
            rate = timing.rate
            interval_ns = round(1e9 / rate) if rate else 0
            timed_t0 = time.monotonic_ns()
            for i in range(fills):
                if interval_ns:  # paced: execution i is due at timed_t0 + i intervals
                    ahead_ns = timed_t0 + i * interval_ns - time.monotonic_ns()
                    if ahead_ns > 0:
                        await asyncio.sleep(ahead_ns / 1e9)
                ev = asyncio.Event()
                # opens and closes in turn, so positions (and their FIFO lots) stay bounded
                # as a trading provider's do; each waits for the last one's fills, so every
                # close finds the position it closes
                side: P.Side = "sell" if (timing.warmup + i) % 2 else "buy"
                t0 = time.monotonic_ns()
                seq = venue.publish(execution(side))
                sent_ns[seq] = t0
                done[seq] = ev
                await asyncio.wait_for(ev.wait(), 60)
                advance()
            timed_s = (time.monotonic_ns() - timed_t0) / 1e9
            if durable is not None:  # the burst starts with nothing left to persist or publish
                while venue.stats.engine_applied_seq < venue.log.newest:
                    await asyncio.sleep(0.001)
                await durable.caught_up(venue.log.newest, _last_report_seq(venue))
                # how long the rows of the timed phase trailed it: small when persistence kept up
                timed_lag_s = (time.monotonic_ns() - timed_t0) / 1e9 - timed_s
            # throughput: a burst, then wait for the fills to be applied by the engine
            t0 = time.monotonic_ns()
            burst_seqs = []
            for _ in range(burst):
                seq = venue.publish(execution())
                done[seq] = asyncio.Event()
                burst_seqs.append(seq)
            for seq in burst_seqs:
                await asyncio.wait_for(done[seq].wait(), 120)
                advance()
            while venue.stats.engine_applied_seq < venue.log.newest:
                await asyncio.sleep(0.001)
            burst_s = (time.monotonic_ns() - t0) / 1e9
            if durable is not None:  # and committed to PostgreSQL, and published to Redis
                await durable.caught_up(venue.log.newest, _last_report_seq(venue))
                durable_s = (time.monotonic_ns() - t0) / 1e9
        rss = _rss_mb(proc.pid)
    finally:
        for tid in venue_threads:  # this process goes on (another engine, the report)
            normal(tid)
        venue.stop()
        await asyncio.wait_for(runner, 10)
        proc.terminate()
        proc.wait(10)
    expected = (timing.warmup + fills + burst) * followers
    got = sum(received.values())
    # duplicates: a client order id the venue received more than once (no resume happens here)
    records = msgspec.json.Decoder(OrderRecord).decode_lines(record.read_bytes())
    duplicates = len(records) - len({r.client_order_id for r in records})
    return {
        "engine": engine,
        "followers": followers,
        "fills": fills,
        "copy_orders_expected": fills * followers,
        "copy_orders_received": got - sum(received[s] for s in [*burst_seqs, *warmup_seqs]),
        "duplicates": duplicates,
        "lost": expected - min(got, expected),
        "latency_us": _percentiles(latencies),
        "warmup_executions": timing.warmup,
        "realtime": timing.realtime,
        "timed_rate": rate or None,
        "timed_orders_per_s": round(fills * followers / timed_s) if fills else 0,
        "burst_executions": burst,
        "orders_per_s": round(burst * followers / burst_s) if burst else 0,
        **(
            {
                "durable": durable.describe(),
                "persisted_published_orders_per_s": round(burst * followers / durable_s) if burst else 0,
                "timed_persisted_lag_ms": round(timed_lag_s * 1000, 1),
            }
            if durable is not None
            else {}
        ),
        "engine_rss_mb": rss,
    }


def _last_report_seq(venue: VenueSim) -> int:
    """The seq of the log's newest fills or rejects (searched from the end: the log is long)."""
    for seq in range(venue.log.newest, 0, -1):
        if isinstance(venue.log.entry(seq), (P.CopyFills, P.CopyRejects)):
            return seq
    return 0


class Durable:
    """The engine with persistence (a fresh database on `$DATABASE_URL`'s server, else an
    embedded one) and, with `$REDIS_URL`, publication to a stream of its own."""

    def __init__(self, tmp: Path) -> None:
        self.server = open_database(None, tmp / "pg")
        self.name = f"copyengine_bench_{uuid.uuid4().hex[:8]}"
        self.dsn = database_dsn(self.server.dsn, self.name)
        self.redis_url = os.environ.get("REDIS_URL")
        self.stream = f"copyengine:bench:{self.name}"
        # opened once, so that `caught_up` times the pipeline, not connecting
        self._conn: asyncpg.Connection | None = None
        self._redis: aioredis.Redis | None = None

    def describe(self) -> dict[str, Any]:
        return {
            "postgres": "embedded" if self.server.embedded else "DATABASE_URL",
            "redis_stream": self.stream if self.redis_url else None,
        }

    def engine_args(self) -> list[str]:
        args = ["--database", self.dsn]
        return args + (["--redis", self.redis_url, "--stream", self.stream] if self.redis_url else [])

    async def __aenter__(self) -> Durable:
        await create_database(self.server.dsn, self.name)
        self._conn = await asyncpg.connect(self.dsn)
        if self.redis_url:
            self._redis = aioredis.from_url(self.redis_url)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._conn is not None:
            await self._conn.close()
        await drop_database(self.server.dsn, self.name)
        if self._redis is not None:
            await self._redis.delete(self.stream)
            await self._redis.aclose()
        self.server.stop()

    async def caught_up(self, newest: int, last_report: int) -> None:
        assert self._conn is not None
        # journaled, and the orders, fills and rejects written as rows
        while (
            await self._conn.fetchval(
                "SELECT least(watermark, coalesce((SELECT seq FROM projection_state), 0)) FROM engine_state"
            )
            < newest
        ):
            await asyncio.sleep(0.002)
        if self._redis is not None:
            while (await last_published(self._redis, self.stream))[0] < last_report:
                await asyncio.sleep(0.002)


async def _durable_bench(
    followers: int, fills: int, burst: int, tmp: Path, record: Path, timing: Timing
) -> dict[str, Any]:
    async with Durable(tmp) as durable:
        return await _bench(followers, fills, burst, "rust", tmp, record, durable, timing)


def _record_dir(orders: int) -> str | None:
    """Where the venue keeps its record of the orders it received: memory-backed when the
    machine has room for it (about 250 bytes an order; a container's /dev/shm may be
    64 MB). The venue stands in for an exchange, whose disk is not ours: writing its
    record next to PostgreSQL's files, a write could wait on the kernel's dirty-page
    throttling for milliseconds, and the latency measured would include that."""
    try:
        st = os.statvfs("/dev/shm")
    except OSError:
        return None
    return "/dev/shm" if st.f_bavail * st.f_frsize > 2 * 250 * orders else None


def run_socket_bench(
    followers: int, fills: int, burst: int, engine: str, durable: bool = False, timing: Timing = Timing()
) -> dict[str, Any]:
    with (
        tempfile.TemporaryDirectory(prefix="copyengine-bench-") as tmp,
        tempfile.TemporaryDirectory(
            prefix="copyengine-bench-venue-", dir=_record_dir((timing.warmup + fills + burst) * followers)
        ) as venue_tmp,
    ):
        record = Path(venue_tmp) / "orders.jsonl"
        main = (
            _durable_bench(followers, fills, burst, Path(tmp), record, timing)
            if durable and engine == "rust"
            else _bench(followers, fills, burst, engine, Path(tmp), record, timing=timing)
        )
        try:
            import uvloop

            return uvloop.run(main)
        except ImportError:
            return asyncio.run(main)

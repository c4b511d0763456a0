"""The leaderboard route under load: 10,000 providers, 500 requests/s, p99 under 50 ms.

    .venv/bin/python benches/api_leaderboard.py [--providers 10000] [--rate 500] [--duration 20]

Seeds a fresh database on $TEST_DATABASE_URL's server (default the local one) with
`pyservice.bench.leaderboard_seed`, starts `copyengine api` (one process, rate limits
off), and loads it from a second process with an open-loop generator: requests are
scheduled at the fixed rate whatever the answers do, and each latency counts from the
request's scheduled time, so a stall shows in the percentiles instead of slowing the load
(no coordinated omission). The URLs are a mix of the leaderboard's periods, sorts,
filters and second pages. The baseline in the same run is `/v1/health` (the framework, a
connection from the pool and one trivial query) at the same rate. When `wrk` is
installed, closed-loop `wrk` runs of the same mix give the most the process answers,
with the page cache (`--cache 1`, the default) and without it (`--cache 0`).
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

SERVER = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")

MIX = [
    "/v1/leaderboard",
    "/v1/leaderboard?period=7d",
    "/v1/leaderboard?period=90d&sort=pnl",
    "/v1/leaderboard?period=all&sort=sharpe",
    "/v1/leaderboard?sort=aum&min_followers=100",
    "/v1/leaderboard?sort=drawdown&order=asc&risk_level=medium",
    "/v1/leaderboard?sort=copiers_pnl&strategy=spot&limit=50",
    "/v1/leaderboard?sort=followers&min_aum=100000&max_drawdown=0.2",
]


# -- the load generator (the second process) -------------------------------------------


async def _client(
    host: str, port: int, queue: asyncio.Queue[tuple[float, str] | None], out: list[float], errors: list[str]
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    while (item := await queue.get()) is not None:
        scheduled, path = item
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: application/json\r\n\r\n".encode())
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = next(int(h.split(b":", 1)[1]) for h in head.split(b"\r\n") if h.lower().startswith(b"content-length:"))
        await reader.readexactly(length)
        out.append(time.perf_counter() - scheduled)
        if status != 200:
            errors.append(f"{status} {path}")
    writer.close()


async def _generate(base: str, paths: list[str], rate: float, duration: float, connections: int) -> dict[str, object]:
    u = urlsplit(base)
    queue: asyncio.Queue[tuple[float, str] | None] = asyncio.Queue()
    latencies: list[float] = []
    errors: list[str] = []
    clients = [
        asyncio.create_task(_client(u.hostname or "127.0.0.1", u.port or 80, queue, latencies, errors))
        for _ in range(connections)
    ]
    start = time.perf_counter() + 0.1
    n = int(rate * duration)
    for i in range(n):
        at = start + i / rate
        delay = at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        queue.put_nowait((at, paths[i % len(paths)]))
    for _ in clients:
        queue.put_nowait(None)
    await asyncio.gather(*clients)
    elapsed = time.perf_counter() - start
    latencies.sort()

    def pct(q: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000, 2)

    return {
        "requests": len(latencies),
        "achieved_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": pct(0.50),
        "p90_ms": pct(0.90),
        "p99_ms": pct(0.99),
        "max_ms": round(latencies[-1] * 1000, 2),
        "errors": errors[:5],
        "error_count": len(errors),
    }


def _load(base: str, paths: list[str], rate: float, duration: float, connections: int) -> dict[str, object]:
    """Run the generator in a second process; its JSON result."""
    out = subprocess.run(
        [sys.executable, __file__, "--generate", base, "--rate", str(rate), "--duration", str(duration),
         "--connections", str(connections), "--paths", json.dumps(paths)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    result: dict[str, object] = json.loads(out.stdout)
    return result


# -- the run ---------------------------------------------------------------------------


async def _seed(providers: int) -> str:
    import asyncpg

    from pyservice.bench.leaderboard_seed import seed
    from pyservice.store.migrate import migrate
    from pyservice.store.server import create_database

    dsn = await create_database(SERVER, f"copyengine_bench_api_{uuid.uuid4().hex[:8]}")
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn)
        await seed(conn, providers)
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
    return dsn


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wrk(base: str, paths: list[str], duration: float) -> dict[str, object] | None:
    if shutil.which("wrk") is None:
        return None
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(
            "local paths = {" + ",".join(json.dumps(p) for p in paths) + "}\nlocal i = 0\n"
            "request = function() i = i % #paths + 1; return wrk.format('GET', paths[i]) end\n"
        )
    out = subprocess.run(
        ["wrk", "-t1", "-c8", f"-d{int(duration)}s", "--latency", "-s", f.name, base],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    os.unlink(f.name)
    text = out.stdout
    rps = next(line.split()[1] for line in text.splitlines() if line.startswith("Requests/sec:"))
    dist = {
        line.split()[0]: line.split()[1] for line in text.splitlines() if line.strip().startswith(("50%", "90%", "99%"))
    }
    return {"connections": 8, "requests_per_s": float(rps), "latency": dist}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--providers", type=int, default=10_000)
    ap.add_argument("--rate", type=float, default=500.0)
    ap.add_argument("--duration", type=float, default=20.0)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--generate", metavar="BASE_URL", help=argparse.SUPPRESS)
    ap.add_argument("--paths", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.generate:
        result = asyncio.run(
            _generate(args.generate, json.loads(args.paths), args.rate, args.duration, args.connections)
        )
        print(json.dumps(result))
        return 0

    from pyservice.store.server import drop_database

    t0 = time.perf_counter()
    dsn = asyncio.run(_seed(args.providers))
    seeded_s = time.perf_counter() - t0
    try:
        with _served(dsn, cache_s=1.0) as base:
            paths = _paths(base)
            _load(base, paths, args.rate, 3, args.connections)  # warm: the pool, the caches
            baseline = _load(base, ["/v1/health"], args.rate, args.duration, args.connections)
            board = _load(base, paths, args.rate, args.duration, args.connections)
            wrk = _wrk(base, paths, min(args.duration, 10))
        with _served(dsn, cache_s=0) as base:
            _wrk(base, paths, 3)
            wrk_uncached = _wrk(base, paths, min(args.duration, 10))
    finally:
        asyncio.run(drop_database(SERVER, dsn.rsplit("/", 1)[1]))
    print(
        json.dumps(
            {
                "providers": args.providers,
                "seeded_s": round(seeded_s, 1),
                "rate_per_s": args.rate,
                "duration_s": args.duration,
                "leaderboard": board,
                "baseline_health": baseline,
                "p99_ratio_to_baseline": round(float(board["p99_ms"]) / max(float(baseline["p99_ms"]), 1e-9), 2),  # type: ignore[arg-type]
                "wrk_closed_loop": wrk,
                "wrk_closed_loop_uncached": wrk_uncached,
            },
            indent=2,
        )
    )
    return 0


def _paths(base: str) -> list[str]:
    """The mix, and the second page of four of its URLs (a cursor from their first)."""
    import urllib.request

    paths = list(MIX)
    for p in MIX[:4]:
        with urllib.request.urlopen(base + p) as r:
            cursor = json.load(r)["next_cursor"]
        paths.append(p + ("&" if "?" in p else "?") + f"cursor={cursor}")
    return paths


@contextlib.contextmanager
def _served(dsn: str, cache_s: float) -> Iterator[str]:
    """`copyengine api` on a free port, rate limits off: its base URL."""
    port = _port()
    log = tempfile.NamedTemporaryFile(prefix="api-bench-", suffix=".log", delete=False)
    api = subprocess.Popen(
        [sys.executable, "-m", "pyservice.cli", "api", "--listen", f"127.0.0.1:{port}", "--database", dsn,
         "--rate-per-token", "0", "--rate-per-address", "0", "--cache", str(cache_s)],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if api.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(Path(log.name).read_text()) from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        api.terminate()
        api.wait(10)


if __name__ == "__main__":
    sys.exit(main())

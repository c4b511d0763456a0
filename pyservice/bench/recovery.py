"""`python -m pyservice.bench.recovery --followers N --executions E`: how long a durable
engine takes to come back after SIGKILL (from the newest snapshot), and how fast its
journal commits.

A durable engine (PostgreSQL from `--database`, `$DATABASE_URL`, or embedded) takes E
provider executions, each copied by N followers and filled, until everything is
committed; then it is SIGKILLed and started again. Prints the commit rate (copy orders
whose execution and fills are committed, per second) and the recovery time: from the
restart to the venue receiving the engine's Resume, and the part of it spent rebuilding
the committed state (snapshot restore and journal re-application: `rebuild_s` in the
engine's log; `replay_s` before).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg

from pyservice import books as B
from pyservice import protocol as P
from pyservice import venue_auth
from pyservice.bench.socket import EQUITY, PRICE, PROVIDER, QTY, SYMBOL, _free_port
from pyservice.runtime import tune_gc
from pyservice.store.server import create_database, drop_database, open_database
from pyservice.venue_sim.config import BookProvider, Books, Follow, VenueConfig
from pyservice.venue_sim.venue import VenueSim


async def _measure(followers: int, executions: int, server_dsn: str, tmp: Path) -> dict[str, Any]:
    name = f"copyengine_bench_{uuid.uuid4().hex[:8]}"
    dsn = await create_database(server_dsn, name)
    books = B.write(B.bench_books(followers, PROVIDER), tmp / "books.json")
    addr = f"tcp://127.0.0.1:{_free_port()}"
    key = venue_auth.write_new_key(tmp / "venue.key")
    cmd = [
        sys.executable,
        "-m",
        "pyservice.cli",
        "engine",
        "--books",
        str(books),
        "--database",
        dsn,
        "--listen",
        addr,
        "--venue-key-file",
        str(tmp / "venue.key"),
        "--heartbeat",
        "0.05",
        "--dead-after",
        "60",
        "--snapshot-interval",
        "1",
    ]
    venue = VenueSim(
        VenueConfig(
            connect=addr,
            rate=0,
            mark_interval=0,
            heartbeat=0.05,
            dead_after=60,
            key=key,
            books=Books(
                providers=[BookProvider(PROVIDER)],
                follows=[Follow(f"f{i:06d}", PROVIDER, EQUITY) for i in range(followers)],
            ),
        )
    )
    tune_gc()  # this process is the venue: collected as the venue-sim command is
    runner = asyncio.create_task(venue.run())
    log = open(tmp / "engine.log", "wb")
    proc = subprocess.Popen(cmd, stderr=log)
    try:
        while not venue.connected:
            assert proc.poll() is None, (tmp / "engine.log").read_text()
            await asyncio.sleep(0.05)
        conn = await asyncpg.connect(dsn)
        t0 = time.perf_counter()
        for i in range(executions):
            side: P.Side = "sell" if i % 2 else "buy"
            venue.publish(P.ProviderExecution(0, 0, PROVIDER, f"x{i}", SYMBOL, side, QTY, PRICE, EQUITY))
            await asyncio.sleep(0)
        # committed: the executions and the fills of every copy order
        while (
            await conn.fetchval("SELECT watermark FROM engine_state") < venue.log.newest
            or venue.stats.orders_received < executions * followers
        ):
            await asyncio.sleep(0.01)
        commit_s = time.perf_counter() - t0
        journal_mb = await conn.fetchval("SELECT sum(octet_length(payload)) FROM engine_inputs") / 1e6
        # steady state: the projector has snapshotted the newest position
        while (await conn.fetchval("SELECT max(seq) FROM engine_snapshots") or 0) < venue.log.newest:
            await asyncio.sleep(0.05)
        snapshot_mb = (
            await conn.fetchval("SELECT octet_length(state) FROM engine_snapshots ORDER BY seq DESC LIMIT 1") / 1e6
        )
        await conn.close()
        proc.kill()
        proc.wait()
        while venue.connected:
            await asyncio.sleep(0.01)
        t1 = time.perf_counter()
        proc = subprocess.Popen(cmd, stderr=log)
        while not venue.connected:
            assert proc.poll() is None, (tmp / "engine.log").read_text()
            await asyncio.sleep(0.005)
        recovery_s = time.perf_counter() - t1
    finally:
        proc.terminate()
        proc.wait(30)
        venue.stop()
        await runner
        await drop_database(server_dsn, name)
    rebuilds = re.findall(r"rebuild_s=([0-9.]+)", (tmp / "engine.log").read_text())
    return {
        "followers": followers,
        "executions": executions,
        "copy_orders": executions * followers,
        "committed_orders_per_s": round(executions * followers / commit_s),
        "journal_mb": round(journal_mb, 1),
        "snapshot_mb": round(snapshot_mb, 1),
        "recovery_s": round(recovery_s, 2),
        "rebuild_s": float(rebuilds[-1]) if rebuilds else None,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--followers", type=int, default=100_000)
    parser.add_argument("--executions", type=int, default=20)
    parser.add_argument("--database", help="a server where the bench may create a database")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="copyengine-recovery-") as tmp:
        db = open_database(args.database, Path(tmp) / "pg")
        try:
            result = asyncio.run(_measure(args.followers, args.executions, db.dsn, Path(tmp)))
        finally:
            db.stop()
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

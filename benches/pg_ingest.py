"""What PostgreSQL pays to ingest the projector's rows and the journal, by table layout.

    .venv/bin/python benches/pg_ingest.py [--dsn postgresql://postgres@127.0.0.1/postgres]

Creates a scratch database, and for each layout COPYs 200,000 copy-order (or fill) rows
in 20 transactions of 10,000, as the projector writes them, and 100 journal rows of a
10,000-fill payload per storage mode. Prints the best of three per layout: compare the
layouts of one run with each other, not with another machine's.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import string
import time
import uuid
from collections.abc import AsyncIterator

import asyncpg

from pyservice import protocol as P

ORDER = (
    "shard text NOT NULL, client_order_id text NOT NULL, seq bigint NOT NULL, follower_id text NOT NULL, "
    "provider_id text NOT NULL, symbol text NOT NULL, side text NOT NULL, type text NOT NULL, "
    "qty numeric NOT NULL, price numeric, reduce_only boolean NOT NULL, leverage integer NOT NULL, "
    "change_id bigint NOT NULL, n integer NOT NULL"
)
FILL = (
    "shard text NOT NULL, seq bigint NOT NULL, n integer NOT NULL, client_order_id text NOT NULL, "
    "qty numeric NOT NULL, price numeric NOT NULL"
)
REL = "CREATE INDEX ON t (follower_id, provider_id, seq)"
LAYOUTS = {
    "orders: B-tree key on the id + per relationship (before 0006)": (
        ORDER + ", PRIMARY KEY (shard, client_order_id)",
        [REL],
        "orders",
    ),
    "orders: key (shard, seq, change_id, n) + hash on the id + per relationship (0006)": (
        ORDER + ", PRIMARY KEY (shard, seq, change_id, n)",
        ["CREATE INDEX ON t USING hash (client_order_id)", REL],
        "orders",
    ),
    "orders: key (shard, seq, change_id, n) + hash on the id (0007)": (
        ORDER + ", PRIMARY KEY (shard, seq, change_id, n)",
        ["CREATE INDEX ON t USING hash (client_order_id)"],
        "orders",
    ),
    "orders: no index": (ORDER, [], "orders"),
    "fills: key (shard, seq, n) + B-tree on the id (before 0006)": (
        FILL + ", PRIMARY KEY (shard, seq, n)",
        ["CREATE INDEX ON t (shard, client_order_id)"],
        "fills",
    ),
    "fills: key (shard, seq, n) + hash on the id (0006)": (
        FILL + ", PRIMARY KEY (shard, seq, n)",
        ["CREATE INDEX ON t USING hash (client_order_id)"],
        "fills",
    ),
    "fills: key only": (FILL + ", PRIMARY KEY (shard, seq, n)", [], "fills"),
}
ROWS, BATCH = 200_000, 10_000


def _rows() -> dict[str, list[bytes]]:
    rnd = random.Random(1)
    alphabet = string.ascii_letters + string.digits
    orders, fills = [], []
    for i in range(ROWS):
        coid = "".join(rnd.choice(alphabet) for _ in range(22))
        seq, n = 1 + 2 * (i // BATCH), i % BATCH
        orders.append(
            f"main\t{coid}\t{seq}\tf{n:06d}\tprov01\tBTCUSDT\tbuy\tlimit_ioc\t0.00123\t60300.5\tf\t1\t0\t{n}\n"
        )
        fills.append(f"main\t{seq + 1}\t{n}\t{coid}\t0.00123\t60000\n")
    chunk = lambda rows: [("".join(rows[b : b + BATCH])).encode() for b in range(0, ROWS, BATCH)]  # noqa: E731
    return {"orders": chunk(orders), "fills": chunk(fills)}


async def _source(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def _layouts(conn: asyncpg.Connection) -> None:
    batches = _rows()
    best: dict[str, float] = {}
    for _ in range(3):
        for name, (columns, indexes, kind) in LAYOUTS.items():
            await conn.execute("DROP TABLE IF EXISTS t")
            await conn.execute(f"CREATE TABLE t ({columns})")
            for sql in indexes:
                await conn.execute(sql)
            started = time.perf_counter()
            for data in batches[kind]:
                async with conn.transaction():
                    await conn.copy_to_table("t", source=_source(data))
            best[name] = min(best.get(name, 1e9), time.perf_counter() - started)
    for name, seconds in best.items():
        print(f"{name:<85} {seconds:6.2f} s per {ROWS:,} rows  ({ROWS / seconds:,.0f} rows/s)")


async def _journal(conn: asyncpg.Connection) -> None:
    rnd = random.Random(2)
    alphabet = string.ascii_letters + string.digits
    fills = [P.Fill("".join(rnd.choice(alphabet) for _ in range(22)), "0.00123", "60000.5") for _ in range(BATCH)]
    payload = P.encode(P.CopyFills(5, 0, fills))[4:]
    modes = {
        "pglz (default)": "SET COMPRESSION pglz",
        "lz4": "SET COMPRESSION lz4",
        "uncompressed (0006)": "SET STORAGE EXTERNAL",
    }
    for name, alter in modes.items():
        await conn.execute("DROP TABLE IF EXISTS j")
        await conn.execute(
            "CREATE TABLE j (shard text, seq bigint, kind text, payload bytea, PRIMARY KEY (shard, seq))"
        )
        try:
            await conn.execute(f"ALTER TABLE j ALTER COLUMN payload {alter}")
        except asyncpg.PostgresError as exc:
            print(f"journal, {name:<20} not on this server: {exc}")
            continue
        best = 1e9
        for _ in range(3):
            await conn.execute("TRUNCATE j")
            started = time.perf_counter()
            async with conn.transaction():
                await conn.copy_records_to_table("j", records=[("main", i, "fills", payload) for i in range(100)])
            best = min(best, time.perf_counter() - started)
        size = await conn.fetchval("SELECT pg_total_relation_size('j')")
        print(
            f"journal, {name:<20} {best * 1000:7.1f} ms per 100 messages of {len(payload):,} bytes, "
            f"{size / 1e6:.1f} MB stored"
        )


async def main(dsn: str) -> None:
    name = f"copyengine_ingest_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        conn = await asyncpg.connect(dsn, database=name)
        try:
            await _journal(conn)
            await _layouts(conn)
        finally:
            await conn.close()
    finally:
        await admin.execute(f'DROP DATABASE "{name}"')
        await admin.close()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dsn", default="postgresql://postgres@127.0.0.1/postgres")
    asyncio.run(main(ap.parse_args().dsn))

"""Migrations: applied once, in order, under a lock; a changed or missing one is refused."""

import asyncio
import json
import re
import shutil
import subprocess
import sys

import asyncpg
import pytest

from pyservice.store.migrate import MIGRATIONS, MigrationError, available, migrate


async def _with(dsn, fn):
    conn = await asyncpg.connect(dsn)
    try:
        return await fn(conn)
    finally:
        await conn.close()


def test_migrations_apply_once_and_create_the_schema(pg_dsn):
    first = asyncio.run(_with(pg_dsn, migrate))
    assert [m.version for m in first] == list(range(1, len(available()) + 1))
    assert asyncio.run(_with(pg_dsn, migrate)) == []
    tables = asyncio.run(
        _with(pg_dsn, lambda c: c.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'"))
    )
    # every table a migration creates, and the migrations' own record
    created = {t for m in first for t in re.findall(r"^CREATE TABLE (\w+)", m.sql, re.MULTILINE)}
    assert {t[0] for t in tables} == created | {"schema_migrations"}


def test_concurrent_starts_apply_each_migration_once(pg_dsn):
    async def many():
        conns = [await asyncpg.connect(pg_dsn) for _ in range(4)]
        try:
            return await asyncio.gather(*(migrate(c) for c in conns))
        finally:
            for c in conns:
                await c.close()

    results = asyncio.run(many())
    assert sorted(len(r) for r in results) == [0, 0, 0, len(available())]


def test_a_changed_migration_is_refused_and_nothing_changes(pg_dsn, tmp_path):
    asyncio.run(_with(pg_dsn, migrate))
    changed = tmp_path / "m"
    shutil.copytree(MIGRATIONS, changed)
    path = changed / "0001_journal.sql"
    path.write_text(path.read_text() + "\nCREATE TABLE sneaky (x int);\n")
    with pytest.raises(MigrationError, match="0001_journal changed after it was applied"):
        asyncio.run(_with(pg_dsn, lambda c: migrate(c, changed)))
    assert asyncio.run(_with(pg_dsn, lambda c: c.fetchval("SELECT to_regclass('sneaky')"))) is None


def test_a_failing_migration_rolls_back_entirely(pg_dsn, tmp_path):
    d = tmp_path / "m"
    shutil.copytree(MIGRATIONS, d)
    n = len(available()) + 1
    (d / f"{n:04d}_broken.sql").write_text("CREATE TABLE half (x int);\nSELECT no_such_function();\n")
    with pytest.raises(asyncpg.PostgresError):
        asyncio.run(_with(pg_dsn, lambda c: migrate(c, d)))
    # not even the good ones before it: one transaction
    assert asyncio.run(_with(pg_dsn, lambda c: c.fetchval("SELECT to_regclass('engine_state')"))) is None
    assert asyncio.run(_with(pg_dsn, lambda c: c.fetchval("SELECT to_regclass('half')"))) is None


def test_misnamed_or_gapped_migrations_are_refused(tmp_path):
    (tmp_path / "0001_a.sql").write_text("")
    (tmp_path / "0003_c.sql").write_text("")
    with pytest.raises(MigrationError, match="without gaps"):
        available(tmp_path)
    (tmp_path / "2_b.sql").write_text("")
    with pytest.raises(MigrationError, match=r"not NNNN_name\.sql"):
        available(tmp_path)


def test_a_database_newer_than_the_code_is_refused(pg_dsn, tmp_path):
    d = tmp_path / "m"
    shutil.copytree(MIGRATIONS, d)
    n = len(available()) + 1
    (d / f"{n:04d}_later.sql").write_text("CREATE TABLE later (x int);")
    asyncio.run(_with(pg_dsn, lambda c: migrate(c, d)))
    with pytest.raises(MigrationError, match="newer than this copyengine"):
        asyncio.run(_with(pg_dsn, migrate))


def test_the_migrate_command(pg_dsn):
    def run():
        return subprocess.run(
            [sys.executable, "-m", "pyservice.cli", "migrate", "--database", pg_dsn],
            capture_output=True,
            text=True,
            timeout=60,
        )

    first = run()
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == "applied: " + ", ".join(f"{m.version:04d}_{m.name}" for m in available())
    again = run()
    assert again.returncode == 0 and again.stdout.strip() == "the schema is up to date"
    bad = subprocess.run(
        [sys.executable, "-m", "pyservice.cli", "migrate", "--database", "postgresql://postgres@127.0.0.1:1/nothing"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and bad.stderr.startswith("migration failed:")


def test_reports_are_found_by_seq_and_orders_by_client_order_id(pg_dsn):
    """0008: the reports of an order are found through the reports' primary key from the
    order's seq on, and the order through copy_orders_by_id; the reports keep no index of
    their own to write on ingest (the hash indexes cost half of it)."""
    query = (
        "SELECT seq, n FROM copy_fills WHERE shard = $1 AND seq > (SELECT seq FROM copy_orders "
        "WHERE shard = $1 AND client_order_id = $2) AND client_order_id = $2 ORDER BY seq, n"
    )

    def scans(plan):
        """The index each scan of an EXPLAIN (FORMAT JSON) plan reads, None for a sequential
        scan (a bitmap scan names its index on its index node)."""
        found = []
        if plan["Node Type"] in ("Seq Scan", "Index Scan", "Index Only Scan", "Bitmap Index Scan"):
            found.append(plan.get("Index Name"))
        for sub in plan.get("Plans", []):
            found += scans(sub)
        return found

    async def go(conn):
        await migrate(conn)
        await conn.execute("INSERT INTO engine_state (shard) VALUES ('s') ON CONFLICT DO NOTHING")
        # a shard with history: 20,000 orders at seqs 1..20,000 and a fill of each one
        # input later, so that a scan of either table costs the planner far more than a lookup
        await conn.execute(
            "INSERT INTO copy_orders (shard, client_order_id, seq, follower_id, provider_id, symbol, "
            "side, type, qty, price, reduce_only, leverage, change_id, n) "
            "SELECT 's', 'ID' || i, i, 'f', 'p', 'BTC', 'buy', 'limit_ioc', 1, 100, false, 1, 0, 0 "
            "FROM generate_series(1, 20000) i"
        )
        await conn.execute(
            "INSERT INTO copy_fills (shard, seq, n, client_order_id, qty, price) "
            "SELECT 's', i + 1, 0, 'ID' || i, 1, 100 FROM generate_series(1, 20000) i"
        )
        # ID19990 (seq 19,990): one fill before it that is another's, then two of its own
        await conn.executemany(
            "INSERT INTO copy_fills (shard, seq, n, client_order_id, qty, price) VALUES ('s', $1, $2, $3, 0.5, 100)",
            [(19989, 1, "ID19990"), (20001, 1, "ID19990"), (20002, 0, "ID19990")],
        )
        await conn.execute("ANALYZE copy_orders; ANALYZE copy_fills")
        rows = [tuple(r) for r in await conn.fetch(query, "s", "ID19990")]
        plan = json.loads(await conn.fetchval("EXPLAIN (FORMAT JSON) " + query, "s", "ID19990"))[0]["Plan"]
        secondary = await conn.fetch(
            "SELECT indexrelid::regclass::text AS name FROM pg_index "
            "WHERE indrelid IN ('copy_fills'::regclass, 'copy_rejects'::regclass) AND NOT indisprimary"
        )
        return rows, sorted(scans(plan), key=str), [r["name"] for r in secondary]

    rows, indexes_read, secondary = asyncio.run(_with(pg_dsn, go))
    # its fill at seq 19,991 (n 0) and the two later ones; not the one at 19,989
    assert rows == [(19991, 0), (20001, 1), (20002, 0)]
    # no sequential scan: each table is read through its index
    assert indexes_read == ["copy_fills_pkey", "copy_orders_by_id"]
    assert secondary == []

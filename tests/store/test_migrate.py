"""Migrations: applied once, in order, under a lock; a changed or missing one is refused."""

import asyncio
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
    assert {"engine_state", "engine_inputs", "relationships", "provider_executions"} <= {t[0] for t in tables}


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


def test_reports_are_indexed_by_seq_and_orders_by_client_order_id(pg_dsn):
    """0008: an order is found by its client order id, and its reports from its seq on
    through the reports' primary key (the hash indexes on reports cost half of ingest)."""

    async def indexes(conn):
        await migrate(conn)
        rows = await conn.fetch(
            "SELECT tablename, indexdef FROM pg_indexes "
            "WHERE tablename IN ('copy_orders', 'copy_fills', 'copy_rejects')"
        )
        return {(r["tablename"], r["indexdef"].split(" USING ")[1]) for r in rows}

    assert asyncio.run(_with(pg_dsn, indexes)) == {
        ("copy_orders", "btree (shard, seq, change_id, n)"),
        ("copy_orders", "hash (client_order_id)"),
        ("copy_fills", "btree (shard, seq, n)"),
        ("copy_rejects", "btree (shard, seq, n)"),
    }

    async def fills_of(conn):
        await conn.execute("INSERT INTO engine_state (shard) VALUES ('s') ON CONFLICT DO NOTHING")
        await conn.execute(
            "INSERT INTO copy_orders (shard, client_order_id, seq, follower_id, provider_id, symbol, "
            "side, type, qty, price, reduce_only, leverage, change_id, n) VALUES "
            "('s', 'ID1', 5, 'f', 'p', 'BTC', 'buy', 'limit_ioc', 1, 100, false, 1, 0, 0)"
        )
        await conn.executemany(
            "INSERT INTO copy_fills (shard, seq, n, client_order_id, qty, price) VALUES ('s', $1, $2, $3, 0.5, 100)",
            [(4, 0, "ID1"), (6, 0, "ID0"), (6, 1, "ID1"), (7, 0, "ID1")],
        )
        return [
            tuple(r)
            for r in await conn.fetch(
                "SELECT seq, n FROM copy_fills WHERE shard = $1 AND seq > (SELECT seq FROM copy_orders "
                "WHERE shard = $1 AND client_order_id = $2) AND client_order_id = $2 ORDER BY seq, n",
                "s",
                "ID1",
            )
        ]

    assert asyncio.run(_with(pg_dsn, fills_of)) == [(6, 1), (7, 0)]

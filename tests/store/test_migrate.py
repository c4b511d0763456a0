"""Migrations: applied once, in order, under a lock; a changed or missing one is refused."""

import asyncio
import shutil
import subprocess
import sys
from pathlib import Path

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
    tables = asyncio.run(_with(pg_dsn, lambda c: c.fetch(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")))
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
    with pytest.raises(MigrationError, match="not NNNN_name.sql"):
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
    run = lambda: subprocess.run([sys.executable, "-m", "pyservice.cli", "migrate", "--database", pg_dsn],
                                 capture_output=True, text=True, timeout=60)
    first = run()
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == "applied: " + ", ".join(f"{m.version:04d}_{m.name}" for m in available())
    again = run()
    assert again.returncode == 0 and again.stdout.strip() == "the schema is up to date"
    bad = subprocess.run([sys.executable, "-m", "pyservice.cli", "migrate", "--database",
                          "postgresql://postgres@127.0.0.1:1/nothing"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and bad.stderr.startswith("migration failed:")

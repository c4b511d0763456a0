"""Numbered SQL migrations (`migrations/NNNN_name.sql`), applied in order at start.

All pending migrations run in one transaction under an advisory lock, so engines and
`copyengine migrate` starting together apply each exactly once, and a failed migration
leaves the schema as it was. A migration already applied must not change: its checksum
is kept and checked.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg

MIGRATIONS = Path(__file__).with_name("migrations")
#: pg_advisory_xact_lock key: "copyeng" as a number, so other applications' locks differ
LOCK_KEY = int.from_bytes(b"copyeng", "big")
_NAME = re.compile(r"(\d{4})_([a-z0-9_]+)\.sql\Z")


class MigrationError(Exception):
    """The migrations on disk and those recorded in the database disagree."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def available(directory: Path = MIGRATIONS) -> list[Migration]:
    found: list[Migration] = []
    for path in sorted(directory.glob("*.sql")):
        m = _NAME.match(path.name)
        if m is None:
            raise MigrationError(f"migration file name '{path.name}' is not NNNN_name.sql")
        found.append(Migration(int(m[1]), m[2], path.read_text(encoding="utf-8")))
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise MigrationError(f"migrations must be numbered 1, 2, 3, ... without gaps; found {versions}")
    return found


async def migrate(conn: asyncpg.Connection, directory: Path = MIGRATIONS) -> list[Migration]:
    """Apply the pending migrations; returns those applied by this call."""
    todo = available(directory)
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", LOCK_KEY)
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version    integer PRIMARY KEY,
                   name       text NOT NULL,
                   checksum   text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        done = {r["version"]: r for r in await conn.fetch("SELECT version, name, checksum FROM schema_migrations")}
        if done and max(done) > len(todo):
            raise MigrationError(f"the database is at migration {max(done)}, newer than this copyengine ({len(todo)})")
        applied = []
        for m in todo:
            row = done.get(m.version)
            if row is not None:
                if row["checksum"] != m.checksum:
                    raise MigrationError(f"migration {m.version:04d}_{m.name} changed after it was applied")
                continue
            await conn.execute(m.sql)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                m.version,
                m.name,
                m.checksum,
            )
            applied.append(m)
        return applied

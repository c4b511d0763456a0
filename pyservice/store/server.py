"""Which PostgreSQL: `DATABASE_URL`, or an embedded one (`pgserver`) under a data directory.

The embedded server is a normal PostgreSQL started from the `pgserver` wheel's binaries,
so a fresh machine needs nothing installed. It outlives an engine that is killed (the
next start finds it running) and is stopped when the process that started it exits.
"""

from __future__ import annotations

import atexit
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("copyengine.store")

DEFAULT_DATA_DIR = Path(os.environ.get("COPYENGINE_DATA_DIR", Path.home() / ".copyengine" / "pg"))


@dataclass
class Database:
    dsn: str
    #: the pgserver handle when this process started an embedded server
    embedded: Any = None

    def stop(self) -> None:
        if self.embedded is not None:
            self.embedded.cleanup()
            atexit.unregister(self.embedded._cleanup)  # pgserver would log again at exit
            self.embedded = None


def open_database(url: str | None = None, data_dir: Path | None = None) -> Database:
    """`url`, else `$DATABASE_URL`, else an embedded server under `data_dir`."""
    url = url or os.environ.get("DATABASE_URL")
    if url:
        return Database(url)
    return embedded_database(data_dir)


def embedded_database(data_dir: Path | None = None) -> Database:
    """An embedded server under `data_dir` (started unless it runs)."""
    directory = Path(data_dir or DEFAULT_DATA_DIR)
    directory.mkdir(parents=True, exist_ok=True)
    log.info("no DATABASE_URL: using an embedded PostgreSQL", extra={"data_dir": str(directory)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR on servers
        from pgserver import postgres_server

        server = postgres_server.get_server(directory, cleanup_mode="stop")
    return Database(server.get_uri(), server)


def database_dsn(server_dsn: str, name: str) -> str:
    """The DSN of database `name` on `server_dsn`'s server (same host, user, options)."""
    base, _, query = server_dsn.partition("?")
    return base.rsplit("/", 1)[0] + "/" + name + (f"?{query}" if query else "")


async def _on_server(server_dsn: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(server_dsn, timeout=10)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def create_database(server_dsn: str, name: str) -> str:
    """A new, empty database `name` (for tests and benchmarks); returns its DSN."""
    await _on_server(server_dsn, f'CREATE DATABASE "{name}"')
    return database_dsn(server_dsn, name)


async def drop_database(server_dsn: str, name: str) -> None:
    await _on_server(server_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

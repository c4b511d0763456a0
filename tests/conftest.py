"""Shared fixtures: the two implementations of scenario format v2 (and v1).

``replay`` is parametrized over ``reference`` (pyservice.reference.replay, plain
Python) and ``rust`` (pyservice.replay.replay_records, the Rust core). The Rust side
is imported lazily so that ``pytest -k reference`` works without the extension built.
"""

import os
import sys

import pytest

# make ``import strategies`` work whatever pytest's import mode is
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def load_implementation(name):
    if name == "reference":
        from pyservice.reference import replay

        return replay
    if name == "rust":
        from pyservice.replay import replay_records

        return replay_records
    raise ValueError(name)


@pytest.fixture(params=["reference", "rust"])
def replay(request):
    """``(text: str) -> list[dict]``; raises a ValueError for an invalid file."""
    return load_implementation(request.param)


# -- PostgreSQL ----------------------------------------------------------------------------
# Tests run against the server at $TEST_DATABASE_URL (default: this machine's, at
# 127.0.0.1:5432). Without one they start an embedded server (pgserver), so a fresh
# machine runs them too. Each test gets a database of its own.

_DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"


def _reachable(dsn):
    import asyncio

    import asyncpg

    async def probe():
        conn = await asyncpg.connect(dsn, timeout=3)
        await conn.close()

    try:
        asyncio.run(probe())
        return True
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory):
    """A DSN of a server where tests may create databases."""
    dsn = os.environ.get("TEST_DATABASE_URL", _DEFAULT_SERVER)
    if _reachable(dsn):
        yield dsn
        return
    from pyservice.store.server import open_database

    db = open_database(None, tmp_path_factory.mktemp("pg"))
    try:
        yield db.dsn
    finally:
        db.stop()


@pytest.fixture
def pg_dsn(pg_server):
    """A fresh, empty database for one test; dropped afterwards."""
    import asyncio
    import uuid

    from pyservice.store.server import create_database, drop_database

    name = f"copyengine_test_{uuid.uuid4().hex[:12]}"
    dsn = asyncio.run(create_database(pg_server, name))
    try:
        yield dsn
    finally:
        asyncio.run(drop_database(pg_server, name))

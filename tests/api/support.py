"""What the API's tests share: the app in-process (Litestar's test client, rate limits
off unless given), bearer headers for the `world`'s tokens, and database reads."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import asyncpg
from litestar.testing import TestClient

from pyservice.api.app import create_app
from pyservice.api.middleware import RateLimits

#: the principals of the security matrix: no token, then the `world`'s tokens
PRINCIPALS = ("none", "expired", "revoked", "follower", "other_follower", "provider", "other_provider", "operator")


@contextmanager
def in_process(dsn: str, limits: RateLimits | None = None) -> Iterator[TestClient[Any]]:
    with TestClient(create_app(dsn, limits=limits or RateLimits(0, 0)), raise_server_exceptions=False) as client:
        yield client


def auth(world: Any, name: str, **extra: str) -> dict[str, str]:
    """The headers of principal `name` ("none": no Authorization header)."""
    headers = dict(extra)
    if name != "none":
        headers["Authorization"] = f"Bearer {world.tokens[name]}"
    return headers


def query(dsn: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    async def run() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(dsn)
        try:
            return await conn.fetch(sql, *args)
        finally:
            await conn.close()

    return asyncio.run(run())


def is_error(body: Any, code: str | None = None) -> bool:
    """Whether `body` is the one error shape (with `code`, if given)."""
    if not (isinstance(body, dict) and set(body) == {"error"} and isinstance(body["error"], dict)):
        return False
    e = body["error"]
    ok = set(e) == {"code", "message"} and isinstance(e["code"], str) and isinstance(e["message"], str)
    return ok and (code is None or e["code"] == code)


@contextmanager
def api_process(dsn: str, log_path: Any, *args: str) -> Iterator[str]:
    """`copyengine api` on a free port in a child process (rate limits off, then `args`):
    its base URL."""
    import os
    import socket
    import subprocess
    import sys
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    log = open(log_path, "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "pyservice.cli", "api", "--listen", f"127.0.0.1:{port}", "--database", dsn,
         "--rate-per-token", "0", "--rate-per-address", "0", *args],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"copyengine api did not start: {open(log_path).read()}") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


@contextmanager
def seeded_world(pg_server: str) -> Iterator[Any]:
    """A seeded database of its own (the `world` fixture's), for a module's tests that
    may share one."""
    import uuid

    from pyservice.store.server import create_database, drop_database

    from .conftest import _build

    name = f"copyengine_test_{uuid.uuid4().hex[:12]}"
    dsn = asyncio.run(create_database(pg_server, name))
    try:
        yield asyncio.run(_build(dsn))
    finally:
        asyncio.run(drop_database(pg_server, name))

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

"""A seeded database (`pyservice.bench.leaderboard_seed`), tokens of every kind, an
applier of control changes, and the app in-process (Litestar's test client) or served by
`copyengine api` in a child process."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import asyncpg
import pytest

from pyservice.bench.leaderboard_seed import Seeded, seed
from pyservice.store import tokens
from pyservice.store.migrate import migrate

from .applier import ChangeApplier
from .support import api_process

PROVIDERS = 60


@dataclass
class World:
    dsn: str
    seeded: Seeded
    #: name → token text: follower (f0), other_follower (f1), provider (p00000),
    #: other_provider (p00001), operator, expired (follower f0), revoked (follower f0)
    tokens: dict[str, str]
    token_ids: dict[str, int]


async def _build(dsn: str) -> World:
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn)
        seeded = await seed(conn, PROVIDERS)
        made: dict[str, tuple[int, str]] = {}
        for name, role, subject in (
            ("follower", "follower", "f0"),
            ("other_follower", "follower", "f1"),
            ("provider", "provider", "p00000"),
            ("other_provider", "provider", "p00001"),
            ("operator", "operator", None),
            ("expired", "follower", "f0"),
            ("revoked", "follower", "f0"),
        ):
            made[name] = await tokens.create(conn, role, subject, 30, name)
        await conn.execute(
            "UPDATE api_tokens SET expires_at = now() - interval '1 second' WHERE id = $1", made["expired"][0]
        )
        await tokens.revoke(conn, made["revoked"][0])
    finally:
        await conn.close()
    return World(dsn, seeded, {k: v[1] for k, v in made.items()}, {k: v[0] for k, v in made.items()})


@pytest.fixture
def world(pg_dsn: str) -> World:
    return asyncio.run(_build(pg_dsn))


@pytest.fixture
def applier(world: World):
    with ChangeApplier(world.dsn, world.seeded.books) as a:
        yield a


@pytest.fixture
def served(world: World, tmp_path):
    """`copyengine api` on a free port (rate limits off): its base URL."""
    with api_process(world.dsn, tmp_path / "api.log") as url:
        yield url

"""Ownership of a shard's work through PostgreSQL session advisory locks.

A lock lives as long as the connection that took it, so a process that dies, even by
SIGKILL, releases it as soon as PostgreSQL sees its connection close.
"""

from __future__ import annotations

import asyncio

import asyncpg


async def take(conn: asyncpg.Connection, role: str, shard: str, *, wait_s: float) -> bool:
    """Try for `wait_s` seconds to own (`role`, `shard`) on `conn`'s session."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    while True:
        if await conn.fetchval("SELECT pg_try_advisory_lock(hashtext($1), hashtext($2))", f"copyengine:{role}", shard):
            return True
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(0.1)

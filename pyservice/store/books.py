"""Follower books in PostgreSQL: seeded from a books file, read back as one at start."""

from __future__ import annotations

import json
from typing import Any

import asyncpg

from pyservice._engine_core import LiveEngine


class BooksError(Exception):
    """The books cannot be seeded (invalid, or the database already holds books)."""


async def has_books(conn: asyncpg.Connection) -> bool:
    return bool(await conn.fetchval("SELECT EXISTS (SELECT 1 FROM providers)"))


async def seed_books(conn: asyncpg.Connection, text: str) -> int:
    """Store a books file (format of `copyengine engine --books`) in an empty database.
    Returns the number of relationships. The file is checked by the engine's own parser
    first, so nothing invalid is stored."""
    LiveEngine.from_books(text)  # raises ScenarioError with the reason
    books: dict[str, Any] = json.loads(text)
    follows: list[dict[str, Any]] = books.get("follows", [])
    async with conn.transaction():
        await conn.execute("LOCK TABLE providers IN EXCLUSIVE MODE")
        if await has_books(conn):
            raise BooksError("the database already holds follower books; change them through the control plane")
        await conn.copy_records_to_table(
            "providers", records=[(p["id"],) for p in books.get("providers", [])], columns=["provider_id"]
        )
        followers = list(dict.fromkeys(f["follower"] for f in follows))
        await conn.copy_records_to_table("followers", records=[(f,) for f in followers], columns=["follower_id"])
        # COPY keeps the row order, so follow_order is the file's order
        await conn.copy_records_to_table(
            "relationships",
            records=[(f["follower"], f["provider"], json.dumps(f)) for f in follows],
            columns=["follower_id", "provider_id", "follow"],
        )
        if books.get("platform") is not None:
            await conn.execute("INSERT INTO platform (settings) VALUES ($1)", json.dumps(books["platform"]))
    return len(follows)


async def load_books(conn: asyncpg.Connection) -> str:
    """The stored books as a books file's text, follows in follow order."""
    providers = [r[0] for r in await conn.fetch("SELECT provider_id FROM providers ORDER BY listed")]
    platform = await conn.fetchval("SELECT settings::text FROM platform")
    rows = await conn.fetch("SELECT follow::text FROM relationships ORDER BY follow_order")
    # assembled as text: 100,000 follows need not become Python dicts and back
    parts = [
        '{"version":1,"providers":',
        json.dumps([{"id": p} for p in providers]),
        ',"platform":',
        platform or "null",
        ',"follows":[',
        ",".join(r[0] for r in rows),
        "]}",
    ]
    return "".join(parts)


def same_books(stored: str, text: str) -> bool:
    """Whether a books file holds what the database holds (as JSON values, so key
    order and spacing do not matter)."""
    a, b = json.loads(stored), json.loads(text)
    return bool(
        a["follows"] == b.get("follows", [])
        and a["platform"] == b.get("platform")
        and a["providers"] == b.get("providers", [])
    )

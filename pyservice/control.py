"""The control plane: follow, unfollow, deposit, withdraw, pause, resume and settings.

One path for every caller (the CLI now, the HTTP API next): `submit` checks a change
with the engine's own parser (the replay's rules and messages), commits it to
PostgreSQL, and wakes the engine (NOTIFY). The engine applies pending changes in id
order at a point of its input order, committing that point (`after_seq`) before it
applies the change, then the rules' reason if they refuse it for the state it meets (an
unknown follower, a withdrawal above free cash). Replay after a crash applies them at
the same points.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import asyncpg

from pyservice._engine_core import check_control

#: NOTIFY channel; the payload is the shard
CHANNEL = "copyengine_control"


class ControlError(Exception):
    """The change is invalid on its own; nothing was stored."""


@dataclass(frozen=True)
class Change:
    id: int
    text: str


@dataclass(frozen=True)
class Verdict:
    id: int
    #: where the engine applied it; None while pending
    after_seq: int | None
    #: False until the engine has applied it and recorded `error`
    applied: bool
    #: the rules' reason for refusing it (it then changed nothing)
    error: str | None


def validate(change: dict[str, Any]) -> str:
    """The change as stored text; ControlError with the replay's message if invalid."""
    text = json.dumps(change, separators=(",", ":"))
    reason = check_control(text)
    if reason is not None:
        raise ControlError(reason)
    return text


async def submit(conn: asyncpg.Connection, shard: str, change: dict[str, Any]) -> int:
    """Check, commit and announce a change; returns its id."""
    text = validate(change)
    async with conn.transaction():
        change_id: int = await conn.fetchval(
            "INSERT INTO control_changes (shard, change) VALUES ($1, $2::jsonb) RETURNING id", shard, text
        )
        await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, shard)
    return change_id


async def verdict(conn: asyncpg.Connection, change_id: int) -> Verdict:
    row = await conn.fetchrow(
        "SELECT after_seq, applied_at IS NOT NULL AS applied, error FROM control_changes WHERE id = $1", change_id
    )
    if row is None:
        raise ControlError(f"no control change {change_id}")
    return Verdict(change_id, row["after_seq"], row["applied"], row["error"])


async def wait(conn: asyncpg.Connection, change_id: int, timeout: float) -> Verdict:
    """The verdict once the engine has applied the change, or the pending one at `timeout`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        v = await verdict(conn, change_id)
        if v.applied or loop.time() >= deadline:
            return v
        await asyncio.sleep(0.02)


# -- the engine's side -----------------------------------------------------------------


async def pending(conn: asyncpg.Connection, shard: str) -> list[Change]:
    rows = await conn.fetch(
        "SELECT id, change::text FROM control_changes WHERE shard = $1 AND after_seq IS NULL ORDER BY id", shard
    )
    return [Change(r[0], r[1]) for r in rows]


async def placed(
    conn: asyncpg.Connection, shard: str, lo: int = 0, hi: int = 2**63 - 1
) -> list[tuple[int, Change, bool]]:
    """(after_seq, change, whether its verdict is recorded) of every change placed after
    seqs `lo`..`hi`, in the order applied."""
    rows = await conn.fetch(
        "SELECT after_seq, id, change::text, applied_at IS NOT NULL FROM control_changes "
        "WHERE shard = $1 AND after_seq BETWEEN $2 AND $3 ORDER BY after_seq, id",
        shard,
        lo,
        hi,
    )
    return [(r[0], Change(r[1], r[2]), r[3]) for r in rows]


async def place(conn: asyncpg.Connection, change_id: int, after_seq: int) -> None:
    """Commit where the change goes, before the engine applies it: a crash after this
    replays it there, a crash before leaves it pending and without effect."""
    await conn.execute(
        "UPDATE control_changes SET after_seq = $2 WHERE id = $1 AND after_seq IS NULL", change_id, after_seq
    )


async def decided(conn: asyncpg.Connection, change_id: int, error: str | None) -> None:
    """The verdict of an applied change: None, or the rules' reason (it changed nothing)."""
    await conn.execute("UPDATE control_changes SET error = $2, applied_at = now() WHERE id = $1", change_id, error)

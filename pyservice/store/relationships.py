"""A follower's relationships as of the engine's newest snapshot (cash, equity, positions,
high watermark, fees paid), and the settlement notifications of a follower or provider."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import asyncpg

from pyservice.statistics.figures import canonical
from pyservice.venue_time import format_time

#: notifications.side
FOLLOWER_SIDE, PROVIDER_SIDE = 0, 1


def _text(v: Decimal | None) -> str | None:
    return None if v is None else canonical(v)


async def relationships(
    conn: asyncpg.Connection, shard: str, follower: str, provider: str | None = None
) -> list[dict[str, Any]]:
    """The follower's relationships in the newest snapshot that holds them (one provider's
    with `provider`), in provider order."""
    rows = await conn.fetch(
        "SELECT DISTINCT ON (provider_id) provider_id, seq, status, cash, equity, reserved, base, "
        "high_watermark, fees_paid FROM relationship_equity "
        "WHERE shard = $1 AND follower_id = $2 AND ($3::text IS NULL OR provider_id = $3) "
        "ORDER BY provider_id, seq DESC",
        shard,
        follower,
        provider,
    )
    held = await conn.fetch(
        "SELECT provider_id, symbol, qty FROM positions WHERE shard = $1 AND follower_id = $2 "
        "AND ($3::text IS NULL OR provider_id = $3) ORDER BY provider_id, symbol",
        shard,
        follower,
        provider,
    )
    positions: dict[str, list[dict[str, str]]] = {}
    for p in held:
        positions.setdefault(p["provider_id"], []).append({"symbol": p["symbol"], "qty": canonical(p["qty"])})
    return [
        {
            "provider": r["provider_id"],
            "status": r["status"],
            "as_of_seq": r["seq"],
            "cash": canonical(r["cash"]),
            "equity": _text(r["equity"]),
            "reserved": canonical(r["reserved"]),
            "base": _text(r["base"]),
            "pnl": None if r["equity"] is None or r["base"] is None else canonical(r["equity"] - r["base"]),
            "high_watermark": _text(r["high_watermark"]),
            "fees_paid": _text(r["fees_paid"]),
            "positions": positions.get(r["provider_id"], []),
        }
        for r in rows
    ]


async def notifications(conn: asyncpg.Connection, side: int, recipient: str, limit: int = 100) -> list[dict[str, Any]]:
    """The newest notifications to one side's recipient, newest first."""
    rows = await conn.fetch(
        "SELECT seq, kind, body::text AS body, at_us FROM notifications WHERE recipient = $1 AND side = $2 "
        "ORDER BY seq DESC, change_id DESC, n DESC LIMIT $3",
        recipient,
        side,
        limit,
    )
    return [
        {"seq": r["seq"], "kind": r["kind"], "at": format_time(r["at_us"]), "body": json.loads(r["body"])} for r in rows
    ]

"""`copyengine settlements`: the settlement outcomes the projector wrote, and their totals.

Records (JSON Lines): one `settlement` per outcome in the engine's order, then one
`provider_total` per provider and one `platform_total`, of the outcomes selected: how many
of each status (`outcomes`), and the sums of due, charged, provider_credit,
platform_credit, written_off and deferred_due (the due of the deferred ones).
Amounts are exact canonical decimals, as in the engine's records.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import asyncpg

from pyservice.statistics.figures import canonical
from pyservice.store.ledger import AMOUNTS

STATUSES = ("charged", "deferred", "partial")


async def statement(
    conn: asyncpg.Connection,
    shard: str = "main",
    period: str | None = None,
    provider: str | None = None,
    follower: str | None = None,
) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        f"SELECT seq, change_id, period, follower_id, provider_id, status, {', '.join(AMOUNTS)} FROM settlements "
        "WHERE shard = $1 AND ($2::text IS NULL OR period = $2) AND ($3::text IS NULL OR provider_id = $3) "
        "AND ($4::text IS NULL OR follower_id = $4) ORDER BY seq, change_id, n",
        shard,
        period,
        provider,
        follower,
    )
    out: list[dict[str, Any]] = []
    providers: dict[str, dict[str, Any]] = {}
    platform: dict[str, Any] = {"kind": "platform_total", **_zero()}
    for r in rows:
        out.append(
            {
                "kind": "settlement",
                "seq": r["seq"],
                "period": r["period"],
                "follower": r["follower_id"],
                "provider": r["provider_id"],
                **{k: canonical(r[k]) for k in AMOUNTS},
                "status": r["status"],
            }
        )
        p = providers.setdefault(r["provider_id"], {"kind": "provider_total", "provider": r["provider_id"], **_zero()})
        for total in (p, platform):
            total["outcomes"][r["status"]] += 1
            for k in ("due", "charged", "provider_credit", "platform_credit", "written_off"):
                total[k] += r[k]
            if r["status"] == "deferred":
                total["deferred_due"] += r["due"]
    for total in (*(providers[p] for p in sorted(providers)), platform):
        out.append({k: canonical(v) if isinstance(v, Decimal) else v for k, v in total.items()})
    return out


def _zero() -> dict[str, Any]:
    """A total: how many outcomes of each status, and the sums of their amounts
    (deferred_due: what the deferred outcomes left due)."""
    return {
        "outcomes": {s: 0 for s in STATUSES},
        **{
            k: Decimal(0)
            for k in ("due", "charged", "provider_credit", "platform_credit", "written_off", "deferred_due")
        },
    }

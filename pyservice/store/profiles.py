"""Provider profiles: what a provider says about itself (display name, avatar, bio), and
its profit share as the engine holds it (`provider_terms`, kept by the projector)."""

from __future__ import annotations

from typing import Any

import asyncpg

from pyservice.statistics.figures import canonical

LIMITS = {"display_name": 80, "avatar_url": 500, "bio": 2000}


class ProfileError(ValueError):
    """The profile is invalid (the message says which field and why)."""


def _check(name: str, value: str | None) -> None:
    if value is None:
        return
    if len(value) > LIMITS[name]:
        raise ProfileError(f"{name} is longer than {LIMITS[name]} characters")
    if any(ord(c) < 32 and c not in "\n\t" for c in value):
        raise ProfileError(f"{name} holds control characters")
    if name == "avatar_url" and value and not (value.startswith("https://") and " " not in value):
        raise ProfileError("avatar_url must be an https:// URL")
    if name == "display_name" and "\n" in value:
        raise ProfileError("display_name must be one line")


async def profile(conn: asyncpg.Connection, provider: str) -> dict[str, Any]:
    r = await conn.fetchrow(
        "SELECT coalesce(pp.display_name, '') AS display_name, pp.avatar_url, coalesce(pp.bio, '') AS bio, "
        "coalesce(t.profit_share_pct, 0) AS share, coalesce(t.next_profit_share_pct, 0) AS next_share "
        "FROM providers p LEFT JOIN provider_profiles pp USING (provider_id) "
        "LEFT JOIN provider_terms t USING (provider_id) WHERE p.provider_id = $1",
        provider,
    )
    if r is None:
        raise ProfileError(f"unknown provider '{provider}'")
    return {
        "provider": provider,
        "display_name": r["display_name"],
        "avatar_url": r["avatar_url"],
        "bio": r["bio"],
        "profit_share_pct": canonical(r["share"]),
        "next_profit_share_pct": canonical(r["next_share"]),
    }


async def update(
    conn: asyncpg.Connection, provider: str, display_name: str | None, avatar_url: str | None, bio: str | None
) -> None:
    for name, value in (("display_name", display_name), ("avatar_url", avatar_url), ("bio", bio)):
        _check(name, value)
    await conn.execute(
        "INSERT INTO provider_profiles (provider_id, display_name, avatar_url, bio) "
        "VALUES ($1, coalesce($2, ''), nullif($3, ''), coalesce($4, '')) ON CONFLICT (provider_id) DO UPDATE SET "
        "display_name = coalesce($2, provider_profiles.display_name), "
        "avatar_url = CASE WHEN $3::text IS NULL THEN provider_profiles.avatar_url ELSE nullif($3, '') END, "
        "bio = coalesce($4, provider_profiles.bio), updated_at = now()",
        provider,
        display_name,
        avatar_url,
        bio,
    )

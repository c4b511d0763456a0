"""API bearer tokens (`copyengine token create|list|revoke`, and the API's authentication).

A token is 32 random bytes (`secrets`), shown once as URL-safe base64 text at creation;
only the SHA-256 of that text is stored, so the table leaks nothing usable. A token has a
role (`follower`, `provider`, `operator`), a subject (the follower's or provider's id; none
for an operator), an expiry and a revocation time. Expiry and revocation are wall-clock
facts about access, not engine state, so they use PostgreSQL's `now()`.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

import asyncpg

from pyservice.protocol import NAME_RE

ROLES = ("follower", "provider", "operator")
MAX_DAYS = 3650


class TokenError(ValueError):
    """The token cannot be created or changed (the message says why)."""


@dataclass(frozen=True)
class Principal:
    """Who a valid token speaks for."""

    token_id: int
    role: str
    subject: str | None

    @property
    def owner(self) -> str:
        """Whose the token is (every token of one follower has the same owner)."""
        return owner_of(self.role, self.subject)


def owner_of(role: str, subject: str | None) -> str:
    return f"{role}:{subject or ''}"


async def owner(conn: asyncpg.Connection, token_id: int) -> str | None:
    """The owner of a token (revoked or not), None for none."""
    r = await conn.fetchrow("SELECT role, subject FROM api_tokens WHERE id = $1", token_id)
    return None if r is None else owner_of(r["role"], r["subject"])


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


async def create(
    conn: asyncpg.Connection, role: str, subject: str | None, days: int, label: str = ""
) -> tuple[int, str]:
    """A new token: (its id, the token text, which is never stored)."""
    if role not in ROLES:
        raise TokenError(f"role must be one of {', '.join(ROLES)}")
    if role == "operator":
        if subject is not None:
            raise TokenError("an operator token has no subject")
    elif subject is None or not NAME_RE.match(subject):
        raise TokenError(f"a {role} token needs the {role}'s id (letters, digits, _ . : -, at most 64)")
    if not 1 <= days <= MAX_DAYS:
        raise TokenError(f"days must be 1 to {MAX_DAYS}")
    if len(label) > 200 or not label.isprintable():
        raise TokenError("label must be at most 200 printable characters")
    if role == "provider" and not await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM providers WHERE provider_id = $1)", subject
    ):
        raise TokenError(f"unknown provider '{subject}'")
    token = secrets.token_urlsafe(32)
    token_id: int = await conn.fetchval(
        "INSERT INTO api_tokens (hash, role, subject, label, expires_at) "
        "VALUES ($1, $2, $3, $4, now() + make_interval(days => $5)) RETURNING id",
        digest(token),
        role,
        subject,
        label,
        days,
    )
    return token_id, token


async def authenticate(conn: asyncpg.Connection, token: str) -> Principal | None:
    """Who the token speaks for, or None if it is unknown, expired or revoked."""
    if not 20 <= len(token) <= 200:
        return None
    r = await conn.fetchrow(
        "SELECT id, role, subject FROM api_tokens WHERE hash = $1 AND revoked_at IS NULL AND expires_at > now()",
        digest(token),
    )
    return None if r is None else Principal(r["id"], r["role"], r["subject"])


async def listing(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT id, role, subject, label, created_at, expires_at, revoked_at, "
        "revoked_at IS NULL AND expires_at > now() AS valid FROM api_tokens ORDER BY id"
    )
    return [
        {
            "id": r["id"],
            "role": r["role"],
            "subject": r["subject"],
            "label": r["label"],
            "created_at": r["created_at"].isoformat(),
            "expires_at": r["expires_at"].isoformat(),
            "revoked_at": None if r["revoked_at"] is None else r["revoked_at"].isoformat(),
            "valid": r["valid"],
        }
        for r in rows
    ]


async def revoke(conn: asyncpg.Connection, token_id: int) -> bool:
    """Revoke a token; False if there is no such token (revoking twice is not an error)."""
    status: str = await conn.execute(
        "UPDATE api_tokens SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1", token_id
    )
    return status != "UPDATE 0"

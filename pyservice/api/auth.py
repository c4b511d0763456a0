"""Bearer tokens and roles. A route that needs a role takes its `Principal` as a
dependency (`follower`, `provider`, `operator`): no token or an invalid one is 401, a
valid token of another role is 403. A follower or provider token only ever reaches its
own subject's data, since the subject comes from the token and never from the URL."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from litestar import Request
from litestar.di import Provide

from pyservice.api.errors import ApiError
from pyservice.store import tokens
from pyservice.store.tokens import Principal

BEARER = "bearer"
#: the OpenAPI security requirement of a route that needs a token
SECURITY: list[dict[str, list[str]]] = [{BEARER: []}]


def bearer(request: Request[Any, Any, Any]) -> str | None:
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


async def principal_of(request: Request[Any, Any, Any]) -> Principal:
    """The token's principal (cached on the request), or 401."""
    cached = request.scope.get("copyengine.principal")
    if isinstance(cached, Principal):
        return cached
    token = bearer(request)
    if token is None:
        raise ApiError(401, "a bearer token is required (Authorization: Bearer <token>)")
    async with request.app.state.pool.acquire() as conn:
        found = await tokens.authenticate(conn, token)
    if found is None:
        raise ApiError(401, "the token is unknown, expired or revoked")
    request.scope["copyengine.principal"] = found  # type: ignore[typeddict-unknown-key]
    return found


def role(*roles: str) -> Callable[[Request[Any, Any, Any]], Awaitable[Principal]]:
    async def need(request: Request[Any, Any, Any]) -> Principal:
        p = await principal_of(request)
        if p.role not in roles:
            raise ApiError(403, f"this route needs a {' or '.join(roles)} token")
        return p

    return need


FOLLOWER = {"me": Provide(role("follower"))}
PROVIDER = {"me": Provide(role("provider"))}
OPERATOR = {"me": Provide(role("operator"))}
FOLLOWER_OR_PROVIDER = {"me": Provide(role("follower", "provider"))}
ANY_ROLE = {"me": Provide(role("follower", "provider", "operator"))}

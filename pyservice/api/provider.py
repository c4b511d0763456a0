"""A provider's routes (provider token): its profile, its profit share (a control change,
in force from the next period boundary) and its earnings."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get, put
from litestar.di import NamedDependency
from litestar.params import JSONBody

from pyservice.api import changes
from pyservice.api.auth import PROVIDER, SECURITY
from pyservice.api.errors import ApiError, documented
from pyservice.api.follower import Wait, statement
from pyservice.api.schemas import ChangeAnswer, Earnings, Profile, ProfileUpdate, ProfitShare
from pyservice.store import profiles, settlements
from pyservice.store.tokens import Principal

_DOC: dict[str, Any] = {"tags": ["provider"], "security": SECURITY, "dependencies": PROVIDER}
_READ = documented(401, 403, 429)


@get("/v1/me/profile", summary="My profile", responses=_READ, **_DOC)
async def my_profile(request: Request[Any, Any, Any], me: NamedDependency[Principal]) -> Profile:
    async with request.app.state.pool.acquire() as conn:
        return Profile(**await profiles.profile(conn, str(me.subject)))


@put("/v1/me/profile", summary="Change my profile", responses=documented(400, 401, 403, 413, 422, 429), **_DOC)
async def change_profile(
    request: Request[Any, Any, Any], me: NamedDependency[Principal], data: JSONBody[ProfileUpdate]
) -> Profile:
    """Display name (at most 80 characters), avatar URL (https, at most 500) and bio (at
    most 2,000); a field left out keeps its value, an empty avatar URL removes it."""
    try:
        async with request.app.state.pool.acquire() as conn:
            await profiles.update(conn, str(me.subject), data.display_name, data.avatar_url, data.bio)
            return Profile(**await profiles.profile(conn, str(me.subject)))
    except profiles.ProfileError as exc:
        raise ApiError(422, str(exc), "invalid") from exc


@put("/v1/me/profit-share", summary="Change my profit share", responses=changes.RESPONSES, **_DOC)
async def change_profit_share(
    request: Request[Any, Any, Any],
    me: NamedDependency[Principal],
    data: JSONBody[ProfitShare],
    wait: Wait = changes.WAIT_S,
) -> Response[ChangeAnswer]:
    """At most the platform's maximum; in force from the next period boundary (a period is
    settled at the share in force when it began)."""
    change = {"type": "profit_share", "provider": me.subject, "profit_share_pct": data.profit_share_pct}
    return await changes.submit(request, me, change, wait)


@get("/v1/me/earnings", summary="My earnings", responses=_READ, **_DOC)
async def my_earnings(request: Request[Any, Any, Any], me: NamedDependency[Principal]) -> Earnings:
    async with request.app.state.pool.acquire() as conn:
        records = await settlements.statement(conn, request.app.state.shard, provider=str(me.subject))
    totals = statement(records)
    mine = next((t for t in totals.provider_totals if t.provider == me.subject), None)
    total = mine or totals.platform_total
    total.provider = str(me.subject)
    return Earnings(str(me.subject), total.provider_credit, total)


ROUTES = [my_profile, change_profile, change_profit_share, my_earnings]

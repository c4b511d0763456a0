"""A follower's routes (follower token): its relationships, the changes to them, its
settlements and notifications. The follower is the token's subject; no route takes a
follower id, so no follower can name another's data."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, Parameter

from pyservice.api import changes
from pyservice.api.auth import ANY_ROLE, FOLLOWER, FOLLOWER_OR_PROVIDER, SECURITY
from pyservice.api.errors import ApiError, documented
from pyservice.api.public import ProviderId
from pyservice.api.schemas import (
    Amount,
    ChangeAnswer,
    Follow,
    Notifications,
    Relationship,
    Relationships,
    Settings,
    Settlements,
)
from pyservice.store import relationships, settlements
from pyservice.store.tokens import Principal

Wait = Annotated[float, Parameter(ge=0, le=changes.WAIT_MAX_S, description="seconds to wait for the engine's verdict")]
ChangeId = Annotated[int, Parameter(ge=1, le=2**63 - 1)]


def _settings(data: Settings) -> dict[str, Any]:
    return {k: v for k, v in msgspec.structs.asdict(data).items() if v is not None}


def _change(
    kind: str, me: NamedDependency[Principal], provider: str, fields: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {"type": kind, "follower": me.subject, "provider": provider, **(fields or {})}


_DOC: dict[str, Any] = {"tags": ["follower"], "security": SECURITY, "dependencies": FOLLOWER}
#: what the follower's reads answer besides 200
_READ = documented(400, 401, 403, 429)
#: a change's route: 200 applied, the RESPONSES of `changes`
_CHANGE: dict[str, Any] = {**_DOC, "status_code": 200, "responses": changes.RESPONSES}
_MONEY = "Needs an `Idempotency-Key` header: a retry with the same key returns the first answer and moves money once."


@get("/v1/me/relationships", summary="My relationships", responses=_READ, **_DOC)
async def my_relationships(request: Request[Any, Any, Any], me: NamedDependency[Principal]) -> Relationships:
    async with request.app.state.pool.acquire() as conn:
        found = await relationships.relationships(conn, request.app.state.shard, str(me.subject))
    return Relationships(str(me.subject), msgspec.convert(found, list[Relationship]))


@get(
    "/v1/me/relationships/{provider_id:str}",
    summary="One of my relationships",
    responses=documented(400, 401, 403, 404, 429),
    **_DOC,
)
async def my_relationship(
    request: Request[Any, Any, Any], me: NamedDependency[Principal], provider_id: ProviderId
) -> Relationship:
    async with request.app.state.pool.acquire() as conn:
        found = await relationships.relationships(conn, request.app.state.shard, str(me.subject), provider_id)
    if not found:
        raise ApiError(404, f"no relationship with provider '{provider_id}'")
    return msgspec.convert(found[0], Relationship)


@post("/v1/me/relationships/{provider_id:str}/follow", summary="Follow a provider", description=_MONEY, **_CHANGE)
async def follow(
    request: Request[Any, Any, Any],
    me: NamedDependency[Principal],
    provider_id: ProviderId,
    data: JSONBody[Follow],
    idempotency_key: changes.IdempotencyKey,
    wait: Wait = changes.WAIT_S,
) -> Response[ChangeAnswer]:
    fields = _settings(data)
    return await changes.submit(request, me, _change("follow", me, provider_id, fields), wait, money=True)


def _transfer(kind: str, summary: str) -> Any:
    """`deposit` or `withdraw`: an amount in or out, money-moving (Idempotency-Key)."""

    @post(f"/v1/me/relationships/{{provider_id:str}}/{kind}", summary=summary, name=kind, description=_MONEY, **_CHANGE)
    async def handler(
        request: Request[Any, Any, Any],
        me: NamedDependency[Principal],
        provider_id: ProviderId,
        data: JSONBody[Amount],
        idempotency_key: changes.IdempotencyKey,
        wait: Wait = changes.WAIT_S,
    ) -> Response[ChangeAnswer]:
        change = _change(kind, me, provider_id, {"amount": data.amount})
        return await changes.submit(request, me, change, wait, money=True)

    return handler


@post("/v1/me/relationships/{provider_id:str}/settings", summary="Change copy settings", **_CHANGE)
async def settings(
    request: Request[Any, Any, Any],
    me: NamedDependency[Principal],
    provider_id: ProviderId,
    data: JSONBody[Settings],
    wait: Wait = changes.WAIT_S,
) -> Response[ChangeAnswer]:
    return await changes.submit(request, me, _change("settings", me, provider_id, _settings(data)), wait)


def _plain(kind: str, summary: str) -> Any:
    @post(f"/v1/me/relationships/{{provider_id:str}}/{kind}", summary=summary, name=kind, **_CHANGE)
    async def handler(
        request: Request[Any, Any, Any],
        me: NamedDependency[Principal],
        provider_id: ProviderId,
        wait: Wait = changes.WAIT_S,
    ) -> Response[ChangeAnswer]:
        return await changes.submit(request, me, _change(kind, me, provider_id), wait)

    return handler


@get(
    "/v1/me/settlements",
    tags=["follower", "provider"],
    security=SECURITY,
    dependencies=FOLLOWER_OR_PROVIDER,
    responses=_READ,
)
async def my_settlements(
    request: Request[Any, Any, Any],
    me: NamedDependency[Principal],
    period: Annotated[str | None, Parameter(max_length=20, pattern=r"^[A-Za-z0-9-]+$")] = None,
) -> Settlements:
    """My settlement outcomes (as the follower or as the provider) and their totals."""
    who = {"follower": me.subject} if me.role == "follower" else {"provider": me.subject}
    async with request.app.state.pool.acquire() as conn:
        records = await settlements.statement(conn, request.app.state.shard, period, **who)
    return statement(records)


def statement(records: list[dict[str, Any]]) -> Settlements:
    rows = [{k: v for k, v in r.items() if k != "kind"} for r in records if r["kind"] == "settlement"]
    totals = [{k: v for k, v in r.items() if k != "kind"} for r in records if r["kind"] == "provider_total"]
    platform = next({k: v for k, v in r.items() if k != "kind"} for r in records if r["kind"] == "platform_total")
    return msgspec.convert(
        {"settlements": rows, "provider_totals": totals, "platform_total": {"provider": None, **platform}},
        Settlements,
    )


@get(
    "/v1/me/notifications",
    tags=["follower", "provider"],
    security=SECURITY,
    dependencies=FOLLOWER_OR_PROVIDER,
    responses=_READ,
)
async def my_notifications(
    request: Request[Any, Any, Any],
    me: NamedDependency[Principal],
    limit: Annotated[int, Parameter(ge=1, le=500)] = 100,
) -> Notifications:
    """My settlement notifications, newest first."""
    side = relationships.FOLLOWER_SIDE if me.role == "follower" else relationships.PROVIDER_SIDE
    async with request.app.state.pool.acquire() as conn:
        found = await relationships.notifications(conn, side, str(me.subject), limit)
    return msgspec.convert({"recipient": me.subject, "notifications": found}, Notifications)


@get(
    "/v1/changes/{change_id:int}",
    tags=["changes"],
    security=SECURITY,
    dependencies=ANY_ROLE,
    responses={**changes.RESPONSES, **documented(404)},
)
async def get_change(
    request: Request[Any, Any, Any], me: NamedDependency[Principal], change_id: ChangeId
) -> Response[ChangeAnswer]:
    """A control change's verdict (the token that made it, or an operator)."""
    return await changes.poll(request, me, change_id)


ROUTES = [
    my_relationships,
    my_relationship,
    follow,
    _plain("unfollow", "Stop copying (closes the copies with stop_copy_on_close)"),
    _plain("pause", "Stop copying, keep the positions"),
    _plain("resume", "Copy again after a pause"),
    settings,
    _transfer("deposit", "Add money"),
    _transfer("withdraw", "Take free cash out"),
    my_settlements,
    my_notifications,
    get_change,
]

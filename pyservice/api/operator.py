"""The operator's routes (operator token): the platform's settlement terms, a manual
settlement, every settlement, the ledger check, and API tokens."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Request, Response, delete, get, post, put
from litestar.di import NamedDependency
from litestar.params import JSONBody, Parameter

from pyservice.api import changes
from pyservice.api.auth import OPERATOR, SECURITY
from pyservice.api.errors import ApiError, documented
from pyservice.api.follower import Wait, statement
from pyservice.api.schemas import (
    ChangeAnswer,
    LedgerCheck,
    Platform,
    Settle,
    Settlements,
    TokenCreated,
    TokenInfo,
    TokenRequest,
    Tokens,
)
from pyservice.protocol import NAME_CHARS
from pyservice.store import ledger_check, settlements, tokens
from pyservice.store.tokens import Principal

_DOC: dict[str, Any] = {"tags": ["operator"], "security": SECURITY, "dependencies": OPERATOR}
Id = Annotated[str | None, Parameter(max_length=64, pattern=f"^{NAME_CHARS}$")]


@put("/v1/platform", summary="Change the platform's settlement terms", responses=changes.RESPONSES, **_DOC)
async def change_platform(
    request: Request[Any, Any, Any],
    me: NamedDependency[Principal],
    data: JSONBody[Platform],
    wait: Wait = changes.WAIT_S,
) -> Response[ChangeAnswer]:
    """The fee from the next period boundary; the schedule and the maximum share at once
    (a maximum below a provider's share is refused, naming the provider)."""
    fields = {k: v for k, v in msgspec.structs.asdict(data).items() if v is not None}
    if not fields:
        raise ApiError(422, "give platform_fee_pct, settlement or max_profit_share_pct", "invalid")
    return await changes.submit(request, me, {"type": "platform", **fields}, wait)


@post("/v1/settlements", summary="Settle now", status_code=200, responses=changes.RESPONSES, **_DOC)
async def settle(
    request: Request[Any, Any, Any], me: NamedDependency[Principal], data: JSONBody[Settle], wait: Wait = changes.WAIT_S
) -> Response[ChangeAnswer]:
    """A period given is settled once (`already_settled` after); without one, a manual
    settlement labelled `manual-<change id>`."""
    change: dict[str, Any] = {"type": "settle"}
    if data.period is not None:
        change["period"] = data.period
    return await changes.submit(request, me, change, wait)


@get(
    "/v1/settlements",
    summary="Every settlement outcome, with totals",
    responses=documented(400, 401, 403, 429),
    **_DOC,
)
async def all_settlements(
    request: Request[Any, Any, Any],
    me: NamedDependency[Principal],
    period: Annotated[str | None, Parameter(max_length=20, pattern=r"^[A-Za-z0-9-]+$")] = None,
    provider: Id = None,
    follower: Id = None,
) -> Settlements:
    async with request.app.state.pool.acquire() as conn:
        records = await settlements.statement(conn, request.app.state.shard, period, provider, follower)
    return statement(records)


@post(
    "/v1/ledger/check",
    summary="Check the ledger against the engine",
    status_code=200,
    responses=documented(401, 403, 429),
    **_DOC,
)
async def check_ledger(request: Request[Any, Any, Any], me: NamedDependency[Principal]) -> LedgerCheck:
    """`ok` false names the first difference (as `copyengine ledger check`)."""
    async with request.app.state.pool.acquire() as conn:
        try:
            s = await ledger_check.check(conn, request.app.state.shard)
        except ledger_check.Difference as exc:
            return LedgerCheck(False, 0, 0, 0, str(exc))
    return LedgerCheck(True, s.transactions, s.statements, s.relationships, None)


@get("/v1/tokens", summary="Every API token (never the token itself)", responses=documented(401, 403, 429), **_DOC)
async def list_tokens(request: Request[Any, Any, Any], me: NamedDependency[Principal]) -> Tokens:
    async with request.app.state.pool.acquire() as conn:
        return Tokens(msgspec.convert(await tokens.listing(conn), list[TokenInfo]))


@post(
    "/v1/tokens",
    summary="Create a token (shown once)",
    status_code=201,
    responses=documented(400, 401, 403, 413, 422, 429),
    **_DOC,
)
async def create_token(
    request: Request[Any, Any, Any], me: NamedDependency[Principal], data: JSONBody[TokenRequest]
) -> TokenCreated:
    async with request.app.state.pool.acquire() as conn:
        try:
            token_id, token = await tokens.create(conn, data.role, data.subject, data.days, data.label)
        except tokens.TokenError as exc:
            raise ApiError(422, str(exc), "invalid") from exc
    return TokenCreated(token_id, token, data.role, data.subject)


@delete(
    "/v1/tokens/{token_id:int}",
    summary="Revoke a token",
    status_code=204,
    responses=documented(400, 401, 403, 404, 429),
    **_DOC,
)
async def revoke_token(
    request: Request[Any, Any, Any],
    me: NamedDependency[Principal],
    token_id: Annotated[int, Parameter(ge=1, le=2**63 - 1)],
) -> None:
    async with request.app.state.pool.acquire() as conn:
        if not await tokens.revoke(conn, token_id):
            raise ApiError(404, f"no token {token_id}")


ROUTES = [change_platform, settle, all_settlements, check_ledger, list_tokens, create_token, revoke_token]

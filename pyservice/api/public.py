"""Public, read-only routes: the leaderboard, a provider's card and statistics, its
equity curve and its open trades. Every statistics answer carries the disclaimer."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Annotated, Any, Literal

import msgspec
from litestar import Request, get
from litestar.params import FromQuery, Parameter

from pyservice.api.errors import ApiError, documented
from pyservice.api.schemas import DISCLAIMER, Card, Curve, Health, Leaderboard, OpenTrades, ProviderDetail
from pyservice.protocol import NAME_CHARS
from pyservice.store import leaderboard as board
from pyservice.venue_time import format_time

Period = Literal["7d", "30d", "90d", "all"]
Sort = Literal["roi", "pnl", "copiers_pnl", "aum", "followers", "drawdown", "sharpe"]
ProviderId = Annotated[str, Parameter(max_length=64, pattern=f"^{NAME_CHARS}$")]


def filters(
    period: Period = "30d",
    sort: Sort = "roi",
    order: Literal["asc", "desc"] = "desc",
    min_aum: str | None = None,
    min_followers: int | None = None,
    max_drawdown: str | None = None,
    risk_level: Literal["low", "medium", "high"] | None = None,
    strategy: Literal["spot", "futures", "mixed"] | None = None,
    limit: int = 20,
    cursor: str | None = None,
) -> board.Filters:
    try:
        f = board.Filters(
            period=period,
            sort=sort,
            order=order,
            min_aum=board.decimal_param("min_aum", min_aum, lo=Decimal(0)),
            min_followers=min_followers,
            max_drawdown=board.decimal_param("max_drawdown", max_drawdown, lo=Decimal(0), hi=Decimal(1)),
            risk_level=risk_level,
            strategy=strategy,
            limit=limit,
            cursor=cursor,
        )
        f.check()
    except board.QueryError as exc:
        raise ApiError(400, str(exc)) from exc
    return f


class PageCache:
    """Leaderboard pages by their filters. The projector rewrites the rows at most once
    a second, so a page `ttl_s` (1 s) old is as fresh as the rows:
    - a fresh page is answered from here;
    - a page up to `stale_s` older is answered from here too while one task reads it
      again (no request waits for a popular page's read, and no burst of requests reads
      it many times);
    - otherwise one read serves every request that asks meanwhile.
    At most `size` pages, the least recently stored dropped first, so filters made up per
    request cannot grow it. `ttl_s` 0: every request reads."""

    def __init__(self, ttl_s: float, size: int = 256, stale_s: float = 5.0) -> None:
        self.ttl_s, self.size, self.stale_s = ttl_s, size, stale_s
        self.pages: OrderedDict[board.Filters, tuple[float, Leaderboard]] = OrderedDict()
        self.reading: dict[board.Filters, asyncio.Task[Leaderboard]] = {}

    def get(self, f: board.Filters, now: float) -> Leaderboard | None:
        hit = self.pages.get(f)
        return hit[1] if hit is not None and now - hit[0] < self.ttl_s else None

    def put(self, f: board.Filters, now: float, page: Leaderboard) -> None:
        if self.ttl_s <= 0:
            return
        self.pages[f] = (now, page)
        self.pages.move_to_end(f)
        while len(self.pages) > self.size:
            self.pages.popitem(last=False)

    async def page(self, f: board.Filters, read: Callable[[], Awaitable[Leaderboard]]) -> Leaderboard:
        if self.ttl_s <= 0:
            return await read()
        now = time.monotonic()
        hit = self.pages.get(f)
        if hit is not None and now - hit[0] < self.ttl_s:
            return hit[1]
        task = self.reading.get(f)
        if task is None:
            task = self.reading[f] = asyncio.create_task(self._read(f, now, read))
            # a refresh nobody awaits may fail (the database away): the next request reads again
            task.add_done_callback(lambda t: t.cancelled() or t.exception())
        if hit is not None and now - hit[0] < self.ttl_s + self.stale_s:
            return hit[1]
        return await asyncio.shield(task)

    async def _read(self, f: board.Filters, now: float, read: Callable[[], Awaitable[Leaderboard]]) -> Leaderboard:
        try:
            page = await read()
            self.put(f, now, page)
            return page
        finally:
            del self.reading[f]


async def read_leaderboard(request: Request[Any, Any, Any], f: board.Filters) -> Leaderboard:
    """A leaderboard page, through the page cache; ApiError 400 for a bad cursor."""
    pool = request.app.state.pool

    async def read() -> Leaderboard:
        async with pool.acquire() as conn:
            cards, cursor = await board.leaderboard(conn, f)
        return Leaderboard(DISCLAIMER, msgspec.convert(cards, list[Card]), cursor)

    cache: PageCache = request.app.state.leaderboard_cache
    try:
        return await cache.page(f, read)
    except board.QueryError as exc:
        raise ApiError(400, str(exc)) from exc


@get("/v1/leaderboard", tags=["public"], summary="The leaderboard", responses=documented(400, 429))
async def get_leaderboard(
    request: Request[Any, Any, Any],
    period: FromQuery[Period] = "30d",
    sort: FromQuery[Sort] = "roi",
    order: FromQuery[Literal["asc", "desc"]] = "desc",
    min_aum: Annotated[str | None, Parameter(max_length=40, description="AUM at least (decimal)")] = None,
    min_followers: Annotated[int | None, Parameter(ge=0, le=10**9)] = None,
    max_drawdown: Annotated[
        str | None, Parameter(max_length=40, description="the period's max drawdown at most, a ratio 0 to 1")
    ] = None,
    risk_level: FromQuery[Literal["low", "medium", "high"] | None] = None,
    strategy: FromQuery[Literal["spot", "futures", "mixed"] | None] = None,
    limit: Annotated[int, Parameter(ge=1, le=board.PAGE_MAX)] = 20,
    cursor: Annotated[str | None, Parameter(max_length=400)] = None,
) -> Leaderboard:
    """Providers by the period's figures, filtered and sorted; `next_cursor` fetches the
    next page (null at the end)."""
    f = filters(period, sort, order, min_aum, min_followers, max_drawdown, risk_level, strategy, limit, cursor)
    return await read_leaderboard(request, f)


@get(
    "/v1/providers/{provider_id:str}",
    tags=["public"],
    summary="A provider's card and statistics",
    responses=documented(400, 404, 429),
)
async def get_provider(request: Request[Any, Any, Any], provider_id: ProviderId) -> ProviderDetail:
    async with request.app.state.pool.acquire() as conn:
        found = await board.provider(conn, provider_id)
    if found is None:
        raise ApiError(404, f"no provider '{provider_id}' with statistics")
    return msgspec.convert({"disclaimer": DISCLAIMER, **found}, ProviderDetail)


@get(
    "/v1/providers/{provider_id:str}/equity-curve",
    tags=["public"],
    summary="A provider's equity curve",
    responses=documented(400, 404, 429),
)
async def get_curve(
    request: Request[Any, Any, Any], provider_id: ProviderId, period: FromQuery[Period] = "all"
) -> Curve:
    """The curve of a hypothetical 10,000 deposit, for the period (its first point is the
    value the period starts from)."""
    async with request.app.state.pool.acquire() as conn:
        found = await board.equity_curve(conn, provider_id, period)
    if found is None:
        raise ApiError(404, f"no provider '{provider_id}' with statistics")
    return msgspec.convert({"disclaimer": DISCLAIMER, **found}, Curve)


@get(
    "/v1/providers/{provider_id:str}/open-trades",
    tags=["public"],
    summary="A provider's open trades",
    responses=documented(400, 404, 429),
)
async def get_open_trades(request: Request[Any, Any, Any], provider_id: ProviderId) -> OpenTrades:
    async with request.app.state.pool.acquire() as conn:
        found = await board.open_trades(conn, request.app.state.shard, provider_id)
    if found is None:
        raise ApiError(404, f"no provider '{provider_id}'")
    return msgspec.convert({"disclaimer": DISCLAIMER, "provider": provider_id, "trades": found}, OpenTrades)


@get(
    "/v1/health",
    tags=["public"],
    summary="Whether the API reaches its database, and the statistics' venue time",
    responses=documented(429),
)
async def get_health(request: Request[Any, Any, Any]) -> Health:
    async with request.app.state.pool.acquire() as conn:
        at_us = await conn.fetchval("SELECT at_us FROM projection_state WHERE shard = $1", request.app.state.shard)
    return Health("ok", None if at_us is None else format_time(at_us))


ROUTES = [get_leaderboard, get_provider, get_curve, get_open_trades, get_health]

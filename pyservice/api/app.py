"""The app: routes, the one error shape, rate limits and security headers, the OpenAPI
document and its docs page, a PostgreSQL pool for its lifetime."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
from litestar import Litestar
from litestar.datastructures import State
from litestar.exceptions import HTTPException
from litestar.openapi.config import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from litestar.static_files import create_static_files_router

from pyservice.api import docs_page, follower, operator, pages, provider, public
from pyservice.api.auth import BEARER
from pyservice.api.docs_page import DocsPage, JsonDocument
from pyservice.api.errors import on_http_error, on_internal_error
from pyservice.api.middleware import RateLimits, protect
from pyservice.api.public import PageCache
from pyservice.store.migrate import migrate

STATIC = Path(__file__).with_name("static")
#: a request body larger than this is refused (413) before it is read whole
MAX_BODY = 16 * 1024


def create_app(
    dsn: str, shard: str = "main", limits: RateLimits | None = None, pool_size: int = 10, cache_s: float = 1.0
) -> Litestar:
    """`cache_s`: how long a leaderboard page is kept (`public.PageCache`; 0: never)."""

    @asynccontextmanager
    async def database(app: Litestar) -> AsyncIterator[None]:
        conn = await asyncpg.connect(dsn, timeout=10)
        try:
            await migrate(conn)
        finally:
            await conn.close()
        async with asyncpg.create_pool(dsn, min_size=1, max_size=pool_size, command_timeout=30) as pool:
            app.state.pool = pool
            yield

    app = Litestar(
        route_handlers=[
            *public.ROUTES,
            *follower.ROUTES,
            *provider.ROUTES,
            *operator.ROUTES,
            *pages.ROUTES,
            *docs_page.ROUTES,
            create_static_files_router(path="/static", directories=[STATIC], include_in_schema=False),
        ],
        lifespan=[database],
        state=State({"shard": shard, "leaderboard_cache": PageCache(cache_s)}),
        exception_handlers={HTTPException: on_http_error, Exception: on_internal_error},
        request_max_body_size=MAX_BODY,
        openapi_config=OpenAPIConfig(
            title="copyengine",
            version="1",
            description="Copy trading: the leaderboard, copy relationships, settlements. Money is decimal text.",
            path="/schema",  # not `/`: that is the web page (docs_page serves the documents)
            render_plugins=[JsonDocument(), DocsPage()],
            components=Components(security_schemes={BEARER: SecurityScheme(type="http", scheme="bearer")}),
        ),
    )
    # outside the router, not as route middleware: an unknown path or method (404, 405)
    # is limited and gets the security headers too
    app.asgi_handler = protect(limits or RateLimits())(app.asgi_handler)
    return app

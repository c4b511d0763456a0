"""`copyengine api`: the app on uvicorn (uvloop, httptools)."""

from __future__ import annotations

import logging

from pyservice.api.app import create_app
from pyservice.api.middleware import RateLimits


def serve(
    host: str, port: int, dsn: str, shard: str, limits: RateLimits, workers_pool: int = 10, cache_s: float = 1.0
) -> None:
    import uvicorn

    from pyservice import runtime

    runtime.tune_gc()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app(dsn, shard, limits, workers_pool, cache_s)
    uvicorn.run(app, host=host, port=port, loop="uvloop", http="httptools", access_log=False, log_level="info")

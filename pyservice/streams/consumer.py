"""`copyengine fills --group NAME`: an example consumer of the fills stream.

Reads with a consumer group (each entry goes to one consumer of the group), prints each
entry as one JSON line, and acknowledges it (XACK) only after it has been printed. An
entry a consumer took and never acknowledged (it died) is claimed by another after
`claim_idle_s` (XAUTOCLAIM), so nothing is left behind.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ResponseError


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def as_record(entry_id: Any, fields: dict[Any, Any]) -> dict[str, Any]:
    f = {_text(k): _text(v) for k, v in fields.items()}
    return {"id": _text(entry_id), "seq": int(f["seq"]), "kind": f["kind"], "entries": json.loads(f["entries"])}


async def consume(
    redis_url: str,
    stream: str,
    group: str,
    consumer: str | None = None,
    *,
    limit: int | None = None,
    claim_idle_s: float = 30.0,
    block_ms: int = 1000,
    out: Callable[[dict[str, Any]], None] | None = None,
) -> int:
    """Consume until `limit` entries (None: forever); returns how many were handled."""
    consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
    emit = out or (lambda rec: print(json.dumps(rec), flush=True))
    r = aioredis.from_url(redis_url)
    try:
        try:
            await r.xgroup_create(stream, group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        handled = 0
        claim_from = "0-0"
        while limit is None or handled < limit:
            # take no more than will be handled: an entry taken is this consumer's to ack
            want = 100 if limit is None else min(100, limit - handled)
            # first what a dead consumer of the group left idle, then new entries
            reply: Any = await r.xautoclaim(
                stream, group, consumer, int(claim_idle_s * 1000), start_id=claim_from, count=want
            )
            claim_from, claimed = reply[0], reply[1]
            batch: list[Any] = list(claimed)
            if not batch:
                got: Any = await r.xreadgroup(group, consumer, {stream: ">"}, count=want, block=block_ms)
                batch = [e for _, entries in got for e in entries]
            for entry_id, fields in batch:
                if fields is None:  # deleted from the stream meanwhile
                    await r.xack(stream, group, entry_id)
                    continue
                emit(as_record(entry_id, fields))
                await r.xack(stream, group, entry_id)
                handled += 1
        return handled
    finally:
        await r.aclose()


def main(redis_url: str, stream: str, group: str, consumer: str | None, limit: int | None, claim_idle_s: float) -> int:
    try:
        asyncio.run(consume(redis_url, stream, group, consumer, limit=limit, claim_idle_s=claim_idle_s))
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        print(f"cannot read the stream: {exc}", file=sys.stderr)
        return 2
    return 0

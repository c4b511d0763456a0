"""Publishes committed copy fills, rejects and stops to a Redis stream, exactly once, in order.

The source is the `outbox` view over the engine's journal in PostgreSQL: every committed `fills`
or `rejects` frame becomes one stream entry whose id is `<venue seq>-0`, and the
max-loss stops at a seq (from the projector) one entry `<venue seq>-1`. Redis refuses an
id at or below the stream's last one, so after a crash or a Redis restart the publisher
asks the stream where it stopped and goes on from there, and a re-publish is refused
rather than duplicated. Trading never waits on it: while Redis is down the backlog stays
in PostgreSQL and drains when it is back.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg
import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from pyservice._engine_core import decode_reports
from pyservice.faults import KILL
from pyservice.runtime import run_worker

log = logging.getLogger("copyengine.streams")


def default_stream(shard: str) -> str:
    """One stream per shard: entry ids are that shard's venue seqs."""
    return f"copyengine:fills:{shard}"


#: frames per round trip to PostgreSQL and Redis
BATCH = 50


@dataclass(frozen=True)
class Entry:
    seq: int
    #: 0: the venue's fills/rejects message of `seq`; 1: the max-loss stops at `seq`
    sub: int
    kind: str  # "fills", "rejects" or "stops"
    count: int
    #: JSON array of [client_order_id, qty, price], [client_order_id, reason] or
    #: [follower, provider]
    entries: bytes

    @property
    def id(self) -> str:
        return f"{self.seq}-{self.sub}"

    def fields(self, shard: str) -> dict[str | bytes, str | int | bytes]:
        return {"shard": shard, "seq": self.seq, "kind": self.kind, "count": self.count, "entries": self.entries}


def entry_id(entry_id: Any) -> tuple[int, int]:
    text = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
    seq, _, sub = text.partition("-")
    return int(seq), int(sub)


async def last_published(r: aioredis.Redis, stream: str) -> tuple[int, int]:
    """The id of the stream's newest entry as (seq, sub); (0, 1) for none."""
    newest = await r.xrevrange(stream, count=1)
    return entry_id(newest[0][0]) if newest else (0, 1)


async def ready_entries(
    conn: asyncpg.Connection, shard: str, after: tuple[int, int], max_seqs: int
) -> tuple[list[Entry], tuple[int, int]]:
    """The entries after id `after` that are final, in id order, and the position they
    take the publisher to (past seqs without entries, too).

    A message's fills or rejects are final once committed; the stops at a seq once the
    projector is past it (a control change may still be placed there until then). An
    entry waits for every one before it, so the stream stays in order.
    """
    projected = await conn.fetchval("SELECT seq FROM projection_state WHERE shard = $1", shard) or 0
    seq, sub = after
    hi = min(projected, seq + max_seqs)
    rows = await conn.fetch(
        "SELECT seq, sub, kind, payload, follower_id, provider_id FROM outbox WHERE shard = $1 AND seq <= $3 "
        "AND ((sub = 0 AND seq > $2) OR (sub = 1 AND seq >= $4 AND seq < $5)) ORDER BY seq, sub, n",
        shard,
        seq,
        hi,
        seq if sub == 0 else seq + 1,
        projected,
    )
    out = []
    stops: list[list[str]] = []
    for i, r in enumerate(rows):
        if r["sub"] == 0:
            rep = decode_reports(r["payload"])
            out.append(Entry(r["seq"], 0, rep.kind, len(rep), rep.entries_json()))
            continue
        stops.append([r["follower_id"], r["provider_id"]])
        if i + 1 == len(rows) or rows[i + 1]["seq"] != r["seq"] or rows[i + 1]["sub"] != 1:
            out.append(Entry(r["seq"], 1, "stops", len(stops), json.dumps(stops, separators=(",", ":")).encode()))
            stops = []
    # everything of the seqs below `projected` is in; at `projected`, only its report
    reached = (hi, 1) if hi < projected else (hi, 0)
    return out, max(after, reached)


#: what a publisher waits out (PostgreSQL or Redis down): the backlog stays in PostgreSQL
UNAVAILABLE = (OSError, RedisError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError)


async def keep_publishing(publish: Callable[[], Awaitable[object]], what: str, stream: str, retry_s: float) -> None:
    """Run `publish` again whenever PostgreSQL or Redis fails it, logging the pause once
    (`publish` logs the resumption). Shared by the fills and the notifications streams."""
    down = False
    while True:
        try:
            await publish()
        except UNAVAILABLE as exc:
            if not down:
                log.warning(
                    f"{what} publication paused; the backlog stays in PostgreSQL",
                    extra={"error": repr(exc), "stream": stream},
                )
            down = True
            await asyncio.sleep(retry_s)


async def add_entries(r: aioredis.Redis, stream: str, entries: list[tuple[str, Mapping[Any, Any]]]) -> list[bool]:
    """XADD each (id, fields) in one pipeline; per entry whether it was added. An id at or
    below the stream's last was published before a crash: not added, and not an error."""
    pipe = r.pipeline(transaction=False)
    for stream_id, fields in entries:
        pipe.xadd(stream, fields, id=stream_id)  # type: ignore[arg-type]  # redis' Mapping is invariant
    added = []
    for result in await pipe.execute(raise_on_error=False):
        already = isinstance(result, ResponseError) and "equal or smaller" in str(result)
        if isinstance(result, Exception) and not already:
            raise result
        added.append(not already)
    return added


class Publisher:
    def __init__(
        self,
        dsn: str,
        redis_url: str,
        shard: str = "main",
        stream: str | None = None,
        poll_s: float = 0.05,
        retry_s: float = 0.5,
    ) -> None:
        self.dsn, self.redis_url, self.shard = dsn, redis_url, shard
        self.stream = stream or default_stream(shard)
        self.poll_s, self.retry_s = poll_s, retry_s
        #: a connection before this one: the next is a resumption after a failure
        self._connected = False

    async def run(self) -> None:
        await keep_publishing(self._publish_forever, "stream", self.stream, self.retry_s)

    async def _publish_forever(self) -> None:
        r = aioredis.from_url(self.redis_url, socket_timeout=5, socket_connect_timeout=5)
        conn = await asyncpg.connect(self.dsn, timeout=10)
        try:
            done = await last_published(r, self.stream)
            if self._connected:  # a connection only ends by failing
                log.info("stream publication resumed", extra={"after": f"{done[0]}-{done[1]}", "stream": self.stream})
            self._connected = True
            while True:
                batch, reached = await ready_entries(conn, self.shard, done, BATCH)
                if not batch:
                    if reached == done:
                        await asyncio.sleep(self.poll_s)
                    done = reached
                    continue
                await add_entries(r, self.stream, [(e.id, e.fields(self.shard)) for e in batch])
                done = max((batch[-1].seq, batch[-1].sub), reached)
                KILL.passing("publish")
        finally:
            await conn.close()
            await r.aclose()


def main(argv: list[str] | None = None) -> int:
    """`python -m pyservice.streams.publisher`: the engine runs this as a child process,
    so encoding stream entries never holds up its event loop."""

    def add_arguments(p: argparse.ArgumentParser) -> None:
        p.add_argument("--redis", required=True)
        p.add_argument("--stream", help="default copyengine:fills:<shard>")

    def work(args: argparse.Namespace) -> Coroutine[Any, Any, None]:
        return Publisher(args.database, args.redis, args.shard, args.stream).run()

    return run_worker(__doc__, argv, add_arguments, work)


if __name__ == "__main__":
    import sys

    sys.exit(main())

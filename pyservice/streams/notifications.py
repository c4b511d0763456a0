"""Publishes the committed settlement notifications to a Redis stream, exactly once, in order.

The source is the `notifications` table the projector writes (one row per side of every
settlement outcome, with its step's position). Rows are keyed (seq, placed_n, n, side):
the input, the change's place in the order the engine applied changes (0 for the input's
own settlements), the outcome, the side. Every projector step commits rows above all
those committed before it (one projector per shard; a change placed after seq S is
projected after the input S and after the changes placed before it, whatever their
ids), so the committed rows grow in key order and each becomes the stream entry with the
id that encodes its key: `<seq>-<placed_n × 2^32 + n × 2 + side>`. As for the fills stream
(`streams.publisher`), Redis refuses an id at or below its last, so after a crash the
publisher asks the stream where it stopped, and a re-publish is refused, not duplicated.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

import asyncpg
import redis.asyncio as aioredis

from pyservice.runtime import run_worker
from pyservice.streams.publisher import add_entries, entry_id, keep_publishing

log = logging.getLogger("copyengine.notifications")

#: rows per round trip
BATCH = 200
#: (seq, placed_n, n, side) of nothing published
NONE = (0, -1, 0, 0)


def default_stream(shard: str) -> str:
    return f"copyengine:notifications:{shard}"


@dataclass(frozen=True)
class Notification:
    seq: int
    placed_n: int
    n: int
    side: int
    recipient: str
    kind: str
    body: str

    @property
    def key(self) -> tuple[int, int, int, int]:
        return (self.seq, self.placed_n, self.n, self.side)

    @property
    def id(self) -> str:
        return f"{self.seq}-{(self.placed_n << 32) + (self.n << 1) + self.side}"

    def fields(self, shard: str) -> dict[str | bytes, str | int | bytes]:
        return {
            "shard": shard,
            "seq": self.seq,
            "to": ("follower", "provider")[self.side],
            "recipient": self.recipient,
            "kind": self.kind,
            "body": self.body,
        }


def key_of(stream_id: Any) -> tuple[int, int, int, int]:
    seq, sub = entry_id(stream_id)
    return (seq, sub >> 32, (sub & 0xFFFFFFFF) >> 1, sub & 1)


async def last_published(r: aioredis.Redis, stream: str) -> tuple[int, int, int, int]:
    newest = await r.xrevrange(stream, count=1)
    return key_of(newest[0][0]) if newest else NONE


async def ready(
    conn: asyncpg.Connection, shard: str, after: tuple[int, int, int, int], limit: int
) -> list[Notification]:
    """The committed notifications after `after`, in key order."""
    rows = await conn.fetch(
        "SELECT seq, placed_n, n, side, recipient, kind, body::text FROM notifications "
        "WHERE shard = $1 AND (seq, placed_n, n, side) > ($2, $3, $4, $5) ORDER BY seq, placed_n, n, side LIMIT $6",
        shard,
        *after,
        limit,
    )
    return [Notification(*r) for r in rows]


class NotificationPublisher:
    def __init__(
        self,
        dsn: str,
        redis_url: str,
        shard: str = "main",
        stream: str | None = None,
        poll_s: float = 0.2,
        retry_s: float = 0.5,
    ) -> None:
        self.dsn, self.redis_url, self.shard = dsn, redis_url, shard
        self.stream = stream or default_stream(shard)
        self.poll_s, self.retry_s = poll_s, retry_s

    async def run(self) -> None:
        await keep_publishing(lambda: self.publish(forever=True), "notification", self.stream, self.retry_s)

    async def publish(self, forever: bool = False) -> int:
        """Publish what is committed (and, `forever`, what comes); the entries added."""
        r = aioredis.from_url(self.redis_url, socket_timeout=5, socket_connect_timeout=5)
        conn = await asyncpg.connect(self.dsn, timeout=10)
        added = 0
        try:
            done = await last_published(r, self.stream)
            while True:
                batch = await ready(conn, self.shard, done, BATCH)
                if not batch:
                    if not forever:
                        return added
                    await asyncio.sleep(self.poll_s)
                    continue
                added += sum(await add_entries(r, self.stream, [(e.id, e.fields(self.shard)) for e in batch]))
                done = batch[-1].key
        finally:
            await conn.close()
            await r.aclose()


def main(argv: list[str] | None = None) -> int:
    """`python -m pyservice.streams.notifications`: the engine runs this as a child process."""

    def add_arguments(p: argparse.ArgumentParser) -> None:
        p.add_argument("--redis", required=True)
        p.add_argument("--stream", help="default copyengine:notifications:<shard>")

    def work(args: argparse.Namespace) -> Coroutine[Any, Any, None]:
        return NotificationPublisher(args.database, args.redis, args.shard, args.stream).run()

    return run_worker(__doc__, argv, add_arguments, work)


if __name__ == "__main__":
    import sys

    sys.exit(main())

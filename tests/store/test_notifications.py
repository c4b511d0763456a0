"""Settlement notifications reach the Redis stream `copyengine:notifications:<shard>`
exactly once, in the rows' order: a publisher run again, or restarted after new rows,
adds only what is new (Redis on 127.0.0.1:6379)."""

import asyncio
import json
import uuid
from decimal import Decimal

import asyncpg
import pytest
import redis

from pyservice.store import ledger
from pyservice.store.journal import ensure_shard
from pyservice.store.migrate import migrate
from pyservice.streams.notifications import NotificationPublisher, key_of

REDIS = "redis://127.0.0.1:6379"


def _redis() -> redis.Redis:
    r = redis.Redis.from_url(REDIS)
    try:
        r.ping()
    except redis.ConnectionError:
        pytest.skip("no Redis on 127.0.0.1:6379")
    return r


def _record(follower: str, status: str, charged: str) -> dict:
    """Shaped as the engine's `Outcome.settlements` (no `kind`)."""
    return {
        "period": "2026-W48",
        "follower": follower,
        "provider": "P",
        "equity": "1100",
        "high_watermark": "1000",
        "profit": "100",
        "due": "30",
        "charged": charged,
        "provider_credit": str(Decimal(charged) * Decimal("0.8")),
        "platform_credit": str(Decimal(charged) * Decimal("0.2")),
        "written_off": "0",
        "status": status,
    }


def test_notifications_are_published_once_in_order(pg_dsn):
    r = _redis()
    shard = f"t{uuid.uuid4().hex[:8]}"
    stream = f"copyengine:notifications:{shard}"

    async def post(conn, point, *records):
        postings = ledger.Postings(shard)
        for rec in records:
            postings.settlement(point, rec)
        async with conn.transaction():
            await postings.post(conn)

    async def go():
        conn = await asyncpg.connect(pg_dsn)
        await migrate(conn)
        await ensure_shard(conn, shard)
        publisher = NotificationPublisher(pg_dsn, REDIS, shard)
        assert publisher.stream == stream
        await post(conn, ledger.Point(7, 0, 1), _record("a", "charged", "30"), _record("b", "deferred", "0"))
        assert await publisher.publish() == 4
        assert await publisher.publish() == 0  # again: nothing twice
        # a settle placed after seq 7 (change 4, the first placed: placed_n 1), published;
        # then change 3, committed late and placed after it (placed_n 2): its rows key
        # above those published although its id is lower, so they are published too
        await post(conn, ledger.Point(7, 4, 2, 1), _record("c", "charged", "30"))
        assert await NotificationPublisher(pg_dsn, REDIS, shard).publish() == 2
        await post(conn, ledger.Point(7, 3, 2, 2), _record("d", "charged", "30"))
        await post(conn, ledger.Point(9, 0, 3), _record("a", "charged", "30"))
        assert await NotificationPublisher(pg_dsn, REDIS, shard).publish() == 4
        await conn.close()

    try:
        asyncio.run(go())
        entries = r.xrange(stream)
        ids = [e[0].decode() for e in entries]
        assert ids == [
            "7-0", "7-1", "7-2", "7-3", f"7-{1 << 32}", f"7-{(1 << 32) + 1}", f"7-{2 << 32}", f"7-{(2 << 32) + 1}",
            "9-0", "9-1",
        ]  # fmt: skip
        assert [key_of(i) for i in ids[4:8]] == [(7, 1, 0, 0), (7, 1, 0, 1), (7, 2, 0, 0), (7, 2, 0, 1)]
        fields = [{k.decode(): v.decode() for k, v in e[1].items()} for e in entries]
        assert [(f["to"], f["recipient"]) for f in fields[:4]] == [
            ("follower", "a"),
            ("provider", "P"),
            ("follower", "b"),
            ("provider", "P"),
        ]
        body = json.loads(fields[0]["body"])
        assert body["to"] == "follower" and body["charged"] == "30" and body["provider_credit"] == "24.0"
        assert json.loads(fields[2]["body"])["status"] == "deferred"
        assert {f["shard"] for f in fields} == {shard} and {f["kind"] for f in fields} == {"settlement"}
        assert [f["recipient"] for f in fields[4:10:2]] == ["c", "d", "a"]  # in the order applied
    finally:
        r.delete(stream)

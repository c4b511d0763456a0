"""What a hostile or careless client cannot do: hold the API's connections by waiting for
verdicts, grow its memory with made-up filters or keys, reach PostgreSQL with a crafted
cursor or a NUL, pay twice by rotating tokens between retries, or see a relationship
that has ended."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from decimal import Decimal

import httpx

from pyservice.api.middleware import RateLimits
from pyservice.api.public import PageCache
from pyservice.api.schemas import DISCLAIMER, Leaderboard
from pyservice.store import leaderboard as board
from pyservice.store import tokens

from .support import auth, in_process, is_error, query


def test_waiting_requests_hold_no_connections(world, served):
    """With no engine, 12 changes asking to wait 10 s each (a pool of 10: 5 may wait at
    once) do not slow a read: the 7 beyond 5 answer 202 at once, and the 5 that wait hold
    no connection between their reads."""

    async def go() -> tuple[list[int], list[float], float]:
        async with httpx.AsyncClient(base_url=served, timeout=30) as c:
            me = auth(world, "follower")

            async def pause() -> tuple[int, float]:
                t = time.monotonic()
                r = await c.post("/v1/me/relationships/p00000/pause?wait=10", headers=me)
                return r.status_code, time.monotonic() - t

            waiting = [asyncio.create_task(pause()) for _ in range(12)]
            await asyncio.sleep(1.0)
            t = time.monotonic()
            reads = [await c.get(f"/v1/leaderboard?limit=100&min_followers={i}") for i in range(10)]
            read_s = time.monotonic() - t
            assert [r.status_code for r in reads] == [200] * 10
            answers = await asyncio.gather(*waiting)
            return [a[0] for a in answers], sorted(a[1] for a in answers), read_s

    statuses, durations, read_s = asyncio.run(go())
    assert statuses == [202] * 12
    assert read_s < 2.0  # ten reads, uncached (distinct filters), while five wait
    assert durations[6] < 2.0 and durations[7] >= 9.5, durations


def test_the_page_cache_is_bounded():
    cache = PageCache(ttl_s=60, size=3)
    page = Leaderboard(DISCLAIMER, [], None)
    for i in range(10):
        cache.put(board.Filters(min_aum=Decimal(i)), float(i), page)
    assert [f.min_aum for f in cache.pages] == [7, 8, 9]
    assert cache.get(board.Filters(min_aum=Decimal(9)), 10.0) is page
    assert cache.get(board.Filters(min_aum=Decimal(9)), 70.0) is None  # expired
    assert cache.get(board.Filters(min_aum=Decimal(1)), 10.0) is None  # dropped


def test_the_page_cache_reads_a_page_once_however_many_ask():
    """Ten requests for a page not kept: one read. Once a second old, the page is still
    answered at once while one read refreshes it; past the stale bound, they wait."""
    reads: list[int] = []

    async def go() -> None:
        cache = PageCache(ttl_s=0.2, stale_s=0.3)
        f = board.Filters()

        async def read() -> Leaderboard:
            reads.append(1)
            await asyncio.sleep(0.05)
            return Leaderboard(DISCLAIMER, [], str(len(reads)))

        pages = await asyncio.gather(*(cache.page(f, read) for _ in range(10)))
        assert {p.next_cursor for p in pages} == {"1"} and len(reads) == 1
        await asyncio.sleep(0.25)  # stale: answered at once, one refresh
        pages = await asyncio.gather(*(cache.page(f, read) for _ in range(10)))
        assert {p.next_cursor for p in pages} == {"1"} and len(reads) == 2
        await asyncio.sleep(0.1)
        assert (await cache.page(f, read)).next_cursor == "2" and len(reads) == 2
        await asyncio.sleep(0.6)  # past ttl + stale: the request waits for the read
        assert (await cache.page(f, read)).next_cursor == "3" and len(reads) == 3

    asyncio.run(go())


def test_the_rate_limiter_keeps_a_bounded_number_of_keys():
    limits = RateLimits(per_token=1, per_address=1, burst=1, keys=100)
    t = time.monotonic()
    for i in range(10_000):
        assert limits.wait(f"a:{i}", 1.0, 0.0) == 0.0
    assert len(limits.buckets) == 100 and time.monotonic() - t < 1.0
    assert limits.wait("a:9999", 1.0, 0.0) > 0  # the newest keys are kept


def _cursor(*fields: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(fields)).encode()).decode().rstrip("=")


def test_crafted_cursors_and_nuls_are_400_not_500(world):
    bad_cursors = [
        ("followers", _cursor("30d", "followers", "desc", "99999999999", "p00001")),
        ("roi", _cursor("30d", "roi", "desc", "1e999999", "p00001")),
        ("roi", _cursor("30d", "roi", "desc", "1e-99999999", "p00001")),
        ("roi", _cursor("30d", "roi", "desc", "0.5", "p\u0000x")),
        ("sharpe", _cursor("30d", "sharpe", "desc", "nan", "p00001")),
        ("roi", _cursor("30d", "roi", "desc", 5, "p00001")),
    ]
    with in_process(world.dsn) as c:
        for sort, cursor in bad_cursors:
            for path in ("/v1/leaderboard", "/"):
                r = c.get(path, params={"sort": sort, "cursor": cursor})
                assert r.status_code == 400, (path, sort, cursor, r.text)
        me, op = auth(world, "follower"), auth(world, "operator")
        for path, headers in [
            ("/v1/me/settlements?period=%00", me),
            ("/v1/settlements?provider=%00", op),
            ("/v1/settlements?follower=a%00b", op),
        ]:
            r = c.get(path, headers=headers)
            assert r.status_code == 400 and is_error(r.json()), (path, r.text)
        r = c.post("/v1/tokens", json={"role": "follower", "subject": "f9", "label": "a\u0000b"}, headers=op)
        assert r.status_code == 422 and is_error(r.json(), "invalid"), r.text
        # and a cursor this API gave still works: a Sharpe page after a page
        first = c.get("/v1/leaderboard", params={"sort": "sharpe", "limit": 5}).json()
        second = c.get("/v1/leaderboard", params={"sort": "sharpe", "limit": 5, "cursor": first["next_cursor"]})
        assert second.status_code == 200 and len(second.json()["items"]) == 5


def test_a_key_is_the_followers_across_its_tokens(world, applier):
    """A client that rotates its token between retries still deposits once, and polls
    its change with the new token."""

    async def second_token() -> str:
        import asyncpg

        conn = await asyncpg.connect(world.dsn)
        try:
            return (await tokens.create(conn, "follower", "f0", 1))[1]
        finally:
            await conn.close()

    other = asyncio.run(second_token())
    with in_process(world.dsn) as c:
        body = {"amount": "100"}
        first = c.post(
            "/v1/me/relationships/p00000/deposit?wait=5",
            json=body,
            headers=auth(world, "follower", **{"Idempotency-Key": "dep-1"}),
        )
        again = c.post(
            "/v1/me/relationships/p00000/deposit?wait=5",
            json=body,
            headers={"Authorization": f"Bearer {other}", "Idempotency-Key": "dep-1"},
        )
        assert first.status_code == again.status_code == 200 and first.json() == again.json()
        polled = c.get(first.json()["poll"], headers={"Authorization": f"Bearer {other}"})
        assert polled.status_code == 200 and polled.json() == first.json()
        # another follower's token: the change does not exist for it
        assert c.get(first.json()["poll"], headers=auth(world, "other_follower")).status_code == 404
    deposits = query(world.dsn, "SELECT count(*) AS n FROM control_changes WHERE change->>'type' = 'deposit'")
    assert deposits[0]["n"] == 1


def test_an_ended_relationship_is_gone_from_the_newest_snapshot(world):
    """f0 follows p00000 in the seeded snapshot (seq 0); a newer snapshot without it (f0
    unfollowed) hides it; f1's relationship, in both, shows from the newer one."""
    with in_process(world.dsn) as c:
        me = auth(world, "follower")
        assert c.get("/v1/me/relationships/p00000", headers=me).status_code == 200
        query(
            world.dsn,
            "INSERT INTO relationship_equity (shard, seq, follower_id, provider_id, status, cash, equity, reserved, "
            "base, fees_paid, high_watermark) VALUES ('main', 50, 'f1', 'p00001', 'paused', 1900, 1950, 0, 2000, 0, 2000)",
        )
        assert c.get("/v1/me/relationships/p00000", headers=me).status_code == 404
        assert c.get("/v1/me/relationships", headers=me).json()["relationships"] == []
        theirs = c.get("/v1/me/relationships", headers=auth(world, "other_follower")).json()["relationships"]
        assert [(r["provider"], r["status"], r["as_of_seq"], r["pnl"]) for r in theirs] == [
            ("p00001", "paused", 50, "-50")
        ]


def test_a_change_waits_while_served(world, served):
    """Over a real socket too: with no engine a change answers 202 after its wait, with
    the URL to poll."""
    r = httpx.post(f"{served}/v1/me/relationships/p00000/pause?wait=0.2", headers=auth(world, "follower"), timeout=10)
    assert r.status_code == 202 and r.headers["location"] == r.json()["poll"]

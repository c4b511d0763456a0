"""The input journal: group commits with the watermark, backpressure while PostgreSQL is
down, catching up by itself when it is back; books seeded once and read back exactly."""

import asyncio
import atexit
import json
import time
import warnings

import asyncpg
import pytest

from pyservice import books as B
from pyservice import protocol as P
from pyservice.metrics import EngineMetrics
from pyservice.replay import ScenarioError
from pyservice.store import books
from pyservice.store.journal import Journal, RecoveryError, committed_inputs, ensure_shard
from pyservice.store.migrate import migrate


async def _prepared(dsn):
    conn = await asyncpg.connect(dsn)
    await migrate(conn)
    return conn


def _exec(seq, exec_id="x1"):
    m = P.ProviderExecution(seq, 0, "alpha", exec_id, "BTCUSDT", "buy", "0.5", "60000", "1000", 2)
    return m, P.encode(m)[4:]


async def _all(conn, shard="main"):
    return [
        (s, bytes(p))
        async for s, p in committed_inputs(
            conn, shard, await conn.fetchval("SELECT watermark FROM engine_state WHERE shard = $1", shard)
        )
    ]


def test_group_commit_keeps_every_input_and_the_watermark(pg_dsn):
    async def go():
        conn = await _prepared(pg_dsn)
        j = Journal(pg_dsn, "main", await ensure_shard(conn, "main"), EngineMetrics())
        j.session = "venue-1"
        task = asyncio.create_task(j.run())
        frames = []
        for seq in range(1, 201):
            msg, payload = _exec(seq, f"x{seq}")
            frames.append((seq, payload))
            j.append(seq, "exec", payload, msg if seq % 2 else None)
            if seq % 50 == 0:
                await asyncio.sleep(0)  # let some commits happen in between
        assert await j.flush(10)
        task.cancel()
        assert await _all(conn) == frames
        row = await conn.fetchrow("SELECT venue_session, watermark FROM engine_state")
        assert (row["venue_session"], row["watermark"]) == ("venue-1", 200)
        # provider statistics get the accepted executions, exactly
        got = await conn.fetch(
            "SELECT seq, exec_id, qty::text, price::text, provider_equity::text, leverage "
            "FROM provider_executions ORDER BY seq"
        )
        assert [tuple(r) for r in got] == [(s, f"x{s}", "0.5", "60000", "1000", 2) for s in range(1, 201, 2)]
        await conn.close()

    asyncio.run(go())


def test_replay_refuses_a_gap_or_a_short_journal(pg_dsn):
    async def go():
        conn = await _prepared(pg_dsn)
        await ensure_shard(conn, "main")
        for seq in (1, 2, 4):
            await conn.execute("INSERT INTO engine_inputs VALUES ('main', $1, 'exec', $2)", seq, _exec(seq)[1])
        await conn.execute("UPDATE engine_state SET watermark = 4")
        with pytest.raises(RecoveryError, match="has seq 4 where 3 belongs"):
            await _all(conn)
        await conn.execute("DELETE FROM engine_inputs WHERE seq = 4")
        with pytest.raises(RecoveryError, match="ends at seq 2, its watermark is 4"):
            await _all(conn)
        await conn.close()

    asyncio.run(go())


def test_postgres_down_pauses_the_venue_and_commits_resume_when_it_is_back(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

    data = tmp_path / "pg"
    server = pgserver.get_server(data, cleanup_mode="stop")
    dsn = server.get_uri()

    async def go():
        conn = await _prepared(dsn)
        committed = await ensure_shard(conn, "main")
        await conn.close()
        pressure = []
        j = Journal(dsn, "main", committed, EngineMetrics(), high_water=4000, low_water=1000, retry_s=0.05)
        j.on_pressure(pressure.append)
        task = asyncio.create_task(j.run())
        frames = [(seq, _exec(seq, f"x{seq}")[1]) for seq in range(1, 301)]
        for seq, payload in frames[:10]:
            j.append(seq, "exec", payload)
        assert await j.flush(10) and j.committed == 10
        server.cleanup()  # PostgreSQL goes away
        down_at = time.monotonic()
        for seq, payload in frames[10:]:
            j.append(seq, "exec", payload)
        await asyncio.sleep(0.5)
        assert pressure == [True] and j.paused and j.committed == 10
        # one failure per attempt, and the attempts are retry_s (0.05 s) apart
        failures = j.metrics.commit_failures._value.get()
        assert 1 <= failures <= (time.monotonic() - down_at) // 0.05 + 1
        restarted = pgserver.get_server(data, cleanup_mode="stop")  # back, same data
        try:
            for _ in range(200):
                if not j.paused and j.committed == 300:
                    break
                await asyncio.sleep(0.05)
            assert pressure == [True, False] and j.committed == 300 and j.uncommitted == 0
            task.cancel()
            conn = await asyncpg.connect(dsn)
            assert await _all(conn) == frames
            await conn.close()
        finally:
            restarted.cleanup()
            atexit.unregister(restarted._cleanup)  # pgserver would log again at exit
            atexit.unregister(server._cleanup)

    asyncio.run(go())


def test_books_are_seeded_once_and_read_back_in_follow_order(pg_dsn):
    doc = B.demo_books(3, 40)
    text = json.dumps(doc)

    async def go():
        conn = await _prepared(pg_dsn)
        assert not await books.has_books(conn)
        assert await books.seed_books(conn, text) == 40
        stored = await books.load_books(conn)
        assert json.loads(stored)["follows"] == doc["follows"]
        assert [p["id"] for p in json.loads(stored)["providers"]] == [p["id"] for p in doc["providers"]]
        assert books.same_books(stored, text)
        other = dict(doc, follows=doc["follows"][:-1])
        assert not books.same_books(stored, json.dumps(other))
        with pytest.raises(books.BooksError, match="already holds follower books"):
            await books.seed_books(conn, json.dumps(other))
        await conn.close()

    asyncio.run(go())


def test_invalid_books_are_refused_and_nothing_is_stored(pg_dsn):
    async def go():
        conn = await _prepared(pg_dsn)
        bad = json.dumps(
            {"providers": [{"id": "a"}], "follows": [{"follower": "x", "provider": "a", "allocation": "-5"}]}
        )
        with pytest.raises(ScenarioError):
            await books.seed_books(conn, bad)
        assert not await books.has_books(conn)
        await conn.close()

    asyncio.run(go())


def test_a_second_writer_is_fenced_off(pg_dsn):
    """Another engine moved the watermark: this journal refuses to write over it."""
    from pyservice.store.journal import JournalFenced

    async def go():
        conn = await _prepared(pg_dsn)
        j = Journal(pg_dsn, "main", await ensure_shard(conn, "main"), EngineMetrics())
        j.append(1, "exec", _exec(1)[1])
        assert await j.flush(10) and j.committed == 1
        await conn.execute("INSERT INTO engine_inputs VALUES ('main', 2, 'exec', $1)", _exec(2, "y")[1])
        await conn.execute("UPDATE engine_state SET watermark = 2")  # the other engine
        j.committed = 1  # this one still believes 1
        j.append(2, "exec", _exec(2, "x2")[1])
        with pytest.raises((JournalFenced, asyncpg.IntegrityConstraintViolationError)):
            await j.flush(10)
        assert [s for s, _ in await _all(conn)] == [1, 2]
        assert bytes((await conn.fetchrow("SELECT payload FROM engine_inputs WHERE seq = 2"))[0]) == _exec(2, "y")[1]
        await conn.close()

    asyncio.run(go())

"""The copy fills stream: every committed fills/rejects frame appears in Redis exactly once,
in order, through a Redis restart and SIGKILLs of the engine (some mid-publish); the
example consumer reads it with a consumer group and takes over what a dead one left."""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import msgspec
import pytest
import redis
from venue_traffic import bots_for, free_port, trade, venue_key

from pyservice import books as B
from pyservice import protocol as P
from pyservice._engine_core import LiveEngine
from pyservice.dispatch import apply_venue_message
from pyservice.venue_sim import fixed
from pyservice.venue_sim.config import DEFAULT_INSTRUMENTS, Books, VenueConfig
from pyservice.venue_sim.venue import VenueSim

STREAM = "copyengine:fills:main"

if shutil.which("redis-server") is None:
    if os.environ.get("CI") == "true":
        raise RuntimeError("CI needs redis-server on PATH for the stream tests")
    pytest.skip("redis-server is not installed (CI installs it; nothing skips there)", allow_module_level=True)


class RedisServer:
    """A private redis-server with an append-only file, so a restart keeps the stream."""

    def __init__(self, directory: Path) -> None:
        self.dir, self.port = directory, free_port()
        self.url = f"redis://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.dir),
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(100):
            try:
                redis.Redis(port=self.port).ping()
                return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()


@pytest.fixture
def redis_server(tmp_path: Path):
    d = tmp_path / "redis"
    d.mkdir()
    server = RedisServer(d)
    server.start()
    try:
        yield server
    finally:
        if server.proc is not None and server.proc.poll() is None:
            server.kill()


def _stream(url: str) -> list[tuple[str, dict[str, str]]]:
    r = redis.Redis.from_url(url, decode_responses=True)
    return [(i, f) for i, f in r.xrange(STREAM)]


async def _run(tmp: Path, dsn: str, rs: RedisServer, seed: int) -> list[P.VenueMessage]:
    books_doc = B.demo_books(2, 60, seed)
    books = B.write(books_doc, tmp / "books.json")
    addr = f"tcp://127.0.0.1:{free_port()}"
    key_file, key = venue_key(tmp)
    cmd = [
        sys.executable,
        "-m",
        "pyservice.cli",
        "engine",
        "--books",
        str(books),
        "--database",
        dsn,
        "--listen",
        addr,
        "--venue-key-file",
        key_file,
        "--heartbeat",
        "0.05",
        "--redis",
        rs.url,
    ]
    log_file = open(tmp / "engine.log", "ab")
    venue = VenueSim(
        VenueConfig(
            connect=addr,
            key=key,
            rate=0,
            mark_interval=0,
            books=msgspec.convert(books_doc, Books),
            heartbeat=0.05,
            partial_fill_pct=30,
            seed=seed,
        )
    )
    bots = bots_for(books_doc, seed)
    rnd = random.Random(seed)
    stop = asyncio.Event()

    def start(kill_at: str | None = None) -> subprocess.Popen[bytes]:
        env = {k: v for k, v in os.environ.items() if k != "COPYENGINE_KILL_AT"}
        if kill_at:
            env["COPYENGINE_KILL_AT"] = kill_at
        return subprocess.Popen(cmd, stderr=log_file, env=env)

    async def up(proc: subprocess.Popen[bytes]) -> None:
        for _ in range(600):
            if venue.connected or proc.poll() is not None:
                return
            await asyncio.sleep(0.05)

    runner = asyncio.create_task(venue.run())
    # marks move often: max-loss stops some relationships
    producer = asyncio.create_task(trade(venue, bots, stop, marks_every=5, pause_s=0.005))
    proc = start()
    try:
        await up(proc)
        await asyncio.sleep(0.5)
        rs.kill()  # Redis goes away mid-run: trading goes on
        await asyncio.sleep(0.7)
        assert proc.poll() is None and venue.connected
        rs.start()
        # a crash in every market: followers with a max-loss are stopped (stream entries too)
        ticks = {s.instrument.symbol: fixed.parse(s.instrument.tick) for s in DEFAULT_INSTRUMENTS}
        for factor in ((1, 3), (3, 1)):  # down to a third (longs), then back up threefold (shorts)
            for symbol, mark in list(venue.matcher.marks.items()):
                moved = mark * factor[0] // factor[1] // ticks[symbol] * ticks[symbol]
                venue.publish(P.MarkPrice(0, 0, symbol, fixed.format(moved)))
            await asyncio.sleep(0.2)
        for step in range(4):
            await asyncio.sleep(rnd.uniform(0.2, 0.5))
            proc.kill()
            proc.wait()
            while venue.connected:
                await asyncio.sleep(0.01)
            proc = start(f"publish:{rnd.randint(1, 3)}" if step % 2 == 0 else None)  # some die mid-publish
            await up(proc)
            if proc.poll() is not None:  # it reached its kill point
                assert proc.returncode == -signal.SIGKILL
                proc = start()
                await up(proc)
        stop.set()
        await producer
        # one more entry (the marks as they are): the stops at the last seq become final
        await asyncio.sleep(0.3)
        for symbol, mark in venue.matcher.marks.items():
            venue.publish(P.MarkPrice(0, 0, symbol, fixed.format(mark)))
        r = redis.Redis.from_url(rs.url)
        quiet = 0  # everything applied, and the stream still for a second
        while quiet < 10:
            length = r.xlen(STREAM)
            await asyncio.sleep(0.1)
            quiet = (
                quiet + 1
                if (venue.stats.engine_applied_seq == venue.log.newest and r.xlen(STREAM) == length > 0)
                else 0
            )
        proc.terminate()
        assert proc.wait(20) == 0
    finally:
        stop.set()
        if proc.poll() is None:
            proc.kill()
        venue.stop()
        await runner
    return venue.log.entries()


def test_every_fill_is_in_the_stream_exactly_once_in_order(
    tmp_path: Path, pg_dsn: str, redis_server: RedisServer
) -> None:
    log = asyncio.run(_run(tmp_path, pg_dsn, redis_server, seed=5))
    # what an engine that never stopped reports: the venue's answers, and its own stops
    engine = LiveEngine.from_books((tmp_path / "books.json").read_text())
    expected: list[tuple[str, str, list[list[str]]]] = []
    for e in log:
        stopped = apply_venue_message(engine, e).stopped
        if isinstance(e, P.CopyFills):
            expected.append((f"{e.seq}-0", "fills", [list(f) for f in e.fills]))
        elif isinstance(e, P.CopyRejects):
            expected.append((f"{e.seq}-0", "rejects", [list(x) for x in e.rejects]))
        if stopped and e.seq < log[-1].seq:
            expected.append((f"{e.seq}-1", "stops", [list(x) for x in stopped]))
    got = [(i, f["kind"], json.loads(f["entries"])) for i, f in _stream(redis_server.url)]
    assert got == expected
    assert sum(len(x) for _, k, x in got if k == "fills") > 500
    assert any(k == "stops" for _, k, _ in got)


def test_the_consumer_group_reads_acks_and_claims_what_a_dead_consumer_left(redis_server: RedisServer) -> None:
    r = redis.Redis.from_url(redis_server.url)
    for seq in range(1, 8):
        r.xadd(
            STREAM,
            {"seq": seq, "kind": "fills", "count": 1, "entries": json.dumps([[f"c{seq}", "1", "2"]])},
            id=f"{seq}-0",
        )
    cli = [sys.executable, "-m", "pyservice.cli", "fills", "--redis", redis_server.url, "--group", "g"]
    first = subprocess.run([*cli, "--consumer", "a", "--count", "3"], capture_output=True, text=True, timeout=30)
    assert first.returncode == 0, first.stderr
    assert [json.loads(x)["seq"] for x in first.stdout.splitlines()] == [1, 2, 3]
    # consumer "dead" takes two entries and dies without acknowledging them
    taken = r.xreadgroup("g", "dead", {STREAM: ">"}, count=2)
    assert [i for i, _ in taken[0][1]] == [b"4-0", b"5-0"]
    time.sleep(0.2)
    second = subprocess.run(
        [*cli, "--consumer", "b", "--count", "4", "--claim-idle", "0.1"], capture_output=True, text=True, timeout=30
    )
    assert second.returncode == 0, second.stderr
    assert [json.loads(x)["seq"] for x in second.stdout.splitlines()] == [4, 5, 6, 7]
    assert r.xpending(STREAM, "g")["pending"] == 0
    record = json.loads(second.stdout.splitlines()[0])
    assert record == {"id": "4-0", "seq": 4, "kind": "fills", "entries": [["c4", "1", "2"]]}

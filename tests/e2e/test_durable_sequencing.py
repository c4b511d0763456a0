"""The durable engine against a hand-driven venue: a duplicate message is applied once,
a gap drops the connection, the journal holds each seq once, and a restart resumes
from the watermark + 1 for the same venue session only (the session of the first applied
message, not of the first hello). Venue time: an entry stamped earlier than its
predecessor is taken at the engine's time, counted and logged, and recovery from the
journal reaches the same clock."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import asyncpg
from venue_traffic import free_port, signed_hello, venue_key

from pyservice import books as B
from pyservice import protocol as P
from pyservice.store.recovery import recover_engine


class Venue:
    """One connection, spoken by hand."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.frames = P.engine_reader()
        self.got: list[P.EngineMessage] = []

    @classmethod
    async def connect(cls, port: int) -> Venue:
        for _ in range(200):
            try:
                return cls(*await asyncio.open_connection("127.0.0.1", port))
            except OSError:
                await asyncio.sleep(0.05)
        raise AssertionError("the engine is not listening")

    def send(self, *msgs: P.VenueMessage | P.Hello) -> None:
        self.writer.write(b"".join(P.encode(m) for m in msgs))

    async def hello(self, key: bytes, seq: int, session: str) -> P.Resume:
        """Answer the engine's challenge; its resume."""
        self.send(signed_hello(key, await self.until(P.Challenge), seq, session))
        resume = await self.until(P.Resume)
        assert isinstance(resume, P.Resume)
        return resume

    async def until(self, want: type, pred=lambda m: True, timeout: float = 10) -> P.EngineMessage:
        async with asyncio.timeout(timeout):
            while True:
                for i, m in enumerate(self.got):
                    if isinstance(m, want) and pred(m):
                        del self.got[: i + 1]
                        return m
                data = await self.reader.read(1 << 16)
                if not data:
                    raise ConnectionError(f"closed; unmatched: {self.got[-5:]}")
                self.got.extend(self.frames.feed(data))

    async def closed(self, timeout: float = 10) -> bool:
        async with asyncio.timeout(timeout):
            while await self.reader.read(1 << 16):
                pass
        return True


#: venue times (µs) by seq: 3 and 5 are earlier than their predecessors
TS = {1: 1_000, 2: 3_000, 3: 2_000, 4: 5_000, 5: 4_000}


def _exec(seq: int, exec_id: str) -> P.ProviderExecution:
    return P.ProviderExecution(seq, TS[seq], "alpha", exec_id, "BTCUSDT", "buy", "0.1", "60000", "1000000")


async def _scenario(tmp: Path, dsn: str) -> None:
    books = B.write(
        {
            "version": 1,
            "providers": [{"id": "alpha"}],
            "follows": [{"follower": f"f{i}", "provider": "alpha", "allocation": "100000"} for i in range(3)],
        },
        tmp / "books.json",
    )
    port = free_port()
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
        "--heartbeat",
        "0.05",
        "--venue-key-file",
        key_file,
        "--listen",
        f"tcp://127.0.0.1:{port}",
    ]
    proc = subprocess.Popen(cmd, stderr=open(tmp / "engine.log", "wb"))
    try:
        # a hello alone pins no session: "early" applies nothing, so "s1" may follow it
        early = await Venue.connect(port)
        assert (await early.hello(key, 7, "early")).from_seq == 1
        early.writer.close()
        v = await Venue.connect(port)
        assert (await v.hello(key, 0, "s1")).from_seq == 1
        instrument = P.Instrument(1, TS[1], "BTCUSDT", "spot", "0.01", "0.00001", "0.00001", "5")
        v.send(instrument, P.MarkPrice(2, TS[2], "BTCUSDT", "60000"), _exec(3, "x1"), _exec(3, "x1"))
        orders = await v.until(P.NewOrders)
        assert orders.seq == 3 and len(orders.orders) == 3
        v.send(_exec(5, "x3"))  # seq 4 is missing: a gap
        assert await v.closed()
        v = await Venue.connect(port)
        assert (await v.hello(key, 5, "s1")).from_seq == 4
        v.send(_exec(4, "x2"), _exec(5, "x3"), _exec(3, "x1"))  # and seq 3 once more: ignored
        assert (await v.until(P.NewOrders, lambda m: m.seq == 5)).seq == 5
        await v.until(P.Heartbeat, lambda m: m.seq == 5)
        v.writer.close()
        proc.terminate()  # a clean stop commits what it applied
        assert proc.wait(20) == 0

        conn = await asyncpg.connect(dsn)
        rows = await conn.fetch("SELECT seq, kind FROM engine_inputs ORDER BY seq")
        assert [tuple(r) for r in rows] == [(1, "instrument"), (2, "mark"), (3, "exec"), (4, "exec"), (5, "exec")]
        assert await conn.fetchval("SELECT watermark FROM engine_state") == 5
        assert [r[0] for r in await conn.fetch("SELECT exec_id FROM provider_executions ORDER BY seq")] == [
            "x1",
            "x2",
            "x3",
        ]
        # the journal holds the payloads as they came, so recovery meets the same times
        # and corrects them the same way: the clock at the latest time, two corrections
        books_text = (tmp / "books.json").read_text()

        async def seed() -> str:
            return books_text

        recovered = await recover_engine(conn, "main", 5, seed)
        assert (recovered.engine.now_us, recovered.engine.clock_corrections) == (5_000, 2)
        await conn.close()
        corrections = [line for line in (tmp / "engine.log").read_text().splitlines() if "venue time went back" in line]
        assert [c.split("venue time went back", 1)[1].split(" ", 1)[1] for c in corrections] == [
            "the entry counts at the engine's time seq=3 ts=2000 taken=3000",
            "the entry counts at the engine's time seq=5 ts=4000 taken=5000",
        ]

        proc = subprocess.Popen(cmd, stderr=open(tmp / "engine2.log", "wb"))
        v = await Venue.connect(port)
        # one engine per shard: a second one on the same database refuses to start
        second = subprocess.run(
            [*cmd[:-2], "--listen", f"tcp://127.0.0.1:{free_port()}"], capture_output=True, text=True, timeout=60
        )
        assert (second.returncode, second.stderr.strip().splitlines()[-1]) == (
            2,
            "cannot start: shard 'main' belongs to another running engine",
        )
        # another venue log, signed with the key: refused, the journal pinned "s1"
        v.send(signed_hello(key, await v.until(P.Challenge), 9, "other-session"))
        assert await v.closed()
        v = await Venue.connect(port)
        assert (await v.hello(key, 5, "s1")).from_seq == 6
        recovered_line = next(
            line for line in (tmp / "engine2.log").read_text().splitlines() if "state recovered" in line
        )
        assert "now_us=5000" in recovered_line.split()
    finally:
        proc.terminate()
        proc.wait(20)


def test_duplicates_gaps_and_restart_against_the_journal(tmp_path: Path, pg_dsn: str) -> None:
    asyncio.run(_scenario(tmp_path, pg_dsn))

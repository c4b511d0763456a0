"""`copyengine follow|unfollow|deposit|withdraw` against a running durable engine: the
same rules and messages as replay, committed first, applied at a recorded point; bad
input changes nothing."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import asyncpg
import msgspec
from venue_traffic import free_port, venue_key

from pyservice import books as B
from pyservice import protocol as P
from pyservice.venue_sim import fixed
from pyservice.venue_sim.config import Books, VenueConfig
from pyservice.venue_sim.venue import VenueSim

CLI = [sys.executable, "-m", "pyservice.cli"]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=60)


async def _scenario(tmp: Path, dsn: str) -> None:
    books_doc = {
        "version": 1,
        "providers": [{"id": "alpha"}],
        "follows": [{"follower": "f1", "provider": "alpha", "allocation": "1000"}],
    }
    books = B.write(books_doc, tmp / "books.json")
    addr = f"tcp://127.0.0.1:{free_port()}"
    key_file, key = venue_key(tmp)
    engine = subprocess.Popen(
        [
            *CLI,
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
        ],
        stderr=open(tmp / "engine.log", "wb"),
    )
    venue = VenueSim(
        VenueConfig(
            connect=addr,
            key=key,
            rate=0,
            mark_interval=0,
            heartbeat=0.05,
            seed=1,
            books=msgspec.convert(books_doc, Books),
            record=str(tmp / "orders.jsonl"),
        )
    )
    venue.matcher.open_account("f2", "alpha", fixed.parse("1000000", fixed.MONEY_DIGITS))
    runner = asyncio.create_task(venue.run())
    db = ["--database", dsn]

    async def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return await asyncio.to_thread(_cli, *args)

    async def orders_for(exec_id: str, side: P.Side) -> list[dict[str, object]]:
        before = venue.stats.orders_received
        venue.publish(P.ProviderExecution(0, 0, "alpha", exec_id, "BTCUSDT", side, "0.1", "60000", "10000"))
        for _ in range(200):
            await asyncio.sleep(0.02)
            if venue.stats.orders_received > before and venue.stats.engine_applied_seq == venue.log.newest:
                break
        await asyncio.sleep(0.1)
        lines = [json.loads(x) for x in (tmp / "orders.jsonl").read_text().splitlines()]
        return lines[before:]  # the record has one line per order received, in order

    try:
        for _ in range(200):
            if venue.connected:
                break
            await asyncio.sleep(0.05)
        assert venue.connected, (tmp / "engine.log").read_text()
        first = await orders_for("x1", "buy")
        assert {o["follower"] for o in first} == {"f1"}

        ok = await cli("follow", "f2", "alpha", "--allocation", "2000", "--max-loss-pct", "20", *db)
        assert ok.returncode == 0, ok.stderr
        assert ok.stdout.startswith("change 1 applied after seq ")
        second = await orders_for("x2", "buy")
        # f2 copies from here, proportionally: 0.1 × 2000 / 10000
        assert {o["follower"] for o in second} == {"f1", "f2"}
        assert [o["qty"] for o in second if o["follower"] == "f2"] == ["0.02"]

        # refused by the rules for the state it meets: the replay's messages
        again = await cli("follow", "f2", "alpha", "--allocation", "5", *db)
        assert (again.returncode, again.stderr.strip()) == (2, "refused: 'f2' already follows 'alpha'")
        stranger = await cli("deposit", "nobody", "alpha", "5", *db)
        assert (stranger.returncode, stranger.stderr.strip()) == (2, "refused: 'nobody' does not follow 'alpha'")

        # invalid on its own: refused before anything is stored
        for args, message in [
            (("follow", "f3", "alpha", "--allocation", "-5"), "invalid: field 'allocation' must be positive"),
            (("follow", "f3", "alpha", "--allocation", "NaN"), "invalid: field 'allocation' "),
            (("withdraw", "f1", "alpha", "1.0000000000000000001"), "invalid: field 'amount' "),
            (("follow", "bad name!", "alpha", "--allocation", "5"), "invalid: field 'follower' "),
        ]:
            bad = await cli(*args, *db)
            assert bad.returncode == 2 and bad.stderr.startswith(message), (args, bad.stderr)
        conn = await asyncpg.connect(dsn)
        assert await conn.fetchval("SELECT count(*) FROM control_changes") == 3
        await conn.close()

        # unfollow closes the copied position (stop_copy_on_close defaults to true)
        gone = await cli("unfollow", "f2", "alpha", *db)
        assert gone.returncode == 0, gone.stderr
        closes: list[dict[str, object]] = []
        for _ in range(100):
            lines = [json.loads(x) for x in (tmp / "orders.jsonl").read_text().splitlines()]
            closes = [x for x in lines if x["follower"] == "f2" and x["reduce_only"]]
            if closes:
                break
            await asyncio.sleep(0.02)
        assert [(c["side"], c["type"], c["qty"]) for c in closes] == [("sell", "market", "0.02")]
        third = await orders_for("x3", "sell")
        assert {o["follower"] for o in third} == {"f1"}

        # paused: nothing is copied; resumed: copied again; settings change what they name
        assert (await cli("pause", "f1", "alpha", *db)).returncode == 0
        assert await orders_for("x4", "buy") == []
        again_paused = await cli("pause", "f1", "alpha", *db)
        assert (again_paused.returncode, again_paused.stderr.strip()) == (
            2,
            "refused: 'f1' copying 'alpha' is already paused",
        )
        assert (await cli("resume", "f1", "alpha", *db)).returncode == 0
        assert (await cli("deposit", "f1", "alpha", "1000", *db)).returncode == 0
        assert {o["follower"] for o in await orders_for("x5", "buy")} == {"f1"}
        changed = await cli("settings", "f1", "alpha", "--mode", "multiplier", "--multiplier", "3", *db)
        assert changed.returncode == 0, changed.stderr
        nothing = await cli("settings", "f1", "alpha", *db)
        assert (nothing.returncode, nothing.stderr.strip()) == (2, "invalid: settings names no setting")

        # no engine for this shard: committed, reported pending
        queued = await cli("deposit", "f1", "alpha", "5", *db, "--shard", "other", "--wait", "0.3")
        assert queued.returncode == 3 and "no engine applied it" in queued.stdout
    finally:
        engine.terminate()
        engine.wait(20)
        venue.stop()
        await runner


def test_control_commands_against_a_running_engine(tmp_path: Path, pg_dsn: str) -> None:
    asyncio.run(_scenario(tmp_path, pg_dsn))

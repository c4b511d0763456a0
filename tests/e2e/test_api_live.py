"""The HTTP API against a running durable engine and venue: a follower follows through
`POST /v1/.../follow` and the engine applies it (copies start), a retry with its
Idempotency-Key moves nothing, a refusal carries the rules' message, the follower's
relationship shows its money from the engine's snapshot, the provider's trade reaches the
public leaderboard, and the operator settles and checks the ledger."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import asyncpg
import httpx
import msgspec
from api.support import api_process
from venue_traffic import free_port, venue_key

from pyservice import books as B
from pyservice import protocol as P
from pyservice.venue_sim import fixed
from pyservice.venue_sim.config import Books, VenueConfig
from pyservice.venue_sim.venue import VenueSim

CLI = [sys.executable, "-m", "pyservice.cli"]


def _token(dsn: str, *args: str) -> str:
    out = subprocess.run(
        [*CLI, "token", "create", *args, "--database", dsn], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines()[-1]


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
        [*CLI, "engine", "--books", str(books), "--database", dsn, "--listen", addr, "--venue-key-file", key_file,
         "--heartbeat", "0.05", "--snapshot-interval", "0.5"],
        stderr=open(tmp / "engine.log", "wb"),
    )  # fmt: skip
    venue = VenueSim(
        VenueConfig(
            connect=addr, key=key, rate=0, mark_interval=0, heartbeat=0.05, seed=1,
            books=msgspec.convert(books_doc, Books), record=str(tmp / "orders.jsonl"),
        )
    )  # fmt: skip
    venue.matcher.open_account("f2", "alpha", fixed.parse("1000000", fixed.MONEY_DIGITS))  # the venue's side
    runner = asyncio.create_task(venue.run())
    api = contextlib.ExitStack()
    try:
        for _ in range(300):
            if venue.connected:
                break
            await asyncio.sleep(0.05)
        assert venue.connected, (tmp / "engine.log").read_text()
        follower = await asyncio.to_thread(_token, dsn, "follower", "f2")
        operator = await asyncio.to_thread(_token, dsn, "operator")
        # started in a thread: the venue's heartbeats go on meanwhile
        base = await asyncio.to_thread(api.enter_context, api_process(dsn, tmp / "api.log", "--cache", "0"))
        async with httpx.AsyncClient(base_url=base, timeout=15) as http:
            me = {"Authorization": f"Bearer {follower}"}
            op = {"Authorization": f"Bearer {operator}"}
            follow = {"allocation": "2000", "max_loss_pct": "20"}
            first = await http.post(
                "/v1/me/relationships/alpha/follow?wait=10", json=follow, headers={**me, "Idempotency-Key": "f-1"}
            )
            assert first.status_code == 200, first.text
            answer = first.json()
            assert answer["status"] == "applied" and isinstance(answer["after_seq"], int)
            again = await http.post(
                "/v1/me/relationships/alpha/follow?wait=10", json=follow, headers={**me, "Idempotency-Key": "f-1"}
            )
            assert (again.status_code, again.json()) == (200, answer)
            refused = await http.post(
                "/v1/me/relationships/alpha/follow?wait=10", json=follow, headers={**me, "Idempotency-Key": "f-2"}
            )
            assert refused.status_code == 409
            assert refused.json() == {"error": {"code": "refused", "message": "'f2' already follows 'alpha'"}}
            conn = await asyncpg.connect(dsn)
            rows = await conn.fetch("SELECT change->>'type', token_id FROM control_changes ORDER BY id")
            assert [r[0] for r in rows] == ["follow", "follow"] and all(r[1] is not None for r in rows)

            # the follow took effect in the engine: f2 copies the next execution, 0.1 × 2000 / 10000
            orders: list[dict[str, object]] = []

            async def copies_of_f2(n: int) -> None:
                nonlocal orders
                for _ in range(200):
                    await asyncio.sleep(0.05)
                    orders = [json.loads(x) for x in (tmp / "orders.jsonl").read_text().splitlines()]
                    if (
                        len([o for o in orders if o["follower"] == "f2"]) == n
                        and venue.stats.engine_applied_seq == venue.log.newest
                    ):
                        return

            venue.publish(P.ProviderExecution(0, 0, "alpha", "x1", "BTCUSDT", "buy", "0.1", "60000", "10000"))
            await copies_of_f2(1)  # and filled: the engine has applied the venue's fills
            venue.publish(P.ProviderExecution(0, 0, "alpha", "x2", "BTCUSDT", "sell", "0.1", "61000", "10100"))
            await copies_of_f2(2)
            assert [(o["side"], o["qty"]) for o in orders if o["follower"] == "f2"] == [
                ("buy", "0.02"),
                ("sell", "0.02"),
            ]

            # the follower's relationship from the engine's snapshot: flat again, with a
            # profit of 0.02 × (61000 − 60000) = 20 before fees
            rel: dict[str, object] = {}
            for _ in range(100):
                got = await http.get("/v1/me/relationships/alpha", headers=me)
                if got.status_code == 200 and got.json()["positions"] == [] and got.json()["cash"] != "2000":
                    rel = got.json()
                    break
                await asyncio.sleep(0.1)
            assert rel, "no snapshot showed f2's closed copy"
            assert rel["status"] == "active" and rel["base"] == "2000" and rel["high_watermark"] == "2000"
            assert Decimal(str(rel["equity"])) == Decimal(str(rel["cash"]))
            assert Decimal(str(rel["pnl"])) == Decimal(str(rel["equity"])) - 2000
            assert 0 < Decimal(str(rel["pnl"])) <= 20
            other = await http.get("/v1/me/relationships/beta", headers=me)
            assert other.status_code == 404

            # the provider's closed trade on the public leaderboard (projector rows)
            card: dict[str, object] = {}
            for _ in range(100):
                board = (await http.get("/v1/leaderboard?period=all")).json()
                if board["items"] and board["items"][0]["closed_trades"] == 1:
                    card = board["items"][0]
                    break
                await asyncio.sleep(0.1)
            assert card["provider"] == "alpha" and card["new"] is True and card["followers"] == 2
            assert card["pnl"] == "100"  # 0.1 × (61000 − 60000)

            # the operator settles (nothing above the watermark yet charges: share 0) and the ledger checks
            settled = await http.post("/v1/settlements?wait=10", json={}, headers=op)
            assert settled.status_code == 200 and settled.json()["status"] == "applied", settled.text
            for _ in range(100):
                check = await http.post("/v1/ledger/check", headers=op)
                if check.json()["ok"]:
                    break
                await asyncio.sleep(0.1)
            assert check.status_code == 200 and check.json()["ok"] is True, check.text
            assert (await http.post("/v1/ledger/check", headers=me)).status_code == 403
            await conn.close()
    finally:
        api.close()
        engine.terminate()
        engine.wait(20)
        venue.stop()
        await runner


def test_the_api_against_a_running_engine(tmp_path: Path, pg_dsn: str) -> None:
    asyncio.run(_scenario(tmp_path, pg_dsn))

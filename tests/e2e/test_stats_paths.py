"""The two paths of `copyengine stats` agree: a scenario's inputs, run through the venue
simulator (script mode, with their times) into the durable engine, give from PostgreSQL
(`stats --database`, computed from the projector's rows, and the projector's own
`provider_statistics` rows) exactly the records `stats SCENARIO` prints offline."""

from __future__ import annotations

import json
import random
import socket
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg

from pyservice.store.statistics import STORED_RECORD
from pyservice.venue_time import DAY_US, format_time, parse_time

T0 = parse_time("2026-09-01T00:00:00Z")
INSTRUMENTS = [
    {"symbol": "BTC", "kind": "spot", "tick": "0.01", "step": "0.0001", "min_qty": "0", "min_notional": "0"},
    {"symbol": "ETH", "kind": "perp", "tick": "0.01", "step": "0.001", "min_qty": "0", "min_notional": "0"},
]
PROVIDERS = ["alpha", "beta", "gamma"]
CLI = [sys.executable, "-m", "pyservice.cli"]
#: per provider: enough that a sum joined with the relationships would be far off
FOLLOWERS = 40


def _scenario(seed: int) -> dict[str, Any]:
    """Follows first, then provider fills (trades that open, add, close and reverse) and
    marks over 60 days; every event valid."""
    rng = random.Random(seed)
    follows = [
        {"type": "follow", "follower": f"f{i}", "provider": p, "allocation": str(rng.randint(500, 5000))}
        for i, p in enumerate(PROVIDERS * FOLLOWERS)
    ]
    events: list[dict[str, Any]] = []
    price = {"BTC": 50_000.0, "ETH": 3_000.0}
    held = {(p, s): 0 for p in PROVIDERS for s in price}
    at = T0
    for n in range(120):
        at += rng.choice([60, 3_600, 6 * 3_600, 86_400, 3 * 86_400]) * 1_000_000 // 3
        symbol = rng.choice(["BTC", "ETH"])
        price[symbol] *= 1 + rng.uniform(-0.04, 0.04)
        px = f"{price[symbol]:.2f}"
        if rng.random() < 0.3:
            events.append({"type": "mark", "time": format_time(at), "symbol": symbol, "price": px})
            continue
        p = rng.choice(PROVIDERS)
        pos = held[(p, symbol)]
        if pos and rng.random() < 0.5:  # close (perp: sometimes through zero)
            qty = abs(pos) * (2 if symbol == "ETH" and rng.random() < 0.3 else 1)
            side = "sell" if pos > 0 else "buy"
        else:
            side = "buy" if symbol == "BTC" or rng.random() < 0.6 else "sell"
            qty = rng.randint(1, 20)
        held[(p, symbol)] = pos + (qty if side == "buy" else -qty)
        unit = Decimal(1000 if symbol == "BTC" else 100)
        events.append({
            "type": "fill", "time": format_time(at), "provider": p, "exec_id": f"e{n}", "symbol": symbol,
            "side": side, "qty": str(qty / unit), "price": px,
            "provider_equity": str(rng.randint(20_000, 40_000)), "leverage": 1 if symbol == "BTC" else rng.randint(1, 5),
        })  # fmt: skip
    return {"version": 2, "instruments": INSTRUMENTS, "providers": [{"id": p} for p in PROVIDERS],
            "events": follows + events}  # fmt: skip


def _venue_inputs(scenario: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The scenario as the venue and the engine see it: books (providers and the follows)
    and a script of instruments, marks and executions with their times."""
    books = {
        "version": 1,
        "providers": scenario["providers"],
        "follows": [
            {k: v for k, v in e.items() if k not in ("type", "time")}
            for e in scenario["events"]
            if e["type"] == "follow"
        ],
    }
    script: list[dict[str, Any]] = [{"type": "instrument", "time": format_time(T0), **i} for i in INSTRUMENTS]
    for e in scenario["events"]:
        if e["type"] == "fill":
            script.append({"type": "exec", **{k: v for k, v in e.items() if k != "type"}})
            # the copies reach the venue before its price moves on, so they fill at the
            # provider's price, as in the replay
            script.append({"type": "pause", "seconds": 0.08})
        elif e["type"] == "mark":
            script.append(dict(e))
    return books, script


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stats(*args: str) -> list[dict[str, Any]]:
    out = subprocess.run([*CLI, "stats", *args], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return [json.loads(x) for x in out.stdout.splitlines()]


def test_stats_from_the_database_are_the_scenarios(tmp_path: Path, pg_dsn: str) -> None:
    scenario = _scenario(7)
    books, script = _venue_inputs(scenario)
    (tmp_path / "scenario.json").write_text(json.dumps(scenario))
    (tmp_path / "books.json").write_text(json.dumps(books))
    (tmp_path / "script.jsonl").write_text("".join(json.dumps(s) + "\n" for s in script))
    offline = _stats(str(tmp_path / "scenario.json"))
    from pyservice.replay import replay_records

    replayed = replay_records(json.dumps(scenario))
    assert [r for r in replayed if r["kind"] == "error"] == []
    assert sum(r["periods"]["all"]["trades"] for r in offline) == 27  # the scenario closes trades
    # the fan-out trap: each relationship once in followers and AUM, each trade once in pnl
    for r in offline:
        mine = [p for p in replayed if p["kind"] == "portfolio" and p["provider"] == r["provider"]]
        assert (r["followers"], Decimal(r["aum"])) == (FOLLOWERS, sum(Decimal(p["equity"]) for p in mine))
        pnl = _closed_pnl([e for e in scenario["events"] if e["type"] == "fill" and e["provider"] == r["provider"]])
        assert Decimal(r["periods"]["all"]["pnl"]) == pnl

    sock = f"unix:{tmp_path / 'engine.sock'}"
    engine = subprocess.Popen(
        [*CLI, "engine", "--books", str(tmp_path / "books.json"), "--listen", sock, "--database", pg_dsn,
         "--metrics-port", str(_port())],
        stderr=open(tmp_path / "engine.log", "wb"),
    )  # fmt: skip
    try:
        for _ in range(100):
            if (tmp_path / "engine.sock").exists():
                break
            time.sleep(0.2)
        venue = subprocess.run(
            [*CLI, "venue-sim", "--connect", sock, "--books", str(tmp_path / "books.json"), "--script",
             str(tmp_path / "script.jsonl"), "--duration", "12", "--start", "2026-09-01T00:00:00Z"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert venue.returncode == 0, venue.stderr
        # the projector catches up and refreshes the standings within seconds
        live: list[dict[str, Any]] = []
        for _ in range(60):
            live = _stats("--database", pg_dsn)
            if live == offline:
                break
            time.sleep(0.5)
        assert live == offline, _differences(live, offline)
        # a row is written as of the input that last changed it, and holds until its
        # `due_at`: the same record but for the time it names
        stored = _stored_records(pg_dsn)
        assert [{**r, "as_of": o["as_of"]} for r, o in zip(stored, offline, strict=True)] == offline
        # and as of a past time, replayed from the journal
        mid = format_time(T0 + 20 * DAY_US)
        assert _stats("--database", pg_dsn, "--as-of", mid) == _stats(str(tmp_path / "scenario.json"), "--as-of", mid)
    finally:
        engine.terminate()
        engine.wait(20)


def _stored_records(dsn: str) -> list[dict[str, Any]]:
    import asyncio

    async def go() -> list[dict[str, Any]]:
        conn = await asyncpg.connect(dsn)
        try:
            order = [r[0] for r in await conn.fetch("SELECT provider_id FROM providers ORDER BY listed")]
            rows = {
                r[0]: json.loads(r[1])
                for r in await conn.fetch(f"SELECT provider_id, {STORED_RECORD} FROM provider_statistics")
            }
            return [rows[p] for p in order]
        finally:
            await conn.close()

    return asyncio.run(go())


def _differences(got: list[dict[str, Any]], want: list[dict[str, Any]]) -> list[tuple[str, str, Any, Any]]:
    out = []
    for g, w in zip(got, want, strict=True):
        for k in w:
            if g.get(k) != w[k]:
                if k == "periods":
                    out += [(w["provider"], f"{p}.{f}", g[k][p][f], w[k][p][f]) for p in w[k] for f in w[k][p]
                            if g[k][p][f] != w[k][p][f]]  # fmt: skip
                else:
                    out.append((w["provider"], k, g.get(k), w[k]))
    return out


def _closed_pnl(fills: list[dict[str, Any]]) -> Decimal:
    """Σ pnl of the closed trades, as a cash flow per symbol realized whenever the
    position reaches zero (a fill through zero realizes at zero and goes on with the rest)."""
    realized = Decimal(0)
    for symbol in {f["symbol"] for f in fills}:
        position, flow = Decimal(0), Decimal(0)
        for f in (f for f in fills if f["symbol"] == symbol):
            price = Decimal(f["price"])
            signed = Decimal(f["qty"]) if f["side"] == "buy" else -Decimal(f["qty"])
            if position and (signed > 0) != (position > 0) and abs(signed) > abs(position):
                realized += flow + position * price
                position += signed
                flow = -position * price
                continue
            position += signed
            flow -= signed * price
            if position == 0:
                realized, flow = realized + flow, Decimal(0)
    return realized

"""SIGKILL the durable engine under load, at random instants and at chosen ones (inside
a group commit, halfway through writing an orders frame); restart it each time.

The venue runs in this process (so its log can be read afterwards) and keeps trading
while the engine is down; control changes (follow, unfollow, deposit, withdraw) are
committed meanwhile. At the end, the orders the venue accepted (its `--record`, not
counting `duplicate` answers) must be exactly the orders an engine that never crashed
produces over the same venue log, with each control change at the point the engine
recorded for it: none missing, none twice, same sizes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import re
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path

import asyncpg
import msgspec
from venue_traffic import bots_for, free_port, trade, venue_key

from pyservice import books as B
from pyservice import control
from pyservice import protocol as P
from pyservice._engine_core import LiveEngine, Outcome
from pyservice.dispatch import apply_venue_message
from pyservice.statistics import trades
from pyservice.venue_sim import fixed
from pyservice.venue_sim.config import Books, VenueConfig
from pyservice.venue_sim.venue import OrderRecord, VenueSim


def _order_key(o: P.NewOrder | OrderRecord) -> tuple[object, ...]:
    return (
        o.client_order_id,
        o.follower,
        o.provider,
        o.symbol,
        o.side,
        o.type,
        str(o.qty),
        None if o.price is None else str(o.price),
        o.reduce_only,
        o.leverage,
    )


def _uninterrupted(
    books: Path, log: list[P.VenueMessage], changes: list[asyncpg.Record]
) -> tuple[list[tuple[object, ...]], LiveEngine, list[tuple[object, ...]]]:
    """Every order an engine that never stopped sends over `log`, with the control
    changes at the points where the engine recorded them (and refusing the same ones),
    that engine, and the provider trades of the executions it accepted."""
    engine = LiveEngine.from_books(books.read_text())
    book = trades.TradeBook()
    traded: dict[tuple[str, str, int], trades.Trade] = {}
    reader = P.engine_reader()
    out = []

    def take(outcome: Outcome) -> None:
        if outcome.frame is not None:
            for msg in reader.feed(outcome.frame):
                assert isinstance(msg, P.NewOrders)
                out.extend(_order_key(o) for o in msg.orders)

    after: dict[int, list[asyncpg.Record]] = {}
    for c in changes:
        after.setdefault(c["after_seq"], []).append(c)

    def controls(seq: int) -> None:
        for c in after.get(seq, []):
            outcome = engine.control(seq, c["id"], c["change"])
            assert (outcome.errors[0] if outcome.errors else None) == c["error"]
            take(outcome)

    controls(0)
    kinds: dict[str, str] = {}
    for entry in log:
        if isinstance(entry, P.Instrument):
            kinds[entry.symbol] = entry.kind
        outcome = apply_venue_message(engine, entry)
        take(outcome)
        if isinstance(entry, P.ProviderExecution) and not outcome.errors:
            for t in book.execution(
                entry.seq,
                entry.provider,
                entry.exec_id,
                entry.symbol,
                entry.side,
                Decimal(entry.qty),
                Decimal(entry.price),
                Decimal(entry.provider_equity),
                entry.leverage,
                at=engine.now_us,
                kind=kinds[entry.symbol],
            ):
                traded[t.key] = t
        controls(entry.seq)
    return out, engine, sorted(trades.row("main", t)[1:] for t in traded.values())


class _Resumes(logging.Handler):
    """The venue's `engine resumed from seq N` lines."""

    def __init__(self) -> None:
        super().__init__()
        self.from_seqs: list[int] = []

    def emit(self, record: logging.LogRecord) -> None:
        m = re.match(r"engine resumed from seq (\d+)", record.getMessage())
        if m:
            self.from_seqs.append(int(m[1]))


async def _run(
    tmp: Path,
    dsn: str,
    random_kills: int,
    commit_kills: int,
    send_kills: int,
    seed: int,
    disrupt: Callable[[], Awaitable[None]] | None = None,
) -> None:
    books_doc = B.demo_books(3, 150, seed)
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
        "--dead-after",
        "3",
        "--log-level",
        "WARNING",
        "--snapshot-interval",
        "0",
    ]  # a snapshot after every projector step: restarts start from one
    log_file = open(tmp / "engine.log", "ab")
    venue = VenueSim(
        VenueConfig(
            connect=addr,
            key=key,
            rate=0,
            mark_interval=0,
            books=msgspec.convert(books_doc, Books),
            heartbeat=0.05,
            dead_after=3,
            record=str(tmp / "orders.jsonl"),
            partial_fill_pct=20,
            seed=seed,
        )
    )
    resumes = _Resumes()
    logging.getLogger("copyengine.venue").addHandler(resumes)
    logging.getLogger("copyengine.venue").setLevel(logging.INFO)
    bots = bots_for(books_doc, seed)
    rnd = random.Random(seed)
    stop_traffic = asyncio.Event()

    changes_made = 0

    async def changes() -> None:
        # control changes while trading and crashing: new follows (with venue accounts),
        # deposits, withdrawals (some above free cash: refused), unfollows, pauses and
        # resumes (some refused), settings
        nonlocal changes_made
        conn = await asyncpg.connect(dsn)
        follows = list(books_doc["follows"])  # type: ignore[call-overload]
        providers = [p["id"] for p in books_doc["providers"]]  # type: ignore[index, union-attr]
        try:
            # one the rules refuse for certain (the others are refused or not by chance)
            await control.submit(
                conn, "main", {"type": "deposit", "follower": "ghost", "provider": providers[0], "amount": "5"}
            )
            changes_made += 1
            while not stop_traffic.is_set():
                await asyncio.sleep(rnd.uniform(0.05, 0.2))
                kind = rnd.choice(["follow", "deposit", "withdraw", "unfollow", "pause", "resume", "settings"])
                if kind == "follow":
                    f = {
                        "type": "follow",
                        "follower": f"late{changes_made}",
                        "provider": rnd.choice(providers),
                        "allocation": str(rnd.choice([100, 1000, 5000])),
                    }
                    venue.matcher.open_account(
                        f["follower"], f["provider"], fixed.parse(f["allocation"], fixed.MONEY_DIGITS)
                    )
                    follows.append(f)
                else:
                    f = dict(rnd.choice(follows))
                    f = {"type": kind, "follower": f["follower"], "provider": f["provider"]}
                    if kind in ("deposit", "withdraw"):
                        f["amount"] = str(rnd.choice([5, 50, 500]))
                    elif kind == "settings":
                        f.update(
                            rnd.choice(
                                [
                                    {"max_loss_pct": "5"},
                                    {"mode": "multiplier", "multiplier": "2"},
                                    {"max_per_trade_pct": "10"},
                                    {"slippage_pct": "1"},
                                ]
                            )
                        )
                try:
                    await control.submit(conn, "main", f)
                    changes_made += 1
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError):
                    await asyncio.sleep(0.2)  # PostgreSQL restarting: this change is skipped
                    conn.terminate()
                    with contextlib.suppress(OSError, asyncpg.PostgresError):
                        conn = await asyncpg.connect(dsn)
        finally:
            conn.terminate()

    async def up(proc: subprocess.Popen[bytes], step: str) -> None:
        for _ in range(600):
            if venue.connected:
                return
            code = proc.poll()  # once: it may die between two polls
            if step != "random" and code == -signal.SIGKILL:
                return  # came up, resumed and reached its kill point already
            assert code is None, (tmp / "engine.log").read_text()
            await asyncio.sleep(0.05)
        raise AssertionError("the engine did not come back")

    plan = ["random"] * random_kills + ["commit"] * commit_kills + ["send"] * send_kills
    rnd.shuffle(plan)
    kills = len(plan)

    def start(step: str) -> subprocess.Popen[bytes]:
        env = dict(os.environ)
        env.pop("COPYENGINE_KILL_AT", None)
        if step != "random":  # the engine kills itself there (pyservice/faults.py)
            env["COPYENGINE_KILL_AT"] = f"{step}:{rnd.randint(1, 12)}"
        return subprocess.Popen(cmd, stderr=log_file, env=env)

    runner = asyncio.create_task(venue.run())
    # keeps trading while the engine is down: the venue's log holds it until resume
    producer = asyncio.create_task(trade(venue, bots, stop_traffic, marks_every=10, pause_s=0.004))
    proc = start(plan[0])
    try:
        await up(proc, plan[0])
        changer = asyncio.create_task(changes())  # the engine has migrated the database
        if disrupt is not None:
            await asyncio.sleep(0.3)
            await disrupt()
            await asyncio.sleep(1.5)  # the engine rides it out: still running, still connected
            assert proc.poll() is None and venue.connected, (tmp / "engine.log").read_text()[-3000:]
        for i, step in enumerate(plan):
            if step == "random":
                await asyncio.sleep(rnd.uniform(0.02, 0.4))
                proc.kill()  # SIGKILL: no flush, no goodbye
            for _ in range(600):
                if proc.poll() is not None:
                    break
                await asyncio.sleep(0.05)
            assert proc.returncode == -signal.SIGKILL, f"{step}: exit {proc.returncode}"
            while venue.connected:
                await asyncio.sleep(0.01)
            if i % 3 == 1:
                # the venue cuts the connection while sending what the engine replays
                venue.link.faults.disconnect_at_seq = venue.log.newest
            following = plan[i + 1] if i + 1 < kills else "random"
            proc = start(following)
            await up(proc, following)
        stop_traffic.set()
        await producer
        await changer
        # one more entry (the marks as they are) takes the watermark past the last changes,
        # once the engine has applied them all
        conn = await asyncpg.connect(dsn)
        for _ in range(600):
            if not await conn.fetchval("SELECT count(*) FROM control_changes WHERE applied_at IS NULL"):
                break
            await asyncio.sleep(0.05)
        await conn.close()
        for symbol, mark in venue.matcher.marks.items():
            venue.publish(P.MarkPrice(0, 0, symbol, fixed.format(mark)))
        # caught up: everything applied, and the answers to the last orders too
        quiet = 0
        while quiet < 5:
            newest = venue.log.newest
            await asyncio.sleep(0.1)
            quiet = quiet + 1 if venue.stats.engine_applied_seq == newest == venue.log.newest else 0
        conn = await asyncpg.connect(dsn)
        for _ in range(600):  # and projected into rows
            if await conn.fetchval("SELECT seq FROM projection_state") == venue.log.newest:
                break
            await asyncio.sleep(0.05)
        for _ in range(600):  # and snapshotted there, with the money and positions
            if await conn.fetchval("SELECT max(seq) FROM engine_snapshots") == venue.log.newest:
                break
            await asyncio.sleep(0.05)
        money = await conn.fetch(
            "SELECT follower_id, provider_id, status, cash::text, equity::text, "
            "reserved::text FROM relationship_equity WHERE seq = $1",
            venue.log.newest,
        )
        held = await conn.fetch("SELECT follower_id, provider_id, symbol, qty::text FROM positions")
        lots = await conn.fetch(
            "SELECT follower_id, provider_id, symbol, side, qty::text, entry::text, leverage "
            'FROM lots ORDER BY follower_id COLLATE "C", provider_id COLLATE "C", symbol COLLATE "C", n'
        )
        base = await conn.fetch(
            "SELECT follower_id, provider_id, base FROM relationship_equity WHERE seq = $1", venue.log.newest
        )
        watermarks = await conn.fetch("SELECT follower_id, provider_id, hwm FROM high_watermarks")
        provider_trades = await conn.fetch(f"SELECT {', '.join(trades.COLUMNS)} FROM provider_trades")
        projected = await conn.fetch(
            "SELECT client_order_id, follower_id, provider_id, symbol, side, type, "
            "qty::text, price::text, reduce_only, leverage FROM copy_orders"
        )
        await conn.close()
        proc.terminate()
        assert proc.wait(20) == 0
    finally:
        stop_traffic.set()
        if proc.poll() is None:
            proc.kill()
        venue.stop()
        await runner
        logging.getLogger("copyengine.venue").removeHandler(resumes)

    assert len(resumes.from_seqs) >= kills + 1  # and one more per disconnect during a replay
    records = msgspec.json.Decoder(OrderRecord).decode_lines((tmp / "orders.jsonl").read_bytes())
    accepted = [r for r in records if r.reason != "duplicate"]
    assert len(accepted) == len({r.client_order_id for r in accepted}), "an order was placed twice"
    # a resent order is byte for byte the one first sent
    first = {r.client_order_id: _order_key(r) for r in accepted}
    assert all(_order_key(r) == first[r.client_order_id] for r in records)
    conn = await asyncpg.connect(dsn)
    recorded = await conn.fetch(
        "SELECT id, after_seq, change::text AS change, error FROM control_changes ORDER BY after_seq, id"
    )
    await conn.close()
    # (a submit whose answer was lost to a PostgreSQL restart may be stored all the same)
    assert len(recorded) >= changes_made > 10
    assert all(c["after_seq"] is not None for c in recorded), "a committed change was never applied"
    assert any(c["error"] is None for c in recorded) and any(c["error"] for c in recorded)
    expected, engine, expected_trades = _uninterrupted(books, venue.log.entries(), recorded)
    assert len(expected) == len(set(expected))
    extra = set(map(_order_key, accepted)) - set(expected)
    missing = set(expected) - set(map(_order_key, accepted))
    assert not extra and not missing, f"{len(extra)} placed but not in the uninterrupted run, {len(missing)} missing"
    # the projector's rows are those orders too, once each
    assert sorted(tuple(r) for r in projected) == sorted(expected)
    # and its last snapshot's money and positions are that engine's
    portfolios = [json.loads(line) for line in engine.portfolios_jsonl().splitlines()]
    assert sorted(tuple(r) for r in money) == sorted(
        (p["follower"], p["provider"], p["status"], p["cash"], p["equity"], p["reserved"]) for p in portfolios
    )
    assert sorted(tuple(r) for r in held) == sorted(
        (p["follower"], p["provider"], x["symbol"], x["qty"]) for p in portfolios for x in p["positions"]
    )
    assert held, "the run left positions to compare"
    assert (
        [tuple(r) for r in lots]
        == sorted(  # stable: within a position, oldest lot first
            [
                (p["follower"], p["provider"], x["symbol"], x["side"], x["qty"], x["entry"], x["leverage"])
                for p in portfolios
                for x in p["lots"]
            ],
            key=lambda lot: lot[:3],
        )
    )
    # before any settlement, each high watermark is its relationship's base, moved by every
    # follow, deposit and withdrawal exactly once across the kills
    bases = {(p["follower"], p["provider"]): Decimal(p["base"]) for p in portfolios}
    assert {(r[0], r[1]): r[2] for r in base} == bases
    assert {(r[0], r[1]): r[2] for r in watermarks} == bases
    # every accepted execution is in the provider trades exactly once
    assert sorted(tuple(r) for r in provider_trades) == expected_trades
    assert any(t[-1] is not None for t in expected_trades), "the run closed provider trades"
    assert sorted(_order_key(r) for r in accepted) == sorted(expected)
    assert len(expected) > 1000  # the run traded


def test_sigkill_at_any_instant_loses_and_doubles_nothing(tmp_path: Path, pg_dsn: str) -> None:
    asyncio.run(_run(tmp_path, pg_dsn, random_kills=8, commit_kills=4, send_kills=4, seed=3))


def test_sigkill_again_with_other_traffic(tmp_path: Path, pg_dsn: str) -> None:
    asyncio.run(_run(tmp_path, pg_dsn, random_kills=4, commit_kills=3, send_kills=3, seed=11))


def test_postgres_restarted_mid_run_loses_and_doubles_nothing(tmp_path: Path) -> None:
    """The engine's own PostgreSQL goes away for a second while it trades and is killed."""
    import atexit
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

    data = tmp_path / "pg"
    server = pgserver.get_server(data, cleanup_mode="stop")
    handles = [server]

    async def restart_postgres() -> None:
        await asyncio.to_thread(handles[-1].cleanup)
        await asyncio.sleep(1.0)
        handles.append(await asyncio.to_thread(pgserver.get_server, data, cleanup_mode="stop"))

    try:
        asyncio.run(
            _run(
                tmp_path,
                server.get_uri(),
                random_kills=3,
                commit_kills=1,
                send_kills=0,
                seed=23,
                disrupt=restart_postgres,
            )
        )
    finally:
        handles[-1].cleanup()
        for h in handles:
            atexit.unregister(h._cleanup)  # pgserver would log again at exit

"""Live settlement end to end: the terms set through the control plane (`profit-share`,
`platform`), a durable engine fed by the venue simulator (script mode, with times) across
a month boundary, and then from PostgreSQL: `copyengine settlements` lists exactly the
settlement records `copyengine replay` prints for the same inputs as a version 2 scenario,
the ledger balances and `copyengine ledger check` passes, both sides are notified, and a
manual `copyengine settle --period` applies once however often it is run.

Hand check of the amounts (monthly, fee 10 %; alpha 30 %, beta 20 %; October ends at BTC
60,000 — the mark of the message that crosses the boundary comes after the settlement):
- f1/alpha, 10,000: alpha puts half its equity into 1 BTC at 50,000, so f1 buys 0.1 BTC
  for 5,000; equity 5,000 + 6,000 = 11,000, profit 1,000: due 300, platform 30,
  alpha 270, charged (free cash 5,000).
- f2/alpha, 3,333: 3,333 × 0.5 / 50,000 = 0.03333 BTC, floored to the step 0.0001:
  0.0333 for 1,665; equity 1,668 + 1,998 = 3,666, profit 333: due 99.9, platform 9.99,
  alpha 89.91, charged.
- f3/beta, 1,000: beta is all in (1 BTC at 50,000 of 50,000), so f3 buys 0.02 BTC for all
  its cash; equity 1,200, profit 200: due 40 > free cash 0: deferred.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg

CLI = [sys.executable, "-m", "pyservice.cli"]
T0 = "2026-10-20T00:00:00Z"
BTC = {"symbol": "BTC", "kind": "spot", "tick": "0.01", "step": "0.0001", "min_qty": "0", "min_notional": "0"}
FOLLOWS = [
    {"follower": "f1", "provider": "alpha", "allocation": "10000"},
    {"follower": "f2", "provider": "alpha", "allocation": "3333"},
    {"follower": "f3", "provider": "beta", "allocation": "1000"},
]
#: the venue's inputs, with their times
INPUTS: list[dict[str, Any]] = [
    {"type": "exec", "time": "2026-10-21T10:00:00Z", "provider": "alpha", "exec_id": "a1", "symbol": "BTC",
     "side": "buy", "qty": "1", "price": "50000", "provider_equity": "100000", "leverage": 1},
    {"type": "exec", "time": "2026-10-21T11:00:00Z", "provider": "beta", "exec_id": "b1", "symbol": "BTC",
     "side": "buy", "qty": "1", "price": "50000", "provider_equity": "50000", "leverage": 1},
    {"type": "mark", "time": "2026-10-25T00:00:00Z", "symbol": "BTC", "price": "60000"},
    # crosses 2026-11-01: October is settled at 60,000, before this mark applies
    {"type": "mark", "time": "2026-11-02T00:00:00Z", "symbol": "BTC", "price": "61000"},
]  # fmt: skip
#: the terms, as control changes, in the order they are applied
TERMS = [
    ["profit-share", "alpha", "30"],
    ["profit-share", "beta", "20"],
    ["platform", "--platform-fee-pct", "10", "--settlement", "monthly"],
]
#: (follower, provider, due, charged, provider_credit, platform_credit, status), worked out above
OCTOBER = [
    ("f1", "alpha", "300", "300", "270", "30", "charged"),
    ("f2", "alpha", "99.9", "99.9", "89.91", "9.99", "charged"),
    ("f3", "beta", "40", "0", "0", "0", "deferred"),
]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout)


def _scenario() -> dict[str, Any]:
    """The same inputs as a version 2 scenario, its terms in the header."""
    return {
        "version": 2,
        "instruments": [BTC],
        "providers": [{"id": "alpha", "profit_share_pct": "30"}, {"id": "beta", "profit_share_pct": "20"}],
        "platform": {"platform_fee_pct": "10", "settlement": "monthly"},
        "events": [
            *({"type": "follow", "time": T0, **f} for f in FOLLOWS),
            *(
                {**{k: v for k, v in e.items() if k != "type"}, "type": "fill" if e["type"] == "exec" else "mark"}
                for e in INPUTS
            ),
        ],
    }


#: the seconds between October's settlement and the script's last input, for the manual
#: settlements: the projector takes a change placed after the newest input once its
#: verdict is recorded, without waiting for the next input
MANUAL_S = 15


def _script(manual: bool) -> list[dict[str, Any]]:
    script: list[dict[str, Any]] = [{"type": "instrument", "time": T0, **BTC}]
    # the terms are applied once the engine has met the venue: before the first trade
    script.append({"type": "pause", "seconds": 3})
    for e in INPUTS:
        script.append(e)
        if e["type"] == "exec":  # the copies fill at the provider's price
            script.append({"type": "pause", "seconds": 0.3})
    if manual:
        script.append({"type": "pause", "seconds": MANUAL_S})
        script.append({"type": "mark", "time": "2026-11-03T00:00:00Z", "symbol": "BTC", "price": "61000"})
    return script


def _replayed_settlements(path: Path) -> list[dict[str, Any]]:
    out = _cli("replay", str(path))
    assert out.returncode == 0, out.stderr
    records = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r for r in records if r["kind"] == "error"] == []
    return [{k: v for k, v in r.items() if k not in ("event", "kind")} for r in records if r["kind"] == "settlement"]


def _settlements(dsn: str, *args: str) -> list[dict[str, Any]]:
    out = _cli("settlements", "--database", dsn, *args)
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines()]


def _outcomes(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k not in ("kind", "seq")} for r in records if r["kind"] == "settlement"]


def _query(dsn: str, sql: str) -> list[tuple[Any, ...]]:
    async def go() -> list[tuple[Any, ...]]:
        conn = await asyncpg.connect(dsn)
        try:
            return [tuple(r) for r in await conn.fetch(sql)]
        finally:
            await conn.close()

    return asyncio.run(go())


#: every account's balance, by (kind, follower, provider)
BALANCES = (
    "SELECT a.kind, a.follower_id, a.provider_id, sum(e.amount) FROM ledger_entries e "
    "JOIN ledger_accounts a ON a.id = e.account_id GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
)
LEDGER_SIZE = "SELECT (SELECT count(*) FROM ledger_transactions), (SELECT count(*) FROM ledger_entries)"


def _wait_for(what: str, read: Any, done: Any, seconds: float = 60) -> Any:
    value = read()
    deadline = time.monotonic() + seconds
    while not done(value) and time.monotonic() < deadline:
        time.sleep(0.5)
        value = read()
    assert done(value), f"{what}: {value}"
    return value


#: the ledger as rows, in posting order (ids aside: they are the database's)
LEDGER = (
    "SELECT t.seq, t.change_id, t.n, t.kind, t.follower_id, t.provider_id, t.period, t.at_us, "
    "a.kind, a.follower_id, a.provider_id, e.amount FROM ledger_entries e "
    "JOIN ledger_transactions t ON t.id = e.transaction_id JOIN ledger_accounts a ON a.id = e.account_id "
    "ORDER BY t.seq, t.change_id, t.n, a.kind, a.follower_id NULLS FIRST, a.provider_id NULLS FIRST"
)


def _files(tmp: Path, manual: bool = False) -> None:
    books = {"version": 1, "providers": [{"id": "alpha"}, {"id": "beta"}], "follows": FOLLOWS}
    (tmp / "books.json").write_text(json.dumps(books))
    (tmp / "script.jsonl").write_text("".join(json.dumps(s) + "\n" for s in _script(manual)))
    (tmp / "scenario.json").write_text(json.dumps(_scenario()))


def _start_engine(
    tmp: Path, dsn: str, kill_at: str | None = None, extra: tuple[str, ...] = ()
) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k != "COPYENGINE_KILL_AT"}
    if kill_at is not None:  # the engine kills itself there (pyservice/faults.py)
        env["COPYENGINE_KILL_AT"] = kill_at
    with contextlib.suppress(FileNotFoundError):
        (tmp / "engine.sock").unlink()
    engine = subprocess.Popen(
        [*CLI, "engine", "--books", str(tmp / "books.json"), "--listen", f"unix:{tmp / 'engine.sock'}",
         "--database", dsn, "--metrics-port", str(_port()), *extra],
        stderr=open(tmp / "engine.log", "ab"), env=env,
    )  # fmt: skip
    for _ in range(100):
        if (tmp / "engine.sock").exists():
            break
        time.sleep(0.2)
    return engine


@contextlib.contextmanager
def _running(engine: subprocess.Popen[bytes]) -> Iterator[subprocess.Popen[bytes]]:
    try:
        yield engine
    finally:
        if engine.poll() is None:
            engine.terminate()
            engine.wait(20)


def _commit_terms(dsn: str) -> None:
    """The terms, committed before the venue connects: the engine applies them in this
    order once it has met the venue."""
    for argv in TERMS:
        out = _cli(*argv, "--database", dsn, "--wait", "0")
        assert out.returncode == 3 and "is committed" in out.stdout, (argv, out.stdout, out.stderr)


def _venue(tmp: Path, seconds: float) -> list[str]:
    return [*CLI, "venue-sim", "--connect", f"unix:{tmp / 'engine.sock'}", "--books", str(tmp / "books.json"),
            "--script", str(tmp / "script.jsonl"), "--duration", str(seconds), "--start", T0]  # fmt: skip


def _october(dsn: str) -> list[dict[str, Any]]:
    """`copyengine settlements` once the projector has written October's three outcomes."""
    return _wait_for("the settlements", lambda: _settlements(dsn), lambda r: len(_outcomes(r)) == 3)


def test_a_month_settled_live_is_the_replays_and_its_ledger_balances(tmp_path: Path, pg_dsn: str) -> None:
    _files(tmp_path, manual=True)
    replayed = _replayed_settlements(tmp_path / "scenario.json")
    assert [
        (r["follower"], r["provider"], r["due"], r["charged"], r["provider_credit"], r["platform_credit"], r["status"])
        for r in replayed
    ] == OCTOBER
    assert {r["period"] for r in replayed} == {"2026-10"}

    with _running(_start_engine(tmp_path, pg_dsn)):
        _commit_terms(pg_dsn)
        venue = subprocess.Popen(_venue(tmp_path, MANUAL_S + 12), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            live = _october(pg_dsn)
            # the terms: applied, none refused, all before the first trade
            changes = _query(pg_dsn, "SELECT change->>'type', after_seq, error FROM control_changes ORDER BY id")
            assert [(t, e) for t, _, e in changes] == [
                ("profit_share", None), ("profit_share", None), ("platform", None)
            ]  # fmt: skip
            assert max(s for _, s, _ in changes) < 2, changes  # seq 1 is the instrument

            # the projector's rows: exactly the replay's records
            assert _outcomes(live) == replayed
            totals = {r.get("provider", "platform"): r for r in live if r["kind"] != "settlement"}
            assert (totals["alpha"]["charged"], totals["alpha"]["provider_credit"]) == ("399.9", "359.91")
            assert totals["alpha"]["outcomes"] == {"charged": 2, "deferred": 0, "partial": 0}
            assert (totals["beta"]["outcomes"]["deferred"], totals["beta"]["deferred_due"]) == (1, "40")
            assert (totals["platform"]["charged"], totals["platform"]["platform_credit"]) == ("399.9", "39.99")
            assert _outcomes(_settlements(pg_dsn, "--provider", "beta")) == replayed[2:]

            # the ledger: the credits where they belong, every account as the engine says
            balances = {(k, f, p): v for k, f, p, v in _query(pg_dsn, BALANCES)}
            assert balances[("earnings", None, "alpha")] == Decimal("359.91")
            assert ("earnings", None, "beta") not in balances  # deferred: nothing moved
            assert balances[("platform", None, None)] == Decimal("39.99")
            assert sum(balances.values()) == 0
            check = _cli("ledger", "check", "--database", pg_dsn)
            assert check.returncode == 0, check.stderr
            assert check.stdout.startswith("ledger ok: ")

            # both sides of each outcome are told
            notes = _query(pg_dsn, "SELECT recipient, side FROM notifications ORDER BY seq, change_id, n, side")
            assert notes == [("f1", 0), ("alpha", 1), ("f2", 0), ("alpha", 1), ("f3", 0), ("beta", 1)]

            # a manual settlement, twice with the same period: applied once
            first = _cli("settle", "--period", "2026-11", "--database", pg_dsn)
            assert first.returncode == 0 and " applied after seq " in first.stdout, first.stderr
            again = _cli("settle", "--period", "2026-11", "--database", pg_dsn)
            assert again.returncode == 0, again.stderr
            assert again.stdout.endswith(": already settled (nothing changed)\n"), again.stdout
            # At 61,000 the alpha followers are below their new H (f1: 4,700 + 6,100 =
            # 10,800 < 11,000); f3 is 1,220 - 1,000 = 220 up, still without free cash:
            # deferred, due 44. Projected while the venue is quiet (its last input is
            # still to come)
            november = _wait_for(
                "the manual settlement",
                lambda: _outcomes(_settlements(pg_dsn, "--period", "2026-11")),
                lambda r: len(r) == 1,
            )
            assert venue.poll() is None, "the manual settlement reached the rows only with the next input"
            assert venue.wait(60) == 0
        finally:
            if venue.poll() is None:
                venue.kill()
                venue.wait()
        assert [(r["follower"], r["profit"], r["due"], r["status"]) for r in november] == [
            ("f3", "220", "44", "deferred")
        ]
        settles = _query(pg_dsn, "SELECT id, error FROM control_changes WHERE change->>'type' = 'settle' ORDER BY id")
        assert [e for _, e in settles] == [None, "already settled"]
        # the second posts nothing (the first: the realized PnL it settled on, no charge)
        posted = _query(pg_dsn, "SELECT DISTINCT change_id FROM ledger_transactions WHERE change_id > 0")
        assert settles[1][0] not in {c for (c,) in posted}
        assert len(_outcomes(_settlements(pg_dsn))) == 4
        assert _cli("ledger", "check", "--database", pg_dsn).returncode == 0


#: what a run leaves of the settlement, to compare a killed run's with
READ = {
    "ledger": LEDGER,
    "settlements": "SELECT * FROM settlements ORDER BY seq, change_id, n",
    "notifications": "SELECT shard, seq, change_id, n, side, recipient, kind, body, at_us "
    "FROM notifications ORDER BY seq, change_id, n, side",
}


def _uninterrupted(tmp_path: Path, dsn: str) -> dict[str, list[tuple[object, ...]]]:
    """What October's settlement leaves (`READ`) in a run without a kill."""
    with _running(_start_engine(tmp_path, dsn)):
        _commit_terms(dsn)
        venue = subprocess.run(_venue(tmp_path, 8), capture_output=True, text=True, timeout=120)
        assert venue.returncode == 0, venue.stderr
        _october(dsn)
        time.sleep(1.5)  # and the step that follows (nothing more should come)
        return {k: _query(dsn, sql) for k, sql in READ.items()}


def _killed_and_restarted(
    tmp_path: Path, dsn: str, kill_at: str, nothing_yet: list[str]
) -> tuple[dict[str, list[tuple[object, ...]]], subprocess.CompletedProcess[str]]:
    """The engine killed at `kill_at` (each count of `nothing_yet` 0 then), restarted:
    what the settlement leaves, and `ledger check`'s run. The venue reconnects to the
    restarted engine and sends what it had not journaled."""
    engine = _start_engine(tmp_path, dsn, kill_at=kill_at)
    with _running(engine):
        _commit_terms(dsn)
        venue_proc = subprocess.Popen(_venue(tmp_path, 40), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            assert engine.wait(60) == -signal.SIGKILL
            for sql in nothing_yet:
                assert _query(dsn, sql) == [(0,)], sql
            with _running(_start_engine(tmp_path, dsn)):
                _october(dsn)
                time.sleep(1.5)
                got = {k: _query(dsn, sql) for k, sql in READ.items()}
                return got, _cli("ledger", "check", "--database", dsn)
        finally:
            venue_proc.terminate()
            venue_proc.wait(20)


def test_sigkill_right_after_a_settlement_leaves_the_uninterrupted_ledger(tmp_path: Path, pg_server: str) -> None:
    """The engine kills itself right after applying the input that crosses the boundary
    (before journaling it); restarted, it meets that input again from the venue, and the
    ledger, outcomes and notifications are exactly those of a run without the kill."""
    from pyservice.store.server import create_database, drop_database

    _files(tmp_path)
    names = [f"copyengine_test_settle_kill_{os.getpid()}_{i}" for i in range(2)]
    plain, killed = (asyncio.run(create_database(pg_server, n)) for n in names)
    try:
        want = _uninterrupted(tmp_path, plain)
        assert len(want["ledger"]) > 0 and len(want["settlements"]) == 3
        got, check = _killed_and_restarted(tmp_path, killed, "settle:1", ["SELECT count(*) FROM settlements"])
        assert got == want
        assert check.returncode == 0, check.stderr
    finally:
        for n in names:
            asyncio.run(drop_database(pg_server, n))


def test_sigkill_while_the_projector_posts_a_settlement_leaves_the_uninterrupted_ledger(
    tmp_path: Path, pg_server: str
) -> None:
    """The projector, in the step that posts October's settlement (its ledger entries,
    rows and notifications written, the step not committed), kills its engine and then
    itself (`COPYENGINE_KILL_AT=post:1`). Restarted, the engine recovers and its projector
    does the step again: the whole ledger (every entry, not a count), the outcomes and the
    notifications are exactly those of a run without the kill, and the ledger checks."""
    from pyservice.store.server import create_database, drop_database

    _files(tmp_path)
    names = [f"copyengine_test_post_kill_{os.getpid()}_{i}" for i in range(2)]
    plain, killed = (asyncio.run(create_database(pg_server, n)) for n in names)
    try:
        want = _uninterrupted(tmp_path, plain)
        assert len(want["settlements"]) == 3 and len(want["notifications"]) == 6
        # October's postings: f1's and f2's charges (3 entries each), f3's deferred
        # outcome (no entry) and the realized PnL of each (none: nothing was sold)
        october = [r for r in want["ledger"] if r[6] == "2026-10"]
        assert [(r[4], r[8], r[11]) for r in october] == [
            ("f1", "earnings", Decimal("270")), ("f1", "platform", Decimal("30")),
            ("f1", "relationship", Decimal("-300")), ("f2", "earnings", Decimal("89.91")),
            ("f2", "platform", Decimal("9.99")), ("f2", "relationship", Decimal("-99.9")),
        ]  # fmt: skip
        # the step died before its commit: nothing of the settlement is there
        got, check = _killed_and_restarted(
            tmp_path,
            killed,
            "post:1",
            [
                "SELECT count(*) FROM settlements",
                "SELECT count(*) FROM ledger_transactions WHERE kind = 'settlement'",
                "SELECT count(*) FROM notifications",
            ],
        )
        assert got == want
        assert check.returncode == 0, check.stderr
    finally:
        for n in names:
            asyncio.run(drop_database(pg_server, n))


def test_the_notifications_stream_holds_each_row_once_through_a_restart(tmp_path: Path, pg_dsn: str) -> None:
    """With Redis, each notification row becomes one entry of
    `copyengine:notifications:main` (its id from the row's key, the same recipient, side
    and body), and publishing again, by hand or by the restarted engine's publisher,
    adds nothing."""
    import shutil

    import pytest
    import redis

    if shutil.which("redis-server") is None:
        if os.environ.get("CI") == "true":
            raise RuntimeError("CI needs redis-server on PATH for the stream tests")
        pytest.skip("redis-server is not installed (CI installs it; nothing skips there)")
    from test_fills_stream import RedisServer

    from pyservice.streams.notifications import Notification, NotificationPublisher
    from pyservice.streams.publisher import add_entries

    (tmp_path / "redis").mkdir()
    rs = RedisServer(tmp_path / "redis")
    rs.start()
    stream = "copyengine:notifications:main"
    client = redis.Redis.from_url(rs.url, decode_responses=True)

    def entries() -> list[tuple[str, dict[str, str]]]:
        return [(i, f) for i, f in client.xrange(stream)]

    try:
        _files(tmp_path)
        with _running(_start_engine(tmp_path, pg_dsn, extra=("--redis", rs.url))):
            _commit_terms(pg_dsn)
            venue = subprocess.run(_venue(tmp_path, 8), capture_output=True, text=True, timeout=120)
            assert venue.returncode == 0, venue.stderr
            _october(pg_dsn)
            _wait_for("the stream", entries, lambda e: len(e) >= 6)
            time.sleep(1.5)  # nothing more should come
            published = entries()
        rows = [
            Notification(*r)
            for r in _query(
                pg_dsn,
                "SELECT seq, placed_n, n, side, recipient, kind, body::text FROM notifications "
                "ORDER BY seq, placed_n, n, side",
            )
        ]
        assert [(r.recipient, r.side) for r in rows] == [
            ("f1", 0), ("alpha", 1), ("f2", 0), ("alpha", 1), ("f3", 0), ("beta", 1)
        ]  # fmt: skip
        # one entry per row, in order: the id of its key, its fields as stored
        assert published == [
            (r.id, {"shard": "main", "seq": str(r.seq), "to": ("follower", "provider")[r.side],
                    "recipient": r.recipient, "kind": "settlement", "body": r.body})
            for r in rows
        ]  # fmt: skip
        f1 = json.loads(published[0][1]["body"])
        assert {k: v for k, v in f1.items() if k != "at_us"} == {
            "to": "follower", "kind": "settlement", "period": "2026-10", "follower": "f1", "provider": "alpha",
            "status": "charged", "equity": "11000", "high_watermark": "10000", "profit": "1000", "due": "300",
            "charged": "300", "provider_credit": "270", "platform_credit": "30", "written_off": "0",
        }  # fmt: skip
        assert json.loads(published[1][1]["body"])["to"] == "provider"

        # published again, by hand: every entry refused as already there, none added
        async def again() -> tuple[int, list[bool]]:
            import redis.asyncio as aioredis

            added = await NotificationPublisher(pg_dsn, rs.url).publish()
            r = aioredis.from_url(rs.url)
            try:
                return added, await add_entries(r, stream, [(n.id, n.fields("main")) for n in rows])
            finally:
                await r.aclose()

        assert asyncio.run(again()) == (0, [False] * 6)
        # the engine restarted (its publisher starts from the stream's last entry), and
        # Redis restarted from its append-only file: still exactly the same entries
        rs.kill()
        rs.start()
        with _running(_start_engine(tmp_path, pg_dsn, extra=("--redis", rs.url))):
            time.sleep(4)
            assert entries() == published
    finally:
        if rs.proc is not None and rs.proc.poll() is None:
            rs.kill()

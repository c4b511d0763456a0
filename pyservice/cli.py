"""The `copyengine` command line."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

from pyservice.engine.priority import priority


def _replay(args: argparse.Namespace) -> int:
    from pyservice.replay import ScenarioError, replay_jsonl

    try:
        text = Path(args.scenario).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        print(f"invalid scenario: cannot read {args.scenario}: {exc}", file=sys.stderr)
        return 2
    try:
        out = replay_jsonl(text)
    except ScenarioError as exc:
        print(f"invalid scenario: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(out)
    return 0


def _stats(args: argparse.Namespace) -> int:
    """`copyengine stats`: provider statistics of a scenario file, or from PostgreSQL."""
    import json

    from pyservice.venue_time import parse_time

    as_of = None
    if args.as_of is not None:
        try:
            as_of = parse_time(args.as_of)
        except ValueError as exc:
            print(f"invalid --as-of: {exc}", file=sys.stderr)
            return 2
    if args.scenario is not None:
        from pyservice.statistics.scenario import ScenarioError, scenario_statistics

        try:
            text = Path(args.scenario).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            print(f"invalid scenario: cannot read {args.scenario}: {exc}", file=sys.stderr)
            return 2
        try:
            records = scenario_statistics(text, as_of)
        except ScenarioError as exc:
            print(f"invalid scenario: {exc}", file=sys.stderr)
            return 2
        records = [r for r in records if args.provider is None or r["provider"] == args.provider]
    else:
        import asyncio

        import asyncpg

        from pyservice.store import statistics
        from pyservice.store.migrate import MigrationError, migrate
        from pyservice.store.server import open_database

        db = open_database(args.database, Path(args.data_dir) if args.data_dir else None)

        async def run() -> list[dict[str, object]]:
            conn = await asyncpg.connect(db.dsn, timeout=10)
            try:
                await migrate(conn)
                if as_of is None:
                    return await statistics.current_records(conn, args.shard, args.provider)
                return await statistics.records_as_of(conn, args.shard, as_of, args.provider)
            finally:
                await conn.close()

        try:
            records = asyncio.run(run())
        except (OSError, asyncpg.PostgresError, MigrationError) as exc:
            print(f"cannot read the statistics: {exc}", file=sys.stderr)
            return 2
        finally:
            db.stop()
    if args.provider is not None and not records:
        print(f"unknown provider '{args.provider}'", file=sys.stderr)
        return 2
    sys.stdout.write("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records))
    return 0


def _socket_bench(args: argparse.Namespace) -> int:
    from pyservice.bench.socket import Timing, run_socket_bench

    engines = ["rust", "naive"] if args.engine == "both" else [args.engine]
    timing = Timing(args.rate, args.warmup, args.realtime)
    try:
        results = {
            e: run_socket_bench(args.followers, args.fills, args.burst, e, args.durable, timing) for e in engines
        }
    except PermissionError as exc:
        if args.realtime is None:
            raise
        print(f"--realtime {args.realtime}: {exc}", file=sys.stderr)  # without CAP_SYS_NICE
        return 2
    out: dict[str, object] = dict(results["rust"] if "rust" in results else results["naive"])
    if len(results) == 2:
        out["naive"] = results["naive"]
        rust_p50 = results["rust"]["latency_us"].get("p50")
        naive_p50 = results["naive"]["latency_us"].get("p50")
        if rust_p50 and naive_p50:
            out["speedup_p50"] = round(naive_p50 / rust_p50, 1)
    text = json.dumps(out, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n", encoding="utf-8")
    ok = all(r["lost"] == 0 and r["duplicates"] == 0 for r in results.values())
    return 0 if ok else 1


def _rate(text: str) -> float:
    value = float(text)
    if not (value >= 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"{text!r} is not a rate: a finite number >= 0")
    return value


def _factor(text: str) -> float:
    value = float(text)
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"{text!r} is not a clock factor: a finite number > 0")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a count: a whole number >= 0")
    return value


def _bench(args: argparse.Namespace) -> int:
    if not args.core:
        return _socket_bench(args)
    from pyservice.bench.core import run_core_bench

    result = run_core_bench(args.followers, iterations=args.iterations, python_iterations=args.python_iterations)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n", encoding="utf-8")
    return 0 if result["agree"] else 1


def _engine(args: argparse.Namespace) -> int:
    from pyservice import logs, venue_auth
    from pyservice.engine.daemon import EngineConfig, EngineDaemon, StartError
    from pyservice.replay import ScenarioError
    from pyservice.runtime import run_until_signal
    from pyservice.store.books import BooksError
    from pyservice.store.journal import RecoveryError
    from pyservice.store.migrate import MigrationError

    logs.setup(args.log_format, args.log_level)
    try:
        key = venue_auth.load_key(args.venue_key_file)
    except venue_auth.VenueKeyError as exc:
        print(f"cannot start: {exc}", file=sys.stderr)
        return 2
    config = EngineConfig(
        books=Path(args.books) if args.books else None,
        listen=args.listen or ["tcp://127.0.0.1:7400"],
        metrics_port=args.metrics_port,
        heartbeat_s=args.heartbeat,
        dead_after_s=args.dead_after,
        max_frame=args.max_frame,
        memory=args.memory,
        database=args.database,
        data_dir=Path(args.data_dir) if args.data_dir else None,
        shard=args.shard,
        redis=args.redis or os.environ.get("REDIS_URL"),
        stream=args.stream,
        log_format=args.log_format,
        snapshot_interval=args.snapshot_interval,
        realtime=args.realtime,
        key=key,
        insecure_listen=args.insecure_listen,
    )
    try:
        daemon = EngineDaemon(config)
        run_until_signal(daemon.run(), daemon.stop)
        if daemon.failure is not None:
            print(f"stopped: {daemon.failure}", file=sys.stderr)
            return 1
        return 0
    except (OSError, UnicodeDecodeError, ScenarioError, ValueError) as exc:
        print(f"invalid books: {exc}", file=sys.stderr)
        return 2
    except (StartError, MigrationError, BooksError, RecoveryError) as exc:
        print(f"cannot start: {exc}", file=sys.stderr)
        return 2


def _migrate(args: argparse.Namespace) -> int:
    import asyncio

    import asyncpg

    from pyservice.store.migrate import MigrationError, migrate
    from pyservice.store.server import open_database

    db = open_database(args.database, Path(args.data_dir) if args.data_dir else None)

    async def run() -> list[str]:
        conn = await asyncpg.connect(db.dsn, timeout=10)
        try:
            return [f"{m.version:04d}_{m.name}" for m in await migrate(conn)]
        finally:
            await conn.close()

    try:
        applied = asyncio.run(run())
    except (OSError, asyncpg.PostgresError, MigrationError) as exc:
        print(f"migration failed: {exc}", file=sys.stderr)
        return 2
    finally:
        db.stop()
    print("applied: " + ", ".join(applied) if applied else "the schema is up to date")
    return 0


def _control(args: argparse.Namespace) -> int:
    """A control change (one of `control.KINDS`): commit it, wait for the engine's verdict."""
    import asyncio

    import asyncpg

    from pyservice import control
    from pyservice.store.migrate import MigrationError, migrate
    from pyservice.store.server import open_database

    change = control.change_of(args.command, vars(args))
    try:
        control.validate(change)
    except control.ControlError as exc:
        print(f"invalid: {exc}", file=sys.stderr)
        return 2
    db = open_database(args.database, Path(args.data_dir) if args.data_dir else None)

    async def run() -> control.Verdict:
        conn = await asyncpg.connect(db.dsn, timeout=10)
        try:
            await migrate(conn)
            change_id = await control.submit(conn, args.shard, change)
            return await control.wait(conn, change_id, args.wait)
        finally:
            await conn.close()

    try:
        v = asyncio.run(run())
    except (OSError, asyncpg.PostgresError, MigrationError, TimeoutError) as exc:
        print(f"not stored: {exc}", file=sys.stderr)
        return 2
    if not v.applied:
        print(
            f"change {v.id} is committed; no engine applied it within {args.wait:g} s "
            f"(shard '{args.shard}' applies it when it runs)"
        )
        return 3
    if v.error == control.ALREADY_SETTLED:
        print(f"change {v.id}: already settled (nothing changed)")
        return 0
    if v.error is not None:
        print(f"refused: {v.error}", file=sys.stderr)
        return 2
    print(f"change {v.id} applied after seq {v.after_seq}")
    return 0


def _read_database(args: argparse.Namespace, what: str, read: Any) -> tuple[int, Any]:
    """Run `read(conn)` on the migrated database: (0, its result), or (2, None) having said
    why it could not."""
    import asyncio

    import asyncpg

    from pyservice.store.migrate import MigrationError, migrate
    from pyservice.store.server import open_database

    db = open_database(args.database, Path(args.data_dir) if args.data_dir else None)

    async def run() -> Any:
        conn = await asyncpg.connect(db.dsn, timeout=10)
        try:
            await migrate(conn)
            return await read(conn)
        finally:
            await conn.close()

    try:
        return 0, asyncio.run(run())
    except (OSError, asyncpg.PostgresError, MigrationError) as exc:
        print(f"cannot read {what}: {exc}", file=sys.stderr)
        return 2, None
    finally:
        db.stop()


def _ledger_check(args: argparse.Namespace) -> int:
    """`copyengine ledger check`: exit 1 naming the first difference."""
    from pyservice.store.ledger_check import Difference, check

    async def read(conn: Any) -> Any:
        try:
            return await check(conn, args.shard)
        except Difference as exc:
            return exc

    code, result = _read_database(args, "the ledger", read)
    if code:
        return code
    if isinstance(result, Exception):
        print(f"ledger differs: {result}", file=sys.stderr)
        return 1
    print(
        f"ledger ok: {result.transactions} transactions balance, {result.statements} statements and "
        f"{result.relationships} relationships agree with the engine, credits agree with the settlements"
    )
    return 0


def _settlements(args: argparse.Namespace) -> int:
    """`copyengine settlements`: the outcomes and their totals, JSON Lines."""
    from pyservice.store.settlements import statement

    code, records = _read_database(
        args, "the settlements", lambda conn: statement(conn, args.shard, args.period, args.provider, args.follower)
    )
    if code:
        return code
    sys.stdout.write("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records))
    return 0


def _fills(args: argparse.Namespace) -> int:
    from pyservice.streams.consumer import main as consume

    url = args.redis or os.environ.get("REDIS_URL")
    if not url:
        print("no Redis: set REDIS_URL or pass --redis URL", file=sys.stderr)
        return 2
    return consume(url, args.stream, args.group, args.consumer, args.count, args.claim_idle)


def _database_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--database",
        metavar="URL",
        help="PostgreSQL URL (default: $DATABASE_URL, else an embedded server under --data-dir)",
    )
    p.add_argument("--data-dir", metavar="DIR", help="the embedded PostgreSQL's data (default ~/.copyengine/pg)")


def _listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def _api(args: argparse.Namespace) -> int:
    """`copyengine api`: the HTTP API and the web page."""
    from pyservice.api.middleware import RateLimits
    from pyservice.api.server import serve
    from pyservice.store.server import open_database

    db = open_database(args.database, Path(args.data_dir) if args.data_dir else None)
    host, port = args.listen
    limits = RateLimits(per_token=args.rate_per_token, per_address=args.rate_per_address)
    try:
        serve(host, port, db.dsn, args.shard, limits, args.pool, args.cache)
    finally:
        db.stop()
    return 0


def _token(args: argparse.Namespace) -> int:
    """`copyengine token create|list|revoke`: API tokens, on the database."""
    from pyservice.store import tokens

    async def read(conn: Any) -> Any:
        if args.token_command == "create":
            try:
                return await tokens.create(conn, args.role, args.subject, args.days, args.label)
            except tokens.TokenError as exc:
                return exc
        if args.token_command == "revoke":
            return await tokens.revoke(conn, args.id)
        return await tokens.listing(conn)

    code, result = _read_database(args, "the tokens", read)
    if code:
        return code
    if isinstance(result, Exception):
        print(f"invalid: {result}", file=sys.stderr)
        return 2
    if args.token_command == "create":
        token_id, token = result
        print(f"token {token_id} ({args.role}{' ' + args.subject if args.subject else ''}); shown once, keep it:")
        print(token)
    elif args.token_command == "revoke":
        if not result:
            print(f"no token {args.id}", file=sys.stderr)
            return 2
        print(f"token {args.id} revoked")
    else:
        sys.stdout.write("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in result))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from pyservice.demo import run_demo

    return run_demo(
        args.providers, args.followers, args.duration, args.rate, args.metrics_port, args.clock, args.api_port
    )


def _venue_sim(argv: list[str]) -> int:
    from pyservice.venue_sim.cli import main as venue_main

    return venue_main(argv)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="copyengine", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    replay = sub.add_parser("replay", help="run the engine core over a scenario file, print every outcome")
    replay.add_argument("scenario", help="scenario JSON (format v2 or v1, see docs/scenario-format.md)")
    replay.set_defaults(func=_replay)

    stats = sub.add_parser(
        "stats",
        help="provider statistics (trades, ROI, drawdown, Sharpe, followers, AUM): of a scenario file, "
        "or from PostgreSQL",
    )
    stats.add_argument("scenario", nargs="?", help="scenario JSON; without it, read the engine's database")
    stats.add_argument("--as-of", metavar="TIME", help="venue time YYYY-MM-DDTHH:MM:SS[.ffffff]Z (default: the latest)")
    stats.add_argument("--provider", metavar="ID", help="only this provider")
    stats.add_argument("--shard", default="main", help="the engine shard (database; default %(default)s)")
    _database_args(stats)
    stats.set_defaults(func=_stats)

    bench = sub.add_parser("bench", help="SRE benchmark over sockets (venue-sim + engine); --core: in-process fan-out")
    bench.add_argument("--core", action="store_true", help="benchmark the in-process fan-out")
    bench.add_argument("--followers", type=int, default=10_000)
    bench.add_argument("--iterations", type=int, default=300, help="timed Rust fan-outs")
    bench.add_argument("--python-iterations", type=int, default=5, help="timed reference fan-outs")
    bench.add_argument("--fills", type=int, default=200, help="socket bench: timed provider executions")
    bench.add_argument("--burst", type=int, default=50, help="socket bench: executions in the throughput burst")
    bench.add_argument(
        "--rate",
        type=_rate,
        default=0.0,
        metavar="PER_S",
        help="socket bench: timed executions per second at most (default 0: back to back)",
    )
    bench.add_argument(
        "--warmup",
        type=_count,
        default=2,
        metavar="N",
        help="socket bench: untimed executions before the timed ones (default 2)",
    )
    bench.add_argument(
        "--realtime",
        type=priority,
        metavar="PRIORITY",
        help="socket bench: the engine's hot path and the venue under SCHED_FIFO at this priority "
        "(see `engine --realtime`); needs CAP_SYS_NICE",
    )
    bench.add_argument(
        "--engine",
        choices=["rust", "naive", "both"],
        default="both",
        help="socket bench: the engine, the newcomer's baseline, or both (ratio in one run)",
    )
    bench.add_argument(
        "--durable",
        action="store_true",
        help="socket bench: the engine persists (DATABASE_URL or embedded) and, with REDIS_URL, "
        "publishes; reports the rate persisted and published",
    )
    bench.add_argument("--json", metavar="PATH", help="also write the result here")
    bench.set_defaults(func=_bench)

    # no abbreviations: `--venue-key SECRET` must not pass for `--venue-key-file`
    engine = sub.add_parser("engine", help="the engine daemon: a venue connects and pushes its log", allow_abbrev=False)
    engine.add_argument(
        "--books",
        help="follower books JSON (providers, platform, follows); seeds an empty "
        "database, or is the whole book with --memory",
    )
    engine.add_argument(
        "--memory",
        action="store_true",
        help="no PostgreSQL: nothing survives the process (benchmarks of the hot path alone)",
    )
    _database_args(engine)
    engine.add_argument("--shard", default="main", help="this engine's name in the journal")
    engine.add_argument(
        "--snapshot-interval",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="how often the state is snapshotted, so a restart re-applies only what came after",
    )
    engine.add_argument(
        "--redis", metavar="URL", help="publish copy fills to Redis Streams (default $REDIS_URL; neither: off)"
    )
    engine.add_argument("--stream", help="the Redis stream of copy fills (default copyengine:fills:<shard>)")
    engine.add_argument(
        "--listen",
        action="append",
        metavar="ENDPOINT",
        help="tcp://HOST:PORT or unix:PATH; repeatable (default tcp://127.0.0.1:7400)",
    )
    engine.add_argument(
        "--venue-key-file",
        metavar="PATH",
        help="the pre-shared key the venue signs its hello with (at least 32 bytes, one trailing newline "
        "ignored; default $COPYENGINE_VENUE_KEY); a TCP listener needs one",
    )
    engine.add_argument(
        "--insecure-listen",
        action="store_true",
        help="without a key, listen on TCP anyway and check no MAC: only on a trusted link (tests, benches)",
    )
    engine.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on this port")
    engine.add_argument("--heartbeat", type=float, default=1.0, help="seconds between heartbeats")
    engine.add_argument("--dead-after", type=float, default=5.0, help="drop a venue silent this long")
    engine.add_argument("--max-frame", type=int, default=64 * 1024 * 1024, help="largest frame accepted, bytes")
    engine.add_argument(
        "--realtime",
        type=priority,
        metavar="PRIORITY",
        help="run the hot path (the venue reader and its fan-out helper) under SCHED_FIFO at this "
        "priority, 1-99, so PostgreSQL and the workers sharing the cores cannot preempt a "
        "fan-out; needs CAP_SYS_NICE",
    )
    engine.add_argument("--log-format", choices=["plain", "json"], default="plain")
    engine.add_argument("--log-level", default="INFO")
    engine.set_defaults(func=_engine)

    from pyservice import control

    for kind in control.KINDS.values():
        c = sub.add_parser(kind.command, help=f"control plane: {kind.help}")
        for f in control.fields_of(kind):
            # argparse formats help with %: a literal one is %%
            spec: dict[str, Any] = {"help": f.help.replace("%", "%%"), "type": f.type}
            if f.choices is not None:
                spec["choices"] = f.choices
            if f.metavar is not None:
                spec["metavar"] = f.metavar
            if f.positional:
                c.add_argument(f.name, **spec)
            else:
                c.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name, required=f.required, **spec)
        _database_args(c)
        c.add_argument("--shard", default="main", help="the engine that applies it")
        c.add_argument("--wait", type=float, default=10.0, help="seconds to wait for the engine's verdict")
        c.set_defaults(func=_control)

    fills = sub.add_parser("fills", help="consume the copy fills stream with a consumer group (an example)")
    fills.add_argument("--group", required=True, help="consumer group; created at the stream's start if new")
    fills.add_argument("--consumer", help="this consumer's name (default host-pid)")
    fills.add_argument("--redis", metavar="URL", help="default $REDIS_URL")
    fills.add_argument("--stream", default="copyengine:fills:main", help="one stream per engine shard")
    fills.add_argument("--count", type=int, help="exit after this many entries")
    fills.add_argument(
        "--claim-idle",
        type=float,
        default=30.0,
        help="take over entries another consumer left unacknowledged this long (s)",
    )
    fills.set_defaults(func=_fills)

    ledger = sub.add_parser("ledger", help="the profit-share ledger in PostgreSQL")
    ledger_sub = ledger.add_subparsers(dest="ledger_command", required=True)
    check = ledger_sub.add_parser(
        "check",
        help="verify the ledger: transactions balance, relationships agree with the engine, credits with the "
        "settlements; exit 1 naming the first difference",
    )
    check.add_argument("--shard", help="only this engine shard (default: every shard in the ledger)")
    _database_args(check)
    check.set_defaults(func=_ledger_check)

    settled = sub.add_parser(
        "settlements", help="settlement outcomes (charged, deferred, partial, written off) and totals, JSON Lines"
    )
    settled.add_argument("--period", metavar="P", help="only this period (2026-W48, 2026-11, manual-<n>, unfollow)")
    settled.add_argument("--provider", metavar="ID", help="only this provider's")
    settled.add_argument("--follower", metavar="ID", help="only this follower's")
    settled.add_argument("--shard", default="main", help="the engine shard (default %(default)s)")
    _database_args(settled)
    settled.set_defaults(func=_settlements)

    api = sub.add_parser("api", help="the HTTP API (/v1, /openapi.json, /docs) and the leaderboard web page")
    api.add_argument("--listen", type=_listen, default=("127.0.0.1", 8000), metavar="HOST:PORT")
    api.add_argument("--shard", default="main", help="the engine shard it reads and sends changes to")
    api.add_argument("--pool", type=_count, default=10, help="PostgreSQL connections at most")
    api.add_argument(
        "--rate-per-token", type=float, default=20.0, help="requests/s per bearer token, burst 2 s (0: no limit)"
    )
    api.add_argument(
        "--rate-per-address",
        type=float,
        default=50.0,
        help="requests/s per client address, requests with a token included, burst 2 s (0: no limit)",
    )
    api.add_argument(
        "--cache",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="keep a leaderboard page this long (default %(default)s: the projector's refresh; 0: never)",
    )
    _database_args(api)
    api.set_defaults(func=_api)

    token = sub.add_parser("token", help="API bearer tokens (create shows the token once; stored hashed)")
    token_sub = token.add_subparsers(dest="token_command", required=True)
    create = token_sub.add_parser("create", help="a new token")
    create.add_argument("role", choices=("follower", "provider", "operator"))
    create.add_argument("subject", nargs="?", help="the follower's or provider's id (none for operator)")
    create.add_argument("--days", type=int, default=90, help="valid this many days (default %(default)s)")
    create.add_argument("--label", default="", help="a note: whose it is")
    listing = token_sub.add_parser("list", help="every token (never the token itself), JSON Lines")
    revoke = token_sub.add_parser("revoke", help="revoke a token at once")
    revoke.add_argument("id", type=int)
    for p in (create, listing, revoke):
        _database_args(p)
        p.set_defaults(func=_token)

    mig = sub.add_parser("migrate", help="apply the PostgreSQL schema migrations")
    _database_args(mig)
    mig.set_defaults(func=_migrate)

    demo = sub.add_parser("demo", help="venue-sim and engine with traffic and a live view; Ctrl-C stops")
    demo.add_argument("--providers", type=int, default=5)
    demo.add_argument("--followers", type=int, default=3000)
    demo.add_argument("--rate", type=float, default=20.0, help="provider executions per second")
    demo.add_argument("--duration", type=float, help="seconds to trade once the engine is up (default: until Ctrl-C)")
    demo.add_argument("--metrics-port", type=int, default=9464)
    demo.add_argument("--api-port", type=int, default=8000, help="the API and web page on 127.0.0.1:PORT")
    demo.add_argument(
        "--clock",
        type=_factor,
        default=172800.0,
        metavar="FACTOR",
        help="the venue's simulated seconds per real second (default %(default)s: two days a second, from 2026-09-01)",
    )
    demo.set_defaults(func=_demo)

    sub.add_parser("venue-sim", help="the venue simulator (see `copyengine venue-sim --help`)", add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["venue-sim"]:  # its own parser owns every option after the name
        return _venue_sim(argv[1:])
    args = build_parser().parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())

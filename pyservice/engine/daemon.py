"""The engine daemon: listens for a venue, applies its sequenced log, writes copy orders.

Everything between a frame arriving and its orders frame being written is synchronous:
`data_received` decodes, `receive` checks the seq, one Rust call applies the message
(`pyservice.dispatch`; GIL released inside) and returns the finished frame, one
`transport.write` sends it. No await, no per-follower Python. The state lives in
`LiveEngine`; this module owns sessions, sequencing, heartbeats and metrics.

Durable (the default): the books come from PostgreSQL, every applied message is handed
to the journal (`pyservice.store.journal`, write-behind), and a start first recovers the
state the journal committed (`pyservice.store.recovery`), then asks the venue to resume
from the watermark + 1. Control changes are placed and applied through
`pyservice.control`. `--memory` keeps everything in this process only (tests, benchmarks
of the hot path alone).

Who may be the venue: every connection gets a fresh nonce (`challenge`) and must answer
with a `hello` whose MAC proves the venue key (`pyservice.venue_auth`) before anything
else is read from it; until then it is not the venue (it replaces no connection, is
held to small frames and to the dead-peer timeout). The venue session is pinned by the
first message of it that is applied, not by a hello.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import stat
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar, cast

from pyservice import protocol as P
from pyservice import venue_auth
from pyservice._engine_core import Execution, LiveEngine, Outcome, Reports
from pyservice.dispatch import UnexpectedMessage, apply_venue_message
from pyservice.endpoints import Endpoint, parse_endpoint
from pyservice.engine.priority import make_realtime
from pyservice.faults import KILL
from pyservice.metrics import EngineMetrics

if TYPE_CHECKING:
    import asyncpg

    from pyservice import control
    from pyservice.store.journal import Journal
    from pyservice.store.server import Database

log = logging.getLogger("copyengine.engine")
T = TypeVar("T")


@dataclass
class EngineConfig:
    #: a books file: the books of a `memory` engine; seeds an empty database otherwise
    books: Path | None = None
    listen: list[str] = field(default_factory=lambda: ["tcp://127.0.0.1:7400"])
    metrics_port: int | None = None
    heartbeat_s: float = 1.0
    dead_after_s: float = 5.0
    max_frame: int = P.DEFAULT_MAX_FRAME
    #: no PostgreSQL: state lives and dies with this process
    memory: bool = False
    #: PostgreSQL URL; None: $DATABASE_URL, else an embedded server under `data_dir`
    database: str | None = None
    data_dir: Path | None = None
    #: this engine's row in the journal (one per shard of providers)
    shard: str = "main"
    #: Redis URL for the copy fills stream; None: publication off
    redis: str | None = None
    #: None: copyengine:fills:<shard>
    stream: str | None = None
    #: for child processes (the stream publisher)
    log_format: str = "plain"
    #: seconds between engine snapshots (taken by the projector)
    snapshot_interval: float = 30.0
    #: SCHED_FIFO priority of the hot path's threads (`priority.py`); None: the default
    realtime: int | None = None
    #: the venue key (`venue_auth.load_key`): every hello must carry its MAC
    key: bytes | None = field(default=None, repr=False)
    #: without a key, listen on TCP anyway and check no MAC (a trusted link: tests, benches)
    insecure_listen: bool = False


#: the largest frame read from a connection before its hello is verified (a hello is ~100 bytes)
PRE_AUTH_MAX_FRAME = 1024


class StartError(Exception):
    """The engine cannot start: a one-line reason for the operator."""


class EngineDaemon:
    def __init__(self, config: EngineConfig, engine: LiveEngine | None = None) -> None:
        self.config = config
        if engine is None and config.memory:
            if config.books is None:
                raise StartError("an engine with --memory needs --books")
            engine = LiveEngine.from_books(config.books.read_text(encoding="utf-8"))
        #: None until `open_store` has recovered the committed state
        self.engine: LiveEngine = engine  # type: ignore[assignment]
        self.journal: Journal | None = None
        #: why the venue is not being read (see `_hold`)
        self._holds: set[str] = set()
        #: The venue's newest seq at its first hello to this process. A process that
        #: died may have applied (and sent the orders of) messages up to there without
        #: committing them; a new control change placed before them would give them
        #: other orders. So new changes wait until this process has applied them again.
        self._catch_up_to: int | None = None
        self._caught_up = asyncio.Event()
        self._database: Database | None = None
        #: the control path's connection (`_db`), kept: each round trip of a change is
        #: made while the venue is not read
        self._control_db: asyncpg.Connection | None = None
        #: the connection holding this engine's ownership of its shard
        self._owner: asyncpg.Connection | None = None
        self.metrics = EngineMetrics()
        self.applied_seq = 0
        #: the engine's count of venue-time corrections, as last seen (see `_clock_corrected`)
        self._clock_corrections = engine.clock_corrections if engine is not None else 0
        #: The venue session whose log this engine has applied: pinned by the first
        #: message applied (or recovered), never by a hello alone.
        self.session: str | None = None
        self.venue_head = 0
        #: the venue: the connection whose hello was verified last
        self._conn: VenueConnection | None = None
        #: connections that have not yet sent a verified hello
        self._pending: set[VenueConnection] = set()
        #: the unix sockets this process created: (path, inode), removed on stop
        self._unix_paths: list[tuple[str, int]] = []
        self._servers: list[asyncio.AbstractServer] = []
        self._stopped = asyncio.Event()
        #: why the engine stopped on its own (None: it was asked to)
        self.failure: str | None = None
        self.endpoints: list[Endpoint] = [parse_endpoint(e) for e in config.listen]
        tcp = [e for e in self.endpoints if e.unix_path is None]
        if tcp and config.key is None and not config.insecure_listen:
            raise StartError(
                f"listening on {tcp[0]} needs a venue key (--venue-key-file PATH or ${venue_auth.KEY_ENV}); "
                "--insecure-listen only on a trusted link"
            )
        if config.key is None:
            log.warning("no venue key: the venue's hello is not authenticated", extra={"listen": config.listen})

    # -- lifecycle ---------------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        for ep in self.endpoints:
            if ep.unix_path is not None:
                sock = self._bind_unix(ep.unix_path)
                server = await loop.create_unix_server(lambda: VenueConnection(self), sock=sock)
            else:
                server = await loop.create_server(lambda: VenueConnection(self), ep.host, ep.port)
                if ep.port == 0:  # report the port the OS chose
                    ep.port = server.sockets[0].getsockname()[1]
            self._servers.append(server)
        if self.config.metrics_port is not None:
            from prometheus_client import start_http_server

            start_http_server(self.config.metrics_port, registry=self.metrics.registry)
        log.info(
            "engine listening",
            extra={"listen": [str(e) for e in self.endpoints], "relationships": self.engine.relationships},
        )

    def _bind_unix(self, path: str) -> socket.socket:
        """A listening socket at `path` that only this user may connect to: created under
        umask 0177, so it is never wider than 0600. A stale socket there is replaced; a
        live one or anything else is an error."""
        if os.path.lexists(path):
            if not stat.S_ISSOCK(os.lstat(path).st_mode):
                raise StartError(f"unix:{path} exists and is not a socket")
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                try:
                    probe.connect(path)
                except OSError:
                    os.unlink(path)  # nothing listens: left by a process that died
                else:
                    raise StartError(f"unix:{path}: another process is listening there")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            sock.bind(path)
        except OSError:
            sock.close()
            raise
        finally:
            os.umask(old)
        self._unix_paths.append((path, os.stat(path).st_ino))
        return sock

    def _remove_unix_sockets(self) -> None:
        """Remove the sockets this process created (not one a newer process put there)."""
        for path, inode in self._unix_paths:
            with contextlib.suppress(OSError):
                if os.stat(path).st_ino == inode:
                    os.unlink(path)
        self._unix_paths.clear()

    async def run(self) -> None:
        tasks: list[asyncio.Task[None]] = []
        if self.config.realtime is not None:
            try:
                tids = make_realtime(self.config.realtime)
            except PermissionError as exc:
                raise StartError(f"--realtime {self.config.realtime}: {exc}") from None
            log.info("the hot path runs under SCHED_FIFO", extra={"priority": self.config.realtime, "threads": tids})
        try:
            if not self.config.memory:
                await self.open_store()
            await self.start()
            tasks.append(asyncio.create_task(self._heartbeats()))
            if self.journal is not None:
                tasks.append(asyncio.create_task(self.journal.run()))
                tasks.append(asyncio.create_task(self._control_changes()))
                if self.config.redis is None:
                    log.info("Redis publication is off: set REDIS_URL (or --redis) to stream copy fills")
                else:
                    tasks.append(asyncio.create_task(self._publish(self.config.redis)))
                    # the settlement notifications: their own stream, from the projector's rows
                    tasks.append(
                        asyncio.create_task(
                            self._child("pyservice.streams.notifications", "--redis", self.config.redis)
                        )
                    )
                tasks.append(
                    asyncio.create_task(
                        self._child(
                            "pyservice.store.projector", "--snapshot-interval", str(self.config.snapshot_interval)
                        )
                    )
                )
            for t in tasks:
                t.add_done_callback(self._task_done)
            await self._stopped.wait()
        finally:
            self._stopped.set()  # also: the owner connection closing below is no loss
            for s in self._servers:
                s.close()
            self._remove_unix_sockets()
            if self._conn is not None:
                self._conn.drop("engine stopping", kind=None)
            for pending in list(self._pending):
                pending.drop("engine stopping", kind=None)
            if self.journal is not None:
                try:
                    flushed = await self.journal.flush(timeout=10)
                except Exception as exc:  # noqa: BLE001  fenced: nothing more may be written
                    log.error("the last commit failed", extra={"error": repr(exc)})
                    flushed = False
                if not flushed:
                    log.error(
                        "stopping with inputs not committed; the next start resumes from the watermark",
                        extra={"committed_seq": self.journal.committed, "applied_seq": self.applied_seq},
                    )
            for t in tasks:
                t.cancel()
            if self._control_db is not None:
                self._control_db.terminate()
            await asyncio.gather(*tasks, return_exceptions=True)  # children stopped first
            if self._owner is not None:
                self._owner.terminate()
            if self._database is not None:
                self._database.stop()

    async def open_store(self) -> None:
        """Migrate, load (or seed) the books, recover the committed state."""
        import asyncpg

        from pyservice.store import books, journal, migrate, recovery
        from pyservice.store.server import open_database

        c = self.config
        try:
            self._database = open_database(c.database, c.data_dir)
            conn = await asyncpg.connect(self._database.dsn, timeout=10)
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            raise StartError(f"cannot reach PostgreSQL: {exc}") from exc
        try:
            # one engine per shard: a second one would write the same journal
            if not await self._take_owner():
                raise StartError(f"shard '{c.shard}' belongs to another running engine")
            await migrate.migrate(conn)
            text = c.books.read_text(encoding="utf-8") if c.books is not None else None
            if not await books.has_books(conn):
                if text is None:
                    raise StartError("the database holds no follower books: start once with --books FILE")
                n = await books.seed_books(conn, text)
                log.info("books stored in PostgreSQL", extra={"relationships": n})
            stored = await books.load_books(conn)
            if text is not None and not books.same_books(stored, text):
                raise StartError(
                    "the database already holds different books; change them through the control "
                    "plane, or start without --books"
                )
            committed = await journal.ensure_shard(conn, c.shard)
            started = time.perf_counter()

            # the newest snapshot, else the books: then the journal after it
            async def seed() -> str:
                return stored

            recovered = await recovery.recover_engine(conn, c.shard, committed.watermark, seed)
            self.engine, self.applied_seq = recovered.engine, recovered.applied_seq
            self._clock_corrections = self.engine.clock_corrections
        finally:
            await conn.close()
        self.session = committed.session
        self.journal = journal.Journal(self._database.dsn, c.shard, committed, self.metrics)
        self.journal.on_pressure(lambda paused: self._hold("journal", paused))
        log.info(
            "state recovered from PostgreSQL",
            extra={
                "watermark": committed.watermark,
                "session": committed.session,
                "snapshot_seq": recovered.snapshot_seq,
                "rebuild_s": round(time.perf_counter() - started, 3),
                "pending_orders": self.engine.working_count,
                "now_us": self.engine.now_us,
            },
        )

    def _owner_lost(self, _conn: object) -> None:
        """The connection holding this shard closed (PostgreSQL restarted): take the lock
        again. Meanwhile the journal's conditional watermark keeps out a second engine."""
        if not self._stopped.is_set():
            task = asyncio.get_running_loop().create_task(self._retake_owner())
            task.add_done_callback(self._retaken)

    def _retaken(self, task: asyncio.Task[None]) -> None:
        """It ends when it has the lock again; only a failure stops the engine."""
        if not task.cancelled() and task.exception() is not None:
            self._task_done(task)

    async def _take_owner(self) -> bool:
        """Own this engine's shard on a connection of its own (False: another engine
        does); losing that connection calls `_owner_lost`."""
        import asyncpg

        from pyservice.store import locks

        assert self._database is not None
        conn = await asyncpg.connect(self._database.dsn, timeout=10)
        if not await locks.take(conn, "engine", self.config.shard, wait_s=5):
            conn.terminate()
            return False
        self._owner = conn
        conn.add_termination_listener(self._owner_lost)
        return True

    async def _retake_owner(self) -> None:
        while True:
            try:
                owned = await self._take_owner()
            except Exception:  # noqa: BLE001  still down
                await asyncio.sleep(0.5)
                continue
            if not owned:
                raise _Fatal(f"shard '{self.config.shard}' was taken by another engine")
            log.info("shard ownership taken again", extra={"shard": self.config.shard})
            return

    async def _publish(self, redis_url: str) -> None:
        from pyservice.streams.publisher import default_stream

        stream = self.config.stream or default_stream(self.config.shard)
        log.info("publishing copy fills", extra={"stream": stream})
        await self._child("pyservice.streams.publisher", "--redis", redis_url, "--stream", stream)

    async def _child(self, module: str, *args: str) -> None:
        """Run a worker over the committed journal (the stream publisher, the projector)
        as a child process, restarted if it dies: this event loop never waits on it."""
        import sys

        assert self._database is not None
        cmd = [
            sys.executable,
            "-m",
            module,
            "--database",
            self._database.dsn,
            "--shard",
            self.config.shard,
            "--log-format",
            self.config.log_format,
            "--log-level",
            logging.getLevelName(log.getEffectiveLevel()),
            *args,
        ]
        env = {**os.environ, "COPYENGINE_PARENT": str(os.getpid())}
        while True:
            try:
                child = await asyncio.create_subprocess_exec(*cmd, env=env)
            except OSError as exc:
                log.error("cannot start a worker; retrying", extra={"worker": module, "error": repr(exc)})
                await asyncio.sleep(1.0)
                continue
            try:
                code = await child.wait()
            except asyncio.CancelledError:
                with contextlib.suppress(ProcessLookupError):
                    child.terminate()
                try:
                    await asyncio.wait_for(child.wait(), 5)
                except TimeoutError:
                    with contextlib.suppress(ProcessLookupError):
                        child.kill()
                raise
            log.error("a worker exited; restarting it", extra={"worker": module, "exit": code})
            await asyncio.sleep(1.0)

    async def _control_changes(self) -> None:
        """Apply control changes as they are committed (NOTIFY, and a poll as backstop)."""
        import asyncpg

        from pyservice import control

        assert self._database is not None
        wake = asyncio.Event()
        while True:
            try:
                conn = await asyncpg.connect(self._database.dsn, timeout=10)
                try:
                    await conn.add_listener(control.CHANNEL, lambda *_: wake.set())
                    await self._caught_up.wait()
                    while True:
                        for change in await control.pending(conn, self.config.shard):
                            if not await self._place_and_apply(change):
                                break  # in id order: the next ones wait for this one
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(wake.wait(), 1.0)
                        wake.clear()
                finally:
                    conn.terminate()
            except Exception as exc:  # noqa: BLE001  PostgreSQL down or restarting: retry, never stop
                log.warning("control changes: PostgreSQL unavailable, retrying", extra={"error": repr(exc)})
                await asyncio.sleep(1.0)

    async def _db(self, what: str, action: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        """`action` on the control path's connection (opened again after a failure),
        retried until PostgreSQL answers. Kept open: a control change holds the venue
        while it is placed and its verdict recorded, and a connect is a round trip more."""
        import asyncpg

        assert self._database is not None
        while True:
            try:
                if self._control_db is None or self._control_db.is_closed():
                    self._control_db = await asyncpg.connect(self._database.dsn, timeout=10, command_timeout=30)
                return await action(self._control_db)
            except Exception as exc:  # noqa: BLE001  down or restarting: the caller cannot go on without it
                if self._control_db is not None:
                    self._control_db.terminate()
                    self._control_db = None
                log.warning("retrying against PostgreSQL", extra={"what": what, "error": repr(exc)})
                await asyncio.sleep(0.5)

    async def _place_and_apply(self, change: control.Change) -> bool:
        """Place and apply one control change (`control.place_and_apply`) at a recorded
        point: the venue is not read, and the journal is committed up to the applied
        seq, so recovery meets the change in exactly this state. False if the journal
        could not be committed (try later)."""
        from pyservice import control

        self._hold("control", True)
        try:
            if self.journal is not None and not await self.journal.flush(timeout=30):
                log.warning("control change waits: the journal is not committed", extra={"change": change.id})
                return False
            seq = self.applied_seq

            def send(frame: bytes) -> None:
                if self._conn is not None:
                    self._conn.send(frame)

            outcome = await control.place_and_apply(self._db, self.engine, change, seq, send)
            error = control.verdict_of(outcome)
            self.metrics.copy_orders.inc(outcome.orders)
            self.metrics.stops.inc(outcome.stops)
            self.metrics.control_changes.labels("refused" if error else "applied").inc()
            log.info(
                "control change applied" if error is None else "control change refused by the copy rules",
                extra={"change": change.id, "after_seq": seq, "error": error},
            )
            return True
        finally:
            self._hold("control", False)

    def _check_caught_up(self) -> None:
        if self._catch_up_to is not None and self.applied_seq >= self._catch_up_to:
            self._caught_up.set()
            log.info(
                "caught up with the venue: control changes apply from here", extra={"applied_seq": self.applied_seq}
            )

    def _hold(self, reason: str, on: bool) -> None:
        """Stop reading from the venue while any reason holds (the journal is behind, a
        control change is being applied); the venue keeps its log meanwhile."""
        before = bool(self._holds)
        if on:
            self._holds.add(reason)
        else:
            self._holds.discard(reason)
        if before == bool(self._holds):
            return
        for conn in [self._conn, *self._pending]:
            if conn is None or conn.transport is None:
                continue
            if self._holds:
                conn.transport.pause_reading()
            else:
                conn.transport.resume_reading()
                conn.last_heard = time.monotonic()  # silence while paused was ours

    def stop(self) -> None:
        self._stopped.set()

    def _task_done(self, task: asyncio.Task[None]) -> None:
        """A background task never ends on its own: if one does, stop (and exit non-zero:
        a supervisor restarts the engine, which recovers) rather than go on without it."""
        if task.cancelled() or self._stopped.is_set():
            return
        exc = task.exception()
        self.failure = f"{task.get_coro().__qualname__} ended: {exc!r}"  # type: ignore[union-attr]
        log.critical("stopping: a background task failed", extra={"error": self.failure})
        self.stop()

    async def _heartbeats(self) -> None:
        while True:
            await asyncio.sleep(self.config.heartbeat_s)
            for pending in list(self._pending):
                if self._holds:  # its hello waits (not read): keep both sides waiting
                    pending.last_heard = time.monotonic()
                    pending.send(P.encode(P.Heartbeat(seq=self.applied_seq)))
                elif time.monotonic() - pending.last_heard > self.config.dead_after_s:
                    # `last_heard` of a pending connection: its connect (its data does not move it)
                    pending.drop(f"no hello for {self.config.dead_after_s}s", kind="no_hello")
            conn = self._conn
            if conn is None:
                continue
            if self._holds:
                conn.last_heard = time.monotonic()  # not reading: the venue's silence is ours
            elif time.monotonic() - conn.last_heard > self.config.dead_after_s:
                conn.drop(f"no frame for {self.config.dead_after_s}s", kind="dead_peer")
                continue
            conn.send(P.encode(P.Heartbeat(seq=self.applied_seq)))  # held or not: we are alive

    # -- connections ---------------------------------------------------------------

    def connected(self, conn: VenueConnection) -> None:
        """A new connection: challenge it. It is not the venue until its hello is verified."""
        self._pending.add(conn)
        if self._holds and conn.transport is not None:
            conn.transport.pause_reading()
        conn.send(P.encode(P.Challenge(P.PROTOCOL_VERSION, conn.nonce)))

    def attach(self, conn: VenueConnection) -> None:
        self._pending.discard(conn)
        if self._conn is not None:
            self._conn.drop("a new venue connection replaces this one", kind=None)
        self._conn = conn
        conn.last_heard = time.monotonic()
        self.metrics.reconnects.inc()
        if self._holds and conn.transport is not None:
            conn.transport.pause_reading()

    def detach(self, conn: VenueConnection) -> None:
        self._pending.discard(conn)
        if self._conn is conn:
            self._conn = None
            self.metrics.connected.set(0)

    def hello(self, conn: VenueConnection, msg: P.Hello) -> None:
        """Verify a connection's hello (version, MAC, session) before anything else of it
        is used; then it is the venue: resume it from the watermark."""
        if msg.version != P.PROTOCOL_VERSION:
            raise _Refused("version", f"venue speaks protocol {msg.version}, this engine {P.PROTOCOL_VERSION}")
        key = self.config.key
        if key is not None:
            if msg.mac is None:
                raise _Refused("auth", "hello without a MAC")
            if not venue_auth.verify(key, conn.nonce, msg.session, msg.mac):
                raise _Refused("auth", "hello with a bad MAC (not the venue key, or not this connection's nonce)")
        if self.session is not None and msg.session != self.session:
            raise _Refused("session", f"venue session '{msg.session}' is not the applied session '{self.session}'")
        self.attach(conn)
        conn.reader.max_frame = self.config.max_frame
        conn.session, conn.hello_seq = msg.session, msg.seq
        if self.session is not None:
            self._set_catch_up(msg.seq)
        self.venue_head = msg.seq
        conn.send(P.encode(P.Resume(from_seq=self.applied_seq + 1)))
        # Orders sent on a connection that then broke may never have arrived: send every
        # working one again; the venue answers `duplicate` for those it has.
        again = self.engine.resend_working(self.applied_seq)
        if again.frame is not None:
            conn.send(again.frame)
        self.metrics.connected.set(1)
        self._lag()
        log.info(
            "venue session",
            extra={
                "session": msg.session,
                "venue_seq": msg.seq,
                "resume_from": self.applied_seq + 1,
                "resent": again.orders,
            },
        )

    def _set_catch_up(self, venue_seq: int) -> None:
        """The first hello of the pinned session: what a process that died may have applied."""
        if self._catch_up_to is None:
            self._catch_up_to = venue_seq
            self._check_caught_up()

    def _pin(self, conn: VenueConnection) -> None:
        """The first message of a session is applied: from now on it is the only one."""
        assert conn.session is not None  # greeted
        self.session = conn.session
        if self.journal is not None:
            self.journal.session = conn.session
        log.info("venue session pinned", extra={"session": conn.session})
        self._set_catch_up(conn.hello_seq)

    # -- the sequenced log -----------------------------------------------------------

    def receive(self, conn: VenueConnection, msg: P.NativeVenueMessage, payload: bytes) -> None:
        """A message after the hello: a heartbeat, or the next entry of the venue's log,
        applied to the engine, its orders sent, and handed to the journal."""
        if isinstance(msg, P.Heartbeat):
            self.venue_head = max(self.venue_head, msg.seq)
            self._lag()
            return
        if isinstance(msg, P.Hello):
            raise _Refused("hello", "a second hello on one connection")
        seq = msg.seq
        if seq <= self.applied_seq:
            return  # resent from before the resume point: already applied
        if seq != self.applied_seq + 1:
            raise _Refused("gap", f"seq {seq} after {self.applied_seq}")
        if self.session is None:
            self._pin(conn)
        started = time.perf_counter_ns()
        outcome = apply_venue_message(self.engine, msg)
        if outcome.frame is not None:
            if KILL.armed("send") and isinstance(msg, Execution):
                conn.send(outcome.frame[: len(outcome.frame) // 2])
                KILL.passing("send")
            conn.send(outcome.frame)
        if isinstance(msg, Execution):
            self.metrics.fanout_seconds.observe((time.perf_counter_ns() - started) / 1e9)
            if outcome.orders:
                self.metrics.provider_orders.labels(msg.provider).inc(outcome.orders)
        if outcome.frame is not None:
            self.engine.file_staged()  # the orders are out: now the table of working orders
        if KILL.armed("settle") and outcome.settlements:
            KILL.passing("settle")
        if self.engine.clock_corrections != self._clock_corrections:
            self._clock_corrected(msg)
        self.applied_seq = seq
        self.venue_head = max(self.venue_head, seq)
        if not self._caught_up.is_set():
            self._check_caught_up()
        if self.journal is not None:
            kind = msg.kind if isinstance(msg, Reports) else msg.tag
            accepted = msg if isinstance(msg, Execution) and not outcome.errors else None
            self.journal.append(seq, kind, payload, accepted)
        self._count(outcome, msg)

    def _clock_corrected(self, msg: P.NativeEntry) -> None:
        """`msg` was stamped earlier than its predecessor: the engine took it at its own
        (later) time, as a recovery replay will. Nothing is refused; it is counted and logged."""
        self._clock_corrections = self.engine.clock_corrections
        self.metrics.clock_corrections.inc()
        log.warning(
            "venue time went back: the entry counts at the engine's time",
            extra={"seq": msg.seq, "ts": msg.ts, "taken": self.engine.now_us},
        )

    def _count(self, outcome: Outcome, msg: P.NativeEntry) -> None:
        m = self.metrics
        if outcome.orders:
            m.copy_orders.inc(outcome.orders)
        for reason, n in outcome.skips.items():
            m.skips.labels(reason).inc(n)
        for cap, n in outcome.clamps.items():
            m.clamps.labels(cap).inc(n)
        if outcome.stops:
            m.stops.inc(outcome.stops)
        if isinstance(msg, Reports):
            if msg.kind == "fills":
                m.fills.inc(len(msg) - len(outcome.errors))
            for reason, n in msg.reasons():
                m.rejects.labels(reason).inc(n)
        if outcome.errors:
            m.rule_errors.inc(len(outcome.errors))
            log.warning(
                "refused by the copy rules",
                extra={"seq": msg.seq, "errors": outcome.errors[:5], "count": len(outcome.errors)},
            )
        m.applied_seq.set(self.applied_seq)
        m.venue_time.set(self.engine.now_us / 1e6)
        m.pending.set(self.engine.working_count)
        self._lag()

    def _lag(self) -> None:
        self.metrics.seq_lag.set(max(0, self.venue_head - self.applied_seq))


class _Fatal(Exception):
    """The engine cannot go on safely (it lost its shard to another engine)."""


class _Refused(Exception):
    """A protocol violation: drop the connection (the venue reconnects and resumes)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class VenueConnection(asyncio.Protocol):
    def __init__(self, daemon: EngineDaemon) -> None:
        self.daemon = daemon
        # small frames until the hello is verified: a stranger makes the engine buffer little
        self.reader = P.venue_reader(min(PRE_AUTH_MAX_FRAME, daemon.config.max_frame), native_reports=True)
        self.transport: asyncio.Transport | None = None
        #: signed by the venue's hello; used once (a second hello is refused)
        self.nonce = venue_auth.new_nonce()
        self.greeted = False
        #: the verified hello's session and seq
        self.session: str | None = None
        self.hello_seq = 0
        self.last_heard = time.monotonic()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it
        self.transport = cast(asyncio.Transport, transport)
        self.daemon.connected(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.daemon.detach(self)
        self.transport = None
        if self.greeted:
            log.info("venue disconnected", extra={"applied_seq": self.daemon.applied_seq})

    def send(self, frame: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(frame)

    def drop(self, reason: str, kind: str | None) -> None:
        if kind is not None:
            self.daemon.metrics.protocol_errors.labels(kind).inc()
            peer = self.transport.get_extra_info("peername") if self.transport is not None else None
            log.error(
                "protocol error, dropping the venue" if self.greeted else "protocol error, dropping a connection",
                extra={"kind": kind, "reason": reason, "applied_seq": self.daemon.applied_seq, "peer": peer},
            )
        if self.transport is not None:
            self.transport.abort()
        self.daemon.detach(self)

    def data_received(self, data: bytes) -> None:
        if self.greeted:
            self.last_heard = time.monotonic()
        try:
            for msg, payload in self.reader.feed_framed(data):
                if self.transport is None:
                    return  # dropped while applying an earlier message of this read
                if not self.greeted:
                    if not isinstance(msg, P.Hello):
                        raise _Refused("no_hello", f"{type(msg).__name__} before hello")
                    self.daemon.hello(self, msg)
                    self.greeted = True
                else:
                    self.daemon.receive(self, msg, payload)
        except P.ProtocolError as exc:
            self.drop(str(exc), kind="bad_frame")
        except _Refused as exc:
            self.drop(str(exc), kind=exc.kind)
        except UnexpectedMessage as exc:
            self.drop(str(exc), kind="unexpected")

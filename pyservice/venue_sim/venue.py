"""`VenueSim`: the exchange copyengine trades against, as a library."""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import time
from collections import deque
from collections.abc import Callable
from contextlib import suppress
from typing import IO

import msgspec

from pyservice import protocol
from pyservice.endpoints import parse_endpoint
from pyservice.protocol import CopyFills, CopyRejects, UncheckedOrders
from pyservice.venue_sim import fixed
from pyservice.venue_sim.accounts import Instrument, Matcher, Outcome
from pyservice.venue_sim.bots import Bots
from pyservice.venue_sim.clock import VenueClock
from pyservice.venue_sim.config import Pause, ScriptStep, Timed, VenueConfig
from pyservice.venue_sim.log import LogEntry, SequencedLog
from pyservice.venue_sim.session import Faults, Link
from pyservice.venue_sim.stats import VenueStats

logger = logging.getLogger("copyengine.venue")

OrdersHook = Callable[[int, int, int], None]


class OrderRecord(msgspec.Struct, omit_defaults=True):
    """One `--record` line: an order as received and how it was answered."""

    recv_ns: int  # time.monotonic_ns() when its frame arrived (the on_orders clock)
    frame_seq: int
    client_order_id: str
    follower: str
    provider: str
    symbol: str
    side: str
    type: str
    qty: str
    price: str | None
    reduce_only: bool
    leverage: int
    outcome: str  # "fill" or "reject"
    fill_qty: str | None = None
    fill_price: str | None = None
    reason: str | None = None


class VenueSim:
    """A matching venue: a sequenced log of instruments, marks, provider executions and
    copy-order reports, served to the engine over one reconnecting connection."""

    def __init__(self, config: VenueConfig) -> None:
        self.config = config
        self.session = msgspec.convert(config.session or f"venue-{secrets.token_hex(6)}", protocol.Name)
        self.stats = VenueStats()
        self.log = SequencedLog()
        self.clock = VenueClock(config.clock, config.start_us)
        self.matcher = Matcher(self.stats, random.Random(f"{config.seed}:fills"), config.partial_fill_pct)
        self._hooks: list[OrdersHook] = []
        self._stopping = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._latency_ns = int(config.fill_latency_ms * 1_000_000)
        self._delayed: deque[tuple[int, UncheckedOrders, int]] = deque()  # (due ns, frame, recv ns)
        self._timer: asyncio.TimerHandle | None = None
        self._record: IO[bytes] | None = None
        self._record_encoder = msgspec.json.Encoder()
        self.link = Link(
            parse_endpoint(config.connect),
            self.log,
            self.session,
            self.stats,
            self._receive,
            heartbeat=config.heartbeat,
            dead_after=config.dead_after,
            max_frame=config.max_frame,
            key=config.key,
            faults=Faults(config.disconnect_at_seq, config.garbage_at_seq),
        )
        funding = fixed.parse(config.funding)
        if config.books is not None:
            for follow in config.books.follows:
                cash = fixed.parse(follow.allocation, fixed.MONEY_DIGITS) * funding // fixed.QTY_SCALE
                self.matcher.open_account(follow.follower, follow.provider, cash)
        self._bots: Bots | None = None
        if config.script is None:
            for spec in config.instruments:
                self.publish(spec.instrument)
            for spec in config.instruments:
                self.publish(protocol.MarkPrice(0, 0, spec.instrument.symbol, spec.price))
            providers = [p.id for p in config.books.providers] if config.books else list(config.providers)
            self._bots = Bots(
                providers,
                [Instrument(spec.instrument) for spec in config.instruments],
                fixed.parse(config.provider_cash, fixed.MONEY_DIGITS),
                config.seed,
            )

    # -- public API -------------------------------------------------------------------

    def on_orders(self, callback: OrdersHook) -> None:
        """Call `callback(frame_seq, n_orders, recv_time_ns)` for every `orders` frame,
        before it is matched; `recv_time_ns` is `time.monotonic_ns()` at arrival."""
        self._hooks.append(callback)

    def publish(self, entry: LogEntry, at: int | None = None) -> int:
        """Append `entry` to the log (its seq is assigned, and its `ts`: `at`, or the
        venue's clock) and return that seq.

        Instruments and marks take effect for matching at once; an execution moves the
        mark to its price, as a trade prints there.
        """
        if isinstance(entry, protocol.Instrument):
            self.matcher.set_instrument(entry)
        elif isinstance(entry, protocol.MarkPrice):
            self.matcher.set_mark(entry.symbol, entry.price)
            self.stats.marks += 1
        elif isinstance(entry, protocol.ProviderExecution):
            self.matcher.set_mark(entry.symbol, entry.price)
            self.stats.executions += 1
        return self.log.append(entry, self.clock.stamp(at))

    @property
    def connected(self) -> bool:
        """True while an engine has resumed on the current connection."""
        return self.link.live.is_set()

    def stop(self) -> None:
        """End `run`; safe from a signal handler or another thread."""
        loop = self._loop
        try:
            here = asyncio.get_running_loop()
        except RuntimeError:
            here = None
        if loop is None or loop is here or loop.is_closed():
            self._stopping.set()
        else:
            loop.call_soon_threadsafe(self._stopping.set)

    async def run(self) -> None:
        """Serve until `stop()` or the configured duration; then close everything."""
        self._loop = asyncio.get_running_loop()
        if self.config.record:
            self._record = open(self.config.record, "ab")
        tasks = [asyncio.create_task(self.link.run())]
        if self.config.script is not None:
            tasks.append(asyncio.create_task(self._play(self.config.script)))
        elif self._bots is not None:
            tasks.append(asyncio.create_task(self._trade(self._bots)))
        for task in tasks:
            task.add_done_callback(self._on_task_done)
        try:
            with suppress(TimeoutError):
                async with asyncio.timeout(self.config.duration):
                    await self._stopping.wait()
            for task in tasks:
                if task.done():
                    task.result()  # a producer or the link failed: raise it
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self._timer is not None:
                self._timer.cancel()
            if self._record is not None:
                self._record.close()
                self._record = None
            logger.info(
                "venue-sim stopped", extra={"session": self.session, "seq": self.log.newest, **self.stats.as_dict()}
            )

    def _on_task_done(self, task: asyncio.Task[None]) -> None:
        # a failing producer or link ends the run, which then raises its error
        if not task.cancelled() and task.exception() is not None:
            self.stop()

    # -- producers --------------------------------------------------------------------

    async def _trade(self, bots: Bots) -> None:
        """Marks every `mark_interval`, `rate` executions per second, on a fixed schedule."""
        rate, interval = self.config.rate, self.config.mark_interval
        loop = asyncio.get_running_loop()
        start = loop.time()
        marks_done = execs_done = 0
        while True:
            elapsed = loop.time() - start
            if interval > 0:
                # after a stall the walk takes one step, not all the missed ones
                due = int(elapsed / interval)
                if due > marks_done:
                    for mark in bots.marks(self.matcher.marks):
                        self.publish(mark)
                    marks_done = due
            if rate > 0:
                due = int(elapsed * rate)
                while execs_done < due:
                    execution = bots.execution(self.matcher.marks)
                    if execution is not None:
                        self.publish(execution)
                    execs_done += 1
            wake = [(marks_done + 1) * interval] if interval > 0 else []
            if rate > 0:
                wake.append((execs_done + 1) / rate)
            if not wake:
                return
            await asyncio.sleep(max(0.0, start + min(wake) - loop.time()))

    async def _play(self, script: list[ScriptStep]) -> None:
        """Publish the script in order, only while an engine is connected."""
        for step in script:
            if isinstance(step, Pause):
                await asyncio.sleep(step.seconds)
            else:
                await self.link.live.wait()
                if isinstance(step, Timed):
                    self.publish(step.entry, step.ts)
                else:
                    self.publish(step)

    # -- orders -----------------------------------------------------------------------

    def _receive(self, frame: UncheckedOrders, recv_ns: int) -> None:
        self.stats.order_frames += 1
        self.stats.orders_received += len(frame.orders)
        for hook in self._hooks:
            hook(frame.seq, len(frame.orders), recv_ns)
        if not self._latency_ns:
            self._match(frame, recv_ns)
            return
        self._delayed.append((recv_ns + self._latency_ns, frame, recv_ns))
        if self._timer is None:
            self._arm()

    def _arm(self) -> None:
        loop = asyncio.get_running_loop()
        due_ns = self._delayed[0][0]
        self._timer = loop.call_later(max(0, due_ns - time.monotonic_ns()) / 1e9, self._release)

    def _release(self) -> None:
        """Match, in arrival order, every delayed frame whose latency has passed."""
        self._timer = None
        now = time.monotonic_ns()
        while self._delayed and self._delayed[0][0] <= now:
            _, frame, recv_ns = self._delayed.popleft()
            self._match(frame, recv_ns)
        if self._delayed:
            self._arm()

    def _match(self, frame: UncheckedOrders, recv_ns: int) -> None:
        outcomes: list[Outcome] | None = [] if self._record is not None else None
        fills, rejects = self.matcher.match(frame.orders, outcomes)
        if fills:
            self.publish(CopyFills(0, 0, fills))
        if rejects:
            self.publish(CopyRejects(0, 0, rejects))
        if outcomes is not None and self._record is not None:
            self._write_record(frame.seq, recv_ns, outcomes)

    def _write_record(self, frame_seq: int, recv_ns: int, outcomes: list[Outcome]) -> None:
        assert self._record is not None
        lines = [
            OrderRecord(
                recv_ns,
                frame_seq,
                o.client_order_id,
                o.follower,
                o.provider,
                o.symbol,
                o.side,
                o.type,
                o.qty,
                o.price,
                o.reduce_only,
                o.leverage,
                "fill" if reason is None else "reject",
                qty,
                price,
                reason,
            )
            for o, qty, price, reason in outcomes
        ]
        self._record.write(self._record_encoder.encode_lines(lines))
        # flushed per frame: an audit of a killed run still has every answered order
        self._record.flush()

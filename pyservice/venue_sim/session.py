"""The venue's connection to the engine (docs/protocol.md, "Session").

The venue is the client: it connects, waits for the engine's `challenge`, answers with
`hello` (signed with the venue key, if it has one), waits for `resume`, sends the log
from `from_seq` on and then every new entry, heartbeats, and drops the connection when
the engine is silent for the dead-peer timeout or breaks the protocol. Then it connects
again, with backoff, and the engine resumes from its own watermark.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass

from pyservice import venue_auth
from pyservice.endpoints import Endpoint
from pyservice.protocol import (
    PROTOCOL_VERSION,
    Challenge,
    Heartbeat,
    Hello,
    ProtocolError,
    Resume,
    UncheckedOrders,
    check_order_ids,
    encode,
    unchecked_engine_reader,
)
from pyservice.venue_sim.log import SequencedLog
from pyservice.venue_sim.stats import VenueStats

logger = logging.getLogger("copyengine.venue")

RECONNECT_MIN = 0.1
RECONNECT_MAX = 2.0
_READ_SIZE = 1 << 20
#: log entries per write while catching up, so heartbeats and the dead-peer check go on
_BATCH = 4096


async def open_connection(endpoint: Endpoint) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    if endpoint.unix_path is not None:
        return await asyncio.open_unix_connection(endpoint.unix_path, limit=_READ_SIZE)
    return await asyncio.open_connection(endpoint.host, endpoint.port, limit=_READ_SIZE)


@dataclass
class Faults:
    """Test faults, each fired once in the life of the process (then set to None)."""

    #: when entry N is first sent: write half its frame, close the socket
    disconnect_at_seq: int | None = None
    #: before entry N is first sent: a frame whose payload is not msgpack
    garbage_at_seq: int | None = None

    def armed(self, first: int, last: int) -> bool:
        return any(n is not None and first <= n <= last for n in (self.disconnect_at_seq, self.garbage_at_seq))


class Link:
    """Keeps the venue connected to the engine for as long as `run` runs."""

    def __init__(
        self,
        endpoint: Endpoint,
        log: SequencedLog,
        session: str,
        stats: VenueStats,
        on_orders: Callable[[UncheckedOrders, int], None],
        *,
        heartbeat: float = 1.0,
        dead_after: float = 5.0,
        max_frame: int,
        key: bytes | None = None,
        faults: Faults | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.log = log
        self.session = session
        self.stats = stats
        #: called with each `orders` message and its receive time (`time.monotonic_ns`)
        self.on_orders = on_orders
        self.heartbeat = heartbeat
        self.dead_after = dead_after
        self.max_frame = max_frame
        #: signs the hello; None: an engine that checks no MAC (`--insecure-listen`)
        self.key = key
        self.faults = faults or Faults()
        #: set while a connection is resumed (the engine is being fed)
        self.live = asyncio.Event()

    async def run(self) -> None:
        delay = RECONNECT_MIN
        while True:
            try:
                reader, writer = await open_connection(self.endpoint)
            except OSError as exc:
                logger.debug("cannot connect to %s: %s", self.endpoint, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECONNECT_MAX)
                continue
            self.stats.connections += 1
            if self.stats.connections > 1:
                self.stats.reconnects += 1
            logger.info("connected to %s", self.endpoint)
            if await _Connection(self, reader, writer).run():
                delay = RECONNECT_MIN
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX)


class _Connection:
    def __init__(self, link: Link, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.link = link
        self.reader = reader
        self.writer = writer
        self.loop = asyncio.get_running_loop()
        self.last_heard = self.loop.time()
        self.challenged = asyncio.Event()
        self.nonce = b""
        self.resumed = asyncio.Event()
        self.from_seq = 1

    async def run(self) -> bool:
        """Serve one connection until it drops; True if the engine resumed on it."""
        tasks = [asyncio.create_task(self._read()), asyncio.create_task(self._write())]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                exc = task.exception()
                if isinstance(exc, ProtocolError):
                    self.link.stats.protocol_errors += 1
                    logger.warning("protocol error from the engine, dropping the connection: %s", exc)
                elif isinstance(exc, OSError):
                    logger.info("connection lost: %s", exc)
                elif exc is not None:
                    raise exc
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.link.live.clear()
            self.writer.close()
            with suppress(OSError):
                await self.writer.wait_closed()
        return self.resumed.is_set()

    async def _read(self) -> None:
        frames = unchecked_engine_reader(self.link.max_frame)
        on_orders = self.link.on_orders
        while True:
            data = await self.reader.read(_READ_SIZE)
            if not data:
                if self.challenged.is_set() and not self.resumed.is_set():
                    logger.warning(
                        "the engine refused the hello (the venue key, the session or the version; see its log)"
                    )
                else:
                    logger.info("the engine closed the connection")
                return
            recv_ns = time.monotonic_ns()
            self.last_heard = self.loop.time()
            for msg in frames.feed(data):
                if isinstance(msg, UncheckedOrders):
                    check_order_ids(msg.orders)
                    on_orders(msg, recv_ns)
                elif isinstance(msg, Challenge):
                    self._challenge(msg)
                elif isinstance(msg, Resume):
                    self._resume(msg)
                elif isinstance(msg, Heartbeat):
                    self.link.stats.engine_applied_seq = msg.seq

    def _challenge(self, msg: Challenge) -> None:
        if self.challenged.is_set():
            raise ProtocolError("a second challenge on one connection")
        if msg.version != PROTOCOL_VERSION:
            raise ProtocolError(f"challenge with version {msg.version}, this venue speaks {PROTOCOL_VERSION}")
        self.nonce = msg.nonce
        self.challenged.set()

    def _resume(self, msg: Resume) -> None:
        if not self.challenged.is_set():
            raise ProtocolError("resume before the challenge")
        if self.resumed.is_set():
            raise ProtocolError("a second resume on one connection")
        if msg.version != PROTOCOL_VERSION:
            raise ProtocolError(f"resume with version {msg.version}, this venue speaks {PROTOCOL_VERSION}")
        newest = self.link.log.newest
        if msg.from_seq > newest + 1:
            raise ProtocolError(f"resume from seq {msg.from_seq}, but the newest seq is {newest}")
        self.from_seq = max(1, msg.from_seq)
        self.resumed.set()

    def _silent(self) -> bool:
        if self.loop.time() - self.last_heard < self.link.dead_after:
            return False
        logger.warning("nothing heard from the engine for %.1f s, dropping the connection", self.link.dead_after)
        return True

    async def _write(self) -> None:
        link, log, writer = self.link, self.link.log, self.writer
        if not await self._heard(self.challenged):
            return
        mac = None if link.key is None else venue_auth.hello_mac(link.key, self.nonce, link.session)
        writer.write(encode(Hello(log.newest, PROTOCOL_VERSION, link.session, mac)))
        if not await self._drain() or not await self._heard(self.resumed):
            return
        link.live.set()
        next_seq = self.from_seq
        logger.info("engine resumed from seq %d (newest %d)", next_seq, log.newest)
        hb_due = self.loop.time() + link.heartbeat
        while True:
            newest = log.newest
            if next_seq <= newest:
                last = min(newest, next_seq + _BATCH - 1)
                if not self._send(next_seq, last):
                    return
                next_seq = last + 1
                if not await self._drain():
                    return
            if self._silent():
                return
            now = self.loop.time()
            if now >= hb_due:
                writer.write(encode(Heartbeat(log.newest)))
                hb_due = now + link.heartbeat
            if next_seq > log.newest:
                await log.wait_beyond(next_seq - 1, min(hb_due, self.last_heard + link.dead_after) - now)

    async def _heard(self, event: asyncio.Event) -> bool:
        """Wait for `event`; False if the engine fell silent first."""
        while not event.is_set():
            if self._silent():
                return False
            with suppress(TimeoutError):
                async with asyncio.timeout(self.last_heard + self.link.dead_after - self.loop.time()):
                    await event.wait()
        return True

    async def _drain(self) -> bool:
        """Wait until the socket takes what was written; False if the engine fell silent."""
        while True:
            try:
                async with asyncio.timeout(self.last_heard + self.link.dead_after - self.loop.time()):
                    await self.writer.drain()
                return True
            except TimeoutError:
                if self._silent():
                    return False

    def _send(self, first: int, last: int) -> bool:
        """Write entries `first`..`last`; False if a fault cut the connection."""
        frames = self.link.log.frames(first, last)
        faults = self.link.faults
        if not faults.armed(first, last):
            self.writer.write(b"".join(frames))
            return True
        out: list[bytes] = []
        for seq, frame in enumerate(frames, first):
            if seq == faults.garbage_at_seq:
                faults.garbage_at_seq = None
                # 0xc1 is never valid msgpack, so the frame cannot decode by chance
                out.append((16).to_bytes(4, "big") + b"\xc1" + os.urandom(15))
                logger.info("fault: garbage frame before seq %d", seq)
            if seq == faults.disconnect_at_seq:
                faults.disconnect_at_seq = None
                out.append(frame[: len(frame) // 2])
                self.writer.write(b"".join(out))
                self.writer.close()
                logger.info("fault: cut the connection in the middle of seq %d", seq)
                return False
            out.append(frame)
        self.writer.write(b"".join(out))
        return True

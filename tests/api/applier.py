"""Applies the pending control changes of a database that has no engine running, with
the engine's own rules and the daemon's own function (`control.place_and_apply`), in a
thread of its own: what the API's tests need to see verdicts (applied, refused) without
a venue. Every change is placed after seq 0 (no venue input ever arrives)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import asyncpg

from pyservice import control
from pyservice._engine_core import LiveEngine


class ChangeApplier:
    def __init__(self, dsn: str, books: str, shard: str = "main") -> None:
        self.dsn, self.shard = dsn, shard
        self.engine = LiveEngine.from_books(books)
        self.applied: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def __enter__(self) -> ChangeApplier:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(10)

    async def _run(self) -> None:
        conn = await asyncpg.connect(self.dsn)

        async def db(what: str, action: Any) -> Any:
            return await action(conn)

        try:
            while not self._stop.is_set():
                for change in await control.pending(conn, self.shard):
                    await control.place_and_apply(db, self.engine, change, 0, lambda frame: None)
                    self.applied.append(change.id)
                await asyncio.sleep(0.02)
        finally:
            await conn.close()

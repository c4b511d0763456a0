"""Replaying committed history into an engine: the journal's inputs, with each control
change applied after the seq it was placed at. One place for the engine's recovery and
the projector's catch-up, so both meet every change in the same state."""

from __future__ import annotations

import asyncpg

from pyservice import control
from pyservice import protocol as P
from pyservice._engine_core import LiveEngine
from pyservice.engine.daemon import apply_message
from pyservice.store.journal import replay_inputs


async def replay(
    conn: asyncpg.Connection, shard: str, engine: LiveEngine, start: int, upto: int, *, changes_at_upto: bool
) -> list[tuple[int, str | None]]:
    """Bring `engine` from `start` (inputs up to it and the changes placed before it
    applied, as a snapshot holds them) to `upto`: the changes placed at `start`, then
    each input with the changes placed after it. Those placed at `upto` itself only with
    `changes_at_upto` (the projector leaves them until the watermark has passed `upto`).

    Returns (change id, verdict) of the changes applied whose verdict was never recorded
    (their engine died after placing them).
    """
    last = upto if changes_at_upto else upto - 1
    after: dict[int, list[tuple[control.Change, bool]]] = {}
    for seq, change, done in await control.placed(conn, shard, start, last):
        after.setdefault(seq, []).append((change, done))
    verdicts: list[tuple[int, str | None]] = []

    def changes_after(seq: int) -> None:
        for change, done in after.pop(seq, []):
            outcome = engine.control(seq, change.id, change.text)
            if not done:
                verdicts.append((change.id, outcome.errors[0] if outcome.errors else None))

    reader = P.venue_reader(native_reports=True)
    changes_after(start)
    async for seq, payload in replay_inputs(conn, shard, upto, after=start):
        apply_message(engine, reader.decode(payload))
        changes_after(seq)
    return verdicts

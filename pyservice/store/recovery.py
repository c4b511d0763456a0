"""Recovery: an engine rebuilt from what PostgreSQL committed, in one path for the
engine's start and the projector's catch-up.

    newest loadable snapshot at or below the target (else the books at seq 0)
      → `history`: the committed journal after it, each input followed by the control
        changes placed after its seq (`control.placed`), in the order the engine met them
      → `reapply`: each input through `dispatch.apply_venue_message`, each change
        through `control.apply`
      → `Recovered`: the engine at the target; the daemon's `hello` then asks the venue
        to resume at `applied_seq + 1`

`recover_engine` is the daemon's start (target: the watermark; it also records the
verdicts a dead engine left unrecorded), `catch_up` the projector's (target: its
projected position, writing nothing). The projector's steps walk the same `history`.

"Replay" is the scenario runner's word (`copyengine replay`); here inputs are re-applied.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass

import asyncpg

from pyservice import control
from pyservice import protocol as P
from pyservice._engine_core import LiveEngine
from pyservice.dispatch import apply_venue_message
from pyservice.store.journal import RecoveryError, committed_inputs
from pyservice.store.snapshots import restore_newest


@dataclass(frozen=True)
class Recovered:
    engine: LiveEngine
    #: the snapshot it started from (0: the books)
    snapshot_seq: int
    #: the last input applied: the venue resumes at the next one
    applied_seq: int


@dataclass(frozen=True)
class Input:
    """A committed venue input (its frame payload)."""

    seq: int
    payload: bytes


@dataclass(frozen=True)
class Placed:
    """A control change placed after `seq`; `decided`: its verdict is recorded."""

    seq: int
    change: control.Change
    decided: bool


async def history(
    conn: asyncpg.Connection,
    shard: str,
    start: int,
    upto: int,
    *,
    changes_at_upto: bool,
    taken: Collection[int] = (),
) -> AsyncGenerator[Input | Placed, None]:
    """What an engine at `start` (inputs up to it and the changes placed before it
    applied, as a snapshot holds them; and those of `taken`, placed at `start`) meets
    until `upto`: the other changes placed at `start`, then each input with the changes
    placed after it. Those placed at `upto` itself only with `changes_at_upto` (the
    projector leaves them until the watermark has passed `upto`, or their verdicts are
    recorded: until then the engine may still place one there). The journal is checked
    to be gap-free (`committed_inputs`)."""
    last = upto if changes_at_upto else upto - 1
    after: dict[int, list[Placed]] = {}
    for seq, change, done in await control.placed(conn, shard, start, last):
        if seq == start and change.id in taken:
            continue
        after.setdefault(seq, []).append(Placed(seq, change, done))
    for placed in after.pop(start, []):
        yield placed
    async for seq, payload in committed_inputs(conn, shard, upto, after=start):
        yield Input(seq, payload)
        for placed in after.pop(seq, []):
            yield placed


async def reapply(
    conn: asyncpg.Connection, shard: str, engine: LiveEngine, start: int, upto: int, *, changes_at_upto: bool
) -> list[tuple[int, str | None]]:
    """Bring `engine` from `start` to `upto` through `history`. Returns (change id,
    verdict) of the changes applied whose verdict was never recorded (their engine died
    after placing them)."""
    reader = P.venue_reader(native_reports=True)
    verdicts: list[tuple[int, str | None]] = []
    # aclosing: a failure mid-way closes the cursor's transaction with the walk
    steps = history(conn, shard, start, upto, changes_at_upto=changes_at_upto)
    async with contextlib.aclosing(steps):
        async for step in steps:
            if isinstance(step, Input):
                apply_venue_message(engine, reader.decode(step.payload))
            else:
                outcome = control.apply(engine, step.seq, step.change)
                if not step.decided:
                    verdicts.append((step.change.id, control.verdict_of(outcome)))
    return verdicts


async def recover_engine(
    conn: asyncpg.Connection, shard: str, watermark: int, books: Callable[[], Awaitable[str]]
) -> Recovered:
    """The engine at `watermark` for the daemon's start, with the changes placed after
    it too; the verdicts its dead predecessor left unrecorded are recorded. The venue
    resumes at `watermark + 1`."""
    engine, start = await restore_newest(conn, shard, watermark, books)
    beyond = await control.placed(conn, shard, watermark + 1)
    if beyond:
        raise RecoveryError(
            f"control change {beyond[0][1].id} is placed after seq {beyond[0][0]}, past the watermark {watermark}"
        )
    # every change placed up to the watermark was committed before it was applied
    verdicts = await reapply(conn, shard, engine, start, watermark, changes_at_upto=True)
    for change_id, error in verdicts:
        await control.decided(conn, change_id, error)
    return Recovered(engine, start, watermark)


async def catch_up(
    conn: asyncpg.Connection,
    shard: str,
    projected: int,
    books: Callable[[], Awaitable[str]],
    taken: Sequence[int] = (),
) -> Recovered:
    """The projector's engine at its projected position, with the changes placed after
    it that it has projected already (`taken`, in the order it applied them; the others
    are left to its next step), writing nothing: the steps that first passed these
    changes recorded their verdicts."""
    engine, start = await restore_newest(conn, shard, projected, books)
    await reapply(conn, shard, engine, start, projected, changes_at_upto=False)
    if taken:
        at = {c.id: c for seq, c, _ in await control.placed(conn, shard, projected, projected)}
        for change_id in taken:
            control.apply(engine, projected, at[change_id])
    return Recovered(engine, start, projected)

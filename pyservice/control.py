"""The control plane: follow, unfollow, deposit, withdraw, pause, resume, settings, settle
and the settlement terms (profit_share, platform).

One module owns a control change's whole life, so a new kind of change (settlement)
is one entry in `KINDS` here, its rule in the Rust core, and their tests. The path, and
who calls each step:

    validate   caller (CLI, API)    the Rust parser checks the fields (`check_control`)
       │
    submit     caller               INSERT into control_changes + NOTIFY `CHANNEL`, one
       │                            transaction; then `wait` polls for the verdict
    pending    engine daemon        woken by NOTIFY (or its 1 s poll): changes in id order
       │
    place      daemon, through      after_seq = the applied seq, committed before the
       │       `place_and_apply`    change applies (journal flushed, venue not read)
    apply      daemon               the Rust rules for the state it meets → Outcome; its
       │                            orders frame is sent
    decided    daemon               the verdict: None, or the rules' reason → `wait`
       │
    project    projector            in the step that passes after_seq: the rows the
                                    change moves (`Kind.project`: high watermarks)

Recovery after a crash (`pyservice.store.recovery`) reads the changes by after_seq
(`placed`) and meets each again through `apply` at the same point, recording the
verdicts its dead engine left unrecorded. `KINDS` is also the command line:
`copyengine <kind> FOLLOWER PROVIDER [fields]` is built from it.

This module sits below the store and the engine (import-linter's layers in
`pyproject.toml`): it knows PostgreSQL's `control_changes` and `high_watermarks`, and
the engine only as `LiveEngine`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias, TypeVar

from pyservice._engine_core import LiveEngine, Outcome, check_control

if TYPE_CHECKING:  # the CLI builds its parser from `KINDS` without loading the driver
    import asyncpg

#: NOTIFY channel; the payload is the shard
CHANNEL = "copyengine_control"

T = TypeVar("T")


class ControlError(Exception):
    """The change is invalid on its own; nothing was stored."""


class Misplaced(Exception):
    """The change is placed at another seq than this engine's: another engine runs this shard."""


@dataclass(frozen=True)
class Change:
    id: int
    text: str
    #: its place in the order the engine applied changes (`placed_n`; 0 while pending)
    placed_n: int = 0


@dataclass(frozen=True)
class Verdict:
    id: int
    #: where the engine applied it; None while pending
    after_seq: int | None
    #: False until the engine has applied it and recorded `error`
    applied: bool
    #: the rules' reason for refusing it (it then changed nothing)
    error: str | None
    #: the API token that made it (None: the command line)
    token_id: int | None = None


# -- the kinds ------------------------------------------------------------------------

#: a kind's effect on the rows the projector keeps, in the transaction of its step
Project: TypeAlias = "Callable[[asyncpg.Connection, str, int, dict[str, Any]], Awaitable[None]]"


def _same(text: Any) -> Any:
    return text


@dataclass(frozen=True)
class Field:
    """One field of a change: its JSON key and how a caller takes it (the CLI's
    arguments). Decimals stay strings: the Rust rules parse and check them."""

    name: str
    help: str
    #: a positional argument; else the option `--name-with-dashes`
    positional: bool = False
    required: bool = False
    choices: tuple[str, ...] | None = None
    #: the parser of the argument's text (`int` for a count)
    type: Callable[[str], Any] = str
    metavar: str | None = None
    #: the parsed argument as the change's JSON value
    value: Callable[[Any], Any] = _same


@dataclass(frozen=True)
class Kind:
    name: str
    help: str
    #: after `follower` and `provider`, in the order they are stored
    fields: tuple[Field, ...] = ()
    project: Project | None = None
    #: whether the change names a relationship (`follower`, `provider`) first
    who: bool = True

    @property
    def command(self) -> str:
        """The CLI's subcommand: the name with dashes (`profit-share`)."""
        return self.name.replace("_", "-")


async def _follow(conn: asyncpg.Connection, shard: str, seq: int, change: dict[str, Any]) -> None:
    """A follow starts the high watermark at the allocation."""
    await conn.execute(
        "INSERT INTO high_watermarks (follower_id, provider_id, hwm, reason, shard, seq) "
        "VALUES ($1, $2, $3, 'follow', $4, $5) ON CONFLICT (follower_id, provider_id) DO UPDATE SET "
        "hwm = EXCLUDED.hwm, reason = 'follow', shard = EXCLUDED.shard, seq = EXCLUDED.seq, updated_at = now()",
        change["follower"],
        change["provider"],
        Decimal(change["allocation"]),
        shard,
        seq,
    )


async def _move(conn: asyncpg.Connection, shard: str, seq: int, change: dict[str, Any]) -> None:
    """A deposit or a withdrawal moves the high watermark by its amount (never creating a fee)."""
    kind, amount = change["type"], Decimal(change["amount"])
    await conn.execute(
        "UPDATE high_watermarks SET hwm = hwm + $3, reason = $4, shard = $5, seq = $6, updated_at = now() "
        "WHERE follower_id = $1 AND provider_id = $2",
        change["follower"],
        change["provider"],
        amount if kind == "deposit" else -amount,
        kind,
        shard,
        seq,
    )


async def _unfollow(conn: asyncpg.Connection, shard: str, seq: int, change: dict[str, Any]) -> None:
    """An unfollow removes the high watermark."""
    await conn.execute(
        "DELETE FROM high_watermarks WHERE follower_id = $1 AND provider_id = $2",
        change["follower"],
        change["provider"],
    )


#: the identity of every change, before its fields
WHO = (
    Field("follower", "the follower's id", positional=True),
    Field("provider", "the provider's id", positional=True),
)
_DECIMAL = "DECIMAL"
#: copy settings: a follow may set them, `settings` changes some
SETTINGS = (
    Field("mode", "how a copy is sized", choices=("proportional", "fixed_amount", "multiplier")),
    Field("fixed_amount", "each copy's margin, in mode fixed_amount", metavar=_DECIMAL),
    Field("multiplier", "the proportional size times this, in mode multiplier", metavar=_DECIMAL),
    Field("max_open_trades", "open copied positions at most", type=int),
    Field("max_per_trade_pct", "one copy's margin at most, % of the equity", metavar=_DECIMAL),
    Field("max_loss_pct", "stop copying when the equity is this % below the base", metavar=_DECIMAL),
    Field("slippage_pct", "the copy's limit price this % from the provider's price", metavar=_DECIMAL),
    Field(
        "stop_copy_on_close",
        "close the copied positions on unfollow (default true)",
        choices=("true", "false"),
        value=lambda text: {"true": True, "false": False}.get(text, text),
    ),
)
_AMOUNT = Field("amount", "decimal amount", positional=True)
#: a period a settlement closes: an ISO week (2026-W48) or a month (2026-11)
PERIOD = re.compile(r"\A\d{4}-(W(0[1-9]|[1-4]\d|5[0-3])|(0[1-9]|1[0-2]))\Z")

#: every kind of control change, in the order the CLI lists them
KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        Kind(
            "follow",
            "start copying a provider",
            (Field("allocation", "decimal amount", required=True), *SETTINGS),
            _follow,
        ),
        Kind("unfollow", "stop copying a provider", project=_unfollow),
        Kind("deposit", "add money to a relationship", (_AMOUNT,), _move),
        Kind("withdraw", "take free cash out", (_AMOUNT,), _move),
        Kind("pause", "stop copying, keep the positions"),
        Kind("resume", "copy again after a pause"),
        Kind("settings", "change some copy settings", SETTINGS),
        Kind(
            "settle",
            "settle the profit shares now (applied once: a period already settled changes nothing)",
            (
                Field(
                    "period",
                    "the period it closes, an ISO week 2026-W48 or a month 2026-11 (default: a manual "
                    "settlement, labelled manual-<change id>)",
                    metavar="LABEL",
                ),
            ),
            who=False,
        ),
        Kind(
            "profit_share",
            "set a provider's profit share, at most the platform's max_profit_share_pct; in force "
            "from the next period boundary (at once without a schedule)",
            (
                Field("provider", "the provider's id", positional=True),
                Field("profit_share_pct", "the share of a follower's new profit, %", positional=True, metavar="PCT"),
            ),
            who=False,
        ),
        Kind(
            "platform",
            "set the platform's settlement terms: the fee from the next period boundary, the "
            "maximum share and the schedule at once (its first boundary is the first after the "
            "engine's venue time)",
            (
                Field("platform_fee_pct", "the platform's % of each provider's charge", metavar="PCT"),
                Field(
                    "max_profit_share_pct",
                    "the highest profit share a provider may have, in (0, 100] (refused below a "
                    "provider's share: lower that first)",
                    metavar="PCT",
                ),
                Field("settlement", "when settlements run by themselves", choices=("weekly", "monthly", "none")),
            ),
            who=False,
        ),
    )
}
#: the kind of each CLI subcommand
COMMANDS: dict[str, Kind] = {k.command: k for k in KINDS.values()}


def change_of(command: str, given: dict[str, Any]) -> dict[str, Any]:
    """The change of the kind of subcommand `command` (or its name) from the caller's
    values by field name (None: not given)."""
    kind = COMMANDS.get(command) or KINDS[command]
    change: dict[str, Any] = {"type": kind.name}
    for f in fields_of(kind):
        value = given.get(f.name)
        if value is not None:
            change[f.name] = f.value(value)
    return change


def fields_of(kind: Kind) -> tuple[Field, ...]:
    """A kind's fields in order, its relationship's first."""
    return (*WHO, *kind.fields) if kind.who else kind.fields


# -- the caller's side: validate, commit, wait -------------------------------------------


#: A `settle` is not an event of the Rust control parser (`check_control`): the engine
#: applies it through `LiveEngine.settle` (`apply` below), so its format, at most a
#: period label, is checked here.
def _check_settle(change: dict[str, Any]) -> str | None:
    extra = sorted(set(change) - {"type", "period"})
    if extra:
        return f"settle takes only period; unknown field '{extra[0]}'"
    period = change.get("period")
    if period is not None and not (isinstance(period, str) and PERIOD.match(period)):
        return f"period {json.dumps(period)} is not an ISO week (2026-W48) or a month (2026-11)"
    return None


def validate(change: dict[str, Any]) -> str:
    """The change as stored text; ControlError with the rules' message if invalid."""
    text = json.dumps(change, separators=(",", ":"))
    reason = _check_settle(change) if change.get("type") == "settle" else None
    if reason is None and change.get("type") != "settle":  # settle's rule is `_check_settle`
        reason = check_control(text)
    if reason is not None:
        raise ControlError(reason)
    return text


async def submit(conn: asyncpg.Connection, shard: str, change: dict[str, Any], token_id: int | None = None) -> int:
    """Check, commit and announce a change (made by API token `token_id`, None: the
    command line); returns its id."""
    text = validate(change)
    async with conn.transaction():
        change_id: int = await conn.fetchval(
            "INSERT INTO control_changes (shard, change, token_id) VALUES ($1, $2::jsonb, $3) RETURNING id",
            shard,
            text,
            token_id,
        )
        await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, shard)
    return change_id


class KeyReused(ControlError):
    """The Idempotency-Key was used before with another request."""


class _Raced(Exception):
    """Another request claimed the key between our read and our insert."""


async def submit_once(
    conn: asyncpg.Connection, shard: str, change: dict[str, Any], token_id: int, owner: str, key: str
) -> int:
    """`submit`, at most once per (owner, Idempotency-Key) (`owner`: the role and subject
    of the token, so any of a follower's tokens): a retry with the same key and
    the same change returns the first change's id and stores nothing; the same key with
    another change raises KeyReused. Of two requests racing with one key, the loser's
    insert waits for the winner's commit, rolls its own change back and meets the
    winner's."""
    import hashlib

    text = validate(change)
    request_hash = hashlib.sha256(json.dumps(change, sort_keys=True, separators=(",", ":")).encode()).digest()
    for _ in range(2):
        try:
            async with conn.transaction():
                first = await conn.fetchrow(
                    "SELECT request_hash, change_id FROM idempotency_keys WHERE owner = $1 AND key = $2", owner, key
                )
                if first is None:
                    change_id: int = await conn.fetchval(
                        "INSERT INTO control_changes (shard, change, token_id) VALUES ($1, $2::jsonb, $3) RETURNING id",
                        shard,
                        text,
                        token_id,
                    )
                    claimed = await conn.fetchval(
                        "INSERT INTO idempotency_keys (owner, key, request_hash, change_id, token_id) "
                        "VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING change_id",
                        owner,
                        key,
                        request_hash,
                        change_id,
                        token_id,
                    )
                    if claimed is None:
                        raise _Raced
                    await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, shard)
                    return change_id
        except _Raced:
            continue
        if bytes(first["request_hash"]) != request_hash:
            raise KeyReused("this Idempotency-Key was used with another request")
        first_id: int = first["change_id"]
        return first_id
    raise ControlError("the Idempotency-Key is being used by another request; retry")


async def verdict(conn: asyncpg.Connection, change_id: int) -> Verdict:
    row = await conn.fetchrow(
        "SELECT after_seq, applied_at IS NOT NULL AS applied, error, token_id FROM control_changes WHERE id = $1",
        change_id,
    )
    if row is None:
        raise ControlError(f"no control change {change_id}")
    return Verdict(change_id, row["after_seq"], row["applied"], row["error"], row["token_id"])


async def wait(conn: asyncpg.Connection, change_id: int, timeout: float) -> Verdict:
    """The verdict once the engine has applied the change, or the pending one at `timeout`."""
    import asyncio  # here: the CLI builds its parser from `KINDS` without loading asyncio

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        v = await verdict(conn, change_id)
        if v.applied or loop.time() >= deadline:
            return v
        await asyncio.sleep(0.02)


# -- the engine's side: place, apply, record the verdict -------------------------------------


async def pending(conn: asyncpg.Connection, shard: str) -> list[Change]:
    rows = await conn.fetch(
        "SELECT id, change::text FROM control_changes WHERE shard = $1 AND after_seq IS NULL ORDER BY id", shard
    )
    return [Change(r[0], r[1]) for r in rows]


async def placed(
    conn: asyncpg.Connection, shard: str, lo: int = 0, hi: int = 2**63 - 1
) -> list[tuple[int, Change, bool]]:
    """(after_seq, change, whether its verdict is recorded) of every change placed after
    seqs `lo`..`hi`, in the order applied."""
    rows = await conn.fetch(
        "SELECT after_seq, id, change::text, applied_at IS NOT NULL, coalesce(placed_n, 0) FROM control_changes "
        "WHERE shard = $1 AND after_seq BETWEEN $2 AND $3 ORDER BY after_seq, placed_n NULLS FIRST, id",
        shard,
        lo,
        hi,
    )
    return [(r[0], Change(r[1], r[2], r[4]), r[3]) for r in rows]


async def place(conn: asyncpg.Connection, change_id: int, after_seq: int) -> None:
    """Commit where the change goes, before the engine applies it: a crash after this
    applies it there on recovery, a crash before leaves it pending and without effect."""
    # `placed_n`: the order of placing, which is the order applied (not always the ids':
    # a higher id committed first is placed first)
    await conn.execute(
        "UPDATE control_changes SET after_seq = $2, placed_n = nextval('control_changes_placed_n') "
        "WHERE id = $1 AND after_seq IS NULL",
        change_id,
        after_seq,
    )


def apply(engine: LiveEngine, seq: int, change: Change) -> Outcome:
    """The change applied to the engine after `seq` (the Rust rules decide; live, in
    recovery and in the projector alike)."""
    fields = json.loads(change.text)
    if fields.get("type") == "settle":
        # labelled with the period given, else `manual-<change id>` (unique per shard);
        # a label already settled changes nothing (`Outcome.already_settled`)
        return engine.settle(seq, change.id, fields.get("period"))
    return engine.control(seq, change.id, change.text)


#: the verdict of a settlement of a period settled before: applied, nothing changed
ALREADY_SETTLED = "already settled"


def verdict_of(outcome: Outcome) -> str | None:
    """What `decided` records for an applied change: None, or the rules' reason, or
    `ALREADY_SETTLED`."""
    if outcome.errors:
        return outcome.errors[0]
    return ALREADY_SETTLED if outcome.already_settled else None


async def decided(conn: asyncpg.Connection, change_id: int, error: str | None) -> None:
    """The verdict of an applied change: None, or the rules' reason (it changed nothing)."""
    await conn.execute("UPDATE control_changes SET error = $2, applied_at = now() WHERE id = $1", change_id, error)


class Retrying(Protocol):
    """Runs `action` on a connection until PostgreSQL answers (the daemon's `_db`)."""

    def __call__(self, what: str, action: Callable[[asyncpg.Connection], Awaitable[T]]) -> Awaitable[T]: ...


async def place_and_apply(
    db: Retrying, engine: LiveEngine, change: Change, seq: int, send: Callable[[bytes], None]
) -> Outcome:
    """Place `change` after `seq` (the engine's applied seq, its journal committed up to
    there and the venue not read meanwhile), apply it, `send` its orders frame, record
    its verdict. Misplaced if another engine placed it elsewhere."""

    async def place_here(conn: asyncpg.Connection) -> int | None:
        # an answer lost with a connection must not leave it placed but not applied:
        # read back where it is, and place it only if it is nowhere yet
        await place(conn, change.id, seq)
        return (await verdict(conn, change.id)).after_seq

    where = await db("place a control change", place_here)
    if where != seq:  # another engine placed it: this shard is not ours
        raise Misplaced(f"control change {change.id} is placed after seq {where}, not {seq}")
    outcome = apply(engine, seq, change)
    if outcome.frame is not None:
        send(outcome.frame)
    error = verdict_of(outcome)
    await db("record a control change's verdict", lambda c: decided(c, change.id, error))
    return outcome


# -- the projector's side ------------------------------------------------------------------


async def project(conn: asyncpg.Connection, shard: str, seq: int, change: dict[str, Any]) -> None:
    """The rows an applied change moves, placed after `seq` (in the projector's step)."""
    kind = KINDS.get(change["type"])
    if kind is not None and kind.project is not None:
        await kind.project(conn, shard, seq, change)

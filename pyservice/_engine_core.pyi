"""Typed surface of the Rust extension (checked by ``mypy.stubtest``)."""

from collections.abc import Sequence
from typing import Literal, final

__all__ = [
    "Batch",
    "CopyEngineError",
    "Engine",
    "Execution",
    "FrameError",
    "InstrumentDef",
    "LiveEngine",
    "Mark",
    "Outcome",
    "Reports",
    "ScenarioError",
    "check_control",
    "decode_reports",
    "decode_venue",
    "event_times",
    "order_rows",
    "replay_jsonl",
    "start_helper",
]

class CopyEngineError(ValueError):
    """Base of every error the engine core raises."""

class FrameError(CopyEngineError):
    """A venue frame that breaks the protocol (docs/protocol.md)."""

class ScenarioError(CopyEngineError):
    """The file is not a valid scenario (docs/scenario-format.md)."""

def replay_jsonl(text: str) -> str:
    """Replay a scenario file's text; returns its JSON Lines output."""

def event_times(text: str) -> list[int]:
    """The time (µs since the epoch) each event of a scenario counts at."""

def start_helper() -> bool:
    """Start the thread that takes half of every big fan-out and frame (it starts with
    the first one otherwise); False if it cannot be started (batches then run on one
    thread). Its thread name is `copyengine-helper`."""

@final
class Batch:
    """The outcome records of one event, held in Rust (no Python object per follower)."""

    def __len__(self) -> int: ...
    @property
    def seq(self) -> int: ...
    @property
    def orders(self) -> int:
        """Number of copy orders."""
    @property
    def skips(self) -> int:
        """Number of skips."""
    @property
    def error(self) -> str | None:
        """The error message if the event was refused."""

@final
class Engine:
    """The engine state machine over one scenario header (instruments, providers, platform).

    Single-threaded: use it from one thread. A call made while another thread's call is
    running (they run without the GIL) raises RuntimeError instead of interleaving.
    """

    @staticmethod
    def from_scenario(text: str) -> Engine:
        """Build from a scenario's text; its events (if any) are applied, errors ignored."""
    @staticmethod
    def from_header(text: str) -> Engine:
        """Build from a scenario's header only (its events are not applied); `apply` then
        follows the file's version (a version 2 event's `time` moves the clock)."""
    def apply(self, seq: int, event_json: str) -> Batch:
        """Apply one event (a JSON object text) at input position `seq`."""
    @property
    def now_us(self) -> int:
        """Venue time of the latest event, µs since the epoch (UTC)."""
    def standings(self) -> list[tuple[str, int, str, str]]:
        """Per provider, in provider order: (id, followers, aum, copiers_pnl), money as
        canonical decimals. Raises CopyEngineError if a sum leaves the money range."""
    def render_jsonl(self, batch: Batch) -> str:
        """A batch's records as JSON Lines (names resolved), for tools and tests.

        Raises ValueError for a batch made by another Engine."""
    @property
    def relationships(self) -> int: ...

@final
class Outcome:
    """What one venue message did: counts, and the finished `orders` frame if any."""

    @property
    def frame(self) -> bytes | None:
        """The complete `orders` frame (length prefix included), or None."""
    @property
    def orders(self) -> int: ...
    @property
    def skips(self) -> dict[str, int]:
        """Skips by reason (only reasons that occurred)."""
    @property
    def clamps(self) -> dict[str, int]:
        """Clamped orders by binding cap (only caps that occurred)."""
    @property
    def stops(self) -> int: ...
    @property
    def stopped(self) -> list[tuple[str, str]]:
        """The relationships max-loss stopped, as (follower, provider)."""
    @property
    def errors(self) -> list[str]: ...
    @property
    def settlements(self) -> list[dict[str, str]]:
        """The settlements this input made, in record order (those of the period
        boundaries its time crossed come first): keys `period`, `follower`, `provider`,
        `equity`, `high_watermark` (before), `profit`, `due`, `charged`,
        `provider_credit`, `platform_credit`, `written_off` (decimal strings), `status`
        (`charged`, `deferred` or `partial`)."""
    @property
    def already_settled(self) -> bool:
        """`settle` only: that label was settled before; nothing changed."""
    @property
    def ended(self) -> list[str]:
        """The relationships that ended at this input, as they ended (after their
        `unfollow` settlement): one `portfolios_jsonl` line each, in the order they ended.
        An unfollow whose orders are working ends at the report of the last of them."""

@final
class Reports:
    """A decoded `fills` or `rejects` frame, held in Rust (no Python object per entry)."""

    @property
    def seq(self) -> int: ...
    @property
    def ts(self) -> int:
        """The venue's time of the event, µs since the Unix epoch (UTC)."""
    @property
    def kind(self) -> Literal["fills", "rejects"]: ...
    def __len__(self) -> int: ...
    def entries(self) -> list[list[str]]:
        """The entries as tuples, as `CopyFills.fills` / `CopyRejects.rejects` hold them
        (for tests and tools; the daemon never builds them)."""
    def copy_rows(self, shard: str) -> bytes:
        """`copy_fills` / `copy_rejects` rows in COPY text format, tagged with `shard`."""
    def entries_json(self) -> bytes:
        """The entries as a JSON array of arrays of strings (the stream entry's `entries`)."""
    def reasons(self) -> list[tuple[str, int]]:
        """Rejects by reason (empty for fills), for the metrics."""

def decode_reports(payload: bytes) -> Reports:
    """Decode a `fills` or `rejects` frame payload (no length prefix), with the checks of
    `pyservice.protocol`'s Structs; raises FrameError with the reason otherwise."""

@final
class Execution:
    """A decoded `exec` message (the fields of `protocol.ProviderExecution`)."""

    @property
    def tag(self) -> Literal["exec"]:
        """The message's tag, "exec"."""
    @property
    def seq(self) -> int: ...
    @property
    def ts(self) -> int:
        """The venue's time of the event, µs since the Unix epoch (UTC)."""
    @property
    def provider(self) -> str: ...
    @property
    def exec_id(self) -> str: ...
    @property
    def symbol(self) -> str: ...
    @property
    def side(self) -> Literal["buy", "sell"]: ...
    @property
    def qty(self) -> str: ...
    @property
    def price(self) -> str: ...
    @property
    def provider_equity(self) -> str: ...
    @property
    def leverage(self) -> int: ...

@final
class Mark:
    """A decoded `mark` message (the fields of `protocol.MarkPrice`)."""

    @property
    def tag(self) -> Literal["mark"]:
        """The message's tag, "mark"."""
    @property
    def seq(self) -> int: ...
    @property
    def ts(self) -> int:
        """The venue's time of the event, µs since the Unix epoch (UTC)."""
    @property
    def symbol(self) -> str: ...
    @property
    def price(self) -> str: ...

@final
class InstrumentDef:
    """A decoded `instrument` message (the fields of `protocol.Instrument`)."""

    @property
    def tag(self) -> Literal["instrument"]:
        """The message's tag, "instrument"."""
    @property
    def seq(self) -> int: ...
    @property
    def ts(self) -> int:
        """The venue's time of the event, µs since the Unix epoch (UTC)."""
    @property
    def symbol(self) -> str: ...
    @property
    def kind(self) -> Literal["spot", "perp"]:
        """ "spot" or "perp"."""
    @property
    def tick(self) -> str: ...
    @property
    def step(self) -> str: ...
    @property
    def min_qty(self) -> str: ...
    @property
    def min_notional(self) -> str: ...

def decode_venue(payload: bytes) -> Execution | Mark | InstrumentDef | Reports | None:
    """Decode a venue frame payload (no length prefix) tagged `exec`, `mark`, `instrument`,
    `fills` or `rejects`, with the checks of `pyservice.protocol`'s Structs: an
    `Execution`, `Mark`, `InstrumentDef` or `Reports`; FrameError with the reason if
    it breaks them. None for any other payload (`hello`, `hb`, or not a tagged array:
    msgspec decodes or refuses those)."""

@final
class LiveEngine:
    """The engine in live mode over follower books (see `docs/protocol.md`).
    Single-threaded, like `Engine`."""

    @property
    def now_us(self) -> int:
        """Venue time of the latest input, µs since the epoch (UTC)."""
    @property
    def clock_corrections(self) -> int:
        """How many inputs were stamped earlier than their predecessor (taken at its time)."""
    def standings(self) -> list[tuple[str, int, str, str]]:
        """Per provider, in provider order: (id, followers, aum, copiers_pnl), money as
        canonical decimals. Raises CopyEngineError if a sum leaves the money range."""
    @staticmethod
    def from_books(text: str) -> LiveEngine:
        """Build from a books file's text (providers, platform, follows). Raises
        ScenarioError with a one-line reason for an invalid file."""
    def snapshot(self) -> bytes:
        """The whole state as bytes (see `restore`), for crash recovery; CopyEngineError
        if it cannot be written."""
    @staticmethod
    def restore(snapshot: bytes) -> LiveEngine:
        """The engine a `snapshot` was taken of; CopyEngineError for bytes that are not a
        snapshot of this engine version."""
    def instrument(
        self,
        seq: int,
        symbol: str,
        kind: str,
        tick: str,
        step: str,
        min_qty: str,
        min_notional: str,
        *,
        ts: int | None = None,
    ) -> Outcome: ...
    def mark(self, seq: int, symbol: str, price: str, *, ts: int | None = None) -> Outcome: ...
    def execute(
        self,
        seq: int,
        provider: str,
        exec_id: str,
        symbol: str,
        side: str,
        qty: str,
        price: str,
        provider_equity: str,
        leverage: int | None = None,
        *,
        ts: int | None = None,
    ) -> Outcome:
        """A provider execution: one fan-out over the provider's book. Leverage None is 1;
        a leverage outside
        1..=125 (however large) is an error in the outcome; `seq`, here and in every
        method, is the caller's counter and must fit in 64 bits (else OverflowError).
        `ts`, here and in `instrument`, `mark`, `fills` and `rejects`: the message's venue
        time, which the clock advances to first (see `now_us`); None leaves the clock."""
    def fills(self, seq: int, fills: Sequence[tuple[str, str, str]], *, ts: int | None = None) -> Outcome:
        """The venue's fill reports: (client_order_id, qty, price) each."""
    def rejects(self, seq: int, rejects: Sequence[tuple[str, str]], *, ts: int | None = None) -> Outcome:
        """The venue's rejects: (client_order_id, reason) each."""
    def reports(self, reports: Reports) -> Outcome:
        """A `fills` or `rejects` frame from `decode_venue` (or `decode_reports`), applied like
        `fills`/`rejects` at its `ts`."""
    def control(self, after_seq: int, change: int, text: str) -> Outcome:
        """Apply control change number `change` (JSON, see `check_control`) after venue seq
        `after_seq`; its orders frame, if any, carries `after_seq`. A change of the terms
        (`profit_share`, `platform`) makes no records but its `error` if refused."""
    def message(self, msg: Execution | Mark | InstrumentDef) -> Outcome:
        """An `exec`, `mark` or `instrument` message from `decode_venue`, applied like
        `execute` / `mark` / `instrument` (same rules, same errors), from its typed fields,
        at its `ts` (the engine's clock: an earlier one is corrected and counted)."""
    def resend_working(self, seq: int) -> Outcome:
        """Every working copy order as one frame, to send again after a reconnect."""
    def file_staged(self) -> None:
        """File the last fan-out's staged orders into the working-order table (the
        next call does it otherwise): call it once the `orders` frame is sent, so that
        this work is not between an execution and its copy orders."""
    @property
    def working_count(self) -> int:
        """How many working orders there are (copy orders sent and not yet fully filled
        or rejected)."""
    @property
    def relationships(self) -> int: ...
    def portfolios_jsonl(self) -> str:
        """Every relationship's portfolio as JSON Lines (the replay's `portfolio` records
        with `high_watermark` and `fees_paid`, plus `reserved`, `base` and the FIFO
        `lots`), for the projector, tests and operators."""
    def settle(self, after_seq: int, change: int, label: str | None = None) -> Outcome:
        """Settle every relationship now, as control change number `change` after venue
        seq `after_seq` (like `control`). `label` names the period (default
        `manual-<change>`); a label settled before changes nothing and the outcome says
        `already_settled`. CopyEngineError for a label that is not 1-64 characters of
        [A-Za-z0-9_.:-] or is `unfollow`."""
    def set_profit_share(self, provider: str, pct: str) -> None:
        """Set a provider's profit share (decimal string in [0, max_profit_share_pct]), in
        force from the next period boundary (at once without a schedule or before the
        first input). CopyEngineError if refused (nothing changes)."""
    def set_platform_fee(self, pct: str) -> None:
        """Set the platform fee (decimal string in [0, 100]); takes effect as a share does."""
    def set_settlement(self, schedule: str) -> None:
        """`weekly`, `monthly` or `none`; the next boundary is the first after the
        current venue time. CopyEngineError for another value."""
    def settlement_terms(self) -> tuple[str, str, int | None]:
        """(schedule, platform fee in force, next boundary in µs or None)."""
    def profit_share(self, provider: str) -> tuple[str, str]:
        """A provider's (share in force, share from the next boundary); CopyEngineError
        for an unknown provider."""
    @property
    def settled_periods(self) -> list[str]:
        """Every period label settled so far (boundaries and requests), sorted."""

def check_control(text: str) -> str | None:
    """The reason a control change (JSON: the replay's event format, or a change of the
    settlement terms `profit_share`/`platform`) is invalid on its own, or None. The engine
    may still refuse a valid one for the state it meets (an unknown follower, a withdrawal
    above free cash, a share above the maximum): `LiveEngine.control` says so."""

def order_rows(frame: bytes, shard: str, change_id: int = 0) -> bytes:
    """`copy_orders` rows in COPY text format of an orders frame this engine wrote, tagged
    with `shard` and the control change that made it (0: a venue message), each with its
    place in the frame; FrameError for anything else."""

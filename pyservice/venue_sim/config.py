"""What a venue run is made of: the config, the books file and the script file."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, TypeAlias

import msgspec

from pyservice import protocol
from pyservice.protocol import DEFAULT_MAX_FRAME, Name
from pyservice.venue_sim import fixed
from pyservice.venue_sim.log import LogEntry
from pyservice.venue_time import parse_time


class ConfigError(ValueError):
    """A books or script file the venue cannot use."""


@dataclass(frozen=True)
class InstrumentSpec:
    instrument: protocol.Instrument
    #: the first mark, on the tick grid
    price: str


def _spec(symbol: str, kind: Literal["spot", "perp"], tick: str, step: str, min_qty: str, price: str) -> InstrumentSpec:
    return InstrumentSpec(protocol.Instrument(0, 0, symbol, kind, tick, step, min_qty, "5"), price)


DEFAULT_INSTRUMENTS: tuple[InstrumentSpec, ...] = (
    _spec("BTCUSDT", "spot", "0.01", "0.00001", "0.00001", "60000"),
    _spec("ETHUSDT-PERP", "perp", "0.01", "0.001", "0.001", "3000"),
    _spec("SOLUSDT", "spot", "0.001", "0.01", "0.01", "150"),
    _spec("BTCUSDT-PERP", "perp", "0.1", "0.001", "0.001", "60000"),
)


class BookProvider(msgspec.Struct, forbid_unknown_fields=True):
    id: Name


class Follow(msgspec.Struct):
    """A copy relationship; the engine's copy settings may ride along (the venue ignores them)."""

    follower: Name
    provider: Name
    allocation: protocol.Decimal


class Books(msgspec.Struct, forbid_unknown_fields=True):
    providers: list[BookProvider]
    follows: list[Follow] = msgspec.field(default_factory=list)
    platform: dict[str, Any] | None = None
    version: Literal[1] = 1


class Pause(msgspec.Struct, frozen=True):
    seconds: Annotated[float, msgspec.Meta(ge=0)]


@dataclass(frozen=True)
class Timed:
    """A script entry with its own `time`: logged with exactly that `ts` (µs since the epoch)."""

    entry: LogEntry
    ts: int


ScriptStep: TypeAlias = LogEntry | Timed | Pause


@dataclass
class VenueConfig:
    #: `tcp://HOST:PORT` or `unix:PATH`; the engine listens there
    connect: str = "tcp://127.0.0.1:7400"
    #: fixed for the life of the process; random when None
    session: str | None = None
    seed: int = 0
    #: provider executions per second, all bots together; 0 = no bots
    rate: float = 10.0
    #: seconds between mark moves; 0 = marks stay where they start
    mark_interval: float = 0.5
    #: stop after this many seconds; None = until stop()
    duration: float | None = None
    heartbeat: float = 1.0
    dead_after: float = 5.0
    books: Books | None = None
    #: each relationship's account holds funding × its allocation
    funding: str = "1"
    partial_fill_pct: float = 0.0
    fill_latency_ms: float = 0.0
    #: JSON Lines of every order received and its outcome
    record: str | None = None
    #: log entries and pauses to publish instead of running bots
    script: list[ScriptStep] | None = None
    #: simulated seconds per real second (`VenueClock`)
    clock: float = 1.0
    #: the clock's start, µs since the epoch; None = now
    start_us: int | None = None
    instruments: tuple[InstrumentSpec, ...] = DEFAULT_INSTRUMENTS
    #: the bots' providers when there are no books
    providers: tuple[str, ...] = ("p1",)
    provider_cash: str = "10000"
    disconnect_at_seq: int | None = None
    garbage_at_seq: int | None = None
    max_frame: int = DEFAULT_MAX_FRAME
    #: the venue key (`pyservice.venue_auth.load_key`); None: the hello is not signed
    key: bytes | None = field(default=None, repr=False)


def load_books(path: str | Path) -> Books:
    try:
        books = msgspec.json.decode(Path(path).read_bytes(), type=Books)
    except (OSError, msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ConfigError(f"books {path}: {exc}") from None
    providers = {p.id for p in books.providers}
    pairs: set[tuple[str, str]] = set()
    for i, follow in enumerate(books.follows):
        where = f"books {path}: follows[{i}]"
        if follow.provider not in providers:
            raise ConfigError(f"{where}: unknown provider {follow.provider!r}")
        if (follow.follower, follow.provider) in pairs:
            raise ConfigError(f"{where}: {follow.follower!r} already follows {follow.provider!r}")
        pairs.add((follow.follower, follow.provider))
        if fixed.parse(follow.allocation, fixed.MONEY_DIGITS) <= 0:
            raise ConfigError(f"{where}: allocation must be positive")
    return books


_SCRIPT_TYPES: dict[str, type[LogEntry]] = {
    "instrument": protocol.Instrument,
    "mark": protocol.MarkPrice,
    "exec": protocol.ProviderExecution,
}
_entry_decoder: msgspec.json.Decoder[LogEntry] = msgspec.json.Decoder(LogEntry)


def parse_script_line(obj: Any) -> ScriptStep:
    """One script object: `{"type": "instrument"|"mark"|"exec", <fields but seq and ts>}`,
    with an optional `"time": "YYYY-MM-DDTHH:MM:SS[.ffffff]Z"` (then a `Timed`: logged
    at exactly that time; without it the entry takes the venue's clock), or a pause."""
    if not isinstance(obj, dict):
        raise ConfigError("a script line must be a JSON object")
    fields = dict(obj)
    kind = fields.pop("type", None)
    if kind == "pause":
        return msgspec.convert(fields, Pause)
    cls = _SCRIPT_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ConfigError(f"unknown script type {kind!r}")
    time = fields.pop("time", None)
    if time is not None and not isinstance(time, str):
        raise ConfigError(f"time {time!r} is not a string")
    wire_fields = msgspec.structs.fields(cls)[2:]  # the venue assigns seq and ts
    unknown = set(fields) - {f.name for f in wire_fields}
    if unknown:
        raise ConfigError(f"unknown field(s) {sorted(unknown)} for {kind}")
    row: list[Any] = [kind, 0, 0]
    for f in wire_fields:
        if f.name in fields:
            row.append(fields[f.name])
        elif f.required:
            raise ConfigError(f"missing field {f.name!r} for {kind}")
        else:
            row.append(f.default)
    # through the wire decoder, so a script entry is checked exactly as a frame would be
    entry = _entry_decoder.decode(json.dumps(row))
    if time is None:
        return entry
    try:
        return Timed(entry, parse_time(time))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def load_script(path: str | Path) -> list[ScriptStep]:
    steps: list[ScriptStep] = []
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"script {path}: {exc}") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            steps.append(parse_script_line(json.loads(line)))
        except ValueError as exc:  # msgspec's errors and json's are ValueErrors
            raise ConfigError(f"script {path} line {number}: {exc}") from None
    return steps

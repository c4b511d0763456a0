"""Plain-Python reference implementation of scenario format v2 (and v1).

This module is the executable spec for ``docs/scenario-format.md``. It follows
that file's rules, order of checks and messages literally, so that its records can be
compared byte for byte with the Rust core (``tests/test_differential.py``).

It is written to be read, not to be fast:

* every number is a ``fractions.Fraction`` (exact); nothing is ever a float;
* standard library only, plus ``xxhash`` for client order ids;
* one fill costs O(followers of the provider) plus one max-loss pass over all
  relationships; a follow, deposit or withdraw checks only its own relationship
  (exactly equivalent, see ``_max_loss_candidates``), so no quadratic scans.

Public API: ``replay(text)``, ``ReferenceEngine`` (``from_scenario``, ``apply``,
``portfolios``, ``now_us``), ``event_times``, ``parse_time``, ``format_time``,
``ScenarioError``, ``format_decimal``, ``client_order_id``.

Choices where docs/scenario-format.md is silent (kept in sync with the Rust core):

* the ``event`` of a record is the 0-based index of the event in ``events``;
* "not already following" in ``follow`` counts stopped relationships too: there is
  at most one relationship per (follower, provider), active or stopped;
* "already holds that many positions" means ``len(positions) >= max_open_trades``,
  counting the positions of that relationship only (not the follower's others);
* an order that takes a position through zero (unreachable for copies) leaves the
  position list and re-enters it at the end;
* settlement (version 2): the schedule's first boundary is fixed by the first event's
  time (an event whose time is invalid counts at its predecessor's); after each
  settlement run, the max-loss check looks at the relationships it charged;
* an invalid file (header): checks and messages are those of
  ``ReferenceEngine.from_scenario`` and ``replay`` below, in this order: JSON, an
  object, unknown top-level key, ``version`` (present, even null, must be the JSON
  integer 1 or 2), ``instruments`` (each: ``instruments[i]: <message>``), ``providers``
  (``providers[i]: <message>``), ``platform`` (``platform: <message>``; null = absent),
  each provider's share against ``max_profit_share_pct``, and last ``events`` (an array).
"""

from __future__ import annotations

import contextlib
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

import xxhash

__all__ = [
    "ReferenceEngine",
    "ScenarioError",
    "client_order_id",
    "event_times",
    "format_decimal",
    "format_time",
    "parse_time",
    "replay",
]


ZERO = Fraction(0)
ONE = Fraction(1)
HUNDRED = Fraction(100)

MAX_DECIMAL_PLACES = 8
MAGNITUDE_LIMIT = 10**12  # absolute values must be below this
MONEY_SCALE = 10**16  # money has 16 decimals
MAX_LEVERAGE = 125
MAX_OPEN_TRADES = 1_000_000

DECIMAL_PATTERN = re.compile(r"-?[0-9]+(\.[0-9]+)?")
DIGITS_PATTERN = re.compile(r"[0-9]+")
IDENTIFIER_PATTERN = re.compile(r"[A-Za-z0-9_.:-]{1,64}")

Record = dict[str, Any]  # one output record, keys in docs/scenario-format.md order

BASE62_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
CLIENT_ORDER_ID_LENGTH = 22
UNIT_SEPARATOR = "\x1f"


# --------------------------------------------------------------------------- errors


class ScenarioError(ValueError):
    """The scenario file is invalid; the message is the reason."""


class _Invalid(Exception):
    """A validation failure; becomes an ``error`` record (events) or a ScenarioError."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# --------------------------------------------------------------------------- decimals


def format_decimal(value: Fraction | Decimal | int) -> str:
    """Canonical decimal text: no exponent, no trailing fractional zeros, "0" for zero.

    ``format_decimal(Fraction(5, 2)) == "2.5"``, ``format_decimal(-Fraction(13, 4)) ==
    "-3.25"``. The value must be a terminating decimal.
    """
    x = Fraction(value)
    # decimal places needed = max(power of 2, power of 5) in the denominator
    rest, twos, fives = x.denominator, 0, 0
    while rest % 2 == 0:
        rest, twos = rest // 2, twos + 1
    while rest % 5 == 0:
        rest, fives = rest // 5, fives + 1
    if rest != 1:
        raise ValueError(f"{x} is not a terminating decimal")
    places = max(twos, fives)
    scaled = x.numerator * 10**places // x.denominator
    sign = "-" if scaled < 0 else ""
    integer_part, fraction_part = divmod(abs(scaled), 10**places)
    text = sign + str(integer_part)
    if places > 0:
        digits = str(fraction_part).rjust(places, "0").rstrip("0")
        if digits:
            text += "." + digits
    return text


def floor_to(value: Fraction, unit: Fraction) -> Fraction:
    """The largest multiple of ``unit`` that is <= value (towards -infinity)."""
    return math.floor(value / unit) * unit


def ceil_to(value: Fraction, unit: Fraction) -> Fraction:
    """The smallest multiple of ``unit`` that is >= value."""
    return math.ceil(value / unit) * unit


def ceil16(value: Fraction) -> Fraction:
    """Round up to 16 decimal places (money precision)."""
    return ceil_to(value, Fraction(1, MONEY_SCALE))


def is_multiple(value: Fraction, unit: Fraction) -> bool:
    return (value / unit).denominator == 1


def sign(value: Fraction) -> int:
    return (value > 0) - (value < 0)


# --------------------------------------------------------------------------- JSON


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


MAX_JSON_DEPTH = 127  # serde_json refuses the 128th level
_SURROGATE = re.compile("[\ud800-\udfff]")


def _finite_number(text: str) -> Decimal:
    # JSON numbers must fit a double (1e400 does not), as in strict parsers
    if not math.isfinite(float(text)):
        raise ValueError(f"number out of range: {text}")
    return Decimal(text)


def _finite_int(text: str) -> int:
    _finite_number(text)
    return int(text)


def _check_strict(value: Any, depth: int = 1) -> None:
    """Strict JSON (docs/scenario-format.md "File"): nesting at most 127 deep, valid Unicode."""
    if depth > MAX_JSON_DEPTH:
        raise ValueError("nested too deeply")
    if isinstance(value, str) and _SURROGATE.search(value):
        raise ValueError("lone surrogate in a string")
    if isinstance(value, dict):
        for key, item in value.items():
            _check_strict(key, depth)
            _check_strict(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_strict(item, depth + 1)


def _load_json(text: str) -> Any:
    try:
        value = json.loads(
            text,
            parse_float=_finite_number,
            parse_int=_finite_int,
            parse_constant=_reject_constant,
        )
        _check_strict(value)
        return value
    except (ValueError, RecursionError) as error:
        raise ScenarioError(f"not JSON: {error}") from None


# --------------------------------------------------------------------------- event time
#
# A version 2 event's ``time``: RFC 3339 in UTC, one form only, as an integer of
# microseconds since the Unix epoch (docs/scenario-format.md "Event time").

# [0-9], not \d: \d also matches other scripts' digits
TIME_PATTERN = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,6}))?Z")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
TIME_FORM = "YYYY-MM-DDTHH:MM:SS[.ffffff]Z"


def parse_time(text: str) -> int | None:
    """Microseconds since the epoch, or None if ``text`` is not exactly that form of a
    real date and time (datetime refuses year 0, February 29 of a common year, hour 24
    and second 60)."""
    match = TIME_PATTERN.fullmatch(text)
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    try:
        at = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError:
        return None
    fraction = match.group(7) or ""
    return (at - EPOCH) // timedelta(microseconds=1) + int(fraction.ljust(6, "0"))


def format_time(us: int) -> str:
    """Canonical text: the fraction only when it is not zero, without trailing zeros."""
    at = EPOCH + timedelta(microseconds=us)
    text = at.strftime("%Y-%m-%dT%H:%M:%S")
    if at.microsecond:
        text += "." + f"{at.microsecond:06d}".rstrip("0")
    return text + "Z"


def event_time(version: int, event: Any, now: int) -> int:
    """The time an event counts at, given its predecessor's ``now`` (checked before
    anything else of the event, which may still be invalid); _Invalid if its ``time``
    is not a string, not a time or earlier than ``now``."""
    if version < 2 or not isinstance(event, dict) or event.get("time") is None:
        return now
    text = event["time"]
    if not isinstance(text, str):
        raise _Invalid("field 'time' must be a string")
    at = parse_time(text)
    if at is None:
        raise _Invalid(f"field 'time' is not a time: '{text}' ({TIME_FORM})")
    if at < now:
        raise _Invalid(f"time {format_time(at)} is before the previous event's time {format_time(now)}")
    return at


def event_times(scenario: str | dict[str, Any]) -> list[int]:
    """The time each event of a scenario (its text or its parsed object) counts at: the
    clock after the event's time check (an invalid or earlier time leaves the previous
    one). ScenarioError for an invalid file."""
    obj = _load_json(scenario) if isinstance(scenario, str) else scenario
    engine = ReferenceEngine.from_scenario(obj)
    times = []
    now = 0
    for event in _array(obj, "events"):
        with contextlib.suppress(_Invalid):  # an invalid time leaves the clock
            now = event_time(engine.version, event, now)
        times.append(now)
    return times


# --------------------------------------------------------------------------- field checks
#
# Each check takes the field name and the JSON value and returns the parsed value or
# raises _Invalid with the message of docs/scenario-format.md "Field messages".


def identifier(name: str, value: Any) -> str:
    if not isinstance(value, str) or not IDENTIFIER_PATTERN.fullmatch(value):
        raise _Invalid(f"field '{name}' must be 1-64 characters of [A-Za-z0-9_.:-]")
    return value


def _decimal(name: str, value: Any) -> Fraction:
    """String, pattern, decimal places, magnitude (in this order). Range is separate."""
    if not isinstance(value, str):
        raise _Invalid(f"field '{name}' must be a decimal string")
    if not DECIMAL_PATTERN.fullmatch(value):
        raise _Invalid(f"field '{name}' is not a decimal: '{value}'")
    negative = value.startswith("-")
    integer_digits, _, fraction_digits = value.lstrip("-").partition(".")
    fraction_digits = fraction_digits.rstrip("0")
    if len(fraction_digits) > MAX_DECIMAL_PLACES:
        raise _Invalid(f"field '{name}' has more than 8 decimal places")
    integer_digits = integer_digits.lstrip("0")
    if len(integer_digits) > 12:  # |value| >= 10^12
        raise _Invalid(f"field '{name}' must be below {MAGNITUDE_LIMIT} in absolute value")
    magnitude = Fraction(int(integer_digits or "0")) + Fraction(int(fraction_digits or "0"), 10 ** len(fraction_digits))
    return -magnitude if negative else magnitude


def positive(name: str, value: Any) -> Fraction:
    number = _decimal(name, value)
    if number <= 0:
        raise _Invalid(f"field '{name}' must be positive")
    return number


def non_negative(name: str, value: Any) -> Fraction:
    number = _decimal(name, value)
    if number < 0:
        raise _Invalid(f"field '{name}' must not be negative")
    return number


def percentage(name: str, value: Any) -> Fraction:
    """In (0, 100]."""
    number = _decimal(name, value)
    if not (0 < number <= 100):
        raise _Invalid(f"field '{name}' must be in (0, 100]")
    return number


def percent(name: str, value: Any) -> Fraction:
    """In [0, 100]."""
    number = _decimal(name, value)
    if not (0 <= number <= 100):
        raise _Invalid(f"field '{name}' must be in [0, 100]")
    return number


SCHEDULES = ("weekly", "monthly", "none")


def schedule_enum(name: str, value: Any) -> str:
    if not isinstance(value, str) or value not in SCHEDULES:
        raise _Invalid("field 'settlement' must be one of weekly, monthly, none")
    return value


def slippage(name: str, value: Any) -> Fraction:
    """In [0, 100)."""
    number = _decimal(name, value)
    if not (0 <= number < 100):
        raise _Invalid(f"field '{name}' must be in [0, 100)")
    return number


def _integer(name: str, value: Any, maximum: int) -> int:
    """A JSON integer (not a boolean) or a string of digits, from 1 to maximum."""
    message = f"field '{name}' must be an integer from 1 to {maximum}"
    if isinstance(value, bool):
        raise _Invalid(message)
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and DIGITS_PATTERN.fullmatch(value):
        digits = value.lstrip("0") or "0"
        if len(digits) > len(str(maximum)):
            raise _Invalid(message)
        number = int(digits)
    else:
        raise _Invalid(message)
    if not (1 <= number <= maximum):
        raise _Invalid(message)
    return number


def leverage_integer(name: str, value: Any) -> int:
    return _integer(name, value, MAX_LEVERAGE)


def max_open_trades_integer(name: str, value: Any) -> int:
    return _integer(name, value, MAX_OPEN_TRADES)


def side_enum(name: str, value: Any) -> str:
    if not isinstance(value, str) or value not in ("buy", "sell"):
        raise _Invalid("field 'side' must be 'buy' or 'sell'")
    return value


MODES = ("proportional", "fixed_amount", "multiplier")


def mode_enum(name: str, value: Any) -> str:
    if not isinstance(value, str) or value not in MODES:
        raise _Invalid("field 'mode' must be one of proportional, fixed_amount, multiplier")
    return value


def boolean(name: str, value: Any) -> bool:
    if value is not True and value is not False:
        raise _Invalid(f"field '{name}' must be true or false")
    return value


def kind_enum(name: str, value: Any) -> str:
    if not isinstance(value, str) or value not in ("spot", "perp"):
        raise _Invalid("field 'kind' must be 'spot' or 'perp'")
    return value


@dataclass(frozen=True)
class Field:
    name: str
    check: Callable[[str, Any], Any]
    required: bool = True
    default: Any = None


def _parse_fields(
    obj: dict[str, Any], fields: tuple[Field, ...], owner: str, extra_keys: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Unknown keys first (document order), then each field in the listed order.

    JSON null counts as absent: a required field that is absent or null is
    ``missing field``, an optional one takes its default.
    """
    known = {f.name for f in fields} | set(extra_keys)
    for key in obj:
        if key not in known:
            raise _Invalid(f"unknown field '{key}' for {owner}")
    values: dict[str, Any] = {}
    for f in fields:
        value = obj.get(f.name)
        if value is None and f.required:
            raise _Invalid(f"missing field '{f.name}'")
        elif value is None:
            values[f.name] = f.default
        else:
            values[f.name] = f.check(f.name, value)
    return values


EVENT_FIELDS: dict[str, tuple[Field, ...]] = {
    "follow": (
        Field("follower", identifier),
        Field("provider", identifier),
        Field("allocation", positive),
        Field("mode", mode_enum, required=False, default="proportional"),
        Field("fixed_amount", positive, required=False, default=None),
        Field("multiplier", positive, required=False, default=ONE),
        Field("max_open_trades", max_open_trades_integer, required=False, default=None),
        Field("max_per_trade_pct", percentage, required=False, default=HUNDRED),
        Field("max_loss_pct", percentage, required=False, default=None),
        Field("slippage_pct", slippage, required=False, default=Fraction(1, 2)),
        Field("stop_copy_on_close", boolean, required=False, default=True),
    ),
    "fill": (
        Field("provider", identifier),
        Field("exec_id", identifier),
        Field("symbol", identifier),
        Field("side", side_enum),
        Field("qty", positive),
        Field("price", positive),
        Field("provider_equity", positive),
        Field("leverage", leverage_integer, required=False, default=1),
    ),
    "mark": (
        Field("symbol", identifier),
        Field("price", positive),
    ),
    "deposit": (
        Field("follower", identifier),
        Field("provider", identifier),
        Field("amount", positive),
    ),
    "withdraw": (
        Field("follower", identifier),
        Field("provider", identifier),
        Field("amount", positive),
    ),
    "unfollow": (
        Field("follower", identifier),
        Field("provider", identifier),
    ),
    "pause": (
        Field("follower", identifier),
        Field("provider", identifier),
    ),
    "resume": (
        Field("follower", identifier),
        Field("provider", identifier),
    ),
}
#: follow's settings, checked the same way; absent or null: unchanged
_SETTINGS = tuple(replace(f, default=None) for f in EVENT_FIELDS["follow"][3:])
EVENT_FIELDS["settings"] = (*EVENT_FIELDS["pause"], *_SETTINGS)
SETTING_NAMES = tuple(f.name for f in _SETTINGS)

INSTRUMENT_FIELDS = (
    Field("symbol", identifier),
    Field("kind", kind_enum),
    Field("tick", positive),
    Field("step", positive),
    Field("min_qty", non_negative),
    Field("min_notional", non_negative),
)

PROVIDER_FIELDS = (Field("id", identifier),)
#: version 2: a provider's share of its followers' new profit
PROVIDER_FIELDS_V2 = (*PROVIDER_FIELDS, Field("profit_share_pct", percent, required=False, default=ZERO))

PLATFORM_FIELDS = (
    Field("min_allocation", non_negative, required=False, default=None),
    Field("max_allocation", positive, required=False, default=None),
    Field("max_total_per_follower", positive, required=False, default=None),
)
#: version 2: the settlement terms
PLATFORM_FIELDS_V2 = (
    *PLATFORM_FIELDS,
    Field("platform_fee_pct", percent, required=False, default=ZERO),
    Field("max_profit_share_pct", percentage, required=False, default=Fraction(30)),
    Field("settlement", schedule_enum, required=False, default="none"),
)

SCENARIO_KEYS = ("version", "instruments", "providers", "events", "platform")


def parse_event(event: Any, extra_keys: tuple[str, ...] = ()) -> tuple[str, dict[str, Any]]:
    """Validation steps 1 and 3-5 of docs/scenario-format.md (step 2, the time, is
    ``event_time``): returns (type, field values).

    ``extra_keys`` are known besides the type's fields (a version 2 file's ``time``,
    checked before)."""
    if not isinstance(event, dict):
        raise _Invalid("event must be an object")
    event_type = event.get("type")
    if event_type is None:
        raise _Invalid("missing field 'type'")
    if not isinstance(event_type, str):
        raise _Invalid("field 'type' must be a string")
    if event_type not in EVENT_FIELDS:
        raise _Invalid(f"unknown event type '{event_type}'")
    values = _parse_fields(event, EVENT_FIELDS[event_type], event_type, ("type", *extra_keys))
    return event_type, values


# --------------------------------------------------------------------------- scenario file


@dataclass(frozen=True)
class Instrument:
    symbol: str
    kind: str  # "spot" | "perp"
    tick: Fraction
    step: Fraction
    min_qty: Fraction
    min_notional: Fraction


@dataclass(frozen=True)
class Platform:
    min_allocation: Fraction | None = None
    max_allocation: Fraction | None = None
    max_total_per_follower: Fraction | None = None
    platform_fee_pct: Fraction = ZERO
    max_profit_share_pct: Fraction = Fraction(30)
    settlement: str = "none"  # "weekly" | "monthly" | "none"


def _check_top_level(obj: Any) -> dict[str, Any]:
    """An object, with known keys only, and version 1 or 2 if present."""
    if not isinstance(obj, dict):
        raise ScenarioError("the scenario must be a JSON object")
    for key in obj:
        if key not in SCENARIO_KEYS:
            raise ScenarioError(f"unknown field '{key}'")
    if "version" in obj:
        version = obj["version"]
        if isinstance(version, bool) or not isinstance(version, int) or version not in (1, 2):
            raise ScenarioError("unsupported version (this engine reads versions 1 and 2)")
    return obj


def _array(obj: dict[str, Any], key: str) -> list[Any]:
    if key not in obj:
        raise ScenarioError(f"missing field '{key}'")
    value = obj[key]
    if not isinstance(value, list):
        raise ScenarioError(f"field '{key}' must be an array")
    return value


def _parse_instrument(obj: dict[str, Any]) -> Instrument:
    return Instrument(**_parse_fields(obj, INSTRUMENT_FIELDS, "instrument"))


def _parse_provider(obj: dict[str, Any], version: int) -> tuple[str, Fraction]:
    """(id, profit_share_pct); the share is a version 2 field."""
    values = _parse_fields(obj, PROVIDER_FIELDS_V2 if version >= 2 else PROVIDER_FIELDS, "provider")
    return values["id"], values.get("profit_share_pct", ZERO)


def _parse_platform(obj: dict[str, Any], version: int) -> Platform:
    fields = PLATFORM_FIELDS_V2 if version >= 2 else PLATFORM_FIELDS
    platform = Platform(**_parse_fields(obj, fields, "platform"))
    if (
        platform.min_allocation is not None
        and platform.max_allocation is not None
        and platform.min_allocation > platform.max_allocation
    ):
        raise _Invalid(
            f"min_allocation {format_decimal(platform.min_allocation)} is above "
            f"max_allocation {format_decimal(platform.max_allocation)}"
        )
    return platform


# --------------------------------------------------------------------------- state


@dataclass
class Lot:
    qty: Fraction  # signed: > 0 long, < 0 short; never 0
    entry: Fraction
    leverage: int


@dataclass
class Relationship:
    follower: str
    provider: str
    mode: str
    fixed_amount: Fraction | None
    multiplier: Fraction
    max_open_trades: int | None
    max_per_trade_pct: Fraction
    max_loss_pct: Fraction | None
    slippage_pct: Fraction
    stop_copy_on_close: bool
    cash: Fraction
    base: Fraction
    status: str = "active"  # "active" | "paused" (not copied) | "stopped"
    # settlement: the allocation, + deposits, - withdrawals, raised by charging settlements
    high_watermark: Fraction = ZERO
    fees_paid: Fraction = ZERO
    # symbol -> FIFO lots, all in one direction; dict order = order of opening
    positions: dict[str, list[Lot]] = field(default_factory=dict)

    def position(self, symbol: str) -> Fraction:
        return sum((lot.qty for lot in self.positions.get(symbol, ())), ZERO)


@dataclass
class Provider:
    id: str
    positions: dict[str, Fraction] = field(default_factory=dict)  # signed
    exec_ids: set[str] = field(default_factory=set)
    # follower -> relationship, in follow order (the provider's follower book)
    book: dict[str, Relationship] = field(default_factory=dict)
    profit_share_pct: Fraction = ZERO


# --------------------------------------------------------------------------- records


def client_order_id(source: tuple[str, ...], follower: str) -> str:
    """base62(xxh3_128(source) XOR xxh3_128(follower)): 22 characters of [0-9A-Za-z].

    ``source`` is the tuple of key fields, joined by U+001F (unit separator);
    most significant digit first, left-padded with "0".
    """
    source_hash = xxhash.xxh3_128_intdigest(UNIT_SEPARATOR.join(source).encode("utf-8"))
    follower_hash = xxhash.xxh3_128_intdigest(follower.encode("utf-8"))
    number = source_hash ^ follower_hash
    digits = []
    while number > 0:
        number, remainder = divmod(number, 62)
        digits.append(BASE62_ALPHABET[remainder])
    return "".join(reversed(digits)).rjust(CLIENT_ORDER_ID_LENGTH, "0")


def _order_record(
    index: int,
    rel: Relationship,
    symbol: str,
    side: str,
    order_type: str,
    qty: Fraction,
    price: Fraction | None,
    reduce_only: bool,
    clamped: str | None,
    order_id: str,
) -> Record:
    record = {
        "event": index,
        "kind": "order",
        "follower": rel.follower,
        "provider": rel.provider,
        "symbol": symbol,
        "side": side,
        "type": order_type,
        "qty": format_decimal(qty),
        "price": None if price is None else format_decimal(price),
        "reduce_only": reduce_only,
    }
    if clamped is not None:
        record["clamped"] = clamped
    record["client_order_id"] = order_id
    return record


def _skip_record(index: int, rel: Relationship, reason: str) -> Record:
    return {
        "event": index,
        "kind": "skip",
        "follower": rel.follower,
        "provider": rel.provider,
        "reason": reason,
    }


def _stop_record(index: int, rel: Relationship) -> Record:
    return {
        "event": index,
        "kind": "stop",
        "follower": rel.follower,
        "provider": rel.provider,
        "reason": "max_loss",
    }


def _error_record(index: int, message: str) -> Record:
    return {"event": index, "kind": "error", "message": message}


# --------------------------------------------------------------------------- settlement
#
# Period boundaries are midnight UTC, every Monday (weekly) or the 1st of every month
# (monthly); a boundary's label is the ISO week or the month of the day before it.

DAY_US = 86_400_000_000
CENT8 = Fraction(1, 10**8)  # settlement amounts are rounded down to 8 places


def _day(us: int) -> date:
    return date(1970, 1, 1) + timedelta(days=us // DAY_US)


def _us(day: date) -> int:
    return (day - date(1970, 1, 1)).days * DAY_US


def boundary_after(schedule: str, us: int) -> int | None:
    """The first boundary strictly after ``us``; None for ``none``."""
    day = _day(us)
    if schedule == "weekly":
        return _us(day - timedelta(days=day.weekday()) + timedelta(days=7))
    if schedule == "monthly":
        return _us(date(day.year + day.month // 12, day.month % 12 + 1, 1))
    return None


def period_ending(schedule: str, boundary: int) -> str:
    """The label of the period that ``boundary`` closes: ``2026-W48``, ``2026-11``."""
    last = _day(boundary) - timedelta(days=1)
    if schedule == "weekly":
        year, week, _ = last.isocalendar()
        return f"{year:04d}-W{week:02d}"
    return f"{last.year:04d}-{last.month:02d}"


def _settlement_record(
    index: int,
    rel: Relationship,
    period: str,
    equity: Fraction,
    high_watermark: Fraction,
    due: Fraction,
    charged: Fraction,
    platform_fee_pct: Fraction,
    status: str,
) -> Record:
    platform_credit = floor_to(charged * platform_fee_pct / 100, CENT8)
    return {
        "event": index,
        "kind": "settlement",
        "period": period,
        "follower": rel.follower,
        "provider": rel.provider,
        "equity": format_decimal(equity),
        "high_watermark": format_decimal(high_watermark),
        "profit": format_decimal(equity - high_watermark),
        "due": format_decimal(due),
        "charged": format_decimal(charged),
        "provider_credit": format_decimal(charged - platform_credit),
        "platform_credit": format_decimal(platform_credit),
        "written_off": format_decimal(due - charged if status == "partial" else ZERO),
        "status": status,
    }


# --------------------------------------------------------------------------- engine


class ReferenceEngine:
    def __init__(
        self,
        instruments: list[Instrument],
        providers: list[str],
        platform: Platform | None = None,
        version: int = 1,
    ) -> None:
        self.version = version  # 2: events may carry a time, settlement terms
        self.now_us = 0  # the time of the latest event (µs since the epoch)
        self.next_boundary: int | None = None  # fixed by the first event's time
        self.anchored = False
        self.settled: set[str] = set()  # labels settled (boundaries, settle events)
        self.instruments: dict[str, Instrument] = {i.symbol: i for i in instruments}
        self.providers: dict[str, Provider] = {p: Provider(p) for p in providers}
        self.platform = platform or Platform()
        self.marks: dict[str, Fraction] = {}
        # (follower, provider) -> relationship, in global follow order
        self.relationships: dict[tuple[str, str], Relationship] = {}
        # follower -> provider -> relationship (for the follower's total allocation)
        self.by_follower: dict[str, dict[str, Relationship]] = {}

    @classmethod
    def from_scenario(cls, obj: Any) -> ReferenceEngine:
        """Validate the header and build the engine (ScenarioError if invalid).

        Checks, in order: an object, unknown top-level keys, version, instruments,
        providers, platform. ``events`` is not looked at (``replay`` checks it last).
        """
        _check_top_level(obj)
        instruments: list[Instrument] = []
        for i, item in enumerate(_array(obj, "instruments")):
            at = f"instruments[{i}]"
            if not isinstance(item, dict):
                raise ScenarioError(f"{at} must be an object")
            try:
                instrument = _parse_instrument(item)
                if instrument.symbol in (known.symbol for known in instruments):
                    raise _Invalid(f"duplicate symbol '{instrument.symbol}'")
            except _Invalid as invalid:
                raise ScenarioError(f"{at}: {invalid.message}") from None
            instruments.append(instrument)
        version = obj.get("version", 1)
        providers: list[str] = []
        shares: list[Fraction] = []
        for i, item in enumerate(_array(obj, "providers")):
            at = f"providers[{i}]"
            if not isinstance(item, dict):
                raise ScenarioError(f"{at} must be an object")
            try:
                provider_id, share = _parse_provider(item, version)
                if provider_id in providers:
                    raise _Invalid(f"duplicate provider '{provider_id}'")
            except _Invalid as invalid:
                raise ScenarioError(f"{at}: {invalid.message}") from None
            providers.append(provider_id)
            shares.append(share)
        platform = Platform()
        if obj.get("platform") is not None:
            if not isinstance(obj["platform"], dict):
                raise ScenarioError("platform must be an object")
            try:
                platform = _parse_platform(obj["platform"], version)
            except _Invalid as invalid:
                raise ScenarioError(f"platform: {invalid.message}") from None
        for i, share in enumerate(shares):
            if share > platform.max_profit_share_pct:
                raise ScenarioError(
                    f"providers[{i}]: profit_share_pct {format_decimal(share)} is above "
                    f"max_profit_share_pct {format_decimal(platform.max_profit_share_pct)}"
                )
        engine = cls(instruments, providers, platform, version)
        for provider_id, share in zip(providers, shares, strict=True):
            engine.providers[provider_id].profit_share_pct = share
        return engine

    # ----------------------------------------------------------------- accounting

    def equity(self, rel: Relationship) -> Fraction:
        """cash + sum spot qty x mark + sum perp lots (mark - entry) x signed qty."""
        total = rel.cash
        for symbol, lots in rel.positions.items():
            mark = self.marks[symbol]
            perp = self.instruments[symbol].kind == "perp"
            for lot in lots:
                if perp:
                    total += (mark - lot.entry) * lot.qty
                else:
                    total += lot.qty * mark
        return total

    def margin(self, rel: Relationship) -> Fraction:
        """Sum over perp lots of ceil16(|lot qty| x entry / leverage)."""
        total = ZERO
        for symbol, lots in rel.positions.items():
            if self.instruments[symbol].kind == "perp":
                for lot in lots:
                    total += ceil16(abs(lot.qty) * lot.entry / lot.leverage)
        return total

    def free_cash(self, rel: Relationship) -> Fraction:
        """cash - margin held - open perp losses (unrealized perp profit is not spendable)."""
        perp_pnl = ZERO
        for symbol, lots in rel.positions.items():
            if self.instruments[symbol].kind == "perp":
                for lot in lots:
                    perp_pnl += (self.marks[symbol] - lot.entry) * lot.qty
        return rel.cash - self.margin(rel) + min(perp_pnl, ZERO)

    def follower_total(self, follower: str) -> Fraction:
        """Sum of the bases of all the follower's relationships, active or stopped."""
        return sum((rel.base for rel in self.by_follower.get(follower, {}).values()), ZERO)

    def _trade(
        self,
        rel: Relationship,
        instrument: Instrument,
        side: str,
        qty: Fraction,
        price: Fraction,
        leverage: int,
    ) -> None:
        """Fill ``qty`` at ``price``: consume opposite lots oldest first, then open."""
        symbol = instrument.symbol
        signed = qty if side == "buy" else -qty
        if instrument.kind == "spot":
            rel.cash -= signed * price  # a buy pays, a sell receives
        lots = rel.positions.get(symbol, [])
        remaining = signed
        while remaining != 0 and lots and sign(lots[0].qty) != sign(remaining):
            lot = lots[0]
            direction = sign(lot.qty)  # +1 long lot, -1 short lot
            used = min(abs(remaining), abs(lot.qty))
            if instrument.kind == "perp":
                rel.cash += direction * (price - lot.entry) * used  # realized PnL
            lot.qty -= direction * used
            remaining += direction * used
            if lot.qty == 0:
                lots.pop(0)
        if not lots:
            rel.positions.pop(symbol, None)  # a position at zero leaves the list
        if remaining != 0:
            rel.positions.setdefault(symbol, []).append(Lot(remaining, price, leverage))

    # ----------------------------------------------------------------- events

    def apply(self, index: int, event: Any) -> list[Record]:
        """The records of one event (including those of the max-loss check).

        A version 2 event's time is checked first: a valid one moves the clock even if
        the rest of the event is invalid."""
        try:
            self.now_us = event_time(self.version, event, self.now_us)
        except _Invalid as invalid:
            self._cross_boundaries(index)  # at the predecessor's time: nothing crossed
            return [_error_record(index, invalid.message)]
        settled = self._cross_boundaries(index)
        try:
            if self.version >= 2 and isinstance(event, dict) and event.get("type") == "settle":
                _parse_fields(event, (), "settle", ("type", "time"))
                return settled + self._settle_all(index, f"manual-{index}")
            event_type, values = parse_event(event, ("time",) if self.version >= 2 else ())
            handlers = {
                "follow": self._follow,
                "fill": self._fill,
                "mark": self._mark,
                "deposit": self._deposit,
                "withdraw": self._withdraw,
                "unfollow": self._unfollow,
                "pause": self._pause,
                "resume": self._resume,
                "settings": self._settings,
            }
            records = handlers[event_type](index, values)
        except _Invalid as invalid:
            return [*settled, _error_record(index, invalid.message)]
        return settled + records + self._max_loss_check(index, self._max_loss_candidates(event_type, values))

    # ----------------------------------------------------------------- settlement

    def _cross_boundaries(self, index: int) -> list[Record]:
        """One settlement per boundary the clock reached, in order (the first event
        only fixes the first boundary: the first one after its time)."""
        schedule = self.platform.settlement
        if not self.anchored:
            self.anchored = True
            self.next_boundary = boundary_after(schedule, self.now_us)
            return []
        records: list[Record] = []
        while self.next_boundary is not None and self.next_boundary <= self.now_us:
            label = period_ending(schedule, self.next_boundary)
            if label not in self.settled:
                records += self._settle_all(index, label)
            self.next_boundary = boundary_after(schedule, self.next_boundary)
        return records

    def _settle_all(self, index: int, label: str) -> list[Record]:
        """Every relationship in follow order: profit above H charged at the provider's
        share if free cash covers it (else deferred); then the max-loss check of those
        charged."""
        self.settled.add(label)
        records: list[Record] = []
        charged_rels: list[Relationship] = []
        fee = self.platform.platform_fee_pct
        for rel in self.relationships.values():
            equity, high = self.equity(rel), rel.high_watermark
            if equity <= high:
                continue
            share = self.providers[rel.provider].profit_share_pct
            due = floor_to((equity - high) * share / 100, CENT8)
            if due <= self.free_cash(rel):
                rel.cash -= due
                rel.high_watermark = equity
                rel.fees_paid += due
                charged_rels.append(rel)
                records.append(_settlement_record(index, rel, label, equity, high, due, due, fee, "charged"))
            else:
                records.append(_settlement_record(index, rel, label, equity, high, due, ZERO, fee, "deferred"))
        return records + self._max_loss_check(index, charged_rels)

    def _settle_unfollow(self, index: int, rel: Relationship) -> list[Record]:
        """At unfollow: as much of due as free cash covers (the rest written off)."""
        if self.platform.settlement == "none":
            return []
        equity, high = self.equity(rel), rel.high_watermark
        if equity <= high:
            return []
        share = self.providers[rel.provider].profit_share_pct
        due = floor_to((equity - high) * share / 100, CENT8)
        charged = min(due, floor_to(max(ZERO, self.free_cash(rel)), CENT8))
        rel.cash -= charged
        rel.high_watermark = equity
        rel.fees_paid += charged
        status = "charged" if charged == due else "partial"
        fee = self.platform.platform_fee_pct
        return [_settlement_record(index, rel, "unfollow", equity, high, due, charged, fee, status)]

    def _max_loss_candidates(self, event_type: str, values: dict[str, Any]) -> list[Relationship]:
        """The relationships the max-loss check looks at after a valid event.

        docs/scenario-format.md checks every relationship not stopped after every event; looking at fewer
        is exactly equivalent. After each event every such relationship with max_loss_pct
        is above its threshold, and only two things move equity against the threshold:
        a new mark (``fill``, ``mark``: check them all) and a relationship's own cash,
        base and settings (``follow``, ``deposit``, ``withdraw``, ``settings``, and
        ``pause``/``resume``, which change nothing it reads: check that one). Trading at the
        mark and closing at the mark leave equity unchanged; ``unfollow`` only removes.
        This keeps a follow O(1), so building 10,000 followers is not quadratic.
        """
        if event_type in ("fill", "mark"):
            return list(self.relationships.values())
        rel = self.relationships.get((values["follower"], values["provider"]))
        return [rel] if rel is not None else []

    def _known_provider(self, provider_id: str) -> Provider:
        if provider_id not in self.providers:
            raise _Invalid(f"unknown provider '{provider_id}'")
        return self.providers[provider_id]

    def _known_symbol(self, symbol: str) -> Instrument:
        if symbol not in self.instruments:
            raise _Invalid(f"unknown symbol '{symbol}'")
        return self.instruments[symbol]

    def _existing_relationship(self, follower: str, provider_id: str) -> Relationship:
        rel = self.relationships.get((follower, provider_id))
        if rel is None:
            raise _Invalid(f"'{follower}' does not follow '{provider_id}'")
        return rel

    def _check_allocation(self, follower: str, new_base: Fraction, other_bases: Fraction) -> None:
        """min_allocation, max_allocation, max_total_per_follower (in this order)."""
        platform = self.platform
        if platform.min_allocation is not None and new_base < platform.min_allocation:
            raise _Invalid(
                f"allocation {format_decimal(new_base)} is below min_allocation "
                f"{format_decimal(platform.min_allocation)}"
            )
        if platform.max_allocation is not None and new_base > platform.max_allocation:
            raise _Invalid(
                f"allocation {format_decimal(new_base)} is above max_allocation "
                f"{format_decimal(platform.max_allocation)}"
            )
        total = other_bases + new_base
        if platform.max_total_per_follower is not None and total > platform.max_total_per_follower:
            raise _Invalid(
                f"total allocation {format_decimal(total)} of '{follower}' is above "
                f"max_total_per_follower {format_decimal(platform.max_total_per_follower)}"
            )

    def _follow(self, index: int, v: dict[str, Any]) -> list[Record]:
        follower, provider_id = v["follower"], v["provider"]
        provider = self._known_provider(provider_id)
        if (follower, provider_id) in self.relationships:
            raise _Invalid(f"'{follower}' already follows '{provider_id}'")
        if v["mode"] == "fixed_amount" and v["fixed_amount"] is None:
            raise _Invalid("mode fixed_amount needs fixed_amount")
        allocation = v["allocation"]
        self._check_allocation(follower, allocation, self.follower_total(follower))

        rel = Relationship(
            follower=follower,
            provider=provider_id,
            mode=v["mode"],
            fixed_amount=v["fixed_amount"],
            multiplier=v["multiplier"],
            max_open_trades=v["max_open_trades"],
            max_per_trade_pct=v["max_per_trade_pct"],
            max_loss_pct=v["max_loss_pct"],
            slippage_pct=v["slippage_pct"],
            stop_copy_on_close=v["stop_copy_on_close"],
            cash=allocation,
            base=allocation,
            high_watermark=allocation,
        )
        self.relationships[(follower, provider_id)] = rel
        provider.book[follower] = rel
        self.by_follower.setdefault(follower, {})[provider_id] = rel
        return []

    def _fill(self, index: int, v: dict[str, Any]) -> list[Record]:
        provider = self._known_provider(v["provider"])
        instrument = self._known_symbol(v["symbol"])
        leverage = v["leverage"]
        if instrument.kind == "spot" and leverage != 1:
            raise _Invalid("leverage must be 1 on spot")
        exec_id = v["exec_id"]
        if exec_id in provider.exec_ids:
            raise _Invalid(f"duplicate exec_id '{exec_id}' for provider '{provider.id}'")
        qty, price = v["qty"], v["price"]
        if not is_multiple(qty, instrument.step):
            raise _Invalid(f"qty {format_decimal(qty)} is not a multiple of step {format_decimal(instrument.step)}")
        if not is_multiple(price, instrument.tick):
            raise _Invalid(f"price {format_decimal(price)} is not a multiple of tick {format_decimal(instrument.tick)}")
        side = v["side"]
        signed_qty = qty if side == "buy" else -qty
        pos_before = provider.positions.get(instrument.symbol, ZERO)
        if instrument.kind == "spot" and pos_before + signed_qty < 0:
            raise _Invalid(f"spot position of '{provider.id}' in {instrument.symbol} would go short")

        # Effect 1: the mark.
        provider.exec_ids.add(exec_id)
        self.marks[instrument.symbol] = price

        # Effect 2: split against the provider's position.
        if pos_before != 0 and sign(signed_qty) != sign(pos_before):
            close = min(qty, abs(pos_before))
            flat = qty >= abs(pos_before)
            open_qty = qty - close
        else:
            close = ZERO
            flat = False
            open_qty = qty
        provider.positions[instrument.symbol] = pos_before + signed_qty

        records: list[Record] = []
        if close > 0:
            records += self._close_leg(index, provider, instrument, exec_id, close, flat, pos_before, price, leverage)
        if open_qty > 0:
            records += self._open_leg(
                index,
                provider,
                instrument,
                exec_id,
                side,
                open_qty,
                price,
                v["provider_equity"],
                leverage,
            )
        return records

    def _close_leg(
        self,
        index: int,
        provider: Provider,
        instrument: Instrument,
        exec_id: str,
        close: Fraction,
        flat: bool,
        pos_before: Fraction,
        price: Fraction,
        leverage: int,
    ) -> list[Record]:
        records = []
        for rel in provider.book.values():
            if rel.status != "active":
                continue
            fpos = rel.position(instrument.symbol)
            if fpos == 0:
                continue
            cq = abs(fpos) if flat else floor_to(abs(fpos) * close / abs(pos_before), instrument.step)
            if cq == 0:
                records.append(_skip_record(index, rel, "below_step"))
                continue
            side = "sell" if fpos > 0 else "buy"
            self._trade(rel, instrument, side, cq, price, leverage)
            order_id = client_order_id(("f", provider.id, exec_id, "close"), rel.follower)
            records.append(_order_record(index, rel, instrument.symbol, side, "market", cq, None, True, None, order_id))
        return records

    def _open_leg(
        self,
        index: int,
        provider: Provider,
        instrument: Instrument,
        exec_id: str,
        side: str,
        open_qty: Fraction,
        price: Fraction,
        provider_equity: Fraction,
        leverage: int,
    ) -> list[Record]:
        records = []
        for rel in provider.book.values():
            if rel.status != "active":
                continue
            # 1. max_open_trades
            if (
                rel.position(instrument.symbol) == 0
                and rel.max_open_trades is not None
                and len(rel.positions) >= rel.max_open_trades
            ):
                records.append(_skip_record(index, rel, "max_open_trades"))
                continue
            # 2. equity, free cash, wanted quantity
            equity = self.equity(rel)
            free = self.free_cash(rel)
            if rel.mode == "fixed_amount":
                assert rel.fixed_amount is not None  # checked by follow
                wanted = rel.fixed_amount * leverage / price
            else:
                wanted = open_qty * equity / provider_equity
                if rel.mode == "multiplier":
                    wanted = wanted * rel.multiplier
            # 3. no free cash
            if free <= 0:
                records.append(_skip_record(index, rel, "insufficient_balance"))
                continue
            # 4. caps (a tie binds max_per_trade)
            cap_per_trade = equity * rel.max_per_trade_pct / 100 * leverage / price
            cap_free_cash = free * leverage / price
            if cap_per_trade <= cap_free_cash:
                cap, cap_name = cap_per_trade, "max_per_trade"
            else:
                cap, cap_name = cap_free_cash, "free_cash"
            quantity, clamped = wanted, None
            if cap < wanted:
                quantity, clamped = cap, cap_name
            # 5. step and minimums
            q = floor_to(quantity, instrument.step)
            if q <= 0 or q < instrument.min_qty or q * price < instrument.min_notional:
                records.append(_skip_record(index, rel, "below_min"))
                continue
            # 6. the order, filled at the fill price
            if side == "buy":
                limit = floor_to(price * (1 + rel.slippage_pct / 100), instrument.tick)
            else:
                limit = ceil_to(price * (1 - rel.slippage_pct / 100), instrument.tick)
            self._trade(rel, instrument, side, q, price, leverage)
            order_id = client_order_id(("f", provider.id, exec_id, "open"), rel.follower)
            records.append(
                _order_record(
                    index,
                    rel,
                    instrument.symbol,
                    side,
                    "limit_ioc",
                    q,
                    limit,
                    False,
                    clamped,
                    order_id,
                )
            )
        return records

    def _mark(self, index: int, v: dict[str, Any]) -> list[Record]:
        instrument = self._known_symbol(v["symbol"])
        price = v["price"]
        if not is_multiple(price, instrument.tick):
            raise _Invalid(f"price {format_decimal(price)} is not a multiple of tick {format_decimal(instrument.tick)}")
        self.marks[instrument.symbol] = price
        return []

    def _deposit(self, index: int, v: dict[str, Any]) -> list[Record]:
        follower, provider_id, amount = v["follower"], v["provider"], v["amount"]
        self._known_provider(provider_id)
        rel = self._existing_relationship(follower, provider_id)
        other_bases = self.follower_total(follower) - rel.base
        self._check_allocation(follower, rel.base + amount, other_bases)
        rel.cash += amount
        rel.base += amount
        rel.high_watermark += amount  # money in is not profit
        return []

    def _withdraw(self, index: int, v: dict[str, Any]) -> list[Record]:
        follower, provider_id, amount = v["follower"], v["provider"], v["amount"]
        self._known_provider(provider_id)
        rel = self._existing_relationship(follower, provider_id)
        free = self.free_cash(rel)
        if amount > free:
            raise _Invalid(f"withdrawal {format_decimal(amount)} is above free cash {format_decimal(free)}")
        rel.cash -= amount
        rel.base -= amount
        rel.high_watermark -= amount
        return []

    def _unfollow(self, index: int, v: dict[str, Any]) -> list[Record]:
        follower, provider_id = v["follower"], v["provider"]
        provider = self._known_provider(provider_id)
        rel = self._existing_relationship(follower, provider_id)
        records = []
        if rel.stop_copy_on_close:
            records += self._close_all(index, rel, "u")
        records += self._settle_unfollow(index, rel)
        del self.relationships[(follower, provider_id)]
        del provider.book[follower]
        del self.by_follower[follower][provider_id]
        if not self.by_follower[follower]:
            del self.by_follower[follower]
        return records

    def _pause(self, index: int, v: dict[str, Any]) -> list[Record]:
        return self._set_paused(v, True)

    def _resume(self, index: int, v: dict[str, Any]) -> list[Record]:
        return self._set_paused(v, False)

    def _set_paused(self, v: dict[str, Any], pause: bool) -> list[Record]:
        follower, provider_id = v["follower"], v["provider"]
        self._known_provider(provider_id)
        rel = self._existing_relationship(follower, provider_id)
        if rel.status == "stopped":
            raise _Invalid(f"'{follower}' copying '{provider_id}' is stopped")
        if pause and rel.status == "paused":
            raise _Invalid(f"'{follower}' copying '{provider_id}' is already paused")
        if not pause and rel.status == "active":
            raise _Invalid(f"'{follower}' copying '{provider_id}' is not paused")
        rel.status = "paused" if pause else "active"
        return []

    def _settings(self, index: int, v: dict[str, Any]) -> list[Record]:
        changes = {name: v[name] for name in SETTING_NAMES if v[name] is not None}
        if not changes:
            raise _Invalid("settings names no setting")
        follower, provider_id = v["follower"], v["provider"]
        self._known_provider(provider_id)
        rel = self._existing_relationship(follower, provider_id)
        if changes.get("mode", rel.mode) == "fixed_amount" and changes.get("fixed_amount", rel.fixed_amount) is None:
            raise _Invalid("mode fixed_amount needs fixed_amount")
        for name, value in changes.items():
            setattr(rel, name, value)
        return []

    def _close_all(self, index: int, rel: Relationship, leg: str) -> list[Record]:
        """Close every position at its mark, in list order (stop: leg s, unfollow: u)."""
        records = []
        for symbol in list(rel.positions):
            instrument = self.instruments[symbol]
            position = rel.position(symbol)
            side = "sell" if position > 0 else "buy"
            qty = abs(position)
            self._trade(rel, instrument, side, qty, self.marks[symbol], 1)
            order_id = client_order_id((leg, rel.provider, str(index), symbol), rel.follower)
            records.append(_order_record(index, rel, symbol, side, "market", qty, None, True, None, order_id))
        return records

    def _max_loss_check(self, index: int, candidates: list[Relationship]) -> list[Record]:
        """Stop every relationship not stopped with equity <= base x (1 - max_loss_pct/100).

        ``candidates`` are in global follow order (see ``_max_loss_candidates``).
        """
        records = []
        for rel in candidates:
            if rel.status == "stopped" or rel.max_loss_pct is None:
                continue  # a paused relationship is still protected
            threshold = rel.base * (1 - rel.max_loss_pct / 100)
            if self.equity(rel) <= threshold:
                records.append(_stop_record(index, rel))
                records += self._close_all(index, rel, "s")
                rel.status = "stopped"
        return records

    # ----------------------------------------------------------------- output

    def portfolios(self) -> list[Record]:
        """One record per remaining relationship, in follow order (version 2: with
        ``high_watermark`` and ``fees_paid``)."""
        records = [
            {
                "event": None,
                "kind": "portfolio",
                "follower": rel.follower,
                "provider": rel.provider,
                "status": rel.status,
                "cash": format_decimal(rel.cash),
                "equity": format_decimal(self.equity(rel)),
                "positions": [
                    {"symbol": symbol, "qty": format_decimal(rel.position(symbol))} for symbol in rel.positions
                ],
            }
            for rel in self.relationships.values()
        ]
        if self.version >= 2:
            for record, rel in zip(records, self.relationships.values(), strict=True):
                record["high_watermark"] = format_decimal(rel.high_watermark)
                record["fees_paid"] = format_decimal(rel.fees_paid)
        return records


def replay(text: str) -> list[Record]:
    """Replay a scenario file: the records of every event, then the portfolios."""
    scenario = _load_json(text)
    engine = ReferenceEngine.from_scenario(scenario)
    events = _array(scenario, "events")
    records: list[Record] = []
    for index, event in enumerate(events):
        records += engine.apply(index, event)
    records += engine.portfolios()
    return records

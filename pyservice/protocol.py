"""The venue wire protocol, version 2 (the contract: `docs/protocol.md`).

A frame is a 4-byte big-endian length, then one msgpack message. A message is a msgspec
tagged-union Struct encoded as an array: `[tag, field, ...]`. Numbers that are money,
prices or quantities travel as decimal strings; sequence numbers, venue times (`ts`, µs
since the epoch) and leverage are integers. The engine writes `NewOrders` in Rust (`Engine.execute` returns the finished
frame); the Structs here decode it, and tests check the two agree byte for byte.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator
from typing import Annotated, Final, Generic, Literal, NamedTuple, TypeAlias, TypeVar, Union, overload

import msgspec

from pyservice._engine_core import Execution, InstrumentDef, Mark, Reports, decode_venue

PROTOCOL_VERSION: Final = 2
#: Default limit on one frame's payload; a NewOrders frame for 100,000 followers is ~10 MB.
DEFAULT_MAX_FRAME: Final = 64 * 1024 * 1024

_HEADER = struct.Struct(">I")

# Patterns end in `\Z`, not `$`: in Python's `re`, `$` also matches before a final newline.
Seq = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
#: A logged message's `ts`: the venue's time of the event, µs since the Unix epoch (UTC).
Micros = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
#: A non-negative decimal string; the engine applies the exact per-field precision rules.
Decimal = Annotated[str, msgspec.Meta(pattern=r"^[0-9]{1,13}(\.[0-9]{1,16})?\Z")]
#: an id (follower, provider, symbol): the engine's `is_identifier`, everywhere a name is checked
NAME_CHARS = r"[A-Za-z0-9_.:-]{1,64}"
NAME = rf"^{NAME_CHARS}\Z"
NAME_RE = re.compile(NAME)
Name = Annotated[str, msgspec.Meta(pattern=NAME)]
ClientOrderId = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9]{1,32}\Z")]
Side = Literal["buy", "sell"]
#: The engine's challenge and the venue's answer to it (`pyservice.venue_auth`).
Nonce = Annotated[bytes, msgspec.Meta(min_length=32, max_length=32)]
Mac = Annotated[bytes, msgspec.Meta(min_length=32, max_length=32)]


class _Message(msgspec.Struct, array_like=True, frozen=True, forbid_unknown_fields=True):
    pass


# venue → engine. Hello and Heartbeat carry the venue's newest seq (they are not part of
# the log); every other message is a log entry with its own seq and the venue's time of
# it (`ts`), sent again from any seq on Resume.


class Hello(_Message, tag="hello", frozen=True):
    """The answer to the engine's `Challenge`: `mac` = HMAC-SHA256(key, nonce || 0x1f ||
    session), or nil from a venue without a key (only an engine without one accepts it).
    An array without `mac` decodes too, so a version 1 hello is refused for its version."""

    seq: Seq
    version: int
    session: Name
    mac: Mac | None = None


class Instrument(_Message, tag="instrument", frozen=True):
    seq: Seq
    ts: Micros
    symbol: Name
    kind: Literal["spot", "perp"]
    tick: Decimal
    step: Decimal
    min_qty: Decimal
    min_notional: Decimal


class MarkPrice(_Message, tag="mark", frozen=True):
    seq: Seq
    ts: Micros
    symbol: Name
    price: Decimal


class ProviderExecution(_Message, tag="exec", frozen=True):
    seq: Seq
    ts: Micros
    provider: Name
    exec_id: Name
    symbol: Name
    side: Side
    qty: Decimal
    price: Decimal
    provider_equity: Decimal
    leverage: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 1


class Fill(NamedTuple):
    """One copy order's execution report. IOC: the unfilled rest of the order expired.

    Batch entries are NamedTuples (msgpack arrays): the engine hands the list to Rust as
    plain tuples, with no per-entry conversion in Python."""

    client_order_id: ClientOrderId
    qty: Decimal
    price: Decimal


class CopyFills(_Message, tag="fills", frozen=True):
    seq: Seq
    ts: Micros
    fills: list[Fill]


RejectReason = Literal["insufficient_funds", "expired", "reduce_only", "duplicate", "invalid"]


class Reject(NamedTuple):
    """`duplicate`: the venue already has this order; the engine adopts it."""

    client_order_id: ClientOrderId
    reason: RejectReason


class CopyRejects(_Message, tag="rejects", frozen=True):
    seq: Seq
    ts: Micros
    rejects: list[Reject]


class Heartbeat(_Message, tag="hb", frozen=True):
    seq: Seq


# engine → venue


class Challenge(_Message, tag="challenge", frozen=True):
    """The engine's first frame on every connection: a fresh random nonce to sign."""

    version: int
    nonce: Nonce


class Resume(_Message, tag="resume", frozen=True):
    """Send every log entry from `from_seq` on, then keep pushing."""

    from_seq: Seq
    version: int = PROTOCOL_VERSION


class NewOrder(NamedTuple):
    client_order_id: ClientOrderId
    follower: Name
    provider: Name
    symbol: Name
    side: Side
    type: Literal["limit_ioc", "market"]
    qty: Decimal
    #: None for a market order.
    price: Decimal | None
    reduce_only: bool
    leverage: int


class NewOrders(_Message, tag="orders", frozen=True):
    """Every copy order one input produced; `seq` is that input's seq."""

    seq: Seq
    orders: list[NewOrder]


class UncheckedOrder(NamedTuple):
    """A `NewOrder` as the venue-sim reads it: the same fields and types, but the text
    fields are not pattern-checked (a regex per field was most of the venue's cost per
    order). The venue checks what it uses: the client order id (`check_order_ids`, a
    protocol error), names by lookup and numbers by parsing (an `invalid` reject)."""

    client_order_id: str
    follower: str
    provider: str
    symbol: str
    side: Side
    type: Literal["limit_ioc", "market"]
    qty: str
    price: str | None
    reduce_only: bool
    leverage: int


class UncheckedOrders(_Message, tag="orders", frozen=True):
    seq: Seq
    orders: list[UncheckedOrder]


VenueMessage: TypeAlias = Hello | Instrument | MarkPrice | ProviderExecution | CopyFills | CopyRejects | Heartbeat
#: The venue's log entries as a native reader returns them: decoded in Rust
#: (`engine_core/src/inbound.rs`, `reports.rs`) with exactly these Structs' checks.
NativeEntry: TypeAlias = Execution | Mark | InstrumentDef | Reports
NativeVenueMessage: TypeAlias = Hello | Heartbeat | NativeEntry
EngineMessage: TypeAlias = Challenge | Resume | NewOrders | Heartbeat
Message: TypeAlias = VenueMessage | EngineMessage

_encoder = msgspec.msgpack.Encoder()


class ProtocolError(Exception):
    """A frame that breaks the protocol: the connection carrying it must be dropped."""


def encode(message: Message) -> bytes:
    """One complete frame: length prefix and payload."""
    payload = _encoder.encode(message)
    return _HEADER.pack(len(payload)) + payload


T = TypeVar("T")


class FrameReader(Generic[T]):
    """Splits a byte stream into frames and decodes them as `kind` messages.

    `feed` returns the messages completed so far; a bad frame raises `ProtocolError` and
    the reader must then be discarded (the stream position is lost).

    With `native_reports`, the log entries come back decoded in Rust, with the same
    checks: `exec`, `mark` and `instrument` as `Execution`, `Mark` and `InstrumentDef`
    (typed fields for `LiveEngine.message`), `fills` and `rejects` as `Reports` (no
    Python object per entry). `hello` and `hb` stay Structs.
    """

    def __init__(self, kind: object, max_frame: int = DEFAULT_MAX_FRAME, *, native_reports: bool = False) -> None:
        self._decoder: msgspec.msgpack.Decoder[T] = msgspec.msgpack.Decoder(kind)
        #: may be changed between feeds (the engine allows small frames until the venue is authenticated)
        self.max_frame = max_frame
        self._buf = bytearray()
        self._native = native_reports

    def feed(self, data: bytes) -> list[T]:
        return [msg for msg, _ in self.feed_framed(data)]

    def feed_framed(self, data: bytes) -> list[tuple[T, bytes]]:
        """`feed`, with each message's frame payload (what the engine journals)."""
        self._buf += data
        return list(self._frames())

    def decode(self, payload: bytes) -> T:
        """One frame's payload (without its length header), as `feed` decodes it."""
        try:
            if self._native and (native := decode_venue(payload)) is not None:
                return native  # type: ignore[return-value]  # native readers are typed with NativeEntry in T
            return self._decoder.decode(payload)
        # ValueError: msgspec's errors, FrameError, and UnicodeDecodeError (msgspec
        # raises it for a str that is not UTF-8); RecursionError: deep nesting.
        except (ValueError, RecursionError) as exc:
            raise ProtocolError(f"bad frame: {exc}") from None

    def _frames(self) -> Iterator[tuple[T, bytes]]:
        buf = self._buf
        start = 0
        try:
            while len(buf) - start >= 4:
                (size,) = _HEADER.unpack_from(buf, start)
                if size > self.max_frame:
                    raise ProtocolError(f"frame of {size} bytes is above the limit {self.max_frame}")
                if len(buf) - start - 4 < size:
                    break
                payload = bytes(buf[start + 4 : start + 4 + size])
                start += 4 + size
                yield self.decode(payload), payload
        finally:
            del buf[:start]

    @property
    def buffered(self) -> int:
        return len(self._buf)


@overload
def venue_reader(max_frame: int = ..., *, native_reports: Literal[False] = ...) -> FrameReader[VenueMessage]: ...
@overload
def venue_reader(max_frame: int = ..., *, native_reports: Literal[True]) -> FrameReader[NativeVenueMessage]: ...


def venue_reader(
    max_frame: int = DEFAULT_MAX_FRAME, *, native_reports: bool = False
) -> FrameReader[VenueMessage] | FrameReader[NativeVenueMessage]:
    """Reads what a venue sends (the engine's side of the socket)."""
    return FrameReader(VenueMessage, max_frame, native_reports=native_reports)


def engine_reader(max_frame: int = DEFAULT_MAX_FRAME) -> FrameReader[EngineMessage]:
    """Reads what an engine sends (the venue's side of the socket)."""
    return FrameReader(EngineMessage, max_frame)


def unchecked_engine_reader(
    max_frame: int = DEFAULT_MAX_FRAME,
) -> FrameReader[Challenge | Resume | UncheckedOrders | Heartbeat]:
    """`engine_reader` with orders as `UncheckedOrder`s (see there)."""
    return FrameReader(Union[Challenge, Resume, UncheckedOrders, Heartbeat], max_frame)  # noqa: UP007  msgspec's type, mypy's T


def check_order_ids(orders: list[UncheckedOrder]) -> None:
    """ProtocolError unless every client order id is `ClientOrderId` (a venue must be
    able to answer each order by its id)."""
    for o in orders:
        cid = o[0]
        if not (0 < len(cid) <= 32 and cid.isascii() and cid.isalnum()):
            raise ProtocolError(f"bad frame: client order id {cid!r} is not [A-Za-z0-9]{{1,32}}")

"""The Rust decoder of venue log entries (`decode_venue`: engine_core/src/inbound.rs for
`exec`, `mark` and `instrument`, reports.rs for `fills` and `rejects`, both on the rules
of wire_rules.rs) agrees exactly with msgspec decoding `protocol.VenueMessage`: the same
frames are accepted with the same fields, the same frames are refused, and whatever it
leaves to msgspec is a frame msgspec refuses or a `hello` / `hb`. And a decoded message
applied with `LiveEngine.message` does what the string-based calls do with its fields."""

from __future__ import annotations

import json
import struct
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pyservice import protocol as P
from pyservice._engine_core import Execution, FrameError, InstrumentDef, LiveEngine, Mark, Reports, decode_venue

_msgspec = msgspec.msgpack.Decoder(P.VenueMessage)
enc = msgspec.msgpack.encode

NAME_CHARS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_.:-"
NAME = st.text(NAME_CHARS, min_size=1, max_size=64)
COID = st.text(NAME_CHARS[:62], min_size=1, max_size=32)
DIGITS = st.text("0123456789", min_size=1, max_size=13)
DECIMAL = st.one_of(DIGITS, st.builds(lambda a, b: f"{a}.{b}", DIGITS, st.text("0123456789", min_size=1, max_size=16)))
SIDE = st.sampled_from(["buy", "sell"])
KIND = st.sampled_from(["spot", "perp"])
REASON = st.sampled_from(["insufficient_funds", "expired", "reduce_only", "duplicate", "invalid"])
SEQ = st.integers(0, 2**63 - 1)
#: a logged message's ts: the whole range, its edges, and times of this century
TS = st.one_of(
    st.integers(0, 2**63 - 1),
    st.sampled_from([0, 2**63 - 1]),
    st.integers(1_600_000_000_000_000, 1_900_000_000_000_000),
)
LEVERAGE = st.integers(1, 1000)
#: near-misses: what a field must not be, plus anything at all
JUNK = st.one_of(
    st.sampled_from(
        [
            "",
            "1.",
            ".5",
            "1\n",
            "-1",
            "1e5",
            "A B",
            "a" * 65,
            "1" * 14,
            "1." + "0" * 17,
            "Buy",
            "swap",
            "\u00e9",
            "１",
            "exec",
        ]
    ),
    st.text(max_size=70),
    st.integers(-2, 2**64 - 1),
    st.sampled_from([0, 1000, 1001, 2**63, -(2**63), -1, 2**64 - 1]),
    st.floats(allow_nan=False, max_value=2000, min_value=-2),
    st.just(1.7e15),  # a ts as a float: refused
    st.none(),
    st.booleans(),
    st.binary(max_size=4),
    st.lists(st.just("1"), max_size=2),
)

#: each tag's fields after the tag, as strategies for valid values
FIELDS: dict[str, list[st.SearchStrategy[Any]]] = {
    "exec": [SEQ, TS, NAME, NAME, NAME, SIDE, DECIMAL, DECIMAL, DECIMAL, LEVERAGE],
    "mark": [SEQ, TS, NAME, DECIMAL],
    "instrument": [SEQ, TS, NAME, KIND, DECIMAL, DECIMAL, DECIMAL, DECIMAL],
    "fills": [SEQ, TS, st.lists(st.tuples(COID, DECIMAL, DECIMAL).map(list), max_size=5)],
    "rejects": [SEQ, TS, st.lists(st.tuples(COID, REASON).map(list), max_size=5)],
    "hb": [SEQ],
    "hello": [SEQ, st.integers(0, 3), NAME],
}


def msgspec_view(payload: bytes) -> tuple[Any, ...] | None:
    try:
        msg = _msgspec.decode(payload)
    except (ValueError, RecursionError):  # as FrameReader: msgspec's errors, UnicodeDecodeError
        return None
    if isinstance(msg, P.CopyFills):
        return "fills", msg.seq, msg.ts, [list(f) for f in msg.fills]
    if isinstance(msg, P.CopyRejects):
        return "rejects", msg.seq, msg.ts, [list(r) for r in msg.rejects]
    tag = type(msg).__struct_config__.tag
    return (tag, *(getattr(msg, f) for f in msg.__struct_fields__))


def native_view(msg: Execution | Mark | InstrumentDef | Reports) -> tuple[Any, ...]:
    if isinstance(msg, Reports):
        return msg.kind, msg.seq, msg.ts, msg.entries()
    if isinstance(msg, Execution):
        fields: tuple[Any, ...] = (
            msg.seq,
            msg.ts,
            msg.provider,
            msg.exec_id,
            msg.symbol,
            msg.side,
            msg.qty,
            msg.price,
            msg.provider_equity,
            msg.leverage,
        )
    elif isinstance(msg, Mark):
        fields = (msg.seq, msg.ts, msg.symbol, msg.price)
    else:
        fields = (msg.seq, msg.ts, msg.symbol, msg.kind, msg.tick, msg.step, msg.min_qty, msg.min_notional)
    return (msg.tag, *fields)


#: the Rust decoder left the payload to msgspec
MSGSPEC = ("msgspec's",)


def rust_view(payload: bytes) -> tuple[Any, ...] | None:
    try:
        msg = decode_venue(payload)
    except FrameError:
        return None
    return MSGSPEC if msg is None else native_view(msg)


def check(payload: bytes) -> None:
    rust, ref = rust_view(payload), msgspec_view(payload)
    if rust == MSGSPEC:
        assert ref is None or ref[0] in ("hello", "hb"), ref
    else:
        assert rust == ref


@st.composite
def venue_payloads(draw: st.DrawFn) -> bytes:
    tag = draw(
        st.sampled_from(["exec", "exec", "exec", "mark", "mark", "instrument", "instrument", "fills", "rejects", "hb"])
    )
    fields = FIELDS[tag]
    if draw(st.booleans()):  # a valid frame, so acceptance is tested as much as refusal
        values = [draw(f) for f in fields]
        if tag == "exec" and draw(st.booleans()):
            values.pop()  # leverage left out: 1
        return enc([tag, *values])
    message: list[object] = [tag]
    message += [draw(st.one_of(f, f, f, f, JUNK)) for f in fields]
    shape = draw(st.integers(0, 9))
    if shape == 0:
        message.append(draw(JUNK))  # an extra element
    elif shape == 1:
        del message[draw(st.integers(1, len(message) - 1))]  # a missing one
    elif shape == 2:
        message[0] = draw(st.one_of(JUNK, st.sampled_from(["exec", "mark", "instrument", "fills", "rejects"])))
    payload = enc(message)
    mutation = draw(st.integers(0, 6))
    if mutation == 0 and payload:  # flip a byte
        i = draw(st.integers(0, len(payload) - 1))
        payload = payload[:i] + bytes([draw(st.integers(0, 255))]) + payload[i + 1 :]
    elif mutation == 1:  # cut
        payload = payload[: draw(st.integers(0, len(payload)))]
    elif mutation == 2:
        payload += draw(st.binary(min_size=1, max_size=3))
    elif mutation == 3:  # the same message with the widest headers msgpack has
        payload = _wide(message)
    return payload


def _wide(message: list[object]) -> bytes:
    """`message` with an array32 header, str32 strings and uint64/int64 integers: other
    encodings of the same values, which msgspec accepts."""
    out = bytearray(b"\xdd" + struct.pack(">I", len(message)))
    for v in message:
        if isinstance(v, str):
            b = v.encode()
            out += b"\xdb" + struct.pack(">I", len(b)) + b
        elif isinstance(v, int) and not isinstance(v, bool):
            out += b"\xcf" + struct.pack(">Q", v) if v >= 0 else b"\xd3" + struct.pack(">q", v)
        else:
            out += enc(v)
    return bytes(out)


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(venue_payloads())
@example(enc(["exec", 1, 5, "P", "x", "BTC", "buy", "1", "1", "1", 1001]))
@example(enc(["exec", 1, 5, "P", "x", "BTC", "buy", "1", "1", "1", True]))
@example(enc(["exec", 1, 5, "P", "x", "BTC", "buy", "1", "1", "1", 5.0]))
@example(enc(["exec", 2**63, 5, "P", "x", "BTC", "buy", "1", "1", "1"]))
@example(enc(["exec", 1, 2**63, "P", "x", "BTC", "buy", "1", "1", "1"]))
@example(enc(["exec", 1, -1, "P", "x", "BTC", "buy", "1", "1", "1"]))
@example(enc(["exec", 1, 2**63 - 1, "P", "x", "BTC", "buy", "1", "1", "1"]))
@example(enc(["exec", 1, "P", "x", "BTC", "buy", "1", "1", "1"]))  # a version 1 frame: no ts
@example(enc(["mark", 1, 1.7e15, "BTC", "1"]))
@example(enc(["mark", 1, True, "BTC", "1"]))
@example(enc(["mark", 1, None, "BTC", "1"]))
@example(enc(["mark", 1, "1700000000000000", "BTC", "1"]))
@example(enc(["fills", 1, 2.0, []]))
@example(enc(["rejects", 1, 2**63, []]))
@example(enc(["fills", 1, []]))
@example(enc(["mark", 1, 0, "BTC", "1\n"]))
@example(enc(["mark", 1, 0, "BTC", "1", None]))
@example(enc(["instrument", 1, 0, "BTC", "spot", "1", "1", "0", "0"]) + b"\x00")
@example(enc(["mark", 1, 0, b"BTC", "1"]))
@example(enc({"mark": 1}))
@example(enc([]))
def test_rust_and_msgspec_agree(payload: bytes) -> None:
    check(payload)


def test_the_widest_headers_are_accepted_alike() -> None:
    message: list[object] = ["exec", 2**63 - 1, 2**63 - 1, "P", "x1", "BTC", "sell", "0.5", "60000", "1000", 1000]
    assert rust_view(_wide(message)) == msgspec_view(_wide(message)) == tuple(message)


def test_a_native_reader_hands_every_log_entry_to_rust() -> None:
    log: list[P.VenueMessage] = [
        P.Hello(0, 1, "s"),
        P.Instrument(1, 0, "BTC", "spot", "0.01", "0.001", "0", "0"),
        P.MarkPrice(2, 0, "BTC", "100"),
        P.ProviderExecution(3, 0, "P", "x1", "BTC", "buy", "1", "100", "1000", 7),
        P.CopyFills(4, 0, [P.Fill("a", "1", "100")]),
        P.Heartbeat(4),
    ]
    stream = b"".join(P.encode(m) for m in log)
    assert P.venue_reader().feed(stream) == log
    got = P.venue_reader(native_reports=True).feed(stream)
    assert [type(m) for m in got] == [P.Hello, InstrumentDef, Mark, Execution, Reports, P.Heartbeat]
    assert [native_view(m) for m in got[1:-1]] == [msgspec_view(P.encode(m)[4:]) for m in log[1:-1]]


@pytest.mark.parametrize(
    "message",
    [
        ["exec", 1, 0, "P", "x", "BTC", "buy", "1", "1", "1", 0],
        ["exec", 1, 0, "P", "x", "BTC", "hold", "1", "1", "1"],
        ["exec", 1, "P", "x", "BTC", "buy", "1", "1", "1"],
        ["mark", 1, 0, "BTC", "1", "2"],
        ["mark", 1, -1, "BTC", "1"],
        ["mark", 1, 0.5, "BTC", "1"],
        ["fills", 1, False, []],
        ["instrument", 1, 0, "BTC", "spot", "1", "1", "0"],
    ],
)
def test_bad_frames_are_protocol_errors_either_way(message: list[object]) -> None:
    payload = enc(message)
    frame = struct.pack(">I", len(payload)) + payload
    for native in (False, True):
        with pytest.raises(P.ProtocolError, match=r"^bad frame: "):
            P.venue_reader(native_reports=native).feed(frame)


# ------------------------------------------------------------------ applying them

BOOKS = json.dumps(
    {
        "version": 1,
        "providers": [{"id": "P"}, {"id": "Q"}],
        "follows": [
            {"follower": "a", "provider": "P", "allocation": "1000"},
            {"follower": "b", "provider": "P", "allocation": "250", "mode": "multiplier", "multiplier": "2"},
            {"follower": "c", "provider": "Q", "allocation": "50", "max_loss_pct": "10"},
        ],
    }
)
#: values the engine's rules refuse (more than 8 decimals, 10^12 and above, zero), and good ones
NUMBER = st.sampled_from(
    ["0", "0.000000001", "1000000000000", "9999999999999.5", "1", "0.5", "100", "99.99", "0.001", "1.10000000"]
)
GOOD = st.sampled_from(["1", "0.5", "100", "99.99", "2.002", "1.10000000"])
SYMBOL = st.sampled_from(["BTC", "BTC", "ETH", "NOPE"])


@st.composite
def engine_inputs(draw: st.DrawFn) -> list[P.Instrument | P.MarkPrice | P.ProviderExecution]:
    out: list[P.Instrument | P.MarkPrice | P.ProviderExecution] = [
        P.Instrument(0, 0, "BTC", "spot", "0.01", "0.001", "0", "0"),
        P.Instrument(0, 0, "ETH", "perp", "0.01", "0.001", "0", "5"),
    ]
    for _ in range(draw(st.integers(1, 12))):
        kind = draw(st.sampled_from(["exec"] * 5 + ["mark", "mark", "instrument"]))
        if kind == "exec":
            out.append(
                P.ProviderExecution(
                    0,
                    0,
                    draw(st.sampled_from(["P", "P", "Q", "R"])),
                    draw(st.sampled_from([f"x{i}" for i in range(20)])),  # repeats are refused
                    draw(SYMBOL),
                    draw(SIDE),
                    draw(st.one_of(GOOD, GOOD, GOOD, NUMBER)),
                    draw(st.one_of(GOOD, GOOD, GOOD, NUMBER)),
                    draw(st.sampled_from(["1000"] * 4 + ["50", "1000.5", "0", "0.0000000000000001"])),
                    draw(st.sampled_from([1] * 6 + [2, 5, 125, 126, 1000])),
                )
            )
        elif kind == "mark":
            out.append(P.MarkPrice(0, 0, draw(SYMBOL), draw(NUMBER)))
        else:
            out.append(
                P.Instrument(0, 0, draw(SYMBOL), draw(KIND), draw(NUMBER), draw(NUMBER), draw(NUMBER), draw(NUMBER))
            )
    # times mostly forward, sometimes back (corrected by the engine's clock)
    times = draw(st.lists(st.integers(0, 10**6), min_size=len(out), max_size=len(out)))
    return [
        m.__class__(**{**{f: getattr(m, f) for f in m.__struct_fields__}, "seq": i, "ts": t})
        for i, (m, t) in enumerate(zip(out, times, strict=True), 1)
    ]


def _by_strings(e: LiveEngine, m: P.Instrument | P.MarkPrice | P.ProviderExecution) -> Any:
    if isinstance(m, P.ProviderExecution):
        return e.execute(
            m.seq, m.provider, m.exec_id, m.symbol, m.side, m.qty, m.price, m.provider_equity, m.leverage, ts=m.ts
        )
    if isinstance(m, P.MarkPrice):
        return e.mark(m.seq, m.symbol, m.price, ts=m.ts)
    return e.instrument(m.seq, m.symbol, m.kind, m.tick, m.step, m.min_qty, m.min_notional, ts=m.ts)


@settings(max_examples=200, deadline=None)
@given(engine_inputs())
def test_a_decoded_message_does_what_its_strings_do(
    inputs: list[P.Instrument | P.MarkPrice | P.ProviderExecution],
) -> None:
    old, new = LiveEngine.from_books(BOOKS), LiveEngine.from_books(BOOKS)
    for m in inputs:
        native = decode_venue(P.encode(m)[4:])
        assert isinstance(native, Execution | Mark | InstrumentDef)
        a, b = _by_strings(old, m), new.message(native)
        assert (a.frame, a.orders, a.skips, a.clamps, a.stopped, a.errors) == (
            b.frame,
            b.orders,
            b.skips,
            b.clamps,
            b.stopped,
            b.errors,
        )
    assert old.portfolios_jsonl() == new.portfolios_jsonl()
    assert old.working_count == new.working_count
    assert (old.now_us, old.clock_corrections) == (new.now_us, new.clock_corrections)
    ts = [m.ts for m in inputs]
    assert new.now_us == max(ts)
    assert new.clock_corrections == sum(t < max(ts[:i]) for i, t in enumerate(ts) if i)

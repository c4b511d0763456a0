"""Wire compatibility of the `orders` frame (engine_core/src/wire.rs) with the msgspec
Structs of `pyservice.protocol`, both ways, and `FrameReader`'s framing and validation.

(a) Frames the Rust engine writes decode into `NewOrders`, and msgspec re-encodes the
    decoded value to the same bytes.
(b) `NewOrders` values built here (orders sized with the docs/scenario-format.md rules, computed
    independently with Fractions) encode with msgspec to exactly the engine's frame;
    names, seqs and counts are chosen to cross every msgpack header boundary the engine
    can reach (fixstr/str8, fixint/uint8/16/32/64, fixarray/array16).
"""

from __future__ import annotations

import itertools
import json
import math
import struct
from fractions import Fraction

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyservice import protocol
from pyservice._engine_core import LiveEngine, Outcome
from pyservice.protocol import (
    CopyFills,
    CopyRejects,
    Fill,
    Heartbeat,
    Hello,
    Instrument,
    MarkPrice,
    NewOrder,
    NewOrders,
    ProtocolError,
    ProviderExecution,
    Reject,
    Resume,
    engine_reader,
    venue_reader,
)
from pyservice.reference import client_order_id

# --------------------------------------------------------------------------- helpers

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
NAME_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:-"


def cid(*source: str, follower: str) -> str:
    return client_order_id(source, follower)


def dec(x: Fraction | int) -> str:
    """Canonical decimal text of a non-negative terminating decimal."""
    x = Fraction(x)
    places = 0
    while (x * 10**places).denominator != 1:
        places += 1
    whole, frac = divmod((x * 10**places).numerator, 10**places)
    return str(whole) + ("." + str(frac).rjust(places, "0").rstrip("0") if frac else "")


def floor_to(x: Fraction, unit: Fraction) -> Fraction:
    return math.floor(x / unit) * unit


def ceil_to(x: Fraction, unit: Fraction) -> Fraction:
    return math.ceil(x / unit) * unit


def decode_frame(frame: bytes) -> NewOrders:
    msgs = engine_reader().feed(frame)
    assert len(msgs) == 1 and isinstance(msgs[0], NewOrders)
    return msgs[0]


def assert_round_trip(out: Outcome, seq: int) -> NewOrders | None:
    """(a): the engine's frame decodes, and msgspec writes the decoded value back to it."""
    if out.orders == 0:
        assert out.frame is None
        return None
    frame = out.frame
    assert frame is not None
    assert struct.unpack(">I", frame[:4])[0] == len(frame) - 4
    msg = decode_frame(frame)
    assert msg.seq == seq and len(msg.orders) == out.orders
    assert protocol.encode(msg) == frame
    return msg


def names(min_size: int = 1, max_size: int = 64) -> st.SearchStrategy[str]:
    return st.text(NAME_CHARS, min_size=min_size, max_size=max_size)


SEQS = [0, 1, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**63 - 1]


def seqs() -> st.SearchStrategy[int]:
    return st.sampled_from(SEQS) | st.integers(0, 2**63 - 1)


# --------------------------------------------------------------------------- (b) chosen engines


def expected_open(
    provider: str,
    exec_id: str,
    symbol: str,
    side: str,
    qty: Fraction,
    price: Fraction,
    provider_equity: Fraction,
    leverage: int,
    tick: Fraction,
    step: Fraction,
    follower: str,
    allocation: Fraction,
    slippage: Fraction,
) -> NewOrder | None:
    """A fresh follower's opening copy (docs/scenario-format.md, open leg): E = F = allocation."""
    wanted = qty * allocation / provider_equity
    cap = allocation * leverage / price  # max_per_trade 100 % and free cash coincide
    q = floor_to(min(wanted, cap), step)
    if q <= 0:
        return None
    if side == "buy":
        limit = floor_to(price * (1 + slippage / 100), tick)
    else:
        limit = ceil_to(price * (1 - slippage / 100), tick)
    return NewOrder(
        cid("f", provider, exec_id, "open", follower=follower),
        follower,
        provider,
        symbol,
        side,
        "limit_ioc",
        dec(q),
        dec(limit),
        False,
        leverage,
    )


@st.composite
def fan_outs(draw: st.DrawFn) -> dict:
    n = draw(st.integers(1, 40))
    followers = draw(
        st.lists(names() | st.sampled_from(["f" * 31, "g" * 32, "h" * 64]), min_size=n, max_size=n, unique=True)
    )
    kind = draw(st.sampled_from(["spot", "perp"]))
    tick = Fraction(draw(st.sampled_from(["0.01", "0.5", "1", "0.0001", "0.00000001"])))
    step = Fraction(draw(st.sampled_from(["0.001", "0.1", "1", "0.00000001"])))
    return {
        "provider": draw(names(max_size=40) | st.sampled_from(["p" * 31, "q" * 32])),
        "symbol": draw(names(max_size=40) | st.sampled_from(["S" * 31, "T" * 32])),
        "exec_id": draw(names()),
        "kind": kind,
        "tick": tick,
        "step": step,
        "side": "buy" if kind == "spot" else draw(st.sampled_from(["buy", "sell"])),
        "qty": step * draw(st.integers(1, 5000)),
        "price": tick * draw(st.integers(1, 10**6)),
        "provider_equity": Fraction(draw(st.sampled_from(["1000", "5000", "123456.78", "1000000"]))),
        "leverage": 1 if kind == "spot" else draw(st.integers(1, 125)),
        "seq": draw(seqs()),
        "follows": [
            (
                f,
                Fraction(draw(st.integers(1, 10**8)), 100),
                Fraction(draw(st.sampled_from(["0", "0.5", "2.5", "99.99"]))),
            )
            for f in followers
        ],
    }


@settings(max_examples=150, deadline=None)
@given(fan_outs())
def test_the_engine_writes_what_msgspec_writes(x: dict) -> None:
    books = {
        "providers": [{"id": x["provider"]}],
        "follows": [
            {"follower": f, "provider": x["provider"], "allocation": dec(a), "slippage_pct": dec(s)}
            for f, a, s in x["follows"]
        ],
    }
    e = LiveEngine.from_books(json.dumps(books))
    assert e.instrument(1, x["symbol"], x["kind"], dec(x["tick"]), dec(x["step"]), "0", "0").errors == []
    out = e.execute(
        x["seq"],
        x["provider"],
        x["exec_id"],
        x["symbol"],
        x["side"],
        dec(x["qty"]),
        dec(x["price"]),
        dec(x["provider_equity"]),
        x["leverage"],
    )
    assert out.errors == []
    expect = [
        o
        for f, a, s in x["follows"]
        if (
            o := expected_open(
                x["provider"],
                x["exec_id"],
                x["symbol"],
                x["side"],
                x["qty"],
                x["price"],
                x["provider_equity"],
                x["leverage"],
                x["tick"],
                x["step"],
                f,
                a,
                s,
            )
        )
        is not None
    ]
    assert out.orders == len(expect)
    if expect:
        assert out.frame == protocol.encode(NewOrders(x["seq"], expect))
    else:
        assert out.frame is None
    assert_round_trip(out, x["seq"])


@pytest.mark.parametrize("seq", SEQS)
@pytest.mark.parametrize("n", [1, 15, 16, 17])
def test_header_boundaries(seq: int, n: int) -> None:
    """fixstr 31 / str8 32 and 64 names, every uint width of seq, fixarray 15 / array16 16."""
    lengths = [31, 32, 64, 2]
    followers = [(f"{i:02d}" + "x" * 64)[: lengths[i % 4]] for i in range(n)]
    assert len(set(followers)) == n
    provider, symbol = "P" * 32, "S" * 31
    books = {
        "providers": [{"id": provider}],
        "follows": [{"follower": f, "provider": provider, "allocation": "1000"} for f in followers],
    }
    e = LiveEngine.from_books(json.dumps(books))
    e.instrument(1, symbol, "perp", "0.01", "0.001", "0", "0")
    out = e.execute(seq, provider, "x" * 64, symbol, "sell", "2.5", "31.07", "1000", 125)
    # W = 2.5 × 1000/1000; limit ceil(31.07 × 0.995 = 30.91465) = 30.92
    expect = [
        NewOrder(
            cid("f", provider, "x" * 64, "open", follower=f),
            f,
            provider,
            symbol,
            "sell",
            "limit_ioc",
            "2.5",
            "30.92",
            False,
            125,
        )
        for f in followers
    ]
    assert out.frame == protocol.encode(NewOrders(seq, expect))
    payload = out.frame[4:]
    assert payload[:8] == b"\x93\xa6orders"
    # and the closes of the same followers: market, nil price, reduce-only, leverage 1
    e.fills(2, [(o.client_order_id, o.qty, "31") for o in expect])
    out = e.execute(seq, provider, "y", symbol, "buy", "2.5", "31", "1000", 125)
    closes = [
        NewOrder(
            cid("f", provider, "y", "close", follower=f), f, provider, symbol, "buy", "market", "2.5", None, True, 1
        )
        for f in followers
    ]
    assert out.frame == protocol.encode(NewOrders(seq, closes))


def test_a_hundred_orders_in_one_frame() -> None:
    followers = [f"f{i}" for i in range(100)]
    e = LiveEngine.from_books(
        json.dumps(
            {
                "providers": [{"id": "P"}],
                "follows": [
                    {"follower": f, "provider": "P", "allocation": str(100 + i)} for i, f in enumerate(followers)
                ],
            }
        )
    )
    e.instrument(1, "BTC", "spot", "0.01", "0.00000001", "0", "0")
    out = e.execute(70000, "P", "x", "BTC", "buy", "0.3", "65000.01", "7000")
    expect = [
        expected_open(
            "P",
            "x",
            "BTC",
            "buy",
            Fraction("0.3"),
            Fraction("65000.01"),
            Fraction(7000),
            1,
            Fraction("0.01"),
            Fraction("0.00000001"),
            f,
            Fraction(100 + i),
            Fraction("0.5"),
        )
        for i, f in enumerate(followers)
    ]
    assert out.frame == protocol.encode(NewOrders(70000, expect))  # type: ignore[arg-type]
    # fixarray 3, "orders", uint32 seq, array16 of 100
    assert out.frame[4:13] == b"\x93\xa6orders\xce" and out.frame[17:20] == b"\xdc\x00\x64"


def test_an_order_too_large_to_report_is_skipped_not_sent() -> None:
    e = LiveEngine.from_books(
        json.dumps(
            {"providers": [{"id": "P"}], "follows": [{"follower": "a", "provider": "P", "allocation": "1000000"}]}
        )
    )
    e.instrument(1, "PEPE", "spot", "0.00000001", "1", "0", "0")
    # W = 10^11 × 10^6 / 1000 = 10^14: above what a fill report (an input, < 10^12) carries
    out = e.execute(2, "P", "x", "PEPE", "buy", "100000000000", "0.00000001", "1000")
    assert (out.orders, out.frame, out.skips, out.errors) == (0, None, {"overflow": 1}, [])
    assert e.working_count == 0
    # just below the limit it is sent, and its full fill is taken
    out = e.execute(3, "P", "y", "PEPE", "buy", "999999999", "0.00000001", "1000")
    (order,) = assert_round_trip(out, 3).orders
    assert order.qty == "999999999000"
    assert e.fills(4, [(order.client_order_id, order.qty, "0.00000001")]).errors == []
    assert e.working_count == 0


# --------------------------------------------------------------------------- (a) random flows


@st.composite
def flows(draw: st.DrawFn) -> tuple[list[str], list[tuple]]:
    followers = draw(st.lists(names(max_size=40), min_size=1, max_size=24, unique=True))
    steps = draw(
        st.lists(
            st.tuples(
                st.sampled_from(["exec", "fill", "reject", "mark", "working"]),
                st.integers(0, 2**16),
                st.integers(1, 400),
                st.booleans(),
            ),
            min_size=1,
            max_size=25,
        )
    )
    return followers, steps


@settings(max_examples=60, deadline=None)
@given(flows(), seqs())
def test_every_frame_of_a_session_round_trips(flow: tuple[list[str], list[tuple]], seq0: int) -> None:
    followers, steps = flow
    e = LiveEngine.from_books(
        json.dumps(
            {
                "providers": [{"id": "P"}],
                "follows": [
                    {
                        "follower": f,
                        "provider": "P",
                        "allocation": str(50 + 37 * i),
                        "max_loss_pct": "3" if i % 3 == 0 else None,
                        "slippage_pct": ["0", "0.5", "2"][i % 3],
                    }
                    for i, f in enumerate(followers)
                ],
            }
        )
    )
    e.instrument(1, "ETH-PERP", "perp", "0.5", "0.01", "0", "0")
    mark = 200
    for i, (kind, pick, n, flag) in enumerate(steps):
        seq = min(seq0 + i, 2**63 - 1)
        working = (assert_round_trip(e.resend_working(seq), seq) or NewOrders(seq, [])).orders
        assert len(working) == e.working_count
        if kind == "exec":
            mark = 100 + n % 200
            out = e.execute(
                seq, "P", f"x{i}", "ETH-PERP", "buy" if flag else "sell", f"{n}", f"{mark}", "10000", 1 + n % 20
            )
        elif kind == "mark":
            mark = max(1, mark + (n % 41) - 30)
            out = e.mark(seq, "ETH-PERP", f"{mark}")
        elif kind == "working" or not working:
            continue
        elif kind == "fill":
            chosen = working[pick % len(working) :][: 1 + n % 5]
            out = e.fills(seq, [(o.client_order_id, o.qty if flag else "0", o.price or f"{mark}") for o in chosen])
        else:
            out = e.rejects(seq, [(working[pick % len(working)].client_order_id, "expired")])
        assert out.errors == []
        assert_round_trip(out, seq)


# --------------------------------------------------------------------------- the Rust header rules


def rust_encode(msg: NewOrders) -> bytes:
    """A transcription of wire.rs (`array_header`, `str_bytes`, `uint`, nil, bools)."""
    out = bytearray()

    def array(n: int) -> None:
        out.extend(
            bytes([0x90 | n])
            if n < 16
            else b"\xdc" + n.to_bytes(2, "big")
            if n <= 0xFFFF
            else b"\xdd" + n.to_bytes(4, "big")
        )

    def text(s: str) -> None:
        b = s.encode()
        n = len(b)
        out.extend(
            bytes([0xA0 | n]) if n < 32 else b"\xd9" + bytes([n]) if n <= 0xFF else b"\xda" + n.to_bytes(2, "big")
        )
        out.extend(b)

    def uint(v: int) -> None:
        if v < 0x80:
            out.append(v)
        elif v <= 0xFF:
            out.extend(b"\xcc" + bytes([v]))
        elif v <= 0xFFFF:
            out.extend(b"\xcd" + v.to_bytes(2, "big"))
        elif v <= 0xFFFFFFFF:
            out.extend(b"\xce" + v.to_bytes(4, "big"))
        else:
            out.extend(b"\xcf" + v.to_bytes(8, "big"))

    array(3)
    text("orders")
    uint(msg.seq)
    array(len(msg.orders))
    for o in msg.orders:
        array(10)
        for s in (o.client_order_id, o.follower, o.provider, o.symbol, o.side, o.type, o.qty):
            text(s)
        if o.price is None:
            out.append(0xC0)
        else:
            text(o.price)
        out.append(0xC3 if o.reduce_only else 0xC2)
        uint(o.leverage)
    return struct.pack(">I", len(out)) + bytes(out)


def decimals() -> st.SearchStrategy[str]:
    return st.builds(
        lambda i, f: str(i) + (f".{f}" if f else ""),
        st.integers(0, 10**13 - 1),
        st.one_of(st.just(""), st.text("0123456789", min_size=1, max_size=16)),
    )


new_orders = st.builds(
    NewOrders,
    seqs(),
    st.lists(
        st.builds(
            NewOrder,
            st.text(ALPHABET, min_size=1, max_size=32),
            names(),
            names(),
            names(),
            st.sampled_from(["buy", "sell"]),
            st.sampled_from(["limit_ioc", "market"]),
            decimals(),
            st.none() | decimals(),
            st.booleans(),
            st.sampled_from([1, 127, 128, 255, 256, 1000]) | st.integers(1, 1000),
        ),
        max_size=40,
    ),
)


@settings(max_examples=300, deadline=None)
@given(new_orders)
def test_msgspec_writes_the_rust_header_forms(msg: NewOrders) -> None:
    frame = protocol.encode(msg)
    assert frame == rust_encode(msg)
    assert decode_frame(frame) == msg


# --------------------------------------------------------------------------- FrameReader


def raw_frame(payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + payload


def engine_stream() -> tuple[bytes, list]:
    e = LiveEngine.from_books(
        json.dumps(
            {
                "providers": [{"id": "P"}],
                "follows": [{"follower": f"f{i}", "provider": "P", "allocation": "1000"} for i in range(20)],
            }
        )
    )
    e.instrument(1, "BTC", "spot", "0.01", "0.001", "0", "0")
    opens = e.execute(6, "P", "x", "BTC", "buy", "1", "100", "1000").frame
    assert opens is not None
    frames = [protocol.encode(Resume(5)), opens, protocol.encode(Heartbeat(6)), e.resend_working(7).frame]
    assert e.fills(8, [(o.client_order_id, o.qty, "100") for o in decode_frame(opens).orders]).errors == []
    frames.append(e.execute(9, "P", "y", "BTC", "sell", "1", "100", "1000").frame)  # 20 closes
    stream = b"".join(f for f in frames if f is not None)
    msgs = [engine_reader().feed(f)[0] for f in frames if f is not None]
    return stream, msgs


def test_a_stream_fed_one_byte_at_a_time() -> None:
    stream, expect = engine_stream()
    r = engine_reader()
    got = []
    for i in range(len(stream)):
        got += r.feed(stream[i : i + 1])
    assert got == expect and r.buffered == 0
    assert [type(m).__name__ for m in got] == ["Resume", "NewOrders", "Heartbeat", "NewOrders", "NewOrders"]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 10**6), max_size=20))
def test_a_stream_split_anywhere(cuts: list[int]) -> None:
    stream, expect = engine_stream()
    points = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
    r = engine_reader()
    got = []
    for a, b in itertools.pairwise(points):
        got += r.feed(stream[a:b])
    assert got == expect and r.buffered == 0


def test_venue_messages_round_trip() -> None:
    msgs = [
        Hello(3, 1, "s-1"),
        Instrument(1, 0, "BTC", "spot", "0.01", "0.001", "0", "1"),
        MarkPrice(2, 0, "BTC", "100.5"),
        ProviderExecution(3, 0, "P", "e.1", "BTC", "buy", "1", "100", "1000", 20),
        CopyFills(4, 0, [Fill("A" * 22, "1", "100"), Fill("b", "0", "0.00000001")]),
        CopyRejects(5, 0, [Reject("A" * 22, "duplicate")]),
        Heartbeat(5),
    ]
    stream = b"".join(protocol.encode(m) for m in msgs)
    r = venue_reader()
    assert [m for i in range(len(stream)) for m in r.feed(stream[i : i + 1])] == msgs


def test_oversized_frames_are_refused_from_the_header() -> None:
    frame = protocol.encode(Heartbeat(1))
    size = len(frame) - 4
    assert engine_reader(max_frame=size).feed(frame) == [Heartbeat(1)]
    r = engine_reader(max_frame=size - 1)
    with pytest.raises(ProtocolError, match=f"frame of {size} bytes is above the limit {size - 1}"):
        r.feed(frame[:4])  # no need to wait for the payload
    with pytest.raises(ProtocolError, match="above the limit"):
        engine_reader().feed(struct.pack(">I", protocol.DEFAULT_MAX_FRAME + 1))


def test_a_partial_frame_waits() -> None:
    frame = protocol.encode(Heartbeat(1))
    r = engine_reader()
    assert r.feed(frame[:-1]) == [] and r.buffered == len(frame) - 1
    assert r.feed(frame[-1:]) == [Heartbeat(1)] and r.buffered == 0


enc = msgspec.msgpack.encode
ORDER = ["A" * 22, "f", "P", "BTC", "buy", "limit_ioc", "1", "100", False, 1]


@pytest.mark.parametrize(
    "payload",
    [
        enc(["hb", 1])[:-1],  # truncated
        enc(["hb", 1]) + b"\x00",  # trailing bytes in the frame
        b"\xc1",  # never used
        b"",
        enc({"hb": 1}),
        enc(["nope", 1]),  # unknown tag
        enc(["hello", 1, 1, "s"]),  # a venue message to the venue
        enc([1, 1]),
        enc(["hb", "1"]),  # wrong type
        enc(["hb", -1]),
        enc(["hb", 2**63]),
        enc(["hb", 1.0]),
        enc(["hb", 1, 2]),  # extra field
        enc(["hb"]),  # missing field
        enc(["resume", 1, 1, 1]),
        enc(["orders", 1, [ORDER[:9]]]),
        enc(["orders", 1, [ORDER + [1]]]),
        enc(["orders", 1, [["A" * 33] + ORDER[1:]]]),  # client order id too long
        enc(["orders", 1, [["A-1"] + ORDER[1:]]]),
        enc(["orders", 1, [ORDER[:1] + ["bad name"] + ORDER[2:]]]),  # regex-violating names
        enc(["orders", 1, [ORDER[:2] + ["x" * 65] + ORDER[3:]]]),
        enc(["orders", 1, [ORDER[:3] + [""] + ORDER[4:]]]),
        enc(["orders", 1, [ORDER[:4] + ["hold"] + ORDER[5:]]]),
        enc(["orders", 1, [ORDER[:5] + ["stop"] + ORDER[6:]]]),
        enc(["orders", 1, [ORDER[:6] + ["1e5"] + ORDER[7:]]]),  # decimals
        enc(["orders", 1, [ORDER[:6] + ["-1"] + ORDER[7:]]]),
        enc(["orders", 1, [ORDER[:6] + ["12345678901234"] + ORDER[7:]]]),
        enc(["orders", 1, [ORDER[:7] + ["1.12345678901234567"] + ORDER[8:]]]),
        enc(["orders", 1, [ORDER[:7] + [100] + ORDER[8:]]]),
        enc(["orders", 1, [ORDER[:8] + [0] + ORDER[9:]]]),
        enc(["orders", 1, [ORDER[:9] + ["1"]]]),
        enc(["orders", 1, {"a": 1}]),
        b"\x92\xa2hb\xa1\x80",  # a str that is not UTF-8 (msgspec: UnicodeDecodeError)
        b"\x91" * 100_000,  # nesting deeper than the decoder recurses (RecursionError)
    ],
)
def test_bad_frames_are_protocol_errors(payload: bytes) -> None:
    with pytest.raises(ProtocolError, match=r"^bad frame: "):
        engine_reader().feed(raw_frame(payload))


@pytest.mark.parametrize(
    "message",
    [
        Hello(1, 1, "bad session"),
        Instrument(1, 0, "BTC", "option", "1", "1", "0", "0"),  # type: ignore[arg-type]
        MarkPrice(1, 0, "BTC", "1e5"),
        ProviderExecution(1, 0, "P", "e", "BTC", "buy", "1", "1", "1", 0),
        ProviderExecution(1, 0, "P", "e", "BTC", "buy", "1", "1", "1", 1001),
        CopyFills(1, 0, [Fill("A" * 33, "1", "1")]),
        CopyRejects(1, 0, [Reject("A", "lost")]),  # type: ignore[arg-type]
        Heartbeat(-1),
    ],
)
def test_bad_venue_messages_are_protocol_errors(message: protocol.Message) -> None:
    with pytest.raises(ProtocolError, match=r"^bad frame: "):
        venue_reader().feed(protocol.encode(message))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64), st.booleans())
def test_random_bytes_are_messages_or_protocol_errors(data: bytes, framed: bool) -> None:
    r = engine_reader(max_frame=1024)
    try:
        msgs = r.feed(raw_frame(data) if framed else data)
    except ProtocolError:
        return
    for m in msgs:
        assert isinstance(m, (Resume, NewOrders, Heartbeat))

"""The Rust decoder of `fills` / `rejects` frames (engine_core/src/reports.rs) agrees
exactly with msgspec decoding the `CopyFills` / `CopyRejects` Structs: the same frames
are accepted with the same entries, and the same frames are refused. The daemon reads
these frames through it (`venue_reader(native_reports=True)`, by way of `decode_venue`)."""

from __future__ import annotations

import struct

import msgspec
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pyservice import protocol
from pyservice._engine_core import FrameError, Reports, decode_reports
from pyservice.protocol import CopyFills, CopyRejects, Fill, ProtocolError, Reject, venue_reader

_msgspec = msgspec.msgpack.Decoder(protocol.VenueMessage)
enc = msgspec.msgpack.encode

COID = st.text("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", min_size=1, max_size=32)
DIGITS = st.text("0123456789", min_size=1, max_size=13)
DECIMAL = st.one_of(DIGITS, st.builds(lambda a, b: f"{a}.{b}", DIGITS, st.text("0123456789", min_size=1, max_size=16)))
REASON = st.sampled_from(["insufficient_funds", "expired", "reduce_only", "duplicate", "invalid"])
#: near-misses: what a field must not be, plus anything at all
JUNK = st.one_of(
    st.sampled_from(
        ["", "1.", ".5", "1\n", "-1", "1e5", "A-1", "a" * 33, "1" * 14, "1." + "0" * 17, "lost", "\u00e9", "１"]
    ),
    st.text(max_size=40),
    st.integers(-2, 2**64 - 1),
    st.none(),
    st.booleans(),
    st.binary(max_size=4),
)
SEQ = st.one_of(st.integers(0, 2**63 - 1), st.integers(-5, -1), st.integers(2**63, 2**64 - 1))
#: a valid seq or ts
SEQ_OK = st.integers(0, 2**63 - 1)
#: a ts, or what it must not be (a float, a bool, nil: msgspec's int refuses them)
TS = st.one_of(SEQ, st.floats(allow_nan=False), st.booleans(), st.none())


def msgspec_view(payload: bytes) -> tuple[str, int, int, list[list[str]]] | None:
    try:
        msg = _msgspec.decode(payload)
    except (ValueError, RecursionError):  # as FrameReader: msgspec's errors, UnicodeDecodeError
        return None
    if isinstance(msg, CopyFills):
        return "fills", msg.seq, msg.ts, [list(f) for f in msg.fills]
    if isinstance(msg, CopyRejects):
        return "rejects", msg.seq, msg.ts, [list(r) for r in msg.rejects]
    raise AssertionError(f"not a report: {msg!r}")


def rust_view(payload: bytes) -> tuple[str, int, int, list[list[str]]] | None:
    try:
        r = decode_reports(payload)
    except FrameError:
        return None
    return r.kind, r.seq, r.ts, r.entries()


def field(good: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    return st.one_of(good, good, good, JUNK)


fill_entry = st.tuples(field(COID), field(DECIMAL), field(DECIMAL)).map(list)
reject_entry = st.tuples(field(COID), field(REASON)).map(list)


@st.composite
def report_payloads(draw: st.DrawFn) -> bytes:
    tag = draw(st.sampled_from(["fills", "rejects"]))
    if draw(st.booleans()):  # a valid frame, so acceptance is tested as much as refusal
        good = st.tuples(COID, DECIMAL, DECIMAL) if tag == "fills" else st.tuples(COID, REASON)
        return enc([tag, draw(st.integers(0, 2**63 - 1)), draw(SEQ_OK), draw(st.lists(good, max_size=40))])
    entries = draw(st.lists(fill_entry if tag == "fills" else reject_entry, max_size=20))
    for e in entries:
        # mostly the right width; sometimes cut or padded to n fields
        n = draw(st.one_of(st.just(None), st.just(None), st.integers(0, 4)))
        if n is not None:
            del e[n:]
            e.extend(["1"] * (n - len(e)))
    message: list[object] = [tag, draw(field(SEQ)), draw(field(TS)), entries]
    shape = draw(st.integers(0, 9))
    if shape == 0:
        message.append(draw(JUNK))  # an extra element
    elif shape == 1:
        message.pop()  # a missing one
    payload = enc(message)
    mutation = draw(st.integers(0, 5))
    if mutation == 0 and payload:  # flip a byte
        i = draw(st.integers(0, len(payload) - 1))
        payload = payload[:i] + bytes([draw(st.integers(0, 255))]) + payload[i + 1 :]
    elif mutation == 1:  # cut
        payload = payload[: draw(st.integers(0, len(payload)))]
    elif mutation == 2:
        payload += draw(st.binary(min_size=1, max_size=3))
    return payload


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(report_payloads())
@example(enc(["fills", 1, 0, [["abc", "1\n", "1"]]]))
@example(enc(["fills", 1, 0, [["abc", "01", "1.0000000000000000"]]]))
@example(enc(["rejects", 2**63 - 1, 2**63 - 1, []]))
@example(enc(["rejects", 1, 2**63, []]))
@example(enc(["rejects", 1, 1.0, []]))
@example(enc(["fills", 1, True, []]))
def test_rust_and_msgspec_agree(payload: bytes) -> None:
    rust = rust_view(payload)
    if not payload.startswith((b"\x94\xa5fills", b"\x94\xa7rejects")):
        # a frame of another shape (a wider header, another tag) must be refused by both
        # or not be a report; `decode_venue`, which the daemon's reader calls, is held to
        # msgspec on every fills / rejects tag by tests/test_inbound_decode.py
        assert rust is None or rust == msgspec_view(payload)
        return
    assert rust == msgspec_view(payload)


def test_non_canonical_headers_agree() -> None:
    # array16 / str8 headers and a uint64 seq and ts: msgspec accepts them, and so does Rust
    payload = (
        b"\xdc\x00\x04\xd9\x05fills\xcf"
        + struct.pack(">Q", 7)
        + b"\xcf"
        + struct.pack(">Q", 2**63 - 1)
        + b"\x91\x93\xa1a\xa11\xa12"
    )
    assert msgspec_view(payload) == rust_view(payload) == ("fills", 7, 2**63 - 1, [["a", "1", "2"]])


def test_the_reader_hands_reports_to_rust_only_when_asked() -> None:
    fills = CopyFills(4, 1_700_000_000_000_000, [Fill("A" * 22, "1", "100"), Fill("b", "0", "0.00000001")])
    rejects = CopyRejects(
        5, 1_700_000_000_000_001, [Reject("c", "expired"), Reject("d", "expired"), Reject("e", "duplicate")]
    )
    stream = protocol.encode(fills) + protocol.encode(rejects)
    assert venue_reader().feed(stream) == [fills, rejects]
    got = venue_reader(native_reports=True).feed(stream)
    assert all(isinstance(m, Reports) for m in got)
    assert [(m.kind, m.seq, m.ts, len(m), m.entries()) for m in got] == [
        ("fills", 4, 1_700_000_000_000_000, 2, [list(f) for f in fills.fills]),
        ("rejects", 5, 1_700_000_000_000_001, 3, [list(r) for r in rejects.rejects]),
    ]
    assert sorted(got[1].reasons()) == [("duplicate", 1), ("expired", 2)] and got[0].reasons() == []


@pytest.mark.parametrize(
    "payload",
    [
        enc(["fills", 1, 0, [["abc", "1\n", "1"]]]),  # `$` would have let the newline through
        enc(["fills", 1, 0, [["abc", "1", "1"]]]) + b"\x00",
        enc(["rejects", 1, 0, [["abc", "lost"]]]),
        enc(["fills", 1, 0, [["abc", "1", "1"]], 5]),
        enc(["fills", 1, [["abc", "1", "1"]]]),  # no ts
        enc(["fills", 1, 1.5, []]),
        b"\x94\xa5fills\x01\x00\xdd\xff\xff\xff\xff",  # claims 4 billion entries
    ],
)
def test_bad_report_frames_are_protocol_errors_either_way(payload: bytes) -> None:
    frame = struct.pack(">I", len(payload)) + payload
    for native in (False, True):
        with pytest.raises(ProtocolError, match=r"^bad frame: "):
            venue_reader(native_reports=native).feed(frame)

"""The venue-sim reads `orders` frames with `unchecked_engine_reader` and checks client
order ids with `check_order_ids` (the other text fields are checked where the matcher
uses them, `test_accounts.test_invalid_orders`). Together they accept every frame the
contract's `engine_reader` accepts, with the same values, and refuse bad ids."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyservice import protocol as P

ID = st.text("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", min_size=1, max_size=32)
NAME = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:-", min_size=1, max_size=64)
DEC = st.from_regex(r"\A[0-9]{1,13}(\.[0-9]{1,16})?\Z")
TEXT = st.one_of(st.text(max_size=40), ID, NAME, DEC)


@st.composite
def orders_frames(draw: st.DrawFn) -> bytes:
    """`orders` payloads whose text fields are often valid and sometimes anything."""

    def field(good: st.SearchStrategy[str]) -> str:
        return draw(st.one_of(good, good, good, TEXT))

    orders = [
        [
            field(ID),
            field(NAME),
            field(NAME),
            field(NAME),
            draw(st.sampled_from(["buy", "sell"])),
            draw(st.sampled_from(["limit_ioc", "market"])),
            field(DEC),
            draw(st.one_of(st.none(), st.just(field(DEC)))),
            draw(st.booleans()),
            draw(st.integers(1, 125)),
        ]
        for _ in range(draw(st.integers(0, 5)))
    ]
    return msgspec.msgpack.encode(["orders", draw(st.integers(0, 2**63 - 1)), orders])


def frame(payload: bytes) -> bytes:
    return len(payload).to_bytes(4, "big") + payload


@settings(max_examples=400, deadline=None)
@given(orders_frames())
def test_unchecked_reading_accepts_whatever_the_contract_accepts(payload: bytes) -> None:
    try:
        (strict,) = P.engine_reader().feed(frame(payload))
    except P.ProtocolError:
        strict = None
    (loose,) = P.unchecked_engine_reader().feed(frame(payload))
    assert isinstance(loose, P.UncheckedOrders)
    if strict is not None:
        assert isinstance(strict, P.NewOrders)
        P.check_order_ids(loose.orders)  # never raises for a valid frame
        assert (loose.seq, [tuple(o) for o in loose.orders]) == (strict.seq, [tuple(o) for o in strict.orders])


def _valid_id(cid: str) -> bool:
    try:
        msgspec.convert(cid, P.ClientOrderId)
        return True
    except msgspec.ValidationError:
        return False


@settings(max_examples=400, deadline=None)
@given(st.lists(TEXT, min_size=1, max_size=5))
def test_check_order_ids_is_the_client_order_id_pattern(ids: list[str]) -> None:
    orders = [P.UncheckedOrder(i, "f", "p", "S", "buy", "market", "1", None, True, 1) for i in ids]
    if all(_valid_id(i) for i in ids):
        P.check_order_ids(orders)
    else:
        with pytest.raises(P.ProtocolError, match="client order id"):
            P.check_order_ids(orders)


@pytest.mark.parametrize("cid", ["", "A-1", "a" * 33, "é", "abc\n", "１２"])
def test_bad_client_order_ids_are_protocol_errors(cid: str) -> None:
    with pytest.raises(P.ProtocolError):
        P.check_order_ids([P.UncheckedOrder(cid, "f", "p", "S", "buy", "market", "1", None, True, 1)])

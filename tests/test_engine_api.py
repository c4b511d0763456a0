"""The extension's Python surface: `Engine.apply` batches, bad input, the error types."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyservice import CopyEngineError, ScenarioError
from pyservice._engine_core import Engine

HEADER = {
    "instruments": [
        {"symbol": "BTC", "kind": "spot", "tick": "0.01", "step": "0.001", "min_qty": "0.001", "min_notional": "1"}
    ],
    "providers": [{"id": "p1"}],
}


def engine(followers: int = 3) -> Engine:
    events = [{"type": "follow", "follower": f"f{i}", "provider": "p1", "allocation": "1000"} for i in range(followers)]
    return Engine.from_scenario(json.dumps({**HEADER, "events": events}))


def fill(exec_id: str, side: str = "buy", qty: str = "1") -> str:
    return json.dumps(
        {
            "type": "fill",
            "provider": "p1",
            "exec_id": exec_id,
            "symbol": "BTC",
            "side": side,
            "qty": qty,
            "price": "100",
            "provider_equity": "1000",
        }
    )


def test_apply_returns_a_batch_per_event() -> None:
    e = engine(3)
    assert e.relationships == 3
    batch = e.apply(10, fill("x1"))
    assert (len(batch), batch.orders, batch.skips, batch.error, batch.seq) == (3, 3, 0, None, 10)
    records = [json.loads(line) for line in e.render_jsonl(batch).splitlines()]
    # provider spends 10 % of its equity: each 1,000 follower buys 1 at 100
    assert [(r["follower"], r["qty"], r["price"]) for r in records] == [
        ("f0", "1", "100.5"),
        ("f1", "1", "100.5"),
        ("f2", "1", "100.5"),
    ]


def test_bad_events_are_error_batches_and_change_nothing() -> None:
    e = engine(2)
    for bad, message in [
        ("{not json", "not JSON: key must be a string at line 1 column 2"),
        ('{"type": "fill"}', "missing field 'provider'"),
        (fill("x1", qty="NaN"), "field 'qty' is not a decimal: 'NaN'"),
        (fill("x1", qty="0.0005"), "qty 0.0005 is not a multiple of step 0.001"),
    ]:
        batch = e.apply(1, bad)
        assert (len(batch), batch.orders, batch.error) == (1, 0, message)
    # nothing was consumed: the same exec id still copies to both followers
    assert e.apply(2, fill("x1")).orders == 2
    assert e.apply(3, fill("x1")).error == "duplicate exec_id 'x1' for provider 'p1'"


def test_a_batch_renders_only_with_its_own_engine() -> None:
    a, b = engine(1), engine(1)
    batch = a.apply(1, fill("x1"))
    with pytest.raises(ValueError, match="another Engine"):
        b.render_jsonl(batch)


def test_each_entry_point_raises_its_own_error_type() -> None:
    """Which type each call raises, exactly (callers catch ScenarioError for a file,
    FrameError for a frame, CopyEngineError for a snapshot)."""
    from pyservice._engine_core import FrameError, LiveEngine, order_rows, replay_jsonl

    for call, kind, message in [
        (lambda: Engine.from_scenario("{}"), ScenarioError, "missing field 'instruments'"),
        (lambda: replay_jsonl("[]"), ScenarioError, "the scenario must be a JSON object"),
        (lambda: LiveEngine.from_books("{}"), ScenarioError, "missing field 'providers'"),
        (lambda: order_rows(b"\x00\x00", "main"), FrameError, "truncated"),
        (lambda: LiveEngine.restore(b"not a snapshot"), CopyEngineError, "not a snapshot of this engine version"),
    ]:
        with pytest.raises(CopyEngineError) as info:
            call()
        assert (type(info.value), str(info.value)) == (kind, message)
    # the binding's own check: control ids count down from 2^63, below the venue's seqs
    with pytest.raises(OverflowError, match=r"^change number is 2\^63 or more$"):
        LiveEngine.from_books('{"providers": [], "follows": []}').control(0, 2**63, "{}")


_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(max_size=8)
    | st.sampled_from(["1", "-1", "1e5", "NaN", "0.000000001"]),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "type",
                    "provider",
                    "exec_id",
                    "symbol",
                    "side",
                    "qty",
                    "price",
                    "provider_equity",
                    "leverage",
                    "follower",
                    "allocation",
                    "amount",
                    "mode",
                ]
            ),
            inner,
            max_size=9,
        )
    ),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(max_size=64), _json_values.map(json.dumps)))
def test_garbage_events_never_raise_and_never_order(text: str) -> None:
    e = engine(2)
    batch = e.apply(1, text)
    if batch.error is not None:
        assert batch.orders == 0 and len(batch) == 1
    # whatever came before, the engine still takes a valid execution
    assert e.apply(2, fill("after")).error is None

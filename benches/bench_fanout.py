"""pytest-benchmark: one provider execution fanned out to 1,000 followers, Rust core vs
the plain-Python reference. Under the default test run (`--benchmark-disable`) each runs
once as a smoke test; measure with `pytest benches --benchmark-enable`.

The figures recorded in benches/RESULTS.md come from `copyengine bench --core`, which
times the same call in one process for both implementations and reports the ratio.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from pyservice._engine_core import Engine
from pyservice.bench.core import _fill, build_scenario
from pyservice.reference import ReferenceEngine

FOLLOWERS = 1_000


class Round:
    """Alternating opening and closing fills, so every timed call starts flat."""

    def __init__(self) -> None:
        self.i = 0

    def events(self) -> tuple[dict[str, Any], dict[str, Any]]:
        self.i += 1
        return _fill(self.i, "buy"), _fill(self.i, "sell")


@pytest.fixture(scope="module")
def scenario() -> dict[str, Any]:
    return build_scenario(FOLLOWERS)


def test_rust_fanout(benchmark: Any, scenario: dict[str, Any]) -> None:
    engine = Engine.from_scenario(json.dumps(scenario))
    rounds, seq = Round(), [len(scenario["events"])]

    def setup() -> tuple[tuple[int, str], dict[str, Any]]:
        open_ev, close_ev = rounds.events()
        if rounds.i > 1:  # flatten the previous round's copies, untimed
            engine.apply(seq[0], json.dumps(close_ev))
        seq[0] += 2
        return (seq[0], json.dumps(open_ev)), {}

    batch = benchmark.pedantic(engine.apply, setup=setup, rounds=50)
    assert batch.orders == FOLLOWERS and batch.error is None


def test_python_reference_fanout(benchmark: Any, scenario: dict[str, Any]) -> None:
    ref = ReferenceEngine.from_scenario({k: v for k, v in scenario.items() if k != "events"})
    for i, ev in enumerate(scenario["events"]):
        ref.apply(i, ev)
    rounds, seq = Round(), [len(scenario["events"])]

    def setup() -> tuple[tuple[int, dict[str, Any]], dict[str, Any]]:
        open_ev, close_ev = rounds.events()
        if rounds.i > 1:  # flatten the previous round's copies, untimed
            ref.apply(seq[0], close_ev)
        seq[0] += 2
        return (seq[0], open_ev), {}

    records = benchmark.pedantic(ref.apply, setup=setup, rounds=3)
    assert sum(r["kind"] == "order" for r in records) == FOLLOWERS

"""`copyengine stats SCENARIO` (the Rust engine + `pyservice/statistics`) against the
definitions (`statistics_reference.scenario_statistics`: the plain-Python reference engine
+ the `Fraction` spec) on random time-stamped scenarios: the same records, exact strings,
`sharpe` within a relative 1e-9."""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import scenarios

from pyservice import statistics_reference as spec
from pyservice.statistics.scenario import scenario_statistics
from pyservice.venue_time import DAY_US, format_time, parse_time

T0 = parse_time("2026-08-03T00:00:00Z")
STEPS = [0, 0, 1, 60_000_000, 3_600_000_000, DAY_US - 1, DAY_US, 2 * DAY_US, 6 * DAY_US, 7 * DAY_US, 29 * DAY_US]


@st.composite
def timed_scenarios(draw: st.DrawFn) -> tuple[dict[str, Any], int | None]:
    """A random scenario as version 2 with times over weeks (some events without one),
    and sometimes an as-of time inside or after it."""
    scenario = draw(scenarios())
    scenario["version"] = 2
    at = T0 + draw(st.integers(0, DAY_US))
    times = []
    for ev in scenario["events"]:
        at += draw(st.sampled_from(STEPS))
        times.append(at)
        if isinstance(ev, dict) and draw(st.integers(0, 5)):
            ev["time"] = format_time(at)
    as_of = draw(st.one_of(st.none(), st.sampled_from(times), st.just(at + 45 * DAY_US)))
    return scenario, as_of


def assert_same(got: list[dict[str, Any]], want: list[dict[str, Any]]) -> None:
    for g, w in zip(got, want, strict=True):
        for name in spec.PERIODS:
            gs, ws = g["periods"][name].pop("sharpe"), w["periods"][name].pop("sharpe")
            assert (gs is None) == (ws is None), (g["provider"], name, gs, ws)
            if gs is not None:
                assert math.isclose(gs, ws, rel_tol=1e-9), (g["provider"], name, gs, ws)
        # key order too: it is the printed order
        assert list(g.items()) == list(w.items())


@settings(max_examples=120, deadline=None)
@given(timed_scenarios())
def test_stats_agree_with_the_definitions(case: tuple[dict[str, Any], int | None]):
    scenario, as_of = case
    text = json.dumps(scenario)
    assert_same(scenario_statistics(text, as_of), spec.scenario_statistics(text, as_of))


@settings(max_examples=25, deadline=None)
@given(scenarios())
def test_version_1_scenarios_count_at_time_zero(scenario: dict[str, Any]):
    scenario["version"] = 1
    for ev in scenario["events"]:
        if isinstance(ev, dict):
            ev.pop("time", None)
    # and none of version 2's settlement terms (`settle` events stay: unknown in v1)
    for p in scenario["providers"]:
        p.pop("profit_share_pct", None)
    for term in ("platform_fee_pct", "max_profit_share_pct", "settlement"):
        (scenario.get("platform") or {}).pop(term, None)
    text = json.dumps(scenario)
    got = scenario_statistics(text)
    assert all(r["as_of"] == "1970-01-01T00:00:00Z" for r in got)
    assert_same(got, spec.scenario_statistics(text))

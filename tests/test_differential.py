"""Differential test: the Rust core and the plain-Python reference print the same
records for random scenarios (tests/strategies.py), byte for byte once serialized.

The reference-only checks (determinism, unique client order ids) carry ``reference``
in their names so that ``pytest -k reference`` runs them without the Rust core.
"""

import json
import re

from hypothesis import given, settings
from strategies import scenarios

from pyservice import reference


def _first_difference(actual: list[dict], expected: list[dict]) -> str:
    for i, (a, e) in enumerate(zip(actual, expected)):
        if list(a.items()) != list(e.items()):
            return f"record {i} differs:\n  rust:      {json.dumps(a)}\n  reference: {json.dumps(e)}"
    return (
        f"rust printed {len(actual)} records, the reference {len(expected)}; first extra:\n  "
        + json.dumps((actual if len(actual) > len(expected) else expected)[min(len(actual), len(expected))])
    )


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_rust_agrees_with_python_spec(scenario):
    from pyservice.replay import replay_records

    text = json.dumps(scenario)
    expected = reference.replay(text)
    actual = replay_records(text)
    # key order matters too (the JSON Lines must be identical)
    if [list(r.items()) for r in actual] != [list(r.items()) for r in expected]:
        raise AssertionError(_first_difference(actual, expected))


@settings(max_examples=100, deadline=None)
@given(scenarios())
def test_reference_is_deterministic_with_unique_order_ids(scenario):
    text = json.dumps(scenario)
    first = reference.replay(text)
    assert reference.replay(text) == first
    ids = [r["client_order_id"] for r in first if r["kind"] == "order"]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"[0-9A-Za-z]{22}", i) for i in ids)

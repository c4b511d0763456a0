"""Shared fixtures: the two implementations of scenario format v1.

``replay`` is parametrized over ``reference`` (pyservice.reference.replay, plain
Python) and ``rust`` (pyservice.replay.replay_records, the Rust core). The Rust side
is imported lazily so that ``pytest -k reference`` works without the extension built.
"""

import os
import sys

import pytest

# make ``import strategies`` work whatever pytest's import mode is
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def load_implementation(name):
    if name == "reference":
        from pyservice.reference import replay

        return replay
    if name == "rust":
        from pyservice.replay import replay_records

        return replay_records
    raise ValueError(name)


@pytest.fixture(params=["reference", "rust"])
def replay(request):
    """``(text: str) -> list[dict]``; raises a ValueError for an invalid file."""
    return load_implementation(request.param)

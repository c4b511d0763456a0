"""`copyengine replay`: the Rust core run offline over a scenario file."""

from __future__ import annotations

import json
from typing import Any

from pyservice._engine_core import ScenarioError, replay_jsonl

__all__ = ["ScenarioError", "replay_jsonl", "replay_records"]


def replay_records(text: str) -> list[dict[str, Any]]:
    """Every outcome record of a scenario, as dicts (see docs/scenario-format.md)."""
    return [json.loads(line) for line in replay_jsonl(text).splitlines()]

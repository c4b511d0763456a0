"""`copyengine stats SCENARIO [--as-of TIME]`: the statistics of a scenario's providers.

The scenario runs through the Rust engine event by event, up to the last event at or
before T (times are non-decreasing along a scenario: docs/scenario-format.md, v2); each
fill the engine accepted feeds the builder, and the records come out in the scenario's
provider order.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from pyservice._engine_core import Engine, ScenarioError, event_times
from pyservice.statistics.builder import StatisticsBuilder

__all__ = ["ScenarioError", "scenario_statistics"]


def scenario_statistics(text: str, as_of: int | None = None) -> list[dict[str, Any]]:
    """Every provider's record as of `as_of` (µs; default: the last event's time).
    Raises ScenarioError for an invalid file."""
    engine = Engine.from_header(text)
    times = event_times(text)
    doc = json.loads(text)  # valid JSON: the engine has read it
    until = as_of if as_of is not None else (times[-1] if times else 0)
    builder = StatisticsBuilder()
    for inst in doc["instruments"]:
        builder.instrument(inst["symbol"], inst["kind"])
    for seq, (event, at) in enumerate(zip(doc["events"], times, strict=True)):
        if at > until:
            break
        if engine.apply(seq, json.dumps(event)).error is not None:
            continue  # refused: it changed nothing
        kind = event["type"]
        if kind == "fill":
            builder.execution(
                seq,
                at,
                event["provider"],
                event["exec_id"],
                event["symbol"],
                event["side"],
                Decimal(event["qty"]),
                Decimal(event["price"]),
                Decimal(event["provider_equity"]),
                int(event.get("leverage") or 1),
            )
        elif kind == "mark":
            builder.mark(event["symbol"], Decimal(event["price"]))
    return builder.records(engine.standings(), until)

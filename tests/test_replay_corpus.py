"""`copyengine replay` prints byte for byte what it printed when the corpus was recorded.

`tests/corpus/replay.jsonl.gz` holds the bundled demo scenario, 286 random scenarios drawn
from `strategies.scenarios()` and three invalid files, each with the stdout (or the
error line) that `copyengine replay` gave for it on commit f87564e. A refactoring that
changes any record, key order or error message fails here, even where the reference
changed in step with the engine.

One deliberate change since: with scenario format v2 the version-3 file's error line
reads `unsupported version (this engine reads versions 1 and 2)` (it said `version 1`).
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from pyservice.replay import ScenarioError, replay_jsonl

CORPUS = Path(__file__).parent / "corpus" / "replay.jsonl.gz"


def _cases() -> list[dict[str, str]]:
    with gzip.open(CORPUS, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


CASES = _cases()


def test_the_corpus_holds_what_it_says() -> None:
    assert len(CASES) == 290
    assert sum("error" in c for c in CASES) == 3
    assert sum(c.get("stdout", "").count("\n") for c in CASES) == 5159


@pytest.mark.parametrize("case", CASES, ids=[f"case{i}" for i in range(len(CASES))])
def test_replay_prints_the_recorded_bytes(case: dict[str, str]) -> None:
    if "error" in case:
        with pytest.raises(ScenarioError) as exc:
            replay_jsonl(case["scenario"])
        assert str(exc.value) == case["error"]
    else:
        assert replay_jsonl(case["scenario"]) == case["stdout"]

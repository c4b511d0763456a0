"""Typed surface of the Rust extension (checked by ``mypy.stubtest``)."""

from typing import final

__all__ = ["Batch", "CopyEngineError", "Engine", "ScenarioError", "replay_jsonl"]

class CopyEngineError(ValueError):
    """Base of every error the engine core raises."""

class ScenarioError(CopyEngineError):
    """The file is not a valid scenario (format v1)."""

def replay_jsonl(text: str) -> str:
    """Replay a scenario file's text; returns its JSON Lines output."""

@final
class Batch:
    """The outcome records of one event, held in Rust (no Python object per follower)."""

    def __len__(self) -> int: ...
    @property
    def seq(self) -> int: ...
    @property
    def orders(self) -> int:
        """Number of copy orders."""
    @property
    def skips(self) -> int:
        """Number of skips."""
    @property
    def error(self) -> str | None:
        """The error message if the event was refused."""

@final
class Engine:
    """The engine state machine over one scenario header (instruments, providers, platform).

    Single-threaded: use it from one thread. A call made while another thread's call is
    running (they run without the GIL) raises RuntimeError instead of interleaving.
    """

    @staticmethod
    def from_scenario(text: str) -> Engine:
        """Build from a scenario's text; its events (if any) are applied, errors ignored."""
    def apply(self, seq: int, event_json: str) -> Batch:
        """Apply one event (a JSON object text) at input position `seq`."""
    def render_jsonl(self, batch: Batch) -> str:
        """A batch's records as JSON Lines (names resolved), for tools and tests.

        Raises ValueError for a batch made by another Engine."""
    @property
    def relationships(self) -> int: ...

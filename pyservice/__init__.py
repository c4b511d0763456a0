"""copyengine: a low-latency copy-trading engine.

The hot path (sizing, risk checks, follower state) is the Rust extension
``pyservice._engine_core``; this package holds the services and tools around it.
"""

from pyservice._engine_core import CopyEngineError, ScenarioError

__all__ = ["CopyEngineError", "ScenarioError"]
__version__ = "0.1.0"

"""The venue (exchange) simulator: the other end of `docs/protocol.md`.

It connects to the engine, publishes a sequenced log of instruments, marks and provider
executions, and matches the engine's copy orders IOC against follower accounts.
"""

from pyservice.venue_sim.clock import VenueClock
from pyservice.venue_sim.config import (
    DEFAULT_INSTRUMENTS,
    BookProvider,
    Books,
    ConfigError,
    Follow,
    InstrumentSpec,
    Pause,
    Timed,
    VenueConfig,
    load_books,
    load_script,
)
from pyservice.venue_sim.stats import VenueStats
from pyservice.venue_sim.venue import VenueSim

__all__ = [
    "DEFAULT_INSTRUMENTS",
    "BookProvider",
    "Books",
    "ConfigError",
    "Follow",
    "InstrumentSpec",
    "Pause",
    "Timed",
    "VenueClock",
    "VenueConfig",
    "VenueSim",
    "VenueStats",
    "load_books",
    "load_script",
]

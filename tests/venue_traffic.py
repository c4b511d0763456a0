"""Shared by the end-to-end tests: a free port, a venue key, a signed hello, and provider
bots that keep a venue-sim trading (marks and executions) until told to stop, whether or
not an engine is connected (the venue's log holds it)."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

from pyservice import protocol as P
from pyservice import venue_auth
from pyservice.venue_sim import fixed
from pyservice.venue_sim.bots import Bots, Instrument
from pyservice.venue_sim.config import DEFAULT_INSTRUMENTS
from pyservice.venue_sim.venue import VenueSim


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def venue_key(tmp: Path) -> tuple[str, bytes]:
    """A fresh venue key in `tmp/venue.key` (0600): its path (for `--venue-key-file`) and the key."""
    path = tmp / "venue.key"
    return str(path), venue_auth.write_new_key(path)


def signed_hello(key: bytes, challenge: P.EngineMessage, seq: int, session: str) -> P.Hello:
    """The venue's answer to the engine's `challenge`."""
    assert isinstance(challenge, P.Challenge), challenge
    return P.Hello(seq, P.PROTOCOL_VERSION, session, venue_auth.hello_mac(key, challenge.nonce, session))


def bots_for(books: dict[str, Any], seed: int, provider_cash: str = "10000") -> Bots:
    return Bots(
        [p["id"] for p in books["providers"]],
        [Instrument(s.instrument) for s in DEFAULT_INSTRUMENTS],
        fixed.parse(provider_cash, fixed.MONEY_DIGITS),
        seed,
    )


async def trade(venue: VenueSim, bots: Bots, stop: asyncio.Event, *, marks_every: int, pause_s: float) -> None:
    """An execution every `pause_s`, the marks moved every `marks_every` of them."""
    n = 0
    while not stop.is_set():
        n += 1
        if n % marks_every == 0:
            for mark in bots.marks(venue.matcher.marks):
                venue.publish(mark)
        execution = bots.execution(venue.matcher.marks)
        if execution is not None:
            venue.publish(execution)
        await asyncio.sleep(pause_s)

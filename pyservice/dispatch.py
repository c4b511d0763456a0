"""One venue log entry applied to the engine: the single place that maps a decoded
venue message to the `LiveEngine` call for it.

Used by every path that applies venue input: the daemon (live), recovery (the committed
journal again after a crash) and the projector (its own copy of the engine).
"""

from __future__ import annotations

from pyservice import protocol as P
from pyservice._engine_core import Execution, InstrumentDef, LiveEngine, Mark, Outcome, Reports


class UnexpectedMessage(Exception):
    """Not a venue log entry the engine applies (a hello, a heartbeat, an engine message)."""


def apply_venue_message(e: LiveEngine, msg: P.VenueMessage | P.NativeEntry) -> Outcome:
    """One venue log entry applied to the engine at its venue time `ts` (the engine's
    clock: an earlier `ts` is corrected and counted): as the daemon, recovery and the
    projector read it (decoded in Rust, `venue_reader(native_reports=True)`), or as a
    Struct (tests and tools that build messages in Python)."""
    match msg:
        case Reports():
            return e.reports(msg)
        case Execution() | Mark() | InstrumentDef():
            return e.message(msg)
        case P.ProviderExecution():
            return e.execute(
                msg.seq,
                msg.provider,
                msg.exec_id,
                msg.symbol,
                msg.side,
                msg.qty,
                msg.price,
                msg.provider_equity,
                msg.leverage,
                ts=msg.ts,
            )
        case P.CopyFills():
            return e.fills(msg.seq, msg.fills, ts=msg.ts)
        case P.CopyRejects():
            return e.rejects(msg.seq, msg.rejects, ts=msg.ts)
        case P.MarkPrice():
            return e.mark(msg.seq, msg.symbol, msg.price, ts=msg.ts)
        case P.Instrument():
            return e.instrument(
                msg.seq, msg.symbol, msg.kind, msg.tick, msg.step, msg.min_qty, msg.min_notional, ts=msg.ts
            )
    raise UnexpectedMessage(f"unexpected message {type(msg).__name__}")

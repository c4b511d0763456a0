"""The engine's time per provider execution, from payload to finished `orders` frame, over
the old boundary and the new one, in one process (issue 13, "a typed boundary"):

- old: msgspec decodes the payload into `protocol.ProviderExecution` (its regex checks),
  then `LiveEngine.execute` takes nine Python strings, which Rust turns into JSON and
  parses again (`apply_venue_message`'s Struct case, kept for messages built in Python);
- new: `decode_venue` decodes the payload in Rust (`engine_core/src/inbound.rs`) and
  `LiveEngine.message` applies its typed fields (`venue_reader(native_reports=True)`,
  what the daemon, recovery and the projector do).

Each path has its own engine over the same books; executions alternate buy and sell so
every one starts flat, and the two paths alternate execution by execution, so both meet
the same machine. Timed: decode + apply (the orders frame included); untimed: filing
the working orders (the daemon does it after the send) and the venue's fills of them.

    python benches/exec_boundary.py [--followers 10 10000] [--executions N]
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import time
from collections.abc import Callable

from pyservice import protocol as P
from pyservice._engine_core import LiveEngine, Outcome
from pyservice.books import bench_books
from pyservice.dispatch import apply_venue_message

PROVIDER, SYMBOL, PRICE, QTY, EQUITY = "bench", "BTCUSDT", "60000", "0.001", "1000000"


def payloads(n: int) -> list[bytes]:
    """`n` executions' payloads, as the venue sends them: buy, sell, buy, ..."""
    return [
        P.encode(
            P.ProviderExecution(3 + i, 0, PROVIDER, f"x{i}", SYMBOL, "sell" if i % 2 else "buy", QTY, PRICE, EQUITY)
        )[4:]
        for i in range(n)
    ]


def engine(followers: int, reader: P.FrameReader[P.VenueMessage] | P.FrameReader[P.NativeVenueMessage]) -> LiveEngine:
    e = LiveEngine.from_books(json.dumps(bench_books(followers, PROVIDER)))
    for m in (P.Instrument(1, 0, SYMBOL, "spot", "0.01", "0.00001", "0.00001", "5"), P.MarkPrice(2, 0, SYMBOL, PRICE)):
        msg = reader.decode(P.encode(m)[4:])
        assert not isinstance(msg, P.Hello | P.Heartbeat)
        out = apply_venue_message(e, msg)
        assert not out.errors, out.errors
    return e


_orders = P.unchecked_engine_reader()


def timed(e: LiveEngine, decode: Callable[[bytes], object], payload: bytes) -> tuple[int, Outcome]:
    started = time.perf_counter_ns()
    outcome = apply_venue_message(e, decode(payload))  # type: ignore[arg-type]  # a log entry, by construction
    took = time.perf_counter_ns() - started
    e.file_staged()
    # untimed: the venue fills every copy in full, so the next execution (the opposite
    # side) closes what this one opened and the books stay the same size
    if outcome.frame is not None:
        (msg,) = _orders.feed(outcome.frame)
        assert isinstance(msg, P.UncheckedOrders)
        e.fills(msg.seq, [(o.client_order_id, o.qty, PRICE) for o in msg.orders])
    return took, outcome


def pct(xs: list[int], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] / 1000


def run(followers: int, executions: int) -> dict[str, float]:
    old_reader, new_reader = P.venue_reader(), P.venue_reader(native_reports=True)
    old, new = engine(followers, old_reader), engine(followers, new_reader)
    paths = {"old": (old, old_reader.decode), "new": (new, new_reader.decode)}
    took: dict[str, list[int]] = {"old": [], "new": []}
    warmup = max(10, executions // 10)
    gc.collect()
    gc.freeze()
    for i, payload in enumerate(payloads(warmup + executions)):
        order = ("old", "new") if i % 2 else ("new", "old")
        for name in order:
            e, decode = paths[name]
            ns, outcome = timed(e, decode, payload)
            assert outcome.orders == followers and not outcome.errors, (name, outcome)
            if i >= warmup:
                took[name].append(ns)
    # the same decode alone, to show what the boundary itself costs
    one = payloads(1)[0]
    decode_ns = {}
    for name in ("old", "new"):
        decode = paths[name][1]
        samples = []
        for _ in range(20_000):
            t0 = time.perf_counter_ns()
            decode(one)
            samples.append(time.perf_counter_ns() - t0)
        decode_ns[name] = statistics.median(samples)
    gc.unfreeze()
    r = {f"{n}_p{q}": pct(took[n], p) for n in ("old", "new") for q, p in ((50, 0.5), (99, 0.99))}
    r |= {f"{n}_decode_p50": decode_ns[n] / 1000 for n in ("old", "new")}
    r["ratio_p50"] = r["new_p50"] / r["old_p50"]
    r["ratio_p99"] = r["new_p99"] / r["old_p99"]
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--followers", type=int, nargs="+", default=[10, 10_000])
    ap.add_argument("--executions", type=int, default=None, help="per path and book (default: by book size)")
    args = ap.parse_args()
    print(
        f"{'followers':>9} | {'old p50':>9} {'old p99':>9} | {'new p50':>9} {'new p99':>9} | "
        f"{'new/old p50':>11} {'p99':>5} | decode p50 old → new (µs)"
    )
    for followers in args.followers:
        n = args.executions or (20_000 if followers <= 100 else 1_000)
        r = run(followers, n)
        print(
            f"{followers:>9,} | {r['old_p50']:>7.1f}µs {r['old_p99']:>7.1f}µs | {r['new_p50']:>7.1f}µs "
            f"{r['new_p99']:>7.1f}µs | {r['ratio_p50']:>11.2f} {r['ratio_p99']:>5.2f} | "
            f"{r['old_decode_p50']:.2f} → {r['new_decode_p50']:.2f}   ({n:,} executions per path)"
        )


if __name__ == "__main__":
    main()

"""Matching-loop throughput: `python -m pyservice.venue_sim.bench [--followers N] [--frames N]`.

Times what the venue does with an `orders` frame, without the socket: decode the frame,
match every order, log the fills/rejects entries (encoding them). Frames alternate
between opening buys (spot and perp) and reduce-only closes, so balances stay funded.
"""

from __future__ import annotations

import argparse
import time

from pyservice.protocol import NewOrder, NewOrders, UncheckedOrders, check_order_ids, encode, unchecked_engine_reader
from pyservice.runtime import tune_gc
from pyservice.venue_sim.config import BookProvider, Books, Follow, VenueConfig
from pyservice.venue_sim.venue import VenueSim


def _frames(followers: int, count: int) -> list[bytes]:
    frames = []
    for n in range(count):
        closing = n % 2 == 1
        symbol = ("BTCUSDT", "ETHUSDT-PERP")[n // 2 % 2]
        qty = "0.001" if symbol == "BTCUSDT" else "0.01"
        orders = [
            NewOrder(
                f"c{n}x{i}",
                f"f{i}",
                "p1",
                symbol,
                "sell" if closing else "buy",
                "market" if closing else "limit_ioc",
                qty,
                None if closing else "70000",
                closing,
                1 if symbol == "BTCUSDT" else 5,
            )
            for i in range(followers)
        ]
        frames.append(encode(NewOrders(n + 1, orders)))
    return frames


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--followers", type=int, default=10_000, help="orders per frame")
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--record", metavar="PATH", help="also write the --record file")
    args = parser.parse_args(argv)
    books = Books(
        providers=[BookProvider("p1")],
        follows=[Follow(f"f{i}", "p1", "100000") for i in range(args.followers)],
    )
    venue = VenueSim(VenueConfig(books=books, rate=0, mark_interval=0, record=args.record))
    frames = _frames(args.followers, args.frames)
    tune_gc()  # as the venue-sim command does
    reader = unchecked_engine_reader()  # as the venue's session reads
    venue._record = open(args.record, "wb") if args.record else None  # run() opens it otherwise
    decode = match = 0.0
    for frame in frames:
        t0 = time.perf_counter()
        messages = reader.feed(frame)
        for msg in messages:
            assert isinstance(msg, UncheckedOrders)
            check_order_ids(msg.orders)
        t1 = time.perf_counter()
        for msg in messages:
            assert isinstance(msg, UncheckedOrders)
            venue._receive(msg, time.monotonic_ns())
        decode += t1 - t0
        match += time.perf_counter() - t1
    orders = args.followers * args.frames
    print(
        f"{orders} orders: decode {orders / decode:,.0f}/s, match and log {orders / match:,.0f}/s, "
        f"both {orders / (decode + match):,.0f}/s (fills {venue.stats.fills}, rejects {venue.stats.rejects})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The baseline of `copyengine bench --engine naive`: the engine a newcomer would write.

Same protocol and books as the real engine, but one asyncio task per follower per
provider execution, `Decimal` sizing, and one `orders` frame and one write per copy order.
It implements only what the benchmark exercises (proportional / fixed_amount /
multiplier sizing with the per-trade and free-cash caps, step rounding, spot buys, the
proportional close of a provider's sell, and their fills), so its speed is a fair floor,
not a second implementation of the rules.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
from collections.abc import Coroutine
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from pathlib import Path
from typing import cast

from pyservice import protocol as P
from pyservice.endpoints import parse_endpoint


@dataclass
class _Follower:
    name: str
    cash: Decimal
    mode: str
    fixed_amount: Decimal
    multiplier: Decimal
    max_per_trade: Decimal
    slippage: Decimal
    held: dict[str, Decimal]


class NaiveEngine:
    def __init__(self, books: Path, listen: str) -> None:
        data = json.loads(books.read_text(encoding="utf-8"))
        self.books: dict[str, list[_Follower]] = {p["id"]: [] for p in data["providers"]}
        for f in data["follows"]:
            self.books[f["provider"]].append(
                _Follower(
                    name=f["follower"],
                    cash=Decimal(f["allocation"]),
                    mode=f.get("mode", "proportional"),
                    fixed_amount=Decimal(f.get("fixed_amount", "0")),
                    multiplier=Decimal(f.get("multiplier", "1")),
                    max_per_trade=Decimal(f.get("max_per_trade_pct", "100")) / 100,
                    slippage=Decimal(f.get("slippage_pct", "0.5")) / 100,
                    held={},
                )
            )
        self.steps: dict[str, Decimal] = {}
        self.ticks: dict[str, Decimal] = {}
        self.orders: dict[str, tuple[_Follower, str, str]] = {}  # coid: follower, symbol, side
        self.provider_held: dict[tuple[str, str], Decimal] = {}
        self.applied = 0
        self.endpoint = parse_endpoint(listen)
        self.transport: asyncio.Transport | None = None
        #: the per-follower tasks in flight (the loop keeps only weak references)
        self._tasks: set[asyncio.Task[None]] = set()

    def _spawn(self, coro: Coroutine[object, object, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        ep = self.endpoint
        if ep.unix_path is not None:
            server = await loop.create_unix_server(lambda: _Conn(self), ep.unix_path)
        else:
            server = await loop.create_server(lambda: _Conn(self), ep.host, ep.port)
        async with server:
            await server.serve_forever()

    def apply(self, msg: P.VenueMessage) -> None:
        if isinstance(msg, P.Instrument):
            self.steps[msg.symbol] = Decimal(msg.step)
            self.ticks[msg.symbol] = Decimal(msg.tick)
        elif isinstance(msg, P.ProviderExecution):
            key = (msg.provider, msg.symbol)
            before = self.provider_held.get(key, Decimal(0))
            qty = Decimal(msg.qty)
            self.provider_held[key] = before + qty if msg.side == "buy" else max(Decimal(0), before - qty)
            for f in self.books.get(msg.provider, []):
                if msg.side == "buy":
                    self._spawn(self.copy(f, msg))  # one task per follower
                elif before > 0:
                    self._spawn(self.close(f, msg, min(Decimal(1), qty / before)))
        elif isinstance(msg, P.CopyFills):
            for fill in msg.fills:
                follower, symbol, side = self.orders.pop(fill.client_order_id, (None, "", ""))
                if follower is not None:
                    qty = Decimal(fill.qty)
                    sign = 1 if side == "buy" else -1
                    follower.cash -= sign * qty * Decimal(fill.price)
                    follower.held[symbol] = follower.held.get(symbol, Decimal(0)) + sign * qty
        elif isinstance(msg, P.CopyRejects):
            for r in msg.rejects:
                self.orders.pop(r.client_order_id, None)

    async def copy(self, f: _Follower, e: P.ProviderExecution) -> None:
        price, equity = Decimal(e.price), f.cash
        if f.mode == "fixed_amount":
            notional = f.fixed_amount
        else:
            notional = equity * Decimal(e.qty) * price / Decimal(e.provider_equity)
            if f.mode == "multiplier":
                notional *= f.multiplier
        notional = min(notional, equity * f.max_per_trade, f.cash)
        step = self.steps[e.symbol]
        qty = (notional / price / step).to_integral_value(ROUND_DOWN) * step
        if qty <= 0:
            return
        tick = self.ticks[e.symbol]
        limit = (price * (1 + f.slippage) / tick).to_integral_value(ROUND_DOWN) * tick
        self.send(
            e,
            f,
            P.NewOrder(
                self.coid(e, f),
                f.name,
                e.provider,
                e.symbol,
                "buy",
                "limit_ioc",
                _text(qty),
                _text(limit),
                False,
                e.leverage,
            ),
        )

    async def close(self, f: _Follower, e: P.ProviderExecution, fraction: Decimal) -> None:
        step = self.steps[e.symbol]
        qty = (f.held.get(e.symbol, Decimal(0)) * fraction / step).to_integral_value(ROUND_DOWN) * step
        if qty > 0:
            self.send(
                e,
                f,
                P.NewOrder(self.coid(e, f), f.name, e.provider, e.symbol, "sell", "market", _text(qty), None, True, 1),
            )

    def coid(self, e: P.ProviderExecution, f: _Follower) -> str:
        return hashlib.sha1(f"{e.exec_id}|{f.name}".encode()).hexdigest()[:32]

    def send(self, e: P.ProviderExecution, f: _Follower, order: P.NewOrder) -> None:
        self.orders[order.client_order_id] = (f, order.symbol, order.side)
        if self.transport is not None:
            self.transport.write(P.encode(P.NewOrders(seq=e.seq, orders=[order])))


def _text(d: Decimal) -> str:
    return format(d.normalize(), "f")


class _Conn(asyncio.Protocol):
    def __init__(self, engine: NaiveEngine) -> None:
        self.engine = engine
        self.reader = P.venue_reader()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.engine.transport = cast(asyncio.Transport, transport)
        # the protocol's handshake; the baseline checks no MAC (a trusted link)
        self.engine.transport.write(P.encode(P.Challenge(P.PROTOCOL_VERSION, secrets.token_bytes(32))))

    def connection_lost(self, exc: Exception | None) -> None:
        self.engine.transport = None

    def data_received(self, data: bytes) -> None:
        e = self.engine
        for msg in self.reader.feed(data):
            if isinstance(msg, (P.Resume, P.NewOrders)):
                continue  # engine-bound messages never come from a venue
            if isinstance(msg, P.Hello):
                if e.transport is not None:
                    e.transport.write(P.encode(P.Resume(from_seq=e.applied + 1)))
            elif isinstance(msg, P.Heartbeat):
                if e.transport is not None:
                    e.transport.write(P.encode(P.Heartbeat(seq=e.applied)))
            elif msg.seq == e.applied + 1:
                e.apply(msg)
                e.applied = msg.seq


def main(argv: list[str] | None = None) -> int:
    import argparse

    from pyservice.runtime import run_until_signal

    parser = argparse.ArgumentParser(prog="python -m pyservice.bench.naive_engine")
    parser.add_argument("--books", required=True)
    parser.add_argument("--listen", default="tcp://127.0.0.1:7400")
    args = parser.parse_args(argv)
    engine = NaiveEngine(Path(args.books), args.listen)

    async def serve() -> None:
        task = asyncio.ensure_future(engine.run())
        await stopped.wait()
        task.cancel()

    stopped = asyncio.Event()
    return run_until_signal(serve(), stopped.set)


if __name__ == "__main__":
    raise SystemExit(main())

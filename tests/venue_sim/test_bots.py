"""Marks and provider bots (`pyservice.venue_sim.bots`)."""

from __future__ import annotations

import asyncio
import random
from collections import Counter

from pyservice.protocol import MarkPrice, ProviderExecution, encode, venue_reader
from pyservice.venue_sim import DEFAULT_INSTRUMENTS, VenueConfig, VenueSim, fixed
from pyservice.venue_sim.accounts import Instrument
from pyservice.venue_sim.bots import Bots, ProviderBot, mark_step

INSTRUMENTS = {s.instrument.symbol: Instrument(s.instrument) for s in DEFAULT_INSTRUMENTS}
START = {s.instrument.symbol: fixed.parse(s.price) for s in DEFAULT_INSTRUMENTS}
PROVIDERS = ["p1", "p2", "p3"]


def simulate(seed: int, steps: int = 3000) -> list[ProviderExecution | MarkPrice]:
    bots = Bots(PROVIDERS, list(INSTRUMENTS.values()), fixed.parse("10000", fixed.MONEY_DIGITS), seed)
    marks = dict(START)
    out: list[ProviderExecution | MarkPrice] = []
    for i in range(steps):
        if i % 5 == 0:
            for mark in bots.marks(marks):
                marks[mark.symbol] = fixed.parse(mark.price)
                out.append(mark)
        execution = bots.execution(marks)
        if execution is not None:
            out.append(execution)
    return out


def test_executions_are_valid_on_grid_and_never_short_spot() -> None:
    log = simulate(seed=7)
    execs = [e for e in log if isinstance(e, ProviderExecution)]
    assert len(execs) > 2900
    # every entry passes the wire validation (names, decimal patterns, leverage range)
    assert venue_reader().feed(b"".join(encode(e) for e in log)) == log
    assert len({e.exec_id for e in execs}) == len(execs)
    marks = {s: fixed.format(p) for s, p in START.items()}
    held: Counter[tuple[str, str]] = Counter()
    actions: Counter[str] = Counter()
    for e in log:
        if isinstance(e, MarkPrice):
            marks[e.symbol] = e.price
            continue
        inst = INSTRUMENTS[e.symbol]
        q = fixed.parse(e.qty)
        assert q > 0 and q % inst.step == 0 and q >= inst.min_qty
        assert e.price == marks[e.symbol]  # executions trade at the current mark
        assert fixed.parse(e.provider_equity, fixed.MONEY_DIGITS) > 0
        assert e.leverage == 1 if not inst.perp else 1 <= e.leverage <= 20
        key = (e.provider, e.symbol)
        before = held[key]
        signed = q if e.side == "buy" else -q
        if before == 0:
            actions["open"] += 1
        elif (before > 0) == (signed > 0):
            actions["add"] += 1
        else:
            actions["reduce" if q < abs(before) else "close" if q == abs(before) else "reverse"] += 1
        held[key] = before + signed
        if not inst.perp:
            assert held[key] >= 0, f"{key} went short"
    assert set(actions) == {"open", "add", "reduce", "close", "reverse"}


def test_equity_is_the_bot_account_at_the_marks() -> None:
    bots = Bots(["p1"], list(INSTRUMENTS.values()), fixed.parse("10000", fixed.MONEY_DIGITS), 3)
    account = bots._bots[0].account
    marks = dict(START)
    for _ in range(300):
        execution = bots.execution(marks)
        if execution is not None:
            assert fixed.parse(execution.provider_equity, fixed.MONEY_DIGITS) == account.equity(marks)
        for mark in bots.marks(marks):
            marks[mark.symbol] = fixed.parse(mark.price)


def test_a_wiped_out_provider_tops_up_and_reports_positive_equity() -> None:
    cash = fixed.parse("10000", fixed.MONEY_DIGITS)
    bot = ProviderBot("p1", cash, random.Random(1))
    eth = INSTRUMENTS["ETHUSDT-PERP"]
    marks = dict(START)
    assert bot.account.fill(eth, True, fixed.parse("60"), marks["ETHUSDT-PERP"], 20)  # 180,000 notional
    marks["ETHUSDT-PERP"] //= 2  # -90,000
    assert bot.account.equity(marks) < 0
    execution = bot.act(eth, marks, "x1")
    assert execution is not None
    assert fixed.parse(execution.provider_equity, fixed.MONEY_DIGITS) >= cash // 10


def test_the_same_seed_makes_the_same_market() -> None:
    assert simulate(seed=11, steps=500) == simulate(seed=11, steps=500)
    assert simulate(seed=11, steps=500) != simulate(seed=12, steps=500)


def test_marks_walk_on_the_tick_grid_and_stay_positive() -> None:
    rng = random.Random(5)
    tiny = INSTRUMENTS["SOLUSDT"]  # tick 0.001
    marks = {"SOLUSDT": tiny.tick * 3}
    for _ in range(2000):
        (mark,) = mark_step([tiny], marks, rng)
        price = fixed.parse(mark.price)
        assert price > 0 and price % tiny.tick == 0
        assert abs(price - marks["SOLUSDT"]) <= max(tiny.tick, marks["SOLUSDT"] // 2000 // tiny.tick * tiny.tick)
        marks["SOLUSDT"] = price


def test_bots_keep_trading_without_an_engine() -> None:
    # nothing listens on this port: the log grows anyway, marks move, executions go in
    venue = VenueSim(VenueConfig(connect="tcp://127.0.0.1:9", rate=200, mark_interval=0.05, duration=0.3, seed=2))
    start = venue.log.newest
    asyncio.run(venue.run())
    entries = venue.log.entries(start + 1)
    assert venue.stats.executions >= 30 and venue.stats.marks >= 4 * 4
    assert [e.seq for e in entries] == list(range(start + 1, venue.log.newest + 1))
    assert venue.stats.connections == 0

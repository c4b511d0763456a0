"""The market the venue makes up: moving marks and provider bots trading at them.

Both are seeded (`random.Random`), so a seed replays the same market. Randomness picks
actions and sizes; every amount is computed in fixed-point ints on the instrument grid.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence

from pyservice.protocol import MarkPrice, ProviderExecution
from pyservice.venue_sim import fixed
from pyservice.venue_sim.accounts import Account, Instrument
from pyservice.venue_sim.fixed import ceil_div

#: a mark moves by up to this fraction of its price per step (at least one tick)
_MARK_MOVE = 2000  # 1/2000 = 0.05 %
_MAX_BOT_LEVERAGE = 20
_PICKS = 5


def mark_step(instruments: Sequence[Instrument], marks: Mapping[str, int], rng: random.Random) -> list[MarkPrice]:
    """Every symbol's next mark: a random walk on the tick grid that never reaches zero."""
    out = []
    for inst in instruments:
        ticks = marks[inst.symbol] // inst.tick
        reach = max(1, ticks // _MARK_MOVE)
        ticks = max(1, ticks + rng.randint(-reach, reach))
        out.append(MarkPrice(0, 0, inst.symbol, fixed.format(ticks * inst.tick)))
    return out


class ProviderBot:
    """One provider trading its own account: opens, adds, reduces, reverses, closes."""

    def __init__(self, provider: str, cash: int, rng: random.Random) -> None:
        self.provider = provider
        self.account = Account(cash)
        self._start = cash
        self._rng = rng
        self._leverage: dict[str, int] = {}

    def act(self, inst: Instrument, marks: Mapping[str, int], exec_id: str) -> ProviderExecution | None:
        """Trade `inst` at its mark; None when the chosen trade is not possible now."""
        account = self.account
        equity = account.equity(marks)
        if equity < self._start // 10:
            # the provider tops its account up rather than trading itself to zero equity
            account.cash += ceil_div(self._start // 10 - equity, self._start) * self._start
        rng = self._rng
        price = marks[inst.symbol]
        held = account.position(inst.symbol)
        size = abs(held)
        leverage = self._leverage.get(inst.symbol, 1)
        if held == 0:
            buy = True if not inst.perp else rng.random() < 0.5
            leverage = rng.randint(1, _MAX_BOT_LEVERAGE) if inst.perp else 1
            qty = self._opening_qty(inst, price, leverage)
        else:
            action = rng.choice(("add", "reduce", "close", "reverse") if inst.perp else ("add", "reduce", "close"))
            buy = (held > 0) == (action == "add")
            if action == "add":
                qty = self._opening_qty(inst, price, leverage)
            elif action == "reduce":
                qty = size * rng.randint(10, 90) // 100 // inst.step * inst.step or size
            elif action == "close":
                qty = size
            else:
                leverage = rng.randint(1, _MAX_BOT_LEVERAGE)
                opening = self._opening_qty(inst, price, leverage)
                qty = size + opening if opening else size
        if not qty or not account.fill(inst, buy, qty, price, leverage):
            return None
        if account.position(inst.symbol):
            self._leverage[inst.symbol] = leverage
        return ProviderExecution(
            0,
            0,
            self.provider,
            exec_id,
            inst.symbol,
            "buy" if buy else "sell",
            fixed.format(qty),
            fixed.format(price),
            fixed.format(account.equity(marks), fixed.MONEY_DIGITS),
            leverage,
        )

    def _opening_qty(self, inst: Instrument, price: int, leverage: int) -> int:
        """2-15 % of available cash, levered, floored to step and raised to the minimums; 0 if unaffordable."""
        budget = self.account.available * self._rng.randint(2, 15) // 100
        qty = budget * leverage // price // inst.step * inst.step  # money / price = qty
        least = (
            max(
                ceil_div(inst.min_qty, inst.step),
                ceil_div(inst.min_notional * fixed.QTY_SCALE, price * inst.step),
                1,
            )
            * inst.step
        )
        if qty < least:
            qty = least
        return qty if ceil_div(qty * price, leverage) <= self.account.available else 0


class Bots:
    """All provider bots; each call trades one random provider in one random symbol."""

    def __init__(self, providers: Sequence[str], instruments: Sequence[Instrument], cash: int, seed: int) -> None:
        self._rng = random.Random(f"{seed}:bots")
        self._marks_rng = random.Random(f"{seed}:marks")
        self._instruments = list(instruments)
        self._bots = [ProviderBot(p, cash, random.Random(f"{seed}:bot:{p}")) for p in providers]
        self._count = 0

    def marks(self, marks: Mapping[str, int]) -> list[MarkPrice]:
        return mark_step(self._instruments, marks, self._marks_rng)

    def execution(self, marks: Mapping[str, int]) -> ProviderExecution | None:
        """One execution; a few picks are tried, as a broke bot can have nothing to do."""
        for _ in range(_PICKS if self._bots and self._instruments else 0):
            bot = self._rng.choice(self._bots)
            inst = self._rng.choice(self._instruments)
            execution = bot.act(inst, marks, f"x{self._count + 1}")
            if execution is not None:
                self._count += 1
                return execution
        return None

"""The inputs the statistics are built from, as they are applied: one path for a scenario
replay (`copyengine stats SCENARIO`) and for the projector over the journal.

The builder is fed the provider executions the engine accepted (never one it refused:
statistics are server-verified) with their venue times, and every price the engine took
as a mark; the records come from its trades (`trades.TradeBook`, all of them, open and
closed) and the engine's standings (`Engine.standings()` / `LiveEngine.standings()`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from pyservice.statistics import figures
from pyservice.statistics.trades import Trade, TradeBook


@dataclass
class StatisticsBuilder:
    #: symbol → `spot` | `perp`
    kinds: dict[str, str] = field(default_factory=dict)
    book: TradeBook = field(default_factory=TradeBook)
    #: every trade per provider, in opening order
    trades: dict[str, list[Trade]] = field(default_factory=dict)
    marks: dict[str, Decimal] = field(default_factory=dict)
    max_leverage: dict[str, int] = field(default_factory=dict)
    #: keep every trade in `trades` (a replay); the projector keeps only the open ones in
    #: memory and reads the rest from PostgreSQL
    history: bool = True

    def instrument(self, symbol: str, kind: str) -> None:
        self.kinds[symbol] = kind

    def mark(self, symbol: str, price: Decimal) -> None:
        self.marks[symbol] = price

    def execution(
        self,
        seq: int,
        at: int,
        provider: str,
        exec_id: str,
        symbol: str,
        side: str,
        qty: Decimal,
        price: Decimal,
        provider_equity: Decimal,
        leverage: int,
    ) -> list[Trade]:
        """An accepted provider execution at venue time `at`: it marks its symbol and
        moves the provider's trades. Returns the trades it changed."""
        self.marks[symbol] = price
        self.max_leverage[provider] = max(leverage, self.max_leverage.get(provider, leverage))
        changed = self.book.execution(
            seq, provider, exec_id, symbol, side, qty, price, provider_equity, leverage, at=at, kind=self.kinds[symbol]
        )
        if self.history:
            mine = self.trades.setdefault(provider, [])
            mine.extend(t for t in changed if t.opened_seq == seq and t.closed_at is None)
        return changed

    def record(self, provider: str, as_of: int, standing: figures.Standing) -> dict[str, Any]:
        return figures.record(
            provider,
            self.trades.get(provider, []),
            as_of=as_of,
            marks=self.marks,
            standing=standing,
            max_leverage=self.max_leverage.get(provider),
        )

    def records(self, standings: Iterable[tuple[str, int, str, str]], as_of: int) -> list[dict[str, Any]]:
        """One record per provider of `standings` (the engine's, in provider order)."""
        return [self.record(p, as_of, figures.Standing(n, aum, pnl)) for p, n, aum, pnl in standings]

"""Provider trades from the provider's executions: flat → open → flat, exactly.

A trade opens when an execution takes a provider's position in a symbol away from zero
and closes when one brings it back; an execution through zero closes the trade with the
part that reaches zero and opens the next with the rest, at the same execution's equity.
Everything is `Decimal` arithmetic on the venue's exact numbers, with no rounding:
pnl = Σ exit notional − Σ entry notional for a long (the opposite for a short), and the
return is pnl / equity_at_open (DESIGN.md, "Statistics").

Each trade carries its venue times (µs since the epoch, UTC): it opens at the opening
execution's time and closes at the closing one's, and the statistics (`figures`) order
and window trades by them.

Executions are rare next to copy orders (one per fan-out), so this runs in Python: in the
projector, which writes the trades a step touched in the step's own transaction, and in
`copyengine stats` over a scenario.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from decimal import Context, Decimal, Inexact, Rounded, localcontext
from typing import Any

ZERO = Decimal(0)
#: sums and products of the venue's numbers never round: a result that would is an error
EXACT = Context(prec=1000, traps=[Inexact, Rounded])


@dataclass
class Trade:
    provider_id: str
    symbol: str
    opened_seq: int
    opened_exec_id: str
    side: str  # "long" or "short"
    leverage: int
    equity_at_open: Decimal
    qty: Decimal
    max_qty: Decimal
    entry_qty: Decimal
    entry_notional: Decimal
    #: the instrument's kind, `spot` or `perp` (the provider's strategy)
    kind: str
    #: venue time of the opening execution
    opened_at: int
    exit_qty: Decimal = ZERO
    exit_notional: Decimal = ZERO
    executions: int = 1
    closed_seq: int | None = None
    closed_exec_id: str | None = None
    closed_at: int | None = None
    pnl: Decimal | None = None

    @property
    def key(self) -> tuple[str, str, int]:
        return self.provider_id, self.symbol, self.opened_seq

    @property
    def trade_return(self) -> Decimal | None:
        """pnl / equity_at_open in the caller's `Decimal` context (a ratio rounds; the
        exact pair is `pnl` and `equity_at_open`)."""
        return None if self.pnl is None else self.pnl / self.equity_at_open


#: the table's columns, in the dataclass' order (after `shard`)
COLUMNS = [f.name for f in fields(Trade)]


class TradeBook:
    """The open trades, folding executions into trade changes."""

    def __init__(self, open_trades: list[Trade] | None = None) -> None:
        self.open: dict[tuple[str, str], Trade] = {(t.provider_id, t.symbol): t for t in open_trades or []}

    def execution(
        self,
        seq: int,
        provider: str,
        exec_id: str,
        symbol: str,
        side: str,
        qty: Decimal,
        price: Decimal,
        provider_equity: Decimal,
        leverage: int,
        *,
        at: int,
        kind: str,
    ) -> list[Trade]:
        """Apply one accepted execution at venue time `at` on an instrument of `kind`; the
        trades it changed (closed first)."""
        with localcontext(EXACT):
            return self._execution(
                seq, provider, exec_id, symbol, side, qty, price, provider_equity, leverage, at, kind
            )

    def _execution(
        self,
        seq: int,
        provider: str,
        exec_id: str,
        symbol: str,
        side: str,
        qty: Decimal,
        price: Decimal,
        provider_equity: Decimal,
        leverage: int,
        at: int,
        kind: str,
    ) -> list[Trade]:
        if qty <= 0 or price <= 0 or provider_equity <= 0:
            raise ValueError(f"execution {exec_id}: qty, price and provider equity must be positive")
        buying = side == "buy"
        changed: list[Trade] = []
        rest = qty
        t = self.open.get((provider, symbol))
        if t is not None:
            if (t.side == "long") == buying:  # adds
                t.qty += qty
                t.max_qty = max(t.max_qty, t.qty)
                t.entry_qty += qty
                t.entry_notional += qty * price
                t.executions += 1
                return [t]
            closing = min(qty, t.qty)
            t.qty -= closing
            t.exit_qty += closing
            t.exit_notional += closing * price
            t.executions += 1
            if t.qty == 0:
                gross = t.exit_notional - t.entry_notional
                t.pnl = gross if t.side == "long" else -gross
                t.closed_seq, t.closed_exec_id, t.closed_at = seq, exec_id, at
                del self.open[(provider, symbol)]
            changed.append(t)
            rest = qty - closing
        if rest > 0:
            t = Trade(
                provider,
                symbol,
                seq,
                exec_id,
                "long" if buying else "short",
                leverage,
                provider_equity,
                qty=rest,
                max_qty=rest,
                entry_qty=rest,
                entry_notional=rest * price,
                kind=kind,
                opened_at=at,
            )
            self.open[(provider, symbol)] = t
            changed.append(t)
        return changed


def row(shard: str, t: Trade) -> tuple[Any, ...]:
    return (shard, *(getattr(t, c) for c in COLUMNS))


def from_row(r: Any) -> Trade:
    return Trade(**{c: r[c] for c in COLUMNS})

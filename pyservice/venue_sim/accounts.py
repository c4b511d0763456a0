"""Balances and IOC matching: the venue's side of every copy order.

Accounts are per (follower, provider), one per copy relationship, like the engine's
portfolios: a follower who copies two providers holds their positions apart, so a
reduce-only close of one relationship never nets against the other's position.

Arithmetic is on ints (`fixed`): qty and price at 8 decimals, money at 16. Spot buys pay
`qty × price`, sells receive it. Perp positions are FIFO lots, each holding margin
`ceil16(qty × entry / leverage)`; closing `c` of a lot realizes `(price − entry) × c`
(long) or `(entry − price) × c` (short). Available cash is `cash − margin held`; open
PnL is not counted (there is no liquidation model).
"""

from __future__ import annotations

import contextlib
import random
import re
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Final, TypeAlias, cast

import msgspec

from pyservice import protocol
from pyservice.protocol import Fill, NewOrder, Reject, RejectReason, UncheckedOrder
from pyservice.venue_sim import fixed
from pyservice.venue_sim.fixed import ceil_div
from pyservice.venue_sim.stats import VenueStats

#: The engine accepts leverage 1..125 (`docs/scenario-format.md`).
MAX_LEVERAGE = 125


class Instrument:
    __slots__ = ("min_notional", "min_qty", "perp", "step", "symbol", "tick")

    def __init__(self, message: protocol.Instrument) -> None:
        self.symbol = message.symbol
        self.perp = message.kind == "perp"
        self.tick = fixed.parse(message.tick)
        self.step = fixed.parse(message.step)
        self.min_qty = fixed.parse(message.min_qty)
        self.min_notional = fixed.parse(message.min_notional)
        if self.tick <= 0 or self.step <= 0:
            raise ValueError(f"{self.symbol}: tick and step must be positive")


class Lot(msgspec.Struct, gc=False):
    """A perp lot; a Struct because one is made per opening fill (cheap, untracked by gc)."""

    qty: int  # > 0; the direction is the position's
    price: int
    leverage: int
    margin: int


class Account:
    __slots__ = ("cash", "lots", "margin", "qty")

    def __init__(self, cash: int) -> None:
        self.cash = cash  # money, 16 decimals
        self.margin = 0  # held by perp lots
        self.qty: dict[str, int] = {}  # signed position per symbol; absent = flat
        self.lots: dict[str, deque[Lot]] = {}  # perp symbols only

    def position(self, symbol: str) -> int:
        return self.qty.get(symbol, 0)

    @property
    def available(self) -> int:
        return self.cash - self.margin

    def equity(self, marks: Mapping[str, int]) -> int:
        total = self.cash
        for symbol, held in self.qty.items():
            mark = marks[symbol]
            lots = self.lots.get(symbol)
            if lots is None:
                total += held * mark
            else:
                sign = 1 if held > 0 else -1
                total += sum((mark - lot.price) * lot.qty for lot in lots) * sign
        return total

    def fill(self, inst: Instrument, buy: bool, qty: int, price: int, leverage: int) -> bool:
        """Apply a fill if the account can pay for it; False changes nothing."""
        symbol = inst.symbol
        held = self.qty.get(symbol, 0)
        if inst.perp:
            if held and (held > 0) != buy:
                return self._reduce_perp(symbol, buy, qty, price, leverage, held)
            margin = -(-qty * price // leverage)  # ceil
            if margin > self.cash - self.margin:
                return False
            lots = self.lots.get(symbol)
            if lots is None:
                lots = self.lots[symbol] = deque()
            lots.append(Lot(qty, price, leverage, margin))
            self.margin += margin
        elif buy:
            cost = qty * price
            if cost > self.cash - self.margin:
                return False
            self.cash -= cost
        else:
            if qty > held:  # spot never goes short
                return False
            self.cash += qty * price
        self._hold(symbol, held + qty if buy else held - qty)
        return True

    def _hold(self, symbol: str, held: int) -> None:
        """Book the new signed holding; a flat symbol leaves the table."""
        if held:
            self.qty[symbol] = held
        else:
            del self.qty[symbol]

    def _reduce_perp(self, symbol: str, buy: bool, qty: int, price: int, leverage: int, held: int) -> bool:
        """A perp fill against the position: close lots FIFO, open the rest the other way."""
        lots = self.lots[symbol]
        long = held > 0
        closing = qty if qty < abs(held) else abs(held)
        opening = qty - closing
        # What the close realizes and frees, computed first: a flip's opening margin must
        # be covered by the cash left after it, or nothing happens.
        pnl = freed = 0
        left = closing
        for lot in lots:
            c = lot.qty if lot.qty < left else left
            pnl += (price - lot.price) * c if long else (lot.price - price) * c
            freed += lot.margin if c == lot.qty else lot.margin - ceil_div((lot.qty - c) * lot.price, lot.leverage)
            left -= c
            if not left:
                break
        new_margin = ceil_div(opening * price, leverage)
        if opening and new_margin > self.cash + pnl - (self.margin - freed):
            return False
        self.cash += pnl
        self.margin -= freed
        left = closing
        while left:
            lot = lots[0]
            if lot.qty <= left:
                left -= lot.qty
                lots.popleft()
            else:
                lot.qty -= left
                lot.margin = ceil_div(lot.qty * lot.price, lot.leverage)
                left = 0
        if opening:
            lots.append(Lot(opening, price, leverage, new_margin))
            self.margin += new_margin
        elif not lots:
            del self.lots[symbol]
        self._hold(symbol, held + qty if buy else held - qty)
        return True


#: One answered order, for `--record`: (order, filled qty, fill price, reject reason).
#: `pyservice.protocol.Decimal`'s pattern.
_WIRE_DECIMAL: Final = re.compile(r"[0-9]{1,13}(\.[0-9]{1,16})?")

#: What the venue matches: orders as read off the wire (`UncheckedOrder`) or built here.
Order: TypeAlias = NewOrder | UncheckedOrder
Outcome: TypeAlias = tuple[Order, str | None, str | None, RejectReason | None]


class Matcher:
    """Matches copy orders IOC against the mark, order by order, in arrival order."""

    def __init__(self, stats: VenueStats, rng: random.Random, partial_fill_pct: float = 0.0) -> None:
        if not 0 <= partial_fill_pct <= 100:
            raise ValueError("partial_fill_pct must be in [0, 100]")
        self.stats = stats
        self.instruments: dict[str, Instrument] = {}
        self.marks: dict[str, int] = {}
        self.accounts: dict[tuple[str, str], Account] = {}
        self._mark_text: dict[str, str] = {}
        self._seen: set[str] = set()  # every client order id of the session
        self._rng = rng
        self._partial = partial_fill_pct / 100  # a probability, not money
        self._numbers: dict[str, int] = {}  # decimal text → fixed; limit prices repeat a lot

    # A venue may publish what the engine's rules refuse (a test of those rules): such an
    # instrument or mark changes nothing here either.

    def set_instrument(self, message: protocol.Instrument) -> None:
        with contextlib.suppress(ValueError):
            self.instruments[message.symbol] = Instrument(message)

    def set_mark(self, symbol: str, price: str) -> None:
        try:
            value = fixed.parse(price)
        except ValueError:
            return
        if value > 0:
            self.marks[symbol] = value
            self._mark_text[symbol] = price

    def open_account(self, follower: str, provider: str, cash: int) -> Account:
        account = self.accounts[(follower, provider)] = Account(cash)
        return account

    def match(self, orders: Sequence[Order], outcomes: list[Outcome] | None = None) -> tuple[list[Fill], list[Reject]]:
        """One report per order; `outcomes` (if given) gets one entry per order too."""
        # Reports are built as plain tuples: msgpack encodes them exactly as the Fill and
        # Reject NamedTuples, and a NamedTuple costs a Python-level __new__ per order.
        fills: list[tuple[str, str, str]] = []
        rejects: list[tuple[str, RejectReason]] = []
        seen = self._seen
        execute = self._execute
        mark_text = self._mark_text
        rejected = self.stats.rejects
        for order in orders:
            cid = order[0]
            if cid in seen:
                reason: RejectReason | None = "duplicate"
            else:
                seen.add(cid)
                qty_text, reason = execute(order)
            if reason is None:
                price_text = mark_text[order[3]]
                fills.append((cid, qty_text, price_text))
                if outcomes is not None:
                    outcomes.append((order, qty_text, price_text, None))
            else:
                rejects.append((cid, reason))
                rejected[reason] = rejected.get(reason, 0) + 1
                if outcomes is not None:
                    outcomes.append((order, None, None, reason))
        self.stats.fills += len(fills)
        return cast(list[Fill], fills), cast(list[Reject], rejects)

    def _execute(self, order: Order) -> tuple[str, RejectReason | None]:
        """The filled qty's text, or a reject reason (and the account unchanged)."""
        _, follower, provider, symbol, side, type_, qty_text, price_text, reduce_only, leverage = order
        account = self.accounts.get((follower, provider))
        inst = self.instruments.get(symbol)
        if account is None or inst is None:
            return "", "invalid"
        qty = self._numbers.get(qty_text)
        if qty is None:
            qty = self._number(qty_text)
        if qty <= 0 or qty % inst.step or not (1 <= leverage <= MAX_LEVERAGE if inst.perp else leverage == 1):
            return "", "invalid"
        limit = 0
        if type_ == "limit_ioc":
            if price_text is None:
                return "", "invalid"
            limit = self._numbers.get(price_text) or self._number(price_text)
            if limit <= 0 or limit % inst.tick:
                return "", "invalid"
        buy = side == "buy"
        whole = qty
        if reduce_only:
            held = account.qty.get(symbol, 0)
            if buy:
                held = -held
            if held <= 0:
                return "", "reduce_only"
            if qty > held:
                qty = held
        elif qty < inst.min_qty:
            return "", "invalid"
        mark = self.marks.get(symbol)
        if mark is None or (limit and (mark > limit if buy else mark < limit)):
            return "", "expired"
        if self._partial and self._rng.random() < self._partial:
            steps = qty // inst.step
            if steps > 1:
                qty = (1 + int(self._rng.random() * (steps - 1))) * inst.step
                self.stats.partial_fills += 1
        if not account.fill(inst, buy, qty, mark, leverage):
            return "", "insufficient_funds"
        return (qty_text if qty == whole else fixed.format(qty)), None

    def _number(self, text: str) -> int:
        """Fixed-point value of a wire decimal; -1 if it is not the protocol's `Decimal`
        (orders are read unchecked, and a fill echoes the order's qty text) or has more
        than 8 decimals."""
        value = self._numbers.get(text)
        if value is None:
            try:
                value = fixed.parse(text) if _WIRE_DECIMAL.fullmatch(text) else -1
            except ValueError:
                value = -1
            if len(self._numbers) >= 1 << 20:
                self._numbers.clear()
            self._numbers[text] = value
        return value

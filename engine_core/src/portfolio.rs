//! A copy portfolio: cash, base (net money in) and FIFO lots per symbol.
//!
//! Spot buys pay cash and sells receive it; perp lots pay nothing up front but hold margin
//! `ceil16(qty × entry / leverage)`, and closing them moves realized PnL into cash.
//! Every mutation computes all its values with checked arithmetic first and then writes,
//! so an overflow leaves the portfolio unchanged.

use smallvec::SmallVec;

use crate::exact::{mul, mul_div_ceil};
use crate::fixed::{Money, Price, Qty};
use crate::model::{Kind, Side, SymbolId};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overflow;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lot {
    pub qty: Qty,
    pub entry: Price,
    pub leverage: u32,
}

impl Lot {
    /// Margin a perp lot holds: `qty × entry / leverage`, rounded up to money precision.
    fn margin(&self) -> Result<Money, Overflow> {
        mul_div_ceil(self.qty.0, self.entry.0, i128::from(self.leverage))
            .map(Money)
            .ok_or(Overflow)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    pub symbol: SymbolId,
    pub kind: Kind,
    pub long: bool,
    /// Total quantity of the lots (positive).
    pub qty: Qty,
    /// Σ entry × qty over the lots, for unrealized PnL without walking them.
    pub cost: Money,
    /// Σ lot margins (perp only).
    pub margin: Money,
    /// Oldest first. Inline storage: a copy position rarely has more than two lots, and
    /// opening one must not allocate on the hot path.
    pub lots: SmallVec<[Lot; 1]>,
}

impl Position {
    pub fn signed_qty(&self) -> i128 {
        if self.long {
            self.qty.0
        } else {
            -self.qty.0
        }
    }

    /// What the position adds to equity at `mark`.
    fn value(&self, mark: Price) -> Option<i128> {
        let at_mark = mul(self.qty.0, mark.0)?;
        match (self.kind, self.long) {
            (Kind::Spot, _) => Some(at_mark),
            (Kind::Perp, true) => at_mark.checked_sub(self.cost.0),
            (Kind::Perp, false) => self.cost.0.checked_sub(at_mark),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Portfolio {
    pub cash: Money,
    pub base: Money,
    /// Σ margin held by perp positions.
    pub margin_held: Money,
    /// Open positions in the order they were opened (inline: no pointer chase per
    /// follower on the fan-out for the common one or two symbols).
    pub positions: SmallVec<[Position; 1]>,
}

/// What closing part of a position changes, computed before anything is written.
struct Reduction {
    cash_delta: i128,
    margin_delta: i128,
    /// Lots fully consumed from the front, and the new qty of the next one if touched.
    whole_lots: usize,
    partial: Option<Qty>,
    cost_delta: i128,
    rest: Qty,
}

impl Portfolio {
    pub fn new(allocation: Money) -> Self {
        Self {
            cash: allocation,
            base: allocation,
            margin_held: Money::ZERO,
            positions: SmallVec::new(),
        }
    }

    pub fn position(&self, symbol: SymbolId) -> Option<&Position> {
        self.positions.iter().find(|p| p.symbol == symbol)
    }

    pub fn signed_qty(&self, symbol: SymbolId) -> i128 {
        self.position(symbol).map_or(0, Position::signed_qty)
    }

    pub fn open_positions(&self) -> usize {
        self.positions.len()
    }

    /// cash + spot value + perp unrealized PnL, marked with `marks[symbol]`.
    pub fn equity(&self, marks: &[Option<Price>]) -> Result<Money, Overflow> {
        self.balances(marks).map(|(equity, _)| equity)
    }

    /// (equity, free cash) in one pass. Free cash is what may back a new order or leave
    /// by withdrawal: cash, less the margin perp lots hold, less open perp losses (an
    /// unrealized perp profit is not spendable until it is realized).
    pub fn balances(&self, marks: &[Option<Price>]) -> Result<(Money, Money), Overflow> {
        let mut equity = self.cash.0;
        let mut perp_pnl: i128 = 0;
        for p in &self.positions {
            // A position exists only after a fill, which sets its symbol's mark.
            let mark = marks[p.symbol as usize].ok_or(Overflow)?;
            let value = p.value(mark).ok_or(Overflow)?;
            equity = equity.checked_add(value).ok_or(Overflow)?;
            if p.kind == Kind::Perp {
                perp_pnl = perp_pnl.checked_add(value).ok_or(Overflow)?;
            }
        }
        let free = self.cash.0 - self.margin_held.0 + perp_pnl.min(0);
        Ok((Money(equity), Money(free)))
    }

    /// Apply an execution of `qty` at `price`: consume opposite lots FIFO, open the rest.
    pub fn apply_fill(
        &mut self,
        symbol: SymbolId,
        kind: Kind,
        side: Side,
        qty: Qty,
        price: Price,
        leverage: u32,
    ) -> Result<(), Overflow> {
        let buy = side == Side::Buy;
        let opposite = self
            .positions
            .iter()
            .position(|p| p.symbol == symbol && p.long != buy);
        let Some(i) = opposite else {
            let plan = self.plan_open(kind, qty, price, leverage, self.cash.0)?;
            self.commit_open(symbol, kind, buy, qty, price, leverage, plan);
            return Ok(());
        };
        let r = self.plan_reduction(&self.positions[i], qty, price)?;
        let cash = self.cash.0.checked_add(r.cash_delta).ok_or(Overflow)?;
        // Plan the part that opens the other way too, so the whole fill is checked first.
        let open = if r.rest.0 > 0 {
            Some(self.plan_open(kind, r.rest, price, leverage, cash)?)
        } else {
            None
        };
        self.cash = Money(cash);
        self.margin_held = Money(self.margin_held.0 + r.margin_delta);
        let pos = &mut self.positions[i];
        pos.lots.drain(..r.whole_lots);
        if let (Some(q), Some(front)) = (r.partial, pos.lots.first_mut()) {
            front.qty = q;
        }
        pos.qty = Qty(pos.qty.0 - (qty.0 - r.rest.0));
        pos.cost = Money(pos.cost.0 + r.cost_delta);
        pos.margin = Money(pos.margin.0 + r.margin_delta);
        if pos.qty.0 == 0 {
            self.positions.remove(i);
        }
        if let Some(plan) = open {
            self.commit_open(symbol, kind, buy, r.rest, price, leverage, plan);
        }
        Ok(())
    }

    fn plan_reduction(
        &self,
        pos: &Position,
        qty: Qty,
        price: Price,
    ) -> Result<Reduction, Overflow> {
        let mut left = qty.0;
        let mut cash_delta: i128 = 0;
        let mut margin_delta: i128 = 0;
        let mut cost_delta: i128 = 0;
        let mut whole_lots = 0;
        let mut partial = None;
        for lot in &pos.lots {
            if left == 0 {
                break;
            }
            let take = left.min(lot.qty.0);
            let exit_value = mul(take, price.0).ok_or(Overflow)?;
            let entry_value = mul(take, lot.entry.0).ok_or(Overflow)?;
            cost_delta -= entry_value;
            cash_delta = cash_delta
                .checked_add(match (pos.kind, pos.long) {
                    (Kind::Spot, _) => exit_value,
                    (Kind::Perp, true) => exit_value - entry_value,
                    (Kind::Perp, false) => entry_value - exit_value,
                })
                .ok_or(Overflow)?;
            if pos.kind == Kind::Perp {
                let before = lot.margin()?;
                let after = Lot {
                    qty: Qty(lot.qty.0 - take),
                    ..lot.clone()
                }
                .margin()?;
                margin_delta += after.0 - before.0;
            }
            if take == lot.qty.0 {
                whole_lots += 1;
            } else {
                partial = Some(Qty(lot.qty.0 - take));
            }
            left -= take;
        }
        Ok(Reduction {
            cash_delta,
            margin_delta,
            whole_lots,
            partial,
            cost_delta,
            rest: Qty(left),
        })
    }

    /// (new cash, lot margin) for opening `qty`; spot pays the notional now.
    fn plan_open(
        &self,
        kind: Kind,
        qty: Qty,
        price: Price,
        leverage: u32,
        cash: i128,
    ) -> Result<(i128, Money), Overflow> {
        let notional = qty.notional(price).ok_or(Overflow)?;
        match kind {
            Kind::Spot => Ok((cash.checked_sub(notional.0).ok_or(Overflow)?, Money::ZERO)),
            Kind::Perp => {
                let lot = Lot {
                    qty,
                    entry: price,
                    leverage,
                };
                let margin = lot.margin()?;
                self.margin_held.0.checked_add(margin.0).ok_or(Overflow)?;
                Ok((cash, margin))
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn commit_open(
        &mut self,
        symbol: SymbolId,
        kind: Kind,
        buy: bool,
        qty: Qty,
        price: Price,
        leverage: u32,
        plan: (i128, Money),
    ) {
        let (cash, margin) = plan;
        self.cash = Money(cash);
        self.margin_held = Money(self.margin_held.0 + margin.0);
        let lot = Lot {
            qty,
            entry: price,
            leverage,
        };
        let cost = qty.0 * price.0; // checked in plan_open
        match self.positions.iter_mut().find(|p| p.symbol == symbol) {
            Some(pos) => {
                pos.qty = Qty(pos.qty.0 + qty.0);
                pos.cost = Money(pos.cost.0 + cost);
                pos.margin = Money(pos.margin.0 + margin.0);
                pos.lots.push(lot);
            }
            None => self.positions.push(Position {
                symbol,
                kind,
                long: buy,
                qty,
                cost: Money(cost),
                margin,
                lots: smallvec::smallvec![lot],
            }),
        }
    }
}

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

#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
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

#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Position {
    pub symbol: SymbolId,
    pub kind: Kind,
    pub long: bool,
    /// Total quantity of the lots (positive).
    pub qty: Qty,
    /// Σ entry × qty over the lots, for unrealized PnL without walking them.
    pub cost: Money,
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

#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Portfolio {
    pub cash: Money,
    pub base: Money,
    /// Σ margin held by perp positions.
    pub margin_held: Money,
    /// Open positions in the order they were opened (inline: no pointer chase per
    /// follower on the fan-out for the common one or two symbols).
    pub positions: SmallVec<[Position; 1]>,
    /// Live mode only (always zero/empty in replay): margin reserved by opening copies
    /// still working at the venue, and per symbol what those orders will change.
    pub reserved: Money,
    pub working: Vec<Working>,
}

/// Copy orders of one symbol still working at the venue (live mode).
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Working {
    pub symbol: SymbolId,
    /// Opening copies not yet reported: the symbol counts as open for max_open_trades.
    pub opening: u32,
    /// Σ qty of reduce-only closes not yet reported: later closes size from what is left.
    pub closing: i128,
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
            reserved: Money::ZERO,
            working: Vec::new(),
        }
    }

    fn working_mut(&mut self, symbol: SymbolId) -> &mut Working {
        let i = match self.working.iter().position(|w| w.symbol == symbol) {
            Some(i) => i,
            None => {
                self.working.push(Working {
                    symbol,
                    opening: 0,
                    closing: 0,
                });
                self.working.len() - 1
            }
        };
        &mut self.working[i]
    }

    /// Drop the symbol's entry once nothing of it is working.
    fn tidy_working(&mut self, symbol: SymbolId) {
        self.working
            .retain(|w| w.symbol != symbol || w.opening > 0 || w.closing > 0);
    }

    /// Record an opening copy sent to the venue with `reserve` of margin held for it.
    pub fn open_sent(&mut self, symbol: SymbolId, reserve: Money) -> Result<(), Overflow> {
        self.reserved = self.reserved.checked_add(reserve).ok_or(Overflow)?;
        self.working_mut(symbol).opening += 1;
        Ok(())
    }

    /// Release an opening copy the venue reported (filled, expired or rejected).
    pub fn open_done(&mut self, symbol: SymbolId, reserve: Money) {
        self.reserved = Money(self.reserved.0 - reserve.0);
        let w = self.working_mut(symbol);
        w.opening = w.opening.saturating_sub(1);
        self.tidy_working(symbol);
    }

    /// Record a reduce-only close of `qty` sent to the venue.
    pub fn close_sent(&mut self, symbol: SymbolId, qty: Qty) {
        self.working_mut(symbol).closing += qty.0;
    }

    /// Release a reduce-only close the venue reported.
    pub fn close_done(&mut self, symbol: SymbolId, qty: Qty) {
        let w = self.working_mut(symbol);
        w.closing = (w.closing - qty.0).max(0);
        self.tidy_working(symbol);
    }

    /// The position's signed qty less what working closes will take off it: what a new
    /// close may still reduce.
    pub fn closable(&self, symbol: SymbolId) -> i128 {
        let signed = self.signed_qty(symbol);
        let closing = self
            .working
            .iter()
            .find(|w| w.symbol == symbol)
            .map_or(0, |w| w.closing);
        let left = (signed.abs() - closing).max(0);
        if signed < 0 {
            -left
        } else {
            left
        }
    }

    /// Whether a copy on `symbol` would open a new position (none held, none opening).
    pub fn is_new_symbol(&self, symbol: SymbolId) -> bool {
        self.signed_qty(symbol) == 0
            && !self
                .working
                .iter()
                .any(|w| w.symbol == symbol && w.opening > 0)
    }

    /// Positions held or being opened, for max_open_trades.
    pub fn open_or_opening(&self) -> usize {
        if self.working.is_empty() {
            return self.positions.len();
        }
        let opening = self
            .working
            .iter()
            .filter(|w| w.opening > 0 && self.signed_qty(w.symbol) == 0)
            .count();
        self.positions.len() + opening
    }

    pub fn position(&self, symbol: SymbolId) -> Option<&Position> {
        self.positions.iter().find(|p| p.symbol == symbol)
    }

    pub fn signed_qty(&self, symbol: SymbolId) -> i128 {
        self.position(symbol).map_or(0, Position::signed_qty)
    }

    /// cash + spot value + perp unrealized PnL, marked with `marks[symbol]`.
    pub fn equity(&self, marks: &[Option<Price>]) -> Result<Money, Overflow> {
        self.balances(marks).map(|(equity, _)| equity)
    }

    /// (equity, free cash) in one pass. Free cash is what may back a new order or leave
    /// by withdrawal: cash, less the margin perp lots hold, less what working opening
    /// copies reserve, less open perp losses (an unrealized perp profit is not spendable
    /// until it is realized).
    pub fn balances(&self, marks: &[Option<Price>]) -> Result<(Money, Money), Overflow> {
        if self.positions.is_empty() {
            // no position holds margin or marks to market
            let free = self.cash.0.checked_sub(self.reserved.0).ok_or(Overflow)?;
            return Ok((self.cash, Money(free)));
        }
        let mut equity = self.cash.0;
        let mut perp_pnl: i128 = 0;
        for p in &self.positions {
            // A position exists only after a fill, which sets its symbol's mark.
            let mark = marks[p.symbol.index()].ok_or(Overflow)?;
            let value = p.value(mark).ok_or(Overflow)?;
            equity = equity.checked_add(value).ok_or(Overflow)?;
            if p.kind == Kind::Perp {
                perp_pnl = perp_pnl.checked_add(value).ok_or(Overflow)?;
            }
        }
        let free = self
            .cash
            .0
            .checked_sub(self.margin_held.0)
            .and_then(|f| f.checked_sub(self.reserved.0))
            .and_then(|f| f.checked_add(perp_pnl.min(0)));
        Ok((Money(equity), Money(free.ok_or(Overflow)?)))
    }

    /// Book an execution of `qty` at `price`: consume opposite lots FIFO, open the rest.
    pub fn book_fill(
        &mut self,
        symbol: SymbolId,
        kind: Kind,
        side: Side,
        qty: Qty,
        price: Price,
        leverage: u32,
    ) -> Result<(), Overflow> {
        let buy = side == Side::Buy;
        let at = self.positions.iter().position(|p| p.symbol == symbol);
        let i = match at {
            Some(i) if self.positions[i].long != buy => i,
            _ => {
                let existing = at.map(|i| &self.positions[i]);
                let plan = Self::plan_open(
                    existing,
                    kind,
                    qty,
                    price,
                    leverage,
                    self.cash.0,
                    self.margin_held.0,
                )?;
                self.commit_open(at, symbol, kind, buy, plan);
                return Ok(());
            }
        };
        let r = self.plan_reduction(&self.positions[i], qty, price)?;
        let cash = self.cash.0.checked_add(r.cash_delta).ok_or(Overflow)?;
        let margin_held = self
            .margin_held
            .0
            .checked_add(r.margin_delta)
            .ok_or(Overflow)?;
        // A flip consumed every lot: plan the part that opens the other way from the
        // reduced state too, so the whole fill is checked before anything is written.
        let open = if r.rest.0 > 0 {
            Some(Self::plan_open(
                None,
                kind,
                r.rest,
                price,
                leverage,
                cash,
                margin_held,
            )?)
        } else {
            None
        };
        self.cash = Money(cash);
        self.margin_held = Money(margin_held);
        let pos = &mut self.positions[i];
        pos.lots.drain(..r.whole_lots);
        if let (Some(q), Some(front)) = (r.partial, pos.lots.first_mut()) {
            front.qty = q;
        }
        pos.qty = Qty(pos.qty.0 - (qty.0 - r.rest.0));
        pos.cost = Money(pos.cost.0 + r.cost_delta);
        if pos.qty.0 == 0 {
            self.positions.remove(i);
        }
        if let Some(plan) = open {
            // every lot was consumed and the position removed: the rest opens a new one
            self.commit_open(None, symbol, kind, buy, plan);
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
                    // closing a (never copied) spot short would pay, not receive
                    (Kind::Spot, long) => {
                        if long {
                            exit_value
                        } else {
                            -exit_value
                        }
                    }
                    (Kind::Perp, true) => exit_value - entry_value,
                    (Kind::Perp, false) => entry_value - exit_value,
                })
                .ok_or(Overflow)?;
            if pos.kind == Kind::Perp {
                let before = lot.margin()?;
                let after = Lot {
                    qty: Qty(lot.qty.0 - take),
                    ..*lot
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

    /// Every value opening `qty` writes, computed (checked) before anything is written.
    /// `existing` is the same-direction position being added to; `cash` and `margin_held`
    /// are the values the open starts from (after the reducing part of a flip).
    #[allow(clippy::too_many_arguments)]
    fn plan_open(
        existing: Option<&Position>,
        kind: Kind,
        qty: Qty,
        price: Price,
        leverage: u32,
        cash: i128,
        margin_held: i128,
    ) -> Result<OpenPlan, Overflow> {
        let lot = Lot {
            qty,
            entry: price,
            leverage,
        };
        let notional = qty.notional(price).ok_or(Overflow)?;
        let (cash, lot_margin) = match kind {
            // spot pays the notional now; a perp lot holds margin instead
            Kind::Spot => (cash.checked_sub(notional.0).ok_or(Overflow)?, 0),
            Kind::Perp => (cash, lot.margin()?.0),
        };
        let margin_held = margin_held.checked_add(lot_margin).ok_or(Overflow)?;
        let (pos_qty, pos_cost) = match existing {
            Some(pos) => (
                pos.qty.0.checked_add(qty.0).ok_or(Overflow)?,
                pos.cost.0.checked_add(notional.0).ok_or(Overflow)?,
            ),
            None => (qty.0, notional.0),
        };
        Ok(OpenPlan {
            lot,
            cash: Money(cash),
            margin_held: Money(margin_held),
            pos_qty: Qty(pos_qty),
            pos_cost: Money(pos_cost),
        })
    }

    /// Write an open planned by `plan_open`; `at` is the same-direction position's index.
    fn commit_open(
        &mut self,
        at: Option<usize>,
        symbol: SymbolId,
        kind: Kind,
        buy: bool,
        plan: OpenPlan,
    ) {
        self.cash = plan.cash;
        self.margin_held = plan.margin_held;
        match at.map(|i| &mut self.positions[i]) {
            Some(pos) => {
                pos.qty = plan.pos_qty;
                pos.cost = plan.pos_cost;
                pos.lots.push(plan.lot);
            }
            None => self.positions.push(Position {
                symbol,
                kind,
                long: buy,
                qty: plan.pos_qty,
                cost: plan.pos_cost,
                lots: smallvec::smallvec![plan.lot],
            }),
        }
    }
}

/// The new values of an opening fill (see `Portfolio::plan_open`).
struct OpenPlan {
    lot: Lot,
    cash: Money,
    margin_held: Money,
    pos_qty: Qty,
    pos_cost: Money,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const S: SymbolId = SymbolId::new(0);

    fn margins(pf: &Portfolio) -> i128 {
        pf.positions
            .iter()
            .flat_map(|p| p.lots.iter())
            .filter_map(|l| l.margin().ok())
            .map(|m| m.0)
            .sum()
    }

    /// The aggregates a position keeps agree with its lots.
    fn consistent(pf: &Portfolio, kind: Kind) -> bool {
        let lots_ok = pf.positions.iter().all(|p| {
            p.qty.0 == p.lots.iter().map(|l| l.qty.0).sum::<i128>()
                && p.cost.0 == p.lots.iter().map(|l| l.qty.0 * l.entry.0).sum::<i128>()
                && p.qty.0 > 0
        });
        lots_ok && pf.margin_held.0 == if kind == Kind::Perp { margins(pf) } else { 0 }
    }

    #[test]
    fn a_flip_closes_fifo_then_opens_the_rest() {
        let mut pf = Portfolio::new(Money::from_units(1000));
        let (p, q) = (Price::from_units, Qty::from_units);
        pf.book_fill(S, Kind::Perp, Side::Buy, q(2), p(100), 3)
            .unwrap();
        pf.book_fill(S, Kind::Perp, Side::Buy, q(1), p(130), 3)
            .unwrap();
        // sell 5 at 120: closes 2 @100 (+40) and 1 @130 (-10), opens 2 short @120
        pf.book_fill(S, Kind::Perp, Side::Sell, q(5), p(120), 3)
            .unwrap();
        assert_eq!(pf.cash, Money::from_units(1030));
        assert_eq!(pf.signed_qty(S), -q(2).0);
        // margin of the new short lot: 2 × 120 / 3 = 80
        assert_eq!(pf.margin_held, Money::from_units(80));
        assert!(consistent(&pf, Kind::Perp));
    }

    #[test]
    fn an_overflowing_fill_changes_nothing() {
        let mut pf = Portfolio::new(Money::from_units(1));
        let huge = Qty(i128::MAX / 4);
        pf.book_fill(S, Kind::Perp, Side::Buy, Qty(1), Price(1), 1)
            .unwrap();
        let before = pf.clone();
        assert_eq!(
            pf.book_fill(S, Kind::Perp, Side::Buy, huge, Price(8), 1),
            Err(Overflow)
        );
        assert_eq!(pf, before);
        assert_eq!(
            pf.book_fill(S, Kind::Spot, Side::Buy, huge, Price(8), 1),
            Err(Overflow)
        );
        assert_eq!(pf, before);
        // each lot's notional fits, their sum in the position's cost does not
        let mut pf = Portfolio::new(Money::from_units(1));
        let big = Qty(i128::MAX / 10);
        pf.book_fill(S, Kind::Perp, Side::Buy, big, Price(6), 125)
            .unwrap();
        let before = pf.clone();
        assert_eq!(
            pf.book_fill(S, Kind::Perp, Side::Buy, big, Price(6), 125),
            Err(Overflow)
        );
        assert_eq!(pf, before);
    }

    proptest! {
        #[test]
        fn aggregates_follow_the_lots(fills in prop::collection::vec((any::<bool>(), 1i128..5_000, 1i128..10_000, 1u32..=20), 1..40), perp in any::<bool>()) {
            let kind = if perp { Kind::Perp } else { Kind::Spot };
            let mut pf = Portfolio::new(Money::from_units(1_000_000));
            for (buy, qty, price, lev) in fills {
                let held = pf.signed_qty(S);
                // spot never goes short: a sell is capped at the holding
                let qty = if kind == Kind::Spot && !buy { qty.min(held) } else { qty };
                if qty == 0 { continue; }
                let cash_before = pf.cash.0;
                let side = if buy { Side::Buy } else { Side::Sell };
                pf.book_fill(S, kind, side, Qty(qty), Price(price), if perp { lev } else { 1 }).unwrap();
                prop_assert!(consistent(&pf, kind));
                prop_assert_eq!(pf.signed_qty(S), held + side.sign() * qty);
                if kind == Kind::Spot {
                    prop_assert_eq!(pf.cash.0, cash_before - side.sign() * qty * price);
                }
            }
        }
    }
}

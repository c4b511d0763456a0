//! Profit-share settlements (docs/scenario-format.md "Settlement"): every relationship's
//! new profit above its high watermark is charged at the provider's share, the
//! platform's fee taken from that. They run at the period boundaries the venue clock
//! crosses (`advance_clock`), on request (`settle`: a scenario's `settle` event, an
//! operator in live mode) and for one relationship at its unfollow.
//!
//! A period is settled at the rates in force when it began: a change of a provider's
//! share or of the platform fee waits for the next boundary (`set_profit_share`,
//! `set_platform_fee`), where it takes over after that boundary's settlement.

use std::collections::BTreeSet;

use super::{Engine, Relationship};
use crate::control::Terms;
use crate::fixed::{Factor, Money};
use crate::model::{Platform, ProviderId, Record, RelId};
use crate::settlement::{charge, Period, Schedule, SettleStatus, Settlement};

/// A relationship's settlement state (per relationship, beside `Relationship`).
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Watermark {
    /// H: the allocation at follow, plus deposits, minus withdrawals, raised to the
    /// equity before the fee by each settlement that charges.
    pub high: Money,
    /// Σ charged.
    pub fees_paid: Money,
}

/// The rates an `unfollow` settlement charges at: the provider's share and the
/// platform's fee in force when the unfollow was applied.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rates {
    pub share_pct: Factor,
    pub fee_pct: Factor,
}

/// The schedule's state.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, Default)]
pub struct Settling {
    /// Whether an input's time fixed the schedule's first boundary (the first one after
    /// the first input's time).
    anchored: bool,
    /// The next boundary not yet settled (µs), None without a schedule or before the
    /// first input.
    next_boundary: Option<i64>,
    /// The platform fee from the next boundary on.
    next_fee_pct: Factor,
    /// Every label settled (boundaries and requests, not unfollows): each runs once.
    settled: BTreeSet<String>,
}

impl Settling {
    pub fn new(platform: &Platform) -> Self {
        Self {
            next_fee_pct: platform.platform_fee_pct,
            ..Self::default()
        }
    }
}

impl Engine {
    /// Settle the boundaries the clock reached (called by `advance_clock`, records into
    /// the input's). The first input only fixes the first boundary.
    pub(super) fn cross_boundaries(&mut self, seq: u64) {
        let schedule = self.platform.settlement;
        if !self.settling.anchored {
            self.settling.anchored = true;
            self.settling.next_boundary = schedule.boundary_after(self.now_us);
            return;
        }
        while let Some(b) = self.settling.next_boundary.filter(|&b| b <= self.now_us) {
            let period = schedule.period_ending(b);
            if self.settling.settled.insert(period.to_string()) {
                self.settle_all(seq, &period);
            }
            self.roll_rates();
            self.settling.next_boundary = schedule.boundary_after(b);
        }
    }

    /// The rates that waited for a boundary take over.
    fn roll_rates(&mut self) {
        for p in &mut self.providers {
            p.share_pct = p.next_share_pct;
        }
        self.platform.platform_fee_pct = self.settling.next_fee_pct;
    }

    /// Settle every relationship now, labelled `period`, as input `seq` (stop orders of
    /// the max-loss check that follows carry it). None, and nothing changes, if that
    /// label was settled before; else the records (`records()`).
    pub fn settle(&mut self, seq: u64, period: Period) -> Option<&[Record]> {
        self.file_staged();
        self.begin();
        if !self.settling.settled.insert(period.to_string()) {
            return None;
        }
        self.settle_all(seq, &period);
        Some(&self.out)
    }

    /// One pass over every relationship in follow order (active, paused or stopped);
    /// then the max-loss check of those charged (a fee lowers equity, not base).
    fn settle_all(&mut self, seq: u64, period: &Period) {
        let Engine {
            rels,
            watermarks,
            providers,
            marks,
            platform,
            out,
            loss_hits,
            ..
        } = self;
        let fee = platform.platform_fee_pct;
        loss_hits.clear();
        for (i, slot) in rels.iter_mut().enumerate() {
            let Some(rel) = slot.as_mut() else {
                continue;
            };
            let w = &mut watermarks[i];
            // a portfolio past the money range cannot be valued: nothing to settle
            let Ok((equity, free)) = rel.portfolio.balances(marks) else {
                continue;
            };
            if equity <= w.high {
                continue;
            }
            let share = providers[rel.provider.index()].share_pct;
            let profit = Money(equity.0 - w.high.0);
            let Some(c) = charge(profit, free, share, fee, false) else {
                continue;
            };
            let high_watermark = w.high;
            if c.status == SettleStatus::Charged {
                rel.portfolio.cash = Money(rel.portfolio.cash.0 - c.charged.0);
                w.high = equity;
                w.fees_paid = Money(w.fees_paid.0.saturating_add(c.charged.0));
                if c.charged.0 > 0 {
                    loss_hits.push(RelId::next(i));
                }
            }
            out.push(Record::Settlement(Box::new(Settlement {
                period: period.clone(),
                follower: rel.follower,
                provider: rel.provider,
                equity,
                high_watermark,
                profit,
                charge: c,
            })));
        }
        let charged = std::mem::take(&mut self.loss_hits);
        for &rid in &charged {
            self.check_one(rid);
        }
        self.stop_loss_hits(seq);
    }

    /// The rates in force now for `provider`'s relationships (kept by an unfollow).
    pub(super) fn rates(&self, provider: ProviderId) -> Rates {
        Rates {
            share_pct: self.providers[provider.index()].share_pct,
            fee_pct: self.platform.platform_fee_pct,
        }
    }

    /// At the end of an unfollowed relationship (`rel`, out of the slab: positions
    /// closed, before it ends): settle it alone at `rates` (those in force at the
    /// unfollow, even if a boundary has moved them since), taking what free cash covers.
    /// Nothing without a schedule.
    pub(super) fn settle_unfollow(&mut self, rid: RelId, rel: &mut Relationship, rates: Rates) {
        if self.platform.settlement == Schedule::None {
            return;
        }
        let w = &mut self.watermarks[rid.index()];
        let Ok((equity, free)) = rel.portfolio.balances(&self.marks) else {
            return;
        };
        if equity <= w.high {
            return;
        }
        let profit = Money(equity.0 - w.high.0);
        let Some(c) = charge(profit, free, rates.share_pct, rates.fee_pct, true) else {
            return;
        };
        rel.portfolio.cash = Money(rel.portfolio.cash.0 - c.charged.0);
        let high_watermark = w.high;
        w.high = equity;
        w.fees_paid = Money(w.fees_paid.0.saturating_add(c.charged.0));
        self.out.push(Record::Settlement(Box::new(Settlement {
            period: Period::Unfollow,
            follower: rel.follower,
            provider: rel.provider,
            equity,
            high_watermark,
            profit,
            charge: c,
        })));
    }

    /// Set `provider`'s profit share: in [0, max_profit_share_pct]. It takes effect at
    /// the next period boundary, or at once before the first input or without a
    /// schedule.
    pub fn set_profit_share(&mut self, provider: &str, pct: Factor) -> Result<(), String> {
        let pid = self.provider_id(provider)?;
        let max = self.platform.max_profit_share_pct;
        if pct.0 < 0 {
            return Err("field 'profit_share_pct' must not be negative".into());
        }
        if pct > max {
            return Err(format!(
                "profit_share_pct {pct} is above max_profit_share_pct {max}"
            ));
        }
        let at_once = self.rates_change_at_once();
        let p = &mut self.providers[pid.index()];
        p.next_share_pct = pct;
        if at_once {
            p.share_pct = pct;
        }
        Ok(())
    }

    /// Set the platform fee, in [0, 100]; when it takes effect as for `set_profit_share`.
    pub fn set_platform_fee(&mut self, pct: Factor) -> Result<(), String> {
        if pct.0 < 0 || pct > Factor::HUNDRED {
            return Err("field 'platform_fee_pct' must be in [0, 100]".into());
        }
        self.settling.next_fee_pct = pct;
        if self.rates_change_at_once() {
            self.platform.platform_fee_pct = pct;
        }
        Ok(())
    }

    /// Set the highest share a provider may have, in (0, 100], at once (it bounds the
    /// shares set from now on). Refused below a provider's share, in force or waiting
    /// for the next boundary, naming the first such provider: lower that share first.
    pub fn set_max_profit_share(&mut self, max: Factor) -> Result<(), String> {
        self.check_max_profit_share(max)?;
        self.platform.max_profit_share_pct = max;
        Ok(())
    }

    fn check_max_profit_share(&self, max: Factor) -> Result<(), String> {
        if max.0 <= 0 || max > Factor::HUNDRED {
            return Err("field 'max_profit_share_pct' must be in (0, 100]".into());
        }
        for p in &self.providers {
            let share = p.share_pct.max(p.next_share_pct);
            if share > max {
                return Err(format!(
                    "max_profit_share_pct {max} is below provider '{}''s profit_share_pct {share}",
                    p.name
                ));
            }
        }
        Ok(())
    }

    fn rates_change_at_once(&self) -> bool {
        !self.settling.anchored || self.platform.settlement == Schedule::None
    }

    /// Change the schedule. The next boundary is the new schedule's first after the
    /// current time (after the first input's time, before any input); rates waiting for
    /// a boundary keep waiting (with `none`: they take effect now).
    pub fn set_settlement(&mut self, schedule: Schedule) {
        self.platform.settlement = schedule;
        if self.settling.anchored {
            self.settling.next_boundary = schedule.boundary_after(self.now_us);
        }
        if schedule == Schedule::None {
            self.roll_rates();
        }
    }

    /// Apply a control change of the terms: no records, or the `error` of a refused one
    /// (which changed nothing). A platform change checks the maximum share, sets the fee,
    /// the maximum, then the schedule: a fee given with a first schedule is in force from
    /// its first period.
    pub fn apply_terms(&mut self, terms: &Terms) -> &[Record] {
        self.file_staged();
        self.begin();
        let result = match terms {
            Terms::ProfitShare { provider, pct } => self.set_profit_share(provider, *pct),
            Terms::Platform {
                fee,
                max_share,
                settlement,
            } => max_share
                // checked before anything is set: a refused change changes nothing
                .map_or(Ok(()), |max| self.check_max_profit_share(max))
                .and_then(|()| fee.map_or(Ok(()), |fee| self.set_platform_fee(fee)))
                .and_then(|()| max_share.map_or(Ok(()), |max| self.set_max_profit_share(max)))
                .map(|()| {
                    if let Some(s) = settlement {
                        self.set_settlement(*s);
                    }
                }),
        };
        if let Err(message) = result {
            self.out.push(Record::Error(message));
        }
        &self.out
    }

    /// The schedule, the platform fee in force and the next boundary (µs), if any.
    pub fn settlement_terms(&self) -> (Schedule, Factor, Option<i64>) {
        (
            self.platform.settlement,
            self.platform.platform_fee_pct,
            self.settling.next_boundary,
        )
    }

    /// A provider's share in force and the one from the next boundary.
    pub fn profit_share(&self, provider: &str) -> Result<(Factor, Factor), String> {
        let p = &self.providers[self.provider_id(provider)?.index()];
        Ok((p.share_pct, p.next_share_pct))
    }

    /// Every label settled so far (boundaries and requests), sorted.
    pub fn settled_periods(&self) -> impl Iterator<Item = &str> {
        self.settling.settled.iter().map(String::as_str)
    }
}

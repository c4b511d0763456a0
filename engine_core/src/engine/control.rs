//! Relationships and their control changes: follow, deposit, withdraw, unfollow,
//! pause/resume and settings; and closing every position of one relationship (an
//! unfollow with `stop_copy_on_close`, a max-loss stop).

use super::settle::Rates;
use super::{Engine, Leaving, Relationship, Watermark};
use crate::coid::{follower_hash, ClientOrderId};
use crate::event::{Follow, SettingsChange};
use crate::fixed::{Money, Qty};
use crate::model::{
    CopyOrder, FollowerId, Mode, Record, RelId, Side, SkipReason, Status, SymbolId,
};
use crate::portfolio::Portfolio;
use crate::risk::{check_allocation, stop_line};
use crate::working::WorkingOrder;

impl Engine {
    /// The platform's amount limits (`risk::check_allocation`) for `follower` (`fid`,
    /// None if new); returns the follower's new total.
    fn check_allocation(
        &self,
        follower: &str,
        fid: Option<FollowerId>,
        new_base: Money,
        added: Money,
    ) -> Result<Money, String> {
        let before = fid.map_or(Money::ZERO, |f| self.follower_totals[f.index()]);
        check_allocation(&self.platform, follower, before, new_base, added)
    }

    pub(super) fn follow(&mut self, f: &Follow) -> Result<(), String> {
        let pid = self.provider_id(&f.provider)?;
        let fid = self.follower_ids.get(&f.follower).copied();
        if fid.is_some_and(|fid| self.rel_ids.contains_key(&(fid, pid))) {
            return Err(format!("'{}' already follows '{}'", f.follower, f.provider));
        }
        // An unfollow waiting for its orders has not settled yet: the pair's money is
        // still in it (the ledger's account of the pair is not empty).
        if fid.is_some_and(|fid| {
            self.ended
                .values()
                .any(|l| l.rel.follower == fid && l.rel.provider == pid)
        }) {
            return Err(format!(
                "'{}' is still leaving '{}': its orders are working",
                f.follower, f.provider
            ));
        }
        if f.settings.mode == Mode::FixedAmount && f.settings.fixed_amount.is_none() {
            return Err("mode fixed_amount needs fixed_amount".into());
        }
        let total = self.check_allocation(&f.follower, fid, f.allocation, f.allocation)?;
        let fid = fid.unwrap_or_else(|| {
            let id = FollowerId::next(self.followers.len());
            self.followers.push(f.follower.clone());
            self.follower_ids.insert(f.follower.clone(), id);
            self.follower_totals.push(Money::ZERO);
            id
        });
        let rid = RelId::next(self.rels.len());
        let settings = f.settings.clone();
        self.rels.push(Some(Relationship {
            stop_at: stop_line(f.allocation, f.settings.max_loss_pct),
            follower: fid,
            follower_hash: follower_hash(&f.follower),
            provider: pid,
            settings,
            status: Status::Active,
            portfolio: Portfolio::new(f.allocation),
        }));
        self.watermarks.push(Watermark {
            high: f.allocation,
            fees_paid: Money::ZERO,
        });
        self.rel_ids.insert((fid, pid), rid);
        self.providers[pid.index()].book.push(rid);
        self.follower_totals[fid.index()] = total;
        Ok(())
    }

    pub(super) fn deposit(
        &mut self,
        follower: &str,
        provider: &str,
        amount: Money,
    ) -> Result<(), String> {
        let rid = self.rel_id(follower, provider)?;
        let rel = self.rel(rid);
        let fid = rel.follower;
        let base = rel
            .portfolio
            .base
            .checked_add(amount)
            .ok_or("arithmetic overflow")?;
        let cash = rel
            .portfolio
            .cash
            .checked_add(amount)
            .ok_or("arithmetic overflow")?;
        let total = self.check_allocation(follower, Some(fid), base, amount)?;
        let rel = self.rel_mut(rid);
        rel.portfolio.base = base;
        rel.portfolio.cash = cash;
        rel.stop_at = stop_line(base, rel.settings.max_loss_pct);
        self.follower_totals[fid.index()] = total;
        // money in is not profit: the watermark moves with it (saturating: past the
        // money range no equity can reach it anyway)
        let w = &mut self.watermarks[rid.index()];
        w.high = Money(w.high.0.saturating_add(amount.0));
        self.check_one(rid);
        Ok(())
    }

    pub(super) fn withdraw(
        &mut self,
        follower: &str,
        provider: &str,
        amount: Money,
    ) -> Result<(), String> {
        let rid = self.rel_id(follower, provider)?;
        let (_, free) = self
            .rel(rid)
            .portfolio
            .balances(&self.marks)
            .map_err(|_| "arithmetic overflow")?;
        if amount > free {
            return Err(format!("withdrawal {amount} is above free cash {free}"));
        }
        let rel = self.rel(rid);
        let fid = rel.follower;
        let overflow = || "arithmetic overflow".to_string();
        // cash ≥ free ≥ amount, so only base and the total can leave the range
        let base = rel
            .portfolio
            .base
            .checked_sub(amount)
            .ok_or_else(overflow)?;
        let total = self.follower_totals[fid.index()]
            .checked_sub(amount)
            .ok_or_else(overflow)?;
        let rel = self.rel_mut(rid);
        rel.portfolio.cash = Money(rel.portfolio.cash.0 - amount.0);
        rel.portfolio.base = base;
        rel.stop_at = stop_line(base, rel.settings.max_loss_pct);
        self.follower_totals[fid.index()] = total;
        let w = &mut self.watermarks[rid.index()];
        w.high = Money(w.high.0.saturating_sub(amount.0));
        self.check_one(rid);
        Ok(())
    }

    pub(super) fn unfollow(
        &mut self,
        seq: u64,
        follower: &str,
        provider: &str,
    ) -> Result<(), String> {
        let rid = self.rel_id(follower, provider)?;
        let rel = self.rel(rid);
        let (fid, pid) = (rel.follower, rel.provider);
        let total = self.follower_totals[fid.index()]
            .checked_sub(rel.portfolio.base)
            .ok_or("arithmetic overflow")?;
        if rel.settings.stop_copy_on_close {
            self.close_everything(seq, rid, b"u");
        }
        let mut rel = self.rels[rid.index()]
            .take()
            .expect("rel ids point at live relationships");
        self.rel_ids.remove(&(fid, pid));
        self.providers[pid.index()].book.retain(|&r| r != rid);
        self.follower_totals[fid.index()] = total;
        let rates = self.rates(pid);
        if rel.portfolio.working.is_empty() {
            self.end_relationship(rid, rel, rates);
        } else {
            // Live mode, orders working (the closes just sent, opening copies): it leaves
            // every book now; it settles and ends when the last of them is reported
            // (`drop_if_drained`), at the state they leave and at the rates in force now.
            // A late opening fill is closed again.
            rel.status = Status::Stopped;
            self.ended.insert(rid, Leaving { rel, rates });
        }
        Ok(())
    }

    /// The end of an unfollowed relationship, its positions closed (or what the venue
    /// left of them): settle it (`unfollow`, at `rates`: those in force at the unfollow),
    /// count it into its provider's standing and report it (`finished`).
    pub(super) fn end_relationship(&mut self, rid: RelId, mut rel: Relationship, rates: Rates) {
        self.settle_unfollow(rid, &mut rel, rates);
        self.end_standing(&rel);
        let view = self.view(&rel, rid);
        self.finished.push(view);
    }

    /// `pause` (true) or `resume` (false) a relationship.
    pub(super) fn pause(
        &mut self,
        follower: &str,
        provider: &str,
        pause: bool,
    ) -> Result<(), String> {
        let rid = self.rel_id(follower, provider)?;
        let rel = self.rel_mut(rid);
        rel.status = match (rel.status, pause) {
            (Status::Stopped, _) => {
                return Err(format!("'{follower}' copying '{provider}' is stopped"));
            }
            (Status::Paused, true) => {
                return Err(format!(
                    "'{follower}' copying '{provider}' is already paused"
                ));
            }
            (Status::Active, false) => {
                return Err(format!("'{follower}' copying '{provider}' is not paused"));
            }
            (_, true) => Status::Paused,
            (_, false) => Status::Active,
        };
        Ok(())
    }

    /// Change some of a relationship's copy settings; the others stay.
    pub(super) fn settings(
        &mut self,
        follower: &str,
        provider: &str,
        change: &SettingsChange,
    ) -> Result<(), String> {
        let rid = self.rel_id(follower, provider)?;
        let rel = self.rel_mut(rid);
        let settings = change.overlay(&rel.settings);
        if settings.mode == Mode::FixedAmount && settings.fixed_amount.is_none() {
            return Err("mode fixed_amount needs fixed_amount".into());
        }
        rel.stop_at = stop_line(rel.portfolio.base, settings.max_loss_pct);
        rel.settings = settings;
        self.check_one(rid);
        Ok(())
    }

    /// Close every position of `rid` at its mark with reduce-only market orders.
    pub(super) fn close_everything(&mut self, seq: u64, rid: RelId, tag: &[u8]) {
        let Engine {
            rels,
            providers,
            instruments,
            marks,
            out,
            staged,
            live,
            ..
        } = self;
        let Some(rel) = rels[rid.index()].as_mut() else {
            return;
        };
        let (follower, provider) = (rel.follower, rel.provider);
        let seq_text = seq.to_string();
        let open: Vec<(SymbolId, i128)> = rel
            .portfolio
            .positions
            .iter()
            .map(|p| (p.symbol, rel.portfolio.closable(p.symbol)))
            .filter(|&(_, q)| q != 0)
            .collect();
        for (sid, signed) in open {
            let inst = &instruments[sid.index()];
            let side = if signed > 0 { Side::Sell } else { Side::Buy };
            let qty = if *live {
                inst.reportable(Qty(signed.abs()))
            } else {
                Qty(signed.abs())
            };
            let mark = marks[sid.index()].expect("a position's symbol has a mark");
            if !*live
                && rel
                    .portfolio
                    .book_fill(sid, inst.kind, side, qty, mark, 1)
                    .is_err()
            {
                out.push(Record::Skip {
                    follower,
                    provider,
                    reason: SkipReason::Overflow,
                });
                continue;
            }
            let id = ClientOrderId::new(
                &[
                    tag,
                    providers[provider.index()].name.as_bytes(),
                    seq_text.as_bytes(),
                    inst.symbol.as_bytes(),
                ],
                rel.follower_hash,
            );
            if *live {
                rel.portfolio.close_sent(sid, qty);
                staged.push((id.0, WorkingOrder::close(rid, sid, side, qty)));
            }
            out.push(Record::Order(CopyOrder::close(
                follower, provider, sid, side, qty, id,
            )));
        }
    }
}

//! The venue's answers to copy orders (live mode): fill reports and rejects move the
//! relationship's portfolio and release what the order held; and the working-order
//! table they are looked up in.

use std::collections::HashMap;

use super::{Engine, Leaving, Relationship};
use crate::coid::ClientOrderId;
use crate::fixed::{Price, Qty};
use crate::model::{CopyOrder, OrderType, Record, RejectReason, RelId, Side, Status};
use crate::working::WorkingOrder;

impl Engine {
    /// How many working orders there are (filed or staged).
    pub fn working_count(&self) -> usize {
        self.working.len() + self.staged.len()
    }

    /// The working order `id`, filed or staged.
    pub fn working_order(&self, id: ClientOrderId) -> Option<&WorkingOrder> {
        let staged = || self.staged.iter().rev().find(|(k, _)| *k == id.0);
        staged().map(|(_, p)| p).or_else(|| self.working.get(id.0))
    }

    /// File the last event's staged orders into the working-order table. Every call
    /// that reads the table does it first; the daemon calls it once the `orders` frame is
    /// sent, so that a fan-out's 10,000 table inserts (cache misses, most of them) are not
    /// between the execution and its copy orders.
    pub fn file_staged(&mut self) {
        for (id, p) in self.staged.drain(..) {
            self.working.insert(id, p);
        }
    }

    /// Every working copy order as an order record, sorted by relationship then id: what
    /// to send again after a reconnect (the venue answers `duplicate` for those it has).
    pub fn resend_working(&mut self) -> &[Record] {
        self.file_staged();
        self.begin();
        let mut all: Vec<(u128, WorkingOrder)> = self.working.iter().collect();
        all.sort_unstable_by_key(|(id, p)| (p.rel, *id));
        for (id, p) in all {
            let Some(rel) = self.rels[p.rel.index()]
                .as_ref()
                .or_else(|| self.ended.get(&p.rel).map(|l| &l.rel))
            else {
                continue;
            };
            self.out.push(Record::Order(CopyOrder {
                follower: rel.follower,
                provider: rel.provider,
                symbol: p.symbol,
                side: p.side,
                order_type: if p.reduce_only {
                    OrderType::Market
                } else {
                    OrderType::LimitIoc
                },
                qty: p.qty,
                limit: p.limit,
                reduce_only: p.reduce_only,
                clamped: None,
                client_order_id: ClientOrderId(id),
            }));
        }
        &self.out
    }

    /// Apply the venue's fill reports `(client order id, qty, price)`; a bad report is an
    /// `error` record and changes nothing, the others still apply.
    pub fn copy_fills<'a>(
        &mut self,
        seq: u64,
        fills: impl IntoIterator<Item = (&'a str, &'a str, &'a str)>,
    ) -> &[Record] {
        self.file_staged();
        self.begin();
        self.loss_hits.clear();
        let mut touched = Vec::new();
        for (id, qty, price) in fills {
            match self.copy_fill(id, qty, price) {
                Ok(rid) => touched.push(rid),
                Err(m) => self.out.push(Record::Error(m)),
            }
        }
        // Max-loss looks at the state after the whole message, as for any other input.
        touched.sort_unstable();
        touched.dedup();
        for rid in touched {
            self.check_one(rid);
        }
        self.stop_loss_hits(seq);
        &self.out
    }

    /// Apply the venue's rejects `(client order id, reason)`.
    pub fn copy_rejects<'a>(
        &mut self,
        seq: u64,
        rejects: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> &[Record] {
        self.file_staged();
        self.begin();
        self.loss_hits.clear();
        for (id, reason) in rejects {
            if let Err(m) = self.copy_reject(id, reason) {
                self.out.push(Record::Error(m));
            }
        }
        self.stop_loss_hits(seq);
        &self.out
    }

    /// Apply one fill report; returns the relationship it moved.
    fn copy_fill(&mut self, coid: &str, qty_text: &str, price_text: &str) -> Result<RelId, String> {
        let id = ClientOrderId::parse(coid).ok_or_else(|| format!("unknown order '{coid}'"))?;
        let p = *self
            .working
            .get(id.0)
            .ok_or_else(|| format!("unknown order '{coid}'"))?;
        let qty = Qty::parse(qty_text)
            .ok()
            .filter(|q| (0..=p.qty.0).contains(&q.0))
            .ok_or_else(|| {
                format!(
                    "fill qty '{qty_text}' of order '{coid}' is not within 0..={}",
                    p.qty
                )
            })?;
        let price = Price::parse(price_text)
            .ok()
            .filter(|x| x.0 > 0)
            .ok_or_else(|| {
                format!("fill price '{price_text}' of order '{coid}' is not a positive decimal")
            })?;
        let inst = &self.instruments[p.symbol.index()];
        if !inst.on_step(qty) {
            return Err(format!(
                "fill qty {qty} of order '{coid}' is not a multiple of step {}",
                inst.step
            ));
        }
        let kind = inst.kind;
        let cut = inst.reportable(Qty(i128::MAX));
        let (sid, rid) = (p.symbol, p.rel);
        let rel = owner(&mut self.rels, &mut self.ended, rid);
        let provider_pos = self.providers[rel.provider.index()].positions[sid.index()];
        // Whether the relationship still copies a position on the side of `sign`.
        let copies = |rel: &Relationship, sign: i128| {
            rel.status != Status::Stopped && provider_pos.signum() == sign
        };
        let overflow = |_| format!("fill of order '{coid}': arithmetic overflow");
        // A close to send now, following this report (on its side, of its qty).
        let follow_up = if p.reduce_only {
            // A close never flips: it reduces at most what is held, on the reducing side.
            let held = rel.portfolio.signed_qty(sid);
            let q = if held != 0 && (held > 0) != (p.side == Side::Buy) {
                qty.0.min(held.abs())
            } else {
                0
            };
            if q > 0 {
                rel.portfolio
                    .book_fill(sid, kind, p.side, Qty(q), price, 1)
                    .map_err(overflow)?;
            }
            rel.portfolio.close_done(sid, p.qty);
            self.working.remove(id.0);
            // A close cut to the most one order carries, when nothing else will close
            // the rest (the relationship stopped or ended, or the provider no longer
            // holds that side): the next part goes out now.
            let rest = rel.portfolio.closable(sid);
            let side = if rest > 0 { Side::Sell } else { Side::Buy };
            (p.qty == cut && q > 0 && rest != 0 && !copies(rel, rest.signum()))
                .then(|| (side, Qty(rest.abs().min(cut.0))))
        } else {
            if qty.0 > 0 {
                rel.portfolio
                    .book_fill(sid, kind, p.side, qty, price, p.leverage)
                    .map_err(overflow)?;
            }
            rel.portfolio.open_done(sid, p.reserve);
            self.working.remove(id.0);
            // A late fill: the relationship stopped, or the provider no longer holds what
            // was copied. Close what it added at once, only on the side it added to.
            let closable = rel.portfolio.closable(sid);
            let q = if closable.signum() == p.side.sign() {
                qty.0.min(closable.abs())
            } else {
                0
            };
            (q > 0 && !copies(rel, p.side.sign())).then(|| (p.side.opposite(), Qty(q)))
        };
        if let Some((side, q)) = follow_up {
            // id: "l" + the reported order's id (docs/protocol.md, live mode)
            let next = ClientOrderId::new(&[b"l", &id.to_bytes()], rel.follower_hash);
            rel.portfolio.close_sent(sid, q);
            self.working
                .insert(next.0, WorkingOrder::close(rid, sid, side, q));
            self.out.push(Record::Order(CopyOrder::close(
                rel.follower,
                rel.provider,
                sid,
                side,
                q,
                next,
            )));
        }
        self.drop_if_drained(rid);
        Ok(rid)
    }

    fn copy_reject(&mut self, coid: &str, reason_text: &str) -> Result<(), String> {
        let reason = RejectReason::parse(reason_text)
            .ok_or_else(|| format!("unknown reject reason '{reason_text}'"))?;
        // `duplicate` leaves a working order working; for an order that is not working
        // (after a restart its report was applied again from the log) it says nothing new.
        if reason == RejectReason::Duplicate {
            return Ok(());
        }
        let Some(p) = ClientOrderId::parse(coid).and_then(|id| self.working.remove(id.0)) else {
            return Err(format!("unknown order '{coid}'"));
        };
        let rel = owner(&mut self.rels, &mut self.ended, p.rel);
        if p.reduce_only {
            rel.portfolio.close_done(p.symbol, p.qty);
        } else {
            rel.portfolio.open_done(p.symbol, p.reserve);
        }
        self.drop_if_drained(p.rel);
        Ok(())
    }

    /// Once none of an unfollowed relationship's orders is working: settle it at the
    /// state they left and end it (`end_relationship`).
    fn drop_if_drained(&mut self, rid: RelId) {
        if self
            .ended
            .get(&rid)
            .is_some_and(|l| l.rel.portfolio.working.is_empty())
        {
            if let Some(Leaving { rel, rates }) = self.ended.remove(&rid) {
                self.end_relationship(rid, rel, rates);
            }
        }
    }
}

/// The relationship a working order belongs to: a live one, or one unfollowed whose
/// orders are still working.
fn owner<'a>(
    rels: &'a mut [Option<Relationship>],
    ended: &'a mut HashMap<RelId, Leaving>,
    rid: RelId,
) -> &'a mut Relationship {
    match rels[rid.index()].as_mut() {
        Some(rel) => rel,
        None => {
            &mut ended
                .get_mut(&rid)
                .expect("a working order's relationship is live or ended")
                .rel
        }
    }
}

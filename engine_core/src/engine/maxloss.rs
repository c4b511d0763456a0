//! Max-loss during one event: the relationships an event may have moved are checked
//! against their line (`risk::breaches`), collected in `loss_hits`, and stopped together
//! at the end of the event in global follow order.

use super::Engine;
use crate::model::{ProviderId, Record, RelId, Status, SymbolId};
use crate::risk::NO_STOP;

impl Engine {
    /// Check one relationship against its max-loss line.
    pub(super) fn check_one(&mut self, rid: RelId) {
        let Some(rel) = self.rels[rid.index()].as_ref() else {
            return; // ended: max-loss no longer applies
        };
        if rel.breaches(&self.marks) {
            self.loss_hits.push(rid);
        }
    }

    /// Check the relationships that may hold `sid` after its mark moved, except the
    /// active ones of `skip`'s book (its fan-out checked them; not its paused ones).
    pub(super) fn check_holders(&mut self, sid: SymbolId, skip: Option<ProviderId>) {
        let Engine {
            symbol_providers,
            providers,
            rels,
            marks,
            loss_hits,
            ..
        } = self;
        for &pid in &symbol_providers[sid.index()] {
            let fanned_out = Some(pid) == skip;
            for &rid in &providers[pid.index()].book {
                let Some(rel) = rels[rid.index()].as_ref() else {
                    continue;
                };
                if fanned_out && rel.status != Status::Paused {
                    continue;
                }
                if rel.stop_at != NO_STOP
                    && rel.portfolio.signed_qty(sid) != 0
                    && rel.breaches(marks)
                {
                    loss_hits.push(rid);
                }
            }
        }
    }

    /// Stop the relationships found below their max-loss line, in global follow order.
    ///
    /// Equal to checking every active relationship after every event: a relationship is
    /// above its line after each event, so only those whose equity or base changed (the
    /// ones the event touched, or that hold a symbol whose mark moved) can cross it.
    pub(super) fn stop_loss_hits(&mut self, seq: u64) {
        if self.loss_hits.is_empty() {
            return;
        }
        let mut hits = std::mem::take(&mut self.loss_hits);
        hits.sort_unstable();
        hits.dedup();
        for &rid in &hits {
            let rel = self.rel_mut(rid);
            rel.status = Status::Stopped;
            let (follower, provider) = (rel.follower, rel.provider);
            self.out.push(Record::Stop { follower, provider });
            self.close_everything(seq, rid, b"s");
        }
        hits.clear();
        self.loss_hits = hits;
    }
}

//! A provider's standing with its copiers: the figures of the statistics that come from
//! the follower books, not from the provider's own trades (issue #14, "Now, not per
//! period"). Computed from the state on demand: the books are walked once per provider,
//! so no sum is ever multiplied by a join of trades with relationships.

use super::{Engine, Relationship};
use crate::fixed::Money;
use crate::model::{ProviderId, Status};

/// Followers, AUM and copiers' PnL of one provider at the latest marks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Standing {
    /// Relationships active or paused.
    pub followers: u64,
    /// Σ equity of those relationships.
    pub aum: Money,
    /// Σ (equity − base) over every relationship ever opened on the provider, an ended
    /// one taken at the moment it ended.
    pub copiers_pnl: Money,
}

impl Engine {
    /// The standing of every provider, in provider order. `Err` names a provider whose
    /// sums leave the money range (they cannot be shown exactly).
    pub fn standings(&self) -> Result<Vec<(&str, Standing)>, String> {
        self.providers
            .iter()
            .enumerate()
            .map(|(i, p)| {
                self.standing(ProviderId::next(i))
                    .map(|s| (p.name.as_str(), s))
                    .ok_or_else(|| format!("arithmetic overflow in the standing of '{}'", p.name))
            })
            .collect()
    }

    fn standing(&self, pid: ProviderId) -> Option<Standing> {
        let p = &self.providers[pid.index()];
        let mut s = Standing {
            copiers_pnl: p.ended_pnl,
            ..Standing::default()
        };
        for &rid in &p.book {
            let rel = self.rel(rid);
            let equity = rel.portfolio.equity(&self.marks).ok()?;
            if rel.status != Status::Stopped {
                s.followers += 1;
                s.aum = Money(s.aum.0.checked_add(equity.0)?);
            }
            let pnl = equity.0.checked_sub(rel.portfolio.base.0)?;
            s.copiers_pnl = Money(s.copiers_pnl.0.checked_add(pnl)?);
        }
        Some(s)
    }

    /// Count a relationship that ends (at unfollow, after its positions are closed) into
    /// its provider's copiers' PnL, at its equity then.
    pub(super) fn end_standing(&mut self, rel: &Relationship) {
        // A portfolio whose equity cannot be computed has no PnL to show; the sum
        // saturates rather than fail an unfollow that the rules allow.
        if let Ok(equity) = rel.portfolio.equity(&self.marks) {
            let pnl = equity.0.saturating_sub(rel.portfolio.base.0);
            let ended = &mut self.providers[rel.provider.index()].ended_pnl;
            ended.0 = ended.0.saturating_add(pnl);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::event::parse_event;
    use crate::scenario;

    fn engine_after(events: &[&str]) -> crate::engine::Engine {
        let text = r#"{"instruments":[{"symbol":"BTC","kind":"spot","tick":"0.01","step":"0.001","min_qty":"0","min_notional":"0"}],
            "providers":[{"id":"p"},{"id":"q"}],"events":[]}"#;
        let mut engine = scenario::parse(text).unwrap().engine;
        for (i, e) in events.iter().enumerate() {
            let ev = parse_event(&serde_json::from_str(e).unwrap()).unwrap();
            let recs = engine.apply(i as u64, &ev);
            assert!(
                !recs
                    .iter()
                    .any(|r| matches!(r, crate::model::Record::Error(_))),
                "{e}: {recs:?}"
            );
        }
        engine
    }

    #[test]
    fn standing_counts_each_relationship_once_and_ended_ones_at_their_end() {
        let e = engine_after(&[
            r#"{"type":"follow","follower":"a","provider":"p","allocation":"1000"}"#,
            r#"{"type":"follow","follower":"b","provider":"p","allocation":"500"}"#,
            r#"{"type":"fill","provider":"p","exec_id":"1","symbol":"BTC","side":"buy","qty":"1","price":"100","provider_equity":"1000"}"#,
            r#"{"type":"mark","symbol":"BTC","price":"110"}"#,
            r#"{"type":"unfollow","follower":"b","provider":"p"}"#,
            r#"{"type":"mark","symbol":"BTC","price":"120"}"#,
            r#"{"type":"pause","follower":"a","provider":"p"}"#,
        ]);
        let s = e.standings().unwrap();
        assert_eq!(s[0].0, "p");
        // a copies 1 BTC at 100 (1 × 1000 / 1000): equity 900 + 120 = 1020, pnl 20;
        // b copies 0.5, unfollowed at 110: pnl 5, kept although b is gone
        assert_eq!(s[0].1.followers, 1);
        assert_eq!(s[0].1.aum.to_string(), "1020");
        assert_eq!(s[0].1.copiers_pnl.to_string(), "25");
        assert_eq!(s[1].1, super::Standing::default());
    }
}

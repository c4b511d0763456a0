//! The deterministic state machine: one input event in, its outcome records out.
//!
//! State is plain tables indexed by small integer ids. A provider execution walks the
//! provider's follower book once per leg; every copy is sized and recorded. In replay
//! mode it is filled at the provider's price before the next follower; in live mode (the
//! daemon) it reserves what it may cost and stays working until the venue reports it
//! (`copy_fills`, `copy_rejects`; the rules are in `pyservice/PROTOCOL.md`).

use std::collections::{HashMap, HashSet};

use crate::coid::{follower_hash, source_hash, ClientOrderId};
use crate::event::{Event, Follow, ProviderFill, SettingsChange};
use crate::exact::{mul_div_ceil, mul_div_floor};
use crate::fixed::{Factor, Money, Price, Qty};
use crate::model::{
    is_reportable, CopyOrder, CopySettings, FollowerId, Instrument, Kind, Mode, OrderType,
    Platform, ProviderId, Record, RelId, Side, SkipReason, Status, SymbolId,
};
use crate::pending::{Pending, PendingTable};
use crate::portfolio::{Lot, Portfolio};
use crate::sizing::{close_share, limit_price, size_open, OpenLeg, Sized};

#[derive(serde::Serialize, serde::Deserialize, Debug, Clone)]
pub struct Relationship {
    /// The highest equity at which max-loss stops it: `floor(base × (1 − pct/100))`
    /// (equity is a whole number of raw units, so `equity ≤ line ⟺ equity ≤ floor(line)`),
    /// or `NO_STOP` without a max-loss setting. Kept current whenever `base` moves, so the
    /// fan-out compares one integer.
    pub stop_at: Money,
    pub follower: FollowerId,
    /// The follower's half of every client order id (see `coid`).
    pub follower_hash: u128,
    pub provider: ProviderId,
    pub settings: CopySettings,
    pub status: Status,
    pub portfolio: Portfolio,
}

#[derive(serde::Serialize, serde::Deserialize, Debug, Default)]
struct Provider {
    name: String,
    /// Active and stopped relationships, in follow order.
    book: Vec<RelId>,
    /// Signed position per symbol (raw qty).
    positions: Vec<i128>,
    exec_ids: HashSet<String>,
}

/// A portfolio as reported at the end of a replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortfolioView {
    pub follower: String,
    pub provider: String,
    pub status: Status,
    pub cash: Money,
    pub equity: Option<Money>,
    pub positions: Vec<(String, Qty)>,
    /// Net money in: the allocation plus deposits minus withdrawals.
    pub base: Money,
    /// Every position's FIFO lots, oldest first, with the position's symbol and side.
    pub lots: Vec<(String, bool, Lot)>,
    /// Margin reserved by working opening copies (live mode; zero in replay).
    pub reserved: Money,
}

/// Snapshot header: the format and the engine's rules version; bump it with either.
const SNAPSHOT_MAGIC: &[u8] = b"copyengine-snapshot-1\n";

#[derive(serde::Serialize, serde::Deserialize, Debug)]
pub struct Engine {
    instruments: Vec<Instrument>,
    symbol_ids: HashMap<String, SymbolId>,
    marks: Vec<Option<Price>>,
    providers: Vec<Provider>,
    provider_ids: HashMap<String, ProviderId>,
    followers: Vec<String>,
    follower_ids: HashMap<String, FollowerId>,
    /// Σ base of each follower's relationships, for `max_total_per_follower`.
    follower_totals: Vec<Money>,
    /// Slab of relationships; the index order is the global follow order.
    rels: Vec<Option<Relationship>>,
    rel_ids: HashMap<(FollowerId, ProviderId), RelId>,
    /// Per symbol, the providers that ever traded it: their books hold every relationship
    /// that can hold the symbol, so a mark move is checked against those books only.
    symbol_providers: Vec<Vec<ProviderId>>,
    /// Relationships found at or below their max-loss line during the current event.
    #[serde(skip)]
    loss_hits: Vec<RelId>,
    platform: Platform,
    #[serde(skip)]
    out: Vec<Record>,
    /// Live mode: copies wait for the venue's report instead of filling at once.
    live: bool,
    /// Live mode: copy orders sent and not yet reported, by client order id.
    pending: PendingTable,
    /// Live mode: unfollowed relationships whose orders are still working. Their reports
    /// still move their portfolio (a late open is closed again); once the last one is
    /// reported the relationship is dropped.
    ended: HashMap<RelId, Relationship>,
    /// Live mode: the working orders of the last event, not yet in `pending` (see
    /// `file_working`). Empty in every snapshot.
    #[serde(skip)]
    staged: Vec<(u128, Pending)>,
    /// How fan-outs use the second thread (not part of the state).
    #[serde(skip)]
    threads: Threads,
}

/// Whether fan-outs stay on the calling thread (tests compare that with two), and the
/// buffers of their parts, kept between fan-outs: a fresh buffer per part per fan-out
/// costs page faults, from two threads' malloc arenas.
#[derive(Debug, Default)]
struct Threads {
    one: bool,
    spare: Vec<Visited>,
}

/// How the venue answered a copy order it did not fill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    InsufficientFunds,
    Expired,
    ReduceOnly,
    /// The venue already has the order: it stays working (its report is in the log).
    Duplicate,
    Invalid,
}

impl RejectReason {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "insufficient_funds" => Self::InsufficientFunds,
            "expired" => Self::Expired,
            "reduce_only" => Self::ReduceOnly,
            "duplicate" => Self::Duplicate,
            "invalid" => Self::Invalid,
            _ => return None,
        })
    }
}

impl Engine {
    /// The whole state as bytes (crash recovery starts from the newest snapshot and
    /// replays only what came after it). The format is private to this build's version
    /// of the engine: `restore` refuses another.
    pub fn snapshot(&mut self) -> Result<Vec<u8>, String> {
        self.file_working();
        let mut out = SNAPSHOT_MAGIC.to_vec();
        bincode::serialize_into(&mut out, self).map_err(|e| format!("snapshot failed: {e}"))?;
        Ok(out)
    }

    pub fn restore(bytes: &[u8]) -> Result<Engine, String> {
        let body = bytes
            .strip_prefix(SNAPSHOT_MAGIC)
            .ok_or("not a snapshot of this engine version")?;
        bincode::deserialize(body).map_err(|e| format!("corrupt snapshot: {e}"))
    }

    /// A new engine over validated instruments (unique symbols) and provider names (unique).
    pub fn new(instruments: Vec<Instrument>, providers: Vec<String>, platform: Platform) -> Self {
        let symbol_ids = instruments
            .iter()
            .enumerate()
            .map(|(i, x)| (x.symbol.clone(), i as SymbolId))
            .collect();
        let provider_ids = providers
            .iter()
            .enumerate()
            .map(|(i, p)| (p.clone(), i as ProviderId))
            .collect();
        let n_sym = instruments.len();
        let providers = providers
            .into_iter()
            .map(|name| Provider {
                name,
                positions: vec![0; n_sym],
                ..Provider::default()
            })
            .collect();
        Self {
            marks: vec![None; n_sym],
            instruments,
            symbol_ids,
            providers,
            provider_ids,
            followers: Vec::new(),
            follower_ids: HashMap::new(),
            follower_totals: Vec::new(),
            rels: Vec::new(),
            ended: HashMap::new(),
            rel_ids: HashMap::new(),
            symbol_providers: vec![Vec::new(); n_sym],
            loss_hits: Vec::new(),
            platform,
            out: Vec::new(),
            live: false,
            pending: PendingTable::default(),
            staged: Vec::new(),
            threads: Threads::default(),
        }
    }

    /// The same engine in live mode (see the module comment).
    pub fn into_live(mut self) -> Self {
        self.live = true;
        self
    }

    /// The same engine with every fan-out on the calling thread (see `parallel`).
    pub fn one_thread(mut self) -> Self {
        self.threads.one = true;
        self
    }

    /// Whether big batches run on two threads (see `one_thread`).
    pub fn is_parallel(&self) -> bool {
        !self.threads.one
    }

    pub fn is_live(&self) -> bool {
        self.live
    }

    /// Copy orders working at the venue.
    pub fn pending_orders(&self) -> usize {
        self.pending.len() + self.staged.len()
    }

    pub fn pending(&self, id: ClientOrderId) -> Option<&Pending> {
        let staged = || self.staged.iter().rev().find(|(k, _)| *k == id.0);
        staged().map(|(_, p)| p).or_else(|| self.pending.get(id.0))
    }

    /// File the last event's working orders into the working-order table. Every call
    /// that reads the table does it first; the daemon calls it once the `orders` frame is
    /// sent, so that a fan-out's 10,000 table inserts (cache misses, most of them) are not
    /// between the execution and its copy orders.
    pub fn file_working(&mut self) {
        for (id, p) in self.staged.drain(..) {
            self.pending.insert(id, p);
        }
    }

    /// Every working copy order as an order record, sorted by relationship then id: what
    /// to send again after a reconnect (the venue answers `duplicate` for those it has).
    pub fn working_orders(&mut self) -> &[Record] {
        self.file_working();
        self.out.clear();
        let mut all: Vec<(u128, Pending)> = self.pending.iter().collect();
        all.sort_unstable_by_key(|(id, p)| (p.rel, *id));
        for (id, p) in all {
            let Some(rel) = self.rels[p.rel as usize]
                .as_ref()
                .or_else(|| self.ended.get(&p.rel))
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

    /// Define an instrument (in live mode the venue announces them). The same definition
    /// again changes nothing; a different one is an error.
    pub fn add_instrument(&mut self, inst: Instrument) -> &[Record] {
        self.out.clear();
        if let Some(&sid) = self.symbol_ids.get(&inst.symbol) {
            if self.instruments[sid as usize] != inst {
                self.out.push(Record::Error(format!(
                    "instrument '{}' is already defined differently",
                    inst.symbol
                )));
            }
            return &self.out;
        }
        let sid = self.instruments.len() as SymbolId;
        self.symbol_ids.insert(inst.symbol.clone(), sid);
        self.instruments.push(inst);
        self.marks.push(None);
        for p in &mut self.providers {
            p.positions.push(0);
        }
        self.symbol_providers.push(Vec::new());
        &self.out
    }

    /// Apply the venue's fill reports `(client order id, qty, price)`; a bad report is an
    /// `error` record and changes nothing, the others still apply.
    pub fn copy_fills<'a>(
        &mut self,
        seq: u64,
        fills: impl IntoIterator<Item = (&'a str, &'a str, &'a str)>,
    ) -> &[Record] {
        self.file_working();
        self.out.clear();
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
        self.file_working();
        self.out.clear();
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
            .pending
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
        let inst = &self.instruments[p.symbol as usize];
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
        let provider_pos = self.providers[rel.provider as usize].positions[sid as usize];
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
                    .apply_fill(sid, kind, p.side, Qty(q), price, 1)
                    .map_err(overflow)?;
            }
            rel.portfolio.close_done(sid, p.qty);
            self.pending.remove(id.0);
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
                    .apply_fill(sid, kind, p.side, qty, price, p.leverage)
                    .map_err(overflow)?;
            }
            rel.portfolio.open_done(sid, p.reserve);
            self.pending.remove(id.0);
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
            // id: "l" + the reported order's id (PROTOCOL.md, live mode)
            let next = ClientOrderId::new(&[b"l", &id.to_bytes()], rel.follower_hash);
            rel.portfolio.close_sent(sid, q);
            self.pending
                .insert(next.0, Pending::close(rid, sid, side, q));
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
        let Some(p) = ClientOrderId::parse(coid).and_then(|id| self.pending.remove(id.0)) else {
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

    /// Forget an ended relationship once none of its orders is working.
    fn drop_if_drained(&mut self, rid: RelId) {
        if self
            .ended
            .get(&rid)
            .is_some_and(|rel| rel.portfolio.working.is_empty())
        {
            self.ended.remove(&rid);
        }
    }

    /// Apply one event; `seq` is its position in the input order (the event index in a
    /// replay, the venue seq in the daemon). Returns the event's records.
    pub fn apply(&mut self, seq: u64, event: &Event) -> &[Record] {
        self.file_working();
        self.out.clear();
        self.loss_hits.clear();
        let result = match event {
            Event::Follow(f) => self.follow(f),
            Event::Fill(f) => self.provider_fill(f),
            Event::Mark { symbol, price } => self.mark(symbol, *price),
            Event::Deposit {
                follower,
                provider,
                amount,
            } => self.deposit(follower, provider, *amount),
            Event::Withdraw {
                follower,
                provider,
                amount,
            } => self.withdraw(follower, provider, *amount),
            Event::Unfollow { follower, provider } => self.unfollow(seq, follower, provider),
            Event::Pause { follower, provider } => self.pause(follower, provider, true),
            Event::Resume { follower, provider } => self.pause(follower, provider, false),
            Event::Settings {
                follower,
                provider,
                change,
            } => self.settings(follower, provider, change),
        };
        match result {
            Ok(()) => self.stop_loss_hits(seq),
            Err(message) => {
                self.out.clear();
                self.out.push(Record::Error(message));
            }
        }
        &self.out
    }

    /// The last event's records.
    pub fn records(&self) -> &[Record] {
        &self.out
    }

    /// Move the last event's records out, leaving `spare` (emptied) as the next buffer.
    pub fn swap_records(&mut self, mut spare: Vec<Record>) -> Vec<Record> {
        spare.clear();
        std::mem::replace(&mut self.out, spare)
    }

    /// An `error` record for an event that could not be parsed.
    pub fn reject(&mut self, message: String) -> &[Record] {
        self.out.clear();
        self.out.push(Record::Error(message));
        &self.out
    }

    pub fn follower_name(&self, id: FollowerId) -> &str {
        &self.followers[id as usize]
    }

    pub fn provider_name(&self, id: ProviderId) -> &str {
        &self.providers[id as usize].name
    }

    pub fn symbol_name(&self, id: SymbolId) -> &str {
        &self.instruments[id as usize].symbol
    }

    /// Remaining relationships in follow order.
    pub fn portfolios(&self) -> Vec<PortfolioView> {
        self.rels
            .iter()
            .flatten()
            .map(|r| PortfolioView {
                follower: self.followers[r.follower as usize].clone(),
                provider: self.providers[r.provider as usize].name.clone(),
                status: r.status,
                cash: r.portfolio.cash,
                base: r.portfolio.base,
                lots: r
                    .portfolio
                    .positions
                    .iter()
                    .flat_map(|p| {
                        let symbol = &self.instruments[p.symbol as usize].symbol;
                        p.lots.iter().map(move |l| (symbol.clone(), p.long, *l))
                    })
                    .collect(),
                reserved: r.portfolio.reserved,
                equity: r.portfolio.equity(&self.marks).ok(),
                positions: r
                    .portfolio
                    .positions
                    .iter()
                    .map(|p| {
                        (
                            self.instruments[p.symbol as usize].symbol.clone(),
                            Qty(p.signed_qty()),
                        )
                    })
                    .collect(),
            })
            .collect()
    }

    pub fn relationship_count(&self) -> usize {
        self.rel_ids.len()
    }

    fn provider_id(&self, name: &str) -> Result<ProviderId, String> {
        self.provider_ids
            .get(name)
            .copied()
            .ok_or_else(|| format!("unknown provider '{name}'"))
    }

    fn symbol_id(&self, name: &str) -> Result<SymbolId, String> {
        self.symbol_ids
            .get(name)
            .copied()
            .ok_or_else(|| format!("unknown symbol '{name}'"))
    }

    /// The relationship of `follower` with `provider` (the provider must exist).
    fn rel_id(&self, follower: &str, provider: &str) -> Result<RelId, String> {
        let pid = self.provider_id(provider)?;
        self.follower_ids
            .get(follower)
            .and_then(|fid| self.rel_ids.get(&(*fid, pid)))
            .copied()
            .ok_or_else(|| format!("'{follower}' does not follow '{provider}'"))
    }

    fn rel(&self, id: RelId) -> &Relationship {
        self.rels[id as usize]
            .as_ref()
            .expect("rel ids point at live relationships")
    }

    fn rel_mut(&mut self, id: RelId) -> &mut Relationship {
        self.rels[id as usize]
            .as_mut()
            .expect("rel ids point at live relationships")
    }

    fn check_allocation(
        &self,
        follower: &str,
        fid: Option<FollowerId>,
        new_base: Money,
        added: Money,
    ) -> Result<Money, String> {
        if let Some(min) = self.platform.min_allocation.filter(|min| new_base < *min) {
            return Err(format!(
                "allocation {new_base} is below min_allocation {min}"
            ));
        }
        if let Some(max) = self.platform.max_allocation.filter(|max| new_base > *max) {
            return Err(format!(
                "allocation {new_base} is above max_allocation {max}"
            ));
        }
        let before = fid.map_or(Money::ZERO, |f| self.follower_totals[f as usize]);
        let total = before.checked_add(added).ok_or("arithmetic overflow")?;
        if let Some(max) = self
            .platform
            .max_total_per_follower
            .filter(|max| total > *max)
        {
            return Err(format!(
                "total allocation {total} of '{follower}' is above max_total_per_follower {max}"
            ));
        }
        Ok(total)
    }

    fn follow(&mut self, f: &Follow) -> Result<(), String> {
        let pid = self.provider_id(&f.provider)?;
        let fid = self.follower_ids.get(&f.follower).copied();
        if fid.is_some_and(|fid| self.rel_ids.contains_key(&(fid, pid))) {
            return Err(format!("'{}' already follows '{}'", f.follower, f.provider));
        }
        if f.settings.mode == Mode::FixedAmount && f.settings.fixed_amount.is_none() {
            return Err("mode fixed_amount needs fixed_amount".into());
        }
        let total = self.check_allocation(&f.follower, fid, f.allocation, f.allocation)?;
        let fid = fid.unwrap_or_else(|| {
            let id = self.followers.len() as FollowerId;
            self.followers.push(f.follower.clone());
            self.follower_ids.insert(f.follower.clone(), id);
            self.follower_totals.push(Money::ZERO);
            id
        });
        let rid = self.rels.len() as RelId;
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
        self.rel_ids.insert((fid, pid), rid);
        self.providers[pid as usize].book.push(rid);
        self.follower_totals[fid as usize] = total;
        Ok(())
    }

    fn deposit(&mut self, follower: &str, provider: &str, amount: Money) -> Result<(), String> {
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
        self.follower_totals[fid as usize] = total;
        self.check_one(rid);
        Ok(())
    }

    fn withdraw(&mut self, follower: &str, provider: &str, amount: Money) -> Result<(), String> {
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
        let total = self.follower_totals[fid as usize]
            .checked_sub(amount)
            .ok_or_else(overflow)?;
        let rel = self.rel_mut(rid);
        rel.portfolio.cash = Money(rel.portfolio.cash.0 - amount.0);
        rel.portfolio.base = base;
        rel.stop_at = stop_line(base, rel.settings.max_loss_pct);
        self.follower_totals[fid as usize] = total;
        self.check_one(rid);
        Ok(())
    }

    fn unfollow(&mut self, seq: u64, follower: &str, provider: &str) -> Result<(), String> {
        let rid = self.rel_id(follower, provider)?;
        let rel = self.rel(rid);
        let (fid, pid) = (rel.follower, rel.provider);
        let total = self.follower_totals[fid as usize]
            .checked_sub(rel.portfolio.base)
            .ok_or("arithmetic overflow")?;
        if rel.settings.stop_copy_on_close {
            self.close_everything(seq, rid, b"u");
        }
        if let Some(mut rel) = self.rels[rid as usize].take() {
            if !rel.portfolio.working.is_empty() {
                // no longer copied: a late opening fill is closed again
                rel.status = Status::Stopped;
                self.ended.insert(rid, rel);
            }
        }
        self.rel_ids.remove(&(fid, pid));
        self.providers[pid as usize].book.retain(|&r| r != rid);
        self.follower_totals[fid as usize] = total;
        Ok(())
    }

    /// `pause` (true) or `resume` (false) a relationship.
    fn pause(&mut self, follower: &str, provider: &str, pause: bool) -> Result<(), String> {
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
    fn settings(
        &mut self,
        follower: &str,
        provider: &str,
        change: &SettingsChange,
    ) -> Result<(), String> {
        let rid = self.rel_id(follower, provider)?;
        let rel = self.rel_mut(rid);
        let settings = change.applied_to(&rel.settings);
        if settings.mode == Mode::FixedAmount && settings.fixed_amount.is_none() {
            return Err("mode fixed_amount needs fixed_amount".into());
        }
        rel.stop_at = stop_line(rel.portfolio.base, settings.max_loss_pct);
        rel.settings = settings;
        self.check_one(rid);
        Ok(())
    }

    fn mark(&mut self, symbol: &str, price: Price) -> Result<(), String> {
        let sid = self.symbol_id(symbol)?;
        let inst = &self.instruments[sid as usize];
        if !inst.on_tick(price) {
            return Err(format!(
                "price {price} is not a multiple of tick {}",
                inst.tick
            ));
        }
        self.marks[sid as usize] = Some(price);
        self.check_holders(sid, None);
        Ok(())
    }

    fn provider_fill(&mut self, f: &ProviderFill) -> Result<(), String> {
        let pid = self.provider_id(&f.provider)?;
        let sid = self.symbol_id(&f.symbol)?;
        let inst = &self.instruments[sid as usize];
        if inst.kind == Kind::Spot && f.leverage != 1 {
            return Err("leverage must be 1 on spot".into());
        }
        let prov = &self.providers[pid as usize];
        if prov.exec_ids.contains(&f.exec_id) {
            return Err(format!(
                "duplicate exec_id '{}' for provider '{}'",
                f.exec_id, f.provider
            ));
        }
        if !inst.on_step(f.qty) {
            return Err(format!(
                "qty {} is not a multiple of step {}",
                f.qty, inst.step
            ));
        }
        if !inst.on_tick(f.price) {
            return Err(format!(
                "price {} is not a multiple of tick {}",
                f.price, inst.tick
            ));
        }
        let before = prov.positions[sid as usize];
        let delta = f.side.sign() * f.qty.0;
        let after = before + delta;
        if inst.kind == Kind::Spot && after < 0 {
            return Err(format!(
                "spot position of '{}' in {} would go short",
                f.provider, f.symbol
            ));
        }
        let reduces = before != 0 && (before > 0) != (delta > 0);
        let close = if reduces {
            f.qty.0.min(before.abs())
        } else {
            0
        };
        let open = f.qty.0 - close;

        let prov = &mut self.providers[pid as usize];
        prov.exec_ids.insert(f.exec_id.clone());
        prov.positions[sid as usize] = after;
        self.marks[sid as usize] = Some(f.price);
        if !self.symbol_providers[sid as usize].contains(&pid) {
            self.symbol_providers[sid as usize].push(pid);
        }
        let source =
            |leg: &[u8]| source_hash(&[b"f", f.provider.as_bytes(), f.exec_id.as_bytes(), leg]);
        if close > 0 {
            let flat = f.qty.0 >= before.abs();
            self.close_leg(
                pid,
                sid,
                f,
                source(b"close"),
                Qty(close),
                Qty(before.abs()),
                flat,
                open == 0,
            );
        }
        if open > 0 {
            self.open_leg(pid, sid, f, source(b"open"), Qty(open));
        }
        // The legs checked this provider's followers; others holding the symbol moved too.
        self.check_holders(sid, Some(pid));
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn close_leg(
        &mut self,
        pid: ProviderId,
        sid: SymbolId,
        f: &ProviderFill,
        source: u128,
        close: Qty,
        provider_qty: Qty,
        flat: bool,
        check_loss: bool,
    ) {
        let Engine {
            providers,
            rels,
            instruments,
            marks,
            out,
            loss_hits,
            staged,
            live,
            threads,
            ..
        } = self;
        let inst = &instruments[sid as usize];
        let marks = &marks[..];
        let live = *live;
        let work = |rid, rel: &mut Relationship, _: &mut ()| {
            if rel.portfolio.closable(sid) == 0 {
                // nothing left to close (its close is still working), but a pure
                // reduction moved the mark: check it here, check_holders skips this book
                let held = rel.portfolio.signed_qty(sid) != 0;
                let hit = check_loss && held && breaches(rel, marks);
                return Visit {
                    record: None,
                    hit,
                    working: None,
                };
            }
            let (record, working) = close_one(
                rid,
                rel,
                inst,
                f,
                source,
                (close, provider_qty, flat),
                sid,
                live,
            );
            // Filling at the mark leaves equity as it was; only a pure reduction checks
            // here (an open leg checks every active follower itself).
            let hit = check_loss && breaches(rel, marks);
            Visit {
                record: Some(record),
                hit,
                working,
            }
        };
        let book = &providers[pid as usize].book;
        fan_out(rels, book, threads, out, loss_hits, staged, work);
    }

    fn open_leg(
        &mut self,
        pid: ProviderId,
        sid: SymbolId,
        f: &ProviderFill,
        source: u128,
        open: Qty,
    ) {
        let Engine {
            providers,
            rels,
            instruments,
            marks,
            out,
            loss_hits,
            staged,
            live,
            threads,
            ..
        } = self;
        let inst = &instruments[sid as usize];
        let live = *live;
        let leg = OpenLeg::new(
            sid,
            inst,
            f.side,
            open,
            f.price,
            f.provider_equity,
            f.leverage,
        );
        let marks = &marks[..];
        // Most followers share a slippage setting: its limit is computed once per part.
        let work = |rid, rel: &mut Relationship, limits: &mut LimitCache| {
            let balances = rel.portfolio.balances(marks);
            // Copies fill at the mark (or not yet, live), so this equity is also the
            // equity after the event.
            let hit = balances.is_ok_and(|(equity, _)| equity <= rel.stop_at);
            let (record, working) = open_one(rid, rel, &leg, balances, limits, source, live);
            Visit {
                record: Some(record),
                hit,
                working,
            }
        };
        let book = &providers[pid as usize].book;
        fan_out(rels, book, threads, out, loss_hits, staged, work);
    }

    /// Close every position of `rid` at its mark with reduce-only market orders.
    fn close_everything(&mut self, seq: u64, rid: RelId, tag: &[u8]) {
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
        let Some(rel) = rels[rid as usize].as_mut() else {
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
            let inst = &instruments[sid as usize];
            let side = if signed > 0 { Side::Sell } else { Side::Buy };
            let qty = if *live {
                inst.reportable(Qty(signed.abs()))
            } else {
                Qty(signed.abs())
            };
            let mark = marks[sid as usize].expect("a position's symbol has a mark");
            if !*live
                && rel
                    .portfolio
                    .apply_fill(sid, inst.kind, side, qty, mark, 1)
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
                    providers[provider as usize].name.as_bytes(),
                    seq_text.as_bytes(),
                    inst.symbol.as_bytes(),
                ],
                rel.follower_hash,
            );
            if *live {
                rel.portfolio.close_sent(sid, qty);
                staged.push((id.0, Pending::close(rid, sid, side, qty)));
            }
            out.push(Record::Order(CopyOrder::close(
                follower, provider, sid, side, qty, id,
            )));
        }
    }

    /// Check one relationship against its max-loss line.
    fn check_one(&mut self, rid: RelId) {
        let Some(rel) = self.rels[rid as usize].as_ref() else {
            return; // ended: max-loss no longer applies
        };
        if breaches(rel, &self.marks) {
            self.loss_hits.push(rid);
        }
    }

    /// Check the relationships that may hold `sid` after its mark moved, except the
    /// active ones of `skip`'s book (its fan-out checked them; not its paused ones).
    fn check_holders(&mut self, sid: SymbolId, skip: Option<ProviderId>) {
        let Engine {
            symbol_providers,
            providers,
            rels,
            marks,
            loss_hits,
            ..
        } = self;
        for &pid in &symbol_providers[sid as usize] {
            let fanned_out = Some(pid) == skip;
            for &rid in &providers[pid as usize].book {
                let Some(rel) = rels[rid as usize].as_ref() else {
                    continue;
                };
                if fanned_out && rel.status != Status::Paused {
                    continue;
                }
                if rel.stop_at != NO_STOP
                    && rel.portfolio.signed_qty(sid) != 0
                    && breaches(rel, marks)
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
    fn stop_loss_hits(&mut self, seq: u64) {
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

/// The last (slippage, limit) computed in a fan-out: most followers share a slippage.
type LimitCache = Option<(Factor, Option<Price>)>;

/// What visiting one relationship in a fan-out produced.
struct Visit {
    record: Option<Record>,
    /// At or below its max-loss line.
    hit: bool,
    /// Live mode: the copy order to add to the working-order table.
    working: Option<(u128, Pending)>,
}

/// A part of a fan-out's output, in book order.
#[derive(Debug, Default)]
struct Visited {
    records: Vec<Record>,
    hits: Vec<RelId>,
    working: Vec<(u128, Pending)>,
}

/// A run of a book with the part of the relationship slab that holds it (`rels[0]` is
/// relationship `first`): parts own disjoint slices, so they can run on two threads.
struct BookPart<'a> {
    rels: &'a mut [Option<Relationship>],
    first: usize,
    book: &'a [RelId],
    into: Visited,
}

/// Cut `book` into parts (one, unless it is long and `parallel`). A book is in follow
/// order and relationship ids are handed out in follow order, so it is ascending and
/// each part's relationships are a slice of the slab of their own.
fn split_book<'a>(
    rels: &'a mut [Option<Relationship>],
    book: &'a [RelId],
    parallel: bool,
    first: Visited,
    spare: &mut Vec<Visited>,
) -> Vec<BookPart<'a>> {
    let n = if parallel
        && book.len() >= crate::parallel::MIN_ITEMS
        && book.windows(2).all(|w| w[0] < w[1])
    {
        crate::parallel::PARTS
    } else {
        1
    };
    let mut parts = Vec::with_capacity(n);
    let (mut rest, mut offset) = (rels, 0);
    let mut first = Some(first);
    for (start, end) in crate::parallel::bounds(book.len(), n) {
        // the slab up to the next part's first relationship (the rest, for the last part)
        let cut = book.get(end).map_or(rest.len(), |&r| r as usize - offset);
        let (head, tail) = std::mem::take(&mut rest).split_at_mut(cut);
        parts.push(BookPart {
            rels: head,
            first: offset,
            book: &book[start..end],
            into: first
                .take()
                .unwrap_or_else(|| spare.pop().unwrap_or_default()),
        });
        (rest, offset) = (tail, offset + cut);
    }
    parts
}

/// Run `work` over every active relationship of `book`, in follow order, appending its
/// records to `out`, its max-loss hits to `hits` and its working orders to `staged`.
/// Each part of the book gets a fresh `S` (a cache of the work's own).
#[allow(clippy::too_many_arguments)]
fn fan_out<S, W>(
    rels: &mut [Option<Relationship>],
    book: &[RelId],
    threads: &mut Threads,
    out: &mut Vec<Record>,
    hits: &mut Vec<RelId>,
    staged: &mut Vec<(u128, Pending)>,
    work: W,
) where
    S: Default,
    W: Fn(RelId, &mut Relationship, &mut S) -> Visit + Sync,
{
    let visit = |part: BookPart<'_>| {
        let BookPart {
            rels,
            first,
            book,
            mut into,
        } = part;
        into.records.reserve(book.len());
        let mut state = S::default();
        for &rid in book {
            let Some(rel) = rels[rid as usize - first]
                .as_mut()
                .filter(|r| r.status == Status::Active)
            else {
                continue;
            };
            let v = work(rid, rel, &mut state);
            into.records.extend(v.record);
            if v.hit {
                into.hits.push(rid);
            }
            into.working.extend(v.working);
        }
        into
    };
    // the first part appends to `out`, `hits` and `staged` as they are (no copy on one
    // thread)
    let first = Visited {
        records: std::mem::take(out),
        hits: std::mem::take(hits),
        working: std::mem::take(staged),
    };
    let parts = split_book(rels, book, !threads.one, first, &mut threads.spare);
    let results = crate::parallel::map_parts(parts, visit);
    for (i, mut v) in results.into_iter().enumerate() {
        if i == 0 {
            (*out, *hits, *staged) = (v.records, v.hits, v.working);
        } else {
            out.append(&mut v.records);
            hits.append(&mut v.hits);
            staged.append(&mut v.working);
            threads.spare.push(v); // emptied, its memory kept
        }
    }
}

/// One follower's opening copy: sized, recorded, and filled at the execution price
/// (replay) or sent with its margin reserved (`live`: the order comes back with its
/// working-order entry).
fn open_one(
    rid: RelId,
    rel: &mut Relationship,
    leg: &OpenLeg<'_>,
    balances: Result<(Money, Money), crate::portfolio::Overflow>,
    limits: &mut LimitCache,
    source: u128,
    live: bool,
) -> (Record, Option<(u128, Pending)>) {
    let (follower, provider) = (rel.follower, rel.provider);
    let skip = |reason| {
        let skip = Record::Skip {
            follower,
            provider,
            reason,
        };
        (skip, None)
    };
    let inst = leg.instrument;
    let sid = leg.symbol;
    let (pf, s) = (&mut rel.portfolio, &rel.settings);
    if pf.is_new_symbol(sid)
        && s.max_open_trades
            .is_some_and(|max| pf.open_or_opening() >= max as usize)
    {
        return skip(SkipReason::MaxOpenTrades);
    }
    let Ok((equity, free)) = balances else {
        return skip(SkipReason::Overflow);
    };
    let (qty, clamped) = match size_open(s, equity, free, leg) {
        Sized::Skip(reason) => return skip(reason),
        Sized::Copy { qty, clamped } => (qty, clamped),
    };
    let limit = match *limits {
        Some((slip, limit)) if slip == s.slippage_pct => limit,
        _ => {
            let limit = limit_price(leg.side, leg.price, s.slippage_pct, inst.tick);
            *limits = Some((s.slippage_pct, limit));
            limit
        }
    };
    let Some(limit) = limit else {
        return skip(SkipReason::Overflow);
    };
    let id = source ^ rel.follower_hash;
    let mut working = None;
    match live {
        false => {
            if pf
                .apply_fill(sid, inst.kind, leg.side, qty, leg.price, leg.leverage)
                .is_err()
            {
                return skip(SkipReason::Overflow);
            }
        }
        true => {
            if !is_reportable(qty, limit) {
                return skip(SkipReason::Overflow);
            }
            // The most the order can cost: a buy fills at or under its limit; a sell
            // opens a short whose margin is taken at the provider's price.
            let at = if leg.side == Side::Buy {
                limit
            } else {
                leg.price
            };
            let Some(reserve) = mul_div_ceil(qty.0, at.0, i128::from(leg.leverage)).map(Money)
            else {
                return skip(SkipReason::Overflow);
            };
            if pf.open_sent(sid, reserve).is_err() {
                return skip(SkipReason::Overflow);
            }
            working = Some((
                id,
                Pending {
                    rel: rid,
                    symbol: sid,
                    side: leg.side,
                    qty,
                    limit,
                    reduce_only: false,
                    leverage: leg.leverage,
                    reserve,
                },
            ));
        }
    }
    let order = Record::Order(CopyOrder {
        follower,
        provider,
        symbol: sid,
        side: leg.side,
        order_type: OrderType::LimitIoc,
        qty,
        limit,
        reduce_only: false,
        clamped,
        client_order_id: ClientOrderId(id),
    });
    (order, working)
}

/// The line of a relationship without max-loss: no equity is at or below it.
pub const NO_STOP: Money = Money(i128::MIN);

/// `floor(base × (1 − pct/100))`, the max-loss line as a raw money value.
fn stop_line(base: Money, max_loss_pct: Option<Factor>) -> Money {
    let hundred = Factor::HUNDRED.0;
    // No line past the money range: no equity could reach it there either.
    max_loss_pct
        .and_then(|pct| mul_div_floor(base.0, hundred - pct.0, hundred))
        .map_or(NO_STOP, Money)
}

/// An active or paused relationship at or below its max-loss line.
fn breaches(rel: &Relationship, marks: &[Option<Price>]) -> bool {
    rel.status != Status::Stopped
        && rel
            .portfolio
            .equity(marks)
            .is_ok_and(|equity| equity <= rel.stop_at)
}

/// The relationship a working order belongs to: a live one, or one unfollowed whose
/// orders are still working.
fn owner<'a>(
    rels: &'a mut [Option<Relationship>],
    ended: &'a mut HashMap<RelId, Relationship>,
    rid: RelId,
) -> &'a mut Relationship {
    match rels[rid as usize].as_mut() {
        Some(rel) => rel,
        None => ended
            .get_mut(&rid)
            .expect("a working order's relationship is live or ended"),
    }
}

/// One follower's part of a provider's reduction: a reduce-only market order filled at
/// the execution price, or the reason there is none.
/// `share` is (the provider's closed qty, its position before, whether it ended flat).
/// `live`: the close is sent, not filled, and comes back with its working-order entry.
#[allow(clippy::too_many_arguments)]
fn close_one(
    rid: RelId,
    rel: &mut Relationship,
    inst: &Instrument,
    f: &ProviderFill,
    source: u128,
    (close, provider_qty, flat): (Qty, Qty, bool),
    sid: SymbolId,
    live: bool,
) -> (Record, Option<(u128, Pending)>) {
    let (follower, provider) = (rel.follower, rel.provider);
    let skip = |reason| {
        let skip = Record::Skip {
            follower,
            provider,
            reason,
        };
        (skip, None)
    };
    let fpos = rel.portfolio.closable(sid);
    let held = Qty(fpos.abs());
    let Some(mut qty) = (if flat {
        Some(held)
    } else {
        close_share(held, close, provider_qty, inst.step)
    }) else {
        return skip(SkipReason::Overflow);
    };
    if qty.0 == 0 {
        return skip(SkipReason::BelowStep);
    }
    let side = if fpos > 0 { Side::Sell } else { Side::Buy };
    let id = source ^ rel.follower_hash;
    let mut working = None;
    match live {
        false => {
            if rel
                .portfolio
                .apply_fill(sid, inst.kind, side, qty, f.price, f.leverage)
                .is_err()
            {
                return skip(SkipReason::Overflow);
            }
        }
        true => {
            qty = inst.reportable(qty);
            rel.portfolio.close_sent(sid, qty);
            working = Some((id, Pending::close(rid, sid, side, qty)));
        }
    }
    let order = Record::Order(CopyOrder::close(
        follower,
        provider,
        sid,
        side,
        qty,
        ClientOrderId(id),
    ));
    (order, working)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hot_structures_stay_small() {
        // A fan-out writes one record per follower and walks every relationship: these
        // sizes are the memory traffic per follower, so growing them is a speed change.
        assert_eq!(std::mem::size_of::<Record>(), 64);
        // 368 before live mode added `reserved` and `working` (40 bytes).
        assert!(std::mem::size_of::<Option<Relationship>>() <= 416);
    }
}

//! The deterministic state machine: one input event in, its outcome records out.
//!
//! State is plain tables indexed by small integer ids. A provider execution walks the
//! provider's follower book once per leg; every copy is sized and recorded. In replay
//! mode it is filled at the provider's price before the next follower; in live mode (the
//! daemon) it reserves what it may cost and stays working until the venue reports it
//! (`copy_fills`, `copy_rejects`; the rules are in `docs/protocol.md`).
//!
//! One concern per file, each adding to `impl Engine`:
//! - this module: the state, the dispatch of one input event (`apply`), snapshots, lookups;
//! - `control`: relationships and their control changes (follow, deposit, withdraw,
//!   unfollow, pause/resume, settings) and closing a relationship's positions;
//! - `fanout`: a provider execution's legs over the provider's book (sizing each copy);
//! - `venue`: the venue's reports of copy orders (fills, rejects) and the working orders;
//! - `maxloss`: finding relationships at their max-loss line and stopping them;
//! - `standing`: what a provider's copiers have with it (followers, AUM, copiers' PnL);
//! - `settle`: profit-share settlements (at period boundaries the clock crosses, on
//!   request, at unfollow) and the rates in force.
//!
//! The rules themselves (sizing, max-loss line, limits) are in `sizing` and `risk`.

use std::collections::{HashMap, HashSet};

use crate::event::Event;
use crate::fixed::{Factor, Money, Price, Qty};
use crate::model::{
    CopySettings, FollowerId, Instrument, Platform, ProviderId, Record, RelId, Status, SymbolId,
};
use crate::portfolio::{Lot, Portfolio};
use crate::working::{WorkingOrder, WorkingOrders};

mod control;
mod fanout;
mod maxloss;
mod settle;
mod standing;
mod venue;

pub use settle::{Settling, Watermark};
pub use standing::Standing;

use fanout::Visited;

#[derive(serde::Serialize, serde::Deserialize, Debug, Clone)]
pub struct Relationship {
    /// The highest equity at which max-loss stops it: `floor(base × (1 − pct/100))`
    /// (equity is a whole number of raw units, so `equity ≤ line ⟺ equity ≤ floor(line)`),
    /// or `risk::NO_STOP` without a max-loss setting. Kept current whenever `base`
    /// moves, so the fan-out compares one integer.
    pub stop_at: Money,
    pub follower: FollowerId,
    /// The follower's half of every client order id (see `coid`).
    pub follower_hash: u128,
    pub provider: ProviderId,
    pub settings: CopySettings,
    pub status: Status,
    pub portfolio: Portfolio,
}

impl Relationship {
    /// Active or paused, and at or below its max-loss line at `marks`.
    #[inline]
    fn breaches(&self, marks: &[Option<Price>]) -> bool {
        crate::risk::breaches(self.status, &self.portfolio, self.stop_at, marks)
    }
}

#[derive(serde::Serialize, serde::Deserialize, Debug, Default)]
struct Provider {
    name: String,
    /// Active and stopped relationships, in follow order.
    book: Vec<RelId>,
    /// Signed position per symbol (raw qty).
    positions: Vec<i128>,
    exec_ids: HashSet<String>,
    /// Σ (equity − base) of its unfollowed relationships, each taken when it ended.
    ended_pnl: Money,
    /// Its share of its followers' new profit, in force for the current period.
    share_pct: Factor,
    /// The share from the next period boundary on (see `set_profit_share`).
    next_share_pct: Factor,
}

/// Live mode: an unfollowed relationship waiting for its orders (`Engine::ended`), with
/// the rates in force when the unfollow was applied: its `unfollow` settlement is the
/// unfollow's, at those rates, even if a period boundary moved them forward since.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone)]
pub(super) struct Leaving {
    rel: Relationship,
    /// The rates in force at the unfollow.
    rates: settle::Rates,
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
    /// The settlement high watermark (see `Watermark`).
    pub high_watermark: Money,
    /// Σ charged by settlements.
    pub fees_paid: Money,
}

/// Snapshot header: the format and the engine's rules version; bump it with either.
/// 4: an entry of `ended` is an unfollow waiting for its orders before it settles and
/// ends, with the rates it settles at (in 3 it had settled already: restoring one as 4
/// would settle it twice).
const SNAPSHOT_MAGIC: &[u8] = b"copyengine-snapshot-4\n";

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
    /// Per relationship (indexed like `rels`): what settlements need, kept out of
    /// `Relationship` so that the fan-out's memory traffic does not grow with it.
    watermarks: Vec<Watermark>,
    /// The settlement schedule's state: next boundary, pending rates, settled periods.
    settling: Settling,
    /// Per symbol, the providers that ever traded it: their books hold every relationship
    /// that can hold the symbol, so a mark move is checked against those books only.
    symbol_providers: Vec<Vec<ProviderId>>,
    /// Relationships found at or below their max-loss line during the current event.
    #[serde(skip)]
    loss_hits: Vec<RelId>,
    platform: Platform,
    /// Venue time of the latest input, µs since the Unix epoch (UTC): the engine's only
    /// clock (it never reads its own), so a replay of the log computes the same.
    now_us: i64,
    /// Live inputs stamped earlier than their predecessor, taken at its time instead.
    clock_corrections: u64,
    #[serde(skip)]
    out: Vec<Record>,
    /// How many records at the front of `out` the current input's clock advance made
    /// (settlements of the boundaries it crossed): the input's own records follow them.
    #[serde(skip)]
    held: usize,
    /// Live mode: copies wait for the venue's report instead of filling at once.
    live: bool,
    /// Live mode: copy orders sent and not yet reported, by client order id.
    working: WorkingOrders,
    /// Live mode: unfollowed relationships whose orders are still working (the unfollow's
    /// closes, opening copies sent before it). Out of every book; their reports still
    /// move their portfolio (a late open is closed again). Once the last one is reported
    /// the relationship settles (`unfollow`, at the rates in force at the unfollow) and
    /// ends (`end_relationship`).
    ended: HashMap<RelId, Leaving>,
    /// The relationships that ended during the current input, as they ended (settled):
    /// what the ledger returns to the follower's wallet (`finished`).
    #[serde(skip)]
    finished: Vec<PortfolioView>,
    /// Live mode: the working orders of the last event, not yet in `working` (see
    /// `file_staged`). Empty in every snapshot.
    #[serde(skip)]
    staged: Vec<(u128, WorkingOrder)>,
    /// How fan-outs use the second thread (not part of the state).
    #[serde(skip)]
    threads: Threads,
}

/// Whether fan-outs stay on the calling thread (tests compare that with two), and the
/// buffers of their parts, kept between fan-outs: a fresh buffer per part per fan-out
/// costs page faults, from two threads' malloc arenas.
#[derive(Debug, Default)]
pub(super) struct Threads {
    one: bool,
    spare: Vec<Visited>,
}

impl Engine {
    /// The whole state as bytes (crash recovery starts from the newest snapshot and
    /// re-applies only what came after it). The format is private to this build's version
    /// of the engine: `restore` refuses another.
    pub fn snapshot(&mut self) -> Result<Vec<u8>, String> {
        self.file_staged();
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
            .map(|(i, x)| (x.symbol.clone(), SymbolId::next(i)))
            .collect();
        let provider_ids = providers
            .iter()
            .enumerate()
            .map(|(i, p)| (p.clone(), ProviderId::next(i)))
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
        let settling = Settling::new(&platform);
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
            finished: Vec::new(),
            rel_ids: HashMap::new(),
            watermarks: Vec::new(),
            settling,
            symbol_providers: vec![Vec::new(); n_sym],
            loss_hits: Vec::new(),
            platform,
            now_us: 0,
            clock_corrections: 0,
            out: Vec::new(),
            held: 0,
            live: false,
            working: WorkingOrders::default(),
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

    /// Venue time of the latest input (µs since the epoch, UTC; 0 before any).
    pub fn now_us(&self) -> i64 {
        self.now_us
    }

    /// How many inputs were stamped earlier than their predecessor (see `advance_clock`).
    pub fn clock_corrections(&self) -> u64 {
        self.clock_corrections
    }

    /// Start the input at position `seq` stamped with venue time `ts`. Time does not go
    /// backwards along the log: an earlier `ts` is taken as the current time and counted
    /// (nothing is refused). Then, before the input itself applies, one settlement per
    /// period boundary the (corrected) time reached, in order (see `settle`): their
    /// records open the input's records, which the input's own call (`apply`,
    /// `copy_fills`, ...) keeps and appends to. Returns the time the input counts at.
    pub fn advance_clock(&mut self, seq: u64, ts: i64) -> i64 {
        if ts < self.now_us {
            self.clock_corrections += 1;
        } else {
            self.now_us = ts;
        }
        self.out.clear();
        self.finished.clear();
        self.cross_boundaries(seq);
        self.held = self.out.len();
        self.now_us
    }

    /// Start an input's records: keep those its clock advance made, drop the previous
    /// input's. Returns how many were kept (an invalid input's error follows them).
    fn begin(&mut self) -> usize {
        let keep = std::mem::take(&mut self.held);
        self.out.truncate(keep);
        self.finished.clear();
        keep
    }

    /// Define an instrument (in live mode the venue announces them). The same definition
    /// again changes nothing; a different one is an error.
    pub fn add_instrument(&mut self, inst: Instrument) -> &[Record] {
        self.begin();
        if let Some(&sid) = self.symbol_ids.get(&inst.symbol) {
            if self.instruments[sid.index()] != inst {
                self.out.push(Record::Error(format!(
                    "instrument '{}' is already defined differently",
                    inst.symbol
                )));
            }
            return &self.out;
        }
        let sid = SymbolId::next(self.instruments.len());
        self.symbol_ids.insert(inst.symbol.clone(), sid);
        self.instruments.push(inst);
        self.marks.push(None);
        for p in &mut self.providers {
            p.positions.push(0);
        }
        self.symbol_providers.push(Vec::new());
        &self.out
    }

    /// Apply one event; `seq` is its position in the input order (the event index in a
    /// replay, the venue seq in the daemon). Returns the event's records.
    pub fn apply(&mut self, seq: u64, event: &Event) -> &[Record] {
        self.file_staged();
        let start = self.begin();
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
                self.out.truncate(start);
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
        self.held = 0;
        std::mem::replace(&mut self.out, spare)
    }

    /// Apply a parsed input, or record why it could not be parsed: one path for every
    /// input that arrives as text or typed fields (scenario events, control changes,
    /// decoded venue messages).
    pub fn apply_parsed(&mut self, seq: u64, parsed: Result<Event, String>) -> &[Record] {
        match parsed {
            Ok(ev) => self.apply(seq, &ev),
            Err(message) => self.record_error(message),
        }
    }

    /// Record an `error` for an input that could not be parsed (not a venue reject:
    /// those are `copy_rejects`).
    pub fn record_error(&mut self, message: String) -> &[Record] {
        self.begin();
        self.out.push(Record::Error(message));
        &self.out
    }

    pub fn follower_name(&self, id: FollowerId) -> &str {
        &self.followers[id.index()]
    }

    pub fn provider_name(&self, id: ProviderId) -> &str {
        &self.providers[id.index()].name
    }

    pub fn symbol_name(&self, id: SymbolId) -> &str {
        &self.instruments[id.index()].symbol
    }

    /// Remaining relationships in follow order.
    pub fn portfolios(&self) -> Vec<PortfolioView> {
        self.rels
            .iter()
            .enumerate()
            .filter_map(|(i, r)| Some(self.view(r.as_ref()?, RelId::next(i))))
            .collect()
    }

    /// The relationships that ended during the last input (an unfollow, or the last
    /// report of an unfollowed relationship's orders), in the order they ended, as they
    /// were at their end: positions closed (or what a rejected close left), settled.
    pub fn finished(&self) -> &[PortfolioView] {
        &self.finished
    }

    /// Live mode: the unfollows waiting for their orders, sorted by follower then
    /// provider, each with the provider's share and the platform fee it will be settled
    /// at (those in force at the unfollow).
    pub fn waiting_unfollows(&self) -> Vec<(String, String, Factor, Factor)> {
        let mut all: Vec<_> = self
            .ended
            .values()
            .map(|l| {
                (
                    self.followers[l.rel.follower.index()].clone(),
                    self.providers[l.rel.provider.index()].name.clone(),
                    l.rates.share_pct,
                    l.rates.fee_pct,
                )
            })
            .collect();
        all.sort_unstable_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        all
    }

    fn view(&self, r: &Relationship, rid: RelId) -> PortfolioView {
        let w = self.watermarks[rid.index()];
        PortfolioView {
            follower: self.followers[r.follower.index()].clone(),
            provider: self.providers[r.provider.index()].name.clone(),
            status: r.status,
            cash: r.portfolio.cash,
            base: r.portfolio.base,
            lots: r
                .portfolio
                .positions
                .iter()
                .flat_map(|p| {
                    let symbol = &self.instruments[p.symbol.index()].symbol;
                    p.lots.iter().map(move |l| (symbol.clone(), p.long, *l))
                })
                .collect(),
            reserved: r.portfolio.reserved,
            high_watermark: w.high,
            fees_paid: w.fees_paid,
            equity: r.portfolio.equity(&self.marks).ok(),
            positions: r
                .portfolio
                .positions
                .iter()
                .map(|p| {
                    (
                        self.instruments[p.symbol.index()].symbol.clone(),
                        Qty(p.signed_qty()),
                    )
                })
                .collect(),
        }
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
        self.rels[id.index()]
            .as_ref()
            .expect("rel ids point at live relationships")
    }

    fn rel_mut(&mut self, id: RelId) -> &mut Relationship {
        self.rels[id.index()]
            .as_mut()
            .expect("rel ids point at live relationships")
    }

    fn mark(&mut self, symbol: &str, price: Price) -> Result<(), String> {
        let sid = self.symbol_id(symbol)?;
        let inst = &self.instruments[sid.index()];
        if !inst.on_tick(price) {
            return Err(format!(
                "price {price} is not a multiple of tick {}",
                inst.tick
            ));
        }
        self.marks[sid.index()] = Some(price);
        self.check_holders(sid, None);
        Ok(())
    }
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

//! A provider execution's fan-out: the execution's close and open legs, each one walk
//! of the provider's book (split in parts for two threads when long), sizing one copy
//! per active relationship (`open_one`, `close_one`).

use super::{Engine, Relationship, Threads};
use crate::coid::{source_hash, ClientOrderId};
use crate::event::ProviderFill;
use crate::exact::mul_div_ceil;
use crate::fixed::{Factor, Money, Price, Qty};
use crate::model::{
    is_reportable, CopyOrder, Instrument, Kind, OrderType, ProviderId, Record, RelId, Side,
    SkipReason, Status, SymbolId,
};
use crate::risk::at_max_open_trades;
use crate::sizing::{close_share, limit_price, size_open, OpenLeg, OpenSize};
use crate::working::WorkingOrder;

impl Engine {
    pub(super) fn provider_fill(&mut self, f: &ProviderFill) -> Result<(), String> {
        let pid = self.provider_id(&f.provider)?;
        let sid = self.symbol_id(&f.symbol)?;
        let inst = &self.instruments[sid.index()];
        if inst.kind == Kind::Spot && f.leverage != 1 {
            return Err("leverage must be 1 on spot".into());
        }
        let prov = &self.providers[pid.index()];
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
        let before = prov.positions[sid.index()];
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

        let prov = &mut self.providers[pid.index()];
        prov.exec_ids.insert(f.exec_id.clone());
        prov.positions[sid.index()] = after;
        self.marks[sid.index()] = Some(f.price);
        if !self.symbol_providers[sid.index()].contains(&pid) {
            self.symbol_providers[sid.index()].push(pid);
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
        let inst = &instruments[sid.index()];
        let marks = &marks[..];
        let live = *live;
        let work = |rid, rel: &mut Relationship, _: &mut ()| {
            if rel.portfolio.closable(sid) == 0 {
                // nothing left to close (its close is still working), but a pure
                // reduction moved the mark: check it here, check_holders skips this book
                let held = rel.portfolio.signed_qty(sid) != 0;
                let hit = check_loss && held && rel.breaches(marks);
                return Visit {
                    record: None,
                    hit,
                    staged: None,
                };
            }
            let (record, staged) = close_one(
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
            let hit = check_loss && rel.breaches(marks);
            Visit {
                record: Some(record),
                hit,
                staged,
            }
        };
        let book = &providers[pid.index()].book;
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
        let inst = &instruments[sid.index()];
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
            let (record, staged) = open_one(rid, rel, &leg, balances, limits, source, live);
            Visit {
                record: Some(record),
                hit,
                staged,
            }
        };
        let book = &providers[pid.index()].book;
        fan_out(rels, book, threads, out, loss_hits, staged, work);
    }
}

/// The last (slippage, limit) computed in a fan-out: most followers share a slippage.
type LimitCache = Option<(Factor, Option<Price>)>;

/// What visiting one relationship in a fan-out produced.
struct Visit {
    record: Option<Record>,
    /// At or below its max-loss line.
    hit: bool,
    /// Live mode: the copy order sent, staged for the working-order table.
    staged: Option<(u128, WorkingOrder)>,
}

/// A part of a fan-out's output, in book order.
#[derive(Debug, Default)]
pub(super) struct Visited {
    records: Vec<Record>,
    hits: Vec<RelId>,
    staged: Vec<(u128, WorkingOrder)>,
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
        let cut = book.get(end).map_or(rest.len(), |&r| r.index() - offset);
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
    staged: &mut Vec<(u128, WorkingOrder)>,
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
            let Some(rel) = rels[rid.index() - first]
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
            into.staged.extend(v.staged);
        }
        into
    };
    // the first part appends to `out`, `hits` and `staged` as they are (no copy on one
    // thread)
    let first = Visited {
        records: std::mem::take(out),
        hits: std::mem::take(hits),
        staged: std::mem::take(staged),
    };
    let parts = split_book(rels, book, !threads.one, first, &mut threads.spare);
    let results = crate::parallel::map_parts(parts, visit);
    for (i, mut v) in results.into_iter().enumerate() {
        if i == 0 {
            (*out, *hits, *staged) = (v.records, v.hits, v.staged);
        } else {
            out.append(&mut v.records);
            hits.append(&mut v.hits);
            staged.append(&mut v.staged);
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
) -> (Record, Option<(u128, WorkingOrder)>) {
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
    if at_max_open_trades(s, pf, sid) {
        return skip(SkipReason::MaxOpenTrades);
    }
    let Ok((equity, free)) = balances else {
        return skip(SkipReason::Overflow);
    };
    let (qty, clamped) = match size_open(s, equity, free, leg) {
        OpenSize::Skip(reason) => return skip(reason),
        OpenSize::Copy { qty, clamped } => (qty, clamped),
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
    let mut staged = None;
    match live {
        false => {
            if pf
                .book_fill(sid, inst.kind, leg.side, qty, leg.price, leg.leverage)
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
            staged = Some((
                id,
                WorkingOrder {
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
    (order, staged)
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
) -> (Record, Option<(u128, WorkingOrder)>) {
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
    let mut staged = None;
    match live {
        false => {
            if rel
                .portfolio
                .book_fill(sid, inst.kind, side, qty, f.price, f.leverage)
                .is_err()
            {
                return skip(SkipReason::Overflow);
            }
        }
        true => {
            qty = inst.reportable(qty);
            rel.portfolio.close_sent(sid, qty);
            staged = Some((id, WorkingOrder::close(rid, sid, side, qty)));
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
    (order, staged)
}

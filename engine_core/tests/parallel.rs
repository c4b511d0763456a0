//! Big fan-outs and frames run on two threads (`engine_core::parallel`); the result must
//! be exactly that of one thread. Two engines over the same books, one of them held to
//! one thread, take the same random stream (executions both ways and on two symbols,
//! marks, fill and reject batches, pauses and unfollows, so books have gaps and stops
//! happen): every event's records, the `orders` frame, the working orders and every
//! portfolio must be equal.

#![allow(clippy::unwrap_used)]

use engine_core::coid::ClientOrderId;
use engine_core::engine::Engine;
use engine_core::fixed::{Price, Qty};
use engine_core::model::{Instrument, Kind, Record, SymbolId};
use engine_core::parallel::MIN_ITEMS;
use engine_core::scenario::parse_books;
use engine_core::wire::encode_orders;
use engine_core::{parse_event, Event};
use proptest::prelude::*;
use serde_json::{json, Value};

/// Followers of P: a book long enough to be cut in parts. Q's is short (one thread).
const ON_P: usize = MIN_ITEMS + 700;
const ON_Q: usize = 300;

fn books() -> String {
    // settings cycle, so neighbouring followers (and parts) differ
    let templates = [
        json!({"allocation": "1000"}),
        json!({"allocation": "300", "max_loss_pct": "5", "slippage_pct": "2"}),
        json!({"allocation": "5000", "max_open_trades": 1, "mode": "fixed_amount", "fixed_amount": "400"}),
        json!({"allocation": "2000", "mode": "multiplier", "multiplier": "3", "max_loss_pct": "20"}),
        json!({"allocation": "800", "max_per_trade_pct": "30", "max_loss_pct": "10"}),
        json!({"allocation": "7"}),
    ];
    let follows: Vec<Value> = (0..ON_P + ON_Q)
        .map(|i| {
            let mut f = templates[i % templates.len()].clone();
            let provider = if i < ON_P { "P" } else { "Q" };
            f["follower"] = json!(format!("f{i}"));
            f["provider"] = json!(provider);
            f
        })
        .collect();
    json!({"version": 1, "providers": [{"id": "P"}, {"id": "Q"}], "follows": follows}).to_string()
}

const SYMS: [(&str, Kind, &str, &str); 2] = [
    ("BTC", Kind::Spot, "0.01", "0.001"),
    ("ETH-PERP", Kind::Perp, "0.5", "0.01"),
];

#[derive(Debug, Clone)]
enum Action {
    /// provider, symbol, buy, qty steps, price ticks, provider equity, leverage
    Exec(usize, usize, bool, u32, u32, u32, u32),
    Mark(usize, u32),
    /// report every `every`-th working order: filled k/4, or rejected
    Report {
        every: usize,
        k: u32,
        reject: bool,
    },
    /// pause (or unfollow) every `every`-th follower from `from`
    Pause {
        from: usize,
        every: usize,
        unfollow: bool,
    },
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        5 => (0..2usize, 0..2usize, any::<bool>(), 1u32..400, 100u32..400,
              prop::sample::select(vec![500u32, 1000, 5000, 20000]), 1u32..10)
            .prop_map(|(p, s, b, q, px, eq, l)| Action::Exec(p, s, b, q, px, eq, l)),
        1 => (0..2usize, 100u32..400).prop_map(|(s, px)| Action::Mark(s, px)),
        4 => (1..4usize, 0u32..=4, any::<bool>())
            .prop_map(|(every, k, reject)| Action::Report { every, k, reject }),
        1 => (0..ON_P + ON_Q, 50..400usize, any::<bool>())
            .prop_map(|(from, every, unfollow)| Action::Pause { from, every, unfollow }),
    ]
}

fn engine(one_thread: bool) -> Engine {
    let mut e = parse_books(&books()).unwrap();
    if one_thread {
        e = e.one_thread();
    }
    for (symbol, kind, tick, step) in SYMS {
        let inst = Instrument {
            symbol: symbol.into(),
            kind,
            tick: Price::parse(tick).unwrap(),
            step: Qty::parse(step).unwrap(),
            min_qty: Qty::ZERO,
            min_notional: engine_core::fixed::Money::ZERO,
        };
        assert!(e.add_instrument(inst).is_empty());
    }
    e
}

fn units(n: u32, unit: &str) -> String {
    Qty(i128::from(n) * Qty::parse(unit).unwrap().0).to_string()
}

/// The `orders` frame of `records` (leverage from the working-order table, as the
/// daemon writes it for reports).
fn frame(e: &Engine, seq: u64, records: &[Record]) -> Vec<u8> {
    let mut buf = Vec::new();
    encode_orders(
        e,
        seq,
        records,
        |o| e.working_order(o.client_order_id).map_or(1, |p| p.leverage),
        &mut buf,
    );
    buf
}

/// The client order ids of `records`' orders, in order.
fn order_ids(records: &[Record]) -> Vec<ClientOrderId> {
    records
        .iter()
        .filter_map(|r| match r {
            Record::Order(o) => Some(o.client_order_id),
            _ => None,
        })
        .collect()
}

/// Apply `a` to both engines; their records and frames must agree.
fn step(
    one: &mut Engine,
    two: &mut Engine,
    seq: u64,
    a: &Action,
    marks: &mut [u32; 2],
) -> Result<(), TestCaseError> {
    let mut records = |e: &mut Engine| -> Vec<Record> {
        match a {
            Action::Exec(p, s, buy, q, px, eq, lev) => {
                let (symbol, kind, tick, step) = SYMS[*s];
                marks[*s] = *px;
                let provider = ["P", "Q"][*p];
                let v = json!({"type": "fill", "provider": provider, "exec_id": format!("x{seq}"),
                    "symbol": symbol, "side": if *buy { "buy" } else { "sell" },
                    "qty": units(*q, step), "price": units(*px, tick),
                    "provider_equity": eq.to_string(),
                    "leverage": if kind == Kind::Spot { 1 } else { *lev }});
                e.apply(seq, &parse_event(&v).unwrap()).to_vec()
            }
            Action::Mark(s, px) => {
                let (symbol, _, tick, _) = SYMS[*s];
                let v = json!({"type": "mark", "symbol": symbol, "price": units(*px, tick)});
                e.apply(seq, &parse_event(&v).unwrap()).to_vec()
            }
            Action::Report { every, k, reject } => {
                let picked: Vec<(String, Qty, Price, SymbolId)> = e
                    .resend_working()
                    .iter()
                    .step_by(*every)
                    .filter_map(|r| match r {
                        Record::Order(o) => Some((o.client_order_id, o.symbol, o.limit, o.qty)),
                        _ => None,
                    })
                    .map(|(id, sym, limit, qty)| {
                        let step = Qty::parse(SYMS[sym.index()].3).unwrap().0;
                        let mark = Price(
                            Price::parse(SYMS[sym.index()].2).unwrap().0
                                * i128::from(marks[sym.index()]),
                        );
                        let price = if limit.0 > 0 { limit } else { mark };
                        (
                            id.to_string(),
                            Qty(qty.0 * i128::from(*k) / 4 / step * step),
                            price,
                            sym,
                        )
                    })
                    .collect();
                if *reject {
                    let r: Vec<(&str, &str)> = picked
                        .iter()
                        .map(|(id, ..)| (id.as_str(), "expired"))
                        .collect();
                    e.copy_rejects(seq, r).to_vec()
                } else {
                    let text: Vec<(String, String, String)> = picked
                        .iter()
                        .map(|(id, q, p, _)| (id.clone(), q.to_string(), p.to_string()))
                        .collect();
                    e.copy_fills(
                        seq,
                        text.iter()
                            .map(|(a, b, c)| (a.as_str(), b.as_str(), c.as_str())),
                    )
                    .to_vec()
                }
            }
            Action::Pause {
                from,
                every,
                unfollow,
            } => {
                let mut out = Vec::new();
                for i in (*from..ON_P + ON_Q).step_by(*every) {
                    let v = json!({"type": if *unfollow { "unfollow" } else { "pause" },
                        "follower": format!("f{i}"), "provider": if i < ON_P { "P" } else { "Q" }});
                    let ev: Event = parse_event(&v).unwrap();
                    out.extend(e.apply(seq, &ev).iter().cloned());
                }
                out
            }
        }
    };
    let (a1, a2) = (records(one), records(two));
    prop_assert_eq!(&a1, &a2, "records differ");
    prop_assert!(
        frame(one, seq, &a1) == frame(two, seq, &a2),
        "frames differ"
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn two_threads_give_what_one_thread_gives(actions in prop::collection::vec(action(), 1..25)) {
        let (mut one, mut two) = (engine(true), engine(false));
        let mut marks = [0u32; 2];
        for (i, a) in actions.iter().enumerate() {
            step(&mut one, &mut two, i as u64 + 1, a, &mut marks)?;
            prop_assert_eq!(one.working_count(), two.working_count());
        }
        let working = |e: &mut Engine| -> Vec<(ClientOrderId, engine_core::working::WorkingOrder)> {
            let ids = order_ids(e.resend_working());
            ids.into_iter().map(|id| (id, *e.working_order(id).unwrap())).collect()
        };
        let (w1, w2) = (working(&mut one), working(&mut two));
        prop_assert_eq!(w1.len(), w2.len());
        for ((id1, p1), (id2, p2)) in w1.iter().zip(&w2) {
            prop_assert_eq!(id1, id2);
            prop_assert_eq!(format!("{p1:?}"), format!("{p2:?}"));
        }
        prop_assert_eq!(one.portfolios(), two.portfolios());
    }
}

#[test]
fn a_long_book_is_fanned_out_in_parts_with_its_orders_staged_then_filed() {
    // the fan-out leaves its working orders staged: visible, counted, and filed by the
    // next call that needs the table (or by `file_staged`)
    let mut e = engine(false);
    let v = json!({"type": "fill", "provider": "P", "exec_id": "x1", "symbol": "BTC",
        "side": "buy", "qty": "1", "price": "100", "provider_equity": "100000"});
    let orders = order_ids(e.apply(1, &parse_event(&v).unwrap()));
    assert!(orders.len() > MIN_ITEMS, "{} orders", orders.len());
    assert_eq!(e.working_count(), orders.len());
    assert!(orders.iter().all(|&id| e.working_order(id).is_some()));
    e.file_staged();
    assert_eq!(e.working_count(), orders.len());
    // the orders come back in follow order (f0, f1, ...), as on one thread
    let mut one = engine(true);
    let same = order_ids(one.apply(1, &parse_event(&v).unwrap()));
    assert_eq!(orders, same);
    // a snapshot holds the working orders whether or not they were filed
    let mut staged = engine(false);
    staged.apply(1, &parse_event(&v).unwrap());
    let restored = Engine::restore(&staged.snapshot().unwrap()).unwrap();
    assert_eq!(restored.working_count(), orders.len());
    assert!(orders
        .iter()
        .all(|&id| restored.working_order(id).is_some()));
}

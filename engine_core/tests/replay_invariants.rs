//! Invariants of the engine over random event streams (proptest). The exact agreement
//! with the plain-Python reference is `tests/test_differential.py`; these hold for any
//! input, including the invalid events mixed in.

use std::collections::{HashMap, HashSet};

use engine_core::fixed::Qty;
use engine_core::scenario::{parse, run};
use proptest::prelude::*;
use serde_json::{json, Value};

const SYMBOLS: [(&str, &str, &str, &str); 2] = [
    ("BTC", "spot", "0.01", "0.001"),
    ("ETH-PERP", "perp", "0.5", "0.01"),
];

fn event() -> impl Strategy<Value = Value> {
    let follower = prop::sample::select(vec!["a", "b", "c", "d", "e"]);
    let provider = prop::sample::select(vec!["p1", "p2"]);
    let symbol = 0..SYMBOLS.len();
    prop_oneof![
        (follower.clone(), provider.clone(), 1u32..5000, 0..3usize, prop::option::of(1u32..90), prop::option::of(1u32..4), any::<bool>()).prop_map(
            |(f, p, alloc, mode, loss, max_open, stop)| {
                let mode = ["proportional", "fixed_amount", "multiplier"][mode];
                let mut e = json!({"type": "follow", "follower": f, "provider": p, "allocation": alloc.to_string(),
                    "mode": mode, "fixed_amount": "150", "multiplier": "2.5",
                    "stop_copy_on_close": stop, "max_per_trade_pct": "60"});
                if let Some(l) = loss { e["max_loss_pct"] = json!(l.to_string()); }
                if let Some(m) = max_open { e["max_open_trades"] = json!(m); }
                e
            }
        ),
        (provider.clone(), symbol.clone(), any::<bool>(), 1u32..400, 1u32..8000, 500u32..20000, 1u32..20, 0u32..1000).prop_map(
            |(p, s, buy, q, px, eq, lev, id)| {
                let (sym, kind, tick, step) = SYMBOLS[s];
                json!({"type": "fill", "provider": p, "exec_id": format!("x{id}"), "symbol": sym, "side": if buy {"buy"} else {"sell"},
                    "qty": mul_text(q, step), "price": mul_text(px * 4, tick), "provider_equity": eq.to_string(),
                    "leverage": if kind == "perp" { lev } else { 1 }})
            }
        ),
        (symbol.clone(), 1u32..8000).prop_map(|(s, px)| json!({"type": "mark", "symbol": SYMBOLS[s].0, "price": mul_text(px * 4, SYMBOLS[s].2)})),
        (follower.clone(), provider.clone(), 1u32..3000, any::<bool>()).prop_map(|(f, p, amt, dep)| json!({"type": if dep {"deposit"} else {"withdraw"}, "follower": f, "provider": p, "amount": amt.to_string()})),
        (follower, provider).prop_map(|(f, p)| json!({"type": "unfollow", "follower": f, "provider": p})),
    ]
}

/// `n × unit` as exact decimal text (unit like "0.01").
fn mul_text(n: u32, unit: &str) -> String {
    let decimals = unit.split('.').nth(1).map_or(0, str::len);
    let raw = u64::from(n) * unit.replace('.', "").parse::<u64>().unwrap_or(1);
    let text = format!("{raw:0>width$}", width = decimals + 1);
    let (int, frac) = text.split_at(text.len() - decimals);
    if decimals == 0 {
        int.to_string()
    } else {
        format!("{int}.{frac}")
    }
}

fn scenario(events: &[Value]) -> String {
    let instruments: Vec<Value> = SYMBOLS
        .iter()
        .map(|(s, k, t, st)| json!({"symbol": s, "kind": k, "tick": t, "step": st, "min_qty": st, "min_notional": "1"}))
        .collect();
    json!({"instruments": instruments, "providers": [{"id": "p1"}, {"id": "p2"}], "events": events})
        .to_string()
}

fn replay(text: &str) -> Vec<Value> {
    run(parse(text).expect("valid header"))
}

/// A printed decimal as a raw 1e-8 integer (exact; 0 if it does not parse).
fn raw(v: &Value) -> i128 {
    v.as_str()
        .and_then(|s| Qty::parse(s).ok())
        .map_or(0, |q| q.raw())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn replay_invariants_hold(events in prop::collection::vec(event(), 1..60)) {
        let text = scenario(&events);
        let out = replay(&text);
        prop_assert_eq!(&out, &replay(&text), "not deterministic");
        let mut ids = HashSet::new();
        let mut positions: HashMap<(String, String, String), i128> = HashMap::new();
        let mut next_event = 0;
        for rec in &out {
            // An unfollow ends the relationship; a later follow starts flat. Forget the
            // positions of every unfollow before this record's event.
            let upto = rec["event"].as_u64().map_or(events.len(), |e| e as usize);
            for ev in &events[next_event.min(upto)..upto] {
                if ev["type"] == "unfollow" {
                    positions.retain(|k, _| (k.0.as_str(), k.1.as_str()) != (ev["follower"].to_string().as_str(), ev["provider"].to_string().as_str()));
                }
            }
            next_event = next_event.max(upto);
            match rec["kind"].as_str() {
                Some("order") => {
                    let id = rec["client_order_id"].as_str().unwrap_or_default().to_owned();
                    prop_assert!(id.len() == 22 && id.bytes().all(|b| b.is_ascii_alphanumeric()), "bad id {}", id);
                    prop_assert!(ids.insert(id), "client order id repeated");
                    let qty = raw(&rec["qty"]);
                    prop_assert!(qty > 0, "non-positive qty in {}", rec);
                    let sym = rec["symbol"].as_str().unwrap_or_default();
                    let step = SYMBOLS.iter().find(|s| s.0 == sym).map_or(1, |s| raw(&json!(s.3)));
                    prop_assert!(qty % step == 0, "qty off the step grid: {}", rec);
                    let key = (rec["follower"].to_string(), rec["provider"].to_string(), sym.to_owned());
                    let held = positions.entry(key).or_insert(0);
                    let signed = if rec["side"] == "buy" { qty } else { -qty };
                    if rec["reduce_only"] == true {
                        // reduce-only never opens, never flips
                        prop_assert!(*held != 0 && held.signum() != signed.signum() && qty <= held.abs(), "bad close {}", rec);
                        prop_assert!(rec["price"].is_null() && rec["type"] == "market");
                    } else {
                        prop_assert!(rec["type"] == "limit_ioc" && raw(&rec["price"]) > 0);
                    }
                    *held += signed;
                    if sym == "BTC" {
                        prop_assert!(*held >= 0, "spot copy went short: {}", rec);
                    }
                }
                Some("portfolio") => {
                    for p in rec["positions"].as_array().into_iter().flatten() {
                        prop_assert!(raw(&p["qty"]) != 0, "flat position listed");
                    }
                }
                Some("skip" | "stop" | "error") => {}
                other => prop_assert!(false, "unknown record kind {:?}", other),
            }
        }
    }
}

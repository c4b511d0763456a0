//! Settlement through the crate's API: the issue's monthly case replayed from a scenario,
//! and the scale of one settlement pass.
//!
//! `cargo test --release -p engine_core --test settlement -- --ignored --nocapture`
//! prints the time of settling 100,000 relationships.

#![allow(clippy::unwrap_used)]

use std::time::Instant;

use engine_core::event::parse_event;
use engine_core::model::Record;
use engine_core::settlement::{Period, SettleStatus};
use serde_json::{json, Value};

fn header(settlement: &str) -> Value {
    json!({
        "version": 2,
        "instruments": [{"symbol": "BTC", "kind": "spot", "tick": "0.01", "step": "0.001",
                         "min_qty": "0", "min_notional": "0"}],
        "providers": [{"id": "P", "profit_share_pct": "30"}],
        "platform": {"platform_fee_pct": "10", "settlement": settlement},
        "events": [],
    })
}

#[test]
fn monthly_30_percent_from_10000() {
    let mut s = header("monthly");
    let mark = |day: &str, price: &str| json!({"time": format!("{day}T00:00:00Z"), "type": "mark", "symbol": "BTC", "price": price});
    s["events"] = json!([
        {"time": "2026-10-15T00:00:00Z", "type": "follow", "follower": "a", "provider": "P",
         "allocation": "10000"},
        {"type": "fill", "provider": "P", "exec_id": "x1", "symbol": "BTC", "side": "buy",
         "qty": "5", "price": "1000", "provider_equity": "10000"},
        mark("2026-10-20", "1400"),
        mark("2026-11-20", "1320"),
        mark("2026-12-02", "1620"),
        mark("2027-01-02", "1950"),
        mark("2027-02-02", "1950"),
    ]);
    let records = engine_core::replay(&s.to_string()).unwrap();
    let settled: Vec<(String, String, String, String)> = records
        .iter()
        .filter(|r| r["kind"] == "settlement")
        .map(|r| {
            let f = |k: &str| r[k].as_str().unwrap().to_string();
            (f("period"), f("equity"), f("due"), f("status"))
        })
        .collect();
    let row = |p: &str, e: &str, d: &str| (p.into(), e.into(), d.into(), "charged".into());
    assert_eq!(
        settled,
        [
            row("2026-10", "12000", "600"),
            row("2026-12", "12500", "150"),
            row("2027-01", "14000", "450"),
        ]
    );
    let last = records.last().unwrap();
    assert_eq!(
        (&last["cash"], &last["high_watermark"], &last["fees_paid"]),
        (&json!("3800"), &json!("14000"), &json!("1200"))
    );
}

/// `n` followers of one provider, each holding a copy of 1 BTC bought at 100 (cash
/// 900 of 1,000), then BTC marked at 150: every relationship has 50 of profit.
fn book(n: usize) -> engine_core::Engine {
    let mut engine = engine_core::scenario::parse(&header("none").to_string())
        .unwrap()
        .engine;
    for i in 0..n {
        let ev = parse_event(&json!({"type": "follow", "follower": format!("f{i}"),
            "provider": "P", "allocation": "1000"}))
        .unwrap();
        engine.apply(i as u64, &ev);
    }
    let fill = parse_event(
        &json!({"type": "fill", "provider": "P", "exec_id": "x", "symbol": "BTC",
        "side": "buy", "qty": "1", "price": "100", "provider_equity": "1000"}),
    )
    .unwrap();
    assert_eq!(engine.apply(n as u64, &fill).len(), n);
    let mark = parse_event(&json!({"type": "mark", "symbol": "BTC", "price": "150"})).unwrap();
    engine.apply(n as u64 + 1, &mark);
    engine
}

fn settle_all(engine: &mut engine_core::Engine, n: usize) {
    let records = engine.settle(7, Period::Manual(7)).unwrap();
    assert_eq!(records.len(), n);
    for r in records {
        let Record::Settlement(s) = r else {
            panic!("{r:?}")
        };
        // 30 % of 50 = 15, of which 10 % to the platform
        assert_eq!(s.charge.status, SettleStatus::Charged);
        assert_eq!(s.charge.due.to_string(), "15");
        assert_eq!(s.charge.platform_credit.to_string(), "1.5");
    }
    assert!(
        engine.settle(8, Period::Manual(7)).is_none(),
        "settled once"
    );
}

#[test]
fn one_pass_settles_every_relationship_once() {
    let mut engine = book(3000);
    settle_all(&mut engine, 3000);
}

#[test]
#[ignore = "a measurement: run with --release -- --ignored --nocapture"]
fn settling_100000_relationships() {
    let n = 100_000;
    let mut best = u128::MAX;
    for _ in 0..5 {
        let mut engine = book(n);
        let t = Instant::now();
        let count = engine.settle(7, Period::Manual(7)).unwrap().len();
        best = best.min(t.elapsed().as_micros());
        assert_eq!(count, n);
    }
    println!("settling {n} relationships: best of 5 = {best} µs");
    let mut engine = book(n);
    settle_all(&mut engine, n);
}

/// `{"type":"platform","max_profit_share_pct"}`: the cap on the shares set from now on,
/// at once; refused (naming the provider, nothing changed) below a provider's share in
/// force or waiting for the next boundary.
#[test]
fn the_maximum_share_is_a_control_change_refused_below_a_providers_share() {
    use engine_core::control::{parse_change, Change};
    let terms = |engine: &mut engine_core::Engine, text: &str| -> Vec<String> {
        let Ok(Change::Terms(t)) = parse_change(text) else {
            panic!("{text}")
        };
        engine
            .apply_terms(&t)
            .iter()
            .map(|r| match r {
                Record::Error(m) => m.clone(),
                other => panic!("{other:?}"),
            })
            .collect()
    };
    let mut s = header("monthly");
    s["providers"] = json!([{"id": "P", "profit_share_pct": "30"}, {"id": "Q"}]);
    let mut engine = engine_core::scenario::parse(&s.to_string()).unwrap().engine;
    // raised: Q may now have 40 (at once: no input yet)
    assert_eq!(
        terms(
            &mut engine,
            r#"{"type":"platform","max_profit_share_pct":"45"}"#
        ),
        Vec::<String>::new()
    );
    assert_eq!(
        terms(
            &mut engine,
            r#"{"type":"profit_share","provider":"Q","profit_share_pct":"40"}"#
        ),
        Vec::<String>::new()
    );
    assert_eq!(engine.profit_share("Q").unwrap().0.to_string(), "40");
    // lowered below Q's 40: refused, and the fee given with it is not set either
    assert_eq!(
        terms(
            &mut engine,
            r#"{"type":"platform","max_profit_share_pct":"35","platform_fee_pct":"20"}"#
        ),
        vec!["max_profit_share_pct 35 is below provider 'Q''s profit_share_pct 40".to_string()]
    );
    assert_eq!(engine.settlement_terms().1.to_string(), "10");
    assert_eq!(
        terms(
            &mut engine,
            r#"{"type":"profit_share","provider":"Q","profit_share_pct":"45.5"}"#
        ),
        vec!["profit_share_pct 45.5 is above max_profit_share_pct 45".to_string()]
    );
    // once the input fixed the schedule, a lowered share waits for the boundary: the
    // share in force (40) still bounds the maximum until then
    let at = |day: &str| engine_core::venue_time::parse(&format!("{day}T00:00:00Z")).unwrap();
    engine.advance_clock(1, at("2026-10-15"));
    assert_eq!(
        terms(
            &mut engine,
            r#"{"type":"profit_share","provider":"Q","profit_share_pct":"20"}"#
        ),
        Vec::<String>::new()
    );
    assert_eq!(
        terms(
            &mut engine,
            r#"{"type":"platform","max_profit_share_pct":"30"}"#
        ),
        vec!["max_profit_share_pct 30 is below provider 'Q''s profit_share_pct 40".to_string()]
    );
    engine.advance_clock(2, at("2026-11-01"));
    assert_eq!(engine.profit_share("Q").unwrap().0.to_string(), "20");
    // P's 30 is the highest now: 30 is allowed, 29.99 is not
    assert_eq!(
        terms(
            &mut engine,
            r#"{"type":"platform","max_profit_share_pct":"30"}"#
        ),
        Vec::<String>::new()
    );
    assert_eq!(
        terms(
            &mut engine,
            r#"{"type":"platform","max_profit_share_pct":"29.99"}"#
        ),
        vec!["max_profit_share_pct 29.99 is below provider 'P''s profit_share_pct 30".to_string()]
    );
    assert_eq!(
        terms(
            &mut engine,
            r#"{"type":"profit_share","provider":"Q","profit_share_pct":"31"}"#
        ),
        vec!["profit_share_pct 31 is above max_profit_share_pct 30".to_string()]
    );
}

#![allow(clippy::float_arithmetic)] // timing statistics only; no money here
//! One provider execution fanned out to N followers, in pure Rust (no Python, no JSON
//! per call): the number to profile when the core itself gets slower. The end-to-end
//! figure that includes the Python call is `copyengine bench --core`.
//!
//! `cargo bench -p engine_core --bench fanout -- 10000 [ITERATIONS]`

use std::time::Instant;

use engine_core::event::{parse_event, Event};

use serde_json::json;

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(10_000);
    let scenario = json!({
        "instruments": [{"symbol": "BTCUSDT", "kind": "spot", "tick": "0.01", "step": "0.00001", "min_qty": "0.00001", "min_notional": "5"}],
        "providers": [{"id": "p1"}],
        "events": [],
    });
    let mut engine = engine_core::scenario::parse(&scenario.to_string())
        .expect("valid scenario")
        .engine;
    let modes = [
        json!({"mode": "proportional"}),
        json!({"mode": "fixed_amount", "fixed_amount": "1000"}),
        json!({"mode": "multiplier", "multiplier": "1.5"}),
    ];
    for i in 0..n {
        let mut ev = json!({"type": "follow", "follower": format!("f{i}"), "provider": "p1", "allocation": (10_000 + i % 977).to_string(), "max_loss_pct": "50", "max_open_trades": 5});
        for (k, v) in modes[i % 3].as_object().into_iter().flatten() {
            ev[k] = v.clone();
        }
        let ev = parse_event(&ev).expect("valid follow");
        engine.apply(i as u64, &ev);
    }
    let fill = |i: usize, side: &str| -> Event {
        parse_event(&json!({"type": "fill", "provider": "p1", "exec_id": format!("x{i}-{side}"), "symbol": "BTCUSDT", "side": side, "qty": "0.5", "price": "60000.5", "provider_equity": "100000"}))
            .expect("valid fill")
    };
    // `-- N ITERATIONS`; a few iterations under `valgrind --tool=callgrind` give an
    // instruction count that, unlike time on a shared VM, repeats exactly.
    let iterations: usize = std::env::args()
        .filter_map(|a| a.parse().ok())
        .nth(1)
        .unwrap_or(300);
    let mut open_ns = Vec::with_capacity(iterations);
    let mut close_ns = Vec::with_capacity(iterations);
    let mut seq = n as u64;
    for i in 0..iterations {
        let (open, close) = (fill(i, "buy"), fill(i, "sell"));
        let t = Instant::now();
        let orders = engine.apply(seq, &open).len();
        open_ns.push(t.elapsed().as_nanos() as f64);
        assert_eq!(orders, n, "every follower copies");
        let t = Instant::now();
        engine.apply(seq + 1, &close);
        close_ns.push(t.elapsed().as_nanos() as f64);
        seq += 2;
    }
    let mut report = String::new();
    for (name, mut v) in [("open", open_ns), ("close", close_ns)] {
        v.sort_by(f64::total_cmp);
        let pct = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize] / 1000.0;
        report += &format!(
            "{name:>5} fan-out, {n} followers: p50 {:.1} us, p99 {:.1} us, {:.1} ns/follower\n",
            pct(0.5),
            pct(0.99),
            pct(0.5) * 1000.0 / n as f64
        );
    }
    // One write: a closed pipe (`| head -1`) then costs nothing but this output.
    let _ = std::io::Write::write_all(&mut std::io::stdout(), report.as_bytes());
}

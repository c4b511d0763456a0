#![allow(clippy::float_arithmetic)] // timing statistics only; no money here
//! The daemon's hot loop in pure Rust: a provider execution fanned out to N followers in
//! live mode (reservations, working orders, the `orders` frame), then the venue's fills
//! for every copy applied. `copyengine bench` measures the same over sockets; this is the
//! number to profile (`perf record`) when the engine's share of that gets slower.
//!
//! `cargo bench -p engine_core --bench live -- 10000 [ITERATIONS]`: each phase on one
//! thread (the baseline) and on two (`engine_core::parallel`), interleaved in one run.

use std::time::Instant;

use engine_core::event::parse_event;
use engine_core::model::Record;
use engine_core::wire::encode_orders;
use serde_json::json;

/// One engine's timings per phase, in nanoseconds.
#[derive(Default)]
struct Times {
    exec: Vec<f64>,
    frame: Vec<f64>,
    file: Vec<f64>,
    fills: Vec<f64>,
}

fn main() {
    let mut args = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse::<usize>().ok());
    let n = args.next().unwrap_or(10_000);
    let iterations = args.next().unwrap_or(200);
    let follows: Vec<_> = (0..n)
        .map(|i| json!({"follower": format!("f{i:06}"), "provider": "p1", "allocation": "1000000"}))
        .collect();
    let books = json!({"version": 1, "providers": [{"id": "p1"}], "follows": follows});
    let inst = json!({"symbol": "BTCUSDT", "kind": "spot", "tick": "0.01", "step": "0.00001",
                      "min_qty": "0.00001", "min_notional": "5"});
    let engine = || {
        let mut e = engine_core::scenario::parse_books(&books.to_string()).expect("valid books");
        e.add_instrument(engine_core::scenario::instrument(&inst, "instrument").expect("valid"));
        e
    };
    // the baseline in the same run: the same engine with every fan-out on one thread
    let mut engines = [engine().one_thread(), engine()];
    let mut times = [Times::default(), Times::default()];
    let mut frame = Vec::new();
    // `COLD=1`: evict the caches between the fan-out and its fills
    let cold = std::env::var_os("COLD").is_some();
    let mut sweep = vec![0u8; if cold { 64 << 20 } else { 0 }];
    for i in 0..iterations {
        // alternate buys and sells so positions (and their lots) stay bounded
        let side = if i % 2 == 0 { "buy" } else { "sell" };
        let ev = parse_event(
            &json!({"type": "fill", "provider": "p1", "exec_id": format!("x{i}"),
            "symbol": "BTCUSDT", "side": side, "qty": "0.001", "price": "60000",
            "provider_equity": "1000000"}),
        )
        .expect("valid fill");
        let seq = 2 * i as u64 + 2;
        for (engine, t) in engines.iter_mut().zip(&mut times) {
            let start = Instant::now();
            let records = engine.apply(seq, &ev).to_vec();
            t.exec.push(start.elapsed().as_nanos() as f64);
            let start = Instant::now();
            frame.clear();
            let orders = encode_orders(engine, seq, &records, |_| 1, &mut frame);
            t.frame.push(start.elapsed().as_nanos() as f64);
            assert_eq!(orders, n, "every follower copies");
            // after the frame is sent: off the latency path, on it for the fills
            let start = Instant::now();
            engine.file_staged();
            t.file.push(start.elapsed().as_nanos() as f64);
            let fills: Vec<(String, String, String)> = records
                .iter()
                .filter_map(|r| match r {
                    Record::Order(o) => Some((
                        o.client_order_id.to_string(),
                        o.qty.to_string(),
                        "60000".into(),
                    )),
                    _ => None,
                })
                .collect();
            if cold {
                // what the daemon sees: the venue and Python ran since the fan-out
                sweep.iter_mut().for_each(|b| *b = b.wrapping_add(1));
            }
            let start = Instant::now();
            let out = engine.copy_fills(
                seq + 1,
                fills
                    .iter()
                    .map(|(a, b, c)| (a.as_str(), b.as_str(), c.as_str())),
            );
            t.fills.push(start.elapsed().as_nanos() as f64);
            assert!(out.is_empty(), "fills apply cleanly: {:?}", out.first());
        }
    }
    let p = |v: &mut Vec<f64>, q: f64| {
        v.sort_by(f64::total_cmp);
        v[((v.len() as f64 - 1.0) * q) as usize] / 1000.0
    };
    let [one, two] = &mut times;
    for (name, a, b) in [
        ("execute", &mut one.exec, &mut two.exec),
        ("orders frame", &mut one.frame, &mut two.frame),
        ("file working", &mut one.file, &mut two.file),
        ("fills", &mut one.fills, &mut two.fills),
    ] {
        let (a50, a99, b50, b99) = (p(a, 0.5), p(a, 0.99), p(b, 0.5), p(b, 0.99));
        println!(
            "{name:>12}, {n} followers: one thread p50 {a50:8.1} us, p99 {a99:8.1} us; \
             two p50 {b50:8.1} us, p99 {b99:8.1} us ({:.2}x at p50)",
            a50 / b50
        );
    }
}

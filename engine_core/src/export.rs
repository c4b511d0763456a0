//! The engine's portfolios exported as JSON Lines, for the projector, tests and
//! operators: the replay's `portfolio` records (with `high_watermark` and `fees_paid`,
//! as in version 2) plus `reserved`, `base` and the FIFO
//! `lots` (live mode's view of a relationship).

use serde_json::{json, Value};

use crate::engine::{Engine, PortfolioView};
use crate::scenario::portfolio_json;

/// One relationship's portfolio record (see the module comment).
pub fn portfolio_record(view: &PortfolioView) -> Value {
    let mut v = portfolio_json(view, true);
    if let Value::Object(map) = &mut v {
        map.insert("reserved".into(), json!(view.reserved.to_string()));
        map.insert("base".into(), json!(view.base.to_string()));
        let lots: Vec<Value> = view
            .lots
            .iter()
            .map(|(symbol, long, lot)| {
                json!({"symbol": symbol, "side": if *long { "long" } else { "short" },
                       "qty": lot.qty.to_string(), "entry": lot.entry.to_string(),
                       "leverage": lot.leverage})
            })
            .collect();
        map.insert("lots".into(), Value::Array(lots));
    }
    v
}

/// Every relationship's portfolio record, one JSON object a line, in follow order.
pub fn portfolios_jsonl(engine: &Engine) -> String {
    let mut out = String::new();
    for view in engine.portfolios() {
        out.push_str(&portfolio_record(&view).to_string());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::parse_event;
    use crate::fixed::{Money, Price, Qty};
    use crate::model::{Instrument, Kind, Record};
    use crate::scenario::parse_books;

    #[test]
    fn a_live_portfolio_with_a_lot_and_a_working_order() {
        let books = json!({"version": 1, "providers": [{"id": "P"}], "follows": [
            {"follower": "a", "provider": "P", "allocation": "1000", "slippage_pct": "10"}]});
        let mut e = parse_books(&books.to_string()).unwrap();
        e.add_instrument(Instrument {
            symbol: "BTC".into(),
            kind: Kind::Spot,
            tick: Price::parse("0.01").unwrap(),
            step: Qty::parse("0.001").unwrap(),
            min_qty: Qty::ZERO,
            min_notional: Money::ZERO,
        });
        let exec = |id: &str| {
            parse_event(&json!({"type": "fill", "provider": "P", "exec_id": id,
                "symbol": "BTC", "side": "buy", "qty": "1", "price": "100",
                "provider_equity": "1000", "leverage": 1}))
            .unwrap()
        };
        let id = match e.apply(1, &exec("x1")) {
            [Record::Order(o)] => o.client_order_id.to_string(),
            other => panic!("{other:?}"),
        };
        assert!(e.copy_fills(2, [(id.as_str(), "1", "99")]).is_empty());
        // a second copy of 1 at limit 110 stays working: 110 reserved
        assert!(matches!(e.apply(3, &exec("x2")), [Record::Order(_)]));
        // the second copy: 1 × 1001/1000 = 1.001 at limit 110, so 110.11 reserved
        assert_eq!(
            portfolios_jsonl(&e),
            [
                r#"{"event":null,"kind":"portfolio","follower":"a","provider":"P","#,
                r#""status":"active","cash":"901","equity":"1001","#,
                r#""positions":[{"symbol":"BTC","qty":"1"}],"high_watermark":"1000","fees_paid":"0","#,
                r#""reserved":"110.11","base":"1000","#,
                r#""lots":[{"symbol":"BTC","side":"long","qty":"1","entry":"99","leverage":1}]}"#,
                "\n",
            ]
            .concat()
        );
    }
}

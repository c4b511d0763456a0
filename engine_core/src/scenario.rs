//! Scenario files (format v1): the header builds an engine, the events are replayed and
//! every outcome becomes one JSON record (docs/scenario-format.md "Output records").

use std::collections::HashSet;

use serde_json::{json, Map, Value};

use crate::engine::{Engine, PortfolioView};
use crate::event::{parse_event, DecimalRange, Fields};
use crate::fixed::{Price, Qty};
use crate::model::{Instrument, Kind, Platform, Record};

/// Why a file is not a valid scenario (the replay exits non-zero with it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioError(pub String);

impl std::fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ScenarioError {}

pub struct Scenario {
    pub engine: Engine,
    pub events: Vec<Value>,
}

fn bad(msg: impl Into<String>) -> ScenarioError {
    ScenarioError(msg.into())
}

fn array<'a>(top: &'a Map<String, Value>, key: &str) -> Result<&'a Vec<Value>, ScenarioError> {
    match top.get(key) {
        None => Err(bad(format!("missing field '{key}'"))),
        Some(Value::Array(a)) => Ok(a),
        Some(_) => Err(bad(format!("field '{key}' must be an array"))),
    }
}

fn object<'a>(v: &'a Value, at: &str) -> Result<Fields<'a>, ScenarioError> {
    v.as_object()
        .map(Fields::new)
        .ok_or_else(|| bad(format!("{at} must be an object")))
}

/// Parse and validate a scenario's header; its events are kept raw (each is validated
/// when it is applied, so a bad event is an `error` record, not a bad file).
pub fn parse(text: &str) -> Result<Scenario, ScenarioError> {
    let v: Value = serde_json::from_str(text).map_err(|e| bad(format!("not JSON: {e}")))?;
    let Value::Object(mut top) = v else {
        return Err(bad("the scenario must be a JSON object"));
    };
    if let Some(k) = top.keys().find(|k| {
        !["version", "instruments", "providers", "platform", "events"].contains(&k.as_str())
    }) {
        return Err(bad(format!("unknown field '{k}'")));
    }
    if top.get("version").is_some_and(|v| v.as_u64() != Some(1)) {
        return Err(bad("unsupported version (this engine reads version 1)"));
    }
    let mut instruments = Vec::new();
    let mut symbols = HashSet::new();
    for (i, v) in array(&top, "instruments")?.iter().enumerate() {
        let at = format!("instruments[{i}]");
        let inst = instrument(v, &at)?;
        if !symbols.insert(inst.symbol.clone()) {
            return Err(bad(format!("{at}: duplicate symbol '{}'", inst.symbol)));
        }
        instruments.push(inst);
    }
    let providers = providers(&top)?;
    let platform = match top.get("platform") {
        None | Some(Value::Null) => Platform::default(),
        Some(v) => platform(v)?,
    };
    let events = match top.remove("events") {
        Some(Value::Array(events)) => events,
        None => return Err(bad("missing field 'events'")),
        Some(_) => return Err(bad("field 'events' must be an array")),
    };
    Ok(Scenario {
        engine: Engine::new(instruments, providers, platform),
        events,
    })
}

/// A live engine's follower books: `{"version": 1, "providers": [...], "platform": {...},
/// "follows": [...]}`, each follow a scenario `follow` event (its `type` may be left out).
/// Instruments come later, from the venue. Any invalid entry makes the file invalid.
pub fn parse_books(text: &str) -> Result<Engine, ScenarioError> {
    let v: Value = serde_json::from_str(text).map_err(|e| bad(format!("not JSON: {e}")))?;
    let Value::Object(top) = v else {
        return Err(bad("the books file must be a JSON object"));
    };
    if let Some(k) = top
        .keys()
        .find(|k| !["version", "providers", "platform", "follows"].contains(&k.as_str()))
    {
        return Err(bad(format!("unknown field '{k}'")));
    }
    if top.get("version").is_some_and(|v| v.as_u64() != Some(1)) {
        return Err(bad("unsupported version (this engine reads version 1)"));
    }
    let providers = providers(&top)?;
    let platform = match top.get("platform") {
        None | Some(Value::Null) => Platform::default(),
        Some(v) => platform(v)?,
    };
    let mut engine = Engine::new(Vec::new(), providers, platform).into_live();
    for (i, v) in array(&top, "follows")?.iter().enumerate() {
        let mut follow = v.clone();
        if let Value::Object(map) = &mut follow {
            map.entry("type").or_insert_with(|| json!("follow"));
        }
        let outcome = match parse_event(&follow) {
            Ok(ev @ crate::event::Event::Follow(_)) => {
                engine.apply(0, &ev).iter().find_map(|r| match r {
                    Record::Error(m) => Some(m.clone()),
                    _ => None,
                })
            }
            Ok(_) => Some("field 'type' must be 'follow'".into()),
            Err(m) => Some(m),
        };
        if let Some(m) = outcome {
            return Err(bad(format!("follows[{i}]: {m}")));
        }
    }
    Ok(engine)
}

fn providers(top: &Map<String, Value>) -> Result<Vec<String>, ScenarioError> {
    let mut providers = Vec::new();
    for (i, v) in array(top, "providers")?.iter().enumerate() {
        let at = format!("providers[{i}]");
        let f = object(v, &at)?;
        let id = f
            .reject_unknown(&["id"], "provider")
            .and_then(|()| f.id("id"))
            .map_err(|e| bad(format!("{at}: {e}")))?;
        if providers.contains(&id) {
            return Err(bad(format!("{at}: duplicate provider '{id}'")));
        }
        providers.push(id);
    }
    Ok(providers)
}

pub fn instrument(v: &Value, at: &str) -> Result<Instrument, ScenarioError> {
    let f = object(v, at)?;
    let in_field = |e: String| bad(format!("{at}: {e}"));
    let fields = || -> Result<Instrument, String> {
        f.reject_unknown(
            &["symbol", "kind", "tick", "step", "min_qty", "min_notional"],
            "instrument",
        )?;
        let symbol = f.id("symbol")?;
        let kind = match f.opt_value("kind") {
            None => return Err("missing field 'kind'".into()),
            Some(Value::String(s)) if s == "spot" => Kind::Spot,
            Some(Value::String(s)) if s == "perp" => Kind::Perp,
            Some(_) => return Err("field 'kind' must be 'spot' or 'perp'".into()),
        };
        Ok(Instrument {
            symbol,
            kind,
            tick: Price(f.decimal("tick", DecimalRange::Positive)?),
            step: Qty(f.decimal("step", DecimalRange::Positive)?),
            min_qty: Qty(f.decimal("min_qty", DecimalRange::NonNegative)?),
            min_notional: f.money("min_notional", DecimalRange::NonNegative)?,
        })
    };
    fields().map_err(in_field)
}

fn platform(v: &Value) -> Result<Platform, ScenarioError> {
    let f = object(v, "platform")?;
    let fields = || -> Result<Platform, String> {
        f.reject_unknown(
            &["min_allocation", "max_allocation", "max_total_per_follower"],
            "platform",
        )?;
        let money = |name, range| {
            f.opt_decimal(name, range)
                .map(|o| o.map(crate::event::to_money))
        };
        let p = Platform {
            min_allocation: money("min_allocation", DecimalRange::NonNegative)?,
            max_allocation: money("max_allocation", DecimalRange::Positive)?,
            max_total_per_follower: money("max_total_per_follower", DecimalRange::Positive)?,
        };
        if let (Some(min), Some(max)) = (p.min_allocation, p.max_allocation) {
            if min > max {
                return Err(format!(
                    "min_allocation {min} is above max_allocation {max}"
                ));
            }
        }
        Ok(p)
    };
    fields().map_err(|e| bad(format!("platform: {e}")))
}

/// One outcome record as JSON, with its keys in contract order.
pub fn record_json(engine: &Engine, event: u64, rec: &Record) -> Value {
    let names = |f, p| {
        (
            engine.follower_name(f).to_owned(),
            engine.provider_name(p).to_owned(),
        )
    };
    match rec {
        Record::Order(o) => {
            let (follower, provider) = names(o.follower, o.provider);
            let mut m = Map::new();
            m.insert("event".into(), json!(event));
            m.insert("kind".into(), json!("order"));
            m.insert("follower".into(), json!(follower));
            m.insert("provider".into(), json!(provider));
            m.insert("symbol".into(), json!(engine.symbol_name(o.symbol)));
            m.insert("side".into(), json!(o.side.as_str()));
            m.insert("type".into(), json!(o.order_type.as_str()));
            m.insert("qty".into(), json!(o.qty.to_string()));
            m.insert(
                "price".into(),
                o.limit_price()
                    .map_or(Value::Null, |p| json!(p.to_string())),
            );
            m.insert("reduce_only".into(), json!(o.reduce_only));
            if let Some(cap) = o.clamped {
                m.insert("clamped".into(), json!(cap.as_str()));
            }
            m.insert(
                "client_order_id".into(),
                json!(o.client_order_id.to_string()),
            );
            Value::Object(m)
        }
        Record::Skip {
            follower,
            provider,
            reason,
        } => {
            let (follower, provider) = names(*follower, *provider);
            json!({"event": event, "kind": "skip", "follower": follower, "provider": provider, "reason": reason.as_str()})
        }
        Record::Stop { follower, provider } => {
            let (follower, provider) = names(*follower, *provider);
            json!({"event": event, "kind": "stop", "follower": follower, "provider": provider, "reason": "max_loss"})
        }
        Record::Error(message) => json!({"event": event, "kind": "error", "message": message}),
    }
}

/// Replay a whole scenario: every event's records, then one portfolio record per
/// remaining relationship.
pub fn replay(text: &str) -> Result<Vec<Value>, ScenarioError> {
    parse(text).map(run)
}

/// Replay a parsed scenario (an engine configured by the caller).
pub fn run(scenario: Scenario) -> Vec<Value> {
    let Scenario { mut engine, events } = scenario;
    let mut out = Vec::new();
    for (i, raw) in events.iter().enumerate() {
        let seq = i as u64;
        match parse_event(raw) {
            Ok(ev) => engine.apply(seq, &ev),
            Err(msg) => engine.record_error(msg),
        };
        out.extend(
            engine
                .records()
                .iter()
                .map(|r| record_json(&engine, seq, r)),
        );
    }
    out.extend(engine.portfolios().iter().map(portfolio_json));
    out
}

/// A `portfolio` record (docs/scenario-format.md "Output records").
pub fn portfolio_json(p: &PortfolioView) -> Value {
    let positions: Vec<Value> = p
        .positions
        .iter()
        .map(|(s, q)| json!({"symbol": s, "qty": q.to_string()}))
        .collect();
    json!({
        "event": Value::Null,
        "kind": "portfolio",
        "follower": p.follower,
        "provider": p.provider,
        "status": p.status.as_str(),
        "cash": p.cash.to_string(),
        "equity": p.equity.map_or(Value::Null, |e| json!(e.to_string())),
        "positions": positions,
    })
}

/// The replay as JSON Lines.
pub fn replay_jsonl(text: &str) -> Result<String, ScenarioError> {
    let mut s = String::new();
    for rec in replay(text)? {
        s.push_str(&rec.to_string());
        s.push('\n');
    }
    Ok(s)
}

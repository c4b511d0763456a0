//! Scenario files (format v1 and v2): the header builds an engine, the events are
//! replayed and every outcome becomes one JSON record (docs/scenario-format.md "Output
//! records"). Version 2 events may carry a `time` that moves the engine's venue clock.

use std::collections::HashSet;

use serde_json::{json, Map, Value};

use crate::engine::{Engine, PortfolioView};
use crate::event::{parse_event, parse_event_allowing, DecimalRange, Fields};
use crate::fixed::{Factor, Price, Qty};
use crate::model::{Instrument, Kind, Platform, Record};
use crate::settlement::{Period, Schedule};
use crate::venue_time;

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
    pub version: Version,
}

/// A scenario file's format version: what its events may say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// No `time`: every event is at the epoch.
    V1,
    /// Events may carry `time` (docs/scenario-format.md "Event time").
    V2,
}

impl Version {
    /// The event keys the version adds to every type's fields.
    fn extra_fields(self) -> &'static [&'static str] {
        match self {
            Version::V1 => &[],
            Version::V2 => &["time"],
        }
    }

    /// Whether the header may carry settlement terms and events may be `settle`, and
    /// portfolio records carry `high_watermark` and `fees_paid` (version 1 files print
    /// what they always printed).
    pub fn settles(self) -> bool {
        self == Version::V2
    }
}

/// The time an event counts at, given the time `now` of its predecessor: its own `time`
/// (version 2), or `now` without one. An `Err` is the event's `error` record: a time
/// that is not a string, not a time, or earlier than `now` (the event then counts at
/// `now` and changes nothing). Only the time is looked at: the rest of the event may
/// still be invalid.
pub fn event_time(version: Version, raw: &Value, now: i64) -> Result<i64, String> {
    let time = match (version, raw) {
        (Version::V2, Value::Object(map)) => map.get("time"),
        _ => None,
    };
    let text = match time {
        None | Some(Value::Null) => return Ok(now),
        Some(Value::String(s)) => s,
        Some(_) => return Err("field 'time' must be a string".into()),
    };
    let t = venue_time::parse(text).ok_or_else(|| {
        format!("field 'time' is not a time: '{text}' (YYYY-MM-DDTHH:MM:SS[.ffffff]Z)")
    })?;
    if t < now {
        return Err(format!(
            "time {} is before the previous event's time {}",
            venue_time::format(t),
            venue_time::format(now)
        ));
    }
    Ok(t)
}

/// Apply one raw event of a `version` file at input position `seq`: its time first (a
/// valid one moves the engine's clock even if the rest of the event is invalid), then
/// the event. Returns its records.
pub fn apply_event<'e>(
    engine: &'e mut Engine,
    version: Version,
    seq: u64,
    raw: &Value,
) -> &'e [Record] {
    match event_time(version, raw, engine.now_us()) {
        // never earlier than the clock here, so no correction is counted
        Ok(t) => engine.advance_clock(seq, t),
        Err(message) => {
            // the event counts at its predecessor's time (which may fix the schedule)
            engine.advance_clock(seq, engine.now_us());
            return engine.record_error(message);
        }
    };
    if version.settles() && raw.get("type").and_then(Value::as_str) == Some("settle") {
        return settle_event(engine, seq, raw);
    }
    engine.apply_parsed(seq, parse_event_allowing(raw, version.extra_fields()))
}

/// A version 2 `settle` event: no fields (but `time`); settles at once as `manual-<seq>`.
fn settle_event<'e>(engine: &'e mut Engine, seq: u64, raw: &Value) -> &'e [Record] {
    if let Value::Object(map) = raw {
        if let Err(message) = Fields::new(map).reject_unknown(&["type", "time"], "settle") {
            return engine.record_error(message);
        }
    }
    engine.settle(seq, Period::Manual(seq));
    engine.records()
}

/// The time (µs since the epoch) each event of a scenario counts at: the clock after
/// the event's time check (an invalid or earlier time leaves its predecessor's).
pub fn event_times(text: &str) -> Result<Vec<i64>, ScenarioError> {
    let Scenario {
        events, version, ..
    } = parse(text)?;
    let mut now = 0;
    Ok(events
        .iter()
        .map(|raw| {
            now = event_time(version, raw, now).unwrap_or(now);
            now
        })
        .collect())
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
    let version = match top.get("version").map(Value::as_u64) {
        None | Some(Some(1)) => Version::V1,
        Some(Some(2)) => Version::V2,
        Some(_) => {
            return Err(bad(
                "unsupported version (this engine reads versions 1 and 2)",
            ))
        }
    };
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
    let providers = providers(&top, version.settles())?;
    let platform = match top.get("platform") {
        None | Some(Value::Null) => Platform::default(),
        Some(v) => platform(v, version.settles())?,
    };
    let max = platform.max_profit_share_pct;
    for (i, (_, share)) in providers.iter().enumerate() {
        if *share > max {
            return Err(bad(format!(
                "providers[{i}]: profit_share_pct {share} is above max_profit_share_pct {max}"
            )));
        }
    }
    let events = match top.remove("events") {
        Some(Value::Array(events)) => events,
        None => return Err(bad("missing field 'events'")),
        Some(_) => return Err(bad("field 'events' must be an array")),
    };
    let names = providers.iter().map(|(name, _)| name.clone()).collect();
    let mut engine = Engine::new(instruments, names, platform);
    for (name, share) in &providers {
        engine
            .set_profit_share(name, *share)
            .map_err(|e| bad(format!("profit share of '{name}': {e}")))?;
    }
    Ok(Scenario {
        engine,
        events,
        version,
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
    let providers = providers(&top, false)?
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    let platform = match top.get("platform") {
        None | Some(Value::Null) => Platform::default(),
        Some(v) => platform(v, false)?,
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

/// The providers' ids and profit shares (0 unless `settles` allows the field; checked
/// against the platform's maximum by the caller, once the platform is read).
fn providers(
    top: &Map<String, Value>,
    settles: bool,
) -> Result<Vec<(String, Factor)>, ScenarioError> {
    let mut providers: Vec<(String, Factor)> = Vec::new();
    let allowed: &[&str] = if settles {
        &["id", "profit_share_pct"]
    } else {
        &["id"]
    };
    for (i, v) in array(top, "providers")?.iter().enumerate() {
        let at = format!("providers[{i}]");
        let f = object(v, &at)?;
        let (id, share) = f
            .reject_unknown(allowed, "provider")
            .and_then(|()| {
                let id = f.id("id")?;
                let share = f.opt_decimal("profit_share_pct", DecimalRange::Percent)?;
                Ok((id, Factor(share.unwrap_or(0))))
            })
            .map_err(|e| bad(format!("{at}: {e}")))?;
        if providers.iter().any(|(p, _)| *p == id) {
            return Err(bad(format!("{at}: duplicate provider '{id}'")));
        }
        providers.push((id, share));
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

/// The platform object; its settlement terms only if `settles` (version 2).
fn platform(v: &Value, settles: bool) -> Result<Platform, ScenarioError> {
    let f = object(v, "platform")?;
    let fields = || -> Result<Platform, String> {
        const LIMITS: &[&str] = &["min_allocation", "max_allocation", "max_total_per_follower"];
        const TERMS: &[&str] = &[
            "min_allocation",
            "max_allocation",
            "max_total_per_follower",
            "platform_fee_pct",
            "max_profit_share_pct",
            "settlement",
        ];
        f.reject_unknown(if settles { TERMS } else { LIMITS }, "platform")?;
        let money = |name, range| {
            f.opt_decimal(name, range)
                .map(|o| o.map(crate::event::to_money))
        };
        let p = Platform {
            min_allocation: money("min_allocation", DecimalRange::NonNegative)?,
            max_allocation: money("max_allocation", DecimalRange::Positive)?,
            max_total_per_follower: money("max_total_per_follower", DecimalRange::Positive)?,
            platform_fee_pct: f
                .opt_decimal("platform_fee_pct", DecimalRange::Percent)?
                .map_or(Factor::ZERO, Factor),
            max_profit_share_pct: f
                .opt_decimal("max_profit_share_pct", DecimalRange::Pct)?
                .map_or(Platform::default().max_profit_share_pct, Factor),
            settlement: match f.opt_value("settlement") {
                None => Schedule::None,
                Some(v) => v
                    .as_str()
                    .and_then(Schedule::parse)
                    .ok_or("field 'settlement' must be one of weekly, monthly, none".to_string())?,
            },
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
        Record::Settlement(s) => {
            let (follower, provider) = names(s.follower, s.provider);
            let c = &s.charge;
            json!({"event": event, "kind": "settlement", "period": s.period.to_string(),
                   "follower": follower, "provider": provider,
                   "equity": s.equity.to_string(), "high_watermark": s.high_watermark.to_string(),
                   "profit": s.profit.to_string(), "due": c.due.to_string(),
                   "charged": c.charged.to_string(),
                   "provider_credit": c.provider_credit.to_string(),
                   "platform_credit": c.platform_credit.to_string(),
                   "written_off": c.written_off.to_string(), "status": c.status.as_str()})
        }
    }
}

/// Replay a whole scenario: every event's records, then one portfolio record per
/// remaining relationship.
pub fn replay(text: &str) -> Result<Vec<Value>, ScenarioError> {
    parse(text).map(run)
}

/// Replay a parsed scenario (an engine configured by the caller).
pub fn run(scenario: Scenario) -> Vec<Value> {
    let Scenario {
        mut engine,
        events,
        version,
    } = scenario;
    let mut out = Vec::new();
    for (i, raw) in events.iter().enumerate() {
        let seq = i as u64;
        apply_event(&mut engine, version, seq, raw);
        out.extend(
            engine
                .records()
                .iter()
                .map(|r| record_json(&engine, seq, r)),
        );
    }
    out.extend(
        engine
            .portfolios()
            .iter()
            .map(|p| portfolio_json(p, version.settles())),
    );
    out
}

/// A `portfolio` record (docs/scenario-format.md "Output records"), with
/// `high_watermark` and `fees_paid` if `settles` (version 2).
pub fn portfolio_json(p: &PortfolioView, settles: bool) -> Value {
    let positions: Vec<Value> = p
        .positions
        .iter()
        .map(|(s, q)| json!({"symbol": s, "qty": q.to_string()}))
        .collect();
    let mut v = json!({
        "event": Value::Null,
        "kind": "portfolio",
        "follower": p.follower,
        "provider": p.provider,
        "status": p.status.as_str(),
        "cash": p.cash.to_string(),
        "equity": p.equity.map_or(Value::Null, |e| json!(e.to_string())),
        "positions": positions,
    });
    if let (true, Value::Object(map)) = (settles, &mut v) {
        map.insert("high_watermark".into(), json!(p.high_watermark.to_string()));
        map.insert("fees_paid".into(), json!(p.fees_paid.to_string()));
    }
    v
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

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000;
    /// 2026-01-01T00:00:00Z
    const T0: i64 = 1_767_225_600 * S;

    fn file(version: u8, events: &[Value]) -> String {
        json!({
            "version": version,
            "instruments": [{"symbol": "BTC", "kind": "spot", "tick": "0.01", "step": "0.001",
                             "min_qty": "0", "min_notional": "0"}],
            "providers": [{"id": "P"}],
            "events": events,
        })
        .to_string()
    }

    fn errors(text: &str) -> Vec<String> {
        replay(text)
            .unwrap()
            .iter()
            .filter(|r| r["kind"] == "error")
            .map(|r| format!("{}: {}", r["event"], r["message"].as_str().unwrap()))
            .collect()
    }

    #[test]
    fn version_2_times_move_the_clock_and_are_checked_first() {
        let events = [
            json!({"type": "mark", "symbol": "BTC", "price": "1"}),
            json!({"time": "2026-01-01T00:00:00Z", "type": "mark", "symbol": "BTC", "price": "1"}),
            json!({"type": "mark", "symbol": "BTC", "price": "1"}),
            // valid time, invalid event: the clock moves anyway
            json!({"type": "nope", "time": "2026-01-01T00:00:01.5Z"}),
            json!({"type": "mark", "symbol": "BTC", "price": "1", "time": "2026-01-01T00:00:01Z"}),
            json!({"type": "mark", "time": 5}),
            json!({"time": "2026-01-01T00:00:02+00:00"}),
            json!("not an object"),
            json!({"type": "mark", "symbol": "BTC", "price": "1", "time": null}),
            json!({"type": "mark", "symbol": "BTC", "price": "1", "time": "2026-01-01T00:00:01.5Z"}),
        ];
        let text = file(2, &events);
        assert_eq!(
            event_times(&text).unwrap(),
            [
                0,
                T0,
                T0,
                T0 + 3 * S / 2,
                T0 + 3 * S / 2,
                T0 + 3 * S / 2,
                T0 + 3 * S / 2,
                T0 + 3 * S / 2,
                T0 + 3 * S / 2,
                T0 + 3 * S / 2
            ]
        );
        assert_eq!(
            errors(&text),
            [
                "3: unknown event type 'nope'",
                "4: time 2026-01-01T00:00:01Z is before the previous event's time 2026-01-01T00:00:01.5Z",
                "5: field 'time' must be a string",
                "6: field 'time' is not a time: '2026-01-01T00:00:02+00:00' (YYYY-MM-DDTHH:MM:SS[.ffffff]Z)",
                "7: event must be an object",
            ]
        );
        let mut scenario = parse(&text).unwrap();
        assert_eq!(scenario.version, Version::V2);
        for (i, raw) in scenario.events.iter().enumerate() {
            apply_event(&mut scenario.engine, scenario.version, i as u64, raw);
        }
        assert_eq!(scenario.engine.now_us(), T0 + 3 * S / 2);
        assert_eq!(scenario.engine.clock_corrections(), 0);
    }

    #[test]
    fn a_time_before_the_epoch_is_before_the_first_events_time() {
        let text = file(2, &[json!({"time": "1969-12-31T23:59:59Z"})]);
        assert_eq!(
            errors(&text),
            ["0: time 1969-12-31T23:59:59Z is before the previous event's time 1970-01-01T00:00:00Z"]
        );
        assert_eq!(event_times(&text).unwrap(), [0]);
    }

    #[test]
    fn version_1_knows_no_time() {
        let ev =
            json!({"type": "mark", "symbol": "BTC", "price": "1", "time": "2026-01-01T00:00:00Z"});
        for version in [Some(1), None] {
            let mut top: Value = serde_json::from_str(&file(1, std::slice::from_ref(&ev))).unwrap();
            if version.is_none() {
                top.as_object_mut().unwrap().remove("version");
            }
            let text = top.to_string();
            assert_eq!(errors(&text), ["0: unknown field 'time' for mark"]);
            assert_eq!(event_times(&text).unwrap(), [0]);
        }
    }

    #[test]
    fn only_versions_1_and_2() {
        for v in ["3", "0", "\"2\"", "2.0", "true", "null"] {
            let text =
                format!(r#"{{"version": {v}, "instruments": [], "providers": [], "events": []}}"#);
            assert_eq!(
                event_times(&text).unwrap_err().0,
                "unsupported version (this engine reads versions 1 and 2)",
                "{v}"
            );
        }
    }
}

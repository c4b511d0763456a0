//! Input events and their field validation (docs/scenario-format.md "Events and their validation").
//!
//! Parsing checks form and range only; the engine checks what needs state (known ids,
//! grids, limits). Messages are part of the contract: the Python reference prints the same.

use serde_json::{Map, Value};

use crate::fixed::{DecimalError, Factor, Money, Price, Qty, INPUT_LIMIT};
use crate::model::{CopySettings, Mode, Side};

#[derive(Debug, Clone)]
pub struct Follow {
    pub follower: String,
    pub provider: String,
    pub allocation: Money,
    pub settings: CopySettings,
}

/// The copy settings a `settings` event (or a follow) names; None: not named.
#[derive(Debug, Clone, Default)]
pub struct SettingsChange {
    pub mode: Option<Mode>,
    pub fixed_amount: Option<Money>,
    pub multiplier: Option<Factor>,
    pub max_open_trades: Option<u32>,
    pub max_per_trade_pct: Option<Factor>,
    pub max_loss_pct: Option<Factor>,
    pub slippage_pct: Option<Factor>,
    pub stop_copy_on_close: Option<bool>,
}

impl SettingsChange {
    fn is_empty(&self) -> bool {
        self.mode.is_none()
            && self.fixed_amount.is_none()
            && self.multiplier.is_none()
            && self.max_open_trades.is_none()
            && self.max_per_trade_pct.is_none()
            && self.max_loss_pct.is_none()
            && self.slippage_pct.is_none()
            && self.stop_copy_on_close.is_none()
    }

    /// `base` with the named settings replaced.
    pub fn overlay(&self, base: &CopySettings) -> CopySettings {
        CopySettings {
            mode: self.mode.unwrap_or(base.mode),
            fixed_amount: self.fixed_amount.or(base.fixed_amount),
            multiplier: self.multiplier.unwrap_or(base.multiplier),
            max_open_trades: self.max_open_trades.or(base.max_open_trades),
            max_per_trade_pct: self.max_per_trade_pct.unwrap_or(base.max_per_trade_pct),
            max_loss_pct: self.max_loss_pct.or(base.max_loss_pct),
            slippage_pct: self.slippage_pct.unwrap_or(base.slippage_pct),
            stop_copy_on_close: self.stop_copy_on_close.unwrap_or(base.stop_copy_on_close),
        }
    }
}

/// A follow's settings when it names none (docs/scenario-format.md, `follow`).
fn default_settings() -> CopySettings {
    CopySettings {
        mode: Mode::Proportional,
        fixed_amount: None,
        multiplier: Factor(Factor::SCALE),
        max_open_trades: None,
        max_per_trade_pct: Factor::HUNDRED,
        max_loss_pct: None,
        slippage_pct: Factor(Factor::SCALE / 2),
        stop_copy_on_close: true,
    }
}

/// A venue-verified provider execution.
#[derive(Debug, Clone)]
pub struct ProviderFill {
    pub provider: String,
    pub exec_id: String,
    pub symbol: String,
    pub side: Side,
    pub qty: Qty,
    pub price: Price,
    pub provider_equity: Money,
    pub leverage: u32,
}

#[derive(Debug, Clone)]
pub enum Event {
    Follow(Follow),
    Fill(ProviderFill),
    Mark {
        symbol: String,
        price: Price,
    },
    Deposit {
        follower: String,
        provider: String,
        amount: Money,
    },
    Withdraw {
        follower: String,
        provider: String,
        amount: Money,
    },
    Unfollow {
        follower: String,
        provider: String,
    },
    /// Stop copying, keep the positions (max-loss still applies).
    Pause {
        follower: String,
        provider: String,
    },
    Resume {
        follower: String,
        provider: String,
    },
    Settings {
        follower: String,
        provider: String,
        change: SettingsChange,
    },
}

pub const MAX_LEVERAGE: u32 = 125;
pub const MAX_OPEN_TRADES: u32 = 1_000_000;

/// The values a decimal field allows (named so as not to shadow `std::ops::Range`).
#[derive(Debug, Clone, Copy)]
pub enum DecimalRange {
    Positive,
    NonNegative,
    /// (0, 100]
    Pct,
    /// [0, 100)
    Slippage,
    /// [0, 100]
    Percent,
}

/// Field accessors over one JSON object; every failure is the contract's message.
pub struct Fields<'a> {
    map: &'a Map<String, Value>,
}

impl<'a> Fields<'a> {
    pub fn new(map: &'a Map<String, Value>) -> Self {
        Self { map }
    }

    /// The first key (document order) not in `allowed`.
    pub fn reject_unknown(&self, allowed: &[&str], what: &str) -> Result<(), String> {
        self.reject_unknown_of(&[allowed], what)
    }

    /// `reject_unknown` with the allowed names in several lists.
    fn reject_unknown_of(&self, allowed: &[&[&str]], what: &str) -> Result<(), String> {
        let known = |k: &str| allowed.iter().any(|names| names.contains(&k));
        match self.map.keys().find(|k| !known(k)) {
            Some(k) => Err(format!("unknown field '{k}' for {what}")),
            None => Ok(()),
        }
    }

    fn get(&self, name: &str) -> Option<&'a Value> {
        self.map.get(name).filter(|v| !v.is_null())
    }

    fn required(&self, name: &str) -> Result<&'a Value, String> {
        self.get(name)
            .ok_or_else(|| format!("missing field '{name}'"))
    }

    pub fn id(&self, name: &str) -> Result<String, String> {
        let v = self.required(name)?;
        match v.as_str() {
            Some(s) if is_identifier(s) => Ok(s.to_owned()),
            _ => Err(format!(
                "field '{name}' must be 1-64 characters of [A-Za-z0-9_.:-]"
            )),
        }
    }

    /// A decimal as a raw value at 8 decimals.
    fn raw_decimal(&self, name: &str, v: &Value, range: DecimalRange) -> Result<i128, String> {
        let s = v
            .as_str()
            .ok_or_else(|| format!("field '{name}' must be a decimal string"))?;
        decimal_text(name, s, range)
    }

    pub fn decimal(&self, name: &str, range: DecimalRange) -> Result<i128, String> {
        let v = self.required(name)?;
        self.raw_decimal(name, v, range)
    }

    pub fn opt_decimal(&self, name: &str, range: DecimalRange) -> Result<Option<i128>, String> {
        self.get(name)
            .map(|v| self.raw_decimal(name, v, range))
            .transpose()
    }

    pub fn money(&self, name: &str, range: DecimalRange) -> Result<Money, String> {
        self.decimal(name, range).map(to_money)
    }

    pub fn opt_integer(&self, name: &str, max: u32) -> Result<Option<u32>, String> {
        let Some(v) = self.get(name) else {
            return Ok(None);
        };
        let n = match v {
            Value::Number(n) => n.as_u64(),
            Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
                // Long digit strings are out of range, not malformed.
                Some(s.trim_start_matches('0').parse::<u64>().unwrap_or(
                    if s.trim_start_matches('0').is_empty() {
                        0
                    } else {
                        u64::MAX
                    },
                ))
            }
            _ => None,
        };
        integer_in(name, n, max).map(Some)
    }

    pub fn opt_bool(&self, name: &str) -> Result<Option<bool>, String> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(format!("field '{name}' must be true or false")),
        }
    }

    pub fn opt_value(&self, name: &str) -> Option<&'a Value> {
        self.get(name)
    }
}

/// Field `name`'s decimal text as a raw value at 8 decimals, within `range` (the rule
/// and message of every decimal field, whether it came as JSON or off the wire).
pub fn decimal_text(name: &str, s: &str, range: DecimalRange) -> Result<i128, String> {
    let raw = crate::fixed::parse_input(s).map_err(|e| match e {
        DecimalError::Malformed => format!("field '{name}' is not a decimal: '{s}'"),
        DecimalError::TooPrecise => format!("field '{name}' has more than 8 decimal places"),
        DecimalError::TooLarge => {
            format!("field '{name}' must be below {INPUT_LIMIT} in absolute value")
        }
    })?;
    let hundred = Factor::HUNDRED.0;
    let ok = match range {
        DecimalRange::Positive => raw > 0,
        DecimalRange::NonNegative => raw >= 0,
        DecimalRange::Pct => raw > 0 && raw <= hundred,
        DecimalRange::Slippage => (0..hundred).contains(&raw),
        DecimalRange::Percent => (0..=hundred).contains(&raw),
    };
    if ok {
        return Ok(raw);
    }
    Err(match range {
        DecimalRange::Positive => format!("field '{name}' must be positive"),
        DecimalRange::NonNegative => format!("field '{name}' must not be negative"),
        DecimalRange::Pct => format!("field '{name}' must be in (0, 100]"),
        DecimalRange::Slippage => format!("field '{name}' must be in [0, 100)"),
        DecimalRange::Percent => format!("field '{name}' must be in [0, 100]"),
    })
}

/// Field `name` as an integer in 1..=max (None: not an integer at all).
pub fn integer_in(name: &str, n: Option<u64>, max: u32) -> Result<u32, String> {
    match n {
        Some(n) if n >= 1 && n <= u64::from(max) => Ok(n as u32),
        _ => Err(format!("field '{name}' must be an integer from 1 to {max}")),
    }
}

/// 1–64 characters of `[A-Za-z0-9_.:-]`: the protocol's name rule, which scenario files share.
pub fn is_identifier(s: &str) -> bool {
    crate::wire_rules::Text::Name.accepts(s.as_bytes())
}

/// An 8-decimal raw input as 16-decimal money.
pub fn to_money(raw8: i128) -> Money {
    Money(raw8 * (Money::SCALE / Factor::SCALE))
}

/// The copy settings, as `follow` and `settings` name them.
const SETTING_FIELDS: &[&str] = &[
    "mode",
    "fixed_amount",
    "multiplier",
    "max_open_trades",
    "max_per_trade_pct",
    "max_loss_pct",
    "slippage_pct",
    "stop_copy_on_close",
];
const FILL_FIELDS: &[&str] = &[
    "type",
    "provider",
    "exec_id",
    "symbol",
    "side",
    "qty",
    "price",
    "provider_equity",
    "leverage",
];
const MARK_FIELDS: &[&str] = &["type", "symbol", "price"];
const CASH_FIELDS: &[&str] = &["type", "follower", "provider", "amount"];
/// The events about one relationship: unfollow, pause, resume (and settings, with
/// `SETTING_FIELDS`).
const PAIR_FIELDS: &[&str] = &["type", "follower", "provider"];
const FOLLOW_FIELDS: &[&str] = &["type", "follower", "provider", "allocation"];

/// Parse one scenario event; `Err` is the event's `error` message.
pub fn parse_event(v: &Value) -> Result<Event, String> {
    parse_event_allowing(v, &[])
}

/// `parse_event` where the keys in `extra` are known too (checked by the caller: a
/// version 2 scenario's `time`).
pub fn parse_event_allowing(v: &Value, extra: &[&str]) -> Result<Event, String> {
    let map = v.as_object().ok_or("event must be an object")?;
    let ty = match map.get("type") {
        None | Some(Value::Null) => return Err("missing field 'type'".into()),
        Some(Value::String(s)) => s.as_str(),
        Some(_) => return Err("field 'type' must be a string".into()),
    };
    let allowed: &[&[&str]] = match ty {
        "follow" => &[FOLLOW_FIELDS, SETTING_FIELDS, extra],
        "fill" => &[FILL_FIELDS, extra],
        "mark" => &[MARK_FIELDS, extra],
        "deposit" | "withdraw" => &[CASH_FIELDS, extra],
        "unfollow" | "pause" | "resume" => &[PAIR_FIELDS, extra],
        "settings" => &[PAIR_FIELDS, SETTING_FIELDS, extra],
        _ => return Err(format!("unknown event type '{ty}'")),
    };
    let f = Fields::new(map);
    f.reject_unknown_of(allowed, ty)?;
    match ty {
        "follow" => parse_follow(&f).map(Event::Follow),
        "fill" => parse_fill(&f).map(Event::Fill),
        "mark" => Ok(Event::Mark {
            symbol: f.id("symbol")?,
            price: Price(f.decimal("price", DecimalRange::Positive)?),
        }),
        "deposit" | "withdraw" => {
            let follower = f.id("follower")?;
            let provider = f.id("provider")?;
            let amount = f.money("amount", DecimalRange::Positive)?;
            Ok(if ty == "deposit" {
                Event::Deposit {
                    follower,
                    provider,
                    amount,
                }
            } else {
                Event::Withdraw {
                    follower,
                    provider,
                    amount,
                }
            })
        }
        "settings" => {
            let follower = f.id("follower")?;
            let provider = f.id("provider")?;
            let change = parse_settings(&f)?;
            if change.is_empty() {
                return Err("settings names no setting".into());
            }
            Ok(Event::Settings {
                follower,
                provider,
                change,
            })
        }
        _ => {
            let (follower, provider) = (f.id("follower")?, f.id("provider")?);
            Ok(match ty {
                "pause" => Event::Pause { follower, provider },
                "resume" => Event::Resume { follower, provider },
                _ => Event::Unfollow { follower, provider },
            })
        }
    }
}

fn parse_follow(f: &Fields<'_>) -> Result<Follow, String> {
    let follower = f.id("follower")?;
    let provider = f.id("provider")?;
    let allocation = f.money("allocation", DecimalRange::Positive)?;
    let settings = parse_settings(f)?.overlay(&default_settings());
    Ok(Follow {
        follower,
        provider,
        allocation,
        settings,
    })
}

/// The copy settings an event names, in docs/scenario-format.md's field order (the first bad one is
/// the error).
fn parse_settings(f: &Fields<'_>) -> Result<SettingsChange, String> {
    let mode = match f.opt_value("mode") {
        None => None,
        Some(Value::String(s)) if s == "proportional" => Some(Mode::Proportional),
        Some(Value::String(s)) if s == "fixed_amount" => Some(Mode::FixedAmount),
        Some(Value::String(s)) if s == "multiplier" => Some(Mode::Multiplier),
        Some(_) => {
            return Err("field 'mode' must be one of proportional, fixed_amount, multiplier".into())
        }
    };
    Ok(SettingsChange {
        mode,
        fixed_amount: f
            .opt_decimal("fixed_amount", DecimalRange::Positive)?
            .map(to_money),
        multiplier: f
            .opt_decimal("multiplier", DecimalRange::Positive)?
            .map(Factor),
        max_open_trades: f.opt_integer("max_open_trades", MAX_OPEN_TRADES)?,
        max_per_trade_pct: f
            .opt_decimal("max_per_trade_pct", DecimalRange::Pct)?
            .map(Factor),
        max_loss_pct: f
            .opt_decimal("max_loss_pct", DecimalRange::Pct)?
            .map(Factor),
        slippage_pct: f
            .opt_decimal("slippage_pct", DecimalRange::Slippage)?
            .map(Factor),
        stop_copy_on_close: f.opt_bool("stop_copy_on_close")?,
    })
}

fn parse_fill(f: &Fields<'_>) -> Result<ProviderFill, String> {
    Ok(ProviderFill {
        provider: f.id("provider")?,
        exec_id: f.id("exec_id")?,
        symbol: f.id("symbol")?,
        side: match f.opt_value("side") {
            None => return Err("missing field 'side'".into()),
            Some(Value::String(s)) if s == "buy" => Side::Buy,
            Some(Value::String(s)) if s == "sell" => Side::Sell,
            Some(_) => return Err("field 'side' must be 'buy' or 'sell'".into()),
        },
        qty: Qty(f.decimal("qty", DecimalRange::Positive)?),
        price: Price(f.decimal("price", DecimalRange::Positive)?),
        provider_equity: f.money("provider_equity", DecimalRange::Positive)?,
        leverage: f.opt_integer("leverage", MAX_LEVERAGE)?.unwrap_or(1),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn err(v: Value) -> String {
        parse_event(&v)
            .err()
            .unwrap_or_else(|| panic!("accepted {v}"))
    }

    #[test]
    fn messages_follow_the_contract() {
        assert_eq!(err(json!([])), "event must be an object");
        assert_eq!(err(json!({})), "missing field 'type'");
        assert_eq!(err(json!({"type": 3})), "field 'type' must be a string");
        assert_eq!(
            err(json!({"type": "teleport"})),
            "unknown event type 'teleport'"
        );
        assert_eq!(
            err(json!({"type": "mark", "symbol": "X", "price": "1", "pirce": "2"})),
            "unknown field 'pirce' for mark"
        );
        assert_eq!(
            err(json!({"type": "mark", "price": "1"})),
            "missing field 'symbol'"
        );
        assert_eq!(
            err(json!({"type": "mark", "symbol": "a b", "price": "1"})),
            "field 'symbol' must be 1-64 characters of [A-Za-z0-9_.:-]"
        );
        assert_eq!(
            err(json!({"type": "mark", "symbol": "X", "price": 1.5})),
            "field 'price' must be a decimal string"
        );
        assert_eq!(
            err(json!({"type": "mark", "symbol": "X", "price": "NaN"})),
            "field 'price' is not a decimal: 'NaN'"
        );
        assert_eq!(
            err(json!({"type": "mark", "symbol": "X", "price": "0.000000001"})),
            "field 'price' has more than 8 decimal places"
        );
        assert_eq!(
            err(json!({"type": "mark", "symbol": "X", "price": "-1"})),
            "field 'price' must be positive"
        );
        assert_eq!(
            err(json!({"type": "mark", "symbol": "X", "price": "1000000000000"})),
            "field 'price' must be below 1000000000000 in absolute value"
        );
        let follow = |extra: Value| {
            let mut v =
                json!({"type": "follow", "follower": "f", "provider": "p", "allocation": "100"});
            for (k, x) in extra.as_object().into_iter().flatten() {
                v[k] = x.clone();
            }
            v
        };
        assert_eq!(
            err(follow(json!({"max_loss_pct": "0"}))),
            "field 'max_loss_pct' must be in (0, 100]"
        );
        assert_eq!(
            err(follow(json!({"max_per_trade_pct": "100.00000001"}))),
            "field 'max_per_trade_pct' must be in (0, 100]"
        );
        assert_eq!(
            err(follow(json!({"slippage_pct": "100"}))),
            "field 'slippage_pct' must be in [0, 100)"
        );
        assert_eq!(
            err(follow(json!({"max_open_trades": 0}))),
            "field 'max_open_trades' must be an integer from 1 to 1000000"
        );
        assert_eq!(
            err(follow(json!({"max_open_trades": true}))),
            "field 'max_open_trades' must be an integer from 1 to 1000000"
        );
        assert_eq!(
            err(follow(
                json!({"max_open_trades": "99999999999999999999999"})
            )),
            "field 'max_open_trades' must be an integer from 1 to 1000000"
        );
        assert_eq!(
            err(follow(json!({"mode": "yolo"}))),
            "field 'mode' must be one of proportional, fixed_amount, multiplier"
        );
        assert_eq!(
            err(follow(json!({"stop_copy_on_close": "yes"}))),
            "field 'stop_copy_on_close' must be true or false"
        );
        assert!(matches!(
            parse_event(&follow(
                json!({"max_open_trades": "3", "slippage_pct": "0"})
            )),
            Ok(Event::Follow(Follow {
                settings: CopySettings {
                    max_open_trades: Some(3),
                    ..
                },
                ..
            }))
        ));
    }
}

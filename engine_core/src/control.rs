//! The control plane's rules: which changes an operator may make to the relationships
//! (`CONTROL_TYPES`, in the replay's event format) and to the settlement terms
//! (`TERMS_TYPES`), and the input position their copy orders take. Checked here without
//! the engine's state; the engine may still refuse a valid change for the state it meets
//! (an unknown follower, a withdrawal above free cash, a share above the maximum).

use serde_json::Value;

use crate::event::{parse_event, DecimalRange, Event, Fields};
use crate::fixed::Factor;
use crate::settlement::Schedule;

/// Control-plane changes: the replay's events that manage relationships.
pub const CONTROL_TYPES: [&str; 7] = [
    "follow", "unfollow", "deposit", "withdraw", "pause", "resume", "settings",
];

/// Control-plane changes of the settlement terms. A scenario has its terms in its header;
/// a live engine gets them, and changes of them, as these changes.
pub const TERMS_TYPES: [&str; 2] = ["profit_share", "platform"];

/// Client order ids of a control change's orders derive from `2^63 + change`: venue
/// seqs stay below 2^63 (docs/protocol.md), so they never meet a venue message's ids.
pub const CONTROL_ID_BASE: u64 = 1 << 63;

/// A change of the settlement terms. A share or a fee takes effect at the next period
/// boundary (`Engine::set_profit_share`); the schedule at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Terms {
    /// `{"type": "profit_share", "provider", "profit_share_pct"}`
    ProfitShare { provider: String, pct: Factor },
    /// `{"type": "platform", "platform_fee_pct"?, "max_profit_share_pct"?, "settlement"?}`,
    /// at least one of them
    Platform {
        fee: Option<Factor>,
        /// The highest share a provider may have, in (0, 100]; at once, and refused
        /// below a provider's share (`Engine::set_max_profit_share`).
        max_share: Option<Factor>,
        settlement: Option<Schedule>,
    },
}

/// A control change: an event of the replay's format, or a change of the terms.
#[derive(Debug, Clone)]
pub enum Change {
    Event(Event),
    Terms(Terms),
}

/// A control change (JSON text) checked without the engine's state.
pub fn parse_change(text: &str) -> Result<Change, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let ty = v.get("type").and_then(Value::as_str).unwrap_or_default();
    if TERMS_TYPES.contains(&ty) {
        return parse_terms(&v, ty).map(Change::Terms);
    }
    if v.is_object() && !ty.is_empty() && !CONTROL_TYPES.contains(&ty) {
        return Err(format!(
            "'{ty}' is not a control change (one of {}, {})",
            CONTROL_TYPES.join(", "),
            TERMS_TYPES.join(", ")
        ));
    }
    parse_event(&v).map(Change::Event)
}

fn parse_terms(v: &Value, ty: &str) -> Result<Terms, String> {
    let map = v.as_object().ok_or("event must be an object")?;
    let f = Fields::new(map);
    if ty == "profit_share" {
        f.reject_unknown(&["type", "provider", "profit_share_pct"], ty)?;
        let provider = f.id("provider")?;
        let pct = Factor(f.decimal("profit_share_pct", DecimalRange::Percent)?);
        return Ok(Terms::ProfitShare { provider, pct });
    }
    f.reject_unknown(
        &[
            "type",
            "platform_fee_pct",
            "max_profit_share_pct",
            "settlement",
        ],
        ty,
    )?;
    let fee = f
        .opt_decimal("platform_fee_pct", DecimalRange::Percent)?
        .map(Factor);
    let max_share = f
        .opt_decimal("max_profit_share_pct", DecimalRange::Pct)?
        .map(Factor);
    let settlement = match f.opt_value("settlement") {
        None => None,
        Some(s) => Some(
            s.as_str()
                .and_then(Schedule::parse)
                .ok_or("field 'settlement' must be one of weekly, monthly, none")?,
        ),
    };
    if fee.is_none() && max_share.is_none() && settlement.is_none() {
        return Err("platform needs platform_fee_pct, max_profit_share_pct or settlement".into());
    }
    Ok(Terms::Platform {
        fee,
        max_share,
        settlement,
    })
}

/// The reason a control change is invalid on its own, or None.
pub fn check_control(text: &str) -> Option<String> {
    parse_change(text).err()
}

/// The input position (`seq`) at which control change number `change` is applied, so
/// its orders' ids are its own; None for a number of 2^63 or more.
pub fn control_seq(change: u64) -> Option<u64> {
    (change < CONTROL_ID_BASE).then(|| CONTROL_ID_BASE + change)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_control_type_parses_and_others_are_named() {
        let follow = r#"{"type":"follow","follower":"f","provider":"p","allocation":"100"}"#;
        assert!(matches!(
            parse_change(follow),
            Ok(Change::Event(Event::Follow(_)))
        ));
        assert!(matches!(
            parse_change(r#"{"type":"pause","follower":"f","provider":"p"}"#),
            Ok(Change::Event(Event::Pause { .. }))
        ));
        assert_eq!(
            check_control(r#"{"type":"mark","symbol":"BTC","price":"1"}"#).as_deref(),
            Some(
                "'mark' is not a control change \
                 (one of follow, unfollow, deposit, withdraw, pause, resume, settings, \
                 profit_share, platform)"
            )
        );
        assert_eq!(check_control(follow), None);
    }

    #[test]
    fn invalid_text_gets_the_replay_parser_reason() {
        assert!(check_control("{").unwrap().starts_with("not JSON: "));
        // no type: the replay parser's own message, as for a replay event
        let replay_reason = parse_event(&serde_json::json!({"follower": "f"})).unwrap_err();
        assert_eq!(check_control(r#"{"follower":"f"}"#), Some(replay_reason));
        assert_eq!(
            check_control(r#"{"type":"deposit","follower":"f","provider":"p","amount":"-1"}"#),
            parse_event(&serde_json::json!(
                {"type":"deposit","follower":"f","provider":"p","amount":"-1"}
            ))
            .err()
        );
    }

    #[test]
    fn terms_changes_parse_and_bad_ones_are_named() {
        let terms = |text: &str| match parse_change(text) {
            Ok(Change::Terms(t)) => t,
            other => panic!("{text}: {other:?}"),
        };
        assert_eq!(
            terms(r#"{"type":"profit_share","provider":"p","profit_share_pct":"12.5"}"#),
            Terms::ProfitShare {
                provider: "p".into(),
                pct: Factor(1_250_000_000),
            }
        );
        assert_eq!(
            terms(r#"{"type":"platform","platform_fee_pct":"10","settlement":"monthly"}"#),
            Terms::Platform {
                fee: Some(Factor::from_units(10)),
                max_share: None,
                settlement: Some(Schedule::Monthly),
            }
        );
        assert_eq!(
            terms(r#"{"type":"platform","settlement":"none"}"#),
            Terms::Platform {
                fee: None,
                max_share: None,
                settlement: Some(Schedule::None),
            }
        );
        assert_eq!(
            terms(r#"{"type":"platform","max_profit_share_pct":"40.5"}"#),
            Terms::Platform {
                fee: None,
                max_share: Some(Factor(4_050_000_000)),
                settlement: None,
            }
        );
        for (text, reason) in [
            (
                r#"{"type":"profit_share","provider":"p","profit_share_pct":"101"}"#,
                "field 'profit_share_pct' must be in [0, 100]",
            ),
            (
                r#"{"type":"profit_share","provider":"p"}"#,
                "missing field 'profit_share_pct'",
            ),
            (
                r#"{"type":"profit_share","provider":"p","profit_share_pct":"1","follower":"f"}"#,
                "unknown field 'follower' for profit_share",
            ),
            (
                r#"{"type":"platform","platform_fee_pct":"-1"}"#,
                "field 'platform_fee_pct' must be in [0, 100]",
            ),
            (
                r#"{"type":"platform","settlement":"daily"}"#,
                "field 'settlement' must be one of weekly, monthly, none",
            ),
            (
                r#"{"type":"platform","max_profit_share_pct":"0"}"#,
                "field 'max_profit_share_pct' must be in (0, 100]",
            ),
            (
                r#"{"type":"platform","max_profit_share_pct":"100.5"}"#,
                "field 'max_profit_share_pct' must be in (0, 100]",
            ),
            (
                r#"{"type":"platform","max_share":"40"}"#,
                "unknown field 'max_share' for platform",
            ),
            (
                r#"{"type":"platform"}"#,
                "platform needs platform_fee_pct, max_profit_share_pct or settlement",
            ),
        ] {
            assert_eq!(check_control(text).as_deref(), Some(reason), "{text}");
        }
    }

    #[test]
    fn control_seqs_stay_above_venue_seqs() {
        assert_eq!(control_seq(0), Some(1 << 63));
        assert_eq!(control_seq(5), Some((1 << 63) + 5));
        assert_eq!(control_seq((1 << 63) - 1), Some(u64::MAX));
        assert_eq!(control_seq(1 << 63), None);
    }
}

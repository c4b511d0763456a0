//! The control plane's rules: which changes an operator may make to the relationships
//! (`CONTROL_TYPES`, in the replay's event format) and the input position their copy
//! orders take. Checked here without the engine's state; the engine may still refuse a
//! valid change for the state it meets (an unknown follower, a withdrawal above free cash).

use serde_json::Value;

use crate::event::{parse_event, Event};

/// Control-plane changes: the replay's events that manage relationships.
pub const CONTROL_TYPES: [&str; 7] = [
    "follow", "unfollow", "deposit", "withdraw", "pause", "resume", "settings",
];

/// Client order ids of a control change's orders derive from `2^63 + change`: venue
/// seqs stay below 2^63 (docs/protocol.md), so they never meet a venue message's ids.
pub const CONTROL_ID_BASE: u64 = 1 << 63;

/// A control change (JSON text) checked without the engine's state: the replay's parser
/// and its messages, limited to `CONTROL_TYPES`.
pub fn parse_control(text: &str) -> Result<Event, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let ty = v.get("type").and_then(Value::as_str).unwrap_or_default();
    if v.is_object() && !ty.is_empty() && !CONTROL_TYPES.contains(&ty) {
        return Err(format!(
            "'{ty}' is not a control change (one of {})",
            CONTROL_TYPES.join(", ")
        ));
    }
    parse_event(&v)
}

/// The reason a control change is invalid on its own, or None.
pub fn check_control(text: &str) -> Option<String> {
    parse_control(text).err()
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
        assert!(matches!(parse_control(follow), Ok(Event::Follow(_))));
        assert!(matches!(
            parse_control(r#"{"type":"pause","follower":"f","provider":"p"}"#),
            Ok(Event::Pause { .. })
        ));
        assert_eq!(
            check_control(r#"{"type":"mark","symbol":"BTC","price":"1"}"#).as_deref(),
            Some(
                "'mark' is not a control change \
                 (one of follow, unfollow, deposit, withdraw, pause, resume, settings)"
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
    fn control_seqs_stay_above_venue_seqs() {
        assert_eq!(control_seq(0), Some(1 << 63));
        assert_eq!(control_seq(5), Some((1 << 63) + 5));
        assert_eq!(control_seq((1 << 63) - 1), Some(u64::MAX));
        assert_eq!(control_seq(1 << 63), None);
    }
}

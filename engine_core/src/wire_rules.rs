//! The venue protocol's field rules (docs/protocol.md), in one table for every Rust
//! decoder of venue frames (`reports`: fills, rejects; `inbound`: exec, mark,
//! instrument). Each rule is exactly the msgspec constraint of the matching type in
//! `pyservice/protocol.py`; the property tests (`tests/test_reports_decode.py`,
//! `tests/test_inbound_decode.py`) hold the decoders to msgspec's decoding.
//!
//! These are the wire's rules only: what makes a frame well-formed. The engine's rules
//! (8 decimals, below 10^12, a known provider) apply afterwards, as errors, not as
//! protocol violations.

use std::ops::{Range, RangeInclusive};

use rmp::decode::{self, Bytes};

use crate::model::RejectReason;

/// `Seq`: `ge=0, le=2**63 - 1`.
pub const SEQ: RangeInclusive<u64> = 0..=i64::MAX as u64;
/// `Micros` (a logged message's `ts`, µs since the Unix epoch, UTC): `ge=0, le=2**63 - 1`.
pub const TS: RangeInclusive<u64> = 0..=i64::MAX as u64;
/// `ProviderExecution.leverage`: `ge=1, le=1000` (the engine allows 1..=125).
pub const LEVERAGE: RangeInclusive<u64> = 1..=1000;
/// `ProviderExecution.leverage` when the message leaves it out.
pub const DEFAULT_LEVERAGE: u32 = 1;

/// A rule for a string field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Text {
    /// `Decimal`: `^[0-9]{1,13}(\.[0-9]{1,16})?\Z`.
    Decimal,
    /// `Name`: `^[A-Za-z0-9_.:-]{1,64}\Z`.
    Name,
    /// `ClientOrderId`: `^[A-Za-z0-9]{1,32}\Z`.
    ClientOrderId,
    /// `Side`: `Literal["buy", "sell"]`.
    Side,
    /// `Instrument.kind`: `Literal["spot", "perp"]`.
    InstrumentKind,
    /// `RejectReason`: the engine's `RejectReason` names.
    RejectReason,
}

impl Text {
    /// Whether `s` (a msgpack string's bytes, not yet known to be UTF-8) passes.
    pub fn accepts(self, s: &[u8]) -> bool {
        match self {
            Text::Decimal => is_decimal(s),
            Text::Name => {
                (1..=64).contains(&s.len())
                    && s.iter()
                        .all(|&b| b.is_ascii_alphanumeric() || b"_.:-".contains(&b))
            }
            Text::ClientOrderId => {
                (1..=32).contains(&s.len()) && s.iter().all(u8::is_ascii_alphanumeric)
            }
            Text::Side => s == b"buy" || s == b"sell",
            Text::InstrumentKind => s == b"spot" || s == b"perp",
            Text::RejectReason => std::str::from_utf8(s)
                .ok()
                .and_then(RejectReason::parse)
                .is_some(),
        }
    }
}

fn is_decimal(s: &[u8]) -> bool {
    let (int, frac) = match s.iter().position(|&b| b == b'.') {
        Some(dot) => (&s[..dot], Some(&s[dot + 1..])),
        None => (s, None),
    };
    let digits =
        |d: &[u8], max: usize| (1..=max).contains(&d.len()) && d.iter().all(u8::is_ascii_digit);
    digits(int, 13) && frac.is_none_or(|f| digits(f, 16))
}

/// Reads one msgpack message field by field, as msgspec decodes an `array_like` Struct:
/// any msgpack width of a header is accepted, a string field must be a msgpack string
/// (not bin), an integer field a msgpack integer (not a float or bool).
pub struct Cursor<'a> {
    payload: &'a [u8],
    rd: Bytes<'a>,
}

impl<'a> Cursor<'a> {
    pub fn new(payload: &'a [u8]) -> Self {
        Self {
            payload,
            rd: Bytes::new(payload),
        }
    }

    pub fn array_len(&mut self) -> Result<usize, String> {
        decode::read_array_len(&mut self.rd)
            .map(|n| n as usize)
            .map_err(|_| "expected an array".to_string())
    }

    /// A string of any content; where its bytes lie in the payload.
    pub fn string(&mut self) -> Result<Range<usize>, String> {
        let n = decode::read_str_len(&mut self.rd).map_err(|_| "expected a string".to_string())?
            as usize;
        let rest = self.rd.remaining_slice();
        if rest.len() < n {
            return Err("truncated".into());
        }
        let start = self.payload.len() - rest.len();
        self.rd = Bytes::new(&rest[n..]);
        Ok(start..start + n)
    }

    /// A string field that must pass `rule`.
    pub fn text(&mut self, name: &str, rule: Text) -> Result<Range<usize>, String> {
        let r = self.string().map_err(|e| format!("{name}: {e}"))?;
        let text = &self.payload[r.clone()];
        if !rule.accepts(text) {
            return Err(format!(
                "{name} '{}' is not valid",
                String::from_utf8_lossy(text).escape_debug()
            ));
        }
        Ok(r)
    }

    /// `text`, as an owned string (every rule admits only ASCII).
    pub fn owned(&mut self, name: &str, rule: Text) -> Result<String, String> {
        let r = self.text(name, rule)?;
        Ok(String::from_utf8_lossy(&self.payload[r]).into_owned())
    }

    /// An integer field within `range`.
    pub fn integer(&mut self, name: &str, range: RangeInclusive<u64>) -> Result<u64, String> {
        let n: u64 = decode::read_int(&mut self.rd).map_err(|_| {
            format!(
                "{name}: expected an integer in {}..={}",
                range.start(),
                range.end()
            )
        })?;
        if !range.contains(&n) {
            return Err(format!(
                "{name} {n} is not in {}..={}",
                range.start(),
                range.end()
            ));
        }
        Ok(n)
    }

    /// `Seq`.
    pub fn seq(&mut self) -> Result<u64, String> {
        self.integer("seq", SEQ)
    }

    /// A logged message's `ts` (`Micros`), as the engine's clock takes it.
    pub fn ts(&mut self) -> Result<i64, String> {
        // TS ends at i64::MAX: the cast is exact
        self.integer("ts", TS).map(|n| n as i64)
    }

    /// The message must end here.
    pub fn finish(&self) -> Result<(), String> {
        if self.rd.remaining_slice().is_empty() {
            Ok(())
        } else {
            Err("bytes after the message".into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_syntax() {
        for ok in ["0", "1234567890123", "1.0000000000000001", "01"] {
            assert!(Text::Decimal.accepts(ok.as_bytes()), "{ok}");
        }
        for bad in [
            "",
            ".",
            "1.",
            ".5",
            "12345678901234",
            "1.00000000000000001",
            "-1",
            "1e3",
            "1.2.3",
            "1\n",
        ] {
            assert!(!Text::Decimal.accepts(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn names_and_ids() {
        assert!(Text::Name.accepts(b"BTC-USD_1.a:b"));
        assert!(Text::Name.accepts(&[b'a'; 64]));
        for bad in [&b""[..], &[b'a'; 65], b"a b", b"a\n", "\u{e9}".as_bytes()] {
            assert!(!Text::Name.accepts(bad), "{bad:?}");
        }
        assert!(Text::ClientOrderId.accepts(&[b'Z'; 32]));
        for bad in [&b""[..], &[b'a'; 33], b"a-b", b"a.b"] {
            assert!(!Text::ClientOrderId.accepts(bad), "{bad:?}");
        }
    }

    #[test]
    fn literals() {
        assert!(Text::Side.accepts(b"sell") && !Text::Side.accepts(b"Buy"));
        assert!(Text::InstrumentKind.accepts(b"perp") && !Text::InstrumentKind.accepts(b"swap"));
        assert!(Text::RejectReason.accepts(b"duplicate") && !Text::RejectReason.accepts(b"lost"));
    }
}

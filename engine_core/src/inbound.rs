//! The venue's log entries other than reports, `exec`, `mark` and `instrument`
//! (docs/protocol.md), decoded straight from msgpack, and applied to the engine as
//! typed values (no JSON between the wire and the rules).
//!
//! The checks are exactly those of `pyservice.protocol.ProviderExecution` /
//! `MarkPrice` / `Instrument` as msgspec decodes them (`wire_rules`; the property test
//! `tests/test_inbound_decode.py` compares the two on random and mutated frames): an
//! array `[tag, seq, ts, field, ...]` of the Struct's length (an `exec` may leave out its
//! last field, leverage), each field of its type and rule, nothing after the message.
//! A frame that breaks any of them is a protocol error. The engine's own rules (at most
//! 8 decimals, below 10^12, a known provider, leverage up to 125) apply when the message
//! is applied, with the messages of the replay's `fill` and `mark` events and of an
//! instrument in a scenario.

use crate::engine::Engine;
use crate::event::{
    decimal_text, integer_in, to_money, DecimalRange, Event, ProviderFill, MAX_LEVERAGE,
};
use crate::fixed::{Price, Qty};
use crate::model::{Instrument, Kind, Side};
use crate::reports::Reports;
use crate::wire_rules::{Cursor, Text, DEFAULT_LEVERAGE, LEVERAGE};

/// A provider execution (`exec`), as the wire carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exec {
    pub seq: u64,
    /// The venue's time of the event, µs since the Unix epoch (UTC), 0..=2^63-1.
    pub ts: i64,
    pub provider: String,
    pub exec_id: String,
    pub symbol: String,
    pub side: Side,
    /// Decimal texts as sent (`Decimal`); the engine parses them when it applies them.
    pub qty: String,
    pub price: String,
    pub provider_equity: String,
    /// 1..=1000 on the wire; the engine refuses above `MAX_LEVERAGE`.
    pub leverage: u32,
}

/// A mark price (`mark`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    pub seq: u64,
    /// The venue's time of the event, µs since the Unix epoch (UTC), 0..=2^63-1.
    pub ts: i64,
    pub symbol: String,
    pub price: String,
}

/// An instrument definition (`instrument`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstrumentDef {
    pub seq: u64,
    /// The venue's time of the event, µs since the Unix epoch (UTC), 0..=2^63-1.
    pub ts: i64,
    pub symbol: String,
    pub kind: Kind,
    pub tick: String,
    pub step: String,
    pub min_qty: String,
    pub min_notional: String,
}

/// A decoded venue log entry.
#[derive(Debug)]
pub enum Inbound {
    Exec(Exec),
    Mark(Mark),
    Instrument(InstrumentDef),
    /// `fills` or `rejects` (`reports`).
    Reports(Reports),
}

/// Decode one frame payload (without its length prefix) whose tag is `exec`, `mark`,
/// `instrument`, `fills` or `rejects`. None for anything else, including a payload
/// that does not start with an array and a string tag: those are msgspec's to decode
/// (or refuse), as `hello` and `hb` are.
pub fn decode(payload: &[u8]) -> Option<Result<Inbound, String>> {
    let mut cur = Cursor::new(payload);
    let n = cur.array_len().ok()?;
    if n == 0 {
        return None;
    }
    let tag = cur.string().ok()?;
    Some(match &payload[tag] {
        b"exec" => exec(cur, n).map(Inbound::Exec),
        b"mark" => mark(cur, n).map(Inbound::Mark),
        b"instrument" => instrument(cur, n).map(Inbound::Instrument),
        b"fills" | b"rejects" => Reports::decode(payload).map(Inbound::Reports),
        _ => return None,
    })
}

/// `n`, the array's length, must be one of `lengths` (the tag and the fields).
fn length(tag: &str, n: usize, lengths: std::ops::RangeInclusive<usize>) -> Result<(), String> {
    if lengths.contains(&n) {
        return Ok(());
    }
    let expected = if lengths.start() == lengths.end() {
        lengths.start().to_string()
    } else {
        format!("{} or {}", lengths.start(), lengths.end())
    };
    Err(format!("a {tag} message has {expected} elements, not {n}"))
}

fn exec(mut cur: Cursor<'_>, n: usize) -> Result<Exec, String> {
    length("exec", n, 10..=11)?;
    let e = Exec {
        seq: cur.seq()?,
        ts: cur.ts()?,
        provider: cur.owned("provider", Text::Name)?,
        exec_id: cur.owned("exec_id", Text::Name)?,
        symbol: cur.owned("symbol", Text::Name)?,
        side: match cur.owned("side", Text::Side)?.as_str() {
            "buy" => Side::Buy,
            _ => Side::Sell,
        },
        qty: cur.owned("qty", Text::Decimal)?,
        price: cur.owned("price", Text::Decimal)?,
        provider_equity: cur.owned("provider_equity", Text::Decimal)?,
        leverage: if n == 11 {
            // LEVERAGE ends at 1000: the cast is exact
            cur.integer("leverage", LEVERAGE)? as u32
        } else {
            DEFAULT_LEVERAGE
        },
    };
    cur.finish()?;
    Ok(e)
}

fn mark(mut cur: Cursor<'_>, n: usize) -> Result<Mark, String> {
    length("mark", n, 5..=5)?;
    let m = Mark {
        seq: cur.seq()?,
        ts: cur.ts()?,
        symbol: cur.owned("symbol", Text::Name)?,
        price: cur.owned("price", Text::Decimal)?,
    };
    cur.finish()?;
    Ok(m)
}

fn instrument(mut cur: Cursor<'_>, n: usize) -> Result<InstrumentDef, String> {
    length("instrument", n, 9..=9)?;
    let i = InstrumentDef {
        seq: cur.seq()?,
        ts: cur.ts()?,
        symbol: cur.owned("symbol", Text::Name)?,
        kind: match cur.owned("kind", Text::InstrumentKind)?.as_str() {
            "spot" => Kind::Spot,
            _ => Kind::Perp,
        },
        tick: cur.owned("tick", Text::Decimal)?,
        step: cur.owned("step", Text::Decimal)?,
        min_qty: cur.owned("min_qty", Text::Decimal)?,
        min_notional: cur.owned("min_notional", Text::Decimal)?,
    };
    cur.finish()?;
    Ok(i)
}

impl Exec {
    /// The engine's event, or the error the engine records instead: the rules and
    /// messages of the replay's `fill` event (names, side and the decimals' syntax
    /// already hold, by the wire's rules).
    pub fn event(&self) -> Result<Event, String> {
        Ok(Event::Fill(ProviderFill {
            provider: self.provider.clone(),
            exec_id: self.exec_id.clone(),
            symbol: self.symbol.clone(),
            side: self.side,
            qty: Qty(decimal_text("qty", &self.qty, DecimalRange::Positive)?),
            price: Price(decimal_text("price", &self.price, DecimalRange::Positive)?),
            provider_equity: to_money(decimal_text(
                "provider_equity",
                &self.provider_equity,
                DecimalRange::Positive,
            )?),
            leverage: integer_in("leverage", Some(u64::from(self.leverage)), MAX_LEVERAGE)?,
        }))
    }

    /// Apply to `engine` at its venue time (the fan-out over the provider's book); its
    /// records are the engine's `records()`.
    pub fn apply(&self, engine: &mut Engine) {
        engine.advance_clock(self.seq, self.ts);
        engine.apply_parsed(self.seq, self.event());
    }
}

impl Mark {
    /// The engine's event, or its error (the replay's `mark` event).
    pub fn event(&self) -> Result<Event, String> {
        Ok(Event::Mark {
            symbol: self.symbol.clone(),
            price: Price(decimal_text("price", &self.price, DecimalRange::Positive)?),
        })
    }

    pub fn apply(&self, engine: &mut Engine) {
        engine.advance_clock(self.seq, self.ts);
        engine.apply_parsed(self.seq, self.event());
    }
}

impl InstrumentDef {
    /// The engine's instrument, or its error (an instrument in a scenario file).
    pub fn instrument(&self) -> Result<Instrument, String> {
        let decimal = |name, text, range| {
            decimal_text(name, text, range).map_err(|e| format!("instrument: {e}"))
        };
        Ok(Instrument {
            symbol: self.symbol.clone(),
            kind: self.kind,
            tick: Price(decimal("tick", &self.tick, DecimalRange::Positive)?),
            step: Qty(decimal("step", &self.step, DecimalRange::Positive)?),
            min_qty: Qty(decimal(
                "min_qty",
                &self.min_qty,
                DecimalRange::NonNegative,
            )?),
            min_notional: to_money(decimal(
                "min_notional",
                &self.min_notional,
                DecimalRange::NonNegative,
            )?),
        })
    }

    pub fn apply(&self, engine: &mut Engine) {
        engine.advance_clock(self.seq, self.ts);
        match self.instrument() {
            Ok(inst) => engine.add_instrument(inst),
            Err(m) => engine.record_error(m),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A msgpack array of fixstrs, with integer `ints` at the given positions.
    fn frame(items: &[&str], ints: &[(usize, u8)]) -> Vec<u8> {
        let mut b = vec![0x90 | items.len() as u8];
        for (i, s) in items.iter().enumerate() {
            match ints.iter().find(|(at, _)| *at == i) {
                Some((_, n)) => b.push(*n),
                None => {
                    b.push(0xa0 | s.len() as u8);
                    b.extend_from_slice(s.as_bytes());
                }
            }
        }
        b
    }

    fn exec_frame(lev: Option<u8>) -> Vec<u8> {
        let mut items = vec![
            "exec", "", "", "P", "x1", "BTC", "buy", "1.5", "100", "1000",
        ];
        let mut ints = vec![(1, 7), (2, 90)];
        if let Some(l) = lev {
            items.push("");
            ints.push((10, l));
        }
        frame(&items, &ints)
    }

    #[test]
    fn decodes_exec_with_and_without_leverage() {
        let Some(Ok(Inbound::Exec(e))) = decode(&exec_frame(Some(5))) else {
            panic!("not decoded");
        };
        assert_eq!(
            (e.seq, e.ts, e.side, e.qty.as_str(), e.leverage),
            (7, 90, Side::Buy, "1.5", 5)
        );
        let Some(Ok(Inbound::Exec(e))) = decode(&exec_frame(None)) else {
            panic!("not decoded");
        };
        assert_eq!(e.leverage, 1);
    }

    #[test]
    fn decodes_mark_and_instrument() {
        let Some(Ok(Inbound::Mark(m))) =
            decode(&frame(&["mark", "", "", "BTC", "1.5"], &[(1, 3), (2, 4)]))
        else {
            panic!("not decoded");
        };
        assert_eq!(
            (m.seq, m.ts, m.symbol.as_str(), m.price.as_str()),
            (3, 4, "BTC", "1.5")
        );
        let items = [
            "instrument",
            "",
            "",
            "ETH",
            "perp",
            "0.01",
            "0.001",
            "0",
            "5",
        ];
        let Some(Ok(Inbound::Instrument(i))) = decode(&frame(&items, &[(1, 2), (2, 0)])) else {
            panic!("not decoded");
        };
        assert_eq!(
            (i.seq, i.ts, i.kind, i.min_notional.as_str()),
            (2, 0, Kind::Perp, "5")
        );
    }

    #[test]
    fn refuses_what_msgspec_refuses() {
        let mut trailing = exec_frame(None);
        trailing.push(0xc0);
        let mut short = exec_frame(None);
        short[0] = 0x99;
        let mut float_ts = exec_frame(None);
        float_ts[7] = 0xc3; // true: a bool is not an integer
        for bad in [
            exec_frame(Some(0)),
            trailing,
            short,
            float_ts,
            frame(&["mark", "", "", "BTC", "1."], &[(1, 1), (2, 1)]),
            frame(&["mark", "", "", "B C", "1"], &[(1, 1), (2, 1)]),
            frame(&["mark", "1", "", "BTC", "1"], &[(2, 1)]),
            frame(&["mark", "", "1", "BTC", "1"], &[(1, 1)]),
            frame(&["mark", "", "BTC", "1"], &[(1, 1)]),
            frame(
                &["instrument", "", "", "BTC", "swap", "1", "1", "0", "0"],
                &[(1, 1), (2, 1)],
            ),
        ] {
            assert!(matches!(decode(&bad), Some(Err(_))), "{bad:?}");
        }
        // other tags and non-messages are msgspec's
        assert!(decode(&frame(&["hb", ""], &[(1, 1)])).is_none());
        // ts beyond 2^63-1 (a uint64) and below 0 (an int8)
        let mark = frame(&["mark", "", "", "BTC", "1"], &[(1, 1), (2, 0)]);
        let (mut big, mut negative, mut max) = (mark.clone(), mark.clone(), mark);
        big.splice(7..8, [0xcf, 0x80, 0, 0, 0, 0, 0, 0, 0]);
        negative.splice(7..8, [0xd0, 0xff]);
        max.splice(7..8, [0xcf, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
        let Some(Ok(Inbound::Mark(m))) = decode(&max) else {
            panic!("not decoded");
        };
        assert_eq!(m.ts, i64::MAX);
        for bad in [big, negative] {
            assert!(matches!(decode(&bad), Some(Err(_))), "{bad:?}");
        }
        assert!(decode(&[0xc0]).is_none());
        assert!(decode(&[0x90]).is_none());
    }

    #[test]
    fn applying_advances_the_clock_and_corrects_an_earlier_ts() {
        use crate::model::Platform;
        let mut engine = Engine::new(Vec::new(), vec!["P".into()], Platform::default()).into_live();
        let mark = |ts| Mark {
            seq: 1,
            ts,
            symbol: "BTC".into(),
            price: "1".into(),
        };
        mark(1_000).apply(&mut engine);
        assert_eq!((engine.now_us(), engine.clock_corrections()), (1_000, 0));
        mark(999).apply(&mut engine);
        assert_eq!((engine.now_us(), engine.clock_corrections()), (1_000, 1));
        let Some(Ok(Inbound::Exec(e))) = decode(&exec_frame(None)) else {
            panic!("not decoded");
        };
        e.apply(&mut engine); // ts 90: earlier again, still counted though refused by the rules
        assert_eq!((engine.now_us(), engine.clock_corrections()), (1_000, 2));
        mark(1_001).apply(&mut engine);
        assert_eq!((engine.now_us(), engine.clock_corrections()), (1_001, 2));
    }

    #[test]
    fn the_engine_rules_apply_after_the_wire() {
        let Some(Ok(Inbound::Exec(mut e))) = decode(&exec_frame(None)) else {
            panic!("not decoded");
        };
        e.leverage = 126;
        assert_eq!(
            e.event().unwrap_err(),
            "field 'leverage' must be an integer from 1 to 125"
        );
        e.qty = "0.000000001".into();
        assert_eq!(
            e.event().unwrap_err(),
            "field 'qty' has more than 8 decimal places"
        );
        let i = InstrumentDef {
            seq: 1,
            ts: 0,
            symbol: "BTC".into(),
            kind: Kind::Spot,
            tick: "0".into(),
            step: "1".into(),
            min_qty: "0".into(),
            min_notional: "0".into(),
        };
        assert_eq!(
            i.instrument().unwrap_err(),
            "instrument: field 'tick' must be positive"
        );
    }
}

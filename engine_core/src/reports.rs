//! The venue's report frames, `fills` and `rejects` (docs/protocol.md), decoded
//! straight from msgpack. They are the engine's largest inputs (one entry per copy
//! order), so the daemon hands their payload here instead of building a Python object
//! per entry.
//!
//! The checks are exactly those of `pyservice.protocol.CopyFills` / `CopyRejects` as
//! msgspec decodes them (`wire_rules`; tests compare the two on random and mutated
//! frames): a 4-element array `[tag, seq, ts, [entry, ...]]`, seq and ts integers in
//! 0..=2^63-1, each fill
//! `[client_order_id, qty, price]` and each reject `[client_order_id, reason]`, every
//! field a string of the protocol's syntax, nothing after the message. A frame that
//! breaks any of them is refused whole; the copy rules (known order, qty within the
//! order, step) are the engine's and apply per entry.

use std::ops::Range;

use crate::engine::Engine;
use crate::wire_rules::{Cursor, Text};

/// Which report a frame carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportKind {
    Fills,
    Rejects,
}

impl ReportKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ReportKind::Fills => "fills",
            ReportKind::Rejects => "rejects",
        }
    }

    fn width(self) -> usize {
        match self {
            ReportKind::Fills => 3,
            ReportKind::Rejects => 2,
        }
    }
}

/// A decoded report frame: the payload, and where each entry's fields lie in it.
#[derive(Debug)]
pub struct Reports {
    pub kind: ReportKind,
    pub seq: u64,
    /// The venue's time of the reports, µs since the Unix epoch (UTC).
    pub ts: i64,
    payload: Vec<u8>,
    /// `kind.width()` ranges per entry, into `payload`.
    fields: Vec<Range<u32>>,
}

impl Reports {
    /// Decode one frame payload (without its length prefix).
    pub fn decode(payload: &[u8]) -> Result<Reports, String> {
        if payload.len() > u32::MAX as usize {
            return Err("frame too large".into());
        }
        let mut cur = Cursor::new(payload);
        let top = cur.array_len()?;
        let tag = cur.string().map_err(|e| format!("the tag: {e}"))?;
        let kind = match &payload[tag] {
            b"fills" => ReportKind::Fills,
            b"rejects" => ReportKind::Rejects,
            _ => return Err("not a fills or rejects frame".into()),
        };
        if top != 4 {
            return Err(format!(
                "a {} message has 4 elements, not {top}",
                kind.as_str()
            ));
        }
        let seq = cur.seq()?;
        let ts = cur.ts()?;
        let n = cur
            .array_len()
            .map_err(|_| "expected an array of entries".to_string())?;
        let width = kind.width();
        // An entry takes at least its array header and a header and a byte per field
        // (a reject's reason, at least 7): a length claim beyond that is a lie, refused
        // before anything is reserved for it.
        let min_entry = match kind {
            ReportKind::Fills => 1 + 3 * 2,
            ReportKind::Rejects => 1 + 2 + 8,
        };
        if n > payload.len() / min_entry {
            return Err(format!("{n} entries cannot fit in {} bytes", payload.len()));
        }
        let fields_of: &[(&str, Text)] = match kind {
            ReportKind::Fills => &[
                ("client_order_id", Text::ClientOrderId),
                ("qty", Text::Decimal),
                ("price", Text::Decimal),
            ],
            ReportKind::Rejects => &[
                ("client_order_id", Text::ClientOrderId),
                ("reason", Text::RejectReason),
            ],
        };
        let mut fields = Vec::with_capacity(n * width);
        for i in 0..n {
            let w = cur
                .array_len()
                .map_err(|_| format!("entry {i}: expected an array"))?;
            if w != width {
                return Err(format!("entry {i}: {w} fields, expected {width}"));
            }
            for &(name, rule) in fields_of {
                let r = cur
                    .text(name, rule)
                    .map_err(|e| format!("entry {i}: {e}"))?;
                fields.push(r.start as u32..r.end as u32);
            }
        }
        cur.finish()?;
        Ok(Reports {
            kind,
            seq,
            ts,
            payload: payload.to_vec(),
            fields,
        })
    }

    /// Apply to `engine` at the reports' venue time.
    pub fn apply(&self, engine: &mut Engine) {
        engine.advance_clock(self.seq, self.ts);
        match self.kind {
            ReportKind::Fills => engine.copy_fills(self.seq, self.fills()),
            ReportKind::Rejects => engine.copy_rejects(self.seq, self.rejects()),
        };
    }

    pub fn len(&self) -> usize {
        self.fields.len() / self.kind.width()
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    fn text(&self, r: &Range<u32>) -> &str {
        // Every field was checked to be ASCII.
        std::str::from_utf8(&self.payload[r.start as usize..r.end as usize]).unwrap_or_default()
    }

    /// `(client_order_id, qty, price)` of each fill (empty for a rejects frame).
    pub fn fills(&self) -> impl Iterator<Item = (&str, &str, &str)> {
        let n = if self.kind == ReportKind::Fills {
            self.fields.len()
        } else {
            0
        };
        self.fields[..n]
            .chunks_exact(3)
            .map(|f| (self.text(&f[0]), self.text(&f[1]), self.text(&f[2])))
    }

    /// `(client_order_id, reason)` of each reject (empty for a fills frame).
    pub fn rejects(&self) -> impl Iterator<Item = (&str, &str)> {
        let n = if self.kind == ReportKind::Rejects {
            self.fields.len()
        } else {
            0
        };
        self.fields[..n]
            .chunks_exact(2)
            .map(|f| (self.text(&f[0]), self.text(&f[1])))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fills_frame(entries: &[[&str; 3]], seq: u8) -> Vec<u8> {
        let mut b = vec![0x94, 0xa5];
        b.extend_from_slice(b"fills");
        b.push(seq);
        b.extend_from_slice(&[0xce, 0, 1, 0, 0]); // ts 65536
        b.push(0x90 | entries.len() as u8);
        for e in entries {
            b.push(0x93);
            for f in e {
                b.push(0xa0 | f.len() as u8);
                b.extend_from_slice(f.as_bytes());
            }
        }
        b
    }

    #[test]
    fn decodes_fills() {
        let r = Reports::decode(&fills_frame(
            &[["abc", "0.5", "60000"], ["d1", "1", "2.25"]],
            7,
        ))
        .unwrap();
        assert_eq!(
            (r.kind, r.seq, r.ts, r.len()),
            (ReportKind::Fills, 7, 65536, 2)
        );
        let got: Vec<_> = r.fills().collect();
        assert_eq!(got, [("abc", "0.5", "60000"), ("d1", "1", "2.25")]);
        assert_eq!(r.rejects().count(), 0);
    }

    #[test]
    fn refuses_bad_fields_and_trailing_bytes() {
        for bad in [
            ["ab-c", "1", "1"],
            ["abc", "1.", "1"],
            ["abc", "1", "1\n"],
            ["abc", "", "1"],
        ] {
            assert!(Reports::decode(&fills_frame(&[bad], 1)).is_err(), "{bad:?}");
        }
        let mut f = fills_frame(&[["abc", "1", "1"]], 1);
        f.push(0);
        assert_eq!(Reports::decode(&f).unwrap_err(), "bytes after the message");
        let f = fills_frame(&[["abc", "1", "1"]], 1);
        assert!(Reports::decode(&f[..f.len() - 1]).is_err());
        let mut float_ts = fills_frame(&[], 1);
        float_ts[8] = 0xca; // a float32 of the same bytes: not an integer
        assert_eq!(
            Reports::decode(&float_ts).unwrap_err(),
            "ts: expected an integer in 0..=9223372036854775807"
        );
        let mut short = fills_frame(&[], 1);
        short[0] = 0x93;
        assert_eq!(
            Reports::decode(&short).unwrap_err(),
            "a fills message has 4 elements, not 3"
        );
    }
}

//! Rows for PostgreSQL's `COPY ... FROM STDIN` (text format) and stream entries as JSON,
//! written from the engine's own frames, so the projector and the stream publisher do no
//! per-order Python work.
//!
//! Text format: one line per row, columns separated by tabs, `\N` for NULL, and `\`,
//! tab, newline and carriage return escaped. The protocol's names and decimals never
//! hold those, but a shard name comes from the command line.

use rmp::decode::{self, Bytes};

use crate::reports::{ReportKind, Reports};

/// Escape one text value for COPY's text format.
fn field(buf: &mut Vec<u8>, s: &[u8]) {
    for &b in s {
        match b {
            b'\\' => buf.extend_from_slice(b"\\\\"),
            b'\t' => buf.extend_from_slice(b"\\t"),
            b'\n' => buf.extend_from_slice(b"\\n"),
            b'\r' => buf.extend_from_slice(b"\\r"),
            _ => buf.push(b),
        }
    }
}

fn uint(buf: &mut Vec<u8>, v: u64) {
    buf.extend_from_slice(v.to_string().as_bytes());
}

fn read_str<'a>(rd: &mut Bytes<'a>) -> Result<&'a [u8], String> {
    let n = decode::read_str_len(rd).map_err(|_| "expected a string")? as usize;
    let rest = rd.remaining_slice();
    if rest.len() < n {
        return Err("truncated".into());
    }
    *rd = Bytes::new(&rest[n..]);
    Ok(&rest[..n])
}

/// `copy_orders` rows (shard, client_order_id, seq, follower_id, provider_id, symbol,
/// side, type, qty, price, reduce_only, leverage, change_id, n) of one `orders` frame as
/// the engine writes it (`wire::encode_orders`, length header included). `change_id` is
/// the control change that made the frame (0: the venue message at `seq`); `n` is the
/// order's place in the frame, so (shard, seq, change_id, n) is a key that grows.
pub fn orders_rows(
    frame: &[u8],
    shard: &str,
    change_id: u64,
    buf: &mut Vec<u8>,
) -> Result<usize, String> {
    let payload = frame.get(4..).ok_or("truncated")?;
    let mut rd = Bytes::new(payload);
    let bad = |what: &str| format!("not an orders frame: {what}");
    if decode::read_array_len(&mut rd).map_err(|_| bad("array"))? != 3
        || read_str(&mut rd)? != b"orders"
    {
        return Err(bad("tag"));
    }
    let seq: u64 = decode::read_int(&mut rd).map_err(|_| bad("seq"))?;
    let n = decode::read_array_len(&mut rd).map_err(|_| bad("orders"))? as usize;
    buf.reserve(n * 128);
    for i in 0..n {
        if decode::read_array_len(&mut rd).map_err(|_| bad("order"))? != 10 {
            return Err(bad("order width"));
        }
        field(buf, shard.as_bytes());
        for i in 0..7 {
            buf.push(b'\t');
            field(buf, read_str(&mut rd)?);
            if i == 0 {
                buf.push(b'\t');
                uint(buf, seq);
            }
        }
        buf.push(b'\t');
        if rd.remaining_slice().first() == Some(&0xc0) {
            rd = Bytes::new(&rd.remaining_slice()[1..]);
            buf.extend_from_slice(b"\\N");
        } else {
            field(buf, read_str(&mut rd)?);
        }
        let reduce_only = decode::read_bool(&mut rd).map_err(|_| bad("reduce_only"))?;
        buf.extend_from_slice(if reduce_only { b"\tt\t" } else { b"\tf\t" });
        let leverage: u64 = decode::read_int(&mut rd).map_err(|_| bad("leverage"))?;
        uint(buf, leverage);
        buf.push(b'\t');
        uint(buf, change_id);
        buf.push(b'\t');
        uint(buf, i as u64);
        buf.push(b'\n');
    }
    Ok(n)
}

/// `copy_fills` rows (shard, seq, n, client_order_id, qty, price) or `copy_rejects`
/// rows (shard, seq, n, client_order_id, reason).
pub fn report_rows(r: &Reports, shard: &str, buf: &mut Vec<u8>) {
    let mut row = |n: usize, fields: &[&str]| {
        field(buf, shard.as_bytes());
        buf.push(b'\t');
        uint(buf, r.seq);
        buf.push(b'\t');
        uint(buf, n as u64);
        for f in fields {
            buf.push(b'\t');
            field(buf, f.as_bytes());
        }
        buf.push(b'\n');
    };
    match r.kind {
        ReportKind::Fills => {
            for (n, (id, qty, price)) in r.fills().enumerate() {
                row(n, &[id, qty, price]);
            }
        }
        ReportKind::Rejects => {
            for (n, (id, reason)) in r.rejects().enumerate() {
                row(n, &[id, reason]);
            }
        }
    }
}

/// The entries as a JSON array of arrays of strings (they are checked protocol names,
/// decimals and reasons: nothing to escape).
pub fn entries_json(r: &Reports, buf: &mut Vec<u8>) {
    buf.push(b'[');
    let mut first = true;
    let mut entry = |fields: &[&str]| {
        if !first {
            buf.push(b',');
        }
        first = false;
        buf.push(b'[');
        for (i, f) in fields.iter().enumerate() {
            if i > 0 {
                buf.push(b',');
            }
            buf.push(b'"');
            buf.extend_from_slice(f.as_bytes());
            buf.push(b'"');
        }
        buf.push(b']');
    };
    for (a, b, c) in r.fills() {
        entry(&[a, b, c]);
    }
    for (a, b) in r.rejects() {
        entry(&[a, b]);
    }
    buf.push(b']');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_copy_text_format_needs() {
        let mut b = Vec::new();
        field(&mut b, b"a\tb\\c\nd\re");
        assert_eq!(b, b"a\\tb\\\\c\\nd\\re");
    }

    #[test]
    fn report_rows_and_json() {
        // ["fills", 7, 9, [["abc", "0.5", "60000"], ["d1", "1", "2.25"]]]
        let mut p = vec![0x94, 0xa5];
        p.extend_from_slice(b"fills");
        p.extend_from_slice(&[7, 9, 0x92]);
        for e in [["abc", "0.5", "60000"], ["d1", "1", "2.25"]] {
            p.push(0x93);
            for f in e {
                p.push(0xa0 | f.len() as u8);
                p.extend_from_slice(f.as_bytes());
            }
        }
        let r = Reports::decode(&p).unwrap();
        let mut rows = Vec::new();
        report_rows(&r, "main", &mut rows);
        assert_eq!(
            rows,
            b"main\t7\t0\tabc\t0.5\t60000\nmain\t7\t1\td1\t1\t2.25\n"
        );
        let mut json = Vec::new();
        entries_json(&r, &mut json);
        assert_eq!(json, br#"[["abc","0.5","60000"],["d1","1","2.25"]]"#);
    }

    #[test]
    fn an_orders_frame_that_is_not_one_is_refused() {
        let mut b = Vec::new();
        assert!(orders_rows(&[0, 0, 0, 1, 0x90], "main", 0, &mut b).is_err());
        assert!(orders_rows(&[0, 0], "main", 0, &mut b).is_err());
    }
}

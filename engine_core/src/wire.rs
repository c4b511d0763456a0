//! The venue protocol's `orders` frame (docs/protocol.md), written straight from a
//! batch of records: a 4-byte big-endian length, then the msgpack array
//! `["orders", seq, [[client_order_id, follower, provider, symbol, side, type, qty,
//! price|nil, reduce_only, leverage], ...]]`.
//!
//! msgspec decodes it into `pyservice.protocol.NewOrders`; the encoding is the one msgspec
//! itself writes (smallest int and str headers), so frames compare byte for byte.

use std::sync::Mutex;

use crate::engine::Engine;
use crate::fixed::Qty;
use crate::model::{CopyOrder, OrderType, ProviderId, Record, SymbolId};

/// Append the frame of `records`' orders to `buf`; returns how many orders it holds (no
/// frame is written for none). `leverage` gives each order's leverage field (a
/// reduce-only order carries 1: it releases whatever margin the lots it closes hold).
/// A large batch is encoded in parts on two threads (`crate::parallel`).
pub fn encode_orders(
    engine: &Engine,
    seq: u64,
    records: &[Record],
    leverage: impl Fn(&CopyOrder) -> u32 + Sync,
    buf: &mut Vec<u8>,
) -> usize {
    let n = records
        .iter()
        .filter(|r| matches!(r, Record::Order(_)))
        .count();
    if n == 0 {
        return 0;
    }
    let start = buf.len();
    buf.extend_from_slice(&[0; 4]);
    array_header(buf, 3);
    str_bytes(buf, b"orders");
    uint(buf, seq);
    array_header(buf, n);
    let parallel = engine.is_parallel() && records.len() >= crate::parallel::MIN_ITEMS;
    let parts = if parallel { crate::parallel::PARTS } else { 1 };
    // the first part writes on after the header (no copy on one thread)
    let mut first = Some(std::mem::take(buf));
    let parts: Vec<(&[Record], Vec<u8>)> = crate::parallel::bounds(records.len(), parts)
        .map(|(a, b)| (&records[a..b], first.take().unwrap_or_else(spare_buffer)))
        .collect();
    let bodies = crate::parallel::map_parts(parts, |(part, mut out)| {
        let mut body = Body::default();
        out.reserve(part.len() * 80);
        for r in part {
            if let Record::Order(o) = r {
                body.order(engine, o, leverage(o), &mut out);
            }
        }
        out
    });
    for (i, body) in bodies.into_iter().enumerate() {
        if i == 0 {
            *buf = body;
        } else {
            buf.extend_from_slice(&body);
            keep_buffer(body);
        }
    }
    let len = (buf.len() - start - 4) as u32;
    buf[start..start + 4].copy_from_slice(&len.to_be_bytes());
    n
}

/// The parts' buffers of the last frames, kept: a fresh one per part per frame costs
/// page faults.
static SPARE: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

fn spare_buffer() -> Vec<u8> {
    SPARE
        .lock()
        .ok()
        .and_then(|mut s| s.pop())
        .unwrap_or_default()
}

fn keep_buffer(mut buf: Vec<u8>) {
    buf.clear();
    if let Ok(mut s) = SPARE.lock() {
        if s.len() < crate::parallel::PARTS {
            s.push(buf);
        }
    }
}

/// An order's provider, symbol, side and type.
type Middle = (ProviderId, SymbolId, u8, u8);

/// Writes orders' entries. Within a batch most orders share their provider, symbol,
/// side, type, quantity and limit: each field's bytes are kept from the last order and
/// written again while it is the same.
#[derive(Default)]
struct Body {
    /// (provider, symbol, side, type) and their four encoded strings.
    middle: Option<(Middle, Vec<u8>)>,
    /// The last raw qty and its encoded string.
    qty: Option<(i128, Vec<u8>)>,
    /// The last limit (raw; None for a market order's nil) and its encoding.
    limit: Option<(Option<i128>, Vec<u8>)>,
}

impl Body {
    fn order(&mut self, engine: &Engine, o: &CopyOrder, leverage: u32, buf: &mut Vec<u8>) {
        array_header(buf, 10);
        str_bytes(buf, &o.client_order_id.to_bytes());
        str_bytes(buf, engine.follower_name(o.follower).as_bytes());
        let key = (o.provider, o.symbol, o.side as u8, o.order_type as u8);
        let middle = match &mut self.middle {
            Some((k, bytes)) if *k == key => bytes,
            slot => {
                let mut bytes = Vec::new();
                str_bytes(&mut bytes, engine.provider_name(o.provider).as_bytes());
                str_bytes(&mut bytes, engine.symbol_name(o.symbol).as_bytes());
                str_bytes(&mut bytes, o.side.as_str().as_bytes());
                str_bytes(&mut bytes, o.order_type.as_str().as_bytes());
                &slot.insert((key, bytes)).1
            }
        };
        buf.extend_from_slice(middle);
        let qty = match &mut self.qty {
            Some((raw, bytes)) if *raw == o.qty.0 => bytes,
            slot => &slot.insert((o.qty.0, decimal_str(o.qty.0))).1,
        };
        buf.extend_from_slice(qty);
        let limit_raw = match o.order_type {
            OrderType::LimitIoc => Some(o.limit.0),
            OrderType::Market => None,
        };
        let limit = match &mut self.limit {
            Some((raw, bytes)) if *raw == limit_raw => bytes,
            slot => {
                let bytes = limit_raw.map_or_else(|| vec![0xc0], decimal_str);
                &slot.insert((limit_raw, bytes)).1
            }
        };
        buf.extend_from_slice(limit);
        buf.push(if o.reduce_only { 0xc3 } else { 0xc2 });
        uint(buf, u64::from(leverage));
    }
}

/// A raw value's decimal as an encoded msgpack string.
fn decimal_str(raw: i128) -> Vec<u8> {
    let mut digits = [0u8; 56];
    let mut bytes = Vec::new();
    str_bytes(&mut bytes, decimal(raw, &mut digits));
    bytes
}

#[inline]
fn array_header(buf: &mut Vec<u8>, n: usize) {
    if n < 16 {
        buf.push(0x90 | n as u8);
    } else if n <= 0xffff {
        buf.push(0xdc);
        buf.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        buf.push(0xdd);
        buf.extend_from_slice(&(n as u32).to_be_bytes());
    }
}

#[inline]
fn str_bytes(buf: &mut Vec<u8>, s: &[u8]) {
    let n = s.len();
    if n < 32 {
        buf.push(0xa0 | n as u8);
    } else if n <= 0xff {
        buf.extend_from_slice(&[0xd9, n as u8]);
    } else if n <= 0xffff {
        buf.push(0xda);
        buf.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        buf.push(0xdb);
        buf.extend_from_slice(&(n as u32).to_be_bytes());
    }
    buf.extend_from_slice(s);
}

#[inline]
fn uint(buf: &mut Vec<u8>, v: u64) {
    if v < 0x80 {
        buf.push(v as u8);
    } else if v <= 0xff {
        buf.extend_from_slice(&[0xcc, v as u8]);
    } else if v <= 0xffff {
        buf.push(0xcd);
        buf.extend_from_slice(&(v as u16).to_be_bytes());
    } else if v <= 0xffff_ffff {
        buf.push(0xce);
        buf.extend_from_slice(&(v as u32).to_be_bytes());
    } else {
        buf.push(0xcf);
        buf.extend_from_slice(&v.to_be_bytes());
    }
}

/// The canonical decimal of a non-negative raw value at 8 decimals (as `Display` prints
/// it), written into `out` without allocating; returns the written slice.
fn decimal(raw: i128, out: &mut [u8; 56]) -> &[u8] {
    let scale = Qty::SCALE as u128;
    let v = raw.unsigned_abs();
    // Orders' quantities and prices fit in u64, where division by a constant is a
    // multiply; only larger values pay for u128 division (a library call).
    let (int, mut frac) = match u64::try_from(v) {
        Ok(v) => (u128::from(v / Qty::SCALE as u64), v % Qty::SCALE as u64),
        Err(_) => (v / scale, (v % scale) as u64),
    };
    // integer digits, right to left, into the front half
    let mut end = 40;
    let mut i = end;
    macro_rules! digits {
        ($x:expr) => {{
            let mut x = $x;
            loop {
                i -= 1;
                out[i] = b'0' + (x % 10) as u8;
                x /= 10;
                if x == 0 {
                    break;
                }
            }
        }};
    }
    match u64::try_from(int) {
        Ok(x) => digits!(x),
        Err(_) => digits!(int),
    }
    if frac != 0 {
        let mut places = 8;
        while frac % 10 == 0 {
            frac /= 10;
            places -= 1;
        }
        out[end] = b'.';
        for k in (0..places).rev() {
            out[end + 1 + k] = b'0' + (frac % 10) as u8;
            frac /= 10;
        }
        end += 1 + places;
    }
    &out[i..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixed::Price;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn decimals_print_as_display_does(raw in 0i128..(10i128.pow(12) * Qty::SCALE)) {
            let mut digits = [0u8; 56];
            let text = std::str::from_utf8(decimal(raw, &mut digits)).unwrap().to_owned();
            prop_assert_eq!(text, Price(raw).to_string());
        }
    }

    #[test]
    fn headers_use_the_smallest_form() {
        let mut b = Vec::new();
        uint(&mut b, 127);
        uint(&mut b, 128);
        uint(&mut b, 65_536);
        assert_eq!(b, [0x7f, 0xcc, 0x80, 0xce, 0, 1, 0, 0]);
        let mut b = Vec::new();
        array_header(&mut b, 16);
        str_bytes(&mut b, &[b'x'; 32]);
        assert_eq!(&b[..5], &[0xdc, 0, 16, 0xd9, 32]);
    }
}

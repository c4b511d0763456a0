//! The venue protocol's `orders` frame (pyservice/PROTOCOL.md), written straight from a
//! batch of records: a 4-byte big-endian length, then the msgpack array
//! `["orders", seq, [[client_order_id, follower, provider, symbol, side, type, qty,
//! price|nil, reduce_only, leverage], ...]]`.
//!
//! msgspec decodes it into `pyservice.protocol.NewOrders`; the encoding is the one msgspec
//! itself writes (smallest int and str headers), so frames compare byte for byte.

use crate::engine::Engine;
use crate::fixed::Qty;
use crate::model::{CopyOrder, OrderType, Record};

/// Append the frame of `records`' orders to `buf`; returns how many orders it holds (no
/// frame is written for none). `leverage` gives each order's leverage field (a
/// reduce-only order carries 1: it releases whatever margin the lots it closes hold).
pub fn encode_orders(
    engine: &Engine,
    seq: u64,
    records: &[Record],
    leverage: impl Fn(&CopyOrder) -> u32,
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
    buf.reserve(n * 112);
    array_header(buf, 3);
    str_bytes(buf, b"orders");
    uint(buf, seq);
    array_header(buf, n);
    let mut digits = [0u8; 56];
    for r in records {
        let Record::Order(o) = r else { continue };
        array_header(buf, 10);
        str_bytes(buf, &o.client_order_id.to_bytes());
        str_bytes(buf, engine.follower_name(o.follower).as_bytes());
        str_bytes(buf, engine.provider_name(o.provider).as_bytes());
        str_bytes(buf, engine.symbol_name(o.symbol).as_bytes());
        str_bytes(buf, o.side.as_str().as_bytes());
        str_bytes(buf, o.order_type.as_str().as_bytes());
        str_bytes(buf, decimal(o.qty.0, &mut digits));
        match o.order_type {
            OrderType::LimitIoc => str_bytes(buf, decimal(o.limit.0, &mut digits)),
            OrderType::Market => buf.push(0xc0),
        }
        buf.push(if o.reduce_only { 0xc3 } else { 0xc2 });
        uint(buf, u64::from(leverage(o)));
    }
    let len = (buf.len() - start - 4) as u32;
    buf[start..start + 4].copy_from_slice(&len.to_be_bytes());
    n
}

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

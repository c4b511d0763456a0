//! Deterministic client order ids, 22 characters of [0-9A-Za-z]:
//! `base62(xxh3_128(source key) XOR xxh3_128(follower id))`.
//!
//! The same input always yields the same id, so an order re-emitted after a crash is
//! recognised by the venue as a duplicate instead of being placed twice. The source key
//! (provider, execution or input seq, leg) is hashed once per fan-out and each follower's
//! hash once at follow time, so a copy order costs one XOR, not one hash. Keys join their
//! parts with `\x1f`, which identifiers cannot contain, so distinct keys never collide by
//! concatenation; two distinct (source, follower) pairs collide with probability 2^-128.

use std::fmt;

use xxhash_rust::xxh3::xxh3_128;

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// 62^22 > 2^128, so every u128 fits in 22 digits.
pub const COID_LEN: usize = 22;
const SEP: u8 = 0x1f;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientOrderId(pub u128);

impl ClientOrderId {
    /// The id of `follower_hash`'s order from the source `parts` (joined by `\x1f`).
    pub fn new(parts: &[&[u8]], follower_hash: u128) -> Self {
        Self(source_hash(parts) ^ follower_hash)
    }

    /// The 22 ASCII bytes of the id.
    pub fn to_bytes(self) -> [u8; COID_LEN] {
        let mut out = [b'0'; COID_LEN];
        let mut v = self.0;
        for slot in out.iter_mut().rev() {
            *slot = ALPHABET[(v % 62) as usize];
            v /= 62;
        }
        out
    }
}

impl ClientOrderId {
    /// Parse the 22-character form back; `None` for anything this module never wrote.
    pub fn parse(text: &str) -> Option<Self> {
        if text.len() != COID_LEN {
            return None;
        }
        let mut v: u128 = 0;
        for b in text.bytes() {
            let digit = ALPHABET.iter().position(|&a| a == b)? as u128;
            v = v.checked_mul(62)?.checked_add(digit)?;
        }
        Some(Self(v))
    }
}

impl fmt::Display for ClientOrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = self.to_bytes();
        // The alphabet is ASCII, so this never fails.
        f.write_str(std::str::from_utf8(&bytes).map_err(|_| fmt::Error)?)
    }
}

/// The hash of a source key: its parts joined by the unit separator.
pub fn source_hash(parts: &[&[u8]]) -> u128 {
    let mut key = Vec::with_capacity(parts.iter().map(|p| p.len() + 1).sum());
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            key.push(SEP);
        }
        key.extend_from_slice(part);
    }
    xxh3_128(&key)
}

/// The per-follower half of every id, computed once when the follower follows.
pub fn follower_hash(follower: &str) -> u128 {
    xxh3_128(follower.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_22_base62_characters_and_deterministic() {
        let alice = follower_hash("alice");
        let a = ClientOrderId::new(&[b"f", b"p1", b"e1", b"open"], alice);
        assert_eq!(
            a,
            ClientOrderId::new(&[b"f", b"p1", b"e1", b"open"], follower_hash("alice"))
        );
        let text = a.to_string();
        assert_eq!(text.len(), COID_LEN);
        assert!(text.bytes().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(
            a,
            ClientOrderId::new(&[b"f", b"p1", b"e1", b"close"], alice)
        );
        assert_ne!(
            a,
            ClientOrderId::new(&[b"f", b"p1", b"e1", b"open"], follower_hash("bob"))
        );
        assert_eq!(ClientOrderId(0).to_string(), "0".repeat(22));
        assert_eq!(
            ClientOrderId(u128::MAX).to_string(),
            "7n42DGM5Tflk9n8mt7Fhc7"
        );
    }

    #[test]
    fn matches_the_reference_definition() {
        // xxh3_128(b"f\x1fp1\x1fe1\x1fopen") ^ xxh3_128(b"alice"), as the Python reference computes it.
        let expect = xxh3_128(b"f\x1fp1\x1fe1\x1fopen") ^ xxh3_128(b"alice");
        assert_eq!(
            ClientOrderId::new(&[b"f", b"p1", b"e1", b"open"], follower_hash("alice")).0,
            expect
        );
    }
}

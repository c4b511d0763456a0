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
        // Two u128 divisions by 62^10 split the value into 2 + 10 + 10 digits; the digits
        // of each part then come from u64 arithmetic (a u128 division is a slow library
        // call, and this runs once per copy order).
        let mut out = [b'0'; COID_LEN];
        let hi = self.0 / CHUNK as u128;
        let low = (self.0 - hi * CHUNK as u128) as u64;
        let top = (hi / CHUNK as u128) as u64;
        let mid = (hi - u128::from(top) * CHUNK as u128) as u64;
        for (part, slots) in [(top, 0..2), (mid, 2..12), (low, 12..22)] {
            let mut v = part;
            for slot in out[slots].iter_mut().rev() {
                *slot = ALPHABET[(v % 62) as usize];
                v /= 62;
            }
        }
        out
    }
}

/// 62^10, the largest power of 62 below 2^64.
const CHUNK: u64 = 839_299_365_868_340_224;

/// Each ASCII byte's base-62 digit, or 0xff.
const DIGIT: [u8; 256] = {
    let mut t = [0xff; 256];
    let mut i = 0;
    while i < 62 {
        t[ALPHABET[i] as usize] = i as u8;
        i += 1;
    }
    t
};

impl ClientOrderId {
    /// Parse the 22-character form back; `None` for anything this module never wrote.
    pub fn parse(text: &str) -> Option<Self> {
        let b = text.as_bytes();
        if b.len() != COID_LEN {
            return None;
        }
        let chunk = |digits: &[u8]| -> Option<u64> {
            digits
                .iter()
                .try_fold(0u64, |v, &c| match DIGIT[c as usize] {
                    0xff => None,
                    d => Some(v * 62 + u64::from(d)),
                })
        };
        let (top, mid, low) = (chunk(&b[..2])?, chunk(&b[2..12])?, chunk(&b[12..])?);
        let hi = u128::from(top) * u128::from(CHUNK) + u128::from(mid);
        hi.checked_mul(u128::from(CHUNK))?
            .checked_add(u128::from(low))
            .map(Self)
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

    proptest::proptest! {
        #[test]
        fn text_round_trips(v: u128) {
            let id = ClientOrderId(v);
            let text = id.to_string();
            // the plain definition: base 62, most significant digit first
            let mut expect = Vec::new();
            let mut x = v;
            for _ in 0..COID_LEN {
                expect.push(ALPHABET[(x % 62) as usize]);
                x /= 62;
            }
            expect.reverse();
            proptest::prop_assert_eq!(text.as_bytes(), &expect[..]);
            proptest::prop_assert_eq!(ClientOrderId::parse(&text), Some(id));
        }
    }

    #[test]
    fn parse_refuses_what_it_never_wrote() {
        assert_eq!(
            ClientOrderId::parse("7n42DGM5Tflk9n8mt7Fhc7"),
            Some(ClientOrderId(u128::MAX))
        );
        for bad in [
            "7n42DGM5Tflk9n8mt7Fhc8",
            "zzzzzzzzzzzzzzzzzzzzzz",
            "7n42DGM5Tflk9n8mt7Fhc",
            "7n42DGM5Tflk9n8mt7Fh-7",
            "",
        ] {
            assert_eq!(ClientOrderId::parse(bad), None, "{bad}");
        }
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

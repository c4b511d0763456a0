//! Exact integer helpers over raw fixed-point values.
//!
//! The sizing fast path needs three things: an `i128` multiply whose overflow check is
//! cheap (`mul`), full 256-bit products for comparisons that pass `i128` (`umul_wide`),
//! and a division by a divisor fixed across a fan-out (`Divisor`). Outside its bounds,
//! sizing runs on 256-bit fractions (`Frac`, `floor_div_256`).

use std::cmp::Ordering;

pub use ethnum::I256;

/// A non-negative-denominator fraction `num / den` (den > 0), kept unreduced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frac {
    pub num: I256,
    pub den: I256,
}

impl Frac {
    pub fn new(num: I256, den: I256) -> Self {
        debug_assert!(den > I256::ZERO);
        Self { num, den }
    }

    /// Exact comparison by cross-multiplication; `None` if a product leaves 256 bits.
    pub fn cmp_exact(&self, other: &Self) -> Option<Ordering> {
        let a = self.num.checked_mul(other.den)?;
        let b = other.num.checked_mul(self.den)?;
        Some(a.cmp(&b))
    }

    /// `floor(self / unit)` for a positive integer `unit`, as i128.
    pub fn floor_units(&self, unit: i128) -> Option<i128> {
        let den = self.den.checked_mul(I256::from(unit))?;
        floor_div_256(self.num, den)
    }
}

/// `a × b` if it fits i128. LLVM's overflow-checked i128 multiply is a slow generic
/// routine; when the operands' magnitudes leave room (leading zeros summing to ≥ 130, so
/// the product is below 2^126) a plain multiply is exact, which is the common case.
#[inline(always)]
pub fn mul(a: i128, b: i128) -> Option<i128> {
    if small_product(a, b) {
        Some(a.wrapping_mul(b))
    } else {
        a.checked_mul(b)
    }
}

/// Whether `|a × b| < 2^126` is certain from the operands' bit lengths.
#[inline(always)]
fn small_product(a: i128, b: i128) -> bool {
    a.unsigned_abs().leading_zeros() + b.unsigned_abs().leading_zeros() >= 130
}

/// The full 256-bit product of two u128 as (high, low).
#[inline(always)]
pub fn umul_wide(a: u128, b: u128) -> (u128, u128) {
    const LO: u128 = u64::MAX as u128;
    let (a1, a0) = (a >> 64, a & LO);
    let (b1, b0) = (b >> 64, b & LO);
    let p00 = a0 * b0;
    let p01 = a0 * b1;
    let p10 = a1 * b0;
    let p11 = a1 * b1;
    // middle = p01 + p10 + carry of p00, as a 129-bit value split in two.
    let (mid, carry1) = p01.overflowing_add(p10);
    let (mid, carry2) = mid.overflowing_add(p00 >> 64);
    let lo = (mid << 64) | (p00 & LO);
    let hi = p11 + (mid >> 64) + (((carry1 as u128) + (carry2 as u128)) << 64);
    (hi, lo)
}

/// Division by a divisor that stays fixed across a fan-out, by a precomputed reciprocal
/// (Granlund & Montgomery's round-up method, as in libdivide): one 128×128-bit multiply
/// instead of a `u128` division, which costs several times more once the divisor passes
/// 64 bits.
#[derive(Debug, Clone, Copy)]
pub struct Divisor {
    d: u128,
    magic: u128,
    /// ceil(log2 d) − 1
    shift: u32,
}

impl Divisor {
    /// `None` for zero.
    pub fn new(d: u128) -> Option<Self> {
        if d == 0 {
            return None;
        }
        if d == 1 {
            return Some(Self {
                d,
                magic: 0,
                shift: 0,
            });
        }
        let l = 128 - (d - 1).leading_zeros(); // ceil(log2 d), 1..=128
                                               // magic = floor(2^128 × (2^l − d) / d) + 1, which fits in 128 bits
        let two_l_minus_d = if l == 128 {
            u128::MAX - d + 1
        } else {
            (1u128 << l) - d
        };
        let wide = ethnum::U256::from_words(two_l_minus_d, 0) / ethnum::U256::from(d);
        Some(Self {
            d,
            magic: wide.as_u128() + 1,
            shift: l - 1,
        })
    }

    pub fn get(&self) -> u128 {
        self.d
    }

    /// `floor(n / d)`.
    #[inline(always)]
    pub fn div(&self, n: u128) -> u128 {
        if self.d == 1 {
            return n;
        }
        let (hi, _) = umul_wide(self.magic, n);
        (hi + ((n - hi) >> 1)) >> self.shift
    }
}

/// Floor division of 256-bit values (den > 0), with an i128 fast path; `None` if the
/// quotient does not fit i128.
pub fn floor_div_256(num: I256, den: I256) -> Option<i128> {
    if let (Ok(n), Ok(d)) = (i128::try_from(num), i128::try_from(den)) {
        return Some(n.div_euclid(d));
    }
    let q = num / den;
    let q = if (num % den) < I256::ZERO {
        q - I256::ONE
    } else {
        q
    };
    i128::try_from(q).ok()
}

/// `floor(a × b / d)` for d > 0.
pub fn mul_div_floor(a: i128, b: i128, d: i128) -> Option<i128> {
    match mul(a, b) {
        Some(p) => Some(p.div_euclid(d)),
        None => floor_div_256(I256::from(a) * I256::from(b), I256::from(d)),
    }
}

/// `ceil(a × b / d)` for d > 0.
pub fn mul_div_ceil(a: i128, b: i128, d: i128) -> Option<i128> {
    mul_div_floor(a.checked_neg()?, b, d)?.checked_neg()
}

/// The 256-bit product of some raw values.
pub fn prod(values: &[i128]) -> Option<I256> {
    values
        .iter()
        .try_fold(I256::ONE, |acc, &v| acc.checked_mul(I256::from(v)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floors_toward_negative_infinity() {
        assert_eq!(mul_div_floor(7, 1, 2), Some(3));
        assert_eq!(mul_div_floor(-7, 1, 2), Some(-4));
        assert_eq!(mul_div_ceil(7, 1, 2), Some(4));
        assert_eq!(mul_div_ceil(-7, 1, 2), Some(-3));
        let big = i128::MAX / 3;
        assert_eq!(mul_div_floor(big, 6, 3), Some(big * 2));
        assert_eq!(mul_div_floor(-big, 6, 4), Some((-big * 3).div_euclid(2)));
    }

    #[test]
    fn compares_beyond_i128() {
        let a = Frac::new(prod(&[i128::MAX, 3]).unwrap(), I256::from(3));
        let b = Frac::new(I256::from(i128::MAX), I256::ONE);
        assert_eq!(a.cmp_exact(&b), Some(Ordering::Equal));
        let c = Frac::new(prod(&[i128::MAX, 3]).unwrap() + I256::ONE, I256::from(3));
        assert_eq!(c.cmp_exact(&b), Some(Ordering::Greater));
    }

    #[test]
    fn divisor_edges() {
        for d in [
            1u128,
            2,
            3,
            7,
            10,
            1 << 64,
            (1 << 64) + 1,
            u128::MAX / 3,
            1 << 127,
            (1 << 127) + 1,
            u128::MAX - 1,
            u128::MAX,
        ] {
            let div = Divisor::new(d).unwrap();
            for n in [
                0u128,
                1,
                d - 1,
                d,
                d.saturating_add(1),
                u128::MAX,
                u128::MAX - 1,
                u128::MAX / 2,
                12345678901234567890,
            ] {
                assert_eq!(div.div(n), n / d, "{n} / {d}");
            }
        }
        assert!(Divisor::new(0).is_none());
    }

    proptest::proptest! {
        #[test]
        fn divisor_matches_division(n in proptest::num::u128::ANY, d in 1u128.., sn in 0u32..128, sd in 0u32..128) {
            // shifts spread both over every magnitude
            let (n, d) = (n >> sn, (d >> sd).max(1));
            proptest::prop_assert_eq!(Divisor::new(d).map(|x| x.div(n)), Some(n / d));
        }

        #[test]
        fn fast_mul_is_checked_mul(a in proptest::num::i128::ANY, b in proptest::num::i128::ANY, sa in 0u32..128, sb in 0u32..128) {
            // shift to cover every magnitude, not only huge random ones
            let (a, b) = (a >> sa, b >> sb);
            proptest::prop_assert_eq!(mul(a, b), a.checked_mul(b));
        }

        #[test]
        fn umul_wide_is_the_256_bit_product(a in proptest::num::u128::ANY, b in proptest::num::u128::ANY) {
            let w = ethnum::U256::from(a) * ethnum::U256::from(b);
            proptest::prop_assert_eq!(umul_wide(a, b), (*w.high(), *w.low()));
        }

        #[test]
        fn mul_div_floor_matches_wide_reference(a in proptest::num::i128::ANY, b in -1_000_000i128..1_000_000, d in 1i128..1_000_000_000) {
            let wide = I256::from(a) * I256::from(b);
            let expect = {
                let q = wide / I256::from(d);
                let q = if wide % I256::from(d) < I256::ZERO { q - I256::ONE } else { q };
                i128::try_from(q).ok()
            };
            proptest::prop_assert_eq!(mul_div_floor(a, b, d), expect);
        }
    }
}

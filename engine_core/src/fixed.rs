//! Fixed-point numbers: a raw `i128` and a compile-time number of decimals.
//!
//! Quantities and prices carry 8 decimals, money carries 16, so `qty × price` is exactly a
//! money value. Values are built only from decimal strings (never from floats) through
//! checked constructors, and print canonically (no exponent, no trailing zeros).

use std::fmt;

/// Decimals allowed in an input number (after dropping trailing fractional zeros).
pub const INPUT_DECIMALS: u32 = 8;
/// Input numbers must be below this in absolute value.
pub const INPUT_LIMIT: i128 = 1_000_000_000_000;

/// Why a decimal string was refused; the engine turns it into a field message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecimalError {
    Malformed,
    TooPrecise,
    TooLarge,
}

/// Parse `^-?[0-9]+(\.[0-9]+)?$` into a raw integer scaled by `10^INPUT_DECIMALS`.
pub fn parse_input(s: &str) -> Result<i128, DecimalError> {
    let bytes = s.as_bytes();
    let (neg, body) = match bytes.first() {
        Some(b'-') => (true, &bytes[1..]),
        _ => (false, bytes),
    };
    let (int_part, frac_part) = match body.iter().position(|&b| b == b'.') {
        Some(dot) => (&body[..dot], &body[dot + 1..]),
        None => (body, &body[body.len()..]),
    };
    let digits = |part: &[u8]| !part.is_empty() && part.iter().all(u8::is_ascii_digit);
    let has_dot = int_part.len() != body.len();
    if !digits(int_part) || (has_dot && !digits(frac_part)) {
        return Err(DecimalError::Malformed);
    }
    let frac = trim_trailing_zeros(frac_part);
    if frac.len() > INPUT_DECIMALS as usize {
        return Err(DecimalError::TooPrecise);
    }
    let int_digits = trim_leading_zeros(int_part);
    if int_digits.len() > 12 {
        return Err(DecimalError::TooLarge);
    }
    let mut raw: i128 = 0;
    for &d in int_digits {
        raw = raw * 10 + i128::from(d - b'0');
    }
    for i in 0..INPUT_DECIMALS as usize {
        raw = raw * 10 + frac.get(i).map_or(0, |&d| i128::from(d - b'0'));
    }
    Ok(if neg { -raw } else { raw })
}

fn trim_trailing_zeros(mut s: &[u8]) -> &[u8] {
    while let [rest @ .., b'0'] = s {
        s = rest;
    }
    s
}

fn trim_leading_zeros(mut s: &[u8]) -> &[u8] {
    while let [b'0', rest @ ..] = s {
        s = rest;
    }
    s
}

/// Canonical decimal text of `raw / 10^decimals`.
pub fn format_raw(raw: i128, decimals: u32, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let scale = 10u128.pow(decimals);
    let abs = raw.unsigned_abs();
    let (int, frac) = (abs / scale, abs % scale);
    if raw < 0 {
        f.write_str("-")?;
    }
    write!(f, "{int}")?;
    if frac != 0 {
        let text = format!("{frac:0width$}", width = decimals as usize);
        write!(f, ".{}", text.trim_end_matches('0'))?;
    }
    Ok(())
}

macro_rules! fixed_type {
    ($(#[$doc:meta])* $name:ident, $decimals:expr) => {
        $(#[$doc])*
        #[derive(serde::Serialize, serde::Deserialize, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        pub struct $name(pub i128);

        impl $name {
            pub const DECIMALS: u32 = $decimals;
            pub const SCALE: i128 = 10i128.pow($decimals);
            pub const ZERO: Self = Self(0);

            /// From an input decimal string (at most 8 decimals, below 10^12).
            pub fn parse(s: &str) -> Result<Self, DecimalError> {
                parse_input(s).map(|raw| Self(raw * 10i128.pow($decimals - INPUT_DECIMALS)))
            }

            /// From a whole number of units.
            pub const fn from_units(units: i64) -> Self {
                Self(units as i128 * Self::SCALE)
            }

            pub const fn raw(self) -> i128 {
                self.0
            }

            pub const fn is_positive(self) -> bool {
                self.0 > 0
            }

            pub fn checked_add(self, other: Self) -> Option<Self> {
                self.0.checked_add(other.0).map(Self)
            }

            pub fn checked_sub(self, other: Self) -> Option<Self> {
                self.0.checked_sub(other.0).map(Self)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                format_raw(self.0, $decimals, f)
            }
        }
    };
}

fixed_type!(
    /// A quantity in base units, 8 decimals.
    Qty,
    8
);
fixed_type!(
    /// A price in quote units, 8 decimals.
    Price,
    8
);
fixed_type!(
    /// A plain decimal factor (percentages, multipliers), 8 decimals.
    Factor,
    8
);
fixed_type!(
    /// Money in quote units, 16 decimals: exactly `Qty × Price`.
    Money,
    16
);

impl Factor {
    /// 100, the raw denominator of a percentage.
    pub const HUNDRED: Factor = Factor(100 * Factor::SCALE);
}

impl Qty {
    /// The exact notional `self × price`, or `None` past the money range.
    pub fn notional(self, price: Price) -> Option<Money> {
        crate::exact::mul(self.0, price.0).map(Money)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_canonically() {
        for (text, canon) in [
            ("0", "0"),
            ("-0", "0"),
            ("0.5", "0.5"),
            ("250.000", "250"),
            ("-3.25", "-3.25"),
            ("00012.10000000000", "12.1"),
            ("0.00000001", "0.00000001"),
            ("999999999999.99999999", "999999999999.99999999"),
        ] {
            let q = Qty::parse(text).unwrap_or_else(|e| panic!("{text}: {e:?}"));
            assert_eq!(q.to_string(), canon, "{text}");
        }
        assert_eq!(
            Money::parse("1.5").map(|m| m.raw()),
            Ok(15_000_000_000_000_000)
        );
    }

    #[test]
    fn refuses_what_is_not_a_plain_decimal() {
        for bad in [
            "", "-", ".5", "5.", "1e5", "NaN", "inf", "+1", " 1", "1 ", "1_000", "1..2", "--1",
            "0x10", "١",
        ] {
            assert_eq!(Qty::parse(bad), Err(DecimalError::Malformed), "{bad:?}");
        }
        assert_eq!(Qty::parse("0.000000001"), Err(DecimalError::TooPrecise));
        assert_eq!(Qty::parse("1000000000000"), Err(DecimalError::TooLarge));
        assert_eq!(Qty::parse("-1000000000000.5"), Err(DecimalError::TooLarge));
        assert_eq!(
            Qty::parse("99999999999999999999999999999999999999999"),
            Err(DecimalError::TooLarge)
        );
    }

    proptest::proptest! {
        #[test]
        fn print_then_parse_is_identity(raw in -(INPUT_LIMIT * Qty::SCALE - 1)..(INPUT_LIMIT * Qty::SCALE)) {
            let q = Qty(raw);
            proptest::prop_assert_eq!(Qty::parse(&q.to_string()), Ok(q));
        }
    }
}

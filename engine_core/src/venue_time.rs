//! Venue time as text: RFC 3339 in UTC, `YYYY-MM-DDTHH:MM:SS[.ffffff]Z`, to and from
//! microseconds since the Unix epoch (docs/scenario-format.md, "Event time").
//!
//! Only that one form is read: a capital `T` and `Z`, no offset, 1 to 6 fraction digits,
//! years 0001-9999, a real date of the proleptic Gregorian calendar and no leap second
//! (the venue's clock has none), so every time has exactly one value and one canonical text.

const US_PER_SEC: i64 = 1_000_000;
const SECS_PER_DAY: i64 = 86_400;

/// The time a text names, µs since the epoch; None if it is not exactly that form.
pub fn parse(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    // `YYYY-MM-DDTHH:MM:SS` then `Z` or `.f{1,6}Z`
    if b.len() < 20 || b.len() > 27 || b.len() == 21 || b[b.len() - 1] != b'Z' {
        return None;
    }
    let punct = [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')];
    if punct.iter().any(|&(i, c)| b[i] != c) {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<i64> {
        b[from..to].iter().try_fold(0i64, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + i64::from(c - b'0'))
        })
    };
    let (year, month, day) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (hour, minute, second) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    let micros = match &b[19..b.len() - 1] {
        [] => 0,
        [b'.', digits @ ..] if !digits.is_empty() => {
            let n = num(20, b.len() - 1)?;
            n * 10i64.pow(6 - digits.len() as u32)
        }
        _ => return None,
    };
    let real = year >= 1
        && (1..=12).contains(&month)
        && day >= 1
        && day <= days_in_month(year, month)
        && hour < 24
        && minute < 60
        && second < 60;
    if !real {
        return None;
    }
    let secs =
        days_from_civil(year, month, day) * SECS_PER_DAY + hour * 3600 + minute * 60 + second;
    Some(secs * US_PER_SEC + micros)
}

/// The canonical text of a time: the fraction only when it is not zero, without trailing
/// zeros (`2026-01-02T03:04:05Z`, `...05.25Z`).
pub fn format(us: i64) -> String {
    let secs = us.div_euclid(US_PER_SEC);
    let micros = us.rem_euclid(US_PER_SEC);
    let (year, month, day) = civil_from_days(secs.div_euclid(SECS_PER_DAY));
    let s = secs.rem_euclid(SECS_PER_DAY);
    let mut text = format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        s / 3600,
        s / 60 % 60,
        s % 60
    );
    if micros != 0 {
        let fraction = format!("{micros:06}");
        text.push('.');
        text.push_str(fraction.trim_end_matches('0'));
    }
    text.push('Z');
    text
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`:
/// years start in March, so the leap day is the last day of its year).
pub(crate) fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12; // March = 0
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of `days_from_civil`.
pub(crate) fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = SECS_PER_DAY * US_PER_SEC;

    #[test]
    fn the_epoch_and_known_instants() {
        assert_eq!(parse("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse("1970-01-01T00:00:00.000001Z"), Some(1));
        assert_eq!(parse("1970-01-02T00:00:00Z"), Some(DAY));
        // 1_700_000_000 s is 2023-11-14T22:13:20Z
        assert_eq!(
            parse("2023-11-14T22:13:20Z"),
            Some(1_700_000_000 * US_PER_SEC)
        );
        assert_eq!(parse("1969-12-31T23:59:59.5Z"), Some(-500_000));
        assert_eq!(
            parse("0001-01-01T00:00:00Z"),
            Some(-62_135_596_800 * US_PER_SEC)
        );
        assert_eq!(
            parse("9999-12-31T23:59:59.999999Z"),
            Some(253_402_300_800 * US_PER_SEC - 1)
        );
    }

    #[test]
    fn fractions_of_one_to_six_digits() {
        assert_eq!(parse("1970-01-01T00:00:01.5Z"), Some(1_500_000));
        assert_eq!(parse("1970-01-01T00:00:01.50Z"), Some(1_500_000));
        assert_eq!(parse("1970-01-01T00:00:01.123456Z"), Some(1_123_456));
        assert_eq!(parse("1970-01-01T00:00:01.000000Z"), Some(1_000_000));
        assert_eq!(parse("1970-01-01T00:00:01.1234567Z"), None);
        assert_eq!(parse("1970-01-01T00:00:01.Z"), None);
    }

    #[test]
    fn leap_years_and_real_dates_only() {
        let feb29 = |y: i64| parse(&format!("{y:04}-02-29T00:00:00Z"));
        assert!(feb29(2024).is_some()); // divisible by 4
        assert!(feb29(2000).is_some()); // by 400
        assert!(feb29(2023).is_none());
        assert!(feb29(1900).is_none()); // by 100, not 400
        assert_eq!(
            parse("2024-03-01T00:00:00Z").unwrap() - parse("2024-02-28T00:00:00Z").unwrap(),
            2 * DAY
        );
        for bad in [
            "2026-04-31T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-00-10T00:00:00Z",
            "2026-01-00T00:00:00Z",
            "0000-01-01T00:00:00Z",
            "2026-01-01T24:00:00Z",
            "2026-01-01T12:60:00Z",
            "2016-12-31T23:59:60Z", // a real leap second, and still not a venue time
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn one_form_only() {
        for bad in [
            "2026-01-01T00:00:00z",
            "2026-01-01t00:00:00Z",
            "2026-01-01 00:00:00Z",
            "2026-01-01T00:00:00",
            "2026-01-01T00:00:00+00:00",
            "2026-01-01T00:00:00.5+01:00",
            "2026-01-01T00:00:00Z\n",
            " 2026-01-01T00:00:00Z",
            "2026-1-01T00:00:00Z",
            "+2026-01-01T00:00:00Z",
            "2026-01-01T00:00:0ZZ",
            "2026-01-01T00:00:00.-5Z",
            "２026-01-01T00:00:00Z",
            "",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn canonical_text_round_trips() {
        assert_eq!(format(0), "1970-01-01T00:00:00Z");
        assert_eq!(format(1), "1970-01-01T00:00:00.000001Z");
        assert_eq!(format(1_500_000), "1970-01-01T00:00:01.5Z");
        assert_eq!(format(-500_000), "1969-12-31T23:59:59.5Z");
        assert_eq!(
            format(parse("2024-02-29T23:59:59.120Z").unwrap()),
            "2024-02-29T23:59:59.12Z"
        );
        // every day of four centuries (leap rules included) survives the round trip
        let start = parse("1900-01-01T00:00:00Z").unwrap();
        for d in 0..(400 * 366) {
            let us = start + d * DAY + d * 1_234_567 % DAY;
            assert_eq!(parse(&format(us)), Some(us), "{}", format(us));
        }
    }
}

//! Profit-share settlement rules (docs/scenario-format.md "Settlement"): the schedule's
//! period boundaries on venue time, the labels of the periods they close, and what one
//! relationship is charged. Pure functions; the engine decides when to settle
//! (`engine::settle`).

use std::fmt;
use std::sync::Arc;

use crate::exact::mul_div_floor;
use crate::fixed::{Factor, Money};
use crate::model::{FollowerId, ProviderId};
use crate::venue_time::{civil_from_days, days_from_civil};

const DAY_US: i64 = 86_400_000_000;
/// One unit of the 8th decimal place, in raw money: amounts are floored to it.
const CENT8: i128 = Money::SCALE / 100_000_000;

/// When settlements run by themselves.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Schedule {
    /// Never by itself (only a `settle`); no settlement at unfollow either.
    #[default]
    None,
    /// At midnight UTC every Monday.
    Weekly,
    /// At midnight UTC on the 1st of every month.
    Monthly,
}

impl Schedule {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "none" => Schedule::None,
            "weekly" => Schedule::Weekly,
            "monthly" => Schedule::Monthly,
            _ => return None,
        })
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Schedule::None => "none",
            Schedule::Weekly => "weekly",
            Schedule::Monthly => "monthly",
        }
    }

    /// The first boundary strictly after `t` (µs since the epoch), None for `none`.
    pub fn boundary_after(self, t: i64) -> Option<i64> {
        let day = t.div_euclid(DAY_US);
        let next_day = match self {
            Schedule::None => return None,
            // 1970-01-01 was a Thursday: day d is a Monday when (d + 3) mod 7 = 0
            Schedule::Weekly => day - (day + 3).rem_euclid(7) + 7,
            Schedule::Monthly => {
                let (y, m, _) = civil_from_days(day);
                if m == 12 {
                    days_from_civil(y + 1, 1, 1)
                } else {
                    days_from_civil(y, m + 1, 1)
                }
            }
        };
        next_day.checked_mul(DAY_US)
    }

    /// The period that boundary `b` closes: the ISO week or the month of the day before.
    pub fn period_ending(self, b: i64) -> Period {
        let last_day = b.div_euclid(DAY_US) - 1;
        match self {
            Schedule::Weekly => {
                // an ISO week belongs to the year of its Thursday (the Sunday − 3 days)
                let thursday = last_day - 3;
                let (year, _, _) = civil_from_days(thursday);
                let week = (thursday - days_from_civil(year, 1, 1)) / 7 + 1;
                Period::Week { year, week }
            }
            Schedule::Monthly | Schedule::None => {
                let (year, month, _) = civil_from_days(last_day);
                Period::Month { year, month }
            }
        }
    }
}

/// What a settlement is labelled with (`Display` is the label).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Period {
    /// `2026-W48`
    Week { year: i64, week: i64 },
    /// `2026-11`
    Month { year: i64, month: i64 },
    /// `manual-<n>`: a `settle` event (its index) or an operator's request.
    Manual(u64),
    /// One relationship at its unfollow.
    Unfollow,
    /// An operator's label (live).
    Named(Arc<str>),
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Period::Week { year, week } => write!(f, "{year:04}-W{week:02}"),
            Period::Month { year, month } => write!(f, "{year:04}-{month:02}"),
            Period::Manual(n) => write!(f, "manual-{n}"),
            Period::Unfollow => f.write_str("unfollow"),
            Period::Named(s) => f.write_str(s),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettleStatus {
    /// All of `due` was taken (a due of 0 too).
    Charged,
    /// `due` was above free cash: nothing changed; a later settlement finds the profit again.
    Deferred,
    /// At unfollow, free cash covered only part of `due`; the rest is written off.
    Partial,
}

impl SettleStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            SettleStatus::Charged => "charged",
            SettleStatus::Deferred => "deferred",
            SettleStatus::Partial => "partial",
        }
    }
}

/// What one relationship owes and pays at a settlement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Charge {
    pub due: Money,
    pub charged: Money,
    pub provider_credit: Money,
    pub platform_credit: Money,
    pub written_off: Money,
    pub status: SettleStatus,
}

/// `amount × pct / 100` rounded down to 8 decimal places.
pub fn pct_floor8(amount: Money, pct: Factor) -> Option<Money> {
    let raw = mul_div_floor(amount.0, pct.0, Factor::HUNDRED.0)?;
    Some(Money(raw.div_euclid(CENT8) * CENT8))
}

/// The charge on `profit` (> 0) with `free` cash: periodic (`at_unfollow` false: all of
/// due or nothing) or at unfollow (as much of due as free cash covers).
pub fn charge(
    profit: Money,
    free: Money,
    share: Factor,
    fee: Factor,
    at_unfollow: bool,
) -> Option<Charge> {
    let due = pct_floor8(profit, share)?;
    let (charged, status) = if at_unfollow {
        let covered = Money(free.0.max(0).div_euclid(CENT8) * CENT8);
        if due <= covered {
            (due, SettleStatus::Charged)
        } else {
            (covered, SettleStatus::Partial)
        }
    } else if due <= free {
        (due, SettleStatus::Charged)
    } else {
        (Money::ZERO, SettleStatus::Deferred)
    };
    let platform_credit = pct_floor8(charged, fee)?;
    Some(Charge {
        due,
        charged,
        provider_credit: Money(charged.0 - platform_credit.0),
        platform_credit,
        written_off: match status {
            SettleStatus::Partial => Money(due.0 - charged.0),
            _ => Money::ZERO,
        },
        status,
    })
}

/// One relationship's settlement record (boxed in `Record::Settlement`: it is far
/// bigger than the other records, which a fan-out writes by the thousand).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settlement {
    pub period: Period,
    pub follower: FollowerId,
    pub provider: ProviderId,
    pub equity: Money,
    /// Before the settlement.
    pub high_watermark: Money,
    pub profit: Money,
    pub charge: Charge,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::venue_time::{format, parse};

    fn t(s: &str) -> i64 {
        parse(s).unwrap()
    }

    #[test]
    fn weekly_boundaries_are_mondays_and_close_iso_weeks() {
        let w = Schedule::Weekly;
        // 2026-11-25 is a Wednesday
        let b = w.boundary_after(t("2026-11-25T10:00:00Z")).unwrap();
        assert_eq!(format(b), "2026-11-30T00:00:00Z");
        assert_eq!(w.period_ending(b).to_string(), "2026-W48");
        // exactly at a boundary: the next one
        assert_eq!(format(w.boundary_after(b).unwrap()), "2026-12-07T00:00:00Z");
        // 2021-01-04 closes 2020-W53; 2026-01-05 closes 2026-W01 (Dec 29 - Jan 4)
        assert_eq!(
            w.period_ending(t("2021-01-04T00:00:00Z")).to_string(),
            "2020-W53"
        );
        assert_eq!(
            w.period_ending(t("2026-01-05T00:00:00Z")).to_string(),
            "2026-W01"
        );
        assert_eq!(format(w.boundary_after(0).unwrap()), "1970-01-05T00:00:00Z");
        assert_eq!(
            w.period_ending(w.boundary_after(0).unwrap()).to_string(),
            "1970-W01"
        );
    }

    #[test]
    fn monthly_boundaries_are_firsts_and_close_months() {
        let m = Schedule::Monthly;
        let b = m.boundary_after(t("2026-11-30T23:59:59.999999Z")).unwrap();
        assert_eq!(format(b), "2026-12-01T00:00:00Z");
        assert_eq!(m.period_ending(b).to_string(), "2026-11");
        let b = m.boundary_after(b).unwrap();
        assert_eq!(
            (format(b), m.period_ending(b).to_string()),
            ("2027-01-01T00:00:00Z".into(), "2026-12".into())
        );
        assert_eq!(Schedule::None.boundary_after(b), None);
    }

    #[test]
    fn charges_round_down_to_8_places() {
        let m = |s: &str| Money::parse(s).unwrap();
        let f = |s: &str| Factor::parse(s).unwrap();
        let c = charge(m("2000"), m("12000"), f("30"), f("10"), false).unwrap();
        assert_eq!(
            (
                c.due,
                c.charged,
                c.platform_credit,
                c.provider_credit,
                c.status
            ),
            (m("600"), m("600"), m("60"), m("540"), SettleStatus::Charged)
        );
        let c = charge(m("0.00000007"), m("1"), f("33.33333333"), f("33.3"), false).unwrap();
        assert_eq!((c.due, c.platform_credit), (m("0.00000002"), m("0")));
        let c = charge(
            m("1000"),
            Money(2_999_999_999_990_000_000),
            f("30"),
            f("50"),
            false,
        )
        .unwrap();
        assert_eq!((c.charged, c.status), (Money::ZERO, SettleStatus::Deferred));
        let c = charge(
            m("1000"),
            Money(1_001_234_567_890_000_000),
            f("30"),
            f("50"),
            true,
        )
        .unwrap();
        assert_eq!(
            (c.charged, c.written_off, c.platform_credit, c.status),
            (
                m("100.12345678"),
                m("199.87654322"),
                m("50.06172839"),
                SettleStatus::Partial
            )
        );
        let c = charge(m("1000"), m("-5"), f("30"), f("0"), true).unwrap();
        assert_eq!((c.charged, c.written_off), (Money::ZERO, m("300")));
    }
}

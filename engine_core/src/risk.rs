//! Risk rules beside sizing: the max-loss line, `max_open_trades` and the platform's
//! amount limits. Pure functions over plain values; the engine decides when to ask.

use crate::exact::mul_div_floor;
use crate::fixed::{Factor, Money, Price};
use crate::model::{CopySettings, Platform, Status, SymbolId};
use crate::portfolio::Portfolio;

/// The line of a relationship without max-loss: no equity is at or below it.
pub const NO_STOP: Money = Money(i128::MIN);

/// `floor(base × (1 − pct/100))`, the max-loss line as a raw money value.
pub fn stop_line(base: Money, max_loss_pct: Option<Factor>) -> Money {
    let hundred = Factor::HUNDRED.0;
    // No line past the money range: no equity could reach it there either.
    max_loss_pct
        .and_then(|pct| mul_div_floor(base.0, hundred - pct.0, hundred))
        .map_or(NO_STOP, Money)
}

/// An active or paused relationship at or below its max-loss line `stop_at`.
#[inline]
pub fn breaches(
    status: Status,
    portfolio: &Portfolio,
    stop_at: Money,
    marks: &[Option<Price>],
) -> bool {
    status != Status::Stopped
        && portfolio
            .equity(marks)
            .is_ok_and(|equity| equity <= stop_at)
}

/// Whether an opening copy into `symbol` would exceed `max_open_trades`: a symbol the
/// portfolio holds or is opening does not count as a new trade.
#[inline]
pub fn at_max_open_trades(
    settings: &CopySettings,
    portfolio: &Portfolio,
    symbol: SymbolId,
) -> bool {
    portfolio.is_new_symbol(symbol)
        && settings
            .max_open_trades
            .is_some_and(|max| portfolio.open_or_opening() >= max as usize)
}

/// The platform's amount limits for a relationship whose base becomes `new_base` while
/// its follower's total (now `total_before`) grows by `added`; returns the new total.
pub fn check_allocation(
    platform: &Platform,
    follower: &str,
    total_before: Money,
    new_base: Money,
    added: Money,
) -> Result<Money, String> {
    if let Some(min) = platform.min_allocation.filter(|min| new_base < *min) {
        return Err(format!(
            "allocation {new_base} is below min_allocation {min}"
        ));
    }
    if let Some(max) = platform.max_allocation.filter(|max| new_base > *max) {
        return Err(format!(
            "allocation {new_base} is above max_allocation {max}"
        ));
    }
    let total = total_before
        .checked_add(added)
        .ok_or("arithmetic overflow")?;
    if let Some(max) = platform.max_total_per_follower.filter(|max| total > *max) {
        return Err(format!(
            "total allocation {total} of '{follower}' is above max_total_per_follower {max}"
        ));
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn money(s: &str) -> Money {
        Money::parse(s).unwrap()
    }

    #[test]
    fn stop_line_floors_and_is_absent_without_max_loss() {
        let pct = Factor::parse("33.3").ok();
        // 1000.01 × 0.667 = 667.00667 → floored at the money scale
        assert_eq!(stop_line(money("1000.01"), pct), money("667.00667"));
        assert_eq!(stop_line(money("1000"), None), NO_STOP);
    }

    #[test]
    fn allocation_limits_in_order_and_new_total() {
        let platform = Platform {
            min_allocation: Some(money("10")),
            max_allocation: Some(money("100")),
            max_total_per_follower: Some(money("150")),
            ..Platform::default()
        };
        let check = |before, base, added| {
            check_allocation(&platform, "ann", money(before), money(base), money(added))
        };
        assert_eq!(check("50", "50", "50"), Ok(money("100")));
        assert_eq!(
            check("0", "5", "5").unwrap_err(),
            "allocation 5 is below min_allocation 10"
        );
        assert_eq!(
            check("0", "101", "101").unwrap_err(),
            "allocation 101 is above max_allocation 100"
        );
        assert_eq!(
            check("100", "60", "60").unwrap_err(),
            "total allocation 160 of 'ann' is above max_total_per_follower 150"
        );
    }
}

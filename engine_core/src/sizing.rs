//! Copy sizing and limit prices: pure functions of settings, balances and one execution.
//!
//! All candidate sizes are exact fractions of raw quantity units (1e-8); the result is
//! floored to the instrument's step, never rounded up.

use crate::exact::{
    floor_div_256, mul, mul_cmp, mul_div_ceil, mul_div_floor, prod, Divisor, Frac, I256,
};
use crate::fixed::{Factor, Money, Price, Qty};
use crate::model::{Cap, CopySettings, Instrument, Mode, Side, SkipReason, SymbolId};

/// A percentage's raw value over this is the fraction.
const PCT_DEN: i128 = Factor::HUNDRED.0;

/// The opening part of one provider execution, shared by every follower's sizing.
#[derive(Debug, Clone, Copy)]
pub struct OpenLeg<'a> {
    pub symbol: SymbolId,
    pub consts: LegConsts,
    pub instrument: &'a Instrument,
    pub side: Side,
    /// The provider quantity that opens or adds (after any close).
    pub qty: Qty,
    pub price: Price,
    pub provider_equity: Money,
    pub leverage: u32,
}

impl<'a> OpenLeg<'a> {
    pub fn new(
        symbol: SymbolId,
        instrument: &'a Instrument,
        side: Side,
        qty: Qty,
        price: Price,
        provider_equity: Money,
        leverage: u32,
    ) -> Self {
        let consts = LegConsts::new(qty, price, provider_equity, leverage, instrument.step);
        Self {
            symbol,
            consts,
            instrument,
            side,
            qty,
            price,
            provider_equity,
            leverage,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sized {
    Copy { qty: Qty, clamped: Option<Cap> },
    Skip(SkipReason),
}

/// Size one follower's opening copy from its equity and free cash (FORMAT.md, open leg).
///
/// Every factor usually fits `i128`, so the sizing runs on `i128` fractions with exact
/// 256-bit cross products; if any factor would overflow, the same rules run in 256 bits.
pub fn size_open(s: &CopySettings, equity: Money, free: Money, leg: &OpenLeg<'_>) -> Sized {
    size_open_128(s, equity, free, leg)
        .or_else(|| size_open_256(s, equity, free, leg))
        .unwrap_or(Sized::Skip(SkipReason::Overflow))
}

/// Products of one execution's values that every follower's sizing reuses; `None` where
/// a product passes i128 (then every follower takes the 256-bit path).
#[derive(Debug, Clone, Copy)]
pub struct LegConsts {
    /// Q × P: the provider's notional, raw.
    qp: Option<i128>,
    /// L × Ep
    l_ep: Option<i128>,
    /// 100 × P, with the percentage scale
    pct_p: Option<i128>,
    /// Ep × 1e8 (the multiplier's scale)
    ep_m: Option<i128>,
    /// Each target quantity is `num / den` with one of these four `den`s; flooring it to
    /// the step divides by `den × step`, the same for every follower.
    per_price_step: Option<Divisor>,
    per_pct_price_step: Option<Divisor>,
    per_equity_step: Option<Divisor>,
    per_equity_m_step: Option<Divisor>,
}

impl LegConsts {
    pub fn new(qty: Qty, price: Price, provider_equity: Money, leverage: u32, step: Qty) -> Self {
        let l = i128::from(leverage);
        let pct_p = mul(PCT_DEN, price.0);
        let ep_m = mul(provider_equity.0, Factor::SCALE);
        let per_step = |den: Option<i128>| {
            let d = mul(den?, step.0)?;
            Divisor::new(u128::try_from(d).ok()?)
        };
        Self {
            qp: mul(qty.0, price.0),
            l_ep: mul(l, provider_equity.0),
            pct_p,
            ep_m,
            per_price_step: per_step(Some(price.0)),
            per_pct_price_step: per_step(pct_p),
            per_equity_step: per_step(Some(provider_equity.0)),
            per_equity_m_step: per_step(ep_m),
        }
    }
}

/// The i128 path. The caps share the factor `L / P`, and for proportional and multiplier
/// sizing the follower's equity cancels against the per-trade cap, so most comparisons
/// reduce to small products; only the one that decides the result is made.
fn size_open_128(s: &CopySettings, equity: Money, free: Money, leg: &OpenLeg<'_>) -> Option<Sized> {
    let (e, f, l) = (equity.0, free.0, i128::from(leg.leverage));
    let (q, ep, pct) = (leg.qty.0, leg.provider_equity.0, s.max_per_trade_pct.0);
    let c = &leg.consts;
    if f <= 0 {
        return Some(Sized::Skip(SkipReason::InsufficientBalance));
    }
    if e <= 0 {
        // Unreachable while equity ≥ free cash (it is: equity − free cash = spot value +
        // margin held + open perp profit ≥ 0), but the cancellations below divide by E.
        return Some(Sized::Skip(SkipReason::BelowMin));
    }
    // per-trade cap E·pct·L/(100·P) vs free-cash cap F·L/P  ⟺  E·pct vs F·100
    let per_trade_binds = mul_cmp(e, pct, f, PCT_DEN).is_le();
    // Is the binding cap below the wanted quantity? Each arm is `cap < wanted` with the
    // common factors (L/P, and E where both sides have it) cancelled.
    let clamped = match (s.mode, per_trade_binds) {
        // wanted A·L/P
        (Mode::FixedAmount, true) => mul_cmp(e, pct, s.fixed_amount?.0, PCT_DEN).is_lt(),
        (Mode::FixedAmount, false) => f < s.fixed_amount?.0,
        // wanted Q·E/Ep
        (Mode::Proportional, true) => mul_cmp(mul(pct, l)?, ep, q, c.pct_p?).is_lt(),
        (Mode::Proportional, false) => mul_cmp(f, c.l_ep?, e, c.qp?).is_lt(),
        // wanted Q·m·E/(Ep·1e8)
        (Mode::Multiplier, true) => {
            mul_cmp(mul(pct, l)?, c.ep_m?, mul(q, s.multiplier.0)?, c.pct_p?).is_lt()
        }
        (Mode::Multiplier, false) => mul_cmp(
            f,
            mul(c.l_ep?, Factor::SCALE)?,
            e,
            mul(c.qp?, s.multiplier.0)?,
        )
        .is_lt(),
    };
    // The quantity as `num / den`; its steps are `num / (den × step)`.
    let (num, per_step) = match (clamped, per_trade_binds, s.mode) {
        (true, true, _) => (mul(mul(e, pct)?, l)?, c.per_pct_price_step),
        (true, false, _) => (mul(f, l)?, c.per_price_step),
        (false, _, Mode::FixedAmount) => (mul(s.fixed_amount?.0, l)?, c.per_price_step),
        (false, _, Mode::Proportional) => (mul(q, e)?, c.per_equity_step),
        (false, _, Mode::Multiplier) => (mul(mul(q, s.multiplier.0)?, e)?, c.per_equity_m_step),
    };
    // Every factor of `num` is positive here (E ≥ F > 0), so the division is unsigned.
    let steps = i128::try_from(per_step?.div(u128::try_from(num).ok()?)).ok()?;
    let cap = if per_trade_binds {
        Cap::MaxPerTrade
    } else {
        Cap::FreeCash
    };
    finish(steps, clamped.then_some(cap), leg)
}

fn size_open_256(s: &CopySettings, equity: Money, free: Money, leg: &OpenLeg<'_>) -> Option<Sized> {
    let (e, f, p, l) = (equity.0, free.0, leg.price.0, i128::from(leg.leverage));
    let wanted = match s.mode {
        // fixed_amount × L / P
        Mode::FixedAmount => Frac::new(prod(&[s.fixed_amount?.0, l])?, I256::from(p)),
        // Q × E / Ep
        Mode::Proportional => Frac::new(prod(&[leg.qty.0, e])?, I256::from(leg.provider_equity.0)),
        // Q × E × m / (Ep × 1e8)
        Mode::Multiplier => Frac::new(
            prod(&[leg.qty.0, e, s.multiplier.0])?,
            prod(&[leg.provider_equity.0, Factor::SCALE])?,
        ),
    };
    if f <= 0 {
        return Some(Sized::Skip(SkipReason::InsufficientBalance));
    }
    // E × pct / 100 × L / P   and   F × L / P
    let per_trade = Frac::new(prod(&[e, s.max_per_trade_pct.0, l])?, prod(&[PCT_DEN, p])?);
    let free_cash = Frac::new(prod(&[f, l])?, I256::from(p));
    let (cap, cap_name) = if per_trade.cmp_exact(&free_cash)?.is_le() {
        (per_trade, Cap::MaxPerTrade)
    } else {
        (free_cash, Cap::FreeCash)
    };
    let (target, clamped) = if cap.cmp_exact(&wanted)?.is_lt() {
        (cap, Some(cap_name))
    } else {
        (wanted, None)
    };
    finish(target.floor_units(leg.instrument.step.0)?, clamped, leg)
}

/// Steps → quantity on the grid, then the minimums.
fn finish(steps: i128, clamped: Option<Cap>, leg: &OpenLeg<'_>) -> Option<Sized> {
    let inst = leg.instrument;
    let qty = Qty(mul(steps, inst.step.0)?);
    let below_min =
        qty.0 <= 0 || qty < inst.min_qty || qty.notional(leg.price)? < inst.min_notional;
    Some(if below_min {
        Sized::Skip(SkipReason::BelowMin)
    } else {
        Sized::Copy { qty, clamped }
    })
}

/// The IOC limit for an opening copy: buy at `price × (1 + slip)` floored to tick, sell at
/// `price × (1 − slip)` ceiled to tick, so the limit never passes the slippage cap.
pub fn limit_price(side: Side, price: Price, slippage_pct: Factor, tick: Price) -> Option<Price> {
    let den = PCT_DEN.checked_mul(tick.0)?;
    let ticks = match side {
        Side::Buy => mul_div_floor(price.0, PCT_DEN + slippage_pct.0, den)?,
        Side::Sell => mul_div_ceil(price.0, PCT_DEN - slippage_pct.0, den)?,
    };
    ticks.checked_mul(tick.0).map(Price)
}

/// A follower's share of a provider's partial close: `|fpos| × close / |pos|` floored to step.
pub fn close_share(follower_qty: Qty, close: Qty, provider_qty: Qty, step: Qty) -> Option<Qty> {
    let steps = match provider_qty.0.checked_mul(step.0) {
        Some(den) => mul_div_floor(follower_qty.0, close.0, den)?,
        None => floor_div_256(
            prod(&[follower_qty.0, close.0])?,
            prod(&[provider_qty.0, step.0])?,
        )?,
    };
    steps.checked_mul(step.0).map(Qty)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Kind;
    use proptest::prelude::*;

    proptest! {
        /// The i128 fast path and the 256-bit path are the same rules: wherever both give
        /// an answer (the wide path can still overflow where the fast one short-cuts), they
        /// give the same one. Magnitudes span realistic to extreme, so both paths run.
        #[test]
        fn fast_and_wide_paths_agree(
            mode in 0..3u8,
            (e, f) in (magnitude(28), magnitude(28)),
            (q, p, ep) in (positive(20), positive(20), positive(28)),
            lev in 1u32..=125,
            (m, pct, fixed, step) in (positive(14), 1i128..=10i128.pow(10), positive(28), positive(12)),
        ) {
            let i = Instrument { symbol: "X".into(), kind: Kind::Perp, tick: Price(1), step: Qty(step), min_qty: Qty(0), min_notional: Money(0) };
            let leg = OpenLeg::new(0, &i, Side::Buy, Qty(q), Price(p), Money(ep), lev);
            let mut s = settings([Mode::Proportional, Mode::FixedAmount, Mode::Multiplier][mode as usize]);
            s.fixed_amount = Some(Money(fixed));
            s.multiplier = Factor(m);
            s.max_per_trade_pct = Factor(pct);
            if let (Some(fast), Some(wide)) = (size_open_128(&s, Money(e), Money(f), &leg), size_open_256(&s, Money(e), Money(f), &leg)) {
                prop_assert_eq!(fast, wide);
            }
        }
    }

    /// A positive value of up to `digits` digits, its length drawn first so that small
    /// values are as likely as huge ones.
    fn positive(digits: u32) -> impl Strategy<Value = i128> {
        (1..=digits).prop_flat_map(|d| 1i128..10i128.pow(d))
    }

    fn magnitude(digits: u32) -> impl Strategy<Value = i128> {
        (positive(digits), any::<bool>()).prop_map(|(v, neg)| if neg { -v } else { v })
    }

    fn inst(step: &str, min_qty: &str, min_notional: &str) -> Instrument {
        Instrument {
            symbol: "BTCUSDT".into(),
            kind: Kind::Spot,
            tick: Price::parse("0.01").unwrap(),
            step: Qty::parse(step).unwrap(),
            min_qty: Qty::parse(min_qty).unwrap(),
            min_notional: Money::parse(min_notional).unwrap(),
        }
    }

    fn settings(mode: Mode) -> CopySettings {
        CopySettings {
            mode,
            fixed_amount: None,
            multiplier: Factor::from_units(1),
            max_open_trades: None,
            max_per_trade_pct: Factor::from_units(100),
            max_loss_pct: None,
            slippage_pct: Factor::parse("0.5").unwrap(),
            stop_copy_on_close: true,
        }
    }

    fn m(s: &str) -> Money {
        Money::parse(s).unwrap()
    }

    #[test]
    fn binance_example_follower_spends_half_like_the_provider() {
        // Provider equity 1,000 spends 500 (5 @ 100); a follower with 500 spends 250.
        let i = inst("0.001", "0", "0");
        let leg = OpenLeg::new(
            0,
            &i,
            Side::Buy,
            Qty::from_units(5),
            Price::from_units(100),
            m("1000"),
            1,
        );
        let got = size_open(&settings(Mode::Proportional), m("500"), m("500"), &leg);
        assert_eq!(
            got,
            Sized::Copy {
                qty: Qty::parse("2.5").unwrap(),
                clamped: None
            }
        );
    }

    #[test]
    fn caps_bind_and_max_per_trade_wins_a_tie() {
        let i = inst("0.001", "0", "0");
        let leg = OpenLeg::new(
            0,
            &i,
            Side::Buy,
            Qty::from_units(10),
            Price::from_units(100),
            m("1000"),
            1,
        );
        // wants 1000 of notional with equity 1000: capped at 40 % → 4.
        let mut s = settings(Mode::Proportional);
        s.max_per_trade_pct = Factor::from_units(40);
        assert_eq!(
            size_open(&s, m("1000"), m("1000"), &leg),
            Sized::Copy {
                qty: Qty::from_units(4),
                clamped: Some(Cap::MaxPerTrade)
            }
        );
        // free cash 300 binds harder.
        assert_eq!(
            size_open(&s, m("1000"), m("300"), &leg),
            Sized::Copy {
                qty: Qty::from_units(3),
                clamped: Some(Cap::FreeCash)
            }
        );
        // a tie between the caps names max_per_trade.
        assert_eq!(
            size_open(&s, m("1000"), m("400"), &leg),
            Sized::Copy {
                qty: Qty::from_units(4),
                clamped: Some(Cap::MaxPerTrade)
            }
        );
        // wanted exactly at the cap is not clamped.
        s.max_per_trade_pct = Factor::from_units(100);
        assert_eq!(
            size_open(&s, m("1000"), m("1000"), &leg),
            Sized::Copy {
                qty: Qty::from_units(10),
                clamped: None
            }
        );
        assert_eq!(
            size_open(&s, m("1000"), m("0"), &leg),
            Sized::Skip(SkipReason::InsufficientBalance)
        );
    }

    #[test]
    fn rounds_down_to_step_and_skips_below_minimums() {
        let i = inst("0.1", "0.5", "0");
        let leg = OpenLeg::new(
            0,
            &i,
            Side::Buy,
            Qty::from_units(1),
            Price::from_units(3),
            m("3"),
            1,
        );
        // fixed 2 / price 3 = 0.666… → 0.6, never 0.7
        let mut s = settings(Mode::FixedAmount);
        s.fixed_amount = Some(m("2"));
        assert_eq!(
            size_open(&s, m("100"), m("100"), &leg),
            Sized::Copy {
                qty: Qty::parse("0.6").unwrap(),
                clamped: None
            }
        );
        s.fixed_amount = Some(m("1.4"));
        assert_eq!(
            size_open(&s, m("100"), m("100"), &leg),
            Sized::Skip(SkipReason::BelowMin)
        );
        let i2 = inst("0.1", "0", "2");
        let leg2 = OpenLeg {
            instrument: &i2,
            ..leg
        };
        s.fixed_amount = Some(m("1.99"));
        assert_eq!(
            size_open(&s, m("100"), m("100"), &leg2),
            Sized::Skip(SkipReason::BelowMin)
        );
    }

    #[test]
    fn limits_stay_inside_the_slippage_cap() {
        let tick = Price::parse("0.5").unwrap();
        let half = Factor::parse("0.5").unwrap();
        // 101 × 1.005 = 101.505 → 101.5 ; 101 × 0.995 = 100.495 → 100.5
        assert_eq!(
            limit_price(Side::Buy, Price::from_units(101), half, tick),
            Some(Price::parse("101.5").unwrap())
        );
        assert_eq!(
            limit_price(Side::Sell, Price::from_units(101), half, tick),
            Some(Price::parse("100.5").unwrap())
        );
        assert_eq!(
            limit_price(Side::Buy, Price::from_units(101), Factor::ZERO, tick),
            Some(Price::from_units(101))
        );
    }

    #[test]
    fn mexc_partial_close_is_proportional() {
        // Provider 1,000 closes 200; follower 100 closes 20.
        let step = Qty::parse("0.001").unwrap();
        assert_eq!(
            close_share(
                Qty::from_units(100),
                Qty::from_units(200),
                Qty::from_units(1000),
                step
            ),
            Some(Qty::from_units(20))
        );
        assert_eq!(
            close_share(
                Qty::parse("0.004").unwrap(),
                Qty::from_units(1),
                Qty::from_units(3),
                step
            ),
            Some(Qty::parse("0.001").unwrap())
        );
    }
}

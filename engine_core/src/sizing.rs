//! Copy sizing and limit prices: pure functions of settings, balances and one execution.
//!
//! All candidate sizes are exact fractions of raw quantity units (1e-8); the result is
//! floored to the instrument's step, never rounded up.

use crate::exact::{
    floor_div_256, mul, mul_div_ceil, mul_div_floor, prod, umul_wide, Divisor, Frac, I256,
};
use crate::fixed::{Factor, Money, Price, Qty};
use crate::model::{Cap, CopySettings, Instrument, Mode, Side, SkipReason, SymbolId};

/// A percentage's raw value over this is the fraction.
const PCT_DEN: i128 = Factor::HUNDRED.0;

/// The opening part of one provider execution, shared by every follower's sizing.
#[derive(Debug, Clone, Copy)]
pub struct OpenLeg<'a> {
    pub symbol: SymbolId,
    pub consts: Option<LegConsts>,
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

/// An opening copy's size, or why there is none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenSize {
    Copy { qty: Qty, clamped: Option<Cap> },
    Skip(SkipReason),
}

/// Size one follower's opening copy from its equity and free cash (docs/scenario-format.md, open leg).
///
/// Inside the bounds of `size_open_fast` (ordinary accounts and executions) the sizing is
/// plain `i128` arithmetic; outside them the same rules run in 256 bits.
pub fn size_open(s: &CopySettings, equity: Money, free: Money, leg: &OpenLeg<'_>) -> OpenSize {
    size_open_fast(s, equity, free, leg)
        .or_else(|| size_open_256(s, equity, free, leg))
        .unwrap_or(OpenSize::Skip(SkipReason::Overflow))
}

/// Bounds (in bits of the raw value) under which the fast path's arithmetic provably fits
/// `i128`; the bit count of every product is noted where it is formed. Anything larger
/// (a follower above ~10^8 in equity, a huge multiplier, an extreme execution) takes the
/// 256-bit path, which implements the same rules without bounds.
const EQUITY_BITS: u32 = 80; // equity, free cash, fixed amount
const MULTIPLIER_BITS: u32 = 36; // up to ~687×
const QTY_BITS: u32 = 40; // the execution's quantity
const PRICE_BITS: u32 = 50; // price, and the instrument's step
const PROVIDER_EQUITY_BITS: u32 = 85;
// max_per_trade_pct ≤ 100 (validated) is below 2^34 raw, leverage ≤ 125 below 2^7.

/// One execution's values and the products every follower's sizing reuses, present only
/// when the execution is within the fast path's bounds.
#[derive(Debug, Clone, Copy)]
pub struct LegConsts {
    q: i128,
    p: i128,
    ep: i128,
    l: i128,
    step: i128,
    /// Q·P < 2^90
    qp: i128,
    /// L·Ep < 2^92
    l_ep: i128,
    /// L·Ep·1e8 < 2^119
    l_ep_m: i128,
    /// 100·P at the percentage scale < 2^84
    pct_p: i128,
    /// Ep·1e8 < 2^112
    ep_m: i128,
    /// A target quantity is `num / den` with one of four `den`s; flooring it to the step
    /// divides by `den × step`, the same for every follower.
    per_price_step: Divisor,
    per_pct_price_step: Divisor,
    per_equity_step: Divisor,
    per_equity_m_step: Divisor,
}

impl LegConsts {
    pub fn new(
        qty: Qty,
        price: Price,
        provider_equity: Money,
        leverage: u32,
        step: Qty,
    ) -> Option<Self> {
        let fits = |v: i128, bits: u32| v > 0 && v < 1 << bits;
        let (q, p, ep, st) = (qty.0, price.0, provider_equity.0, step.0);
        if !(fits(q, QTY_BITS)
            && fits(p, PRICE_BITS)
            && fits(ep, PROVIDER_EQUITY_BITS)
            && fits(st, PRICE_BITS))
        {
            return None;
        }
        let l = i128::from(leverage);
        let (pct_p, ep_m) = (PCT_DEN * p, ep * Factor::SCALE);
        let per_step = |den: i128| Divisor::new(u128::try_from(mul(den, st)?).ok()?);
        Some(Self {
            q,
            p,
            ep,
            l,
            step: st,
            qp: q * p,
            l_ep: l * ep,
            l_ep_m: l * ep * Factor::SCALE,
            pct_p,
            ep_m,
            per_price_step: per_step(p)?,
            per_pct_price_step: per_step(pct_p)?,
            per_equity_step: per_step(ep)?,
            per_equity_m_step: per_step(ep_m)?,
        })
    }
}

/// `a·b < c·d` for non-negative values, exactly (products formed in 256 bits).
#[inline(always)]
fn wide_lt(a: i128, b: i128, c: i128, d: i128) -> bool {
    umul_wide(a as u128, b as u128) < umul_wide(c as u128, d as u128)
}

/// The fast path: plain `i128` arithmetic inside the bounds above. The caps share the
/// factor `L / P`, and for proportional and multiplier sizing the follower's equity
/// cancels against the per-trade cap, so each comparison is of small products and only
/// the one that decides the result is made.
fn size_open_fast(
    s: &CopySettings,
    equity: Money,
    free: Money,
    leg: &OpenLeg<'_>,
) -> Option<OpenSize> {
    let (e, f) = (equity.0, free.0);
    if f <= 0 {
        return Some(OpenSize::Skip(SkipReason::InsufficientBalance));
    }
    let c = leg.consts.as_ref()?;
    let (m, pct, l, q) = (s.multiplier.0, s.max_per_trade_pct.0, c.l, c.q);
    // E ≥ F > 0 (equity − free cash = spot value + margin held + open perp profit ≥ 0).
    if e < f || e >= 1 << EQUITY_BITS || m >= 1 << MULTIPLIER_BITS {
        return None;
    }
    let a = match (s.mode, s.fixed_amount) {
        (Mode::FixedAmount, Some(a)) if a.0 >= 1 << EQUITY_BITS => return None,
        (_, a) => a.map_or(0, |a| a.0),
    };
    // per-trade cap E·pct·L/(100·P) vs free-cash cap F·L/P ⟺ E·pct vs F·100 (< 2^114)
    let per_trade_binds = e * pct <= f * PCT_DEN;
    // Is the binding cap below the wanted quantity? Each arm is `cap < wanted` with the
    // common factors (L/P, and E where both sides have it) cancelled.
    let clamped = match (s.mode, per_trade_binds) {
        // wanted A·L/P
        (Mode::FixedAmount, true) => e * pct < a * PCT_DEN, // < 2^114
        (Mode::FixedAmount, false) => f < a,
        // wanted Q·E/Ep
        (Mode::Proportional, true) => pct * l * c.ep < q * c.pct_p, // < 2^126, < 2^124
        (Mode::Proportional, false) => wide_lt(f, c.l_ep, e, c.qp),
        // wanted Q·m·E/(Ep·1e8)
        (Mode::Multiplier, true) => wide_lt(pct * l, c.ep_m, q * m, c.pct_p),
        (Mode::Multiplier, false) => wide_lt(f, c.l_ep_m, e, c.qp * m), // Q·P·m < 2^126
    };
    // The quantity as `num / den`; its steps are `num / (den × step)`.
    let (num, per_step) = match (clamped, per_trade_binds, s.mode) {
        (true, true, _) => (e * pct * l, &c.per_pct_price_step), // < 2^121
        (true, false, _) => (f * l, &c.per_price_step),          // < 2^87
        (false, _, Mode::FixedAmount) => (a * l, &c.per_price_step), // < 2^87
        (false, _, Mode::Proportional) => (q * e, &c.per_equity_step), // < 2^120
        (false, _, Mode::Multiplier) => (mul(q * m, e)?, &c.per_equity_m_step), // may not fit
    };
    // num ≥ 0, so the unsigned quotient is the floor; it is at most num < 2^127.
    let qty = Qty(per_step.div(num as u128) as i128 * c.step);
    // The quantity never passes the free-cash cap F·L/P, so its notional is ≤ F·L < 2^87.
    let inst = leg.instrument;
    let below_min = qty.0 <= 0 || qty < inst.min_qty || Money(qty.0 * c.p) < inst.min_notional;
    let cap = if per_trade_binds {
        Cap::MaxPerTrade
    } else {
        Cap::FreeCash
    };
    Some(if below_min {
        OpenSize::Skip(SkipReason::BelowMin)
    } else {
        OpenSize::Copy {
            qty,
            clamped: clamped.then_some(cap),
        }
    })
}

fn size_open_256(
    s: &CopySettings,
    equity: Money,
    free: Money,
    leg: &OpenLeg<'_>,
) -> Option<OpenSize> {
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
        return Some(OpenSize::Skip(SkipReason::InsufficientBalance));
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
fn finish(steps: i128, clamped: Option<Cap>, leg: &OpenLeg<'_>) -> Option<OpenSize> {
    let inst = leg.instrument;
    let qty = Qty(mul(steps, inst.step.0)?);
    let below_min =
        qty.0 <= 0 || qty < inst.min_qty || qty.notional(leg.price)? < inst.min_notional;
    Some(if below_min {
        OpenSize::Skip(SkipReason::BelowMin)
    } else {
        OpenSize::Copy { qty, clamped }
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
            let leg = OpenLeg::new(SymbolId::new(0), &i, Side::Buy, Qty(q), Price(p), Money(ep), lev);
            let mut s = settings([Mode::Proportional, Mode::FixedAmount, Mode::Multiplier][mode as usize]);
            s.fixed_amount = Some(Money(fixed));
            s.multiplier = Factor(m);
            s.max_per_trade_pct = Factor(pct);
            if let (Some(fast), Some(wide)) = (size_open_fast(&s, Money(e), Money(f), &leg), size_open_256(&s, Money(e), Money(f), &leg)) {
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
            SymbolId::new(0),
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
            OpenSize::Copy {
                qty: Qty::parse("2.5").unwrap(),
                clamped: None
            }
        );
    }

    #[test]
    fn caps_bind_and_max_per_trade_wins_a_tie() {
        let i = inst("0.001", "0", "0");
        let leg = OpenLeg::new(
            SymbolId::new(0),
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
            OpenSize::Copy {
                qty: Qty::from_units(4),
                clamped: Some(Cap::MaxPerTrade)
            }
        );
        // free cash 300 binds harder.
        assert_eq!(
            size_open(&s, m("1000"), m("300"), &leg),
            OpenSize::Copy {
                qty: Qty::from_units(3),
                clamped: Some(Cap::FreeCash)
            }
        );
        // a tie between the caps names max_per_trade.
        assert_eq!(
            size_open(&s, m("1000"), m("400"), &leg),
            OpenSize::Copy {
                qty: Qty::from_units(4),
                clamped: Some(Cap::MaxPerTrade)
            }
        );
        // wanted exactly at the cap is not clamped.
        s.max_per_trade_pct = Factor::from_units(100);
        assert_eq!(
            size_open(&s, m("1000"), m("1000"), &leg),
            OpenSize::Copy {
                qty: Qty::from_units(10),
                clamped: None
            }
        );
        assert_eq!(
            size_open(&s, m("1000"), m("0"), &leg),
            OpenSize::Skip(SkipReason::InsufficientBalance)
        );
    }

    #[test]
    fn rounds_down_to_step_and_skips_below_minimums() {
        let i = inst("0.1", "0.5", "0");
        let leg = OpenLeg::new(
            SymbolId::new(0),
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
            OpenSize::Copy {
                qty: Qty::parse("0.6").unwrap(),
                clamped: None
            }
        );
        s.fixed_amount = Some(m("1.4"));
        assert_eq!(
            size_open(&s, m("100"), m("100"), &leg),
            OpenSize::Skip(SkipReason::BelowMin)
        );
        let i2 = inst("0.1", "0", "2");
        let leg2 = OpenLeg {
            instrument: &i2,
            ..leg
        };
        s.fixed_amount = Some(m("1.99"));
        assert_eq!(
            size_open(&s, m("100"), m("100"), &leg2),
            OpenSize::Skip(SkipReason::BelowMin)
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

//! Plain domain types: instruments, sides, copy settings, and the outcome records.

use crate::coid::ClientOrderId;
use crate::fixed::{Factor, Money, Price, Qty, INPUT_LIMIT};
use crate::settlement::{Schedule, Settlement};

/// An index into one of the engine's tables, typed so that ids of different tables do
/// not mix: a `u32` at run time (`repr(transparent)`), and in snapshots (a newtype
/// serializes as its integer).
macro_rules! table_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            serde::Serialize, serde::Deserialize, Debug, Clone, Copy, PartialEq, Eq, PartialOrd,
            Ord, Hash,
        )]
        #[serde(transparent)]
        #[repr(transparent)]
        pub struct $name(u32);

        impl $name {
            /// The id of row `i` of its table.
            #[inline]
            pub const fn new(i: u32) -> Self {
                Self(i)
            }

            /// The id of the row a table of `len` rows appends next.
            #[inline]
            pub const fn next(len: usize) -> Self {
                Self(len as u32)
            }

            /// Its row in the table.
            #[inline]
            pub const fn index(self) -> usize {
                self.0 as usize
            }
        }
    };
}

table_id!(
    /// An instrument, by definition order.
    SymbolId
);
table_id!(
    /// A provider, in the order of the books file.
    ProviderId
);
table_id!(
    /// A follower, by first follow.
    FollowerId
);
table_id!(
    /// A relationship in the engine's slab; slab order is the global follow order.
    RelId
);

#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Spot,
    Perp,
}

#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Buy,
    Sell,
}

impl Side {
    pub const fn as_str(self) -> &'static str {
        match self {
            Side::Buy => "buy",
            Side::Sell => "sell",
        }
    }

    pub const fn opposite(self) -> Side {
        match self {
            Side::Buy => Side::Sell,
            Side::Sell => Side::Buy,
        }
    }

    /// +1 for buy, −1 for sell.
    pub const fn sign(self) -> i128 {
        match self {
            Side::Buy => 1,
            Side::Sell => -1,
        }
    }
}

#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Instrument {
    pub symbol: String,
    pub kind: Kind,
    pub tick: Price,
    pub step: Qty,
    pub min_qty: Qty,
    pub min_notional: Money,
}

impl Instrument {
    /// The most of `q` one order can carry in live mode: the largest step multiple below
    /// the input limit, since the venue's fill report of it must parse as an input.
    pub fn reportable(&self, q: Qty) -> Qty {
        let max = (INPUT_LIMIT * Qty::SCALE - 1) / self.step.0 * self.step.0;
        Qty(q.0.min(max))
    }

    pub fn on_step(&self, q: Qty) -> bool {
        q.0 % self.step.0 == 0
    }

    pub fn on_tick(&self, p: Price) -> bool {
        p.0 % self.tick.0 == 0
    }
}

/// Platform amount limits (absent = no limit) and the settlement terms.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone)]
pub struct Platform {
    pub min_allocation: Option<Money>,
    pub max_allocation: Option<Money>,
    pub max_total_per_follower: Option<Money>,
    /// The platform's share of each settlement's charge, in [0, 100] (the rate in force;
    /// a change waits in `engine::Settling` for the next boundary).
    pub platform_fee_pct: Factor,
    /// The highest `profit_share_pct` a provider may have, in (0, 100].
    pub max_profit_share_pct: Factor,
    pub settlement: Schedule,
}

impl Default for Platform {
    fn default() -> Self {
        Self {
            min_allocation: None,
            max_allocation: None,
            max_total_per_follower: None,
            platform_fee_pct: Factor::ZERO,
            max_profit_share_pct: Factor::from_units(30),
            settlement: Schedule::None,
        }
    }
}

#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Proportional,
    FixedAmount,
    Multiplier,
}

/// A relationship's copy settings, validated.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone)]
pub struct CopySettings {
    pub mode: Mode,
    pub fixed_amount: Option<Money>,
    pub multiplier: Factor,
    pub max_open_trades: Option<u32>,
    pub max_per_trade_pct: Factor,
    pub max_loss_pct: Option<Factor>,
    pub slippage_pct: Factor,
    pub stop_copy_on_close: bool,
}

#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Active,
    /// Not copied (no fan-out reaches it); positions kept, max-loss still applies.
    Paused,
    Stopped,
}

impl Status {
    pub const fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderType {
    LimitIoc,
    Market,
}

impl CopyOrder {
    /// A reduce-only market order closing `qty` (a provider's reduction, a stop, an unfollow).
    pub fn close(
        follower: FollowerId,
        provider: ProviderId,
        symbol: SymbolId,
        side: Side,
        qty: Qty,
        id: ClientOrderId,
    ) -> Self {
        Self {
            follower,
            provider,
            symbol,
            side,
            order_type: OrderType::Market,
            qty,
            limit: Price::ZERO,
            reduce_only: true,
            clamped: None,
            client_order_id: id,
        }
    }

    /// The limit price, `None` for a market order.
    pub fn limit_price(&self) -> Option<Price> {
        (self.order_type == OrderType::LimitIoc).then_some(self.limit)
    }
}

impl OrderType {
    pub const fn as_str(self) -> &'static str {
        match self {
            OrderType::LimitIoc => "limit_ioc",
            OrderType::Market => "market",
        }
    }
}

/// How the venue answered a copy order it did not fill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    InsufficientFunds,
    Expired,
    ReduceOnly,
    /// The venue already has the order: it stays working (its report is in the log).
    Duplicate,
    Invalid,
}

impl RejectReason {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "insufficient_funds" => Self::InsufficientFunds,
            "expired" => Self::Expired,
            "reduce_only" => Self::ReduceOnly,
            "duplicate" => Self::Duplicate,
            "invalid" => Self::Invalid,
            _ => return None,
        })
    }
}

/// The cap that bound an opening copy's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cap {
    MaxPerTrade,
    FreeCash,
}

impl Cap {
    pub const fn as_str(self) -> &'static str {
        match self {
            Cap::MaxPerTrade => "max_per_trade",
            Cap::FreeCash => "free_cash",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    MaxOpenTrades,
    InsufficientBalance,
    BelowMin,
    BelowStep,
    /// The copy's arithmetic left the engine's fixed-point range (see docs/scenario-format.md).
    Overflow,
}

impl SkipReason {
    pub const fn as_str(self) -> &'static str {
        match self {
            SkipReason::MaxOpenTrades => "max_open_trades",
            SkipReason::InsufficientBalance => "insufficient_balance",
            SkipReason::BelowMin => "below_min",
            SkipReason::BelowStep => "below_step",
            SkipReason::Overflow => "overflow",
        }
    }
}

/// One copy order; names are ids into the engine's tables, so a batch holds no strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopyOrder {
    pub follower: FollowerId,
    pub provider: ProviderId,
    pub symbol: SymbolId,
    pub side: Side,
    pub order_type: OrderType,
    pub qty: Qty,
    /// The limit price; zero for market orders (a limit is always positive). Kept as a
    /// bare price so a batch entry stays 64 bytes: fan-outs write thousands of them.
    pub limit: Price,
    pub reduce_only: bool,
    pub clamped: Option<Cap>,
    pub client_order_id: ClientOrderId,
}

/// An outcome of one input event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Order(CopyOrder),
    Skip {
        follower: FollowerId,
        provider: ProviderId,
        reason: SkipReason,
    },
    Stop {
        follower: FollowerId,
        provider: ProviderId,
    },
    Error(String),
    /// One relationship settled (boxed: 8 bytes here, not 200).
    Settlement(Box<Settlement>),
}

/// Whether a live opening order of `q` at `limit` can be reported back: the venue's fill
/// report carries both, and they must parse as inputs (below 10^12).
pub fn is_reportable(q: Qty, limit: Price) -> bool {
    q.0 < INPUT_LIMIT * Qty::SCALE && limit.0 < INPUT_LIMIT * Price::SCALE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_ids_are_their_integer_in_memory_and_in_snapshots() {
        assert_eq!(std::mem::size_of::<RelId>(), 4);
        assert_eq!(std::mem::size_of::<Option<SymbolId>>(), 8);
        let id = RelId::new(0x0102_0304);
        assert_eq!(
            bincode::serialize(&id).unwrap(),
            bincode::serialize(&0x0102_0304u32).unwrap()
        );
        let back: RelId = bincode::deserialize(&bincode::serialize(&7u32).unwrap()).unwrap();
        assert_eq!((back, back.index()), (RelId::new(7), 7));
        assert_eq!(FollowerId::next(3), FollowerId::new(3));
    }
}

"""The API's request and response models. Every money value is a decimal string (exact,
canonical: no exponent, no trailing zeros); ratios (ROI, drawdown, win rate) are
decimal strings too, rounded half-even to 8 places; only Sharpe is a JSON number."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

DISCLAIMER = "Past performance does not guarantee future results; copy trading can lose money."


class Base(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=False):
    pass


class ErrorBody(Base):
    code: str
    message: str


class Error(Base):
    error: ErrorBody


class Health(Base):
    status: str
    #: the venue time the statistics are as of (null before the first input)
    statistics_as_of: str | None


class Point(Base):
    time: str
    equity: str


class Card(Base):
    """A provider on the leaderboard, with the figures of the period asked for."""

    provider: str
    display_name: str
    avatar_url: str | None
    as_of: str
    period: str
    roi: str
    pnl: str
    win_rate: str | None
    max_drawdown: str
    sharpe: float | None
    trades: int
    closed_trades: int
    #: fewer than 10 closed trades
    new: bool
    followers: int
    aum: str
    copiers_pnl: str
    open_trades: int
    #: of the open trades at the latest marks; not in the ROI
    unrealized_pnl: str
    profit_share_pct: str
    #: the share from the next period boundary (differs after a change until then)
    next_profit_share_pct: str
    risk_level: str | None
    risk_class: int | None
    strategy: str | None
    #: the period's equity curve, at most 48 points evenly spaced by index
    sparkline: list[Point]


class Leaderboard(Base):
    disclaimer: str
    items: list[Card]
    next_cursor: str | None


class PeriodFigures(Base):
    trades: int
    wins: int
    losses: int
    win_rate: str | None
    pnl: str
    roi: str
    best_trade: str | None
    worst_trade: str | None
    max_drawdown: str
    volatility: str | None
    sharpe: float | None


class Statistics(Base):
    as_of: str
    max_leverage: int | None
    periods: dict[str, PeriodFigures]


class ProviderDetail(Base):
    disclaimer: str
    card: Card
    bio: str
    statistics: Statistics


class Curve(Base):
    disclaimer: str
    provider: str
    period: str
    as_of: str
    points: list[Point]


class OpenTrade(Base):
    symbol: str
    side: str
    kind: str
    leverage: int
    qty: str
    entry_price: str
    mark: str | None
    unrealized_pnl: str | None
    opened_at: str


class OpenTrades(Base):
    disclaimer: str
    provider: str
    trades: list[OpenTrade]


# -- control changes -------------------------------------------------------------------


class ChangeAnswer(Base):
    """A control change the engine applied (`applied`, or `already_settled`), or one it
    has not applied yet (`pending`: poll `poll`)."""

    change: int
    status: Literal["applied", "already_settled", "pending"]
    after_seq: int | None
    poll: str


class Settings(Base):
    mode: Literal["proportional", "fixed_amount", "multiplier"] | None = None
    fixed_amount: str | None = None
    multiplier: str | None = None
    max_open_trades: int | None = None
    max_per_trade_pct: str | None = None
    max_loss_pct: str | None = None
    slippage_pct: str | None = None
    stop_copy_on_close: bool | None = None


class Follow(Settings, kw_only=True):
    allocation: str


class Amount(Base):
    amount: str


# -- follower --------------------------------------------------------------------------


class Position(Base):
    symbol: str
    qty: str


class Relationship(Base):
    provider: str
    status: str
    #: the engine snapshot these figures are from
    as_of_seq: int
    cash: str
    equity: str | None
    reserved: str
    base: str | None
    pnl: str | None
    high_watermark: str | None
    fees_paid: str | None
    positions: list[Position]


class Relationships(Base):
    follower: str
    relationships: list[Relationship]


class Settlement(Base):
    seq: int
    period: str
    follower: str
    provider: str
    equity: str
    high_watermark: str
    profit: str
    due: str
    charged: str
    provider_credit: str
    platform_credit: str
    written_off: str
    status: str


class Outcomes(Base):
    charged: int
    deferred: int
    partial: int


class Total(Base):
    provider: str | None
    outcomes: Outcomes
    due: str
    charged: str
    provider_credit: str
    platform_credit: str
    written_off: str
    deferred_due: str


class Settlements(Base):
    settlements: list[Settlement]
    provider_totals: list[Total]
    platform_total: Total


class Notification(Base):
    seq: int
    kind: str
    at: str
    body: dict[str, Any]


class Notifications(Base):
    recipient: str
    notifications: list[Notification]


# -- provider --------------------------------------------------------------------------


class Profile(Base):
    provider: str
    display_name: str
    avatar_url: str | None
    bio: str
    profit_share_pct: str
    next_profit_share_pct: str


class ProfileUpdate(Base):
    display_name: str | None = None
    avatar_url: str | None = None
    bio: str | None = None


class ProfitShare(Base):
    profit_share_pct: str


class Earnings(Base):
    provider: str
    #: the sum of the provider credits of every settlement
    earned: str
    total: Total


# -- operator --------------------------------------------------------------------------


class Platform(Base):
    platform_fee_pct: str | None = None
    settlement: Literal["weekly", "monthly", "none"] | None = None
    #: at once; refused below a provider's share in force or waiting
    max_profit_share_pct: str | None = None


class Settle(Base):
    period: str | None = None


class LedgerCheck(Base):
    ok: bool
    transactions: int
    statements: int
    relationships: int
    difference: str | None


class TokenRequest(Base):
    role: Literal["follower", "provider", "operator"]
    subject: str | None = None
    days: int = 90
    label: str = ""


class TokenCreated(Base):
    id: int
    #: shown once; only its SHA-256 is kept
    token: str
    role: str
    subject: str | None


class TokenInfo(Base):
    id: int
    role: str
    subject: str | None
    label: str
    created_at: str
    expires_at: str
    revoked_at: str | None
    valid: bool


class Tokens(Base):
    tokens: list[TokenInfo]

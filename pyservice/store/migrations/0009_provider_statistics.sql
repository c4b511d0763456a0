-- Provider statistics on venue time (issue #14; the definitions are
-- pyservice/statistics/figures.py, the plain-Python spec pyservice/statistics_reference.py).
-- Written by the projector, in the transaction that moves `projection_state`, except the
-- rows' refreshes that only time or marks cause (the projector's sweep).

-- A trade's venue times (µs since the epoch, UTC) and its instrument's kind (the
-- provider's strategy). Rows from before this migration count at time 0.
ALTER TABLE provider_trades
    ADD COLUMN kind      text NOT NULL DEFAULT 'spot' CHECK (kind IN ('spot', 'perp')),
    ADD COLUMN opened_at bigint NOT NULL DEFAULT 0,
    ADD COLUMN closed_at bigint,
    ADD CONSTRAINT provider_trades_closed_at CHECK ((closed_seq IS NULL) = (closed_at IS NULL));
CREATE INDEX provider_trades_by_provider ON provider_trades (provider_id, shard);

-- The venue time of the projected position (the engine's clock after input `seq`).
ALTER TABLE projection_state ADD COLUMN at_us bigint NOT NULL DEFAULT 0;

-- The latest price the engine took for every symbol (a mark or a provider execution).
CREATE TABLE marks (
    symbol  text PRIMARY KEY,
    price   numeric NOT NULL CHECK (price > 0),
    shard   text NOT NULL,
    seq     bigint NOT NULL
);

-- One row per provider: its statistics record as of `as_of` (the leaderboard reads these
-- rows, one query, no join with relationships). `followers`, `aum`, `copiers_pnl` and
-- `unrealized_pnl` follow the marks (refreshed with the standings); the rest moves with
-- the provider's executions and with time (windows, days).
CREATE TABLE provider_statistics (
    provider_id     text PRIMARY KEY,
    shard           text NOT NULL,
    as_of           bigint NOT NULL,
    seq             bigint NOT NULL,
    strategy        text CHECK (strategy IN ('spot', 'futures', 'mixed')),
    max_leverage    integer,
    followers       integer NOT NULL CHECK (followers >= 0),
    aum             numeric NOT NULL,
    copiers_pnl     numeric NOT NULL,
    open_trades     integer NOT NULL,
    unrealized_pnl  numeric NOT NULL,
    risk_class      smallint CHECK (risk_class BETWEEN 1 AND 7),
    risk_level      text CHECK (risk_level IN ('low', 'medium', 'high')),
    -- per period (7d, 30d, 90d, all) the figures the leaderboard sorts and filters by
    trades_7d integer NOT NULL, trades_30d integer NOT NULL, trades_90d integer NOT NULL, trades_all integer NOT NULL,
    roi_7d numeric NOT NULL, roi_30d numeric NOT NULL, roi_90d numeric NOT NULL, roi_all numeric NOT NULL,
    pnl_7d numeric NOT NULL, pnl_30d numeric NOT NULL, pnl_90d numeric NOT NULL, pnl_all numeric NOT NULL,
    max_drawdown_7d numeric NOT NULL, max_drawdown_30d numeric NOT NULL,
    max_drawdown_90d numeric NOT NULL, max_drawdown_all numeric NOT NULL,
    win_rate_7d numeric, win_rate_30d numeric, win_rate_90d numeric, win_rate_all numeric,
    sharpe_7d double precision, sharpe_30d double precision,
    sharpe_90d double precision, sharpe_all double precision,
    -- the record as `copyengine stats` prints it but for its equity curve, which is kept
    -- apart: a row moved on at midnight rewrites the small part only
    record          jsonb NOT NULL,
    equity_curve    jsonb NOT NULL,
    -- the venue time from which time alone changes the record (the next UTC midnight, or
    -- a closed trade leaving a window); null: only an input can
    due_at          bigint
);
CREATE INDEX provider_statistics_due ON provider_statistics (due_at) WHERE due_at IS NOT NULL;
-- The default leaderboard (30-day ROI, best first) read in order from the index alone: no
-- sort and no heap (measured: p50 17 ms against 30 ms for all 10,000 rows).
CREATE INDEX provider_statistics_leaderboard ON provider_statistics (roi_30d DESC, provider_id DESC)
    INCLUDE (pnl_30d, max_drawdown_30d, win_rate_30d, sharpe_30d, followers, aum, copiers_pnl, risk_level, strategy);
-- Every row is rewritten often (a refresh a second, all of them at a UTC midnight): room
-- for the new version on its page (HOT updates), and vacuumed after a few percent of them
-- changed, so that the leaderboard's scan does not read through dead versions.
-- The record and the curve go out of line (TOAST) however small: the leaderboard's scan
-- reads the narrow columns only.
ALTER TABLE provider_statistics SET (fillfactor = 70, autovacuum_vacuum_scale_factor = 0.02,
                                     autovacuum_analyze_scale_factor = 0.02, toast_tuple_target = 128);

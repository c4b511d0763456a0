-- What the statistics and the profit-share settlement read: instruments, the FIFO lots,
-- provider trades, high watermarks, and the outbox the stream is published from.
-- All written by the projector in the transaction that moves `projection_state`, so
-- each input counts exactly once however often the projector restarts.

-- The venue's instruments, as last defined (venue-wide: the newest definition wins).
CREATE TABLE instruments (
    symbol        text PRIMARY KEY,
    kind          text NOT NULL CHECK (kind IN ('spot', 'perp')),
    tick          numeric NOT NULL CHECK (tick > 0),
    step          numeric NOT NULL CHECK (step > 0),
    min_qty       numeric NOT NULL CHECK (min_qty >= 0),
    min_notional  numeric NOT NULL CHECK (min_notional >= 0),
    -- the input that defined it
    shard         text NOT NULL,
    seq           bigint NOT NULL
);

-- Net money in (allocation + deposits - withdrawals) with each snapshot: equity - base is
-- the relationship's profit, net of deposits and withdrawals.
ALTER TABLE relationship_equity ADD COLUMN base numeric;

-- The FIFO lots of every position as of the newest snapshot (replaced with each one,
-- like `positions`). Closing takes the oldest lot first, `n` = 0 is the oldest.
CREATE TABLE lots (
    shard        text NOT NULL,
    seq          bigint NOT NULL,
    follower_id  text NOT NULL,
    provider_id  text NOT NULL,
    symbol       text NOT NULL,
    n            integer NOT NULL CHECK (n >= 0),
    side         text NOT NULL CHECK (side IN ('long', 'short')),
    qty          numeric NOT NULL CHECK (qty > 0),
    entry        numeric NOT NULL CHECK (entry > 0),
    leverage     integer NOT NULL CHECK (leverage >= 1),
    PRIMARY KEY (shard, follower_id, provider_id, symbol, n)
);

-- A provider trade: a position in one symbol from flat back to flat, built from the
-- venue-verified executions the engine accepted. An execution through zero closes one
-- trade and opens the next with the rest. Exact: pnl = Σ exit notional - Σ entry notional
-- (long; the opposite for short), and the trade's return is pnl / equity_at_open, where
-- equity_at_open is the provider equity the venue reported with the opening execution.
CREATE TABLE provider_trades (
    shard            text NOT NULL,
    provider_id      text NOT NULL,
    symbol           text NOT NULL,
    -- the input of the opening execution
    opened_seq       bigint NOT NULL,
    opened_exec_id   text NOT NULL,
    side             text NOT NULL CHECK (side IN ('long', 'short')),
    leverage         integer NOT NULL CHECK (leverage >= 1),
    equity_at_open   numeric NOT NULL CHECK (equity_at_open > 0),
    -- what is still open (0 once closed), and the most that was open
    qty              numeric NOT NULL CHECK (qty >= 0),
    max_qty          numeric NOT NULL CHECK (max_qty > 0),
    entry_qty        numeric NOT NULL,
    entry_notional   numeric NOT NULL,
    exit_qty         numeric NOT NULL,
    exit_notional    numeric NOT NULL,
    executions       integer NOT NULL,
    -- set when it is flat again
    closed_seq       bigint,
    closed_exec_id   text,
    pnl              numeric,
    PRIMARY KEY (shard, provider_id, symbol, opened_seq),
    CHECK ((closed_seq IS NULL) = (pnl IS NULL)),
    CHECK (closed_seq IS NULL OR (qty = 0 AND exit_qty = entry_qty))
);
CREATE INDEX provider_trades_closed ON provider_trades (provider_id, closed_seq) WHERE closed_seq IS NOT NULL;
-- at most one open trade per provider and symbol
CREATE UNIQUE INDEX provider_trades_open ON provider_trades (shard, provider_id, symbol) WHERE closed_seq IS NULL;

-- The profit-share high watermark of each copy relationship. It starts at the allocation
-- and moves with deposits and withdrawals by their amounts (so they never create a fee:
-- until a settlement raises it, it equals the relationship's base); a settlement raises
-- it to the equity it charged on. An unfollow removes it with the relationship.
CREATE TABLE high_watermarks (
    follower_id  text NOT NULL,
    provider_id  text NOT NULL,
    hwm          numeric NOT NULL,
    -- what moved it last ('follow', 'deposit', 'withdraw', later 'settlement'), and where
    reason       text NOT NULL,
    shard        text NOT NULL,
    seq          bigint NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (follower_id, provider_id)
);

-- The outbox the Redis stream is published from, in stream order (seq, sub, n). It is
-- the committed journal itself: every `fills`/`rejects` message (sub 0, its payload,
-- decoded by the publisher) and the max-loss stops at a seq (sub 1, one row each). A
-- separate table would write every fill twice.
CREATE VIEW outbox AS
    SELECT shard, seq, 0 AS sub, 0::bigint AS n, kind, payload, NULL::text AS follower_id, NULL::text AS provider_id
      FROM engine_inputs WHERE kind IN ('fills', 'rejects')
    UNION ALL
    SELECT shard, seq, 1, id, 'stops', NULL, follower_id, provider_id
      FROM relationship_stops;

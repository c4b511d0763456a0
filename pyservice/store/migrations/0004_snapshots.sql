-- Snapshots of the engine state, so recovery replays only the journal after the newest.
--
-- Taken by the projector, whose engine has applied the journal up to `seq` and the
-- control changes placed before `seq` (not those placed after it: recovery applies
-- those first). `state` is the Rust engine's own format, refused by another version.
CREATE TABLE engine_snapshots (
    shard     text NOT NULL REFERENCES engine_state (shard),
    seq       bigint NOT NULL,
    taken_at  timestamptz NOT NULL DEFAULT now(),
    state     bytea NOT NULL,
    PRIMARY KEY (shard, seq)
);

-- With each snapshot, every relationship's money as of `seq`: the equity curve of each
-- copy relationship, for the statistics and the profit-share settlement to come.
CREATE TABLE relationship_equity (
    shard        text NOT NULL,
    seq          bigint NOT NULL,
    taken_at     timestamptz NOT NULL DEFAULT now(),
    follower_id  text NOT NULL,
    provider_id  text NOT NULL,
    status       text NOT NULL CHECK (status IN ('active', 'paused', 'stopped')),
    cash         numeric NOT NULL,
    -- NULL when a held symbol has no mark yet
    equity       numeric,
    -- margin and cost held for orders still working at the venue
    reserved     numeric NOT NULL,
    PRIMARY KEY (shard, seq, follower_id, provider_id)
);
CREATE INDEX relationship_equity_by_relationship ON relationship_equity (follower_id, provider_id, seq);

-- The positions as of the newest snapshot (replaced with each one).
CREATE TABLE positions (
    shard        text NOT NULL,
    seq          bigint NOT NULL,
    follower_id  text NOT NULL,
    provider_id  text NOT NULL,
    symbol       text NOT NULL,
    -- signed: negative is short
    qty          numeric NOT NULL,
    PRIMARY KEY (shard, follower_id, provider_id, symbol)
);

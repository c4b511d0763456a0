-- The engine's system of record, first part: follower books and the input journal.
--
-- The engine is a deterministic state machine over its input order (DESIGN.md, "The hot
-- path"), so its committed state is the books it started from plus every input it
-- applied, up to the watermark. Recovery replays them; the venue resends the rest.

-- One row per engine shard: the venue session it follows and how far it has committed.
CREATE TABLE engine_state (
    shard          text PRIMARY KEY,
    venue_session  text,
    -- every input with seq <= watermark is in engine_inputs, and no later one is
    watermark      bigint NOT NULL DEFAULT 0 CHECK (watermark >= 0),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

-- Every venue message the engine applied, as the frame payload it arrived in (msgpack),
-- written in group commits with the watermark. Heartbeats and hellos change no state
-- and are not kept.
CREATE TABLE engine_inputs (
    shard        text NOT NULL REFERENCES engine_state (shard),
    seq          bigint NOT NULL CHECK (seq > 0),
    kind         text NOT NULL,
    payload      bytea NOT NULL,
    PRIMARY KEY (shard, seq)
);

CREATE TABLE providers (
    provider_id  text PRIMARY KEY,
    -- the books' order: the engine numbers providers in it
    listed       bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE followers (
    follower_id  text PRIMARY KEY,
    created_at   timestamptz NOT NULL DEFAULT now()
);

-- Copy relationships with their settings, in follow order (the order of a fan-out).
-- `follow` is the books file's follow record: settings as decimal strings, exactly as
-- the copy rules read them (pyservice/scenarios/FORMAT.md).
CREATE TABLE relationships (
    follower_id  text NOT NULL REFERENCES followers,
    provider_id  text NOT NULL REFERENCES providers,
    follow_order bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    follow       jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (follower_id, provider_id)
);
CREATE INDEX relationships_by_provider ON relationships (provider_id, follow_order);

-- Platform-wide settings of the copy rules (the books file's `platform`), one row.
CREATE TABLE platform (
    id        boolean PRIMARY KEY DEFAULT true CHECK (id),
    settings  jsonb NOT NULL
);

-- Venue-verified provider executions, the source of provider statistics.
CREATE TABLE provider_executions (
    shard           text NOT NULL,
    seq             bigint NOT NULL,
    provider_id     text NOT NULL,
    exec_id         text NOT NULL,
    symbol          text NOT NULL,
    side            text NOT NULL CHECK (side IN ('buy', 'sell')),
    qty             numeric NOT NULL,
    price           numeric NOT NULL,
    provider_equity numeric NOT NULL,
    leverage        integer,
    PRIMARY KEY (shard, seq),
    FOREIGN KEY (shard, seq) REFERENCES engine_inputs (shard, seq),
    -- the engine applies an exec id once per provider; a repeat is refused, not kept
    UNIQUE (provider_id, exec_id)
);
CREATE INDEX provider_executions_by_provider ON provider_executions (provider_id, seq);

-- Copy orders, their fills and rejects, as rows for the statistics and settlement to come.
--
-- Written by the projector (pyservice/store/projector.py), which applies the committed
-- journal to its own copy of the engine: the rows are the orders of an engine that
-- never crashed (no resends), with the sizes the engine sent.

CREATE TABLE projection_state (
    shard  text PRIMARY KEY REFERENCES engine_state (shard),
    -- every input up to here (and the control changes placed up to here) is projected
    seq    bigint NOT NULL DEFAULT 0
);

CREATE TABLE copy_orders (
    shard           text NOT NULL,
    client_order_id text NOT NULL,
    -- the input (venue seq) that produced it; a control change's orders carry the seq
    -- it was placed after
    seq             bigint NOT NULL,
    follower_id     text NOT NULL,
    provider_id     text NOT NULL,
    symbol          text NOT NULL,
    side            text NOT NULL CHECK (side IN ('buy', 'sell')),
    type            text NOT NULL CHECK (type IN ('limit_ioc', 'market')),
    qty             numeric NOT NULL CHECK (qty > 0),
    price           numeric,
    reduce_only     boolean NOT NULL,
    leverage        integer NOT NULL,
    PRIMARY KEY (shard, client_order_id)
);
CREATE INDEX copy_orders_by_relationship ON copy_orders (follower_id, provider_id, seq);

CREATE TABLE copy_fills (
    shard           text NOT NULL,
    seq             bigint NOT NULL,
    n               integer NOT NULL,
    client_order_id text NOT NULL,
    qty             numeric NOT NULL,
    price           numeric NOT NULL,
    PRIMARY KEY (shard, seq, n)
);
CREATE INDEX copy_fills_by_order ON copy_fills (shard, client_order_id);

CREATE TABLE copy_rejects (
    shard           text NOT NULL,
    seq             bigint NOT NULL,
    n               integer NOT NULL,
    client_order_id text NOT NULL,
    reason          text NOT NULL,
    PRIMARY KEY (shard, seq, n)
);

-- Relationships stopped by max-loss, where the engine stopped them (after input `seq`,
-- or by a control change placed after it), in the order it did.
CREATE TABLE relationship_stops (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    shard       text NOT NULL,
    seq         bigint NOT NULL,
    follower_id text NOT NULL,
    provider_id text NOT NULL
);
CREATE INDEX relationship_stops_by_seq ON relationship_stops (shard, seq, id);

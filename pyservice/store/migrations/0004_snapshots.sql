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

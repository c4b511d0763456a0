-- The control plane: follow, unfollow, deposit, withdraw, pause, resume and settings,
-- committed here first.
--
-- The engine takes pending changes in id order and applies each at a point of its input
-- order: after venue seq `after_seq`, with its journal committed up to that seq and the
-- venue not read meanwhile. A restart replays them at the same points, so the engine
-- meets each change in exactly the state it met it the first time. `relationships`
-- stays the books the journal starts from; this table is every change since.
CREATE TABLE control_changes (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    shard        text NOT NULL,
    -- the change as the replay's event (pyservice/scenarios/FORMAT.md), checked by the
    -- same parser before it was stored
    change       jsonb NOT NULL,
    requested_at timestamptz NOT NULL DEFAULT now(),
    -- where the engine applies it, committed before it does; NULL while pending
    after_seq    bigint CHECK (after_seq >= 0),
    -- set with `error` once the engine has applied it
    applied_at   timestamptz,
    -- the copy rules' message when they refused it (it then changed nothing)
    error        text
);
CREATE INDEX control_changes_pending ON control_changes (shard, id) WHERE after_seq IS NULL;
CREATE INDEX control_changes_applied ON control_changes (shard, after_seq, id) WHERE after_seq IS NOT NULL;

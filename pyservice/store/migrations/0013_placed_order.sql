-- The order in which the engine placed its control changes. Two changes committed
-- concurrently may become visible out of id order (the higher id commits first and is
-- placed first); recovery must meet them in the order the engine applied them, so it
-- orders by (after_seq, placed_n), not by id.
CREATE SEQUENCE control_changes_placed_n;
ALTER TABLE control_changes ADD COLUMN placed_n bigint;
CREATE INDEX control_changes_placed ON control_changes (shard, after_seq, placed_n) WHERE after_seq IS NOT NULL;

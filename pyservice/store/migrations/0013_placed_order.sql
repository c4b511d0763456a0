-- The order in which the engine placed its control changes. Two changes committed
-- concurrently may become visible out of id order (the higher id commits first and is
-- placed first); recovery must meet them in the order the engine applied them, so it
-- orders by (after_seq, placed_n), not by id.
CREATE SEQUENCE control_changes_placed_n;
ALTER TABLE control_changes ADD COLUMN placed_n bigint;
CREATE INDEX control_changes_placed ON control_changes (shard, after_seq, placed_n) WHERE after_seq IS NOT NULL;

-- the changes placed before this migration: in the order recovery met them until now
UPDATE control_changes c SET placed_n = o.n
FROM (SELECT id, row_number() OVER (ORDER BY after_seq, id) AS n FROM control_changes WHERE after_seq IS NOT NULL) o
WHERE c.id = o.id;
SELECT setval('control_changes_placed_n', greatest(1, (SELECT coalesce(max(placed_n), 0) FROM control_changes)),
              (SELECT max(placed_n) IS NOT NULL FROM control_changes));

-- A notification's place in the published order is its change's place in the applied
-- order (0 for a venue input's settlements): keyed by the change id, a change of a
-- lower id placed after a higher one would key below rows already published, and the
-- stream (which only grows) would never carry it.
ALTER TABLE notifications ADD COLUMN placed_n bigint NOT NULL DEFAULT 0;
UPDATE notifications nt SET placed_n = c.placed_n FROM control_changes c WHERE c.id = nt.change_id AND nt.change_id > 0;
CREATE INDEX notifications_published_order ON notifications (shard, seq, placed_n, n, side);

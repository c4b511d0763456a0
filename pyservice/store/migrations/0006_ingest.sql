-- Cheaper ingest, measured (benches/RESULTS.md, "Where PostgreSQL spent its time"):
--
-- 1. The journal's payloads and the snapshots are stored uncompressed. pglz, the default
--    and the only method every build has (the embedded server has no lz4), cost about
--    9 ms of the COPY backend's CPU per 10,000-fill message: more than the rest of the
--    commit. They are msgpack and bincode, which pglz shrinks only by about a third.
ALTER TABLE engine_inputs ALTER COLUMN payload SET STORAGE EXTERNAL;
ALTER TABLE engine_snapshots ALTER COLUMN state SET STORAGE EXTERNAL;

-- 2. Client order ids are hashes, so a B-tree on them takes every insert to a random leaf
--    of an ever larger index. copy_orders is keyed instead by where each order was made,
--    a key that only grows: the input `seq`, the control change that made the frame (0:
--    the venue message itself) and the order's place `n` in the frame. Look-ups by client
--    order id use hash indexes, which PostgreSQL does not allow to be unique; the ids are
--    unique by construction (DESIGN.md) and checked against the venue by the crash tests.
ALTER TABLE copy_orders ADD COLUMN change_id bigint NOT NULL DEFAULT 0,
                        ADD COLUMN n integer NOT NULL DEFAULT 0;
-- rows written before this migration: numbered in the order they were stored
UPDATE copy_orders o SET n = r.n
  FROM (SELECT ctid, (row_number() OVER (PARTITION BY shard, seq ORDER BY ctid) - 1)::integer AS n
          FROM copy_orders) r
 WHERE o.ctid = r.ctid;
ALTER TABLE copy_orders ALTER COLUMN change_id DROP DEFAULT, ALTER COLUMN n DROP DEFAULT;
ALTER TABLE copy_orders DROP CONSTRAINT copy_orders_pkey;
ALTER TABLE copy_orders ADD PRIMARY KEY (shard, seq, change_id, n);
CREATE INDEX copy_orders_by_id ON copy_orders USING hash (client_order_id);

DROP INDEX copy_fills_by_order;
CREATE INDEX copy_fills_by_order ON copy_fills USING hash (client_order_id);
CREATE INDEX copy_rejects_by_order ON copy_rejects USING hash (client_order_id);

-- copy_fills and copy_rejects lose their hash indexes on client_order_id.
--
-- Measured (benches/RESULTS.md, "PostgreSQL ingest without the reports' hash indexes"):
-- inserting into hash indexes was 54% of the projector's COPY backend (perf), and that
-- backend, at 83% of a core, was what kept the pipeline under 100,000 copy orders a
-- second on a slower VM. Without these two, the 1M-order burst went from 77-90k to
-- 125k orders/s persisted and published, and 100k/s sustained trailed by 0.1 s, not 1-3 s.
--
-- Nothing reads them: the projector writes these rows, the publisher reads the outbox,
-- statistics and settlement read the per-relationship tables. A venue reports a copy
-- order after the input that made it, so the reports of an order are found through the
-- primary key from the order's seq on:
--   SELECT * FROM copy_fills
--    WHERE shard = $1 AND seq > (SELECT seq FROM copy_orders
--                                 WHERE shard = $1 AND client_order_id = $2)
--      AND client_order_id = $2;
-- (an IOC order is reported within a few inputs; an order never reported scans to the
-- end of the shard's rows). copy_orders keeps copy_orders_by_id for that first step.
DROP INDEX IF EXISTS copy_fills_by_order;
DROP INDEX IF EXISTS copy_rejects_by_order;

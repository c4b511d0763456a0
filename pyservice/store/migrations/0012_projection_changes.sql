-- The control changes placed after the projected input `seq` that the projector has
-- already projected, in the order it applied them: a change placed after the newest
-- input (a manual `copyengine settle` while the venue is quiet) reaches its rows once
-- its verdict is recorded, without waiting for the next input (pyservice/store/projector.py).
-- Emptied whenever `seq` moves on.
ALTER TABLE projection_state ADD COLUMN changes_taken bigint[] NOT NULL DEFAULT '{}';

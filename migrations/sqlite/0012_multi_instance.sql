-- Several instances on one database. Keep in step with
-- migrations/postgres/0012_multi_instance.sql (same meaning, only types differ).

-- Every move of a listener's processed block (a range processed, a reorg rolled back, an
-- operator's rewind) bumps the cursor's generation. A listener writes its cursor only if
-- the generation, the processed block and the tip's hash are still the ones it read at
-- the start of its step (compare-and-set, checked inside the step's transaction): a
-- listener that lags behind another one, or outlived its leadership, can neither move
-- the cursor back nor revive a transfer that a reorg removed.
ALTER TABLE chain_cursors ADD COLUMN generation INTEGER NOT NULL DEFAULT 0;

-- The PostgreSQL migration also adds the NOTIFY triggers that wake other instances'
-- webhook workers and checkout streams; SQLite serves one process, which polls.

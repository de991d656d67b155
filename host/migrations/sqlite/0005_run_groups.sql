-- Sharded runs (`preheat run --shard I/N --group G`): every row of a shard's
-- run carries the run group and the shard, so history and status show the
-- shards of one run together. NULL for runs that were not split.
ALTER TABLE cache_warming_jobs ADD COLUMN run_group TEXT;
ALTER TABLE cache_warming_jobs ADD COLUMN shard_index INTEGER;
ALTER TABLE cache_warming_jobs ADD COLUMN shard_count INTEGER;
CREATE INDEX IF NOT EXISTS cache_warming_jobs_run_group ON cache_warming_jobs (run_group);

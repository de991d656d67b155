-- Runs whose process died (heartbeat older than the lease, or the lock holder's
-- process gone) are marked 'interrupted' when the job store is next opened.
ALTER TABLE cache_warming_jobs DROP CONSTRAINT IF EXISTS cache_warming_jobs_status_check;
ALTER TABLE cache_warming_jobs ADD CONSTRAINT cache_warming_jobs_status_check
    CHECK (status IN ('pending', 'running', 'completed', 'partial', 'failed', 'skipped', 'stopped', 'interrupted'));

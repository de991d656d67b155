-- Runs stopped on request (API stop, SIGTERM) get status 'stopped'.
ALTER TABLE cache_warming_jobs DROP CONSTRAINT IF EXISTS cache_warming_jobs_status_check;
ALTER TABLE cache_warming_jobs ADD CONSTRAINT cache_warming_jobs_status_check
    CHECK (status IN ('pending', 'running', 'completed', 'partial', 'failed', 'skipped', 'stopped'));

-- Runs whose process died (heartbeat older than the lease, or the lock holder's
-- process gone) are marked 'interrupted' when the job store is next opened.
-- SQLite cannot alter a CHECK constraint: rebuild the table.
CREATE TABLE cache_warming_jobs_new (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL,
    job_type TEXT NOT NULL,
    strategy TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'running', 'completed', 'partial', 'failed', 'skipped', 'stopped', 'interrupted')),
    metadata TEXT NOT NULL DEFAULT '{}',
    error_message TEXT,
    started_at TEXT,
    completed_at TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
INSERT INTO cache_warming_jobs_new SELECT * FROM cache_warming_jobs;
DROP TABLE cache_warming_jobs;
ALTER TABLE cache_warming_jobs_new RENAME TO cache_warming_jobs;
CREATE INDEX IF NOT EXISTS cache_warming_jobs_run_id ON cache_warming_jobs (run_id);
CREATE INDEX IF NOT EXISTS cache_warming_jobs_created_at ON cache_warming_jobs (created_at);

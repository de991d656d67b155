-- Job history (the seed applications' cache_warming_jobs) and the run lock.
CREATE TABLE IF NOT EXISTS cache_warming_jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL,
    job_type TEXT NOT NULL,
    strategy TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'running', 'completed', 'partial', 'failed', 'skipped')),
    metadata TEXT NOT NULL DEFAULT '{}',
    error_message TEXT,
    started_at TEXT,
    completed_at TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS cache_warming_jobs_run_id ON cache_warming_jobs (run_id);
CREATE INDEX IF NOT EXISTS cache_warming_jobs_created_at ON cache_warming_jobs (created_at);

CREATE TABLE IF NOT EXISTS preheat_run_locks (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    acquired_at TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);

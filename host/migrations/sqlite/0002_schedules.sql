-- Per-plugin schedules of `preheat serve`: overrides made through the API
-- (`overridden` = 1: they win over the config's schedule) and when each
-- plugin's schedule last fired (the missed-runs policy at start-up).
-- Times are RFC 3339 UTC text.
CREATE TABLE IF NOT EXISTS preheat_schedules (
    plugin TEXT PRIMARY KEY,
    cron TEXT,
    jitter_ms BIGINT,
    enabled INTEGER NOT NULL DEFAULT 1,
    overridden INTEGER NOT NULL DEFAULT 0,
    last_fired_at TEXT,
    updated_at TEXT NOT NULL
);

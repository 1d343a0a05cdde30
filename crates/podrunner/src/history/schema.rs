//! The history file's tables, and the migrations a file of an older schema gets.

/// The schema this code writes (`PRAGMA user_version`). 2 added `proxy_refusals`.
pub(super) const SCHEMA_VERSION: i64 = 2;

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS runners (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    pool TEXT NOT NULL,
    runner_id INTEGER,
    container TEXT,
    image TEXT,
    image_id TEXT,
    created_ms INTEGER NOT NULL,
    started_ms INTEGER,
    online_ms INTEGER,
    job_ran INTEGER,
    job_name TEXT,
    job_repository TEXT,
    job_run_id INTEGER,
    job_result TEXT,
    job_queued_ms INTEGER,
    job_started_ms INTEGER,
    job_finished_ms INTEGER,
    ended_ms INTEGER,
    exit_code INTEGER,
    failure TEXT,
    oom INTEGER NOT NULL DEFAULT 0,
    log_path TEXT,
    closed INTEGER NOT NULL DEFAULT 0,
    proxy_refusals INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS runners_created ON runners(created_ms);
CREATE INDEX IF NOT EXISTS runners_pool ON runners(pool, created_ms);
";

/// What a file of an older schema gets before it is used (`user_version` below the key).
pub(super) const MIGRATIONS: &[(i64, &str)] = &[(
    2,
    "ALTER TABLE runners ADD COLUMN proxy_refusals INTEGER NOT NULL DEFAULT 0",
)];

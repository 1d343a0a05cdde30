//! The history of every runner and the job it ran, in SQLite under `state_dir`
//! (docs/history.md). It owns the file, its schema and retention; the manager writes to it
//! through `manager/record.rs`, `podrunner history` and the status page read it.
//!
//! Durability: WAL journal, `synchronous = NORMAL`. A committed row survives the manager being
//! killed (`kill -9`): the WAL is in the kernel's page cache when the commit returns. A power
//! loss may drop the last commits (NORMAL skips the fsync per commit; the file stays
//! consistent).
//!
//! Files: this one opens the file and writes rows (and prunes them); `schema.rs` holds the
//! tables and migrations, `read.rs` the queries of `podrunner history` and the status page.

use rusqlite::{params, Connection, OpenFlags};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

mod read;
mod schema;

use schema::{MIGRATIONS, SCHEMA, SCHEMA_VERSION};

/// The file under `state_dir`.
pub const FILE_NAME: &str = "history.sqlite";
/// A writer or reader waits this long for the other's lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Size pruning deletes the share of the oldest rows that is over the limit plus this many,
/// then measures again (freed pages do not shrink the used size row by row).
const PRUNE_MARGIN: i64 = 8;
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("history database {path}: {source}")]
    Sql {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("history database {path} was written by a newer podrunner (schema {found}, this one knows {SCHEMA_VERSION})\n  fix: upgrade podrunner, or move the file away to start a new history")]
    Newer { path: PathBuf, found: i64 },
}

/// Milliseconds since the epoch, the unit of every time column.
pub fn ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub fn now_ms() -> i64 {
    ms(SystemTime::now())
}

/// What is known about a runner's job, as the runner reported it. The manager fills this
/// (manager/record.rs, `job_outcome`): every field is optional because the source decides
/// what is known; the runner's own output gives name and result, a scale set's messages give
/// the queue time.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct JobOutcome {
    /// The runner took a job (its registration vanished after a clean exit, or GitHub showed
    /// it busy). `None`: not known.
    pub ran: Option<bool>,
    pub name: Option<String>,
    /// `owner/repo`.
    pub repository: Option<String>,
    pub workflow_run: Option<u64>,
    /// The runner's word for it: `Succeeded`, `Failed`, `Canceled`, ...
    pub result: Option<String>,
    pub queued_ms: Option<i64>,
    pub started_ms: Option<i64>,
    pub finished_ms: Option<i64>,
}

impl JobOutcome {
    /// `self`, with what it leaves open taken from `other` (a less direct source).
    pub fn or(self, other: JobOutcome) -> JobOutcome {
        JobOutcome {
            ran: self.ran.or(other.ran),
            name: self.name.or(other.name),
            repository: self.repository.or(other.repository),
            workflow_run: self.workflow_run.or(other.workflow_run),
            result: self.result.or(other.result),
            queued_ms: self.queued_ms.or(other.queued_ms),
            started_ms: self.started_ms.or(other.started_ms),
            finished_ms: self.finished_ms.or(other.finished_ms),
        }
    }

    /// Seconds from queued to started; 0 when the start, known to the second only (the
    /// runner's log), reads a little before the queue time.
    pub fn startup_secs(&self) -> Option<f64> {
        Some((self.started_ms? - self.queued_ms?).max(0) as f64 / 1000.0)
    }
}

/// A runner whose registration is being requested.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRunner<'a> {
    pub name: &'a str,
    pub pool: &'a str,
    pub image: &'a str,
    pub created_ms: i64,
    pub log_path: &'a Path,
}

/// How a runner ended, written once when it is cleaned up.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Finish {
    pub ended_ms: i64,
    pub exit_code: Option<i32>,
    pub failure: Option<String>,
    pub oom: bool,
    pub image_id: Option<String>,
    pub job: JobOutcome,
}

/// One row, as `podrunner history --json` prints it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entry {
    pub pool: String,
    pub name: String,
    pub runner_id: Option<u64>,
    pub container: Option<String>,
    pub image: Option<String>,
    pub image_id: Option<String>,
    pub created_ms: i64,
    pub started_ms: Option<i64>,
    pub online_ms: Option<i64>,
    pub job: JobOutcome,
    pub ended_ms: Option<i64>,
    pub exit_code: Option<i32>,
    pub failure: Option<String>,
    pub oom: bool,
    pub log_path: Option<String>,
    /// Docker API requests its proxy refused (`docker = "isolated"`).
    pub proxy_refusals: u64,
}

impl Entry {
    /// Ended with a failure (start, exit code, no job) or out of memory.
    pub fn failed(&self) -> bool {
        self.failure.is_some() || self.oom
    }
}

/// Which rows to list.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub pool: Option<String>,
    pub since_ms: Option<i64>,
    pub failed_only: bool,
    pub limit: Option<u32>,
}

/// Retention: rows older than `max_age` go, then the oldest until the data fits `max_bytes`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Retention {
    pub max_age: Duration,
    pub max_bytes: u64,
}

/// Jobs that ended in one hour, for the status page's chart.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hour {
    /// Epoch ms of the hour's start.
    pub hour_ms: i64,
    pub jobs: u64,
    pub failed: u64,
    /// Mean queue-to-start seconds of the jobs with both times known.
    pub mean_startup_secs: Option<f64>,
}

#[derive(Debug)]
pub struct History {
    conn: Connection,
    path: PathBuf,
}

impl History {
    pub fn path_in(state_dir: &Path) -> PathBuf {
        state_dir.join(FILE_NAME)
    }

    /// Opens (creating) the history for writing.
    pub fn open(path: &Path) -> Result<History, Error> {
        let conn = Connection::open(path).map_err(|e| sql(path, e))?;
        let h = History {
            conn,
            path: path.to_path_buf(),
        };
        h.init().map_err(|e| h.err(e))?;
        let found: i64 = h
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| h.err(e))?;
        if found > SCHEMA_VERSION {
            return Err(Error::Newer {
                path: path.to_path_buf(),
                found,
            });
        }
        // A file made before (user_version 0 is a new file: its table has every column).
        if found > 0 {
            for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > found) {
                h.conn.execute_batch(sql).map_err(|e| h.err(e))?;
                tracing::info!("history: schema upgraded to {version}");
            }
        }
        h.conn
            .pragma_update(None, "user_version", SCHEMA_VERSION)
            .map_err(|e| h.err(e))?;
        Ok(h)
    }

    /// Opens an existing history for reading (`podrunner history`, `logs`).
    pub fn open_read_only(path: &Path) -> Result<History, Error> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| sql(path, e))?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(|e| sql(path, e))?;
        Ok(History {
            conn,
            path: path.to_path_buf(),
        })
    }

    fn init(&self) -> rusqlite::Result<()> {
        self.conn.busy_timeout(BUSY_TIMEOUT)?;
        // Incremental vacuum must be chosen before the first table exists; later it is kept.
        self.conn
            .pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
        self.conn.pragma_update(None, "journal_mode", "WAL")?;
        self.conn.pragma_update(None, "synchronous", "NORMAL")?;
        self.conn.execute_batch(SCHEMA)
    }

    fn err(&self, e: rusqlite::Error) -> Error {
        sql(&self.path, e)
    }

    fn exec(&self, q: &str, p: impl rusqlite::Params) -> Result<usize, Error> {
        self.conn.execute(q, p).map_err(|e| self.err(e))
    }

    /// A runner is about to be registered. A name seen before (an adopted runner) keeps its row.
    pub fn runner_created(&self, r: &NewRunner) -> Result<(), Error> {
        self.exec(
            "INSERT INTO runners (name, pool, image, created_ms, log_path) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT(name) DO NOTHING",
            params![r.name, r.pool, r.image, r.created_ms, r.log_path.display().to_string()],
        )
        .map(|_| ())
    }

    pub fn runner_registered(&self, name: &str, runner_id: u64) -> Result<(), Error> {
        self.exec(
            "UPDATE runners SET runner_id = ?2 WHERE name = ?1",
            params![name, runner_id as i64],
        )
        .map(|_| ())
    }

    /// The container runs.
    pub fn runner_started(&self, name: &str, container: &str, at_ms: i64) -> Result<(), Error> {
        self.exec(
            "UPDATE runners SET container = ?2, started_ms = COALESCE(started_ms, ?3) WHERE name = ?1",
            params![name, container, at_ms],
        )
        .map(|_| ())
    }

    /// GitHub lists the runner online (first time only).
    pub fn runner_online(&self, name: &str, at_ms: i64) -> Result<(), Error> {
        self.exec(
            "UPDATE runners SET online_ms = ?2 WHERE name = ?1 AND online_ms IS NULL",
            params![name, at_ms],
        )
        .map(|_| ())
    }

    /// The runner took a job (first time only).
    pub fn job_started(&self, name: &str, at_ms: i64) -> Result<(), Error> {
        self.exec(
            "UPDATE runners SET job_ran = 1, job_started_ms = ?2 WHERE name = ?1 AND job_started_ms IS NULL",
            params![name, at_ms],
        )
        .map(|_| ())
    }

    /// The container exited: written at once, so a manager killed before the cleanup still
    /// leaves the end and the exit code.
    pub fn runner_exited(&self, name: &str, at_ms: i64, code: Option<i32>) -> Result<(), Error> {
        self.exec(
            "UPDATE runners SET ended_ms = COALESCE(ended_ms, ?2), exit_code = COALESCE(exit_code, ?3) WHERE name = ?1",
            params![name, at_ms, code],
        )
        .map(|_| ())
    }

    /// The Docker proxy refused `n` of the runner's requests (counted at its exit).
    pub fn runner_proxy_refusals(&self, name: &str, n: u64) -> Result<(), Error> {
        self.exec(
            "UPDATE runners SET proxy_refusals = ?2 WHERE name = ?1",
            params![name, n as i64],
        )
        .map(|_| ())
    }

    pub fn runner_oom(&self, name: &str) -> Result<(), Error> {
        self.exec("UPDATE runners SET oom = 1 WHERE name = ?1", params![name])
            .map(|_| ())
    }

    /// How the runner ended and what its job was; known values are never overwritten by
    /// unknown ones.
    pub fn runner_finished(&self, name: &str, f: &Finish) -> Result<(), Error> {
        let j = &f.job;
        self.exec(
            "UPDATE runners SET
                closed = 1,
                ended_ms = COALESCE(ended_ms, ?2),
                exit_code = COALESCE(exit_code, ?3),
                failure = COALESCE(?4, failure),
                oom = MAX(oom, ?5),
                image_id = COALESCE(image_id, ?6),
                job_ran = COALESCE(?7, job_ran),
                job_name = COALESCE(?8, job_name),
                job_repository = COALESCE(?9, job_repository),
                job_run_id = COALESCE(?10, job_run_id),
                job_result = COALESCE(?11, job_result),
                job_queued_ms = COALESCE(?12, job_queued_ms),
                job_started_ms = COALESCE(?13, job_started_ms),
                job_finished_ms = COALESCE(?14, job_finished_ms)
             WHERE name = ?1",
            params![
                name,
                f.ended_ms,
                f.exit_code,
                f.failure,
                f.oom as i64,
                f.image_id,
                j.ran.map(|b| b as i64),
                j.name,
                j.repository,
                j.workflow_run.map(|n| n as i64),
                j.result,
                j.queued_ms,
                j.started_ms,
                j.finished_ms,
            ],
        )
        .map(|_| ())
    }

    /// Sets the image id where the row has none yet (`podman ps` tells it).
    pub fn image_id(&self, name: &str, image_id: &str) -> Result<(), Error> {
        self.exec(
            "UPDATE runners SET image_id = ?2 WHERE name = ?1 AND image_id IS NULL",
            params![name, image_id],
        )
        .map(|_| ())
    }

    /// At start-up: rows still open whose runner is not among `alive` (the containers a new
    /// manager adopts) ended while no manager watched. They are closed; one with no recorded
    /// exit gets `at_ms` as end and `why` as failure. Returns how many.
    pub fn close_unfinished(
        &self,
        alive: &[String],
        at_ms: i64,
        why: &str,
    ) -> Result<usize, Error> {
        let open: Vec<String> = {
            let mut st = self
                .conn
                .prepare("SELECT name FROM runners WHERE closed = 0")
                .map_err(|e| self.err(e))?;
            let rows = st
                .query_map([], |r| r.get::<_, String>(0))
                .map_err(|e| self.err(e))?;
            rows.collect::<Result<_, _>>().map_err(|e| self.err(e))?
        };
        let mut n = 0;
        for name in open.iter().filter(|n| !alive.contains(n)) {
            n += self.exec(
                "UPDATE runners SET closed = 1, ended_ms = COALESCE(ended_ms, ?2),
                 failure = CASE WHEN ended_ms IS NULL THEN COALESCE(failure, ?3) ELSE failure END
                 WHERE name = ?1",
                params![name, at_ms, why],
            )?;
        }
        Ok(n)
    }

    /// Applies retention; returns the number of rows deleted. Free pages go back to the file
    /// system (incremental vacuum), so the file shrinks too.
    pub fn prune(&self, now_ms: i64, r: &Retention) -> Result<u64, Error> {
        let cutoff = now_ms - r.max_age.as_millis() as i64;
        let mut deleted =
            self.exec("DELETE FROM runners WHERE created_ms < ?1", params![cutoff])? as u64;
        loop {
            let used = self.used_bytes()?;
            if used <= r.max_bytes {
                break;
            }
            // The share of rows that is too much, plus a few for the tree's own pages.
            let rows = self.count()?;
            let batch =
                (rows as u128 * (used - r.max_bytes) as u128 / used as u128) as i64 + PRUNE_MARGIN;
            let n = self.exec(
                "DELETE FROM runners WHERE id IN (SELECT id FROM runners ORDER BY created_ms, id LIMIT ?1)",
                params![batch],
            )?;
            if n == 0 {
                break;
            }
            deleted += n as u64;
        }
        if deleted > 0 {
            // Each step of this pragma frees one page: step it to the end.
            let mut st = self
                .conn
                .prepare("PRAGMA incremental_vacuum")
                .map_err(|e| self.err(e))?;
            let mut rows = st.query([]).map_err(|e| self.err(e))?;
            while rows.next().map_err(|e| self.err(e))?.is_some() {}
        }
        Ok(deleted)
    }
}

fn sql(path: &Path, source: rusqlite::Error) -> Error {
    Error::Sql {
        path: path.to_path_buf(),
        source,
    }
}

/// Parses `--since`: a duration back from now (`2h`, `30m`, `7d`).
pub fn since_ms(arg: &str, now_ms: i64) -> Result<i64, SinceError> {
    humantime::parse_duration(arg.trim())
        .map(|d| now_ms - d.as_millis() as i64)
        .map_err(|source| SinceError {
            arg: arg.to_string(),
            source,
        })
}

/// A `--since` that is not a duration.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("--since {arg:?}: {source}; expected a duration like 2h, 30m or 7d")]
pub struct SinceError {
    arg: String,
    source: humantime::DurationError,
}

#[cfg(test)]
mod tests;

//! The queries that read the history: `podrunner history`, the status page and retention's
//! measures.

use super::{Entry, Error, Filter, History, Hour, JobOutcome};
use rusqlite::{params, OptionalExtension};

impl History {
    fn row(r: &rusqlite::Row) -> rusqlite::Result<Entry> {
        Ok(Entry {
            name: r.get("name")?,
            pool: r.get("pool")?,
            runner_id: r.get::<_, Option<i64>>("runner_id")?.map(|n| n as u64),
            container: r.get("container")?,
            image: r.get("image")?,
            image_id: r.get("image_id")?,
            created_ms: r.get("created_ms")?,
            started_ms: r.get("started_ms")?,
            online_ms: r.get("online_ms")?,
            job: JobOutcome {
                ran: r.get::<_, Option<i64>>("job_ran")?.map(|n| n != 0),
                name: r.get("job_name")?,
                repository: r.get("job_repository")?,
                workflow_run: r.get::<_, Option<i64>>("job_run_id")?.map(|n| n as u64),
                result: r.get("job_result")?,
                queued_ms: r.get("job_queued_ms")?,
                started_ms: r.get("job_started_ms")?,
                finished_ms: r.get("job_finished_ms")?,
            },
            ended_ms: r.get("ended_ms")?,
            exit_code: r.get("exit_code")?,
            failure: r.get("failure")?,
            oom: r.get::<_, i64>("oom")? != 0,
            log_path: r.get("log_path")?,
            proxy_refusals: r.get::<_, i64>("proxy_refusals")?.max(0) as u64,
        })
    }

    /// Rows matching `f`, newest first.
    pub fn list(&self, f: &Filter) -> Result<Vec<Entry>, Error> {
        let mut st = self
            .conn
            .prepare(
                "SELECT * FROM runners
                 WHERE (?1 IS NULL OR pool = ?1)
                   AND (?2 IS NULL OR created_ms >= ?2)
                   AND (?3 = 0 OR failure IS NOT NULL OR oom = 1)
                 ORDER BY created_ms DESC, id DESC
                 LIMIT ?4",
            )
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map(
                params![
                    f.pool,
                    f.since_ms,
                    f.failed_only as i64,
                    f.limit.map(i64::from).unwrap_or(-1)
                ],
                Self::row,
            )
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// The row of runner `name`.
    pub fn find(&self, name: &str) -> Result<Option<Entry>, Error> {
        self.conn
            .query_row(
                "SELECT * FROM runners WHERE name = ?1",
                params![name],
                Self::row,
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// The runner a user names: its name, its GitHub runner id, or a prefix (at least 4
    /// characters) of its container id. The newest match wins.
    pub fn find_ref(&self, r: &str) -> Result<Option<Entry>, Error> {
        if let Some(e) = self.find(r)? {
            return Ok(Some(e));
        }
        let id: Option<i64> = r.parse().ok();
        let prefix =
            (r.len() >= 4 && r.chars().all(|c| c.is_ascii_hexdigit())).then(|| format!("{r}%"));
        self.conn
            .query_row(
                "SELECT * FROM runners WHERE (?1 IS NOT NULL AND runner_id = ?1)
                    OR (?2 IS NOT NULL AND container LIKE ?2)
                 ORDER BY created_ms DESC, id DESC LIMIT 1",
                params![id, prefix],
                Self::row,
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Jobs that ended per hour since `since_ms`, oldest first.
    pub fn per_hour(&self, since_ms: i64) -> Result<Vec<Hour>, Error> {
        let mut st = self
            .conn
            .prepare(
                "SELECT (ended_ms / 3600000) * 3600000 AS h, COUNT(*),
                        SUM(failure IS NOT NULL OR oom = 1 OR job_result IN ('Failed', 'Canceled')),
                        AVG(CASE WHEN job_queued_ms IS NOT NULL AND job_started_ms IS NOT NULL
                                 THEN MAX(job_started_ms - job_queued_ms, 0) / 1000.0 END)
                 FROM runners WHERE job_ran = 1 AND ended_ms >= ?1
                 GROUP BY h ORDER BY h",
            )
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map(params![since_ms], |r| {
                Ok(Hour {
                    hour_ms: r.get(0)?,
                    jobs: r.get::<_, i64>(1)? as u64,
                    failed: r.get::<_, Option<i64>>(2)?.unwrap_or(0) as u64,
                    mean_startup_secs: r.get(3)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Bytes the rows take (pages in use, free pages not counted).
    pub fn used_bytes(&self) -> Result<u64, Error> {
        let q = |p: &str| -> Result<i64, Error> {
            self.conn
                .query_row(&format!("PRAGMA {p}"), [], |r| r.get(0))
                .map_err(|e| self.err(e))
        };
        let (count, free, size) = (q("page_count")?, q("freelist_count")?, q("page_size")?);
        Ok(((count - free).max(0) * size) as u64)
    }

    pub fn count(&self) -> Result<u64, Error> {
        self.conn
            .query_row("SELECT COUNT(*) FROM runners", [], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(|e| self.err(e))
    }
}

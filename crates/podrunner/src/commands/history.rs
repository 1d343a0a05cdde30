//! `podrunner history [--pool P] [--since 2h] [--failed] [--json]`: every runner and the job
//! it ran, newest first, from the history file (docs/history.md). Works with or without a
//! running manager.

use super::exit::{Exit, Failed};
use super::Cli;
use crate::history::{self, Entry, Filter, History};

/// Rows shown unless `--limit` says otherwise.
const DEFAULT_LIMIT: u32 = 50;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only this pool
    #[arg(long)]
    pub pool: Option<String>,
    /// Only runners created within this long (e.g. 2h, 30m, 7d)
    #[arg(long)]
    pub since: Option<String>,
    /// Only runners that failed (start, exit code, no job, out of memory)
    #[arg(long)]
    pub failed: bool,
    /// At most this many rows (0: all)
    #[arg(long, default_value_t = DEFAULT_LIMIT)]
    pub limit: u32,
    /// Print machine-readable JSON
    #[arg(long)]
    pub json: bool,
}

pub async fn exec(cli: &Cli, args: &Args) -> anyhow::Result<Exit> {
    crate::logging::init_cli(cli.log_level.as_deref());
    let cfg = cli.load_config()?;
    let now = history::now_ms();
    let since_ms = match args.since.as_deref().map(|s| history::since_ms(s, now)) {
        None => None,
        Some(Ok(t)) => Some(t),
        Some(Err(e)) => return Err(Failed::Invalid(e.to_string()).into()),
    };
    let path = History::path_in(&cfg.manager.state_dir);
    if !path.exists() {
        anyhow::bail!(
            "no history at {}\n  fix: it starts with the manager (`podrunner run`); `[manager] history = false` turns it off",
            path.display()
        );
    }
    let rows = History::open_read_only(&path).and_then(|h| {
        h.list(&Filter {
            pool: args.pool.clone(),
            since_ms,
            failed_only: args.failed,
            limit: (args.limit > 0).then_some(args.limit),
        })
    })?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows).expect("json"));
    } else {
        print!("{}", render(&rows, now));
    }
    Ok(Exit::Success)
}

fn dur(a: Option<i64>, b: Option<i64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b >= a => format!("{:.1}s", (b - a) as f64 / 1000.0),
        _ => "-".into(),
    }
}

/// One line per runner.
pub fn render(rows: &[Entry], now_ms: i64) -> String {
    if rows.is_empty() {
        return "no runners match\n".into();
    }
    let mut out = format!(
        "{:<24} {:<10} {:>6} {:<10} {:<12} {:>8} {:>5}  {}\n",
        "RUNNER", "POOL", "AGO", "JOB", "RESULT", "RAN", "EXIT", "FAILURE"
    );
    for e in rows {
        let ago = super::age(((now_ms - e.created_ms).max(0) / 1000) as u64);
        let j = &e.job;
        let job = match (&j.name, j.ran, e.ended_ms) {
            (Some(n), _, _) => n.clone(),
            (None, Some(true), _) => "yes".into(),
            (None, Some(false), _) => "no".into(),
            (None, None, None) => "(running)".into(),
            (None, None, Some(_)) => "?".into(),
        };
        let result = j.result.clone().unwrap_or_else(|| "-".into());
        let exit = e.exit_code.map_or("-".into(), |c| c.to_string());
        let mut failure = e.failure.clone().unwrap_or_default();
        if e.oom && !failure.contains("memory") {
            failure = format!("OOM {failure}").trim().to_string();
        }
        if e.proxy_refusals > 0 {
            let n = e.proxy_refusals;
            failure = format!("{failure} (Docker proxy refused {n})")
                .trim()
                .to_string();
        }
        out.push_str(&format!(
            "{:<24} {:<10} {:>6} {:<10} {:<12} {:>8} {:>5}  {}\n",
            e.name,
            e.pool,
            ago,
            job,
            result,
            dur(j.started_ms, j.finished_ms),
            exit,
            failure
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::JobOutcome;

    #[test]
    fn table() {
        let e = Entry {
            pool: "ci".into(),
            name: "ci-0a1b2c3d".into(),
            runner_id: Some(1),
            container: None,
            image: None,
            image_id: None,
            created_ms: 1_000,
            started_ms: None,
            online_ms: None,
            job: JobOutcome {
                ran: Some(true),
                started_ms: Some(2_000),
                finished_ms: Some(4_500),
                ..Default::default()
            },
            ended_ms: Some(5_000),
            exit_code: Some(0),
            failure: None,
            oom: false,
            log_path: None,
            proxy_refusals: 0,
        };
        let mut f = e.clone();
        f.name = "ci-ffffffff".into();
        f.job = JobOutcome {
            ran: Some(false),
            ..Default::default()
        };
        f.exit_code = Some(3);
        f.failure = Some("exited with code 3".into());
        f.proxy_refusals = 2;
        let s = render(&[e, f], 61_000);
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(
            lines[1].split_whitespace().collect::<Vec<_>>(),
            ["ci-0a1b2c3d", "ci", "60s", "yes", "-", "2.5s", "0"]
        );
        assert!(
            lines[2].ends_with("    3  exited with code 3 (Docker proxy refused 2)"),
            "{}",
            lines[2]
        );
        assert_eq!(render(&[], 0), "no runners match\n");
    }
}

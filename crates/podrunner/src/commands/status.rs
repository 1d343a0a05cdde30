//! `podrunner status`: the manager, its pools and every runner; `--json` for scripts.
//! Without a running manager it lists the containers podman still has for this instance.

use super::exit::Exit;
use super::{age, Cli};
use crate::control::{self, ClientError, Request, StatusSnapshot};
use crate::podman::{labels, Podman};
use crate::systemd::service;
use serde_json::json;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print machine-readable JSON
    #[arg(long)]
    pub json: bool,
}

pub async fn exec(cli: &Cli, args: &Args) -> anyhow::Result<Exit> {
    crate::logging::init_cli(cli.log_level.as_deref());
    let cfg = cli.load_config()?;
    // The service's state first, when systemd runs the manager (or is meant to).
    let svc = service::detect().await;
    if let (Some(s), false) = (&svc, args.json) {
        println!("service: {}", s.describe());
    }
    match control::request(&cfg.control_socket(), &Request::Status).await {
        Ok(r) if r.ok && r.status.is_some() => {
            let s = r.status.expect("checked");
            if args.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(
                        &json!({"manager": "running", "service": svc, "status": s})
                    )
                    .expect("json")
                );
            } else {
                print!("{}", render(&s));
            }
            Ok(Exit::Success)
        }
        Ok(r) => anyhow::bail!("{}", r.error.unwrap_or_default()),
        Err(ClientError::NotRunning(_)) => {
            let podman = Podman::from_config(&cfg.podman);
            let left = podman
                .ps(labels::INSTANCE, cfg.manager.instance.as_str())
                .await;
            let containers: Vec<serde_json::Value> = left
                .as_ref()
                .map(|v| {
                    v.iter()
                        .map(|c| json!({"name": c.name(), "state": c.state, "pool": c.labels.get(labels::POOL)}))
                        .collect()
                })
                .unwrap_or_default();
            if args.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(
                        &json!({"manager": "not-running", "service": svc, "containers": containers})
                    )
                    .expect("json")
                );
            } else {
                println!(
                    "podrunner manager: not running (instance {})",
                    cfg.manager.instance
                );
                match left {
                    Ok(v) if v.is_empty() => println!("no runner containers"),
                    Ok(v) => {
                        println!(
                            "{} runner container(s) left; `podrunner run` adopts them:",
                            v.len()
                        );
                        for c in v {
                            println!("  {}  {}", c.name(), c.state);
                        }
                    }
                    Err(e) => println!("cannot list containers: {e}"),
                }
            }
            Ok(Exit::NotRunning)
        }
        Err(e) => Err(e.into()),
    }
}

/// The human-readable status: a header, one line per pool, a table of runners.
pub fn render(s: &StatusSnapshot) -> String {
    let mut out = String::new();
    let state = if s.draining { "draining" } else { "running" };
    out.push_str(&format!(
        "podrunner manager: {state} (pid {}, up {}, instance {})\n",
        s.pid,
        age(s.uptime_secs),
        s.instance
    ));
    let rl = &s.rate_limit;
    if let (Some(rem), Some(lim)) = (rl.remaining, rl.limit) {
        out.push_str(&format!(
            "GitHub API: {} calls made, rate limit {rem}/{lim} left\n",
            s.api_calls
        ));
    } else {
        out.push_str(&format!("GitHub API: {} calls made\n", s.api_calls));
    }
    for p in &s.pools {
        out.push_str(&format!(
            "pool {} ({}): {}/{} runners, {} jobs done",
            p.name, p.scope, p.live, p.desired, p.jobs_done
        ));
        if let Some(secs) = p.backing_off_secs {
            out.push_str(&format!(
                ", backing off {secs}s after {} failure(s)",
                p.failures
            ));
        }
        out.push('\n');
        if let Some(sc) = p.scaling.as_ref().filter(|sc| sc.mode != "fixed") {
            out.push_str(&format!("  {}\n", scaling_line(sc)));
        }
        if let Some(e) = &p.last_error {
            out.push_str(&format!("  last failure: {e}\n"));
        }
        if let Some(e) = &p.image_error {
            out.push_str(&format!("  image pull failed: {e}\n"));
        }
        if !p.recent.is_empty() {
            let last: Vec<String> = p
                .recent
                .iter()
                .rev()
                .take(5)
                .map(|j| match j.duration_secs {
                    Some(d) => format!("{} {} ({})", j.job, j.result.as_str(), age(d as u64)),
                    None => format!("{} {}", j.job, j.result.as_str()),
                })
                .collect();
            out.push_str(&format!("  last jobs: {}\n", last.join(", ")));
        }
    }
    let mut rows: Vec<[String; 7]> = vec![[
        "POOL".into(),
        "RUNNER".into(),
        "CONTAINER".into(),
        "STATE".into(),
        "DOCKER".into(),
        "AGE".into(),
        "JOB".into(),
    ]];
    for r in &s.runners {
        rows.push([
            r.pool.clone(),
            r.name.clone(),
            r.container.clone().unwrap_or_else(|| "-".into()),
            r.state.clone(),
            r.docker.clone().unwrap_or_else(|| "-".into()),
            age(r.age_secs),
            r.job.clone().unwrap_or_else(|| "-".into()),
        ]);
    }
    for p in &s.pools {
        if let Some(secs) = p.backing_off_secs {
            rows.push([
                p.name.clone(),
                "-".into(),
                "-".into(),
                "backing-off".into(),
                "-".into(),
                format!("next in {secs}s"),
                "-".into(),
            ]);
        }
    }
    let widths: Vec<usize> = (0..7)
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// One line about a demand pool: its mode and bounds, what GitHub reported, the result.
fn scaling_line(sc: &crate::control::ScalingStatus) -> String {
    let demand = match sc.mode.as_str() {
        "scale-set" => format!("{} assigned jobs", sc.assigned_jobs),
        _ => format!("{} queued jobs", sc.queued_jobs),
    };
    let mut line = format!(
        "{} (min_idle {}, max {}): {demand} -> desired {}, {} idle, {} busy",
        sc.mode, sc.min_idle, sc.max, sc.desired, sc.idle, sc.busy
    );
    if let Some(name) = &sc.scale_set {
        line.push_str(&format!("; scale set {name}"));
        if let Some(id) = sc.scale_set_id {
            line.push_str(&format!(" (id {id})"));
        }
        match (&sc.session_owner, sc.session_held) {
            (Some(o), true) => line.push_str(&format!(", session held by this host ({o})")),
            (Some(o), false) => line.push_str(&format!(", session held by {o}, waiting")),
            (None, _) => line.push_str(", no session"),
        }
    }
    if let Some(secs) = sc.reported_secs_ago {
        line.push_str(&format!("; GitHub reported {secs}s ago"));
    }
    if let Some(n) = &sc.note {
        line.push_str(&format!("\n  scaling: {n}"));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::{PoolStatus, RunnerStatus};

    #[test]
    fn renders_table() {
        let s = StatusSnapshot {
            pid: 42,
            instance: "default".into(),
            config: "/c".into(),
            uptime_secs: 65,
            draining: false,
            api_calls: 7,
            rate_limit: crate::github::RateLimit {
                limit: Some(5000),
                remaining: Some(4990),
                reset: None,
            },
            pools: vec![PoolStatus {
                name: "ci".into(),
                scope: "o/r".into(),
                desired: 2,
                live: 1,
                jobs_done: 3,
                failures: 2,
                backing_off_secs: Some(9),
                last_error: Some("runner ci-1 exited with code 3".into()),
                scaling: None,
                recent: vec![crate::core::JobRecord {
                    runner: "ci-0000000b".into(),
                    job: "build".into(),
                    result: crate::core::outcome::JobResult::Failed,
                    duration_secs: Some(75.0),
                }],
                image_error: None,
            }],
            runners: vec![RunnerStatus {
                pool: "ci".into(),
                name: "ci-0000000a".into(),
                runner_id: Some(1),
                container: Some("abcdef012345".into()),
                state: "idle".into(),
                age_secs: 30,
                adopted: false,
                docker: Some("engine".into()),
                job: Some("test".into()),
            }],
        };
        assert_eq!(
            render(&s),
            "podrunner manager: running (pid 42, up 65s, instance default)\n\
             GitHub API: 7 calls made, rate limit 4990/5000 left\n\
             pool ci (o/r): 1/2 runners, 3 jobs done, backing off 9s after 2 failure(s)\n  \
             last failure: runner ci-1 exited with code 3\n  \
             last jobs: build failed (75s)\n\
             POOL  RUNNER       CONTAINER     STATE        DOCKER  AGE         JOB\n\
             ci    ci-0000000a  abcdef012345  idle         engine  30s         test\n\
             ci    -            -             backing-off  -       next in 9s  -\n"
        );
    }

    #[test]
    fn renders_a_scale_set_pool() {
        let sc = crate::control::ScalingStatus {
            mode: "scale-set".into(),
            min_idle: 1,
            max: 4,
            assigned_jobs: 2,
            desired: 3,
            idle: 1,
            busy: 2,
            scale_set: Some("big".into()),
            scale_set_id: Some(7),
            session_owner: Some("hostb".into()),
            reported_secs_ago: Some(3),
            note: Some("409".into()),
            ..Default::default()
        };
        assert_eq!(
            scaling_line(&sc),
            "scale-set (min_idle 1, max 4): 2 assigned jobs -> desired 3, 1 idle, 2 busy; scale set big (id 7), session held by hostb, waiting; GitHub reported 3s ago\n  scaling: 409"
        );
        let l = crate::control::ScalingStatus {
            mode: "labels".into(),
            max: 2,
            queued_jobs: 5,
            desired: 2,
            ..Default::default()
        };
        assert_eq!(
            scaling_line(&l),
            "labels (min_idle 0, max 2): 5 queued jobs -> desired 2, 0 idle, 0 busy"
        );
    }
}

//! The status page: one HTML document rendered on the server, no script, refreshed by the
//! browser every [`REFRESH_SECS`]. Everything shown is escaped.

use super::{PageData, CHART_HOURS};
use crate::commands::age;
use std::fmt::Write;

/// The page reloads itself this often.
pub const REFRESH_SECS: u32 = 10;
const CHART_W: i64 = 720;
const CHART_H: i64 = 140;

/// HTML-escapes text for element content and quoted attributes.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

fn secs(ms: i64) -> String {
    let s = ms as f64 / 1000.0;
    if s < 120.0 {
        format!("{s:.1}s")
    } else {
        age(s as u64)
    }
}

fn time_of(ms: i64) -> String {
    humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64),
    )
    .to_string()
    .replace('T', " ")
    .trim_end_matches('Z')
    .to_string()
}

const STYLE: &str =
    "body{font:14px system-ui,sans-serif;margin:1.5em;color:#222;background:#fafafa}\
h1{font-size:20px;margin:0 0 .2em}h2{font-size:16px;margin:1.4em 0 .4em}\
table{border-collapse:collapse;background:#fff;min-width:40em}\
th,td{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}\
th{background:#eef}.meta{color:#555}.bad{color:#b00}.ok{color:#070}.warn{color:#a60}\
.reason{max-width:40em;font-size:12px}svg{background:#fff;border:1px solid #ddd}";

pub fn render(d: &PageData) -> String {
    let s = &d.status;
    let mut o = String::new();
    let _ = write!(
        o,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"{REFRESH_SECS}\">\
         <title>podrunner {}</title><style>{STYLE}</style></head><body>",
        esc(&s.instance)
    );
    let rate = match (s.rate_limit.remaining, s.rate_limit.limit) {
        (Some(r), Some(l)) => format!(", rate limit {r}/{l} left"),
        (Some(r), None) => format!(", rate limit {r} left"),
        _ => String::new(),
    };
    let _ = write!(
        o,
        "<h1>podrunner · {}</h1><p class=\"meta\" id=\"summary\">manager pid {}, up {}{}, {} GitHub API calls{}</p>",
        esc(&s.instance),
        s.pid,
        age(s.uptime_secs),
        if s.draining { ", <b class=\"warn\">draining</b>" } else { "" },
        s.api_calls,
        esc(&rate)
    );

    o.push_str("<h2>Pools</h2><table id=\"pools\"><tr><th>pool</th><th>scope</th><th>state</th><th>desired</th><th>live</th><th>idle</th><th>busy</th><th>jobs done</th><th>failures in a row</th><th>reason</th></tr>");
    for p in &s.pools {
        let n = |st: &str| {
            s.runners
                .iter()
                .filter(|r| r.pool == p.name && r.state == st)
                .count()
        };
        let state = match (p.backing_off_secs, p.failures, &p.last_error) {
            (Some(b), _, _) => format!("<span class=\"bad\">backing off ({b}s)</span>"),
            (None, f, _) if f > 0 => "<span class=\"warn\">probing</span>".into(),
            (_, _, Some(_)) => "<span class=\"warn\">warning</span>".into(),
            _ => "<span class=\"ok\">ok</span>".into(),
        };
        let _ = write!(
            o,
            "<tr><td>{}</td><td>{}</td><td>{state}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"reason\">{}</td></tr>",
            esc(&p.name),
            esc(&p.scope),
            p.desired,
            p.live,
            n("idle"),
            n("busy"),
            p.jobs_done,
            p.failures,
            esc(p.last_error.as_deref().unwrap_or(""))
        );
    }
    o.push_str("</table>");

    let _ = write!(
        o,
        "<h2>Runners ({})</h2><table id=\"runners\"><tr><th>runner</th><th>pool</th><th>state</th><th>id</th><th>container</th><th>age</th><th>docker</th></tr>",
        s.runners.len()
    );
    for r in &s.runners {
        let _ = write!(
            o,
            "<tr><td>{}</td><td>{}</td><td>{}{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&r.name),
            esc(&r.pool),
            esc(&r.state),
            if r.adopted { " (adopted)" } else { "" },
            r.runner_id.map(|i| i.to_string()).unwrap_or_default(),
            esc(r.container.as_deref().unwrap_or("")),
            age(r.age_secs),
            esc(r.docker.as_deref().unwrap_or(""))
        );
    }
    o.push_str("</table>");

    let _ = write!(
        o,
        "<h2>Jobs per hour, last {CHART_HOURS} h</h2>{}",
        chart(d)
    );

    o.push_str("<h2>Last runners and jobs</h2>");
    if let Some(n) = &d.history_note {
        let _ = write!(o, "<p class=\"meta\">{}</p>", esc(n));
    }
    o.push_str("<table id=\"jobs\"><tr><th>created</th><th>runner</th><th>pool</th><th>job</th><th>result</th><th>queued → started</th><th>ran for</th><th>exit</th><th>failure</th></tr>");
    for e in &d.jobs {
        let j = &e.job;
        let job = match (&j.name, j.ran) {
            (Some(n), _) => esc(n),
            (None, Some(true)) => "(a job)".into(),
            (None, Some(false)) => "none".into(),
            (None, None) if e.ended_ms.is_none() => "…".into(),
            (None, None) => "?".into(),
        };
        let result = match (&j.result, j.ran) {
            (Some(r), _) => esc(r),
            (None, Some(true)) => "ran".into(),
            _ => String::new(),
        };
        let span = |a: Option<i64>, b: Option<i64>| match (a, b) {
            (Some(a), Some(b)) => secs((b - a).max(0)),
            _ => String::new(),
        };
        let class = if e.failed() { " class=\"bad\"" } else { "" };
        let _ = write!(
            o,
            "<tr{class}><td>{}</td><td>{}</td><td>{}</td><td>{job}</td><td>{result}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"reason\">{}{}</td></tr>",
            time_of(e.created_ms),
            esc(&e.name),
            esc(&e.pool),
            span(j.queued_ms, j.started_ms),
            span(j.started_ms, j.finished_ms),
            e.exit_code.map(|c| c.to_string()).unwrap_or_default(),
            if e.oom { "OOM; " } else { "" },
            esc(e.failure.as_deref().unwrap_or(""))
        );
    }
    let _ = write!(
        o,
        "</table><p class=\"meta\">read-only; refreshes every {REFRESH_SECS} s · <a href=\"/metrics\">metrics</a> · <a href=\"/api/status\">JSON</a></p></body></html>"
    );
    o
}

/// Bars of jobs per hour (failed ones red on top) and a line of the mean queue-to-start
/// latency where it is known, as inline SVG.
fn chart(d: &PageData) -> String {
    let hour = 3_600_000;
    let first = (d.now_ms / hour - CHART_HOURS + 1) * hour;
    let max_jobs = d.hours.iter().map(|h| h.jobs).max().unwrap_or(0).max(1) as i64;
    let max_lat = d
        .hours
        .iter()
        .filter_map(|h| h.mean_startup_secs)
        .fold(0.0f64, f64::max)
        .max(1.0);
    let bw = CHART_W / CHART_HOURS;
    let plot_h = CHART_H - 20;
    let mut o = format!(
        "<svg id=\"chart\" width=\"{CHART_W}\" height=\"{CHART_H}\" viewBox=\"0 0 {CHART_W} {CHART_H}\" xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" aria-label=\"jobs per hour\">"
    );
    let mut points = Vec::new();
    for h in &d.hours {
        let i = (h.hour_ms - first) / hour;
        if !(0..CHART_HOURS).contains(&i) {
            continue;
        }
        let x = i * bw + 2;
        let total = h.jobs as i64 * plot_h / max_jobs;
        let failed = h.failed as i64 * plot_h / max_jobs;
        let _ = write!(
            o,
            "<rect class=\"bar\" x=\"{x}\" y=\"{}\" width=\"{}\" height=\"{total}\" fill=\"#4a7\"><title>{} jobs, {} failed</title></rect>",
            plot_h - total,
            bw - 4,
            h.jobs,
            h.failed
        );
        if failed > 0 {
            let _ = write!(
                o,
                "<rect x=\"{x}\" y=\"{}\" width=\"{}\" height=\"{failed}\" fill=\"#c44\"/>",
                plot_h - total,
                bw - 4
            );
        }
        if let Some(l) = h.mean_startup_secs {
            let y = plot_h - (l / max_lat * plot_h as f64) as i64;
            points.push(format!("{},{y}", x + bw / 2));
        }
    }
    if !points.is_empty() {
        let _ = write!(
            o,
            "<polyline points=\"{}\" fill=\"none\" stroke=\"#36c\" stroke-width=\"2\"/>",
            points.join(" ")
        );
    }
    let latency = if points.is_empty() {
        "queue-to-start: no queue times known".to_string()
    } else {
        format!("queue-to-start (blue): up to {max_lat:.1}s")
    };
    let _ = write!(
        o,
        "<text x=\"4\" y=\"{}\" font-size=\"11\" fill=\"#555\">max {max_jobs} jobs/h · now at the right · {}</text></svg>",
        CHART_H - 5,
        esc(&latency)
    );
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::{PoolStatus, RunnerStatus, StatusSnapshot};
    use crate::history::{Entry, Hour, JobOutcome};

    fn data() -> PageData {
        let now = 100 * 3_600_000 + 1_000;
        PageData {
            status: StatusSnapshot {
                pid: 7,
                instance: "default".into(),
                config: "/c.toml".into(),
                uptime_secs: 90,
                draining: false,
                api_calls: 12,
                rate_limit: Default::default(),
                pools: vec![PoolStatus {
                    recent: vec![],
                    image_error: None,
                    scaling: None,
                    name: "ci".into(),
                    scope: "repos/o/r".into(),
                    desired: 2,
                    live: 2,
                    jobs_done: 3,
                    failures: 1,
                    backing_off_secs: Some(5),
                    last_error: Some("runner ci-1 exited with code 3: <b>x</b>".into()),
                }],
                runners: vec![RunnerStatus {
                    job: None,
                    pool: "ci".into(),
                    name: "ci-2".into(),
                    runner_id: Some(4),
                    container: Some("abc".into()),
                    state: "busy".into(),
                    age_secs: 30,
                    adopted: false,
                    docker: None,
                }],
            },
            jobs: vec![Entry {
                pool: "ci".into(),
                name: "ci-1".into(),
                runner_id: Some(3),
                container: None,
                image: None,
                image_id: None,
                created_ms: now - 20_000,
                started_ms: None,
                online_ms: None,
                job: JobOutcome {
                    ran: Some(true),
                    started_ms: Some(now - 10_000),
                    finished_ms: Some(now - 4_500),
                    ..Default::default()
                },
                ended_ms: Some(now - 4_000),
                exit_code: Some(0),
                failure: None,
                oom: false,
                log_path: None,
                proxy_refusals: 0,
            }],
            hours: vec![
                Hour {
                    hour_ms: 100 * 3_600_000,
                    jobs: 4,
                    failed: 1,
                    mean_startup_secs: Some(2.0),
                },
                Hour {
                    hour_ms: 99 * 3_600_000,
                    jobs: 2,
                    failed: 0,
                    mean_startup_secs: None,
                },
            ],
            history_note: None,
            now_ms: now,
        }
    }

    #[test]
    fn page_shows_pools_runners_jobs_and_escapes() {
        let html = render(&data());
        assert!(html.contains("<meta http-equiv=\"refresh\" content=\"10\">"));
        assert!(html.contains("backing off (5s)"));
        assert!(html.contains("exited with code 3: &lt;b&gt;x&lt;/b&gt;"));
        assert!(!html.contains("<b>x</b>"));
        assert!(html.contains("<td>ci-2</td><td>ci</td><td>busy</td><td>4</td>"));
        assert!(html.contains("<td>(a job)</td><td>ran</td><td></td><td>5.5s</td><td>0</td>"));
        // Two bars: 4 jobs at the right edge, 2 the hour before; one latency point.
        assert_eq!(html.matches("class=\"bar\"").count(), 2);
        assert!(html.contains("<title>4 jobs, 1 failed</title>"));
        assert!(html.contains("<polyline points=\"707,0\""));
        assert!(html.contains("queue-to-start (blue): up to 2.0s"));
        assert!(!html.contains("<script"));
    }

    #[test]
    fn escaping() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}

//! The control socket: status snapshots, requests (drain, scale, reload) and the socket's
//! listener.

use super::*;
use std::sync::Arc;

/// Why `reload` (SIGHUP or the control request) kept the running config.
#[derive(Debug, thiserror::Error)]
pub(super) enum ReloadError {
    #[error("the new config is invalid, the old one stays in force:\n{0}")]
    Invalid(config::ConfigError),
    #[error("[github] credentials, api_url and [manager] settings change only with a restart (`podrunner restart`)")]
    NeedsRestart,
    #[error("{0}")]
    Folders(anyhow::Error),
}

impl Manager {
    pub fn snapshot(&self) -> StatusSnapshot {
        let now = Instant::now();
        let pools = self
            .specs
            .iter()
            .map(|s| {
                let ps = self.state.pools.get(&s.name).cloned().unwrap_or_default();
                let backing_off_secs = ps.backing_off(now).map(|d| d.as_secs());
                PoolStatus {
                    name: s.name.to_string(),
                    scope: s.scope.to_string(),
                    desired: if self.state.draining { 0 } else { s.desired },
                    live: self.state.live_count(&s.name),
                    jobs_done: ps.jobs_done,
                    failures: ps.failures,
                    backing_off_secs,
                    last_error: ps.last_error,
                    scaling: Some(self.scaling_status(s, now)),
                    recent: ps.recent.iter().cloned().collect(),
                    image_error: ps.image.last_error.clone(),
                }
            })
            .collect();
        let runners = self
            .state
            .runners
            .values()
            .map(|r| RunnerStatus {
                pool: crate::core::pool_label(r.pool.as_ref()).to_string(),
                name: r.name.clone(),
                runner_id: r.runner_id,
                container: r
                    .container_id
                    .as_ref()
                    .map(|c| c[..c.len().min(12)].to_string()),
                state: r.display_state().to_string(),
                age_secs: now.duration_since(r.created).as_secs(),
                adopted: r.adopted,
                docker: self
                    .ctx
                    .cfg
                    .pool(crate::core::pool_label(r.pool.as_ref()))
                    .map(|p| crate::engine::service::docker_state(&self.ctx.cfg, p, &r.name)),
                job: r.outcome.job.clone(),
            })
            .collect();
        StatusSnapshot {
            pid: std::process::id(),
            instance: self.ctx.cfg.manager.instance.to_string(),
            config: self.ctx.cfg.path.display().to_string(),
            uptime_secs: self.started.elapsed().as_secs(),
            draining: self.state.draining,
            api_calls: self.ctx.gh.calls(),
            rate_limit: self.ctx.gh.rate_limit(),
            pools,
            runners,
        }
    }

    pub(super) fn scaling_status(
        &self,
        s: &PoolSpec,
        now: Instant,
    ) -> crate::control::ScalingStatus {
        let p = self.ctx.cfg.pool(s.name.as_str());
        let sc = self
            .scaling
            .get(s.name.as_str())
            .cloned()
            .unwrap_or_default();
        crate::control::ScalingStatus {
            mode: p.map_or("fixed", |p| p.mode.as_str()).to_string(),
            min_idle: p.map_or(0, |p| p.min_idle),
            max: p.map_or(0, |p| p.max),
            assigned_jobs: sc.demand.assigned,
            queued_jobs: sc.demand.queued,
            desired: if self.state.draining { 0 } else { s.desired },
            idle: self.state.count_running(&s.name, false),
            busy: self.state.count_running(&s.name, true),
            scale_set: p.and_then(|p| p.scale_set.clone()),
            scale_set_id: sc.scale_set_id,
            session_owner: sc.session_owner,
            session_held: sc.session_held,
            github: sc.statistics.and_then(|st| serde_json::to_value(st).ok()),
            reported_secs_ago: sc.reported_at.map(|t| now.duration_since(t).as_secs()),
            note: sc.note,
        }
    }

    pub(super) fn handle(&mut self, req: Request) -> Response {
        match req {
            Request::Status => {
                // Fresh busy flags for whoever asks, within the sweep's rate bound.
                self.state.sweep_wanted = true;
                Response {
                    ok: true,
                    error: None,
                    message: None,
                    status: Some(self.snapshot()),
                }
            }
            Request::Drain => {
                self.begin_drain("a stop request");
                Response::ok(
                    "draining: idle runners are being removed; busy runners finish their job first",
                )
            }
            Request::Scale { pool, count } => {
                if self.ctx.cfg.pool(&pool).is_none() {
                    let known: Vec<String> = self
                        .ctx
                        .cfg
                        .pools
                        .iter()
                        .map(|p| p.name.to_string())
                        .collect();
                    return Response::err(format!(
                        "no pool named {pool:?}; pools: {}",
                        known.join(", ")
                    ));
                }
                if self.state.draining {
                    return Response::err("the manager is draining; scaling is refused");
                }
                self.overrides.insert(pool.clone(), count);
                tracing::info!(pool = %pool, "scaled to {count} runners");
                Response::ok(format!("pool {pool} scaled to {count}"))
            }
            Request::Reload => match self.reload() {
                Ok(msg) => Response::ok(msg),
                Err(e) => Response::err(e.to_string()),
            },
        }
    }

    pub(super) fn reload(&mut self) -> Result<String, ReloadError> {
        let path = self.ctx.cfg.path.clone();
        let new = Config::load(&path, &config::Env::from_process()).map_err(|e| {
            tracing::error!("reload refused, keeping the running config: {e}");
            ReloadError::Invalid(e)
        })?;
        if new.github.api_url != self.ctx.cfg.github.api_url
            || new.github.app != self.ctx.cfg.github.app
            || new.manager.instance != self.ctx.cfg.manager.instance
            || new.manager.listen != self.ctx.cfg.manager.listen
            || new.manager.history != self.ctx.cfg.manager.history
        {
            return Err(ReloadError::NeedsRestart);
        }
        prepare_dirs(&new).map_err(ReloadError::Folders)?;
        self.overrides.clear();
        let n = new.pools.len();
        self.ctx.cfg = Arc::new(new);
        tracing::info!("config reloaded from {}: {n} pools", path.display());
        Ok(format!("config reloaded: {n} pools"))
    }

    pub(super) fn begin_drain(&mut self, why: &str) {
        if !self.state.draining {
            tracing::info!(
                "draining ({why}): no replacements; idle runners are removed, busy runners finish (up to {})",
                humantime::format_duration(self.ctx.cfg.manager.drain_timeout)
            );
        }
        self.state
            .start_drain(Instant::now(), self.ctx.cfg.manager.drain_timeout);
    }
}

pub(super) async fn bind_control(path: &PathBuf) -> anyhow::Result<tokio::net::UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    if path.exists() {
        match tokio::net::UnixStream::connect(path).await {
            Ok(_) => anyhow::bail!(
                "another podrunner manager is already running (its control socket {} answers)\n  fix: stop it with `podrunner stop`, or give this one its own [manager] instance name",
                path.display()
            ),
            Err(_) => {
                std::fs::remove_file(path)?;
            }
        }
    }
    let l = tokio::net::UnixListener::bind(path)
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(l)
}

pub(super) async fn serve_control(
    listener: tokio::net::UnixListener,
    tx: mpsc::Sender<(Request, oneshot::Sender<Response>)>,
    open: Arc<()>,
) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let tx = tx.clone();
        // Held until the answer is written: the manager waits for these before it exits.
        let open = open.clone();
        tokio::spawn(async move {
            let _open = open;
            let (r, mut w) = stream.into_split();
            let mut line = String::new();
            let mut reader = tokio::io::BufReader::new(r.take(control::MAX_REQUEST_BYTES as u64));
            if reader.read_line(&mut line).await.is_err() {
                return;
            }
            let resp = match control::parse_request(&line) {
                Err(e) => Response::err(e.to_string()),
                Ok(req) => {
                    let (otx, orx) = oneshot::channel();
                    if tx.send((req, otx)).await.is_err() {
                        return;
                    }
                    orx.await
                        .unwrap_or_else(|_| Response::err("the manager is shutting down"))
                }
            };
            if let Err(e) = w
                .write_all(control::encode_response(&resp).as_bytes())
                .await
            {
                tracing::debug!("a control client left before its answer: {e}");
            }
        });
    }
}

/// How long an exiting manager waits for control connections to get their answers. The last
/// `stop`'s answer is sent as the drain ends; without this wait the process could exit before
/// the connection's task wrote it, and `podrunner stop` would see no answer. A client that
/// connected and never sent a line only delays the exit by this much.
const ANSWER_FLUSH_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Waits (bounded) until every control connection has written its answer.
pub(super) async fn flush_answers(open: &Arc<()>) {
    let deadline = tokio::time::Instant::now() + ANSWER_FLUSH_WAIT;
    while Arc::strong_count(open) > 1 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

//! Executes the core's actions against GitHub and Podman. Each action runs as its own task and
//! reports one [`Outcome`] back to the manager's loop; no task touches the core state.

use super::Outcome;
use crate::config::names::{PoolName, Scope};
use crate::config::{Config, PoolConfig};
use crate::core::{CleanupOutcome, ContainerSeen, RegistrationSeen, RetireOutcome};
use crate::github::{self, Client};
use crate::podman::{labels, Podman, RunSpec};
use crate::runner::{self, logs, Limits, Paths};
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::mpsc::UnboundedSender;

/// What every task needs.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub cfg: Arc<Config>,
    pub gh: Arc<Client>,
    pub podman: Arc<Podman>,
    pub tx: UnboundedSender<Outcome>,
    /// Bounds how many runners start at once (see [`MAX_CONCURRENT_STARTS`]).
    pub start_slots: Arc<tokio::sync::Semaphore>,
    /// Scale set clients of the scale set pools (manager/scaleset.rs).
    pub scale_sets: Arc<super::scaleset::Registry>,
}

/// Runners started at the same time. Each `podman run` costs about 0.15 s of CPU here; beyond
/// a few at once a small host only queues them in the kernel, and the manager's own answers
/// (status, events) wait behind 50 podman processes. Four keeps a 2-core host responsive
/// while a pool of 50 fills in seconds.
pub const MAX_CONCURRENT_STARTS: usize = 4;

fn mkdir_mode(p: &Path, mode: u32) -> std::io::Result<()> {
    std::fs::create_dir_all(p)?;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
}

impl Ctx {
    fn send(&self, o: Outcome) {
        let _ = self.tx.send(o);
    }

    pub fn labels_for(
        &self,
        pool: &PoolConfig,
        name: &str,
        runner_id: u64,
    ) -> BTreeMap<String, String> {
        [
            (labels::MANAGED, "true".to_string()),
            (labels::INSTANCE, self.cfg.manager.instance.to_string()),
            (labels::POOL, pool.name.to_string()),
            (labels::RUNNER_ID, runner_id.to_string()),
            (labels::RUNNER_NAME, name.to_string()),
            (labels::SCOPE, pool.scope.api_path()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// Registers a JIT runner and starts its container.
    pub async fn start(self, pool: PoolConfig, name: String) {
        // The registration is made only when a start slot is free, so it never waits long
        // for its container.
        let slots = self.start_slots.clone();
        let slot = slots.acquire().await;
        let work = runner::paths::work_dir(&pool, &name);
        let work_s = work.display().to_string();
        let jit = if pool.scale_set.is_some() {
            self.scale_sets
                .jit(pool.name.as_str(), &name, &work_s)
                .await
        } else {
            // A group by name is looked up once per scope and name, then remembered.
            let group = match &pool.runner_group {
                Some(g) => self.gh.runner_group_id(&pool.scope, g).await,
                None => Ok(pool.runner_group_id),
            };
            match group {
                Ok(group) => {
                    self.gh
                        .generate_jitconfig(&pool.scope, &name, group, &pool.labels, Some(&work_s))
                        .await
                }
                Err(e) => Err(e),
            }
        };
        let jit = match jit {
            Ok(j) => j,
            Err(e) => {
                let conflict = matches!(e, github::Error::Conflict(_));
                tracing::warn!(pool = %pool.name, "cannot register runner {name}: {e}");
                return self.send(Outcome::StartFailed {
                    name,
                    why: e.to_string(),
                    failure: !conflict,
                    registration_left: false,
                });
            }
        };
        let runner_id = jit.runner.id;
        self.send(Outcome::Registered {
            name: name.clone(),
            runner_id,
        });

        let paths = Paths::of(&self.cfg, &name);
        let prepared = (|| -> std::io::Result<()> {
            mkdir_mode(&pool.work_dir, 0o700)?;
            mkdir_mode(&work, 0o777)?;
            std::fs::create_dir_all(runner::paths::logs_dir(&self.cfg))?;
            std::fs::create_dir_all(runner::paths::pids_dir(&self.cfg.manager.state_dir))?;
            runner::jit::write_secret(&paths.secrets, &jit.encoded)
        })();
        drop(jit);
        let result = match prepared {
            Err(e) => Err(format!("cannot prepare folders for runner {name}: {e}")),
            Ok(()) => {
                let docker =
                    crate::engine::service::prepare(&self.cfg, &pool, &name, &self.podman).await;
                let spec = RunSpec {
                    name: name.clone(),
                    image: pool.image.clone(),
                    command: pool.command.clone(),
                    runner_dir: pool.runner_dir.clone(),
                    labels: self.labels_for(&pool, &name, runner_id),
                    limits: Limits::of(&pool),
                    stop_timeout_secs: pool.stop_timeout.as_secs(),
                    secret_dir: paths.secrets.clone(),
                    work_dir: work.clone(),
                    log_path: paths.log.clone(),
                    container_pidfile: Some(paths.pidfile.clone()),
                    extra_args: self
                        .cfg
                        .podman
                        .run_args
                        .iter()
                        .chain(pool.run_args.iter())
                        .chain(docker.as_deref().unwrap_or_default())
                        .cloned()
                        .collect(),
                };
                match docker {
                    Err(why) => Err(format!("cannot set up docker for runner {name}: {why}")),
                    Ok(_) => self
                        .podman
                        .run(&spec)
                        .await
                        .map_err(|e| explain_run_error(&e.to_string(), &pool.image)),
                }
            }
        };
        drop(slot);
        match result {
            Ok(cid) => {
                tracing::info!(pool = %pool.name, "runner {name} started (id {runner_id}, container {})", short(&cid));
                self.send(Outcome::Started {
                    name: name.clone(),
                    container_id: cid,
                });
                // Report the container's end as soon as its process is gone.
                super::watch::watch_container(paths.pidfile, paths.log, name, self.tx.clone())
                    .await;
            }
            Err(why) => {
                tracing::error!(pool = %pool.name, "cannot start runner {name}: {why}");
                // A `podman run` that failed late or timed out may have left a container.
                if let Err(e) = self.podman.rm_force(&name).await {
                    tracing::warn!("cannot remove what is left of runner {name}'s container: {e}");
                }
                for dir in [&paths.secrets, &work] {
                    if let Err(e) = remove_tree(dir) {
                        tracing::warn!("cannot remove {}: {e}", dir.display());
                    }
                }
                for e in crate::engine::service::teardown(&self.cfg, &self.podman, &name).await {
                    tracing::warn!("engine of runner {name}: {e}");
                }
                // The registration exists from the JIT call on: delete it now.
                let left = match self.gh.delete_runner(&pool.scope, runner_id).await {
                    Ok(_) => false,
                    Err(e) => {
                        tracing::warn!(
                            "cannot delete registration {runner_id} of {name}: {e}; will retry"
                        );
                        true
                    }
                };
                self.send(Outcome::StartFailed {
                    name,
                    why,
                    failure: true,
                    registration_left: left,
                });
            }
        }
    }

    /// Deletes the registration (refused while a job runs), then stops the container.
    pub async fn retire(
        self,
        scope: Option<Scope>,
        stop_timeout_secs: u64,
        name: String,
        runner_id: Option<u64>,
    ) {
        if let (Some(id), Some(scope)) = (runner_id, &scope) {
            match self.gh.delete_runner(scope, id).await {
                Ok(_) => {}
                Err(github::Error::StillBusy(_)) => {
                    tracing::info!("runner {name} is running a job; leaving it to finish");
                    return self.send(Outcome::Retired {
                        name,
                        outcome: RetireOutcome::Busy,
                    });
                }
                Err(e) => {
                    tracing::warn!("cannot deregister runner {name}: {e}");
                    return self.send(Outcome::Retired {
                        name,
                        outcome: RetireOutcome::Failed,
                    });
                }
            }
        }
        tracing::info!("runner {name} deregistered; stopping its container");
        match self.podman.stop(&name, stop_timeout_secs).await {
            Ok(()) => {}
            // A `--rm` container that ended meanwhile: nothing left to stop.
            Err(e) if already_gone(&e) => {
                tracing::debug!("runner {name}'s container was already gone: {e}")
            }
            // Its registration is gone, so the runner exits by itself; the exit is still seen.
            Err(e) => tracing::warn!("stopping {name} failed: {e}"),
        }
        self.send(Outcome::Retired {
            name,
            outcome: RetireOutcome::Stopped,
        });
    }

    /// Stops a container whatever it is doing (drain timeout reached).
    pub async fn force_stop(self, name: String, timeout_secs: u64) {
        tracing::warn!("drain timeout reached: stopping runner {name}, cancelling its job");
        let ok = match self.podman.stop(&name, timeout_secs).await {
            Ok(()) => true,
            Err(e) if already_gone(&e) => true,
            Err(e) => {
                tracing::warn!("stopping {name} failed: {e}");
                false
            }
        };
        self.send(Outcome::ForceStopped { name, ok });
    }

    /// Removes everything made for a runner: secret folder, work folder, a leftover container,
    /// and its registration when `delete_id` is set. Tries every step and reports all failures.
    pub async fn cleanup(
        self,
        scope: Option<Scope>,
        pool: Option<PoolName>,
        name: String,
        delete_id: Option<u64>,
        remove_container: bool,
    ) {
        let mut errors: Vec<String> = Vec::new();
        let paths = Paths::of(&self.cfg, &name);
        let last_line = logs::last_log_line(&paths.log);
        if let Err(e) = remove_tree(&paths.secrets) {
            errors.push(format!("secret folder {}: {e}", paths.secrets.display()));
        }
        // Usually already gone (the exit watch removes it); not for adopted runners.
        match std::fs::remove_file(&paths.pidfile) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                errors.push(format!("pid file {}: {e}", paths.pidfile.display()))
            }
            _ => {}
        }
        if remove_container {
            if let Err(e) = self.podman.rm_force(&name).await {
                errors.push(format!("container: {e}"));
            }
        }
        // The runner's docker engine, once its container is gone (docs/docker.md).
        errors.extend(
            crate::engine::service::teardown(&self.cfg, &self.podman, &name)
                .await
                .iter()
                .map(ToString::to_string),
        );
        // The pool its record names (one that left the config kept no work folder here).
        if let Some(pool) = pool.and_then(|p| self.cfg.pool(p.as_str())) {
            let work = runner::paths::work_dir(pool, &name);
            if let Err(e) = remove_tree(&work) {
                // Files a rootless job created belong to subordinate ids: remove them inside
                // the user namespace.
                if let Err(e2) = self.podman.unshare_remove(&work).await {
                    errors.push(format!(
                        "work folder {}: {e}; podman unshare: {e2}",
                        work.display()
                    ));
                }
            }
        }
        let mut outcome = CleanupOutcome::Done;
        if let (Some(id), Some(scope)) = (delete_id, scope) {
            match self.gh.delete_runner(&scope, id).await {
                Ok(true) => tracing::info!("deleted the registration of runner {name} (id {id})"),
                Ok(false) => {}
                Err(github::Error::StillBusy(_)) => outcome = CleanupOutcome::Busy,
                Err(e) => errors.push(format!("registration {id}: {e}")),
            }
        }
        if !errors.is_empty() {
            tracing::warn!(
                "cleanup of runner {name} incomplete, will retry: {}",
                errors.join("; ")
            );
            outcome = CleanupOutcome::Failed;
        }
        logs::prune_logs(&runner::paths::logs_dir(&self.cfg), logs::KEPT_LOGS);
        self.send(Outcome::Cleaned {
            name,
            outcome,
            last_line,
        });
    }

    pub async fn delete_orphan(self, scope: Scope, id: u64) {
        let gone = match self.gh.delete_runner(&scope, id).await {
            Ok(deleted) => {
                if deleted {
                    tracing::info!("deleted orphaned registration {id} in {scope} (no container)");
                }
                true
            }
            Err(github::Error::StillBusy(_)) => false,
            Err(e) => {
                tracing::warn!("cannot delete orphaned registration {id}: {e}");
                false
            }
        };
        self.send(Outcome::OrphanDone { id, gone });
    }

    /// Lists GitHub's runners of every scope the pools use.
    pub async fn sweep(self, scopes: Vec<Scope>) {
        let mut lists = Vec::new();
        for scope in scopes {
            match self.gh.list_runners(&scope).await {
                Ok(rs) => lists.push((
                    scope,
                    Some(
                        rs.into_iter()
                            .map(|r| RegistrationSeen {
                                id: r.id,
                                online: r.status == "online",
                                busy: r.busy,
                                name: r.name,
                            })
                            .collect(),
                    ),
                )),
                Err(e) => {
                    tracing::warn!("cannot list runners of {scope}: {e}");
                    self.send(Outcome::SweepFailed {
                        scope: scope.clone(),
                        why: e.to_string(),
                    });
                    lists.push((scope, None));
                }
            }
        }
        self.send(Outcome::Swept(lists));
    }

    /// Pulls the pool's image (docs/images.md): at start only when it is missing; otherwise
    /// always, from `pull_source` when set (then tagged as the image). Runners started later
    /// use the new image; running ones keep theirs. Reports the replaced image's id.
    pub async fn pull_image(self, pool: PoolConfig, reason: crate::core::pull::PullReason) {
        let image = pool.image.clone();
        let result = async {
            let old = self.podman.image_id(&image).await?;
            if reason == crate::core::pull::PullReason::Start && old.is_some() {
                return Ok(None);
            }
            let source = pool.pull_source.as_deref().unwrap_or(&image);
            tracing::info!(pool = %pool.name, "pulling {source} ({reason:?})");
            let new = self.podman.pull(source).await?;
            if pool.pull_source.is_some() {
                self.podman.tag(&new, &image).await?;
            }
            let now = self.podman.image_id(&image).await?;
            Ok::<_, crate::cmd::CommandError>(match (old, now) {
                (Some(o), Some(n)) if o != n => {
                    tracing::info!(pool = %pool.name, "new image for {image}: {}; runners started from now on use it", short(&n));
                    Some(o)
                }
                (None, Some(n)) => {
                    tracing::info!(pool = %pool.name, "pulled {image}: {}", short(&n));
                    Some(String::new())
                }
                _ => None,
            })
        }
        .await;
        if let Err(e) = &result {
            tracing::warn!(pool = %pool.name, "cannot pull {image}: {e}");
        }
        self.send(Outcome::Pulled {
            pool: pool.name.clone(),
            result,
        });
    }

    /// Removes an old image once no container uses it (Podman refuses while one does).
    pub async fn prune_image(self, id: String) {
        let gone = match self.podman.image_rm(&id).await {
            Ok(()) => {
                tracing::info!("removed the old image {}", short(&id));
                true
            }
            Err(e) => {
                tracing::debug!("old image {} stays for now: {e}", short(&id));
                false
            }
        };
        self.send(Outcome::Pruned { id, gone });
    }

    pub async fn resync(self) {
        let r = self
            .podman
            .ps(labels::INSTANCE, self.cfg.manager.instance.as_str())
            .await;
        self.send(Outcome::Resynced(
            r.map(|v| v.iter().map(container_seen).collect()),
        ));
    }
}

/// Removes secret and work folders of the pools' runners that the state does not know (left by
/// a manager that was killed between writing them and its container starting).
pub async fn remove_stale_folders(
    ctx: &Ctx,
    state: &crate::core::State,
    specs: &[crate::core::PoolSpec],
) {
    let secrets = runner::paths::secrets_root(&ctx.cfg);
    let mut dirs: Vec<PathBuf> = state
        .stale_folders(&entries(&secrets), specs)
        .into_iter()
        .map(|n| secrets.join(n))
        .collect();
    for pool in &ctx.cfg.pools {
        dirs.extend(
            state
                .stale_folders(&entries(&pool.work_dir), specs)
                .into_iter()
                .map(|n| pool.work_dir.join(n)),
        );
    }
    for d in dirs {
        tracing::info!("removing {}: no runner uses it any more", d.display());
        if let Err(e) = remove_tree(&d) {
            if let Err(e2) = ctx.podman.unshare_remove(&d).await {
                tracing::warn!("cannot remove {}: {e}; podman unshare: {e2}", d.display());
            }
        }
    }
}

pub fn container_seen(p: &crate::podman::PsEntry) -> ContainerSeen {
    ContainerSeen {
        name: p
            .labels
            .get(labels::RUNNER_NAME)
            .cloned()
            .unwrap_or_else(|| p.name().to_string()),
        id: p.id.clone(),
        // A label that is no valid pool name (edited by hand, or missing) reads as no pool:
        // the runner then belongs to no configured pool (core's `RunnerRec::pool`).
        pool: p
            .labels
            .get(labels::POOL)
            .and_then(|s| PoolName::new(s.as_str()).ok()),
        // The label is ours, written from a checked scope; one edited by hand reads as none.
        scope: p
            .labels
            .get(labels::SCOPE)
            .and_then(|s| Scope::from_api_path(s)),
        runner_id: p.labels.get(labels::RUNNER_ID).and_then(|s| s.parse().ok()),
        alive: p.is_alive(),
        exit_code: (!p.is_alive()).then_some(p.exit_code),
    }
}

/// Podman's answer when `stop --ignore` races the removal of a `--rm` container that just
/// ended: exit 125, "no container with name or ID ... found" or "... does not exist in
/// database". `--ignore` covers a container that is missing when podman looks it up, not
/// one removed while podman holds it, so the race still fails; the container is gone either
/// way.
pub fn already_gone(e: &crate::cmd::CommandError) -> bool {
    match e {
        crate::cmd::CommandError::Failed {
            code: Some(125),
            stderr,
            ..
        } => {
            let s = stderr.to_ascii_lowercase();
            s.contains("does not exist in database")
                || s.contains("no such container")
                || (s.contains("no container with name or id") && s.contains("found"))
        }
        _ => false,
    }
}

fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

/// Turns podman's error for a missing image into advice.
fn explain_run_error(err: &str, image: &str) -> String {
    let lower = err.to_ascii_lowercase();
    if lower.contains("manifest unknown")
        || lower.contains("image not known")
        || lower.contains("no such image")
        || lower.contains("pulling image") && lower.contains("error")
        // Podman 4.3 when the registry cannot be reached or has no such repository.
        || lower.contains("initializing source docker://")
        || lower.contains("trying to pull") && lower.contains("error")
    {
        format!("image {image} is not available: {err}\n  fix: check the image name in the config, or build or pull it (`podman pull {image}`)")
    } else {
        err.to_string()
    }
}

fn remove_tree(p: &Path) -> std::io::Result<()> {
    match std::fs::remove_dir_all(p) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        r => r,
    }
}

/// The names in folder `dir` (none when it cannot be read).
pub(super) fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(code: Option<i32>, stderr: &str) -> crate::cmd::CommandError {
        crate::cmd::CommandError::Failed {
            cmdline: "podman stop --ignore -t 60 ci-1".into(),
            status: "exit status: 125".into(),
            code,
            stderr: stderr.into(),
        }
    }

    #[test]
    fn a_container_removed_while_stopping_is_already_gone() {
        // Podman 4.3.1, `stop --ignore` racing the removal of a `--rm` container.
        let race = "Error: container 3f1c2a9e0b7d4c5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6 does not exist in database: no such container";
        assert!(already_gone(&failed(Some(125), race)));
        assert!(already_gone(&failed(
            Some(125),
            "Error: no container with name or ID \"ci-1\" found: no such container"
        )));
        // Anything else is a real failure, and the same text with another code is too.
        assert!(!already_gone(&failed(
            Some(125),
            "Error: OCI runtime error: runc: kill failed"
        )));
        assert!(!already_gone(&failed(Some(1), race)));
        assert!(!already_gone(&failed(None, race)));
        assert!(!already_gone(&crate::cmd::CommandError::Timeout {
            cmdline: "podman stop".into(),
            timeout: std::time::Duration::from_secs(70),
        }));
    }

    #[test]
    fn a_pool_label_that_is_no_pool_name_reads_as_no_pool() {
        let entry = |pool: Option<&str>| crate::podman::PsEntry {
            id: "c1".into(),
            names: vec!["ci-1".into()],
            labels: pool
                .map(|p| (labels::POOL.to_string(), p.to_string()))
                .into_iter()
                .collect(),
            state: "running".into(),
            exited: false,
            exit_code: 0,
            created: 0,
            started_at: 0,
            image: String::new(),
        };
        assert_eq!(
            container_seen(&entry(Some("build"))).pool,
            Some(PoolName::new("build").unwrap())
        );
        assert_eq!(container_seen(&entry(Some("a b"))).pool, None);
        assert_eq!(container_seen(&entry(Some(""))).pool, None);
        assert_eq!(container_seen(&entry(None)).pool, None);
    }

    #[test]
    fn pull_failures_name_the_image() {
        // Podman 4.3.1, an image in no reachable registry.
        let e = "`podman run -d ...` failed (exit status: 125): Trying to pull localhost/x:latest...\nError: initializing source docker://localhost/x:latest: pinging container registry localhost: Get \"https://localhost/v2/\": dial tcp 127.0.0.1:443: connect: connection refused";
        let m = explain_run_error(e, "localhost/x:latest");
        assert!(
            m.starts_with("image localhost/x:latest is not available: "),
            "{m}"
        );
        assert!(m.contains("fix: "), "{m}");
        let m = explain_run_error("Error: localhost/x: image not known", "x");
        assert!(m.starts_with("image x is not available"), "{m}");
        assert_eq!(
            explain_run_error("OCI runtime error", "x"),
            "OCI runtime error"
        );
    }
}

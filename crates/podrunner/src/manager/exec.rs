//! Executes the core's actions against GitHub and Podman. Each action runs as its own task and
//! reports one [`Outcome`] back to the manager's loop; no task touches the core state.

use super::Outcome;
use crate::config::names::Scope;
use crate::config::{Config, PoolConfig};
use crate::core::{CleanupOutcome, ContainerSeen, RegistrationSeen, RetireOutcome};
use crate::github::{self, Client};
use crate::podman::{labels, Podman, RunSpec, SECRET_FILE, SETTINGS_INDEX};
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::mpsc::UnboundedSender;

/// How many finished runners' container logs are kept for `podrunner logs`.
pub const KEPT_LOGS: usize = 50;

/// What every task needs.
#[derive(Clone)]
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

pub fn secret_dir(cfg: &Config, name: &str) -> PathBuf {
    cfg.manager.runtime_dir.join("secrets").join(name)
}

pub fn log_dir(cfg: &Config) -> PathBuf {
    cfg.manager.state_dir.join("logs")
}

pub fn log_path(cfg: &Config, name: &str) -> PathBuf {
    log_dir(cfg).join(format!("{name}.log"))
}

fn mkdir_mode(p: &Path, mode: u32) -> std::io::Result<()> {
    std::fs::create_dir_all(p)?;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
}

/// Writes the runner's settings, unpacked from the JIT config (github/jit.rs), where the
/// container's entrypoint moves them into the runner's root folder. The folder is open to the
/// container's user (it must delete the files after moving them) but sits inside the runtime
/// directory, which only the manager's user can enter.
fn write_secret(dir: &Path, secret: &github::Secret) -> std::io::Result<()> {
    mkdir_mode(dir, 0o733)?;
    let write = |name: &str, content: &str| {
        let f = dir.join(name);
        std::fs::write(&f, content)?;
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o444))
    };
    match github::jit::settings_files(secret) {
        Ok(files) => {
            files
                .iter()
                .try_for_each(|f| write(&f.name, f.content.expose()))?;
            let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
            // Written last: the entrypoint finds either everything or nothing.
            write(SETTINGS_INDEX, &(names.join("\n") + "\n"))
        }
        Err(e) => {
            // The runner understands any shape it is given whole (podman::ENTRYPOINT_SCRIPT).
            tracing::warn!("{e}; handing it to the runner whole, through its environment");
            write(SECRET_FILE, secret.expose())
        }
    }
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
        let work = pool.work_dir.join(&name);
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

        let secrets = secret_dir(&self.cfg, &name);
        let prepared = (|| -> std::io::Result<()> {
            mkdir_mode(&pool.work_dir, 0o700)?;
            mkdir_mode(&work, 0o777)?;
            std::fs::create_dir_all(log_dir(&self.cfg))?;
            std::fs::create_dir_all(self.cfg.manager.state_dir.join("pids"))?;
            write_secret(&secrets, &jit.encoded)
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
                    cpus: pool.cpus,
                    memory_bytes: pool.memory.map(|m| m.0),
                    pids_limit: pool.pids_limit,
                    stop_timeout_secs: pool.stop_timeout.as_secs(),
                    secret_dir: secrets.clone(),
                    work_dir: work.clone(),
                    log_path: log_path(&self.cfg, &name),
                    container_pidfile: Some(super::watch::container_pidfile(
                        &self.cfg.manager.state_dir,
                        &name,
                    )),
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
                let pidfile = super::watch::container_pidfile(&self.cfg.manager.state_dir, &name);
                let log = log_path(&self.cfg, &name);
                super::watch::watch_container(pidfile, log, name, self.tx.clone()).await;
            }
            Err(why) => {
                tracing::error!(pool = %pool.name, "cannot start runner {name}: {why}");
                // A `podman run` that failed late or timed out may have left a container.
                if let Err(e) = self.podman.rm_force(&name).await {
                    tracing::warn!("cannot remove what is left of runner {name}'s container: {e}");
                }
                let _ = std::fs::remove_dir_all(&secrets);
                let _ = std::fs::remove_dir_all(&work);
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
        if let Err(e) = self.podman.stop(&name, stop_timeout_secs).await {
            // Its registration is gone, so the runner exits by itself; the exit is still seen.
            tracing::warn!("stopping {name} failed: {e}");
        }
        self.send(Outcome::Retired {
            name,
            outcome: RetireOutcome::Stopped,
        });
    }

    /// Stops a container whatever it is doing (drain timeout reached).
    pub async fn force_stop(self, name: String, timeout_secs: u64) {
        tracing::warn!("drain timeout reached: stopping runner {name}, cancelling its job");
        let ok = self.podman.stop(&name, timeout_secs).await.is_ok();
        self.send(Outcome::ForceStopped { name, ok });
    }

    /// Removes everything made for a runner: secret folder, work folder, a leftover container,
    /// and its registration when `delete_id` is set. Tries every step and reports all failures.
    pub async fn cleanup(
        self,
        scope: Option<Scope>,
        name: String,
        delete_id: Option<u64>,
        remove_container: bool,
    ) {
        let mut errors: Vec<String> = Vec::new();
        let last_line = last_log_line(&log_path(&self.cfg, &name));
        let secrets = secret_dir(&self.cfg, &name);
        if let Err(e) = remove_tree(&secrets) {
            errors.push(format!("secret folder {}: {e}", secrets.display()));
        }
        // Usually already gone (the exit watch removes it); not for adopted runners.
        let _ = std::fs::remove_file(super::watch::container_pidfile(
            &self.cfg.manager.state_dir,
            &name,
        ));
        if remove_container {
            if let Err(e) = self.podman.rm_force(&name).await {
                errors.push(format!("container: {e}"));
            }
        }
        // The runner's docker engine, once its container is gone (docs/docker.md).
        errors.extend(crate::engine::service::teardown(&self.cfg, &self.podman, &name).await);
        if let Some(pool) = self.cfg.pools.iter().find(|p| {
            crate::core::naming::belongs_to(&p.host_prefix(&self.cfg.manager.host_id), &name)
        }) {
            let work = pool.work_dir.join(&name);
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
        prune_logs(&log_dir(&self.cfg), KEPT_LOGS);
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
    pub async fn sweep(self, scopes: Vec<String>) {
        let mut lists = Vec::new();
        for key in scopes {
            let Some(scope) = Scope::from_api_path(&key) else {
                lists.push((key, None));
                continue;
            };
            match self.gh.list_runners(&scope).await {
                Ok(rs) => lists.push((
                    key,
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
                        scope: key.clone(),
                        why: e.to_string(),
                    });
                    lists.push((key, None));
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
            let old = self.podman.image_id(&image).await.map_err(|e| e.to_string())?;
            if reason == crate::core::pull::PullReason::Start && old.is_some() {
                return Ok(None);
            }
            let source = pool.pull_source.as_deref().unwrap_or(&image);
            tracing::info!(pool = %pool.name, "pulling {source} ({reason:?})");
            let new = self.podman.pull(source).await.map_err(|e| e.to_string())?;
            if pool.pull_source.is_some() {
                self.podman.tag(&new, &image).await.map_err(|e| e.to_string())?;
            }
            let now = self.podman.image_id(&image).await.map_err(|e| e.to_string())?;
            Ok(match (old, now) {
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
            pool: pool.name.to_string(),
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
            r.map(|v| v.iter().map(container_seen).collect())
                .map_err(|e| e.to_string()),
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
    let entries = |dir: &Path| -> Vec<String> {
        std::fs::read_dir(dir)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    let secrets = ctx.cfg.manager.runtime_dir.join("secrets");
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
        pool: p.labels.get(labels::POOL).cloned().unwrap_or_default(),
        scope: p.labels.get(labels::SCOPE).cloned().unwrap_or_default(),
        runner_id: p.labels.get(labels::RUNNER_ID).and_then(|s| s.parse().ok()),
        alive: p.is_alive(),
        exit_code: (!p.is_alive()).then_some(p.exit_code),
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

/// The last non-empty message line of a k8s-file log (`TIMESTAMP STREAM TAG MESSAGE`).
pub fn last_log_line(path: &Path) -> Option<String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path).ok()?;
    let len = f.metadata().ok()?.len();
    let start = len.saturating_sub(8192);
    f.seek(SeekFrom::Start(start)).ok()?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf);
    text.lines()
        .rev()
        .filter_map(|l| parse_k8s_log_line(l).map(|(_, m)| m.trim().to_string()))
        .find(|m| !m.is_empty())
}

/// Splits a k8s-file log line into its stream and message.
pub fn parse_k8s_log_line(line: &str) -> Option<(&str, &str)> {
    let mut parts = line.splitn(4, ' ');
    let _ts = parts.next()?;
    let stream = parts.next()?;
    let _tag = parts.next()?;
    Some((stream, parts.next().unwrap_or("")))
}

fn prune_logs(dir: &Path, keep: usize) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut files: Vec<(std::time::SystemTime, PathBuf)> = rd
        .filter_map(|e| e.ok())
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    if files.len() <= keep {
        return;
    }
    files.sort();
    for (_, p) in files.iter().take(files.len() - keep) {
        let _ = std::fs::remove_file(p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_dir(d: &Path) -> Vec<(String, String, u32)> {
        let mut v: Vec<(String, String, u32)> = std::fs::read_dir(d)
            .unwrap()
            .flatten()
            .map(|e| {
                let mode = e.metadata().unwrap().permissions().mode() & 0o777;
                let text = std::fs::read_to_string(e.path()).unwrap();
                (e.file_name().to_string_lossy().into_owned(), text, mode)
            })
            .collect();
        v.sort();
        v
    }

    #[test]
    fn jit_config_is_unpacked_into_settings_files() {
        use base64::Engine as _;
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("r-1");
        let cfg = format!(
            "{{\".runner\":\"{}\",\".credentials\":\"{}\"}}",
            b64("{\"agentId\":1}"),
            b64("{\"data\":{}}")
        );
        write_secret(&dir, &github::Secret::new(b64(&cfg))).unwrap();
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o733, "the container's user may enter, not list");
        assert_eq!(
            read_dir(&dir),
            vec![
                (".credentials".into(), "{\"data\":{}}".into(), 0o444),
                (".runner".into(), "{\"agentId\":1}".into(), 0o444),
                ("settings".into(), ".credentials\n.runner\n".into(), 0o444),
            ]
        );
    }

    #[test]
    fn a_jit_config_of_unknown_shape_is_handed_over_whole() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("r-2");
        write_secret(&dir, &github::Secret::new("opaque-v2-config".into())).unwrap();
        assert_eq!(
            read_dir(&dir),
            vec![("jitconfig".into(), "opaque-v2-config".into(), 0o444)]
        );
    }

    #[test]
    fn k8s_log_lines() {
        assert_eq!(
            parse_k8s_log_line("2026-11-30T04:43:30.328906492+00:00 stdout F hello world"),
            Some(("stdout", "hello world"))
        );
        assert_eq!(
            parse_k8s_log_line("2026-11-30T04:43:30Z stderr F"),
            Some(("stderr", ""))
        );
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.log");
        std::fs::write(
            &p,
            "t stdout F first\nt stdout F broken image for tests\nt stdout F \n",
        )
        .unwrap();
        assert_eq!(last_log_line(&p).as_deref(), Some("broken image for tests"));
        assert_eq!(last_log_line(&dir.path().join("none")), None);
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

    #[test]
    fn pruning_keeps_newest() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..5 {
            std::fs::write(dir.path().join(format!("{i}.log")), "x").unwrap();
            let t = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1000 + i);
            std::fs::File::options()
                .write(true)
                .open(dir.path().join(format!("{i}.log")))
                .unwrap()
                .set_modified(t)
                .unwrap();
        }
        prune_logs(dir.path(), 2);
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, vec!["3.log", "4.log"]);
    }
}

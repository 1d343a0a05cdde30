//! A host copy of the runner image's `externals` folder, for `container:` jobs.
//!
//! GitHub's runner mounts its `externals` folder (the node versions that run JavaScript actions)
//! into every job container at `/__e` (actions/runner, ContainerOperationProvider). It names
//! the folder as it sees it, `/home/runner/externals`, but a runner's engine resolves bind
//! sources on the host, where that folder is inside the runner image. So podrunner copies it out
//! of the image once per image id into `state_dir/externals/ID`, and the Docker API proxy maps
//! the runner's path to that copy ([`super::caps::PathMap`]).
//!
//! Each copy records its image name beside it (`ID.image`). When a new id of an image is copied,
//! the older copies of that image that no running Docker proxy maps any more are removed (a
//! runner adopted after a restart may still use an older one).
//!
//! Job containers bind these copies read-only only ([`crate::engine::policy::Policy`]): one
//! runner's job cannot change what another's `container:` jobs execute.
//!
//! A runner that updated itself runs another version's externals than its image's (its update
//! moves the new version's folder in and points `externals` at it). The manager notes the
//! version the runner's output announced in the runner's engine folder ([`note_self_update`]);
//! the runner's Docker proxy then maps the runner's path to a copy of the runner's own folder,
//! taken from its container on the first `container:` job after the update ([`RunnerCopy`]),
//! in the engine folder (removed with it), for that runner only and read-only as well.

use super::error::ExternalsError;
use super::EngineDirs;
use crate::config::{Config, PoolConfig};
use crate::podman::{Podman, QUICK_TIMEOUT};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Folder under the state dir holding one copy per image id.
pub const EXTERNALS_DIR: &str = "externals";
/// How long an image's id is trusted before it is read again (an image may be re-pulled under
/// the same name); reading it costs one podman call, which a runner start should not pay
/// every time.
pub const ID_RECHECK: Duration = Duration::from_secs(300);
/// Copying GitHub's externals (a few hundred MB of node builds) out of the image.
const COPY_TIMEOUT: Duration = Duration::from_secs(600);

/// In a runner's engine data folder: the runner version its output announced updating to.
const VERSION_FILE: &str = "runner-version";
/// In a runner's engine data folder: the copy of the updated runner's externals.
const RUNNER_COPY: &str = "externals";

/// Where the manager notes a runner's self-update for its proxy.
pub fn version_file(d: &EngineDirs) -> PathBuf {
    d.data.join(VERSION_FILE)
}

/// The updated runner's own copy of its externals.
pub fn runner_copy_dir(d: &EngineDirs) -> PathBuf {
    d.data.join(RUNNER_COPY)
}

/// A version as a runner announces it (`2.329.0`): digits and dots only, since the line comes
/// from a container a job runs in.
pub fn plausible_version(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 32
        && v.split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// Notes that runner `name` announced updating itself to `version`, for its Docker proxy;
/// nothing when the runner has no engine folder (no isolated Docker).
pub fn note_self_update(runtime_dir: &Path, state_dir: &Path, name: &str, version: &str) {
    if !plausible_version(version) {
        return;
    }
    let Ok(d) = EngineDirs::for_runner(runtime_dir, state_dir, name) else {
        return;
    };
    if d.data.is_dir() {
        if let Err(e) = std::fs::write(version_file(&d), version) {
            tracing::warn!("cannot note runner {name}'s update for its container jobs: {e}");
        }
    }
}

/// The proxy's arguments that let it follow runner `container`'s self-update
/// (`podrunner docker-proxy --runner-container ...`).
pub fn self_update_args(
    d: &EngineDirs,
    pool: &PoolConfig,
    container: &str,
    podman: &Podman,
) -> crate::proxy::args::SelfUpdateArgs {
    crate::proxy::args::SelfUpdateArgs {
        runner_container: Some(container.to_string()),
        runner_externals: Some(inside_path(pool)),
        runner_version_file: Some(version_file(d)),
        runner_copy: Some(runner_copy_dir(d)),
        podman: podman.program().to_string(),
        podman_args: podman.global_args().to_vec(),
    }
}

/// What the proxy needs to give an updated runner's `container:` jobs its own externals.
#[derive(Debug)]
pub struct RunnerCopy {
    /// The runner's path of its externals folder.
    pub inside: String,
    /// [`version_file`].
    pub version_file: PathBuf,
    /// [`runner_copy_dir`] (also among the proxy's read-only folders).
    pub dir: PathBuf,
    /// The runner's container.
    pub container: String,
    /// The manager's `podman` and its global arguments.
    pub podman: Podman,
    /// The version whose copy `dir` holds.
    copied: tokio::sync::Mutex<Option<String>>,
}

impl RunnerCopy {
    pub fn new(
        inside: String,
        version_file: PathBuf,
        dir: PathBuf,
        container: String,
        podman: Podman,
    ) -> RunnerCopy {
        RunnerCopy {
            inside,
            version_file,
            dir,
            container,
            podman,
            copied: tokio::sync::Mutex::new(None),
        }
    }

    /// The host folder the runner's externals path stands for now: `None` while the runner
    /// runs its image's version (the image's copy stays mapped); otherwise the runner's own
    /// copy, taken now when the version changed since the last.
    pub async fn current(&self) -> Result<Option<PathBuf>, ExternalsError> {
        let Ok(version) = std::fs::read_to_string(&self.version_file) else {
            return Ok(None);
        };
        let version = version.trim().to_string();
        if !plausible_version(&version) {
            return Ok(None);
        }
        let mut copied = self.copied.lock().await;
        if copied.as_deref() == Some(version.as_str()) && self.dir.is_dir() {
            return Ok(Some(self.dir.clone()));
        }
        let tmp = self.dir.with_extension("tmp");
        remove_if_there(&tmp);
        remove_if_there(&self.dir);
        // `/.`: the folder's content, its symlink (the update's) followed inside the container.
        let src = format!("{}:{}/.", self.container, self.inside);
        let tmp_s = tmp.display().to_string();
        if let Err(e) = self.podman.call(&["cp", &src, &tmp_s], COPY_TIMEOUT).await {
            remove_if_there(&tmp);
            return Err(ExternalsError::CopyOut { version, source: e });
        }
        std::fs::rename(&tmp, &self.dir).map_err(|source| io(&self.dir, source))?;
        tracing::info!(
            "docker-proxy: container jobs get the externals of runner version {version} ({})",
            self.dir.display()
        );
        *copied = Some(version);
        Ok(Some(self.dir.clone()))
    }
}

fn io(path: &Path, source: std::io::Error) -> ExternalsError {
    ExternalsError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Removes a leftover file or folder: one that is not there is fine, any other failure is
/// logged (the copy that follows then fails and says so).
fn remove_if_there(path: &Path) {
    let folder = path.symlink_metadata().is_ok_and(|m| m.is_dir());
    let removed = if folder {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    };
    match removed {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            tracing::warn!("cannot remove {}: {e}", path.display());
        }
        _ => {}
    }
}

/// Writes a record beside the copies (which image a copy is of, that an image has none); one
/// that cannot be written is logged (without it the copy is made again, or pruned later).
fn write_record(path: &Path, content: &[u8]) {
    if let Err(e) = std::fs::write(path, content) {
        tracing::warn!("cannot write {}: {e}", path.display());
    }
}

/// The runner's own path of its externals folder.
pub fn inside_path(pool: &PoolConfig) -> String {
    format!("{}/externals", pool.runner_dir.trim_end_matches('/'))
}

/// The copy's folder for an image id (first 12 hex digits, as podman shows ids).
pub fn copy_dir(state_dir: &Path, image_id: &str) -> PathBuf {
    let short: String = image_id
        .trim_start_matches("sha256:")
        .chars()
        .take(12)
        .collect();
    state_dir.join(EXTERNALS_DIR).join(short)
}

struct Known {
    dir: Option<PathBuf>,
    checked: Instant,
}

/// Per image name: what was found, and a lock so that runners starting together copy once.
type Cache = Mutex<BTreeMap<String, Arc<tokio::sync::Mutex<Option<Known>>>>>;
static CACHE: std::sync::OnceLock<Cache> = std::sync::OnceLock::new();

/// The host copy of `pool`'s externals folder, made on first use; `None` when the image has no
/// such folder (then nothing is mapped, and a `container:` job's JavaScript actions fail as
/// they would without podrunner).
pub async fn host_copy(cfg: &Config, pool: &PoolConfig, podman: &Podman) -> Option<PathBuf> {
    let slot = {
        let mut m = CACHE
            .get_or_init(Default::default)
            .lock()
            .expect("no panic holds this lock");
        Arc::clone(m.entry(pool.image.clone()).or_default())
    };
    let mut known = slot.lock().await;
    if let Some(k) = known.as_ref() {
        if k.checked.elapsed() < ID_RECHECK && k.dir.as_ref().is_none_or(|d| d.exists()) {
            return k.dir.clone();
        }
    }
    let dir = match make_copy(cfg, pool, podman).await {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(pool = %pool.name, "no host copy of the image's externals folder for container jobs: {e}");
            None
        }
    };
    *known = Some(Known {
        dir: dir.clone(),
        checked: Instant::now(),
    });
    dir
}

async fn make_copy(
    cfg: &Config,
    pool: &PoolConfig,
    podman: &Podman,
) -> Result<Option<PathBuf>, ExternalsError> {
    let out = podman
        .call(
            &["image", "inspect", "--format", "{{.Id}}", &pool.image],
            QUICK_TIMEOUT,
        )
        .await?;
    let id = String::from_utf8_lossy(&out).trim().to_string();
    let dir = copy_dir(&cfg.manager.state_dir, &id);
    let none_marker = dir.with_extension("none");
    if dir.exists() {
        return Ok(Some(dir));
    }
    if none_marker.exists() {
        return Ok(None);
    }
    let parent = cfg.manager.state_dir.join(EXTERNALS_DIR);
    std::fs::create_dir_all(&parent).map_err(|source| io(&parent, source))?;
    let tmp = dir.with_extension(format!("tmp{}", std::process::id()));
    remove_if_there(&tmp);
    let name = format!(
        "podrunner-externals-{}-{}",
        dir.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    );
    // A created (never started) container gives `podman cp` the image's files.
    podman
        .call(
            &["create", "--name", &name, &pool.image, "true"],
            QUICK_TIMEOUT,
        )
        .await?;
    let src = format!("{name}:{}", inside_path(pool));
    let tmp_s = tmp.display().to_string();
    let copied = podman.call(&["cp", &src, &tmp_s], COPY_TIMEOUT).await;
    if let Err(e) = podman.rm_force(&name).await {
        tracing::warn!("cannot remove the helper container {name}: {e}");
    }
    match copied {
        Ok(_) => {
            std::fs::rename(&tmp, &dir).map_err(|source| io(&dir, source))?;
            write_record(&dir.with_extension("image"), pool.image.as_bytes());
            tracing::info!(pool = %pool.name, "copied {} of {} to {} for container jobs", inside_path(pool), pool.image, dir.display());
            prune(&parent, &pool.image, &dir);
            Ok(Some(dir))
        }
        Err(e) => {
            remove_if_there(&tmp);
            tracing::debug!("{} has no {}: {e}", pool.image, inside_path(pool));
            write_record(&none_marker, b"");
            Ok(None)
        }
    }
}

/// The copies (folder names) to remove: older copies of `image` (by their `.image` record)
/// other than `current`, that no running proxy uses.
pub fn stale_copies(
    records: &[(String, String)],
    image: &str,
    current: &str,
    in_use: &dyn Fn(&str) -> bool,
) -> Vec<String> {
    records
        .iter()
        .filter(|(stem, img)| img == image && stem != current && !in_use(stem))
        .map(|(stem, _)| stem.clone())
        .collect()
}

/// Removes the stale copies of `image` under `parent` ([`stale_copies`]); a copy is in use when
/// a running process's command line names its folder (a Docker proxy's `--map`).
fn prune(parent: &Path, image: &str, current: &Path) {
    let records: Vec<(String, String)> = std::fs::read_dir(parent)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let p = e.path();
            let stem = p.file_stem()?.to_string_lossy().into_owned();
            (p.extension()? == "image")
                .then(|| std::fs::read_to_string(&p).ok())
                .flatten()
                .map(|img| (stem, img.trim().to_string()))
        })
        .collect();
    let cmdlines: Vec<String> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .collect();
    let current = current
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let in_use = |stem: &str| {
        let dir = parent.join(stem).display().to_string();
        cmdlines.iter().any(|c| c.contains(&dir))
    };
    for stem in stale_copies(&records, image, &current, &in_use) {
        let dir = parent.join(&stem);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {
                remove_if_there(&dir.with_extension("image"));
                tracing::info!(
                    "removed {}, an older copy of {image}'s externals",
                    dir.display()
                );
            }
            Err(e) => tracing::warn!("cannot remove {}: {e}", dir.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unused_older_copies_of_the_same_image_go() {
        let records = vec![
            ("aaa".to_string(), "img:latest".to_string()),
            ("bbb".to_string(), "img:latest".to_string()),
            ("ccc".to_string(), "img:latest".to_string()),
            ("ddd".to_string(), "other:1".to_string()),
        ];
        let in_use = |s: &str| s == "bbb";
        assert_eq!(
            stale_copies(&records, "img:latest", "ccc", &in_use),
            vec!["aaa".to_string()]
        );
        assert_eq!(
            copy_dir(Path::new("/s"), "sha256:0123456789abcdef"),
            PathBuf::from("/s/externals/0123456789ab")
        );
    }

    #[test]
    fn versions_announced_in_output_are_plain() {
        for ok in ["2.329.0", "2.999.1", "3"] {
            assert!(plausible_version(ok), "{ok}");
        }
        for bad in ["", "../x", "2..1", "2.3.a", "2.3/4", ".2", "2.3."] {
            assert!(!plausible_version(bad), "{bad}");
        }
    }
}

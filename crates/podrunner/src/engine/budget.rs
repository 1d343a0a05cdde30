//! One cgroup budget per runner, shared by the runner and every container its job starts
//! (docs/docker.md, Resources), where the host's cgroup layout allows it: rootful Podman with
//! the cgroupfs manager, cgroup v1 or v2. There podrunner creates `/podrunner.INSTANCE/RUNNER`
//! holding the pool's `cpus`, `memory` and `pids_limit` (runner/limits.rs), starts the runner with
//! `--cgroup-parent` pointing at it, and the Docker API proxy gives every job container the
//! same parent: the runner and its job containers are siblings below one limit, so their sum
//! is bounded, not only each one ([`super::caps`] still caps each container).
//!
//! Elsewhere (the systemd cgroup manager, whose scopes take no children and whose slices
//! podrunner would have to create through systemd; rootless Podman) there is no budget and
//! the per-container caps are what holds.

use super::error::TeardownError;
use crate::runner::Limits;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// cgroup v1 controllers a budget spans.
pub const V1_CONTROLLERS: [&str; 3] = ["memory", "cpu", "pids"];
/// A budget's folder may still hold a process for a moment after its last container was
/// removed (conmon exiting); removal is retried this long.
pub const REMOVE_WAIT: Duration = Duration::from_secs(3);

/// Where the host's cgroups are and which version they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    V1 { root: PathBuf },
    V2 { root: PathBuf },
}

/// The layout in which budgets work, from `podman info` (`host.cgroupVersion`,
/// `host.cgroupManager`, `host.security.rootless`); `None` where they do not.
pub fn detect(cgroup_version: &str, cgroup_manager: &str, rootless: bool) -> Option<Layout> {
    if rootless || cgroup_manager != "cgroupfs" {
        return None;
    }
    let root = PathBuf::from("/sys/fs/cgroup");
    match cgroup_version {
        "v1" => Some(Layout::V1 { root }),
        "v2" => Some(Layout::V2 { root }),
        _ => None,
    }
}

/// The `--cgroup-parent` of runner `name` and its job containers.
pub fn parent(instance: &str, name: &str) -> String {
    format!("/podrunner.{instance}/{name}")
}

/// The budget's folders, deepest last (v1: one per controller).
pub fn dirs(layout: &Layout, parent: &str) -> Vec<PathBuf> {
    let rel = parent.trim_start_matches('/');
    match layout {
        Layout::V1 { root } => V1_CONTROLLERS
            .iter()
            .map(|c| root.join(c).join(rel))
            .collect(),
        Layout::V2 { root } => vec![root.join(rel)],
    }
}

/// Creates runner `parent`'s budget with the pool's limits. v2: the controllers are enabled
/// for the children of every level from the root down.
pub fn create(layout: &Layout, parent: &str, limits: &Limits) -> std::io::Result<()> {
    for d in dirs(layout, parent) {
        std::fs::create_dir_all(&d)?;
    }
    if let Layout::V2 { root } = layout {
        let mut level = root.clone();
        let rel = parent.trim_start_matches('/');
        for part in std::iter::once("").chain(rel.split('/')) {
            if !part.is_empty() {
                level = level.join(part);
            }
            std::fs::write(level.join("cgroup.subtree_control"), "+memory +cpu +pids")?;
        }
    }
    for (file, value) in limits.cgroup_writes(layout, parent) {
        let swap = file.to_string_lossy().contains("sw");
        match std::fs::write(&file, &value) {
            // No swap accounting on this kernel: the memory limit alone holds.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && swap => {}
            r => {
                r.map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", file.display())))?
            }
        }
    }
    Ok(())
}

/// Every folder Podman may have made for `parent`: on cgroup v1 it creates the path in every
/// hierarchy (blkio, cpuset, devices, freezer, the named `systemd` one, ...), not only in the
/// controllers the budget limits.
fn all_dirs(layout: &Layout, parent: &str) -> Vec<PathBuf> {
    let rel = parent.trim_start_matches('/');
    match layout {
        Layout::V1 { root } => {
            let mut v: Vec<PathBuf> = std::fs::read_dir(root)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path().join(rel))
                .collect();
            v.sort();
            v
        }
        Layout::V2 { root } => vec![root.join(rel)],
    }
}

/// Removes runner `parent`'s budget once its containers are gone: the folders below it that
/// Podman left (a container's `conmon` folder), then its own; retried for [`REMOVE_WAIT`]
/// while a process is still leaving. A budget that does not exist is not an error.
pub async fn remove(layout: &Layout, parent: &str) -> Result<(), TeardownError> {
    let start = std::time::Instant::now();
    loop {
        let mut left = Vec::new();
        for d in all_dirs(layout, parent) {
            if let Err(e) = remove_tree(&d) {
                left.push(format!("{}: {e}", d.display()));
            }
        }
        if left.is_empty() {
            // The instance's folder goes with its last runner (another runner's budget keeps
            // it: rmdir refuses a folder that is not empty).
            for d in all_dirs(layout, parent) {
                if let Some(up) = d.parent() {
                    match std::fs::remove_dir(up) {
                        Ok(()) => {}
                        // Another runner's budget, or already gone.
                        Err(e)
                            if matches!(
                                e.raw_os_error(),
                                Some(libc::ENOTEMPTY | libc::EBUSY | libc::ENOENT)
                            ) => {}
                        Err(e) => left.push(format!("{}: {e}", up.display())),
                    }
                }
            }
            if left.is_empty() {
                return Ok(());
            }
            return Err(TeardownError::Budget(left));
        }
        if start.elapsed() > REMOVE_WAIT {
            return Err(TeardownError::Budget(left));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// rmdir of a cgroup folder and the cgroup folders below it, deepest first (cgroup folders
/// are removed with rmdir, never by deleting their files).
fn remove_tree(d: &Path) -> std::io::Result<()> {
    let rd = match std::fs::read_dir(d) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        r => r?,
    };
    for e in rd.flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            remove_tree(&e.path())?;
        }
    }
    match std::fs::remove_dir(d) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        r => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            memory: Some(268435456),
            cpus: Some(1.5),
            pids: 300,
        }
    }

    #[test]
    fn only_rootful_cgroupfs_hosts_get_budgets() {
        let root = PathBuf::from("/sys/fs/cgroup");
        assert_eq!(
            detect("v1", "cgroupfs", false),
            Some(Layout::V1 { root: root.clone() })
        );
        assert_eq!(detect("v2", "cgroupfs", false), Some(Layout::V2 { root }));
        assert_eq!(detect("v2", "systemd", false), None);
        assert_eq!(detect("v1", "cgroupfs", true), None);
        assert_eq!(detect("", "cgroupfs", false), None);
    }

    #[tokio::test]
    async fn remove_covers_every_v1_hierarchy() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = Layout::V1 {
            root: tmp.path().to_path_buf(),
        };
        let p = parent("ci", "r-1");
        // What Podman leaves: the path in every hierarchy, with a conmon folder below.
        for h in ["memory", "cpu", "pids", "freezer", "systemd", "unified"] {
            std::fs::create_dir_all(tmp.path().join(h).join("podrunner.ci/r-1/conmon")).unwrap();
        }
        std::fs::create_dir_all(tmp.path().join("memory/podrunner.ci/r-2")).unwrap();
        remove(&layout, &p).await.unwrap();
        for h in ["memory", "cpu", "pids", "freezer", "systemd", "unified"] {
            assert!(!tmp.path().join(h).join("podrunner.ci/r-1").exists(), "{h}");
        }
        // Another runner's budget keeps the instance folder; the others go.
        assert!(tmp.path().join("memory/podrunner.ci/r-2").exists());
        assert!(!tmp.path().join("freezer/podrunner.ci").exists());
    }

    #[tokio::test]
    async fn create_and_remove_in_a_fake_v2_tree() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = Layout::V2 {
            root: tmp.path().to_path_buf(),
        };
        let p = parent("ci", "r-1");
        create(&layout, &p, &limits()).unwrap();
        let dir = tmp.path().join("podrunner.ci/r-1");
        assert_eq!(
            std::fs::read_to_string(dir.join("pids.max")).unwrap(),
            "300"
        );
        assert_eq!(
            std::fs::read_to_string(tmp.path().join("podrunner.ci/cgroup.subtree_control"))
                .unwrap(),
            "+memory +cpu +pids"
        );
        // What Podman leaves below it, as empty folders (a real cgroup folder's files go with
        // rmdir; here the test's files are removed first).
        std::fs::create_dir_all(dir.join("conmon")).unwrap();
        for f in [
            "pids.max",
            "memory.max",
            "memory.swap.max",
            "cpu.max",
            "cgroup.subtree_control",
        ] {
            match std::fs::remove_file(dir.join(f)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => panic!("{f}: {e}"),
                _ => {}
            }
        }
        remove(&layout, &p).await.unwrap();
        assert!(!dir.exists());
        // v2: the instance's folder still holds the file the test wrote; on a real cgroup
        // tree its interface files go with rmdir.
        remove(&layout, &p).await.unwrap();
    }
}

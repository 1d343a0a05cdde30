//! Out-of-memory detection that does not depend on Podman noticing. Podman reports an `oom`
//! event (and `State.OOMKilled`) only when conmon sees the kill, which it does not on every
//! host (Podman 4.3 with runc on a cgroup v1 host reports a memory-limit kill as a plain exit
//! 137 with `OOMKilled: false`), and never when the OOM killer takes a job's process while the
//! runner lives on. The kernel counts every kill in the container's memory cgroup
//! (`oom_kill` in `memory.oom_control` on v1, `memory.events` on v2); this task polls those
//! counters for the manager's own running containers and reports increases by container id.
//! The cgroup tree is walked only when a container's cgroup has not been found yet; in steady
//! state a poll reads one small file per runner, and nothing at all without runners.
//!
//! It only reads `/sys/fs/cgroup`; the manager's loop maps the id to a runner.

use super::Outcome;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::mpsc::UnboundedSender;

/// How often the counters are read. A job's process killed at the limit leaves its runner
/// running for at least the report of the failed job, far longer than this.
pub const POLL: Duration = Duration::from_millis(500);
/// Deep enough for `machine.slice/libpod-ID.scope`, `libpod_parent/libpod-ID` and rootless
/// `user.slice/user-UID.slice/user@UID.service/user.slice/libpod-ID.scope`.
const MAX_DEPTH: usize = 6;

/// The memory cgroup hierarchy and its version: `(root, v2)`.
pub fn memory_root() -> Option<(PathBuf, bool)> {
    let v1 = Path::new("/sys/fs/cgroup/memory");
    if v1.join("memory.oom_control").exists() || v1.join("cgroup.procs").exists() {
        return Some((v1.to_path_buf(), false));
    }
    let v2 = Path::new("/sys/fs/cgroup");
    v2.join("cgroup.controllers")
        .exists()
        .then(|| (v2.to_path_buf(), true))
}

/// The container id in a cgroup folder name: `libpod-ID` or `libpod-ID.scope` (not
/// `libpod-conmon-ID`, conmon's own).
pub fn container_id_of(dir_name: &str) -> Option<&str> {
    let rest = dir_name.strip_prefix("libpod-")?;
    let id = rest.strip_suffix(".scope").unwrap_or(rest);
    (id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit())).then_some(id)
}

/// The `oom_kill N` line of `memory.oom_control` (v1) or `memory.events` (v2).
pub fn parse_oom_kill(text: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let mut it = l.split_whitespace();
        (it.next()? == "oom_kill").then(|| it.next()?.parse().ok())?
    })
}

fn counter_file(v2: bool) -> &'static str {
    if v2 {
        "memory.events"
    } else {
        "memory.oom_control"
    }
}

/// Every container cgroup under `root`: container id -> its OOM counter file.
pub fn locate(root: &Path, v2: bool) -> BTreeMap<String, PathBuf> {
    let mut out = BTreeMap::new();
    let mut stack = vec![(root.to_path_buf(), 0usize)];
    while let Some((dir, depth)) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            if !e.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let name = e.file_name();
            let name = name.to_string_lossy();
            if let Some(id) = container_id_of(&name) {
                out.insert(id.to_string(), e.path().join(counter_file(v2)));
            } else if depth + 1 < MAX_DEPTH {
                stack.push((e.path(), depth + 1));
            }
        }
    }
    out
}

/// Every container cgroup under `root` with its OOM-kill count.
#[cfg(test)]
fn scan(root: &Path, v2: bool) -> BTreeMap<String, u64> {
    read_counts(&locate(root, v2))
}

fn read_counts(files: &BTreeMap<String, PathBuf>) -> BTreeMap<String, u64> {
    files
        .iter()
        .filter_map(|(id, f)| {
            let n = parse_oom_kill(&std::fs::read_to_string(f).ok()?)?;
            Some((id.clone(), n))
        })
        .collect()
}

/// Whether a full container id matches one of `ids` (podman may report short ids).
fn wanted(id: &str, ids: &BTreeSet<String>) -> bool {
    ids.iter()
        .any(|w| !w.is_empty() && (id.starts_with(w.as_str()) || w.starts_with(id)))
}

/// Polls the counters of the containers in `ids` (kept current by the manager's loop) until
/// the loop goes away; reports each container whose count grew (or that shows a kill when
/// first seen).
pub async fn watch(
    mut ids: tokio::sync::watch::Receiver<BTreeSet<String>>,
    tx: UnboundedSender<Outcome>,
) {
    let Some((root, v2)) = memory_root() else {
        tracing::debug!("no memory cgroup hierarchy found; OOM kills are seen from podman only");
        return;
    };
    let mut files: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut last: BTreeMap<String, u64> = BTreeMap::new();
    loop {
        let ours = ids.borrow_and_update().clone();
        files.retain(|id, _| wanted(id, &ours));
        last.retain(|id, _| wanted(id, &ours));
        if ours.is_empty() {
            // Nothing to watch: sleep until the set of containers changes.
            if ids.changed().await.is_err() {
                return;
            }
            continue;
        }
        let need_walk = ours
            .iter()
            .any(|w| !files.keys().any(|id| id.starts_with(w.as_str())));
        let (r, known) = (root.clone(), files.clone());
        let Ok((found, seen)) = tokio::task::spawn_blocking(move || {
            let mut f = known;
            if need_walk {
                f.extend(
                    locate(&r, v2)
                        .into_iter()
                        .filter(|(id, _)| wanted(id, &ours)),
                );
            }
            let counts = read_counts(&f);
            (f, counts)
        })
        .await
        else {
            return;
        };
        files = found;
        for (id, n) in &seen {
            let grew = *n > last.get(id).copied().unwrap_or(0);
            if grew
                && tx
                    .send(Outcome::Oom {
                        container_id: id.clone(),
                    })
                    .is_err()
            {
                return;
            }
        }
        last = seen;
        if tx.is_closed() {
            return;
        }
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_counters() {
        let id = "a".repeat(64);
        assert_eq!(container_id_of(&format!("libpod-{id}")), Some(id.as_str()));
        assert_eq!(
            container_id_of(&format!("libpod-{id}.scope")),
            Some(id.as_str())
        );
        assert_eq!(container_id_of(&format!("libpod-conmon-{id}.scope")), None);
        assert_eq!(container_id_of("libpod_parent"), None);
        assert_eq!(container_id_of("libpod-abc"), None);
        // cgroup v1 memory.oom_control (kernel 4.13+) and v2 memory.events.
        assert_eq!(
            parse_oom_kill("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n"),
            Some(2)
        );
        assert_eq!(
            parse_oom_kill("low 0\nhigh 0\nmax 5\noom 1\noom_kill 1\noom_group_kill 0\n"),
            Some(1)
        );
        assert_eq!(parse_oom_kill("oom_kill_disable 0\nunder_oom 0\n"), None);
        assert_eq!(parse_oom_kill("oom_kill x"), None);
    }

    #[test]
    fn scan_finds_nested_container_cgroups() {
        let d = tempfile::tempdir().unwrap();
        let id1 = "1".repeat(64);
        let id2 = "2".repeat(64);
        let a = d.path().join(format!("libpod_parent/libpod-{id1}"));
        let b = d.path().join(format!(
            "user.slice/u.service/user.slice/libpod-{id2}.scope"
        ));
        for p in [&a, &b] {
            std::fs::create_dir_all(p.join("inner")).unwrap();
        }
        std::fs::write(a.join("memory.oom_control"), "under_oom 0\noom_kill 3\n").unwrap();
        std::fs::write(b.join("memory.oom_control"), "oom_kill 0\n").unwrap();
        let seen = scan(d.path(), false);
        assert_eq!(seen.get(&id1), Some(&3));
        assert_eq!(seen.get(&id2), Some(&0));
        assert_eq!(seen.len(), 2);
        let files = locate(d.path(), false);
        assert_eq!(files[&id1], a.join("memory.oom_control"));
        let ours: BTreeSet<String> = [id1[..12].to_string()].into();
        assert!(wanted(&id1, &ours));
        assert!(!wanted(&id2, &ours));
    }
}

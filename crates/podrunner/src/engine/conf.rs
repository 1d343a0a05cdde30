//! The containers.conf of a runner's engine (docs/docker.md, "The engine's settings").
//!
//! The engine gets `CONTAINERS_CONF` pointing at one merged file, because Podman 4.3 has no
//! `CONTAINERS_CONF_OVERRIDE` and reads *only* the file `CONTAINERS_CONF` names. So podrunner
//! merges, in Podman's own order, what the manager's Podman reads (the host's and the user's
//! files, or the manager's own `CONTAINERS_CONF`), then the pool's optional
//! `engine_containers_conf`, then the `--ulimit`s of the runner's `run_args` (a host whose
//! runners need them needs them for job containers too), then podrunner's own settings. The
//! engine's containers thus start wherever the runner containers start, with no extra key.
//!
//! [`merge`] is pure; [`layer_paths`] and [`read_layers`] read the host.

use super::error::ConfError;
use std::path::{Path, PathBuf};

/// Podman's packaged defaults, read first (containers/common: `DefaultContainersConfig`).
pub const PACKAGED: &str = "/usr/share/containers/containers.conf";
/// The administrator's file (`OverrideContainersConfig`), then its drop-in folder.
pub const SYSTEM: &str = "/etc/containers/containers.conf";
/// Where Podman looks for its helper programs (containers/common `defaultHelperBinariesDir`).
pub const HELPER_DIRS: [&str; 4] = [
    "/usr/local/libexec/podman",
    "/usr/local/lib/podman",
    "/usr/libexec/podman",
    "/usr/lib/podman",
];
/// The subnet of the engine's default network. The engine runs in the runner container's
/// network namespace, whose own interface is on the host's default network (rootful: Podman's
/// 10.88.0.0/16); the engine's default network must not overlap it, or the runner loses its
/// route out. Podman gives networks a job creates the first free /24 of `10.89.0.0/16` upward,
/// skipping subnets in use: this one is at the far end of that range.
pub const ENGINE_DEFAULT_SUBNET: &str = "10.254.254.0/24";

/// What podrunner layers on top of the inherited settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ours {
    /// `[containers] pids_limit`, unless a layer sets one: job containers are not inside the
    /// runner's cgroup (docs/docker.md, Resources).
    pub pids_limit: u64,
    /// `--ulimit` values of the runner's `run_args`, added to `default_ulimits` (same name:
    /// replaced).
    pub ulimits: Vec<String>,
    /// `[network] network_backend = "netavark"` when netavark and aardvark-dns are installed:
    /// containers on a job network resolve each other by name and alias.
    pub netavark: bool,
    /// `[engine] cgroup_manager = "cgroupfs"`: a rootful engine's minimal root has no D-Bus
    /// socket to reach systemd through (engine::sandbox).
    pub cgroupfs: bool,
}

/// Settings every engine gets whatever a layer says: its root holds no journal socket
/// (engine::sandbox), and GitHub's runner reads a service container's output with `docker logs`
/// at the end of the job.
pub const FIXED: [(&str, &str, &str); 2] = [
    ("containers", "log_driver", "k8s-file"),
    ("engine", "events_logger", "file"),
];

/// Merges containers.conf layers (`(name, text)`, first to last) and podrunner's settings into
/// one file. Later layers win key by key inside each table, as Podman reads its files; arrays
/// are replaced. A layer that is not valid TOML is an error naming it.
pub fn merge(layers: &[(String, String)], ours: &Ours) -> Result<String, ConfError> {
    let mut t = toml::Table::new();
    for (name, text) in layers {
        let layer: toml::Table = text.parse().map_err(|source| ConfError::Layer {
            name: name.clone(),
            source,
        })?;
        merge_table(&mut t, layer);
    }
    let containers = table(&mut t, "containers")?;
    containers
        .entry("pids_limit")
        .or_insert(toml::Value::Integer(
            ours.pids_limit.min(i64::MAX as u64) as i64
        ));
    if !ours.ulimits.is_empty() {
        let mut list: Vec<String> = containers
            .get("default_ulimits")
            .and_then(|v| v.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        for u in &ours.ulimits {
            let kind = |s: &str| s.split('=').next().unwrap_or("").to_string();
            list.retain(|have| kind(have) != kind(u));
            list.push(u.clone());
        }
        containers.insert(
            "default_ulimits".into(),
            toml::Value::Array(list.into_iter().map(toml::Value::String).collect()),
        );
    }
    for (section, key, value) in FIXED {
        table(&mut t, section)?.insert(key.into(), value.into());
    }
    if ours.cgroupfs {
        table(&mut t, "engine")?.insert("cgroup_manager".into(), "cgroupfs".into());
    }
    let network = table(&mut t, "network")?;
    if ours.netavark {
        network.insert("network_backend".into(), "netavark".into());
    }
    network.insert("default_subnet".into(), ENGINE_DEFAULT_SUBNET.into());
    Ok(toml::to_string(&t)?)
}

fn merge_table(into: &mut toml::Table, from: toml::Table) {
    for (k, v) in from {
        match (into.get_mut(&k), v) {
            (Some(toml::Value::Table(a)), toml::Value::Table(b)) => merge_table(a, b),
            (_, v) => {
                into.insert(k, v);
            }
        }
    }
}

fn table<'a>(t: &'a mut toml::Table, key: &str) -> Result<&'a mut toml::Table, ConfError> {
    t.entry(key)
        .or_insert_with(|| toml::Value::Table(toml::Table::new()))
        .as_table_mut()
        .ok_or_else(|| ConfError::NotATable(key.to_string()))
}

/// The `--ulimit` values in `podman run` arguments (`--ulimit=X` or `--ulimit X`).
pub fn ulimits_in(args: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if let Some(v) = a.strip_prefix("--ulimit=") {
            out.push(v.to_string());
        } else if a == "--ulimit" {
            out.extend(it.next().cloned());
        }
    }
    out
}

/// The files Podman 4.3 reads, in its order: `containers_conf_env` alone when set (then it
/// reads nothing else); otherwise the packaged file, the system file and its `.d` folder, and
/// for a rootless user the user's file and its `.d` folder (containers/common 0.50,
/// `systemConfigs`). Missing files are left out.
pub fn layer_paths(
    containers_conf_env: Option<&Path>,
    rootless: bool,
    user_config_dir: Option<&Path>,
    exists: &dyn Fn(&Path) -> bool,
    list_dir: &dyn Fn(&Path) -> Vec<PathBuf>,
) -> Vec<PathBuf> {
    if let Some(p) = containers_conf_env {
        return vec![p.to_path_buf()];
    }
    let mut v = Vec::new();
    let mut file_and_dropins = |file: PathBuf| {
        if exists(&file) {
            v.push(file.clone());
        }
        let mut d: Vec<PathBuf> = list_dir(&file.with_extension("conf.d"))
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "conf"))
            .collect();
        d.sort();
        v.extend(d);
    };
    let mut v0 = Vec::new();
    if exists(Path::new(PACKAGED)) {
        v0.push(PathBuf::from(PACKAGED));
    }
    file_and_dropins(PathBuf::from(SYSTEM));
    if rootless {
        if let Some(dir) = user_config_dir {
            file_and_dropins(dir.join("containers/containers.conf"));
        }
    }
    v0.extend(v);
    v0.dedup();
    v0
}

/// The user's configuration folder (`$XDG_CONFIG_HOME`, else `~/.config`), where a rootless
/// Podman reads its own settings (`containers/`).
pub fn user_config_dir() -> Option<PathBuf> {
    std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
}

/// The layers the manager's own Podman reads, with their text (see [`layer_paths`]).
pub fn read_layers() -> Result<Vec<(String, String)>, ConfError> {
    let env = std::env::var_os("CONTAINERS_CONF")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    let config_dir = user_config_dir();
    let list = |d: &Path| -> Vec<PathBuf> {
        std::fs::read_dir(d)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .collect()
    };
    let paths = layer_paths(
        env.as_deref(),
        crate::sys::uid() != 0,
        config_dir.as_deref(),
        &|p| p.is_file(),
        &list,
    );
    paths
        .into_iter()
        .map(|p| {
            std::fs::read_to_string(&p)
                .map(|t| (p.display().to_string(), t))
                .map_err(|source| ConfError::Read {
                    path: p.clone(),
                    source,
                })
        })
        .collect()
}

/// Whether netavark and aardvark-dns are where Podman looks for them.
pub fn netavark_installed(exists: &dyn Fn(&Path) -> bool) -> bool {
    ["netavark", "aardvark-dns"]
        .iter()
        .all(|b| HELPER_DIRS.iter().any(|d| exists(&Path::new(d).join(b))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ours() -> Ours {
        Ours {
            pids_limit: 4096,
            ulimits: vec![],
            netavark: true,
            cgroupfs: false,
        }
    }

    #[test]
    fn later_layers_win_key_by_key_and_ours_come_last() {
        let layers = vec![
            (
                "/usr/share/containers/containers.conf".to_string(),
                "[containers]\nlog_driver = \"k8s-file\"\ndefault_ulimits = [\"nofile=1:1\"]\n[engine]\nevents_logger = \"file\"\n[network]\ndefault_subnet = \"10.88.0.0/16\"\n".to_string(),
            ),
            (
                "/etc/containers/containers.conf".to_string(),
                "[containers]\ndefault_ulimits = [\"nofile=20000:20000\", \"nproc=20000:20000\"]\n[network]\nnetwork_backend = \"cni\"\n".to_string(),
            ),
        ];
        let out: toml::Table = merge(&layers, &ours()).unwrap().parse().unwrap();
        let c = out["containers"].as_table().unwrap();
        assert_eq!(c["log_driver"].as_str(), Some("k8s-file"));
        assert_eq!(
            c["default_ulimits"],
            toml::Value::Array(vec![
                "nofile=20000:20000".into(),
                "nproc=20000:20000".into()
            ])
        );
        assert_eq!(c["pids_limit"].as_integer(), Some(4096));
        assert_eq!(out["engine"]["events_logger"].as_str(), Some("file"));
        assert_eq!(out["network"]["network_backend"].as_str(), Some("netavark"));
        assert_eq!(
            out["network"]["default_subnet"].as_str(),
            Some(ENGINE_DEFAULT_SUBNET)
        );
    }

    #[test]
    fn a_layers_pids_limit_stays_and_run_args_ulimits_replace_by_kind() {
        let layers = vec![(
            "pool".to_string(),
            "[containers]\npids_limit = 100\ndefault_ulimits = [\"nofile=5:5\", \"core=0:0\"]\n"
                .to_string(),
        )];
        let o = Ours {
            pids_limit: 4096,
            ulimits: vec!["nofile=20000:20000".into()],
            netavark: false,
            cgroupfs: true,
        };
        let out: toml::Table = merge(&layers, &o).unwrap().parse().unwrap();
        assert_eq!(out["containers"]["pids_limit"].as_integer(), Some(100));
        assert_eq!(
            out["containers"]["default_ulimits"],
            toml::Value::Array(vec!["core=0:0".into(), "nofile=20000:20000".into()])
        );
        assert!(out["network"].get("network_backend").is_none());
        assert_eq!(out["engine"]["cgroup_manager"].as_str(), Some("cgroupfs"));
    }

    #[test]
    fn journald_settings_of_a_layer_are_replaced() {
        let layers = vec![(
            "/etc/containers/containers.conf".to_string(),
            "[containers]\nlog_driver = \"journald\"\n[engine]\nevents_logger = \"journald\"\ncgroup_manager = \"systemd\"\n".to_string(),
        )];
        let out: toml::Table = merge(&layers, &ours()).unwrap().parse().unwrap();
        assert_eq!(out["containers"]["log_driver"].as_str(), Some("k8s-file"));
        assert_eq!(out["engine"]["events_logger"].as_str(), Some("file"));
        // Rootless engines keep the layer's manager (cgroupfs: false).
        assert_eq!(out["engine"]["cgroup_manager"].as_str(), Some("systemd"));
    }

    #[test]
    fn a_bad_layer_is_named() {
        let e = merge(&[("/etc/x.conf".into(), "[containers\n".into())], &ours()).unwrap_err();
        assert!(
            e.to_string().starts_with("/etc/x.conf is not valid TOML"),
            "{e}"
        );
        let e = merge(&[("f".into(), "network = 3\n".into())], &ours()).unwrap_err();
        assert_eq!(e.to_string(), "containers.conf: `network` must be a table");
    }

    #[test]
    fn ulimits_of_run_args() {
        let a: Vec<String> = [
            "--network=host",
            "--ulimit=nofile=1:2",
            "--ulimit",
            "nproc=3:4",
            "-v",
            "x:y",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(ulimits_in(&a), vec!["nofile=1:2", "nproc=3:4"]);
        assert!(ulimits_in(&["--ulimit".to_string()]).is_empty());
    }

    #[test]
    fn podmans_file_order() {
        let have = [
            "/usr/share/containers/containers.conf",
            "/etc/containers/containers.conf.d/10-a.conf",
            "/etc/containers/containers.conf.d/02-b.conf",
            "/etc/containers/containers.conf.d/notes.txt",
            "/home/u/.config/containers/containers.conf",
        ];
        let exists = |p: &Path| have.iter().any(|h| Path::new(h) == p);
        let list = |d: &Path| -> Vec<PathBuf> {
            have.iter()
                .map(PathBuf::from)
                .filter(|p| p.parent() == Some(d))
                .collect()
        };
        let cfg = Path::new("/home/u/.config");
        assert_eq!(
            layer_paths(None, true, Some(cfg), &exists, &list),
            [
                "/usr/share/containers/containers.conf",
                "/etc/containers/containers.conf.d/02-b.conf",
                "/etc/containers/containers.conf.d/10-a.conf",
                "/home/u/.config/containers/containers.conf",
            ]
            .map(PathBuf::from)
        );
        // Root reads no user file; CONTAINERS_CONF replaces everything.
        assert_eq!(layer_paths(None, false, Some(cfg), &exists, &list).len(), 3);
        assert_eq!(
            layer_paths(
                Some(Path::new("/t/c.conf")),
                true,
                Some(cfg),
                &exists,
                &list
            ),
            vec![PathBuf::from("/t/c.conf")]
        );
        assert!(netavark_installed(
            &|p: &Path| p.starts_with("/usr/lib/podman")
        ));
        assert!(!netavark_installed(&|p: &Path| p.ends_with("netavark")));
    }
}

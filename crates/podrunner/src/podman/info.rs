//! `podman info --format json`: the parts podrunner reads (the host's cgroups, runtime,
//! networking helpers and image store), parsed leniently across Podman versions. Used by
//! `doctor` (its checks) and by the engine (the host's image store, engine/service.rs).

use serde::Deserialize;

/// `podman info` printed something that is not the JSON it documents.
#[derive(Debug, thiserror::Error)]
#[error("cannot read `podman info` output: {0}")]
pub struct InfoParseError(#[from] serde_json::Error);

fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// The parts of `podman info --format json` the checks read. Podman 4.3 and 5.x print the same
/// keys for these, except 5.x adds `host.pasta` and `host.rootlessNetworkCmd`; everything has a
/// default so other versions parse too.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct PodmanInfo {
    pub host: InfoHost,
    pub store: InfoStore,
    pub version: InfoVersion,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct InfoHost {
    /// `v1` or `v2`.
    pub cgroup_version: String,
    /// `cgroupfs` or `systemd`.
    pub cgroup_manager: String,
    #[serde(deserialize_with = "null_default")]
    pub cgroup_controllers: Vec<String>,
    pub oci_runtime: InfoHelper,
    pub security: InfoSecurity,
    /// `netavark` or `cni`.
    pub network_backend: String,
    pub slirp4netns: InfoHelper,
    pub pasta: InfoHelper,
    /// 5.x: `pasta` or `slirp4netns`, the default rootless network.
    pub rootless_network_cmd: String,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct InfoHelper {
    pub name: String,
    pub path: String,
    pub executable: String,
    pub package: String,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct InfoSecurity {
    pub rootless: bool,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct InfoStore {
    pub graph_driver_name: String,
    pub graph_root: String,
    #[serde(deserialize_with = "null_default")]
    pub graph_options: serde_json::Map<String, serde_json::Value>,
    #[serde(deserialize_with = "null_default")]
    pub graph_status: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct InfoVersion {
    #[serde(rename = "Version")]
    pub version: String,
}

impl InfoStore {
    /// The FUSE program overlay runs through (`fuse-overlayfs`), if any.
    pub fn mount_program(&self) -> Option<String> {
        let v = self.graph_options.get("overlay.mount_program")?;
        v.get("Executable")
            .and_then(|e| e.as_str())
            .or_else(|| v.as_str())
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    }
}

pub fn parse_info(json: &[u8]) -> Result<PodmanInfo, InfoParseError> {
    Ok(serde_json::from_slice(json)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `podman info --format json` from Podman 4.3.1 on Debian 12 (this project's CI host,
    /// rootful, abridged).
    const INFO_4_3: &str = r#"{
  "host": {"arch": "amd64", "buildahVersion": "1.28.2", "cgroupManager": "cgroupfs",
    "cgroupVersion": "v1",
    "cgroupControllers": ["cpuset","cpu","cpuacct","blkio","memory","devices","freezer","pids"],
    "conmon": {"package": "conmon_2.1.6+ds1-1_amd64", "path": "/usr/bin/conmon", "version": "conmon version 2.1.6, commit: unknown"},
    "distribution": {"distribution": "debian", "version": "12", "codename": "bookworm"},
    "idMappings": {"gidmap": null, "uidmap": null},
    "networkBackend": "netavark",
    "ociRuntime": {"name": "runc", "package": "runc_1.1.5+ds1-1+deb12u1_amd64", "path": "/usr/bin/runc", "version": "runc version 1.1.5+ds1"},
    "security": {"apparmorEnabled": false, "rootless": false, "seccompEnabled": true},
    "slirp4netns": {"executable": "/usr/bin/slirp4netns", "package": "slirp4netns_1.2.0-1_amd64", "version": "slirp4netns version 1.2.0"}
  },
  "store": {"configFile": "/usr/share/containers/storage.conf", "graphDriverName": "overlay",
    "graphOptions": {}, "graphRoot": "/var/lib/containers/storage",
    "graphStatus": {"Backing Filesystem": "extfs", "Native Overlay Diff": "true", "Supports d_type": "true", "Using metacopy": "false"},
    "imageStore": {"number": 1}, "runRoot": "/run/containers/storage"},
  "registries": {},
  "version": {"APIVersion": "4.3.1", "Version": "4.3.1", "GoVersion": "go1.19.8", "Os": "linux"}
}"#;

    /// The shape Podman 5.x prints rootless on a cgroup v2 host with pasta (abridged).
    const INFO_5: &str = r#"{
  "host": {"arch": "amd64", "cgroupManager": "systemd", "cgroupVersion": "v2",
    "cgroupControllers": ["cpu", "memory", "pids"],
    "databaseBackend": "sqlite",
    "idMappings": {"gidmap": [{"container_id": 0, "host_id": 1000, "size": 1}, {"container_id": 1, "host_id": 524288, "size": 65536}],
                   "uidmap": [{"container_id": 0, "host_id": 1000, "size": 1}, {"container_id": 1, "host_id": 524288, "size": 65536}]},
    "networkBackend": "netavark",
    "networkBackendInfo": {"backend": "netavark", "package": "netavark-1.12.2-1.fc40.x86_64", "path": "/usr/libexec/podman/netavark"},
    "ociRuntime": {"name": "crun", "package": "crun-1.17-1.fc40.x86_64", "path": "/usr/bin/crun", "version": "crun version 1.17"},
    "pasta": {"executable": "/usr/bin/pasta", "package": "passt-0^20240906.g6b38f07-1.fc40.x86_64", "version": "pasta 0^20240906.g6b38f07-1.fc40.x86_64\n"},
    "rootlessNetworkCmd": "pasta",
    "security": {"rootless": true, "seccompEnabled": true, "selinuxEnabled": true},
    "slirp4netns": {"executable": "", "package": "", "version": ""}
  },
  "store": {"graphDriverName": "overlay",
    "graphOptions": {"overlay.mount_program": {"Executable": "/usr/bin/fuse-overlayfs", "Package": "fuse-overlayfs-1.13-1.fc40.x86_64", "Version": "fusermount3 version: 3.16.2"}},
    "graphRoot": "/home/ci/.local/share/containers/storage",
    "graphStatus": {"Backing Filesystem": "btrfs", "Native Overlay Diff": "false", "Supports d_type": "true"},
    "imageStore": {"number": 3}},
  "version": {"APIVersion": "5.2.2", "Version": "5.2.2", "GoVersion": "go1.22.6", "Os": "linux"}
}"#;

    #[test]
    fn parses_podman_4_3_info() {
        let i = parse_info(INFO_4_3.as_bytes()).unwrap();
        assert_eq!(i.version.version, "4.3.1");
        assert!(!i.host.security.rootless);
        assert_eq!(i.host.cgroup_version, "v1");
        assert!(i.host.cgroup_controllers.contains(&"memory".to_string()));
        assert_eq!(i.host.oci_runtime.name, "runc");
        assert_eq!(i.host.network_backend, "netavark");
        assert_eq!(i.host.slirp4netns.executable, "/usr/bin/slirp4netns");
        assert_eq!(i.host.rootless_network_cmd, "");
        assert_eq!(i.store.graph_driver_name, "overlay");
        assert_eq!(i.store.graph_root, "/var/lib/containers/storage");
        assert_eq!(i.store.mount_program(), None);
    }

    #[test]
    fn parses_podman_5_info() {
        let i = parse_info(INFO_5.as_bytes()).unwrap();
        assert_eq!(i.version.version, "5.2.2");
        assert!(i.host.security.rootless);
        assert_eq!(i.host.cgroup_version, "v2");
        assert_eq!(i.host.oci_runtime.name, "crun");
        assert_eq!(i.host.pasta.executable, "/usr/bin/pasta");
        assert_eq!(i.host.rootless_network_cmd, "pasta");
        assert_eq!(
            i.store.mount_program().as_deref(),
            Some("/usr/bin/fuse-overlayfs")
        );
        // null where a list or map is expected, and missing sections, still parse.
        let i = parse_info(br#"{"host":{"cgroupControllers":null},"store":{"graphOptions":null}}"#)
            .unwrap();
        assert!(i.host.cgroup_controllers.is_empty());
        assert!(parse_info(b"not json").is_err());
    }
}

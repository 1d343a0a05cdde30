//! What a job may ask of its runner's engine (`docker_policy = "contained"`, the default;
//! docs/docker.md, "What a job may ask"). Pure: the proxy ([`super::proxy`]) calls it on every
//! container create and exec, after bind sources were translated ([`super::caps::PathMap`]).
//!
//! The engine runs as the manager's user: root on a rootful host, and on a rootless host the
//! user who owns the PAT and podrunner's state. A container is only a boundary if the job
//! cannot ask the engine to remove it, so "contained" refuses what reaches the host: privileged
//! containers and execs, bind mounts of host paths outside the runner's own work folder (and the
//! paths podrunner maps for it), the host's namespaces other than its network, host devices,
//! capabilities that administer the host, and unmasked /proc and /sys.

use serde_json::{Map, Value};

/// Capabilities a job container may not add: each one administers the host or reads what the
/// host protects when the engine is root (capabilities(7)). Others (NET_ADMIN, NET_RAW, ...)
/// act inside the container's own namespaces and are allowed.
pub const HOST_CAPS: [&str; 12] = [
    "ALL",
    "SYS_ADMIN",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_PTRACE",
    "SYS_BOOT",
    "SYS_TIME",
    "DAC_READ_SEARCH",
    "MAC_ADMIN",
    "MAC_OVERRIDE",
    "BPF",
    "PERFMON",
];

/// The namespaces a container may not share with the host (its network it may:
/// `--network host` is how jobs reach services on the runner's host).
const HOST_NAMESPACES: [(&str, &str); 5] = [
    ("PidMode", "pidns"),
    ("IpcMode", "ipcns"),
    ("UTSMode", "utsns"),
    ("UsernsMode", "userns"),
    ("CgroupnsMode", "cgroupns"),
];

/// The contained policy of one runner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Host folders a job container may bind (and what is below them): the runner's work
    /// folder and the targets of the runner's path map. Canonical paths.
    pub allowed: Vec<String>,
}

/// Why a request is refused; the proxy answers 403 with it.
pub fn refusal(what: &str, pool_hint: &str) -> String {
    format!(
        "podrunner: {what} is refused: the runner's engine keeps job containers contained (docker_policy = \"contained\"). If this pool's jobs are trusted with the host, set docker_policy = \"open\"{pool_hint}"
    )
}

fn is_true(v: Option<&Value>) -> bool {
    v.and_then(Value::as_bool).unwrap_or(false)
}

fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    }
}

fn host_cap(cap: &str) -> bool {
    let c = cap.to_ascii_uppercase();
    let c = c.strip_prefix("CAP_").unwrap_or(&c);
    HOST_CAPS.contains(&c)
}

impl Policy {
    /// Whether `path` (as `resolve` sees it on the host) is inside an allowed folder.
    fn bind_allowed(&self, path: &str, resolve: &dyn Fn(&str) -> Option<String>) -> bool {
        let Some(real) = resolve(path) else {
            return false;
        };
        self.allowed.iter().any(|root| {
            real == *root
                || real
                    .strip_prefix(root.as_str())
                    .is_some_and(|rest| rest.starts_with('/'))
        })
    }

    fn check_source(
        &self,
        source: &str,
        resolve: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(), String> {
        // A name, not a path: a named volume of the engine.
        if !source.starts_with('/') {
            return Ok(());
        }
        if self.bind_allowed(source, resolve) {
            Ok(())
        } else {
            Err(format!(
                "a bind mount of the host path {source} (only the runner's work folder may be bound)"
            ))
        }
    }

    /// A Docker `POST /containers/create` body (bind sources already translated).
    pub fn check_docker_create(
        &self,
        body: &Map<String, Value>,
        resolve: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(), String> {
        let empty = Map::new();
        let h = body
            .get("HostConfig")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        if is_true(h.get("Privileged")) {
            return Err("a privileged container".into());
        }
        for b in strings(h.get("Binds")) {
            let src = b.split(':').next().unwrap_or("");
            self.check_source(src, resolve)?;
        }
        if let Some(Value::Array(mounts)) = h.get("Mounts") {
            for m in mounts {
                if m.get("Type").and_then(Value::as_str) == Some("bind") {
                    let src = m.get("Source").and_then(Value::as_str).unwrap_or("");
                    self.check_source(src, resolve)?;
                }
            }
        }
        for (docker, _) in HOST_NAMESPACES {
            if h.get(docker).and_then(Value::as_str) == Some("host") {
                return Err(format!("the host's namespace in {docker}"));
            }
        }
        if let Some(c) = strings(h.get("CapAdd")).iter().find(|c| host_cap(c)) {
            return Err(format!("the capability {c}"));
        }
        if matches!(h.get("Devices"), Some(Value::Array(d)) if !d.is_empty()) {
            return Err("a host device".into());
        }
        if strings(h.get("SecurityOpt"))
            .iter()
            .any(|o| o.replace(' ', "") == "systempaths=unconfined")
        {
            return Err("unmasked /proc and /sys (systempaths=unconfined)".into());
        }
        Ok(())
    }

    /// A libpod `POST /libpod/containers/create` spec.
    pub fn check_libpod_create(
        &self,
        spec: &Map<String, Value>,
        resolve: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(), String> {
        if is_true(spec.get("privileged")) {
            return Err("a privileged container".into());
        }
        if let Some(Value::Array(mounts)) = spec.get("mounts") {
            for m in mounts {
                if m.get("type").and_then(Value::as_str) == Some("bind") {
                    let src = m.get("source").and_then(Value::as_str).unwrap_or("");
                    self.check_source(src, resolve)?;
                }
            }
        }
        for (_, libpod) in HOST_NAMESPACES {
            let mode = spec
                .get(libpod)
                .and_then(|n| n.get("nsmode"))
                .and_then(Value::as_str);
            if mode == Some("host") {
                return Err(format!("the host's namespace in {libpod}"));
            }
        }
        if let Some(c) = strings(spec.get("cap_add")).iter().find(|c| host_cap(c)) {
            return Err(format!("the capability {c}"));
        }
        if matches!(spec.get("devices"), Some(Value::Array(d)) if !d.is_empty()) {
            return Err("a host device".into());
        }
        Ok(())
    }

    /// `POST /containers/{id}/exec` (Docker and libpod use the same body).
    pub fn check_exec(&self, body: &Map<String, Value>) -> Result<(), String> {
        if is_true(body.get("Privileged")) {
            return Err("a privileged exec".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy() -> Policy {
        Policy {
            allowed: vec!["/w/r-1".into(), "/run/pr/e/k/docker.sock".into()],
        }
    }

    /// A host where `/w/r-1/link` is a symlink to /etc and everything else is what it says.
    fn resolve(p: &str) -> Option<String> {
        if p.contains("..") {
            return Some("/etc".into());
        }
        Some(p.replace("/w/r-1/link", "/etc"))
    }

    fn docker(host_config: Value) -> Result<(), String> {
        let body = json!({"Image": "x", "HostConfig": host_config});
        policy().check_docker_create(body.as_object().unwrap(), &resolve)
    }

    #[test]
    fn contained_containers_pass() {
        assert_eq!(docker(json!({})), Ok(()));
        assert_eq!(
            docker(
                json!({"Binds": ["/w/r-1:/w/r-1", "/w/r-1/_work/x:/src:ro", "cache:/cache",
                                    "/run/pr/e/k/docker.sock:/var/run/docker.sock"],
                          "NetworkMode": "host", "CapAdd": ["NET_ADMIN"], "PidMode": "container:abc"})
            ),
            Ok(())
        );
        let none = json!({"Image": "x"});
        assert_eq!(
            policy().check_docker_create(none.as_object().unwrap(), &resolve),
            Ok(())
        );
    }

    #[test]
    fn what_reaches_the_host_is_refused() {
        let cases = [
            (json!({"Privileged": true}), "a privileged container"),
            (
                json!({"Binds": ["/:/host"]}),
                "a bind mount of the host path / (only the runner's work folder may be bound)",
            ),
            (
                json!({"Binds": ["/w/r-10:/x"]}),
                "a bind mount of the host path /w/r-10 (only the runner's work folder may be bound)",
            ),
            (
                json!({"Binds": ["/w/r-1/../../etc:/x"]}),
                "a bind mount of the host path /w/r-1/../../etc (only the runner's work folder may be bound)",
            ),
            (
                json!({"Binds": ["/w/r-1/link:/x"]}),
                "a bind mount of the host path /w/r-1/link (only the runner's work folder may be bound)",
            ),
            (
                json!({"Mounts": [{"Type": "bind", "Source": "/home/u", "Target": "/h"}]}),
                "a bind mount of the host path /home/u (only the runner's work folder may be bound)",
            ),
            (json!({"PidMode": "host"}), "the host's namespace in PidMode"),
            (json!({"UsernsMode": "host"}), "the host's namespace in UsernsMode"),
            (json!({"CapAdd": ["net_raw", "cap_sys_admin"]}), "the capability cap_sys_admin"),
            (json!({"CapAdd": ["ALL"]}), "the capability ALL"),
            (
                json!({"Devices": [{"PathOnHost": "/dev/sda", "PathInContainer": "/dev/sda"}]}),
                "a host device",
            ),
            (
                json!({"SecurityOpt": ["systempaths=unconfined"]}),
                "unmasked /proc and /sys (systempaths=unconfined)",
            ),
        ];
        for (hc, why) in cases {
            assert_eq!(docker(hc.clone()), Err(why.to_string()), "{hc}");
        }
        // A path nobody can resolve (it does not exist) is not bound either.
        let p = policy();
        let body = json!({"HostConfig": {"Binds": ["/w/r-1/missing:/x"]}});
        assert!(p
            .check_docker_create(body.as_object().unwrap(), &|_| None)
            .is_err());
    }

    #[test]
    fn libpod_and_exec() {
        let p = policy();
        let ok = json!({"image": "x", "mounts": [{"type": "bind", "source": "/w/r-1", "destination": "/w"}],
                        "pidns": {"nsmode": "private"}});
        assert_eq!(
            p.check_libpod_create(ok.as_object().unwrap(), &resolve),
            Ok(())
        );
        for (spec, why) in [
            (json!({"privileged": true}), "a privileged container"),
            (
                json!({"mounts": [{"type": "bind", "source": "/etc", "destination": "/e"}]}),
                "a bind mount of the host path /etc (only the runner's work folder may be bound)",
            ),
            (
                json!({"pidns": {"nsmode": "host"}}),
                "the host's namespace in pidns",
            ),
            (
                json!({"cap_add": ["SYS_MODULE"]}),
                "the capability SYS_MODULE",
            ),
            (json!({"devices": [{"path": "/dev/kvm"}]}), "a host device"),
        ] {
            assert_eq!(
                p.check_libpod_create(spec.as_object().unwrap(), &resolve),
                Err(why.to_string())
            );
        }
        assert_eq!(
            p.check_exec(
                json!({"Cmd": ["sh"], "Privileged": true})
                    .as_object()
                    .unwrap()
            ),
            Err("a privileged exec".into())
        );
        assert_eq!(
            p.check_exec(json!({"Cmd": ["sh"]}).as_object().unwrap()),
            Ok(())
        );
        assert!(refusal("a privileged container", " (pool ci)")
            .contains("docker_policy = \"open\" (pool ci)"));
    }
}

//! What the Docker API proxy in front of a runner's engine decides (docs/docker.md,
//! Resources). Pure: it classifies a request and rewrites its body or query so that a
//! container a job creates gets at most the runner's own `cpus`, `memory` and `pids_limit`.
//! [`crate::proxy`] does the socket work.
//!
//! Why a proxy: the engine's containers are not in the runner's cgroup (Podman places them
//! under its own cgroup parent, and a runner's cgroup cannot take children on cgroup v2 or with
//! the systemd cgroup manager), and Podman's Docker API takes each container's limits from the
//! request, ignoring containers.conf (`pids_limit` measured: `max`). Rewriting the request is
//! the one place every container passes through.

use super::contained::Policy;
use super::refusal::{Refusal, Refused};
use crate::proxy::request::{Schema, Target};
use crate::runner::limits;
use serde_json::{Map, Value};

/// CFS period Docker and Podman use when a request gives none (100 ms).
pub const DEFAULT_CPU_PERIOD: i64 = limits::CPU_PERIOD_US;
/// The kernel's bounds of a CFS period (1 ms to 1 s); a request's period is held inside them.
pub const MIN_CPU_PERIOD: i64 = 1_000;
pub const MAX_CPU_PERIOD: i64 = 1_000_000;

/// The runner's limits, which every job container is held to ([`limits::Limits::caps`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Caps {
    /// Bytes.
    pub memory: Option<i64>,
    /// CPUs (1.5 = one and a half cores).
    pub cpus: Option<f64>,
    pub pids: i64,
}

impl Caps {
    fn nano_cpus(&self) -> Option<i64> {
        self.cpus.map(|c| (c * 1e9).round() as i64)
    }
    fn quota_for(&self, period: i64) -> Option<i64> {
        self.cpus.map(|c| limits::cpu_quota(c, period))
    }
}

/// The least `oom_score_adj` of a job container inside a runner's shared budget
/// ([`crate::engine::budget`]): when the budget runs out, the kernel then kills a job container's
/// process before the runner's own listener (score 0), so the runner survives to report the
/// job. A job cannot lower it: an unkillable container would leave only the runner to kill.
pub const JOB_OOM_SCORE_ADJ: i64 = 500;

fn int(v: Option<&Value>) -> i64 {
    v.and_then(Value::as_i64).unwrap_or(0)
}

/// Lowers `obj[key]` to `cap` when it is unset, 0 or negative ("unlimited"), or above `cap`.
fn cap_field(obj: &mut Map<String, Value>, key: &str, cap: i64) {
    let v = int(obj.get(key));
    if v <= 0 || v > cap {
        obj.insert(key.into(), cap.into());
    }
}

/// Docker's `HostConfig` (create) or the update body, which use the same field names.
/// `create` says whether an absent field means "unlimited" (create) or "unchanged" (update).
fn cap_docker_resources(h: &mut Map<String, Value>, caps: &Caps, create: bool) {
    let touch = |h: &Map<String, Value>, k: &str| create || h.contains_key(k);
    if let Some(mem) = caps.memory {
        if touch(h, "Memory") {
            cap_field(h, "Memory", mem);
        }
        let memory = int(h.get("Memory"));
        if int(h.get("MemoryReservation")) > mem {
            h.insert("MemoryReservation".into(), mem.into());
        }
        // Memory + swap: at most what the runner has; never below the memory limit, which
        // the engine would refuse.
        let swap = int(h.get("MemorySwap"));
        let swap_cap = limits::memory_and_swap(mem);
        if swap < 0 || swap > swap_cap {
            h.insert("MemorySwap".into(), swap_cap.into());
        } else if swap > 0 && memory > 0 && swap < memory {
            h.insert("MemorySwap".into(), memory.into());
        }
    }
    if let Some(nano_cap) = caps.nano_cpus() {
        let quota = int(h.get("CpuQuota"));
        let period = int(h.get("CpuPeriod"));
        if quota > 0 || period > 0 {
            // The quota form, with both halves set: a period alone would rescale the quota
            // the container has (a 1 ms period under a 150 ms quota is 150 CPUs), and a
            // `NanoCpus` next to it would be turned into a quota for the default period.
            let period = if period > 0 {
                period.clamp(MIN_CPU_PERIOD, MAX_CPU_PERIOD)
            } else {
                DEFAULT_CPU_PERIOD
            };
            let cap = caps.quota_for(period).unwrap_or(quota);
            let quota = if quota > 0 { quota.min(cap) } else { cap };
            h.insert("CpuQuota".into(), quota.into());
            h.insert("CpuPeriod".into(), period.into());
            h.remove("NanoCpus");
        } else if touch(h, "NanoCpus") {
            cap_field(h, "NanoCpus", nano_cap);
        }
    }
    if touch(h, "PidsLimit") {
        cap_field(h, "PidsLimit", caps.pids);
    }
}

/// Why the proxy answers a request itself.
#[derive(Debug, PartialEq, Eq)]
pub enum Rejected {
    /// 400: the engine could not have read the body either.
    BadBody(String),
    /// 403: the policy refuses it ([`Policy`]).
    Forbidden(Refusal),
}

fn sub_object<'a>(m: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    let slot = m
        .entry(key.to_string())
        .or_insert_with(|| Value::Object(Map::new()));
    if !slot.is_object() {
        *slot = Value::Object(Map::new());
    }
    slot.as_object_mut().expect("made an object above")
}

/// Everything the proxy applies to one runner's requests.
#[derive(Debug, Clone)]
pub struct Rules {
    pub caps: Caps,
    pub paths: PathMap,
    /// `None`: `docker_policy = "open"`.
    pub policy: Option<Policy>,
    /// Names the pool in refusals, e.g. ` in pool ci`.
    pub pool_hint: String,
    /// The runner's cgroup budget ([`crate::engine::budget`]): every job container's cgroup parent.
    pub cgroup_parent: Option<String>,
}

/// A request body as the engine gets it, for one of the JSON routes: under the contained
/// policy checked ([`Policy`]; bind sources translated by the [`PathMap`] first, checked with
/// `resolve`, the host's real path of a source or `None` when it cannot be resolved, and
/// replaced by what `resolve` gave so that the engine mounts the path that was checked);
/// resources capped and the runner's cgroup budget imposed, under either policy.
pub fn rewrite(
    schema: Schema,
    m: &mut Map<String, Value>,
    rules: &Rules,
    resolve: &dyn Fn(&str) -> Option<String>,
) -> Result<(), Rejected> {
    let forbid = |what: Refused| Rejected::Forbidden(what.in_pool(&rules.pool_hint));
    let policy = rules.policy.as_ref();
    let checked = |f: &dyn Fn(&Policy) -> Result<(), Refused>| match policy {
        Some(p) => f(p).map_err(forbid),
        None => Ok(()),
    };
    match schema {
        Schema::ContainerCreate => {
            if let Some(Value::Object(h)) = m.get_mut("HostConfig") {
                map_docker_sources(h, &|s| rules.paths.translate(s));
            }
            if let Some(p) = policy {
                p.check_docker_create(m, resolve).map_err(forbid)?;
                if let Some(Value::Object(h)) = m.get_mut("HostConfig") {
                    map_docker_sources(h, &|s| s.starts_with('/').then(|| resolve(s)).flatten());
                    p.force_read_only(h);
                }
            }
            let h = sub_object(m, "HostConfig");
            cap_docker_resources(h, &rules.caps, true);
            budget_and_oom(h, "CgroupParent", "OomScoreAdj", rules);
        }
        Schema::ContainerUpdate => {
            checked(&|p| p.check_update(m))?;
            cap_docker_resources(m, &rules.caps, false);
            if m.contains_key("OomScoreAdj") || m.contains_key("CgroupParent") {
                budget_and_oom(m, "CgroupParent", "OomScoreAdj", rules);
            }
        }
        Schema::ExecCreate => checked(&|p| p.check_exec(m))?,
        Schema::ExecStart => checked(&|p| p.check_exec_start(m))?,
        Schema::NetworkCreate => checked(&|p| p.check_network_create(m))?,
        Schema::NetworkConnect => checked(&|p| p.check_network_connect(m))?,
        Schema::NetworkDisconnect => checked(&|p| p.check_network_disconnect(m))?,
        Schema::VolumeCreate => checked(&|p| p.check_volume_create(m))?,
        Schema::Opaque => {}
    }
    Ok(())
}

/// A libpod `POST /libpod/containers/create` spec (`docker_policy = "open"` only: the
/// contained policy refuses every libpod route): resources capped, `unified` (raw cgroup
/// files) dropped, the budget imposed.
pub fn rewrite_libpod_create(m: &mut Map<String, Value>, rules: &Rules) {
    map_libpod_sources(m, &|s| rules.paths.translate(s));
    let r = sub_object(m, "resource_limits");
    r.remove("unified");
    cap_libpod(r, &rules.caps);
    budget_and_oom(m, "cgroup_parent", "oom_score_adj", rules);
}

/// The runner's cgroup budget as the container's parent, when there is one, and an
/// `oom_score_adj` no lower than 0 (no lower than [`JOB_OOM_SCORE_ADJ`] in a budget): a
/// job container is never spared by the OOM killer at the runner's expense.
fn budget_and_oom(h: &mut Map<String, Value>, parent: &str, oom: &str, rules: &Rules) {
    let least = match &rules.cgroup_parent {
        Some(p) => {
            h.insert(parent.into(), Value::String(p.clone()));
            JOB_OOM_SCORE_ADJ
        }
        None => 0,
    };
    let adj = int(h.get(oom)).max(least);
    h.insert(oom.into(), adj.into());
}

/// [`rewrite`] of a body given as bytes, for tests: the result serialized again.
#[cfg(test)]
pub fn rewrite_bytes(
    schema: Schema,
    body: &[u8],
    rules: &Rules,
    resolve: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<u8>, Rejected> {
    let mut m = super::json::parse_object(body).map_err(|e| Rejected::BadBody(e.to_string()))?;
    rewrite(schema, &mut m, rules, resolve)?;
    Ok(serde_json::to_vec(&m).expect("a JSON value serializes"))
}

/// Replaces each bind source of a Docker `HostConfig` (`Binds` entries `SRC:DST[:OPTS]`,
/// `Mounts` of type bind) for which `f` gives a new path.
pub(crate) fn map_docker_sources(h: &mut Map<String, Value>, f: &dyn Fn(&str) -> Option<String>) {
    if let Some(Value::Array(binds)) = h.get_mut("Binds") {
        for b in binds.iter_mut() {
            let Some(text) = b.as_str() else { continue };
            let (src, rest) = text.split_once(':').unwrap_or((text, ""));
            if let Some(new) = f(src) {
                *b = Value::String(if rest.is_empty() {
                    new
                } else {
                    format!("{new}:{rest}")
                });
            }
        }
    }
    map_mount_list(h.get_mut("Mounts"), "Type", "Source", f);
}

/// The same for libpod's `mounts` (`type`, `source`, `destination`).
fn map_libpod_sources(m: &mut Map<String, Value>, f: &dyn Fn(&str) -> Option<String>) {
    map_mount_list(m.get_mut("mounts"), "type", "source", f);
}

fn map_mount_list(
    list: Option<&mut Value>,
    type_key: &str,
    source_key: &str,
    f: &dyn Fn(&str) -> Option<String>,
) {
    let Some(Value::Array(mounts)) = list else {
        return;
    };
    for mount in mounts.iter_mut().filter_map(Value::as_object_mut) {
        if mount.get(type_key).and_then(Value::as_str) != Some("bind") {
            continue;
        }
        let new = mount.get(source_key).and_then(Value::as_str).and_then(f);
        if let Some(new) = new {
            mount.insert(source_key.into(), Value::String(new));
        }
    }
}

/// A `--map` argument of the proxy that is not `INSIDE=HOST` with absolute paths.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadMap {
    #[error("--map {0:?}: expected INSIDE=HOST")]
    NoEquals(String),
    #[error("--map {0:?}: both paths must be absolute")]
    Relative(String),
}

/// Paths inside the runner that a job's containers name as bind-mount sources, and where they
/// are on the host. The engine resolves bind sources on the host, so the runner's own view must
/// be translated: GitHub's runner mounts `/var/run/docker.sock` into every job and service
/// container and its `externals` folder (node for JavaScript actions) at `/__e`
/// (actions/runner, ContainerOperationProvider). The work folder needs no entry: it is at the
/// same path on both sides.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PathMap(Vec<(String, String)>);

impl PathMap {
    /// From `INSIDE=HOST` pairs (the proxy's `--map` arguments); the longest prefix wins.
    pub fn parse(pairs: &[String]) -> Result<PathMap, BadMap> {
        let mut v = Vec::new();
        for p in pairs {
            let Some((inside, host)) = p.split_once('=') else {
                return Err(BadMap::NoEquals(p.clone()));
            };
            if !inside.starts_with('/') || !host.starts_with('/') {
                return Err(BadMap::Relative(p.clone()));
            }
            v.push((inside.trim_end_matches('/').to_string(), host.to_string()));
        }
        v.sort_by_key(|(inside, _)| std::cmp::Reverse(inside.len()));
        Ok(PathMap(v))
    }

    /// The same map with `inside` standing for `host` instead.
    pub fn with(&self, inside: &str, host: &str) -> PathMap {
        let inside = inside.trim_end_matches('/');
        let mut v: Vec<(String, String)> = self
            .0
            .iter()
            .filter(|(i, _)| i != inside)
            .cloned()
            .collect();
        v.push((inside.to_string(), host.to_string()));
        v.sort_by_key(|(inside, _)| std::cmp::Reverse(inside.len()));
        PathMap(v)
    }

    /// The host path of `source`, when it is at or below a mapped path.
    pub fn translate(&self, source: &str) -> Option<String> {
        self.0.iter().find_map(|(inside, host)| {
            let rest = source.strip_prefix(inside.as_str())?;
            (rest.is_empty() || rest.starts_with('/')).then(|| format!("{host}{rest}"))
        })
    }
}

/// libpod's spec: `resource_limits.{memory.{limit,swap}, cpu.{quota,period}, pids.limit}` (the
/// OCI runtime spec's LinuxResources).
fn cap_libpod(r: &mut Map<String, Value>, caps: &Caps) {
    if let Some(mem) = caps.memory {
        let m = sub_object(r, "memory");
        cap_field(m, "limit", mem);
        let swap = int(m.get("swap"));
        if swap < 0 || swap > limits::memory_and_swap(mem) {
            m.insert("swap".into(), limits::memory_and_swap(mem).into());
        }
    }
    if caps.cpus.is_some() {
        let c = sub_object(r, "cpu");
        let period = match int(c.get("period")) {
            p if p > 0 => p,
            _ => DEFAULT_CPU_PERIOD,
        };
        let cap = caps.quota_for(period).unwrap_or(0);
        let quota = int(c.get("quota"));
        if quota <= 0 || quota > cap {
            c.insert("quota".into(), cap.into());
            c.insert("period".into(), period.into());
        }
    }
    cap_field(sub_object(r, "pids"), "limit", caps.pids);
}

/// The query of a capped `POST /build`: `memory`, `memswap` and `cpuquota` (with
/// `cpuperiod`) lowered to the runner's limits, other parameters kept as they came.
pub fn cap_build_query(t: &mut Target, caps: &Caps) {
    let get = |t: &Target, k: &str| -> i64 { t.param(k).and_then(|v| v.parse().ok()).unwrap_or(0) };
    if let Some(mem) = caps.memory {
        let m = get(t, "memory");
        if m <= 0 || m > mem {
            t.set_param("memory", mem.to_string());
        }
        let s = get(t, "memswap");
        if s <= 0 || s > limits::memory_and_swap(mem) {
            t.set_param("memswap", limits::memory_and_swap(mem).to_string());
        }
    }
    let period = match get(t, "cpuperiod") {
        p if p > 0 => p.clamp(MIN_CPU_PERIOD, MAX_CPU_PERIOD),
        _ => DEFAULT_CPU_PERIOD,
    };
    if let Some(cap) = caps.quota_for(period) {
        let q = get(t, "cpuquota");
        t.set_param(
            "cpuquota",
            if q <= 0 || q > cap { cap } else { q }.to_string(),
        );
        t.set_param("cpuperiod", period.to_string());
    }
}

#[cfg(test)]
mod tests;

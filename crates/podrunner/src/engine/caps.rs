//! What the Docker API proxy in front of a runner's engine decides (docs/docker.md,
//! Resources). Pure: it classifies a request and rewrites its body or query so that a
//! container a job creates gets at most the runner's own `cpus`, `memory` and `pids_limit`.
//! [`super::proxy`] does the socket work.
//!
//! Why a proxy: the engine's containers are not in the runner's cgroup (Podman places them
//! under its own cgroup parent, and a runner's cgroup cannot take children on cgroup v2 or with
//! the systemd cgroup manager), and Podman's Docker API takes each container's limits from the
//! request, ignoring containers.conf (`pids_limit` measured: `max`). Rewriting the request is
//! the one place every container passes through.

use super::policy::{refusal, Policy};
use serde_json::{Map, Value};

/// CFS period Docker and Podman use when a request gives none (100 ms).
pub const DEFAULT_CPU_PERIOD: i64 = 100_000;
/// Podman gives a container with a memory limit and no swap setting a memory+swap limit of
/// twice its memory; the runner container gets exactly that, so job containers get the same.
pub const SWAP_FACTOR: i64 = 2;

/// The runner's limits, which every job container is held to.
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
        self.cpus.map(|c| (c * period as f64).round() as i64)
    }
}

/// The least `oom_score_adj` of a job container inside a runner's shared budget
/// ([`super::budget`]): when the budget runs out, the kernel then kills a job container's
/// process before the runner's own listener (score 0), so the runner survives to report the
/// job. A job cannot lower it: an unkillable container would leave only the runner to kill.
pub const JOB_OOM_SCORE_ADJ: i64 = 500;

/// What the proxy does with one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Passed on untouched.
    Forward,
    /// `POST /containers/create`: cap `HostConfig`.
    DockerCreate,
    /// `POST /containers/{id}/update`: cap the top-level resource fields.
    DockerUpdate,
    /// `POST /build`: cap the `memory`, `cpuquota` query parameters.
    DockerBuild,
    /// `POST /libpod/containers/create`: cap `resource_limits`.
    LibpodCreate,
    /// `POST /containers/{id}/exec` (Docker or libpod): checked, not changed.
    Exec,
    /// Refused with this message: the request would create containers the proxy cannot cap.
    Refuse(String),
}

/// Strips a `/vX.Y` (Docker) or `/vX.Y.Z` (libpod) version prefix.
fn unversioned(path: &str) -> &str {
    if let Some(rest) = path.strip_prefix("/v") {
        if let Some(i) = rest.find('/') {
            let v = &rest[..i];
            if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
                return &rest[i..];
            }
        }
    }
    path
}

/// The segments of a request target's path without its API version:
/// `/v1.41/containers/abc/start?x=1` → `["containers", "abc", "start"]`.
pub fn api_path(target: &str) -> Vec<&str> {
    let path = target.split('?').next().unwrap_or("");
    unversioned(path)
        .trim_end_matches('/')
        .split('/')
        .skip(1)
        .collect()
}

/// [`api_path`] with libpod's `libpod/` prefix dropped, for the endpoints both APIs share.
pub fn shared_api_path(target: &str) -> Vec<&str> {
    let mut parts = api_path(target);
    if parts.first() == Some(&"libpod") {
        parts.remove(0);
    }
    parts
}

/// Classifies a request by method and target (path and query).
pub fn route(method: &str, target: &str) -> Route {
    if method != "POST" {
        return Route::Forward;
    }
    let parts = api_path(target);
    let path = format!("/{}", parts.join("/"));
    match parts.as_slice() {
        ["containers", "create"] => Route::DockerCreate,
        ["containers", _, "update"] => Route::DockerUpdate,
        ["build"] => Route::DockerBuild,
        ["libpod", "containers", "create"] => Route::LibpodCreate,
        ["containers", _, "exec"] | ["libpod", "containers", _, "exec"] => Route::Exec,
        ["libpod", "containers", _, "update"]
        | ["libpod", "play", "kube"]
        | ["libpod", "kube", "play"]
        | ["libpod", "pods", "create"]
        | ["libpod", "build"] => Route::Refuse(format!(
            "podrunner: {path} is not available to jobs: the runner's engine holds every container to the runner's cpus, memory and pids limits, which it can do for the Docker API and `podman --remote create/run` only"
        )),
        _ => Route::Forward,
    }
}

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
        let swap_cap = SWAP_FACTOR * mem;
        if swap < 0 || swap > swap_cap {
            h.insert("MemorySwap".into(), swap_cap.into());
        } else if swap > 0 && memory > 0 && swap < memory {
            h.insert("MemorySwap".into(), memory.into());
        }
    }
    if caps.cpus.is_some() {
        let quota = int(h.get("CpuQuota"));
        if quota > 0 {
            // The quota form; Docker refuses NanoCpus next to it.
            let period = match int(h.get("CpuPeriod")) {
                p if p > 0 => p,
                _ => DEFAULT_CPU_PERIOD,
            };
            let cap = caps.quota_for(period).unwrap_or(quota);
            if quota > cap {
                h.insert("CpuQuota".into(), cap.into());
            }
        } else if let Some(nano) = caps.nano_cpus() {
            if touch(h, "NanoCpus") {
                cap_field(h, "NanoCpus", nano);
            }
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
    Forbidden(String),
}

fn parse_object(body: &[u8]) -> Result<Map<String, Value>, Rejected> {
    let bad = |why: String| {
        Rejected::BadBody(format!(
            "podrunner: the request body is not the JSON object the engine expects: {why}"
        ))
    };
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(bad("not an object".into())),
        Err(e) => Err(bad(e.to_string())),
    }
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
    /// The runner's cgroup budget ([`super::budget`]): every job container's cgroup parent.
    pub cgroup_parent: Option<String>,
}

/// The body of a capped request (no path map, no policy).
pub fn cap_body(route: &Route, body: &[u8], caps: &Caps) -> Result<Vec<u8>, Rejected> {
    let rules = Rules {
        caps: *caps,
        paths: PathMap::default(),
        policy: None,
        pool_hint: String::new(),
        cgroup_parent: None,
    };
    rewrite_body(route, body, &rules, &|p| Some(p.to_string()))
}

/// The body of a request as the engine gets it: bind sources translated ([`PathMap`]), checked
/// against the policy with `resolve` (the host's real path of a bind source, `None` when it
/// cannot be resolved) and replaced by what `resolve` gave, so that the engine mounts the path
/// that was checked; resources capped.
pub fn rewrite_body(
    route: &Route,
    body: &[u8],
    rules: &Rules,
    resolve: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<u8>, Rejected> {
    let mut m = parse_object(body)?;
    let forbid = |what: String| Rejected::Forbidden(refusal(&what, &rules.pool_hint));
    match route {
        Route::DockerCreate => {
            let h = sub_object(&mut m, "HostConfig");
            map_docker_sources(h, &|s| rules.paths.translate(s));
            if let Some(p) = &rules.policy {
                p.check_docker_create(&m, resolve).map_err(forbid)?;
                map_docker_sources(sub_object(&mut m, "HostConfig"), &|s| {
                    s.starts_with('/').then(|| resolve(s)).flatten()
                });
            }
            let h = sub_object(&mut m, "HostConfig");
            cap_docker_resources(h, &rules.caps, true);
            if let Some(p) = &rules.cgroup_parent {
                h.insert("CgroupParent".into(), Value::String(p.clone()));
                let adj = int(h.get("OomScoreAdj")).max(JOB_OOM_SCORE_ADJ);
                h.insert("OomScoreAdj".into(), adj.into());
            }
        }
        Route::DockerUpdate => cap_docker_resources(&mut m, &rules.caps, false),
        Route::LibpodCreate => {
            map_libpod_sources(&mut m, &|s| rules.paths.translate(s));
            if let Some(p) = &rules.policy {
                p.check_libpod_create(&m, resolve).map_err(forbid)?;
                map_libpod_sources(&mut m, &|s| {
                    s.starts_with('/').then(|| resolve(s)).flatten()
                });
            }
            cap_libpod(sub_object(&mut m, "resource_limits"), &rules.caps);
            if let Some(p) = &rules.cgroup_parent {
                m.insert("cgroup_parent".into(), Value::String(p.clone()));
                let adj = int(m.get("oom_score_adj")).max(JOB_OOM_SCORE_ADJ);
                m.insert("oom_score_adj".into(), adj.into());
            }
        }
        Route::Exec => {
            if let Some(p) = &rules.policy {
                p.check_exec(&m).map_err(forbid)?;
            }
        }
        _ => {}
    }
    Ok(serde_json::to_vec(&Value::Object(m)).expect("a JSON value serializes"))
}

/// Replaces each bind source of a Docker `HostConfig` (`Binds` entries `SRC:DST[:OPTS]`,
/// `Mounts` of type bind) for which `f` gives a new path.
fn map_docker_sources(h: &mut Map<String, Value>, f: &dyn Fn(&str) -> Option<String>) {
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
    pub fn parse(pairs: &[String]) -> Result<PathMap, String> {
        let mut v = Vec::new();
        for p in pairs {
            let Some((inside, host)) = p.split_once('=') else {
                return Err(format!("--map {p:?}: expected INSIDE=HOST"));
            };
            if !inside.starts_with('/') || !host.starts_with('/') {
                return Err(format!("--map {p:?}: both paths must be absolute"));
            }
            v.push((inside.trim_end_matches('/').to_string(), host.to_string()));
        }
        v.sort_by_key(|(inside, _)| std::cmp::Reverse(inside.len()));
        Ok(PathMap(v))
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
        if swap < 0 || swap > SWAP_FACTOR * mem {
            m.insert("swap".into(), (SWAP_FACTOR * mem).into());
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

/// The target of a capped `POST /build`: `memory` and `cpuquota` (with `cpuperiod`) lowered to
/// the runner's limits, other parameters kept as they came.
pub fn cap_build_target(target: &str, caps: &Caps) -> String {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (k.to_string(), v.to_string())
        })
        .collect();
    let get = |pairs: &[(String, String)], k: &str| -> i64 {
        pairs
            .iter()
            .find(|(key, _)| key == k)
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0)
    };
    fn set(pairs: &mut Vec<(String, String)>, k: &str, v: i64) {
        pairs.retain(|(key, _)| key != k);
        pairs.push((k.to_string(), v.to_string()));
    }
    if let Some(mem) = caps.memory {
        let m = get(&pairs, "memory");
        if m <= 0 || m > mem {
            set(&mut pairs, "memory", mem);
        }
        let s = get(&pairs, "memswap");
        if s < 0 || s > SWAP_FACTOR * mem {
            set(&mut pairs, "memswap", SWAP_FACTOR * mem);
        }
    }
    let period = match get(&pairs, "cpuperiod") {
        p if p > 0 => p,
        _ => DEFAULT_CPU_PERIOD,
    };
    if let Some(cap) = caps.quota_for(period) {
        let q = get(&pairs, "cpuquota");
        if q <= 0 || q > cap {
            set(&mut pairs, "cpuquota", cap);
            set(&mut pairs, "cpuperiod", period);
        }
    }
    if pairs.is_empty() {
        return path.to_string();
    }
    let q: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{path}?{}", q.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const CAPS: Caps = Caps {
        memory: Some(256 << 20),
        cpus: Some(1.5),
        pids: 512,
    };

    /// [`rewrite_body`] of a JSON body, its result parsed back.
    fn rewritten(
        route: &Route,
        body: &Value,
        rules: &Rules,
        resolve: &dyn Fn(&str) -> Option<String>,
    ) -> Value {
        let out = rewrite_body(route, body.to_string().as_bytes(), rules, resolve).unwrap();
        serde_json::from_slice(&out).unwrap()
    }

    fn capped(route: Route, body: Value) -> Value {
        serde_json::from_slice(&cap_body(&route, body.to_string().as_bytes(), &CAPS).unwrap())
            .unwrap()
    }

    #[test]
    fn api_paths() {
        assert_eq!(
            api_path("/v1.41/containers/abc/start?x=1"),
            ["containers", "abc", "start"]
        );
        assert_eq!(api_path("/v4.3.1/libpod/info"), ["libpod", "info"]);
        assert_eq!(
            shared_api_path("/v4.3.1/libpod/exec/e/start"),
            ["exec", "e", "start"]
        );
        assert_eq!(api_path("/_ping"), ["_ping"]);
        assert_eq!(
            api_path("/vx/containers/json"),
            ["vx", "containers", "json"]
        );
    }

    #[test]
    fn routes() {
        assert_eq!(
            route("POST", "/v1.41/containers/create?name=x"),
            Route::DockerCreate
        );
        assert_eq!(route("POST", "/containers/create"), Route::DockerCreate);
        assert_eq!(
            route("POST", "/v1.41/containers/abc/update"),
            Route::DockerUpdate
        );
        assert_eq!(
            route("POST", "/v1.41/build?t=x&memory=1"),
            Route::DockerBuild
        );
        assert_eq!(
            route("POST", "/v4.3.1/libpod/containers/create"),
            Route::LibpodCreate
        );
        assert!(matches!(
            route("POST", "/v4.3.1/libpod/play/kube"),
            Route::Refuse(_)
        ));
        assert!(matches!(
            route("POST", "/v4.3.1/libpod/containers/x/update"),
            Route::Refuse(_)
        ));
        assert_eq!(route("GET", "/v1.41/containers/create"), Route::Forward);
        assert_eq!(route("POST", "/v1.41/containers/abc/start"), Route::Forward);
        assert_eq!(
            route("POST", "/v1.41/containers/abc/attach?stream=1"),
            Route::Forward
        );
        assert_eq!(route("GET", "/_ping"), Route::Forward);
        // A container may be named "create": only the exact shapes match.
        assert_eq!(
            route("POST", "/v1.41/containers/create/start"),
            Route::Forward
        );
    }

    #[test]
    fn create_without_limits_gets_the_runners() {
        let v = capped(
            Route::DockerCreate,
            json!({"Image": "alpine", "Cmd": ["true"]}),
        );
        assert_eq!(
            v,
            json!({"Image": "alpine", "Cmd": ["true"], "HostConfig": {
                "Memory": 268435456, "NanoCpus": 1500000000, "PidsLimit": 512}})
        );
    }

    #[test]
    fn create_asking_more_is_lowered_and_less_is_kept() {
        let v = capped(
            Route::DockerCreate,
            json!({"HostConfig": {"Memory": 1i64 << 34, "MemorySwap": -1, "NanoCpus": 4_000_000_000i64,
                   "PidsLimit": -1, "MemoryReservation": 1i64 << 33, "Binds": ["/w:/w"]}}),
        );
        assert_eq!(
            v["HostConfig"],
            json!({"Memory": 268435456, "MemorySwap": 536870912, "NanoCpus": 1500000000,
                   "PidsLimit": 512, "MemoryReservation": 268435456, "Binds": ["/w:/w"]})
        );
        let v = capped(
            Route::DockerCreate,
            json!({"HostConfig": {"Memory": 64 << 20, "MemorySwap": 100 << 20, "NanoCpus": 500_000_000, "PidsLimit": 100}}),
        );
        assert_eq!(
            v["HostConfig"],
            json!({"Memory": 67108864, "MemorySwap": 104857600, "NanoCpus": 500000000, "PidsLimit": 100})
        );
    }

    #[test]
    fn create_with_a_cpu_quota_keeps_the_quota_form() {
        let v = capped(
            Route::DockerCreate,
            json!({"HostConfig": {"CpuQuota": 400000, "CpuPeriod": 200000}}),
        );
        assert_eq!(v["HostConfig"]["CpuQuota"], json!(300000));
        assert_eq!(v["HostConfig"]["CpuPeriod"], json!(200000));
        assert!(v["HostConfig"].get("NanoCpus").is_none());
        let v = capped(
            Route::DockerCreate,
            json!({"HostConfig": {"CpuQuota": 50000}}),
        );
        assert_eq!(v["HostConfig"]["CpuQuota"], json!(50000));
    }

    #[test]
    fn swap_never_below_memory() {
        let v = capped(
            Route::DockerCreate,
            json!({"HostConfig": {"Memory": 1i64 << 34, "MemorySwap": 200 << 20}}),
        );
        assert_eq!(v["HostConfig"]["Memory"], json!(268435456));
        assert_eq!(v["HostConfig"]["MemorySwap"], json!(268435456));
    }

    #[test]
    fn update_caps_only_what_it_changes() {
        let v = capped(
            Route::DockerUpdate,
            json!({"RestartPolicy": {"Name": "no"}}),
        );
        assert_eq!(v, json!({"RestartPolicy": {"Name": "no"}}));
        let v = capped(
            Route::DockerUpdate,
            json!({"Memory": 1i64 << 34, "PidsLimit": 0, "NanoCpus": 8_000_000_000i64}),
        );
        assert_eq!(
            v,
            json!({"Memory": 268435456, "PidsLimit": 512, "NanoCpus": 1500000000})
        );
    }

    #[test]
    fn libpod_create() {
        let v = capped(Route::LibpodCreate, json!({"image": "alpine"}));
        assert_eq!(
            v,
            json!({"image": "alpine", "resource_limits": {
                "memory": {"limit": 268435456},
                "cpu": {"quota": 150000, "period": 100000},
                "pids": {"limit": 512}}})
        );
        let v = capped(
            Route::LibpodCreate,
            json!({"resource_limits": {"memory": {"limit": 1024}, "cpu": {"quota": 20000, "period": 100000}, "pids": {"limit": 9}}}),
        );
        assert_eq!(
            v["resource_limits"],
            json!({"memory": {"limit": 1024}, "cpu": {"quota": 20000, "period": 100000}, "pids": {"limit": 9}})
        );
    }

    #[test]
    fn no_cpu_or_memory_cap_leaves_those_alone() {
        let caps = Caps {
            memory: None,
            cpus: None,
            pids: 7,
        };
        let out = cap_body(
            &Route::DockerCreate,
            br#"{"HostConfig":{"Memory":5}}"#,
            &caps,
        )
        .unwrap();
        assert_eq!(
            serde_json::from_slice::<Value>(&out).unwrap(),
            json!({"HostConfig": {"Memory": 5, "PidsLimit": 7}})
        );
        assert_eq!(
            cap_build_target("/v1.41/build?t=a", &caps),
            "/v1.41/build?t=a"
        );
    }

    #[test]
    fn bad_bodies() {
        assert!(cap_body(&Route::DockerCreate, b"[1]", &CAPS).is_err());
        assert!(cap_body(&Route::DockerCreate, b"{", &CAPS).is_err());
        // A HostConfig that is not an object is replaced, never passed on uncapped.
        let v = capped(Route::DockerCreate, json!({"HostConfig": "x"}));
        assert_eq!(v["HostConfig"]["PidsLimit"], json!(512));
    }

    #[test]
    fn bind_sources_inside_the_runner_become_host_paths() {
        let paths = PathMap::parse(&[
            "/var/run/docker.sock=/run/pr/e/k/docker.sock".into(),
            "/home/runner/externals=/var/lib/pr/externals/abc".into(),
            "/home/runner=/nowhere".into(),
        ])
        .unwrap();
        assert_eq!(
            paths.translate("/home/runner/externals/node20"),
            Some("/var/lib/pr/externals/abc/node20".into())
        );
        assert_eq!(
            paths.translate("/home/runner/externalsX"),
            Some("/nowhere/externalsX".into())
        );
        assert_eq!(paths.translate("/var/run/docker.sockX"), None);
        assert_eq!(
            paths.translate("/var/run/docker.sock"),
            Some("/run/pr/e/k/docker.sock".into())
        );
        let caps = Caps {
            memory: None,
            cpus: None,
            pids: 9,
        };
        let body = json!({"HostConfig": {
            "Binds": ["/var/run/docker.sock:/var/run/docker.sock", "/home/runner/externals:/__e:ro",
                      "/w/r-1/_work:/__w", "myvolume:/data"],
            "Mounts": [{"Type": "bind", "Source": "/home/runner/externals/node20", "Target": "/n"},
                       {"Type": "volume", "Source": "/home/runner/externals", "Target": "/v"}]}});
        let rules = Rules {
            caps,
            paths,
            policy: None,
            pool_hint: String::new(),
            cgroup_parent: None,
        };
        let same = |p: &str| Some(p.to_string());
        let v = rewritten(&Route::DockerCreate, &body, &rules, &same);
        assert_eq!(
            v["HostConfig"]["Binds"],
            json!([
                "/run/pr/e/k/docker.sock:/var/run/docker.sock",
                "/var/lib/pr/externals/abc:/__e:ro",
                "/w/r-1/_work:/__w",
                "myvolume:/data"
            ])
        );
        assert_eq!(
            v["HostConfig"]["Mounts"],
            json!([{"Type": "bind", "Source": "/var/lib/pr/externals/abc/node20", "Target": "/n"},
                   {"Type": "volume", "Source": "/home/runner/externals", "Target": "/v"}])
        );
        let body = json!({"mounts": [{"type": "bind", "source": "/var/run/docker.sock", "destination": "/d"}]});
        let v = rewritten(&Route::LibpodCreate, &body, &rules, &same);
        assert_eq!(v["mounts"][0]["source"], json!("/run/pr/e/k/docker.sock"));
        assert!(PathMap::parse(&["relative=/x".into()]).is_err());
        assert!(PathMap::parse(&["/x".into()]).is_err());
    }

    #[test]
    fn contained_policy_checks_after_translation_and_binds_what_it_checked() {
        let rules = Rules {
            caps: CAPS,
            paths: PathMap::parse(&["/var/run/docker.sock=/run/pr/e/k/docker.sock".into()])
                .unwrap(),
            policy: Some(Policy {
                allowed: vec!["/w/r-1".into(), "/run/pr/e/k/docker.sock".into()],
            }),
            pool_hint: " in pool ci".into(),
            cgroup_parent: Some("/podrunner.ci/r-1".into()),
        };
        let resolve = |p: &str| Some(p.replace("/w/r-1/link", "/w/r-1/real"));
        let body = json!({"HostConfig": {"Binds": ["/var/run/docker.sock:/var/run/docker.sock",
                                                   "/w/r-1/link/src:/src"]}});
        let v = rewritten(&Route::DockerCreate, &body, &rules, &resolve);
        assert_eq!(
            v["HostConfig"]["Binds"],
            json!([
                "/run/pr/e/k/docker.sock:/var/run/docker.sock",
                "/w/r-1/real/src:/src"
            ])
        );
        // In the runner's budget, and killed before the runner when it runs out.
        assert_eq!(v["HostConfig"]["CgroupParent"], json!("/podrunner.ci/r-1"));
        assert_eq!(v["HostConfig"]["OomScoreAdj"], json!(JOB_OOM_SCORE_ADJ));
        for (asked, got) in [(-1000, JOB_OOM_SCORE_ADJ), (900, 900)] {
            let body = json!({"HostConfig": {"OomScoreAdj": asked, "CgroupParent": "/elsewhere"}});
            let v = rewritten(&Route::DockerCreate, &body, &rules, &resolve);
            assert_eq!(v["HostConfig"]["OomScoreAdj"], json!(got), "{asked}");
            assert_eq!(v["HostConfig"]["CgroupParent"], json!("/podrunner.ci/r-1"));
        }
        let v = rewritten(
            &Route::LibpodCreate,
            &json!({"image": "x"}),
            &rules,
            &resolve,
        );
        assert_eq!(v["cgroup_parent"], json!("/podrunner.ci/r-1"));
        assert_eq!(v["oom_score_adj"], json!(JOB_OOM_SCORE_ADJ));
        let body = json!({"HostConfig": {"Privileged": true}});
        match rewrite_body(&Route::DockerCreate, body.to_string().as_bytes(), &rules, &resolve) {
            Err(Rejected::Forbidden(why)) => assert_eq!(
                why,
                "podrunner: a privileged container is refused: the runner's engine keeps job containers contained (docker_policy = \"contained\"). If this pool's jobs are trusted with the host, set docker_policy = \"open\" in pool ci"
            ),
            other => panic!("{other:?}"),
        }
        let exec = json!({"Cmd": ["sh"], "Privileged": true});
        assert!(matches!(
            rewrite_body(&Route::Exec, exec.to_string().as_bytes(), &rules, &resolve),
            Err(Rejected::Forbidden(_))
        ));
        assert_eq!(route("POST", "/v1.41/containers/abc/exec"), Route::Exec);
    }

    #[test]
    fn build_query() {
        assert_eq!(
            cap_build_target("/v1.41/build?t=img&memory=0&cpuquota=900000", &CAPS),
            "/v1.41/build?t=img&memory=268435456&cpuquota=150000&cpuperiod=100000"
        );
        assert_eq!(
            cap_build_target("/build?memswap=-1", &CAPS),
            "/build?memory=268435456&memswap=536870912&cpuquota=150000&cpuperiod=100000"
        );
        assert_eq!(
            cap_build_target(
                "/build?memory=1024&memswap=2048&cpuquota=1000&cpuperiod=10000",
                &CAPS
            ),
            "/build?memory=1024&memswap=2048&cpuquota=1000&cpuperiod=10000"
        );
    }
}

//! `docker_policy = "contained"` (docs/docker.md, "The proxy's boundary"): what a job may ask
//! of its runner's engine, as allowlists. Every field of every JSON body the proxy lets through
//! is listed here with the values it may take; a field that is not listed is refused, so a field
//! Podman reads that this file does not know (a libpod extension on a Docker route, a field of
//! a newer API) never reaches the engine. Pure: the proxy ([`crate::proxy`]) parses bodies
//! strictly ([`super::json`]) and hands them here.
//!
//! Bind sources are the one place the host's file system is named: a source must be an
//! absolute path that, resolved on the host (symlinks, `..`), lies inside the runner's work
//! folder or one of the runner's mapped files; the engine then gets the resolved path, and a
//! start checks the created container's sources again ([`Policy::check_inspected_mounts`]).

use serde_json::{Map, Value};

/// Why a request is refused: `what` names the refused field or value; the message names the
/// pool key that would allow it.
pub fn refusal(what: &str, pool_hint: &str) -> String {
    format!(
        "podrunner: {what} is refused: the runner's engine keeps job containers contained (docker_policy = \"contained\"). If this pool's jobs are trusted with the host, set docker_policy = \"open\"{pool_hint}"
    )
}

/// A rule for one field's value.
#[derive(Clone, Copy)]
enum R {
    /// Any value: the field acts inside the container only.
    Any,
    /// Unset: absent, `null`, `false`, `0`, `""`, `[]` or `{}` (the Docker CLI sends every
    /// field, zero when not asked for).
    Zero,
    /// Absent or `null` only (`MaskedPaths: []` would unmask everything).
    Null,
    /// Absent, `null`, or one of these strings.
    Str(&'static [&'static str]),
    /// An object with these fields (each once, exact case).
    Obj(&'static [(&'static str, R)]),
    /// `null` or an array whose elements follow the rule.
    Each(&'static R),
    /// `null` or an object whose values follow the rule (keys are names: labels, ports).
    Values(&'static R),
    /// Checked by a function; `Err` is why.
    Fn(fn(&Value) -> Result<(), String>),
}

fn is_zero(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 80 {
        format!("{}...", s.chars().take(80).collect::<String>())
    } else {
        s
    }
}

/// Checks `v` at `path` against `rule`; the error is the refused field and value.
fn check(path: &str, v: &Value, rule: R) -> Result<(), String> {
    let bad = |why: &str| Err(format!("{path} = {} ({why})", short(v)));
    match rule {
        R::Any => Ok(()),
        R::Zero if is_zero(v) => Ok(()),
        R::Zero => bad("only its empty value is allowed"),
        R::Null if v.is_null() => Ok(()),
        R::Null => bad("only null is allowed"),
        R::Str(allowed) => match v {
            Value::Null => Ok(()),
            Value::String(s) if allowed.contains(&s.as_str()) => Ok(()),
            _ => bad(&format!("allowed: {allowed:?}")),
        },
        R::Obj(fields) => {
            let Some(o) = v.as_object() else {
                return if v.is_null() {
                    Ok(())
                } else {
                    bad("not an object")
                };
            };
            for (k, x) in o {
                let Some((_, r)) = fields.iter().find(|(name, _)| name == k) else {
                    return Err(format!(
                        "the field {path}.{k} (not one podrunner knows to be safe)"
                    ));
                };
                check(&format!("{path}.{k}"), x, *r)?;
            }
            Ok(())
        }
        R::Each(r) => match v {
            Value::Null => Ok(()),
            Value::Array(a) => a
                .iter()
                .enumerate()
                .try_for_each(|(i, x)| check(&format!("{path}[{i}]"), x, *r)),
            _ => bad("not a list"),
        },
        R::Values(r) => match v {
            Value::Null => Ok(()),
            Value::Object(o) => o
                .iter()
                .try_for_each(|(k, x)| check(&format!("{path}[{k:?}]"), x, *r)),
            _ => bad("not an object"),
        },
        R::Fn(f) => f(v).or_else(|why| bad(&why)),
    }
}

/// Checks the top-level fields of a body.
fn check_body(
    what: &str,
    body: &Map<String, Value>,
    fields: &'static [(&str, R)],
) -> Result<(), String> {
    for (k, x) in body {
        let Some((_, r)) = fields.iter().find(|(name, _)| name == k) else {
            return Err(format!(
                "the field {k} of {what} (not one podrunner knows to be safe)"
            ));
        };
        check(k, x, *r)?;
    }
    Ok(())
}

/// Names podrunner lets through where Podman takes a name: networks, volumes, containers.
/// Anything else (`ns:/proc/1/ns/net`, `slirp4netns:...`, `pasta:--pcap=/x`, a path) is
/// refused.
pub fn plain_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        && s.len() <= 253
}

/// `container:NAME` or one of `plain`.
fn ns_mode(v: &Value, plain: &[&str]) -> Result<(), String> {
    match v {
        Value::Null => Ok(()),
        Value::String(s) if plain.contains(&s.as_str()) => Ok(()),
        Value::String(s) if s.strip_prefix("container:").is_some_and(plain_name) => Ok(()),
        _ => Err(format!("allowed: {plain:?} or container:NAME")),
    }
}

fn pid_uts_mode(v: &Value) -> Result<(), String> {
    ns_mode(v, &["", "private"])
}

fn ipc_mode(v: &Value) -> Result<(), String> {
    ns_mode(v, &["", "private", "shareable", "none"])
}

/// `NetworkMode`: Podman's defaults, the host's network (jobs reach services on the runner's
/// host that way; capabilities that would change it are refused, [`check_network_caps`]), no
/// network, another container's, or a network of the engine by name.
fn network_mode(v: &Value) -> Result<(), String> {
    match v {
        Value::String(s) if plain_name(s) || s.is_empty() => Ok(()),
        _ => ns_mode(v, &[""]).map_err(|_| {
            "allowed: default, bridge, host, none, container:NAME or a network's name".into()
        }),
    }
}

/// An object, or `None` for `null`.
fn object(v: &Value) -> Result<Option<&Map<String, Value>>, String> {
    match v {
        Value::Null => Ok(None),
        Value::Object(o) => Ok(Some(o)),
        _ => Err("not an object".into()),
    }
}

fn strings(v: &Value) -> Result<Vec<&str>, String> {
    match v {
        Value::Null => Ok(Vec::new()),
        Value::Array(a) => a
            .iter()
            .map(|x| {
                x.as_str()
                    .ok_or_else(|| "not a list of strings".to_string())
            })
            .collect(),
        _ => Err("not a list of strings".into()),
    }
}

/// Capabilities a job container may add: Podman's and Docker's defaults and the ones that act
/// only inside the container's own namespaces. Refused (not listed): `ALL`, `SYS_ADMIN`,
/// `SYS_MODULE`, `SYS_RAWIO`, `SYS_BOOT`, `SYS_TIME`, `DAC_READ_SEARCH`, `MAC_*`, `BPF`,
/// `PERFMON`, `SYSLOG`, `LINUX_IMMUTABLE`, `WAKE_ALARM`, `BLOCK_SUSPEND`, `AUDIT_CONTROL`,
/// `AUDIT_READ`, `CHECKPOINT_RESTORE`, `LEASE`, `SYS_PACCT`, `SYS_TTY_CONFIG`, `SYS_RESOURCE`.
pub const ALLOWED_CAPS: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "SETFCAP",
    "NET_BIND_SERVICE",
    "NET_RAW",
    "NET_ADMIN",
    "SYS_CHROOT",
    "MKNOD",
    "AUDIT_WRITE",
    "SYS_NICE",
    "SYS_PTRACE",
    "IPC_LOCK",
    "IPC_OWNER",
];

/// Capabilities that would act on the host's network when the container shares it.
pub const HOST_NETWORK_CAPS: &[&str] = &["NET_ADMIN", "NET_RAW"];

fn cap_name(c: &str) -> String {
    let c = c.to_ascii_uppercase();
    c.strip_prefix("CAP_").unwrap_or(&c).to_string()
}

/// Checks each string of a list with `ok`; the first that fails is refused with `why`.
fn each_string(
    v: &Value,
    ok: impl Fn(&str) -> bool,
    why: impl Fn(&str) -> String,
) -> Result<(), String> {
    match strings(v)?.into_iter().find(|s| !ok(s)) {
        Some(s) => Err(why(s)),
        None => Ok(()),
    }
}

fn cap_add(v: &Value) -> Result<(), String> {
    each_string(
        v,
        |c| ALLOWED_CAPS.contains(&cap_name(c).as_str()),
        |c| format!("the capability {c}"),
    )
}

/// `no-new-privileges` is the one security option a job may set; every other one (`seccomp`,
/// `apparmor`, `label`, `systempaths`, `mask`, `unmask`, `proc-opts`) loosens confinement.
fn security_opt(v: &Value) -> Result<(), String> {
    const ALLOWED: [&str; 4] = [
        "no-new-privileges",
        "no-new-privileges:true",
        "no-new-privileges=true",
        "no-new-privileges:false",
    ];
    each_string(
        v,
        |o| ALLOWED.contains(&o),
        |o| format!("the security option {o:?}; allowed: {ALLOWED:?}"),
    )
}

fn group_add(v: &Value) -> Result<(), String> {
    // Podman's keep-groups hands the container the engine user's supplementary groups.
    each_string(
        v,
        |g| plain_name(g) && g != "keep-groups",
        |g| format!("the group {g:?}"),
    )
}

/// Namespaced sysctls (the container's own network, IPC and UTS namespaces).
fn sysctls(v: &Value) -> Result<(), String> {
    const PREFIXES: [&str; 6] = [
        "net.",
        "kernel.shm",
        "kernel.msg",
        "kernel.sem",
        "fs.mqueue.",
        "kernel.hostname",
    ];
    let Some(o) = object(v)? else {
        return Ok(());
    };
    match o
        .keys()
        .find(|k| !PREFIXES.iter().any(|p| k.starts_with(p)) && *k != "kernel.domainname")
    {
        Some(k) => Err(format!("the sysctl {k}")),
        None => Ok(()),
    }
}

const TMPFS_OPTIONS: &[&str] = &[
    "size",
    "mode",
    "uid",
    "gid",
    "nr_inodes",
    "nr_blocks",
    "noexec",
    "exec",
    "nosuid",
    "nodev",
    "ro",
    "rw",
    "tmpcopyup",
    "notmpcopyup",
    "noatime",
    "relatime",
    "strictatime",
];

fn option_list(opts: &str, allowed: &[&str]) -> Result<(), String> {
    for o in opts.split(',').filter(|o| !o.is_empty()) {
        let name = o.split_once('=').map_or(o, |(k, _)| k);
        if !allowed.contains(&name) {
            return Err(format!("the option {o:?}; allowed: {allowed:?}"));
        }
    }
    Ok(())
}

/// `VolumesFrom` entries, `CONTAINER[:OPTIONS]`: without options a mount keeps its mode in the
/// other container; `rw` would make a read-only bind (the externals copy) writable, and is
/// not seen by the start check (Podman lists no such mount before the start).
fn volumes_from(v: &Value) -> Result<(), String> {
    for entry in strings(v)? {
        let (name, opts) = entry.split_once(':').unwrap_or((entry, ""));
        if !plain_name(name) {
            return Err(format!("the container {name:?}"));
        }
        option_list(opts, &["ro", "z"])?;
    }
    Ok(())
}

fn tmpfs(v: &Value) -> Result<(), String> {
    let Some(o) = object(v)? else {
        return Ok(());
    };
    for (path, opts) in o {
        container_path(path)?;
        option_list(
            opts.as_str().ok_or("options are not a string")?,
            TMPFS_OPTIONS,
        )?;
    }
    Ok(())
}

/// Log drivers that write where Podman keeps the container (never `path=` elsewhere) or nowhere.
fn log_config(v: &Value) -> Result<(), String> {
    const OPTIONS: [&str; 5] = ["max-size", "tag", "labels", "env", "mode"];
    check(
        "LogConfig",
        v,
        R::Obj(&[
            ("Type", R::Str(&["", "json-file", "k8s-file", "none"])),
            ("Config", R::Any),
        ]),
    )?;
    if let Some(o) = v.get("Config").and_then(Value::as_object) {
        if let Some(k) = o.keys().find(|k| !OPTIONS.contains(&k.as_str())) {
            return Err(format!("the log option {k}; allowed: {OPTIONS:?}"));
        }
    }
    Ok(())
}

/// A path inside the container: absolute, and nothing Podman's `--mount` text would read as
/// another option (`/x,type=bind,source=/`).
fn container_path(p: &str) -> Result<(), String> {
    if !p.starts_with('/') || p.contains([',', '"', '\n', '\r', '\0', '=']) {
        return Err(format!("the container path {p:?}"));
    }
    Ok(())
}

/// `Config.Volumes` keys: anonymous volumes at container paths. Podman appends each key to
/// its `-v` list, so `"/etc:/host"` would be a bind mount.
fn anonymous_volumes(v: &Value) -> Result<(), String> {
    let Some(o) = object(v)? else {
        return Ok(());
    };
    for (k, x) in o {
        if k.contains(':') {
            return Err(format!("the anonymous volume {k:?} names a source"));
        }
        container_path(k)?;
        if !is_zero(x) {
            return Err(format!("the anonymous volume {k:?} has options"));
        }
    }
    Ok(())
}

/// Keys of `NetworkingConfig.EndpointsConfig`: networks by name.
fn endpoints(v: &Value) -> Result<(), String> {
    check("EndpointsConfig", v, R::Values(&R::Obj(ENDPOINT)))?;
    if let Some(k) = v
        .as_object()
        .and_then(|o| o.keys().find(|k| !plain_name(k)))
    {
        return Err(format!("the network {k:?}"));
    }
    Ok(())
}

const ENDPOINT: &[(&str, R)] = &[
    (
        "IPAMConfig",
        R::Obj(&[
            ("IPv4Address", R::Any),
            ("IPv6Address", R::Any),
            ("LinkLocalIPs", R::Any),
        ]),
    ),
    ("Links", R::Any),
    ("Aliases", R::Any),
    ("DriverOpts", R::Zero),
    ("GwPriority", R::Any),
    ("MacAddress", R::Any),
    ("NetworkID", R::Any),
    ("EndpointID", R::Any),
    ("Gateway", R::Any),
    ("IPAddress", R::Any),
    ("IPPrefixLen", R::Any),
    ("IPv6Gateway", R::Any),
    ("GlobalIPv6Address", R::Any),
    ("GlobalIPv6PrefixLen", R::Any),
    ("DNSNames", R::Any),
];

const RESTART: R = R::Obj(&[("Name", R::Any), ("MaximumRetryCount", R::Any)]);
const ULIMITS: R = R::Each(&R::Obj(&[
    ("Name", R::Any),
    ("Soft", R::Any),
    ("Hard", R::Any),
]));

/// Resource fields shared by create's `HostConfig` and update; capped by [`super::caps`].
macro_rules! with_resources {
    ($($x:expr),* $(,)?) => {
        [
            $($x,)*
            ("CpuShares", R::Any),
            ("Memory", R::Any),
            ("NanoCpus", R::Any),
            ("CgroupParent", R::Zero),
            ("BlkioWeight", R::Any),
            ("BlkioWeightDevice", R::Zero),
            ("BlkioDeviceReadBps", R::Zero),
            ("BlkioDeviceWriteBps", R::Zero),
            ("BlkioDeviceReadIOps", R::Zero),
            ("BlkioDeviceWriteIOps", R::Zero),
            ("CpuPeriod", R::Any),
            ("CpuQuota", R::Any),
            ("CpuRealtimePeriod", R::Zero),
            ("CpuRealtimeRuntime", R::Zero),
            ("CpusetCpus", R::Any),
            ("CpusetMems", R::Any),
            ("Devices", R::Zero),
            ("DeviceCgroupRules", R::Zero),
            ("DeviceRequests", R::Zero),
            ("KernelMemory", R::Zero),
            ("KernelMemoryTCP", R::Zero),
            ("MemoryReservation", R::Any),
            ("MemorySwap", R::Any),
            ("MemorySwappiness", R::Any),
            ("OomKillDisable", R::Zero),
            ("PidsLimit", R::Any),
            ("Ulimits", ULIMITS),
            ("CpuCount", R::Any),
            ("CpuPercent", R::Any),
            ("IOMaximumIOps", R::Any),
            ("IOMaximumBandwidth", R::Any),
        ]
    };
}

const MOUNT: &[(&str, R)] = &[
    ("Type", R::Str(&["bind", "volume", "tmpfs"])),
    ("Source", R::Any),
    ("Target", R::Any),
    ("ReadOnly", R::Any),
    ("Consistency", R::Any),
    (
        "BindOptions",
        R::Obj(&[
            (
                "Propagation",
                R::Str(&["", "private", "rprivate", "slave", "rslave"]),
            ),
            ("NonRecursive", R::Any),
            ("CreateMountpoint", R::Zero),
            ("ReadOnlyNonRecursive", R::Any),
            ("ReadOnlyForceRecursive", R::Any),
        ]),
    ),
    (
        "VolumeOptions",
        R::Obj(&[
            ("NoCopy", R::Any),
            ("Labels", R::Any),
            ("Subpath", R::Zero),
            (
                "DriverConfig",
                R::Obj(&[("Name", R::Str(&["", "local"])), ("Options", R::Zero)]),
            ),
        ]),
    ),
    (
        "TmpfsOptions",
        R::Obj(&[
            ("SizeBytes", R::Any),
            ("Mode", R::Any),
            ("Options", R::Zero),
        ]),
    ),
];

const HOST_CONFIG: &[(&str, R)] = &with_resources!(
    ("Binds", R::Any), // checked with the host's paths: Policy::check_binds
    ("ContainerIDFile", R::Zero),
    ("LogConfig", R::Fn(log_config)),
    ("NetworkMode", R::Fn(network_mode)),
    ("PortBindings", R::Any),
    ("RestartPolicy", RESTART),
    ("AutoRemove", R::Any),
    ("VolumeDriver", R::Str(&["", "local"])),
    ("VolumesFrom", R::Fn(volumes_from)),
    ("ConsoleSize", R::Any),
    ("Annotations", R::Zero),
    ("CapAdd", R::Fn(cap_add)),
    ("CapDrop", R::Any),
    ("CgroupnsMode", R::Str(&["", "private"])),
    ("Dns", R::Any),
    ("DnsOptions", R::Any),
    ("DnsSearch", R::Any),
    ("ExtraHosts", R::Any),
    ("GroupAdd", R::Fn(group_add)),
    ("IpcMode", R::Fn(ipc_mode)),
    ("Cgroup", R::Zero),
    ("Links", R::Any),
    ("OomScoreAdj", R::Any),
    ("PidMode", R::Fn(pid_uts_mode)),
    ("Privileged", R::Zero),
    ("PublishAllPorts", R::Any),
    ("ReadonlyRootfs", R::Any),
    ("SecurityOpt", R::Fn(security_opt)),
    ("StorageOpt", R::Zero),
    ("Tmpfs", R::Fn(tmpfs)),
    ("UTSMode", R::Fn(pid_uts_mode)),
    ("UsernsMode", R::Str(&["", "private"])),
    ("ShmSize", R::Any),
    ("Sysctls", R::Fn(sysctls)),
    ("Runtime", R::Zero),
    ("Isolation", R::Str(&["", "default"])),
    ("Mounts", R::Each(&R::Obj(MOUNT))),
    ("MaskedPaths", R::Null),
    ("ReadonlyPaths", R::Null),
    ("Init", R::Any),
    ("Capabilities", R::Null),
    // Podman extensions on the Docker route: never from a Docker client.
    ("NetworkDisabled", R::Zero),
    ("Healthcheck", R::Null),
);

const HEALTHCHECK: R = R::Obj(&[
    ("Test", R::Any),
    ("Interval", R::Any),
    ("Timeout", R::Any),
    ("StartPeriod", R::Any),
    ("StartInterval", R::Any),
    ("Retries", R::Any),
]);

const CREATE: &[(&str, R)] = &[
    ("Hostname", R::Any),
    ("Domainname", R::Any),
    ("User", R::Any),
    ("AttachStdin", R::Any),
    ("AttachStdout", R::Any),
    ("AttachStderr", R::Any),
    ("ExposedPorts", R::Any),
    ("Tty", R::Any),
    ("OpenStdin", R::Any),
    ("StdinOnce", R::Any),
    ("Env", R::Any),
    ("Cmd", R::Any),
    ("Healthcheck", HEALTHCHECK),
    ("ArgsEscaped", R::Any),
    ("Image", R::Any),
    ("Volumes", R::Fn(anonymous_volumes)),
    ("WorkingDir", R::Any),
    ("Entrypoint", R::Any),
    ("NetworkDisabled", R::Any),
    ("MacAddress", R::Any),
    ("OnBuild", R::Any),
    ("Labels", R::Any),
    ("StopSignal", R::Any),
    ("StopTimeout", R::Any),
    ("Shell", R::Any),
    ("HostConfig", R::Obj(HOST_CONFIG)),
    (
        "NetworkingConfig",
        R::Obj(&[("EndpointsConfig", R::Fn(endpoints))]),
    ),
];

const UPDATE: &[(&str, R)] = &with_resources!(("RestartPolicy", RESTART));

const EXEC: &[(&str, R)] = &[
    ("Detach", R::Any),
    ("AttachStdin", R::Any),
    ("AttachStdout", R::Any),
    ("AttachStderr", R::Any),
    ("DetachKeys", R::Any),
    ("Tty", R::Any),
    ("Env", R::Any),
    ("Cmd", R::Any),
    ("Privileged", R::Zero),
    ("User", R::Any),
    ("WorkingDir", R::Any),
    ("ConsoleSize", R::Any),
];

const EXEC_START: &[(&str, R)] = &[("Detach", R::Any), ("Tty", R::Any), ("ConsoleSize", R::Any)];

fn network_name(v: &Value) -> Result<(), String> {
    match v.as_str() {
        Some(s) if plain_name(s) => Ok(()),
        _ => Err("a network or volume name of letters, digits, '_', '.', '-'".into()),
    }
}

/// Driver options of a network: the MTU. Not `com.docker.network.bridge.name` (a host
/// interface's name), not macvlan's `parent`.
fn network_options(v: &Value) -> Result<(), String> {
    const ALLOWED: [&str; 2] = ["com.docker.network.driver.mtu", "mtu"];
    match v
        .as_object()
        .and_then(|o| o.keys().find(|k| !ALLOWED.contains(&k.as_str())))
    {
        Some(k) => Err(format!("the network option {k}; allowed: {ALLOWED:?}")),
        None => Ok(()),
    }
}

const NETWORK_CREATE: &[(&str, R)] = &[
    ("Name", R::Fn(network_name)),
    ("CheckDuplicate", R::Any),
    ("Driver", R::Str(&["", "bridge"])),
    ("Scope", R::Str(&["", "local"])),
    ("Internal", R::Any),
    ("Attachable", R::Any),
    ("Ingress", R::Zero),
    ("ConfigOnly", R::Zero),
    ("ConfigFrom", R::Zero),
    ("EnableIPv6", R::Any),
    ("EnableIPv4", R::Any),
    (
        "IPAM",
        R::Obj(&[
            ("Driver", R::Str(&["", "default"])),
            (
                "Config",
                R::Each(&R::Obj(&[
                    ("Subnet", R::Any),
                    ("IPRange", R::Any),
                    ("Gateway", R::Any),
                    ("AuxiliaryAddresses", R::Any),
                ])),
            ),
            ("Options", R::Zero),
        ]),
    ),
    ("Options", R::Fn(network_options)),
    ("Labels", R::Any),
];

const NETWORK_CONNECT: &[(&str, R)] =
    &[("Container", R::Any), ("EndpointConfig", R::Obj(ENDPOINT))];

const NETWORK_DISCONNECT: &[(&str, R)] = &[("Container", R::Any), ("Force", R::Any)];

/// Volume driver options: none (the local driver's `type`/`device`/`o` would mount a host
/// path or device), except a tmpfs volume (`type=tmpfs, device=tmpfs, o=size=...`).
fn volume_options(v: &Value) -> Result<(), String> {
    let Some(o) = object(v)? else {
        return Ok(());
    };
    if o.is_empty() {
        return Ok(());
    }
    let get = |k: &str| o.get(k).and_then(Value::as_str);
    if get("type") != Some("tmpfs") || get("device") != Some("tmpfs") {
        return Err("driver options other than a tmpfs volume (type=tmpfs, device=tmpfs)".into());
    }
    if let Some(k) = o
        .keys()
        .find(|k| !matches!(k.as_str(), "type" | "device" | "o"))
    {
        return Err(format!("the volume option {k}"));
    }
    option_list(get("o").unwrap_or(""), TMPFS_OPTIONS)
}

const VOLUME_CREATE: &[(&str, R)] = &[
    (
        "Name",
        R::Fn(|v| {
            if v.is_null() || v == "" {
                Ok(())
            } else {
                network_name(v)
            }
        }),
    ),
    ("Driver", R::Str(&["", "local"])),
    ("DriverOpts", R::Fn(volume_options)),
    ("Labels", R::Any),
    ("ClusterVolumeSpec", R::Null),
];

/// Bind options podrunner lets through: not `U` (Podman chowns the source on the host,
/// following what a job planted there), not `O` (an overlay whose upper layer is on the host),
/// not `idmap`, `suid`, `dev`, `shared`/`rshared` (mounts propagating back to the host).
const BIND_OPTIONS: &[&str] = &[
    "ro",
    "rw",
    "z",
    "Z",
    "nocopy",
    "consistent",
    "cached",
    "delegated",
    "private",
    "rprivate",
    "slave",
    "rslave",
    "noexec",
    "exec",
    "nosuid",
    "nodev",
    "bind",
    "rbind",
];

/// The contained policy of one runner.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// Host folders and files a job container may bind (and what is below them): the runner's
    /// work folder and the targets of the runner's path map. Canonical paths.
    pub allowed: Vec<String>,
    /// Of those, the folders a job container may bind only read-only: the runner's externals
    /// copy, which later `container:` jobs execute (docs/docker.md, "The externals"). Every bind
    /// of them is made read-only at create ([`Policy::force_read_only`]) and a container that
    /// holds one writable is not started ([`Policy::check_inspected_mounts`]). Canonical paths.
    pub read_only: Vec<String>,
}

/// Whether the host path `real` is one of `roots` or below one.
fn inside_any(roots: &[String], real: &str) -> bool {
    roots.iter().any(|root| {
        real == *root
            || real
                .strip_prefix(root.as_str())
                .is_some_and(|rest| rest.starts_with('/'))
    })
}

/// What the caller does with a checked bind source.
pub type Resolve<'a> = &'a dyn Fn(&str) -> Option<String>;

impl Policy {
    /// Whether `path` (as `resolve` sees it on the host) is inside an allowed folder.
    fn bind_allowed(&self, path: &str, resolve: Resolve) -> bool {
        let Some(real) = resolve(path) else {
            return false;
        };
        self.inside(&real)
    }

    fn inside(&self, real: &str) -> bool {
        inside_any(&self.allowed, real)
    }

    /// Makes every bind of a read-only folder in a checked Docker `HostConfig` (sources already
    /// replaced by the host paths that were checked) read-only: `Binds` get the option `ro`
    /// instead of any `rw`/`ro`, `Mounts` of type bind `ReadOnly: true`.
    pub fn force_read_only(&self, h: &mut Map<String, Value>) {
        if self.read_only.is_empty() {
            return;
        }
        if let Some(Value::Array(binds)) = h.get_mut("Binds") {
            for b in binds.iter_mut() {
                let Some(text) = b.as_str() else { continue };
                let parts: Vec<&str> = text.splitn(3, ':').collect();
                let (src, dst, opts) = match parts.as_slice() {
                    [src, dst] => (*src, *dst, ""),
                    [src, dst, opts] => (*src, *dst, *opts),
                    _ => continue,
                };
                if !inside_any(&self.read_only, src) {
                    continue;
                }
                let mut kept: Vec<&str> = opts
                    .split(',')
                    .filter(|o| !o.is_empty() && *o != "rw" && *o != "ro")
                    .collect();
                kept.push("ro");
                *b = Value::String(format!("{src}:{dst}:{}", kept.join(",")));
            }
        }
        if let Some(Value::Array(mounts)) = h.get_mut("Mounts") {
            for m in mounts.iter_mut().filter_map(Value::as_object_mut) {
                let bind = m.get("Type").and_then(Value::as_str) == Some("bind");
                let source = m.get("Source").and_then(Value::as_str).unwrap_or("");
                if bind && inside_any(&self.read_only, source) {
                    m.insert("ReadOnly".into(), Value::Bool(true));
                }
            }
        }
    }

    fn check_source(&self, field: &str, source: &str, resolve: Resolve) -> Result<(), String> {
        if !source.starts_with('/') {
            // Podman resolves relative sources (`./x`, `../x`) against its own working folder.
            if plain_name(source) {
                return Ok(()); // a named volume of the engine
            }
            return Err(format!(
                "{field} = {source:?} (a bind source must be an absolute path, a volume a plain name)"
            ));
        }
        if self.bind_allowed(source, resolve) {
            Ok(())
        } else {
            Err(format!(
                "{field}: a bind mount of the host path {source} (only the runner's work folder may be bound)"
            ))
        }
    }

    /// `HostConfig.Binds` entries, `SRC:DST[:OPTIONS]`.
    fn check_binds(&self, h: &Map<String, Value>, resolve: Resolve) -> Result<(), String> {
        let binds = h.get("Binds").map(strings).transpose()?.unwrap_or_default();
        for (i, b) in binds.into_iter().enumerate() {
            let field = format!("HostConfig.Binds[{i}]");
            let parts: Vec<&str> = b.split(':').collect();
            let (src, dst, opts) = match parts.as_slice() {
                [src, dst] => (*src, *dst, ""),
                [src, dst, opts] => (*src, *dst, *opts),
                _ => {
                    return Err(format!(
                        "{field} = {b:?} (expected SOURCE:TARGET[:OPTIONS])"
                    ))
                }
            };
            self.check_source(&field, src, resolve)?;
            container_path(dst).map_err(|e| format!("{field}: {e}"))?;
            option_list(opts, BIND_OPTIONS).map_err(|e| format!("{field}: {e}"))?;
        }
        Ok(())
    }

    fn check_mounts(&self, h: &Map<String, Value>, resolve: Resolve) -> Result<(), String> {
        let Some(Value::Array(mounts)) = h.get("Mounts") else {
            return Ok(());
        };
        for (i, m) in mounts.iter().enumerate() {
            let field = format!("HostConfig.Mounts[{i}]");
            let text = |k: &str| m.get(k).and_then(Value::as_str).unwrap_or("");
            let source = text("Source");
            container_path(text("Target")).map_err(|e| format!("{field}.Target: {e}"))?;
            if source.contains([',', '"', '\n', '\r', '\0', '=']) {
                return Err(format!("{field}.Source = {source:?}"));
            }
            match text("Type") {
                "bind" => self.check_source(&format!("{field}.Source"), source, resolve)?,
                "volume" if source.is_empty() || plain_name(source) => {}
                "tmpfs" if source.is_empty() => {}
                t => {
                    return Err(format!(
                        "{field}.Source = {source:?} (a {t} mount takes a plain name or none)"
                    ))
                }
            }
        }
        Ok(())
    }

    /// A Docker `POST /containers/create` body (bind sources already translated).
    pub fn check_docker_create(
        &self,
        body: &Map<String, Value>,
        resolve: Resolve,
    ) -> Result<(), String> {
        check_body("a container", body, CREATE)?;
        let empty = Map::new();
        let h = body
            .get("HostConfig")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        self.check_binds(h, resolve)?;
        self.check_mounts(h, resolve)?;
        check_network_caps(h)
    }

    /// `POST /containers/{id}/update`.
    pub fn check_update(&self, body: &Map<String, Value>) -> Result<(), String> {
        check_body("an update", body, UPDATE)
    }

    /// `POST /containers/{id}/exec`.
    pub fn check_exec(&self, body: &Map<String, Value>) -> Result<(), String> {
        check_body("an exec", body, EXEC).map_err(|e| {
            if e.starts_with("Privileged") {
                format!("a privileged exec ({e})")
            } else {
                e
            }
        })
    }

    pub fn check_exec_start(&self, body: &Map<String, Value>) -> Result<(), String> {
        check_body("an exec start", body, EXEC_START)
    }

    pub fn check_network_create(&self, body: &Map<String, Value>) -> Result<(), String> {
        check_body("a network", body, NETWORK_CREATE)
    }

    pub fn check_network_connect(&self, body: &Map<String, Value>) -> Result<(), String> {
        check_body("a network connect", body, NETWORK_CONNECT)
    }

    pub fn check_network_disconnect(&self, body: &Map<String, Value>) -> Result<(), String> {
        check_body("a network disconnect", body, NETWORK_DISCONNECT)
    }

    pub fn check_volume_create(&self, body: &Map<String, Value>) -> Result<(), String> {
        check_body("a volume", body, VOLUME_CREATE)
    }

    /// `PUT /containers/{id}/archive` into container `inspect` (`GET /containers/{id}/json`):
    /// Podman copies into a bind mount's host source even when the bind is read-only, so a
    /// container that binds a read-only folder, or takes another's mounts (`VolumesFrom`,
    /// whose mounts Podman lists only once started), gets nothing copied in.
    pub fn check_copy_in(&self, inspect: &Value) -> Result<(), String> {
        if self.read_only.is_empty() {
            return Ok(());
        }
        let h = &inspect["HostConfig"];
        let from = h["VolumesFrom"].as_array().is_some_and(|v| !v.is_empty());
        let binds = h["Binds"].as_array().into_iter().flatten().filter_map(|b| {
            b.as_str()
                .map(|b| b.split(':').next().unwrap_or("").to_string())
        });
        let mounts = [&inspect["Mounts"], &h["Mounts"]]
            .into_iter()
            .filter_map(Value::as_array)
            .flatten()
            .filter_map(|m| m["Source"].as_str().map(str::to_string));
        let mut sources = binds.chain(mounts);
        if from || sources.any(|s| inside_any(&self.read_only, &s)) {
            return Err(
                "copying into a container that binds the runner's externals copy or another container's mounts (Podman writes through read-only binds)".into(),
            );
        }
        Ok(())
    }

    /// A created container's bind sources as the engine holds them (`GET /containers/{id}/json`
    /// `Mounts`), checked again before it starts: each must still be the path it was when
    /// checked at create (no symlink planted since: resolving it gives itself) and allowed.
    pub fn check_inspected_mounts(&self, inspect: &Value, resolve: Resolve) -> Result<(), String> {
        let Some(mounts) = inspect.get("Mounts").and_then(Value::as_array) else {
            return Ok(());
        };
        for m in mounts {
            if m.get("Type").and_then(Value::as_str) != Some("bind") {
                continue;
            }
            let source = m.get("Source").and_then(Value::as_str).unwrap_or("");
            let real = resolve(source);
            if real.as_deref() != Some(source) || !self.inside(source) {
                return Err(format!(
                    "starting a container whose bind source {source} changed since it was created (now {})",
                    real.as_deref().unwrap_or("missing")
                ));
            }
            // `RW` is what the engine will mount; `VolumesFrom` with `:rw` can make a
            // read-only bind of another container writable.
            if inside_any(&self.read_only, source) && m.get("RW") != Some(&Value::Bool(false)) {
                return Err(format!(
                    "starting a container that mounts {source} writable (the runner's externals copy is read-only for jobs)"
                ));
            }
        }
        Ok(())
    }
}

/// A container on the host's network may not add capabilities that act on it.
fn check_network_caps(h: &Map<String, Value>) -> Result<(), String> {
    if h.get("NetworkMode").and_then(Value::as_str) != Some("host") {
        return Ok(());
    }
    let caps = h
        .get("CapAdd")
        .map(strings)
        .transpose()?
        .unwrap_or_default();
    if let Some(c) = caps
        .into_iter()
        .find(|c| HOST_NETWORK_CAPS.contains(&cap_name(c).as_str()))
    {
        return Err(format!(
            "HostConfig.CapAdd = {c} with HostConfig.NetworkMode = host (the capability would act on the host's network)"
        ));
    }
    if let Some(k) = h
        .get("Sysctls")
        .and_then(Value::as_object)
        .and_then(|o| o.keys().find(|k| k.starts_with("net.")))
    {
        return Err(format!(
            "HostConfig.Sysctls[{k:?}] with HostConfig.NetworkMode = host"
        ));
    }
    Ok(())
}

/// Query values of `POST /build` that podrunner checks (names are checked by the route).
pub fn check_build_query(query: &[(String, String)]) -> Result<(), String> {
    for (k, v) in query {
        let ok = match k.as_str() {
            "networkmode" => matches!(v.as_str(), "" | "default" | "bridge" | "host" | "none"),
            // A remote context would reach the engine unchecked (proxy/policy/tar.rs).
            "remote" => v.is_empty(),
            "dockerfile" => {
                !v.starts_with('/') && !v.split('/').any(|p| p == "..") && !v.ends_with(".in")
                // Podman runs `*.in` through cpp on the host
            }
            "outputs" | "cgroupparent" | "session" | "buildid" => v.is_empty(),
            "isolation" => matches!(v.as_str(), "" | "default"),
            _ => true,
        };
        if !ok {
            return Err(format!("the build parameter {k}={v:?}"));
        }
    }
    Ok(())
}

/// `POST /images/create`: an import reads the request body (`fromSrc=-`) or a URL, never a
/// path on the host.
pub fn check_image_create_query(query: &[(String, String)]) -> Result<(), String> {
    for (k, v) in query {
        if k == "fromSrc" && !(v == "-" || v.starts_with("https://") || v.starts_with("http://")) {
            return Err(format!("the import source fromSrc={v:?}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;

//! The allowlists of `docker_policy = "contained"`: every field of every body the proxy lets
//! through, with the values it may take, and the checks of fields whose values need more than
//! a list (capabilities, sysctls, tmpfs and bind options, network and volume drivers).

use super::{check, is_zero, R};
use crate::proxy::policy::refusal::{why, Why};
use serde_json::{Map, Value};

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
pub(super) fn ns_mode(v: &Value, plain: &[&str]) -> Result<(), Why> {
    match v {
        Value::Null => Ok(()),
        Value::String(s) if plain.contains(&s.as_str()) => Ok(()),
        Value::String(s) if s.strip_prefix("container:").is_some_and(plain_name) => Ok(()),
        _ => Err(why!("allowed: {plain:?} or container:NAME")),
    }
}

pub(super) fn pid_uts_mode(v: &Value) -> Result<(), Why> {
    ns_mode(v, &["", "private"])
}

pub(super) fn ipc_mode(v: &Value) -> Result<(), Why> {
    ns_mode(v, &["", "private", "shareable", "none"])
}

/// `NetworkMode`: Podman's defaults, the host's network (jobs reach services on the runner's
/// host that way; capabilities that would change it are refused, [`check_network_caps`]), no
/// network, another container's, or a network of the engine by name.
pub(super) fn network_mode(v: &Value) -> Result<(), Why> {
    match v {
        Value::String(s) if plain_name(s) || s.is_empty() => Ok(()),
        _ => ns_mode(v, &[""]).map_err(|_| {
            "allowed: default, bridge, host, none, container:NAME or a network's name".into()
        }),
    }
}

/// An object, or `None` for `null`.
pub(super) fn object(v: &Value) -> Result<Option<&Map<String, Value>>, Why> {
    match v {
        Value::Null => Ok(None),
        Value::Object(o) => Ok(Some(o)),
        _ => Err("not an object".into()),
    }
}

pub(super) fn strings(v: &Value) -> Result<Vec<&str>, Why> {
    match v {
        Value::Null => Ok(Vec::new()),
        Value::Array(a) => a
            .iter()
            .map(|x| x.as_str().ok_or_else(|| Why::from("not a list of strings")))
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

pub(super) fn cap_name(c: &str) -> String {
    let c = c.to_ascii_uppercase();
    c.strip_prefix("CAP_").unwrap_or(&c).to_string()
}

/// Checks each string of a list with `ok`; the first that fails is refused with `why`.
pub(super) fn each_string(
    v: &Value,
    ok: impl Fn(&str) -> bool,
    why: impl Fn(&str) -> Why,
) -> Result<(), Why> {
    match strings(v)?.into_iter().find(|s| !ok(s)) {
        Some(s) => Err(why(s)),
        None => Ok(()),
    }
}

pub(super) fn cap_add(v: &Value) -> Result<(), Why> {
    each_string(
        v,
        |c| ALLOWED_CAPS.contains(&cap_name(c).as_str()),
        |c| why!("the capability {c}"),
    )
}

/// `no-new-privileges` is the one security option a job may set; every other one (`seccomp`,
/// `apparmor`, `label`, `systempaths`, `mask`, `unmask`, `proc-opts`) loosens confinement.
pub(super) fn security_opt(v: &Value) -> Result<(), Why> {
    const ALLOWED: [&str; 4] = [
        "no-new-privileges",
        "no-new-privileges:true",
        "no-new-privileges=true",
        "no-new-privileges:false",
    ];
    each_string(
        v,
        |o| ALLOWED.contains(&o),
        |o| why!("the security option {o:?}; allowed: {ALLOWED:?}"),
    )
}

pub(super) fn group_add(v: &Value) -> Result<(), Why> {
    // Podman's keep-groups hands the container the engine user's supplementary groups.
    each_string(
        v,
        |g| plain_name(g) && g != "keep-groups",
        |g| why!("the group {g:?}"),
    )
}

/// Namespaced sysctls (the container's own network, IPC and UTS namespaces).
pub(super) fn sysctls(v: &Value) -> Result<(), Why> {
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
        Some(k) => Err(why!("the sysctl {k}")),
        None => Ok(()),
    }
}

pub(super) const TMPFS_OPTIONS: &[&str] = &[
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

pub(super) fn option_list(opts: &str, allowed: &[&str]) -> Result<(), Why> {
    for o in opts.split(',').filter(|o| !o.is_empty()) {
        let name = o.split_once('=').map_or(o, |(k, _)| k);
        if !allowed.contains(&name) {
            return Err(why!("the option {o:?}; allowed: {allowed:?}"));
        }
    }
    Ok(())
}

/// `VolumesFrom` entries, `CONTAINER[:OPTIONS]`: without options a mount keeps its mode in the
/// other container; `rw` would make a read-only bind (the externals copy) writable, and is
/// not seen by the start check (Podman lists no such mount before the start).
pub(super) fn volumes_from(v: &Value) -> Result<(), Why> {
    for entry in strings(v)? {
        let (name, opts) = entry.split_once(':').unwrap_or((entry, ""));
        if !plain_name(name) {
            return Err(why!("the container {name:?}"));
        }
        option_list(opts, &["ro", "z"])?;
    }
    Ok(())
}

pub(super) fn tmpfs(v: &Value) -> Result<(), Why> {
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
pub(super) fn log_config(v: &Value) -> Result<(), Why> {
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
            return Err(why!("the log option {k}; allowed: {OPTIONS:?}"));
        }
    }
    Ok(())
}

/// A path inside the container: absolute, and nothing Podman's `--mount` text would read as
/// another option (`/x,type=bind,source=/`).
pub(super) fn container_path(p: &str) -> Result<(), Why> {
    if !p.starts_with('/') || p.contains([',', '"', '\n', '\r', '\0', '=']) {
        return Err(why!("the container path {p:?}"));
    }
    Ok(())
}

/// `Config.Volumes` keys: anonymous volumes at container paths. Podman appends each key to
/// its `-v` list, so `"/etc:/host"` would be a bind mount.
pub(super) fn anonymous_volumes(v: &Value) -> Result<(), Why> {
    let Some(o) = object(v)? else {
        return Ok(());
    };
    for (k, x) in o {
        if k.contains(':') {
            return Err(why!("the anonymous volume {k:?} names a source"));
        }
        container_path(k)?;
        if !is_zero(x) {
            return Err(why!("the anonymous volume {k:?} has options"));
        }
    }
    Ok(())
}

/// Keys of `NetworkingConfig.EndpointsConfig`: networks by name.
pub(super) fn endpoints(v: &Value) -> Result<(), Why> {
    check("EndpointsConfig", v, R::Values(&R::Obj(ENDPOINT)))?;
    if let Some(k) = v
        .as_object()
        .and_then(|o| o.keys().find(|k| !plain_name(k)))
    {
        return Err(why!("the network {k:?}"));
    }
    Ok(())
}

pub(super) const ENDPOINT: &[(&str, R)] = &[
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

pub(super) const RESTART: R = R::Obj(&[("Name", R::Any), ("MaximumRetryCount", R::Any)]);
pub(super) const ULIMITS: R = R::Each(&R::Obj(&[
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

pub(super) const MOUNT: &[(&str, R)] = &[
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

pub(super) const HOST_CONFIG: &[(&str, R)] = &with_resources!(
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

pub(super) const HEALTHCHECK: R = R::Obj(&[
    ("Test", R::Any),
    ("Interval", R::Any),
    ("Timeout", R::Any),
    ("StartPeriod", R::Any),
    ("StartInterval", R::Any),
    ("Retries", R::Any),
]);

pub(super) const CREATE: &[(&str, R)] = &[
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

pub(super) const UPDATE: &[(&str, R)] = &with_resources!(("RestartPolicy", RESTART));

pub(super) const EXEC: &[(&str, R)] = &[
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

pub(super) const EXEC_START: &[(&str, R)] =
    &[("Detach", R::Any), ("Tty", R::Any), ("ConsoleSize", R::Any)];

pub(super) fn network_name(v: &Value) -> Result<(), Why> {
    match v.as_str() {
        Some(s) if plain_name(s) => Ok(()),
        _ => Err("a network or volume name of letters, digits, '_', '.', '-'".into()),
    }
}

/// Driver options of a network: the MTU. Not `com.docker.network.bridge.name` (a host
/// interface's name), not macvlan's `parent`.
pub(super) fn network_options(v: &Value) -> Result<(), Why> {
    const ALLOWED: [&str; 2] = ["com.docker.network.driver.mtu", "mtu"];
    match v
        .as_object()
        .and_then(|o| o.keys().find(|k| !ALLOWED.contains(&k.as_str())))
    {
        Some(k) => Err(why!("the network option {k}; allowed: {ALLOWED:?}")),
        None => Ok(()),
    }
}

pub(super) const NETWORK_CREATE: &[(&str, R)] = &[
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

pub(super) const NETWORK_CONNECT: &[(&str, R)] =
    &[("Container", R::Any), ("EndpointConfig", R::Obj(ENDPOINT))];

pub(super) const NETWORK_DISCONNECT: &[(&str, R)] = &[("Container", R::Any), ("Force", R::Any)];

/// Volume driver options: none (the local driver's `type`/`device`/`o` would mount a host
/// path or device), except a tmpfs volume (`type=tmpfs, device=tmpfs, o=size=...`).
pub(super) fn volume_options(v: &Value) -> Result<(), Why> {
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
        return Err(why!("the volume option {k}"));
    }
    option_list(get("o").unwrap_or(""), TMPFS_OPTIONS)
}

pub(super) const VOLUME_CREATE: &[(&str, R)] = &[
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
pub(super) const BIND_OPTIONS: &[&str] = &[
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

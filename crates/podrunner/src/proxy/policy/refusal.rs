//! Why the proxy refuses a request under `docker_policy = "contained"` (docs/docker.md, "The
//! proxy's boundary"): [`Refused`] names what was refused (a field and its value, a route, a
//! bind source, a build context's entry) and why; [`Refusal`] is the answer's whole message,
//! which also names the pool key that would allow it (`docker_policy = "open"`). The messages
//! are the 403 bodies jobs read; their text is part of the proxy's contract (docs/docker.md).

/// Why a value is refused, in words: the reason half of a [`Refused`] (built with [`why!`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Why(String);

impl From<&str> for Why {
    fn from(s: &str) -> Why {
        Why(s.to_string())
    }
}

impl From<String> for Why {
    fn from(s: String) -> Why {
        Why(s)
    }
}

/// A nested refusal as the reason of an outer one (`LogConfig.Type = ...` inside `HostConfig`).
impl From<Refused> for Why {
    fn from(r: Refused) -> Why {
        Why(r.to_string())
    }
}

/// A [`Why`] from a format string.
macro_rules! why {
    ($($arg:tt)*) => {
        $crate::proxy::policy::refusal::Why::from(format!($($arg)*))
    };
}
pub(crate) use why;

/// What a contained check refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// A field whose value is not allowed.
    #[error("{field} = {value} ({why})")]
    Value {
        field: String,
        value: String,
        why: Why,
    },
    /// A field of a nested object that is not on the allowlist.
    #[error("the field {field} (not one podrunner knows to be safe)")]
    UnknownField { field: String },
    /// A top-level field of a body that is not on the allowlist.
    #[error("the field {field} of {body} (not one podrunner knows to be safe)")]
    UnknownBodyField { field: String, body: &'static str },
    /// A part of a field (a bind's target or options).
    #[error("{field}: {why}")]
    Within { field: String, why: Why },
    /// A value of the wrong shape where the check needed its parts.
    #[error("{0}")]
    Malformed(Why),
    /// A bind source that is neither an absolute path nor a volume's name.
    #[error("{field} = {path:?} (a bind source must be an absolute path, a volume a plain name)")]
    RelativeSource { field: String, path: String },
    /// A bind source outside the folders a job may bind.
    #[error(
        "{field}: a bind mount of the host path {path} (only the runner's work folder may be bound)"
    )]
    HostPath { field: String, path: String },
    /// A `Binds` entry that is not `SOURCE:TARGET[:OPTIONS]`.
    #[error("{field} = {bind:?} (expected SOURCE:TARGET[:OPTIONS])")]
    BindSyntax { field: String, bind: String },
    /// A `Mounts` source with characters Podman's `--mount` text would read as options.
    #[error("{field}.Source = {path:?}")]
    MountSource { field: String, path: String },
    /// A named source on a mount type that takes none (or a volume's bad name).
    #[error("{field}.Source = {path:?} (a {kind} mount takes a plain name or none)")]
    MountKind {
        field: String,
        path: String,
        kind: String,
    },
    /// An exec with `Privileged` set.
    #[error("a privileged exec ({0})")]
    PrivilegedExec(Box<Refused>),
    /// A copy into a container that binds the read-only externals or another's mounts.
    #[error(
        "copying into a container that binds the runner's externals copy or another container's mounts (Podman writes through read-only binds)"
    )]
    CopyIn,
    /// A start whose bind source was swapped since the create.
    #[error(
        "starting a container whose bind source {path} changed since it was created (now {now})"
    )]
    SourceChanged { path: String, now: String },
    /// A start that would mount the read-only externals copy writable.
    #[error(
        "starting a container that mounts {path} writable (the runner's externals copy is read-only for jobs)"
    )]
    WritableReadOnly { path: String },
    /// A capability that would act on the host's network.
    #[error(
        "HostConfig.CapAdd = {cap} with HostConfig.NetworkMode = host (the capability would act on the host's network)"
    )]
    HostNetworkCap { cap: String },
    /// A network sysctl on the host's network.
    #[error("HostConfig.Sysctls[{key:?}] with HostConfig.NetworkMode = host")]
    HostNetworkSysctl { key: String },
    /// A build query parameter's value.
    #[error("the build parameter {name}={value:?}")]
    BuildParameter { name: String, value: String },
    /// An image import from a path on the host.
    #[error("the import source fromSrc={value:?}")]
    ImportSource { value: String },
    /// A libpod route (Podman's own API).
    #[error("the libpod API ({method} {path}; Podman's own, which `podman --remote` uses)")]
    Libpod { method: String, path: String },
    /// A Docker route not on the list.
    #[error("the route {method} {path} (not one the Docker CLI, Compose or GitHub's runner uses)")]
    Route { method: String, path: String },
    /// A query parameter the route does not take.
    #[error("the query parameter {name:?} of {method} {path}")]
    QueryParameter {
        name: String,
        method: String,
        path: String,
    },
    /// A query parameter given twice.
    #[error("the query parameter {name:?} given twice")]
    QueryRepeated { name: String },
    /// An entry of a build context ([`super::tar`]).
    #[error("{0}")]
    BuildContext(Why),
}

impl Refused {
    /// The whole refusal, naming the pool (`pool_hint`, e.g. ` in pool ci`).
    pub fn in_pool(self, pool_hint: &str) -> Refusal {
        Refusal {
            what: self,
            pool_hint: pool_hint.to_string(),
        }
    }
}

/// A request refused by the contained policy: the 403 answer's message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "podrunner: {what} is refused: the runner's engine keeps job containers contained (docker_policy = \"contained\"). If this pool's jobs are trusted with the host, set {POOL_KEY}{pool_hint}"
)]
pub struct Refusal {
    /// What was refused, and why.
    pub what: Refused,
    /// Names the pool whose key would allow it, e.g. ` in pool ci`.
    pub pool_hint: String,
}

/// The pool key that allows what the contained policy refuses.
pub const POOL_KEY: &str = "docker_policy = \"open\"";

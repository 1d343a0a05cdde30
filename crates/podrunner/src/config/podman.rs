//! `[podman]`: the program, its runtime, and extra arguments for every call.

use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPodman {
    pub(super) path: Option<String>,
    pub(super) runtime: Option<String>,
    #[serde(default)]
    pub(super) global_args: Vec<String>,
    #[serde(default)]
    pub(super) run_args: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PodmanConfig {
    /// The podman program.
    pub path: String,
    /// `--runtime` for every podman call: a name (`runc`, `crun`) or a path.
    pub runtime: Option<String>,
    /// Arguments put before the subcommand of every podman call (e.g. `--root`).
    pub global_args: Vec<String>,
    /// Extra arguments for every `podman run`, before the pool's own.
    pub run_args: Vec<String>,
}

/// Reads `[podman]` (nothing in it can be wrong beyond its types).
pub(super) fn parse(raw: RawPodman) -> PodmanConfig {
    PodmanConfig {
        path: raw.path.unwrap_or_else(|| "podman".into()),
        runtime: raw.runtime.filter(|r| !r.is_empty()),
        global_args: raw.global_args,
        run_args: raw.run_args,
    }
}

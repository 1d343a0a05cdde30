//! Docker for workflows (docs/docker.md): a private Podman API service per runner (`docker =
//! "isolated"`), the user's own Podman socket (`"host"`), or nothing (`"none"`).
//!
//! This module is the manager's side; the Docker API proxy, its own process, is [`crate::proxy`].
//! The pure parts: where an engine's files live ([`dirs`]), the arguments of every podman call made
//! for it and what a runner container gets mounted ([`args`]), how its processes and mounts are
//! recognised ([`procs`]), and the API version check ([`api`]). [`service`] is the thin layer that
//! starts, probes and tears down the engine and its proxy; [`launch`] is the one seam through
//! which the proxy starts the engine on first use. Neither touches the runner containers
//! themselves (manager::exec does).

pub mod api;
pub mod args;
pub mod budget;
pub mod conf;
pub mod dirs;
pub mod error;
pub mod externals;
pub mod launch;
pub mod process;
pub mod procs;
pub mod sandbox;
pub mod service;

pub use api::*;
pub use args::*;
pub use dirs::*;
pub use procs::*;
pub use sandbox::Sandbox;

/// Folder under the manager's state dir holding one sub-folder per runner engine, by name.
pub const ENGINES_DIR: &str = "engines";
/// Folder under the manager's runtime dir holding one sub-folder per runner engine, by
/// [`short_key`]: Podman refuses a run root longer than [`MAX_RUNROOT`].
pub const ENGINES_RUN_DIR: &str = "e";
/// Podman refuses `--runroot` paths longer than this ("the specified runroot is longer than 50
/// characters": conmon's socket paths inside it must stay under `sun_path`'s limit).
pub const MAX_RUNROOT: usize = 50;
/// The file in an engine's run folder naming its runner (the folder is named by a hash).
pub const NAME_FILE: &str = "runner";
/// Where the runner looks for Docker: actions/runner hard-codes this path for job containers.
pub const DOCKER_SOCK_IN_RUNNER: &str = "/var/run/docker.sock";
/// `DOCKER_HOST` inside the runner, pointing at [`DOCKER_SOCK_IN_RUNNER`].
pub const DOCKER_HOST_IN_RUNNER: &str = "unix:///var/run/docker.sock";
/// A unix socket path must fit `sun_path`: 108 bytes including the terminating NUL.
pub const MAX_SOCKET_PATH: usize = 107;
/// Docker CLI 29, in GitHub's runner image, refuses a server API below this
/// (docs/github-runner.md, the runner image).
pub const DOCKER_CLI_29_API: &str = "1.44";
/// GitHub's official runner image, whatever the tag: it ships Docker CLI 29.
pub const OFFICIAL_IMAGE_REPO: &str = "ghcr.io/actions/actions-runner";

/// Mode of the engine's private folders: only the manager's user may enter them, so the
/// socket inside is reachable on the host by that user alone.
pub const PRIVATE_DIR_MODE: u32 = 0o700;
/// Mode of the engine's socket. The runner's user (uid 1001, group docker 123 in GitHub's image)
/// is a different uid than the socket's owner (root, or in rootless mode a subordinate id
/// different from the mapped owner), and the group ids do not match either, so only "others"
/// bits reach it. Safe because the socket's parent folder is [`PRIVATE_DIR_MODE`]: on the host
/// nobody else can reach the socket, and inside the runner the bind mount makes it reachable
/// without walking the host's folders.
pub const SOCKET_MODE: u32 = 0o666;

#[cfg(test)]
mod tests;

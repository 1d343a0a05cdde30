//! The typed errors of the engine's manager side. Each says what failed and why (and, where
//! the user can act, the fix), in the words podrunner has always logged.

use crate::cmd::CommandError;
use std::path::PathBuf;

/// An engine's folders do not fit the limits of Podman or of unix sockets ([`super::EngineDirs`]).
#[derive(Debug, thiserror::Error)]
pub enum DirsError {
    #[error("the engine run root {} is {len} bytes long; Podman allows at most {max}\n  fix: set a shorter [manager] runtime_dir", path.display())]
    RunRootTooLong {
        path: PathBuf,
        len: usize,
        max: usize,
    },
    #[error("the engine socket path {} is {len} bytes long; unix sockets allow at most {max}\n  fix: set a shorter [manager] runtime_dir (or a shorter runner_name)", path.display())]
    SocketTooLong {
        path: PathBuf,
        len: usize,
        max: usize,
    },
}

/// The engine's containers.conf could not be made ([`super::conf`]).
#[derive(Debug, thiserror::Error)]
pub enum ConfError {
    #[error("{name} is not valid TOML: {source}")]
    Layer {
        name: String,
        source: toml::de::Error,
    },
    #[error("containers.conf: `{0}` must be a table")]
    NotATable(String),
    #[error("{0}")]
    Render(#[from] toml::ser::Error),
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Waiting for a socket to answer failed ([`super::process`]).
#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    #[error("{who} exited at once: {log}")]
    Exited { who: &'static str, log: String },
    #[error("the socket {} of {who} did not answer within {secs}s: {log}", socket.display())]
    Timeout {
        socket: PathBuf,
        who: &'static str,
        secs: u64,
        log: String,
    },
}

/// `GET /_ping` on an engine's socket did not get a 200.
#[derive(Debug, thiserror::Error)]
pub enum PingError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("no answer")]
    NoAnswer,
    #[error("the engine answered {0:?}")]
    Status(String),
}

/// A process group that would not stop.
#[derive(Debug, thiserror::Error)]
#[error("process {pid} survived SIGKILL{}", signals.iter().map(|e| format!("; {e}")).collect::<String>())]
pub struct StopError {
    pub pid: i32,
    /// Signals that could not be sent (other than to a process already gone).
    pub signals: Vec<std::io::Error>,
}

/// Setting up Docker for a runner failed ([`super::service::prepare`]).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("cannot read the host's image store: {0}")]
    HostStore(CommandError),
    #[error(transparent)]
    HostInfo(#[from] crate::podman::info::InfoParseError),
    #[error(transparent)]
    Dirs(#[from] DirsError),
    /// `docker = "host"` without the user's Podman socket ([`super::host_socket_missing`]).
    #[error("{0}")]
    HostSocketMissing(String),
    #[error("cannot prepare the engine folders of {name}: {source}")]
    Folders {
        name: String,
        source: std::io::Error,
    },
    #[error("cannot read engine_containers_conf {}: {source}\n  fix: correct the path in pool {pool}", path.display())]
    PoolConf {
        path: PathBuf,
        pool: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Conf(#[from] ConfError),
    #[error("cannot find podrunner's own binary for the docker proxy: {0}")]
    OwnBinary(std::io::Error),
    #[error("cannot start the docker proxy of {name}: {source}")]
    SpawnProxy { name: String, source: CommandError },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Wait(#[from] WaitError),
    #[error("cannot open the engine socket to the runner: {0}")]
    SocketMode(std::io::Error),
}

/// One step of an engine's teardown that failed ([`super::service::teardown`]); teardown tries
/// every step and returns all of these.
#[derive(Debug, thiserror::Error)]
pub enum TeardownError {
    #[error("docker proxy: {0}")]
    Proxy(StopError),
    #[error(transparent)]
    HostStore(EngineError),
    #[error("engine containers: {0}")]
    Containers(CommandError),
    #[error("engine process: {0}")]
    Engine(StopError),
    #[error("killing process {pid} of the engine: {source}")]
    Kill { pid: i32, source: std::io::Error },
    #[error("unmounting {}: {source}", path.display())]
    Unmount {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("engine folder {}: {remove}; podman unshare: {unshare}", path.display())]
    Folder {
        path: PathBuf,
        remove: std::io::Error,
        unshare: CommandError,
    },
    #[error("cgroup budget not removed: {}", .0.join("; "))]
    Budget(Vec<String>),
}

/// A host copy of a runner's externals folder could not be made ([`super::externals`]).
#[derive(Debug, thiserror::Error)]
pub enum ExternalsError {
    #[error("podrunner: cannot copy the externals of runner version {version} out of the runner: {source}")]
    CopyOut {
        version: String,
        source: CommandError,
    },
    #[error("{0}")]
    Podman(#[from] CommandError),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

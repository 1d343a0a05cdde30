//! Where one runner's engine keeps its files: the run folder on the runtime dir (socket, run
//! root, pid files) and the data folder on the state dir (images, volumes, its log).

use super::error::DirsError;
use super::{ENGINES_DIR, ENGINES_RUN_DIR, MAX_RUNROOT, MAX_SOCKET_PATH, NAME_FILE};
use std::path::{Path, PathBuf};

/// The files of one runner's engine. `run` is on the runtime dir (tmpfs: socket, run root, pid
/// file); `data` is on the state dir (disk: images, layers, volumes a job creates).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineDirs {
    pub run: PathBuf,
    pub data: PathBuf,
}

impl EngineDirs {
    /// The folders of runner `name`'s engine; refuses a socket path too long for `sun_path`.
    pub fn for_runner(
        runtime_dir: &Path,
        state_dir: &Path,
        name: &str,
    ) -> Result<EngineDirs, DirsError> {
        let d = EngineDirs {
            run: runtime_dir.join(ENGINES_RUN_DIR).join(short_key(name)),
            data: state_dir.join(ENGINES_DIR).join(name),
        };
        let len = d.runroot().as_os_str().len();
        if len > MAX_RUNROOT {
            return Err(DirsError::RunRootTooLong {
                path: d.runroot(),
                len,
                max: MAX_RUNROOT,
            });
        }
        let len = d.socket().as_os_str().len();
        if len > MAX_SOCKET_PATH {
            return Err(DirsError::SocketTooLong {
                path: d.socket(),
                len,
                max: MAX_SOCKET_PATH,
            });
        }
        Ok(d)
    }
    /// The socket mounted into the runner: the Docker API proxy's ([`proxy`]).
    pub fn socket(&self) -> PathBuf {
        self.run.join("docker.sock")
    }
    /// The engine's own socket, reachable only through the proxy (same length as
    /// [`Self::socket`], so the length check covers both).
    pub fn engine_socket(&self) -> PathBuf {
        self.run.join("engine.sock")
    }
    pub fn proxy_pid_file(&self) -> PathBuf {
        self.run.join("proxy.pid")
    }
    pub fn runroot(&self) -> PathBuf {
        self.run.join("rr")
    }
    pub fn name_file(&self) -> PathBuf {
        self.run.join(NAME_FILE)
    }
    /// Podman's `--tmpdir` (per-boot state, events; rootless: the engine's pause process).
    pub fn tmpdir(&self) -> PathBuf {
        self.run.join("tmp")
    }
    pub fn pid_file(&self) -> PathBuf {
        self.run.join("engine.pid")
    }
    /// What a rootful engine sees at [`NETAVARK_RUN_DIR`] (its own mount namespace); a rootless
    /// engine's `XDG_RUNTIME_DIR` (commands/engine_exec.rs).
    pub fn netavark_run(&self) -> PathBuf {
        self.run.join("netavark")
    }
    /// Where `engine-exec` mounts the engine's minimal root before it moves into it
    /// (engine::sandbox); an empty folder on the host.
    pub fn new_root(&self) -> PathBuf {
        self.run.join("fs")
    }
    /// The engine's folder for big temporary files, its `/var/tmp` (engine::sandbox::TMPDIR).
    pub fn scratch(&self) -> PathBuf {
        self.data.join("tmp")
    }
    /// Where the proxy has the engine mount checked bind sources (proxy::pin).
    pub fn pins(&self) -> PathBuf {
        self.run.join("pins")
    }
    pub fn root(&self) -> PathBuf {
        self.data.join("root")
    }
    /// Networks a job creates: private to the engine (the default would be the host's
    /// `/etc/containers/networks` when rootful).
    pub fn networks(&self) -> PathBuf {
        self.data.join("networks")
    }
    pub fn containers_conf(&self) -> PathBuf {
        self.data.join("containers.conf")
    }
    pub fn log(&self) -> PathBuf {
        self.data.join("engine.log")
    }
}

/// A short, stable folder name for runner `name`: 10 hex digits of its FNV-1a hash (40 bits;
/// a clash among the runners of one host is beyond likely).
pub fn short_key(name: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{:010x}", h >> 24)
}

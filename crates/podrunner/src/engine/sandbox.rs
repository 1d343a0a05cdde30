//! The engine's own sandbox (docs/docker.md, "The engine's own sandbox"): the engine runs in a
//! minimal root of its own, in a mount and pid namespace of its own, so that whatever request
//! reaches it, it can name no file of the host beyond what a job may use. This module decides
//! what that root holds ([`plan`], pure); `podrunner engine-exec` builds it
//! (commands/engine_exec.rs) with the calls in `sys::mounts`.
//!
//! The root is an empty read-only tmpfs holding: `/usr` and the top-level links into it, a
//! list of `/etc` entries Podman and its helpers read ([`ETC`]: no `shadow`, no keys), a
//! `/dev` of a few device nodes, the host's `/sys`, a fresh `/proc` of the engine's own pid
//! namespace (so `/proc/PID/root` leads nowhere outside), tmpfs `/run` and `/tmp`, a `/var/tmp`
//! on the engine's own disk folder, and at their own paths the engine's folders and the
//! runner's work folder (writable) and the externals copies, the host's image store and the
//! user's Podman settings (read-only).

use super::{externals, EngineDirs, HostStore};
use std::ffi::CStr;
use std::path::{Path, PathBuf};

/// What an engine sees of the host besides the system's programs and settings, each at its own
/// path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sandbox {
    /// Writable: the engine's folders and the runner's work folder.
    pub keep: Vec<PathBuf>,
    /// Read-only: the externals copies, the host's image store (the engine's additional image
    /// store), the user's Podman settings, a podman installed outside `/usr`.
    pub read_only: Vec<PathBuf>,
}

impl Sandbox {
    /// Runner engine `d`'s. Nothing else of the manager's state and runtime folders (database,
    /// logs, control socket, JIT config folders, other runners' engines) nor its credentials
    /// files is in the engine's root. `user_conf` is the user's own Podman settings folder
    /// (`~/.config/containers`, rootless: registries, storage and signature policy).
    pub fn for_runner(
        cfg: &crate::config::Config,
        d: &EngineDirs,
        work: &Path,
        host: &HostStore,
        user_conf: Option<&Path>,
    ) -> Sandbox {
        let mut read_only = vec![cfg.manager.state_dir.join(externals::EXTERNALS_DIR)];
        if host.shareable() {
            read_only.push(PathBuf::from(&host.graph_root));
        }
        read_only.extend(user_conf.map(Path::to_path_buf));
        let podman = Path::new(&cfg.podman.path);
        if podman.is_absolute() && !podman.starts_with("/usr") {
            read_only.extend(podman.parent().map(Path::to_path_buf));
        }
        Sandbox {
            keep: vec![d.run.clone(), d.data.clone(), work.to_path_buf()],
            read_only,
        }
    }
}

/// Top-level entries that lead into `/usr` (links on merged-`/usr` systems, folders elsewhere).
pub const TOP: [&str; 6] = ["bin", "sbin", "lib", "lib32", "lib64", "libx32"];

/// The `/etc` entries the engine reads: Podman's settings, name resolution, the dynamic
/// linker's cache, TLS roots for pulls, the `alternatives` links behind `iptables`, subordinate
/// id ranges, security module settings. Everything else of `/etc` (`shadow`, `ssh`, keys,
/// other services' settings) is not there.
pub const ETC: [&str; 34] = [
    "alternatives",
    "apparmor",
    "apparmor.d",
    "ca-certificates",
    "ca-certificates.conf",
    "cni",
    "containers",
    "crypto-policies",
    "docker/certs.d",
    "fuse.conf",
    "gai.conf",
    "group",
    "host.conf",
    "hostname",
    "hosts",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "mtab",
    "nsswitch.conf",
    "os-release",
    "passwd",
    "pki",
    "protocols",
    "resolv.conf",
    "selinux",
    "services",
    "ssl",
    "subgid",
    "subuid",
    "timezone",
    "tmpfiles.d",
    "xattr.conf",
];

/// The device nodes the engine, conmon and the runtime use (the runtime binds these into
/// rootless containers; `fuse` for fuse-overlayfs, `net/tun` for rootless networking).
pub const DEV_NODES: [&str; 8] = [
    "null", "zero", "full", "random", "urandom", "tty", "fuse", "net/tun",
];

/// Links every `/dev` has.
pub const DEV_LINKS: [(&str, &str); 5] = [
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
    ("ptmx", "pts/ptmx"),
];

/// The root's own tmpfs: mount points only.
pub const ROOT_TMPFS: &CStr = c"mode=0755,size=1m";
const DEV_TMPFS: &CStr = c"mode=0755,size=1m";
/// Podman's shared-memory locks (`libpod_lock`) live here: each engine gets its own.
const SHM_TMPFS: &CStr = c"mode=1777,size=64m";
/// Runtime state (runc's, netns files, aardvark-dns's): small.
const RUN_TMPFS: &CStr = c"mode=0755,size=64m";
/// Go's default temporary folder; big files go to `/var/tmp` ([`TMPDIR`]).
const TMP_TMPFS: &CStr = c"mode=1777,size=64m";
/// Where the engine puts big temporary files (image layers being pulled, build contexts,
/// `docker load` archives): on its own disk folder, removed with it. Set as `TMPDIR`.
pub const TMPDIR: &str = "/var/tmp";
/// CNI's state folder; see [`plan`].
const CNI_DIR: &str = "/var/lib/cni";
/// Where a rootful engine's minimal root has its own netavark state folder
/// (super::NETAVARK_RUN_DIR).
const NETAVARK_AT: &str = super::NETAVARK_RUN_DIR;

/// One step of building the root, paths as the engine will see them (absolute).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Tmpfs {
        at: PathBuf,
        options: &'static CStr,
    },
    /// Bind host path `src` at `at` (a folder when `dir`, else a file).
    Bind {
        src: PathBuf,
        at: PathBuf,
        dir: bool,
        read_only: bool,
        recursive: bool,
    },
    Devpts {
        at: PathBuf,
    },
    /// An empty folder (a mount point filled later: `/proc`).
    Dir {
        at: PathBuf,
    },
    /// A link; skipped when something is already at `at` (a kept folder below it).
    Symlink {
        target: PathBuf,
        at: PathBuf,
    },
}

/// What is at a path of the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    Missing,
    Dir,
    File,
    /// A symbolic link (to `target`), and what it leads to (None: nothing).
    Link {
        target: PathBuf,
        dir: Option<bool>,
    },
}

impl Found {
    /// Folder or not once links are followed; None when nothing is there.
    fn is_dir(&self) -> Option<bool> {
        match self {
            Found::Missing => None,
            Found::Dir => Some(true),
            Found::File => Some(false),
            Found::Link { dir, .. } => *dir,
        }
    }
}

/// The steps that build the engine's root for sandbox `s`: `scratch` is the engine's disk
/// folder for big temporary files, `netavark` (rootful) its own netavark state folder, and
/// `found` says what is at a host path (links not followed).
pub fn plan(
    s: &Sandbox,
    scratch: &Path,
    netavark: Option<&Path>,
    found: impl Fn(&Path) -> Found,
) -> Vec<Step> {
    let p = PathBuf::from;
    let bind =
        |src: PathBuf, at: PathBuf, dir: bool, read_only: bool, recursive: bool| Step::Bind {
            src,
            at,
            dir,
            read_only,
            recursive,
        };
    let mut steps = vec![bind(p("/usr"), p("/usr"), true, true, true)];
    let mut links = Vec::new();
    for name in TOP {
        let at = Path::new("/").join(name);
        match found(&at) {
            Found::Link { target, .. } => links.push(Step::Symlink { target, at }),
            Found::Dir => steps.push(bind(at.clone(), at, true, true, true)),
            Found::File | Found::Missing => {}
        }
    }
    for name in ETC {
        let at = Path::new("/etc").join(name);
        let f = found(&at);
        match (name, &f) {
            ("mtab", Found::Link { target, .. }) => links.push(Step::Symlink {
                target: target.clone(),
                at,
            }),
            _ => {
                if let Some(dir) = f.is_dir() {
                    steps.push(bind(at.clone(), at, dir, true, false));
                }
            }
        }
    }
    steps.push(Step::Tmpfs {
        at: p("/dev"),
        options: DEV_TMPFS,
    });
    for name in DEV_NODES {
        let at = Path::new("/dev").join(name);
        if found(&at).is_dir() == Some(false) {
            steps.push(bind(at.clone(), at, false, false, false));
        }
    }
    steps.push(Step::Devpts { at: p("/dev/pts") });
    steps.push(Step::Tmpfs {
        at: p("/dev/shm"),
        options: SHM_TMPFS,
    });
    links.extend(DEV_LINKS.iter().map(|(name, target)| Step::Symlink {
        target: p(target),
        at: Path::new("/dev").join(name),
    }));
    steps.push(bind(p("/sys"), p("/sys"), true, false, true));
    steps.push(Step::Dir { at: p("/proc") });
    steps.push(Step::Tmpfs {
        at: p("/run"),
        options: RUN_TMPFS,
    });
    if let Some(n) = netavark {
        steps.push(bind(n.to_path_buf(), p(NETAVARK_AT), true, false, false));
    }
    steps.push(Step::Tmpfs {
        at: p("/tmp"),
        options: TMP_TMPFS,
    });
    steps.push(bind(scratch.to_path_buf(), p(TMPDIR), true, false, false));
    // A rootless Podman covers the deepest existing of /var/lib/cni, /var/lib and /var with a
    // folder of its own in its network setup: that must not be /var, or /var/tmp is gone
    // there.
    steps.push(Step::Dir { at: p(CNI_DIR) });
    links.push(Step::Symlink {
        target: p("../run"),
        at: p("/var/run"),
    });
    // The host's paths, parents first (a path inside another is bound over it).
    let mut own: Vec<(&PathBuf, bool)> = s
        .keep
        .iter()
        .map(|k| (k, false))
        .chain(s.read_only.iter().map(|r| (r, true)))
        .collect();
    own.sort_by_key(|(path, _)| path.components().count());
    for (path, read_only) in own {
        if let Some(dir) = found(path).is_dir() {
            steps.push(bind(path.clone(), path.clone(), dir, read_only, false));
        }
    }
    steps.extend(links);
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Debian-like host: merged /usr, `/etc/mtab` a link, `/etc/resolv.conf` a link to a
    /// file, no `/dev/fuse`.
    fn debian(p: &Path) -> Found {
        let s = p.to_str().unwrap();
        let link = |t: &str, dir| Found::Link {
            target: PathBuf::from(t),
            dir,
        };
        match s {
            "/bin" => link("usr/bin", Some(true)),
            "/sbin" => link("usr/sbin", Some(true)),
            "/lib" => link("usr/lib", Some(true)),
            "/lib64" => link("usr/lib64", Some(true)),
            "/etc/mtab" => link("../proc/self/mounts", Some(false)),
            "/etc/resolv.conf" => link("/run/systemd/resolve/stub-resolv.conf", Some(false)),
            "/etc/containers"
            | "/etc/ssl"
            | "/etc/alternatives"
            | "/s/d"
            | "/s/r"
            | "/w"
            | "/var/lib/containers/storage" => Found::Dir,
            "/etc/passwd" | "/etc/group" | "/etc/hosts" | "/etc/ld.so.cache" | "/dev/null"
            | "/dev/zero" | "/dev/net/tun" => Found::File,
            _ => Found::Missing,
        }
    }

    fn sandbox() -> Sandbox {
        Sandbox {
            keep: vec!["/s/r".into(), "/s/d".into(), "/w".into()],
            read_only: vec!["/var/lib/containers/storage".into(), "/s/externals".into()],
        }
    }

    #[test]
    fn the_root_holds_the_system_the_engines_folders_and_nothing_else() {
        let steps = plan(&sandbox(), Path::new("/s/d/tmp"), None, debian);
        let binds: Vec<(String, String, bool, bool)> = steps
            .iter()
            .filter_map(|s| match s {
                Step::Bind {
                    src,
                    at,
                    read_only,
                    dir,
                    ..
                } => Some((
                    src.display().to_string(),
                    at.display().to_string(),
                    *read_only,
                    *dir,
                )),
                _ => None,
            })
            .collect();
        let b =
            |src: &str, at: &str, ro: bool, dir: bool| (src.to_string(), at.to_string(), ro, dir);
        assert_eq!(
            binds,
            [
                b("/usr", "/usr", true, true),
                b("/etc/alternatives", "/etc/alternatives", true, true),
                b("/etc/containers", "/etc/containers", true, true),
                b("/etc/group", "/etc/group", true, false),
                b("/etc/hosts", "/etc/hosts", true, false),
                b("/etc/ld.so.cache", "/etc/ld.so.cache", true, false),
                b("/etc/passwd", "/etc/passwd", true, false),
                // A link is followed on the host: the engine gets the file it leads to.
                b("/etc/resolv.conf", "/etc/resolv.conf", true, false),
                b("/etc/ssl", "/etc/ssl", true, true),
                b("/dev/null", "/dev/null", false, false),
                b("/dev/zero", "/dev/zero", false, false),
                b("/dev/net/tun", "/dev/net/tun", false, false),
                b("/sys", "/sys", false, true),
                b("/s/d/tmp", "/var/tmp", false, true),
                // Parents first; the externals folder does not exist and is left out.
                b("/w", "/w", false, true),
                b("/s/r", "/s/r", false, true),
                b("/s/d", "/s/d", false, true),
                b(
                    "/var/lib/containers/storage",
                    "/var/lib/containers/storage",
                    true,
                    true
                ),
            ]
        );
        let links: Vec<(String, String)> = steps
            .iter()
            .filter_map(|s| match s {
                Step::Symlink { target, at } => {
                    Some((at.display().to_string(), target.display().to_string()))
                }
                _ => None,
            })
            .collect();
        let l = |at: &str, t: &str| (at.to_string(), t.to_string());
        assert_eq!(
            links,
            [
                l("/bin", "usr/bin"),
                l("/sbin", "usr/sbin"),
                l("/lib", "usr/lib"),
                l("/lib64", "usr/lib64"),
                l("/etc/mtab", "../proc/self/mounts"),
                l("/dev/fd", "/proc/self/fd"),
                l("/dev/stdin", "/proc/self/fd/0"),
                l("/dev/stdout", "/proc/self/fd/1"),
                l("/dev/stderr", "/proc/self/fd/2"),
                l("/dev/ptmx", "pts/ptmx"),
                l("/var/run", "../run"),
            ]
        );
        // Links come last, after every mount point exists.
        let first_link = steps
            .iter()
            .position(|s| matches!(s, Step::Symlink { .. }))
            .unwrap();
        assert!(steps[first_link..]
            .iter()
            .all(|s| matches!(s, Step::Symlink { .. })));
        for at in ["/dev", "/dev/shm", "/run", "/tmp"] {
            assert!(
                steps
                    .iter()
                    .any(|s| matches!(s, Step::Tmpfs { at: a, .. } if a == Path::new(at))),
                "{at}"
            );
        }
        assert!(steps.contains(&Step::Dir { at: "/proc".into() }));
        assert!(steps.contains(&Step::Dir {
            at: "/var/lib/cni".into()
        }));
        assert!(steps.contains(&Step::Devpts {
            at: "/dev/pts".into()
        }));
        // Nothing of /etc outside the list, and never a secret.
        assert!(!binds
            .iter()
            .any(|(src, ..)| src.contains("shadow") || src.contains("ssh")));
    }

    #[test]
    fn a_rootful_engine_gets_its_own_netavark_folder_and_unmerged_usr_is_bound() {
        let found = |p: &Path| match p.to_str().unwrap() {
            "/bin" | "/lib" => Found::Dir,
            _ => Found::Missing,
        };
        let steps = plan(
            &Sandbox::default(),
            Path::new("/x/tmp"),
            Some(Path::new("/x/netavark")),
            found,
        );
        assert!(steps.contains(&Step::Bind {
            src: "/x/netavark".into(),
            at: "/run/containers/networks".into(),
            dir: true,
            read_only: false,
            recursive: false,
        }));
        for top in ["/bin", "/lib"] {
            assert!(steps.contains(&Step::Bind {
                src: top.into(),
                at: top.into(),
                dir: true,
                read_only: true,
                recursive: true,
            }));
        }
        // The netavark folder goes on /run's tmpfs: after it.
        let run = steps
            .iter()
            .position(|s| matches!(s, Step::Tmpfs { at, .. } if at == Path::new("/run")))
            .unwrap();
        let net = steps
            .iter()
            .position(|s| matches!(s, Step::Bind { src, .. } if src == Path::new("/x/netavark")))
            .unwrap();
        assert!(run < net);
    }
}

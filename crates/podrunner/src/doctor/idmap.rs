//! Rootless user namespaces: the setuid helpers `newuidmap`/`newgidmap` and the subordinate
//! id ranges in /etc/subuid and /etc/subgid.

use super::distro::Distro;
use super::{Check, Facts, Host, Status};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Ids a rootless user needs: images use uids up to 65534 (`nobody`), and Podman maps them
/// 1:1 above the user's own id. Debian's and Fedora's `useradd` hand out exactly this many.
pub const MIN_SUBIDS: u64 = 65536;
/// Where `useradd` starts handing out ranges (login.defs SUB_UID_MIN).
const FIRST_SUBID: u64 = 100000;
/// NixOS puts its setuid wrappers here; they must come first on PATH.
const NIXOS_WRAPPERS: &str = "/run/wrappers/bin";
/// Where Nix keeps its packages. It cannot hold setuid programs, so a Podman installed with
/// Nix on another distribution needs that distribution's newuidmap (docs/nix.md).
const NIX_STORE: &str = "/nix/store/";

/// How a helper binary may gain the privilege it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Privilege {
    SetuidRoot,
    FileCaps,
    None,
}

/// Setuid root, or file capabilities (the `security.capability` xattr), or neither.
pub fn privilege(path: &Path) -> std::io::Result<Privilege> {
    let meta = std::fs::metadata(path)?;
    if meta.mode() & 0o4000 != 0 && meta.uid() == 0 {
        return Ok(Privilege::SetuidRoot);
    }
    match rustix::fs::getxattr_query(path, "security.capability") {
        Ok(n) if n > 0 => Ok(Privilege::FileCaps),
        _ => Ok(Privilege::None),
    }
}

pub fn check_idmap_helper(host: &Host, facts: &Facts, prog: &str) -> Check {
    let c = Check::new(prog, prog, Status::Pass);
    let why = format!(
        "rootless Podman runs {prog} to map the subordinate {} into each container's user namespace; without a privileged {prog} no container starts",
        if prog == "newuidmap" { "uids" } else { "gids" }
    );
    let all = host.env.which_all(prog);
    let wrapper = PathBuf::from(NIXOS_WRAPPERS).join(prog);
    let Some(first) = all.first() else {
        let nix_podman = podman_from_nix(host, facts.podman.program());
        let fix = missing_helper_fix(&facts.distro, prog, wrapper.exists(), nix_podman);
        return c
            .with_status(Status::Fail)
            .found(format!("{prog} is not on PATH"))
            .why(why)
            .fix(fix);
    };
    match privilege(first) {
        Ok(Privilege::SetuidRoot) => c.found(format!("{} is setuid root", first.display())),
        Ok(Privilege::FileCaps) => c.found(format!("{} has file capabilities", first.display())),
        Ok(Privilege::None) => {
            let good = all.iter().skip(1).find(|p| {
                matches!(
                    privilege(p),
                    Ok(Privilege::SetuidRoot | Privilege::FileCaps)
                )
            });
            let fix = if let Some(g) = good {
                format!(
                    "remove {} or put {} before {} on PATH: {} is privileged",
                    first.display(),
                    g.parent().unwrap_or(Path::new("/")).display(),
                    first.parent().unwrap_or(Path::new("/")).display(),
                    g.display()
                )
            } else if facts.distro == Distro::NixOS {
                format!(
                    "put {NIXOS_WRAPPERS} first on PATH; {}",
                    facts.distro.reinstall_uidmap()
                )
            } else {
                facts.distro.reinstall_uidmap()
            };
            c.with_status(Status::Fail)
                .found(format!(
                    "{} is first on PATH and is neither setuid root nor has file capabilities",
                    first.display()
                ))
                .why(why)
                .fix(fix)
        }
        Err(e) => c
            .with_status(Status::Fail)
            .found(format!("cannot inspect {}: {e}", first.display()))
            .why(why)
            .fix(facts.distro.reinstall_uidmap()),
    }
}

/// Whether the podman program (a path, or a name looked up on PATH) lives in the Nix store.
fn podman_from_nix(host: &Host, program: &str) -> bool {
    let found = if program.contains('/') {
        Some(PathBuf::from(program))
    } else {
        host.env.which(program)
    };
    found
        .map(|p| std::fs::canonicalize(&p).unwrap_or(p))
        .is_some_and(|p| p.starts_with(NIX_STORE))
}

/// The fix when `prog` is not on PATH: NixOS has it among its setuid wrappers; a Podman from
/// Nix on another distribution needs the distribution's package, since Nix cannot install
/// setuid programs; otherwise the distribution's package.
pub fn missing_helper_fix(
    distro: &Distro,
    prog: &str,
    nixos_wrapper_exists: bool,
    podman_from_nix: bool,
) -> String {
    let install = distro.install(&[super::distro::Pkg::Uidmap]);
    match distro {
        Distro::NixOS if nixos_wrapper_exists => {
            format!("put {NIXOS_WRAPPERS} first on PATH (it holds the setuid {prog})")
        }
        Distro::NixOS => install,
        _ if podman_from_nix => format!(
            "this Podman comes from Nix, which cannot install setuid programs, so {prog} must come from the distribution: {install}; then keep /usr/bin on PATH, the service's too (podrunner's home-manager module puts it there; docs/nix.md)"
        ),
        _ => install,
    }
}

/// One line of /etc/subuid or /etc/subgid: `owner:start:count`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubRange {
    /// A user name or a numeric uid.
    pub owner: String,
    pub start: u64,
    pub count: u64,
}

impl SubRange {
    pub fn end(&self) -> u64 {
        self.start + self.count
    }
    pub fn overlaps(&self, o: &SubRange) -> bool {
        self.start < o.end() && o.start < self.end()
    }
    fn shown(&self) -> String {
        format!("{}-{}", self.start, self.end().saturating_sub(1))
    }
}

/// The well-formed ranges of a subuid/subgid file (comments and bad lines are skipped, as
/// shadow does).
pub fn parse_subids(text: &str) -> Vec<SubRange> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim();
            if l.is_empty() || l.starts_with('#') {
                return None;
            }
            let mut f = l.split(':');
            let owner = f.next()?.to_string();
            let start = f.next()?.trim().parse().ok()?;
            let count: u64 = f.next()?.trim().parse().ok()?;
            (count > 0 && !owner.is_empty()).then_some(SubRange {
                owner,
                start,
                count,
            })
        })
        .collect()
}

fn is_mine(r: &SubRange, user: &str, uid: u32) -> bool {
    r.owner == user || r.owner == uid.to_string()
}

/// The first `count`-sized range at or above 100000, aligned to 65536, that overlaps nobody.
pub fn free_start(ranges: &[SubRange], count: u64) -> u64 {
    let mut start = FIRST_SUBID;
    loop {
        let cand = SubRange {
            owner: String::new(),
            start,
            count,
        };
        match ranges
            .iter()
            .filter(|r| r.overlaps(&cand))
            .map(SubRange::end)
            .max()
        {
            None => return start,
            Some(end) => start = end.div_ceil(MIN_SUBIDS) * MIN_SUBIDS,
        }
    }
}

/// What the ranges say about `user`: its ranges, their total, and other users' overlapping
/// ranges as (mine, theirs).
pub fn assess(
    ranges: &[SubRange],
    user: &str,
    uid: u32,
) -> (Vec<SubRange>, u64, Vec<(SubRange, SubRange)>) {
    let mine: Vec<SubRange> = ranges
        .iter()
        .filter(|r| is_mine(r, user, uid))
        .cloned()
        .collect();
    let total = mine.iter().map(|r| r.count).sum();
    let mut overlaps = Vec::new();
    for m in &mine {
        for o in ranges.iter().filter(|r| !is_mine(r, user, uid)) {
            if m.overlaps(o) {
                overlaps.push((m.clone(), o.clone()));
            }
        }
    }
    (mine, total, overlaps)
}

/// `kind` is `subuid` or `subgid`.
pub fn check_subids(host: &Host, facts: &Facts, kind: &str) -> Check {
    let file = format!("/etc/{kind}");
    let c = Check::new(kind, file.clone(), Status::Pass);
    let ids = if kind == "subuid" { "uids" } else { "gids" };
    let why = format!(
        "rootless containers need at least {MIN_SUBIDS} subordinate {ids} of their own: without them Podman cannot map the image's users (the runner image runs as uid 1001)"
    );
    let (user, uid) = (facts.user.as_str(), facts.uid);
    let text = match host.read(&file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => {
            return c
                .with_status(Status::Fail)
                .found(format!("cannot read {file}: {e}"))
                .why(why)
                .fix(format!("sudo chmod 644 {file}"))
        }
    };
    let ranges = parse_subids(&text);
    let (mine, total, overlaps) = assess(&ranges, user, uid);
    let add = facts
        .distro
        .add_subids(user, free_start(&ranges, MIN_SUBIDS), MIN_SUBIDS);
    if mine.is_empty() {
        return c
            .with_status(Status::Fail)
            .found(format!("{file} has no range for {user} (uid {uid})"))
            .why(why)
            .fix(add);
    }
    let shown: Vec<String> = mine.iter().map(SubRange::shown).collect();
    if total < MIN_SUBIDS {
        return c
            .with_status(Status::Fail)
            .found(format!(
                "{user} has {total} subordinate {ids} ({}), fewer than {MIN_SUBIDS}",
                shown.join(", ")
            ))
            .why(why)
            .fix(add);
    }
    if let Some((m, o)) = overlaps.first() {
        let new = free_start(&ranges, MIN_SUBIDS);
        let flag = if kind == "subuid" {
            "subuids"
        } else {
            "subgids"
        };
        return c
            .with_status(Status::Warn)
            .found(format!(
                "{user}'s range {} overlaps {}'s range {}",
                m.shown(),
                o.owner,
                o.shown()
            ))
            .why(format!(
                "two users sharing subordinate {ids} can read and change each other's container files"
            ))
            .fix(match facts.distro {
                Distro::NixOS => add,
                _ => format!(
                    "sudo usermod --del-{flag} {} --add-{flag} {new}-{} {user}\nthen: podman system migrate",
                    m.shown(),
                    new + MIN_SUBIDS - 1
                ),
            });
    }
    c.found(format!("{user} has {total} {ids}: {}", shown.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(owner: &str, start: u64, count: u64) -> SubRange {
        SubRange {
            owner: owner.into(),
            start,
            count,
        }
    }

    #[test]
    fn missing_helper_fix_names_the_nix_specific_fix() {
        let debian = missing_helper_fix(&Distro::Debian, "newuidmap", false, true);
        assert_eq!(
            debian,
            "this Podman comes from Nix, which cannot install setuid programs, so newuidmap must come from the distribution: sudo apt-get install -y uidmap; then keep /usr/bin on PATH, the service's too (podrunner's home-manager module puts it there; docs/nix.md)"
        );
        let fedora = missing_helper_fix(&Distro::Fedora, "newgidmap", false, true);
        assert!(
            fedora.starts_with("this Podman comes from Nix, which cannot install setuid programs, so newgidmap must come from the distribution: sudo dnf install -y shadow-utils;"),
            "{fedora}"
        );
        // Podman from the distribution: just its package.
        assert_eq!(
            missing_helper_fix(&Distro::Debian, "newuidmap", false, false),
            "sudo apt-get install -y uidmap"
        );
        // NixOS: its setuid wrappers, whatever installed Podman.
        assert_eq!(
            missing_helper_fix(&Distro::NixOS, "newuidmap", true, true),
            "put /run/wrappers/bin first on PATH (it holds the setuid newuidmap)"
        );
        assert!(missing_helper_fix(&Distro::NixOS, "newuidmap", false, true)
            .contains("virtualisation.podman.enable = true;"));
    }

    #[test]
    fn podman_in_the_nix_store_is_recognised() {
        let dir = tempfile::tempdir().unwrap();
        let host = |path: &Path| Host {
            root: PathBuf::from("/"),
            env: super::super::HostEnv {
                uid: 1000,
                user: Some("u".into()),
                path: Some(path.as_os_str().to_owned()),
                xdg_runtime_dir: None,
            },
        };
        let h = host(dir.path());
        assert!(podman_from_nix(&h, "/nix/store/abc-podman-5.2/bin/podman"));
        assert!(!podman_from_nix(&h, "/usr/bin/podman"));
        // A name is looked up on PATH: here a podman that is not in the store.
        let p = dir.path().join("podman");
        std::fs::write(&p, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        assert!(!podman_from_nix(&h, "podman"));
        assert!(!podman_from_nix(&host(Path::new("/nonexistent")), "podman"));
    }

    #[test]
    fn parses_subid_files() {
        let t =
            "# comment\nci:100000:65536\n\n1001:165536:65536\nbad line\nx:1:notanumber\nz:5:0\n";
        assert_eq!(
            parse_subids(t),
            vec![r("ci", 100000, 65536), r("1001", 165536, 65536)]
        );
    }

    #[test]
    fn matches_by_name_or_uid_and_finds_overlap() {
        let ranges = parse_subids("a:100000:65536\nb:165536:65536\n1002:200000:65536\n");
        let (mine, total, ov) = assess(&ranges, "a", 1000);
        assert_eq!((mine.len(), total, ov.len()), (1, 65536, 0));
        // user c has uid 1002: found by number, and overlaps b (165536..231071).
        let (mine, total, ov) = assess(&ranges, "c", 1002);
        assert_eq!((mine.len(), total), (1, 65536));
        assert_eq!(ov, vec![(r("1002", 200000, 65536), r("b", 165536, 65536))]);
        let (mine, _, _) = assess(&ranges, "nobody", 4242);
        assert!(mine.is_empty());
        // Touching ranges do not overlap.
        assert!(!r("x", 0, 10).overlaps(&r("y", 10, 10)));
        assert!(r("x", 0, 11).overlaps(&r("y", 10, 10)));
    }

    #[test]
    fn free_range_skips_taken_ones() {
        assert_eq!(free_start(&[], 65536), 100000);
        let taken = parse_subids("a:100000:65536\nb:165536:65536\n");
        assert_eq!(free_start(&taken, 65536), 262144);
        let taken = parse_subids("a:0:1000\n");
        assert_eq!(free_start(&taken, 65536), 100000);
    }
}

//! Which distribution this is (`/etc/os-release`), and the exact fix commands for it: package
//! names and tools differ between Debian/Ubuntu, Fedora/RHEL, Arch and NixOS (where the fix is a
//! `configuration.nix` option, not a command).

use super::Host;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Distro {
    /// Debian, Ubuntu and derivatives: apt-get.
    Debian,
    /// Fedora, RHEL, CentOS Stream, Rocky, Alma: dnf.
    Fedora,
    /// Arch and derivatives: pacman.
    Arch,
    /// NixOS: options in /etc/nixos/configuration.nix.
    NixOS,
    /// Anything else: the `ID` from os-release (or "unknown").
    Other(String),
}

/// A piece of software a fix installs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pkg {
    Podman,
    Runc,
    /// newuidmap and newgidmap.
    Uidmap,
    Slirp4netns,
    /// pasta.
    Passt,
    FuseOverlayfs,
    /// Podman's network backend with DNS, and its DNS server (docs/docker.md, Networking).
    Netavark,
    AardvarkDns,
}

/// `ID` and the words of `ID_LIKE` from os-release text (quotes removed, lowercased).
pub fn parse_os_release(text: &str) -> (String, Vec<String>) {
    let mut id = String::new();
    let mut like = Vec::new();
    for line in text.lines() {
        let Some((k, v)) = line.trim().split_once('=') else {
            continue;
        };
        let v = v
            .trim()
            .trim_matches('"')
            .trim_matches('\'')
            .to_ascii_lowercase();
        match k.trim() {
            "ID" => id = v,
            "ID_LIKE" => like = v.split_whitespace().map(str::to_string).collect(),
            _ => {}
        }
    }
    (id, like)
}

impl Distro {
    pub fn from_os_release(text: &str) -> Distro {
        let (id, like) = parse_os_release(text);
        let is = |names: &[&str]| {
            names.contains(&id.as_str()) || like.iter().any(|l| names.contains(&l.as_str()))
        };
        if id == "nixos" {
            Distro::NixOS
        } else if is(&["debian", "ubuntu"]) {
            Distro::Debian
        } else if is(&["fedora", "rhel", "centos"]) {
            Distro::Fedora
        } else if is(&["arch"]) {
            Distro::Arch
        } else if id.is_empty() {
            Distro::Other("unknown".into())
        } else {
            Distro::Other(id)
        }
    }

    /// Reads `<root>/etc/os-release`, falling back to `<root>/usr/lib/os-release`.
    pub fn detect(host: &Host) -> Distro {
        let text = host
            .read("/etc/os-release")
            .or_else(|_| host.read("/usr/lib/os-release"))
            .unwrap_or_default();
        Distro::from_os_release(&text)
    }

    fn pkg_name(&self, p: Pkg) -> &'static str {
        match (self, p) {
            (_, Pkg::Podman) => "podman",
            (_, Pkg::Runc) => "runc",
            (Distro::Debian, Pkg::Uidmap) => "uidmap",
            (Distro::Fedora, Pkg::Uidmap) => "shadow-utils",
            (Distro::Arch, Pkg::Uidmap) => "shadow",
            (_, Pkg::Uidmap) => "the package that ships newuidmap (shadow/uidmap)",
            (_, Pkg::Slirp4netns) => "slirp4netns",
            (_, Pkg::Passt) => "passt",
            (_, Pkg::FuseOverlayfs) => "fuse-overlayfs",
            (_, Pkg::Netavark) => "netavark",
            (_, Pkg::AardvarkDns) => "aardvark-dns",
        }
    }

    fn nix_attr(p: Pkg) -> &'static str {
        match p {
            Pkg::Podman => "podman",
            Pkg::Runc => "runc",
            Pkg::Uidmap => "shadow",
            Pkg::Slirp4netns => "slirp4netns",
            Pkg::Passt => "passt",
            Pkg::FuseOverlayfs => "fuse-overlayfs",
            Pkg::Netavark => "netavark",
            Pkg::AardvarkDns => "aardvark-dns",
        }
    }

    /// The command (or NixOS option) that installs `pkgs`.
    pub fn install(&self, pkgs: &[Pkg]) -> String {
        let names: Vec<&str> = pkgs.iter().map(|p| self.pkg_name(*p)).collect();
        let names = names.join(" ");
        match self {
            Distro::Debian => format!("sudo apt-get install -y {names}"),
            Distro::Fedora => format!("sudo dnf install -y {names}"),
            Distro::Arch => format!("sudo pacman -S --needed {names}"),
            Distro::NixOS => {
                let mut lines = vec!["in /etc/nixos/configuration.nix:".to_string()];
                lines.push("  virtualisation.podman.enable = true;".into());
                let extra: Vec<&str> = pkgs
                    .iter()
                    .filter(|p| !matches!(p, Pkg::Podman | Pkg::Uidmap))
                    .map(|p| Self::nix_attr(*p))
                    .collect();
                if !extra.is_empty() {
                    lines.push(format!(
                        "  virtualisation.podman.extraPackages = with pkgs; [ {} ];",
                        extra.join(" ")
                    ));
                }
                lines.push("then: sudo nixos-rebuild switch".into());
                lines.join("\n")
            }
            Distro::Other(_) => format!("install {names} with your distribution's package manager"),
        }
    }

    /// Reinstalls the package that ships newuidmap/newgidmap (restores its setuid bit).
    pub fn reinstall_uidmap(&self) -> String {
        match self {
            Distro::Debian => "sudo apt-get install --reinstall -y uidmap".into(),
            Distro::Fedora => "sudo dnf reinstall -y shadow-utils".into(),
            Distro::Arch => "sudo pacman -S shadow".into(),
            Distro::NixOS => "in /etc/nixos/configuration.nix: virtualisation.podman.enable = true; (it sets security.wrappers.newuidmap and newgidmap), then sudo nixos-rebuild switch, and keep /run/wrappers/bin first on PATH".into(),
            Distro::Other(_) => "reinstall the package that ships newuidmap (shadow/uidmap), or: sudo chmod u+s /usr/bin/newuidmap /usr/bin/newgidmap".into(),
        }
    }

    /// Boots with the unified cgroup v2 hierarchy.
    pub fn cgroup_v2_boot(&self) -> String {
        const ARG: &str = "systemd.unified_cgroup_hierarchy=1";
        match self {
            Distro::Debian => format!("add {ARG} to GRUB_CMDLINE_LINUX in /etc/default/grub, then: sudo update-grub && sudo reboot"),
            Distro::Fedora => format!("sudo grubby --update-kernel=ALL --args=\"{ARG}\" && sudo reboot"),
            Distro::Arch => format!("add {ARG} to GRUB_CMDLINE_LINUX_DEFAULT in /etc/default/grub, then: sudo grub-mkconfig -o /boot/grub/grub.cfg && sudo reboot"),
            Distro::NixOS => format!("in /etc/nixos/configuration.nix: boot.kernelParams = [ \"{ARG}\" ]; then: sudo nixos-rebuild boot && sudo reboot"),
            Distro::Other(_) => format!("add {ARG} to the kernel command line and reboot"),
        }
    }

    /// Delegates the cgroup v2 controllers to user sessions (systemd drop-in).
    pub fn delegate(&self) -> String {
        match self {
            Distro::NixOS => "in /etc/nixos/configuration.nix: systemd.services.\"user@\".serviceConfig.Delegate = \"cpu cpuset io memory pids\"; then: sudo nixos-rebuild switch, and log in again".into(),
            _ => "sudo mkdir -p /etc/systemd/system/user@.service.d && printf '[Service]\\nDelegate=cpu cpuset io memory pids\\n' | sudo tee /etc/systemd/system/user@.service.d/delegate.conf && sudo systemctl daemon-reload\nthen log out and in again (or reboot)".into(),
        }
    }

    pub fn linger(&self, user: &str) -> String {
        match self {
            Distro::NixOS => format!("in /etc/nixos/configuration.nix: users.users.{user}.linger = true; then: sudo nixos-rebuild switch (or now: sudo loginctl enable-linger {user})"),
            _ => format!("sudo loginctl enable-linger {user}"),
        }
    }

    /// Gives `user` subordinate uids and gids `start..start+count`.
    pub fn add_subids(&self, user: &str, start: u64, count: u64) -> String {
        let end = start + count - 1;
        match self {
            Distro::NixOS => format!("in /etc/nixos/configuration.nix: users.users.{user}.subUidRanges = [ {{ startUid = {start}; count = {count}; }} ]; users.users.{user}.subGidRanges = [ {{ startGid = {start}; count = {count}; }} ]; (or autoSubUidGidRange = true;) then: sudo nixos-rebuild switch"),
            _ => format!("sudo usermod --add-subuids {start}-{end} --add-subgids {start}-{end} {user}\nthen: podman system migrate"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_release_variants() {
        let cases = [
            ("ID=debian\nVERSION_ID=\"12\"\n", Distro::Debian),
            ("ID=ubuntu\nID_LIKE=debian\n", Distro::Debian),
            ("ID=linuxmint\nID_LIKE=\"ubuntu debian\"\n", Distro::Debian),
            ("ID=fedora\n", Distro::Fedora),
            (
                "ID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\n",
                Distro::Fedora,
            ),
            ("ID=rhel\nID_LIKE=\"fedora\"\n", Distro::Fedora),
            ("ID=arch\n", Distro::Arch),
            ("ID=endeavouros\nID_LIKE=arch\n", Distro::Arch),
            ("ID=nixos\n", Distro::NixOS),
            ("ID=alpine\n", Distro::Other("alpine".into())),
            ("", Distro::Other("unknown".into())),
        ];
        for (text, want) in cases {
            assert_eq!(Distro::from_os_release(text), want, "{text}");
        }
        assert_eq!(
            parse_os_release("ID='opensuse-tumbleweed'\nID_LIKE=\"opensuse suse\"\n"),
            (
                "opensuse-tumbleweed".into(),
                vec!["opensuse".into(), "suse".into()]
            )
        );
    }

    #[test]
    fn fixes_differ_per_distribution() {
        let p = [Pkg::Uidmap];
        assert_eq!(Distro::Debian.install(&p), "sudo apt-get install -y uidmap");
        assert_eq!(
            Distro::Fedora.install(&p),
            "sudo dnf install -y shadow-utils"
        );
        assert_eq!(Distro::Arch.install(&p), "sudo pacman -S --needed shadow");
        let nix = Distro::NixOS.install(&[Pkg::Podman, Pkg::Runc]);
        assert!(
            nix.contains("virtualisation.podman.enable = true;"),
            "{nix}"
        );
        assert!(
            nix.contains("extraPackages = with pkgs; [ runc ];"),
            "{nix}"
        );
        assert!(Distro::NixOS
            .reinstall_uidmap()
            .contains("/run/wrappers/bin"));
        assert!(Distro::Fedora.cgroup_v2_boot().starts_with("sudo grubby"));
        assert!(Distro::Debian.cgroup_v2_boot().contains("update-grub"));
        assert!(Distro::NixOS.cgroup_v2_boot().contains("boot.kernelParams"));
        assert_eq!(
            Distro::Debian.add_subids("ci", 100000, 65536),
            "sudo usermod --add-subuids 100000-165535 --add-subgids 100000-165535 ci\nthen: podman system migrate"
        );
        assert!(Distro::NixOS
            .add_subids("ci", 100000, 65536)
            .contains("users.users.ci.subUidRanges"));
        assert_eq!(Distro::Arch.linger("ci"), "sudo loginctl enable-linger ci");
        assert!(Distro::NixOS
            .linger("ci")
            .contains("users.users.ci.linger = true;"));
        assert!(Distro::Debian
            .delegate()
            .contains("/etc/systemd/system/user@.service.d/delegate.conf"));
    }
}

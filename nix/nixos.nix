# NixOS module `services.podrunner`: one system-wide podrunner manager, run as root (rootful
# Podman) or as a dedicated user with rootless Podman, lingering and subordinate id ranges.
# Same options as the home-manager module (./options.nix); the unit is the system unit
# `podrunner install --system --user NAME` writes (./lib.nix), with PATH starting at NixOS's
# setuid newuidmap/newgidmap wrappers, so rootless Podman finds them.
{ config, lib, pkgs, ... }:
let
  plib = import ./lib.nix;
  prefix = "services.podrunner";
  cfg = config.services.podrunner;
  rootful = cfg.user == "root";
  configPath = "/etc/podrunner/config.toml";

  podmanPath =
    if cfg.podman.path or null != null then cfg.podman.path
    else if cfg.podmanPackage != null then "${cfg.podmanPackage}/bin/podman"
    else null;
  options' = cfg // { podman = cfg.podman // { path = podmanPath; }; };
  data = plib.configData options';
  configFile = (pkgs.formats.toml { }).generate "podrunner-config.toml" data;
  timings = plib.unitTimings data;

  uid = if rootful then 0 else cfg.uid;
  unit = plib.unit {
    exe = "${cfg.package}/bin/podrunner";
    config = configPath;
    scope = { user = cfg.user; uid = if uid == null then 0 else uid; };
    inherit (timings) restartSec timeoutStopSec;
    path = plib.servicePath { podman = cfg.podmanPackage; };
    reloadTriggers = [ configFile ];
    kill = "${pkgs.coreutils}/bin/kill";
  };

  manage = pkgs.writeScriptBin "github-runner-manage" (plib.manageScript {
    shell = pkgs.runtimeShell;
    podrunner = "${cfg.package}/bin/podrunner";
    config = configPath;
    systemctl = "systemctl";
    # status and logs talk to the manager's control socket, which belongs to its user.
    run = lib.optionalString (!rootful)
      "${pkgs.util-linux}/bin/runuser -u ${cfg.user} -- env XDG_RUNTIME_DIR=/run/user/${toString uid}";
  });
in
{
  options.services.podrunner = import ./options.nix { inherit lib pkgs plib; } // {
    enable = lib.mkEnableOption "a system-wide podrunner: self-hosted GitHub Actions runners in Podman containers, one per job";
    package = lib.mkOption {
      type = lib.types.package;
      default = pkgs.podrunner or (pkgs.callPackage ./package.nix { });
      defaultText = lib.literalExpression "pkgs.podrunner";
      description = "The podrunner package.";
    };
    podmanPackage = lib.mkOption {
      type = lib.types.nullOr lib.types.package;
      default = config.virtualisation.podman.package;
      defaultText = lib.literalExpression "config.virtualisation.podman.package";
      example = lib.literalExpression "pkgs.podman";
      description = "Podman for the runners (`[podman] path`).";
    };
    user = lib.mkOption {
      type = lib.types.str;
      default = "root";
      example = "podrunner";
      description = "User the manager runs as: `root` (rootful Podman) or a dedicated user (rootless Podman; set `uid`).";
    };
    group = lib.mkOption {
      type = lib.types.str;
      default = "podrunner";
      example = "runners";
      description = "Primary group of the dedicated user.";
    };
    uid = lib.mkOption {
      type = lib.types.nullOr lib.types.ints.positive;
      default = null;
      example = 990;
      description = "Fixed uid of the dedicated user: the unit names `user@UID.service` and `/run/user/UID`.";
    };
    createUser = lib.mkOption {
      type = lib.types.bool;
      default = true;
      example = false;
      description = "Create the dedicated user (system user, home `home`, lingering, the subordinate id ranges below).";
    };
    home = lib.mkOption {
      type = lib.types.str;
      default = "/var/lib/podrunner";
      example = "/srv/podrunner";
      description = "Home of the dedicated user: rootless Podman's storage, podrunner's state and work folders.";
    };
    subUidRanges = lib.mkOption {
      type = lib.types.listOf (lib.types.submodule {
        options.startUid = lib.mkOption { type = lib.types.ints.unsigned; description = "First subordinate uid."; };
        options.count = lib.mkOption { type = lib.types.ints.positive; description = "How many."; };
      });
      default = [ { startUid = 1000000000; count = 65536; } ];
      example = [ { startUid = 2000000000; count = 65536; } ];
      description = "Subordinate uids of the dedicated user (/etc/subuid), mapped into its containers. The default starts far above NixOS's automatic ranges.";
    };
    subGidRanges = lib.mkOption {
      type = lib.types.listOf (lib.types.submodule {
        options.startGid = lib.mkOption { type = lib.types.ints.unsigned; description = "First subordinate gid."; };
        options.count = lib.mkOption { type = lib.types.ints.positive; description = "How many."; };
      });
      default = [ { startGid = 1000000000; count = 65536; } ];
      example = [ { startGid = 2000000000; count = 65536; } ];
      description = "Subordinate gids of the dedicated user (/etc/subgid).";
    };
  };

  config = lib.mkIf cfg.enable (lib.mkMerge [
    {
      assertions = plib.checks prefix options' ++ [
        {
          # The setuid helpers rootless Podman runs, first on the unit's PATH.
          assertion = rootful || config.security.wrappers ? newuidmap && config.security.wrappers ? newgidmap;
          message = "${prefix}: rootless Podman needs NixOS's setuid newuidmap and newgidmap (security.wrappers); keep security.shadow.enable = true, or run as root (user = \"root\")";
        }
        {
          assertion = rootful || cfg.uid != null;
          message = "${prefix}.uid: set a fixed uid for the user ${cfg.user}; the unit needs it for user@UID.service and /run/user/UID";
        }
      ];

      # Podman with NixOS's containers configuration (policy.json, registries).
      virtualisation.podman.enable = lib.mkDefault true;

      environment.etc."podrunner/config.toml".source = configFile;
      environment.systemPackages = [ cfg.package manage ];

      systemd.units."podrunner.service" = {
        text = plib.renderUnit unit;
        wantedBy = [ "multi-user.target" ];
      };
    }
    (lib.mkIf (!rootful && cfg.createUser) {
      users.groups.${cfg.group} = { };
      users.users.${cfg.user} = {
        isSystemUser = true;
        inherit (cfg) group uid home subUidRanges subGidRanges;
        createHome = true;
        # The user's systemd (user@UID.service) and /run/user/UID exist from boot.
        linger = true;
      };
    })
  ]);
}

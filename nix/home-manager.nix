# home-manager module `programs.github-runner-container`: podrunner as the user's systemd
# service with rootless Podman. Keeps the original module's options (docs/nix.md has the
# migration) and adds the whole config file. What it writes comes from ./lib.nix:
# ~/.config/podrunner/config.toml, the user unit `podrunner install` would write, and the
# `github-runner-manage` command.
{ config, lib, pkgs, ... }:
let
  plib = import ./lib.nix;
  prefix = "programs.github-runner-container";
  cfg = config.programs.github-runner-container;
  configPath = "${config.xdg.configHome}/podrunner/config.toml";

  podmanPath =
    if cfg.podman.path or null != null then cfg.podman.path
    else if cfg.podmanPackage != null then "${cfg.podmanPackage}/bin/podman"
    else null;
  options' = cfg // { podman = cfg.podman // { path = podmanPath; }; };
  data = plib.configData options';
  configFile = (pkgs.formats.toml { }).generate "podrunner-config.toml" data;
  timings = plib.unitTimings data;

  unit = plib.unit {
    exe = "${cfg.package}/bin/podrunner";
    config = configPath;
    inherit (timings) restartSec timeoutStopSec;
    # NixOS's setuid newuidmap/newgidmap (/run/wrappers/bin) first; on other distributions
    # the host's own (uidmap package) in /usr/bin: Nix cannot install setuid programs.
    path = plib.servicePath {
      podman = cfg.podmanPackage;
      profile = config.home.profileDirectory;
    };
    reloadTriggers = [ configFile ];
    kill = "${pkgs.coreutils}/bin/kill";
  };

  manage = pkgs.writeScriptBin "github-runner-manage" (plib.manageScript {
    shell = pkgs.runtimeShell;
    podrunner = "${cfg.package}/bin/podrunner";
    config = configPath;
  });
in
{
  options.programs.github-runner-container = import ./options.nix { inherit lib pkgs plib; } // {
    enable = lib.mkEnableOption "self-hosted GitHub Actions runners in rootless Podman containers, one per job (podrunner)";
    package = lib.mkOption {
      type = lib.types.package;
      default = pkgs.podrunner or (pkgs.callPackage ./package.nix { });
      defaultText = lib.literalExpression "pkgs.podrunner";
      description = "The podrunner package.";
    };
    podmanPackage = lib.mkOption {
      type = lib.types.nullOr lib.types.package;
      default = pkgs.podman;
      defaultText = lib.literalExpression "pkgs.podman";
      example = lib.literalExpression "null";
      description = "Podman for the runners (`[podman] path`); null: the `podman` on PATH, e.g. the distribution's.";
    };
  };

  config = lib.mkIf cfg.enable {
    assertions = plib.checks prefix options';

    home.packages = [ cfg.package manage ];

    xdg.configFile."podrunner/config.toml".source = configFile;

    systemd.user.services.podrunner = plib.systemdAttrs unit;
  };
}

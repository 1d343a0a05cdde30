# The flake's checks (needs nixpkgs and home-manager, so not run on podrunner's CI; see
# docs/nix.md): both modules evaluated with every example of ./examples.nix, their
# assertions passing, their config.toml accepted by `podrunner config check` and their units
# holding what `podrunner install` writes.
{ pkgs, home-manager, nixos, hmModule, nixosModule }:
let
  inherit (pkgs) lib;
  examples = import ./examples.nix;
  passing = what: config:
    let failed = map (a: a.message) (lib.filter (a: !a.assertion) config.assertions);
    in if failed == [ ] then config else throw "${what}: ${lib.concatStringsSep "\n" failed}";

  home = name: options: passing "home-manager ${name}" (home-manager.lib.homeManagerConfiguration {
    inherit pkgs;
    modules = [
      hmModule
      {
        home = { username = "you"; homeDirectory = "/home/you"; stateVersion = "24.11"; };
        programs.github-runner-container = { enable = true; } // options;
      }
    ];
  }).config;

  system = name: options: passing "nixos ${name}" (nixos {
    modules = [
      nixosModule
      {
        nixpkgs.pkgs = pkgs;
        boot.isContainer = true;
        system.stateVersion = "24.11";
        services.podrunner = { enable = true; } // options;
      }
    ];
  }).config;

  # config check exits 0, or 1 when only the token file is missing (it is, in the sandbox);
  # 2 is an invalid config.
  check = name: configFile: unitFile: pkgs.runCommand "podrunner-check-${name}" { } ''
    set +e
    ${pkgs.podrunner}/bin/podrunner --config ${configFile} config check
    rc=$?
    set -e
    [ "$rc" = 0 ] || [ "$rc" = 1 ]
    grep -qx 'Type=notify' ${unitFile}
    grep -qx 'KillMode=process' ${unitFile}
    grep -q '^ExecStart=.*/bin/podrunner --config .* run$' ${unitFile}
    grep -q '^Environment=PATH=/run/wrappers/bin:' ${unitFile}
    touch $out
  '';

  homeCheck = name: options:
    let c = home name options;
    in check "home-${name}" c.xdg.configFile."podrunner/config.toml".source
      c.xdg.configFile."systemd/user/podrunner.service".source;

  systemCheck = name: options:
    let c = system name options;
    in check "nixos-${name}" c.environment.etc."podrunner/config.toml".source
      (pkgs.writeText "podrunner.service" c.systemd.units."podrunner.service".text);
in
lib.mapAttrs' (n: v: lib.nameValuePair "home-${n}" (homeCheck n v)) examples
// lib.mapAttrs' (n: v: lib.nameValuePair "nixos-${n}" (systemCheck n v)) examples
// {
  nixos-rootless = systemCheck "rootless" (examples.advanced // { user = "podrunner"; uid = 990; });
}

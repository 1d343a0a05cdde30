{
  description = "podrunner: ephemeral self-hosted GitHub Actions runners, one Podman container per job";

  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";
    home-manager = {
      url = "github:nix-community/home-manager";
      inputs.nixpkgs.follows = "nixpkgs";
    };
  };

  outputs = { self, nixpkgs, home-manager }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" ];
      forAllSystems = f: nixpkgs.lib.genAttrs systems (system:
        f system (import nixpkgs { inherit system; overlays = [ self.overlays.default ]; }));
    in
    {
      # The builtins-only part: options -> config.toml data, unit, github-runner-manage.
      lib = import ./nix/lib.nix;

      overlays.default = final: prev: {
        podrunner = final.callPackage ./nix/package.nix { };
      };

      packages = forAllSystems (system: pkgs: {
        podrunner = pkgs.podrunner;
        default = pkgs.podrunner;
      });

      homeManagerModules = {
        github-runner-container = ./nix/home-manager.nix;
        default = self.homeManagerModules.github-runner-container;
      };

      nixosModules = {
        podrunner = ./nix/nixos.nix;
        default = self.nixosModules.podrunner;
      };

      # Both modules evaluated with nixpkgs (and home-manager), their config.toml checked by
      # `podrunner config check`, their units by `systemd-analyze verify` (docs/nix.md).
      checks = forAllSystems (system: pkgs: import ./nix/checks.nix {
        inherit pkgs home-manager;
        nixos = nixpkgs.lib.nixosSystem;
        hmModule = self.homeManagerModules.default;
        nixosModule = self.nixosModules.default;
      });
    };
}

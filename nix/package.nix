# podrunner built from this checkout with the crates pinned in Cargo.lock.
{ lib, rustPlatform }:
let
  root = ./..;
  # Only what the build reads: a change to docs or scripts does not rebuild.
  keep = path: type:
    let rel = lib.removePrefix (toString root + "/") (toString path);
    in rel == "Cargo.toml" || rel == "Cargo.lock" || rel == "crates" || lib.hasPrefix "crates/" rel;
in
rustPlatform.buildRustPackage {
  pname = "podrunner";
  version = (lib.importTOML ../Cargo.toml).workspace.package.version;
  src = lib.cleanSourceWith { src = root; filter = keep; };
  cargoLock.lockFile = ../Cargo.lock;
  cargoBuildFlags = [ "--package" "podrunner" ];
  # The tests drive real Podman and systemd, which the build sandbox has not.
  doCheck = false;
  meta = {
    description = "Ephemeral self-hosted GitHub Actions runners, one Podman container per job";
    license = lib.licenses.asl20;
    mainProgram = "podrunner";
    platforms = lib.platforms.linux;
  };
}

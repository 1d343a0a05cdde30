# Example configurations: the original module's README examples written with its options
# (basic, advanced), and one using the whole config file (full). The tests turn each into
# config.toml and feed it to `podrunner config check` (crates/podrunner/tests/nix.rs); the
# flake's checks evaluate both modules with them (./checks.nix); docs/nix.md shows them.
{
  basic = {
    repository = "you/your-repo";
    tokenFile = "/home/you/.github-runner-token";
  };

  advanced = {
    repository = "you/your-repo";
    tokenFile = "/home/you/.github-runner-token";
    runnerName = "nix-builder";
    image = "ghcr.io/actions/actions-runner:latest";
    extraLabels = [ "nix" "podman" ];
    workDir = "/home/you/runner-work";
    vmMemory = "8192";
    vmCpus = "4";
  };

  full = {
    github.token_file = "/run/secrets/github-runner-token";
    podman.runtime = "runc";
    manager.drain_timeout = "2h";
    pools = {
      ci = {
        repository = "you/your-repo";
        count = 2;
        cpus = 2;
        memory = "4g";
        labels = [ "podman" ];
        restart_delay = "10s";
      };
      org = {
        organization = "your-org";
        runner_name = "org-big";
        count = 4;
        cpus = 1.5;
        memory = 6144;
        stop_timeout = "2m";
        docker = "none";
        run_args = [ "--network=slirp4netns" ];
      };
    };
  };
}

//! The commented starter config that `podrunner config init` writes.

/// What `podrunner config init OWNER/REPO` writes: a working config for one repository, every
/// other setting commented with its default.
pub fn starter_config(repository: &str) -> String {
    format!(
        r#"# podrunner config: self-hosted GitHub Actions runners, one Podman container per job.
# All keys and defaults: the README's "Configuration reference". Check it with
# `podrunner config check`, the host with `podrunner doctor`.

[github]
# A fine-grained token with "Administration: write" on the repository (classic: `repo`),
# readable only by you: (umask 077; printf '%s' 'github_pat_...' > ~/.github-runner-token)
# token_file = "~/.github-runner-token"
# api_url = "https://api.github.com"      # GitHub Enterprise Server: "https://HOST/api/v3"

[manager]
# Several hosts may share this file: each names its runners with its own host id, derived
# from /etc/machine-id (docs/hosts.md). Set one to read names more easily:
# host_id = "web1"

[[pool]]
name = "default"
repository = "{repository}"
count = 2                         # runners kept ready, each for one job
labels = ["podman"]               # runs-on: [self-hosted, linux, podman]
# cpus = 2
# memory = "4g"
# image = "ghcr.io/actions/actions-runner:latest"
# pull = "newer"                  # pull when missing, and look for a newer image every pull_interval
# pull_interval = "6h"
# online_timeout = "5m"           # a runner not online by then is replaced
# restart_delay = "1s"            # pause before a replacement, after failures only
# docker = "isolated"             # a private Podman engine per runner for `docker` in jobs
"#
    )
}

//! `podrunner run`: the manager in the foreground.

use super::exit::Exit;
use super::Cli;
use crate::github::auth::Credentials;
use crate::github::{ghes, Client};
use crate::manager::{self, Manager, RunOptions};
use crate::podman::Podman;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub async fn exec(cli: &Cli, _args: &Args) -> anyhow::Result<Exit> {
    let cfg = cli.load_config()?;
    manager::prepare_dirs(&cfg)?;
    let log_file = cfg
        .manager
        .log_file
        .then(|| crate::runner::paths::manager_log(&cfg));
    crate::logging::init_manager(
        cli.log_format,
        cli.log_level.as_deref(),
        log_file.as_deref(),
    )?;
    // In the log too: under systemd, stderr may not be where people look.
    start(cfg)
        .await
        .inspect_err(|e| tracing::error!("{}", super::exit::message(e)))?;
    Ok(Exit::Success)
}

async fn start(cfg: crate::config::Config) -> anyhow::Result<()> {
    // Refuse early, with the doctor's explanation and fix, when the host cannot run runners.
    let failed = crate::doctor::preflight(&cfg, &crate::doctor::Host::real()).await;
    if !failed.is_empty() {
        anyhow::bail!("{}", crate::doctor::refusal(&failed));
    }
    let creds = Credentials::from_config(&cfg.github)?;
    let podman = Podman::from_config(&cfg.podman);
    let version = podman.version().await.map_err(|e| {
        anyhow::anyhow!("podman does not work: {e}\n  fix: install Podman (Debian/Ubuntu: sudo apt-get install podman; Fedora: sudo dnf install podman), then run `podrunner doctor`")
    })?;
    tracing::info!("podman {} found", version.client.version);
    for pool in &cfg.pools {
        match podman.image_exists(&pool.image).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(pool = %pool.name, "image {} is not in local storage; podman pulls it at the first start", pool.image)
            }
            Err(e) => tracing::warn!("cannot check image {}: {e}", pool.image),
        }
    }
    let gh = std::sync::Arc::new(Client::with_credentials(&cfg.github.api_url, creds)?);
    // In the background: a rate-limited GitHub must not hold up the manager's start.
    tokio::spawn(check_github(cfg.clone(), gh.clone()));
    let notify = std::env::var_os("NOTIFY_SOCKET").is_some();
    Manager::new(cfg, gh, podman)
        .run(RunOptions {
            notify_ready: notify,
        })
        .await
}

/// Soon after the start, in the log: a GitHub Enterprise Server too old for what a pool
/// needs (docs/ghes.md), and every `runner_group` name looked up (docs/credentials.md). Both
/// would also show at the first registration, as the pool's error in `podrunner status`.
async fn check_github(cfg: crate::config::Config, gh: std::sync::Arc<Client>) {
    if cfg.github.api_url != crate::config::DEFAULT_API_URL {
        if let Some(first) = cfg.pools.first() {
            match gh.check_server(&first.scope, &[]).await {
                Ok(Some(v)) => {
                    tracing::info!("GitHub Enterprise Server {v} at {}", cfg.github.api_url);
                    for p in &cfg.pools {
                        let needs =
                            ghes::needed(p.scale_set.is_some(), gh.credentials().kind(&p.scope));
                        if let Err(e) = ghes::require_all(&v, &needs) {
                            tracing::error!(pool = %p.name, "{e}");
                        }
                    }
                }
                Ok(None) => {}
                Err(e) => tracing::error!("{e}"),
            }
        }
    }
    for p in &cfg.pools {
        let Some(name) = &p.runner_group else {
            continue;
        };
        match gh.runner_group_id(&p.scope, name).await {
            Ok(id) => {
                tracing::info!(pool = %p.name, "runner group {name:?} of {} has id {id}", p.scope)
            }
            Err(e) => tracing::error!(pool = %p.name, "{e}"),
        }
    }
}

//! `podrunner restart`: stop (a full drain: busy runners finish their job first) then start,
//! under systemd or not. To apply a config change without draining, `systemctl reload` or
//! SIGHUP is enough; `restart` is for changes to `[manager]`, `api_url` or the binary.

use super::exit::Exit;
use super::{start, stop, Cli};
use crate::systemd::service;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Give up waiting for the manager to answer after this many seconds once started
    #[arg(long, default_value_t = start::DEFAULT_START_WAIT_SECS)]
    pub timeout: u64,
}

pub async fn exec(cli: &Cli, args: &Args) -> anyhow::Result<Exit> {
    crate::logging::init_cli(cli.log_level.as_deref());
    let cfg = cli.load_config()?;
    let svc = service::detect().await;
    // A manager that was not running is started all the same.
    match stop::stop(&cfg, svc.as_ref(), false, None).await? {
        Exit::Success | Exit::NotRunning => {}
        other => return Ok(other),
    }
    let svc = service::detect().await;
    start::start(cli, &cfg, svc.as_ref(), args.timeout).await
}

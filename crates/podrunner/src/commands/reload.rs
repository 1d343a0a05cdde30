//! `podrunner reload`: the running manager re-reads its config (like SIGHUP). Pools are
//! added, removed or resized without touching busy runners; an invalid config is refused and
//! the running one stays in force.

use super::exit::{Exit, Failed};
use super::Cli;
use crate::control::{self, ClientError, Request};

#[derive(Debug, clap::Args)]
pub struct Args {}

pub async fn exec(cli: &Cli, _args: &Args) -> anyhow::Result<Exit> {
    crate::logging::init_cli(cli.log_level.as_deref());
    let cfg = cli.load_config()?;
    match control::request(&cfg.control_socket(), &Request::Reload).await {
        Ok(r) if r.ok => {
            println!("{}", r.message.unwrap_or_default());
            Ok(Exit::Success)
        }
        Ok(r) => anyhow::bail!("{}", r.error.unwrap_or_default()),
        Err(ClientError::NotRunning(_)) => {
            Err(Failed::NotRunning("podrunner is not running".into()).into())
        }
        Err(e) => Err(e.into()),
    }
}

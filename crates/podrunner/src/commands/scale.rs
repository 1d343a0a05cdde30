//! `podrunner scale POOL N`: changes a pool's size in the running manager. It holds until the
//! next reload or restart; change the pool's `count` in the config to keep it.

use super::exit::{Exit, Failed};
use super::Cli;
use crate::control::{self, ClientError, Request};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The pool's name (see `podrunner status`)
    pub pool: String,
    /// How many runners the pool keeps ready (0 removes its idle runners)
    pub count: u32,
}

pub async fn exec(cli: &Cli, args: &Args) -> anyhow::Result<Exit> {
    crate::logging::init_cli(cli.log_level.as_deref());
    let cfg = cli.load_config()?;
    let req = Request::Scale {
        pool: args.pool.clone(),
        count: args.count,
    };
    match control::request(&cfg.control_socket(), &req).await {
        Ok(r) if r.ok => {
            println!("{}", r.message.unwrap_or_default());
            println!(
                "this lasts until the next reload or restart; set `count` in the config to keep it"
            );
            Ok(Exit::Success)
        }
        Ok(r) => anyhow::bail!("{}", r.error.unwrap_or_default()),
        Err(ClientError::NotRunning(_)) => Err(Failed::NotRunning(
            "podrunner is not running\n  fix: `podrunner start`, then scale".into(),
        )
        .into()),
        Err(e) => Err(e.into()),
    }
}

//! `podrunner reload`: the running manager re-reads its config (like SIGHUP). Pools are
//! added, removed or resized without touching busy runners; an invalid config is refused and
//! the running one stays in force.

use super::{Cli, EXIT_NOT_RUNNING};
use crate::control::{self, ClientError, Request};

#[derive(Debug, clap::Args)]
pub struct Args {}

pub async fn exec(cli: &Cli, _args: &Args) -> i32 {
    crate::logging::init_cli(cli.log_level.as_deref());
    let cfg = match cli.load_config() {
        Ok(c) => c,
        Err(code) => return code,
    };
    match control::request(&cfg.control_socket(), &Request::Reload).await {
        Ok(r) if r.ok => {
            println!("{}", r.message.unwrap_or_default());
            0
        }
        Ok(r) => {
            eprintln!("error: {}", r.error.unwrap_or_default());
            1
        }
        Err(ClientError::NotRunning(_)) => {
            eprintln!("podrunner is not running");
            EXIT_NOT_RUNNING
        }
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

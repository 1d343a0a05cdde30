//! `podrunner doctor`: checks that this host can run podrunner's runners and names the exact
//! fix for whatever is missing (see docs/doctor.md and [`crate::doctor`]).

use super::exit::Exit;
use super::Cli;
use crate::config::{Config, ConfigError, Env};
use crate::doctor::{self, Host};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print the checks as a JSON array
    #[arg(long)]
    pub json: bool,
}

/// Exit status 1 when any check fails, 0 otherwise (warnings included); 2 for a bad config.
/// Without a config file every host check still runs (with the defaults), and a `config`
/// check says which pool checks were skipped and how to make one.
pub async fn exec(cli: &Cli, args: &Args) -> anyhow::Result<Exit> {
    let env = Env::from_process();
    let path = cli.config_path(&env);
    let (cfg, missing) = match Config::load(&path, &env) {
        Ok(c) => (c, false),
        Err(ConfigError::Read { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            (Config::without_pools(&path, &env)?, true)
        }
        Err(e) => return Err(e.into()),
    };
    let mut checks = doctor::run_all(&cfg, &Host::real()).await;
    if missing {
        checks.push(doctor::no_config_check(&path));
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&checks).expect("checks serialize")
        );
    } else {
        print!("{}", doctor::render_text(&checks));
    }
    Ok(if checks.iter().any(|c| c.is_fail()) {
        Exit::Failure
    } else {
        Exit::Success
    })
}

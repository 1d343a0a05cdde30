//! `podrunner doctor`: checks that this host can run podrunner's runners and names the exact
//! fix for whatever is missing (see docs/doctor.md and [`crate::doctor`]).

use super::Cli;
use crate::doctor::{self, Host};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print the checks as a JSON array
    #[arg(long)]
    pub json: bool,
}

/// Exit status 1 when any check fails, 0 otherwise (warnings included); 2 for a bad config.
pub async fn exec(cli: &Cli, args: &Args) -> i32 {
    let cfg = match cli.load_config() {
        Ok(c) => c,
        Err(code) => return code,
    };
    let checks = doctor::run_all(&cfg, &Host::real()).await;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&checks).expect("checks serialize")
        );
    } else {
        print!("{}", doctor::render_text(&checks));
    }
    i32::from(checks.iter().any(|c| c.is_fail()))
}

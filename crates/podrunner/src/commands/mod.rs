//! The command line: global options and one file per subcommand. Each subcommand has an
//! `exec` that returns how it ended or an error with context; `exit.rs` turns that into the
//! process exit code.

pub mod completions;
pub mod config_check;
pub mod config_init;
pub mod docker_proxy;
pub mod doctor;
pub mod engine_exec;
pub mod engine_pin;
pub mod exit;
pub mod history;
pub mod install;
pub mod logs;
pub mod reload;
pub mod restart;
pub mod run;
pub mod scale;
pub mod start;
pub mod status;
pub mod stop;
pub mod uninstall;

use crate::config::{Config, ConfigError, Env};
use crate::logging::LogFormat;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "podrunner",
    version,
    about = "Ephemeral self-hosted GitHub Actions runners, one Podman container per job"
)]
pub struct Cli {
    /// Config file [default: ~/.config/podrunner/config.toml; /etc/podrunner/config.toml as root]
    #[arg(long, global = true, env = "PODRUNNER_CONFIG")]
    pub config: Option<PathBuf>,
    /// Log format of the manager
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Log level (error, warn, info, debug, trace) [default: info; RUST_LOG also works]
    #[arg(long, global = true)]
    pub log_level: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the manager in the foreground: keep every pool's runners ready
    Run(run::Args),
    /// Show the manager, its pools and every runner
    Status(status::Args),
    /// Show a runner's container output, or the manager's log
    Logs(logs::Args),
    /// List past runners and their jobs from the history (newest first)
    History(history::Args),
    /// Stop a running manager cleanly: idle runners removed, busy ones finish first
    Stop(stop::Args),
    /// Start the manager in the background (through systemd when the unit is installed)
    Start(start::Args),
    /// Stop (drain) the manager, then start it again
    Restart(restart::Args),
    /// Change a pool's size in the running manager until the next reload or restart
    Scale(scale::Args),
    /// Re-read the config in the running manager (like SIGHUP); an invalid one is refused
    Reload(reload::Args),
    /// Install and start the systemd service (a user unit, or --system --user NAME)
    Install(install::Args),
    /// Stop and remove the systemd service
    Uninstall(uninstall::Args),
    /// Check that this host can run runners, and name the exact fix for what is missing
    Doctor(doctor::Args),
    /// Work with the config file
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    Completions(completions::Args),
    /// Print the manual page (roff) for `podrunner.1`
    Man(completions::ManArgs),
    /// (internal) The Docker API proxy in front of a runner's engine; the manager starts it
    #[command(hide = true)]
    DockerProxy(Box<docker_proxy::Args>),
    /// Start a runner's engine in the runner's network namespace (started by docker-proxy)
    #[command(hide = true)]
    EngineExec(engine_exec::Args),
    /// Pin a checked bind source in a runner's engine (run by docker-proxy)
    #[command(hide = true)]
    EnginePin(engine_pin::Args),
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the config file and show what it means
    Check(config_check::Args),
    /// Write a commented starter config for a repository (never overwrites)
    Init(config_init::Args),
}

impl Cli {
    pub fn config_path(&self, env: &Env) -> PathBuf {
        self.config
            .clone()
            .unwrap_or_else(|| env.default_config_path())
    }

    /// Loads the config; its error names the place and the fix (exit code 2: exit.rs).
    pub fn load_config(&self) -> Result<Config, ConfigError> {
        let env = Env::from_process();
        let path = self.config_path(&env);
        Config::load(&path, &env)
    }
}

/// Runs the command and returns the process exit code (exit.rs).
pub async fn dispatch(cli: Cli) -> i32 {
    let result = match &cli.command {
        Command::Run(a) => run::exec(&cli, a).await,
        Command::Status(a) => status::exec(&cli, a).await,
        Command::Logs(a) => logs::exec(&cli, a).await,
        Command::History(a) => history::exec(&cli, a).await,
        Command::Stop(a) => stop::exec(&cli, a).await,
        Command::Start(a) => start::exec(&cli, a).await,
        Command::Restart(a) => restart::exec(&cli, a).await,
        Command::Scale(a) => scale::exec(&cli, a).await,
        Command::Reload(a) => reload::exec(&cli, a).await,
        Command::Install(a) => install::exec(&cli, a).await,
        Command::Uninstall(a) => uninstall::exec(&cli, a).await,
        Command::Doctor(a) => doctor::exec(&cli, a).await,
        Command::Config(ConfigCommand::Check(a)) => config_check::exec(&cli, a).await,
        Command::Completions(a) => completions::exec(a),
        Command::Man(a) => completions::exec_man(a),
        Command::Config(ConfigCommand::Init(a)) => config_init::exec(&cli, a).await,
        Command::DockerProxy(a) => docker_proxy::exec(&cli, a).await,
        Command::EngineExec(a) => engine_exec::exec(a),
        Command::EnginePin(a) => engine_pin::exec(a),
    };
    exit::report(result)
}

/// Formats seconds as a short age: `42s`, `5m`, `3h`, `2d`.
pub fn age(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn ages() {
        assert_eq!(super::age(5), "5s");
        assert_eq!(super::age(600), "10m");
        assert_eq!(super::age(7200), "2h");
        assert_eq!(super::age(200000), "2d");
    }
}

//! `podrunner uninstall`: stops the service (it drains: busy runners finish their job first),
//! disables it, removes the unit file and reloads systemd. Lingering stays on: other services
//! of the user may need it.

use super::exit::Exit;
use super::install::sudo_hint;
use super::Cli;
use crate::cmd;
use crate::config::Env;
use crate::systemd::service::{self, Instance, SYSTEMCTL_TIMEOUT};
use crate::systemd::unit::{self, UnitScope, UNIT_NAME};
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Remove the system unit (/etc/systemd/system) instead of the user unit
    #[arg(long)]
    pub system: bool,
    /// Print what would be done, change nothing
    #[arg(long)]
    pub dry_run: bool,
}

/// The unit's `TimeoutStopSec=`, to wait as long as systemd does for the drain.
pub fn stop_timeout_of(unit_text: &str) -> Option<u64> {
    unit_text
        .lines()
        .find_map(|l| l.strip_prefix("TimeoutStopSec="))
        .and_then(|v| v.trim().parse().ok())
}

pub async fn exec(cli: &Cli, args: &Args) -> anyhow::Result<Exit> {
    crate::logging::init_cli(cli.log_level.as_deref());
    let (scope, instance) = if args.system {
        (
            UnitScope::System {
                user: String::new(),
                uid: 0,
            },
            Instance::System,
        )
    } else {
        (UnitScope::User, Instance::User)
    };
    let env = Env::from_process();
    let path = unit::unit_path(&scope, &env.home, env.xdg_config_home.as_deref());
    let Ok(text) = std::fs::read_to_string(&path) else {
        println!(
            "{UNIT_NAME} is not installed ({} does not exist)",
            path.display()
        );
        return Ok(Exit::Success);
    };
    let stop_secs = stop_timeout_of(&text).unwrap_or(unit::STOP_MARGIN_SECS + 6 * 3600 + 60);
    let disable = service::systemctl_args(instance, &["disable", "--now", UNIT_NAME]);
    let reload = service::systemctl_args(instance, &["daemon-reload"]);
    let rm = cmd::render("rm", &[path.display().to_string()]);
    let plan = [
        cmd::render("systemctl", &disable),
        rm.clone(),
        cmd::render("systemctl", &reload),
    ];
    if args.dry_run {
        println!("would run:");
        for l in &plan {
            println!("  {l}");
        }
        return Ok(Exit::Success);
    }
    let systemd = service::systemd_running();
    if systemd {
        println!("stopping {UNIT_NAME}: it drains first, busy runners finish their job (up to {stop_secs}s)...");
        // Give systemctl a little longer than systemd gives the unit.
        let wait = Duration::from_secs(stop_secs + 30);
        // A service that may still run keeps its unit: nothing else is tried.
        if let Err(e) = cmd::run("systemctl", &disable, None, wait).await {
            let by_hand: Vec<String> = plan.iter().map(|l| format!("  {l}")).collect();
            anyhow::bail!(
                "{e}{}\n  to finish by hand:\n{}",
                sudo_hint(instance),
                by_hand.join("\n")
            );
        }
        println!("ran: {}", plan[0]);
    }
    // From here every step is tried; the failures are reported together.
    let mut errors = crate::teardown::Errors::default();
    let removed = std::fs::remove_file(&path)
        .map_err(|e| std::io::Error::new(e.kind(), format!("{e}{}", sudo_hint(instance))));
    if errors
        .check(format!("cannot remove {}", path.display()), removed)
        .is_some()
    {
        println!("removed {}", path.display());
    }
    if systemd {
        match cmd::run("systemctl", &reload, None, SYSTEMCTL_TIMEOUT).await {
            Ok(_) => println!("ran: {}", plan[2]),
            Err(e) => println!("warning: {e}\n  run: {}", plan[2]),
        }
    } else {
        println!("note: systemd is not running here, so there was nothing to stop or reload");
    }
    errors.into_result()?;
    println!(
        "lingering is left as it was; `loginctl disable-linger` turns it off if nothing else needs it"
    );
    Ok(Exit::Success)
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_stop_timeout() {
        assert_eq!(
            super::stop_timeout_of("[Service]\nTimeoutStopSec=21690\n"),
            Some(21690)
        );
        assert_eq!(super::stop_timeout_of("[Service]\n"), None);
    }
}

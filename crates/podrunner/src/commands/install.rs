//! `podrunner install`: writes the systemd unit, then reloads systemd, enables and starts the
//! unit and enables lingering (so the user's services run without a login). Where systemd
//! does not run, or with `--dry-run`, it prints the exact commands instead.

use super::exit::Exit;
use super::Cli;
use crate::cmd;
use crate::config::Env;
use crate::systemd::service::{self, Instance, SYSTEMCTL_TIMEOUT};
use crate::systemd::unit::{self, UnitOptions, UnitScope, UNIT_NAME};
use anyhow::Context;
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Install a system unit (/etc/systemd/system) that runs the manager as --user NAME
    #[arg(long, requires = "user")]
    pub system: bool,
    /// With --system: the user the manager runs as (its rootless Podman)
    #[arg(long, value_name = "NAME", requires = "system")]
    pub user: Option<String>,
    /// Enable the unit but do not start it now
    #[arg(long)]
    pub no_start: bool,
    /// Print the unit and the commands, change nothing
    #[arg(long)]
    pub dry_run: bool,
}

/// `systemctl start` waits for READY=1, which may take the unit's whole start timeout.
const START_WAIT: Duration = Duration::from_secs(unit::START_TIMEOUT_SEC + 30);

/// One step of the installation: the command line and how long it may take.
#[derive(Debug)]
pub struct Step {
    pub program: &'static str,
    pub args: Vec<String>,
    pub timeout: Duration,
}

impl Step {
    pub fn line(&self) -> String {
        cmd::render(self.program, &self.args)
    }
}

/// The commands that make systemd run the unit.
pub fn steps(instance: Instance, linger_user: &str, start: bool) -> Vec<Step> {
    let mut enable = vec!["enable"];
    if start {
        enable.push("--now");
    }
    enable.push(UNIT_NAME);
    vec![
        Step {
            program: "systemctl",
            args: service::systemctl_args(instance, &["daemon-reload"]),
            timeout: SYSTEMCTL_TIMEOUT,
        },
        Step {
            program: "systemctl",
            args: service::systemctl_args(instance, &enable),
            timeout: if start { START_WAIT } else { SYSTEMCTL_TIMEOUT },
        },
        Step {
            program: "loginctl",
            args: vec!["enable-linger".into(), linger_user.into()],
            timeout: SYSTEMCTL_TIMEOUT,
        },
    ]
}

async fn current_user(env: &Env) -> anyhow::Result<String> {
    if let Some(u) = &env.user {
        return Ok(u.clone());
    }
    let out = cmd::run("id", &["-un".into()], None, SYSTEMCTL_TIMEOUT).await?;
    Ok(String::from_utf8_lossy(&out).trim().to_string())
}

async fn uid_of(user: &str) -> anyhow::Result<u32> {
    let out = cmd::run("id", &["-u".into(), user.into()], None, SYSTEMCTL_TIMEOUT)
        .await
        .map_err(|e| anyhow::anyhow!("no user {user:?} here ({e})"))?;
    String::from_utf8_lossy(&out)
        .trim()
        .parse()
        .with_context(|| format!("`id -u {user}` gave no number"))
}

pub async fn exec(cli: &Cli, args: &Args) -> anyhow::Result<Exit> {
    crate::logging::init_cli(cli.log_level.as_deref());
    let mut cfg = cli.load_config()?;
    cfg.path = cfg
        .path
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", cfg.path.display()))?;
    let exe = std::env::current_exe()
        .and_then(|p| p.canonicalize())
        .context("cannot find the podrunner binary")?;
    let env = Env::from_process();
    let (scope, instance, linger_user) = match (&args.system, &args.user) {
        (true, Some(user)) => {
            unit::check_user_name(user)?;
            let uid = uid_of(user).await?;
            let scope = UnitScope::System {
                user: user.clone(),
                uid,
            };
            (scope, Instance::System, user.clone())
        }
        _ => (UnitScope::User, Instance::User, current_user(&env).await?),
    };
    let opts = UnitOptions::from_config(exe, &cfg, scope.clone());
    let text = unit::render_unit(&opts)?;
    let path = unit::unit_path(&scope, &env.home, env.xdg_config_home.as_deref());
    let steps = steps(instance, &linger_user, !args.no_start);
    let print_steps = |steps: &[Step]| {
        for s in steps {
            println!("  {}", s.line());
        }
    };

    if args.dry_run {
        println!("would write {}:\n", path.display());
        print!("{text}");
        println!("\nthen run:");
        print_steps(&steps);
        return Ok(Exit::Success);
    }

    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| {
            anyhow::anyhow!(
                "cannot create {}: {e}{}",
                dir.display(),
                sudo_hint(instance)
            )
        })?;
    }
    let old = std::fs::read_to_string(&path).ok();
    std::fs::write(&path, &text).map_err(|e| {
        anyhow::anyhow!(
            "cannot write {}: {e}{}",
            path.display(),
            sudo_hint(instance)
        )
    })?;
    let verb = match old {
        Some(o) if o == text => "unchanged",
        Some(_) => "updated",
        None => "wrote",
    };
    println!("{verb} {}", path.display());

    if !service::systemd_running() {
        println!(
            "note: systemd is not running on this machine (no /run/systemd/system), so nothing was\n\
             enabled or started. Where systemd runs, finish with:"
        );
        print_steps(&steps);
        return Ok(Exit::Success);
    }
    for (i, step) in steps.iter().enumerate() {
        if step.args.iter().any(|a| a == "--now") {
            println!("starting {UNIT_NAME} (it reports ready after its first reconcile)...");
        }
        match cmd::run(step.program, &step.args, None, step.timeout).await {
            Ok(_) => println!("ran: {}", step.line()),
            Err(e) if i == 0 => {
                // daemon-reload failed: systemctl cannot talk to this systemd (no user bus,
                // e.g. after `su` without a login session).
                println!(
                    "note: systemctl is not usable here ({e}).\n\
                     Run these in a login session of the user (or with sudo for --system):"
                );
                print_steps(&steps);
                return Ok(Exit::Success);
            }
            Err(e) if step.program == "loginctl" => {
                println!(
                    "warning: {e}\n  without lingering the service stops when you log out;\n  fix: sudo {}",
                    step.line()
                );
            }
            Err(e) => {
                let flag = instance.flags().join(" ");
                anyhow::bail!(
                    "{e}\n  see why: journalctl {flag} -u {UNIT_NAME} -n 50  (or `podrunner logs`)\n  after fixing the config: {}",
                    cmd::render("systemctl", &service::systemctl_args(instance, &["restart", UNIT_NAME]))
                );
            }
        }
    }
    if args.no_start {
        println!("enabled; start it with `podrunner start`");
    } else {
        println!("podrunner runs as a service; see `podrunner status` and `podrunner logs -f`");
    }
    Ok(Exit::Success)
}

pub(super) fn sudo_hint(instance: Instance) -> &'static str {
    match instance {
        Instance::System => "\n  fix: a system unit needs root: run it with sudo",
        Instance::User => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_lines() {
        let lines: Vec<String> = steps(Instance::User, "ci", true)
            .iter()
            .map(Step::line)
            .collect();
        assert_eq!(
            lines,
            [
                "systemctl --user daemon-reload",
                "systemctl --user enable --now podrunner.service",
                "loginctl enable-linger ci"
            ]
        );
        let lines: Vec<String> = steps(Instance::System, "ci", false)
            .iter()
            .map(Step::line)
            .collect();
        assert_eq!(
            lines,
            [
                "systemctl daemon-reload",
                "systemctl enable podrunner.service",
                "loginctl enable-linger ci"
            ]
        );
    }
}

//! `podrunner stop`: asks the running manager to drain and waits until it has exited. Under
//! systemd it goes through `systemctl stop` (systemd sends SIGTERM, which drains), otherwise
//! through the control socket; either way it shows the drain's progress from the socket.

use super::exit::{Exit, Failed};
use super::Cli;
use crate::cmd;
use crate::config::Config;
use crate::control::{self, ClientError, Request};
use crate::systemd::service::{self, Service, SYSTEMCTL_TIMEOUT};
use crate::systemd::unit::UNIT_NAME;
use std::io::Write;
use std::time::{Duration, Instant};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Return once the manager has accepted the request, without waiting for it to exit
    #[arg(long)]
    pub no_wait: bool,
    /// Give up waiting after this many seconds (the manager keeps draining)
    #[arg(long)]
    pub timeout: Option<u64>,
}

pub async fn exec(cli: &Cli, args: &Args) -> anyhow::Result<Exit> {
    crate::logging::init_cli(cli.log_level.as_deref());
    let cfg = cli.load_config()?;
    let svc = service::detect().await;
    stop(&cfg, svc.as_ref(), args.no_wait, args.timeout).await
}

/// Drains the manager, through systemd if `svc` is active, and waits for it to exit unless
/// `no_wait`. [`Exit::NotRunning`] if nothing ran.
pub async fn stop(
    cfg: &Config,
    svc: Option<&Service>,
    no_wait: bool,
    timeout: Option<u64>,
) -> anyhow::Result<Exit> {
    let sock = cfg.control_socket();
    match svc.filter(|s| s.is_active()) {
        Some(s) => {
            let args = service::systemctl_args(s.instance, &["stop", "--no-block", UNIT_NAME]);
            cmd::run("systemctl", &args, None, SYSTEMCTL_TIMEOUT).await?;
            println!("stopping {UNIT_NAME}: idle runners are removed; busy runners finish their job first");
        }
        None => match control::request(&sock, &Request::Drain).await {
            Ok(r) if r.ok => println!("{}", r.message.unwrap_or_default()),
            Ok(r) => anyhow::bail!("{}", r.error.unwrap_or_default()),
            Err(ClientError::NotRunning(_)) => {
                println!("podrunner is not running");
                return Ok(Exit::NotRunning);
            }
            Err(e) => return Err(e.into()),
        },
    }
    if no_wait {
        return Ok(Exit::Success);
    }
    let started = Instant::now();
    let tty = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let mut last = String::new();
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        match control::request(&sock, &Request::Status).await {
            Err(ClientError::NotRunning(_)) => break,
            Err(_) => break,
            Ok(r) => {
                let Some(s) = r.status else { continue };
                let busy = s.runners.iter().filter(|r| r.state == "busy").count();
                let line = format!(
                    "waiting for {} runner(s) to finish ({busy} busy), {}s",
                    s.runners.len(),
                    started.elapsed().as_secs()
                );
                if tty {
                    print!("\r{line}\x1b[K");
                    let _ = std::io::stdout().flush();
                } else if line.split(',').next() != last.split(',').next() {
                    println!("{line}");
                }
                last = line;
            }
        }
        if timeout.is_some_and(|t| started.elapsed().as_secs() >= t) {
            if tty {
                println!();
            }
            return Err(Failed::Plain(format!(
                "still draining after {}s; the manager goes on in the background",
                started.elapsed().as_secs()
            ))
            .into());
        }
    }
    if tty {
        println!();
    }
    if let Some(s) = svc {
        // The socket is gone just before the process exits; let systemd see it.
        for _ in 0..20 {
            match service::query(s.instance).await {
                Some(now) if now.is_active() => {
                    tokio::time::sleep(Duration::from_millis(250)).await
                }
                _ => break,
            }
        }
    }
    println!("podrunner stopped");
    Ok(Exit::Success)
}

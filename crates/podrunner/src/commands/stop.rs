//! `podrunner stop`: asks the running manager to drain and waits until it has exited.

use super::{Cli, EXIT_NOT_RUNNING};
use crate::control::{self, ClientError, Request};
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

pub async fn exec(cli: &Cli, args: &Args) -> i32 {
    crate::logging::init_cli(cli.log_level.as_deref());
    let cfg = match cli.load_config() {
        Ok(c) => c,
        Err(code) => return code,
    };
    let sock = cfg.control_socket();
    match control::request(&sock, &Request::Drain).await {
        Ok(r) if r.ok => println!("{}", r.message.unwrap_or_default()),
        Ok(r) => {
            eprintln!("error: {}", r.error.unwrap_or_default());
            return 1;
        }
        Err(ClientError::NotRunning(_)) => {
            println!("podrunner is not running");
            return EXIT_NOT_RUNNING;
        }
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    }
    if args.no_wait {
        return 0;
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
        if args
            .timeout
            .is_some_and(|t| started.elapsed().as_secs() >= t)
        {
            if tty {
                println!();
            }
            eprintln!(
                "still draining after {}s; the manager goes on in the background",
                started.elapsed().as_secs()
            );
            return 1;
        }
    }
    if tty {
        println!();
    }
    println!("podrunner stopped");
    0
}

//! `fake-github`: runs the fake GitHub server (docs/test-bench.md) as a process, for the
//! integration tests and the demo.
//!
//! Prints `fake-github listening on http://127.0.0.1:PORT` once it accepts connections,
//! writes the port to `--port-file` if given, and stops cleanly on SIGTERM or SIGINT.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use clap::Parser;
use fake_github::{FakeGithub, Options};

#[derive(Parser, Debug)]
#[command(
    name = "fake-github",
    version,
    about = "A local GitHub-compatible test server"
)]
struct Cli {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// File holding the API token clients must present (trailing newline ignored).
    #[arg(long, conflicts_with = "token_env")]
    token_file: Option<PathBuf>,
    /// Name of an environment variable holding the API token.
    #[arg(long)]
    token_env: Option<String>,
    /// Write the bound port (decimal, newline-terminated) to this file once listening.
    #[arg(long)]
    port_file: Option<PathBuf>,
    /// Base URL to put into JIT configs instead of the listening address.
    #[arg(long)]
    public_url: Option<String>,
    /// Behave as a GitHub Enterprise Server of this version (API under /api/v3).
    #[arg(long)]
    ghes_version: Option<String>,
}

fn read_token(cli: &Cli) -> anyhow::Result<String> {
    let token = if let Some(path) = &cli.token_file {
        std::fs::read_to_string(path)
            .with_context(|| format!("cannot read token file {}", path.display()))?
    } else if let Some(var) = &cli.token_env {
        std::env::var(var).with_context(|| format!("environment variable {var} is not set"))?
    } else {
        bail!("give the API token with --token-file PATH or --token-env VAR");
    };
    let token = token.trim_end_matches(['\r', '\n']).trim().to_string();
    if token.is_empty() {
        bail!("the API token is empty");
    }
    Ok(token)
}

/// Writes the port through a temporary file and a rename, so a reader never sees half of it.
fn write_port_file(path: &Path, port: u16) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("{port}\n"))
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let token = read_token(&cli)?;
    // Install the handlers before announcing, so a signal right after the line is not lost.
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    let gh = FakeGithub::start_with(Options {
        listen: cli.listen,
        token,
        public_url: cli.public_url.clone(),
        ghes_version: cli.ghes_version.clone(),
    })
    .await?;
    if let Some(path) = &cli.port_file {
        write_port_file(path, gh.port())?;
    }
    {
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        writeln!(out, "fake-github listening on {}", gh.url())?;
        out.flush()?;
    }
    let which = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    tracing::info!("{which}: stopping");
    gh.shutdown().await;
    Ok(())
}

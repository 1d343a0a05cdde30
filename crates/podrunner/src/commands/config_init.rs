//! `podrunner config init OWNER/REPO`: writes a commented starter config for one repository.
//! Never overwrites: an existing file is left as it is.

use super::exit::{Exit, Failed};
use super::Cli;
use crate::config::{names::Scope, starter_config, Env};
use anyhow::Context;
use std::io::Write;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The repository the runners serve, `OWNER/REPO`
    pub repository: String,
}

/// 0 written; 1 the file exists or cannot be written; 2 a bad repository name.
pub async fn exec(cli: &Cli, args: &Args) -> anyhow::Result<Exit> {
    if let Err(e) = Scope::repository(&args.repository) {
        return Err(Failed::Invalid(format!("{e}\n  fix: give the repository as OWNER/REPO, e.g. `podrunner config init octo/hello`")).into());
    }
    let path = cli.config_path(&Env::from_process());
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    // create_new: the check and the write are one step, so a file made meanwhile is kept too.
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path);
    let mut f = match file {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => anyhow::bail!(
            "{} exists; it is left as it is\n  fix: edit it, or pass --config PATH to write a new one elsewhere",
            path.display()
        ),
        Err(e) => return Err(e).with_context(|| format!("cannot write {}", path.display())),
    };
    f.write_all(starter_config(&args.repository).as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    println!("wrote {}", path.display());
    println!("next: put a token in ~/.github-runner-token (chmod 600), then `podrunner doctor` and `podrunner run`");
    Ok(Exit::Success)
}

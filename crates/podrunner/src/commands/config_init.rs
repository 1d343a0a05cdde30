//! `podrunner config init OWNER/REPO`: writes a commented starter config for one repository.
//! Never overwrites: an existing file is left as it is.

use super::Cli;
use crate::config::{names::Scope, starter_config, Env};
use std::io::Write;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The repository the runners serve, `OWNER/REPO`
    pub repository: String,
}

/// 0 written; 1 the file exists or cannot be written; 2 a bad repository name.
pub async fn exec(cli: &Cli, args: &Args) -> i32 {
    if let Err(e) = Scope::repository(&args.repository) {
        eprintln!("error: {e}\n  fix: give the repository as OWNER/REPO, e.g. `podrunner config init octo/hello`");
        return 2;
    }
    let path = cli.config_path(&Env::from_process());
    if let Some(dir) = path.parent() {
        if let Err(e) = std::fs::create_dir_all(dir) {
            eprintln!("error: cannot create {}: {e}", dir.display());
            return 1;
        }
    }
    // create_new: the check and the write are one step, so a file made meanwhile is kept too.
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path);
    let mut f = match file {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            eprintln!(
                "error: {} exists; it is left as it is\n  fix: edit it, or pass --config PATH to write a new one elsewhere",
                path.display()
            );
            return 1;
        }
        Err(e) => {
            eprintln!("error: cannot write {}: {e}", path.display());
            return 1;
        }
    };
    if let Err(e) = f.write_all(starter_config(&args.repository).as_bytes()) {
        eprintln!("error: cannot write {}: {e}", path.display());
        return 1;
    }
    println!("wrote {}", path.display());
    println!("next: put a token in ~/.github-runner-token (chmod 600), then `podrunner doctor` and `podrunner run`");
    0
}

//! The configuration file: its schema, defaults, and every check that can be made before
//! anything runs. Errors name the file, line and column, and say what is expected.
//!
//! This module reads files (the config and the token) but starts nothing. One file per
//! section, each with its raw (as written) and validated types and a small `parse`:
//! `github.rs` (`[github]`), `podman.rs` (`[podman]`), `manager.rs` (`[manager]`), `pool.rs`
//! (`[[pool]]`) with `scaling.rs` (a pool's sizing keys); `env.rs` is the environment the
//! defaults depend on, `credentials.rs` reads the token and key files, `starter.rs` is what
//! `config init` writes.

pub mod credentials;
pub mod env;
pub mod github;
pub mod listen;
pub mod manager;
pub mod names;
pub mod podman;
pub mod pool;
mod scaling;
mod starter;
pub mod values;

pub use credentials::{read_private_key, read_token};
pub use env::{Env, HOST_ID_ENV, MACHINE_ID_FILE};
pub use github::{AppConfig, GithubConfig, DEFAULT_API_URL, DEFAULT_TOKEN_FILE};
pub use manager::{
    ManagerConfig, DEFAULT_DRAIN_TIMEOUT, DEFAULT_HISTORY_MAX_AGE, DEFAULT_HISTORY_MAX_BYTES,
};
pub use podman::PodmanConfig;
pub use pool::{
    DockerMode, DockerModeError, DockerPolicy, PoolConfig, DEFAULT_COMMAND, DEFAULT_IMAGE,
    DEFAULT_LABELS, DEFAULT_PIDS_LIMIT, DEFAULT_RESTART_DELAY, DEFAULT_RUNNER_DIR,
    DEFAULT_RUNNER_GROUP_ID, MAX_LABELS, MIN_PULL_INTERVAL, MIN_STOP_TIMEOUT_SECS,
};
pub use starter::starter_config;

use serde::{Deserialize, Serialize};
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// Where a problem in the config file sits.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}\n  fix: create one with `podrunner config init OWNER/REPO` (or see the README's configuration reference), or pass --config PATH")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {message}\n  fix: {fix}")]
    At {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
        fix: String,
    },
    #[error("{path}: {message}\n  fix: {fix}")]
    File {
        path: PathBuf,
        message: String,
        fix: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    github: github::RawGithub,
    #[serde(default)]
    podman: podman::RawPodman,
    #[serde(default)]
    manager: manager::RawManager,
    #[serde(default, rename = "pool")]
    pools: Vec<Spanned<pool::RawPool>>,
}

/// The whole validated configuration.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    pub path: PathBuf,
    pub github: GithubConfig,
    pub podman: PodmanConfig,
    pub manager: ManagerConfig,
    pub pools: Vec<PoolConfig>,
}

/// The config text and its path: what an error needs to say where it is.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConfigText<'a> {
    text: &'a str,
    path: &'a Path,
}

impl ConfigText<'_> {
    /// An error at a place in the file.
    fn at(&self, span: Range<usize>, message: String, fix: &str) -> ConfigError {
        let (line, column) = line_col(self.text, span.start);
        ConfigError::At {
            path: self.path.to_path_buf(),
            line,
            column,
            message,
            fix: fix.to_string(),
        }
    }

    /// An error about the file as a whole.
    fn file(&self, message: String, fix: String) -> ConfigError {
        ConfigError::File {
            path: self.path.to_path_buf(),
            message,
            fix,
        }
    }

    /// A TOML syntax or type error, where serde placed it.
    fn toml(&self, e: toml::de::Error) -> ConfigError {
        let message = e.message().to_string();
        let fix = fix_for_parse_error(&message);
        match e.span() {
            Some(span) => self.at(span, message, &fix),
            None => self.file(message, fix),
        }
    }
}

mod secs {
    pub fn serialize<S: serde::Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
}

/// Expands a leading `~/` with `home`.
pub fn expand_home(p: &str, home: &Path) -> PathBuf {
    match p.strip_prefix("~/") {
        Some(rest) => home.join(rest),
        None if p == "~" => home.to_path_buf(),
        None => PathBuf::from(p),
    }
}

/// 1-based line and column of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0)
        + 1;
    (line, col)
}

impl Config {
    /// The settings of a config file without pools (all defaults): what `doctor` checks the
    /// host against before a config exists.
    pub fn without_pools(path: &Path, env: &Env) -> Result<Config, ConfigError> {
        let mut c = Config::parse(
            "[[pool]]\nname = \"none\"\nrepository = \"none/none\"\n",
            path,
            env,
        )?;
        c.pools.clear();
        Ok(c)
    }

    /// Reads and validates the file at `path`.
    pub fn load(path: &Path, env: &Env) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(&text, path, env)
    }

    /// Parses and validates config text; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path, env: &Env) -> Result<Config, ConfigError> {
        let t = ConfigText { text, path };
        let raw: RawConfig = toml::from_str(text).map_err(|e| t.toml(e))?;
        let github = github::parse(raw.github, &t, env)?;
        let podman = podman::parse(raw.podman);
        let manager = manager::parse(raw.manager, &t, env)?;
        let pools = pool::parse_all(raw.pools, &github, &t, env)?;
        Ok(Config {
            path: path.to_path_buf(),
            github,
            podman,
            manager,
            pools,
        })
    }

    pub fn pool(&self, name: &str) -> Option<&PoolConfig> {
        self.pools.iter().find(|p| p.name.as_str() == name)
    }

    /// The control socket's path.
    pub fn control_socket(&self) -> PathBuf {
        self.manager
            .runtime_dir
            .join(format!("{}.sock", self.manager.instance))
    }
}

fn fix_for_parse_error(message: &str) -> String {
    if message.starts_with("unknown field") {
        // serde lists the expected keys: point at them.
        "remove or rename the key; the keys this table accepts are listed above".into()
    } else if message.contains("missing field") {
        "add the missing key".into()
    } else if message.starts_with("invalid type") {
        "give the value the type named above (strings need quotes)".into()
    } else {
        "correct the value as described above".into()
    }
}

/// The first pool of a config text, parsed as user 1000 with a home of `/home/u`: for tests of
/// the modules that take a [`PoolConfig`].
#[cfg(test)]
pub(crate) fn test_pool(text: &str) -> PoolConfig {
    Config::parse(text, Path::new("/c.toml"), &Env::fixed(1000))
        .expect("a valid test config")
        .pools
        .remove(0)
}

#[cfg(test)]
mod tests;

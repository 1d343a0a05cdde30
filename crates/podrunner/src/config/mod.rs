//! The configuration file: its schema, defaults, and every check that can be made before
//! anything runs. Errors name the file, line and column, and say what is expected.
//!
//! This module reads files (the config and the token) but starts nothing.

pub mod listen;
pub mod names;
pub mod values;

use names::{Label, PoolName, RunnerPrefix, Scope};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;
use values::{Command, Memory, Secs};

/// GitHub's public API; GHES uses `https://HOST/api/v3` (docs/github-runner.md, REST conventions).
pub const DEFAULT_API_URL: &str = "https://api.github.com";
/// GitHub's official runner image.
pub const DEFAULT_IMAGE: &str = "ghcr.io/actions/actions-runner:latest";
/// The image has no ENTRYPOINT or CMD; callers run this (docs/github-runner.md, the image).
pub const DEFAULT_COMMAND: &str = "/home/runner/run.sh";
/// The runner's root folder in that image: run.sh is there, and the runner reads its settings
/// files (`.runner`, `.credentials`) from it.
pub const DEFAULT_RUNNER_DIR: &str = "/home/runner";
/// The token file of the original module.
pub const DEFAULT_TOKEN_FILE: &str = "~/.github-runner-token";
/// Labels every self-hosted Linux x64 runner carries; GitHub adds them as read-only labels.
pub const DEFAULT_LABELS: [&str; 3] = ["self-hosted", "linux", "x64"];
/// `podman stop` must give the runner time: the listener waits up to 30 s when cancelling a
/// job (docs/github-runner.md, Signals), so at least 60 s.
pub const MIN_STOP_TIMEOUT_SECS: u64 = 60;
/// Enough processes for a real build (compilers, test runners), low enough to stop a fork bomb.
pub const DEFAULT_PIDS_LIMIT: u64 = 4096;
/// How long a drain waits for busy runners to finish their job before stopping them.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(6 * 3600);
/// The default pause before a replacement starts after a runner failed (never after a job
/// that ran: the replacement of a finished runner starts at once).
pub const DEFAULT_RESTART_DELAY: Duration = Duration::from_secs(1);
/// Overrides the host id (`[manager] host_id` wins over it), e.g. for two managers on one
/// machine standing in for two hosts.
pub const HOST_ID_ENV: &str = "PODRUNNER_HOST_ID";
/// systemd's stable machine identity, the default host id's source (docs/hosts.md).
pub const MACHINE_ID_FILE: &str = "/etc/machine-id";
/// The shortest `pull_interval`: a check is a registry request; more often only costs.
pub const MIN_PULL_INTERVAL: Duration = Duration::from_secs(10);
/// Every organization's and enterprise's "Default" runner group has id 1; a repository's
/// runners are in it too.
pub const DEFAULT_RUNNER_GROUP_ID: u64 = 1;
/// GitHub refuses more than 100 labels on a runner (docs/github-runner.md, JIT body).
pub const MAX_LABELS: usize = 100;
/// History rows older than this are deleted (docs/history.md): a month answers "what ran
/// here last week" and keeps the file small.
pub const DEFAULT_HISTORY_MAX_AGE: Duration = Duration::from_secs(30 * 24 * 3600);
/// The history file is kept below this size, oldest rows first (about 150,000 runners).
pub const DEFAULT_HISTORY_MAX_BYTES: u64 = 64 * 1024 * 1024;

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
    github: RawGithub,
    #[serde(default)]
    podman: RawPodman,
    #[serde(default)]
    manager: RawManager,
    #[serde(default, rename = "pool")]
    pools: Vec<Spanned<RawPool>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGithub {
    api_url: Option<Spanned<String>>,
    token_file: Option<String>,
    app_id: Option<Spanned<u64>>,
    client_id: Option<Spanned<String>>,
    private_key_file: Option<Spanned<String>>,
    installation_id: Option<Spanned<u64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPodman {
    path: Option<String>,
    runtime: Option<String>,
    #[serde(default)]
    global_args: Vec<String>,
    #[serde(default)]
    run_args: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManager {
    instance: Option<PoolName>,
    state_dir: Option<String>,
    runtime_dir: Option<String>,
    drain_timeout: Option<Secs>,
    log_file: Option<bool>,
    webhook_listen: Option<Spanned<String>>,
    webhook_secret_file: Option<String>,
    listen: Option<listen::Listen>,
    history: Option<bool>,
    history_max_age: Option<Secs>,
    history_max_size: Option<Memory>,
    host_id: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPool {
    name: Spanned<PoolName>,
    repository: Option<Spanned<String>>,
    organization: Option<Spanned<String>>,
    enterprise: Option<Spanned<String>>,
    runner_name: Option<RunnerPrefix>,
    image: Option<String>,
    command: Option<Command>,
    runner_dir: Option<Spanned<String>>,
    labels: Option<Spanned<Vec<Label>>>,
    count: Option<u32>,
    cpus: Option<Spanned<f64>>,
    memory: Option<Memory>,
    pids_limit: Option<u64>,
    work_dir: Option<String>,
    restart_delay: Option<Secs>,
    stop_timeout: Option<Spanned<Secs>>,
    runner_group_id: Option<Spanned<u64>>,
    runner_group: Option<Spanned<String>>,
    #[serde(default)]
    run_args: Vec<String>,
    docker: Option<Spanned<String>>,
    docker_policy: Option<Spanned<String>>,
    engine_containers_conf: Option<String>,
    // Demand pools (docs/scaling.md).
    min_idle: Option<u32>,
    max: Option<Spanned<u32>>,
    idle_timeout: Option<Secs>,
    scale_set: Option<Spanned<toml::Value>>,
    disable_update: Option<Spanned<bool>>,
    poll_interval: Option<Spanned<Secs>>,
    online_timeout: Option<Secs>,
    pull: Option<Spanned<String>>,
    pull_interval: Option<Secs>,
    pull_source: Option<String>,
}

/// How jobs of a pool get a Docker-compatible engine (docs/docker.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DockerMode {
    /// A private Podman API service per runner (crate::engine).
    Isolated,
    /// The user's own Podman socket, shared by every job.
    Host,
    /// No engine: `docker` in a job cannot connect.
    None,
}

impl DockerMode {
    pub fn parse(s: &str) -> Result<DockerMode, DockerModeError> {
        match s {
            "isolated" => Ok(DockerMode::Isolated),
            "host" => Ok(DockerMode::Host),
            "none" => Ok(DockerMode::None),
            _ => Err(DockerModeError(s.into())),
        }
    }
}

/// A `docker` value that names no mode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("docker = {0:?} is not a mode; expected \"isolated\", \"host\" or \"none\"")]
pub struct DockerModeError(String);

/// What a job may ask of its runner's engine (docs/docker.md, "What a job may ask").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DockerPolicy {
    /// No privileged containers, no host paths outside the work folder, no host namespaces,
    /// devices or host-administering capabilities.
    Contained,
    /// Whatever the engine allows: the job is as powerful as the manager's user.
    Open,
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

#[derive(Debug, Clone, Serialize)]
pub struct GithubConfig {
    /// Base URL without a trailing slash.
    pub api_url: String,
    pub token_file: PathBuf,
    /// Whether `token_file` was written in the config (with an App, a token is then used for
    /// enterprise pools, which an App cannot manage).
    pub token_file_set: bool,
    /// GitHub App authentication instead of the token (docs/credentials.md).
    pub app: Option<AppConfig>,
}

/// `[github] app_id` or `client_id`, `private_key_file`, `installation_id`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AppConfig {
    /// The JWT's `iss`: the App's numeric id or its client id (GitHub accepts both).
    pub issuer: String,
    pub private_key_file: PathBuf,
    /// When unset, each pool's installation is looked up from its repository or organization.
    pub installation_id: Option<u64>,
}

impl GithubConfig {
    /// Whether pools of `scope` authenticate with the token file (otherwise with the App).
    pub fn uses_token(&self, scope: &Scope) -> bool {
        self.app.is_none() || matches!(scope, Scope::Enterprise(_))
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct PodmanConfig {
    /// The podman program.
    pub path: String,
    /// `--runtime` for every podman call: a name (`runc`, `crun`) or a path.
    pub runtime: Option<String>,
    /// Arguments put before the subcommand of every podman call (e.g. `--root`).
    pub global_args: Vec<String>,
    /// Extra arguments for every `podman run`, before the pool's own.
    pub run_args: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ManagerConfig {
    /// Tells this manager's containers apart from another manager's on the same host.
    pub instance: PoolName,
    pub state_dir: PathBuf,
    pub runtime_dir: PathBuf,
    #[serde(with = "secs")]
    pub drain_timeout: Duration,
    /// Also write the manager's log to `state_dir/manager.log`.
    pub log_file: bool,
    /// Where the `workflow_job` webhook receiver listens (docs/scaling.md); none by default.
    pub webhook_listen: Option<std::net::SocketAddr>,
    /// The webhook's shared secret (mode 600, like the token file).
    pub webhook_secret_file: Option<PathBuf>,
    /// The metrics and status page listener (docs/metrics.md); none by default.
    pub listen: Option<listen::Listen>,
    /// Record every runner and job in `state_dir/history.sqlite` (docs/history.md).
    pub history: bool,
    #[serde(with = "secs")]
    pub history_max_age: Duration,
    pub history_max_bytes: u64,
    /// Part of every runner name, so hosts sharing this config never collide (docs/hosts.md).
    pub host_id: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct PoolConfig {
    pub name: PoolName,
    pub scope: Scope,
    pub runner_name: RunnerPrefix,
    pub image: String,
    pub command: Vec<String>,
    /// The runner's root folder inside the image: its settings files from the JIT config go
    /// there (runner::jit::entrypoint_script).
    pub runner_dir: String,
    /// All labels, the defaults first.
    pub labels: Vec<String>,
    pub count: u32,
    pub cpus: Option<f64>,
    pub memory: Option<Memory>,
    pub pids_limit: u64,
    pub work_dir: PathBuf,
    #[serde(with = "secs")]
    pub restart_delay: Duration,
    #[serde(with = "secs")]
    pub stop_timeout: Duration,
    pub runner_group_id: u64,
    /// `runner_group = "name"`: resolved to its id by the GitHub client before the first
    /// registration (github::Client::runner_group_id); `runner_group_id` is then unused.
    pub runner_group: Option<String>,
    pub run_args: Vec<String>,
    /// Where jobs' `docker` goes (default isolated).
    pub docker: DockerMode,
    /// What a job may ask of its isolated engine (default contained; engine/policy.rs).
    pub docker_policy: DockerPolicy,
    /// A containers.conf for the per-runner engines (isolated mode), e.g. a runtime or
    /// default ulimits the host needs; podrunner adds the pool's pids_limit to it.
    pub engine_containers_conf: Option<PathBuf>,
    /// Where the pool's size comes from: `count` (fixed), a scale set, or queued jobs.
    pub mode: crate::core::demand::Mode,
    /// Demand pools: idle runners kept ready (default 0).
    pub min_idle: u32,
    /// Demand pools: runners at most, busy or not (fixed pools: `count`).
    pub max: u32,
    /// Demand pools: how long an idle runner waits for a job before it is retired.
    #[serde(with = "secs")]
    pub idle_timeout: Duration,
    /// Scale set pools: the scale set's name, which is also the one label jobs ask for.
    pub scale_set: Option<String>,
    /// Scale set pools: the scale set's runners do not update themselves (`disableUpdate`).
    pub disable_update: bool,
    /// Label demand pools: how often the repository's queued jobs are polled.
    #[serde(with = "secs")]
    pub poll_interval: Duration,
    /// A runner not online after this long is retired and counted a failure (0: never).
    #[serde(with = "secs")]
    pub online_timeout: Duration,
    /// When podrunner pulls the image (docs/images.md).
    pub pull: crate::core::PullPolicy,
    #[serde(with = "secs")]
    pub pull_interval: Duration,
    /// Where to pull from instead of `image` (any podman transport, e.g. `oci-archive:PATH`);
    /// the result is tagged as `image`.
    pub pull_source: Option<String>,
}

impl PoolConfig {
    /// The prefix of the names this host gives the pool's runners.
    pub fn host_prefix(&self, host_id: &str) -> String {
        crate::core::naming::host_prefix(self.runner_name.as_str(), host_id)
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

/// The environment the defaults depend on, passed in so tests can fix it.
#[derive(Debug, Clone, Default)]
pub struct Env {
    pub home: PathBuf,
    pub uid: u32,
    pub xdg_state_home: Option<PathBuf>,
    pub xdg_data_home: Option<PathBuf>,
    pub xdg_runtime_dir: Option<PathBuf>,
    /// `PODRUNNER_HOST_ID`.
    pub host_id: Option<String>,
    /// The content of `/etc/machine-id`.
    pub machine_id: Option<String>,
}

impl Env {
    pub fn from_process() -> Env {
        let var = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        Env {
            home: var("HOME").unwrap_or_else(|| PathBuf::from("/")),
            // SAFETY-free: getuid cannot fail.
            uid: crate::sys::uid(),
            xdg_state_home: var("XDG_STATE_HOME"),
            xdg_data_home: var("XDG_DATA_HOME"),
            xdg_runtime_dir: var("XDG_RUNTIME_DIR"),
            host_id: std::env::var(HOST_ID_ENV).ok().filter(|v| !v.is_empty()),
            machine_id: std::fs::read_to_string(MACHINE_ID_FILE)
                .ok()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty()),
        }
    }

    fn default_state_dir(&self) -> PathBuf {
        if self.uid == 0 {
            return PathBuf::from("/var/lib/podrunner");
        }
        self.xdg_state_home
            .clone()
            .unwrap_or_else(|| self.home.join(".local/state"))
            .join("podrunner")
    }

    fn default_data_dir(&self) -> PathBuf {
        if self.uid == 0 {
            return PathBuf::from("/var/lib/podrunner");
        }
        self.xdg_data_home
            .clone()
            .unwrap_or_else(|| self.home.join(".local/share"))
            .join("podrunner")
    }

    fn default_runtime_dir(&self) -> PathBuf {
        if self.uid == 0 {
            return PathBuf::from("/run/podrunner");
        }
        match &self.xdg_runtime_dir {
            Some(d) => d.join("podrunner"),
            None => self.default_state_dir().join("run"),
        }
    }

    /// `~/.config/podrunner/config.toml` (root: `/etc/podrunner/config.toml`).
    pub fn default_config_path(&self) -> PathBuf {
        if self.uid == 0 {
            return PathBuf::from("/etc/podrunner/config.toml");
        }
        let base = std::env::var_os("XDG_CONFIG_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| self.home.join(".config"));
        base.join("podrunner/config.toml")
    }
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
        let at = |span: std::ops::Range<usize>, message: String, fix: &str| {
            let (line, column) = line_col(text, span.start);
            ConfigError::At {
                path: path.to_path_buf(),
                line,
                column,
                message,
                fix: fix.to_string(),
            }
        };
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let message = e.message().to_string();
            let fix = fix_for_parse_error(&message);
            match e.span() {
                Some(span) => at(span, message, &fix),
                None => ConfigError::File {
                    path: path.to_path_buf(),
                    message,
                    fix,
                },
            }
        })?;

        let api_url = match raw.github.api_url.as_ref() {
            None => DEFAULT_API_URL.to_string(),
            Some(u) => {
                let s = u.get_ref().trim_end_matches('/').to_string();
                if !(s.starts_with("https://") || s.starts_with("http://")) {
                    return Err(at(
                        u.span(),
                        format!("api_url {:?} is not an http(s) URL", u.get_ref()),
                        "use https://api.github.com, or https://HOST/api/v3 for GitHub Enterprise Server",
                    ));
                }
                s
            }
        };
        let token_file = expand_home(
            raw.github
                .token_file
                .as_deref()
                .unwrap_or(DEFAULT_TOKEN_FILE),
            &env.home,
        );
        let g = &raw.github;
        let issuer = match (&g.app_id, &g.client_id) {
            (Some(a), Some(_)) => {
                return Err(at(
                    a.span(),
                    "[github] sets both app_id and client_id".into(),
                    "keep one of them: either identifies the GitHub App",
                ))
            }
            (Some(a), None) => Some((a.span(), a.get_ref().to_string())),
            (None, Some(c))
                if c.get_ref().trim().is_empty() || c.get_ref().contains(char::is_whitespace) =>
            {
                return Err(at(
                    c.span(),
                    format!("client_id {:?} is not a GitHub App client id", c.get_ref()),
                    "copy the Client ID from the App's settings page (it starts with Iv)",
                ))
            }
            (None, Some(c)) => Some((c.span(), c.get_ref().clone())),
            (None, None) => None,
        };
        let app = match (issuer, &g.private_key_file) {
            (Some((_, issuer)), Some(k)) => Some(AppConfig {
                issuer,
                private_key_file: expand_home(k.get_ref(), &env.home),
                installation_id: g.installation_id.as_ref().map(|i| *i.get_ref()),
            }),
            (Some((span, _)), None) => {
                return Err(at(
                    span,
                    "a GitHub App needs its private key".into(),
                    "add private_key_file = \"/path/to/app.private-key.pem\" (the key downloaded from the App's settings, chmod 600)",
                ))
            }
            (None, Some(k)) => {
                return Err(at(
                    k.span(),
                    "private_key_file is set but no app_id or client_id".into(),
                    "add app_id = 123456 (the App's id from its settings page), or remove private_key_file to use token_file",
                ))
            }
            (None, None) => {
                if let Some(i) = &g.installation_id {
                    return Err(at(
                        i.span(),
                        "installation_id is set but no GitHub App is configured".into(),
                        "add app_id and private_key_file, or remove installation_id",
                    ));
                }
                None
            }
        };
        let token_file_set = raw.github.token_file.is_some();

        let podman = PodmanConfig {
            path: raw.podman.path.unwrap_or_else(|| "podman".into()),
            runtime: raw.podman.runtime.filter(|r| !r.is_empty()),
            global_args: raw.podman.global_args,
            run_args: raw.podman.run_args,
        };

        let state_dir = raw
            .manager
            .state_dir
            .map(|p| expand_home(&p, &env.home))
            .unwrap_or_else(|| env.default_state_dir());
        let instance = raw
            .manager
            .instance
            .unwrap_or_else(|| PoolName::new("default").expect("valid"));
        let host_id = match (raw.manager.host_id, &env.host_id) {
            (Some(h), _) => {
                if !crate::core::naming::valid_host_id(h.get_ref()) {
                    return Err(at(
                        h.span(),
                        format!("host_id {:?} is not 1 to {} lowercase letters or digits", h.get_ref(), crate::core::naming::MAX_HOST_ID_LEN),
                        "write e.g. host_id = \"web1\", or remove it to derive one from /etc/machine-id",
                    ));
                }
                h.into_inner()
            }
            (None, Some(h)) => {
                if !crate::core::naming::valid_host_id(h) {
                    return Err(ConfigError::File {
                        path: path.to_path_buf(),
                        message: format!(
                            "{HOST_ID_ENV}={h:?} is not 1 to {} lowercase letters or digits",
                            crate::core::naming::MAX_HOST_ID_LEN
                        ),
                        fix: format!("unset {HOST_ID_ENV} or give it e.g. \"web1\""),
                    });
                }
                h.clone()
            }
            // Without a machine id (containers, chroots) the instance alone: set host_id.
            (None, None) => crate::core::naming::derive_host_id(
                env.machine_id.as_deref().unwrap_or(""),
                instance.as_str(),
            ),
        };
        let manager = ManagerConfig {
            instance,
            host_id,
            runtime_dir: raw
                .manager
                .runtime_dir
                .map(|p| expand_home(&p, &env.home))
                .unwrap_or_else(|| env.default_runtime_dir()),
            state_dir,
            drain_timeout: raw
                .manager
                .drain_timeout
                .map(|s| s.0)
                .unwrap_or(DEFAULT_DRAIN_TIMEOUT),
            log_file: raw.manager.log_file.unwrap_or(true),
            webhook_listen: match &raw.manager.webhook_listen {
                None => None,
                Some(l) => Some(l.get_ref().parse().map_err(|_| {
                    at(
                        l.span(),
                        format!("webhook_listen {:?} is not an address and port", l.get_ref()),
                        "write webhook_listen = \"127.0.0.1:8088\" (put a TLS proxy in front for GitHub to reach it)",
                    )
                })?),
            },
            webhook_secret_file: raw
                .manager
                .webhook_secret_file
                .as_deref()
                .map(|p| expand_home(p, &env.home)),
            listen: raw.manager.listen,
            history: raw.manager.history.unwrap_or(true),
            history_max_age: raw
                .manager
                .history_max_age
                .map(|s| s.0)
                .unwrap_or(DEFAULT_HISTORY_MAX_AGE),
            history_max_bytes: raw
                .manager
                .history_max_size
                .map(|m| m.0)
                .unwrap_or(DEFAULT_HISTORY_MAX_BYTES),
        };
        if let (Some(l), None) = (&raw.manager.webhook_listen, &manager.webhook_secret_file) {
            return Err(at(
                l.span(),
                "webhook_listen needs webhook_secret_file: unsigned webhooks are refused".into(),
                "add webhook_secret_file = \"~/.github-webhook-secret\" holding the secret set on GitHub",
            ));
        }

        if raw.pools.is_empty() {
            return Err(ConfigError::File {
                path: path.to_path_buf(),
                message: "no [[pool]] is defined".into(),
                fix: "add a pool, e.g.\n  [[pool]]\n  name = \"default\"\n  repository = \"owner/repo\"\n  count = 2".into(),
            });
        }

        let mut pools = Vec::new();
        let mut seen_names = BTreeSet::new();
        let mut seen_prefixes = BTreeSet::new();
        for sp in raw.pools {
            let span = sp.span();
            let p = sp.into_inner();
            let name = p.name.get_ref().clone();
            if !seen_names.insert(name.clone()) {
                return Err(at(
                    p.name.span(),
                    format!("pool name \"{name}\" is used twice"),
                    "give every [[pool]] its own name",
                ));
            }
            let scope = match (&p.repository, &p.organization, &p.enterprise) {
                (Some(r), None, None) => Scope::repository(r.get_ref()).map_err(|m| {
                    at(r.span(), m.to_string(), "write repository = \"owner/repo\"")
                })?,
                (None, Some(o), None) => Scope::organization(o.get_ref()).map_err(|m| {
                    at(o.span(), m.to_string(), "write organization = \"org-name\"")
                })?,
                (None, None, Some(e)) => {
                    let scope = Scope::enterprise(e.get_ref()).map_err(|m| {
                        at(
                            e.span(),
                            m.to_string(),
                            "write enterprise = \"enterprise-slug\"",
                        )
                    })?;
                    if app.is_some() && !token_file_set {
                        return Err(at(
                            e.span(),
                            format!("pool \"{name}\" is an enterprise pool, and a GitHub App cannot manage enterprise runners (GitHub has no App permission for them)"),
                            "also set [github] token_file to a file holding a classic personal access token with the manage_runners:enterprise scope (enterprise pools use it, the others the App), or register these runners in an organization",
                        ));
                    }
                    scope
                }
                (None, None, None) => {
                    return Err(at(
                        span,
                        format!("pool \"{name}\" sets neither repository nor organization"),
                        "add repository = \"owner/repo\", organization = \"org\" or enterprise = \"slug\"",
                    ));
                }
                (r, o, e) => {
                    let second = [r, o, e].into_iter().flatten().nth(1).expect("two are set");
                    return Err(at(
                        second.span(),
                        format!("pool \"{name}\" sets more than one of repository, organization and enterprise"),
                        "keep exactly one of them",
                    ));
                }
            };
            let runner_group = match (&p.runner_group, &p.runner_group_id) {
                (Some(g), Some(_)) => {
                    return Err(at(
                        g.span(),
                        format!("pool \"{name}\" sets both runner_group and runner_group_id"),
                        "keep one: runner_group = \"name\" is looked up, runner_group_id = N is used as is",
                    ))
                }
                (Some(g), None) if !scope.has_runner_groups() => {
                    return Err(at(
                        g.span(),
                        format!("pool \"{name}\" registers runners in repository {scope}, which has no runner groups"),
                        "remove runner_group: runner groups belong to organizations and enterprises (use organization = \"...\" to choose a group)",
                    ))
                }
                (Some(g), None) if g.get_ref().trim().is_empty() => {
                    return Err(at(
                        g.span(),
                        "runner_group must not be empty".into(),
                        "write the group's name as shown in the organization's Actions settings > Runner groups",
                    ))
                }
                (Some(g), None) => Some(g.get_ref().clone()),
                (None, _) => None,
            };
            let sizing = demand_sizing(&p, &name, span.clone(), &at)?;
            let runner_name = match p.runner_name {
                Some(r) => r,
                None => RunnerPrefix::new(name.as_str())
                    .map_err(|m| at(p.name.span(), m.to_string(), "set runner_name"))?,
            };
            if !seen_prefixes.insert(runner_name.clone()) {
                return Err(at(span, format!("runner_name \"{runner_name}\" is used by two pools"), "give each pool its own runner_name prefix, so podrunner can tell their runners apart"));
            }
            let mut labels: Vec<String> = DEFAULT_LABELS.iter().map(|s| s.to_string()).collect();
            let labels_span = p.labels.as_ref().map(|l| l.span()).unwrap_or(span.clone());
            for l in p.labels.iter().flat_map(|l| l.get_ref()) {
                if !labels.iter().any(|x| x.eq_ignore_ascii_case(l.as_str())) {
                    labels.push(l.as_str().to_string());
                }
            }
            if labels.len() > MAX_LABELS {
                return Err(at(
                    labels_span,
                    format!(
                        "pool \"{name}\" has {} labels; GitHub allows at most {MAX_LABELS}",
                        labels.len()
                    ),
                    "remove some labels",
                ));
            }
            if let Some(c) = &p.cpus {
                values::check_cpus(*c.get_ref()).map_err(|m| {
                    at(
                        c.span(),
                        m.to_string(),
                        "set cpus to a positive number, or remove it for no limit",
                    )
                })?;
            }
            let stop_timeout = match p.stop_timeout {
                None => Duration::from_secs(MIN_STOP_TIMEOUT_SECS),
                Some(s) if s.get_ref().0.as_secs() < MIN_STOP_TIMEOUT_SECS => {
                    return Err(at(s.span(), format!("stop_timeout must be at least {MIN_STOP_TIMEOUT_SECS}s: the runner needs up to 30 s to cancel a job"), "set stop_timeout = \"60s\" or more"));
                }
                Some(s) => s.get_ref().0,
            };
            let docker = match &p.docker {
                None => DockerMode::Isolated,
                Some(d) => DockerMode::parse(d.get_ref()).map_err(|m| {
                    at(
                        d.span(),
                        m.to_string(),
                        "write docker = \"isolated\" (a private engine per runner), \"host\" (the user's Podman socket) or \"none\"",
                    )
                })?,
            };
            let docker_policy = match &p.docker_policy {
                None => DockerPolicy::Contained,
                Some(d) => match d.get_ref().as_str() {
                    "contained" => DockerPolicy::Contained,
                    "open" => DockerPolicy::Open,
                    other => {
                        return Err(at(
                            d.span(),
                            format!("docker_policy = {other:?} is not a policy"),
                            "write docker_policy = \"contained\" (jobs cannot reach the host through their engine) or \"open\" (trusted jobs only)",
                        ))
                    }
                },
            };
            let runner_dir = match p.runner_dir {
                None => DEFAULT_RUNNER_DIR.to_string(),
                Some(d) if d.get_ref().starts_with('/') && !d.get_ref().contains(char::is_whitespace) => {
                    d.into_inner()
                }
                Some(d) => {
                    return Err(at(
                        d.span(),
                        format!("runner_dir {:?} is not an absolute path without spaces", d.get_ref()),
                        "write the folder inside the image that holds the runner's run.sh, e.g. runner_dir = \"/home/runner\"",
                    ))
                }
            };
            let pull = match &p.pull {
                None => crate::core::PullPolicy::Newer,
                Some(v) => crate::core::PullPolicy::parse(v.get_ref()).ok_or_else(|| {
                    at(
                        v.span(),
                        format!("pull {:?} is not a pull policy", v.get_ref()),
                        "write pull = \"newer\" (missing at start, newer every pull_interval), \"missing\" or \"never\"",
                    )
                })?,
            };
            if p.pull_interval
                .as_ref()
                .is_some_and(|i| i.0 < MIN_PULL_INTERVAL)
            {
                return Err(at(
                    span,
                    format!(
                        "pool \"{name}\": pull_interval is shorter than {}",
                        humantime::format_duration(MIN_PULL_INTERVAL)
                    ),
                    "check for a newer image every few hours, e.g. pull_interval = \"6h\"",
                ));
            }
            let work_dir = p
                .work_dir
                .map(|w| expand_home(&w, &env.home))
                .unwrap_or_else(|| env.default_data_dir().join("work").join(name.as_str()));
            pools.push(PoolConfig {
                scope,
                runner_name,
                image: p.image.unwrap_or_else(|| DEFAULT_IMAGE.into()),
                command: p
                    .command
                    .map(|c| c.0)
                    .unwrap_or_else(|| vec![DEFAULT_COMMAND.into()]),
                runner_dir,
                labels,
                count: match sizing.mode {
                    crate::core::demand::Mode::Fixed => p.count.unwrap_or(1),
                    _ => sizing.min_idle,
                },
                cpus: p.cpus.map(|c| c.into_inner()),
                memory: p.memory,
                pids_limit: p.pids_limit.unwrap_or(DEFAULT_PIDS_LIMIT),
                work_dir,
                restart_delay: p
                    .restart_delay
                    .map(|s| s.0)
                    .unwrap_or(DEFAULT_RESTART_DELAY),
                stop_timeout,
                runner_group_id: p
                    .runner_group_id
                    .map(|g| g.into_inner())
                    .unwrap_or(DEFAULT_RUNNER_GROUP_ID),
                runner_group,
                run_args: p.run_args,
                docker,
                docker_policy,
                engine_containers_conf: p
                    .engine_containers_conf
                    .map(|c| expand_home(&c, &env.home)),
                mode: sizing.mode,
                min_idle: sizing.min_idle,
                max: sizing.max.unwrap_or(p.count.unwrap_or(1)),
                idle_timeout: sizing.idle_timeout,
                scale_set: sizing.scale_set,
                disable_update: sizing.disable_update,
                poll_interval: sizing.poll_interval,
                online_timeout: p
                    .online_timeout
                    .map_or(crate::core::DEFAULT_ONLINE_TIMEOUT, |s| s.0),
                pull,
                pull_interval: p
                    .pull_interval
                    .map_or(crate::core::pull::DEFAULT_PULL_INTERVAL, |s| s.0),
                pull_source: p.pull_source.filter(|s| !s.trim().is_empty()),
                name,
            });
        }

        Ok(Config {
            path: path.to_path_buf(),
            github: GithubConfig {
                api_url,
                token_file,
                token_file_set,
                app,
            },
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

/// A pool's sizing keys, checked together.
struct Sizing {
    mode: crate::core::demand::Mode,
    min_idle: u32,
    max: Option<u32>,
    idle_timeout: Duration,
    scale_set: Option<String>,
    disable_update: bool,
    poll_interval: Duration,
}

/// Reads `count`, `min_idle`, `max`, `idle_timeout`, `scale_set` and `disable_update`
/// (docs/scaling.md): `count` makes a fixed pool; `max` a demand pool, fed by a scale set when
/// `scale_set` is given and by queued jobs matching its labels otherwise.
fn demand_sizing(
    p: &RawPool,
    name: &PoolName,
    span: std::ops::Range<usize>,
    at: &dyn Fn(std::ops::Range<usize>, String, &str) -> ConfigError,
) -> Result<Sizing, ConfigError> {
    use crate::core::demand::{Mode, DEFAULT_IDLE_TIMEOUT, DEFAULT_POLL_INTERVAL};
    let poll_interval = match &p.poll_interval {
        None => DEFAULT_POLL_INTERVAL,
        Some(s) if s.get_ref().0 < Duration::from_secs(1) => {
            return Err(at(
                s.span(),
                "poll_interval must be at least 1s".into(),
                "set poll_interval = \"10s\" or more (a webhook makes polls come sooner)",
            ))
        }
        Some(s) => s.get_ref().0,
    };
    let scale_set = match &p.scale_set {
        None => None,
        Some(v) => match v.get_ref() {
            toml::Value::Boolean(false) => None,
            toml::Value::Boolean(true) => Some(name.to_string()),
            toml::Value::String(s) => {
                names::check_name("scale_set", s, names::MAX_PREFIX_LEN).map_err(|m| {
                    at(
                        v.span(),
                        m.to_string(),
                        "write scale_set = true (named like the pool) or scale_set = \"a-name\"",
                    )
                })?;
                Some(s.clone())
            }
            other => {
                return Err(at(
                    v.span(),
                    format!("scale_set = {other} is neither true/false nor a scale set name"),
                    "write scale_set = true (named like the pool) or scale_set = \"a-name\"",
                ))
            }
        },
    };
    let Some(max) = &p.max else {
        let demand_key = if scale_set.is_some() {
            Some("scale_set")
        } else if p.min_idle.is_some() {
            Some("min_idle")
        } else if p.idle_timeout.is_some() {
            Some("idle_timeout")
        } else {
            None
        };
        if let Some(key) = demand_key {
            return Err(at(
                span,
                format!("pool \"{name}\" sets {key} but no max: a demand pool needs a cap"),
                "add max = N (runners at most, busy or not), or use count = N for a fixed pool",
            ));
        }
        if let Some(d) = &p.disable_update {
            return Err(at(
                d.span(),
                "disable_update applies to scale sets only".into(),
                "add scale_set = true, or remove disable_update",
            ));
        }
        if let Some(s) = &p.poll_interval {
            return Err(at(
                s.span(),
                "poll_interval applies to label pools sized by demand only".into(),
                "add max = N (and no scale_set), or remove poll_interval",
            ));
        }
        return Ok(Sizing {
            mode: Mode::Fixed,
            min_idle: 0,
            max: None,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            scale_set: None,
            disable_update: false,
            poll_interval,
        });
    };
    if p.count.is_some() {
        return Err(at(
            max.span(),
            format!("pool \"{name}\" sets both count and max"),
            "keep count = N for a fixed pool, or min_idle and max for a pool sized by demand",
        ));
    }
    let min_idle = p.min_idle.unwrap_or(0);
    if *max.get_ref() == 0 || min_idle > *max.get_ref() {
        return Err(at(
            max.span(),
            format!(
                "max = {} must be at least 1 and at least min_idle ({min_idle})",
                max.get_ref()
            ),
            "raise max, or lower min_idle",
        ));
    }
    if scale_set.is_some() {
        if let Some(l) = &p.labels {
            return Err(at(
                l.span(),
                "a scale set answers to one label, its name: labels do not apply".into(),
                "remove labels; workflows use runs-on: <the scale set's name>",
            ));
        }
    } else if let Some(d) = &p.disable_update {
        return Err(at(
            d.span(),
            "disable_update applies to scale sets only".into(),
            "add scale_set = true, or remove disable_update",
        ));
    } else if let Some(o) = &p.organization {
        return Err(at(
            o.span(),
            format!("pool \"{name}\" is sized by queued jobs, which GitHub lists per repository, not per organization"),
            "use scale_set = true for an organization pool sized by demand, or repository = \"owner/repo\"",
        ));
    }
    Ok(Sizing {
        mode: if scale_set.is_some() {
            Mode::ScaleSet
        } else {
            Mode::Labels
        },
        min_idle,
        max: Some(*max.get_ref()),
        idle_timeout: p
            .idle_timeout
            .as_ref()
            .map_or(DEFAULT_IDLE_TIMEOUT, |s| s.0),
        scale_set,
        disable_update: p.disable_update.as_ref().is_some_and(|d| *d.get_ref()),
        poll_interval,
    })
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

/// Reads a file that holds a secret, refusing one that group or others can read. `what`
/// names it in messages ("GitHub token file"), `fix_missing` says how to create it.
fn read_secret_file(path: &Path, what: &str, fix_missing: &str) -> anyhow::Result<String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| {
        anyhow::anyhow!(
            "cannot read the {what} {}: {e}\n  fix: {fix_missing}",
            path.display()
        )
    })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        anyhow::bail!(
            "the {what} {} has mode {mode:o}, readable by other users\n  fix: chmod 600 {}",
            path.display(),
            path.display()
        );
    }
    std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read the {what} {}: {e}", path.display()))
}

/// Reads a GitHub App's private key (PEM), with the token file's permission rule. The key is
/// checked to be an RSA key when the client is built (github::auth).
pub fn read_private_key(path: &Path) -> anyhow::Result<String> {
    let pem = read_secret_file(
        path,
        "GitHub App private key file",
        &format!("download a private key from the App's settings page (Private keys > Generate a private key) and save it there with chmod 600 {}", path.display()),
    )?;
    if !pem.trim_start().starts_with("-----BEGIN ") {
        anyhow::bail!(
            "the GitHub App private key file {} does not hold a PEM key\n  fix: save the .pem file GitHub gave when the key was generated, unchanged",
            path.display()
        );
    }
    Ok(pem)
}

/// Reads the GitHub token. Refuses a file that group or others can read, an empty one, and
/// a credential podrunner cannot use (a runner registration token, a key: github::diagnose);
/// strips one trailing newline or CRLF.
pub fn read_token(path: &Path) -> anyhow::Result<String> {
    let raw = read_secret_file(
        path,
        "GitHub token file",
        &format!(
            "write a token to it: (umask 077; printf '%s' \"$TOKEN\" > {})",
            path.display()
        ),
    )?;
    let token = raw
        .strip_suffix('\n')
        .map(|s| s.strip_suffix('\r').unwrap_or(s))
        .unwrap_or(&raw);
    if token.trim().is_empty() {
        anyhow::bail!(
            "the GitHub token file {} is empty\n  fix: put a personal access token in it (repository Administration: write, or admin:org for organization pools)",
            path.display()
        );
    }
    if let Some(refusal) = crate::github::diagnose::kind_of(token.trim()).refusal() {
        anyhow::bail!("the GitHub token file {} {refusal}", path.display());
    }
    if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
        anyhow::bail!(
            "the GitHub token file {} contains spaces or several lines\n  fix: keep only the token itself in the file",
            path.display()
        );
    }
    Ok(token.to_string())
}

/// The first pool of a config text, parsed as user 1000 with a home of `/home/u`: for tests of
/// the modules that take a [`PoolConfig`].
#[cfg(test)]
pub(crate) fn test_pool(text: &str) -> PoolConfig {
    let env = Env {
        home: "/home/u".into(),
        uid: 1000,
        xdg_state_home: None,
        xdg_data_home: None,
        xdg_runtime_dir: Some("/run/user/1000".into()),
        ..crate::config::Env::default()
    };
    Config::parse(text, Path::new("/c.toml"), &env)
        .expect("a valid test config")
        .pools
        .remove(0)
}

/// What `podrunner config init OWNER/REPO` writes: a working config for one repository, every
/// other setting commented with its default.
pub fn starter_config(repository: &str) -> String {
    format!(
        r#"# podrunner config: self-hosted GitHub Actions runners, one Podman container per job.
# All keys and defaults: the README's "Configuration reference". Check it with
# `podrunner config check`, the host with `podrunner doctor`.

[github]
# A fine-grained token with "Administration: write" on the repository (classic: `repo`),
# readable only by you: (umask 077; printf '%s' 'github_pat_...' > ~/.github-runner-token)
# token_file = "~/.github-runner-token"
# api_url = "https://api.github.com"      # GitHub Enterprise Server: "https://HOST/api/v3"

[manager]
# Several hosts may share this file: each names its runners with its own host id, derived
# from /etc/machine-id (docs/hosts.md). Set one to read names more easily:
# host_id = "web1"

[[pool]]
name = "default"
repository = "{repository}"
count = 2                         # runners kept ready, each for one job
labels = ["podman"]               # runs-on: [self-hosted, linux, podman]
# cpus = 2
# memory = "4g"
# image = "ghcr.io/actions/actions-runner:latest"
# pull = "newer"                  # pull when missing, and look for a newer image every pull_interval
# pull_interval = "6h"
# online_timeout = "5m"           # a runner not online by then is replaced
# restart_delay = "1s"            # pause before a replacement, after failures only
# docker = "isolated"             # a private Podman engine per runner for `docker` in jobs
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Env {
        Env {
            home: "/home/u".into(),
            uid: 1000,
            xdg_state_home: None,
            xdg_data_home: None,
            xdg_runtime_dir: Some("/run/user/1000".into()),
            machine_id: Some("0123456789abcdef0123456789abcdef".into()),
            ..Env::default()
        }
    }

    fn parse(s: &str) -> Result<Config, ConfigError> {
        Config::parse(s, Path::new("/c.toml"), &env())
    }

    #[test]
    fn the_starter_config_is_valid_and_says_what_it_means() {
        let c = parse(&starter_config("octo/hello")).unwrap();
        assert_eq!(c.pools.len(), 1);
        let p = &c.pools[0];
        assert_eq!(p.scope.api_path(), "repos/octo/hello");
        assert_eq!((p.count, p.pull), (2, crate::core::PullPolicy::Newer));
        assert_eq!(p.labels, vec!["self-hosted", "linux", "x64", "podman"]);
        let none = Config::without_pools(Path::new("/c.toml"), &env()).unwrap();
        assert!(none.pools.is_empty());
    }

    #[test]
    fn host_ids_from_file_env_or_machine() {
        let derived = parse("[[pool]]\nname = \"a\"\nrepository = \"o/r\"\n").unwrap();
        assert_eq!(
            derived.manager.host_id,
            crate::core::naming::derive_host_id("0123456789abcdef0123456789abcdef", "default")
        );
        let e = Env {
            host_id: Some("web2".into()),
            ..env()
        };
        let text = "[[pool]]\nname = \"a\"\nrepository = \"o/r\"\n";
        let c = Config::parse(text, Path::new("/c.toml"), &e).unwrap();
        assert_eq!(c.manager.host_id, "web2");
        assert_eq!(c.pools[0].host_prefix(&c.manager.host_id), "a-web2");
        let c = Config::parse(
            &format!("[manager]\nhost_id = \"web1\"\n{text}"),
            Path::new("/c.toml"),
            &e,
        )
        .unwrap();
        assert_eq!(c.manager.host_id, "web1", "the file wins");
        let err = parse(&format!("[manager]\nhost_id = \"Web-1\"\n{text}"))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(
                "/c.toml:2:11: host_id \"Web-1\" is not 1 to 8 lowercase letters or digits"
            ),
            "{err}"
        );
        let err = parse(&format!("{text}pull = \"always\"\n"))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("/c.toml:4:8: pull \"always\" is not a pull policy"),
            "{err}"
        );
    }

    #[test]
    fn minimal_pool_gets_defaults() {
        let c = parse("[[pool]]\nname = \"p\"\nrepository = \"o/r\"\n").unwrap();
        assert_eq!(c.github.api_url, "https://api.github.com");
        assert_eq!(
            c.github.token_file,
            PathBuf::from("/home/u/.github-runner-token")
        );
        let p = &c.pools[0];
        assert_eq!(p.image, DEFAULT_IMAGE);
        assert_eq!(p.command, vec!["/home/runner/run.sh".to_string()]);
        assert_eq!(p.labels, vec!["self-hosted", "linux", "x64"]);
        assert_eq!(p.count, 1);
        assert_eq!(p.runner_name.as_str(), "p");
        assert_eq!(p.runner_group_id, 1);
        assert_eq!(p.stop_timeout, Duration::from_secs(60));
        assert_eq!(
            p.work_dir,
            PathBuf::from("/home/u/.local/share/podrunner/work/p")
        );
        assert_eq!(
            c.manager.state_dir,
            PathBuf::from("/home/u/.local/state/podrunner")
        );
        assert_eq!(
            c.control_socket(),
            PathBuf::from("/run/user/1000/podrunner/default.sock")
        );
    }

    #[test]
    fn full_pool() {
        let c = parse(
            r#"
[github]
api_url = "https://ghe.example.com/api/v3/"
token_file = "~/tok"
[podman]
runtime = "runc"
run_args = ["--network=host"]
[[pool]]
name = "big"
organization = "acme"
runner_name = "acme-big"
labels = ["gpu", "Linux"]
count = 4
cpus = 2.5
memory = "4096"
restart_delay = "10s"
runner_group_id = 3
command = ["/bin/sh", "-c", "run"]
"#,
        )
        .unwrap();
        assert_eq!(c.github.api_url, "https://ghe.example.com/api/v3");
        assert_eq!(c.github.token_file, PathBuf::from("/home/u/tok"));
        let p = &c.pools[0];
        assert_eq!(p.scope.api_path(), "orgs/acme");
        assert_eq!(p.labels, vec!["self-hosted", "linux", "x64", "gpu"]);
        assert_eq!(p.memory.unwrap().0, 4096 * 1024 * 1024);
        assert_eq!(p.cpus, Some(2.5));
        assert_eq!(p.restart_delay, Duration::from_secs(10));
        assert_eq!(p.command.len(), 3);
        assert_eq!(c.podman.runtime.as_deref(), Some("runc"));
    }

    fn err(s: &str) -> String {
        parse(s).unwrap_err().to_string()
    }

    #[test]
    fn unknown_key_has_position() {
        let e = err("[[pool]]\nname = \"p\"\nrepository = \"o/r\"\ncoutn = 3\n");
        assert!(e.starts_with("/c.toml:4:1: unknown field `coutn`"), "{e}");
        assert!(e.contains("fix:"), "{e}");
    }

    #[test]
    fn bad_values_have_positions() {
        let e = err("[[pool]]\nname = \"p\"\nrepository = \"o/r\"\nmemory = \"4x\"\n");
        assert!(
            e.starts_with("/c.toml:4:10: memory \"4x\": unknown unit"),
            "{e}"
        );
        let e = err("[[pool]]\nname = \"p\"\nrepository = \"nope\"\n");
        assert!(
            e.starts_with("/c.toml:3:14: repository \"nope\" must have the form"),
            "{e}"
        );
        let e = err("[[pool]]\nname = \"p\"\nrepository = \"o/r\"\ncpus = 0\n");
        assert!(e.contains("/c.toml:4:8:"), "{e}");
        let e = err("[[pool]]\nname = \"p\"\nrepository = \"o/r\"\nstop_timeout = \"10s\"\n");
        assert!(
            e.starts_with("/c.toml:4:16: stop_timeout must be at least 60s"),
            "{e}"
        );
        let e = err("[[pool]]\nname = \"p\"\nrepository = \"o/r\"\nlabels = [\"a,b\"]\n");
        assert!(e.starts_with("/c.toml:4:"), "{e}");
        let e = err("[[pool]]\nname = \"p q\"\nrepository = \"o/r\"\n");
        assert!(
            e.starts_with("/c.toml:2:8: pool name \"p q\" contains ' '"),
            "{e}"
        );
        let e = err("[[pool]]\nname = \"p\"\ncount = \"two\"\nrepository = \"o/r\"\n");
        assert!(e.starts_with("/c.toml:3:9: invalid type"), "{e}");
    }

    #[test]
    fn cross_field_errors() {
        assert!(err("").contains("no [[pool]] is defined"));
        let e = err("[[pool]]\nname = \"p\"\n");
        assert!(
            e.starts_with("/c.toml:1:1: pool \"p\" sets neither repository nor organization"),
            "{e}"
        );
        let e = err("[[pool]]\nname = \"p\"\nrepository = \"o/r\"\n[[pool]]\nname = \"p\"\norganization = \"o\"\n");
        assert!(
            e.starts_with("/c.toml:5:8: pool name \"p\" is used twice"),
            "{e}"
        );
        let e = err("[[pool]]\nname = \"p\"\nrepository = \"o/r\"\norganization = \"o\"\n");
        assert!(
            e.contains("sets more than one of repository, organization and enterprise"),
            "{e}"
        );
    }

    #[test]
    fn docker_mode() {
        let base = "[[pool]]\nname = \"p\"\nrepository = \"o/r\"\n";
        let c = parse(base).unwrap();
        assert_eq!(c.pools[0].docker, DockerMode::Isolated);
        assert_eq!(c.pools[0].engine_containers_conf, None);
        for (v, m) in [
            ("isolated", DockerMode::Isolated),
            ("host", DockerMode::Host),
            ("none", DockerMode::None),
        ] {
            let c = parse(&format!(
                "{base}docker = \"{v}\"\nengine_containers_conf = \"~/e.conf\"\n"
            ))
            .unwrap();
            assert_eq!(c.pools[0].docker, m);
            assert_eq!(
                c.pools[0].engine_containers_conf,
                Some(PathBuf::from("/home/u/e.conf"))
            );
        }
        let e = err(&format!("{base}docker = \"dind\"\n"));
        assert!(
            e.starts_with("/c.toml:4:10: docker = \"dind\" is not a mode; expected \"isolated\", \"host\" or \"none\"\n  fix: write docker = \"isolated\""),
            "{e}"
        );
        let e = err(&format!("{base}docker = true\n"));
        assert!(e.starts_with("/c.toml:4:10: invalid type"), "{e}");
    }

    #[test]
    fn docker_policy_and_runner_dir() {
        let base = "[[pool]]\nname = \"p\"\nrepository = \"o/r\"\n";
        let c = parse(base).unwrap();
        assert_eq!(c.pools[0].docker_policy, DockerPolicy::Contained);
        assert_eq!(c.pools[0].runner_dir, "/home/runner");
        let c = parse(&format!(
            "{base}docker_policy = \"open\"\nrunner_dir = \"/actions-runner\"\n"
        ))
        .unwrap();
        assert_eq!(c.pools[0].docker_policy, DockerPolicy::Open);
        assert_eq!(c.pools[0].runner_dir, "/actions-runner");
        assert_eq!(
            err(&format!("{base}docker_policy = \"lax\"\n")),
            "/c.toml:4:17: docker_policy = \"lax\" is not a policy\n  fix: write docker_policy = \"contained\" (jobs cannot reach the host through their engine) or \"open\" (trusted jobs only)"
        );
        assert_eq!(
            err(&format!("{base}runner_dir = \"home/runner\"\n")),
            "/c.toml:4:14: runner_dir \"home/runner\" is not an absolute path without spaces\n  fix: write the folder inside the image that holds the runner's run.sh, e.g. runner_dir = \"/home/runner\""
        );
    }

    #[test]
    fn github_app_and_enterprise() {
        let pool = "[[pool]]\nname = \"p\"\norganization = \"acme\"\n";
        let c = parse(&format!(
            "[github]\napp_id = 123\nprivate_key_file = \"~/app.pem\"\n{pool}"
        ))
        .unwrap();
        assert_eq!(
            c.github.app,
            Some(AppConfig {
                issuer: "123".into(),
                private_key_file: "/home/u/app.pem".into(),
                installation_id: None
            })
        );
        assert!(!c.github.token_file_set);
        let c = parse(&format!(
            "[github]\nclient_id = \"Iv23liABC\"\nprivate_key_file = \"/k.pem\"\ninstallation_id = 42\n{pool}"
        ))
        .unwrap();
        let app = c.github.app.unwrap();
        assert_eq!(
            (app.issuer.as_str(), app.installation_id),
            ("Iv23liABC", Some(42))
        );
        assert_eq!(
            err("[github]\napp_id = 1\n[[pool]]\nname = \"p\"\norganization = \"acme\"\n"),
            "/c.toml:2:10: a GitHub App needs its private key\n  fix: add private_key_file = \"/path/to/app.private-key.pem\" (the key downloaded from the App's settings, chmod 600)"
        );
        assert!(err(&format!("[github]\nprivate_key_file = \"/k\"\n{pool}"))
            .starts_with("/c.toml:2:20: private_key_file is set but no app_id or client_id"));
        assert!(err(&format!("[github]\ninstallation_id = 5\n{pool}"))
            .starts_with("/c.toml:2:19: installation_id is set but no GitHub App"));
        assert!(err(&format!(
            "[github]\napp_id = 1\nclient_id = \"Iv1\"\nprivate_key_file = \"/k\"\n{pool}"
        ))
        .starts_with("/c.toml:2:10: [github] sets both app_id and client_id"));
        // Enterprise pools: a token works, an App alone cannot manage them.
        let ent = "[[pool]]\nname = \"e\"\nenterprise = \"big-co\"\n";
        let c = parse(ent).unwrap();
        assert_eq!(c.pools[0].scope, Scope::Enterprise("big-co".into()));
        assert!(c.github.uses_token(&c.pools[0].scope));
        let e = err(&format!(
            "[github]\napp_id = 1\nprivate_key_file = \"/k\"\n{ent}"
        ));
        assert_eq!(e, "/c.toml:6:14: pool \"e\" is an enterprise pool, and a GitHub App cannot manage enterprise runners (GitHub has no App permission for them)\n  fix: also set [github] token_file to a file holding a classic personal access token with the manage_runners:enterprise scope (enterprise pools use it, the others the App), or register these runners in an organization");
        let c = parse(&format!(
            "[github]\napp_id = 1\nprivate_key_file = \"/k\"\ntoken_file = \"/t\"\n{ent}{pool}"
        ))
        .unwrap();
        assert!(c.github.uses_token(&c.pools[0].scope));
        assert!(!c.github.uses_token(&c.pools[1].scope));
        let e = err("[[pool]]\nname = \"p\"\norganization = \"a\"\nenterprise = \"b\"\n");
        assert!(e.starts_with("/c.toml:4:14: pool \"p\" sets more than one of repository, organization and enterprise"), "{e}");
        assert!(err("[[pool]]\nname = \"p\"\nenterprise = \"a b\"\n")
            .starts_with("/c.toml:3:14: enterprise \"a b\""));
    }

    #[test]
    fn runner_group_by_name_or_id() {
        let org = "[[pool]]\nname = \"p\"\norganization = \"acme\"\n";
        let c = parse(&format!("{org}runner_group = \"Linux builders\"\n")).unwrap();
        assert_eq!(c.pools[0].runner_group.as_deref(), Some("Linux builders"));
        let c = parse(&format!("{org}runner_group_id = 7\n")).unwrap();
        assert_eq!(
            (c.pools[0].runner_group.clone(), c.pools[0].runner_group_id),
            (None, 7)
        );
        assert_eq!(
            err(&format!("{org}runner_group = \"a\"\nrunner_group_id = 2\n")),
            "/c.toml:4:16: pool \"p\" sets both runner_group and runner_group_id\n  fix: keep one: runner_group = \"name\" is looked up, runner_group_id = N is used as is"
        );
        let e = err("[[pool]]\nname = \"p\"\nrepository = \"o/r\"\nrunner_group = \"x\"\n");
        assert!(e.starts_with("/c.toml:4:16: pool \"p\" registers runners in repository o/r, which has no runner groups"), "{e}");
        assert!(
            err(&format!("{org}runner_group = \" \"\n")).contains("runner_group must not be empty")
        );
    }

    #[test]
    fn registration_tokens_and_keys_are_refused_in_the_token_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("t");
        for (text, says) in [
            (
                "AABF3JGZDX3P5PMEXLND6TS6FCWO6\n",
                "holds a runner registration (or remove) token",
            ),
            ("ghs_abcdef\n", "holds a GitHub App installation token"),
            (
                "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----\n",
                "holds a private key",
            ),
        ] {
            std::fs::write(&f, text).unwrap();
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
            let e = read_token(&f).unwrap_err().to_string();
            assert!(
                e.starts_with(&format!("the GitHub token file {} {says}", f.display())),
                "{e}"
            );
            assert!(e.contains("\n  fix: "), "{e}");
            assert!(
                !e.contains("AABF3") && !e.contains("ghs_abc"),
                "not echoed: {e}"
            );
        }
        std::fs::write(&f, "not a key").unwrap();
        let e = read_private_key(&f).unwrap_err().to_string();
        assert!(e.contains("does not hold a PEM key"), "{e}");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o640)).unwrap();
        let e = read_private_key(&f).unwrap_err().to_string();
        assert!(
            e.contains("GitHub App private key file") && e.contains("chmod 600"),
            "{e}"
        );
    }

    #[test]
    fn line_col_counts_from_one() {
        assert_eq!(line_col("ab\ncd", 0), (1, 1));
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
    }

    #[test]
    fn token_file_rules() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("t");
        std::fs::write(&f, "ghp_abc\r\n").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_token(&f).unwrap(), "ghp_abc");
        std::fs::write(&f, "ghp_abc\n").unwrap();
        assert_eq!(read_token(&f).unwrap(), "ghp_abc");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = read_token(&f).unwrap_err().to_string();
        assert!(e.contains("mode 644") && e.contains("chmod 600"), "{e}");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(&f, "\n").unwrap();
        assert!(read_token(&f).unwrap_err().to_string().contains("is empty"));
        let e = read_token(&dir.path().join("missing"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot read"), "{e}");
    }

    #[test]
    fn token_file_edge_cases() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("t");
        let write = |text: &str, mode: u32| {
            std::fs::write(&f, text).unwrap();
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(mode)).unwrap();
        };
        // Group- or world-readable in any way: refused, with the chmod that fixes it.
        for mode in [0o640, 0o604, 0o660, 0o602, 0o610] {
            write("ghp_abc", mode);
            let e = read_token(&f).unwrap_err().to_string();
            assert!(
                e.contains(&format!("mode {mode:o}")) && e.contains("chmod 600"),
                "{e}"
            );
        }
        write("ghp_abc", 0o400);
        assert_eq!(read_token(&f).unwrap(), "ghp_abc");
        // Only one trailing newline (LF or CRLF) is forgiven; anything else inside is an error.
        for bad in [
            "ghp_a\nghp_b\n",
            "ghp a",
            "ghp_abc\r",
            "ghp_abc\n\n",
            " ghp_abc",
            "ghp_abc\t\n",
        ] {
            write(bad, 0o600);
            let e = read_token(&f).unwrap_err().to_string();
            assert!(e.contains("spaces or several lines"), "{bad:?}: {e}");
            assert!(!e.contains("ghp_"), "the token is not echoed: {e}");
        }
        for empty in ["", "\r\n", "  \n"] {
            write(empty, 0o600);
            let e = read_token(&f).unwrap_err().to_string();
            assert!(
                e.contains("is empty") || e.contains("spaces"),
                "{empty:?}: {e}"
            );
        }
        // A folder where the file should be.
        let e = read_token(dir.path()).unwrap_err().to_string();
        assert!(e.contains("GitHub token file"), "{e}");
    }

    #[test]
    fn demand_pools() {
        use crate::core::demand::Mode;
        let base = "[[pool]]\nname = \"p\"\nrepository = \"o/r\"\n";
        let c = parse(base).unwrap();
        assert_eq!(
            (c.pools[0].mode, c.pools[0].count, c.pools[0].max),
            (Mode::Fixed, 1, 1)
        );
        let c = parse(&format!(
            "{base}min_idle = 1\nmax = 4\nidle_timeout = \"30s\"\n"
        ))
        .unwrap();
        let p = &c.pools[0];
        assert_eq!((p.mode, p.min_idle, p.max), (Mode::Labels, 1, 4));
        assert_eq!(p.idle_timeout, Duration::from_secs(30));
        assert_eq!(p.scale_set, None);
        let c = parse(&format!(
            "{base}max = 4\nscale_set = true\ndisable_update = true\n"
        ))
        .unwrap();
        let p = &c.pools[0];
        assert_eq!((p.mode, p.min_idle, p.max), (Mode::ScaleSet, 0, 4));
        assert_eq!(p.scale_set.as_deref(), Some("p"));
        assert!(p.disable_update);
        assert_eq!(p.idle_timeout, crate::core::demand::DEFAULT_IDLE_TIMEOUT);
        let c = parse(&format!("{base}max = 2\nscale_set = \"big-box\"\n")).unwrap();
        assert_eq!(c.pools[0].scale_set.as_deref(), Some("big-box"));

        let e = err(&format!("{base}count = 2\nmax = 4\n"));
        assert!(
            e.starts_with("/c.toml:5:7: pool \"p\" sets both count and max"),
            "{e}"
        );
        let e = err(&format!("{base}min_idle = 5\nmax = 4\n"));
        assert!(
            e.starts_with("/c.toml:5:7: max = 4 must be at least 1 and at least min_idle (5)"),
            "{e}"
        );
        let e = err(&format!("{base}scale_set = true\n"));
        assert!(
            e.starts_with("/c.toml:1:1: pool \"p\" sets scale_set but no max"),
            "{e}"
        );
        assert!(e.contains("fix: add max = N"), "{e}");
        let e = err(&format!("{base}max = 2\nscale_set = 3\n"));
        assert!(
            e.starts_with("/c.toml:5:13: scale_set = 3 is neither"),
            "{e}"
        );
        let e = err(&format!("{base}max = 2\nscale_set = \"a b\"\n"));
        assert!(
            e.starts_with("/c.toml:5:13: scale_set \"a b\" contains ' '"),
            "{e}"
        );
        let e = err(&format!(
            "{base}max = 2\nscale_set = true\nlabels = [\"gpu\"]\n"
        ));
        assert!(
            e.starts_with("/c.toml:6:10: a scale set answers to one label"),
            "{e}"
        );
        let e = err("[[pool]]\nname = \"p\"\norganization = \"acme\"\nmax = 2\n");
        assert!(
            e.starts_with("/c.toml:3:16: pool \"p\" is sized by queued jobs"),
            "{e}"
        );
        assert!(parse(
            "[[pool]]\nname = \"p\"\norganization = \"acme\"\nmax = 2\nscale_set = true\n"
        )
        .is_ok());
        let c = parse(&format!("{base}max = 2\npoll_interval = \"3s\"\n")).unwrap();
        assert_eq!(c.pools[0].poll_interval, Duration::from_secs(3));
        let e = err(&format!("{base}poll_interval = \"3s\"\n"));
        assert!(
            e.starts_with("/c.toml:4:17: poll_interval applies to label pools"),
            "{e}"
        );
        let e = err(&format!("{base}max = 2\ndisable_update = true\n"));
        assert!(
            e.starts_with("/c.toml:5:18: disable_update applies to scale sets only"),
            "{e}"
        );
    }
}

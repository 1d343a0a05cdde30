//! The configuration file: its schema, defaults, and every check that can be made before
//! anything runs. Errors name the file, line and column, and say what is expected.
//!
//! This module reads files (the config and the token) but starts nothing.

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
/// The default pause before a replacement runner starts after one exits normally.
pub const DEFAULT_RESTART_DELAY: Duration = Duration::from_secs(1);
/// Every organization's and enterprise's "Default" runner group has id 1; a repository's
/// runners are in it too.
pub const DEFAULT_RUNNER_GROUP_ID: u64 = 1;
/// GitHub refuses more than 100 labels on a runner (docs/github-runner.md, JIT body).
pub const MAX_LABELS: usize = 100;

/// Where a problem in the config file sits.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}\n  fix: create it (see the README's configuration reference) or pass --config PATH")]
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
    pub fn parse(s: &str) -> Result<DockerMode, String> {
        match s {
            "isolated" => Ok(DockerMode::Isolated),
            "host" => Ok(DockerMode::Host),
            "none" => Ok(DockerMode::None),
            _ => Err(format!(
                "docker = {s:?} is not a mode; expected \"isolated\", \"host\" or \"none\""
            )),
        }
    }
}

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
}

#[derive(Debug, Clone, Serialize)]
pub struct PoolConfig {
    pub name: PoolName,
    pub scope: Scope,
    pub runner_name: RunnerPrefix,
    pub image: String,
    pub command: Vec<String>,
    /// The runner's root folder inside the image: its settings files from the JIT config go
    /// there (podman::ENTRYPOINT_SCRIPT).
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
#[derive(Debug, Clone)]
pub struct Env {
    pub home: PathBuf,
    pub uid: u32,
    pub xdg_state_home: Option<PathBuf>,
    pub xdg_data_home: Option<PathBuf>,
    pub xdg_runtime_dir: Option<PathBuf>,
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
        let manager = ManagerConfig {
            instance: raw
                .manager
                .instance
                .unwrap_or_else(|| PoolName::new("default").expect("valid")),
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
        };

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
                (Some(r), None, None) => Scope::repository(r.get_ref())
                    .map_err(|m| at(r.span(), m, "write repository = \"owner/repo\""))?,
                (None, Some(o), None) => Scope::organization(o.get_ref())
                    .map_err(|m| at(o.span(), m, "write organization = \"org-name\""))?,
                (None, None, Some(e)) => {
                    let scope = Scope::enterprise(e.get_ref())
                        .map_err(|m| at(e.span(), m, "write enterprise = \"enterprise-slug\""))?;
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
            let runner_name = match p.runner_name {
                Some(r) => r,
                None => RunnerPrefix::new(name.as_str())
                    .map_err(|m| at(p.name.span(), m, "set runner_name"))?,
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
                        m,
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
                        m,
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
                count: p.count.unwrap_or(1),
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
    };
    Config::parse(text, Path::new("/c.toml"), &env)
        .expect("a valid test config")
        .pools
        .remove(0)
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
        }
    }

    fn parse(s: &str) -> Result<Config, ConfigError> {
        Config::parse(s, Path::new("/c.toml"), &env())
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
}

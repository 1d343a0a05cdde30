//! `[[pool]]`: one pool of runners: its scope on GitHub, image, labels, limits, Docker mode
//! and image pulls. Its sizing keys are read by `scaling.rs`.

use super::github::GithubConfig;
use super::names::{Label, PoolName, RunnerPrefix, Scope};
use super::values::{self, Command, Memory, Secs};
use super::{expand_home, scaling, secs, ConfigError, ConfigText, Env};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;
use toml::Spanned;

/// GitHub's official runner image.
pub const DEFAULT_IMAGE: &str = "ghcr.io/actions/actions-runner:latest";
/// The image has no ENTRYPOINT or CMD; callers run this (docs/github-runner.md, the image).
pub const DEFAULT_COMMAND: &str = "/home/runner/run.sh";
/// The runner's root folder in that image: run.sh is there, and the runner reads its settings
/// files (`.runner`, `.credentials`) from it.
pub const DEFAULT_RUNNER_DIR: &str = "/home/runner";
/// Labels every self-hosted Linux x64 runner carries; GitHub adds them as read-only labels.
pub const DEFAULT_LABELS: [&str; 3] = ["self-hosted", "linux", "x64"];
/// `podman stop` must give the runner time: the listener waits up to 30 s when cancelling a
/// job (docs/github-runner.md, Signals), so at least 60 s.
pub const MIN_STOP_TIMEOUT_SECS: u64 = 60;
/// Enough processes for a real build (compilers, test runners), low enough to stop a fork bomb.
pub const DEFAULT_PIDS_LIMIT: u64 = 4096;
/// The default pause before a replacement starts after a runner failed (never after a job
/// that ran: the replacement of a finished runner starts at once).
pub const DEFAULT_RESTART_DELAY: Duration = Duration::from_secs(1);
/// The shortest `pull_interval`: a check is a registry request; more often only costs.
pub const MIN_PULL_INTERVAL: Duration = Duration::from_secs(10);
/// Every organization's and enterprise's "Default" runner group has id 1; a repository's
/// runners are in it too.
pub const DEFAULT_RUNNER_GROUP_ID: u64 = 1;
/// GitHub refuses more than 100 labels on a runner (docs/github-runner.md, JIT body).
pub const MAX_LABELS: usize = 100;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPool {
    pub(super) name: Spanned<PoolName>,
    pub(super) repository: Option<Spanned<String>>,
    pub(super) organization: Option<Spanned<String>>,
    pub(super) enterprise: Option<Spanned<String>>,
    pub(super) runner_name: Option<RunnerPrefix>,
    pub(super) image: Option<String>,
    pub(super) command: Option<Command>,
    pub(super) runner_dir: Option<Spanned<String>>,
    pub(super) labels: Option<Spanned<Vec<Label>>>,
    pub(super) count: Option<u32>,
    pub(super) cpus: Option<Spanned<f64>>,
    pub(super) memory: Option<Memory>,
    pub(super) pids_limit: Option<u64>,
    pub(super) work_dir: Option<String>,
    pub(super) restart_delay: Option<Secs>,
    pub(super) stop_timeout: Option<Spanned<Secs>>,
    pub(super) runner_group_id: Option<Spanned<u64>>,
    pub(super) runner_group: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) run_args: Vec<String>,
    pub(super) docker: Option<Spanned<String>>,
    pub(super) docker_policy: Option<Spanned<String>>,
    pub(super) engine_containers_conf: Option<String>,
    // Demand pools (docs/scaling.md).
    pub(super) min_idle: Option<u32>,
    pub(super) max: Option<Spanned<u32>>,
    pub(super) idle_timeout: Option<Secs>,
    pub(super) scale_set: Option<Spanned<toml::Value>>,
    pub(super) disable_update: Option<Spanned<bool>>,
    pub(super) poll_interval: Option<Spanned<Secs>>,
    pub(super) online_timeout: Option<Secs>,
    pub(super) pull: Option<Spanned<String>>,
    pub(super) pull_interval: Option<Secs>,
    pub(super) pull_source: Option<String>,
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
    /// What a job may ask of its isolated engine (default contained; proxy/policy/contained.rs).
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

/// Reads every `[[pool]]`: names and runner name prefixes are unique.
pub(super) fn parse_all(
    raw: Vec<Spanned<RawPool>>,
    github: &GithubConfig,
    t: &ConfigText,
    env: &Env,
) -> Result<Vec<PoolConfig>, ConfigError> {
    if raw.is_empty() {
        return Err(t.file(
            "no [[pool]] is defined".into(),
            "add a pool, e.g.\n  [[pool]]\n  name = \"default\"\n  repository = \"owner/repo\"\n  count = 2".into(),
        ));
    }
    let mut pools = Vec::new();
    let mut seen_names = BTreeSet::new();
    let mut seen_prefixes = BTreeSet::new();
    for sp in raw {
        let span = sp.span();
        let p = sp.into_inner();
        let name = p.name.get_ref().clone();
        if !seen_names.insert(name.clone()) {
            return Err(t.at(
                p.name.span(),
                format!("pool name \"{name}\" is used twice"),
                "give every [[pool]] its own name",
            ));
        }
        pools.push(parse(p, name, span, &mut seen_prefixes, github, t, env)?);
    }
    Ok(pools)
}

/// Reads one pool; `seen_prefixes` holds the runner name prefixes of the pools before it.
fn parse(
    p: RawPool,
    name: PoolName,
    span: Range<usize>,
    seen_prefixes: &mut BTreeSet<RunnerPrefix>,
    github: &GithubConfig,
    t: &ConfigText,
    env: &Env,
) -> Result<PoolConfig, ConfigError> {
    let scope = scope(&p, &name, span.clone(), github, t)?;
    let runner_group = runner_group(&p, &name, &scope, t)?;
    let sizing = scaling::sizing(&p, &name, span.clone(), t)?;
    let runner_name = match p.runner_name.clone() {
        Some(r) => r,
        None => RunnerPrefix::new(name.as_str())
            .map_err(|m| t.at(p.name.span(), m.to_string(), "set runner_name"))?,
    };
    if !seen_prefixes.insert(runner_name.clone()) {
        return Err(t.at(
            span,
            format!("runner_name \"{runner_name}\" is used by two pools"),
            "give each pool its own runner_name prefix, so podrunner can tell their runners apart",
        ));
    }
    let labels = labels(&p, &name, span.clone(), t)?;
    if let Some(c) = &p.cpus {
        values::check_cpus(*c.get_ref()).map_err(|m| {
            t.at(
                c.span(),
                m.to_string(),
                "set cpus to a positive number, or remove it for no limit",
            )
        })?;
    }
    let stop_timeout = stop_timeout(p.stop_timeout.as_ref(), t)?;
    let docker = docker(p.docker.as_ref(), t)?;
    let docker_policy = docker_policy(p.docker_policy.as_ref(), t)?;
    let runner_dir = runner_dir(p.runner_dir.clone(), t)?;
    let pull = pull(p.pull.as_ref(), t)?;
    if p.pull_interval
        .as_ref()
        .is_some_and(|i| i.0 < MIN_PULL_INTERVAL)
    {
        return Err(t.at(
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
    Ok(PoolConfig {
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
        engine_containers_conf: p.engine_containers_conf.map(|c| expand_home(&c, &env.home)),
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
    })
}

/// Exactly one of `repository`, `organization` and `enterprise`. An App alone cannot manage
/// enterprise runners.
fn scope(
    p: &RawPool,
    name: &PoolName,
    span: Range<usize>,
    github: &GithubConfig,
    t: &ConfigText,
) -> Result<Scope, ConfigError> {
    match (&p.repository, &p.organization, &p.enterprise) {
        (Some(r), None, None) => Scope::repository(r.get_ref())
            .map_err(|m| t.at(r.span(), m.to_string(), "write repository = \"owner/repo\"")),
        (None, Some(o), None) => Scope::organization(o.get_ref())
            .map_err(|m| t.at(o.span(), m.to_string(), "write organization = \"org-name\"")),
        (None, None, Some(e)) => {
            let scope = Scope::enterprise(e.get_ref()).map_err(|m| {
                t.at(
                    e.span(),
                    m.to_string(),
                    "write enterprise = \"enterprise-slug\"",
                )
            })?;
            if github.app.is_some() && !github.token_file_set {
                return Err(t.at(
                    e.span(),
                    format!("pool \"{name}\" is an enterprise pool, and a GitHub App cannot manage enterprise runners (GitHub has no App permission for them)"),
                    "also set [github] token_file to a file holding a classic personal access token with the manage_runners:enterprise scope (enterprise pools use it, the others the App), or register these runners in an organization",
                ));
            }
            Ok(scope)
        }
        (None, None, None) => Err(t.at(
            span,
            format!("pool \"{name}\" sets neither repository nor organization"),
            "add repository = \"owner/repo\", organization = \"org\" or enterprise = \"slug\"",
        )),
        (r, o, e) => {
            let second = [r, o, e].into_iter().flatten().nth(1).expect("two are set");
            Err(t.at(
                second.span(),
                format!(
                    "pool \"{name}\" sets more than one of repository, organization and enterprise"
                ),
                "keep exactly one of them",
            ))
        }
    }
}

/// `runner_group` (a name looked up later) or `runner_group_id`, not both.
fn runner_group(
    p: &RawPool,
    name: &PoolName,
    scope: &Scope,
    t: &ConfigText,
) -> Result<Option<String>, ConfigError> {
    match (&p.runner_group, &p.runner_group_id) {
        (Some(g), Some(_)) => Err(t.at(
            g.span(),
            format!("pool \"{name}\" sets both runner_group and runner_group_id"),
            "keep one: runner_group = \"name\" is looked up, runner_group_id = N is used as is",
        )),
        (Some(g), None) if !scope.has_runner_groups() => Err(t.at(
            g.span(),
            format!("pool \"{name}\" registers runners in repository {scope}, which has no runner groups"),
            "remove runner_group: runner groups belong to organizations and enterprises (use organization = \"...\" to choose a group)",
        )),
        (Some(g), None) if g.get_ref().trim().is_empty() => Err(t.at(
            g.span(),
            "runner_group must not be empty".into(),
            "write the group's name as shown in the organization's Actions settings > Runner groups",
        )),
        (Some(g), None) => Ok(Some(g.get_ref().clone())),
        (None, _) => Ok(None),
    }
}

/// The default labels, then the pool's own (case-insensitively new ones only).
fn labels(
    p: &RawPool,
    name: &PoolName,
    span: Range<usize>,
    t: &ConfigText,
) -> Result<Vec<String>, ConfigError> {
    let mut labels: Vec<String> = DEFAULT_LABELS.iter().map(|s| s.to_string()).collect();
    let labels_span = p.labels.as_ref().map(|l| l.span()).unwrap_or(span);
    for l in p.labels.iter().flat_map(|l| l.get_ref()) {
        if !labels.iter().any(|x| x.eq_ignore_ascii_case(l.as_str())) {
            labels.push(l.as_str().to_string());
        }
    }
    if labels.len() > MAX_LABELS {
        return Err(t.at(
            labels_span,
            format!(
                "pool \"{name}\" has {} labels; GitHub allows at most {MAX_LABELS}",
                labels.len()
            ),
            "remove some labels",
        ));
    }
    Ok(labels)
}

fn stop_timeout(s: Option<&Spanned<Secs>>, t: &ConfigText) -> Result<Duration, ConfigError> {
    match s {
        None => Ok(Duration::from_secs(MIN_STOP_TIMEOUT_SECS)),
        Some(s) if s.get_ref().0.as_secs() < MIN_STOP_TIMEOUT_SECS => Err(t.at(s.span(), format!("stop_timeout must be at least {MIN_STOP_TIMEOUT_SECS}s: the runner needs up to 30 s to cancel a job"), "set stop_timeout = \"60s\" or more")),
        Some(s) => Ok(s.get_ref().0),
    }
}

fn docker(d: Option<&Spanned<String>>, t: &ConfigText) -> Result<DockerMode, ConfigError> {
    let Some(d) = d else {
        return Ok(DockerMode::Isolated);
    };
    DockerMode::parse(d.get_ref()).map_err(|m| {
        t.at(
            d.span(),
            m.to_string(),
            "write docker = \"isolated\" (a private engine per runner), \"host\" (the user's Podman socket) or \"none\"",
        )
    })
}

fn docker_policy(d: Option<&Spanned<String>>, t: &ConfigText) -> Result<DockerPolicy, ConfigError> {
    let Some(d) = d else {
        return Ok(DockerPolicy::Contained);
    };
    match d.get_ref().as_str() {
        "contained" => Ok(DockerPolicy::Contained),
        "open" => Ok(DockerPolicy::Open),
        other => Err(t.at(
            d.span(),
            format!("docker_policy = {other:?} is not a policy"),
            "write docker_policy = \"contained\" (jobs cannot reach the host through their engine) or \"open\" (trusted jobs only)",
        )),
    }
}

fn runner_dir(d: Option<Spanned<String>>, t: &ConfigText) -> Result<String, ConfigError> {
    match d {
        None => Ok(DEFAULT_RUNNER_DIR.to_string()),
        Some(d) if d.get_ref().starts_with('/') && !d.get_ref().contains(char::is_whitespace) => {
            Ok(d.into_inner())
        }
        Some(d) => Err(t.at(
            d.span(),
            format!("runner_dir {:?} is not an absolute path without spaces", d.get_ref()),
            "write the folder inside the image that holds the runner's run.sh, e.g. runner_dir = \"/home/runner\"",
        )),
    }
}

fn pull(
    v: Option<&Spanned<String>>,
    t: &ConfigText,
) -> Result<crate::core::PullPolicy, ConfigError> {
    let Some(v) = v else {
        return Ok(crate::core::PullPolicy::Newer);
    };
    crate::core::PullPolicy::parse(v.get_ref()).ok_or_else(|| {
        t.at(
            v.span(),
            format!("pull {:?} is not a pull policy", v.get_ref()),
            "write pull = \"newer\" (missing at start, newer every pull_interval), \"missing\" or \"never\"",
        )
    })
}

//! `[manager]`: the instance, its folders, the host id, the webhook and metrics listeners,
//! and the history's retention.

use super::env::HOST_ID_ENV;
use super::names::PoolName;
use super::values::{Memory, Secs};
use super::{expand_home, listen, secs, ConfigError, ConfigText, Env};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;
use toml::Spanned;

/// How long a drain waits for busy runners to finish their job before stopping them.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(6 * 3600);
/// History rows older than this are deleted (docs/history.md): a month answers "what ran
/// here last week" and keeps the file small.
pub const DEFAULT_HISTORY_MAX_AGE: Duration = Duration::from_secs(30 * 24 * 3600);
/// The history file is kept below this size, oldest rows first (about 150,000 runners).
pub const DEFAULT_HISTORY_MAX_BYTES: u64 = 64 * 1024 * 1024;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawManager {
    pub(super) instance: Option<PoolName>,
    pub(super) state_dir: Option<String>,
    pub(super) runtime_dir: Option<String>,
    pub(super) drain_timeout: Option<Secs>,
    pub(super) log_file: Option<bool>,
    pub(super) webhook_listen: Option<Spanned<String>>,
    pub(super) webhook_secret_file: Option<String>,
    pub(super) listen: Option<listen::Listen>,
    pub(super) history: Option<bool>,
    pub(super) history_max_age: Option<Secs>,
    pub(super) history_max_size: Option<Memory>,
    pub(super) host_id: Option<Spanned<String>>,
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

/// Reads `[manager]`.
pub(super) fn parse(
    raw: RawManager,
    t: &ConfigText,
    env: &Env,
) -> Result<ManagerConfig, ConfigError> {
    let instance = raw
        .instance
        .unwrap_or_else(|| PoolName::new("default").expect("valid"));
    let host_id = host_id(raw.host_id, &instance, t, env)?;
    let webhook_listen = webhook_listen(raw.webhook_listen.as_ref(), t)?;
    let manager = ManagerConfig {
        instance,
        host_id,
        runtime_dir: raw
            .runtime_dir
            .map(|p| expand_home(&p, &env.home))
            .unwrap_or_else(|| env.default_runtime_dir()),
        state_dir: raw
            .state_dir
            .map(|p| expand_home(&p, &env.home))
            .unwrap_or_else(|| env.default_state_dir()),
        drain_timeout: raw
            .drain_timeout
            .map(|s| s.0)
            .unwrap_or(DEFAULT_DRAIN_TIMEOUT),
        log_file: raw.log_file.unwrap_or(true),
        webhook_listen,
        webhook_secret_file: raw
            .webhook_secret_file
            .as_deref()
            .map(|p| expand_home(p, &env.home)),
        listen: raw.listen,
        history: raw.history.unwrap_or(true),
        history_max_age: raw
            .history_max_age
            .map(|s| s.0)
            .unwrap_or(DEFAULT_HISTORY_MAX_AGE),
        history_max_bytes: raw
            .history_max_size
            .map(|m| m.0)
            .unwrap_or(DEFAULT_HISTORY_MAX_BYTES),
    };
    if let (Some(l), None) = (&raw.webhook_listen, &manager.webhook_secret_file) {
        return Err(t.at(
            l.span(),
            "webhook_listen needs webhook_secret_file: unsigned webhooks are refused".into(),
            "add webhook_secret_file = \"~/.github-webhook-secret\" holding the secret set on GitHub",
        ));
    }
    Ok(manager)
}

/// `host_id`, else `PODRUNNER_HOST_ID`, else one derived from the machine id and instance.
fn host_id(
    written: Option<Spanned<String>>,
    instance: &PoolName,
    t: &ConfigText,
    env: &Env,
) -> Result<String, ConfigError> {
    use crate::core::naming::{derive_host_id, valid_host_id, MAX_HOST_ID_LEN};
    match (written, &env.host_id) {
        (Some(h), _) => {
            if !valid_host_id(h.get_ref()) {
                return Err(t.at(
                    h.span(),
                    format!("host_id {:?} is not 1 to {MAX_HOST_ID_LEN} lowercase letters or digits", h.get_ref()),
                    "write e.g. host_id = \"web1\", or remove it to derive one from /etc/machine-id",
                ));
            }
            Ok(h.into_inner())
        }
        (None, Some(h)) => {
            if !valid_host_id(h) {
                return Err(t.file(
                    format!("{HOST_ID_ENV}={h:?} is not 1 to {MAX_HOST_ID_LEN} lowercase letters or digits"),
                    format!("unset {HOST_ID_ENV} or give it e.g. \"web1\""),
                ));
            }
            Ok(h.clone())
        }
        // Without a machine id (containers, chroots) the instance alone: set host_id.
        (None, None) => Ok(derive_host_id(
            env.machine_id.as_deref().unwrap_or(""),
            instance.as_str(),
        )),
    }
}

/// `webhook_listen`: an address and port.
fn webhook_listen(
    l: Option<&Spanned<String>>,
    t: &ConfigText,
) -> Result<Option<std::net::SocketAddr>, ConfigError> {
    let Some(l) = l else { return Ok(None) };
    l.get_ref().parse().map(Some).map_err(|_| {
        t.at(
            l.span(),
            format!("webhook_listen {:?} is not an address and port", l.get_ref()),
            "write webhook_listen = \"127.0.0.1:8088\" (put a TLS proxy in front for GitHub to reach it)",
        )
    })
}

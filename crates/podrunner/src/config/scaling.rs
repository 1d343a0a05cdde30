//! A pool's sizing keys (docs/scaling.md): `count` for a fixed pool, or `max` (with
//! `min_idle`, `idle_timeout`, `scale_set`, `disable_update`, `poll_interval`) for a pool sized
//! by demand, checked together.

use super::names::{self, PoolName};
use super::pool::RawPool;
use super::{ConfigError, ConfigText};
use crate::core::demand::{Mode, DEFAULT_IDLE_TIMEOUT, DEFAULT_POLL_INTERVAL};
use std::ops::Range;
use std::time::Duration;
use toml::Spanned;

/// A pool's sizing keys, checked together.
pub(super) struct Sizing {
    pub(super) mode: crate::core::demand::Mode,
    pub(super) min_idle: u32,
    pub(super) max: Option<u32>,
    pub(super) idle_timeout: Duration,
    pub(super) scale_set: Option<String>,
    pub(super) disable_update: bool,
    pub(super) poll_interval: Duration,
}

/// Reads `count`, `min_idle`, `max`, `idle_timeout`, `scale_set` and `disable_update`
/// (docs/scaling.md): `count` makes a fixed pool; `max` a demand pool, fed by a scale set when
/// `scale_set` is given and by queued jobs matching its labels otherwise.
pub(super) fn sizing(
    p: &RawPool,
    name: &PoolName,
    span: Range<usize>,
    t: &ConfigText,
) -> Result<Sizing, ConfigError> {
    let poll_interval = poll_interval(p, t)?;
    let scale_set = scale_set(p, name, t)?;
    match &p.max {
        None => fixed(p, name, span, scale_set.is_some(), poll_interval, t),
        Some(max) => demand(p, name, max, scale_set, poll_interval, t),
    }
}

/// `poll_interval`: at least a second.
fn poll_interval(p: &RawPool, t: &ConfigText) -> Result<Duration, ConfigError> {
    match &p.poll_interval {
        None => Ok(DEFAULT_POLL_INTERVAL),
        Some(s) if s.get_ref().0 < Duration::from_secs(1) => Err(t.at(
            s.span(),
            "poll_interval must be at least 1s".into(),
            "set poll_interval = \"10s\" or more (a webhook makes polls come sooner)",
        )),
        Some(s) => Ok(s.get_ref().0),
    }
}

/// `scale_set`: `true` names the set like the pool, a string names it, `false` is none.
fn scale_set(p: &RawPool, name: &PoolName, t: &ConfigText) -> Result<Option<String>, ConfigError> {
    let Some(v) = &p.scale_set else {
        return Ok(None);
    };
    let fix = "write scale_set = true (named like the pool) or scale_set = \"a-name\"";
    match v.get_ref() {
        toml::Value::Boolean(false) => Ok(None),
        toml::Value::Boolean(true) => Ok(Some(name.to_string())),
        toml::Value::String(s) => {
            names::check_name("scale_set", s, names::MAX_PREFIX_LEN)
                .map_err(|m| t.at(v.span(), m.to_string(), fix))?;
            Ok(Some(s.clone()))
        }
        other => Err(t.at(
            v.span(),
            format!("scale_set = {other} is neither true/false nor a scale set name"),
            fix,
        )),
    }
}

/// A pool without `max`: fixed at `count`, so no key of a demand pool may be set.
fn fixed(
    p: &RawPool,
    name: &PoolName,
    span: Range<usize>,
    has_scale_set: bool,
    poll_interval: Duration,
    t: &ConfigText,
) -> Result<Sizing, ConfigError> {
    let demand_key = if has_scale_set {
        Some("scale_set")
    } else if p.min_idle.is_some() {
        Some("min_idle")
    } else if p.idle_timeout.is_some() {
        Some("idle_timeout")
    } else {
        None
    };
    if let Some(key) = demand_key {
        return Err(t.at(
            span,
            format!("pool \"{name}\" sets {key} but no max: a demand pool needs a cap"),
            "add max = N (runners at most, busy or not), or use count = N for a fixed pool",
        ));
    }
    if let Some(d) = &p.disable_update {
        return Err(disable_update_without_scale_set(d, t));
    }
    if let Some(s) = &p.poll_interval {
        return Err(t.at(
            s.span(),
            "poll_interval applies to label pools sized by demand only".into(),
            "add max = N (and no scale_set), or remove poll_interval",
        ));
    }
    Ok(Sizing {
        mode: Mode::Fixed,
        min_idle: 0,
        max: None,
        idle_timeout: DEFAULT_IDLE_TIMEOUT,
        scale_set: None,
        disable_update: false,
        poll_interval,
    })
}

/// A pool with `max`: sized by demand, from its scale set or from queued jobs.
fn demand(
    p: &RawPool,
    name: &PoolName,
    max: &Spanned<u32>,
    scale_set: Option<String>,
    poll_interval: Duration,
    t: &ConfigText,
) -> Result<Sizing, ConfigError> {
    if p.count.is_some() {
        return Err(t.at(
            max.span(),
            format!("pool \"{name}\" sets both count and max"),
            "keep count = N for a fixed pool, or min_idle and max for a pool sized by demand",
        ));
    }
    let min_idle = p.min_idle.unwrap_or(0);
    if *max.get_ref() == 0 || min_idle > *max.get_ref() {
        return Err(t.at(
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
            return Err(t.at(
                l.span(),
                "a scale set answers to one label, its name: labels do not apply".into(),
                "remove labels; workflows use runs-on: <the scale set's name>",
            ));
        }
    } else if let Some(d) = &p.disable_update {
        return Err(disable_update_without_scale_set(d, t));
    } else if let Some(o) = &p.organization {
        return Err(t.at(
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

fn disable_update_without_scale_set(d: &Spanned<bool>, t: &ConfigText) -> ConfigError {
    t.at(
        d.span(),
        "disable_update applies to scale sets only".into(),
        "add scale_set = true, or remove disable_update",
    )
}

//! When a pool's image is pulled (docs/images.md): missing at start, newer on an interval, and
//! at once when a runner shows the image is stale (it updated itself, or GitHub refused its
//! version). Pure: the manager runs the pull and reports back.

use serde::Serialize;
use std::time::{Duration, Instant};

/// Default of `pull_interval`: GitHub releases a runner about every two weeks and refuses old
/// versions only months later; a few checks a day cost a manifest request each.
/// Why a pull failed, as status shows it (the adapter renders its own error into it).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct PullFailed(pub String);

pub const DEFAULT_PULL_INTERVAL: Duration = Duration::from_secs(6 * 3600);
/// Pulls asked for by runners (self-update, deprecated version) are at most this close: a
/// whole pool of runners exiting at once asks for one pull, not one each.
pub const PULL_MIN_GAP: Duration = Duration::from_secs(60);
/// After a failed pull the next scheduled attempt comes after this, not a whole interval.
pub const PULL_RETRY: Duration = Duration::from_secs(300);

/// `pull` in a pool's config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum PullPolicy {
    /// podrunner never pulls (podman run still pulls a missing image).
    #[default]
    Never,
    /// Pull when missing at start, and when a runner shows the image is stale.
    Missing,
    /// Also look for a newer image every `pull_interval`.
    Newer,
}

impl PullPolicy {
    pub fn parse(s: &str) -> Option<PullPolicy> {
        match s {
            "never" => Some(PullPolicy::Never),
            "missing" => Some(PullPolicy::Missing),
            "newer" => Some(PullPolicy::Newer),
            _ => None,
        }
    }
}

/// Why a pull was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PullReason {
    /// The manager started: pull only if the image is not there.
    Start,
    /// `pull_interval` passed.
    Interval,
    /// A runner updated itself before its job or was refused as deprecated.
    Stale,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ImageState {
    #[serde(skip)]
    pub in_flight: bool,
    /// The start-up check ran (it pulls only a missing image, so it sets no gap).
    #[serde(skip)]
    pub checked: bool,
    /// The last pull that was not a start-up check.
    #[serde(skip)]
    pub last_attempt: Option<Instant>,
    #[serde(skip)]
    pub next_check: Option<Instant>,
    /// A runner said the image is stale: pull as soon as [`PULL_MIN_GAP`] allows.
    #[serde(skip)]
    pub stale: bool,
    pub pulls: u32,
    /// Pulls that brought a new image.
    pub updates: u32,
    pub last_error: Option<String>,
}

impl ImageState {
    /// Whether to pull now, and why.
    pub fn due(&self, policy: PullPolicy, now: Instant) -> Option<PullReason> {
        if self.in_flight || policy == PullPolicy::Never {
            return None;
        }
        if !self.checked {
            return Some(PullReason::Start);
        }
        let gap_ok = self
            .last_attempt
            .is_none_or(|t| now.duration_since(t) >= PULL_MIN_GAP);
        if self.stale && gap_ok {
            return Some(PullReason::Stale);
        }
        if policy == PullPolicy::Newer && self.next_check.is_some_and(|t| now >= t) {
            return Some(PullReason::Interval);
        }
        None
    }

    pub fn begin(&mut self, reason: PullReason, now: Instant) {
        self.in_flight = true;
        self.checked = true;
        if reason != PullReason::Start {
            self.last_attempt = Some(now);
        }
        if reason == PullReason::Stale {
            self.stale = false;
        }
    }

    /// The pull finished: `Ok(true)` brought a new image.
    pub fn done(&mut self, result: Result<bool, PullFailed>, interval: Duration, now: Instant) {
        self.in_flight = false;
        self.pulls += 1;
        match result {
            Ok(changed) => {
                self.updates += u32::from(changed);
                self.last_error = None;
                self.next_check = Some(now + interval);
            }
            Err(e) => {
                self.last_error = Some(e.0);
                self.next_check = Some(now + PULL_RETRY.min(interval));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_then_interval_then_stale_with_a_gap() {
        let t0 = Instant::now();
        let h = Duration::from_secs(3600);
        let mut i = ImageState::default();
        assert_eq!(i.due(PullPolicy::Never, t0), None);
        assert_eq!(i.due(PullPolicy::Missing, t0), Some(PullReason::Start));
        i.begin(PullReason::Start, t0);
        assert_eq!(i.due(PullPolicy::Newer, t0), None, "one pull at a time");
        i.done(Ok(false), h, t0);
        assert_eq!(i.due(PullPolicy::Newer, t0 + h / 2), None);
        assert_eq!(
            i.due(PullPolicy::Missing, t0 + h),
            None,
            "no interval for missing"
        );
        assert_eq!(i.due(PullPolicy::Newer, t0 + h), Some(PullReason::Interval));
        // A stale image right after the start-up check pulls at once.
        i.stale = true;
        assert_eq!(i.due(PullPolicy::Missing, t0), Some(PullReason::Stale));
        i.begin(PullReason::Stale, t0);
        assert!(!i.stale);
        i.done(Ok(true), h, t0);
        assert_eq!((i.pulls, i.updates), (2, 1));
        // Another one 10 s later waits for the gap.
        i.stale = true;
        assert_eq!(
            i.due(PullPolicy::Missing, t0 + Duration::from_secs(10)),
            None
        );
        assert_eq!(
            i.due(PullPolicy::Missing, t0 + PULL_MIN_GAP),
            Some(PullReason::Stale)
        );
        i.stale = false;
        // A failed pull retries after PULL_RETRY, not a whole interval.
        let t1 = t0 + 2 * h;
        i.begin(PullReason::Interval, t1);
        i.done(Err(PullFailed("no registry".into())), h, t1);
        assert_eq!(i.last_error.as_deref(), Some("no registry"));
        assert_eq!(i.next_check, Some(t1 + PULL_RETRY));
        assert_eq!(PullPolicy::parse("newer"), Some(PullPolicy::Newer));
        assert_eq!(PullPolicy::parse("always"), None);
    }
}

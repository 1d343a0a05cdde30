//! Fault injection and the rate-limit budget: the rules tests add (`/_fake/faults`), what
//! they decide for one request, and the primary budget every request spends.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::State;

/// Primary rate limit of a PAT: 5,000 requests per hour (docs/github-runner.md).
pub const RATE_LIMIT: u64 = 5000;
/// Length of the primary rate-limit window, in seconds (one hour).
pub const RATE_WINDOW_SECS: u64 = 3600;
/// How far ahead a 403/429 fault without `retry_after` puts `x-ratelimit-reset`: short, so a
/// client's "wait until reset" path is tested without slowing the suite down.
pub const FAULT_RESET_IN_SECS: u64 = 2;

/// A fault-injection rule (`POST /_fake/faults`). Applies to GitHub API paths only.
///
/// `status: 0` only delays the request by `delay_ms`; any other status answers with that
/// status (after `delay_ms`) instead of the real handler. A rule matches a request when
/// `method` (case-insensitive, if set) and `path_contains` (substring of the path, if set)
/// match, and is used up after `times` matching requests.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultRule {
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub path_contains: Option<String>,
    pub status: u16,
    #[serde(default = "one")]
    pub times: u32,
    #[serde(default)]
    pub retry_after: Option<u64>,
    #[serde(default)]
    pub delay_ms: u64,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Overrides the error body's `message`.
    #[serde(default)]
    pub message: Option<String>,
}

fn one() -> u32 {
    1
}

impl FaultRule {
    /// A rule answering `status` once, for any API request.
    pub fn new(status: u16) -> Self {
        FaultRule {
            method: None,
            path_contains: None,
            status,
            times: 1,
            retry_after: None,
            delay_ms: 0,
            headers: BTreeMap::new(),
            message: None,
        }
    }
    /// A rule that only delays matching requests by `delay_ms` (a slow answer).
    pub fn delay(delay_ms: u64) -> Self {
        FaultRule {
            delay_ms,
            ..FaultRule::new(0)
        }
    }
    pub fn method(mut self, method: &str) -> Self {
        self.method = Some(method.to_string());
        self
    }
    pub fn path_contains(mut self, needle: &str) -> Self {
        self.path_contains = Some(needle.to_string());
        self
    }
    pub fn times(mut self, times: u32) -> Self {
        self.times = times;
        self
    }
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }
    pub fn delay_ms(mut self, ms: u64) -> Self {
        self.delay_ms = ms;
        self
    }
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.insert(name.to_string(), value.to_string());
        self
    }

    /// Whether this rule (still) applies to a request.
    pub fn matches(&self, method: &str, path: &str) -> bool {
        self.times > 0
            && self
                .method
                .as_deref()
                .map(|m| m.eq_ignore_ascii_case(method))
                .unwrap_or(true)
            && self
                .path_contains
                .as_deref()
                .map(|p| path.contains(p))
                .unwrap_or(true)
    }
}

/// What the fault rules decided for one request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FaultDecision {
    /// Sum of the `delay_ms` of every rule used.
    pub delay_ms: u64,
    /// The first used rule with a non-zero status: answer with it.
    pub answer: Option<FaultRule>,
}

/// The primary rate-limit budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct RateLimit {
    pub limit: u64,
    pub remaining: u64,
    /// Epoch seconds when the budget refills.
    pub reset: u64,
}

impl RateLimit {
    pub fn new(now_secs: u64) -> Self {
        RateLimit {
            limit: RATE_LIMIT,
            remaining: RATE_LIMIT,
            reset: now_secs + RATE_WINDOW_SECS,
        }
    }
    pub fn used(&self) -> u64 {
        self.limit.saturating_sub(self.remaining)
    }
    /// Refills the budget once the reset time has passed.
    pub fn refresh(&mut self, now_secs: u64) {
        if now_secs >= self.reset {
            self.remaining = self.limit;
            self.reset = now_secs + RATE_WINDOW_SECS;
        }
    }
    /// The `rate-limit` schema object.
    pub fn json(&self) -> Value {
        json!({"limit": self.limit, "remaining": self.remaining, "reset": self.reset,
               "used": self.used(), "resource": "core"})
    }
}

impl State {
    /// Sets the primary budget: `remaining` calls until `reset_in_secs` from now (default: a
    /// full window), after which it refills to the limit.
    pub fn set_rate_limit(&mut self, remaining: u64, reset_in_secs: Option<u64>) {
        self.rate.remaining = remaining;
        self.rate.reset = self.clock.now_secs() + reset_in_secs.unwrap_or(RATE_WINDOW_SECS);
    }

    /// Counts one API request under `route`.
    pub fn count_call(&mut self, route: &str) {
        self.api_calls += 1;
        *self.by_route.entry(route.to_string()).or_insert(0) += 1;
    }

    /// Consumes the fault rules matching a request, in order: `status: 0` rules add their
    /// delay and the walk goes on; the first rule with a status ends it and becomes the answer.
    pub fn take_faults(&mut self, method: &str, path: &str) -> FaultDecision {
        let mut decision = FaultDecision::default();
        for rule in self.faults.iter_mut() {
            if !rule.matches(method, path) {
                continue;
            }
            rule.times -= 1;
            decision.delay_ms += rule.delay_ms;
            if rule.status != 0 {
                decision.answer = Some(rule.clone());
                break;
            }
        }
        self.faults.retain(|r| r.times > 0);
        decision
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::test_state;

    #[test]
    fn faults_apply_in_order_and_run_out() {
        let mut st = test_state();
        st.faults.push(FaultRule::delay(5).path_contains("runners"));
        st.faults.push(FaultRule::new(500).times(2).method("post"));
        st.faults.push(FaultRule::new(502));
        let d = st.take_faults("GET", "/repos/o/r/actions/runners");
        assert_eq!(d.delay_ms, 5);
        assert_eq!(d.answer.map(|r| r.status), Some(502));
        let d = st.take_faults("POST", "/rate_limit");
        assert_eq!((d.delay_ms, d.answer.map(|r| r.status)), (0, Some(500)));
        let d = st.take_faults("POST", "/x");
        assert_eq!((d.delay_ms, d.answer.map(|r| r.status)), (0, Some(500)));
        assert_eq!(st.take_faults("POST", "/x"), FaultDecision::default());
        assert!(st.faults.is_empty());
    }
}

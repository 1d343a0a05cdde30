//! Counts of GitHub API requests by endpoint and answer, for `podrunner_github_api_calls_total`
//! (docs/metrics.md). Every attempt counts, retries included, as in [`super::Client::calls`].

use std::collections::BTreeMap;
use std::sync::Mutex;

/// The answer column for a request that got no HTTP answer (connection, timeout).
pub const TRANSPORT_ERROR: &str = "error";

#[derive(Debug, Default)]
pub struct CallCounts(Mutex<BTreeMap<(&'static str, String), u64>>);

impl CallCounts {
    pub fn count(&self, method: &str, path: &str, status: Option<u16>) {
        let status = status.map_or(TRANSPORT_ERROR.to_string(), |s| s.to_string());
        let mut m = self.0.lock().expect("call counts lock");
        *m.entry((endpoint(method, path), status)).or_default() += 1;
    }

    /// `(endpoint, status) -> requests` so far.
    pub fn snapshot(&self) -> BTreeMap<(&'static str, String), u64> {
        self.0.lock().expect("call counts lock").clone()
    }
}

/// A short, bounded name for the endpoint of `method path` (the path without the API base):
/// ids and owners never become label values.
pub fn endpoint(method: &str, path: &str) -> &'static str {
    let path = path.split('?').next().unwrap_or("");
    let last = path.rsplit('/').next().unwrap_or("");
    let runners_at = path.contains("/actions/runners");
    match (method, last) {
        ("POST", "generate-jitconfig") => "generate-jitconfig",
        ("POST", "registration-token") => "registration-token",
        ("POST", "remove-token") => "remove-token",
        ("GET", "runners") if runners_at => "list-runners",
        ("GET", id) if runners_at && id.parse::<u64>().is_ok() => "get-runner",
        ("DELETE", id) if runners_at && id.parse::<u64>().is_ok() => "delete-runner",
        ("POST", "access_tokens") => "app-installation-token",
        ("GET", "rate_limit") => "rate-limit",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        let t = [
            (
                "POST",
                "/repos/o/r/actions/runners/generate-jitconfig",
                "generate-jitconfig",
            ),
            (
                "POST",
                "/orgs/o/actions/runners/generate-jitconfig",
                "generate-jitconfig",
            ),
            (
                "GET",
                "/repos/o/r/actions/runners?per_page=100&page=2",
                "list-runners",
            ),
            ("GET", "/orgs/o/actions/runners/17", "get-runner"),
            ("DELETE", "/repos/o/r/actions/runners/17", "delete-runner"),
            (
                "POST",
                "/repos/o/r/actions/runners/registration-token",
                "registration-token",
            ),
            (
                "POST",
                "/app/installations/5/access_tokens",
                "app-installation-token",
            ),
            ("GET", "/repos/o/runners", "other"),
            ("PATCH", "/repos/o/r/actions/runners/17", "other"),
        ];
        for (m, p, want) in t {
            assert_eq!(endpoint(m, p), want, "{m} {p}");
        }
        let c = CallCounts::default();
        c.count("GET", "/repos/o/r/actions/runners", Some(200));
        c.count("GET", "/repos/o/r/actions/runners", Some(200));
        c.count("DELETE", "/repos/o/r/actions/runners/3", None);
        let s = c.snapshot();
        assert_eq!(s[&("list-runners", "200".to_string())], 2);
        assert_eq!(s[&("delete-runner", "error".to_string())], 1);
        assert_eq!(s.len(), 2);
    }
}

//! Refusals of the per-runner Docker API proxy. The proxy is its own process (one per runner,
//! `podrunner docker-proxy`); it writes each refusal as one log line into its engine log. The
//! manager counts those lines when the runner's container has exited, before the engine's
//! folder is removed (manager/record.rs). A refusal line without a reason is an endpoint
//! jobs may not use; one with `: why` is the policy refusing a request body.
//!
//! The hook for a richer record: if the proxy ever writes structured refusals (a counter file
//! or JSON lines), only [`count_refusals`] changes.

use std::collections::BTreeMap;

/// What the proxy writes before each refusal (proxy/mod.rs). Since its default-deny
/// rewrite every refusal line carries a reason, so most count as `policy`.
pub const REFUSAL_MARK: &str = "docker-proxy: refused ";

/// Refusals in `log` by reason: `endpoint` or `policy`.
pub fn count_refusals(log: &str) -> BTreeMap<&'static str, u64> {
    let mut m = BTreeMap::new();
    for line in log.lines() {
        let Some(i) = line.find(REFUSAL_MARK) else {
            continue;
        };
        let rest = &line[i + REFUSAL_MARK.len()..];
        // `METHOD /path` or `METHOD /path: why` (the path holds no ": ").
        let reason = if rest.contains(": ") {
            "policy"
        } else {
            "endpoint"
        };
        *m.entry(reason).or_default() += 1;
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_lines() {
        let log = "2026-12-01T10:00:00Z  INFO docker-proxy: started the engine (pid 7)\n\
                   2026-12-01T10:00:01Z  INFO docker-proxy: refused POST /v1.41/containers/create: privileged containers are not allowed\n\
                   2026-12-01T10:00:02Z  INFO docker-proxy: refused GET /v1.41/swarm\n\
                   2026-12-01T10:00:03Z  INFO docker-proxy: refused POST /containers/create: host path /etc is outside the work folder\n";
        let m = count_refusals(log);
        assert_eq!(m.get("policy"), Some(&2));
        assert_eq!(m.get("endpoint"), Some(&1));
        assert_eq!(m.len(), 2);
        assert!(count_refusals("").is_empty());
    }
}

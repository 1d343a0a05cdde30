//! Which runner may serve which job (labels, scopes), and the forms a scope and a GHES
//! version are read in.

/// Whether a runner with `runner_labels` may take a job asking for `job_labels`: every job
/// label must be among the runner's label names, compared case-insensitively.
pub fn labels_match(runner_labels: &[&str], job_labels: &[String]) -> bool {
    job_labels.iter().all(|want| {
        runner_labels
            .iter()
            .any(|have| have.eq_ignore_ascii_case(want))
    })
}

/// Whether a runner registered at `runner_scope` serves a job of `job_scope`: the same scope,
/// or the org that owns the job's repository.
pub fn scope_matches(runner_scope: &str, job_scope: &str) -> bool {
    if runner_scope.eq_ignore_ascii_case(job_scope) {
        return true;
    }
    match (
        runner_scope.strip_prefix("orgs/"),
        job_scope.strip_prefix("repos/"),
    ) {
        (Some(org), Some(repo)) => repo
            .split_once('/')
            .is_some_and(|(owner, _)| owner.eq_ignore_ascii_case(org)),
        _ => false,
    }
}

/// Checks a scope string: `repos/{owner}/{repo}`, `orgs/{org}` or `enterprises/{e}`,
/// segments non-empty.
pub fn normalize_scope(scope: &str) -> Option<String> {
    let s = scope.trim().trim_matches('/');
    let parts: Vec<&str> = s.split('/').collect();
    let ok = match parts.as_slice() {
        ["repos", o, r] => !o.is_empty() && !r.is_empty(),
        ["orgs", o] | ["enterprises", o] => !o.is_empty(),
        _ => false,
    };
    ok.then(|| s.to_string())
}

/// `3.14.2` → `(3, 14)`: a GitHub Enterprise Server version's feature release.
pub fn ghes_minor(v: &str) -> Option<(u32, u32)> {
    let mut it = v.trim().split('.');
    let major = it.next()?.parse().ok()?;
    let minor = it.next()?.parse().ok()?;
    Some((major, minor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_matching_is_case_insensitive_subset() {
        let runner = ["self-hosted", "linux", "x64", "gpu"];
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let cases: [(&[&str], bool); 7] = [
            (&[], true),
            (&["self-hosted"], true),
            (&["Self-Hosted", "LINUX"], true),
            (&["self-hosted", "linux", "x64", "gpu"], true),
            (&["gpu", "arm64"], false),
            (&["windows"], false),
            (&["self-hosted", "gpus"], false),
        ];
        for (job, want) in cases {
            assert_eq!(labels_match(&runner, &s(job)), want, "job labels {job:?}");
        }
    }

    #[test]
    fn scope_matching() {
        let cases = [
            ("repos/o/r", "repos/o/r", true),
            ("repos/O/R", "repos/o/r", true),
            ("orgs/o", "repos/o/r", true),
            ("orgs/O", "repos/o/other", true),
            ("orgs/x", "repos/o/r", false),
            ("repos/o/r", "repos/o/s", false),
            ("repos/o/r", "orgs/o", false),
            ("orgs/o", "orgs/o", true),
        ];
        for (runner, job, want) in cases {
            assert_eq!(scope_matches(runner, job), want, "{runner} serves {job}");
        }
        assert_eq!(normalize_scope("/repos/o/r/").as_deref(), Some("repos/o/r"));
        assert_eq!(normalize_scope("orgs/o").as_deref(), Some("orgs/o"));
        assert_eq!(normalize_scope("repos/o"), None);
        assert_eq!(normalize_scope("users/o"), None);
    }
}

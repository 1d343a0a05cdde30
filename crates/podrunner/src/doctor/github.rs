//! The GitHub side: the token file, and whether GitHub at `api_url` accepts the token for each
//! pool's repository or organization (docs/github-runner.md, REST conventions: permissions).

use super::{Check, Status};
use crate::config::names::Scope;
use crate::config::Config;
use crate::github::{Client, Error, Probe, Secret};
use std::time::Duration;

/// The whole probe of one scope, retries included; a GitHub that does not answer in this time
/// is reported unreachable rather than keeping doctor waiting.
const PROBE_TIMEOUT: Duration = Duration::from_secs(60);

/// Splits a `read_token` error into what was found and its fix.
fn split_fix(msg: &str) -> (String, Option<String>) {
    match msg.split_once("\n  fix: ") {
        Some((found, fix)) => (found.to_string(), Some(fix.to_string())),
        None => (msg.to_string(), None),
    }
}

pub fn check_token_file(cfg: &Config) -> Check {
    let path = &cfg.github.token_file;
    let c = Check::new("token", "token file", Status::Pass);
    match crate::config::read_token(path) {
        Ok(_) => c.found(format!("{} (mode 600, not empty)", path.display())),
        Err(e) => {
            let (found, fix) = split_fix(&e.to_string());
            let mut c = Check {
                status: Status::Fail,
                found,
                why: "the manager authenticates to GitHub with this token to register every runner; a token other users can read lets them register runners or delete yours".into(),
                ..c
            };
            c.fix = fix.or_else(|| {
                Some(format!(
                    "(umask 077; printf '%s' \"$TOKEN\" > {})",
                    path.display()
                ))
            });
            c
        }
    }
}

/// What a scope needs: the classic scope, and the fine-grained permission.
pub fn required(scope: &Scope) -> (&'static str, &'static str) {
    match scope {
        Scope::Repository { .. } => ("repo", "repository permission Administration: write"),
        Scope::Organization(_) => (
            "admin:org",
            "organization permission Self-hosted runners: write",
        ),
    }
}

/// Judges one probe of `scope`.
pub fn judge(scope: &Scope, api_url: &str, probe: Result<Probe, Error>) -> Check {
    let c = Check::new(
        format!("github:{scope}"),
        format!("GitHub access to {scope}"),
        Status::Pass,
    );
    let (classic, fine) = required(scope);
    let grant = format!(
        "give the token {fine} (classic token: the {classic} scope) for {scope}, in GitHub's Settings > Developer settings > Personal access tokens, and put the new token in the token file"
    );
    let why =
        format!("the manager lists, registers (generate-jitconfig) and deletes runners of {scope}");
    let p = match probe {
        Ok(p) => p,
        Err(Error::RateLimited(d)) => {
            return Check {
                status: Status::Warn,
                found: format!("GitHub's rate limit is exhausted for {}s", d.as_secs()),
                why,
                fix: Some("wait, and run podrunner doctor again".into()),
                ..c
            }
        }
        Err(e) => {
            return Check {
                status: Status::Fail,
                found: match &e {
                    Error::Transport { .. } => e.to_string(),
                    _ => format!("cannot reach GitHub at {api_url}: {e}"),
                },
                why,
                fix: Some(format!("check the network, proxy and api_url (https://api.github.com, or https://HOST/api/v3 for GitHub Enterprise Server): curl -sI {api_url}")),
                ..c
            }
        }
    };
    let fail = |found: String, fix: String| Check {
        status: Status::Fail,
        found,
        why: why.clone(),
        fix: Some(fix),
        ..c.clone()
    };
    match p.status {
        200 => match &p.oauth_scopes {
            Some(scopes) => {
                let has: Vec<&str> = scopes.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
                if has.contains(&classic) {
                    Check {
                        found: format!("token accepted; classic token with scopes: {}", has.join(", ")),
                        ..c
                    }
                } else {
                    fail(
                        format!(
                            "classic token without the {classic} scope (it has: {})",
                            if has.is_empty() { "none".into() } else { has.join(", ") }
                        ),
                        grant,
                    )
                }
            }
            None => Check {
                found: format!("token accepted, runners of {scope} listed (fine-grained token or app: registering also needs {fine})"),
                ..c
            },
        },
        401 => fail(
            format!("token rejected (401: {})", p.message),
            "the token is wrong, expired or revoked: create a new one and put it in the token file".into(),
        ),
        403 | 404 => fail(
            format!(
                "token lacks permission for {scope} ({}: {})",
                p.status, p.message
            ),
            format!("{grant}; check that {scope} exists and the token's owner can administer it"),
        ),
        s => fail(
            format!("GitHub answered {s}: {}", p.message),
            format!("check api_url ({api_url}) and GitHub's status"),
        ),
    }
}

/// One check per distinct scope among the pools; skipped when the token file is bad.
pub async fn check_github(cfg: &Config, token_ok: bool) -> Vec<Check> {
    let mut scopes: Vec<&Scope> = Vec::new();
    for p in &cfg.pools {
        if !scopes.contains(&&p.scope) {
            scopes.push(&p.scope);
        }
    }
    let skip = |s: &Scope, why: &str| {
        Check::new(
            format!("github:{s}"),
            format!("GitHub access to {s}"),
            Status::Skip,
        )
        .found(why.to_string())
    };
    let token = match (token_ok, crate::config::read_token(&cfg.github.token_file)) {
        (true, Ok(t)) => t,
        _ => {
            return scopes
                .iter()
                .map(|s| skip(s, "no usable token (see the token file check)"))
                .collect()
        }
    };
    let client = match Client::new(&cfg.github.api_url, Secret::new(token)) {
        Ok(c) => c,
        Err(e) => {
            return scopes
                .iter()
                .map(|s| skip(s, &format!("cannot build an HTTP client: {e}")))
                .collect()
        }
    };
    let mut out = Vec::new();
    // After one scope found GitHub unreachable, the others say so without retrying again.
    let mut unreachable: Option<String> = None;
    for s in scopes {
        let probe = match &unreachable {
            Some(m) => Err(Error::Transport {
                url: cfg.github.api_url.clone(),
                message: m.clone(),
            }),
            None => match tokio::time::timeout(PROBE_TIMEOUT, client.probe_runners(s)).await {
                Ok(r) => r,
                Err(_) => Err(Error::Transport {
                    url: cfg.github.api_url.clone(),
                    message: format!("no answer within {}s", PROBE_TIMEOUT.as_secs()),
                }),
            },
        };
        if let Err(Error::Transport { message, .. }) = &probe {
            unreachable = Some(message.clone());
        }
        out.push(judge(s, &cfg.github.api_url, probe));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(status: u16, scopes: Option<&str>) -> Result<Probe, Error> {
        Ok(Probe {
            status,
            oauth_scopes: scopes.map(str::to_string),
            message: "m".into(),
        })
    }

    #[test]
    fn probes_are_judged() {
        let repo = Scope::repository("o/r").unwrap();
        let org = Scope::organization("acme").unwrap();
        let api = "https://api.github.com";
        assert_eq!(
            judge(&repo, api, probe(200, Some("repo, workflow"))).status,
            Status::Pass
        );
        let c = judge(&repo, api, probe(200, Some("public_repo")));
        assert_eq!(c.status, Status::Fail);
        assert!(c.found.contains("without the repo scope"), "{}", c.found);
        let c = judge(&org, api, probe(200, Some("repo")));
        assert_eq!(c.status, Status::Fail);
        assert!(c.fix.unwrap().contains("Self-hosted runners: write"));
        assert_eq!(
            judge(&org, api, probe(200, Some("admin:org, repo"))).status,
            Status::Pass
        );
        // Fine-grained tokens send no scopes header.
        let c = judge(&repo, api, probe(200, None));
        assert_eq!(c.status, Status::Pass);
        assert!(c.found.contains("Administration: write"), "{}", c.found);
        let c = judge(&repo, api, probe(401, None));
        assert!(
            c.is_fail() && c.found.starts_with("token rejected"),
            "{}",
            c.found
        );
        for s in [403, 404] {
            let c = judge(&repo, api, probe(s, None));
            assert!(
                c.is_fail() && c.found.starts_with("token lacks permission"),
                "{}",
                c.found
            );
            assert!(c.fix.unwrap().contains("Administration: write"));
        }
        let c = judge(
            &repo,
            api,
            Err(Error::Transport {
                url: api.into(),
                message: "connection refused".into(),
            }),
        );
        assert!(
            c.is_fail() && c.found.starts_with("cannot reach GitHub"),
            "{}",
            c.found
        );
        assert_eq!(
            judge(&repo, api, Err(Error::RateLimited(Duration::from_secs(5)))).status,
            Status::Warn
        );
        assert_eq!(c.id, "github:o/r");
    }

    #[test]
    fn token_error_splits_into_found_and_fix() {
        let (f, x) = split_fix(
            "the GitHub token file /t has mode 644, readable by other users\n  fix: chmod 600 /t",
        );
        assert_eq!(
            f,
            "the GitHub token file /t has mode 644, readable by other users"
        );
        assert_eq!(x.as_deref(), Some("chmod 600 /t"));
    }
}

//! The GitHub side: the credential files (token, App key), whether GitHub at `api_url`
//! accepts them for each pool's repository, organization or enterprise, what they lack
//! (github::diagnose), the GHES version, and the pools' runner groups by name.

use super::{Check, Status};
use crate::config::names::Scope;
use crate::config::Config;
use crate::github::auth::Credentials;
use crate::github::diagnose::{self, CredentialKind};
use crate::github::{ghes, Client, Error, Probe};
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

/// The credential files: the token file (unless a GitHub App alone is configured), and the
/// App's private key. One check, id `token`, so `podrunner run` refuses on it.
pub fn check_token_file(cfg: &Config) -> Check {
    let g = &cfg.github;
    let title = match &g.app {
        Some(_) => "GitHub App credentials",
        None => "token file",
    };
    let c = Check::new("token", title, Status::Pass);
    let why = "the manager authenticates to GitHub with this credential to register every runner; one other users can read lets them register runners or delete yours";
    let failed = |e: anyhow::Error, default_fix: String| {
        let (found, fix) = split_fix(&e.to_string());
        Check {
            status: Status::Fail,
            found,
            why: why.into(),
            fix: fix.or(Some(default_fix)),
            ..c.clone()
        }
    };
    let mut found = Vec::new();
    if let Some(app) = &g.app {
        let key = crate::config::read_private_key(&app.private_key_file).and_then(|pem| {
            crate::github::auth::App::new(&app.issuer, &pem, app.installation_id)
                .map_err(|e| anyhow::anyhow!("{}: {e}", app.private_key_file.display()))
        });
        if let Err(e) = key {
            return failed(e, format!("chmod 600 {}", app.private_key_file.display()));
        }
        found.push(format!(
            "GitHub App {} with the key {} (mode 600, an RSA key){}",
            app.issuer,
            app.private_key_file.display(),
            app.installation_id
                .map(|i| format!(", installation {i}"))
                .unwrap_or_else(|| ", installations looked up per pool".into())
        ));
    }
    if g.app.is_none() || g.token_file_set {
        let path = &g.token_file;
        match crate::config::read_token(path) {
            Ok(t) => found.push(format!(
                "{} (mode 600): a {}",
                path.display(),
                diagnose::kind_of(&t).describe()
            )),
            Err(e) => {
                return failed(
                    e,
                    format!("(umask 077; printf '%s' \"$TOKEN\" > {})", path.display()),
                )
            }
        }
    }
    c.found(found.join("; "))
}

/// What a scope needs: the classic scope, and the fine-grained permission.
pub fn required(scope: &Scope) -> (&'static str, &'static str) {
    let n = diagnose::needs(scope);
    (
        n.classic,
        n.permission
            .unwrap_or("a classic token: no fine-grained token or App can manage these runners"),
    )
}

/// Judges one probe of `scope` made with a credential of `kind`, for pools that need `needs`
/// of a GitHub Enterprise Server (`ghes::needed`).
pub fn judge(
    scope: &Scope,
    api_url: &str,
    kind: CredentialKind,
    needs: &[ghes::Feature],
    probe: Result<Probe, Error>,
) -> Check {
    let c = Check::new(
        format!("github:{scope}"),
        format!("GitHub access to {scope}"),
        Status::Pass,
    );
    let (classic, fine) = required(scope);
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
        Err(e @ (Error::Auth(_) | Error::Unsupported(_))) => {
            let (found, fix) = split_fix(&e.to_string());
            return Check {
                status: Status::Fail,
                found,
                why,
                fix,
                ..c
            };
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
    let server = match &p.server_version {
        Some(v) => format!(" (GitHub Enterprise Server {v})"),
        None => String::new(),
    };
    if let Some(v) = &p.server_version {
        if let Err(e) = ghes::require_all(v, needs) {
            let (found, fix) = split_fix(&e.to_string());
            return Check {
                status: Status::Fail,
                found,
                why,
                fix,
                ..c
            };
        }
    }
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
                        found: format!("accepted{server}; classic personal access token with scopes: {}", has.join(", ")),
                        ..c
                    }
                } else {
                    let d = diagnose::diagnose(kind, scope, &diagnose::Answer { status: 200, oauth_scopes: Some(scopes.clone()), ..Default::default() }).on(api_url);
                    fail(d.found, d.fix)
                }
            }
            None => Check {
                found: match kind {
                    CredentialKind::App => format!("accepted{server}: the GitHub App's installation lists the runners of {scope} (registering also needs {fine})"),
                    k => format!("accepted{server}: a {} listed the runners of {scope} (registering also needs {fine})", k.describe()),
                },
                ..c
            },
        },
        401 | 403 | 404 => {
            let d = p.diagnosis.unwrap_or_else(|| diagnose::diagnose(kind, scope, &diagnose::Answer { status: p.status, message: p.message.clone(), ..Default::default() }).on(api_url));
            fail(d.found, d.fix)
        }
        s => fail(
            format!("GitHub answered {s}: {}", p.message),
            format!("check api_url ({api_url}) and GitHub's status"),
        ),
    }
}

/// One check per distinct scope among the pools, then one per pool that names its runner
/// group; skipped when the credentials are bad.
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
    let creds = match (token_ok, Credentials::from_config(&cfg.github)) {
        (true, Ok(c)) => c,
        _ => {
            return scopes
                .iter()
                .map(|s| {
                    skip(
                        s,
                        "no usable credentials (see the GitHub credentials check)",
                    )
                })
                .collect()
        }
    };
    let client = match Client::with_credentials(&cfg.github.api_url, creds) {
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
        let kind = client.credentials().kind(s);
        let scale_sets_only = cfg
            .pools
            .iter()
            .filter(|p| &p.scope == s)
            .all(|p| p.scale_set.is_some());
        let needs = ghes::needed(scale_sets_only, kind);
        out.push(judge(s, &cfg.github.api_url, kind, &needs, probe));
    }
    for p in cfg.pools.iter().filter(|p| p.runner_group.is_some()) {
        let name = p.runner_group.as_deref().unwrap_or_default();
        let c = Check::new(
            format!("runner-group:{}", p.name),
            format!("runner group of pool {}", p.name),
            Status::Pass,
        );
        if out
            .iter()
            .any(|o| o.id == format!("github:{}", p.scope) && o.status != Status::Pass)
        {
            out.push(
                c.with_status(Status::Skip)
                    .found(format!("no access to {} (see above)", p.scope)),
            );
            continue;
        }
        let found =
            tokio::time::timeout(PROBE_TIMEOUT, client.runner_group_id(&p.scope, name)).await;
        out.push(match found {
            Ok(Ok(id)) => c.found(format!("runner group {name:?} of {} has id {id}", p.scope)),
            Ok(Err(e)) => {
                let (found, fix) = split_fix(&e.to_string());
                Check {
                    status: Status::Fail,
                    found,
                    why: "every runner of the pool is registered in this group".into(),
                    fix,
                    ..c
                }
            }
            Err(_) => c
                .with_status(Status::Warn)
                .found(format!("no answer within {}s", PROBE_TIMEOUT.as_secs())),
        });
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
            diagnosis: None,
            server_version: None,
        })
    }

    fn judge(scope: &Scope, api: &str, probe: Result<Probe, Error>) -> Check {
        super::judge(
            scope,
            api,
            CredentialKind::ClassicPat,
            &[ghes::Feature::JitRunners],
            probe,
        )
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
        assert_eq!(
            c.found,
            "the classic personal access token lacks the repo scope for o/r (it has: public_repo)"
        );
        let c = judge(&org, api, probe(200, Some("repo")));
        assert_eq!(c.status, Status::Fail);
        assert!(c.fix.unwrap().contains("tick admin:org"));
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
            c.is_fail()
                && c.found.starts_with(
                    "GitHub rejected the classic personal access token: it is wrong, expired or revoked"
                ),
            "{}",
            c.found
        );
        for s in [403, 404] {
            let c = judge(&repo, api, probe(s, None));
            assert!(
                c.is_fail()
                    && c.found.starts_with(
                        "the classic personal access token may not manage the runners of o/r"
                    ),
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
        // A GHES too old for just-in-time runners.
        let old = || {
            Ok(Probe {
                server_version: Some("3.9.2".into()),
                ..probe(200, Some("repo")).unwrap()
            })
        };
        let c = judge(&repo, api, old());
        assert!(
            c.is_fail() && c.found.contains("version 3.9.2"),
            "{}",
            c.found
        );
        // The same server is new enough for scale sets (GHES 3.9), unless the token is a
        // fine-grained one (GHES 3.10).
        let sets = |kind| {
            let needs = ghes::needed(true, kind);
            super::judge(&repo, api, kind, &needs, old())
        };
        assert_eq!(sets(CredentialKind::ClassicPat).status, Status::Pass);
        let c = sets(CredentialKind::FineGrainedPat);
        assert_eq!(c.found, "this GitHub Enterprise Server is version 3.9.2; fine-grained personal access tokens need 3.10 or later");
        assert_eq!(c.fix.as_deref(), Some("upgrade the server to GHES 3.10 or later (or use a classic personal access token (https://HOST/settings/tokens/new) or a GitHub App)"));
        let new = Ok(Probe {
            server_version: Some("3.14.0".into()),
            ..probe(200, Some("repo")).unwrap()
        });
        let c = judge(&repo, api, new);
        assert_eq!(
            c.found,
            "accepted (GitHub Enterprise Server 3.14.0); classic personal access token with scopes: repo"
        );
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

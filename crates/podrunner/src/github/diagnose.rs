//! What a GitHub credential is, and what it lacks when GitHub refuses it (docs/credentials.md).
//!
//! Pure: the kind of a token is read from its shape (GitHub's documented prefixes, the
//! registration token's form), and a refusal is judged from the answer's status, message and
//! headers (`X-OAuth-Scopes`, `X-Accepted-OAuth-Scopes`, `X-GitHub-SSO`,
//! `GitHub-Authentication-Token-Expiration`). Both `podrunner doctor` and the client's errors
//! use it, so the first failing call says the same as doctor. Nothing here prints a token.

use crate::config::names::Scope;
use serde::Serialize;

/// What kind of credential podrunner holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CredentialKind {
    /// `github_pat_...`
    FineGrainedPat,
    /// `ghp_...`, or 40 hex digits (tokens made before 2021)
    ClassicPat,
    /// `ghs_...`: a GitHub App installation token, valid one hour.
    InstallationToken,
    /// `ghu_...`: a GitHub App acting for a user.
    UserToServerToken,
    /// `gho_...`: an OAuth App's token.
    OAuthToken,
    /// `ghr_...`: renews a user-to-server token; it cannot call the API.
    RefreshToken,
    /// 29 upper-case letters and digits: what the "New self-hosted runner" page shows
    /// (registration token), or a remove token. It only works with the runner's config.sh.
    RegistrationToken,
    /// `eyJ...` in three dot-separated parts.
    Jwt,
    /// `-----BEGIN ...`
    PrivateKey,
    /// The GitHub App podrunner authenticates as (`[github] app_id`); its tokens are made
    /// as needed.
    App,
    Unknown,
}

/// Length of registration and remove tokens (GitHub's examples, e.g. `LLBF3JGZDX3P5PMEXLND6TS6FCWO6`).
const REGISTRATION_TOKEN_LEN: usize = 29;
/// A classic token from before 2021: 40 lower-case hex digits, no prefix.
const OLD_CLASSIC_LEN: usize = 40;

/// The kind of `token`, by its shape alone.
pub fn kind_of(token: &str) -> CredentialKind {
    use CredentialKind::*;
    let t = token.trim();
    let prefixed = [
        ("github_pat_", FineGrainedPat),
        ("ghp_", ClassicPat),
        ("ghs_", InstallationToken),
        ("ghu_", UserToServerToken),
        ("gho_", OAuthToken),
        ("ghr_", RefreshToken),
        ("-----BEGIN", PrivateKey),
    ];
    if let Some((_, k)) = prefixed.iter().find(|(p, _)| t.starts_with(p)) {
        return *k;
    }
    if t.strip_prefix("v1.")
        .is_some_and(|h| h.len() == OLD_CLASSIC_LEN && h.chars().all(|c| c.is_ascii_hexdigit()))
    {
        // The installation token format before the `ghs_` prefix.
        return InstallationToken;
    }
    if t.len() == OLD_CLASSIC_LEN && t.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')) {
        return ClassicPat;
    }
    let parts: Vec<&str> = t.split('.').collect();
    if parts.len() == 3
        && t.starts_with("eyJ")
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
    {
        return Jwt;
    }
    if t.len() == REGISTRATION_TOKEN_LEN
        && t.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        && t.chars().any(|c| c.is_ascii_uppercase())
    {
        return RegistrationToken;
    }
    Unknown
}

impl CredentialKind {
    /// A short name for messages and `--json`.
    pub fn describe(self) -> &'static str {
        use CredentialKind::*;
        match self {
            FineGrainedPat => "fine-grained personal access token",
            ClassicPat => "classic personal access token",
            InstallationToken => "GitHub App installation token",
            UserToServerToken => "GitHub App user token",
            OAuthToken => "OAuth App token",
            RefreshToken => "refresh token",
            RegistrationToken => "runner registration or remove token",
            Jwt => "GitHub App JWT",
            PrivateKey => "private key",
            App => "GitHub App",
            Unknown => "token of unknown kind",
        }
    }

    /// Why a token file holding this kind cannot be used, and what to do, as
    /// `"holds ...\n  fix: ..."`; `None` when podrunner can try it.
    pub fn refusal(self) -> Option<String> {
        use CredentialKind::*;
        let create = "create a fine-grained personal access token (repository permission Administration: write, or organization permission Self-hosted runners: write), a classic one (scope repo, or admin:org), or a GitHub App ([github] app_id and private_key_file); docs/credentials.md shows each step";
        let (what, fix) = match self {
            RegistrationToken => (
                "holds a runner registration (or remove) token, the kind GitHub shows on the \"New self-hosted runner\" page: it is valid for one hour and lets the runner's own config.sh register one runner; podrunner has to register a fresh runner for every job, which needs a credential that can call GitHub's API",
                create.to_string(),
            ),
            InstallationToken => (
                "holds a GitHub App installation token (ghs_...), which GitHub lets expire after one hour, and podrunner cannot renew it",
                "configure the App itself instead: [github] app_id (or client_id) and private_key_file; podrunner then makes and renews installation tokens on its own".to_string(),
            ),
            Jwt => (
                "holds a GitHub App JWT, valid for at most ten minutes",
                "configure the App instead: [github] app_id (or client_id) and private_key_file; podrunner signs its own JWTs".to_string(),
            ),
            PrivateKey => (
                "holds a private key, not a token",
                "for a GitHub App set [github] private_key_file to this file and app_id to the App's id; otherwise put a token in the token file".to_string(),
            ),
            RefreshToken => (
                "holds a refresh token (ghr_...), which cannot call GitHub's API",
                create.to_string(),
            ),
            _ => return None,
        };
        Some(format!("{what} (a {})\n  fix: {fix}", self.describe()))
    }
}

/// What a pool's scope needs from each kind of credential (docs/github-runner.md, REST
/// conventions: permissions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Needs {
    /// The classic token's scope.
    pub classic: &'static str,
    /// The fine-grained token's (and the App's) permission; `None`: they cannot manage
    /// runners at this scope.
    pub permission: Option<&'static str>,
}

pub fn needs(scope: &Scope) -> Needs {
    match scope {
        Scope::Repository { .. } => Needs {
            classic: "repo",
            permission: Some("repository permission Administration: write"),
        },
        Scope::Organization(_) => Needs {
            classic: "admin:org",
            permission: Some("organization permission Self-hosted runners: write"),
        },
        Scope::Enterprise(_) => Needs {
            classic: "manage_runners:enterprise",
            permission: None,
        },
    }
}

/// What GitHub answered to a refused call: the parts that tell why.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub message: String,
    /// `X-OAuth-Scopes`: the scopes of a classic token (absent for other kinds).
    pub oauth_scopes: Option<String>,
    /// `X-Accepted-OAuth-Scopes`: the scopes this endpoint accepts.
    pub accepted_scopes: Option<String>,
    /// `X-GitHub-SSO`: `required; url=...` when the organization enforces SAML SSO and the
    /// token is not authorized for it.
    pub sso: Option<String>,
    /// `GitHub-Authentication-Token-Expiration`: when a token with an expiry date expires.
    pub token_expiration: Option<String>,
}

impl Answer {
    pub fn from_headers(status: u16, message: String, h: &reqwest::header::HeaderMap) -> Answer {
        let get = |n: &str| {
            h.get(n)
                .and_then(|v| v.to_str().ok())
                .map(|s| s.trim().to_string())
        };
        Answer {
            status,
            message,
            oauth_scopes: get("x-oauth-scopes"),
            accepted_scopes: get("x-accepted-oauth-scopes"),
            sso: get("x-github-sso"),
            token_expiration: get("github-authentication-token-expiration"),
        }
    }
}

/// A judged refusal: what is wrong and the exact fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnosis {
    pub found: String,
    pub fix: String,
}

impl Diagnosis {
    /// The fix's settings pages on the GitHub whose API is `api_base`: a GitHub Enterprise
    /// Server's tokens are made at `https://HOST/settings/...` (`ghes::known_web_origin`); an
    /// API URL of no known form keeps github.com's pages.
    pub fn on(mut self, api_base: &str) -> Diagnosis {
        if let Some(web) = super::ghes::known_web_origin(api_base) {
            self.fix = self.fix.replace(
                &format!("{GITHUB_WEB}/settings/"),
                &format!("{web}/settings/"),
            );
        }
        self
    }
}

impl std::fmt::Display for Diagnosis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}\n  fix: {}", self.found, self.fix)
    }
}

fn list(s: &str) -> Vec<String> {
    s.split(',')
        .map(|x| x.trim().to_string())
        .filter(|x| !x.is_empty())
        .collect()
}

/// Whether the classic scopes `has` cover `need`: by itself, or for an enterprise scope
/// (`manage_runners:enterprise`) by its parent `admin:enterprise`.
fn covers(has: &[String], need: &str) -> bool {
    has.iter().any(|h| {
        h == need
            || need
                .split_once(':')
                .is_some_and(|(_, parent)| parent == "enterprise" && h == "admin:enterprise")
    })
}

/// github.com's web origin; [`Diagnosis::on`] moves its settings pages to a GHES.
const GITHUB_WEB: &str = "https://github.com";
/// Where a classic scope or a fine-grained permission is granted, for fixes.
const CLASSIC_SETTINGS: &str = "https://github.com/settings/tokens";
const FINE_GRAINED_SETTINGS: &str = "https://github.com/settings/personal-access-tokens";

/// Judges GitHub's refusal (401, 403 or 404) of `kind` at `scope`.
pub fn diagnose(kind: CredentialKind, scope: &Scope, a: &Answer) -> Diagnosis {
    use CredentialKind::*;
    let need = needs(scope);
    let said = format!("GitHub answered {}: {}", a.status, a.message);
    if let Some(sso) = a.sso.as_deref().filter(|s| s.starts_with("required")) {
        let url = sso.split_once("url=").map(|(_, u)| u.trim()).unwrap_or("");
        return Diagnosis {
            found: format!("the {} is not authorized for the SAML single sign-on that {scope} enforces ({said})", kind.describe()),
            fix: if url.is_empty() {
                format!("authorize the token for single sign-on: {CLASSIC_SETTINGS} > the token > Configure SSO > Authorize")
            } else {
                format!("open {url} while signed in to GitHub and authorize the token (or {CLASSIC_SETTINGS} > the token > Configure SSO > Authorize)")
            },
        };
    }
    if let Some(refusal) = kind.refusal() {
        let (found, fix) = refusal.split_once("\n  fix: ").unwrap_or((&refusal, ""));
        return Diagnosis {
            found: format!("the token file {found} ({said})"),
            fix: fix.to_string(),
        };
    }
    if a.status == 401 {
        let expired = a.message.to_ascii_lowercase().contains("expired")
            || a.token_expiration.as_deref().is_some_and(expiration_passed);
        return match kind {
            App => Diagnosis {
                found: format!("GitHub rejected the GitHub App's credentials ({said})"),
                fix: "check that app_id (or client_id) is the App the private key belongs to, that the key was not deleted from the App's settings, that the App is still installed, and that this host's clock is right (App JWTs are valid for minutes)".into(),
            },
            _ if expired => Diagnosis {
                found: format!(
                    "the {} has expired{} ({said})",
                    kind.describe(),
                    a.token_expiration
                        .as_deref()
                        .map(|d| format!(" (expiry: {d})"))
                        .unwrap_or_default()
                ),
                fix: format!("regenerate it ({}) with the same permissions, put the new token in the token file and run `podrunner restart`", settings_of(kind)),
            },
            _ => Diagnosis {
                found: format!("GitHub rejected the {}: it is wrong, expired or revoked ({said})", kind.describe()),
                fix: format!("create a new token ({}) with {} for {scope}, put it in the token file and run `podrunner restart`", settings_of(kind), grant(kind, need)),
            },
        };
    }
    // 403 or 404 (GitHub answers 404 when the credential may not even see the resource).
    if need.permission.is_none() && kind != ClassicPat && kind != Unknown {
        return Diagnosis {
            found: format!(
                "a {} cannot manage the runners of {scope}: GitHub accepts only a classic personal access token with the manage_runners:enterprise scope there ({said})",
                kind.describe()
            ),
            fix: format!("create a classic token with the manage_runners:enterprise scope at {CLASSIC_SETTINGS} (as an enterprise owner) and set [github] token_file to it"),
        };
    }
    match kind {
        ClassicPat | Unknown if a.oauth_scopes.is_some() => {
            let has = list(a.oauth_scopes.as_deref().unwrap_or(""));
            let wanted = a
                .accepted_scopes
                .as_deref()
                .map(list)
                .filter(|w| !w.is_empty())
                .unwrap_or_else(|| vec![need.classic.to_string()]);
            let has_text = if has.is_empty() {
                "none".to_string()
            } else {
                has.join(", ")
            };
            if wanted.iter().any(|w| covers(&has, w)) {
                Diagnosis {
                    found: format!("the classic personal access token has the scope ({has_text}), but GitHub refused ({said}): its owner cannot administer {scope}, or {scope} does not exist"),
                    fix: format!("use a token of an account that administers {scope} (repository admin, organization owner or enterprise owner), and check the name in the config"),
                }
            } else {
                Diagnosis {
                    found: format!(
                        "the classic personal access token lacks the {} scope for {scope} (it has: {has_text})",
                        wanted.join(" or ")
                    ),
                    fix: format!("edit the token at {CLASSIC_SETTINGS}, tick {}, and save (the token itself stays the same)", need.classic),
                }
            }
        }
        FineGrainedPat => Diagnosis {
            found: format!("the fine-grained personal access token lacks the {} for {scope}, or {scope} is not among its resources ({said})", need.permission.unwrap_or("permission")),
            fix: format!("edit the token at {FINE_GRAINED_SETTINGS}: resource owner {}, {}, {}; if the organization requires approval, an owner must approve the token", owner_of(scope), access_of(scope), need.permission.unwrap_or("permission")),
        },
        InstallationToken | App => Diagnosis {
            found: format!("the GitHub App's installation lacks the {} for {scope}, or {scope} is not among the repositories it was installed for ({said})", need.permission.unwrap_or("permission")),
            fix: format!("in the App's settings > Permissions & events set {} (and Metadata: read), then have {} accept the new permissions under Settings > GitHub Apps > Configure, with {} selected", need.permission.unwrap_or("the permission"), owner_of(scope), access_of(scope)),
        },
        _ => Diagnosis {
            found: format!("the {} may not manage the runners of {scope} ({said})", kind.describe()),
            fix: format!("{}; check that {scope} exists and the token's owner administers it", grant(kind, need)),
        },
    }
}

fn settings_of(kind: CredentialKind) -> String {
    match kind {
        CredentialKind::FineGrainedPat => FINE_GRAINED_SETTINGS.to_string(),
        _ => CLASSIC_SETTINGS.to_string(),
    }
}

fn grant(kind: CredentialKind, need: Needs) -> String {
    match (kind, need.permission) {
        (CredentialKind::FineGrainedPat, Some(p)) => p.to_string(),
        (_, Some(p)) => format!("the {} scope (fine-grained: {p})", need.classic),
        (_, None) => format!("the {} scope (classic token)", need.classic),
    }
}

fn owner_of(scope: &Scope) -> String {
    match scope {
        Scope::Repository { owner, .. } => owner.clone(),
        Scope::Organization(o) | Scope::Enterprise(o) => o.clone(),
    }
}

fn access_of(scope: &Scope) -> String {
    match scope {
        Scope::Repository { repo, .. } => format!("repository access including {repo}"),
        _ => "the organization".to_string(),
    }
}

/// Whether a `GitHub-Authentication-Token-Expiration` value (`2024-01-02 03:04:05 UTC`) is
/// in the past.
fn expiration_passed(v: &str) -> bool {
    let iso = v.trim().trim_end_matches(" UTC").replacen(' ', "T", 1) + "Z";
    humantime::parse_rfc3339(&iso).is_ok_and(|t| t < std::time::SystemTime::now())
}

#[cfg(test)]
mod tests {
    use super::CredentialKind::*;
    use super::*;

    #[test]
    fn kinds_by_shape() {
        let cases = [
            ("github_pat_11ABCDEFG0abcdefghijkl_mnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZab", FineGrainedPat),
            ("ghp_16C7e42F292c6912E7710c838347Ae178B4a", ClassicPat),
            ("0123456789abcdef0123456789abcdef01234567", ClassicPat),
            ("ghs_16C7e42F292c6912E7710c838347Ae178B4a", InstallationToken),
            ("v1.0123456789abcdef0123456789abcdef01234567", InstallationToken),
            ("ghu_16C7e42F292c6912E7710c838347Ae178B4a", UserToServerToken),
            ("gho_16C7e42F292c6912E7710c838347Ae178B4a", OAuthToken),
            ("ghr_1B4a2e77838347a7E420ce178F2E7c6912E169246c34E1ccbF66C46812d16D5B1A9Dc86A1498", RefreshToken),
            // GitHub's documented example, and the usual A-prefixed form.
            ("LLBF3JGZDX3P5PMEXLND6TS6FCWO6", RegistrationToken),
            ("AABF3JGZDX3P5PMEXLND6TS6FCWO6", RegistrationToken),
            ("eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiIxIn0.c2lnbmF0dXJl", Jwt),
            ("-----BEGIN RSA PRIVATE KEY-----\nMIIE", PrivateKey),
            ("t0ken", Unknown),
            // Near misses stay unknown: lower case, one character short, hex of the wrong length.
            ("aabf3jgzdx3p5pmexlnd6ts6fcwo6", Unknown),
            ("AABF3JGZDX3P5PMEXLND6TS6FCWO", Unknown),
            ("0123456789ABCDEF0123456789ABCDEF01234567", Unknown),
            ("12345678901234567890123456789", Unknown),
        ];
        for (t, k) in cases {
            assert_eq!(kind_of(t), k, "{t}");
        }
    }

    #[test]
    fn unusable_kinds_are_refused_with_a_fix() {
        let r = RegistrationToken.refusal().unwrap();
        assert!(r.starts_with("holds a runner registration (or remove) token, the kind GitHub shows on the \"New self-hosted runner\" page"), "{r}");
        assert!(r.contains("\n  fix: create a fine-grained personal access token (repository permission Administration: write"), "{r}");
        for k in [InstallationToken, Jwt, PrivateKey, RefreshToken] {
            let r = k.refusal().unwrap();
            assert!(r.contains("\n  fix: "), "{k:?}: {r}");
        }
        assert!(InstallationToken
            .refusal()
            .unwrap()
            .contains("[github] app_id"));
        for k in [
            FineGrainedPat,
            ClassicPat,
            UserToServerToken,
            OAuthToken,
            App,
            Unknown,
        ] {
            assert_eq!(k.refusal(), None, "{k:?}");
        }
    }

    fn answer(status: u16, message: &str) -> Answer {
        Answer {
            status,
            message: message.into(),
            ..Answer::default()
        }
    }

    #[test]
    fn classic_token_missing_a_scope() {
        let org = Scope::organization("acme").unwrap();
        let a = Answer {
            oauth_scopes: Some("repo, workflow".into()),
            accepted_scopes: Some("admin:org".into()),
            ..answer(403, "Must have admin rights to Repository.")
        };
        let d = diagnose(ClassicPat, &org, &a);
        assert_eq!(
            d.found,
            "the classic personal access token lacks the admin:org scope for org acme (it has: repo, workflow)"
        );
        assert_eq!(d.fix, "edit the token at https://github.com/settings/tokens, tick admin:org, and save (the token itself stays the same)");
        // On a GitHub Enterprise Server the same page is the server's own.
        assert_eq!(d.clone().on("https://api.github.com").fix, d.fix);
        assert_eq!(d.clone().on("http://127.0.0.1:8080").fix, d.fix);
        assert_eq!(d.clone().on("https://ghe.example/api/v3/").fix, "edit the token at https://ghe.example/settings/tokens, tick admin:org, and save (the token itself stays the same)");
        // It has the scope: the account is the problem.
        let a = Answer {
            oauth_scopes: Some("admin:org".into()),
            ..answer(404, "Not Found")
        };
        let d = diagnose(ClassicPat, &org, &a);
        assert!(
            d.found.contains("its owner cannot administer org acme"),
            "{}",
            d.found
        );
        let ent = Scope::enterprise("big").unwrap();
        let a = Answer {
            oauth_scopes: Some("admin:enterprise".into()),
            ..answer(403, "x")
        };
        assert!(diagnose(ClassicPat, &ent, &a)
            .found
            .contains("cannot administer"));
    }

    #[test]
    fn fine_grained_and_app_permissions() {
        let repo = Scope::repository("o/r").unwrap();
        let d = diagnose(
            FineGrainedPat,
            &repo,
            &answer(403, "Resource not accessible by personal access token"),
        );
        assert_eq!(d.found, "the fine-grained personal access token lacks the repository permission Administration: write for o/r, or o/r is not among its resources (GitHub answered 403: Resource not accessible by personal access token)");
        assert!(d.fix.starts_with("edit the token at https://github.com/settings/personal-access-tokens: resource owner o, repository access including r, repository permission Administration: write"), "{}", d.fix);
        let org = Scope::organization("acme").unwrap();
        let d = diagnose(
            App,
            &org,
            &answer(403, "Resource not accessible by integration"),
        );
        assert!(d.found.starts_with("the GitHub App's installation lacks the organization permission Self-hosted runners: write for org acme"), "{}", d.found);
        assert!(d.fix.contains("accept the new permissions"), "{}", d.fix);
    }

    #[test]
    fn enterprise_needs_a_classic_token() {
        let ent = Scope::enterprise("big").unwrap();
        for k in [FineGrainedPat, App, InstallationToken] {
            let d = diagnose(
                k,
                &ent,
                &answer(403, "Resource not accessible by integration"),
            );
            if k == InstallationToken {
                // A ghs_ token in the file is refused for what it is first.
                assert!(d.found.contains("cannot renew"), "{}", d.found);
                continue;
            }
            assert!(d.found.contains("GitHub accepts only a classic personal access token with the manage_runners:enterprise scope"), "{k:?}: {}", d.found);
            assert!(d.fix.contains("manage_runners:enterprise"), "{}", d.fix);
        }
    }

    #[test]
    fn sso_expired_and_rejected() {
        let org = Scope::organization("acme").unwrap();
        let a = Answer {
            sso: Some(
                "required; url=https://github.com/orgs/acme/sso?authorization_request=XYZ".into(),
            ),
            ..answer(403, "Resource protected by organization SAML enforcement.")
        };
        let d = diagnose(ClassicPat, &org, &a);
        assert!(d.found.starts_with("the classic personal access token is not authorized for the SAML single sign-on that org acme enforces"), "{}", d.found);
        assert!(
            d.fix.starts_with(
                "open https://github.com/orgs/acme/sso?authorization_request=XYZ while signed in"
            ),
            "{}",
            d.fix
        );
        let a = Answer {
            token_expiration: Some("2020-01-02 03:04:05 UTC".into()),
            ..answer(401, "Bad credentials")
        };
        let d = diagnose(FineGrainedPat, &org, &a);
        assert_eq!(d.found, "the fine-grained personal access token has expired (expiry: 2020-01-02 03:04:05 UTC) (GitHub answered 401: Bad credentials)");
        assert!(
            d.fix
                .starts_with("regenerate it (https://github.com/settings/personal-access-tokens)"),
            "{}",
            d.fix
        );
        let a = Answer {
            token_expiration: Some("2999-01-02 03:04:05 UTC".into()),
            ..answer(401, "Bad credentials")
        };
        let d = diagnose(ClassicPat, &org, &a);
        assert!(d.found.starts_with("GitHub rejected the classic personal access token: it is wrong, expired or revoked"), "{}", d.found);
        assert!(d.fix.contains("the admin:org scope (fine-grained: organization permission Self-hosted runners: write)"), "{}", d.fix);
        let d = diagnose(
            App,
            &org,
            &answer(401, "A JSON web token could not be decoded"),
        );
        assert!(d.fix.contains("clock"), "{}", d.fix);
        let d = diagnose(RegistrationToken, &org, &answer(401, "Bad credentials"));
        assert!(
            d.found
                .starts_with("the token file holds a runner registration"),
            "{}",
            d.found
        );
    }
}

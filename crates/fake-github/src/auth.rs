//! Credentials of the fake (docs/test-bench.md, "Credentials"): personal access tokens with
//! scopes or permissions, GitHub Apps whose JWTs are verified against their public key, the
//! installation tokens those JWTs buy (`ghs_...`, expiring by a clock tests can move), SAML
//! SSO enforcement, and a rate-limit budget per credential. Pure data and decisions; the HTTP
//! layer asks [`Registry::authenticate`] and [`authorize`] and writes the answer.
//!
//! The server's own token (`State::token`) stays what it always was: every permission, the
//! global budget. Everything here is extra and added by tests.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::state::{Clock, RateLimit, Tokens};

/// GitHub's installation tokens live one hour.
pub const INSTALLATION_TOKEN_TTL_SECS: u64 = 3600;
/// GitHub refuses App JWTs valid for longer than ten minutes.
pub const MAX_JWT_LIFETIME_SECS: u64 = 600;
/// Clock drift GitHub tolerates on `iat`/`exp`.
pub const JWT_LEEWAY_SECS: u64 = 60;

/// Access to one kind of runner endpoint.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    #[default]
    None,
    Read,
    Write,
}

impl Access {
    fn parse(s: &str) -> Access {
        match s {
            "write" | "admin" => Access::Write,
            "read" => Access::Read,
            _ => Access::None,
        }
    }
}

/// What a credential may do with runners at each scope.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Grant {
    /// Repository permission "Administration" (classic: `repo`).
    pub repository: Access,
    /// Organization permission "Self-hosted runners" (classic: `admin:org`).
    pub organization: Access,
    /// Classic `manage_runners:enterprise` (or `admin:enterprise`); nothing else gets it.
    pub enterprise: bool,
}

impl Grant {
    /// From classic scopes.
    pub fn from_scopes(scopes: &[&str]) -> Grant {
        let has = |s: &str| scopes.contains(&s);
        Grant {
            repository: if has("repo") {
                Access::Write
            } else {
                Access::None
            },
            organization: if has("admin:org") {
                Access::Write
            } else {
                Access::None
            },
            enterprise: has("manage_runners:enterprise") || has("admin:enterprise"),
        }
    }

    /// From fine-grained or App permissions (`administration`, `organization_self_hosted_runners`).
    pub fn from_permissions(perms: &BTreeMap<String, String>) -> Grant {
        let get = |k: &str| perms.get(k).map(|v| Access::parse(v)).unwrap_or_default();
        Grant {
            repository: get("administration"),
            organization: get("organization_self_hosted_runners"),
            enterprise: false,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    Classic { scopes: Vec<String> },
    FineGrained,
    Installation { id: u64 },
}

/// A token the fake accepts besides its own.
#[derive(Clone, Debug)]
pub struct TokenRecord {
    pub kind: Kind,
    pub grant: Grant,
    /// The account whose resources it reaches (fine-grained and installation tokens);
    /// `None`: any.
    pub owner: Option<String>,
    /// Epoch seconds on the fake's clock; `None`: never.
    pub expires_at: Option<u64>,
    /// An organization that enforces SAML SSO this token is not authorized for.
    pub sso_blocked_org: Option<String>,
    pub rate: RateLimit,
}

/// A GitHub App: its ids and its public key.
#[derive(Clone, Debug)]
pub struct AppRecord {
    pub id: u64,
    pub client_id: String,
    pub slug: String,
    pub public_key_pem: String,
    pub rate: RateLimit,
}

/// An installation of an App on an organization or user.
#[derive(Clone, Debug)]
pub struct InstallationRecord {
    pub id: u64,
    pub app_id: u64,
    pub account: String,
    pub permissions: BTreeMap<String, String>,
    /// GitHub's rate limit belongs to the installation, shared by its tokens.
    pub rate: RateLimit,
}

/// Who a request is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Who {
    /// The server's own token.
    Main,
    Token(String),
    /// A verified JWT of this App id.
    App(u64),
}

/// A refusal: status, message, extra headers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub message: String,
    pub headers: Vec<(String, String)>,
}

impl Refusal {
    fn new(status: u16, message: &str) -> Refusal {
        Refusal {
            status,
            message: message.into(),
            headers: Vec::new(),
        }
    }
}

/// Every extra credential, and the clock their lifetimes run on.
#[derive(Debug)]
pub struct Registry {
    pub tokens: BTreeMap<String, TokenRecord>,
    pub apps: BTreeMap<u64, AppRecord>,
    pub installations: BTreeMap<u64, InstallationRecord>,
    /// Seconds added to the real clock for token lifetimes ([`Registry::now`]).
    pub clock_offset_secs: u64,
    /// Lifetime of the installation tokens issued from now on.
    pub installation_token_ttl_secs: Option<u64>,
    pub installation_tokens_issued: u64,
    /// JWTs presented with a bad signature, issuer or lifetime.
    pub jwts_refused: u64,
    /// Every JWT accepted (tests search for them where they must not be).
    pub jwts_seen: Vec<String>,
    next_installation_id: u64,
    /// The state's clock ([`crate::State::clock`]).
    clock: Clock,
    /// The state's random strings ([`crate::State::tokens`]).
    random: Tokens,
}

impl Registry {
    /// An empty registry on the state's clock and random strings.
    pub fn new(clock: Clock, random: Tokens) -> Registry {
        Registry {
            tokens: BTreeMap::new(),
            apps: BTreeMap::new(),
            installations: BTreeMap::new(),
            clock_offset_secs: 0,
            installation_token_ttl_secs: None,
            installation_tokens_issued: 0,
            jwts_refused: 0,
            jwts_seen: Vec::new(),
            next_installation_id: 0,
            clock,
            random,
        }
    }

    /// The fake's clock for token lifetimes: the state's time plus what tests added.
    pub fn now(&self) -> u64 {
        self.clock.now_secs() + self.clock_offset_secs
    }

    /// Adds `token`; its rate-limit budget starts full now.
    pub fn add_token(&mut self, token: &str, mut record: TokenRecord) {
        record.rate = RateLimit::new(self.clock.now_secs());
        self.tokens.insert(token.to_string(), record);
    }

    /// A classic token with `scopes`.
    pub fn classic(scopes: &[&str]) -> TokenRecord {
        TokenRecord {
            kind: Kind::Classic {
                scopes: scopes.iter().map(|s| s.to_string()).collect(),
            },
            grant: Grant::from_scopes(scopes),
            owner: None,
            expires_at: None,
            sso_blocked_org: None,
            // Set anew when the token is added (Registry::add_token).
            rate: RateLimit::new(0),
        }
    }

    /// A fine-grained token of `owner` with `permissions` (`[("administration", "write")]`).
    pub fn fine_grained(owner: &str, permissions: &[(&str, &str)]) -> TokenRecord {
        let perms = permissions
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        TokenRecord {
            kind: Kind::FineGrained,
            grant: Grant::from_permissions(&perms),
            owner: Some(owner.to_string()),
            expires_at: None,
            sso_blocked_org: None,
            // Set anew when the token is added (Registry::add_token).
            rate: RateLimit::new(0),
        }
    }

    pub fn add_app(&mut self, id: u64, client_id: &str, public_key_pem: &str) {
        self.apps.insert(
            id,
            AppRecord {
                id,
                client_id: client_id.to_string(),
                slug: format!("app-{id}"),
                public_key_pem: public_key_pem.to_string(),
                rate: RateLimit::new(self.clock.now_secs()),
            },
        );
    }

    /// Installs App `app_id` on `account` with `permissions`; returns the installation id.
    pub fn install(&mut self, app_id: u64, account: &str, permissions: &[(&str, &str)]) -> u64 {
        self.next_installation_id = self.next_installation_id.max(1000) + 1;
        let id = self.next_installation_id;
        self.installations.insert(
            id,
            InstallationRecord {
                id,
                app_id,
                account: account.to_string(),
                permissions: permissions
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                rate: RateLimit::new(self.clock.now_secs()),
            },
        );
        id
    }

    /// Who `authorization` (the header's value) is, or the 401 GitHub gives.
    pub fn authenticate(&mut self, authorization: &str, main: &str) -> Result<Who, Refusal> {
        let bad = || Refusal::new(401, "Bad credentials");
        let (scheme, presented) = authorization.trim().split_once(' ').ok_or_else(bad)?;
        if !(scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("token")) {
            return Err(bad());
        }
        let presented = presented.trim();
        if !main.is_empty() && presented == main {
            return Ok(Who::Main);
        }
        if presented.starts_with("eyJ") {
            return match self.verify_jwt(presented) {
                Ok(id) => {
                    if !self.jwts_seen.iter().any(|j| j == presented) {
                        self.jwts_seen.push(presented.to_string());
                    }
                    Ok(Who::App(id))
                }
                Err(m) => {
                    self.jwts_refused += 1;
                    Err(Refusal::new(401, &m.to_string()))
                }
            };
        }
        let now = self.now();
        match self.tokens.get(presented) {
            Some(t) if t.expires_at.is_some_and(|e| e <= now) => Err(bad()),
            Some(_) => Ok(Who::Token(presented.to_string())),
            None => Err(bad()),
        }
    }

    /// Verifies an App JWT: RS256 signed by a registered App's key, `iss` its id or client
    /// id, valid now (with GitHub's leeway) and for at most ten minutes.
    fn verify_jwt(&self, jwt: &str) -> Result<u64, JwtRefused> {
        use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
        let header = decode_header(jwt).map_err(|_| JwtRefused::Undecodable)?;
        if header.alg != Algorithm::RS256 {
            return Err(JwtRefused::Undecodable);
        }
        let claims: Value = {
            let mut v = Validation::new(Algorithm::RS256);
            v.insecure_disable_signature_validation();
            v.validate_exp = false;
            v.required_spec_claims.clear();
            decode::<Value>(jwt, &DecodingKey::from_secret(&[]), &v)
                .map_err(|_| JwtRefused::Undecodable)?
                .claims
        };
        let iss = match &claims["iss"] {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => return Err(JwtRefused::Issuer),
        };
        let app = self
            .apps
            .values()
            .find(|a| a.id.to_string() == iss || a.client_id == iss)
            .ok_or_else(|| JwtRefused::UnknownIssuer(iss.clone()))?;
        let key = DecodingKey::from_rsa_pem(app.public_key_pem.as_bytes())
            .map_err(|e| JwtRefused::BadKey(e.to_string()))?;
        let mut v = Validation::new(Algorithm::RS256);
        v.leeway = JWT_LEEWAY_SECS;
        v.set_required_spec_claims(&["exp", "iat", "iss"]);
        decode::<Value>(jwt, &key, &v).map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => JwtRefused::Expired,
            _ => JwtRefused::Undecodable,
        })?;
        let (iat, exp) = (
            claims["iat"].as_u64().unwrap_or(0),
            claims["exp"].as_u64().unwrap_or(0),
        );
        if iat > self.clock.now_secs() + JWT_LEEWAY_SECS {
            return Err(JwtRefused::IssuedLater);
        }
        if exp.saturating_sub(iat) > MAX_JWT_LIFETIME_SECS {
            return Err(JwtRefused::TooLong);
        }
        Ok(app.id)
    }

    /// The installation of App `app_id` whose account owns `scope`.
    pub fn installation_for(&self, app_id: u64, scope: &str) -> Option<&InstallationRecord> {
        let owner = owner_of(scope)?;
        self.installations
            .values()
            .find(|i| i.app_id == app_id && i.account.eq_ignore_ascii_case(owner))
    }

    /// A new installation token of installation `id` for App `app_id`: the token and the
    /// answer body (`installation-token`).
    pub fn issue_installation_token(&mut self, app_id: u64, id: u64) -> Option<(String, Value)> {
        let inst = self
            .installations
            .get(&id)
            .filter(|i| i.app_id == app_id)?
            .clone();
        let token = format!("ghs_{}", self.random.token(36));
        let ttl = self
            .installation_token_ttl_secs
            .unwrap_or(INSTALLATION_TOKEN_TTL_SECS);
        let expires_at = self.now() + ttl;
        self.tokens.insert(
            token.clone(),
            TokenRecord {
                kind: Kind::Installation { id },
                grant: Grant::from_permissions(&inst.permissions),
                owner: Some(inst.account.clone()),
                // Real expiry, moved by the clock offset: expires_at is on the fake's clock.
                expires_at: Some(expires_at),
                sso_blocked_org: None,
                rate: RateLimit::new(self.clock.now_secs()),
            },
        );
        self.installation_tokens_issued += 1;
        // Clients compare with their own clock, which the offset does not move.
        let body = json!({
            "token": token,
            "expires_at": crate::state::rfc3339(expires_at - self.clock_offset_secs),
            "permissions": inst.permissions,
            "repository_selection": "all",
        });
        Some((token, body))
    }

    /// The rate-limit budget `who` spends.
    pub fn rate_of<'a>(&'a mut self, who: &Who) -> Option<&'a mut RateLimit> {
        match who {
            Who::Main => None,
            Who::App(id) => self.apps.get_mut(id).map(|a| &mut a.rate),
            Who::Token(t) => {
                let inst = match self.tokens.get(t)?.kind {
                    Kind::Installation { id } => Some(id),
                    _ => None,
                };
                match inst {
                    Some(id) => self.installations.get_mut(&id).map(|i| &mut i.rate),
                    None => self.tokens.get_mut(t).map(|r| &mut r.rate),
                }
            }
        }
    }

    /// Headers every answer to `who` carries (`X-OAuth-Scopes` for classic tokens).
    pub fn headers_for(&self, who: &Who, path: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if let Who::Token(t) = who {
            if let Some(Kind::Classic { scopes }) = self.tokens.get(t).map(|r| &r.kind) {
                out.push(("x-oauth-scopes".into(), scopes.join(", ")));
                if let Some(need) = classic_scope_for(path) {
                    out.push(("x-accepted-oauth-scopes".into(), need.into()));
                }
            }
        }
        out
    }
}

/// `repos/o/r` → `o`; `orgs/o` → `o`; `enterprises/e` → `e`.
pub fn owner_of(scope: &str) -> Option<&str> {
    let mut it = scope.trim_matches('/').split('/');
    match it.next()? {
        "repos" | "orgs" | "enterprises" => it.next(),
        _ => None,
    }
}

fn classic_scope_for(path: &str) -> Option<&'static str> {
    let p = path.trim_start_matches('/');
    if !p.contains("/actions/") {
        return None;
    }
    if p.starts_with("repos/") {
        Some("repo")
    } else if p.starts_with("orgs/") {
        Some("admin:org")
    } else if p.starts_with("enterprises/") {
        Some("manage_runners:enterprise")
    } else {
        None
    }
}

/// Whether `who` may make this request (`scope`: `repos/o/r`, `orgs/o`, `enterprises/e`, or
/// `None` for paths outside a scope). `is_app_path`: `/app/...` and `.../installation`, the
/// only paths a JWT opens.
pub fn authorize(
    reg: &Registry,
    who: &Who,
    method: &str,
    scope: Option<&str>,
    is_app_path: bool,
) -> Result<(), Refusal> {
    let integration = || Refusal::new(403, "Resource not accessible by integration");
    let t = match who {
        Who::Main if is_app_path => {
            return Err(Refusal::new(401, "A JSON web token could not be decoded"))
        }
        Who::Main => return Ok(()),
        Who::App(_) if is_app_path => return Ok(()),
        Who::App(_) => return Err(integration()),
        Who::Token(_) if is_app_path => {
            return Err(Refusal::new(401, "A JSON web token could not be decoded"))
        }
        Who::Token(t) => reg
            .tokens
            .get(t)
            .ok_or_else(|| Refusal::new(401, "Bad credentials"))?,
    };
    let Some(scope) = scope else {
        return Ok(());
    };
    let owner = owner_of(scope).unwrap_or("");
    if let Some(org) = &t.sso_blocked_org {
        if org.eq_ignore_ascii_case(owner) {
            let mut r = Refusal::new(403, "Resource protected by organization SAML enforcement. You must grant your Personal Access token access to this organization.");
            r.headers.push((
                "x-github-sso".into(),
                format!(
                    "required; url=https://github.com/orgs/{org}/sso?authorization_request=FAKE{}",
                    reg.random.token(8)
                ),
            ));
            return Err(r);
        }
    }
    let refused = || match t.kind {
        Kind::Classic { .. } => Refusal::new(403, "Must have admin rights to Repository."),
        Kind::FineGrained => Refusal::new(403, "Resource not accessible by personal access token"),
        Kind::Installation { .. } => integration(),
    };
    if t.owner
        .as_deref()
        .is_some_and(|o| !o.eq_ignore_ascii_case(owner))
    {
        return Err(refused());
    }
    let need = if method == "GET" {
        Access::Read
    } else {
        Access::Write
    };
    let ok = if scope.starts_with("repos/") {
        t.grant.repository >= need
    } else if scope.starts_with("orgs/") {
        t.grant.organization >= need
    } else {
        t.grant.enterprise
    };
    if ok {
        Ok(())
    } else {
        Err(refused())
    }
}

/// The `installation` object GitHub answers for `GET .../installation`.
pub fn installation_json(inst: &InstallationRecord, app: &AppRecord, base: &str) -> Value {
    json!({
        "id": inst.id,
        "app_id": inst.app_id,
        "app_slug": app.slug,
        "client_id": app.client_id,
        "target_id": 1,
        "target_type": "Organization",
        "single_file_name": null,
        "repository_selection": "all",
        "access_tokens_url": format!("{base}/app/installations/{}/access_tokens", inst.id),
        "html_url": format!("https://github.com/organizations/{}/settings/installations/{}", inst.account, inst.id),
        "repositories_url": format!("{base}/installation/repositories"),
        "events": ["workflow_job"],
        "account": null,
        "permissions": inst.permissions,
        "created_at": "2024-01-01T00:00:00Z",
        "updated_at": "2024-01-01T00:00:00Z",
        "suspended_by": null,
        "suspended_at": null,
    })
}

/// A fresh RSA key pair for tests that play a GitHub App: the private key in PKCS#1 PEM (the
/// form GitHub's "Generate a private key" download has) and its public half, made by the
/// `openssl` program (setup-host installs it). Keys are made at run time; none is committed.
#[allow(
    clippy::disallowed_methods,
    reason = "fake-github is test tooling: podrunner's cmd.rs is not its to use"
)]
pub fn rsa_key_pair() -> (String, String) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let private = Command::new("openssl")
        .args(["genrsa", "-traditional", "2048"])
        .stderr(Stdio::null())
        .output()
        .expect("openssl runs (apt-get install openssl)");
    assert!(private.status.success(), "openssl genrsa failed");
    let mut public = Command::new("openssl")
        .args(["rsa", "-pubout"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl runs");
    public
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(&private.stdout)
        .expect("openssl reads the key");
    let public = public.wait_with_output().expect("openssl rsa");
    assert!(public.status.success(), "openssl rsa -pubout failed");
    (
        String::from_utf8(private.stdout).expect("PEM is ASCII"),
        String::from_utf8(public.stdout).expect("PEM is ASCII"),
    )
}

/// Why an App's JSON web token was refused; the text is GitHub's message for it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum JwtRefused {
    #[error("A JSON web token could not be decoded")]
    Undecodable,
    #[error("'Issuer' claim ('iss') must be an Integer")]
    Issuer,
    #[error("Integration not found for issuer {0}")]
    UnknownIssuer(String),
    #[error("fake-github: bad public key: {0}")]
    BadKey(String),
    #[error("'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires")]
    Expired,
    #[error("'Issued at' claim ('iat') must be an Integer representing the time that the assertion was issued")]
    IssuedLater,
    #[error("'Expiration time' claim ('exp') is too far in the future")]
    TooLong,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(reg: &Registry, t: &str) -> Who {
        let _ = reg;
        Who::Token(t.into())
    }

    #[test]
    fn grants_and_refusals() {
        let mut reg = Registry::new(Clock::fixed(crate::state::TEST_EPOCH_MS), Tokens::seeded(1));
        reg.add_token("ghp_org", Registry::classic(&["admin:org"]));
        reg.add_token("ghp_ent", Registry::classic(&["manage_runners:enterprise"]));
        reg.add_token(
            "github_pat_r",
            Registry::fine_grained("o", &[("administration", "write")]),
        );
        let org = token(&reg, "ghp_org");
        assert_eq!(
            authorize(&reg, &org, "POST", Some("orgs/acme"), false),
            Ok(())
        );
        let e = authorize(&reg, &org, "POST", Some("repos/o/r"), false).unwrap_err();
        assert_eq!(
            (e.status, e.message.as_str()),
            (403, "Must have admin rights to Repository.")
        );
        assert!(authorize(&reg, &org, "GET", Some("enterprises/big"), false).is_err());
        let ent = token(&reg, "ghp_ent");
        assert_eq!(
            authorize(&reg, &ent, "POST", Some("enterprises/big"), false),
            Ok(())
        );
        let fg = token(&reg, "github_pat_r");
        assert_eq!(
            authorize(&reg, &fg, "DELETE", Some("repos/o/r"), false),
            Ok(())
        );
        let e = authorize(&reg, &fg, "GET", Some("repos/other/r"), false).unwrap_err();
        assert_eq!(
            e.message,
            "Resource not accessible by personal access token"
        );
        assert!(authorize(&reg, &fg, "GET", Some("enterprises/o"), false).is_err());
        assert_eq!(
            authorize(&reg, &Who::Main, "POST", Some("enterprises/x"), false),
            Ok(())
        );
        assert_eq!(
            authorize(&reg, &Who::App(1), "GET", Some("orgs/acme"), false)
                .unwrap_err()
                .message,
            "Resource not accessible by integration"
        );
        assert_eq!(
            authorize(&reg, &org, "POST", None, true)
                .unwrap_err()
                .status,
            401
        );
        assert_eq!(
            reg.headers_for(&org, "/orgs/acme/actions/runners"),
            vec![
                ("x-oauth-scopes".to_string(), "admin:org".to_string()),
                (
                    "x-accepted-oauth-scopes".to_string(),
                    "admin:org".to_string()
                )
            ]
        );
    }

    #[test]
    fn installation_tokens_expire_on_the_fake_clock() {
        let mut reg = Registry::new(Clock::fixed(crate::state::TEST_EPOCH_MS), Tokens::seeded(1));
        reg.add_app(7, "Iv1.x", "unused");
        let id = reg.install(7, "acme", &[("organization_self_hosted_runners", "write")]);
        assert_eq!(reg.installation_for(7, "orgs/ACME").map(|i| i.id), Some(id));
        assert!(reg.installation_for(7, "orgs/other").is_none());
        assert!(
            reg.issue_installation_token(8, id).is_none(),
            "another App's installation"
        );
        let (t, body) = reg.issue_installation_token(7, id).unwrap();
        assert!(t.starts_with("ghs_") && body["token"] == t.as_str());
        let who = reg.authenticate(&format!("Bearer {t}"), "main").unwrap();
        assert_eq!(
            authorize(&reg, &who, "POST", Some("orgs/acme"), false),
            Ok(())
        );
        assert!(authorize(&reg, &who, "POST", Some("enterprises/acme"), false).is_err());
        assert!(authorize(&reg, &who, "POST", Some("orgs/other"), false).is_err());
        reg.clock_offset_secs = INSTALLATION_TOKEN_TTL_SECS;
        let e = reg
            .authenticate(&format!("Bearer {t}"), "main")
            .unwrap_err();
        assert_eq!((e.status, e.message.as_str()), (401, "Bad credentials"));
        assert_eq!(reg.authenticate("Bearer main", "main"), Ok(Who::Main));
        assert_eq!(reg.authenticate("Basic x", "main").unwrap_err().status, 401);
        assert_eq!(
            reg.authenticate("Bearer eyJ.x.y", "main")
                .unwrap_err()
                .status,
            401
        );
        assert_eq!(reg.jwts_refused, 1);
    }
}

//! Who podrunner is to GitHub (docs/credentials.md): a token from the token file, a GitHub
//! App, or both (enterprise pools take the token, which an App cannot replace there).
//!
//! [`Credentials`] is the seam every GitHub caller goes through: [`super::Client::bearer`]
//! asks it for the bearer token of a scope. For a token that is the token; for an App it is
//! an installation token, made from a JWT (RS256, `iat` 60 s in the past, `exp` 9 minutes
//! ahead), cached per installation and renewed when a quarter of its life is left, or at
//! once when GitHub answers 401 to it. Several installations (pools in different
//! organizations) are held at once. The decisions (claims, when to renew, which credential
//! a scope uses) are pure functions here; the HTTP calls are the client's.
//!
//! No secret leaves this module except as a [`Secret`], whose `Debug` prints nothing.

use super::diagnose::{self, CredentialKind};
use super::{Error, Secret};
use crate::config::names::Scope;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// GitHub rejects a JWT whose `iat` is in its future; dating it back covers clock drift
/// (GitHub's App documentation recommends 60 s).
pub const JWT_BACKDATE: Duration = Duration::from_secs(60);
/// GitHub refuses a JWT valid for more than 10 minutes; 9 leaves room for a fast clock.
pub const JWT_LIFETIME: Duration = Duration::from_secs(9 * 60);
/// An installation token is renewed once less than this fraction of its life is left (15
/// minutes of GitHub's hour): a burst of calls never runs into the expiry, and one refused
/// call still finds time to retry.
pub const RENEW_WHEN_LEFT: f64 = 0.25;

#[derive(serde::Serialize)]
struct Claims<'a> {
    iat: u64,
    exp: u64,
    iss: &'a str,
}

/// The claims of an App JWT made at `now` (epoch seconds).
pub fn jwt_times(now: u64) -> (u64, u64) {
    (
        now.saturating_sub(JWT_BACKDATE.as_secs()),
        now + JWT_LIFETIME.as_secs(),
    )
}

/// Whether a token obtained at `obtained` and expiring at `expires` must be renewed at `now`.
pub fn needs_renewal(obtained: SystemTime, expires: SystemTime, now: SystemTime) -> bool {
    let life = expires.duration_since(obtained).unwrap_or_default();
    let left = expires.duration_since(now).unwrap_or_default();
    left.as_secs_f64() <= life.as_secs_f64() * RENEW_WHEN_LEFT
}

/// A bearer token for one call, and the installation it belongs to (to drop it on a 401).
#[derive(Debug, Clone)]
pub struct Bearer {
    pub secret: Secret,
    pub installation: Option<u64>,
}

#[derive(Debug, Clone)]
struct Cached {
    token: Secret,
    obtained: SystemTime,
    expires: SystemTime,
}

/// A GitHub App: its id, its key, and the installation tokens made so far.
pub struct App {
    issuer: String,
    key: jsonwebtoken::EncodingKey,
    fixed_installation: Option<u64>,
    /// Scope API path → installation id, as looked up.
    installations: Mutex<HashMap<String, u64>>,
    tokens: Mutex<HashMap<u64, Cached>>,
    /// One token request at a time: a burst of calls that finds the token stale makes one.
    pub(super) renewing: tokio::sync::Mutex<()>,
}

/// An App's private key that cannot sign: not an RSA key in PEM form.
#[derive(Debug, thiserror::Error)]
#[error("the private key is not an RSA key in PEM form ({0}); GitHub Apps sign with RSA keys: download a new one from the App's settings")]
pub struct NotRsaKey(jsonwebtoken::errors::Error);

impl App {
    /// `pem`: the App's private key as GitHub hands it out (PKCS#1 or PKCS#8 RSA).
    pub fn new(issuer: &str, pem: &str, installation_id: Option<u64>) -> Result<App, NotRsaKey> {
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes()).map_err(NotRsaKey)?;
        Ok(App {
            issuer: issuer.to_string(),
            key,
            fixed_installation: installation_id,
            installations: Mutex::new(HashMap::new()),
            tokens: Mutex::new(HashMap::new()),
            renewing: tokio::sync::Mutex::new(()),
        })
    }

    /// A fresh JWT that identifies the App (for `/app/...` and installation lookups).
    pub fn jwt(&self) -> Result<Secret, Error> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let (iat, exp) = jwt_times(now);
        let claims = Claims {
            iat,
            exp,
            iss: &self.issuer,
        };
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
            &claims,
            &self.key,
        )
        .map(Secret::new)
        .map_err(|e| Error::Auth(format!("cannot sign the GitHub App JWT: {e}")))
    }

    /// The installation serving `scope`, if known (configured or looked up before).
    pub fn installation_for(&self, scope: &Scope) -> Option<u64> {
        self.fixed_installation.or_else(|| {
            self.installations
                .lock()
                .expect("installations lock")
                .get(&scope.api_path())
                .copied()
        })
    }

    pub fn remember_installation(&self, scope: &Scope, id: u64) {
        self.installations
            .lock()
            .expect("installations lock")
            .insert(scope.api_path(), id);
    }

    /// A cached token of installation `id` that need not be renewed at `now`.
    pub fn cached(&self, id: u64, now: SystemTime) -> Option<Secret> {
        let tokens = self.tokens.lock().expect("tokens lock");
        tokens
            .get(&id)
            .filter(|c| !needs_renewal(c.obtained, c.expires, now))
            .map(|c| c.token.clone())
    }

    pub fn store(&self, id: u64, token: Secret, obtained: SystemTime, expires: SystemTime) {
        self.tokens.lock().expect("tokens lock").insert(
            id,
            Cached {
                token,
                obtained,
                expires,
            },
        );
    }

    /// Drops the token of installation `id` if it is still `refused` (GitHub answered 401 to
    /// it); a token another call renewed meanwhile stays.
    pub fn invalidate(&self, id: u64, refused: &Secret) {
        let mut tokens = self.tokens.lock().expect("tokens lock");
        if tokens.get(&id).is_some_and(|c| &c.token == refused) {
            tokens.remove(&id);
        }
    }

    /// Installations holding a token now (for tests and status).
    pub fn installations_with_tokens(&self) -> Vec<u64> {
        let mut v: Vec<u64> = self
            .tokens
            .lock()
            .expect("tokens lock")
            .keys()
            .copied()
            .collect();
        v.sort_unstable();
        v
    }
}

/// What authenticates a scope's calls.
pub enum Source<'a> {
    Token(&'a Secret),
    App(&'a App),
}

/// The credentials of one manager: a token, an App, or both.
pub struct Credentials {
    token: Option<Secret>,
    app: Option<App>,
}

/// Names the kind of credential only: the token and the App's key are never printed.
impl std::fmt::Debug for Source<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Source::Token(_) => "Source::Token",
            Source::App(_) => "Source::App",
        })
    }
}

/// The App's issuer only: its key and tokens are never printed.
impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Credentials(token: {}, app: {})",
            self.token.is_some(),
            self.app.is_some()
        )
    }
}

impl Credentials {
    /// A personal access token (or any token) for every scope.
    pub fn token(token: Secret) -> Credentials {
        Credentials {
            token: Some(token),
            app: None,
        }
    }

    /// A GitHub App, and optionally a token for the enterprise scopes an App cannot manage.
    pub fn app(app: App, token: Option<Secret>) -> Credentials {
        Credentials {
            token,
            app: Some(app),
        }
    }

    /// Reads what `[github]` names (the key file, the token file) with their permission
    /// checks.
    pub fn from_config(g: &crate::config::GithubConfig) -> anyhow::Result<Credentials> {
        let Some(a) = &g.app else {
            let token = crate::config::read_token(&g.token_file)?;
            return Ok(Credentials::token(Secret::new(token)));
        };
        let pem = crate::config::read_private_key(&a.private_key_file)?;
        let app = App::new(&a.issuer, &pem, a.installation_id).map_err(|e| {
            anyhow::anyhow!(
                "{}: {e}\n  fix: point [github] private_key_file at the .pem file GitHub gave for this App",
                a.private_key_file.display()
            )
        })?;
        let token = match g.token_file_set {
            true => Some(Secret::new(crate::config::read_token(&g.token_file)?)),
            false => None,
        };
        Ok(Credentials::app(app, token))
    }

    /// Which credential `scope` uses: the App, except for enterprises (GitHub lets no App
    /// manage enterprise runners), which take the token.
    pub fn source(&self, scope: &Scope) -> Result<Source<'_>, Error> {
        let enterprise = matches!(scope, Scope::Enterprise(_));
        match (&self.app, &self.token) {
            (Some(app), _) if !enterprise => Ok(Source::App(app)),
            (_, Some(t)) => Ok(Source::Token(t)),
            _ => Err(Error::Auth(format!(
                "{scope} needs a classic personal access token with the manage_runners:enterprise scope: a GitHub App cannot manage enterprise runners\n  fix: set [github] token_file to a file holding such a token"
            ))),
        }
    }

    /// The kind of credential `scope` uses, for diagnoses.
    pub fn kind(&self, scope: &Scope) -> CredentialKind {
        match self.source(scope) {
            Ok(Source::App(_)) => CredentialKind::App,
            Ok(Source::Token(t)) => diagnose::kind_of(t.expose()),
            Err(_) => CredentialKind::Unknown,
        }
    }

    pub fn app_ref(&self) -> Option<&App> {
        self.app.as_ref()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An RSA key pair made at run time (fake-github's helper; PKCS#1 like GitHub's downloads).
    pub(crate) fn test_key() -> (String, String) {
        fake_github::auth::rsa_key_pair()
    }

    #[test]
    fn jwt_claims_and_signature() {
        assert_eq!(jwt_times(1_000_000), (999_940, 1_000_540));
        let (private, public) = test_key();
        let app = App::new("12345", &private, None).unwrap();
        let jwt = app.jwt().unwrap();
        let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
        v.set_required_spec_claims(&["exp", "iat", "iss"]);
        v.set_issuer(&["12345"]);
        let key = jsonwebtoken::DecodingKey::from_rsa_pem(public.as_bytes()).unwrap();
        let data = jsonwebtoken::decode::<serde_json::Value>(jwt.expose(), &key, &v).unwrap();
        let (iat, exp) = (
            data.claims["iat"].as_u64().unwrap(),
            data.claims["exp"].as_u64().unwrap(),
        );
        assert_eq!(
            exp - iat,
            600,
            "iat 60 s back, exp 9 min ahead: 10 minutes at most"
        );
        assert_eq!(format!("{jwt:?}"), "Secret(***)");
        let e = App::new(
            "1",
            "-----BEGIN RSA PRIVATE KEY-----\nnope\n-----END RSA PRIVATE KEY-----\n",
            None,
        )
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("not an RSA key in PEM form"), "{e}");
    }

    #[test]
    fn renewal_at_a_quarter_of_life() {
        let t0 = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let exp = t0 + Duration::from_secs(3600);
        assert!(!needs_renewal(t0, exp, t0));
        assert!(!needs_renewal(t0, exp, t0 + Duration::from_secs(2699)));
        assert!(needs_renewal(t0, exp, t0 + Duration::from_secs(2700)));
        assert!(needs_renewal(t0, exp, exp + Duration::from_secs(5)));
        // A token already expired when received is renewed at once.
        assert!(needs_renewal(t0, t0, t0));
    }

    #[test]
    fn cache_per_installation_and_invalidation() {
        let (private, _) = test_key();
        let app = App::new("Iv23liABC", &private, None).unwrap();
        let now = SystemTime::now();
        let hour = now + Duration::from_secs(3600);
        let (a, b) = (Secret::new("ghs_a".into()), Secret::new("ghs_b".into()));
        app.store(1, a.clone(), now, hour);
        app.store(2, b.clone(), now, hour);
        assert_eq!(app.cached(1, now), Some(a.clone()));
        assert_eq!(app.cached(2, now), Some(b.clone()));
        // A 401 to an older token does not drop the one renewed meanwhile.
        app.invalidate(1, &Secret::new("ghs_old".into()));
        assert_eq!(app.cached(1, now), Some(a.clone()));
        app.invalidate(1, &a);
        assert_eq!(app.cached(1, now), None);
        assert_eq!(app.installations_with_tokens(), vec![2]);
        let org = Scope::organization("acme").unwrap();
        assert_eq!(app.installation_for(&org), None);
        app.remember_installation(&org, 7);
        assert_eq!(app.installation_for(&org), Some(7));
    }

    #[test]
    fn scopes_choose_their_credential() {
        let (private, _) = test_key();
        let ent = Scope::enterprise("big").unwrap();
        let org = Scope::organization("acme").unwrap();
        let c = Credentials::app(App::new("1", &private, Some(9)).unwrap(), None);
        assert!(matches!(c.source(&org), Ok(Source::App(_))));
        assert_eq!(c.kind(&org), CredentialKind::App);
        let e = c.source(&ent).err().unwrap().to_string();
        assert!(
            e.contains("a GitHub App cannot manage enterprise runners"),
            "{e}"
        );
        let c = Credentials::app(
            App::new("1", &private, Some(9)).unwrap(),
            Some(Secret::new("ghp_x".into())),
        );
        assert!(matches!(c.source(&ent), Ok(Source::Token(_))));
        assert_eq!(c.kind(&ent), CredentialKind::ClassicPat);
        let c = Credentials::token(Secret::new("github_pat_x".into()));
        assert_eq!(c.kind(&org), CredentialKind::FineGrainedPat);
        assert_eq!(format!("{c:?}"), "Credentials(token: true, app: false)");
    }
}

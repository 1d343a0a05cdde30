//! How one request to the REST API goes: its bearer (the token, or an App installation token
//! made and renewed here), retries with backoff, rate-limit waits, pagination links that stay on
//! the configured API, and the [`Error`] of a refused answer with its diagnosis.

use super::auth::{self, Bearer, Source};
use super::diagnose::{self, Answer};
use super::model::error_message;
use super::{ghes, header_u64, next_link, now_epoch, retry, Client, Error, Secret};
use super::{ACCEPT, API_VERSION, MAX_ATTEMPTS, MAX_INLINE_WAIT, SECONDARY_LIMIT_WAIT};
use crate::config::names::Scope;
use reqwest::{header, Method, StatusCode};
use serde::Deserialize;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

impl Client {
    pub(super) fn block_for(&self, d: Duration) {
        let until = Instant::now() + d;
        let mut b = self.blocked_until.lock().expect("block lock");
        if b.is_none_or(|x| x < until) {
            *b = Some(until);
        }
    }

    pub(super) async fn wait_unblocked(&self) {
        let until = *self.blocked_until.lock().expect("block lock");
        if let Some(u) = until {
            tokio::time::sleep_until(u.into()).await;
        }
    }

    /// The bearer token for calls about `scope`: the token, or a current installation token
    /// of the App (made or renewed here when needed). The seam for other GitHub callers
    /// (e.g. the runner-registration exchange of scale sets): ask for a bearer per call, and
    /// after a 401 call [`Client::refused`] and ask once more.
    pub async fn bearer(&self, scope: &Scope) -> Result<Bearer, Error> {
        let app = match self.creds.source(scope)? {
            Source::Token(t) => {
                return Ok(Bearer {
                    secret: t.clone(),
                    installation: None,
                })
            }
            Source::App(app) => app,
        };
        if let Some(id) = app.installation_for(scope) {
            if let Some(t) = app.cached(id, SystemTime::now()) {
                return Ok(Bearer {
                    secret: t,
                    installation: Some(id),
                });
            }
        }
        let _one_at_a_time = app.renewing.lock().await;
        let id = match app.installation_for(scope) {
            Some(id) => id,
            None => {
                let id = self.find_installation(app, scope).await?;
                app.remember_installation(scope, id);
                id
            }
        };
        // Another call may have renewed it while this one waited.
        if let Some(t) = app.cached(id, SystemTime::now()) {
            return Ok(Bearer {
                secret: t,
                installation: Some(id),
            });
        }
        let url = format!("{}/app/installations/{id}/access_tokens", self.base);
        let jwt = app.jwt()?;
        let (status, headers, bytes) = self.send_with(Method::POST, &url, None, &jwt).await?;
        if !status.is_success() {
            return Err(self.app_failure(
                status,
                &headers,
                &bytes,
                scope,
                &format!("installation {id}"),
            ));
        }
        #[derive(Deserialize)]
        struct Token {
            token: String,
            expires_at: String,
        }
        let t: Token = serde_json::from_slice(&bytes).map_err(|e| Error::Decode(e.to_string()))?;
        let obtained = SystemTime::now();
        let expires = humantime::parse_rfc3339_weak(&t.expires_at)
            .map_err(|e| Error::Decode(format!("expires_at {:?}: {e}", t.expires_at)))?;
        let secret = Secret::new(t.token);
        tracing::info!(
            "GitHub App installation {id}: new installation token, valid for {}s",
            expires
                .duration_since(obtained)
                .unwrap_or_default()
                .as_secs()
        );
        app.store(id, secret.clone(), obtained, expires);
        Ok(Bearer {
            secret,
            installation: Some(id),
        })
    }

    /// Tells the credentials that GitHub answered 401 to `bearer`, so the next
    /// [`Client::bearer`] makes a new installation token.
    pub fn refused(&self, bearer: &Bearer) {
        if let (Some(id), Some(app)) = (bearer.installation, self.creds.app_ref()) {
            app.invalidate(id, &bearer.secret);
        }
    }

    /// The App's installation on `scope`'s repository or organization (JWT-authenticated).
    pub(super) async fn find_installation(
        &self,
        app: &auth::App,
        scope: &Scope,
    ) -> Result<u64, Error> {
        let url = format!("{}/{}/installation", self.base, scope.api_path());
        let jwt = app.jwt()?;
        let (status, headers, bytes) = self.send_with(Method::GET, &url, None, &jwt).await?;
        match status.as_u16() {
            200 => {
                #[derive(Deserialize)]
                struct Inst {
                    id: u64,
                }
                let i: Inst =
                    serde_json::from_slice(&bytes).map_err(|e| Error::Decode(e.to_string()))?;
                tracing::info!("GitHub App installation {} serves {scope}", i.id);
                Ok(i.id)
            }
            404 => Err(Error::Auth(format!(
                "the GitHub App is not installed on {scope}\n  fix: install it (the App's page > Install App) on {} with access to {scope}, or set [github] installation_id",
                match scope {
                    Scope::Repository { owner, .. } => owner.as_str(),
                    Scope::Organization(o) | Scope::Enterprise(o) => o.as_str(),
                }
            ))),
            _ => Err(self.app_failure(status, &headers, &bytes, scope, &scope.to_string())),
        }
    }

    pub(super) fn app_failure(
        &self,
        status: StatusCode,
        headers: &header::HeaderMap,
        bytes: &[u8],
        scope: &Scope,
        what: &str,
    ) -> Error {
        let answer = Answer::from_headers(status.as_u16(), error_message(bytes), headers);
        match status.as_u16() {
            401 | 403 => Error::Auth(
                diagnose::diagnose(diagnose::CredentialKind::App, scope, &answer)
                    .on(&self.base)
                    .to_string(),
            ),
            404 => Error::NotFound(what.to_string()),
            s => Error::Http {
                status: s,
                message: answer.message,
            },
        }
    }

    /// Sends one request about `scope` with its bearer token; after a 401 to an installation
    /// token, renews it and sends once more.
    pub(super) async fn send(
        &self,
        method: Method,
        url: &str,
        body: Option<&serde_json::Value>,
        scope: &Scope,
    ) -> Result<(StatusCode, header::HeaderMap, Vec<u8>), Error> {
        let bearer = self.bearer(scope).await?;
        let answer = self
            .send_with(method.clone(), url, body, &bearer.secret)
            .await?;
        if answer.0 != StatusCode::UNAUTHORIZED || bearer.installation.is_none() {
            return Ok(answer);
        }
        tracing::info!(
            "GitHub refused the installation token of installation {} (401); making a new one",
            bearer.installation.unwrap_or_default()
        );
        self.refused(&bearer);
        let bearer = self.bearer(scope).await?;
        self.send_with(method, url, body, &bearer.secret).await
    }

    /// Sends one request with retries, authenticated with `bearer`. Returns the status,
    /// headers and body of the final answer, which is a success or an error that retrying
    /// does not fix.
    pub(super) async fn send_with(
        &self,
        method: Method,
        url: &str,
        body: Option<&serde_json::Value>,
        bearer: &Secret,
    ) -> Result<(StatusCode, header::HeaderMap, Vec<u8>), Error> {
        self.send_if_none_match(method, url, body, None, bearer)
            .await
    }

    /// [`Client::send`] with an `If-None-Match` header: a 304 answer costs no rate limit
    /// (github/queued.rs).
    pub(super) async fn send_if_none_match(
        &self,
        method: Method,
        url: &str,
        body: Option<&serde_json::Value>,
        etag: Option<&str>,
        bearer: &Secret,
    ) -> Result<(StatusCode, header::HeaderMap, Vec<u8>), Error> {
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            self.wait_unblocked().await;
            let mut req = self
                .http
                .request(method.clone(), url)
                .header(header::ACCEPT, ACCEPT)
                .header("X-GitHub-Api-Version", API_VERSION)
                .header(header::AUTHORIZATION, format!("Bearer {}", bearer.expose()));
            if let Some(b) = body {
                req = req.json(b);
            }
            if let Some(t) = etag {
                req = req.header(header::IF_NONE_MATCH, t);
            }
            self.calls.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(target: "podrunner::github", "{method} {url} (attempt {attempt})");
            let resp = match req.send().await {
                Ok(r) => r,
                Err(e) => {
                    self.calls_by
                        .count(method.as_str(), self.path_of(url), None);
                    let err = Error::Transport {
                        url: self.base.clone(),
                        message: transport_message(&e),
                    };
                    if attempt < MAX_ATTEMPTS {
                        let d = retry::backoff(attempt, &mut rand::thread_rng());
                        tracing::warn!("{err}; retrying in {:.1}s", d.as_secs_f64());
                        tokio::time::sleep(d).await;
                        continue;
                    }
                    return Err(err);
                }
            };
            let status = resp.status();
            self.calls_by
                .count(method.as_str(), self.path_of(url), Some(status.as_u16()));
            let headers = resp.headers().clone();
            self.note_rate(&headers);
            if let Some(v) = headers
                .get(ghes::VERSION_HEADER)
                .and_then(|v| v.to_str().ok())
            {
                *self.server_version.lock().expect("version lock") = Some(v.to_string());
            }
            let bytes = match resp.bytes().await {
                Ok(b) => b.to_vec(),
                Err(e) => {
                    if attempt < MAX_ATTEMPTS {
                        let d = retry::backoff(attempt, &mut rand::thread_rng());
                        tokio::time::sleep(d).await;
                        continue;
                    }
                    return Err(Error::Transport {
                        url: self.base.clone(),
                        message: transport_message(&e),
                    });
                }
            };
            if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::FORBIDDEN {
                let message = error_message(&bytes);
                if let Some(wait) = retry::rate_limit_wait(
                    status.as_u16(),
                    header_u64(&headers, "retry-after"),
                    header_u64(&headers, "x-ratelimit-remaining"),
                    header_u64(&headers, "x-ratelimit-reset"),
                    &message,
                    now_epoch(),
                ) {
                    let wait = wait.max(Duration::from_millis(100));
                    let wait = if header_u64(&headers, "retry-after").is_none()
                        && header_u64(&headers, "x-ratelimit-remaining") != Some(0)
                    {
                        // Secondary limit with no hint: ≥ 60 s, doubling on repeats.
                        SECONDARY_LIMIT_WAIT * 2u32.saturating_pow(attempt - 1).min(8)
                    } else {
                        wait
                    };
                    self.block_for(wait);
                    if wait > MAX_INLINE_WAIT || attempt >= MAX_ATTEMPTS {
                        return Err(Error::RateLimited(wait));
                    }
                    tracing::warn!(
                        "GitHub rate limit ({}): waiting {:.1}s",
                        status.as_u16(),
                        wait.as_secs_f64()
                    );
                    continue;
                }
            }
            if status.is_server_error() && attempt < MAX_ATTEMPTS {
                let d = retry::backoff(attempt, &mut rand::thread_rng());
                tracing::warn!(
                    "GitHub answered {status} for {method} {}; retrying in {:.1}s",
                    self.path_of(url),
                    d.as_secs_f64()
                );
                tokio::time::sleep(d).await;
                continue;
            }
            return Ok((status, headers, bytes));
        }
    }

    pub(super) fn path_of<'a>(&self, url: &'a str) -> &'a str {
        url.strip_prefix(self.base.as_str()).unwrap_or(url)
    }

    pub(super) fn note_rate(&self, h: &header::HeaderMap) {
        let mut r = self.rate.lock().expect("rate lock");
        if let Some(v) = header_u64(h, "x-ratelimit-limit") {
            r.limit = Some(v);
        }
        if let Some(v) = header_u64(h, "x-ratelimit-remaining") {
            r.remaining = Some(v);
        }
        if let Some(v) = header_u64(h, "x-ratelimit-reset") {
            r.reset = Some(v);
        }
    }

    /// The error of a refused call about `scope`; 401 and 403 are diagnosed.
    /// An error from a status and body alone, for answers that are not about the credential
    /// (the Actions service, conditional reads): no diagnosis of the token.
    pub(crate) fn fail_plain(status: StatusCode, bytes: &[u8], what: &str) -> Error {
        let message = error_message(bytes);
        let plain = |found: String| diagnose::Diagnosis {
            found,
            fix: "check the credential's permissions for this scope (podrunner doctor)".into(),
        };
        match status.as_u16() {
            401 => Error::Unauthorized(plain(message)),
            403 => Error::Forbidden(plain(message)),
            404 => Error::NotFound(what.to_string()),
            s => Error::Http { status: s, message },
        }
    }

    pub(super) fn fail(
        &self,
        scope: &Scope,
        (status, headers, bytes): &(StatusCode, header::HeaderMap, Vec<u8>),
        what: &str,
    ) -> Error {
        let answer = Answer::from_headers(status.as_u16(), error_message(bytes), headers);
        let diagnosis =
            || diagnose::diagnose(self.creds.kind(scope), scope, &answer).on(&self.base);
        match status.as_u16() {
            401 => Error::Unauthorized(diagnosis()),
            403 => Error::Forbidden(diagnosis()),
            404 => Error::NotFound(what.to_string()),
            s => Error::Http {
                status: s,
                message: answer.message,
            },
        }
    }

    /// The `rel="next"` link of an answer, if it stays on the configured API.
    pub(super) fn next_page(&self, headers: &header::HeaderMap) -> Option<String> {
        let next = headers
            .get(header::LINK)
            .and_then(|v| v.to_str().ok())
            .and_then(next_link)?;
        // Never send a token anywhere but the configured API.
        if next.starts_with(&self.base) {
            Some(next)
        } else {
            tracing::warn!("ignoring a pagination link outside {}: {next}", self.base);
            None
        }
    }
}

pub(super) fn transport_message(e: &reqwest::Error) -> String {
    // reqwest's Display includes the URL (never the token); add the cause chain.
    let mut s = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "connection failed".to_string()
    } else {
        "request failed".to_string()
    };
    let mut src: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

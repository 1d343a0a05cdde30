//! `[github]`: the API's address and the credentials (a token file, or a GitHub App).

use super::names::Scope;
use super::{expand_home, ConfigError, ConfigText, Env};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use toml::Spanned;

/// GitHub's public API; GHES uses `https://HOST/api/v3` (docs/github-runner.md, REST conventions).
pub const DEFAULT_API_URL: &str = "https://api.github.com";
/// The token file of the original module.
pub const DEFAULT_TOKEN_FILE: &str = "~/.github-runner-token";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGithub {
    pub(super) api_url: Option<Spanned<String>>,
    pub(super) token_file: Option<String>,
    pub(super) app_id: Option<Spanned<u64>>,
    pub(super) client_id: Option<Spanned<String>>,
    pub(super) private_key_file: Option<Spanned<String>>,
    pub(super) installation_id: Option<Spanned<u64>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct GithubConfig {
    /// Base URL without a trailing slash.
    pub api_url: String,
    pub token_file: PathBuf,
    /// Whether `token_file` was written in the config (with an App, a token is then used for
    /// enterprise pools, which an App cannot manage).
    pub token_file_set: bool,
    /// GitHub App authentication instead of the token (docs/credentials.md).
    pub app: Option<AppConfig>,
}

/// `[github] app_id` or `client_id`, `private_key_file`, `installation_id`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AppConfig {
    /// The JWT's `iss`: the App's numeric id or its client id (GitHub accepts both).
    pub issuer: String,
    pub private_key_file: PathBuf,
    /// When unset, each pool's installation is looked up from its repository or organization.
    pub installation_id: Option<u64>,
}

impl GithubConfig {
    /// Whether pools of `scope` authenticate with the token file (otherwise with the App).
    pub fn uses_token(&self, scope: &Scope) -> bool {
        self.app.is_none() || matches!(scope, Scope::Enterprise(_))
    }
}

/// Reads `[github]`.
pub(super) fn parse(
    raw: RawGithub,
    t: &ConfigText,
    env: &Env,
) -> Result<GithubConfig, ConfigError> {
    let api_url = api_url(raw.api_url.as_ref(), t)?;
    let token_file = expand_home(
        raw.token_file.as_deref().unwrap_or(DEFAULT_TOKEN_FILE),
        &env.home,
    );
    let app = app(&raw, t, env)?;
    Ok(GithubConfig {
        api_url,
        token_file,
        token_file_set: raw.token_file.is_some(),
        app,
    })
}

/// `api_url`, without a trailing slash.
fn api_url(u: Option<&Spanned<String>>, t: &ConfigText) -> Result<String, ConfigError> {
    let Some(u) = u else {
        return Ok(DEFAULT_API_URL.to_string());
    };
    let s = u.get_ref().trim_end_matches('/').to_string();
    if !(s.starts_with("https://") || s.starts_with("http://")) {
        return Err(t.at(
            u.span(),
            format!("api_url {:?} is not an http(s) URL", u.get_ref()),
            "use https://api.github.com, or https://HOST/api/v3 for GitHub Enterprise Server",
        ));
    }
    Ok(s)
}

/// The App's issuer (`app_id` or `client_id`) and where it was written.
fn issuer(
    g: &RawGithub,
    t: &ConfigText,
) -> Result<Option<(std::ops::Range<usize>, String)>, ConfigError> {
    match (&g.app_id, &g.client_id) {
        (Some(a), Some(_)) => Err(t.at(
            a.span(),
            "[github] sets both app_id and client_id".into(),
            "keep one of them: either identifies the GitHub App",
        )),
        (Some(a), None) => Ok(Some((a.span(), a.get_ref().to_string()))),
        (None, Some(c))
            if c.get_ref().trim().is_empty() || c.get_ref().contains(char::is_whitespace) =>
        {
            Err(t.at(
                c.span(),
                format!("client_id {:?} is not a GitHub App client id", c.get_ref()),
                "copy the Client ID from the App's settings page (it starts with Iv)",
            ))
        }
        (None, Some(c)) => Ok(Some((c.span(), c.get_ref().clone()))),
        (None, None) => Ok(None),
    }
}

/// `app_id` or `client_id`, `private_key_file`, `installation_id`: all or none.
fn app(g: &RawGithub, t: &ConfigText, env: &Env) -> Result<Option<AppConfig>, ConfigError> {
    match (issuer(g, t)?, &g.private_key_file) {
        (Some((_, issuer)), Some(k)) => Ok(Some(AppConfig {
            issuer,
            private_key_file: expand_home(k.get_ref(), &env.home),
            installation_id: g.installation_id.as_ref().map(|i| *i.get_ref()),
        })),
        (Some((span, _)), None) => Err(t.at(
            span,
            "a GitHub App needs its private key".into(),
            "add private_key_file = \"/path/to/app.private-key.pem\" (the key downloaded from the App's settings, chmod 600)",
        )),
        (None, Some(k)) => Err(t.at(
            k.span(),
            "private_key_file is set but no app_id or client_id".into(),
            "add app_id = 123456 (the App's id from its settings page), or remove private_key_file to use token_file",
        )),
        (None, None) => match &g.installation_id {
            Some(i) => Err(t.at(
                i.span(),
                "installation_id is set but no GitHub App is configured".into(),
                "add app_id and private_key_file, or remove installation_id",
            )),
            None => Ok(None),
        },
    }
}

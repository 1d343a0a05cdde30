//! Validated names that cross a boundary (GitHub, Podman): checked once, when the config is
//! parsed, so nothing later has to wonder whether a name is acceptable.

use serde::{Deserialize, Deserializer};
use std::fmt;

/// Longest runner name prefix we accept. GitHub caps runner names at 64 characters and
/// podrunner appends `-HOST-SUFFIX` (core/naming.rs): 46.
pub const MAX_PREFIX_LEN: usize =
    64 - 2 - crate::core::naming::MAX_HOST_ID_LEN - crate::core::naming::SUFFIX_LEN;

/// Longest label GitHub accepts for a runner label (its UI and API refuse longer ones).
pub const MAX_LABEL_LEN: usize = 256;

/// Why a name was refused. The messages are the config errors users see (`ConfigText` in
/// config/mod.rs adds the file, line and column).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("{kind} must not be empty")]
    Empty { kind: &'static str },
    #[error("{kind} {value:?} is {len} characters long; at most {max} are allowed")]
    TooLong {
        kind: &'static str,
        value: String,
        len: usize,
        max: usize,
    },
    #[error("{kind} {value:?} must start with a letter or a digit")]
    BadStart { kind: &'static str, value: String },
    #[error("{kind} {value:?} contains {bad:?}; use only letters, digits, '-', '_' and '.'")]
    BadChar {
        kind: &'static str,
        value: String,
        bad: char,
    },
    #[error("label {0:?} must be non-empty without leading or trailing spaces")]
    LabelBlank(String),
    #[error("label {0:?} is longer than {MAX_LABEL_LEN} characters")]
    LabelTooLong(String),
    #[error("label {0:?} must not contain commas or control characters")]
    LabelChars(String),
    #[error("{kind} {value:?} must be 1 to 100 characters long")]
    GithubLength { kind: &'static str, value: String },
    #[error("{kind} {value:?} contains {bad:?}, which GitHub does not allow")]
    GithubChar {
        kind: &'static str,
        value: String,
        bad: char,
    },
    #[error("{kind} {value:?} is not a name GitHub allows")]
    GithubReserved { kind: &'static str, value: String },
    #[error("repository {0:?} must have the form \"owner/repo\"")]
    NotOwnerRepo(String),
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.'
}

/// Checks a name that ends up in a Podman container name, a label value and a GitHub runner
/// name: ASCII letters, digits, `-`, `_`, `.`, starting with a letter or digit.
pub fn check_name(kind: &'static str, s: &str, max: usize) -> Result<(), NameError> {
    let value = || s.to_string();
    if s.is_empty() {
        return Err(NameError::Empty { kind });
    }
    if s.len() > max {
        return Err(NameError::TooLong {
            kind,
            value: value(),
            len: s.len(),
            max,
        });
    }
    if !s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric()) {
        return Err(NameError::BadStart {
            kind,
            value: value(),
        });
    }
    if let Some(bad) = s.chars().find(|c| !is_name_char(*c)) {
        return Err(NameError::BadChar {
            kind,
            value: value(),
            bad,
        });
    }
    Ok(())
}

macro_rules! validated_string {
    ($(#[$doc:meta])* $name:ident, $check:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn new(s: impl Into<String>) -> Result<Self, NameError> {
                let s = s.into();
                let check: fn(&str) -> Result<(), NameError> = $check;
                check(&s)?;
                Ok(Self(s))
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                $name::new(s).map_err(serde::de::Error::custom)
            }
        }
    };
}

validated_string!(
    /// A pool's name: used in container labels, status output and control requests.
    PoolName,
    |s| check_name("pool name", s, 40)
);

/// Maps keyed by pool name (the core's pool states) are looked up with a `&str`.
impl std::borrow::Borrow<str> for PoolName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for PoolName {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

validated_string!(
    /// The prefix of every runner name in a pool; podrunner adds `-HOST-` and a unique suffix.
    RunnerPrefix,
    |s| check_name("runner_name", s, MAX_PREFIX_LEN)
);

validated_string!(
    /// A runner label as GitHub accepts it: no commas (GitHub splits on them), no spaces at
    /// either end, not empty.
    Label,
    |s| {
        if s.is_empty() || s.trim() != s {
            return Err(NameError::LabelBlank(s.into()));
        }
        if s.len() > MAX_LABEL_LEN {
            return Err(NameError::LabelTooLong(s.into()));
        }
        if s.contains(',') || s.chars().any(char::is_control) {
            return Err(NameError::LabelChars(s.into()));
        }
        Ok(())
    }
);

/// `owner/repo`, an organization or an enterprise: where a pool's runners are registered.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(tag = "kind", content = "name", rename_all = "lowercase")]
pub enum Scope {
    Repository {
        owner: String,
        repo: String,
    },
    Organization(String),
    /// An enterprise's slug (docs/credentials.md: only a classic token can manage its runners).
    Enterprise(String),
}

/// GitHub's rules for user, organization and repository names, loosely: letters, digits,
/// `-`, `_`, `.`; 1 to 100 characters.
fn check_github_name(kind: &'static str, s: &str) -> Result<(), NameError> {
    let value = s.to_string();
    if s.is_empty() || s.len() > 100 {
        return Err(NameError::GithubLength { kind, value });
    }
    if let Some(bad) = s.chars().find(|c| !is_name_char(*c)) {
        return Err(NameError::GithubChar { kind, value, bad });
    }
    // GitHub reserves them, and in an API path they would climb out of the scope.
    if s == "." || s == ".." {
        return Err(NameError::GithubReserved { kind, value });
    }
    Ok(())
}

impl Scope {
    pub fn repository(slug: &str) -> Result<Scope, NameError> {
        let Some((owner, repo)) = slug.split_once('/') else {
            return Err(NameError::NotOwnerRepo(slug.into()));
        };
        check_github_name("repository owner", owner)?;
        check_github_name("repository name", repo)?;
        Ok(Scope::Repository {
            owner: owner.into(),
            repo: repo.into(),
        })
    }

    pub fn organization(org: &str) -> Result<Scope, NameError> {
        check_github_name("organization", org)?;
        Ok(Scope::Organization(org.into()))
    }

    pub fn enterprise(slug: &str) -> Result<Scope, NameError> {
        check_github_name("enterprise", slug)?;
        Ok(Scope::Enterprise(slug.into()))
    }

    /// The inverse of [`Scope::api_path`].
    pub fn from_api_path(p: &str) -> Option<Scope> {
        if let Some(rest) = p.strip_prefix("repos/") {
            return Scope::repository(rest).ok();
        }
        if let Some(e) = p.strip_prefix("enterprises/") {
            return Scope::enterprise(e).ok();
        }
        p.strip_prefix("orgs/")
            .and_then(|o| Scope::organization(o).ok())
    }

    /// The REST path prefix: `repos/{owner}/{repo}`, `orgs/{org}` or `enterprises/{slug}`.
    pub fn api_path(&self) -> String {
        match self {
            Scope::Repository { owner, repo } => format!("repos/{owner}/{repo}"),
            Scope::Organization(org) => format!("orgs/{org}"),
            Scope::Enterprise(e) => format!("enterprises/{e}"),
        }
    }

    /// Whether runner groups exist at this scope (organizations and enterprises have them;
    /// a repository's runners are always in its owner's default group).
    pub fn has_runner_groups(&self) -> bool {
        !matches!(self, Scope::Repository { .. })
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Repository { owner, repo } => write!(f, "{owner}/{repo}"),
            Scope::Organization(org) => write!(f, "org {org}"),
            Scope::Enterprise(e) => write!(f, "enterprise {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_accept_and_refuse_exactly() {
        assert!(PoolName::new("build-01.x_y").is_ok());
        assert_eq!(
            PoolName::new("").unwrap_err().to_string(),
            "pool name must not be empty"
        );
        assert_eq!(
            PoolName::new("-x").unwrap_err().to_string(),
            "pool name \"-x\" must start with a letter or a digit"
        );
        assert_eq!(
            PoolName::new("a b").unwrap_err().to_string(),
            "pool name \"a b\" contains ' '; use only letters, digits, '-', '_' and '.'"
        );
        assert!(RunnerPrefix::new("x".repeat(46)).is_ok());
        assert!(RunnerPrefix::new("x".repeat(47)).is_err());
    }

    #[test]
    fn names_podman_or_github_would_refuse() {
        for bad in ["a/b", "a:b", "a b", "ä", "a\u{0}", "_a", ".a", "a\n", "a*"] {
            assert!(PoolName::new(bad).is_err(), "pool name {bad:?} accepted");
            assert!(
                RunnerPrefix::new(bad).is_err(),
                "runner_name {bad:?} accepted"
            );
        }
        assert!(PoolName::new("x".repeat(41)).is_err());
        assert!(Label::new("x".repeat(MAX_LABEL_LEN + 1)).is_err());
        assert!(Label::new("a\tb").is_err());
        assert!(Label::new("a\u{7f}b").is_err());
        assert!(Label::new("b ").is_err());
    }

    #[test]
    fn labels() {
        assert!(Label::new("gpu").is_ok());
        assert!(Label::new("ubuntu 24.04").is_ok());
        assert!(Label::new("a,b").is_err());
        assert!(Label::new(" a").is_err());
        assert!(Label::new("").is_err());
    }

    #[test]
    fn scopes() {
        assert_eq!(Scope::repository("o/r").unwrap().api_path(), "repos/o/r");
        assert_eq!(Scope::organization("acme").unwrap().api_path(), "orgs/acme");
        assert_eq!(
            Scope::repository("nope").unwrap_err().to_string(),
            "repository \"nope\" must have the form \"owner/repo\""
        );
        assert!(Scope::repository("o/r/x").is_err());
        assert_eq!(
            Scope::from_api_path("repos/o/r"),
            Some(Scope::repository("o/r").unwrap())
        );
        assert_eq!(
            Scope::from_api_path("orgs/acme"),
            Some(Scope::organization("acme").unwrap())
        );
        assert_eq!(Scope::from_api_path("users/x"), None);
        let ent = Scope::enterprise("big-co").unwrap();
        assert_eq!(ent.api_path(), "enterprises/big-co");
        assert_eq!(ent.to_string(), "enterprise big-co");
        assert_eq!(
            Scope::from_api_path("enterprises/big-co"),
            Some(ent.clone())
        );
        assert!(ent.has_runner_groups());
        assert!(!Scope::repository("o/r").unwrap().has_runner_groups());
        assert!(Scope::enterprise("..").is_err());
        assert!(Scope::enterprise("a/b").is_err());
        assert!(Scope::organization("a b").is_err());
        // Names that would change the API path, or that GitHub refuses.
        for bad in [
            "o/..", "o/.", "../r", "o/r?x", "o/r#x", "o/r%2F", "o/", "/r", "o/r\n",
        ] {
            assert!(Scope::repository(bad).is_err(), "{bad:?} accepted");
        }
        assert!(Scope::organization("..").is_err());
        assert!(Scope::repository(&format!("o/{}", "r".repeat(101))).is_err());
        assert!(Scope::repository("o/.github").is_ok());
    }
}

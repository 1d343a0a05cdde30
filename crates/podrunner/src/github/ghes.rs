//! GitHub Enterprise Server: which version a feature needs (docs/ghes.md). Pure.
//!
//! A GHES answers every REST call with `X-GitHub-Enterprise-Version: 3.14.2`; github.com sends
//! no such header. Its REST API lives under `https://HOST/api/v3`, which `api_url` names.

use super::diagnose::CredentialKind;

/// The header a GitHub Enterprise Server stamps on every answer.
pub const VERSION_HEADER: &str = "x-github-enterprise-version";

/// What podrunner uses that a server may lack. The first release of each is taken from GitHub's
/// GHES release notes; docs/ghes.md lists them with their sources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feature {
    /// The REST `generate-jitconfig` endpoints, podrunner's way to register a runner for one
    /// job in label-matched pools: GHES 3.10.0 (release notes, GitHub Actions).
    JitRunners,
    /// Runner scale sets (the runner-registration exchange, the Actions service and its
    /// message queue; scale set runners get their JIT config from that service): GHES 3.9.0
    /// (release notes, "Actions Runner Controller and runner scale sets").
    ScaleSets,
    /// Fine-grained personal access tokens: GHES 3.10.0 (release notes, Authentication; a
    /// public beta there).
    FineGrainedTokens,
}

impl Feature {
    /// The first GHES feature release that has it (docs/ghes.md).
    pub fn min_version(self) -> (u32, u32) {
        match self {
            Feature::JitRunners => (3, 10),
            Feature::ScaleSets => (3, 9),
            Feature::FineGrainedTokens => (3, 10),
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Feature::JitRunners => "just-in-time runners (generate-jitconfig)",
            Feature::ScaleSets => "runner scale sets",
            Feature::FineGrainedTokens => "fine-grained personal access tokens",
        }
    }

    /// What to do instead of upgrading, if anything.
    fn otherwise(self) -> &'static str {
        match self {
            Feature::JitRunners => "podrunner registers every runner of a label-matched pool just in time and has no fallback; pools with scale_set = true need only GHES 3.9",
            Feature::ScaleSets => "or drop scale_set from the pool: label-matched pools need GHES 3.10",
            Feature::FineGrainedTokens => "or use a classic personal access token (https://HOST/settings/tokens/new) or a GitHub App",
        }
    }
}

/// The web origin of the GitHub whose REST API is `api_base`, where people create tokens and
/// name repositories: `https://github.com` for `https://api.github.com` (likewise
/// `https://api.SUB.ghe.com`), `https://HOST` for a GitHub Enterprise Server's
/// `https://HOST/api/v3`; `None` for an API URL of neither form.
pub fn known_web_origin(api_base: &str) -> Option<String> {
    let base = api_base.trim_end_matches('/');
    if let Some(rest) = base.strip_prefix("https://api.") {
        Some(format!("https://{rest}"))
    } else {
        base.strip_suffix("/api/v3").map(str::to_string)
    }
}

/// [`known_web_origin`], or the API's own origin.
pub fn web_origin(api_base: &str) -> String {
    known_web_origin(api_base).unwrap_or_else(|| api_base.trim_end_matches('/').to_string())
}

/// What pools need of the server: runner scale sets when every one of them is a scale set
/// (`scale_set`), just-in-time runners as soon as one is label-matched, and fine-grained
/// tokens when that is the credential they use.
pub fn needed(scale_sets_only: bool, kind: CredentialKind) -> Vec<Feature> {
    let mut f = vec![match scale_sets_only {
        true => Feature::ScaleSets,
        false => Feature::JitRunners,
    }];
    if kind == CredentialKind::FineGrainedPat {
        f.push(Feature::FineGrainedTokens);
    }
    f
}

/// A GitHub Enterprise Server too old for a feature podrunner uses: the message says which
/// release has it and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooOld {
    pub version: String,
    pub feature: Feature,
}

impl std::fmt::Display for TooOld {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (major, minor) = self.feature.min_version();
        write!(
            f,
            "this GitHub Enterprise Server is version {}; {} need {major}.{minor} or later\n  fix: upgrade the server to GHES {major}.{minor} or later ({})",
            self.version,
            self.feature.describe(),
            self.feature.otherwise()
        )
    }
}

impl std::error::Error for TooOld {}

/// `require` for each of `features`: the first one the server lacks.
pub fn require_all(version: &str, features: &[Feature]) -> Result<(), TooOld> {
    features.iter().try_for_each(|f| require(version, *f))
}

/// `3.14.2` → `(3, 14)`.
pub fn parse_version(v: &str) -> Option<(u32, u32)> {
    let mut it = v.trim().split('.');
    let major = it.next()?.parse().ok()?;
    let minor = it
        .next()?
        .trim_end_matches(|c: char| !c.is_ascii_digit())
        .parse()
        .ok()?;
    Some((major, minor))
}

/// `Ok` when a server of `version` has `feature`; otherwise the message that says so and the
/// fix. An unreadable version is given the benefit of the doubt.
pub fn require(version: &str, feature: Feature) -> Result<(), TooOld> {
    let Some(have) = parse_version(version) else {
        return Ok(());
    };
    let (major, minor) = feature.min_version();
    if have >= (major, minor) {
        return Ok(());
    }
    Err(TooOld {
        version: version.to_string(),
        feature,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(parse_version("3.14.2"), Some((3, 14)));
        assert_eq!(parse_version("3.9"), Some((3, 9)));
        assert_eq!(parse_version("3.10.0.rc1"), Some((3, 10)));
        assert_eq!(parse_version("enterprise"), None);
        assert_eq!(require("3.10.0", Feature::JitRunners), Ok(()));
        assert_eq!(require("3.19.1", Feature::JitRunners), Ok(()));
        assert_eq!(require("garbage", Feature::JitRunners), Ok(()));
        let e = require("3.9.4", Feature::JitRunners)
            .unwrap_err()
            .to_string();
        assert_eq!(e, "this GitHub Enterprise Server is version 3.9.4; just-in-time runners (generate-jitconfig) need 3.10 or later\n  fix: upgrade the server to GHES 3.10 or later (podrunner registers every runner of a label-matched pool just in time and has no fallback; pools with scale_set = true need only GHES 3.9)");
        // Scale sets arrived one release earlier (3.9.0), fine-grained tokens with JIT (3.10.0).
        assert_eq!(require("3.9.0", Feature::ScaleSets), Ok(()));
        let e = require("3.8.17", Feature::ScaleSets)
            .unwrap_err()
            .to_string();
        assert_eq!(e, "this GitHub Enterprise Server is version 3.8.17; runner scale sets need 3.9 or later\n  fix: upgrade the server to GHES 3.9 or later (or drop scale_set from the pool: label-matched pools need GHES 3.10)");
        assert!(require("2.22.0", Feature::ScaleSets).is_err());
        assert_eq!(
            needed(true, CredentialKind::ClassicPat),
            vec![Feature::ScaleSets]
        );
        assert_eq!(
            needed(false, CredentialKind::FineGrainedPat),
            vec![Feature::JitRunners, Feature::FineGrainedTokens]
        );
        assert_eq!(
            require_all("3.9.1", &needed(true, CredentialKind::App)),
            Ok(())
        );
        assert!(
            require_all("3.9.1", &needed(true, CredentialKind::FineGrainedPat))
                .unwrap_err()
                .to_string()
                .contains("fine-grained")
        );
        assert_eq!(require("3.10.1", Feature::FineGrainedTokens), Ok(()));
        assert_eq!(web_origin("https://api.github.com"), "https://github.com");
        assert_eq!(
            web_origin("https://ghe.example/api/v3/"),
            "https://ghe.example"
        );
        assert_eq!(known_web_origin("http://127.0.0.1:8080"), None);
        assert_eq!(
            web_origin("http://127.0.0.1:8080/"),
            "http://127.0.0.1:8080"
        );
        assert!(require("3.9.4", Feature::FineGrainedTokens)
            .unwrap_err()
            .to_string()
            .contains("fine-grained personal access tokens need 3.10 or later"));
    }
}

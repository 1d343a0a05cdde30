//! GitHub Enterprise Server: which version a feature needs (docs/credentials.md, GHES). Pure.
//!
//! A GHES answers every REST call with `X-GitHub-Enterprise-Version: 3.14.2`; github.com sends
//! no such header. Its REST API lives under `https://HOST/api/v3`, which `api_url` names.

/// The header a GitHub Enterprise Server stamps on every answer.
pub const VERSION_HEADER: &str = "x-github-enterprise-version";

/// What podrunner uses that a server may lack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feature {
    /// `generate-jitconfig` (podrunner's way to register a runner for one job): GHES 3.10.
    JitRunners,
    /// Runner scale sets (the runner-registration exchange and the Actions service): GHES 3.9
    /// has the service, but podrunner's scale sets also register just in time, so 3.10
    /// (docs/credentials.md, GHES).
    ScaleSets,
}

impl Feature {
    /// The first GHES release that has it.
    pub fn min_version(self) -> (u32, u32) {
        match self {
            Feature::JitRunners => (3, 10),
            Feature::ScaleSets => (3, 10),
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Feature::JitRunners => "just-in-time runners (generate-jitconfig)",
            Feature::ScaleSets => "runner scale sets",
        }
    }
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
pub fn require(version: &str, feature: Feature) -> Result<(), String> {
    let Some(have) = parse_version(version) else {
        return Ok(());
    };
    let (major, minor) = feature.min_version();
    if have >= (major, minor) {
        return Ok(());
    }
    Err(format!(
        "this GitHub Enterprise Server is version {version}; {} need {major}.{minor} or later\n  fix: upgrade the server to GHES {major}.{minor} or later (podrunner registers every runner just in time and has no fallback)",
        feature.describe()
    ))
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
        let e = require("3.9.4", Feature::JitRunners).unwrap_err();
        assert_eq!(e, "this GitHub Enterprise Server is version 3.9.4; just-in-time runners (generate-jitconfig) need 3.10 or later\n  fix: upgrade the server to GHES 3.10 or later (podrunner registers every runner just in time and has no fallback)");
        assert!(require("2.22.0", Feature::ScaleSets).is_err());
    }
}

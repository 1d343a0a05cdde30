//! Decoding of the JIT runner configuration.
//!
//! Format (docs/test-bench.md, "The JIT config"; docs/github-runner.md): base64 (standard,
//! padded) of a JSON object mapping file names (`.runner`, `.credentials`,
//! `.credentials_rsaparams`) to base64 file contents.

use std::collections::BTreeMap;
use std::fmt;

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use serde::Deserialize;

/// Standard alphabet; padding optional (GitHub pads, but be lenient like a tolerant reader).
const B64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// What the fake runner needs out of the JIT config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JitConfig {
    pub agent_id: u64,
    pub agent_name: String,
    /// Base URL without trailing slash.
    pub server_url: String,
    pub work_folder: String,
    pub ephemeral: bool,
    /// The runner secret, sent as `Authorization: RunnerToken <token>`.
    pub token: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JitError {
    /// The outer value is not base64.
    Base64,
    /// The outer value is not a JSON object of strings.
    Outer(String),
    /// A file entry is missing.
    MissingFile(&'static str),
    /// A file entry is not base64.
    FileBase64(&'static str),
    /// A file entry does not hold the expected JSON.
    FileJson(&'static str, String),
    /// `.credentials` has no usable token.
    NoToken,
    /// `.runner` has an unusable `serverUrl` (the fake runner speaks plain http only).
    BadServerUrl(String),
}

impl fmt::Display for JitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JitError::Base64 => write!(f, "the JIT config is not valid base64"),
            JitError::Outer(e) => write!(f, "the JIT config is not a JSON object of files: {e}"),
            JitError::MissingFile(name) => write!(f, "the JIT config has no {name} file"),
            JitError::FileBase64(name) => {
                write!(f, "the JIT config's {name} file is not valid base64")
            }
            JitError::FileJson(name, e) => {
                write!(f, "the JIT config's {name} file is not valid: {e}")
            }
            JitError::NoToken => write!(f, "the JIT config's .credentials file holds no token"),
            JitError::BadServerUrl(u) => {
                write!(f, "the JIT config's serverUrl {u:?} is not an http:// URL")
            }
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RunnerFile {
    agent_id: u64,
    #[serde(default)]
    agent_name: String,
    server_url: String,
    #[serde(default)]
    work_folder: Option<String>,
    #[serde(default)]
    ephemeral: bool,
}

#[derive(Deserialize)]
struct CredentialsFile {
    #[serde(default)]
    data: BTreeMap<String, String>,
}

/// Decodes an `encoded_jit_config` value.
pub fn decode(encoded: &str) -> Result<JitConfig, JitError> {
    let outer = B64.decode(encoded.trim()).map_err(|_| JitError::Base64)?;
    let files: BTreeMap<String, String> =
        serde_json::from_slice(&outer).map_err(|e| JitError::Outer(e.to_string()))?;
    let file = |name: &'static str| -> Result<Vec<u8>, JitError> {
        let content = files.get(name).ok_or(JitError::MissingFile(name))?;
        B64.decode(content.trim())
            .map_err(|_| JitError::FileBase64(name))
    };
    from_settings(&file(".runner")?, &file(".credentials")?)
}

/// Reads the settings files a configured runner keeps in its root folder: what the runner
/// wrote from a JIT config, or what podrunner's entrypoint put there for it. `None` when the
/// folder holds no `.runner` (not configured).
pub fn load_dir(root: &std::path::Path) -> Option<Result<JitConfig, JitError>> {
    let runner = std::fs::read(root.join(".runner")).ok()?;
    Some(match std::fs::read(root.join(".credentials")) {
        Err(_) => Err(JitError::MissingFile(".credentials")),
        Ok(creds) => from_settings(&runner, &creds),
    })
}

/// Parses the contents of `.runner` and `.credentials`.
fn from_settings(runner: &[u8], credentials: &[u8]) -> Result<JitConfig, JitError> {
    let runner: RunnerFile =
        serde_json::from_slice(runner).map_err(|e| JitError::FileJson(".runner", e.to_string()))?;
    let creds: CredentialsFile = serde_json::from_slice(credentials)
        .map_err(|e| JitError::FileJson(".credentials", e.to_string()))?;
    let token = creds
        .data
        .get("token")
        .filter(|t| !t.is_empty())
        .cloned()
        .ok_or(JitError::NoToken)?;

    let server_url = runner.server_url.trim_end_matches('/').to_string();
    // The fake speaks plain HTTP on loopback only (no TLS stack in this small static binary).
    if !server_url.starts_with("http://") {
        return Err(JitError::BadServerUrl(runner.server_url));
    }
    let work_folder = runner
        .work_folder
        .filter(|w| !w.is_empty())
        .unwrap_or_else(|| "_work".to_string());

    Ok(JitConfig {
        agent_id: runner.agent_id,
        agent_name: runner.agent_name,
        server_url,
        work_folder,
        ephemeral: runner.ephemeral,
        token,
    })
}

#[cfg(test)]
pub(crate) fn encode_for_tests(runner_json: &str, credentials_json: &str) -> String {
    use base64::engine::general_purpose::STANDARD;
    let files = serde_json::json!({
        ".runner": STANDARD.encode(runner_json),
        ".credentials": STANDARD.encode(credentials_json),
        ".credentials_rsaparams": STANDARD.encode("{}"),
    });
    STANDARD.encode(files.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;

    const RUNNER: &str = r#"{"agentId": 42, "agentName": "r1", "poolId": 1, "poolName": "Default",
        "serverUrl": "http://127.0.0.1:8080/", "gitHubUrl": "http://127.0.0.1:8080",
        "workFolder": "_work", "ephemeral": true, "disableUpdate": true}"#;
    const CREDS: &str = r#"{"scheme": "OAuthAccessToken", "data": {"token": "s3cret"}}"#;

    #[test]
    fn decodes_a_full_config() {
        let cfg = decode(&encode_for_tests(RUNNER, CREDS)).unwrap();
        assert_eq!(
            cfg,
            JitConfig {
                agent_id: 42,
                agent_name: "r1".to_string(),
                server_url: "http://127.0.0.1:8080".to_string(),
                work_folder: "_work".to_string(),
                ephemeral: true,
                token: "s3cret".to_string(),
            }
        );
    }

    #[test]
    fn loads_the_settings_files_of_a_root_folder() {
        let root = std::env::temp_dir().join(format!("fake-runner-jit-{}", std::process::id()));
        std::fs::create_dir_all(&root).unwrap();
        assert_eq!(load_dir(&root), None, "no .runner: not configured");
        std::fs::write(root.join(".runner"), RUNNER).unwrap();
        assert_eq!(
            load_dir(&root),
            Some(Err(JitError::MissingFile(".credentials")))
        );
        std::fs::write(root.join(".credentials"), CREDS).unwrap();
        let from_files = load_dir(&root).unwrap().unwrap();
        std::fs::remove_dir_all(&root).unwrap();
        assert_eq!(
            from_files,
            decode(&encode_for_tests(RUNNER, CREDS)).unwrap()
        );
    }

    #[test]
    fn tolerates_whitespace_and_missing_padding() {
        let enc = encode_for_tests(RUNNER, CREDS);
        let unpadded = enc.trim_end_matches('=');
        let cfg = decode(&format!("  {unpadded}\n")).unwrap();
        assert_eq!(cfg.agent_id, 42);
        assert_eq!(cfg.token, "s3cret");
    }

    #[test]
    fn defaults_work_folder() {
        let runner = r#"{"agentId": 7, "agentName": "x", "serverUrl": "http://h:1"}"#;
        let cfg = decode(&encode_for_tests(runner, CREDS)).unwrap();
        assert_eq!(cfg.work_folder, "_work");
        assert_eq!(cfg.server_url, "http://h:1");
        assert!(!cfg.ephemeral);
    }

    #[test]
    fn rejects_non_base64() {
        assert_eq!(decode("not base64 !!"), Err(JitError::Base64));
        assert_eq!(
            decode("not base64 !!").unwrap_err().to_string(),
            "the JIT config is not valid base64"
        );
    }

    #[test]
    fn rejects_non_object() {
        let enc = STANDARD.encode("[1,2]");
        assert!(matches!(decode(&enc), Err(JitError::Outer(_))));
    }

    #[test]
    fn rejects_missing_files() {
        let enc = STANDARD.encode(r#"{".credentials": "e30="}"#);
        assert_eq!(decode(&enc), Err(JitError::MissingFile(".runner")));
        let files = serde_json::json!({".runner": STANDARD.encode(RUNNER)});
        let enc = STANDARD.encode(files.to_string());
        assert_eq!(decode(&enc), Err(JitError::MissingFile(".credentials")));
        assert_eq!(
            decode(&enc).unwrap_err().to_string(),
            "the JIT config has no .credentials file"
        );
    }

    #[test]
    fn rejects_bad_file_contents() {
        let files = serde_json::json!({".runner": "%%%", ".credentials": STANDARD.encode(CREDS)});
        let enc = STANDARD.encode(files.to_string());
        assert_eq!(decode(&enc), Err(JitError::FileBase64(".runner")));

        let enc = encode_for_tests(r#"{"agentName": "no id"}"#, CREDS);
        assert!(matches!(
            decode(&enc),
            Err(JitError::FileJson(".runner", _))
        ));
    }

    #[test]
    fn rejects_missing_token() {
        let enc = encode_for_tests(RUNNER, r#"{"scheme": "OAuthAccessToken", "data": {}}"#);
        assert_eq!(decode(&enc), Err(JitError::NoToken));
        let enc = encode_for_tests(RUNNER, r#"{"scheme": "OAuthAccessToken"}"#);
        assert_eq!(decode(&enc), Err(JitError::NoToken));
    }

    #[test]
    fn rejects_bad_server_url() {
        let runner = r#"{"agentId": 7, "serverUrl": "https://h"}"#;
        assert_eq!(
            decode(&encode_for_tests(runner, CREDS)),
            Err(JitError::BadServerUrl("https://h".to_string()))
        );
        assert_eq!(
            decode(&encode_for_tests(runner, CREDS))
                .unwrap_err()
                .to_string(),
            "the JIT config's serverUrl \"https://h\" is not an http:// URL"
        );
    }
}

//! Unpacks a JIT config into the settings files the runner reads at start-up.
//!
//! docs/github-runner.md: the encoded config is base64 of a JSON object mapping file names
//! (`.runner`, `.credentials`, `.credentials_rsaparams`) to base64 file contents. Given
//! `--jitconfig`, the runner does nothing more than write each of those files into its root
//! folder and start as a configured runner (actions/runner, `Runner.ExecuteCommand`). podrunner
//! writes the files for it instead, so the config never sits in any process's argv or
//! environment (`/proc/PID/environ` keeps a process's start-up environment for its whole life,
//! whatever the runner unsets later).

use super::Secret;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;

/// The files a JIT config must hold for the runner to start (docs/github-runner.md).
pub const REQUIRED_FILES: [&str; 2] = [".runner", ".credentials"];

/// One settings file: its name inside the runner's root folder and its bytes.
pub struct SettingsFile {
    pub name: String,
    pub content: Secret,
}

impl std::fmt::Debug for SettingsFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SettingsFile({}, ***)", self.name)
    }
}

/// Why a JIT config could not be unpacked. Never carries any of the config's text.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JitError {
    #[error("the JIT config from GitHub is not base64")]
    Base64,
    #[error("the JIT config from GitHub is not a JSON object of base64 strings")]
    NotAnObject,
    #[error("the JIT config from GitHub names a file {0:?}, which is not a plain dot-file name")]
    BadName(String),
    #[error("the JIT config from GitHub has no {0} file")]
    Missing(&'static str),
}

/// A name the runner would write into its root folder: a dot-file, no path separators, so
/// the container's entrypoint cannot be made to write anywhere else.
fn plain_dot_file(name: &str) -> bool {
    name.len() > 1
        && name.len() <= 64
        && name.starts_with('.')
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

/// Decodes the JIT config into its settings files, sorted by name.
pub fn settings_files(encoded: &Secret) -> Result<Vec<SettingsFile>, JitError> {
    let outer = B64
        .decode(encoded.expose().trim())
        .map_err(|_| JitError::Base64)?;
    let map: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&outer).map_err(|_| JitError::NotAnObject)?;
    let mut files = Vec::with_capacity(map.len());
    for (name, value) in map {
        if !plain_dot_file(&name) {
            return Err(JitError::BadName(name));
        }
        let text = value.as_str().ok_or(JitError::NotAnObject)?;
        let bytes = B64.decode(text.trim()).map_err(|_| JitError::NotAnObject)?;
        // The settings files are JSON text; anything else is not what the runner reads.
        let content = String::from_utf8(bytes).map_err(|_| JitError::NotAnObject)?;
        files.push(SettingsFile {
            name,
            content: Secret::new(content),
        });
    }
    for required in REQUIRED_FILES {
        if !files.iter().any(|f| f.name == required) {
            return Err(JitError::Missing(required));
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(pairs: &[(&str, &str)]) -> Secret {
        let map: serde_json::Map<String, serde_json::Value> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), serde_json::Value::String(B64.encode(v))))
            .collect();
        Secret::new(B64.encode(serde_json::to_vec(&map).unwrap()))
    }

    #[test]
    fn unpacks_the_three_files() {
        let enc = encode(&[
            (".runner", "{\"agentId\":7}"),
            (".credentials", "{\"scheme\":\"OAuth\"}"),
            (".credentials_rsaparams", "{\"d\":\"x\"}"),
        ]);
        let files = settings_files(&enc).unwrap();
        let got: Vec<(&str, &str)> = files
            .iter()
            .map(|f| (f.name.as_str(), f.content.expose()))
            .collect();
        assert_eq!(
            got,
            vec![
                (".credentials", "{\"scheme\":\"OAuth\"}"),
                (".credentials_rsaparams", "{\"d\":\"x\"}"),
                (".runner", "{\"agentId\":7}"),
            ]
        );
        assert_eq!(format!("{:?}", files[0]), "SettingsFile(.credentials, ***)");
    }

    #[test]
    fn refuses_names_that_leave_the_root_folder() {
        for bad in [
            "../.runner",
            "/etc/passwd",
            "runner",
            ".",
            "..",
            ".a/b",
            ".a b",
        ] {
            let enc = encode(&[(".runner", "{}"), (".credentials", "{}"), (bad, "{}")]);
            assert_eq!(
                settings_files(&enc).unwrap_err(),
                JitError::BadName(bad.to_string()),
                "{bad}"
            );
        }
    }

    #[test]
    fn refuses_what_is_not_a_jit_config() {
        assert_eq!(
            settings_files(&Secret::new("not base64!".into())).unwrap_err(),
            JitError::Base64
        );
        assert_eq!(
            settings_files(&Secret::new(B64.encode("[1,2]"))).unwrap_err(),
            JitError::NotAnObject
        );
        assert_eq!(
            settings_files(&Secret::new(B64.encode("{\".runner\":\"%%%\"}"))).unwrap_err(),
            JitError::NotAnObject
        );
        assert_eq!(
            settings_files(&encode(&[(".runner", "{}")])).unwrap_err(),
            JitError::Missing(".credentials")
        );
    }
}

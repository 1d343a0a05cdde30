//! The JIT handoff: how the runner's registration gets from GitHub's answer into the runner
//! inside its container, without ever sitting in a process's argv or environment.
//!
//! 1. [`settings_files`] unpacks the JIT config into the settings files the runner reads at
//!    start-up. docs/github-runner.md: the encoded config is base64 of a JSON object mapping
//!    file names (`.runner`, `.credentials`, `.credentials_rsaparams`) to base64 file
//!    contents. Given `--jitconfig`, the runner does nothing more than write each of those
//!    files into its root folder and start as a configured runner (actions/runner,
//!    `Runner.ExecuteCommand`). podrunner writes the files for it instead, so the config never
//!    sits in any process's argv or environment (`/proc/PID/environ` keeps a process's
//!    start-up environment for its whole life, whatever the runner unsets later).
//! 2. [`write_secret`] writes them into the runner's secret folder ([`super::paths`]), mounted
//!    at [`SECRET_MOUNT`].
//! 3. The container's entrypoint ([`entrypoint_script`], generated from the same constants)
//!    moves them into the runner's root folder and starts the runner.

use crate::github::Secret;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Where the secret folder is mounted inside a runner container.
pub const SECRET_MOUNT: &str = "/run/podrunner";
/// The file inside [`SECRET_MOUNT`] holding a JIT config of a shape podrunner cannot unpack
/// (see [`entrypoint_script`]); normally absent.
pub const SECRET_FILE: &str = "jitconfig";
/// The file inside [`SECRET_MOUNT`] naming the settings files there, one per line: the
/// container's user may not list the folder.
pub const SETTINGS_INDEX: &str = "settings";
/// The runner's environment variable that stands for `--jitconfig` (docs/github-runner.md).
pub const JITCONFIG_ENV: &str = "ACTIONS_RUNNER_INPUT_JITCONFIG";
/// The secret folder's mode: the container's user may enter it (it must delete the files
/// after moving them) but not list it.
const SECRET_DIR_MODE: u32 = 0o733;
/// The mode of each file in it: readable, never writable, by the container's user.
const SECRET_FILE_MODE: u32 = 0o444;

/// The entrypoint wrapper, run as `sh -c SCRIPT podrunner-entry RUNNER_DIR COMMAND...`.
///
/// Normally [`SECRET_MOUNT`] holds the runner's settings files unpacked from the JIT config
/// (`.runner`, `.credentials`, `.credentials_rsaparams`): the wrapper moves them into the
/// runner's root folder, which is all the runner itself does with `--jitconfig`, and then runs
/// the pool's command. The config is then in no process's argv or environment, not in
/// `podman inspect`, and it costs no extra podman call. The files are deleted from the mount,
/// so a job cannot find them there.
///
/// Only when GitHub's config could not be unpacked does the mount hold it whole, as
/// [`SECRET_FILE`]; it then goes to the runner as [`JITCONFIG_ENV`] (docs/github-runner.md),
/// which the runner understands whatever the config's shape.
pub fn entrypoint_script() -> String {
    format!(
        "d={SECRET_MOUNT}; root=$1; shift; \
if [ -f \"$d/{SECRET_FILE}\" ]; then \
{JITCONFIG_ENV}=$(cat \"$d/{SECRET_FILE}\") || exit 1; rm -f \"$d/{SECRET_FILE}\"; \
export {JITCONFIG_ENV}; \
elif [ -f \"$d/{SETTINGS_INDEX}\" ]; then for n in $(cat \"$d/{SETTINGS_INDEX}\"); do \
(umask 077; cat \"$d/$n\" > \"$root/$n\") || {{ \
echo \"podrunner: cannot write the runner's settings into $root: set the pool's runner_dir to the folder holding run.sh\" >&2; exit 1; }}; \
rm -f \"$d/$n\"; done; rm -f \"$d/{SETTINGS_INDEX}\"; fi; exec \"$@\""
    )
}

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

fn mkdir_mode(p: &Path, mode: u32) -> std::io::Result<()> {
    std::fs::create_dir_all(p)?;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
}

/// Writes the runner's settings, unpacked from the JIT config, into `dir` (its secret
/// folder), where the container's entrypoint moves them into the runner's root folder. The
/// folder is open to the container's user (it must delete the files after moving them) but
/// sits inside the runtime directory, which only the manager's user can enter.
pub fn write_secret(dir: &Path, secret: &Secret) -> std::io::Result<()> {
    mkdir_mode(dir, SECRET_DIR_MODE)?;
    let write = |name: &str, content: &str| {
        let f = dir.join(name);
        std::fs::write(&f, content)?;
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(SECRET_FILE_MODE))
    };
    match settings_files(secret) {
        Ok(files) => {
            files
                .iter()
                .try_for_each(|f| write(&f.name, f.content.expose()))?;
            let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
            // Written last: the entrypoint finds either everything or nothing.
            write(SETTINGS_INDEX, &(names.join("\n") + "\n"))
        }
        Err(e) => {
            // The runner understands any shape it is given whole (see entrypoint_script).
            tracing::warn!("{e}; handing it to the runner whole, through its environment");
            write(SECRET_FILE, secret.expose())
        }
    }
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

    /// The script as it was written by hand before it was generated from the constants.
    const SCRIPT_BEFORE: &str = "d=/run/podrunner; root=$1; shift; \
if [ -f \"$d/jitconfig\" ]; then \
ACTIONS_RUNNER_INPUT_JITCONFIG=$(cat \"$d/jitconfig\") || exit 1; rm -f \"$d/jitconfig\"; \
export ACTIONS_RUNNER_INPUT_JITCONFIG; \
elif [ -f \"$d/settings\" ]; then for n in $(cat \"$d/settings\"); do \
(umask 077; cat \"$d/$n\" > \"$root/$n\") || { \
echo \"podrunner: cannot write the runner's settings into $root: set the pool's runner_dir to the folder holding run.sh\" >&2; exit 1; }; \
rm -f \"$d/$n\"; done; rm -f \"$d/settings\"; fi; exec \"$@\"";

    #[test]
    fn the_entrypoint_uses_the_constants() {
        assert_eq!(entrypoint_script(), SCRIPT_BEFORE);
    }

    fn read_dir(d: &Path) -> Vec<(String, String, u32)> {
        let mut v: Vec<(String, String, u32)> = std::fs::read_dir(d)
            .unwrap()
            .flatten()
            .map(|e| {
                let mode = e.metadata().unwrap().permissions().mode() & 0o777;
                let text = std::fs::read_to_string(e.path()).unwrap();
                (e.file_name().to_string_lossy().into_owned(), text, mode)
            })
            .collect();
        v.sort();
        v
    }

    #[test]
    fn jit_config_is_unpacked_into_settings_files() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("r-1");
        let enc = encode(&[
            (".runner", "{\"agentId\":1}"),
            (".credentials", "{\"data\":{}}"),
        ]);
        write_secret(&dir, &enc).unwrap();
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o733, "the container's user may enter, not list");
        assert_eq!(
            read_dir(&dir),
            vec![
                (".credentials".into(), "{\"data\":{}}".into(), 0o444),
                (".runner".into(), "{\"agentId\":1}".into(), 0o444),
                ("settings".into(), ".credentials\n.runner\n".into(), 0o444),
            ]
        );
    }

    #[test]
    fn a_jit_config_of_unknown_shape_is_handed_over_whole() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("r-2");
        write_secret(&dir, &Secret::new("opaque-v2-config".into())).unwrap();
        assert_eq!(
            read_dir(&dir),
            vec![("jitconfig".into(), "opaque-v2-config".into(), 0o444)]
        );
    }
}

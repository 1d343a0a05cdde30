//! Bind sources pinned by descriptor (docs/docker.md, "Bind sources"): the proxy checks a
//! container's bind sources on the host, but the engine mounts them later, at start, by path;
//! a job that swaps a checked folder of its work folder for a symbolic link in between would
//! have the engine mount what the link names. So every source below the runner's work folder
//! of a create the proxy lets through is opened inside the engine's namespaces without
//! following links and bind-mounted at a path of the engine's own that no job can change
//! (`podrunner engine-pin`, commands/engine_pin.rs); the engine gets that path instead.

use super::policy::caps::map_docker_sources;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The proxy's arguments for pinning.
#[derive(Debug, Clone, Default, PartialEq, clap::Args)]
pub struct PinArgs {
    /// Where pins are made (in the engine's run folder, which no job reaches)
    #[arg(long)]
    pub pin_dir: Option<PathBuf>,
    /// A folder whose bind sources are pinned: the runner's work folder (repeatable)
    #[arg(long)]
    pub pin_within: Vec<PathBuf>,
}

impl PinArgs {
    pub fn to_argv(&self) -> Vec<String> {
        let mut a: Vec<String> = self
            .pin_dir
            .iter()
            .map(|d| format!("--pin-dir={}", d.display()))
            .collect();
        a.extend(
            self.pin_within
                .iter()
                .map(|w| format!("--pin-within={}", w.display())),
        );
        a
    }
}

/// One engine's pins: a mount each, kept until the engine goes (a job's containers are few; a
/// job that makes more than this many is refused rather than fill the mount table).
pub const MAX_PINS: u64 = 4096;
/// One `engine-pin` run: a few system calls.
const PIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a create could not be pinned: the 403 the client gets.
#[derive(Debug, thiserror::Error)]
pub enum PinError {
    #[error("podrunner: {field}: {path} changed after it was checked ({why}): not created")]
    Changed {
        field: String,
        path: String,
        why: String,
    },
    #[error(
        "podrunner: this runner's engine has made {MAX_PINS} bind mounts, the most one job may"
    )]
    TooMany,
}

#[derive(Debug)]
pub struct Pins {
    dir: PathBuf,
    within: Vec<PathBuf>,
    engine_pid_file: PathBuf,
    exe: PathBuf,
    made: AtomicU64,
}

impl Pins {
    /// Pinning as configured; `None` when not (the open policy, no launcher).
    pub fn new(args: &PinArgs, engine_pid_file: Option<&Path>, exe: PathBuf) -> Option<Pins> {
        Some(Pins {
            dir: args.pin_dir.clone()?,
            within: args.pin_within.clone(),
            engine_pid_file: engine_pid_file?.to_path_buf(),
            exe,
            made: AtomicU64::new(0),
        })
        .filter(|p| !p.within.is_empty())
    }

    /// The folder of `within` that `source` lies in, if any.
    fn root_of(&self, source: &str) -> Option<&Path> {
        self.within
            .iter()
            .find(|w| Path::new(source).starts_with(w))
            .map(PathBuf::as_path)
    }

    /// A create body (as the engine gets it, sources checked) with each bind source below a
    /// pinned folder replaced by its pin.
    pub async fn pin_body(&self, body: Vec<u8>) -> Result<Vec<u8>, PinError> {
        let Ok(mut m) = serde_json::from_slice::<Map<String, Value>>(&body) else {
            return Ok(body);
        };
        let Some(Value::Object(h)) = m.get_mut("HostConfig") else {
            return Ok(body);
        };
        let mut sources: Vec<(String, String)> = Vec::new();
        for (field, source) in bind_sources(h) {
            if self.root_of(&source).is_some() && !sources.iter().any(|(_, s)| *s == source) {
                sources.push((field, source));
            }
        }
        let mut pinned: Vec<(String, String)> = Vec::new();
        for (field, source) in sources {
            let within = self.root_of(&source).expect("filtered above");
            match self.pin(&field, within, &source).await? {
                Some(pin) => pinned.push((source, pin)),
                None => return Ok(body), // the engine is not sandboxed: nothing to pin in
            }
        }
        if pinned.is_empty() {
            return Ok(body);
        }
        map_docker_sources(h, &|s| {
            pinned
                .iter()
                .find(|(source, _)| source == s)
                .map(|(_, pin)| pin.clone())
        });
        Ok(serde_json::to_vec(&m).expect("a JSON value serializes"))
    }

    /// Pins `source` (below `within`, named by request field `field`): the pin's path, or
    /// `None` when the engine is not sandboxed.
    async fn pin(
        &self,
        field: &str,
        within: &Path,
        source: &str,
    ) -> Result<Option<String>, PinError> {
        let n = self.made.fetch_add(1, Ordering::SeqCst);
        if n >= MAX_PINS {
            return Err(PinError::TooMany);
        }
        // Named by this proxy's pid too: a proxy started again for the same engine (its
        // folder kept) never meets a pin of its predecessor.
        let pin = self.dir.join(format!("{}-{n}", std::process::id()));
        let args = [
            "engine-pin".to_string(),
            format!("--engine-pid-file={}", self.engine_pid_file.display()),
            format!("--within={}", within.display()),
            format!("--source={source}"),
            format!("--pin={}", pin.display()),
        ];
        let out = crate::cmd::run_env(&self.exe.display().to_string(), &args, &[], PIN_TIMEOUT)
            .await
            .map_err(|e| PinError::Changed {
                field: field.to_string(),
                path: source.to_string(),
                why: e.stderr().trim().trim_start_matches("error: ").to_string(),
            })?;
        let out = String::from_utf8_lossy(&out).trim().to_string();
        Ok((!out.is_empty()).then_some(out))
    }
}

/// Every bind source of a Docker `HostConfig` with the field it is in.
fn bind_sources(h: &Map<String, Value>) -> Vec<(String, String)> {
    let mut v = Vec::new();
    if let Some(Value::Array(binds)) = h.get("Binds") {
        for (i, b) in binds.iter().enumerate() {
            if let Some(src) = b.as_str().and_then(|t| t.split(':').next()) {
                v.push((format!("HostConfig.Binds[{i}]"), src.to_string()));
            }
        }
    }
    if let Some(Value::Array(mounts)) = h.get("Mounts") {
        for (i, m) in mounts.iter().enumerate() {
            if m.get("Type").and_then(Value::as_str) == Some("bind") {
                if let Some(src) = m.get("Source").and_then(Value::as_str) {
                    v.push((format!("HostConfig.Mounts[{i}].Source"), src.to_string()));
                }
            }
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bind_sources_name_their_field() {
        let h = json!({
            "Binds": ["/w/a:/a", "/w/b:/b:ro", "vol:/v"],
            "Mounts": [
                {"Type": "volume", "Source": "v", "Target": "/v2"},
                {"Type": "bind", "Source": "/w/c", "Target": "/c"}
            ]
        });
        assert_eq!(
            bind_sources(h.as_object().unwrap()),
            [
                ("HostConfig.Binds[0]".to_string(), "/w/a".to_string()),
                ("HostConfig.Binds[1]".to_string(), "/w/b".to_string()),
                ("HostConfig.Binds[2]".to_string(), "vol".to_string()),
                (
                    "HostConfig.Mounts[1].Source".to_string(),
                    "/w/c".to_string()
                ),
            ]
        );
    }

    #[test]
    fn only_sources_below_the_work_folder_are_pinned() {
        let p = Pins::new(
            &PinArgs {
                pin_dir: Some("/run/e/k/pins".into()),
                pin_within: vec!["/w/r1".into()],
            },
            Some(Path::new("/run/e/k/engine.pid")),
            "/usr/bin/podrunner".into(),
        )
        .unwrap();
        assert_eq!(p.root_of("/w/r1/_work/x"), Some(Path::new("/w/r1")));
        assert_eq!(p.root_of("/w/r1"), Some(Path::new("/w/r1")));
        assert_eq!(p.root_of("/w/r10/x"), None);
        assert_eq!(p.root_of("/run/e/k/docker.sock"), None);
        assert!(Pins::new(&PinArgs::default(), Some(Path::new("/p")), "/x".into()).is_none());
    }
}

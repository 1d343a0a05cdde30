//! The Podman adapter: every `podman` invocation podrunner makes is built here and run through
//! [`crate::cmd`]. It knows Podman's flags and JSON, nothing about GitHub or pools.

pub mod info;
pub mod types;

use crate::cmd::{self, CommandError};
use crate::runner::jit;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;
use tokio::io::AsyncBufReadExt;
pub use types::{Event, PsEntry};

/// Labels on every container podrunner creates. With these and GitHub's runner list the whole
/// state can be rebuilt after a restart.
pub mod labels {
    pub const MANAGED: &str = "podrunner.managed";
    pub const INSTANCE: &str = "podrunner.instance";
    pub const POOL: &str = "podrunner.pool";
    pub const RUNNER_ID: &str = "podrunner.runner-id";
    pub const RUNNER_NAME: &str = "podrunner.runner-name";
    pub const SCOPE: &str = "podrunner.scope";
}

/// Short podman calls (ps, rm, version): they answer in well under a second on an idle host,
/// but a loaded 2-core machine with 50 containers starting can take several seconds.
pub const QUICK_TIMEOUT: Duration = Duration::from_secs(60);
/// `podman run -d` may have to set up storage for a large image the first time.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(300);
/// Hidden overrides of [`RUN_TIMEOUT`] and [`QUICK_TIMEOUT`] in seconds, for tests that make
/// a podman call hang: the real values are too long to wait out in a test.
pub const RUN_TIMEOUT_ENV: &str = "PODRUNNER_PODMAN_RUN_TIMEOUT_SECS";
pub const QUICK_TIMEOUT_ENV: &str = "PODRUNNER_PODMAN_QUICK_TIMEOUT_SECS";

fn timeout_from_env(var: &str, default: Duration) -> Duration {
    std::env::var(var)
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|s| *s > 0)
        .map_or(default, Duration::from_secs)
}

/// `podman pull` may fetch a whole runner image (about 1 GB) on a slow line.
pub const PULL_TIMEOUT: Duration = Duration::from_secs(1800);
/// Set in every runner container: a runner whose version GitHub refuses then exits 7 instead of
/// 0, so the manager can tell (docs/runner-output.md).
pub const RUNNER_ENV: &[(&str, &str)] =
    &[("ACTIONS_RUNNER_RETURN_VERSION_DEPRECATED_EXIT_CODE", "1")];

/// How to reach podman: the program and the arguments that precede every subcommand.
#[derive(Debug, Clone)]
pub struct Podman {
    program: String,
    global_args: Vec<String>,
    run_timeout: Duration,
    quick_timeout: Duration,
}

/// Everything `podman run` needs for one runner container.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSpec {
    pub name: String,
    pub image: String,
    pub command: Vec<String>,
    /// The runner's root folder inside the image (where its settings files go).
    pub runner_dir: String,
    pub labels: BTreeMap<String, String>,
    pub limits: crate::runner::Limits,
    pub stop_timeout_secs: u64,
    /// Host folder holding the runner's settings files; mounted at [`jit::SECRET_MOUNT`].
    pub secret_dir: PathBuf,
    /// Host work folder, mounted at the same path inside.
    pub work_dir: PathBuf,
    /// The container's log file (k8s-file driver); it outlives the container.
    pub log_path: PathBuf,
    /// Where podman writes the container's main process id (watched for a fast exit signal).
    pub container_pidfile: Option<PathBuf>,
    pub extra_args: Vec<String>,
}

impl RunSpec {
    /// The arguments after `podman`: `run -d --rm ... IMAGE COMMAND...`.
    pub fn to_args(&self) -> Vec<String> {
        let mut a: Vec<String> = vec![
            "run".into(),
            "-d".into(),
            "--rm".into(),
            "--name".into(),
            self.name.clone(),
        ];
        for (k, v) in &self.labels {
            a.push("--label".into());
            a.push(format!("{k}={v}"));
        }
        a.extend(self.limits.podman_flags());
        a.push(format!("--stop-timeout={}", self.stop_timeout_secs));
        for (k, v) in RUNNER_ENV {
            a.push(format!("--env={k}={v}"));
        }
        a.push("--log-driver=k8s-file".into());
        a.push(format!("--log-opt=path={}", self.log_path.display()));
        if let Some(p) = &self.container_pidfile {
            a.push(format!("--pidfile={}", p.display()));
        }
        a.push("-v".into());
        a.push(format!(
            "{}:{}:Z",
            self.secret_dir.display(),
            jit::SECRET_MOUNT
        ));
        a.push("-v".into());
        a.push(format!("{0}:{0}:Z", self.work_dir.display()));
        a.push(format!(
            "--entrypoint={}",
            serde_json::to_string(&[
                "/bin/sh",
                "-c",
                &jit::entrypoint_script(),
                "podrunner-entry"
            ])
            .expect("strings serialize")
        ));
        a.extend(self.extra_args.iter().cloned());
        a.push(self.image.clone());
        a.push(self.runner_dir.clone());
        a.extend(self.command.iter().cloned());
        a
    }
}

impl Podman {
    pub fn new(program: &str, runtime: Option<&str>, global_args: &[String]) -> Podman {
        let mut g = Vec::new();
        if let Some(r) = runtime {
            g.push(format!("--runtime={r}"));
        }
        g.extend(global_args.iter().cloned());
        Podman {
            program: program.to_string(),
            global_args: g,
            run_timeout: timeout_from_env(RUN_TIMEOUT_ENV, RUN_TIMEOUT),
            quick_timeout: timeout_from_env(QUICK_TIMEOUT_ENV, QUICK_TIMEOUT),
        }
    }

    pub fn from_config(c: &crate::config::PodmanConfig) -> Podman {
        Podman::new(&c.path, c.runtime.as_deref(), &c.global_args)
    }

    /// The podman program: a path or a name looked up on PATH.
    pub fn program(&self) -> &str {
        &self.program
    }

    /// The arguments before every subcommand (`--runtime=...` and the configured ones).
    pub fn global_args(&self) -> &[String] {
        &self.global_args
    }

    fn args(&self, rest: &[&str]) -> Vec<String> {
        self.global_args
            .iter()
            .cloned()
            .chain(rest.iter().map(|s| s.to_string()))
            .collect()
    }

    /// Runs `podman ARGS` with a timeout; returns stdout.
    pub async fn call(&self, rest: &[&str], timeout: Duration) -> Result<Vec<u8>, CommandError> {
        cmd::run(&self.program, &self.args(rest), None, timeout).await
    }

    /// Starts a runner container detached; returns its id.
    pub async fn run(&self, spec: &RunSpec) -> Result<String, CommandError> {
        let mut args = self.global_args.clone();
        args.extend(spec.to_args());
        let out = cmd::run(&self.program, &args, None, self.run_timeout).await?;
        Ok(String::from_utf8_lossy(&out)
            .trim()
            .lines()
            .last()
            .unwrap_or("")
            .to_string())
    }

    /// All containers carrying `label=value`, running or not.
    pub async fn ps(&self, label: &str, value: &str) -> anyhow::Result<Vec<PsEntry>> {
        let filter = format!("label={label}={value}");
        let out = self
            .call(
                &["ps", "-a", "--filter", &filter, "--format", "json"],
                self.quick_timeout,
            )
            .await?;
        types::parse_ps(&out).map_err(|e| anyhow::anyhow!("cannot parse `podman ps` output: {e}"))
    }

    /// `podman stop -t SECS NAME`: SIGTERM, then SIGKILL after the timeout.
    pub async fn stop(&self, name: &str, timeout_secs: u64) -> Result<(), CommandError> {
        let t = timeout_secs.to_string();
        self.call(
            &["stop", "--ignore", "-t", &t, name],
            Duration::from_secs(timeout_secs) + self.quick_timeout,
        )
        .await
        .map(drop)
    }

    /// Removes a container whatever its state; a missing one is not an error.
    pub async fn rm_force(&self, name: &str) -> Result<(), CommandError> {
        self.call(
            &["rm", "--force", "--ignore", "-t", "0", name],
            self.quick_timeout,
        )
        .await
        .map(drop)
    }

    pub async fn version(&self) -> anyhow::Result<types::VersionInfo> {
        let out = self
            .call(&["version", "--format", "json"], self.quick_timeout)
            .await?;
        Ok(serde_json::from_slice(&out)?)
    }

    /// Whether an image is in local storage.
    pub async fn image_exists(&self, image: &str) -> Result<bool, CommandError> {
        match self
            .call(&["image", "exists", image], self.quick_timeout)
            .await
        {
            Ok(_) => Ok(true),
            Err(CommandError::Failed { code: Some(1), .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The id of a local image, `None` when there is none of that name.
    pub async fn image_id(&self, image: &str) -> Result<Option<String>, CommandError> {
        match self
            .call(
                &["image", "inspect", "--format", "{{.Id}}", image],
                self.quick_timeout,
            )
            .await
        {
            Ok(out) => Ok(Some(String::from_utf8_lossy(&out).trim().to_string())),
            Err(e)
                if e.stderr().contains("image not known")
                    || e.stderr().contains("no such image") =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// `podman pull --quiet REFERENCE` (any transport: `docker://`, `oci-archive:`,
    /// `docker-archive:`, `dir:`, `containers-storage:`); returns the pulled image's id.
    pub async fn pull(&self, reference: &str) -> Result<String, CommandError> {
        let out = self
            .call(&["pull", "--quiet", reference], PULL_TIMEOUT)
            .await?;
        Ok(String::from_utf8_lossy(&out)
            .trim()
            .lines()
            .last()
            .unwrap_or("")
            .to_string())
    }

    /// `podman tag SOURCE TARGET`.
    pub async fn tag(&self, source: &str, target: &str) -> Result<(), CommandError> {
        self.call(&["tag", source, target], self.quick_timeout)
            .await
            .map(drop)
    }

    /// Removes an image no container uses; refused (an error) while one does. A missing
    /// image is no error.
    pub async fn image_rm(&self, id: &str) -> Result<(), CommandError> {
        match self.call(&["image", "rm", id], self.quick_timeout).await {
            Err(e) if e.stderr().contains("image not known") => Ok(()),
            r => r.map(drop),
        }
    }

    /// Streams container events for containers carrying `label=value` into `tx` until the
    /// podman process ends or `tx` is closed. Returns why it ended.
    pub async fn stream_events(
        &self,
        label: &str,
        value: &str,
        tx: tokio::sync::mpsc::Sender<Event>,
    ) -> anyhow::Result<()> {
        let filter = format!("label={label}={value}");
        let args = self.args(&[
            "events",
            "--format",
            "json",
            "--filter",
            "type=container",
            "--filter",
            &filter,
        ]);
        let mut child = cmd::spawn_piped(&self.program, &args)?;
        let stdout = child.stdout.take().expect("piped");
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        while let Some(line) = lines.next_line().await? {
            if let Some(ev) = types::parse_event(&line) {
                if tx.send(ev).await.is_err() {
                    return Ok(());
                }
            }
        }
        let out = child.wait_with_output().await?;
        anyhow::bail!(
            "`podman events` ended ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )
    }

    /// `podman unshare rm -rf PATH`: removes files that a rootless container's subordinate ids
    /// own, which the user cannot delete directly.
    pub async fn unshare_remove(&self, path: &std::path::Path) -> Result<(), CommandError> {
        let p = path.display().to_string();
        self.call(&["unshare", "rm", "-rf", "--", &p], self.quick_timeout)
            .await
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_args_exact() {
        let spec = RunSpec {
            name: "r-1".into(),
            image: "img".into(),
            command: vec!["/home/runner/run.sh".into()],
            runner_dir: "/home/runner".into(),
            labels: [("podrunner.pool".to_string(), "p".to_string())].into(),
            limits: crate::runner::Limits {
                cpus: Some(1.5),
                memory: Some(536870912),
                pids: 4096,
            },
            stop_timeout_secs: 60,
            secret_dir: "/run/s".into(),
            work_dir: "/w/r-1".into(),
            log_path: "/st/r-1.log".into(),
            container_pidfile: Some("/st/r-1.pid".into()),
            extra_args: vec!["--network=host".into()],
        };
        let a = spec.to_args();
        let joined = a.join(" ");
        assert!(joined.starts_with("run -d --rm --name r-1 --label podrunner.pool=p --cpus=1.5 --memory=536870912b --pids-limit=4096 --stop-timeout=60 --env=ACTIONS_RUNNER_RETURN_VERSION_DEPRECATED_EXIT_CODE=1 --log-driver=k8s-file --log-opt=path=/st/r-1.log --pidfile=/st/r-1.pid -v /run/s:/run/podrunner:Z -v /w/r-1:/w/r-1:Z --entrypoint="), "{joined}");
        assert!(
            joined.ends_with("--network=host img /home/runner /home/runner/run.sh"),
            "{joined}"
        );
        let ep = a.iter().find(|s| s.starts_with("--entrypoint=")).unwrap();
        let v: Vec<String> = serde_json::from_str(ep.trim_start_matches("--entrypoint=")).unwrap();
        assert_eq!(v[0], "/bin/sh");
        assert_eq!(v[2], jit::entrypoint_script());
    }

    #[test]
    fn runtime_goes_first() {
        let p = Podman::new("podman", Some("runc"), &["--root=/x".into()]);
        assert_eq!(p.args(&["ps"]), vec!["--runtime=runc", "--root=/x", "ps"]);
    }
}

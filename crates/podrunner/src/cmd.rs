//! The one place that runs external programs (podman, systemctl, journalctl, loginctl).
//!
//! Every call is logged at debug level with its full command line, so argv must never carry a
//! secret: secrets go through stdin or files. Each call has a timeout, the child is killed if
//! the future is dropped, and stderr's tail is kept for the error message.

// The workspace forbids `Command::new` (clippy.toml) everywhere but here.
#![allow(
    clippy::disallowed_methods,
    reason = "the one module that runs external programs"
)]

use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// How much of stderr an error message keeps: enough for Podman's multi-line errors.
const STDERR_TAIL_BYTES: usize = 2048;

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("cannot run `{cmdline}`: {source}")]
    Spawn {
        cmdline: String,
        source: std::io::Error,
    },
    #[error("`{cmdline}` did not finish within {}s and was killed", timeout.as_secs())]
    Timeout { cmdline: String, timeout: Duration },
    #[error("`{cmdline}` failed ({status}): {stderr}")]
    Failed {
        cmdline: String,
        status: String,
        code: Option<i32>,
        stderr: String,
    },
}

impl CommandError {
    pub fn stderr(&self) -> &str {
        match self {
            CommandError::Failed { stderr, .. } => stderr,
            _ => "",
        }
    }
    pub fn is_not_found(&self) -> bool {
        matches!(self, CommandError::Spawn { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    }
}

/// Renders a command line for logs and messages, quoting arguments that need it.
pub fn render(program: &str, args: &[String]) -> String {
    let mut s = program.to_string();
    for a in args {
        s.push(' ');
        if a.is_empty()
            || a.chars()
                .any(|c| c.is_whitespace() || "'\"$`\\;&|<>*?()".contains(c))
        {
            s.push('\'');
            s.push_str(&a.replace('\'', "'\\''"));
            s.push('\'');
        } else {
            s.push_str(a);
        }
    }
    s
}

fn tail(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(bytes);
    let s = s.trim();
    if s.len() <= STDERR_TAIL_BYTES {
        return s.to_string();
    }
    let mut start = s.len() - STDERR_TAIL_BYTES;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    format!("...{}", &s[start..])
}

/// Variables systemd gives the manager alone: a child must not notify for it (podman's default
/// `--sdnotify=container` passes `NOTIFY_SOCKET` on to conmon and the container).
pub const SERVICE_MANAGER_ENV: [&str; 3] = ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"];

/// Starts `program args` with stdout and stderr piped, for a caller that reads the output as
/// it comes (`podman events`): logged like every call, killed when the handle is dropped and
/// when the manager dies; no timeout, it runs as long as its reader wants.
pub fn spawn_piped(program: &str, args: &[String]) -> Result<tokio::process::Child, CommandError> {
    let cmdline = render(program, args);
    tracing::debug!(target: "podrunner::cmd", "running {cmdline}");
    let mut cmd = tokio::process::Command::new(program);
    crate::sys::end_with_parent(&mut cmd);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| CommandError::Spawn { cmdline, source })
}

/// Runs `program args`, feeding `stdin` if given, and returns stdout on success.
pub async fn run(
    program: &str,
    args: &[String],
    stdin: Option<&[u8]>,
    timeout: Duration,
) -> Result<Vec<u8>, CommandError> {
    run_with(program, args, stdin, &[], timeout).await
}

/// [`run`] without stdin, with the variables `env` set (e.g. `CONTAINERS_CONF`).
pub async fn run_env(
    program: &str,
    args: &[String],
    env: &[(&str, &std::ffi::OsStr)],
    timeout: Duration,
) -> Result<Vec<u8>, CommandError> {
    run_with(program, args, None, env, timeout).await
}

async fn run_with(
    program: &str,
    args: &[String],
    stdin: Option<&[u8]>,
    env: &[(&str, &std::ffi::OsStr)],
    timeout: Duration,
) -> Result<Vec<u8>, CommandError> {
    let cmdline = render(program, args);
    tracing::debug!(target: "podrunner::cmd", "running {cmdline}");
    let mut cmd = tokio::process::Command::new(program);
    for k in SERVICE_MANAGER_ENV {
        cmd.env_remove(k);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|source| CommandError::Spawn {
        cmdline: cmdline.clone(),
        source,
    })?;
    if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // A child that exits without reading stdin is not our error: its status tells.
        let _ = pipe.write_all(data).await;
        drop(pipe);
    }
    let out = match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(r) => r.map_err(|source| CommandError::Spawn {
            cmdline: cmdline.clone(),
            source,
        })?,
        Err(_) => return Err(CommandError::Timeout { cmdline, timeout }),
    };
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(CommandError::Failed {
            cmdline,
            status: out.status.to_string(),
            code: out.status.code(),
            stderr: tail(&out.stderr),
        })
    }
}

/// Runs `program args` on the terminal (stdin, stdout and stderr inherited), e.g.
/// `journalctl -f`, and returns its exit code. `None` timeout: until it exits.
pub async fn run_inherit(
    program: &str,
    args: &[String],
    timeout: Option<Duration>,
) -> Result<i32, CommandError> {
    let cmdline = render(program, args);
    tracing::debug!(target: "podrunner::cmd", "running {cmdline}");
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| CommandError::Spawn {
            cmdline: cmdline.clone(),
            source,
        })?;
    let status = match timeout {
        None => child.wait().await,
        Some(t) => match tokio::time::timeout(t, child.wait()).await {
            Ok(r) => r,
            Err(_) => {
                return Err(CommandError::Timeout {
                    cmdline,
                    timeout: t,
                })
            }
        },
    }
    .map_err(|source| CommandError::Spawn {
        cmdline: cmdline.clone(),
        source,
    })?;
    Ok(status.code().unwrap_or(1))
}

/// Replaces this process with `program args` (same pid, process group and environment), for
/// a launcher that only prepares what the program runs in. Returns only on failure.
pub fn exec_replace(program: &str, args: &[String]) -> CommandError {
    use std::os::unix::process::CommandExt;
    let cmdline = render(program, args);
    tracing::debug!(target: "podrunner::cmd", "executing {cmdline}");
    let source = std::process::Command::new(program).args(args).exec();
    CommandError::Spawn { cmdline, source }
}

/// Starts `program args` detached, to outlive this process: in its own process group (a
/// Ctrl-C or hangup at the terminal does not reach it), stdin from /dev/null, stdout and
/// stderr appended to `output`, and the variables in `env_remove` unset.
pub fn spawn_detached(
    program: &std::path::Path,
    args: &[String],
    output: &std::path::Path,
    env_remove: &[&str],
) -> Result<std::process::Child, CommandError> {
    spawn_detached_env(program, args, output, env_remove, &[])
}

/// [`spawn_detached`] with variables `env_set` set for the child (e.g. `CONTAINERS_CONF` for
/// a per-runner engine, crate::engine).
pub fn spawn_detached_env(
    program: &std::path::Path,
    args: &[String],
    output: &std::path::Path,
    env_remove: &[&str],
    env_set: &[(&str, &std::ffi::OsStr)],
) -> Result<std::process::Child, CommandError> {
    use std::os::unix::process::CommandExt;
    let cmdline = render(&program.display().to_string(), args);
    tracing::debug!(target: "podrunner::cmd", "starting in the background: {cmdline}");
    let spawn_err = |source| CommandError::Spawn {
        cmdline: cmdline.clone(),
        source,
    };
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(output)
        .map_err(spawn_err)?;
    let err = out.try_clone().map_err(spawn_err)?;
    let mut cmd = std::process::Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0);
    for k in env_remove {
        cmd.env_remove(k);
    }
    for (k, v) in env_set {
        cmd.env(k, v);
    }
    cmd.spawn().map_err(spawn_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_quotes() {
        let args = vec![
            "run".to_string(),
            "a b".to_string(),
            "it's".to_string(),
            "".into(),
        ];
        assert_eq!(render("podman", &args), "podman run 'a b' 'it'\\''s' ''");
    }

    #[tokio::test]
    async fn run_reports_failure_timeout_and_missing() {
        let out = run(
            "sh",
            &["-c".into(), "cat".into()],
            Some(b"hi"),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        assert_eq!(out, b"hi");
        let e = run(
            "sh",
            &["-c".into(), "echo bad >&2; exit 3".into()],
            None,
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(&e, CommandError::Failed { code: Some(3), stderr, .. } if stderr == "bad"),
            "{e}"
        );
        let e = run("sleep", &["5".into()], None, Duration::from_millis(100))
            .await
            .unwrap_err();
        assert!(matches!(e, CommandError::Timeout { .. }));
        let e = run("/nonexistent/x", &[], None, Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(e.is_not_found());
    }
}

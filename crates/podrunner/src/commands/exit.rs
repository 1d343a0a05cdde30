//! The one place that turns how a command ended into the process's exit code, and that prints
//! a failed command's error. Commands return `anyhow::Result<Exit>`: an [`Exit`] when they
//! ran to the end (some end in a state that has its own code), an error with context when
//! they could not. The codes are documented (README, docs/systemd.md) and scripts rely on
//! them: they change only together with those pages.

use crate::config::ConfigError;

/// The command did what it was asked.
pub const SUCCESS: i32 = 0;
/// The command failed; its error says what and why.
pub const FAILURE: i32 = 1;
/// The config file or a command-line value is invalid: nothing was done, and trying again
/// cannot help (the systemd unit's `RestartPreventExitStatus=`, docs/systemd.md).
pub const INVALID: i32 = 2;
/// The manager is not running (as `systemctl status` uses 3 for an inactive unit).
pub const NOT_RUNNING: i32 = 3;

/// How a command that ran to its end finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Success,
    /// The command has already printed what went wrong (a doctor finding, a warning).
    Failure,
    /// It found no manager running, and said so.
    NotRunning,
    /// The exit code of a program it ran in the foreground (`logs` under systemd: journalctl).
    Passed(i32),
}

impl Exit {
    pub fn code(self) -> i32 {
        match self {
            Exit::Success => SUCCESS,
            Exit::Failure => FAILURE,
            Exit::NotRunning => NOT_RUNNING,
            Exit::Passed(code) => code,
        }
    }
}

/// Errors of the command edge that carry their own exit code or are printed as they are.
#[derive(Debug, thiserror::Error)]
pub enum Failed {
    /// A command-line value is invalid (exit [`INVALID`]); printed after `error: `.
    #[error("{0}")]
    Invalid(String),
    /// A state rather than a fault ("still draining after 30s"): printed as is, exit
    /// [`FAILURE`].
    #[error("{0}")]
    Plain(String),
    /// No manager is running: printed as is, exit [`NOT_RUNNING`].
    #[error("{0}")]
    NotRunning(String),
}

/// Prints a failed command's error and returns the exit code of `result`.
pub fn report(result: anyhow::Result<Exit>) -> i32 {
    let e = match result {
        Ok(exit) => return exit.code(),
        Err(e) => e,
    };
    match e.downcast_ref::<Failed>() {
        Some(Failed::Plain(m)) => {
            eprintln!("{m}");
            FAILURE
        }
        Some(Failed::NotRunning(m)) => {
            eprintln!("{m}");
            NOT_RUNNING
        }
        Some(Failed::Invalid(m)) => {
            eprintln!("error: {m}");
            INVALID
        }
        None => {
            eprintln!("error: {}", message(&e));
            if e.downcast_ref::<ConfigError>().is_some() {
                INVALID
            } else {
                FAILURE
            }
        }
    }
}

/// The error and its causes, each cause once: typed errors often already name their source
/// in their own message, and a context names what was being done.
pub fn message(e: &anyhow::Error) -> String {
    let mut s = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !s.contains(&c) {
            s.push_str(": ");
            s.push_str(&c);
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn codes_and_messages() {
        assert_eq!(report(Ok(Exit::Success)), 0);
        assert_eq!(report(Ok(Exit::Failure)), 1);
        assert_eq!(report(Ok(Exit::NotRunning)), 3);
        assert_eq!(report(Err(Failed::Invalid("x".into()).into())), 2);
        assert_eq!(report(Err(Failed::NotRunning("x".into()).into())), 3);
        assert_eq!(report(Err(Failed::Plain("x".into()).into())), 1);
        let config = ConfigError::File {
            path: "/c.toml".into(),
            message: "m".into(),
            fix: "f".into(),
        };
        assert_eq!(report(Err(config.into())), 2);
        let io = std::io::Error::other("disk full");
        let e = Err::<(), _>(io).context("cannot write /x").unwrap_err();
        assert_eq!(message(&e), "cannot write /x: disk full");
        // A typed error that already names its source is not repeated.
        let e = anyhow::Error::new(crate::cmd::CommandError::Spawn {
            cmdline: "podman".into(),
            source: std::io::Error::other("no such file"),
        });
        assert_eq!(message(&e), "cannot run `podman`: no such file");
    }
}

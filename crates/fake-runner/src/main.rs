//! `fake-runner`: stands in for GitHub's `run.sh` (Runner.Listener) in JIT mode inside
//! podrunner's test image. It takes exactly one job from fake-github over the fake runner
//! protocol (docs/test-bench.md), runs it with `sh -c`, reports it and exits, printing the lines
//! the real runner prints (docs/test-bench.md, "What the fake runner prints", names the
//! actions/runner files each line comes from). Exit codes and signal behaviour are the real
//! listener's too.

mod api;
mod jit;
mod job;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Sender};
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use api::{ApiError, Client, Completion, Job};

pub const VERSION: &str = "2.999.0-fake";

/// Listener exit codes (docs/github-runner.md, "Exit codes"; docs/runner-output.md).
pub const EXIT_SUCCESS: i32 = 0;
pub const EXIT_TERMINATED: i32 = 1;
pub const EXIT_RETRYABLE: i32 = 2;
/// An ephemeral runner exits to update itself (`RunOnceRunnerUpdating`).
pub const EXIT_RUN_ONCE_UPDATING: i32 = 4;
pub const EXIT_SESSION_CONFLICT: i32 = 5;
/// GitHub refused the version, with [`DEPRECATED_EXIT_ENV`] set (`RunnerVersionDeprecated`).
pub const EXIT_VERSION_DEPRECATED: i32 = 7;

/// With this set to a true value the listener exits 7 instead of 1 when GitHub refuses its
/// version (`Program.cs`, `GetRunnerVersionDeprecatedExitCode`).
pub const DEPRECATED_EXIT_ENV: &str = "ACTIONS_RUNNER_RETURN_VERSION_DEPRECATED_EXIT_CODE";
/// Test knob: act as a runner whose version GitHub refuses (the real refusal comes from the
/// server when the session is created).
pub const DEPRECATED_KNOB: &str = "FAKE_RUNNER_DEPRECATED";
/// Test knob: act as a runner told to update itself to this version before its first job;
/// it updates once (a marker in its root remembers), like the real one that then runs the
/// new version.
pub const UPDATE_KNOB: &str = "FAKE_RUNNER_UPDATE_TO";
/// Test knob: the server to talk to instead of the JIT config's, e.g. an unreachable one for
/// a runner that never comes online.
pub const SERVER_URL_KNOB: &str = "FAKE_RUNNER_SERVER_URL";
/// The marker of a done update, in the runner's root.
const UPDATED_MARKER: &str = ".fake-runner-updated";

/// The environment variable the runner reads `--jitconfig` from.
pub const JITCONFIG_ENV: &str = "ACTIONS_RUNNER_INPUT_JITCONFIG";
const INPUT_ENV_PREFIX: &str = "ACTIONS_RUNNER_INPUT_";
/// Where the runner's settings files are (see [`runner_root`]).
pub const ROOT_ENV: &str = "FAKE_RUNNER_ROOT";

/// Writes an error line to stderr in one write, as .NET's `Console.Error.WriteLine` does:
/// `eprintln!` writes the pieces of its format one by one, which a container log records as
/// partial lines.
macro_rules! error_line {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = std::io::stderr().write_all(format!("{}\n", format!($($arg)*)).as_bytes());
    }};
}

/// What the main thread waits for.
#[derive(Debug)]
pub enum Event {
    Signal(i32),
    Acquired(Result<Job, ApiError>),
    JobExited(std::process::ExitStatus),
    OutputDone,
}

/// Prints a line with the runner's timestamp prefix (`2024-01-02 03:04:05Z: ...`).
pub fn log(msg: &str) {
    println!("{}: {msg}", timestamp(SystemTime::now()));
}

/// `YYYY-MM-DD HH:MM:SSZ` in UTC (the runner's log prefix: RFC 3339 with a space).
pub fn timestamp(t: SystemTime) -> String {
    let t = t.max(UNIX_EPOCH);
    humantime::format_rfc3339_seconds(t)
        .to_string()
        .replacen('T', " ", 1)
}

/// The command line, as far as the fake understands it.
#[derive(Debug, PartialEq, Eq)]
enum Cli {
    Run { jitconfig: Option<String> },
    Version,
    Help,
}

/// A command line the fake (like the runner) refuses; the text is the runner's message.
#[derive(Debug, PartialEq, Eq)]
enum ArgsError {
    MissingValue(&'static str),
    Unrecognized(String),
}

impl std::fmt::Display for ArgsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ArgsError::MissingValue(flag) => write!(f, "'{flag}' needs a value"),
            ArgsError::Unrecognized(arg) => {
                write!(f, "Unrecognized command-line input arguments: '{arg}'.")
            }
        }
    }
}

fn parse_args(args: &[String]) -> Result<Cli, ArgsError> {
    let mut jitconfig = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--version" => return Ok(Cli::Version),
            "--help" | "-h" => return Ok(Cli::Help),
            "--jitconfig" => match it.next() {
                Some(v) => jitconfig = Some(v.clone()),
                None => return Err(ArgsError::MissingValue("--jitconfig")),
            },
            other => match other.strip_prefix("--jitconfig=") {
                Some(v) => jitconfig = Some(v.to_string()),
                None => return Err(ArgsError::Unrecognized(other.to_string())),
            },
        }
    }
    Ok(Cli::Run { jitconfig })
}

/// The JIT config: the command line wins over the environment (like the runner's
/// CommandSettings); an empty value counts as absent.
fn pick_jitconfig(arg: Option<String>, env: Option<String>) -> Option<String> {
    arg.into_iter().chain(env).find(|v| !v.trim().is_empty())
}

/// The runner's root folder, where its settings files live: `FAKE_RUNNER_ROOT` (the test
/// image's run.sh sets it to its own folder, as the real runner's root holds run.sh), else the
/// current folder.
fn runner_root() -> PathBuf {
    std::env::var_os(ROOT_ENV)
        .map(PathBuf::from)
        .or_else(|| std::env::current_dir().ok())
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The externals folder of an update to `target`, laid out as the runner's update script does
/// (actions/runner, update.sh.template): the running version's folder is moved aside to
/// `externals.OLD` and `externals` becomes a symlink to `externals.NEW`, here holding only the
/// marker file the test image's externals have, naming the new version.
fn switch_externals(root: &Path, target: &str) -> std::io::Result<()> {
    let new = root.join(format!("externals.{target}"));
    std::fs::create_dir_all(&new)?;
    std::fs::write(
        new.join("podrunner-marker"),
        format!("externals-of-runner-{target}\n"),
    )?;
    let current = root.join("externals");
    if current.is_symlink() {
        std::fs::remove_file(&current)?;
    } else if current.exists() {
        let aside = root.join(format!("externals.{VERSION}"));
        // Like `mv`: overlayfs refuses to rename a folder of a lower layer (EXDEV).
        if std::fs::rename(&current, &aside).is_err() {
            copy_tree(&current, &aside)?;
            std::fs::remove_dir_all(&current)?;
        }
    }
    std::os::unix::fs::symlink(&new, &current)
}

fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let dest = to.join(e.file_name());
        if e.file_type()?.is_dir() {
            copy_tree(&e.path(), &dest)?;
        } else {
            std::fs::copy(e.path(), dest)?;
        }
    }
    Ok(())
}

fn main() {
    // Read and scrub ACTIONS_RUNNER_INPUT_* first, before any thread exists, like the runner
    // does: the job must never see the JIT config.
    let env_jit = std::env::var(JITCONFIG_ENV).ok();
    let input_vars: Vec<OsString> = std::env::vars_os()
        .map(|(k, _)| k)
        .filter(|k| k.to_string_lossy().starts_with(INPUT_ENV_PREFIX))
        .collect();
    for k in &input_vars {
        std::env::remove_var(k);
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    std::process::exit(run(&args, env_jit));
}

fn run(args: &[String], env_jit: Option<String>) -> i32 {
    let jit_arg = match parse_args(args) {
        Ok(Cli::Version) => {
            println!("{VERSION}");
            return EXIT_SUCCESS;
        }
        Ok(Cli::Help) => {
            println!("fake-runner {VERSION}: run.sh --jitconfig <encoded> (or {JITCONFIG_ENV}=<encoded>)");
            return EXIT_SUCCESS;
        }
        Ok(Cli::Run { jitconfig }) => jitconfig,
        Err(e) => {
            println!("{e}");
            return EXIT_TERMINATED;
        }
    };
    // Like Runner.Listener: a JIT config given on the command line or in the environment wins;
    // without one, the runner runs from the settings files in its root folder.
    let loaded = match pick_jitconfig(jit_arg, env_jit) {
        Some(encoded) => Some(jit::decode(&encoded)),
        None => jit::load_dir(&runner_root()),
    };
    let cfg = match loaded {
        None => {
            println!(
                "An error occurred: Not configured. Run config.(sh/cmd) to configure the runner."
            );
            return EXIT_TERMINATED;
        }
        Some(Err(e)) => {
            println!("An error occurred: Invalid JIT configuration: {e}.");
            return EXIT_TERMINATED;
        }
        Some(Ok(c)) => c,
    };

    let (tx, rx) = mpsc::channel::<Event>();
    // Explicit handlers are a must: as PID 1 in a container, signals without a handler are
    // dropped by the kernel.
    let mut signals = match Signals::new([SIGTERM, SIGINT]) {
        Ok(s) => s,
        Err(e) => {
            println!("An error occurred: cannot install signal handlers: {e}");
            return EXIT_TERMINATED;
        }
    };
    let sig_tx = tx.clone();
    thread::spawn(move || {
        for sig in signals.forever() {
            if sig_tx.send(Event::Signal(sig)).is_err() {
                break;
            }
        }
    });

    if env_true(DEPRECATED_KNOB) {
        // Program.cs: `An error occurred: {e.Message}` through WriteError (stderr); the message
        // is the server's.
        error_line!("An error occurred: Runner version v{VERSION} is deprecated and cannot receive messages.");
        return if env_true(DEPRECATED_EXIT_ENV) {
            EXIT_VERSION_DEPRECATED
        } else {
            EXIT_TERMINATED
        };
    }
    if let Some(target) = std::env::var(UPDATE_KNOB).ok().filter(|v| !v.is_empty()) {
        let marker = runner_root().join(UPDATED_MARKER);
        if !marker.exists() {
            print_banner();
            // SelfUpdaterV2.cs, in order; an ephemeral runner then exits 4.
            println!("Runner update in progress, do not shutdown runner.");
            println!("Downloading {target} runner");
            println!("Generate and execute update script.");
            println!(
                "Runner will exit shortly for update, should be back online within 10 seconds."
            );
            let _ = std::fs::write(&marker, &target);
            if let Err(e) = switch_externals(&runner_root(), &target) {
                error_line!("cannot lay out the externals of {target}: {e}");
            }
            return EXIT_RUN_ONCE_UPDATING;
        }
    }

    // Test knob: talk to another server than the JIT config's (e.g. one that is not there).
    let server_url = std::env::var(SERVER_URL_KNOB)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| cfg.server_url.clone());
    let mut client = Client::new(&server_url, cfg.agent_id, &cfg.token);
    if let Some(secs) = std::env::var("FAKE_RUNNER_RETRY_SECS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        client.retry_window = Duration::from_secs(secs);
    }
    let client = std::sync::Arc::new(client);

    {
        let client = std::sync::Arc::clone(&client);
        let tx = tx.clone();
        thread::spawn(move || acquire_loop(&client, &tx));
    }

    let job = loop {
        match rx.recv() {
            Ok(Event::Signal(_)) => {
                log("The runner has received a shutdown signal.");
                println!("Exiting...");
                return EXIT_SUCCESS;
            }
            Ok(Event::Acquired(Ok(job))) => break job,
            Ok(Event::Acquired(Err(e))) => return report_fatal(&e),
            Ok(_) => {}
            Err(_) => return EXIT_TERMINATED,
        }
    };

    log(&format!("Running job: {}", job.display_id()));
    let work_dir = {
        let p = PathBuf::from(&cfg.work_folder);
        if p.is_absolute() {
            p
        } else {
            std::env::current_dir()
                .unwrap_or_else(|_| PathBuf::from("/"))
                .join(p)
        }
    };
    let job_env = vec![
        ("RUNNER_NAME".to_string(), cfg.agent_name.clone()),
        ("RUNNER_OS".to_string(), "Linux".to_string()),
        ("RUNNER_ARCH".to_string(), "X64".to_string()),
        (
            "RUNNER_WORKSPACE".to_string(),
            work_dir.display().to_string(),
        ),
        ("GITHUB_ACTIONS".to_string(), "true".to_string()),
        ("CI".to_string(), "true".to_string()),
        ("GITHUB_JOB_ID".to_string(), job.display_id()),
        ("GITHUB_RUN_ID".to_string(), job.display_id()),
    ];
    let env_remove: Vec<String> = vec![JITCONFIG_ENV.to_string()];
    let result = job::run(&job, &work_dir, &job_env, &env_remove, &rx, &tx);
    let (conclusion, exit_code) = job::conclude(result.ended);

    let completion = Completion {
        job_id: job.job_id.clone(),
        conclusion: conclusion.api_name(),
        exit_code,
        output: result.output,
    };
    if let Err(e) = client.with_retry("Reporting the job result", || {
        client.complete_once(&completion)
    }) {
        return report_fatal(&e);
    }
    log(&format!(
        "Job {} completed with result: {}",
        job.display_id(),
        conclusion.result_word()
    ));
    if cfg.ephemeral {
        println!("√ Removed .credentials");
        println!("√ Removed .runner");
    }
    EXIT_SUCCESS
}

/// Connects (a `wait=0` acquire, which marks the runner online), prints the banner, then
/// long-polls until a job is assigned. The result goes to the main thread.
fn acquire_loop(client: &Client, tx: &Sender<Event>) {
    let first = client.with_retry("Runner connect error", || client.acquire_once(0));
    let result = match first {
        Err(e) => Err(e),
        Ok(maybe_job) => {
            print_banner();
            match maybe_job {
                Some(job) => Ok(job),
                None => loop {
                    match client.with_retry("Runner connect error", || client.acquire_once(30)) {
                        Ok(Some(job)) => break Ok(job),
                        Ok(None) => {}
                        Err(e) => break Err(e),
                    }
                },
            }
        }
    };
    let _ = tx.send(Event::Acquired(result));
}

/// What the runner prints once it has a session: `BrokerMessageListener.cs` ("Connected to
/// GitHub", a success message) and `Runner.cs` (version, then the timestamped "Listening for
/// Jobs").
fn print_banner() {
    println!("√ Connected to GitHub");
    println!();
    println!("Current runner version: '{VERSION}'");
    log("Listening for Jobs");
}

fn env_true(var: &str) -> bool {
    std::env::var(var).is_ok_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true"))
}

/// Prints a final error the way the runner does (`Terminal.WriteError`: stderr) and returns
/// its exit code.
fn report_fatal(e: &ApiError) -> i32 {
    match e {
        // MessageListener.cs / BrokerMessageListener.cs, a 404 while getting messages.
        ApiError::NotFound(_) => error_line!(
            "The runner no longer exists on the server. Please reconfigure the runner."
        ),
        ApiError::Unauthorized(body) => error_line!(
            "An error occurred: Access denied: the server rejected the runner's credentials. ({body})"
        ),
        ApiError::Conflict(body) => error_line!(
            "A session for this runner already exists. ({body})"
        ),
        ApiError::Network(_) | ApiError::Server(..) => error_line!(
            "An error occurred: Could not talk to the server, giving up for now (retryable): {e}"
        ),
        ApiError::Client(..) | ApiError::BadAnswer(_) => error_line!("An error occurred: {e}"),
    }
    e.exit_code()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn parses_the_command_line() {
        assert_eq!(parse_args(&[]), Ok(Cli::Run { jitconfig: None }));
        assert_eq!(
            parse_args(&s(&["--jitconfig", "abc"])),
            Ok(Cli::Run {
                jitconfig: Some("abc".into())
            })
        );
        assert_eq!(
            parse_args(&s(&["--jitconfig=abc="])),
            Ok(Cli::Run {
                jitconfig: Some("abc=".into())
            })
        );
        assert_eq!(parse_args(&s(&["--version"])), Ok(Cli::Version));
        assert_eq!(
            parse_args(&s(&["--jitconfig"])).map_err(|e| e.to_string()),
            Err("'--jitconfig' needs a value".into())
        );
        assert_eq!(
            parse_args(&s(&["--once"])).map_err(|e| e.to_string()),
            Err("Unrecognized command-line input arguments: '--once'.".into())
        );
    }

    #[test]
    fn argument_wins_over_environment() {
        assert_eq!(
            pick_jitconfig(Some("a".into()), Some("e".into())),
            Some("a".into())
        );
        assert_eq!(pick_jitconfig(None, Some("e".into())), Some("e".into()));
        assert_eq!(
            pick_jitconfig(Some(" ".into()), Some("e".into())),
            Some("e".into())
        );
        assert_eq!(pick_jitconfig(None, Some("".into())), None);
        assert_eq!(pick_jitconfig(None, None), None);
    }

    #[test]
    fn missing_or_bad_config_exits_1() {
        assert_eq!(run(&[], None), 1);
        assert_eq!(run(&s(&["--jitconfig", "%%%"]), None), 1);
        assert_eq!(run(&s(&["--bogus"]), None), 1);
        assert_eq!(run(&s(&["--version"]), None), 0);
    }

    #[test]
    fn formats_timestamps_like_the_runner() {
        assert_eq!(timestamp(UNIX_EPOCH), "1970-01-01 00:00:00Z");
        assert_eq!(
            timestamp(UNIX_EPOCH + Duration::from_secs(1_709_251_199)),
            "2024-02-29 23:59:59Z"
        );
        assert_eq!(
            timestamp(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29 00:00:00Z"
        );
    }

    #[test]
    fn a_deprecated_version_exits_7_only_when_asked() {
        let enc = jit::encode_for_tests(
            r#"{"agentId": 1, "agentName": "r", "serverUrl": "http://127.0.0.1:9"}"#,
            r#"{"scheme": "OAuthAccessToken", "data": {"token": "t"}}"#,
        );
        std::env::set_var(DEPRECATED_KNOB, "1");
        std::env::remove_var(DEPRECATED_EXIT_ENV);
        assert_eq!(run(&[], Some(enc.clone())), EXIT_TERMINATED);
        std::env::set_var(DEPRECATED_EXIT_ENV, "1");
        assert_eq!(run(&[], Some(enc)), EXIT_VERSION_DEPRECATED);
        std::env::remove_var(DEPRECATED_KNOB);
    }

    #[test]
    fn unreachable_server_exits_2_after_the_retry_window() {
        // Port 9 (discard) on loopback: nothing listens, connections are refused at once.
        let enc = jit::encode_for_tests(
            r#"{"agentId": 1, "agentName": "r", "serverUrl": "http://127.0.0.1:9"}"#,
            r#"{"scheme": "OAuthAccessToken", "data": {"token": "t"}}"#,
        );
        std::env::set_var("FAKE_RUNNER_RETRY_SECS", "0");
        assert_eq!(run(&[], Some(enc)), 2);
    }
}

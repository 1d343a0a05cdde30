//! The sd_notify protocol, as the manager speaks it: `READY=1` after the first reconcile,
//! `WATCHDOG=1` at half of `WATCHDOG_USEC`, `STATUS=` with a one-line summary when it changes,
//! and `STOPPING=1` when a drain begins. Each message is one datagram to `NOTIFY_SOCKET`.
//!
//! [`Notifier`] takes the socket and the watchdog interval as values, so tests point it at a
//! real datagram socket; [`Notifier::from_env`] is the only place that reads the environment.
//! Outside systemd every method is a no-op.
//!
//! The sd-notify crate reads `NOTIFY_SOCKET` from the environment at every call; podrunner
//! must remove it from its environment at start-up (podman passes it on to conmon and the
//! containers otherwise), so the one-datagram send lives here, with the address as a value.

use std::io;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Where notifications go, as `NOTIFY_SOCKET` names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotifyAddr {
    Path(PathBuf),
    /// `@name`: a Linux abstract socket.
    Abstract(Vec<u8>),
}

impl NotifyAddr {
    /// Parses `NOTIFY_SOCKET`: a path, or `@name` for an abstract socket.
    pub fn parse(s: &str) -> Option<NotifyAddr> {
        if let Some(name) = s.strip_prefix('@') {
            Some(NotifyAddr::Abstract(name.as_bytes().to_vec()))
        } else if s.starts_with('/') {
            Some(NotifyAddr::Path(s.into()))
        } else {
            None
        }
    }

    fn socket_addr(&self) -> io::Result<SocketAddr> {
        match self {
            NotifyAddr::Path(p) => SocketAddr::from_pathname(p),
            NotifyAddr::Abstract(n) => {
                use std::os::linux::net::SocketAddrExt;
                SocketAddr::from_abstract_name(n)
            }
        }
    }
}

/// The watchdog interval systemd asked for: `WATCHDOG_USEC`, if `WATCHDOG_PID` is unset or is
/// this process (systemd.exec(5); a child must not ping for its parent).
pub fn watchdog_interval(usec: Option<&str>, pid: Option<&str>, my_pid: u32) -> Option<Duration> {
    if let Some(p) = pid {
        if p.trim().parse::<u32>().ok() != Some(my_pid) {
            return None;
        }
    }
    let us: u64 = usec?.trim().parse().ok()?;
    (us > 0).then(|| Duration::from_micros(us))
}

#[derive(Debug, Default)]
pub struct Notifier {
    addr: Option<NotifyAddr>,
    watchdog: Option<Duration>,
    last_ping: Option<Instant>,
    last_status: Option<String>,
    ready_sent: bool,
    stopping_sent: bool,
}

impl Notifier {
    /// A notifier for `addr`, pinging the watchdog if `watchdog` is set.
    pub fn new(addr: Option<NotifyAddr>, watchdog: Option<Duration>) -> Notifier {
        Notifier {
            addr,
            watchdog,
            ..Notifier::default()
        }
    }

    /// Reads `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID`, then removes them from the
    /// environment: podman inherits the environment, and with `NOTIFY_SOCKET` set it passes the
    /// socket on to conmon and the containers (its default `--sdnotify=container`).
    pub fn from_env() -> Notifier {
        let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let addr = get("NOTIFY_SOCKET").and_then(|s| NotifyAddr::parse(&s));
        let watchdog = watchdog_interval(
            get("WATCHDOG_USEC").as_deref(),
            get("WATCHDOG_PID").as_deref(),
            std::process::id(),
        );
        for k in ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"] {
            std::env::remove_var(k);
        }
        Notifier::new(addr, watchdog)
    }

    /// Whether a service manager listens.
    pub fn enabled(&self) -> bool {
        self.addr.is_some()
    }

    /// How often the watchdog is pinged: half the interval systemd set.
    pub fn ping_every(&self) -> Option<Duration> {
        self.watchdog.filter(|_| self.enabled()).map(|w| w / 2)
    }

    /// Sends one datagram; a no-op outside systemd.
    pub fn send(&self, msg: &str) -> io::Result<()> {
        let Some(addr) = &self.addr else {
            return Ok(());
        };
        let sock = UnixDatagram::unbound()?;
        sock.send_to_addr(msg.as_bytes(), &addr.socket_addr()?)?;
        Ok(())
    }

    fn send_logged(&self, msg: &str) {
        if let Err(e) = self.send(msg) {
            tracing::warn!("cannot notify systemd ({msg}): {e}");
        }
    }

    /// `READY=1`, once.
    pub fn ready(&mut self) {
        if self.enabled() && !self.ready_sent {
            self.ready_sent = true;
            self.send_logged("READY=1");
        }
    }

    /// `STOPPING=1`, once.
    pub fn stopping(&mut self) {
        if self.enabled() && !self.stopping_sent {
            self.stopping_sent = true;
            self.send_logged("STOPPING=1");
        }
    }

    /// `STATUS=line`, when it differs from the last one sent.
    pub fn status(&mut self, line: &str) {
        if self.enabled() && self.last_status.as_deref() != Some(line) {
            self.last_status = Some(line.to_string());
            self.send_logged(&format!("STATUS={line}"));
        }
    }

    /// Pings the watchdog if half its interval has passed since the last ping. Returns
    /// whether it pinged.
    pub fn watchdog_tick(&mut self, now: Instant) -> bool {
        let Some(every) = self.ping_every() else {
            return false;
        };
        if self
            .last_ping
            .is_some_and(|t| now.saturating_duration_since(t) < every)
        {
            return false;
        }
        self.last_ping = Some(now);
        self.send_logged("WATCHDOG=1");
        true
    }
}

/// The `STATUS=` line: e.g. `2/2 runners ready, 5 jobs done` or `draining: 1 runner left`.
pub fn status_line(s: &crate::control::StatusSnapshot) -> String {
    if s.draining {
        let n = s.runners.len();
        return format!("draining: {n} runner{} left", if n == 1 { "" } else { "s" });
    }
    let live: u32 = s.pools.iter().map(|p| p.live).sum();
    let desired: u32 = s.pools.iter().map(|p| p.desired).sum();
    let jobs: u64 = s.pools.iter().map(|p| p.jobs_done).sum();
    let backing_off = s
        .pools
        .iter()
        .filter(|p| p.backing_off_secs.is_some())
        .count();
    let mut line = format!("{live}/{desired} runners up, {jobs} jobs done");
    if backing_off > 0 {
        line.push_str(&format!(", {backing_off} pool(s) backing off"));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchdog_env() {
        assert_eq!(
            watchdog_interval(Some("60000000"), None, 7),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            watchdog_interval(Some("60000000"), Some("7"), 7),
            Some(Duration::from_secs(60))
        );
        assert_eq!(watchdog_interval(Some("60000000"), Some("8"), 7), None);
        assert_eq!(watchdog_interval(Some("0"), None, 7), None);
        assert_eq!(watchdog_interval(Some("x"), None, 7), None);
        assert_eq!(watchdog_interval(None, None, 7), None);
    }

    #[test]
    fn addr_parse() {
        assert_eq!(
            NotifyAddr::parse("/run/user/1000/systemd/notify"),
            Some(NotifyAddr::Path("/run/user/1000/systemd/notify".into()))
        );
        assert_eq!(
            NotifyAddr::parse("@sd"),
            Some(NotifyAddr::Abstract(b"sd".to_vec()))
        );
        assert_eq!(NotifyAddr::parse("relative"), None);
    }

    #[test]
    fn disabled_is_silent() {
        let mut n = Notifier::new(None, Some(Duration::from_secs(1)));
        assert!(!n.enabled());
        assert_eq!(n.ping_every(), None);
        assert!(!n.watchdog_tick(Instant::now()));
        n.ready();
        n.send("READY=1").unwrap();
    }
}

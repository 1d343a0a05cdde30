//! The notify and watchdog protocol against a real `NOTIFY_SOCKET` datagram socket: the exact
//! datagrams the manager's [`Notifier`] sends, and how it reads the environment systemd sets.

use podrunner::systemd::notify::{Notifier, NotifyAddr};
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

/// A datagram socket answers at once; this only guards against a hang.
const RECV_TIMEOUT: Duration = Duration::from_secs(5);

fn recv_all(sock: &UnixDatagram) -> Vec<String> {
    sock.set_nonblocking(true).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = sock.recv(&mut buf) {
        got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    got
}

fn bound() -> (tempfile::TempDir, UnixDatagram, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(RECV_TIMEOUT)).unwrap();
    (dir, sock, path)
}

#[test]
fn ready_status_watchdog_stopping_datagrams() {
    let (_dir, sock, path) = bound();
    let mut n = Notifier::new(
        Some(NotifyAddr::Path(path)),
        Some(Duration::from_millis(200)),
    );
    assert!(n.enabled());
    assert_eq!(n.ping_every(), Some(Duration::from_millis(100)));
    let t0 = Instant::now();
    n.ready();
    n.ready(); // once only
    n.status("1/2 runners up, 0 jobs done");
    n.status("1/2 runners up, 0 jobs done"); // unchanged: not resent
    assert!(n.watchdog_tick(t0));
    assert!(!n.watchdog_tick(t0 + Duration::from_millis(50)));
    assert!(n.watchdog_tick(t0 + Duration::from_millis(100)));
    n.status("2/2 runners up, 1 jobs done");
    n.stopping();
    n.stopping();
    // The first datagram with the blocking timeout, then everything queued.
    let mut buf = [0u8; 4096];
    let len = sock.recv(&mut buf).expect("a datagram within the timeout");
    let mut got = vec![String::from_utf8_lossy(&buf[..len]).into_owned()];
    got.extend(recv_all(&sock));
    assert_eq!(
        got,
        [
            "READY=1",
            "STATUS=1/2 runners up, 0 jobs done",
            "WATCHDOG=1",
            "WATCHDOG=1",
            "STATUS=2/2 runners up, 1 jobs done",
            "STOPPING=1",
        ]
    );
}

#[test]
fn abstract_socket() {
    use std::os::linux::net::SocketAddrExt;
    let name = format!("podrunner-test-{}", std::process::id());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let sock = UnixDatagram::bind_addr(&addr).unwrap();
    sock.set_read_timeout(Some(RECV_TIMEOUT)).unwrap();
    let mut n = Notifier::new(NotifyAddr::parse(&format!("@{name}")), None);
    n.ready();
    assert!(
        !n.watchdog_tick(Instant::now()),
        "no watchdog was asked for"
    );
    let mut buf = [0u8; 64];
    let len = sock.recv(&mut buf).unwrap();
    assert_eq!(&buf[..len], b"READY=1");
}

/// The only test here that touches the process environment.
#[test]
fn from_env_reads_and_clears_the_variables() {
    let (_dir, sock, path) = bound();
    std::env::set_var("NOTIFY_SOCKET", &path);
    std::env::set_var("WATCHDOG_USEC", "60000000");
    std::env::set_var("WATCHDOG_PID", std::process::id().to_string());
    // No child (podman, systemctl) ever sees them, even before the notifier takes them.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let out = rt
        .block_on(podrunner::cmd::run(
            "sh",
            &[
                "-c".into(),
                "echo ${NOTIFY_SOCKET-unset} ${WATCHDOG_USEC-unset}".into(),
            ],
            None,
            RECV_TIMEOUT,
        ))
        .unwrap();
    assert_eq!(out, b"unset unset\n");
    let mut n = Notifier::from_env();
    for k in ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"] {
        assert!(
            std::env::var_os(k).is_none(),
            "{k} must be removed for children"
        );
    }
    assert_eq!(n.ping_every(), Some(Duration::from_secs(30)));
    assert!(n.watchdog_tick(Instant::now()));
    let mut buf = [0u8; 64];
    let len = sock.recv(&mut buf).unwrap();
    assert_eq!(&buf[..len], b"WATCHDOG=1");

    // A watchdog meant for another process is not ours to ping.
    std::env::set_var("NOTIFY_SOCKET", &path);
    std::env::set_var("WATCHDOG_USEC", "60000000");
    std::env::set_var("WATCHDOG_PID", "1");
    let n = Notifier::from_env();
    assert!(n.enabled());
    assert_eq!(n.ping_every(), None);
}

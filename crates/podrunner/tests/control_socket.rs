//! The control protocol over a real unix socket: the CLI's client (`control::request`) against
//! a server built from the manager's own parse and encode functions, with timeouts.

use podrunner::control::{self, ClientError, Request, Response};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

/// A local socket answers at once; this only guards against a hang.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Answers `n` connections the way the manager's server does: one line in, one line out.
async fn serve(listener: UnixListener, n: usize) {
    for _ in 0..n {
        let (stream, _) = listener.accept().await.unwrap();
        let (r, mut w) = stream.into_split();
        let mut line = String::new();
        BufReader::new(r).read_line(&mut line).await.unwrap();
        let resp = match control::parse_request(&line) {
            Ok(Request::Scale { pool, count }) => {
                Response::ok(format!("pool {pool} scaled to {count}"))
            }
            Ok(other) => Response::err(format!("not in this test: {other:?}")),
            Err(e) => Response::err(e.to_string()),
        };
        w.write_all(control::encode_response(&resp).as_bytes())
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn client_and_server_speak_version_1() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("default.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let server = tokio::spawn(serve(listener, 2));

    let req = Request::Scale {
        pool: "ci".into(),
        count: 3,
    };
    let r = tokio::time::timeout(TIMEOUT, control::request(&path, &req))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r, Response::ok("pool ci scaled to 3"));

    // A client speaking another version gets an error naming the one spoken.
    let mut s = UnixStream::connect(&path).await.unwrap();
    s.write_all(b"{\"v\":2,\"cmd\":\"status\"}\n")
        .await
        .unwrap();
    let mut answer = String::new();
    tokio::time::timeout(TIMEOUT, BufReader::new(s).read_line(&mut answer))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        answer,
        "{\"v\":1,\"ok\":false,\"error\":\"protocol version 2 is not spoken here; this manager speaks version 1\"}\n"
    );
    tokio::time::timeout(TIMEOUT, server)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn no_manager_means_not_running() {
    let dir = tempfile::tempdir().unwrap();
    let e = control::request(&dir.path().join("none.sock"), &Request::Status)
        .await
        .unwrap_err();
    assert!(matches!(e, ClientError::NotRunning(_)), "{e}");
}

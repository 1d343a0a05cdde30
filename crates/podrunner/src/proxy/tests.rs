use super::forward::answer_summary;
use super::http::{client_head, rebuilt_answer};
use super::request::{Body, Schema, Special};
use super::*;
use crate::proxy::policy::caps::{Caps, PathMap};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn rules() -> Rules {
    Rules {
        caps: Caps {
            memory: Some(1000),
            cpus: None,
            pids: 7,
        },
        paths: PathMap::default(),
        policy: None,
        pool_hint: String::new(),
        cgroup_parent: None,
    }
}

/// An engine stand-in: answers each connection with 200 "ok" once it has the head and
/// its Content-Length body, and returns what it received.
async fn upstream(l: UnixListener) -> Vec<String> {
    let mut seen = Vec::new();
    while let Ok(Ok((mut s, _))) =
        tokio::time::timeout(Duration::from_millis(500), l.accept()).await
    {
        let mut buf = Vec::new();
        loop {
            let mut chunk = [0u8; 4096];
            let n = s.read(&mut chunk).await.unwrap();
            buf.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&buf).into_owned();
            if let Some(i) = text.find("\r\n\r\n") {
                let len = text[..i]
                    .lines()
                    .find_map(|l| l.strip_prefix("Content-Length: "))
                    .map_or(0, |v| v.parse::<usize>().unwrap());
                if buf.len() >= i + 4 + len || n == 0 {
                    break;
                }
            }
            if n == 0 {
                break;
            }
        }
        s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            .await
            .unwrap();
        s.shutdown().await.unwrap();
        seen.push(String::from_utf8_lossy(&buf).into_owned());
    }
    seen
}

async fn exchange(listen: &Path, request: &[u8]) -> String {
    let mut c = UnixStream::connect(listen).await.unwrap();
    c.write_all(request).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), c.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn checks_requests_and_passes_one_per_connection() {
    let dir = tempfile::tempdir().unwrap();
    let (listen, engine) = (
        dir.path().join("docker.sock"),
        dir.path().join("engine.sock"),
    );
    let up = tokio::spawn(upstream(UnixListener::bind(&engine).unwrap()));
    let (l2, e2) = (listen.clone(), engine.clone());
    let proxy = tokio::spawn(async move { serve(&l2, &e2, rules(), None, None, None).await });
    while UnixStream::connect(&listen).await.is_err() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let body = r#"{"Image":"x","HostConfig":{"Memory":5000}}"#;
    let create = format!(
        "POST /v1.44/containers/create HTTP/1.1\r\nHost: docker\r\nConnection: keep-alive\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    assert!(exchange(&listen, create.as_bytes())
        .await
        .ends_with("\r\n\r\nok"));
    let chunked = "POST /containers/create HTTP/1.1\r\nHost: docker\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"Ima\r\nb\r\nge\":\"y\"}   \r\n0\r\n\r\n";
    assert!(exchange(&listen, chunked.as_bytes()).await.ends_with("ok"));
    // An upgrade asked of a route that has none is dropped; a request smuggled after the
    // first is never sent.
    let ping = "GET /_ping HTTP/1.1\r\nHost: docker\r\nUpgrade: tcp\r\nConnection: Upgrade\r\n\r\nPOST /v1.41/containers/create HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}";
    let pong = exchange(&listen, ping.as_bytes()).await;
    assert!(pong.ends_with("ok"), "{pong}");
    let kube =
        "POST /v4.3.1/libpod/play/kube HTTP/1.1\r\nHost: docker\r\nContent-Length: 0\r\n\r\n";
    let refused = exchange(&listen, kube.as_bytes()).await;
    assert!(
        refused.starts_with("HTTP/1.1 403 Forbidden\r\n"),
        "{refused}"
    );
    assert!(refused.contains("is not available to jobs"), "{refused}");
    let bad = "POST /containers/create HTTP/1.1\r\nContent-Length: 3\r\n\r\n[1]";
    assert!(exchange(&listen, bad.as_bytes())
        .await
        .starts_with("HTTP/1.1 400 Bad Request\r\n"));
    let dup = r#"{"HostConfig":{},"hostConfig":{"Memory":1}}"#;
    let dup = format!(
        "POST /containers/create HTTP/1.1\r\nContent-Length: {}\r\n\r\n{dup}",
        dup.len()
    );
    let refused = exchange(&listen, dup.as_bytes()).await;
    assert!(refused.contains("appears twice"), "{refused}");

    let seen = up.await.unwrap();
    proxy.abort();
    assert_eq!(seen.len(), 3, "{seen:?}");
    let capped = r#"{"HostConfig":{"Memory":1000,"OomScoreAdj":0,"PidsLimit":7},"Image":"x"}"#;
    assert_eq!(
        seen[0],
        format!(
            "POST /v1.41/containers/create HTTP/1.1\r\nHost: docker\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{capped}",
            capped.len()
        )
    );
    let capped = r#"{"HostConfig":{"Memory":1000,"OomScoreAdj":0,"PidsLimit":7},"Image":"y"}"#;
    assert_eq!(
        seen[1],
        format!(
            "POST /containers/create HTTP/1.1\r\nHost: docker\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{capped}",
            capped.len()
        )
    );
    assert_eq!(
        seen[2],
        "GET /_ping HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n"
    );
}

#[test]
fn transient_setup_failures_are_retried_and_nothing_else() {
    let attach = b"HTTP/1.1 409 Conflict\r\nContent-Type: application/json\r\n\r\n{\"cause\":\"x\",\"message\":\"preparing container abc for attach: x\",\"response\":409}";
    assert!(transient_setup_failure(attach));
    assert_eq!(
        answer_summary(attach),
        "HTTP/1.1 409 Conflict: {\"cause\":\"x\",\"message\":\"preparing container abc for attach: x\",\"response\":409}"
    );
    assert!(!transient_setup_failure(
        b"HTTP/1.1 409 Conflict\r\n\r\n{\"message\":\"name already in use\"}"
    ));
    let race = b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\n\r\n{\"message\":\"netavark: code: 1, msg: iptables: Chain already exists.\\n\"}";
    assert!(transient_setup_failure(race));
    assert!(transient_setup_failure(
        b"HTTP/1.1 409 Conflict\r\n\r\n{\"cause\":\"iptables: Chain already exists.\"}"
    ));
    assert!(transient_setup_failure(
        b"HTTP/1.1 500 Internal Server Error\r\n\r\n{\"message\":\"unable to find user runner: no matching entries in passwd file\"}"
    ));
    assert!(!transient_setup_failure(
        b"HTTP/1.1 404 Not Found\r\n\r\n{\"message\":\"unable to find user runner: no matching entries in passwd file\"}"
    ));
    assert!(!transient_setup_failure(b"HTTP/1.1 204 No Content\r\n\r\n"));
    assert!(!transient_setup_failure(
        b"HTTP/1.1 500 Internal Server Error\r\n\r\n{\"message\":\"no such image\"}"
    ));
}

#[test]
fn exec_starts_are_never_retried() {
    for (special, target, retried) in [
        (Special::Start, "/v1.44/containers/abc/start", true),
        (Special::Start, "/v1.44/containers/abc/restart?t=1", true),
        (
            Special::Upgrade,
            "/v1.44/containers/abc/attach?stream=1",
            true,
        ),
        (
            Special::Upgrade,
            "/v4.3.1/libpod/containers/abc/attach",
            true,
        ),
        (Special::Upgrade, "/v1.44/containers/exec/attach", true),
        (Special::Upgrade, "/v1.44/exec/abc/start", false),
        (Special::Upgrade, "/exec/abc/start", false),
        (Special::Upgrade, "/v4.3.1/libpod/exec/abc/start", false),
        (Special::None, "/v1.44/containers/abc/wait", false),
        (Special::Build, "/v1.44/build", false),
    ] {
        assert_eq!(retries_setup(special, target), retried, "{target}");
    }
}

fn contained() -> Rules {
    Rules {
        policy: Some(crate::proxy::policy::Policy {
            allowed: vec!["/w/r-1".into()],
            ..Default::default()
        }),
        pool_hint: " in pool ci".into(),
        ..rules()
    }
}

#[test]
fn plans() {
    let r = contained();
    let p = plan("POST", "/v1.44/containers/create?name=x", &r).unwrap();
    assert_eq!(p.target, "/v1.41/containers/create?name=x");
    assert_eq!(p.body, Body::Json(Schema::ContainerCreate));
    assert_eq!(p.client_version, Some((1, 44)));
    assert_eq!(p.answer, None);
    use super::policy::version::Answer;
    let answer = |t: &str| plan("GET", t, &r).unwrap().answer;
    assert_eq!(
        answer("/v1.44/containers/c/json"),
        Some(Answer::ContainerInspect)
    );
    assert_eq!(answer("/images/a/b:1/json"), Some(Answer::ImageInspect));
    assert_eq!(answer("/v1.41/images/a/json"), None);
    let p = plan("POST", "/v1.40/containers/abc/start", &r).unwrap();
    assert_eq!(p.target, "/v1.40/containers/abc/start");
    assert_eq!(
        (p.special, p.container.as_deref()),
        (Special::Start, Some("abc"))
    );
    let p = plan("POST", "/v1.44/build?t=a&%74=b&memory=0", &r).unwrap();
    assert_eq!(p.target, "/v1.41/build?t=a&t=b&memory=1000&memswap=2000");
    assert_eq!(
        plan("POST", "/exec/e/start", &r).unwrap().special,
        Special::Upgrade
    );
    assert_eq!(plan("GET", "/_ping", &r).unwrap().special, Special::Version);
    for (m, t, status, why) in [
        (
            "POST",
            "/v4.3.1/libpod/containers/create",
            "403",
            "the libpod API",
        ),
        (
            "POST",
            "/v1.41/secrets/create",
            "403",
            "the route POST /secrets/create",
        ),
        (
            "POST",
            "/v1.41.0-x/containers/create",
            "400",
            "/vMAJOR.MINOR",
        ),
        (
            "POST",
            "http://d/v1.41/containers/create",
            "400",
            "origin-form",
        ),
        (
            "POST",
            "/v1.41/build?rusagelogfile=/etc/x",
            "403",
            "\"rusagelogfile\"",
        ),
        (
            "POST",
            "/v1.41/build?outputs=type%3Dlocal%2Cdest%3D%2Fetc",
            "403",
            "outputs",
        ),
        (
            "POST",
            "/v1.41/images/create?fromSrc=/etc/shadow",
            "403",
            "fromSrc",
        ),
        ("GET", "/v1.12/containers/json", "400", "too old"),
    ] {
        let (s, w) = plan(m, t, &r).unwrap_err();
        assert!(s.starts_with(status) && w.contains(why), "{m} {t}: {s} {w}");
        if s.starts_with("403") {
            assert!(w.contains("docker_policy = \"open\" in pool ci"), "{w}");
        }
    }
    // Under "open": libpod passes (capped), unknown routes pass, uncappable libpod does not.
    let open = rules();
    let p = plan("POST", "/v4.3.1/libpod/containers/create", &open).unwrap();
    assert!(p.libpod_create);
    assert_eq!(
        plan("POST", "/v1.41/secrets/create", &open).unwrap().body,
        Body::Stream
    );
    assert!(plan("POST", "/v4.3.1/libpod/play/kube", &open).is_err());
}

#[test]
fn heads() {
    let h = parse_head(b"POST /x HTTP/1.1\r\nHost: d\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 5\r\n\r\n").unwrap();
    assert_eq!(h.framing, Framing::Length(5));
    assert!(h.wants_upgrade);
    assert_eq!(h.headers, [("Host".to_string(), b"d".to_vec())]);
    let h = parse_head(b"GET /x HTTP/1.1\r\nContent-Length: 0\r\n\r\n").unwrap();
    assert_eq!((h.framing, h.wants_upgrade), (Framing::None, false));
    let h = parse_head(b"POST /x HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n").unwrap();
    assert_eq!(h.framing, Framing::Chunked);
    for (raw, why) in [
        (
            &b"POST /x HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n"[..],
            "more than one body length",
        ),
        (
            b"POST /x HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            "more than one body length",
        ),
        (
            b"POST /x HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            "Transfer-Encoding",
        ),
        (
            b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            "Transfer-Encoding",
        ),
        (
            b"POST /x HTTP/1.1\r\nContent-Length: +5\r\n\r\n",
            "Content-Length",
        ),
        (
            b"POST /x HTTP/1.1\r\nContent-Length: 0x5\r\n\r\n",
            "Content-Length",
        ),
        (b"POST /x HTTP/2\r\n\r\n", "malformed"),
    ] {
        let (_, w) = parse_head(raw).unwrap_err();
        assert!(w.contains(why), "{}: {w}", String::from_utf8_lossy(raw));
    }
}

#[test]
fn answers_carry_the_advertised_version() {
    let raw = b"HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    assert_eq!(split_answer(raw), Some((200, b"hello".to_vec())));
    assert_eq!(
        String::from_utf8(rebuilt_answer(raw, b"hi")).unwrap(),
        "HTTP/1.1 200 OK\r\nApi-Version: 1.44\r\nContent-Length: 2\r\n\r\nhi"
    );
    assert_eq!(
        client_head(b"HTTP/1.1 101 UPGRADED\r\nAPI-Version: 1.41\r\nConnection: Upgrade\r\n\r\n"),
        b"HTTP/1.1 101 UPGRADED\r\nApi-Version: 1.44\r\nConnection: Upgrade\r\n\r\n"
    );
}

/// Answers rewritten for the client's version through the proxy: a small inspect rewritten, one
/// larger than the bound passed on unchanged, one of an older client untouched.
#[tokio::test]
async fn answers_are_rewritten_for_the_clients_version() {
    let dir = tempfile::tempdir().unwrap();
    let (listen, engine) = (dir.path().join("d.sock"), dir.path().join("e.sock"));
    let inspect = r#"{"Id":"0123456789abcdef","Name":"/db","NetworkSettings":{"Networks":{"n":{"Aliases":["pg"]}}}}"#;
    let big = format!(
        r#"{{"VirtualSize":1,"Pad":"{}"}}"#,
        "x".repeat(MAX_JSON_BODY)
    );
    let l = UnixListener::bind(&engine).unwrap();
    let (small, large) = (inspect.to_string(), big.clone());
    let up = tokio::spawn(async move {
        for _ in 0..3 {
            let (mut s, _) = l.accept().await.unwrap();
            let mut head = Vec::new();
            while !head.ends_with(b"\r\n\r\n") {
                let mut b = [0u8; 1];
                s.read_exact(&mut b).await.unwrap();
                head.push(b[0]);
            }
            let body = if head.starts_with(b"GET /v1.41/images") {
                &large
            } else {
                &small
            };
            let answer = format!(
                "HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            s.write_all(answer.as_bytes()).await.unwrap();
            s.shutdown().await.unwrap();
        }
    });
    let (l2, e2) = (listen.clone(), engine.clone());
    let proxy = tokio::spawn(async move { serve(&l2, &e2, rules(), None, None, None).await });
    while UnixStream::connect(&listen).await.is_err() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let get = |t: &str| format!("GET {t} HTTP/1.1\r\nHost: docker\r\n\r\n");
    let out = exchange(&listen, get("/v1.44/containers/db/json").as_bytes()).await;
    let want = r#"{"Id":"0123456789abcdef","Name":"/db","NetworkSettings":{"Networks":{"n":{"Aliases":["pg"],"DNSNames":["db","pg","0123456789ab"]}}}}"#;
    assert_eq!(
        out,
        format!(
            "HTTP/1.1 200 OK\r\nApi-Version: 1.44\r\nContent-Length: {}\r\n\r\n{want}",
            want.len()
        )
    );
    let out = exchange(&listen, get("/v1.41/containers/db/json").as_bytes()).await;
    assert!(out.ends_with(&format!("\r\n\r\n{inspect}")), "{out}");
    let out = exchange(&listen, get("/v1.44/images/x/json").as_bytes()).await;
    assert!(out.starts_with("HTTP/1.1 200 OK\r\nApi-Version: 1.44\r\n"));
    assert!(out.ends_with(&format!("\r\n\r\n{big}")));
    up.await.unwrap();
    proxy.abort();
}

//! One connection: the request read and decided, passed on to the engine (retried where a
//! container's setup failed transiently), and the answer passed back.

use super::http::*;
use super::plan::{engine_body, plan, resolve_on_host, Plan};
use super::policy::caps::{Rejected, Rules};
use super::policy::{refusal, tar, version};
use super::request::{Body, Schema, Special};
use super::{health, Shared, HEAD_TIMEOUT, MAX_JSON_BODY};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

/// `GET path` on the engine, its JSON answer when it is a 200.
pub(super) async fn engine_get(
    shared: &Shared,
    path: &str,
) -> Result<Option<serde_json::Value>, String> {
    let mut up = shared.connect().await?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n");
    let io = |e: std::io::Error| format!("podrunner: the engine: {e}");
    up.write_all(req.as_bytes()).await.map_err(io)?;
    let raw = whole_answer(&mut up).await.map_err(io)?;
    Ok(match split_answer(&raw) {
        Some((200, body)) => serde_json::from_slice(&body).ok(),
        _ => None,
    })
}

/// The head of the request as the engine gets it.
pub(super) fn engine_head(
    head: &Head,
    plan: &Plan,
    upgrade: bool,
    body: &Option<Vec<u8>>,
) -> Vec<u8> {
    let mut out = format!("{} {} HTTP/1.1\r\n", head.method, plan.target).into_bytes();
    for (name, value) in &head.headers {
        let n = name.to_ascii_lowercase();
        if n == "content-length" || n == "transfer-encoding" {
            continue;
        }
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(if upgrade {
        b"Connection: Upgrade\r\nUpgrade: tcp\r\n".as_slice()
    } else {
        b"Connection: close\r\n".as_slice()
    });
    match (body, head.framing) {
        (Some(b), _) => {
            out.extend_from_slice(format!("Content-Length: {}\r\n", b.len()).as_bytes())
        }
        (None, Framing::Length(n)) => {
            out.extend_from_slice(format!("Content-Length: {n}\r\n").as_bytes())
        }
        (None, Framing::Chunked) => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
        (None, Framing::None) => {}
    }
    out.extend_from_slice(b"\r\n");
    out
}

pub(super) async fn handle(client: UnixStream, shared: &Shared) -> std::io::Result<()> {
    let mut inc = Incoming {
        stream: client,
        buf: Vec::with_capacity(8192),
        pos: 0,
    };
    let head_len = match tokio::time::timeout(HEAD_TIMEOUT, read_head(&mut inc)).await {
        Err(_) => {
            return answer(
                &mut inc.stream,
                "408 Request Timeout",
                "podrunner: no request head in time",
            )
            .await
        }
        Ok(Ok(None)) => return Ok(()),
        Ok(Ok(Some(n))) => n,
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::InvalidData => {
            return answer(
                &mut inc.stream,
                "431 Request Header Fields Too Large",
                "podrunner: request head too large",
            )
            .await
        }
        Ok(Err(e)) => return Err(e),
    };
    inc.pos = head_len;
    let head = match parse_head(&inc.buf[..head_len]) {
        Ok(h) => h,
        Err((status, why)) => return answer(&mut inc.stream, status, &why).await,
    };
    let rules = &shared.rules;
    let plan = match plan(&head.method, &head.target, rules) {
        Ok(p) => p,
        Err((status, why)) => {
            tracing::info!(
                "docker-proxy: refused {} {}: {why}",
                head.method,
                head.target.split('?').next().unwrap_or("")
            );
            return inc.answer_unread(head.framing, status, &why).await;
        }
    };
    let mut body = None;
    match plan.body {
        Body::None if head.framing != Framing::None => {
            return answer(
                &mut inc.stream,
                "400 Bad Request",
                "podrunner: this request takes no body",
            )
            .await
        }
        Body::Json(schema) => {
            let _slot = shared.json_slots.acquire().await.expect("never closed");
            let Some(raw) = inc.whole(head.framing, MAX_JSON_BODY).await? else {
                return inc
                    .answer_unread(
                        head.framing,
                        "413 Payload Too Large",
                        "podrunner: request body too large",
                    )
                    .await;
            };
            // After a self-update the runner's externals path stands for its own copy.
            let updated;
            let rules = match &shared.runner_copy {
                Some(rc)
                    if schema == Schema::ContainerCreate
                        && find(&raw, rc.inside.as_bytes()).is_some() =>
                {
                    match rc.current().await {
                        Ok(None) => rules,
                        Ok(Some(dir)) => {
                            updated = Rules {
                                paths: rules.paths.with(&rc.inside, &dir.display().to_string()),
                                ..rules.clone()
                            };
                            &updated
                        }
                        Err(why) => {
                            tracing::warn!("{why}");
                            return answer(&mut inc.stream, "502 Bad Gateway", &why).await;
                        }
                    }
                }
                _ => rules,
            };
            match engine_body(&raw, &plan, schema, rules) {
                Ok(b) => body = Some(b),
                Err(Rejected::BadBody(why)) => {
                    return answer(&mut inc.stream, "400 Bad Request", &why).await
                }
                Err(Rejected::Forbidden(why)) => {
                    tracing::info!(
                        "docker-proxy: refused {} {}: {why}",
                        head.method,
                        plan.target.split('?').next().unwrap_or("")
                    );
                    return answer(&mut inc.stream, "403 Forbidden", &why).await;
                }
            }
        }
        _ => {}
    }
    if let (Some(policy), Some(id)) = (&rules.policy, &plan.container) {
        // A bind source swapped for a symlink since the create is refused here.
        let inspect = engine_get(
            shared,
            &format!("/v{}/containers/{id}/json", version::text(version::ENGINE)),
        )
        .await;
        if let Ok(Some(c)) = inspect {
            let checked = if plan.special == Special::CopyIn {
                policy.check_copy_in(&c)
            } else {
                policy.check_inspected_mounts(&c, &resolve_on_host)
            };
            if let Err(why) = checked {
                let why = refusal(&why, &rules.pool_hint);
                tracing::info!("docker-proxy: refused {} {id}: {why}", head.method);
                return inc.answer_unread(head.framing, "403 Forbidden", &why).await;
            }
        }
    }
    let upgrade = plan.special == Special::Upgrade && head.wants_upgrade;
    let engine_head = engine_head(&head, &plan, upgrade, &body);
    let whole = matches!(plan.special, Special::Start | Special::Version);
    let mut context_check = plan
        .context_check
        .as_ref()
        .map(|d| tar::TarCheck::new(d.as_deref()));
    let mut attempt = 1;
    let got = loop {
        let mut up = match shared.connect().await {
            Ok(u) => u,
            Err(why) => {
                return inc
                    .answer_unread(head.framing, "502 Bad Gateway", &why)
                    .await
            }
        };
        up.write_all(&engine_head).await?;
        match &body {
            Some(b) => up.write_all(b).await?,
            None => match inc.pump(head.framing, &mut up, &mut context_check).await {
                Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                    // The engine gets a truncated body and builds nothing.
                    drop(up);
                    let why = refusal(&e.to_string(), &rules.pool_hint);
                    tracing::info!(
                        "docker-proxy: refused {} {}: {why}",
                        head.method,
                        plan.target.split('?').next().unwrap_or("")
                    );
                    return inc.answer_unread(head.framing, "403 Forbidden", &why).await;
                }
                r => r?,
            },
        }
        let response = if upgrade {
            let (resp_head, rest) = response_head(&mut up).await?;
            if resp_head.starts_with(b"HTTP/1.1 101") {
                break Got::Switched(up, resp_head, rest);
            }
            // Not switched: an ordinary answer, read as framed (the connection stays open).
            framed_answer(&mut up, resp_head, rest).await?
        } else if whole {
            whole_answer(&mut up).await?
        } else {
            break Got::Stream(up);
        };
        // Starting a container, or attaching to a created one (which initialises it, network
        // included), can fail transiently; the container is left created, so again.
        let retried = matches!(plan.special, Special::Start | Special::Upgrade);
        if retried && transient_setup_failure(&response) && attempt < START_ATTEMPTS {
            tracing::info!(
                "docker-proxy: {} {} failed ({}); attempt {}",
                head.method,
                plan.target.split('?').next().unwrap_or(""),
                answer_summary(&response),
                attempt + 1
            );
            tokio::time::sleep(START_RETRY_PAUSE * attempt).await;
            attempt += 1;
            continue;
        }
        break Got::Whole(response);
    };
    let leftover = inc.buf[inc.pos..].to_vec();
    let mut client = inc.stream;
    match got {
        Got::Whole(response) => {
            if let (Special::Start, Some(c)) = (plan.special, &plan.container) {
                if split_answer(&response).is_some_and(|(s, _)| s == 204) {
                    health::after_start(&shared.socket, c, &shared.health);
                }
            }
            let out = match (plan.special, split_answer(&response)) {
                (Special::Version, Some((200, body))) if plan.target.ends_with("/version") => {
                    match serde_json::from_slice::<serde_json::Value>(&body) {
                        Ok(mut v) => {
                            version::version_body_for_client(&mut v);
                            rebuilt_answer(&response, v.to_string().as_bytes())
                        }
                        Err(_) => rebuilt_answer(&response, &body),
                    }
                }
                (_, Some((_, body))) => rebuilt_answer(&response, &body),
                (_, None) => response,
            };
            client.write_all(&out).await?;
            client.shutdown().await
        }
        Got::Switched(mut up, resp_head, rest) => {
            // A real switch: raw both ways (stdin the client sent early goes first).
            client.write_all(&client_head(&resp_head)).await?;
            client.write_all(&rest).await?;
            up.write_all(&leftover).await?;
            tokio::io::copy_bidirectional(&mut client, &mut up).await?;
            Ok(())
        }
        Got::Stream(mut up) => {
            // An ordinary answer, passed on until the engine closes; the client may send
            // nothing more (a second request, or anything after its body, ends the connection).
            let (resp_head, rest) = response_head(&mut up).await?;
            client.write_all(&client_head(&resp_head)).await?;
            client.write_all(&rest).await?;
            let (mut cr, mut cw) = client.into_split();
            let mut probe = [0u8; 1];
            tokio::select! {
                r = tokio::io::copy(&mut up, &mut cw) => { r?; }
                _ = cr.read(&mut probe) => {}
            }
            cw.shutdown().await
        }
    }
}

/// What came back from the engine.
pub(super) enum Got {
    /// A whole answer, read by the proxy.
    Whole(Vec<u8>),
    /// A `101`: its head, what followed, and the stream.
    Switched(UnixStream, Vec<u8>, Vec<u8>),
    /// An answer still to be passed on.
    Stream(UnixStream),
}

/// Attempts of a container start or attach that failed transiently ([`transient_setup_failure`]).
pub const START_ATTEMPTS: u32 = 4;
/// Pause before the next attempt, times the attempt's number.
pub(super) const START_RETRY_PAUSE: Duration = Duration::from_millis(250);

/// Whether a start's or attach's answer is a transient failure to set the container up, after
/// which the container is still only created and setting it up again is safe:
/// - the firewall race between engines: rootful engines share the host's iptables, and netavark
///   creating its chains in two engines at once fails one of them with "Chain already exists"
///   (seen here when two jobs start their first container together);
/// - an attach whose container Podman could not initialise (409 "preparing container ... for
///   attach"; seen about once in five full suite runs, with several engines setting up
///   containers at the same moment);
/// - a rootless start that found the container's root file system empty ("unable to find user
///   NAME: no matching entries in passwd file" for a user the image has; seen rootless, for a
///   job container started while the same engine's service had its network set up; the cause
///   is not known, docs/docker.md, Networking; a second start works, as Podman's users report
///   for the same error with rootless overlay).
pub fn transient_setup_failure(response: &[u8]) -> bool {
    let text = String::from_utf8_lossy(response);
    let status_500_or_409 = text.starts_with("HTTP/1.1 500") || text.starts_with("HTTP/1.1 409");
    (status_500_or_409 && text.contains("Chain already exists"))
        || (text.starts_with("HTTP/1.1 409") && text.contains("for attach"))
        || (status_500_or_409
            && text.contains("unable to find user ")
            && text.contains("no matching entries in passwd file"))
}

/// The message of an error answer, shortened, for the log.
pub(super) fn answer_summary(response: &[u8]) -> String {
    let text = String::from_utf8_lossy(response);
    let status = text.lines().next().unwrap_or("").trim().to_string();
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").trim();
    let body: String = body.chars().take(300).collect();
    format!("{status}: {body}")
}

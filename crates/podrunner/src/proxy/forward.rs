//! One connection: the request read and decided, passed on to the engine (retried where a
//! container's setup failed transiently), and the answer passed back.

use super::http::*;
use super::plan::{engine_body, plan, resolve_on_host, Plan};
use super::policy::caps::{Rejected, Rules};
use super::policy::{tar, version, Refused};
use super::request::{Body, Schema, Special};
use super::{health, Shared, HEAD_TIMEOUT, MAX_JSON_BODY};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

/// `GET path` on the engine, its JSON answer when it is a 200.
pub(super) async fn engine_get(
    shared: &Shared,
    path: &str,
) -> Result<Option<serde_json::Value>, super::error::UpstreamError> {
    let mut up = shared.connect().await?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n");
    let io = super::error::UpstreamError::Exchange;
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

/// One connection: its request read, decided and checked, passed on, and the answer passed
/// back. A step that answers the client itself (a refusal, an error) ends it with `Answered`.
pub(super) async fn handle(client: UnixStream, shared: &Shared) -> std::io::Result<()> {
    let mut inc = Incoming {
        stream: client,
        buf: Vec::with_capacity(8192),
        pos: 0,
    };
    let head = match request_head(&mut inc).await? {
        Step::Go(h) => h,
        Step::Answered => return Ok(()),
    };
    let plan = match plan(&head.method, &head.target, &shared.rules) {
        Ok(p) => p,
        Err((status, why)) => {
            log_refusal(&head.method, &head.target, &why);
            return inc.answer_unread(head.framing, status, &why).await;
        }
    };
    let body = match checked_body(&mut inc, shared, &head, &plan).await? {
        Step::Go(b) => b,
        Step::Answered => return Ok(()),
    };
    if let Step::Answered = recheck_container(&mut inc, shared, &head, &plan).await? {
        return Ok(());
    }
    let upgrade = plan.special == Special::Upgrade && head.wants_upgrade;
    let got = match exchange(&mut inc, shared, &head, &plan, upgrade, &body).await? {
        Step::Go(g) => g,
        Step::Answered => return Ok(()),
    };
    pass_back(inc, shared, &plan, got).await
}

/// Whether a step lets the request go on, or answered the client already.
enum Step<T> {
    Go(T),
    Answered,
}

/// Logs a refused request (the path only: a query can hold credentials).
fn log_refusal(method: &str, target: &str, why: &str) {
    tracing::info!(
        "docker-proxy: refused {method} {}: {why}",
        target.split('?').next().unwrap_or("")
    );
}

/// Reads and parses the request head, answering a slow, oversized or malformed one.
async fn request_head(inc: &mut Incoming) -> std::io::Result<Step<Head>> {
    let head_len = match tokio::time::timeout(HEAD_TIMEOUT, read_head(inc)).await {
        Err(_) => {
            answer(
                &mut inc.stream,
                "408 Request Timeout",
                "podrunner: no request head in time",
            )
            .await?;
            return Ok(Step::Answered);
        }
        Ok(Ok(None)) => return Ok(Step::Answered),
        Ok(Ok(Some(n))) => n,
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::InvalidData => {
            answer(
                &mut inc.stream,
                "431 Request Header Fields Too Large",
                "podrunner: request head too large",
            )
            .await?;
            return Ok(Step::Answered);
        }
        Ok(Err(e)) => return Err(e),
    };
    inc.pos = head_len;
    match parse_head(&inc.buf[..head_len]) {
        Ok(h) => Ok(Step::Go(h)),
        Err((status, why)) => {
            answer(&mut inc.stream, status, &why).await?;
            Ok(Step::Answered)
        }
    }
}

/// The body as the engine gets it when the proxy reads it whole (JSON, checked and capped);
/// `None` when it streams.
async fn checked_body(
    inc: &mut Incoming,
    shared: &Shared,
    head: &Head,
    plan: &Plan,
) -> std::io::Result<Step<Option<Vec<u8>>>> {
    let schema = match plan.body {
        Body::None if head.framing != Framing::None => {
            answer(
                &mut inc.stream,
                "400 Bad Request",
                "podrunner: this request takes no body",
            )
            .await?;
            return Ok(Step::Answered);
        }
        Body::Json(schema) => schema,
        _ => return Ok(Step::Go(None)),
    };
    let _slot = shared.json_slots.acquire().await.expect("never closed");
    let Some(raw) = inc.whole(head.framing, MAX_JSON_BODY).await? else {
        inc.answer_unread(
            head.framing,
            "413 Payload Too Large",
            "podrunner: request body too large",
        )
        .await?;
        return Ok(Step::Answered);
    };
    let updated = match rules_for_body(shared, schema, &raw).await {
        Ok(r) => r,
        Err(why) => {
            tracing::warn!("{why}");
            answer(&mut inc.stream, "502 Bad Gateway", &why.to_string()).await?;
            return Ok(Step::Answered);
        }
    };
    let rules = updated.as_ref().unwrap_or(&shared.rules);
    let (status, why) = match engine_body(&raw, plan, schema, rules) {
        Ok(b) => match (&shared.pins, schema) {
            (Some(pins), Schema::ContainerCreate) => match pins.pin_body(b).await {
                Ok(b) => return Ok(Step::Go(Some(b))),
                Err(why) => {
                    let why = format!("{why}{}", shared.rules.pool_hint);
                    log_refusal(&head.method, &plan.target, &why);
                    ("403 Forbidden", why)
                }
            },
            _ => return Ok(Step::Go(Some(b))),
        },
        Err(Rejected::BadBody(why)) => ("400 Bad Request", why),
        Err(Rejected::Forbidden(why)) => {
            let why = why.to_string();
            log_refusal(&head.method, &plan.target, &why);
            ("403 Forbidden", why)
        }
    };
    answer(&mut inc.stream, status, &why).await?;
    Ok(Step::Answered)
}

/// After a self-update the runner's externals path stands for its own copy: the rules with
/// that mapping when a create body names the path and the runner runs another version.
async fn rules_for_body(
    shared: &Shared,
    schema: Schema,
    raw: &[u8],
) -> Result<Option<Rules>, crate::engine::error::ExternalsError> {
    let rules = &shared.rules;
    match &shared.runner_copy {
        Some(rc)
            if schema == Schema::ContainerCreate && find(raw, rc.inside.as_bytes()).is_some() =>
        {
            Ok(rc.current().await?.map(|dir| Rules {
                paths: rules.paths.with(&rc.inside, &dir.display().to_string()),
                ..rules.clone()
            }))
        }
        _ => Ok(None),
    }
}

/// A container about to start (or be copied into) is checked again as the engine has it: a
/// bind source swapped for a symlink since the create is refused here.
async fn recheck_container(
    inc: &mut Incoming,
    shared: &Shared,
    head: &Head,
    plan: &Plan,
) -> std::io::Result<Step<()>> {
    let rules = &shared.rules;
    let (Some(policy), Some(id)) = (&rules.policy, &plan.container) else {
        return Ok(Step::Go(()));
    };
    let inspect = engine_get(
        shared,
        &format!("/v{}/containers/{id}/json", version::text(version::ENGINE)),
    )
    .await;
    let Ok(Some(c)) = inspect else {
        return Ok(Step::Go(()));
    };
    let checked = if plan.special == Special::CopyIn {
        policy.check_copy_in(&c)
    } else {
        policy.check_inspected_mounts(&c, &resolve_on_host)
    };
    let Err(why) = checked else {
        return Ok(Step::Go(()));
    };
    let why = why.in_pool(&rules.pool_hint).to_string();
    tracing::info!("docker-proxy: refused {} {id}: {why}", head.method);
    inc.answer_unread(head.framing, "403 Forbidden", &why)
        .await?;
    Ok(Step::Answered)
}

/// Sends the request to the engine and reads what comes back, again after a transient failure
/// to set a container up ([`transient_setup_failure`]).
async fn exchange(
    inc: &mut Incoming,
    shared: &Shared,
    head: &Head,
    plan: &Plan,
    upgrade: bool,
    body: &Option<Vec<u8>>,
) -> std::io::Result<Step<Got>> {
    let engine_head = engine_head(head, plan, upgrade, body);
    let whole = matches!(plan.special, Special::Start | Special::Version);
    let mut context_check = plan
        .context_check
        .as_ref()
        .map(|d| tar::TarCheck::new(d.as_deref()));
    let mut attempt = 1;
    loop {
        let mut up = match shared.connect().await {
            Ok(u) => u,
            Err(why) => {
                inc.answer_unread(head.framing, "502 Bad Gateway", &why.to_string())
                    .await?;
                return Ok(Step::Answered);
            }
        };
        up.write_all(&engine_head).await?;
        match body {
            Some(b) => up.write_all(b).await?,
            None => match inc.pump(head.framing, &mut up, &mut context_check).await {
                Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                    // The engine gets a truncated body and builds nothing.
                    drop(up);
                    let what = match e.get_ref().and_then(|b| b.downcast_ref::<Refused>()) {
                        Some(r) => r.clone(),
                        None => Refused::BuildContext(e.to_string().into()),
                    };
                    let why = what.in_pool(&shared.rules.pool_hint).to_string();
                    log_refusal(&head.method, &plan.target, &why);
                    inc.answer_unread(head.framing, "403 Forbidden", &why)
                        .await?;
                    return Ok(Step::Answered);
                }
                r => r?,
            },
        }
        let response = if upgrade {
            let (resp_head, rest) = response_head(&mut up).await?;
            if resp_head.starts_with(b"HTTP/1.1 101") {
                return Ok(Step::Go(Got::Switched(up, resp_head, rest)));
            }
            // Not switched: an ordinary answer, read as framed (the connection stays open).
            framed_answer(&mut up, resp_head, rest).await?
        } else if whole {
            whole_answer(&mut up).await?
        } else {
            return Ok(Step::Go(Got::Stream(up)));
        };
        if retries_setup(plan.special, &plan.target)
            && transient_setup_failure(&response)
            && attempt < START_ATTEMPTS
        {
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
        return Ok(Step::Go(Got::Whole(response)));
    }
}

/// Passes the engine's answer back to the client.
async fn pass_back(inc: Incoming, shared: &Shared, plan: &Plan, got: Got) -> std::io::Result<()> {
    let leftover = inc.buf[inc.pos..].to_vec();
    let mut client = inc.stream;
    match got {
        Got::Whole(response) => {
            if let (Special::Start, Some(c)) = (plan.special, &plan.container) {
                if split_answer(&response).is_some_and(|(s, _)| s == 204) {
                    health::after_start(&shared.socket, c, &shared.health);
                }
            }
            client.write_all(&whole_for_client(plan, response)).await?;
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
            let mut read = Vec::new();
            if let Some(kind) = plan.answer {
                // Bounded as JSON bodies are: one of their slots, at most their size.
                let _slot = shared.json_slots.acquire().await.expect("never closed");
                match bounded_answer(&mut up, MAX_JSON_BODY).await? {
                    Ok(whole) => {
                        client
                            .write_all(&answer_for_client(plan, kind, whole))
                            .await?;
                        return client.shutdown().await;
                    }
                    // Too large to rewrite: passed on as the engine wrote it.
                    Err(first) => read = first,
                }
            }
            // An ordinary answer, passed on until the engine closes; the client may send
            // nothing more (a second request, or anything after its body, ends the connection).
            let (resp_head, rest) = response_head_after(&mut up, read).await?;
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

/// A whole answer of the engine as the client gets it (`/version` translated).
fn whole_for_client(plan: &Plan, response: Vec<u8>) -> Vec<u8> {
    match (plan.special, split_answer(&response)) {
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
    }
}

/// A whole answer of kind `kind` as the client of the plan's version gets it: a 200 with a
/// JSON body rewritten ([`version::answer_for_client`]), anything else as the engine wrote it.
fn answer_for_client(plan: &Plan, kind: version::Answer, response: Vec<u8>) -> Vec<u8> {
    let Some((200, body)) = split_answer(&response) else {
        return whole_for_client(plan, response);
    };
    match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(mut v) => {
            version::answer_for_client(kind, &mut v, plan.client_version);
            rebuilt_answer(&response, v.to_string().as_bytes())
        }
        Err(_) => rebuilt_answer(&response, &body),
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

/// Whether a request whose answer is a transient failure to set a container up
/// ([`transient_setup_failure`]) is sent again (pure). Starting a container, or attaching to a
/// created one (which initialises it, network included), leaves the container created, so
/// again. Never an exec start (`POST /exec/{id}/start`, Docker's or libpod's): Podman marks
/// the exec session used at the first try, and a second start of it can only fail ("can only
/// start created exec sessions"), hiding the first answer's reason from the client.
pub fn retries_setup(special: Special, target: &str) -> bool {
    let path = target.split('?').next().unwrap_or("");
    let exec_start = path.ends_with("/start") && path.split('/').rev().nth(2) == Some("exec");
    match special {
        Special::Start => true,
        Special::Upgrade => !exec_start,
        _ => false,
    }
}

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

//! The `workflow_job` webhook receiver (docs/scaling.md, "Polling and webhooks"): checks the
//! signature and the delivery id (github/webhook.rs), answers at once (GitHub wants a 2xx
//! within 10 s and never redelivers by itself), and wakes the queued-job pollers so a queued
//! job is seen now instead of at the next poll. It changes no count itself: the poll that
//! follows reads what is queued.

use crate::github::webhook::{parse_workflow_job, signature_valid, Deliveries};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// Bodies larger than this are refused: `workflow_job` payloads are a few tens of KB.
pub const MAX_BODY: usize = 1024 * 1024;

struct Hook {
    secret: Vec<u8>,
    deliveries: Mutex<Deliveries>,
    wake: Arc<Notify>,
}

/// Binds `addr` and serves until the task is aborted.
pub async fn serve(
    addr: SocketAddr,
    secret: Vec<u8>,
    wake: Arc<Notify>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen for webhooks on {addr}: {e}"))?;
    let hook = Arc::new(Hook {
        secret,
        deliveries: Mutex::new(Deliveries::default()),
        wake,
    });
    let app = Router::new()
        .route("/", post(receive))
        .route("/webhook", post(receive))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .with_state(hook);
    tracing::info!("listening for workflow_job webhooks on {addr}");
    Ok(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!("the webhook receiver stopped: {e}");
        }
    }))
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

async fn receive(State(hook): State<Arc<Hook>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    if !signature_valid(&hook.secret, &body, header(&headers, "x-hub-signature-256")) {
        tracing::warn!("refused a webhook with a missing or wrong signature");
        return StatusCode::UNAUTHORIZED;
    }
    let delivery = header(&headers, "x-github-delivery").unwrap_or("");
    if !delivery.is_empty()
        && !hook
            .deliveries
            .lock()
            .expect("deliveries lock")
            .first_time(delivery)
    {
        tracing::debug!("webhook delivery {delivery} seen before");
        return StatusCode::OK;
    }
    match header(&headers, "x-github-event") {
        Some("workflow_job") => match parse_workflow_job(&body) {
            Ok(job) => {
                tracing::debug!(
                    "workflow_job {} in {} for {:?}",
                    job.action,
                    job.repository,
                    job.labels
                );
                if job.action == "queued" || job.action == "completed" {
                    hook.wake.notify_waiters();
                }
                StatusCode::ACCEPTED
            }
            Err(e) => {
                tracing::warn!("a workflow_job webhook could not be read: {e}");
                StatusCode::BAD_REQUEST
            }
        },
        _ => StatusCode::NO_CONTENT,
    }
}

//! The optional HTTP listener (`[manager] listen`, docs/metrics.md): Prometheus metrics at
//! `/metrics`, a read-only status page at `/`, its data as JSON at `/api/status`. GET only; it
//! shows nothing the status command does not (no token, no JIT config) and changes nothing.
//!
//! It asks the manager's loop for a status snapshot per request (the same snapshot `podrunner
//! status` gets, without the fresh runner list a status command triggers, so scrapes cost no
//! GitHub calls), and reads the history with its own read-only connection.

pub mod page;

use crate::config::listen::Listen;
use crate::control::StatusSnapshot;
use crate::github::Client;
use crate::history::{self, History};
use crate::metrics::{self, Metrics};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Jobs listed on the page and in `/api/status`.
pub const LAST_JOBS: u32 = 25;
/// The page's chart covers this many hours.
pub const CHART_HOURS: i64 = 24;
/// How long a request waits for the manager's loop to answer.
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(5);

/// A request for the manager's current snapshot.
pub type SnapshotRequest = oneshot::Sender<StatusSnapshot>;

#[derive(Debug, Clone)]
pub struct WebState {
    pub metrics: Metrics,
    pub gh: Arc<Client>,
    pub snapshots: mpsc::Sender<SnapshotRequest>,
    /// The history file, when history is on.
    pub history: Option<PathBuf>,
}

#[derive(Debug)]
pub enum Listener {
    Tcp(tokio::net::TcpListener),
    Unix(tokio::net::UnixListener, PathBuf),
}

/// Binds the listener; the error says what to change.
pub async fn bind(listen: &Listen) -> anyhow::Result<Listener> {
    match listen {
        Listen::Tcp(addr) => tokio::net::TcpListener::bind(addr)
            .await
            .map(Listener::Tcp)
            .map_err(|e| anyhow::anyhow!("cannot listen on {addr} ([manager] listen): {e}\n  fix: choose a free port, or remove `listen` to run without metrics")),
        Listen::Unix(path) => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            // A socket left by a killed manager: the control socket already proved that no
            // other manager of this instance runs.
            if std::fs::symlink_metadata(path).is_ok_and(|m| {
                use std::os::unix::fs::FileTypeExt;
                m.file_type().is_socket()
            }) {
                std::fs::remove_file(path)?;
            }
            let l = tokio::net::UnixListener::bind(path).map_err(|e| {
                anyhow::anyhow!("cannot listen on {} ([manager] listen): {e}", path.display())
            })?;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
            Ok(Listener::Unix(l, path.clone()))
        }
    }
}

pub fn router(state: WebState) -> Router {
    Router::new()
        .route("/", get(status_page))
        .route("/metrics", get(metrics_text))
        .route("/api/status", get(status_json))
        .with_state(state)
}

/// Serves until the task is dropped.
pub async fn serve(listener: Listener, state: WebState) {
    let app = router(state);
    loop {
        match &listener {
            Listener::Tcp(l) => {
                if let Ok((s, _)) = l.accept().await {
                    spawn_conn(s, app.clone());
                }
            }
            Listener::Unix(l, _) => {
                if let Ok((s, _)) = l.accept().await {
                    spawn_conn(s, app.clone());
                }
            }
        }
    }
}

fn spawn_conn<S>(stream: S, app: Router)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let svc = TowerToHyperService::new(app);
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(stream), svc)
            .await;
    });
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Listener::Unix(_, p) = self {
            match std::fs::remove_file(&*p) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    tracing::warn!("cannot remove the listener's socket {}: {e}", p.display())
                }
                _ => {}
            }
        }
    }
}

async fn snapshot(s: &WebState) -> Result<StatusSnapshot, Response> {
    let (tx, rx) = oneshot::channel();
    let unavailable = || {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "the manager is busy or stopping; try again",
        )
            .into_response()
    };
    s.snapshots.send(tx).await.map_err(|_| unavailable())?;
    tokio::time::timeout(SNAPSHOT_TIMEOUT, rx)
        .await
        .map_err(|_| unavailable())?
        .map_err(|_| unavailable())
}

async fn metrics_text(State(s): State<WebState>) -> Response {
    match snapshot(&s).await {
        Ok(snap) => (
            [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
            s.metrics.render(&snap, &s.gh.calls_by.snapshot()),
        )
            .into_response(),
        Err(r) => r,
    }
}

/// The page's data: the snapshot, the last jobs and the hourly chart.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PageData {
    pub status: StatusSnapshot,
    pub jobs: Vec<history::Entry>,
    pub hours: Vec<history::Hour>,
    /// Why there is no history, when there is none.
    pub history_note: Option<String>,
    pub now_ms: i64,
}

/// Why the page shows no history.
#[derive(Debug, thiserror::Error)]
enum NoHistory {
    #[error("history is off ([manager] history = false)")]
    Off,
    #[error(transparent)]
    Read(#[from] history::Error),
    #[error("{0}")]
    Task(tokio::task::JoinError),
}

async fn page_data(s: &WebState) -> Result<PageData, Response> {
    let status = snapshot(s).await?;
    let path = s.history.clone();
    let read = tokio::task::spawn_blocking(move || -> Result<_, NoHistory> {
        let h = History::open_read_only(&path.ok_or(NoHistory::Off)?)?;
        let now = history::now_ms();
        let jobs = h.list(&history::Filter {
            limit: Some(LAST_JOBS),
            ..Default::default()
        })?;
        let hours = h.per_hour(now - CHART_HOURS * 3_600_000)?;
        Ok((jobs, hours))
    })
    .await
    .unwrap_or_else(|e| Err(NoHistory::Task(e)));
    let (jobs, hours, history_note) = match read {
        Ok((j, h)) => (j, h, None),
        Err(e) => (vec![], vec![], Some(e.to_string())),
    };
    Ok(PageData {
        status,
        jobs,
        hours,
        history_note,
        now_ms: history::now_ms(),
    })
}

async fn status_json(State(s): State<WebState>) -> Response {
    match page_data(&s).await {
        Ok(d) => axum::Json(d).into_response(),
        Err(r) => r,
    }
}

async fn status_page(State(s): State<WebState>) -> Response {
    match page_data(&s).await {
        Ok(d) => (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (
                    header::CONTENT_SECURITY_POLICY,
                    "default-src 'none'; style-src 'unsafe-inline'; img-src data:",
                ),
            ],
            page::render(&d),
        )
            .into_response(),
        Err(r) => r,
    }
}

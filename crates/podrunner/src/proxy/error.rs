//! The proxy's typed errors about its engine: the engine cannot be reached or started, or an
//! exchange with it failed. The messages are the 502 bodies a job reads and the proxy's logs.

use crate::engine::launch::LaunchError;

/// The proxy could not talk to the runner's engine.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// Nothing answers on the engine's socket and the proxy has no launcher to start it.
    #[error("podrunner: the runner's engine does not answer")]
    NoAnswer,
    /// Starting the engine failed.
    #[error("{0}")]
    Start(#[from] LaunchError),
    /// The engine was started but its socket does not take connections.
    #[error("podrunner: the runner's engine does not answer: {0}")]
    Connect(std::io::Error),
    /// Writing to or reading from the engine failed.
    #[error("podrunner: the engine: {0}")]
    Exchange(std::io::Error),
}

/// A health-check request on the engine's own socket failed ([`super::health`]).
#[derive(Debug, thiserror::Error)]
pub enum HealthGetError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("an answer that is not HTTP")]
    NotHttp,
    #[error("no answer")]
    Timeout,
}

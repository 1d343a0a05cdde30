//! Everything about one runner that is not a decision: where its files are ([`paths`]), how
//! its JIT config reaches the runner inside the container ([`jit`]), the limits it and its
//! job containers are held to ([`limits`]), and its container log ([`logs`]).
//!
//! The core (src/core) decides when a runner starts and ends; the manager acts on those
//! decisions with the paths, files and flags built here. Nothing here runs a program.

pub mod jit;
pub mod limits;
pub mod logs;
pub mod paths;

pub use limits::Limits;
pub use paths::Paths;

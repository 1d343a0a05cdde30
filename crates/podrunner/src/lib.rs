//! podrunner: ephemeral self-hosted GitHub Actions runners, one Podman container per job.
//!
//! Layout: `core` decides (pure), `github` and `podman` are the adapters that act, `runner`
//! owns one runner's files, JIT handoff, limits and log, `manager`
//! runs the loop that connects them, `control` is the socket protocol between the CLI and a
//! running manager, `systemd` the unit file and notify protocol, `commands` holds one file per
//! subcommand.

pub mod cmd;
pub mod commands;
pub mod config;
pub mod control;
pub mod core;
pub mod doctor;
pub mod engine;
pub mod github;
pub mod history;
pub mod logging;
pub mod manager;
pub mod metrics;
pub mod podman;
pub mod proxy;
pub mod runner;
pub mod sys;
pub mod systemd;
pub mod teardown;
pub mod web;

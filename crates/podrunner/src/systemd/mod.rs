//! Everything podrunner knows about systemd: the unit file it installs (`unit`, pure), the
//! notify/watchdog protocol the manager speaks (`notify`), and how the CLI asks systemctl about
//! the installed service (`service`, through `cmd::run`).
//!
//! This module never starts the manager itself; `commands/` decides what to do with the answers.

pub mod notify;
pub mod service;
pub mod unit;

//! The one harness for running real Spread daemons, shared by the daemon's integration tests,
//! the differential scenarios and `cargo xtask`:
//!
//! - [`TempDir`], a scratch directory kept when a test fails;
//! - [`free_port`], ports below 32768 (3.17's library refuses higher ones) free for a daemon;
//! - [`CSpread`], the one C Spread 3.17 finder, in spread-sys's search order;
//! - [`DaemonKind`] and [`RunningDaemon`]: our daemon or C's as a process, C's unprivileged
//!   when run as root; [`start_alone`] for one daemon in its own directory; [`Logs`], kept
//!   for tests, discarded for benchmarks;
//! - [`Ring`], N daemons of which any may be C, one per address 127.0.0.n, and the probes
//!   that wait until daemons order messages ([`wait_until_one_ring`]);
//! - [`skip`], the one way a test says it did not run.

mod c_spread;
mod daemon;
mod dirs;
mod ports;
mod probe;
mod ring;
mod skip;

pub use c_spread::CSpread;
pub use daemon::{
    alone_conf, build_our_daemon, start_alone, start_alone_with_logs, wait_for_port, DaemonKind,
    Logs, RunningDaemon,
};
pub use dirs::{make_world_readable, TempDir};
pub use ports::free_port;
pub use probe::{wait_until_one_ring, wait_until_operational};
pub use ring::{Layout, Ring};
pub use skip::skip;

//! A deterministic world of spread-rs daemons.
//!
//! Every daemon is the real sans-IO core ([`spread_daemon::core::Daemon`]); the network is
//! a priority queue of datagrams on a virtual clock; clients speak the real client protocol
//! through the core's session layer. Everything random — delays, loss, duplication,
//! partitions, crashes, what clients send — comes from one `u64` seed, so a failing run
//! replays exactly.

mod check;
mod rng;
mod world;

pub use check::{check, Violation};
pub use rng::Rng;
pub use world::{ClientLog, Faults, Logged, Scenario, World};

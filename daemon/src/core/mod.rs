//! The daemon without I/O.
//!
//! [`Daemon`] is a state machine in the manner of quinn-proto: the event loop feeds it
//! connection events and bytes (`handle_*`), and drains what it wants done (`poll_*`,
//! [`Daemon::output`]). It never touches a socket or a clock: `now` is passed in.
//!
//! Drain order after any `handle_*` call: `poll_event` until `None` (closes), then
//! `poll_writable` until `None`, writing each connection's [`OutQueue`]; then
//! `poll_timeout` for the next deadline.

mod auth;
mod daemon;
mod groups;
mod outq;
pub mod ring;

pub use auth::{AuthPolicy, IpRule};
pub use daemon::{CloseReason, CoreEvent, Daemon, DaemonOptions};
pub use groups::GroupInfo;
pub use outq::OutQueue;

use std::net::Ipv4Addr;

/// A connection as the event loop names it.
pub type ConnId = u64;

/// Who this daemon is in its spread.conf.
#[derive(Clone, Debug)]
pub struct Identity {
    pub name: String,
    pub ip: Ipv4Addr,
}

/// Where a client connected from: auth by IP needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Peer {
    Tcp(Ipv4Addr),
    Local,
}

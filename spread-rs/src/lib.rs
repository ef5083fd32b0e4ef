//! A safe client for Spread 3.17 daemons — the C `spread` or ours.
//!
//! ```no_run
//! use spread::{ConnectOptions, Event, Mailbox, Service};
//! # fn main() -> Result<(), spread::Error> {
//! let mut mbox = Mailbox::connect(&ConnectOptions::new("4803@127.0.0.1").name("alice"))?;
//! mbox.join("chat")?;
//! mbox.multicast(Service::AGREED, &["chat"], 0, b"hello")?;
//! match mbox.receive()? {
//!     Event::Message(m) => println!("{} says {:?}", m.sender, m.data),
//!     Event::Membership(m) => println!("{:?}", m),
//!     Event::Rejected(r) => println!("refused: {:?}", r),
//!     other => println!("{:?}", other),
//! }
//! # Ok(()) }
//! ```
//!
//! Layout: [`proto`] turns requests into bytes and bytes into [`Event`]s without doing any
//! I/O, and a sans-IO session state decides what reads, writes and failures mean;
//! [`Mailbox`] is the blocking transport over TCP or the local socket, and `spread::tokio`
//! (cargo feature `tokio`) the async one over the same codec and session state.
//!
//! Liveness: by default a Mailbox probes its daemon every second ([`Liveness`]) — with our
//! daemon through the probe extension, with a C 3.17 daemon by an empty message to its own
//! private group — and fails with [`Error::DaemonTimeout`] when the daemon stays silent
//! past the deadline (a hung daemon, which TCP keepalive cannot see).
//!
//! Failover: [`Failover`] reconnects to another daemon of a list when the session ends,
//! joins the groups again and reports [`Event::Failover`]; see [`failover`].

mod address;
mod blocking;
mod connect;
mod error;
pub mod failover;
mod inbox;
mod liveness;
pub mod proto;
mod session;
#[cfg(feature = "tokio")]
pub mod tokio;
mod types;

pub use address::DaemonAddress;
pub use blocking::Mailbox;
pub use connect::ConnectOptions;
pub use error::Error;
pub use failover::{Backoff, Failover, FailoverOptions, Order};
pub use liveness::{Liveness, ProbeMode, NOOP_MESS_TYPE, NOOP_MIN_DEADLINE};
pub use spread_sockopt::Keepalive;
pub use types::{
    Cause, Event, FailoverInfo, GroupId, Membership, MembershipChange, Message, Rejected, Service,
    ServiceKind,
};

/// The largest `data + 32 x groups` a 3.17 daemon accepts in one message.
pub const MAX_MESSAGE: usize = spread_wire::consts::limits::MAX_DATA_PLUS_GROUPS;

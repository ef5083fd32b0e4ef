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
//! }
//! # Ok(()) }
//! ```
//!
//! Layout: [`proto`] turns requests into bytes and bytes into [`Event`]s without doing any
//! I/O; [`Mailbox`] is the blocking transport over TCP or the local socket. An async
//! transport can drive the same [`proto`] codec.

mod address;
mod blocking;
mod error;
mod keepalive;
pub mod proto;
mod types;

pub use address::DaemonAddress;
pub use blocking::{ConnectOptions, Mailbox};
pub use error::Error;
pub use keepalive::Keepalive;
pub use types::{
    Cause, Event, GroupId, Membership, MembershipChange, Message, Rejected, Service, ServiceKind,
};

/// The largest `data + 32 x groups` a 3.17 daemon accepts in one message.
pub const MAX_MESSAGE: usize = spread_wire::consts::limits::MAX_DATA_PLUS_GROUPS;

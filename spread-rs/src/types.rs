//! What a client sends and receives, as Rust types: no flag arithmetic for users.

use crate::address::DaemonAddress;
use spread_wire::consts::service;
use std::time::SystemTime;

/// The six delivery services of Spread.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ServiceKind {
    Unreliable,
    Reliable,
    Fifo,
    Causal,
    Agreed,
    Safe,
}

impl ServiceKind {
    pub const ALL: [ServiceKind; 6] = [
        ServiceKind::Unreliable,
        ServiceKind::Reliable,
        ServiceKind::Fifo,
        ServiceKind::Causal,
        ServiceKind::Agreed,
        ServiceKind::Safe,
    ];

    pub fn bit(self) -> u32 {
        match self {
            ServiceKind::Unreliable => service::UNRELIABLE,
            ServiceKind::Reliable => service::RELIABLE,
            ServiceKind::Fifo => service::FIFO,
            ServiceKind::Causal => service::CAUSAL,
            ServiceKind::Agreed => service::AGREED,
            ServiceKind::Safe => service::SAFE,
        }
    }

    /// The service a type word names (the lowest service bit, as the library reports it).
    pub fn from_type(msg_type: u32) -> Option<ServiceKind> {
        ServiceKind::ALL
            .into_iter()
            .find(|k| msg_type & k.bit() != 0)
    }
}

impl std::str::FromStr for ServiceKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "unreliable" => ServiceKind::Unreliable,
            "reliable" => ServiceKind::Reliable,
            "fifo" => ServiceKind::Fifo,
            "causal" => ServiceKind::Causal,
            "agreed" => ServiceKind::Agreed,
            "safe" => ServiceKind::Safe,
            other => return Err(format!("unknown service '{other}'")),
        })
    }
}

/// A service and whether the sender wants its own copy discarded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Service {
    pub kind: ServiceKind,
    pub self_discard: bool,
}

impl Service {
    pub const UNRELIABLE: Service = Service::new(ServiceKind::Unreliable);
    pub const RELIABLE: Service = Service::new(ServiceKind::Reliable);
    pub const FIFO: Service = Service::new(ServiceKind::Fifo);
    pub const CAUSAL: Service = Service::new(ServiceKind::Causal);
    pub const AGREED: Service = Service::new(ServiceKind::Agreed);
    pub const SAFE: Service = Service::new(ServiceKind::Safe);

    pub const fn new(kind: ServiceKind) -> Service {
        Service {
            kind,
            self_discard: false,
        }
    }

    /// The same service with SELF_DISCARD.
    pub const fn self_discard(self) -> Service {
        Service {
            kind: self.kind,
            self_discard: true,
        }
    }

    pub fn type_word(self) -> u32 {
        self.kind.bit()
            | if self.self_discard {
                service::SELF_DISCARD
            } else {
                0
            }
    }
}

impl From<ServiceKind> for Service {
    fn from(kind: ServiceKind) -> Service {
        Service::new(kind)
    }
}

/// A group's view id: equal ids mean the same membership.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct GroupId {
    pub proc_id: u32,
    pub time: i32,
    pub index: i32,
}

impl From<spread_wire::membership::GroupId> for GroupId {
    fn from(g: spread_wire::membership::GroupId) -> GroupId {
        GroupId {
            proc_id: g.memb_id.proc_id,
            time: g.memb_id.time,
            index: g.index,
        }
    }
}

/// What caused a regular membership.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Cause {
    Join,
    Leave,
    Disconnect,
    Network,
}

/// A data message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub service: ServiceKind,
    /// Whether the sender asked for SELF_DISCARD.
    pub self_discard: bool,
    /// The sender's private group, `#name#daemon`.
    pub sender: String,
    /// The groups the message was sent to.
    pub groups: Vec<String>,
    pub mess_type: i16,
    /// The sending client's byte order differs from ours: the payload is as it wrote it.
    pub endian_mismatch: bool,
    pub data: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MembershipChange {
    /// A new view of the group.
    Regular {
        cause: Cause,
        group_id: GroupId,
        /// All members, sorted as the daemon sorts them.
        members: Vec<String>,
        /// Our position in `members`, if we are one (3.17 passes it as mess_type).
        my_index: Option<usize>,
        /// Who moved together: the joiner, the one who left, or those who came through a
        /// network change together.
        vs_set: Vec<String>,
    },
    /// Messages until the next regular membership are delivered in a reduced view.
    Transitional { group_id: GroupId },
    /// We left the group.
    SelfLeave,
}

/// A membership event of one group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Membership {
    pub group: String,
    pub change: MembershipChange,
}

/// A message the daemon refused and sent back to us.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejected {
    /// The type word of the refused message (with CAUSED_BY_JOIN/LEAVE for a join/leave).
    pub old_type: u32,
    pub groups: Vec<String>,
    pub mess_type: i16,
    pub data: Vec<u8>,
}

/// Anything `receive` returns.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    Message(Message),
    Membership(Membership),
    Rejected(Rejected),
    /// Only from a failover type ([`crate::Failover`]): the session moved to another
    /// daemon; messages may have been missed. A plain [`crate::Mailbox`] never returns it.
    Failover(FailoverInfo),
}

/// What [`Event::Failover`] reports (see [`crate::failover`] for what a failover may lose).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailoverInfo {
    /// The daemon whose session ended.
    pub lost: DaemonAddress,
    /// The daemon serving us now.
    pub now: DaemonAddress,
    /// Why the session ended (the error's text).
    pub cause: String,
    /// When the loss was noticed (wall clock): the failover took from then until this
    /// event was made.
    pub detected_at: SystemTime,
    /// Always true: messages delivered to the old session but not read, and those sent
    /// between its end and the re-join, are lost.
    pub may_have_missed_messages: bool,
    /// The groups joined again on `now` (every group the application was in).
    pub rejoined: Vec<String>,
    /// Our new private group.
    pub private_group: String,
}

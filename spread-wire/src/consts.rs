//! Numbers that Spread 3.17 fixes: service bits, error codes, limits.
//!
//! Values are the logical ones (as an integer on the sender's machine); the endian marker
//! bits `0x80000080` never carry meaning.

/// Service and message bits of a client message's type word.
pub mod service {
    pub const UNRELIABLE: u32 = 0x0000_0001;
    pub const RELIABLE: u32 = 0x0000_0002;
    pub const FIFO: u32 = 0x0000_0004;
    pub const CAUSAL: u32 = 0x0000_0008;
    pub const AGREED: u32 = 0x0000_0010;
    pub const SAFE: u32 = 0x0000_0020;
    pub const SELF_DISCARD: u32 = 0x0000_0040;
    /// The six delivery services: exactly one may be set on a data message.
    pub const REGULAR: u32 = 0x0000_003f;

    pub const CAUSED_BY_JOIN: u32 = 0x0000_0100;
    pub const CAUSED_BY_LEAVE: u32 = 0x0000_0200;
    pub const CAUSED_BY_DISCONNECT: u32 = 0x0000_0400;
    pub const CAUSED_BY_NETWORK: u32 = 0x0000_0800;
    pub const REG_MEMB: u32 = 0x0000_1000;
    pub const TRANSITION: u32 = 0x0000_2000;
    /// Every membership bit (`MEMBERSHIP_MESS` in sp.h).
    pub const MEMBERSHIP: u32 = 0x0000_3f00;

    pub const JOIN: u32 = 0x0001_0000;
    pub const LEAVE: u32 = 0x0002_0000;
    pub const KILL: u32 = 0x0004_0000;
    /// Daemon-to-daemon only: the groups state exchange.
    pub const GROUPS: u32 = 0x0008_0000;
    pub const REJECT: u32 = 0x0040_0000;
    /// Extension, never sent to or by a 3.17 program: the liveness probe (see `probe`).
    pub const PROBE: u32 = 0x0010_0000;
    /// A flag for the library's receive call; never meant for the wire.
    pub const DROP_RECV: u32 = 0x0100_0000;
}

/// Return and reject codes shared by daemon and library (`sp.h`). Only the reject codes and
/// `ACCEPT_SESSION` ever travel, as one signed byte.
pub mod code {
    pub const ACCEPT_SESSION: i32 = 1;
    pub const ILLEGAL_SPREAD: i32 = -1;
    pub const COULD_NOT_CONNECT: i32 = -2;
    pub const REJECT_QUOTA: i32 = -3;
    pub const REJECT_NO_NAME: i32 = -4;
    pub const REJECT_ILLEGAL_NAME: i32 = -5;
    pub const REJECT_NOT_UNIQUE: i32 = -6;
    pub const REJECT_VERSION: i32 = -7;
    pub const CONNECTION_CLOSED: i32 = -8;
    pub const REJECT_AUTH: i32 = -9;
    pub const ILLEGAL_SESSION: i32 = -11;
    pub const ILLEGAL_SERVICE: i32 = -12;
    pub const ILLEGAL_MESSAGE: i32 = -13;
    pub const ILLEGAL_GROUP: i32 = -14;
    pub const BUFFER_TOO_SHORT: i32 = -15;
    pub const GROUPS_TOO_SHORT: i32 = -16;
    pub const MESSAGE_TOO_LONG: i32 = -17;
}

/// Limits of Spread 3.17.
pub mod limits {
    /// Bytes of a group name field, NUL included: names hold at most 31 characters.
    pub const MAX_GROUP_NAME: usize = 32;
    /// Characters of a client's private name.
    pub const MAX_PRIVATE_NAME: usize = 10;
    /// Bytes of a daemon name field, NUL included (19 usable characters).
    pub const MAX_PROC_NAME: usize = 20;
    /// Destination groups of one multicast.
    pub const MAX_GROUPS_PER_MESSAGE: usize = 100;
    /// `MAX_MESSAGE_BODY_LEN`: 100 fragments of 1440 bytes.
    pub const MAX_MESSAGE_BODY_LEN: usize = 144_000;
    /// What the daemon accepts of data plus group names: the header counts too.
    pub const MAX_DATA_PLUS_GROUPS: usize = MAX_MESSAGE_BODY_LEN - crate::header::HEADER_LEN;
    /// What the 3.17 library lets through (it counts the group names, not the header).
    pub const LIBRARY_MAX_DATA_PLUS_GROUPS: usize = MAX_MESSAGE_BODY_LEN;
    /// Sessions one daemon serves: `(2000 - 5) / 2`.
    pub const MAX_SESSIONS: usize = 997;
    /// Messages queued to a client that does not read, before the daemon drops it.
    pub const MAX_QUEUED_TO_CLIENT: usize = 1000;
    /// Local members of one group (`(100000 - 54) / 32`).
    pub const MAX_LOCAL_GROUP_MEMBERS: usize = 3123;
    /// Auth methods a client may name, and the bytes of each name slot.
    pub const MAX_AUTH_METHODS: usize = 3;
    pub const MAX_AUTH_NAME: usize = 30;
}

/// The version this implementation speaks and announces: 3.17.3.
pub mod version {
    pub const MAJOR: u8 = 3;
    pub const MINOR: u8 = 17;
    pub const PATCH: u8 = 3;
    /// The version as one comparable number, as the C code computes it.
    pub const fn number(major: u8, minor: u8, patch: u8) -> u32 {
        major as u32 * 10_000 + minor as u32 * 100 + patch as u32
    }
}

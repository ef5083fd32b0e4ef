//! The daemon-to-daemon wire formats of Spread 3.17: what the ring sends over UDP.
//!
//! Two kinds of datagram travel between daemons:
//! * on the **data port** P: one or more packets, each a 32-byte [`PacketHeader`] and a body
//!   ([`packet`]); the body is a message fragment, an ALIVE/JOIN ([`memb`]), nothing (REFER,
//!   HURRY, STATUS request), or a monitor body ([`monitor`]). [`dispatch`] tells them apart.
//! * on the **token port** P+1: one token, a 28-byte [`TokenHeader`] and a body ([`token`]):
//!   the retransmission requests of a regular token, or a FORM1/FORM2 body ([`form`]).
//!
//! Above the ring, [`groups_msg`] is the body of the GROUPS state-exchange message that
//! daemons multicast to each other after a merge.
//!
//! Every struct is written in its sender's byte order and marked by the endian bits of its
//! type word (see [`crate::codec`]). Decoders take the whole slice they are given, return
//! the order they read it in, and refuse short, long or self-contradicting input with a
//! [`WireError`] (never a panic). Encoders write every field the struct holds, including the
//! stale and uninitialised bytes a C daemon puts on the wire, so captured traffic re-encodes
//! byte for byte.

pub mod dispatch;
pub mod form;
pub mod groups_msg;
pub mod memb;
pub mod monitor;
pub mod packet;
pub mod token;

pub use dispatch::{decode_data_datagram, PacketBody, Token, TypedPackets};
pub use packet::{encode_datagram, packet_type, split_datagram, PacketHeader, Packets};
pub use token::{RingRtr, TokenHeader};

/// The largest datagram a 3.17 daemon sends or can receive (`MAX_PACKET_SIZE`).
pub const MAX_DATAGRAM: usize = 1472;

/// Daemons in one ring at most (`MAX_PROCS_RING`): the length of every per-daemon array.
pub const MAX_PROCS_RING: usize = 128;

/// The sizes that bound a ring's tables and tokens.
///
/// 3.17's are fixed ([`Limits::SPREAD_3_17`]): 128-entry member tables and token bodies of
/// at most 1444 bytes, and every byte travels as a 3.17 daemon expects. A ring configured
/// with more than 128 daemons — which no 3.17 daemon can even load, so none can be in it —
/// runs in *extended* mode ([`Limits::extended`]): member tables as long as the
/// configuration, token bodies up to what `rtr_len` (an i16) can count.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Limits {
    /// Entries of every per-daemon table (`members_info`).
    pub procs: usize,
    /// Bytes of a token body.
    pub token_body: usize,
    /// Bytes of one datagram.
    pub datagram: usize,
}

impl Limits {
    pub const SPREAD_3_17: Limits = Limits {
        procs: MAX_PROCS_RING,
        token_body: MAX_DATAGRAM - 28,
        datagram: MAX_DATAGRAM,
    };

    /// For a ring of `procs` daemons (more than 128).
    pub fn extended(procs: usize) -> Limits {
        Limits {
            procs: procs.max(MAX_PROCS_RING),
            token_body: i16::MAX as usize,
            datagram: 32 + i16::MAX as usize,
        }
    }

    /// 3.17's limits up to 128 daemons, extended ones beyond.
    pub fn for_ring(procs: usize) -> Limits {
        if procs > MAX_PROCS_RING {
            Limits::extended(procs)
        } else {
            Limits::SPREAD_3_17
        }
    }

    pub fn is_extended(&self) -> bool {
        *self != Limits::SPREAD_3_17
    }
}

/// Why bytes are not a well-formed ring datagram or body.
///
/// `what` names the struct or field being read, so a log line says where it broke.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("{what}: needs {needed} bytes, only {available} left")]
    Truncated {
        what: &'static str,
        needed: usize,
        available: usize,
    },
    #[error("{what}: {extra} bytes left over after the last field")]
    TrailingBytes { what: &'static str, extra: usize },
    #[error("{what}: the length field says {declared}, the bytes say {actual}")]
    LengthMismatch {
        what: &'static str,
        declared: i64,
        actual: usize,
    },
    #[error("{what}: negative count or length {value}")]
    Negative { what: &'static str, value: i64 },
    #[error("{what}: {value} is more than the {max} the format allows")]
    TooMany {
        what: &'static str,
        value: usize,
        max: usize,
    },
    #[error("{what}: nothing to encode")]
    Empty { what: &'static str },
    #[error("{what}: type word {type_word:#010x} names no packet this decoder knows")]
    UnknownType { what: &'static str, type_word: u32 },
}

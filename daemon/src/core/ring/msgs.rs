//! The ring's messages in logical form: what the protocol reasons about. Byte layouts live
//! in `spread_wire::ring`, and so do the packet type bits (`packet_type`) and representative
//! types (`memb::rep_type`); `codec.rs` converts.

use super::conf::ProcId;
use bytes::Bytes;
use spread_wire::membership::MembershipId;

/// A data (or control) packet: one fragment of a message, or an ALIVE/JOIN/REFER/HURRY.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    pub kind: u32,
    pub transmitter: ProcId,
    pub proc_id: ProcId,
    pub memb_id: MembershipId,
    pub seq: i32,
    pub fifo_seq: i32,
    pub index: i16,
    pub body: Bytes,
}

/// One retransmission request record of a regular token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rtr {
    pub memb_id: MembershipId,
    /// -1: answer by segment cast or broadcast.
    pub proc_id: i32,
    /// -1: answer by broadcast.
    pub seg_index: i16,
    pub seqs: Vec<i32>,
}

/// One representative of a FORM1 token; `rep_type` is one of spread-wire's
/// `memb::rep_type` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rep {
    pub proc_id: ProcId,
    pub rep_type: i16,
    pub seg_index: i16,
}

/// `members_info`: the first `num_members` are "visited", the next `num_pending` wait.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Members {
    pub num_members: usize,
    pub num_pending: usize,
    pub ids: Vec<ProcId>,
}

impl Members {
    pub fn only(id: ProcId) -> Members {
        Members {
            num_members: 1,
            num_pending: 0,
            ids: vec![id],
        }
    }

    pub fn listed(&self) -> &[ProcId] {
        &self.ids[..self.num_members.min(self.ids.len())]
    }

    /// Adds `id` to the listed members unless present (3.17's `Insert_member`).
    pub fn insert(&mut self, id: ProcId, max: usize) -> bool {
        if self.listed().contains(&id) || self.num_members >= max {
            return false;
        }
        self.ids.truncate(self.num_members);
        self.ids.push(id);
        self.num_members += 1;
        true
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reps {
    pub rep_index: usize,
    pub reps: Vec<Rep>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RingInfo {
    pub memb_id: MembershipId,
    pub trans_time: i32,
    pub aru: i32,
    pub highest_seq: i32,
    pub holes: Vec<i32>,
    /// The commit set; its first `num_trans` are the transitional set.
    pub commit: Vec<ProcId>,
    pub num_trans: usize,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenBody {
    Regular(Vec<Rtr>),
    Form1 {
        members: Members,
        reps: Reps,
        rings: Vec<RingInfo>,
    },
    Form2 {
        members: Members,
        memb_id: MembershipId,
        rings: Vec<RingInfo>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    /// Type bits including the ARQ (16-19) and RETRANS (20-23) counters.
    pub kind: u32,
    pub transmitter: ProcId,
    pub seq: i32,
    pub proc_id: ProcId,
    pub aru: i32,
    pub aru_last_id: ProcId,
    pub flow_control: i16,
    pub body: TokenBody,
}

impl Token {
    pub fn arq(&self) -> u32 {
        (self.kind >> 16) & 0xf
    }
    pub fn retrans(&self) -> u32 {
        (self.kind >> 20) & 0xf
    }
    pub fn set_arq(&mut self, v: u32) {
        self.kind = (self.kind & !0x000f_0000) | ((v & 0xf) << 16);
    }
    pub fn set_retrans(&mut self, v: u32) {
        self.kind = (self.kind & !0x00f0_0000) | ((v & 0xf) << 20);
    }
}

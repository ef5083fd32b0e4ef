//! Monitor traffic on the data port: STATUS requests and replies, PARTITION and FC.
//!
//! `spmonitor` sends a bare packet header with `proc_id` = its host (a configured daemon
//! IP), `seq` = its reply port and `memb_id.proc_id` = [`MONITOR_MAGIC`], which lets the
//! packet past the daemon's partition filter. Bodies, in the sender's order:
//!
//! ```text
//! STATUS request  none
//! STATUS reply    status record, 92 bytes: 18 x i32, then 10 x i16
//! PARTITION       i16[128]: component per config index (negative: that daemon exits)
//! FC              i16[128]: personal window per config index, [num_procs] the global
//!                 window, -1 = unchanged
//! ```

use super::packet::{packet_type, PacketHeader};
use super::{WireError, MAX_PROCS_RING};
use crate::codec::Endian;
use crate::cursor::{Reader, Writer};
use crate::membership::MembershipId;

/// What `memb_id.proc_id` holds in every monitor request.
pub const MONITOR_MAGIC: u32 = 15_051_963;

/// Bytes of the `status` record.
pub const STATUS_LEN: usize = 92;

/// Bytes of a PARTITION or FC body.
pub const PER_DAEMON_TABLE_LEN: usize = 2 * MAX_PROCS_RING;

/// The header of a monitor request of type `kind` ([`packet_type::STATUS`],
/// [`packet_type::PARTITION`] or [`packet_type::FC`]) from `monitor_id`, answered at
/// `reply_port`. `data_len` is set by the encoder.
pub fn monitor_request(kind: u32, monitor_id: u32, reply_port: u16) -> PacketHeader {
    PacketHeader {
        proc_id: monitor_id,
        seq: reply_port.into(),
        memb_id: MembershipId {
            proc_id: MONITOR_MAGIC,
            time: 0,
        },
        ..PacketHeader::of_type(kind)
    }
}

/// Whether a header carries the monitor magic.
pub fn is_monitor_request(header: &PacketHeader) -> bool {
    header.memb_id.proc_id == MONITOR_MAGIC
}

/// A daemon's `status` record, the body of a STATUS reply.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Status {
    /// Seconds since the daemon started.
    pub sec: i32,
    /// Membership state (OP 1 ... EVS 6).
    pub state: i32,
    /// Groups state (GOP 1 ... GGT 4).
    pub gstate: i32,
    pub packet_sent: i32,
    pub packet_recv: i32,
    pub packet_delivered: i32,
    pub retrans: i32,
    pub u_retrans: i32,
    pub s_retrans: i32,
    pub b_retrans: i32,
    pub aru: i32,
    pub my_aru: i32,
    pub highest_seq: i32,
    pub token_hurry: i32,
    pub token_rounds: i32,
    pub my_id: u32,
    pub leader_id: u32,
    pub message_delivered: i32,
    pub membership_changes: i16,
    pub num_procs: i16,
    pub num_segments: i16,
    pub window: i16,
    pub personal_window: i16,
    pub num_sessions: i16,
    pub num_groups: i16,
    pub major_version: i16,
    pub minor_version: i16,
    pub patch_version: i16,
}

impl Status {
    /// Decodes a STATUS reply body: exactly 92 bytes.
    pub fn decode(body: &[u8], endian: Endian) -> Result<Status, WireError> {
        let mut r = Reader::new(body, endian, "status record");
        let status = Status {
            sec: r.i32()?,
            state: r.i32()?,
            gstate: r.i32()?,
            packet_sent: r.i32()?,
            packet_recv: r.i32()?,
            packet_delivered: r.i32()?,
            retrans: r.i32()?,
            u_retrans: r.i32()?,
            s_retrans: r.i32()?,
            b_retrans: r.i32()?,
            aru: r.i32()?,
            my_aru: r.i32()?,
            highest_seq: r.i32()?,
            token_hurry: r.i32()?,
            token_rounds: r.i32()?,
            my_id: r.u32()?,
            leader_id: r.u32()?,
            message_delivered: r.i32()?,
            membership_changes: r.i16()?,
            num_procs: r.i16()?,
            num_segments: r.i16()?,
            window: r.i16()?,
            personal_window: r.i16()?,
            num_sessions: r.i16()?,
            num_groups: r.i16()?,
            major_version: r.i16()?,
            minor_version: r.i16()?,
            patch_version: r.i16()?,
        };
        r.finish()?;
        Ok(status)
    }

    pub fn encode(&self, endian: Endian) -> [u8; STATUS_LEN] {
        let mut out = Vec::with_capacity(STATUS_LEN);
        let mut w = Writer::new(&mut out, endian);
        for v in [
            self.sec,
            self.state,
            self.gstate,
            self.packet_sent,
            self.packet_recv,
            self.packet_delivered,
            self.retrans,
            self.u_retrans,
            self.s_retrans,
            self.b_retrans,
            self.aru,
            self.my_aru,
            self.highest_seq,
            self.token_hurry,
            self.token_rounds,
        ] {
            w.i32(v);
        }
        w.u32(self.my_id);
        w.u32(self.leader_id);
        w.i32(self.message_delivered);
        for v in [
            self.membership_changes,
            self.num_procs,
            self.num_segments,
            self.window,
            self.personal_window,
            self.num_sessions,
            self.num_groups,
            self.major_version,
            self.minor_version,
            self.patch_version,
        ] {
            w.i16(v);
        }
        let mut fixed = [0u8; STATUS_LEN];
        fixed.copy_from_slice(&out);
        fixed
    }
}

/// One int16 per config index: the body of PARTITION (component numbers) and FC (windows).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PerDaemonTable {
    pub entries: [i16; MAX_PROCS_RING],
}

impl Default for PerDaemonTable {
    fn default() -> PerDaemonTable {
        PerDaemonTable {
            entries: [0; MAX_PROCS_RING],
        }
    }
}

impl PerDaemonTable {
    /// An FC entry that leaves the window as it is.
    pub const UNCHANGED: i16 = -1;

    /// Decodes a PARTITION or FC body: exactly 256 bytes.
    pub fn decode(body: &[u8], endian: Endian) -> Result<PerDaemonTable, WireError> {
        let mut r = Reader::new(body, endian, "per-daemon table");
        let mut table = PerDaemonTable::default();
        for entry in &mut table.entries {
            *entry = r.i16()?;
        }
        r.finish()?;
        Ok(table)
    }

    pub fn encode(&self, endian: Endian) -> [u8; PER_DAEMON_TABLE_LEN] {
        let mut out = Vec::with_capacity(PER_DAEMON_TABLE_LEN);
        let mut w = Writer::new(&mut out, endian);
        for &entry in &self.entries {
            w.i16(entry);
        }
        let mut fixed = [0u8; PER_DAEMON_TABLE_LEN];
        fixed.copy_from_slice(&out);
        fixed
    }
}

/// The STATUS reply's header as `Stat_init` prepares it: type STATUS, `proc_id` = the
/// daemon; every other field left zero.
pub fn status_reply_header(daemon_id: u32) -> PacketHeader {
    PacketHeader {
        proc_id: daemon_id,
        ..PacketHeader::of_type(packet_type::STATUS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ring::packet::{encode_datagram, split_datagram};
    use proptest::prelude::*;

    fn status() -> Status {
        Status {
            sec: 12,
            state: 1,
            gstate: 1,
            packet_sent: 40,
            aru: 9,
            my_aru: 9,
            highest_seq: 9,
            my_id: 0x7f00_0001,
            leader_id: 0x7f00_0001,
            membership_changes: 1,
            num_procs: 3,
            num_segments: 1,
            window: 60,
            personal_window: 15,
            major_version: 3,
            minor_version: 17,
            patch_version: 3,
            ..Status::default()
        }
    }

    #[test]
    fn status_round_trips_in_both_orders() {
        for endian in [Endian::Little, Endian::Big] {
            let raw = status().encode(endian);
            assert_eq!(Status::decode(&raw, endian).unwrap(), status());
            // The version sits in the last three int16s.
            let minor = endian.read_u16([raw[88], raw[89]]);
            assert_eq!(minor, 17);
        }
        assert!(Status::decode(&[0; 91], Endian::Little).is_err());
        assert!(Status::decode(&[0; 93], Endian::Little).is_err());
    }

    #[test]
    fn monitor_datagrams_round_trip() {
        for endian in [Endian::Little, Endian::Big] {
            let request = monitor_request(packet_type::STATUS, 0x7f00_0001, 6543);
            let raw = encode_datagram(endian, &[(request, &[][..])]).unwrap();
            assert_eq!(raw.len(), 32);
            let (_, packets) = split_datagram(&raw).unwrap();
            assert!(is_monitor_request(&packets[0].0));
            assert_eq!(packets[0].0.seq, 6543);

            let mut table = PerDaemonTable::default();
            table.entries[0] = 1;
            table.entries[2] = PerDaemonTable::UNCHANGED;
            let body = table.encode(endian);
            let fc = monitor_request(packet_type::FC, 0x7f00_0001, 6543);
            let raw = encode_datagram(endian, &[(fc, &body[..])]).unwrap();
            let (_, packets) = split_datagram(&raw).unwrap();
            assert_eq!(PerDaemonTable::decode(packets[0].1, endian).unwrap(), table);
        }
        assert!(PerDaemonTable::decode(&[0; 255], Endian::Little).is_err());
        assert!(PerDaemonTable::decode(&[0; 258], Endian::Little).is_err());
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(raw in proptest::collection::vec(any::<u8>(), 0..300),
                                    big in any::<bool>()) {
            let endian = if big { Endian::Big } else { Endian::Little };
            if let Ok(s) = Status::decode(&raw, endian) {
                prop_assert_eq!(&s.encode(endian)[..], &raw[..]);
            }
            if let Ok(t) = PerDaemonTable::decode(&raw, endian) {
                prop_assert_eq!(&t.encode(endian)[..], &raw[..]);
            }
        }
    }
}

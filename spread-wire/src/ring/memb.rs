//! Bodies of the membership packets ALIVE, JOIN and REFER (data port).
//!
//! ```text
//! ALIVE  members prefix:  i16 num_members, i16 num_pending, num_members x i32 daemon id
//! JOIN   members prefix, then reps prefix: i16 num_reps, i16 rep_index,
//!                                          num_reps x {i32 proc_id, i16 type, i16 seg_index}
//! REFER  no body; the header's memb_id carries {referred rep's id, its rep type}
//! ```
//! These are the used prefixes of the fixed `members_info` (516 bytes) and `reps_info`
//! (204 bytes) arrays; FORM tokens carry the full arrays ([`super::form`]). The prefix length
//! counts `num_members` entries only, even when `num_pending` is not zero.
//!
//! Daemon ids are IPv4 addresses as host-order integers (127.0.0.1 is 0x7f000001), the same
//! convention as [`MembershipId::proc_id`].

use super::packet::{packet_type, PacketHeader};
use super::{Limits, WireError};
use crate::codec::Endian;
use crate::cursor::{checked_count, i16_count, Reader, Writer};
use crate::membership::MembershipId;

/// Entries of the rep array (`MAX_REPS`).
pub const MAX_REPS: usize = 25;

/// Bytes of one `rep_info`.
pub const REP_INFO_LEN: usize = 8;

/// Representative types (`membership.h`).
pub mod rep_type {
    /// A daemon believed to be the first live one of another segment, not yet heard from.
    pub const POTENTIAL_REP: i16 = 0;
    /// Speaks for the lone daemons of its segment.
    pub const SEG_REP: i16 = 1;
    /// The leader of a live ring trying to merge.
    pub const RING_REP: i16 = 2;
}

/// A list of daemons as the used prefix of `members_info`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct MemberList {
    /// Travels but does not size the prefix (0 in every ALIVE and JOIN a 3.17 daemon sends).
    pub num_pending: i16,
    /// The `num_members` daemon ids.
    pub members: Vec<u32>,
}

impl MemberList {
    pub fn encoded_len(&self) -> usize {
        4 + 4 * self.members.len()
    }

    fn read(r: &mut Reader<'_>, limits: Limits) -> Result<MemberList, WireError> {
        let num_members = r.i16()?;
        let num_pending = r.i16()?;
        let n = checked_count(num_members.into(), "members num_members", limits.procs)?;
        let members = (0..n).map(|_| r.u32()).collect::<Result<_, _>>()?;
        Ok(MemberList {
            num_pending,
            members,
        })
    }

    fn write(&self, w: &mut Writer<'_>, limits: Limits) -> Result<(), WireError> {
        w.i16(i16_count(
            self.members.len(),
            "members num_members",
            limits.procs,
        )?);
        w.i16(self.num_pending);
        for &m in &self.members {
            w.u32(m);
        }
        Ok(())
    }
}

/// One `rep_info`: a representative of a segment or of a ring.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct RepInfo {
    pub proc_id: u32,
    /// One of [`rep_type`].
    pub rep_type: i16,
    /// The rep's segment, by config index.
    pub seg_index: i16,
}

impl RepInfo {
    pub(crate) fn read(r: &mut Reader<'_>) -> Result<RepInfo, WireError> {
        Ok(RepInfo {
            proc_id: r.u32()?,
            rep_type: r.i16()?,
            seg_index: r.i16()?,
        })
    }

    pub(crate) fn write(&self, w: &mut Writer<'_>) {
        w.u32(self.proc_id);
        w.i16(self.rep_type);
        w.i16(self.seg_index);
    }
}

/// A list of reps as the used prefix of `reps_info`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct RepList {
    /// The rep a FORM1 token visits next; travels in JOINs but means nothing there.
    pub rep_index: i16,
    /// The `num_reps` reps; in a JOIN, `reps[0]` is the sender.
    pub reps: Vec<RepInfo>,
}

impl RepList {
    pub fn encoded_len(&self) -> usize {
        4 + REP_INFO_LEN * self.reps.len()
    }

    fn read(r: &mut Reader<'_>) -> Result<RepList, WireError> {
        let num_reps = r.i16()?;
        let rep_index = r.i16()?;
        let n = checked_count(num_reps.into(), "reps num_reps", MAX_REPS)?;
        let reps = (0..n).map(|_| RepInfo::read(r)).collect::<Result<_, _>>()?;
        Ok(RepList { rep_index, reps })
    }

    fn write(&self, w: &mut Writer<'_>) -> Result<(), WireError> {
        w.i16(i16_count(self.reps.len(), "reps num_reps", MAX_REPS)?);
        w.i16(self.rep_index);
        for rep in &self.reps {
            rep.write(w);
        }
        Ok(())
    }
}

/// An ALIVE body: the daemons of my segment I have heard from (segment cast in SEG state).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct AliveBody {
    pub members: MemberList,
}

impl AliveBody {
    /// Decodes a whole ALIVE body; its length must be exactly what `num_members` says.
    pub fn decode(body: &[u8], endian: Endian) -> Result<AliveBody, WireError> {
        AliveBody::decode_in(body, endian, Limits::SPREAD_3_17)
    }

    pub fn decode_in(body: &[u8], endian: Endian, limits: Limits) -> Result<AliveBody, WireError> {
        let mut r = Reader::new(body, endian, "ALIVE body");
        let members = MemberList::read(&mut r, limits)?;
        r.finish()?;
        Ok(AliveBody { members })
    }

    pub fn encode(&self, endian: Endian) -> Result<Vec<u8>, WireError> {
        self.encode_in(endian, Limits::SPREAD_3_17)
    }

    pub fn encode_in(&self, endian: Endian, limits: Limits) -> Result<Vec<u8>, WireError> {
        let mut out = Vec::with_capacity(self.members.encoded_len());
        self.members
            .write(&mut Writer::new(&mut out, endian), limits)?;
        Ok(out)
    }
}

/// A JOIN body: the members I gather for and the reps I know of.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct JoinBody {
    pub members: MemberList,
    pub reps: RepList,
}

impl JoinBody {
    /// Decodes a whole JOIN body; both prefixes must fill it exactly.
    pub fn decode(body: &[u8], endian: Endian) -> Result<JoinBody, WireError> {
        JoinBody::decode_in(body, endian, Limits::SPREAD_3_17)
    }

    pub fn decode_in(body: &[u8], endian: Endian, limits: Limits) -> Result<JoinBody, WireError> {
        let mut r = Reader::new(body, endian, "JOIN body");
        let members = MemberList::read(&mut r, limits)?;
        let reps = RepList::read(&mut r)?;
        r.finish()?;
        Ok(JoinBody { members, reps })
    }

    pub fn encode(&self, endian: Endian) -> Result<Vec<u8>, WireError> {
        self.encode_in(endian, Limits::SPREAD_3_17)
    }

    pub fn encode_in(&self, endian: Endian, limits: Limits) -> Result<Vec<u8>, WireError> {
        let mut out = Vec::with_capacity(self.members.encoded_len() + self.reps.encoded_len());
        let mut w = Writer::new(&mut out, endian);
        self.members.write(&mut w, limits)?;
        self.reps.write(&mut w)?;
        Ok(out)
    }
}

/// What a REFER says: "ask this rep instead". It has no body; both values ride in the
/// header's `memb_id`, and its `seq`, `fifo_seq` and `packet_index` are stack garbage.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Refer {
    /// The referred rep (`memb_id.proc_id`).
    pub rep_id: u32,
    /// Its [`rep_type`] (`memb_id.time`): SEG_REP or RING_REP.
    pub rep_type: i32,
}

impl Refer {
    pub fn from_header(header: &PacketHeader) -> Refer {
        Refer {
            rep_id: header.memb_id.proc_id,
            rep_type: header.memb_id.time,
        }
    }

    /// The header a daemon `sender` sends, with zeros where C leaves garbage.
    pub fn header(&self, sender: u32) -> PacketHeader {
        PacketHeader {
            transmitter_id: sender,
            proc_id: sender,
            memb_id: MembershipId {
                proc_id: self.rep_id,
                time: self.rep_type,
            },
            ..PacketHeader::of_type(packet_type::REFER)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    const N1: u32 = 0x7f00_0001;
    const N2: u32 = 0x7f00_0002;
    const N3: u32 = 0x7f00_0003;

    #[test]
    fn decodes_a_captured_alive() {
        // one-broadcast-segment: n1 has heard from n1, n2, n3 (data_len 16).
        let raw = hex("0300 0000 0100007f 0200007f 0300007f");
        let alive = AliveBody::decode(&raw, Endian::Little).unwrap();
        assert_eq!(alive.members.members, vec![N1, N2, N3]);
        assert_eq!(alive.members.num_pending, 0);
        assert_eq!(alive.encode(Endian::Little).unwrap(), raw);
    }

    #[test]
    fn decodes_captured_joins() {
        // three-segments: n1 gathers for itself and knows three SEG_REPs (data_len 36).
        let raw = hex("0100 0000 0100007f  0300 0000 0100007f 0100 0000 0200007f 0100 0100 0300007f 0100 0200");
        let join = JoinBody::decode(&raw, Endian::Little).unwrap();
        assert_eq!(join.members.members, vec![N1]);
        assert_eq!(join.reps.rep_index, 0);
        let reps: Vec<_> = join
            .reps
            .reps
            .iter()
            .map(|r| (r.proc_id, r.rep_type, r.seg_index))
            .collect();
        assert_eq!(
            reps,
            vec![
                (N1, rep_type::SEG_REP, 0),
                (N2, rep_type::SEG_REP, 1),
                (N3, rep_type::SEG_REP, 2)
            ]
        );
        assert_eq!(join.encode(Endian::Little).unwrap(), raw);
        // f_ring: a ring leader's lookup probe has no members at all (data_len 16).
        let probe = hex("0000 0000 0100 0100 0b00007f 0200 0000");
        let join = JoinBody::decode(&probe, Endian::Little).unwrap();
        assert!(join.members.members.is_empty());
        assert_eq!(join.reps.rep_index, 1);
        assert_eq!(join.reps.reps[0].rep_type, rep_type::RING_REP);
        assert_eq!(join.encode(Endian::Little).unwrap(), probe);
    }

    #[test]
    fn round_trip_in_both_orders() {
        let join = JoinBody {
            members: MemberList {
                num_pending: 2,
                members: vec![N1, N3],
            },
            reps: RepList {
                rep_index: 1,
                reps: vec![
                    RepInfo {
                        proc_id: N1,
                        rep_type: rep_type::RING_REP,
                        seg_index: 0,
                    },
                    RepInfo {
                        proc_id: N2,
                        rep_type: rep_type::POTENTIAL_REP,
                        seg_index: 4,
                    },
                ],
            },
        };
        for endian in [Endian::Little, Endian::Big] {
            let raw = join.encode(endian).unwrap();
            assert_eq!(raw.len(), 4 + 8 + 4 + 16);
            assert_eq!(JoinBody::decode(&raw, endian).unwrap(), join);
            let alive = AliveBody {
                members: join.members.clone(),
            };
            assert_eq!(
                AliveBody::decode(&alive.encode(endian).unwrap(), endian).unwrap(),
                alive
            );
        }
        // Big-endian bytes are the little-endian ones swapped field by field.
        assert_eq!(
            &join.encode(Endian::Big).unwrap()[..8],
            &hex("0002 0002 7f000001")[..]
        );
    }

    #[test]
    fn lying_counts_are_refused() {
        let raw = hex("0300 0000 0100007f 0200007f 0300007f");
        assert!(AliveBody::decode(&raw[..raw.len() - 4], Endian::Little).is_err());
        let mut long = raw.clone();
        long.extend_from_slice(&[0; 4]);
        assert!(matches!(
            AliveBody::decode(&long, Endian::Little),
            Err(WireError::TrailingBytes { .. })
        ));
        let mut negative = raw.clone();
        negative[0..2].copy_from_slice(&(-1i16).to_le_bytes());
        assert!(matches!(
            AliveBody::decode(&negative, Endian::Little),
            Err(WireError::Negative { .. })
        ));
        let mut huge = vec![0u8; 4 + 4 * 129];
        huge[0] = 129;
        assert!(matches!(
            AliveBody::decode(&huge, Endian::Little),
            Err(WireError::TooMany { .. })
        ));
        // A JOIN whose reps count runs past the end, and one with 26 reps.
        let join = hex("0000 0000 0200 0000 0b00007f 0200 0000");
        assert!(JoinBody::decode(&join, Endian::Little).is_err());
        let mut many = vec![0u8; 4 + 4 + 8 * 26];
        many[4] = 26;
        assert!(JoinBody::decode(&many, Endian::Little).is_err());
        assert!(JoinBody::decode(&[0, 0], Endian::Little).is_err());
        // Encoders refuse what the C arrays cannot hold.
        let too_many = AliveBody {
            members: MemberList {
                num_pending: 0,
                members: vec![1; 129],
            },
        };
        assert!(too_many.encode(Endian::Little).is_err());
    }

    #[test]
    fn refer_rides_in_the_header() {
        let refer = Refer {
            rep_id: 0x7f00_000b,
            rep_type: rep_type::RING_REP.into(),
        };
        let header = refer.header(0x7f00_000c);
        assert_eq!(header.type_bits(), packet_type::REFER);
        assert_eq!(Refer::from_header(&header), refer);
        let raw = header.encode(Endian::Little);
        assert_eq!(
            &raw[..20],
            &hex("80040080 0c00007f 0c00007f 0b00007f 02000000")[..]
        );
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(raw in proptest::collection::vec(any::<u8>(), 0..1200),
                                    big in any::<bool>()) {
            let endian = if big { Endian::Big } else { Endian::Little };
            if let Ok(alive) = AliveBody::decode(&raw, endian) {
                prop_assert_eq!(alive.encode(endian).unwrap(), raw.clone());
            }
            if let Ok(join) = JoinBody::decode(&raw, endian) {
                prop_assert_eq!(join.encode(endian).unwrap(), raw);
            }
        }

        #[test]
        fn small_prefixes_decode_and_round_trip(big in any::<bool>(),
                                                members in proptest::collection::vec(any::<u32>(), 0..5),
                                                pending in any::<i16>()) {
            let endian = if big { Endian::Big } else { Endian::Little };
            let mut raw = Vec::new();
            let w = |v: u16| if big { v.to_be_bytes() } else { v.to_le_bytes() };
            raw.extend_from_slice(&w(members.len() as u16));
            raw.extend_from_slice(&w(pending as u16));
            for m in &members {
                raw.extend_from_slice(&endian.u32_bytes(*m));
            }
            let alive = AliveBody::decode(&raw, endian).unwrap();
            prop_assert_eq!(&alive.members.members, &members);
            prop_assert_eq!(alive.encode(endian).unwrap(), raw);
        }
    }
}

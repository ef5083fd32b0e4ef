//! Bodies of the FORM1 and FORM2 tokens that form a new ring (token port).
//!
//! ```text
//! FORM1: members_info (516) | reps_info (204)        | i32 num_rings | ring records
//! FORM2: members_info (516) | membership_id (8)      | i32 num_rings | ring records
//!
//! members_info: i16 num_members, i16 num_pending, i32 members[128]
//! reps_info:    i16 num_reps,    i16 rep_index,   rep_info reps[25]  (8 bytes each)
//! ring record:  ring_info (28) | num_holes x i32 seq | num_commit x i32 daemon id
//! ring_info:    memb_id(8), i32 trans_time, i32 aru, i32 highest_seq, i32 num_holes,
//!               i16 num_commit, i16 num_trans
//! ```
//! Unlike ALIVE and JOIN, FORM tokens carry the **whole** fixed arrays, and the slots past
//! the counts hold whatever the sending daemon had there before (stale ids, old reps). The
//! tables below keep every slot so a forwarded token re-encodes byte for byte; a daemon
//! that builds one from scratch should leave those slots zero.
//!
//! A FORM2 is the last FORM1 with its type changed and its 204-byte reps array cut to the
//! first 8 bytes, which the new ring's leader overwrites with the new ring id: until then
//! those 8 bytes are the leading bytes of the old `reps_info`.

use super::memb::{RepInfo, MAX_REPS, REP_INFO_LEN};
use super::{Limits, WireError, MAX_PROCS_RING};
use crate::codec::Endian;
use crate::cursor::{checked_count, i16_count, Reader, Writer};
use crate::membership::MembershipId;

/// Bytes of the full `members_info`.
pub const MEMBERS_INFO_LEN: usize = 4 + 4 * MAX_PROCS_RING;
/// Bytes of the full `reps_info`.
pub const REPS_INFO_LEN: usize = 4 + REP_INFO_LEN * MAX_REPS;
/// Bytes of a `ring_info` before its holes and commit set.
pub const RING_INFO_LEN: usize = 28;
/// A filler whose old ring would be the 21st removes itself instead (`MAX_FORM_REPS`).
pub const MAX_FORM_RINGS: usize = 20;

/// The full `members_info` array of a FORM token.
///
/// `slots[..num_members]` are the daemons the token has visited, the next `num_pending`
/// the ones still to visit (FORM2: the whole new ring, in config order). The rest travels
/// as stale bytes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MembersTable {
    pub num_members: i16,
    pub num_pending: i16,
    /// `Limits::procs` entries (128 in 3.17).
    pub slots: Vec<u32>,
}

impl Default for MembersTable {
    fn default() -> MembersTable {
        MembersTable {
            num_members: 0,
            num_pending: 0,
            slots: vec![0; MAX_PROCS_RING],
        }
    }
}

impl MembersTable {
    /// A table listing `ids`, of which the first `visited` count as `num_members` and the
    /// rest as pending; unused slots zero.
    pub fn from_ids(ids: &[u32], visited: usize) -> Result<MembersTable, WireError> {
        MembersTable::from_ids_in(ids, visited, Limits::SPREAD_3_17)
    }

    /// The same, with `limits.procs` slots.
    pub fn from_ids_in(
        ids: &[u32],
        visited: usize,
        limits: Limits,
    ) -> Result<MembersTable, WireError> {
        let total = i16_count(ids.len(), "members_info entries", limits.procs)?;
        let visited = i16_count(visited, "members_info num_members", ids.len())?;
        let mut table = MembersTable {
            num_members: visited,
            num_pending: total - visited,
            slots: vec![0; limits.procs],
        };
        table.slots[..ids.len()].copy_from_slice(ids);
        Ok(table)
    }

    /// Visited then pending daemons: `slots[..num_members + num_pending]`.
    pub fn listed(&self) -> &[u32] {
        &self.slots[..self.visited_len() + self.pending_len()]
    }

    /// The daemons the token has visited (FORM2: already processed it).
    pub fn visited(&self) -> &[u32] {
        &self.slots[..self.visited_len()]
    }

    /// The daemons still to visit.
    pub fn pending(&self) -> &[u32] {
        let start = self.visited_len();
        &self.slots[start..start + self.pending_len()]
    }

    fn visited_len(&self) -> usize {
        usize::try_from(self.num_members)
            .unwrap_or(0)
            .min(self.slots.len())
    }

    fn pending_len(&self) -> usize {
        let pending = usize::try_from(self.num_pending).unwrap_or(0);
        pending.min(self.slots.len() - self.visited_len())
    }

    pub(crate) fn read(r: &mut Reader<'_>, limits: Limits) -> Result<MembersTable, WireError> {
        let num_members = r.i16()?;
        let num_pending = r.i16()?;
        let visited = checked_count(num_members.into(), "members_info num_members", limits.procs)?;
        checked_count(
            num_pending.into(),
            "members_info num_pending",
            limits.procs - visited,
        )?;
        let mut slots = vec![0u32; limits.procs];
        for slot in &mut slots {
            *slot = r.u32()?;
        }
        Ok(MembersTable {
            num_members,
            num_pending,
            slots,
        })
    }

    pub(crate) fn write(&self, w: &mut Writer<'_>) {
        w.i16(self.num_members);
        w.i16(self.num_pending);
        for &slot in &self.slots {
            w.u32(slot);
        }
    }
}

/// The full `reps_info` array of a FORM1 token: `slots[..num_reps]` are the reps of the
/// rings being merged, `rep_index` the next one the token goes to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct RepsTable {
    pub num_reps: i16,
    pub rep_index: i16,
    pub slots: [RepInfo; MAX_REPS],
}

impl RepsTable {
    /// A table of `reps` with unused slots zero.
    pub fn from_reps(reps: &[RepInfo], rep_index: i16) -> Result<RepsTable, WireError> {
        let mut table = RepsTable {
            num_reps: i16_count(reps.len(), "reps_info num_reps", MAX_REPS)?,
            rep_index,
            ..RepsTable::default()
        };
        table.slots[..reps.len()].copy_from_slice(reps);
        Ok(table)
    }

    /// The valid reps: `slots[..num_reps]`.
    pub fn reps(&self) -> &[RepInfo] {
        let n = usize::try_from(self.num_reps).unwrap_or(0).min(MAX_REPS);
        &self.slots[..n]
    }

    fn read(r: &mut Reader<'_>) -> Result<RepsTable, WireError> {
        let num_reps = r.i16()?;
        let rep_index = r.i16()?;
        checked_count(num_reps.into(), "reps_info num_reps", MAX_REPS)?;
        let mut slots = [RepInfo::default(); MAX_REPS];
        for slot in &mut slots {
            *slot = RepInfo::read(r)?;
        }
        Ok(RepsTable {
            num_reps,
            rep_index,
            slots,
        })
    }

    fn write(&self, w: &mut Writer<'_>) {
        w.i16(self.num_reps);
        w.i16(self.rep_index);
        for slot in &self.slots {
            slot.write(w);
        }
    }
}

/// What one old ring brings into the new one: a `ring_info`, its holes and commit set.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct RingRecord {
    /// The old ring's id.
    pub memb_id: MembershipId,
    /// 0 until a member of the old ring stamps it in `Read_form2`.
    pub trans_time: i32,
    /// Highest aru over the old ring's members.
    pub aru: i32,
    pub highest_seq: i32,
    /// Old-ring sequence numbers missing at every member so far (`num_holes` of them).
    pub holes: Vec<i32>,
    /// The commit set (`num_commit` daemon ids); the first `num_trans` are the
    /// transitional set.
    pub commit: Vec<u32>,
    pub num_trans: i16,
}

impl RingRecord {
    pub fn encoded_len(&self) -> usize {
        RING_INFO_LEN + 4 * (self.holes.len() + self.commit.len())
    }

    /// The transitional set, `commit[..num_trans]`; `None` if `num_trans` is out of range.
    pub fn trans_set(&self) -> Option<&[u32]> {
        self.commit.get(..usize::try_from(self.num_trans).ok()?)
    }

    fn read(r: &mut Reader<'_>, limits: Limits) -> Result<RingRecord, WireError> {
        let memb_id = MembershipId {
            proc_id: r.u32()?,
            time: r.i32()?,
        };
        let trans_time = r.i32()?;
        let aru = r.i32()?;
        let highest_seq = r.i32()?;
        let num_holes = r.i32()?;
        let num_commit = r.i16()?;
        let num_trans = r.i16()?;
        let num_holes = checked_count(
            num_holes.into(),
            "ring_info num_holes",
            limits.token_body / 4,
        )?;
        let num_commit = checked_count(num_commit.into(), "ring_info num_commit", limits.procs)?;
        let holes = (0..num_holes).map(|_| r.i32()).collect::<Result<_, _>>()?;
        let commit = (0..num_commit).map(|_| r.u32()).collect::<Result<_, _>>()?;
        Ok(RingRecord {
            memb_id,
            trans_time,
            aru,
            highest_seq,
            holes,
            commit,
            num_trans,
        })
    }

    fn write(&self, w: &mut Writer<'_>, limits: Limits) -> Result<(), WireError> {
        let num_holes = i16_count(
            self.holes.len(),
            "ring_info num_holes",
            limits.token_body / 4,
        )?;
        let num_commit = i16_count(self.commit.len(), "ring_info num_commit", limits.procs)?;
        w.u32(self.memb_id.proc_id);
        w.i32(self.memb_id.time);
        w.i32(self.trans_time);
        w.i32(self.aru);
        w.i32(self.highest_seq);
        w.i32(num_holes.into());
        w.i16(num_commit);
        w.i16(self.num_trans);
        for &hole in &self.holes {
            w.i32(hole);
        }
        for &id in &self.commit {
            w.u32(id);
        }
        Ok(())
    }
}

fn read_rings(r: &mut Reader<'_>, limits: Limits) -> Result<Vec<RingRecord>, WireError> {
    let num_rings = r.i32()?;
    let num_rings = checked_count(
        num_rings.into(),
        "form num_rings",
        limits.token_body / RING_INFO_LEN,
    )?;
    (0..num_rings)
        .map(|_| RingRecord::read(r, limits))
        .collect()
}

fn write_rings(rings: &[RingRecord], w: &mut Writer<'_>, limits: Limits) -> Result<(), WireError> {
    let num_rings = i16_count(
        rings.len(),
        "form num_rings",
        limits.token_body / RING_INFO_LEN,
    )?;
    w.i32(num_rings.into());
    rings.iter().try_for_each(|ring| ring.write(w, limits))
}

/// Refuses FORM bodies longer than a token can carry, in either direction.
fn check_body_len(len: usize, limits: Limits) -> Result<(), WireError> {
    if len > limits.token_body {
        return Err(WireError::TooMany {
            what: "FORM token body length",
            value: len,
            max: limits.token_body,
        });
    }
    Ok(())
}

fn checked_body(out: Vec<u8>, limits: Limits) -> Result<Vec<u8>, WireError> {
    check_body_len(out.len(), limits)?;
    Ok(out)
}

/// The body of a FORM1 token, which walks every member of every merging ring.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Form1Body {
    pub members: MembersTable,
    pub reps: RepsTable,
    pub rings: Vec<RingRecord>,
}

impl Form1Body {
    /// Decodes a whole FORM1 body (`rtr_len` bytes); the ring records must fill it exactly.
    pub fn decode(body: &[u8], endian: Endian) -> Result<Form1Body, WireError> {
        Form1Body::decode_in(body, endian, Limits::SPREAD_3_17)
    }

    /// Decodes with the given limits (extended rings).
    pub fn decode_in(body: &[u8], endian: Endian, limits: Limits) -> Result<Form1Body, WireError> {
        check_body_len(body.len(), limits)?;
        let mut r = Reader::new(body, endian, "FORM1 body");
        let members = MembersTable::read(&mut r, limits)?;
        let reps = RepsTable::read(&mut r)?;
        let rings = read_rings(&mut r, limits)?;
        r.finish()?;
        Ok(Form1Body {
            members,
            reps,
            rings,
        })
    }

    /// Encodes; refuses bodies over [`MAX_TOKEN_BODY`](super::token::MAX_TOKEN_BODY), which a C daemon dies on.
    pub fn encode(&self, endian: Endian) -> Result<Vec<u8>, WireError> {
        self.encode_in(endian, Limits::SPREAD_3_17)
    }

    /// Encodes within the given limits (extended rings).
    pub fn encode_in(&self, endian: Endian, limits: Limits) -> Result<Vec<u8>, WireError> {
        let mut out = Vec::with_capacity(MEMBERS_INFO_LEN + REPS_INFO_LEN + 4);
        let mut w = Writer::new(&mut out, endian);
        self.members.write(&mut w);
        self.reps.write(&mut w);
        write_rings(&self.rings, &mut w, limits)?;
        checked_body(out, limits)
    }
}

/// The body of a FORM2 token, which installs the new ring along its config order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Form2Body {
    pub members: MembersTable,
    /// The new ring's id, written by its leader (the first member); before that, the
    /// leading 8 bytes of the FORM1's `reps_info`.
    pub ring_id: MembershipId,
    pub rings: Vec<RingRecord>,
}

impl Form2Body {
    /// Decodes a whole FORM2 body; the ring records must fill it exactly.
    pub fn decode(body: &[u8], endian: Endian) -> Result<Form2Body, WireError> {
        Form2Body::decode_in(body, endian, Limits::SPREAD_3_17)
    }

    /// Decodes with the given limits (extended rings).
    pub fn decode_in(body: &[u8], endian: Endian, limits: Limits) -> Result<Form2Body, WireError> {
        check_body_len(body.len(), limits)?;
        let mut r = Reader::new(body, endian, "FORM2 body");
        let members = MembersTable::read(&mut r, limits)?;
        let ring_id = MembershipId {
            proc_id: r.u32()?,
            time: r.i32()?,
        };
        let rings = read_rings(&mut r, limits)?;
        r.finish()?;
        Ok(Form2Body {
            members,
            ring_id,
            rings,
        })
    }

    pub fn encode(&self, endian: Endian) -> Result<Vec<u8>, WireError> {
        self.encode_in(endian, Limits::SPREAD_3_17)
    }

    /// Encodes within the given limits (extended rings).
    pub fn encode_in(&self, endian: Endian, limits: Limits) -> Result<Vec<u8>, WireError> {
        let mut out = Vec::with_capacity(MEMBERS_INFO_LEN + 8 + 4);
        let mut w = Writer::new(&mut out, endian);
        self.members.write(&mut w);
        w.u32(self.ring_id.proc_id);
        w.i32(self.ring_id.time);
        write_rings(&self.rings, &mut w, limits)?;
        checked_body(out, limits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ring::memb::rep_type;
    use proptest::prelude::*;

    const N1: u32 = 0x7f00_0001;
    const N2: u32 = 0x7f00_0002;
    const N3: u32 = 0x7f00_0003;

    fn singleton_ring(id: u32, time: i32) -> RingRecord {
        RingRecord {
            memb_id: MembershipId { proc_id: id, time },
            trans_time: 0,
            aru: 9,
            highest_seq: 11,
            holes: vec![10],
            commit: vec![id],
            num_trans: 1,
        }
    }

    fn form1() -> Form1Body {
        let mut members = MembersTable::from_ids(&[N1, N2], 1).unwrap();
        // Stale ids from an earlier formation travel too.
        members.slots[5] = 0xdead_beef;
        let mut reps = RepsTable::from_reps(
            &[
                RepInfo {
                    proc_id: N1,
                    rep_type: rep_type::SEG_REP,
                    seg_index: 0,
                },
                RepInfo {
                    proc_id: N3,
                    rep_type: rep_type::RING_REP,
                    seg_index: 2,
                },
            ],
            1,
        )
        .unwrap();
        reps.slots[24].proc_id = 0x0102_0304;
        Form1Body {
            members,
            reps,
            rings: vec![singleton_ring(N1, -1), singleton_ring(N2, 1_795_656_837)],
        }
    }

    #[test]
    fn form1_sizes_match_the_captures() {
        // A first rep with one singleton ring and no holes: 516 + 204 + 4 + 28 + 4 = 756.
        let mut body = form1();
        body.rings = vec![RingRecord {
            holes: vec![],
            ..singleton_ring(N1, -1)
        }];
        assert_eq!(body.encode(Endian::Little).unwrap().len(), 756);
        // FORM2 for three singleton rings: 516 + 8 + 4 + 3 x 32 = 624.
        let form2 = Form2Body {
            members: MembersTable::from_ids(&[N1, N2, N3], 0).unwrap(),
            ring_id: MembershipId {
                proc_id: N1,
                time: 1_795_656_837,
            },
            rings: [N1, N2, N3]
                .iter()
                .map(|&id| RingRecord {
                    holes: vec![],
                    ..singleton_ring(id, -1)
                })
                .collect(),
        };
        assert_eq!(form2.encode(Endian::Little).unwrap().len(), 624);
    }

    #[test]
    fn round_trip_in_both_orders_keeping_stale_slots() {
        for endian in [Endian::Little, Endian::Big] {
            let body = form1();
            let raw = body.encode(endian).unwrap();
            assert_eq!(raw.len(), 516 + 204 + 4 + 2 * 36);
            let back = Form1Body::decode(&raw, endian).unwrap();
            assert_eq!(back, body);
            assert_eq!(back.members.visited(), &[N1]);
            assert_eq!(back.members.pending(), &[N2]);
            assert_eq!(back.members.slots[5], 0xdead_beef);
            assert_eq!(back.reps.reps().len(), 2);
            assert_eq!(back.rings[1].trans_set(), Some(&[N2][..]));

            let form2 = Form2Body {
                members: body.members.clone(),
                ring_id: MembershipId {
                    proc_id: N1,
                    time: 77,
                },
                rings: body.rings.clone(),
            };
            let raw2 = form2.encode(endian).unwrap();
            assert_eq!(Form2Body::decode(&raw2, endian).unwrap(), form2);
            // FORM2 is FORM1 with the reps array cut to its first 8 bytes.
            let mut cut = raw[..516 + 8].to_vec();
            cut.extend_from_slice(&raw[516 + 204..]);
            let as_form2 = Form2Body::decode(&cut, endian).unwrap();
            assert_eq!(as_form2.encode(endian).unwrap(), cut);
        }
    }

    #[test]
    fn lying_counts_are_refused() {
        let raw = form1().encode(Endian::Little).unwrap();
        assert!(Form1Body::decode(&raw[..raw.len() - 1], Endian::Little).is_err());
        let mut long = raw.clone();
        long.extend_from_slice(&[0; 4]);
        assert!(matches!(
            Form1Body::decode(&long, Endian::Little),
            Err(WireError::TrailingBytes { .. })
        ));
        let rings_at = MEMBERS_INFO_LEN + REPS_INFO_LEN;
        let mut more_rings = raw.clone();
        more_rings[rings_at] = 3;
        assert!(Form1Body::decode(&more_rings, Endian::Little).is_err());
        let mut negative_rings = raw.clone();
        negative_rings[rings_at..rings_at + 4].copy_from_slice(&(-1i32).to_le_bytes());
        assert!(matches!(
            Form1Body::decode(&negative_rings, Endian::Little),
            Err(WireError::Negative { .. })
        ));
        let mut holes = raw.clone();
        holes[rings_at + 4 + 20] = 2;
        assert!(Form1Body::decode(&holes, Endian::Little).is_err());
        let mut members = raw.clone();
        members[0..2].copy_from_slice(&100i16.to_le_bytes());
        members[2..4].copy_from_slice(&29i16.to_le_bytes());
        assert!(matches!(
            Form1Body::decode(&members, Endian::Little),
            Err(WireError::TooMany { .. })
        ));
        let mut reps = raw;
        reps[MEMBERS_INFO_LEN] = 26;
        assert!(matches!(
            Form1Body::decode(&reps, Endian::Little),
            Err(WireError::TooMany { .. })
        ));
        assert!(Form2Body::decode(&[0; 523], Endian::Little).is_err());
    }

    #[test]
    fn encoders_refuse_oversized_tokens() {
        let mut body = form1();
        body.rings[0].holes = vec![1; 200];
        assert!(body.encode(Endian::Little).is_err());
        assert!(MembersTable::from_ids(&[1; 129], 0).is_err());
        assert!(MembersTable::from_ids(&[1; 3], 4).is_err());
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(raw in proptest::collection::vec(any::<u8>(), 0..1500),
                                    big in any::<bool>()) {
            let endian = if big { Endian::Big } else { Endian::Little };
            if let Ok(body) = Form1Body::decode(&raw, endian) {
                prop_assert_eq!(body.encode(endian).unwrap(), raw.clone());
            }
            if let Ok(body) = Form2Body::decode(&raw, endian) {
                prop_assert_eq!(body.encode(endian).unwrap(), raw);
            }
        }

        #[test]
        fn plausible_forms_decode(big in any::<bool>(), stale in any::<u32>(),
                                  holes in proptest::collection::vec(any::<i32>(), 0..10),
                                  num_trans in any::<i16>()) {
            let endian = if big { Endian::Big } else { Endian::Little };
            let mut body = form1();
            body.members.slots[127] = stale;
            body.rings[0].holes = holes;
            body.rings[0].num_trans = num_trans;
            let raw = body.encode(endian).unwrap();
            let back = Form1Body::decode(&raw, endian).unwrap();
            prop_assert_eq!(&back, &body);
            prop_assert_eq!(back.encode(endian).unwrap(), raw);
        }
    }
}

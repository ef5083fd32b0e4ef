//! Group ids and the data block of membership messages.
//!
//! ```text
//! regular:      group_id{i32 proc_id, i32 time, i32 index} i32 num_vs  num_vs x char[32]
//! transitional: group_id
//! self-leave:   (empty)
//! ```
//! All integers are in the delivering daemon's order (the header's marker says which).

use crate::codec::Endian;
use crate::consts::limits::MAX_GROUP_NAME;
use crate::cursor::Reader;
use crate::names::GroupName;
use crate::ring::WireError;

pub const GROUP_ID_LEN: usize = 12;

/// A ring membership id: the leader's IPv4 address (as a host-order integer) and a time in
/// seconds, forced monotonic by the leader.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MembershipId {
    pub proc_id: u32,
    pub time: i32,
}

/// A group's view id: the ring membership it was made in plus a counter of changes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct GroupId {
    pub memb_id: MembershipId,
    pub index: i32,
}

impl GroupId {
    pub fn encode(&self, endian: Endian) -> [u8; GROUP_ID_LEN] {
        let mut out = [0u8; GROUP_ID_LEN];
        out[0..4].copy_from_slice(&endian.u32_bytes(self.memb_id.proc_id));
        out[4..8].copy_from_slice(&endian.i32_bytes(self.memb_id.time));
        out[8..12].copy_from_slice(&endian.i32_bytes(self.index));
        out
    }

    /// Decodes the first [`GROUP_ID_LEN`] bytes; `None` if there are fewer.
    pub fn decode(bytes: &[u8], endian: Endian) -> Option<GroupId> {
        GroupId::read(&mut Reader::new(bytes, endian, "group id")).ok()
    }

    fn read(r: &mut Reader<'_>) -> Result<GroupId, WireError> {
        Ok(GroupId {
            memb_id: MembershipId {
                proc_id: r.u32()?,
                time: r.i32()?,
            },
            index: r.i32()?,
        })
    }
}

/// The data of a regular membership message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegularBody {
    pub group_id: GroupId,
    /// The virtual synchrony set: for a join the joiner, for a leave or disconnect the one
    /// who left, for a network change the members that came through together.
    pub vs_set: Vec<GroupName>,
}

impl RegularBody {
    pub fn encoded_len(&self) -> usize {
        GROUP_ID_LEN + 4 + MAX_GROUP_NAME * self.vs_set.len()
    }

    pub fn encode_into(&self, out: &mut Vec<u8>, endian: Endian) {
        out.extend_from_slice(&self.group_id.encode(endian));
        out.extend_from_slice(&endian.i32_bytes(self.vs_set.len() as i32));
        for name in &self.vs_set {
            out.extend_from_slice(&name.0);
        }
    }

    /// Decodes a body; `None` if the counts do not fit the bytes.
    pub fn decode(bytes: &[u8], endian: Endian) -> Option<RegularBody> {
        let mut r = Reader::new(bytes, endian, "regular membership body");
        let group_id = GroupId::read(&mut r).ok()?;
        let num_vs = usize::try_from(r.i32().ok()?).ok()?;
        let names = r.take(num_vs.checked_mul(MAX_GROUP_NAME)?).ok()?;
        let vs_set = names
            .chunks(MAX_GROUP_NAME)
            .map(GroupName::from_field)
            .collect();
        Some(RegularBody { group_id, vs_set })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_a_captured_body() {
        // bob's view of his own join: {127.0.0.1, 0x6b078c85, 2}, num_vs 1, ["#bob#n2"].
        let mut raw = vec![
            0x01, 0, 0, 0x7f, 0x85, 0x8c, 0x07, 0x6b, 2, 0, 0, 0, 1, 0, 0, 0,
        ];
        raw.extend_from_slice(&GroupName::new("#bob#n2").0);
        let body = RegularBody::decode(&raw, Endian::Little).unwrap();
        assert_eq!(body.group_id.memb_id.proc_id, 0x7f00_0001);
        assert_eq!(body.group_id.memb_id.time, 0x6b07_8c85);
        assert_eq!(body.group_id.index, 2);
        assert_eq!(body.vs_set, vec![GroupName::new("#bob#n2")]);
        let mut back = Vec::new();
        body.encode_into(&mut back, Endian::Little);
        assert_eq!(back, raw);
    }

    #[test]
    fn lying_counts_are_refused() {
        let mut raw = vec![0u8; 16];
        raw[12] = 5;
        assert!(RegularBody::decode(&raw, Endian::Little).is_none());
        raw[12..16].copy_from_slice(&(-1i32).to_le_bytes());
        assert!(RegularBody::decode(&raw, Endian::Little).is_none());
    }
}

//! The body of a GROUPS message: one daemon's share of the groups state exchange.
//!
//! After a membership change that merged daemons in, each daemon multicasts its local group
//! members as ordinary messages (header type `GROUPS_MESS` plus RELIABLE, the last one
//! AGREED; `num_groups` 0). Their data, in the sending daemon's order:
//!
//! ```text
//!  8            regular membership id {proc_id, time} the exchange belongs to
//!  then for each group with local members, in name order:
//!  32           group name
//!  12           group id {proc_id, time, index}
//!   2           int16 count of local members   (misaligns everything after it)
//!  32 x count   member private names
//! ```
//! A daemon with no local members sends the 8-byte id alone. Names keep all 32 bytes as
//! they travelled, bytes after the NUL included.

use super::WireError;
use crate::codec::Endian;
use crate::consts::limits::MAX_GROUP_NAME;
use crate::cursor::{checked_count, i16_count, Reader, Writer};
use crate::membership::{GroupId, MembershipId, GROUP_ID_LEN};
use crate::names::GroupName;

/// One group's entry: its name, its id at the sending daemon, and that daemon's members.
///
/// Equality compares names as C's `strcmp` does (up to the NUL); compare encodings to
/// check bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupEntry {
    pub name: GroupName,
    pub group_id: GroupId,
    pub members: Vec<GroupName>,
}

impl GroupEntry {
    pub fn encoded_len(&self) -> usize {
        MAX_GROUP_NAME + GROUP_ID_LEN + 2 + MAX_GROUP_NAME * self.members.len()
    }
}

/// A decoded GROUPS message body.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupsMessage {
    /// The regular membership the exchange is for; other ids are discarded on receipt.
    pub memb_id: MembershipId,
    pub groups: Vec<GroupEntry>,
}

impl GroupsMessage {
    pub fn encoded_len(&self) -> usize {
        8 + self
            .groups
            .iter()
            .map(GroupEntry::encoded_len)
            .sum::<usize>()
    }

    /// Decodes a whole body (the message data after its 48-byte header) written in
    /// `endian`, the order named by that header's type word. Every group entry must be
    /// complete and the entries must end exactly where the data does.
    pub fn decode(data: &[u8], endian: Endian) -> Result<GroupsMessage, WireError> {
        let mut r = Reader::new(data, endian, "GROUPS body");
        let memb_id = MembershipId {
            proc_id: r.u32()?,
            time: r.i32()?,
        };
        let mut groups = Vec::new();
        while r.remaining() > 0 {
            let name = GroupName(r.array()?);
            let group_id = GroupId {
                memb_id: MembershipId {
                    proc_id: r.u32()?,
                    time: r.i32()?,
                },
                index: r.i32()?,
            };
            let count = r.i16()?;
            let count = checked_count(count.into(), "GROUPS member count", i16::MAX as usize)?;
            let members = (0..count)
                .map(|_| r.array().map(GroupName))
                .collect::<Result<_, _>>()?;
            groups.push(GroupEntry {
                name,
                group_id,
                members,
            });
        }
        r.finish()?;
        Ok(GroupsMessage { memb_id, groups })
    }

    /// Encodes in `endian`; refuses a group with more members than an int16 counts.
    pub fn encode(&self, endian: Endian) -> Result<Vec<u8>, WireError> {
        let mut out = Vec::with_capacity(self.encoded_len());
        let mut w = Writer::new(&mut out, endian);
        w.u32(self.memb_id.proc_id);
        w.i32(self.memb_id.time);
        for group in &self.groups {
            let count = i16_count(
                group.members.len(),
                "GROUPS member count",
                i16::MAX as usize,
            )?;
            w.bytes(&group.name.0);
            w.bytes(&group.group_id.encode(endian));
            w.i16(count);
            for member in &group.members {
                w.bytes(&member.0);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn id() -> MembershipId {
        MembershipId {
            proc_id: 0x7f00_0001,
            time: 0x6b07_8c85,
        }
    }

    fn message() -> GroupsMessage {
        let mut stale = GroupName::new("#alice#n1");
        stale.0[20..24].copy_from_slice(&[0xec, 0xa5, 0xe6, 0xff]);
        GroupsMessage {
            memb_id: id(),
            groups: vec![
                GroupEntry {
                    name: GroupName::new("demo"),
                    group_id: GroupId {
                        memb_id: id(),
                        index: 3,
                    },
                    members: vec![stale, GroupName::new("#bob#n1")],
                },
                GroupEntry {
                    name: GroupName::new("solo"),
                    group_id: GroupId {
                        memb_id: MembershipId {
                            proc_id: 9,
                            time: -1,
                        },
                        index: 1,
                    },
                    members: vec![GroupName::new("#dave#n1")],
                },
            ],
        }
    }

    #[test]
    fn a_daemon_without_groups_sends_the_id_alone() {
        // From the captures: data_len 56 = 48-byte header + this.
        let raw = [0x01, 0, 0, 0x7f, 0x85, 0x8c, 0x07, 0x6b];
        let msg = GroupsMessage::decode(&raw, Endian::Little).unwrap();
        assert_eq!(msg.memb_id, id());
        assert!(msg.groups.is_empty());
        assert_eq!(msg.encode(Endian::Little).unwrap(), raw);
    }

    #[test]
    fn round_trips_in_both_orders_with_the_odd_alignment() {
        for endian in [Endian::Little, Endian::Big] {
            let msg = message();
            let raw = msg.encode(endian).unwrap();
            assert_eq!(raw.len(), 8 + (32 + 12 + 2 + 64) + (32 + 12 + 2 + 32));
            assert_eq!(raw.len(), msg.encoded_len());
            // The count sits right after the 12-byte group id, at an odd offset.
            let count_at = 8 + 32 + 12;
            let count = endian.read_u16([raw[count_at], raw[count_at + 1]]);
            assert_eq!(count, 2);
            let back = GroupsMessage::decode(&raw, endian).unwrap();
            assert_eq!(back, msg);
            // Bytes after the NUL survive.
            assert_eq!(
                back.groups[0].members[0].0[20..24],
                [0xec, 0xa5, 0xe6, 0xff]
            );
            assert_eq!(back.encode(endian).unwrap(), raw);
        }
    }

    #[test]
    fn lying_counts_are_refused() {
        let raw = message().encode(Endian::Little).unwrap();
        assert!(GroupsMessage::decode(&raw[..raw.len() - 1], Endian::Little).is_err());
        assert!(GroupsMessage::decode(&raw[..7], Endian::Little).is_err());
        let mut long = raw.clone();
        long.push(0);
        assert!(GroupsMessage::decode(&long, Endian::Little).is_err());
        let count_at = 8 + 32 + 12;
        let mut more = raw.clone();
        more[count_at] = 4;
        assert!(GroupsMessage::decode(&more, Endian::Little).is_err());
        let mut negative = raw;
        negative[count_at..count_at + 2].copy_from_slice(&(-1i16).to_le_bytes());
        assert!(matches!(
            GroupsMessage::decode(&negative, Endian::Little),
            Err(WireError::Negative { .. })
        ));
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(raw in proptest::collection::vec(any::<u8>(), 0..600),
                                    big in any::<bool>()) {
            let endian = if big { Endian::Big } else { Endian::Little };
            if let Ok(msg) = GroupsMessage::decode(&raw, endian) {
                prop_assert_eq!(msg.encode(endian).unwrap(), raw);
            }
        }

        #[test]
        fn entries_round_trip(big in any::<bool>(), index in any::<i32>(),
                              names in proptest::collection::vec("[a-z#]{1,31}", 0..6)) {
            let endian = if big { Endian::Big } else { Endian::Little };
            let msg = GroupsMessage {
                memb_id: id(),
                groups: names.iter().map(|n| GroupEntry {
                    name: GroupName::new(n),
                    group_id: GroupId { memb_id: id(), index },
                    members: names.iter().map(|m| GroupName::new(m)).collect(),
                }).collect(),
            };
            let raw = msg.encode(endian).unwrap();
            prop_assert_eq!(GroupsMessage::decode(&raw, endian).unwrap(), msg);
        }
    }
}

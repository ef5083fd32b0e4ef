//! The process-group table and the membership messages its changes produce.
//!
//! Every member list is sorted by `strcmp` of the private group names, as in 3.17. A group's
//! id is the ring membership it was made in plus an index bumped by every change; a group
//! that loses its last member is forgotten (a later join starts again at index 1).

use super::ConnId;
use bytes::Bytes;
use spread_wire::consts::service;
use spread_wire::frame::encode_message;
use spread_wire::membership::{GroupId, MembershipId, RegularBody};
use spread_wire::{Endian, GroupName, Hint, MessageHeader};
use std::collections::BTreeMap;

#[derive(Debug)]
struct Member {
    /// The session, when the member is one of ours.
    local: Option<ConnId>,
}

#[derive(Debug)]
struct Group {
    id: GroupId,
    members: BTreeMap<GroupName, Member>,
}

/// A membership message for one local session.
#[derive(Debug)]
pub struct Notice {
    pub to: ConnId,
    pub message: Bytes,
}

/// A read-only view of a group, for status and tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupInfo {
    pub name: GroupName,
    pub id: GroupId,
    pub members: Vec<GroupName>,
}

/// The table of groups this daemon knows.
#[derive(Debug)]
pub struct Groups {
    groups: BTreeMap<GroupName, Group>,
    endian: Endian,
}

impl Groups {
    pub fn new(endian: Endian) -> Groups {
        Groups {
            groups: BTreeMap::new(),
            endian,
        }
    }

    pub fn info(&self) -> Vec<GroupInfo> {
        self.groups
            .iter()
            .map(|(name, g)| GroupInfo {
                name: *name,
                id: g.id,
                members: g.members.keys().copied().collect(),
            })
            .collect()
    }

    pub fn local_member_count(&self, group: &GroupName) -> usize {
        self.groups.get(group).map_or(0, |g| {
            g.members.values().filter(|m| m.local.is_some()).count()
        })
    }

    /// Adds `member` to `group`; members already there are ignored, as in 3.17.
    pub fn join(
        &mut self,
        group: GroupName,
        member: GroupName,
        local: Option<ConnId>,
        memb_id: MembershipId,
        notices: &mut Vec<Notice>,
    ) {
        let group = group.canonical();
        let member = member.canonical();
        let g = self.groups.entry(group).or_insert_with(|| Group {
            id: GroupId { memb_id, index: 0 },
            members: BTreeMap::new(),
        });
        if g.members.contains_key(&member) {
            return;
        }
        g.members.insert(member, Member { local });
        g.id.index += 1;
        let body = RegularBody {
            group_id: g.id,
            vs_set: vec![member],
        };
        let msg = self.regular(&group, service::CAUSED_BY_JOIN, &body);
        self.notify_locals(&group, msg, notices);
    }

    /// Removes `member` from `group`: a self-leave to the member if it is ours, and a
    /// regular membership to the local members that stay.
    pub fn leave(&mut self, group: GroupName, member: GroupName, notices: &mut Vec<Notice>) {
        let group = group.canonical();
        let member = member.canonical();
        let Some(g) = self.groups.get_mut(&group) else {
            return;
        };
        let Some(gone) = g.members.remove(&member) else {
            return;
        };
        if let Some(conn) = gone.local {
            let header = self.header(service::CAUSED_BY_LEAVE, &group);
            let message = encode_message(&header, &[], &[], self.endian);
            notices.push(Notice {
                to: conn,
                message: message.into(),
            });
        }
        self.after_departure(group, member, service::CAUSED_BY_LEAVE, notices);
    }

    /// Removes a disconnected member from every group it was in, in group-name order.
    pub fn kill(&mut self, member: GroupName, notices: &mut Vec<Notice>) {
        let member = member.canonical();
        let affected: Vec<GroupName> = self
            .groups
            .iter_mut()
            .filter_map(|(name, g)| g.members.remove(&member).map(|_| *name))
            .collect();
        for group in affected {
            self.after_departure(group, member, service::CAUSED_BY_DISCONNECT, notices);
        }
    }

    fn after_departure(
        &mut self,
        group: GroupName,
        gone: GroupName,
        cause: u32,
        notices: &mut Vec<Notice>,
    ) {
        let g = self.groups.get_mut(&group).expect("group exists");
        if g.members.is_empty() {
            self.groups.remove(&group);
            return;
        }
        g.id.index += 1;
        let body = RegularBody {
            group_id: g.id,
            vs_set: vec![gone],
        };
        let msg = self.regular(&group, cause, &body);
        self.notify_locals(&group, msg, notices);
    }

    /// Adds the local sessions that are members of `group` to `out` (no duplicates).
    pub fn local_members(&self, group: &GroupName, out: &mut Vec<ConnId>) {
        if let Some(g) = self.groups.get(group) {
            for conn in g.members.values().filter_map(|m| m.local) {
                if !out.contains(&conn) {
                    out.push(conn);
                }
            }
        }
    }

    fn header(&self, msg_type: u32, group: &GroupName) -> MessageHeader {
        MessageHeader {
            msg_type,
            private_group: group.canonical(),
            num_groups: 0,
            hint: Hint::daemon(self.endian),
            data_len: 0,
        }
    }

    fn regular(&self, group: &GroupName, cause: u32, body: &RegularBody) -> Bytes {
        let g = &self.groups[group];
        let members: Vec<GroupName> = g.members.keys().copied().collect();
        let mut data = Vec::with_capacity(body.encoded_len());
        body.encode_into(&mut data, self.endian);
        let header = self.header(service::REG_MEMB | cause, group);
        encode_message(&header, &members, &[&data], self.endian).into()
    }

    fn notify_locals(&self, group: &GroupName, message: Bytes, notices: &mut Vec<Notice>) {
        for conn in self.groups[group].members.values().filter_map(|m| m.local) {
            notices.push(Notice {
                to: conn,
                message: message.clone(),
            });
        }
    }
}

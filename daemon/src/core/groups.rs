//! The process-group layer: the group table, membership notifications, and the state
//! exchange that rebuilds groups after the daemons' configuration changes (3.17's
//! `groups.c`).
//!
//! Every member list is sorted by `strcmp` of the private group names. A group's id is the
//! ring membership it was made in plus an index bumped by every change; a group that loses
//! its last member is forgotten.
//!
//! States, as in 3.17: **Op**; **Trans** after a transitional configuration (members on
//! daemons that left are *partitioned*, their groups *changed*); **Gather** after a regular
//! configuration that merged daemons in, while every daemon's GROUPS messages (its local
//! members) are collected; **GatherTrans** when another transitional configuration arrives
//! during that gathering.

use super::ring::ProcId;
use super::ConnId;
use bytes::Bytes;
use spread_wire::consts::service;
use spread_wire::frame::encode_message;
use spread_wire::membership::{GroupId, MembershipId, RegularBody};
use spread_wire::ring::groups_msg::{GroupEntry, GroupsMessage};
use spread_wire::{Endian, GroupName, Hint, MessageHeader, HEADER_LEN};
use std::collections::BTreeMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    Established,
    /// On a daemon outside the transitional configuration.
    Partitioned,
}

#[derive(Debug)]
struct Member {
    daemon: ProcId,
    status: Status,
    /// The session, when the member is one of ours.
    local: Option<ConnId>,
}

#[derive(Debug)]
struct Group {
    id: GroupId,
    /// Its view will be re-announced (caused by network) once the configuration settles.
    changed: bool,
    members: BTreeMap<GroupName, Member>,
}

impl Group {
    fn locals(&self) -> impl Iterator<Item = ConnId> + '_ {
        self.members.values().filter_map(|m| m.local)
    }

    fn established(&self) -> Vec<GroupName> {
        self.members
            .iter()
            .filter(|(_, m)| m.status == Status::Established)
            .map(|(n, _)| *n)
            .collect()
    }
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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GState {
    Op,
    Trans,
    Gather,
    GatherTrans,
}

/// What a regular configuration asks of the daemon.
#[derive(Debug, Default)]
pub struct RegularOutcome {
    /// GROUPS messages to order on the groups queue (client messages wait meanwhile).
    pub groups_messages: Vec<Bytes>,
}

/// The table of groups this daemon knows.
#[derive(Debug)]
pub struct Groups {
    groups: BTreeMap<GroupName, Group>,
    endian: Endian,
    me: ProcId,
    my_name: String,
    state: GState,
    trans_memb: Vec<ProcId>,
    trans_memb_id: MembershipId,
    reg_memb: Vec<ProcId>,
    reg_memb_id: MembershipId,
    /// GROUPS messages collected in this exchange: (sender daemon, its report).
    gathered: Vec<(ProcId, GroupsMessage)>,
    daemons_gathered: usize,
    /// Our own GROUPS bodies, re-stamped and re-sent if the exchange restarts.
    own_bodies: Vec<GroupsMessage>,
}

/// GROUPS bodies stay under this many bytes each (3.17's `GROUPS_BUF_SIZE`).
const GROUPS_BUF_SIZE: usize = 100_000;

impl Groups {
    pub fn new(endian: Endian, me: ProcId, my_name: &str, memb_id: MembershipId) -> Groups {
        Groups {
            groups: BTreeMap::new(),
            endian,
            me,
            my_name: my_name.to_string(),
            state: GState::Op,
            trans_memb: vec![me],
            trans_memb_id: memb_id,
            reg_memb: vec![me],
            reg_memb_id: memb_id,
            gathered: Vec::new(),
            daemons_gathered: 0,
            own_bodies: Vec::new(),
        }
    }

    pub fn state(&self) -> GState {
        self.state
    }

    /// The state as the status record numbers it (GOP 1, GTRANS 2, GGATHER 3, GGT 4).
    pub fn state_number(&self) -> i32 {
        match self.state {
            GState::Op => 1,
            GState::Trans => 2,
            GState::Gather => 3,
            GState::GatherTrans => 4,
        }
    }

    pub fn group_count(&self) -> usize {
        self.groups.len()
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
        self.groups.get(group).map_or(0, |g| g.locals().count())
    }

    // ---- joins, leaves, kills -----------------------------------------------------------------

    /// Adds `member` (of daemon `daemon`) to `group`; members already there are ignored.
    pub fn join(
        &mut self,
        group: GroupName,
        member: GroupName,
        daemon: ProcId,
        local: Option<ConnId>,
        notices: &mut Vec<Notice>,
    ) {
        let (group, member) = (group.canonical(), member.canonical());
        let in_trans = self.state == GState::Trans;
        let creating_id = if in_trans {
            self.trans_memb_id
        } else {
            self.reg_memb_id
        };
        let g = self.groups.entry(group).or_insert_with(|| Group {
            id: GroupId {
                memb_id: creating_id,
                index: 0,
            },
            changed: in_trans,
            members: BTreeMap::new(),
        });
        if g.members.contains_key(&member) {
            return;
        }
        let alive = !in_trans || self.trans_memb.contains(&daemon);
        g.members.insert(
            member,
            Member {
                daemon,
                status: if alive {
                    Status::Established
                } else {
                    Status::Partitioned
                },
                local,
            },
        );
        g.id.index += 1;
        let changed = g.changed;
        if alive && !changed {
            let body = RegularBody {
                group_id: g.id,
                vs_set: vec![member],
            };
            let msg = self.regular_message(&group, service::CAUSED_BY_JOIN, &body);
            self.notify(&group, msg, None, notices);
            return;
        }
        // A join into a group whose view is about to be re-announced: its members see a
        // network view of the established members (the joiner excluded), the joiner a view
        // of itself, then everyone the transitional signal.
        let g = self.groups.get_mut(&group).expect("just inserted");
        g.changed = true;
        let mut established = g.established();
        established.retain(|m| *m != member);
        let joiner = if alive { local } else { None };
        let body = RegularBody {
            group_id: g.id,
            vs_set: established,
        };
        let msg = self.regular_message(&group, service::CAUSED_BY_NETWORK, &body);
        self.notify(&group, msg, joiner, notices);
        if let Some(conn) = joiner {
            let own = RegularBody {
                group_id: self.groups[&group].id,
                vs_set: vec![member],
            };
            let msg = self.regular_message(&group, service::CAUSED_BY_NETWORK, &own);
            notices.push(Notice {
                to: conn,
                message: msg,
            });
        }
        let trans = self.transitional_message(&group);
        self.notify(&group, trans, None, notices);
    }

    /// Removes `member` from `group`: a self-leave to the member if it is ours, and a
    /// regular membership to the local members that stay.
    pub fn leave(&mut self, group: GroupName, member: GroupName, notices: &mut Vec<Notice>) {
        let (group, member) = (group.canonical(), member.canonical());
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
        if g.changed {
            // The coming network view covers this departure.
            return;
        }
        g.id.index += 1;
        let body = RegularBody {
            group_id: g.id,
            vs_set: vec![gone],
        };
        let msg = self.regular_message(&group, cause, &body);
        self.notify(&group, msg, None, notices);
    }

    /// Adds the local sessions that are members of `group` to `out` (no duplicates).
    pub fn local_members(&self, group: &GroupName, out: &mut Vec<ConnId>) {
        if let Some(g) = self.groups.get(group) {
            for conn in g.locals() {
                if !out.contains(&conn) {
                    out.push(conn);
                }
            }
        }
    }

    // ---- configuration changes ----------------------------------------------------------------

    /// The transitional configuration: members on daemons that did not come through are
    /// partitioned, and their groups' local members get the transitional signal.
    pub fn transitional(&mut self, trans: &[ProcId], id: MembershipId, notices: &mut Vec<Notice>) {
        match self.state {
            GState::Op => {
                self.trans_memb = trans.to_vec();
                self.trans_memb_id = id;
                let names: Vec<GroupName> = self.groups.keys().copied().collect();
                for name in names {
                    let g = self.groups.get_mut(&name).expect("exists");
                    let mut lost = false;
                    for m in g.members.values_mut() {
                        if !trans.contains(&m.daemon) {
                            m.status = Status::Partitioned;
                            lost = true;
                        }
                    }
                    if !lost {
                        continue;
                    }
                    let msg = self.transitional_message(&name);
                    self.notify(&name, msg, None, notices);
                    let g = self.groups.get_mut(&name).expect("exists");
                    g.id = GroupId {
                        memb_id: id,
                        index: 1,
                    };
                    g.changed = true;
                }
                self.state = GState::Trans;
            }
            GState::Gather => {
                self.trans_memb = trans.to_vec();
                self.trans_memb_id = id;
                self.groups.retain(|_, g| {
                    let before = g.members.len();
                    g.members.retain(|_, m| trans.contains(&m.daemon));
                    if g.members.len() != before {
                        g.changed = true;
                    }
                    !g.members.is_empty()
                });
                self.state = GState::GatherTrans;
            }
            GState::Trans | GState::GatherTrans => {}
        }
    }

    /// The regular configuration. Without newcomers, changed groups announce their new
    /// view at once; with newcomers, every daemon sends its local members (GROUPS
    /// messages) and the views are computed when all have arrived.
    pub fn regular(
        &mut self,
        reg: &[ProcId],
        id: MembershipId,
        notices: &mut Vec<Notice>,
    ) -> RegularOutcome {
        let mut outcome = RegularOutcome::default();
        match self.state {
            GState::Op | GState::Gather => {}
            GState::Trans => {
                self.reg_memb = reg.to_vec();
                self.reg_memb_id = id;
                self.drop_partitioned();
                if self.trans_memb.len() == self.reg_memb.len() {
                    let changed: Vec<GroupName> = self
                        .groups
                        .iter()
                        .filter(|(_, g)| g.changed)
                        .map(|(n, _)| *n)
                        .collect();
                    for name in changed {
                        let g = self.groups.get_mut(&name).expect("exists");
                        g.id = GroupId {
                            memb_id: id,
                            index: 1,
                        };
                        g.changed = false;
                        let body = RegularBody {
                            group_id: g.id,
                            vs_set: g.established(),
                        };
                        let msg = self.regular_message(&name, service::CAUSED_BY_NETWORK, &body);
                        self.notify(&name, msg, None, notices);
                    }
                    self.state = GState::Op;
                } else {
                    self.mark_changed_for_exchange(id);
                    self.own_bodies = self.build_groups_bodies();
                    outcome.groups_messages = self.groups_messages();
                    self.state = GState::Gather;
                }
            }
            GState::GatherTrans => {
                self.reg_memb = reg.to_vec();
                self.reg_memb_id = id;
                self.gathered.clear();
                self.daemons_gathered = 0;
                // 3.17 re-stamps the bodies it built before; we rebuild them from the table
                // as it is now (members lost meanwhile are gone from it).
                self.mark_changed_for_exchange(id);
                self.own_bodies = self.build_groups_bodies();
                outcome.groups_messages = self.groups_messages();
                self.state = GState::Gather;
            }
        }
        outcome
    }

    /// A GROUPS message was delivered. Returns true when the exchange is complete (client
    /// messages may flow again).
    pub fn handle_groups_message(
        &mut self,
        sender: ProcId,
        message: Bytes,
        header: &MessageHeader,
        writer: Endian,
        notices: &mut Vec<Notice>,
        local_session: &dyn Fn(&GroupName) -> Option<ConnId>,
    ) -> bool {
        if !matches!(self.state, GState::Gather | GState::GatherTrans) {
            return false;
        }
        let data_len = (header.data_len.max(0) as usize).min(message.len() - HEADER_LEN);
        let report = match GroupsMessage::decode(&message[HEADER_LEN..][..data_len], writer) {
            Ok(report) => report,
            Err(e) => {
                tracing::warn!(sender, "malformed GROUPS message ignored: {e}");
                return false;
            }
        };
        if report.memb_id != self.reg_memb_id {
            tracing::debug!(id = ?report.memb_id, expected = ?self.reg_memb_id, "GROUPS message of another configuration ignored");
            return false;
        }
        self.gathered.push((sender, report));
        // A daemon's last GROUPS message is AGREED, the ones before it RELIABLE.
        if header.msg_type & service::AGREED != 0 {
            self.daemons_gathered += 1;
        }
        if self.daemons_gathered != self.reg_memb.len() {
            return false;
        }
        self.compute_and_notify(notices, local_session);
        let was = self.state;
        self.state = GState::Op;
        if was == GState::GatherTrans {
            let (trans, id) = (self.trans_memb.clone(), self.trans_memb_id);
            self.transitional(&trans, id, notices);
        }
        true
    }

    /// Before the exchange, changed groups take the id `(new ring, -1)`, as 3.17's own
    /// design notes say (its code leaves the transitional id). A daemon that learns such a
    /// group only from the exchange can then tell it changed, and every daemon gives it the
    /// same new id; with the transitional id left in place, daemons that lost members and
    /// daemons that merged in would number the same view differently.
    fn mark_changed_for_exchange(&mut self, reg: MembershipId) {
        for g in self.groups.values_mut().filter(|g| g.changed) {
            g.id = GroupId {
                memb_id: reg,
                index: -1,
            };
        }
    }

    fn drop_partitioned(&mut self) {
        self.groups.retain(|_, g| {
            if g.changed {
                g.members.retain(|_, m| m.status != Status::Partitioned);
            }
            !g.members.is_empty()
        });
    }

    /// Our local members, group by group, in bodies of at most `GROUPS_BUF_SIZE` bytes.
    fn build_groups_bodies(&self) -> Vec<GroupsMessage> {
        let empty = || GroupsMessage {
            memb_id: self.reg_memb_id,
            groups: Vec::new(),
        };
        let mut bodies = Vec::new();
        let mut body = empty();
        let mut body_len = body.encoded_len();
        for (name, g) in &self.groups {
            let members: Vec<GroupName> = g
                .members
                .iter()
                .filter(|(_, m)| m.daemon == self.me)
                .map(|(n, _)| *n)
                .collect();
            if members.is_empty() {
                continue;
            }
            let entry = GroupEntry {
                name: *name,
                group_id: g.id,
                members,
            };
            let size = entry.encoded_len();
            if body_len + size > GROUPS_BUF_SIZE && !body.groups.is_empty() {
                bodies.push(std::mem::replace(&mut body, empty()));
                body_len = body.encoded_len();
            }
            body_len += size;
            body.groups.push(entry);
        }
        bodies.push(body);
        bodies
    }

    /// Whole GROUPS messages for our bodies: RELIABLE, the last one AGREED.
    fn groups_messages(&self) -> Vec<Bytes> {
        let n = self.own_bodies.len();
        self.own_bodies
            .iter()
            .enumerate()
            .map(|(i, body)| {
                let service_bit = if i + 1 == n {
                    service::AGREED
                } else {
                    service::RELIABLE
                };
                let header = MessageHeader {
                    msg_type: service::GROUPS | service_bit,
                    private_group: GroupName::new(&self.my_name),
                    num_groups: 0,
                    hint: Hint::daemon(self.endian),
                    data_len: 0,
                };
                let body = body
                    .encode(self.endian)
                    .expect("a daemon's local members of a group fit an int16 count");
                Bytes::from(encode_message(&header, &[], &[&body], self.endian))
            })
            .collect()
    }

    /// Rebuilds every reported group from the gathered messages and announces the views
    /// that changed (3.17's `G_compute_and_notify`).
    fn compute_and_notify(
        &mut self,
        notices: &mut Vec<Notice>,
        local_session: &dyn Fn(&GroupName) -> Option<ConnId>,
    ) {
        // name -> [(reported id, members, daemon)]
        let mut reports: BTreeMap<GroupName, Vec<(GroupId, Vec<GroupName>, ProcId)>> =
            BTreeMap::new();
        for (sender, report) in std::mem::take(&mut self.gathered) {
            for entry in report.groups {
                let members = entry.members.iter().map(GroupName::canonical).collect();
                reports.entry(entry.name.canonical()).or_default().push((
                    entry.group_id,
                    members,
                    sender,
                ));
            }
        }
        self.daemons_gathered = 0;
        self.own_bodies.clear();
        let reg_id = self.reg_memb_id;
        // Groups nobody reported have no member left anywhere.
        self.groups.retain(|name, _| reports.contains_key(name));
        for (name, reported) in reports {
            let first_id = reported[0].0;
            let g = self.groups.entry(name).or_insert_with(|| Group {
                id: first_id,
                changed: false,
                members: BTreeMap::new(),
            });
            g.members.clear();
            let mut changed = g.changed || reported.iter().any(|(id, _, _)| id.memb_id == reg_id);
            let mut vs_set = Vec::new();
            for (id, members, daemon) in reported {
                if id == g.id {
                    vs_set.extend(members.iter().copied());
                } else {
                    changed = true;
                }
                for m in members {
                    let local = if daemon == self.me {
                        local_session(&m)
                    } else {
                        None
                    };
                    g.members.insert(
                        m,
                        Member {
                            daemon,
                            status: Status::Established,
                            local,
                        },
                    );
                }
            }
            if !changed {
                continue;
            }
            g.id = GroupId {
                memb_id: reg_id,
                index: 1,
            };
            g.changed = false;
            let body = RegularBody {
                group_id: g.id,
                vs_set,
            };
            let msg = self.regular_message(&name, service::CAUSED_BY_NETWORK, &body);
            self.notify(&name, msg, None, notices);
        }
    }

    // ---- building messages --------------------------------------------------------------------

    fn header(&self, msg_type: u32, group: &GroupName) -> MessageHeader {
        MessageHeader {
            msg_type,
            private_group: group.canonical(),
            num_groups: 0,
            hint: Hint::daemon(self.endian),
            data_len: 0,
        }
    }

    fn regular_message(&self, group: &GroupName, cause: u32, body: &RegularBody) -> Bytes {
        let g = &self.groups[group];
        let members: Vec<GroupName> = g.members.keys().copied().collect();
        let mut data = Vec::with_capacity(body.encoded_len());
        body.encode_into(&mut data, self.endian);
        let header = self.header(service::REG_MEMB | cause, group);
        encode_message(&header, &members, &[&data], self.endian).into()
    }

    /// The transitional signal: the group's current (old) id.
    fn transitional_message(&self, group: &GroupName) -> Bytes {
        let header = self.header(service::TRANSITION, group);
        let id = self.groups[group].id.encode(self.endian);
        encode_message(&header, &[], &[&id], self.endian).into()
    }

    fn notify(
        &self,
        group: &GroupName,
        message: Bytes,
        except: Option<ConnId>,
        notices: &mut Vec<Notice>,
    ) {
        for conn in self.groups[group].locals() {
            if Some(conn) != except {
                notices.push(Notice {
                    to: conn,
                    message: message.clone(),
                });
            }
        }
    }
}

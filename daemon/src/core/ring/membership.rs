//! The membership protocol: noticing a lost token, gathering the live daemons, forming a
//! new ring (3.17's `membership.c`).
//!
//! OP --token lost--> SEG (ALIVE to my segment) --> GATHER if I am the smallest daemon heard
//! from, else REPRESENTED --> (GATHER: JOIN to the other segments' representatives) -->
//! FORM (a FORM1 token visits every member and representative, then a FORM2 token goes
//! round the new ring) --> EVS (the old rings' messages are recovered) --> OP.
//!
//! The FORM tokens and EVS recovery are in `form.rs`.

use super::conf::{Membership, ProcId};
use super::msgs::{Members, Packet, Rep, Reps, Token};
use super::{codec, Destination, Ring, State, Timer};
use bytes::Bytes;
use spread_wire::membership::MembershipId;
use spread_wire::ring::memb::rep_type::{POTENTIAL_REP, RING_REP, SEG_REP};
use spread_wire::ring::packet_type;
use spread_wire::Endian;
use std::time::{Duration, Instant};

/// Representatives a JOIN or FORM1 carries (3.17's `MAX_REPS`).
const MAX_REPS: usize = 25;

/// The membership algorithm's state (3.17's `membership.c`): the ring we are in, the one
/// being formed, and the transitional and commit sets of EVS recovery.
pub(super) struct MembershipState {
    pub(super) state: State,
    pub(super) token_alive: bool,
    pub(super) membership: Membership,
    pub(super) membership_id: MembershipId,
    pub(super) future_membership: Membership,
    pub(super) future_membership_id: MembershipId,
    pub(super) trans_membership: Membership,
    pub(super) trans_memb_id: MembershipId,
    pub(super) future_trans_time: i32,
    pub(super) last_time_used: i32,
    pub(super) my_seg_rep: Option<ProcId>,
    pub(super) foreign_found: bool,
    pub(super) f_members: Members,
    pub(super) f_reps: Reps,
    pub(super) potential_reps: Vec<Rep>,
    pub(super) commit_set: Members,
    pub(super) future_commit_set: Members,
    /// When the last FORM2 put this daemon in EVS (see `stale_in_evs`).
    pub(super) evs_since: Instant,
    pub(super) last_seq: i32,
}

impl MembershipState {
    pub(super) fn new(
        me: ProcId,
        me_only: &Membership,
        last_time_used: Option<i32>,
        now: Instant,
    ) -> MembershipState {
        MembershipState {
            state: State::Op,
            token_alive: false,
            membership: me_only.clone(),
            membership_id: MembershipId {
                proc_id: me,
                time: -1,
            },
            future_membership: me_only.clone(),
            future_membership_id: MembershipId::default(),
            trans_membership: Membership::default(),
            trans_memb_id: MembershipId::default(),
            future_trans_time: 0,
            last_time_used: last_time_used.unwrap_or(-1),
            my_seg_rep: None,
            foreign_found: false,
            f_members: Members::only(me),
            f_reps: Reps::default(),
            potential_reps: Vec::new(),
            commit_set: Members::default(),
            future_commit_set: Members::default(),
            evs_since: now,
            last_seq: 0,
        }
    }
}

impl Ring {
    pub(super) fn handle_membership_packet(&mut self, packet: Packet, endian: Endian) {
        let sender = packet.proc_id;
        if packet.kind & packet_type::ALIVE != 0 {
            self.handle_alive(sender);
        } else if packet.kind & packet_type::JOIN != 0 {
            match codec::decode_join_body(&packet.body, endian, self.limits) {
                Ok((members, reps)) if !reps.reps.is_empty() => {
                    self.handle_join(sender, members, reps)
                }
                Ok(_) => {}
                Err(e) => tracing::debug!("dropping a JOIN: {e}"),
            }
        } else if packet.kind & packet_type::REFER != 0 {
            self.handle_refer(packet.memb_id);
        }
    }

    fn handle_alive(&mut self, sender: ProcId) {
        if self.conf.position(sender).is_none() {
            return;
        }
        match self.memb.state {
            State::Op => {
                if self.memb.membership.contains(sender) {
                    // A member of my ring is looking for a ring: my token is lost.
                    self.token_loss();
                    self.memb.f_members.insert(sender, self.max_procs);
                }
            }
            State::Seg => {
                self.memb.f_members.insert(sender, self.max_procs);
            }
            State::Represented => self.arm(Timer::ShiftToSeg, self.timeouts.rep),
            State::Gather => {
                if !self.memb.token_alive {
                    self.memb.f_members.insert(sender, self.max_procs);
                } else if self.memb.membership.contains(sender) {
                    self.token_loss();
                    self.memb.f_members.insert(sender, self.max_procs);
                }
            }
            State::Form => {}
            State::Evs => {
                if self.memb.future_membership.contains(sender)
                    && !self.stale_in_evs(sender, "ALIVE")
                {
                    self.token_loss();
                    self.memb.f_members.insert(sender, self.max_procs);
                }
            }
        }
    }

    fn handle_join(&mut self, sender: ProcId, _members: Members, reps: Reps) {
        let Some(sender_pos) = self.conf.position(sender) else {
            return;
        };
        let their_rep = reps.reps[0];
        match self.memb.state {
            State::Op => {
                if !self.memb.membership.contains(sender) {
                    if self.memb.membership.leader() == Some(self.me) {
                        self.memb.potential_reps = vec![their_rep];
                        self.memb.f_members = Members::default();
                        self.shift_to_gather();
                    } else if their_rep.seg_index != self.my_pos.segment as i16
                        || self.memb.membership.segment_leader(self.my_pos.segment) == Some(self.me)
                    {
                        let leader = self.memb.membership.leader().unwrap_or(self.me);
                        self.send_refer(sender, leader, RING_REP);
                    }
                } else if self.conf.segments.len() > 1 {
                    self.token_loss();
                }
            }
            State::Seg => {
                if sender_pos.segment == self.my_pos.segment && their_rep.rep_type == SEG_REP {
                    self.memb.my_seg_rep = Some(sender);
                    self.shift_to_represented();
                    self.scast_alive(false);
                }
            }
            State::Represented => {
                if sender_pos.segment == self.my_pos.segment && their_rep.rep_type == SEG_REP {
                    self.memb.my_seg_rep = Some(sender);
                    self.arm(Timer::ShiftToSeg, self.timeouts.rep);
                    self.scast_alive(false);
                } else if let Some(rep) = self.memb.my_seg_rep {
                    self.send_refer(sender, rep, SEG_REP);
                }
            }
            State::Gather => {
                let mut f_reps = std::mem::take(&mut self.memb.f_reps.reps);
                self.insert_rep(&mut f_reps, their_rep);
                self.memb.f_reps.reps = f_reps;
                let mut potential = std::mem::take(&mut self.memb.potential_reps);
                for rep in &reps.reps {
                    self.insert_rep(&mut potential, *rep);
                }
                self.memb.potential_reps = potential;
                if self
                    .smallest_rep(&self.memb.f_reps.reps)
                    .map(|i| self.memb.f_reps.reps[i].proc_id)
                    == Some(their_rep.proc_id)
                {
                    self.arm(Timer::FormOrFail, self.timeouts.gather);
                }
            }
            State::Form => {}
            State::Evs => {
                if self.memb.future_membership.contains(sender)
                    && !self.stale_in_evs(sender, "JOIN")
                {
                    self.token_loss();
                    self.memb.f_members.insert(sender, self.max_procs);
                }
            }
        }
    }

    fn handle_refer(&mut self, referred: MembershipId) {
        if self.memb.state != State::Gather {
            return;
        }
        let Some(pos) = self.conf.position(referred.proc_id) else {
            return;
        };
        let rep = Rep {
            proc_id: referred.proc_id,
            rep_type: referred.time as i16,
            seg_index: pos.segment as i16,
        };
        let mut potential = std::mem::take(&mut self.memb.potential_reps);
        self.insert_rep(&mut potential, rep);
        self.memb.potential_reps = potential;
    }

    /// A packet of another ring: the ring leader looks for the daemons it is missing; a
    /// segment leader tells its ring leader once.
    pub(super) fn handle_foreign(&mut self, packet: Packet) {
        if self.memb.state != State::Op || self.conf.position(packet.proc_id).is_none() {
            return;
        }
        if self.memb.membership.leader() == Some(self.me) {
            self.lookup_new_members();
        } else if self.memb.membership.segment_leader(self.my_pos.segment) == Some(self.me)
            && !self.memb.foreign_found
        {
            self.memb.foreign_found = true;
            if let Some(leader) = self.memb.membership.leader() {
                self.send_packets(Destination::Data(leader), vec![packet.clone()], false);
                self.send_packets(Destination::Data(leader), vec![packet], false);
            }
        }
    }

    pub(super) fn handle_form_token(&mut self, token: Token) {
        if token.kind & packet_type::FORM1 != 0 {
            match self.memb.state {
                State::Op if self.memb.membership.leader() != Some(self.me) => {
                    self.fill_form1(token)
                }
                State::Represented | State::Gather => self.fill_form1(token),
                _ => {}
            }
        } else if token.kind & packet_type::FORM2 != 0 && self.memb.state == State::Form {
            self.read_form2(token);
        }
    }

    fn send_refer(&mut self, to: ProcId, rep: ProcId, rep_type: i16) {
        let mut refer = self.control_packet(packet_type::REFER, Bytes::new());
        refer.memb_id = MembershipId {
            proc_id: rep,
            time: rep_type as i32,
        };
        self.send_packets(Destination::Data(to), vec![refer], false);
    }

    // ---- state changes ----------------------------------------------------------------------

    /// The representatives gathered so far (all but myself, the first), as potential
    /// representatives for the next gather.
    fn potentials_from_gathered_reps(&self) -> Vec<Rep> {
        let mut potential = Vec::new();
        for rep in self.memb.f_reps.reps.iter().skip(1) {
            self.insert_rep(&mut potential, *rep);
        }
        potential
    }

    /// A JOIN or ALIVE from a member of the ring being installed, soon after its FORM2, was
    /// sent before that daemon took the FORM1 and was overtaken by the FORM2 (data and token
    /// ports are different sockets, so nothing orders them). A daemon that really lost the
    /// new ring sends them only after a token or form timeout plus a SEG phase, so ignoring
    /// them for `seg` after the FORM2 can only delay a recovery. (3.17 leaves EVS on them;
    /// two daemons then fall into singleton rings.)
    fn stale_in_evs(&self, sender: ProcId, what: &str) -> bool {
        let stale = self
            .clock
            .now
            .saturating_duration_since(self.memb.evs_since)
            < self.timeouts.seg;
        tracing::debug!(
            me = self.me & 0xff,
            sender = sender & 0xff,
            stale,
            "{what} from a member of the new ring during EVS"
        );
        stale
    }

    /// The token is lost: back to SEG, looking for the daemons of my segment.
    pub(super) fn token_loss(&mut self) {
        match self.memb.state {
            State::Op => {
                self.memb.commit_set = Members::only(self.me);
                self.memb.potential_reps = Vec::new();
                let from = self.memb.membership.clone();
                self.add_segment_potentials(&from);
            }
            State::Seg | State::Represented | State::Form => {}
            State::Gather => {
                self.memb.commit_set = Members::only(self.me);
                self.memb.potential_reps = self.potentials_from_gathered_reps();
                let from = self.memb.membership.clone();
                self.add_segment_potentials(&from);
            }
            State::Evs => {
                self.backoff_membership();
                self.memb.potential_reps = Vec::new();
                let from = self.memb.future_membership.clone();
                self.add_segment_potentials(&from);
            }
        }
        self.shift_to_seg();
        self.memb.token_alive = false;
        for timer in [
            Timer::TokenLoss,
            Timer::Join,
            Timer::FormOrFail,
            Timer::Hurry,
            Timer::Lookup,
        ] {
            self.timers.cancel(timer);
        }
        self.op.last_token.kind = 0;
        self.op.last_token.seq = 0;
        self.op.last_token.aru = 0;
        self.memb.membership = Membership::from_ids(&self.conf, [self.me]);
    }

    /// Every other segment's first daemon in `from` (or its first configured one) becomes a
    /// potential representative.
    fn add_segment_potentials(&mut self, from: &Membership) {
        let mut potential = std::mem::take(&mut self.memb.potential_reps);
        for segment in 0..self.conf.segments.len() {
            if segment == self.my_pos.segment {
                continue;
            }
            let proc_id = from
                .segment_leader(segment)
                .unwrap_or_else(|| self.conf.segments[segment].procs[0].id);
            self.insert_rep(
                &mut potential,
                Rep {
                    proc_id,
                    rep_type: POTENTIAL_REP,
                    seg_index: segment as i16,
                },
            );
        }
        self.memb.potential_reps = potential;
    }

    pub(super) fn shift_to_seg(&mut self) {
        tracing::debug!(me = self.me & 0xff, from = ?self.memb.state, "SEG: looking for my segment's daemons");
        self.memb.state = State::Seg;
        self.memb.f_members = Members::only(self.me);
        self.arm(Timer::Alive, Duration::ZERO);
        self.arm(Timer::GatherOrRepresented, self.timeouts.seg);
    }

    pub(super) fn gather_or_represented(&mut self) {
        self.memb.my_seg_rep = None;
        if self.smallest_member(self.memb.f_members.listed()) == Some(self.me) {
            self.shift_to_gather();
        } else {
            self.shift_to_represented();
        }
    }

    fn shift_to_gather(&mut self) {
        tracing::debug!(me = self.me & 0xff, from = ?self.memb.state, token_alive = self.memb.token_alive, "GATHER: representing my segment");
        self.memb.state = State::Gather;
        self.memb.f_reps = Reps {
            rep_index: 0,
            reps: vec![Rep {
                proc_id: self.me,
                rep_type: if self.memb.token_alive {
                    RING_REP
                } else {
                    SEG_REP
                },
                seg_index: self.my_pos.segment as i16,
            }],
        };
        self.timers.cancel(Timer::Alive);
        self.timers.cancel(Timer::Lookup);
        self.arm(Timer::Join, Duration::ZERO);
        self.arm(Timer::FormOrFail, self.timeouts.gather);
    }

    fn shift_to_represented(&mut self) {
        tracing::debug!(me = self.me & 0xff, "REPRESENTED");
        self.memb.state = State::Represented;
        self.timers.cancel(Timer::Alive);
        self.timers.cancel(Timer::GatherOrRepresented);
        self.arm(Timer::ShiftToSeg, self.timeouts.rep);
    }

    pub(super) fn form_or_fail(&mut self) {
        tracing::debug!(me = self.me & 0xff, reps = ?self.memb.f_reps.reps, "gather over");
        let smallest = self
            .smallest_rep(&self.memb.f_reps.reps)
            .map(|i| self.memb.f_reps.reps[i].proc_id);
        if smallest == Some(self.me) {
            if self.memb.token_alive && self.memb.f_reps.reps.len() == 1 {
                self.back_to_op();
            } else {
                self.create_form1();
            }
        } else if self.memb.token_alive {
            self.back_to_op();
        } else {
            // Nobody formed a ring with us: gather again with what we learnt.
            self.memb.f_members = Members::only(self.me);
            self.memb.potential_reps = self.potentials_from_gathered_reps();
            self.shift_to_gather();
        }
    }

    /// A ring leader whose lookup found nobody goes back to work.
    fn back_to_op(&mut self) {
        self.timers.cancel(Timer::Join);
        self.arm(Timer::Lookup, self.timeouts.lookup);
        self.memb.state = State::Op;
    }

    // ---- sending ----------------------------------------------------------------------------

    pub(super) fn scast_alive(&mut self, repeat: bool) {
        let body = codec::encode_alive_body(&self.memb.f_members, self.endian, self.limits);
        let alive = self.control_packet(packet_type::ALIVE, body);
        self.scast(self.my_pos.segment, vec![alive]);
        if repeat {
            self.arm(Timer::Alive, self.timeouts.alive);
        }
    }

    fn join_packet(&self) -> Packet {
        let body = codec::encode_join_body(
            &self.memb.f_members,
            &self.memb.f_reps,
            self.endian,
            self.limits,
        );
        self.control_packet(packet_type::JOIN, body)
    }

    pub(super) fn send_join(&mut self) {
        let join = self.join_packet();
        if !self.memb.token_alive {
            self.scast(self.my_pos.segment, vec![join.clone()]);
        }
        let reps: Vec<ProcId> = self.memb.potential_reps.iter().map(|r| r.proc_id).collect();
        for rep in reps {
            self.send_packets(Destination::Data(rep), vec![join.clone()], false);
        }
        self.arm(Timer::Join, self.timeouts.join);
    }

    /// The ring leader probes for configured daemons missing from its ring.
    pub(super) fn lookup_new_members(&mut self) {
        if self.memb.state != State::Op {
            return;
        }
        self.memb.potential_reps = Vec::new();
        self.memb.f_reps = Reps {
            rep_index: 0,
            reps: vec![Rep {
                proc_id: self.me,
                rep_type: RING_REP,
                seg_index: self.my_pos.segment as i16,
            }],
        };
        self.memb.f_members = Members::default();
        let join = self.join_packet();
        let mut missing = 0;
        if self.conf.segments.len() == 1 {
            self.scast(self.my_pos.segment, vec![join]);
            missing += 1;
        } else {
            let absent: Vec<ProcId> = self
                .conf
                .all()
                .map(|p| p.id)
                .filter(|id| !self.memb.membership.contains(*id))
                .collect();
            for id in absent {
                self.send_packets(Destination::Data(id), vec![join.clone()], false);
                missing += 1;
            }
        }
        if missing > 0 {
            self.shift_to_gather();
        }
    }

    // ---- orderings --------------------------------------------------------------------------

    /// The first of `ids` in configuration order.
    fn smallest_member(&self, ids: &[ProcId]) -> Option<ProcId> {
        ids.iter()
            .copied()
            .filter(|id| self.conf.position(*id).is_some())
            .min_by_key(|id| self.conf.position(*id))
    }

    /// The smallest representative: any SEG_REP beats any RING_REP; among SEG_REPs the lower
    /// segment; among RING_REPs the lower segment, then the lower place in it.
    fn smallest_rep(&self, reps: &[Rep]) -> Option<usize> {
        if reps.is_empty() {
            return None;
        }
        let mut current = 0;
        for i in 1..reps.len() {
            let (cur, cand) = (reps[current], reps[i]);
            current = match (cur.rep_type, cand.rep_type) {
                (SEG_REP, SEG_REP) if cand.seg_index < cur.seg_index => i,
                (RING_REP, RING_REP) if cand.seg_index < cur.seg_index => i,
                (RING_REP, RING_REP) if cand.seg_index == cur.seg_index => {
                    let index = |id| self.conf.position(id).map(|p| p.index);
                    if index(cand.proc_id) < index(cur.proc_id) {
                        i
                    } else {
                        current
                    }
                }
                (RING_REP, SEG_REP) => i,
                (POTENTIAL_REP, t) if t != POTENTIAL_REP => i,
                _ => current,
            };
        }
        Some(current)
    }

    /// Orders representatives by repeatedly taking the smallest (3.17's `Sort_reps`).
    pub(super) fn sort_reps(&mut self) {
        let mut rest = std::mem::take(&mut self.memb.f_reps.reps);
        let mut sorted = Vec::with_capacity(rest.len());
        while let Some(i) = self.smallest_rep(&rest) {
            sorted.push(rest.swap_remove(i));
        }
        self.memb.f_reps.reps = sorted;
    }

    /// Adds a representative, letting a better-known one of the same segment replace a
    /// potential one (3.17's `Insert_rep`).
    pub(super) fn insert_rep(&self, reps: &mut Vec<Rep>, rep: Rep) -> bool {
        let Some(pos) = self.conf.position(rep.proc_id) else {
            return false;
        };
        let segment = pos.segment as i16;
        let same_segment = |r: &Rep| r.seg_index == segment;
        match rep.rep_type {
            POTENTIAL_REP => {
                if reps.iter().any(same_segment) {
                    return false;
                }
            }
            SEG_REP | RING_REP => {
                for r in reps.iter_mut().filter(|r| same_segment(r)) {
                    match r.rep_type {
                        POTENTIAL_REP => {
                            r.rep_type = rep.rep_type;
                            r.proc_id = rep.proc_id;
                            return true;
                        }
                        SEG_REP if r.proc_id == rep.proc_id => {
                            if rep.rep_type == RING_REP {
                                r.rep_type = RING_REP;
                                return true;
                            }
                            return false;
                        }
                        RING_REP if r.proc_id == rep.proc_id => {
                            if rep.rep_type == SEG_REP {
                                // A former ring leader lost its ring.
                                r.rep_type = SEG_REP;
                                return true;
                            }
                            return false;
                        }
                        _ => {}
                    }
                }
            }
            _ => return false,
        }
        if reps.len() >= MAX_REPS {
            return false;
        }
        reps.push(Rep {
            seg_index: segment,
            ..rep
        });
        true
    }
}

//! The membership protocol: noticing a lost token, gathering the live daemons, forming a
//! new ring (3.17's `membership.c`).
//!
//! OP --token lost--> SEG (ALIVE to my segment) --> GATHER if I am the smallest daemon heard
//! from, else REPRESENTED --> (GATHER: JOIN to the other segments' representatives) -->
//! FORM (a FORM1 token visits every member and representative, then a FORM2 token goes
//! round the new ring) --> EVS (the old rings' messages are recovered) --> OP.

use super::conf::{Membership, ProcId};
use super::msgs::{Members, Packet, Rep, Reps, RingInfo, Token, TokenBody};
use super::{codec, Destination, Ring, State, Timer};
use bytes::Bytes;
use spread_wire::membership::MembershipId;
use spread_wire::ring::memb::rep_type::{POTENTIAL_REP, RING_REP, SEG_REP};
use spread_wire::ring::packet_type;
use spread_wire::Endian;
use std::time::{Duration, Instant};

/// At most this many rings merge in one FORM (3.17's `MAX_FORM_REPS`).
const MAX_FORM_RINGS: usize = 20;
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

    // ---- the FORM tokens --------------------------------------------------------------------

    /// My part of a ring record: my old ring's id, its aru and highest seq, the seqs I miss,
    /// and me first in its transitional and commit sets.
    fn my_ring_info(&self, holes_from: i32) -> RingInfo {
        let mut commit = vec![self.me];
        commit.extend(
            self.memb
                .commit_set
                .listed()
                .iter()
                .copied()
                .filter(|id| *id != self.me),
        );
        RingInfo {
            memb_id: self.memb.membership_id,
            trans_time: 0,
            aru: self.op.aru,
            highest_seq: self.op.highest_seq,
            holes: self.missing(holes_from, self.op.highest_seq),
            commit,
            num_trans: 1,
        }
    }

    /// The smallest representative starts the FORM1 token (3.17's `Create_form1`).
    fn create_form1(&mut self) {
        tracing::debug!(me = self.me & 0xff, reps = ?self.memb.f_reps.reps, members = ?self.memb.f_members, "FORM1: creating");
        if self.memb.f_reps.reps[0].rep_type == RING_REP {
            self.memb.f_members = Members {
                num_members: self.memb.membership.len(),
                num_pending: 0,
                ids: self.memb.membership.ids().collect(),
            };
        }
        // Daemons that are representatives themselves are not my members.
        let reps: Vec<ProcId> = self.memb.f_reps.reps.iter().map(|r| r.proc_id).collect();
        let me = self.me;
        let valid: Vec<ProcId> = self
            .memb
            .f_members
            .listed()
            .iter()
            .copied()
            .filter(|id| *id == me || !reps.contains(id))
            .collect();
        let mut members = Members {
            num_members: 1,
            num_pending: valid.len().saturating_sub(1),
            ids: valid,
        };
        if members.ids.is_empty() {
            members.ids.push(me);
        }
        self.memb.f_members = members.clone();
        self.sort_reps();
        self.memb.f_reps.rep_index = 1;
        self.potential_from_reps(&self.memb.f_reps.reps.clone());
        let mut rings = vec![self.my_ring_info(self.op.my_aru + 1)];
        self.trim_to_fit(&mut rings[0], &members);
        let mut token = Token {
            kind: packet_type::FORM1,
            transmitter: me,
            seq: self.op.highest_seq + 3333,
            proc_id: me,
            aru: 0,
            aru_last_id: 0,
            flow_control: 0,
            body: TokenBody::Form1 {
                members: members.clone(),
                reps: self.memb.f_reps.clone(),
                rings: rings.clone(),
            },
        };
        if members.num_pending > 0 {
            let next = members.ids[members.num_members];
            self.unicast_token(next, &token);
            self.unicast_token(next, &token);
        } else if self.memb.f_reps.rep_index < self.memb.f_reps.reps.len() {
            let next = self.memb.f_reps.reps[self.memb.f_reps.rep_index].proc_id;
            self.unicast_token(next, &token);
            self.unicast_token(next, &token);
        } else {
            // Alone: the FORM2 goes straight to myself.
            token.kind = packet_type::FORM2;
            token.body = TokenBody::Form2 {
                members: Members {
                    num_members: 0,
                    num_pending: 1,
                    ids: vec![me],
                },
                memb_id: MembershipId::default(),
                rings,
            };
            self.unicast_token(me, &token);
        }
        self.enter_form();
    }

    /// The creator's record must fit the token: beyond the holes that fit, it reports a
    /// lower highest seq (what follows is not recovered in this formation).
    fn trim_to_fit(&self, ring: &mut RingInfo, members: &Members) {
        loop {
            let probe = Token {
                kind: packet_type::FORM1,
                transmitter: self.me,
                seq: 0,
                proc_id: self.me,
                aru: 0,
                aru_last_id: 0,
                flow_control: 0,
                body: TokenBody::Form1 {
                    members: members.clone(),
                    reps: self.memb.f_reps.clone(),
                    rings: vec![ring.clone()],
                },
            };
            if self.token_fits(&probe) || ring.holes.is_empty() {
                return;
            }
            let cut = ring.holes.len() * 3 / 4;
            let first_dropped = ring.holes[cut];
            ring.holes.truncate(cut);
            ring.highest_seq = first_dropped - 1;
            tracing::warn!("FORM1 record trimmed to highest seq {}", ring.highest_seq);
        }
    }

    fn enter_form(&mut self) {
        self.timers.cancel(Timer::Join);
        self.timers.cancel(Timer::FormOrFail);
        self.timers.cancel(Timer::ShiftToSeg);
        self.arm(Timer::TokenLoss, self.timeouts.form);
        self.timers.cancel(Timer::Hurry);
        self.memb.token_alive = false;
        self.memb.state = State::Form;
    }

    fn potential_from_reps(&mut self, reps: &[Rep]) {
        let mut potential = Vec::new();
        for rep in reps {
            if rep.seg_index != self.my_pos.segment as i16 {
                let mut r = *rep;
                r.rep_type = POTENTIAL_REP;
                self.insert_rep(&mut potential, r);
            }
        }
        self.memb.potential_reps = potential;
    }

    /// A FORM1 token visits me: I add myself (or my members, or my ring) and my old ring's
    /// record, and pass it on (3.17's `Fill_form1`).
    fn fill_form1(&mut self, mut token: Token) {
        let TokenBody::Form1 {
            mut members,
            mut reps,
            rings,
        } = std::mem::replace(&mut token.body, TokenBody::Regular(Vec::new()))
        else {
            return;
        };
        token.proc_id = self.me;
        token.seq = token.seq.max(self.op.highest_seq + 3333);
        tracing::debug!(me = self.me & 0xff, state = ?self.memb.state, members = ?members, "FORM1 arrives");
        match self.memb.state {
            State::Op | State::Represented => {
                if members.ids.get(members.num_members) != Some(&self.me)
                    || members.num_pending == 0
                {
                    return;
                }
                members.num_members += 1;
                members.num_pending -= 1;
            }
            State::Gather => {
                // The FORM1 must name me as the kind of representative I am now: a ring
                // leader still holding its token adds its ring (RING_REP), a segment
                // representative without one adds its gathered members (SEG_REP). A creator
                // that heard me as a SEG_REP before I formed a ring would otherwise have me
                // fill in my (empty) gathered members and leave myself out, while my ring's
                // record goes on the token: the new ring's daemons from my ring then install
                // a transitional set naming me, a daemon not in their ring. Later Spread
                // releases ignore such a FORM1 too; the formation fails and is retried.
                let Some(rep) = reps.reps.get(reps.rep_index) else {
                    return;
                };
                let expected = if self.memb.token_alive {
                    RING_REP
                } else {
                    SEG_REP
                };
                if rep.proc_id != self.me || rep.rep_type != expected || members.num_pending != 0 {
                    return;
                }
                let listed: Vec<ProcId> = members.listed().to_vec();
                let their_reps: Vec<ProcId> = reps.reps.iter().map(|r| r.proc_id).collect();
                let my_reps: Vec<ProcId> =
                    self.memb.f_reps.reps.iter().map(|r| r.proc_id).collect();
                let me = self.me;
                let mine: Vec<ProcId> = self
                    .memb
                    .f_members
                    .listed()
                    .iter()
                    .copied()
                    .filter(|id| !listed.contains(id))
                    .filter(|id| *id == me || (!their_reps.contains(id) && !my_reps.contains(id)))
                    .collect();
                self.memb.f_members = Members {
                    num_members: mine.len(),
                    num_pending: 0,
                    ids: mine.clone(),
                };
                let added: Vec<ProcId> = if reps.reps[reps.rep_index].rep_type == RING_REP {
                    self.memb.membership.ids().collect()
                } else {
                    mine
                };
                members.ids.truncate(members.num_members);
                members.num_pending = added.len().saturating_sub(1);
                members.ids.extend(added);
                members.num_members += 1;
                reps.rep_index += 1;
            }
            _ => return,
        }
        self.potential_from_reps(&reps.reps);
        let before = rings.clone();
        let mut rings = self.merge_my_ring(rings, &mut members);
        let probe = Token {
            body: TokenBody::Form1 {
                members: members.clone(),
                reps: reps.clone(),
                rings: rings.clone(),
            },
            ..token.clone()
        };
        if !self.token_fits(&probe) {
            // My old ring's record (its holes) does not fit the token: like the daemon whose
            // ring would be the 21st, I stay out of this ring and join the next one.
            tracing::warn!("FORM1 would overflow with my ring's record; leaving this formation");
            rings = before
                .into_iter()
                .filter(|r| r.memb_id != self.memb.membership_id)
                .collect();
            if let Some(at) = members.ids.iter().position(|id| *id == self.me) {
                if at < members.num_members {
                    members.ids.remove(at);
                    members.num_members -= 1;
                }
            }
        }
        if members.num_pending > 0 {
            let next = members.ids[members.num_members];
            token.body = TokenBody::Form1 {
                members,
                reps,
                rings,
            };
            self.unicast_token(next, &token);
            self.unicast_token(next, &token);
        } else if reps.rep_index < reps.reps.len() {
            let next = reps.reps[reps.rep_index].proc_id;
            token.body = TokenBody::Form1 {
                members,
                reps,
                rings,
            };
            self.unicast_token(next, &token);
            self.unicast_token(next, &token);
        } else {
            // Everyone is on it: sort into configuration order; the FORM2 goes round.
            let mut ids: Vec<ProcId> = members.listed().to_vec();
            ids.sort_by_key(|id| self.conf.position(*id));
            let first = ids[0];
            token.kind = packet_type::FORM2;
            token.body = TokenBody::Form2 {
                members: Members {
                    num_members: 0,
                    num_pending: ids.len(),
                    ids,
                },
                memb_id: MembershipId::default(),
                rings,
            };
            self.unicast_token(first, &token);
            self.unicast_token(first, &token);
        }
        self.enter_form();
    }

    /// Adds (or merges into) my old ring's record.
    fn merge_my_ring(&mut self, rings: Vec<RingInfo>, members: &mut Members) -> Vec<RingInfo> {
        let (mine, mut others): (Vec<RingInfo>, Vec<RingInfo>) = rings
            .into_iter()
            .partition(|r| r.memb_id == self.memb.membership_id);
        match mine.into_iter().next() {
            // Extended rings are bounded by what fits the token (checked by the caller), not
            // by 3.17's 20 rings per formation.
            None if !self.limits.is_extended() && others.len() + 1 > MAX_FORM_RINGS => {
                // No room for my ring on the token: I leave the new ring instead.
                if let Some(at) = members.listed().iter().position(|id| *id == self.me) {
                    members.ids.remove(at);
                    members.num_members -= 1;
                }
            }
            None => others.push(self.my_ring_info(self.op.last_discarded + 1)),
            Some(theirs) => {
                let mut holes: Vec<i32> = theirs
                    .holes
                    .iter()
                    .copied()
                    .filter(|s| !self.holds(*s))
                    .collect();
                if theirs.highest_seq < self.op.highest_seq {
                    holes.extend(self.missing(theirs.highest_seq + 1, self.op.highest_seq));
                }
                let mut set = Members::default();
                for id in theirs.commit.iter().take(theirs.num_trans) {
                    set.insert(*id, self.max_procs);
                }
                set.insert(self.me, self.max_procs);
                let num_trans = theirs.num_trans + 1;
                for id in theirs.commit.iter().skip(theirs.num_trans) {
                    set.insert(*id, self.max_procs);
                }
                for id in self.memb.commit_set.listed().to_vec() {
                    set.insert(id, self.max_procs);
                }
                others.push(RingInfo {
                    memb_id: self.memb.membership_id,
                    trans_time: 0,
                    aru: theirs.aru.max(self.op.aru),
                    highest_seq: theirs.highest_seq.max(self.op.highest_seq),
                    holes,
                    commit: set.listed().to_vec(),
                    num_trans,
                });
            }
        }
        others
    }

    /// The FORM2 token: the new ring is decided; recover my old ring's messages (3.17's
    /// `Read_form2`).
    fn read_form2(&mut self, mut token: Token) {
        let TokenBody::Form2 {
            mut members,
            mut memb_id,
            mut rings,
        } = std::mem::replace(&mut token.body, TokenBody::Regular(Vec::new()))
        else {
            return;
        };
        token.proc_id = self.me;
        if members.ids.get(members.num_members) != Some(&self.me) || members.num_pending == 0 {
            tracing::debug!(me = self.me & 0xff, members = ?members, "FORM2 not for me");
            return;
        }
        members.num_members += 1;
        members.num_pending -= 1;
        self.memb.last_seq = token.seq;
        tracing::debug!(me = self.me & 0xff, members = ?members, "FORM2: the new ring is decided");
        let mut memb_time = 0;
        if members.num_members == 1 {
            // I lead the new ring: its id is my address and a time after any I used, and
            // after every old ring's (a restarted daemon has forgotten the times it used;
            // 3.17 can then reuse a ring id).
            let newest = rings.iter().map(|r| r.memb_id.time).max().unwrap_or(0);
            self.memb.last_time_used = self.memb.last_time_used.max(newest);
            memb_time = self.next_time();
            self.memb.last_time_used += 1;
            memb_id = MembershipId {
                proc_id: self.me,
                time: self.memb.last_time_used,
            };
        }
        self.memb.future_membership_id = memb_id;
        self.memb.future_membership = Membership::from_ids(&self.conf, members.ids.iter().copied());
        self.net.membership = self.memb.future_membership.clone();
        let Some(mine) = rings
            .iter_mut()
            .find(|r| r.memb_id == self.memb.membership_id)
        else {
            tracing::error!(
                "FORM2 without my ring {:?}; waiting for the next one",
                self.memb.membership_id
            );
            return;
        };
        // Packets of the old ring beyond what its members reported (sent by a daemon now
        // gone, arriving after we filled the FORM1) are recovered by nobody: forget them,
        // or their slots would shadow the new ring's packets of the same seq.
        let reported_highest = mine.highest_seq;
        if self.op.highest_seq > reported_highest {
            self.forget_beyond(reported_highest, self.op.highest_seq);
        }
        tracing::debug!(me = self.me & 0xff, old_ring = ?mine.memb_id, aru = mine.aru, highest = reported_highest, my_highest = self.op.highest_seq, holes = ?mine.holes, commit = ?mine.commit, "FORM2: my old ring's record");
        self.op.highest_seq = reported_highest;
        self.op.aru = mine.aru;
        let holes = mine.holes.clone();
        self.memb.future_commit_set = Members {
            num_members: mine.commit.len(),
            num_pending: mine.num_trans,
            ids: mine.commit.clone(),
        };
        if mine.trans_time == 0 {
            if memb_time == 0 {
                memb_time = self.next_time();
            }
            mine.trans_time = memb_time;
        }
        self.memb.future_trans_time = mine.trans_time;
        // Deliver what my old ring had agreed on; mark what nobody has.
        self.discard_packets();
        self.mark_holes(&holes);
        if self.memb.future_membership.last() != Some(self.me) {
            token.body = TokenBody::Form2 {
                members,
                memb_id,
                rings,
            };
            self.send_token(&token);
            self.send_token(&token);
        } else {
            // The last member starts the new ring's first regular token.
            token.kind = 0;
            token.seq = 0;
            token.aru = self.memb.last_seq;
            token.flow_control = 0;
            token.body = TokenBody::Regular(Vec::new());
            self.send_token(&token);
        }
        self.memb.token_alive = true;
        self.arm(Timer::TokenLoss, self.timeouts.token);
        self.op.last_token.kind = 0;
        self.op.last_token.seq = 0;
        self.op.last_token.aru = 0;
        self.memb.evs_since = self.clock.now;
        self.memb.state = State::Evs;
    }

    /// Wall-clock seconds, forced past any time used before.
    fn next_time(&mut self) -> i32 {
        let mut t = self.wall_secs();
        if t <= self.memb.last_time_used {
            t = self.memb.last_time_used + 1;
        }
        self.memb.last_time_used = t;
        t
    }

    /// The transitional configuration: the commit set's transitional part; its id is
    /// (its first member, the old ring's trans time).
    pub(super) fn memb_transitional(&mut self) {
        let trans: Vec<ProcId> = self
            .memb
            .commit_set
            .ids
            .iter()
            .take(self.memb.commit_set.num_pending)
            .copied()
            .collect();
        self.memb.trans_membership = Membership::from_ids(&self.conf, trans);
        self.memb.trans_memb_id = MembershipId {
            proc_id: self.memb.trans_membership.leader().unwrap_or(self.me),
            time: self.memb.future_trans_time,
        };
    }

    pub(super) fn memb_regular(&mut self) {
        self.memb.state = State::Op;
        self.memb.membership = self.memb.future_membership.clone();
        self.memb.membership_id = self.memb.future_membership_id;
        self.memb.foreign_found = false;
        self.stats.membership_changes += 1;
        if self.memb.membership.leader() == Some(self.me) {
            self.arm(Timer::Lookup, self.timeouts.lookup);
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
    fn sort_reps(&mut self) {
        let mut rest = std::mem::take(&mut self.memb.f_reps.reps);
        let mut sorted = Vec::with_capacity(rest.len());
        while let Some(i) = self.smallest_rep(&rest) {
            sorted.push(rest.swap_remove(i));
        }
        self.memb.f_reps.reps = sorted;
    }

    /// Adds a representative, letting a better-known one of the same segment replace a
    /// potential one (3.17's `Insert_rep`).
    fn insert_rep(&self, reps: &mut Vec<Rep>, rep: Rep) -> bool {
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

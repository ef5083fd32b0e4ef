//! Forming the new ring (3.17's `membership.c`, its second half): the FORM1 token that
//! collects every merging ring's record, the FORM2 token that installs the new ring, and the
//! EVS recovery between them, ending in the transitional and regular configurations.

use super::conf::{Membership, ProcId};
use super::msgs::{Members, Rep, RingInfo, Token, TokenBody};
use super::{Ring, State, Timer};
use spread_wire::membership::MembershipId;
use spread_wire::ring::memb::rep_type::{POTENTIAL_REP, RING_REP, SEG_REP};
use spread_wire::ring::packet_type;

/// At most this many rings merge in one FORM (3.17's `MAX_FORM_REPS`).
const MAX_FORM_RINGS: usize = 20;

impl Ring {
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
    pub(super) fn create_form1(&mut self) {
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
    pub(super) fn fill_form1(&mut self, mut token: Token) {
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
    pub(super) fn read_form2(&mut self, mut token: Token) {
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
}

//! The ordering protocol: tokens, retransmissions, delivery (3.17's `protocol.c`).

use super::msgs::{Packet, Rtr, Token, TokenBody};
use super::{
    Destination, FlowControl, Queue, Ring, RingEvent, State, Timer, MAX_SEQ_GAP, WINDOW_SLOTS,
};
use bytes::{Bytes, BytesMut};
use spread_wire::ring::packet_type;
use std::collections::VecDeque;

/// Bytes of a retransmission record's fixed part.
const RTR_HEADER: usize = 16;

/// A slot of the packet window.
#[derive(Clone, Debug)]
pub(super) enum Slot {
    /// Received, not yet delivered.
    Received(Packet),
    /// Delivered, kept to answer retransmission requests until discarded.
    Delivered(Packet),
    /// EVS placeholder for a packet no member of the old ring has.
    Hole,
}

/// A message waiting to be sent, cut into packet bodies.
#[derive(Clone, Debug)]
pub(super) struct DownMessage {
    pub(super) kind: u32,
    pub(super) fragments: Vec<Bytes>,
}

#[derive(Clone, Debug, Default)]
pub(super) struct DownQueue {
    pub(super) messages: VecDeque<DownMessage>,
    /// Fragments of the first message already sent.
    pub(super) sent: usize,
}

/// The operational ring's state (3.17's `protocol.c`): the packet window, the token as
/// we last saw it, and what has been delivered and discarded.
pub(super) struct Operational {
    pub(super) slots: Vec<Option<Slot>>,
    pub(super) highest_seq: i32,
    pub(super) highest_fifo_seq: i32,
    pub(super) my_aru: i32,
    pub(super) aru: i32,
    pub(super) set_aru: i32,
    pub(super) last_discarded: i32,
    pub(super) last_delivered: i32,
    pub(super) token_counter: u32,
    pub(super) last_token: Token,
    pub(super) last_num_retrans: i32,
    pub(super) last_num_sent: i32,
    /// Reassembly per originating daemon (config index), plus one for single-packet
    /// RELIABLE messages delivered out of order.
    pub(super) up: Vec<Vec<Bytes>>,
}

impl Operational {
    pub(super) fn new(num_procs: usize) -> Operational {
        Operational {
            slots: vec![None; WINDOW_SLOTS],
            highest_seq: 0,
            highest_fifo_seq: 0,
            my_aru: 0,
            aru: 0,
            set_aru: -1,
            last_discarded: 0,
            last_delivered: 0,
            token_counter: 0,
            last_token: Token {
                kind: 0,
                transmitter: 0,
                seq: 0,
                proc_id: 0,
                aru: 0,
                aru_last_id: 0,
                flow_control: 0,
                body: TokenBody::Regular(Vec::new()),
            },
            last_num_retrans: 0,
            last_num_sent: 0,
            up: vec![Vec::new(); num_procs + 1],
        }
    }
}

/// Messages waiting to be sent and the flow control that paces them.
pub(super) struct Outgoing {
    pub(super) flow: FlowControl,
    pub(super) queues: [DownQueue; 2],
    pub(super) active_queue: Queue,
}

impl Outgoing {
    pub(super) fn new(flow: FlowControl) -> Outgoing {
        Outgoing {
            flow,
            queues: [DownQueue::default(), DownQueue::default()],
            active_queue: Queue::Normal,
        }
    }
}

impl Ring {
    fn slot(&self, seq: i32) -> &Option<Slot> {
        &self.op.slots[seq as usize & (WINDOW_SLOTS - 1)]
    }

    fn slot_mut(&mut self, seq: i32) -> &mut Option<Slot> {
        &mut self.op.slots[seq as usize & (WINDOW_SLOTS - 1)]
    }

    fn has_packet(&self, seq: i32) -> bool {
        self.slot(seq).is_some()
    }

    /// Advances `my_aru` over packets we hold.
    fn advance_my_aru(&mut self) {
        while self.op.my_aru < self.op.highest_seq && self.has_packet(self.op.my_aru + 1) {
            self.op.my_aru += 1;
        }
    }

    /// Data packets of my ring (3.17's `Prot_handle_bcast`).
    pub(super) fn handle_ring_packets(&mut self, packets: Vec<Packet>) {
        if self.memb.token_alive {
            self.arm(Timer::TokenLoss, self.timeouts.token);
            if self.is_leader() {
                self.arm(Timer::Hurry, self.timeouts.hurry);
            }
        }
        // Below `last_discarded` every slot was delivered and emptied, so a packet there is a
        // late retransmission. `aru` alone does not guard them: during EVS the safe line
        // drops (the first EVS token meets a `last_token.aru` of 0), and a retransmission
        // stored then sits in its emptied slot past the installation, where it shadows the
        // new ring's packet of the same seq (delivered twice, the new one never).
        let floor = self.op.aru.max(self.op.last_discarded);
        for packet in packets {
            let seq = packet.seq;
            if seq <= floor || self.has_packet(seq) || self.conf.index_of(packet.proc_id).is_none()
            {
                continue;
            }
            self.stats.packets_received += 1;
            self.op.highest_seq = self.op.highest_seq.max(seq);
            *self.slot_mut(seq) = Some(Slot::Received(packet));
            if seq == self.op.my_aru + 1 {
                self.advance_my_aru();
                self.deliver_agreed();
            } else {
                self.deliver_reliable(seq, 1);
            }
        }
    }

    /// A regular token (3.17's `Prot_handle_token`); FORM tokens go to the membership.
    pub(super) fn handle_token(&mut self, mut token: Token) {
        if token.kind & packet_type::FORM != 0 {
            return self.handle_form_token(token);
        }
        if !self.memb.token_alive {
            return;
        }
        // Every token is sent to the sender's successor, so a real one comes from my
        // predecessor. Tokens carry no ring id: without this check a late copy of the old
        // ring's token can be taken for the new ring's (3.17 checks the ARQ only).
        if self.active_membership().token_predecessor(self.me) != Some(token.transmitter) {
            return;
        }
        // During EVS every token descends from the new ring's first token, whose seq is 0
        // and stays 0 until the configuration is installed; anything else is a late token
        // of an old ring (which may have the same predecessor and, by chance, the ARQ).
        if self.memb.state == State::Evs && token.seq != 0 {
            return;
        }
        tracing::trace!(me = self.me & 0xff, state = ?self.memb.state, arq = token.arq(), retrans = token.retrans(), last_arq = self.op.last_token.arq(), seq = token.seq, aru = token.aru, my_aru = self.op.my_aru, highest = self.op.highest_seq, "token");
        let TokenBody::Regular(records) =
            std::mem::replace(&mut token.body, TokenBody::Regular(Vec::new()))
        else {
            return;
        };
        if self.is_leader() {
            // The leader accepts only the token it sent last, come back around.
            if token.arq() != self.op.last_token.arq() {
                return;
            }
        } else if token.arq() == self.op.last_token.arq() {
            // A copy of a token we already passed on; a higher RETRANS asks us to re-send.
            if token.retrans() > self.op.last_token.retrans() {
                let r = token.retrans();
                self.op.last_token.set_retrans(r);
                self.token_hurry();
            }
            return;
        } else if token.arq() != (self.op.last_token.arq() + 1) % 16 {
            // A copy of an older rotation, delayed in the network. The token visits every
            // member each rotation, so only the next ARQ is new; 3.17 accepts any other ARQ
            // too, and a late duplicate then puts a second token on the ring, whose holders
            // hand out the same seqs twice.
            return;
        }
        if !self.is_leader() && token.retrans() > 0 {
            // A new token the leader had to hurry round (3.17 counts it at every member).
            self.stats.token_hurries += 1;
        }
        self.stats.token_rounds += 1;
        self.op.highest_seq = self.op.highest_seq.max(token.seq);
        let (num_retrans, mut records, rtr_proc_id, rtr_seg_index) = self.answer_retrans(records);
        let allowed = self.fc_allowed(token.flow_control as i32);
        let num_sent = self.send_new_packets(allowed);
        token.flow_control =
            (token.flow_control as i32 - self.op.last_num_retrans - self.op.last_num_sent
                + num_retrans
                + num_sent) as i16;
        self.op.last_num_retrans = num_retrans;
        self.op.last_num_sent = num_sent;
        self.advance_my_aru();
        if self.op.my_aru < self.op.highest_seq {
            self.request_missing(&mut records, rtr_proc_id, rtr_seg_index);
        }
        if self.memb.state == State::Evs && self.op.my_aru == self.op.highest_seq {
            self.op.my_aru = self.memb.last_seq;
            self.memb.commit_set = self.memb.future_commit_set.clone();
        }
        // The aru rule: raise it if I set it last (or it is at the top), lower it if I lag.
        if token.aru == self.op.set_aru || token.aru_last_id == self.me || token.aru == token.seq {
            token.aru = self.op.my_aru;
            token.aru_last_id = self.me;
            self.op.set_aru = if self.op.my_aru < self.op.highest_seq {
                self.op.my_aru
            } else {
                -1
            };
        } else if token.aru > self.op.my_aru {
            token.aru = self.op.my_aru;
            token.aru_last_id = self.me;
            // As above, claim the aru only while lagging. 3.17 claims it here even with
            // everything: that happens only to the first token after EVS, whose aru is still
            // `last_seq`, above its seq. The next daemon then sees aru == seq and rewrites
            // it; if a laggard later lowers it to exactly my value, I would take it for mine
            // and raise it past the laggard: packets discarded (and SAFE ones delivered)
            // before a member has them.
            self.op.set_aru = if self.op.my_aru < self.op.highest_seq {
                self.op.my_aru
            } else {
                -1
            };
        } else {
            self.op.set_aru = -1;
        }
        token.proc_id = self.me;
        if self.memb.state != State::Evs {
            token.seq = self.op.highest_seq;
        }
        let leader = self.is_leader();
        if leader {
            let arq = (token.arq() + 1) % 16;
            token.set_arq(arq);
            token.set_retrans(0);
        }
        token.body = TokenBody::Regular(records);
        if !(leader && self.is_token_hold()) {
            self.send_token(&token);
            let copies = self.extra_token_copies(&token);
            for _ in 0..copies {
                self.send_token(&token);
            }
        }
        if leader {
            self.arm(Timer::Hurry, self.timeouts.hurry);
        }
        self.arm(Timer::TokenLoss, self.timeouts.token);
        // The safe line: what every member had by the time the token passed twice.
        self.op.aru = token.aru.min(self.op.last_token.aru);
        if self.op.highest_seq == self.op.aru {
            self.op.token_counter += 1;
        } else {
            self.op.token_counter = 0;
        }
        token.body = TokenBody::Regular(Vec::new());
        self.op.last_token = token;
        self.discard_packets();
        self.deliver_agreed();
        self.deliver_reliable(self.op.highest_seq - num_sent + 1, num_sent);
    }

    /// Extra copies of a token: in a wide network the last daemon of a segment sends twice
    /// more, and a token being re-sent (RETRANS > 1) goes twice more.
    fn extra_token_copies(&self, token: &Token) -> usize {
        let mut copies = 0;
        if self.wide && self.active_membership().segment_last(self.my_pos.segment) == Some(self.me)
        {
            copies += 2;
        }
        if token.retrans() > 1 {
            copies += 2;
        }
        copies
    }

    /// How many datagrams we may send on this visit (3.17's `FC_allowed`).
    fn fc_allowed(&self, flow_control: i32) -> i32 {
        if self.memb.state == State::Evs || self.op.highest_seq > self.op.aru + MAX_SEQ_GAP {
            return 0;
        }
        let (window, personal) = (self.out.flow.window, self.out.flow.personal_window);
        (window + personal - flow_control)
            .max(0)
            .min(window)
            .min(personal)
    }

    /// Answers the requests of my ring on the token; keeps other rings' records. Returns the
    /// datagrams sent, the records to pass on, and how my own request must be answered.
    fn answer_retrans(&mut self, records: Vec<Rtr>) -> (i32, Vec<Rtr>, i32, i16) {
        let mut num_retrans = 0;
        let mut keep = Vec::new();
        let mut rtr_proc_id = self.me as i32;
        let mut rtr_seg_index = self.my_pos.segment as i16;
        for record in records {
            if record.memb_id != self.memb.membership_id {
                keep.push(record);
                continue;
            }
            for &seq in &record.seqs {
                let packet = match self.slot(seq) {
                    Some(Slot::Received(p)) | Some(Slot::Delivered(p)) if seq >= self.op.aru => {
                        Some(p.clone())
                    }
                    _ => None,
                };
                let Some(packet) = packet else {
                    // Cannot answer: whoever can must answer more widely.
                    rtr_proc_id = -1;
                    if record.seg_index != self.my_pos.segment as i16 {
                        rtr_seg_index = -1;
                    }
                    continue;
                };
                if record.proc_id != -1 {
                    self.send_packets(
                        Destination::Data(record.proc_id as u32),
                        vec![packet],
                        false,
                    );
                    self.stats.unicast_retrans += 1;
                    num_retrans += 1;
                } else if record.seg_index != -1 {
                    self.scast(record.seg_index as usize, vec![packet]);
                    self.stats.segment_retrans += 1;
                    num_retrans += 1;
                } else if self.queue_bcast(packet) {
                    self.stats.broadcast_retrans += 1;
                    num_retrans += 1;
                }
            }
        }
        if self.flush_bcast() {
            self.stats.broadcast_retrans += 1;
            num_retrans += 1;
        }
        // Datagrams, as 3.17's RETRANS counts them (a flushed batch of broadcasts is one).
        self.stats.retransmissions += num_retrans as u64;
        (num_retrans, keep, rtr_proc_id, rtr_seg_index)
    }

    /// Appends my request for what I miss, as far as the token has room.
    fn request_missing(&mut self, records: &mut Vec<Rtr>, proc_id: i32, seg_index: i16) {
        let used: usize = records.iter().map(|r| RTR_HEADER + 4 * r.seqs.len()).sum();
        let Some(mut room) = self
            .limits
            .token_body
            .checked_sub(used + RTR_HEADER)
            .map(|b| b / 4)
        else {
            return;
        };
        if room <= 1 {
            return;
        }
        let mut seqs = Vec::new();
        let mut seq = self.op.my_aru + 1;
        while seq <= self.op.highest_seq && room > 0 {
            if !self.has_packet(seq) {
                seqs.push(seq);
            }
            seq += 1;
            room -= 1;
        }
        records.push(Rtr {
            memb_id: self.memb.membership_id,
            proc_id,
            seg_index,
            seqs,
        });
    }

    /// Sends packets from the active queue; returns datagrams sent (3.17's
    /// `Send_new_packets`: the allowance counts datagrams, several packets may share one).
    fn send_new_packets(&mut self, allowed: i32) -> i32 {
        let mut sent = 0;
        let q = self.out.active_queue as usize;
        while sent < allowed {
            let Some(message) = self.out.queues[q].messages.front() else {
                break;
            };
            let fragment = self.out.queues[q].sent;
            let total = message.fragments.len();
            let body = message.fragments[fragment].clone();
            let packet_kind = message.kind;
            self.op.highest_seq += 1;
            self.op.highest_fifo_seq += 1;
            let index = if fragment + 1 < total {
                self.out.queues[q].sent += 1;
                (fragment + 1) as i16
            } else {
                self.out.queues[q].messages.pop_front();
                self.out.queues[q].sent = 0;
                -(total as i16)
            };
            let packet = Packet {
                kind: packet_kind,
                transmitter: self.me,
                proc_id: self.me,
                memb_id: self.memb.membership_id,
                seq: self.op.highest_seq,
                fifo_seq: self.op.highest_fifo_seq,
                index,
                body,
            };
            self.stats.packets_sent += 1;
            *self.slot_mut(packet.seq) = Some(Slot::Received(packet.clone()));
            if self.queue_bcast(packet) {
                sent += 1;
            }
        }
        if self.flush_bcast() {
            sent += 1;
        }
        sent
    }

    /// 3.17 delivers single-packet RELIABLE messages the moment they arrive
    /// (`Deliver_reliable_packets`). That lets such a message overtake the JOIN ordered
    /// before it — even its own sender's — so a member can miss a message that the total
    /// order places inside its view. We deliver RELIABLE in the total order like the other
    /// services; it costs at most one token rotation of latency, and each daemon decides
    /// delivery locally, so 3.17 peers are unaffected.
    pub(super) fn deliver_reliable(&mut self, _start: i32, _count: i32) {}

    /// Delivers in seq order up to `my_aru`, stopping at a SAFE packet not yet safe.
    pub(super) fn deliver_agreed(&mut self) {
        if self.op.my_aru <= self.op.last_delivered || self.memb.state == State::Evs {
            return;
        }
        while self.op.last_delivered < self.op.my_aru {
            let seq = self.op.last_delivered + 1;
            match self.slot(seq) {
                Some(Slot::Received(p)) => {
                    if p.kind & packet_type::SAFE != 0 {
                        return;
                    }
                    self.deliver_packet(seq);
                }
                Some(Slot::Delivered(_)) => {}
                _ => {
                    tracing::error!(
                        "delivery found no packet {seq} below my aru {}",
                        self.op.my_aru
                    );
                    return;
                }
            }
            self.op.last_delivered = seq;
        }
    }

    /// Hands one packet to reassembly; a message's last fragment completes it.
    fn deliver_packet(&mut self, seq: i32) {
        let Some(Slot::Received(packet)) = self.slot_mut(seq).take() else {
            return;
        };
        let queue = if packet.kind & packet_type::RELIABLE != 0 && packet.index == -1 {
            self.op.up.len() - 1
        } else {
            self.conf.index_of(packet.proc_id).expect("known sender")
        };
        let position = packet.index.unsigned_abs() as usize;
        let fragments = &mut self.op.up[queue];
        if fragments.len() + 1 != position {
            tracing::error!(
                "fragment {} of a message from {:#x} arrived after {} fragments; dropping the message",
                packet.index,
                packet.proc_id,
                fragments.len()
            );
            fragments.clear();
        } else {
            fragments.push(packet.body.clone());
        }
        let last = packet.index < 0;
        self.stats.packets_delivered += 1;
        tracing::trace!(me = self.me & 0xff, seq, from = packet.proc_id & 0xff, ring = ?self.memb.membership_id, state = ?self.memb.state, "ring delivers packet");
        *self.slot_mut(seq) = Some(Slot::Delivered(packet));
        if last && !self.op.up[queue].is_empty() {
            let fragments = std::mem::take(&mut self.op.up[queue]);
            let message = if fragments.len() == 1 {
                fragments.into_iter().next().expect("one")
            } else {
                let mut whole = BytesMut::with_capacity(fragments.iter().map(Bytes::len).sum());
                for f in &fragments {
                    whole.extend_from_slice(f);
                }
                whole.freeze()
            };
            self.events.push_back(RingEvent::Deliver(message));
        }
    }

    /// Frees what every member has; delivers SAFE packets that became safe; in EVS, once
    /// the old rings are recovered, installs the transitional and the regular configuration
    /// (3.17's `Discard_packets`).
    pub(super) fn discard_packets(&mut self) {
        if self.op.aru <= self.op.last_discarded {
            return;
        }
        if self.memb.state != State::Evs {
            for seq in self.op.last_discarded + 1..=self.op.aru {
                if matches!(self.slot(seq), Some(Slot::Received(_))) {
                    self.deliver_packet(seq);
                }
                *self.slot_mut(seq) = None;
            }
            self.op.last_discarded = self.op.aru;
            self.op.last_delivered = self.op.last_delivered.max(self.op.last_discarded);
            return;
        }
        if self.op.aru != self.memb.last_seq {
            return;
        }
        self.install_configuration();
    }

    /// EVS is over: deliver what precedes the transitional signal, the signal, the rest,
    /// then the regular configuration.
    fn install_configuration(&mut self) {
        // Up to the first hole or the first SAFE packet, before the transitional signal.
        let mut seq = self.op.last_discarded + 1;
        while seq <= self.op.highest_seq {
            match self.slot(seq) {
                Some(Slot::Hole) => break,
                Some(Slot::Received(p)) if p.kind & packet_type::SAFE != 0 => break,
                Some(Slot::Received(_)) => self.deliver_packet(seq),
                _ => {}
            }
            *self.slot_mut(seq) = None;
            self.op.last_discarded = seq;
            seq += 1;
        }
        self.memb_transitional();
        self.events.push_back(RingEvent::Transitional {
            members: self.memb.trans_membership.ids().collect(),
            id: self.memb.trans_memb_id,
        });
        // The rest; after the first hole only from daemons of the commit set.
        let mut found_hole = false;
        for seq in self.op.last_discarded + 1..=self.op.highest_seq {
            match self.slot(seq) {
                Some(Slot::Hole) => found_hole = true,
                // 3.17 goes on delivering the commit set's packets after a hole. The commit
                // set can hold members of an earlier failed formation whose own packet is the
                // hole, and their later packets would then skip it. A member of the
                // transitional set cannot be missing its own packet (holes are missing at all
                // of them), so only its packets are delivered.
                Some(Slot::Received(p))
                    if !found_hole || self.memb.trans_membership.contains(p.proc_id) =>
                {
                    self.deliver_packet(seq)
                }
                _ => {}
            }
            *self.slot_mut(seq) = None;
        }
        // Half-received messages of others are gone; ours restarts from its first fragment.
        let q = self.out.active_queue as usize;
        self.out.queues[q].sent = 0;
        for fragments in &mut self.op.up {
            fragments.clear();
        }
        self.memb_regular();
        self.events.push_back(RingEvent::Regular {
            members: self.memb.membership.ids().collect(),
            id: self.memb.membership_id,
        });
        self.op.last_token.aru = 0;
        self.op.highest_seq = 0;
        self.op.highest_fifo_seq = 0;
        self.op.my_aru = 0;
        self.op.aru = 0;
        self.op.set_aru = -1;
        self.op.last_discarded = 0;
        self.op.last_delivered = 0;
        self.op.token_counter = 0;
    }

    /// The leader keeps the token while the ring is idle (3.17's `To_hold_token`).
    pub(super) fn is_token_hold(&self) -> bool {
        (self.memb.state == State::Op
            || (self.memb.state == State::Gather && self.memb.token_alive))
            && self.op.last_token.retrans() <= 1
            && self.op.aru == self.op.highest_seq
            && self.op.token_counter > 1
    }

    /// Someone has a message for a ring whose token the leader holds.
    pub(super) fn handle_hurry(&mut self, from: u32) {
        if self.is_leader() && self.is_token_hold() && self.active_membership().contains(from) {
            self.token_hurry();
        }
    }

    /// Re-sends the last token; the leader counts it in RETRANS (3.17's
    /// `Prot_token_hurry`).
    pub(super) fn token_hurry(&mut self) {
        self.op.last_token.body = TokenBody::Regular(Vec::new());
        if self.is_leader() {
            let r = self.op.last_token.retrans() + 1;
            self.op.last_token.set_retrans(r);
            self.arm(Timer::Hurry, self.timeouts.hurry);
            self.stats.token_hurries += 1;
        }
        let token = self.op.last_token.clone();
        self.send_token(&token);
        if self.wide && self.active_membership().segment_last(self.my_pos.segment) == Some(self.me)
        {
            self.send_token(&token);
        }
        if token.retrans() > 1 {
            self.send_token(&token);
            self.send_token(&token);
        }
    }

    /// Token loss during EVS: forget the placeholders and fall back to the old ring's
    /// numbers (3.17's `Backoff_membership`).
    pub(super) fn backoff_membership(&mut self) {
        for seq in self.op.last_discarded + 1..=self.op.highest_seq {
            if matches!(self.slot(seq), Some(Slot::Hole)) {
                *self.slot_mut(seq) = None;
            }
        }
        self.op.aru = self.op.last_discarded;
        self.op.my_aru = self.op.last_discarded;
        self.advance_my_aru();
    }

    /// Marks sequence numbers as holes no member has (EVS placeholders).
    pub(super) fn mark_holes(&mut self, holes: &[i32]) {
        for &seq in holes {
            if self.slot(seq).is_none() {
                *self.slot_mut(seq) = Some(Slot::Hole);
            }
        }
    }

    /// Empties the slots `after+1..=to`.
    pub(super) fn forget_beyond(&mut self, after: i32, to: i32) {
        for seq in after + 1..=to {
            *self.slot_mut(seq) = None;
        }
    }

    /// The sequence numbers in `from..=to` we do not have.
    pub(super) fn missing(&self, from: i32, to: i32) -> Vec<i32> {
        (from..=to).filter(|s| !self.has_packet(*s)).collect()
    }

    pub(super) fn holds(&self, seq: i32) -> bool {
        self.has_packet(seq)
    }
}

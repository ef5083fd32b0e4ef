//! The ring: Spread 3.17's daemon-to-daemon protocol without I/O.
//!
//! A token circulates among the daemons of a ring in configuration order; whoever holds it
//! may send new packets (numbered with the ring-wide `seq`), answers retransmission
//! requests carried on it, and lowers its `aru` ("all received up to"). Packets are
//! delivered in `seq` order (AGREED), and SAFE ones only once every member has them. When
//! the token is lost, the membership protocol (ALIVE, JOIN, FORM tokens) forms a new ring,
//! recovers the old ring's messages (EVS) and installs a transitional then a regular
//! configuration.
//!
//! Inputs: [`Ring::handle_datagram`], [`Ring::handle_timeout`], [`Ring::submit`], each with
//! `now`. Outputs, drained after any input: [`Ring::poll_transmit`] (datagrams with their
//! destination), [`Ring::poll_event`] (deliveries and configuration changes),
//! [`Ring::poll_timeout`].
//!
//! The logic follows 3.17.3's `protocol.c` and `membership.c` function by function (their
//! names are cited in comments), because daemons of both implementations must agree on
//! every step; it is written from the protocol's description, not translated.

mod codec;
mod conf;
mod form;
mod membership;
mod monitor;
mod msgs;
mod protocol;
mod timers;

pub use conf::{Membership, Position, ProcConf, ProcId, RingConf, SegmentConf};
pub use timers::Timeouts;

use bytes::Bytes;
use msgs::{Packet, Token};
use spread_wire::membership::MembershipId;
use spread_wire::ring::packet_type;
use spread_wire::Endian;
use std::collections::VecDeque;
use std::time::Instant;
use timers::{Timer, Timers};

/// A datagram to send and where to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    pub to: Destination,
    pub payload: Vec<u8>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Destination {
    /// A daemon's data port.
    Data(ProcId),
    /// A daemon's token port (data port + 1).
    Token(ProcId),
    /// The broadcast address and data port of a segment.
    Segment(usize),
    /// A monitor's report port.
    Monitor(std::net::SocketAddrV4),
}

/// Which port a datagram arrived on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Port {
    Data,
    Token,
}

/// What the ring hands up to the groups layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RingEvent {
    /// A whole message (`message_header | groups | data`), in the total order.
    Deliver(Bytes),
    /// The transitional configuration: who moved together from the old ring.
    Transitional {
        members: Vec<ProcId>,
        id: MembershipId,
    },
    /// The new regular configuration.
    Regular {
        members: Vec<ProcId>,
        id: MembershipId,
    },
    /// A monitor asked for a status report (the daemon completes it: see `Ring::status`).
    StatusRequest { to: std::net::SocketAddrV4 },
    /// A monitor's partition gave this daemon a negative component: 3.17 exits.
    ExitRequested,
}

/// Which queue new messages go to: clients', or the groups state exchange's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Queue {
    Normal,
    Groups,
}

/// Membership states of 3.17 (`membership.h`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Op,
    Seg,
    Represented,
    Gather,
    Form,
    Evs,
}

/// Flow control: at most `window` datagrams per token rotation in all, `personal_window`
/// per visit. 3.17 fixes them at 60 and 15; ours default larger (measured by
/// `cargo xtask bench ring`), and spread.conf's `Window`/`PersonalWindow` set them.
#[derive(Clone, Copy, Debug)]
pub struct FlowControl {
    pub window: i32,
    pub personal_window: i32,
}

impl Default for FlowControl {
    fn default() -> Self {
        FlowControl {
            window: 600,
            personal_window: 200,
        }
    }
}

/// Counters for status reports and benchmarks.
#[derive(Clone, Copy, Debug, Default)]
pub struct RingStats {
    pub packets_sent: u64,
    pub packets_received: u64,
    /// Packets handed up in order (fragments count one each).
    pub packets_delivered: u64,
    /// Retransmitted datagrams: unicast, to a segment, and broadcast (a flushed batch is one).
    pub retransmissions: u64,
    pub unicast_retrans: u64,
    pub segment_retrans: u64,
    pub broadcast_retrans: u64,
    /// Tokens the leader re-sent after its hurry timeout, and new tokens we took that had been.
    pub token_hurries: u64,
    pub token_rounds: u64,
    pub membership_changes: u64,
}

/// Settings of a ring.
#[derive(Clone, Debug)]
pub struct RingOptions {
    pub conf: RingConf,
    pub me: ProcId,
    pub timeouts: Timeouts,
    pub flow: FlowControl,
    pub endian: Endian,
    /// Wall-clock seconds at `start`: ring ids carry wall-clock time.
    pub wall_clock_secs: i64,
    /// The last ring time this daemon used before it restarted (kept by the event loop),
    /// so a quick restart cannot reuse a ring id.
    pub last_time_used: Option<i32>,
    /// Whether monitors may partition the ring and change its windows.
    pub dangerous_monitor: bool,
}

/// 8192 packet slots, indexed by `seq & 0x1fff`.
const WINDOW_SLOTS: usize = 8192;
/// New packets stop while the highest seq is this far past the safe line.
const MAX_SEQ_GAP: i32 = 1600;
/// Bytes of one datagram.
pub const MAX_PACKET_SIZE: usize = 1472;
/// Bytes of one packet body (a message fragment).
pub const FRAGMENT_SIZE: usize = MAX_PACKET_SIZE - 32;

/// The ring's state, grouped by the part of the protocol that owns it: `op` and `out`
/// belong to the operational ring (`protocol.rs`), `memb` to the membership algorithm
/// (`membership.rs`), `net` to the network layer below both (here); the rest is settings,
/// fixed at start, and the outputs.
pub struct Ring {
    conf: RingConf,
    me: ProcId,
    my_pos: Position,
    timeouts: Timeouts,
    endian: Endian,
    wide: bool,
    /// Largest membership this ring may form (128 in 3.17; more in extended mode).
    max_procs: usize,
    /// Table and token sizes: 3.17's, or extended for rings of more than 128 daemons.
    limits: spread_wire::ring::Limits,
    /// Whether monitors may partition the ring and change its windows.
    dangerous_monitor: bool,

    clock: Clock,
    timers: Timers,
    op: protocol::Operational,
    out: protocol::Outgoing,
    memb: membership::MembershipState,
    net: Network,
    /// The partition a monitor set, if any.
    partition: monitor::Partition,

    events: VecDeque<RingEvent>,
    stats: RingStats,
}

/// The time of the input being handled, and what ring ids' wall-clock seconds derive from.
struct Clock {
    started: Instant,
    wall_clock_at_start: i64,
    now: Instant,
}

/// The network layer (3.17's `network.c`): who we send to, and datagrams on their way.
struct Network {
    /// Who the network layer sends to (3.17 changes it only when a FORM2 arrives).
    membership: Membership,
    /// Packets waiting to be packed into one datagram.
    bcast_queue: Vec<Packet>,
    bcast_bytes: usize,
    transmits: VecDeque<Transmit>,
}

impl Ring {
    pub fn new(opts: RingOptions, now: Instant) -> Ring {
        let my_pos = opts
            .conf
            .position(opts.me)
            .expect("this daemon is in its configuration");
        let num_procs = opts.conf.num_procs();
        let me_only = Membership::from_ids(&opts.conf, [opts.me]);
        let wide = opts.conf.is_wide();
        let mut ring = Ring {
            me: opts.me,
            my_pos,
            timeouts: opts.timeouts,
            endian: opts.endian,
            wide,
            max_procs: num_procs.max(128),
            limits: spread_wire::ring::Limits::for_ring(num_procs),
            dangerous_monitor: opts.dangerous_monitor,
            clock: Clock {
                started: now,
                wall_clock_at_start: opts.wall_clock_secs,
                now,
            },
            timers: Timers::default(),
            op: protocol::Operational::new(num_procs),
            out: protocol::Outgoing::new(opts.flow),
            memb: membership::MembershipState::new(opts.me, &me_only, opts.last_time_used, now),
            net: Network {
                membership: me_only,
                bcast_queue: Vec::new(),
                bcast_bytes: 0,
                transmits: VecDeque::new(),
            },
            partition: monitor::Partition::default(),
            events: VecDeque::new(),
            stats: RingStats::default(),
            conf: opts.conf,
        };
        // 3.17's Memb_init: start as if the token of a one-daemon ring had just been lost.
        ring.token_loss();
        ring
    }

    // ---- the sans-IO interface ------------------------------------------------------------

    /// A datagram arrived on our data or token port.
    pub fn handle_datagram(&mut self, now: Instant, port: Port, datagram: &[u8]) {
        self.clock.now = now;
        match port {
            Port::Data => self.handle_data_datagram(datagram),
            Port::Token => match codec::decode_token(datagram, self.limits) {
                Ok(token) if !self.in_my_component(token.transmitter) => {}
                Ok(token) => self.handle_token(token),
                Err(e) => tracing::debug!("dropping a token datagram: {e}"),
            },
        }
    }

    /// Runs every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.clock.now = now;
        self.expire_partition(now);
        while let Some(timer) = self.timers.take_due(now) {
            match timer {
                Timer::TokenLoss => self.token_loss(),
                Timer::Hurry => self.token_hurry(),
                Timer::Alive => self.scast_alive(true),
                Timer::Join => self.send_join(),
                Timer::ShiftToSeg => self.shift_to_seg(),
                Timer::GatherOrRepresented => self.gather_or_represented(),
                Timer::FormOrFail => self.form_or_fail(),
                Timer::Lookup => self.lookup_new_members(),
            }
        }
    }

    /// Queues a message (`message_header | groups | data`, in our byte order) to be
    /// ordered. `kind` is the packet type its service maps to.
    pub fn submit(&mut self, now: Instant, queue: Queue, kind: u32, message: Bytes) {
        self.clock.now = now;
        let fragments = (0..message.len().max(1))
            .step_by(FRAGMENT_SIZE)
            .map(|at| message.slice(at..(at + FRAGMENT_SIZE).min(message.len())))
            .collect();
        let q = &mut self.out.queues[queue as usize];
        q.messages
            .push_back(protocol::DownMessage { kind, fragments });
        // 3.17's Prot_new_message: a message into an empty queue while the leader holds the
        // token asks the leader to let it go.
        if queue == self.out.active_queue && q.messages.len() == 1 && self.is_token_hold() {
            let leader = self.active_membership().leader();
            if leader == Some(self.me) {
                self.handle_hurry(self.me);
            } else if let Some(leader) = leader {
                let hurry = self.control_packet(packet_type::HURRY, Bytes::new());
                self.send_packets(Destination::Data(leader), vec![hurry], false);
            }
        }
    }

    /// Which queue the protocol sends from (3.17 switches to the groups queue during the
    /// state exchange after a configuration change).
    pub fn set_active_queue(&mut self, queue: Queue) {
        self.out.active_queue = queue;
    }

    pub fn pending_messages(&self, queue: Queue) -> usize {
        self.out.queues[queue as usize].messages.len()
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.net.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<RingEvent> {
        self.events.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        let partition = self.partition.deadline();
        self.timers
            .next_deadline()
            .into_iter()
            .chain(partition)
            .min()
    }

    pub fn state(&self) -> State {
        self.memb.state
    }

    pub fn membership(&self) -> &Membership {
        &self.memb.membership
    }

    pub fn membership_id(&self) -> MembershipId {
        self.memb.membership_id
    }

    pub fn conf(&self) -> &RingConf {
        &self.conf
    }

    pub fn me(&self) -> ProcId {
        self.me
    }

    pub fn stats(&self) -> RingStats {
        self.stats
    }

    /// The last ring time used: worth keeping across restarts (see `RingOptions`).
    pub fn last_time_used(&self) -> i32 {
        self.memb.last_time_used
    }

    // ---- clocks -----------------------------------------------------------------------------

    /// Wall-clock seconds now, derived from the monotonic clock we are given.
    fn wall_secs(&self) -> i32 {
        (self.clock.wall_clock_at_start
            + self
                .clock
                .now
                .saturating_duration_since(self.clock.started)
                .as_secs() as i64) as i32
    }

    fn arm(&mut self, timer: Timer, after: std::time::Duration) {
        self.timers.arm(timer, self.clock.now, after);
    }

    // ---- the network layer (network.c) ------------------------------------------------------

    /// The ring the protocol runs on: the future one during EVS.
    fn active_membership(&self) -> &Membership {
        if self.memb.state == State::Evs {
            &self.memb.future_membership
        } else {
            &self.memb.membership
        }
    }

    fn is_leader(&self) -> bool {
        self.active_membership().leader() == Some(self.me)
    }

    fn control_packet(&self, kind: u32, body: Bytes) -> Packet {
        Packet {
            kind,
            transmitter: self.me,
            proc_id: self.me,
            memb_id: MembershipId::default(),
            seq: 0,
            fifo_seq: 0,
            index: 0,
            body,
        }
    }

    /// Sends packets as one datagram.
    fn send_packets(&mut self, to: Destination, mut packets: Vec<Packet>, routed: bool) {
        if let Some(first) = packets.first_mut() {
            first.transmitter = self.me;
            first.kind = if routed {
                first.kind | packet_type::ROUTED
            } else {
                first.kind & !packet_type::ROUTED
            };
        }
        let payload = codec::encode_packets(&packets, self.endian, self.limits);
        self.net.transmits.push_back(Transmit { to, payload });
    }

    /// "To everyone": unicast (ROUTED) to the first member of every other segment of the
    /// network membership, then broadcast in my segment if it has more than one daemon
    /// configured. True when something was (or needed no) sending.
    fn bcast(&mut self, packets: Vec<Packet>) -> bool {
        let leaders = self
            .net
            .membership
            .other_segment_leaders(self.my_pos.segment);
        for (_, leader) in &leaders {
            self.send_packets(Destination::Data(*leader), packets.clone(), true);
        }
        if self.conf.bcast_needed(self.my_pos.segment) {
            self.send_packets(Destination::Segment(self.my_pos.segment), packets, false);
        }
        true
    }

    /// To one segment: broadcast in mine (when needed), or unicast to the first member of
    /// another (3.17's `Net_scast`).
    fn scast(&mut self, segment: usize, packets: Vec<Packet>) {
        if segment == self.my_pos.segment {
            if self.conf.bcast_needed(segment) {
                self.send_packets(Destination::Segment(segment), packets, false);
            }
        } else if let Some(leader) = self.net.membership.segment_leader(segment) {
            self.send_packets(Destination::Data(leader), packets, true);
        }
    }

    /// Adds a packet to the datagram being packed; true when that flushed a full one.
    fn queue_bcast(&mut self, packet: Packet) -> bool {
        let aligned = (self.net.bcast_bytes + 3) & !3;
        let len = 32 + packet.body.len();
        let mut flushed = false;
        if !self.net.bcast_queue.is_empty() && aligned + len > MAX_PACKET_SIZE {
            flushed = self.flush_bcast();
        }
        self.net.bcast_bytes = if self.net.bcast_queue.is_empty() {
            len
        } else {
            ((self.net.bcast_bytes + 3) & !3) + len
        };
        self.net.bcast_queue.push(packet);
        flushed
    }

    fn flush_bcast(&mut self) -> bool {
        if self.net.bcast_queue.is_empty() {
            return false;
        }
        let packets = std::mem::take(&mut self.net.bcast_queue);
        self.net.bcast_bytes = 0;
        self.bcast(packets)
    }

    fn send_token(&mut self, token: &Token) {
        let Some(next) = self.net.membership.token_successor(self.me) else {
            return;
        };
        self.unicast_token(next, token);
    }

    fn unicast_token(&mut self, to: ProcId, token: &Token) {
        let mut token = token.clone();
        token.transmitter = self.me;
        match codec::encode_token(&token, self.endian, self.limits) {
            Ok(payload) => self.net.transmits.push_back(Transmit {
                to: Destination::Token(to),
                payload,
            }),
            Err(e) => tracing::error!("not sending a token that does not fit: {e}"),
        }
    }

    /// Whether a token encodes within 3.17's limits.
    fn token_fits(&self, token: &Token) -> bool {
        codec::encode_token(token, self.endian, self.limits).is_ok()
    }

    // ---- receiving --------------------------------------------------------------------------

    fn handle_data_datagram(&mut self, datagram: &[u8]) {
        let (endian, packets) = match codec::decode_packets(datagram, self.limits) {
            Ok(p) => p,
            Err(e) => {
                tracing::debug!("dropping a data datagram: {e}");
                return;
            }
        };
        let first = &packets[0];
        if self.handle_monitor(first, endian) {
            return;
        }
        if first.transmitter == self.me
            || self.conf.position(first.transmitter).is_none()
            || !self.in_my_component(first.transmitter)
        {
            return;
        }
        if first.kind & packet_type::ROUTED != 0 && self.conf.bcast_needed(self.my_pos.segment) {
            // A segment leader passes routed datagrams on to its own segment.
            let mut forward = datagram.to_vec();
            codec::reroute(&mut forward, self.me);
            self.net.transmits.push_back(Transmit {
                to: Destination::Segment(self.my_pos.segment),
                payload: forward,
            });
        }
        let kind = first.kind & !packet_type::ROUTED;
        if kind & (packet_type::STATUS | packet_type::FC | packet_type::PARTITION) != 0 {
            return;
        }
        if kind & packet_type::MEMBERSHIP != 0 {
            let packet = packets.into_iter().next().expect("one packet");
            self.handle_membership_packet(packet, endian);
            return;
        }
        if kind & packet_type::HURRY != 0 {
            let from = first.proc_id;
            self.handle_hurry(from);
            return;
        }
        if kind & packet_type::REGULAR == 0 {
            return;
        }
        if first.memb_id != self.memb.membership_id {
            let packet = packets.into_iter().next().expect("one packet");
            self.handle_foreign(packet);
            return;
        }
        self.handle_ring_packets(packets);
    }
}

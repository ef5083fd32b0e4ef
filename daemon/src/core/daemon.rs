//! The daemon core: its inputs and outputs, the connection table, the order and delivery.
//! Sessions (`handshake`, `session`) and the ring (`ring_bridge`) are submodules.
//!
//! One daemon alone is its own ring, so a message is ordered the moment it is read: the
//! order of `handle_input` calls *is* the total order. [`Daemon::order`] is the one place
//! where messages enter that order; the ring core (token, membership) plugs in there.

use super::auth::AuthPolicy;
use super::groups::{GroupInfo, Groups, Notice};
use super::outq::OutQueue;
use super::ring::{Ring, RingOptions, Transmit};
use super::{ConnId, Identity, Peer};
use bytes::Bytes;
use spread_wire::consts::limits::MAX_GROUP_NAME;
use spread_wire::consts::{limits, service};
use spread_wire::handshake::{ConnectRequest, Reject};
use spread_wire::membership::MembershipId;
use spread_wire::names::parse_private_group;
use spread_wire::{Endian, GroupName, MessageHeader, HEADER_LEN};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

/// Settings of a daemon core.
#[derive(Clone, Debug)]
pub struct DaemonOptions {
    pub identity: Identity,
    /// The byte order we write in: native, as a C daemon on this host would.
    pub endian: Endian,
    /// The id of the ring membership we are in (the daemon alone: itself, at start time).
    pub memb_id: MembershipId,
    pub auth: AuthPolicy,
    /// Named sessions at once (3.17: 997).
    pub max_sessions: usize,
    /// Connections still in their handshake at once; more are refused with REJECT_QUOTA.
    pub max_handshakes: usize,
    /// Bytes queued to one client beyond which it is dropped at once. 3.17 drops a client
    /// at 1000 queued messages; with backpressure (see `congestion_mark`) a client that
    /// reads, however slowly, is never dropped, so only this memory guard remains.
    pub max_queued_bytes: usize,
    /// How long a client may take to send its connect message (3.17: 1 s).
    pub connect_timeout: Duration,
    /// How long a client may take to send its auth choice.
    pub auth_timeout: Duration,
    /// Seed of the generator behind daemon-assigned names.
    pub seed: u64,
    /// Queued messages at which a receiver counts as congested: the event loop stops reading
    /// clients until it drains below half of this, so senders slow to the receivers' pace.
    pub congestion_mark: usize,
    /// How long a receiver may stay congested without draining before it is dropped as too
    /// slow (a client that never reads must not stall everyone).
    pub slow_client_grace: Duration,
    /// The ring this daemon runs with other daemons; `None` when it is configured alone,
    /// and then it orders messages itself, at once.
    pub ring: Option<RingOptions>,
    /// Names to hand out, in order, before generated ones: lets a replay of a captured C
    /// session give clients the names the C daemon picked (its choice is random).
    pub assigned_names: VecDeque<Vec<u8>>,
    /// Whether a monitor may tell this daemon to exit (`DangerousMonitor`); with a ring,
    /// `RingOptions` carries the same setting for partitions and windows.
    pub dangerous_monitor: bool,
}

impl DaemonOptions {
    pub fn new(identity: Identity, memb_id: MembershipId) -> DaemonOptions {
        DaemonOptions {
            identity,
            endian: Endian::NATIVE,
            memb_id,
            auth: AuthPolicy::default(),
            max_sessions: limits::MAX_SESSIONS,
            max_handshakes: 1024,
            max_queued_bytes: 64 << 20,
            connect_timeout: Duration::from_secs(1),
            auth_timeout: Duration::from_secs(5),
            seed: 0x5eed,
            assigned_names: VecDeque::new(),
            dangerous_monitor: false,
            ring: None,
            congestion_mark: 500,
            slow_client_grace: Duration::from_secs(2),
        }
    }
}

/// Why the daemon ends a connection. Logged; never sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// The handshake ended in a reject byte.
    Rejected(Reject),
    /// No connect message (or auth choice) in time.
    HandshakeTimeout,
    /// The client broke a protocol rule; the text says which.
    Violation(String),
    /// Messages piled up for a client that does not read.
    TooSlow { queued: usize },
    /// The client asked to disconnect.
    Disconnected,
    /// The socket closed or failed.
    Hangup,
    /// The client promised (in a liveness probe) to be heard from within `hold` and was not.
    Silent { hold: Duration },
}

impl std::fmt::Display for CloseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CloseReason::Rejected(r) => write!(f, "rejected: {r}"),
            CloseReason::HandshakeTimeout => f.write_str("handshake not completed in time"),
            CloseReason::Violation(why) => write!(f, "protocol violation: {why}"),
            CloseReason::TooSlow { queued } => {
                write!(f, "client does not read: {queued} messages queued")
            }
            CloseReason::Disconnected => f.write_str("client disconnected"),
            CloseReason::Hangup => f.write_str("connection closed"),
            CloseReason::Silent { hold } => write!(
                f,
                "client silent for longer than the {} ms its liveness probe promised",
                hold.as_millis()
            ),
        }
    }
}

/// What the event loop must do besides writing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CoreEvent {
    /// Close the connection; when `flush`, first write what its queue still holds.
    Close {
        conn: ConnId,
        flush: bool,
        reason: CloseReason,
    },
    /// A monitor's partition told this daemon to exit (only with `DangerousMonitor`).
    Exit,
}

#[derive(Debug)]
enum State {
    AwaitConnect {
        buf: Vec<u8>,
        deadline: Instant,
    },
    AwaitAuthChoice {
        request: ConnectRequest,
        name: Vec<u8>,
        buf: Vec<u8>,
        deadline: Instant,
    },
    Open(Box<Session>),
    /// Ended: waiting for the event loop to close it.
    Closed,
}

#[derive(Debug)]
struct Conn {
    peer: Peer,
    state: State,
    out: OutQueue,
    marked_writable: bool,
}

/// Counters for status reports.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    pub messages_delivered: u64,
    pub sessions_accepted: u64,
    pub sessions_dropped_for_violations: u64,
}

/// A Spread daemon's client side and group layer, without I/O.
pub struct Daemon {
    opts: DaemonOptions,
    conns: HashMap<ConnId, Conn>,
    /// Private names in use (handshaking, open, or killed but not yet ordered), as 3.17
    /// reserves them.
    names: BTreeMap<Vec<u8>, ConnId>,
    handshakes: usize,
    deadlines: BTreeSet<(Instant, ConnId)>,
    groups: Groups,
    events: VecDeque<CoreEvent>,
    writable: Vec<ConnId>,
    rng: u64,
    stats: Stats,
    targets: Vec<ConnId>,
    notices: Vec<Notice>,
    /// Messages ordered while another is being delivered (a slow reader dropped during a
    /// delivery): they follow it, never overtake it.
    pending: VecDeque<Bytes>,
    delivering: bool,
    /// Receivers over the congestion mark, and since when.
    congested: HashMap<ConnId, Instant>,
    /// The time of the call being handled.
    now: Instant,
    /// The ring with the other daemons, if configured with any.
    ring: Option<Ring>,
    /// When the daemon started (status reports give its age).
    started: Instant,
    /// Datagrams of a daemon without a ring: its answers to monitors.
    transmits: VecDeque<Transmit>,
    /// When to look next for clients silent past their promised hold (only while some
    /// client has made such a promise).
    next_hold_check: Option<Instant>,
}

impl Daemon {
    /// A daemon started at `now`: status reports count its age from there, and the ring
    /// (if any) arms its first timers from it. The core reads no clock of its own.
    pub fn new(opts: DaemonOptions, now: Instant) -> Daemon {
        let endian = opts.endian;
        let rng = opts.seed | 1;
        let me = u32::from(opts.identity.ip);
        let groups = Groups::new(endian, me, &opts.identity.name, opts.memb_id);
        let ring = opts.ring.clone().map(|r| Ring::new(r, now));
        Daemon {
            opts,
            conns: HashMap::new(),
            names: BTreeMap::new(),
            handshakes: 0,
            deadlines: BTreeSet::new(),
            groups,
            events: VecDeque::new(),
            writable: Vec::new(),
            rng,
            stats: Stats::default(),
            targets: Vec::new(),
            notices: Vec::new(),
            pending: VecDeque::new(),
            delivering: false,
            congested: HashMap::new(),
            now,
            ring,
            started: now,
            transmits: VecDeque::new(),
            next_hold_check: None,
        }
    }

    pub fn identity(&self) -> &Identity {
        &self.opts.identity
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    pub fn groups(&self) -> Vec<GroupInfo> {
        self.groups.info()
    }

    pub fn session_count(&self) -> usize {
        self.names.len()
    }

    // ---- inputs -------------------------------------------------------------------------

    /// A client connected.
    pub fn handle_connect(&mut self, now: Instant, conn: ConnId, peer: Peer) {
        self.now = now;
        let mut c = Conn {
            peer,
            state: State::Closed,
            out: OutQueue::default(),
            marked_writable: false,
        };
        // 3.17 refuses at once, before reading anything, when its sessions are used up.
        if self.names.len() >= self.opts.max_sessions || self.handshakes >= self.opts.max_handshakes
        {
            c.out.push(Bytes::from_static(&[0xfd]));
            self.conns.insert(conn, c);
            self.mark_writable(conn);
            self.close(conn, true, CloseReason::Rejected(Reject::Quota));
            return;
        }
        let deadline = now + self.opts.connect_timeout;
        c.state = State::AwaitConnect {
            buf: Vec::new(),
            deadline,
        };
        self.conns.insert(conn, c);
        self.handshakes += 1;
        self.deadlines.insert((deadline, conn));
    }

    /// Bytes arrived from a client.
    pub fn handle_input(&mut self, now: Instant, conn: ConnId, bytes: &[u8]) {
        self.now = now;
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        match &mut c.state {
            State::AwaitConnect { buf, .. } => {
                buf.extend_from_slice(bytes);
                self.advance_connect(now, conn);
            }
            State::AwaitAuthChoice { buf, .. } => {
                buf.extend_from_slice(bytes);
                self.advance_auth(conn);
            }
            State::Open(session) => {
                session.last_heard = now;
                session.inbuf.extend_from_slice(bytes);
                self.read_messages(conn);
            }
            State::Closed => {}
        }
    }

    /// The connection closed or failed (the event loop has already closed the socket).
    pub fn handle_hangup(&mut self, now: Instant, conn: ConnId) {
        // The session's kill enters the order now: the ring stamps its submission with it.
        self.now = now;
        let open = matches!(
            self.conns.get(&conn).map(|c| &c.state),
            Some(State::Open(_))
        );
        if open {
            self.kill_session(conn, CloseReason::Hangup, false);
        } else if self
            .conns
            .get(&conn)
            .is_some_and(|c| !matches!(c.state, State::Closed))
        {
            self.end_handshake(conn);
            self.close(conn, false, CloseReason::Hangup);
        }
        self.forget(conn);
    }

    /// The event loop closed a connection the core asked it to close.
    pub fn handle_closed(&mut self, conn: ConnId) {
        self.forget(conn);
    }

    /// Time passed: handshakes past their deadline end.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        if let Some(ring) = self.ring.as_mut() {
            ring.handle_timeout(now);
            self.drain_ring();
        }
        let grace = self.opts.slow_client_grace;
        let stuck: Vec<ConnId> = self
            .congested
            .iter()
            .filter(|(_, since)| now.saturating_duration_since(**since) >= grace)
            .map(|(conn, _)| *conn)
            .collect();
        for conn in stuck {
            self.congested.remove(&conn);
            if !self.still_congested(conn) {
                continue;
            }
            let queued = self.conns.get(&conn).map_or(0, |c| c.out.messages());
            self.kill_session(conn, CloseReason::TooSlow { queued }, false);
        }
        self.check_holds(now);
        while let Some(&(deadline, conn)) = self.deadlines.first() {
            if deadline > now {
                break;
            }
            self.deadlines.pop_first();
            self.handshake_expired(conn, deadline);
        }
    }

    // ---- outputs ------------------------------------------------------------------------

    pub fn poll_event(&mut self) -> Option<CoreEvent> {
        self.events.pop_front()
    }

    /// A connection with bytes to write.
    pub fn poll_writable(&mut self) -> Option<ConnId> {
        while let Some(conn) = self.writable.pop() {
            if let Some(c) = self.conns.get_mut(&conn) {
                c.marked_writable = false;
                if !c.out.is_empty() {
                    return Some(conn);
                }
            }
        }
        None
    }

    /// The bytes waiting for `conn`; the event loop writes from it and calls `consume`.
    pub fn output(&mut self, conn: ConnId) -> Option<&mut OutQueue> {
        self.conns.get_mut(&conn).map(|c| &mut c.out)
    }

    /// The next deadline: a handshake's, or a congested receiver's grace running out.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let handshake = self.deadlines.first().map(|(t, _)| *t);
        let holds = self.next_hold_check;
        let grace = self.opts.slow_client_grace;
        let slow = self.congested.values().map(|since| *since + grace).min();
        let ring = self.ring.as_ref().and_then(Ring::poll_timeout);
        handshake
            .into_iter()
            .chain(slow)
            .chain(ring)
            .chain(holds)
            .min()
    }

    /// Whether some receiver is congested: the event loop then stops reading clients (as
    /// 3.17 stops reading them when its queues fill) until this turns false.
    pub fn is_congested(&mut self) -> bool {
        if !self.congested.is_empty() {
            let drained: Vec<ConnId> = self
                .congested
                .keys()
                .copied()
                .filter(|c| !self.still_congested(*c))
                .collect();
            for conn in drained {
                self.congested.remove(&conn);
            }
        }
        !self.congested.is_empty()
    }

    fn still_congested(&self, conn: ConnId) -> bool {
        self.conns.get(&conn).is_some_and(|c| {
            matches!(c.state, State::Open(_)) && c.out.messages() > self.opts.congestion_mark / 2
        })
    }

    // ---- the order and delivery ---------------------------------------------------------

    /// Where messages (`header | groups | data`, the header in our byte order) enter the
    /// total order. One daemon alone delivers at once; with a ring, delivery waits for the
    /// ring's order and comes back through the same `deliver`.
    fn order(&mut self, message: Bytes) {
        if self.ring.is_some() {
            return self.submit_to_ring(message);
        }
        self.pending.push_back(message);
        if self.delivering {
            return;
        }
        self.delivering = true;
        while let Some(next) = self.pending.pop_front() {
            self.deliver(next);
        }
        self.delivering = false;
    }

    /// A message in the total order, ordered here or by any daemon of the ring.
    fn deliver(&mut self, message: Bytes) {
        if message.len() < HEADER_LEN {
            return;
        }
        let (mut header, writer) =
            MessageHeader::decode(message[..HEADER_LEN].try_into().expect("48"));
        let Some(body_len) = header.body_len() else {
            return;
        };
        if HEADER_LEN + body_len > message.len() {
            tracing::warn!("a delivered message is shorter than its header says; dropped");
            return;
        }
        // Headers travel in their originating daemon's order; clients get ours.
        let message = if writer == self.opts.endian {
            message
        } else {
            let mut fixed = message.to_vec();
            header.private_group = GroupName::from_field(&message[4..36]);
            let out: &mut [u8; HEADER_LEN] = (&mut fixed[..HEADER_LEN]).try_into().expect("48");
            header.write_into(out, self.opts.endian);
            Bytes::from(fixed)
        };
        let t = header.msg_type;
        tracing::trace!(daemon = %self.opts.identity.name, tail = ?&message[message.len().saturating_sub(8)..], "delivered type {t:#x} from {}", header.private_group);
        let first_group =
            || GroupName::from_field(&message[HEADER_LEN..HEADER_LEN + MAX_GROUP_NAME]);
        let member = header.private_group;
        let mut notices = std::mem::take(&mut self.notices);
        if t & service::JOIN != 0 && header.num_groups >= 1 {
            let local = self.local_private(&member);
            let daemon = self.daemon_of(&member);
            self.groups
                .join(first_group(), member, daemon, local, &mut notices);
        } else if t & service::LEAVE != 0 && header.num_groups >= 1 {
            self.groups.leave(first_group(), member, &mut notices);
        } else if t & service::KILL != 0 {
            self.groups.kill(member, &mut notices);
            self.release_if_local(&member);
        } else if t & service::GROUPS != 0 {
            self.deliver_groups_message(message, &header, writer, &mut notices);
        } else if t & service::REGULAR != 0 {
            self.deliver_data(message, &header);
        }
        self.send_notices(&mut notices);
        self.notices = notices;
    }

    fn deliver_data(&mut self, message: Bytes, header: &MessageHeader) {
        let mut targets = std::mem::take(&mut self.targets);
        targets.clear();
        let groups = &message[HEADER_LEN..HEADER_LEN + header.num_groups as usize * MAX_GROUP_NAME];
        for raw in groups.chunks(MAX_GROUP_NAME) {
            let group = GroupName::from_field(raw);
            if group.is_private() {
                if let Some(conn) = self.local_private(&group) {
                    if !targets.contains(&conn) {
                        targets.push(conn);
                    }
                }
            } else {
                self.groups.local_members(&group, &mut targets);
            }
        }
        let sender = if header.msg_type & service::SELF_DISCARD != 0 {
            self.local_private(&header.private_group)
        } else {
            None
        };
        tracing::trace!(daemon = %self.opts.identity.name, from = %header.private_group, ?targets, "deliver data");
        for &conn in &targets {
            if Some(conn) != sender {
                self.queue(conn, message.clone());
            }
        }
        self.stats.messages_delivered += 1;
        self.targets = targets;
    }

    /// The local session behind a private group name, if it is ours and open.
    fn local_private(&self, group: &GroupName) -> Option<ConnId> {
        let parsed = parse_private_group(group)?;
        if parsed.daemon_name != self.opts.identity.name.as_bytes() {
            return None;
        }
        self.names.get(parsed.private_name).copied()
    }

    fn queue(&mut self, conn: ConnId, message: Bytes) {
        let limit = self.opts.max_queued_bytes;
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if !matches!(c.state, State::Open(_)) {
            return;
        }
        c.out.push(message);
        let queued = c.out.messages();
        if c.out.bytes() > limit {
            // One stuck reader must not hold the daemon's memory hostage.
            self.kill_session(conn, CloseReason::TooSlow { queued }, false);
            return;
        }
        if queued >= self.opts.congestion_mark {
            self.congested.entry(conn).or_insert(self.now);
        }
        self.mark_writable(conn);
    }

    fn mark_writable(&mut self, conn: ConnId) {
        if let Some(c) = self.conns.get_mut(&conn) {
            if !c.marked_writable {
                c.marked_writable = true;
                self.writable.push(conn);
            }
        }
    }

    fn close(&mut self, conn: ConnId, flush: bool, reason: CloseReason) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.state = State::Closed;
        }
        self.events.push_back(CoreEvent::Close {
            conn,
            flush,
            reason,
        });
    }

    fn forget(&mut self, conn: ConnId) {
        if let Some(c) = self.conns.remove(&conn) {
            if let State::AwaitConnect { .. } | State::AwaitAuthChoice { .. } = c.state {
                self.handshakes -= 1;
                self.release_name(conn);
            }
        }
    }
}

mod handshake;
mod ring_bridge;
mod session;

use session::Session;
#[cfg(test)]
mod tests;

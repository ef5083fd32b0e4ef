//! The daemon core: client sessions, their handshake, validation and delivery.
//!
//! One daemon alone is its own ring, so a message is ordered the moment it is read: the
//! order of `handle_input` calls *is* the total order. [`Daemon::order`] is the one place
//! where messages enter that order; the ring core (token, membership) plugs in there.

use super::auth::AuthPolicy;
use super::groups::{GroupInfo, Groups, Notice};
use super::outq::OutQueue;
use super::ring::{self, Port, ProcId, Queue, Ring, RingEvent, RingOptions, Transmit};
use super::{ConnId, Identity, Peer};
use bytes::{Bytes, BytesMut};
use spread_wire::consts::limits::{MAX_DATA_PLUS_GROUPS, MAX_GROUPS_PER_MESSAGE, MAX_GROUP_NAME};
use spread_wire::consts::{limits, service};
use spread_wire::handshake::{self, ConnectRequest, Parsed, Reject, AUTH_CHOICE_LEN};
use spread_wire::membership::MembershipId;
use spread_wire::names::{parse_private_group, private_group_name};
use spread_wire::probe;
use spread_wire::ring::packet_type;
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
struct Session {
    name: Vec<u8>,
    private_group: GroupName,
    wants_membership: bool,
    inbuf: BytesMut,
    /// The validated header of the message being read, once its 48 bytes are in.
    header: Option<MessageHeader>,
    /// The client offered the liveness probe and we accepted (spread-wire's `probe`).
    probes: bool,
    /// The longest silence the client's last probe promised (`None`: no promise).
    hold: Option<Duration>,
    /// When the last bytes from this client arrived.
    last_heard: Instant,
    /// The byte order of the message being read, as its writer marked it.
    writer: Endian,
    /// When we last sent an unasked probe answer (while congested and not reading).
    last_reassured: Instant,
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

/// A message in the total order.
#[derive(Debug)]
enum Ordered {
    Join {
        member: GroupName,
        group: GroupName,
        message: Bytes,
    },
    Leave {
        member: GroupName,
        group: GroupName,
        message: Bytes,
    },
    /// A session ended; `message` is the client's own disconnect request, if it sent one.
    Kill {
        member: GroupName,
        message: Option<Bytes>,
    },
    Data {
        message: Bytes,
        header: MessageHeader,
    },
}

/// Counters for status reports.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    pub messages_delivered: u64,
    pub sessions_accepted: u64,
    pub sessions_dropped_for_violations: u64,
}

/// How often clients that promised a hold are checked for silence.
const HOLD_CHECK_EVERY: Duration = Duration::from_millis(50);

/// While the daemon reads no client (congested), how often probing clients get an unasked
/// answer: well inside any sensible probe deadline.
const REASSURE_EVERY: Duration = Duration::from_millis(250);

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
    pending: VecDeque<Ordered>,
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
            let Some(c) = self.conns.get(&conn) else {
                continue;
            };
            match &c.state {
                State::AwaitConnect { buf, deadline: d } if *d == deadline => {
                    // 3.17 judges a connect message by what arrived; one that stopped after
                    // the version gets REJECT_NO_NAME, one that stopped in the name
                    // REJECT_ILLEGAL_NAME, and silence just a close.
                    let reject = if buf.is_empty() {
                        None
                    } else if handshake::connect_is_truncated_before_name(buf) || buf.len() < 2 {
                        Some(Reject::NoName)
                    } else {
                        Some(Reject::IllegalName)
                    };
                    match reject {
                        Some(r) => self.reject(conn, r),
                        None => {
                            self.end_handshake(conn);
                            self.close(conn, false, CloseReason::HandshakeTimeout);
                        }
                    }
                }
                State::AwaitAuthChoice { deadline: d, .. } if *d == deadline => {
                    self.reject(conn, Reject::Auth);
                }
                _ => {}
            }
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

    // ---- the handshake ------------------------------------------------------------------

    fn advance_connect(&mut self, now: Instant, conn: ConnId) {
        let c = self.conns.get_mut(&conn).expect("conn exists");
        let State::AwaitConnect { buf, .. } = &mut c.state else {
            return;
        };
        let (request, used) = match handshake::parse_connect(buf) {
            Ok(Parsed::NeedMore) => return,
            Ok(Parsed::Done(request, used)) => (request, used),
            Err(reject) => return self.reject(conn, reject),
        };
        let rest = buf.split_off(used);
        let name = if request.name.is_empty() {
            self.pick_name(conn)
        } else if self.names.contains_key(&request.name) {
            return self.reject(conn, Reject::NotUnique);
        } else {
            request.name.clone()
        };
        self.names.insert(name.clone(), conn);
        let c = self.conns.get_mut(&conn).expect("conn exists");
        if !request.version.negotiates_auth() {
            let allowed = self.opts.auth.decide_without_negotiation(c.peer);
            return self.finish_auth(conn, request, name, allowed, rest);
        }
        let offered = self.opts.auth.offered();
        if offered.is_empty() {
            c.out.push(handshake::encode_auth_list(&offered).into());
            self.mark_writable(conn);
            return self.deny(conn);
        }
        // Only a client that offered the probe sees the pseudo-method; libspread never does.
        let mut listed = offered;
        if request.offers_probe {
            listed.push(probe::METHOD);
        }
        c.out.push(handshake::encode_auth_list(&listed).into());
        self.mark_writable(conn);
        let deadline = now + self.opts.auth_timeout;
        let c = self.conns.get_mut(&conn).expect("conn exists");
        c.state = State::AwaitAuthChoice {
            request,
            name,
            buf: rest,
            deadline,
        };
        self.deadlines.insert((deadline, conn));
        self.advance_auth(conn);
    }

    fn advance_auth(&mut self, conn: ConnId) {
        let c = self.conns.get_mut(&conn).expect("conn exists");
        let State::AwaitAuthChoice { buf, .. } = &mut c.state else {
            return;
        };
        if buf.len() < AUTH_CHOICE_LEN {
            return;
        }
        let rest = buf.split_off(AUTH_CHOICE_LEN);
        let choice: [u8; AUTH_CHOICE_LEN] = buf[..].try_into().expect("90 bytes");
        let methods = handshake::parse_auth_choice(&choice);
        let allowed = self.opts.auth.decide(&methods, c.peer);
        self.end_handshake(conn);
        let c = self.conns.get_mut(&conn).expect("conn exists");
        let State::AwaitAuthChoice { request, name, .. } =
            std::mem::replace(&mut c.state, State::Closed)
        else {
            unreachable!()
        };
        self.finish_auth(conn, request, name, allowed, rest);
    }

    fn finish_auth(
        &mut self,
        conn: ConnId,
        request: ConnectRequest,
        name: Vec<u8>,
        allowed: bool,
        rest: Vec<u8>,
    ) {
        if !allowed {
            return self.deny(conn);
        }
        self.end_handshake(conn);
        let private_group = private_group_name(&name, self.opts.identity.name.as_bytes());
        let c = self.conns.get_mut(&conn).expect("conn exists");
        c.out
            .push(handshake::encode_accept(request.version, &private_group).into());
        c.state = State::Open(Box::new(Session {
            name,
            private_group,
            wants_membership: request.wants_membership,
            inbuf: BytesMut::from(&rest[..]),
            header: None,
            probes: request.offers_probe && request.version.negotiates_auth(),
            hold: None,
            last_heard: self.now,
            writer: Endian::NATIVE,
            last_reassured: self.now,
        }));
        self.stats.sessions_accepted += 1;
        self.mark_writable(conn);
        self.read_messages(conn);
    }

    /// Refuses with REJECT_AUTH and frees the reserved name.
    fn deny(&mut self, conn: ConnId) {
        self.release_name(conn);
        self.reject(conn, Reject::Auth);
    }

    fn reject(&mut self, conn: ConnId, reject: Reject) {
        self.release_name(conn);
        self.end_handshake(conn);
        if let Some(c) = self.conns.get_mut(&conn) {
            c.out.push(Bytes::copy_from_slice(&[reject.byte()]));
            self.mark_writable(conn);
        }
        self.close(conn, true, CloseReason::Rejected(reject));
    }

    fn end_handshake(&mut self, conn: ConnId) {
        if let Some(c) = self.conns.get(&conn) {
            if matches!(
                c.state,
                State::AwaitConnect { .. } | State::AwaitAuthChoice { .. }
            ) {
                self.handshakes -= 1;
            }
        }
    }

    /// Frees the name a handshaking connection reserved (rejects are rare: a scan is fine).
    fn release_name(&mut self, conn: ConnId) {
        self.names.retain(|_, owner| *owner != conn);
    }

    /// `r<0..9998>-<conn>`, unique among sessions, like 3.17's assigned names.
    fn pick_name(&mut self, conn: ConnId) -> Vec<u8> {
        if let Some(name) = self.opts.assigned_names.pop_front() {
            return name;
        }
        loop {
            // xorshift64*: small, seeded, and deterministic for tests.
            self.rng ^= self.rng >> 12;
            self.rng ^= self.rng << 25;
            self.rng ^= self.rng >> 27;
            let r = (self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) % 9999;
            let mut name = format!("r{r}-{conn}").into_bytes();
            name.truncate(limits::MAX_PRIVATE_NAME);
            if !self.names.contains_key(&name) {
                return name;
            }
        }
    }

    // ---- reading messages ---------------------------------------------------------------

    fn read_messages(&mut self, conn: ConnId) {
        loop {
            let Some(Conn {
                state: State::Open(session),
                ..
            }) = self.conns.get_mut(&conn)
            else {
                return;
            };
            if session.header.is_none() {
                if session.inbuf.len() < HEADER_LEN {
                    return;
                }
                let raw: &[u8; HEADER_LEN] = session.inbuf[..HEADER_LEN].try_into().expect("48");
                let (header, writer) = MessageHeader::decode(raw);
                session.writer = writer;
                if let Err(why) =
                    validate(&header, self.opts.endian, session, &self.opts.identity.name)
                {
                    self.stats.sessions_dropped_for_violations += 1;
                    return self.kill_session(conn, CloseReason::Violation(why), false);
                }
                // From here on the header is ours: our byte order, our marker; the hint
                // stays the sending client's (3.17 forwards it untouched).
                let mut fixed = header;
                fixed.private_group = GroupName::from_field(&raw[4..36]);
                let out: &mut [u8; HEADER_LEN] =
                    (&mut session.inbuf[..HEADER_LEN]).try_into().expect("48");
                fixed.write_into(out, self.opts.endian);
                session.header = Some(fixed);
            }
            let header = session.header.expect("validated header");
            let total = HEADER_LEN + header.body_len().expect("validated counts");
            if session.inbuf.len() < total {
                // Reserve once for big messages rather than growing by doubling.
                session.inbuf.reserve(total - session.inbuf.len());
                return;
            }
            session.header = None;
            let message = session.inbuf.split_to(total).freeze();
            let sender = session.private_group;
            self.handle_message(conn, sender, header, message);
        }
    }

    fn handle_message(
        &mut self,
        conn: ConnId,
        sender: GroupName,
        header: MessageHeader,
        message: Bytes,
    ) {
        let first_group =
            || GroupName::from_field(&message[HEADER_LEN..HEADER_LEN + MAX_GROUP_NAME]);
        let t = header.msg_type;
        if probe::is_probe(&header) {
            return self.answer_probe(conn, &message);
        }
        if t & service::JOIN != 0 {
            let group = first_group();
            if self.groups.local_member_count(&group) >= limits::MAX_LOCAL_GROUP_MEMBERS {
                return self.send_reject(conn, &header, &message, service::CAUSED_BY_JOIN);
            }
            self.order(Ordered::Join {
                member: sender,
                group,
                message,
            });
        } else if t & service::LEAVE != 0 {
            let group = first_group();
            self.order(Ordered::Leave {
                member: sender,
                group,
                message,
            });
        } else if t & service::KILL != 0 {
            // 3.17 drops what was still queued for a client that says goodbye.
            self.kill_session_with(conn, CloseReason::Disconnected, false, Some(message));
        } else {
            self.order(Ordered::Data { message, header });
        }
    }

    /// Answers a liveness probe at once and notes the silence the client promised not to
    /// exceed. Nothing of it reaches the ring.
    fn answer_probe(&mut self, conn: ConnId, message: &Bytes) {
        let answer =
            probe::encode_answer(&GroupName::new(&self.opts.identity.name), self.opts.endian);
        let now = self.now;
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if let State::Open(session) = &mut c.state {
            // The header was turned to our order; the body is still in the client's.
            let hold_ms =
                probe::decode_request_body(&message[HEADER_LEN..], session.writer).unwrap_or(0);
            session.hold = (hold_ms > 0).then(|| Duration::from_millis(hold_ms.into()));
            if session.hold.is_some() && self.next_hold_check.is_none() {
                self.next_hold_check = Some(now + HOLD_CHECK_EVERY);
            }
        }
        c.out.push_urgent(Bytes::copy_from_slice(&answer));
        self.mark_writable(conn);
    }

    /// Ends the sessions of clients silent past the hold their last probe promised: a hung
    /// process or a dead host, which TCP alone would notice late or never.
    fn check_holds(&mut self, now: Instant) {
        let Some(at) = self.next_hold_check else {
            return;
        };
        if now < at {
            return;
        }
        // While congested the event loop reads no client: their probes wait unread, so
        // silence is ours, not theirs. Take them as heard, and tell them we are alive with
        // unasked answers, or their own deadline would end sessions that are fine.
        let reading = self.congested.is_empty();
        let answer =
            probe::encode_answer(&GroupName::new(&self.opts.identity.name), self.opts.endian);
        let mut silent = Vec::new();
        let mut any = false;
        let mut reassured = Vec::new();
        for (conn, c) in self.conns.iter_mut() {
            if let State::Open(session) = &mut c.state {
                if let Some(hold) = session.hold {
                    any = true;
                    if !reading {
                        session.last_heard = now;
                        if now.saturating_duration_since(session.last_reassured) >= REASSURE_EVERY {
                            session.last_reassured = now;
                            c.out.push_urgent(Bytes::copy_from_slice(&answer));
                            reassured.push(*conn);
                        }
                    } else if now.saturating_duration_since(session.last_heard) >= hold {
                        silent.push((*conn, hold));
                    }
                }
            }
        }
        for conn in reassured {
            self.mark_writable(conn);
        }
        self.next_hold_check = any.then(|| now + HOLD_CHECK_EVERY);
        for (conn, hold) in silent {
            self.kill_session(conn, CloseReason::Silent { hold }, false);
        }
    }

    /// A refused join or leave goes back to its sender alone, in 3.17's reject layout:
    /// REJECT type, an old-type word, the groups plus the sender's private group, the data.
    fn send_reject(&mut self, conn: ConnId, header: &MessageHeader, message: &Bytes, caused: u32) {
        let endian = self.opts.endian;
        let old_type = endian.stamp((header.msg_type & !(service::JOIN | service::LEAVE)) | caused);
        let mut reject = *header;
        reject.msg_type = service::REJECT | (header.msg_type & service::SELF_DISCARD);
        let groups_end = HEADER_LEN + header.num_groups as usize * MAX_GROUP_NAME;
        let mut out = Vec::with_capacity(message.len() + 4 + MAX_GROUP_NAME);
        let mut names = message[HEADER_LEN..groups_end].to_vec();
        if header.num_groups as usize >= MAX_GROUPS_PER_MESSAGE {
            names.truncate(names.len() - MAX_GROUP_NAME);
        }
        names.extend_from_slice(&header.private_group.0);
        reject.num_groups = (names.len() / MAX_GROUP_NAME) as i32;
        out.extend_from_slice(&reject.encode(endian));
        out.extend_from_slice(&endian.u32_bytes(old_type));
        out.extend_from_slice(&names);
        out.extend_from_slice(&message[groups_end..]);
        self.queue(conn, out.into());
    }

    /// Ends an open session: its kill enters the order (so its groups learn of it), and the
    /// event loop closes the socket.
    fn kill_session(&mut self, conn: ConnId, reason: CloseReason, flush: bool) {
        self.kill_session_with(conn, reason, flush, None)
    }

    fn kill_session_with(
        &mut self,
        conn: ConnId,
        reason: CloseReason,
        flush: bool,
        request: Option<Bytes>,
    ) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let State::Open(session) = std::mem::replace(&mut c.state, State::Closed) else {
            return;
        };
        if !flush {
            c.out.clear();
        }
        self.close(conn, flush, reason);
        // The name stays taken until the kill is ordered: until then the session is still
        // a member of its groups everywhere.
        self.order(Ordered::Kill {
            member: session.private_group,
            message: request,
        });
    }

    // ---- the order and delivery ---------------------------------------------------------

    /// Where messages enter the total order. One daemon alone delivers at once.
    fn order(&mut self, message: Ordered) {
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

    fn deliver(&mut self, message: Ordered) {
        let mut notices = std::mem::take(&mut self.notices);
        match message {
            Ordered::Join { member, group, .. } => {
                let local = self.local_conn(&member);
                let daemon = self.daemon_of(&member);
                self.groups.join(group, member, daemon, local, &mut notices);
            }
            Ordered::Leave { member, group, .. } => self.groups.leave(group, member, &mut notices),
            Ordered::Kill { member, .. } => {
                self.groups.kill(member, &mut notices);
                self.release_if_local(&member);
            }
            Ordered::Data { message, header } => self.deliver_data(message, &header),
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

    fn local_conn(&self, member: &GroupName) -> Option<ConnId> {
        self.local_private(member)
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

/// The ring side of the daemon: ordering through the token ring, deliveries and
/// configuration changes coming back.
impl Daemon {
    /// A datagram arrived on our data or token port.
    pub fn handle_datagram(&mut self, now: Instant, port: Port, datagram: &[u8]) {
        self.now = now;
        if let Some(ring) = self.ring.as_mut() {
            ring.handle_datagram(now, port, datagram);
            self.drain_ring();
        } else if port == Port::Data {
            self.answer_monitor_alone(datagram);
        }
    }

    /// A daemon configured alone has no ring but still answers `spmonitor` on its data
    /// port: status, and (with `DangerousMonitor`) a partition that tells it to exit.
    fn answer_monitor_alone(&mut self, datagram: &[u8]) {
        use spread_wire::ring::monitor::{self, PerDaemonTable, Status};
        let Ok((endian, packets)) = spread_wire::ring::split_datagram(datagram) else {
            return;
        };
        let Some(&(header, body)) = packets.first() else {
            return;
        };
        let me = u32::from(self.opts.identity.ip);
        if !monitor::is_monitor_request(&header) || header.proc_id != me {
            return;
        }
        let kind = header.type_bits();
        if kind & packet_type::STATUS != 0 {
            let sessions = self
                .conns
                .values()
                .filter(|c| matches!(c.state, State::Open(_)))
                .count();
            let status = Status {
                sec: self.now.saturating_duration_since(self.started).as_secs() as i32,
                state: 1,
                gstate: self.groups.state_number(),
                my_id: me,
                leader_id: me,
                message_delivered: self.stats.messages_delivered as i32,
                membership_changes: 1,
                num_procs: 1,
                num_segments: 1,
                num_sessions: sessions.min(i16::MAX as usize) as i16,
                num_groups: self.groups.group_count().min(i16::MAX as usize) as i16,
                major_version: spread_wire::consts::version::MAJOR.into(),
                minor_version: spread_wire::consts::version::MINOR.into(),
                patch_version: spread_wire::consts::version::PATCH.into(),
                ..Status::default()
            };
            let mut reply = monitor::status_reply_header(me);
            reply.data_len = monitor::STATUS_LEN as i16;
            let body = status.encode(self.opts.endian);
            if let Ok(payload) =
                spread_wire::ring::encode_datagram(self.opts.endian, &[(reply, &body[..])])
            {
                let to = std::net::SocketAddrV4::new(header.proc_id.into(), header.seq as u16);
                self.transmits.push_back(Transmit {
                    to: ring::Destination::Monitor(to),
                    payload,
                });
            }
        } else if kind & packet_type::PARTITION != 0 {
            if !self.opts.dangerous_monitor {
                tracing::warn!("refusing a monitor's partition command: DangerousMonitor is off");
            } else if PerDaemonTable::decode(body, endian).is_ok_and(|t| t.entries[0] < 0) {
                tracing::warn!("a monitor told this daemon to exit");
                self.events.push_back(CoreEvent::Exit);
            }
        }
    }

    /// A datagram the ring wants sent.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        match self.ring.as_mut() {
            Some(ring) => ring.poll_transmit(),
            None => self.transmits.pop_front(),
        }
    }

    pub fn ring(&self) -> Option<&Ring> {
        self.ring.as_ref()
    }

    /// The daemon a member belongs to, by the daemon name in `#name#daemon`.
    fn daemon_of(&self, member: &GroupName) -> ProcId {
        let me = u32::from(self.opts.identity.ip);
        let Some(parsed) = parse_private_group(member) else {
            return me;
        };
        match &self.ring {
            Some(ring) => ring.conf().by_name(parsed.daemon_name).unwrap_or(me),
            None => me,
        }
    }

    /// A kill of one of our sessions was ordered: its name is free again.
    fn release_if_local(&mut self, member: &GroupName) {
        if let Some(parsed) = parse_private_group(member) {
            if parsed.daemon_name == self.opts.identity.name.as_bytes() {
                let name = parsed.private_name.to_vec();
                if let Some(conn) = self.names.get(&name) {
                    if !self.conns.contains_key(conn)
                        || matches!(self.conns[conn].state, State::Closed)
                    {
                        self.names.remove(&name);
                    }
                }
            }
        }
    }

    fn submit_to_ring(&mut self, message: Ordered) {
        let endian = self.opts.endian;
        let (kind, bytes) = match message {
            Ordered::Join { message, .. } | Ordered::Leave { message, .. } => {
                (packet_type::AGREED, message)
            }
            Ordered::Kill {
                message: Some(message),
                ..
            } => (packet_type::AGREED, message),
            Ordered::Kill {
                member,
                message: None,
            } => {
                // The daemon's own notice that a session ended travels SAFE, as in 3.17.
                let header = MessageHeader {
                    msg_type: service::KILL | service::SAFE,
                    private_group: member,
                    num_groups: 0,
                    hint: spread_wire::Hint::daemon(endian),
                    data_len: 0,
                };
                (
                    packet_type::SAFE,
                    Bytes::copy_from_slice(&header.encode(endian)),
                )
            }
            Ordered::Data { message, header } => (packet_kind(header.msg_type), message),
        };
        let now = self.now;
        if let Some(ring) = self.ring.as_mut() {
            ring.submit(now, Queue::Normal, kind, bytes);
        }
        self.drain_ring();
    }

    /// Hands the ring's deliveries and configuration changes to the groups layer.
    fn drain_ring(&mut self) {
        loop {
            let Some(event) = self.ring.as_mut().and_then(Ring::poll_event) else {
                return;
            };
            let mut notices = std::mem::take(&mut self.notices);
            match event {
                RingEvent::Deliver(message) => self.deliver_from_ring(message),
                RingEvent::StatusRequest { to } => self.report_status(to),
                RingEvent::ExitRequested => self.events.push_back(CoreEvent::Exit),
                RingEvent::Transitional { members, id } => {
                    tracing::debug!(daemon = %self.opts.identity.name, ?members, ?id, state = ?self.groups.state(), "transitional configuration");
                    self.groups.transitional(&members, id, &mut notices);
                }
                RingEvent::Regular { members, id } => {
                    tracing::debug!(daemon = %self.opts.identity.name, ?members, ?id, state = ?self.groups.state(), "regular configuration");
                    let outcome = self.groups.regular(&members, id, &mut notices);
                    if !outcome.groups_messages.is_empty() {
                        let now = self.now;
                        let ring = self.ring.as_mut().expect("ring events come from a ring");
                        ring.set_active_queue(Queue::Groups);
                        for m in outcome.groups_messages {
                            let kind = packet_kind(
                                MessageHeader::decode(m[..HEADER_LEN].try_into().expect("48"))
                                    .0
                                    .msg_type,
                            );
                            ring.submit(now, Queue::Groups, kind, m);
                        }
                    }
                }
            }
            self.send_notices(&mut notices);
            self.notices = notices;
        }
    }

    /// Completes the ring's status report with the client side's counts and sends it.
    fn report_status(&mut self, to: std::net::SocketAddrV4) {
        let sessions = self
            .conns
            .values()
            .filter(|c| matches!(c.state, State::Open(_)))
            .count();
        let groups = self.groups.group_count();
        let delivered = self.stats.messages_delivered;
        let Some(ring) = self.ring.as_mut() else {
            return;
        };
        let mut status = ring.status();
        status.num_sessions = sessions.min(i16::MAX as usize) as i16;
        status.num_groups = groups.min(i16::MAX as usize) as i16;
        status.message_delivered = delivered as i32;
        status.gstate = self.groups.state_number();
        ring.send_status(to, &status);
    }

    fn send_notices(&mut self, notices: &mut Vec<Notice>) {
        for notice in notices.drain(..) {
            let wants = matches!(
                self.conns.get(&notice.to).map(|c| &c.state),
                Some(State::Open(s)) if s.wants_membership
            );
            if wants {
                self.queue(notice.to, notice.message);
            }
        }
    }

    /// A message in the total order, from any daemon of the ring.
    fn deliver_from_ring(&mut self, message: Bytes) {
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
            let local = self.local_conn(&member);
            let daemon = self.daemon_of(&member);
            self.groups
                .join(first_group(), member, daemon, local, &mut notices);
        } else if t & service::LEAVE != 0 && header.num_groups >= 1 {
            self.groups.leave(first_group(), member, &mut notices);
        } else if t & service::KILL != 0 {
            self.groups.kill(member, &mut notices);
            self.release_if_local(&member);
        } else if t & service::GROUPS != 0 {
            let sender = self
                .ring
                .as_ref()
                .and_then(|r| r.conf().by_name(member.as_bytes()));
            if let Some(sender) = sender {
                let names = &self.names;
                let conns = &self.conns;
                let me = self.opts.identity.name.as_bytes().to_vec();
                let lookup = |m: &GroupName| -> Option<ConnId> {
                    let p = parse_private_group(m)?;
                    if p.daemon_name != me.as_slice() {
                        return None;
                    }
                    names
                        .get(p.private_name)
                        .copied()
                        .filter(|c| conns.contains_key(c))
                };
                let done = self.groups.handle_groups_message(
                    sender,
                    message,
                    &header,
                    writer,
                    &mut notices,
                    &lookup,
                );
                tracing::debug!(daemon = %self.opts.identity.name, sender, done, state = ?self.groups.state(), "GROUPS message");
                if done {
                    if let Some(ring) = self.ring.as_mut() {
                        ring.set_active_queue(Queue::Normal);
                    }
                }
            }
        } else if t & service::REGULAR != 0 {
            self.deliver_data(message, &header);
        }
        self.send_notices(&mut notices);
        self.notices = notices;
    }
}

/// The packet type a message travels as (3.17's `Message_get_packet_type`).
fn packet_kind(msg_type: u32) -> u32 {
    if msg_type & (service::UNRELIABLE | service::RELIABLE) != 0 {
        packet_type::RELIABLE
    } else if msg_type & service::FIFO != 0 {
        packet_type::FIFO
    } else if msg_type & (service::CAUSAL | service::AGREED) != 0 {
        packet_type::AGREED
    } else if msg_type & service::SAFE != 0 {
        packet_type::SAFE
    } else {
        packet_type::AGREED
    }
}

/// The checks 3.17 makes on every header a client sends (`Sess_validate_read_header`), and
/// one it does not: a data message may carry nothing but one service bit and SELF_DISCARD,
/// so no client can forge a membership (REG_MEMB) or a reject for others.
fn validate(
    header: &MessageHeader,
    daemon_endian: Endian,
    session: &Session,
    daemon: &str,
) -> Result<(), String> {
    let t = header.msg_type;
    if session.probes && probe::is_probe(header) {
        if header.num_groups != 0 || header.data_len as usize != probe::REQUEST_BODY_LEN {
            return Err("a liveness probe carries no groups and a 4-byte body".into());
        }
        return Ok(());
    }
    let services = (t & service::REGULAR).count_ones();
    let requests = (t & (service::JOIN | service::LEAVE | service::KILL)).count_ones();
    if services + requests != 1 {
        return Err(format!(
            "type 0x{t:08x} must name exactly one service or one request"
        ));
    }
    let allowed = if services == 1 {
        service::REGULAR | service::SELF_DISCARD
    } else {
        service::JOIN | service::LEAVE | service::KILL
    };
    if t & !allowed != 0 {
        return Err(format!("type 0x{t:08x} carries bits a client may not set"));
    }
    let ours = parse_private_group(&header.private_group).is_some_and(|p| {
        p.private_name == session.name.as_slice() && p.daemon_name == daemon.as_bytes()
    });
    if !ours {
        return Err(format!(
            "sender {} is not this session ({})",
            header.private_group, session.private_group
        ));
    }
    if header.num_groups < 0 || header.num_groups as usize > MAX_GROUPS_PER_MESSAGE {
        return Err(format!("num_groups {} outside 0..=100", header.num_groups));
    }
    if requests == 1 && t & service::KILL == 0 && header.num_groups < 1 {
        return Err("a join or leave names no group".into());
    }
    // The daemon reads the hint in its own order, whoever wrote it.
    if header.hint.has_stray_bits(daemon_endian) {
        return Err(format!(
            "hint {:02x?} has bits outside 0x80ffff80",
            header.hint.0
        ));
    }
    if header.data_len < 0 {
        return Err(format!("negative data_len {}", header.data_len));
    }
    let size = header.data_len as usize + header.num_groups as usize * MAX_GROUP_NAME;
    if size > MAX_DATA_PLUS_GROUPS {
        return Err(format!(
            "data plus group names is {size} bytes, more than {MAX_DATA_PLUS_GROUPS}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use spread_wire::frame::Frame;
    use std::net::Ipv4Addr;

    /// Connects `name` through the handshake; returns its private group.
    fn connect(d: &mut Daemon, now: Instant, conn: ConnId, name: &str) {
        d.handle_connect(now, conn, Peer::Local);
        let mut hello = vec![3, 17, 3, 1, name.len() as u8];
        hello.extend_from_slice(name.as_bytes());
        d.handle_input(now, conn, &hello);
        let mut choice = [0u8; 90];
        choice[..4].copy_from_slice(b"NULL");
        d.handle_input(now, conn, &choice);
        drain(d, conn);
    }

    /// A client request to group `g` as `sender` writes it (`mess_type` in its hint), in `endian`.
    fn request(
        msg_type: u32,
        sender: &str,
        mess_type: i16,
        data: &[u8],
        endian: spread_wire::Endian,
    ) -> Vec<u8> {
        spread_wire::frame::encode_message(
            &MessageHeader {
                msg_type,
                private_group: GroupName::new(sender),
                num_groups: 0,
                hint: spread_wire::Hint::new(mess_type, endian),
                data_len: 0,
            },
            &[GroupName::new("g")],
            &[data],
            endian,
        )
    }

    fn drain(d: &mut Daemon, conn: ConnId) -> Vec<u8> {
        let q = d.output(conn).unwrap();
        let mut out = Vec::new();
        let mut slices = Vec::new();
        q.slices(&mut slices, usize::MAX);
        for s in &slices {
            out.extend_from_slice(s);
        }
        let n = out.len();
        q.consume(n);
        out
    }

    /// A daemon on a big-endian host (ppc64, s390x) writes its own order; a little-endian
    /// client's messages keep their hint, so receivers compute endian_mismatch as in 3.17.
    #[test]
    fn a_big_endian_daemon_serves_little_endian_clients() {
        let identity = Identity {
            name: "n1".into(),
            ip: Ipv4Addr::LOCALHOST,
        };
        let mut opts = DaemonOptions::new(
            identity,
            MembershipId {
                proc_id: 0x7f00_0001,
                time: 1,
            },
        );
        opts.endian = Endian::Big;
        let now = Instant::now();
        let mut d = Daemon::new(opts, now);
        connect(&mut d, now, 1, "le");
        let le = spread_wire::Endian::Little;
        let join = request(service::JOIN, "#le#n1", 0, b"", le);
        d.handle_input(now, 1, &join);
        let out = drain(&mut d, 1);
        let frame = Frame::decode(&out).unwrap();
        assert_eq!(frame.writer, Endian::Big, "the daemon writes its own order");
        assert_eq!(
            &out[0..4],
            &[0x00, 0x00, 0x11, 0x00],
            "REG_MEMB|CAUSED_BY_JOIN, big-endian"
        );
        let body = spread_wire::membership::RegularBody::decode(frame.data, Endian::Big).unwrap();
        assert_eq!(body.group_id.index, 1);
        let data = request(service::AGREED, "#le#n1", 0x1234, b"payload", le);
        d.handle_input(now, 1, &data);
        let out = drain(&mut d, 1);
        let frame = Frame::decode(&out).unwrap();
        assert_eq!(frame.writer, Endian::Big);
        assert_eq!(frame.header.msg_type, service::AGREED);
        assert_eq!(frame.header.data_len, 7);
        // The hint is still the little-endian client's bytes.
        assert_eq!(frame.header.hint.endian(), Endian::Little);
        assert_eq!(frame.header.hint.mess_type(), 0x1234);
        assert_eq!(frame.data, b"payload");
    }

    fn one_daemon(now: Instant) -> Daemon {
        let identity = Identity {
            name: "n1".into(),
            ip: Ipv4Addr::LOCALHOST,
        };
        Daemon::new(
            DaemonOptions::new(
                identity,
                MembershipId {
                    proc_id: 0x7f00_0001,
                    time: 1,
                },
            ),
            now,
        )
    }

    /// The auth list a client sees after sending `flags` in its connect message.
    fn auth_list_for(d: &mut Daemon, now: Instant, conn: ConnId, flags: u8) -> Vec<u8> {
        d.handle_connect(now, conn, Peer::Local);
        d.handle_input(now, conn, &[3, 17, 3, flags, 2, b'p', b'0' + conn as u8]);
        drain(d, conn)
    }

    #[test]
    fn only_a_client_that_offers_the_probe_sees_it_listed() {
        let now = Instant::now();
        let mut d = one_daemon(now);
        assert_eq!(auth_list_for(&mut d, now, 1, 1), b"\x05NULL ");
        assert_eq!(
            auth_list_for(&mut d, now, 2, 0x01 | probe::OFFER_FLAG),
            b"\x0bNULL PROBE "
        );
    }

    #[test]
    fn a_probe_is_answered_and_a_silent_client_is_ended() {
        let t0 = Instant::now();
        let mut d = one_daemon(t0);
        auth_list_for(&mut d, t0, 1, probe::OFFER_FLAG);
        let mut choice = [0u8; 90];
        choice[..4].copy_from_slice(b"NULL");
        d.handle_input(t0, 1, &choice);
        drain(&mut d, 1);
        let own = GroupName::new("#p1#n1");
        for endian in [Endian::Big, Endian::Little] {
            d.handle_input(t0, 1, &probe::encode_request(&own, 300, endian));
            let answer = drain(&mut d, 1);
            let frame = Frame::decode(&answer).unwrap();
            assert!(probe::is_probe(&frame.header));
            assert_eq!(frame.header.private_group, GroupName::new("n1"));
        }
        // Heard within the hold: still open.
        d.handle_timeout(t0 + Duration::from_millis(200));
        assert_eq!(d.poll_event(), None);
        d.handle_timeout(t0 + Duration::from_millis(400));
        assert!(matches!(
            d.poll_event(),
            Some(CoreEvent::Close {
                conn: 1,
                reason: CloseReason::Silent { .. },
                ..
            })
        ));
    }

    #[test]
    fn a_probe_from_a_client_that_did_not_offer_is_a_violation() {
        let now = Instant::now();
        let mut d = one_daemon(now);
        connect(&mut d, now, 1, "np");
        d.handle_input(
            now,
            1,
            &probe::encode_request(&GroupName::new("#np#n1"), 0, Endian::NATIVE),
        );
        assert!(matches!(
            d.poll_event(),
            Some(CoreEvent::Close {
                reason: CloseReason::Violation(_),
                ..
            })
        ));
    }

    #[test]
    fn while_congested_probing_clients_are_reassured_not_ended() {
        let t0 = Instant::now();
        let mut d = one_daemon(t0);
        d.opts.congestion_mark = 4;
        d.opts.slow_client_grace = Duration::from_secs(10);
        auth_list_for(&mut d, t0, 1, probe::OFFER_FLAG);
        let mut choice = [0u8; 90];
        choice[..4].copy_from_slice(b"NULL");
        d.handle_input(t0, 1, &choice);
        let own = GroupName::new("#p1#n1");
        d.handle_input(t0, 1, &probe::encode_request(&own, 300, Endian::NATIVE));
        connect(&mut d, t0, 2, "slow");
        let le = Endian::NATIVE;
        let join = request(service::JOIN, "#slow#n1", 0, b"", le);
        d.handle_input(t0, 2, &join);
        for _ in 0..10 {
            let data = request(service::AGREED, "#p1#n1", 0, b"x", le);
            d.handle_input(t0, 1, &data);
        }
        drain(&mut d, 1);
        assert!(d.is_congested(), "the slow receiver congests the daemon");
        // Past p1's hold, with nothing read from it: not ended, and told we are alive.
        d.handle_timeout(t0 + Duration::from_millis(400));
        assert_eq!(d.poll_event(), None);
        let out = drain(&mut d, 1);
        let frame = Frame::decode(&out).unwrap();
        assert!(probe::is_probe(&frame.header));
    }
}

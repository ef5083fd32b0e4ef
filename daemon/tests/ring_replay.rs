//! Replays captured C Spread 3.17.3 ring traffic into our ring core, which plays one of the
//! captured daemons, and checks that it answers as that C daemon did.
//!
//! The captures (`testdata/spread-3.17.3/three-segments/`, see its README) are of
//! three unmodified C daemons n1, n2, n3 (127.0.0.1-3), each alone in its segment:
//! `udp-formation-steady.pcap` (start, formation, idle ring, three clients joining a group
//! and sending one SAFE message each) and `udp-failure.pcap` (n3 killed, the two others form
//! a new ring). Our `Ring` is built as the daemon builds it from the capture's `spread.conf`
//! (`config::ring_options` for a ring with C daemons:
//! 3.17.3's LAN timeouts and windows; little-endian, as the i386 daemons). It is fed, at
//! their captured times (on a virtual clock), the datagrams the other daemons sent to the
//! daemon it plays, on the port they went to (4803 data, 4804 token), and it is handed the
//! messages the real daemon's groups layer and clients gave it (their bytes, from the
//! capture): at each regular configuration the GROUPS state-exchange message (into the
//! groups queue, switching back once every member's is delivered, as `core::daemon` does),
//! and each client message when the real daemon asked the leader for the token for it (its
//! HURRY) or released the token it held for it.
//!
//! Asserted for each daemon of the formation capture (`formation_as_n1/2/3`):
//! * GATHER: our JOINs decode, go to the daemons the real one's went to, and the last one
//!   before the FORM tokens is byte-identical to the real daemon's (same members, same
//!   representatives in the same order).
//! * From the first FORM token on (the FORM1 the leader creates, the FORM2 the last member
//!   makes of it, the first regular token, the state exchange, every token of the idle
//!   ring, the HURRYs and client messages): every datagram our core sends is the real
//!   daemon's, byte for byte, to the same daemon and port, in the same order, within 2 ms
//!   (50 ms for what our own timers send), and it sends nothing else.
//! * The configurations: a transitional one of itself alone (each daemon started alone),
//!   id (itself, regular time - 1), then the regular one with the members and the ring id
//!   (127.0.0.1, 1795653426) the C daemon's log printed.
//! * Deliveries: the nine messages of the new ring (three GROUPS, three joins of `demo`,
//!   three SAFE messages), each once, in seq order, with the captured bytes.
//!
//! And for the failure capture, continuing the same replay (`failure_as_n1/2`, the two
//! survivors): the token re-sent into the void (RETRANS 1, then 2 with its two extra
//! copies), the token loss, the JOINs, the FORM1 (n1) or FORM2 (n2), the new ring's tokens
//! are byte-identical again, and the configurations are the transitional {n1, n2} with id
//! (127.0.0.1, 1795653450) and the regular one the logs printed, (127.0.0.1, 1795653451).
//!
//! What is not checked, and why:
//! * The replay is open loop: the C daemons answered the real daemon, not ours. That is why
//!   our core is handed the real daemon's own messages (else its seqs would differ from the
//!   ones the others' tokens account for) and why only one daemon at a time is ours. It
//!   works only because our core's answers are identical; a divergence shows as the first
//!   datagram that differs, and everything after it is meaningless.
//! * Bytes 3.17.3 fills with leftovers no receiver reads are zeroed on both sides before
//!   comparing (see [`normalized`]); JOINs a daemon sends to itself are left out (see
//!   [`assert_same_traffic`]).
//! * Times: our core reads the wall clock as whole seconds at start, so its start second is
//!   picked to read what the C daemon read when it took a ring time (see [`Replay::new`]).
//!   C's timers run late by about half a millisecond, which the replay imitates
//!   ([`TIMER_LATENESS`]): without it a JOIN timer of ours fires just before a FORM1 that
//!   C's had not yet. Each daemon's start is taken from its first JOIN ([`started`]).
//! * The 4 s between the two captures held one idle-token rotation that is not captured; it
//!   is rebuilt from the rotations either side ([`gap_token`]).
//! * The client TCP side, the GROUPS message contents and n3's restart are out of scope.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::fs;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use spread_daemon::config;
use spread_daemon::core::ring::{
    Destination, Port, ProcId, Queue, Ring, RingEvent, State, Timeouts,
};
use spread_wire::consts::service;
use spread_wire::membership::MembershipId;
use spread_wire::ring::form::MembersTable;
use spread_wire::ring::{
    decode_data_datagram, packet_type, PacketBody, PacketHeader, Token, TokenHeader,
};
use spread_wire::{Endian, MessageHeader, HEADER_LEN};

/// Data port of the capture's spread.conf; tokens go to the next port.
const DATA_PORT: u16 = 4803;
/// Bytes of a packet header.
const PACKET_HEADER_LEN: usize = 32;
const TOKEN_PORT: u16 = DATA_PORT + 1;

/// How late C 3.17.3's event loop runs a timer: in the captures its JOINs (every second)
/// drift by 0.6 to 1.2 ms a period, the gather timeout fires 0.6 ms after its 5 s.
const TIMER_LATENESS: i64 = 600;

/// A file of the three-segment run kept in the repository (testdata/spread-3.17.3/README.md
/// says what it is); a missing one fails the test rather than letting it pass having
/// checked nothing.
fn testdata(file: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/spread-3.17.3/three-segments")
        .join(file);
    assert!(path.exists(), "missing test data: {}", path.display());
    path
}

fn n(last: u8) -> ProcId {
    u32::from(Ipv4Addr::new(127, 0, 0, last))
}

fn name(id: ProcId) -> String {
    format!("n{}", id & 0xff)
}

// ---- reading the capture ------------------------------------------------------------------

/// One captured UDP datagram: when (epoch microseconds), where to, what.
#[derive(Clone, Debug)]
struct Captured {
    at: i64,
    dst: (Ipv4Addr, u16),
    payload: Vec<u8>,
}

impl Captured {
    fn is_token(&self) -> bool {
        self.dst.1 == TOKEN_PORT
    }

    /// The daemon that sent it (the header's transmitter: every daemon sends from 127.0.0.1).
    fn sender(&self) -> ProcId {
        if self.is_token() {
            token_header(&self.payload).transmitter_id
        } else {
            packet_header(&self.payload).transmitter_id
        }
    }

    fn receiver(&self) -> ProcId {
        u32::from(self.dst.0)
    }
}

fn packet_header(payload: &[u8]) -> PacketHeader {
    decode_data_datagram(payload).expect("data datagram").1[0].0
}

fn token_header(payload: &[u8]) -> TokenHeader {
    *Token::decode(payload).expect("token").0.header()
}

/// The IPv4 packet inside one captured frame, for the link types tcpdump writes.
fn ipv4_of_frame(link: u32, frame: &[u8]) -> Option<&[u8]> {
    let (ethertype, rest) = match link {
        // Ethernet (lo has all-zero addresses)
        1 => (u16::from_be_bytes([frame[12], frame[13]]), &frame[14..]),
        // Linux cooked
        113 => (u16::from_be_bytes([frame[14], frame[15]]), &frame[16..]),
        // raw IP
        12 | 101 | 228 => (0x0800, frame),
        other => panic!("pcap link type {other} not handled"),
    };
    (ethertype == 0x0800).then_some(rest)
}

/// A classic little- or big-endian pcap file, microsecond timestamps: its UDP datagrams.
fn read_pcap(path: &Path) -> Vec<Captured> {
    let bytes = fs::read(path).unwrap();
    let u32_at = |at: usize, le: bool| {
        let b: [u8; 4] = bytes[at..at + 4].try_into().unwrap();
        if le {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        }
    };
    let le = match u32_at(0, true) {
        0xa1b2_c3d4 => true,
        0xd4c3_b2a1 => false,
        magic => panic!("{}: not a microsecond pcap ({magic:#x})", path.display()),
    };
    let link = u32_at(20, le);
    let mut out = Vec::new();
    let mut at = 24;
    while at + 16 <= bytes.len() {
        let secs = i64::from(u32_at(at, le));
        let micros = i64::from(u32_at(at + 4, le));
        let len = u32_at(at + 8, le) as usize;
        assert_eq!(len, u32_at(at + 12, le) as usize, "truncated frame");
        let frame = &bytes[at + 16..at + 16 + len];
        at += 16 + len;
        let Some(ip) = ipv4_of_frame(link, frame) else {
            continue;
        };
        if ip[9] != 17 {
            continue;
        }
        let header_len = usize::from(ip[0] & 0x0f) * 4;
        let udp = &ip[header_len..usize::from(u16::from_be_bytes([ip[2], ip[3]]))];
        let udp_len = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
        out.push(Captured {
            at: secs * 1_000_000 + micros,
            dst: (
                Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]),
                u16::from_be_bytes([udp[2], udp[3]]),
            ),
            payload: udp[8..udp_len].to_vec(),
        });
    }
    out
}

// ---- the replay -----------------------------------------------------------------------------

/// What our core sent, when.
#[derive(Clone, Debug)]
struct Sent {
    at: i64,
    /// Sent on one of our timers (else in answer to an input).
    on_timer: bool,
    to: Destination,
    payload: Vec<u8>,
}

/// A message the real daemon we play sent; we hand the same bytes to our core.
#[derive(Clone, Debug)]
struct OwnMessage {
    /// When the real daemon had it (its HURRY, or the packet itself).
    submit_at: i64,
    /// A GROUPS state-exchange message, submitted when a regular configuration arrives.
    groups: bool,
    kind: u32,
    body: Vec<u8>,
    /// The real daemon's packet.
    header: PacketHeader,
}

struct Replay {
    me: ProcId,
    ring: Ring,
    base: Instant,
    base_at: i64,
    now_at: i64,
    sent: Vec<Sent>,
    events: Vec<(i64, RingEvent)>,
    /// GROUPS messages waiting for the next regular configuration.
    groups_pending: VecDeque<OwnMessage>,
    /// GROUPS messages still to be delivered before the state exchange is over.
    exchange_left: usize,
}

fn is_groups_message(body: &[u8]) -> bool {
    body.len() >= HEADER_LEN
        && MessageHeader::decode(body[..HEADER_LEN].try_into().unwrap())
            .0
            .msg_type
            & service::GROUPS
            != 0
}

impl Replay {
    /// Our core as daemon `me`, started at `start` (epoch µs) with the capture's spread.conf.
    ///
    /// Our core reads the wall clock as the whole seconds it is given at start plus the time
    /// elapsed since; the C daemon reads it whole. The two agree to the second only over part
    /// of each second, so we give it the seconds that make it read at `clock_at` what the C
    /// daemon read then (the moment it reads the FORM2 and takes the time for ring ids).
    fn new(me: ProcId, start: i64, clock_at: i64) -> Replay {
        let conf = config::parse_file(&testdata("spread.conf")).expect("spread.conf");
        let wall_clock_secs = clock_at / 1_000_000 - (clock_at - start) / 1_000_000;
        let base = Instant::now();
        let ring = Ring::new(
            config::ring_options(
                &conf,
                me,
                config::RingStart {
                    with_c_daemons: true,
                    endian: Endian::Little,
                    wall_clock_secs,
                    last_time_used: None,
                },
            ),
            base,
        );
        let mut replay = Replay {
            me,
            ring,
            base,
            base_at: start,
            now_at: start,
            sent: Vec::new(),
            events: Vec::new(),
            groups_pending: VecDeque::new(),
            exchange_left: 0,
        };
        replay.drain(true);
        replay
    }

    fn instant(&self, at: i64) -> Instant {
        assert!(at >= self.base_at, "a datagram before the daemon started");
        self.base + Duration::from_micros((at - self.base_at) as u64)
    }

    fn drain(&mut self, on_timer: bool) {
        while let Some(t) = self.ring.poll_transmit() {
            self.sent.push(Sent {
                at: self.now_at,
                on_timer,
                to: t.to,
                payload: t.payload,
            });
        }
        while let Some(event) = self.ring.poll_event() {
            match &event {
                RingEvent::Regular { members, .. } => {
                    if let Some(m) = self.groups_pending.pop_front() {
                        self.exchange_left = members.len();
                        let now = self.instant(self.now_at);
                        self.ring.set_active_queue(Queue::Groups);
                        self.ring
                            .submit(now, Queue::Groups, m.kind, m.body.clone().into());
                    }
                }
                RingEvent::Deliver(body) if is_groups_message(body) && self.exchange_left > 0 => {
                    self.exchange_left -= 1;
                    if self.exchange_left == 0 {
                        self.ring.set_active_queue(Queue::Normal);
                    }
                }
                _ => {}
            }
            self.events.push((self.now_at, event));
            // Submitting may have sent something.
            while let Some(t) = self.ring.poll_transmit() {
                self.sent.push(Sent {
                    at: self.now_at,
                    on_timer,
                    to: t.to,
                    payload: t.payload,
                });
            }
        }
    }

    /// Runs our timers up to `at`, each [`TIMER_LATENESS`] after it is due, as C's event
    /// loop runs them.
    fn advance(&mut self, at: i64) {
        while let Some(deadline) = self.ring.poll_timeout() {
            let fire_at = self.base_at + (deadline - self.base).as_micros() as i64 + TIMER_LATENESS;
            if fire_at > at {
                break;
            }
            self.now_at = fire_at.max(self.now_at);
            let now = self.instant(self.now_at);
            self.ring.handle_timeout(now);
            self.drain(true);
        }
        self.now_at = at.max(self.now_at);
    }

    fn receive(&mut self, c: &Captured) {
        self.advance(c.at);
        let port = if c.is_token() {
            Port::Token
        } else {
            Port::Data
        };
        let now = self.instant(c.at);
        self.ring.handle_datagram(now, port, &c.payload);
        self.drain(false);
    }

    fn submit(&mut self, m: &OwnMessage) {
        self.advance(m.submit_at);
        let now = self.instant(m.submit_at);
        self.ring
            .submit(now, Queue::Normal, m.kind, m.body.clone().into());
        self.drain(false);
    }
}

/// The messages the real daemon `me` sent in a capture (one packet each, as all are here),
/// with the moment the real daemon had each: its HURRY for it (a member asking the leader
/// for the token), else the token it re-sent just before (the leader releasing the token
/// it held), else the packet itself.
fn own_messages(capture: &[Captured], me: ProcId) -> Vec<OwnMessage> {
    let mut out: Vec<OwnMessage> = Vec::new();
    let mut last_hurry: Option<i64> = None;
    let mut last_sent: Option<i64> = None;
    for c in capture.iter().filter(|c| c.sender() == me) {
        if c.is_token() {
            last_sent = Some(c.at);
            continue;
        }
        let (_, packets) = decode_data_datagram(&c.payload).unwrap();
        for (header, body) in packets {
            match body {
                PacketBody::Hurry => last_hurry = Some(c.at),
                PacketBody::Data(bytes) => {
                    if out
                        .iter()
                        .any(|m| m.header.seq == header.seq && m.header.memb_id == header.memb_id)
                    {
                        continue; // the same packet to another segment
                    }
                    assert_eq!(header.packet_index, -1, "single-packet messages only");
                    let submit_at = match (last_hurry.take(), last_sent) {
                        (Some(h), _) if c.at - h < 1_000_000 => h,
                        (_, Some(t)) if c.at - t < 5_000 => t - 1,
                        _ => c.at,
                    };
                    out.push(OwnMessage {
                        submit_at,
                        groups: is_groups_message(bytes),
                        kind: header.type_bits() & packet_type::REGULAR,
                        body: bytes.to_vec(),
                        header,
                    });
                }
                _ => {}
            }
        }
        last_sent = Some(c.at);
    }
    out
}

/// Feeds `me` what the other daemons sent it in `capture`, and the real `me`'s own messages.
fn replay(r: &mut Replay, capture: &[Captured]) {
    let own = own_messages(capture, r.me);
    r.groups_pending
        .extend(own.iter().filter(|m| m.groups).cloned());
    let mut submits: VecDeque<OwnMessage> = own.into_iter().filter(|m| !m.groups).collect();
    for c in capture {
        if c.receiver() != r.me || c.sender() == r.me {
            continue;
        }
        while submits.front().is_some_and(|m| m.submit_at <= c.at) {
            let m = submits.pop_front().unwrap();
            r.submit(&m);
        }
        r.receive(c);
    }
}

fn describe(payload: &[u8], port_is_token: bool) -> String {
    if port_is_token {
        let (token, _) = Token::decode(payload).unwrap();
        let h = token.header();
        let kind = match &token {
            Token::Regular { .. } => "TOKEN",
            Token::Form1 { .. } => "FORM1",
            Token::Form2 { .. } => "FORM2",
        };
        format!(
            "{kind} type={:#010x} tx={} seq={} proc={} aru={} aru_last={} fc={} len={}",
            h.type_word,
            name(h.transmitter_id),
            h.seq,
            name(h.proc_id),
            h.aru,
            name(h.aru_last_id),
            h.flow_control,
            payload.len()
        )
    } else {
        let (_, packets) = decode_data_datagram(payload).unwrap();
        let (h, body) = &packets[0];
        format!(
            "{} type={:#010x} tx={} proc={} memb=({},{}) seq={} fifo={} len={}",
            body.kind(),
            h.type_word,
            name(h.transmitter_id),
            name(h.proc_id),
            name(h.memb_id.proc_id),
            h.memb_id.time,
            h.seq,
            h.fifo_seq,
            payload.len()
        )
    }
}

fn dump(r: &Replay, capture: &[Captured]) {
    let t0 = capture[0].at;
    let secs = |at: i64| (at - t0) as f64 / 1e6;
    println!("--- real {} sent:", name(r.me));
    for c in capture.iter().filter(|c| c.sender() == r.me) {
        println!(
            "{:8.3} -> {}:{} {}",
            secs(c.at),
            name(c.receiver()),
            c.dst.1,
            describe(&c.payload, c.is_token())
        );
    }
    println!("--- our {} sent:", name(r.me));
    for s in &r.sent {
        println!(
            "{:8.3} -> {:?} {}",
            secs(s.at),
            s.to,
            describe(&s.payload, matches!(s.to, Destination::Token(_)))
        );
    }
    println!("--- our {} events:", name(r.me));
    for (at, e) in &r.events {
        match e {
            RingEvent::Deliver(b) => println!("{:8.3} deliver {} bytes", secs(*at), b.len()),
            other => println!("{:8.3} {other:?}", secs(*at)),
        }
    }
    println!("state {:?}", r.ring.state());
}

fn load(file: &str) -> Vec<Captured> {
    read_pcap(&testdata(file))
}

/// A datagram with the bytes zeroed that 3.17.3 fills with leftovers no receiver reads
/// (checked against 3.17.3's `membership.c`):
/// * the ring id of a FORM2 token nobody has visited yet: the last member turns the FORM1
///   into the FORM2 in place, and where the FORM2 has its ring id the FORM1 had its reps
///   table (the capture's reads `{proc_id: 0x00030003, time: 127.0.0.1}`: num_reps 3,
///   rep_index 3, the first rep n1). `Read_form2` at the leader, its first visitor, writes
///   the id. Ours sends zeros;
/// * the slots of a FORM token's members and reps tables past their counts: 3.17.3 keeps
///   what an earlier FORM1 left there (n1's FORM1 after the failure still names n3 past
///   `num_reps`); ours sends zeros;
/// * the `rep_index` of a JOIN's reps list: `Create_form1` sets 3.17.3's `F_reps.rep_index`
///   to 1 and `Shift_to_gather` does not reset it, so n1's JOINs after the failure say 1;
///   ours say 0. Only the FORM1 handlers read a `rep_index` (the token's).
fn normalized(payload: &[u8], token: bool) -> Vec<u8> {
    if !token {
        let mut bytes = payload.to_vec();
        if let Ok((_, packets)) = decode_data_datagram(payload) {
            if let [(_, PacketBody::Join(join))] = &packets[..] {
                let at = PACKET_HEADER_LEN + join.members.encoded_len() + 2;
                bytes[at..at + 2].fill(0);
            }
        }
        return bytes;
    }
    let (mut token, endian) = Token::decode(payload).unwrap();
    let clear_unused = |members: &mut MembersTable| {
        let used = (members.num_members + members.num_pending) as usize;
        members.slots[used..].fill(0);
    };
    match &mut token {
        Token::Form1 { body, .. } => {
            clear_unused(&mut body.members);
            let used = body.reps.num_reps as usize;
            body.reps.slots[used..].fill(Default::default());
        }
        Token::Form2 { body, .. } => {
            clear_unused(&mut body.members);
            if body.members.num_members == 0 {
                body.ring_id = MembershipId::default();
            }
        }
        Token::Regular { .. } => {}
    }
    token.encode(endian).unwrap()
}

fn destination_of(c: &Captured) -> Destination {
    let id = c.receiver();
    match c.dst.1 {
        DATA_PORT => Destination::Data(id),
        TOKEN_PORT => Destination::Token(id),
        port => panic!("datagram to port {port}"),
    }
}

/// Our core sent exactly what the real daemon sent: the same bytes (up to what 3.17.3 fills
/// with leftovers, see [`normalized`]) to the same daemon and port, in the same order, and
/// nothing else; the real daemon's datagrams from `real_from` on against ours from the
/// `our_from`th on. Those the real daemon sent from `timed_from` on must leave ours within
/// 2 ms of the capture when they answer a datagram, within 50 ms when a timer sent them.
///
/// JOINs a daemon sends to itself are left out: it lists itself among the representatives
/// to send to once a peer's JOIN names it, and whether that JOIN came before or after its
/// own JOIN timer fired is a race of a fraction of a millisecond (75 µs in the failure
/// capture); its receiver drops it (the transmitter is itself).
fn assert_same_traffic(
    r: &Replay,
    capture: &[Captured],
    real_from: i64,
    our_from: usize,
    timed_from: i64,
) {
    let real: Vec<&Captured> = capture
        .iter()
        .filter(|c| c.sender() == r.me && c.at >= real_from && c.receiver() != r.me)
        .collect();
    let last = capture.last().unwrap().at;
    let ours: Vec<&Sent> = r.sent[our_from..]
        .iter()
        .filter(|s| s.at <= last && s.to != Destination::Data(r.me))
        .collect();
    let t0 = capture[0].at;
    for (i, (c, s)) in real.iter().zip(&ours).enumerate() {
        let what = format!(
            "{} datagram #{i} at {:.3} s: real {} / ours at {:.3} s {}",
            name(r.me),
            (c.at - t0) as f64 / 1e6,
            describe(&c.payload, c.is_token()),
            (s.at - t0) as f64 / 1e6,
            describe(&s.payload, matches!(s.to, Destination::Token(_)))
        );
        assert_eq!(s.to, destination_of(c), "{what}: destination");
        let (real, ours) = (
            normalized(&c.payload, c.is_token()),
            normalized(&s.payload, c.is_token()),
        );
        if real != ours && c.is_token() {
            let real = Token::decode(&real).unwrap().0;
            let ours = Token::decode(&ours).unwrap().0;
            assert_eq!(
                format!("{ours:?}"),
                format!("{real:?}"),
                "{what}: decoded (ours left)"
            );
        }
        assert_eq!(ours, real, "{what}: bytes");
        if c.at >= timed_from {
            // C's timers run late by about a millisecond a second; answers are immediate.
            let slack = if s.on_timer { 50_000 } else { 2_000 };
            assert!((s.at - c.at).abs() <= slack, "{what}: time");
        }
    }
    assert_eq!(
        ours.len(),
        real.len(),
        "{}: number of datagrams sent",
        name(r.me)
    );
}

/// Every regular membership a daemon log reports: its id and its daemons' addresses.
fn logged_memberships(log: &str) -> Vec<(MembershipId, Vec<ProcId>)> {
    let text = fs::read_to_string(testdata(log)).unwrap();
    let mut out = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let Some(rest) = line.split("Membership id is (").nth(1) else {
            continue;
        };
        let (id, time) = rest.trim_end_matches(')').split_once(',').unwrap();
        let id = MembershipId {
            proc_id: id.trim().parse().unwrap(),
            time: time.trim().parse().unwrap(),
        };
        let mut members = Vec::new();
        for line in lines.by_ref() {
            if line.contains("====") {
                break;
            }
            // "[time] \t\tn1   \t127.0.0.1   " lists a daemon.
            if let Some(daemon) = line.split("\t\t").nth(1) {
                let addr = daemon.split_whitespace().nth(1).unwrap();
                members.push(u32::from(addr.parse::<Ipv4Addr>().unwrap()));
            }
        }
        out.push((id, members));
    }
    out
}

/// The bodies of the data packets of ring `ring` in a capture, by seq (from anyone,
/// including the daemon we play: our core sent the same).
fn ring_messages(capture: &[Captured], ring: MembershipId) -> BTreeMap<i32, Vec<u8>> {
    let mut out = BTreeMap::new();
    for c in capture.iter().filter(|c| !c.is_token()) {
        for (header, body) in decode_data_datagram(&c.payload).unwrap().1 {
            if let PacketBody::Data(bytes) = body {
                if header.memb_id == ring {
                    out.insert(header.seq, bytes.to_vec());
                }
            }
        }
    }
    out
}

fn first_sent_by(capture: &[Captured], me: ProcId, pred: impl Fn(&Captured) -> bool) -> i64 {
    capture
        .iter()
        .find(|c| c.sender() == me && pred(c))
        .expect("no such datagram")
        .at
}

/// When daemon `me` started, in the formation capture: its first JOIN left when its SEG
/// state ended, `seg` (and a timer's lateness) after the start (its ALIVEs went nowhere: each daemon is alone in its
/// segment). The logs' "lost my token" line, printed at start, agrees within 5 ms.
fn started(capture: &[Captured], me: ProcId) -> i64 {
    let seg = Timeouts::spread_3_17_lan(3).seg.as_micros() as i64;
    first_sent_by(capture, me, |c| !c.is_token()) - seg - TIMER_LATENESS
}

fn is_form2(payload: &[u8]) -> bool {
    matches!(Token::decode(payload), Ok((Token::Form2 { .. }, _)))
}

fn is_form1(payload: &[u8]) -> bool {
    matches!(Token::decode(payload), Ok((Token::Form1 { .. }, _)))
}

/// The formation and steady-state capture with our core as daemon `me`.
fn formation(me: ProcId, log: &str) {
    let capture = load("udp-formation-steady.pcap");
    let first_form2 = capture
        .iter()
        .find(|c| c.receiver() == me && c.sender() != me && is_form2(&c.payload))
        .unwrap()
        .at;
    let mut r = Replay::new(me, started(&capture, me), first_form2);
    replay(&mut r, &capture);
    dump(&r, &capture);

    // GATHER: our JOINs go where the real daemon's went; once everyone has been heard,
    // ours say what its did.
    let first_form = capture.iter().find(|c| c.is_token()).unwrap().at;
    let real_joins: Vec<&Captured> = capture
        .iter()
        .filter(|c| c.sender() == me && !c.is_token() && c.at < first_form)
        .collect();
    let our_joins: Vec<&Sent> = r
        .sent
        .iter()
        .filter(|s| matches!(s.to, Destination::Data(_)) && s.at < first_form)
        .collect();
    assert!(!our_joins.is_empty(), "{}: no JOIN sent", name(me));
    for s in &our_joins {
        let (_, packets) = decode_data_datagram(&s.payload).expect("our JOIN decodes");
        assert!(
            matches!(packets[0].1, PacketBody::Join(_)),
            "{}: JOIN expected",
            name(me)
        );
    }
    let destinations = |v: Vec<Destination>| v.into_iter().collect::<HashSet<_>>();
    assert_eq!(
        destinations(our_joins.iter().map(|s| s.to).collect()),
        destinations(real_joins.iter().map(|c| destination_of(c)).collect()),
        "{}: JOIN destinations",
        name(me)
    );
    assert_eq!(
        our_joins.last().unwrap().payload,
        real_joins.last().unwrap().payload,
        "{}: the last JOIN before the ring forms",
        name(me)
    );

    // FORM and after: the same datagrams. The leader creates the FORM1 on its own gather
    // timer, which runs on our clock; from the first datagram fed to it afterwards, ours
    // leave when the real daemon's did.
    let real_from = first_sent_by(&capture, me, |c| c.is_token());
    let our_from = r
        .sent
        .iter()
        .position(|s| matches!(s.to, Destination::Token(_)))
        .unwrap();
    let timed_from = if is_form1(
        &capture
            .iter()
            .find(|c| c.at >= real_from && c.sender() == me)
            .unwrap()
            .payload,
    ) {
        capture
            .iter()
            .find(|c| c.at > real_from && c.receiver() == me && c.sender() != me)
            .unwrap()
            .at
    } else {
        real_from
    };
    assert_same_traffic(&r, &capture, real_from, our_from, timed_from);

    // The configurations: the transitional one of a daemon that was alone, then the
    // regular one the C daemons logged.
    let (logged_id, logged_members) = logged_memberships(log)[0].clone();
    let configurations: Vec<&RingEvent> = r
        .events
        .iter()
        .map(|(_, e)| e)
        .filter(|e| !matches!(e, RingEvent::Deliver(_)))
        .collect();
    assert_eq!(
        configurations,
        [
            &RingEvent::Transitional {
                members: vec![me],
                id: MembershipId {
                    proc_id: me,
                    time: logged_id.time - 1
                }
            },
            &RingEvent::Regular {
                members: logged_members,
                id: logged_id
            }
        ],
        "{}: configurations",
        name(me)
    );
    assert_eq!(r.ring.state(), State::Op);
    assert_eq!(r.ring.membership_id(), logged_id);

    // Every message of the new ring is delivered once, in seq order.
    let expected: Vec<Vec<u8>> = ring_messages(&capture, logged_id).into_values().collect();
    let delivered: Vec<Vec<u8>> = r
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            RingEvent::Deliver(b) => Some(b.to_vec()),
            _ => None,
        })
        .collect();
    assert_eq!(expected.len(), 9, "the capture's messages");
    assert_eq!(delivered, expected, "{}: deliveries", name(me));
}

#[test]
fn formation_as_n1() {
    formation(n(1), "n1.log");
}

#[test]
fn formation_as_n2() {
    formation(n(2), "n2.log");
}

#[test]
fn formation_as_n3() {
    formation(n(3), "n3.log");
}

/// The one token rotation between the two captures, as daemon `me` received it: the idle
/// ring's leader re-sends its token every Hurry timeout (2 s), so after the formation
/// capture's last rotation (ARQ 2, RETRANS 1) came one more (ARQ 3) 2 s before the failure
/// capture's first (ARQ 4, 2 s before n3 died unnoticed). It is the previous token to `me`
/// with the next ARQ: nothing else changes on an idle ring.
fn gap_token(formation: &[Captured], failure: &[Captured], me: ProcId) -> Captured {
    let last = formation
        .iter()
        .rfind(|c| c.is_token() && c.receiver() == me && c.sender() != me)
        .unwrap();
    let (mut token, endian) = Token::decode(&last.payload).unwrap();
    let Token::Regular { header, .. } = &mut token else {
        panic!("the last token of the formation capture is a regular one");
    };
    assert_eq!((header.arq(), header.retrans()), (2, 1));
    *header = header.with_arq(3);
    let hurry = Timeouts::spread_3_17_lan(3).hurry.as_micros() as i64;
    Captured {
        at: failure[0].at - hurry - TIMER_LATENESS,
        dst: last.dst,
        payload: token.encode(endian).unwrap(),
    }
}

/// Formation and steady state, then the kill of n3, with our core as daemon `me`: it
/// notices the loss, gathers with the survivor and forms the two-daemon ring.
fn failure(me: ProcId, log: &str) {
    let formation = load("udp-formation-steady.pcap");
    let failure = load("udp-failure.pcap");
    let failure_form2 = failure
        .iter()
        .find(|c| c.receiver() == me && c.sender() != me && is_form2(&c.payload))
        .unwrap()
        .at;
    let mut r = Replay::new(me, started(&formation, me), failure_form2);
    replay(&mut r, &formation);
    replay(&mut r, &[gap_token(&formation, &failure, me)]);
    let mark = r.sent.len();
    let events = r.events.len();
    replay(&mut r, &failure);
    dump(&r, &failure);

    // From the kill on, our core sends what the C daemon sent: the token re-sent into the
    // void, JOINs after the token loss timeout, the FORM tokens, the new ring's tokens.
    assert_same_traffic(&r, &failure, failure[0].at, mark, failure[0].at);

    let (logged_id, logged_members) = logged_memberships(log)[1].clone();
    assert_eq!(logged_members, [n(1), n(2)]);
    let configurations: Vec<&RingEvent> = r.events[events..]
        .iter()
        .map(|(_, e)| e)
        .filter(|e| !matches!(e, RingEvent::Deliver(_)))
        .collect();
    assert_eq!(
        configurations,
        [
            &RingEvent::Transitional {
                members: logged_members.clone(),
                id: MembershipId {
                    proc_id: n(1),
                    time: logged_id.time - 1
                }
            },
            &RingEvent::Regular {
                members: logged_members,
                id: logged_id
            }
        ],
        "{}: configurations",
        name(me)
    );
    assert_eq!(r.ring.state(), State::Op);
    assert_eq!(r.ring.membership_id(), logged_id);
}

#[test]
fn failure_as_n1() {
    failure(n(1), "n1.log");
}

#[test]
fn failure_as_n2() {
    failure(n(2), "n2.log");
}

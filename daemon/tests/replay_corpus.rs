//! Replays captured client sessions of a C Spread 3.17.3 daemon through our sans-IO core.
//!
//! The corpus (`testdata/spread-3.17.3/client-corpus`, see the README there) holds
//! every TCP stream a real C daemon `n1` (127.0.0.11, little-endian) had with its clients, as
//! bytes with capture times. We feed the client->daemon bytes, connects and hangups to our
//! [`Daemon`] in virtual time and check that it answers each client with the bytes C sent.
//!
//! Where ours legitimately differs, the test names the difference and asserts that it is
//! exactly that difference (never "ignore mismatches"):
//! * values C picked at random or from the clock are taken from the capture
//!   ([`TAKEN_FROM_CAPTURE`]);
//! * C 3.17.3 bugs we do not reproduce (c_multigroup, d_sizes d12, h_violations h8/h9);
//! * a reply C writes to a client that has already hung up (a2_auth).
//!
//! `f_ring` is not replayed here: it needs three daemons and their ring traffic, which is not
//! the client side this test is about.

use serde::Deserialize;
use spread_daemon::core::{
    AuthPolicy, CloseReason, ConnId, CoreEvent, Daemon, DaemonOptions, Identity, Peer,
};
use spread_wire::consts::limits::MAX_GROUP_NAME;
use spread_wire::consts::service;
use spread_wire::frame::encode_message;
use spread_wire::handshake::{self, Parsed, Version, AUTH_CHOICE_LEN};
use spread_wire::membership::{MembershipId, RegularBody};
use spread_wire::{Endian, GroupName, Hint, MessageHeader, HEADER_LEN};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::io::IoSlice;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The daemon of every replayed scenario, as the corpus was captured with it (n1 on
/// 127.0.0.11; see testdata/spread-3.17.3/README.md).
const DAEMON_NAME: &str = "n1";
const DAEMON_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 11);
const DAEMON_ADDR: &str = "127.0.0.11:4803";

/// Fields whose value our daemon cannot know, so the replay takes them from the capture
/// instead of comparing them: (field, why it legitimately differs).
const TAKEN_FROM_CAPTURE: &[(&str, &str)] = &[
    (
        "membership id time (group ids in membership bodies)",
        "wall-clock seconds when the C ring formed",
    ),
    (
        "daemon-assigned private names r<rand>-<fd>",
        "C draws <rand> from rand() and <fd> is its socket's file descriptor",
    ),
];

/// A file of the client corpus kept in the repository (testdata/spread-3.17.3/README.md says
/// what it is); a missing one fails the test rather than letting it pass having checked
/// nothing.
fn testdata(relative: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/spread-3.17.3/client-corpus")
        .join(relative);
    assert!(path.exists(), "missing test data: {}", path.display());
    path
}

// ---- the captured data --------------------------------------------------------------------

#[derive(Deserialize)]
struct CaptureFile {
    streams: Vec<StreamJson>,
}

#[derive(Deserialize)]
struct StreamJson {
    index: usize,
    client: String,
    server: String,
    private_group: String,
    tcp_events: Vec<TcpEvent>,
    c2d_hex: String,
    d2c_hex: String,
    c2d_segments: Vec<Segment>,
    d2c_segments: Vec<Segment>,
}

#[derive(Deserialize)]
struct TcpEvent {
    t: f64,
    dir: String,
    flags: String,
}

#[derive(Deserialize, Clone, Copy)]
struct Segment {
    t: f64,
    off: usize,
    len: usize,
}

/// One captured TCP stream, with what the test needs already worked out.
struct Stream {
    index: usize,
    private_group: String,
    client_ip: Ipv4Addr,
    c2d: Vec<u8>,
    d2c: Vec<u8>,
    c2d_segments: Vec<Segment>,
    d2c_segments: Vec<Segment>,
    /// When the client connected; `None` if the stream never reached the daemon.
    syn: Option<f64>,
    /// The client's first FIN or RST.
    client_close: Option<f64>,
    /// The daemon's first FIN or RST.
    daemon_close: Option<f64>,
    /// The library version from the connect message, when that message was complete.
    version: Option<Version>,
    /// The connect message asked the daemon to pick the name.
    asks_for_name: bool,
    /// What C sent, cut into handshake items and messages.
    c_items: Vec<Item>,
}

impl Stream {
    fn new(s: StreamJson) -> Stream {
        let first = |dir: &str, pick: &dyn Fn(&str) -> bool| {
            s.tcp_events
                .iter()
                .filter(|e| e.dir == dir && pick(&e.flags))
                .map(|e| e.t)
                .reduce(f64::min)
        };
        let is_close = |f: &str| f.contains("FIN") || f.contains("RST");
        // Streams to a closed port (a_connect's 127.0.0.99) get no SYN+ACK: no daemon saw them.
        let answered = s.server == DAEMON_ADDR && first("d2c", &|f| f == "SYN+ACK").is_some();
        let c2d = unhex(&s.c2d_hex);
        let d2c = unhex(&s.d2c_hex);
        let (version, asks_for_name) = match handshake::parse_connect(&c2d) {
            Ok(Parsed::Done(request, _)) => (Some(request.version), request.name.is_empty()),
            _ => (None, false),
        };
        let client_ip = s
            .client
            .split(':')
            .next()
            .and_then(|ip| ip.parse().ok())
            .expect("client address");
        Stream {
            index: s.index,
            private_group: s.private_group,
            client_ip,
            c_items: split_d2c(&d2c, version),
            c2d,
            d2c,
            c2d_segments: s.c2d_segments,
            d2c_segments: s.d2c_segments,
            syn: first("c2d", &|f| f == "SYN").filter(|_| answered),
            client_close: first("c2d", &is_close),
            daemon_close: first("d2c", &is_close),
            version,
            asks_for_name,
        }
    }

    fn conn(&self) -> ConnId {
        self.index as ConnId
    }

    /// Whether the client hung up on its own rather than in answer to the daemon's close.
    /// Only then is its close replayed: a FIN that answers C's FIN is not something a client
    /// would do to ours, which may close later (a handshake deadline) or not at all.
    fn client_hung_up_first(&self) -> bool {
        match (self.client_close, self.daemon_close) {
            (Some(c), Some(d)) => c < d,
            (Some(_), None) => true,
            (None, _) => false,
        }
    }

    /// Whether C ended the session. Clients close in answer to a reject byte or right after
    /// their KILL, racing the daemon's own close, so those count as the daemon's doing.
    fn c_ended_session(&self) -> bool {
        let daemon_first = matches!(
            (self.daemon_close, self.client_close),
            (Some(d), Some(c)) if d < c
        ) || (self.daemon_close.is_some() && self.client_close.is_none());
        let rejected = matches!(self.c_items.last(), Some(Item::Reject(_)));
        let killed = self.client_messages().iter().any(|m| {
            m.header()
                .is_some_and(|(h, _)| h.msg_type & service::KILL != 0)
        });
        daemon_first || rejected || killed
    }

    /// The messages the client sent after its handshake. Clients never use the reject
    /// layout, so a REJECT bit (h9) does not add the old-type word.
    fn client_messages(&self) -> Vec<Item> {
        let Ok(Parsed::Done(request, used)) = handshake::parse_connect(&self.c2d) else {
            return Vec::new();
        };
        let auth = if request.version.negotiates_auth() {
            AUTH_CHOICE_LEN
        } else {
            0
        };
        let start = (used + auth).min(self.c2d.len());
        split_messages(&self.c2d[start..], RejectLayout::Plain)
    }

    /// The bytes C wrote after the client had already closed its side.
    fn d2c_after_client_close(&self) -> &[u8] {
        let Some(closed) = self.client_close else {
            return &[];
        };
        let start = self
            .d2c_segments
            .iter()
            .find(|s| s.t > closed)
            .map_or(self.d2c.len(), |s| s.off);
        &self.d2c[start..]
    }
}

fn unhex(text: &str) -> Vec<u8> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        b'A'..=b'F' => c - b'A' + 10,
        _ => panic!("not a hex digit: {:?}", c as char),
    };
    assert!(text.len() % 2 == 0, "odd-length hex");
    text.as_bytes()
        .chunks(2)
        .map(|p| digit(p[0]) << 4 | digit(p[1]))
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One scenario folder of the corpus.
struct Scenario {
    name: &'static str,
    streams: Vec<Stream>,
}

impl Scenario {
    fn load(name: &'static str) -> Scenario {
        let path = testdata(&format!("{name}/{name}.streams.json"));
        let text = std::fs::read_to_string(&path).expect("read the capture");
        let file: CaptureFile = serde_json::from_str(&text).expect("parse the capture");
        Scenario {
            name,
            streams: file.streams.into_iter().map(Stream::new).collect(),
        }
    }

    fn stream(&self, private_group: &str) -> &Stream {
        self.streams
            .iter()
            .find(|s| s.private_group == private_group)
            .unwrap_or_else(|| panic!("{}: no stream {private_group}", self.name))
    }

    /// The ring membership id of the C daemon, read from the first regular membership
    /// message in the capture (`group_id{proc_id, time, index}` opens its body). A client's
    /// forged membership (h8) carries a service bit and is not taken.
    fn membership_id(&self) -> Option<MembershipId> {
        self.streams
            .iter()
            .flat_map(|s| &s.c_items)
            .find_map(|item| {
                let (h, writer) = item.header()?;
                let regular_memb = h.msg_type & service::REG_MEMB != 0
                    && h.msg_type & (service::REGULAR | service::REJECT) == 0;
                let body = item
                    .bytes()
                    .get(HEADER_LEN + MAX_GROUP_NAME * h.num_groups as usize..)?;
                let body = RegularBody::decode(body, writer).filter(|_| regular_memb)?;
                Some(body.group_id.memb_id)
            })
    }

    /// The names C assigned to clients that sent an empty name, in connect order.
    fn assigned_names(&self) -> VecDeque<Vec<u8>> {
        let mut asked: Vec<&Stream> = self
            .streams
            .iter()
            .filter(|s| s.asks_for_name && s.syn.is_some())
            .collect();
        asked.sort_by(|a, b| a.syn.unwrap().total_cmp(&b.syn.unwrap()));
        asked
            .iter()
            .filter_map(|s| {
                // "#r0-11#n1" -> "r0-11"
                let name = s.private_group.strip_prefix('#')?.split('#').next()?;
                Some(name.as_bytes().to_vec())
            })
            .collect()
    }

    /// Our daemon set up as the captured one: n1, little-endian, C's ring id and names.
    fn options(&self) -> DaemonOptions {
        let memb_id = self.membership_id().unwrap_or(MembershipId {
            // No membership message in this capture: the id is never on the wire.
            proc_id: u32::from(DAEMON_IP),
            time: 0,
        });
        let identity = Identity {
            name: DAEMON_NAME.into(),
            ip: DAEMON_IP,
        };
        let mut opts = DaemonOptions::new(identity, memb_id);
        opts.endian = Endian::Little;
        opts.assigned_names = self.assigned_names();
        for (field, why) in TAKEN_FROM_CAPTURE {
            println!("{}: taken from the capture: {field} ({why})", self.name);
        }
        println!(
            "{}: memb_id {{proc_id 0x{:08x}, time {}}}, assigned names {:?}",
            self.name,
            memb_id.proc_id,
            memb_id.time,
            opts.assigned_names
                .iter()
                .map(|n| String::from_utf8_lossy(n).into_owned())
                .collect::<Vec<_>>()
        );
        opts
    }
}

// ---- cutting a daemon->client stream into items ------------------------------------------

/// One thing a daemon sent a client.
#[derive(Clone, PartialEq, Eq)]
enum Item {
    /// `len "METHOD METHOD "`.
    AuthList(Vec<u8>),
    /// `01 maj min [patch] len "#name#daemon"`.
    Accept(Vec<u8>),
    /// A single negative byte instead of the auth list or the accept.
    Reject(u8),
    /// A 48-byte header and what it announces.
    Message(Vec<u8>),
    /// Bytes that do not make a whole item.
    Trailing(Vec<u8>),
}

impl Item {
    fn bytes(&self) -> &[u8] {
        match self {
            Item::AuthList(b) | Item::Accept(b) | Item::Message(b) | Item::Trailing(b) => b,
            Item::Reject(b) => std::slice::from_ref(b),
        }
    }

    fn header(&self) -> Option<(MessageHeader, Endian)> {
        match self {
            Item::Message(b) => Some(MessageHeader::decode(b[..HEADER_LEN].try_into().ok()?)),
            _ => None,
        }
    }

    fn msg_type(&self) -> u32 {
        self.header().map_or(0, |(h, _)| h.msg_type)
    }

    fn sender(&self) -> String {
        self.header()
            .map_or(String::new(), |(h, _)| h.private_group.to_string_lossy())
    }

    fn num_groups(&self) -> i32 {
        self.header().map_or(0, |(h, _)| h.num_groups)
    }

    /// The vs_set of a regular membership message.
    fn vs_set(&self) -> Vec<String> {
        let Some((h, writer)) = self.header() else {
            return Vec::new();
        };
        let start = HEADER_LEN + MAX_GROUP_NAME * h.num_groups.max(0) as usize;
        self.bytes()
            .get(start..)
            .and_then(|body| RegularBody::decode(body, writer))
            .map_or(Vec::new(), |b| {
                b.vs_set.iter().map(GroupName::to_string_lossy).collect()
            })
    }
}

impl fmt::Debug for Item {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.bytes();
        let head = hex(&b[..b.len().min(24)]);
        match self {
            Item::AuthList(_) => write!(f, "auth list {}", String::from_utf8_lossy(&b[1..])),
            Item::Accept(_) => write!(f, "accept {head}"),
            Item::Reject(r) => write!(f, "reject byte {r:02x}"),
            Item::Trailing(_) => write!(f, "{} trailing bytes {head}..", b.len()),
            Item::Message(_) => {
                let (h, writer) = self.header().expect("a message has a header");
                let groups: Vec<String> = b[HEADER_LEN..]
                    .chunks(MAX_GROUP_NAME)
                    .take(h.num_groups.clamp(0, 3) as usize)
                    .map(|g| GroupName::from_field(g).to_string_lossy())
                    .collect();
                write!(
                    f,
                    "{} bytes: type 0x{:08x} ({writer:?}) sender {:?} num_groups {} {groups:?}.. \
                     hint {} data_len {}",
                    b.len(),
                    h.msg_type,
                    h.private_group.to_string_lossy(),
                    h.num_groups,
                    hex(&h.hint.0),
                    h.data_len
                )
            }
        }
    }
}

/// Whether a REJECT-typed message carries the 4-byte old-type word (the daemon's own
/// rejects) or not (anything a client sent, and C's bounce of a forged reject, h9).
#[derive(Clone, Copy, PartialEq, Eq)]
enum RejectLayout {
    WithOldType,
    Plain,
}

/// Cuts what a daemon sent into the handshake items and then messages. `version` is the
/// client's, from its connect message; without one only a reject byte can come.
fn split_d2c(d2c: &[u8], version: Option<Version>) -> Vec<Item> {
    let (mut items, used) = split_handshake(d2c, version);
    let accepted = matches!(items.last(), Some(Item::Accept(_)));
    let rest = &d2c[used..];
    if accepted {
        items.extend(split_messages(rest, RejectLayout::WithOldType));
    } else if !rest.is_empty() {
        items.push(Item::Trailing(rest.to_vec()));
    }
    items
}

fn split_handshake(d2c: &[u8], version: Option<Version>) -> (Vec<Item>, usize) {
    let mut items = Vec::new();
    let is_reject = |b: u8| (b as i8) < 0;
    let mut at = 0;
    let Some(version) = version else {
        if let Some(&b) = d2c.first() {
            items.push(Item::Reject(b));
            at = 1;
        }
        return (items, at);
    };
    if version.negotiates_auth() {
        match d2c.first() {
            None => return (items, 0),
            Some(&b) if is_reject(b) => return (vec![Item::Reject(b)], 1),
            Some(&n) => {
                let Some(list) = d2c.get(..1 + n as usize) else {
                    return (items, 0);
                };
                items.push(Item::AuthList(list.to_vec()));
                at = list.len();
            }
        }
    }
    match d2c.get(at) {
        None => {}
        Some(&b) if is_reject(b) => {
            items.push(Item::Reject(b));
            at += 1;
        }
        Some(_) => {
            let len_at = at
                + if version.expects_patch_in_accept() {
                    4
                } else {
                    3
                };
            let end = d2c.get(len_at).map(|&n| len_at + 1 + n as usize);
            if let Some(accept) = end.and_then(|end| d2c.get(at..end)) {
                items.push(Item::Accept(accept.to_vec()));
                at += accept.len();
            }
        }
    }
    (items, at)
}

fn split_messages(mut rest: &[u8], layout: RejectLayout) -> Vec<Item> {
    let mut items = Vec::new();
    while !rest.is_empty() {
        let Some(head) = rest.get(..HEADER_LEN) else {
            items.push(Item::Trailing(rest.to_vec()));
            break;
        };
        let (h, _) = MessageHeader::decode(head.try_into().expect("48 bytes"));
        let old_type = if h.is_reject() && layout == RejectLayout::WithOldType {
            4
        } else {
            0
        };
        let len = usize::try_from(h.num_groups)
            .ok()
            .zip(usize::try_from(h.data_len).ok())
            .map(|(g, d)| HEADER_LEN + old_type + g * MAX_GROUP_NAME + d);
        let Some(message) = len.and_then(|len| rest.get(..len)) else {
            items.push(Item::Trailing(rest.to_vec()));
            break;
        };
        items.push(Item::Message(message.to_vec()));
        rest = &rest[message.len()..];
    }
    items
}

// ---- the replay ---------------------------------------------------------------------------

enum Action {
    Connect(Ipv4Addr),
    Bytes { off: usize, len: usize },
    Hangup,
}

struct Event {
    t: f64,
    conn: ConnId,
    action: Action,
}

/// Every connect, client segment and client hangup of a scenario, in capture order.
fn events(scenario: &Scenario) -> Vec<Event> {
    let mut events = Vec::new();
    for s in &scenario.streams {
        let Some(syn) = s.syn else { continue };
        let conn = s.conn();
        events.push(Event {
            t: syn,
            conn,
            action: Action::Connect(s.client_ip),
        });
        events.extend(s.c2d_segments.iter().map(|seg| Event {
            t: seg.t,
            conn,
            action: Action::Bytes {
                off: seg.off,
                len: seg.len,
            },
        }));
        if let (true, Some(t)) = (s.client_hung_up_first(), s.client_close) {
            events.push(Event {
                t,
                conn,
                action: Action::Hangup,
            });
        }
    }
    // Stable: a stream's own events keep their order when times tie.
    events.sort_by(|a, b| a.t.total_cmp(&b.t));
    events
}

/// Our daemon driven like the event loop drives it, in virtual time.
struct Replay {
    daemon: Daemon,
    t0: Instant,
    /// Everything our daemon wrote to each connection.
    sent: BTreeMap<ConnId, Vec<u8>>,
    /// Connections our daemon closed by itself (not after a replayed hangup), and why.
    ended: BTreeMap<ConnId, CloseReason>,
    hung_up: BTreeSet<ConnId>,
    last_t: f64,
}

impl Replay {
    fn run(scenario: &Scenario, opts: DaemonOptions) -> Replay {
        let t0 = Instant::now();
        let mut replay = Replay {
            daemon: Daemon::new(opts, t0),
            t0,
            sent: BTreeMap::new(),
            ended: BTreeMap::new(),
            hung_up: BTreeSet::new(),
            last_t: 0.0,
        };
        for ev in events(scenario) {
            match ev.action {
                Action::Connect(ip) => replay.connect(ev.t, ev.conn, ip),
                Action::Bytes { off, len } => {
                    let stream = &scenario.streams[ev.conn as usize];
                    replay.input(ev.t, ev.conn, &stream.c2d[off..off + len]);
                }
                Action::Hangup => replay.hangup(ev.t, ev.conn),
            }
        }
        // Let every deadline still pending pass (a handshake left hanging at the end).
        replay.advance(replay.last_t + 10.0);
        replay
    }

    /// Moves the clock to `t`, firing the deadlines on the way.
    fn advance(&mut self, t: f64) {
        self.last_t = self.last_t.max(t);
        let now = self.now();
        self.daemon.handle_timeout(now);
        self.drain();
    }

    fn now(&self) -> Instant {
        self.t0 + Duration::from_secs_f64(self.last_t)
    }

    fn connect(&mut self, t: f64, conn: ConnId, ip: Ipv4Addr) {
        self.advance(t);
        let now = self.now();
        self.daemon.handle_connect(now, conn, Peer::Tcp(ip));
        self.drain();
    }

    fn input(&mut self, t: f64, conn: ConnId, bytes: &[u8]) {
        self.advance(t);
        let now = self.now();
        self.daemon.handle_input(now, conn, bytes);
        self.drain();
    }

    fn hangup(&mut self, t: f64, conn: ConnId) {
        self.advance(t);
        self.hung_up.insert(conn);
        let now = self.now();
        self.daemon.handle_hangup(now, conn);
        self.drain();
    }

    /// As the event loop does: closes first (writing what a flushing close still holds),
    /// then every connection with bytes to write.
    fn drain(&mut self) {
        while let Some(CoreEvent::Close {
            conn,
            flush,
            reason,
        }) = self.daemon.poll_event()
        {
            if !self.hung_up.contains(&conn) {
                self.ended.entry(conn).or_insert(reason);
            }
            if flush {
                self.collect(conn);
            }
            self.daemon.handle_closed(conn);
        }
        while let Some(conn) = self.daemon.poll_writable() {
            self.collect(conn);
        }
    }

    /// Takes everything queued for `conn` as written.
    fn collect(&mut self, conn: ConnId) {
        let Some(queue) = self.daemon.output(conn) else {
            return;
        };
        let sent = self.sent.entry(conn).or_default();
        let mut slices: Vec<IoSlice<'_>> = Vec::new();
        queue.slices(&mut slices, usize::MAX);
        let n: usize = slices.iter().map(|s| s.len()).sum();
        for s in &slices {
            sent.extend_from_slice(s);
        }
        drop(slices);
        queue.consume(n);
    }
}

// ---- checking -----------------------------------------------------------------------------

/// One scenario's replay and the comparison of its streams, collecting every mismatch so a
/// failing run reports them all.
struct Run {
    scenario: Scenario,
    replay: Replay,
    failures: Vec<String>,
    items_checked: BTreeSet<usize>,
    closes_checked: BTreeSet<usize>,
}

impl Run {
    fn start(name: &'static str, configure: impl FnOnce(&mut DaemonOptions)) -> Run {
        let scenario = Scenario::load(name);
        let mut opts = scenario.options();
        configure(&mut opts);
        let replay = Replay::run(&scenario, opts);
        Run {
            scenario,
            replay,
            failures: Vec::new(),
            items_checked: BTreeSet::new(),
            closes_checked: BTreeSet::new(),
        }
    }

    fn stream(&self, private_group: &str) -> &Stream {
        self.scenario.stream(private_group)
    }

    /// What ours sent on a stream, cut like C's.
    fn ours(&self, index: usize) -> Vec<Item> {
        let s = &self.scenario.streams[index];
        let sent = self
            .replay
            .sent
            .get(&s.conn())
            .map_or(&[][..], Vec::as_slice);
        split_d2c(sent, s.version)
    }

    fn our_close(&self, index: usize) -> Option<&CloseReason> {
        self.replay.ended.get(&(index as ConnId))
    }

    /// Compares what ours sent on a stream with what C sent, after any named adjustments.
    fn expect_items(&mut self, index: usize, expected: &[Item], ours: &[Item]) {
        self.items_checked.insert(index);
        if let Some(diff) = first_difference(expected, ours) {
            let s = &self.scenario.streams[index];
            self.failures.push(format!(
                "{} stream {} ({}): {diff}",
                self.scenario.name, index, s.private_group
            ));
        }
    }

    /// Checks that ours ended the session exactly when C did.
    fn expect_close(&mut self, index: usize, c_ended: bool) {
        self.closes_checked.insert(index);
        let ours = self.our_close(index).cloned();
        if c_ended != ours.is_some() {
            let s = &self.scenario.streams[index];
            self.failures.push(format!(
                "{} stream {} ({}): C {} the session, ours {}",
                self.scenario.name,
                index,
                s.private_group,
                if c_ended { "ended" } else { "did not end" },
                ours.map_or("did not end it".to_string(), |r| format!("ended it: {r}")),
            ));
        }
    }

    /// The plain comparison for every stream no named difference has taken care of.
    fn check_remaining(&mut self) {
        let connected: Vec<usize> = (0..self.scenario.streams.len())
            .filter(|&i| self.scenario.streams[i].syn.is_some())
            .collect();
        for i in connected {
            if !self.items_checked.contains(&i) {
                let expected = self.scenario.streams[i].c_items.clone();
                let ours = self.ours(i);
                self.expect_items(i, &expected, &ours);
            }
            if !self.closes_checked.contains(&i) {
                let c_ended = self.scenario.streams[i].c_ended_session();
                self.expect_close(i, c_ended);
            }
        }
    }

    fn finish(mut self) {
        self.check_remaining();
        let streams = self.scenario.streams.iter().filter(|s| s.syn.is_some());
        println!(
            "{}: {} streams replayed, {} mismatches",
            self.scenario.name,
            streams.count(),
            self.failures.len()
        );
        assert!(
            self.failures.is_empty(),
            "{} differs from the C capture:\n{}",
            self.scenario.name,
            self.failures.join("\n")
        );
    }
}

/// `None` when both sequences are equal; otherwise where and how they first differ.
fn first_difference(expected: &[Item], ours: &[Item]) -> Option<String> {
    let mut offset = 0;
    for k in 0..expected.len().max(ours.len()) {
        match (expected.get(k), ours.get(k)) {
            (Some(e), Some(o)) if e == o => offset += e.bytes().len(),
            (e, o) => {
                let bytes = match (e, o) {
                    (Some(e), Some(o)) => byte_difference(e.bytes(), o.bytes()),
                    _ => String::new(),
                };
                let show = |i: Option<&Item>| i.map_or("nothing".to_string(), |i| format!("{i:?}"));
                return Some(format!(
                    "item {k} (stream offset {offset}): C sent {}, ours sent {}{bytes} \
                     [C {} items, ours {}]",
                    show(e),
                    show(o),
                    expected.len(),
                    ours.len()
                ));
            }
        }
    }
    None
}

fn byte_difference(c: &[u8], ours: &[u8]) -> String {
    let at = c
        .iter()
        .zip(ours)
        .position(|(a, b)| a != b)
        .unwrap_or(c.len().min(ours.len()));
    let window = |b: &[u8]| hex(&b[at.min(b.len())..(at + 16).min(b.len())]);
    format!(
        "; first differing byte at item offset {at}: C {} vs ours {}",
        window(c),
        window(ours)
    )
}

// ---- the scenarios ------------------------------------------------------------------------

/// Connect variants: names, assigned names, flags, rejects, old libraries, a silent client,
/// and a9's connect that stops before the name length. C answers a9 with `fc` at once, ours
/// at the 1 s deadline: same bytes, only the time differs. Virtual time makes the deadline
/// fire, and the client's FIN (its answer to C's close) is not replayed, so it cannot cut
/// ours short (see `Stream::client_hung_up_first`).
#[test]
fn a_connect() {
    let run = Run::start("a_connect", |_| {});
    run.finish();
}

/// The daemon allows only IP auth and has no access list: everyone gets REJECT_AUTH.
#[test]
fn a2_auth() {
    let mut run = Run::start("a2_auth", |opts| {
        opts.auth = AuthPolicy {
            allowed: vec!["IP".into()],
            required: Vec::new(),
            ip_rules: Vec::new(),
        };
    });
    // Named difference: a reply to a client that has already hung up. Stream 0's library
    // refuses by itself (NULL is not offered) and closes before sending its auth choice; C
    // reads the EOF as a short choice and still writes `f7` (Sess_recv_client_auth ->
    // Sess_session_denied), which the client answers with RST. Ours takes the EOF as the
    // hangup it is and writes nothing more. Nobody can read those bytes either way.
    let s = &run.scenario.streams[0];
    let late = s.d2c_after_client_close().to_vec();
    assert_eq!(
        late,
        [0xf7],
        "a2_auth stream 0: C's late bytes are REJECT_AUTH alone"
    );
    let expected: Vec<Item> = s
        .c_items
        .iter()
        .filter(|i| **i != Item::Reject(0xf7))
        .cloned()
        .collect();
    assert_eq!(expected.len() + 1, s.c_items.len());
    let ours = run.ours(0);
    run.expect_items(0, &expected, &ours);
    // For the same reason the session ended on the client's side in ours, not by a reject.
    assert!(run.scenario.streams[0].client_hung_up_first() && run.our_close(0).is_none());
    run.closes_checked.insert(0);
    run.finish();
}

/// 997 sessions, the 998th refused with REJECT_QUOTA before its connect is read, and a
/// session accepted again once one has left.
#[test]
fn a3_quota() {
    let run = Run::start("a3_quota", |_| {});
    run.finish();
}

/// Every service type, mess_type range, and a session killed for two service bits.
#[test]
fn b_svc() {
    let run = Run::start("b_svc", |_| {});
    run.finish();
}

/// Multi-group, private and open-group sends.
#[test]
fn c_multigroup() {
    let mut run = Run::start("c_multigroup", |_| {});
    // Named difference: C 3.17.3 reads the group list 48 bytes early when header plus names
    // overflow its first 1440-byte fragment (48 + 32 x 44 > 1440), so it silently delivers
    // multicasts to 44..=100 groups to nobody (or only to members of the group "", whose
    // name it finds in the header). Ours delivers them. Each receiver therefore gets extra
    // messages from ours: exactly A's wide multicasts that C did not deliver, in send order,
    // byte for byte as A sent them.
    let wide: Vec<Item> = run
        .stream("#a#n1")
        .client_messages()
        .into_iter()
        .filter(|m| (44..=100).contains(&m.num_groups()))
        .collect();
    assert!(
        wide.len() >= 4,
        "the capture has A's 44- and 100-group sends"
    );
    for i in 0..run.scenario.streams.len() {
        if run.scenario.streams[i].syn.is_none() {
            continue;
        }
        let c = run.scenario.streams[i].c_items.clone();
        let ours = run.ours(i);
        let (kept, extra) = split_extra(&c, &ours, |item| wide.contains(item));
        for e in &extra {
            let groups = e.num_groups();
            assert!(
                (44..=100).contains(&groups),
                "c_multigroup stream {i}: extra message to {groups} groups: {e:?}"
            );
        }
        if !extra.is_empty() {
            let missing_in_c: Vec<&Item> = wide.iter().filter(|w| !c.contains(w)).collect();
            assert_eq!(
                extra.iter().collect::<Vec<_>>(),
                missing_in_c,
                "c_multigroup stream {i}: ours delivers every wide multicast C dropped, once"
            );
            println!(
                "c_multigroup stream {i}: {} multicasts to >= 44 groups that C dropped, delivered by ours",
                extra.len()
            );
        }
        run.expect_items(i, &c, &kept);
    }
    // B is in g1 and g3, which every wide send names: ours must have delivered to it.
    let b = run.stream("#b#n1").index;
    let ours_b = run.ours(b);
    assert!(
        wide.iter().all(|w| ours_b.contains(w)),
        "c_multigroup: B gets every multicast to 44..=100 groups from ours"
    );
    run.finish();
}

/// Walks C's items and ours together; items of ours that C does not have at that point and
/// that `is_extra` accepts are set aside. Returns (ours without them, them).
fn split_extra(
    c: &[Item],
    ours: &[Item],
    is_extra: impl Fn(&Item) -> bool,
) -> (Vec<Item>, Vec<Item>) {
    let (mut kept, mut extra) = (Vec::new(), Vec::new());
    let mut k = 0;
    for item in ours {
        if c.get(k) == Some(item) {
            k += 1;
            kept.push(item.clone());
        } else if is_extra(item) {
            extra.push(item.clone());
        } else {
            kept.push(item.clone());
            k += 1;
        }
    }
    (kept, extra)
}

/// Message sizes up to the limits, and d12: the 143,920-byte message that aborts C.
#[test]
fn d_sizes() {
    let mut run = Run::start("d_sizes", |_| {});
    // Named difference: d12. B sends 143,920 bytes to g1: 48 + 32 + 143,920 = 144,000, which
    // passes every check of C's, and C aborts (memory.c:601, Message_element_len_fixup writes
    // elements[100]). The C capture ends there for every stream. Ours allows data + 32 x
    // groups <= 144,000 - 48 = 143,952 (143,920 + 32 = 143,952) and delivers it: B, alone
    // in g1 by then, gets its own message back, and its session stays open.
    let b = run.stream("#b#n1");
    let (b_index, c_items) = (b.index, b.c_items.clone());
    let d12 = b
        .client_messages()
        .into_iter()
        .last()
        .expect("B's last message is d12");
    let (h, _) = d12.header().expect("d12 is a message");
    assert_eq!(
        (h.data_len, h.num_groups),
        (143_920, 1),
        "B's last message is d12"
    );
    assert_eq!(d12.bytes().len(), 144_000);
    let ours = run.ours(b_index);
    assert_eq!(
        ours.last(),
        Some(&d12),
        "d_sizes: ours delivers d12 to B, where C aborted"
    );
    run.expect_items(b_index, &c_items, &ours[..ours.len() - 1]);
    // C's FIN on B's stream is the abort, not a decision: ours keeps B's session.
    assert!(b_ended_by_abort(&run, b_index));
    assert!(
        run.our_close(b_index).is_none(),
        "d_sizes: ours keeps B after d12"
    );
    run.closes_checked.insert(b_index);
    // Still serving after d12: B's next message comes back to it.
    let next = encode_message(
        &MessageHeader {
            msg_type: service::AGREED,
            private_group: GroupName::new("#b#n1"),
            num_groups: 0,
            hint: Hint::new(134, Endian::Little),
            data_len: 0,
        },
        &[GroupName::new("g1")],
        &[b"after-d12"],
        Endian::Little,
    );
    let before = run.replay.sent[&(b_index as ConnId)].len();
    let t = run.replay.last_t + 1.0;
    run.replay.input(t, b_index as ConnId, &next);
    assert_eq!(
        run.replay.sent[&(b_index as ConnId)][before..],
        next[..],
        "d_sizes: ours still serves B after d12"
    );
    assert_eq!(run.replay.daemon.session_count(), 1);
    run.finish();
}

/// B's stream ends with C's FIN right after d12 arrived: the abort.
fn b_ended_by_abort(run: &Run, b: usize) -> bool {
    let s = &run.scenario.streams[b];
    let d12_sent = s.c2d_segments.last().map(|seg| seg.t);
    matches!((d12_sent, s.daemon_close), (Some(sent), Some(closed)) if closed >= sent)
        && !s.client_hung_up_first()
}

/// Join, leave, rejoin, disconnect, a killed member, odd group names.
#[test]
fn e_memb() {
    let run = Run::start("e_memb", |_| {});
    run.finish();
}

/// A big-endian client and a little-endian one in one group.
#[test]
fn g_endian_be() {
    let run = Run::start("g_endian_be", |_| {});
    run.finish();
}

/// Malformed requests. h1..h6 are killed by both daemons and h7 accepted by both; h8 and h9
/// are the named differences below.
#[test]
fn h_violations() {
    let mut run = Run::start("h_violations", |_| {});
    h8_forged_membership(&mut run);
    h9_forged_reject(&mut run);
    run.finish();
}

/// Named difference h8: v8 multicasts AGREED|REG_MEMB_MESS, which every receiving library
/// takes for a membership message. C passes it through (to v8 and the observer); ours kills
/// v8's session as a protocol violation. So the observer gets, where C gave it the forged
/// message, the CAUSED_BY_DISCONNECT for v8 (which C sent later, when v8 disconnected).
fn h8_forged_membership(run: &mut Run) {
    let is_forged = |item: &Item| {
        item.msg_type() & service::REG_MEMB != 0
            && item.msg_type() & service::AGREED != 0
            && item.sender() == "#v8#n1"
    };
    let v8 = run.stream("#v8#n1");
    let (v8_index, v8_c) = (v8.index, v8.c_items.clone());
    assert!(
        v8.client_messages().iter().any(is_forged),
        "v8 sent the forged membership"
    );
    // v8: ours sends what C sent up to the echo of the forged message, then nothing.
    let (echo, before) = v8_c.split_last().expect("v8's stream");
    assert!(
        is_forged(echo),
        "h8: C's last message to v8 is its forged one"
    );
    let ours = run.ours(v8_index);
    run.expect_items(v8_index, before, &ours);
    assert_violation(run, v8_index, "h8");

    // The observer: the forged message is replaced by the DISCONNECT that followed it.
    let obs = run.stream("#obs#n1");
    let (obs_index, obs_c) = (obs.index, obs.c_items.clone());
    let at = obs_c
        .iter()
        .position(is_forged)
        .expect("h8: C delivered the forged message to obs");
    let disconnect = &obs_c[at + 1];
    assert!(
        is_disconnect_of(disconnect, "#v8#n1"),
        "h8: C's next message to obs is v8's disconnect: {disconnect:?}"
    );
    let ours = run.ours(obs_index);
    assert!(
        ours.get(at).is_some_and(|o| is_disconnect_of(o, "#v8#n1")),
        "h8: ours gives obs v8's CAUSED_BY_DISCONNECT instead of the forged message, got {:?}",
        ours.get(at)
    );
    let mut expected = obs_c;
    expected.remove(at);
    run.expect_items(obs_index, &expected, &ours);
}

/// Named difference h9: v9 multicasts REJECT_MESS|AGREED to `grej`. C bounces it to v9 alone
/// in the plain layout (v9's library then misparses it) and keeps v9's session; ours kills
/// the session as a protocol violation. So v9 gets neither the bounce nor obs2's later
/// private message, and obs2 (the only member of grej) misses the AGREED message v9 sent
/// after the forged one. v9 never joined a group, so nobody gets a membership for it.
fn h9_forged_reject(run: &mut Run) {
    let v9 = run.stream("#v9#n1");
    let v9_index = v9.index;
    let v9_sent = v9.client_messages();
    let (forged, after) = v9_sent.split_first().expect("v9 sent messages");
    assert_eq!(
        forged.msg_type(),
        service::REJECT | service::AGREED,
        "h9: v9's first message is REJECT|AGREED"
    );
    // v9: C's handshake, then (cut in the plain layout) the bounce and obs2's message.
    let handshake: Vec<Item> = v9
        .c_items
        .iter()
        .take_while(|i| !matches!(i, Item::Message(_) | Item::Trailing(_)))
        .cloned()
        .collect();
    let used: usize = handshake.iter().map(|i| i.bytes().len()).sum();
    let c_rest = split_messages(&v9.d2c[used..], RejectLayout::Plain);
    assert_eq!(c_rest.len(), 2, "h9: C sent v9 two messages: {c_rest:?}");
    assert_eq!(
        &c_rest[0], forged,
        "h9: C bounced v9's message to it unchanged"
    );
    assert!(
        c_rest[1].sender() == "#obs2#n1" && c_rest[1].msg_type() == service::RELIABLE,
        "h9: C then delivered obs2's private message to v9: {:?}",
        c_rest[1]
    );
    let ours = run.ours(v9_index);
    run.expect_items(v9_index, &handshake, &ours);
    assert_violation(run, v9_index, "h9");

    // obs2: everything but v9's later message, which ours never read.
    let obs2 = run.stream("#obs2#n1");
    let (obs2_index, obs2_c) = (obs2.index, obs2.c_items.clone());
    let later = after
        .iter()
        .find(|m| m.msg_type() == service::AGREED)
        .expect("h9: v9 sent an AGREED after the forged one");
    let expected: Vec<Item> = obs2_c.iter().filter(|i| *i != later).cloned().collect();
    assert_eq!(
        expected.len() + 1,
        obs2_c.len(),
        "h9: C delivered v9's later message to obs2 once"
    );
    let ours = run.ours(obs2_index);
    run.expect_items(obs2_index, &expected, &ours);
}

fn is_disconnect_of(item: &Item, member: &str) -> bool {
    let t = item.msg_type();
    t & (service::REG_MEMB | service::CAUSED_BY_DISCONNECT)
        == service::REG_MEMB | service::CAUSED_BY_DISCONNECT
        && t & service::REGULAR == 0
        && item.vs_set() == [member]
}

/// Ours ended the session for a protocol violation (where C did not).
fn assert_violation(run: &mut Run, index: usize, step: &str) {
    let reason = run.our_close(index);
    assert!(
        matches!(reason, Some(CloseReason::Violation(_))),
        "{step}: ours kills the violator's session, got {reason:?}"
    );
    println!("h_violations {step}: ours: {}", reason.unwrap());
    run.closes_checked.insert(index);
}

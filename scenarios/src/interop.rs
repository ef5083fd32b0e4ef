//! The interop matrix behind `cargo xtask interop`: rings of three daemons (all C 3.17, all
//! ours, or mixed) × client libraries (libspread, spread-rs) × events (a client joins,
//! leaves, disconnects; kill -9 of a daemon; its restart and merge; a partition and its
//! heal). In every cell one client per daemon (plus one for the client events) joins one
//! group and multicasts a round of every service type before, during and after the event;
//! what every client received is then checked with the simulator's Extended Virtual
//! Synchrony checker ([`spread_sim::check`]) plus virtual synchrony proper: clients that
//! move together from one view to the next deliver the same messages in the first.

use crate::clients::{Client, Library};
use crate::record::Received;
use serde::Serialize;
use spread::{GroupId, ServiceKind};
use spread_sim::{ClientLog, Logged};
use spread_testkit::{CSpread, DaemonKind, Ring};
use spread_wire::consts::service as svc;
use spread_wire::ring::monitor::{monitor_request, PerDaemonTable};
use spread_wire::ring::{encode_datagram, packet_type};
use spread_wire::Endian;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The group every client of a cell joins.
const GROUP: &str = "interop";

/// Which daemons make up the ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Row {
    AllC,
    AllRust,
    /// n1 is C 3.17, n2 and n3 are ours (run with `--with-c-daemons`): the daemon the
    /// events hit (n3) is ours.
    Mixed,
    /// n1 and n2 are ours, n3 is C 3.17: the events hit the C daemon.
    MixedCHit,
}

impl Row {
    pub const ALL: [Row; 4] = [Row::AllC, Row::AllRust, Row::Mixed, Row::MixedCHit];

    pub fn key(self) -> &'static str {
        match self {
            Row::AllC => "c",
            Row::AllRust => "rust",
            Row::Mixed => "mixed",
            Row::MixedCHit => "mixed-c",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Row::AllC => "C C C",
            Row::AllRust => "Rust Rust Rust",
            Row::Mixed => "C Rust Rust",
            Row::MixedCHit => "Rust Rust C",
        }
    }

    pub fn needs_c(self) -> bool {
        self != Row::AllRust
    }

    /// The daemons of the row; `None` when it needs C and there is none.
    fn kinds(self, c: Option<&CSpread>, rust: &Path) -> Option<Vec<DaemonKind>> {
        let r = || DaemonKind::rust(rust);
        let c = || c.map(|c| DaemonKind::C(c.clone()));
        Some(match self {
            Row::AllC => vec![c()?, c()?, c()?],
            Row::AllRust => vec![r(), r(), r()],
            Row::Mixed => vec![c()?, r(), r()],
            Row::MixedCHit => vec![r(), r(), c()?],
        })
    }
}

/// What happens in the middle of a cell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    Join,
    Leave,
    Disconnect,
    Kill,
    Restart,
    Partition,
}

impl Event {
    pub const ALL: [Event; 6] = [
        Event::Join,
        Event::Leave,
        Event::Disconnect,
        Event::Kill,
        Event::Restart,
        Event::Partition,
    ];

    pub fn key(self) -> &'static str {
        match self {
            Event::Join => "join",
            Event::Leave => "leave",
            Event::Disconnect => "disconnect",
            Event::Kill => "kill",
            Event::Restart => "restart",
            Event::Partition => "partition",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Event::Join => "join",
            Event::Leave => "leave",
            Event::Disconnect => "disconnect",
            Event::Kill => "kill -9",
            Event::Restart => "restart + merge",
            Event::Partition => "partition + heal",
        }
    }
}

/// One cell's outcome.
#[derive(Clone, Debug, Serialize)]
pub struct CellResult {
    /// "c", "rust", "mixed" (n1 C) or "mixed-c" (n3 C).
    pub row: String,
    /// The daemons n1 n2 n3, e.g. "C Rust Rust".
    pub daemons: String,
    pub library: String,
    pub event: String,
    /// "pass", "fail" (an invariant or an expected view did not hold) or "error" (the cell
    /// could not run: a ring did not form, a connect failed).
    pub status: String,
    /// One line per failed invariant (property letter as in the simulator's checker, or
    /// "vs" for virtual synchrony, "view" for a view that never came).
    pub failures: Vec<String>,
    pub seconds: f64,
    /// Client sessions checked.
    pub clients: usize,
    /// Data messages delivered, over all clients.
    pub delivered: usize,
    /// Where the daemons' logs were kept, for a cell that did not pass.
    pub logs: Option<String>,
}

/// The config every cell's ring runs with: a monitor may partition it.
const RING_CONF: &str = "DangerousMonitor = yes\n";

/// What a monitor does with `DangerousMonitor = yes`: sends every daemon a PARTITION
/// table, component number per configuration index (all equal: healed).
fn partition(ring: &Ring, components: &[i16]) -> std::io::Result<()> {
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
    let mut table = PerDaemonTable::default();
    table.entries[..components.len()].copy_from_slice(components);
    let body = table.encode(Endian::NATIVE);
    let reply_port = socket.local_addr()?.port();
    for _ in 0..3 {
        for n in 1..=ring.daemons.len() as u8 {
            // The monitor speaks as a configured daemon's host: the receiver's own.
            // (C 3.17 takes the partition but not the all-zero heal, from n1's id or
            // its own: its partition lapses after 60 s instead; ours heals at once.)
            let header =
                monitor_request(packet_type::PARTITION, u32::from(Ring::ip(n)), reply_port);
            let datagram = encode_datagram(Endian::NATIVE, &[(header, &body[..])])
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            socket.send_to(&datagram, (Ring::ip(n), ring.port))?;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// One client session of a cell and everything it delivered in [`GROUP`].
struct Member {
    client: Option<Box<dyn Client>>,
    daemon: usize,
    in_group: bool,
    log: ClientLog,
    /// Its last regular view of the group: id and members.
    view: Option<(GroupId, Vec<String>)>,
    /// Every message it delivered: (sender, seq).
    got: BTreeSet<(u32, u32)>,
    next_seq: u32,
    /// Undecodable deliveries, reported as failures.
    strange: Vec<String>,
}

impl Member {
    fn live(&self) -> bool {
        self.client.is_some() && self.in_group
    }

    fn members(&self) -> usize {
        self.view.as_ref().map_or(0, |v| v.1.len())
    }

    fn handle(&mut self, r: Received) {
        let kind = r.service_type as u32;
        if kind & svc::REJECT != 0 {
            self.strange
                .push(format!("{}: rejected {kind:#x}", self.log.name));
            return;
        }
        if kind & svc::MEMBERSHIP != 0 {
            if r.sender != GROUP {
                return;
            }
            if kind & (svc::REG_MEMB | svc::TRANSITION) == 0 {
                // Our own leave.
                self.in_group = false;
                return;
            }
            let Some(body) = r.membership else {
                self.strange
                    .push(format!("{}: membership without a body", self.log.name));
                return;
            };
            let id = GroupId {
                proc_id: body.group_id[0] as u32,
                time: body.group_id[1],
                index: body.group_id[2],
            };
            if kind & svc::REG_MEMB != 0 {
                self.view = Some((id, r.groups.clone()));
                self.log.events.push(Logged::Regular {
                    id,
                    members: r.groups,
                });
            } else {
                self.log.events.push(Logged::Transitional { id });
            }
            return;
        }
        if !r.groups.iter().any(|g| g == GROUP) {
            return;
        }
        let text = String::from_utf8_lossy(&r.data.0).into_owned();
        let parsed = text
            .split_once(':')
            .and_then(|(a, b)| Some((a.parse::<u32>().ok()?, b.parse::<u32>().ok()?)));
        match (parsed, ServiceKind::from_type(kind)) {
            (Some((sender, seq)), Some(service)) => {
                self.got.insert((sender, seq));
                self.log.events.push(Logged::Message {
                    sender,
                    seq,
                    service,
                });
            }
            _ => self.strange.push(format!(
                "{}: undecodable message {text:?} of type {kind:#x}",
                self.log.name
            )),
        }
    }
}

/// The clients of one cell.
struct Cell<'a> {
    library: &'a dyn Library,
    members: Vec<Member>,
    failures: Vec<String>,
}

impl Cell<'_> {
    fn connect(&mut self, ring: &Ring, daemon: usize, name: &str) -> Result<usize, String> {
        let address = ring.address(daemon as u8 + 1);
        let (mut client, private_group) = self
            .library
            .connect(&address, name, true, "NULL")
            .map_err(|code| {
                format!(
                    "{} connect {name} to {address}: {code}",
                    self.library.name()
                )
            })?;
        let code = client.join(GROUP);
        if code < 0 {
            return Err(format!("{private_group} join: {code}"));
        }
        let id = self.members.len() as u32 + 1;
        self.members.push(Member {
            client: Some(client),
            daemon,
            in_group: true,
            log: ClientLog {
                client: id,
                name: private_group,
                daemon,
                events: Vec::new(),
                sent: Vec::new(),
                alive_at_end: false,
                crashed: false,
            },
            view: None,
            got: BTreeSet::new(),
            next_seq: 0,
            strange: Vec::new(),
        });
        Ok(self.members.len() - 1)
    }

    /// One message of every service type from every live client.
    fn round(&mut self) {
        for m in self.members.iter_mut().filter(|m| m.live()) {
            for service in ServiceKind::ALL {
                m.next_seq += 1;
                let seq = m.next_seq;
                let data = format!("{}:{seq}", m.log.client);
                let client = m.client.as_mut().expect("live");
                let code =
                    client.multicast(service.bit() as i32, &[GROUP.into()], 0, data.as_bytes());
                if code >= 0 {
                    m.log.sent.push((seq, service, false));
                }
            }
        }
    }

    /// Receives at every client for `span`.
    fn pump(&mut self, span: Duration) {
        let deadline = Instant::now() + span;
        loop {
            self.poll_once();
            if Instant::now() >= deadline {
                return;
            }
        }
    }

    fn poll_once(&mut self) {
        let mut idle = true;
        for m in &mut self.members {
            for _ in 0..64 {
                let Some(client) = m.client.as_mut() else {
                    break;
                };
                // (spread-rs reads nothing within a zero wait)
                match client.receive(Duration::from_millis(1)) {
                    Ok(Some(r)) => {
                        idle = false;
                        m.handle(r);
                    }
                    Ok(None) => break,
                    Err(_) => {
                        m.client = None;
                        break;
                    }
                }
            }
        }
        if idle && self.members.iter().all(|m| m.client.is_none()) {
            std::thread::sleep(Duration::from_millis(3));
        }
    }

    /// Pumps until `done` holds, or records a "view" failure after `within`.
    fn until(&mut self, what: &str, within: Duration, done: impl Fn(&[Member]) -> bool) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if done(&self.members) {
                return true;
            }
            self.poll_once();
        }
        let views: Vec<String> = self
            .members
            .iter()
            .map(|m| {
                format!(
                    "{}{}:{}",
                    m.log.name,
                    if m.live() { "" } else { "(gone)" },
                    m.members()
                )
            })
            .collect();
        self.failures.push(format!(
            "view: {what} not within {within:?} (members seen: {})",
            views.join(" ")
        ));
        false
    }

    /// Waits until every live client's view has `count(member)` members.
    fn views(&mut self, what: &str, within: Duration, count: impl Fn(&Member) -> usize) -> bool {
        self.until(what, within, |ms| {
            ms.iter()
                .filter(|m| m.live())
                .all(|m| m.members() == count(m))
        })
    }

    /// Waits until every live client delivered every live client's last message.
    fn settle(&mut self, within: Duration) -> bool {
        self.until("final round delivered everywhere", within, |ms| {
            let last: Vec<(u32, u32)> = ms
                .iter()
                .filter(|m| m.live())
                .filter_map(|m| m.log.sent.last().map(|s| (m.log.client, s.0)))
                .collect();
            ms.iter()
                .filter(|m| m.live())
                .all(|m| last.iter().all(|x| m.got.contains(x)))
        })
    }
}

/// Runs one cell. `keep_logs` receives the ring's logs when the cell does not pass.
pub fn run_cell(
    row: Row,
    c: Option<&CSpread>,
    rust_daemon: &Path,
    library: &dyn Library,
    event: Event,
    keep_logs: Option<&Path>,
) -> CellResult {
    let started = Instant::now();
    let mut result = CellResult {
        row: row.key().into(),
        daemons: row.label().into(),
        library: library.name().into(),
        event: event.key().into(),
        status: "error".into(),
        failures: Vec::new(),
        seconds: 0.0,
        clients: 0,
        delivered: 0,
        logs: None,
    };
    let Some(kinds) = row.kinds(c, rust_daemon) else {
        result.failures.push("no C Spread".into());
        return result;
    };
    let with_c = row.needs_c();
    let mut ring_slot: Option<Ring> = None;
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        play(kinds, with_c, library, event, &mut ring_slot)
    }));
    match outcome {
        Ok(Ok(cell)) => {
            result.clients = cell.members.len();
            result.delivered = cell.members.iter().map(|m| m.got.len()).sum();
            result.failures = cell.failures;
            result.status = if result.failures.is_empty() {
                "pass"
            } else {
                "fail"
            }
            .into();
        }
        Ok(Err(e)) => result.failures.push(e),
        Err(panic) => result.failures.push(format!(
            "panic: {}",
            panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("?")
        )),
    }
    if result.status != "pass" {
        if let (Some(ring), Some(dir)) = (&ring_slot, keep_logs) {
            let to: PathBuf = dir.join(format!("{}-{}-{}", row.key(), library.name(), event.key()));
            ring.keep_logs(&to);
            result.logs = Some(to.display().to_string());
        }
    }
    result.seconds = (started.elapsed().as_secs_f64() * 10.0).round() / 10.0;
    result
}

fn play<'a>(
    kinds: Vec<DaemonKind>,
    with_c: bool,
    library: &'a dyn Library,
    event: Event,
    ring_slot: &mut Option<Ring>,
) -> Result<Cell<'a>, String> {
    // 3.17's timeouts: a ring forms in ~7 s, a failure is noticed in ~12 s.
    let (form, change) = if with_c {
        (Duration::from_secs(40), Duration::from_secs(45))
    } else {
        (Duration::from_secs(20), Duration::from_secs(20))
    };
    let ring = ring_slot.insert(Ring::try_start(kinds, RING_CONF)?);
    ring.wait_until_one_ring(form)?;
    let mut cell = Cell {
        library,
        members: Vec::new(),
        failures: Vec::new(),
    };
    for n in 0..3 {
        cell.connect(ring, n, &format!("c{}", n + 1))?;
    }
    let extra = matches!(event, Event::Leave | Event::Disconnect);
    if extra {
        cell.connect(ring, 0, "c4")?;
    }
    let initial = cell.members.len();
    if !cell.views("everyone joined", change, |_| initial) {
        return Ok(finish(cell));
    }
    cell.round();
    cell.pump(Duration::from_millis(300));
    cell.round();
    let ok = match event {
        Event::Join => {
            cell.connect(ring, 1, "c4")?;
            cell.round();
            cell.views("the newcomer is in", change, |_| 4)
        }
        Event::Leave => {
            let code = cell.members[3].client.as_mut().expect("c4").leave(GROUP);
            if code < 0 {
                cell.failures.push(format!("c4 leave: {code}"));
            }
            cell.round();
            cell.views("the leaver is out", change, |_| 3)
        }
        Event::Disconnect => {
            if let Some(mut c) = cell.members[3].client.take() {
                c.disconnect();
            }
            // To the checker a session that ends is a crash: it never reads what the daemon
            // still held for it (SAFE messages of its last view included).
            cell.members[3].log.crashed = true;
            cell.round();
            cell.views("the disconnected client is out", change, |_| 3)
        }
        Event::Kill | Event::Restart => {
            ring.kill(3);
            cell.members[2].log.crashed = true;
            cell.members[2].client = None;
            cell.round();
            let seen = cell.views("the killed daemon's client is out", change, |_| 2);
            if seen && event == Event::Restart {
                cell.round();
                cell.pump(Duration::from_millis(300));
                ring.start_daemon(3);
                cell.connect(ring, 2, "c5")?;
                cell.round();
                cell.views("the restarted daemon merged", change + change, |_| 3)
            } else {
                seen
            }
        }
        Event::Partition => {
            partition(ring, &[0, 0, 1]).map_err(|e| format!("sending PARTITION: {e}"))?;
            cell.round();
            let split = cell.views("the partition split the group", change, |m| {
                if m.daemon == 2 {
                    1
                } else {
                    2
                }
            });
            if split {
                cell.round();
                cell.pump(Duration::from_millis(300));
            }
            partition(ring, &[0, 0, 0]).map_err(|e| format!("sending the heal: {e}"))?;
            cell.round();
            split && cell.views("the heal merged the group", change + change, |_| 3)
        }
    };
    if ok {
        cell.pump(Duration::from_millis(200));
        cell.round();
        cell.settle(Duration::from_secs(20));
        // Late duplicates.
        cell.pump(Duration::from_millis(500));
    }
    Ok(finish(cell))
}

/// Ends the sessions and checks what every client received.
fn finish(mut cell: Cell<'_>) -> Cell<'_> {
    for m in &mut cell.members {
        m.log.alive_at_end = m.live();
        if let Some(mut c) = m.client.take() {
            c.disconnect();
        }
    }
    let logs: Vec<ClientLog> = cell.members.iter().map(|m| m.log.clone()).collect();
    for m in &cell.members {
        cell.failures.extend(m.strange.iter().cloned());
    }
    // Stop at the first "view" failure: the checks then add nothing but noise.
    if cell.failures.iter().any(|f| f.starts_with("view")) {
        return cell;
    }
    for v in spread_sim::check(&logs) {
        cell.failures.push(v.to_string());
    }
    cell.failures.extend(virtual_synchrony(&logs));
    cell
}

/// Clients that install the same two consecutive views deliver the same messages in the
/// first of them, regular and transitional parts together. Only FIFO and stronger: a daemon
/// delivers UNRELIABLE and RELIABLE messages on arrival, outside the total order, so one
/// from a local client may come before a view change here and after it elsewhere (the
/// simulator's checker does not tie them to views either).
pub fn virtual_synchrony(logs: &[ClientLog]) -> Vec<String> {
    type Key = (u32, i32, i32);
    let key = |g: &GroupId| (g.proc_id, g.time, g.index);
    // (view, next view) -> (client, messages delivered in view)
    type Delivered<'a> = Vec<(&'a str, BTreeSet<(u32, u32)>)>;
    let mut moves: BTreeMap<(Key, Key), Delivered> = BTreeMap::new();
    for log in logs {
        let mut current: Option<(Key, BTreeSet<(u32, u32)>)> = None;
        for e in &log.events {
            match e {
                Logged::Regular { id, .. } => {
                    if let Some((from, set)) = current.take() {
                        moves
                            .entry((from, key(id)))
                            .or_default()
                            .push((&log.name, set));
                    }
                    current = Some((key(id), BTreeSet::new()));
                }
                Logged::Message {
                    sender,
                    seq,
                    service,
                } if !matches!(service, ServiceKind::Unreliable | ServiceKind::Reliable) => {
                    if let Some((_, set)) = &mut current {
                        set.insert((*sender, *seq));
                    }
                }
                _ => {}
            }
        }
    }
    let mut out = Vec::new();
    for ((from, to), clients) in &moves {
        for pair in clients.windows(2) {
            let (a, sa) = &pair[0];
            let (b, sb) = &pair[1];
            if sa != sb {
                let only_a: Vec<_> = sa.difference(sb).take(3).collect();
                let only_b: Vec<_> = sb.difference(sa).take(3).collect();
                out.push(format!(
                    "(vs) {a} and {b} moved together from {from:?} to {to:?} but delivered different messages there: only {a} {only_a:?}, only {b} {only_b:?}"
                ));
            }
        }
    }
    out
}
